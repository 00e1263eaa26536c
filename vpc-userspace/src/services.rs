//! The simulated AWS services behind VPC endpoints, served by the agent:
//! HTTP on port 80 at each gateway service's address in the "AWS services"
//! namespace, and at each interface endpoint ENI's address in its own
//! namespace (a listening socket stays in the namespace it was made in).
//! Each answers with a JSON object saying which service it is, through
//! which endpoint, and the source address it saw: what a client needs to
//! know that it reached the service, and how (no NAT through a gateway
//! endpoint; a function arrives from its Hyperplane ENI).
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Result;

use crate::model::endpoint::{EndpointType, AWS_SERVICES_ID, GATEWAY_SERVICES};

/// One listening service: (address, service name, endpoint id or "-").
struct Service {
    server: tiny_http::Server,
    service_name: String,
    endpoint: String,
}

const PORT: u16 = 80;

/// Serves every simulated service of deployment `name` until `stop`.
pub fn serve(name: &str, stop: &AtomicBool) -> Result<()> {
    let s = crate::state::State::load(name)?;
    let m = &s.model;
    let mut services = vec![];
    let mut bind = |ns: &str, ip: std::net::Ipv4Addr, service_name: String, endpoint: String| {
        let server = crate::topology::in_netns(ns, || {
            tiny_http::Server::http((ip, PORT))
                .map_err(|e| anyhow::anyhow!("{service_name} on {ip}:{PORT}: {e}"))
        })?;
        services.push(Service {
            server,
            service_name,
            endpoint,
        });
        anyhow::Ok(())
    };
    if let Some(node) = s.node(AWS_SERVICES_ID) {
        for (service, ip) in GATEWAY_SERVICES {
            let sn = format!("com.amazonaws.{}.{service}", m.region);
            bind(&node.netns, ip, sn, "-".into())?;
        }
    }
    for e in m
        .vpc_endpoints
        .iter()
        .filter(|e| e.kind == EndpointType::Interface)
    {
        for (_, host) in &e.enis {
            if let Some(node) = s.node(host) {
                bind(
                    &node.netns,
                    node.ip,
                    e.service_name.clone(),
                    e.vpce_id.clone(),
                )?;
            }
        }
    }
    std::thread::scope(|sc| {
        for svc in &services {
            sc.spawn(move || serve_one(svc, stop));
        }
    });
    Ok(())
}

fn serve_one(svc: &Service, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(req)) = svc.server.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let source = req
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let body = serde_json::json!({
            "Service": svc.service_name,
            "VpcEndpointId": svc.endpoint,
            "SourceIp": source,
            "Path": req.url(),
        });
        let resp = tiny_http::Response::from_string(format!("{body}\n")).with_header(
            "Content-Type: application/json"
                .parse::<tiny_http::Header>()
                .expect("static header"),
        );
        let _ = req.respond(resp);
    }
}
