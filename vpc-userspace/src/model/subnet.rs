//! Subnets: `AWS::EC2::Subnet` (IPv4 block, optional IPv6 /64, IPv6-only
//! subnets), their CIDR reservations, and the addresses taken in them by
//! everything placed there.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    bool_field, network_acl::default_acl_id, parse_v4_cidr, parse_v6_cidr, required_str, res_path,
    str_field, v6_overlap, vpc::check_block, Builder, Model,
};
use crate::template::{ModelError, Result};

pub const SUBNET: &str = "AWS::EC2::Subnet";

/// A subnet CIDR reservation (CreateSubnetCidrReservation). CloudFormation
/// has no such type: this project's own, accepted in the EC2 API's stack
/// only (docs/ec2.md).
pub const SUBNET_CIDR_RESERVATION: &str = "Vpc::EC2::SubnetCidrReservation";

/// A range of a subnet automatic address assignment never hands out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CidrReservation {
    /// Its logical id in the EC2 API's stack.
    pub id: String,
    pub cidr: IpNet,
    /// `ReservationType`: `prefix` or `explicit`.
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub az: String,
    /// Its network ACL: the VPC's default one until associated.
    pub acl: String,
    /// Its IPv6 block (a /64 of the VPC's /56): the subnet is dual-stack.
    #[serde(default)]
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `AssignIpv6AddressOnCreation`: new interfaces get an IPv6 address.
    #[serde(default)]
    pub assign_ipv6_on_creation: bool,
    /// Its route table: the VPC's main table until associated.
    #[serde(default)]
    pub route_table: String,
    /// 1-based index in the datapath (ports, `SUBNET_ACLS`,
    /// `SUBNET_ROUTE_TABLES`): kept for the subnet's life, so adding or
    /// removing another subnet rewrites no entry of this one.
    #[serde(default)]
    pub index: u32,
    /// Its CIDR reservations, in the order they were made.
    #[serde(default)]
    pub reservations: Vec<CidrReservation>,
}

impl Subnet {
    /// The VPC router's address in this subnet (base + 1), as at AWS.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
    }
    pub fn is_dual_stack(&self) -> bool {
        self.ipv6_cidr.is_some()
    }
    /// Whether a reservation holds `ip`: automatic assignment skips it.
    pub fn reserves(&self, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into();
        self.reservations.iter().any(|r| r.cidr.contains(&ip))
    }
    /// Why `cidr` may not be reserved in this subnet, in EC2's words.
    pub fn check_reservation(&self, cidr: IpNet) -> std::result::Result<(), String> {
        let inside = match cidr {
            IpNet::V4(c) => self.cidr.contains(&c),
            IpNet::V6(c) => self.ipv6_cidr.is_some_and(|n| n.contains(&c)),
        };
        if !inside {
            let blocks = match cidr {
                IpNet::V4(_) => self.cidr.to_string(),
                IpNet::V6(_) => self.ipv6_cidr.map(|c| c.to_string()).unwrap_or_default(),
            };
            return Err(format!(
                "Reservation CIDR should be within subnet CIDR block ({blocks})"
            ));
        }
        if self
            .reservations
            .iter()
            .any(|r| r.cidr.contains(&cidr.network()) || cidr.contains(&r.cidr.network()))
        {
            return Err(format!(
                "Reservation CIDR {cidr} has overlap with existing reserved CIDR block"
            ));
        }
        Ok(())
    }
}

impl Model {
    /// The datapath index of subnet `id` (validated: it exists).
    pub fn subnet_index(&self, id: &str) -> u32 {
        self.subnet(id).expect("validated").index
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
    /// A free IPv4 address of `subnet` (AWS reserves the first four and the
    /// last), or `None`: `SubnetOutOfIPAddresses`.
    pub fn free_ip(&self, subnet: &str) -> Option<Ipv4Addr> {
        self.free_ips(subnet, 1).pop()
    }
    /// The lowest `n` free IPv4 addresses of `subnet` (fewer when it has
    /// not that many).
    pub fn free_ips(&self, subnet: &str, n: usize) -> Vec<Ipv4Addr> {
        let Some(sn) = self.subnet(subnet) else {
            return vec![];
        };
        // Addresses of the subnet's VPC: separate VPCs may overlap.
        let mine = |s: &str| self.subnet(s).is_some_and(|s| s.vpc == sn.vpc);
        let used: std::collections::HashSet<Ipv4Addr> = self
            .hosts
            .iter()
            .filter(|h| mine(&h.subnet))
            .flat_map(|h| h.ips())
            .chain(self.enis.iter().filter(|e| mine(&e.subnet)).map(|e| e.ip))
            .chain(
                self.nat_gateways
                    .iter()
                    .filter(|g| mine(&g.subnet))
                    .map(|g| g.ip),
            )
            .collect();
        let (base, last) = (u32::from(sn.cidr.network()), u32::from(sn.cidr.broadcast()));
        (base + 4..last)
            .map(Ipv4Addr::from)
            .filter(|ip| !used.contains(ip) && !sn.reserves(*ip))
            .take(n)
            .collect()
    }
    /// A free IPv6 address of a dual-stack `subnet` (first four and last reserved).
    pub fn free_ip6(&self, subnet: &str) -> Option<Ipv6Addr> {
        let sn = self.subnet(subnet)?;
        let net = sn.ipv6_cidr?;
        let used: std::collections::HashSet<Ipv6Addr> = self
            .hosts
            .iter()
            .filter_map(|h| h.ip6)
            .chain(self.enis.iter().filter_map(|e| e.ip6))
            .collect();
        let base = u128::from(net.network());
        (4..1u128 << 20)
            .map(|i| Ipv6Addr::from(base + i))
            .find(|ip| !used.contains(ip) && !sn.reserves(*ip))
    }
}

impl Builder<'_> {
    /// Subnet `subnet`, which resource `id`'s `SubnetId` names.
    pub(super) fn subnet_mut(&mut self, id: &str, subnet: &str) -> Result<&mut Subnet> {
        self.m
            .subnets
            .iter_mut()
            .find(|s| s.id == subnet)
            .ok_or_else(|| {
                ModelError::new(
                    format!("{}.SubnetId", res_path(id)),
                    format!("InvalidSubnetID.NotFound: {subnet:?}"),
                )
            })
    }

    /// A subnet's IPv6 block: a /64 inside its VPC's /56, clear of every
    /// other subnet's.
    fn subnet_v6_block(&self, p: &Value, id: &str, vpc: &str) -> Result<Option<Ipv6Net>> {
        let path = format!("{}.Ipv6CidrBlock", res_path(id));
        let Some(c) = str_field(p, id, "Ipv6CidrBlock")? else {
            return Ok(None);
        };
        let net = parse_v6_cidr(c, &path)?;
        if net.prefix_len() != 64 {
            return Err(ModelError::new(
                path,
                format!("{net}: a subnet's IPv6 block is a /64"),
            ));
        }
        let Some(vnet) = self.m.vpc(vpc).expect("checked").ipv6_cidr else {
            return Err(ModelError::new(
                path,
                format!(
                    "VPC {vpc} has no IPv6 block (add an AWS::EC2::VPCCidrBlock, and DependsOn it)"
                ),
            ));
        };
        if !vnet.contains(&net) {
            return Err(ModelError::new(
                path,
                format!("{net} is not inside the VPC's {vnet}"),
            ));
        }
        let others = self
            .m
            .subnets
            .iter()
            .filter_map(|s| s.ipv6_cidr.map(|c| (s.id.clone(), c)))
            .chain(self.ipv6_only.iter().map(|(i, c)| (i.clone(), *c)));
        for (other, c) in others {
            if v6_overlap(&net, &c) {
                return Err(ModelError::new(
                    path,
                    format!("{net} overlaps subnet {other} ({c})"),
                ));
            }
        }
        Ok(Some(net))
    }

    pub(super) fn subnets(&mut self) -> Result<()> {
        for res in self.of_type(SUBNET) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, id, "VpcId")?;
            if bool_field(&p, id, "Ipv6Native")? {
                // IPv6-only: no IPv4 block, an IPv6 one required.
                if p.get("CidrBlock").is_some() {
                    return Err(ModelError::new(
                        format!("{}.CidrBlock", res_path(id)),
                        "an IPv6-only subnet (Ipv6Native: true) has no IPv4 CidrBlock",
                    ));
                }
                let net = self.subnet_v6_block(&p, id, &vpc)?.ok_or_else(|| {
                    ModelError::new(
                        format!("{}.Ipv6CidrBlock", res_path(id)),
                        "is required for an IPv6-only subnet (Ipv6Native: true)",
                    )
                })?;
                self.attr(id, "SubnetId", id.clone());
                self.attr(id, "VpcId", vpc.clone());
                self.attr(
                    id,
                    "Ipv6CidrBlocks",
                    Value::Array(vec![net.to_string().into()]),
                );
                self.ipv6_only.insert(id.clone(), net);
                continue;
            }
            let path = format!("{}.CidrBlock", res_path(id));
            let cidr = parse_v4_cidr(required_str(&p, id, "CidrBlock")?, &path)?;
            let v = self.m.vpc(&vpc).expect("checked");
            if !v.cidrs().any(|b| b.contains(&cidr)) {
                let blocks: Vec<String> = v.cidrs().map(|b| b.to_string()).collect();
                return Err(ModelError::new(
                    path,
                    format!(
                        "{cidr} is not inside a block of VPC {vpc} ({})",
                        blocks.join(", ")
                    ),
                ));
            }
            // Within its VPC: separate VPCs may overlap.
            check_block(
                cidr,
                "subnet",
                self.m
                    .subnets
                    .iter()
                    .filter(|s| s.vpc == vpc)
                    .map(|s| (format!("subnet {}", s.id), s.cidr)),
                &path,
            )?;
            let ipv6_cidr = self.subnet_v6_block(&p, id, &vpc)?;
            let assign6 = bool_field(&p, id, "AssignIpv6AddressOnCreation")?;
            if assign6 && ipv6_cidr.is_none() {
                return Err(ModelError::new(
                    format!("{}.AssignIpv6AddressOnCreation", res_path(id)),
                    "the subnet has no Ipv6CidrBlock to assign addresses from",
                ));
            }
            let az = str_field(&p, id, "AvailabilityZone")?
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}a", self.r.region));
            self.attr(id, "SubnetId", id.clone());
            self.attr(id, "CidrBlock", cidr.to_string());
            self.attr(id, "AvailabilityZone", az.clone());
            self.attr(id, "VpcId", vpc.clone());
            self.attr(
                id,
                "Ipv6CidrBlocks",
                Value::Array(ipv6_cidr.iter().map(|c| c.to_string().into()).collect()),
            );
            self.m.subnets.push(Subnet {
                id: id.clone(),
                acl: default_acl_id(&vpc),
                vpc,
                cidr,
                az,
                ipv6_cidr,
                assign_ipv6_on_creation: assign6,
                route_table: String::new(),
                index: self.m.subnets.len() as u32 + 1,
                reservations: vec![],
            });
        }
        Ok(())
    }

    /// The EC2 API's subnet CIDR reservations, each on its subnet, in the
    /// order the API made them (`Created`, else the logical id).
    pub(super) fn subnet_cidr_reservations(&mut self) -> Result<()> {
        let mut all = self.of_type(SUBNET_CIDR_RESERVATION);
        all.sort_by_key(|r| {
            let created = r
                .metadata
                .get(crate::ec2::stack::META)
                .and_then(|m| m["Created"].as_u64());
            (created, r.logical_id.clone())
        });
        for res in all {
            let id = &res.logical_id;
            let path = res_path(id);
            if self.r.stack_of(id) != crate::ec2::stack::EC2_STACK {
                return Err(ModelError::new(
                    format!("{path}.Type"),
                    format!("{SUBNET_CIDR_RESERVATION} is not a CloudFormation type: subnet CIDR reservations are made with the EC2 API (CreateSubnetCidrReservation)"),
                ));
            }
            let p = self.props(res)?;
            let subnet = required_str(&p, id, "SubnetId")?.to_string();
            let cidr_text = required_str(&p, id, "Cidr")?;
            let cidr: IpNet = cidr_text.parse().map_err(|_| {
                ModelError::new(
                    format!("{path}.Cidr"),
                    format!("{cidr_text:?} is not a CIDR block"),
                )
            })?;
            let kind = required_str(&p, id, "ReservationType")?.to_string();
            if kind != "prefix" && kind != "explicit" {
                return Err(ModelError::new(
                    format!("{path}.ReservationType"),
                    format!("{kind:?} is not a reservation type (prefix or explicit)"),
                ));
            }
            let description = str_field(&p, id, "Description")?.map(str::to_string);
            let sn = self.subnet_mut(id, &subnet)?;
            sn.check_reservation(cidr).map_err(|e| {
                ModelError::new(
                    format!("{path}.Cidr"),
                    format!("InvalidParameterValue: {e}"),
                )
            })?;
            sn.reservations.push(CidrReservation {
                id: id.clone(),
                cidr: cidr.trunc(),
                kind,
                description,
            });
        }
        Ok(())
    }

    /// Takes `want`, or the lowest free address. AWS reserves the first four
    /// addresses and the last one of every subnet.
    pub(super) fn take_ip(
        &mut self,
        subnet: &Subnet,
        want: Option<Ipv4Addr>,
        path: &str,
    ) -> Result<Ipv4Addr> {
        let used = self.used.entry(subnet.id.clone()).or_default();
        let base = u32::from(subnet.cidr.network());
        let last = u32::from(subnet.cidr.broadcast());
        if let Some(ip) = want {
            let n = u32::from(ip);
            if !subnet.cidr.contains(&ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is not in subnet {} ({})", subnet.id, subnet.cidr),
                ));
            }
            if n < base + 4 || n == last {
                return Err(ModelError::new(
                    path,
                    format!(
                        "{ip} is reserved by AWS (first four and last address of {})",
                        subnet.cidr
                    ),
                ));
            }
            if !used.insert(ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is already in use in subnet {}", subnet.id),
                ));
            }
            return Ok(ip);
        }
        let reserved = self.reserved.get(&subnet.id);
        for n in base + 4..last {
            let ip = Ipv4Addr::from(n);
            if !reserved.is_some_and(|r| r.contains(&ip)) && !subnet.reserves(ip) && used.insert(ip)
            {
                return Ok(ip);
            }
        }
        Err(ModelError::new(
            path,
            format!(
                "SubnetOutOfIPAddresses: subnet {} ({}) has no free address",
                subnet.id, subnet.cidr
            ),
        ))
    }

    /// The address resource `id` had in the model this template replaces,
    /// when it is in the same subnet and nothing explicit took it since;
    /// else the lowest free one.
    pub(super) fn take_kept_ip(
        &mut self,
        id: &str,
        subnet: &Subnet,
        path: &str,
    ) -> Result<Ipv4Addr> {
        if let Some((ip, _)) = self.kept_ip(id, &subnet.id) {
            if let Ok(ip) = self.take_ip(subnet, Some(ip), path) {
                return Ok(ip);
            }
        }
        self.take_ip(subnet, None, path)
    }

    /// `take_kept_ip` for IPv6.
    pub(super) fn take_kept_ip6(
        &mut self,
        id: &str,
        subnet: &Subnet,
        path: &str,
    ) -> Result<Ipv6Addr> {
        if let Some((_, Some(ip))) = self.kept_ip(id, &subnet.id) {
            if let Ok(ip) = self.take_ip6(subnet, Some(ip), path) {
                return Ok(ip);
            }
        }
        self.take_ip6(subnet, None, path)
    }

    /// Takes `want`, or the lowest free IPv6 address of the subnet's /64.
    /// AWS reserves the first four and the last address here too.
    pub(super) fn take_ip6(
        &mut self,
        subnet: &Subnet,
        want: Option<Ipv6Addr>,
        path: &str,
    ) -> Result<Ipv6Addr> {
        let net = subnet.ipv6_cidr.expect("dual-stack subnet");
        let used = self.used6.entry(subnet.id.clone()).or_default();
        let base = u128::from(net.network());
        let last = u128::from(net.broadcast());
        if let Some(ip) = want {
            let n = u128::from(ip);
            if !net.contains(&ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is not in subnet {} ({net})", subnet.id),
                ));
            }
            if n < base + 4 || n == last {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is reserved by AWS (first four and last address of {net})"),
                ));
            }
            if !used.insert(ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is already in use in subnet {}", subnet.id),
                ));
            }
            return Ok(ip);
        }
        let reserved = self.reserved6.get(&subnet.id);
        let ip = (base + 4..last)
            .map(Ipv6Addr::from)
            .find(|ip| {
                !used.contains(ip)
                    && !reserved.is_some_and(|r| r.contains(ip))
                    && !subnet.reserves(*ip)
            })
            .expect("a /64 does not run out");
        used.insert(ip);
        Ok(ip)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::model::tests::{build_err, build_ok, dual, DUAL};

    /// `extra` in the EC2 API's stack (reservations live there only).
    fn api(extra: &str) -> crate::template::Result<crate::model::Model> {
        crate::model::build(&dual(extra), &HashMap::new(), crate::ec2::EC2_STACK)
    }

    #[test]
    fn automatic_addresses_skip_reservations_and_explicit_ones_may_use_them() {
        let m = api("  R4: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.3.0/29, ReservationType: explicit}}\n  R6: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: B, Cidr: '2001:db8:ec2:102::/125', ReservationType: prefix, Description: d}}\n  I: {Type: AWS::EC2::Instance, Properties: {SubnetId: C}}\n  J: {Type: AWS::EC2::Instance, Properties: {SubnetId: C, PrivateIpAddress: 10.0.3.5}}\n  K: {Type: AWS::EC2::Instance, Properties: {SubnetId: B, Ipv6AddressCount: 1}}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let ip = |id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().ip.to_string();
        assert_eq!(
            ip("I"),
            "10.0.3.8",
            "the first address after the reservation"
        );
        assert_eq!(ip("J"), "10.0.3.5", "an explicit address inside it");
        let k = m.hosts.iter().find(|h| h.id == "K").unwrap();
        assert_eq!(k.ip6.unwrap().to_string(), "2001:db8:ec2:102::8");
        // Hyperplane ENIs (allocated at run time) skip them too.
        assert_eq!(m.free_ip("C").unwrap().to_string(), "10.0.3.9");
        assert_eq!(m.free_ip6("B").unwrap().to_string(), "2001:db8:ec2:102::9");
        assert_eq!(
            m.subnet("B").unwrap().reservations[0]
                .description
                .as_deref(),
            Some("d")
        );
    }

    #[test]
    fn reservations_are_checked_as_ec2_checks_them() {
        for (extra, want) in [
            ("  R: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.4.0/30, ReservationType: prefix}}\n", "Reservation CIDR should be within subnet CIDR block (10.0.3.0/24)"),
            ("  R: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.3.0/30, ReservationType: prefix}}\n  S: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.3.2/31, ReservationType: prefix}}\n", "has overlap with existing reserved CIDR block"),
            ("  R: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.3.0/30, ReservationType: other}}\n", "not a reservation type"),
            ("  R: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: Nope, Cidr: 10.0.3.0/30, ReservationType: prefix}}\n", "InvalidSubnetID.NotFound"),
        ] {
            let e = api(extra).expect_err(extra);
            assert!(e.to_string().contains(want), "{e}");
        }
        // Not a CloudFormation type: a template may not declare one.
        let e = build_err(&dual("  R: {Type: Vpc::EC2::SubnetCidrReservation, Properties: {SubnetId: C, Cidr: 10.0.3.0/30, ReservationType: prefix}}\n"));
        assert!(e.to_string().contains("CreateSubnetCidrReservation"), "{e}");
    }

    #[test]
    fn an_ipv6_only_subnet_alone_is_valid() {
        // Nothing in it: validated, and nothing is placed there.
        let m = build_ok(&format!(
            "{DUAL}  S: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, Ipv6Native: true, Ipv6CidrBlock: '2001:db8:ec2:109::/64'}}}}\n"
        ));
        assert!(m.subnet("S").is_none());
    }
}
