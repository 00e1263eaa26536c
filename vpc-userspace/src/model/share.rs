//! Shared subnets: `AWS::RAM::ResourceShare` shares the owner account's
//! subnets (and security groups) with participant accounts, whose
//! functions may then attach to them. The owner is the stack's account; a
//! function or a security group belongs to a participant when its resource
//! `Metadata` says `Account: "<12 digits>"` (ours: a CloudFormation stack
//! has one account, and `Metadata` is where CloudFormation allows such
//! annotations).
//!
//! Security groups, as AWS: a participant uses the groups it created in
//! the shared VPC and the owner's groups shared with it (RAM's
//! `ec2:SecurityGroup`), never the owner's others, the VPC's default group
//! included; otherwise it would inherit whatever the owner's rules grant
//! those groups ("from the Lambda group" on a database).
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{res_path, string_list, Builder, Model};
use crate::template::{ModelError, Result};

pub const RESOURCE_SHARE: &str = "AWS::RAM::ResourceShare";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceShare {
    /// Logical id.
    pub id: String,
    pub name: String,
    pub subnets: Vec<String>,
    /// The owner's security groups it shares.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Participant account ids.
    pub principals: Vec<String>,
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Model {
    /// May `account` (`None`: the owner) place ENIs in `subnet`?
    pub fn subnet_usable(&self, subnet: &str, account: Option<&str>) -> bool {
        self.subnet(subnet).is_some()
            && match account {
                None => true,
                Some(a) if a == self.account => true,
                Some(a) => self.shares.iter().any(|s| {
                    s.subnets.iter().any(|x| x == subnet) && s.principals.iter().any(|p| p == a)
                }),
            }
    }

    /// May `account` (`None`: the owner) attach security group `group`?
    /// Its own, or the owner's shared with it.
    pub fn group_usable(&self, group: &str, account: Option<&str>) -> bool {
        let account = account.filter(|a| *a != self.account);
        let Some(g) = self.group(group) else {
            return false;
        };
        g.account.as_deref() == account
            || (g.account.is_none()
                && account.is_some_and(|a| {
                    self.shares.iter().any(|s| {
                        s.groups.iter().any(|x| x == group) && s.principals.iter().any(|p| p == a)
                    })
                }))
    }

    pub fn share(&self, name: &str) -> Option<&ResourceShare> {
        self.shares.iter().find(|s| s.id == name || s.name == name)
    }
}

impl Builder<'_> {
    pub(super) fn resource_shares(&mut self) -> Result<()> {
        for res in self.of_type(RESOURCE_SHARE) {
            let id = res.logical_id.clone();
            let path = res_path(&id);
            let p = self.props(res)?;
            let name = p
                .get("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::new(format!("{path}.Name"), "required, a string"))?
                .to_string();
            let (mut subnets, mut groups) = (vec![], vec![]);
            for (i, arn) in string_list(p.get("ResourceArns"), &format!("{path}.ResourceArns"))?
                .into_iter()
                .enumerate()
            {
                // arn:aws:ec2:REGION:ACCOUNT:subnet/ID or
                // ...:security-group/ID, or the subnet itself.
                if let Some((_, gid)) = arn.rsplit_once(":security-group/") {
                    match self.m.group(gid) {
                        Some(g) if g.account.is_none() && !g.is_default => {
                            groups.push(g.id.clone());
                            continue;
                        }
                        // AWS: a default group cannot be shared.
                        Some(g) if g.is_default => {
                            return Err(ModelError::new(
                                format!("{path}.ResourceArns[{i}]"),
                                format!("{arn:?}: a VPC's default security group cannot be shared"),
                            ))
                        }
                        _ => {
                            return Err(ModelError::new(
                                format!("{path}.ResourceArns[{i}]"),
                                format!(
                                    "{arn:?} is no security group of the owner in this template"
                                ),
                            ))
                        }
                    }
                }
                let sid = arn.rsplit_once(":subnet/").map(|(_, s)| s).unwrap_or(&arn);
                if self.m.subnet(sid).is_none() {
                    return Err(ModelError::new(
                        format!("{path}.ResourceArns[{i}]"),
                        format!(
                            "{arn:?} is no subnet or security group of this template (subnets and security groups are shared here)"
                        ),
                    ));
                }
                subnets.push(sid.to_string());
            }
            let principals = string_list(p.get("Principals"), &format!("{path}.Principals"))?;
            if let Some((i, bad)) = principals
                .iter()
                .enumerate()
                .find(|(_, a)| !is_account_id(a) || **a == self.m.account)
            {
                return Err(ModelError::new(
                    format!("{path}.Principals[{i}]"),
                    format!("{bad:?}: a participant is another account's 12-digit id"),
                ));
            }
            self.m.shares.push(ResourceShare {
                id,
                name,
                subnets,
                groups,
                principals,
            });
        }
        Ok(())
    }

    /// The account of a function or security group (`Metadata.Account`),
    /// `None` for the owner's.
    pub(super) fn resource_account(
        &self,
        res: &crate::template::Resource,
    ) -> Result<Option<String>> {
        let Some(a) = res.metadata.get("Account") else {
            return Ok(None);
        };
        let path = format!("Resources.{}.Metadata.Account", res.logical_id);
        let a = a
            .as_str()
            .filter(|a| is_account_id(a))
            .ok_or_else(|| ModelError::new(&path, "a 12-digit account id"))?;
        Ok((a != self.m.account).then(|| a.to_string()))
    }
}
