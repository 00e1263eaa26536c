//! Route tables: `AWS::EC2::RouteTable`, `AWS::EC2::Route`,
//! `AWS::EC2::SubnetRouteTableAssociation` and each VPC's main table. The
//! internet gateways routes may point at are in `internet_gateway.rs`.
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{required_str, res_path, str_field, Builder, Model};
// Also the gateways' former paths (`model::route::InternetGateway`).
pub use super::internet_gateway::{
    EgressOnlyInternetGateway, InternetGateway, EGRESS_ONLY_INTERNET_GATEWAY, INTERNET_GATEWAY,
    VPC_GATEWAY_ATTACHMENT,
};
use crate::template::{ModelError, Result};

pub const ROUTE_TABLE: &str = "AWS::EC2::RouteTable";
pub const ROUTE: &str = "AWS::EC2::Route";
pub const SUBNET_ROUTE_TABLE_ASSOCIATION: &str = "AWS::EC2::SubnetRouteTableAssociation";
/// AWS's default quota: routes per table per address family (the `local`
/// routes are not counted; a prefix-list route counts its `MaxEntries`).
pub const MAX_ROUTES_PER_TABLE: usize = 50;

/// A VPC's route table. Every table starts with the `local` routes of its
/// VPC's blocks, which cannot be changed here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteTable {
    pub id: String,
    pub vpc: String,
    /// The VPC's main table: subnets without an association use it.
    pub is_main: bool,
    /// The template's routes (not the `local` ones: `Model::routes_of`).
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    /// The `AWS::EC2::Route`'s logical id, or `local`.
    pub id: String,
    pub destination: Destination,
    pub target: Target,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Destination {
    /// `DestinationCidrBlock` / `DestinationIpv6CidrBlock`.
    Cidr(IpNet),
    /// `DestinationPrefixListId`: a route per entry of the list.
    PrefixList(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Target {
    /// The VPC itself.
    Local,
    /// `GatewayId`: an internet gateway.
    InternetGateway(String),
    /// `NatGatewayId`.
    NatGateway(String),
    /// `InstanceId` or `NetworkInterfaceId`: the instance's or interface's
    /// ENI (a `Host` id), which gets the packet unchanged: a middlebox,
    /// such as a NAT instance.
    NetworkInterface(String),
    /// A gateway endpoint's route (its logical id), added by the endpoint
    /// to each of its `RouteTableIds`: destination its service's managed
    /// prefix list.
    VpcEndpoint(String),
    /// `EgressOnlyInternetGatewayId` (IPv6 destinations only).
    EgressOnlyInternetGateway(String),
}

/// What a route does right now, as `DescribeRouteTables` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteState {
    Active,
    /// The target is gone (an internet gateway no longer attached to the
    /// table's VPC): packets are dropped (`route_blackhole`).
    Blackhole,
}

pub fn main_table_id(vpc: &str) -> String {
    format!("{vpc}.MainRouteTable")
}

/// Target fields of `AWS::EC2::Route`, and whether this project has them.
const TARGET_FIELDS: &[&str] = &[
    "GatewayId",
    "NatGatewayId",
    "EgressOnlyInternetGatewayId",
    "NetworkInterfaceId",
    "InstanceId",
    "VpcEndpointId",
    "VpcPeeringConnectionId",
    "TransitGatewayId",
    "CarrierGatewayId",
    "LocalGatewayId",
    "CoreNetworkArn",
];

impl Model {
    pub fn route_table(&self, id: &str) -> Option<&RouteTable> {
        self.route_tables.iter().find(|t| t.id == id)
    }

    /// Every route of a table, the `local` ones (one per VPC block) first.
    pub fn routes_of(&self, table: &RouteTable) -> Vec<Route> {
        let vpc = self.vpc(&table.vpc).expect("validated");
        let local = vpc.blocks().map(|cidr| Route {
            id: "local".into(),
            destination: Destination::Cidr(cidr),
            target: Target::Local,
        });
        local.chain(table.routes.iter().cloned()).collect()
    }

    /// A route's state in its table.
    pub fn route_state(&self, table: &RouteTable, r: &Route) -> RouteState {
        match &r.target {
            Target::Local => RouteState::Active,
            Target::InternetGateway(g) => match self.internet_gateway(g) {
                Some(g) if g.vpc.as_deref() == Some(table.vpc.as_str()) => RouteState::Active,
                _ => RouteState::Blackhole,
            },
            Target::NatGateway(g) => match self.nat_gateway(g) {
                Some(_) => RouteState::Active,
                None => RouteState::Blackhole,
            },
            Target::NetworkInterface(h) => match self.hosts.iter().any(|x| &x.id == h) {
                true => RouteState::Active,
                false => RouteState::Blackhole,
            },
            Target::VpcEndpoint(e) => match self.vpc_endpoint(e) {
                Some(_) => RouteState::Active,
                None => RouteState::Blackhole,
            },
            Target::EgressOnlyInternetGateway(g) => match self.egress_only_internet_gateway(g) {
                Some(g) if g.vpc == table.vpc => RouteState::Active,
                _ => RouteState::Blackhole,
            },
        }
    }

    /// The CIDRs a route covers (a prefix list's entries), with the family.
    pub fn route_cidrs(&self, r: &Route) -> Vec<IpNet> {
        match &r.destination {
            Destination::Cidr(c) => vec![*c],
            Destination::PrefixList(pl) => self
                .prefix_list(pl)
                .map(|l| l.cidrs.clone())
                .unwrap_or_default(),
        }
    }
}

fn is_v6(c: &IpNet) -> bool {
    matches!(c, IpNet::V6(_))
}

impl Builder<'_> {
    /// Gateways, main tables, tables, routes, then associations. Runs after
    /// subnets and prefix lists.
    pub(super) fn route_tables(&mut self) -> Result<()> {
        self.internet_gateways()?;
        for v in &self.m.vpcs {
            self.m.route_tables.push(RouteTable {
                id: main_table_id(&v.id),
                vpc: v.id.clone(),
                is_main: true,
                routes: vec![],
            });
        }
        for res in self.of_type(ROUTE_TABLE) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            self.m.route_tables.push(RouteTable {
                id,
                vpc,
                is_main: false,
                routes: vec![],
            });
        }
        for res in self.of_type(ROUTE) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            self.route(&id, &p)?;
        }
        let mut associated = std::collections::HashSet::new();
        for res in self.of_type(SUBNET_ROUTE_TABLE_ASSOCIATION) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let subnet = required_str(&p, &id, "SubnetId")?.to_string();
            let table = required_str(&p, &id, "RouteTableId")?.to_string();
            let table_vpc = self
                .m
                .route_table(&table)
                .map(|t| t.vpc.clone())
                .ok_or_else(|| {
                    ModelError::new(
                        format!("{}.RouteTableId", res_path(&id)),
                        format!("InvalidRouteTableID.NotFound: {table:?}"),
                    )
                })?;
            let sn = self.associate_subnet(
                &id,
                &subnet,
                ("RouteTableId", &table, &table_vpc),
                "a route table",
                &mut associated,
            )?;
            sn.route_table = table;
        }
        for sn in &mut self.m.subnets {
            if sn.route_table.is_empty() {
                sn.route_table = main_table_id(&sn.vpc);
            }
        }
        Ok(())
    }

    /// One `AWS::EC2::Route`, checked as EC2's `CreateRoute` does.
    fn route(&mut self, id: &str, p: &Value) -> Result<()> {
        let path = res_path(id);
        let field = |f: &str| format!("{path}.{f}");
        let table_id = required_str(p, id, "RouteTableId")?.to_string();
        let table = self.m.route_table(&table_id).cloned().ok_or_else(|| {
            ModelError::new(
                field("RouteTableId"),
                format!("InvalidRouteTableID.NotFound: {table_id:?}"),
            )
        })?;
        let vpc = self.m.vpc(&table.vpc).expect("validated").clone();
        // Every block's local route (AWS refuses a block the same as or
        // larger than a route's destination: here the route, whichever came
        // first, unless a middlebox route).
        let locals = vpc.blocks();
        // Exactly one destination.
        let dests: Vec<(&str, &str)> = [
            "DestinationCidrBlock",
            "DestinationIpv6CidrBlock",
            "DestinationPrefixListId",
        ]
        .into_iter()
        .map(|f| Ok(str_field(p, id, f)?.map(|v| (f, v))))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
        let (dfield, dvalue) = match dests.as_slice() {
            [one] => *one,
            _ => {
                return Err(ModelError::new(
                    path,
                    "exactly one of DestinationCidrBlock, DestinationIpv6CidrBlock and DestinationPrefixListId is required",
                ))
            }
        };
        let destination = match dfield {
            "DestinationCidrBlock" => {
                let net: ipnet::Ipv4Net = dvalue.parse().map_err(|_| {
                    ModelError::new(
                        field(dfield),
                        format!("{dvalue:?} is not an IPv4 CIDR block"),
                    )
                })?;
                Destination::Cidr(IpNet::V4(net))
            }
            "DestinationIpv6CidrBlock" => {
                let net: ipnet::Ipv6Net = dvalue.parse().map_err(|_| {
                    ModelError::new(
                        field(dfield),
                        format!("{dvalue:?} is not an IPv6 CIDR block"),
                    )
                })?;
                Destination::Cidr(IpNet::V6(net))
            }
            _ => {
                if self.m.prefix_list(dvalue).is_none() {
                    return Err(ModelError::new(
                        field(dfield),
                        format!("InvalidPrefixListID.NotFound: {dvalue:?}"),
                    ));
                }
                Destination::PrefixList(dvalue.to_string())
            }
        };
        if let Destination::Cidr(c) = destination {
            if c.trunc() != c {
                return Err(ModelError::new(
                    field(dfield),
                    format!(
                        "InvalidParameterValue: {c}: host bits are set (did you mean {}?)",
                        c.trunc()
                    ),
                ));
            }
            // The local routes: equal is a duplicate; inside is AWS's
            // "more specific routing" (checked with the target below).
            if let Some(local) = locals.clone().find(|l| *l == c) {
                return Err(ModelError::new(
                    field(dfield),
                    format!(
                        "RouteAlreadyExists: {local} is the local route of {}",
                        vpc.id
                    ),
                ));
            }
        }
        // Exactly one target.
        let targets: Vec<(&str, &str)> = TARGET_FIELDS
            .iter()
            .map(|f| Ok(str_field(p, id, f)?.map(|v| (*f, v))))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        let (tfield, tvalue) = match targets.as_slice() {
            [one] => *one,
            [] => {
                return Err(ModelError::new(
                    path,
                    format!("a target is required: one of {}", TARGET_FIELDS.join(", ")),
                ))
            }
            _ => {
                return Err(ModelError::new(
                    path,
                    format!(
                        "InvalidParameterCombination: more than one target ({})",
                        targets.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        };
        let target = match tfield {
            "GatewayId" => {
                if tvalue == "local" {
                    return Err(ModelError::new(
                        field(tfield),
                        "the local route is implicit and cannot be changed here",
                    ));
                }
                if self.m.internet_gateway(tvalue).is_none() {
                    return Err(ModelError::new(
                        field(tfield),
                        format!("InvalidGatewayID.NotFound: {tvalue:?} is not an AWS::EC2::InternetGateway of this template"),
                    ));
                }
                Target::InternetGateway(tvalue.to_string())
            }
            "NatGatewayId" => {
                match self.nat_gateway_vpc(tvalue)? {
                    None => {
                        return Err(ModelError::new(
                            field(tfield),
                            format!("InvalidNatGatewayID.NotFound: {tvalue:?} is not an AWS::EC2::NatGateway of this template"),
                        ))
                    }
                    Some(v) if v != table.vpc => {
                        return Err(ModelError::new(
                            field(tfield),
                            format!("{tvalue} is in VPC {v}, route table {table_id} in {}", table.vpc),
                        ))
                    }
                    Some(_) => {}
                }
                if matches!(destination, Destination::Cidr(IpNet::V6(_))) {
                    return Err(ModelError::new(
                        field(tfield),
                        "a NAT gateway takes IPv4 destinations (NAT64, 64:ff9b::/96, is not supported here)",
                    ));
                }
                Target::NatGateway(tvalue.to_string())
            }
            "InstanceId" | "NetworkInterfaceId" => {
                let kind = if tfield == "InstanceId" {
                    super::INSTANCE
                } else {
                    super::NETWORK_INTERFACE
                };
                match self.host_vpc(kind, tvalue)? {
                    None => {
                        let code = if tfield == "InstanceId" {
                            "InvalidInstanceID.NotFound"
                        } else {
                            "InvalidNetworkInterfaceID.NotFound"
                        };
                        return Err(ModelError::new(
                            field(tfield),
                            format!("{code}: {tvalue:?} is not an {kind} of this template"),
                        ));
                    }
                    Some(v) if v != table.vpc => {
                        return Err(ModelError::new(
                            field(tfield),
                            format!(
                                "{tvalue} is in VPC {v}, route table {table_id} in {}",
                                table.vpc
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                Target::NetworkInterface(tvalue.to_string())
            }
            "VpcEndpointId" => {
                return Err(ModelError::new(
                    field(tfield),
                    "VpcEndpointId targets are Gateway Load Balancer endpoints, not supported; \
                     a gateway endpoint (S3, DynamoDB) adds its own routes to its RouteTableIds",
                ))
            }
            "EgressOnlyInternetGatewayId" => {
                let g = self.m.egress_only_internet_gateway(tvalue).ok_or_else(|| {
                    ModelError::new(
                        field(tfield),
                        format!("InvalidEgressOnlyInternetGatewayId.NotFound: {tvalue:?} is not an AWS::EC2::EgressOnlyInternetGateway of this template"),
                    )
                })?;
                if g.vpc != table.vpc {
                    return Err(ModelError::new(
                        field(tfield),
                        format!(
                            "InvalidParameterValue: route table {table_id} and egress-only internet gateway {tvalue} belong to different networks ({} and {})",
                            table.vpc, g.vpc
                        ),
                    ));
                }
                let v4 = match &destination {
                    Destination::Cidr(c) => !is_v6(c),
                    Destination::PrefixList(pl) => !self.m.prefix_list(pl).expect("validated").ipv6,
                };
                if v4 {
                    return Err(ModelError::new(
                        field(tfield),
                        "InvalidParameterCombination: an egress-only internet gateway takes IPv6 destinations only",
                    ));
                }
                Target::EgressOnlyInternetGateway(tvalue.to_string())
            }
            other => {
                return Err(ModelError::new(
                    field(other),
                    format!(
                    "{other} targets are not supported yet (see the README's Route tables section)"
                ),
                ))
            }
        };
        // AWS's "more specific routing": a range inside the VPC (a subnet's,
        // or any part of it) may be routed to a middlebox's interface only
        // (or a Gateway Load Balancer endpoint, not modelled).
        if let Destination::Cidr(c) = &destination {
            if let Some(local) = locals.clone().find(|l| l.contains(c)) {
                if !matches!(target, Target::NetworkInterface(_)) {
                    return Err(ModelError::new(
                        field(dfield),
                        format!(
                            "InvalidParameterValue: The destination CIDR block {c} is equal to or more specific than one of this VPC's CIDR blocks ({local}). This route can target only an interface or an instance."
                        ),
                    ));
                }
            }
        }
        let route = Route {
            id: id.to_string(),
            destination,
            target,
        };
        self.add_route(&table_id, route, &field(dfield))
    }

    /// Adds `route` to table `table_id` (which exists), as EC2 does: no two
    /// routes of a table to one destination, and the quota per family.
    /// Errors name `path`.
    pub(super) fn add_route(&mut self, table_id: &str, route: Route, path: &str) -> Result<()> {
        let dvalue = match &route.destination {
            Destination::Cidr(c) => c.to_string(),
            Destination::PrefixList(pl) => pl.clone(),
        };
        let t = self
            .m
            .route_tables
            .iter_mut()
            .find(|t| t.id == table_id)
            .expect("checked by the caller");
        if t.routes.iter().any(|r| r.destination == route.destination) {
            return Err(ModelError::new(
                path.to_string(),
                format!("RouteAlreadyExists: {table_id} already has a route to {dvalue}"),
            ));
        }
        t.routes.push(route);
        let t = t.clone();
        // The quota, per family: a prefix list counts its MaxEntries.
        let weight = |r: &Route| -> (bool, usize) {
            match &r.destination {
                Destination::Cidr(c) => (is_v6(c), 1),
                Destination::PrefixList(pl) => {
                    let l = self.m.prefix_list(pl).expect("validated");
                    (l.ipv6, l.max_entries)
                }
            }
        };
        let (v6, _) = weight(t.routes.last().expect("pushed"));
        let used: usize = t
            .routes
            .iter()
            .map(weight)
            .filter(|(f, _)| *f == v6)
            .map(|(_, n)| n)
            .sum();
        if used > MAX_ROUTES_PER_TABLE {
            return Err(ModelError::new(
                path.to_string(),
                format!(
                    "RouteLimitExceeded: {table_id} would hold {used} {} routes; at most {MAX_ROUTES_PER_TABLE} per table per family \
                     (a prefix list counts its MaxEntries)",
                    if v6 { "IPv6" } else { "IPv4" }
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

impl Builder<'_> {
    /// The VPC of an instance or network interface of the template, from
    /// its subnet (routes are checked before hosts are built), or `None`.
    fn host_vpc(&self, kind: &str, id: &str) -> Result<Option<String>> {
        let Some(res) = self.t.resources.get(id).filter(|r| r.kind == kind) else {
            return Ok(None);
        };
        let p = self.props(res)?;
        let subnet = match p.get("NetworkInterfaces").and_then(|l| l.get(0)) {
            Some(iface) => iface.get("SubnetId").and_then(Value::as_str),
            None => str_field(&p, id, "SubnetId")?,
        };
        Ok(subnet.and_then(|s| self.m.subnet(s)).map(|s| s.vpc.clone()))
    }
}
