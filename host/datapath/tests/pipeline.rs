//! The router's source on the host behaves as in the kernel: the
//! datapath tests' basic cases through the host harness.
use std::net::IpAddr;

use vpc::packet::{parse_and_verify, Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_ebpf_host::{Deployment, Hook, Host, XDP_DROP, XDP_REDIRECT};

const ONE_SUBNET: &str = include_str!("../../../tests/fixtures/one_subnet.yaml");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_function_reaches_its_database_through_its_eni_at_both_hooks() {
    for hook in [Hook::Xdp, Hook::Tc] {
        let mut h = Host::new(1024);
        let d = Deployment::new(ONE_SUBNET);
        d.install(&mut h);
        let exec = IpAddr::V4(d.model.functions[0].exec_ip);
        let eni = IpAddr::V4(d.model.enis[0].ip);
        let syn = Frame::new(
            exec,
            ip("10.0.1.10"),
            L4::Tcp {
                sport: 40000,
                dport: 5432,
                flags: TCP_SYN,
            },
        )
        .build();
        let out = h.run(hook, d.ifindex("Fn"), &syn);
        assert_eq!(out.action, XDP_REDIRECT, "{hook:?}");
        assert_eq!(out.redirect, Some(d.ifindex("Db")));
        let sent = parse_and_verify(&out.frame).expect("checksums right after NAT");
        assert_eq!(sent.src, eni);
        // The reply finds the connection and goes back to the function.
        let back = Frame::new(
            ip("10.0.1.10"),
            eni,
            L4::Tcp {
                sport: 5432,
                dport: sent.sport,
                flags: TCP_SYN | TCP_ACK,
            },
        )
        .build();
        let out = h.run(hook, d.ifindex("Db"), &back);
        assert_eq!(out.redirect, Some(d.ifindex("Fn")), "{hook:?}");
        assert_eq!(parse_and_verify(&out.frame).unwrap().dst, exec);
        assert_eq!(h.forwarded(), 2);
        assert_eq!(h.conntrack_len(), 2);
        // The app server is not in the database's groups.
        let syn = Frame::new(
            ip("10.0.1.20"),
            ip("10.0.1.10"),
            L4::Tcp {
                sport: 40001,
                dport: 5432,
                flags: TCP_SYN,
            },
        )
        .build();
        let out = h.run(hook, d.ifindex("App"), &syn);
        assert_eq!(out.action, XDP_DROP);
        assert_eq!(h.stats()[DropReason::SgIngressDenied as usize], 1);
    }
}
