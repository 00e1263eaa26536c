//! `/console/api/state`: the desired state as the topology draws it. Built
//! from the deployment's model and nodes alone (no map is read): what the
//! console shows of the network is what the reconciler builds.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
};

use axum::response::Response;
use serde::Serialize;

use super::{blocking_json, shown, Deployment};
use crate::{
    model::{
        endpoint::EndpointType,
        flowlog::host_eni_id,
        placement,
        route_table::{Destination, RouteState, Target},
        HostKind, Model,
    },
    state::State,
    topology::Node,
};

#[derive(Debug, Serialize)]
pub struct Console {
    pub deployment: String,
    pub stack: String,
    pub region: String,
    pub account: String,
    /// The default hook: `tc` or `xdp`.
    pub hook: String,
    pub flow_logs: usize,
    pub hosts: Vec<HostView>,
    pub vpcs: Vec<VpcView>,
    pub subnets: Vec<SubnetView>,
    pub route_tables: Vec<RouteTableView>,
    pub security_groups: Vec<GroupView>,
    pub gateways: Vec<GatewayView>,
    pub endpoints: Vec<EndpointView>,
    pub instances: Vec<InstanceView>,
    pub enis: Vec<EniView>,
    pub functions: Vec<FunctionView>,
}

/// A machine running part of the VPC: this one alone, or the cluster's
/// hosts placement names.
#[derive(Debug, Serialize)]
pub struct HostView {
    pub name: String,
    /// This agent's host.
    pub this: bool,
}

#[derive(Debug, Serialize)]
pub struct VpcView {
    pub id: String,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SubnetView {
    pub id: String,
    pub vpc: String,
    pub cidr: String,
    pub ipv6_cidr: Option<String>,
    pub az: String,
    /// Its route table sends `0.0.0.0/0` or `::/0` to an internet gateway:
    /// AWS's definition of a public subnet.
    pub public: bool,
    pub dual_stack: bool,
    pub route_table: String,
    pub acl: String,
}

#[derive(Debug, Serialize)]
pub struct RouteTableView {
    pub id: String,
    pub vpc: String,
    pub main: bool,
    /// The subnets it is associated with (the main table: those with no
    /// table of their own).
    pub subnets: Vec<String>,
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub destination: String,
    pub target: String,
    /// `local`, `igw`, `nat`, `eni`, `endpoint` or `eigw`.
    pub target_kind: &'static str,
    /// `active`, or `blackhole` when its target is gone, as EC2 says.
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub id: String,
    pub vpc: String,
    pub default: bool,
}

#[derive(Debug, Serialize)]
pub struct GatewayView {
    pub id: String,
    /// `internet`, `egress_only` or `nat`.
    pub kind: &'static str,
    pub vpc: Option<String>,
    pub subnet: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub id: String,
    /// `Gateway` or `Interface`, as EC2 names them.
    pub kind: &'static str,
    pub service: String,
    pub vpc: String,
    pub subnets: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct InstanceView {
    pub id: String,
    /// `instance` or `network_interface`.
    pub kind: &'static str,
    pub subnet: String,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub groups: Vec<String>,
    pub eni: String,
    /// Its router-side interface, where it is built on this host.
    pub interface: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EniView {
    pub id: String,
    pub subnet: String,
    pub vpc: String,
    pub groups: Vec<String>,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// The functions whose environments send through it, by name.
    pub functions: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FunctionView {
    pub name: String,
    pub vpc_config: Option<VpcConfigView>,
    pub enis: Vec<String>,
    pub environments: Vec<EnvView>,
}

#[derive(Debug, Serialize)]
pub struct VpcConfigView {
    pub vpc: String,
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
    pub ipv6_allowed_for_dual_stack: bool,
}

#[derive(Debug, Serialize)]
pub struct EnvView {
    /// The topology's node id (the interface counters' `node`).
    pub node: String,
    pub n: usize,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub subnet: Option<String>,
    pub eni: Option<String>,
    pub interface: Option<String>,
    pub host: Option<String>,
}

pub async fn handle(axum::extract::State(name): Deployment) -> Response {
    blocking_json(move || {
        let s = State::load(&name)?;
        let this = s.cluster.as_ref().map(|c| c.host.as_str());
        Ok(Console {
            deployment: s.name.clone(),
            hook: s.default_hook.to_string(),
            ..console(&s.model, &s.nodes, this)
        })
    })
    .await
}

/// The console's view of model `m` built as `nodes` on host `this` (one
/// of a cluster's; `None`: the VPC runs on this machine alone).
pub fn console(m: &Model, nodes: &[Node], this: Option<&str>) -> Console {
    let interface = |node: &str| {
        nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| n.router_if.clone())
    };
    let host = |node: &str| placement::host_of(m, node).map(str::to_string);
    let eni_id = |index: u32| {
        m.enis
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.id.clone())
    };
    let mut eni_functions: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let functions = m
        .functions
        .iter()
        .map(|f| {
            let envs = f.envs();
            let mut enis = vec![];
            for i in envs.iter().filter_map(|e| e.eni) {
                eni_functions.entry(i).or_default().insert(f.name.clone());
                if let Some(id) = eni_id(i).filter(|id| !enis.contains(id)) {
                    enis.push(id);
                }
            }
            FunctionView {
                name: f.name.clone(),
                vpc_config: f.vpc_config.as_ref().map(|v| VpcConfigView {
                    vpc: shown(&v.vpc),
                    subnets: v.subnets.iter().map(|x| shown(x)).collect(),
                    groups: v.groups.iter().map(|x| shown(x)).collect(),
                    ipv6_allowed_for_dual_stack: v.ipv6_allowed_for_dual_stack,
                }),
                enis,
                environments: envs
                    .iter()
                    .map(|e| EnvView {
                        node: e.id.clone(),
                        n: e.n,
                        ip: e.ip,
                        ip6: e.ip6,
                        subnet: e.subnet.as_deref().map(shown),
                        eni: e.eni.and_then(eni_id),
                        interface: interface(&e.id),
                        host: host(&e.id),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut hosts: BTreeSet<&str> = m.placement.hosts.values().map(String::as_str).collect();
    if let Some(h) = this {
        hosts.insert(h);
    }
    let hosts = if hosts.is_empty() {
        vec![HostView {
            name: machine_name(),
            this: true,
        }]
    } else {
        hosts
            .into_iter()
            .map(|h| HostView {
                name: h.to_string(),
                this: this == Some(h),
            })
            .collect()
    };
    Console {
        deployment: String::new(),
        stack: m.stack_name.clone(),
        region: m.region.clone(),
        account: m.account.clone(),
        hook: String::new(),
        flow_logs: m.flow_logs.len(),
        hosts,
        vpcs: m
            .vpcs
            .iter()
            .map(|v| VpcView {
                id: shown(&v.id),
                cidr: v.cidr.to_string(),
                ipv6_cidr: v.ipv6_cidr.map(|c| c.to_string()),
            })
            .collect(),
        subnets: m
            .subnets
            .iter()
            .map(|x| SubnetView {
                id: shown(&x.id),
                vpc: shown(&x.vpc),
                cidr: x.cidr.to_string(),
                ipv6_cidr: x.ipv6_cidr.map(|c| c.to_string()),
                az: x.az.clone(),
                public: is_public(m, &x.route_table),
                dual_stack: x.is_dual_stack(),
                route_table: shown(&x.route_table),
                acl: shown(&x.acl),
            })
            .collect(),
        route_tables: m
            .route_tables
            .iter()
            .map(|t| RouteTableView {
                id: shown(&t.id),
                vpc: shown(&t.vpc),
                main: t.is_main,
                subnets: m
                    .subnets
                    .iter()
                    .filter(|x| x.route_table == t.id)
                    .map(|x| shown(&x.id))
                    .collect(),
                routes: m
                    .routes_of(t)
                    .iter()
                    .map(|r| {
                        let (target, target_kind) = target(&r.target);
                        RouteView {
                            state: match m.route_state(t, r) {
                                RouteState::Active => "active",
                                RouteState::Blackhole => "blackhole",
                            },
                            destination: match &r.destination {
                                Destination::Cidr(c) => c.to_string(),
                                Destination::PrefixList(p) => shown(p),
                            },
                            target,
                            target_kind,
                        }
                    })
                    .collect(),
            })
            .collect(),
        security_groups: m
            .groups
            .iter()
            .map(|g| GroupView {
                id: shown(&g.id),
                vpc: shown(&g.vpc),
                default: g.is_default,
            })
            .collect(),
        gateways: gateways(m),
        endpoints: m
            .vpc_endpoints
            .iter()
            .map(|e| EndpointView {
                id: shown(&e.id),
                kind: match e.kind {
                    EndpointType::Gateway => "Gateway",
                    EndpointType::Interface => "Interface",
                },
                service: e.service_name.clone(),
                vpc: shown(&e.vpc),
                subnets: e.enis.iter().map(|(subnet, _)| shown(subnet)).collect(),
            })
            .collect(),
        instances: m
            .hosts
            .iter()
            .filter(|h| h.kind != HostKind::VpcEndpoint)
            .map(|h| InstanceView {
                id: shown(&h.id),
                kind: match h.kind {
                    HostKind::NetworkInterface => "network_interface",
                    _ => "instance",
                },
                subnet: shown(&h.subnet),
                ip: h.ip,
                ip6: h.ip6,
                groups: h.groups.iter().map(|g| shown(g)).collect(),
                eni: host_eni_id(&m.stack_name, &h.id),
                interface: interface(&h.id),
                host: host(&h.id),
            })
            .collect(),
        enis: m
            .enis
            .iter()
            .map(|e| EniView {
                id: e.id.clone(),
                subnet: shown(&e.subnet),
                vpc: shown(&e.vpc),
                groups: e.groups.iter().map(|g| shown(g)).collect(),
                ip: e.ip,
                ip6: e.ip6,
                functions: eni_functions
                    .remove(&e.index)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            })
            .collect(),
        functions,
    }
}

/// Does route table `id` send the internet to an internet gateway?
fn is_public(m: &Model, id: &str) -> bool {
    m.route_table(id).is_some_and(|t| {
        t.routes.iter().any(|r| {
            matches!(r.target, Target::InternetGateway(_))
                && matches!(&r.destination, Destination::Cidr(c) if c.prefix_len() == 0)
        })
    })
}

/// A route's target as EC2 shows it, and its kind.
fn target(t: &Target) -> (String, &'static str) {
    match t {
        Target::Local => ("local".to_string(), "local"),
        Target::InternetGateway(g) => (shown(g), "igw"),
        Target::NatGateway(g) => (shown(g), "nat"),
        Target::NetworkInterface(h) => (shown(h), "eni"),
        Target::VpcEndpoint(e) => (shown(e), "endpoint"),
        Target::EgressOnlyInternetGateway(g) => (shown(g), "eigw"),
    }
}

fn gateways(m: &Model) -> Vec<GatewayView> {
    let igws = m.internet_gateways.iter().map(|g| GatewayView {
        id: shown(&g.id),
        kind: "internet",
        vpc: g.vpc.as_deref().map(shown),
        subnet: None,
        ip: None,
        public_ip: None,
    });
    let eigws = m.egress_only_internet_gateways.iter().map(|g| GatewayView {
        id: shown(&g.id),
        kind: "egress_only",
        vpc: Some(shown(&g.vpc)),
        subnet: None,
        ip: None,
        public_ip: None,
    });
    let nats = m.nat_gateways.iter().map(|g| GatewayView {
        id: shown(&g.id),
        kind: "nat",
        vpc: m.subnet(&g.subnet).map(|x| shown(&x.vpc)),
        subnet: Some(shown(&g.subnet)),
        ip: Some(g.ip),
        public_ip: (!g.private).then_some(g.public_ip),
    });
    igws.chain(eigws).chain(nats).collect()
}

/// The machine's host name, for a deployment on one host.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_template_is_drawn_whole() {
        let m = crate::model::build(
            include_str!("../../../tests/fixtures/console.yaml"),
            &Default::default(),
            "s",
        )
        .expect("model");
        let c = console(&m, &[], None);
        let sub = |id: &str| c.subnets.iter().find(|x| x.id == id).expect(id);
        assert!(sub("Public").public);
        assert!(!sub("PrivateA").public && !sub("PrivateA").dual_stack);
        assert!(sub("PrivateB").dual_stack);
        let rt = c.route_tables.iter().find(|t| t.id == "PrivateRt").unwrap();
        assert_eq!(rt.subnets, ["PrivateA", "PrivateB"]);
        assert!(rt
            .routes
            .iter()
            .any(|r| r.destination == "0.0.0.0/0" && r.target == "Nat" && r.target_kind == "nat"));
        assert!(rt.routes.iter().any(|r| r.target_kind == "endpoint"));
        // The local routes first, one per block of the VPC, as EC2 shows them.
        let local: Vec<_> = rt
            .routes
            .iter()
            .take(2)
            .map(|r| (r.destination.as_str(), r.target.as_str()))
            .collect();
        assert_eq!(local[0], ("10.0.0.0/16", "local"));
        assert!(
            local[1].0.ends_with("::/56") && local[1].1 == "local",
            "{local:?}"
        );
        assert!(rt.routes.iter().all(|r| r.state == "active"));
        let kinds: Vec<_> = c.gateways.iter().map(|g| (g.id.as_str(), g.kind)).collect();
        assert_eq!(kinds, [("Igw", "internet"), ("Nat", "nat")]);
        let f = &c.functions[0];
        assert_eq!(f.name, "orders");
        assert_eq!(f.environments[0].subnet.as_deref(), Some("PrivateA"));
        assert_eq!(f.enis.len(), 1);
        let eni = c.enis.iter().find(|e| e.id == f.enis[0]).unwrap();
        assert_eq!(
            (eni.subnet.as_str(), &eni.functions[..]),
            ("PrivateA", &["orders".to_string()][..])
        );
        assert_eq!(f.environments[0].eni.as_deref(), Some(eni.id.as_str()));
        assert_eq!(c.instances[0].id, "Db");
        assert_eq!(c.hosts.len(), 1);
    }

    /// Every template of the tests that builds draws whole: each link the
    /// page follows (an environment's ENI, a subnet's route table, a
    /// route's target) names something drawn.
    #[test]
    fn every_link_names_something_drawn() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut drawn = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let Ok(m) = crate::model::build(&text, &Default::default(), "s") else {
                continue;
            };
            let c = console(&m, &[], None);
            let at = p.display();
            let enis: BTreeSet<_> = c.enis.iter().map(|e| e.id.as_str()).collect();
            let tables: BTreeSet<_> = c.route_tables.iter().map(|t| t.id.as_str()).collect();
            let subnets: BTreeSet<_> = c.subnets.iter().map(|x| x.id.as_str()).collect();
            let gateways: BTreeSet<_> = c.gateways.iter().map(|g| g.id.as_str()).collect();
            for f in &c.functions {
                for e in &f.environments {
                    if let Some(eni) = &e.eni {
                        assert!(enis.contains(eni.as_str()), "{at}: {} -> {eni}", f.name);
                    }
                }
                assert!(f.enis.iter().all(|e| enis.contains(e.as_str())), "{at}");
            }
            for x in &c.subnets {
                assert!(tables.contains(x.route_table.as_str()), "{at}: {}", x.id);
            }
            for e in &c.enis {
                assert!(subnets.contains(e.subnet.as_str()), "{at}: {}", e.id);
            }
            for t in &c.route_tables {
                for r in &t.routes {
                    if matches!(r.target_kind, "igw" | "nat" | "eigw") {
                        assert!(gateways.contains(r.target.as_str()), "{at}: {}", r.target);
                    }
                }
            }
            drawn += 1;
        }
        assert!(drawn >= 25, "only {drawn} templates built");
    }
}
