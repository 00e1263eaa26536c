//! Managed prefix lists: `AWS::EC2::PrefixList`, a named set of CIDRs that
//! security-group rules and routes may refer to.
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{int_field, required_str, res_path, Builder, Model};
use crate::template::{ModelError, Result};

pub const PREFIX_LIST: &str = "AWS::EC2::PrefixList";

/// `AWS::EC2::PrefixList`: a named set of CIDRs of one family.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrefixList {
    pub id: String,
    pub ipv6: bool,
    pub max_entries: usize,
    pub cidrs: Vec<IpNet>,
}

impl Model {
    /// The CIDRs a rule peer stands for (`None` for a group: its members).
    pub fn prefix_list(&self, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.id == id)
    }
}

impl Builder<'_> {
    pub(super) fn prefix_lists(&mut self) -> Result<()> {
        for res in self.of_type(PREFIX_LIST) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            required_str(&p, &id, "PrefixListName")?;
            let ipv6 = match required_str(&p, &id, "AddressFamily")? {
                "IPv4" => false,
                "IPv6" => true,
                other => {
                    return Err(ModelError::new(
                        format!("{path}.AddressFamily"),
                        format!("{other:?}: IPv4 or IPv6"),
                    ))
                }
            };
            let max_entries = int_field(
                p.get("MaxEntries").unwrap_or(&Value::Null),
                &format!("{path}.MaxEntries"),
            )?
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ModelError::new(format!("{path}.MaxEntries"), "is required (1 or more)")
            })? as usize;
            let mut cidrs = vec![];
            for (i, e) in p
                .get("Entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = format!("{path}.Entries[{i}].Cidr");
                let c = e
                    .get("Cidr")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ModelError::new(&field, "is required"))?;
                let net: IpNet = c
                    .parse()
                    .map_err(|_| ModelError::new(&field, format!("{c:?} is not a CIDR block")))?;
                if matches!(net, IpNet::V6(_)) != ipv6 {
                    return Err(ModelError::new(
                        &field,
                        format!("{c} is not of the list's AddressFamily"),
                    ));
                }
                cidrs.push(net.trunc());
            }
            if cidrs.len() > max_entries {
                return Err(ModelError::new(
                    format!("{path}.Entries"),
                    format!("{} entries exceed MaxEntries {max_entries}", cidrs.len()),
                ));
            }
            self.attr(&id, "PrefixListId", id.clone());
            self.m.prefix_lists.push(PrefixList {
                id,
                ipv6,
                max_entries,
                cidrs,
            });
        }
        Ok(())
    }
}
