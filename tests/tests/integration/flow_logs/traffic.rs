//! Known flows between real sockets, counted independently by nftables.
use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use vpc_tests::spawn_in_netns;

/// Named nftables counters in a namespace: an independent count of what
/// the endpoints sent and received (packets, IP bytes).
pub(super) fn nft(ns: &str, script: &str) {
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "nft in {ns}");
}

pub(super) fn nft_counter(ns: &str, name: &str) -> (u64, u64) {
    let o = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", "fl", name,
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("counter"))
        .unwrap();
    (c["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap())
}

/// UDP: `n` datagrams of `size` bytes from `from_ns` to `to`, each echoed
/// by a server in `to_ns`. Returns the peer the server saw.
pub(super) fn udp_exchange(
    from_ns: &str,
    to_ns: &str,
    to: &str,
    n: usize,
    size: usize,
) -> SocketAddr {
    let to: SocketAddr = to.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = spawn_in_netns(to_ns, move || {
        let s = UdpSocket::bind(to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tx.send(()).unwrap();
        let mut peer = None;
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let (len, p) = s.recv_from(&mut buf).expect("datagram");
            s.send_to(&buf[..len], p).unwrap();
            peer = Some(p);
        }
        peer.unwrap()
    });
    rx.recv().unwrap();
    spawn_in_netns(from_ns, move || {
        let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .unwrap();
        let s = UdpSocket::bind(any).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msg = vec![7u8; size];
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            s.send_to(&msg, to).unwrap();
            let (len, _) = s.recv_from(&mut buf).expect("echo");
            assert_eq!(len, size);
        }
    })
    .join()
    .unwrap();
    server.join().unwrap()
}

/// TCP: connect, 50 bytes each way, both sides close with FIN. Returns the
/// peer the server saw.
pub(super) fn tcp_exchange(from_ns: &str, to_ns: &str, to: &str) -> SocketAddr {
    let to: SocketAddr = to.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = spawn_in_netns(to_ns, move || {
        let l = TcpListener::bind(to).unwrap();
        tx.send(()).unwrap();
        let (mut c, peer) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 50];
        c.read_exact(&mut buf).unwrap();
        c.write_all(&buf).unwrap();
        let mut rest = vec![];
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        peer
    });
    rx.recv().unwrap();
    spawn_in_netns(from_ns, move || {
        let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&[1u8; 50]).unwrap();
        let mut buf = [0u8; 50];
        c.read_exact(&mut buf).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = vec![];
        c.read_to_end(&mut rest).unwrap();
    })
    .join()
    .unwrap();
    let peer = server.join().unwrap();
    // Let the last ACK cross before anyone counts.
    std::thread::sleep(Duration::from_millis(200));
    peer
}

/// A connection the receiver's groups refuse: one SYN, never retransmitted.
pub(super) fn tcp_refused(from_ns: &str, to: &str) {
    let to: SocketAddr = to.parse().unwrap();
    spawn_in_netns(from_ns, move || vpc_tests::one_syn(to))
        .join()
        .unwrap();
}

/// `n` datagrams of `size` bytes from `from` (bound) to `to`, no answer.
pub(super) fn udp_send(ns: &str, from: &str, to: &str, n: usize, size: usize) {
    let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
    spawn_in_netns(ns, move || {
        let s = UdpSocket::bind(from).unwrap();
        for _ in 0..n {
            s.send_to(&vec![3u8; size], to).unwrap();
        }
    })
    .join()
    .unwrap();
}
