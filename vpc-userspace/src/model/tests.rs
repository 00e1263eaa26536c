use ipnet::IpNet;

use super::*;

pub(super) fn build_ok(t: &str) -> Model {
    build(t, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn build_err(t: &str) -> ModelError {
    build(t, &HashMap::new(), "s").expect_err("template should be rejected")
}

pub(super) const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d, VpcId: !Ref Vpc}}
"#;

pub(super) fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn the_default_template_builds() {
    let m = build_ok(crate::DEFAULT_TEMPLATE);
    assert_eq!(m.vpcs.len(), 1);
    assert_eq!(m.subnets.len(), 2);
    assert_eq!(m.hosts.len(), 2);
    let f = m.function("orders").expect("by FunctionName");
    assert_eq!(m.function("OrdersFunction").unwrap().name, "orders");
    // One ENI per (subnet, group set); the function uses its first subnet's.
    assert_eq!(m.enis.len(), 2);
    assert_eq!(f.eni, Some(1));
    assert_eq!(f.environment["DB_HOST"], "10.0.1.10");
    assert_eq!(f.environment["DB_PORT"], "5432");
    assert_eq!(
        f.environment["APP_HOST"],
        m.hosts
            .iter()
            .find(|h| h.id == "AppServer")
            .unwrap()
            .ip
            .to_string()
    );
    // The log group is kept in the stack (no network), with its attributes.
    assert_eq!(m.stack_resources.len(), 1);
    let lg = &m.stack_resources[0];
    assert_eq!(
        (
            lg.logical_id.as_str(),
            lg.resource_type.as_str(),
            lg.physical_id.as_str()
        ),
        (
            "OrdersLogGroup",
            "AWS::Logs::LogGroup",
            "/aws/lambda/orders"
        )
    );
    assert_eq!(
        lg.attributes["Arn"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/orders:*"
    );
    // Standalone ingress joined its group; the group reference is kept.
    let db = m.group("DatabaseSecurityGroup").unwrap();
    assert_eq!(db.ingress.len(), 2);
    assert!(db
        .ingress
        .iter()
        .all(|r| r.peer == Peer::Group("LambdaSecurityGroup".into())));
    // A group with no egress rules gets AWS's allow-all.
    assert_eq!(
        m.group("LambdaSecurityGroup").unwrap().egress,
        vec![Rule::allow_all(Peer::Cidr("0.0.0.0/0".parse().unwrap()))]
    );
}

#[test]
fn bad_templates_name_the_resource_and_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            BASE.replace("CidrBlock: 10.0.2.0/24", "CidrBlock: 10.1.2.0/24"),
            "Resources.B.Properties.CidrBlock",
            "not inside",
        ),
        (BASE.replace("CidrBlock: 10.0.2.0/24", "CidrBlock: 10.0.1.128/25"), "Resources.B.Properties.CidrBlock", "overlaps subnet A (10.0.1.0/24)"),
        (BASE.replace("VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24", "VpcId: Nope, CidrBlock: 10.0.2.0/24"), "Resources.B.Properties.VpcId", "Nope"),
        (BASE.replace("{CidrBlock: 10.0.0.0/16}", "{CidrBlock: 198.19.0.0/16}"), "Resources.Vpc.Properties.CidrBlock", "Lambda service"),
        // A VPC over the public pool: its private addresses would be other hosts' public ones.
        (BASE.replace("{CidrBlock: 10.0.0.0/16}", "{CidrBlock: 198.51.0.0/16}").replace("10.0.1.0/24", "198.51.1.0/24").replace("10.0.2.0/24", "198.51.2.0/24"), "Resources.Vpc.Properties.CidrBlock", "overlaps the public IPv4 pool (198.51.100.0/24)"),
        (BASE.replace("GroupDescription: d, ", ""), "Resources.Sg.Properties.GroupDescription", "required"),
        (with("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.2}}\n"), "Resources.I.Properties.PrivateIpAddress", "reserved"),
        (with("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.2.9}}\n"), "Resources.I.Properties.PrivateIpAddress", "not in subnet"),
        (
            with("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.9}}\n  J: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.9}}\n"),
            "Properties.PrivateIpAddress",
            "already in use",
        ),
        (with("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, SecurityGroupIds: [sg-123]}}\n"), "Resources.I.Properties.SecurityGroupIds[0]", "InvalidSecurityGroup"),
        (with("  I: {Type: AWS::EC2::Instance, Properties: {ImageId: x}}\n"), "Resources.I.Properties.SubnetId", "required"),
        (
            with("  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A]}}}\n"),
            "Resources.F.Properties.VpcConfig",
            "both",
        ),
        (
            with("  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [subnet-1], SecurityGroupIds: [!Ref Sg]}}}\n"),
            "Resources.F.Properties.VpcConfig.SubnetIds[0]",
            "InvalidSubnetIDException",
        ),
        (
            with("  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}\n"),
            "Resources.F.Properties.VpcConfig.Ipv6AllowedForDualStack",
            "dual-stack",
        ),
        (
            with("  X: {Type: AWS::EC2::SecurityGroupIngress, Properties: {GroupId: !Ref Sg, IpProtocol: tcp, FromPort: 1, ToPort: 1, SourceSecurityGroupId: Ghost}}\n"),
            "Resources.Sg.Properties.SecurityGroupIngress",
            "Ghost",
        ),
        (with("  X: {Type: AWS::EC2::SecurityGroupEgress, Properties: {GroupId: Nope, IpProtocol: -1, CidrIp: 0.0.0.0/0}}\n"), "Resources.X.Properties.GroupId", "Nope"),
        (with("  F: {Type: AWS::Lambda::Function, Properties: {Environment: {Variables: {H: !GetAtt Nope.PrivateIp}}}}\n"), "Resources.F.Properties.Environment.Variables.H", "Nope"),
    ];
    for (t, path, words) in cases {
        let e = build_err(&t);
        assert!(
            e.path.ends_with(path) || e.path == path,
            "expected {path}, got {e}"
        );
        assert!(e.to_string().contains(words), "expected {words:?} in {e}");
    }
}

#[test]
fn aws_quotas_are_enforced() {
    let mut rules = String::new();
    for p in 0..61 {
        rules += &format!(
            "        - {{IpProtocol: tcp, FromPort: {p}, ToPort: {p}, CidrIp: 10.0.0.0/8}}\n"
        );
    }
    let t = with(&format!("  Big:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: d\n      VpcId: !Ref Vpc\n      SecurityGroupIngress:\n{rules}"));
    let e = build_err(&t);
    assert_eq!(e.path, "Resources.Big.Properties.SecurityGroupIngress");
    assert!(e.message.contains("RulesPerSecurityGroupLimitExceeded"));
    // Six groups on a function.
    let mut groups = String::new();
    let mut decl = String::new();
    for i in 0..6 {
        decl += &format!("  G{i}: {{Type: AWS::EC2::SecurityGroup, Properties: {{GroupDescription: d, VpcId: !Ref Vpc}}}}\n");
        groups += &format!("!Ref G{i}, ");
    }
    let t = with(&format!("{decl}  F: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [{}]}}}}}}\n", groups.trim_end_matches(", ")));
    assert_eq!(
        build_err(&t).path,
        "Resources.F.Properties.VpcConfig.SecurityGroupIds"
    );
    // A /28 subnet runs out of addresses (16 - 5 reserved = 11).
    let mut hosts = String::new();
    for i in 0..12 {
        hosts +=
            &format!("  H{i:02}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref T}}}}\n");
    }
    let t = with(&format!("  T: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/28}}}}\n{hosts}"));
    assert!(build_err(&t).message.contains("SubnetOutOfIPAddresses"));
}

#[test]
fn json_templates_work_too() {
    let m = build_ok(
        r#"{"Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.1.0.0/16"}},
            "S": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": {"Fn::Select": [0, ["10.1.0.0/24"]]}}},
            "I": {"Type": "AWS::EC2::Instance", "Properties": {"SubnetId": {"Ref": "S"}, "SecurityGroupIds": [{"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]}]}}
        }}"#,
    );
    assert_eq!(m.hosts[0].ip.to_string(), "10.1.0.4");
    assert_eq!(m.hosts[0].groups, vec!["Vpc.DefaultSecurityGroup"]);
}

#[test]
fn prefix_lists_and_adjustable_quotas() {
    let pl = "  Pl: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: pl, AddressFamily: IPv4, MaxEntries: 30, Entries: [{Cidr: 10.9.0.0/16}]}}\n";
    let use_pl = "  R: {Type: AWS::EC2::SecurityGroupIngress, Properties: {GroupId: !Ref Sg, IpProtocol: tcp, FromPort: 1, ToPort: 1, SourcePrefixListId: !GetAtt Pl.PrefixListId}}\n";
    let m = build_ok(&with(&format!("{pl}{use_pl}")));
    assert_eq!(
        m.prefix_list("Pl").unwrap().cidrs,
        vec!["10.9.0.0/16".parse::<IpNet>().unwrap()]
    );
    assert_eq!(
        m.group("Sg").unwrap().ingress[0].peer,
        Peer::PrefixList("Pl".into())
    );
    // A reference counts MaxEntries rules: 30 + 31 single rules > 60.
    let mut many = String::new();
    for p in 0..31 {
        many += &format!("  M{p}: {{Type: AWS::EC2::SecurityGroupIngress, Properties: {{GroupId: !Ref Sg, IpProtocol: tcp, FromPort: {p}, ToPort: {p}, CidrIp: 10.0.0.0/8}}}}\n");
    }
    let t = with(&format!("{pl}{use_pl}{many}"));
    assert!(build_err(&t)
        .message
        .contains("RulesPerSecurityGroupLimitExceeded"));
    // Raised quota: accepted, until groups x rules passes 1,000 on an interface.
    let q = Quotas {
        rules_per_group: 100,
        ..Quotas::default()
    };
    build_with(&t, &HashMap::new(), "s", q).unwrap();
    let mut groups = String::new();
    for g in 0..5 {
        groups += &format!("  G{g}: {{Type: AWS::EC2::SecurityGroup, Properties: {{GroupDescription: d, VpcId: !Ref Vpc}}}}\n");
        for p in 0..201 {
            groups += &format!("  G{g}R{p}: {{Type: AWS::EC2::SecurityGroupIngress, Properties: {{GroupId: !Ref G{g}, IpProtocol: tcp, FromPort: {p}, ToPort: {p}, CidrIp: 10.0.0.0/8}}}}\n");
        }
    }
    let t = with(&format!("{groups}  I: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref A, SecurityGroupIds: [!Ref G0, !Ref G1, !Ref G2, !Ref G3, !Ref G4]}}}}\n"));
    let e = build_with(
        &t,
        &HashMap::new(),
        "s",
        Quotas {
            rules_per_group: 1000,
            ..Quotas::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.path, "Resources.I.Properties.SecurityGroupIds");
    assert!(e.message.contains("1000"), "{e}");
    assert!(Quotas {
        acl_rules: 41,
        ..Quotas::default()
    }
    .check()
    .is_err());
    // Errors name the field.
    for (bad, field) in [
        (
            pl.replace("AddressFamily: IPv4", "AddressFamily: IPv5"),
            "Resources.Pl.Properties.AddressFamily",
        ),
        (
            pl.replace("Cidr: 10.9.0.0/16", "Cidr: 2001:db8::/32"),
            "Resources.Pl.Properties.Entries[0].Cidr",
        ),
        (
            pl.replace("MaxEntries: 30", "MaxEntries: 0"),
            "Resources.Pl.Properties.MaxEntries",
        ),
    ] {
        assert_eq!(build_err(&with(&format!("{bad}{use_pl}"))).path, field);
    }
    let missing = with("  R: {Type: AWS::EC2::SecurityGroupIngress, Properties: {GroupId: !Ref Sg, IpProtocol: tcp, FromPort: 1, ToPort: 1, SourcePrefixListId: pl-123}}\n");
    assert!(build_err(&missing)
        .message
        .contains("InvalidPrefixListID.NotFound"));
}

/// A dual-stack VPC: an Amazon-provided /56, subnet A dual-stack with
/// automatic IPv6 addresses (its block from `Fn::Cidr`), B dual-stack
/// without, C IPv4-only.
pub(super) const DUAL: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}
  A:
    Type: AWS::EC2::Subnet
    DependsOn: V6
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: 10.0.1.0/24
      Ipv6CidrBlock: !Select [1, !Cidr [!Select [0, !GetAtt Vpc.Ipv6CidrBlocks], 256, 64]]
      AssignIpv6AddressOnCreation: true
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24, Ipv6CidrBlock: "2001:db8:ec2:102::/64"}}
  C: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.3.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d, VpcId: !Ref Vpc}}
"#;

pub(super) fn dual(extra: &str) -> String {
    format!("{DUAL}{extra}")
}

#[test]
fn dual_stack_vpcs_subnets_hosts_enis_and_functions() {
    let m = build_ok(&dual(
        r#"
  Auto: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  Explicit: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref B, Ipv6Addresses: [{Ipv6Address: "2001:db8:ec2:102::10"}]}}
  Counted: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref B, Ipv6AddressCount: 1}}
  NoV6: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref B}}
  Zero: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6AddressCount: 0}}
  V4: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref C}}
  Nic:
    Type: AWS::EC2::Instance
    Properties:
      NetworkInterfaces: [{DeviceIndex: "0", SubnetId: !Ref B, Ipv6Addresses: [{Ipv6Address: "2001:db8:ec2:102::20"}]}]
  Allowed:
    Type: AWS::Lambda::Function
    Properties:
      VpcConfig: {SubnetIds: [!Ref A, !Ref B], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}
      Environment: {Variables: {NIC6: !GetAtt Counted.PrimaryIpv6Address}}
  NotAllowed: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
  V4Fn: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A, !Ref C], SecurityGroupIds: [!Ref Sg]}}}
"#,
    ));
    // The first /56 of the documented pool after its reserved first one.
    assert_eq!(
        m.vpcs[0].ipv6_cidr.unwrap().to_string(),
        "2001:db8:ec2:100::/56"
    );
    let sn = |id: &str| m.subnet(id).unwrap();
    assert_eq!(
        sn("A").ipv6_cidr.unwrap().to_string(),
        "2001:db8:ec2:101::/64"
    );
    assert!(sn("A").assign_ipv6_on_creation && !sn("B").assign_ipv6_on_creation);
    assert!(!sn("C").is_dual_stack());
    let ip6 = |id: &str| {
        m.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap()
            .ip6
            .map(|a| a.to_string())
    };
    // AssignIpv6AddressOnCreation: the lowest address after AWS's four.
    assert_eq!(ip6("Auto").as_deref(), Some("2001:db8:ec2:101::4"));
    assert_eq!(ip6("Explicit").as_deref(), Some("2001:db8:ec2:102::10"));
    assert_eq!(ip6("Nic").as_deref(), Some("2001:db8:ec2:102::20"));
    assert_eq!(ip6("Counted").as_deref(), Some("2001:db8:ec2:102::4"));
    assert_eq!(ip6("NoV6"), None, "B does not assign on creation");
    assert_eq!(
        ip6("Zero"),
        None,
        "Ipv6AddressCount: 0 overrides the subnet"
    );
    assert_eq!(ip6("V4"), None);
    // ENIs in dual-stack subnets get an IPv6 address of their subnet.
    let eni = |s: &str| m.enis.iter().find(|e| e.subnet == s).unwrap();
    assert_eq!(
        eni("A").ip6.unwrap().to_string(),
        "2001:db8:ec2:101::5",
        "after Auto's"
    );
    assert_eq!(eni("B").ip6.unwrap().to_string(), "2001:db8:ec2:102::5");
    assert_eq!(eni("C").ip6, None);
    // Execution environments: the Lambda IPv6 range, when every subnet is dual-stack.
    let f = |id: &str| m.function(id).unwrap();
    assert_eq!(f("Allowed").exec_ip6.unwrap().to_string(), "2001:2::a");
    assert!(f("Allowed").ipv6_allowed());
    assert_eq!(f("NotAllowed").exec_ip6.unwrap().to_string(), "2001:2::b");
    assert!(!f("NotAllowed").ipv6_allowed());
    assert_eq!(f("V4Fn").exec_ip6, None);
    assert_eq!(f("Allowed").environment["NIC6"], "2001:db8:ec2:102::4");
    // Groups AWS creates allow all IPv6 outbound too in an IPv6 VPC.
    let all6 = Rule::allow_all(Peer::Cidr("::/0".parse().unwrap()));
    assert!(m.group("Sg").unwrap().egress.contains(&all6));
    assert!(m
        .group("Vpc.DefaultSecurityGroup")
        .unwrap()
        .egress
        .contains(&all6));
    // The default ACL gains rule 101 for IPv6, both ways, as at AWS.
    let dacl = m.acl("Vpc.DefaultNetworkAcl").unwrap();
    for egress in [false, true] {
        assert!(dacl.entries.iter().any(|e| e.rule_number == 101
            && e.egress == egress
            && e.allow
            && e.cidr.to_string() == "::/0"));
    }
    assert_eq!(
        build_ok(BASE)
            .acl("Vpc.DefaultNetworkAcl")
            .unwrap()
            .entries
            .len(),
        2
    );
    // A group reference covers its members' IPv6 addresses.
    let members6 = m.members6("Sg");
    assert!(members6.contains(&"2001:db8:ec2:101::5".parse().unwrap()));
    assert!(members6.contains(&"2001:db8:ec2:102::5".parse().unwrap()));
    assert!(m
        .members6("Vpc.DefaultSecurityGroup")
        .contains(&"2001:db8:ec2:102::4".parse().unwrap()));
    assert!(!members6.contains(&"2001:db8:ec2:102::4".parse().unwrap()));
    // IPv4-only VPCs keep IPv4-only defaults.
    let v4 = build_ok(BASE);
    assert_eq!(
        v4.group("Sg").unwrap().egress,
        vec![Rule::allow_all(Peer::Cidr("0.0.0.0/0".parse().unwrap()))]
    );
}

#[test]
fn the_v4_only_view_of_a_shared_eni_is_compiled_for_functions_without_the_flag() {
    use crate::compile::{compile, function_eni, LinkInfo, ENI_V4_ONLY};
    let m = build_ok(&dual(
        r#"
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  Yes: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  No: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
    ));
    assert_eq!(m.enis.len(), 1, "one ENI per (subnet, groups), flag or not");
    let (yes, no) = (m.function("Yes").unwrap(), m.function("No").unwrap());
    assert_eq!(function_eni(&m, yes), Some(1));
    assert_eq!(function_eni(&m, no), Some(1 | ENI_V4_ONLY));
    let links = ["Db", "Yes", "No"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let l = LinkInfo {
                ifindex: i as u32 + 10,
                mac: [2, 0, 0, 0, 0, i as u8],
                router_mac: [2, 0, 0, 0, 1, i as u8],
            };
            (id.to_string(), l)
        })
        .collect();
    let e = compile(&m, &links, 0).unwrap();
    let eni = |id: u32| e.enis.iter().find(|(k, _)| *k == id).unwrap().1;
    let eni6 = m.enis[0].ip6.unwrap().octets();
    assert_eq!((eni(1).has_v6, eni(1).addr6), (1, eni6));
    assert_eq!(eni(1 | ENI_V4_ONLY).has_v6, 0);
    assert_eq!(eni(1).addr4, eni(1 | ENI_V4_ONLY).addr4);
    // Ports carry both addresses; endpoints exist for both.
    let port = |ifindex: u32| e.ports.iter().find(|(k, _)| *k == ifindex).unwrap().1;
    let db6 = m.hosts[0].ip6.unwrap().octets();
    assert_eq!((port(10).has_v6, port(10).addr6), (1, db6));
    assert_eq!(port(11).eni_group, 1);
    assert_eq!(port(12).eni_group, 1 | ENI_V4_ONLY);
    // Each view is a group of one; both hand out the one ENI's ports.
    let group = |id: u32| e.eni_groups.iter().find(|(k, _)| *k == id).unwrap().1;
    assert_eq!((group(1).count, group(1).enis[0]), (1, 1));
    assert_eq!(
        (group(1 | ENI_V4_ONLY).count, group(1 | ENI_V4_ONLY).enis[0]),
        (1, 1 | ENI_V4_ONLY)
    );
    assert_eq!((eni(1).pool, eni(1 | ENI_V4_ONLY).pool), (1, 1));
    // A second ENI of the combination (as the agent adds) joins both groups
    // in order, with its own address and IPv6 address.
    let mut m2 = m.clone();
    let mut second = m2.enis[0].clone();
    second.index = 2;
    second.ip = m2.free_ip(&second.subnet).unwrap();
    second.ip6 = m2.free_ip6(&second.subnet);
    second.scaled = true;
    assert_ne!(second.ip, m2.enis[0].ip);
    assert_ne!(second.ip6, m2.enis[0].ip6);
    m2.enis.push(second);
    let e2 = compile(&m2, &links, 0).unwrap();
    let group = |id: u32| e2.eni_groups.iter().find(|(k, _)| *k == id).unwrap().1;
    assert_eq!(
        (group(1).count, group(1).enis[..2].to_vec()),
        (2, vec![1, 2])
    );
    assert_eq!(
        group(1 | ENI_V4_ONLY).enis[..2].to_vec(),
        vec![1 | ENI_V4_ONLY, 2 | ENI_V4_ONLY]
    );
    assert!(e2
        .enis
        .iter()
        .any(|(k, v)| *k == (2 | ENI_V4_ONLY) && v.pool == 2));
    assert_eq!(port(12).has_v6, 1, "its own address: the ENI view decides");
    let ep = |a: [u8; 16]| e.endpoints.iter().find(|(k, _)| k.addr == a).map(|x| x.1);
    assert_eq!(ep(db6).unwrap().ifindex, 10);
    assert_eq!(ep(eni6).unwrap().kind, vpc_common::kind::HYPERPLANE_ENI);
    assert_eq!(ep(yes.exec_ip6.unwrap().octets()).unwrap().ifindex, 11);
    // Without a function that needs it, no IPv4-only view.
    let m = build_ok(&dual("  Yes: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}\n"));
    let links = [(
        "Yes".to_string(),
        LinkInfo {
            ifindex: 3,
            mac: [0; 6],
            router_mac: [0; 6],
        },
    )]
    .into();
    let e = compile(&m, &links, 0).unwrap();
    assert_eq!(e.enis.len(), 1);
}

#[test]
fn ipv6_errors_name_the_resource_and_field() {
    let sub = |props: &str| {
        format!(
            "{DUAL}  S: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/24, {props}}}}}\n"
        )
    };
    let v4vpc = |props: &str| {
        format!("{BASE}  S: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/24, {props}}}}}\n")
    };
    let block = |props: &str| {
        format!("Resources:\n  Vpc: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.0.0.0/16}}}}\n  X: {{Type: AWS::EC2::VPCCidrBlock, Properties: {{VpcId: !Ref Vpc, {props}}}}}\n")
    };
    let cases: Vec<(String, &str, &str)> = vec![
        // VPCCidrBlock
        (block("Ipv6CidrBlock: '2001:db8:1::/48'"), "Resources.X.Properties.Ipv6CidrBlock", "/56"),
        (block("Ipv6CidrBlock: '2001:db8:1::1/56'"), "Resources.X.Properties.Ipv6CidrBlock", "host bits"),
        (block("Ipv6CidrBlock: '10.0.0.0/16'"), "Resources.X.Properties.Ipv6CidrBlock", "not an IPv6 CIDR"),
        (block("Ipv6CidrBlock: '2001:2::/56'"), "Resources.X.Properties.Ipv6CidrBlock", "Lambda service range"),
        (block("AmazonProvidedIpv6CidrBlock: true, Ipv6CidrBlock: '2001:db8:1::/56'"), "Resources.X.Properties.Ipv6CidrBlock", "mutually exclusive"),
        (block("AmazonProvidedIpv6CidrBlock: false"), "Resources.X.Properties.AmazonProvidedIpv6CidrBlock", "required"),
        (block("Ipv4NetmaskLength: 16"), "Resources.X.Properties.Ipv4NetmaskLength", "not supported"),
        (block("VpcId2: x, AmazonProvidedIpv6CidrBlock: true").replace("VpcId: !Ref Vpc, ", ""), "Resources.X.Properties.VpcId", "required"),
        (
            format!("{}  Y: {{Type: AWS::EC2::VPCCidrBlock, Properties: {{VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}}}\n", block("AmazonProvidedIpv6CidrBlock: true")),
            "Resources.Y.Properties.VpcId",
            "one per VPC",
        ),
        (
            "Resources:\n  V1: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  V2: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}\n  X: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V1, Ipv6CidrBlock: '2001:db8:1::/56'}}\n  Y: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V2, Ipv6CidrBlock: '2001:db8:1::/56'}}\n".into(),
            "Resources.Y.Properties.Ipv6CidrBlock",
            "overlaps VPC V1",
        ),
        // Subnets
        (sub("Ipv6CidrBlock: '2001:db8:ec2:108::/63'"), "Resources.S.Properties.Ipv6CidrBlock", "/64"),
        (sub("Ipv6CidrBlock: '2001:db8:ec3:109::/64'"), "Resources.S.Properties.Ipv6CidrBlock", "not inside the VPC"),
        (sub("Ipv6CidrBlock: '2001:db8:ec2:101::/64'"), "Resources.S.Properties.Ipv6CidrBlock", "overlaps subnet A"),
        (sub("Ipv6CidrBlock: 'nope'"), "Resources.S.Properties.Ipv6CidrBlock", "not an IPv6 CIDR"),
        (v4vpc("Ipv6CidrBlock: '2001:db8:ec2:109::/64'"), "Resources.S.Properties.Ipv6CidrBlock", "no IPv6 block"),
        (sub("AssignIpv6AddressOnCreation: true"), "Resources.S.Properties.AssignIpv6AddressOnCreation", "no Ipv6CidrBlock"),
        (sub("Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'"), "Resources.S.Properties.CidrBlock", "IPv6-only"),
        (sub("Ipv6Native: true").replace("CidrBlock: 10.0.9.0/24, ", ""), "Resources.S.Properties.Ipv6CidrBlock", "required"),
        // Interfaces
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref C, Ipv6AddressCount: 1}}\n"), "Resources.I.Properties.Ipv6AddressCount", "no IPv6 block"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref C, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101::9'}]}}\n"), "Resources.I.Properties.Ipv6Addresses", "no IPv6 block"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6AddressCount: 2}}\n"), "Resources.I.Properties.Ipv6AddressCount", "one IPv6 address"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6AddressCount: 1, Ipv6Addresses: []}}\n"), "Resources.I.Properties.Ipv6AddressCount", "InvalidParameterCombination"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101::9'}, {Ipv6Address: '2001:db8:ec2:101::a'}]}}\n"), "Resources.I.Properties.Ipv6Addresses", "one IPv6 address"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:102::9'}]}}\n"), "Resources.I.Properties.Ipv6Addresses[0].Ipv6Address", "not in subnet A"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101::3'}]}}\n"), "Resources.I.Properties.Ipv6Addresses[0].Ipv6Address", "reserved"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101:ffff:ffff:ffff:ffff'}]}}\n"), "Resources.I.Properties.Ipv6Addresses[0].Ipv6Address", "reserved"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '10.0.1.9'}]}}\n"), "Resources.I.Properties.Ipv6Addresses[0].Ipv6Address", "not an IPv6 address"),
        (dual("  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101::9'}]}}\n  J: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref A, Ipv6Addresses: [{Ipv6Address: '2001:db8:ec2:101::9'}]}}\n"), "Properties.Ipv6Addresses[0].Ipv6Address", "already in use"),
        (dual("  I:\n    Type: AWS::EC2::Instance\n    Properties:\n      NetworkInterfaces: [{DeviceIndex: '0', SubnetId: !Ref C, Ipv6AddressCount: 1}]\n"), "Resources.I.Properties.NetworkInterfaces[0].Ipv6AddressCount", "no IPv6 block"),
        // Lambda
        (
            dual("  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A, !Ref C], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}\n"),
            "Resources.F.Properties.VpcConfig.Ipv6AllowedForDualStack",
            "subnet C has no IPv6 block",
        ),
        (
            format!("{}  F: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref S], SecurityGroupIds: [!Ref Sg]}}}}}}\n", sub("Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'").replace("CidrBlock: 10.0.9.0/24, ", "")),
            "Resources.F.Properties.VpcConfig.SubnetIds[0]",
            "IPv6-only",
        ),
        (
            format!("{}  F: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref A, !Ref S], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}}}}\n", sub("Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'").replace("CidrBlock: 10.0.9.0/24, ", "")),
            "Resources.F.Properties.VpcConfig.SubnetIds[1]",
            "IPv6-only",
        ),
        (
            format!("{}  I: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref S}}}}\n", sub("Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'").replace("CidrBlock: 10.0.9.0/24, ", "")),
            "Resources.I.Properties.SubnetId",
            "IPv6-only",
        ),
        // Fn::GetAtt before any IPv6 block: an empty list, as at AWS.
        (
            with("  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/24, Ipv6CidrBlock: !Select [0, !GetAtt Vpc.Ipv6CidrBlocks]}}\n"),
            "Resources.S.Properties.Ipv6CidrBlock",
            "cannot select nonexistent value at index 0",
        ),
    ];
    for (t, path, words) in cases {
        let e = build_err(&t);
        assert!(
            e.path.ends_with(path) || e.path == path,
            "expected {path}, got {e}\n{t}"
        );
        assert!(e.to_string().contains(words), "expected {words:?} in {e}");
    }
}

/// A template that replaces the one in force: what both have keeps its
/// addresses and indices, new resources take free ones.
#[test]
fn a_template_built_over_the_prior_model_keeps_what_both_have() {
    let over = |t: &str, prior: &Model| {
        build_over(
            t,
            &HashMap::new(),
            &Context::new("s"),
            Quotas::default(),
            Some(prior),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let hosts = "
  H2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  H3: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  Ip3: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref H3}}
";
    let first = build_ok(&with(hosts));
    let ip = |m: &Model, id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().ip;
    assert_eq!(ip(&first, "H2").to_string(), "10.0.1.4");
    assert_eq!(ip(&first, "H3").to_string(), "10.0.1.5");
    // H1 sorts first and would take .4 from scratch; C is a new subnet
    // that sorts before the others.
    let more = "
  H1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  Ip1: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref H1}}
  C: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24}}
";
    let scratch = build_ok(&with(&format!("{hosts}{more}")));
    assert_eq!(ip(&scratch, "H1").to_string(), "10.0.1.4");
    let second = over(&with(&format!("{hosts}{more}")), &first);
    assert_eq!(ip(&second, "H2"), ip(&first, "H2"));
    assert_eq!(ip(&second, "H3"), ip(&first, "H3"));
    assert_eq!(ip(&second, "H1").to_string(), "10.0.1.6");
    assert_eq!(second.public_ip("H3"), first.public_ip("H3"));
    assert_ne!(second.public_ip("H1"), first.public_ip("H3"));
    for sn in &first.subnets {
        assert_eq!(second.subnet(&sn.id).unwrap().index, sn.index, "{}", sn.id);
    }
    let c = second.subnet("C").unwrap().index;
    assert!(first.subnets.iter().all(|s| s.index < c));
    // One removed and one added in the same change: the new one does not
    // take the index the removed one's entries still name.
    let b = second.subnet("B").unwrap().index;
    let swapped = with(&format!("{hosts}{more}")).replace(
        "  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}\n",
        "  D: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.4.0/24}}\n",
    );
    let third = over(&swapped, &second);
    assert!(third.subnet("B").is_none());
    let d = third.subnet("D").unwrap().index;
    assert!(d != b && d > c, "{d}");
}

/// Separate VPCs may overlap, as at AWS: each is its own address space,
/// with hosts and Hyperplane ENIs at the same addresses; a peering
/// between them is refused, naming both blocks.
#[test]
fn separate_vpcs_may_overlap_but_may_not_peer() {
    let t = include_str!("../../../tests/fixtures/overlapping_vpcs.yaml");
    let m = build_ok(t);
    let (one, two) = (m.vpc("One").unwrap(), m.vpc("Two").unwrap());
    assert_eq!((one.cidr, one.index, two.index), (two.cidr, 1, 2));
    let db = |id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().ip;
    assert_eq!(db("Db1"), db("Db2"));
    // Each ENI in its own VPC, both first in their subnets.
    let enis: Vec<_> = m.enis.iter().map(|e| (e.vpc.as_str(), e.ip)).collect();
    assert_eq!(enis.len(), 2);
    assert_eq!(enis[0].1, enis[1].1, "{enis:?}");
    // Their endpoints, each in its VPC's space.
    let links: std::collections::HashMap<String, crate::compile::LinkInfo> =
        ["Db1", "Db2", "Example", "Web1", "Web2"]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let l = crate::compile::LinkInfo {
                    ifindex: 10 + i as u32,
                    mac: [0; 6],
                    router_mac: [0; 6],
                };
                (id.to_string(), l)
            })
            .collect();
    let mut m2 = m.clone();
    m2.functions.clear();
    let e = crate::compile::compile(&m2, &links, 0).unwrap();
    let addr = vpc_common::v4_mapped(db("Db1").octets());
    let at = |space| {
        e.endpoints
            .iter()
            .find(|(k, _)| *k == vpc_common::AddrKey { space, addr })
    };
    assert_eq!(at(1).unwrap().1.ifindex, 10);
    assert_eq!(at(2).unwrap().1.ifindex, 11);
    assert!(at(0).is_none());
    // The web servers' one private address, a public one in each space.
    let web = vpc_common::v4_mapped([10, 0, 1, 10]);
    let mut spaces: Vec<u32> = e
        .private_to_public
        .iter()
        .filter(|(k, _)| k.addr == web)
        .map(|(k, _)| k.space)
        .collect();
    spaces.sort();
    assert_eq!(spaces, [1, 2]);
    assert!(e.public_to_private.iter().all(|(_, k)| k.space != 0));
    // A peering of the two: refused, as EC2 refuses it.
    let peering = "  Peering: {Type: AWS::EC2::VPCPeeringConnection, Properties: {VpcId: !Ref One, PeerVpcId: !Ref Two}}\n";
    let e = build_err(&format!("{t}{peering}"));
    assert_eq!(e.path, "Resources.Peering.Properties.PeerVpcId");
    assert!(
        e.message.contains(
            "the CIDR '10.0.0.0/16' of VPC One overlaps the CIDR '10.0.0.0/16' of VPC Two"
        ) && e
            .message
            .contains("matching or overlapping IPv4 CIDR blocks cannot be created"),
        "{e}"
    );
}
