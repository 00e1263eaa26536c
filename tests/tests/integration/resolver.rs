//! The VPC resolver (base + 2), end to end: real namespaces, the router's
//! XDP program, glibc's resolver (`getent`) asking through it.
use std::time::{Duration, Instant};

use serde_json::json;
use vpc_tests::{fixture, http_get, metric, namespaces_with_prefix, text, Deployment, FAST};

/// A function and a database in subnet A; `Locked` in subnet L, whose
/// group allows no egress (a rule only for 127.0.0.1/32) and whose network
/// ACL has no entries (denies everything both ways).
const TEMPLATE: &str = fixture!("vpc_resolver.yaml");

/// `getent hosts KEY` run by `verb` (`exec`/`invoke`) in `who`: its output
/// on success.
fn getent(d: &Deployment, verb: &str, who: &str, key: &str) -> Option<String> {
    let out = d.vpc(&[verb, who, "--", "timeout", "10", "getent", "hosts", key]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_vpc_resolver_answers_private_names_past_every_group_and_acl() {
    let d = Deployment::up("dnsa", TEMPLATE, FAST);
    // A function asks through its Hyperplane ENI (source NAT), both ways.
    let a = getent(&d, "invoke", "app", "ip-10-0-1-10.ec2.internal").expect("resolved");
    assert!(a.starts_with("10.0.1.10 "), "{a}");
    let ptr = getent(&d, "invoke", "app", "10.0.1.10").expect("reverse");
    assert!(ptr.contains("ip-10-0-1-10.ec2.internal"), "{ptr}");
    // The ENI has a private name too.
    let eni = d.eni_address("SubnetA");
    let name = format!("ip-{}.ec2.internal", eni.replace('.', "-"));
    let e = getent(&d, "invoke", "app", &name).expect("the ENI's name");
    assert!(e.starts_with(&format!("{eni} ")), "{e}");
    // The search domain of the VPC's DHCP options.
    assert!(getent(&d, "exec", "Db", "ip-10-0-3-10").is_some());
    // Unknown names: NXDOMAIN, nothing forwarded.
    assert_eq!(getent(&d, "invoke", "app", "example.com"), None);

    // `Locked`: no group rule and no ACL entry lets anything out, but DNS
    // to the resolver is never filtered, as at AWS.
    let l = getent(&d, "exec", "Locked", "ip-10-0-1-10.ec2.internal").expect("resolved");
    assert!(l.starts_with("10.0.1.10 "), "{l}");
    let nc = d.vpc(&[
        "exec",
        "Locked",
        "--",
        "timeout",
        "5",
        "nc",
        "-z",
        "-w1",
        "10.0.1.10",
        "5432",
    ]);
    assert!(!nc.status.success(), "the group lets nothing else out");
    assert!(d.dropped("sg_egress_denied") >= 1);
    // Anything but DNS to the resolver is dropped with its own reason.
    let before = d.dropped("resolver_not_dns");
    let udp = d.vpc(&[
        "exec",
        "Db",
        "--",
        "sh",
        "-c",
        "echo x | timeout 3 nc -u -w1 10.0.0.2 54; true",
    ]);
    assert!(udp.status.success(), "{}", text(&udp));
    assert!(d.dropped("resolver_not_dns") > before);
}

#[test]
fn without_enable_dns_support_there_is_no_resolver() {
    let d = Deployment::up(
        "dnsoff",
        TEMPLATE,
        &["--eni-delay", "100ms", "--wait", "-p", "DnsSupport=false"],
    );
    assert!(!namespaces_with_prefix(&d.name)
        .iter()
        .any(|n| n.contains("Resolver")));
    assert_eq!(getent(&d, "exec", "Db", "ip-10-0-1-10.ec2.internal"), None);
    assert!(d.dropped("no_route") >= 1);
}

/// The agent's tasks share one runtime: while a Lambda API request takes
/// its time (an invocation whose handler sleeps), the resolver, the
/// metrics and the rest of the API still answer.
#[test]
fn the_resolver_the_metrics_and_the_api_answer_while_an_invocation_runs() {
    let d = Deployment::up("dnsb", TEMPLATE, FAST);
    let mark = std::env::temp_dir().join(format!("{}.invoking", d.name));
    let body = json!({
        "FunctionName": "slow",
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::123456789012:role/x",
        "Handler": "bootstrap",
        // base64 of `touch "$MARK"; sleep 8; cat`
        "Code": {"ZipFile": "dG91Y2ggIiRNQVJLIjsgc2xlZXAgODsgY2F0"},
        "Environment": {"Variables": {"MARK": mark.display().to_string()}},
        "VpcConfig": {"SubnetIds": ["SubnetA"], "SecurityGroupIds": ["FnSg"]},
    });
    let body = serde_json::to_vec(&body).unwrap();
    let r = vpc::api::call(&d.name, "POST", "/2015-03-31/functions", &body).unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let name = d.name.clone();
    let slow = std::thread::spawn(move || {
        vpc::api::call(
            &name,
            "POST",
            "/2015-03-31/functions/slow/invocations",
            b"7",
        )
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the handler did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&mark);
    // The handler sleeps: each of these answers meanwhile.
    let a = getent(&d, "exec", "Db", "ip-10-0-1-10.ec2.internal").expect("resolved");
    assert!(a.starts_with("10.0.1.10 "), "{a}");
    let m = http_get(d.status()["metrics_url"].as_str().unwrap());
    assert!(metric(&m, "vpc_packets_forwarded_total").is_some(), "{m}");
    let r = vpc::api::call(&d.name, "GET", "/2015-03-31/functions", b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(!slow.is_finished(), "answered while the invocation ran");
    let r = slow.join().unwrap().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"7".as_slice()));
}

/// The namespace's `resolv.conf`, as `ip netns exec` mounts it.
fn resolv_conf(ns: &str) -> String {
    std::fs::read_to_string(format!("/etc/netns/{ns}/resolv.conf")).unwrap_or_default()
}

/// DHCP options sets and the DNS attributes, as AWS: without
/// `EnableDnsHostnames` the resolver does not answer the Amazon-provided
/// private names (while it still answers others); with it, it does, and an
/// instance's public DNS hostname is its private address inside the VPC and
/// its public one from the internet. A DHCP options set's domain and name
/// servers are what every namespace of the VPC (instances, execution
/// environments) finds in its `resolv.conf`, changed on the running
/// deployment by `vpc apply` (a renewed lease), and glibc asks the servers
/// it names.
#[test]
fn dhcp_options_and_dns_hostnames_are_what_namespaces_get() {
    let no_hostnames = TEMPLATE.replace(", EnableDnsHostnames: !Ref DnsSupport", "");
    let d = Deployment::up("dnsh", &no_hostnames, FAST);
    assert_eq!(getent(&d, "exec", "Db", "ip-10-0-1-10.ec2.internal"), None);
    let r = resolv_conf(&d.netns("Db"));
    assert!(
        r.contains("nameserver 10.0.0.2\n") && r.contains("search ec2.internal\n"),
        "{r}"
    );
    d.apply(TEMPLATE);
    // The resolver takes the new zone at its next reload.
    vpc_tests::wait_for("the private name resolves", 30, || {
        getent(&d, "exec", "Db", "ip-10-0-1-10.ec2.internal")
            .is_some_and(|a| a.starts_with("10.0.1.10 "))
    });
    // A set of our own: its domain, the VPC's resolver and another server.
    let with_set = format!(
        "{TEMPLATE}  Opts:
    Type: AWS::EC2::DHCPOptions
    Properties: {{DomainName: corp.example ec2.internal, DomainNameServers: [AmazonProvidedDNS, 10.0.1.53]}}
  OptsAssoc:
    Type: AWS::EC2::VPCDHCPOptionsAssociation
    Properties: {{VpcId: !Ref Vpc, DhcpOptionsId: !Ref Opts}}
"
    );
    d.apply(&with_set);
    for ns in [d.netns("Db"), d.exec_env_netns("Fn")] {
        let r = resolv_conf(&ns);
        assert!(
            r.contains("nameserver 10.0.0.2\nnameserver 10.0.1.53\n")
                && r.contains("search corp.example ec2.internal\n"),
            "{ns}: {r}"
        );
    }
    // The search list at work: a short name, completed by glibc.
    let a = getent(&d, "exec", "Db", "ip-10-0-1-10").expect("completed by the search list");
    assert!(a.starts_with("10.0.1.10 "), "{a}");
    // Only a server nobody runs: glibc asks it, and nothing answers.
    let dead = with_set.replace("[AmazonProvidedDNS, 10.0.1.53]", "[10.0.1.53]");
    d.apply(&dead);
    let r = resolv_conf(&d.netns("Db"));
    assert!(
        !r.contains("10.0.0.2") && r.contains("nameserver 10.0.1.53"),
        "{r}"
    );
    assert_eq!(getent(&d, "exec", "Db", "ip-10-0-1-10.ec2.internal"), None);
    // Back to AWS's default set.
    d.apply(TEMPLATE);
    let r = resolv_conf(&d.netns("Db"));
    assert!(
        r.contains("nameserver 10.0.0.2\n") && r.contains("search ec2.internal\n"),
        "{r}"
    );
}
