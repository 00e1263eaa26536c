//! EC2's resource ids (`vpc-0a1b2c3d4e5f60789`: a prefix and 17 hex
//! digits) and the model's logical ids, both ways, in one place.
//!
//! * A resource the EC2 API created is named in its stack by its id
//!   without the dash (`vpc0a1b2c3d4e5f60789`: logical ids are
//!   alphanumeric), so its id is its logical id with the dash back.
//! * Any other resource (a template's, or what a VPC brings: its default
//!   security group, ACL and main route table) gets a stable id derived
//!   from the deployment, its stack and its logical id: the same on every
//!   read, every `vpc apply` and every agent.
//!
//! From an id back to the model: [`logical`] for the API's own, else
//! [`super::View::logical`], which derives every resource's id once.
use sha2::{Digest, Sha256};

/// The prefixes of the ids the API shows (the API's own resources).
pub const PREFIXES: &[&str] = &[
    "vpc", "subnet", "sg", "acl", "rtb", "igw", "eigw", "rtbassoc", "aclassoc", "sgr", "nat",
    "eipalloc", "eipassoc", "dopt", "pl", "i", "scr",
];

/// Hex digits after the dash.
pub const HEX: usize = 17;

/// `n` random hex digits (the time, the process and a counter, hashed).
pub fn random_hex(n: usize) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}/{}/{}/{}",
        t.as_nanos(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::thread::current().name().unwrap_or("")
    );
    hex_of(&seed, n)
}

fn hex_of(s: &str, n: usize) -> String {
    let d = Sha256::digest(s.as_bytes());
    let mut out: String = d.iter().map(|b| format!("{b:02x}")).collect();
    out.truncate(n);
    out
}

/// A new id of the API: `prefix-` and 17 random hex digits; its logical
/// id is [`logical`] of it.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(HEX))
}

/// The stable id of a resource no API call created: `prefix-` and 17 hex
/// digits of a hash of (deployment, stack, logical id).
pub fn derived(prefix: &str, deployment: &str, stack: &str, logical_id: &str) -> String {
    format!(
        "{prefix}-{}",
        hex_of(&format!("{deployment}/{stack}/{logical_id}"), HEX)
    )
}

/// The id of resource `logical_id` (of stack `stack`, in deployment
/// `deployment`), with `prefix` its kind's: the API's own keep theirs.
pub fn physical(prefix: &str, deployment: &str, stack: &str, logical_id: &str) -> String {
    match api_id(logical_id) {
        Some(id) if id.starts_with(&format!("{prefix}-")) => id,
        _ => derived(prefix, deployment, stack, logical_id),
    }
}

/// An id as the Lambda and EC2 APIs show it: the EC2 id of what the EC2
/// API created, a template resource's logical id as it is.
pub fn shown(id: &str) -> String {
    api_id(id).unwrap_or_else(|| id.to_string())
}

/// The id of an API resource named `logical_id` in its stack, if it is one.
pub fn api_id(logical_id: &str) -> Option<String> {
    let hex_at = logical_id.len().checked_sub(HEX)?;
    let (prefix, hex) = logical_id.split_at(hex_at);
    (PREFIXES.contains(&prefix)
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("{prefix}-{hex}"))
}

/// The logical id the API's resource `id` has in its stack
/// (`vpc-0a1b...` → `vpc0a1b...`), if `id` is shaped as one.
pub fn logical(id: &str) -> Option<String> {
    let (prefix, hex) = id.split_once('-')?;
    (PREFIXES.contains(&prefix)
        && hex.len() == HEX
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("{prefix}{hex}"))
}

/// The prefix of an id (`vpc` of `vpc-...`).
pub fn prefix(id: &str) -> &str {
    id.split_once('-').map(|(p, _)| p).unwrap_or("")
}

/// Whether `id` is shaped as EC2's ids of `prefix`: the prefix, a dash and
/// 8 (older resources) or 17 hex digits. EC2 answers `.Malformed` for one
/// that is not.
pub fn well_formed(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|h| {
            (h.len() == 8 || h.len() == HEX) && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_have_8_or_17_hex_digits() {
        assert!(well_formed("sg", "sg-005216b55886f0fdc"));
        assert!(well_formed("sg", "sg-00000000"));
        assert!(!well_formed("sg", "foobar"));
        assert!(!well_formed("sg", "sg-12345"));
        assert!(!well_formed("sg", "vpc-00000000"));
        assert!(!well_formed("sg", "sg-0000000g"));
    }

    #[test]
    fn api_ids_and_logical_ids_map_both_ways() {
        let id = new_id("vpc");
        assert_eq!(id.len(), 4 + HEX);
        let l = logical(&id).unwrap();
        assert!(l.chars().all(|c| c.is_ascii_alphanumeric()), "{l}");
        assert_eq!(api_id(&l), Some(id.clone()));
        assert_eq!(physical("vpc", "d", "ec2-api", &l), id);
        assert_eq!(
            logical("subnet-0123456789abcdef").as_deref(),
            None,
            "16 digits"
        );
        assert_eq!(
            logical("subnet-0123456789abcdef0").as_deref(),
            Some("subnet0123456789abcdef0")
        );
        assert_eq!(logical("vpc-0123456789ABCDEF0"), None);
        assert_eq!(logical("foo-0123456789abcdef0"), None);
        assert_ne!(new_id("sg"), new_id("sg"));
        // rtbassoc is not rtb + "assoc...".
        assert_eq!(
            api_id("rtbassoc0123456789abcdef0").as_deref(),
            Some("rtbassoc-0123456789abcdef0")
        );
    }

    #[test]
    fn template_resources_get_stable_ids_of_their_kind() {
        let a = physical("subnet", "dep", "Network", "PrivateSubnet");
        assert_eq!(a, physical("subnet", "dep", "Network", "PrivateSubnet"));
        assert!(a.starts_with("subnet-") && a.len() == 7 + HEX);
        assert_ne!(a, physical("subnet", "other", "Network", "PrivateSubnet"));
        assert_ne!(a, physical("subnet", "dep", "App", "PrivateSubnet"));
        // A template id shaped as an API id of another kind is hashed.
        let l = "vpc0123456789abcdef0";
        assert_ne!(physical("sg", "d", "s", l), "vpc-0123456789abcdef0");
        assert!(physical("sg", "d", "s", l).starts_with("sg-"));
        assert_eq!(prefix("igw-1"), "igw");
    }
}
