//! `PORTS` and `ENDPOINTS` entries: a port per node the topology linked to
//! the router (hosts, the internet's test hosts, resolvers, the AWS
//! services and public endpoints, execution environments) and an endpoint per address of it.
use std::collections::HashMap;

use vpc_common::{kind, v4_mapped, AddrKey, Endpoint, PortInfo};

use super::{env_group, Entries, LinkInfo};
use crate::model::Model;

/// The port entry of a link and the endpoint entries of its addresses.
fn attach(
    out: &mut Entries,
    l: LinkInfo,
    ip: std::net::Ipv4Addr,
    ip6: Option<std::net::Ipv6Addr>,
    mut port: PortInfo,
) {
    if l == LinkInfo::ELSEWHERE {
        return;
    }
    let addr = v4_mapped(ip.octets());
    port.addr4 = addr;
    if let Some(ip6) = ip6 {
        port.has_v6 = 1;
        port.addr6 = ip6.octets();
    }
    out.ports.push((l.ifindex, port));
    let endpoint = Endpoint {
        ifindex: l.ifindex,
        policy: port.policy,
        vpc: port.vpc,
        subnet: port.subnet,
        kind: port.kind,
        flags: port.flags,
        mac: l.mac,
        router_mac: l.router_mac,
        ..Default::default()
    };
    out.endpoints.push((AddrKey::of(port.vpc, addr), endpoint));
    if let Some(ip6) = ip6 {
        out.endpoints
            .push((AddrKey::of(port.vpc, ip6.octets()), endpoint));
    }
}

/// The link the topology built for node `id`.
fn link(links: &HashMap<String, LinkInfo>, id: &str) -> Result<LinkInfo, String> {
    links
        .get(id)
        .copied()
        .ok_or_else(|| format!("no link for {id}"))
}

/// Instances, network interfaces and interface endpoints' ENIs.
pub(super) fn hosts(
    model: &Model,
    links: &HashMap<String, LinkInfo>,
    gen: u32,
    out: &mut Entries,
) -> Result<(), String> {
    let pair = |id: u32| if gen == 0 { [id, 0] } else { [0, id] };
    for h in &model.hosts {
        let policy = out.policies[&h.groups];
        let vpc = model
            .vpc(&model.subnet(&h.subnet).expect("validated").vpc)
            .expect("validated")
            .index;
        let subnet = model.subnet_index(&h.subnet);
        let port = PortInfo {
            kind: if h.kind == crate::model::HostKind::VpcEndpoint {
                kind::VPC_ENDPOINT
            } else {
                kind::HOST
            },
            policy: pair(policy),
            vpc,
            subnet,
            flags: if h.source_dest_check {
                0
            } else {
                vpc_common::EP_F_NO_SOURCE_DEST_CHECK
            },
            ..Default::default()
        };
        attach(out, link(links, &h.id)?, h.ip, h.ip6, port);
        // A secondary address: one more endpoint of the same port.
        let ep = out.endpoints.last().expect("attached").1;
        for ip in &h.secondary {
            out.endpoints
                .push((AddrKey::of(vpc, v4_mapped(ip.octets())), ep));
        }
    }
    Ok(())
}

/// The internet's test hosts.
pub(super) fn internet_hosts(
    model: &Model,
    links: &HashMap<String, LinkInfo>,
    out: &mut Entries,
) -> Result<(), String> {
    for ih in &model.internet_hosts {
        let port = PortInfo {
            kind: kind::INTERNET_HOST,
            ..Default::default()
        };
        attach(out, link(links, &ih.id)?, ih.ip, ih.ip6, port);
    }
    Ok(())
}

/// Each VPC's resolver. A model compiled without its link (a unit
/// test's hand-made links) has none.
pub(super) fn resolvers(model: &Model, links: &HashMap<String, LinkInfo>, out: &mut Entries) {
    for vpc in &model.vpcs {
        let Some(l) = vpc.resolver_id().and_then(|id| links.get(&id).copied()) else {
            continue;
        };
        let port = PortInfo {
            kind: kind::RESOLVER,
            vpc: vpc.index,
            ..Default::default()
        };
        attach(out, l, vpc.resolver(), None, port);
    }
}

/// The simulated AWS services: one port, an endpoint per service
/// address. No groups (`admit` skips them), no VPC, no subnet.
pub(super) fn aws_services(links: &HashMap<String, LinkInfo>, out: &mut Entries) {
    if let Some(l) = links.get(crate::model::endpoint::AWS_SERVICES_ID).copied() {
        let port = PortInfo {
            kind: kind::AWS_SERVICE,
            ..Default::default()
        };
        let services = crate::model::endpoint::PUBLIC_SERVICES;
        attach(out, l, services[0].1, None, port);
        for (_, ip) in &services[1..] {
            let ep = out.endpoints.last().expect("attached").1;
            out.endpoints
                .push((AddrKey::of(0, v4_mapped(ip.octets())), ep));
        }
    }
}

/// AWS's public endpoints: a host of the internet like the test hosts
/// (every way to the internet reaches it, and nothing else), IPv4 and
/// IPv6. A model compiled without its link (a unit test's hand-made
/// links, a model with no internet) has none.
pub(super) fn aws_public(links: &HashMap<String, LinkInfo>, out: &mut Entries) {
    use crate::model::internet::{AWS_PUBLIC_ID, LAMBDA_PUBLIC, LAMBDA_PUBLIC6};
    if let Some(l) = links.get(AWS_PUBLIC_ID).copied() {
        let port = PortInfo {
            kind: kind::INTERNET_HOST,
            ..Default::default()
        };
        attach(out, l, LAMBDA_PUBLIC, Some(LAMBDA_PUBLIC6), port);
    }
}

/// One port per execution environment, each sending through the ENI
/// group of its own subnet.
pub(super) fn exec_envs(
    model: &Model,
    links: &HashMap<String, LinkInfo>,
    out: &mut Entries,
) -> Result<(), String> {
    for f in &model.functions {
        for env in f.envs() {
            let port = PortInfo {
                kind: kind::EXEC_ENV,
                eni_group: env_group(model, f, env.eni),
                ..Default::default()
            };
            attach(out, link(links, &env.id)?, env.ip, env.ip6, port);
        }
    }
    Ok(())
}
