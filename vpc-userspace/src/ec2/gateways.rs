//! Internet gateways (CreateInternetGateway, DeleteInternetGateway,
//! DescribeInternetGateways, AttachInternetGateway,
//! DetachInternetGateway: an `AWS::EC2::InternetGateway` and its
//! `AWS::EC2::VPCGatewayAttachment`) and egress-only internet gateways
//! (Create/Delete/DescribeEgressOnlyInternetGateways).
use serde_json::json;

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{EgressOnlyInternetGateway, InternetGateway},
};

pub const IGW: &str = "AWS::EC2::InternetGateway";
pub const ATTACHMENT: &str = "AWS::EC2::VPCGatewayAttachment";
pub const EIGW: &str = "AWS::EC2::EgressOnlyInternetGateway";

fn igw<'v>(v: &'v View, id: &str) -> Ec2Result<&'v InternetGateway> {
    v.logical(id)
        .and_then(|l| v.model.internet_gateway(l))
        .ok_or_else(|| {
            Ec2Error::new(
                "InvalidInternetGatewayID.NotFound",
                format!("InternetGatewayID {id} does not exist."),
            )
        })
}

fn item(x: &mut Xml, v: &View, g: &InternetGateway) {
    x.leaf("internetGatewayId", &v.id(&g.id))
        .leaf("ownerId", v.account())
        .items("attachmentSet", g.vpc.as_ref(), |x, vpc| {
            x.leaf("vpcId", &v.id(vpc)).leaf("state", "available");
        });
    tags::tag_set(x, &v.tags(&g.id));
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("InternetGatewayId");
    for w in &wanted {
        igw(&v, w)?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for g in &v.model.internet_gateways {
        let id = v.id(&g.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let keep = filters::matches(&fs, &v.tags(&g.id), |n| match n {
            "internet-gateway-id" => filters::one(id.clone()),
            "attachment.vpc-id" => Some(g.vpc.iter().map(|x| v.id(x)).collect()),
            "attachment.state" => Some(g.vpc.iter().map(|_| "available".into()).collect()),
            "owner-id" => filters::one(v.account()),
            _ => None,
        })?;
        if keep {
            out.push(g);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("internetGatewaySet", out, |x, g| item(x, &v, g));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = ids::new_id("igw");
    let logical = ids::logical(&id).expect("an id");
    let tags = p.tag_specs("internet-gateway");
    super::stack::change(ctx, |t, _| {
        let mut props = json!({});
        if let Some(tv) = tags::initial(&tags) {
            props["Tags"] = tv;
        }
        t.put(&logical, IGW, props);
        Ok(())
    })?;
    let mut x = xml();
    x.open("internetGateway")
        .leaf("internetGatewayId", &id)
        .leaf("ownerId", "123456789012")
        .open("attachmentSet")
        .close("attachmentSet");
    tags::tag_set(&mut x, &tags);
    x.close("internetGateway");
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("InternetGatewayId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let g = igw(v, &id)?.clone();
        v.owned(&g.id, &id)?;
        if g.vpc.is_some() {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The internetGateway '{id}' has dependencies and cannot be deleted."),
            ));
        }
        t.remove(&g.id);
        Ok(())
    })?;
    super::ok()
}

/// AttachInternetGateway and (`!attach`) DetachInternetGateway.
pub fn attach(ctx: &Ctx, p: &Params, attach: bool) -> Ec2Result<String> {
    let id = p.required("InternetGatewayId")?.to_string();
    let vpc_id = p.required("VpcId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let g = igw(v, &id)?.clone();
        let vpc = v.vpc(&vpc_id)?.id.clone();
        let l = format!(
            "{}Attachment",
            g.id.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        );
        if attach {
            if let Some(other) = &g.vpc {
                return Err(Ec2Error::new(
                    "Resource.AlreadyAssociated",
                    format!(
                        "resource {id} is already attached to network {}",
                        v.id(other)
                    ),
                ));
            }
            if v.model
                .internet_gateways
                .iter()
                .any(|x| x.vpc.as_deref() == Some(&vpc))
            {
                return Err(Ec2Error::new(
                    "Resource.AlreadyAssociated",
                    format!("network {vpc_id} already has an internet gateway attached"),
                ));
            }
            t.put(
                &l,
                ATTACHMENT,
                json!({"InternetGatewayId": g.id, "VpcId": vpc}),
            );
        } else {
            if g.vpc.as_deref() != Some(&vpc) {
                return Err(Ec2Error::new(
                    "Gateway.NotAttached",
                    format!("resource {id} is not attached to network {vpc_id}"),
                ));
            }
            let found = t
                .of_type(ATTACHMENT)
                .find(|(_, p)| p["InternetGatewayId"] == g.id.as_str())
                .map(|(k, _)| k.clone());
            match found {
                Some(k) => {
                    t.remove(&k);
                }
                None => v.owned(&format!("{}Attachment", g.id), &id)?,
            }
        }
        Ok(())
    })?;
    super::ok()
}

fn eigw_item(x: &mut Xml, v: &View, g: &EgressOnlyInternetGateway) {
    x.leaf("egressOnlyInternetGatewayId", &v.id(&g.id))
        .items("attachmentSet", [()], |x, ()| {
            x.leaf("state", "attached").leaf("vpcId", &v.id(&g.vpc));
        });
    tags::tag_set(x, &v.tags(&g.id));
}

pub fn describe_egress_only(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("EgressOnlyInternetGatewayId");
    let fs = filters::parse(p);
    let mut out = vec![];
    for g in &v.model.egress_only_internet_gateways {
        let id = v.id(&g.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let keep = filters::matches(&fs, &v.tags(&g.id), |n| match n {
            "egress-only-internet-gateway-id" => filters::one(id.clone()),
            _ => None,
        })?;
        if keep {
            out.push(g);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("egressOnlyInternetGatewaySet", out, |x, g| {
        eigw_item(x, &v, g)
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn create_egress_only(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let vpc_id = p.required("VpcId")?.to_string();
    let id = ids::new_id("eigw");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(&vpc_id)?.id.clone();
        let mut props = json!({"VpcId": vpc});
        if let Some(tv) = tags::initial(&p.tag_specs("egress-only-internet-gateway")) {
            props["Tags"] = tv;
        }
        t.put(&logical, EIGW, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let g = v
        .model
        .egress_only_internet_gateway(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the gateway vanished"))?;
    let mut x = xml();
    x.open("egressOnlyInternetGateway");
    eigw_item(&mut x, &v, g);
    x.close("egressOnlyInternetGateway");
    Ok(x.0)
}

pub fn delete_egress_only(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("EgressOnlyInternetGatewayId")?.to_string();
    super::stack::delete(
        ctx,
        &id,
        |v, l| v.model.egress_only_internet_gateway(l).is_some(),
        || {
            Ec2Error::new(
                "InvalidGatewayID.NotFound",
                format!("The eigw ID '{id}' does not exist"),
            )
        },
    )?;
    let mut x = xml();
    x.flag("returnCode", true);
    Ok(x.0)
}
