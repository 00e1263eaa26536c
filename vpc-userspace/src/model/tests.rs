use ipnet::IpNet;

use super::*;

fn build_ok(t: &str) -> Model {
    build(t, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"))
}

fn build_err(t: &str) -> ModelError {
    build(t, &HashMap::new(), "s").expect_err("template should be rejected")
}

const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: d, VpcId: !Ref Vpc}}
"#;

fn with(extra: &str) -> String {
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
    assert_eq!(
        m.skipped,
        vec![(
            "OrdersLogGroup".to_string(),
            "AWS::Logs::LogGroup".to_string()
        )]
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
fn functions_with_the_same_subnet_and_groups_share_an_eni() {
    let m = build_ok(&with(
        r#"
  F1: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
  F2: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg, !Ref Sg]}}}
  F3: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref B], SecurityGroupIds: [!Ref Sg]}}}
  F4: {Type: AWS::Lambda::Function, Properties: {FunctionName: plain}}
"#,
    ));
    assert_eq!(m.enis.len(), 2);
    assert_eq!(m.enis[0].functions, vec!["s-F1", "s-F2"]);
    assert_eq!(m.function("F1").unwrap().eni, m.function("F2").unwrap().eni);
    assert_ne!(m.function("F1").unwrap().eni, m.function("F3").unwrap().eni);
    assert_eq!(m.function("plain").unwrap().eni, None);
    // ENI addresses come from the subnet, after AWS's four reserved ones.
    assert_eq!(m.enis[0].ip.to_string(), "10.0.1.4");
    assert!(m
        .enis
        .iter()
        .all(|e| e.id.starts_with("eni-") && e.id.len() == 21));
}

#[test]
fn hosts_get_addresses_and_the_default_group() {
    let m = build_ok(&with(
        r#"
  I1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  I2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.4}}
  N1: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref B, GroupSet: [!Ref Sg]}}
  I3:
    Type: AWS::EC2::Instance
    Properties:
      NetworkInterfaces: [{DeviceIndex: "0", SubnetId: !Ref B, GroupSet: [!Ref Sg], PrivateIpAddress: 10.0.2.50}]
"#,
    ));
    let ip = |id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().ip.to_string();
    assert_eq!(
        ip("I2"),
        "10.0.1.4",
        "explicit addresses are honoured first"
    );
    assert_eq!(ip("I1"), "10.0.1.5");
    assert_eq!(ip("I3"), "10.0.2.50");
    assert_eq!(ip("N1"), "10.0.2.4");
    let i1 = m.hosts.iter().find(|h| h.id == "I1").unwrap();
    assert_eq!(i1.groups, vec!["Vpc.DefaultSecurityGroup"]);
    let dflt = m.group("Vpc.DefaultSecurityGroup").unwrap();
    assert_eq!(
        dflt.ingress,
        vec![Rule::allow_all(Peer::Group(
            "Vpc.DefaultSecurityGroup".into()
        ))]
    );
    assert!(m
        .members("Vpc.DefaultSecurityGroup")
        .iter()
        .any(|a| a.to_string() == "10.0.1.5"));
}

#[test]
fn rule_fields_parse_as_aws_defines_them() {
    let r = |s: &str, ingress: bool| parse_rule(&serde_json::from_str(s).unwrap(), "R", ingress);
    let all = r(
        r#"{"IpProtocol": -1, "CidrIp": "0.0.0.0/0", "FromPort": 5, "ToPort": 6}"#,
        true,
    )
    .unwrap();
    assert_eq!(
        (all.protocol, all.from_port, all.to_port),
        (Protocol::All, -1, -1),
        "ports are ignored for -1"
    );
    let gre = r(
        r#"{"IpProtocol": "47", "CidrIp": "10.0.0.0/8", "FromPort": 5, "ToPort": 6}"#,
        true,
    )
    .unwrap();
    assert_eq!((gre.protocol, gre.from_port), (Protocol::Number(47), -1));
    let icmp = r(
        r#"{"IpProtocol": "icmp", "FromPort": 3, "ToPort": -1, "CidrIp": "10.0.0.0/8"}"#,
        true,
    )
    .unwrap();
    assert_eq!(
        (icmp.protocol, icmp.from_port, icmp.to_port),
        (Protocol::Number(1), 3, -1)
    );
    let v6 = r(
        r#"{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv6": "2001:db8::/32"}"#,
        false,
    )
    .unwrap();
    assert!(matches!(v6.peer, Peer::Cidr(IpNet::V6(_))));
    let sg = r(r#"{"IpProtocol": "udp", "FromPort": "53", "ToPort": "53", "DestinationSecurityGroupId": "X"}"#, false).unwrap();
    assert_eq!(sg.peer, Peer::Group("X".into()));
    // Errors name the field.
    for (rule, field) in [
        (
            r#"{"IpProtocol": "tcp", "FromPort": 10, "ToPort": 5, "CidrIp": "0.0.0.0/0"}"#,
            "R.FromPort",
        ),
        (
            r#"{"IpProtocol": "tcp", "CidrIp": "0.0.0.0/0"}"#,
            "R.FromPort",
        ),
        (
            r#"{"IpProtocol": "tcpp", "FromPort": 1, "ToPort": 1, "CidrIp": "0.0.0.0/0"}"#,
            "R.IpProtocol",
        ),
        (
            r#"{"IpProtocol": "icmp", "FromPort": -1, "ToPort": 3, "CidrIp": "0.0.0.0/0"}"#,
            "R.ToPort",
        ),
        (
            r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "10.0.0.1/8"}"#,
            "R.CidrIp",
        ),
        (r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1}"#, "R"),
        (
            r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "0.0.0.0/0", "SourceSecurityGroupId": "X"}"#,
            "R",
        ),
    ] {
        assert_eq!(r(rule, true).unwrap_err().path, field, "{rule}");
    }
}

#[test]
fn bad_templates_name_the_resource_and_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            BASE.replace("CidrBlock: 10.0.2.0/24", "CidrBlock: 10.1.2.0/24"),
            "Resources.B.Properties.CidrBlock",
            "not inside",
        ),
        (BASE.replace("CidrBlock: 10.0.2.0/24", "CidrBlock: 10.0.1.128/25"), "Resources.B.Properties.CidrBlock", "overlaps"),
        (BASE.replace("VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24", "VpcId: Nope, CidrBlock: 10.0.2.0/24"), "Resources.B.Properties.VpcId", "Nope"),
        (BASE.replace("{CidrBlock: 10.0.0.0/16}", "{CidrBlock: 198.19.0.0/16}"), "Resources.Vpc.Properties.CidrBlock", "Lambda service"),
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
fn network_acls_default_custom_and_associations() {
    let m = build_ok(&with(
        r#"
  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  Deny22: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 90, Protocol: 6, RuleAction: deny, CidrBlock: 0.0.0.0/0, PortRange: {From: 22, To: 22}}}
  AllowAll: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: "-1", RuleAction: allow, CidrBlock: 0.0.0.0/0}}
  Out: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
  Assoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref B, NetworkAclId: !Ref Acl}}
"#,
    ));
    assert_eq!(m.subnet("A").unwrap().acl, "Vpc.DefaultNetworkAcl");
    assert_eq!(m.subnet("B").unwrap().acl, "Acl");
    let acl = m.acl("Acl").unwrap();
    assert_eq!(
        acl.entries
            .iter()
            .map(|e| (e.egress, e.rule_number))
            .collect::<Vec<_>>(),
        vec![(false, 90), (false, 100), (true, 100)]
    );
    assert!(!acl.entries[0].allow && acl.entries[0].from_port == 22);
    let dflt = m.acl("Vpc.DefaultNetworkAcl").unwrap();
    assert!(dflt.is_default && dflt.entries.iter().all(|e| e.allow && e.rule_number == 100));
}

#[test]
fn bad_network_acls_name_the_resource_and_field() {
    let acl = "  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}\n";
    let entry = |props: &str| {
        with(&format!("{acl}  E: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, {props}}}}}\n"))
    };
    let cases = [
        (entry("RuleNumber: 0, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleNumber", "1-32766"),
        (entry("RuleNumber: 32767, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleNumber", "1-32766"),
        (entry("RuleNumber: 1, Protocol: -1, RuleAction: maybe, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleAction", "allow or deny"),
        (entry("RuleNumber: 1, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.PortRange", "required"),
        (entry("RuleNumber: 1, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 9, To: 8}"), "Resources.E.Properties.PortRange", "From <= To"),
        (entry("RuleNumber: 1, Protocol: 1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.Icmp", "required"),
        (entry("RuleNumber: 1, Protocol: -1, RuleAction: allow"), "Resources.E.Properties", "CidrBlock"),
        (
            with(&format!("{acl}  A1: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref A, NetworkAclId: !Ref Acl}}}}\n  A2: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref A, NetworkAclId: !Ref Acl}}}}\n")),
            "Properties.SubnetId",
            "already associated",
        ),
        (with("  E: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: acl-1, RuleNumber: 1, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}\n"), "Resources.E.Properties.NetworkAclId", "NotFound"),
    ];
    for (t, path, words) in cases {
        let e = build_err(&t);
        assert!(e.path.ends_with(path), "expected {path}, got {e}");
        assert!(e.to_string().contains(words), "expected {words:?} in {e}");
    }
    // Duplicate rule number in one direction, and the 20-rule quota.
    let mut t = with(acl);
    for (i, n) in [7, 7].iter().enumerate() {
        t += &format!("  D{i}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, RuleNumber: {n}, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}}}\n");
    }
    assert!(build_err(&t)
        .message
        .contains("NetworkAclEntryAlreadyExists"));
    let mut t = with(acl);
    for n in 1..=21 {
        t += &format!("  Q{n:02}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, RuleNumber: {n}, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}}}\n");
    }
    assert!(build_err(&t)
        .message
        .contains("NetworkAclEntryLimitExceeded"));
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
const DUAL: &str = r#"
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

fn dual(extra: &str) -> String {
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
fn explicit_and_provided_ipv6_blocks_do_not_collide() {
    let m = build_ok(
        r#"
Resources:
  V1: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V2: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}
  B1: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V1, AmazonProvidedIpv6CidrBlock: true}}
  B2: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V2, Ipv6CidrBlock: "2001:db8:ec2:100::/56"}}
"#,
    );
    let b = |id: &str| m.vpc(id).unwrap().ipv6_cidr.unwrap().to_string();
    assert_eq!(b("V2"), "2001:db8:ec2:100::/56");
    assert_eq!(b("V1"), "2001:db8:ec2:200::/56");
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
    let ep = |a: [u8; 16]| e.endpoints.iter().find(|(k, _)| *k == a).map(|x| x.1);
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
        (block("CidrBlock: 10.1.0.0/16"), "Resources.X.Properties.CidrBlock", "not supported"),
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
            "out of range",
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

#[test]
fn an_ipv6_only_subnet_alone_is_valid() {
    // Nothing in it: validated, and nothing is placed there.
    let m = build_ok(&format!(
        "{DUAL}  S: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'}}}}\n"
    ));
    assert!(m.subnet("S").is_none());
}

#[test]
fn a_vpc_ipv6_block_holding_ipv4_mapped_or_compatible_addresses_is_refused() {
    // The one /56 holding ::/96 and ::ffff:0:0/96.
    for block in ["::/56", "0::/56"] {
        let e = build_err(&format!(
            r#"
Resources:
  V: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.0.0.0/16}}}}
  B: {{Type: AWS::EC2::VPCCidrBlock, Properties: {{VpcId: !Ref V, Ipv6CidrBlock: "{block}"}}}}
"#
        ));
        assert_eq!(e.path, "Resources.B.Properties.Ipv6CidrBlock", "{block}");
        assert!(e.message.contains("IPv4-mapped"), "{}", e.message);
    }
}

#[test]
fn a_function_with_several_subnets_gets_one_execution_environment_per_subnet() {
    use crate::compile::{compile, env_enis, LinkInfo, ENI_V4_ONLY};
    // F: A then B (B listed twice: one subnet); G shares (A, Sg); H has no
    // VpcConfig; V is IPv4-only in the dual-stack subnets.
    let m = build_ok(&dual(
        r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A, !Ref B, !Ref B], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  G: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  H: {Type: AWS::Lambda::Function, Properties: {}}
  V: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref B, !Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
    ));
    let f = m.function("F").unwrap();
    let envs = f.envs();
    assert_eq!(envs.len(), 2, "one per distinct subnet");
    let eni_of = |subnet: &str| m.enis.iter().find(|e| e.subnet == subnet).unwrap();
    let (a, b) = (eni_of("A"), eni_of("B"));
    assert_ne!(a.index, b.index);
    // The first keeps the function's id and address; the others are apart.
    assert_eq!(
        (envs[0].id.as_str(), envs[0].ip, envs[0].ip6),
        ("F", f.exec_ip, f.exec_ip6)
    );
    assert_eq!(envs[0].ip.to_string(), "198.19.0.10");
    assert_eq!(envs[0].ip6.unwrap().to_string(), "2001:2::a");
    assert_eq!(envs[1].id, "F.2");
    assert_eq!(envs[1].ip.to_string(), "198.19.16.10");
    assert_eq!(envs[1].ip6.unwrap().to_string(), "2001:2:0:1::a");
    assert_eq!(
        (envs[0].subnet.as_deref(), envs[0].eni),
        (Some("A"), Some(a.index))
    );
    assert_eq!(
        (envs[1].subnet.as_deref(), envs[1].eni),
        (Some("B"), Some(b.index))
    );
    assert_eq!(f.eni, Some(a.index));
    // Every ENI lists the function once.
    assert_eq!(a.functions.iter().filter(|n| *n == "s-F").count(), 1);
    assert_eq!(b.functions.iter().filter(|n| *n == "s-F").count(), 1);
    assert_eq!(m.function("H").unwrap().envs().len(), 1);
    assert_eq!(m.function("H").unwrap().envs()[0].eni, None);
    let v = m.function("V").unwrap();
    assert_eq!(
        env_enis(&m, v),
        vec![
            ("V".to_string(), b.index | ENI_V4_ONLY),
            ("V.2".to_string(), a.index | ENI_V4_ONLY)
        ]
    );
    // Every address of every environment is distinct.
    let all: Vec<_> = m.functions.iter().flat_map(|f| f.envs()).collect();
    assert_eq!(all.len(), 6);
    let v4: std::collections::BTreeSet<_> = all.iter().map(|e| e.ip).collect();
    let v6: std::collections::BTreeSet<_> = all.iter().filter_map(|e| e.ip6).collect();
    assert_eq!(v4.len(), 6);
    assert_eq!(v6.len(), 5, "H has no IPv6 address");
    // Compiled: a port per environment, each with its subnet's ENI group
    // and its own addresses.
    let links: HashMap<String, LinkInfo> = all
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let l = LinkInfo {
                ifindex: i as u32 + 20,
                mac: [2, 0, 0, 0, 0, i as u8],
                router_mac: [2, 0, 0, 0, 1, i as u8],
            };
            (e.id.clone(), l)
        })
        .collect();
    let e = compile(&m, &links, 0).unwrap();
    let port = |id: &str| {
        let ifindex = links[id].ifindex;
        e.ports.iter().find(|(k, _)| *k == ifindex).unwrap().1
    };
    assert_eq!(port("F").eni_group, a.index);
    assert_eq!(port("F.2").eni_group, b.index);
    assert_eq!(port("G").eni_group, a.index);
    assert_eq!(port("H").eni_group, 0);
    assert_eq!(port("V").eni_group, b.index | ENI_V4_ONLY);
    assert_eq!(port("V.2").eni_group, a.index | ENI_V4_ONLY);
    assert_eq!(
        port("F.2").addr4,
        vpc_common::v4_mapped(envs[1].ip.octets())
    );
    assert_eq!(port("F.2").addr6, envs[1].ip6.unwrap().octets());
    // Each environment's addresses deliver to its own port.
    let ep = |a: [u8; 16]| e.endpoints.iter().find(|(k, _)| *k == a).unwrap().1;
    assert_eq!(
        ep(vpc_common::v4_mapped(envs[1].ip.octets())).ifindex,
        links["F.2"].ifindex
    );
    assert_eq!(
        ep(envs[1].ip6.unwrap().octets()).ifindex,
        links["F.2"].ifindex
    );
    // Both groups (and both IPv4-only views) are in ENI_GROUPS.
    let groups: Vec<u32> = e.eni_groups.iter().map(|(k, _)| *k).collect();
    for g in [
        a.index,
        b.index,
        a.index | ENI_V4_ONLY,
        b.index | ENI_V4_ONLY,
    ] {
        assert!(groups.contains(&g), "{g:#x} in {groups:?}");
    }
    // Namespace names: the first as before, the others unambiguous.
    assert_eq!(crate::topology::exec_env_netns("d", "F", 1), "d-fn-F");
    assert_eq!(crate::topology::exec_env_netns("d", "F", 2), "d-fn-F.2");
}
