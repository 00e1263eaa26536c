//! The agent's metrics endpoint: `GET /metrics` (OpenMetrics text, which
//! Prometheus scrapes), on loopback unless asked otherwise. Values are read
//! from the pinned maps at each scrape; the datapath's per-CPU counters are
//! summed here. `prometheus-client` does the encoding, axum serves, as
//! a task of the agent's runtime.
use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use vpc_common::map_names;

use crate::{
    datapath::{Maps, PinnedMaps},
    state::{Lifecycle, State},
};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The metrics of deployment `name`, now.
pub fn render(name: &str) -> Result<String> {
    let s = State::load(name)?;
    let lc = Lifecycle::load(name).unwrap_or_default();
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let c = maps.counters()?;
    let conns = maps.connections()?;
    let mut reg = Registry::with_prefix("vpc");

    let fwd = Counter::<u64>::default();
    fwd.inc_by(c.forwarded);
    reg.register("packets_forwarded", "Packets the router forwarded", fwd);
    let dropped = Family::<Labels, Counter>::default();
    for (reason, n) in &c.dropped {
        dropped
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(*n);
    }
    reg.register(
        "packets_dropped",
        "Packets the router dropped, by reason (fail closed: every drop has one)",
        dropped,
    );

    let tracked = Gauge::<i64>::default();
    tracked.set(conns.len() as i64);
    reg.register(
        "conntrack_connections",
        "Tracked connections (two conntrack entries each)",
        tracked,
    );
    let capacity = Gauge::<i64>::default();
    capacity.set(i64::from(s.conntrack_max / 2));
    reg.register(
        "conntrack_capacity_connections",
        "Connections the conntrack table holds when full",
        capacity,
    );
    let gc = Counter::<u64>::default();
    gc.inc_by(lc.gc_removed);
    reg.register(
        "conntrack_gc_removed",
        "Expired connections the agent removed",
        gc,
    );

    let per_eni = Family::<Labels, Gauge>::default();
    for e in &s.model.enis {
        let addr = vpc_common::v4_mapped(e.ip.octets());
        let addr6 = e.ip6.map(|a| a.octets());
        let n = conns
            .iter()
            .filter(|(_, c)| {
                c.flags & vpc_common::CT_F_SNAT != 0
                    && (c.nat_addr == addr || Some(c.nat_addr) == addr6)
            })
            .count();
        per_eni
            .get_or_create(&labels(&[("eni", &e.id), ("subnet", &e.subnet)]))
            .set(n as i64);
    }
    reg.register(
        "eni_connections",
        "Connections translated to each Hyperplane ENI",
        per_eni,
    );

    let fl = crate::flowlogs::agent::stats(&mut maps)?;
    let events = Counter::<u64>::default();
    events.inc_by(fl.events);
    reg.register(
        "flow_log_events",
        "Flow-log events the datapath sent (one per rejected flow and window)",
        events,
    );
    let lost = Counter::<u64>::default();
    lost.inc_by(fl.events_lost);
    reg.register(
        "flow_log_events_lost",
        "Flow-log events lost to a full ring buffer (their windows carry SKIPDATA records)",
        lost,
    );

    let ports = Family::<Labels, Counter>::default();
    let port_drops = Family::<Labels, Counter>::default();
    let through = Family::<Labels, Counter>::default();
    let ct_exceeded = Family::<Labels, Counter>::default();
    let ll_exceeded = Family::<Labels, Counter>::default();
    let available = Family::<Labels, Gauge>::default();
    let allowance = i64::from(maps.conntrack_allowance().unwrap_or(0));
    for c in interface_counters(&s, &mut maps)? {
        if c.node.starts_with("hyperplane:") {
            through
                .get_or_create(&labels(&[("eni", &c.eni)]))
                .inc_by(c.forwarded);
            continue;
        }
        let who = labels(&[("node", &c.node), ("eni", &c.eni)]);
        let a = c.allowances;
        ct_exceeded
            .get_or_create(&who)
            .inc_by(a.conntrack_allowance_exceeded);
        ll_exceeded
            .get_or_create(&who)
            .inc_by(a.linklocal_allowance_exceeded);
        if allowance > 0 {
            available
                .get_or_create(&who)
                .set((allowance - a.connections).max(0));
        }
        for (verdict, n) in [("forwarded", c.forwarded), ("dropped", c.dropped)] {
            ports
                .get_or_create(&labels(&[
                    ("node", &c.node),
                    ("eni", &c.eni),
                    ("verdict", verdict),
                ]))
                .inc_by(n);
        }
        for (reason, n) in &c.drops {
            port_drops
                .get_or_create(&labels(&[
                    ("node", &c.node),
                    ("eni", &c.eni),
                    ("reason", reason),
                ]))
                .inc_by(*n);
        }
    }
    reg.register(
        "interface_drops",
        "Packets dropped by the interface they arrived on, by reason (they sum to its dropped packets)",
        port_drops,
    );
    reg.register(
        "interface_packets",
        "Packets by the interface they arrived on (a host's ENI, or an execution environment), forwarded or dropped",
        ports,
    );
    reg.register(
        "eni_packets_forwarded",
        "Packets forwarded through each Hyperplane ENI, both directions",
        through,
    );
    reg.register(
        "conntrack_allowance_exceeded",
        "New connections an interface opened past its conntrack allowance, dropped (AWS's ENA statistic of that name)",
        ct_exceeded,
    );
    reg.register(
        "linklocal_allowance_exceeded",
        "Packets an interface sent to the VPC resolver past its 1,024 per second, dropped (AWS's ENA statistic of that name)",
        ll_exceeded,
    );
    reg.register(
        "conntrack_allowance_available",
        "Connections an interface may still open before its conntrack allowance (AWS's ENA statistic of that name)",
        available,
    );

    let nat = maps.nat_stats()?;
    let failures = Counter::<u64>::default();
    failures.inc_by(nat.failed);
    reg.register(
        "nat_allocation_failures",
        "New function connections dropped: every ENI of the group full (nat_port_exhausted)",
        failures,
    );
    let allocations = Family::<Labels, Counter>::default();
    for (probes, n) in &nat.probe_histogram {
        allocations
            .get_or_create(&labels(&[("probes", probes)]))
            .inc_by(*n);
    }
    reg.register(
        "nat_allocations",
        "NAT port allocations by the number of ports probed (more than 1: retries)",
        allocations,
    );
    let retries = Counter::<u64>::default();
    retries.inc_by(
        nat.probe_histogram
            .iter()
            .skip(1)
            .map(|(_, n)| n)
            .sum::<u64>(),
    );
    reg.register(
        "nat_allocation_retries",
        "NAT port allocations that needed more than one probe",
        retries,
    );

    let entries = Family::<Labels, Gauge>::default();
    let capacity = Family::<Labels, Gauge>::default();
    for m in occupancy(&s, &mut maps)? {
        entries
            .get_or_create(&labels(&[("map", &m.map)]))
            .set(m.entries as i64);
        capacity
            .get_or_create(&labels(&[("map", &m.map)]))
            .set(m.max_entries as i64);
    }
    reg.register(
        "map_entries",
        "Entries in the datapath's hash maps",
        entries,
    );
    reg.register(
        "map_max_entries",
        "Capacity of the datapath's hash maps",
        capacity,
    );

    if let Some(secs) = crate::state::last_apply_seconds(name) {
        let apply = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        apply.set(secs);
        reg.register(
            "apply_latency_seconds",
            "How long the last policy change (vpc apply, vpc sg) took to be in force",
            apply,
        );
    }

    let functions = Family::<Labels, Gauge>::default();
    for (id, st) in &lc.functions {
        functions
            .get_or_create(&labels(&[("function", id), ("state", &st.state)]))
            .set(1);
    }
    reg.register(
        "function_state",
        "1 for each function's current state (Pending, Active, ...)",
        functions,
    );

    let mut out = String::new();
    encode(&mut out, &reg).context("encoding metrics")?;
    Ok(out)
}

/// Packets by the interface they arrived on, and through each Hyperplane ENI.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InterfaceCounters {
    /// The node behind the router port (a host, or a function's execution
    /// environment), or the Hyperplane ENI's id.
    pub node: String,
    /// The interface's ENI id (hosts and Hyperplane ENIs; empty for an
    /// execution environment, which is on the Lambda side).
    pub eni: String,
    pub forwarded: u64,
    /// Dropped on arrival (every reason); none for a Hyperplane ENI.
    pub dropped: u64,
    /// `dropped` by reason (`DropReason::name`; a code the datapath knows
    /// and this build does not: `reason_N`), the reasons seen only.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// Its allowances (router ports only): connections it has tracked,
    /// drops past its conntrack and linklocal allowances.
    #[serde(default)]
    pub allowances: crate::datapath::PortAllowances,
}

/// Per-CPU port and ENI counters, summed: router ports first (by node),
/// then Hyperplane ENIs (forwarded both ways).
pub fn interface_counters(s: &State, maps: &mut PinnedMaps) -> Result<Vec<InterfaceCounters>> {
    use aya::maps::PerCpuArray;
    // None in a deployment pinned by a version without them.
    let mut drops = port_drops(maps).unwrap_or_default();
    let mut out = vec![];
    {
        let a: PerCpuArray<_, u64> = PerCpuArray::try_from(maps.map(map_names::PORT_STATS)?)?;
        let sum = |i: u32| -> Result<u64> { Ok(a.get(&i, 0)?.iter().sum()) };
        for n in &s.nodes {
            let ifindex = n.link.ifindex;
            let eni = if s.model.hosts.iter().any(|h| h.id == n.id) {
                crate::model::flowlog::host_eni_id(&s.model.stack_name, &n.id)
            } else {
                String::new()
            };
            out.push(InterfaceCounters {
                node: n.id.clone(),
                eni,
                forwarded: sum(vpc_common::port_stat_index(ifindex, false))?,
                dropped: sum(vpc_common::port_stat_index(ifindex, true))?,
                drops: drops
                    .remove(&vpc_common::port_slot(ifindex))
                    .unwrap_or_default(),
                allowances: Default::default(),
            });
        }
    }
    for (c, n) in out.iter_mut().zip(&s.nodes) {
        // None in a deployment pinned by a version without allowances.
        c.allowances = maps.port_allowances(n.link.ifindex).unwrap_or_default();
    }
    let a: PerCpuArray<_, u64> = PerCpuArray::try_from(maps.map(map_names::ENI_STATS)?)?;
    for e in &s.model.enis {
        out.push(InterfaceCounters {
            node: format!("hyperplane:{}", e.subnet),
            eni: e.id.clone(),
            forwarded: a.get(&e.index, 0)?.iter().sum(),
            dropped: 0,
            drops: BTreeMap::new(),
            allowances: Default::default(),
        });
    }
    Ok(out)
}

/// `PORT_DROPS` summed over CPUs: port slot -> reason name -> packets.
fn port_drops(maps: &mut PinnedMaps) -> Result<HashMap<u32, BTreeMap<String, u64>>> {
    use aya::maps::PerCpuHashMap;
    let m: PerCpuHashMap<_, u32, u64> = PerCpuHashMap::try_from(maps.map(map_names::PORT_DROPS)?)?;
    let mut out: HashMap<u32, BTreeMap<String, u64>> = HashMap::new();
    for (k, per_cpu) in m.iter().filter_map(|r| r.ok()) {
        let code = k & 0xff;
        let reason = vpc_common::DropReason::from_code(code)
            .map_or_else(|| format!("reason_{code}"), |r| r.name().to_string());
        *out.entry(k >> 8).or_default().entry(reason).or_default() += per_cpu.iter().sum::<u64>();
    }
    Ok(out)
}

/// One hash map's occupancy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Occupancy {
    pub map: String,
    pub entries: u64,
    pub max_entries: u64,
}

/// Occupancy of the maps that fill with traffic or topology: entries
/// counted key by key, capacity from the kernel's map info.
pub fn occupancy(s: &State, maps: &mut PinnedMaps) -> Result<Vec<Occupancy>> {
    use aya::maps::{HashMap as BpfHashMap, MapData};
    use vpc_common::{AddrKey, CtEntry, CtKey, Endpoint, FlowRejectKey, FlowWindow, NatPortKey};
    fn count<K: aya::Pod, V: aya::Pod>(m: &mut aya::maps::Map) -> Result<u64> {
        let h: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(m)?;
        Ok(h.keys().filter(|k| k.is_ok()).count() as u64)
    }
    let mut out = vec![];
    for map in [
        map_names::CT,
        map_names::NAT_PORTS,
        map_names::FL_REJECTS,
        map_names::ENDPOINTS,
    ] {
        let entries = match map {
            map_names::CT => count::<CtKey, CtEntry>(maps.map(map)?)?,
            map_names::NAT_PORTS => count::<NatPortKey, CtKey>(maps.map(map)?)?,
            map_names::FL_REJECTS => count::<FlowRejectKey, FlowWindow>(maps.map(map)?)?,
            _ => count::<AddrKey, Endpoint>(maps.map(map)?)?,
        };
        let info = aya::maps::MapInfo::from_pin(s.pin_dir.join("maps").join(map))
            .with_context(|| format!("map {map}"))?;
        out.push(Occupancy {
            map: map.to_string(),
            entries,
            max_entries: info.max_entries() as u64,
        });
    }
    Ok(out)
}

/// Binds the metrics endpoint to `addr` (port 0 picks a free port). In the
/// agent's runtime.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics endpoint on {addr}"))
}

/// Serves `GET /metrics` for `name` on `listener` until `shutdown` turns
/// true (or its sender is gone). Each scrape reads the maps on the blocking
/// pool; anything else is 404.
pub async fn serve(
    name: &str,
    listener: tokio::net::TcpListener,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    use axum::{
        http::{header, StatusCode},
        response::IntoResponse,
        routing::get,
    };
    let name: std::sync::Arc<str> = name.into();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                match tokio::task::spawn_blocking(move || render(&name)).await {
                    Ok(Ok(body)) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                        .into_response(),
                    Ok(Err(e)) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
                    }
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: try /metrics\n") });
    let mut shutdown = shutdown;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .context("metrics endpoint")
}
