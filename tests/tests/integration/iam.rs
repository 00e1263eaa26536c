//! IAM where Lambda's VPC settings need it, end to end with boto3 and the
//! AWS CLI against the agent's endpoint (tests/fixtures/iam.py): the
//! execution role must let Lambda manage ENIs (refused without, allowed by
//! AWS's managed policy, an inline policy, an attached customer policy;
//! templates too); the caller's identity policies with `lambda:SubnetIds`
//! and `lambda:VpcIds` for an IAM user's access key made through the IAM
//! API; a role deleted before its function leaves an `available` ENI that
//! only a delete by hand removes.
use std::process::Command;

use serde_json::Value;
use vpc_tests::{fixture, text, Deployment};

const TEMPLATE: &str = fixture!("iam.yaml");

/// The deployment on a test clock, its API on loopback TCP; its URL.
fn up(tag: &str) -> (Deployment, String) {
    let d = Deployment::up(
        tag,
        TEMPLATE,
        &["--clock", "test", "--api-addr", "127.0.0.1:0"],
    );
    let url = d.status()["api_url"].as_str().expect("api_url").to_string();
    (d, url)
}

/// One part of iam.py (boto3).
fn boto3(url: &str, mode: &str) {
    let out = Command::new(vpc_tests::pyenv_python())
        .arg(vpc_tests::fixture_path("iam.py"))
        .args([url, mode])
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains(&format!("iam {mode}: ok")),
        "iam.py {mode}:\n{}",
        text(&out)
    );
}

fn aws(url: &str, args: &[&str]) -> std::process::Output {
    vpc_tests::aws_cli(url, args)
}

fn aws_ok(url: &str, args: &[&str]) {
    let out = aws(url, args);
    assert!(out.status.success(), "aws {args:?}:\n{}", text(&out));
}

/// `vpc verify`'s differences (none: what is built is what is desired).
fn drift(d: &Deployment) -> Vec<String> {
    let out = d.vpc(&["verify", "--output", "json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vpc verify: {e}: {}", text(&out)))
}

fn eni_of<'a>(enis: &'a [Value], group: &str) -> Option<&'a Value> {
    enis.iter()
        .find(|e| e["security_groups"] == serde_json::json!([group]))
}

#[test]
fn the_execution_role_must_let_lambda_manage_enis() {
    let (d, url) = up("iamrole");
    boto3(&url, "roles");
    // A template's function: the stack's error names its Role, nothing applied.
    let function = |role: &str| {
        format!(
            "{TEMPLATE}  Tpl:\n    Type: AWS::Lambda::Function\n    Properties:\n      FunctionName: tpl\n      Role: !GetAtt {role}.Arn\n      VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [!Ref FnSg]}}\n"
        )
    };
    let out = d.try_apply(&function("BareRole"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Resources.Tpl.Properties.Role")
            && text(&out).contains(
                "InvalidParameterValueException: The provided execution role does not have permissions to call CreateNetworkInterface on EC2"
            ),
        "{}",
        text(&out)
    );
    assert!(!d.vpc(&["get-function", "tpl"]).status.success());
    d.apply(&function("VpcRole"));
    let out = d.vpc(&["get-function", "tpl", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        f["Configuration"]["Role"],
        "arn:aws:iam::123456789012:role/vpc-access"
    );
}

#[test]
fn the_callers_policies_decide_with_the_vpc_condition_keys() {
    let (_d, url) = up("iamkeys");
    boto3(&url, "keys");
}

#[test]
fn a_role_deleted_first_leaves_an_available_eni_to_delete_by_hand() {
    let (d, url) = up("iameni");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let vpc_access = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole";
    aws_ok(
        &url,
        &[
            "iam",
            "create-role",
            "--role-name",
            "eni-role",
            "--assume-role-policy-document",
            trust,
        ],
    );
    aws_ok(
        &url,
        &[
            "iam",
            "attach-role-policy",
            "--role-name",
            "eni-role",
            "--policy-arn",
            vpc_access,
        ],
    );
    boto3(&url, "strand-create");
    let enis = d.eni_list();
    let lonely = eni_of(&enis, "LoneSg").expect("lonely's ENI").clone();
    let id = lonely["id"].as_str().unwrap().to_string();
    assert_eq!(lonely["status"], "in-use", "{lonely}");
    assert_eq!(lonely["functions"], serde_json::json!(["lonely"]));
    assert!(eni_of(&enis, "TidySg").is_some());
    let leaver = eni_of(&enis, "LeaverSg").expect("leaver's ENI")["id"].clone();
    // In use: EC2's refusal.
    let out = d.vpc(&["eni", "delete", &id]);
    assert!(
        !out.status.success()
            && text(&out).contains(&format!(
                "InvalidParameterValue: Network interface '{id}' is currently in use."
            )),
        "{}",
        text(&out)
    );
    // IAM refuses to delete a role with a policy attached; detached, it goes.
    let out = aws(&url, &["iam", "delete-role", "--role-name", "eni-role"]);
    assert!(
        !out.status.success() && text(&out).contains("DeleteConflict"),
        "{}",
        text(&out)
    );
    aws_ok(
        &url,
        &[
            "iam",
            "detach-role-policy",
            "--role-name",
            "eni-role",
            "--policy-arn",
            vpc_access,
        ],
    );
    aws_ok(&url, &["iam", "delete-role", "--role-name", "eni-role"]);
    // Both functions deleted and the third out of its VPC, 21 minutes on:
    // tidy's ENI is gone, lonely's and leaver's stay, available, lonely's
    // address still allocated.
    boto3(&url, "strand-delete");
    let enis = d.eni_list();
    assert!(eni_of(&enis, "TidySg").is_none(), "{enis:?}");
    let left = eni_of(&enis, "LeaverSg").expect("the ENI leaver left");
    assert_eq!(
        (&left["id"], &left["status"]),
        (&leaver, &Value::from("available"))
    );
    let left = eni_of(&enis, "LoneSg").expect("the ENI Lambda could not delete");
    assert_eq!(left["id"], id.as_str());
    assert_eq!(left["status"], "available", "{left}");
    assert_eq!(left["functions"], serde_json::json!([]));
    assert_eq!(left["address"], lonely["address"]);
    assert_eq!(drift(&d), Vec::<String>::new());
    let listed = d.vpc(&["eni", "list"]);
    assert!(text(&listed).contains("available"), "{}", text(&listed));
    // It holds its group as AWS's would: the group cannot go while it is there.
    let without = TEMPLATE.replace("  LoneSg:", "  # LoneSg:");
    let out = d.try_apply(&without);
    assert!(
        !out.status.success()
            && text(&out).contains(&format!(
                "DependencyViolation: resource LoneSg has a dependent object (network interface {id}"
            )),
        "{}",
        text(&out)
    );
    // Deleted by hand: out of the model and the maps.
    let out = d.vpc(&["eni", "delete", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(eni_of(&d.eni_list(), "LoneSg").is_none());
    assert_eq!(drift(&d), Vec::<String>::new());
    // Now the group can go.
    d.apply(&without);
    let out = d.vpc(&["eni", "delete", &id]);
    assert!(
        text(&out).contains("InvalidNetworkInterfaceID.NotFound"),
        "{}",
        text(&out)
    );
}
