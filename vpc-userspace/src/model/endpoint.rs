//! VPC endpoints: `AWS::EC2::VPCEndpoint`, gateway (S3, DynamoDB: a route
//! to the service's AWS-managed prefix list in the chosen tables) and
//! interface (an ENI per chosen subnet, in front of the service).
//!
//! The services themselves are simulated in the deployment's "AWS
//! services" namespace (gateway services, at their addresses in
//! `AWS_SERVICES_CIDR`) and in each interface endpoint ENI's namespace.
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    bool_field,
    flowlog::ec2_id,
    fnv1a, required_str, res_path,
    route_table::{Destination, Route, Target},
    str_field, str_list, Builder, Host, HostKind, Model, PrefixList,
};
use crate::template::{ModelError, Result};

pub const VPC_ENDPOINT: &str = "AWS::EC2::VPCEndpoint";
/// Where the simulated regional AWS services live (ours: AWS's are public
/// addresses). The first /24 of the benchmarking block 198.18.0.0/15
/// (RFC 2544), whose other half, 198.19.0.0/16, is the Lambda side: never
/// routed anywhere, and clear of the VPCs, the public pool and the
/// internet's test hosts (each refused inside it).
pub const AWS_SERVICES_CIDR: &str = "198.18.0.0/24";
/// The node (namespace `<deployment>-AwsServices`) of the services.
pub const AWS_SERVICES_ID: &str = "AwsServices";
/// Services with gateway endpoints, and their simulated addresses.
pub const GATEWAY_SERVICES: [(&str, Ipv4Addr); 2] = [
    ("s3", Ipv4Addr::new(198, 18, 0, 10)),
    ("dynamodb", Ipv4Addr::new(198, 18, 0, 11)),
];
/// Every service the AWS services node answers for at a public address
/// (the gateway services first): reached through a gateway endpoint's
/// route (those two), or as AWS's public endpoints are, through an
/// internet or NAT gateway.
pub const PUBLIC_SERVICES: [(&str, Ipv4Addr); 4] = [
    GATEWAY_SERVICES[0],
    GATEWAY_SERVICES[1],
    ("sqs", Ipv4Addr::new(198, 18, 0, 12)),
    ("sts", Ipv4Addr::new(198, 18, 0, 13)),
];

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum EndpointType {
    Gateway,
    Interface,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VpcEndpoint {
    /// Logical id.
    pub id: String,
    /// `vpce-0` and 16 hex digits, stable per stack (`!Ref`).
    pub vpce_id: String,
    pub kind: EndpointType,
    /// `com.amazonaws.<region>.<service>`.
    pub service_name: String,
    /// `<service>`: `s3`, `dynamodb`, `sqs`, ...
    pub service: String,
    pub vpc: String,
    /// Gateway: the tables given the prefix-list route.
    pub route_tables: Vec<String>,
    /// Interface: (subnet, its ENI's host id), in `SubnetIds` order.
    pub enis: Vec<(String, String)>,
    pub groups: Vec<String>,
    pub private_dns: bool,
}

/// The simulated address of a gateway service (`s3`, `dynamodb`).
pub fn gateway_service_ip(service: &str) -> Option<Ipv4Addr> {
    GATEWAY_SERVICES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, ip)| *ip)
}

/// The id of a gateway service's AWS-managed prefix list in `region`
/// (`pl-` and 8 hex digits, as AWS's; stable per region and service).
pub fn managed_prefix_list_id(region: &str, service: &str) -> String {
    format!(
        "pl-{:08x}",
        fnv1a(&format!("com.amazonaws.{region}.{service}")) as u32
    )
}

/// A service's regional DNS name: `<service>.<region>.amazonaws.com`.
pub fn regional_name(region: &str, service: &str) -> String {
    format!("{service}.{region}.amazonaws.com")
}

impl VpcEndpoint {
    /// The endpoint's own regional DNS name, as AWS forms it:
    /// `vpce-<id>-<8 chars>.<service>.<region>.vpce.amazonaws.com`.
    pub fn dns_name(&self, region: &str) -> String {
        format!(
            "{}-{}.{}.{region}.vpce.amazonaws.com",
            self.vpce_id,
            self.dns_suffix(),
            self.service
        )
    }

    /// Its zonal name in `az`: `vpce-<id>-<8 chars>-<az>.<service>...`.
    pub fn zonal_dns_name(&self, region: &str, az: &str) -> String {
        format!(
            "{}-{}-{az}.{}.{region}.vpce.amazonaws.com",
            self.vpce_id,
            self.dns_suffix(),
            self.service
        )
    }

    fn dns_suffix(&self) -> String {
        format!("{:08x}", fnv1a(&format!("{}/dns", self.vpce_id)) as u32)
    }
}

impl Model {
    pub fn vpc_endpoint(&self, id: &str) -> Option<&VpcEndpoint> {
        self.vpc_endpoints.iter().find(|e| e.id == id)
    }

    /// The datapath id of a gateway endpoint (1-based).
    pub fn vpc_endpoint_index(&self, id: &str) -> Option<u32> {
        self.vpc_endpoints
            .iter()
            .position(|e| e.id == id)
            .map(|i| i as u32 + 1)
    }

    /// Whether the deployment has the "AWS services" namespace: it holds
    /// the gateway services, so it exists with a gateway endpoint.
    pub fn has_aws_services(&self) -> bool {
        self.has_internet()
            || self
                .vpc_endpoints
                .iter()
                .any(|e| e.kind == EndpointType::Gateway)
    }

    /// The interface endpoint an ENI host belongs to.
    pub fn endpoint_of_host(&self, host: &str) -> Option<&VpcEndpoint> {
        self.vpc_endpoints
            .iter()
            .find(|e| e.enis.iter().any(|(_, h)| h == host))
    }
}

impl Builder<'_> {
    /// `!Ref Endpoint` is its `vpce-` id; `!GetAtt Endpoint.Id` too.
    pub(super) fn vpc_endpoint_ids(&mut self) {
        for res in self.of_type(VPC_ENDPOINT) {
            let id = res.logical_id.clone();
            let vpce = ec2_id("vpce", &self.m.stack_name, &id);
            self.r.refs.insert(id.clone(), Value::String(vpce.clone()));
            self.attr(&id, "Id", vpce);
        }
    }

    /// The AWS-managed prefix lists of the gateway services, one entry
    /// each (the service's address): `DestinationPrefixListId` of group
    /// rules and the routes of gateway endpoints name them.
    pub(super) fn managed_prefix_lists(&mut self) {
        for (service, ip) in GATEWAY_SERVICES {
            self.m.prefix_lists.push(PrefixList {
                id: managed_prefix_list_id(&self.m.region, service),
                ipv6: false,
                max_entries: 1,
                cidrs: vec![IpNet::V4(Ipv4Net::from(ip))],
            });
        }
    }

    /// After route tables, groups, hosts and NAT gateways: gateway
    /// endpoints add their routes, interface endpoints take an address in
    /// each of their subnets.
    pub(super) fn vpc_endpoints(&mut self) -> Result<()> {
        for res in self.of_type(VPC_ENDPOINT) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let e = self.vpc_endpoint(&id, &p)?;
            if e.kind == EndpointType::Gateway
                && (self.t.resources.contains_key(AWS_SERVICES_ID)
                    || self
                        .m
                        .internet_hosts
                        .iter()
                        .any(|h| h.id == AWS_SERVICES_ID))
            {
                return Err(ModelError::new(
                    res_path(&id),
                    format!("{AWS_SERVICES_ID} names the AWS services' namespace here: rename the resource or test host called so"),
                ));
            }
            self.m.vpc_endpoints.push(e);
        }
        Ok(())
    }

    fn vpc_endpoint(&mut self, id: &str, p: &Value) -> Result<VpcEndpoint> {
        let path = res_path(id);
        let field = |f: &str| format!("{path}.{f}");
        let kind = match str_field(p, id, "VpcEndpointType")? {
            // CloudFormation's default.
            None | Some("Gateway") => EndpointType::Gateway,
            Some("Interface") => EndpointType::Interface,
            Some(other) => {
                return Err(ModelError::new(
                    field("VpcEndpointType"),
                    format!("{other:?}: Gateway or Interface (GatewayLoadBalancer and the others are not supported)"),
                ))
            }
        };
        let vpc = self.vpc_ref(p, id, "VpcId")?;
        let service_name = required_str(p, id, "ServiceName")?.to_string();
        let prefix = format!("com.amazonaws.{}.", self.m.region);
        let service = service_name
            .strip_prefix(&prefix)
            .filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            })
            .ok_or_else(|| {
                ModelError::new(
                    field("ServiceName"),
                    format!(
                        "InvalidServiceName: {service_name:?} is not an AWS service of this region ({prefix}<service>)"
                    ),
                )
            })?
            .to_string();
        let vpce_id = ec2_id("vpce", &self.m.stack_name, id);
        let mut e = VpcEndpoint {
            id: id.to_string(),
            vpce_id,
            kind,
            service_name: service_name.clone(),
            service: service.clone(),
            vpc: vpc.clone(),
            route_tables: vec![],
            enis: vec![],
            groups: vec![],
            private_dns: false,
        };
        let only_interface = |f: &str| -> Result<()> {
            if p.get(f).is_some_and(|v| !v.is_null()) {
                return Err(ModelError::new(
                    field(f),
                    format!(
                        "{f} is for interface endpoints; a gateway endpoint takes RouteTableIds"
                    ),
                ));
            }
            Ok(())
        };
        match kind {
            EndpointType::Gateway => {
                if gateway_service_ip(&service).is_none() {
                    return Err(ModelError::new(
                        field("ServiceName"),
                        format!(
                            "InvalidServiceName: {service_name} has no gateway endpoint (only {prefix}s3 and {prefix}dynamodb do; use VpcEndpointType: Interface)"
                        ),
                    ));
                }
                only_interface("SubnetIds")?;
                only_interface("SecurityGroupIds")?;
                if bool_field(p, id, "PrivateDnsEnabled")? {
                    return Err(ModelError::new(
                        field("PrivateDnsEnabled"),
                        "private DNS is for interface endpoints",
                    ));
                }
                let pl = managed_prefix_list_id(&self.m.region, &service);
                for (i, t) in str_list(p, id, "RouteTableIds")?.into_iter().enumerate() {
                    let tpath = field(&format!("RouteTableIds[{i}]"));
                    match self.m.route_table(&t) {
                        None => {
                            return Err(ModelError::new(
                                tpath,
                                format!("InvalidRouteTableId.NotFound: {t:?}"),
                            ))
                        }
                        Some(rt) if rt.vpc != vpc => {
                            return Err(ModelError::new(
                                tpath,
                                format!("{t} belongs to VPC {}, not {vpc}", rt.vpc),
                            ))
                        }
                        _ => {}
                    }
                    if e.route_tables.contains(&t) {
                        return Err(ModelError::new(tpath, format!("{t} is listed twice")));
                    }
                    let route = Route {
                        id: id.to_string(),
                        destination: Destination::PrefixList(pl.clone()),
                        target: Target::VpcEndpoint(id.to_string()),
                    };
                    self.add_route(&t, route, &tpath)?;
                    e.route_tables.push(t);
                }
            }
            EndpointType::Interface => {
                if p.get("RouteTableIds").is_some_and(|v| !v.is_null()) {
                    return Err(ModelError::new(
                        field("RouteTableIds"),
                        "RouteTableIds is for gateway endpoints; an interface endpoint takes SubnetIds",
                    ));
                }
                e.private_dns = bool_field(p, id, "PrivateDnsEnabled")?;
                if e.private_dns {
                    let v = self.m.vpc(&vpc).expect("validated");
                    if !v.enable_dns_support || !v.enable_dns_hostnames {
                        return Err(ModelError::new(
                            field("PrivateDnsEnabled"),
                            format!("InvalidParameter: Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for {vpc}"),
                        ));
                    }
                    if let Some(o) = self
                        .m
                        .vpc_endpoints
                        .iter()
                        .find(|o| o.vpc == vpc && o.private_dns && o.service == service)
                    {
                        return Err(ModelError::new(
                            field("PrivateDnsEnabled"),
                            format!(
                                "{} already has private DNS for {service_name} in {vpc} (one per service and VPC)",
                                o.id
                            ),
                        ));
                    }
                }
                let mut groups = self.group_list(p, id, "SecurityGroupIds", &vpc)?;
                if groups.is_empty() {
                    groups.push(self.m.vpc(&vpc).expect("validated").default_group.clone());
                }
                e.groups = groups;
                let subnets = str_list(p, id, "SubnetIds")?;
                if subnets.is_empty() {
                    return Err(ModelError::new(
                        field("SubnetIds"),
                        "an interface endpoint needs at least one subnet",
                    ));
                }
                let mut azs: Vec<String> = vec![];
                for (i, s) in subnets.iter().enumerate() {
                    let spath = field(&format!("SubnetIds[{i}]"));
                    let sn = match self.m.subnet(s) {
                        None => {
                            return Err(ModelError::new(
                                spath,
                                format!("InvalidSubnetID.NotFound: {s:?}"),
                            ))
                        }
                        Some(sn) if sn.vpc != vpc => {
                            return Err(ModelError::new(
                                spath,
                                format!("{s} belongs to VPC {}, not {vpc}", sn.vpc),
                            ))
                        }
                        Some(sn) => sn.clone(),
                    };
                    if self.ipv6_only.contains_key(s) {
                        return Err(ModelError::new(
                            spath,
                            format!("{s} is IPv6-only (Ipv6Native): endpoint ENIs need IPv4 here"),
                        ));
                    }
                    if azs.contains(&sn.az) {
                        return Err(ModelError::new(
                            spath,
                            format!(
                                "DuplicateSubnetsInSameZone: one subnet per Availability Zone ({} is in {})",
                                s, sn.az
                            ),
                        ));
                    }
                    azs.push(sn.az.clone());
                    let host = format!("{id}.{}", i + 1);
                    let ip = self.take_kept_ip(&host, &sn, &spath)?;
                    self.m.hosts.push(Host {
                        id: host.clone(),
                        kind: HostKind::VpcEndpoint,
                        subnet: s.clone(),
                        ip,
                        groups: e.groups.clone(),
                        ip6: None,
                        // An endpoint's ENI is never a route's target.
                        source_dest_check: true,
                        secondary: vec![],
                        stopped: false,
                    });
                    e.enis.push((s.clone(), host));
                }
                self.check_rules_x_groups(&e.groups, &field("SecurityGroupIds"))?;
                let stack = self.m.stack_name.clone();
                let enis: Vec<Value> = e
                    .enis
                    .iter()
                    .map(|(_, h)| Value::String(super::flowlog::host_eni_id(&stack, h)))
                    .collect();
                self.attr(id, "NetworkInterfaceIds", Value::Array(enis));
            }
        }
        // `DnsEntries`: "<hosted zone>:<name>", as AWS lists them.
        let region = self.m.region.clone();
        let mut names = vec![];
        if kind == EndpointType::Interface {
            names.push(e.dns_name(&region));
            for (s, _) in &e.enis {
                let az = self.m.subnet(s).expect("validated").az.clone();
                names.push(e.zonal_dns_name(&region, &az));
            }
            if e.private_dns {
                names.push(regional_name(&region, &service));
            }
        }
        let entries: Vec<Value> = names
            .into_iter()
            .map(|n| Value::String(format!("Z7HUB22UULQXV:{n}")))
            .collect();
        self.attr(id, "DnsEntries", Value::Array(entries));
        Ok(e)
    }
}

#[cfg(test)]
mod tests;
