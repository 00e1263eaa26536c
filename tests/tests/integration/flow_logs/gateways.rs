//! Flow logs on the gateway paths: the NAT gateway's own interface (AWS's
//! "Traffic through a NAT gateway" example, its addresses and all), an
//! interface endpoint's ENI, and packets refused on the way to or through
//! a NAT gateway; the interface ids as EC2's DescribeNetworkInterfaces
//! shows them (the AWS CLI).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::mpsc::channel,
    time::Duration,
};

use serde_json::Value;

use crate::ec2::aws;
use vpc_tests::{spawn_in_netns, text, Deployment};

use super::traffic::tcp_exchange;
use super::{files_under, host, snapshot, snapshot_when, Fields, TempDir};

/// AWS's example: an instance (10.0.1.5) in a private subnet reaches a host
/// on the internet (203.0.113.5) through a NAT gateway (10.0.0.220) in a
/// public one. The public subnet's ACL refuses port 2222 coming in from
/// the instance's subnet and port 2323 leaving for the internet; the
/// instance's group lets out TCP up to port 2400 only. An interface
/// endpoint (SQS) in the private subnet takes port 80 from the instance's
/// group only. A public instance (10.0.0.10) takes port 80 from the
/// internet, nothing else. A function in the private subnet goes out
/// through the gateway too.
const TEMPLATE: &str = r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Example: {Address: 203.0.113.5}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24, MapPublicIpOnLaunch: true}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  PublicRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PublicAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}
  PublicDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  PublicAcl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  PublicAclAssoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref Public, NetworkAclId: !Ref PublicAcl}}
  InDeny: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PublicAcl, RuleNumber: 10, Protocol: 6, RuleAction: deny, Egress: false, CidrBlock: 0.0.0.0/0, PortRange: {From: 2222, To: 2222}}}
  InAll: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PublicAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: false, CidrBlock: 0.0.0.0/0}}
  OutDeny: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PublicAcl, RuleNumber: 10, Protocol: 6, RuleAction: deny, Egress: true, CidrBlock: 0.0.0.0/0, PortRange: {From: 2323, To: 2323}}}
  OutAll: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PublicAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId, PrivateIpAddress: 10.0.0.220}}
  PrivateRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PrivateAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Private, RouteTableId: !Ref PrivateRt}}
  PrivateDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: out up to 2400
      VpcId: !Ref Vpc
      SecurityGroupEgress: [{IpProtocol: tcp, FromPort: 1, ToPort: 2400, CidrIp: 0.0.0.0/0}]
  EndpointSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: the app only
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, SourceSecurityGroupId: !Ref Sg}]
  SqsEndpoint:
    Type: AWS::EC2::VPCEndpoint
    Properties:
      VpcId: !Ref Vpc
      VpcEndpointType: Interface
      ServiceName: !Sub 'com.amazonaws.${AWS::Region}.sqs'
      SubnetIds: [!Ref Private]
      SecurityGroupIds: [!Ref EndpointSg]
  WebSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 0.0.0.0/0}]
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.0.10, SecurityGroupIds: [!Ref WebSg]}}
  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.1.5, SecurityGroupIds: [!Ref Sg]}}
  Fn: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref Private], SecurityGroupIds: [!Ref Sg]}}}
  Log:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref Vpc
      ResourceType: VPC
      TrafficType: ALL
      MaxAggregationInterval: 2
      LogGroupName: gateways
      DeliverLogsPermissionArn: arn:aws:iam::123456789012:role/flows
      LogFormat: "${instance-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${flow-direction} ${traffic-path} ${packets} ${action} ${log-status}"
"#;

const FORMAT: &str = "instance-id interface-id srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr flow-direction traffic-path packets action log-status";

/// Every OK record of the log group's streams.
fn records(root: &Path) -> Vec<Fields> {
    let names: Vec<String> = FORMAT.split(' ').map(String::from).collect();
    let mut files = vec![];
    files_under(&root.join("cloudwatch").join("gateways"), &mut files);
    let mut out = vec![];
    for f in files {
        for l in std::fs::read_to_string(&f).unwrap().lines() {
            let v: Vec<&str> = l.split(' ').collect();
            assert_eq!(v.len(), names.len(), "{l}");
            let r: Fields = names
                .iter()
                .cloned()
                .zip(v.iter().map(|s| s.to_string()))
                .collect();
            if r["log-status"] == "OK" {
                out.push(r);
            }
        }
    }
    out
}

/// The record's fields from `srcaddr` to `traffic-path` and its action.
fn line(r: &Fields) -> String {
    [
        "instance-id",
        "interface-id",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "flow-direction",
        "traffic-path",
        "action",
    ]
    .iter()
    .map(|f| r[*f].as_str())
    .collect::<Vec<_>>()
    .join(" ")
}

fn describe(url: &str, filter: &str) -> Value {
    let args = ["describe-network-interfaces", "--filters", filter];
    aws(url, &args).unwrap_or_else(|e| panic!("{args:?}: {e}"))["NetworkInterfaces"][0].clone()
}

fn one_syn(ns: &str, to: &str) {
    let to: SocketAddr = to.parse().unwrap();
    spawn_in_netns(ns, move || vpc_tests::one_syn(to))
        .join()
        .unwrap();
}

#[test]
fn the_nat_gateways_and_an_endpoints_interfaces_log_their_traffic_and_the_gateway_paths_rejects() {
    let dir = TempDir::new("gw");
    let d = Deployment::up(
        "flgw",
        TEMPLATE,
        &[
            "--wait",
            "--flow-logs-dir",
            &dir.arg(),
            "--api-addr",
            "127.0.0.1:0",
        ],
    );
    let s = d.status();
    let url = s["api_url"].as_str().unwrap().to_string();
    let app = host(&s, "App");
    let app_eni = app["eni_id"].as_str().unwrap().to_string();
    let ep = host(&s, "SqsEndpoint.1");
    let (ep_eni, ep_ip) = (
        ep["eni_id"].as_str().unwrap().to_string(),
        ep["address"].as_str().unwrap().to_string(),
    );
    // EC2 names the gateway's and the endpoint's interfaces as the records do.
    let nat = &describe(&url, "Name=interface-type,Values=nat_gateway");
    let nat_eni = nat["NetworkInterfaceId"].as_str().unwrap().to_string();
    assert_eq!(nat["PrivateIpAddress"], "10.0.0.220", "{nat}");
    assert_eq!(nat["RequesterManaged"], true, "{nat}");
    assert_eq!(nat["SourceDestCheck"], false, "{nat}");
    let desc = nat["Description"].as_str().unwrap();
    assert!(desc.starts_with("Interface for NAT Gateway nat-"), "{nat}");
    let v = &describe(&url, "Name=interface-type,Values=vpc_endpoint");
    assert_eq!(
        v["NetworkInterfaceId"].as_str(),
        Some(ep_eni.as_str()),
        "{v}"
    );
    assert_eq!(v["PrivateIpAddress"].as_str(), Some(ep_ip.as_str()), "{v}");
    let vpce = v["Description"].as_str().unwrap();
    assert!(vpce.starts_with("VPC Endpoint Interface vpce-"), "{v}");
    // Attached by their services: not deleted.
    for eni in [&nat_eni, &ep_eni] {
        let e = aws(
            &url,
            &["delete-network-interface", "--network-interface-id", eni],
        )
        .unwrap_err();
        assert!(
            e.contains("(InvalidParameterValue)") && e.contains("is currently in use"),
            "{e}"
        );
    }

    let app_ns = d.netns("App");
    let hp = &s["enis"][0];
    let (hp_eni, eni_ip) = (
        hp["id"].as_str().unwrap().to_string(),
        hp["address"].as_str().unwrap().to_string(),
    );
    // The function, through its ENI and the gateway.
    let fn_peer = tcp_exchange(
        &d.exec_env_netns("Fn"),
        &d.netns("Example"),
        "203.0.113.5:445",
    );
    let fn_nat_port = fn_peer.port();
    // Accepted through the gateway, both ways.
    let peer = tcp_exchange(&app_ns, &d.netns("Example"), "203.0.113.5:443");
    let nat_port = peer.port().to_string();
    // Refused: the gateway subnet's inbound ACL, its outbound ACL, the
    // instance's own group.
    one_syn(&app_ns, "203.0.113.5:2222");
    one_syn(&app_ns, "203.0.113.5:2323");
    one_syn(&app_ns, "203.0.113.5:2424");
    // The endpoint: served on 80, refused by its group on 81.
    let out = d.vpc(&[
        "exec",
        "App",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{ep_ip}/"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    one_syn(&app_ns, &format!("{ep_ip}:81"));
    // From the internet to the public instance: its group refuses port 22
    // (its public address as the internet host sees it).
    let web_public = tcp_exchange(&d.netns("Web"), &d.netns("Example"), "203.0.113.5:444").ip();
    one_syn(&d.netns("Example"), &format!("{web_public}:22"));
    let web_eni = host(&s, "Web")["eni_id"].as_str().unwrap().to_string();
    // A connection refused midway: the gateway subnet's ACL refuses its
    // port toward the internet once `vpc apply` adds a rule.
    let (ready, listening) = channel();
    let server = spawn_in_netns(&d.netns("Example"), move || {
        let l = TcpListener::bind("203.0.113.5:447").unwrap();
        ready.send(()).unwrap();
        let (mut c, peer) = l.accept().unwrap();
        c.read_exact(&mut [0u8; 10]).unwrap();
        peer
    });
    listening.recv().unwrap();
    let (go, applied) = channel::<()>();
    let client = spawn_in_netns(&app_ns, move || {
        let to: SocketAddr = "203.0.113.5:447".parse().unwrap();
        let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        c.write_all(&[1u8; 10]).unwrap();
        applied.recv().unwrap();
        // Sent, refused leaving the gateway, sent again.
        c.write_all(&[2u8; 10]).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    });
    let p447 = server.join().unwrap().port();
    let deny = "  OutDeny447: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PublicAcl, RuleNumber: 5, Protocol: 6, RuleAction: deny, Egress: true, CidrBlock: 0.0.0.0/0, PortRange: {From: 447, To: 447}}}\n  NatIp:";
    d.apply(&TEMPLATE.replace("  NatIp:", deny));
    go.send(()).unwrap();
    client.join().unwrap();

    // The instance's ports, from its own records, once all are written.
    let on_app = |p: &Path, dport: &str| {
        records(p)
            .into_iter()
            .find(|r| r["interface-id"] == app_eni && r["dstport"] == dport)
    };
    let snap = snapshot_when(&dir, |p| {
        ["443", "2222", "2323", "2424", "80", "81"]
            .iter()
            .all(|d| on_app(p, d).is_some())
            && [(&web_eni, "22"), (&hp_eni, "445")].iter().all(|(i, d)| {
                records(p)
                    .iter()
                    .any(|r| r["interface-id"] == **i && r["dstport"] == *d)
            })
    });
    let fn_out = records(&snap)
        .into_iter()
        .find(|r| r["interface-id"] == hp_eni && r["dstport"] == "445")
        .unwrap();
    let (fport, env_ip) = (fn_out["srcport"].clone(), fn_out["pkt-srcaddr"].clone());
    assert!(
        env_ip.starts_with("198.19."),
        "the function's own address: {env_ip}"
    );
    let sport = |dport: &str| {
        on_app(&snap, dport).unwrap_or_else(|| panic!("no record to {dport}"))["srcport"].clone()
    };
    let (p443, p2222, p2323, p2424) = (sport("443"), sport("2222"), sport("2323"), sport("2424"));
    let (pc, p81) = (sport("80"), sport("81"));
    let i = on_app(&snap, "443").unwrap()["instance-id"].clone();
    assert!(i.starts_with("i-0"), "{i}");
    let web22 = records(&snap)
        .into_iter()
        .find(|r| r["interface-id"] == web_eni && r["dstport"] == "22")
        .unwrap();
    let (wi, p22) = (web22["instance-id"].clone(), web22["srcport"].clone());
    let mut want = vec![
        // AWS's example, line by line, on the gateway's interface ...
        format!("- {nat_eni} 10.0.1.5 10.0.0.220 {p443} 443 10.0.1.5 203.0.113.5 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 203.0.113.5 {nat_port} 443 10.0.0.220 203.0.113.5 egress 8 ACCEPT"),
        format!("- {nat_eni} 203.0.113.5 10.0.0.220 443 {nat_port} 203.0.113.5 10.0.0.220 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 10.0.1.5 443 {p443} 203.0.113.5 10.0.1.5 egress 1 ACCEPT"),
        // ... and on the instance's.
        format!("{i} {app_eni} 10.0.1.5 203.0.113.5 {p443} 443 10.0.1.5 203.0.113.5 egress 1 ACCEPT"),
        format!("{i} {app_eni} 203.0.113.5 10.0.1.5 443 {p443} 203.0.113.5 10.0.1.5 ingress - ACCEPT"),
        // The gateway subnet's inbound ACL: left the instance, refused
        // arriving at the gateway.
        format!("{i} {app_eni} 10.0.1.5 203.0.113.5 {p2222} 2222 10.0.1.5 203.0.113.5 egress 1 ACCEPT"),
        format!("- {nat_eni} 10.0.1.5 10.0.0.220 {p2222} 2222 10.0.1.5 203.0.113.5 ingress - REJECT"),
        // Its outbound ACL: let in, refused leaving for the internet.
        format!("{i} {app_eni} 10.0.1.5 203.0.113.5 {p2323} 2323 10.0.1.5 203.0.113.5 egress 1 ACCEPT"),
        format!("- {nat_eni} 10.0.1.5 10.0.0.220 {p2323} 2323 10.0.1.5 203.0.113.5 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 203.0.113.5 {p2323} 2323 10.0.0.220 203.0.113.5 egress 8 REJECT"),
        // The instance's group: its own interface only.
        format!("{i} {app_eni} 10.0.1.5 203.0.113.5 {p2424} 2424 10.0.1.5 203.0.113.5 egress 1 REJECT"),
    ];
    // The endpoint's ENI logs its connections like any interface; its
    // group's refusal is its REJECT.
    want.extend([
        format!("- {ep_eni} 10.0.1.5 {ep_ip} {pc} 80 10.0.1.5 {ep_ip} ingress - ACCEPT"),
        format!("- {ep_eni} {ep_ip} 10.0.1.5 80 {pc} {ep_ip} 10.0.1.5 egress 1 ACCEPT"),
        format!("- {ep_eni} 10.0.1.5 {ep_ip} {p81} 81 10.0.1.5 {ep_ip} ingress - REJECT"),
        // Refused arriving from the internet: on the instance's interface,
        // to its private address (the internet gateway's NAT is beyond it).
        format!(
            "{wi} {web_eni} 203.0.113.5 10.0.0.10 {p22} 22 203.0.113.5 10.0.0.10 ingress - REJECT"
        ),
        // The function's connection: its ENI's address, its own as `pkt-`
        // on the ENI; from the ENI on the gateway's.
        format!("- {hp_eni} {eni_ip} 203.0.113.5 {fport} 445 {env_ip} 203.0.113.5 egress 1 ACCEPT"),
        format!("- {hp_eni} 203.0.113.5 {eni_ip} 445 {fport} 203.0.113.5 {env_ip} ingress - ACCEPT"),
        format!("- {nat_eni} {eni_ip} 10.0.0.220 {fport} 445 {eni_ip} 203.0.113.5 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 203.0.113.5 {fn_nat_port} 445 10.0.0.220 203.0.113.5 egress 8 ACCEPT"),
        format!("- {nat_eni} 203.0.113.5 10.0.0.220 445 {fn_nat_port} 203.0.113.5 10.0.0.220 ingress - ACCEPT"),
        format!("- {nat_eni} 10.0.0.220 {eni_ip} 445 {fport} 203.0.113.5 {eni_ip} egress 1 ACCEPT"),
    ]);
    let snap = snapshot_when(&dir, |p| {
        let lines: Vec<String> = records(p).iter().map(line).collect();
        want.iter().all(|w| lines.contains(w))
    });
    // Every packet was sent before: two windows more and every stream has
    // all of its windows (each stream file is written on its own).
    drop(snap);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let snap = snapshot(&dir);
    let recs = records(&snap);
    let lines: std::collections::BTreeSet<String> = recs.iter().map(line).collect();
    for w in &want {
        assert!(lines.contains(w), "missing {w} in {lines:#?}");
    }
    // The refused SYNs: one packet each, wherever they show.
    // ... and the packets refused on the connection, on the gateway's
    // interface only.
    let refused = format!(
        "- {nat_eni} 10.0.0.220 203.0.113.5 {p447} 447 10.0.0.220 203.0.113.5 egress 8 REJECT"
    );
    assert!(lines.contains(&refused), "missing {refused} in {lines:#?}");
    let on_447 = |a: &str| {
        lines
            .iter()
            .filter(|l| l.contains(" 447 ") && l.ends_with(a))
            .count()
    };
    assert_eq!(on_447("REJECT"), 1, "{lines:#?}");
    for r in recs
        .iter()
        .filter(|r| r["action"] == "REJECT" && r["dstport"] != "447")
    {
        assert_eq!(r["packets"], "1", "{}", line(r));
    }
    // Each leg through the gateway counts what the instance sent and got.
    let packets = |iface: &str, src: &str, dport: &str| -> u64 {
        recs.iter()
            .filter(|r| r["interface-id"] == iface && r["srcaddr"] == src && r["dstport"] == dport)
            .map(|r| r["packets"].parse::<u64>().unwrap())
            .sum()
    };
    let sent = packets(&app_eni, "10.0.1.5", "443");
    assert!(sent >= 4, "{lines:#?}");
    assert_eq!(packets(&nat_eni, "10.0.1.5", "443"), sent);
    assert_eq!(packets(&nat_eni, "10.0.0.220", "443"), sent);
    let got = packets(&app_eni, "203.0.113.5", &p443);
    assert_eq!(packets(&nat_eni, "203.0.113.5", &nat_port), got);
    assert_eq!(packets(&nat_eni, "10.0.0.220", &p443), got);
    // Nothing else on the gateway's interface.
    let on_nat = lines.iter().filter(|l| l.contains(&nat_eni)).count();
    assert_eq!(on_nat, 16, "{lines:#?}");
}
