//! The exactness test: every packet and byte of known flows, in both destinations and formats.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use vpc_tests::{fixture, text, Deployment};

use super::traffic::{nft, nft_counter, tcp_exchange, tcp_refused, udp_exchange, udp_send};
use super::{files_under, host, s3_records, snapshot_when, unix_now, Fields, TempDir};

const FLOW_TEMPLATE: &str = fixture!("flow_logs.yaml");

/// Records of the CloudWatch Logs streams of a log group: (stream, fields).
fn cwl_records(root: &Path, group: &str, format: &[String]) -> Vec<(String, Fields)> {
    let mut files = vec![];
    files_under(&root.join("cloudwatch").join(group), &mut files);
    let mut out = vec![];
    for f in files {
        let stream = f.file_name().unwrap().to_string_lossy().to_string();
        for l in std::fs::read_to_string(&f).unwrap().lines() {
            let v: Vec<&str> = l.split(' ').collect();
            assert_eq!(v.len(), format.len(), "{l}");
            out.push((
                stream.clone(),
                format
                    .iter()
                    .cloned()
                    .zip(v.iter().map(|s| s.to_string()))
                    .collect(),
            ));
        }
    }
    out
}

/// (interface, src, sport, dst, dport, protocol, action); `sport` "*" for
/// flows whose NAT port the test cannot know (refused before tracking).
type Key = (String, String, String, String, String, String, String);

fn key_of(r: &Fields, wild_sport: bool) -> Key {
    (
        r["interface-id"].clone(),
        r["srcaddr"].clone(),
        if wild_sport {
            "*".into()
        } else {
            r["srcport"].clone()
        },
        r["dstaddr"].clone(),
        r["dstport"].clone(),
        r["protocol"].clone(),
        r["action"].clone(),
    )
}

/// Sums (packets, bytes) of the OK records per flow; dport 22 is the
/// refused TCP, whose source port is a NAT port probed once.
fn sums(records: &[&Fields]) -> BTreeMap<Key, (u64, u64)> {
    let mut out: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r["log-status"] == "OK") {
        let e = out.entry(key_of(r, r["dstport"] == "22")).or_default();
        e.0 += r["packets"].parse::<u64>().unwrap();
        e.1 += r["bytes"].parse::<u64>().unwrap();
    }
    out
}

fn k(i: &str, s: &str, sp: impl ToString, d: &str, dp: impl ToString, p: u8, a: &str) -> Key {
    (
        i.into(),
        s.into(),
        sp.to_string(),
        d.into(),
        dp.to_string(),
        p.to_string(),
        a.into(),
    )
}

/// The exactness test: known flows (accepted and refused, TCP and UDP,
/// IPv4 and IPv6) between real sockets; every field of every record
/// checked against what was sent, in both destinations and formats, and
/// the files read again by `flowlogs-reader`.
#[test]
fn flow_log_records_count_every_packet_and_byte_of_known_flows() {
    let dir = TempDir::new("exact");
    // Short conntrack timeouts: most connections are collected before
    // their window is read, so what the GC removes must reach the records.
    let d = Deployment::up(
        "flx",
        FLOW_TEMPLATE,
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--flow-logs-dir",
            &dir.arg(),
            "--timeout",
            "tcp-closed=1",
            "--timeout",
            "udp=1",
        ],
    );
    let s = d.status();
    let (db, app) = (host(&s, "Db"), host(&s, "App"));
    let db6 = db["ipv6_address"].as_str().unwrap().to_string();
    let app6 = app["ipv6_address"].as_str().unwrap().to_string();
    let db_eni = db["eni_id"].as_str().unwrap().to_string();
    let app_eni = app["eni_id"].as_str().unwrap().to_string();
    let hp = &s["enis"][0];
    let hp_eni = hp["id"].as_str().unwrap().to_string();
    let eni4 = hp["address"].as_str().unwrap().to_string();
    let eni6 = hp["ipv6_address"].as_str().unwrap().to_string();
    let (fn_ns, db_ns, app_ns) = (d.exec_env_netns("Dual"), d.netns("Db"), d.netns("App"));
    nft(
        &db_ns,
        r#"table inet fl {
  counter t4in {}
  counter t4out {}
  counter t6in {}
  counter t6out {}
  chain in { type filter hook input priority 0; meta nfproto ipv4 tcp dport 5432 counter name "t4in"; meta nfproto ipv6 tcp dport 5432 counter name "t6in"; }
  chain out { type filter hook output priority 0; meta nfproto ipv4 tcp sport 5432 counter name "t4out"; meta nfproto ipv6 tcp sport 5432 counter name "t6out"; }
}"#,
    );
    nft(
        &fn_ns,
        r#"table inet fl {
  counter r4 {}
  counter r6 {}
  chain out { type filter hook output priority 0; meta nfproto ipv4 tcp dport 22 counter name "r4"; meta nfproto ipv6 tcp dport 22 counter name "r6"; }
}"#,
    );
    let t0 = unix_now();
    // Accepted: UDP and TCP, IPv4 and IPv6, function -> database.
    let u4 = udp_exchange(&fn_ns, &db_ns, "10.0.2.10:9000", 4, 100);
    let u6 = udp_exchange(&fn_ns, &db_ns, &format!("[{db6}]:9000"), 3, 200);
    let t4 = tcp_exchange(&fn_ns, &db_ns, "10.0.2.10:5432");
    let t6 = tcp_exchange(&fn_ns, &db_ns, &format!("[{db6}]:5432"));
    // Refused by the database's groups: TCP from the function (one SYN
    // each), UDP from the app server's interface.
    tcp_refused(&fn_ns, "10.0.2.10:22");
    tcp_refused(&fn_ns, &format!("[{db6}]:22"));
    udp_send(&app_ns, "10.0.1.20:7777", "10.0.2.10:9000", 3, 10);
    udp_send(
        &app_ns,
        &format!("[{app6}]:7777"),
        &format!("[{db6}]:9000"),
        2,
        10,
    );
    let t1 = unix_now();
    for (p, want) in [(&u4, &eni4), (&u6, &eni6), (&t4, &eni4), (&t6, &eni6)] {
        assert_eq!(p.ip().to_string(), *want, "the database sees the ENI");
    }
    let (tin4, tout4) = (nft_counter(&db_ns, "t4in"), nft_counter(&db_ns, "t4out"));
    let (tin6, tout6) = (nft_counter(&db_ns, "t6in"), nft_counter(&db_ns, "t6out"));
    let (r4, r6) = (nft_counter(&fn_ns, "r4"), nft_counter(&fn_ns, "r6"));
    assert_eq!((r4.0, r6.0), (1, 1), "one SYN each");
    assert!(tin4.0 >= 4 && tout4.0 >= 3, "{tin4:?} {tout4:?}");

    let mut expect: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    let both = |e: &mut BTreeMap<Key, (u64, u64)>,
                s: &str,
                sp: u16,
                d: &str,
                dp: u16,
                p: u8,
                n: (u64, u64)| {
        for i in [&hp_eni, &db_eni] {
            e.insert(k(i, s, sp, d, dp, p, "ACCEPT"), n);
        }
    };
    both(
        &mut expect,
        &eni4,
        u4.port(),
        "10.0.2.10",
        9000,
        17,
        (4, 4 * 128),
    );
    both(
        &mut expect,
        "10.0.2.10",
        9000,
        &eni4,
        u4.port(),
        17,
        (4, 4 * 128),
    );
    both(&mut expect, &eni6, u6.port(), &db6, 9000, 17, (3, 3 * 248));
    both(&mut expect, &db6, 9000, &eni6, u6.port(), 17, (3, 3 * 248));
    both(&mut expect, &eni4, t4.port(), "10.0.2.10", 5432, 6, tin4);
    both(&mut expect, "10.0.2.10", 5432, &eni4, t4.port(), 6, tout4);
    both(&mut expect, &eni6, t6.port(), &db6, 5432, 6, tin6);
    both(&mut expect, &db6, 5432, &eni6, t6.port(), 6, tout6);
    for (dst, n) in [("10.0.2.10", r4), (db6.as_str(), r6)] {
        let src = if dst.contains(':') { &eni6 } else { &eni4 };
        expect.insert(k(&hp_eni, src, "*", dst, 22, 6, "ACCEPT"), n);
        expect.insert(k(&db_eni, src, "*", dst, 22, 6, "REJECT"), n);
    }
    for (src, dst, n) in [
        ("10.0.1.20", "10.0.2.10", (3, 3 * 38)),
        (app6.as_str(), db6.as_str(), (2, 2 * 58)),
    ] {
        expect.insert(k(&app_eni, src, 7777, dst, 9000, 17, "ACCEPT"), n);
        expect.insert(k(&db_eni, src, 7777, dst, 9000, 17, "REJECT"), n);
    }

    // What the agent wrote so far (it goes on writing NODATA), once the
    // slower log has a window after the traffic for every interface.
    let enis: BTreeSet<&str> = [hp_eni.as_str(), db_eni.as_str(), app_eni.as_str()].into();
    let after_traffic = |r: &Fields| r["start"].parse::<u64>().unwrap() > t1 + 1;
    let snap = snapshot_when(&dir, |snap| {
        let s3 = s3_records(snap, "flow-bucket", "team");
        enis.iter().all(|e| {
            s3.iter()
                .any(|r| r["interface-id"] == *e && after_traffic(r))
        })
    });
    // S3, default format.
    let s3 = s3_records(&snap, "flow-bucket", "team");
    for r in &s3 {
        assert_eq!(
            (r["version"].as_str(), r["account-id"].as_str()),
            ("2", "123456789012"),
            "{r:?}"
        );
        assert!(enis.contains(r["interface-id"].as_str()), "{r:?}");
        let (start, end): (u64, u64) = (r["start"].parse().unwrap(), r["end"].parse().unwrap());
        assert!(start <= end, "{r:?}");
        match r["log-status"].as_str() {
            "OK" => {
                assert!(start + 1 >= t0 && end <= t1 + 1, "{t0}..{t1}: {r:?}");
                assert!(["ACCEPT", "REJECT"].contains(&r["action"].as_str()));
            }
            "NODATA" => {
                for f in [
                    "srcaddr", "dstaddr", "srcport", "dstport", "protocol", "packets", "bytes",
                    "action",
                ] {
                    assert_eq!(r[f], "-", "{r:?}");
                }
            }
            other => panic!("{other}: {r:?}"),
        }
    }
    let ok: Vec<&Fields> = s3.iter().collect();
    assert_eq!(sums(&ok), expect, "S3 records against what was sent");
    // A silent window after the traffic: NODATA for every interface.
    let late: Vec<&Fields> = s3.iter().filter(|r| after_traffic(r)).collect();
    for e in &enis {
        let nodata: Vec<_> = late.iter().filter(|r| r["interface-id"] == *e).collect();
        assert!(!nodata.is_empty(), "no NODATA for {e}");
        for r in nodata {
            assert_eq!(r["log-status"], "NODATA", "{r:?}");
            let (start, end): (u64, u64) = (r["start"].parse().unwrap(), r["end"].parse().unwrap());
            assert_eq!((end - start, start % 4), (4, 0), "a whole window: {r:?}");
        }
    }

    // CloudWatch Logs, every field of the custom format (versions 3-5).
    let format: Vec<String> = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path"
        .split(' ')
        .map(String::from)
        .collect();
    let cwl = cwl_records(&snap, "vpc/flows", &format);
    let name = &d.name;
    let vpc_id = vpc::model::flowlog::ec2_id("vpc", name, "Vpc");
    let streams: BTreeSet<String> = cwl.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(streams, enis.iter().map(|e| format!("{e}-all")).collect());
    let mut flags: BTreeMap<Key, u8> = BTreeMap::new();
    for (stream, r) in &cwl {
        let eni = r["interface-id"].as_str();
        assert_eq!(stream, &format!("{eni}-all"));
        assert_eq!(r["version"], "5");
        assert_eq!(r["account-id"], "123456789012");
        assert_eq!(r["vpc-id"], vpc_id);
        let (subnet, instance, az) = if eni == db_eni {
            (
                "B",
                vpc::model::flowlog::ec2_id("i", name, "Db"),
                "use1-az2",
            )
        } else {
            ("A", "-".to_string(), "use1-az1")
        };
        assert_eq!(
            r["subnet-id"],
            vpc::model::flowlog::ec2_id("subnet", name, subnet)
        );
        assert_eq!(r["instance-id"], instance);
        assert_eq!(
            (r["region"].as_str(), r["az-id"].as_str()),
            ("us-east-1", az)
        );
        for f in [
            "sublocation-type",
            "sublocation-id",
            "pkt-src-aws-service",
            "pkt-dst-aws-service",
        ] {
            assert_eq!(r[f], "-", "{r:?}");
        }
        let (start, end): (u64, u64) = (r["start"].parse().unwrap(), r["end"].parse().unwrap());
        if r["log-status"] == "NODATA" {
            assert_eq!((end - start, start % 2), (2, 0), "{r:?}");
            for f in [
                "tcp-flags",
                "type",
                "pkt-srcaddr",
                "pkt-dstaddr",
                "flow-direction",
                "traffic-path",
            ] {
                assert_eq!(r[f], "-", "{r:?}");
            }
            continue;
        }
        assert_eq!(r["log-status"], "OK", "{r:?}");
        assert!(start <= end && start + 1 >= t0 && end <= t1 + 1, "{r:?}");
        let v6 = r["srcaddr"].contains(':');
        assert_eq!(r["type"], if v6 { "IPv6" } else { "IPv4" });
        let own: Vec<&str> = if eni == hp_eni {
            vec![&eni4, &eni6]
        } else if eni == db_eni {
            vec!["10.0.2.10", &db6]
        } else {
            vec!["10.0.1.20", &app6]
        };
        let egress = own.contains(&r["srcaddr"].as_str());
        assert!(egress || own.contains(&r["dstaddr"].as_str()), "{r:?}");
        assert_eq!(
            r["flow-direction"],
            if egress { "egress" } else { "ingress" }
        );
        assert_eq!(r["traffic-path"], if egress { "1" } else { "-" });
        // Before NAT only on the Hyperplane ENI: the function's own address.
        let fn_addr = if v6 { "2001:2::a" } else { "198.19.0.10" };
        let (ps, pd) = match (eni == hp_eni, egress) {
            (true, true) => (fn_addr, r["dstaddr"].as_str()),
            (true, false) => (r["srcaddr"].as_str(), fn_addr),
            _ => (r["srcaddr"].as_str(), r["dstaddr"].as_str()),
        };
        assert_eq!(
            (r["pkt-srcaddr"].as_str(), r["pkt-dstaddr"].as_str()),
            (ps, pd),
            "{r:?}"
        );
        *flags.entry(key_of(r, r["dstport"] == "22")).or_default() |=
            r["tcp-flags"].parse::<u8>().unwrap();
    }
    let cwl_ok: Vec<&Fields> = cwl.iter().map(|(_, r)| r).collect();
    assert_eq!(
        sums(&cwl_ok),
        expect,
        "CloudWatch records against what was sent"
    );
    // TCP flags ORed: SYN and FIN one way, SYN-ACK and FIN the other, a
    // lone SYN for the refused ones, none for UDP.
    for (key, f) in &flags {
        let want = match (key.5.as_str(), key.4.as_str(), key.2.as_str()) {
            ("17", ..) => 0,
            (_, "22", _) => 2,
            (_, "5432", _) => 3,
            (_, _, "5432") => 19,
            _ => panic!("{key:?}"),
        };
        assert_eq!(*f, want, "{key:?}");
    }

    // The independent reader: flowlogs-reader parses both destinations.
    let mut args = vec![
        vpc_tests::fixture_path("read_flow_logs.py")
            .display()
            .to_string(),
        snap.join("s3").display().to_string(),
        "flow-bucket/team".into(),
    ];
    let fmt = format
        .iter()
        .map(|f| format!("${{{f}}}"))
        .collect::<Vec<_>>()
        .join(" ");
    for e in &enis {
        args.push(
            snap.join("cloudwatch/vpc/flows")
                .join(format!("{e}-all"))
                .display()
                .to_string(),
        );
        args.push(fmt.clone());
    }
    let out = Command::new(vpc_tests::pyenv_python())
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["skipped"], 0);
    let as_fields = |v: &serde_json::Value| -> Fields {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.replace('_', "-"), s)
            })
            .collect()
    };
    let ours = |rs: Vec<&Fields>| -> BTreeSet<Fields> {
        rs.into_iter()
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| *v != "-")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    };
    let theirs_s3: BTreeSet<Fields> = read["s3"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_fields)
        .collect();
    assert_eq!(
        theirs_s3,
        ours(ok),
        "flowlogs-reader reads the S3 objects as we wrote them"
    );
    let theirs_cwl: BTreeSet<Fields> = read["cwl"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_fields)
        .collect();
    assert_eq!(
        theirs_cwl,
        ours(cwl_ok),
        "flowlogs-reader reads the streams as we wrote them"
    );

    // `vpc flows tail`: the database's records from the start, in each
    // flow log's own format, then the default format live.
    let db_lines: Vec<String> = cwl
        .iter()
        .filter(|(_, r)| r["interface-id"] == db_eni)
        .map(|(_, r)| {
            format
                .iter()
                .map(|f| r[f].clone())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .chain(s3.iter().filter(|r| r["interface-id"] == db_eni).map(|r| {
            vpc::model::flowlog::DEFAULT_FIELDS
                .iter()
                .map(|f| r[*f].clone())
                .collect::<Vec<_>>()
                .join(" ")
        }))
        .collect();
    let count = db_lines.len().to_string();
    let out = d.vpc(&[
        "flows",
        "tail",
        "--eni",
        &db_eni,
        "--from-start",
        "--count",
        &count,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let tailed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let want: BTreeSet<String> = db_lines.into_iter().collect();
    assert!(
        want.is_subset(&tailed) && tailed.len() <= want.len() + 2,
        "tail:\n{tailed:#?}\nwritten:\n{want:#?}"
    );
    let out = d.vpc(&[
        "flows", "tail", "--eni", &app_eni, "--format", "default", "--count", "1",
    ]);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        line.starts_with(&format!("2 123456789012 {app_eni} - - - - - - - "))
            && line.trim_end().ends_with(" - NODATA")
            || line.starts_with(&format!("5 123456789012 {app_eni} - - - - - - - ")),
        "{line}"
    );
}
