//! VPC endpoints of the EC2 API (the AWS CLI): a gateway endpoint created
//! on the template's main table takes the database instance, in a subnet
//! with no way out, to the simulated S3 with its own address, and not
//! once deleted; the services and AWS-managed prefix lists it names are
//! described; an interface endpoint's ENI and names; AWS's codes.
use serde_json::Value;
use vpc_tests::{text, Deployment};

use super::{aws, main_table, network, ok, s, up, Network};

/// The simulated service's JSON answer to `curl URL` from host `who`, or
/// `None` when it does not get through.
fn curl(d: &Deployment, who: &str, url: &str) -> Option<Value> {
    let out = d.vpc(&["exec", who, "--", "curl", "-sS", "--max-time", "3", url]);
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out))))
}

#[test]
fn a_gateway_endpoint_of_the_api_takes_a_private_host_to_s3() {
    let (d, url) = up("ec2vpce");
    let Network { vpc, subnet, .. } = network(&d);
    let rtb = main_table(&url, &vpc);
    assert!(
        curl(&d, "Db", "http://198.18.0.10/").is_none(),
        "no way to S3 yet"
    );

    // What an endpoint names: the service, and its AWS-managed list.
    let svc = ok(
        &url,
        &[
            "describe-vpc-endpoint-services",
            "--filters",
            "Name=service-type,Values=Gateway",
        ],
    );
    let names: Vec<&Value> = svc["ServiceNames"].as_array().unwrap().iter().collect();
    assert!(
        names.contains(&&Value::from("com.amazonaws.us-east-1.s3")),
        "{svc}"
    );
    let pl = ok(
        &url,
        &[
            "describe-prefix-lists",
            "--filters",
            "Name=prefix-list-name,Values=com.amazonaws.us-east-1.s3",
        ],
    );
    let pl_id = s(&pl["PrefixLists"][0]["PrefixListId"]);
    assert_eq!(pl["PrefixLists"][0]["Cidrs"][0], "198.18.0.10/32", "{pl}");

    let made = ok(
        &url,
        &[
            "create-vpc-endpoint",
            "--vpc-id",
            &vpc,
            "--service-name",
            "com.amazonaws.us-east-1.s3",
            "--route-table-ids",
            &rtb,
            "--tag-specifications",
            "ResourceType=vpc-endpoint,Tags=[{Key=Name,Value=s3}]",
        ],
    );
    let e = &made["VpcEndpoint"];
    let vpce = s(&e["VpcEndpointId"]);
    assert!(vpce.starts_with("vpce-"), "{made}");
    assert_eq!(e["VpcEndpointType"], "Gateway", "{made}");
    assert_eq!(e["State"], "available", "{made}");
    assert_eq!(e["RouteTableIds"][0], rtb.as_str(), "{made}");
    // The table's route to the list, by the endpoint.
    let t = ok(&url, &["describe-route-tables", "--route-table-ids", &rtb]);
    let routes = t["RouteTables"][0]["Routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["DestinationPrefixListId"] == pl_id.as_str()
                && r["GatewayId"] == vpce.as_str()),
        "{t}"
    );
    let r = curl(&d, "Db", "http://198.18.0.10/bucket/key").expect("S3 through the endpoint");
    assert_eq!(r["Service"], "com.amazonaws.us-east-1.s3");
    assert_eq!(
        r["SourceIp"], "10.42.1.10",
        "its own private address: no NAT"
    );
    let found = ok(
        &url,
        &[
            "describe-vpc-endpoints",
            "--filters",
            "Name=tag:Name,Values=s3",
            "Name=vpc-endpoint-type,Values=Gateway",
        ],
    );
    assert_eq!(found["VpcEndpoints"][0]["VpcEndpointId"], vpce.as_str());

    // An interface endpoint: an ENI in the subnet, its names.
    let ifc = ok(
        &url,
        &[
            "create-vpc-endpoint",
            "--vpc-endpoint-type",
            "Interface",
            "--vpc-id",
            &vpc,
            "--service-name",
            "com.amazonaws.us-east-1.sqs",
            "--subnet-ids",
            &subnet,
            "--no-private-dns-enabled",
        ],
    );
    let ie = &ifc["VpcEndpoint"];
    assert_eq!(ie["SubnetIds"][0], subnet.as_str(), "{ifc}");
    assert!(
        s(&ie["NetworkInterfaceIds"][0]).starts_with("eni-"),
        "{ifc}"
    );
    assert!(
        s(&ie["DnsEntries"][0]["DnsName"]).ends_with(".sqs.us-east-1.vpce.amazonaws.com"),
        "{ifc}"
    );
    assert_eq!(ie["PrivateDnsEnabled"], false, "{ifc}");

    // Deleted: the route goes with it; unknown ids as EC2 says them.
    let del = ok(
        &url,
        &[
            "delete-vpc-endpoints",
            "--vpc-endpoint-ids",
            &vpce,
            "vpce-00000000000000000",
        ],
    );
    assert_eq!(
        del["Unsuccessful"][0]["ResourceId"], "vpce-00000000000000000",
        "{del}"
    );
    assert_eq!(
        del["Unsuccessful"][0]["Error"]["Code"], "InvalidVpcEndpoint.NotFound",
        "{del}"
    );
    assert!(curl(&d, "Db", "http://198.18.0.10/").is_none(), "deleted");
    let e = aws(
        &url,
        &["describe-vpc-endpoints", "--vpc-endpoint-ids", &vpce],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidVpcEndpointId.NotFound)"), "{e}");
    let e = aws(
        &url,
        &[
            "create-vpc-endpoint",
            "--vpc-id",
            &vpc,
            "--service-name",
            "com.amazonaws.us-east-1.sqs",
            "--route-table-ids",
            &rtb,
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidServiceName)"), "{e}");
}
