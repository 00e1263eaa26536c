//! Managed prefix lists: CreateManagedPrefixList,
//! DescribeManagedPrefixLists (the customer's and the AWS-managed ones of
//! the gateway services), GetManagedPrefixListEntries,
//! ModifyManagedPrefixList, DeleteManagedPrefixList. A list is an
//! `AWS::EC2::PrefixList` of the API's stack named by its `pl-` id, so
//! security-group rules (`PrefixListIds`) and routes
//! (`DestinationPrefixListId`) name it as a template's `!Ref` would, and a
//! change of its entries changes what they match.
use serde_json::{json, Value};

use super::{filters, ids, stack, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{route_table::Destination, Peer, PrefixList},
};

pub const PREFIX_LIST: &str = "AWS::EC2::PrefixList";

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidPrefixListID.NotFound",
        format!("The prefix list ID '{id}' does not exist"),
    )
}

const KIND: filters::Kind = filters::Kind {
    ids: "PrefixListId",
    min_page: 1,
    not_found,
};

/// An AWS-managed list (a gateway service's): its `pl-` id is the model's.
fn aws_managed(l: &PrefixList) -> bool {
    l.id.starts_with("pl-")
}

fn name(v: &View, l: &PrefixList) -> String {
    if aws_managed(l) {
        let service = crate::model::endpoint::GATEWAY_SERVICES
            .iter()
            .find(|(s, _)| {
                crate::model::endpoint::managed_prefix_list_id(&v.model.region, s) == l.id
            })
            .map(|(s, _)| *s)
            .unwrap_or_default();
        return format!("com.amazonaws.{}.{service}", v.model.region);
    }
    v.prop(&l.id, "PrefixListName").unwrap_or_default().into()
}

fn version(v: &View, l: &PrefixList) -> u64 {
    v.meta(&l.id, "Version")
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

fn item(x: &mut Xml, v: &View, l: &PrefixList, state: &str) {
    let id = v.id(&l.id);
    let owner = if aws_managed(l) { "AWS" } else { v.account() };
    x.leaf("prefixListId", &id)
        .leaf("addressFamily", if l.ipv6 { "IPv6" } else { "IPv4" })
        .leaf("state", state)
        .leaf(
            "prefixListArn",
            &format!("arn:aws:ec2:{}:{owner}:prefix-list/{id}", v.model.region),
        )
        .leaf("prefixListName", &name(v, l))
        .leaf("maxEntries", &l.max_entries.to_string())
        .leaf("version", &version(v, l).to_string())
        .leaf("ownerId", owner);
    tags::tag_set(x, &v.tags(&l.id));
}

/// `Entry.N` / `AddEntry.N`: (CIDR, description).
fn entries(p: &Params, prefix: &str) -> Ec2Result<Vec<Value>> {
    p.structs(prefix)
        .into_iter()
        .map(|e| {
            let mut o = json!({"Cidr": e.required("Cidr")?});
            if let Some(d) = e.get("Description") {
                o["Description"] = d.into();
            }
            Ok(o)
        })
        .collect()
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let name = p.required("PrefixListName")?;
    if name.starts_with("com.amazonaws") {
        return Err(Ec2Error::invalid(
            "The prefix list name cannot start with com.amazonaws.",
        ));
    }
    let family = p.required("AddressFamily")?;
    let max = p
        .int("MaxEntries")?
        .ok_or_else(|| Ec2Error::missing("MaxEntries"))?;
    let mut props = json!({
        "PrefixListName": name,
        "AddressFamily": family,
        "MaxEntries": max,
        "Entries": entries(p, "Entry")?,
    });
    if let Some(tv) = tags::initial(&p.tag_specs("prefix-list")) {
        props["Tags"] = tv;
    }
    let id = ids::new_id("pl");
    let logical = ids::logical(&id).expect("an id");
    stack::change(ctx, |t, _| {
        t.put(&logical, PREFIX_LIST, props);
        Ok(())
    })?;
    answer(ctx, &logical, "create-in-progress")
}

/// `<prefixList>` of list `logical`, in `state`.
fn answer(ctx: &Ctx, logical: &str, state: &str) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let l = v
        .model
        .prefix_list(logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the prefix list vanished"))?;
    let mut x = xml();
    x.open("prefixList");
    item(&mut x, &v, l, state);
    x.close("prefixList");
    Ok(x.0)
}

/// The customer's list `id` (model id), for a change: an AWS-managed one
/// is not the customer's to change.
fn own(v: &View, id: &str) -> Ec2Result<String> {
    let l = v
        .model
        .prefix_list(&v.prefix_list_id(id))
        .ok_or_else(|| not_found(id))?;
    if aws_managed(l) {
        return Err(Ec2Error::new(
            "OperationNotPermitted",
            format!("{id} is an AWS-managed prefix list"),
        ));
    }
    v.owned(&l.id, id)?;
    Ok(l.id.clone())
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let mut list: Vec<&PrefixList> = v.model.prefix_lists.iter().collect();
    list.sort_by_key(|l| v.api.created(&l.id));
    let (out, token) = filters::select(
        p,
        &KIND,
        list,
        |l| v.id(&l.id),
        |l| v.tags(&l.id),
        |l, n| match n {
            "prefix-list-id" => filters::one(v.id(&l.id)),
            "prefix-list-name" => filters::one(name(&v, l)),
            "owner-id" => filters::one(if aws_managed(l) { "AWS" } else { v.account() }),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("prefixListSet", out, |x, l| {
        let state = if v.meta(&l.id, "Version").is_some() {
            "modify-complete"
        } else {
            "create-complete"
        };
        item(x, &v, l, state)
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn entries_of(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let id = p.required("PrefixListId")?;
    let l = v
        .model
        .prefix_list(&v.prefix_list_id(id))
        .ok_or_else(|| not_found(id))?;
    let written: Vec<Value> = v
        .written(&l.id)
        .and_then(|r| r["Properties"]["Entries"].as_array().cloned())
        .unwrap_or_default();
    let rows: Vec<(String, Option<String>)> = l
        .cidrs
        .iter()
        .map(|c| {
            let d = written
                .iter()
                .find(|e| {
                    e["Cidr"]
                        .as_str()
                        .and_then(|x| x.parse::<ipnet::IpNet>().ok())
                        .map(|n| n.trunc())
                        == Some(*c)
                })
                .and_then(|e| e["Description"].as_str().map(str::to_string));
            (c.to_string(), d)
        })
        .collect();
    let (rows, token) = filters::page(p, rows, 5)?;
    let mut x = xml();
    x.items("entrySet", &rows, |x, (c, d)| {
        x.leaf("cidr", c).opt("description", d.as_deref());
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// ModifyManagedPrefixList: `AddEntry.N`, `RemoveEntry.N`,
/// `PrefixListName`, `MaxEntries`, checked against `CurrentVersion` when
/// given (`PrefixListVersionMismatch`).
pub fn modify(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("PrefixListId")?.to_string();
    let add = entries(p, "AddEntry")?;
    let remove: Vec<ipnet::IpNet> = p
        .structs("RemoveEntry")
        .into_iter()
        .map(|e| {
            let c = e.required("Cidr")?;
            c.parse::<ipnet::IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| Ec2Error::invalid(format!("The CIDR '{c}' is invalid.")))
        })
        .collect::<Ec2Result<_>>()?;
    let logical = stack::change(ctx, |t, v| {
        let l = own(v, &id)?;
        let now = v.meta(&l, "Version").and_then(Value::as_u64).unwrap_or(1);
        if let Some(cur) = p.int("CurrentVersion")? {
            if cur as u64 != now {
                return Err(Ec2Error::new(
                    "PrefixListVersionMismatch",
                    format!("The prefix list has the incorrect version number ({cur}); the current version is {now}."),
                ));
            }
        }
        let props = t.props_mut(&l).ok_or_else(|| not_found(&id))?;
        let mut list: Vec<Value> = props
            .get("Entries")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in &remove {
            let before = list.len();
            list.retain(|e| {
                e["Cidr"]
                    .as_str()
                    .and_then(|x| x.parse::<ipnet::IpNet>().ok())
                    .map(|n| n.trunc())
                    != Some(*r)
            });
            if list.len() == before {
                return Err(Ec2Error::invalid(format!(
                    "The CIDR {r} is not an entry of {id}"
                )));
            }
        }
        list.extend(add.iter().cloned());
        props.insert("Entries".into(), Value::Array(list));
        if let Some(n) = p.get("PrefixListName") {
            props.insert("PrefixListName".into(), n.into());
        }
        if let Some(m) = p.int("MaxEntries")? {
            props.insert("MaxEntries".into(), m.into());
        }
        t.set_meta(&l, "Version", (now + 1).into());
        Ok(l)
    })?;
    answer(ctx, &logical, "modify-in-progress")
}

/// DeleteManagedPrefixList: refused while a rule or a route names it.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("PrefixListId")?.to_string();
    let mut x = xml();
    stack::change(ctx, |t, v| {
        let l = own(v, &id)?;
        let m = &v.model;
        let in_rule = m.groups.iter().any(|g| {
            g.ingress
                .iter()
                .chain(&g.egress)
                .any(|r| matches!(&r.peer, Peer::PrefixList(x) if *x == l))
        });
        let in_route = m.route_tables.iter().any(|rt| {
            rt.routes
                .iter()
                .any(|r| matches!(&r.destination, Destination::PrefixList(x) if *x == l))
        });
        if in_rule || in_route {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The prefix list '{id}' has dependencies and cannot be deleted (a security group rule or a route references it)."),
            ));
        }
        if let Some(pl) = m.prefix_list(&l) {
            x.open("prefixList");
            item(&mut x, v, pl, "delete-in-progress");
            x.close("prefixList");
        }
        t.remove(&l);
        Ok(())
    })?;
    Ok(x.0)
}
