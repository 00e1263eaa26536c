//! Subnet CIDR reservations: CreateSubnetCidrReservation,
//! GetSubnetCidrReservations, DeleteSubnetCidrReservation. Each is a
//! `Vpc::EC2::SubnetCidrReservation` of the API's stack (CloudFormation
//! has no such type); the model puts it on its subnet, and automatic
//! address assignment skips it (`model/subnet.rs`).
use ipnet::IpNet;
use serde_json::json;

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{CidrReservation, Subnet, SUBNET_CIDR_RESERVATION},
};

fn item(x: &mut Xml, v: &View, s: &Subnet, r: &CidrReservation) {
    x.leaf("subnetCidrReservationId", &v.id(&r.id))
        .leaf("subnetId", &v.id(&s.id))
        .leaf("cidr", &r.cidr.to_string())
        .leaf("reservationType", &r.kind)
        .leaf("ownerId", v.account())
        .opt("description", r.description.as_deref());
    tags::tag_set(x, &v.tags(&r.id));
}

/// One reservation in element `tag` (Create's and Delete's answers).
fn answer(v: &View, tag: &str, s: &Subnet, r: &CidrReservation) -> String {
    let mut x = xml();
    x.open(tag);
    item(&mut x, v, s, r);
    x.close(tag);
    x.0
}

/// The reservation of EC2 id `id` and its subnet.
fn find<'v>(v: &'v View, id: &str) -> Ec2Result<(&'v Subnet, &'v CidrReservation)> {
    let l = v.logical(id);
    v.model
        .subnets
        .iter()
        .find_map(|s| {
            s.reservations
                .iter()
                .find(|r| Some(r.id.as_str()) == l)
                .map(|r| (s, r))
        })
        .ok_or_else(|| {
            Ec2Error::not_found(
                "InvalidSubnetCidrReservationID.NotFound",
                "subnet-cidr-reservation",
                id,
            )
        })
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let subnet_id = p.required("SubnetId")?.to_string();
    let text = p.required("Cidr")?;
    let cidr: IpNet = text
        .parse()
        .map_err(|_| Ec2Error::invalid(format!("The CIDR '{text}' is invalid.")))?;
    let kind = p.required("ReservationType")?.to_string();
    if kind != "prefix" && kind != "explicit" {
        return Err(Ec2Error::invalid(format!(
            "Value ({kind}) for parameter reservationType is invalid. Valid values: prefix, explicit."
        )));
    }
    let id = ids::new_id("scr");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let s = v.subnet(&subnet_id)?;
        s.check_reservation(cidr).map_err(Ec2Error::invalid)?;
        let mut props =
            json!({"SubnetId": s.id, "Cidr": cidr.to_string(), "ReservationType": kind});
        if let Some(d) = p.get("Description") {
            props["Description"] = d.into();
        }
        if let Some(tags) = tags::initial(&p.tag_specs("subnet-cidr-reservation")) {
            props["Tags"] = tags;
        }
        t.put(&logical, SUBNET_CIDR_RESERVATION, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let (s, r) = find(&v, &id)?;
    Ok(answer(&v, "subnetCidrReservation", s, r))
}

pub fn get(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let s = v.subnet(p.required("SubnetId")?)?;
    let fs = filters::parse(p);
    let mut out = vec![];
    for r in &s.reservations {
        let keep = filters::matches(&fs, &v.tags(&r.id), |n| match n {
            "reservationType" => filters::one(r.kind.clone()),
            "subnet-id" => filters::one(v.id(&s.id)),
            "cidr" => filters::one(r.cidr.to_string()),
            "owner-id" => filters::one(v.account()),
            "subnet-cidr-reservation-id" => filters::one(v.id(&r.id)),
            _ => None,
        })?;
        if keep {
            out.push(r);
        }
    }
    let (out, token) = filters::page(p, out, 5)?;
    let (v4, v6): (Vec<_>, Vec<_>) = out
        .into_iter()
        .partition(|r| matches!(r.cidr, IpNet::V4(_)));
    let mut x = xml();
    x.items("subnetIpv4CidrReservationSet", v4, |x, r| item(x, &v, s, r));
    x.items("subnetIpv6CidrReservationSet", v6, |x, r| item(x, &v, s, r));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("SubnetCidrReservationId")?.to_string();
    let before = View::load(&ctx.name)?;
    let (s, r) = find(&before, &id)?;
    let out = answer(&before, "deletedSubnetCidrReservation", s, r);
    super::stack::delete(
        ctx,
        &id,
        |v, l| find(v, &v.id(l)).is_ok(),
        || {
            Ec2Error::not_found(
                "InvalidSubnetCidrReservationID.NotFound",
                "subnet-cidr-reservation",
                &id,
            )
        },
    )?;
    Ok(out)
}
