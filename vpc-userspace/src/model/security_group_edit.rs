//! EC2's security-group rule edits (AuthorizeSecurityGroupIngress,
//! RevokeSecurityGroupIngress and their egress twins) on a [`Model`]: one
//! rule, validated as a template's rule is, added to or removed from a
//! group, with EC2's errors (`InvalidGroup.NotFound`,
//! `InvalidPermission.Duplicate`, ...) and the rules-per-group quota.
//! `vpc sg` applies it to a running deployment through `vpc apply`'s path
//! (`deploy::apply_edit`: atomically).
use anyhow::{bail, Context, Result};

use crate::model::{self, Model, Peer, Rule};

/// Which of a group's rule lists an edit changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

/// Authorize adds the rule, Revoke removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Authorize,
    Revoke,
}

/// One rule as EC2's API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    /// tcp, udp, icmp, icmpv6, a number, or -1.
    pub protocol: String,
    /// A port or FROM-TO (ICMP: TYPE or TYPE-CODE); ignored for -1.
    pub port: Option<String>,
    /// An IPv4 or IPv6 CIDR.
    pub cidr: Option<String>,
    /// The peer group (source for ingress, destination for egress).
    pub peer_group: Option<String>,
    /// A managed prefix list.
    pub prefix_list: Option<String>,
}

/// One rule edit on one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The group (logical id, or `VPC.DefaultSecurityGroup`).
    pub group: String,
    pub direction: Direction,
    pub action: Action,
    pub rule: RuleSpec,
}

impl RuleSpec {
    /// The rule, written as a template writes it and parsed as a template's
    /// rule is.
    pub fn parse(&self, direction: Direction) -> Result<Rule> {
        let ingress = direction == Direction::Ingress;
        let mut rule = serde_json::json!({ "IpProtocol": self.protocol });
        if let Some(p) = &self.port {
            let (from, to) = p.split_once('-').unwrap_or((p, p));
            rule["FromPort"] = from.into();
            rule["ToPort"] = to.into();
        }
        let (group_field, prefix_field) = if ingress {
            ("SourceSecurityGroupId", "SourcePrefixListId")
        } else {
            ("DestinationSecurityGroupId", "DestinationPrefixListId")
        };
        if let Some(c) = &self.cidr {
            rule[if c.contains(':') {
                "CidrIpv6"
            } else {
                "CidrIp"
            }] = c.as_str().into();
        }
        if let Some(g) = &self.peer_group {
            rule[group_field] = g.as_str().into();
        }
        if let Some(p) = &self.prefix_list {
            rule[prefix_field] = p.as_str().into();
        }
        Ok(model::parse_rule(&rule, "rule", ingress)?)
    }
}

/// Applies `e` to `m`, as EC2 does: the peer group or prefix list must
/// exist (a peer group in the target's VPC), an authorized rule must be new
/// and a revoked one present; an authorization must keep the group within
/// `quota` rules per direction (a prefix list counts its MaxEntries, as in
/// templates).
pub fn edit(m: &mut Model, e: &Edit, quota: usize) -> Result<()> {
    let ingress = e.direction == Direction::Ingress;
    let add = e.action == Action::Authorize;
    let rule = e.rule.parse(e.direction)?;
    match &rule.peer {
        Peer::Group(g) if m.group(g).is_none() => bail!("InvalidGroup.NotFound: {g:?}"),
        Peer::PrefixList(p) if m.prefix_list(p).is_none() => {
            bail!("InvalidPrefixListID.NotFound: {p:?}")
        }
        _ => {}
    }
    let target = m
        .group(&e.group)
        .cloned()
        .with_context(|| format!("InvalidGroup.NotFound: {:?}", e.group))?;
    if let Peer::Group(g) = &rule.peer {
        if m.group(g).is_some_and(|p| p.vpc != target.vpc) {
            bail!("security group {g:?} is in another VPC than {}", e.group);
        }
    }
    let mut rules = if ingress {
        target.ingress
    } else {
        target.egress
    };
    match (add, rules.iter().position(|r| *r == rule)) {
        (true, Some(_)) => bail!(
            "InvalidPermission.Duplicate: the rule already exists in {}",
            e.group
        ),
        (true, None) => rules.push(rule),
        (false, Some(i)) => {
            rules.remove(i);
        }
        (false, None) => bail!("InvalidPermission.NotFound: no such rule in {}", e.group),
    }
    let (v4, v6) = m.rule_weight(&rules);
    if add && v4.max(v6) > quota {
        bail!("RulesPerSecurityGroupLimitExceeded: the maximum number of rules per security group ({quota}) has been reached");
    }
    let g = m
        .groups
        .iter_mut()
        .find(|g| g.id == e.group)
        .expect("found above");
    if ingress {
        g.ingress = rules;
    } else {
        g.egress = rules;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_model() -> Model {
        model::build(crate::DEFAULT_TEMPLATE, &Default::default(), "t").expect("default template")
    }

    fn tcp(group: &str, action: Action, port: &str, cidr: &str) -> Edit {
        Edit {
            group: group.into(),
            direction: Direction::Ingress,
            action,
            rule: RuleSpec {
                protocol: "tcp".into(),
                port: Some(port.into()),
                cidr: Some(cidr.into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn authorize_then_revoke_restores_the_group() {
        let mut m = default_model();
        let before = m.group("AppSecurityGroup").cloned().expect("group");
        let e = tcp(
            "AppSecurityGroup",
            Action::Authorize,
            "80-81",
            "10.9.0.0/16",
        );
        edit(&mut m, &e, 60).unwrap();
        let g = m.group("AppSecurityGroup").unwrap();
        assert_eq!(g.ingress.len(), before.ingress.len() + 1);
        let r = g.ingress.last().unwrap();
        assert_eq!((r.from_port, r.to_port), (80, 81));
        assert_eq!(g.egress, before.egress);
        let err = edit(&mut m, &e, 60).unwrap_err().to_string();
        assert_eq!(
            err,
            "InvalidPermission.Duplicate: the rule already exists in AppSecurityGroup"
        );
        let revoke = Edit {
            action: Action::Revoke,
            ..e
        };
        edit(&mut m, &revoke, 60).unwrap();
        assert_eq!(m.group("AppSecurityGroup"), Some(&before));
        let err = edit(&mut m, &revoke, 60).unwrap_err().to_string();
        assert_eq!(
            err,
            "InvalidPermission.NotFound: no such rule in AppSecurityGroup"
        );
    }

    #[test]
    fn ipv6_cidrs_and_egress_peers() {
        let mut m = default_model();
        let e = Edit {
            group: "LambdaSecurityGroup".into(),
            direction: Direction::Egress,
            action: Action::Authorize,
            rule: RuleSpec {
                protocol: "udp".into(),
                port: Some("53".into()),
                cidr: Some("2001:db8::/32".into()),
                ..Default::default()
            },
        };
        edit(&mut m, &e, 60).unwrap();
        let r = m
            .group("LambdaSecurityGroup")
            .unwrap()
            .egress
            .last()
            .cloned();
        assert!(
            matches!(r, Some(Rule { peer: Peer::Cidr(c), .. }) if c.to_string() == "2001:db8::/32")
        );
        let peer = Edit {
            rule: RuleSpec {
                protocol: "tcp".into(),
                port: Some("5432".into()),
                peer_group: Some("DatabaseSecurityGroup".into()),
                ..Default::default()
            },
            ..e
        };
        edit(&mut m, &peer, 60).unwrap();
        let r = m
            .group("LambdaSecurityGroup")
            .unwrap()
            .egress
            .last()
            .cloned();
        assert_eq!(
            r.map(|r| r.peer),
            Some(Peer::Group("DatabaseSecurityGroup".into()))
        );
    }

    #[test]
    fn unknown_groups_and_prefix_lists_and_the_quota() {
        let mut m = default_model();
        let e = tcp("NoSuchGroup", Action::Authorize, "80", "10.9.0.0/16");
        assert_eq!(
            edit(&mut m, &e, 60).unwrap_err().to_string(),
            "InvalidGroup.NotFound: \"NoSuchGroup\""
        );
        let mut e = tcp("AppSecurityGroup", Action::Authorize, "80", "10.9.0.0/16");
        e.rule.cidr = None;
        e.rule.peer_group = Some("Nope".into());
        assert_eq!(
            edit(&mut m, &e, 60).unwrap_err().to_string(),
            "InvalidGroup.NotFound: \"Nope\""
        );
        e.rule.peer_group = None;
        e.rule.prefix_list = Some("pl-nope".into());
        assert_eq!(
            edit(&mut m, &e, 60).unwrap_err().to_string(),
            "InvalidPrefixListID.NotFound: \"pl-nope\""
        );
        let n = m.group("AppSecurityGroup").unwrap().ingress.len();
        let e = tcp("AppSecurityGroup", Action::Authorize, "80", "10.9.0.0/16");
        assert_eq!(
            edit(&mut m, &e, n).unwrap_err().to_string(),
            format!("RulesPerSecurityGroupLimitExceeded: the maximum number of rules per security group ({n}) has been reached")
        );
        assert_eq!(m.group("AppSecurityGroup").unwrap().ingress.len(), n);
    }
}
