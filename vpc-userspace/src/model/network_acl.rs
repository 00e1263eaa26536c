//! Network ACLs: `AWS::EC2::NetworkAcl`, `AWS::EC2::NetworkAclEntry`,
//! `AWS::EC2::SubnetNetworkAclAssociation`, and each VPC's default ACL.
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{int_field, parse_protocol, required_str, res_path, Builder, Model, Protocol};
use crate::template::{ModelError, Result};

pub const NETWORK_ACL: &str = "AWS::EC2::NetworkAcl";
pub const NETWORK_ACL_ENTRY: &str = "AWS::EC2::NetworkAclEntry";
pub const SUBNET_ACL_ASSOCIATION: &str = "AWS::EC2::SubnetNetworkAclAssociation";
/// AWS's default quota: rules per direction per address family.
pub const MAX_ACL_RULES_PER_DIRECTION: usize = 20;

/// A stateless, ordered rule list. The final `*` deny is implicit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkAcl {
    pub id: String,
    pub vpc: String,
    /// Sorted by rule number.
    pub entries: Vec<AclEntry>,
    pub is_default: bool,
}

/// One numbered rule. Ports as for security groups: a range for TCP/UDP,
/// ICMP type/code (`-1`: all), ignored for other protocols.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AclEntry {
    pub rule_number: u16,
    pub egress: bool,
    pub allow: bool,
    pub protocol: Protocol,
    pub from_port: i32,
    pub to_port: i32,
    pub cidr: IpNet,
}

impl AclEntry {
    pub fn allow_all(rule_number: u16, egress: bool) -> Self {
        AclEntry {
            rule_number,
            egress,
            allow: true,
            protocol: Protocol::All,
            from_port: -1,
            to_port: -1,
            cidr: "0.0.0.0/0".parse().expect("constant"),
        }
    }
}

pub fn default_acl_id(vpc: &str) -> String {
    format!("{vpc}.DefaultNetworkAcl")
}

impl Model {
    pub fn acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.acls.iter().find(|a| a.id == id)
    }
}

/// One entry's properties, validated as EC2 does.
fn parse_entry(p: &Value, id: &str) -> Result<AclEntry> {
    let path = res_path(id);
    let field = |f: &str| format!("{path}.{f}");
    let rule_number = int_field(
        p.get("RuleNumber").unwrap_or(&Value::Null),
        &field("RuleNumber"),
    )?
    .ok_or_else(|| ModelError::new(field("RuleNumber"), "is required"))?;
    if !(1..=32766).contains(&rule_number) {
        return Err(ModelError::new(
            field("RuleNumber"),
            format!("{rule_number}: rule numbers are 1-32766"),
        ));
    }
    let allow = match required_str(p, id, "RuleAction")?
        .to_ascii_lowercase()
        .as_str()
    {
        "allow" => true,
        "deny" => false,
        other => {
            return Err(ModelError::new(
                field("RuleAction"),
                format!("{other:?}: allow or deny"),
            ))
        }
    };
    let egress = match p.get("Egress") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
        {
            s.eq_ignore_ascii_case("true")
        }
        Some(_) => return Err(ModelError::new(field("Egress"), "must be true or false")),
    };
    let protocol = parse_protocol(
        p.get("Protocol").unwrap_or(&Value::Null),
        &field("Protocol"),
    )?;
    let cidr: IpNet = match (
        p.get("CidrBlock").and_then(Value::as_str),
        p.get("Ipv6CidrBlock").and_then(Value::as_str),
    ) {
        (Some(c), None) => c.parse::<ipnet::Ipv4Net>().map(IpNet::V4).map_err(|_| {
            ModelError::new(
                field("CidrBlock"),
                format!("{c:?} is not an IPv4 CIDR block"),
            )
        })?,
        (None, Some(c)) => c.parse::<ipnet::Ipv6Net>().map(IpNet::V6).map_err(|_| {
            ModelError::new(
                field("Ipv6CidrBlock"),
                format!("{c:?} is not an IPv6 CIDR block"),
            )
        })?,
        _ => {
            return Err(ModelError::new(
                path,
                "exactly one of CidrBlock and Ipv6CidrBlock is required",
            ))
        }
    };
    let (from_port, to_port) = if protocol.has_ports() {
        let range = p.get("PortRange").ok_or_else(|| {
            ModelError::new(field("PortRange"), "is required for TCP (6) and UDP (17)")
        })?;
        let from = int_field(
            range.get("From").unwrap_or(&Value::Null),
            &field("PortRange.From"),
        )?;
        let to = int_field(
            range.get("To").unwrap_or(&Value::Null),
            &field("PortRange.To"),
        )?;
        match (from, to) {
            (Some(f), Some(t))
                if (0..=65535).contains(&f) && (0..=65535).contains(&t) && f <= t =>
            {
                (f as i32, t as i32)
            }
            _ => {
                return Err(ModelError::new(
                    field("PortRange"),
                    "From and To are ports 0-65535 with From <= To",
                ))
            }
        }
    } else if protocol.is_icmp() {
        let icmp = p.get("Icmp").ok_or_else(|| {
            ModelError::new(field("Icmp"), "is required for ICMP (1) and ICMPv6 (58)")
        })?;
        let t = int_field(
            icmp.get("Type").unwrap_or(&Value::Null),
            &field("Icmp.Type"),
        )?
        .unwrap_or(-1);
        let c = int_field(
            icmp.get("Code").unwrap_or(&Value::Null),
            &field("Icmp.Code"),
        )?
        .unwrap_or(-1);
        if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) || (t == -1 && c != -1) {
            return Err(ModelError::new(
                field("Icmp"),
                "Type and Code are -1 or 0-255, and Type -1 needs Code -1",
            ));
        }
        (t as i32, c as i32)
    } else {
        (-1, -1)
    };
    Ok(AclEntry {
        rule_number: rule_number as u16,
        egress,
        allow,
        protocol,
        from_port,
        to_port,
        cidr: cidr.trunc(),
    })
}

impl Builder<'_> {
    /// Default ACLs, custom ACLs with their entries, then associations.
    pub(super) fn network_acls(&mut self) -> Result<()> {
        for v in &self.m.vpcs {
            let mut entries = vec![
                AclEntry::allow_all(100, false),
                AclEntry::allow_all(100, true),
            ];
            // AWS adds rule 101 for all IPv6 when the VPC has an IPv6 block.
            if v.ipv6_cidr.is_some() {
                for egress in [false, true] {
                    entries.push(AclEntry {
                        rule_number: 101,
                        cidr: "::/0".parse().expect("constant"),
                        ..AclEntry::allow_all(101, egress)
                    });
                }
            }
            entries.sort_by_key(|e| (e.egress, e.rule_number));
            self.m.acls.push(NetworkAcl {
                id: default_acl_id(&v.id),
                vpc: v.id.clone(),
                entries,
                is_default: true,
            });
        }
        for res in self.of_type(NETWORK_ACL) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            self.attr(&id, "Id", id.clone());
            // A new ACL denies everything until rules are added.
            self.m.acls.push(NetworkAcl {
                id,
                vpc,
                entries: vec![],
                is_default: false,
            });
        }
        for res in self.of_type(NETWORK_ACL_ENTRY) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let acl_id = required_str(&p, &id, "NetworkAclId")?.to_string();
            let entry = parse_entry(&p, &id)?;
            let path = format!("{}.NetworkAclId", res_path(&id));
            let acl = self
                .m
                .acls
                .iter_mut()
                .find(|a| a.id == acl_id)
                .ok_or_else(|| {
                    ModelError::new(&path, format!("InvalidNetworkAclID.NotFound: {acl_id:?}"))
                })?;
            // The default ACL is editable, as at AWS: entries join its
            // rules 100 (and 101) and the final deny.
            if acl
                .entries
                .iter()
                .any(|e| e.rule_number == entry.rule_number && e.egress == entry.egress)
            {
                return Err(ModelError::new(
                    format!("{}.RuleNumber", res_path(&id)),
                    format!(
                        "NetworkAclEntryAlreadyExists: rule {} ({}) already exists in {acl_id}",
                        entry.rule_number,
                        if entry.egress { "egress" } else { "ingress" }
                    ),
                ));
            }
            let same = acl
                .entries
                .iter()
                .filter(|e| {
                    e.egress == entry.egress
                        && matches!(e.cidr, IpNet::V4(_)) == matches!(entry.cidr, IpNet::V4(_))
                })
                .count();
            let quota = self.quotas.acl_rules;
            if same >= quota {
                return Err(ModelError::new(
                    format!("{}.RuleNumber", res_path(&id)),
                    format!("NetworkAclEntryLimitExceeded: at most {quota} rules per direction and address family"),
                ));
            }
            acl.entries.push(entry);
            acl.entries.sort_by_key(|e| (e.egress, e.rule_number));
        }
        let mut associated = std::collections::HashSet::new();
        for res in self.of_type(SUBNET_ACL_ASSOCIATION) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let subnet = required_str(&p, &id, "SubnetId")?.to_string();
            let acl = required_str(&p, &id, "NetworkAclId")?.to_string();
            let acl_vpc = self.m.acl(&acl).map(|a| a.vpc.clone()).ok_or_else(|| {
                ModelError::new(
                    format!("{}.NetworkAclId", res_path(&id)),
                    format!("InvalidNetworkAclID.NotFound: {acl:?}"),
                )
            })?;
            let sn = self.associate_subnet(
                &id,
                &subnet,
                ("NetworkAclId", &acl, &acl_vpc),
                "an ACL (one per subnet)",
                &mut associated,
            )?;
            sn.acl = acl;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{build_err, build_ok, with};

    #[test]
    fn network_acls_default_custom_and_associations() {
        let m = build_ok(&with(
            r#"
  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  Deny22: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 90, Protocol: 6, RuleAction: deny, CidrBlock: 0.0.0.0/0, PortRange: {From: 22, To: 22}}}
  AllowAll: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: "-1", RuleAction: allow, CidrBlock: 0.0.0.0/0}}
  Out: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
  Assoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref B, NetworkAclId: !Ref Acl}}
"#,
        ));
        assert_eq!(m.subnet("A").unwrap().acl, "Vpc.DefaultNetworkAcl");
        assert_eq!(m.subnet("B").unwrap().acl, "Acl");
        let acl = m.acl("Acl").unwrap();
        assert_eq!(
            acl.entries
                .iter()
                .map(|e| (e.egress, e.rule_number))
                .collect::<Vec<_>>(),
            vec![(false, 90), (false, 100), (true, 100)]
        );
        assert!(!acl.entries[0].allow && acl.entries[0].from_port == 22);
        let dflt = m.acl("Vpc.DefaultNetworkAcl").unwrap();
        assert!(dflt.is_default && dflt.entries.iter().all(|e| e.allow && e.rule_number == 100));
    }

    #[test]
    fn bad_network_acls_name_the_resource_and_field() {
        let acl = "  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}\n";
        let entry = |props: &str| {
            with(&format!("{acl}  E: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, {props}}}}}\n"))
        };
        let cases = [
            (entry("RuleNumber: 0, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleNumber", "1-32766"),
            (entry("RuleNumber: 32767, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleNumber", "1-32766"),
            (entry("RuleNumber: 1, Protocol: -1, RuleAction: maybe, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.RuleAction", "allow or deny"),
            (entry("RuleNumber: 1, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.PortRange", "required"),
            (entry("RuleNumber: 1, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 9, To: 8}"), "Resources.E.Properties.PortRange", "From <= To"),
            (entry("RuleNumber: 1, Protocol: 1, RuleAction: allow, CidrBlock: 0.0.0.0/0"), "Resources.E.Properties.Icmp", "required"),
            (entry("RuleNumber: 1, Protocol: -1, RuleAction: allow"), "Resources.E.Properties", "CidrBlock"),
            (
                with(&format!("{acl}  A1: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref A, NetworkAclId: !Ref Acl}}}}\n  A2: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref A, NetworkAclId: !Ref Acl}}}}\n")),
                "Properties.SubnetId",
                "already associated",
            ),
            (with("  E: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: acl-1, RuleNumber: 1, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}\n"), "Resources.E.Properties.NetworkAclId", "NotFound"),
        ];
        for (t, path, words) in cases {
            let e = build_err(&t);
            assert!(e.path.ends_with(path), "expected {path}, got {e}");
            assert!(e.to_string().contains(words), "expected {words:?} in {e}");
        }
        // Duplicate rule number in one direction, and the 20-rule quota.
        let mut t = with(acl);
        for (i, n) in [7, 7].iter().enumerate() {
            t += &format!("  D{i}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, RuleNumber: {n}, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}}}\n");
        }
        assert!(build_err(&t)
            .message
            .contains("NetworkAclEntryAlreadyExists"));
        let mut t = with(acl);
        for n in 1..=21 {
            t += &format!("  Q{n:02}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref Acl, RuleNumber: {n}, Protocol: -1, RuleAction: allow, CidrBlock: 0.0.0.0/0}}}}\n");
        }
        assert!(build_err(&t)
            .message
            .contains("NetworkAclEntryLimitExceeded"));
    }
}
