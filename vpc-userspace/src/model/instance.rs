//! Hosts: `AWS::EC2::Instance` and standalone `AWS::EC2::NetworkInterface`
//! (one pass for both: explicit addresses are taken before automatic ones),
//! each an interface with its addresses, groups and source/dest check.
use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{bool_field, int_field, res_path, yes, Builder, Subnet};
use crate::template::{ModelError, Result};

pub const INSTANCE: &str = "AWS::EC2::Instance";
pub const NETWORK_INTERFACE: &str = "AWS::EC2::NetworkInterface";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum HostKind {
    Instance,
    NetworkInterface,
    /// An interface endpoint's ENI (`VpcEndpoint::enis`).
    VpcEndpoint,
}

/// An EC2 instance or a standalone network interface: one namespace each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub id: String,
    pub kind: HostKind,
    pub subnet: String,
    pub ip: Ipv4Addr,
    pub groups: Vec<String>,
    /// Its IPv6 address, in a dual-stack subnet.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// EC2's source/destination check (`SourceDestCheck`, on by default):
    /// off, the interface may send from and receive for addresses not its
    /// own, as a NAT instance or an appliance that routes must.
    #[serde(default = "yes")]
    pub source_dest_check: bool,
    /// Secondary private IPv4 addresses (`PrivateIpAddresses` with
    /// `Primary: false`, `SecondaryPrivateIpAddressCount`), in the order
    /// they were assigned: on the same interface, groups and ACLs.
    #[serde(default)]
    pub secondary: Vec<Ipv4Addr>,
    /// A stopped instance (StopInstances): it keeps its interface and
    /// private addresses, its namespace's link is down and its processes
    /// are gone, and it has no public address of its launch.
    #[serde(default)]
    pub stopped: bool,
}

/// The EC2 API's metadata key on its resources; `Stopped: true` under it
/// marks a stopped instance.
pub const API_METADATA: &str = "Vpc::Ec2Api";

/// The most private IPv4 addresses one interface holds (primary
/// included), as a larger instance type's interface (`c5.4xlarge`: 30).
pub const MAX_PRIVATE_IPS: usize = 30;

impl Host {
    /// Its private IPv4 addresses, the primary first.
    pub fn ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.ip).chain(self.secondary.iter().copied())
    }

    /// `ip` is one of its addresses (either family).
    pub fn owns(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => self.ips().any(|x| x == a),
            std::net::IpAddr::V6(a) => self.ip6 == Some(a),
        }
    }
}

/// What an interface asks for in secondary IPv4 addresses.
struct SecondaryRequest {
    /// Explicit ones, each with the path of the field that gave it.
    explicit: Vec<(Ipv4Addr, String)>,
    /// How many more to pick (`SecondaryPrivateIpAddressCount`).
    count: usize,
    /// The primary `PrivateIpAddresses` names (`Primary: true`).
    primary: Option<Ipv4Addr>,
}

/// An interface's IPv6 address as the template asks for it.
enum V6Request {
    None,
    /// The address and the path of the field that gave it.
    Explicit(Ipv6Addr, String),
    Auto,
}

impl Builder<'_> {
    /// What an interface asks for in IPv6: `Ipv6Addresses` (one, in this
    /// slice), `Ipv6AddressCount` (0 or 1), or nothing, which in a subnet
    /// with `AssignIpv6AddressOnCreation` means one automatic address.
    fn v6_request(iface: &Value, subnet: &Subnet, prefix: &str) -> Result<V6Request> {
        let addrs_path = format!("{prefix}.Ipv6Addresses");
        let count_path = format!("{prefix}.Ipv6AddressCount");
        let addrs = match iface.get("Ipv6Addresses") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err(ModelError::new(
                    addrs_path,
                    "must be a list of {Ipv6Address: ...}",
                ))
            }
        };
        let count = int_field(
            iface.get("Ipv6AddressCount").unwrap_or(&Value::Null),
            &count_path,
        )?;
        if addrs.is_some() && count.is_some() {
            return Err(ModelError::new(
                count_path,
                "InvalidParameterCombination: Ipv6Addresses and Ipv6AddressCount are mutually exclusive",
            ));
        }
        let asked = addrs.is_some_and(|a| !a.is_empty()) || count.is_some_and(|n| n > 0);
        if asked && !subnet.is_dual_stack() {
            let path = if addrs.is_some() {
                addrs_path
            } else {
                count_path
            };
            return Err(ModelError::new(
                path,
                format!("subnet {} has no IPv6 block (Ipv6CidrBlock)", subnet.id),
            ));
        }
        if let Some(a) = addrs {
            if a.len() > 1 {
                return Err(ModelError::new(
                    addrs_path,
                    "one IPv6 address per interface in this slice",
                ));
            }
            let Some(first) = a.first() else {
                return Ok(V6Request::None);
            };
            let field = format!("{addrs_path}[0].Ipv6Address");
            let s = first
                .get("Ipv6Address")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::new(&field, "is required (an IPv6 address)"))?;
            let ip: Ipv6Addr = s
                .parse()
                .map_err(|_| ModelError::new(&field, format!("{s:?} is not an IPv6 address")))?;
            return Ok(V6Request::Explicit(ip, field));
        }
        match count {
            Some(n) if !(0..=1).contains(&n) => Err(ModelError::new(
                count_path,
                format!("{n}: one IPv6 address per interface in this slice (0 or 1)"),
            )),
            Some(1) => Ok(V6Request::Auto),
            Some(_) => Ok(V6Request::None),
            None if subnet.assign_ipv6_on_creation => Ok(V6Request::Auto),
            None => Ok(V6Request::None),
        }
    }

    /// `PrivateIpAddresses` (`[{PrivateIpAddress, Primary}]`) and
    /// `SecondaryPrivateIpAddressCount` of an interface, as CloudFormation
    /// takes them (an `AWS::EC2::NetworkInterface`, an instance's
    /// `NetworkInterfaces[0]`).
    fn secondary_request(iface: &Value, prefix: &str) -> Result<SecondaryRequest> {
        let list_path = format!("{prefix}.PrivateIpAddresses");
        let count_path = format!("{prefix}.SecondaryPrivateIpAddressCount");
        let mut out = SecondaryRequest {
            explicit: vec![],
            count: 0,
            primary: None,
        };
        match iface.get("PrivateIpAddresses") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, a) in list.iter().enumerate() {
                    let path = format!("{list_path}[{i}]");
                    let ip =
                        Self::parse_ip(a, prefix, "PrivateIpAddress", &path)?.ok_or_else(|| {
                            ModelError::new(format!("{path}.PrivateIpAddress"), "is required")
                        })?;
                    let primary = match a.get("Primary") {
                        None | Some(Value::Null) => false,
                        Some(_) => bool_field(a, prefix, "Primary")?,
                    };
                    if primary {
                        if out.primary.is_some() {
                            return Err(ModelError::new(path, "one address may be Primary"));
                        }
                        out.primary = Some(ip);
                    } else {
                        out.explicit.push((ip, format!("{path}.PrivateIpAddress")));
                    }
                }
            }
            Some(_) => {
                return Err(ModelError::new(
                    list_path,
                    "must be a list of {PrivateIpAddress: ..., Primary: ...}",
                ))
            }
        }
        if let Some(n) = int_field(
            iface
                .get("SecondaryPrivateIpAddressCount")
                .unwrap_or(&Value::Null),
            &count_path,
        )? {
            if n < 0 {
                return Err(ModelError::new(
                    count_path,
                    format!("{n}: must be 0 or more"),
                ));
            }
            out.count = n as usize;
        }
        if 1 + out.explicit.len() + out.count > MAX_PRIVATE_IPS {
            return Err(ModelError::new(
                list_path,
                format!("PrivateIpAddressLimitExceeded: at most {MAX_PRIVATE_IPS} private IPv4 addresses per interface"),
            ));
        }
        Ok(out)
    }

    pub(super) fn hosts(&mut self) -> Result<()> {
        // Explicit addresses first, so automatic ones never take them.
        let mut pending = vec![];
        let mut source_dest_check: HashMap<String, bool> = HashMap::new();
        let mut stopped = std::collections::HashSet::new();
        for (kind, hk) in [
            (INSTANCE, HostKind::Instance),
            (NETWORK_INTERFACE, HostKind::NetworkInterface),
        ] {
            for res in self.of_type(kind) {
                let id = res.logical_id.clone();
                let p = self.props(res)?;
                // An instance may put its interface in NetworkInterfaces[0].
                let (iface, prefix, sg_field) = match (hk, p.get("NetworkInterfaces")) {
                    (HostKind::Instance, Some(Value::Array(list))) => {
                        if list.len() != 1 {
                            return Err(ModelError::new(
                                format!("{}.NetworkInterfaces", res_path(&id)),
                                "exactly one network interface is supported",
                            ));
                        }
                        (
                            list[0].clone(),
                            format!("{}.NetworkInterfaces[0]", res_path(&id)),
                            "GroupSet",
                        )
                    }
                    (HostKind::Instance, _) => (p.clone(), res_path(&id), "SecurityGroupIds"),
                    (HostKind::NetworkInterface | HostKind::VpcEndpoint, _) => {
                        (p.clone(), res_path(&id), "GroupSet")
                    }
                };
                if hk == HostKind::Instance && p.get("SecurityGroups").is_some() {
                    return Err(ModelError::new(
                        format!("{}.SecurityGroups", res_path(&id)),
                        "group names are EC2-Classic/default-VPC only; use SecurityGroupIds",
                    ));
                }
                let subnet_id = iface
                    .get("SubnetId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ModelError::new(
                            format!("{prefix}.SubnetId"),
                            "is required (this project has no default VPC)",
                        )
                    })?;
                if self.ipv6_only.contains_key(subnet_id) {
                    return Err(ModelError::new(
                        format!("{prefix}.SubnetId"),
                        format!("{subnet_id} is IPv6-only (Ipv6Native): instances and interfaces need an IPv4 address in this slice"),
                    ));
                }
                let subnet = self.m.subnet(subnet_id).cloned().ok_or_else(|| {
                    ModelError::new(format!("{prefix}.SubnetId"), format!("InvalidSubnet: {subnet_id:?} is not an AWS::EC2::Subnet of this template"))
                })?;
                let ip_field = "PrivateIpAddress";
                let second = Self::secondary_request(&iface, &prefix)?;
                let want = Self::parse_ip(&iface, &id, ip_field, &prefix)?;
                if let (Some(a), Some(b)) = (want, second.primary) {
                    if a != b {
                        return Err(ModelError::new(
                            format!("{prefix}.PrivateIpAddresses"),
                            format!("InvalidParameterCombination: the primary address {b} is not PrivateIpAddress {a}"),
                        ));
                    }
                }
                let want = want.or(second.primary);
                // The group checks report paths under the resource; point them at the interface.
                let mut groups = self
                    .group_list(&iface, &id, sg_field, &subnet.vpc)
                    .map_err(|mut e| {
                        e.path = e.path.replace(
                            &format!("{}.{sg_field}", res_path(&id)),
                            &format!("{prefix}.{sg_field}"),
                        );
                        e
                    })?;
                if groups.is_empty() {
                    groups.push(
                        self.m
                            .vpc(&subnet.vpc)
                            .expect("checked")
                            .default_group
                            .clone(),
                    );
                }
                self.check_rules_x_groups(&groups, &format!("{prefix}.{sg_field}"))?;
                let v6 = Self::v6_request(&iface, &subnet, &prefix)?;
                // On the instance (also with NetworkInterfaces) or the interface.
                let check = match p.get("SourceDestCheck") {
                    None | Some(Value::Null) => true,
                    Some(_) => bool_field(&p, &id, "SourceDestCheck")?,
                };
                source_dest_check.insert(id.clone(), check);
                if hk == HostKind::Instance
                    && res
                        .metadata
                        .get(API_METADATA)
                        .and_then(|m| m.get("Stopped"))
                        == Some(&Value::Bool(true))
                {
                    stopped.insert(id.clone());
                }
                pending.push((
                    id,
                    hk,
                    subnet,
                    want,
                    groups,
                    format!("{prefix}.{ip_field}"),
                    v6,
                    second,
                ));
            }
        }
        // IPv6 likewise: explicit addresses first, in resource order.
        let mut ip6s: HashMap<String, Ipv6Addr> = HashMap::new();
        for (id, _, subnet, _, _, _, v6, _) in &pending {
            if let V6Request::Explicit(ip, path) = v6 {
                ip6s.insert(id.clone(), self.take_ip6(subnet, Some(*ip), path)?);
            }
        }
        for (id, _, subnet, _, _, path, v6, _) in &pending {
            if let V6Request::Auto = v6 {
                ip6s.insert(id.clone(), self.take_kept_ip6(id, subnet, path)?);
            }
        }
        // Explicit secondary addresses are as explicit as primary ones.
        let mut secondary: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for (id, _, subnet, _, _, _, _, second) in &pending {
            for (ip, path) in &second.explicit {
                let ip = self.take_ip(subnet, Some(*ip), path)?;
                secondary.entry(id.clone()).or_default().push(ip);
            }
        }
        pending.sort_by_key(|p| p.3.is_none());
        let mut counted = vec![];
        for (id, kind, subnet, want, groups, path, _, second) in pending {
            let ip = match want {
                Some(_) => self.take_ip(&subnet, want, &path)?,
                None => self.take_kept_ip(&id, &subnet, &path)?,
            };
            if second.count > 0 {
                counted.push((id.clone(), subnet.clone(), second.count, path.clone()));
            }
            let ip6 = ip6s.get(&id).copied();
            match kind {
                HostKind::Instance => {
                    self.attr(&id, "PrivateIp", ip.to_string());
                    self.attr(&id, "AvailabilityZone", subnet.az.clone());
                    self.attr(
                        &id,
                        "PrivateDnsName",
                        format!("ip-{}.ec2.internal", ip.to_string().replace('.', "-")),
                    );
                }
                HostKind::NetworkInterface | HostKind::VpcEndpoint => {
                    self.attr(&id, "PrimaryPrivateIpAddress", ip.to_string());
                    self.attr(&id, "Id", id.clone());
                    if let Some(ip6) = ip6 {
                        self.attr(&id, "PrimaryIpv6Address", ip6.to_string());
                    }
                }
            }
            self.m.hosts.push(Host {
                source_dest_check: source_dest_check[&id],
                secondary: secondary.remove(&id).unwrap_or_default(),
                stopped: stopped.contains(&id),
                id,
                kind,
                subnet: subnet.id.clone(),
                ip,
                groups,
                ip6,
            });
        }
        // Counted secondary addresses last: those it had (an update keeps
        // them), then the lowest free ones.
        for (id, subnet, n, path) in counted {
            let mut had: Vec<Ipv4Addr> = self
                .prior
                .as_ref()
                .and_then(|p| p.hosts.iter().find(|h| h.id == id && h.subnet == subnet.id))
                .map(|h| h.secondary.clone())
                .unwrap_or_default();
            had.reverse();
            for _ in 0..n {
                let kept = std::iter::from_fn(|| had.pop())
                    .find_map(|a| self.take_ip(&subnet, Some(a), &path).ok());
                let ip = match kept {
                    Some(a) => a,
                    None => self.take_ip(&subnet, None, &path)?,
                };
                let h = self
                    .m
                    .hosts
                    .iter_mut()
                    .find(|h| h.id == id)
                    .expect("pushed");
                h.secondary.push(ip);
            }
        }
        self.m.hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{build_ok, with};
    use crate::model::{Peer, Rule};

    #[test]
    fn hosts_get_addresses_and_the_default_group() {
        let m = build_ok(&with(
            r#"
  I1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  I2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.4}}
  N1: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref B, GroupSet: [!Ref Sg]}}
  I3:
    Type: AWS::EC2::Instance
    Properties:
      NetworkInterfaces: [{DeviceIndex: "0", SubnetId: !Ref B, GroupSet: [!Ref Sg], PrivateIpAddress: 10.0.2.50}]
"#,
        ));
        let ip = |id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().ip.to_string();
        assert_eq!(
            ip("I2"),
            "10.0.1.4",
            "explicit addresses are honoured first"
        );
        assert_eq!(ip("I1"), "10.0.1.5");
        assert_eq!(ip("I3"), "10.0.2.50");
        assert_eq!(ip("N1"), "10.0.2.4");
        let i1 = m.hosts.iter().find(|h| h.id == "I1").unwrap();
        assert_eq!(i1.groups, vec!["Vpc.DefaultSecurityGroup"]);
        let dflt = m.group("Vpc.DefaultSecurityGroup").unwrap();
        assert_eq!(
            dflt.ingress,
            vec![Rule::allow_all(Peer::Group(
                "Vpc.DefaultSecurityGroup".into()
            ))]
        );
        assert!(m
            .members("Vpc.DefaultSecurityGroup")
            .iter()
            .any(|a| a.to_string() == "10.0.1.5"));
    }

    /// Secondary addresses: explicit ones taken first (before any
    /// automatic primary), counted ones after, the lowest free; each a
    /// member address of the interface's groups; too many refused.
    #[test]
    fn interfaces_take_secondary_addresses() {
        let m = build_ok(&with(
            r#"
  I1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A}}
  N1:
    Type: AWS::EC2::NetworkInterface
    Properties:
      SubnetId: !Ref A
      GroupSet: [!Ref Sg]
      PrivateIpAddresses: [{PrivateIpAddress: 10.0.1.9, Primary: true}, {PrivateIpAddress: 10.0.1.4, Primary: false}]
      SecondaryPrivateIpAddressCount: 2
"#,
        ));
        let h = |id: &str| m.hosts.iter().find(|h| h.id == id).unwrap().clone();
        let n1 = h("N1");
        assert_eq!(n1.ip.to_string(), "10.0.1.9", "the Primary entry");
        let sec: Vec<String> = n1.secondary.iter().map(|a| a.to_string()).collect();
        assert_eq!(sec, ["10.0.1.4", "10.0.1.6", "10.0.1.7"]);
        assert_eq!(
            h("I1").ip.to_string(),
            "10.0.1.5",
            "explicit secondaries first"
        );
        let members = m.members("Sg");
        assert!(
            members.iter().any(|a| a.to_string() == "10.0.1.6"),
            "{members:?}"
        );
        assert!(n1.owns("10.0.1.7".parse().unwrap()));
        let e = crate::model::tests::build_err(&with(
            "  N1: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref A, SecondaryPrivateIpAddressCount: 30}}\n",
        ));
        assert!(
            e.to_string().contains("PrivateIpAddressLimitExceeded"),
            "{e}"
        );
    }
}
