//! Route tables in the datapath, through BPF_PROG_TEST_RUN: the table of
//! the subnet a packet leaves decides, by longest prefix, before any group
//! or NAT port is looked at. This module holds the frames and the
//! templates the concepts' modules share.
mod endpoint_routes;
mod established;
mod internet_gateway;
mod ipv6;
mod nat_gateway;
mod nat_ports;
mod tables;

use std::net::IpAddr;

use vpc::packet::{parse_and_verify, Frame, L4, TCP_SYN};
use vpc_tests::{fixture, Harness, XDP_REDIRECT};

/// A public subnet (0.0.0.0/0 to an attached internet gateway, a
/// prefix-list route and a static route to a detached one) and a private
/// subnet on the main table; a host and a function in each, the hosts with
/// Elastic IPs, a public-subnet host without one; one internet test host.
const TEMPLATE: &str = fixture!("route_tables.yaml");

fn syn(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Frame::new(
        s,
        d,
        L4::Tcp {
            sport,
            dport: 443,
            flags: TCP_SYN,
        },
    )
    .build()
}

/// The function's execution environment address (first function: .10).
fn env_addr(h: &Harness, id: &str) -> String {
    let f = h.model.functions.iter().find(|f| f.id == id).unwrap();
    f.envs()[0].ip.to_string()
}

fn frame(src: &str, dst: &str, l4: L4) -> Vec<u8> {
    Frame::new(src.parse().unwrap(), dst.parse().unwrap(), l4).build()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    frame(
        src,
        dst,
        L4::Tcp {
            sport,
            dport,
            flags,
        },
    )
}

/// (source, destination, source port, destination port) of a forwarded
/// frame, every checksum verified.
fn seen(out: &[u8]) -> (String, String, u16, u16) {
    let p = parse_and_verify(out).unwrap();
    (p.src.to_string(), p.dst.to_string(), p.sport, p.dport)
}

/// AWS's classic layout, cut to one AZ: a public subnet with the NAT
/// gateway (0.0.0.0/0 to the internet gateway), a private subnet whose
/// table sends 0.0.0.0/0 to the NAT gateway, a host and a function there;
/// two internet hosts.
const CLASSIC: &str = fixture!("nat_gateway.yaml");

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    frame(
        src,
        dst,
        L4::Udp {
            sport,
            dport,
            no_checksum: false,
        },
    )
}

/// A forwarded frame, unchanged but for its MACs (no NAT for IPv6).
fn unchanged(v: u32, sent: &[u8], out: &[u8]) {
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(&out[12..], &sent[12..], "only the MACs change");
    parse_and_verify(out).unwrap();
}
