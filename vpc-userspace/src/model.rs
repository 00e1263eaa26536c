//! The AWS model built from a template: VPCs, subnets, security groups,
//! hosts (instances and network interfaces), Lambda functions and the
//! Hyperplane ENIs they need. Validation happens here, before anything is
//! applied; every error names the resource and the field.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::Ipv4Addr,
};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{self, ModelError, Resolver, Result, Template};

/// The Lambda service VPC's range, where execution environments live.
/// AWS does not document its own; 198.19.0.0/16 is from the benchmarking
/// block (RFC 2544), so it does not collide with customer VPC ranges.
pub const LAMBDA_SERVICE_CIDR: &str = "198.19.0.0/16";
/// The Lambda-side gateway execution environments route through.
pub const LAMBDA_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
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
            acl_rules: acl::MAX_ACL_RULES_PER_DIRECTION,
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
    /// Resource types this project does not model: (logical id, type).
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vpc {
    pub id: String,
    /// 1-based index used in the datapath.
    pub index: u32,
    pub cidr: Ipv4Net,
    pub default_group: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub az: String,
    /// Its network ACL: the VPC's default one until associated.
    pub acl: String,
}

impl Subnet {
    /// The VPC router's address in this subnet (base + 1), as at AWS.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1)
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
}

/// An EC2 instance or a standalone network interface: one namespace each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub id: String,
    pub kind: HostKind,
    pub subnet: String,
    pub ip: Ipv4Addr,
    pub groups: Vec<String>,
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
    quotas: Quotas,
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
            skipped: vec![],
        };
        Ok(Self {
            t,
            r,
            m,
            used: HashMap::new(),
            quotas: Quotas::default(),
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
            acl::NETWORK_ACL,
            acl::NETWORK_ACL_ENTRY,
            acl::SUBNET_ACL_ASSOCIATION,
            PREFIX_LIST,
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
                    self.attr(&id, "DefaultNetworkAcl", acl::default_acl_id(&id));
                }
                NETWORK_INTERFACE => self.attr(&id, "Id", id.clone()),
                PREFIX_LIST => self.attr(&id, "PrefixListId", id.clone()),
                _ => {}
            }
        }
        self.vpcs()?;
        self.subnets()?;
        self.network_acls()?;
        self.prefix_lists()?;
        self.groups()?;
        self.standalone_rules()?;
        self.check_group_refs()?;
        self.hosts()?;
        self.functions()?;
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
            let vpcs = self
                .m
                .vpcs
                .iter()
                .map(|v| (format!("VPC {}", v.id), v.cidr));
            check_block(
                cidr,
                "VPC",
                std::iter::once(lambda_range).chain(vpcs),
                &path,
            )?;
            let default_group = format!("{id}.DefaultSecurityGroup");
            self.m.vpcs.push(Vpc {
                id: id.clone(),
                index: self.m.vpcs.len() as u32 + 1,
                cidr,
                default_group: default_group.clone(),
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
        }
        if self.m.vpcs.is_empty() {
            return Err(ModelError::new(
                "Resources",
                "the template declares no AWS::EC2::VPC",
            ));
        }
        Ok(())
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

    fn subnets(&mut self) -> Result<()> {
        for res in self.of_type(SUBNET) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, id, "VpcId")?;
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
            if p.get("Ipv6CidrBlock").is_some()
                || bool_field(&p, id, "AssignIpv6AddressOnCreation")?
            {
                return Err(ModelError::new(
                    format!("{}.Ipv6CidrBlock", res_path(id)),
                    "IPv6 subnets are not supported by this slice yet (the datapath handles IPv6; the topology is IPv4)",
                ));
            }
            let az = str_field(&p, id, "AvailabilityZone")?
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}a", self.r.region));
            self.attr(id, "SubnetId", id.clone());
            self.attr(id, "CidrBlock", cidr.to_string());
            self.attr(id, "AvailabilityZone", az.clone());
            self.attr(id, "VpcId", vpc.clone());
            self.m.subnets.push(Subnet {
                id: id.clone(),
                acl: acl::default_acl_id(&vpc),
                vpc,
                cidr,
                az,
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
            let egress = match p.get("SecurityGroupEgress") {
                None => vec![Rule::allow_all(Peer::Cidr(
                    "0.0.0.0/0".parse().expect("constant"),
                ))],
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
                    (HostKind::NetworkInterface, _) => (p.clone(), res_path(&id), "GroupSet"),
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
                pending.push((id, hk, subnet, want, groups, format!("{prefix}.{ip_field}")));
            }
        }
        pending.sort_by_key(|p| p.3.is_none());
        for (id, kind, subnet, want, groups, path) in pending {
            let ip = self.take_ip(&subnet, want, &path)?;
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
                HostKind::NetworkInterface => {
                    self.attr(&id, "PrimaryPrivateIpAddress", ip.to_string());
                    self.attr(&id, "Id", id.clone());
                }
            }
            self.m.hosts.push(Host {
                id,
                kind,
                subnet: subnet.id.clone(),
                ip,
                groups,
            });
        }
        self.m.hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    fn functions(&mut self) -> Result<()> {
        let lambda: Ipv4Net = LAMBDA_SERVICE_CIDR.parse().expect("constant");
        for (next_exec, res) in (u32::from(lambda.network()) + 10..).zip(self.of_type(FUNCTION)) {
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
            self.attr(
                &id,
                "Arn",
                format!(
                    "arn:aws:lambda:{}:{}:function:{name}",
                    self.m.region, self.m.account
                ),
            );
            let eni = match &vpc_config {
                None => None,
                Some(vc) => {
                    let mut first = None;
                    for s in &vc.subnets {
                        let idx = self.eni_for(
                            s,
                            &vc.groups,
                            &name,
                            &format!("{path}.VpcConfig.SubnetIds"),
                        )?;
                        first.get_or_insert(idx);
                    }
                    first
                }
            };
            self.m.functions.push(Function {
                id: id.clone(),
                name,
                vpc_config,
                environment: BTreeMap::new(),
                exec_ip: Ipv4Addr::from(next_exec),
                eni,
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
        let subnets = list("SubnetIds")?;
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
            return Err(ModelError::new(
                field("Ipv6AllowedForDualStack"),
                "InvalidParameterValueException: Ipv6AllowedForDualStack needs dual-stack subnets, and these subnets have no IPv6 block",
            ));
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
        path: &str,
    ) -> Result<u32> {
        if let Some(e) = self
            .m
            .enis
            .iter_mut()
            .find(|e| e.subnet == subnet && e.groups == groups)
        {
            e.functions.push(function.to_string());
            return Ok(e.index);
        }
        let sn = self.m.subnet(subnet).expect("validated").clone();
        let ip = self.take_ip(&sn, None, path)?;
        let index = self.m.enis.len() as u32 + 1;
        let id = format!(
            "eni-0{:016x}",
            fnv1a(&format!(
                "{}/{subnet}/{}",
                self.m.stack_name,
                groups.join(",")
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
        });
        Ok(index)
    }
}

/// Stable 64-bit hash for generated ids (FNV-1a).
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    })
}

mod acl;
pub use acl::{AclEntry, NetworkAcl, MAX_ACL_RULES_PER_DIRECTION};

#[cfg(test)]
mod tests;
