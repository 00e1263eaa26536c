//! Network interfaces as EC2 shows Lambda's: DescribeNetworkInterfaces of
//! the Hyperplane ENIs (`InterfaceType` `lambda`, requester-managed, the
//! description Lambda gives them, `in-use` or `available`), so the "Lambda
//! ENI finder" queries (by description, requester id or type) find each
//! function's interfaces; DeleteNetworkInterface, refused for one in use as
//! EC2 refuses it (`reconcile::delete_network_interface`). Instances' and
//! gateways' interfaces are not listed yet (docs/ec2.md).
use super::{filters, security_groups::group_name, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{cloudformation::xml::Xml, model::HyperplaneEniSpec};

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

fn status(e: &HyperplaneEniSpec) -> &'static str {
    if e.available {
        "available"
    } else {
        "in-use"
    }
}

fn item(x: &mut Xml, v: &View, e: &HyperplaneEniSpec) {
    let az = v
        .model
        .subnet(&e.subnet)
        .map(|s| s.az.clone())
        .unwrap_or_default();
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &v.id(&e.subnet))
        .leaf("vpcId", &v.id(&e.vpc))
        .leaf("availabilityZone", &az)
        .leaf("description", &description(v, e))
        .leaf("ownerId", v.account())
        .leaf("requesterId", &requester_id(e))
        .flag("requesterManaged", true)
        .leaf("status", status(e))
        .leaf("interfaceType", "lambda")
        .leaf("privateIpAddress", &e.ip.to_string())
        .flag("sourceDestCheck", true);
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
    if !e.available {
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
    let wanted = p.list("NetworkInterfaceId");
    for w in &wanted {
        if !v.model.enis.iter().any(|e| &e.id == w) {
            return Err(not_found(w));
        }
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for e in &v.model.enis {
        if !wanted.is_empty() && !wanted.contains(&e.id) {
            continue;
        }
        let keep = filters::matches(&fs, &[], |n| match n {
            "network-interface-id" => filters::one(e.id.clone()),
            "description" => filters::one(description(&v, e)),
            "interface-type" => filters::one("lambda"),
            "requester-id" => filters::one(requester_id(e)),
            "requester-managed" => filters::boolean(true),
            "status" => filters::one(status(e)),
            "subnet-id" => filters::one(v.id(&e.subnet)),
            "vpc-id" => filters::one(v.id(&e.vpc)),
            "group-id" => Some(e.groups.iter().map(|g| v.id(g)).collect()),
            "private-ip-address" | "addresses.private-ip-address" => filters::one(e.ip.to_string()),
            "ipv6-addresses.ipv6-address" => Some(e.ip6.iter().map(|a| a.to_string()).collect()),
            "availability-zone" => v.model.subnet(&e.subnet).map(|s| vec![s.az.clone()]),
            "owner-id" => filters::one(v.account()),
            "attachment.status" => filters::one(if e.available { "detached" } else { "attached" }),
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
    match crate::reconcile::delete_network_interface(&ctx.name, id) {
        Ok(Ok(_)) => super::ok(),
        Ok(Err(e)) => Err(Ec2Error::new(e.code, e.message)),
        Err(e) => Err(Ec2Error::new("InternalError", format!("{e:#}"))),
    }
}
