//! ICMP errors back through the ENI to the function, and path MTU discovery.
use std::{
    net::UdpSocket,
    sync::mpsc,
    time::{Duration, Instant},
};

use vpc_tests::{spawn_in_netns, text, Deployment, FAST};

/// Sets an integer socket option.
fn set_int_opt(fd: std::os::fd::RawFd, level: i32, name: i32, val: i32) {
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt {level}/{name}");
}

/// A raw IPv4 socket for `proto`, with a receive timeout.
fn raw_socket(proto: i32, secs: i64) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// The function's path MTU to `to` as its socket sees it (`IP_MTU`).
fn ip_mtu(s: &UdpSocket) -> i32 {
    use std::os::fd::AsRawFd;
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            &mut v as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(r, 0, "IP_MTU: {}", std::io::Error::last_os_error());
    v
}

#[test]
fn icmp_errors_reach_the_function_through_its_eni_and_path_mtu_discovery_works() {
    use std::os::fd::AsRawFd;
    let d = Deployment::up("e2ep", "default", FAST);
    let (fn_ns, db_ns) = (
        d.exec_env_netns("OrdersFunction"),
        d.netns("DatabaseInstance"),
    );
    // 1. Nothing listens on the database's 9000/udp: its kernel answers the
    // function's datagram with a port unreachable about ENI:port, which the
    // router translates back, so the function's connected socket sees it.
    let refused = spawn_in_netns(&fn_ns, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("10.0.1.10:9000").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.send(b"anyone?").unwrap();
        let mut buf = [0u8; 64];
        s.recv(&mut buf).map_err(|e| e.kind())
    })
    .join()
    .unwrap();
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the database kernel's port unreachable reached the function's socket"
    );
    // 2. Path MTU: the database (a real kernel, with a raw socket) sends
    // "fragmentation needed, next-hop MTU 1200" about the datagram it got
    // from the ENI, as a router with a smaller link would. The function's
    // kernel must find its socket by the quoted packet (so the quote must
    // be translated back to its own address and port) and lower its path
    // MTU. A veth cannot produce this itself: one with a smaller MTU drops
    // a frame redirected into it without a word, and nothing here forwards
    // through the kernel to send the error.
    let (ready_tx, ready_rx) = mpsc::channel();
    let db = spawn_in_netns(&db_ns, move || {
        // Listening, so the kernel sends no port unreachable this time.
        let _sink = UdpSocket::bind("10.0.1.10:9000").unwrap();
        let udp_raw = raw_socket(libc::IPPROTO_UDP, 30);
        let icmp_raw = raw_socket(libc::IPPROTO_ICMP, 30);
        ready_tx.send(()).unwrap();
        let mut pkt = [0u8; 2048];
        let n = loop {
            let n = unsafe {
                libc::recv(
                    udp_raw.as_raw_fd(),
                    pkt.as_mut_ptr() as *mut libc::c_void,
                    pkt.len(),
                    0,
                )
            };
            assert!(n > 0, "no datagram: {}", std::io::Error::last_os_error());
            let ihl = (pkt[0] & 0xf) as usize * 4;
            if u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]) == 9000 {
                break n as usize;
            }
        };
        let from = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        let mut msg = vec![3u8, 4, 0, 0, 0, 0];
        msg.extend_from_slice(&1200u16.to_be_bytes());
        msg.extend_from_slice(&pkt[..n.min(548)]);
        let c = vpc::packet::checksum(&[&msg]);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(from.octets()),
            },
            sin_zero: [0; 8],
        };
        let r = unsafe {
            libc::sendto(
                icmp_raw.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &to as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(r, msg.len() as isize, "{}", std::io::Error::last_os_error());
        from
    });
    ready_rx.recv().unwrap();
    let mtu = spawn_in_netns(&fn_ns, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("10.0.1.10:9000").unwrap();
        set_int_opt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        );
        let before = ip_mtu(&s);
        s.send(b"probe").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut mtu = before;
        while mtu == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            mtu = ip_mtu(&s);
        }
        // The error is also reported once on the socket (EMSGSIZE); then a
        // datagram over the new path MTU is refused at the source, and a
        // small one still goes.
        let _ = s.send(b"pending error");
        let big = s.send(&[0u8; 1300]).map_err(|e| e.raw_os_error());
        let small = s.send(b"small").is_ok();
        (before, mtu, big, small)
    })
    .join()
    .unwrap();
    let eni = db.join().unwrap();
    assert_eq!(eni.to_string(), d.eni_address("PrivateSubnetA"));
    assert_eq!(mtu.0, 1500);
    assert_eq!(mtu.1, 1200, "the function's path MTU follows the error");
    assert_eq!(mtu.2, Err(Some(libc::EMSGSIZE)));
    assert!(mtu.3, "datagrams within the path MTU still go");
    let route = std::process::Command::new("ip")
        .args(["-n", &fn_ns, "route", "get", "10.0.1.10"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("mtu 1200"),
        "{}",
        text(&route)
    );
    assert_eq!(d.dropped("icmp_error_untracked"), 0);
}
