//! VPC endpoints: CreateVpcEndpoint, ModifyVpcEndpoint,
//! DescribeVpcEndpoints, DeleteVpcEndpoints (an `AWS::EC2::VPCEndpoint`
//! of the API's stack: a gateway endpoint's prefix-list routes, an
//! interface endpoint's ENIs, as from a template), and what they name:
//! DescribeVpcEndpointServices (the services the deployment simulates)
//! and DescribePrefixLists (the gateway services' AWS-managed `pl-`
//! lists).
//!
//! An endpoint's id is the model's (`vpce-0` and 16 hex digits, what a
//! template's `!Ref` gives): the API's endpoint is named in its stack by
//! `vpce` and random hex digits, and its `vpce-` id derived from that.
use serde_json::{json, Value};

use super::{
    filters, ids, security_groups::group_name, stack, tags, xml, Ctx, Ec2Error, Ec2Result, Params,
    View,
};
use crate::{
    cloudformation::xml::Xml,
    model::{
        endpoint::{
            gateway_service_ip, managed_prefix_list_id, regional_name, GATEWAY_SERVICES,
            PUBLIC_SERVICES,
        },
        flowlog::host_eni_id,
        EndpointType, VpcEndpoint,
    },
};

pub const VPC_ENDPOINT: &str = "AWS::EC2::VPCEndpoint";

/// The policy a gateway endpoint has when none is given (AWS's).
const FULL_ACCESS: &str = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidVpcEndpointId.NotFound",
        format!("The VpcEndpoint Id '{id}' does not exist"),
    )
}

const KIND: filters::Kind = filters::Kind {
    ids: "VpcEndpointId",
    min_page: 1,
    not_found,
};

fn kind_name(k: EndpointType) -> &'static str {
    match k {
        EndpointType::Gateway => "Gateway",
        EndpointType::Interface => "Interface",
    }
}

/// The endpoint whose `vpce-` id is `id`.
fn by_id<'a>(v: &'a View, id: &str) -> Option<&'a VpcEndpoint> {
    v.model.vpc_endpoints.iter().find(|e| e.vpce_id == id)
}

fn dns_names(v: &View, e: &VpcEndpoint) -> Vec<String> {
    if e.kind != EndpointType::Interface {
        return vec![];
    }
    let r = &v.model.region;
    let mut names = vec![e.dns_name(r)];
    for (s, _) in &e.enis {
        if let Some(sn) = v.model.subnet(s) {
            names.push(e.zonal_dns_name(r, &sn.az));
        }
    }
    if e.private_dns {
        names.push(regional_name(r, &e.service));
    }
    names
}

fn item(x: &mut Xml, v: &View, e: &VpcEndpoint) {
    let policy = v
        .written(&e.id)
        .and_then(|r| r["Properties"].get("PolicyDocument").cloned())
        .map(|p| match p {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_else(|| FULL_ACCESS.into());
    x.leaf("vpcEndpointId", &e.vpce_id)
        .leaf("vpcEndpointType", kind_name(e.kind))
        .leaf("vpcId", &v.id(&e.vpc))
        .leaf("serviceName", &e.service_name)
        .leaf("state", "available")
        .leaf("policyDocument", &policy)
        .items("routeTableIdSet", &e.route_tables, |x, t| {
            x.0.push_str(&crate::cloudformation::xml::escape(&v.id(t)));
        })
        .items("subnetIdSet", &e.enis, |x, (s, _)| {
            x.0.push_str(&crate::cloudformation::xml::escape(&v.id(s)));
        })
        .items(
            "groupSet",
            e.groups
                .iter()
                .filter(|_| e.kind == EndpointType::Interface),
            |x, g| {
                x.leaf("groupId", &v.id(g));
                if let Some(sg) = v.model.group(g) {
                    x.leaf("groupName", &group_name(v, sg));
                }
            },
        )
        .items("networkInterfaceIdSet", &e.enis, |x, (_, h)| {
            x.0.push_str(&host_eni_id(&v.model.stack_name, h));
        })
        .items("dnsEntrySet", dns_names(v, e), |x, n| {
            x.leaf("dnsName", &n).leaf("hostedZoneId", "Z7HUB22UULQXV");
        })
        .flag("privateDnsEnabled", e.private_dns)
        .flag("requesterManaged", false)
        .leaf("ownerId", v.account())
        .leaf(
            "creationTimestamp",
            &crate::cloudformation::xml::iso8601(v.created_ms(&e.id)),
        )
        .leaf("ipAddressType", "ipv4");
    tags::tag_set(x, &v.tags(&e.id));
}

/// A lookup of an EC2 id's model id (checked: its `.NotFound`).
type Lookup = fn(&View, &str) -> Ec2Result<String>;

/// The model ids of `ids` (route tables, subnets or groups), each checked.
fn resolve(v: &View, list: &[String], get: Lookup) -> Ec2Result<Vec<Value>> {
    list.iter().map(|i| get(v, i).map(Value::String)).collect()
}

fn table(v: &View, id: &str) -> Ec2Result<String> {
    Ok(v.route_table(id)?.id.clone())
}

fn subnet(v: &View, id: &str) -> Ec2Result<String> {
    Ok(v.subnet(id)?.id.clone())
}

fn group(v: &View, id: &str) -> Ec2Result<String> {
    Ok(v.group(id)?.id.clone())
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let vpc = p.required("VpcId")?.to_string();
    let service = p.required("ServiceName")?.to_string();
    let kind = p.get("VpcEndpointType").unwrap_or("Gateway").to_string();
    let logical = format!("vpce{}", ids::random_hex(ids::HEX));
    stack::change(ctx, |t, v| {
        let vpc = v.vpc(&vpc)?.id.clone();
        let mut props = json!({"VpcId": vpc, "ServiceName": service, "VpcEndpointType": kind});
        match kind.as_str() {
            "Gateway" => {
                props["RouteTableIds"] = resolve(v, &p.list("RouteTableId"), table)?.into();
            }
            "Interface" => {
                props["SubnetIds"] = resolve(v, &p.list("SubnetId"), subnet)?.into();
                let groups = resolve(v, &p.list("SecurityGroupId"), group)?;
                if !groups.is_empty() {
                    props["SecurityGroupIds"] = groups.into();
                }
                // AWS's default for interface endpoints: private DNS on.
                props["PrivateDnsEnabled"] = p.flag("PrivateDnsEnabled").unwrap_or(true).into();
            }
            other => {
                return Err(Ec2Error::invalid(format!(
                    "{other}: VpcEndpointType Gateway or Interface (Gateway Load Balancer endpoints are not served)"
                )))
            }
        }
        if let Some(doc) = p.get("PolicyDocument") {
            props["PolicyDocument"] = doc.into();
        }
        if let Some(tv) = tags::initial(&p.tag_specs("vpc-endpoint")) {
            props["Tags"] = tv;
        }
        t.put(&logical, VPC_ENDPOINT, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let e = v
        .model
        .vpc_endpoint(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the endpoint vanished"))?;
    let mut x = xml();
    x.open("vpcEndpoint");
    item(&mut x, &v, e);
    x.close("vpcEndpoint");
    Ok(x.0)
}

/// ModifyVpcEndpoint: `AddRouteTableId.N` / `RemoveRouteTableId.N`,
/// `AddSubnetId.N` / `RemoveSubnetId.N`, `AddSecurityGroupId.N` /
/// `RemoveSecurityGroupId.N`, `PrivateDnsEnabled`, `PolicyDocument` /
/// `ResetPolicy`.
pub fn modify(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("VpcEndpointId")?.to_string();
    stack::change(ctx, |t, v| {
        let e = by_id(v, &id).ok_or_else(|| not_found(&id))?;
        v.owned(&e.id, &id)?;
        let l = e.id.clone();
        let edits: [(&str, &str, Lookup); 3] = [
            ("RouteTableId", "RouteTableIds", table),
            ("SubnetId", "SubnetIds", subnet),
            ("SecurityGroupId", "SecurityGroupIds", group),
        ];
        let mut changed = vec![];
        for (param, prop, get) in edits {
            let (add, remove) = (
                resolve(v, &p.list(&format!("Add{param}")), get)?,
                resolve(v, &p.list(&format!("Remove{param}")), get)?,
            );
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            changed.push((prop, add, remove));
        }
        let props = t.props_mut(&l).ok_or_else(|| not_found(&id))?;
        for (prop, add, remove) in changed {
            let mut now: Vec<Value> = props
                .get(prop)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            now.retain(|x| !remove.contains(x));
            for a in add {
                if !now.contains(&a) {
                    now.push(a);
                }
            }
            props.insert(prop.into(), Value::Array(now));
        }
        if let Some(b) = p.flag("PrivateDnsEnabled") {
            props.insert("PrivateDnsEnabled".into(), b.into());
        }
        if let Some(doc) = p.get("PolicyDocument") {
            props.insert("PolicyDocument".into(), doc.into());
        }
        if p.flag("ResetPolicy") == Some(true) {
            props.remove("PolicyDocument");
        }
        Ok(())
    })?;
    super::ok()
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let mut list: Vec<&VpcEndpoint> = v.model.vpc_endpoints.iter().collect();
    list.sort_by_key(|e| v.api.created(&e.id));
    let (out, token) = filters::select(
        p,
        &KIND,
        list,
        |e| e.vpce_id.clone(),
        |e| v.tags(&e.id),
        |e, n| match n {
            "vpc-endpoint-id" => filters::one(e.vpce_id.clone()),
            "vpc-id" => filters::one(v.id(&e.vpc)),
            "service-name" => filters::one(e.service_name.clone()),
            "vpc-endpoint-type" => filters::one(kind_name(e.kind)),
            "vpc-endpoint-state" => filters::one("available"),
            "ip-address-type" => filters::one("ipv4"),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("vpcEndpointSet", out, |x, e| item(x, &v, e));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// DeleteVpcEndpoints: those that are not there (or another stack's)
/// come back in `unsuccessful`, as EC2 answers; the rest go together.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let wanted = p.list("VpcEndpointId");
    if wanted.is_empty() {
        return Err(Ec2Error::missing("VpcEndpointId"));
    }
    let failed = stack::change(ctx, |t, v| {
        let mut failed = vec![];
        for id in &wanted {
            let Some(e) = by_id(v, id) else {
                failed.push((
                    id.clone(),
                    Ec2Error::new(
                        "InvalidVpcEndpoint.NotFound",
                        format!("The VpcEndpoint Id '{id}' does not exist"),
                    ),
                ));
                continue;
            };
            if let Err(err) = v.owned(&e.id, id) {
                failed.push((id.clone(), err));
                continue;
            }
            t.remove(&e.id);
        }
        Ok(failed)
    })?;
    let mut x = xml();
    super::unsuccessful(&mut x, &failed);
    Ok(x.0)
}

/// A service the deployment simulates: its short name and whether it
/// has gateway endpoints.
fn services() -> Vec<(&'static str, bool)> {
    let mut out: Vec<(&str, bool)> = PUBLIC_SERVICES
        .iter()
        .map(|(s, _)| (*s, gateway_service_ip(s).is_some()))
        .collect();
    out.push(("lambda", false));
    out.sort();
    out
}

/// DescribeVpcEndpointServices: the services the deployment simulates
/// (S3 and DynamoDB with gateway and interface endpoints, the others
/// with interface endpoints).
pub fn describe_services(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let region = if v.model.region.is_empty() {
        ctx.region.clone()
    } else {
        v.model.region.clone()
    };
    let rows: Vec<(String, &str, &str)> = services()
        .into_iter()
        .flat_map(|(s, gw)| {
            let mut kinds = vec!["Interface"];
            if gw {
                kinds.insert(0, "Gateway");
            }
            let name = format!("com.amazonaws.{region}.{s}");
            kinds
                .into_iter()
                .map(|k| (name.clone(), s, k))
                .collect::<Vec<_>>()
        })
        .collect();
    const KIND: filters::Kind = filters::Kind {
        ids: "ServiceName",
        min_page: 5,
        not_found: |s| {
            Ec2Error::new(
                "InvalidServiceName",
                format!("The Vpc Endpoint Service '{s}' does not exist"),
            )
        },
    };
    let (out, token) = filters::select(
        p,
        &KIND,
        rows,
        |(n, _, _)| n.clone(),
        |_| vec![],
        |(n, _, k), f| match f {
            "service-name" => filters::one(n.clone()),
            "service-type" => filters::one(*k),
            "owner" => filters::one("amazon"),
            _ => None,
        },
    )?;
    let zones = v.zones();
    let mut x = xml();
    let mut names: Vec<&String> = out.iter().map(|(n, _, _)| n).collect();
    names.dedup();
    x.items("serviceNameSet", names, |x, n| {
        x.0.push_str(&crate::cloudformation::xml::escape(n));
    });
    x.items("serviceDetailSet", &out, |x, (n, s, k)| {
        x.leaf("serviceName", n)
            .leaf(
                "serviceId",
                &format!("vpce-svc-{}", &ids::derived("x", n, k, "")[2..19]),
            )
            .items("serviceType", [k], |x, k| {
                x.leaf("serviceType", k);
            })
            .items("availabilityZoneSet", &zones, |x, z| {
                x.0.push_str(z);
            })
            .leaf("owner", "amazon")
            .items(
                "baseEndpointDnsNameSet",
                [format!(
                    "{s}.{region}.vpce.amazonaws.com",
                    region = v.model.region
                )],
                |x, d| {
                    x.0.push_str(&d);
                },
            );
        if *k == "Interface" {
            x.leaf("privateDnsName", &regional_name(&v.model.region, s))
                .leaf("privateDnsNameVerificationState", "verified");
        }
        x.flag("vpcEndpointPolicySupported", true)
            .flag("acceptanceRequired", false)
            .flag("managesVpcEndpoints", false)
            .items("supportedIpAddressTypes", ["ipv4"], |x, t| {
                x.0.push_str(t);
            });
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// DescribePrefixLists: the AWS-managed prefix lists of the gateway
/// services (`com.amazonaws.<region>.s3`, `.dynamodb`), whose ids a
/// gateway endpoint's routes and a group's `PrefixListIds` name.
pub fn describe_prefix_lists(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let region = v.model.region.clone();
    let rows: Vec<(String, String, String)> = GATEWAY_SERVICES
        .iter()
        .map(|(s, ip)| {
            (
                managed_prefix_list_id(&region, s),
                format!("com.amazonaws.{region}.{s}"),
                format!("{ip}/32"),
            )
        })
        .collect();
    const KIND: filters::Kind = filters::Kind {
        ids: "PrefixListId",
        min_page: 5,
        not_found: |id| {
            Ec2Error::new(
                "InvalidPrefixListID.NotFound",
                format!("The prefix list ID '{id}' does not exist"),
            )
        },
    };
    let (out, token) = filters::select(
        p,
        &KIND,
        rows,
        |(id, _, _)| id.clone(),
        |_| vec![],
        |(id, name, _), f| match f {
            "prefix-list-id" => filters::one(id.clone()),
            "prefix-list-name" => filters::one(name.clone()),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("prefixListSet", &out, |x, (id, name, cidr)| {
        x.leaf("prefixListId", id)
            .leaf("prefixListName", name)
            .items("cidrSet", [cidr], |x, c| {
                x.0.push_str(c);
            });
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}
