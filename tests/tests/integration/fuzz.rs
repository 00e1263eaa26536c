//! Random and mutated frames through the router in the kernel
//! (BPF_PROG_TEST_RUN), against several deployments' maps: valid flows
//! of each template (built with `vpc::packet`), the replies and ICMP
//! errors of what it forwarded, mutations of valid frames (bit flips,
//! bytes set, truncated, extended) and garbage, from a seeded generator
//! (`vpc_tests::frames`). Invariants, on every frame: the verdict is a
//! drop or a redirect; a drop is counted under exactly one reason in
//! `STATS` and a redirect as forwarded (the counters move by exactly one);
//! a forwarded frame keeps its length, goes to a port of the deployment,
//! and is one the reference semantics allow (`vpc_tests::oracle`: a new
//! connection `vpc explain`'s walk admits, a packet of one it admitted, an
//! ICMP error quoting one, or one judged as any ICMP packet); a frame the
//! independent parser rejects (garbage) is never forwarded; a new flow
//! the reference admits is forwarded, unless its interface is at its
//! conntrack allowance. Every other deployment runs with the allowance
//! `vpc up` gives it (a quarter of the table's connections per interface,
//! which no run reaches), the others (those opening fewer connections)
//! with a tight one (`TIGHT_ALLOWANCE`) that their busiest interfaces
//! reach, so that refusals and what follows them are fuzzed too; after each run every interface's allowance count
//! equals the connections it opened that are still in the table.
//!
//! `VPC_FUZZ_SEED=N` replays a run (the seed is printed on failure);
//! `VPC_FUZZ_FRAMES=N` sets how many frames (default 1,000,000).
use std::{collections::BTreeMap, io::Write as _, time::Instant};

use vpc::datapath::Maps;
use vpc_common::{map_names, CtEntry, CtKey, DropReason, CT_DIR_ORIG};
use vpc_tests::{
    fixture,
    frames::{templates, Gen, Kind, ATTACH},
    in_private_netns,
    oracle::Oracle,
    Harness, StatsReader, XDP_DROP, XDP_REDIRECT,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    frames: u64,
    forwarded: BTreeMap<Kind, u64>,
    sent: BTreeMap<Kind, u64>,
    dropped: BTreeMap<&'static str, u64>,
    admitted: [u64; 4],
    short: u64,
    /// Admitted new flows refused at their interface's conntrack allowance.
    refused: u64,
    /// Connections tracked at the end.
    connections: i64,
}

/// Connections per interface in the runs with a tight conntrack allowance.
const TIGHT_ALLOWANCE: u32 = 1_024;

fn run_template(name: &str, template: &str, frames: u64, seed: u64, allowance: u32) -> Tally {
    in_private_netns(|| {
        let mut h = Harness::new(template);
        h.activate();
        h.dp.set_conntrack_allowance(allowance).unwrap();
        let model = h.model.clone();
        let mut stats = StatsReader::new(&mut h);
        let ports: Vec<(u32, String)> = h
            .links
            .iter()
            .map(|(id, l)| (l.ifindex, id.clone()))
            .collect();
        let by_mac: BTreeMap<[u8; 6], u32> = h.links.values().map(|l| (l.mac, l.ifindex)).collect();
        let mut oracle = Oracle::new(&model, ports);
        let mut gen = Gen::new(&model, &h.links, seed);
        let mut t = Tally::default();
        let mut before = stats.read();
        let mut i = 0;
        while t.frames < frames {
            i += 1;
            let (kind, ingress, frame) = gen.next_frame();
            if frame.len() < 14 {
                // The kernel hands XDP no frame shorter than an Ethernet
                // header (BPF_PROG_TEST_RUN refuses one); the host fuzzer
                // takes those.
                t.short += 1;
                continue;
            }
            // A valid new flow the reference admits must get through.
            let must =
                kind == Kind::Valid && gen.admitted(ingress, &frame) && !oracle.knows(&frame);
            let (v, out) = h.run(ingress, &frame);
            let after = stats.read();
            let ctx = || {
                format!("{name}, seed {seed}, frame {i} ({kind:?}) on port {ingress}: {frame:02x?}")
            };
            let moved: Vec<(usize, u64)> = after
                .iter()
                .zip(&before)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| (i, a - b))
                .collect();
            before = after;
            *t.sent.entry(kind).or_default() += 1;
            if must && v != XDP_REDIRECT {
                // Refused all the same only for its interface's limits.
                let reason = DropReason::ALL
                    .iter()
                    .copied()
                    .find(|r| moved.len() == 1 && *r as usize == moved[0].0);
                let connections = h.dp.port_allowances(ingress).unwrap().connections;
                assert!(
                    reason.is_some_and(|r| oracle.may_refuse(r, &frame, connections, allowance as u64)),
                    "an admitted flow was dropped: {moved:?} ({connections} connections of {allowance}); {}",
                    ctx()
                );
                t.refused += 1;
            }
            match v {
                XDP_REDIRECT => {
                    assert_eq!(
                        moved,
                        [(0, 1)],
                        "a redirect counts as forwarded, once; {}",
                        ctx()
                    );
                    assert_eq!(out.len(), frame.len(), "length kept; {}", ctx());
                    let mac: [u8; 6] = out[..6].try_into().unwrap();
                    let egress = *by_mac
                        .get(&mac)
                        .unwrap_or_else(|| panic!("to no port's MAC {mac:02x?}; {}", ctx()));
                    if let Err(e) = oracle.forwarded(ingress, &frame, &out, egress) {
                        panic!("{e}; {}", ctx());
                    }
                    gen.forwarded(ingress, &frame, egress, &out);
                    *t.forwarded.entry(kind).or_default() += 1;
                }
                XDP_DROP => {
                    assert!(
                        moved.len() == 1 && moved[0].0 != 0 && moved[0].1 == 1,
                        "a drop counts under exactly one reason: {moved:?}; {}",
                        ctx()
                    );
                    let r = DropReason::ALL
                        .iter()
                        .find(|r| **r as usize == moved[0].0)
                        .unwrap_or_else(|| panic!("no reason {}; {}", moved[0].0, ctx()));
                    *t.dropped.entry(r.name()).or_default() += 1;
                }
                other => panic!("verdict {other}: neither a drop nor a redirect; {}", ctx()),
            }
            t.frames += 1;
        }
        t.admitted = oracle.admitted;
        // Each interface's conntrack allowance count is its connections
        // still tracked: every original entry added once, and taken back
        // once by whatever removed it (a reopened tuple, a failed insert).
        let mut live: BTreeMap<u32, i64> = BTreeMap::new();
        {
            let ct: aya::maps::HashMap<_, CtKey, CtEntry> =
                aya::maps::HashMap::try_from(h.dp.map(map_names::CT).unwrap()).unwrap();
            for (_, e) in ct.iter().map(|r| r.unwrap()) {
                if e.dir == CT_DIR_ORIG {
                    *live.entry(e.in_ifindex).or_default() += 1;
                }
            }
        }
        let ports: Vec<u32> = h.links.values().map(|l| l.ifindex).collect();
        assert!(
            live.keys().all(|i| ports.contains(i)),
            "{name}: connections of unknown ports: {live:?}"
        );
        let counted: BTreeMap<u32, i64> = ports
            .iter()
            .map(|i| (*i, h.dp.port_allowances(*i).unwrap().connections))
            .filter(|(_, n)| *n != 0)
            .collect();
        assert_eq!(
            counted, live,
            "{name}, seed {seed}: PORT_CONNECTIONS (left) against the original entries by port (right)"
        );
        t.connections = live.values().sum();
        t
    })
}

#[test]
fn random_and_mutated_frames_are_never_forwarded_unless_the_reference_allows() {
    let seed = env_u64("VPC_FUZZ_SEED", 0xf0f0_5eed);
    let total = env_u64("VPC_FUZZ_FRAMES", 1_000_000);
    let templates = templates();
    let per = total.div_ceil(templates.len() as u64);
    let start = Instant::now();
    let mut all = Tally::default();
    for (i, (name, t)) in templates.iter().enumerate() {
        let s = Instant::now();
        // Tight on the deployments with fewer connections: the NAT-heavy
        // ones keep every new connection they open.
        let allowance = if i % 2 == 1 {
            TIGHT_ALLOWANCE
        } else {
            vpc::deploy::default_conntrack_allowance(vpc_common::CT_MAX_ENTRIES)
        };
        let seed_i = seed.wrapping_add(i as u64 * 0x9e37_79b9);
        let tally = run_template(name, t, per, seed_i, allowance);
        let fwd: u64 = tally.forwarded.values().sum();
        let _ = writeln!(
            std::io::stderr(),
            "fuzz {name}: {} frames in {:.1} s, {fwd} forwarded {:?} of {:?}; admitted as new {}, tracked {}, ICMP errors related {} and judged as ICMP {}; {} connections tracked at the end, {} admitted flows refused at an allowance of {allowance}",
            tally.frames,
            s.elapsed().as_secs_f64(),
            tally.forwarded,
            tally.sent,
            tally.admitted[0],
            tally.admitted[1],
            tally.admitted[2],
            tally.admitted[3],
            tally.connections,
            tally.refused,
        );
        // The generator must reach every path: new connections, their
        // packets, related errors, and the drops.
        assert!(
            tally.admitted[0] > 100,
            "{name}: too few new connections: {:?}",
            tally.admitted
        );
        assert!(
            tally.admitted[1] > 100,
            "{name}: too few tracked packets: {:?}",
            tally.admitted
        );
        all.frames += tally.frames;
        for (k, n) in tally.forwarded {
            *all.forwarded.entry(k).or_default() += n;
        }
        for (k, n) in tally.sent {
            *all.sent.entry(k).or_default() += n;
        }
        for (k, n) in tally.dropped {
            *all.dropped.entry(k).or_default() += n;
        }
        all.refused += tally.refused;
        for j in 0..4 {
            all.admitted[j] += tally.admitted[j];
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: {} frames through BPF_PROG_TEST_RUN in {secs:.1} s ({:.0} frames/s, seed {seed:#x}); forwarded {:?}; dropped {:?}",
        all.frames,
        all.frames as f64 / secs,
        all.forwarded,
        all.dropped,
    );
    assert!(all.frames >= total);
    assert!(
        all.admitted[2] > 0,
        "no related ICMP error was ever forwarded"
    );
    assert!(
        all.dropped.get("vlan_tagged").is_some_and(|n| *n > 0),
        "no VLAN-tagged frame was ever dropped as such"
    );
    assert!(
        all.refused > 0,
        "no interface ever reached its conntrack allowance"
    );
    assert!(
        all.admitted[3] > 0,
        "no ICMP error related to nothing was ever judged as ICMP and forwarded"
    );
    // Mutated frames do get through (a flipped payload bit of a tracked
    // flow is still its packet), so the oracle is exercised on them too.
    assert!(all.forwarded.get(&Kind::Mutated).copied().unwrap_or(0) > 0);
}

/// Found by the run above: a host with a public address sending GRE (or
/// any protocol without ports) to the internet was dropped as
/// `function_protocol`; an internet gateway's 1:1 NAT translates every
/// IPv4 protocol, and the reference (and AWS) let it through.
#[test]
fn other_protocols_leave_through_the_internet_gateway_translated() {
    use vpc::packet::{checksum, Frame, L4};
    let t = fixture!("internet_gateway.yaml").replace("ATTACH", ATTACH);
    in_private_netns(|| {
        let mut h = Harness::new(&t);
        let public = h.model.public_ip("Web").expect("a public address");
        for proto in [47u8, 50, 132] {
            let f = Frame::new(
                "10.0.1.10".parse().unwrap(),
                "203.0.113.10".parse().unwrap(),
                L4::Other { proto },
            )
            .build();
            let (v, out) = h.run(h.ifindex("Web"), &f);
            assert_eq!(v, XDP_REDIRECT, "protocol {proto}");
            assert_eq!(out[26..30], public.octets(), "source translated");
            assert_eq!(
                checksum(&[&out[14..34]]),
                0,
                "IPv4 header checksum kept right"
            );
        }
    });
}

/// Found by the parser's fuzzer (`cargo xtask fuzz`): an IPv6 packet with
/// four extension headers (the most the datapath walks, as documented)
/// was dropped as `ipv6_ext_header`; a fifth still is.
#[test]
fn four_ipv6_extension_headers_are_walked_and_a_fifth_is_refused() {
    use vpc::packet::{Frame, L4, TCP_SYN};
    // Web (public subnet) to Db (private), TCP 22, which the group admits.
    let with_headers = |n: usize, sport: u16| {
        let mut f = Frame::new(
            "2001:db8:ec2:101::10".parse().unwrap(),
            "2001:db8:ec2:102::10".parse().unwrap(),
            L4::Tcp {
                sport,
                dport: 22,
                flags: TCP_SYN,
            },
        )
        .build();
        let upper = f[20];
        // Destination-options headers of 8 bytes (a PadN option), chained.
        let mut ext = vec![];
        for i in 0..n {
            let next = if i + 1 == n { upper } else { 60 };
            ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        f[20] = if n == 0 { upper } else { 60 };
        let len = u16::from_be_bytes([f[18], f[19]]) as usize + ext.len();
        f[18..20].copy_from_slice(&(len as u16).to_be_bytes());
        f.splice(54..54, ext);
        f
    };
    in_private_netns(|| {
        let mut h = Harness::new(fixture!("ipv6_gateways.yaml"));
        let web = h.ifindex("Web");
        for n in 1..=4 {
            let (v, _) = h.run(web, &with_headers(n, 40000 + n as u16));
            assert_eq!(v, XDP_REDIRECT, "{n} extension headers");
        }
        let before = h.counters().dropped(DropReason::Ipv6ExtHeader);
        assert_eq!(h.run(web, &with_headers(5, 40010)).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::Ipv6ExtHeader), before + 1);
    });
}
