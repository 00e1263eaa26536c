//! End to end through route tables and gateways: `vpc up` builds real
//! namespaces, real sockets and `nc` send real packets. Destinations
//! outside the VPC are documentation addresses (RFC 5737): nothing is ever
//! sent beyond the project's namespaces anyway.
use vpc_tests::{text, Deployment};

const FAST: &[&str] = &["--eni-delay", "100ms", "--wait"];

/// A public subnet whose table sends 0.0.0.0/0 to an internet gateway,
/// attached to the VPC by `ATTACH` (or not); a private subnet on the main
/// table.
const ROUTED: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  PublicRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PublicAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}
  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: web
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.0.0.0/16}]
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref Sg]}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref Sg]}}
ATTACH
"#;

const ATTACH: &str = "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}";

/// Accepts one TCP connection within 10 s on `addr` in `ns`.
fn listen(ns: &str, addr: &str) -> std::thread::JoinHandle<bool> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = vpc_tests::spawn_in_netns(ns, move || {
        let l = std::net::TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if l.accept().is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    });
    rx.recv().unwrap();
    h
}

fn nc(d: &Deployment, who: &str, host: &str, port: u16) -> bool {
    let port = port.to_string();
    d.vpc(&[
        "exec", who, "--", "timeout", "5", "nc", "-z", "-w1", host, &port,
    ])
    .status
    .success()
}

#[test]
fn detaching_the_internet_gateway_blackholes_its_route_live() {
    let d = Deployment::up("gwa", &ROUTED.replace("ATTACH", ATTACH), FAST);
    let db = listen(&d.netns("Db"), "10.0.2.10:5432");
    // The local route carries the public subnet's traffic into the private one.
    assert!(nc(&d, "Web", "10.0.2.10", 5432));
    assert!(db.join().unwrap(), "the database saw the connection");
    // 0.0.0.0/0 leads to the gateway, where no test host owns 192.0.2.1.
    assert!(!nc(&d, "Web", "192.0.2.1", 443));
    assert!(d.dropped("internet_unreachable") >= 1);
    assert_eq!(d.dropped("route_blackhole"), 0);
    // The main table (private subnet) has no route out at all.
    assert!(!nc(&d, "Db", "192.0.2.1", 443));
    assert!(d.dropped("no_route") >= 1);
    // Detach the gateway (the attachment leaves the template): its route
    // stays, as a blackhole.
    let path = std::env::temp_dir().join(format!("{}-detach.yaml", d.name));
    std::fs::write(&path, ROUTED.replace("ATTACH", "")).unwrap();
    let out = d.vpc(&["apply", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", text(&out));
    let unreachable = d.dropped("internet_unreachable");
    assert!(!nc(&d, "Web", "192.0.2.1", 443));
    assert!(d.dropped("route_blackhole") >= 1);
    assert_eq!(d.dropped("internet_unreachable"), unreachable);
    // The VPC itself still routes.
    let db = listen(&d.netns("Db"), "10.0.2.10:5432");
    assert!(nc(&d, "Web", "10.0.2.10", 5432));
    assert!(db.join().unwrap());
}
