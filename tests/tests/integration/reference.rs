//! Property test: random security groups, group references and ACLs with
//! overlapping ranges, random packets; the XDP program (through
//! BPF_PROG_TEST_RUN) must give the reference model's verdict and reason,
//! for new connections and for the replies of the ones it admits.
//! `VPC_PROPTEST_SEED=N` replays a run; the seed is printed on failure.
use std::{collections::HashMap, fmt::Write as _, net::IpAddr};

use vpc::{
    packet::{parse_and_verify, Frame, L4, TCP_ACK, TCP_SYN},
    reference::{self, Verdict},
};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, Rng, XDP_REDIRECT};

const HOSTS: [(&str, &str, &str); 4] = [
    ("H1", "A", "10.0.1.10"),
    ("H2", "A", "10.0.1.11"),
    ("H3", "B", "10.0.2.10"),
    ("H4", "B", "10.0.2.11"),
];
const CIDRS: [&str; 9] = [
    "0.0.0.0/0",
    "10.0.0.0/16",
    "10.0.1.0/24",
    "10.0.2.0/24",
    "10.0.1.8/29",
    "10.0.2.10/32",
    "10.0.1.4/32",
    "10.0.2.4/32",
    "192.168.0.0/16",
];
const PORTS: [u16; 8] = [0, 22, 80, 443, 1024, 5432, 8080, 65535];

fn ports(r: &mut Rng) -> (u16, u16) {
    let (a, b) = (*r.pick(&PORTS), *r.pick(&PORTS));
    (a.min(b), a.max(b))
}

fn sg_rule(r: &mut Rng, ingress: bool) -> String {
    let peer = if r.chance(10) {
        format!(
            "{}: PL",
            if ingress {
                "SourcePrefixListId"
            } else {
                "DestinationPrefixListId"
            }
        )
    } else if r.chance(8) {
        // IPv6 rules must never admit IPv4 packets.
        format!(
            "CidrIpv6: \"{}\"",
            r.pick(&["::/0", "fd00::/8", "::ffff:0:0/96"])
        )
    } else if r.chance(25) {
        format!(
            "{}: G{}",
            if ingress {
                "SourceSecurityGroupId"
            } else {
                "DestinationSecurityGroupId"
            },
            r.below(3)
        )
    } else {
        format!("CidrIp: {}", r.pick(&CIDRS))
    };
    match r.below(5) {
        0 | 1 => {
            let (lo, hi) = ports(r);
            format!(
                "{{IpProtocol: {}, FromPort: {lo}, ToPort: {hi}, {peer}}}",
                if r.chance(50) { "tcp" } else { "udp" }
            )
        }
        2 => {
            let t = *r.pick(&[-1, 0, 3, 8]);
            let c = if t == -1 { -1 } else { *r.pick(&[-1, 0, 4]) };
            format!("{{IpProtocol: icmp, FromPort: {t}, ToPort: {c}, {peer}}}")
        }
        3 => format!("{{IpProtocol: \"-1\", {peer}}}"),
        _ => format!("{{IpProtocol: \"47\", {peer}}}"),
    }
}

/// Peers an ACL of subnet A or B actually meets: the other subnet's
/// addresses (inside a subnet ACLs do not apply).
const ACL_PEERS: [[&str; 6]; 2] = [
    [
        "0.0.0.0/0",
        "10.0.0.0/16",
        "10.0.2.0/24",
        "10.0.2.10/32",
        "10.0.2.8/29",
        "10.0.2.4/32",
    ],
    [
        "0.0.0.0/0",
        "10.0.0.0/16",
        "10.0.1.0/24",
        "10.0.1.10/32",
        "10.0.1.8/29",
        "10.0.1.4/32",
    ],
];

fn acl_entries(r: &mut Rng, acl: &str, peers: &[&str], t: &mut String) {
    let mut used = std::collections::HashSet::new();
    for i in 0..2 + r.below(11) {
        let egress = r.chance(50);
        let num = 1 + r.below(200);
        if !used.insert((egress, num)) {
            continue;
        }
        let action = if r.chance(60) { "allow" } else { "deny" };
        let extra = match r.below(5) {
            0 | 1 => {
                let (lo, hi) = ports(r);
                format!(
                    "Protocol: {}, PortRange: {{From: {lo}, To: {hi}}}",
                    if r.chance(50) { 6 } else { 17 }
                )
            }
            2 => {
                let t = *r.pick(&[-1, 0, 8]);
                let c = if t == -1 { -1 } else { *r.pick(&[-1, 0]) };
                format!("Protocol: 1, Icmp: {{Type: {t}, Code: {c}}}")
            }
            3 => "Protocol: -1".into(),
            _ => "Protocol: 47".into(),
        };
        let _ = writeln!(
            t,
            "  {acl}E{i}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: {num}, RuleAction: {action}, Egress: {egress}, {}, {extra}}}}}",
            if r.chance(10) { format!("Ipv6CidrBlock: \"{}\"", r.pick(&["::/0", "::ffff:0:0/96"])) } else { format!("CidrBlock: {}", r.pick(peers)) }
        );
    }
}

fn template(r: &mut Rng) -> String {
    let mut t = String::from(
        "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}\n  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}\n",
    );
    t.push_str("  PL: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: pl, AddressFamily: IPv4, MaxEntries: 4, Entries: [{Cidr: 10.0.1.8/30}, {Cidr: 10.0.2.0/25}]}}\n");
    for g in 0..3 {
        let ing: Vec<String> = (0..r.below(6)).map(|_| sg_rule(r, true)).collect();
        let _ = write!(t, "  G{g}:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: g\n      VpcId: !Ref Vpc\n      SecurityGroupIngress: [{}]\n", ing.join(", "));
        if r.chance(70) {
            let eg: Vec<String> = (0..r.below(4)).map(|_| sg_rule(r, false)).collect();
            let _ = writeln!(t, "      SecurityGroupEgress: [{}]", eg.join(", "));
        }
    }
    let groups = |r: &mut Rng| {
        let a = r.below(3);
        if r.chance(40) {
            format!("[G{a}, G{}]", (a + 1) % 3)
        } else {
            format!("[G{a}]")
        }
    };
    for (id, subnet, ip) in HOSTS {
        let g = groups(r);
        let _ = writeln!(t, "  {id}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref {subnet}, PrivateIpAddress: {ip}, SecurityGroupIds: {g}}}}}");
    }
    let fsub = if r.chance(50) { "A" } else { "B" };
    let g = groups(r);
    let _ = writeln!(t, "  Fn: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref {fsub}], SecurityGroupIds: {g}}}}}}}");
    for (k, (acl, subnet)) in [("AclA", "A"), ("AclB", "B")].into_iter().enumerate() {
        if r.chance(70) {
            let _ = writeln!(
                t,
                "  {acl}: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}"
            );
            let _ = writeln!(t, "  {acl}Assoc: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref {subnet}, NetworkAclId: !Ref {acl}}}}}");
            acl_entries(r, acl, &ACL_PEERS[k], &mut t);
        }
    }
    t
}

fn reason_of(before: &vpc::datapath::Counters, after: &vpc::datapath::Counters) -> Option<String> {
    after
        .dropped
        .iter()
        .zip(&before.dropped)
        .find(|((_, a), (_, b))| a > b)
        .map(|((n, _), _)| n.clone())
}

const CONFIGS: usize = 60;
const PACKETS: usize = 200;

#[test]
fn the_datapath_agrees_with_the_reference_model() {
    let seed: u64 = std::env::var("VPC_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1a3b_dab5);
    let mut r = Rng(seed);
    let mut cases = 0;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for config in 0..CONFIGS {
        let t = template(&mut r);
        let pkt_seed = r.next_u64();
        let (n, hist) = in_private_netns(|| {
            let mut h = Harness::new(&t);
            let m = h.model.clone();
            let eni = IpAddr::V4(m.enis[0].ip);
            let exec = m.functions[0].exec_ip;
            let mut r = Rng(pkt_seed | 1);
            let mut n = 0;
            let mut hist: Vec<String> = vec![];
            for i in 0..PACKETS {
                let from_fn = r.chance(30);
                let src_ip: IpAddr = if from_fn {
                    IpAddr::V4(exec)
                } else {
                    r.pick(&HOSTS).2.parse().unwrap()
                };
                let dst_ip: IpAddr = match r.below(10) {
                    0 => eni,
                    1 => IpAddr::V4(exec),
                    _ => r.pick(&HOSTS).2.parse().unwrap(),
                };
                if src_ip == dst_ip {
                    continue;
                }
                let sport = 20000 + i as u16;
                let dport = if r.chance(80) {
                    *r.pick(&PORTS)
                } else {
                    r.next_u64() as u16
                };
                let (l4, proto, port) = match r.below(4) {
                    0 | 1 => (
                        L4::Tcp {
                            sport,
                            dport,
                            flags: TCP_SYN,
                        },
                        6u8,
                        dport,
                    ),
                    2 => (
                        L4::Udp {
                            sport,
                            dport,
                            no_checksum: false,
                        },
                        17,
                        dport,
                    ),
                    _ => {
                        let ty = *r.pick(&[8u8, 0, 3]);
                        (
                            L4::Icmp {
                                ty,
                                code: 0,
                                id: sport,
                                seq: 1,
                            },
                            1,
                            (ty as u16) << 8,
                        )
                    }
                };
                // The reference sees the packet as it leaves: a function's
                // after source NAT, from its ENI.
                let seen_src = if from_fn { eni } else { src_ip };
                let icmp_error = matches!(l4, L4::Icmp { ty: 3, .. });
                let want = if icmp_error {
                    // Type 3 is an error, forwarded only with the connection
                    // it quotes; these quote nothing at all: no rule decides.
                    Verdict::Deny("malformed", "an ICMP error without its quote".into())
                } else if from_fn && proto == 1 {
                    Verdict::Deny("function_protocol", "Lambda is TCP and UDP only".into())
                } else if !from_fn && dst_ip == IpAddr::V4(exec)
                    || from_fn && (dst_ip == eni || dst_ip == IpAddr::V4(exec))
                {
                    Verdict::Deny("no_route", "the Lambda side is not routable".into())
                } else {
                    reference::new_connection(
                        &m,
                        &reference::Packet {
                            src: seen_src,
                            dst: dst_ip,
                            proto,
                            port,
                            space: 0,
                        },
                    )
                };
                let ingress = if from_fn {
                    h.ifindex("Fn")
                } else {
                    h.ifindex(
                        HOSTS
                            .iter()
                            .find(|x| x.2.parse::<IpAddr>().unwrap() == src_ip)
                            .unwrap()
                            .0,
                    )
                };
                let frame = Frame::new(src_ip, dst_ip, l4).build();
                let before = h.counters();
                let (v, out) = h.run(ingress, &frame);
                let got = reason_of(&before, &h.counters());
                let ctx = || {
                    format!("seed {seed} config {config} packet {i}: {src_ip} -> {dst_ip} proto {proto} port {port}\n{t}")
                };
                assert_eq!(
                    got.as_deref(),
                    want.reason(),
                    "reason; want {want:?}; {}",
                    ctx()
                );
                assert_eq!(
                    v == XDP_REDIRECT,
                    want == Verdict::Allow,
                    "verdict; {}",
                    ctx()
                );
                hist.push(want.reason().unwrap_or("allow").to_string());
                n += 1;
                // The reply of an admitted TCP connection: groups are
                // stateful, ACLs are not.
                if v == XDP_REDIRECT && proto == 6 {
                    let sent = parse_and_verify(&out).unwrap();
                    let back = Frame::new(
                        dst_ip,
                        sent.src,
                        L4::Tcp {
                            sport: dport,
                            dport: sent.sport,
                            flags: TCP_SYN | TCP_ACK,
                        },
                    )
                    .build();
                    let want = reference::tracked(
                        &m,
                        &reference::Packet {
                            src: dst_ip,
                            dst: sent.src,
                            proto,
                            port: sent.sport,
                            space: 0,
                        },
                    );
                    let dst_if = h.ifindex(
                        HOSTS
                            .iter()
                            .find(|x| x.2.parse::<IpAddr>().unwrap() == dst_ip)
                            .unwrap()
                            .0,
                    );
                    let before = h.counters();
                    let (v, _) = h.run(dst_if, &back);
                    let got = reason_of(&before, &h.counters());
                    assert_eq!(got.as_deref(), want.reason(), "reply reason; {}", ctx());
                    assert_eq!(
                        v == XDP_REDIRECT,
                        want == Verdict::Allow,
                        "reply verdict; {}",
                        ctx()
                    );
                    hist.push(format!("reply {}", want.reason().unwrap_or("allow")));
                    n += 1;
                }
            }
            (n, hist)
        });
        cases += n;
        for h in hist {
            *seen.entry(h).or_default() += 1;
        }
    }
    eprintln!("{cases} cases agreed (seed {seed}): {seen:?}");
    assert!(cases >= 10_000, "only {cases} cases");
    // The generator must exercise every outcome, not just the easy ones.
    let count = |k: &str| seen.get(k).copied().unwrap_or(0);
    assert!(
        count("reply nacl_egress_denied") + count("reply nacl_ingress_denied") >= 10,
        "replies cut by ACLs too rarely: {seen:?}"
    );
    for outcome in
        ["allow", "reply allow"]
            .into_iter()
            .chain(DropReason::ALL.iter().map(|r| r.name()).filter(|r| {
                r.starts_with("sg_") || r.starts_with("nacl_") || *r == "hyperplane_unsolicited"
            }))
    {
        assert!(
            seen.get(outcome).copied().unwrap_or(0) >= 10,
            "outcome {outcome} seen too rarely: {seen:?}"
        );
    }
}

/// The routed topology: a public subnet (a host with a public address, one
/// without, a NAT gateway), two private subnets (a host each, the
/// function), two internet test hosts; random tables, routes, attachment,
/// groups and ACLs.
const ROUTED_HOSTS: [(&str, &str, &str); 4] = [
    ("P1", "Pub", "10.0.0.10"),
    ("P2", "Pub", "10.0.0.11"),
    ("H1", "A", "10.0.1.10"),
    ("H2", "B", "10.0.2.10"),
];
const INTERNET: [&str; 3] = ["203.0.113.10", "192.0.2.20", "198.18.0.1"];
const ROUTED_PEERS: [&str; 8] = [
    "0.0.0.0/0",
    "10.0.0.0/16",
    "10.0.0.0/24",
    "10.0.1.0/24",
    "203.0.113.0/24",
    "192.0.2.20/32",
    "198.51.100.0/24",
    "192.0.2.0/24",
];

fn routed_rule(r: &mut Rng, ingress: bool) -> String {
    let peer = format!("CidrIp: {}", r.pick(&ROUTED_PEERS));
    let peer = if r.chance(15) {
        format!(
            "{}: G{}",
            if ingress {
                "SourceSecurityGroupId"
            } else {
                "DestinationSecurityGroupId"
            },
            r.below(2)
        )
    } else {
        peer
    };
    match r.below(4) {
        0 | 1 => {
            let (lo, hi) = ports(r);
            let pr = if r.chance(50) { "tcp" } else { "udp" };
            format!("{{IpProtocol: {pr}, FromPort: {lo}, ToPort: {hi}, {peer}}}")
        }
        2 => format!("{{IpProtocol: icmp, FromPort: 8, ToPort: -1, {peer}}}"),
        _ => format!("{{IpProtocol: \"-1\", {peer}}}"),
    }
}

/// A private table's routes: none, the NAT gateway, the internet gateway
/// or an instance (a middlebox) by default, by prefix list, or more
/// specific ones beside.
fn private_routes(r: &mut Rng, rt: &str, t: &mut String) {
    let route = |t: &mut String, n: &str, dst: &str, target: &str| {
        let _ = writeln!(t, "  {rt}{n}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref {rt}, {dst}, {target}}}}}");
    };
    let nat = "NatGatewayId: !Ref Nat";
    let igw = "GatewayId: !Ref Igw";
    match r.below(7) {
        0 => {}
        6 => route(
            t,
            "Default",
            "DestinationCidrBlock: 0.0.0.0/0",
            "InstanceId: !Ref P2",
        ),
        1 => route(t, "Default", "DestinationCidrBlock: 0.0.0.0/0", nat),
        2 => route(t, "Default", "DestinationCidrBlock: 0.0.0.0/0", igw),
        3 => {
            route(t, "Default", "DestinationCidrBlock: 0.0.0.0/0", igw);
            route(t, "Doc", "DestinationCidrBlock: 203.0.113.0/24", nat);
        }
        4 => route(t, "Pl", "DestinationPrefixListId: !Ref Pl", nat),
        _ => {
            route(t, "Pl", "DestinationPrefixListId: !Ref Pl", igw);
            // Static beats the list's equal entry.
            route(t, "Static", "DestinationCidrBlock: 203.0.113.0/24", nat);
        }
    }
}

fn routed_template(r: &mut Rng) -> String {
    let mut t = String::from("Metadata:\n  Vpc::Internet:\n    Hosts:\n      X: {Address: 203.0.113.10}\n      Y: {Address: 192.0.2.20}\nResources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n");
    for (s, cidr) in [
        ("Pub", "10.0.0.0/24"),
        ("A", "10.0.1.0/24"),
        ("B", "10.0.2.0/24"),
    ] {
        let _ = writeln!(
            t,
            "  {s}: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: {cidr}}}}}"
        );
    }
    t.push_str("  Pl: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: pl, AddressFamily: IPv4, MaxEntries: 2, Entries: [{Cidr: 203.0.113.0/24}, {Cidr: 192.0.2.0/24}]}}\n");
    t.push_str("  Igw: {Type: AWS::EC2::InternetGateway}\n");
    if r.chance(75) {
        t.push_str("  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}\n");
    }
    t.push_str("  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}\n  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Pub, AllocationId: !GetAtt NatIp.AllocationId}}\n");
    t.push_str("  PubRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}\n  PubAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Pub, RouteTableId: !Ref PubRt}}\n");
    if r.chance(85) {
        t.push_str("  PubDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PubRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}\n");
    }
    for s in ["A", "B"] {
        // Some subnets stay on the main table (local routes only).
        if r.chance(85) {
            let rt = format!("Rt{s}");
            let _ = writeln!(t, "  {rt}: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Vpc}}}}\n  {rt}Assoc: {{Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {{SubnetId: !Ref {s}, RouteTableId: !Ref {rt}}}}}");
            private_routes(r, &rt, &mut t);
        }
    }
    for g in 0..2 {
        let ing: Vec<String> = (0..r.below(5)).map(|_| routed_rule(r, true)).collect();
        let _ = write!(t, "  G{g}:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: g\n      VpcId: !Ref Vpc\n      SecurityGroupIngress: [{}]\n", ing.join(", "));
        if r.chance(60) {
            let eg: Vec<String> = (0..1 + r.below(4)).map(|_| routed_rule(r, false)).collect();
            let _ = writeln!(t, "      SecurityGroupEgress: [{}]", eg.join(", "));
        }
    }
    for (id, subnet, ip) in ROUTED_HOSTS {
        let public = if id == "P1" {
            ", AssociatePublicIpAddress: true"
        } else {
            ""
        };
        // P2 may be a middlebox (a route's InstanceId).
        let check = if id == "P2" && r.chance(60) {
            "SourceDestCheck: false, "
        } else {
            ""
        };
        let _ = writeln!(t, "  {id}: {{Type: AWS::EC2::Instance, Properties: {{{check}NetworkInterfaces: [{{DeviceIndex: \"0\", SubnetId: !Ref {subnet}, PrivateIpAddress: {ip}, GroupSet: [G{}]{public}}}]}}}}", r.below(2));
    }
    let fsub = if r.chance(50) { "A" } else { "B" };
    let _ = writeln!(t, "  Fn: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref {fsub}], SecurityGroupIds: [G{}]}}}}}}", r.below(2));
    for s in ["Pub", "A", "B"] {
        if r.chance(50) {
            let acl = format!("Acl{s}");
            let _ = writeln!(t, "  {acl}: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}\n  {acl}Assoc: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref {s}, NetworkAclId: !Ref {acl}}}}}");
            acl_entries(r, &acl, &ROUTED_PEERS, &mut t);
            // Mostly open, so packets get as far as the gateways.
            let _ = writeln!(t, "  {acl}Out: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: 300, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0, Protocol: -1}}}}\n  {acl}In: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: 300, RuleAction: allow, Egress: false, CidrBlock: 0.0.0.0/0, Protocol: -1}}}}");
        }
    }
    t
}

/// Routes, gateways and the internet: new connections from hosts and the
/// function to the internet test hosts (through the internet gateway's 1:1
/// NAT or the NAT gateway), to addresses nobody owns, and across the VPC;
/// the datapath's verdict and reason must be the reference's.
#[test]
fn the_datapath_routes_as_the_reference_model_does() {
    routed_property(Routed {
        what: "routed",
        seed: 0,
        configs: 30,
        packets: 150,
        hosts: &ROUTED_HOSTS,
        internet: &INTERNET,
        template: routed_template,
        v6: false,
        outcomes: &[
            "allow",
            "no_route",
            "route_blackhole",
            "no_public_address",
            "internet_unreachable",
            "nat_gateway_protocol",
            "sg_egress_denied",
            "nacl_egress_denied",
            "source_dest_check",
        ],
    });
}

/// IPv6 to the internet: a dual-stack copy of the routed topology, whose
/// tables send IPv6 to the internet gateway or an egress-only one (or not).
const V6_HOSTS: [(&str, &str, &str); 3] = [
    ("P1", "Pub", "2001:db8:ec2:100::10"),
    ("H1", "A", "2001:db8:ec2:101::10"),
    ("H2", "B", "2001:db8:ec2:102::10"),
];
const INTERNET6: [&str; 3] = ["2001:db8:f00d::10", "2001:db8:f00e::20", "2001:db8:dead::1"];
const V6_PEERS: [&str; 6] = [
    "::/0",
    "2001:db8:f00d::/48",
    "2001:db8:f00d::10/128",
    "2001:db8:ec2:100::/56",
    "2001:db8:ec2:101::/64",
    "2001:db8:f000::/36",
];

fn v6_rule(r: &mut Rng) -> String {
    let peer = format!("CidrIpv6: \"{}\"", r.pick(&V6_PEERS));
    match r.below(4) {
        0 | 1 => {
            let (lo, hi) = ports(r);
            let pr = if r.chance(50) { "tcp" } else { "udp" };
            format!("{{IpProtocol: {pr}, FromPort: {lo}, ToPort: {hi}, {peer}}}")
        }
        2 => format!("{{IpProtocol: icmpv6, FromPort: 128, ToPort: -1, {peer}}}"),
        _ => format!("{{IpProtocol: \"-1\", {peer}}}"),
    }
}

fn v6_template(r: &mut Rng) -> String {
    let mut t = String::from("Metadata:\n  Vpc::Internet:\n    Hosts:\n      X: {Address: 203.0.113.10, Ipv6Address: \"2001:db8:f00d::10\"}\n      Y: {Address: 192.0.2.20, Ipv6Address: \"2001:db8:f00e::20\"}\nResources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}\n");
    for (k, s) in ["Pub", "A", "B"].into_iter().enumerate() {
        let _ = writeln!(
            t,
            "  {s}: {{Type: AWS::EC2::Subnet, DependsOn: V6, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.{k}.0/24, Ipv6CidrBlock: \"2001:db8:ec2:10{k}::/64\"}}}}"
        );
    }
    t.push_str("  Igw: {Type: AWS::EC2::InternetGateway}\n  Eigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref Vpc}}\n");
    if r.chance(85) {
        t.push_str("  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}\n");
    }
    t.push_str("  PubRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}\n  PubAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Pub, RouteTableId: !Ref PubRt}}\n");
    if r.chance(85) {
        t.push_str("  PubV6: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PubRt, DestinationIpv6CidrBlock: \"::/0\", GatewayId: !Ref Igw}}\n");
    }
    for s in ["A", "B"] {
        if !r.chance(85) {
            continue;
        }
        let rt = format!("Rt{s}");
        let _ = writeln!(t, "  {rt}: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Vpc}}}}\n  {rt}Assoc: {{Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {{SubnetId: !Ref {s}, RouteTableId: !Ref {rt}}}}}");
        let route = |t: &mut String, n: &str, dst: &str, target: &str| {
            let _ = writeln!(t, "  {rt}{n}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref {rt}, DestinationIpv6CidrBlock: \"{dst}\", {target}}}}}");
        };
        let (igw, eigw) = (
            "GatewayId: !Ref Igw",
            "EgressOnlyInternetGatewayId: !Ref Eigw",
        );
        match r.below(5) {
            0 => {}
            1 => route(&mut t, "Default", "::/0", igw),
            2 => route(&mut t, "Default", "::/0", eigw),
            3 => route(&mut t, "F00d", "2001:db8:f00d::/48", eigw),
            _ => {
                route(&mut t, "Default", "::/0", igw);
                route(&mut t, "F00d", "2001:db8:f00d::/48", eigw);
            }
        }
    }
    for g in 0..2 {
        let ing: Vec<String> = (0..r.below(4)).map(|_| v6_rule(r)).collect();
        let _ = write!(t, "  G{g}:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: g\n      VpcId: !Ref Vpc\n      SecurityGroupIngress: [{}]\n", ing.join(", "));
        if r.chance(60) {
            let eg: Vec<String> = (0..1 + r.below(4)).map(|_| v6_rule(r)).collect();
            let _ = writeln!(t, "      SecurityGroupEgress: [{}]", eg.join(", "));
        }
    }
    for (k, (id, subnet, ip6)) in V6_HOSTS.into_iter().enumerate() {
        let _ = writeln!(t, "  {id}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref {subnet}, PrivateIpAddress: 10.0.{k}.10, Ipv6Addresses: [{{Ipv6Address: \"{ip6}\"}}], SecurityGroupIds: [G{}]}}}}", r.below(2));
    }
    let fsub = if r.chance(50) { "A" } else { "B" };
    let _ = writeln!(t, "  Fn: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref {fsub}], SecurityGroupIds: [G{}], Ipv6AllowedForDualStack: true}}}}}}", r.below(2));
    for s in ["Pub", "A", "B"] {
        if !r.chance(50) {
            continue;
        }
        let acl = format!("Acl{s}");
        let _ = writeln!(t, "  {acl}: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}\n  {acl}Assoc: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref {s}, NetworkAclId: !Ref {acl}}}}}");
        for i in 0..r.below(4) {
            let (lo, hi) = ports(r);
            let action = if r.chance(50) { "allow" } else { "deny" };
            let proto = if r.chance(50) { 6 } else { 17 };
            let _ = writeln!(t, "  {acl}E{i}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: {}, RuleAction: {action}, Egress: {}, Ipv6CidrBlock: \"{}\", Protocol: {proto}, PortRange: {{From: {lo}, To: {hi}}}}}}}", 10 + i, r.chance(50), r.pick(&V6_PEERS));
        }
        // Mostly open, so packets get as far as the gateways.
        if r.chance(80) {
            let _ = writeln!(t, "  {acl}Out: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: 300, RuleAction: allow, Egress: true, Ipv6CidrBlock: \"::/0\", Protocol: -1}}}}\n  {acl}In: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: 300, RuleAction: allow, Egress: false, Ipv6CidrBlock: \"::/0\", Protocol: -1}}}}");
        }
    }
    t
}

/// IPv6 from hosts and the dual-stack function to the internet's test
/// hosts (untranslated through either gateway), to addresses nobody owns
/// and across the VPC: the datapath's verdict and reason must be the
/// reference's.
#[test]
fn the_datapath_routes_ipv6_to_the_internet_as_the_reference_model_does() {
    routed_property(Routed {
        what: "IPv6 routed",
        seed: 6,
        configs: 20,
        packets: 120,
        hosts: &V6_HOSTS,
        internet: &INTERNET6,
        template: v6_template,
        v6: true,
        outcomes: &[
            "allow",
            "no_route",
            "route_blackhole",
            "internet_unreachable",
            "sg_egress_denied",
            "nacl_egress_denied",
        ],
    });
}

/// One family of the routing property tests: random templates, new
/// connections from the hosts and the function to the internet and across
/// the VPC, each held to the reference's verdict and reason.
struct Routed {
    what: &'static str,
    /// XORed into the seed, so each family draws its own cases.
    seed: u64,
    configs: usize,
    packets: usize,
    hosts: &'static [(&'static str, &'static str, &'static str)],
    internet: &'static [&'static str],
    template: fn(&mut Rng) -> String,
    /// IPv6: the function's environments are activated and send from
    /// their IPv6 address, ICMPv6 echoes, and nothing is translated.
    v6: bool,
    /// Outcomes the generator must produce at least ten times each.
    outcomes: &'static [&'static str],
}

fn routed_property(c: Routed) {
    let seed: u64 = std::env::var("VPC_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0a7e_5eed);
    let mut r = Rng(seed ^ c.seed);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut cases = 0;
    for config in 0..c.configs {
        let t = (c.template)(&mut r);
        let pkt_seed = r.next_u64();
        let (n, hist) = in_private_netns(|| {
            let mut h = Harness::new(&t);
            if c.v6 {
                h.activate();
            }
            let m = h.model.clone();
            let (eni, exec) = if c.v6 {
                (
                    IpAddr::V6(m.enis[0].ip6.expect("a dual-stack ENI")),
                    IpAddr::V6(m.functions[0].envs()[0].ip6.expect("IPv6")),
                )
            } else {
                (IpAddr::V4(m.enis[0].ip), IpAddr::V4(m.functions[0].exec_ip))
            };
            let mut r = Rng(pkt_seed | 1);
            let (mut n, mut hist) = (0, vec![]);
            for i in 0..c.packets {
                let from_fn = r.chance(35);
                let (src_id, src_ip) = if from_fn {
                    ("Fn", exec)
                } else {
                    let x = r.pick(c.hosts);
                    (x.0, x.2.parse().unwrap())
                };
                let dst_ip: IpAddr = if r.chance(75) {
                    r.pick(c.internet).parse().unwrap()
                } else {
                    r.pick(c.hosts).2.parse().unwrap()
                };
                if src_ip == dst_ip {
                    continue;
                }
                let sport = 20000 + i as u16;
                let dport = *r.pick(&PORTS);
                let (l4, proto, port) = match r.below(5) {
                    0 | 1 => (
                        L4::Tcp {
                            sport,
                            dport,
                            flags: TCP_SYN,
                        },
                        6u8,
                        dport,
                    ),
                    2 | 3 => (
                        L4::Udp {
                            sport,
                            dport,
                            no_checksum: false,
                        },
                        17,
                        dport,
                    ),
                    _ => {
                        // IPv4: an echo, or a timestamp request (no NAT
                        // gateway translates it); IPv6: an echo.
                        let (ty, proto) = if c.v6 {
                            (128, 58)
                        } else if r.chance(50) {
                            (8, 1)
                        } else {
                            (13, 1)
                        };
                        (
                            L4::Icmp {
                                ty,
                                code: 0,
                                id: sport,
                                seq: 1,
                            },
                            proto,
                            (ty as u16) << 8,
                        )
                    }
                };
                let p = reference::Packet {
                    src: if from_fn { eni } else { src_ip },
                    dst: dst_ip,
                    proto,
                    port,
                    space: 0,
                };
                let want = if from_fn && matches!(proto, 1 | 58) {
                    Verdict::Deny("function_protocol", "Lambda is TCP and UDP only".into())
                } else {
                    reference::new_connection(&m, &p)
                };
                let frame = Frame::new(src_ip, dst_ip, l4).build();
                let before = h.counters();
                let (v, out) = h.run(h.ifindex(src_id), &frame);
                let got = reason_of(&before, &h.counters());
                let ctx = || {
                    format!(
                        "seed {seed} config {config} packet {i}: {src_id} {src_ip} -> {dst_ip} proto {proto} port {port}\n{:?}\n{t}",
                        reference::explain(&m, &p).1
                    )
                };
                assert_eq!(
                    got.as_deref(),
                    want.reason(),
                    "reason; want {want:?}; {}",
                    ctx()
                );
                assert_eq!(
                    v == XDP_REDIRECT,
                    want == Verdict::Allow,
                    "verdict; {}",
                    ctx()
                );
                if c.v6 && v == XDP_REDIRECT && !from_fn {
                    // No NAT for IPv6: only the MACs change.
                    assert_eq!(&out[12..], &frame[12..], "{}", ctx());
                }
                hist.push(want.reason().unwrap_or("allow").to_string());
                n += 1;
            }
            (n, hist)
        });
        cases += n;
        for x in hist {
            *seen.entry(x).or_default() += 1;
        }
    }
    eprintln!("{cases} {} cases agreed (seed {seed}): {seen:?}", c.what);
    for outcome in c.outcomes {
        assert!(
            seen.get(*outcome).copied().unwrap_or(0) >= 10,
            "outcome {outcome} seen too rarely: {seen:?}"
        );
    }
}
