//! Across hosts, the router's side of the overlay. Through
//! BPF_PROG_TEST_RUN: a node on another host is a stand-in port (a pseudo
//! ifindex with `REMOTE_PORT_FLAG`); a flow to it leaves into the overlay
//! device with its tunnel set, at TC only, and only to a host
//! `REMOTE_PORTS` knows; a test run carries no tunnel metadata, which on
//! the overlay device is `overlay_malformed`. With real packets: two
//! router namespaces joined by VXLAN devices, a flow one host owns and its
//! reply relayed by the other.
use aya::maps::HashMap as M;
use vpc::datapath::Maps;
use vpc_common::{
    map_names, v4_mapped, vni_of_vpc, AddrKey, DropReason, Endpoint, PortInfo, RemotePort,
    REMOTE_PORT_FLAG,
};
use vpc_tests::{in_private_netns, Harness, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP};

use super::{echo, APP, DB, TEMPLATE};

/// The database made a stand-in: its endpoint and port under a pseudo
/// ifindex, as userspace writes a node placed on another host.
fn db_elsewhere(h: &mut Harness) -> (u32, u32) {
    let stand_in = REMOTE_PORT_FLAG | 1;
    let (key, _) = *h
        .entries
        .endpoints
        .iter()
        .find(|(k, _)| k.addr == v4_mapped([10, 0, 1, 10]))
        .expect("the database's endpoint");
    let mut eps: M<_, AddrKey, Endpoint> =
        M::try_from(h.dp.map(map_names::ENDPOINTS).unwrap()).unwrap();
    let mut ep = eps.get(&key, 0).unwrap();
    let old = ep.ifindex;
    ep.ifindex = stand_in;
    eps.insert(key, ep, 0).unwrap();
    let mut ports: M<_, u32, PortInfo> = M::try_from(h.dp.map(map_names::PORTS).unwrap()).unwrap();
    let port = ports.get(&old, 0).unwrap();
    ports.insert(stand_in, port, 0).unwrap();
    ports.remove(&old).unwrap();
    (stand_in, ep.vpc)
}

/// A device to stand for the overlay's (a test run needs a real ifindex).
fn overlay_device() -> u32 {
    ip_cmd(&[
        "link", "add", "ovl0", "type", "veth", "peer", "name", "ovl0p",
    ]);
    nix::net::if_::if_nametoindex("ovl0").unwrap()
}

/// To a node on another host: XDP cannot tunnel (`overlay_needs_tc`); TC
/// needs the overlay device and the node's host (`overlay_no_host`
/// without either), then redirects into the overlay. `sync_remote_ports`
/// removes a host no longer listed.
#[test]
fn a_flow_to_a_node_on_another_host_goes_into_the_overlay_at_tc_only() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let app_if = h.ifindex("App");
        let (stand_in, vpc) = db_elsewhere(&mut h);
        let ping = |id| echo(APP, DB, 8, id);
        let dropped = |h: &mut Harness, r| h.counters().dropped(r);

        assert_eq!(h.run(app_if, &ping(1)).0, XDP_DROP);
        assert_eq!(dropped(&mut h, DropReason::OverlayNeedsTc), 1);
        assert_eq!(h.run_tc(app_if, &ping(2)).0, TC_ACT_SHOT);
        assert_eq!(
            dropped(&mut h, DropReason::OverlayNoHost),
            1,
            "{:?}",
            h.counters()
        );

        let vx = overlay_device();
        h.dp.set_overlay(vx).unwrap();
        assert_eq!(h.run_tc(app_if, &ping(3)).0, TC_ACT_SHOT);
        assert_eq!(dropped(&mut h, DropReason::OverlayNoHost), 2);
        let host2 = RemotePort {
            underlay: [192, 0, 2, 2],
            vni: vni_of_vpc(vpc),
        };
        h.dp.sync_remote_ports(&[(stand_in, host2)]).unwrap();
        let before = h.counters().forwarded;
        assert_eq!(h.run_tc(app_if, &ping(4)).0, TC_ACT_REDIRECT);
        assert_eq!(h.counters().forwarded, before + 1);
        // XDP still cannot.
        assert_eq!(h.run(app_if, &ping(5)).0, XDP_DROP);
        assert_eq!(dropped(&mut h, DropReason::OverlayNeedsTc), 2);

        h.dp.sync_remote_ports(&[]).unwrap();
        assert_eq!(h.run_tc(app_if, &ping(6)).0, TC_ACT_SHOT);
        assert_eq!(dropped(&mut h, DropReason::OverlayNoHost), 3);

        // On the overlay device, a packet without tunnel metadata.
        assert_eq!(h.run_tc(vx, &echo(DB, APP, 0, 4)).0, TC_ACT_SHOT);
        assert_eq!(dropped(&mut h, DropReason::OverlayMalformed), 1);
        // No overlay configured: the device is an unknown port again.
        h.dp.set_overlay(0).unwrap();
        assert_eq!(h.run_tc(vx, &echo(DB, APP, 0, 4)).0, TC_ACT_SHOT);
        assert_eq!(dropped(&mut h, DropReason::OverlayMalformed), 1);
    });
}

/// `ip` with `args`, which must succeed.
fn ip_cmd(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "ip {args:?}");
}

/// The device (`d<i>`) of router port `ifindex`, and its peer up.
fn port_device(ifindex: u32) -> String {
    let dev = (0..64)
        .map(|i| format!("d{i}"))
        .find(|d| nix::net::if_::if_nametoindex(d.as_str()).ok() == Some(ifindex))
        .expect("the port's device");
    ip_cmd(&["link", "set", &dev, "up"]);
    ip_cmd(&["link", "set", &format!("{dev}p"), "up"]);
    dev
}

/// The overlay device of a router namespace, `vx0` (external), up, and
/// the router at TC ingress of it and of `ports`.
fn attach(h: &mut Harness, ports: &[&str]) -> u32 {
    ip_cmd(&[
        "link", "add", "vx0", "type", "vxlan", "external", "dstport", "4789",
    ]);
    ip_cmd(&["link", "set", "vx0", "up"]);
    let vx = nix::net::if_::if_nametoindex("vx0").unwrap();
    h.dp.set_overlay(vx).unwrap();
    let tc: &mut aya::programs::SchedClassifier =
        h.dp.ebpf
            .program_mut(vpc::datapath::ROUTER_TC_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
    for dev in ports.iter().copied().chain(["vx0"]) {
        tc.attach(dev, aya::programs::tc::TcAttachType::Ingress)
            .expect("tcx");
    }
    vx
}

/// A raw socket on `dev` that receives every frame (`ETH_P_ALL`).
struct Capture(i32);

impl Capture {
    fn open(dev: &str) -> Self {
        let ifindex = nix::net::if_::if_nametoindex(dev).unwrap();
        // SAFETY: a raw packet socket, bound to `dev`, closed on drop.
        unsafe {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto);
            assert!(fd >= 0, "AF_PACKET socket");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            sll.sll_ifindex = ifindex as i32;
            let r = libc::bind(
                fd,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 1,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            Capture(fd)
        }
    }

    /// The next IPv4 ICMP frame within 5 s (the noise of a fresh link,
    /// IPv6 neighbour discovery and the like, skipped).
    fn icmp(&self) -> Option<Vec<u8>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let mut buf = vec![0u8; 2048];
            // SAFETY: `buf` is ours and as long as said.
            let n =
                unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n > 34 && buf[12..14] == [0x08, 0x00] && buf[23] == 1 {
                buf.truncate(n as usize);
                return Some(buf);
            }
        }
        None
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// A named namespace, deleted when dropped (pass or fail).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Two router namespaces joined by a VXLAN overlay over a veth underlay
/// (192.0.2.1 and .2), real packets: the app on host 1 pings the database
/// on host 2. Host 1 judges the flow and sends it to the database's
/// stand-in, into the overlay; host 2 has no connection for it, delivers
/// it as is and records its relay; the database's reply goes back through
/// the relay, and host 1's conntrack takes it as the reply arriving on the
/// database's stand-in and delivers it to the app.
#[test]
fn a_ping_across_two_hosts_goes_through_the_overlay_and_its_reply_through_the_relay() {
    use vpc_tests::{spawn_in_netns, unique_name};
    in_private_netns(|| {
        let ns2 = Netns(unique_name("ovl"));
        ip_cmd(&["netns", "add", &ns2.0]);
        ip_cmd(&[
            "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns", &ns2.0,
        ]);
        ip_cmd(&["addr", "add", "192.0.2.1/24", "dev", "ul"]);
        ip_cmd(&["link", "set", "ul", "up"]);
        ip_cmd(&["-n", &ns2.0, "addr", "add", "192.0.2.2/24", "dev", "ul"]);
        ip_cmd(&["-n", &ns2.0, "link", "set", "ul", "up"]);

        // Host 1: the app here, the database a stand-in on host 2.
        let mut h1 = Harness::new(TEMPLATE);
        let app = port_device(h1.ifindex("App"));
        let (db_stand_in, vpc) = db_elsewhere(&mut h1);
        let vni = vni_of_vpc(vpc);
        let host = |last| RemotePort {
            underlay: [192, 0, 2, last],
            vni,
        };
        h1.dp.sync_remote_ports(&[(db_stand_in, host(2))]).unwrap();
        attach(&mut h1, &[&app]);

        // Host 2: the database here, the app a stand-in on host 1.
        let mut h2 = spawn_in_netns(&ns2.0, move || {
            let mut h2 = Harness::new(TEMPLATE);
            let db = port_device(h2.ifindex("Db"));
            let app_stand_in = REMOTE_PORT_FLAG | 1;
            let app_if = h2.ifindex("App");
            let (key, _) = *h2
                .entries
                .endpoints
                .iter()
                .find(|(k, _)| k.addr == v4_mapped([10, 0, 1, 20]))
                .unwrap();
            let mut eps: M<_, AddrKey, Endpoint> =
                M::try_from(h2.dp.map(map_names::ENDPOINTS).unwrap()).unwrap();
            let mut ep = eps.get(&key, 0).unwrap();
            ep.ifindex = app_stand_in;
            eps.insert(key, ep, 0).unwrap();
            let mut ports: M<_, u32, PortInfo> =
                M::try_from(h2.dp.map(map_names::PORTS).unwrap()).unwrap();
            let port = ports.get(&app_if, 0).unwrap();
            ports.insert(app_stand_in, port, 0).unwrap();
            h2.dp
                .sync_remote_ports(&[(
                    app_stand_in,
                    RemotePort {
                        underlay: [192, 0, 2, 1],
                        vni: vni_of_vpc(ep.vpc),
                    },
                )])
                .unwrap();
            attach(&mut h2, &[&db]);
            (h2, db)
        })
        .join()
        .unwrap();
        let (h2r, db) = (&mut h2.0, h2.1.clone());

        // The request: judged on host 1, delivered as is on host 2.
        let db_cap = {
            let db = db.clone();
            spawn_in_netns(&ns2.0, move || Capture::open(&format!("{db}p")))
                .join()
                .unwrap()
        };
        super::packets::send_raw(&format!("{app}p"), &echo(APP, DB, 8, 7));
        let got = db_cap
            .icmp()
            .expect("the request at the database, on host 2");
        let p = vpc::packet::parse_and_verify(&got).unwrap();
        assert_eq!((p.src, p.dst), (super::ip(APP), super::ip(DB)));
        assert_eq!(h2r.counters().forwarded, 1, "{:?}", h2r.counters());

        // The reply: relayed by host 2, delivered by host 1's conntrack.
        let app_cap = Capture::open(&format!("{app}p"));
        spawn_in_netns(&ns2.0, move || {
            super::packets::send_raw(&format!("{db}p"), &echo(DB, APP, 0, 7))
        })
        .join()
        .unwrap();
        let got = app_cap.icmp().expect("the reply at the app, on host 1");
        let p = vpc::packet::parse_and_verify(&got).unwrap();
        assert_eq!((p.src, p.dst), (super::ip(DB), super::ip(APP)));
        assert_eq!(h1.counters().forwarded, 2, "{:?}", h1.counters());
        assert_eq!(h2r.counters().forwarded, 2, "{:?}", h2r.counters());
        // (The links' own IPv6 noise is dropped as not the ports'.)
        for h in [&mut h1, h2r] {
            let c = h.counters();
            for r in [
                DropReason::OverlayNeedsTc,
                DropReason::OverlayNoHost,
                DropReason::OverlayMalformed,
                DropReason::OverlayNoDestination,
            ] {
                assert_eq!(c.dropped(r), 0, "{c:?}");
            }
        }
    });
}
