//! Across hosts, the router's side of the overlay through BPF_PROG_TEST_RUN:
//! a node on another host is a stand-in port (a pseudo ifindex with
//! `REMOTE_PORT_FLAG`); a flow to it leaves into the overlay device with
//! its tunnel set, at TC only, and only to a host `REMOTE_PORTS` knows. A
//! test run carries no tunnel metadata: on the overlay device it is
//! `overlay_malformed`.
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
    let st = std::process::Command::new("ip")
        .args(["link", "add", "ovl0", "type", "veth", "peer", "name", "ovl0p"])
        .status()
        .unwrap();
    assert!(st.success());
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
        assert_eq!(dropped(&mut h, DropReason::OverlayNoHost), 1, "{:?}", h.counters());

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
