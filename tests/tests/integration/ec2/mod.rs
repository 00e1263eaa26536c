//! The EC2 API of the agent's endpoint, driven by the AWS CLI and boto3
//! (tests/fixtures/ec2.py) against a running deployment whose template
//! (tests/fixtures/ec2/network.yaml) has a VPC with a database instance:
//! the template's resources described under their EC2 ids, a subnet and a
//! group made beside them with a function (Lambda API) in them, and every
//! rule, ACL entry and route the API changes checked on real connections
//! from the function to the database. Then moto's own EC2 tests in server
//! mode ([`moto_conformance`]).
use std::process::Command;

mod addresses;
mod cidr_reservations;
mod dhcp_options;
mod endpoints;
mod flow_logs;
mod instances;
mod network_interfaces;
mod prefix_lists;
mod private_ips;
mod vpc_cidr_blocks;

use serde_json::Value;
use vpc_tests::{
    connects, fixture, fixture_path, line_echo_server, peer_server, pyenv, pyenv_python,
    tcp_server, text, Deployment, LineClient, FAST,
};

const NETWORK: &str = fixture!("ec2/network.yaml");

/// A deployment of `template` with the EC2 API on, and the API's URL.
fn up_from(tag: &str, template: &str, extra: &[&str]) -> (Deployment, String) {
    let mut args = vec!["--api-addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(FAST);
    let d = Deployment::up(tag, template, &args);
    let url = d.status()["api_url"].as_str().unwrap().to_string();
    (d, url)
}

fn up(tag: &str) -> (Deployment, String) {
    up_from(tag, NETWORK, &[])
}

/// [`NETWORK`]'s VPC, the database's subnet and group, by their EC2 ids.
struct Network {
    vpc: String,
    subnet: String,
    db_sg: String,
}

fn network(d: &Deployment) -> Network {
    let id = |kind, logical| vpc::ec2::ids::derived(kind, &d.name, &d.name, logical);
    Network {
        vpc: id("vpc", "Vpc"),
        subnet: id("subnet", "DbSubnet"),
        db_sg: id("sg", "DbSg"),
    }
}

/// `aws ec2 ARGS --output json` against `url`: its JSON, or the error's
/// text (`Err`).
pub(crate) fn aws(url: &str, args: &[&str]) -> Result<Value, String> {
    let out = vpc_tests::aws_cli(url, &[&["ec2"], args].concat());
    if !out.status.success() {
        return Err(text(&out));
    }
    if out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out))))
}

fn ok(url: &str, args: &[&str]) -> Value {
    aws(url, args).unwrap_or_else(|e| panic!("aws ec2 {args:?}: {e}"))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

/// `answer` is AWS's error `code`.
fn refused(answer: Result<Value, String>, code: &str) {
    let e = answer.unwrap_err();
    assert!(e.contains(&format!("({code})")), "{e}");
}

fn subnet(url: &str, vpc: &str, cidr: &str) -> String {
    let made = ok(
        url,
        &["create-subnet", "--vpc-id", vpc, "--cidr-block", cidr],
    );
    s(&made["Subnet"]["SubnetId"])
}

/// A security group without rules.
fn group(url: &str, vpc: &str, name: &str) -> String {
    let made = ok(
        url,
        &[
            "create-security-group",
            "--group-name",
            name,
            "--description",
            name,
            "--vpc-id",
            vpc,
        ],
    );
    s(&made["GroupId"])
}

/// A rule of `group` admitting TCP `port` from `from`: a group's id or a CIDR.
fn allow(url: &str, group: &str, port: &str, from: &str) -> Value {
    let source = if from.starts_with("sg-") {
        "--source-group"
    } else {
        "--cidr"
    };
    ok(
        url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            group,
            "--protocol",
            "tcp",
            "--port",
            port,
            source,
            from,
        ],
    )
}

/// An instance of the API: its ids, and the host it is (named by its id
/// without the dash) with its namespace.
struct Instance {
    id: String,
    eni: String,
    ip: String,
    host: String,
    ns: String,
}

/// RunInstances of one instance in `subnet` with `group`, at `ip` or at
/// the address EC2 picks.
fn run_instance(
    d: &Deployment,
    url: &str,
    subnet: &str,
    group: &str,
    ip: Option<&str>,
) -> Instance {
    let mut args = vec![
        "run-instances",
        "--image-id",
        "ami-12345678",
        "--count",
        "1",
        "--subnet-id",
        subnet,
        "--security-group-ids",
        group,
    ];
    args.extend(ip.map(|ip| ["--private-ip-address", ip]).iter().flatten());
    let run = ok(url, &args);
    let i = &run["Instances"][0];
    let id = s(&i["InstanceId"]);
    let host = id.replace('-', "");
    Instance {
        eni: s(&i["NetworkInterfaces"][0]["NetworkInterfaceId"]),
        ip: s(&i["PrivateIpAddress"]),
        ns: d.netns(&host),
        id,
        host,
    }
}

/// `vpc`'s main route table.
fn main_table(url: &str, vpc: &str) -> String {
    let main = ok(
        url,
        &[
            "describe-route-tables",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            "Name=association.main,Values=true",
        ],
    );
    s(&main["RouteTables"][0]["RouteTableId"])
}

/// An internet gateway attached to `vpc`, and `rtb`'s default route through it.
fn internet_gateway(url: &str, vpc: &str, rtb: &str) -> String {
    let igw = s(&ok(url, &["create-internet-gateway"])["InternetGateway"]["InternetGatewayId"]);
    ok(
        url,
        &[
            "attach-internet-gateway",
            "--internet-gateway-id",
            &igw,
            "--vpc-id",
            vpc,
        ],
    );
    ok(
        url,
        &[
            "create-route",
            "--route-table-id",
            rtb,
            "--destination-cidr-block",
            "0.0.0.0/0",
            "--gateway-id",
            &igw,
        ],
    );
    igw
}

#[test]
fn the_aws_cli_and_boto3_build_beside_a_template_and_traffic_follows() {
    let (d, url) = up("ec2api");
    let stack = d.name.clone();
    // The template's resources, under stable EC2 ids derived from the
    // deployment, its stack and their logical ids.
    let vpcs = ok(
        &url,
        &[
            "describe-vpcs",
            "--filters",
            "Name=tag:Name,Values=template-vpc",
        ],
    );
    let vpc = s(&vpcs["Vpcs"][0]["VpcId"]);
    assert_eq!(vpc, vpc::ec2::ids::derived("vpc", &d.name, &stack, "Vpc"));
    assert_eq!(vpcs["Vpcs"][0]["CidrBlock"], "10.42.0.0/16");
    assert_eq!(vpcs["Vpcs"][0]["IsDefault"], false);
    let subnets = ok(
        &url,
        &[
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
        ],
    );
    assert_eq!(
        subnets["Subnets"][0]["SubnetId"],
        vpc::ec2::ids::derived("subnet", &d.name, &stack, "DbSubnet")
    );
    let db_sg = s(&ok(
        &url,
        &[
            "describe-security-groups",
            "--filters",
            "Name=group-name,Values=db",
        ],
    )["SecurityGroups"][0]["GroupId"]);
    // The default VPC every account has: 172.31.0.0/16, a /20 per zone.
    let dflt = ok(
        &url,
        &["describe-vpcs", "--filters", "Name=is-default,Values=true"],
    );
    assert_eq!(dflt["Vpcs"][0]["CidrBlock"], "172.31.0.0/16");
    let dvpc = s(&dflt["Vpcs"][0]["VpcId"]);
    let dsubnets = ok(
        &url,
        &[
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={dvpc}"),
            "Name=default-for-az,Values=true",
        ],
    );
    assert_eq!(dsubnets["Subnets"].as_array().unwrap().len(), 3);
    let main = ok(
        &url,
        &[
            "describe-route-tables",
            "--filters",
            &format!("Name=vpc-id,Values={dvpc}"),
            "Name=association.main,Values=true",
        ],
    );
    let routes = &main["RouteTables"][0]["Routes"];
    assert_eq!(routes[1]["DestinationCidrBlock"], "0.0.0.0/0", "{main}");
    assert!(s(&routes[1]["GatewayId"]).starts_with("igw-"), "{main}");
    assert_eq!(routes[1]["State"], "active");

    // boto3: a subnet and a group in the template's VPC, a function in them.
    let out = Command::new(pyenv_python())
        .arg(fixture_path("ec2.py"))
        .args([&url, &vpc])
        .output()
        .unwrap();
    assert!(out.status.success(), "ec2.py: {}", text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (subnet, app_sg) = (s(&made["subnet"]), s(&made["group"]));

    // 7000 answers every connection; 7001 echoes on the one it holds.
    let _db = peer_server(&d.netns("Db"), "10.42.1.10:7000");
    let _echo = line_echo_server(&d.netns("Db"), "10.42.1.10:7001");
    let reach = || connects(&d, "invoke", "app", "10.42.1.10", 7000, 5);
    let blocked = || !connects(&d, "invoke", "app", "10.42.1.10", 7000, 1);
    assert!(blocked(), "the database's group allows nothing yet");

    // A rule from the app's group, on the template's group: connections open.
    let auth = ok(
        &url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &db_sg,
            "--protocol",
            "tcp",
            "--port",
            "7000-7001",
            "--source-group",
            &app_sg,
        ],
    );
    let rule = s(&auth["SecurityGroupRules"][0]["SecurityGroupRuleId"]);
    assert!(rule.starts_with("sgr-"), "{auth}");
    assert!(reach(), "allowed from the app's group");
    // AWS's checks of a modified rule and of a rule filter, in its words.
    let modify = |r: &str| {
        let arg = format!("SecurityGroupRuleId={rule},SecurityGroupRule={{{r}}}");
        aws(
            &url,
            &[
                "modify-security-group-rules",
                "--group-id",
                &db_sg,
                "--security-group-rules",
                &arg,
            ],
        )
        .unwrap_err()
    };
    let e = modify("FromPort=1,ToPort=2,CidrIpv4=10.9.0.0/16");
    assert!(e.contains("(InvalidParameterValue)") && e.contains("Invalid value 'null' for protocol. VPC security group rules must specify protocols explicitly."), "{e}");
    let e = modify("IpProtocol=udp,ToPort=2,CidrIpv4=10.9.0.0/16");
    assert!(
        e.contains(
            "Invalid value for portRange. Must specify both from and to ports with TCP/UDP."
        ),
        "{e}"
    );
    let e = modify("IpProtocol=udp,FromPort=1,ToPort=2");
    assert!(
        e.contains("(MissingParameter)")
            && e.contains("exactly one of: cidrIp, cidrIpv6, prefixListId, or referencedGroupId"),
        "{e}"
    );
    let e = aws(
        &url,
        &[
            "describe-security-group-rules",
            "--filters",
            "Name=group-id,Values=foobar",
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("(InvalidGroupId.Malformed)")
            && e.contains("The security group ID 'foobar' is malformed"),
        "{e}"
    );
    assert!(reach(), "a refused change changes nothing");
    let e = aws(
        &url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &db_sg,
            "--protocol",
            "tcp",
            "--port",
            "7000-7001",
            "--source-group",
            &app_sg,
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidPermission.Duplicate)"), "{e}");
    let held = LineClient::connect(&d.exec_env_netns("app"), "10.42.1.10:7001");
    assert!(held.echoes("before", 5));

    // Revoked: new connections fail; a tracked one goes on, as at AWS.
    ok(
        &url,
        &[
            "revoke-security-group-ingress",
            "--group-id",
            &db_sg,
            "--security-group-rule-ids",
            &rule,
        ],
    );
    assert!(blocked(), "revoked");
    assert!(
        held.echoes("after the revoke", 5),
        "tracked connections go on"
    );
    let e = aws(
        &url,
        &[
            "revoke-security-group-ingress",
            "--group-id",
            &db_sg,
            "--protocol",
            "tcp",
            "--port",
            "7000",
            "--source-group",
            &app_sg,
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidPermission.NotFound)"), "{e}");
    ok(
        &url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &db_sg,
            "--ip-permissions",
            &format!(
                "IpProtocol=tcp,FromPort=7000,ToPort=7000,UserIdGroupPairs=[{{GroupId={app_sg}}}]"
            ),
        ],
    );
    assert!(reach());

    // A network ACL of the API on the app's subnet: a deny entry blocks.
    let acl = s(&ok(&url, &["create-network-acl", "--vpc-id", &vpc])["NetworkAcl"]["NetworkAclId"]);
    for (n, dir) in [("100", "--ingress"), ("100", "--egress")] {
        ok(
            &url,
            &[
                "create-network-acl-entry",
                "--network-acl-id",
                &acl,
                "--rule-number",
                n,
                dir,
                "--protocol",
                "-1",
                "--rule-action",
                "allow",
                "--cidr-block",
                "0.0.0.0/0",
            ],
        );
    }
    let assoc = ok(
        &url,
        &[
            "describe-network-acls",
            "--filters",
            &format!("Name=association.subnet-id,Values={subnet}"),
        ],
    );
    assert_eq!(assoc["NetworkAcls"][0]["IsDefault"], true, "{assoc}");
    let assoc_id = assoc["NetworkAcls"][0]["Associations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["SubnetId"] == subnet.as_str())
        .map(|a| s(&a["NetworkAclAssociationId"]))
        .unwrap();
    ok(
        &url,
        &[
            "replace-network-acl-association",
            "--association-id",
            &assoc_id,
            "--network-acl-id",
            &acl,
        ],
    );
    assert!(reach(), "allowed both ways");
    ok(
        &url,
        &[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--rule-number",
            "50",
            "--egress",
            "--protocol",
            "tcp",
            "--port-range",
            "From=7000,To=7000",
            "--rule-action",
            "deny",
            "--cidr-block",
            "10.42.1.0/24",
        ],
    );
    assert!(blocked(), "the deny entry comes first");
    let e = aws(
        &url,
        &[
            "create-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--rule-number",
            "50",
            "--egress",
            "--protocol",
            "-1",
            "--rule-action",
            "allow",
            "--cidr-block",
            "0.0.0.0/0",
        ],
    )
    .unwrap_err();
    assert!(e.contains("(NetworkAclEntryAlreadyExists)"), "{e}");
    ok(
        &url,
        &[
            "delete-network-acl-entry",
            "--network-acl-id",
            &acl,
            "--rule-number",
            "50",
            "--egress",
        ],
    );
    assert!(reach(), "the deny entry is gone");
    let e = aws(&url, &["delete-network-acl", "--network-acl-id", &acl]).unwrap_err();
    assert!(e.contains("(DependencyViolation)"), "{e}");

    // A subnet made by a caller of another region is in that region's
    // zones, and its ARN says that region.
    let sub = ok(
        &url,
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.42.9.0/24",
            "--availability-zone",
            "eu-west-1a",
            "--region",
            "eu-west-1",
        ],
    );
    let arn = s(&sub["Subnet"]["SubnetArn"]);
    assert!(arn.starts_with("arn:aws:ec2:eu-west-1:"), "{arn}");
    ok(
        &url,
        &[
            "delete-subnet",
            "--subnet-id",
            &s(&sub["Subnet"]["SubnetId"]),
        ],
    );

    // The VPC's IPv6 block: the answers say the change in progress, as
    // AWS's do; Describe shows where it ended.
    let a = ok(
        &url,
        &[
            "associate-vpc-cidr-block",
            "--vpc-id",
            &vpc,
            "--amazon-provided-ipv6-cidr-block",
        ],
    );
    let a = &a["Ipv6CidrBlockAssociation"];
    assert_eq!(a["Ipv6CidrBlockState"]["State"], "associating", "{a}");
    let v6 = |v: &Value| v["Vpcs"][0]["Ipv6CidrBlockAssociationSet"].clone();
    let shown = v6(&ok(&url, &["describe-vpcs", "--vpc-ids", &vpc]));
    assert_eq!(
        shown[0]["Ipv6CidrBlockState"]["State"], "associated",
        "{shown}"
    );
    assert_eq!(shown[0]["Ipv6CidrBlock"], a["Ipv6CidrBlock"]);
    let assoc = s(&a["AssociationId"]);
    let d6 = ok(
        &url,
        &["disassociate-vpc-cidr-block", "--association-id", &assoc],
    );
    assert_eq!(
        d6["Ipv6CidrBlockAssociation"]["Ipv6CidrBlockState"]["State"], "disassociating",
        "{d6}"
    );
    let shown = v6(&ok(&url, &["describe-vpcs", "--vpc-ids", &vpc]));
    assert!(shown.as_array().is_none_or(|a| a.is_empty()), "{shown}");

    // A route table with a route to an internet gateway, associated with
    // the app's subnet: the local route still reaches the database.
    let rtb = s(&ok(&url, &["create-route-table", "--vpc-id", &vpc])["RouteTable"]["RouteTableId"]);
    let igw = internet_gateway(&url, &vpc, &rtb);
    let a = ok(
        &url,
        &[
            "associate-route-table",
            "--route-table-id",
            &rtb,
            "--subnet-id",
            &subnet,
        ],
    );
    assert!(s(&a["AssociationId"]).starts_with("rtbassoc-"));
    let t = ok(&url, &["describe-route-tables", "--route-table-ids", &rtb]);
    let routes = &t["RouteTables"][0]["Routes"];
    assert_eq!(
        (
            &routes[0]["GatewayId"],
            &routes[1]["GatewayId"],
            &routes[1]["State"]
        ),
        (
            &Value::from("local"),
            &Value::from(igw.as_str()),
            &Value::from("active")
        ),
        "{t}"
    );
    assert!(reach(), "through the local route");
    ok(
        &url,
        &[
            "detach-internet-gateway",
            "--internet-gateway-id",
            &igw,
            "--vpc-id",
            &vpc,
        ],
    );
    let t = ok(&url, &["describe-route-tables", "--route-table-ids", &rtb]);
    assert_eq!(
        t["RouteTables"][0]["Routes"][1]["State"], "blackhole",
        "{t}"
    );
    let e = aws(&url, &["delete-route-table", "--route-table-id", &rtb]).unwrap_err();
    assert!(e.contains("(DependencyViolation)"), "{e}");

    // Tags on a template's resource, kept by the API.
    ok(
        &url,
        &[
            "create-tags",
            "--resources",
            &db_sg,
            "--tags",
            "Key=team,Value=data",
        ],
    );
    let tags = ok(
        &url,
        &[
            "describe-tags",
            "--filters",
            &format!("Name=resource-id,Values={db_sg}"),
        ],
    );
    assert_eq!(tags["Tags"][0]["Key"], "team", "{tags}");
    // The API's stack is not CloudFormation's to show or change.
    let out = vpc_tests::aws_cli(&url, &["cloudformation", "describe-stacks"]);
    let stacks: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let names: Vec<&str> = stacks["Stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["StackName"].as_str().unwrap())
        .collect();
    assert_eq!(names, [d.name.as_str()]);
}

/// moto's own EC2 tests (its source distribution's `tests/test_ec2/`, at
/// the version `cargo xtask provision` installs) in server mode against
/// the agent's endpoint: `TEST_SERVER_MODE_ENDPOINT` is the deployment's
/// API, and moto's `POST /moto-api/reset` between tests removes the EC2
/// API's resources. Each file's pass rate (passed / (passed + failed);
/// moto skips by itself the tests that read its backend, which server
/// mode cannot) is printed and must stay at or above its floor. Where
/// moto and AWS disagree this project follows AWS (docs/ec2.md).
const MOTO_FLOORS: &[(&str, f64)] = &[
    ("test_vpcs.py", 0.52),
    ("test_subnets.py", 0.71),
    ("test_security_groups.py", 0.61),
    ("test_network_acls.py", 0.64),
    ("test_route_tables.py", 0.41),
    ("test_instances.py", 0.43),
    ("test_dhcp_options.py", 0.88),
    ("test_prefix_lists.py", 0.07),
    ("test_elastic_network_interfaces.py", 0.11),
];

/// `N failed, M passed, K skipped` of pytest's last line.
fn pytest_counts(out: &str) -> (u32, u32, u32) {
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
        .unwrap_or_default();
    let count = |what: &str| -> u32 {
        last.split(',')
            .filter_map(|part| {
                let mut w = part
                    .split_whitespace()
                    .filter(|w| !w.chars().all(|c| c == '='));
                let n: u32 = w.next()?.parse().ok()?;
                (w.next()? == what).then_some(n)
            })
            .sum()
    };
    (
        count("passed"),
        count("failed") + count("error") + count("errors"),
        count("skipped"),
    )
}

/// Separate VPCs may overlap, as at AWS: CreateVpc of the template's
/// block and of the default VPC's, a subnet of one block in each; a
/// subnet overlapping another of its own VPC is still refused.
#[test]
fn vpcs_of_the_api_may_overlap_one_another_and_the_default_vpc() {
    let (_d, url) = up("ec2ovl");
    let mut vpcs = vec![];
    for cidr in ["10.42.0.0/16", "10.42.0.0/16", "172.31.0.0/16"] {
        let v = ok(&url, &["create-vpc", "--cidr-block", cidr]);
        assert_eq!(v["Vpc"]["CidrBlock"], cidr);
        vpcs.push(s(&v["Vpc"]["VpcId"]));
    }
    let all = ok(&url, &["describe-vpcs"]);
    let blocks: Vec<&str> = all["Vpcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["CidrBlock"].as_str().unwrap())
        .collect();
    assert_eq!(
        blocks.iter().filter(|b| **b == "172.31.0.0/16").count(),
        2,
        "the default VPC and the new one: {blocks:?}"
    );
    for vpc in &vpcs[..2] {
        let sn = ok(
            &url,
            &[
                "create-subnet",
                "--vpc-id",
                vpc,
                "--cidr-block",
                "10.42.7.0/24",
            ],
        );
        assert_eq!(sn["Subnet"]["VpcId"], vpc.as_str());
    }
    let e = aws(
        &url,
        &[
            "create-subnet",
            "--vpc-id",
            &vpcs[0],
            "--cidr-block",
            "10.42.7.128/25",
        ],
    )
    .unwrap_err();
    assert!(e.contains("InvalidSubnet.Conflict"), "{e}");
}

#[test]
fn moto_conformance() {
    let moto = pyenv()
        .parent()
        .unwrap()
        .join("moto")
        .read_dir()
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| {
                let p = e.ok()?.path();
                p.join("tests/test_ec2").exists().then_some(p)
            })
        })
        .expect("moto's tests: `cargo xtask provision` unpacks moto's sdist into target/moto");
    let (_d, url) = up_from("moto", fixture!("ec2/empty.yaml"), &[]);
    let mut report = vec![];
    for (file, floor) in MOTO_FLOORS {
        let out = Command::new(pyenv_python())
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--color=no",
                "-rf",
            ])
            .arg(format!("tests/test_ec2/{file}"))
            .current_dir(&moto)
            .env("TEST_SERVER_MODE", "true")
            .env("TEST_SERVER_MODE_ENDPOINT", &url)
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .unwrap();
        let all = text(&out);
        let (passed, failed, skipped) = pytest_counts(&all);
        assert!(passed + failed > 0, "{file}: no test ran:\n{all}");
        let rate = f64::from(passed) / f64::from(passed + failed);
        eprintln!(
            "moto {file}: {passed} passed, {failed} failed, {skipped} skipped: {:.0}%",
            rate * 100.0
        );
        report.push((file, rate, *floor, all));
    }
    for (file, rate, floor, all) in &report {
        assert!(
            rate >= floor,
            "moto {file}: pass rate {:.1}% below its floor {:.1}%:\n{}",
            rate * 100.0,
            floor * 100.0,
            all.lines()
                .filter(|l| l.starts_with("FAILED"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn pytest_summaries_are_read() {
    assert_eq!(
        pytest_counts("x\n==== 46 failed, 13 passed, 2 skipped in 73.59s (0:01:13) ===="),
        (13, 46, 2)
    );
    assert_eq!(pytest_counts("5 passed in 1.0s"), (5, 0, 0));
    assert_eq!(
        pytest_counts("1 failed, 2 passed, 1 error in 3s"),
        (2, 2, 0)
    );
}

/// A NAT gateway and its Elastic IP made by the API (boto3,
/// tests/fixtures/ec2_nat.py) take a function in a private subnet to the
/// internet's host, which sees the Elastic IP; the route deleted (AWS
/// CLI), the function no longer gets there.
#[test]
fn a_nat_gateway_of_the_api_takes_a_private_function_to_the_internet() {
    let (d, url) = up_from("ec2nat", fixture!("ec2/internet.yaml"), &[]);
    let vpc = vpc::ec2::ids::derived("vpc", &d.name, &d.name, "Vpc");
    let out = Command::new(pyenv_python())
        .arg(fixture_path("ec2_nat.py"))
        .args([&url, &vpc])
        .output()
        .unwrap();
    assert!(out.status.success(), "ec2_nat.py: {}", text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(connects(&d, "invoke", "natfn", "203.0.113.10", 443, 5));
    let peer = server
        .finish(30)
        .expect("the internet host got the connection");
    assert_eq!(
        peer.ip().to_string(),
        s(&made["public_ip"]),
        "the Elastic IP"
    );
    ok(
        &url,
        &[
            "delete-route",
            "--route-table-id",
            &s(&made["private_route_table"]),
            "--destination-cidr-block",
            "0.0.0.0/0",
        ],
    );
    assert!(!connects(&d, "invoke", "natfn", "203.0.113.10", 443, 1));
}

/// The Lambda ENI finder's queries (by Lambda's description, its requester
/// id, the interface type) find each function's Hyperplane ENIs as EC2
/// shows them, the same set `vpc eni list` shows; EC2 refuses to delete one
/// in use, and names an unknown one.
#[test]
fn the_lambda_eni_finder_finds_each_functions_enis() {
    let (d, url) = up_from("ec2eni", "default", &[]);
    let mut want: Vec<String> = d.eni_list().iter().map(|e| s(&e["id"])).collect();
    want.sort();
    assert!(!want.is_empty());
    let found = |filters: &[&str]| -> Vec<Value> {
        let mut a = vec!["describe-network-interfaces", "--filters"];
        a.extend_from_slice(filters);
        ok(&url, &a)["NetworkInterfaces"]
            .as_array()
            .unwrap()
            .clone()
    };
    let by_finder = found(&[
        "Name=description,Values=AWS Lambda VPC ENI*",
        "Name=requester-id,Values=*:awslambda_*",
    ]);
    let mut ids: Vec<String> = by_finder
        .iter()
        .map(|e| s(&e["NetworkInterfaceId"]))
        .collect();
    ids.sort();
    assert_eq!(ids, want);
    for e in &by_finder {
        assert_eq!(e["InterfaceType"], "lambda", "{e}");
        assert_eq!(e["RequesterManaged"], true, "{e}");
        assert_eq!(e["Status"], "in-use", "{e}");
        assert_eq!(e["Description"], "AWS Lambda VPC ENI-orders", "{e}");
        assert!(s(&e["SubnetId"]).starts_with("subnet-"), "{e}");
        assert!(s(&e["Groups"][0]["GroupId"]).starts_with("sg-"), "{e}");
        assert_eq!(e["Attachment"]["InstanceOwnerId"], "amazon-aws", "{e}");
    }
    assert_eq!(
        found(&["Name=interface-type,Values=lambda"]).len(),
        want.len()
    );
    // The template's own interfaces are `interface`s, not Lambda's.
    assert!(found(&[
        "Name=status,Values=available",
        "Name=interface-type,Values=lambda"
    ])
    .is_empty());
    // `vpc eni list` asks the same: EC2's filters narrow what it lists.
    let listed = |filters: &[&str]| -> Vec<String> {
        let mut a = vec!["eni", "list", "--output", "json"];
        for f in filters {
            a.extend(["--filter", f]);
        }
        let out = d.vpc(&a);
        assert!(out.status.success(), "{}", text(&out));
        let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<String> = v.iter().map(|e| s(&e["id"])).collect();
        ids.sort();
        ids
    };
    assert_eq!(listed(&[]), want);
    assert!(listed(&["status=available"]).is_empty());
    let one = &by_finder[0];
    let in_subnet: Vec<String> = by_finder
        .iter()
        .filter(|e| e["SubnetId"] == one["SubnetId"])
        .map(|e| s(&e["NetworkInterfaceId"]))
        .collect();
    let mut in_subnet = in_subnet;
    in_subnet.sort();
    assert_eq!(
        listed(&[&format!("subnet-id={}", s(&one["SubnetId"]))]),
        in_subnet
    );
    assert_eq!(
        listed(&[
            "description=AWS Lambda VPC ENI-orders",
            "interface-type=lambda"
        ]),
        want
    );
    let bad = d.vpc(&["eni", "list", "--filter", "nope=1"]);
    assert!(
        !bad.status.success() && text(&bad).contains("The filter 'nope' is invalid"),
        "{}",
        text(&bad)
    );
    let e = aws(
        &url,
        &[
            "delete-network-interface",
            "--network-interface-id",
            &want[0],
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("(InvalidParameterValue)") && e.contains("is currently in use"),
        "{e}"
    );
    let e = aws(
        &url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            "eni-00000000000000000",
        ],
    )
    .unwrap_err();
    assert!(e.contains("InvalidNetworkInterfaceID.NotFound"), "{e}");
}
