//! What Lambda asks of IAM for VPC functions:
//!
//! * the execution role ([`check_execution_role`]): Lambda assumes it
//!   (its trust policy must let `lambda.amazonaws.com`), and with a
//!   `VpcConfig` it must allow `ec2:CreateNetworkInterface`,
//!   `ec2:DescribeNetworkInterfaces` and `ec2:DeleteNetworkInterface`,
//!   else CreateFunction / UpdateFunctionConfiguration answer
//!   `InvalidParameterValueException` ("The provided execution role does
//!   not have permissions to call CreateNetworkInterface on EC2");
//! * the caller ([`authorize`]): the IAM user whose access key signed the
//!   request, its identity policies evaluated for `lambda:CreateFunction`
//!   / `lambda:UpdateFunctionConfiguration` on the function's ARN with the
//!   condition keys `lambda:VpcIds`, `lambda:SubnetIds`,
//!   `lambda:SecurityGroupIds` ([`vpc_condition_keys`]).
//!
//! Decisions (docs/iam.md): a role ARN the deployment does not know
//! (declared nowhere, created by no IAM call) cannot be inspected and is
//! taken as allowed; an access key the deployment does not know (no
//! `AWS::IAM::AccessKey`, no CreateAccessKey) is the account's root, which
//! identity policies do not restrict.
use super::policy::{evaluate, Context, Decision, Kind, Policy, Request};
use super::store::{Iam, InvalidKey};
use crate::model::{FunctionVpc, Model};

/// The EC2 actions Lambda calls with the execution role for a VPC
/// function's network interfaces, in the order it needs them.
pub const ENI_ACTIONS: [&str; 3] = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
];

/// Lambda's message for a role that does not let it manage ENIs, naming
/// the first call it could not make (`CreateNetworkInterface`).
pub fn missing_eni_permission(action: &str) -> String {
    let call = action.trim_start_matches("ec2:");
    format!("The provided execution role does not have permissions to call {call} on EC2")
}

/// Lambda's message for a role it cannot assume.
pub const CANNOT_ASSUME: &str = "The role defined for the function cannot be assumed by Lambda.";

/// Checks the execution role `role` (an ARN) of a function in `region`
/// and `account` that has (`vpc`) or has not a `VpcConfig`: `Err` with
/// Lambda's message when the deployment knows the role and it does not
/// do. A role the deployment does not know is taken as allowed.
pub fn check_execution_role(
    iam: &Iam,
    role: Option<&str>,
    vpc: bool,
    region: &str,
    account: &str,
) -> Result<(), String> {
    let Some(r) = role.and_then(|a| iam.role_by_arn(a)) else {
        return Ok(());
    };
    // A trust policy that does not parse (a template role without
    // `AssumeRolePolicyDocument`) trusts no one.
    let trusted = Policy::parse_text(&r.assume_role_policy, Kind::Trust)
        .is_ok_and(|t| t.trusts_service("lambda.amazonaws.com"));
    if !trusted {
        return Err(CANNOT_ASSUME.into());
    }
    if !vpc {
        return Ok(());
    }
    let policies = iam.role_policies(r);
    for action in ENI_ACTIONS {
        // DescribeNetworkInterfaces "only works if it's allowed on all
        // resources" (the Lambda guide): it is asked on `*`.
        let resource = if action == "ec2:DescribeNetworkInterfaces" {
            "*".to_string()
        } else {
            format!("arn:aws:ec2:{region}:{account}:network-interface/*")
        };
        let req = Request {
            action: action.into(),
            resource,
            context: Context::new(),
        };
        if evaluate(&policies, &req) != Decision::Allow {
            return Err(missing_eni_permission(action));
        }
    }
    Ok(())
}

/// Does the deployment know role `arn`, and has it gone since? (A
/// function whose role is gone cannot have its ENIs deleted by Lambda.)
pub fn role_gone(iam: &Iam, arn: Option<&str>, known: bool) -> bool {
    known && arn.is_some_and(|a| iam.role_by_arn(a).is_none())
}

/// The condition keys of a function's VPC settings, with the ids as the
/// Lambda API reports them in `VpcConfig` (`SubnetIds`,
/// `SecurityGroupIds`, `VpcId`): the one place that says which ids the
/// keys carry. No `VpcConfig` (or an empty one): the keys are absent.
pub fn vpc_condition_keys(vc: Option<&FunctionVpc>) -> Context {
    let mut c = Context::new();
    if let Some(v) = vc {
        let shown = crate::lambda::lifecycle::vpc_config_json(Some(v));
        let list = |k: &str| -> Vec<String> {
            shown[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        c.set("lambda:SubnetIds", list("SubnetIds"));
        c.set("lambda:SecurityGroupIds", list("SecurityGroupIds"));
        if let Some(id) = shown["VpcId"].as_str() {
            c.set("lambda:VpcIds", vec![id.to_string()]);
        }
    }
    c
}

/// Why a caller may not do `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller's identity policies refuse it (403
    /// `AccessDeniedException`), in AWS's words.
    Policy(String),
    /// The request was signed with an access key that was deleted or is
    /// `Inactive` (403 `UnrecognizedClientException`).
    InvalidKey,
}

impl Denied {
    /// AWS's message.
    pub fn message(&self) -> String {
        match self {
            Denied::Policy(m) => m.clone(),
            Denied::InvalidKey => InvalidKey::MESSAGE.into(),
        }
    }
}

/// May the caller whose request was signed with `access_key` do `action`
/// (`lambda:CreateFunction`, `lambda:UpdateFunctionConfiguration`) on
/// function `function_arn` with the VPC settings `vc`? A key the
/// deployment never knew is the account's root: allowed; one deleted
/// through the IAM API, or `Inactive`, is refused.
pub fn authorize(
    m: &Model,
    access_key: Option<&str>,
    action: &str,
    function_arn: &str,
    vc: Option<&FunctionVpc>,
) -> Result<(), Denied> {
    check(m, access_key, action, function_arn, vpc_condition_keys(vc))
}

/// May the caller pass role `role` to Lambda (`iam:PassRole`, with
/// `iam:PassedToService` `lambda.amazonaws.com`), as CreateFunction and a
/// new `Role` in UpdateFunctionConfiguration need?
pub fn authorize_pass_role(m: &Model, access_key: Option<&str>, role: &str) -> Result<(), Denied> {
    let mut c = Context::new();
    c.set("iam:PassedToService", vec!["lambda.amazonaws.com".into()]);
    check(m, access_key, "iam:PassRole", role, c)
}

/// `action` on `resource` by the user of `access_key`, in `context`.
fn check(
    m: &Model,
    access_key: Option<&str>,
    action: &str,
    resource: &str,
    context: Context,
) -> Result<(), Denied> {
    let iam = Iam::of(m);
    let signer = match access_key.map(|k| iam.signer(k)) {
        Some(Err(InvalidKey)) => return Err(Denied::InvalidKey),
        Some(Ok(u)) => u,
        None => None,
    };
    let Some(user) = signer else {
        return Ok(());
    };
    let req = Request {
        action: action.into(),
        resource: resource.into(),
        context,
    };
    let why = match evaluate(&iam.user_policies(user), &req) {
        Decision::Allow => return Ok(()),
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        Decision::ImplicitDeny => {
            format!("because no identity-based policy allows the {action} action")
        }
    };
    Err(Denied::Policy(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        user.arn
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::store::{AccessKey, Principal, Role, User};

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const ARN: &str = "arn:aws:iam::123456789012:role/r";

    fn iam(role: Role) -> Iam {
        Iam {
            roles: vec![role],
            ..Default::default()
        }
    }

    fn role() -> Role {
        Role {
            principal: Principal {
                name: "r".into(),
                path: "/".into(),
                arn: ARN.into(),
                ..Default::default()
            },
            assume_role_policy: TRUST.into(),
        }
    }

    fn check(i: &Iam, vpc: bool) -> Result<(), String> {
        check_execution_role(i, Some(ARN), vpc, "us-east-1", "123456789012")
    }

    #[test]
    fn the_execution_role_must_allow_the_eni_calls() {
        let bare = iam(role());
        assert_eq!(
            check(&bare, true).unwrap_err(),
            "The provided execution role does not have permissions to call CreateNetworkInterface on EC2"
        );
        assert!(check(&bare, false).is_ok(), "no VpcConfig: no ENI calls");
        let mut managed = role();
        managed.attached =
            vec!["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole".into()];
        assert!(check(&iam(managed), true).is_ok());
        let mut basic = role();
        basic.attached =
            vec!["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".into()];
        assert!(check(&iam(basic), true).is_err());
        // Inline: Create only; then Describe is what is missing.
        let mut inline = role();
        inline.inline.insert(
            "p".into(),
            r#"{"Statement":{"Effect":"Allow","Action":"ec2:CreateNetworkInterface","Resource":"*"}}"#.into(),
        );
        assert_eq!(
            check(&iam(inline.clone()), true).unwrap_err(),
            "The provided execution role does not have permissions to call DescribeNetworkInterfaces on EC2"
        );
        inline.inline.insert(
            "q".into(),
            r#"{"Statement":{"Effect":"Allow","Action":["ec2:Describe*","ec2:DeleteNetworkInterface"],"Resource":"*"}}"#.into(),
        );
        assert!(check(&iam(inline.clone()), true).is_ok());
        // An explicit deny beside the managed policy.
        inline.inline.insert(
            "d".into(),
            r#"{"Statement":{"Effect":"Deny","Action":"ec2:*NetworkInterface","Resource":"*"}}"#
                .into(),
        );
        assert!(check(&iam(inline), true).is_err());
        // Unknown roles cannot be inspected: allowed.
        assert!(check_execution_role(
            &bare,
            Some("arn:aws:iam::123456789012:role/other"),
            true,
            "us-east-1",
            "123456789012"
        )
        .is_ok());
        // A role Lambda may not assume.
        let mut ec2 = role();
        ec2.assume_role_policy = TRUST.replace("lambda", "ec2");
        assert_eq!(check(&iam(ec2), false).unwrap_err(), CANNOT_ASSUME);
        // A trust policy that does not parse (a template role without one).
        let mut none = role();
        none.assume_role_policy = String::new();
        assert_eq!(check(&iam(none), false).unwrap_err(), CANNOT_ASSUME);
    }

    #[test]
    fn describe_network_interfaces_must_be_allowed_on_all_resources() {
        let mut r = role();
        r.inline.insert(
            "p".into(),
            r#"{"Statement":{"Effect":"Allow","Action":"ec2:*NetworkInterface*","Resource":"arn:aws:ec2:*:*:network-interface/*"}}"#.into(),
        );
        assert_eq!(
            check(&iam(r.clone()), true).unwrap_err(),
            "The provided execution role does not have permissions to call DescribeNetworkInterfaces on EC2"
        );
        r.inline.insert(
            "q".into(),
            r#"{"Statement":{"Effect":"Allow","Action":"ec2:DescribeNetworkInterfaces","Resource":"*"}}"#.into(),
        );
        assert!(check(&iam(r), true).is_ok());
    }

    #[test]
    fn the_callers_user_policies_decide_with_the_vpc_keys() {
        let mut m = crate::model::Model::default();
        let user = |policy: &str| User {
            principal: Principal {
                name: "dev".into(),
                arn: "arn:aws:iam::123456789012:user/dev".into(),
                inline: [("p".to_string(), policy.to_string())].into(),
                ..Default::default()
            },
            ..Default::default()
        };
        m.iam.access_keys.push(AccessKey {
            id: "AKIAEXAMPLE".into(),
            user: "dev".into(),
            status: "Active".into(),
            ..Default::default()
        });
        m.iam.users.push(user(
            r#"{"Statement":[{"Effect":"Allow","Action":"lambda:CreateFunction","Resource":"*",
               "Condition":{"ForAllValues:StringEquals":{"lambda:SubnetIds":["A","B"]},"Null":{"lambda:SubnetIds":"false"}}},
              {"Effect":"Deny","Action":"lambda:*","Resource":"*","Condition":{"StringEquals":{"lambda:VpcIds":"Other"}}}]}"#,
        ));
        let vc = |vpc: &str, subnets: &[&str]| FunctionVpc {
            vpc: vpc.into(),
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            groups: vec!["Sg".into()],
            ipv6_allowed_for_dual_stack: false,
        };
        let f = "arn:aws:lambda:us-east-1:123456789012:function:f";
        let a = |key: Option<&str>, v: Option<&FunctionVpc>| {
            authorize(&m, key, "lambda:CreateFunction", f, v)
        };
        assert!(a(Some("AKIAEXAMPLE"), Some(&vc("Vpc", &["A"]))).is_ok());
        assert_eq!(
            a(Some("AKIAEXAMPLE"), Some(&vc("Vpc", &["A", "C"]))).unwrap_err().message(),
            format!("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: lambda:CreateFunction on resource: {f} because no identity-based policy allows the lambda:CreateFunction action")
        );
        // No VpcConfig: the Null check refuses what ForAllValues alone would allow.
        assert!(a(Some("AKIAEXAMPLE"), None).is_err());
        assert_eq!(
            a(Some("AKIAEXAMPLE"), Some(&vc("Other", &["A"]))).unwrap_err().message(),
            format!("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: lambda:CreateFunction on resource: {f} with an explicit deny in an identity-based policy")
        );
        // Unknown keys are the root.
        assert!(a(Some("AKIDUNKNOWN"), Some(&vc("Other", &["C"]))).is_ok());
        assert!(a(None, None).is_ok());
        // Passing a role needs iam:PassRole, which this user lacks.
        let role = "arn:aws:iam::123456789012:role/r";
        assert_eq!(
            authorize_pass_role(&m, Some("AKIAEXAMPLE"), role).unwrap_err().message(),
            format!("User: arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:PassRole on resource: {role} because no identity-based policy allows the iam:PassRole action")
        );
        m.iam.users[0].inline.insert(
            "pass".into(),
            r#"{"Statement":{"Effect":"Allow","Action":"iam:PassRole","Resource":"*","Condition":{"StringEquals":{"iam:PassedToService":"lambda.amazonaws.com"}}}}"#.into(),
        );
        assert!(authorize_pass_role(&m, Some("AKIAEXAMPLE"), role).is_ok());
        assert!(authorize_pass_role(&m, Some("AKIDUNKNOWN"), role).is_ok());
        // An inactive key, and a deleted one, are refused, not the root's.
        m.iam.access_keys[0].status = "Inactive".into();
        let ok = Some(vc("Vpc", &["A"]));
        let a = |m: &Model, key| authorize(m, Some(key), "lambda:CreateFunction", f, ok.as_ref());
        assert_eq!(a(&m, "AKIAEXAMPLE"), Err(Denied::InvalidKey));
        m.iam.access_keys.clear();
        assert!(a(&m, "AKIAEXAMPLE").is_ok(), "unknown: the root");
        m.iam.deleted_access_keys.push("AKIAEXAMPLE".into());
        assert_eq!(a(&m, "AKIAEXAMPLE"), Err(Denied::InvalidKey));
    }
}
