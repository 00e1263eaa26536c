//! Elastic IPs (AllocateAddress, ReleaseAddress, DescribeAddresses: an
//! `AWS::EC2::EIP` with `Domain: vpc`, named by its allocation id as a
//! template's is) and NAT gateways (CreateNatGateway, DeleteNatGateway,
//! DescribeNatGateways: an `AWS::EC2::NatGateway` named by its `nat-` id).
use serde_json::json;

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{internet::allocation_id, NatGateway},
};

pub const EIP: &str = "AWS::EC2::EIP";
pub const NAT: &str = "AWS::EC2::NatGateway";

/// The address of Elastic IP `logical`.
fn address(v: &View, logical: &str) -> Option<std::net::Ipv4Addr> {
    v.model
        .elastic_ips
        .iter()
        .find(|(e, _)| e == logical)
        .map(|(_, ip)| *ip)
}

/// What an Elastic IP is associated with: (a NAT gateway?, its model id:
/// the NAT gateway's, or the instance's or interface's).
fn holder(v: &View, logical: &str) -> Option<(bool, String)> {
    v.model
        .nat_gateways
        .iter()
        .find(|g| g.eip == logical)
        .map(|g| (true, g.id.clone()))
        .or_else(|| {
            v.model
                .public_ips
                .iter()
                .find(|p| p.eip.as_deref() == Some(logical))
                .map(|p| (false, p.host.clone()))
        })
}

fn eip_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidAllocationID.NotFound",
        format!("The allocation ID '{id}' does not exist"),
    )
}

pub fn allocate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    if p.get("Domain").is_some_and(|d| d != "vpc") {
        return Err(Ec2Error::invalid(
            "Only Domain vpc is supported (EC2-Classic is gone)",
        ));
    }
    let logical = format!("eip{}", ids::random_hex(ids::HEX));
    let tags = p.tag_specs("elastic-ip");
    super::stack::change(ctx, |t, _| {
        let mut props = json!({"Domain": "vpc"});
        if let Some(tv) = tags::initial(&tags) {
            props["Tags"] = tv;
        }
        t.put(&logical, EIP, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let ip = address(&v, &logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the address vanished"))?;
    let mut x = xml();
    x.leaf("publicIp", &ip.to_string())
        .leaf("domain", "vpc")
        .leaf("allocationId", &allocation_id(&logical))
        .leaf("publicIpv4Pool", "amazon")
        .leaf("networkBorderGroup", &ctx.region);
    Ok(x.0)
}

pub fn release(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("AllocationId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let l = v
            .logical(&id)
            .filter(|l| address(v, l).is_some())
            .ok_or_else(|| eip_not_found(&id))?
            .to_string();
        v.owned(&l, &id)?;
        if holder(v, &l).is_some() {
            return Err(Ec2Error::new(
                "InvalidIPAddress.InUse",
                format!("The address with allocation id [{id}] is in use."),
            ));
        }
        t.remove(&l);
        Ok(())
    })?;
    super::ok()
}

pub fn describe_addresses(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let (wanted, ips) = (p.list("AllocationId"), p.list("PublicIp"));
    for w in &wanted {
        v.logical(w).ok_or_else(|| eip_not_found(w))?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for (l, ip) in &v.model.elastic_ips {
        let alloc = allocation_id(l);
        if (!wanted.is_empty() && !wanted.contains(&alloc))
            || (!ips.is_empty() && !ips.contains(&ip.to_string()))
        {
            continue;
        }
        let keep = filters::matches(&fs, &v.tags(l), |n| match n {
            "allocation-id" => filters::one(alloc.clone()),
            "public-ip" => filters::one(ip.to_string()),
            "domain" => filters::one("vpc"),
            _ => None,
        })?;
        if keep {
            out.push((l.clone(), *ip, alloc));
        }
    }
    let mut x = xml();
    x.items("addressesSet", &out, |x, (l, ip, alloc)| {
        x.leaf("publicIp", &ip.to_string())
            .leaf("allocationId", alloc)
            .leaf("domain", "vpc")
            .leaf("publicIpv4Pool", "amazon")
            .leaf("networkBorderGroup", &ctx.region);
        match holder(&v, l) {
            Some((true, nat)) => {
                x.leaf("associationId", &ids::derived("eipassoc", &v.name, "", l))
                    .leaf(
                        "networkInterfaceId",
                        &ids::derived("eni", &v.name, "", &nat),
                    );
            }
            Some((false, host)) => {
                x.leaf("associationId", &ids::derived("eipassoc", &v.name, "", l))
                    .leaf("instanceId", &host);
            }
            None => {}
        }
        tags::tag_set(x, &v.tags(l));
    });
    Ok(x.0)
}

fn item(x: &mut Xml, v: &View, g: &NatGateway) {
    let vpc = v
        .model
        .subnet(&g.subnet)
        .map(|s| v.id(&s.vpc))
        .unwrap_or_default();
    x.leaf("natGatewayId", &v.id(&g.id))
        .leaf("subnetId", &v.id(&g.subnet))
        .leaf("vpcId", &vpc)
        .leaf("state", "available")
        .leaf(
            "connectivityType",
            if g.private { "private" } else { "public" },
        )
        .items("natGatewayAddressSet", [()], |x, ()| {
            if !g.private {
                x.leaf("allocationId", &allocation_id(&g.eip))
                    .leaf("publicIp", &g.public_ip.to_string());
            }
            x.leaf("privateIp", &g.ip.to_string())
                .leaf(
                    "networkInterfaceId",
                    &ids::derived("eni", &v.name, "", &g.id),
                )
                .flag("isPrimary", true)
                .leaf("status", "succeeded");
        });
    tags::tag_set(x, &v.tags(&g.id));
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let subnet = p.required("SubnetId")?.to_string();
    let private = p.get("ConnectivityType") == Some("private");
    let alloc = p.get("AllocationId").map(str::to_string);
    let id = ids::new_id("nat");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let s = v.subnet(&subnet)?.id.clone();
        let mut props =
            json!({"SubnetId": s, "ConnectivityType": if private { "private" } else { "public" }});
        match (&alloc, private) {
            (Some(a), false) => {
                let e = v
                    .logical(a)
                    .filter(|l| address(v, l).is_some())
                    .ok_or_else(|| eip_not_found(a))?;
                if holder(v, e).is_some() {
                    return Err(Ec2Error::new(
                        "Resource.AlreadyAssociated",
                        format!("Elastic IP address [{a}] is already associated"),
                    ));
                }
                props["AllocationId"] = a.clone().into();
            }
            (None, false) => return Err(Ec2Error::missing("AllocationId")),
            _ => {}
        }
        if let Some(ip) = p.get("PrivateIpAddress") {
            props["PrivateIpAddress"] = ip.into();
        }
        if let Some(tv) = tags::initial(&p.tag_specs("natgateway")) {
            props["Tags"] = tv;
        }
        t.put(&logical, NAT, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let g = v
        .model
        .nat_gateway(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the NAT gateway vanished"))?;
    let mut x = xml();
    x.open("natGateway");
    item(&mut x, &v, g);
    x.close("natGateway");
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NatGatewayId")?.to_string();
    super::stack::delete(
        ctx,
        &id,
        |v, l| v.model.nat_gateway(l).is_some(),
        || {
            Ec2Error::new(
                "NatGatewayNotFound",
                format!("The Nat Gateway {id} was not found"),
            )
        },
    )?;
    let mut x = xml();
    x.leaf("natGatewayId", &id);
    Ok(x.0)
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    const KIND: filters::Kind = filters::Kind {
        ids: "NatGatewayId",
        min_page: 5,
        not_found: |id| {
            Ec2Error::new(
                "NatGatewayNotFound",
                format!("The Nat Gateway {id} was not found"),
            )
        },
    };
    let v = View::load(&ctx.name)?;
    let (out, token) = filters::select(
        p,
        &KIND,
        v.model.nat_gateways.iter().collect(),
        |g| v.id(&g.id),
        |g| v.tags(&g.id),
        |g, n| match n {
            "nat-gateway-id" => filters::one(v.id(&g.id)),
            "subnet-id" => filters::one(v.id(&g.subnet)),
            "vpc-id" => Some(
                v.model
                    .subnet(&g.subnet)
                    .map(|s| v.id(&s.vpc))
                    .into_iter()
                    .collect(),
            ),
            "state" => filters::one("available"),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("natGatewaySet", out, |x, g| item(x, &v, g));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}
