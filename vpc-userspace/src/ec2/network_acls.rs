//! Network ACLs: CreateNetworkAcl, DeleteNetworkAcl, DescribeNetworkAcls,
//! CreateNetworkAclEntry, ReplaceNetworkAclEntry, DeleteNetworkAclEntry,
//! ReplaceNetworkAclAssociation. An entry of the API is an
//! `AWS::EC2::NetworkAclEntry` (also on a VPC's default ACL, whose rules
//! 100/101 come with the VPC); a subnet's association with a custom ACL
//! is an `AWS::EC2::SubnetNetworkAclAssociation` named by its `aclassoc-`
//! id (back to the default ACL: no resource).
use serde_json::{json, Value};

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{AclEntry, NetworkAcl, Protocol},
};

pub const ACL: &str = "AWS::EC2::NetworkAcl";
pub const ENTRY: &str = "AWS::EC2::NetworkAclEntry";
pub const ASSOCIATION: &str = "AWS::EC2::SubnetNetworkAclAssociation";

/// The logical id of the API's entry (`acl`, direction, rule number).
fn entry_id(acl: &str, egress: bool, rule: i64) -> String {
    let h = ids::derived("x", "", acl, &format!("{egress}/{rule}"));
    format!("aclentry{}", &h[2..])
}

/// A subnet's ACL association id, and its resource when the API made it.
pub fn association(v: &View, subnet: &str) -> (String, Option<String>) {
    for (l, p) in v.api.of_type(ASSOCIATION) {
        if p["SubnetId"] == subnet {
            return (ids::api_id(l).unwrap_or_else(|| l.clone()), Some(l.clone()));
        }
    }
    (
        ids::derived(
            "aclassoc",
            &v.name,
            v.stack_of(subnet),
            &format!("{subnet}/acl"),
        ),
        None,
    )
}

fn protocol_number(p: Protocol) -> String {
    match p {
        Protocol::All => "-1".into(),
        Protocol::Number(n) => n.to_string(),
    }
}

fn entry(x: &mut Xml, e: &AclEntry) {
    x.leaf("ruleNumber", &e.rule_number.to_string())
        .leaf("protocol", &protocol_number(e.protocol))
        .leaf("ruleAction", if e.allow { "allow" } else { "deny" })
        .flag("egress", e.egress);
    match e.cidr {
        ipnet::IpNet::V4(c) => x.leaf("cidrBlock", &c.to_string()),
        ipnet::IpNet::V6(c) => x.leaf("ipv6CidrBlock", &c.to_string()),
    };
    if e.protocol.is_icmp() {
        x.open("icmpTypeCode")
            .leaf("code", &e.to_port.to_string())
            .leaf("type", &e.from_port.to_string())
            .close("icmpTypeCode");
    } else if e.protocol.has_ports() {
        x.open("portRange")
            .leaf("from", &e.from_port.to_string())
            .leaf("to", &e.to_port.to_string())
            .close("portRange");
    }
}

/// An ACL's entries with the final `*` deny (rule 32767; 32768 for IPv6
/// when its VPC has an IPv6 block), as EC2 shows them.
fn entries(v: &View, a: &NetworkAcl) -> Vec<AclEntry> {
    let mut out = a.entries.clone();
    let v6 = v.model.vpc(&a.vpc).is_some_and(|x| x.ipv6_cidr.is_some());
    for egress in [false, true] {
        let deny = AclEntry {
            allow: false,
            ..AclEntry::allow_all(32767, egress)
        };
        out.push(deny.clone());
        if v6 {
            out.push(AclEntry {
                rule_number: 32768,
                cidr: "::/0".parse().expect("constant"),
                ..deny
            });
        }
    }
    out
}

fn item(x: &mut Xml, v: &View, a: &NetworkAcl) {
    let id = v.id(&a.id);
    x.leaf("networkAclId", &id)
        .leaf("vpcId", &v.id(&a.vpc))
        .flag("default", a.is_default)
        .leaf("ownerId", v.account())
        .items("entrySet", entries(v, a), |x, e| entry(x, &e));
    let subnets: Vec<_> = v.model.subnets.iter().filter(|s| s.acl == a.id).collect();
    x.items("associationSet", subnets, |x, s| {
        x.leaf("networkAclAssociationId", &association(v, &s.id).0)
            .leaf("networkAclId", &id)
            .leaf("subnetId", &v.id(&s.id));
    });
    tags::tag_set(x, &v.tags(&a.id));
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("NetworkAclId");
    for w in &wanted {
        v.acl(w)?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for a in &v.model.acls {
        let id = v.id(&a.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let subnets: Vec<&crate::model::Subnet> =
            v.model.subnets.iter().filter(|s| s.acl == a.id).collect();
        let es = entries(&v, a);
        let keep = filters::matches(&fs, &v.tags(&a.id), |n| {
            let each = |f: &dyn Fn(&AclEntry) -> String| Some(es.iter().map(f).collect());
            match n {
                "network-acl-id" => filters::one(id.clone()),
                "vpc-id" => filters::one(v.id(&a.vpc)),
                "default" => filters::boolean(a.is_default),
                "owner-id" => filters::one(v.account()),
                "association.network-acl-id" => Some(subnets.iter().map(|_| id.clone()).collect()),
                "association.subnet-id" => Some(subnets.iter().map(|s| v.id(&s.id)).collect()),
                "association.association-id" => {
                    Some(subnets.iter().map(|s| association(&v, &s.id).0).collect())
                }
                "entry.cidr" => each(&|e| e.cidr.to_string()),
                "entry.rule-number" => each(&|e| e.rule_number.to_string()),
                "entry.protocol" => each(&|e| protocol_number(e.protocol)),
                "entry.rule-action" => each(&|e| if e.allow { "allow" } else { "deny" }.into()),
                "entry.egress" => each(&|e| e.egress.to_string()),
                _ => None,
            }
        })?;
        if keep {
            out.push(a);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("networkAclSet", out, |x, a| item(x, &v, a));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let vpc_id = p.required("VpcId")?.to_string();
    let id = ids::new_id("acl");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(&vpc_id)?.id.clone();
        let mut props = json!({"VpcId": vpc});
        if let Some(tags) = tags::initial(&p.tag_specs("network-acl")) {
            props["Tags"] = tags;
        }
        t.put(&logical, ACL, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let a = v
        .model
        .acl(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the ACL vanished"))?;
    let mut x = xml();
    x.open("networkAcl");
    item(&mut x, &v, a);
    x.close("networkAcl");
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NetworkAclId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let a = v.acl(&id)?.clone();
        if a.is_default {
            return Err(Ec2Error::invalid(format!(
                "cannot delete default network ACL {id}"
            )));
        }
        v.owned(&a.id, &id)?;
        if v.model.subnets.iter().any(|s| s.acl == a.id) {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The network ACL '{id}' has dependencies and cannot be deleted."),
            ));
        }
        super::vpcs::remove_with(t, &a.id);
        Ok(())
    })?;
    super::ok()
}

/// An entry's protocol as CloudFormation takes it (a number, or -1).
fn protocol(s: &str) -> Ec2Result<String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" => "6".into(),
        "udp" => "17".into(),
        "icmp" => "1".into(),
        "icmpv6" => "58".into(),
        n if n.parse::<u8>().is_ok() => n.into(),
        _ => {
            return Err(Ec2Error::invalid(format!(
                "Invalid value '{s}' for protocol. Unknown protocol."
            )))
        }
    })
}

/// CreateNetworkAclEntry and (`replace`) ReplaceNetworkAclEntry.
pub fn create_entry(ctx: &Ctx, p: &Params, replace: bool) -> Ec2Result<String> {
    let acl_id = p.required("NetworkAclId")?.to_string();
    let rule = p
        .int("RuleNumber")?
        .ok_or_else(|| Ec2Error::missing("RuleNumber"))?;
    let egress = p.flag("Egress").unwrap_or(false);
    let proto = protocol(p.required("Protocol")?)?;
    let action = p.required("RuleAction")?.to_ascii_lowercase();
    let mut props = json!({
        "RuleNumber": rule, "Protocol": proto.parse::<i64>().unwrap_or(-1),
        "RuleAction": action, "Egress": egress,
    });
    match (p.get("CidrBlock"), p.get("Ipv6CidrBlock")) {
        (Some(c), _) => props["CidrBlock"] = c.into(),
        (None, Some(c)) => props["Ipv6CidrBlock"] = c.into(),
        _ => return Err(Ec2Error::missing("CidrBlock")),
    }
    if let (Some(f), Some(t)) = (p.int("PortRange.From")?, p.int("PortRange.To")?) {
        props["PortRange"] = json!({"From": f, "To": t});
    }
    if let Some(ty) = p.int("Icmp.Type")?.or(p.int("IcmpTypeCode.Type")?) {
        let code = p
            .int("Icmp.Code")?
            .or(p.int("IcmpTypeCode.Code")?)
            .unwrap_or(-1);
        props["Icmp"] = json!({"Type": ty, "Code": code});
    }
    super::stack::change(ctx, |t, v| {
        let a = v.acl(&acl_id)?.clone();
        props["NetworkAclId"] = Value::String(a.id.clone());
        let exists = a
            .entries
            .iter()
            .any(|e| i64::from(e.rule_number) == rule && e.egress == egress);
        let l = entry_id(&a.id, egress, rule);
        match (replace, exists) {
            (false, true) => {
                return Err(Ec2Error::new(
                    "NetworkAclEntryAlreadyExists",
                    format!("The network acl entry identified by {rule} already exists."),
                ))
            }
            (true, false) => {
                return Err(Ec2Error::new(
                    "InvalidNetworkAclEntry.NotFound",
                    format!("The network acl entry identified by {rule} does not exist."),
                ))
            }
            (true, true) if !t.has(&l) => {
                return Err(Ec2Error::new(
                    "OperationNotPermitted",
                    format!(
                        "entry {rule} of {acl_id} is not the EC2 API's (a template declares it, or it came with the VPC): change it there (docs/ec2.md)"
                    ),
                ))
            }
            _ => {}
        }
        t.put(&l, ENTRY, props);
        Ok(())
    })?;
    super::ok()
}

pub fn delete_entry(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let acl_id = p.required("NetworkAclId")?.to_string();
    let rule = p
        .int("RuleNumber")?
        .ok_or_else(|| Ec2Error::missing("RuleNumber"))?;
    let egress = p.flag("Egress").unwrap_or(false);
    super::stack::change(ctx, |t, v| {
        let a = v.acl(&acl_id)?.clone();
        let l = entry_id(&a.id, egress, rule);
        if t.remove(&l).is_some() {
            return Ok(());
        }
        if a.entries
            .iter()
            .any(|e| i64::from(e.rule_number) == rule && e.egress == egress)
        {
            return Err(Ec2Error::new(
                "OperationNotPermitted",
                format!(
                    "entry {rule} of {acl_id} is not the EC2 API's (a template declares it, or it came with the VPC): change it there (docs/ec2.md)"
                ),
            ));
        }
        Err(Ec2Error::new(
            "InvalidNetworkAclEntry.NotFound",
            format!("The network acl entry identified by {rule} does not exist."),
        ))
    })?;
    super::ok()
}

pub fn replace_association(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc = p.required("AssociationId")?.to_string();
    let acl_id = p.required("NetworkAclId")?.to_string();
    let new = ids::new_id("aclassoc");
    let subnet = super::stack::change(ctx, |t, v| {
        let a = v.acl(&acl_id)?.clone();
        let s = v
            .model
            .subnets
            .iter()
            .find(|s| association(v, &s.id).0 == assoc)
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{assoc}' does not exist"),
                )
            })?
            .clone();
        let (_, api) = association(v, &s.id);
        match api {
            Some(l) => {
                t.remove(&l);
            }
            None => {
                let current = v.model.acl(&s.acl).is_some_and(|x| x.is_default);
                if !current {
                    v.owned(&s.id, &assoc)?;
                }
            }
        }
        if a.vpc != s.vpc {
            return Err(Ec2Error::invalid(format!(
                "Network ACL {acl_id} and subnet {} belong to different networks",
                v.id(&s.id)
            )));
        }
        if !a.is_default {
            t.put(
                &ids::logical(&new).expect("an id"),
                ASSOCIATION,
                json!({"SubnetId": s.id, "NetworkAclId": a.id}),
            );
        }
        Ok(s.id)
    })?;
    let v = View::load(&ctx.name)?;
    let mut x = xml();
    x.leaf("newAssociationId", &association(&v, &subnet).0);
    Ok(x.0)
}
