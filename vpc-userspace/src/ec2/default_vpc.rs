//! The default VPC every AWS account has: 172.31.0.0/16, a default
//! subnet (/20, `MapPublicIpOnLaunch`) per Availability Zone, its default
//! security group, ACL and main route table with a route to its internet
//! gateway. Made in the API's stack on the deployment's first EC2 call
//! (not at `vpc up`: deployments that never call the EC2 API keep exactly
//! the namespaces their templates make), unless the deployment was
//! brought up with `--no-default-vpc` (a template's VPC may overlap
//! 172.31.0.0/16: each VPC has its own address space). DeleteVpc deletes it for good (CreateDefaultVpc makes
//! it again); moto's reset makes it anew.
use ipnet::Ipv4Net;
use serde_json::json;

use super::{
    gateways, ids, route_tables, stack::Template, subnets, vpcs, xml, Ctx, Ec2Error, Ec2Result,
    Params, View,
};

pub const CIDR: &str = "172.31.0.0/16";
/// Made, or deleted by DeleteVpc: either way not made again.
const DONE: &str = "DefaultVpc";

/// Writes the default VPC into the API's template.
fn add(t: &mut Template, v: &View) {
    let cidr: Ipv4Net = CIDR.parse().expect("constant");
    let vpc = ids::logical(&ids::new_id("vpc")).expect("an id");
    vpcs::add(t, &vpc, cidr, &Params::default(), true);
    for (i, zone) in v.zones().iter().enumerate() {
        let block = Ipv4Net::new(
            std::net::Ipv4Addr::from(u32::from(cidr.network()) + ((i as u32) << 12)),
            20,
        )
        .expect("a /20");
        let s = ids::logical(&ids::new_id("subnet")).expect("an id");
        t.put(
            &s,
            subnets::SUBNET,
            json!({"VpcId": vpc, "CidrBlock": block.to_string(), "AvailabilityZone": zone,
                   "MapPublicIpOnLaunch": true}),
        );
        if let Some(r) = t.resources.get_mut(&s) {
            r["Metadata"][super::stack::META]["DefaultForAz"] = true.into();
        }
    }
    let igw = ids::logical(&ids::new_id("igw")).expect("an id");
    t.put(&igw, gateways::IGW, json!({}));
    t.put(
        &format!("{igw}Attachment"),
        gateways::ATTACHMENT,
        json!({"InternetGatewayId": igw, "VpcId": vpc}),
    );
    t.put(
        &format!("{vpc}DefaultRoute"),
        route_tables::ROUTE,
        json!({"RouteTableId": format!("{vpc}.MainRouteTable"),
               "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw}),
    );
    t.set_flag(DONE, true);
}

/// Makes the default VPC on the deployment's first EC2 call.
pub fn ensure(ctx: &Ctx) -> Ec2Result<()> {
    let state = crate::state::State::load(&ctx.name)?;
    if state.no_default_vpc {
        return Ok(());
    }
    let stacks = crate::cloudformation::load(&ctx.name)?;
    if Template::of(&stacks).flag(DONE) {
        return Ok(());
    }
    super::stack::change(ctx, |t, v| {
        if !t.flag(DONE) {
            add(t, v);
        }
        Ok(())
    })
    .map_err(|e| {
        tracing::warn!("the default VPC: {e}");
        e
    })
}

/// CreateDefaultSubnet: the default VPC's /20 in zone `AvailabilityZone`
/// (the next free /20 of its block).
pub fn create_subnet(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let zone = p.required("AvailabilityZone")?.to_string();
    let id = ids::new_id("subnet");
    let logical = ids::logical(&id).expect("an id");
    super::stack::change(ctx, |t, v| {
        let vpc = v
            .model
            .vpcs
            .iter()
            .find(|x| vpcs::is_default(v, &x.id))
            .ok_or_else(|| Ec2Error::new("DefaultVpcDoesNotExist", "No default VPC for this user"))?
            .clone();
        let mine: Vec<_> = v.model.subnets.iter().filter(|s| s.vpc == vpc.id).collect();
        if mine
            .iter()
            .any(|s| s.az == zone && v.meta(&s.id, "DefaultForAz").is_some())
        {
            return Err(Ec2Error::new(
                "DefaultSubnetAlreadyExistsInAvailabilityZone",
                format!("{zone} already has a default subnet."),
            ));
        }
        let block = vpc
            .cidr
            .subnets(20)
            .map_err(|e| Ec2Error::new("InternalError", e.to_string()))?
            .find(|b| {
                !v.model
                    .subnets
                    .iter()
                    .any(|s| s.cidr.contains(&b.network()) || b.contains(&s.cidr.network()))
            })
            .ok_or_else(|| {
                Ec2Error::new(
                    "InsufficientFreeAddressesInSubnet",
                    "The default VPC is full",
                )
            })?;
        super::subnets::check_new(v, &ctx.region, &v.id(&vpc.id), block, Some(&zone))?;
        t.put(
            &logical,
            subnets::SUBNET,
            json!({"VpcId": vpc.id, "CidrBlock": block.to_string(), "AvailabilityZone": zone,
                   "MapPublicIpOnLaunch": true}),
        );
        if let Some(r) = t.resources.get_mut(&logical) {
            r["Metadata"][super::stack::META]["DefaultForAz"] = true.into();
        }
        Ok(())
    })?;
    let described = subnets::describe(ctx, &Params(vec![("SubnetId.1".into(), id)]))?;
    let inner = described
        .strip_prefix("<subnetSet><item>")
        .and_then(|s| s.split("</item></subnetSet>").next())
        .unwrap_or_default();
    Ok(format!("<subnet>{inner}</subnet>"))
}

/// CreateDefaultVpc.
pub fn create(ctx: &Ctx) -> Ec2Result<String> {
    super::stack::change(ctx, |t, v| {
        if v.model.vpcs.iter().any(|x| vpcs::is_default(v, &x.id)) {
            return Err(Ec2Error::new(
                "DefaultVpcAlreadyExists",
                "A Default VPC already exists for this account in this region.",
            ));
        }
        add(t, v);
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let vpc = v
        .model
        .vpcs
        .iter()
        .find(|x| vpcs::is_default(&v, &x.id))
        .ok_or_else(|| Ec2Error::new("InternalError", "the default VPC vanished"))?;
    let p = Params(vec![("VpcId".into(), v.id(&vpc.id))]);
    let described = vpcs::describe(ctx, &p)?;
    // DescribeVpcs' one item, as CreateDefaultVpc's `vpc`.
    let inner = described
        .strip_prefix("<vpcSet><item>")
        .and_then(|s| s.split("</item></vpcSet>").next())
        .unwrap_or_default();
    let mut x = xml();
    x.open("vpc");
    x.0.push_str(inner);
    x.close("vpc");
    Ok(x.0)
}
