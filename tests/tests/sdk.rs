//! An AWS SDK (boto3, installed from PyPI into target/pyenv by `cargo xtask
//! test`) against the agent's Lambda API on loopback TCP, with dummy
//! credentials: states, waiters, invocation and validation errors as the
//! SDK parses them; and the one endpoint's routing by the service of the
//! signature: EC2, CloudFormation and DynamoDB clients (`AWS_ENDPOINT_URL`)
//! get AWS's error naming the service not served, in their protocol.
use std::path::PathBuf;

use vpc_tests::{text, Deployment};

const TEMPLATE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Elsewhere: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Other, CidrBlock: 10.1.1.0/24}}
  FnSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: reports
      Code: {ZipFile: "read p; echo \"$AWS_LAMBDA_FUNCTION_NAME got $p\""}
      VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref FnSg]}
"#;

#[test]
fn boto3_sees_lambda_states_and_errors() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} missing: `cargo xtask test` installs boto3 there",
        python.display()
    );
    let d = Deployment::up(
        "sdk",
        TEMPLATE,
        &[
            "--clock",
            "test",
            "--eni-delay",
            "5m",
            "--api-addr",
            "127.0.0.1:0",
        ],
    );
    // Where `vpc status` says the API listens.
    let url = d.status()["api_url"]
        .as_str()
        .expect("the API listens on TCP")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = std::process::Command::new(python)
        .arg(root.join("sdk/lambda_sdk.py"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sdk: ok"));
}
