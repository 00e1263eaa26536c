//! Hyperplane ENIs: one per (subnet, security-group set, account), shared
//! by the functions that use it. `Builder::eni_for` is the model's one place
//! that allocates one (index, id, addresses); at run time
//! `lifecycle::create_eni` and `deploy::add_eni` create more on their own.
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{fnv1a, Builder, Model};
use crate::template::Result;

/// One Hyperplane ENI per (subnet, security-group set), shared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HyperplaneEniSpec {
    pub index: u32,
    pub id: String,
    pub subnet: String,
    pub vpc: String,
    pub groups: Vec<String>,
    pub ip: Ipv4Addr,
    pub functions: Vec<String>,
    /// Its IPv6 address, in a dual-stack subnet.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// Created by the agent when the group's ENIs filled up (not from the
    /// template); returned once drained.
    #[serde(default)]
    pub scaled: bool,
    /// The account it belongs to (`None`: the owner): a participant's
    /// function in a shared subnet has its own ENI, as at AWS ("per
    /// (subnet, security-group set) in an account").
    #[serde(default)]
    pub account: Option<String>,
}

impl Model {
    /// The Hyperplane ENIs of the (subnet, security-group set) of ENI
    /// `index`, in creation order: the group a function's connections are
    /// placed on, the template's ENI first.
    pub fn eni_group(&self, index: u32) -> Vec<&HyperplaneEniSpec> {
        let Some(e) = self.enis.iter().find(|e| e.index == index) else {
            return vec![];
        };
        let mut g: Vec<_> = self
            .enis
            .iter()
            .filter(|o| o.subnet == e.subnet && o.groups == e.groups && o.account == e.account)
            .collect();
        g.sort_by_key(|e| e.index);
        g
    }
}

impl Builder<'_> {
    /// The shared Hyperplane ENI of (subnet, groups), created on first use.
    pub(super) fn eni_for(
        &mut self,
        subnet: &str,
        groups: &[String],
        function: &str,
        account: Option<&str>,
        path: &str,
    ) -> Result<u32> {
        if let Some(e) =
            self.m.enis.iter_mut().find(|e| {
                e.subnet == subnet && e.groups == groups && e.account.as_deref() == account
            })
        {
            e.functions.push(function.to_string());
            return Ok(e.index);
        }
        let sn = self.m.subnet(subnet).expect("validated").clone();
        let ip = self.take_ip(&sn, None, path)?;
        // In a dual-stack subnet the ENI has an IPv6 address of it too.
        let ip6 = match sn.is_dual_stack() {
            true => Some(self.take_ip6(&sn, None, path)?),
            false => None,
        };
        let index = self.m.enis.len() as u32 + 1;
        let id = format!(
            "eni-0{:016x}",
            fnv1a(&format!(
                "{}/{subnet}/{}{}",
                self.m.stack_name,
                groups.join(","),
                account.map(|a| format!("/{a}")).unwrap_or_default()
            ))
        );
        self.m.enis.push(HyperplaneEniSpec {
            index,
            id,
            subnet: subnet.to_string(),
            vpc: sn.vpc.clone(),
            groups: groups.to_vec(),
            ip,
            functions: vec![function.to_string()],
            ip6,
            scaled: false,
            account: account.map(str::to_string),
        });
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{build_ok, with};

    #[test]
    fn functions_with_the_same_subnet_and_groups_share_an_eni() {
        let m = build_ok(&with(
            r#"
  F1: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
  F2: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg, !Ref Sg]}}}
  F3: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref B], SecurityGroupIds: [!Ref Sg]}}}
  F4: {Type: AWS::Lambda::Function, Properties: {FunctionName: plain}}
"#,
        ));
        assert_eq!(m.enis.len(), 2);
        assert_eq!(m.enis[0].functions, vec!["s-F1", "s-F2"]);
        assert_eq!(m.function("F1").unwrap().eni, m.function("F2").unwrap().eni);
        assert_ne!(m.function("F1").unwrap().eni, m.function("F3").unwrap().eni);
        assert_eq!(m.function("plain").unwrap().eni, None);
        // ENI addresses come from the subnet, after AWS's four reserved ones.
        assert_eq!(m.enis[0].ip.to_string(), "10.0.1.4");
        assert!(m
            .enis
            .iter()
            .all(|e| e.id.starts_with("eni-") && e.id.len() == 21));
    }
}
