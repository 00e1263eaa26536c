//! The function and ENI lifecycle against the real datapath, on a test
//! clock (`vpc up --clock test`): minutes and days pass with `vpc clock
//! advance`, and every state the API reports is checked against what real
//! sockets in the namespaces can and cannot do.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};
use vpc_tests::{fixture, spawn_in_netns, text, Deployment};

const TEMPLATE: &str = fixture!("function_lifecycle.yaml");

const DB: &str = "10.0.2.10:5432";

fn up(tag: &str, extra: &[&str]) -> Deployment {
    up_with(tag, TEMPLATE, extra)
}

fn up_with(tag: &str, template: &str, extra: &[&str]) -> Deployment {
    let mut args = vec!["--clock", "test", "--eni-delay", "5m"];
    args.extend_from_slice(extra);
    Deployment::up(tag, template, &args)
}

fn api(d: &Deployment, method: &str, path: &str, body: Value) -> vpc::api::Response {
    let body = if body.is_null() {
        vec![]
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    vpc::api::call(&d.name, method, path, &body).expect("the agent answers")
}

fn config(d: &Deployment) -> Value {
    let r = api(
        d,
        "GET",
        "/2015-03-31/functions/reports/configuration",
        Value::Null,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()
}

fn advance(d: &Deployment, by: &str) {
    let out = d.vpc(&["clock", "advance", by]);
    assert!(out.status.success(), "{}", text(&out));
}

fn update(d: &Deployment, vpc_config: Value) -> vpc::api::Response {
    api(
        d,
        "PUT",
        "/2015-03-31/functions/reports/configuration",
        json!({ "VpcConfig": vpc_config }),
    )
}

fn error_type(r: &vpc::api::Response) -> String {
    r.header("x-amzn-ErrorType").unwrap_or_default().to_string()
}

/// ENIs as `vpc eni list --json` shows them: (id, address, groups).
fn enis(d: &Deployment) -> Vec<(String, String, Vec<String>)> {
    d.eni_list()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["address"].as_str().unwrap().to_string(),
                serde_json::from_value(e["security_groups"].clone()).unwrap(),
            )
        })
        .collect()
}

/// Each connection's peer and the bytes it sent so far.
type Conns = Arc<Mutex<Vec<(SocketAddr, Arc<Mutex<usize>>)>>>;

/// A database: accepts connections, records each peer and the bytes it sent.
struct Server {
    conns: Conns,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(ns: &str, addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().unwrap();
        let conns = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (c, s) = (conns.clone(), stop.clone());
        spawn_in_netns(ns, move || {
            let l = TcpListener::bind(addr).expect("bind");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut sock, peer)) => {
                        sock.set_nonblocking(false).unwrap();
                        let n = Arc::new(Mutex::new(0usize));
                        c.lock().unwrap().push((peer, n.clone()));
                        let s = s.clone();
                        std::thread::spawn(move || {
                            sock.set_read_timeout(Some(Duration::from_millis(200)))
                                .unwrap();
                            let mut buf = [0u8; 4096];
                            while !s.load(Ordering::Relaxed) {
                                match sock.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(k) => *n.lock().unwrap() += k,
                                    Err(_) => {}
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        rx.recv().unwrap();
        Server { conns, stop }
    }
    fn peers(&self) -> Vec<String> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.ip().to_string())
            .collect()
    }
    /// Bytes received on the connection from `peer` (the last one).
    fn received(&self, peer: SocketAddr) -> usize {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(p, _)| *p == peer)
            .map(|(_, n)| *n.lock().unwrap())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP connection from the function's execution environment (a real
/// socket in its namespace), if one opens within a second.
fn connect(d: &Deployment, to: &str) -> Option<TcpStream> {
    connect_from(d, "Fn", to)
}

fn connect_from(d: &Deployment, function: &str, to: &str) -> Option<TcpStream> {
    let to: SocketAddr = to.parse().unwrap();
    spawn_in_netns(&d.exec_env_netns(function), move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(1)).ok()
    })
    .join()
    .unwrap()
}

/// Has the database seen a connection from `ip` (within ten seconds: its
/// accept loop may be slow to run on a loaded machine)?
fn saw(s: &Server, ip: &str) -> bool {
    (0..500).any(|_| {
        let seen = s.peers().iter().any(|p| p == ip);
        if !seen {
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    })
}

/// The server-side peer (the ENI it came through) of the next connection
/// after the `n` the database has accepted: the one just opened, not an
/// older one while its accept loop has yet to run.
fn peer_after(s: &Server, n: usize) -> String {
    for _ in 0..500 {
        if let Some(p) = s.peers().get(n) {
            return p.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the database saw no connection after {n}")
}

/// Pending while the ENI is created (invocations and changes fail with
/// ResourceConflictException),
/// Active once the delay has passed on the clock; idle for the idle period,
/// the ENI is reclaimed and the function is Inactive: nothing leaves its
/// execution environment; the ENI is deleted after the delete delay; the
/// next invocation fails and brings it back through Pending (Restoring).
#[test]
fn pending_active_idle_reclaim_and_restore() {
    let d = up("lca", &[]);
    let db = Server::start(&d.netns("Db"), DB);
    let c = config(&d);
    assert_eq!(
        (&c["State"], &c["StateReasonCode"], &c["LastUpdateStatus"]),
        (&json!("Pending"), &json!("Creating"), &json!("InProgress"))
    );
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations",
        json!("x"),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (409, "ResourceConflictException".into())
    );
    let out = d.vpc(&["invoke", "reports", "--", "true"]);
    assert!(
        text(&out).contains("ResourceConflictException"),
        "{}",
        text(&out)
    );
    let r = update(
        &d,
        json!({"SubnetIds": ["B"], "SecurityGroupIds": ["FnSg"]}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (409, "ResourceConflictException".into())
    );
    assert!(
        connect(&d, DB).is_none(),
        "Pending: no ENI to leave through"
    );

    advance(&d, "4m");
    assert_eq!(config(&d)["State"], "Pending");
    advance(&d, "1m");
    let c = config(&d);
    assert_eq!(
        (&c["State"], &c["LastUpdateStatus"]),
        (&json!("Active"), &json!("Successful"))
    );
    // Invoke runs the handler in the execution environment: payload in, stdout out.
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations",
        json!("hello"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body).trim(),
        "reports got \"hello\""
    );
    let eni = enis(&d);
    assert_eq!(eni.len(), 1, "{eni:?}");
    assert!(connect(&d, DB).is_some());
    assert_eq!(peer_after(&db, 0), eni[0].1, "through its ENI");

    // 29 days idle: still Active; 30: reclaimed.
    advance(&d, "29d");
    assert_eq!(config(&d)["State"], "Active");
    advance(&d, "1d");
    let c = config(&d);
    assert_eq!(
        (&c["State"], &c["StateReasonCode"]),
        (&json!("Inactive"), &json!("Idle"))
    );
    assert!(
        connect(&d, DB).is_none(),
        "Inactive: the ENI is gone from its path"
    );
    // Nothing uses the ENI: deleted after the delete delay (20 min).
    advance(&d, "19m");
    assert_eq!(enis(&d).len(), 1);
    advance(&d, "1m");
    assert!(enis(&d).is_empty(), "{:?}", enis(&d));

    // The next invocation fails and starts the restore.
    let out = d.vpc(&["invoke", "reports", "--", "true"]);
    assert!(!out.status.success() && text(&out).contains("ResourceNotReadyException"));
    let c = config(&d);
    assert_eq!(
        (&c["State"], &c["StateReasonCode"]),
        (&json!("Pending"), &json!("Restoring"))
    );
    advance(&d, "5m");
    assert_eq!(config(&d)["State"], "Active");
    let eni = enis(&d);
    assert_eq!(eni.len(), 1, "a new ENI");
    assert!(connect(&d, DB).is_some());
    assert_eq!(peer_after(&db, 1), eni[0].1);
    let out = d.vpc(&["invoke", "reports", "--", "true"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// UpdateFunctionConfiguration to a new (subnet, groups): InProgress while
/// the new ENI is created, new connections still leave through the old
/// one; then Successful, new connections use the new ENI and the old VPC
/// connection ends. A published version keeps its VpcConfig and its ENI
/// alive; deleting the function releases them after the delete delay.
#[test]
fn update_switches_enis_versions_keep_theirs_delete_releases() {
    let d = up("lcb", &[]);
    let db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    assert_eq!(config(&d)["State"], "Active");
    let old = enis(&d);
    let mut held = connect(&d, DB).expect("connects");
    held.write_all(b"before").unwrap();
    let held_peer = held.local_addr().unwrap();
    assert_eq!(peer_after(&db, 0), old[0].1);

    let v1 = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/versions",
        json!({}),
    );
    assert_eq!(v1.status, 201);
    assert_eq!(v1.json()["Version"], "1");

    let r = update(
        &d,
        json!({"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg2"]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["LastUpdateStatus"], "InProgress");
    assert_eq!(config(&d)["State"], "Active");
    // Another change waits for this one.
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/versions",
        json!({}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (409, "ResourceConflictException".into())
    );
    // Still the old ENI.
    drop(connect(&d, DB).expect("connects during the update"));
    assert_eq!(peer_after(&db, 1), old[0].1);

    advance(&d, "5m");
    let c = config(&d);
    assert_eq!(c["LastUpdateStatus"], "Successful");
    assert_eq!(c["VpcConfig"]["SecurityGroupIds"], json!(["FnSg2"]));
    let now = enis(&d);
    let new = now
        .iter()
        .find(|e| e.2 == vec!["FnSg2".to_string()])
        .expect("an ENI for (A, FnSg2)");
    assert_ne!(new.1, old[0].1);
    let mut fresh = connect(&d, DB).expect("connects through the new ENI");
    fresh.write_all(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(saw(&db, &new.1), "through the new ENI: {:?}", db.peers());
    // The old connection ended: what it sends no longer arrives.
    let old_peer = db.conns.lock().unwrap()[0].0;
    assert_eq!(db.received(old_peer), 6);
    let _ = held.write_all(b"after the switch");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        db.received(old_peer),
        6,
        "the old VPC connection ended ({held_peer})"
    );
    assert!(d.dropped("ct_invalid") > 0);

    // Version 1 has its own execution environment, on its own VpcConfig:
    // its connections leave through the old ENI, $LATEST's through the new.
    assert!(connect_from(&d, "Fn.v1", DB).is_some());
    assert!(saw(&db, &old[0].1));
    let n = db.peers().len();
    drop(connect_from(&d, "Fn.v1", DB).unwrap());
    assert_eq!(peer_after(&db, n), old[0].1, "version 1: the old ENI");
    let out = d.vpc(&["invoke", "reports", "--qualifier", "1", "--", "true"]);
    assert!(out.status.success(), "{}", text(&out));
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations?Qualifier=1",
        json!("v"),
    );
    assert_eq!(String::from_utf8_lossy(&r.body).trim(), "reports got \"v\"");
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations?Qualifier=7",
        json!("v"),
    );
    assert_eq!(r.status, 404);
    // Version 1 keeps (A, FnSg) alive long after the delete delay.
    advance(&d, "1h");
    assert!(enis(&d).iter().any(|e| e.0 == old[0].0), "{:?}", enis(&d));
    let r = api(
        &d,
        "GET",
        "/2015-03-31/functions/reports?Qualifier=1",
        Value::Null,
    );
    assert_eq!(
        r.json()["Configuration"]["VpcConfig"]["SecurityGroupIds"],
        json!(["FnSg"])
    );

    // Delete: the execution environment goes, the ENIs after the delay.
    let r = api(&d, "DELETE", "/2015-03-31/functions/reports", Value::Null);
    assert_eq!(r.status, 204);
    let r = api(&d, "GET", "/2015-03-31/functions/reports", Value::Null);
    assert_eq!(
        (r.status, error_type(&r)),
        (404, "ResourceNotFoundException".into())
    );
    assert!(!std::path::Path::new("/run/netns")
        .join(d.exec_env_netns("Fn"))
        .exists());
    assert!(
        !std::path::Path::new("/run/netns")
            .join(d.exec_env_netns("Fn.v1"))
            .exists(),
        "its versions go with it"
    );
    advance(&d, "19m");
    assert_eq!(enis(&d).len(), 2);
    advance(&d, "1m");
    assert!(enis(&d).is_empty(), "{:?}", enis(&d));
    assert!(d.status()["functions"].as_array().unwrap().is_empty());
}

/// An update that needs an ENI it cannot have fails with AWS's reason
/// code, and the function keeps its configuration and its ENI.
#[test]
fn updates_fail_with_eni_limit_exceeded_and_subnet_out_of_ip_addresses() {
    // One ENI per VPC: the function's.
    let d = up("lcc", &["--eni-limit", "1"]);
    let db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    let r = update(
        &d,
        json!({"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg2"]}),
    );
    assert_eq!(r.status, 200);
    advance(&d, "5m");
    let c = config(&d);
    assert_eq!(
        (
            &c["State"],
            &c["LastUpdateStatus"],
            &c["LastUpdateStatusReasonCode"]
        ),
        (
            &json!("Active"),
            &json!("Failed"),
            &json!("EniLimitExceeded")
        )
    );
    assert_eq!(c["VpcConfig"]["SecurityGroupIds"], json!(["FnSg"]));
    assert!(connect(&d, DB).is_some(), "still on its ENI");
    assert_eq!(peer_after(&db, 0), enis(&d)[0].1);
    drop(d);

    // Subnet Full is a /28: 11 usable addresses, ten taken by interfaces,
    // one left; an ENI takes it, and for another group set none is left.
    let fillers: String = (1..=10)
        .map(|i| format!("  Filler{i}: {{Type: AWS::EC2::NetworkInterface, Properties: {{SubnetId: !Ref Full}}}}\n"))
        .collect();
    let d = up_with("lcd", &format!("{TEMPLATE}{fillers}"), &[]);
    advance(&d, "5m");
    let r = update(
        &d,
        json!({"SubnetIds": ["Full"], "SecurityGroupIds": ["FnSg"]}),
    );
    assert_eq!(r.status, 200);
    advance(&d, "5m");
    assert_eq!(config(&d)["LastUpdateStatus"], "Successful");
    let r = update(
        &d,
        json!({"SubnetIds": ["Full"], "SecurityGroupIds": ["FnSg2"]}),
    );
    assert_eq!(r.status, 200);
    advance(&d, "5m");
    let c = config(&d);
    assert_eq!(
        (&c["LastUpdateStatus"], &c["LastUpdateStatusReasonCode"]),
        (&json!("Failed"), &json!("SubnetOutOfIPAddresses"))
    );
    assert!(c["LastUpdateStatusReason"]
        .as_str()
        .unwrap()
        .contains("Full"));
}

/// The agent's state is in its store: an agent killed with SIGKILL and
/// started again serves the same functions, states and ENIs, and the
/// lifecycle goes on from there.
#[test]
fn a_restarted_agent_carries_on_from_the_store() {
    let d = up("lce", &[]);
    let _db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    let before = config(&d);
    assert_eq!(before["State"], "Active");
    let eni = enis(&d);
    d.kill_agent();
    let agent = std::process::Command::new(vpc_tests::vpc_bin())
        .args(["--name", &d.name, "agent"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ok = false;
    for _ in 0..600 {
        if vpc::api::call(&d.name, "GET", "/2015-03-31/functions", b"").is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "the new agent answers");
    assert_eq!(config(&d), before);
    assert_eq!(enis(&d), eni);
    assert!(
        connect(&d, DB).is_some(),
        "the pinned datapath never stopped"
    );
    advance(&d, "30d");
    assert_eq!(config(&d)["State"], "Inactive");
    drop(agent); // `vpc down` stops it
}

/// The template with subnet A and group FnSg shared with account
/// 210987654321, and that account's function in it.
const SHARED: &str = r#"
  Share:
    Type: AWS::RAM::ResourceShare
    Properties:
      Name: shared-a
      ResourceArns:
        - !Sub "arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:subnet/${A}"
        - !Sub "arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:security-group/${FnSg}"
      Principals: ["210987654321"]
  Partner:
    Type: AWS::Lambda::Function
    Metadata: {Account: "210987654321"}
    Properties:
      FunctionName: partner
      VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref FnSg]}
"#;

fn state_of(d: &Deployment, f: &str) -> (String, String) {
    let r = api(
        d,
        "GET",
        &format!("/2015-03-31/functions/{f}/configuration"),
        Value::Null,
    );
    let c = r.json();
    (
        c["State"].as_str().unwrap_or_default().to_string(),
        c["StateReasonCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A subnet shared with a participant account (`AWS::RAM::ResourceShare`):
/// the participant's function attaches to it through its own ENI (one per
/// (subnet, groups) in an account); unsharing cuts it off at once (its
/// connection ends, new ones fail) and it reports `Inactive` /
/// `InvalidSubnet`, its invocations `InvalidSubnetIDException`, while the
/// owner's function in the same subnet goes on; shared again, the next
/// invocation restores it.
#[test]
fn a_participant_attaches_to_a_shared_subnet_and_unsharing_cuts_it_off() {
    let d = up_with("lcs", &format!("{TEMPLATE}{SHARED}"), &[]);
    let db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    assert_eq!(state_of(&d, "reports").0, "Active");
    assert_eq!(state_of(&d, "partner").0, "Active");
    let r = api(&d, "GET", "/2015-03-31/functions/partner", Value::Null);
    assert!(r.json()["Configuration"]["FunctionArn"]
        .as_str()
        .unwrap()
        .contains(":210987654321:function:partner"));
    // Two ENIs in subnet A: the owner's and the participant's.
    let e = enis(&d);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_ne!(e[0].1, e[1].1);
    let mut held = connect_from(&d, "Partner", DB).expect("the participant connects");
    held.write_all(b"before").unwrap();
    let partner_eni = peer_after(&db, 0);
    drop(connect_from(&d, "Fn", DB).expect("the owner connects"));
    // Each through its own account's ENI.
    assert!(e.iter().any(|x| x.1 == partner_eni));
    let owner_eni = &e.iter().find(|x| x.1 != partner_eni).unwrap().1;
    assert!(saw(&db, owner_eni), "{:?}", db.peers());

    let out = d.vpc(&["ram", "disassociate", "shared-a", "--subnet-ids", "A"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Partner"), "{}", text(&out));
    assert_eq!(
        state_of(&d, "partner"),
        ("Inactive".to_string(), "InvalidSubnet".to_string())
    );
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/partner/invocations",
        json!({}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (502, "InvalidSubnetIDException".into())
    );
    assert!(connect_from(&d, "Partner", DB).is_none(), "cut off at once");
    let old_peer = db.conns.lock().unwrap()[0].0;
    let _ = held.write_all(b"after");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(db.received(old_peer), 6, "its connection ended");
    // The owner's function is not affected.
    assert_eq!(state_of(&d, "reports").0, "Active");
    assert!(connect_from(&d, "Fn", DB).is_some());
    // The restore the invocation started fails while the subnet is
    // unshared; unused for the delete delay, its ENI goes (so the restore
    // below is Pending on the clock, not until the agent's next tick).
    advance(&d, "20m");
    assert_eq!(
        state_of(&d, "partner"),
        ("Inactive".to_string(), "InvalidSubnet".to_string())
    );
    assert_eq!(enis(&d).len(), 1, "the owner's only: {:?}", enis(&d));

    let out = d.vpc(&["ram", "associate", "shared-a", "--subnet-ids", "A"]);
    assert!(out.status.success(), "{}", text(&out));
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/partner/invocations",
        json!({}),
    );
    assert_eq!(r.status, 502);
    assert_eq!(state_of(&d, "partner").0, "Pending");
    advance(&d, "5m");
    assert_eq!(state_of(&d, "partner").0, "Active");
    assert!(connect_from(&d, "Partner", DB).is_some());
    // A participant may not use a subnet that is not shared with it.
    let r = api(
        &d,
        "PUT",
        "/2015-03-31/functions/partner/configuration",
        json!({"VpcConfig": {"SubnetIds": ["B"], "SecurityGroupIds": ["FnSg"]}}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (400, "InvalidParameterValueException".into())
    );
}

/// The test clock fires every timer at its due time, in order, however far
/// it jumps: 31 days in one step reclaim the idle function's ENI on day 30
/// and delete it 20 minutes later, as 31 days of ticks would; the next
/// invocation finds no ENI and the function restores through Pending. And
/// an invocation while Pending is refused as Lambda refuses it (409).
#[test]
fn a_jump_of_the_clock_fires_every_timer_on_the_way() {
    let d = up("lcj", &[]);
    advance(&d, "5m");
    assert_eq!(config(&d)["State"], "Active");
    assert_eq!(enis(&d).len(), 1);
    advance(&d, "31d");
    let c = config(&d);
    assert_eq!(
        (&c["State"], &c["StateReasonCode"]),
        (&json!("Inactive"), &json!("Idle"))
    );
    assert!(
        enis(&d).is_empty(),
        "deleted on day 30 + 20 min: {:?}",
        enis(&d)
    );
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations",
        json!({}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (502, "ResourceNotReadyException".into())
    );
    assert_eq!(
        state_of(&d, "reports"),
        ("Pending".into(), "Restoring".into())
    );
    // Pending: Lambda does not invoke it (409), until the new ENI exists.
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations",
        json!({}),
    );
    assert_eq!(
        (r.status, error_type(&r)),
        (409, "ResourceConflictException".into())
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("The function is currently in the following state: Pending"));
    advance(&d, "5m");
    assert_eq!(config(&d)["State"], "Active");
}

/// A participant may not attach the owner's security groups that are not
/// shared with it (AWS refuses them: it would inherit what the owner's
/// rules grant them, the database's "from FnSg"): the template is refused
/// naming the field, as is the API's CreateFunction; with a group of its
/// own it attaches, and the database, which admits FnSg only, refuses it
/// while the owner's function gets through.
#[test]
fn a_participant_cannot_borrow_the_owners_security_groups() {
    let subnet_only = r#"
  Share:
    Type: AWS::RAM::ResourceShare
    Properties:
      Name: shared-a
      ResourceArns: [!Sub "arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:subnet/${A}"]
      Principals: ["210987654321"]
"#;
    let partner = |groups: &str| {
        format!(
            r#"
  Partner:
    Type: AWS::Lambda::Function
    Metadata: {{Account: "210987654321"}}
    Properties:
      FunctionName: partner
      VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [{groups}]}}
"#
        )
    };
    for borrowed in ["!Ref FnSg", "!GetAtt Vpc.DefaultSecurityGroup"] {
        let t = format!("{TEMPLATE}{subnet_only}{}", partner(borrowed));
        let name = vpc_tests::unique_name("lcsg");
        let path = std::env::temp_dir().join(format!("{name}.yaml"));
        std::fs::write(&path, &t).unwrap();
        let out = vpc_tests::vpc(&name, &["validate", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(&path);
        let e = text(&out);
        assert!(!out.status.success(), "{borrowed}: {e}");
        assert!(
            e.contains("Resources.Partner.Properties.VpcConfig.SecurityGroupIds[0]")
                && e.contains("InvalidGroup.NotFound"),
            "{borrowed}: {e}"
        );
    }
    let own = r#"
  PartnerSg:
    Type: AWS::EC2::SecurityGroup
    Metadata: {Account: "210987654321"}
    Properties: {GroupDescription: partner, VpcId: !Ref Vpc}
"#;
    let d = up_with(
        "lcsg",
        &format!("{TEMPLATE}{subnet_only}{own}{}", partner("!Ref PartnerSg")),
        &[],
    );
    let db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    assert_eq!(state_of(&d, "partner").0, "Active");
    assert!(
        connect_from(&d, "Partner", DB).is_none(),
        "the database admits FnSg only"
    );
    assert!(connect_from(&d, "Fn", DB).is_some());
    drop(db);
    // The API refuses the owner's group to the participant as well.
    // An access key id of 12 digits names the caller's account.
    let auth = "AWS4-HMAC-SHA256 Credential=210987654321/20261205/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0";
    let r = vpc::api::call_with(
        &d.name,
        "POST",
        "/2015-03-31/functions",
        &[("Authorization", auth)],
        &serde_json::to_vec(&json!({
            "FunctionName": "borrower",
            "Role": "arn:aws:iam::210987654321:role/x",
            "Code": {"ZipFile": "Y2F0"},
            "VpcConfig": {"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"]},
        }))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (r.status, error_type(&r)),
        (400, "InvalidParameterValueException".into())
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("InvalidGroup.NotFound"),
        "{:?}",
        r.json()
    );
}

/// CreateFunction on a running deployment builds a new execution
/// environment joined to the router by the pinned program: a combination
/// that has an ENI is reused at once (Active right away, connections leave
/// through the shared ENI), a new one is Pending until its ENI is created.
#[test]
fn create_function_builds_an_execution_environment_on_the_running_router() {
    let d = up("lcf", &[]);
    let db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    let eni = enis(&d);
    let body = |name: &str, groups: &str| {
        json!({
            "FunctionName": name,
            "Runtime": "provided.al2023",
            "Role": "arn:aws:iam::123456789012:role/x",
            "Handler": "bootstrap",
            // base64 of `tr a-z A-Z`
            "Code": {"ZipFile": "dHIgYS16IEEtWg=="},
            "VpcConfig": {"SubnetIds": ["A"], "SecurityGroupIds": [groups]},
        })
    };
    let r = api(&d, "POST", "/2015-03-31/functions", body("maker", "FnSg"));
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["FunctionName"], "maker");
    let c = api(
        &d,
        "GET",
        "/2015-03-31/functions/maker/configuration",
        Value::Null,
    )
    .json();
    assert_eq!(c["State"], "Active", "(A, FnSg) has an ENI: reused at once");
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/maker/invocations",
        json!("abc"),
    );
    assert_eq!(String::from_utf8_lossy(&r.body), "\"ABC\"");
    assert!(connect_from(&d, "maker", DB).is_some());
    assert_eq!(peer_after(&db, 0), eni[0].1, "through the shared ENI");
    assert_eq!(enis(&d).len(), 1);
    // Its port gets the deployment's default hook (TC: it is socket-fed),
    // as the template's ports did.
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let port = &s.node("maker").unwrap().router_if;
    assert_eq!(s.hooks[port], vpc::datapath::Hook::Tc);
    let pin = s.pin_dir.join("links").join(port);
    let link: aya::programs::links::FdLink = aya::programs::links::PinnedLink::from_pin(&pin)
        .unwrap()
        .into();
    assert_eq!(
        link.info().unwrap().link_type().unwrap(),
        aya::programs::links::LinkType::Tcx
    );
    let r = api(&d, "POST", "/2015-03-31/functions", body("maker", "FnSg"));
    assert_eq!(
        (r.status, error_type(&r)),
        (409, "ResourceConflictException".into())
    );

    // A new combination: Pending until its ENI exists.
    let r = api(&d, "POST", "/2015-03-31/functions", body("maker2", "FnSg2"));
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["State"], "Pending");
    assert!(connect_from(&d, "maker2", DB).is_none());
    advance(&d, "5m");
    let c = api(
        &d,
        "GET",
        "/2015-03-31/functions/maker2/configuration",
        Value::Null,
    )
    .json();
    assert_eq!(c["State"], "Active");
    assert!(connect_from(&d, "maker2", DB).is_some());
    let new = enis(&d)
        .into_iter()
        .find(|e| e.2 == vec!["FnSg2".to_string()])
        .unwrap();
    assert!(saw(&db, &new.1), "through its new ENI: {:?}", db.peers());

    let r = api(&d, "DELETE", "/2015-03-31/functions/maker", Value::Null);
    assert_eq!(r.status, 204);
    assert!(!std::path::Path::new("/run/netns")
        .join(d.exec_env_netns("maker"))
        .exists());
}

/// UpdateFunctionConfiguration to subnets of another VPC: the function's
/// execution environment moves to an ENI of that VPC; it reaches that
/// VPC's database and no longer the first one's.
#[test]
fn an_update_moves_a_function_to_another_vpc() {
    let t = fixture!("two_vpcs.yaml");
    let d = up_with("lcv", t, &[]);
    let (db1, db2) = ("10.0.1.10:5432", "10.9.1.10:5432");
    let s1 = Server::start(&d.netns("Db1"), db1);
    let s2 = Server::start(&d.netns("Db2"), db2);
    advance(&d, "5m");
    assert!(connect(&d, db1).is_some());
    assert!(connect(&d, db2).is_none(), "another VPC");
    let r = update(&d, json!({"SubnetIds": ["C"], "SecurityGroupIds": ["Sg2"]}));
    assert_eq!(r.status, 200, "{:?}", r.json());
    advance(&d, "5m");
    let c = config(&d);
    assert_eq!(
        (&c["LastUpdateStatus"], &c["VpcConfig"]["VpcId"]),
        (&json!("Successful"), &json!("Two"))
    );
    assert!(connect(&d, db2).is_some());
    let eni2 = enis(&d)
        .into_iter()
        .find(|e| e.2 == vec!["Sg2".to_string()])
        .unwrap();
    assert!(saw(&s2, &eni2.1), "{:?}", s2.peers());
    assert!(connect(&d, db1).is_none(), "no longer in VPC One");
    assert_eq!(s1.peers().len(), 1);
}

/// Removing the VpcConfig: the function stays Active and invocable but
/// reaches no VPC; its ENI, used by nothing else, is deleted after the
/// delete delay.
#[test]
fn removing_the_vpc_config_releases_the_eni_after_the_delay() {
    let d = up("lcr", &[]);
    let _db = Server::start(&d.netns("Db"), DB);
    advance(&d, "5m");
    assert!(connect(&d, DB).is_some());
    let r = update(&d, json!({"SubnetIds": [], "SecurityGroupIds": []}));
    assert_eq!(r.status, 200, "{:?}", r.json());
    let c = config(&d);
    assert_eq!(
        (
            &c["State"],
            &c["LastUpdateStatus"],
            &c["VpcConfig"]["SubnetIds"]
        ),
        (&json!("Active"), &json!("Successful"), &json!([]))
    );
    assert!(connect(&d, DB).is_none(), "no VPC any more");
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/reports/invocations",
        json!("x"),
    );
    assert_eq!(String::from_utf8_lossy(&r.body).trim(), "reports got \"x\"");
    advance(&d, "19m");
    assert_eq!(enis(&d).len(), 1);
    advance(&d, "1m");
    assert!(enis(&d).is_empty());
}

/// `Ipv6AllowedForDualStack` changed by an update: the execution
/// environment gets (or loses) its IPv6 route and the ENI's IPv6 view.
#[test]
fn an_update_turns_ipv6_on_and_off() {
    let t = fixture!("dual_stack_function.yaml");
    let d = up_with("lc6", t, &[]);
    let s = d.status();
    let db6 = s["hosts"][0]["ipv6_address"].as_str().unwrap().to_string();
    let to6 = format!("[{db6}]:5432");
    let db = Server::start(&d.netns("Db"), &to6);
    advance(&d, "5m");
    assert!(connect(&d, &to6).is_none(), "no IPv6 without the flag");
    let on =
        json!({"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"], "Ipv6AllowedForDualStack": true});
    assert_eq!(update(&d, on).status, 200);
    let c = config(&d);
    assert_eq!(
        (
            &c["LastUpdateStatus"],
            &c["VpcConfig"]["Ipv6AllowedForDualStack"]
        ),
        (&json!("Successful"), &json!(true))
    );
    assert!(connect(&d, &to6).is_some(), "IPv6 through the ENI");
    let eni6 = d.status()["enis"][0]["ipv6_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(saw(&db, &eni6), "{:?}", db.peers());
    let off =
        json!({"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"], "Ipv6AllowedForDualStack": false});
    assert_eq!(update(&d, off).status, 200);
    assert_eq!(config(&d)["LastUpdateStatus"], "Successful");
    assert!(connect(&d, &to6).is_none(), "IPv6 off again");
}

/// The API reads every request whole before it answers, also where the
/// operation takes no body: answering and closing with the body unread
/// resets the client's connection, which may lose the answer.
#[test]
fn the_api_reads_a_request_whole_before_it_answers() {
    let d = up("lcread", &[]);
    let big = vec![b' '; 1 << 20];
    for _ in 0..20 {
        let r = vpc::api::call(&d.name, "GET", "/2015-03-31/functions", &big)
            .expect("the agent answers a request it takes no body from");
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
}
