//! CloudFormation as written, end to end: conditions decide what exists on
//! the datapath (a false condition's ACL entry and group rule are not
//! there, and `vpc apply` with the parameter flipped changes the verdict),
//! every intrinsic function comes up with the values AWS computes (SSM
//! parameters from the parameter store, CDK's bootstrap rule), exports are
//! imported by name across deployments, and a type that would change the
//! network without being modelled is refused, changing nothing.
use std::path::PathBuf;

use serde_json::Value;
use vpc_tests::{
    connects, fixture, namespaces_with_prefix, peer_server, text, unique_name, vpc, vpc_env,
    Deployment, FAST,
};

const CONDITIONS: &str = fixture!("conditions.yaml");
const INTRINSICS: &str = fixture!("intrinsics.yaml");

/// A parameter store of the test's own (`VPC_PARAMETER_STORE`), removed
/// when dropped.
struct Store(PathBuf);

impl Store {
    fn new(name: &str) -> Self {
        Store(std::env::temp_dir().join(format!("{name}-ssm.json")))
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("VPC_PARAMETER_STORE", self.0.to_str().unwrap())]
    }

    fn put(&self, name: &str, value: &str) {
        let out = vpc_env(
            "any",
            &[
                "ssm",
                "put-parameter",
                "--name",
                name,
                "--value",
                value,
                "--overwrite",
            ],
            &self.env(),
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for ext in ["json", "lock", "tmp"] {
            let _ = std::fs::remove_file(self.0.with_extension(ext));
        }
    }
}

/// Output `key` of `vpc status --json`.
fn output(status: &Value, key: &str) -> Option<String> {
    status["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == key)
        .map(|o| o["value"].as_str().unwrap().to_string())
}

/// The database's ports and the drop reason that stops each when closed:
/// 5432 has no ACL allow entry, 5433 no group rule, 5434 an ACL deny entry.
const PORTS: [(u16, &str); 3] = [
    (5432, "nacl_ingress_denied"),
    (5433, "sg_ingress_denied"),
    (5434, "nacl_ingress_denied"),
];

/// Every port refuses the function's connection, each for its reason.
fn all_closed(d: &Deployment) {
    for (port, reason) in PORTS {
        let before = d.dropped(reason);
        assert!(
            !connects(d, "invoke", "reports", "10.0.2.10", port, 1),
            "{port} must be closed"
        );
        assert!(d.dropped(reason) > before, "{port}: dropped as {reason}");
    }
}

fn all_open(d: &Deployment) {
    for (port, _) in PORTS {
        assert!(
            connects(d, "invoke", "reports", "10.0.2.10", port, 5),
            "{port} must be open"
        );
    }
}

#[test]
fn a_false_condition_leaves_the_acl_entry_and_the_group_rule_out_and_apply_flips_it() {
    let d = Deployment::up("tplc", CONDITIONS, FAST);
    let servers = PORTS.map(|(p, _)| peer_server(&d.netns("Db"), &format!("10.0.2.10:{p}")));
    // Closed (the default): the excluded entries and rule are not there.
    all_closed(&d);
    assert_eq!(output(&d.status(), "DbAccess").as_deref(), Some("closed"));

    // The parameter flipped: the entries and the rule appear, the deny goes.
    let out = d.try_apply_with(CONDITIONS, &["-p", "Access=open"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    all_open(&d);
    assert_eq!(
        output(&d.status(), "DbAccess").as_deref(),
        Some("open: 10.0.2.10:5432-5434")
    );

    // A refused template changes nothing: still open.
    let bad = CONDITIONS.replacen(
        "Outputs:",
        "  Tgw: {Type: AWS::EC2::TransitGateway}\nOutputs:",
        1,
    );
    let out = d.try_apply_with(&bad, &["-p", "Access=closed"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("Resources.Tgw.Type: AWS::EC2::TransitGateway would change the network"),
        "{}",
        text(&out)
    );
    let out = d.try_apply_with(CONDITIONS, &["-p", "Access=ajar"], &[]);
    assert!(
        !out.status.success()
            && text(&out)
                .contains("Parameters.Access: Parameter 'Access' must be one of AllowedValues"),
        "{}",
        text(&out)
    );
    assert!(connects(&d, "invoke", "reports", "10.0.2.10", 5432, 5));
    assert!(connects(&d, "invoke", "reports", "10.0.2.10", 5433, 5));

    // And back: closed again.
    let out = d.try_apply_with(CONDITIONS, &["-p", "Access=closed"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    all_closed(&d);
    assert_eq!(output(&d.status(), "DbAccess").as_deref(), Some("closed"));
    let answered: usize = servers.into_iter().map(|s| s.stop()).sum();
    assert!(
        answered >= 5,
        "the servers saw the open connections: {answered}"
    );
}

#[test]
fn every_intrinsic_comes_up_with_the_values_aws_computes() {
    let name_hint = unique_name("tpls");
    let store = Store::new(&name_hint);
    // The database's address comes from the parameter store.
    store.put("/app/db/host", "10.20.1.10");
    let d = Deployment::up_env("tpli", INTRINSICS, FAST, &store.env());
    let s = d.status();
    let stack = d.name.as_str();
    let out = |k: &str| output(&s, k).unwrap_or_else(|| panic!("output {k}: {s}"));
    assert_eq!(out("SubnetACidr"), "10.20.0.0/24");
    assert_eq!(out("SubnetBCidr"), "10.20.1.0/24");
    assert_eq!(out("SubnetBAz"), "us-east-1b");
    assert_eq!(out("DbAddress"), "10.20.1.10");
    assert_eq!(out("AppAddress"), "10.20.1.20");
    assert_eq!(
        out("RoleArn"),
        format!("arn:aws:iam::123456789012:role/{stack}-db-role")
    );
    assert!(out("ProfileArn").starts_with(&format!(
        "arn:aws:iam::123456789012:instance-profile/{stack}-InstanceProfile-"
    )));
    assert_eq!(
        out("FnArn"),
        format!("arn:aws:lambda:us-east-1:123456789012:function:{stack}-reports")
    );
    assert_eq!(
        out("LogGroupArn"),
        format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{stack}-reports:*")
    );
    // printf '#!/bin/sh\necho prod > /tmp/env\n' | base64
    assert_eq!(
        out("UserData"),
        "IyEvYmluL3NoCmVjaG8gcHJvZCA+IC90bXAvZW52Cg=="
    );
    assert_eq!(out("Azs"), "us-east-1a,us-east-1b,us-east-1c");
    assert!(out("StackId").starts_with(&format!(
        "arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/"
    )));
    assert_eq!(out("Config"), r#"{"count":2,"teams":["orders","billing"]}"#);
    assert_eq!(out("TeamCount"), "2");
    assert_eq!(out("Bootstrap"), "30");
    assert_eq!(output(&s, "DevOnly"), None, "its condition is false");
    // The AMI: the parameter store's documented fallback.
    let image = out("Image");
    let got = vpc_env(
        "any",
        &[
            "ssm",
            "get-parameter",
            "--name",
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "--output",
            "json",
        ],
        &store.env(),
    );
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["Parameter"]["Value"], image.as_str());
    assert!(image.starts_with("ami-") && image.len() == 21, "{image}");
    // Parameters as the stack shows them: NoEcho masked, SSM resolved.
    let param = |k: &str| {
        s["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(param("DbPassword")["value"], "****");
    assert_eq!(param("DbHost")["value"], "/app/db/host");
    assert_eq!(param("DbHost")["resolved_value"], "10.20.1.10");
    // Addresses from the SSM parameter and Fn::Join/Split/FindInMap.
    let host = |id: &str| {
        s["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            host("Db")["address"].as_str(),
            host("Db")["subnet"].as_str()
        ),
        (Some("10.20.1.10"), Some("SubnetB"))
    );
    assert_eq!(host("App")["address"], "10.20.1.20");
    assert!(d.eni_address("SubnetA").starts_with("10.20.0."));
    let kept: Vec<&str> = s["stack_resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logical_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "CDKMetadata",
            "Config",
            "FnRole",
            "InstanceProfile",
            "InstanceRole",
            "Logs",
            "Permission"
        ]
    );
    // The function's environment, as Fn::Sub, Fn::Join and Fn::If made it.
    let env = d.vpc(&[
        "invoke",
        "Fn",
        "--",
        "sh",
        "-c",
        "echo \"$DB_URL|$TEAMS|$SUFFIX|$NOTIFY|${OPTIONAL-unset}|$TEAM\"",
    ]);
    assert!(env.status.success(), "{}", text(&env));
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        "postgres://app:hunter22@10.20.1.10:5432/us-east-1-virginia|orders:billing|aws.amazonaws.com||unset|orders-first"
    );
    // The group's rule from !Select [0, !Ref Ports]: 5432 connects, 6379 not.
    let _server = peer_server(&d.netns("Db"), "10.20.1.10:5432");
    let _other = peer_server(&d.netns("Db"), "10.20.1.10:6379");
    assert!(connects(&d, "invoke", "Fn", "10.20.1.10", 5432, 5));
    assert!(!connects(&d, "invoke", "Fn", "10.20.1.10", 6379, 1));

    // CDK's rule: a bootstrap version below 6 refuses the change, which
    // changes nothing.
    store.put("/cdk-bootstrap/hnb659fds/version", "5");
    let out = d.try_apply_with(INTRINSICS, &["-p", "Ports=6379"], &store.env());
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "Rules.CheckBootstrapVersion.Assertions[0]: CDK bootstrap stack version 6 required."
        ),
        "{}",
        text(&out)
    );
    store.put("/cdk-bootstrap/hnb659fds/version", "21");
    let out = d.try_apply_with(INTRINSICS, &["-p", "Ports=6379"], &store.env());
    assert!(
        !out.status.success()
            && text(&out).contains("Rules.ProdPorts.Assertions[0]: prod needs the database port"),
        "{}",
        text(&out)
    );
    assert!(connects(&d, "invoke", "Fn", "10.20.1.10", 5432, 5));
    // The SSM parameter changed and applied: the database moves.
    store.put("/app/db/host", "10.20.1.11");
    let out = d.try_apply_with(INTRINSICS, &[], &store.env());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        output(&d.status(), "DbAddress").as_deref(),
        Some("10.20.1.11")
    );
}

/// SSM's API on the agent's endpoint (the AWS CLI) writes the store that
/// templates resolve from: a parameter put through it is what the next
/// `vpc apply` resolves, and what `vpc ssm` shows.
#[test]
fn the_parameter_store_api_writes_what_templates_resolve() {
    let store = Store::new(&unique_name("ssmapi"));
    let mut args = vec!["--api-addr", "127.0.0.1:0"];
    args.extend_from_slice(FAST);
    let d = Deployment::up_env("ssmapi", fixture!("ec2/empty.yaml"), &args, &store.env());
    let url = d.status()["api_url"].as_str().unwrap().to_string();
    let ssm = |a: &[&str]| {
        let out = vpc_tests::aws_cli(&url, &[&["ssm"], a].concat());
        (out.status.success(), text(&out))
    };
    let json = |a: &[&str]| -> Value {
        let (ok, t) = ssm(a);
        assert!(ok, "aws ssm {a:?}: {t}");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
    };
    let put = [
        "put-parameter",
        "--name",
        "/app/db/host",
        "--value",
        "10.20.1.10",
        "--type",
        "String",
    ];
    assert_eq!(json(&put)["Version"], 1);
    let (ok, t) = ssm(&put);
    assert!(!ok && t.contains("ParameterAlreadyExists"), "{t}");
    json(&[
        "put-parameter",
        "--name",
        "/app/db/port",
        "--value",
        "5432",
        "--type",
        "String",
    ]);
    let got = json(&["get-parameter", "--name", "/app/db/host"]);
    assert_eq!(got["Parameter"]["Value"], "10.20.1.10", "{got}");
    let by_path = json(&["get-parameters-by-path", "--path", "/app", "--recursive"]);
    assert_eq!(
        by_path["Parameters"].as_array().unwrap().len(),
        2,
        "{by_path}"
    );
    let (ok, t) = ssm(&["get-parameter", "--name", "/app/none"]);
    assert!(!ok && t.contains("ParameterNotFound"), "{t}");
    // A public AMI parameter: the store's documented fallback, as `vpc ssm` shows it.
    let ami = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
    let image = json(&["get-parameter", "--name", ami])["Parameter"]["Value"].clone();
    let cli = vpc_env(
        "any",
        &["ssm", "get-parameter", "--name", ami, "--output", "json"],
        &store.env(),
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["Parameter"]["Value"], image);
    // The same store: `vpc ssm` reads what the API wrote ...
    let cli = vpc_env(
        "any",
        &[
            "ssm",
            "get-parameter",
            "--name",
            "/app/db/host",
            "--output",
            "json",
        ],
        &store.env(),
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["Parameter"]["Value"], "10.20.1.10");
    // ... and a template's `AWS::SSM::Parameter::Value<String>` resolves it.
    let out = d.try_apply_with(INTRINSICS, &[], &store.env());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        output(&d.status(), "DbAddress").as_deref(),
        Some("10.20.1.10")
    );
}

#[test]
fn exports_are_imported_by_name_across_deployments() {
    let exporter_name = unique_name("tple");
    let exporter = "Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.30.0.0/16}}
  Subnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.30.1.0/24}}
Outputs:
  Cidr: {Value: !GetAtt Vpc.CidrBlock, Export: {Name: !Sub '${AWS::StackName}-Cidr'}}
  Subnet: {Value: !Ref Subnet, Export: {Name: !Sub '${AWS::StackName}-Subnet'}}
";
    let importer = format!(
        "Resources:
  Vpc: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: !ImportValue {exporter_name}-Cidr}}}}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {{VpcId: !Ref Vpc, CidrBlock: !Select [2, !Cidr [!ImportValue {exporter_name}-Cidr, 4, 8]]}}
Outputs:
  SubnetCidr: {{Value: !GetAtt Subnet.CidrBlock}}
  TheirSubnet: {{Value: !ImportValue {{Fn::Sub: '{exporter_name}-Subnet'}}}}
"
    );
    // Nothing exports it yet.
    let path = std::env::temp_dir().join(format!("{exporter_name}-importer.yaml"));
    std::fs::write(&path, &importer).unwrap();
    let early = vpc(&unique_name("tpla"), &["validate", path.to_str().unwrap()]);
    assert!(!early.status.success());
    assert!(
        text(&early).contains(&format!("No export named {exporter_name}-Cidr found")),
        "{}",
        text(&early)
    );
    // The exporter must have this name: its exports carry it.
    let a = {
        let file = write(&exporter_name, exporter);
        let out = vpc(&exporter_name, &["up", &file]);
        let _ = std::fs::remove_file(&file);
        let a = Deployment {
            name: exporter_name.clone(),
        };
        assert!(out.status.success(), "{}", text(&out));
        a
    };
    let b = Deployment::up("tplb", &importer, &[]);
    let s = b.status();
    assert_eq!(output(&s, "SubnetCidr").as_deref(), Some("10.30.2.0/24"));
    assert_eq!(output(&s, "TheirSubnet").as_deref(), Some("Subnet"));
    // An export name is the account's: a second stack cannot take it.
    let dup = exporter.replace(
        "!Sub '${AWS::StackName}-Cidr'",
        &format!("{exporter_name}-Cidr"),
    );
    std::fs::write(&path, dup).unwrap();
    let out = vpc(&unique_name("tpld"), &["validate", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(
        !out.status.success()
            && text(&out).contains(&format!(
                "Outputs.Cidr.Export.Name: Export with name {exporter_name}-Cidr is already exported by stack {exporter_name}"
            )),
        "{}",
        text(&out)
    );
    drop(b);
    drop(a);
}

/// `template` written where `vpc up` reads it once; its path.
fn write(name: &str, template: &str) -> String {
    let path = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&path, template).unwrap();
    path.display().to_string()
}

#[test]
fn an_unmodelled_network_type_is_refused_naming_the_resource() {
    let name = unique_name("tplr");
    let t = format!(
        "{}  Peering: {{Type: AWS::EC2::VPCPeeringConnection, Properties: {{VpcId: !Ref Vpc, PeerVpcId: vpc-12345678}}}}\n  Queue: {{Type: AWS::SQS::Queue}}\n",
        CONDITIONS.split("Outputs:").next().unwrap()
    );
    let path = write(&name, &t);
    let out = vpc(&name, &["up", &path]);
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        let _ = vpc(&name, &["down"]);
        panic!("vpc up should refuse it:\n{}", text(&out));
    }
    assert!(
        text(&out).contains(
            "Resources.Peering.Type: AWS::EC2::VPCPeeringConnection would change the network and is not modelled by this project"
        ),
        "{}",
        text(&out)
    );
    // Nothing was built.
    assert!(namespaces_with_prefix(&name).is_empty());
    assert!(!std::path::Path::new("/run/vpc").join(&name).exists());
}
