//! Security groups: CreateSecurityGroup, DeleteSecurityGroup,
//! DescribeSecurityGroups. A group of the API is an
//! `AWS::EC2::SecurityGroup` of its stack with `SecurityGroupEgress: []`:
//! each of its rules (the allow-all egress a new group gets included) is
//! an `AWS::EC2::SecurityGroupIngress` / `Egress` resource named by its
//! `sgr-` id, so a rule is revoked by removing its resource. The rules'
//! operations are in `security_group_rules.rs`.
use serde_json::json;

use super::{filters, ids, tags, vpcs, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{Peer, Protocol, Rule, SecurityGroup},
};

pub use super::security_group_rules::{
    authorize, describe_rules, modify_rules, revoke, update_descriptions,
};

pub const GROUP: &str = "AWS::EC2::SecurityGroup";
pub const INGRESS: &str = "AWS::EC2::SecurityGroupIngress";
pub const EGRESS: &str = "AWS::EC2::SecurityGroupEgress";

/// A group's name: `default` for a VPC's default group, its `GroupName`,
/// else the name CloudFormation generates (`<stack>-<logical id>-<suffix>`).
pub fn group_name(v: &View, g: &SecurityGroup) -> String {
    if g.is_default {
        return "default".into();
    }
    if let Some(n) = v.prop(&g.id, "GroupName") {
        return n.to_string();
    }
    let stack = v.stack_of(&g.id);
    let suffix = ids::derived("x", &v.name, stack, &g.id)[2..15].to_ascii_uppercase();
    format!("{stack}-{}-{suffix}", g.id)
}

fn description(v: &View, g: &SecurityGroup) -> String {
    if g.is_default {
        return "default VPC security group".into();
    }
    v.prop(&g.id, "GroupDescription")
        .unwrap_or_default()
        .to_string()
}

/// One rule as the API shows it.
#[derive(Debug, Clone)]
pub struct RuleRow {
    pub id: String,
    pub group: String,
    pub ingress: bool,
    pub rule: Rule,
    pub description: Option<String>,
    /// Its resource in the API's template, when the API made it.
    pub api: Option<String>,
}

impl RuleRow {
    pub fn protocol(&self) -> String {
        protocol_name(self.rule.protocol)
    }
}

pub fn protocol_name(p: Protocol) -> String {
    match p {
        Protocol::All => "-1".into(),
        Protocol::Number(6) => "tcp".into(),
        Protocol::Number(17) => "udp".into(),
        Protocol::Number(1) => "icmp".into(),
        Protocol::Number(58) => "icmpv6".into(),
        Protocol::Number(n) => n.to_string(),
    }
}

/// Every rule of group `g` (model id), with its `sgr-` id: the API's own
/// rules are matched to their resources; the others' ids are derived.
pub fn rules_of(v: &View, g: &SecurityGroup) -> Vec<RuleRow> {
    let mut claimed = std::collections::HashSet::new();
    let mut out = vec![];
    for (ingress, list) in [(true, &g.ingress), (false, &g.egress)] {
        let kind = if ingress { INGRESS } else { EGRESS };
        for (i, r) in list.iter().enumerate() {
            let api = v
                .api
                .of_type(kind)
                .filter(|(id, p)| p["GroupId"] == g.id.as_str() && !claimed.contains(*id))
                .find(|(id, p)| crate::model::parse_rule(p, id, ingress).ok().as_ref() == Some(r))
                .map(|(id, p)| (id.clone(), p["Description"].as_str().map(str::to_string)));
            let (id, description, api) = match api {
                Some((l, d)) => {
                    claimed.insert(l.clone());
                    (ids::api_id(&l).unwrap_or_else(|| l.clone()), d, Some(l))
                }
                None => (
                    ids::derived(
                        "sgr",
                        &v.name,
                        v.stack_of(&g.id),
                        &format!("{}/{}/{i}", g.id, if ingress { "in" } else { "out" }),
                    ),
                    None,
                    None,
                ),
            };
            out.push(RuleRow {
                id,
                group: g.id.clone(),
                ingress,
                rule: r.clone(),
                description,
                api,
            });
        }
    }
    // Egress first, then ingress; each in the order the API made them
    // (a template's first, as written).
    out.sort_by_key(|r| (r.ingress, r.api.as_deref().and_then(|l| v.api.created(l))));
    out
}

fn has_ports(p: Protocol) -> bool {
    p.has_ports() || p.is_icmp()
}

/// `ipPermissions` / `ipPermissionsEgress`: rules grouped by protocol and ports.
fn permissions(x: &mut Xml, tag: &str, v: &View, rows: &[&RuleRow]) {
    let mut keys: Vec<(Protocol, i32, i32)> = vec![];
    for r in rows {
        let k = (r.rule.protocol, r.rule.from_port, r.rule.to_port);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    x.items(tag, keys, |x, (proto, from, to)| {
        let these: Vec<&&RuleRow> = rows
            .iter()
            .filter(|r| (r.rule.protocol, r.rule.from_port, r.rule.to_port) == (proto, from, to))
            .collect();
        x.leaf("ipProtocol", &protocol_name(proto));
        if has_ports(proto) {
            x.leaf("fromPort", &from.to_string())
                .leaf("toPort", &to.to_string());
        }
        let peers = |want: fn(&Peer) -> bool| these.iter().filter(move |r| want(&r.rule.peer));
        x.items("groups", peers(|p| matches!(p, Peer::Group(_))), |x, r| {
            if let Peer::Group(g) = &r.rule.peer {
                x.leaf("userId", v.account())
                    .leaf("groupId", &v.id(g))
                    .opt("description", r.description.as_deref());
            }
        });
        x.items(
            "ipRanges",
            peers(|p| matches!(p, Peer::Cidr(ipnet::IpNet::V4(_)))),
            |x, r| {
                if let Peer::Cidr(c) = &r.rule.peer {
                    x.leaf("cidrIp", &c.to_string())
                        .opt("description", r.description.as_deref());
                }
            },
        );
        x.items(
            "ipv6Ranges",
            peers(|p| matches!(p, Peer::Cidr(ipnet::IpNet::V6(_)))),
            |x, r| {
                if let Peer::Cidr(c) = &r.rule.peer {
                    x.leaf("cidrIpv6", &c.to_string())
                        .opt("description", r.description.as_deref());
                }
            },
        );
        x.items(
            "prefixListIds",
            peers(|p| matches!(p, Peer::PrefixList(_))),
            |x, r| {
                if let Peer::PrefixList(l) = &r.rule.peer {
                    x.leaf("prefixListId", &v.id(l))
                        .opt("description", r.description.as_deref());
                }
            },
        );
    });
}

fn item(x: &mut Xml, v: &View, g: &SecurityGroup) {
    let id = v.id(&g.id);
    let rows = rules_of(v, g);
    x.leaf("ownerId", v.account())
        .leaf("groupId", &id)
        .leaf("groupName", &group_name(v, g))
        .leaf("groupDescription", &description(v, g))
        .leaf("vpcId", &v.id(&g.vpc))
        .leaf(
            "securityGroupArn",
            &format!(
                "arn:aws:ec2:{}:{}:security-group/{id}",
                v.model.region,
                v.account()
            ),
        );
    let (ing, eg): (Vec<&RuleRow>, Vec<&RuleRow>) = rows.iter().partition(|r| r.ingress);
    permissions(x, "ipPermissions", v, &ing);
    permissions(x, "ipPermissionsEgress", v, &eg);
    tags::tag_set(x, &v.tags(&g.id));
}

/// A rule's values for the `ip-permission.*` filters.
fn permission_values(v: &View, rows: &[RuleRow], ingress: bool, what: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r.ingress == ingress)
        .filter_map(|r| match (what, &r.rule.peer) {
            ("cidr", Peer::Cidr(c @ ipnet::IpNet::V4(_))) => Some(c.to_string()),
            ("ipv6-cidr", Peer::Cidr(c @ ipnet::IpNet::V6(_))) => Some(c.to_string()),
            ("group-id", Peer::Group(g)) => Some(v.id(g)),
            ("group-name", Peer::Group(g)) => v.model.group(g).map(|g| group_name(v, g)),
            ("prefix-list-id", Peer::PrefixList(l)) => Some(v.id(l)),
            ("protocol", _) => Some(r.protocol()),
            ("from-port", _) => Some(r.rule.from_port.to_string()),
            ("to-port", _) => Some(r.rule.to_port.to_string()),
            _ => None,
        })
        .collect()
}

/// The groups `GroupId.N` / `GroupName.N` name (names: in the default VPC,
/// else in any VPC).
fn named<'v>(v: &'v View, p: &Params) -> Ec2Result<Option<Vec<&'v SecurityGroup>>> {
    let (gids, names) = (p.list("GroupId"), p.list("GroupName"));
    if gids.is_empty() && names.is_empty() {
        return Ok(None);
    }
    let mut out = vec![];
    for g in &gids {
        out.push(v.group(g)?);
    }
    for n in &names {
        out.push(by_name(v, n, None)?);
    }
    Ok(Some(out))
}

/// The group named `name` (in `vpc`, else the default VPC's first, else any).
pub fn by_name<'v>(v: &'v View, name: &str, vpc: Option<&str>) -> Ec2Result<&'v SecurityGroup> {
    let mut found: Vec<&SecurityGroup> = v
        .model
        .groups
        .iter()
        .filter(|g| group_name(v, g) == name && vpc.is_none_or(|x| g.vpc == x))
        .collect();
    found.sort_by_key(|g| !vpcs::is_default(v, &g.vpc));
    found.first().copied().ok_or_else(|| {
        Ec2Error::new(
            "InvalidGroup.NotFound",
            format!("The security group '{name}' does not exist in default VPC"),
        )
    })
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = named(&v, p)?;
    let fs = filters::parse(p);
    let mut out = vec![];
    for g in &v.model.groups {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|x| x.id == g.id))
        {
            continue;
        }
        let rows = rules_of(&v, g);
        let keep = filters::matches(&fs, &v.tags(&g.id), |n| {
            let perm =
                |ingress: bool, what: &str| Some(permission_values(&v, &rows, ingress, what));
            match n {
                "group-id" => filters::one(v.id(&g.id)),
                "group-name" => filters::one(group_name(&v, g)),
                "description" => filters::one(description(&v, g)),
                "vpc-id" => filters::one(v.id(&g.vpc)),
                "owner-id" => filters::one(v.account()),
                _ => {
                    if let Some(w) = n.strip_prefix("egress.ip-permission.") {
                        perm(false, w)
                    } else if let Some(w) = n.strip_prefix("ip-permission.") {
                        perm(true, w)
                    } else {
                        None
                    }
                }
            }
        })?;
        if keep {
            out.push(g);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("securityGroupInfo", out, |x, g| item(x, &v, g));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// The VPC a call names, else the default VPC (EC2's `VPCIdNotSpecified`
/// when there is none).
pub fn vpc_or_default(v: &View, vpc: Option<&str>) -> Ec2Result<String> {
    match vpc {
        Some(id) => Ok(v.vpc(id)?.id.clone()),
        None => v
            .model
            .vpcs
            .iter()
            .find(|x| vpcs::is_default(v, &x.id))
            .map(|x| x.id.clone())
            .ok_or_else(|| Ec2Error::new("VPCIdNotSpecified", "No default VPC for this user")),
    }
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let name = p.required("GroupName")?.to_string();
    let description = p
        .get("GroupDescription")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| super::Ec2Error::missing("GroupDescription"))?
        .to_string();
    if name.starts_with("sg-") {
        return Err(Ec2Error::invalid(
            "Group names may not be in the format sg-*.",
        ));
    }
    if name.len() > 255 || description.len() > 255 {
        return Err(Ec2Error::invalid(
            "Group name and description are at most 255 characters",
        ));
    }
    let id = ids::new_id("sg");
    let logical = ids::logical(&id).expect("an id");
    let tags = p.tag_specs("security-group");
    super::stack::change(ctx, |t, v| {
        let vpc = vpc_or_default(v, p.get("VpcId"))?;
        if v.model
            .groups
            .iter()
            .any(|g| g.vpc == vpc && group_name(v, g) == name)
        {
            return Err(Ec2Error::new(
                "InvalidGroup.Duplicate",
                format!(
                    "The security group '{name}' already exists for VPC '{}'",
                    v.id(&vpc)
                ),
            ));
        }
        let mut props = json!({
            "GroupName": name, "GroupDescription": description, "VpcId": vpc,
            "SecurityGroupEgress": [],
        });
        if let Some(tags) = tags::initial(&tags) {
            props["Tags"] = tags;
        }
        t.put(&logical, GROUP, props);
        // What a new group has: allow all outbound (IPv6 too with a block).
        let mut peers = vec![("CidrIp", "0.0.0.0/0")];
        if v.model.vpc(&vpc).is_some_and(|x| x.ipv6_cidr.is_some()) {
            peers.push(("CidrIpv6", "::/0"));
        }
        for (field, cidr) in peers {
            let r = ids::logical(&ids::new_id("sgr")).expect("an id");
            t.put(
                &r,
                EGRESS,
                json!({"GroupId": logical, "IpProtocol": "-1", field: cidr}),
            );
        }
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let mut x = xml();
    x.leaf("groupId", &id).leaf(
        "securityGroupArn",
        &format!(
            "arn:aws:ec2:{}:{}:security-group/{id}",
            v.model.region,
            v.account()
        ),
    );
    tags::tag_set(&mut x, &tags);
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    super::stack::change(ctx, |t, v| {
        let g = match (p.get("GroupId"), p.get("GroupName")) {
            (Some(id), _) => v.group(id)?,
            (None, Some(n)) => by_name(v, n, None)?,
            (None, None) => return Err(Ec2Error::missing("GroupId")),
        }
        .clone();
        let id = v.id(&g.id);
        if g.is_default {
            return Err(Ec2Error::new(
                "CannotDelete",
                format!(
                    "the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"
                ),
            ));
        }
        v.owned(&g.id, &id)?;
        let m = &v.model;
        let used = m.hosts.iter().any(|h| h.groups.contains(&g.id))
            || m.enis.iter().any(|e| e.groups.contains(&g.id))
            || m.functions.iter().any(|f| {
                f.vpc_config
                    .as_ref()
                    .is_some_and(|c| c.groups.contains(&g.id))
            })
            || m.groups.iter().any(|o| {
                o.id != g.id
                    && o.ingress
                        .iter()
                        .chain(&o.egress)
                        .any(|r| r.peer == Peer::Group(g.id.clone()))
            });
        if used {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("resource {id} has a dependent object"),
            ));
        }
        vpcs::remove_with(t, &g.id);
        Ok(())
    })?;
    super::ok()
}
