use std::collections::HashMap;

use super::*;
use crate::model::{self, flowlog::TrafficType};

fn build(extra: &str) -> std::result::Result<Model, String> {
    let t = format!("{}{extra}", crate::DEFAULT_TEMPLATE);
    model::build(&t, &HashMap::new(), "t").map_err(|e| e.to_string())
}

const VPC_LOG: &str = r#"
  VpcFlowLog:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref Vpc
      ResourceType: VPC
      TrafficType: ALL
      MaxAggregationInterval: 60
      LogDestinationType: s3
      LogDestination: arn:aws:s3:::flow-bucket/team
"#;

#[test]
fn flow_log_resources_parse() {
    let m = build(VPC_LOG).unwrap();
    let fl = &m.flow_logs[0];
    assert_eq!(fl.resource_type, model::flowlog::FlowLogResource::Vpc);
    assert_eq!(fl.traffic_type, TrafficType::All);
    assert_eq!(fl.interval_s, 60);
    assert_eq!(fl.fields.len(), 14);
    assert_eq!(fl.version(), 2);
    assert_eq!(
        fl.destination,
        model::flowlog::FlowLogDestination::S3 {
            bucket: "flow-bucket".into(),
            prefix: "team".into()
        }
    );
    assert!(fl.flow_log_id.starts_with("fl-0") && fl.flow_log_id.len() == 20);
    // Every interface of the VPC: two hosts and the two Hyperplane ENIs.
    let ifs = interfaces("t", &m);
    assert_eq!(ifs.iter().filter(|i| covers(fl, i)).count(), 4);

    let cw = build(
        r#"
  EniLog:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref AppServer
      ResourceType: NetworkInterface
      TrafficType: REJECT
      MaxAggregationInterval: 2
      LogGroupName: /vpc/flows
      DeliverLogsPermissionArn: arn:aws:iam::123456789012:role/flows
      LogFormat: "${version} ${interface-id} ${srcaddr} ${pkt-srcaddr} ${tcp-flags} ${flow-direction} ${action}"
"#,
    )
    .unwrap();
    let fl = &cw.flow_logs[0];
    assert_eq!(fl.version(), 5);
    assert_eq!(fl.interval_s, 2);
    assert_eq!(
        fl.destination,
        model::flowlog::FlowLogDestination::CloudWatchLogs {
            log_group: "/vpc/flows".into()
        }
    );
    let ifs = interfaces("t", &cw);
    let covered: Vec<_> = ifs.iter().filter(|i| covers(fl, i)).collect();
    assert_eq!(covered.len(), 1);
    assert_eq!(covered[0].host.as_deref(), Some("AppServer"));
}

#[test]
fn hyperplane_eni_by_id() {
    let m = build("").unwrap();
    let eni = m.enis[0].id.clone();
    let m = build(&format!(
        r#"
  HpLog:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: {eni}
      ResourceType: NetworkInterface
      TrafficType: ACCEPT
      LogDestinationType: cloud-watch-logs
      LogDestination: arn:aws:logs:us-east-1:123456789012:log-group:lambda-flows
"#
    ))
    .unwrap();
    let fl = &m.flow_logs[0];
    assert_eq!(fl.interval_s, 600);
    let ifs = interfaces("t", &m);
    let covered: Vec<_> = ifs.iter().filter(|i| covers(fl, i)).collect();
    assert_eq!(covered.len(), 1);
    assert!(covered[0].rec.hyperplane && covered[0].rec.eni_id == eni);
}

/// Each bad property: the error names the resource and the field.
#[test]
fn bad_flow_logs_name_resource_and_field() {
    let base = |props: &str| {
        format!(
            "\n  Bad:\n    Type: AWS::EC2::FlowLog\n    Properties:\n{}",
            props
                .lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        )
    };
    let ok = "ResourceId: !Ref Vpc\nResourceType: VPC\nTrafficType: ALL\nLogDestinationType: s3\nLogDestination: arn:aws:s3:::b-1";
    assert!(build(&base(ok)).is_ok(), "{:?}", build(&base(ok)));
    for (change, field) in [
        ("ResourceType: TransitGateway", "ResourceType"),
        ("ResourceId: NoSuchVpc", "ResourceId"),
        ("TrafficType: SOME", "TrafficType"),
        ("MaxAggregationInterval: 120", "MaxAggregationInterval"),
        (
            "LogDestinationType: kinesis-data-firehose",
            "LogDestinationType",
        ),
        ("LogDestination: arn:aws:s3:::Bad_Bucket", "LogDestination"),
        ("LogDestination: s3://b", "LogDestination"),
        ("LogFormat: \"${version} ${nonsense}\"", "LogFormat"),
        ("LogFormat: \"version srcaddr\"", "LogFormat"),
        ("LogFormat: \"${version} ${version}\"", "LogFormat"),
        (
            "DestinationOptions: { FileFormat: parquet }",
            "DestinationOptions.FileFormat",
        ),
    ] {
        let key = change.split(':').next().unwrap();
        let props: String = ok
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}:")))
            .chain([change])
            .collect::<Vec<_>>()
            .join("\n");
        let err = build(&base(&props)).expect_err(change);
        assert!(
            err.contains(&format!("Resources.Bad.Properties.{field}")),
            "{change}: {err}"
        );
    }
    let no_traffic = ok.replace("TrafficType: ALL\n", "");
    assert!(build(&base(&no_traffic))
        .unwrap_err()
        .contains("Bad.Properties.TrafficType"));
    let cw = "ResourceId: !Ref Vpc\nResourceType: VPC\nTrafficType: ALL\nLogDestinationType: cloud-watch-logs";
    assert!(build(&base(cw))
        .unwrap_err()
        .contains("Bad.Properties.LogDestination"));
}

fn obs(src: &str, sport: u16, dst: &str, dport: u16, verdict: Verdict) -> Observation {
    Observation {
        src: src.parse().unwrap(),
        sport,
        dst: dst.parse().unwrap(),
        dport,
        proto: 6,
        pkt_src: src.parse().unwrap(),
        pkt_dst: dst.parse().unwrap(),
        packets: 2,
        bytes: 120,
        first: 1000,
        last: 1001,
        tcp_flags: 2,
        verdict,
        nat_gateway: None,
    }
}

#[test]
fn aggregation_one_record_per_eni_flow_window() {
    let m = build(VPC_LOG).unwrap();
    let db = m.hosts.iter().find(|h| h.id == "DatabaseInstance").unwrap();
    let eni = m.enis[0].clone();
    let mut a = Aggregator::new("t", &m, 960);
    // A function's SYN, counted in two ticks: one record per ENI.
    let mut o = obs(
        &eni.ip.to_string(),
        40000,
        &db.ip.to_string(),
        5432,
        Verdict::Accepted,
    );
    o.pkt_src = "198.19.0.10".parse().unwrap();
    a.add(&o);
    o.first = 1005;
    o.last = 1010;
    o.tcp_flags = 1;
    a.add(&o);
    // Not logged: the resolver.
    a.add(&obs(
        &db.ip.to_string(),
        5000,
        "10.0.0.2",
        53,
        Verdict::Accepted,
    ));
    // Rejected by the receiver: ACCEPT leaving, REJECT arriving.
    a.add(&obs(
        "10.0.2.4",
        50000,
        &db.ip.to_string(),
        22,
        Verdict::RejectedByReceiver,
    ));
    assert!(a.close(1019, false).is_empty());
    let w = a.close(1020, false);
    assert_eq!(w.len(), 1);
    let lines: Vec<String> = w[0]
        .records
        .iter()
        .map(|r| r.line(&w[0].flow_log.fields))
        .collect();
    let db_eni = host_eni_id("t", "DatabaseInstance");
    let app_eni = host_eni_id("t", "AppServer");
    let expect = [
        format!(
            "2 123456789012 {db_eni} 10.0.1.4 10.0.1.10 40000 5432 6 4 240 1000 1010 ACCEPT OK"
        ),
        format!("2 123456789012 {db_eni} 10.0.2.4 10.0.1.10 50000 22 6 2 120 1000 1001 REJECT OK"),
        format!("2 123456789012 {app_eni} 10.0.2.4 10.0.1.10 50000 22 6 2 120 1000 1001 ACCEPT OK"),
        format!(
            "2 123456789012 {} 10.0.1.4 10.0.1.10 40000 5432 6 4 240 1000 1010 ACCEPT OK",
            eni.id
        ),
        format!(
            "2 123456789012 {} - - - - - - - 960 1020 - NODATA",
            m.enis[1].id
        ),
    ];
    for e in &expect {
        assert!(lines.contains(e), "missing {e} in {lines:#?}");
    }
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    // The Hyperplane ENI's record shows the address before NAT.
    let hp = w[0]
        .records
        .iter()
        .find(|r| r.interface.eni_id == eni.id && r.flow.is_some())
        .unwrap();
    assert_eq!(hp.field("pkt-srcaddr"), "198.19.0.10");
    assert_eq!(hp.field("tcp-flags"), "3");
    // A silent window, then one with lost events.
    let w = a.close(1080, false);
    assert!(w[0]
        .records
        .iter()
        .all(|r| r.status == LogStatus::NoData && r.start == 1020 && r.end == 1080));
    a.skipped();
    let w = a.close(1140, false);
    assert!(w[0].records.iter().all(|r| r.status == LogStatus::SkipData));
    assert_eq!(w[0].records.len(), 4);
}

#[test]
fn tick_is_the_gcd_and_az_ids() {
    let m = build(&format!(
        "{VPC_LOG}{}",
        VPC_LOG
            .replace("VpcFlowLog", "Other")
            .replace("60\n", "600\n")
    ))
    .unwrap();
    assert_eq!(Aggregator::tick(&m), Some(60));
    assert_eq!(az_id("us-east-1", "us-east-1a"), "use1-az1");
    assert_eq!(az_id("eu-west-2", "eu-west-2c"), "euw2-az3");
    assert_eq!(az_id("ap-northeast-1", "ap-northeast-1b"), "apne1-az2");
}

/// `traffic-path` by the route an egress took (8: an internet gateway, 7: a
/// gateway endpoint, 1: inside the VPC), none on ingress; the AWS service
/// of a public service's address in `pkt-*-aws-service`.
#[test]
fn traffic_path_and_aws_services() {
    let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Rt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  Assoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref Rt}}
  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  S3: {Type: AWS::EC2::VPCEndpoint, Properties: {VpcId: !Ref Vpc, ServiceName: com.amazonaws.us-east-1.s3, RouteTableIds: [!Ref Rt]}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: sg, VpcId: !Ref Vpc}}
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref Sg]}}
  Peer: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.1.20, SecurityGroupIds: [!Ref Sg]}}
  Log:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref Vpc
      ResourceType: VPC
      TrafficType: ALL
      MaxAggregationInterval: 60
      LogDestinationType: s3
      LogDestination: arn:aws:s3:::flow-bucket
      LogFormat: '${interface-id} ${dstaddr} ${flow-direction} ${traffic-path} ${pkt-src-aws-service} ${pkt-dst-aws-service}'
"#;
    let m = model::build(t, &HashMap::new(), "t").unwrap();
    let mut a = Aggregator::new("t", &m, 960);
    for dst in ["203.0.113.10", "198.18.0.10", "10.0.1.20"] {
        a.add(&obs("10.0.1.10", 40000, dst, 443, Verdict::Accepted));
    }
    let w = a.close(1020, false);
    let web = host_eni_id("t", "Web");
    let peer = host_eni_id("t", "Peer");
    let lines: Vec<String> = w[0]
        .records
        .iter()
        .map(|r| r.line(&w[0].flow_log.fields))
        .collect();
    for e in [
        format!("{web} 203.0.113.10 egress 8 - -"),
        format!("{web} 198.18.0.10 egress 7 - S3"),
        format!("{web} 10.0.1.20 egress 1 - -"),
        format!("{peer} 10.0.1.20 ingress - - -"),
    ] {
        assert!(lines.contains(&e), "missing {e} in {lines:#?}");
    }
    assert_eq!(
        aws_service("198.18.0.11".parse().unwrap()),
        Some("DYNAMODB")
    );
    assert_eq!(aws_service("198.18.1.10".parse().unwrap()), Some("AMAZON"));
    assert_eq!(aws_service("10.0.1.10".parse().unwrap()), None);
}

/// AWS's "Traffic through a NAT gateway" example, addresses and all: an
/// instance (10.0.1.5) in a private subnet reaches 203.0.113.5 through a
/// NAT gateway (10.0.0.220) in a public one.
const NAT_EXAMPLE: &str = r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Example: {Address: 203.0.113.5}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  PublicRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PublicAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}
  PublicDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId, PrivateIpAddress: 10.0.0.220}}
  PrivateRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PrivateAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Private, RouteTableId: !Ref PrivateRt}}
  PrivateDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: out, VpcId: !Ref Vpc}}
  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.1.5, SecurityGroupIds: [!Ref Sg]}}
  Fn: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref Private], SecurityGroupIds: [!Ref Sg]}}}
  Log:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref Vpc
      ResourceType: VPC
      TrafficType: ALL
      MaxAggregationInterval: 60
      LogDestinationType: s3
      LogDestination: arn:aws:s3:::flows
      LogFormat: "${instance-id} ${interface-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr} ${flow-direction} ${traffic-path} ${action}"
"#;

fn nat_lines(a: &mut Aggregator) -> Vec<String> {
    let w = a.close(1020, false);
    w[0].records
        .iter()
        .filter(|r| r.flow.is_some())
        .map(|r| r.line(&w[0].flow_log.fields))
        .collect()
}

/// The NAT gateway's interface is an intermediate one: four records for a
/// connection, as AWS's example shows them (its private address where the
/// packet names the other side, the original addresses as `pkt-`); the
/// instance's own interface shows the connection as it sent it.
#[test]
fn a_nat_gateways_interface_logs_as_awss_example() {
    use vpc_common::{v4_mapped, CtEntry, CtKey, FlowWindow, CT_F_DNAT, CT_F_SNAT};
    let m = model::build(NAT_EXAMPLE, &HashMap::new(), "t").unwrap();
    let gw = &m.nat_gateways[0];
    let a4 = |s: &str| v4_mapped(s.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let eip = gw.public_ip.to_string();
    let pool = vpc_common::NAT_GATEWAY_ID_BASE + gw.index;
    let slot = FlowWindow {
        packets: 3,
        bytes: 180,
        ..Default::default()
    };
    // The connection's two entries, as `nat_gateway::open` writes them.
    let orig = (
        CtKey {
            saddr: a4("10.0.1.5"),
            daddr: a4("203.0.113.5"),
            sport: 40000u16.to_be(),
            dport: 443u16.to_be(),
            proto: 6,
            ..Default::default()
        },
        CtEntry {
            flags: CT_F_SNAT,
            route: vpc_common::route_kind::NAT_GATEWAY,
            eni: pool as u16,
            nat_addr: a4(&eip),
            nat_port: 1024u16.to_be(),
            ..Default::default()
        },
    );
    let reply = (
        CtKey {
            saddr: a4("203.0.113.5"),
            daddr: a4(&eip),
            sport: 443u16.to_be(),
            dport: 1024u16.to_be(),
            proto: 6,
            ..Default::default()
        },
        CtEntry {
            flags: CT_F_DNAT,
            route: vpc_common::route_kind::NAT_GATEWAY,
            eni: pool as u16,
            nat_addr: a4("10.0.1.5"),
            nat_port: 40000u16.to_be(),
            ..Default::default()
        },
    );
    let mut a = Aggregator::new("t", &m, 960);
    for (k, e) in [&orig, &reply] {
        a.add(&agent::from_ct(k, e, &slot, 0, &|_| false, &|_| None));
    }
    let nat_eni = nat_gateway_eni_id("t", "Nat");
    let app_eni = host_eni_id("t", "App");
    let app_i = model::flowlog::ec2_id("i", "t", "App");
    let lines = nat_lines(&mut a);
    let want = [
        format!("- {nat_eni} 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5 egress 8 ACCEPT"),
        format!("- {nat_eni} 203.0.113.5 10.0.0.220 203.0.113.5 10.0.0.220 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 10.0.1.5 203.0.113.5 10.0.1.5 egress 1 ACCEPT"),
        format!("{app_i} {app_eni} 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 egress 1 ACCEPT"),
        format!("{app_i} {app_eni} 203.0.113.5 10.0.1.5 203.0.113.5 10.0.1.5 ingress - ACCEPT"),
    ];
    for l in &want {
        assert!(lines.contains(l), "missing {l} in {lines:#?}");
    }
    assert_eq!(lines.len(), want.len(), "{lines:#?}");

    // Refused on the gateway paths: by the instance's own rules (its
    // interface only), by the gateway subnet's inbound ACL (ACCEPT leaving
    // the instance, REJECT arriving at the gateway), by its outbound ACL
    // (REJECT leaving the gateway toward the internet).
    let refused = |reason: vpc_common::DropReason, gateway: u8| {
        let k = vpc_common::FlowRejectKey {
            saddr: a4("10.0.1.5"),
            daddr: a4("203.0.113.5"),
            pkt_saddr: a4("10.0.1.5"),
            pkt_daddr: a4("203.0.113.5"),
            sport: 40001u16.to_be(),
            dport: 22u16.to_be(),
            proto: 6,
            reason: reason as u8,
            gateway,
            ..Default::default()
        };
        agent::from_reject(&k, &slot, 0)
    };
    use vpc_common::{DropReason as R, FL_GW_NAT_IN, FL_GW_NAT_OUT};
    for (o, want) in [
        (
            refused(R::SgEgressDenied, FL_GW_NAT_IN),
            vec![format!(
                "{app_i} {app_eni} 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 egress 1 REJECT"
            )],
        ),
        (
            refused(R::NaclIngressDenied, FL_GW_NAT_IN),
            vec![
                format!(
                    "{app_i} {app_eni} 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 egress 1 ACCEPT"
                ),
                format!("- {nat_eni} 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 ingress - REJECT"),
            ],
        ),
        (
            refused(R::NaclEgressDenied, FL_GW_NAT_OUT),
            vec![
                format!(
                    "{app_i} {app_eni} 10.0.1.5 203.0.113.5 10.0.1.5 203.0.113.5 egress 1 ACCEPT"
                ),
                format!("- {nat_eni} 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 ingress - ACCEPT"),
                format!(
                    "- {nat_eni} 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5 egress 8 REJECT"
                ),
            ],
        ),
    ] {
        let mut a = Aggregator::new("t", &m, 960);
        a.add(&o);
        let mut lines = nat_lines(&mut a);
        lines.sort();
        let mut want = want;
        want.sort();
        assert_eq!(lines, want, "{:?}", o.verdict);
    }

    // A connection's packets refused after an ACL change (the gateway's
    // port 1024 known): out of the gateway, and each leg back.
    let tracked = |reason: R, gateway: u8, reply: bool| {
        let (s, sp, d, dp) = if reply {
            ("203.0.113.5", 443u16, "10.0.1.5", 40000u16)
        } else {
            ("10.0.1.5", 40000, "203.0.113.5", 443)
        };
        let k = vpc_common::FlowRejectKey {
            saddr: a4(s),
            daddr: a4(d),
            pkt_saddr: a4(s),
            pkt_daddr: a4(d),
            sport: sp.to_be(),
            dport: dp.to_be(),
            proto: 6,
            reason: reason as u8,
            gateway,
            gw_port: 1024u16.to_be(),
            ..Default::default()
        };
        agent::from_reject(&k, &slot, 0)
    };
    use vpc_common::{FL_GW_NAT_REPLY_IN, FL_GW_NAT_REPLY_OUT, FL_GW_NAT_REPLY_SENDER};
    let back_in =
        format!("- {nat_eni} 203.0.113.5 10.0.0.220 443 1024 203.0.113.5 10.0.0.220 ingress - ");
    let back_out =
        format!("- {nat_eni} 10.0.0.220 10.0.1.5 443 40000 203.0.113.5 10.0.1.5 egress 1 ");
    for (o, want) in [
        (
            tracked(R::NaclEgressDenied, FL_GW_NAT_OUT, false),
            vec![
                format!("{app_i} {app_eni} 10.0.1.5 203.0.113.5 40000 443 10.0.1.5 203.0.113.5 egress 1 ACCEPT"),
                format!("- {nat_eni} 10.0.1.5 10.0.0.220 40000 443 10.0.1.5 203.0.113.5 ingress - ACCEPT"),
                format!("- {nat_eni} 10.0.0.220 203.0.113.5 1024 443 10.0.0.220 203.0.113.5 egress 8 REJECT"),
            ],
        ),
        (
            tracked(R::NaclIngressDenied, FL_GW_NAT_REPLY_IN, true),
            vec![format!("{back_in}REJECT")],
        ),
        (
            tracked(R::NaclEgressDenied, FL_GW_NAT_REPLY_OUT, true),
            vec![format!("{back_in}ACCEPT"), format!("{back_out}REJECT")],
        ),
        (
            tracked(R::NaclIngressDenied, FL_GW_NAT_REPLY_SENDER, true),
            vec![
                format!("{back_in}ACCEPT"),
                format!("{back_out}ACCEPT"),
                format!("{app_i} {app_eni} 203.0.113.5 10.0.1.5 443 40000 203.0.113.5 10.0.1.5 ingress - REJECT"),
            ],
        ),
    ] {
        let mut a = Aggregator::new("t", &m, 960);
        a.add(&o);
        let w = a.close(1020, false);
        let fields: Vec<String> = "instance-id interface-id srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr flow-direction traffic-path action"
            .split(' ')
            .map(String::from)
            .collect();
        let mut lines: Vec<String> = w[0]
            .records
            .iter()
            .filter(|r| r.flow.is_some())
            .map(|r| r.line(&fields))
            .collect();
        lines.sort();
        let mut want = want;
        want.sort();
        assert_eq!(lines, want, "{o:?}");
    }
}

/// A function's connection through the NAT gateway: its Hyperplane ENI
/// logs it from the ENI's address with the function's as `pkt-`, and the
/// gateway's interface sees it come from the ENI.
#[test]
fn a_functions_connection_through_a_nat_gateway_shows_on_its_eni_and_the_gateways() {
    use vpc_common::{v4_mapped, CtEntry, CtKey, FlowWindow, CT_F_DNAT, CT_F_SNAT};
    let m = model::build(NAT_EXAMPLE, &HashMap::new(), "t").unwrap();
    let gw = &m.nat_gateways[0];
    let eni = m.enis[0].clone();
    let a4 = |s: &str| v4_mapped(s.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let pool = vpc_common::NAT_GATEWAY_ID_BASE + gw.index;
    let slot = FlowWindow {
        packets: 2,
        bytes: 120,
        ..Default::default()
    };
    let (env, port) = (77u32, "198.19.0.10");
    let entry = |flags, nat_addr: &str, nat_port: u16| CtEntry {
        flags,
        route: vpc_common::route_kind::NAT_GATEWAY,
        eni: pool as u16,
        nat_addr: a4(nat_addr),
        nat_port: nat_port.to_be(),
        in_ifindex: if flags == CT_F_SNAT { env } else { 5 },
        out_ifindex: if flags == CT_F_SNAT { 5 } else { env },
        fn_eni: eni.index as u16,
        fn_eni_port: 1500u16.to_be(),
        ..Default::default()
    };
    let key = |s: &str, sp: u16, d: &str, dp: u16| CtKey {
        saddr: a4(s),
        daddr: a4(d),
        sport: sp.to_be(),
        dport: dp.to_be(),
        proto: 6,
        ..Default::default()
    };
    let eip = gw.public_ip.to_string();
    let orig = (
        key(port, 5000, "203.0.113.5", 443),
        entry(CT_F_SNAT, &eip, 1024),
    );
    let reply = (
        key("203.0.113.5", 443, &eip, 1024),
        entry(CT_F_DNAT, port, 5000),
    );
    let eni_ip = std::net::IpAddr::V4(eni.ip);
    let eni_addr = |i: u32| (i == eni.index).then_some(eni_ip);
    let mut a = Aggregator::new("t", &m, 960);
    for (k, e) in [&orig, &reply] {
        let o = agent::from_ct(k, e, &slot, 0, &|_| false, &eni_addr);
        // The ENI's port, not the environment's own.
        let port = if e.flags == CT_F_SNAT {
            o.sport
        } else {
            o.dport
        };
        assert_eq!(port, 1500, "{o:?}");
        a.add(&o);
    }
    let nat_eni = nat_gateway_eni_id("t", "Nat");
    let hp = &eni.id;
    let e = eni.ip;
    let lines = nat_lines(&mut a);
    let want = [
        format!("- {hp} {e} 203.0.113.5 198.19.0.10 203.0.113.5 egress 1 ACCEPT"),
        format!("- {hp} 203.0.113.5 {e} 203.0.113.5 198.19.0.10 ingress - ACCEPT"),
        format!("- {nat_eni} {e} 10.0.0.220 {e} 203.0.113.5 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5 egress 8 ACCEPT"),
        format!("- {nat_eni} 203.0.113.5 10.0.0.220 203.0.113.5 10.0.0.220 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 {e} 203.0.113.5 {e} egress 1 ACCEPT"),
    ];
    for l in &want {
        assert!(lines.contains(l), "missing {l} in {lines:#?}");
    }
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
}
