//! Security groups through BPF_PROG_TEST_RUN: stateful, allow-only, and
//! ICMP errors about a tracked connection passing as related traffic.
use vpc::packet::{Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{
    add_ipv6, check, echo_request, expect_translated, icmp_error, ip, tcp, APP, APP6, DB, DB6,
    EXEC, PACKET_TOO_BIG, TEMPLATE,
};

#[test]
fn security_groups_are_stateful_and_allow_only() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if, app_if) = (h.ifindex("Fn"), h.ifindex("Db"), h.ifindex("App"));
        // The database admits 5432 from the function's group only.
        assert_eq!(h.run(fn_if, &tcp(EXEC, DB, 40001, 22, TCP_SYN)).0, XDP_DROP);
        assert_eq!(
            h.run(app_if, &tcp(APP, DB, 40002, 5432, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::SgIngressDenied, 2);
        // The app admits nothing: the database cannot open a connection to it,
        // but the app (allow-all egress) can open one to... nothing the DB admits
        // except ICMP echo from the VPC, which is tracked and answered.
        assert_eq!(
            h.run(db_if, &tcp(DB, APP, 5432, 40003, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::SgIngressDenied, 3);
        let ping = Frame::new(
            ip(APP),
            ip(DB),
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 77,
                seq: 1,
            },
        )
        .build();
        assert_eq!(h.run(app_if, &ping).0, XDP_REDIRECT);
        let pong = Frame::new(
            ip(DB),
            ip(APP),
            L4::Icmp {
                ty: 0,
                code: 0,
                id: 77,
                seq: 1,
            },
        )
        .build();
        assert_eq!(
            h.run(db_if, &pong).0,
            XDP_REDIRECT,
            "the echo reply of a tracked ping passes"
        );
        let stray = Frame::new(
            ip(DB),
            ip(APP),
            L4::Icmp {
                ty: 0,
                code: 0,
                id: 78,
                seq: 1,
            },
        )
        .build();
        assert_eq!(
            h.run(db_if, &stray).0,
            XDP_DROP,
            "an untracked echo reply is not admitted by AppSg"
        );
        // A mid-stream TCP packet with no connection is invalid.
        assert_eq!(
            h.run(app_if, &tcp(APP, DB, 40004, 5432, TCP_ACK)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::CtInvalid, 1);
        // Functions are TCP and UDP only.
        assert_eq!(h.run(fn_if, &echo_request(EXEC, DB, 8)).0, XDP_DROP);
        check(&mut h, DropReason::FunctionProtocol, 1);
    });
}

#[test]
fn icmp_errors_between_hosts_pass_as_related_traffic_whatever_the_groups_and_others_as_icmp() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        add_ipv6(&mut h);
        let (db_if, app_if) = (h.ifindex("Db"), h.ifindex("App"));
        let app_link = h.links["App"];
        // The app's groups admit nothing inbound, ICMPv6 included; its
        // connection to the database's port 80 is tracked.
        let syn = tcp(APP6, DB6, 40000, 80, TCP_SYN);
        assert_eq!(h.run(app_if, &syn).0, XDP_REDIRECT);
        let err = icmp_error(DB6, APP6, PACKET_TOO_BIG, &syn, 1000, None);
        let want = icmp_error(DB6, APP6, PACKET_TOO_BIG, &syn, 1000, Some(&app_link));
        expect_translated(&mut h, db_if, &err, &want);
        check(&mut h, DropReason::SgIngressDenied, 0);
        // The same error about a connection that does not exist is ICMPv6
        // like any other: the database's groups let none out (their
        // default egress rule is IPv4).
        let stray = tcp(APP6, DB6, 40001, 80, TCP_SYN);
        let err = icmp_error(DB6, APP6, PACKET_TOO_BIG, &stray, 1000, None);
        assert_eq!(h.run(db_if, &err).0, XDP_DROP);
        check(&mut h, DropReason::SgEgressDenied, 1);
    });
}
