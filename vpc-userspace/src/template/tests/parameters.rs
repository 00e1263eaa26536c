use serde_json::json;

use super::*;

fn with_params(params: &str) -> String {
    format!("Parameters:\n{params}Resources:\n  V: {{Type: AWS::EC2::VPC}}\n")
}

/// The error message for parameter `P` declared as `decl` given `value`.
fn refused(decl: &str, value: Option<&str>) -> String {
    let given: Vec<(&str, &str)> = value.iter().map(|v| ("P", *v)).collect();
    let e = inst(&with_params(&format!("  P: {decl}\n")), &given).unwrap_err();
    assert_eq!(e.path, "Parameters.P", "{e}");
    e.message
}

fn value(decl: &str, value: Option<&str>) -> Value {
    let given: Vec<(&str, &str)> = value.iter().map(|v| ("P", *v)).collect();
    inst(&with_params(&format!("  P: {decl}\n")), &given)
        .unwrap_or_else(|e| panic!("{e}"))
        .1
        .params["P"]
        .clone()
}

#[test]
fn types_make_strings_and_lists() {
    assert_eq!(value("{Type: Number, Default: 3}", None), "3");
    assert_eq!(value("{Type: String, Default: 3}", None), "3");
    assert_eq!(
        value("{Type: CommaDelimitedList, Default: 'a, b,c'}", None),
        json!(["a", "b", "c"])
    );
    assert_eq!(
        value("{Type: CommaDelimitedList, Default: [a, b]}", None),
        json!(["a", "b"])
    );
    assert_eq!(
        value("{Type: 'List<Number>', Default: '1,2.5'}", None),
        json!(["1", "2.5"])
    );
    assert_eq!(
        value("{Type: 'AWS::EC2::VPC::Id'}", Some("vpc-0123456789abcdef0")),
        "vpc-0123456789abcdef0"
    );
    assert_eq!(
        value(
            "{Type: 'List<AWS::EC2::Subnet::Id>'}",
            Some("subnet-12345678,subnet-0123456789abcdef0")
        ),
        json!(["subnet-12345678", "subnet-0123456789abcdef0"])
    );
    assert_eq!(
        value(
            "{Type: 'AWS::EC2::AvailabilityZone::Name', Default: us-east-1b}",
            None
        ),
        "us-east-1b"
    );
    assert_eq!(
        value("{Type: 'AWS::EC2::KeyPair::KeyName', Default: mine}", None),
        "mine"
    );
}

#[test]
fn type_errors() {
    assert_eq!(
        refused("{Type: Number}", Some("three")),
        "Parameter 'P' must be a number."
    );
    assert_eq!(
        refused("{Type: 'List<Number>', Default: '1,x'}", None),
        "Parameter 'P' must be a number."
    );
    assert!(refused("{Type: 'AWS::EC2::VPC::Id'}", Some("MyVpc")).contains("Parameter validation failed: parameter value MyVpc for parameter name P does not exist"));
    assert!(refused(
        "{Type: 'AWS::EC2::AvailabilityZone::Name'}",
        Some("us-east-1z")
    )
    .contains("does not exist"));
    let e = inst(&with_params("  P: {Type: Strng}\n"), &[]).unwrap_err();
    assert_eq!(e.path, "Parameters.P.Type");
    assert_eq!(
        e.message,
        "Template format error: Unrecognized parameter type: Strng"
    );
    let e = inst(&with_params("  P: {Default: x}\n"), &[]).unwrap_err();
    assert!(e.message.contains("must contain a Type member"), "{e}");
    let e = inst(&with_params("  P: {Type: String, Defalt: x}\n"), &[]).unwrap_err();
    assert_eq!(e.path, "Parameters.P.Defalt");
    assert_eq!(
        refused("{Type: String}", None),
        "Parameters: [P] must have values (no Default: give one with --parameter P=VALUE)"
    );
    let e = inst(
        &with_params("  P: {Type: String, Default: x}\n"),
        &[("Q", "1")],
    )
    .unwrap_err();
    assert_eq!(e.path, "Parameters.Q");
    assert_eq!(e.message, "Parameters: [Q] do not exist in the template");
}

#[test]
fn constraints_with_cloudformations_messages() {
    let d = "{Type: String, AllowedValues: [a, b]}";
    assert_eq!(
        refused(d, Some("c")),
        "Parameter 'P' must be one of AllowedValues"
    );
    assert_eq!(value(d, Some("b")), "b");
    // The pattern matches the whole value.
    let d = "{Type: String, AllowedPattern: '[a-z]+'}";
    assert_eq!(
        refused(d, Some("abc1")),
        "Parameter 'P' must match pattern [a-z]+"
    );
    assert_eq!(value(d, Some("abc")), "abc");
    let d = "{Type: String, MinLength: 3, MaxLength: 5}";
    assert_eq!(
        refused(d, Some("ab")),
        "Parameter 'P' must contain at least 3 characters"
    );
    assert_eq!(
        refused(d, Some("abcdef")),
        "Parameter 'P' must contain at most 5 characters"
    );
    let d = "{Type: Number, MinValue: 1, MaxValue: 10.5}";
    assert_eq!(
        refused(d, Some("0")),
        "Parameter 'P' must be a number not less than 1"
    );
    assert_eq!(
        refused(d, Some("11")),
        "Parameter 'P' must be a number not greater than 10.5"
    );
    assert_eq!(value(d, Some("10.5")), "10.5");
    assert_eq!(
        refused(
            "{Type: String, AllowedPattern: '[0-9]+', ConstraintDescription: digits only}",
            Some("x")
        ),
        "Parameter 'P' failed to satisfy constraint: digits only"
    );
    // Each element of a list.
    let d = "{Type: CommaDelimitedList, AllowedValues: [a, b]}";
    assert_eq!(value(d, Some("a,b,a")), json!(["a", "b", "a"]));
    assert_eq!(
        refused(d, Some("a,c")),
        "Parameter 'P' must be one of AllowedValues"
    );
    let e = inst(
        &with_params("  P: {Type: String, Default: x, AllowedPattern: '(a'}\n"),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.path, "Parameters.P.AllowedPattern");
}

#[test]
fn no_echo_is_masked() {
    let (_, env) = inst(
        &with_params("  P: {Type: String, NoEcho: true, Default: secret}\n  Q: {Type: String, Default: shown}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(env.params["P"], "secret");
    let shown: Vec<_> = env
        .parameters
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str(), p.no_echo))
        .collect();
    assert_eq!(shown, [("P", "****", true), ("Q", "shown", false)]);
}

#[test]
fn ssm_parameter_types_resolve_from_the_store() {
    let ami = "  P: {Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64}\n";
    let (_, env) = inst(&with_params(ami), &[]).unwrap();
    let id = env.params["P"].as_str().unwrap().to_string();
    assert!(id.starts_with("ami-") && id.len() == 21, "{id}");
    assert_eq!(
        env.parameters[0].value,
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    );
    assert_eq!(
        env.parameters[0].resolved_value.as_deref(),
        Some(id.as_str())
    );

    let mut ctx = Context::new("stack");
    let put = |ctx: &mut Context, name: &str, kind: &str, value: &str| {
        ctx.ssm.insert(
            name.into(),
            crate::ssm::Parameter {
                kind: kind.into(),
                value: value.into(),
                version: 1,
                last_modified_date: 0,
            },
        );
    };
    put(&mut ctx, "/app/cidr", "String", "10.7.0.0/16");
    put(&mut ctx, "/app/azs", "StringList", "us-east-1a,us-east-1b");
    put(&mut ctx, "/app/secret", "SecureString", "x");
    put(&mut ctx, "/app/badami", "String", "nope");
    let t = with_params(
        "  Cidr: {Type: 'AWS::SSM::Parameter::Value<String>', Default: /app/cidr}\n  Azs: {Type: 'AWS::SSM::Parameter::Value<List<String>>', Default: /app/azs}\n",
    );
    let (_, env) = inst_in(&t, &[], ctx.clone()).unwrap();
    assert_eq!(env.params["Cidr"], "10.7.0.0/16");
    assert_eq!(env.params["Azs"], json!(["us-east-1a", "us-east-1b"]));
    let e = inst_in(&t, &[("Cidr", "/app/none")], ctx.clone()).unwrap_err();
    assert_eq!(e.path, "Parameters.Cidr");
    assert!(
        e.message.starts_with(
            "Unable to fetch parameters [/app/none] from parameter store for this account."
        ),
        "{e}"
    );
    let e = inst_in(&t, &[("Cidr", "/app/secret")], ctx.clone()).unwrap_err();
    assert!(
        e.message
            .contains("have types not supported by CloudFormation"),
        "{e}"
    );
    let e = inst_in(
        &with_params(&ami.replace(
            "Default: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "Default: /app/badami",
        )),
        &[],
        ctx,
    )
    .unwrap_err();
    assert!(e.message.contains("parameter value nope"), "{e}");
}
