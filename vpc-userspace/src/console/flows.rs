//! `/console/api/counters` and `/console/api/flows`: the datapath's
//! interface counters, connections and recent drops, read from the pins
//! (as the metrics are) and, for drops, from what this process's agent
//! recorded (`flowlogs::recent`).
use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use anyhow::Result;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use vpc_common::DropReason;

use super::{blocking_json, shown, Deployment};
use crate::{
    conntrack::Connection,
    datapath::{Maps, PinnedMaps},
    metrics::interface_counters,
    model::Model,
    state::State,
};

#[derive(Serialize)]
struct Interface {
    /// The topology's node id: an instance's, an execution environment's
    /// (`Fn`, `Fn.2`), or a Hyperplane ENI's id.
    node: String,
    eni: Option<String>,
    /// The router-side veth (none for a Hyperplane ENI: no port of its own).
    interface: Option<String>,
    forwarded: u64,
    dropped: u64,
    drops: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Counters {
    at_ms: u64,
    interfaces: Vec<Interface>,
    /// The router's drops by reason (those with any).
    drops: BTreeMap<&'static str, u64>,
}

fn counters_of(name: &str) -> Result<Counters> {
    let s = State::load(name)?;
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let totals = maps.counters()?;
    let veths: HashMap<&str, &str> = s
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.router_if.as_str()))
        .collect();
    let interfaces = interface_counters(&s, &mut maps)?
        .into_iter()
        .map(|c| {
            let interface = veths.get(c.node.as_str()).map(|v| v.to_string());
            // A Hyperplane ENI is named by its id (`hyperplane:<subnet>`
            // in the metrics).
            let node = if interface.is_none() && !c.eni.is_empty() {
                shown(&c.eni)
            } else {
                shown(&c.node)
            };
            Interface {
                node,
                eni: (!c.eni.is_empty()).then(|| shown(&c.eni)),
                interface,
                forwarded: c.forwarded,
                dropped: c.dropped,
                drops: c.drops,
            }
        })
        .collect();
    let drops = DropReason::ALL
        .iter()
        .map(|r| (r.name(), totals.dropped(*r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(Counters {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        interfaces,
        drops,
    })
}

pub async fn counters(axum::extract::State(name): Deployment) -> Response {
    blocking_json(move || counters_of(&name)).await
}

/// Which resource an address belongs to: an instance or network
/// interface (its id), a function (its name, for any of its execution
/// environments' addresses), a Hyperplane ENI (its id, for its own
/// address).
struct Owners(HashMap<IpAddr, String>);

impl Owners {
    fn of(m: &Model) -> Self {
        let mut by = HashMap::new();
        for e in &m.enis {
            let id = shown(&e.id);
            by.insert(IpAddr::V4(e.ip), id.clone());
            if let Some(a) = e.ip6 {
                by.insert(IpAddr::V6(a), id);
            }
        }
        for f in &m.functions {
            for env in f.envs() {
                by.insert(IpAddr::V4(env.ip), f.name.clone());
                if let Some(a) = env.ip6 {
                    by.insert(IpAddr::V6(a), f.name.clone());
                }
            }
        }
        for h in &m.hosts {
            let id = shown(&h.id);
            for a in h.ips() {
                by.insert(IpAddr::V4(a), id.clone());
            }
            if let Some(a) = h.ip6 {
                by.insert(IpAddr::V6(a), id.clone());
            }
        }
        Owners(by)
    }

    fn get(&self, a: &IpAddr) -> Option<String> {
        self.0.get(a).cloned()
    }

    /// The Hyperplane ENI among `addrs`, if one is.
    fn eni(&self, m: &Model, addrs: &[IpAddr]) -> Option<String> {
        addrs.iter().find_map(|a| {
            m.enis
                .iter()
                .find(|e| IpAddr::V4(e.ip) == *a || e.ip6.map(IpAddr::V6) == Some(*a))
                .map(|e| shown(&e.id))
        })
    }
}

#[derive(Serialize)]
struct Flow {
    #[serde(flatten)]
    connection: Connection,
    from: Option<String>,
    to: Option<String>,
}

#[derive(Serialize)]
struct RecordedDrop {
    first_s: u64,
    last_s: u64,
    reason: &'static str,
    why: &'static str,
    protocol: &'static str,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    packet_src: IpAddr,
    packet_dst: IpAddr,
    packets: u64,
    bytes: u64,
    from: Option<String>,
    to: Option<String>,
    eni: Option<String>,
}

#[derive(Serialize)]
struct Flows {
    /// The most recent matching connections, at most [`MAX_CONNECTIONS`].
    connections: Vec<Flow>,
    /// How many connections matched, and how many the table holds.
    connections_matched: usize,
    connections_total: usize,
    drops: Vec<RecordedDrop>,
}

/// Connections answered at most: the table holds up to millions, a page
/// shows a screenful, and the JSON of a million would take seconds.
pub const MAX_CONNECTIONS: usize = 1_000;

/// The flows view's filters (`?function=&eni=&address=&port=`), applied
/// here as the page applies them: a function's name or an ENI's id or an
/// address by substring (case-insensitive), a port exactly; empty ones
/// match everything.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    function: String,
    #[serde(default)]
    eni: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: String,
}

impl Filter {
    fn matches(
        &self,
        names: [Option<&str>; 2],
        eni: Option<&str>,
        addrs: &[IpAddr],
        ports: &[u16],
    ) -> bool {
        let has = |x: &str, q: &str| x.to_lowercase().contains(&q.trim().to_lowercase());
        let q = |s: &str| !s.trim().is_empty();
        (!q(&self.function) || names.iter().flatten().any(|n| has(n, &self.function)))
            && (!q(&self.eni) || eni.is_some_and(|e| has(e, &self.eni)))
            && (!q(&self.address) || addrs.iter().any(|a| has(&a.to_string(), &self.address)))
            && (!q(&self.port) || ports.iter().any(|p| p.to_string() == self.port.trim()))
    }
}

fn flows_of(name: &str, filter: &Filter) -> Result<Flows> {
    let s = State::load(name)?;
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let conns = maps.connections()?;
    let now = maps.datapath_now()?;
    let m = &s.model;
    let owners = Owners::of(m);
    let connections_total = conns.len();
    let mut connections: Vec<Flow> = crate::conntrack::rows(&conns, &s.timeouts, now, m)
        .into_iter()
        .map(|c| Flow {
            from: owners.get(&c.original.src),
            to: owners.get(&c.original.dst),
            connection: c,
        })
        .filter(|f| {
            let (o, r) = (&f.connection.original, &f.connection.reply);
            filter.matches(
                [f.from.as_deref(), f.to.as_deref()],
                f.connection.eni.as_deref(),
                &[o.src, o.dst, r.src, r.dst],
                &[o.sport, o.dport, r.sport, r.dport],
            )
        })
        .collect();
    let connections_matched = connections.len();
    connections.sort_by_key(|f| f.connection.age_s);
    connections.truncate(MAX_CONNECTIONS);
    let drops = crate::flowlogs::recent::snapshot(name)
        .into_iter()
        .map(|d| {
            let f = d.flow;
            let reason = DropReason::from_code(d.reason as u32);
            RecordedDrop {
                first_s: f.first,
                last_s: f.last,
                reason: reason.map_or("unknown", |r| r.name()),
                why: reason.map_or("", |r| r.why()),
                protocol: crate::conntrack::protocol_name(f.proto),
                src: f.src,
                sport: f.sport,
                dst: f.dst,
                dport: f.dport,
                packet_src: f.pkt_src,
                packet_dst: f.pkt_dst,
                packets: f.packets,
                bytes: f.bytes,
                // A function's flow leaves from its ENI: the environment's
                // address says whose it is.
                from: owners.get(&f.pkt_src).or_else(|| owners.get(&f.src)),
                to: owners.get(&f.dst).or_else(|| owners.get(&f.pkt_dst)),
                eni: owners.eni(m, &[f.src, f.dst]),
            }
        })
        .filter(|d| {
            filter.matches(
                [d.from.as_deref(), d.to.as_deref()],
                d.eni.as_deref(),
                &[d.src, d.dst, d.packet_src, d.packet_dst],
                &[d.sport, d.dport],
            )
        })
        .collect();
    Ok(Flows {
        connections,
        connections_matched,
        connections_total,
        drops,
    })
}

pub async fn flows(
    axum::extract::State(name): Deployment,
    filter: Result<axum::extract::Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = match filter {
        Ok(q) => q.0,
        Err(e) => return super::error(axum::http::StatusCode::BAD_REQUEST, &e.to_string()),
    };
    blocking_json(move || flows_of(&name, &filter)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_match_as_the_page_does() {
        let f = |function: &str, eni: &str, address: &str, port: &str| Filter {
            function: function.into(),
            eni: eni.into(),
            address: address.into(),
            port: port.into(),
        };
        let a: IpAddr = "10.0.1.10".parse().unwrap();
        let row = |f: &Filter| {
            f.matches(
                [Some("orders"), Some("Db")],
                Some("eni-0abc"),
                &[a],
                &[5432],
            )
        };
        assert!(row(&Filter::default()));
        assert!(row(&f("ORD", "", "", "")));
        assert!(row(&f("", "0ab", "10.0.1.", "5432")));
        assert!(!row(&f("reports", "", "", "")));
        assert!(!row(&f("", "eni-9", "", "")));
        assert!(!row(&f("", "", "10.0.2.", "")));
        // A port is a port, not a prefix of one.
        assert!(!row(&f("", "", "", "543")));
        assert!(!f("", "eni", "", "").matches([None, None], None, &[a], &[1]));
    }
}
