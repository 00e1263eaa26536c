//! VPC endpoints end to end, with real clients in real namespaces: a
//! private subnet with no NAT gateway and no internet route reaches S3
//! through a gateway endpoint (and not once its route is gone); an
//! interface endpoint is reached by its private DNS name through the VPC
//! resolver, and its security group refuses a client it does not allow.
use vpc_tests::{fixture, text, Deployment, FAST};

/// Private subnets only: no internet gateway, no NAT gateway. `PrivateRt`
/// holds only the S3 gateway endpoint's route (`TABLES`). An SQS interface
/// endpoint in PrivateA with private DNS; its group admits `AppSg` on 80.
const TEMPLATE: &str = fixture!("vpc_endpoints.yaml");

fn template(with_route: bool) -> String {
    TEMPLATE
        .replace("TABLES", if with_route { "[!Ref PrivateRt]" } else { "[]" })
        .replace("GROUPS", "[!Ref EndpointSg]")
}

/// The simulated service's JSON answer to `curl` run by `cmd` (`exec X` or
/// `invoke fetch`), or `None` when it does not get through.
fn curl(d: &Deployment, who: &[&str], url: &str) -> Option<serde_json::Value> {
    let mut args = who.to_vec();
    args.extend(["--", "curl", "-sS", "--max-time", "3", url]);
    let out = d.vpc(&args);
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out))))
}

#[test]
fn a_private_function_reaches_s3_through_a_gateway_endpoint_without_nat() {
    let d = Deployment::up("ep-gw", &template(true), FAST);
    let eni = d.eni_address("PrivateA");
    // By its regional name, which the VPC resolver answers as public DNS
    // would: the function leaves by its ENI, then its subnet's table.
    let r = curl(
        &d,
        &["invoke", "fetch"],
        "http://s3.us-east-1.amazonaws.com/bucket/key",
    )
    .expect("the function reaches S3 through the endpoint");
    assert_eq!(r["Service"], "com.amazonaws.us-east-1.s3");
    assert_eq!(
        r["SourceIp"],
        eni.as_str(),
        "the ENI's private address: no NAT"
    );
    assert_eq!(r["Path"], "/bucket/key");
    // An instance in the same subnet, by address: its own private source.
    let r = curl(&d, &["exec", "App"], "http://198.18.0.10/").expect("the instance reaches S3");
    assert_eq!(r["SourceIp"], "10.0.2.10");
    // The other subnet's table (the main one) has no endpoint route.
    let before = d.dropped("no_route");
    assert!(curl(&d, &["exec", "Stranger"], "http://198.18.0.10/").is_none());
    assert!(d.dropped("no_route") > before);
    // The endpoint's route taken out of the table (`vpc apply`): no way
    // to S3 any more, and nothing else goes out either.
    d.apply(&template(false));
    let before = d.dropped("no_route");
    assert!(curl(
        &d,
        &["invoke", "fetch"],
        "http://s3.us-east-1.amazonaws.com/"
    )
    .is_none());
    assert!(curl(&d, &["exec", "App"], "http://198.18.0.10/").is_none());
    assert!(d.dropped("no_route") >= before + 2);
}

#[test]
fn an_interface_endpoint_is_reached_by_its_private_dns_name_and_its_group_decides() {
    let d = Deployment::up("ep-if", &template(true), FAST);
    // The VPC resolver answers the service's regional name with the
    // endpoint's ENI address, inside the VPC.
    let out = d.vpc(&[
        "exec",
        "App",
        "--",
        "getent",
        "hosts",
        "sqs.us-east-1.amazonaws.com",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let resolved = String::from_utf8_lossy(&out.stdout).into_owned();
    let eni_ip = resolved.split_whitespace().next().unwrap().to_string();
    assert!(
        eni_ip.starts_with("10.0.2."),
        "an address of PrivateA: {resolved}"
    );
    let r = curl(
        &d,
        &["exec", "App"],
        "http://sqs.us-east-1.amazonaws.com/queue",
    )
    .expect("the app reaches the endpoint");
    assert_eq!(r["Service"], "com.amazonaws.us-east-1.sqs");
    assert!(r["VpcEndpointId"].as_str().unwrap().starts_with("vpce-0"));
    assert_eq!(r["SourceIp"], "10.0.2.10", "inside the VPC: no NAT");
    // The function too, from its ENI (a member of AppSg).
    let r = curl(
        &d,
        &["invoke", "fetch"],
        "http://sqs.us-east-1.amazonaws.com/",
    )
    .expect("the function reaches the endpoint");
    assert_eq!(r["SourceIp"], d.eni_address("PrivateA").as_str());
    // A client outside AppSg: the endpoint's group refuses it.
    let before = d.dropped("sg_ingress_denied");
    assert!(curl(
        &d,
        &["exec", "Stranger"],
        "http://sqs.us-east-1.amazonaws.com/"
    )
    .is_none());
    assert!(d.dropped("sg_ingress_denied") > before);
    // The endpoint's groups change live (`vpc apply`), as a host's do.
    d.apply(&template(true).replace("[!Ref EndpointSg]", "[!Ref EndpointSg, !Ref OpenSg]"));
    let r = curl(
        &d,
        &["exec", "Stranger"],
        "http://sqs.us-east-1.amazonaws.com/",
    )
    .expect("OpenSg admits the other subnet");
    assert_eq!(r["SourceIp"], "10.0.3.10");
    // Nothing opens a connection from the endpoint's ENI.
    let ns = d.netns("SqsEndpoint.1");
    let st = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "curl",
            "-sS",
            "--max-time",
            "2",
            "http://10.0.2.10:22/",
        ])
        .status()
        .unwrap();
    assert!(!st.success());
    assert!(d.dropped("aws_service_unsolicited") >= 1);
}
