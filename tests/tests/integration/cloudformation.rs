//! The CloudFormation API of the agent's endpoint, driven by the AWS CLI
//! (`aws cloudformation deploy`) and boto3 (tests/fixtures/cloudformation.py)
//! against a running deployment whose first stack is the network
//! (tests/fixtures/cloudformation/network.yaml): an app stack
//! (cloudformation/app.yaml) created, updated (a subnet with an instance, a
//! rule, a function removed), refused an update that rolls back with the
//! running stack intact, and deleted, with the status and events AWS shows,
//! each change checked on the datapath while a held connection goes on.
use std::path::PathBuf;

use serde_json::Value;
use vpc_tests::{
    connects, fixture, fixture_path, line_echo_server, peer_server, pyenv_python, text, Deployment,
    LineClient, FAST,
};

const NETWORK: &str = fixture!("cloudformation/network.yaml");
const APP: &str = fixture!("cloudformation/app.yaml");

/// app.yaml with only the marked blocks `keep` (of FUNCTION, WORKER,
/// RULE, BAD).
fn app(keep: &[&str]) -> String {
    let mut out = String::new();
    let mut skipping: Option<String> = None;
    for line in APP.lines() {
        let mark = line
            .strip_prefix("# ")
            .filter(|m| m.chars().all(|c| c.is_ascii_uppercase() || c == ' '));
        match (mark, &skipping) {
            (Some(m), None) if !m.starts_with("END ") => {
                if !keep.contains(&m) {
                    skipping = Some(m.to_string());
                }
                continue;
            }
            (Some(m), Some(s)) if m == format!("END {s}") => {
                skipping = None;
                continue;
            }
            (Some(m), None) if m.starts_with("END ") => continue,
            _ => {}
        }
        if skipping.is_none() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A file of the test's own, removed on drop.
struct File(PathBuf);

impl File {
    fn new(d: &Deployment, tag: &str, text: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{}-{tag}.yaml", d.name));
        std::fs::write(&p, text).unwrap();
        File(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// tests/fixtures/cloudformation.py against the deployment's API: its JSON.
fn cfn(url: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(pyenv_python())
        .arg(fixture_path("cloudformation.py"))
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cloudformation.py {args:?}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The events of a resource, oldest first (DescribeStackEvents is newest
/// first).
fn events_of(r: &Value, id: &str) -> Vec<String> {
    let mut v: Vec<String> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["LogicalResourceId"] == id)
        .map(|e| e["ResourceStatus"].as_str().unwrap().to_string())
        .collect();
    v.reverse();
    v
}

fn status(r: &Value) -> &str {
    r["stack"]["StackStatus"].as_str().unwrap()
}

#[test]
fn the_aws_cli_and_boto3_create_update_and_delete_stacks_and_a_failed_update_rolls_back() {
    let mut args = vec!["--api-addr", "127.0.0.1:0"];
    args.extend_from_slice(FAST);
    let d = Deployment::up("cfnapi", NETWORK, &args);
    let url = vpc::deploy::Lifecycle::load(&d.name)
        .unwrap()
        .api_url
        .expect("the API on TCP");
    // A connection held from Client to the database all along.
    let _echo = line_echo_server(&d.netns("Database"), "10.40.1.10:7000");
    let held = LineClient::connect(&d.netns("Client"), "10.40.1.10:7000");
    assert!(held.echoes("before", 5));
    // The deployment's first stack is named after it.
    let first = cfn(&url, &["describe", &d.name]);
    assert_eq!(status(&first), "CREATE_COMPLETE");
    assert_eq!(
        first["resources"]["Database"]["ResourceType"],
        "AWS::EC2::Instance"
    );

    // 1. Created by `aws cloudformation deploy`: a change set, executed.
    let v1 = File::new(&d, "v1", &app(&["FUNCTION"]));
    let r = cfn(&url, &["deploy", "app", v1.path(), "Greeting=bonjour"]);
    assert_eq!(r["rc"], 0, "{}\n{r}", r["stderr"]);
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .contains("Successfully created/updated stack - app"),
        "{r}"
    );
    assert_eq!(status(&r), "CREATE_COMPLETE");
    assert_eq!(r["template"], v1_text(&v1));
    assert_eq!(r["change_sets"][0]["ExecutionStatus"], "EXECUTE_COMPLETE");
    assert_eq!(
        events_of(&r, "Orders"),
        ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    );
    assert_eq!(
        events_of(&r, "app"),
        [
            "REVIEW_IN_PROGRESS",
            "CREATE_IN_PROGRESS",
            "CREATE_COMPLETE"
        ]
    );
    assert_eq!(r["resources"]["Orders"]["PhysicalResourceId"], "orders");
    assert_eq!(
        r["stack"]["Parameters"][0],
        serde_json::json!({"ParameterKey": "Greeting", "ParameterValue": "bonjour"})
    );
    let role_arn = &r["stack"]["Outputs"][0];
    assert_eq!(role_arn["OutputKey"], "RoleArn");
    assert!(role_arn["OutputValue"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:iam::123456789012:role/app-Role-"));
    let db = peer_server(&d.netns("Database"), "10.40.1.10:5432");
    vpc_tests::wait_for("orders Active", 30, || {
        text(&d.vpc(&["get-function", "orders"])).contains("Active")
    });
    let out = d.vpc(&["invoke", "orders", "--payload", "{}"]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["greeting"], "bonjour");
    assert!(answer["seen_by_db"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}:", d.eni_address("SubnetA"))));
    assert_eq!(db.stop(), 1);

    // Refusals, in AWS's words; nothing changes.
    let e = cfn(&url, &["errors", v1.path()]);
    assert_eq!(
        e["no_capabilities"]["code"],
        "InsufficientCapabilitiesException"
    );
    assert_eq!(
        e["no_capabilities"]["message"],
        "Requires capabilities : [CAPABILITY_IAM]"
    );
    assert_eq!(e["bad_template"]["code"], "ValidationError");
    assert_eq!(
        e["unknown_stack"]["message"],
        "Stack with id nosuchstack does not exist"
    );
    assert_eq!(e["bad_name"]["code"], "ValidationError");
    assert_eq!(e["exists"]["code"], "AlreadyExistsException");
    assert_eq!(e["exists"]["message"], "Stack [app] already exists");
    assert_eq!(
        e["no_updates"]["message"],
        "No updates are to be performed."
    );
    assert_eq!(e["validate"]["Parameters"][0]["ParameterKey"], "Greeting");
    assert_eq!(e["validate"]["Capabilities"][0], "CAPABILITY_IAM");
    assert!(e["summary"]["ResourceTypes"]
        .as_array()
        .unwrap()
        .contains(&"AWS::Lambda::Function".into()));
    let mut both = vec![d.name.clone(), "app".to_string()];
    both.sort();
    assert_eq!(e["list"], serde_json::json!(both));

    // 2. A subnet with an instance, by `aws cloudformation deploy`.
    let v2 = File::new(&d, "v2", &app(&["FUNCTION", "WORKER"]));
    let r = cfn(&url, &["deploy", "app", v2.path()]);
    assert_eq!(r["rc"], 0, "{}\n{r}", r["stderr"]);
    assert_eq!(status(&r), "UPDATE_COMPLETE");
    for id in ["SubnetB", "WorkerSg", "Worker"] {
        assert_eq!(
            events_of(&r, id),
            ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"],
            "{id}"
        );
    }
    assert!(events_of(&r, "Orders").len() == 2, "Orders unchanged");
    assert_eq!(
        r["stack"]["Parameters"][0]["ParameterValue"], "bonjour",
        "UsePreviousValue"
    );
    let worker = d.netns("Worker");
    assert!(std::path::Path::new("/run/netns").join(&worker).exists());
    // No rule admits Worker to the database's 6000 yet.
    let _six = peer_server(&d.netns("Database"), "10.40.1.10:6000");
    assert!(!connects(&d, "exec", "Worker", "10.40.1.10", 6000, 1));

    // 3. A rule, by boto3's update_stack and its waiter.
    let v3 = File::new(&d, "v3", &app(&["FUNCTION", "WORKER", "RULE"]));
    let r = cfn(&url, &["update", "app", v3.path()]);
    assert_eq!(r["waiter"], "complete");
    assert_eq!(status(&r), "UPDATE_COMPLETE");
    assert_eq!(
        events_of(&r, "WorkerToDatabase"),
        ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    );
    assert!(connects(&d, "exec", "Worker", "10.40.1.10", 6000, 5));

    // 4. The function removed, by `aws cloudformation deploy`.
    let v4 = File::new(&d, "v4", &app(&["WORKER", "RULE"]));
    let r = cfn(&url, &["deploy", "app", v4.path()]);
    assert_eq!(r["rc"], 0, "{}\n{r}", r["stderr"]);
    assert_eq!(status(&r), "UPDATE_COMPLETE");
    assert_eq!(
        events_of(&r, "Orders")[2..],
        ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    );
    assert!(r["resources"].get("Orders").is_none());
    assert!(!d.vpc(&["get-function", "orders"]).status.success());

    // 5. An update that fails (a subnet outside the VPC): rolled back, the
    // stack as it was, the held connection untouched.
    let v5 = File::new(&d, "v5", &app(&["WORKER", "RULE", "BAD"]));
    let before = vpc::state::State::load(&d.name).unwrap().model;
    let r = cfn(&url, &["update", "app", v5.path()]);
    assert!(
        r["waiter"]
            .as_str()
            .unwrap()
            .contains("UPDATE_ROLLBACK_COMPLETE"),
        "{}",
        r["waiter"]
    );
    assert_eq!(status(&r), "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(
        r["stack"]["StackStatusReason"],
        "The following resource(s) failed to update: [SubnetC]. "
    );
    let failed = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ResourceStatus"] == "UPDATE_FAILED")
        .expect("the failed resource's event");
    assert_eq!(failed["LogicalResourceId"], "SubnetC");
    assert!(
        failed["ResourceStatusReason"]
            .as_str()
            .unwrap()
            .contains("Resources.SubnetC.Properties.CidrBlock"),
        "{failed}"
    );
    assert_eq!(
        events_of(&r, "app")[events_of(&r, "app").len() - 4..],
        [
            "UPDATE_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE"
        ]
    );
    assert_eq!(
        r["template"],
        std::fs::read_to_string(&v4.0).unwrap(),
        "the template in force"
    );
    assert_eq!(vpc::state::State::load(&d.name).unwrap().model, before);
    assert!(held.echoes("after a rollback", 5));
    assert!(connects(&d, "exec", "Worker", "10.40.1.10", 6000, 5));
    // One the reconciler refuses (a subnet's block changes only by
    // replacement at AWS): rolled back the same way.
    let moved = app(&["WORKER", "RULE"])
        .replace("10.40.2.0/24", "10.40.3.0/24")
        .replace("10.40.2.10", "10.40.3.10");
    let v6 = File::new(&d, "v6", &moved);
    let r = cfn(&url, &["update", "app", v6.path()]);
    assert_eq!(status(&r), "UPDATE_ROLLBACK_COMPLETE");
    let failed = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ResourceStatus"] == "UPDATE_FAILED")
        .unwrap();
    assert_eq!(failed["LogicalResourceId"], "SubnetB", "{failed}");
    assert!(
        failed["ResourceStatusReason"]
            .as_str()
            .unwrap()
            .contains("NotUpdatable"),
        "{failed}"
    );
    assert_eq!(vpc::state::State::load(&d.name).unwrap().model, before);
    assert!(held.echoes("after a second rollback", 5));
    // `vpc status` shows the stacks and why one rolled back.
    let stacks = d.status()["stacks"].clone();
    assert_eq!(stacks[0]["status"], "CREATE_COMPLETE");
    assert_eq!(stacks[1]["name"], "app");
    assert_eq!(stacks[1]["status"], "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(
        stacks[1]["reason"],
        "The following resource(s) failed to update: [SubnetB]. "
    );

    // 6. Deleted: its resources go, the network stays.
    let r = cfn(&url, &["delete", "app"]);
    assert_eq!(r["by_name"]["message"], "Stack with id app does not exist");
    assert_eq!(r["by_id"], "DELETE_COMPLETE");
    assert_eq!(r["list"]["app"], "DELETE_COMPLETE");
    assert!(r["again"].is_null(), "deleting a deleted stack succeeds");
    assert!(!std::path::Path::new("/run/netns").join(&worker).exists());
    let m = vpc::state::State::load(&d.name).unwrap().model;
    assert!(m.subnet("SubnetB").is_none() && m.subnet("SubnetA").is_some());
    assert!(held.echoes("after the delete", 5));
}

fn v1_text(f: &File) -> String {
    std::fs::read_to_string(&f.0).unwrap()
}
