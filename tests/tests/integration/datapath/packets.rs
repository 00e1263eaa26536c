//! What the router takes for a packet, through BPF_PROG_TEST_RUN: every
//! truncation, bad headers, fragments, IPv4 options, IPv6 extension
//! headers, spoofed sources and unknown ports.
use vpc::packet::{parse_and_verify, Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{add_ipv6, check, ip, tcp, APP, APP6, DB, DB6, ENI, ENI6, EXEC, EXEC6, TEMPLATE};

#[test]
fn spoofed_sources_and_unknown_ports_are_dropped() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let app_if = h.ifindex("App");
        assert_eq!(h.run(app_if, &tcp(DB, APP, 1, 2, TCP_SYN)).0, XDP_DROP);
        check(&mut h, DropReason::Spoofed, 1);
        assert_eq!(
            h.run(1, &tcp(APP, DB, 1, 5432, TCP_SYN)).0,
            XDP_DROP,
            "lo is no router port"
        );
        check(&mut h, DropReason::UnknownPort, 1);
        // A tracked connection's packets are its own only on the port they
        // belong to: the same 5-tuple from another port is a spoof, not
        // established traffic.
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40001, 5432, TCP_SYN)).0,
            XDP_REDIRECT
        );
        assert_eq!(
            h.run(db_if, &tcp(EXEC, DB, 40001, 5432, TCP_ACK)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::Spoofed, 2);
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40001, 5432, TCP_ACK)).0,
            XDP_REDIRECT
        );
        // IPv4 lives in keys and endpoints as ::ffff:a.b.c.d: IPv6 carrying
        // such an address would otherwise ride on that IPv4 connection.
        let (m_exec, m_db) = (format!("::ffff:{EXEC}"), format!("::ffff:{DB}"));
        let v6 = tcp(&m_exec, &m_db, 40001, 5432, TCP_ACK);
        assert_eq!(h.run(fn_if, &v6).0, XDP_DROP);
        check(&mut h, DropReason::Ipv6EmbeddedV4, 1);
        assert_eq!(
            h.run(fn_if, &tcp(EXEC6, "::1", 40002, 5432, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::Ipv6EmbeddedV4, 2);
    });
}

#[test]
fn malformed_truncated_and_fragmented_packets_are_dropped_with_a_reason() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let fn_if = h.ifindex("Fn");
        let good = Frame::new(
            ip(EXEC),
            ip(DB),
            L4::Tcp {
                sport: 41000,
                dport: 5432,
                flags: TCP_SYN,
            },
        )
        .min_len(0)
        .build();
        // Every truncation of a valid frame is dropped, never passed.
        for len in 14..good.len() {
            let (v, _) = h.run(fn_if, &good[..len]);
            assert_eq!(v, XDP_DROP, "truncated to {len} bytes");
        }
        let c = h.counters();
        assert_eq!(c.forwarded, 0);
        assert_eq!(
            c.dropped(DropReason::Malformed),
            (good.len() - 14) as u64,
            "{c:?}"
        );
        // ARP is not IP.
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(h.run(fn_if, &arp).0, XDP_DROP);
        check(&mut h, DropReason::NotIp, 1);
        // IHL below 5, a wrong version, a total length beyond the frame.
        for (off, val) in [(14usize, 0x44u8), (14, 0x65), (16, 0xff)] {
            let mut bad = good.clone();
            bad[off] = val;
            assert_eq!(h.run(fn_if, &bad).0, XDP_DROP, "byte {off} = {val:#x}");
        }
        // Fragments: first (MF) and later (offset) both.
        for frag in [0x2000u16, 0x0010] {
            let mut f = good.clone();
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            assert_eq!(h.run(fn_if, &f).0, XDP_DROP);
        }
        check(&mut h, DropReason::Fragment, 2);
        // IPv4 options are skipped correctly: the packet is forwarded.
        let opts = Frame::new(
            ip(EXEC),
            ip(DB),
            L4::Tcp {
                sport: 41001,
                dport: 5432,
                flags: TCP_SYN,
            },
        )
        .with_options()
        .build();
        let (v, out) = h.run(fn_if, &opts);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(parse_and_verify(&out).unwrap().src, ip(ENI));
    });
}

#[test]
fn ipv6_is_parsed_filtered_tracked_and_natted() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        add_ipv6(&mut h);
        let (fn_if, db_if, app_if) = (h.ifindex("Fn"), h.ifindex("Db"), h.ifindex("App"));
        // Host to host: port 80 is allowed from ::/0, 81 is not.
        assert_eq!(
            h.run(app_if, &tcp(APP6, DB6, 40000, 80, TCP_SYN)).0,
            XDP_REDIRECT
        );
        assert_eq!(
            h.run(db_if, &tcp(DB6, APP6, 80, 40000, TCP_SYN | TCP_ACK))
                .0,
            XDP_REDIRECT,
            "reply of a tracked flow"
        );
        assert_eq!(
            h.run(app_if, &tcp(APP6, DB6, 40001, 81, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::SgIngressDenied, 1);
        // The IPv4 5432 rule does not admit IPv6, nor ::/0 admit IPv4.
        assert_eq!(h.run(app_if, &tcp(APP, DB, 40002, 80, TCP_SYN)).0, XDP_DROP);
        check(&mut h, DropReason::SgIngressDenied, 2);
        // Extension headers are walked (hop-by-hop here).
        let hbh = Frame::new(
            ip(APP6),
            ip(DB6),
            L4::Tcp {
                sport: 40003,
                dport: 80,
                flags: TCP_SYN,
            },
        )
        .with_options()
        .build();
        assert_eq!(h.run(app_if, &hbh).0, XDP_REDIRECT);
        // A fragment header is a deliberate drop.
        let mut frag = tcp(APP6, DB6, 40004, 80, TCP_SYN);
        frag[20] = 44;
        assert_eq!(h.run(app_if, &frag).0, XDP_DROP);
        check(&mut h, DropReason::Fragment, 1);
        // Function over IPv6: source NAT to the ENI's IPv6 address, checksums right.
        let (v, out) = h.run(fn_if, &tcp(EXEC6, DB6, 45000, 80, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let p = parse_and_verify(&out).expect("TCP checksum after IPv6 SNAT");
        assert_eq!((p.src, p.dst), (ip(ENI6), ip(DB6)));
        let (v, back) = h.run(db_if, &tcp(DB6, ENI6, 80, p.sport, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        let b = parse_and_verify(&back).unwrap();
        assert_eq!((b.dst, b.dport), (ip(EXEC6), 45000));
        // Truncated IPv6 is malformed, not passed.
        let short = tcp(APP6, DB6, 40005, 80, TCP_SYN);
        for len in [15, 30, 53, 60] {
            assert_eq!(
                h.run(app_if, &short[..len]).0,
                XDP_DROP,
                "IPv6 truncated to {len}"
            );
        }
    });
}

/// `frame` with an 802.1Q tag (VLAN 5) after its MAC addresses.
fn tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    f.extend_from_slice(&frame[12..]);
    f
}

/// VPC interfaces are untagged: a VLAN-tagged frame is dropped as
/// `vlan_tagged` by both hooks, whether the tag is in the frame (XDP sees
/// it there; so does TC when nothing took it off, as in a test run) or was
/// taken off it by the kernel before TC (a real veth's receive path
/// untags: `vlan_present`, which BPF_PROG_TEST_RUN cannot set, so a real
/// frame is sent through one).
#[test]
fn vlan_tagged_frames_are_dropped_alike_at_both_hooks() {
    use vpc_tests::{TC_ACT_REDIRECT, TC_ACT_SHOT};
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let app_if = h.ifindex("App");
        let plain = Frame::new(
            ip(APP),
            ip(DB),
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 1,
                seq: 1,
            },
        )
        .build();
        let frame = tagged(&plain);
        assert_eq!(h.run(app_if, &frame).0, XDP_DROP);
        check(&mut h, DropReason::VlanTagged, 1);
        assert_eq!(h.run_tc(app_if, &frame).0, TC_ACT_SHOT);
        check(&mut h, DropReason::VlanTagged, 2);
        // The same packet untagged passes at either hook.
        assert_eq!(h.run_tc(app_if, &plain).0, TC_ACT_REDIRECT);
        assert_eq!(h.run(app_if, &plain).0, XDP_REDIRECT);
        // Through a real veth: the app's stand-in port is d<i>, its peer
        // d<i>p; TC on the port, a tagged frame sent from the peer.
        let dev = (0..64)
            .map(|i| format!("d{i}"))
            .find(|d| nix::net::if_::if_nametoindex(d.as_str()).ok() == Some(app_if))
            .expect("the app's port");
        let tc: &mut aya::programs::SchedClassifier =
            h.dp.ebpf
                .program_mut(vpc::datapath::ROUTER_TC_PROGRAM)
                .unwrap()
                .try_into()
                .unwrap();
        tc.attach(&dev, aya::programs::tc::TcAttachType::Ingress)
            .expect("tcx");
        for d in [dev.clone(), format!("{dev}p")] {
            let st = std::process::Command::new("ip")
                .args(["link", "set", &d, "up"])
                .status()
                .unwrap();
            assert!(st.success());
        }
        send_raw(&format!("{dev}p"), &frame);
        vpc_tests::wait_for("the tagged frame at TC", 10, || {
            h.counters().dropped(DropReason::VlanTagged) >= 3
        });
    });
}

/// Sends `frame` as it is out of interface `dev` (AF_PACKET).
pub(super) fn send_raw(dev: &str, frame: &[u8]) {
    let ifindex = nix::net::if_::if_nametoindex(dev).unwrap();
    // SAFETY: a raw packet socket, bound to `dev`, closed below.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket");
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        let n = libc::sendto(
            fd,
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        libc::close(fd);
        assert_eq!(
            n,
            frame.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}
