//! One VPC over three hosts on one machine (docs/multi-host.md): three
//! deployments, each its own router namespace, pins and agent, joined by an
//! underlay bridge in a namespace of its own and a VXLAN overlay, their
//! desired state in a real etcd started for the test.
use std::net::Ipv4Addr;

use vpc_tests::{etcd::Etcd, peer_server, text, unique_name, wait_for, Deployment, LineClient};

/// Three hosts of one cluster, h1 first (with the template), then h2, h3.
struct Cluster {
    // Dropped in order: the hosts (`vpc down`; the last one takes the
    // underlay's namespace), then etcd.
    hosts: Vec<Deployment>,
    underlay_ns: String,
    etcd: Option<Etcd>,
}

impl Cluster {
    fn up(template: &str) -> Self {
        Self::up_with(template, 3, None)
    }

    /// `n` hosts, joined through the bridge of a namespace of their own, or
    /// through macvlans of the device `dev` (as VMs on their network).
    fn up_with(template: &str, n: usize, dev: Option<&str>) -> Self {
        let etcd = Etcd::start();
        let cluster = unique_name("c");
        let underlay_ns = format!("{cluster}-ul");
        let url = etcd.url();
        let mut hosts = vec![];
        for k in 1..=n {
            let underlay = format!("10.250.0.{k}/24");
            let host = format!("h{k}");
            let (how, link) = match dev {
                Some(d) => ("--underlay-dev", d),
                None => ("--underlay-netns", underlay_ns.as_str()),
            };
            let args = [
                "--cluster",
                &url,
                "--cluster-name",
                &cluster,
                "--host",
                &host,
                "--underlay",
                &underlay,
                how,
                link,
                "--lease-ttl",
                "2",
                "--wait",
            ];
            let t = if k == 1 { template } else { "default" };
            hosts.push(Deployment::up(&format!("mh{k}"), t, &args));
        }
        Cluster {
            hosts,
            underlay_ns,
            etcd: Some(etcd),
        }
    }

    fn host(&self, k: usize) -> &Deployment {
        &self.hosts[k - 1]
    }

    /// `sh -c CMD` in function `f`'s execution environment on host `k`.
    fn invoke(&self, k: usize, f: &str, cmd: &str) -> std::process::Output {
        self.host(k)
            .vpc(&["invoke", f, "--", "timeout", "20", "sh", "-c", cmd])
    }

    /// The peer the database sees for a connection from `f` on host `k`.
    fn peer_seen(&self, k: usize, f: &str) -> (Ipv4Addr, u16) {
        let out = self.invoke(k, f, "echo hi | nc -q1 -w5 10.0.2.10 5432");
        assert!(out.status.success(), "{}", text(&out));
        let s = String::from_utf8_lossy(&out.stdout);
        let (a, p) = s.trim().rsplit_once(':').expect("ip:port");
        (a.parse().unwrap(), p.parse().unwrap())
    }

    fn status(&self, k: usize) -> serde_json::Value {
        self.host(k).status()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The last host first: the first, by name the cluster's leader,
        // has nothing left to move.
        while self.hosts.pop().is_some() {}
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.underlay_ns])
            .output();
    }
}

/// The NAT port slice a port lies in.
fn slice_of(port: u16) -> u32 {
    (port as u32 - vpc_common::NAT_PORT_MIN as u32) / vpc_common::NAT_SLICE_PORTS
}

fn slices(st: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(st["cluster"]["slices"].clone()).unwrap_or_default()
}

#[test]
fn one_vpc_spans_three_hosts() {
    let template = vpc::MULTI_HOST_TEMPLATE.to_string();
    let mut c = Cluster::up(&template);
    // Placement as the template asks, seen alike by every host.
    for k in 1..=3 {
        let st = c.status(k);
        let p = &st["cluster"]["placement"];
        assert_eq!(p["Db"], "h2", "host {k}: {st}");
        assert_eq!(p["FnA"], "h1");
        assert_eq!(p["FnC"], "h3");
    }
    let db_ns = c.host(2).netns("Db");
    let db = peer_server(&db_ns, "0.0.0.0:5432");
    // The function on h1 reaches the database on h2 through its ENI: the
    // database sees the ENI's address.
    let eni: Ipv4Addr = c.host(1).eni_address("AppSubnet").parse().unwrap();
    assert_eq!(c.host(3).eni_address("AppSubnet"), eni.to_string());
    let (a1, p1) = c.peer_seen(1, "FnA");
    assert_eq!(a1, eni);
    // A function runs on its own host; asked elsewhere, the host says where.
    let out = c.invoke(2, "FnA", "true");
    assert!(!out.status.success());
    assert!(text(&out).contains("FnA runs on host h1"), "{}", text(&out));
    // The function on h3 shares that ENI; each host's NAT ports come from
    // its own slices (disjoint), and each reply found its host (the `nc`
    // above and here read the database's answer).
    let (a3, p3) = c.peer_seen(3, "FnC");
    assert_eq!(a3, eni);
    let (s1, s3) = (slices(&c.status(1)), slices(&c.status(3)));
    assert!(!s1.is_empty() && !s3.is_empty(), "{s1:?} {s3:?}");
    assert!(s1.iter().all(|s| !s3.contains(s)), "{s1:?} {s3:?}");
    assert!(s1.contains(&slice_of(p1)), "port {p1} not in h1's {s1:?}");
    assert!(s3.contains(&slice_of(p3)), "port {p3} not in h3's {s3:?}");
    // Groups and ACLs across hosts: egress at the source, ingress at the
    // destination, the ACL at the subnet boundary.
    let reach = |k: usize, f: &str, port: u16| {
        let cmd = format!("nc -z -w2 10.0.2.10 {port}");
        c.invoke(k, f, &cmd).status.success()
    };
    let db_5433 = peer_server(&db_ns, "0.0.0.0:5433");
    let db_22 = peer_server(&db_ns, "0.0.0.0:22");
    assert!(!reach(1, "FnA", 5433), "DbAcl denies 5433 into the subnet");
    assert!(!reach(1, "FnA", 22), "DbSg allows 5432-5433 only");
    // Web (h3) is not in FnSg: the database's group refuses it.
    let web = c.host(3);
    let out = web.vpc(&["exec", "Web", "--", "nc", "-z", "-w2", "10.0.2.10", "5432"]);
    assert!(!out.status.success(), "Web is not in FnSg");
    // A template applied through h3 is the cluster's: h1's router lets
    // its function through to 22 on h2 at once.
    let rule = "        - {IpProtocol: tcp, FromPort: 5432, ToPort: 5433, SourceSecurityGroupId: !Ref FnSg}";
    assert!(template.contains(rule));
    let wider = template
        .replace(rule, &format!("{rule}\n        - {{IpProtocol: tcp, FromPort: 22, ToPort: 22, SourceSecurityGroupId: !Ref FnSg}}"))
        .replace("PortRange: {From: 5432, To: 5433}}}\n  AllowOut", "PortRange: {From: 22, To: 5433}}}\n  AllowOut");
    assert_ne!(wider, template);
    web.apply(&wider);
    wait_for("h1 to take the template applied through h3", 30, || {
        reach(1, "FnA", 22)
    });
    drop((db_5433, db_22));
    assert!(db.stop() >= 2, "the database answered both functions");
    // A connection between h1 and h2 that lives through the loss of h3
    // (port 22: the template applied through h3 opened it).
    let echo = vpc_tests::line_echo_server(&db_ns, "0.0.0.0:22");
    let client = LineClient::connect(&c.host(1).exec_env_netns("FnA"), "10.0.2.10:22");
    assert!(client.echoes("before", 10));
    // h3 is lost: its agent killed and its namespaces gone.
    c.host(3).kill_agent();
    for ns in vpc_tests::namespaces_with_prefix(&c.host(3).name) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .output();
    }
    // Its lease expires; its function is placed on a live host.
    let placed = || c.status(1)["cluster"]["placement"]["FnC"].clone();
    wait_for("h3 gone and FnC placed on a live host", 30, || {
        placed() == "h1" || placed() == "h2"
    });
    assert!(
        client.echoes("after", 10),
        "the h1-h2 connection survived h3"
    );
    // Its next invocation runs there.
    let k = if placed() == "h1" { 1 } else { 2 };
    let db = peer_server(&db_ns, "0.0.0.0:5432");
    wait_for("FnC's next invocation on its new host", 30, || {
        c.invoke(k, "FnC", "echo hi | nc -q1 -w5 10.0.2.10 5432")
            .status
            .success()
    });
    assert_eq!(db.stop(), 1);
    // etcd lost: the hosts forward what they have and refuse changes.
    drop(c.etcd.take());
    let out = c.host(1).try_apply(&wider);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("changes are refused while etcd cannot be reached"),
        "{said}"
    );
    assert!(client.echoes("without etcd", 10));
    drop(client);
    drop(echo);
}

/// A device of the machine standing for the VMs' network: one end of a
/// veth pair (this kernel has no dummy devices), whose macvlans in bridge
/// mode reach each other; removed (with its peer) on drop.
struct Nic(String);

impl Nic {
    fn new(mtu: u32) -> Self {
        let name = format!("vpcnic{}", std::process::id() % 100_000);
        let mtu = mtu.to_string();
        let ip = |a: &[&str]| {
            let o = std::process::Command::new("ip").args(a).output().unwrap();
            assert!(o.status.success(), "{}", text(&o));
        };
        let peer = format!("{name}p");
        ip(&[
            "link", "add", &name, "mtu", &mtu, "type", "veth", "peer", "name", &peer, "mtu", &mtu,
        ]);
        // Both ends up: a macvlan has the carrier of its device.
        ip(&["link", "set", &name, "up"]);
        ip(&["link", "set", &peer, "up"]);
        Nic(name)
    }
}

impl Drop for Nic {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

#[test]
fn hosts_reach_each_other_through_a_nic_of_the_machine() {
    let template = vpc::MULTI_HOST_TEMPLATE.to_string();
    // Too small an MTU for VXLAN is refused before anything is built.
    let small = Nic::new(1500);
    let etcd = Etcd::start();
    let name = unique_name("mhnic");
    let out = vpc_tests::vpc(
        &name,
        &[
            "up",
            "default",
            "--cluster",
            &etcd.url(),
            "--underlay",
            "10.250.0.1/24",
            "--underlay-dev",
            &small.0,
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("its MTU is 1500"), "{}", text(&out));
    assert!(vpc_tests::namespaces_with_prefix(&name).is_empty());
    drop((small, etcd));
    // Two hosts on a jumbo-frame device: h1's function reaches h2's
    // database through its ENI.
    let nic = Nic::new(9100);
    let c = Cluster::up_with(&template, 2, Some(&nic.0));
    let db = peer_server(&c.host(2).netns("Db"), "0.0.0.0:5432");
    let eni: Ipv4Addr = c.host(1).eni_address("AppSubnet").parse().unwrap();
    assert_eq!(c.peer_seen(1, "FnA").0, eni);
    assert_eq!(db.stop(), 1);
    drop(c);
    drop(nic);
}
