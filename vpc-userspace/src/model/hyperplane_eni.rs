//! Hyperplane ENIs: one per (subnet, security-group set, account), shared
//! by the functions that use it. [`Model::allocate_eni`] is the one place
//! that creates one (index, id, addresses): the template's (`Builder::eni_for`),
//! the Lambda API's and the lifecycle's (`lifecycle::create_eni`) and the
//! agent's when a group scales out (`lambda::eni_scaling::add_eni`).
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{fnv1a, Builder, Model, Subnet};
use crate::template::{ModelError, Result};

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
    /// Lambda lost it: the execution role of the last function using it
    /// was deleted first, so Lambda could not delete it. EC2's status
    /// `available`, no function, its address still allocated and its
    /// entries kept, until someone deletes it by hand
    /// ([`Model::delete_network_interface`]). No combination's ENI any more:
    /// a function with the same subnet and groups gets a new one.
    #[serde(default)]
    pub available: bool,
}

/// EC2's answer to a DeleteNetworkInterface it refuses: its error code and
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Ec2Error {}

/// EC2's message for deleting an interface in use: an attached one, and a
/// requester-managed one (a Lambda Hyperplane ENI, attached by the
/// service: `ela-attach`) alike.
pub fn in_use(id: &str) -> String {
    format!("Network interface '{id}' is currently in use.")
}

/// EC2's message for detaching a requester-managed interface (its
/// `ela-attach` attachment is the service's): `OperationNotPermitted`.
pub const REQUESTER_MANAGED_DETACH: &str =
    "You are not allowed to manage 'ela-attach' attachments.";

/// Why [`Model::allocate_eni`] could not create an ENI, in AWS's words
/// (the function's `StateReasonCode` / `LastUpdateStatusReasonCode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// The subnet is not in the model: `InvalidSubnet`.
    InvalidSubnet { subnet: String },
    /// No free IPv4 address in the subnet, or no free IPv6 address in a
    /// dual-stack one: `SubnetOutOfIPAddresses`.
    SubnetOutOfIPAddresses { subnet: String, cidr: String },
    /// No datapath index left (indices stay below `vpc_common::ENI_V4_ONLY`):
    /// `EniLimitExceeded`.
    EniLimitExceeded,
}

impl AllocError {
    /// AWS's reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidSubnet { .. } => "InvalidSubnet",
            Self::SubnetOutOfIPAddresses { .. } => "SubnetOutOfIPAddresses",
            Self::EniLimitExceeded => "EniLimitExceeded",
        }
    }
    /// Why, in words (`StateReason`).
    pub fn reason(&self) -> String {
        match self {
            Self::InvalidSubnet { subnet } => format!("The subnet {subnet} does not exist"),
            Self::SubnetOutOfIPAddresses { subnet, cidr } => format!(
                "Lambda was not able to create an ENI in subnet {subnet} ({cidr}): it has no free IP address"
            ),
            Self::EniLimitExceeded => format!(
                "Lambda was not able to create an ENI: no datapath ENI index left (at most {})",
                vpc_common::ENI_V4_ONLY - 1
            ),
        }
    }
}

impl std::fmt::Display for AllocError {
    /// `Code: reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.reason())
    }
}

impl std::error::Error for AllocError {}

/// The id of Hyperplane ENI `index` of (subnet, groups, account) in stack
/// `stack`: `eni-0` and 16 hex digits, as AWS's, of FNV-1a over all of
/// them, so two ENIs of one group differ and a stack's ids are stable.
pub fn eni_id(
    stack: &str,
    subnet: &str,
    groups: &[String],
    account: Option<&str>,
    index: u32,
) -> String {
    format!(
        "eni-0{:016x}",
        fnv1a(&format!(
            "{stack}/{subnet}/{}/{}/{index}",
            groups.join(","),
            account.unwrap_or_default()
        ))
    )
}

impl Model {
    /// Creates a Hyperplane ENI of (`subnet`, `groups`, `account`) and
    /// returns its index: the one allocator of the template, the Lambda
    /// API / lifecycle and ENI scaling.
    ///
    /// - index: the highest index in `enis` plus one (never one still in
    ///   use, whatever was removed before), below `vpc_common::ENI_V4_ONLY`
    ///   (the bit of a dual-stack ENI's IPv4-only view), else
    ///   `EniLimitExceeded`;
    /// - id: [`eni_id`] of the stack, subnet, groups, account and index;
    /// - addresses: the subnet's lowest free IPv4 address ([`Model::free_ip`])
    ///   and, in a dual-stack subnet, its lowest free IPv6 address
    ///   ([`Model::free_ip6`]); `SubnetOutOfIPAddresses` when either is
    ///   missing.
    ///
    /// The ENI starts with no functions (callers attach them) and `scaled`
    /// as given. Quotas (ENIs per VPC), shared-subnet and security-group
    /// checks stay with the callers. On error the model is unchanged.
    pub fn allocate_eni(
        &mut self,
        subnet: &str,
        groups: &[String],
        account: Option<&str>,
        scaled: bool,
    ) -> std::result::Result<u32, AllocError> {
        let sn = self
            .subnet(subnet)
            .ok_or_else(|| AllocError::InvalidSubnet {
                subnet: subnet.to_string(),
            })?;
        let no_room = || AllocError::SubnetOutOfIPAddresses {
            subnet: sn.id.clone(),
            cidr: sn.cidr.to_string(),
        };
        let ip = self.free_ip(subnet).ok_or_else(no_room)?;
        let ip6 = match sn.is_dual_stack() {
            true => Some(self.free_ip6(subnet).ok_or_else(no_room)?),
            false => None,
        };
        let index = self.enis.iter().map(|e| e.index).max().unwrap_or(0) + 1;
        if index >= vpc_common::ENI_V4_ONLY {
            return Err(AllocError::EniLimitExceeded);
        }
        let vpc = sn.vpc.clone();
        self.enis.push(HyperplaneEniSpec {
            index,
            id: eni_id(&self.stack_name, subnet, groups, account, index),
            subnet: subnet.to_string(),
            vpc,
            groups: groups.to_vec(),
            ip,
            functions: vec![],
            ip6,
            scaled,
            account: account.map(str::to_string),
            available: false,
        });
        Ok(index)
    }

    /// ENIs made before their subnet had an IPv6 block
    /// (AssociateSubnetCidrBlock) take an address of it, as those made in
    /// a dual-stack subnet do: a dual-stack function placed there then
    /// has IPv6 egress as if the block had been there from the start.
    pub fn address_enis_of_dual_stack_subnets(&mut self) {
        let bare: Vec<(u32, String)> = self
            .enis
            .iter()
            .filter(|e| e.ip6.is_none())
            .filter(|e| self.subnet(&e.subnet).is_some_and(Subnet::is_dual_stack))
            .map(|e| (e.index, e.subnet.clone()))
            .collect();
        for (index, subnet) in bare {
            let ip6 = self.free_ip6(&subnet);
            if let Some(e) = self.enis.iter_mut().find(|e| e.index == index) {
                e.ip6 = ip6;
            }
        }
    }

    /// DeleteNetworkInterface: a Hyperplane ENI Lambda lost (`available`)
    /// leaves the model (its entries and address go with the next
    /// reconcile); one in use is refused as EC2 refuses it
    /// (`InvalidParameterValue`, "Network interface '...' is currently in
    /// use.", what EC2 answers for a requester-managed interface a service
    /// holds), as is an instance's, an interface endpoint's or a
    /// template's interface (logical id); anything else is
    /// `InvalidNetworkInterfaceID.NotFound`.
    pub fn delete_network_interface(
        &mut self,
        id: &str,
    ) -> std::result::Result<HyperplaneEniSpec, Ec2Error> {
        if let Some(i) = self.enis.iter().position(|e| e.id == id) {
            if !self.enis[i].available {
                return Err(Ec2Error {
                    code: "InvalidParameterValue",
                    message: in_use(id),
                });
            }
            return Ok(self.enis.remove(i));
        }
        if self.hosts.iter().any(|h| h.id == id) {
            return Err(Ec2Error {
                code: "InvalidParameterValue",
                message: in_use(id),
            });
        }
        Err(Ec2Error {
            code: "InvalidNetworkInterfaceID.NotFound",
            message: format!("The networkInterface ID '{id}' does not exist"),
        })
    }

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
            .filter(|o| {
                o.subnet == e.subnet
                    && o.groups == e.groups
                    && o.account == e.account
                    && o.available == e.available
            })
            .collect();
        g.sort_by_key(|e| e.index);
        g
    }
}

impl Builder<'_> {
    /// The shared Hyperplane ENI of (subnet, groups), created on first use
    /// by [`Model::allocate_eni`].
    pub(super) fn eni_for(
        &mut self,
        subnet: &str,
        groups: &[String],
        function: &str,
        account: Option<&str>,
        path: &str,
    ) -> Result<u32> {
        if let Some(e) = self.m.enis.iter_mut().find(|e| {
            e.subnet == subnet
                && e.groups == groups
                && e.account.as_deref() == account
                && !e.available
        }) {
            e.functions.push(function.to_string());
            return Ok(e.index);
        }
        let index = self
            .m
            .allocate_eni(subnet, groups, account, false)
            .map_err(|e| ModelError::new(path, e.to_string()))?;
        let e = self.m.enis.last_mut().expect("just allocated");
        e.functions.push(function.to_string());
        // The model is the source of truth for addresses (every host, NAT
        // gateway and endpoint placed so far is in it); the builder's
        // per-subnet sets only record the ENI's so that nothing placed
        // later can take them again.
        let (ip, ip6) = (e.ip, e.ip6);
        let fresh = self.used.entry(subnet.to_string()).or_default().insert(ip);
        debug_assert!(fresh, "{ip} was taken but not in the model");
        if let Some(a) = ip6 {
            let fresh = self.used6.entry(subnet.to_string()).or_default().insert(a);
            debug_assert!(fresh, "{a} was taken but not in the model");
        }
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

#[cfg(test)]
mod allocator_tests {
    use super::{eni_id, AllocError};
    use crate::model::tests::{build_ok, dual, with};
    use vpc_common::ENI_V4_ONLY;

    fn sg() -> Vec<String> {
        vec!["Sg".to_string()]
    }

    #[test]
    fn a_template_eni_and_a_scaled_eni_have_ids_of_one_rule_and_differ() {
        let mut m = build_ok(&with(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        let first = m.enis[0].clone();
        assert_eq!(first.id, eni_id("s", "A", &sg(), None, first.index));
        let i = m.allocate_eni("A", &sg(), None, true).unwrap();
        let second = m.enis.iter().find(|e| e.index == i).unwrap().clone();
        assert!(second.scaled && !first.scaled);
        assert_eq!(second.id, eni_id("s", "A", &sg(), None, i));
        assert_ne!(second.id, first.id);
        assert_eq!(m.eni_group(first.index).len(), 2, "same group");
        // A participant's ENI of the same (subnet, groups) has its own id.
        let p = m
            .allocate_eni("A", &sg(), Some("210987654321"), false)
            .unwrap();
        let pid = &m.enis.iter().find(|e| e.index == p).unwrap().id;
        assert_eq!(*pid, eni_id("s", "A", &sg(), Some("210987654321"), p));
        let mut ids: Vec<&str> = m.enis.iter().map(|e| e.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3);
        assert!(m
            .enis
            .iter()
            .all(|e| e.id.starts_with("eni-0") && e.id.len() == 21));
    }

    #[test]
    fn indices_never_collide_after_removing_and_adding() {
        let mut m = build_ok(&with(
            r#"
  F1: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
  F2: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref B], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        assert_eq!(m.enis.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
        // The first ENI goes (its function moved): `len + 1` would be 2 again.
        m.enis.retain(|e| e.index != 1);
        let i = m.allocate_eni("A", &sg(), None, false).unwrap();
        assert_eq!(i, 3);
        let j = m.allocate_eni("B", &sg(), None, true).unwrap();
        assert_eq!(j, 4);
        let mut idx: Vec<u32> = m.enis.iter().map(|e| e.index).collect();
        idx.sort();
        idx.dedup();
        assert_eq!(idx.len(), m.enis.len());
        // Addresses too: each ENI its own.
        let mut ips: Vec<_> = m.enis.iter().map(|e| e.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), m.enis.len());
    }

    #[test]
    fn indices_stay_below_the_ipv4_only_view_bit() {
        let mut m = build_ok(&with(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        m.enis[0].index = ENI_V4_ONLY - 2;
        assert_eq!(m.allocate_eni("A", &sg(), None, true), Ok(ENI_V4_ONLY - 1));
        let before = m.clone();
        let e = m.allocate_eni("A", &sg(), None, true).unwrap_err();
        assert_eq!(e, AllocError::EniLimitExceeded);
        assert_eq!(e.code(), "EniLimitExceeded");
        assert_eq!(m, before, "nothing changed");
    }

    #[test]
    fn an_eni_in_a_dual_stack_subnet_gets_an_ipv6_address() {
        let mut m = build_ok(&dual(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        let first = m.enis[0].clone();
        assert!(first.ip6.is_some());
        let i = m.allocate_eni("A", &sg(), None, true).unwrap();
        let e = m.enis.iter().find(|e| e.index == i).unwrap().clone();
        let net = m.subnet("A").unwrap().ipv6_cidr.unwrap();
        assert!(net.contains(&e.ip6.unwrap()));
        assert_ne!(e.ip6, first.ip6);
        // An IPv4-only subnet: none.
        let i = m.allocate_eni("C", &sg(), None, false).unwrap();
        let e = m.enis.iter().find(|e| e.index == i).unwrap();
        assert_eq!(e.ip6, None);
        assert_eq!(e.ip.to_string(), "10.0.3.4");
    }

    #[test]
    fn enis_of_a_subnet_that_gained_an_ipv6_block_take_an_address_of_it() {
        let mut m = build_ok(&dual(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
  G: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref C], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        // As made before A had its block.
        let taken = m.enis[0].ip6.take();
        m.address_enis_of_dual_stack_subnets();
        assert_eq!(m.enis[0].ip6, taken, "the block's first free address");
        assert_eq!(m.enis[1].ip6, None, "C has no block");
    }

    #[test]
    fn a_full_subnet_gives_subnet_out_of_ip_addresses() {
        // A /28: 16 - 5 reserved = 11 addresses; an instance takes one.
        let mut m = build_ok(&with(
            r#"
  T: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/28}}
  H: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref T}}
"#,
        ));
        for _ in 0..10 {
            m.allocate_eni("T", &sg(), None, false).unwrap();
        }
        let before = m.clone();
        let e = m.allocate_eni("T", &sg(), None, false).unwrap_err();
        assert_eq!(e.code(), "SubnetOutOfIPAddresses");
        assert!(e.to_string().starts_with("SubnetOutOfIPAddresses: "), "{e}");
        assert!(e.reason().contains("10.0.9.0/28"), "{e}");
        assert_eq!(m, before, "nothing changed");
        assert_eq!(
            m.allocate_eni("Nope", &sg(), None, false)
                .unwrap_err()
                .code(),
            "InvalidSubnet"
        );
    }

    #[test]
    fn a_template_eni_in_a_full_subnet_is_refused_at_its_vpc_config() {
        let mut hosts = String::new();
        for i in 0..11 {
            hosts += &format!(
                "  H{i:02}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref T}}}}\n"
            );
        }
        let e = crate::model::tests::build_err(&with(&format!(
            "  T: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.9.0/28}}}}\n{hosts}  F: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref T], SecurityGroupIds: [!Ref Sg]}}}}}}\n"
        )));
        assert_eq!(e.path, "Resources.F.Properties.VpcConfig.SubnetIds");
        assert!(e.message.starts_with("SubnetOutOfIPAddresses"), "{e}");
    }
}
