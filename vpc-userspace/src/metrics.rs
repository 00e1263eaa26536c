//! The agent's metrics endpoint: `GET /metrics` (OpenMetrics text, which
//! Prometheus scrapes), on loopback unless asked otherwise. Values are read
//! from the pinned maps at each scrape; the datapath's per-CPU counters are
//! summed here. `prometheus-client` does the encoding, `tiny_http` serves.
use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    datapath::{Maps, PinnedMaps},
    deploy::{Lifecycle, State},
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

/// Serves `GET /metrics` for `name` on `addr` until `stop`; returns the
/// address bound (port 0 picks a free one) once it listens.
pub fn serve(
    name: &str,
    addr: &str,
    stop: &AtomicBool,
    bound: impl FnOnce(SocketAddr) -> Result<()>,
) -> Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("metrics endpoint on {addr}: {e}"))?;
    let local = server
        .server_addr()
        .to_ip()
        .context("metrics endpoint: not an IP socket")?;
    bound(local)?;
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let resp = if req.url() == "/metrics" {
            match render(name) {
                Ok(body) => tiny_http::Response::from_string(body).with_header(
                    "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"
                        .parse::<tiny_http::Header>()
                        .expect("static header"),
                ),
                Err(e) => {
                    tiny_http::Response::from_string(format!("{e:#}\n")).with_status_code(500)
                }
            }
        } else {
            tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
        };
        let _ = req.respond(resp);
    }
    Ok(())
}
