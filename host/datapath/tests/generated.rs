//! The kernel fuzz run's generator (`vpc_tests::frames`) on the host
//! router, under the same oracle: a quick way to replay a kernel failure
//! (`VPC_FUZZ_SEED`, `VPC_FUZZ_TEMPLATE`, `VPC_FUZZ_FRAMES`) with a
//! debugger, and a check of its own at a smaller count; after each
//! template, every interface's conntrack allowance count is its live
//! connections.
use vpc_common::{cfg, DropReason};
use vpc_ebpf_host::{check::ports, Deployment, Hook, Host, XDP_REDIRECT};
use vpc_tests::{
    frames::{templates, Gen},
    oracle::Oracle,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_frames_on_the_host_router() {
    let seed = env("VPC_FUZZ_SEED", 0xf0f0_5eed);
    let frames = env("VPC_FUZZ_FRAMES", 20_000);
    let only = std::env::var("VPC_FUZZ_TEMPLATE").ok();
    for (i, (name, t)) in templates().iter().enumerate() {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let d = Deployment::new(t);
        let mut h = Host::new(262_144);
        d.install(&mut h);
        // As the kernel run: every other deployment with a tight conntrack
        // allowance, which its busiest interfaces reach.
        if i % 2 == 1 {
            h.set_config(cfg::CT_ALLOWANCE, 1_024);
        }
        let mut oracle = Oracle::new(&d.model, ports(&d));
        let mut gen = Gen::new(
            &d.model,
            &d.links,
            seed.wrapping_add(i as u64 * 0x9e37_79b9),
        );
        let mut n = 0;
        let mut k = 0;
        while n < frames {
            k += 1;
            let (kind, ingress, frame) = gen.next_frame();
            if frame.len() < 14 {
                continue;
            }
            n += 1;
            let out = h.run(Hook::Xdp, ingress, &frame);
            if out.action == XDP_REDIRECT {
                let egress = out.redirect.unwrap();
                if let Err(e) = oracle.forwarded(ingress, &frame, &out.frame, egress) {
                    panic!("{e}; {name}, frame {k} ({kind:?}) on {ingress}: {frame:02x?}");
                }
                gen.forwarded(ingress, &frame, egress, &out.frame);
            }
        }
        eprintln!(
            "{name}: admitted as new, tracked, related ICMP errors, ICMP errors judged as ICMP: {:?}; {} new connections refused at the allowance of {}",
            oracle.admitted,
            h.stats()[DropReason::ConntrackAllowanceExceeded as usize],
            h.conntrack_allowance(),
        );
        assert_eq!(
            h.port_counts(),
            h.connections_by_port(),
            "{name}: PORT_CONNECTIONS (left) against the original entries by port (right)"
        );
    }
}
