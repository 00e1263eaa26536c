//! `vpc apply` on a running deployment: resources of every kind added and
//! removed, unrelated connections untouched, changes AWS cannot make in
//! place refused, and a reconcile cut short finished by the agent.
use vpc_tests::{
    connects, fixture, line_echo_server, namespaces_with_prefix, tcp_server, text, wait_for,
    Deployment, LineClient, FAST,
};

pub(crate) const BASE: &str = fixture!("reconcile.yaml");

/// Subnet B with an instance (an address chosen by EC2, an Elastic IP) and
/// a function in it.
pub(crate) const SUBNET_B: &str = "
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  New: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref B, SecurityGroupIds: [!Ref AppSg]}}
  NewIp: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref New}}
  Fn2:
    Type: AWS::Lambda::Function
    Properties:
      VpcConfig: {SubnetIds: [!Ref B], SecurityGroupIds: [!Ref FnSg]}
";

/// B on the public route table (a default route to the internet gateway).
const B_PUBLIC: &str = "
  BAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref B, RouteTableId: !Ref PublicRt}}
";

fn node_ids(d: &Deployment) -> Vec<String> {
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let mut v: Vec<String> = s.nodes.iter().map(|n| n.id.clone()).collect();
    v.sort();
    v
}

/// The lifecycle state of function `id` (its logical id), `""` if none.
fn function_state(d: &Deployment, id: &str) -> String {
    vpc::deploy::Lifecycle::load(&d.name)
        .unwrap()
        .functions
        .get(id)
        .map(|st| st.state.clone())
        .unwrap_or_default()
}

fn netns_exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists()
}

/// The address `vpc status` shows for host `id`.
fn host_ip(d: &Deployment, id: &str) -> String {
    let s = vpc::deploy::State::load(&d.name).unwrap();
    s.node(id).expect("node").ip.to_string()
}

#[test]
fn apply_adds_and_removes_subnets_hosts_functions_and_associations_at_runtime() {
    let d = Deployment::up("rca", BASE, FAST);
    let app_ip = host_ip(&d, "App");
    let _db = line_echo_server(&d.netns("Db"), "10.0.1.10:5432");
    // A connection elsewhere, held across every change below.
    let held = LineClient::connect(&d.netns("App"), "10.0.1.10:5432");
    assert!(held.echoes("before", 30));
    let ports_before = vpc::deploy::State::load(&d.name).unwrap().nodes;

    // Add: subnet B, an instance with an Elastic IP, a function.
    d.apply(&format!("{BASE}{SUBNET_B}"));
    assert!(
        held.echoes("after adding", 30),
        "the held connection goes on"
    );
    let after = vpc::deploy::State::load(&d.name).unwrap();
    for n in &ports_before {
        assert_eq!(after.node(&n.id), Some(n), "{} was rebuilt", n.id);
    }
    assert_eq!(host_ip(&d, "App"), app_ip, "App keeps its address");
    let new_ip = host_ip(&d, "New");
    assert!(new_ip.starts_with("10.0.2."), "{new_ip}");
    assert!(
        connects(&d, "exec", "New", "10.0.1.10", 5432, 5),
        "the new instance reaches the database (AppSg)"
    );
    wait_for("Fn2 to be Active", 60, || {
        function_state(&d, "Fn2") == "Active"
    });
    assert!(
        connects(&d, "invoke", "Fn2", "10.0.1.10", 5432, 5),
        "the new function reaches the database through its Hyperplane ENI in B"
    );
    // B uses the main table: no route to the internet.
    let _web = tcp_server(&d.netns("Example"), "203.0.113.10:80");
    assert!(!connects(&d, "exec", "New", "203.0.113.10", 80, 1));

    // Change B's route table association: the internet is one route away.
    d.apply(&format!("{BASE}{SUBNET_B}{B_PUBLIC}"));
    assert!(
        connects(&d, "exec", "New", "203.0.113.10", 80, 5),
        "B's new route table routes to the internet gateway"
    );
    assert_eq!(host_ip(&d, "New"), new_ip, "New keeps its address");
    assert!(held.echoes("after the association", 30));

    // A stack update of a function: its environment at once, its VpcConfig
    // as UpdateFunctionConfiguration does (InProgress, then Successful on
    // its new Hyperplane ENI).
    let moved = format!("{BASE}{SUBNET_B}{B_PUBLIC}").replace(
        "      VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref FnSg]}",
        "      Environment: {Variables: {COLOR: blue}}\n      VpcConfig: {SubnetIds: [!Ref B], SecurityGroupIds: [!Ref FnSg]}",
    );
    d.apply(&moved);
    let update = |d: &Deployment| {
        vpc::deploy::Lifecycle::load(&d.name).unwrap().functions["Fn"]
            .last_update_status
            .clone()
    };
    wait_for("Fn's update", 60, || update(&d) == "Successful");
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let f = s.model.function("Fn").unwrap();
    assert_eq!(f.vpc_config.as_ref().unwrap().subnets, ["B"]);
    let eni = s
        .model
        .enis
        .iter()
        .find(|e| Some(e.index) == f.eni)
        .unwrap();
    assert_eq!(eni.subnet, "B");
    let out = d.vpc(&["invoke", "Fn", "--", "sh", "-c", "echo $COLOR"]);
    assert_eq!(text(&out).trim(), "blue", "{}", text(&out));
    assert!(connects(&d, "invoke", "Fn", "10.0.1.10", 5432, 5));
    // And back (a subnet a function is in cannot go: DependencyViolation).
    let out = d.try_apply(BASE);
    assert!(
        !out.status.success() && text(&out).contains("DependencyViolation"),
        "{}",
        text(&out)
    );
    d.apply(&format!("{BASE}{SUBNET_B}{B_PUBLIC}"));
    wait_for("Fn's update back", 60, || update(&d) == "Successful");

    // A connection to New, which goes next: it goes with it.
    let _to_new = line_echo_server(&d.netns("New"), &format!("{new_ip}:7000"));
    let to_new = LineClient::connect(&d.netns("App"), &format!("{new_ip}:7000"));
    assert!(to_new.echoes("to New", 30));
    let tracked = |d: &Deployment| text(&d.vpc(&["conntrack", "list"])).contains(&new_ip);
    assert!(tracked(&d));

    // Remove them again.
    d.apply(BASE);
    assert!(
        held.echoes("after removing", 30),
        "the held connection goes on"
    );
    assert!(
        !tracked(&d),
        "the removed instance's connections end with it"
    );
    let ids = node_ids(&d);
    assert!(
        !ids.iter().any(|i| i == "New" || i.starts_with("Fn2")),
        "{ids:?}"
    );
    assert!(!netns_exists(&d.netns("New")));
    assert!(!netns_exists(&d.exec_env_netns("Fn2")));
    assert_eq!(function_state(&d, "Fn2"), "", "Fn2 is deleted");
    let s = vpc::deploy::State::load(&d.name).unwrap();
    assert!(s.model.subnet("B").is_none());
    assert!(!s.pending);
    assert!(
        connects(&d, "invoke", "Fn", "10.0.1.10", 5432, 5),
        "the function of A is untouched"
    );
}

#[test]
fn changes_aws_makes_only_by_replacement_are_refused_and_nothing_changes() {
    let other = "
  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.5.0.0/16}}
";
    let d = Deployment::up("rcb", &format!("{BASE}{SUBNET_B}{other}"), FAST);
    let before = vpc::deploy::State::load(&d.name).unwrap();
    for (from, to, field) in [
        (
            "CidrBlock: 10.0.2.0/24",
            "CidrBlock: 10.0.3.0/24",
            "B.Properties.CidrBlock",
        ),
        (
            "CidrBlock: 10.5.0.0/16",
            "CidrBlock: 10.6.0.0/16",
            "Other.Properties.CidrBlock",
        ),
    ] {
        let changed = format!("{BASE}{SUBNET_B}{other}").replacen(from, to, 1);
        let out = d.try_apply(&changed);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(field) && text(&out).contains("NotUpdatable"),
            "{}",
            text(&out)
        );
        let now = vpc::deploy::State::load(&d.name).unwrap();
        assert_eq!(now.nodes, before.nodes, "nothing was built or removed");
        assert_eq!(now.model, before.model);
    }
}

/// `vpc apply` killed in the middle of a reconcile (after it built the
/// first new namespace); then the agent, killed in the middle of finishing
/// it; then the next agent finishes it: the deployment converges to the
/// template, and the held connection never noticed.
#[test]
fn a_reconcile_killed_midway_is_finished_by_the_agent() {
    let d = Deployment::up("rcc", BASE, FAST);
    let _db = line_echo_server(&d.netns("Db"), "10.0.1.10:5432");
    let held = LineClient::connect(&d.netns("App"), "10.0.1.10:5432");
    assert!(held.echoes("before", 30));
    // The agent stopped first, so that nobody finishes behind our back.
    d.kill_agent();
    let path = std::env::temp_dir().join(format!("{}-b.yaml", d.name));
    std::fs::write(&path, format!("{BASE}{SUBNET_B}")).unwrap();
    let out = std::process::Command::new(vpc_tests::vpc_bin())
        .args(["--name", &d.name, "apply", path.to_str().unwrap()])
        .env(vpc::reconcile::FAULT_ENV, "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(86), "{}", text(&out));
    let s = vpc::deploy::State::load(&d.name).unwrap();
    assert!(s.pending, "the state says a reconcile is unfinished");
    assert_eq!(d.status()["reconcile_pending"], true);
    assert!(s.node("New").is_none() || s.node("Fn2").is_none());
    // An agent that dies one step into finishing it.
    let out = std::process::Command::new(vpc_tests::vpc_bin())
        .args(["--name", &d.name, "agent"])
        .env(vpc::reconcile::FAULT_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(86), "{}", text(&out));
    assert!(vpc::deploy::State::load(&d.name).unwrap().pending);
    // The next one finishes.
    let out = d.vpc(&["agent", "--detach"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the reconcile to finish", 60, || {
        !vpc::deploy::State::load(&d.name).unwrap().pending
    });
    let ids = node_ids(&d);
    assert!(ids.iter().any(|i| i == "New"), "{ids:?}");
    assert!(
        connects(&d, "exec", "New", "10.0.1.10", 5432, 5),
        "the instance built by the agent reaches the database"
    );
    wait_for("Fn2 to be Active", 60, || {
        function_state(&d, "Fn2") == "Active"
    });
    assert!(connects(&d, "invoke", "Fn2", "10.0.1.10", 5432, 5));
    assert!(held.echoes("after", 30), "the held connection goes on");
    // Every namespace the state lists exists, and no other of ours.
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let mut listed = s.namespaces.clone();
    listed.sort();
    let mut actual = namespaces_with_prefix(&d.name);
    actual.sort();
    assert_eq!(listed, actual);
}

/// A second VPC (a subnet, an instance, an interface endpoint) added at
/// runtime: its resolver answers and its endpoint's service listens, with
/// no agent restart; removed, both stop with it.
#[test]
fn a_vpc_added_at_runtime_gets_its_resolver_and_its_endpoint_service() {
    let d = Deployment::up("rcd", BASE, FAST);
    let vpc2 = "
  Vpc2: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.9.0.0/16, EnableDnsHostnames: true}}
  C: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc2, CidrBlock: 10.9.1.0/24}}
  OpenSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: open
      VpcId: !Ref Vpc2
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.9.0.0/16}]
  Other: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref C, PrivateIpAddress: 10.9.1.10, SecurityGroupIds: [!Ref OpenSg]}}
  Sqs:
    Type: AWS::EC2::VPCEndpoint
    Properties:
      VpcId: !Ref Vpc2
      VpcEndpointType: Interface
      ServiceName: !Sub 'com.amazonaws.${AWS::Region}.sqs'
      SubnetIds: [!Ref C]
      SecurityGroupIds: [!Ref OpenSg]
";
    d.apply(&format!("{BASE}{vpc2}"));
    let getent = || {
        let out = d.vpc(&[
            "exec",
            "Other",
            "--",
            "timeout",
            "10",
            "getent",
            "hosts",
            "ip-10-9-1-10.ec2.internal",
        ]);
        out.status.success()
    };
    wait_for("the new VPC's resolver to answer", 30, getent);
    let endpoint = host_ip(&d, "Sqs.1");
    let url = format!("http://{endpoint}/");
    let curl = || {
        let out = d.vpc(&[
            "exec",
            "Other",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "3",
            &url,
        ]);
        String::from_utf8_lossy(&out.stdout).contains("sqs")
    };
    wait_for("the new endpoint's service to answer", 30, curl);
    d.apply(BASE);
    assert!(!netns_exists(&d.netns("Other")));
    assert!(vpc::deploy::State::load(&d.name)
        .unwrap()
        .model
        .vpc("Vpc2")
        .is_none());
}

/// A NAT gateway (in public subnet B) and a route table sending subnet A
/// to it, added at runtime: A's instance reaches the internet from the
/// gateway's Elastic IP; removed again, it does not; a connection inside
/// the VPC goes on throughout.
#[test]
fn a_nat_gateway_added_at_runtime_carries_a_private_subnet_out_and_removed_stops() {
    let nat = "
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref B, AllocationId: !GetAtt NatIp.AllocationId}}
  PrivateRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PrivateAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref A, RouteTableId: !Ref PrivateRt}}
  PrivateDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}
";
    let public_b = format!("{BASE}{SUBNET_B}{B_PUBLIC}");
    let d = Deployment::up("rce", &public_b, FAST);
    let _db = line_echo_server(&d.netns("Db"), "10.0.1.10:5432");
    let held = LineClient::connect(&d.netns("App"), "10.0.1.10:5432");
    assert!(held.echoes("before", 30));
    let web = tcp_server(&d.netns("Example"), "203.0.113.10:80");
    assert!(!connects(&d, "exec", "App", "203.0.113.10", 80, 1));

    d.apply(&format!("{public_b}{nat}"));
    assert!(
        connects(&d, "exec", "App", "203.0.113.10", 80, 5),
        "out through the NAT gateway"
    );
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let eip = s.model.nat_gateway("Nat").unwrap().public_ip;
    let peer = web.finish(30).expect("the server saw the connection");
    assert_eq!(
        peer.ip().to_string(),
        eip.to_string(),
        "from the gateway's Elastic IP"
    );
    assert!(held.echoes("with the gateway", 30));

    d.apply(&public_b);
    assert!(vpc::deploy::State::load(&d.name)
        .unwrap()
        .model
        .nat_gateways
        .is_empty());
    let _web = tcp_server(&d.netns("Example"), "203.0.113.10:80");
    assert!(
        !connects(&d, "exec", "App", "203.0.113.10", 80, 1),
        "no gateway, no way out"
    );
    assert!(held.echoes("without the gateway", 30));
}

/// Every step of a reconcile may be cut short: `vpc apply` killed after
/// step n (adding subnet B and its resources, then removing them), then
/// the same `vpc apply` again, converges to the template, with every
/// namespace the state lists present and no other.
#[test]
fn a_reconcile_cut_short_at_any_step_converges_when_run_again() {
    let d = Deployment::up("rcf", BASE, FAST);
    let apply_cut = |template: &str, n: u32| {
        let path = std::env::temp_dir().join(format!("{}-cut.yaml", d.name));
        std::fs::write(&path, template).unwrap();
        let out = std::process::Command::new(vpc_tests::vpc_bin())
            .args(["--name", &d.name, "apply", path.to_str().unwrap()])
            .env(vpc::reconcile::FAULT_ENV, n.to_string())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success() || out.status.code() == Some(86),
            "{}",
            text(&out)
        );
        out.status.code() == Some(86)
    };
    let check = |d: &Deployment, want: &[&str]| {
        let s = vpc::deploy::State::load(&d.name).unwrap();
        assert!(!s.pending);
        for id in want {
            assert!(s.node(id).is_some(), "{id} built");
        }
        let mut listed = s.namespaces.clone();
        listed.sort();
        let mut actual = namespaces_with_prefix(&d.name);
        actual.sort();
        assert_eq!(listed, actual);
    };
    let with_b = format!("{BASE}{SUBNET_B}");
    for n in 1.. {
        let cut_adding = apply_cut(&with_b, n);
        d.apply(&with_b);
        check(&d, &["New", "Fn2"]);
        let cut_removing = apply_cut(BASE, n);
        d.apply(BASE);
        check(&d, &["App", "Db"]);
        assert!(vpc::deploy::State::load(&d.name)
            .unwrap()
            .node("New")
            .is_none());
        if !cut_adding && !cut_removing {
            assert!(n > 3, "a reconcile has several steps");
            break;
        }
    }
}
