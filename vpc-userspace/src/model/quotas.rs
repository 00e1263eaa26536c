//! AWS quotas this model enforces: the adjustable ones ([`Quotas`]) and
//! the security-group limits they default to.
use serde::{Deserialize, Serialize};

use super::network_acl;

/// AWS quotas checked at apply time.
pub const MAX_RULES_PER_DIRECTION: usize = 60;
/// AWS: (groups on an interface) x (rules per group) may not exceed this.
pub const MAX_RULES_X_GROUPS: usize = 1000;

/// Adjustable AWS quotas (Service Quotas), with AWS's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Inbound or outbound rules per security group, per address family
    /// (AWS: 60, adjustable; groups x rules per interface stay <= 1,000).
    pub rules_per_group: usize,
    /// Network ACL rules per direction per family (AWS: 20, up to 40).
    pub acl_rules: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            rules_per_group: MAX_RULES_PER_DIRECTION,
            acl_rules: network_acl::MAX_ACL_RULES_PER_DIRECTION,
        }
    }
}

impl Quotas {
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=MAX_RULES_X_GROUPS).contains(&self.rules_per_group) {
            return Err(format!("rules per security group: 1-{MAX_RULES_X_GROUPS}"));
        }
        if !(1..=40).contains(&self.acl_rules) {
            return Err("network ACL rules per direction: 1-40".into());
        }
        Ok(())
    }
}
