//! The loader: the embedded XDP object, its maps, pins, and the map
//! operations userspace needs (install entries, counters, conntrack GC).
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, PerCpuArray},
    programs::{tc::TcAttachType, SchedClassifier, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use vpc_common::{
    cfg, map_names, AddrKey, CtEntry, CtKey, DropReason, Endpoint, EniGroup, HyperplaneEni,
    NatPortKey, PortInfo, RemotePort, RouteKey, RouteTarget, SgPortKey, SgPrefixKey,
    CLASS_GEN_SHIFT, CT_DIR_ORIG, CT_F_DNAT, CT_F_SNAT, ID_GEN_SHIFT, NAT_HIST_BUCKETS, NAT_SLICES,
    NAT_STAT_FAILED, NAT_STAT_HIST, STAT_FORWARDED,
};

use crate::compile::Entries;

pub mod allowance;
mod gc;
mod mapped;
mod sync;
mod timeouts;
pub use gc::{end_connections_where, timeout_of};
pub use mapped::NatPortBitmap;
pub use sync::SyncEntries;
pub use timeouts::Timeouts;

pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vpc"));

pub const ROUTER_PROGRAM: &str = "vpc_router";
/// The same pipeline at TC ingress (socket buffers, GSO kept whole).
pub const ROUTER_TC_PROGRAM: &str = "vpc_router_tc";

/// Where the router runs on a port. Chosen per port (router-side veth):
/// XDP sees frames before any socket buffer exists and is fastest for small
/// packets; TC keeps the buffers the sender built, so a GSO superpacket is
/// checked and forwarded whole and the endpoint keeps TSO and checksum
/// offload (XDP on a veth turns the peer's segmentation offloads off).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Xdp,
    Tc,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hook::Xdp => "xdp",
            Hook::Tc => "tc",
        })
    }
}
pub const BENCH_ROUTER_PROGRAM: &str = "bench_router";
pub const BENCH_REDIRECT_PROGRAM: &str = "bench_redirect";
/// The harness around the router at TC, and its baseline (the bench's
/// cases across hosts: docs/multi-host.md).
pub const BENCH_ROUTER_TC_PROGRAM: &str = "bench_router_tc";
pub const BENCH_REDIRECT_TC_PROGRAM: &str = "bench_redirect_tc";
/// The established packet's cost, a stage at a time (`vpc-ebpf`'s
/// `bench::stage`): parse; + conntrack lookup; + connection state and
/// counters; + NAT rewrite and checksums.
pub const BENCH_STAGE_PROGRAMS: [&str; 4] = [
    "bench_stage_parse",
    "bench_stage_lookup",
    "bench_stage_state",
    "bench_stage_rewrite",
];
/// `bench_stage_lookup` with the port's space from `PORTS`, as before
/// `PORT_SPACES`: side by side in one run, what the array saves.
pub const BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM: &str = "bench_stage_lookup_by_ports";
/// Maps that outlive the loading process (pinned by `vpc up`).
pub const PINNED_MAPS: &[&str] = &[
    map_names::PORTS,
    map_names::PORT_SPACES,
    map_names::ENDPOINTS,
    map_names::ENIS,
    map_names::SG_PREFIXES,
    map_names::SG_PORTS,
    map_names::ACL_PREFIXES,
    map_names::ACL_PORTS,
    map_names::SUBNET_ACLS,
    map_names::CT,
    map_names::STATS,
    map_names::CONFIG,
    map_names::ENI_GROUPS,
    map_names::NAT_PORTS,
    map_names::NAT_PORT_BITMAP,
    map_names::NAT_STATS,
    map_names::FRAGS,
    map_names::FRAG_IDS,
    map_names::ROUTES,
    map_names::SUBNET_ROUTE_TABLES,
    map_names::FL_REJECTS,
    map_names::FL_EVENTS,
    map_names::FL_STATS,
    map_names::PUBLIC_TO_PRIVATE,
    map_names::PRIVATE_TO_PUBLIC,
    map_names::PORT_STATS,
    map_names::PORT_DROPS,
    map_names::ENI_STATS,
    map_names::PORT_CONNECTIONS,
    map_names::LINKLOCAL_BUCKETS,
    map_names::ALLOWANCE_STATS,
    map_names::REMOTE_PORTS,
    map_names::RELAYS,
    map_names::PORT_SLICES,
];
pub use crate::paths::BPFFS;

/// Forwarded and dropped packet counts (summed over CPUs).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub forwarded: u64,
    /// (reason name, count) for every reason, in enum order.
    pub dropped: Vec<(String, u64)>,
}

impl Counters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(n, _)| n == reason.name())
            .map(|(_, c)| *c)
            .unwrap_or(0)
    }
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().map(|(_, c)| c).sum()
    }
}

/// A router port's allowances (AWS's ENA statistics are per interface).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortAllowances {
    /// Connections it opened that are tracked now.
    pub connections: i64,
    /// New connections dropped past its conntrack allowance.
    pub conntrack_allowance_exceeded: u64,
    /// Packets to the VPC resolver dropped past its linklocal allowance.
    pub linklocal_allowance_exceeded: u64,
}

/// NAT port allocation: failures (every ENI of the group full, dropped as
/// `nat_port_exhausted`) and how many probes each success took.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NatStats {
    pub failed: u64,
    /// NAT gateways' RSTs to packets of connections they forgot.
    #[serde(default)]
    pub idle_timeouts: u64,
    /// (probes: "1", "2", "3-4", "5-8", ..., count).
    pub probe_histogram: Vec<(String, u64)>,
}

impl NatStats {
    pub fn allocated(&self) -> u64 {
        self.probe_histogram.iter().map(|(_, n)| n).sum()
    }
}

/// The `NAT_PORTS` claim of a connection entry (either direction), if NATed
/// (through a Hyperplane ENI or a NAT gateway: `eni` names it).
pub fn nat_claim(k: &CtKey, e: &CtEntry) -> Option<NatPortKey> {
    if e.eni == 0 || e.flags & (CT_F_SNAT | CT_F_DNAT) == 0 {
        return None;
    }
    // The reply entry's key is the reply key; the original names it.
    let reply = if e.dir == CT_DIR_ORIG { &e.twin } else { k };
    let nat_gateway = e.route == vpc_common::route_kind::NAT_GATEWAY;
    Some(NatPortKey::of_reply(e.eni as u32, reply, nat_gateway))
}

/// The other claim of a function's connection through a NAT gateway: the
/// port of its Hyperplane ENI it took first (`CtEntry::fn_eni`), under
/// the same reply key as the gateway's.
pub fn fn_eni_claim(k: &CtKey, e: &CtEntry) -> Option<NatPortKey> {
    if e.fn_eni == 0 || e.route != vpc_common::route_kind::NAT_GATEWAY {
        return None;
    }
    Some(NatPortKey {
        eni: e.fn_eni as u32,
        port: e.fn_eni_port,
        proto: k.proto,
        ..NatPortKey::default()
    })
}

/// Every `NAT_PORTS` claim of a connection entry: none, its ENI's or
/// gateway's, and a function's ENI's through a NAT gateway.
pub fn nat_claims_of(k: &CtKey, e: &CtEntry) -> impl Iterator<Item = NatPortKey> {
    nat_claim(k, e).into_iter().chain(fn_eni_claim(k, e))
}

/// Time on the clock the datapath uses (`bpf_ktime_get_coarse_ns`).
pub fn mono_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .expect("CLOCK_MONOTONIC_COARSE");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Access to the maps, owned by a loaded object or opened from pins.
pub trait Maps {
    fn map(&mut self, name: &str) -> Result<&mut Map>;

    fn set_timeouts(&mut self, t: &Timeouts) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        for (i, d) in t.by_index() {
            a.set(i, d.as_nanos() as u64, 0)?;
        }
        Ok(())
    }

    /// Installs everything; ports last, so an interface starts forwarding
    /// only once all it may need is in place.
    fn install(&mut self, e: &Entries) -> Result<()> {
        self.install_policy(e)?;
        let mut m: HashMap<_, AddrKey, Endpoint> =
            HashMap::try_from(self.map(map_names::ENDPOINTS)?)?;
        for (k, v) in &e.endpoints {
            m.insert(k, v, 0).context("ENDPOINTS insert")?;
        }
        let mut m: HashMap<_, u32, HyperplaneEni> = HashMap::try_from(self.map(map_names::ENIS)?)?;
        for (k, v) in &e.enis {
            m.insert(k, v, 0).context("ENIS insert")?;
        }
        let mut m: HashMap<_, u32, EniGroup> = HashMap::try_from(self.map(map_names::ENI_GROUPS)?)?;
        for (k, v) in &e.eni_groups {
            m.insert(k, v, 0).context("ENI_GROUPS insert")?;
        }
        let mut m: HashMap<_, [u8; 16], AddrKey> =
            HashMap::try_from(self.map(map_names::PUBLIC_TO_PRIVATE)?)?;
        for (k, v) in &e.public_to_private {
            m.insert(k, v, 0).context("PUBLIC_TO_PRIVATE insert")?;
        }
        let mut m: HashMap<_, AddrKey, [u8; 16]> =
            HashMap::try_from(self.map(map_names::PRIVATE_TO_PUBLIC)?)?;
        for (k, v) in &e.private_to_public {
            m.insert(k, v, 0).context("PRIVATE_TO_PUBLIC insert")?;
        }
        let mut m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        for (k, v) in &e.ports {
            m.insert(k, v, 0).context("PORTS insert")?;
        }
        self.set_port_spaces(&e.ports)
    }

    /// `PORT_SPACES` for `ports`, the established path's copy of each
    /// port's address space (`vpc_common::port_space_slot`): written
    /// wherever `PORTS` gets a port. A port from `MAX_PORTS` on has no slot
    /// of its own; the datapath asks `PORTS` for it.
    fn set_port_spaces(&mut self, ports: &[(u32, PortInfo)]) -> Result<()> {
        let mut a: Array<_, u32> = Array::try_from(self.map(map_names::PORT_SPACES)?)?;
        for (ifindex, p) in ports {
            let slot = vpc_common::port_slot(*ifindex);
            if slot != 0 && a.get(&slot, 0).ok() != Some(vpc_common::port_space_slot(p.vpc)) {
                a.set(slot, vpc_common::port_space_slot(p.vpc), 0)
                    .context("PORT_SPACES")?;
            }
        }
        Ok(())
    }

    /// Ports gone from `PORTS`: their `PORT_SPACES` slots cleared.
    fn clear_port_spaces(&mut self, ifindexes: &[u32]) -> Result<()> {
        let mut a: Array<_, u32> = Array::try_from(self.map(map_names::PORT_SPACES)?)?;
        for &i in ifindexes {
            let slot = vpc_common::port_slot(i);
            if slot != 0 {
                a.set(slot, 0, 0).context("PORT_SPACES")?;
            }
        }
        Ok(())
    }

    /// Now on the datapath's clock (idle times): `mono_ns` plus what a
    /// test clock was moved by.
    /// `vpc trace`: the router logs every verdict while on (`cfg::TRACE`).
    fn set_trace(&mut self, on: bool) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        a.set(cfg::TRACE, on as u64, 0)
            .context("setting the trace switch (CONFIG[TRACE])")?;
        Ok(())
    }

    /// Whether the trace switch is on (a `vpc trace` runs, or one was
    /// killed before it could clear it).
    fn trace_on(&mut self) -> Result<bool> {
        let a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        Ok(a.get(&cfg::TRACE, 0)? != 0)
    }

    fn datapath_now(&mut self) -> Result<u64> {
        let a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        Ok(mono_ns().wrapping_add(a.get(&cfg::CLOCK_OFFSET, 0)?))
    }

    /// Moves the datapath's clock forward (a test clock's advance): every
    /// connection is that much more idle.
    fn advance_clock(&mut self, ns: u64) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        let t = a.get(&cfg::CLOCK_OFFSET, 0)?;
        a.set(cfg::CLOCK_OFFSET, t.wrapping_add(ns), 0)?;
        Ok(())
    }

    /// NAT ports per ENI and protocol (`cfg::ENI_CAPACITY`).
    fn set_eni_capacity(&mut self, ports: u32) -> Result<()> {
        if ports == 0 || ports > vpc_common::NAT_PORT_RANGE {
            bail!(
                "ENI capacity {ports}: 1-{} ports (1024-65535)",
                vpc_common::NAT_PORT_RANGE
            );
        }
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        a.set(cfg::ENI_CAPACITY, ports as u64, 0)?;
        Ok(())
    }

    /// Source ports per NAT gateway and protocol (`cfg::NAT_GATEWAY_CAPACITY`).
    fn set_nat_gateway_capacity(&mut self, ports: u32) -> Result<()> {
        if ports == 0 || ports > vpc_common::NAT_PORT_RANGE {
            bail!(
                "NAT gateway capacity {ports}: 1-{} ports (1024-65535)",
                vpc_common::NAT_PORT_RANGE
            );
        }
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        a.set(cfg::NAT_GATEWAY_CAPACITY, ports as u64, 0)?;
        Ok(())
    }

    /// The NAT port slices this host leases (physical slices, in order):
    /// `PORT_SLICES` entry j = 1 + the j-th, the rest cleared (identity).
    /// Every pool then allocates from these slices alone, its first
    /// `NAT_SLICE_PORTS` ports in the first one, and so on: the ENI and NAT
    /// gateway capacities must not exceed `slices.len() * NAT_SLICE_PORTS`.
    fn set_port_slices(&mut self, slices: &[u32]) -> Result<()> {
        if slices.len() > NAT_SLICES as usize {
            bail!("{} NAT port slices: at most {NAT_SLICES}", slices.len());
        }
        if let Some(s) = slices.iter().find(|s| **s >= NAT_SLICES) {
            bail!("NAT port slice {s}: 0-{}", NAT_SLICES - 1);
        }
        let mut a: Array<_, u32> = Array::try_from(self.map(map_names::PORT_SLICES)?)?;
        for j in 0..NAT_SLICES {
            let v = slices.get(j as usize).map_or(0, |s| s + 1);
            a.set(j, v, 0).context("PORT_SLICES")?;
        }
        Ok(())
    }

    /// The overlay device's ifindex in the router namespace
    /// (`cfg::OVERLAY_IFINDEX`; 0: no overlay).
    fn set_overlay(&mut self, ifindex: u32) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        a.set(cfg::OVERLAY_IFINDEX, ifindex as u64, 0)
            .context("setting the overlay device (CONFIG[OVERLAY_IFINDEX])")?;
        Ok(())
    }

    /// `REMOTE_PORTS` made `ports` (stand-in pseudo ifindex -> its node's
    /// host and VNI): these written where changed, every other removed.
    fn sync_remote_ports(&mut self, ports: &[(u32, RemotePort)]) -> Result<()> {
        let mut m: HashMap<_, u32, RemotePort> =
            HashMap::try_from(self.map(map_names::REMOTE_PORTS)?)?;
        for (ifindex, r) in ports {
            if !vpc_common::is_remote_port(*ifindex) {
                bail!("remote port {ifindex:#x} without REMOTE_PORT_FLAG");
            }
            if m.get(ifindex, 0).ok().as_ref() != Some(r) {
                m.insert(ifindex, r, 0).context("REMOTE_PORTS insert")?;
            }
        }
        let gone: Vec<u32> = m
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !ports.iter().any(|(i, _)| i == k))
            .collect();
        for k in gone {
            m.remove(&k).context("REMOTE_PORTS remove")?;
        }
        Ok(())
    }

    /// Connections each interface may have tracked at once (0: no
    /// allowance), `cfg::CT_ALLOWANCE`.
    fn set_conntrack_allowance(&mut self, connections: u32) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        a.set(cfg::CT_ALLOWANCE, connections as u64, 0)?;
        Ok(())
    }

    fn conntrack_allowance(&mut self) -> Result<u32> {
        let a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        Ok(a.get(&cfg::CT_ALLOWANCE, 0)? as u32)
    }

    /// The allowances of router port `ifindex`: connections it has tracked
    /// now, and its drops past each allowance (summed over CPUs).
    fn port_allowances(&mut self, ifindex: u32) -> Result<PortAllowances> {
        let c: Array<_, u64> = Array::try_from(self.map(map_names::PORT_CONNECTIONS)?)?;
        let connections = c.get(&vpc_common::port_slot(ifindex), 0)? as i64;
        let a: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(map_names::ALLOWANCE_STATS)?)?;
        let sum = |w: u32| -> Result<u64> {
            Ok(a.get(&vpc_common::allowance_stat_index(ifindex, w), 0)?
                .iter()
                .sum())
        };
        Ok(PortAllowances {
            connections,
            conntrack_allowance_exceeded: sum(vpc_common::ALLOWANCE_CONNTRACK)?,
            linklocal_allowance_exceeded: sum(vpc_common::ALLOWANCE_LINKLOCAL)?,
        })
    }

    fn eni_capacity(&mut self) -> Result<u32> {
        let a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        Ok(match a.get(&cfg::ENI_CAPACITY, 0)? as u32 {
            c if c == 0 || c > vpc_common::NAT_PORT_RANGE => vpc_common::DEFAULT_ENI_CAPACITY,
            c => c,
        })
    }

    /// Writes one ENI group (the datapath tries its ENIs in this order).
    fn set_eni_group(&mut self, id: u32, g: &EniGroup) -> Result<()> {
        let mut m: HashMap<_, u32, EniGroup> = HashMap::try_from(self.map(map_names::ENI_GROUPS)?)?;
        m.insert(id, g, 0).context("ENI_GROUPS insert")?;
        Ok(())
    }

    /// NAT ports claimed per ENI (index) and protocol: its connections.
    fn nat_claims(&mut self) -> Result<std::collections::BTreeMap<(u32, u8), usize>> {
        let m: HashMap<_, NatPortKey, CtKey> = HashMap::try_from(self.map(map_names::NAT_PORTS)?)?;
        let mut out = std::collections::BTreeMap::new();
        for k in m.keys().filter_map(|k| k.ok()) {
            *out.entry((k.eni, k.proto)).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// NAT allocation counters, summed over CPUs.
    fn nat_stats(&mut self) -> Result<NatStats> {
        let a: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(map_names::NAT_STATS)?)?;
        let sum = |i: u32| -> Result<u64> { Ok(a.get(&i, 0)?.iter().sum()) };
        let mut probe_histogram = vec![];
        for b in 0..NAT_HIST_BUCKETS {
            let (lo, hi) = if b == 0 {
                (1, 1)
            } else {
                ((1 << (b - 1)) + 1, 1 << b)
            };
            let label = if b == NAT_HIST_BUCKETS - 1 {
                format!("{lo}+")
            } else if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            probe_histogram.push((label, sum(NAT_STAT_HIST + b)?));
        }
        Ok(NatStats {
            failed: sum(NAT_STAT_FAILED)?,
            idle_timeouts: sum(vpc_common::NAT_STAT_IDLE_TIMEOUT)?,
            probe_histogram,
        })
    }

    /// The tries and `SUBNET_ACLS` of `e.gen`: not read by the datapath until
    /// that generation is switched on.
    fn install_policy(&mut self, e: &Entries) -> Result<()> {
        for (name, prefixes) in [
            (map_names::SG_PREFIXES, &e.sg_prefixes),
            (map_names::ACL_PREFIXES, &e.acl_prefixes),
        ] {
            let mut m: LpmTrie<_, SgPrefixKey, u32> = LpmTrie::try_from(self.map(name)?)?;
            for (len, k, class) in prefixes {
                m.insert(&Key::new(*len, *k), *class, 0)
                    .with_context(|| format!("{name} insert"))?;
            }
        }
        let sg_ports = e.sg_ports.iter().map(|(l, k)| (*l, *k, 1u8));
        for (name, ports) in [
            (map_names::SG_PORTS, sg_ports.collect::<Vec<_>>()),
            (map_names::ACL_PORTS, e.acl_ports.clone()),
        ] {
            let mut m: LpmTrie<_, SgPortKey, u8> = LpmTrie::try_from(self.map(name)?)?;
            for (len, k, v) in ports {
                m.insert(&Key::new(len, k), v, 0)
                    .with_context(|| format!("{name} insert"))?;
            }
        }
        let mut m: Array<_, u32> = Array::try_from(self.map(map_names::SUBNET_ACLS)?)?;
        for (i, acl) in &e.subnet_acls {
            m.set(*i, *acl, 0).context("SUBNET_ACLS set")?;
        }
        let mut m: LpmTrie<_, RouteKey, RouteTarget> =
            LpmTrie::try_from(self.map(map_names::ROUTES)?)?;
        for (len, k, t) in &e.routes {
            m.insert(&Key::new(*len, *k), *t, 0)
                .context("ROUTES insert")?;
        }
        let mut m: Array<_, u32> = Array::try_from(self.map(map_names::SUBNET_ROUTE_TABLES)?)?;
        for (i, t) in &e.subnet_route_tables {
            m.set(*i, *t, 0).context("SUBNET_ROUTE_TABLES set")?;
        }
        Ok(())
    }

    /// Removes every trie entry of generation `gen`.
    fn clear_generation(&mut self, gen: u32) -> Result<usize> {
        let of_id = |pd: [u8; 4]| (u32::from_be_bytes(pd) >> 2 >> ID_GEN_SHIFT) & 1;
        let of_class = |c: [u8; 4]| u32::from_be_bytes(c) >> CLASS_GEN_SHIFT & 1;
        let mut n = 0;
        for name in [map_names::SG_PREFIXES, map_names::ACL_PREFIXES] {
            let mut m: LpmTrie<_, SgPrefixKey, u32> = LpmTrie::try_from(self.map(name)?)?;
            let stale: Vec<_> = m
                .keys()
                .filter_map(|k| k.ok())
                .filter(|k| of_id(k.data().policy_dir) == gen)
                .collect();
            for k in stale {
                m.remove(&k)?;
                n += 1;
            }
        }
        let mut m: LpmTrie<_, RouteKey, RouteTarget> =
            LpmTrie::try_from(self.map(map_names::ROUTES)?)?;
        let stale: Vec<_> = m
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| (u32::from_be_bytes(k.data().table_family) >> 1 >> ID_GEN_SHIFT) & 1 == gen)
            .collect();
        for k in stale {
            m.remove(&k)?;
            n += 1;
        }
        for name in [map_names::SG_PORTS, map_names::ACL_PORTS] {
            let mut m: LpmTrie<_, SgPortKey, u8> = LpmTrie::try_from(self.map(name)?)?;
            let stale: Vec<_> = m
                .keys()
                .filter_map(|k| k.ok())
                .filter(|k| of_class(k.data().class) == gen)
                .collect();
            for k in stale {
                m.remove(&k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The generation in force.
    fn generation(&mut self) -> Result<u32> {
        let a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        Ok(a.get(&cfg::GENERATION, 0)? as u32 & 1)
    }

    /// Switches the datapath to `gen`: one write, seen by the next packet.
    /// The value is a counter whose low bit is the generation: it never
    /// repeats, so verdicts cached under one policy (conntrack's ACL
    /// verdicts) cannot be mistaken for verdicts of a later one.
    fn set_generation(&mut self, gen: u32) -> Result<()> {
        let mut a: Array<_, u64> = Array::try_from(self.map(map_names::CONFIG)?)?;
        let cur = a.get(&cfg::GENERATION, 0)?;
        let next = if (cur + 1) & 1 == gen as u64 {
            cur + 1
        } else {
            cur + 2
        };
        a.set(cfg::GENERATION, next, 0)?;
        Ok(())
    }

    /// Writes `e` (compiled for the generation not in force) aside and
    /// switches the datapath to it in one write.
    fn switch_policy(&mut self, e: &Entries) -> Result<()> {
        let cur = self.generation()?;
        if e.gen == cur {
            bail!("entries compiled for generation {cur}, which is in force");
        }
        self.clear_generation(e.gen)?;
        self.install_policy(e)?;
        self.set_policy_slots(e)?;
        self.set_generation(e.gen)?;
        Ok(())
    }

    /// After a switch to `now`: removes the other generation's entries once
    /// packets that read it are done (XDP runs under RCU, a packet finishes
    /// in microseconds; 20 ms is ample). A failure here leaves only unused
    /// entries, which the next switch clears before writing.
    fn clear_old_generation(&mut self, now: u32) -> Result<()> {
        std::thread::sleep(Duration::from_millis(20));
        self.clear_generation(1 - now)?;
        Ok(())
    }

    /// Sets the ENI group an execution environment sends through (0: none).
    fn set_port_eni(&mut self, ifindex: u32, group: u32) -> Result<()> {
        let mut m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        let mut p = m.get(&ifindex, 0).context("no such port")?;
        p.eni_group = group;
        m.insert(ifindex, p, 0)?;
        Ok(())
    }

    /// Fills the `gen` slot of every policy pair from `e` (ports, endpoints,
    /// ENIs), leaving the slot in force untouched.
    fn set_policy_slots(&mut self, e: &Entries) -> Result<()> {
        let gen = e.gen as usize;
        let mut m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        for (k, v) in &e.ports {
            let mut cur = m.get(k, 0).context("port missing")?;
            cur.policy[gen] = v.policy[gen];
            m.insert(k, cur, 0)?;
        }
        let mut m: HashMap<_, AddrKey, Endpoint> =
            HashMap::try_from(self.map(map_names::ENDPOINTS)?)?;
        for (k, v) in &e.endpoints {
            let mut cur = m.get(k, 0).context("endpoint missing")?;
            cur.policy[gen] = v.policy[gen];
            m.insert(k, cur, 0)?;
        }
        let mut m: HashMap<_, u32, HyperplaneEni> = HashMap::try_from(self.map(map_names::ENIS)?)?;
        for (k, v) in &e.enis {
            let mut cur = m.get(k, 0).context("ENI missing")?;
            cur.policy[gen] = v.policy[gen];
            m.insert(k, cur, 0)?;
        }
        Ok(())
    }

    fn counters(&mut self) -> Result<Counters> {
        let a: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(map_names::STATS)?)?;
        let sum = |i: u32| -> Result<u64> { Ok(a.get(&i, 0)?.iter().sum()) };
        Ok(Counters {
            forwarded: sum(STAT_FORWARDED)?,
            dropped: DropReason::ALL
                .iter()
                .map(|r| Ok((r.name().to_string(), sum(*r as u32)?)))
                .collect::<Result<_>>()?,
        })
    }

    /// Live connections (original-direction entries).
    fn connections(&mut self) -> Result<Vec<(CtKey, CtEntry)>> {
        let m: HashMap<_, CtKey, CtEntry> = HashMap::try_from(self.map(map_names::CT)?)?;
        Ok(m.iter()
            .filter_map(|r| r.ok())
            .filter(|(_, e)| e.dir == CT_DIR_ORIG)
            .collect())
    }

    /// Removes expired connections (both entries) and their NAT port
    /// claims. An entry is re-read just before deletion and kept if the
    /// datapath touched it since the scan. A connection's claim goes right
    /// after its entries (a GC cut short leaks no more than the connection
    /// it was on), and only if it still names this connection's reply key,
    /// so a port is never free while a connection holds it.
    fn ct_gc(&mut self, t: &Timeouts) -> Result<usize> {
        self.ct_gc_with(t, &mut |_, _| {})
    }

    /// As `ct_gc`, handing every removed entry (both directions, as
    /// removed) to `on_removed` first: flow logs take what it counted.
    fn ct_gc_with(
        &mut self,
        t: &Timeouts,
        on_removed: &mut dyn FnMut(&CtKey, &CtEntry),
    ) -> Result<usize> {
        gc::collect(self, t, on_removed)
    }

    /// NAT port claims whose connection is not in the conntrack table.
    /// The datapath claims a port just before it opens the connection, so
    /// a claim seen here may be an instant old: only [`release_nat_orphans`]
    /// a moment later decides.
    ///
    /// [`release_nat_orphans`]: Maps::release_nat_orphans
    fn nat_orphans(&mut self) -> Result<Vec<(NatPortKey, CtKey)>> {
        let claims: Vec<(NatPortKey, CtKey)> = {
            let m: HashMap<_, NatPortKey, CtKey> =
                HashMap::try_from(self.map(map_names::NAT_PORTS)?)?;
            m.iter().filter_map(|r| r.ok()).collect()
        };
        let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(self.map(map_names::CT)?)?;
        Ok(claims
            .into_iter()
            .filter(|(_, holder)| ct.get(holder, 0).is_err())
            .collect())
    }

    /// Gives back the claims of `seen` (from [`Maps::nat_orphans`], at least
    /// a second ago) that still name the same absent connection. They are
    /// what an agent killed in the middle of a GC leaves: the entries gone,
    /// the claim not yet. Returns how many went.
    fn release_nat_orphans(&mut self, seen: &[(NatPortKey, CtKey)]) -> Result<usize> {
        let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(self.map(map_names::CT)?)?;
        let gone: Vec<NatPortKey> = seen
            .iter()
            .filter(|(_, holder)| ct.get(holder, 0).is_err())
            .map(|(c, _)| *c)
            .collect();
        let bitmap = NatPortBitmap::open(self)?;
        let mut ports: HashMap<_, NatPortKey, CtKey> =
            HashMap::try_from(self.map(map_names::NAT_PORTS)?)?;
        let mut n = 0;
        for (c, holder) in seen {
            if gone.contains(c)
                && ports.get(c, 0).is_ok_and(|h| h == *holder)
                && ports.remove(c).is_ok()
            {
                if let Some(b) = &bitmap {
                    b.clear(c);
                }
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A freshly loaded datapath (programs verified, maps created).
pub struct Datapath {
    pub ebpf: Ebpf,
}

impl Maps for Datapath {
    fn map(&mut self, name: &str) -> Result<&mut Map> {
        self.ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing from the object"))
    }
}

impl Datapath {
    /// Loads the object and the router program (the kernel verifies it here).
    pub fn load(timeouts: &Timeouts) -> Result<Self> {
        Self::load_with(timeouts, vpc_common::CT_MAX_ENTRIES)
    }

    /// As `load`, with a conntrack table of `ct_max` entries (two per
    /// connection; `NAT_PORTS` holds one claim per connection: half).
    pub fn load_with(timeouts: &Timeouts, ct_max: u32) -> Result<Self> {
        Self::load_sized(timeouts, ct_max, vpc_common::FL_RINGBUF_BYTES)
    }

    /// As `load_with`, with a flow-log ring buffer of `ringbuf` bytes (a
    /// power of two, at least a page).
    pub fn load_sized(timeouts: &Timeouts, ct_max: u32, ringbuf: u32) -> Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
        if !ringbuf.is_power_of_two() || ringbuf < page {
            bail!(
                "flow-log ring buffer of {ringbuf} bytes: a power of two, at least {page} (a page)"
            );
        }
        if ct_max < 2 {
            bail!("conntrack size {ct_max}: at least 2 entries (two per connection)");
        }
        let ebpf = EbpfLoader::new()
            .map_max_entries(map_names::CT, ct_max)
            .map_max_entries(map_names::NAT_PORTS, ct_max / 2)
            .map_max_entries(map_names::FL_EVENTS, ringbuf)
            .load(EBPF_OBJECT)
            .context("loading the XDP object")?;
        let mut dp = Self { ebpf };
        dp.load_program(ROUTER_PROGRAM)?;
        // Both hooks are verified up front: a rejection leaves nothing built.
        let tc: &mut SchedClassifier = dp
            .ebpf
            .program_mut(ROUTER_TC_PROGRAM)
            .with_context(|| format!("program {ROUTER_TC_PROGRAM} missing"))?
            .try_into()?;
        tc.load()
            .with_context(|| format!("the kernel rejected {ROUTER_TC_PROGRAM}"))?;
        dp.set_timeouts(timeouts)?;
        Ok(dp)
    }

    pub fn load_program(&mut self, name: &str) -> Result<&mut Xdp> {
        let p: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        if p.fd().is_err() {
            p.load()
                .with_context(|| format!("the kernel rejected {name}"))?;
        }
        Ok(p)
    }

    /// `load_program` of a TC program (the bench's TC harness).
    pub fn load_tc_program(&mut self, name: &str) -> Result<&mut SchedClassifier> {
        let p: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        if p.fd().is_err() {
            p.load()
                .with_context(|| format!("the kernel rejected {name}"))?;
        }
        Ok(p)
    }

    pub fn program(&mut self, name: &str) -> Result<&mut Xdp> {
        Ok(self
            .ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?)
    }

    /// Pins the maps under `dir/maps`.
    pub fn pin_maps(&mut self, dir: &Path) -> Result<()> {
        let maps = dir.join("maps");
        std::fs::create_dir_all(&maps).with_context(|| format!("creating {}", maps.display()))?;
        for name in PINNED_MAPS {
            self.map(name)?
                .pin(maps.join(name))
                .with_context(|| format!("pinning map {name}"))?;
        }
        Ok(())
    }

    /// Pins both router programs under `dir/progs`, so that ports added
    /// later (functions created through the API) get the same programs.
    pub fn pin_programs(&mut self, dir: &Path) -> Result<()> {
        let progs = dir.join("progs");
        std::fs::create_dir_all(&progs)?;
        for name in [ROUTER_PROGRAM, ROUTER_TC_PROGRAM] {
            self.ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .pin(progs.join(name))
                .with_context(|| format!("pinning program {name}"))?;
        }
        Ok(())
    }
}

/// The pinned router program of a deployment (`Datapath::pin_programs`).
pub fn pinned_router(pin_dir: &Path) -> Result<Xdp> {
    Xdp::from_pin(
        pin_dir.join("progs").join(ROUTER_PROGRAM),
        aya_obj::programs::XdpAttachType::Interface,
    )
    .context("opening the pinned router program")
}

/// The pinned TC router program of a deployment.
pub fn pinned_router_tc(pin_dir: &Path) -> Result<SchedClassifier> {
    SchedClassifier::from_pin(pin_dir.join("progs").join(ROUTER_TC_PROGRAM))
        .context("opening the pinned TC router program")
}

/// Attaches `prog` to `ifindex` (in the calling thread's netns), natively
/// if the driver allows, and pins the link at `pin`. Returns the mode.
pub fn attach_xdp(prog: &mut Xdp, ifindex: u32, pin: &Path) -> Result<&'static str> {
    {
        let (id, mode) = match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(id) => (id, "xdp-native"),
            Err(e) => {
                eprintln!("warning: native XDP on ifindex {ifindex} failed ({e}); using generic (skb) mode");
                (
                    prog.attach_to_if_index(ifindex, XdpMode::Skb)
                        .context("attaching XDP")?,
                    "xdp-generic",
                )
            }
        };
        let link = prog.take_link(id)?;
        let fd: aya::programs::links::FdLink =
            link.try_into().context("XDP link is not a bpf_link")?;
        fd.pin(pin)
            .with_context(|| format!("pinning link at {}", pin.display()))?;
        Ok(mode)
    }
}

/// Attaches `prog` at TC ingress of `iface` (in the calling thread's netns)
/// as a TCX link, and pins the link at `pin`.
pub fn attach_tc(prog: &mut SchedClassifier, iface: &str, pin: &Path) -> Result<&'static str> {
    {
        let id = prog
            .attach(iface, TcAttachType::Ingress)
            .with_context(|| format!("attaching TC (tcx) to {iface}"))?;
        let link = prog.take_link(id)?;
        let fd: aya::programs::links::FdLink = link
            .try_into()
            .context("TC link is not a bpf_link (tcx needs Linux 6.6)")?;
        fd.pin(pin)
            .with_context(|| format!("pinning link at {}", pin.display()))?;
        Ok("tc")
    }
}

/// Maps opened from a deployment's pins (status, agent).
pub struct PinnedMaps {
    dir: PathBuf,
    open: std::collections::HashMap<String, Map>,
}

impl PinnedMaps {
    pub fn open(pin_dir: &Path) -> Result<Self> {
        let dir = pin_dir.join("maps");
        if !dir.is_dir() {
            bail!(
                "no pinned maps at {} (is the deployment up?)",
                dir.display()
            );
        }
        Ok(Self {
            dir,
            open: Default::default(),
        })
    }
}

impl Maps for PinnedMaps {
    fn map(&mut self, name: &str) -> Result<&mut Map> {
        if !self.open.contains_key(name) {
            let data = MapData::from_pin(self.dir.join(name))
                .with_context(|| format!("opening pinned map {name}"))?;
            let map = Map::from_map_data(data)?;
            self.open.insert(name.to_string(), map);
        }
        Ok(self.open.get_mut(name).expect("inserted"))
    }
}

/// Serializes changes to the shared parts of bpffs: the mount, and the
/// `vpc` directory every deployment pins under (created by `up`, removed
/// by the last `down`).
pub fn bpffs_lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(crate::paths::STATE_ROOT)?;
    let lock = std::fs::File::create(Path::new(crate::paths::STATE_ROOT).join(".bpffs.lock"))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking bpffs: {e}"))
}

/// Mounts bpffs at /sys/fs/bpf if it is not there (it is not on a fresh VM).
/// Check and mount happen under a lock: two `vpc up` racing on a fresh
/// machine would otherwise stack two bpffs instances, and the second would
/// hide the first one's pins.
pub fn ensure_bpffs() -> Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let mounted =
        || nix::sys::statfs::statfs(BPFFS).is_ok_and(|st| st.filesystem_type().0 == BPF_FS_MAGIC);
    if mounted() {
        return Ok(());
    }
    let _guard = bpffs_lock()?;
    if mounted() {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS)?;
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .context("mounting bpffs at /sys/fs/bpf")?;
    Ok(())
}

#[cfg(test)]
mod tests;
