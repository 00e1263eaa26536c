//! Tags: CreateTags, DeleteTags, DescribeTags, and the `tagSet` every
//! Describe writes. The API's own resources keep theirs as their
//! CloudFormation `Tags`; resources another stack declares keep those the
//! API gives them in the API template's metadata (their template's own
//! literal `Tags` show too).
use serde_json::Value;

use super::{filters, ok, stack, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::cloudformation::xml::Xml;

/// `<tagSet><item><key>k</key><value>v</value></item>...</tagSet>`
/// (empty for no tags: SDKs then show `Tags: []`).
pub fn tag_set(x: &mut Xml, tags: &[(String, String)]) {
    x.items("tagSet", tags, |x, (k, v)| {
        x.leaf("key", k).leaf("value", v);
    });
}

/// EC2's resource type of an id, as DescribeTags names it.
fn resource_type(id: &str) -> &'static str {
    match super::ids::prefix(id) {
        "vpc" => "vpc",
        "subnet" => "subnet",
        "sg" => "security-group",
        "acl" => "network-acl",
        "rtb" => "route-table",
        "igw" => "internet-gateway",
        "eigw" => "egress-only-internet-gateway",
        "nat" => "natgateway",
        "eipalloc" => "elastic-ip",
        "sgr" => "security-group-rule",
        "i" => "instance",
        "pl" => "prefix-list",
        "vpce" => "vpc-endpoint",
        "dopt" => "dhcp-options",
        "fl" => "vpc-flow-log",
        _ => "",
    }
}

type Tags = Vec<(String, String)>;

/// Every taggable resource: (id, its model id, tags).
fn all(v: &View) -> Vec<(String, String, Tags)> {
    let m = &v.model;
    let mut ids: Vec<String> = vec![];
    ids.extend(m.vpcs.iter().map(|x| x.id.clone()));
    ids.extend(m.subnets.iter().map(|x| x.id.clone()));
    ids.extend(m.groups.iter().map(|x| x.id.clone()));
    ids.extend(m.acls.iter().map(|x| x.id.clone()));
    ids.extend(m.route_tables.iter().map(|x| x.id.clone()));
    ids.extend(m.internet_gateways.iter().map(|x| x.id.clone()));
    ids.extend(m.egress_only_internet_gateways.iter().map(|x| x.id.clone()));
    ids.extend(m.nat_gateways.iter().map(|x| x.id.clone()));
    ids.extend(m.elastic_ips.iter().map(|(x, _)| x.clone()));
    ids.extend(
        m.hosts
            .iter()
            .filter(|h| h.kind == crate::model::HostKind::Instance)
            .map(|x| x.id.clone()),
    );
    ids.extend(
        m.prefix_lists
            .iter()
            .filter(|x| !x.id.starts_with("pl-"))
            .map(|x| x.id.clone()),
    );
    ids.extend(m.vpc_endpoints.iter().map(|x| x.id.clone()));
    ids.extend(m.dhcp_options.iter().map(|x| x.id.clone()));
    ids.extend(m.flow_logs.iter().map(|x| x.id.clone()));
    ids.into_iter()
        .map(|l| (v.id(&l), l.clone(), v.tags(&l)))
        .collect()
}

/// Sets (`Some`) or deletes tags on each of `p`'s `ResourceId.N`.
fn edit(ctx: &Ctx, p: &Params, add: bool) -> Ec2Result<String> {
    let resources = p.list("ResourceId");
    if resources.is_empty() {
        return Err(Ec2Error::missing("ResourceId"));
    }
    let given = p.tags("Tag");
    // DeleteTags: a tag given without a value goes whatever its value.
    let given_values: Vec<(String, Option<String>)> = p
        .structs("Tag")
        .into_iter()
        .filter_map(|t| {
            Some((
                t.get("Key")?.to_string(),
                t.get("Value").map(str::to_string),
            ))
        })
        .collect();
    for (k, _) in &given {
        if add && k.starts_with("aws:") {
            return Err(Ec2Error::invalid(
                "Tag keys starting with 'aws:' are reserved for internal use",
            ));
        }
    }
    stack::change(ctx, |t, v| {
        for id in &resources {
            let Some(logical) = v.logical(id).map(str::to_string).or_else(|| {
                // A security-group rule of the API.
                super::ids::logical(id).filter(|l| t.has(l))
            }) else {
                return Err(not_found(id));
            };
            let mut tags = v.tags(&logical);
            if add {
                for (k, val) in &given {
                    tags.retain(|(x, _)| x != k);
                    tags.push((k.clone(), val.clone()));
                }
            } else if given_values.is_empty() {
                tags.clear();
            } else {
                tags.retain(|(k, val)| {
                    !given_values
                        .iter()
                        .any(|(gk, gv)| gk == k && gv.as_ref().is_none_or(|g| g == val))
                });
            }
            if let Some(props) = t.props_mut(&logical) {
                if tags.is_empty() {
                    props.remove("Tags");
                } else {
                    props.insert("Tags".into(), stack::tags_value(&tags));
                }
            } else {
                t.set_overlay_tags(id, &tags);
            }
        }
        Ok(())
    })?;
    ok()
}

fn not_found(id: &str) -> Ec2Error {
    let (code, what) = match super::ids::prefix(id) {
        "vpc" => ("InvalidVpcID.NotFound", "vpc"),
        "subnet" => ("InvalidSubnetID.NotFound", "subnet"),
        "sg" => ("InvalidGroup.NotFound", "security group"),
        "acl" => ("InvalidNetworkAclID.NotFound", "network ACL"),
        "rtb" => ("InvalidRouteTableID.NotFound", "route table"),
        "igw" => ("InvalidInternetGatewayID.NotFound", "internet gateway"),
        "sgr" => ("InvalidSecurityGroupRuleId.NotFound", "security group rule"),
        "i" => ("InvalidInstanceID.NotFound", "instance"),
        "pl" => ("InvalidPrefixListID.NotFound", "prefix list"),
        "vpce" => ("InvalidVpcEndpointId.NotFound", "VPC endpoint"),
        "dopt" => ("InvalidDhcpOptionID.NotFound", "dhcp options"),
        "fl" => ("InvalidFlowLogId.NotFound", "flow log"),
        _ => ("InvalidID", "resource"),
    };
    if code == "InvalidID" {
        return Ec2Error::new(code, format!("The ID '{id}' is not valid"));
    }
    Ec2Error::not_found(code, what, id)
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    edit(ctx, p, true)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    edit(ctx, p, false)
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let fs = filters::parse(p);
    let mut rows = vec![];
    for (id, _, tags) in all(&v) {
        for (k, val) in &tags {
            let kind = resource_type(&id);
            let ok = filters::matches(&fs, &[], |n| match n {
                "key" => filters::one(k.clone()),
                "value" => filters::one(val.clone()),
                "resource-id" => filters::one(id.clone()),
                "resource-type" => filters::one(kind),
                _ => None,
            })?;
            if ok {
                rows.push((id.clone(), kind, k.clone(), val.clone()));
            }
        }
    }
    let (rows, token) = filters::page(p, rows, 5)?;
    let mut x = xml();
    x.items("tagSet", &rows, |x, (id, kind, k, val)| {
        x.leaf("resourceId", id)
            .leaf("resourceType", kind)
            .leaf("key", k)
            .leaf("value", val);
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// The `Tags` property for tags given at creation (`None`: no tags).
pub fn initial(tags: &[(String, String)]) -> Option<Value> {
    (!tags.is_empty()).then(|| stack::tags_value(tags))
}
