//! The internet behind internet gateways: its test hosts (the template
//! extension `Metadata: Vpc::Internet`, since CloudFormation has no such
//! resource) and the public IPv4 addresses of instances and interfaces
//! (`AWS::EC2::EIP`, `AWS::EC2::EIPAssociation`, `AssociatePublicIpAddress`,
//! `MapPublicIpOnLaunch`).
use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bool_field, fnv1a, res_path, str_field, Builder, HostKind, Model, INSTANCE};
use crate::template::{ModelError, Result};

pub const EIP: &str = "AWS::EC2::EIP";
pub const EIP_ASSOCIATION: &str = "AWS::EC2::EIPAssociation";
/// The `Metadata` key of the internet's test hosts.
pub const INTERNET_METADATA: &str = "Vpc::Internet";
/// Where public IPv4 addresses come from: TEST-NET-2 (RFC 5737), never
/// routed anywhere, standing in for Amazon's public pool.
pub const PUBLIC_POOL: &str = "198.51.100.0/24";
/// The internet's side of every test host's link (link-local, so it is
/// nobody's address): the hosts' default gateway.
pub const INTERNET_GATEWAY_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// AWS's public endpoints on the internet (ours): one node, `AwsPublic`,
/// in every deployment that has an internet (test hosts, or an internet
/// gateway of either kind), reached like a test host. It serves Lambda's
/// public API (`lambda.<region>.amazonaws.com`, IPv4 only as at AWS, and
/// the dual-stack `lambda.<region>.api.aws`), function URLs
/// (`<url-id>.lambda-url.<region>.on.aws`) and the internet's DNS.
pub const AWS_PUBLIC_ID: &str = "AwsPublic";
/// Its range: the second /24 of the benchmarking block 198.18.0.0/15
/// (RFC 2544), beside the gateway services' first and the Lambda side's
/// 198.19.0.0/16, and clear of the documentation ranges test hosts take.
pub const AWS_PUBLIC_CIDR: &str = "198.18.1.0/24";
/// Its IPv6 range: a global-unicast-shaped /48 of IANA's IETF protocol
/// block (2001::/23) that is assigned to nobody, just past the IPv6
/// benchmarking block 2001:2::/48 (the Lambda side's); not the
/// documentation range, where the VPCs and test hosts are.
pub const AWS_PUBLIC_CIDR6: &str = "2001:2:ffff::/48";
/// Lambda's own NAT address: where a function without `VpcConfig` reaches
/// the internet from (Lambda's own VPC has internet access). In the
/// benchmarking block, past AWS's public endpoints' /24.
pub const LAMBDA_OWN_NAT: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);

/// Lambda's public endpoint (its API and function URLs) and the
/// internet's resolver.
pub const LAMBDA_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const LAMBDA_PUBLIC6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0xffff, 0, 0, 0, 0, 0x10);

/// A host on the internet: a namespace of its own, reached only through
/// an internet gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InternetHost {
    pub id: String,
    pub ip: Ipv4Addr,
    /// `Ipv6Address` (ours): a global address, reached through an internet
    /// gateway or an egress-only one without translation.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
}

/// A public IPv4 address, mapped 1:1 to a host's private address by the
/// internet gateway of its VPC.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicIp {
    /// The instance or network interface.
    pub host: String,
    pub ip: Ipv4Addr,
    /// The Elastic IP's logical id (`None`: assigned at launch).
    pub eip: Option<String>,
    /// The host's private address it maps to (`PrivateIpAddress` of an
    /// association: a secondary one); `None`: its primary.
    #[serde(default)]
    pub private: Option<Ipv4Addr>,
    /// The `AWS::EC2::EIPAssociation` that made it (its `eipassoc-` id).
    #[serde(default)]
    pub association: Option<String>,
}

impl Model {
    /// Whether the deployment has an internet, and so AWS's public
    /// endpoints ([`AWS_PUBLIC_ID`]): test hosts, or an internet gateway
    /// of either kind (attached or not: the internet is there).
    pub fn has_internet(&self) -> bool {
        !self.internet_hosts.is_empty()
            || !self.internet_gateways.is_empty()
            || !self.egress_only_internet_gateways.is_empty()
    }

    /// The public address of a host's primary private address.
    pub fn public_ip(&self, host: &str) -> Option<Ipv4Addr> {
        let primary = self.hosts.iter().find(|h| h.id == host)?.ip;
        self.public_ips
            .iter()
            .find(|p| p.host == host && self.private_of(p) == Some(primary))
            .map(|p| p.ip)
    }

    /// The private address public address `p` maps to.
    pub fn private_of(&self, p: &PublicIp) -> Option<Ipv4Addr> {
        let h = self.hosts.iter().find(|h| h.id == p.host)?;
        Some(p.private.unwrap_or(h.ip))
    }
}

/// `!GetAtt Eip.AllocationId`.
pub fn allocation_id(eip: &str) -> String {
    format!("eipalloc-{:017x}", fnv1a(eip))
}

fn pool() -> Ipv4Net {
    PUBLIC_POOL.parse().expect("constant")
}

/// A test host's address must be one the internet could route: not
/// private, shared, loopback, link-local, multicast or reserved.
fn public_address(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64))
}

/// A test host's IPv6 address must be global unicast (2000::/3): not
/// link-local, unique-local, multicast, loopback, unspecified, nor an
/// IPv4-mapped or -compatible form.
fn global_address6(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xe000 == 0x2000
}

/// An Elastic IP's association as a template declares it.
struct Assoc {
    host: String,
    eip: String,
    /// The field that names the host.
    path: String,
    /// `PrivateIpAddress` (`None`: the primary).
    private: Option<Ipv4Addr>,
    /// The `AWS::EC2::EIPAssociation` (`None`: the EIP's `InstanceId`).
    association: Option<String>,
}

impl Builder<'_> {
    /// Elastic IPs get their addresses before anything is resolved, so that
    /// `!Ref Eip` (its public IP, as in CloudFormation) works anywhere.
    pub(super) fn allocate_elastic_ips(&mut self) -> Result<()> {
        let ids: Vec<String> = self
            .of_type(EIP)
            .iter()
            .map(|r| r.logical_id.clone())
            .collect();
        for id in ids {
            let ip = self.take_public_ip(&id, &res_path(&id))?;
            self.r
                .refs
                .insert(id.clone(), Value::String(ip.to_string()));
            self.attr(&id, "PublicIp", ip.to_string());
            self.attr(&id, "AllocationId", allocation_id(&id));
            self.m.elastic_ips.push((id.clone(), ip));
            self.eips.push((id, ip));
        }
        Ok(())
    }

    /// A public-pool address for `owner` (an Elastic IP, or an instance's
    /// launch address): the one it had in the model this template replaces,
    /// else the lowest free one from .10 that no kept owner holds.
    fn take_public_ip(&mut self, owner: &str, path: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.public_kept.get(owner).copied() {
            if self.public_used.insert(ip) {
                return Ok(ip);
            }
        }
        let base = u32::from(pool().network()) + 10;
        let kept: BTreeSet<Ipv4Addr> = self.public_kept.values().copied().collect();
        let ip = (base..base + 240)
            .map(Ipv4Addr::from)
            .find(|ip| !self.public_used.contains(ip) && !kept.contains(ip))
            .ok_or_else(|| {
                ModelError::new(
                    path,
                    format!(
                        "AddressLimitExceeded: the public pool {PUBLIC_POOL} holds 240 addresses"
                    ),
                )
            })?;
        self.public_used.insert(ip);
        Ok(ip)
    }

    /// Associations and addresses assigned at launch, then the internet's
    /// test hosts. Runs after hosts.
    pub(super) fn public_addresses(&mut self) -> Result<()> {
        let host_of = |m: &Model, id: &str| m.hosts.iter().find(|h| h.id == id).cloned();
        let mut assoc: Vec<Assoc> = vec![];
        for res in self.of_type(EIP) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            if let Some(d) = str_field(&p, &id, "Domain")? {
                if d != "vpc" {
                    return Err(ModelError::new(
                        format!("{}.Domain", res_path(&id)),
                        format!("{d:?}: only vpc (EC2-Classic is gone)"),
                    ));
                }
            }
            if let Some(inst) = str_field(&p, &id, "InstanceId")? {
                assoc.push(Assoc {
                    host: inst.into(),
                    eip: id.clone(),
                    path: format!("{}.InstanceId", res_path(&id)),
                    private: None,
                    association: None,
                });
            }
        }
        for res in self.of_type(EIP_ASSOCIATION) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            let eip = match (str_field(&p, &id, "AllocationId")?, str_field(&p, &id, "EIP")?) {
                (Some(a), None) => self
                    .eips
                    .iter()
                    .find(|(e, _)| allocation_id(e) == a)
                    .map(|(e, _)| e.clone())
                    .ok_or_else(|| {
                        ModelError::new(
                            format!("{path}.AllocationId"),
                            format!("InvalidAllocationID.NotFound: {a:?}"),
                        )
                    })?,
                (None, Some(ip)) => self
                    .eips
                    .iter()
                    .find(|(_, e)| e.to_string() == ip)
                    .map(|(e, _)| e.clone())
                    .ok_or_else(|| {
                        ModelError::new(
                            format!("{path}.EIP"),
                            format!("InvalidAddress.NotFound: {ip:?} is no AWS::EC2::EIP of this template"),
                        )
                    })?,
                _ => {
                    return Err(ModelError::new(
                        path,
                        "exactly one of AllocationId and EIP is required",
                    ))
                }
            };
            let (field, host) = match (
                str_field(&p, &id, "InstanceId")?,
                str_field(&p, &id, "NetworkInterfaceId")?,
            ) {
                (Some(h), None) => ("InstanceId", h),
                (None, Some(h)) => ("NetworkInterfaceId", h),
                _ => {
                    return Err(ModelError::new(
                        path,
                        "exactly one of InstanceId and NetworkInterfaceId is required",
                    ))
                }
            };
            let kind_ok =
                self.m.hosts.iter().any(|h| {
                    h.id == host && (h.kind == HostKind::Instance) == (field == "InstanceId")
                });
            if !kind_ok {
                let what = if field == "InstanceId" {
                    "InvalidInstanceID.NotFound"
                } else {
                    "InvalidNetworkInterfaceID.NotFound"
                };
                return Err(ModelError::new(
                    format!("{path}.{field}"),
                    format!("{what}: {host:?}"),
                ));
            }
            let private = Self::parse_ip(&p, &id, "PrivateIpAddress", &path)?;
            assoc.push(Assoc {
                host: host.into(),
                eip,
                path: format!("{path}.{field}"),
                private,
                association: Some(id),
            });
        }
        for Assoc {
            host,
            eip,
            path,
            private,
            association,
        } in assoc
        {
            let Some(h) = host_of(&self.m, &host) else {
                return Err(ModelError::new(
                    path,
                    format!("InvalidInstanceID.NotFound: {host:?}"),
                ));
            };
            if let Some(a) = private.filter(|a| !h.ips().any(|x| x == *a)) {
                return Err(ModelError::new(
                    path.replace(".InstanceId", ".PrivateIpAddress")
                        .replace(".NetworkInterfaceId", ".PrivateIpAddress"),
                    format!("InvalidParameterValue: {a} is not a private address of {host}"),
                ));
            }
            let private = private.unwrap_or(h.ip);
            let ip = self
                .eips
                .iter()
                .find(|(e, _)| *e == eip)
                .expect("allocated")
                .1;
            if let Some(other) = self
                .m
                .public_ips
                .iter()
                .find(|p| p.eip.as_deref() == Some(&eip))
            {
                return Err(ModelError::new(
                    path,
                    format!(
                        "Resource.AlreadyAssociated: {eip} is already associated with {}",
                        other.host
                    ),
                ));
            }
            if self
                .m
                .public_ips
                .iter()
                .any(|p| p.host == host && self.m.private_of(p) == Some(private))
            {
                return Err(ModelError::new(
                    path,
                    format!(
                        "Resource.AlreadyAssociated: {private} of {host} already has an Elastic IP"
                    ),
                ));
            }
            self.m.public_ips.push(PublicIp {
                host: host.clone(),
                ip,
                eip: Some(eip),
                private: Some(private),
                association,
            });
            if private == h.ip {
                self.attr(&host, "PublicIp", ip.to_string());
            }
        }
        // Assigned at launch: an instance's interface asks for one, or its
        // subnet maps one on launch; an Elastic IP takes its place.
        let mut map_on_launch = std::collections::HashSet::new();
        for res in self.of_type(super::SUBNET) {
            let p = self.props(res)?;
            if bool_field(&p, &res.logical_id, "MapPublicIpOnLaunch")? {
                map_on_launch.insert(res.logical_id.clone());
            }
        }
        for res in self.of_type(INSTANCE) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let iface = p
                .get("NetworkInterfaces")
                .and_then(Value::as_array)
                .and_then(|l| l.first());
            let asked = match iface.and_then(|i| i.get("AssociatePublicIpAddress")) {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
                Some(_) => {
                    return Err(ModelError::new(
                        format!(
                            "{}.NetworkInterfaces[0].AssociatePublicIpAddress",
                            res_path(&id)
                        ),
                        "must be true or false",
                    ))
                }
            };
            let Some(h) = host_of(&self.m, &id) else {
                continue;
            };
            // A stopped instance gave its launch address back.
            let wants = asked.unwrap_or_else(|| map_on_launch.contains(&h.subnet)) && !h.stopped;
            if wants && self.m.public_ip(&id).is_none() {
                let ip = self.take_public_ip(&id, &res_path(&id))?;
                self.m.public_ips.push(PublicIp {
                    host: id.clone(),
                    ip,
                    eip: None,
                    private: Some(h.ip),
                    association: None,
                });
                self.attr(&id, "PublicIp", ip.to_string());
            }
        }
        self.m.public_ips.sort_by(|a, b| a.host.cmp(&b.host));
        self.internet_hosts()
    }

    fn internet_hosts(&mut self) -> Result<()> {
        let Some(meta) = self.t.metadata.get(INTERNET_METADATA).cloned() else {
            return Ok(());
        };
        let base = format!("Metadata.{INTERNET_METADATA}");
        let meta = self.r.resolve(&meta, &base)?;
        let hosts = match meta.get("Hosts") {
            Some(Value::Object(h)) => h.clone(),
            _ => {
                return Err(ModelError::new(
                    format!("{base}.Hosts"),
                    "is required: a mapping of host names to {Address: ...}",
                ))
            }
        };
        if let Some(k) = meta
            .as_object()
            .and_then(|m| m.keys().find(|k| k.as_str() != "Hosts"))
        {
            return Err(ModelError::new(
                format!("{base}.{k}"),
                "unknown key (Hosts only)",
            ));
        }
        for (id, h) in hosts {
            let path = format!("{base}.Hosts.{id}");
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ModelError::new(
                    path,
                    "host names are alphanumeric, like logical ids",
                ));
            }
            if self.t.resources.contains_key(&id) {
                return Err(ModelError::new(
                    path,
                    format!("{id} is also a resource's logical id"),
                ));
            }
            let addr = h.get("Address").and_then(Value::as_str).ok_or_else(|| {
                ModelError::new(format!("{path}.Address"), "is required (an IPv4 address)")
            })?;
            let ip: Ipv4Addr = addr.parse().map_err(|_| {
                ModelError::new(
                    format!("{path}.Address"),
                    format!("{addr:?} is not an IPv4 address"),
                )
            })?;
            let bad = |why: String| Err(ModelError::new(format!("{path}.Address"), why));
            if !public_address(ip) {
                return bad(format!("{ip} is not a public address (private, shared, loopback, link-local, multicast or reserved)"));
            }
            if pool().contains(&ip) {
                return bad(format!(
                    "{ip} is in {PUBLIC_POOL}, where public IPs of instances come from"
                ));
            }
            let lambda: Ipv4Net = super::LAMBDA_SERVICE_CIDR.parse().expect("constant");
            if lambda.contains(&ip) {
                return bad(format!("{ip} is in the Lambda service range {lambda}"));
            }
            let services: Ipv4Net = super::endpoint::AWS_SERVICES_CIDR
                .parse()
                .expect("constant");
            if services.contains(&ip) {
                return bad(format!(
                    "{ip} is in the AWS services range {services} (VPC endpoints)"
                ));
            }
            let public: Ipv4Net = AWS_PUBLIC_CIDR.parse().expect("constant");
            if public.contains(&ip) {
                return bad(format!(
                    "{ip} is in {public}, the range of AWS's public endpoints (Lambda's)"
                ));
            }
            if let Some(v) = self.m.vpcs.iter().find(|v| v.holds(&ip)) {
                return bad(format!("{ip} is inside VPC {}", v.id));
            }
            if let Some(o) = self.m.internet_hosts.iter().find(|o| o.ip == ip) {
                return bad(format!("{ip} is already {}'s", o.id));
            }
            let ip6 = self.internet_host6(&h, &path)?;
            if let Some(k) = h.as_object().and_then(|m| {
                m.keys()
                    .find(|k| !["Address", "Ipv6Address"].contains(&k.as_str()))
            }) {
                return Err(ModelError::new(
                    format!("{path}.{k}"),
                    "unknown key (Address and Ipv6Address only)",
                ));
            }
            self.m.internet_hosts.push(InternetHost { id, ip, ip6 });
        }
        Ok(())
    }

    /// A test host's `Ipv6Address`, if any: global, and clear of every
    /// range the VPCs and Lambda use here.
    fn internet_host6(&self, h: &Value, path: &str) -> Result<Option<Ipv6Addr>> {
        let Some(v) = h.get("Ipv6Address") else {
            return Ok(None);
        };
        let field = format!("{path}.Ipv6Address");
        let addr = v
            .as_str()
            .ok_or_else(|| ModelError::new(&field, "must be an IPv6 address (a string)"))?;
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| ModelError::new(&field, format!("{addr:?} is not an IPv6 address")))?;
        let bad = |why: String| Err(ModelError::new(&field, why));
        if !global_address6(ip) {
            return bad(format!(
                "{ip} is not a global unicast address (2000::/3; not link-local, unique-local, \
                 multicast, loopback or an IPv4 form)"
            ));
        }
        let amazon: Ipv6Net = super::AMAZON_IPV6_POOL.parse().expect("constant");
        if amazon.contains(&ip) {
            return bad(format!(
                "{ip} is in {amazon}, where the VPCs' Amazon-provided IPv6 blocks come from"
            ));
        }
        let lambda: Ipv6Net = super::LAMBDA_SERVICE_CIDR6.parse().expect("constant");
        if lambda.contains(&ip) {
            return bad(format!("{ip} is in the Lambda service range {lambda}"));
        }
        let public: Ipv6Net = AWS_PUBLIC_CIDR6.parse().expect("constant");
        if public.contains(&ip) {
            return bad(format!(
                "{ip} is in {public}, the range of AWS's public endpoints (Lambda's)"
            ));
        }
        if let Some(v) = self
            .m
            .vpcs
            .iter()
            .find(|v| v.ipv6_cidr.is_some_and(|c| c.contains(&ip)))
        {
            return bad(format!(
                "{ip} is inside VPC {} ({})",
                v.id,
                v.ipv6_cidr.expect("found")
            ));
        }
        if let Some(o) = self.m.internet_hosts.iter().find(|o| o.ip6 == Some(ip)) {
            return bad(format!("{ip} is already {}'s", o.id));
        }
        Ok(Some(ip))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::build;

    const BASE: &str = r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Example: {Address: 203.0.113.10}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24, MapPublicIpOnLaunch: true}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public}}
  Quiet: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{SubnetId: !Ref Public, AssociatePublicIpAddress: false}]}}
  Asks: {Type: AWS::EC2::Instance, Properties: {NetworkInterfaces: [{SubnetId: !Ref Private, AssociatePublicIpAddress: true}]}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private}}
  Eni: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref Private}}
  Eip: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  EipAssoc: {Type: AWS::EC2::EIPAssociation, Properties: {AllocationId: !GetAtt Eip.AllocationId, NetworkInterfaceId: !Ref Eni}}
"#;

    #[test]
    fn public_addresses_come_from_eips_launch_settings_and_the_pool() {
        let m = build(BASE, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"));
        let ips: Vec<(String, String, bool)> = m
            .public_ips
            .iter()
            .map(|p| (p.host.clone(), p.ip.to_string(), p.eip.is_some()))
            .collect();
        assert_eq!(
            ips,
            [
                ("Asks".into(), "198.51.100.11".into(), false),
                ("Eni".into(), "198.51.100.10".into(), true),
                ("Web".into(), "198.51.100.12".into(), false),
            ]
        );
        assert_eq!(
            m.internet_hosts,
            [InternetHost {
                id: "Example".into(),
                ip: "203.0.113.10".parse().unwrap(),
                ip6: None,
            }]
        );
    }

    /// A dual-stack VPC with an explicit block outside the Amazon pool, so
    /// that "inside a VPC" is told apart from "in the Amazon pool".
    const V6: &str = r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Example: {Address: 203.0.113.10, Ipv6Address: 2001:db8:f00d::10}
      Mirror: {Address: 203.0.113.11}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, Ipv6CidrBlock: 2001:db8:beef:100::/56}}
"#;

    #[test]
    fn test_hosts_may_have_a_global_ipv6_address() {
        let m = build(V6, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"));
        let ip6: Vec<Option<String>> = m
            .internet_hosts
            .iter()
            .map(|h| h.ip6.map(|a| a.to_string()))
            .collect();
        assert_eq!(ip6, [Some("2001:db8:f00d::10".to_string()), None]);
    }

    #[test]
    fn bad_ipv6_addresses_of_test_hosts_name_their_field() {
        let field = "Metadata.Vpc::Internet.Hosts.Example.Ipv6Address";
        let with = |a: &str| V6.replace("2001:db8:f00d::10", a);
        let cases = [
            (with("fe80::10"), "not a global unicast"),
            (with("fd00:ec2::10"), "not a global unicast"),
            (with("ff02::1"), "not a global unicast"),
            (with("'::1'"), "not a global unicast"),
            (with("'::ffff:203.0.113.10'"), "not a global unicast"),
            (with("2001:db8:ec2:100::10"), "Amazon-provided"),
            (with("2001:2::10"), "Lambda service range"),
            (with("2001:2:ffff::10"), "AWS's public endpoints"),
            (with("2001:db8:beef:1a0::10"), "inside VPC Vpc"),
            (with("10.0.0.1"), "not an IPv6 address"),
            (
                V6.replace(
                    "{Address: 203.0.113.11}",
                    "{Address: 203.0.113.11, Ipv6Address: 2001:db8:f00d::10}",
                ),
                "already Example's",
            ),
        ];
        for (t, msg) in cases {
            let e = build(&t, &HashMap::new(), "s").expect_err(msg).to_string();
            let want = if msg == "already Example's" {
                "Metadata.Vpc::Internet.Hosts.Mirror.Ipv6Address"
            } else {
                field
            };
            assert!(
                e.contains(want) && e.contains(msg),
                "got {e:?}, want {want} / {msg}"
            );
        }
        let e = build(
            &V6.replace("Ipv6Address:", "Ipv6Adress:"),
            &HashMap::new(),
            "s",
        )
        .expect_err("a misspelt key")
        .to_string();
        assert!(
            e.contains("Hosts.Example.Ipv6Adress") && e.contains("unknown key"),
            "{e}"
        );
    }

    #[test]
    fn the_public_endpoints_range_is_nobody_elses() {
        let e = build(
            &V6.replace("2001:db8:beef:100::/56", "2001:2:ffff:100::/56"),
            &HashMap::new(),
            "s",
        )
        .expect_err("a VPC block in the public endpoints' range")
        .to_string();
        assert!(
            e.contains("V6.Properties.Ipv6CidrBlock") && e.contains("AWS's public endpoints"),
            "{e}"
        );
    }

    #[test]
    fn a_deployment_has_an_internet_with_test_hosts_or_a_gateway() {
        let m = build(BASE, &HashMap::new(), "s").unwrap();
        assert!(m.has_internet());
        let none =
            "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n";
        assert!(!build(none, &HashMap::new(), "s").unwrap().has_internet());
        let igw = format!("{none}  Igw: {{Type: AWS::EC2::InternetGateway}}\n");
        assert!(build(&igw, &HashMap::new(), "s").unwrap().has_internet());
    }

    #[test]
    fn bad_extensions_and_associations_name_their_field() {
        let cases = [
            (BASE.replace("203.0.113.10", "10.9.0.1"), "Metadata.Vpc::Internet.Hosts.Example.Address", "not a public address"),
            (BASE.replace("203.0.113.10", "198.51.100.7"), "Hosts.Example.Address", "public IPs of instances"),
            (BASE.replace("203.0.113.10", "198.19.3.3"), "Hosts.Example.Address", "Lambda service range"),
            (BASE.replace("203.0.113.10", "198.18.1.10"), "Hosts.Example.Address", "AWS's public endpoints"),
            (BASE.replace("10.0.0.0/16", "198.18.0.0/23").replace("10.0.1.0/24", "198.18.1.0/25").replace("10.0.2.0/24", "198.18.1.128/25"), "Vpc.Properties.CidrBlock", "AWS services range"),
            (BASE.replace("10.0.0.0/16", "198.18.1.0/24").replace("10.0.1.0/24", "198.18.1.0/25").replace("10.0.2.0/24", "198.18.1.128/25"), "Vpc.Properties.CidrBlock", "AWS's public endpoints"),
            (BASE.replace("Example:", "Web:"), "Hosts.Web", "also a resource"),
            (BASE.replace("{Address: 203.0.113.10}", "{}"), "Hosts.Example.Address", "is required"),
            (BASE.replace("NetworkInterfaceId: !Ref Eni", "NetworkInterfaceId: Db"), "EipAssoc.Properties.NetworkInterfaceId", "InvalidNetworkInterfaceID.NotFound"),
            (BASE.replace("AllocationId: !GetAtt Eip.AllocationId", "AllocationId: eipalloc-1"), "EipAssoc.Properties.AllocationId", "InvalidAllocationID.NotFound"),
            (BASE.replace("Domain: vpc", "Domain: standard"), "Eip.Properties.Domain", "only vpc"),
            (format!("{BASE}  Again: {{Type: AWS::EC2::EIPAssociation, Properties: {{EIP: !Ref Eip, InstanceId: !Ref Web}}}}\n"), "EipAssoc.Properties.NetworkInterfaceId", "AlreadyAssociated"),
        ];
        for (t, path, msg) in cases {
            let e = build(&t, &HashMap::new(), "s").expect_err(path).to_string();
            assert!(
                e.contains(path) && e.contains(msg),
                "got {e:?}, want {path} / {msg}"
            );
        }
    }
}
