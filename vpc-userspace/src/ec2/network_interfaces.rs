//! Network interfaces as EC2 shows the requester-managed ones:
//! DescribeNetworkInterfaces of Lambda's Hyperplane ENIs (`InterfaceType`
//! `lambda`, the description Lambda gives them, `in-use` or `available`), so
//! the "Lambda ENI finder" queries (by description, requester id or type)
//! find each function's interfaces; of NAT gateways' (`nat_gateway`,
//! "Interface for NAT Gateway nat-...") and interface endpoints'
//! (`vpc_endpoint`, "VPC Endpoint Interface vpce-..."), with the ids their
//! flow-log records carry. DeleteNetworkInterface, refused for one in use as
//! EC2 refuses it (`reconcile::delete_network_interface`). Instances'
//! interfaces are not listed yet (docs/ec2.md).
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{filters, security_groups::group_name, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{flowlog::host_eni_id, HyperplaneEniSpec},
};

/// Lambda's description of a Hyperplane ENI: `AWS Lambda VPC ENI-` and the
/// name of the function it was created for (its first user), as the ENI
/// finder matches it (`AWS Lambda VPC ENI*`).
fn description(v: &View, e: &HyperplaneEniSpec) -> String {
    let first = e
        .functions
        .first()
        .and_then(|f| v.model.function(f))
        .map(|f| f.name.clone())
        .unwrap_or_default();
    format!("AWS Lambda VPC ENI-{first}")
}

/// The requester: Lambda's service role session (`*:awslambda_*`, what the
/// ENI finder filters on), stable per ENI.
fn requester_id(e: &HyperplaneEniSpec) -> String {
    let n = crate::template::fnv1a(&e.id) % 1_000_000_000;
    format!("AROAXXLAMBDAHYPERPLANE:awslambda_{n:09}")
}

/// A requester-managed interface as EC2 describes it.
struct Nic {
    id: String,
    /// Logical ids.
    subnet: String,
    vpc: String,
    description: String,
    requester_id: String,
    interface_type: &'static str,
    /// Attached (`in-use`) or `available`.
    in_use: bool,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    groups: Vec<String>,
    source_dest_check: bool,
}

/// Every requester-managed interface: Hyperplane ENIs, NAT gateways'
/// (no groups, no source/destination check: it forwards), interface
/// endpoints' (the endpoint's groups). The services' requester is AWS's
/// (`amazon-aws`, as their attachments' owner reads).
fn nics(v: &View) -> Vec<Nic> {
    let m = &v.model;
    let mut out: Vec<Nic> = m
        .enis
        .iter()
        .map(|e| Nic {
            id: e.id.clone(),
            subnet: e.subnet.clone(),
            vpc: e.vpc.clone(),
            description: description(v, e),
            requester_id: requester_id(e),
            interface_type: "lambda",
            in_use: !e.available,
            ip: e.ip,
            ip6: e.ip6,
            groups: e.groups.clone(),
            source_dest_check: true,
        })
        .collect();
    let vpc_of = |subnet: &str| m.subnet(subnet).map(|s| s.vpc.clone()).unwrap_or_default();
    out.extend(m.nat_gateways.iter().map(|g| Nic {
        id: crate::flowlogs::nat_gateway_eni_id(&v.name, &g.id),
        subnet: g.subnet.clone(),
        vpc: vpc_of(&g.subnet),
        description: format!("Interface for NAT Gateway {}", v.id(&g.id)),
        requester_id: "amazon-aws".into(),
        interface_type: "nat_gateway",
        in_use: true,
        ip: g.ip,
        ip6: None,
        groups: vec![],
        source_dest_check: false,
    }));
    for e in &m.vpc_endpoints {
        for (subnet, host) in &e.enis {
            let Some(h) = m.hosts.iter().find(|h| &h.id == host) else {
                continue;
            };
            out.push(Nic {
                id: host_eni_id(&m.stack_name, host),
                subnet: subnet.clone(),
                vpc: e.vpc.clone(),
                description: format!("VPC Endpoint Interface {}", e.vpce_id),
                requester_id: "amazon-aws".into(),
                interface_type: "vpc_endpoint",
                in_use: true,
                ip: h.ip,
                ip6: h.ip6,
                groups: e.groups.clone(),
                source_dest_check: true,
            });
        }
    }
    out
}

fn status(n: &Nic) -> &'static str {
    if n.in_use {
        "in-use"
    } else {
        "available"
    }
}

fn item(x: &mut Xml, v: &View, e: &Nic) {
    let az = v
        .model
        .subnet(&e.subnet)
        .map(|s| s.az.clone())
        .unwrap_or_default();
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &v.id(&e.subnet))
        .leaf("vpcId", &v.id(&e.vpc))
        .leaf("availabilityZone", &az)
        .leaf("description", &e.description)
        .leaf("ownerId", v.account())
        .leaf("requesterId", &e.requester_id)
        .flag("requesterManaged", true)
        .leaf("status", status(e))
        .leaf("interfaceType", e.interface_type)
        .leaf("privateIpAddress", &e.ip.to_string())
        .flag("sourceDestCheck", e.source_dest_check);
    x.items("groupSet", e.groups.iter(), |x, g| {
        x.leaf("groupId", &v.id(g));
        if let Some(sg) = v.model.groups.iter().find(|s| &s.id == g) {
            x.leaf("groupName", &group_name(v, sg));
        }
    });
    x.items("privateIpAddressesSet", [e.ip], |x, ip| {
        x.leaf("privateIpAddress", &ip.to_string())
            .flag("primary", true);
    });
    x.items("ipv6AddressesSet", e.ip6, |x, ip| {
        x.leaf("ipv6Address", &ip.to_string());
    });
    if e.in_use {
        // Attached by the service (`ela-attach`), not to an instance.
        x.open("attachment")
            .leaf("attachmentId", &format!("ela-attach-{}", &e.id[4..]))
            .leaf("instanceOwnerId", "amazon-aws")
            .leaf("deviceIndex", "1")
            .leaf("status", "attached")
            .flag("deleteOnTermination", false)
            .close("attachment");
    }
    x.items("tagSet", std::iter::empty::<()>(), |_, _| {});
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let all = nics(&v);
    let wanted = p.list("NetworkInterfaceId");
    for w in &wanted {
        if !all.iter().any(|e| &e.id == w) {
            return Err(not_found(w));
        }
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for e in &all {
        if !wanted.is_empty() && !wanted.contains(&e.id) {
            continue;
        }
        let keep = filters::matches(&fs, &[], |n| match n {
            "network-interface-id" => filters::one(e.id.clone()),
            "description" => filters::one(e.description.clone()),
            "interface-type" => filters::one(e.interface_type),
            "requester-id" => filters::one(e.requester_id.clone()),
            "requester-managed" => filters::boolean(true),
            "status" => filters::one(status(e)),
            "subnet-id" => filters::one(v.id(&e.subnet)),
            "vpc-id" => filters::one(v.id(&e.vpc)),
            "group-id" => Some(e.groups.iter().map(|g| v.id(g)).collect()),
            "private-ip-address" | "addresses.private-ip-address" => filters::one(e.ip.to_string()),
            "ipv6-addresses.ipv6-address" => Some(e.ip6.iter().map(|a| a.to_string()).collect()),
            "availability-zone" => v.model.subnet(&e.subnet).map(|s| vec![s.az.clone()]),
            "owner-id" => filters::one(v.account()),
            "source-dest-check" => filters::boolean(e.source_dest_check),
            "attachment.status" => filters::one(if e.in_use { "attached" } else { "detached" }),
            "attachment.instance-owner-id" => filters::one("amazon-aws"),
            _ => None,
        })?;
        if keep {
            out.push(e);
        }
    }
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("networkInterfaceSet", out, |x, e| item(x, &v, e));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidNetworkInterfaceID.NotFound",
        format!("The networkInterface ID '{id}' does not exist"),
    )
}

/// DeleteNetworkInterface: an `available` Lambda ENI (its function's role
/// was deleted first) goes; one in use is refused as EC2 refuses it.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p
        .get("NetworkInterfaceId")
        .ok_or_else(|| Ec2Error::missing("NetworkInterfaceId"))?;
    // A NAT gateway's or an interface endpoint's: attached by its service
    // for as long as the service lives, as EC2 answers.
    let v = View::load(&ctx.name)?;
    if nics(&v)
        .iter()
        .any(|n| n.id == id && n.interface_type != "lambda")
    {
        return Err(Ec2Error::new(
            "InvalidParameterValue",
            crate::model::in_use(id),
        ));
    }
    match crate::reconcile::delete_network_interface(&ctx.name, id) {
        Ok(Ok(_)) => super::ok(),
        Ok(Err(e)) => Err(Ec2Error::new(e.code, e.message)),
        Err(e) => Err(Ec2Error::new("InternalError", format!("{e:#}"))),
    }
}
