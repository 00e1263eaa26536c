//! The AWS model built from a template: VPCs, subnets, security groups,
//! hosts (instances and network interfaces), Lambda functions and the
//! Hyperplane ENIs they need. Validation happens here, before anything is
//! applied; every error names the resource and the field.
//!
//! Each resource has its file (its types, its `Model` lookups and the
//! builder pass that validates it); this one holds [`Model`], [`build`],
//! the order of the passes, the template field helpers and the checks that
//! span resources (references to a VPC, subnet associations, security
//! group references and the rules-per-interface quota).
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{self, Context, Env, ModelError, Resolver, Result, Template};

pub mod dhcp_options;
pub mod endpoint;
pub mod flowlog;
mod function;
mod function_code;
pub mod function_url;
mod hyperplane_eni;
mod instance;
pub mod internet;
mod internet_gateway;
pub mod nat_gateway;
mod network_acl;
pub mod placement;
mod prefix_list;
mod quotas;
pub mod route_table;
mod security_group;
pub mod security_group_edit;
mod share;
mod stack_resource;
pub mod stacks;
mod subnet;
mod vpc;
/// The route tables' module under its former name.
pub use route_table as route;

pub use dhcp_options::{DhcpOptions, DnsSettings};
pub use endpoint::{EndpointType, VpcEndpoint};
pub use flowlog::FlowLog;
use function::FUNCTION;
pub use function::{
    exec_env_id, ExecEnv, Function, FunctionVpc, Replica, Runtime, RuntimeConfig,
    DEFAULT_MEMORY_SIZE, DEFAULT_TIMEOUT, EXEC_ENV_STRIDE, FUNCTION_OFFSETS, LAMBDA_GATEWAY,
    LAMBDA_SERVICE_CIDR, LAMBDA_SERVICE_CIDR6, MAX_RESERVED_CONCURRENCY, MAX_VPC_CONFIG_GROUPS,
    MAX_VPC_CONFIG_SUBNETS, MIN_UNRESERVED_CONCURRENCY, UNRESERVED_BELOW_MINIMUM,
};
pub use function_code::{find_asset, Asset};
pub use function_url::{AuthType, FunctionUrl};
pub use hyperplane_eni::{
    eni_id, in_use, AllocError, Ec2Error, HyperplaneEniSpec, REQUESTER_MANAGED_DETACH,
};
pub use instance::{Host, HostKind, API_METADATA, MAX_PRIVATE_IPS};
use instance::{INSTANCE, NETWORK_INTERFACE};
pub use internet::{InternetHost, PublicIp};
pub use internet_gateway::{EgressOnlyInternetGateway, InternetGateway};
pub use nat_gateway::NatGateway;
pub use network_acl::{AclEntry, NetworkAcl, MAX_ACL_RULES_PER_DIRECTION};
pub use prefix_list::PrefixList;
use prefix_list::PREFIX_LIST;
pub use quotas::{Quotas, MAX_RULES_PER_DIRECTION, MAX_RULES_X_GROUPS};
pub use route_table::RouteTable;
pub use security_group::{parse_protocol, parse_rule, Peer, Protocol, Rule, SecurityGroup};
use security_group::{SG, SG_EGRESS, SG_INGRESS};
pub use share::{is_account_id, ResourceShare, RESOURCE_SHARE};
pub use stack_resource::{is_kept, StackResource};
pub use stacks::{build_stacks, ModelStack, StackSource};
use subnet::SUBNET;
pub use subnet::{CidrReservation, Subnet, SUBNET_CIDR_RESERVATION};
pub use template::{StackOutput, StackParameter};
pub use vpc::{Vpc, AMAZON_IPV6_POOL, VPC_ROUTER6};
use vpc::{VPC, VPC_CIDR_BLOCK};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// Elastic IPs (`AWS::EC2::EIP`): logical id and address, associated
    /// or not (the EC2 API's DescribeAddresses).
    #[serde(default)]
    pub elastic_ips: Vec<(String, Ipv4Addr)>,
    /// Resources kept in the stack that do not change the network (IAM,
    /// logs, custom resources, ...), with their `Ref` and attributes.
    #[serde(default)]
    pub stack_resources: Vec<StackResource>,
    /// The stack's `Outputs`, evaluated (those whose condition holds).
    #[serde(default)]
    pub outputs: Vec<StackOutput>,
    /// The parameters' values (`NoEcho` ones masked).
    #[serde(default)]
    pub parameters: Vec<StackParameter>,
    /// Every condition's value.
    #[serde(default)]
    pub conditions: BTreeMap<String, bool>,
    /// Export names of other stacks this one imports (`Fn::ImportValue`).
    #[serde(default)]
    pub imports: Vec<String>,
    /// `AWS::StackId`.
    #[serde(default)]
    pub stack_id: String,
    /// Subnets shared with participant accounts (`AWS::RAM::ResourceShare`).
    #[serde(default)]
    pub shares: Vec<ResourceShare>,
    /// `AWS::EC2::FlowLog` resources.
    #[serde(default)]
    pub flow_logs: Vec<FlowLog>,
    /// `AWS::EC2::DHCPOptions`.
    #[serde(default)]
    pub dhcp_options: Vec<DhcpOptions>,
    /// `AWS::EC2::VPCEndpoint` resources.
    #[serde(default)]
    pub vpc_endpoints: Vec<VpcEndpoint>,
    /// Function URLs (`AWS::Lambda::Url`, CreateFunctionUrlConfig).
    #[serde(default)]
    pub function_urls: Vec<FunctionUrl>,
    /// The deployment's stacks (one per template), each with its
    /// resources, outputs, parameters and conditions.
    #[serde(default)]
    pub stacks: Vec<ModelStack>,
    /// What the IAM API created (the templates' IAM is in
    /// `stack_resources`): kept over every apply, as the API's functions
    /// are ([`crate::iam`]).
    #[serde(default)]
    pub iam: crate::iam::Store,
    /// Where each resource runs when the VPC spans several hosts
    /// ([`placement`]).
    #[serde(default)]
    pub placement: placement::Placement,
}

impl Model {
    /// The domain of private DNS names, as EC2 names them:
    /// `ec2.internal` in us-east-1, `<region>.compute.internal` elsewhere.
    /// An output by its key (`Outputs.<key>`).
    pub fn output(&self, key: &str) -> Option<&StackOutput> {
        self.outputs.iter().find(|o| o.key == key)
    }

    /// The outputs this stack exports: (export name, value).
    pub fn exports(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outputs
            .iter()
            .filter_map(|o| Some((o.export_name.as_deref()?, o.value.as_str())))
    }

    pub fn private_dns_domain(&self) -> String {
        if self.region == "us-east-1" {
            "ec2.internal".into()
        } else {
            format!("{}.compute.internal", self.region)
        }
    }
}

fn yes() -> bool {
    true
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

/// Builds and validates the model with AWS's default quotas, in the
/// default region and account, with an empty parameter store (its
/// fallbacks only) and no other stacks. Nothing touches the kernel.
pub fn build(text: &str, params: &HashMap<String, String>, stack_name: &str) -> Result<Model> {
    build_with(text, params, stack_name, Quotas::default())
}

pub fn build_with(
    text: &str,
    params: &HashMap<String, String>,
    stack_name: &str,
    quotas: Quotas,
) -> Result<Model> {
    build_over(text, params, &Context::new(stack_name), quotas, None)
}

/// Builds the model of a template for the stack `ctx` describes (its name,
/// region, account, parameter store, the other stacks' exports), as a
/// replacement of `prior` (the model in force) if there is one: what both
/// have keeps what AWS would keep — an instance, an interface, a NAT
/// gateway or an endpoint ENI its private addresses, an Elastic IP or a
/// launch-assigned public IP its address, a VPC, subnet or NAT gateway its
/// datapath index — and new resources take what is free (never an address
/// a kept resource or a running Hyperplane ENI holds).
pub fn build_over(
    text: &str,
    params: &HashMap<String, String>,
    ctx: &Context,
    quotas: Quotas,
    prior: Option<&Model>,
) -> Result<Model> {
    build_at(text, params, ctx, quotas, prior, None)
}

/// `build_over` of a template read from directory `dir`: local paths in
/// functions' `Code` (and a CDK app's assets) are found from there
/// (`None`: the current directory).
pub fn build_at(
    text: &str,
    params: &HashMap<String, String>,
    ctx: &Context,
    quotas: Quotas,
    prior: Option<&Model>,
    dir: Option<&std::path::Path>,
) -> Result<Model> {
    build_stacks(
        &[StackSource {
            name: &ctx.stack_name,
            text,
            params,
            dir,
        }],
        ctx,
        quotas,
        prior,
    )
}

/// VPCs, subnets and NAT gateways of `prior` keep their datapath indices;
/// new ones take the next after every index `prior` used, so none takes
/// the index of one removed in the same change (whose entries the policy
/// in force may still name until the switch).
fn keep_indices(m: &mut Model, prior: &Model) {
    /// `new`'s (id, index) pairs renumbered: an id of `old` gets its old
    /// index, others the next free one.
    fn renumber<'a>(
        new: impl Iterator<Item = (&'a str, &'a mut u32)>,
        old: impl Iterator<Item = (&'a str, u32)>,
    ) {
        let old: HashMap<&str, u32> = old.collect();
        let mut next = old.values().copied().max().unwrap_or(0);
        for (id, index) in new {
            *index = match old.get(id) {
                Some(i) => *i,
                None => {
                    next += 1;
                    next
                }
            };
        }
    }
    renumber(
        m.vpcs.iter_mut().map(|v| (v.id.as_str(), &mut v.index)),
        prior.vpcs.iter().map(|v| (v.id.as_str(), v.index)),
    );
    renumber(
        m.subnets.iter_mut().map(|v| (v.id.as_str(), &mut v.index)),
        prior.subnets.iter().map(|v| (v.id.as_str(), v.index)),
    );
    renumber(
        m.nat_gateways
            .iter_mut()
            .map(|v| (v.id.as_str(), &mut v.index)),
        prior.nat_gateways.iter().map(|v| (v.id.as_str(), v.index)),
    );
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
    /// The model this template replaces (`build_over`).
    prior: Option<Model>,
    /// Per subnet: addresses automatic allocation must not hand out (kept
    /// resources' and running Hyperplane ENIs').
    reserved: HashMap<String, BTreeSet<Ipv4Addr>>,
    reserved6: HashMap<String, BTreeSet<Ipv6Addr>>,
    /// Public-pool addresses taken, and those kept for their owners (an
    /// Elastic IP's logical id, or an instance's for a launch address).
    public_used: BTreeSet<Ipv4Addr>,
    public_kept: HashMap<String, Ipv4Addr>,
    /// Where local paths in functions' `Code` are found (`build_at`), by
    /// stack (scope): its template's directory.
    code_dirs: Vec<Option<std::path::PathBuf>>,
}

impl<'a> Builder<'a> {
    fn new(t: &'a Template, env: Env) -> Self {
        let r = Resolver::new(t, env);
        let m = Model {
            stack_name: r.stack_name.clone(),
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
            elastic_ips: vec![],
            stack_resources: vec![],
            outputs: vec![],
            parameters: vec![],
            conditions: BTreeMap::new(),
            imports: vec![],
            stack_id: String::new(),
            shares: vec![],
            flow_logs: vec![],
            dhcp_options: vec![],
            vpc_endpoints: vec![],
            function_urls: vec![],
            stacks: vec![],
            iam: Default::default(),
            placement: Default::default(),
        };
        Self {
            t,
            r,
            m,
            used: HashMap::new(),
            used6: HashMap::new(),
            ipv6_only: BTreeMap::new(),
            quotas: Quotas::default(),
            eips: vec![],
            prior: None,
            reserved: HashMap::new(),
            reserved6: HashMap::new(),
            public_used: BTreeSet::new(),
            public_kept: HashMap::new(),
            code_dirs: vec![],
        }
    }

    /// Reserves what the resources of `prior` still in the template hold,
    /// and what its Hyperplane ENIs hold (they outlive any template).
    fn keep(&mut self, prior: &Model) {
        let present = |id: &str| {
            let base = id.split('.').next().unwrap_or(id);
            self.t.resources.contains_key(base)
        };
        let mut v4: Vec<(&str, Ipv4Addr)> = vec![];
        let mut v6: Vec<(&str, Ipv6Addr)> = vec![];
        for h in prior.hosts.iter().filter(|h| present(&h.id)) {
            v4.extend(h.ips().map(|a| (h.subnet.as_str(), a)));
            v6.extend(h.ip6.map(|a| (h.subnet.as_str(), a)));
        }
        for g in prior.nat_gateways.iter().filter(|g| present(&g.id)) {
            v4.push((&g.subnet, g.ip));
        }
        for e in &prior.enis {
            v4.push((&e.subnet, e.ip));
            v6.extend(e.ip6.map(|a| (e.subnet.as_str(), a)));
        }
        for (sn, a) in v4 {
            self.reserved.entry(sn.to_string()).or_default().insert(a);
        }
        for (sn, a) in v6 {
            self.reserved6.entry(sn.to_string()).or_default().insert(a);
        }
        // Every Elastic IP keeps its address, associated or not.
        let public = prior
            .public_ips
            .iter()
            .map(|p| (p.eip.clone().unwrap_or_else(|| p.host.clone()), p.ip))
            .chain(prior.elastic_ips.iter().cloned())
            .chain(
                prior
                    .nat_gateways
                    .iter()
                    .filter(|g| !g.private)
                    .map(|g| (g.eip.clone(), g.public_ip)),
            );
        let kept: Vec<_> = public.filter(|(owner, _)| present(owner)).collect();
        self.public_kept.extend(kept);
        self.prior = Some(prior.clone());
    }

    /// The address `id` had in `subnet` in the prior model (a host, an
    /// endpoint's ENI, a NAT gateway).
    fn kept_ip(&self, id: &str, subnet: &str) -> Option<(Ipv4Addr, Option<Ipv6Addr>)> {
        let p = self.prior.as_ref()?;
        p.hosts
            .iter()
            .find(|h| h.id == id && h.subnet == subnet)
            .map(|h| (h.ip, h.ip6))
            .or_else(|| {
                p.nat_gateways
                    .iter()
                    .find(|g| g.id == id && g.subnet == subnet)
                    .map(|g| (g.ip, None))
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
            SUBNET_CIDR_RESERVATION,
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
            internet_gateway::INTERNET_GATEWAY,
            internet_gateway::VPC_GATEWAY_ATTACHMENT,
            internet_gateway::EGRESS_ONLY_INTERNET_GATEWAY,
            flowlog::FLOW_LOG,
            internet::EIP,
            internet::EIP_ASSOCIATION,
            nat_gateway::NAT_GATEWAY,
            endpoint::VPC_ENDPOINT,
            function_url::URL,
            dhcp_options::DHCP_OPTIONS,
            dhcp_options::DHCP_OPTIONS_ASSOCIATION,
            // Refused once the VPCs are known (`vpc_peerings`).
            vpc::VPC_PEERING_CONNECTION,
        ];
        self.check_types(&known)?;
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
                internet_gateway::INTERNET_GATEWAY => {
                    self.attr(&id, "InternetGatewayId", id.clone())
                }
                internet_gateway::EGRESS_ONLY_INTERNET_GATEWAY => self.attr(&id, "Id", id.clone()),
                _ => {}
            }
        }
        self.stack_resource_ids()?;
        self.vpc_endpoint_ids();
        self.allocate_elastic_ips()?;
        self.vpcs()?;
        self.vpc_peerings()?;
        self.vpc_cidr_blocks()?;
        self.dhcp_options()?;
        self.subnets()?;
        self.subnet_cidr_reservations()?;
        self.network_acls()?;
        self.prefix_lists()?;
        self.managed_prefix_lists();
        self.route_tables()?;
        self.groups()?;
        // The restriction removes the default rules a VPC brings (as the
        // CDK's handler revokes them), not rules added to the group.
        self.restrict_default_groups()?;
        self.standalone_rules()?;
        self.check_group_refs()?;
        // After the groups: a share may name some.
        self.resource_shares()?;
        self.hosts()?;
        self.placement_hints()?;
        self.public_addresses()?;
        self.extra_attributes();
        self.nat_gateways()?;
        self.vpc_endpoints()?;
        self.functions()?;
        self.flow_logs()?;
        self.finish_stack()?;
        Ok(self.m)
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
        let sn = self.subnet_mut(id, subnet)?;
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
}

/// Stable 64-bit hash for generated ids (FNV-1a).
pub use template::fnv1a;

#[cfg(test)]
mod tests;
