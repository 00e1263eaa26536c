//! The local SSM Parameter Store: what CloudFormation's
//! `AWS::SSM::Parameter::Value<...>` parameter types resolve from. One
//! store for the machine, as an account and region have one: a JSON file,
//! `/var/lib/vpc/ssm-parameters.json` (or `$VPC_PARAMETER_STORE`), written
//! by `vpc ssm put-parameter` and read by `vpc up` / `vpc apply`. A name it
//! does not hold falls back to a documented value for the public
//! parameters CDK and AWS's examples use ([`fallback`]).
use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

pub mod api;

/// The default store (the machine's; survives deployments, as an
/// account's parameters survive its stacks).
pub const DEFAULT_PATH: &str = "/var/lib/vpc/ssm-parameters.json";

/// The version CDK's bootstrap parameter falls back to: its
/// `CheckBootstrapVersion` rule refuses versions 1-5 only.
pub const CDK_BOOTSTRAP_VERSION: &str = "30";

/// One parameter, as `GetParameter` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// `String`, `StringList` or `SecureString`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub value: String,
    pub version: u64,
    /// Seconds since the epoch.
    #[serde(default)]
    pub last_modified_date: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    parameters: BTreeMap<String, Parameter>,
}

/// The store's path: `$VPC_PARAMETER_STORE`, else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os("VPC_PARAMETER_STORE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

fn read(path: &Path) -> Result<File> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Every parameter of the store at `path` (none when it does not exist).
pub fn load(path: &Path) -> Result<BTreeMap<String, Parameter>> {
    Ok(read(path)?.parameters)
}

/// Changes the store under an exclusive lock (a sidecar `.lock` file), then
/// replaces it whole (a temporary file renamed over it).
fn change<T>(path: &Path, f: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", lock_path.display()))?;
    let mut file = read(path)?;
    let out = f(&mut file)?;
    let tmp = path.with_extension("tmp");
    let mut w = std::fs::File::create(&tmp)?;
    w.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    w.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(out)
}

/// SSM's rules for a name: 1-2048 characters of `a-zA-Z0-9_.-/`, a
/// hierarchy starting with `/`, at most 15 levels, no `aws`/`ssm` prefix.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 2048
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        bail!("ValidationException: Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_");
    }
    if name.contains('/') && !name.starts_with('/') {
        bail!("ValidationException: Parameter name must be a fully qualified name (a hierarchy starts with /)");
    }
    if name.matches('/').count() > 15 {
        bail!("HierarchyLevelLimitExceededException: a parameter name can have at most 15 levels");
    }
    let first = name.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        bail!("ValidationException: Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).");
    }
    Ok(())
}

/// `PutParameter`: the new version.
pub fn put(path: &Path, name: &str, value: &str, kind: &str, overwrite: bool) -> Result<u64> {
    check_name(name)?;
    if !["String", "StringList", "SecureString"].contains(&kind) {
        bail!("ValidationException: Type {kind:?}: String, StringList or SecureString");
    }
    if value.is_empty() {
        bail!("ValidationException: 1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1");
    }
    change(path, |f| {
        let version = match f.parameters.get(name) {
            Some(_) if !overwrite => bail!("ParameterAlreadyExists: The parameter already exists. To overwrite this value, set the overwrite option in the request to true."),
            Some(p) => p.version + 1,
            None => 1,
        };
        f.parameters.insert(
            name.to_string(),
            Parameter {
                kind: kind.to_string(),
                value: value.to_string(),
                version,
                last_modified_date: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            },
        );
        Ok(version)
    })
}

/// `DeleteParameter`.
pub fn delete(path: &Path, name: &str) -> Result<()> {
    change(path, |f| match f.parameters.remove(name) {
        Some(_) => Ok(()),
        None => bail!("ParameterNotFound: Parameter {name} not found."),
    })
}

/// A parameter of `stored`, else its fallback.
pub fn get(stored: &BTreeMap<String, Parameter>, name: &str) -> Option<Parameter> {
    stored.get(name).cloned().or_else(|| fallback(name))
}

/// A parameter as GetParameter and DescribeParameters show it. A public
/// parameter's ARN names no account, as AWS's do; a fallback (version 0,
/// not stored) shows version 1.
pub fn view(name: &str, p: &Parameter, region: &str, account: &str) -> serde_json::Value {
    let account = if name.starts_with("/aws/") {
        ""
    } else {
        account
    };
    serde_json::json!({
        "Name": name,
        "Type": p.kind,
        "Value": p.value,
        "Version": p.version.max(1),
        "LastModifiedDate": p.last_modified_date,
        "ARN": format!("arn:aws:ssm:{region}:{account}:parameter/{}", name.trim_start_matches('/')),
        "DataType": "text",
    })
}

/// Public parameters AWS publishes (`/aws/service/...`) and CDK's
/// bootstrap version, for a store that does not hold them: an AMI-shaped
/// id (`ami-` and 17 hex digits derived from the name, so stable) for the
/// AMI parameters, and [`CDK_BOOTSTRAP_VERSION`] for
/// `/cdk-bootstrap/<qualifier>/version`. Version 0: not stored.
pub fn fallback(name: &str) -> Option<Parameter> {
    const AMI_PREFIXES: &[&str] = &[
        "/aws/service/ami-amazon-linux-latest/",
        "/aws/service/ami-windows-latest/",
        "/aws/service/canonical/",
        "/aws/service/debian/",
        "/aws/service/suse/",
        "/aws/service/bottlerocket/",
        "/aws/service/ecs/optimized-ami/",
        "/aws/service/eks/optimized-ami/",
        "/aws/service/marketplace/",
    ];
    let value = if AMI_PREFIXES.iter().any(|p| name.starts_with(p)) {
        ami_id(name)
    } else if name.starts_with("/cdk-bootstrap/")
        && name.ends_with("/version")
        && name.matches('/').count() == 3
    {
        CDK_BOOTSTRAP_VERSION.to_string()
    } else {
        return None;
    };
    Some(Parameter {
        kind: "String".into(),
        value,
        version: 0,
        last_modified_date: 0,
    })
}

/// An AMI id for a public AMI parameter (stable for its name).
pub fn ami_id(name: &str) -> String {
    format!("ami-{:017x}", crate::template::fnv1a(name) >> 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_overwrite_delete() {
        let dir = std::env::temp_dir().join(format!("vpc-ssm-test-{}", std::process::id()));
        let path = dir.join("store.json");
        assert_eq!(
            put(&path, "/app/db", "10.0.1.10", "String", false).unwrap(),
            1
        );
        let e = put(&path, "/app/db", "x", "String", false).unwrap_err();
        assert!(e.to_string().contains("ParameterAlreadyExists"), "{e}");
        assert_eq!(
            put(&path, "/app/db", "10.0.1.11", "String", true).unwrap(),
            2
        );
        let all = load(&path).unwrap();
        assert_eq!(get(&all, "/app/db").unwrap().value, "10.0.1.11");
        delete(&path, "/app/db").unwrap();
        assert!(delete(&path, "/app/db")
            .unwrap_err()
            .to_string()
            .contains("ParameterNotFound"));
        assert!(put(&path, "app/db", "x", "String", false).is_err());
        assert!(put(&path, "/aws/x", "x", "String", false).is_err());
        assert!(put(&path, "/app/x", "x", "Integer", false).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fallbacks() {
        let none = BTreeMap::new();
        let ami = get(
            &none,
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        )
        .unwrap();
        assert!(
            ami.value.starts_with("ami-") && ami.value.len() == 21,
            "{ami:?}"
        );
        assert_eq!(
            get(&none, "/cdk-bootstrap/hnb659fds/version")
                .unwrap()
                .value,
            CDK_BOOTSTRAP_VERSION
        );
        assert!(get(&none, "/app/db").is_none());
    }
}
