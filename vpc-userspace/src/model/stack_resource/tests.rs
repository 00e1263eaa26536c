//! Conditions on network resources, kept resources and their attributes,
//! refused types, outputs: through the whole model build.
use std::collections::HashMap;

use serde_json::json;

use crate::model::{build, tests::BASE, Model, Peer};

fn build_with(t: &str, params: &[(&str, &str)]) -> crate::template::Result<Model> {
    let params: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    build(t, &params, "s")
}

const GUARDED: &str = "Parameters:
  OpenDb: {Type: String, Default: 'false', AllowedValues: ['true', 'false']}
Conditions:
  Open: !Equals [!Ref OpenDb, 'true']
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d, VpcId: !Ref Vpc}}
  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  Allow5432:
    Type: AWS::EC2::NetworkAclEntry
    Condition: Open
    Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 10.0.0.0/16, PortRange: {From: 5432, To: 5432}}
  Db5432:
    Type: AWS::EC2::SecurityGroupIngress
    Condition: Open
    Properties: {GroupId: !Ref Sg, IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.0.0.0/16}
  Db22:
    Type: AWS::EC2::SecurityGroupIngress
    Properties: {GroupId: !Ref Sg, IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: !If [Open, 10.0.0.0/16, 10.0.1.0/24]}
Outputs:
  Opened: {Value: !Ref Allow5432, Condition: Open}
";

#[test]
fn a_false_condition_leaves_the_acl_entry_and_the_rule_out() {
    let closed = build_with(GUARDED, &[]).unwrap();
    assert!(closed.acl("Acl").unwrap().entries.is_empty());
    let sg = closed.group("Sg").unwrap();
    assert_eq!(sg.ingress.len(), 1);
    assert_eq!(sg.ingress[0].from_port, 22);
    assert_eq!(
        sg.ingress[0].peer,
        Peer::Cidr("10.0.1.0/24".parse().unwrap())
    );
    assert!(closed.outputs.is_empty());
    assert!(!closed.conditions["Open"]);

    let open = build_with(GUARDED, &[("OpenDb", "true")]).unwrap();
    assert_eq!(open.acl("Acl").unwrap().entries.len(), 1);
    let sg = open.group("Sg").unwrap();
    assert_eq!(sg.ingress.len(), 2);
    assert!(sg
        .ingress
        .iter()
        .all(|r| r.peer == Peer::Cidr("10.0.0.0/16".parse().unwrap())));
    assert_eq!(open.output("Opened").unwrap().value, "Allow5432");
}

#[test]
fn kept_resources_have_their_ref_and_attributes() {
    let t = format!(
        "{BASE}  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {{Statement: [{{Effect: Allow, Principal: {{Service: lambda.amazonaws.com}}, Action: sts:AssumeRole}}]}}
      ManagedPolicyArns: [!Sub 'arn:${{AWS::Partition}}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']
  Named: {{Type: AWS::IAM::Role, Properties: {{RoleName: named-role, Path: /app/}}}}
  Profile: {{Type: AWS::IAM::InstanceProfile, Properties: {{Roles: [!Ref Role]}}}}
  Host: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref A, PrivateIpAddress: 10.0.1.10, IamInstanceProfile: !Ref Profile, UserData: !Base64 '#!/bin/sh'}}}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: orders
      Role: !GetAtt Role.Arn
      VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}
  Perm: {{Type: AWS::Lambda::Permission, Properties: {{FunctionName: !GetAtt Fn.Arn, Action: lambda:InvokeFunction, Principal: s3.amazonaws.com}}}}
  V1: {{Type: AWS::Lambda::Version, Properties: {{FunctionName: !Ref Fn}}}}
  Live: {{Type: AWS::Lambda::Alias, Properties: {{FunctionName: !Ref Fn, FunctionVersion: !GetAtt V1.Version, Name: live}}}}
  Logs: {{Type: AWS::Logs::LogGroup, Properties: {{LogGroupName: !Sub '/aws/lambda/${{Fn}}'}}}}
  Param: {{Type: AWS::SSM::Parameter, Properties: {{Type: String, Value: !GetAtt Host.PrivateIp}}}}
  Meta: {{Type: AWS::CDK::Metadata, Properties: {{Analytics: v2:deflate64:x}}}}
  Custom: {{Type: Custom::Thing, Properties: {{ServiceToken: !GetAtt Fn.Arn}}}}
Outputs:
  RoleArn: {{Value: !GetAtt Role.Arn, Export: {{Name: !Sub '${{AWS::StackName}}-RoleArn'}}}}
  NamedArn: {{Value: !GetAtt Named.Arn}}
  ProfileArn: {{Value: !GetAtt Profile.Arn}}
  Version: {{Value: !Ref V1}}
  Alias: {{Value: !Ref Live}}
  LogArn: {{Value: !GetAtt Logs.Arn}}
  Param: {{Value: !Sub '${{Param}}=${{Param.Value}}'}}
  HostDns: {{Value: !GetAtt Host.PrivateDnsName}}
  FnRef: {{Value: !Ref Fn}}
"
    );
    let m = build_with(&t, &[]).unwrap_or_else(|e| panic!("{e}"));
    let out = |k: &str| {
        m.output(k)
            .unwrap_or_else(|| panic!("output {k}"))
            .value
            .clone()
    };
    let role = out("RoleArn");
    assert!(
        role.starts_with("arn:aws:iam::123456789012:role/s-Role-"),
        "{role}"
    );
    assert_eq!(
        role.len(),
        "arn:aws:iam::123456789012:role/s-Role-".len() + 13,
        "{role}"
    );
    assert_eq!(
        out("NamedArn"),
        "arn:aws:iam::123456789012:role/app/named-role"
    );
    assert!(out("ProfileArn").starts_with("arn:aws:iam::123456789012:instance-profile/s-Profile-"));
    assert_eq!(
        out("Version"),
        "arn:aws:lambda:us-east-1:123456789012:function:orders:1"
    );
    assert_eq!(
        out("Alias"),
        "arn:aws:lambda:us-east-1:123456789012:function:orders:live"
    );
    assert_eq!(
        out("LogArn"),
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/orders:*"
    );
    assert!(
        out("Param").starts_with("CFN-Param-") && out("Param").ends_with("=10.0.1.10"),
        "{}",
        out("Param")
    );
    assert_eq!(out("HostDns"), "ip-10-0-1-10.ec2.internal");
    assert_eq!(out("FnRef"), "orders");
    assert_eq!(
        m.exports().collect::<Vec<_>>(),
        [("s-RoleArn", role.as_str())]
    );
    let kept: Vec<&str> = m
        .stack_resources
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    assert_eq!(
        kept,
        ["Custom", "Live", "Logs", "Meta", "Named", "Param", "Perm", "Profile", "Role", "V1"]
    );
    let profile = m
        .stack_resources
        .iter()
        .find(|r| r.logical_id == "Profile")
        .unwrap();
    assert_eq!(
        profile.properties["Roles"],
        json!([m
            .stack_resources
            .iter()
            .find(|r| r.logical_id == "Role")
            .unwrap()
            .physical_id])
    );
    let r = m
        .stack_resources
        .iter()
        .find(|r| r.logical_id == "Role")
        .unwrap();
    assert!(r.attributes["RoleId"].as_str().unwrap().starts_with("AROA"));
    // Stable: the same names again.
    assert_eq!(
        build_with(&t, &[]).unwrap().stack_resources,
        m.stack_resources
    );
    // A custom resource's handler does not run: no attributes.
    let e = build_with(
        &format!("{t}  Bad: {{Value: !GetAtt Custom.Endpoint}}\n"),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.path, "Outputs.Bad.Value");
    assert!(
        e.message
            .contains("does not support attribute type Endpoint"),
        "{e}"
    );
}

#[test]
fn unmodelled_types_are_refused_naming_the_resource() {
    for (kind, words) in [
        ("AWS::EC2::TransitGateway", "would change the network"),
        ("AWS::EC2::VPCPeeringConnection", "would change the network"),
        ("AWS::NetworkFirewall::Firewall", "would change the network"),
        (
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "would change the network",
        ),
        ("AWS::Glue::Database", "is not supported by this project"),
    ] {
        let e = build_with(&format!("{BASE}  X: {{Type: {kind}}}\n"), &[]).unwrap_err();
        assert_eq!(e.path, "Resources.X.Type", "{kind}");
        assert!(
            e.message.starts_with(kind) && e.message.contains(words),
            "{kind}: {e}"
        );
    }
    // Behind a false condition it does not exist, so nothing is refused.
    build_with(
        &format!("Conditions:\n  Never: !Equals [a, b]\n{}  X: {{Type: AWS::EC2::TransitGateway, Condition: Never}}\n", BASE.trim_start_matches('\n')),
        &[],
    )
    .unwrap();
}

#[test]
fn cdk_restrict_default_sg_empties_the_default_group() {
    let t = format!(
        "{BASE}  Restrict:
    Type: Custom::VpcRestrictDefaultSG
    Properties:
      ServiceToken: arn:aws:lambda:us-east-1:123456789012:function:handler
      DefaultSecurityGroupId: !GetAtt Vpc.DefaultSecurityGroup
      Account: !Ref AWS::AccountId
"
    );
    let m = build_with(&t, &[]).unwrap();
    let g = m.group("Vpc.DefaultSecurityGroup").unwrap();
    assert!(g.ingress.is_empty() && g.egress.is_empty());
    let before = build_with(BASE, &[]).unwrap();
    assert_eq!(
        before
            .group("Vpc.DefaultSecurityGroup")
            .unwrap()
            .egress
            .len(),
        1
    );
    let e = build_with(
        &t.replace("!GetAtt Vpc.DefaultSecurityGroup", "!Ref Sg"),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.path,
        "Resources.Restrict.Properties.DefaultSecurityGroupId"
    );
}
