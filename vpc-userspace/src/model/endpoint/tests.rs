use std::collections::HashMap;

use vpc_common::route_kind;

use super::*;
use crate::model::{build, route_table::Target};

const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16, EnableDnsHostnames: true}}
  PrivateA: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1a}}
  PrivateB: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24, AvailabilityZone: us-east-1b}}
  PrivateRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  OtherRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  Assoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref PrivateA, RouteTableId: !Ref PrivateRt}}
  EndpointSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: e, VpcId: !Ref Vpc}}
  S3Endpoint:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcId: !Ref Vpc, ServiceName: !Sub 'com.amazonaws.${AWS::Region}.s3', RouteTableIds: [!Ref PrivateRt]}
  SqsEndpoint:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcId: !Ref Vpc, VpcEndpointType: Interface, ServiceName: com.amazonaws.us-east-1.sqs, SubnetIds: [!Ref PrivateA, !Ref PrivateB], SecurityGroupIds: [!Ref EndpointSg], PrivateDnsEnabled: true}
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PrivateA}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Environment:
        Variables:
          ENDPOINT: !Ref SqsEndpoint
          ENIS: !Join [',', !GetAtt SqsEndpoint.NetworkInterfaceIds]
          DNS: !Select [0, !GetAtt SqsEndpoint.DnsEntries]
"#;

fn model(t: &str) -> crate::model::Model {
    build(t, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_gateway_endpoint_routes_its_managed_prefix_list_in_the_chosen_tables_only() {
    let m = model(BASE);
    let e = m.vpc_endpoint("S3Endpoint").unwrap();
    assert_eq!(e.kind, EndpointType::Gateway);
    assert_eq!(e.service, "s3");
    assert!(e.vpce_id.starts_with("vpce-0") && e.vpce_id.len() == 22);
    let pl = managed_prefix_list_id("us-east-1", "s3");
    assert!(pl.starts_with("pl-") && pl.len() == 11);
    assert_eq!(
        m.prefix_list(&pl).unwrap().cidrs,
        vec!["198.18.0.10/32".parse::<IpNet>().unwrap()]
    );
    let rt = m.route_table("PrivateRt").unwrap();
    assert_eq!(rt.routes.len(), 1);
    assert_eq!(rt.routes[0].destination, Destination::PrefixList(pl));
    assert_eq!(
        rt.routes[0].target,
        Target::VpcEndpoint("S3Endpoint".into())
    );
    assert!(m.route_table("OtherRt").unwrap().routes.is_empty());
    assert!(m
        .route_table("Vpc.MainRouteTable")
        .unwrap()
        .routes
        .is_empty());
    assert!(m.has_aws_services());
    // Without a gateway endpoint, no AWS services namespace.
    let gw = "  S3Endpoint:\n    Type: AWS::EC2::VPCEndpoint\n    Properties: {VpcId: !Ref Vpc, ServiceName: !Sub 'com.amazonaws.${AWS::Region}.s3', RouteTableIds: [!Ref PrivateRt]}\n";
    assert!(BASE.contains(gw));
    assert!(!model(&BASE.replace(gw, "")).has_aws_services());
}

#[test]
fn compiled_routes_send_the_service_address_to_the_endpoint_and_a_static_route_wins() {
    let t = format!(
        "{BASE}  Static: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref OtherRt, DestinationCidrBlock: 198.18.0.10/32, GatewayId: !Ref Igw}}}}\n  Igw: {{Type: AWS::EC2::InternetGateway}}\n  Attach: {{Type: AWS::EC2::VPCGatewayAttachment, Properties: {{VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}}}\n"
    )
    .replace("RouteTableIds: [!Ref PrivateRt]", "RouteTableIds: [!Ref PrivateRt, !Ref OtherRt]");
    let m = model(&t);
    let mut out = crate::compile::Entries::default();
    crate::compile::route_table::compile_routes(&m, 0, &mut out);
    assert_eq!(m.vpc_endpoint_index("S3Endpoint"), Some(1));
    let kind = |table: &str, a: &str| {
        crate::compile::route_table::lookup(&out, out.route_tables[table], a.parse().unwrap())
            .map(|t| (t.kind, t.id))
    };
    assert_eq!(
        kind("PrivateRt", "198.18.0.10"),
        Some((route_kind::GATEWAY_ENDPOINT, 1))
    );
    // DynamoDB has no endpoint here: no route.
    assert_eq!(kind("PrivateRt", "198.18.0.11"), None);
    assert_eq!(kind("Vpc.MainRouteTable", "198.18.0.10"), None);
    // An equal static route beats the prefix-list route, as at AWS.
    assert_eq!(
        kind("OtherRt", "198.18.0.10"),
        Some((route_kind::INTERNET_GATEWAY, 1))
    );
}

#[test]
fn an_interface_endpoint_has_an_eni_per_subnet_with_its_groups_and_names() {
    let m = model(BASE);
    let e = m.vpc_endpoint("SqsEndpoint").unwrap();
    assert_eq!(e.kind, EndpointType::Interface);
    assert_eq!(e.groups, vec!["EndpointSg".to_string()]);
    assert!(e.private_dns);
    let ips: Vec<String> = e
        .enis
        .iter()
        .map(|(_, h)| m.hosts.iter().find(|x| &x.id == h).unwrap().ip.to_string())
        .collect();
    // Web takes 10.0.1.4 first (hosts before endpoints).
    assert_eq!(ips, ["10.0.1.5", "10.0.2.4"]);
    let h = m.hosts.iter().find(|h| h.id == "SqsEndpoint.1").unwrap();
    assert_eq!(
        (h.kind, h.subnet.as_str()),
        (HostKind::VpcEndpoint, "PrivateA")
    );
    // Its group's members include the ENIs, as at AWS.
    assert_eq!(m.members("EndpointSg").len(), 2);
    // The resolver: private DNS answers both ENIs in the VPC, the
    // endpoint's own names, and the gateway services' public names.
    let z = crate::resolver::Zone::of(&m, m.vpc("Vpc").unwrap());
    let a = |n: &str| {
        z.a.get(n)
            .map(|v| v.iter().map(|i| i.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(
        a("sqs.us-east-1.amazonaws.com."),
        Some(vec!["10.0.1.5".into(), "10.0.2.4".into()])
    );
    let own = format!("{}.", e.dns_name("us-east-1"));
    assert!(
        own.starts_with(&format!("{}-", e.vpce_id))
            && own.ends_with(".sqs.us-east-1.vpce.amazonaws.com.")
    );
    assert_eq!(a(&own).unwrap().len(), 2);
    assert_eq!(
        a(&format!("{}.", e.zonal_dns_name("us-east-1", "us-east-1b"))),
        Some(vec!["10.0.2.4".into()])
    );
    assert_eq!(
        a("s3.us-east-1.amazonaws.com."),
        Some(vec!["198.18.0.10".into()])
    );
    assert_eq!(
        a("dynamodb.us-east-1.amazonaws.com."),
        Some(vec!["198.18.0.11".into()])
    );
    // Without private DNS the regional name is not the endpoint's: it is
    // the service's public address.
    let m = model(&BASE.replace("PrivateDnsEnabled: true", "PrivateDnsEnabled: false"));
    let z = crate::resolver::Zone::of(&m, m.vpc("Vpc").unwrap());
    assert_eq!(
        z.a["sqs.us-east-1.amazonaws.com."],
        vec!["198.18.0.12".parse::<std::net::Ipv4Addr>().unwrap()]
    );
}

#[test]
fn ref_and_getatt_give_the_endpoint_id_its_enis_and_names() {
    let m = model(BASE);
    let e = m.vpc_endpoint("SqsEndpoint").unwrap();
    assert_eq!(
        e.vpce_id,
        crate::model::flowlog::ec2_id("vpce", "s", "SqsEndpoint")
    );
    let env = &m.function("Fn").unwrap().environment;
    assert_eq!(env["ENDPOINT"], e.vpce_id);
    let enis: Vec<String> = e
        .enis
        .iter()
        .map(|(_, h)| crate::model::flowlog::host_eni_id("s", h))
        .collect();
    assert_eq!(env["ENIS"], enis.join(","));
    assert_eq!(
        env["DNS"],
        format!("Z7HUB22UULQXV:{}", e.dns_name("us-east-1"))
    );
}

#[test]
fn bad_endpoints_name_their_field() {
    let gw = "ServiceName: !Sub 'com.amazonaws.${AWS::Region}.s3', RouteTableIds: [!Ref PrivateRt]";
    let cases = [
        (BASE.replace(gw, "ServiceName: com.amazonaws.us-east-1.sqs, RouteTableIds: [!Ref PrivateRt]"), "S3Endpoint.Properties.ServiceName", "no gateway endpoint"),
        (BASE.replace(gw, "ServiceName: com.amazonaws.eu-west-1.s3, RouteTableIds: [!Ref PrivateRt]"), "S3Endpoint.Properties.ServiceName", "InvalidServiceName"),
        (BASE.replace(gw, "RouteTableIds: [!Ref PrivateRt]"), "S3Endpoint.Properties.ServiceName", "is required"),
        (BASE.replace(gw, "ServiceName: com.amazonaws.us-east-1.s3, RouteTableIds: [!Ref PrivateRt, rtb-0nope]"), "S3Endpoint.Properties.RouteTableIds[1]", "InvalidRouteTableId.NotFound"),
        (BASE.replace(gw, "ServiceName: com.amazonaws.us-east-1.s3, RouteTableIds: [!Ref PrivateRt], SubnetIds: [!Ref PrivateA]"), "S3Endpoint.Properties.SubnetIds", "interface endpoints"),
        (BASE.replace(gw, "ServiceName: com.amazonaws.us-east-1.s3, VpcEndpointType: GatewayLoadBalancer"), "S3Endpoint.Properties.VpcEndpointType", "Gateway or Interface"),
        (format!("{BASE}  S3Again: {{Type: AWS::EC2::VPCEndpoint, Properties: {{VpcId: !Ref Vpc, ServiceName: com.amazonaws.us-east-1.s3, RouteTableIds: [!Ref PrivateRt]}}}}\n"), "RouteTableIds[0]", "RouteAlreadyExists"),
        (format!("{BASE}  Other: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.1.0.0/16}}}}\n  OtherVpcRt: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Other}}}}\n").replace("RouteTableIds: [!Ref PrivateRt]", "RouteTableIds: [!Ref OtherVpcRt]"), "S3Endpoint.Properties.RouteTableIds[0]", "belongs to VPC Other"),
        (BASE.replace("SubnetIds: [!Ref PrivateA, !Ref PrivateB]", "SubnetIds: [!Ref PrivateA, subnet-0nope]"), "SqsEndpoint.Properties.SubnetIds[1]", "InvalidSubnetID.NotFound"),
        (BASE.replace("SubnetIds: [!Ref PrivateA, !Ref PrivateB]", "SubnetIds: []"), "SqsEndpoint.Properties.SubnetIds", "at least one subnet"),
        (BASE.replace("us-east-1b", "us-east-1a"), "SqsEndpoint.Properties.SubnetIds[1]", "DuplicateSubnetsInSameZone"),
        (BASE.replace("SecurityGroupIds: [!Ref EndpointSg]", "SecurityGroupIds: [sg-0nope]"), "SqsEndpoint.Properties.SecurityGroupIds[0]", "InvalidSecurityGroup"),
        (BASE.replace("SubnetIds: [!Ref PrivateA, !Ref PrivateB]", "SubnetIds: [!Ref PrivateA], RouteTableIds: [!Ref PrivateRt]"), "SqsEndpoint.Properties.RouteTableIds", "gateway endpoints"),
        (BASE.replace("EnableDnsHostnames: true", "EnableDnsHostnames: false"), "SqsEndpoint.Properties.PrivateDnsEnabled", "requires both enableDnsSupport and enableDnsHostnames"),
        (format!("{BASE}  SqsAgain: {{Type: AWS::EC2::VPCEndpoint, Properties: {{VpcId: !Ref Vpc, VpcEndpointType: Interface, ServiceName: com.amazonaws.us-east-1.sqs, SubnetIds: [!Ref PrivateB], PrivateDnsEnabled: true}}}}\n"), "SqsEndpoint.Properties.PrivateDnsEnabled", "SqsAgain already has private DNS"),
        (format!("{BASE}  ToVpce: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref OtherRt, DestinationCidrBlock: 0.0.0.0/0, VpcEndpointId: !Ref S3Endpoint}}}}\n"), "ToVpce.Properties.VpcEndpointId", "Gateway Load Balancer"),
        (format!("{BASE}  AwsServices: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref PrivateB}}}}\n"), "S3Endpoint.Properties", "AWS services' namespace"),
        (BASE.replace("{CidrBlock: 10.0.0.0/16, EnableDnsHostnames: true}", "{CidrBlock: 198.18.0.0/16, EnableDnsHostnames: true}").replace("10.0.1.0/24", "198.18.1.0/24").replace("10.0.2.0/24", "198.18.2.0/24"), "Vpc.Properties.CidrBlock", "AWS services range"),
    ];
    for (t, path, msg) in cases {
        let e = build(&t, &HashMap::new(), "s").expect_err(path).to_string();
        assert!(
            e.contains(path) && e.contains(msg),
            "got {e:?}, want {path} / {msg}"
        );
    }
}

#[test]
fn an_endpoint_route_counts_toward_the_table_quota() {
    // 50 static IPv4 routes fill the table; the endpoint's prefix-list
    // route (MaxEntries 1) is one too many.
    let mut t = BASE.to_string();
    for i in 0..50 {
        t.push_str(&format!(
            "  R{i}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PrivateRt, DestinationCidrBlock: 192.0.{i}.0/24, GatewayId: !Ref Igw}}}}\n"
        ));
    }
    t.push_str("  Igw: {Type: AWS::EC2::InternetGateway}\n");
    let e = build(&t, &HashMap::new(), "s").unwrap_err().to_string();
    assert!(
        e.contains("S3Endpoint.Properties.RouteTableIds[0]") && e.contains("RouteLimitExceeded"),
        "{e}"
    );
    // 49 leave room for it.
    let t = t.replace("  R49: ", "  #R49: ");
    let m = model(&t);
    assert_eq!(m.route_table("PrivateRt").unwrap().routes.len(), 50);
}

#[test]
fn an_internet_host_may_not_sit_in_the_aws_services_range() {
    let t = format!(
        "{BASE}Metadata:\n  Vpc::Internet:\n    Hosts:\n      Example: {{Address: 198.18.0.10}}\n"
    );
    let e = build(&t, &HashMap::new(), "s").unwrap_err().to_string();
    assert!(
        e.contains("Hosts.Example.Address") && e.contains("AWS services range"),
        "{e}"
    );
}

#[test]
fn vpc_explain_follows_a_gateway_endpoint_route() {
    use crate::reference::{explain, Packet, Verdict};
    let m = model(BASE);
    let p = |src: &str, dst: &str| Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: 6,
        port: 443,
        space: 0,
    };
    // Web (10.0.1.4, PrivateA, PrivateRt) to S3: the endpoint's route.
    let (v, steps) = explain(&m, &p("10.0.1.4", "198.18.0.10"));
    assert_eq!(v, Verdict::Allow, "{steps:?}");
    let vpce = &m.vpc_endpoint("S3Endpoint").unwrap().vpce_id;
    assert!(
        steps
            .iter()
            .any(|s| s.contains(vpce.as_str()) && s.contains("source unchanged")),
        "{steps:?}"
    );
    // DynamoDB is not in the endpoint's prefix list: no route.
    let (v, _) = explain(&m, &p("10.0.1.4", "198.18.0.11"));
    assert!(matches!(v, Verdict::Deny("no_route", _)), "{v:?}");
    // An interface endpoint ENI is a VPC address: its group decides
    // (EndpointSg has no inbound rules).
    let (v, _) = explain(&m, &p("10.0.1.4", "10.0.2.4"));
    assert!(matches!(v, Verdict::Deny("sg_ingress_denied", _)), "{v:?}");
}
