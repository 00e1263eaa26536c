//! Network ACLs through BPF_PROG_TEST_RUN: at subnet boundaries, first
//! match, stateless; ICMP errors judged by type and code; policy switches
//! atomic under a flood of packets.
use vpc::datapath::Maps;
use vpc::packet::{parse_and_verify, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{
    check, expect_translated, icmp_error, tcp, udp, APP, ENI, EXEC, FRAG_NEEDED, PORT_UNREACHABLE,
};

/// Function ENI and app host in subnet A (default ACL); databases in subnet
/// B behind a custom ACL.
const ACL_TEMPLATE: &str = fixture!("acl_subnet_boundary.yaml");

#[test]
fn network_acls_apply_at_subnet_boundaries_first_match_and_statelessly() {
    in_private_netns(|| {
        let mut h = Harness::new(ACL_TEMPLATE);
        let (fn_if, app_if, db_if, db2_if) = (
            h.ifindex("Fn"),
            h.ifindex("App"),
            h.ifindex("Db"),
            h.ifindex("Db2"),
        );
        let (db, db2) = ("10.0.2.10", "10.0.2.11");
        // Function -> database: inbound rule 100 admits 5432, outbound rule 100
        // admits the reply to the ENI's ephemeral NAT port.
        let (v, out) = h.run(fn_if, &tcp(EXEC, db, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let nat = parse_and_verify(&out).unwrap().sport;
        assert_eq!(
            h.run(db_if, &tcp(db, ENI, 5432, nat, TCP_SYN | TCP_ACK)).0,
            XDP_REDIRECT
        );
        // The app is denied by rule 90 although rule 100 and its groups allow it.
        assert_eq!(
            h.run(app_if, &tcp(APP, db, 40001, 5432, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::NaclIngressDenied, 1);
        check(&mut h, DropReason::SgIngressDenied, 0);
        // UDP goes in (rule 110), but no outbound rule admits the reply's
        // ephemeral port: stateless, the tracked reply is dropped.
        let (v, out) = h.run(fn_if, &udp(EXEC, db, 5000, 9000, false));
        assert_eq!(v, XDP_REDIRECT);
        let unat = parse_and_verify(&out).unwrap().sport;
        assert_eq!(h.run(db_if, &udp(db, ENI, 9000, unat, false)).0, XDP_DROP);
        check(&mut h, DropReason::NaclEgressDenied, 1);
        // Inside subnet B the ACL does not apply (no rule admits UDP 9000 out of B).
        assert_eq!(
            h.run(db2_if, &udp(db2, db, 7000, 9000, false)).0,
            XDP_REDIRECT
        );
        assert_eq!(
            h.run(db_if, &udp(db, db2, 9000, 7000, false)).0,
            XDP_REDIRECT
        );
        check(&mut h, DropReason::NaclEgressDenied, 1);
    });
}

/// Two policies for ACL_TEMPLATE's topology that never both admit App ->
/// Db:5432 — A: the database's groups refuse it, its ACL admits it; B: the
/// groups admit it, the ACL refuses it. A packet judged half by A and half
/// by B would be forwarded; one judged by either is dropped.
fn flip_policies() -> (String, String) {
    let a = ACL_TEMPLATE
        .replace("CidrIp: 10.0.0.0/16}", "CidrIp: 10.9.0.0/16}")
        .replace(
            "RuleNumber: 90, Protocol: 6, RuleAction: deny",
            "RuleNumber: 90, Protocol: 6, RuleAction: allow",
        );
    let b = ACL_TEMPLATE.to_string();
    (a, b)
}

#[test]
fn policy_switches_are_atomic_under_a_flood_of_packets() {
    use aya::programs::{TestRun, TestRunOptions, Xdp};
    use aya_obj::programs::XdpAttachType;
    use std::{
        collections::HashMap,
        sync::atomic::{AtomicBool, AtomicU64, Ordering},
    };
    in_private_netns(|| {
        let (ta, tb) = flip_policies();
        let mut h = Harness::new(&ta);
        let models = [ta, tb].map(|t| vpc::model::build(&t, &HashMap::new(), "test").unwrap());
        // bpffs is not mounted on a fresh machine; other tests may be
        // mounting it right now (the helper locks and mounts once).
        vpc::datapath::ensure_bpffs().unwrap();
        let pin = std::path::PathBuf::from(format!("/sys/fs/bpf/vpc-flip-{}", std::process::id()));
        h.dp.program(vpc::datapath::ROUTER_PROGRAM)
            .unwrap()
            .pin(&pin)
            .unwrap();
        struct Unpin(std::path::PathBuf);
        impl Drop for Unpin {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let _unpin = Unpin(pin.clone());
        let app_if = h.ifindex("App");
        let frame = tcp(APP, "10.0.2.10", 40000, 5432, TCP_SYN);
        let stop = AtomicBool::new(false);
        let runs = AtomicU64::new(0);
        let verdicts = std::thread::scope(|sc| {
            let runner = sc.spawn(|| {
                let prog = Xdp::from_pin(&pin, XdpAttachType::Interface).unwrap();
                let mut ctx = [0u8; 24];
                ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
                ctx[12..16].copy_from_slice(&app_if.to_ne_bytes());
                let mut seen = [0u64; 5];
                while !stop.load(Ordering::Relaxed) {
                    let mut out = vec![0u8; frame.len() + 256];
                    let r = prog
                        .test_run(TestRunOptions {
                            data_in: Some(&frame),
                            data_out: Some(&mut out),
                            ctx_in: Some(&ctx),
                            ..Default::default()
                        })
                        .unwrap();
                    seen[r.return_value as usize] += 1;
                    runs.fetch_add(1, Ordering::Relaxed);
                }
                seen
            });
            for k in 0..60u32 {
                // Packets under every policy, however the threads are
                // scheduled on a loaded machine.
                let before = runs.load(Ordering::Relaxed);
                while runs.load(Ordering::Relaxed) < before + 10 && !runner.is_finished() {
                    std::thread::yield_now();
                }
                let gen = 1 - h.dp.generation().unwrap();
                let e =
                    vpc::compile::compile(&models[(k as usize + 1) % 2], &h.links, gen).unwrap();
                h.dp.switch_policy(&e).unwrap();
                h.dp.clear_old_generation(e.gen).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            runner.join().unwrap()
        });
        assert_eq!(
            verdicts[XDP_REDIRECT as usize], 0,
            "a packet was judged by a mix of two policies: {verdicts:?}"
        );
        assert!(verdicts[XDP_DROP as usize] > 100, "{verdicts:?}");
        // Both policies were in force at some point, each with its own reason.
        let c = h.counters();
        assert!(
            c.dropped(DropReason::SgIngressDenied) > 0
                && c.dropped(DropReason::NaclIngressDenied) > 0,
            "{c:?}"
        );
    });
}

#[test]
fn network_acls_judge_icmp_errors_by_type_and_code_at_the_boundary() {
    let db = "10.0.2.10";
    // The database's subnet lets out TCP to ephemeral ports only: the
    // error about the function's packet is stopped there, before NAT.
    in_private_netns(|| {
        let mut h = Harness::new(ACL_TEMPLATE);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let (_, natted) = h.run(fn_if, &tcp(EXEC, db, 40000, 5432, TCP_SYN));
        let err = icmp_error(db, ENI, FRAG_NEEDED, &natted, 1000, None);
        assert_eq!(h.run(db_if, &err).0, XDP_DROP);
        check(&mut h, DropReason::NaclEgressDenied, 1);
        assert_eq!(h.counters().total_dropped(), 1, "{:?}", h.counters());
    });
    // With AWS's path-MTU rule (type 3 code 4 out of B; A has the default
    // ACL) it goes through, translated; another code still does not.
    let template = ACL_TEMPLATE.replace(
        "  Assoc:",
        "  IcmpOut: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 120, Protocol: 1, RuleAction: allow, Egress: true, CidrBlock: 10.0.0.0/16, Icmp: {Type: 3, Code: 4}}}\n  Assoc:",
    );
    in_private_netns(|| {
        let mut h = Harness::new(&template);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let fn_link = h.links["Fn"];
        let syn = tcp(EXEC, db, 40000, 5432, TCP_SYN);
        let (_, natted) = h.run(fn_if, &syn);
        let err = icmp_error(db, ENI, FRAG_NEEDED, &natted, 1000, None);
        let want = icmp_error(db, EXEC, FRAG_NEEDED, &syn, 1000, Some(&fn_link));
        expect_translated(&mut h, db_if, &err, &want);
        let err = icmp_error(db, ENI, PORT_UNREACHABLE, &natted, 1000, None);
        assert_eq!(h.run(db_if, &err).0, XDP_DROP);
        check(&mut h, DropReason::NaclEgressDenied, 1);
    });
}

/// The default network ACL is editable, as AWS says ("you can change the
/// contents of the default network ACL"): a deny entry with a lower rule
/// number than its rule 100 stops subnet A's traffic out to subnet B's
/// database, while another port still goes; rule 100 itself cannot be
/// added twice (`NetworkAclEntryAlreadyExists`).
#[test]
fn the_default_acl_takes_entries_of_its_own() {
    let deny = format!(
        "{ACL_TEMPLATE}  DenyOut:
    Type: AWS::EC2::NetworkAclEntry
    Properties: {{NetworkAclId: !GetAtt Vpc.DefaultNetworkAcl, RuleNumber: 50, Protocol: 6, RuleAction: deny, Egress: true, CidrBlock: 10.0.2.10/32, PortRange: {{From: 5432, To: 5432}}}}
"
    );
    in_private_netns(|| {
        let mut h = Harness::new(&deny);
        let app_if = h.ifindex("App");
        let before = h.counters().dropped(DropReason::NaclEgressDenied);
        let (v, _) = h.run(
            h.ifindex("Fn"),
            &tcp(EXEC, "10.0.2.10", 40000, 5432, TCP_SYN),
        );
        assert_eq!(v, XDP_DROP, "rule 50 of the default ACL");
        assert_eq!(
            h.counters().dropped(DropReason::NaclEgressDenied),
            before + 1
        );
        // Db2 is not denied: its own rule 100 path still works.
        let (v, _) = h.run(
            h.ifindex("Fn"),
            &tcp(EXEC, "10.0.2.11", 40001, 5432, TCP_SYN),
        );
        assert_eq!(v, XDP_REDIRECT);
        let _ = app_if;
    });
    let dup = ACL_TEMPLATE.to_string()
        + "  Dup:
    Type: AWS::EC2::NetworkAclEntry
    Properties: {NetworkAclId: !GetAtt Vpc.DefaultNetworkAcl, RuleNumber: 100, Protocol: -1, RuleAction: deny, Egress: false, CidrBlock: 0.0.0.0/0}
";
    let e = vpc::model::build(&dup, &Default::default(), "t").unwrap_err();
    assert!(
        e.to_string().contains("NetworkAclEntryAlreadyExists"),
        "{e}"
    );
}
