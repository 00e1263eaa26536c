//! The router program through BPF_PROG_TEST_RUN: crafted frames in, verdict,
//! rewritten bytes and drop counters out. Runs as root against the real
//! kernel verifier and maps; each test in its own private netns. This
//! module holds the frames and the template the concepts' modules share,
//! and the verifier's budget for the whole router.
mod allowances;
mod closing;
mod conntrack_nat;
mod icmp_errors;
mod network_acls;
mod overlay;
mod packets;
mod security_groups;

use std::net::IpAddr;

use vpc::datapath::Maps;
use vpc::packet::{parse_icmp_error, quote, Frame, L4};
use vpc_common::{
    map_names, v4_mapped, DropReason, Endpoint, HyperplaneEni, PortInfo, RouteKey, RouteTarget,
    ROUTE_FIXED_BITS,
};
use vpc_tests::{fixture, in_private_netns, Harness, XDP_REDIRECT};

/// One subnet: a function, its ENI, a database (5432/tcp and 9000/udp from
/// the function's group), an app host (nothing allowed in), and an IPv6 rule.
const TEMPLATE: &str = fixture!("one_subnet.yaml");

const EXEC: &str = "198.19.0.10";
const ENI: &str = "10.0.1.4";
const DB: &str = "10.0.1.10";
const APP: &str = "10.0.1.20";
const DB6: &str = "fd00:10::10";
const APP6: &str = "fd00:10::20";
const EXEC6: &str = "fd00:1a::10";
const ENI6: &str = "fd00:10::4";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Frame::new(
        ip(src),
        ip(dst),
        L4::Tcp {
            sport,
            dport,
            flags,
        },
    )
    .payload(b"data")
    .build()
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16, no_checksum: bool) -> Vec<u8> {
    Frame::new(
        ip(src),
        ip(dst),
        L4::Udp {
            sport,
            dport,
            no_checksum,
        },
    )
    .payload(b"query")
    .build()
}

/// An ICMP echo request (`ty` 8, or 128 for ICMPv6), identifier 1.
fn echo_request(src: &str, dst: &str, ty: u8) -> Vec<u8> {
    echo(src, dst, ty, 1)
}

/// An ICMP echo message of type `ty` with identifier `id`.
fn echo(src: &str, dst: &str, ty: u8, id: u16) -> Vec<u8> {
    let l4 = L4::Icmp {
        ty,
        code: 0,
        id,
        seq: 1,
    };
    Frame::new(ip(src), ip(dst), l4).build()
}

fn check(h: &mut Harness, reason: DropReason, n: u64) {
    assert_eq!(
        h.counters().dropped(reason),
        n,
        "{} counter; all: {:?}",
        reason.name(),
        h.counters()
    );
}

/// Gives the hosts, the execution environment and the ENI IPv6 addresses
/// (the topology is IPv4 in this slice; the datapath is dual-stack).
fn add_ipv6(h: &mut Harness) {
    use aya::maps::HashMap as M;
    let policy_of = |id: &str| {
        h.entries
            .ports
            .iter()
            .find(|(i, _)| *i == h.links[id].ifindex)
            .unwrap()
            .1
    };
    let (db, app, func) = (policy_of("Db"), policy_of("App"), policy_of("Fn"));
    let mut updates = vec![];
    for (id, mut port, v6) in [("Db", db, DB6), ("App", app, APP6), ("Fn", func, EXEC6)] {
        let IpAddr::V6(a) = ip(v6) else {
            unreachable!()
        };
        port.has_v6 = 1;
        port.addr6 = a.octets();
        let l = h.links[id];
        let ep = Endpoint {
            ifindex: l.ifindex,
            policy: port.policy,
            vpc: port.vpc,
            subnet: port.subnet,
            kind: port.kind,
            mac: l.mac,
            router_mac: l.router_mac,
            ..Default::default()
        };
        updates.push((l.ifindex, port, a.octets(), ep));
    }
    {
        let mut ports: M<_, u32, PortInfo> =
            M::try_from(h.dp.map(map_names::PORTS).unwrap()).unwrap();
        for (i, p, _, _) in &updates {
            ports.insert(i, p, 0).unwrap();
        }
    }
    let mut eps: M<_, vpc_common::AddrKey, Endpoint> =
        M::try_from(h.dp.map(map_names::ENDPOINTS).unwrap()).unwrap();
    for (_, _, a, ep) in &updates {
        eps.insert(vpc_common::AddrKey::of(ep.vpc, *a), ep, 0)
            .unwrap();
    }
    let IpAddr::V6(eni6) = ip(ENI6) else {
        unreachable!()
    };
    let (_, eni) = h.entries.enis[0];
    let eni_ep = h
        .entries
        .endpoints
        .iter()
        .find(|(a, _)| a.addr == v4_mapped([10, 0, 1, 4]))
        .unwrap()
        .1;
    eps.insert(
        vpc_common::AddrKey::of(eni_ep.vpc, eni6.octets()),
        eni_ep,
        0,
    )
    .unwrap();
    let mut enis: M<_, u32, HyperplaneEni> =
        M::try_from(h.dp.map(map_names::ENIS).unwrap()).unwrap();
    enis.insert(
        h.entries.enis[0].0,
        HyperplaneEni {
            addr6: eni6.octets(),
            has_v6: 1,
            ..eni
        },
        0,
    )
    .unwrap();
    // And the `local` route of that IPv6 block (fd00::/8) in every table.
    let mut routes: aya::maps::LpmTrie<_, RouteKey, RouteTarget> =
        aya::maps::LpmTrie::try_from(h.dp.map(map_names::ROUTES).unwrap()).unwrap();
    for table in h.entries.route_tables.values() {
        let key = RouteKey {
            table_family: vpc::compile::route::table_family(*table, true),
            addr: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let local = RouteTarget {
            kind: vpc_common::route_kind::LOCAL,
            ..Default::default()
        };
        routes
            .insert(
                &aya::maps::lpm_trie::Key::new(ROUTE_FIXED_BITS + 8, key),
                local,
                0,
            )
            .unwrap();
    }
}

/// An ICMP error from `src` to `dst` quoting `len` bytes of `quoted`'s IP
/// packet, with the MACs of `link` when given (what the router delivers).
fn icmp_error(
    src: &str,
    dst: &str,
    (ty, code, info): (u8, u8, u32),
    quoted: &[u8],
    len: usize,
    link: Option<&vpc::compile::LinkInfo>,
) -> Vec<u8> {
    let mut f = Frame::new(
        ip(src),
        ip(dst),
        L4::IcmpError {
            ty,
            code,
            info,
            quote: quote(quoted, len),
        },
    );
    if let Some(l) = link {
        f.dst_mac = l.mac;
        f.src_mac = l.router_mac;
    }
    f.build()
}

/// IPv4 fragmentation needed (next-hop MTU 1200), IPv6 packet too big.
const FRAG_NEEDED: (u8, u8, u32) = (3, 4, 1200);
const TIME_EXCEEDED: (u8, u8, u32) = (11, 0, 0);
const PORT_UNREACHABLE: (u8, u8, u32) = (3, 3, 0);
const PACKET_TOO_BIG: (u8, u8, u32) = (2, 0, 1280);
const PORT_UNREACHABLE6: (u8, u8, u32) = (1, 4, 0);

const TIME_EXCEEDED6: (u8, u8, u32) = (3, 0, 0);

/// Sends `err` from the database and checks that the router delivers
/// exactly `want` (every checksum recomputed from scratch by the builder,
/// so equal bytes mean every incrementally fixed checksum is right).
fn expect_translated(h: &mut Harness, from: u32, err: &[u8], want: &[u8]) {
    let (v, out) = h.run(from, err);
    assert_eq!(v, XDP_REDIRECT, "counters: {:?}", h.counters());
    parse_icmp_error(&out).expect("every checksum valid");
    assert_eq!(out, want, "translated ICMP error, byte for byte");
}

/// The kernel verifies at most 1,000,000 instructions per program. Every
/// program we load (the bench harness inlines the whole router) must keep a
/// fifth of that free, so the next feature finds out here, not in CI's
/// load of the agent.
#[test]
fn every_program_verifies_with_a_fifth_of_the_kernel_budget_left() {
    use aya::programs::SchedClassifier;
    use vpc::datapath::{
        Datapath, BENCH_REDIRECT_PROGRAM, BENCH_REDIRECT_TC_PROGRAM, BENCH_ROUTER_PROGRAM,
        BENCH_ROUTER_TC_PROGRAM, BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM, BENCH_STAGE_PROGRAMS,
        ROUTER_PROGRAM, ROUTER_TC_PROGRAM,
    };
    const BUDGET: u32 = 800_000;
    in_private_netns(|| {
        let mut dp = Datapath::load(&Default::default()).unwrap();
        let mut counts = Vec::new();
        let programs = [
            ROUTER_PROGRAM,
            BENCH_ROUTER_PROGRAM,
            BENCH_REDIRECT_PROGRAM,
            BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM,
        ];
        for name in programs.into_iter().chain(BENCH_STAGE_PROGRAMS) {
            let p = dp.load_program(name).unwrap();
            counts.push((name, p.info().unwrap().verified_instruction_count()));
        }
        let tc: &mut SchedClassifier = dp
            .ebpf
            .program_mut(ROUTER_TC_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        counts.push((
            ROUTER_TC_PROGRAM,
            tc.info().unwrap().verified_instruction_count(),
        ));
        for name in [BENCH_ROUTER_TC_PROGRAM, BENCH_REDIRECT_TC_PROGRAM] {
            let p = dp.load_tc_program(name).unwrap();
            counts.push((name, p.info().unwrap().verified_instruction_count()));
        }
        eprintln!("verified instructions: {counts:?}");
        for (name, n) in counts {
            let n = n.expect("the kernel reports verified instructions since 5.16");
            assert!(
                n < BUDGET,
                "{name}: {n} verified instructions, budget {BUDGET}"
            );
        }
    });
}
