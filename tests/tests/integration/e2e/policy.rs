//! Network ACLs and security groups end to end, edited live and concurrently.
use vpc_tests::{
    connects, fixture, line_echo_server, tcp_server, text, Deployment, LineClient, FAST,
};

use super::{tcp_holder, udp_echo_server, udp_request};

/// The database sits in subnet B behind a custom ACL: rule 50 denies 5433,
/// rule 100 admits the rest of the VPC; outbound only TCP replies.
const ACL_TEMPLATE: &str = fixture!("acl_deny_before_allow.yaml");

#[test]
fn a_lower_numbered_acl_deny_beats_a_later_allow() {
    let d = Deployment::up("e2ek", ACL_TEMPLATE, FAST);
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    let ok = d.vpc(&[
        "invoke",
        "reports",
        "--",
        "sh",
        "-c",
        "echo hi | timeout 30 nc -q1 10.0.2.10 5432",
    ]);
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("pong"),
        "{}",
        text(&ok)
    );
    assert!(server.finish(30).is_some());
    // The groups allow 5433; the ACL's rule 50 denies it before rule 100 allows.
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5433");
    let out = connects(&d, "invoke", "reports", "10.0.2.10", 5433, 1);
    assert!(!out);
    assert_eq!(server.stop(), None);
    assert!(d.dropped("nacl_ingress_denied") >= 1);
}

#[test]
fn a_missing_ephemeral_port_rule_breaks_replies() {
    let d = Deployment::up("e2el", ACL_TEMPLATE, FAST);
    let server = udp_echo_server(&d.netns("Db"), "10.0.2.10:9000");
    let reply = udp_request(&d.exec_env_netns("Fn"), "10.0.2.10:9000", b"ping", 2);
    assert!(
        reply.is_none(),
        "the reply must not come back: no outbound UDP rule"
    );
    assert!(
        server.finish(30).is_some(),
        "the request itself got in (rule 100)"
    );
    assert!(d.dropped("nacl_egress_denied") >= 1);
}

#[test]
fn live_changes_groups_spare_tracked_connections_acls_cut_them() {
    let d = Deployment::up("e2em", ACL_TEMPLATE, FAST);
    let _server = line_echo_server(&d.netns("Db"), "10.0.2.10:5432");
    // A long-lived connection from the function, driven step by step: each
    // message with how long to wait for its echo (long where it must come,
    // short where it must not).
    let client = LineClient::connect(&d.exec_env_netns("Fn"), "10.0.2.10:5432");
    assert!(client.echoes("one", 30), "the connection works");
    // Remove the database's 5432-5433 rule: new connections fail at once,
    // the tracked one goes on (security groups are stateful).
    let no_rule = ACL_TEMPLATE.replace("        - {IpProtocol: tcp, FromPort: 5432, ToPort: 5433, SourceSecurityGroupId: !Ref FnSg}\n", "");
    assert_ne!(no_rule, ACL_TEMPLATE);
    d.apply(&no_rule);
    assert!(
        client.echoes("two", 30),
        "a tracked connection survives a group rule's removal"
    );
    let fresh = connects(&d, "invoke", "Fn", "10.0.2.10", 5432, 1);
    assert!(!fresh, "a new connection sees the removal at once");
    // The same policy again: the generation slot flips back. Conntrack keeps
    // ACL verdicts per policy epoch; with only the slot as the epoch, the
    // deny below (applied in the slot "two" passed under) would be missed.
    d.apply(&no_rule);
    // An ACL deny in front of the allow: it applies to the established
    // connection too (ACLs are stateless).
    let deny = no_rule.replace("RuleNumber: 50, Protocol: 6, RuleAction: deny, CidrBlock: 10.0.0.0/16, PortRange: {From: 5433, To: 5433}", "RuleNumber: 50, Protocol: 6, RuleAction: deny, CidrBlock: 10.0.0.0/16, PortRange: {From: 5432, To: 5433}");
    assert_ne!(deny, no_rule);
    d.apply(&deny);
    let before = d.dropped("nacl_ingress_denied");
    assert!(
        !client.echoes("three", 2),
        "an ACL change cuts an established connection"
    );
    assert!(d.dropped("nacl_ingress_denied") > before);
}

#[test]
fn sg_rule_edits_from_the_cli_take_effect_for_new_connections() {
    let d = Deployment::up("e2en", ACL_TEMPLATE, FAST);
    let reach = |wait| connects(&d, "invoke", "Fn", "10.0.2.10", 5432, wait);
    // Bound before the first connection, listening until the test ends.
    let _listener = tcp_holder(&d.netns("Db"), "10.0.2.10:5432");
    assert!(reach(5));
    let rule = [
        "--protocol",
        "tcp",
        "--port",
        "5432-5433",
        "--peer-group",
        "FnSg",
    ];
    let mut revoke = vec!["sg", "revoke-ingress", "DbSg"];
    revoke.extend(rule);
    let out = d.vpc(&revoke);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!reach(1), "revoked: new connections fail");
    let out = d.vpc(&revoke);
    assert!(
        !out.status.success() && text(&out).contains("InvalidPermission.NotFound"),
        "{}",
        text(&out)
    );
    let mut authorize = vec!["sg", "authorize-ingress", "DbSg"];
    authorize.extend(rule);
    let out = d.vpc(&authorize);
    assert!(out.status.success(), "{}", text(&out));
    assert!(reach(5), "authorized again");
    let out = d.vpc(&authorize);
    assert!(
        text(&out).contains("InvalidPermission.Duplicate"),
        "{}",
        text(&out)
    );
    let out = d.vpc(&[
        "sg",
        "authorize-ingress",
        "DbSg",
        "--protocol",
        "tcp",
        "--port",
        "1",
        "--peer-group",
        "Nope",
    ]);
    assert!(
        text(&out).contains("InvalidGroup.NotFound"),
        "{}",
        text(&out)
    );
}

#[test]
fn concurrent_policy_edits_are_serialized_and_none_is_lost() {
    let d = Deployment::up("e2eo", ACL_TEMPLATE, FAST);
    // Eight edits at once, each adding its own rule: all must land, and the
    // policy in force must stay whole (the function still reaches the DB).
    std::thread::scope(|s| {
        for port in 7001..7009u16 {
            let d = &d;
            s.spawn(move || {
                let port = port.to_string();
                let out = d.vpc(&[
                    "sg",
                    "authorize-ingress",
                    "DbSg",
                    "--protocol",
                    "tcp",
                    "--port",
                    &port,
                    "--cidr",
                    "10.0.1.0/24",
                ]);
                assert!(out.status.success(), "{}", text(&out));
            });
        }
    });
    let state = vpc::deploy::State::load(&d.name).unwrap();
    let db = state.model.group("DbSg").unwrap();
    assert_eq!(
        db.ingress.len(),
        2 + 8,
        "an edit was lost: {:?}",
        db.ingress
    );
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(
        connects(&d, "invoke", "Fn", "10.0.2.10", 5432, 5),
        "the policy in force is whole"
    );
    assert!(server.finish(30).is_some());
}
