//! Real CDK apps (tests/fixtures/cdk/), synthesized here by aws-cdk-lib
//! from npm (`node app.js` with `CDK_OUTDIR` and the context of
//! tests/fixtures/cdk/cdk.json, as `cdk synth` runs an app), brought up
//! from their `cdk.out` as the CDK wrote it, and their functions reached end
//! to end: a default `ec2.Vpc` with an instance and an inline function; a
//! dual-stack VPC with a function whose code is an asset; two stacks with
//! cross-stack references.
use std::{path::PathBuf, process::Command};

use serde_json::{json, Value};
use vpc_tests::{fixture_path, peer_server, text, Deployment, FAST};

/// A `cdk.out` of the test's own, removed on drop.
struct CdkOut(PathBuf);

impl Drop for CdkOut {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

impl CdkOut {
    fn template(&self, stack: &str) -> PathBuf {
        self.0.join(format!("{stack}.template.json"))
    }
}

/// The context `cdk synth` gives an app: cdk.json's (the feature flags
/// `cdk init` writes), with `overrides`.
fn context(overrides: &[(&str, Value)]) -> String {
    let cdk_json: Value =
        serde_json::from_slice(&std::fs::read(fixture_path("cdk/cdk.json")).unwrap()).unwrap();
    let mut ctx = cdk_json["context"].clone();
    for (k, v) in overrides {
        ctx[*k] = v.clone();
    }
    ctx.to_string()
}

/// Synthesizes tests/fixtures/cdk/`app` into a fresh `cdk.out`.
fn synth(app: &str, overrides: &[(&str, Value)]) -> CdkOut {
    let dir = std::env::temp_dir().join(vpc_tests::unique_name("cdk"));
    let out = dir.join("cdk.out");
    std::fs::create_dir_all(&dir).unwrap();
    let cdk_out = CdkOut(out.clone());
    let run = Command::new("node")
        .arg("app.js")
        .current_dir(fixture_path(&format!("cdk/{app}")))
        .env("NODE_PATH", vpc_tests::cdk_node_modules())
        .env("CDK_OUTDIR", &out)
        .env("CDK_CONTEXT_JSON", context(overrides))
        .output()
        .unwrap();
    assert!(run.status.success(), "node app.js: {}", text(&run));
    cdk_out
}

fn invoke(d: &Deployment, f: &str, payload: &Value) -> Value {
    let out = d.vpc(&["invoke", f, "--payload", &payload.to_string()]);
    assert!(out.status.success(), "{f}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{f}: {e}: {}", text(&out)))
}

/// The address a database's answer names (`ip:port`, `[ip6]:port`): the ip.
fn address(seen: &Value) -> String {
    seen.as_str()
        .and_then(|s| s.rsplit_once(':'))
        .map(|(ip, _)| ip.trim_matches(|c| c == '[' || c == ']').to_string())
        .unwrap_or_else(|| panic!("{seen}"))
}

/// The logical id of the one resource of `m` the CDK named `prefix...`.
fn cdk_id<'a>(ids: impl Iterator<Item = &'a str>, prefix: &str) -> String {
    let found: Vec<&str> = ids.filter(|id| id.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{prefix}: {found:?}");
    found[0].to_string()
}

/// `ec2.Vpc` with its defaults, `ec2.Instance` and an inline
/// `lambda.Function` in the VPC, synthesized by aws-cdk-lib: the template
/// comes up unchanged (two AZs of public and private-with-egress subnets,
/// a NAT gateway with its Elastic IP in each, the default group emptied
/// by the CDK's custom resource, whose provider function runs from its
/// asset; the instance with its SSM AMI parameter, role, profile and
/// UserData), and the function reaches the database instance through its
/// ENI, admitted by the rule `addIngressRule` made between the groups.
#[test]
fn a_cdk_vpc_with_an_instance_and_an_inline_function_comes_up() {
    let out = synth("vpc_instance_function", &[]);
    let d = Deployment::up_file("cdkvpc", &out.template("VpcInstanceFunction"), FAST);
    let m = vpc::state::State::load(&d.name).unwrap().model;
    assert_eq!(m.subnets.len(), 4);
    assert_eq!(m.nat_gateways.len(), 2);
    assert_eq!(m.internet_gateways.len(), 1);
    let kept: Vec<(&str, &str)> = m
        .stack_resources
        .iter()
        .map(|r| (r.logical_id.as_str(), r.resource_type.as_str()))
        .collect();
    for kind in [
        "AWS::IAM::InstanceProfile",
        "Custom::VpcRestrictDefaultSG",
        "AWS::Logs::LogGroup",
    ] {
        assert!(kept.iter().any(|(_, k)| *k == kind), "{kind} in {kept:?}");
    }
    // restrictDefaultSecurityGroup: the VPC's default group has no rules.
    let default = m
        .groups
        .iter()
        .find(|g| g.id.ends_with(".DefaultSecurityGroup"))
        .expect("the default group");
    assert!(
        default.ingress.is_empty() && default.egress.is_empty(),
        "{default:?}"
    );
    // The custom resource's provider: a Node.js function from its asset.
    let provider = cdk_id(
        m.functions.iter().map(|f| f.id.as_str()),
        "CustomVpcRestrictDefaultSGCustomResourceProviderHandler",
    );
    assert!(m.function(&provider).unwrap().package.is_some());

    let db = cdk_id(m.hosts.iter().map(|h| h.id.as_str()), "Database");
    let db_ip = m.output("DatabaseIp").unwrap().value.clone();
    assert_eq!(
        m.hosts.iter().find(|h| h.id == db).unwrap().ip.to_string(),
        db_ip
    );
    let orders = cdk_id(m.functions.iter().map(|f| f.id.as_str()), "Orders");
    assert_eq!(
        m.output("FunctionName").unwrap().value,
        m.function(&orders).unwrap().name
    );
    let server = peer_server(&d.netns(&db), &format!("{db_ip}:5432"));
    let r = invoke(&d, &orders, &json!({}));
    let enis: Vec<String> = d.status()["enis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_string())
        .collect();
    assert!(enis.contains(&address(&r["seen_by_db"])), "{r}: {enis:?}");
    assert_eq!(server.stop(), 1);
}

/// A dual-stack `ec2.Vpc` (`IpProtocol.DUAL_STACK`) and a function whose
/// code is an asset (`lambda.Code.fromAsset`, a handler importing its
/// other module), placed through `Vpc.fromVpcAttributes` and
/// `SecurityGroup.fromSecurityGroupId` with `ipv6AllowedForDualStack`:
/// the function reaches the database over IPv4 and IPv6, leaving through
/// its ENI's addresses of both families.
#[test]
fn a_cdk_dual_stack_function_with_asset_code_reaches_its_database_over_both_families() {
    let out = synth("dual_stack_asset", &[]);
    let d = Deployment::up_file("cdkdual", &out.template("DualStackAsset"), FAST);
    let m = vpc::state::State::load(&d.name).unwrap().model;
    assert!(
        m.vpcs[0].ipv6_cidr.is_some(),
        "an Amazon-provided IPv6 block"
    );
    assert_eq!(m.egress_only_internet_gateways.len(), 1);
    let db = m
        .hosts
        .iter()
        .find(|h| h.id.starts_with("Database"))
        .expect("the database")
        .clone();
    let db6 = db
        .ip6
        .expect("an IPv6 address (AssignIpv6AddressOnCreation)");
    let handler = cdk_id(m.functions.iter().map(|f| f.id.as_str()), "Handler");
    let f = m.function(&handler).unwrap();
    assert!(
        f.vpc_config.as_ref().unwrap().ipv6_allowed_for_dual_stack,
        "{f:?}"
    );
    // Its package: the asset directory cdk.out holds (index.py, db.py).
    let asset = std::fs::read_dir(&out.0)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("db.py").exists())
        .expect("the handler's asset");
    assert_eq!(
        f.package,
        Some(vpc::lambda::code::Package::from_dir(&asset).unwrap())
    );
    let v4 = peer_server(&d.netns(&db.id), &format!("{}:5432", db.ip));
    let v6 = peer_server(&d.netns(&db.id), &format!("[{db6}]:5432"));
    let r = invoke(
        &d,
        &handler,
        &json!({"v4": db.ip.to_string(), "v6": db6.to_string()}),
    );
    let enis = d.status()["enis"].as_array().unwrap().clone();
    let eni = enis
        .iter()
        .find(|e| e["address"] == address(&r["v4"]).as_str())
        .unwrap_or_else(|| panic!("{r}: {enis:?}"));
    assert_eq!(
        eni["ipv6_address"],
        address(&r["v6"]).as_str(),
        "{r}: {eni}"
    );
    assert_eq!(r["region"], "us-east-1");
    assert_eq!((v4.stop(), v6.stop()), (1, 1));
}

/// Two stacks of one CDK app, Network (the VPC, the database, the
/// groups) and App (a function in Network's subnets and group, told the
/// database's address), side by side in one deployment: `vpc up --stack
/// Network`, then `vpc apply --stack App`. The CDK writes the references
/// as `Fn::GetStackOutput` (the weak references of `cdk init`'s flags) or,
/// with `@aws-cdk/core:defaultCrossStackReferences` strong, as exports and
/// `Fn::ImportValue`: both resolve to Network's resources, and the
/// function reaches the database through its ENI. Deleting App removes its
/// function and leaves Network as it runs.
#[test]
fn two_cdk_stacks_with_cross_stack_references_come_up_as_one_deployment() {
    for (tag, overrides, reference) in [
        ("cdkweak", vec![], "Fn::GetStackOutput"),
        (
            "cdkstrong",
            vec![("@aws-cdk/core:defaultCrossStackReferences", json!("strong"))],
            "Fn::ImportValue",
        ),
    ] {
        let out = synth("network_app", &overrides);
        let app = std::fs::read_to_string(out.template("App")).unwrap();
        assert!(app.contains(reference), "{tag}: {reference} in App");
        let mut args = vec!["--stack", "Network"];
        args.extend_from_slice(FAST);
        let d = Deployment::up_file(tag, &out.template("Network"), &args);
        let apply = d.vpc(&[
            "apply",
            "--stack",
            "App",
            out.template("App").to_str().unwrap(),
        ]);
        assert!(apply.status.success(), "{tag}: {}", text(&apply));
        assert!(
            text(&apply).contains("stack App CREATE_COMPLETE"),
            "{}",
            text(&apply)
        );
        let m = vpc::state::State::load(&d.name).unwrap().model;
        let names: Vec<&str> = m.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Network", "App"]);
        let orders = cdk_id(m.functions.iter().map(|f| f.id.as_str()), "Orders");
        let f = m.function(&orders).unwrap();
        assert_eq!(f.name, format!("App-{orders}"), "named after its stack");
        assert_eq!(m.stack_of(&orders).unwrap().name, "App");
        let vc = f.vpc_config.as_ref().unwrap();
        assert!(
            vc.subnets
                .iter()
                .all(|s| m.stack_of(s).unwrap().name == "Network"),
            "{vc:?}"
        );
        let db = m
            .hosts
            .iter()
            .find(|h| h.id.starts_with("Database"))
            .unwrap();
        assert_eq!(f.environment["DB_HOST"], db.ip.to_string());
        let server = peer_server(&d.netns(&db.id), &format!("{}:5432", db.ip));
        vpc_tests::wait_for(&format!("{tag}: {orders} Active"), 30, || {
            d.vpc(&["get-function", &orders])
                .stdout
                .windows(6)
                .any(|w| w == b"Active")
        });
        let r = invoke(&d, &orders, &json!({}));
        let enis: Vec<String> = d.status()["enis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["address"].as_str().unwrap().to_string())
            .collect();
        assert!(
            enis.contains(&address(&r["seen_by_db"])),
            "{tag}: {r}: {enis:?}"
        );
        assert_eq!(server.stop(), 1);
        // App goes; Network stays as it runs.
        let del = d.vpc(&["delete-stack", "App"]);
        assert!(del.status.success(), "{}", text(&del));
        let m = vpc::state::State::load(&d.name).unwrap().model;
        assert!(m.function(&orders).is_none());
        assert!(m.hosts.iter().any(|h| h.id == db.id));
        assert_eq!(m.stacks.len(), 1);
    }
}
