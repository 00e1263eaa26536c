use super::*;

/// CDK's bootstrap-version parameter and rule, as `cdk synth` writes them.
pub(crate) const CDK_BOOTSTRAP: &str = r#"Parameters:
  BootstrapVersion:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /cdk-bootstrap/hnb659fds/version
    Description: Version of the CDK Bootstrap resources in this environment, automatically retrieved from SSM Parameter Store. [cdk:skip]
Rules:
  CheckBootstrapVersion:
    Assertions:
      - Assert:
          Fn::Not:
            - Fn::Contains:
                - - "1"
                  - "2"
                  - "3"
                  - "4"
                  - "5"
                - Ref: BootstrapVersion
        AssertDescription: CDK bootstrap stack version 6 required. Please run 'cdk bootstrap' with a recent version of the CDK CLI.
Resources:
  V: {Type: AWS::EC2::VPC}
"#;

#[test]
fn cdk_bootstrap_rule_passes_with_the_default_and_fails_below_6() {
    inst(CDK_BOOTSTRAP, &[]).unwrap();
    let mut ctx = Context::new("stack");
    ctx.ssm.insert(
        "/cdk-bootstrap/hnb659fds/version".into(),
        crate::ssm::Parameter {
            kind: "String".into(),
            value: "5".into(),
            version: 1,
            last_modified_date: 0,
        },
    );
    let e = inst_in(CDK_BOOTSTRAP, &[], ctx).unwrap_err();
    assert_eq!(e.path, "Rules.CheckBootstrapVersion.Assertions[0]");
    assert_eq!(
        e.message,
        "CDK bootstrap stack version 6 required. Please run 'cdk bootstrap' with a recent version of the CDK CLI."
    );
}

#[test]
fn rule_conditions_and_functions() {
    let t = "Parameters:
  Env: {Type: String, Default: test}
  Size: {Type: String, Default: small}
  Subnets: {Type: 'List<AWS::EC2::Subnet::Id>', Default: 'subnet-12345678,subnet-87654321'}
  Other: {Type: 'AWS::EC2::Subnet::Id', Default: subnet-aaaaaaaa}
Rules:
  ProdIsLarge:
    RuleCondition: !Equals [!Ref Env, prod]
    Assertions:
      - Assert: !Equals [!Ref Size, large]
        AssertDescription: prod needs large
  SubnetsKnown:
    Assertions:
      - Assert: !EachMemberIn [!Ref Subnets, [subnet-12345678, subnet-87654321]]
      - Assert: !Not [!EachMemberEquals [!Ref Subnets, subnet-12345678]]
      - Assert: !Contains [!RefAll 'AWS::EC2::Subnet::Id', subnet-aaaaaaaa]
      - Assert: !Or [!Equals [a, b], !Not [!Equals [a, b]]]
Resources:
  V: {Type: AWS::EC2::VPC}
";
    inst(t, &[]).unwrap();
    let e = inst(t, &[("Env", "prod")]).unwrap_err();
    assert_eq!(e.path, "Rules.ProdIsLarge.Assertions[0]");
    assert_eq!(e.message, "prod needs large");
    inst(t, &[("Env", "prod"), ("Size", "large")]).unwrap();
    let e = inst(t, &[("Subnets", "subnet-12345678,subnet-11111111")]).unwrap_err();
    assert_eq!(e.path, "Rules.SubnetsKnown.Assertions[0]");
    assert!(e.message.contains("rule SubnetsKnown failed"), "{e}");
    let e = inst(t, &[("Subnets", "subnet-12345678")]).unwrap_err();
    assert_eq!(e.path, "Rules.SubnetsKnown.Assertions[1]");
    let bad = t.replace("!RefAll 'AWS::EC2::Subnet::Id'", "!ValueOf [Other, VpcId]");
    let e = inst(&bad, &[]).unwrap_err();
    assert!(e.message.contains("Fn::ValueOf"), "{e}");
}
