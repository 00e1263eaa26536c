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
