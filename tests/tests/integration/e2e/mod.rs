//! End to end: `vpc up` builds real namespaces and veths, attaches the XDP
//! router, and real sockets and `nc` send real packets through it. This
//! module holds the child processes, servers and clients the concepts'
//! modules share.
mod agent;
mod allowances;
mod connectivity;
mod deployment;
mod drops;
mod dual_stack;
mod eni_scaling;
mod icmp;
mod policy;

use std::{
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::process::CommandExt as _,
    sync::atomic::Ordering::Relaxed,
    time::Duration,
};

use vpc_tests::{spawn_in_netns, Deployment, Running};

/// A `vpc` child process in a process group of its own (with `ip netns
/// exec`, the shell and what it runs): killed whole if the test fails
/// before it ends. Inside, `timeout --foreground` keeps to that group.
struct Child(Option<std::process::Child>);

impl Child {
    fn spawn(d: &Deployment, args: &[&str]) -> Self {
        let c = std::process::Command::new(vpc_tests::vpc_bin())
            .arg("--name")
            .arg(&d.name)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Child(Some(c))
    }

    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // Not yet reaped: the group's id is still its own.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

/// A file under the temporary directory, removed on drop, pass or fail.
struct TempPath(std::path::PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers one datagram with "echo:" + its payload; returns the peer.
fn udp_echo_server(ns: &str, addr: &str) -> Running<Option<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let s = UdpSocket::bind(addr).unwrap();
        // Short waits, to see the stop flag.
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 1500];
        let (n, peer) = loop {
            match s.recv_from(&mut buf) {
                Ok(r) => break r,
                Err(_) if stop.load(Relaxed) => return None,
                Err(_) => {}
            }
        };
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        s.send_to(&reply, peer).unwrap();
        Some(peer)
    })
}

/// Sends `msg` to `to` from namespace `ns`; the reply and its source, if any
/// arrives within `secs`.
fn udp_request(ns: &str, to: &str, msg: &'static [u8], secs: u64) -> Option<(String, SocketAddr)> {
    let to: SocketAddr = to.parse().unwrap();
    spawn_in_netns(ns, move || {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = UdpSocket::bind(any).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        s.send_to(msg, to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = s.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    })
    .join()
    .unwrap()
}

/// Accepts connections on `addr` and holds them open until stopped (the
/// connections an ENI counts stay while the test looks); `stop` returns
/// every peer.
fn tcp_holder(ns: &str, addr: &str) -> Running<Vec<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let (mut peers, mut held) = (vec![], vec![]);
        loop {
            match l.accept() {
                Ok((s, peer)) => {
                    peers.push(peer);
                    held.push(s);
                }
                Err(_) if stop.load(Relaxed) => return peers,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

/// `n` TCP connections from a function's execution environment to `to`,
/// held open by the caller; those that did not open within `secs` are
/// missing (a dropped SYN is retried by TCP after 1 s).
fn open_connections(
    d: &Deployment,
    function: &str,
    to: &str,
    n: usize,
    secs: u64,
) -> Vec<TcpStream> {
    let to: SocketAddr = to.parse().unwrap();
    let ns = d.exec_env_netns(function);
    (0..n)
        .map(|_| {
            spawn_in_netns(&ns, move || {
                TcpStream::connect_timeout(&to, Duration::from_secs(secs)).ok()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect()
}

/// The links (link id, program id) of the deployment's router programs,
/// XDP and TC: the same ids after an agent restart mean nothing was
/// re-attached.
fn router_links(d: &Deployment) -> Vec<(u32, u32)> {
    let progs = vpc::deploy::pin_dir(&d.name).join("progs");
    let ids: Vec<u32> = [
        vpc::datapath::ROUTER_PROGRAM,
        vpc::datapath::ROUTER_TC_PROGRAM,
    ]
    .iter()
    .filter_map(|p| aya::programs::ProgramInfo::from_pin(progs.join(p)).ok())
    .map(|i| i.id())
    .collect();
    let mut links: Vec<(u32, u32)> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| ids.contains(&l.program_id()))
        .map(|l| (l.id(), l.program_id()))
        .collect();
    links.sort();
    links
}
