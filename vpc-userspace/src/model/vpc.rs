//! VPCs: `AWS::EC2::VPC` (its primary IPv4 block, its default security
//! group, its resolver) and `AWS::EC2::VPCCidrBlock` (a secondary IPv4
//! block, or its IPv6 block).
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    bool_field, endpoint, internet, parse_v4_cidr, parse_v6_cidr, required_str, res_path,
    route_table::Destination, str_field, v6_overlap, yes, Builder, Model, Peer, Rule,
    SecurityGroup, LAMBDA_SERVICE_CIDR, LAMBDA_SERVICE_CIDR6,
};
use crate::template::{ModelError, Result};

pub const VPC: &str = "AWS::EC2::VPC";
pub const VPC_PEERING_CONNECTION: &str = "AWS::EC2::VPCPeeringConnection";
pub const VPC_CIDR_BLOCK: &str = "AWS::EC2::VPCCidrBlock";

/// Where `AmazonProvidedIpv6CidrBlock: true` takes its /56 blocks: a slice of
/// the documentation range (RFC 3849), global-unicast in shape like AWS's
/// own blocks and never routed anywhere.
pub const AMAZON_IPV6_POOL: &str = "2001:db8:ec2::/48";
/// The VPC router's IPv6 address on every link (subnets and the Lambda
/// side): link-local, so it takes no address of the subnet.
pub const VPC_ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vpc {
    pub id: String,
    /// 1-based index used in the datapath.
    pub index: u32,
    /// Its primary IPv4 block.
    pub cidr: Ipv4Net,
    /// Its secondary IPv4 blocks (`AWS::EC2::VPCCidrBlock` with
    /// `CidrBlock`), in the order they were added.
    #[serde(default)]
    pub secondary_cidrs: Vec<Ipv4Net>,
    pub default_group: String,
    /// Its IPv6 block (`AWS::EC2::VPCCidrBlock`), a /56.
    #[serde(default)]
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `EnableDnsSupport` (default true): the resolver at base + 2.
    #[serde(default = "yes")]
    pub enable_dns_support: bool,
    /// `EnableDnsHostnames` (default false, as for every VPC but a default
    /// one): with `EnableDnsSupport`, the resolver answers the private
    /// (`ip-10-0-1-5.ec2.internal`) and public DNS hostnames.
    #[serde(default)]
    pub enable_dns_hostnames: bool,
    /// Its DHCP options set (`None`: AWS's default set).
    #[serde(default)]
    pub dhcp_options: Option<String>,
    /// An `AWS::EC2::VPCDHCPOptionsAssociation` names it (one per VPC).
    #[serde(default)]
    pub dhcp_associated: bool,
}

impl Vpc {
    /// The Amazon-provided DNS resolver's address: base + 2, as at AWS.
    pub fn resolver(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 2)
    }

    /// Every IPv4 block: the primary, then the secondary ones.
    pub fn cidrs(&self) -> impl Iterator<Item = Ipv4Net> + Clone + '_ {
        std::iter::once(self.cidr).chain(self.secondary_cidrs.iter().copied())
    }

    /// Every block, IPv4 then IPv6: each a `local` route of its tables.
    pub fn blocks(&self) -> impl Iterator<Item = IpNet> + Clone + '_ {
        self.cidrs()
            .map(IpNet::V4)
            .chain(self.ipv6_cidr.map(IpNet::V6))
    }

    /// Whether one of its IPv4 blocks holds `ip`.
    pub fn holds(&self, ip: &Ipv4Addr) -> bool {
        self.cidrs().any(|c| c.contains(ip))
    }

    /// Whether one of its IPv4 blocks overlaps one of `other`'s.
    pub fn overlaps(&self, other: &Vpc) -> Option<(Ipv4Net, Ipv4Net)> {
        self.cidrs()
            .find_map(|a| other.cidrs().find(|b| overlap(a, *b)).map(|b| (a, b)))
    }

    /// The resolver's node (namespace) id, when the VPC has one.
    pub fn resolver_id(&self) -> Option<String> {
        self.enable_dns_support
            .then(|| format!("Resolver-{}", self.id))
    }
}

impl Model {
    pub fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.id == id)
    }

    /// Why `vpc` (`shown` in messages) may not take `net` as a secondary
    /// IPv4 block, by AWS's rules: EC2's error code and message.
    pub fn secondary_block_refusal(
        &self,
        vpc: &Vpc,
        shown: &str,
        net: Ipv4Net,
    ) -> Option<(&'static str, String)> {
        let range = "InvalidVpc.Range";
        if vpc.cidrs().count() >= MAX_IPV4_BLOCKS {
            return Some((
                "CidrLimitExceeded",
                format!("This network {shown} has met its maximum number of allowed CIDRs: {MAX_IPV4_BLOCKS}"),
            ));
        }
        if !(16..=28).contains(&net.prefix_len()) {
            return Some((
                range,
                format!("The CIDR '{net}' is invalid: a VPC's block is between /16 and /28"),
            ));
        }
        let own = vpc.cidrs().map(|c| (format!("a block of {shown}"), c));
        for (what, b) in global_ranges().into_iter().chain(own) {
            if overlap(net, b) {
                return Some((
                    range,
                    format!("The CIDR '{net}' conflicts with {what} ({b})"),
                ));
            }
        }
        if let Some(why) = restricted_by_primary(vpc.cidr, net) {
            return Some((range, why));
        }
        // AWS: a block the same as or larger than a route's destination.
        self.route_tables
            .iter()
            .filter(|t| t.vpc == vpc.id)
            .flat_map(|t| t.routes.iter().map(move |r| (t, r)))
            .find_map(|(t, r)| match r.destination {
                Destination::Cidr(IpNet::V4(d)) if net.contains(&d.network()) && net.prefix_len() <= d.prefix_len() => Some((
                    "InvalidParameterValue",
                    format!("The CIDR '{net}' is the same as or larger than the destination {d} of a route in route table {}", t.id),
                )),
                _ => None,
            })
    }
}

fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A VPC's or subnet's block: /16 to /28, and clear of every block in
/// `others` (a description, the block).
pub(super) fn check_block(
    cidr: Ipv4Net,
    what: &str,
    others: impl IntoIterator<Item = (String, Ipv4Net)>,
    path: &str,
) -> Result<()> {
    if !(16..=28).contains(&cidr.prefix_len()) {
        return Err(ModelError::new(
            path,
            format!("{cidr}: a {what}'s block is between /16 and /28"),
        ));
    }
    for (id, other) in others {
        if other.contains(&cidr.network()) || cidr.contains(&other.network()) {
            return Err(ModelError::new(
                path,
                format!("{cidr} overlaps {id} ({other})"),
            ));
        }
    }
    Ok(())
}

/// The ranges every VPC reaches, which no VPC block may overlap.
fn global_ranges() -> [(String, Ipv4Net); 4] {
    let net = |s: &str| s.parse::<Ipv4Net>().expect("constant");
    [
        ("the Lambda service range".into(), net(LAMBDA_SERVICE_CIDR)),
        (
            "the AWS services range".into(),
            net(endpoint::AWS_SERVICES_CIDR),
        ),
        // Public addresses come from the pool: a VPC there would hold
        // private addresses that are other hosts' public ones.
        ("the public IPv4 pool".into(), net(internet::PUBLIC_POOL)),
        (
            "the range of AWS's public endpoints".into(),
            net(internet::AWS_PUBLIC_CIDR),
        ),
    ]
}

/// AWS's default quota of IPv4 blocks per VPC (primary included).
pub const MAX_IPV4_BLOCKS: usize = 5;

/// AWS's restriction of a secondary IPv4 block by the primary's range
/// ("IPv4 CIDR block association restrictions"): the refusal, if any.
fn restricted_by_primary(primary: Ipv4Net, block: Ipv4Net) -> Option<String> {
    let net = |s: &str| s.parse::<Ipv4Net>().expect("constant");
    let reserved = net("198.19.0.0/16");
    if overlap(block, reserved) {
        return Some(format!(
            "The CIDR '{block}' is restricted: {reserved} is reserved by AWS"
        ));
    }
    // The RFC 1918 ranges: a block may come from the primary's own one,
    // never from another.
    let private = [
        net("10.0.0.0/8"),
        net("172.16.0.0/12"),
        net("192.168.0.0/16"),
    ];
    let own = private.iter().find(|r| r.contains(&primary.network()));
    private
        .iter()
        .find(|r| Some(*r) != own && overlap(block, **r))
        .map(|r| {
            format!(
                "The CIDR '{block}' is restricted: a VPC whose primary block is {primary} cannot take a block of {r}. Use a CIDR from the same private address range as the current VPC CIDR, or use a publicly-routable CIDR"
            )
        })
}

impl Builder<'_> {
    /// VPC peering connections: not modelled (the datapath has no peering
    /// route), but one between VPCs whose IPv4 blocks overlap is refused
    /// for that, as EC2 refuses it (its status `failed`): separate VPCs may
    /// overlap only while no route joins them.
    pub(super) fn vpc_peerings(&self) -> Result<()> {
        if let Some(res) = self.of_type(VPC_PEERING_CONNECTION).first() {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let vpc = |field| str_field(&p, id, field).map(|v| v.and_then(|v| self.m.vpc(v)));
            if let (Some(a), Some(b)) = (vpc("VpcId")?, vpc("PeerVpcId")?) {
                if let Some((ac, bc)) = a.overlaps(b) {
                    return Err(ModelError::new(
                        format!("{}.PeerVpcId", res_path(id)),
                        format!(
                            "VpcPeeringConnection failed (status failed: overlapping CIDRs): the CIDR '{}' of VPC {} overlaps the CIDR '{}' of VPC {}; a VPC peering connection between VPCs with matching or overlapping IPv4 CIDR blocks cannot be created",
                            ac, a.id, bc, b.id
                        ),
                    ));
                }
            }
            return Err(ModelError::new(
                format!("Resources.{id}.Type"),
                super::stack_resource::refusal(VPC_PEERING_CONNECTION),
            ));
        }
        Ok(())
    }

    pub(super) fn vpcs(&mut self) -> Result<()> {
        for res in self.of_type(VPC) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let path = format!("{}.CidrBlock", res_path(id));
            let cidr = parse_v4_cidr(required_str(&p, id, "CidrBlock")?, &path)?;
            // Separate VPCs may overlap, as at AWS (each has its own
            // address space on the router).
            check_block(cidr, "VPC", global_ranges(), &path)?;
            let default_group = format!("{id}.DefaultSecurityGroup");
            // EC2's default: the resolver is on.
            let enable_dns_support =
                p.get("EnableDnsSupport").is_none() || bool_field(&p, id, "EnableDnsSupport")?;
            let enable_dns_hostnames =
                p.get("EnableDnsHostnames").is_some() && bool_field(&p, id, "EnableDnsHostnames")?;
            if enable_dns_hostnames && !enable_dns_support {
                return Err(ModelError::new(
                    format!("{}.EnableDnsHostnames", res_path(id)),
                    "InvalidParameterValue: DNS hostnames need DNS support (EnableDnsSupport)",
                ));
            }
            self.m.vpcs.push(Vpc {
                id: id.clone(),
                index: self.m.vpcs.len() as u32 + 1,
                cidr,
                secondary_cidrs: vec![],
                default_group: default_group.clone(),
                ipv6_cidr: None,
                enable_dns_support,
                enable_dns_hostnames,
                dhcp_options: None,
                dhcp_associated: false,
            });
            // The VPC's default group: inbound from its own members, outbound to all.
            self.m.groups.push(SecurityGroup {
                id: default_group.clone(),
                vpc: id.clone(),
                ingress: vec![Rule::allow_all(Peer::Group(default_group.clone()))],
                egress: vec![Rule::allow_all(Peer::Cidr(
                    "0.0.0.0/0".parse().expect("constant"),
                ))],
                is_default: true,
                account: None,
            });
            self.attr(id, "CidrBlock", cidr.to_string());
            self.attr(id, "VpcId", id.clone());
            self.attr(id, "DefaultSecurityGroup", default_group);
            self.attr(id, "CidrBlockAssociations", Value::Array(vec![]));
            // Filled by an `AWS::EC2::VPCCidrBlock`; empty until then, as at AWS.
            self.attr(id, "Ipv6CidrBlocks", Value::Array(vec![]));
        }
        // No VPC is a deployment too: functions outside any VPC, or one
        // whose VPCs come from the EC2 API (docs/ec2.md).
        Ok(())
    }

    /// A secondary IPv4 block of `vpc`, if AWS's rules take it.
    fn secondary_block(&mut self, vpc: &str, net: Ipv4Net, path: &str) -> Result<()> {
        let v = self.m.vpc(vpc).expect("checked");
        if let Some((code, why)) = self.m.secondary_block_refusal(v, vpc, net) {
            return Err(ModelError::new(path, format!("{code}: {why}")));
        }
        self.m
            .vpcs
            .iter_mut()
            .find(|v| v.id == vpc)
            .expect("checked")
            .secondary_cidrs
            .push(net);
        Ok(())
    }

    /// `AWS::EC2::VPCCidrBlock`: a secondary IPv4 block (`CidrBlock`), or
    /// a VPC's IPv6 block, explicit (a /56) or
    /// Amazon-provided (the next free /56 of `AMAZON_IPV6_POOL`). Explicit
    /// blocks are placed first, so a provided one never takes them.
    pub(super) fn vpc_cidr_blocks(&mut self) -> Result<()> {
        let lambda6: Ipv6Net = LAMBDA_SERVICE_CIDR6.parse().expect("constant");
        let mut wanted = vec![];
        for res in self.of_type(VPC_CIDR_BLOCK) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            for unsupported in [
                "Ipv4IpamPoolId",
                "Ipv4NetmaskLength",
                "Ipv6IpamPoolId",
                "Ipv6NetmaskLength",
            ] {
                if p.get(unsupported).is_some() {
                    return Err(ModelError::new(
                        format!("{path}.{unsupported}"),
                        "not supported by this slice (CidrBlock, AmazonProvidedIpv6CidrBlock or Ipv6CidrBlock)",
                    ));
                }
            }
            if let Some(c) = str_field(&p, &id, "CidrBlock")? {
                if let Some(v6) = ["AmazonProvidedIpv6CidrBlock", "Ipv6CidrBlock"]
                    .into_iter()
                    .find(|f| p.get(*f).is_some())
                {
                    return Err(ModelError::new(
                        format!("{path}.{v6}"),
                        format!("InvalidParameterCombination: CidrBlock and {v6} are mutually exclusive (one block per AWS::EC2::VPCCidrBlock)"),
                    ));
                }
                let f = format!("{path}.CidrBlock");
                let net = parse_v4_cidr(c, &f)?;
                self.secondary_block(&vpc, net, &f)?;
                self.attr(&id, "Id", id.clone());
                continue;
            }
            let amazon = bool_field(&p, &id, "AmazonProvidedIpv6CidrBlock")?;
            let explicit = str_field(&p, &id, "Ipv6CidrBlock")?;
            let block = match (amazon, explicit) {
                (true, Some(_)) => {
                    return Err(ModelError::new(
                        format!("{path}.Ipv6CidrBlock"),
                        "InvalidParameterCombination: AmazonProvidedIpv6CidrBlock and Ipv6CidrBlock are mutually exclusive",
                    ))
                }
                (false, None) => {
                    return Err(ModelError::new(
                        format!("{path}.AmazonProvidedIpv6CidrBlock"),
                        "one of AmazonProvidedIpv6CidrBlock: true or Ipv6CidrBlock is required",
                    ))
                }
                (false, Some(c)) => {
                    let f = format!("{path}.Ipv6CidrBlock");
                    let net = parse_v6_cidr(c, &f)?;
                    if net.prefix_len() != 56 {
                        return Err(ModelError::new(
                            f,
                            format!("{net}: a VPC's IPv6 block is a /56"),
                        ));
                    }
                    // ::/96 and ::ffff:0:0/96 embed IPv4 addresses, which
                    // the datapath keeps in that form: never an IPv6 block.
                    let embeds_v4 = net.contains(&"::ffff:0.0.0.0".parse::<Ipv6Addr>().expect("literal"))
                        || net.contains(&Ipv6Addr::UNSPECIFIED);
                    if embeds_v4 {
                        return Err(ModelError::new(
                            f,
                            format!("{net}: contains IPv4-mapped or IPv4-compatible addresses (::/96, ::ffff:0:0/96), which are not valid IPv6 unicast"),
                        ));
                    }
                    Some((net, f))
                }
                (true, None) => None,
            };
            wanted.push((id, vpc, block));
        }
        // Explicit blocks first, then the provided ones around them.
        wanted.sort_by_key(|w| w.2.is_none());
        for (id, vpc, block) in wanted {
            let path = res_path(&id);
            if let Some(v) = self.m.vpc(&vpc).and_then(|v| v.ipv6_cidr) {
                return Err(ModelError::new(
                    format!("{path}.VpcId"),
                    format!("VPC {vpc} already has the IPv6 block {v}: one per VPC in this slice"),
                ));
            }
            let taken: Vec<Ipv6Net> = self.m.vpcs.iter().filter_map(|v| v.ipv6_cidr).collect();
            let net = match block {
                Some((net, f)) => {
                    if v6_overlap(&net, &lambda6) {
                        return Err(ModelError::new(
                            f,
                            format!("{net} overlaps the Lambda service range {lambda6}"),
                        ));
                    }
                    let public6: Ipv6Net = internet::AWS_PUBLIC_CIDR6.parse().expect("constant");
                    if v6_overlap(&net, &public6) {
                        return Err(ModelError::new(
                            f,
                            format!("{net} overlaps the range of AWS's public endpoints {public6}"),
                        ));
                    }
                    if let Some((o, t)) = self.m.vpcs.iter().find_map(|o| {
                        o.ipv6_cidr
                            .filter(|t| v6_overlap(&net, t))
                            .map(|t| (o.id.clone(), t))
                    }) {
                        return Err(ModelError::new(f, format!("{net} overlaps VPC {o} ({t})")));
                    }
                    net
                }
                None => {
                    let pool: Ipv6Net = AMAZON_IPV6_POOL.parse().expect("constant");
                    pool.subnets(56)
                        .expect("a /48 splits into /56s")
                        .skip(1)
                        .find(|c| !taken.iter().any(|t| v6_overlap(c, t)))
                        .ok_or_else(|| {
                            ModelError::new(
                                format!("{path}.AmazonProvidedIpv6CidrBlock"),
                                format!("no free /56 left in {AMAZON_IPV6_POOL}"),
                            )
                        })?
                }
            };
            let v = self
                .m
                .vpcs
                .iter_mut()
                .find(|v| v.id == vpc)
                .expect("checked");
            v.ipv6_cidr = Some(net);
            // Groups created by AWS get IPv6's allow-all egress too once
            // the VPC has an IPv6 block.
            let dg = v.default_group.clone();
            if let Some(g) = self.m.groups.iter_mut().find(|g| g.id == dg) {
                g.egress.push(Rule::allow_all(Peer::Cidr(
                    "::/0".parse().expect("constant"),
                )));
            }
            self.attr(
                &vpc,
                "Ipv6CidrBlocks",
                Value::Array(vec![net.to_string().into()]),
            );
            self.attr(&id, "Id", id.clone());
            self.attr(&id, "Ipv6CidrBlock", net.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{build_err, build_ok};

    #[test]
    fn explicit_and_provided_ipv6_blocks_do_not_collide() {
        let m = build_ok(
            r#"
Resources:
  V1: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V2: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}
  B1: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V1, AmazonProvidedIpv6CidrBlock: true}}
  B2: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V2, Ipv6CidrBlock: "2001:db8:ec2:100::/56"}}
"#,
        );
        let b = |id: &str| m.vpc(id).unwrap().ipv6_cidr.unwrap().to_string();
        assert_eq!(b("V2"), "2001:db8:ec2:100::/56");
        assert_eq!(b("V1"), "2001:db8:ec2:200::/56");
    }

    #[test]
    fn a_vpc_ipv6_block_holding_ipv4_mapped_or_compatible_addresses_is_refused() {
        // The one /56 holding ::/96 and ::ffff:0:0/96.
        for block in ["::/56", "0::/56"] {
            let e = build_err(&format!(
                r#"
Resources:
  V: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.0.0.0/16}}}}
  B: {{Type: AWS::EC2::VPCCidrBlock, Properties: {{VpcId: !Ref V, Ipv6CidrBlock: "{block}"}}}}
"#
            ));
            assert_eq!(e.path, "Resources.B.Properties.Ipv6CidrBlock", "{block}");
            assert!(e.message.contains("IPv4-mapped"), "{}", e.message);
        }
    }

    /// A VPC 10.0.0.0/16 with the secondary blocks `blocks`, one
    /// `AWS::EC2::VPCCidrBlock` each (B0, B1, ...), and `extra`.
    fn with_blocks(blocks: &[&str], extra: &str) -> String {
        let mut t =
            "Resources:\n  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n"
                .to_string();
        for (i, b) in blocks.iter().enumerate() {
            t += &format!("  B{i}: {{Type: AWS::EC2::VPCCidrBlock, Properties: {{VpcId: !Ref V, CidrBlock: {b}}}}}\n");
        }
        t + extra
    }

    #[test]
    fn secondary_ipv4_blocks_hold_subnets_and_a_local_route_each() {
        let m = build_ok(&with_blocks(
            &["10.1.0.0/16", "100.64.0.0/16"],
            "  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref V, CidrBlock: 10.0.1.0/24}}
  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref V, CidrBlock: 100.64.1.0/24}}
  T: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref V}}
",
        ));
        let v = m.vpc("V").unwrap();
        let blocks: Vec<String> = v.cidrs().map(|c| c.to_string()).collect();
        assert_eq!(blocks, ["10.0.0.0/16", "10.1.0.0/16", "100.64.0.0/16"]);
        assert_eq!(m.subnet("S").unwrap().vpc, "V");
        for t in &m.route_tables {
            let locals: Vec<String> = m
                .routes_of(t)
                .iter()
                .filter(|r| r.id == "local")
                .map(|r| format!("{:?}", r.destination))
                .collect();
            assert_eq!(locals.len(), 3, "{}: {locals:?}", t.id);
        }
    }

    #[test]
    fn secondary_ipv4_blocks_follow_aws_rules() {
        let cases: &[(&[&str], &str, &str)] = &[
            // /16 to /28.
            (&["10.2.0.0/15"], "B0", "between /16 and /28"),
            (&["10.1.0.0/29"], "B0", "between /16 and /28"),
            // Clear of the VPC's own blocks.
            (
                &["10.0.128.0/17"],
                "B0",
                "conflicts with a block of V (10.0.0.0/16)",
            ),
            (
                &["10.1.0.0/16", "10.1.0.0/24"],
                "B1",
                "conflicts with a block of V (10.1.0.0/16)",
            ),
            // The primary's private range only; never 198.19.0.0/16.
            (
                &["172.16.0.0/16"],
                "B0",
                "cannot take a block of 172.16.0.0/12",
            ),
            (
                &["192.168.0.0/16"],
                "B0",
                "cannot take a block of 192.168.0.0/16",
            ),
            (&["198.19.0.0/16"], "B0", "198.19.0.0/16"),
            // The global ranges, as for a primary.
            (&["198.51.100.0/24"], "B0", "the public IPv4 pool"),
            (&["198.18.0.0/24"], "B0", "the AWS services range"),
            // At most five blocks, the primary included.
            (
                &[
                    "10.1.0.0/16",
                    "10.2.0.0/16",
                    "10.3.0.0/16",
                    "10.4.0.0/16",
                    "10.5.0.0/16",
                ],
                "B4",
                "CidrLimitExceeded: This network V has met its maximum number of allowed CIDRs: 5",
            ),
        ];
        for (blocks, at, message) in cases {
            let e = build_err(&with_blocks(blocks, ""));
            assert_eq!(
                e.path,
                format!("Resources.{at}.Properties.CidrBlock"),
                "{blocks:?}: {e}"
            );
            assert!(e.message.contains(message), "{blocks:?}: {}", e.message);
        }
    }

    #[test]
    fn a_public_primary_takes_no_private_secondary_block() {
        let e = build_err(
            "Resources:
  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 100.64.0.0/16}}
  B: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V, CidrBlock: 10.0.0.0/16}}
",
        );
        assert_eq!(e.path, "Resources.B.Properties.CidrBlock");
        assert!(
            e.message.contains("cannot take a block of 10.0.0.0/8"),
            "{}",
            e.message
        );
        build_ok(
            "Resources:
  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 172.16.0.0/16}}
  B: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V, CidrBlock: 172.17.0.0/16}}
",
        );
    }

    #[test]
    fn a_subnet_outside_every_block_and_a_route_inside_a_secondary_block_are_refused() {
        let e = build_err(&with_blocks(
            &["10.1.0.0/16"],
            "  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref V, CidrBlock: 10.2.1.0/24}}\n",
        ));
        assert_eq!(e.path, "Resources.S.Properties.CidrBlock");
        assert!(
            e.message
                .contains("not inside a block of VPC V (10.0.0.0/16, 10.1.0.0/16)"),
            "{}",
            e.message
        );
        // A route inside a secondary block: to a middlebox only, as in
        // the primary.
        let gw = "  T: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref V}}
  G: {Type: AWS::EC2::InternetGateway}
  GA: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref V, InternetGatewayId: !Ref G}}
  R: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref T, DestinationCidrBlock: 10.1.2.0/24, GatewayId: !Ref G}}
";
        let e = build_err(&with_blocks(&["10.1.0.0/16"], gw));
        assert_eq!(e.path, "Resources.R.Properties.DestinationCidrBlock");
        assert!(
            e.message.contains("CIDR blocks (10.1.0.0/16)"),
            "{}",
            e.message
        );
        // Without the block the route stands, and then refuses a block the
        // same as or larger than its destination (the EC2 API's order).
        let m = build_ok(&with_blocks(&[], gw));
        let v = m.vpc("V").unwrap();
        for block in ["10.1.0.0/16", "10.1.2.0/24"] {
            let (code, why) = m
                .secondary_block_refusal(v, "V", block.parse().unwrap())
                .expect(block);
            assert_eq!(code, "InvalidParameterValue", "{block}");
            assert!(
                why.contains("destination 10.1.2.0/24 of a route in route table T"),
                "{why}"
            );
        }
        assert_eq!(
            m.secondary_block_refusal(v, "V", "10.1.3.0/24".parse().unwrap()),
            None
        );
    }

    #[test]
    fn a_block_is_ipv4_or_ipv6_not_both() {
        let e = build_err(
            "Resources:
  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  B: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref V, CidrBlock: 10.1.0.0/16, AmazonProvidedIpv6CidrBlock: true}}
",
        );
        assert_eq!(e.path, "Resources.B.Properties.AmazonProvidedIpv6CidrBlock");
        assert!(
            e.message.contains("InvalidParameterCombination"),
            "{}",
            e.message
        );
    }
}
