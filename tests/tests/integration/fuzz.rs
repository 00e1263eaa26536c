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
//! connection `vpc explain`'s walk admits, a packet of one it admitted and
//! no RST ended, an ICMP error quoting one, or one judged as any ICMP
//! packet); a frame the independent parser rejects (garbage) is never
//! forwarded.
//!
//! `VPC_FUZZ_SEED=N` replays a run (the seed is printed on failure);
//! `VPC_FUZZ_FRAMES=N` sets how many frames (default 1,000,000).
use std::{collections::BTreeMap, io::Write as _, time::Instant};

use vpc_common::DropReason;
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
}

fn run_template(name: &str, template: &str, frames: u64, seed: u64) -> Tally {
    in_private_netns(|| {
        let mut h = Harness::new(template);
        h.activate();
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
            assert!(
                !must || v == XDP_REDIRECT,
                "an admitted flow was dropped: {moved:?}; {}",
                ctx()
            );
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
        let tally = run_template(name, t, per, seed.wrapping_add(i as u64 * 0x9e37_79b9));
        let fwd: u64 = tally.forwarded.values().sum();
        let _ = writeln!(
            std::io::stderr(),
            "fuzz {name}: {} frames in {:.1} s, {fwd} forwarded {:?} of {:?}; admitted as new {}, tracked {}, ICMP errors related {} and judged as ICMP {}",
            tally.frames,
            s.elapsed().as_secs_f64(),
            tally.forwarded,
            tally.sent,
            tally.admitted[0],
            tally.admitted[1],
            tally.admitted[2],
            tally.admitted[3],
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
