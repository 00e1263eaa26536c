//! Templates' IAM as the model build checks it.
use std::collections::HashMap;

use crate::model::build;

const NET: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  F:
    Type: AWS::Lambda::Function
    Properties:
      Role: ROLE
      VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
"#;

fn with(role: &str, extra: &str) -> String {
    format!("{}{extra}", NET.replace("ROLE", role))
}

#[test]
fn a_template_functions_role_must_let_lambda_manage_its_enis() {
    let e = build(&with("!GetAtt Role.Arn", ""), &HashMap::new(), "t").unwrap_err();
    assert_eq!(e.path, "Resources.F.Properties.Role");
    assert!(
        e.to_string().contains("InvalidParameterValueException: The provided execution role does not have permissions to call CreateNetworkInterface on EC2"),
        "{e}"
    );
    // The managed policy, an inline policy, an AWS::IAM::Policy naming the role.
    let managed = "      ManagedPolicyArns: [!Sub 'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']\n";
    let m = build(&with("!GetAtt Role.Arn", managed), &HashMap::new(), "t").unwrap();
    assert!(m.function("F").unwrap().role_known);
    let inline = "      Policies:\n        - PolicyName: eni\n          PolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, Action: ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DeleteNetworkInterface'], Resource: '*'}]}\n";
    build(&with("!GetAtt Role.Arn", inline), &HashMap::new(), "t").unwrap();
    let policy = "  P:\n    Type: AWS::IAM::Policy\n    Properties:\n      PolicyName: eni\n      Roles: [!Ref Role]\n      PolicyDocument: {Statement: [{Effect: Allow, Action: 'ec2:*NetworkInterface*', Resource: '*'}]}\n";
    build(&with("!GetAtt Role.Arn", policy), &HashMap::new(), "t").unwrap();
    let managed_policy = "  P:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      Roles: [!Ref Role]\n      PolicyDocument: {Statement: [{Effect: Allow, Action: 'ec2:*', Resource: '*'}]}\n";
    build(
        &with("!GetAtt Role.Arn", managed_policy),
        &HashMap::new(),
        "t",
    )
    .unwrap();
    // A role the deployment does not know cannot be inspected: allowed.
    let m = build(
        &with("arn:aws:iam::123456789012:role/elsewhere", ""),
        &HashMap::new(),
        "t",
    )
    .unwrap();
    assert!(!m.function("F").unwrap().role_known);
}

#[test]
fn a_templates_malformed_policy_is_refused_naming_its_property() {
    let bad = "      Policies:\n        - PolicyName: p\n          PolicyDocument: {Statement: [{Effect: Allow, Action: CreateNetworkInterface, Resource: '*'}]}\n";
    let e = build(&with("!GetAtt Role.Arn", bad), &HashMap::new(), "t").unwrap_err();
    assert_eq!(
        e.path,
        "Resources.Role.Properties.Policies[0].PolicyDocument"
    );
    assert!(
        e.to_string()
            .contains("MalformedPolicyDocument: Actions/Conditions must be prefaced by a vendor"),
        "{e}"
    );
}

#[test]
fn users_groups_and_keys_of_a_template_make_one_view() {
    let t = with(
        "arn:aws:iam::123456789012:role/x",
        r#"  U: {Type: AWS::IAM::User, Properties: {UserName: dev, Groups: [!Ref G]}}
  G:
    Type: AWS::IAM::Group
    Properties:
      Policies: [{PolicyName: p, PolicyDocument: {Statement: [{Effect: Allow, Action: 'lambda:*', Resource: '*'}]}}]
  K: {Type: AWS::IAM::AccessKey, Properties: {UserName: !Ref U}}
"#,
    );
    let m = build(&t, &HashMap::new(), "t").unwrap();
    let iam = super::Iam::of(&m);
    let key = iam.access_keys[0].id.clone();
    assert!(key.starts_with("AKIA"));
    let u = iam.user_of_key(&key).unwrap();
    assert_eq!(u.arn, "arn:aws:iam::123456789012:user/dev");
    assert_eq!(iam.user_policies(u).len(), 1, "the group's policy");
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
    assert!(super::lambda::authorize(&m, Some(&key), "lambda:CreateFunction", arn, None).is_ok());
    assert!(super::lambda::authorize(&m, Some(&key), "s3:GetObject", arn, None).is_err());
}

#[test]
fn a_managed_policy_arn_that_does_not_resolve_fails_the_stack() {
    for arn in [
        "arn:aws:iam::aws:policy/Nope",
        "arn:aws:iam::123456789012:policy/nowhere",
    ] {
        let t = with(
            "arn:aws:iam::123456789012:role/x",
            &format!(
                "      ManagedPolicyArns:\n        - arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\n        - {arn}\n"
            ),
        );
        let e = build(&t, &HashMap::new(), "t").unwrap_err();
        assert_eq!(e.path, "Resources.Role.Properties.ManagedPolicyArns[1]");
        assert!(
            e.to_string().contains(&format!(
                "NoSuchEntity: Policy {arn} does not exist or is not attachable."
            )),
            "{e}"
        );
    }
    // A template's own managed policy resolves.
    let t = with(
        "arn:aws:iam::123456789012:role/x",
        "      ManagedPolicyArns: [!Ref P]\n  P:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      PolicyDocument: {Statement: [{Effect: Allow, Action: 'ec2:*', Resource: '*'}]}\n",
    );
    build(&t, &HashMap::new(), "t").unwrap();
}

#[test]
fn aws_deny_all_denies_a_template_user() {
    let t = with(
        "arn:aws:iam::123456789012:role/x",
        r#"  U:
    Type: AWS::IAM::User
    Properties:
      UserName: dev
      ManagedPolicyArns: [!Sub 'arn:${AWS::Partition}:iam::aws:policy/AWSDenyAll']
      Policies: [{PolicyName: p, PolicyDocument: {Statement: [{Effect: Allow, Action: '*', Resource: '*'}]}}]
  K: {Type: AWS::IAM::AccessKey, Properties: {UserName: !Ref U}}
"#,
    );
    let m = build(&t, &HashMap::new(), "t").unwrap();
    let key = super::Iam::of(&m).access_keys[0].id.clone();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
    let e =
        super::lambda::authorize(&m, Some(&key), "lambda:CreateFunction", arn, None).unwrap_err();
    assert!(
        e.message()
            .ends_with("with an explicit deny in an identity-based policy"),
        "{e:?}"
    );
}
