//! Connection-tracking idle timeouts, as `vpc up --timeout` sets them.
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vpc_common::cfg;

/// Connection-tracking idle timeouts. Defaults are AWS's where AWS documents
/// them; the handshake and closing ones are this project's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    /// SYN seen, handshake not complete (ours: 60 s).
    pub tcp_syn: Duration,
    /// AWS: 432,000 s (5 days), configurable 60-432,000.
    pub tcp_established: Duration,
    /// One side sent FIN (ours: 120 s).
    pub tcp_closing: Duration,
    /// Both FINs or an RST (ours: 60 s). A closed connection keeps its NAT
    /// port this long: its peer may hold the old tuple in TIME_WAIT (60 s
    /// on Linux and the BSDs), where a new connection on a reused port
    /// would meet PAWS and lose its SYN. At 10 s it did: a second burst of
    /// short connections fell from 3,326 to 83 per second.
    pub tcp_closed: Duration,
    /// AWS: 30 s for one-way or a single request/response.
    pub udp: Duration,
    /// AWS: 180 s once packets flowed both ways more than once.
    pub udp_stream: Duration,
    /// ICMP echo (AWS "other protocols": 600 s).
    pub icmp: Duration,
    /// Other protocols, tracked by address and protocol (AWS: 600 s).
    pub other: Duration,
    /// Any connection through a NAT gateway (AWS: 350 s).
    #[serde(default = "nat_gateway_idle")]
    pub nat_gateway_idle: Duration,
    /// Any connection to an interface endpoint (AWS: 350 s, PrivateLink's).
    #[serde(default = "nat_gateway_idle")]
    pub endpoint_idle: Duration,
}

/// AWS's idle timeout of NAT gateways and interface endpoints.
fn nat_gateway_idle() -> Duration {
    Duration::from_secs(350)
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_syn: Duration::from_secs(60),
            tcp_established: Duration::from_secs(432_000),
            tcp_closing: Duration::from_secs(120),
            tcp_closed: Duration::from_secs(60),
            udp: Duration::from_secs(30),
            udp_stream: Duration::from_secs(180),
            icmp: Duration::from_secs(600),
            other: Duration::from_secs(600),
            nat_gateway_idle: nat_gateway_idle(),
            endpoint_idle: nat_gateway_idle(),
        }
    }
}

impl Timeouts {
    pub fn by_index(&self) -> [(u32, Duration); 10] {
        [
            (cfg::TCP_SYN, self.tcp_syn),
            (cfg::TCP_ESTABLISHED, self.tcp_established),
            (cfg::TCP_CLOSING, self.tcp_closing),
            (cfg::TCP_CLOSED, self.tcp_closed),
            (cfg::UDP, self.udp),
            (cfg::UDP_STREAM, self.udp_stream),
            (cfg::ICMP, self.icmp),
            (cfg::OTHER, self.other),
            (cfg::NAT_GATEWAY_IDLE, self.nat_gateway_idle),
            (cfg::ENDPOINT_IDLE, self.endpoint_idle),
        ]
    }

    /// Sets one timeout by its CLI name (`tcp-established=60`).
    pub fn set(&mut self, spec: &str) -> Result<()> {
        let (k, v) = spec.split_once('=').context("expected NAME=SECONDS")?;
        let secs: f64 = v
            .parse()
            .with_context(|| format!("{v:?} is not a number of seconds"))?;
        if secs.is_nan() || secs <= 0.0 {
            bail!("timeout {k} must be positive");
        }
        let d = Duration::from_secs_f64(secs);
        match k {
            "tcp-syn" => self.tcp_syn = d,
            "tcp-established" => self.tcp_established = d,
            "tcp-closing" => self.tcp_closing = d,
            "tcp-closed" => self.tcp_closed = d,
            "udp" => self.udp = d,
            "udp-stream" => self.udp_stream = d,
            "icmp" => self.icmp = d,
            "other" => self.other = d,
            "nat-gateway-idle" => self.nat_gateway_idle = d,
            "endpoint-idle" => self.endpoint_idle = d,
            _ => bail!("unknown timeout {k:?} (tcp-syn, tcp-established, tcp-closing, tcp-closed, udp, udp-stream, icmp, other, nat-gateway-idle, endpoint-idle)"),
        }
        Ok(())
    }
}
