//! Metrics and status: what the agent serves and `vpc status` / `vpc top`
//! show agree with what was done to the deployment.
use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vpc_common::map_names;
use vpc_tests::{http_get, metric, spawn_in_netns, text, vpc_bin, Deployment};

/// Connections held open from the function to the database.
fn hold(d: &Deployment, n: usize) -> (std::thread::JoinHandle<()>, Vec<TcpStream>) {
    let addr: SocketAddr = "10.0.1.10:5432".parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = spawn_in_netns(&d.netns("DatabaseInstance"), move || {
        let l = TcpListener::bind(addr).unwrap();
        tx.send(()).unwrap();
        let mut held = vec![];
        for _ in 0..n {
            held.push(l.accept().unwrap().0);
        }
        // Held until the client closes, however long the test takes.
        let _ = held[0].read(&mut [0u8; 1]);
    });
    rx.recv().unwrap();
    let conns = spawn_in_netns(&d.exec_env_netns("OrdersFunction"), move || {
        (0..n)
            .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    (server, conns)
}

#[test]
fn metrics_and_status_show_nat_allocations_map_occupancy_and_apply_latency() {
    let d = Deployment::up(
        "obs",
        "default",
        &["--eni-delay", "100ms", "--wait", "--conntrack-max", "4096"],
    );
    let (_server, conns) = hold(&d, 5);
    // One SYN the database's groups refuse (never retransmitted).
    spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        vpc_tests::one_syn("10.0.1.10:22".parse().unwrap())
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.dropped("sg_ingress_denied") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A policy change: its latency is recorded.
    let out = d.vpc(&["apply", "default"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = d.status();
    let body = http_get(s["metrics_url"].as_str().unwrap());
    let ct = metric(&body, "vpc_map_entries{map=\"CT\"}").expect(&body);
    assert_eq!(ct, 10.0, "two entries per connection: {body}");
    assert_eq!(
        metric(&body, "vpc_map_max_entries{map=\"CT\"}"),
        Some(4096.0)
    );
    assert_eq!(
        metric(&body, "vpc_map_entries{map=\"NAT_PORTS\"}"),
        Some(5.0)
    );
    assert_eq!(
        metric(&body, "vpc_map_max_entries{map=\"NAT_PORTS\"}"),
        Some(2048.0)
    );
    // Two hosts, two execution environments, two Hyperplane ENIs, the
    // VPC resolver.
    assert_eq!(
        metric(&body, "vpc_map_entries{map=\"ENDPOINTS\"}"),
        Some(7.0),
        "{body}"
    );
    let allocated: f64 = body
        .lines()
        .filter(|l| l.starts_with("vpc_nat_allocations_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    // The refused SYN's port was claimed too, then given back.
    assert_eq!(allocated, 6.0, "{body}");
    let once = metric(&body, "vpc_nat_allocations_total{probes=\"1\"}").unwrap();
    assert_eq!(
        metric(&body, "vpc_nat_allocation_retries_total"),
        Some(6.0 - once)
    );
    assert_eq!(
        metric(&body, "vpc_nat_allocation_failures_total"),
        Some(0.0)
    );
    // Per interface: the function's environment sent the handshakes' SYN
    // and ACK and the refused SYN, the database the SYN-ACKs; the ENI
    // carried both ways, nothing else.
    let port = |node: &str, eni: &str, verdict: &str| {
        metric(
            &body,
            &format!("vpc_interface_packets_total{{node=\"{node}\",eni=\"{eni}\",verdict=\"{verdict}\"}}"),
        )
        .unwrap_or_else(|| panic!("{node} {verdict}: {body}"))
    };
    let db_eni = s["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "DatabaseInstance")
        .unwrap()["eni_id"]
        .as_str()
        .unwrap()
        .to_string();
    let env_fwd = port("OrdersFunction", "", "forwarded");
    let db_fwd = port("DatabaseInstance", &db_eni, "forwarded");
    assert_eq!((env_fwd, db_fwd), (10.0, 5.0), "{body}");
    assert_eq!(port("OrdersFunction", "", "dropped"), 1.0);
    assert_eq!(port("DatabaseInstance", &db_eni, "dropped"), 0.0);
    let eni = s["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subnet"] == "PrivateSubnetA")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let through = metric(
        &body,
        &format!("vpc_eni_packets_forwarded_total{{eni=\"{eni}\"}}"),
    )
    .expect(&body);
    assert_eq!(through, env_fwd + db_fwd, "{body}");
    let apply = metric(&body, "vpc_apply_latency_seconds").expect(&body);
    assert!(apply > 0.0 && apply < 5.0, "{apply}");
    assert_eq!(s["apply_latency_s"].as_f64(), Some(apply));
    let maps = s["maps"].as_array().unwrap();
    assert!(
        maps.iter()
            .any(|m| m["map"] == map_names::CT && m["entries"] == 10),
        "{s}"
    );
    // The text status, and `vpc top` redrawing it with rates.
    let st = text(&d.vpc(&["status"]));
    assert!(st.contains("MAPS  CT 10/4096 (0.2%)"), "{st}");
    let mut top = Command::new(vpc_bin())
        .args(["--name", &d.name, "top", "--interval", "0.3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Three screens, however long a loaded machine takes to draw them.
    let mut stdout = top.stdout.take().unwrap();
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&out).matches("\x1b[2J").count() < 3 {
        match stdout.read(&mut buf).unwrap() {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(top.id() as i32, libc::SIGINT) }, 0);
    stdout.read_to_end(&mut out).unwrap();
    assert!(top.wait().unwrap().success());
    let screen = String::from_utf8_lossy(&out);
    assert!(screen.matches("\x1b[2J").count() >= 3, "redrawn: {screen}");
    assert!(screen.contains("RATES  forwarded"), "{screen}");
    drop(conns);
}

/// A `vpc trace` child, stopped (SIGINT) and reaped when dropped, also
/// when the test fails: it never outlives the test.
struct Tracer(Option<std::process::Child>);

impl Tracer {
    /// Ctrl-C, then its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.0.take().expect("running");
        // SAFETY: a signal to our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGINT) }, 0);
        c.wait().unwrap()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.0.is_some() {
            let _ = self.stop();
        }
    }
}

/// Whether the datapath's trace switch (`CONFIG[TRACE]`) is on.
fn trace_switch(d: &Deployment) -> bool {
    use vpc::datapath::Maps;
    vpc::datapath::PinnedMaps::open(&vpc::paths::pin_dir(&d.name))
        .unwrap()
        .trace_on()
        .unwrap()
}

/// `vpc trace` prints a line per verdict: a connection's packets forwarded
/// (ports in and out, the tuple), a SYN the database's groups refuse
/// dropped with its reason; it turns the datapath's logging off when it
/// stops, by Ctrl-C or at the end of `--for`.
#[test]
fn trace_prints_forwarded_and_dropped_verdicts_with_their_reason() {
    let d = Deployment::up("trc", "default", vpc_tests::FAST);
    assert!(!trace_switch(&d), "off until a trace runs");
    // A bound only if the test hangs: it stops the tracer itself.
    let mut child = Command::new(vpc_bin())
        .args(["--name", &d.name, "trace", "--for", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut t = Tracer(Some(child));
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Traffic only once it says it is ready: every verdict after is traced.
    let mut stderr = BufReader::new(stderr);
    let mut said = String::new();
    while !said.contains("tracing the router") {
        assert!(
            stderr.read_line(&mut said).unwrap() > 0,
            "vpc trace ended before it was ready: {said}"
        );
    }
    assert!(trace_switch(&d), "on while the trace runs");
    let (server, conns) = hold(&d, 1);
    spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        vpc_tests::one_syn("10.0.1.10:22".parse().unwrap())
    })
    .join()
    .unwrap();
    vpc_tests::wait_for("the refused SYN dropped", 10, || {
        d.dropped("sg_ingress_denied") > 0
    });
    assert!(t.stop().success());
    let lines = lines.join().unwrap();
    let all = lines.join("\n");
    let forwarded = |l: &&String| l.contains(" forwarded in=") && l.contains(" out=");
    assert!(
        lines
            .iter()
            .filter(forwarded)
            .any(|l| l.contains(" proto=6 ") && l.ends_with(" -> 10.0.1.10:5432")),
        "the connection's SYN forwarded: {all}"
    );
    assert!(
        lines
            .iter()
            .filter(forwarded)
            .any(|l| l.contains(" proto=6 10.0.1.10:5432 -> ")),
        "the database's SYN-ACK forwarded: {all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" dropped reason=sg_ingress_denied(7) in=")
                && l.contains(" proto=6 ")
                && l.ends_with(" -> 10.0.1.10:22")),
        "the refused SYN dropped, with its reason: {all}"
    );
    assert!(!trace_switch(&d), "Ctrl-C turned it off");
    drop(conns);
    server.join().unwrap();
    // `--for` ends it by itself, and turns it off too.
    let out = d.vpc(&["trace", "--for", "300ms"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!trace_switch(&d), "off after --for");
}
