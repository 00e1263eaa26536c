//! Evaluation against AWS's documented examples (the IAM User Guide's
//! condition operators, single- and multivalued keys, evaluation logic;
//! the Lambda Developer Guide's VPC condition keys).
use serde_json::json;

use super::*;

fn policy(v: Value) -> Policy {
    Policy::parse(&v, Kind::Identity).unwrap()
}

fn req(action: &str, resource: &str, ctx: &[(&str, &[&str])]) -> Request {
    let mut c = Context::new();
    for (k, v) in ctx {
        c.set(k, v.iter().map(|s| s.to_string()).collect());
    }
    Request {
        action: action.into(),
        resource: resource.into(),
        context: c,
    }
}

const F: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

fn create(ctx: &[(&str, &[&str])]) -> Request {
    req("lambda:CreateFunction", F, ctx)
}

#[test]
fn globs_and_arns() {
    assert!(glob("lambda:*", "lambda:CreateFunction", true));
    assert!(glob("LAMBDA:create*", "lambda:CreateFunction", true));
    assert!(glob(
        "ec2:*NetworkInterface",
        "ec2:DeleteNetworkInterface",
        true
    ));
    assert!(!glob(
        "ec2:*NetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        true
    ));
    assert!(glob("sg-0?", "sg-01", false));
    assert!(!glob("sg-0?", "sg-012", false));
    assert!(!glob("Sg-*", "sg-1", false));
    // Each ARN field on its own; `*` alone is any ARN.
    assert!(arn_like("arn:aws:lambda:*:123456789012:function:*", F));
    assert!(arn_like("*", F));
    assert!(!arn_like("arn:aws:lambda:*:210987654321:function:*", F));
    assert!(arn_like(
        "arn:aws:lambda:us-east-1:123456789012:function:f*",
        "arn:aws:lambda:us-east-1:123456789012:function:f:1"
    ));
    // The documented ArnLike example.
    assert!(arn_like(
        "arn:aws:cloudtrail:*:111122223333:trail/*",
        "arn:aws:cloudtrail:us-east-2:111122223333:trail/management"
    ));
}

#[test]
fn an_explicit_deny_wins_and_nothing_allowed_is_denied() {
    let allow = policy(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}}),
    );
    let deny = policy(
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "lambda:CreateFunction", "Resource": F}]}),
    );
    let r = create(&[]);
    assert_eq!(evaluate([&allow], &r), Decision::Allow);
    assert_eq!(evaluate([&allow, &deny], &r), Decision::ExplicitDeny);
    assert_eq!(evaluate([&deny, &allow], &r), Decision::ExplicitDeny);
    assert_eq!(evaluate([], &r), Decision::ImplicitDeny);
    let other = req("s3:GetObject", "arn:aws:s3:::b/k", &[]);
    assert_eq!(evaluate([&allow], &other), Decision::ImplicitDeny);
}

#[test]
fn not_action_and_not_resource() {
    // The IAM guide's NotAction example: everything but IAM.
    let p = policy(
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}}),
    );
    assert_eq!(p.decide(&create(&[])), Decision::Allow);
    assert_eq!(
        p.decide(&req(
            "iam:CreateUser",
            "arn:aws:iam::123456789012:user/u",
            &[]
        )),
        Decision::ImplicitDeny
    );
    let p = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "lambda:*", "NotResource": "arn:aws:lambda:*:*:function:dev-*"}}),
    );
    assert_eq!(p.decide(&create(&[])), Decision::ExplicitDeny);
    assert_eq!(
        p.decide(&req(
            "lambda:CreateFunction",
            "arn:aws:lambda:us-east-1:123456789012:function:dev-x",
            &[]
        )),
        Decision::ImplicitDeny
    );
}

#[test]
fn several_values_are_or_and_several_keys_and_operators_are_and() {
    let p = policy(
        json!({"Statement": {"Effect": "Allow", "Action": "lambda:*", "Resource": "*",
        "Condition": {"StringEquals": {"lambda:VpcIds": ["vpc-1", "vpc-2"], "aws:RequestedRegion": "us-east-1"},
                      "StringLike": {"aws:PrincipalTag/team": "net*"}}}}),
    );
    let ok = create(&[
        ("lambda:VpcIds", &["vpc-2"]),
        ("aws:RequestedRegion", &["us-east-1"]),
        ("aws:PrincipalTag/team", &["network"]),
    ]);
    assert_eq!(p.decide(&ok), Decision::Allow);
    let mut other = ok.clone();
    other
        .context
        .set("aws:RequestedRegion", vec!["eu-west-1".into()]);
    assert_eq!(p.decide(&other), Decision::ImplicitDeny);
    // Keys are case-insensitive, values case-sensitive.
    let mut upper = ok.clone();
    upper.context.set("LAMBDA:VPCIDS", vec!["VPC-2".into()]);
    assert_eq!(p.decide(&upper), Decision::ImplicitDeny);
    upper.context.set("LAMBDA:VPCIDS", vec!["vpc-2".into()]);
    assert_eq!(p.decide(&upper), Decision::Allow);
}

#[test]
fn an_absent_key_is_false_except_for_negated_operators_if_exists_and_null() {
    let cond = |c: Value| {
        policy(json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": c}}))
            .decide(&create(&[]))
    };
    assert_eq!(
        cond(json!({"StringEquals": {"lambda:VpcIds": "vpc-1"}})),
        Decision::ImplicitDeny
    );
    assert_eq!(
        cond(json!({"StringNotEquals": {"lambda:VpcIds": "vpc-1"}})),
        Decision::Allow
    );
    assert_eq!(
        cond(json!({"ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::*"}})),
        Decision::Allow
    );
    assert_eq!(
        cond(json!({"StringEqualsIfExists": {"lambda:VpcIds": "vpc-1"}})),
        Decision::Allow
    );
    assert_eq!(
        cond(json!({"Null": {"lambda:VpcIds": "true"}})),
        Decision::Allow
    );
    assert_eq!(
        cond(json!({"Null": {"lambda:VpcIds": "false"}})),
        Decision::ImplicitDeny
    );
    // IfExists with the key present: the operator decides.
    let p = policy(
        json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
        "Condition": {"StringEqualsIfExists": {"lambda:VpcIds": "vpc-1"}}}}),
    );
    assert_eq!(
        p.decide(&create(&[("lambda:VpcIds", &["vpc-2"])])),
        Decision::ImplicitDeny
    );
}

#[test]
fn negated_operators_with_several_values_are_nor() {
    // "StringNotEquals" with two values: the request's value is neither.
    let p = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"StringNotEquals": {"lambda:VpcIds": ["vpc-1", "vpc-2"]}}}}),
    );
    assert_eq!(
        p.decide(&create(&[("lambda:VpcIds", &["vpc-1"])])),
        Decision::ImplicitDeny
    );
    assert_eq!(
        p.decide(&create(&[("lambda:VpcIds", &["vpc-3"])])),
        Decision::ExplicitDeny
    );
}

/// The Lambda guide's `EnforceStayInSpecificSubnets` (Allow with
/// `ForAllValues:StringEquals`), and the pitfall the IAM guide documents:
/// `ForAllValues` holds when the key is absent, so a function with no VPC
/// at all passes it, unless `Null` requires the key.
#[test]
fn for_all_values_holds_for_an_absent_key_unless_null_requires_it() {
    let subnets =
        json!({"ForAllValues:StringEquals": {"lambda:SubnetIds": ["subnet-1", "subnet-2"]}});
    let p = policy(
        json!({"Statement": {"Sid": "EnforceStayInSpecificSubnets", "Effect": "Allow",
        "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"], "Resource": "*",
        "Condition": subnets}}),
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SubnetIds", &["subnet-1"])])),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SubnetIds", &["subnet-1", "subnet-2"])])),
        Decision::Allow
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SubnetIds", &["subnet-1", "subnet-3"])])),
        Decision::ImplicitDeny
    );
    // The pitfall: absent, or empty, is "all of none".
    assert_eq!(p.decide(&create(&[])), Decision::Allow);
    assert_eq!(
        p.decide(&create(&[("lambda:SubnetIds", &[])])),
        Decision::Allow
    );
    let with_null = policy(json!({"Statement": {"Effect": "Allow",
        "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"], "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"lambda:SubnetIds": ["subnet-1", "subnet-2"]},
                      "Null": {"lambda:SubnetIds": "false"}}}}));
    assert_eq!(with_null.decide(&create(&[])), Decision::ImplicitDeny);
    assert_eq!(
        with_null.decide(&create(&[("lambda:SubnetIds", &["subnet-2"])])),
        Decision::Allow
    );
}

/// `ForAnyValue`: one value is enough, an absent key never is (the Lambda
/// guide's `DenySpecificSubnet`); the negated forms per value.
#[test]
fn for_any_value_and_negated_set_operators() {
    let deny = policy(
        json!({"Statement": {"Sid": "DenySpecificSubnet", "Effect": "Deny",
        "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"], "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"lambda:SubnetIds": ["subnet-1", "subnet-2"]}}}}),
    );
    assert_eq!(
        deny.decide(&create(&[("lambda:SubnetIds", &["subnet-9", "subnet-2"])])),
        Decision::ExplicitDeny
    );
    assert_eq!(
        deny.decide(&create(&[("lambda:SubnetIds", &["subnet-9"])])),
        Decision::ImplicitDeny
    );
    assert_eq!(deny.decide(&create(&[])), Decision::ImplicitDeny);
    // ForAllValues:StringNotEquals: no value of the request is listed.
    let p = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"ForAllValues:StringNotEquals": {"lambda:SecurityGroupIds": ["sg-1"]}}}}),
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SecurityGroupIds", &["sg-2", "sg-3"])])),
        Decision::ExplicitDeny
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SecurityGroupIds", &["sg-2", "sg-1"])])),
        Decision::ImplicitDeny
    );
    // ForAnyValue:StringNotLike: one value unlisted.
    let p = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"ForAnyValue:StringNotLike": {"lambda:SecurityGroupIds": ["sg-0*"]}}}}),
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SecurityGroupIds", &["sg-01", "sg-12"])])),
        Decision::ExplicitDeny
    );
    assert_eq!(
        p.decide(&create(&[("lambda:SecurityGroupIds", &["sg-01"])])),
        Decision::ImplicitDeny
    );
    assert_eq!(p.decide(&create(&[])), Decision::ImplicitDeny);
}

/// The Lambda guide's `EnforceVPCFunction`: deny functions outside a VPC.
#[test]
fn the_lambda_guides_vpc_examples() {
    let enforce = policy(
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "EnforceVPCFunction",
        "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"], "Effect": "Deny",
        "Resource": "*", "Condition": {"Null": {"lambda:VpcIds": "true"}}}]}),
    );
    assert_eq!(enforce.decide(&create(&[])), Decision::ExplicitDeny);
    assert_eq!(
        enforce.decide(&create(&[("lambda:VpcIds", &["vpc-1"])])),
        Decision::ImplicitDeny
    );
    let deny_vpc = policy(
        json!({"Statement": [{"Sid": "DenySpecificVPC", "Effect": "Deny",
        "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration"], "Resource": "*",
        "Condition": {"StringEquals": {"lambda:VpcIds": ["vpc-1"]}}}]}),
    );
    let allow_all =
        policy(json!({"Statement": {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}}));
    let r = create(&[("lambda:VpcIds", &["vpc-1"])]);
    assert_eq!(
        evaluate([&allow_all, &deny_vpc], &r),
        Decision::ExplicitDeny
    );
    let r = create(&[("lambda:VpcIds", &["vpc-2"])]);
    assert_eq!(evaluate([&allow_all, &deny_vpc], &r), Decision::Allow);
}

#[test]
fn other_operators() {
    let holds = |c: Value, ctx: &[(&str, &[&str])]| {
        policy(json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": c}}))
            .decide(&create(ctx))
            == Decision::Allow
    };
    // The guide's MFA example, as an allow: BoolIfExists.
    assert!(holds(
        json!({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}),
        &[]
    ));
    assert!(holds(
        json!({"Bool": {"aws:SecureTransport": true}}),
        &[("aws:SecureTransport", &["true"])]
    ));
    assert!(!holds(
        json!({"Bool": {"aws:SecureTransport": "true"}}),
        &[("aws:SecureTransport", &["false"])]
    ));
    assert!(holds(
        json!({"NumericLessThanEquals": {"s3:max-keys": "10"}}),
        &[("s3:max-keys", &["10"])]
    ));
    assert!(!holds(
        json!({"NumericLessThan": {"s3:max-keys": 10}}),
        &[("s3:max-keys", &["10"])]
    ));
    assert!(holds(
        json!({"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"}}),
        &[("aws:CurrentTime", &["2026-12-06T00:00:00Z"])]
    ));
    assert!(!holds(
        json!({"DateLessThan": {"aws:CurrentTime": "2020-04-01"}}),
        &[("aws:CurrentTime", &["2026-12-06T00:00:00Z"])]
    ));
    assert!(holds(
        json!({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32"]}}),
        &[("aws:SourceIp", &["2001:db8::1"])]
    ));
    assert!(holds(
        json!({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
        &[("aws:SourceIp", &["198.51.100.1"])]
    ));
    assert!(holds(
        json!({"StringEqualsIgnoreCase": {"aws:PrincipalTag/x": "ABC"}}),
        &[("aws:PrincipalTag/x", &["abc"])]
    ));
    assert!(holds(
        json!({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:123456789012:t"}}),
        &[("aws:SourceArn", &["arn:aws:sns:us-east-1:123456789012:t"])]
    ));
    assert!(!holds(
        json!({"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:t"}}),
        &[("aws:SourceArn", &["arn:aws:sns:us-east-1:210987654321:t"])]
    ));
}

#[test]
fn malformed_documents_are_refused_in_iams_words() {
    let err = |v: Value| Policy::parse(&v, Kind::Identity).unwrap_err();
    assert_eq!(
        Policy::parse_text("{not json", Kind::Identity).unwrap_err(),
        "Syntax errors in policy."
    );
    assert_eq!(
        err(json!({"Statement": {"Effect": "Allow", "Resource": "*"}})),
        "Policy statement must contain actions."
    );
    assert_eq!(
        err(json!({"Statement": {"Effect": "Allow", "Action": "s3:*"}})),
        "Policy statement must contain resources."
    );
    assert_eq!(
        err(json!({"Statement": {"Effect": "Allow", "Action": "CreateFunction", "Resource": "*"}})),
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}})
        ),
        "Policy document should not specify a principal."
    );
    assert_eq!(
        err(json!({"Statement": {"Effect": "Permit", "Action": "s3:*", "Resource": "*"}})),
        "Invalid effect: Permit"
    );
    assert_eq!(
        err(
            json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringSorta": {"a:b": "c"}}}})
        ),
        "Invalid Condition type : StringSorta"
    );
    // A trust policy names a principal and needs no resource.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    assert!(Policy::parse(&trust, Kind::Trust).is_ok());
    // Text or value, as CloudFormation takes either.
    assert!(Policy::parse(&Value::String(trust.to_string()), Kind::Trust).is_ok());
}

/// "If the * wildcard is the last character of a resource ARN segment, it
/// can expand to match beyond colon boundaries."
#[test]
fn a_trailing_wildcard_matches_across_colons() {
    assert!(arn_like("arn:aws:lambda:*", F));
    assert!(arn_like("arn:aws:lambda:us-east-1:1234*", F));
    assert!(arn_like("arn:*", F));
    assert!(!arn_like("arn:aws:ec2:*", F));
    // Without a trailing `*`, fewer fields are an exact ARN.
    assert!(!arn_like("arn:aws:lambda:us-east-1", F));
    let allow_all =
        policy(json!({"Statement": {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}}));
    let deny = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "lambda:*", "Resource": "arn:aws:lambda:*"}}),
    );
    assert_eq!(
        evaluate([&allow_all, &deny], &create(&[])),
        Decision::ExplicitDeny
    );
    // ArnLike in a condition reads the ARN the same way.
    let p = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*"}}}}),
    );
    assert_eq!(
        p.decide(&create(&[("aws:SourceArn", &[F])])),
        Decision::ExplicitDeny
    );
}

/// `ForAnyValue:...IfExists` with the key absent: "If the key is not
/// present, evaluate the condition element as true."
#[test]
fn for_any_value_if_exists_holds_for_an_absent_key() {
    let deny = policy(
        json!({"Statement": {"Effect": "Deny", "Action": "lambda:CreateFunction", "Resource": "*",
        "Condition": {"ForAnyValue:StringNotEqualsIfExists": {"lambda:SubnetIds": ["subnet-1"]}}}}),
    );
    // A function without VpcConfig: no lambda:SubnetIds.
    assert_eq!(deny.decide(&create(&[])), Decision::ExplicitDeny);
    assert_eq!(
        deny.decide(&create(&[("lambda:SubnetIds", &["subnet-1"])])),
        Decision::ImplicitDeny
    );
    assert_eq!(
        deny.decide(&create(&[("lambda:SubnetIds", &["subnet-2"])])),
        Decision::ExplicitDeny
    );
}

fn trust(statements: Value) -> Policy {
    Policy::parse(&json!({"Statement": statements}), Kind::Trust).unwrap()
}

#[test]
fn trust_policies_read_lists_and_not_principal() {
    const L: &str = "lambda.amazonaws.com";
    let allow = |p: Value| json!({"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"});
    assert!(trust(json!([allow(json!({"AWS": ["*"]}))])).trusts_service(L));
    assert!(trust(json!([allow(json!({"AWS": "*"}))])).trusts_service(L));
    assert!(trust(json!([allow(json!({"Service": [L, "ec2.amazonaws.com"]}))])).trusts_service(L));
    assert!(!trust(json!([allow(json!({"Service": ["ec2.amazonaws.com"]}))])).trusts_service(L));
    // NotPrincipal: everyone but those named.
    let deny_others =
        json!({"Effect": "Deny", "NotPrincipal": {"Service": L}, "Action": "sts:AssumeRole"});
    let deny_lambda = json!({"Effect": "Deny", "NotPrincipal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    let any = allow(json!("*"));
    assert!(trust(json!([any.clone(), deny_others])).trusts_service(L));
    assert!(!trust(json!([any, deny_lambda])).trusts_service(L));
    let allow_not = |s: &str| json!({"Effect": "Allow", "NotPrincipal": {"Service": s}, "Action": "sts:AssumeRole"});
    assert!(!trust(json!([allow_not(L)])).trusts_service(L));
    assert!(trust(json!([allow_not("ec2.amazonaws.com")])).trusts_service(L));
    assert!(Policy::parse(
        &json!({"Statement": {"Effect": "Allow", "Principal": "*", "NotPrincipal": {"Service": L}, "Action": "sts:AssumeRole"}}),
        Kind::Trust
    )
    .is_err());
}
