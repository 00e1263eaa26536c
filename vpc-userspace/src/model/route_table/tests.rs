use std::collections::HashMap;

use super::*;
use crate::model::build;

const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  PublicRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PublicAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn ok(t: &str) -> Model {
    build(t, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"))
}

fn err(t: &str) -> String {
    build(t, &HashMap::new(), "s")
        .expect_err("template should be rejected")
        .to_string()
}

#[test]
fn subnets_use_their_table_or_the_main_one_and_every_table_has_local_routes() {
    let m = ok(&with(
        "  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}\n",
    ));
    assert_eq!(m.subnet("Public").unwrap().route_table, "PublicRt");
    assert_eq!(
        m.subnet("Private").unwrap().route_table,
        "Vpc.MainRouteTable"
    );
    let main = m.route_table("Vpc.MainRouteTable").unwrap();
    assert!(main.is_main && main.routes.is_empty());
    let routes = m.routes_of(main);
    let dests: Vec<String> = routes
        .iter()
        .map(|r| format!("{:?} {:?}", r.destination, r.target))
        .collect();
    assert_eq!(
        dests,
        [
            "Cidr(10.0.0.0/16) Local",
            "Cidr(2001:db8:ec2:100::/56) Local"
        ]
    );
    let public = m.route_table("PublicRt").unwrap();
    let all = m.routes_of(public);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].target, Target::InternetGateway("Igw".into()));
    assert_eq!(m.route_state(public, &all[2]), RouteState::Active);
    assert_eq!(
        m.internet_gateway("Igw").unwrap().vpc.as_deref(),
        Some("Vpc")
    );
}

#[test]
fn a_route_to_a_detached_internet_gateway_is_a_blackhole() {
    let t = with(
        "  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}\n",
    )
    .replace("  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}\n", "");
    let m = ok(&t);
    let public = m.route_table("PublicRt").unwrap();
    assert_eq!(
        m.route_state(public, &public.routes[0]),
        RouteState::Blackhole
    );
}

#[test]
fn bad_routes_are_refused_naming_resource_and_field() {
    let route = |props: &str| {
        err(&with(&format!(
            "  R: {{Type: AWS::EC2::Route, Properties: {{{props}}}}}\n"
        )))
    };
    let cases = [
        (
            "RouteTableId: Nope, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw",
            "Resources.R.Properties.RouteTableId",
            "InvalidRouteTableID.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, GatewayId: !Ref Igw",
            "Resources.R.Properties",
            "exactly one of DestinationCidrBlock",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, DestinationIpv6CidrBlock: '::/0', GatewayId: !Ref Igw",
            "Resources.R.Properties",
            "exactly one of DestinationCidrBlock",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: '::/0', GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationCidrBlock",
            "not an IPv4 CIDR block",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.0.2.1/24, GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationCidrBlock",
            "host bits",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 10.0.0.0/16, GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationCidrBlock",
            "RouteAlreadyExists",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 10.0.2.0/24, GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationCidrBlock",
            "more specific than one of this VPC's CIDR blocks",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '2001:db8:ec2:100::/64', GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationIpv6CidrBlock",
            "more specific than one of this VPC's CIDR blocks",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0",
            "Resources.R.Properties",
            "a target is required",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Public",
            "Resources.R.Properties.GatewayId",
            "InvalidGatewayID.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: igw-0123456789abcdef0",
            "Resources.R.Properties.GatewayId",
            "InvalidGatewayID.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw, NatGatewayId: nat-1",
            "Resources.R.Properties",
            "InvalidParameterCombination",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, TransitGatewayId: tgw-1",
            "Resources.R.Properties.TransitGatewayId",
            "not supported",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationPrefixListId: pl-nope, GatewayId: !Ref Igw",
            "Resources.R.Properties.DestinationPrefixListId",
            "InvalidPrefixListID.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: local",
            "Resources.R.Properties.GatewayId",
            "local route",
        ),
    ];
    for (props, path, msg) in cases {
        let e = route(props);
        assert!(
            e.contains(path) && e.contains(msg),
            "{props}: got {e:?}, want {path} / {msg}"
        );
    }
}

#[test]
fn duplicates_associations_and_attachments_are_checked() {
    let e = err(&with(
        "  A: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}\n  \
         B: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}\n",
    ));
    assert!(e.contains("RouteAlreadyExists"), "{e}");
    let e = err(&with(
        "  Again: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}\n",
    ));
    assert!(
        e.contains(".SubnetId") && e.contains("already associated with a route table"),
        "{e}"
    );
    let e = err(&with(
        "  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}\n  \
         Cross: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Other}}\n  \
         X: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Private, RouteTableId: !Ref Cross}}\n",
    ));
    assert!(
        e.contains("X.Properties.RouteTableId") && e.contains("is in VPC Other"),
        "{e}"
    );
    let e = err(&with(
        "  Igw2: {Type: AWS::EC2::InternetGateway}\n  \
         Attach2: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw2}}\n",
    ));
    assert!(
        e.contains("InternetGatewayId") && e.contains("one per VPC"),
        "{e}"
    );
}

#[test]
fn fifty_routes_per_table_and_family_and_a_prefix_list_counts_its_max_entries() {
    let mut t = with("");
    for i in 0..50 {
        t.push_str(&format!(
            "  R{i}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.168.{i}.0/24, GatewayId: !Ref Igw}}}}\n"
        ));
    }
    // IPv6 has its own 50.
    t.push_str("  Six: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '::/0', GatewayId: !Ref Igw}}\n");
    let m = ok(&t);
    assert_eq!(m.route_table("PublicRt").unwrap().routes.len(), 51);
    let e = err(&format!(
        "{t}  R50: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.168.50.0/24, GatewayId: !Ref Igw}}}}\n"
    ));
    assert!(
        e.contains("RouteLimitExceeded") && e.contains("DestinationCidrBlock"),
        "{e}"
    );
    // 45 CIDR routes and a list of MaxEntries 6: 51.
    let mut t = with(
        "  Pl: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: p, AddressFamily: IPv4, MaxEntries: 6, Entries: [{Cidr: 172.16.0.0/12}]}}\n  \
         ViaPl: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationPrefixListId: !Ref Pl, GatewayId: !Ref Igw}}\n",
    );
    for i in 0..44 {
        t.push_str(&format!(
            "  R{i}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.168.{i}.0/24, GatewayId: !Ref Igw}}}}\n"
        ));
    }
    ok(&t);
    t.push_str("  R44: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.168.44.0/24, GatewayId: !Ref Igw}}\n");
    let e = err(&t);
    assert!(e.contains("RouteLimitExceeded") && e.contains("51"), "{e}");
}

#[test]
fn routes_to_an_instance_or_interface_name_one_of_the_tables_vpc() {
    let hosts = "  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.9.0.0/16}}\n  OtherSubnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Other, CidrBlock: 10.9.1.0/24}}\n  Far: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref OtherSubnet}}\n  Nat: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, SourceDestCheck: false}}\n  Eni: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref Public, SourceDestCheck: \"false\"}}\n  Plain: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public}}\n";
    let route = |target: &str| {
        with(&format!("{hosts}  R: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.0.2.0/24, {target}}}}}\n"))
    };
    let m = ok(&route("InstanceId: !Ref Nat"));
    let t = m.route_table("PublicRt").unwrap();
    let r = m.routes_of(t).pop().unwrap();
    assert_eq!(r.target, Target::NetworkInterface("Nat".into()));
    assert_eq!(m.route_state(t, &r), RouteState::Active);
    let check = |id: &str| {
        m.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap()
            .source_dest_check
    };
    assert_eq!(
        (check("Nat"), check("Eni"), check("Plain")),
        (false, false, true)
    );
    let m = ok(&route("NetworkInterfaceId: !Ref Eni"));
    let t = m.route_table("PublicRt").unwrap();
    assert_eq!(
        m.routes_of(t).pop().unwrap().target,
        Target::NetworkInterface("Eni".into())
    );
    for (target, path, msg) in [
        (
            "InstanceId: !Ref Far",
            "Resources.R.Properties.InstanceId",
            "is in VPC Other",
        ),
        (
            "InstanceId: !Ref Eni",
            "Resources.R.Properties.InstanceId",
            "InvalidInstanceID.NotFound",
        ),
        (
            "InstanceId: i-0123456789abcdef0",
            "Resources.R.Properties.InstanceId",
            "InvalidInstanceID.NotFound",
        ),
        (
            "NetworkInterfaceId: !Ref Nat",
            "Resources.R.Properties.NetworkInterfaceId",
            "InvalidNetworkInterfaceID.NotFound",
        ),
    ] {
        let e = err(&route(target));
        assert!(e.contains(path) && e.contains(msg), "{target}: got {e:?}");
    }
    let e = err(&with("  Bad: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, SourceDestCheck: maybe}}\n"));
    assert!(
        e.contains("Resources.Bad.Properties.SourceDestCheck"),
        "{e}"
    );
}

#[test]
fn egress_only_gateways_take_ipv6_destinations_of_their_own_vpc() {
    let gws = "  Eigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref Vpc}}\n  \
               Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}\n  \
               OtherEigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref Other}}\n  \
               Pl4: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: p4, AddressFamily: IPv4, MaxEntries: 1, Entries: [{Cidr: 192.0.2.0/24}]}}\n  \
               Pl6: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: p6, AddressFamily: IPv6, MaxEntries: 1, Entries: [{Cidr: '2001:db8:f00d::/48'}]}}\n";
    let route =
        |props: &str| format!("{gws}  R: {{Type: AWS::EC2::Route, Properties: {{{props}}}}}\n");
    let m = ok(&with(&route(
        "RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: !Ref Eigw",
    )));
    let t = m.route_table("PublicRt").unwrap();
    assert_eq!(
        t.routes[0].target,
        Target::EgressOnlyInternetGateway("Eigw".into())
    );
    assert_eq!(m.route_state(t, &t.routes[0]), RouteState::Active);
    assert_eq!(m.egress_only_internet_gateway("Eigw").unwrap().vpc, "Vpc");
    ok(&with(&route(
        "RouteTableId: !Ref PublicRt, DestinationPrefixListId: !Ref Pl6, EgressOnlyInternetGatewayId: !Ref Eigw",
    )));
    let field = "Resources.R.Properties.EgressOnlyInternetGatewayId";
    let cases = [
        (
            "RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, EgressOnlyInternetGatewayId: !Ref Eigw",
            "IPv6 destinations only",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationPrefixListId: !Ref Pl4, EgressOnlyInternetGatewayId: !Ref Eigw",
            "IPv6 destinations only",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: eigw-0123456789abcdef0",
            "InvalidEgressOnlyInternetGatewayId.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: !Ref Igw",
            "InvalidEgressOnlyInternetGatewayId.NotFound",
        ),
        (
            "RouteTableId: !Ref PublicRt, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: !Ref OtherEigw",
            "different networks",
        ),
    ];
    for (props, msg) in cases {
        let e = err(&with(&route(props)));
        assert!(
            e.contains(field) && e.contains(msg),
            "{props}: got {e:?}, want {field} / {msg}"
        );
    }
    let e = err(&with(
        "  Eigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: Nope}}\n",
    ));
    assert!(e.contains("Resources.Eigw.Properties.VpcId"), "{e}");
}

/// AWS's "more specific routing": a subnet's range (or any range inside
/// the VPC) routed to a middlebox's interface beats `local` by longest
/// prefix; only an instance or interface may be its target.
#[test]
fn a_range_inside_the_vpc_may_be_routed_to_a_middlebox() {
    let hosts = "  Fw: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, SourceDestCheck: false}}\n";
    for (dest, target) in [
        ("DestinationCidrBlock: 10.0.2.0/24", "InstanceId: !Ref Fw"),
        ("DestinationCidrBlock: 10.0.2.128/25", "InstanceId: !Ref Fw"),
        ("DestinationIpv6CidrBlock: !Select [0, !Cidr [!Select [0, !GetAtt Vpc.Ipv6CidrBlocks], 256, 64]]", "InstanceId: !Ref Fw"),
    ] {
        let m = ok(&with(&format!("{hosts}  R: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, {dest}, {target}}}}}\n")));
        let t = m.route_table("PublicRt").unwrap();
        let r = m.routes_of(t).into_iter().find(|r| r.id == "R").unwrap();
        assert_eq!(r.target, Target::NetworkInterface("Fw".into()), "{dest}");
    }
    let e = err(&with(&format!("{hosts}  R: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PublicRt, DestinationCidrBlock: 10.0.0.0/16, InstanceId: !Ref Fw}}}}\n")));
    assert!(
        e.contains("RouteAlreadyExists"),
        "equal to local is still a duplicate: {e}"
    );
}
