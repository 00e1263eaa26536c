//! AWS managed policies this project knows, by ARN, with their documents
//! as AWS publishes them (the AWS Managed Policy Reference, the default
//! version of each; the files under `managed/`). Any other
//! `arn:aws:iam::aws:policy/...` is unknown here: attaching it is
//! `NoSuchEntity`, as for a policy that does not exist.
use super::store::ManagedPolicy;

/// (ARN, default version, document).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
        "v3",
        include_str!("managed/AWSLambdaVPCAccessExecutionRole.json"),
    ),
    (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "v1",
        include_str!("managed/AWSLambdaBasicExecutionRole.json"),
    ),
    (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaENIManagementAccess",
        "v2",
        include_str!("managed/AWSLambdaENIManagementAccess.json"),
    ),
    (
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "v1",
        include_str!("managed/AdministratorAccess.json"),
    ),
    (
        "arn:aws:iam::aws:policy/AWSDenyAll",
        "v2",
        include_str!("managed/AWSDenyAll.json"),
    ),
];

/// The AWS managed policy `arn` (any partition's spelling: `arn:aws-cn:`
/// reads as `arn:aws:`), if it is one this project knows.
pub fn policy(arn: &str) -> Option<ManagedPolicy> {
    let rest = arn.strip_prefix("arn:")?.split_once(':')?.1;
    let canonical = format!("arn:aws:{rest}");
    let (a, _, doc) = KNOWN.iter().find(|(a, _, _)| *a == canonical)?;
    let (path, name) = a
        .strip_prefix("arn:aws:iam::aws:policy")
        .and_then(|p| p.rsplit_once('/'))
        .map(|(p, n)| (format!("{p}/"), n.to_string()))?;
    Some(ManagedPolicy {
        name: name.clone(),
        path,
        arn: arn.to_string(),
        id: format!("ANPA{:016X}", crate::model::fnv1a(a)),
        document: doc.to_string(),
        created_ms: 0,
        stack: None,
    })
}

/// The default version of an AWS managed policy (`v1` for the account's).
pub fn default_version(arn: &str) -> &'static str {
    KNOWN
        .iter()
        .find(|(a, _, _)| *a == arn)
        .map_or("v1", |(_, v, _)| v)
}

/// Is `arn` an AWS managed policy's (`arn:aws:iam::aws:policy/...`)?
pub fn is_aws(arn: &str) -> bool {
    arn.split(':').nth(4) == Some("aws")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::policy::{Kind, Policy};

    #[test]
    fn every_known_document_parses_and_the_vpc_one_allows_enis() {
        for (arn, _, _) in KNOWN {
            let p = policy(arn).unwrap();
            Policy::parse_text(&p.document, Kind::Identity).unwrap();
        }
        let p =
            policy("arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole").unwrap();
        assert_eq!(p.name, "AWSLambdaVPCAccessExecutionRole");
        assert_eq!(p.path, "/service-role/");
        assert!(p.document.contains("ec2:CreateNetworkInterface"));
        assert!(policy("arn:aws:iam::aws:policy/Nope").is_none());
        assert!(is_aws(&p.arn));
        assert!(!is_aws("arn:aws:iam::123456789012:policy/x"));
    }
}
