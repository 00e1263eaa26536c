//! Every map at its limit, through BPF_PROG_TEST_RUN (small sizes where
//! the datapath takes them): a full table refuses new work with its
//! counted reason, and what is established goes on. Conntrack, a function's
//! NAT ports (and the ENI the agent adds), the flow-log rejects table, the
//! fragment tables; and the router's port and endpoint tables, which a
//! deployment may not outgrow (`vpc up` refuses it, naming the quota).
//!
//! The tables' own limits, so without a conntrack allowance (as `vpc up
//! --conntrack-allowance 0`): with `vpc up`'s default, a quarter of the
//! table's connections per interface, no one interface can fill the table
//! (`datapath::allowances` and `e2e::allowances` test that).
use std::net::IpAddr;

use vpc::{
    compile,
    datapath::Maps,
    packet::{parse_and_verify, Frame, L4, TCP_ACK, TCP_SYN},
};
use vpc_common::{cfg, map_names, DropReason, FL_MAX_REJECTS, MAX_FRAGS, MAX_PORTS};
use vpc_tests::{
    fixture, in_private_netns, namespaces_with_prefix, text, unique_name, vpc, Harness, XDP_DROP,
    XDP_REDIRECT,
};

const ONE_SUBNET: &str = fixture!("one_subnet.yaml");
const EXEC: &str = "198.19.0.10";
const DB: &str = "10.0.1.10";
const APP: &str = "10.0.1.20";

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
    .build()
}

fn dropped(h: &mut Harness, r: DropReason) -> u64 {
    h.counters().dropped(r)
}

/// Eight entries: four connections of the function (two entries and a
/// NAT port claim each). The fifth is `ct_full` (the claims' table, half
/// the size, fills with it: that is the same limit, not a lack of ports),
/// and the four go on both ways.
#[test]
fn a_full_conntrack_table_refuses_a_functions_new_connection_as_ct_full() {
    in_private_netns(|| {
        let mut h = Harness::with_conntrack(ONE_SUBNET, 8);
        h.activate();
        // The table's limit, not the interface's.
        h.dp.set_conntrack_allowance(0).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let mut ports = vec![];
        for i in 0..4 {
            let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000 + i, 5432, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "connection {i}");
            ports.push(parse_and_verify(&out).unwrap().sport);
        }
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40009, 5432, TCP_SYN)).0,
            XDP_DROP
        );
        assert_eq!(dropped(&mut h, DropReason::CtFull), 1);
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 0);
        assert_eq!(dropped(&mut h, DropReason::ConntrackAllowanceExceeded), 0);
        assert_eq!(
            h.dp.nat_stats().unwrap().failed,
            0,
            "no port allocation failed"
        );
        let eni = h.model.enis[0].ip.to_string();
        for (i, port) in ports.iter().enumerate() {
            let back = tcp(DB, &eni, 5432, *port, TCP_SYN | TCP_ACK);
            assert_eq!(h.run(db_if, &back).0, XDP_REDIRECT, "reply {i}");
            let more = tcp(EXEC, DB, 40000 + i as u16, 5432, TCP_ACK);
            assert_eq!(h.run(fn_if, &more).0, XDP_REDIRECT, "more of {i}");
        }
        assert_eq!(dropped(&mut h, DropReason::CtFull), 1);
    });
}

/// An ENI of one NAT port: the second connection finds none
/// (`nat_port_exhausted`, counted in `NAT_STATS`), the first goes on. Then
/// what the agent does at 80% (e2e::eni_scaling tests it end to end): a
/// second ENI of the same (subnet, groups), its entries written, the policy
/// switched (the database's rule names the Lambda group, which now has the
/// new address) and the group extended; the refused connection, tried
/// again, leaves from the new ENI, and the first never stops.
#[test]
fn an_eni_out_of_nat_ports_refuses_new_connections_and_the_next_eni_takes_them() {
    in_private_netns(|| {
        let mut h = Harness::new(ONE_SUBNET);
        h.activate();
        h.dp.set_eni_capacity(1).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let first_eni = h.model.enis[0].clone();
        let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let p1 = parse_and_verify(&out).unwrap();
        assert_eq!(p1.sport, 1024, "the ENI's one port");
        let second = tcp(EXEC, DB, 40001, 5432, TCP_SYN);
        assert_eq!(h.run(fn_if, &second).0, XDP_DROP);
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 1);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 1);
        let established = |h: &mut Harness| {
            let back = tcp(DB, &first_eni.ip.to_string(), 5432, 1024, TCP_ACK);
            h.run(db_if, &back).0 == XDP_REDIRECT
                && h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_ACK)).0 == XDP_REDIRECT
        };
        assert!(established(&mut h));
        // The scale-out, as the agent writes it.
        let mut m = h.model.clone();
        let mut eni = first_eni.clone();
        eni.index = m.enis.iter().map(|e| e.index).max().unwrap() + 1;
        eni.id = format!("{}-2", eni.id);
        eni.ip = "10.0.1.5".parse().unwrap();
        eni.ip6 = None;
        eni.scaled = true;
        m.enis.push(eni.clone());
        let gen = h.dp.generation().unwrap() ^ 1;
        let e = compile::compile(&m, &h.links, gen).unwrap();
        let addr = vpc_common::v4_mapped(eni.ip.octets());
        {
            use aya::maps::HashMap as M;
            let mut eps: M<_, vpc_common::AddrKey, vpc_common::Endpoint> =
                M::try_from(h.dp.map(map_names::ENDPOINTS).unwrap()).unwrap();
            let (k, ep) = e.endpoints.iter().find(|(k, _)| k.addr == addr).unwrap();
            eps.insert(k, ep, 0).unwrap();
            let mut enis: M<_, u32, vpc_common::HyperplaneEni> =
                M::try_from(h.dp.map(map_names::ENIS).unwrap()).unwrap();
            for (k, v) in e.enis.iter().filter(|(k, _)| *k == eni.index) {
                enis.insert(k, v, 0).unwrap();
            }
        }
        h.dp.switch_policy(&e).unwrap();
        for (id, g) in &e.eni_groups {
            h.dp.set_eni_group(*id, g).unwrap();
        }
        let (v, out) = h.run(fn_if, &second);
        assert_eq!(v, XDP_REDIRECT, "the refused connection, again");
        assert_eq!(parse_and_verify(&out).unwrap().src, IpAddr::V4(eni.ip));
        assert!(established(&mut h), "the first connection never stopped");
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 1);
    });
}

/// An ENI filled to exactly its capacity (the default, 64,512 ports per
/// protocol): every port but three claimed through the map (as the
/// datapath's claims are), then three real connections of the function
/// find exactly those three, wherever they are (the first and last port of
/// the range among them), and the next one is refused as
/// `nat_port_exhausted`, counted once as a failed allocation.
#[test]
fn an_eni_fills_to_exactly_its_capacity_and_the_next_connection_is_refused() {
    use aya::maps::HashMap as M;
    use vpc_common::{CtKey, NatPortKey, DEFAULT_ENI_CAPACITY as CAP, NAT_PORT_MIN};
    in_private_netns(|| {
        let mut h = Harness::new(ONE_SUBNET);
        h.activate();
        h.dp.set_conntrack_allowance(0).unwrap();
        let fn_if = h.ifindex("Fn");
        let pool = h.entries.enis[0].1.pool;
        let free = [NAT_PORT_MIN, 40_000, 65_535];
        {
            let mut m: M<_, NatPortKey, CtKey> =
                M::try_from(h.dp.map(map_names::NAT_PORTS).unwrap()).unwrap();
            for port in (NAT_PORT_MIN..=65_535).filter(|p| !free.contains(p)) {
                let k = NatPortKey {
                    eni: pool,
                    port: port.to_be(),
                    proto: 6,
                    ..Default::default()
                };
                m.insert(k, CtKey::default(), 0).unwrap();
            }
        }
        let mut got = vec![];
        for i in 0..3 {
            let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000 + i, 5432, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "connection {i}: {:?}", h.counters());
            got.push(parse_and_verify(&out).unwrap().sport);
        }
        got.sort();
        assert_eq!(got, free, "the last free ports, found");
        assert_eq!(h.dp.nat_stats().unwrap().failed, 0);
        assert_eq!(
            h.dp.nat_claims().unwrap().get(&(pool, 6)).copied(),
            Some(CAP as usize)
        );
        // Full: the next one is refused, and counted.
        let (v, _) = h.run(fn_if, &tcp(EXEC, DB, 40009, 5432, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 1);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 1);
        // UDP has ports of its own.
        let dgram = Frame::new(
            ip(EXEC),
            ip(DB),
            L4::Udp {
                sport: 5000,
                dport: 9000,
                no_checksum: false,
            },
        )
        .build();
        assert_eq!(h.run(fn_if, &dgram).0, XDP_REDIRECT);
    });
}

/// Across hosts, a host allocates NAT ports only from the port slices it
/// leases (`PORT_SLICES`): with slices 5 and 9 and a capacity of two
/// slices, every port of a function's connections lies in those two
/// slices, the ENI fills to exactly 8,064 (both slices whole, each port
/// once), and the next connection is refused as `nat_port_exhausted`.
#[test]
fn an_enis_nat_ports_come_only_from_the_hosts_port_slices_and_fill_them_exactly() {
    use vpc_common::{NAT_PORT_MIN, NAT_SLICE_PORTS};
    in_private_netns(|| {
        let mut h = Harness::new(ONE_SUBNET);
        h.activate();
        h.dp.set_conntrack_allowance(0).unwrap();
        h.dp.set_port_slices(&[5, 9]).unwrap();
        h.dp.set_eni_capacity(2 * NAT_SLICE_PORTS).unwrap();
        let fn_if = h.ifindex("Fn");
        let slice = |n: u32| {
            let first = NAT_PORT_MIN as u32 + n * NAT_SLICE_PORTS;
            first..first + NAT_SLICE_PORTS
        };
        let mut got = std::collections::BTreeSet::new();
        for i in 0..2 * NAT_SLICE_PORTS {
            let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 10_000 + i as u16, 5432, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "connection {i}: {:?}", h.counters());
            let port = parse_and_verify(&out).unwrap().sport as u32;
            assert!(
                slice(5).contains(&port) || slice(9).contains(&port),
                "connection {i}: port {port} outside slices 5 and 9"
            );
            assert!(got.insert(port), "port {port} twice");
        }
        assert_eq!(got.len() as u32, 2 * NAT_SLICE_PORTS);
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 0);
        let (v, _) = h.run(fn_if, &tcp(EXEC, DB, 30_000, 5432, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(dropped(&mut h, DropReason::NatPortExhausted), 1);
    });
}

/// The flow-log rejects table is an LRU of `FL_MAX_REJECTS` keys: more
/// refused flows in one window than it holds are still each dropped and
/// counted under their reason; the table stays at its size (the oldest
/// keys go, which the agent reports as SKIPDATA: flow_logs::ring_buffer);
/// every new key is an event or a lost event; a connection established
/// before the flood goes on.
#[test]
fn a_full_flow_log_rejects_table_keeps_every_drop_counted_and_connections_going() {
    in_private_netns(|| {
        let mut h = Harness::new(ONE_SUBNET);
        h.activate();
        let (fn_if, db_if, app_if) = (h.ifindex("Fn"), h.ifindex("Db"), h.ifindex("App"));
        {
            use aya::maps::Array;
            let mut c: Array<_, u64> =
                Array::try_from(h.dp.map(map_names::CONFIG).unwrap()).unwrap();
            c.set(cfg::FLOW_WINDOW, 1, 0).unwrap();
        }
        let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let nat = parse_and_verify(&out).unwrap().sport;
        let eni = h.model.enis[0].ip.to_string();
        // The app server may not reach the database: each source port a
        // flow of its own.
        let n = FL_MAX_REJECTS as usize + 2_000;
        for i in 0..n {
            let sport = 1024 + (i % 60_000) as u16;
            let dport = 1 + (i / 60_000) as u16;
            let (v, _) = h.run(app_if, &tcp(APP, DB, sport, dport, TCP_SYN));
            assert_eq!(v, XDP_DROP);
        }
        assert_eq!(dropped(&mut h, DropReason::SgIngressDenied), n as u64);
        let keys = {
            use aya::maps::HashMap as M;
            let m: M<_, vpc_common::FlowRejectKey, vpc_common::FlowWindow> =
                M::try_from(h.dp.map(map_names::FL_REJECTS).unwrap()).unwrap();
            m.keys().count()
        };
        assert!(
            keys <= FL_MAX_REJECTS as usize && keys > FL_MAX_REJECTS as usize / 2,
            "{keys} keys"
        );
        let stats = {
            use aya::maps::PerCpuArray;
            let a: PerCpuArray<_, u64> =
                PerCpuArray::try_from(h.dp.map(map_names::FL_STATS).unwrap()).unwrap();
            let sum = |i: u32| -> u64 { a.get(&i, 0).unwrap().iter().sum() };
            (
                sum(vpc_common::FL_STAT_EVENTS),
                sum(vpc_common::FL_STAT_LOST),
                sum(vpc_common::FL_STAT_REJECT_MAP_FULL),
            )
        };
        assert_eq!(
            stats.0 + stats.1 + stats.2,
            n as u64,
            "events, lost, refused: {stats:?}"
        );
        let back = tcp(DB, &eni, 5432, nat, TCP_SYN | TCP_ACK);
        assert_eq!(
            h.run(db_if, &back).0,
            XDP_REDIRECT,
            "the connection goes on"
        );
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_ACK)).0,
            XDP_REDIRECT
        );
    });
}

/// The fragment tables (`FRAGS`, `FRAG_IDS`) are LRUs of `MAX_FRAGS`
/// datagrams: with more datagrams in flight than that, every first
/// fragment still goes, the later fragments of datagrams pushed out are
/// dropped as `fragment` (counted; never given to another datagram), the
/// most recent ones pass, no more than the tables hold, and the
/// connection's whole datagrams go on.
#[test]
fn full_fragment_tables_drop_only_the_oldest_datagrams_later_fragments() {
    use vpc::packet::fragment;
    in_private_netns(|| {
        let mut h = Harness::new(fixture!("nat_gateway.yaml"));
        let (app, inet) = (h.ifindex("App"), h.ifindex("Example"));
        let udp = |payload: usize| {
            let data = vec![7u8; payload];
            Frame::new(
                ip("10.0.2.10"),
                ip("203.0.113.10"),
                L4::Udp {
                    sport: 5000,
                    dport: 53,
                    no_checksum: false,
                },
            )
            .payload(&data)
            .build()
        };
        let (v, out) = h.run(app, &udp(10));
        assert_eq!(v, XDP_REDIRECT, "the connection, by a whole datagram");
        let nat_port = parse_and_verify(&out).unwrap().sport;
        let n = MAX_FRAGS as usize + 500;
        let mut lasts = vec![];
        for id in 0..n {
            let [first, last] = fragment(&udp(64), 48, id as u16 + 1);
            assert_eq!(h.run(app, &first).0, XDP_REDIRECT, "first fragment {id}");
            lasts.push(last);
        }
        let before = dropped(&mut h, DropReason::Fragment);
        let passed: Vec<bool> = lasts
            .iter()
            .map(|l| h.run(app, l).0 == XDP_REDIRECT)
            .collect();
        let ok = passed.iter().filter(|p| **p).count();
        assert!(ok <= MAX_FRAGS as usize, "{ok} datagrams held");
        assert!(
            passed[n - 1],
            "the most recent datagram's later fragment passes"
        );
        assert_eq!(
            dropped(&mut h, DropReason::Fragment) - before,
            (n - ok) as u64
        );
        assert!(n - ok >= 500, "{} dropped", n - ok);
        // Whole datagrams of the connection, both ways.
        assert_eq!(h.run(app, &udp(10)).0, XDP_REDIRECT);
        let nat_ip = h.model.nat_gateways[0].public_ip.to_string();
        let back = Frame::new(
            ip("203.0.113.10"),
            ip(&nat_ip),
            L4::Udp {
                sport: 53,
                dport: nat_port,
                no_checksum: false,
            },
        )
        .build();
        assert_eq!(h.run(inet, &back).0, XDP_REDIRECT);
    });
}

/// A template needing more router ports than the router's table holds
/// (`MAX_PORTS`: one per instance, interface, execution environment,
/// resolver, service) is refused by `vpc up` before anything is built,
/// with an error naming the table and its size.
#[test]
fn vpc_up_refuses_a_deployment_past_the_routers_port_table_and_builds_nothing() {
    let mut t = String::from(
        "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/18}}\n",
    );
    for i in 0..MAX_PORTS {
        t.push_str(&format!(
            "  H{i}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref S}}}}\n"
        ));
    }
    let name = unique_name("quota");
    let path = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&path, &t).unwrap();
    let out = vpc(&name, &["up", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    let said = text(&out);
    let _ = vpc(&name, &["down"]);
    assert!(!out.status.success());
    assert!(
        said.contains("4097 router ports") && said.contains("PORTS table holds at most 4096"),
        "{said}"
    );
    assert!(namespaces_with_prefix(&name).is_empty());
}
