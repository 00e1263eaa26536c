//! `vpc up` and `vpc down`: a pending function, a bad template, cleaning up after themselves.
use std::{net::TcpStream, time::Duration};

use vpc_common::map_names;
use vpc_tests::{namespaces_with_prefix, spawn_in_netns, text, vpc, Deployment, FAST};

#[test]
fn invoke_fails_with_resource_conflict_while_the_function_is_pending() {
    // Pending until the test clock moves: for as long as the test takes.
    let d = Deployment::up("e2ef", "default", &["--clock", "test", "--eni-delay", "5m"]);
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Pending");
    assert_eq!(s["functions"][0]["state_reason_code"], "Creating");
    let out = d.vpc(&["invoke", "orders", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ResourceConflictException"),
        "{}",
        text(&out)
    );
    // The ENI is not in the datapath yet: nothing leaves the execution environment.
    let before = d.dropped("no_route");
    let c = spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        TcpStream::connect_timeout(&"10.0.1.10:5432".parse().unwrap(), Duration::from_secs(1))
            .is_ok()
    });
    assert!(!c.join().unwrap());
    assert!(d.dropped("no_route") > before);
}

#[test]
fn a_bad_template_names_the_resource_and_field_and_applies_nothing() {
    let name = vpc_tests::unique_name("e2eg");
    let path = std::env::temp_dir().join(format!("{name}.yaml"));
    let bad = vpc::DEFAULT_TEMPLATE.replace("FromPort: 9000", "FromPort: 90000");
    std::fs::write(&path, bad).unwrap();
    let out = vpc(&name, &["up", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("Resources.DatabaseUdpIngress.Properties.FromPort"),
        "{msg}"
    );
    assert!(
        namespaces_with_prefix(&name).is_empty(),
        "nothing may be half-applied"
    );
    assert!(!vpc::deploy::state_dir(&name).exists());
    assert!(!vpc::deploy::pin_dir(&name).exists());
}

#[test]
fn down_removes_namespaces_links_pins_and_state() {
    let d = Deployment::up("e2eh", "default", FAST);
    let name = d.name.clone();
    // Router, two hosts, the function's two execution environments and
    // the VPC's resolver.
    assert_eq!(namespaces_with_prefix(&name).len(), 6);
    assert!(vpc::deploy::pin_dir(&name)
        .join("maps")
        .join(map_names::CT)
        .exists());
    // Every VPC-side namespace has its resolv.conf (for `ip netns exec`).
    let etc = |ns: &str| std::path::Path::new("/etc/netns").join(ns);
    assert!(etc(&d.netns("DatabaseInstance"))
        .join("resolv.conf")
        .exists());
    drop(d);
    assert!(namespaces_with_prefix(&name).is_empty());
    let etc_left: Vec<_> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{name}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc_left.is_empty(), "{etc_left:?}");
    assert!(!vpc::deploy::pin_dir(&name).exists());
    assert!(!vpc::deploy::state_dir(&name).exists());
    let out = vpc(&name, &["status"]);
    assert!(!out.status.success());
}

#[test]
fn down_cleans_up_after_an_up_that_died_half_way() {
    let d = Deployment::up("e2ej", "default", &["--eni-delay", "100ms"]);
    // As if `vpc up` had been killed before writing its state (the store
    // with it).
    std::fs::remove_file(vpc::deploy::state_dir(&d.name).join(vpc::store::FILE)).unwrap();
    let out = d.vpc(&["down"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(namespaces_with_prefix(&d.name).is_empty());
    assert!(!vpc::deploy::pin_dir(&d.name).exists());
    std::mem::forget(d); // already down
}
