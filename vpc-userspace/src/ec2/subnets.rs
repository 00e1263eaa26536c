//! Subnets: CreateSubnet, DeleteSubnet, DescribeSubnets,
//! ModifySubnetAttribute; and DescribeAvailabilityZones (the region's
//! three, as `Fn::GetAZs` gives them).
use serde_json::{json, Value};

use super::{filters, ids, ok, tags, vpcs, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{cloudformation::xml::Xml, model::Subnet};

pub const SUBNET: &str = "AWS::EC2::Subnet";

/// `use1-az1` for `us-east-1a`.
fn zone_id(zone: &str) -> String {
    let (region, letter) = zone.split_at(zone.len().saturating_sub(1));
    let short: String = region
        .split('-')
        .enumerate()
        .map(|(i, w)| match i {
            0 => w.to_string(),
            1 => w.chars().next().map(String::from).unwrap_or_default(),
            _ => w.to_string(),
        })
        .collect();
    let n = letter
        .bytes()
        .next()
        .map(|b| b.saturating_sub(b'a') + 1)
        .unwrap_or(1);
    format!("{short}-az{n}")
}

/// Whether `logical`'s template says `MapPublicIpOnLaunch`.
fn map_public(v: &View, logical: &str) -> bool {
    v.written(logical)
        .map(|r| &r["Properties"]["MapPublicIpOnLaunch"])
        .is_some_and(|x| x == &Value::Bool(true) || x == "true")
}

fn default_for_az(v: &View, logical: &str) -> bool {
    v.meta(logical, "DefaultForAz") == Some(&Value::Bool(true))
}

/// Free addresses: the block less AWS's five and what is placed in it.
fn available(v: &View, s: &Subnet) -> u64 {
    let m = &v.model;
    let used = m
        .hosts
        .iter()
        .filter(|h| h.subnet == s.id)
        .map(|h| h.ips().count())
        .sum::<usize>()
        + m.enis.iter().filter(|e| e.subnet == s.id).count()
        + m.nat_gateways.iter().filter(|n| n.subnet == s.id).count();
    (1u64 << (32 - s.cidr.prefix_len())).saturating_sub(5 + used as u64)
}

/// A subnet's ARN names the region of its Availability Zone (a subnet
/// made by a caller of another region is in that region's zones).
fn arn(v: &View, s: &Subnet) -> String {
    let region =
        s.az.strip_suffix(|c: char| c.is_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .unwrap_or(&v.model.region);
    format!(
        "arn:aws:ec2:{region}:{}:subnet/{}",
        v.account(),
        v.id(&s.id)
    )
}

/// The id of a subnet's IPv6 block association (one block per subnet).
fn v6_association_id(v: &View, s: &Subnet) -> String {
    ids::derived("subnet-cidr-assoc", &v.name, "", &s.id)
}

/// A subnet's IPv6 block association in `state`.
fn v6_association(x: &mut Xml, v: &View, s: &Subnet, block: ipnet::Ipv6Net, state: &str) {
    x.leaf("ipv6CidrBlock", &block.to_string())
        .leaf("associationId", &v6_association_id(v, s))
        .open("ipv6CidrBlockState")
        .leaf("state", state)
        .close("ipv6CidrBlockState");
}

/// Associate- and DisassociateSubnetCidrBlock's answer.
fn v6_answer(v: &View, s: &Subnet, block: ipnet::Ipv6Net, state: &str) -> String {
    let mut x = xml();
    x.leaf("subnetId", &v.id(&s.id))
        .open("ipv6CidrBlockAssociation");
    v6_association(&mut x, v, s, block, state);
    x.close("ipv6CidrBlockAssociation");
    x.0
}

/// AssociateSubnetCidrBlock: a /64 of the VPC's IPv6 block, on an API
/// subnet without one. Addresses already in the subnet get no IPv6 one
/// (as at AWS); what is placed there afterwards may.
pub fn associate_cidr_block(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("SubnetId")?.to_string();
    let text = p.required("Ipv6CidrBlock")?.to_string();
    let invalid = || {
        Ec2Error::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{text}' is invalid."),
        )
    };
    let block: ipnet::Ipv6Net = text.parse().map_err(|_| invalid())?;
    super::stack::change(ctx, |t, v| {
        let s = v.subnet(&id)?;
        v.owned(&s.id, &id)?;
        if s.ipv6_cidr.is_some() {
            return Err(Ec2Error::new(
                "CidrLimitExceeded",
                format!("This network {id} has met its maximum number of allowed CIDRs: 1"),
            ));
        }
        let vpc6 = v.model.vpc(&s.vpc).and_then(|x| x.ipv6_cidr);
        if block.prefix_len() != 64
            || block != block.trunc()
            || !vpc6.is_some_and(|n| n.contains(&block))
        {
            return Err(invalid());
        }
        if v.model.subnets.iter().any(|o| o.ipv6_cidr == Some(block)) {
            return Err(Ec2Error::new(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{block}' conflicts with another subnet"),
            ));
        }
        if let Some(props) = t.props_mut(&s.id) {
            props.insert("Ipv6CidrBlock".into(), block.to_string().into());
        }
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    Ok(v6_answer(&v, v.subnet(&id)?, block, "associating"))
}

/// DisassociateSubnetCidrBlock: refused while an address of the block is
/// in use (AWS: "detach or delete all ... resources associated with the
/// CIDR block").
pub fn disassociate_cidr_block(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc = p.required("AssociationId")?.to_string();
    let (s, block) = super::stack::change(ctx, |t, v| {
        let s = v
            .model
            .subnets
            .iter()
            .find(|s| s.ipv6_cidr.is_some() && v6_association_id(v, s) == assoc)
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidSubnetCidrBlockAssociationID.NotFound",
                    format!("The subnet CIDR block with association ID '{assoc}' does not exist"),
                )
            })?;
        let sid = v.id(&s.id);
        v.owned(&s.id, &sid)?;
        let m = &v.model;
        let used = m.hosts.iter().any(|h| h.subnet == s.id && h.ip6.is_some())
            || m.enis.iter().any(|e| e.subnet == s.id && e.ip6.is_some())
            || !s
                .reservations
                .iter()
                .all(|r| matches!(r.cidr, ipnet::IpNet::V4(_)));
        if used {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The IPv6 CIDR block of subnet '{sid}' has addresses in use and cannot be disassociated."),
            ));
        }
        if let Some(props) = t.props_mut(&s.id) {
            props.remove("Ipv6CidrBlock");
            props.remove("AssignIpv6AddressOnCreation");
        }
        Ok((s.clone(), s.ipv6_cidr.expect("found with one")))
    })?;
    let v = View::load(&ctx.name)?;
    Ok(v6_answer(&v, &s, block, "disassociating"))
}

fn item(x: &mut Xml, v: &View, s: &Subnet) {
    let id = v.id(&s.id);
    x.leaf("subnetId", &id)
        .leaf("subnetArn", &arn(v, s))
        .leaf("state", "available")
        .leaf("ownerId", v.account())
        .leaf("vpcId", &v.id(&s.vpc))
        .leaf("cidrBlock", &s.cidr.to_string())
        .leaf("availableIpAddressCount", &available(v, s).to_string())
        .leaf("availabilityZone", &s.az)
        .leaf("availabilityZoneId", &zone_id(&s.az))
        .flag("defaultForAz", default_for_az(v, &s.id))
        .flag("mapPublicIpOnLaunch", map_public(v, &s.id))
        .flag("mapCustomerOwnedIpOnLaunch", false)
        .flag("assignIpv6AddressOnCreation", s.assign_ipv6_on_creation)
        .flag("ipv6Native", false)
        .flag("enableDns64", false);
    x.items("ipv6CidrBlockAssociationSet", s.ipv6_cidr, |x, c| {
        v6_association(x, v, s, c, "associated")
    });
    x.open("privateDnsNameOptionsOnLaunch")
        .leaf("hostnameType", "ip-name")
        .flag("enableResourceNameDnsARecord", false)
        .flag("enableResourceNameDnsAAAARecord", false)
        .close("privateDnsNameOptionsOnLaunch");
    tags::tag_set(x, &v.tags(&s.id));
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("SubnetId");
    for w in &wanted {
        v.subnet(w)?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for s in &v.model.subnets {
        let id = v.id(&s.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let keep = filters::matches(&fs, &v.tags(&s.id), |n| match n {
            "subnet-id" => filters::one(id.clone()),
            "vpc-id" => filters::one(v.id(&s.vpc)),
            "cidr" | "cidr-block" | "cidrBlock" => filters::one(s.cidr.to_string()),
            "availability-zone" | "availabilityZone" => filters::one(s.az.clone()),
            "availability-zone-id" | "availabilityZoneId" => filters::one(zone_id(&s.az)),
            "default-for-az" | "defaultForAz" => filters::boolean(default_for_az(&v, &s.id)),
            "map-public-ip-on-launch" => filters::boolean(map_public(&v, &s.id)),
            "state" => filters::one("available"),
            "owner-id" => filters::one(v.account()),
            "available-ip-address-count" => filters::one(available(&v, s).to_string()),
            "ipv6-cidr-block-association.ipv6-cidr-block" => {
                Some(s.ipv6_cidr.iter().map(|c| c.to_string()).collect())
            }
            "subnet-arn" => filters::one(arn(&v, s)),
            _ => None,
        })?;
        if keep {
            out.push(s);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("subnetSet", out, |x, s| item(x, &v, s));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// The checks of CreateSubnet, in EC2's words; the AZ it goes in (one of
/// the zones of the region the request is signed for).
pub fn check_new(
    v: &View,
    region: &str,
    vpc_id: &str,
    cidr: ipnet::Ipv4Net,
    az: Option<&str>,
) -> Ec2Result<String> {
    let vpc = v.vpc(vpc_id)?;
    if !(16..=28).contains(&cidr.prefix_len()) || !vpc.cidrs().any(|b| b.contains(&cidr)) {
        return Err(Ec2Error::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    // Within the VPC: separate VPCs may overlap.
    if v.model
        .subnets
        .iter()
        .filter(|s| s.vpc == vpc.id)
        .any(|s| s.cidr.contains(&cidr.network()) || cidr.contains(&s.cidr.network()))
    {
        return Err(Ec2Error::new(
            "InvalidSubnet.Conflict",
            format!("The CIDR '{cidr}' conflicts with another subnet"),
        ));
    }
    let zones = super::view::zones_of(region);
    match az {
        None => Ok(zones[0].clone()),
        Some(z) if zones.iter().any(|x| x == z) => Ok(z.to_string()),
        Some(z) => Err(Ec2Error::invalid(format!(
            "Value ({z}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
            zones.join(", ")
        ))),
    }
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let vpc_id = p.required("VpcId")?.to_string();
    let cidr = vpcs::parse_cidr(p.required("CidrBlock")?, "cidrBlock")?;
    let zone = match (p.get("AvailabilityZone"), p.get("AvailabilityZoneId")) {
        (Some(z), _) => Some(z.to_string()),
        (None, Some(zid)) => Some(
            super::view::zones_of(&ctx.region)
                .into_iter()
                .find(|z| zone_id(z) == zid)
                .ok_or_else(|| {
                    Ec2Error::invalid(format!(
                        "Value ({zid}) for parameter availabilityZoneId is invalid."
                    ))
                })?,
        ),
        (None, None) => None,
    };
    let id = ids::new_id("subnet");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let az = check_new(v, &ctx.region, &vpc_id, cidr, zone.as_deref())?;
        let vpc = v.vpc(&vpc_id)?.id.clone();
        let mut props =
            json!({"VpcId": vpc, "CidrBlock": cidr.to_string(), "AvailabilityZone": az});
        if let Some(c6) = p.get("Ipv6CidrBlock") {
            props["Ipv6CidrBlock"] = c6.into();
        }
        if let Some(tags) = tags::initial(&p.tag_specs("subnet")) {
            props["Tags"] = tags;
        }
        t.put(&logical, SUBNET, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let s = v
        .model
        .subnet(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the subnet vanished"))?;
    let mut x = xml();
    x.open("subnet");
    item(&mut x, &v, s);
    x.close("subnet");
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("SubnetId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let l = v.subnet(&id)?.id.clone();
        v.owned(&l, &id)?;
        let m = &v.model;
        if m.hosts.iter().any(|h| h.subnet == l)
            || m.enis.iter().any(|e| e.subnet == l)
            || m.nat_gateways.iter().any(|n| n.subnet == l)
        {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The subnet '{id}' has dependencies and cannot be deleted."),
            ));
        }
        vpcs::remove_with(t, &l);
        Ok(())
    })?;
    ok()
}

pub fn modify_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("SubnetId")?.to_string();
    let (field, value) = if let Some(b) = p.flag("MapPublicIpOnLaunch.Value") {
        ("MapPublicIpOnLaunch", b)
    } else if let Some(b) = p.flag("AssignIpv6AddressOnCreation.Value") {
        ("AssignIpv6AddressOnCreation", b)
    } else {
        // Attributes this project does not model are accepted and kept
        // nowhere (EnableDns64, PrivateDnsHostnameTypeOnLaunch, ...).
        return ok();
    };
    super::stack::change(ctx, |t, v| {
        let l = v.subnet(&id)?.id.clone();
        v.owned(&l, &id)?;
        if let Some(props) = t.props_mut(&l) {
            props.insert(field.into(), Value::Bool(value));
        }
        Ok(())
    })?;
    ok()
}

pub fn availability_zones(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    // The zones of the region the request is signed for.
    let region = ctx.region.clone();
    let names = p.list("ZoneName");
    let fs = filters::parse(p);
    let mut out = vec![];
    for z in super::view::zones_of(&region) {
        if !names.is_empty() && !names.contains(&z) {
            continue;
        }
        let keep = filters::matches(&fs, &[], |n| match n {
            "zone-name" => filters::one(z.clone()),
            "zone-id" => filters::one(zone_id(&z)),
            "state" => filters::one("available"),
            "region-name" => filters::one(region.clone()),
            "zone-type" => filters::one("availability-zone"),
            _ => None,
        })?;
        if keep {
            out.push(z);
        }
    }
    let mut x = xml();
    x.items("availabilityZoneInfo", out, |x, z| {
        x.leaf("zoneName", &z)
            .leaf("zoneId", &zone_id(&z))
            .leaf("zoneState", "available")
            .leaf("regionName", &region)
            .leaf("zoneType", "availability-zone")
            .leaf("optInStatus", "opt-in-not-required")
            .leaf("groupName", &region)
            .leaf("networkBorderGroup", &region)
            .open("messageSet")
            .close("messageSet");
    });
    Ok(x.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn zone_ids() {
        assert_eq!(super::zone_id("us-east-1a"), "use1-az1");
        assert_eq!(super::zone_id("eu-west-1c"), "euw1-az3");
    }
}
