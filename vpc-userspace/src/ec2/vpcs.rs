//! VPCs: CreateVpc, DeleteVpc, DescribeVpcs, ModifyVpcAttribute,
//! DescribeVpcAttribute. A VPC of the API is an `AWS::EC2::VPC` of its
//! stack, with what EC2 gives every VPC written out so the API can revoke
//! it: its default group's two rules as `SecurityGroupIngress` /
//! `SecurityGroupEgress` resources (their `sgr-` ids), the built-in ones
//! removed by a `Custom::VpcRestrictDefaultSG`.
use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::{filters, ids, ok, stack::Template, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::model::Vpc;

pub const VPC: &str = "AWS::EC2::VPC";

/// Whether the model's VPC is the deployment's default VPC.
pub fn is_default(v: &View, logical: &str) -> bool {
    v.meta(logical, "IsDefault") == Some(&Value::Bool(true))
}

/// The resources of a new VPC `logical` in the API's template.
pub fn add(t: &mut Template, logical: &str, cidr: Ipv4Net, p: &Params, default: bool) {
    let mut props = json!({
        "CidrBlock": cidr.to_string(),
        "EnableDnsSupport": true,
        "EnableDnsHostnames": default,
        "InstanceTenancy": p.get("InstanceTenancy").unwrap_or("default"),
    });
    if let Some(tags) = tags::initial(&p.tag_specs("vpc")) {
        props["Tags"] = tags;
    }
    t.put(logical, VPC, props);
    if default {
        if let Some(r) = t.resources.get_mut(logical) {
            r["Metadata"][super::stack::META]["IsDefault"] = true.into();
        }
    }
    let group = format!("{logical}.DefaultSecurityGroup");
    t.put(
        &format!("{logical}RestrictDefaultSG"),
        "Custom::VpcRestrictDefaultSG",
        json!({"DefaultSecurityGroupId": group}),
    );
    let rule = |t: &mut Template, kind, peer: (&str, &str)| {
        let id = ids::logical(&ids::new_id("sgr")).expect("an id");
        t.put(
            &id,
            kind,
            json!({"GroupId": group, "IpProtocol": "-1", peer.0: peer.1}),
        );
    };
    rule(
        t,
        super::security_groups::INGRESS,
        ("SourceSecurityGroupId", &group),
    );
    rule(t, super::security_groups::EGRESS, ("CidrIp", "0.0.0.0/0"));
    // The IPv6 block as AssociateVpcCidrBlock takes it: Amazon's, or a given one.
    let v6 = match (
        p.flag("AmazonProvidedIpv6CidrBlock"),
        p.get("Ipv6CidrBlock"),
    ) {
        (Some(true), _) => Some(json!({"VpcId": logical, "AmazonProvidedIpv6CidrBlock": true})),
        (_, Some(c)) => Some(json!({"VpcId": logical, "Ipv6CidrBlock": c})),
        _ => None,
    };
    if let Some(props) = v6 {
        t.put(&format!("{logical}Ipv6"), "AWS::EC2::VPCCidrBlock", props);
    }
}

/// A VPC's or subnet's IPv4 block as EC2 reads it.
pub fn parse_cidr(s: &str, param: &str) -> Ec2Result<Ipv4Net> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        Ec2Error::invalid(format!(
            "Value ({s}) for parameter {param} is invalid. This is not a valid CIDR block."
        ))
    })?;
    Ok(net.trunc())
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let cidr = parse_cidr(p.required("CidrBlock")?, "cidrBlock")?;
    if !(16..=28).contains(&cidr.prefix_len()) {
        return Err(Ec2Error::new(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let id = ids::new_id("vpc");
    let logical = ids::logical(&id).expect("an id");
    // Separate VPCs may overlap, as at AWS: each has its own address space.
    let v = super::stack::change(ctx, |t, _| {
        add(t, &logical, cidr, p, false);
        Ok(())
    })
    .and_then(|()| View::load(&ctx.name))?;
    let vpc = v
        .model
        .vpc(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the VPC vanished"))?;
    let mut x = xml();
    x.open("vpc");
    item(&mut x, &v, vpc);
    x.close("vpc");
    Ok(x.0)
}

fn item(x: &mut crate::cloudformation::xml::Xml, v: &View, vpc: &Vpc) {
    let id = v.id(&vpc.id);
    x.leaf("vpcId", &id)
        .leaf("ownerId", v.account())
        .leaf("state", "available")
        .leaf("cidrBlock", &vpc.cidr.to_string())
        .items("cidrBlockAssociationSet", vpc.cidrs(), |x, c| {
            x.leaf("cidrBlock", &c.to_string())
                .leaf("associationId", &v4_association(v, vpc, c))
                .open("cidrBlockState")
                .leaf("state", "associated")
                .close("cidrBlockState");
        });
    if let Some(c6) = vpc.ipv6_cidr {
        x.items("ipv6CidrBlockAssociationSet", [()], |x, ()| {
            x.leaf("ipv6CidrBlock", &c6.to_string())
                .leaf("associationId", &v6_association(v, vpc))
                .open("ipv6CidrBlockState")
                .leaf("state", "associated")
                .close("ipv6CidrBlockState")
                .leaf("networkBorderGroup", &v.model.region)
                .leaf("ipv6Pool", "Amazon");
        });
    }
    x.leaf(
        "dhcpOptionsId",
        &vpc.dhcp_options
            .as_deref()
            .map_or_else(|| "default".to_string(), |o| v.id(o)),
    )
    .leaf(
        "instanceTenancy",
        v.prop(&vpc.id, "InstanceTenancy").unwrap_or("default"),
    )
    .flag("isDefault", is_default(v, &vpc.id));
    tags::tag_set(x, &v.tags(&vpc.id));
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("VpcId");
    for w in &wanted {
        v.vpc(w)?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for vpc in &v.model.vpcs {
        let id = v.id(&vpc.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let cidr = vpc.cidr.to_string();
        let blocks: Vec<String> = vpc.cidrs().map(|c| c.to_string()).collect();
        let v6 = vpc.ipv6_cidr.map(|c| c.to_string());
        let keep = filters::matches(&fs, &v.tags(&vpc.id), |n| match n {
            "vpc-id" => filters::one(id.clone()),
            "cidr" | "cidrBlock" => filters::one(cidr.clone()),
            "cidr-block-association.cidr-block" => Some(blocks.clone()),
            "cidr-block-association.state" => filters::one("associated"),
            "ipv6-cidr-block-association.ipv6-cidr-block" => Some(v6.clone().into_iter().collect()),
            "ipv6-cidr-block-association.association-id" => Some(
                vpc.ipv6_cidr
                    .map(|_| v6_association(&v, vpc))
                    .into_iter()
                    .collect(),
            ),
            "ipv6-cidr-block-association.state" => Some(
                vpc.ipv6_cidr
                    .map(|_| "associated".to_string())
                    .into_iter()
                    .collect(),
            ),
            "cidr-block-association.association-id" => {
                Some(vpc.cidrs().map(|c| v4_association(&v, vpc, c)).collect())
            }
            "is-default" | "isDefault" => filters::boolean(is_default(&v, &vpc.id)),
            "state" => filters::one("available"),
            "owner-id" => filters::one(v.account()),
            "dhcp-options-id" => filters::one(
                vpc.dhcp_options
                    .as_deref()
                    .map_or_else(|| "default".to_string(), |o| v.id(o)),
            ),
            _ => None,
        })?;
        if keep {
            out.push(vpc);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("vpcSet", out, |x, vpc| item(x, &v, vpc));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("VpcId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(&id)?.clone();
        let l = vpc.id.clone();
        v.owned(&l, &id)?;
        let m = &v.model;
        let depends = m.subnets.iter().any(|s| s.vpc == l)
            || m.groups.iter().any(|g| g.vpc == l && !g.is_default)
            || m.route_tables.iter().any(|r| r.vpc == l && !r.is_main)
            || m.acls.iter().any(|a| a.vpc == l && !a.is_default)
            || m.internet_gateways
                .iter()
                .any(|g| g.vpc.as_deref() == Some(&l))
            || m.egress_only_internet_gateways.iter().any(|g| g.vpc == l)
            || m.vpc_endpoints.iter().any(|e| e.vpc == l);
        if depends {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The vpc '{id}' has dependencies and cannot be deleted."),
            ));
        }
        remove_with(t, &l);
        Ok(())
    })?;
    ok()
}

/// Removes `logical` and the API's resources that exist for it alone: its
/// default group's, ACL's and main table's entries, its IPv6 block.
pub fn remove_with(t: &mut Template, logical: &str) {
    t.remove(logical);
    let own = format!("{logical}.");
    let gone: Vec<String> = t
        .resources
        .iter()
        .filter(|(id, r)| {
            id.starts_with(logical)
                || r["Properties"].as_object().is_some_and(|o| {
                    o.values().any(|x| {
                        x.as_str()
                            .is_some_and(|s| s == logical || s.starts_with(&own))
                    })
                })
        })
        .map(|(id, _)| id.clone())
        .collect();
    for g in gone {
        t.remove(&g);
    }
}

pub fn modify_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("VpcId")?.to_string();
    let (field, value) = if let Some(b) = p.flag("EnableDnsSupport.Value") {
        ("EnableDnsSupport", b)
    } else if let Some(b) = p.flag("EnableDnsHostnames.Value") {
        ("EnableDnsHostnames", b)
    } else if p.get("EnableNetworkAddressUsageMetrics.Value").is_some() {
        return ok();
    } else {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "No attributes specified.",
        ));
    };
    super::stack::change(ctx, |t, v| {
        let l = v.vpc(&id)?.id.clone();
        v.owned(&l, &id)?;
        if let Some(props) = t.props_mut(&l) {
            props.insert(field.into(), Value::Bool(value));
        }
        Ok(())
    })?;
    ok()
}

pub fn describe_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let id = p.required("VpcId")?;
    let vpc = v.vpc(id)?;
    let attr = p.required("Attribute")?;
    let value = match attr {
        "enableDnsSupport" => vpc.enable_dns_support,
        "enableDnsHostnames" => vpc.enable_dns_hostnames,
        "enableNetworkAddressUsageMetrics" => false,
        other => {
            return Err(Ec2Error::invalid(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    };
    let mut x = xml();
    x.leaf("vpcId", id)
        .open(attr)
        .flag("value", value)
        .close(attr);
    Ok(x.0)
}

/// The association id of a VPC's IPv4 block (the primary's as before
/// secondary blocks existed).
fn v4_association(v: &View, vpc: &Vpc, block: Ipv4Net) -> String {
    let which = match block == vpc.cidr {
        true => String::new(),
        false => block.to_string(),
    };
    ids::derived("vpc-cidr-assoc", &v.name, &which, &vpc.id)
}

/// The logical id of the API's `AWS::EC2::VPCCidrBlock` of a VPC:
/// `which` is `Ipv6` or `Cidr` and the IPv4 block.
fn block_logical(vpc: &str, which: &str) -> String {
    format!("{vpc}{which}")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The association id of a VPC's IPv6 block.
fn v6_association(v: &View, vpc: &Vpc) -> String {
    ids::derived("vpc-cidr-assoc", &v.name, "v6", &vpc.id)
}

/// AssociateVpcCidrBlock: a secondary IPv4 block (`CidrBlock`) or the
/// VPC's one IPv6 block (Amazon-provided or given), as an
/// `AWS::EC2::VPCCidrBlock`.
pub fn associate_cidr_block(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("VpcId")?.to_string();
    let amazon = p.flag("AmazonProvidedIpv6CidrBlock") == Some(true);
    let given = p.get("Ipv6CidrBlock").map(str::to_string);
    if let Some(c) = p.get("CidrBlock") {
        return associate_v4(ctx, &id, parse_cidr(c, "cidrBlock")?);
    }
    if !amazon && given.is_none() {
        return Err(Ec2Error::missing("AmazonProvidedIpv6CidrBlock"));
    }
    super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(&id)?.clone();
        if vpc.ipv6_cidr.is_some() {
            return Err(Ec2Error::new(
                "CidrLimitExceeded",
                format!("This network {id} has met its maximum number of allowed CIDRs: 1"),
            ));
        }
        let l = block_logical(&vpc.id, "Ipv6");
        let mut props = json!({"VpcId": vpc.id});
        match &given {
            Some(c) => props["Ipv6CidrBlock"] = c.clone().into(),
            None => props["AmazonProvidedIpv6CidrBlock"] = true.into(),
        }
        t.put(&l, "AWS::EC2::VPCCidrBlock", props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let vpc = v.vpc(&id)?;
    let mut x = xml();
    x.leaf("vpcId", &id)
        .open("ipv6CidrBlockAssociation")
        .leaf(
            "ipv6CidrBlock",
            &vpc.ipv6_cidr.map(|c| c.to_string()).unwrap_or_default(),
        )
        .leaf("associationId", &v6_association(&v, vpc))
        .open("ipv6CidrBlockState")
        // AWS answers the change in progress; Describe shows `associated`.
        .leaf("state", "associating")
        .close("ipv6CidrBlockState")
        .leaf("networkBorderGroup", &ctx.region)
        .leaf("ipv6Pool", "Amazon")
        .close("ipv6CidrBlockAssociation");
    Ok(x.0)
}

/// AssociateVpcCidrBlock of a secondary IPv4 block, by AWS's rules.
fn associate_v4(ctx: &Ctx, id: &str, block: Ipv4Net) -> Ec2Result<String> {
    let vpc = super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(id)?.clone();
        if let Some((code, why)) = v.model.secondary_block_refusal(&vpc, id, block) {
            return Err(Ec2Error::new(code, why));
        }
        t.put(
            &block_logical(&vpc.id, &format!("Cidr{block}")),
            "AWS::EC2::VPCCidrBlock",
            json!({"VpcId": vpc.id, "CidrBlock": block.to_string()}),
        );
        Ok(vpc)
    })?;
    let v = View::load(&ctx.name)?;
    let mut x = xml();
    x.leaf("vpcId", id);
    v4_block_association(
        &mut x,
        &v4_association(&v, &vpc, block),
        block,
        "associating",
    );
    Ok(x.0)
}

/// A `cidrBlockAssociation` element: `state` the change in progress (AWS
/// answers it; Describe shows `associated`).
fn v4_block_association(
    x: &mut crate::cloudformation::xml::Xml,
    assoc: &str,
    block: Ipv4Net,
    state: &str,
) {
    x.open("cidrBlockAssociation")
        .leaf("associationId", assoc)
        .leaf("cidrBlock", &block.to_string())
        .open("cidrBlockState")
        .leaf("state", state)
        .close("cidrBlockState")
        .close("cidrBlockAssociation");
}

/// DisassociateVpcCidrBlock of a secondary IPv4 block (the API's): `None`
/// when `assoc` is no IPv4 block's. The primary block and one holding a
/// subnet stay, as at AWS.
fn disassociate_v4(ctx: &Ctx, assoc: &str) -> Ec2Result<Option<String>> {
    let ours = |v: &View| {
        v.model.vpcs.iter().find_map(|vpc| {
            vpc.cidrs()
                .find(|c| v4_association(v, vpc, *c) == assoc)
                .map(|c| (vpc.clone(), c))
        })
    };
    if ours(&View::load(&ctx.name)?).is_none() {
        return Ok(None);
    }
    let found = super::stack::change(ctx, |t, v| {
        let Some((vpc, block)) = ours(v) else {
            return Ok(None);
        };
        if block == vpc.cidr {
            return Err(Ec2Error::new(
                "OperationNotPermitted",
                format!("The vpc CIDR block with association ID {assoc} may not be disassociated. It is the primary IPv4 CIDR block of the VPC"),
            ));
        }
        if let Some(s) = v
            .model
            .subnets
            .iter()
            .find(|s| s.vpc == vpc.id && block.contains(&s.cidr))
        {
            return Err(Ec2Error::new(
                "InvalidCidrBlock.InUse",
                format!(
                    "The vpc {} currently has a subnet ({}) within CIDR block {block}",
                    v.id(&vpc.id),
                    v.id(&s.id)
                ),
            ));
        }
        let l = t
            .of_type("AWS::EC2::VPCCidrBlock")
            .find(|(_, p)| {
                p["VpcId"] == vpc.id.as_str() && p["CidrBlock"] == block.to_string().as_str()
            })
            .map(|(l, _)| l.clone());
        match l {
            Some(l) => {
                t.remove(&l);
            }
            None => v.owned(&block_logical(&vpc.id, &format!("Cidr{block}")), assoc)?,
        }
        Ok(Some((v.id(&vpc.id), block)))
    })?;
    Ok(found.map(|(vpc, block)| {
        let mut x = xml();
        x.leaf("vpcId", &vpc);
        v4_block_association(&mut x, assoc, block, "disassociating");
        x.0
    }))
}

/// DisassociateVpcCidrBlock of a VPC's IPv6 block (the API's).
pub fn disassociate_cidr_block(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc = p.required("AssociationId")?.to_string();
    if let Some(out) = disassociate_v4(ctx, &assoc)? {
        return Ok(out);
    }
    let (vpc_id, block) = super::stack::change(ctx, |t, v| {
        let vpc = v
            .model
            .vpcs
            .iter()
            .find(|x| x.ipv6_cidr.is_some() && v6_association(v, x) == assoc)
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidVpcCidrBlockAssociationID.NotFound",
                    format!("The vpc CIDR block association ID '{assoc}' does not exist"),
                )
            })?
            .clone();
        let l = t
            .of_type("AWS::EC2::VPCCidrBlock")
            .find(|(_, p)| p["VpcId"] == vpc.id.as_str() && p.get("CidrBlock").is_none())
            .map(|(l, _)| l.clone());
        match l {
            Some(l) => {
                t.remove(&l);
            }
            None => v.owned(&format!("{}.Ipv6", vpc.id), &assoc)?,
        }
        Ok((v.id(&vpc.id), vpc.ipv6_cidr))
    })?;
    let mut x = xml();
    x.leaf("vpcId", &vpc_id)
        .open("ipv6CidrBlockAssociation")
        .leaf(
            "ipv6CidrBlock",
            &block.map(|c| c.to_string()).unwrap_or_default(),
        )
        .leaf("associationId", &assoc)
        .open("ipv6CidrBlockState")
        .leaf("state", "disassociating")
        .close("ipv6CidrBlockState")
        .close("ipv6CidrBlockAssociation");
    Ok(x.0)
}
