//! DHCP options sets: CreateDhcpOptions, AssociateDhcpOptions (a set, or
//! `default`), DescribeDhcpOptions, DeleteDhcpOptions. A set is an
//! `AWS::EC2::DHCPOptions` of the API's stack named by its `dopt-` id, an
//! association an `AWS::EC2::VPCDHCPOptionsAssociation` (one per VPC):
//! the VPC's namespaces' `resolv.conf` follow, as from a template.
use serde_json::{json, Map, Value};

use super::{filters, ids, stack, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{cloudformation::xml::Xml, model::DhcpOptions};

pub const DHCP_OPTIONS: &str = "AWS::EC2::DHCPOptions";
pub const ASSOCIATION: &str = "AWS::EC2::VPCDHCPOptionsAssociation";

/// EC2's keys and the template's properties: (key, property, a list?).
const KEYS: [(&str, &str, bool); 5] = [
    ("domain-name", "DomainName", false),
    ("domain-name-servers", "DomainNameServers", true),
    ("ntp-servers", "NtpServers", true),
    ("netbios-name-servers", "NetbiosNameServers", true),
    ("netbios-node-type", "NetbiosNodeType", false),
];

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidDhcpOptionID.NotFound",
        format!("The dhcpOption ID '{id}' does not exist"),
    )
}

const KIND: filters::Kind = filters::Kind {
    ids: "DhcpOptionsId",
    min_page: 5,
    not_found,
};

/// The association of VPC `vpc` (model id) in the API's stack.
fn association_id(vpc: &str) -> String {
    format!("dhcpassoc{}", &ids::derived("x", "", "", vpc)[2..])
}

/// A set's (key, values), as EC2 lists them.
fn config(o: &DhcpOptions) -> Vec<(&'static str, Vec<String>)> {
    let mut out = vec![];
    if let Some(d) = &o.domain_name {
        out.push(("domain-name", vec![d.clone()]));
    }
    for (k, l) in [
        ("domain-name-servers", &o.domain_name_servers),
        ("ntp-servers", &o.ntp_servers),
        ("netbios-name-servers", &o.netbios_name_servers),
    ] {
        if !l.is_empty() {
            out.push((k, l.clone()));
        }
    }
    if let Some(n) = o.netbios_node_type {
        out.push(("netbios-node-type", vec![n.to_string()]));
    }
    out
}

fn item(x: &mut Xml, v: &View, o: &DhcpOptions) {
    x.leaf("dhcpOptionsId", &v.id(&o.id))
        .items("dhcpConfigurationSet", config(o), |x, (k, vals)| {
            x.leaf("key", k).items("valueSet", vals, |x, val| {
                x.leaf("value", &val);
            });
        })
        .leaf("ownerId", v.account());
    tags::tag_set(x, &v.tags(&o.id));
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let mut props = Map::new();
    for c in p.structs("DhcpConfiguration") {
        let key = c.required("Key")?;
        let values = c.list("Value");
        let (_, prop, list) = KEYS.iter().find(|(k, _, _)| *k == key).ok_or_else(|| {
            Ec2Error::invalid(format!(
                "Value ({key}) for parameter key is invalid. Unknown key."
            ))
        })?;
        let val = if *list {
            if values.len() > 4 {
                return Err(Ec2Error::invalid(format!(
                    "Value ({}) for parameter {key} is invalid. At most 4 servers.",
                    values.join(", ")
                )));
            }
            json!(values)
        } else if *prop == "NetbiosNodeType" {
            json!(values.first().cloned().unwrap_or_default())
        } else {
            // Several domain names: one space-separated string, as AWS takes them.
            json!(values.join(" "))
        };
        props.insert((*prop).into(), val);
    }
    if let Some(tv) = tags::initial(&p.tag_specs("dhcp-options")) {
        props.insert("Tags".into(), tv);
    }
    let id = ids::new_id("dopt");
    let logical = ids::logical(&id).expect("an id");
    stack::change(ctx, |t, _| {
        t.put(&logical, DHCP_OPTIONS, Value::Object(props));
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let o = v
        .model
        .dhcp_options_set(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the options set vanished"))?;
    let mut x = xml();
    x.open("dhcpOptions");
    item(&mut x, &v, o);
    x.close("dhcpOptions");
    Ok(x.0)
}

/// AssociateDhcpOptions: the VPC takes the set (`default`: AWS's default
/// options, the API's association goes).
pub fn associate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let set = p.required("DhcpOptionsId")?.to_string();
    let vpc = p.required("VpcId")?.to_string();
    stack::change(ctx, |t, v| {
        let vpc_l = v.vpc(&vpc)?.id.clone();
        let assoc = association_id(&vpc_l);
        if set == "default" {
            t.remove(&assoc);
            return Ok(());
        }
        let l = v
            .logical(&set)
            .filter(|l| v.model.dhcp_options_set(l).is_some())
            .ok_or_else(|| not_found(&set))?
            .to_string();
        t.put(
            &assoc,
            ASSOCIATION,
            json!({"VpcId": vpc_l, "DhcpOptionsId": l}),
        );
        Ok(())
    })?;
    super::ok()
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let mut list: Vec<&DhcpOptions> = v.model.dhcp_options.iter().collect();
    list.sort_by_key(|o| v.api.created(&o.id));
    let (out, token) = filters::select(
        p,
        &KIND,
        list,
        |o| v.id(&o.id),
        |o| v.tags(&o.id),
        |o, n| match n {
            "dhcp-options-id" => filters::one(v.id(&o.id)),
            "key" => Some(config(o).into_iter().map(|(k, _)| k.to_string()).collect()),
            "value" => Some(config(o).into_iter().flat_map(|(_, vs)| vs).collect()),
            "owner-id" => filters::one(v.account()),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("dhcpOptionsSet", out, |x, o| item(x, &v, o));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// DeleteDhcpOptions: refused while a VPC has the set, as EC2 refuses it.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("DhcpOptionsId")?.to_string();
    // DeleteDhcpOptions checks the id's shape first (Describe and
    // Associate do not: `.NotFound` there).
    if !id.starts_with("dopt-") {
        return Err(Ec2Error::new(
            "InvalidDhcpOptionsId.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"dopt-...\")"),
        ));
    }
    stack::change(ctx, |t, v| {
        let l = v
            .logical(&id)
            .filter(|l| v.model.dhcp_options_set(l).is_some())
            .ok_or_else(|| not_found(&id))?
            .to_string();
        v.owned(&l, &id)?;
        if let Some(vpc) = v
            .model
            .vpcs
            .iter()
            .find(|x| x.dhcp_options.as_deref() == Some(l.as_str()))
        {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!(
                    "The dhcpOptions '{id}' has dependencies and cannot be deleted (it is associated with {}).",
                    v.id(&vpc.id)
                ),
            ));
        }
        t.remove(&l);
        Ok(())
    })?;
    super::ok()
}
