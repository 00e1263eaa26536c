//! Elastic IPs (AllocateAddress, ReleaseAddress, DescribeAddresses: an
//! `AWS::EC2::EIP` with `Domain: vpc`, named by its allocation id as a
//! template's is; Associate / DisassociateAddress: an
//! `AWS::EC2::EIPAssociation` named by its `eipassoc-` id) and NAT gateways (CreateNatGateway, DeleteNatGateway,
//! DescribeNatGateways: an `AWS::EC2::NatGateway` named by its `nat-` id).
use serde_json::json;

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{internet::allocation_id, internet::PublicIp, HostKind, NatGateway},
};

pub const EIP: &str = "AWS::EC2::EIP";
pub const EIP_ASSOCIATION: &str = "AWS::EC2::EIPAssociation";
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

/// The association of an Elastic IP with an instance's or a standalone
/// interface's private address (its primary, or `PrivateIpAddress`).
fn association_of<'m>(v: &'m View, eip: &str) -> Option<&'m PublicIp> {
    v.model
        .public_ips
        .iter()
        .find(|p| p.eip.as_deref() == Some(eip))
}

/// Removes association `a` (an Elastic IP's, the API's own), or refuses
/// one a template declares.
fn unassociate(t: &mut super::stack::Template, v: &View, a: &PublicIp) -> Ec2Result<()> {
    let Some(l) = a.association.as_deref().filter(|l| t.has(l)) else {
        let id = a
            .association
            .as_deref()
            .map(|l| v.id(l))
            .unwrap_or_default();
        v.owned(a.association.as_deref().unwrap_or(&a.host), &id)?;
        return Err(Ec2Error::new(
            "OperationNotPermitted",
            format!(
                "the Elastic IP of {} is its template's (docs/ec2.md)",
                v.id(&a.host)
            ),
        ));
    };
    t.remove(l);
    Ok(())
}

/// AssociateAddress: an Elastic IP (`AllocationId`, or `PublicIp`) with an
/// instance (`InstanceId`: its primary address) or an interface
/// (`NetworkInterfaceId`, `PrivateIpAddress` one of its addresses) in a VPC
/// with an internet gateway; `AllowReassociation` moves one associated
/// elsewhere. What the private address had goes (an Elastic IP, or the
/// address the instance was launched with), as at AWS.
pub fn associate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc_id = ids::new_id("eipassoc");
    let logical = ids::logical(&assoc_id).expect("an id");
    let reassociate = p.flag("AllowReassociation").unwrap_or(false);
    let private: Option<std::net::Ipv4Addr> = p
        .get("PrivateIpAddress")
        .map(|a| {
            a.parse()
                .map_err(|_| Ec2Error::invalid(format!("Invalid private IP address: '{a}'")))
        })
        .transpose()?;
    super::stack::change(ctx, |t, v| {
        let eip = match (p.get("AllocationId"), p.get("PublicIp")) {
            (Some(a), _) => v
                .logical(a)
                .filter(|l| address(v, l).is_some())
                .ok_or_else(|| eip_not_found(a))?
                .to_string(),
            (None, Some(ip)) => v
                .model
                .elastic_ips
                .iter()
                .find(|(_, e)| e.to_string() == ip)
                .map(|(l, _)| l.clone())
                .ok_or_else(|| {
                    Ec2Error::new(
                        "InvalidAddress.NotFound",
                        format!("Address '{ip}' not found."),
                    )
                })?,
            (None, None) => return Err(Ec2Error::missing("AllocationId")),
        };
        let host = match (p.get("InstanceId"), p.get("NetworkInterfaceId")) {
            (Some(i), None) => super::instances::running(v, i)?,
            (None, Some(n)) => super::network_interfaces::host_id(v, n)?,
            (Some(_), Some(_)) => {
                return Err(Ec2Error::new(
                    "InvalidParameterCombination",
                    "Only one of InstanceId and NetworkInterfaceId may be given",
                ))
            }
            (None, None) => return Err(Ec2Error::missing("InstanceId")),
        };
        let h = v.model.hosts.iter().find(|h| h.id == host).expect("found");
        let private = private.unwrap_or(h.ip);
        if !h.ips().any(|a| a == private) {
            return Err(Ec2Error::invalid(format!(
                "The private IP address {private} is not assigned to the network interface"
            )));
        }
        let vpc = v
            .model
            .subnet(&h.subnet)
            .map(|s| s.vpc.clone())
            .unwrap_or_default();
        if !v
            .model
            .internet_gateways
            .iter()
            .any(|g| g.vpc.as_deref() == Some(&vpc))
        {
            return Err(Ec2Error::new(
                "Gateway.NotAttached",
                format!(
                    "Network {} is not attached to any internet gateway",
                    v.id(&vpc)
                ),
            ));
        }
        if let Some((true, nat)) = holder(v, &eip) {
            return Err(Ec2Error::new(
                "Resource.AlreadyAssociated",
                format!(
                    "resource {} is already associated with {}",
                    v.id(&eip),
                    v.id(&nat)
                ),
            ));
        }
        if let Some(a) = association_of(v, &eip) {
            if a.host == host && v.model.private_of(a) == Some(private) {
                // Already so: AWS answers with the association it has.
            } else if !reassociate {
                return Err(Ec2Error::new(
                    "Resource.AlreadyAssociated",
                    format!(
                        "resource {} is already associated with associate-id {}",
                        v.id(&eip),
                        a.association
                            .as_deref()
                            .map(|l| v.id(l))
                            .unwrap_or_default()
                    ),
                ));
            } else {
                unassociate(t, v, a)?;
            }
        }
        // The private address's Elastic IP, if another, goes.
        if let Some(a) = v.model.public_ips.iter().find(|a| {
            a.host == host
                && v.model.private_of(a) == Some(private)
                && a.eip.is_some()
                && a.eip.as_deref() != Some(eip.as_str())
        }) {
            unassociate(t, v, a)?;
        }
        let field = if h.kind == HostKind::Instance {
            "InstanceId"
        } else {
            "NetworkInterfaceId"
        };
        let mut props = json!({"AllocationId": allocation_id(&eip), field: host});
        if private != h.ip {
            props["PrivateIpAddress"] = private.to_string().into();
        }
        t.put(&logical, EIP_ASSOCIATION, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let id = v
        .model
        .public_ips
        .iter()
        .find(|p| p.association.as_deref() == Some(logical.as_str()))
        .map(|_| assoc_id)
        .ok_or_else(|| Ec2Error::new("InternalError", "the association was not made"))?;
    let mut x = xml();
    x.leaf("associationId", &id);
    Ok(x.0)
}

/// DisassociateAddress: association `AssociationId` goes (the API's; a
/// template's is refused, naming its stack).
pub fn disassociate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("AssociationId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let a = v
            .model
            .public_ips
            .iter()
            .find(|a| a.association.as_deref().is_some_and(|l| v.id(l) == id))
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{id}' does not exist"),
                )
            })?;
        unassociate(t, v, a)
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
        let assoc = association_of(&v, l);
        let opt = |s: Option<String>| Some(s.into_iter().collect());
        let keep = filters::matches(&fs, &v.tags(l), |n| match n {
            "allocation-id" => filters::one(alloc.clone()),
            "public-ip" => filters::one(ip.to_string()),
            "domain" => filters::one("vpc"),
            "association-id" => opt(assoc.and_then(|a| a.association.as_deref().map(|l| v.id(l)))),
            "instance-id" => opt(assoc.and_then(|a| instance_of(&v, a))),
            "network-interface-id" => opt(assoc.map(|a| eni_of(&v, a))),
            "private-ip-address" => opt(assoc
                .and_then(|a| v.model.private_of(a))
                .map(|a| a.to_string())),
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
            Some((false, _)) => {
                let a = association_of(&v, l).expect("held");
                let id = match &a.association {
                    Some(assoc) => v.id(assoc),
                    None => ids::derived("eipassoc", &v.name, "", l),
                };
                x.leaf("associationId", &id)
                    .opt("instanceId", instance_of(&v, a).as_deref())
                    .leaf("networkInterfaceId", &eni_of(&v, a))
                    .leaf("networkInterfaceOwnerId", v.account())
                    .opt(
                        "privateIpAddress",
                        v.model.private_of(a).map(|a| a.to_string()).as_deref(),
                    );
            }
            None => {}
        }
        tags::tag_set(x, &v.tags(l));
    });
    Ok(x.0)
}

/// The instance an Elastic IP's association reaches, if an instance's.
fn instance_of(v: &View, a: &PublicIp) -> Option<String> {
    v.model
        .hosts
        .iter()
        .find(|h| h.id == a.host && h.kind == HostKind::Instance)
        .map(|h| v.id(&h.id))
}

/// The interface an Elastic IP's association reaches.
fn eni_of(v: &View, a: &PublicIp) -> String {
    crate::model::flowlog::host_eni_id(&v.model.stack_name, &a.host)
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
