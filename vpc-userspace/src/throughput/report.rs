//! The throughput report: ratios between paths, figures bound by the
//! method, a Markdown table and an SVG.
use serde::Serialize;
use vpc_common::DropReason;

use super::{connections::NAT_PORTS_ALLOCATED, Report, PATHS};

/// A figure within this fraction of `direct`'s (the method's own ceiling)
/// measures the method, not the path.
const BOUND: f64 = 0.8;

/// One ratio of the report: `path` against `against` for `metric`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metric: String,
    pub path: String,
    pub against: String,
    /// `path / against` for rates; `against / path` for latencies, so that
    /// above 1 is always better for `path`.
    pub ratio: Option<f64>,
    /// What the ratio says, given the figures at the method's ceiling.
    pub kind: RatioKind,
    /// The paths whose figure is within 20 % of the method's ceiling.
    pub bound_by_method: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// Neither figure is near the ceiling: the ratio is the paths'.
    Measured,
    /// `path` is at the ceiling: it could do better, the ratio is a floor.
    AtLeast,
    /// `against` is at the ceiling: the ratio is a cap.
    AtMost,
    /// Both are: the ratio compares the method with itself.
    Meaningless,
}

/// A path's figure for one metric.
type Figure = Box<dyn Fn(&Report, &str) -> Option<f64>>;
/// (metric, higher is better, figure of a path).
type Metric = (&'static str, bool, Figure);

fn metrics() -> Vec<Metric> {
    let circ = |flows: u32| -> Figure {
        Box::new(move |r: &Report, p: &str| {
            r.circulating
                .iter()
                .find(|x| x.path == p && x.flows == flows)
                .map(|x| x.mpps_median)
        })
    };
    let sock = |f: fn(&super::SocketResult) -> f64| -> Figure {
        Box::new(move |r: &Report, p: &str| r.sockets.iter().find(|x| x.path == p).map(f))
    };
    vec![
        ("circulating Mpps, 1 flow", true, circ(1)),
        ("circulating Mpps, 1,024 flows", true, circ(1024)),
        ("TCP Gbit/s, 1 stream", true, sock(|s| s.gbps_1_stream)),
        ("TCP Gbit/s, 4 streams", true, sock(|s| s.gbps_4_streams)),
        (
            "UDP-64 kpps received",
            true,
            sock(|s| s.udp64_kpps_received),
        ),
        ("request/response p50 µs", false, sock(|s| s.rr_p50_us)),
        ("request/response p99 µs", false, sock(|s| s.rr_p99_us)),
        ("connections/s", true, sock(|s| s.connections_per_second)),
    ]
}

/// Whether `v` (of a path) is within 20 % of the ceiling `c` (`direct`).
fn bound(v: f64, c: f64, higher_better: bool) -> bool {
    if higher_better {
        v >= BOUND * c
    } else {
        v <= c / BOUND
    }
}

/// The router at each hook against nftables and against the limit.
pub fn comparisons(r: &Report) -> Vec<Comparison> {
    let mut out = vec![];
    for (metric, higher, f) in metrics() {
        let ceiling = f(r, "direct");
        for path in ["vpc-tc", "vpc-xdp", "vpc-flowlogs"] {
            for against in ["nftables", "limit"] {
                let (Some(a), Some(b)) = (f(r, path), f(r, against)) else {
                    continue;
                };
                let bound_by_method: Vec<String> = [(path, a), (against, b)]
                    .iter()
                    .filter(|(_, v)| ceiling.is_some_and(|c| bound(*v, c, higher)))
                    .map(|(p, _)| p.to_string())
                    .collect();
                let ratio = (a > 0.0 && b > 0.0).then(|| if higher { a / b } else { b / a });
                let kind = match (
                    bound_by_method.iter().any(|p| p == path),
                    bound_by_method.iter().any(|p| p == against),
                ) {
                    (false, false) => RatioKind::Measured,
                    (true, false) => RatioKind::AtLeast,
                    (false, true) => RatioKind::AtMost,
                    (true, true) => RatioKind::Meaningless,
                };
                out.push(Comparison {
                    metric: metric.into(),
                    path: path.into(),
                    against: against.into(),
                    ratio,
                    kind,
                    bound_by_method,
                });
            }
        }
    }
    out
}

pub fn table(r: &Report) -> String {
    let mut s = format!(
        "Kernel {}, {} CPUs. Circulating frames: {} x 64-byte UDP frames in flight, {} samples of {:.1} s (median passes through the path per second, both directions, one core); sockets: {} s each.\n\n",
        r.kernel, r.cpus, r.in_flight, r.samples, r.sample_seconds, r.socket_seconds
    );
    s += "| path | circulating Mpps, 1 flow | 1,024 flows | lost | TCP Gbit/s, 1 stream | 4 streams | UDP-64 kpps sent | received | RR p50 µs | p99 µs | connections/s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for path in PATHS {
        let c = |f: u32| {
            r.circulating
                .iter()
                .find(|x| x.path == path && x.flows == f)
        };
        let mpps = |f: u32| c(f).map_or("-".into(), |x| format!("{:.2}", x.mpps_median));
        let lost: u32 = [1, 1024].iter().filter_map(|f| c(*f)).map(|x| x.lost).sum();
        let Some(t) = r.sockets.iter().find(|x| x.path == path) else {
            continue;
        };
        s += &format!(
            "| {path} | {} | {} | {lost} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            mpps(1),
            mpps(1024),
            t.gbps_1_stream,
            t.gbps_4_streams,
            t.udp64_kpps_sent,
            t.udp64_kpps_received,
            t.rr_p50_us,
            t.rr_p99_us,
            t.connections_per_second
        );
    }
    s += "\nRatios (above 1: the first path is better; \"at the ceiling\": within 20 % of `direct`, the method's own limit, so the figure measures the method):\n\n| metric | vpc-tc / nftables | vpc-xdp / nftables | vpc-flowlogs / nftables | vpc-tc / limit | vpc-xdp / limit |\n|---|---|---|---|---|---|\n";
    for (metric, _, _) in metrics() {
        let cell = |path: &str, against: &str| {
            r.comparisons
                .iter()
                .find(|c| c.metric == metric && c.path == path && c.against == against)
                .map_or("-".into(), |c| {
                    let x = c.ratio.map_or("-".into(), |x| format!("{x:.2}"));
                    let who = c.bound_by_method.join(", ");
                    match c.kind {
                        RatioKind::Measured => x,
                        RatioKind::AtLeast => format!("≥ {x} ({who} at the ceiling)"),
                        RatioKind::AtMost => format!("≤ {x} ({who} at the ceiling)"),
                        RatioKind::Meaningless => format!("none: {who} at the ceiling"),
                    }
                })
        };
        s += &format!(
            "| {metric} | {} | {} | {} | {} | {} |\n",
            cell("vpc-tc", "nftables"),
            cell("vpc-xdp", "nftables"),
            cell("vpc-flowlogs", "nftables"),
            cell("vpc-tc", "limit"),
            cell("vpc-xdp", "limit"),
        );
    }
    s += &connections_table(r);
    s
}

/// What stopped a path's new connections, in words, from what was counted
/// in the window: a pool that ran dry (the ENI's NAT ports, the execution
/// environment's conntrack allowance, the client's ports), else the
/// method's ceiling, else the CPUs.
pub fn connection_bound(r: &Report, path: &str) -> String {
    let Some(t) = r.sockets.iter().find(|x| x.path == path) else {
        return "-".into();
    };
    let c = &t.connections;
    let n = |k: &str| c.counters.get(k).copied().unwrap_or(0);
    let cpu = format!(
        "{:.0} µs of CPU per connection ({:.0} % in the kernel), {:.0}/s on {} cores; the machine {:.0} % busy, {:.0} % softirq",
        c.cpu_us_per_connection,
        c.cpu_system_share * 100.0,
        c.cpu_ceiling_per_second,
        r.cpus,
        c.cpu_busy * 100.0,
        c.cpu_softirq * 100.0
    );
    let exhausted = n(DropReason::NatPortExhausted.name());
    if exhausted > 0 {
        return format!(
            "the Hyperplane ENI's NAT ports: {} taken in the window, then {exhausted} SYNs dropped as nat_port_exhausted (64,512 per ENI and protocol, each held 60 s after its connection closes)",
            n(NAT_PORTS_ALLOCATED),
        );
    }
    for (k, what) in [
        (
            DropReason::ConntrackAllowanceExceeded.name(),
            "the execution environment's conntrack allowance",
        ),
        (DropReason::CtFull.name(), "the conntrack table"),
        ("nf_conntrack insert_failed", "nftables' conntrack inserts"),
        ("nf_conntrack drop", "nftables' conntrack table"),
    ] {
        if n(k) > 0 {
            return format!("{what}: {} dropped as {k}", n(k));
        }
    }
    if c.failed.no_local_port > 0 {
        return format!(
            "the client's ephemeral ports: {} connects found none",
            c.failed.no_local_port
        );
    }
    let direct = r.sockets.iter().find(|x| x.path == "direct");
    match direct {
        Some(d) if path != "direct" && bound(c.per_second, d.connections.per_second, true) => {
            format!("the method (within 20 % of direct); {cpu}")
        }
        _ => format!("CPU: {cpu}"),
    }
}

/// New connections per path: the rate, the best second, what failed, the
/// counters that moved, and the bound.
fn connections_table(r: &Report) -> String {
    let mut s = format!(
        "\nNew connections (connect, one byte each way, client closes; {} in flight, the client's namespace with {}):\n\n| path | connections/s | best second | completed | failed: refused / timed out / reset / no local port / other | CPU µs per connection | machine busy (softirq) | counters | bound |\n|---|---:|---:|---:|---|---:|---|---|---|\n",
        r.sockets.first().map_or(0, |t| t.connections.in_flight),
        super::connections::CLIENT_SYSCTLS.join(", ")
    );
    for path in PATHS {
        let Some(t) = r.sockets.iter().find(|x| x.path == path) else {
            continue;
        };
        let c = &t.connections;
        let f = &c.failed;
        let counters: Vec<String> = c.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s += &format!(
            "| {path} | {:.0} | {:.0} | {} | {} / {} / {} / {} / {} | {:.0} | {:.0} % ({:.0} %) | {} | {} |\n",
            c.per_second,
            c.peak_per_second,
            c.completed,
            f.refused,
            f.timed_out,
            f.reset,
            f.no_local_port,
            f.other,
            c.cpu_us_per_connection,
            c.cpu_busy * 100.0,
            c.cpu_softirq * 100.0,
            counters.join(", "),
            connection_bound(r, path)
        );
    }
    s
}

/// One panel of grouped bars: a group per path, a bar per series.
fn bar_panel(
    x0: f64,
    title: &str,
    paths: &[&str],
    series: &[(&str, &str)],
    value: impl Fn(&str, usize) -> f64,
) -> String {
    let (w, h, top, bottom, left) = (430.0, 360.0, 40.0, 60.0, 45.0);
    let ymax = paths
        .iter()
        .flat_map(|p| (0..series.len()).map(|i| value(p, i)))
        .fold(1e-9, f64::max)
        * 1.15;
    let y = |v: f64| h - bottom - (h - bottom - top) * v / ymax;
    let mut s = format!(
        "<text x=\"{}\" y=\"22\" font-size=\"14\">{title}</text>\n",
        x0 + left
    );
    let (ax, right) = (x0 + left, x0 + w - 10.0);
    s += &format!(
        "<line x1=\"{ax}\" y1=\"{}\" x2=\"{right}\" y2=\"{}\" stroke=\"black\"/>\n",
        y(0.0),
        y(0.0)
    );
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text><line x1=\"{ax}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\" stroke=\"#ddd\"/>\n", ax - 5.0, y(v) + 4.0, py = y(v));
    }
    let group_w = (right - ax) / paths.len() as f64;
    let bar_w = group_w * 0.8 / series.len() as f64;
    for (g, p) in paths.iter().enumerate() {
        let gx = ax + group_w * g as f64 + group_w * 0.1;
        for (i, (_, color)) in series.iter().enumerate() {
            let v = value(p, i);
            let bx = gx + bar_w * i as f64;
            s += &format!("<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.1}</text>\n", y(v), bar_w - 2.0, y(0.0) - y(v), bx + bar_w / 2.0, y(v) - 3.0);
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{p}</text>\n",
            gx + group_w * 0.4,
            h - bottom + 16.0
        );
    }
    for (i, (name, color)) in series.iter().enumerate() {
        let lx = ax + 150.0 * i as f64;
        s += &format!("<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n", h - 22.0, lx + 16.0, h - 12.0);
    }
    s
}

/// The report as an SVG: circulating frames (Mpps) and bulk TCP (Gbit/s).
pub fn svg(r: &Report) -> String {
    let mpps = |p: &str, i: usize| {
        let flows = [1, 1024][i];
        r.circulating
            .iter()
            .find(|x| x.path == p && x.flows == flows)
            .map_or(0.0, |x| x.mpps_median)
    };
    let gbps = |p: &str, i: usize| {
        r.sockets
            .iter()
            .find(|t| t.path == p)
            .map_or(0.0, |t| [t.gbps_1_stream, t.gbps_4_streams][i])
    };
    let colors = ("#1f77b4", "#ff7f0e");
    let mut s = String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"360\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s += &bar_panel(
        0.0,
        "64-byte UDP, circulating frames (Mpps, one core)",
        &PATHS,
        &[("1 flow", colors.0), ("1,024 flows", colors.1)],
        mpps,
    );
    s += &bar_panel(
        430.0,
        "Bulk TCP from sockets, iperf3 (Gbit/s)",
        &PATHS,
        &[("1 stream", colors.0), ("4 streams", colors.1)],
        gbps,
    );
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throughput::{connections::Counts, ConnectionRate, SocketResult};

    fn path(path: &str, per_second: f64, counters: &[(&str, u64)], no_port: u64) -> SocketResult {
        let mut c = ConnectionRate {
            per_second,
            cpu_us_per_connection: 100.0,
            cpu_system_share: 0.8,
            cpu_ceiling_per_second: 20_000.0,
            cpu_busy: 0.97,
            cpu_softirq: 0.2,
            counters: counters
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Counts>(),
            ..Default::default()
        };
        c.failed.no_local_port = no_port;
        SocketResult {
            path: path.into(),
            gbps_1_stream: 1.0,
            gbps_4_streams: 1.0,
            udp64_kpps_sent: 1.0,
            udp64_kpps_received: 1.0,
            rr_p50_us: 1.0,
            rr_p99_us: 1.0,
            connections_per_second: per_second,
            connections: c,
        }
    }

    #[test]
    fn a_connection_bound_names_the_pool_that_ran_dry_first() {
        let r = Report {
            in_flight: 1,
            samples: 1,
            sample_seconds: 1.0,
            socket_seconds: 3,
            kernel: String::new(),
            cpus: 2,
            circulating: vec![],
            sockets: vec![
                path("direct", 30_000.0, &[], 0),
                path(
                    "vpc-tc",
                    20_000.0,
                    &[("nat_port_exhausted", 7), (NAT_PORTS_ALLOCATED, 64_512)],
                    0,
                ),
                path(
                    "vpc-xdp",
                    15_000.0,
                    &[("conntrack_allowance_exceeded", 3)],
                    0,
                ),
                path("limit", 28_000.0, &[], 0),
                path("nftables", 10_000.0, &[], 4),
            ],
            comparisons: vec![],
        };
        let b = |p: &str| connection_bound(&r, p);
        assert!(
            b("vpc-tc").starts_with("the Hyperplane ENI's NAT ports: 64512 taken"),
            "{}",
            b("vpc-tc")
        );
        assert!(b("vpc-xdp").starts_with("the execution environment's conntrack allowance: 3"));
        assert!(b("nftables").starts_with("the client's ephemeral ports: 4"));
        assert!(b("limit").starts_with("the method"));
        assert!(b("direct").starts_with(
            "CPU: 100 µs of CPU per connection (80 % in the kernel), 20000/s on 2 cores"
        ));
        assert_eq!(b("vpc-flowlogs"), "-");
        // The table gives every path's bound.
        assert!(table(&r).contains("| nftables | 10000 |"));
    }
}
