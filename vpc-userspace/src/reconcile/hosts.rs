//! One VPC over several hosts: what this host builds, and how it reaches
//! the nodes of the others ([docs/multi-host.md](../../../docs/multi-host.md)).
//!
//! Every host holds the whole desired model (the cluster's, from etcd) and
//! compiles all of it, so its router can judge every flow its own nodes
//! open, to any destination, as one host does. The nodes placed on this
//! host (`model::placement`) are built as on one host; every other node is
//! a *stand-in*: its `PORTS` and `ENDPOINTS` entries under a pseudo
//! ifindex (`REMOTE_PORT_FLAG | n`), whose packets the router sends into
//! the overlay to that node's host (`REMOTE_PORTS`: the host's underlay
//! address and the VPC's VNI).
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};
use vpc_common::{RemotePort, REMOTE_PORT_FLAG};

use crate::{
    compile::{Entries, LinkInfo},
    model::{placement, Model},
    state::State,
    topology::{self, NodeSpec},
};

/// A host's part in its cluster (`vpc up --cluster`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterHost {
    /// etcd's client URLs.
    pub etcd: Vec<String>,
    /// The cluster's name: its keys in etcd are under `/vpc/<cluster>/`.
    pub cluster: String,
    /// This host's name (placement's `Metadata: Vpc::Host`).
    pub host: String,
    /// This host's underlay address (the VXLAN tunnels' endpoint).
    pub underlay: ipnet::Ipv4Net,
    /// The namespace of the one-machine underlay bridge.
    pub underlay_netns: String,
    /// Or a device of the machine the underlay is reached through (a
    /// macvlan of it in the router namespace).
    #[serde(default)]
    pub underlay_dev: Option<String>,
    /// The membership lease: a host silent this long is gone.
    pub lease_ttl_s: i64,
    /// The capacities `vpc up` was given: a host allocates from its slices
    /// only, so at most their ports.
    pub eni_capacity: u32,
    pub nat_gateway_capacity: u32,
    /// Live members and their underlay addresses, as last read.
    #[serde(default)]
    pub members: BTreeMap<String, Ipv4Addr>,
    /// The stand-ins of the other hosts' nodes.
    #[serde(default)]
    pub remote: Vec<RemoteNode>,
    /// The NAT port slices this host allocates from.
    #[serde(default)]
    pub slices: Vec<u32>,
    /// The revision of the cluster's desired state last taken here.
    #[serde(default)]
    pub revision: i64,
}

/// A node of another host, reached through the overlay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemoteNode {
    pub id: String,
    pub host: String,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// Its pseudo ifindex (`REMOTE_PORT_FLAG | n`).
    pub ifindex: u32,
}

/// The overlay link pin's name (`links/<name>`), beside the ports'.
pub const OVERLAY_LINK: &str = topology::OVERLAY_IF;

/// `vpc up` of a host: its underlay link and overlay device, the router
/// at TC ingress of the overlay (arrivals from other hosts; XDP has no
/// tunnel metadata), and the overlay's ifindex in `CONFIG`.
pub fn build_overlay(
    deployment: &str,
    pin_dir: &std::path::Path,
    c: &ClusterHost,
    maps: &mut impl crate::datapath::Maps,
) -> anyhow::Result<()> {
    let link = match &c.underlay_dev {
        Some(dev) => topology::UnderlayLink::Device(dev),
        None => topology::UnderlayLink::Bridge(&c.underlay_netns),
    };
    let ifindex = topology::build_overlay(deployment, c.underlay, link)?;
    let router = topology::router_netns(deployment);
    let mut prog = crate::datapath::pinned_router_tc(pin_dir)?;
    let pin = pin_dir.join("links").join(OVERLAY_LINK);
    topology::in_netns(&router, || {
        crate::datapath::attach_tc(&mut prog, topology::OVERLAY_IF, &pin)
    })?;
    maps.set_overlay(ifindex)
}

/// The node specs of `model` this host builds (all of them on one host),
/// and the others with their hosts: the stand-ins. Another host's
/// execution environments are neither: nothing here ever sends to one (a
/// function's connections are its own host's), so they cost this host
/// nothing (`LinkInfo::ELSEWHERE`).
pub fn split(
    deployment: &str,
    s: &State,
    model: &Model,
) -> (Vec<NodeSpec>, Vec<(NodeSpec, String)>) {
    let specs = topology::node_specs(deployment, model);
    let Some(me) = s.cluster.as_ref().map(|c| c.host.as_str()) else {
        return (specs, vec![]);
    };
    let mut local = vec![];
    let mut remote = vec![];
    for sp in specs {
        match placement::host_of(model, &sp.id) {
            Some(_) if elsewhere(model, me, &sp) => {}
            Some(h) if h != me => remote.push((sp, h.to_string())),
            _ => local.push(sp),
        }
    }
    (local, remote)
}

/// An execution environment of a function on another host.
fn elsewhere(model: &Model, me: &str, sp: &NodeSpec) -> bool {
    sp.role == topology::Role::ExecutionEnvironment
        && placement::host_of(model, &sp.id).is_some_and(|h| h != me)
}

/// The stand-ins of `remote`: one that was already here with the same
/// host and addresses keeps its pseudo ifindex (its connections are keyed
/// by it); a new one takes the lowest free number.
pub fn stand_ins(prev: &[RemoteNode], remote: &[(NodeSpec, String)]) -> Vec<RemoteNode> {
    let same = |r: &RemoteNode, sp: &NodeSpec, h: &str| {
        r.id == sp.id && r.host == h && r.ip == sp.ip && r.ip6 == sp.ip6
    };
    let mut out: Vec<RemoteNode> = vec![];
    let mut fresh = vec![];
    for (sp, h) in remote {
        match prev.iter().find(|r| same(r, sp, h)) {
            Some(r) => out.push(r.clone()),
            None => fresh.push((sp, h)),
        }
    }
    let mut n = 1u32;
    for (sp, h) in fresh {
        while out.iter().any(|r| r.ifindex == REMOTE_PORT_FLAG | n) {
            n += 1;
        }
        out.push(RemoteNode {
            id: sp.id.clone(),
            host: h.clone(),
            ip: sp.ip,
            ip6: sp.ip6,
            ifindex: REMOTE_PORT_FLAG | n,
        });
    }
    out
}

/// A stand-in's link: its pseudo ifindex, no MACs (the receiving host
/// writes its own node's).
pub fn link(r: &RemoteNode) -> LinkInfo {
    LinkInfo {
        ifindex: r.ifindex,
        mac: [0; 6],
        router_mac: [0; 6],
    }
}

/// The links compile takes: this host's nodes', the stand-ins', and
/// `ELSEWHERE` for other hosts' execution environments.
pub fn links(s: &State) -> std::collections::HashMap<String, LinkInfo> {
    let stand_ins = s.cluster.iter().flat_map(|c| c.remote.iter());
    let mut links: std::collections::HashMap<_, _> = s
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.link))
        .chain(stand_ins.map(|r| (r.id.clone(), link(r))))
        .collect();
    if let Some(c) = &s.cluster {
        for sp in topology::node_specs(&s.name, &s.model) {
            if elsewhere(&s.model, &c.host, &sp) {
                links.insert(sp.id, LinkInfo::ELSEWHERE);
            }
        }
    }
    links
}

/// `REMOTE_PORTS`: each stand-in whose host is live, its host's underlay
/// address and its VPC's VNI (the compiled port says the VPC). A stand-in
/// of a host not live has none: its packets are dropped as
/// `overlay_no_host` until the host comes back.
pub fn remote_ports(c: &ClusterHost, entries: &Entries) -> Vec<(u32, RemotePort)> {
    c.remote
        .iter()
        .filter_map(|r| {
            let underlay = c.members.get(&r.host)?;
            let vpc = entries
                .ports
                .iter()
                .find(|(i, _)| *i == r.ifindex)
                .map_or(0, |(_, p)| p.vpc);
            Some((
                r.ifindex,
                RemotePort {
                    underlay: underlay.octets(),
                    vni: vpc_common::vni_of_vpc(vpc),
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, ip: &str) -> NodeSpec {
        NodeSpec {
            id: id.into(),
            role: topology::Role::Instance,
            netns: id.into(),
            ip: ip.parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            ip6: None,
            ip6_route: false,
            secondary: vec![],
            stopped: false,
        }
    }

    #[test]
    fn a_stand_in_keeps_its_pseudo_ifindex_while_it_stays_where_it_is() {
        let a = (spec("A", "10.0.1.4"), "h2".to_string());
        let b = (spec("B", "10.0.1.5"), "h3".to_string());
        let first = stand_ins(&[], &[a.clone(), b.clone()]);
        assert_eq!(first[0].ifindex, REMOTE_PORT_FLAG | 1);
        assert_eq!(first[1].ifindex, REMOTE_PORT_FLAG | 2);
        // A goes; C comes and takes the lowest free number, B keeps its own.
        let c = (spec("C", "10.0.1.6"), "h2".to_string());
        let next = stand_ins(&first, &[b.clone(), c]);
        assert_eq!(next[0].ifindex, REMOTE_PORT_FLAG | 2);
        assert_eq!(next[1].ifindex, REMOTE_PORT_FLAG | 1);
        // B moved to another host: a new stand-in (its connections were
        // the old host's).
        let moved = stand_ins(&next, &[(b.0, "h1".to_string())]);
        assert_eq!(moved[0].ifindex, REMOTE_PORT_FLAG | 1);
    }
}
