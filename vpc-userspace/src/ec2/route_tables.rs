//! Route tables: CreateRouteTable, DeleteRouteTable, DescribeRouteTables,
//! CreateRoute, ReplaceRoute, DeleteRoute, AssociateRouteTable,
//! DisassociateRouteTable, ReplaceRouteTableAssociation. A route of the
//! API is an `AWS::EC2::Route` (also on a VPC's main table), an
//! association an `AWS::EC2::SubnetRouteTableAssociation` named by its
//! `rtbassoc-` id.
use serde_json::{json, Value};

use super::{filters, ids, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{
        route_table::{Destination, Route, RouteState, Target},
        RouteTable,
    },
};

pub const TABLE: &str = "AWS::EC2::RouteTable";
pub const ROUTE: &str = "AWS::EC2::Route";
pub const ASSOCIATION: &str = "AWS::EC2::SubnetRouteTableAssociation";

/// The logical id of the API's route to `dest` in `table`.
fn route_id(table: &str, dest: &str) -> String {
    let h = ids::derived("x", "", table, dest);
    format!("route{}", &h[2..])
}

/// A subnet's explicit association: its id and, when the API made it,
/// its resource (`None`: the subnet uses its VPC's main table).
pub fn association(v: &View, subnet: &str) -> Option<(String, Option<String>)> {
    for (l, p) in v.api.of_type(ASSOCIATION) {
        if p["SubnetId"] == subnet {
            return Some((ids::api_id(l).unwrap_or_else(|| l.clone()), Some(l.clone())));
        }
    }
    let s = v.model.subnet(subnet)?;
    let main = v
        .model
        .route_table(&s.route_table)
        .is_none_or(|t| t.is_main);
    (!main).then(|| {
        (
            ids::derived(
                "rtbassoc",
                &v.name,
                v.stack_of(subnet),
                &format!("{subnet}/rtb"),
            ),
            None,
        )
    })
}

fn main_association(v: &View, t: &RouteTable) -> String {
    ids::derived(
        "rtbassoc",
        &v.name,
        v.stack_of(&t.vpc),
        &format!("{}/main", t.vpc),
    )
}

fn target_id(v: &View, t: &Target) -> (&'static str, String) {
    match t {
        Target::Local => ("gatewayId", "local".into()),
        Target::InternetGateway(g) => ("gatewayId", v.id(g)),
        Target::NatGateway(g) => ("natGatewayId", v.id(g)),
        Target::EgressOnlyInternetGateway(g) => ("egressOnlyInternetGatewayId", v.id(g)),
        Target::NetworkInterface(h) => ("networkInterfaceId", h.clone()),
        Target::VpcEndpoint(e) => (
            "gatewayId",
            v.model
                .vpc_endpoint(e)
                .map(|x| x.vpce_id.clone())
                .unwrap_or_else(|| e.clone()),
        ),
    }
}

fn dest(v: &View, d: &Destination) -> (&'static str, String) {
    match d {
        Destination::Cidr(c @ ipnet::IpNet::V4(_)) => ("destinationCidrBlock", c.to_string()),
        Destination::Cidr(c) => ("destinationIpv6CidrBlock", c.to_string()),
        Destination::PrefixList(l) => ("destinationPrefixListId", v.id(l)),
    }
}

fn route(x: &mut Xml, v: &View, t: &RouteTable, r: &Route) {
    let (df, dv) = dest(v, &r.destination);
    let (tf, tv) = target_id(v, &r.target);
    let state = match v.model.route_state(t, r) {
        RouteState::Active => "active",
        RouteState::Blackhole => "blackhole",
    };
    let origin = match r.target {
        Target::Local => "CreateRouteTable",
        _ => "CreateRoute",
    };
    x.leaf(df, &dv)
        .leaf(tf, &tv)
        .leaf("state", state)
        .leaf("origin", origin);
}

fn item(x: &mut Xml, v: &View, t: &RouteTable) {
    let id = v.id(&t.id);
    x.leaf("routeTableId", &id)
        .leaf("vpcId", &v.id(&t.vpc))
        .leaf("ownerId", v.account())
        .items("routeSet", v.model.routes_of(t), |x, r| route(x, v, t, &r));
    x.open("associationSet");
    if t.is_main {
        x.open("item")
            .leaf("routeTableAssociationId", &main_association(v, t))
            .leaf("routeTableId", &id)
            .flag("main", true)
            .open("associationState")
            .leaf("state", "associated")
            .close("associationState")
            .close("item");
    }
    for s in v.model.subnets.iter().filter(|s| s.route_table == t.id) {
        if let Some((a, _)) = association(v, &s.id) {
            x.open("item")
                .leaf("routeTableAssociationId", &a)
                .leaf("routeTableId", &id)
                .leaf("subnetId", &v.id(&s.id))
                .flag("main", false)
                .open("associationState")
                .leaf("state", "associated")
                .close("associationState")
                .close("item");
        }
    }
    x.close("associationSet");
    x.open("propagatingVgwSet").close("propagatingVgwSet");
    tags::tag_set(x, &v.tags(&t.id));
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let wanted = p.list("RouteTableId");
    for w in &wanted {
        v.route_table(w)?;
    }
    let fs = filters::parse(p);
    let mut out = vec![];
    for t in &v.model.route_tables {
        let id = v.id(&t.id);
        if !wanted.is_empty() && !wanted.contains(&id) {
            continue;
        }
        let routes = v.model.routes_of(t);
        let explicit: Vec<(String, String)> = v
            .model
            .subnets
            .iter()
            .filter(|s| s.route_table == t.id)
            .filter_map(|s| Some((v.id(&s.id), association(&v, &s.id)?.0)))
            .collect();
        let keep = filters::matches(&fs, &v.tags(&t.id), |n| {
            let targets = |want: &str| {
                Some(
                    routes
                        .iter()
                        .map(|r| target_id(&v, &r.target))
                        .filter(|(f, _)| *f == want)
                        .map(|(_, x)| x)
                        .collect(),
                )
            };
            match n {
                "route-table-id" => filters::one(id.clone()),
                "vpc-id" => filters::one(v.id(&t.vpc)),
                "owner-id" => filters::one(v.account()),
                "association.main" => {
                    if t.is_main {
                        filters::boolean(true)
                    } else if explicit.is_empty() {
                        Some(vec![])
                    } else {
                        filters::boolean(false)
                    }
                }
                "association.subnet-id" => Some(explicit.iter().map(|(s, _)| s.clone()).collect()),
                "association.route-table-association-id" => {
                    let mut a: Vec<String> = explicit.iter().map(|(_, a)| a.clone()).collect();
                    if t.is_main {
                        a.push(main_association(&v, t));
                    }
                    Some(a)
                }
                "association.route-table-id" => Some(if t.is_main || !explicit.is_empty() {
                    vec![id.clone()]
                } else {
                    vec![]
                }),
                "route.destination-cidr-block" => Some(
                    routes
                        .iter()
                        .filter_map(|r| match r.destination {
                            Destination::Cidr(c @ ipnet::IpNet::V4(_)) => Some(c.to_string()),
                            _ => None,
                        })
                        .collect(),
                ),
                "route.destination-ipv6-cidr-block" => Some(
                    routes
                        .iter()
                        .filter_map(|r| match r.destination {
                            Destination::Cidr(c @ ipnet::IpNet::V6(_)) => Some(c.to_string()),
                            _ => None,
                        })
                        .collect(),
                ),
                "route.gateway-id" => targets("gatewayId"),
                "route.nat-gateway-id" => targets("natGatewayId"),
                "route.egress-only-internet-gateway-id" => targets("egressOnlyInternetGatewayId"),
                "route.state" => Some(
                    routes
                        .iter()
                        .map(|r| match v.model.route_state(t, r) {
                            RouteState::Active => "active".into(),
                            RouteState::Blackhole => "blackhole".into(),
                        })
                        .collect(),
                ),
                _ => None,
            }
        })?;
        if keep {
            out.push(t);
        }
    }
    // The order the API made them in (a template's first).
    out.sort_by_key(|x| v.api.created(&x.id));
    let (out, token) = filters::page(p, out, 5)?;
    let mut x = xml();
    x.items("routeTableSet", out, |x, t| item(x, &v, t));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let vpc_id = p.required("VpcId")?.to_string();
    let id = ids::new_id("rtb");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let vpc = v.vpc(&vpc_id)?.id.clone();
        let mut props = json!({"VpcId": vpc});
        if let Some(tags) = tags::initial(&p.tag_specs("route-table")) {
            props["Tags"] = tags;
        }
        t.put(&logical, TABLE, props);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let t = v
        .model
        .route_table(&logical)
        .ok_or_else(|| Ec2Error::new("InternalError", "the route table vanished"))?;
    let mut x = xml();
    x.open("routeTable");
    item(&mut x, &v, t);
    x.close("routeTable");
    Ok(x.0)
}

pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("RouteTableId")?.to_string();
    super::stack::change(ctx, |t, v| {
        let rt = v.route_table(&id)?.clone();
        v.owned(&rt.id, &id)?;
        if rt.is_main || v.model.subnets.iter().any(|s| s.route_table == rt.id) {
            return Err(Ec2Error::new(
                "DependencyViolation",
                format!("The routeTable '{id}' has dependencies and cannot be deleted."),
            ));
        }
        super::vpcs::remove_with(t, &rt.id);
        Ok(())
    })?;
    super::ok()
}

/// The destination a route call names: (CloudFormation field, value).
fn destination(p: &Params) -> Ec2Result<(&'static str, String)> {
    let invalid = |f: &str, d: &str| {
        let mut param = f.to_string();
        param[..1].make_ascii_lowercase();
        Ec2Error::invalid(format!(
            "Value ({d}) for parameter {param} is invalid. This is not a valid CIDR block."
        ))
    };
    if let Some(d) = p.get("DestinationCidrBlock") {
        let net: ipnet::Ipv4Net = d.parse().map_err(|_| invalid("DestinationCidrBlock", d))?;
        return Ok(("DestinationCidrBlock", net.trunc().to_string()));
    }
    if let Some(d) = p.get("DestinationIpv6CidrBlock") {
        let net: ipnet::Ipv6Net = d
            .parse()
            .map_err(|_| invalid("DestinationIpv6CidrBlock", d))?;
        return Ok(("DestinationIpv6CidrBlock", net.trunc().to_string()));
    }
    if let Some(d) = p.get("DestinationPrefixListId") {
        return Ok(("DestinationPrefixListId", d.to_string()));
    }
    Err(Ec2Error::missing("DestinationCidrBlock"))
}

/// CreateRoute and (`replace`) ReplaceRoute.
pub fn create_route(ctx: &Ctx, p: &Params, replace: bool) -> Ec2Result<String> {
    let table = p.required("RouteTableId")?.to_string();
    let (dfield, dvalue) = destination(p)?;
    let targets = [
        ("GatewayId", "InvalidGatewayID.NotFound", "gateway"),
        (
            "NatGatewayId",
            "InvalidNatGatewayID.NotFound",
            "nat gateway",
        ),
        (
            "EgressOnlyInternetGatewayId",
            "InvalidGatewayID.NotFound",
            "gateway",
        ),
        (
            "NetworkInterfaceId",
            "InvalidNetworkInterfaceID.NotFound",
            "network interface",
        ),
        ("InstanceId", "InvalidInstanceID.NotFound", "instance"),
        (
            "VpcPeeringConnectionId",
            "InvalidVpcPeeringConnectionID.NotFound",
            "vpc peering connection",
        ),
        (
            "TransitGatewayId",
            "InvalidTransitGatewayID.NotFound",
            "transit gateway",
        ),
    ];
    let given: Vec<_> = targets
        .iter()
        .filter_map(|(f, code, what)| Some((*f, *code, *what, p.get(f)?.to_string())))
        .collect();
    let [(tfield, code, what, tvalue)] = given.as_slice() else {
        return Err(Ec2Error::invalid(
            "exactly one target is required: GatewayId, NatGatewayId, EgressOnlyInternetGatewayId, NetworkInterfaceId or InstanceId",
        ));
    };
    super::stack::change(ctx, |t, v| {
        let rt = v.route_table(&table)?.clone();
        let target = match v.logical(tvalue) {
            Some(l) => l.to_string(),
            None if v.model.hosts.iter().any(|h| &h.id == tvalue) => tvalue.clone(),
            None => return Err(Ec2Error::not_found(code, what, tvalue)),
        };
        let exists = rt
            .routes
            .iter()
            .any(|r| dest(v, &r.destination).1 == dvalue);
        let l = route_id(&rt.id, &dvalue);
        match (replace, exists) {
            (false, true) => {
                return Err(Ec2Error::new(
                    "RouteAlreadyExists",
                    format!("The route identified by {dvalue} already exists."),
                ))
            }
            (true, false) => {
                return Err(Ec2Error::invalid(format!(
                    "There is no route defined for '{dvalue}' in the route table. Use CreateRoute instead."
                )))
            }
            (true, true) if !t.has(&l) => v.owned(&rt.id, &table)?,
            _ => {}
        }
        let mut props = json!({"RouteTableId": rt.id});
        props[dfield] = Value::String(if dfield == "DestinationPrefixListId" {
            v.prefix_list_id(&dvalue)
        } else {
            dvalue.clone()
        });
        props[*tfield] = Value::String(target);
        t.put(&l, ROUTE, props);
        Ok(())
    })?;
    super::ok()
}

pub fn delete_route(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let table = p.required("RouteTableId")?.to_string();
    let (_, dvalue) = destination(p)?;
    super::stack::change(ctx, |t, v| {
        let rt = v.route_table(&table)?.clone();
        if t.remove(&route_id(&rt.id, &dvalue)).is_some() {
            return Ok(());
        }
        if rt
            .routes
            .iter()
            .any(|r| dest(v, &r.destination).1 == dvalue)
        {
            v.owned(&rt.id, &table)?;
        }
        Err(Ec2Error::new(
            "InvalidRoute.NotFound",
            format!("no route with destination-cidr-block {dvalue} in route table {table}"),
        ))
    })?;
    super::ok()
}

pub fn associate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let table = p.required("RouteTableId")?.to_string();
    let subnet = p.required("SubnetId")?.to_string();
    let id = ids::new_id("rtbassoc");
    let existing = super::stack::change(ctx, |t, v| {
        let rt = v.route_table(&table)?.clone();
        let s = v.subnet(&subnet)?.clone();
        // Associating again with the same table: the association it has.
        if s.route_table == rt.id {
            if let Some((a, _)) = association(v, &s.id) {
                return Ok(Some(a));
            }
        }
        if association(v, &s.id).is_some() {
            return Err(Ec2Error::new(
                "Resource.AlreadyAssociated",
                format!("the specified association for route table {table} conflicts with an existing association"),
            ));
        }
        t.put(
            &ids::logical(&id).expect("an id"),
            ASSOCIATION,
            json!({"SubnetId": s.id, "RouteTableId": rt.id}),
        );
        Ok(None)
    })?;
    let mut x = xml();
    x.leaf("associationId", existing.as_deref().unwrap_or(&id))
        .open("associationState")
        .leaf("state", "associated")
        .close("associationState");
    Ok(x.0)
}

/// The API's association resource with id `assoc`.
fn api_association(t: &super::stack::Template, assoc: &str) -> Ec2Result<String> {
    ids::logical(assoc)
        .filter(|l| t.kind(l) == Some(ASSOCIATION))
        .ok_or_else(|| {
            Ec2Error::new(
                "InvalidAssociationID.NotFound",
                format!("The association ID '{assoc}' does not exist"),
            )
        })
}

pub fn disassociate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc = p.required("AssociationId")?.to_string();
    super::stack::change(ctx, |t, _| {
        let l = api_association(t, &assoc)?;
        t.remove(&l);
        Ok(())
    })?;
    super::ok()
}

pub fn replace_association(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let assoc = p.required("AssociationId")?.to_string();
    let table = p.required("RouteTableId")?.to_string();
    let new = ids::new_id("rtbassoc");
    super::stack::change(ctx, |t, v| {
        let rt = v.route_table(&table)?.clone();
        let l = api_association(t, &assoc)?;
        let subnet = t
            .props(&l)
            .map(|p| p["SubnetId"].clone())
            .unwrap_or_default();
        t.remove(&l);
        t.put(
            &ids::logical(&new).expect("an id"),
            ASSOCIATION,
            json!({"SubnetId": subnet, "RouteTableId": rt.id}),
        );
        Ok(())
    })?;
    let mut x = xml();
    x.leaf("newAssociationId", &new)
        .open("associationState")
        .leaf("state", "associated")
        .close("associationState");
    Ok(x.0)
}
