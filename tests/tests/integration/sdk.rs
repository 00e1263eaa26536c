//! An AWS SDK (boto3, installed from PyPI into target/pyenv by `cargo xtask
//! test`) against the agent's Lambda API on loopback TCP, with dummy
//! credentials: states, waiters, invocation and validation errors as the
//! SDK parses them; and the one endpoint's routing by the service of the
//! signature: EC2, CloudFormation and DynamoDB clients (`AWS_ENDPOINT_URL`)
//! get AWS's error naming the service not served, in their protocol.
use vpc_tests::{fixture, text, Deployment};

const TEMPLATE: &str = fixture!("lambda_sdk.yaml");

#[test]
fn boto3_sees_lambda_states_and_errors() {
    let python = vpc_tests::pyenv_python();
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
        .arg(vpc_tests::fixture_path("lambda_sdk.py"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sdk: ok"));
}
