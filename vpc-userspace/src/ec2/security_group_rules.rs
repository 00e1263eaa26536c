//! Security-group rules: AuthorizeSecurityGroupIngress / Egress
//! (`IpPermissions`, and the older flat `IpProtocol`, `CidrIp`,
//! `SourceSecurityGroupName`), RevokeSecurityGroupIngress / Egress (by
//! permission or by `SecurityGroupRuleId`), DescribeSecurityGroupRules,
//! ModifySecurityGroupRules, UpdateSecurityGroupRuleDescriptions*. Each
//! rule the API adds is one `AWS::EC2::SecurityGroupIngress` / `Egress`
//! resource of its stack named by its `sgr-` id (one peer per rule, as
//! EC2 counts them).
use serde_json::{json, Map, Value};

use super::{
    filters, ids,
    security_groups::{by_name, rules_of, RuleRow, EGRESS, INGRESS},
    stack::Template,
    tags, xml, Ctx, Ec2Error, Ec2Result, Params, View,
};
use crate::{cloudformation::xml::Xml, model::Peer};

/// One rule as a request gives it, before the group is known.
#[derive(Debug, Clone)]
struct Spec {
    protocol: String,
    from: Option<i64>,
    to: Option<i64>,
    /// `CidrIp`, `CidrIpv6`, `GroupId`, `GroupName` or `PrefixListId`.
    peer: (&'static str, String),
    description: Option<String>,
}

fn protocol(s: &str) -> Ec2Result<String> {
    let l = s.to_ascii_lowercase();
    Ok(match l.as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        n if n.parse::<u8>().is_ok() => n.into(),
        _ => {
            return Err(Ec2Error::invalid(format!(
                "Invalid value '{s}' for IP protocol. Unknown protocol."
            )))
        }
    })
}

fn port(p: &Params, k: &str) -> Ec2Result<Option<i64>> {
    p.int(k)
}

fn specs(p: &Params) -> Ec2Result<Vec<Spec>> {
    let mut out = vec![];
    let mut add = |proto: &str, from, to, peer, description: Option<&str>| -> Ec2Result<()> {
        out.push(Spec {
            protocol: protocol(proto)?,
            from,
            to,
            peer,
            description: description.map(str::to_string),
        });
        Ok(())
    };
    for perm in p.structs("IpPermissions") {
        let proto = perm.required("IpProtocol")?.to_string();
        let (from, to) = (port(&perm, "FromPort")?, port(&perm, "ToPort")?);
        for r in perm.structs("IpRanges") {
            add(
                &proto,
                from,
                to,
                ("CidrIp", r.required("CidrIp")?.into()),
                r.get("Description"),
            )?;
        }
        for r in perm.structs("Ipv6Ranges") {
            let c = r.required("CidrIpv6")?.into();
            add(&proto, from, to, ("CidrIpv6", c), r.get("Description"))?;
        }
        // EC2's query name of `UserIdGroupPairs` is `Groups`.
        let mut pairs = perm.structs("Groups");
        pairs.extend(perm.structs("UserIdGroupPairs"));
        for r in pairs {
            let peer = match (r.get("GroupId"), r.get("GroupName")) {
                (Some(g), _) => ("GroupId", g.to_string()),
                (None, Some(n)) => ("GroupName", n.to_string()),
                _ => return Err(Ec2Error::missing("GroupId")),
            };
            add(&proto, from, to, peer, r.get("Description"))?;
        }
        for r in perm.structs("PrefixListIds") {
            let l = r.required("PrefixListId")?.into();
            add(&proto, from, to, ("PrefixListId", l), r.get("Description"))?;
        }
    }
    if let Some(proto) = p.get("IpProtocol") {
        let (from, to) = (port(p, "FromPort")?, port(p, "ToPort")?);
        if let Some(c) = p.get("CidrIp") {
            add(proto, from, to, ("CidrIp", c.into()), None)?;
        }
        if let Some(g) = p.get("SourceSecurityGroupName") {
            add(proto, from, to, ("GroupName", g.into()), None)?;
        }
    } else if let Some(g) = p.get("SourceSecurityGroupName") {
        // The oldest form: every protocol and port from that group.
        add("-1", None, None, ("GroupName", g.into()), None)?;
    }
    if out.is_empty() {
        return Err(Ec2Error::missing("IpPermissions"));
    }
    Ok(out)
}

/// The group a rule call names (`GroupId`, or `GroupName` in the default VPC).
fn target<'v>(v: &'v View, p: &Params) -> Ec2Result<&'v crate::model::SecurityGroup> {
    match (p.get("GroupId"), p.get("GroupName")) {
        (Some(id), _) => v.group(id),
        (None, Some(n)) => by_name(v, n, None),
        (None, None) => Err(Ec2Error::missing("GroupId")),
    }
}

/// A spec as the properties of a rule resource of group `group` (model id).
fn props(
    v: &View,
    group: &str,
    vpc: &str,
    s: &Spec,
    ingress: bool,
) -> Ec2Result<Map<String, Value>> {
    let mut o = Map::new();
    o.insert("GroupId".into(), group.into());
    o.insert("IpProtocol".into(), s.protocol.clone().into());
    if s.protocol != "-1" {
        if ["tcp", "udp"].contains(&s.protocol.as_str()) && (s.from.is_none() || s.to.is_none()) {
            return Err(Ec2Error::invalid(
                "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.",
            ));
        }
        if let Some(f) = s.from {
            o.insert("FromPort".into(), f.into());
        }
        if let Some(t) = s.to {
            o.insert("ToPort".into(), t.into());
        }
    }
    let (field, value) = match s.peer.0 {
        "CidrIp" => {
            let net: ipnet::Ipv4Net =
                s.peer.1.parse().map_err(|_| {
                    Ec2Error::invalid(format!("CIDR block {} is malformed", s.peer.1))
                })?;
            ("CidrIp", net.trunc().to_string())
        }
        "CidrIpv6" => ("CidrIpv6", s.peer.1.clone()),
        "PrefixListId" => (
            if ingress {
                "SourcePrefixListId"
            } else {
                "DestinationPrefixListId"
            },
            v.prefix_list_id(&s.peer.1),
        ),
        kind => {
            let g = if kind == "GroupId" {
                v.group(&s.peer.1)?
            } else {
                by_name(v, &s.peer.1, Some(vpc))?
            };
            (
                if ingress {
                    "SourceSecurityGroupId"
                } else {
                    "DestinationSecurityGroupId"
                },
                g.id.clone(),
            )
        }
    };
    o.insert(field.into(), value.into());
    if let Some(d) = &s.description {
        o.insert("Description".into(), d.clone().into());
    }
    Ok(o)
}

fn rule_of(o: &Map<String, Value>, ingress: bool) -> Ec2Result<crate::model::Rule> {
    crate::model::parse_rule(&Value::Object(o.clone()), "IpPermissions", ingress)
        .map_err(|e| Ec2Error::invalid(e.message))
}

/// `<item>` of a rule (DescribeSecurityGroupRules, Authorize's answer).
fn row(x: &mut Xml, v: &View, r: &RuleRow) {
    let gid = v.id(&r.group);
    x.leaf("securityGroupRuleId", &r.id)
        .leaf("groupId", &gid)
        .leaf("groupOwnerId", v.account())
        .flag("isEgress", !r.ingress)
        .leaf("ipProtocol", &r.protocol())
        .leaf("fromPort", &r.rule.from_port.to_string())
        .leaf("toPort", &r.rule.to_port.to_string());
    match &r.rule.peer {
        Peer::Cidr(c @ ipnet::IpNet::V4(_)) => {
            x.leaf("cidrIpv4", &c.to_string());
        }
        Peer::Cidr(c) => {
            x.leaf("cidrIpv6", &c.to_string());
        }
        Peer::PrefixList(l) => {
            x.leaf("prefixListId", &v.id(l));
        }
        Peer::Group(g) => {
            x.open("referencedGroupInfo")
                .leaf("groupId", &v.id(g))
                .leaf("userId", v.account())
                .close("referencedGroupInfo");
        }
    }
    x.opt("description", r.description.as_deref());
    let tags = r.api.as_deref().map(|l| v.tags(l)).unwrap_or_default();
    tags::tag_set(x, &tags);
    x.leaf(
        "securityGroupRuleArn",
        &format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            v.model.region,
            v.account(),
            r.id
        ),
    );
}

fn kind(ingress: bool) -> &'static str {
    if ingress {
        INGRESS
    } else {
        EGRESS
    }
}

pub fn authorize(ctx: &Ctx, p: &Params, ingress: bool) -> Ec2Result<String> {
    let tags = p.tag_specs("security-group-rule");
    let added = super::stack::change(ctx, |t, v| {
        let g = target(v, p)?.clone();
        let specs = specs(p)?;
        let mut have: Vec<crate::model::Rule> = if ingress {
            g.ingress.clone()
        } else {
            g.egress.clone()
        };
        // EC2's quota, per direction and address family, before anything else.
        let quota = crate::state::State::load(&ctx.name)
            .map(|s| s.quotas.rules_per_group)
            .unwrap_or(crate::model::MAX_RULES_PER_DIRECTION);
        for v6 in [false, true] {
            let fam = |c: &str| c == "CidrIpv6";
            let old = have
                .iter()
                .filter(|r| matches!(r.peer, Peer::Cidr(ipnet::IpNet::V6(_))) == v6)
                .count();
            let new = specs.iter().filter(|s| fam(s.peer.0) == v6).count();
            if old + new > quota {
                return Err(Ec2Error::new(
                    "RulesPerSecurityGroupLimitExceeded",
                    "The maximum number of rules per security group has been reached.",
                ));
            }
        }
        let mut added = vec![];
        for s in &specs {
            let mut o = props(v, &g.id, &g.vpc, s, ingress)?;
            let rule = rule_of(&o, ingress)?;
            if have.contains(&rule) {
                let peer = match &rule.peer {
                    Peer::Cidr(c) => c.to_string(),
                    Peer::Group(x) => v.id(x),
                    Peer::PrefixList(l) => v.id(l),
                };
                return Err(Ec2Error::new(
                    "InvalidPermission.Duplicate",
                    format!(
                        "the specified rule \"peer: {peer}, {}, from port: {}, to port: {}, ALLOW\" already exists",
                        s.protocol.to_uppercase(),
                        rule.from_port,
                        rule.to_port
                    ),
                ));
            }
            have.push(rule);
            if let Some(tv) = tags::initial(&tags) {
                o.insert("Tags".into(), tv);
            }
            let id = ids::new_id("sgr");
            t.put(
                &ids::logical(&id).expect("an id"),
                kind(ingress),
                Value::Object(o),
            );
            added.push(id);
        }
        Ok(added)
    })?;
    let v = View::load(&ctx.name)?;
    let rows: Vec<RuleRow> = v
        .model
        .groups
        .iter()
        .flat_map(|g| rules_of(&v, g))
        .filter(|r| added.contains(&r.id))
        .collect();
    let mut x = xml();
    x.flag("return", true)
        .items("securityGroupRuleSet", &rows, |x, r| row(x, &v, r));
    Ok(x.0)
}

/// The API's resource of the rule `r` of a group, or why it cannot go.
fn removable(v: &View, r: &RuleRow) -> Ec2Result<String> {
    match &r.api {
        Some(l) => Ok(l.clone()),
        None => {
            v.owned(&r.group, &r.id)?;
            Err(Ec2Error::new(
                "InvalidPermission.NotFound",
                "The specified rule does not exist in this security group.",
            ))
        }
    }
}

pub fn revoke(ctx: &Ctx, p: &Params, ingress: bool) -> Ec2Result<String> {
    let by_id = p.list("SecurityGroupRuleId");
    super::stack::change(ctx, |t, v| {
        let g = target(v, p)?.clone();
        let specs = if by_id.is_empty() { specs(p)? } else { vec![] };
        let rows: Vec<RuleRow> = rules_of(v, &g)
            .into_iter()
            .filter(|r| r.ingress == ingress)
            .collect();
        let mut gone = vec![];
        for s in &specs {
            let o = props(v, &g.id, &g.vpc, s, ingress)?;
            let rule = rule_of(&o, ingress)?;
            let r = rows.iter().find(|r| r.rule == rule).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                )
            })?;
            gone.push(removable(v, r)?);
        }
        for id in &by_id {
            let r = rows.iter().find(|r| &r.id == id).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{id}' does not exist"),
                )
            })?;
            gone.push(removable(v, r)?);
        }
        if gone.is_empty() {
            return Err(Ec2Error::missing("IpPermissions"));
        }
        for l in gone {
            t.remove(&l);
        }
        Ok(())
    })?;
    super::ok()
}

pub fn describe_rules(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("SecurityGroupRuleId");
    let fs = filters::parse(p);
    for f in fs.iter().filter(|f| f.name == "group-id") {
        if let Some(bad) = f
            .values
            .iter()
            .find(|id| !super::ids::well_formed("sg", id))
        {
            return Err(Ec2Error::new(
                "InvalidGroupId.Malformed",
                format!("The security group ID '{bad}' is malformed"),
            ));
        }
    }
    let mut out = vec![];
    for g in &v.model.groups {
        for r in rules_of(&v, g) {
            if !wanted.is_empty() && !wanted.contains(&r.id) {
                continue;
            }
            let tags = r.api.as_deref().map(|l| v.tags(l)).unwrap_or_default();
            let keep = filters::matches(&fs, &tags, |n| match n {
                "group-id" => filters::one(v.id(&g.id)),
                "security-group-rule-id" => filters::one(r.id.clone()),
                _ => None,
            })?;
            if keep {
                out.push(r);
            }
        }
    }
    for w in &wanted {
        if !out.iter().any(|r| &r.id == w) {
            return Err(Ec2Error::new(
                "InvalidSecurityGroupRuleId.NotFound",
                format!("The security group rule ID '{w}' does not exist"),
            ));
        }
    }
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("securityGroupRuleSet", &out, |x, r| row(x, &v, r));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn modify_rules(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let changes = p.structs("SecurityGroupRule");
    super::stack::change(ctx, |t, v| {
        let g = v.group(p.required("GroupId")?)?.clone();
        let rows = rules_of(v, &g);
        for c in &changes {
            let id = c.required("SecurityGroupRuleId")?;
            let r = rows.iter().find(|r| r.id == id).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{id}' does not exist"),
                )
            })?;
            let l = removable(v, r)?;
            let n = c.structs("SecurityGroupRule").into_iter().next();
            let n = n.unwrap_or_else(|| {
                Params(
                    c.0.iter()
                        .filter_map(|(k, x)| {
                            Some((k.strip_prefix("SecurityGroupRule.")?.to_string(), x.clone()))
                        })
                        .collect(),
                )
            });
            // AWS's checks, in AWS's order (moto's aws_verified test).
            let Some(proto) = n.get("IpProtocol") else {
                return Err(Ec2Error::new(
                    "InvalidParameterValue",
                    "Invalid value 'null' for protocol. VPC security group rules must specify protocols explicitly.",
                ));
            };
            let (from, to) = (n.int("FromPort")?, n.int("ToPort")?);
            let ported = ["tcp", "udp", "6", "17"].contains(&proto.to_ascii_lowercase().as_str());
            if ported && (from.is_none() || to.is_none()) {
                return Err(Ec2Error::new(
                    "InvalidParameterValue",
                    "Invalid value for portRange. Must specify both from and to ports with TCP/UDP.",
                ));
            }
            let peer = if let Some(c4) = n.get("CidrIpv4") {
                ("CidrIp", c4.to_string())
            } else if let Some(c6) = n.get("CidrIpv6") {
                ("CidrIpv6", c6.to_string())
            } else if let Some(pl) = n.get("PrefixListId") {
                ("PrefixListId", pl.to_string())
            } else if let Some(gid) = n.get("ReferencedGroupId") {
                ("GroupId", gid.to_string())
            } else {
                return Err(Ec2Error::new(
                    "MissingParameter",
                    "The request must contain exactly one of: cidrIp, cidrIpv6, prefixListId, or referencedGroupId",
                ));
            };
            let s = Spec {
                protocol: protocol(proto)?,
                from,
                to,
                peer,
                description: n.get("Description").map(str::to_string),
            };
            let mut o = props(v, &g.id, &g.vpc, &s, r.ingress)?;
            if let Some(tags) = t.props(&l).and_then(|x| x.get("Tags")).cloned() {
                o.insert("Tags".into(), tags);
            }
            t.put(&l, kind(r.ingress), Value::Object(o));
        }
        Ok(())
    })?;
    super::ok()
}

/// Sets the description of each rule `p` names (by permission or by id).
pub fn update_descriptions(ctx: &Ctx, p: &Params, ingress: bool) -> Ec2Result<String> {
    let specs = specs(p).unwrap_or_default();
    let by_id: Vec<(String, Option<String>)> = p
        .structs("SecurityGroupRuleDescriptions")
        .into_iter()
        .filter_map(|d| {
            Some((
                d.get("SecurityGroupRuleId")?.to_string(),
                d.get("Description").map(str::to_string),
            ))
        })
        .collect();
    super::stack::change(ctx, |t: &mut Template, v| {
        let g = target(v, p)?.clone();
        let rows: Vec<RuleRow> = rules_of(v, &g)
            .into_iter()
            .filter(|r| r.ingress == ingress)
            .collect();
        let mut set = |r: &RuleRow, d: Option<String>| -> Ec2Result<()> {
            let l = removable(v, r)?;
            if let Some(props) = t.props_mut(&l) {
                match d {
                    Some(d) => props.insert("Description".into(), json!(d)),
                    None => props.remove("Description"),
                };
            }
            Ok(())
        };
        for s in &specs {
            let o = props(v, &g.id, &g.vpc, s, ingress)?;
            let rule = rule_of(&o, ingress)?;
            let r = rows.iter().find(|r| r.rule == rule).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                )
            })?;
            set(r, s.description.clone())?;
        }
        for (id, d) in &by_id {
            let r = rows.iter().find(|r| &r.id == id).ok_or_else(|| {
                Ec2Error::new(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{id}' does not exist"),
                )
            })?;
            set(r, d.clone())?;
        }
        Ok(())
    })?;
    super::ok()
}
