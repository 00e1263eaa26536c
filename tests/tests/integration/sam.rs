//! SAM templates as users write them (`Transform:
//! AWS::Serverless-2016-10-31`), expanded by aws-sam-translator and
//! brought up with `vpc up`, their functions reached end to end: a VPC
//! function with its database and a function URL
//! (tests/fixtures/sam_vpc_function.yaml), and an application whose
//! functions share Globals and run from code directories beside the
//! template (tests/fixtures/sam_app/). The translator's errors name the
//! resource in SAM's words, and nothing is built.
use std::{path::PathBuf, process::Command};

use serde_json::{json, Value};
use vpc_tests::{fixture_path, peer_server, text, wait_for, Deployment, FAST};

/// A copy of a fixture directory of the test's own, removed on drop.
struct Copy(PathBuf);

impl Copy {
    fn of(fixture: &str) -> Self {
        let d = std::env::temp_dir().join(vpc_tests::unique_name("samcopy"));
        let out = Command::new("cp")
            .arg("-r")
            .arg(fixture_path(fixture))
            .arg(&d)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Copy(d)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn invoke(d: &Deployment, f: &str) -> Value {
    let out = d.vpc(&["invoke", f, "--payload", "{}"]);
    assert!(out.status.success(), "{f}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{f}: {e}: {}", text(&out)))
}

fn configuration(d: &Deployment, f: &str) -> Value {
    vpc::api::call(
        &d.name,
        "GET",
        &format!("/2015-03-31/functions/{f}/configuration"),
        b"",
    )
    .unwrap()
    .ok()
    .unwrap()
    .json()
}

/// The address a database's answer names (`ip:port`): the ip.
fn address(seen: &Value) -> String {
    seen.as_str()
        .and_then(|s| s.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string())
        .unwrap_or_else(|| panic!("{seen}"))
}

/// The Hyperplane ENIs' addresses, by subnet.
fn enis(d: &Deployment) -> Vec<(String, String)> {
    d.status()["enis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["subnet"].as_str().unwrap().to_string(),
                e["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The VPC function of a SAM template (two private subnets, its database
/// in the same template, `Policies`, `Environment`, `FunctionUrlConfig`,
/// `InlineCode`) comes up as SAM expands it: the function, its role with
/// AWSLambdaVPCAccessExecutionRole, its URL and the URL's permissions. An
/// invocation reaches the database through one of the function's ENIs;
/// the URL (the template's output, `!GetAtt OrdersFunctionUrl.FunctionUrl`)
/// answers a host on the internet with the same connection made.
#[test]
fn a_sam_vpc_function_reaches_its_database_and_its_url_answers_the_internet() {
    let d = Deployment::up_file("samvpc", &fixture_path("sam_vpc_function.yaml"), FAST);
    let state = vpc::state::State::load(&d.name).unwrap();
    let m = &state.model;
    // SAM's expansion, as the translator writes it.
    let kinds: Vec<(&str, &str)> = m
        .stack_resources
        .iter()
        .map(|r| (r.logical_id.as_str(), r.resource_type.as_str()))
        .collect();
    for want in [
        ("OrdersFunctionRole", "AWS::IAM::Role"),
        ("OrdersFunctionUrl", "AWS::Lambda::Url"),
        (
            "OrdersFunctionUrlPublicPermissions",
            "AWS::Lambda::Permission",
        ),
    ] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
    let role = m
        .stack_resources
        .iter()
        .find(|r| r.logical_id == "OrdersFunctionRole")
        .unwrap();
    assert!(
        role.properties["ManagedPolicyArns"]
            .as_array()
            .unwrap()
            .contains(&json!(
                "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
            )),
        "{:?}",
        role.properties
    );
    let url = m.output("OrdersUrl").expect("OrdersUrl").value.clone();
    let host = url
        .strip_prefix("https://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{url}"))
        .to_string();
    assert_eq!(
        m.output("OrdersRole").unwrap().value,
        role.physical_id,
        "Ref of the generated role"
    );
    let c = configuration(&d, "OrdersFunction");
    assert_eq!(c["Runtime"], "python3.12");
    assert_eq!(c["Timeout"], 10);
    assert_eq!(c["Environment"]["Variables"]["DB_PORT"], "5432", "{c}");
    assert_eq!(c["Environment"]["Variables"]["DB_HOST"], "10.20.2.10");
    assert_eq!(c["VpcConfig"]["SubnetIds"].as_array().unwrap().len(), 2);

    let db = peer_server(&d.netns("Database"), "10.20.2.10:5432");
    let eni_addresses: Vec<String> = enis(&d).into_iter().map(|(_, a)| a).collect();
    assert_eq!(eni_addresses.len(), 2, "one ENI per subnet");
    let r = invoke(&d, "OrdersFunction");
    assert_eq!(r["via"], "invoke", "{r}");
    assert!(
        eni_addresses.contains(&address(&r["seen_by_db"])),
        "{r} from {eni_addresses:?}"
    );
    // The URL, from the internet, by name.
    let mut answer = String::new();
    wait_for("the function URL from Client", 30, || {
        let out = d.vpc(&[
            "exec",
            "Client",
            "--",
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "20",
            &format!("http://{host}/orders"),
        ]);
        answer = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    let r: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(r["via"], "url", "{r}");
    assert!(
        eni_addresses.contains(&address(&r["seen_by_db"])),
        "{r} from {eni_addresses:?}"
    );
    assert_eq!(db.stop(), 2);
}

/// A SAM application with Globals (runtime, memory, timeout, CodeUri,
/// VpcConfig, Environment), policy templates and managed policies, a
/// scheduled event and AutoPublishAlias: Orders runs from src/ (Globals'
/// CodeUri) importing its shared module, Reports (Node.js) from its own
/// reports/, each with Globals' variables merged with its own, and both
/// reach the database through the subnet's ENI. `vpc apply` expands the
/// template again: a changed handler in src/ and `-p Stage=prod` are
/// what the functions run next.
#[test]
fn a_sam_app_runs_from_its_code_directories_with_globals() {
    let app = Copy::of("sam_app");
    let template = app.0.join("template.yaml");
    let d = Deployment::up_file("samapp", &template, FAST);
    let m = vpc::state::State::load(&d.name).unwrap().model;
    let table = m
        .stack_resources
        .iter()
        .find(|r| r.logical_id == "OrdersTable")
        .expect("SimpleTable: a DynamoDB table");
    assert_eq!(table.resource_type, "AWS::DynamoDB::Table");
    for (id, kind) in [
        ("OrdersFunctionAliaslive", "AWS::Lambda::Alias"),
        ("OrdersFunctionNightly", "AWS::Events::Rule"),
        ("ReportsFunctionRole", "AWS::IAM::Role"),
    ] {
        assert!(
            m.stack_resources
                .iter()
                .any(|r| r.logical_id == id && r.resource_type == kind),
            "{id}"
        );
    }
    let orders_role = m
        .stack_resources
        .iter()
        .find(|r| r.logical_id == "OrdersFunctionRole")
        .unwrap();
    // VPCAccessPolicy and DynamoDBCrudPolicy, SAM's policy templates,
    // as inline policies of the role.
    let policies = orders_role.properties["Policies"].to_string();
    assert!(
        policies.contains("ec2:CreateNetworkInterface"),
        "{policies}"
    );
    assert!(policies.contains("dynamodb:PutItem"), "{policies}");

    let db = peer_server(&d.netns("Database"), "10.30.2.10:5432");
    let eni = d.eni_address("AppSubnet");
    let orders = invoke(&d, "OrdersFunction");
    assert_eq!(
        (
            &orders["role"],
            &orders["stage"],
            &orders["memory"],
            &orders["version"]
        ),
        (&json!("orders"), &json!("dev"), &json!(256), &json!("1")),
        "{orders}"
    );
    assert_eq!(orders["table"], table.physical_id.as_str());
    assert_eq!(address(&orders["seen_by_db"]), eni);
    let reports = invoke(&d, "ReportsFunction");
    assert_eq!(
        (&reports["role"], &reports["stage"], &reports["memory"]),
        (&json!("reports"), &json!("dev"), &json!(512)),
        "{reports}"
    );
    assert_eq!(address(&reports["seen_by_db"]), eni);
    let c = configuration(&d, "ReportsFunction");
    assert_eq!(
        (&c["Runtime"], &c["Timeout"]),
        (&json!("nodejs20.x"), &json!(10))
    );
    let sha = configuration(&d, "OrdersFunction")["CodeSha256"].clone();

    // A new handler and another stage, applied.
    let handler = app.0.join("src/orders/app.py");
    let code = std::fs::read_to_string(&handler).unwrap();
    std::fs::write(
        &handler,
        code.replace("\"version\": \"1\"", "\"version\": \"2\""),
    )
    .unwrap();
    let out = d.vpc(&["apply", template.to_str().unwrap(), "-p", "Stage=prod"]);
    assert!(out.status.success(), "{}", text(&out));
    let orders = invoke(&d, "OrdersFunction");
    assert_eq!(
        (&orders["version"], &orders["stage"]),
        (&json!("2"), &json!("prod")),
        "{orders}"
    );
    assert_ne!(configuration(&d, "OrdersFunction")["CodeSha256"], sha);
    assert_eq!(invoke(&d, "ReportsFunction")["stage"], "prod");
    // AutoPublishAlias: a new version for new code, as SAM derives it.
    let m2 = vpc::state::State::load(&d.name).unwrap().model;
    let versions = |m: &vpc::model::Model| -> Vec<String> {
        m.stack_resources
            .iter()
            .filter(|r| r.resource_type == "AWS::Lambda::Version")
            .map(|r| r.logical_id.clone())
            .collect()
    };
    assert_eq!(versions(&m).len(), 1);
    assert_eq!(versions(&m2).len(), 1);
    assert_ne!(versions(&m), versions(&m2));
    assert_eq!(db.stop(), 4);
}

/// The translator's errors are CloudFormation's (`Transform
/// AWS::Serverless-2016-10-31 failed with: ...`), naming the resource as
/// SAM does, and nothing is built.
#[test]
fn a_sam_error_names_the_resource_and_builds_nothing() {
    let bad = fixture_path("sam_vpc_function.yaml");
    let text_ = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("AuthType: NONE", "AuthType: PUBLIC");
    let dir = std::env::temp_dir().join(vpc_tests::unique_name("sambad"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, text_).unwrap();
    let name = vpc_tests::unique_name("sambad");
    let out = vpc_tests::vpc(&name, &["up", path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("Resources.OrdersFunction: Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application Specification document. Number of errors found: 1. Resource with id [OrdersFunction] is invalid. AuthType is required to configure function property `FunctionUrlConfig`. Please provide either AWS_IAM or NONE."),
        "{msg}"
    );
    assert!(vpc_tests::namespaces_with_prefix(&name).is_empty());
    assert!(!vpc::paths::state_dir(&name).exists());
}
