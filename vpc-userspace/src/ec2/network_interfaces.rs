//! Network interfaces as EC2 shows them: DescribeNetworkInterfaces of
//! every instance's interface and every `AWS::EC2::NetworkInterface`
//! (`interface`, the account's own), and of the requester-managed ones:
//! Lambda's Hyperplane ENIs (`InterfaceType` `lambda`, the description
//! Lambda gives them, `in-use` or `available`), so the "Lambda ENI finder"
//! queries (by description, requester id or type) find each function's
//! interfaces; NAT gateways' (`nat_gateway`, "Interface for NAT Gateway
//! nat-...") and interface endpoints' (`vpc_endpoint`, "VPC Endpoint
//! Interface vpce-..."), with the ids their flow-log records carry.
//! Create / Delete / ModifyNetworkInterfaceAttribute of the API's own
//! (`AWS::EC2::NetworkInterface` of `ec2-api`); DeleteNetworkInterface of
//! one in use is refused as EC2 refuses it. An instance has exactly one
//! interface here: Attach / DetachNetworkInterface are refused
//! (docs/ec2.md).
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use super::{
    filters, ids, instances, security_groups::group_name, stack, tags, xml, Ctx, Ec2Error,
    Ec2Result, Params, View,
};
use crate::{
    cloudformation::xml::Xml,
    model::{flowlog::host_eni_id, Host, HostKind, HyperplaneEniSpec},
};

pub const NETWORK_INTERFACE: &str = "AWS::EC2::NetworkInterface";

/// Lambda's description of a Hyperplane ENI: `AWS Lambda VPC ENI-` and the
/// name of the function it was created for (its first user), as the ENI
/// finder matches it (`AWS Lambda VPC ENI*`).
fn description(v: &View, e: &HyperplaneEniSpec) -> String {
    let first = e
        .functions
        .first()
        .and_then(|f| v.model.function(f))
        .map(|f| f.name.clone())
        .unwrap_or_default();
    format!("AWS Lambda VPC ENI-{first}")
}

/// The requester: Lambda's service role session (`*:awslambda_*`, what the
/// ENI finder filters on), stable per ENI.
fn requester_id(e: &HyperplaneEniSpec) -> String {
    let n = crate::template::fnv1a(&e.id) % 1_000_000_000;
    format!("AROAXXLAMBDAHYPERPLANE:awslambda_{n:09}")
}

/// What an interface is attached to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Attachment {
    /// `available`.
    None,
    /// By its service (`ela-attach`), not to an instance.
    Service,
    /// An instance's primary interface (device index 0): its EC2 id and
    /// launch time (ms).
    Instance { id: String, launch_ms: u64 },
}

/// An interface as EC2 describes it.
pub(super) struct Nic {
    pub id: String,
    /// Logical ids.
    subnet: String,
    vpc: String,
    description: String,
    /// A requester-managed interface's requester.
    requester_id: Option<String>,
    interface_type: &'static str,
    attachment: Attachment,
    ip: Ipv4Addr,
    /// Secondary private IPv4 addresses.
    secondary: Vec<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    public_ip: Option<Ipv4Addr>,
    /// Logical ids.
    groups: Vec<String>,
    source_dest_check: bool,
    tags: Vec<(String, String)>,
    /// The host (logical id) of an instance's or a standalone interface.
    host: Option<String>,
}

impl Nic {
    fn in_use(&self) -> bool {
        self.attachment != Attachment::None
    }

    fn instance(&self) -> Option<&str> {
        match &self.attachment {
            Attachment::Instance { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// The interface of host `h` (an instance's or a standalone
/// `AWS::EC2::NetworkInterface`): its ENI id is the flow logs'.
pub(super) fn of_host(v: &View, h: &Host) -> Nic {
    let m = &v.model;
    let attachment = match h.kind {
        HostKind::Instance => Attachment::Instance {
            id: v.id(&h.id),
            launch_ms: v.created_ms(&h.id),
        },
        _ => Attachment::None,
    };
    Nic {
        id: host_eni_id(&m.stack_name, &h.id),
        subnet: h.subnet.clone(),
        vpc: m
            .subnet(&h.subnet)
            .map(|s| s.vpc.clone())
            .unwrap_or_default(),
        // An instance's primary interface has none; a standalone one the
        // one its template or CreateNetworkInterface gave.
        description: match h.kind {
            HostKind::Instance => String::new(),
            _ => v.prop(&h.id, "Description").unwrap_or_default().to_string(),
        },
        requester_id: None,
        interface_type: "interface",
        attachment,
        ip: h.ip,
        secondary: h.secondary.clone(),
        ip6: h.ip6,
        public_ip: m.public_ip(&h.id),
        groups: h.groups.clone(),
        source_dest_check: h.source_dest_check,
        tags: match h.kind {
            HostKind::Instance => vec![],
            _ => v.tags(&h.id),
        },
        host: Some(h.id.clone()),
    }
}

/// Every interface: instances' and standalone ones (a template's first,
/// then the API's in the order it made them), then the requester-managed
/// ones: Hyperplane ENIs, NAT gateways' (no groups, no source/destination
/// check: it forwards), interface endpoints' (the endpoint's groups). The
/// services' requester is AWS's (`amazon-aws`, as their attachments'
/// owner reads).
fn nics(v: &View) -> Vec<Nic> {
    let m = &v.model;
    let mut hosts: Vec<&Host> = m
        .hosts
        .iter()
        .filter(|h| matches!(h.kind, HostKind::Instance | HostKind::NetworkInterface))
        .collect();
    hosts.sort_by_key(|h| v.api.created(&h.id));
    let mut out: Vec<Nic> = hosts.into_iter().map(|h| of_host(v, h)).collect();
    out.extend(m.enis.iter().map(|e| Nic {
        id: e.id.clone(),
        subnet: e.subnet.clone(),
        vpc: e.vpc.clone(),
        description: description(v, e),
        requester_id: Some(requester_id(e)),
        interface_type: "lambda",
        attachment: if e.available {
            Attachment::None
        } else {
            Attachment::Service
        },
        ip: e.ip,
        secondary: vec![],
        ip6: e.ip6,
        public_ip: None,
        groups: e.groups.clone(),
        source_dest_check: true,
        tags: vec![],
        host: None,
    }));
    let vpc_of = |subnet: &str| m.subnet(subnet).map(|s| s.vpc.clone()).unwrap_or_default();
    out.extend(m.nat_gateways.iter().map(|g| Nic {
        id: crate::flowlogs::nat_gateway_eni_id(&v.name, &g.id),
        subnet: g.subnet.clone(),
        vpc: vpc_of(&g.subnet),
        description: format!("Interface for NAT Gateway {}", v.id(&g.id)),
        requester_id: Some("amazon-aws".into()),
        interface_type: "nat_gateway",
        attachment: Attachment::Service,
        ip: g.ip,
        secondary: vec![],
        ip6: None,
        public_ip: None,
        groups: vec![],
        source_dest_check: false,
        tags: vec![],
        host: None,
    }));
    for e in &m.vpc_endpoints {
        for (subnet, host) in &e.enis {
            let Some(h) = m.hosts.iter().find(|h| &h.id == host) else {
                continue;
            };
            out.push(Nic {
                id: host_eni_id(&m.stack_name, host),
                subnet: subnet.clone(),
                vpc: e.vpc.clone(),
                description: format!("VPC Endpoint Interface {}", e.vpce_id),
                requester_id: Some("amazon-aws".into()),
                interface_type: "vpc_endpoint",
                attachment: Attachment::Service,
                ip: h.ip,
                secondary: vec![],
                ip6: h.ip6,
                public_ip: None,
                groups: e.groups.clone(),
                source_dest_check: true,
                tags: vec![],
                host: None,
            });
        }
    }
    out
}

fn status(n: &Nic) -> &'static str {
    if n.in_use() {
        "in-use"
    } else {
        "available"
    }
}

/// One interface's XML: in DescribeNetworkInterfaces' set, or (`in_instance`)
/// in an instance's `networkInterfaceSet`, which leaves out what the
/// instance already says (its zone, the attachment's instance, tags).
pub(super) fn item(x: &mut Xml, v: &View, e: &Nic, in_instance: bool) {
    let az = v
        .model
        .subnet(&e.subnet)
        .map(|s| s.az.clone())
        .unwrap_or_default();
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &v.id(&e.subnet))
        .leaf("vpcId", &v.id(&e.vpc));
    if !in_instance {
        x.leaf("availabilityZone", &az);
    }
    x.leaf("description", &e.description)
        .leaf("ownerId", v.account())
        .opt("requesterId", e.requester_id.as_deref())
        .flag("requesterManaged", e.requester_id.is_some())
        .leaf("status", status(e))
        .leaf("interfaceType", e.interface_type)
        .leaf("privateIpAddress", &e.ip.to_string());
    if e.host.is_some() {
        x.leaf("privateDnsName", &instances::dns_name(v, e.ip));
    }
    x.flag("sourceDestCheck", e.source_dest_check);
    x.items("groupSet", e.groups.iter(), |x, g| {
        x.leaf("groupId", &v.id(g));
        if let Some(sg) = v.model.groups.iter().find(|s| &s.id == g) {
            x.leaf("groupName", &group_name(v, sg));
        }
    });
    match &e.attachment {
        Attachment::None => {}
        Attachment::Service => {
            x.open("attachment")
                .leaf("attachmentId", &format!("ela-attach-{}", &e.id[4..]))
                .leaf("instanceOwnerId", "amazon-aws")
                .leaf("deviceIndex", "1")
                .leaf("status", "attached")
                .flag("deleteOnTermination", false)
                .close("attachment");
        }
        Attachment::Instance { id, launch_ms } => {
            x.open("attachment")
                .leaf("attachmentId", &format!("eni-attach-{}", &e.id[4..]));
            if !in_instance {
                x.leaf("instanceId", id)
                    .leaf("instanceOwnerId", v.account());
            }
            x.leaf("deviceIndex", "0")
                .leaf("status", "attached")
                .leaf(
                    "attachTime",
                    &crate::cloudformation::xml::iso8601(*launch_ms),
                )
                .flag("deleteOnTermination", true)
                .leaf("networkCardIndex", "0")
                .close("attachment");
        }
    }
    if let Some(p) = e.public_ip {
        x.open("association")
            .leaf("publicIp", &p.to_string())
            .leaf("publicDnsName", &instances::public_dns(v, p))
            .leaf("ipOwnerId", "amazon")
            .close("association");
    }
    let ips = std::iter::once(e.ip).chain(e.secondary.iter().copied());
    x.items("privateIpAddressesSet", ips, |x, ip| {
        x.leaf("privateIpAddress", &ip.to_string());
        if e.host.is_some() {
            x.leaf("privateDnsName", &instances::dns_name(v, ip));
        }
        x.flag("primary", ip == e.ip);
        let public = if ip == e.ip {
            e.public_ip
        } else {
            let m = &v.model;
            m.public_ips
                .iter()
                .find(|p| e.host.as_ref() == Some(&p.host) && m.private_of(p) == Some(ip))
                .map(|p| p.ip)
        };
        if let Some(p) = public {
            x.open("association")
                .leaf("publicIp", &p.to_string())
                .leaf("ipOwnerId", "amazon")
                .close("association");
        }
    });
    x.items("ipv6AddressesSet", e.ip6, |x, ip| {
        x.leaf("ipv6Address", &ip.to_string());
    });
    if !in_instance {
        tags::tag_set(x, &e.tags);
    }
}

/// The filters DescribeNetworkInterfaces takes, of interface `e`.
fn field(v: &View, e: &Nic, n: &str) -> Option<Vec<String>> {
    let opt = |s: Option<String>| Some(s.into_iter().collect());
    match n {
        "network-interface-id" => filters::one(e.id.clone()),
        "description" => filters::one(e.description.clone()),
        "interface-type" => filters::one(e.interface_type),
        "requester-id" => opt(e.requester_id.clone()),
        "requester-managed" => filters::boolean(e.requester_id.is_some()),
        "status" => filters::one(status(e)),
        "subnet-id" => filters::one(v.id(&e.subnet)),
        "vpc-id" => filters::one(v.id(&e.vpc)),
        "group-id" => Some(e.groups.iter().map(|g| v.id(g)).collect()),
        "group-name" => Some(
            e.groups
                .iter()
                .filter_map(|g| v.model.group(g).map(|sg| group_name(v, sg)))
                .collect(),
        ),
        "private-ip-address" | "addresses.private-ip-address" => Some(
            std::iter::once(e.ip)
                .chain(e.secondary.iter().copied())
                .map(|a| a.to_string())
                .collect(),
        ),
        "private-dns-name" => opt(e.host.as_ref().map(|_| instances::dns_name(v, e.ip))),
        "ipv6-addresses.ipv6-address" => Some(e.ip6.iter().map(|a| a.to_string()).collect()),
        "association.public-ip" | "addresses.association.public-ip" => {
            opt(e.public_ip.map(|a| a.to_string()))
        }
        "availability-zone" => v.model.subnet(&e.subnet).map(|s| vec![s.az.clone()]),
        "owner-id" => filters::one(v.account()),
        "source-dest-check" => filters::boolean(e.source_dest_check),
        "attachment.status" => opt(e.in_use().then(|| "attached".to_string())),
        "attachment.instance-id" => opt(e.instance().map(str::to_string)),
        "attachment.device-index" => opt(match e.attachment {
            Attachment::None => None,
            Attachment::Service => Some("1".into()),
            Attachment::Instance { .. } => Some("0".into()),
        }),
        "attachment.attachment-id" => opt(match e.attachment {
            Attachment::None => None,
            Attachment::Service => Some(format!("ela-attach-{}", &e.id[4..])),
            Attachment::Instance { .. } => Some(format!("eni-attach-{}", &e.id[4..])),
        }),
        "attachment.instance-owner-id" => opt(match e.attachment {
            Attachment::None => None,
            Attachment::Service => Some("amazon-aws".into()),
            Attachment::Instance { .. } => Some(v.account().to_string()),
        }),
        _ => None,
    }
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let all = nics(&v);
    let wanted = p.list("NetworkInterfaceId");
    for w in &wanted {
        if !all.iter().any(|e| &e.id == w) {
            return Err(not_found(w));
        }
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for e in &all {
        if !wanted.is_empty() && !wanted.contains(&e.id) {
            continue;
        }
        if filters::matches(&fs, &e.tags, |n| field(&v, e, n))? {
            out.push(e);
        }
    }
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("networkInterfaceSet", out, |x, e| item(x, &v, e, false));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub(super) fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidNetworkInterfaceID.NotFound",
        format!("The networkInterface ID '{id}' does not exist"),
    )
}

/// The interface `id` of host kind `kind` (logical id of its host).
fn host_of(v: &View, id: &str, kind: HostKind) -> Option<String> {
    v.model
        .hosts
        .iter()
        .find(|h| h.kind == kind && host_eni_id(&v.model.stack_name, &h.id) == id)
        .map(|h| h.id.clone())
}

/// The host (logical id) of interface `id`, an instance's or a standalone
/// one (a template's too).
pub(super) fn host_id(v: &View, id: &str) -> Ec2Result<String> {
    host_of(v, id, HostKind::NetworkInterface)
        .or_else(|| host_of(v, id, HostKind::Instance))
        .ok_or_else(|| not_found(id))
}

/// The host (logical id) and kind of interface `id`, an instance's or a
/// standalone one the API may change (a template's is refused, naming
/// its stack; a requester-managed one is its service's).
pub(super) fn api_host(v: &View, id: &str) -> Ec2Result<(String, HostKind)> {
    let (l, kind) = host_of(v, id, HostKind::NetworkInterface)
        .map(|l| (l, HostKind::NetworkInterface))
        .or_else(|| host_of(v, id, HostKind::Instance).map(|l| (l, HostKind::Instance)))
        .ok_or_else(|| {
            if nics(v).iter().any(|n| n.id == id) {
                Ec2Error::new(
                    "OperationNotPermitted",
                    format!("{id} is requester-managed: its service manages it"),
                )
            } else {
                not_found(id)
            }
        })?;
    v.owned(&l, id)?;
    Ok((l, kind))
}

/// The groups a call names (`SecurityGroupId.N`), as model ids, each in
/// `vpc`.
fn groups_of(v: &View, p: &Params, vpc: &str) -> Ec2Result<Vec<String>> {
    let mut out = vec![];
    for id in p.list("SecurityGroupId") {
        let g = v.group(&id)?;
        if g.vpc != vpc {
            return Err(Ec2Error::invalid(format!(
                "The security group '{id}' does not belong to VPC '{}'",
                v.id(vpc)
            )));
        }
        out.push(g.id.clone());
    }
    Ok(out)
}

/// CreateNetworkInterface: an `AWS::EC2::NetworkInterface` of the API's
/// stack (`SubnetId`, `GroupSet`, `PrivateIpAddress`, `Description`,
/// `Tags`), a host namespace in its subnet as a template's; `available`
/// (nothing attaches it here). Its id is its host's ENI id, the one flow
/// logs name.
pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let subnet_id = p.required("SubnetId")?.to_string();
    let logical = format!("eni{}", ids::random_hex(ids::HEX));
    let tags = p.tag_specs("network-interface");
    stack::change(ctx, |t, v| {
        let subnet = v.subnet(&subnet_id)?;
        let groups = groups_of(v, p, &subnet.vpc)?;
        let mut props = json!({"SubnetId": subnet.id});
        if !groups.is_empty() {
            props["GroupSet"] = json!(groups);
        }
        for k in ["PrivateIpAddress", "Description"] {
            if let Some(val) = p.get(k) {
                props[k] = val.into();
            }
        }
        // CloudFormation's forms: `PrivateIpAddresses` (`Primary` or
        // not), `SecondaryPrivateIpAddressCount`.
        let listed: Vec<Value> = p
            .structs("PrivateIpAddresses")
            .iter()
            .filter_map(|a| {
                let ip = a.get("PrivateIpAddress")?;
                Some(json!({"PrivateIpAddress": ip, "Primary": a.flag("Primary").unwrap_or(false)}))
            })
            .collect();
        if !listed.is_empty() {
            props["PrivateIpAddresses"] = json!(listed);
        }
        if let Some(n) = p.int("SecondaryPrivateIpAddressCount")? {
            props["SecondaryPrivateIpAddressCount"] = n.into();
        }
        if let Some(tv) = tags::initial(&tags) {
            props["Tags"] = tv;
        }
        t.put(&logical, NETWORK_INTERFACE, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let h = v
        .model
        .hosts
        .iter()
        .find(|h| h.id == logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the interface was not made"))?;
    let mut x = xml();
    x.open("networkInterface");
    item(&mut x, &v, &of_host(&v, h), false);
    x.close("networkInterface");
    Ok(x.0)
}

/// DeleteNetworkInterface: the API's standalone interface goes (its
/// namespace with it); an `available` Lambda ENI (its function's role
/// was deleted first) goes; one in use (an instance's, a service's, a
/// Lambda ENI a function holds) is refused as EC2 refuses it.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NetworkInterfaceId")?.to_string();
    let v = View::load(&ctx.name)?;
    let all = nics(&v);
    let n = all.iter().find(|n| n.id == id);
    if n.is_some_and(|n| n.interface_type != "lambda" && n.in_use()) {
        return Err(Ec2Error::invalid(crate::model::in_use(&id)));
    }
    if n.is_some_and(|n| n.host.is_some()) {
        stack::change(ctx, |t, v| {
            let l = host_of(v, &id, HostKind::NetworkInterface).ok_or_else(|| not_found(&id))?;
            v.owned(&l, &id)?;
            t.remove(&l);
            Ok(())
        })?;
        return super::ok();
    }
    match crate::reconcile::delete_network_interface(&ctx.name, &id) {
        Ok(Ok(_)) => super::ok(),
        Ok(Err(e)) => Err(Ec2Error::new(e.code, e.message)),
        Err(e) => Err(Ec2Error::new("InternalError", format!("{e:#}"))),
    }
}

/// ModifyNetworkInterfaceAttribute of an instance's or a standalone
/// interface the API made: `SecurityGroupId.N` (all its groups at once),
/// `SourceDestCheck.Value`, `Description.Value` (a standalone one's; an
/// instance's primary interface keeps none here).
pub fn modify_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NetworkInterfaceId")?.to_string();
    stack::change(ctx, |t, v| {
        let (l, kind) = api_host(v, &id)?;
        let vpc = v
            .model
            .hosts
            .iter()
            .find(|h| h.id == l)
            .and_then(|h| v.model.subnet(&h.subnet))
            .map(|s| s.vpc.clone())
            .unwrap_or_default();
        let groups = groups_of(v, p, &vpc)?;
        let props = t.props_mut(&l).ok_or_else(|| not_found(&id))?;
        let mut did = false;
        if !groups.is_empty() {
            let list = json!(groups);
            match kind {
                HostKind::Instance => instances::set_groups(props, list),
                _ => {
                    props.insert("GroupSet".into(), list);
                }
            }
            did = true;
        }
        if let Some(val) = p.get("SourceDestCheck.Value") {
            props.insert(
                "SourceDestCheck".into(),
                Value::Bool(val.eq_ignore_ascii_case("true")),
            );
            did = true;
        }
        if let Some(val) = p.get("Description.Value") {
            if kind == HostKind::Instance {
                return Err(Ec2Error::invalid(
                    "an instance's primary interface has no description here (docs/ec2.md)",
                ));
            }
            props.insert("Description".into(), val.into());
            did = true;
        }
        if !did {
            return Err(Ec2Error::invalid(
                "ModifyNetworkInterfaceAttribute takes SecurityGroupId.N, SourceDestCheck or Description here (docs/ec2.md)",
            ));
        }
        Ok(())
    })?;
    super::ok()
}

/// Attach / DetachNetworkInterface: an instance has exactly one interface
/// here (its namespace's `eth0`, device index 0), so a standalone interface
/// is never attached to one, and an instance's never detached.
pub fn attach(_ctx: &Ctx, p: &Params, attach: bool) -> Ec2Result<String> {
    let (param, what) = if attach {
        ("NetworkInterfaceId", "AttachNetworkInterface")
    } else {
        ("AttachmentId", "DetachNetworkInterface")
    };
    p.required(param)?;
    Err(Ec2Error::new(
        "UnsupportedOperation",
        format!("{what}: an instance has exactly one network interface here (device index 0), made with it; a standalone interface stays available (docs/ec2.md)"),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{
        cloudformation::Stack,
        model::{build_stacks, Quotas, StackSource},
    };

    /// A template's instance and standalone interface are listed as the
    /// account's own interfaces: the instance's attached at device index
    /// 0, the standalone one available with its description and tags,
    /// both under the ids flow logs name.
    #[test]
    fn template_hosts_are_listed_as_interfaces() {
        let net = "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  Sub: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}\n  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Sub, PrivateIpAddress: 10.0.1.10}}\n  Eni: {Type: AWS::EC2::NetworkInterface, Properties: {SubnetId: !Ref Sub, PrivateIpAddress: 10.0.1.20, Description: appliance, Tags: [{Key: Name, Value: app}]}}\n";
        let none = HashMap::new();
        let m = build_stacks(
            &[StackSource {
                name: "Net",
                text: net,
                params: &none,
                dir: None,
            }],
            &crate::template::Context::new("dep"),
            Quotas::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stacks = [Stack {
            name: "Net".into(),
            template_body: net.into(),
            status: "CREATE_COMPLETE".into(),
            ..Default::default()
        }];
        let v = View::new("dep", &m, &stacks);
        let all = nics(&v);
        let web = all
            .iter()
            .find(|n| n.id == host_eni_id(&m.stack_name, "Web"))
            .expect("the instance's interface");
        assert_eq!(web.instance(), Some(v.id("Web").as_str()));
        assert_eq!(status(web), "in-use");
        assert_eq!(field(&v, web, "attachment.device-index"), filters::one("0"));
        assert_eq!(field(&v, web, "requester-managed"), filters::boolean(false));
        let eni = all
            .iter()
            .find(|n| n.id == host_eni_id(&m.stack_name, "Eni"))
            .expect("the standalone interface");
        assert_eq!(status(eni), "available");
        assert_eq!(eni.description, "appliance");
        assert_eq!(eni.tags, [("Name".to_string(), "app".to_string())]);
        assert_eq!(eni.ip, Ipv4Addr::new(10, 0, 1, 20));
        assert_eq!(v.logical(&eni.id), Some("Eni"), "tags reach it by its id");
        let mut x = xml();
        item(&mut x, &v, eni, false);
        assert!(
            x.0.contains("<interfaceType>interface</interfaceType>"),
            "{}",
            x.0
        );
        assert!(!x.0.contains("<attachment>"), "{}", x.0);
    }
}
