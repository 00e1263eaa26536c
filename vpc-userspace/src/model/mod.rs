//! The AWS model built from a template: VPCs, subnets, security groups,
//! hosts (instances and network interfaces), Lambda functions and the
//! Hyperplane ENIs they need. Validation happens here, before anything is
//! applied; every error names the resource and the field.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{self, ModelError, Resolver, Result, Template};

/// The Lambda service VPC's range, where execution environments live.
/// AWS does not document its own; 198.19.0.0/16 is from the benchmarking
/// block (RFC 2544), so it does not collide with customer VPC ranges.
pub const LAMBDA_SERVICE_CIDR: &str = "198.19.0.0/16";
/// The Lambda-side gateway execution environments route through.
pub const LAMBDA_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The Lambda service VPC's IPv6 range: the IPv6 benchmarking block
/// (RFC 5180), as 198.19.0.0/16 is IPv4's. A VPC's IPv6 block may not
/// overlap it.
pub const LAMBDA_SERVICE_CIDR6: &str = "2001:2::/48";
/// Where `AmazonProvidedIpv6CidrBlock: true` takes its /56 blocks: a slice of
/// the documentation range (RFC 3849), global-unicast in shape like AWS's
/// own blocks and never routed anywhere.
pub const AMAZON_IPV6_POOL: &str = "2001:db8:ec2::/48";
/// The VPC router's IPv6 address on every link (subnets and the Lambda
/// side): link-local, so it takes no address of the subnet.
pub const VPC_ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
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
pub const MAX_VPC_CONFIG_SUBNETS: usize = 16;
pub const MAX_VPC_CONFIG_GROUPS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub stack_name: String,
    pub region: String,
    pub account: String,
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub groups: Vec<SecurityGroup>,
    pub hosts: Vec<Host>,
    pub functions: Vec<Function>,
    pub enis: Vec<HyperplaneEniSpec>,
    pub acls: Vec<NetworkAcl>,
    pub prefix_lists: Vec<PrefixList>,
    /// Route tables, each VPC's main table first.
    #[serde(default)]
    pub route_tables: Vec<RouteTable>,
    #[serde(default)]
    pub internet_gateways: Vec<InternetGateway>,
    #[serde(default)]
    pub egress_only_internet_gateways: Vec<EgressOnlyInternetGateway>,
    /// The internet's test hosts (`Metadata: Vpc::Internet`).
    #[serde(default)]
    pub internet_hosts: Vec<InternetHost>,
    /// Public IPv4 addresses of instances and interfaces.
    #[serde(default)]
    pub public_ips: Vec<PublicIp>,
    #[serde(default)]
    pub nat_gateways: Vec<NatGateway>,
    /// Resource types this project does not model: (logical id, type).
    pub skipped: Vec<(String, String)>,
    /// Subnets shared with participant accounts (`AWS::RAM::ResourceShare`).
    #[serde(default)]
    pub shares: Vec<ResourceShare>,
    /// `AWS::EC2::FlowLog` resources.
    #[serde(default)]
    pub flow_logs: Vec<FlowLog>,
    /// `AWS::EC2::VPCEndpoint` resources.
    #[serde(default)]
    pub vpc_endpoints: Vec<VpcEndpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vpc {
    pub id: String,
    /// 1-based index used in the datapath.
    pub index: u32,
    pub cidr: Ipv4Net,
    pub default_group: String,
    /// Its IPv6 block (`AWS::EC2::VPCCidrBlock`), a /56.
    #[serde(default)]
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `EnableDnsSupport` (default true): the resolver at base + 2.
    #[serde(default = "yes")]
    pub enable_dns_support: bool,
}

fn yes() -> bool {
    true
}

impl Vpc {
    /// The Amazon-provided DNS resolver's address: base + 2, as at AWS.
    pub fn resolver(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 2)
    }

    /// The resolver's node (namespace) id, when the VPC has one.
    pub fn resolver_id(&self) -> Option<String> {
        self.enable_dns_support
            .then(|| format!("Resolver-{}", self.id))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub az: String,
    /// Its network ACL: the VPC's default one until associated.
    pub acl: String,
    /// Its IPv6 block (a /64 of the VPC's /56): the subnet is dual-stack.
    #[serde(default)]
    pub ipv6_cidr: Option<Ipv6Net>,
    /// `AssignIpv6AddressOnCreation`: new interfaces get an IPv6 address.
    #[serde(default)]
    pub assign_ipv6_on_creation: bool,
    /// Its route table: the VPC's main table until associated.
    #[serde(default)]
    pub route_table: String,
}

impl Model {
    /// The domain of private DNS names, as EC2 names them:
    /// `ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere.
    pub fn private_dns_domain(&self) -> String {
        if self.region == "us-east-1" {
            "ec2.internal".into()
        } else {
            format!("{}.compute.internal", self.region)
        }
    }
}

impl Subnet {
    /// The VPC router's address in this subnet (base + 1), as at AWS.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
    }
    pub fn is_dual_stack(&self) -> bool {
        self.ipv6_cidr.is_some()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `-1`: every protocol, ports ignored.
    All,
    Number(u8),
}

impl Protocol {
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Number(6 | 17))
    }
    pub fn is_icmp(self) -> bool {
        matches!(self, Protocol::Number(1 | 58))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    Cidr(IpNet),
    /// Members of a security group (their private addresses).
    Group(String),
    /// The CIDRs of a managed prefix list.
    PrefixList(String),
}

/// `AWS::EC2::PrefixList`: a named set of CIDRs of one family.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrefixList {
    pub id: String,
    pub ipv6: bool,
    pub max_entries: usize,
    pub cidrs: Vec<IpNet>,
}

/// A security-group rule. For ICMP, `from_port` is the type and `to_port`
/// the code (`-1`: all); for protocols without ports both are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: Protocol,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

impl Rule {
    pub fn allow_all(peer: Peer) -> Self {
        Rule {
            protocol: Protocol::All,
            from_port: -1,
            to_port: -1,
            peer,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc: String,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub is_default: bool,
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionVpc {
    pub vpc: String,
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
    pub ipv6_allowed_for_dual_stack: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Function {
    pub id: String,
    pub name: String,
    pub vpc_config: Option<FunctionVpc>,
    pub environment: BTreeMap<String, String>,
    /// The execution environment's address in the Lambda service range.
    pub exec_ip: Ipv4Addr,
    /// 1-based index of the Hyperplane ENI its execution environment uses.
    pub eni: Option<u32>,
    /// The execution environment's IPv6 address (`LAMBDA_SERVICE_CIDR6`),
    /// when every subnet of its `VpcConfig` is dual-stack.
    #[serde(default)]
    pub exec_ip6: Option<Ipv6Addr>,
    /// The Hyperplane ENI of each subnet of its `VpcConfig`, in order: its
    /// execution environment `i` (1-based) sends through `enis[i - 1]`
    /// (`eni` is `enis[0]`).
    #[serde(default)]
    pub enis: Vec<u32>,
    /// `Code.ZipFile`: the handler, a script run by `sh -c` in an execution
    /// environment with the invocation's payload on stdin (its stdout is
    /// the response). None: the payload is echoed.
    #[serde(default)]
    pub code: Option<String>,
    /// A participant account owning the function (`None`: the owner).
    #[serde(default)]
    pub account: Option<String>,
    /// A published version's own execution environments: (function id,
    /// version). Its id is `<id>.v<N>` and its name `<FunctionName>:<N>`.
    #[serde(default)]
    pub version_of: Option<(String, u32)>,
}

/// Execution environments of one function are this far apart in the
/// Lambda service range: environment `n` of the function at offset `o` is
/// `198.19.0.0 + (n - 1) * EXEC_ENV_STRIDE + o` (198.19.16.10 next to
/// 198.19.0.10), so at most 16 environments (`MAX_VPC_CONFIG_SUBNETS`) of
/// up to `EXEC_ENV_STRIDE - 10` functions fill the /16 without overlap.
pub const EXEC_ENV_STRIDE: u32 = 1 << 12;

/// One execution environment of a function: environment `n` runs in the
/// `n`th subnet of its `VpcConfig` and sends through that subnet's ENI.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecEnv {
    /// 1-based.
    pub n: usize,
    /// Its node id: the function's logical id for the first, `<id>.<n>`
    /// for the others (logical ids are alphanumeric: no collision).
    pub id: String,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// Its subnet and the 1-based index of that subnet's Hyperplane ENI
    /// (`None` without `VpcConfig`).
    pub subnet: Option<String>,
    pub eni: Option<u32>,
}

/// Node id of execution environment `n` (1-based) of function `id`.
pub fn exec_env_id(id: &str, n: usize) -> String {
    if n <= 1 {
        id.to_string()
    } else {
        format!("{id}.{n}")
    }
}

impl Function {
    /// May its IPv6 traffic leave through its ENI (`Ipv6AllowedForDualStack`)?
    pub fn ipv6_allowed(&self) -> bool {
        self.exec_ip6.is_some()
            && self
                .vpc_config
                .as_ref()
                .is_some_and(|v| v.ipv6_allowed_for_dual_stack)
    }

    /// Its execution environments: one per subnet of its `VpcConfig`, in
    /// the order of `SubnetIds` (one without `VpcConfig`). The first keeps
    /// the function's own address and node id.
    pub fn envs(&self) -> Vec<ExecEnv> {
        let subnets: Vec<Option<String>> = match &self.vpc_config {
            Some(vc) if !vc.subnets.is_empty() => vc.subnets.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        subnets
            .into_iter()
            .enumerate()
            .map(|(i, subnet)| ExecEnv {
                n: i + 1,
                id: exec_env_id(&self.id, i + 1),
                ip: Ipv4Addr::from(u32::from(self.exec_ip) + i as u32 * EXEC_ENV_STRIDE),
                ip6: self
                    .exec_ip6
                    .map(|a| Ipv6Addr::from(u128::from(a) + ((i as u128) << 64))),
                eni: self
                    .enis
                    .get(i)
                    .copied()
                    .or(if i == 0 { self.eni } else { None }),
                subnet,
            })
            .collect()
    }
}

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
    /// Rules as AWS counts them against the quota, (IPv4, IPv6): a prefix
    /// list reference counts its `MaxEntries`.
    pub fn rule_weight(&self, rules: &[Rule]) -> (usize, usize) {
        let (mut v4, mut v6) = (0, 0);
        for r in rules {
            match &r.peer {
                Peer::Cidr(IpNet::V6(_)) => v6 += 1,
                Peer::PrefixList(pl) => match self.prefix_list(pl) {
                    Some(l) if l.ipv6 => v6 += l.max_entries,
                    Some(l) => v4 += l.max_entries,
                    None => v4 += 1,
                },
                _ => v4 += 1,
            }
        }
        (v4, v6)
    }

    /// The CIDRs a rule peer stands for (`None` for a group: its members).
    pub fn prefix_list(&self, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.id == id)
    }

    pub fn acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.acls.iter().find(|a| a.id == id)
    }
    pub fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.id == id)
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
    pub fn group(&self, id: &str) -> Option<&SecurityGroup> {
        self.groups.iter().find(|g| g.id == id)
    }
    /// A function by logical id or `FunctionName`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.id == name || f.name == name)
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
            .filter(|o| o.subnet == e.subnet && o.groups == e.groups && o.account == e.account)
            .collect();
        g.sort_by_key(|e| e.index);
        g
    }

    /// A free IPv4 address of `subnet` (AWS reserves the first four and the
    /// last), or `None`: `SubnetOutOfIPAddresses`.
    pub fn free_ip(&self, subnet: &str) -> Option<Ipv4Addr> {
        let sn = self.subnet(subnet)?;
        let used: std::collections::HashSet<Ipv4Addr> = self
            .hosts
            .iter()
            .map(|h| h.ip)
            .chain(self.enis.iter().map(|e| e.ip))
            .collect();
        let (base, last) = (u32::from(sn.cidr.network()), u32::from(sn.cidr.broadcast()));
        (base + 4..last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }

    /// A free IPv6 address of a dual-stack `subnet` (first four and last reserved).
    pub fn free_ip6(&self, subnet: &str) -> Option<Ipv6Addr> {
        let net = self.subnet(subnet)?.ipv6_cidr?;
        let used: std::collections::HashSet<Ipv6Addr> = self
            .hosts
            .iter()
            .filter_map(|h| h.ip6)
            .chain(self.enis.iter().filter_map(|e| e.ip6))
            .collect();
        let base = u128::from(net.network());
        (4..1u128 << 20)
            .map(|i| Ipv6Addr::from(base + i))
            .find(|ip| !used.contains(ip))
    }

    /// Private addresses of a group's members: hosts and Hyperplane ENIs.
    pub fn members(&self, group: &str) -> Vec<Ipv4Addr> {
        let hosts = self
            .hosts
            .iter()
            .filter(|h| h.groups.iter().any(|g| g == group))
            .map(|h| h.ip);
        let enis = self
            .enis
            .iter()
            .filter(|e| e.groups.iter().any(|g| g == group))
            .map(|e| e.ip);
        hosts.chain(enis).collect()
    }
    /// IPv6 addresses of a group's members (a group reference matches
    /// both families of its members' addresses, as at AWS).
    pub fn members6(&self, group: &str) -> Vec<Ipv6Addr> {
        let hosts = self
            .hosts
            .iter()
            .filter(|h| h.groups.iter().any(|g| g == group))
            .filter_map(|h| h.ip6);
        let enis = self
            .enis
            .iter()
            .filter(|e| e.groups.iter().any(|g| g == group))
            .filter_map(|e| e.ip6);
        hosts.chain(enis).collect()
    }
}

fn res_path(id: &str) -> String {
    format!("Resources.{id}.Properties")
}

fn str_field<'v>(props: &'v Value, id: &str, field: &str) -> Result<Option<&'v str>> {
    match props.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ModelError::new(
            format!("{}.{field}", res_path(id)),
            "must be a string",
        )),
    }
}

fn required_str<'v>(props: &'v Value, id: &str, field: &str) -> Result<&'v str> {
    str_field(props, id, field)?
        .ok_or_else(|| ModelError::new(format!("{}.{field}", res_path(id)), "is required"))
}

fn str_list(props: &Value, id: &str, field: &str) -> Result<Vec<String>> {
    string_list(props.get(field), &format!("{}.{field}", res_path(id)))
}

/// A list of strings at `path` (absent: empty).
fn string_list(v: Option<&Value>, path: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ModelError::new(format!("{path}[{i}]"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(ModelError::new(path, "must be a list")),
    }
}

fn int_field(v: &Value, path: &str) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ModelError::new(path, "must be an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ModelError::new(path, format!("{s:?} is not an integer"))),
        _ => Err(ModelError::new(path, "must be an integer")),
    }
}

fn bool_field(props: &Value, id: &str, field: &str) -> Result<bool> {
    match props.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ModelError::new(
            format!("{}.{field}", res_path(id)),
            "must be true or false",
        )),
    }
}

/// A VPC's or subnet's block: /16 to /28, and clear of every block in
/// `others` (a description, the block).
fn check_block(
    cidr: Ipv4Net,
    what: &str,
    others: impl IntoIterator<Item = (String, Ipv4Net)>,
    path: &str,
) -> Result<()> {
    if !(16..=28).contains(&cidr.prefix_len()) {
        return Err(ModelError::new(
            path,
            format!("{cidr}: a {what}'s block is between /16 and /28"),
        ));
    }
    for (id, other) in others {
        if other.contains(&cidr.network()) || cidr.contains(&other.network()) {
            return Err(ModelError::new(
                path,
                format!("{cidr} overlaps {what} {id} ({other})"),
            ));
        }
    }
    Ok(())
}

fn parse_v6_cidr(s: &str, path: &str) -> Result<Ipv6Net> {
    let net: Ipv6Net = s
        .parse()
        .map_err(|_| ModelError::new(path, format!("{s:?} is not an IPv6 CIDR block")))?;
    if net.trunc() != net {
        return Err(ModelError::new(
            path,
            format!("{s}: host bits are set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(net)
}

fn v6_overlap(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn parse_v4_cidr(s: &str, path: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| ModelError::new(path, format!("{s:?} is not an IPv4 CIDR block")))?;
    if net.trunc() != net {
        return Err(ModelError::new(
            path,
            format!("{s}: host bits are set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(net)
}

/// `IpProtocol` as AWS accepts it: a name, a number, or `-1`.
pub fn parse_protocol(v: &Value, path: &str) -> Result<Protocol> {
    let s = match v {
        Value::String(s) => s.to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ModelError::new(
                path,
                "is required (tcp, udp, icmp, icmpv6, a number, or -1)",
            ))
        }
    };
    Ok(match s.as_str() {
        "-1" | "all" => Protocol::All,
        "tcp" => Protocol::Number(6),
        "udp" => Protocol::Number(17),
        "icmp" => Protocol::Number(1),
        "icmpv6" => Protocol::Number(58),
        n => match n.parse::<u8>() {
            Ok(p) => Protocol::Number(p),
            Err(_) => {
                return Err(ModelError::new(
                    path,
                    format!("{s:?} is not a protocol (tcp, udp, icmp, icmpv6, 0-255, or -1)"),
                ))
            }
        },
    })
}

/// Parses one rule (`AWS::EC2::SecurityGroup{Ingress,Egress}` shape).
/// `ingress` picks the group-peer field name.
pub fn parse_rule(r: &Value, path: &str, ingress: bool) -> Result<Rule> {
    let protocol = parse_protocol(
        r.get("IpProtocol").unwrap_or(&Value::Null),
        &format!("{path}.IpProtocol"),
    )?;
    let from = int_field(
        r.get("FromPort").unwrap_or(&Value::Null),
        &format!("{path}.FromPort"),
    )?;
    let to = int_field(
        r.get("ToPort").unwrap_or(&Value::Null),
        &format!("{path}.ToPort"),
    )?;
    let (from_port, to_port) = match protocol {
        Protocol::All => (-1, -1),
        p if p.has_ports() => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    "FromPort and ToPort are required for tcp and udp",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    format!("invalid port range {f}-{t}: ports are 0-65535 and FromPort <= ToPort"),
                ));
            }
            (f as i32, t as i32)
        }
        p if p.is_icmp() => {
            let (t, c) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    "ICMP type and code are -1 or 0-255",
                ));
            }
            if t == -1 && c != -1 {
                return Err(ModelError::new(
                    format!("{path}.ToPort"),
                    "ICMP type -1 (all) requires code -1",
                ));
            }
            (t as i32, c as i32)
        }
        _ => (-1, -1),
    };
    let group_field = if ingress {
        "SourceSecurityGroupId"
    } else {
        "DestinationSecurityGroupId"
    };
    let prefix_field = if ingress {
        "SourcePrefixListId"
    } else {
        "DestinationPrefixListId"
    };
    let mut peers = vec![];
    if let Some(p) = r.get(prefix_field).and_then(Value::as_str) {
        peers.push(Peer::PrefixList(p.to_string()));
    }
    if let Some(c) = r.get("CidrIp").and_then(Value::as_str) {
        let net = parse_v4_cidr(c, &format!("{path}.CidrIp"))?;
        peers.push(Peer::Cidr(IpNet::V4(net)));
    }
    if let Some(c) = r.get("CidrIpv6").and_then(Value::as_str) {
        let net: ipnet::Ipv6Net = c.parse().map_err(|_| {
            ModelError::new(
                format!("{path}.CidrIpv6"),
                format!("{c:?} is not an IPv6 CIDR block"),
            )
        })?;
        peers.push(Peer::Cidr(IpNet::V6(net.trunc())));
    }
    if let Some(g) = r.get(group_field).and_then(Value::as_str) {
        peers.push(Peer::Group(g.to_string()));
    }
    if peers.len() != 1 {
        return Err(ModelError::new(
            path,
            format!(
                "exactly one of CidrIp, CidrIpv6, {group_field}, {prefix_field} is required (found {})",
                peers.len()
            ),
        ));
    }
    Ok(Rule {
        protocol,
        from_port,
        to_port,
        peer: peers.remove(0),
    })
}

const VPC: &str = "AWS::EC2::VPC";
const SUBNET: &str = "AWS::EC2::Subnet";
const SG: &str = "AWS::EC2::SecurityGroup";
const SG_INGRESS: &str = "AWS::EC2::SecurityGroupIngress";
const SG_EGRESS: &str = "AWS::EC2::SecurityGroupEgress";
const INSTANCE: &str = "AWS::EC2::Instance";
const NETWORK_INTERFACE: &str = "AWS::EC2::NetworkInterface";
const FUNCTION: &str = "AWS::Lambda::Function";
const PREFIX_LIST: &str = "AWS::EC2::PrefixList";
const VPC_CIDR_BLOCK: &str = "AWS::EC2::VPCCidrBlock";

/// Builds and validates the model with AWS's default quotas. Nothing
/// touches the kernel.
pub fn build(text: &str, params: &HashMap<String, String>, stack_name: &str) -> Result<Model> {
    build_with(text, params, stack_name, Quotas::default())
}

pub fn build_with(
    text: &str,
    params: &HashMap<String, String>,
    stack_name: &str,
    quotas: Quotas,
) -> Result<Model> {
    quotas.check().map_err(|e| ModelError::new("quotas", e))?;
    let t = template::parse(text)?;
    let mut b = Builder::new(&t, params, stack_name)?;
    b.quotas = quotas;
    b.run()
}

struct Builder<'a> {
    t: &'a Template,
    r: Resolver<'a>,
    m: Model,
    /// Addresses taken per subnet.
    used: HashMap<String, BTreeSet<Ipv4Addr>>,
    used6: HashMap<String, BTreeSet<Ipv6Addr>>,
    /// IPv6-only subnets (`Ipv6Native`): validated, but nothing may be put
    /// in them (Lambda refuses them; hosts need IPv4 in this slice).
    ipv6_only: BTreeMap<String, Ipv6Net>,
    quotas: Quotas,
    /// Elastic IPs and their addresses, in logical-id order.
    eips: Vec<(String, Ipv4Addr)>,
}

impl<'a> Builder<'a> {
    fn new(t: &'a Template, params: &HashMap<String, String>, stack_name: &str) -> Result<Self> {
        let r = Resolver::new(t, params, stack_name)?;
        let m = Model {
            stack_name: stack_name.into(),
            region: r.region.clone(),
            account: r.account.clone(),
            vpcs: vec![],
            subnets: vec![],
            groups: vec![],
            hosts: vec![],
            functions: vec![],
            enis: vec![],
            acls: vec![],
            prefix_lists: vec![],
            route_tables: vec![],
            internet_gateways: vec![],
            egress_only_internet_gateways: vec![],
            internet_hosts: vec![],
            public_ips: vec![],
            nat_gateways: vec![],
            skipped: vec![],
            shares: vec![],
            flow_logs: vec![],
            vpc_endpoints: vec![],
        };
        Ok(Self {
            t,
            r,
            m,
            used: HashMap::new(),
            used6: HashMap::new(),
            ipv6_only: BTreeMap::new(),
            quotas: Quotas::default(),
            eips: vec![],
        })
    }

    fn of_type(&self, kind: &str) -> Vec<&'a template::Resource> {
        self.t
            .resources
            .values()
            .filter(|r| r.kind == kind)
            .collect()
    }

    fn props(&self, res: &template::Resource) -> Result<Value> {
        self.r.resolve(
            &Value::Object(res.properties.clone()),
            &res_path(&res.logical_id),
        )
    }

    fn attr(&mut self, id: &str, name: &str, v: impl Into<Value>) {
        self.r
            .attrs
            .insert((id.to_string(), name.to_string()), v.into());
    }

    fn run(mut self) -> Result<Model> {
        let known = [
            VPC,
            SUBNET,
            SG,
            SG_INGRESS,
            SG_EGRESS,
            INSTANCE,
            NETWORK_INTERFACE,
            FUNCTION,
            network_acl::NETWORK_ACL,
            network_acl::NETWORK_ACL_ENTRY,
            network_acl::SUBNET_ACL_ASSOCIATION,
            PREFIX_LIST,
            VPC_CIDR_BLOCK,
            share::RESOURCE_SHARE,
            route_table::ROUTE_TABLE,
            route_table::ROUTE,
            route_table::SUBNET_ROUTE_TABLE_ASSOCIATION,
            route_table::INTERNET_GATEWAY,
            route_table::VPC_GATEWAY_ATTACHMENT,
            route_table::EGRESS_ONLY_INTERNET_GATEWAY,
            flowlog::FLOW_LOG,
            internet::EIP,
            internet::EIP_ASSOCIATION,
            nat_gateway::NAT_GATEWAY,
            endpoint::VPC_ENDPOINT,
        ];
        for r in self.t.resources.values() {
            if !known.contains(&r.kind.as_str()) {
                self.m.skipped.push((r.logical_id.clone(), r.kind.clone()));
            }
        }
        // Identifiers are known up front, so resources may refer to each
        // other in any order.
        for r in self.t.resources.values() {
            let id = r.logical_id.clone();
            match r.kind.as_str() {
                SG => self.attr(&id, "GroupId", id.clone()),
                SUBNET => self.attr(&id, "SubnetId", id.clone()),
                VPC => {
                    self.attr(&id, "VpcId", id.clone());
                    self.attr(
                        &id,
                        "DefaultSecurityGroup",
                        format!("{id}.DefaultSecurityGroup"),
                    );
                    self.attr(&id, "DefaultNetworkAcl", network_acl::default_acl_id(&id));
                }
                NETWORK_INTERFACE => self.attr(&id, "Id", id.clone()),
                PREFIX_LIST => self.attr(&id, "PrefixListId", id.clone()),
                VPC_CIDR_BLOCK => self.attr(&id, "Id", id.clone()),
                route_table::ROUTE_TABLE => self.attr(&id, "RouteTableId", id.clone()),
                route_table::INTERNET_GATEWAY => self.attr(&id, "InternetGatewayId", id.clone()),
                route_table::EGRESS_ONLY_INTERNET_GATEWAY => self.attr(&id, "Id", id.clone()),
                _ => {}
            }
        }
        self.vpc_endpoint_ids();
        self.allocate_elastic_ips()?;
        self.vpcs()?;
        self.vpc_cidr_blocks()?;
        self.subnets()?;
        self.resource_shares()?;
        self.network_acls()?;
        self.prefix_lists()?;
        self.managed_prefix_lists();
        self.route_tables()?;
        self.groups()?;
        self.standalone_rules()?;
        self.check_group_refs()?;
        self.hosts()?;
        self.public_addresses()?;
        self.nat_gateways()?;
        self.vpc_endpoints()?;
        self.functions()?;
        self.flow_logs()?;
        Ok(self.m)
    }

    fn vpcs(&mut self) -> Result<()> {
        let lambda: Ipv4Net = LAMBDA_SERVICE_CIDR.parse().expect("constant");
        for res in self.of_type(VPC) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let path = format!("{}.CidrBlock", res_path(id));
            let cidr = parse_v4_cidr(required_str(&p, id, "CidrBlock")?, &path)?;
            // Separate VPCs may overlap at AWS; here they share one router, so they may not.
            let lambda_range = ("the Lambda service range".to_string(), lambda);
            let services: Ipv4Net = endpoint::AWS_SERVICES_CIDR.parse().expect("constant");
            let services = ("the AWS services range".to_string(), services);
            let vpcs = self
                .m
                .vpcs
                .iter()
                .map(|v| (format!("VPC {}", v.id), v.cidr));
            check_block(
                cidr,
                "VPC",
                [lambda_range, services].into_iter().chain(vpcs),
                &path,
            )?;
            let default_group = format!("{id}.DefaultSecurityGroup");
            // EC2's default: the resolver is on.
            let enable_dns_support =
                p.get("EnableDnsSupport").is_none() || bool_field(&p, id, "EnableDnsSupport")?;
            self.m.vpcs.push(Vpc {
                id: id.clone(),
                index: self.m.vpcs.len() as u32 + 1,
                cidr,
                default_group: default_group.clone(),
                ipv6_cidr: None,
                enable_dns_support,
            });
            // The VPC's default group: inbound from its own members, outbound to all.
            self.m.groups.push(SecurityGroup {
                id: default_group.clone(),
                vpc: id.clone(),
                ingress: vec![Rule::allow_all(Peer::Group(default_group.clone()))],
                egress: vec![Rule::allow_all(Peer::Cidr(
                    "0.0.0.0/0".parse().expect("constant"),
                ))],
                is_default: true,
            });
            self.attr(id, "CidrBlock", cidr.to_string());
            self.attr(id, "VpcId", id.clone());
            self.attr(id, "DefaultSecurityGroup", default_group);
            self.attr(id, "CidrBlockAssociations", Value::Array(vec![]));
            // Filled by an `AWS::EC2::VPCCidrBlock`; empty until then, as at AWS.
            self.attr(id, "Ipv6CidrBlocks", Value::Array(vec![]));
        }
        if self.m.vpcs.is_empty() {
            return Err(ModelError::new(
                "Resources",
                "the template declares no AWS::EC2::VPC",
            ));
        }
        Ok(())
    }

    /// `AWS::EC2::VPCCidrBlock`: a VPC's IPv6 block, explicit (a /56) or
    /// Amazon-provided (the next free /56 of `AMAZON_IPV6_POOL`). Explicit
    /// blocks are placed first, so a provided one never takes them.
    fn vpc_cidr_blocks(&mut self) -> Result<()> {
        let lambda6: Ipv6Net = LAMBDA_SERVICE_CIDR6.parse().expect("constant");
        let mut wanted = vec![];
        for res in self.of_type(VPC_CIDR_BLOCK) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            for unsupported in [
                "CidrBlock",
                "Ipv4IpamPoolId",
                "Ipv6IpamPoolId",
                "Ipv6NetmaskLength",
            ] {
                if p.get(unsupported).is_some() {
                    return Err(ModelError::new(
                        format!("{path}.{unsupported}"),
                        "not supported by this slice (one IPv6 block per VPC: AmazonProvidedIpv6CidrBlock or Ipv6CidrBlock)",
                    ));
                }
            }
            let amazon = bool_field(&p, &id, "AmazonProvidedIpv6CidrBlock")?;
            let explicit = str_field(&p, &id, "Ipv6CidrBlock")?;
            let block = match (amazon, explicit) {
                (true, Some(_)) => {
                    return Err(ModelError::new(
                        format!("{path}.Ipv6CidrBlock"),
                        "InvalidParameterCombination: AmazonProvidedIpv6CidrBlock and Ipv6CidrBlock are mutually exclusive",
                    ))
                }
                (false, None) => {
                    return Err(ModelError::new(
                        format!("{path}.AmazonProvidedIpv6CidrBlock"),
                        "one of AmazonProvidedIpv6CidrBlock: true or Ipv6CidrBlock is required",
                    ))
                }
                (false, Some(c)) => {
                    let f = format!("{path}.Ipv6CidrBlock");
                    let net = parse_v6_cidr(c, &f)?;
                    if net.prefix_len() != 56 {
                        return Err(ModelError::new(
                            f,
                            format!("{net}: a VPC's IPv6 block is a /56"),
                        ));
                    }
                    // ::/96 and ::ffff:0:0/96 embed IPv4 addresses, which
                    // the datapath keeps in that form: never an IPv6 block.
                    let embeds_v4 = net.contains(&"::ffff:0.0.0.0".parse::<Ipv6Addr>().expect("literal"))
                        || net.contains(&Ipv6Addr::UNSPECIFIED);
                    if embeds_v4 {
                        return Err(ModelError::new(
                            f,
                            format!("{net}: contains IPv4-mapped or IPv4-compatible addresses (::/96, ::ffff:0:0/96), which are not valid IPv6 unicast"),
                        ));
                    }
                    Some((net, f))
                }
                (true, None) => None,
            };
            wanted.push((id, vpc, block));
        }
        // Explicit blocks first, then the provided ones around them.
        wanted.sort_by_key(|w| w.2.is_none());
        for (id, vpc, block) in wanted {
            let path = res_path(&id);
            if let Some(v) = self.m.vpc(&vpc).and_then(|v| v.ipv6_cidr) {
                return Err(ModelError::new(
                    format!("{path}.VpcId"),
                    format!("VPC {vpc} already has the IPv6 block {v}: one per VPC in this slice"),
                ));
            }
            let taken: Vec<Ipv6Net> = self.m.vpcs.iter().filter_map(|v| v.ipv6_cidr).collect();
            let net = match block {
                Some((net, f)) => {
                    if v6_overlap(&net, &lambda6) {
                        return Err(ModelError::new(
                            f,
                            format!("{net} overlaps the Lambda service range {lambda6}"),
                        ));
                    }
                    if let Some((o, t)) = self.m.vpcs.iter().find_map(|o| {
                        o.ipv6_cidr
                            .filter(|t| v6_overlap(&net, t))
                            .map(|t| (o.id.clone(), t))
                    }) {
                        return Err(ModelError::new(f, format!("{net} overlaps VPC {o} ({t})")));
                    }
                    net
                }
                None => {
                    let pool: Ipv6Net = AMAZON_IPV6_POOL.parse().expect("constant");
                    pool.subnets(56)
                        .expect("a /48 splits into /56s")
                        .skip(1)
                        .find(|c| !taken.iter().any(|t| v6_overlap(c, t)))
                        .ok_or_else(|| {
                            ModelError::new(
                                format!("{path}.AmazonProvidedIpv6CidrBlock"),
                                format!("no free /56 left in {AMAZON_IPV6_POOL}"),
                            )
                        })?
                }
            };
            let v = self
                .m
                .vpcs
                .iter_mut()
                .find(|v| v.id == vpc)
                .expect("checked");
            v.ipv6_cidr = Some(net);
            // Groups created by AWS get IPv6's allow-all egress too once
            // the VPC has an IPv6 block.
            let dg = v.default_group.clone();
            if let Some(g) = self.m.groups.iter_mut().find(|g| g.id == dg) {
                g.egress.push(Rule::allow_all(Peer::Cidr(
                    "::/0".parse().expect("constant"),
                )));
            }
            self.attr(
                &vpc,
                "Ipv6CidrBlocks",
                Value::Array(vec![net.to_string().into()]),
            );
            self.attr(&id, "Id", id.clone());
            self.attr(&id, "Ipv6CidrBlock", net.to_string());
        }
        Ok(())
    }

    /// The subnet of association `id` (ACL or route table), checked as EC2
    /// does: it exists, it is in the VPC of what it is associated with
    /// (`(field, that id, its VPC)`), and it has no such association yet.
    fn associate_subnet(
        &mut self,
        id: &str,
        subnet: &str,
        (field, other, other_vpc): (&str, &str, &str),
        what: &str,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<&mut Subnet> {
        let sn = self
            .m
            .subnets
            .iter_mut()
            .find(|s| s.id == subnet)
            .ok_or_else(|| {
                ModelError::new(
                    format!("{}.SubnetId", res_path(id)),
                    format!("InvalidSubnetID.NotFound: {subnet:?}"),
                )
            })?;
        if sn.vpc != other_vpc {
            return Err(ModelError::new(
                format!("{}.{field}", res_path(id)),
                format!(
                    "{other} is in VPC {other_vpc}, subnet {subnet} in {}",
                    sn.vpc
                ),
            ));
        }
        if !seen.insert(subnet.to_string()) {
            return Err(ModelError::new(
                format!("{}.SubnetId", res_path(id)),
                format!(
                    "Resource.AlreadyAssociated: subnet {subnet} is already associated with {what}"
                ),
            ));
        }
        Ok(sn)
    }

    fn vpc_ref(&self, p: &Value, id: &str, field: &str) -> Result<String> {
        let v = required_str(p, id, field)?;
        if self.m.vpc(v).is_none() {
            return Err(ModelError::new(
                format!("{}.{field}", res_path(id)),
                format!("{v:?} is not an AWS::EC2::VPC of this template"),
            ));
        }
        Ok(v.to_string())
    }

    /// A subnet's IPv6 block: a /64 inside its VPC's /56, clear of every
    /// other subnet's.
    fn subnet_v6_block(&self, p: &Value, id: &str, vpc: &str) -> Result<Option<Ipv6Net>> {
        let path = format!("{}.Ipv6CidrBlock", res_path(id));
        let Some(c) = str_field(p, id, "Ipv6CidrBlock")? else {
            return Ok(None);
        };
        let net = parse_v6_cidr(c, &path)?;
        if net.prefix_len() != 64 {
            return Err(ModelError::new(
                path,
                format!("{net}: a subnet's IPv6 block is a /64"),
            ));
        }
        let Some(vnet) = self.m.vpc(vpc).expect("checked").ipv6_cidr else {
            return Err(ModelError::new(
                path,
                format!(
                    "VPC {vpc} has no IPv6 block (add an AWS::EC2::VPCCidrBlock, and DependsOn it)"
                ),
            ));
        };
        if !vnet.contains(&net) {
            return Err(ModelError::new(
                path,
                format!("{net} is not inside the VPC's {vnet}"),
            ));
        }
        let others = self
            .m
            .subnets
            .iter()
            .filter_map(|s| s.ipv6_cidr.map(|c| (s.id.clone(), c)))
            .chain(self.ipv6_only.iter().map(|(i, c)| (i.clone(), *c)));
        for (other, c) in others {
            if v6_overlap(&net, &c) {
                return Err(ModelError::new(
                    path,
                    format!("{net} overlaps subnet {other} ({c})"),
                ));
            }
        }
        Ok(Some(net))
    }

    fn subnets(&mut self) -> Result<()> {
        for res in self.of_type(SUBNET) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, id, "VpcId")?;
            if bool_field(&p, id, "Ipv6Native")? {
                // IPv6-only: no IPv4 block, an IPv6 one required.
                if p.get("CidrBlock").is_some() {
                    return Err(ModelError::new(
                        format!("{}.CidrBlock", res_path(id)),
                        "an IPv6-only subnet (Ipv6Native: true) has no IPv4 CidrBlock",
                    ));
                }
                let net = self.subnet_v6_block(&p, id, &vpc)?.ok_or_else(|| {
                    ModelError::new(
                        format!("{}.Ipv6CidrBlock", res_path(id)),
                        "is required for an IPv6-only subnet (Ipv6Native: true)",
                    )
                })?;
                self.attr(id, "SubnetId", id.clone());
                self.attr(id, "VpcId", vpc.clone());
                self.attr(
                    id,
                    "Ipv6CidrBlocks",
                    Value::Array(vec![net.to_string().into()]),
                );
                self.ipv6_only.insert(id.clone(), net);
                continue;
            }
            let path = format!("{}.CidrBlock", res_path(id));
            let cidr = parse_v4_cidr(required_str(&p, id, "CidrBlock")?, &path)?;
            let vcidr = self.m.vpc(&vpc).expect("checked").cidr;
            if !vcidr.contains(&cidr) {
                return Err(ModelError::new(
                    path,
                    format!("{cidr} is not inside the VPC's {vcidr}"),
                ));
            }
            check_block(
                cidr,
                "subnet",
                self.m
                    .subnets
                    .iter()
                    .map(|s| (format!("subnet {}", s.id), s.cidr)),
                &path,
            )?;
            let ipv6_cidr = self.subnet_v6_block(&p, id, &vpc)?;
            let assign6 = bool_field(&p, id, "AssignIpv6AddressOnCreation")?;
            if assign6 && ipv6_cidr.is_none() {
                return Err(ModelError::new(
                    format!("{}.AssignIpv6AddressOnCreation", res_path(id)),
                    "the subnet has no Ipv6CidrBlock to assign addresses from",
                ));
            }
            let az = str_field(&p, id, "AvailabilityZone")?
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}a", self.r.region));
            self.attr(id, "SubnetId", id.clone());
            self.attr(id, "CidrBlock", cidr.to_string());
            self.attr(id, "AvailabilityZone", az.clone());
            self.attr(id, "VpcId", vpc.clone());
            self.attr(
                id,
                "Ipv6CidrBlocks",
                Value::Array(ipv6_cidr.iter().map(|c| c.to_string().into()).collect()),
            );
            self.m.subnets.push(Subnet {
                id: id.clone(),
                acl: network_acl::default_acl_id(&vpc),
                vpc,
                cidr,
                az,
                ipv6_cidr,
                assign_ipv6_on_creation: assign6,
                route_table: String::new(),
            });
        }
        Ok(())
    }

    fn rules(&self, p: &Value, id: &str, field: &str, ingress: bool) -> Result<Vec<Rule>> {
        match p.get(field) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, r)| parse_rule(r, &format!("{}.{field}[{i}]", res_path(id)), ingress))
                .collect(),
            Some(_) => Err(ModelError::new(
                format!("{}.{field}", res_path(id)),
                "must be a list of rules",
            )),
        }
    }

    fn groups(&mut self) -> Result<()> {
        for res in self.of_type(SG) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            required_str(&p, id, "GroupDescription")?;
            let vpc = self.vpc_ref(&p, id, "VpcId")?;
            let ingress = self.rules(&p, id, "SecurityGroupIngress", true)?;
            // A new group allows all outbound traffic until egress rules are given.
            // (And all IPv6 outbound too when the VPC has an IPv6 block.)
            let egress = match p.get("SecurityGroupEgress") {
                None => {
                    let mut all = vec![Rule::allow_all(Peer::Cidr(
                        "0.0.0.0/0".parse().expect("constant"),
                    ))];
                    if self.m.vpc(&vpc).expect("checked").ipv6_cidr.is_some() {
                        all.push(Rule::allow_all(Peer::Cidr(
                            "::/0".parse().expect("constant"),
                        )));
                    }
                    all
                }
                Some(_) => self.rules(&p, id, "SecurityGroupEgress", false)?,
            };
            self.attr(id, "GroupId", id.clone());
            self.attr(id, "VpcId", vpc.clone());
            self.m.groups.push(SecurityGroup {
                id: id.clone(),
                vpc,
                ingress,
                egress,
                is_default: false,
            });
        }
        Ok(())
    }

    fn standalone_rules(&mut self) -> Result<()> {
        for (kind, ingress) in [(SG_INGRESS, true), (SG_EGRESS, false)] {
            for res in self.of_type(kind) {
                let id = &res.logical_id;
                let p = self.props(res)?;
                let gid = required_str(&p, id, "GroupId")?.to_string();
                let rule = parse_rule(&p, &res_path(id), ingress)?;
                let g = self
                    .m
                    .groups
                    .iter_mut()
                    .find(|g| g.id == gid)
                    .ok_or_else(|| {
                        ModelError::new(
                            format!("{}.GroupId", res_path(id)),
                            format!("{gid:?} is not a security group of this template"),
                        )
                    })?;
                if ingress {
                    g.ingress.push(rule)
                } else {
                    g.egress.push(rule)
                }
            }
        }
        Ok(())
    }

    fn check_group_refs(&self) -> Result<()> {
        for g in &self.m.groups {
            for (dir, rules) in [
                ("SecurityGroupIngress", &g.ingress),
                ("SecurityGroupEgress", &g.egress),
            ] {
                let path = format!("{}.{dir}", res_path(&g.id));
                for r in rules.iter() {
                    if let Peer::PrefixList(pl) = &r.peer {
                        if self.m.prefix_list(pl).is_none() {
                            return Err(ModelError::new(&path, format!("InvalidPrefixListID.NotFound: prefix list {pl:?} does not exist")));
                        }
                    }
                    if let Peer::Group(peer) = &r.peer {
                        match self.m.group(peer) {
                            None => {
                                return Err(ModelError::new(
                                    &path,
                                    format!(
                                    "InvalidGroup.NotFound: security group {peer:?} does not exist"
                                ),
                                ))
                            }
                            Some(pg) if pg.vpc != g.vpc => {
                                return Err(ModelError::new(
                                    &path,
                                    format!("security group {peer:?} is in another VPC"),
                                ))
                            }
                            _ => {}
                        }
                    }
                }
                let (v4, v6) = self.m.rule_weight(rules);
                let quota = self.quotas.rules_per_group;
                if v4.max(v6) > quota {
                    return Err(ModelError::new(
                        path,
                        format!("RulesPerSecurityGroupLimitExceeded: the maximum number of rules per security group ({quota}) has been reached"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// AWS: groups on one interface x rules per group <= 1,000.
    fn check_rules_x_groups(&self, groups: &[String], path: &str) -> Result<()> {
        let most = groups
            .iter()
            .filter_map(|g| self.m.group(g))
            .flat_map(|g| {
                let (a, b) = self.m.rule_weight(&g.ingress);
                let (c, d) = self.m.rule_weight(&g.egress);
                [a, b, c, d]
            })
            .max()
            .unwrap_or(0);
        if groups.len() * most > MAX_RULES_X_GROUPS {
            return Err(ModelError::new(
                path,
                format!("{} groups x {most} rules exceeds {MAX_RULES_X_GROUPS} rules per network interface", groups.len()),
            ));
        }
        Ok(())
    }

    fn prefix_lists(&mut self) -> Result<()> {
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

    fn group_list(&self, p: &Value, id: &str, field: &str, vpc: &str) -> Result<Vec<String>> {
        let mut groups = str_list(p, id, field)?;
        for (i, g) in groups.iter().enumerate() {
            let path = format!("{}.{field}[{i}]", res_path(id));
            match self.m.group(g) {
                None => {
                    return Err(ModelError::new(
                        path,
                        format!("InvalidSecurityGroup: {g:?} does not exist"),
                    ))
                }
                Some(sg) if sg.vpc != vpc => {
                    return Err(ModelError::new(
                        path,
                        format!(
                            "InvalidSecurityGroup: {g:?} belongs to VPC {}, not {vpc}",
                            sg.vpc
                        ),
                    ))
                }
                _ => {}
            }
        }
        if groups.len() > MAX_VPC_CONFIG_GROUPS {
            return Err(ModelError::new(
                format!("{}.{field}", res_path(id)),
                format!("SecurityGroupsPerInterfaceLimitExceeded: at most {MAX_VPC_CONFIG_GROUPS} security groups"),
            ));
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// Takes `want`, or the lowest free address. AWS reserves the first four
    /// addresses and the last one of every subnet.
    fn take_ip(&mut self, subnet: &Subnet, want: Option<Ipv4Addr>, path: &str) -> Result<Ipv4Addr> {
        let used = self.used.entry(subnet.id.clone()).or_default();
        let base = u32::from(subnet.cidr.network());
        let last = u32::from(subnet.cidr.broadcast());
        if let Some(ip) = want {
            let n = u32::from(ip);
            if !subnet.cidr.contains(&ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is not in subnet {} ({})", subnet.id, subnet.cidr),
                ));
            }
            if n < base + 4 || n == last {
                return Err(ModelError::new(
                    path,
                    format!(
                        "{ip} is reserved by AWS (first four and last address of {})",
                        subnet.cidr
                    ),
                ));
            }
            if !used.insert(ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is already in use in subnet {}", subnet.id),
                ));
            }
            return Ok(ip);
        }
        for n in base + 4..last {
            let ip = Ipv4Addr::from(n);
            if used.insert(ip) {
                return Ok(ip);
            }
        }
        Err(ModelError::new(
            path,
            format!(
                "SubnetOutOfIPAddresses: subnet {} ({}) has no free address",
                subnet.id, subnet.cidr
            ),
        ))
    }

    /// Takes `want`, or the lowest free IPv6 address of the subnet's /64.
    /// AWS reserves the first four and the last address here too.
    fn take_ip6(
        &mut self,
        subnet: &Subnet,
        want: Option<Ipv6Addr>,
        path: &str,
    ) -> Result<Ipv6Addr> {
        let net = subnet.ipv6_cidr.expect("dual-stack subnet");
        let used = self.used6.entry(subnet.id.clone()).or_default();
        let base = u128::from(net.network());
        let last = u128::from(net.broadcast());
        if let Some(ip) = want {
            let n = u128::from(ip);
            if !net.contains(&ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is not in subnet {} ({net})", subnet.id),
                ));
            }
            if n < base + 4 || n == last {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is reserved by AWS (first four and last address of {net})"),
                ));
            }
            if !used.insert(ip) {
                return Err(ModelError::new(
                    path,
                    format!("{ip} is already in use in subnet {}", subnet.id),
                ));
            }
            return Ok(ip);
        }
        let ip = (base + 4..last)
            .map(Ipv6Addr::from)
            .find(|ip| !used.contains(ip))
            .expect("a /64 does not run out");
        used.insert(ip);
        Ok(ip)
    }

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

    fn parse_ip(p: &Value, id: &str, field: &str, path_prefix: &str) -> Result<Option<Ipv4Addr>> {
        match p.get(field).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                ModelError::new(
                    format!("{path_prefix}.{field}"),
                    format!("{s:?} is not an IPv4 address (resource {id})"),
                )
            }),
        }
    }

    fn hosts(&mut self) -> Result<()> {
        // Explicit addresses first, so automatic ones never take them.
        let mut pending = vec![];
        let mut source_dest_check: HashMap<String, bool> = HashMap::new();
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
                let want = Self::parse_ip(&iface, &id, ip_field, &prefix)?;
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
                pending.push((
                    id,
                    hk,
                    subnet,
                    want,
                    groups,
                    format!("{prefix}.{ip_field}"),
                    v6,
                ));
            }
        }
        // IPv6 likewise: explicit addresses first, in resource order.
        let mut ip6s: HashMap<String, Ipv6Addr> = HashMap::new();
        for (id, _, subnet, _, _, _, v6) in &pending {
            if let V6Request::Explicit(ip, path) = v6 {
                ip6s.insert(id.clone(), self.take_ip6(subnet, Some(*ip), path)?);
            }
        }
        for (id, _, subnet, _, _, path, v6) in &pending {
            if let V6Request::Auto = v6 {
                ip6s.insert(id.clone(), self.take_ip6(subnet, None, path)?);
            }
        }
        pending.sort_by_key(|p| p.3.is_none());
        for (id, kind, subnet, want, groups, path, _) in pending {
            let ip = self.take_ip(&subnet, want, &path)?;
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
                id,
                kind,
                subnet: subnet.id.clone(),
                ip,
                groups,
                ip6,
            });
        }
        self.m.hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    fn functions(&mut self) -> Result<()> {
        let lambda: Ipv4Net = LAMBDA_SERVICE_CIDR.parse().expect("constant");
        let lambda6: Ipv6Net = LAMBDA_SERVICE_CIDR6.parse().expect("constant");
        for (offset, res) in (10u32..).zip(self.of_type(FUNCTION)) {
            let next_exec = u32::from(lambda.network()) + offset;
            let id = res.logical_id.clone();
            let path = res_path(&id);
            let raw = Value::Object(res.properties.clone());
            let name = match raw.get("FunctionName") {
                Some(v) => self
                    .r
                    .resolve(v, &format!("{path}.FunctionName"))?
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ModelError::new(format!("{path}.FunctionName"), "must be a string")
                    })?,
                None => format!("{}-{id}", self.m.stack_name),
            };
            let vpc_config = match raw.get("VpcConfig") {
                None => None,
                Some(v) => {
                    let vc = self.r.resolve(v, &format!("{path}.VpcConfig"))?;
                    self.vpc_config(&id, &vc)?
                }
            };
            let account = self.function_account(res)?;
            if let Some(vc) = &vpc_config {
                for (i, s) in vc.subnets.iter().enumerate() {
                    if !self.m.subnet_usable(s, account.as_deref()) {
                        return Err(ModelError::new(
                            format!("{path}.VpcConfig.SubnetIds[{i}]"),
                            format!(
                                "InvalidParameterValueException: subnet {s} is not shared with account {} (AWS::RAM::ResourceShare)",
                                account.as_deref().unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
            self.attr(
                &id,
                "Arn",
                format!(
                    "arn:aws:lambda:{}:{}:function:{name}",
                    self.m.region, self.m.account
                ),
            );
            if offset >= EXEC_ENV_STRIDE {
                return Err(ModelError::new(
                    path,
                    format!(
                        "more than {} functions: the Lambda service range is full",
                        EXEC_ENV_STRIDE - 10
                    ),
                ));
            }
            let code = match raw.get("Code").and_then(|c| c.get("ZipFile")) {
                None => None,
                Some(v) => Some(
                    self.r
                        .resolve(v, &format!("{path}.Code.ZipFile"))?
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ModelError::new(format!("{path}.Code.ZipFile"), "must be a string")
                        })?,
                )
                .filter(|c| !c.trim().is_empty()),
            };
            let mut enis = vec![];
            if let Some(vc) = &vpc_config {
                for s in &vc.subnets {
                    enis.push(self.eni_for(
                        s,
                        &vc.groups,
                        &name,
                        account.as_deref(),
                        &format!("{path}.VpcConfig.SubnetIds"),
                    )?);
                }
            }
            let eni = enis.first().copied();
            // The execution environment is dual-stack when its function could
            // use IPv6: every subnet of its VpcConfig is dual-stack.
            let dual = vpc_config.as_ref().is_some_and(|vc| {
                vc.subnets
                    .iter()
                    .all(|s| self.m.subnet(s).is_some_and(Subnet::is_dual_stack))
            });
            let exec_ip6 =
                dual.then(|| Ipv6Addr::from(u128::from(lambda6.network()) + offset as u128));
            self.m.functions.push(Function {
                id: id.clone(),
                name,
                vpc_config,
                environment: BTreeMap::new(),
                exec_ip: Ipv4Addr::from(next_exec),
                eni,
                exec_ip6,
                enis,
                code,
                account,
                version_of: None,
            });
        }
        for f in self
            .m
            .functions
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
        {
            if self.m.functions.iter().filter(|g| g.name == f).count() > 1 {
                return Err(ModelError::new(
                    "Resources",
                    format!("two functions are named {f:?}"),
                ));
            }
        }
        // Environment last: it may refer to any address assigned above.
        for i in 0..self.m.functions.len() {
            let id = self.m.functions[i].id.clone();
            let res = &self.t.resources[&id];
            let path = format!("{}.Environment.Variables", res_path(&id));
            let Some(vars) = res
                .properties
                .get("Environment")
                .and_then(|e| e.get("Variables"))
            else {
                continue;
            };
            let vars = self.r.resolve(vars, &path)?;
            let Value::Object(vars) = vars else {
                return Err(ModelError::new(path, "must be a mapping"));
            };
            let env = vars
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    Value::Number(n) => Ok((k, n.to_string())),
                    Value::Bool(b) => Ok((k, b.to_string())),
                    _ => Err(ModelError::new(format!("{path}.{k}"), "must be a string")),
                })
                .collect::<Result<_>>()?;
            self.m.functions[i].environment = env;
        }
        self.m.functions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    /// AWS's `VpcConfig` validation.
    fn vpc_config(&self, id: &str, vc: &Value) -> Result<Option<FunctionVpc>> {
        let path = format!("{}.VpcConfig", res_path(id));
        let field = |f: &str| format!("{path}.{f}");
        let list = |f: &str| string_list(vc.get(f), &field(f));
        // A subnet listed twice is one subnet (one execution environment).
        let mut subnets = list("SubnetIds")?;
        let mut seen = std::collections::HashSet::new();
        subnets.retain(|s| seen.insert(s.clone()));
        let mut groups = list("SecurityGroupIds")?;
        let ipv6 = match vc.get("Ipv6AllowedForDualStack") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(_) => {
                return Err(ModelError::new(
                    field("Ipv6AllowedForDualStack"),
                    "must be true or false",
                ))
            }
        };
        if subnets.is_empty() && groups.is_empty() {
            return Ok(None);
        }
        if subnets.is_empty() || groups.is_empty() {
            return Err(ModelError::new(path, "InvalidParameterValueException: SubnetIds and SecurityGroupIds must both be given or both be empty"));
        }
        if subnets.len() > MAX_VPC_CONFIG_SUBNETS {
            return Err(ModelError::new(
                field("SubnetIds"),
                format!("InvalidParameterValueException: at most {MAX_VPC_CONFIG_SUBNETS} subnets"),
            ));
        }
        if groups.len() > MAX_VPC_CONFIG_GROUPS {
            return Err(ModelError::new(field("SecurityGroupIds"), format!("InvalidParameterValueException: at most {MAX_VPC_CONFIG_GROUPS} security groups")));
        }
        let mut vpc: Option<String> = None;
        for (i, s) in subnets.iter().enumerate() {
            if self.ipv6_only.contains_key(s) {
                return Err(ModelError::new(
                    format!("{}[{i}]", field("SubnetIds")),
                    format!("InvalidParameterValueException: Lambda does not support IPv6-only subnets ({s} is Ipv6Native)"),
                ));
            }
            let sn = self.m.subnet(s).ok_or_else(|| {
                ModelError::new(format!("{}[{i}]", field("SubnetIds")), format!("InvalidSubnetIDException: {s:?} is not an AWS::EC2::Subnet of this template"))
            })?;
            match &vpc {
                Some(v) if *v != sn.vpc => {
                    return Err(ModelError::new(
                        field("SubnetIds"),
                        "InvalidParameterValueException: all subnets must be in one VPC",
                    ))
                }
                _ => vpc = Some(sn.vpc.clone()),
            }
        }
        let vpc = vpc.expect("non-empty");
        for (i, g) in groups.iter().enumerate() {
            match self.m.group(g) {
                None => {
                    return Err(ModelError::new(format!("{}[{i}]", field("SecurityGroupIds")), format!("InvalidSecurityGroupIDException: {g:?} does not exist")))
                }
                Some(sg) if sg.vpc != vpc => {
                    return Err(ModelError::new(
                        format!("{}[{i}]", field("SecurityGroupIds")),
                        format!("InvalidParameterValueException: security group {g:?} is not in the subnets' VPC {vpc}"),
                    ))
                }
                _ => {}
            }
        }
        if ipv6 {
            if let Some(s) = subnets
                .iter()
                .find(|s| !self.m.subnet(s).is_some_and(Subnet::is_dual_stack))
            {
                return Err(ModelError::new(
                    field("Ipv6AllowedForDualStack"),
                    format!("InvalidParameterValueException: Ipv6AllowedForDualStack needs dual-stack subnets, and subnet {s} has no IPv6 block"),
                ));
            }
        }
        groups.sort();
        groups.dedup();
        self.check_rules_x_groups(&groups, &field("SecurityGroupIds"))?;
        Ok(Some(FunctionVpc {
            vpc,
            subnets,
            groups,
            ipv6_allowed_for_dual_stack: ipv6,
        }))
    }

    /// The shared Hyperplane ENI of (subnet, groups), created on first use.
    fn eni_for(
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

/// An interface's IPv6 address as the template asks for it.
enum V6Request {
    None,
    /// The address and the path of the field that gave it.
    Explicit(Ipv6Addr, String),
    Auto,
}

/// Stable 64-bit hash for generated ids (FNV-1a).
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    })
}

pub mod flowlog;
mod network_acl;
pub mod route_table;
/// The route tables' module under its former name.
pub use route_table as route;
mod share;
pub use flowlog::FlowLog;
pub use network_acl::{AclEntry, NetworkAcl, MAX_ACL_RULES_PER_DIRECTION};
pub use route_table::{EgressOnlyInternetGateway, InternetGateway, RouteTable};
pub use share::{is_account_id, ResourceShare, RESOURCE_SHARE};
pub mod internet;
pub use internet::{InternetHost, PublicIp};
pub mod nat_gateway;
pub use nat_gateway::NatGateway;
pub mod endpoint;
pub use endpoint::{EndpointType, VpcEndpoint};

#[cfg(test)]
mod tests;
