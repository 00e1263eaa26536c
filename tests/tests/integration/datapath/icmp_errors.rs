//! ICMP errors, case by case as docs/datapath.md decides them from AWS's
//! documentation, through BPF_PROG_TEST_RUN: related to a tracked
//! connection they pass its groups (stateful) but not its routes and ACLs
//! (stateless: every boundary the error crosses, both legs through a NAT
//! gateway); an on-path middlebox's error about a packet it was handed is
//! related too; an error related to nothing is ICMP like any other, for
//! the groups and ACLs to judge.
use vpc::packet::{parse_icmp_error, quote, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{check, icmp_error, tcp, udp, APP, DB, FRAG_NEEDED, PORT_UNREACHABLE, TEMPLATE};

const INET: &str = "203.0.113.10";

fn middleboxes(private_route: &str) -> String {
    fixture!("middleboxes.yaml")
        .replace("PUBLIC", "GatewayId: !Ref Igw")
        .replace("PRIVATE", private_route)
}

/// The app (private subnet) talks to the internet through FirewallA,
/// which reports on a packet it was handed: its error comes from its own
/// address, not the peer's. It is related, whatever the app's groups
/// (they admit nothing); the same error from FirewallB, which the
/// connection never crossed, is not, and the app's groups refuse it. The
/// app's own error about a packet it got goes the connection's way, and
/// its route is checked again: blackholed, it is dropped.
#[test]
fn an_on_path_middleboxs_error_is_related_and_errors_follow_their_routes() {
    in_private_netns(|| {
        let mut h = Harness::new(&middleboxes("InstanceId: !Ref FirewallA"));
        let (app, fw_a, fw_b) = (
            h.ifindex("App"),
            h.ifindex("FirewallA"),
            h.ifindex("FirewallB"),
        );
        let app_link = h.links["App"];
        let syn = tcp("10.0.2.10", INET, 40000, 443, TCP_SYN);
        assert_eq!(h.run(app, &syn).0, XDP_REDIRECT);
        // FirewallA: fragmentation needed, from 10.0.1.5.
        let err = icmp_error("10.0.1.5", "10.0.2.10", FRAG_NEEDED, &syn, 1000, None);
        let (v, out) = h.run(fw_a, &err);
        assert_eq!(v, XDP_REDIRECT, "{:?}", h.counters());
        assert_eq!(out[0..6], app_link.mac);
        parse_icmp_error(&out).expect("every checksum valid");
        check(&mut h, DropReason::SgIngressDenied, 0);
        // FirewallB was never on the path.
        let err = icmp_error("10.0.1.6", "10.0.2.10", FRAG_NEEDED, &syn, 1000, None);
        assert_eq!(h.run(fw_b, &err).0, XDP_DROP);
        check(&mut h, DropReason::SgIngressDenied, 1);
        // The app's own error, about the answer it got through FirewallA.
        let answer = tcp(INET, "10.0.2.10", 443, 40000, TCP_SYN | TCP_ACK);
        assert_eq!(h.run(fw_a, &answer).0, XDP_REDIRECT);
        let err = icmp_error("10.0.2.10", INET, PORT_UNREACHABLE, &answer, 1000, None);
        let (v, out) = h.run(app, &err);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(out[0..6], h.links["FirewallA"].mac);
        // The private subnet's default route blackholed: the app's next
        // error about it is dropped like its next packet.
        h.switch_to(&middleboxes("GatewayId: !Ref Detached"));
        assert_eq!(h.run(app, &err).0, XDP_DROP);
        check(&mut h, DropReason::RouteBlackhole, 1);
        let ack = tcp("10.0.2.10", INET, 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &ack).0, XDP_DROP);
        check(&mut h, DropReason::RouteBlackhole, 2);
    });
}

/// Through a NAT gateway an error crosses two subnet boundaries: the one
/// into the gateway's subnet judges it too. Its ACL here lets in TCP and
/// UDP from the internet, no ICMP: the internet's error about the app's
/// datagram stops there (it passed with only the app's subnet checked);
/// with AWS's path-MTU rule (type 3 code 4 in) that one error passes.
#[test]
fn an_error_through_a_nat_gateway_meets_the_acls_of_the_gateways_subnet() {
    let acl = "  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  AclAssoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref Public, NetworkAclId: !Ref Acl}}
  InTcp: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 0, To: 65535}}}
  InUdp: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 110, Protocol: 17, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 0, To: 65535}}}
  Out: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
";
    let pmtud = "  InPmtud: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 120, Protocol: 1, RuleAction: allow, CidrBlock: 0.0.0.0/0, Icmp: {Type: 3, Code: 4}}}\n";
    let closed = format!("{}{acl}", fixture!("nat_gateway.yaml"));
    let open = format!("{closed}{pmtud}");
    for (template, passes) in [(closed, false), (open, true)] {
        in_private_netns(|| {
            let mut h = Harness::new(&template);
            let (app, inet) = (h.ifindex("App"), h.ifindex("Example"));
            let (v, sent) = h.run(app, &udp("10.0.2.10", INET, 5001, 53, false));
            assert_eq!(v, XDP_REDIRECT);
            let err = |code| L4::IcmpError {
                ty: 3,
                code,
                info: 1200,
                quote: quote(&sent, 548),
            };
            let frame = |l4| {
                vpc::packet::Frame::new(INET.parse().unwrap(), "198.51.100.10".parse().unwrap(), l4)
                    .build()
            };
            let (v, _) = h.run(inet, &frame(err(4)));
            if passes {
                assert_eq!(v, XDP_REDIRECT, "{:?}", h.counters());
                // Another code is still refused.
                assert_eq!(h.run(inet, &frame(err(3))).0, XDP_DROP);
            } else {
                assert_eq!(v, XDP_DROP);
            }
            check(&mut h, DropReason::NaclIngressDenied, 1);
            // The connection itself goes on (UDP replies are allowed in).
            let reply = udp(INET, "198.51.100.10", 53, seen_port(&sent), false);
            assert_eq!(h.run(inet, &reply).0, XDP_REDIRECT);
        });
    }
}

/// The source port a forwarded frame left with (IPv4, no options).
fn seen_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

/// An error that quotes no connection is ICMP like any other: with AWS's
/// path-MTU rule in the receiver's groups (type 3 code 4 in) it passes,
/// other codes do not; without it, nothing does.
#[test]
fn an_error_related_to_no_connection_is_judged_by_the_groups_as_any_icmp() {
    let with_rule = TEMPLATE.replace(
        "GroupDescription: app\n",
        "GroupDescription: app\n      SecurityGroupIngress: [{IpProtocol: icmp, FromPort: 3, ToPort: 4, CidrIp: 10.0.0.0/16}]\n",
    );
    assert_ne!(with_rule, TEMPLATE);
    let stray = tcp(APP, DB, 40000, 5432, TCP_ACK);
    in_private_netns(|| {
        let mut h = Harness::new(&with_rule);
        let db = h.ifindex("Db");
        let err = icmp_error(DB, APP, FRAG_NEEDED, &stray, 1000, None);
        let (v, out) = h.run(db, &err);
        assert_eq!(v, XDP_REDIRECT, "{:?}", h.counters());
        assert_eq!(out[0..6], h.links["App"].mac);
        let err = icmp_error(DB, APP, PORT_UNREACHABLE, &stray, 1000, None);
        assert_eq!(h.run(db, &err).0, XDP_DROP);
        check(&mut h, DropReason::SgIngressDenied, 1);
    });
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let db = h.ifindex("Db");
        let err = icmp_error(DB, APP, FRAG_NEEDED, &stray, 1000, None);
        assert_eq!(h.run(db, &err).0, XDP_DROP);
        check(&mut h, DropReason::SgIngressDenied, 1);
    });
}
