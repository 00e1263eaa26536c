//! What users push through the router: traffic from sockets in the
//! namespaces, measured with the user's own tools (iperf3) and with plain
//! sockets for what iperf3 does not measure (request/response latency, and
//! new connections per second in [`connections`]).
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::connections::{self, ConnectionRate, Probe};
use crate::topology::{self, in_netns};

/// One client namespace, one server namespace, one server address and port
/// (TCP and UDP: the path must allow both).
pub struct Pair<'a> {
    pub client_ns: &'a str,
    pub server_ns: &'a str,
    pub server: Ipv4Addr,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct SocketResult {
    pub path: String,
    pub gbps_1_stream: f64,
    pub gbps_4_streams: f64,
    /// 64-byte frames (22 bytes of UDP payload) from one iperf3 socket:
    /// sent, and received by the server's socket.
    pub udp64_kpps_sent: f64,
    pub udp64_kpps_received: f64,
    /// One TCP connection, one byte each way, `TCP_NODELAY`.
    pub rr_p50_us: f64,
    pub rr_p99_us: f64,
    /// `connections.per_second`.
    pub connections_per_second: f64,
    pub connections: ConnectionRate,
}

/// Every socket measurement, `secs` seconds each; `probe` reads the path's
/// counters around the new connections.
pub fn measure(path: &str, p: &Pair, secs: u64, probe: Probe) -> Result<SocketResult> {
    let tcp =
        |streams| iperf_tcp(p, streams, secs).with_context(|| format!("{path}: TCP x{streams}"));
    let (sent, received) = iperf_udp64(p, secs).with_context(|| format!("{path}: UDP"))?;
    let (p50, p99) =
        request_response(p, secs).with_context(|| format!("{path}: request/response"))?;
    let (gbps_1_stream, gbps_4_streams) = (tcp(1)?, tcp(4)?);
    let connections =
        connections::measure(p, secs, probe).with_context(|| format!("{path}: connections"))?;
    Ok(SocketResult {
        path: path.into(),
        gbps_1_stream,
        gbps_4_streams,
        udp64_kpps_sent: sent,
        udp64_kpps_received: received,
        rr_p50_us: p50,
        rr_p99_us: p99,
        connections_per_second: connections.per_second,
        connections,
    })
}

/// An iperf3 server for one test, killed however the test ends.
struct Iperf3Server(Child);

impl Iperf3Server {
    fn start(p: &Pair) -> Result<Self> {
        let child = Command::new("ip")
            .args(["netns", "exec", p.server_ns, "iperf3", "-s", "-1", "-p"])
            .arg(p.port.to_string())
            .arg("-B")
            .arg(p.server.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("iperf3 (is it installed?)")?;
        let server = Self(child);
        // Listening before the client starts: no race with its start-up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let filter = format!("sport = :{}", p.port);
        loop {
            let out = topology::run(
                "ip",
                &["netns", "exec", p.server_ns, "ss", "-Hltn", &filter],
            )?;
            if !out.trim().is_empty() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "iperf3 -s did not listen on {}:{} within 10 s",
                    p.server,
                    p.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn iperf_client(p: &Pair, extra: &[&str], secs: u64) -> Result<serde_json::Value> {
    let _server = Iperf3Server::start(p)?;
    let (server, port, secs) = (p.server.to_string(), p.port.to_string(), secs.to_string());
    let mut args = vec![
        "netns",
        "exec",
        p.client_ns,
        "iperf3",
        "-c",
        &server,
        "-p",
        &port,
        "-t",
        &secs,
        "-J",
    ];
    args.extend_from_slice(extra);
    let out = topology::run("ip", &args)?;
    serde_json::from_str(&out).context("iperf3 JSON")
}

/// Bulk TCP; Gbit/s received.
fn iperf_tcp(p: &Pair, streams: u32, secs: u64) -> Result<f64> {
    let streams = streams.to_string();
    let v = iperf_client(p, &["-P", &streams], secs)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3: no sum_received")?;
    Ok(bps / 1e9)
}

/// UDP payload that makes a 64-byte frame (without FCS: 14 + 20 + 8 + 22).
const UDP64_PAYLOAD: u64 = 22;

/// 64-byte UDP frames as fast as one socket sends them; kpps sent and
/// received (iperf3's receiver counts what its socket read).
fn iperf_udp64(p: &Pair, secs: u64) -> Result<(f64, f64)> {
    let len = UDP64_PAYLOAD.to_string();
    let v = iperf_client(p, &["-u", "-b", "0", "-l", &len], secs)?;
    let rate = |k: &str| -> Result<f64> {
        let s = &v["end"][k];
        let bytes = s["bytes"].as_f64().context("iperf3: no bytes")?;
        let seconds = s["seconds"].as_f64().context("iperf3: no seconds")?;
        Ok(bytes / UDP64_PAYLOAD as f64 / seconds.max(1e-9) / 1e3)
    };
    Ok((rate("sum_sent")?, rate("sum_received")?))
}

/// A server in `ns` answering every byte with itself, one connection at a
/// time, until the returned flag is set.
fn echo_server(p: &Pair) -> Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let addr = SocketAddr::from((p.server, p.port));
    let listener = in_netns(p.server_ns, || Ok(TcpListener::bind(addr)?))?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_nodelay(true);
                    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut b = [0u8; 1];
                    while !s2.load(Ordering::Relaxed) {
                        match c.read(&mut b) {
                            Ok(1) => {
                                if c.write_all(&b).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => break,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    Ok((stop, h))
}

fn with_echo_server<T: Send>(p: &Pair, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let (stop, h) = echo_server(p)?;
    let r = in_netns(p.client_ns, f);
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    r
}

/// One connection, one byte there and back, for `secs` seconds: p50 and p99
/// of the round trips, in µs.
fn request_response(p: &Pair, secs: u64) -> Result<(f64, f64)> {
    let addr = SocketAddr::from((p.server, p.port));
    let mut v = with_echo_server(p, || {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        c.set_nodelay(true)?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut v = vec![];
        let start = Instant::now();
        let mut b = [7u8; 1];
        while start.elapsed() < Duration::from_secs(secs) {
            let t = Instant::now();
            c.write_all(&b)?;
            c.read_exact(&mut b)?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(v)
    })?;
    if v.is_empty() {
        bail!("no round trip completed");
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    Ok((at(0.50), at(0.99)))
}
