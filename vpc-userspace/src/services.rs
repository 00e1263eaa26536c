//! The simulated AWS services behind VPC endpoints, served by the agent:
//! HTTP on port 80 at each gateway service's address in the "AWS services"
//! namespace, and at each interface endpoint ENI's address in its own
//! namespace. Each answers with a JSON object saying which service it is,
//! through which endpoint, and the source address it saw: what a client
//! needs to know that it reached the service, and how (no NAT through a
//! gateway endpoint; a function arrives from its Hyperplane ENI). An
//! interface endpoint for `com.amazonaws.<region>.lambda` serves the
//! Lambda API itself (PrivateLink to Lambda: a host in a private subnet
//! invokes functions through it, the endpoint's groups applied), and only
//! that: a function URL's request there is the Lambda API's unknown
//! operation (AWS: "Function URLs do not support PrivateLink").
//!
//! AWS's public endpoints on the internet (`AwsPublic`, where the
//! deployment has an internet) serve Lambda's public endpoint on port 80
//! at both their addresses (IPv4 and IPv6): the Lambda API
//! (`lambda.<region>.amazonaws.com`, `lambda.<region>.api.aws`) and
//! function URLs by `Host` ([`crate::lambda::function_url::public`]).
//!
//! Namespaces and tokio: a socket keeps the namespace it was created in,
//! whichever thread uses it afterwards. So each listener is created on a
//! short-lived thread that entered the namespace ([`crate::topology::in_netns`]),
//! made non-blocking there, and handed to the agent's runtime
//! (`TcpListener::from_std`), where axum serves it like any other. A runtime
//! worker never enters a namespace itself: `setns` holds for the calling
//! thread, which would take the namespace to every task it runs next.
use std::{
    future::IntoFuture,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use anyhow::{Context, Result};
use axum::{
    extract::{ConnectInfo, State},
    http::{header, Uri},
    response::IntoResponse,
    Router,
};

use crate::model::{
    endpoint::{EndpointType, AWS_SERVICES_ID, PUBLIC_SERVICES},
    internet::AWS_PUBLIC_ID,
};

/// What one listening service says about itself.
struct Service {
    service_name: String,
    /// The endpoint's id, or "-" for a gateway service reached directly.
    endpoint: String,
}

/// What a listener serves.
enum Serves {
    /// A simulated service: who it is, to whoever asks.
    Simulated(Service),
    /// The Lambda API, behind a Lambda interface endpoint.
    LambdaEndpoint,
    /// Lambda's public endpoint: the API and function URLs, by `Host`.
    LambdaPublic,
}

const PORT: u16 = 80;

/// (namespace, address, service name): one listening service.
type Key = (String, IpAddr, String);

/// Every simulated service the state has now, and where.
fn wanted(name: &str) -> Result<Vec<(Key, Serves)>> {
    let s = crate::state::State::load(name)?;
    let m = &s.model;
    let mut out = vec![];
    if let Some(node) = s.node(AWS_SERVICES_ID) {
        for (service, ip) in PUBLIC_SERVICES {
            let sn = format!("com.amazonaws.{}.{service}", m.region);
            let svc = Service {
                service_name: sn.clone(),
                endpoint: "-".into(),
            };
            out.push(((node.netns.clone(), ip.into(), sn), Serves::Simulated(svc)));
        }
    }
    if let Some(node) = s.node(AWS_PUBLIC_ID) {
        let sn = format!("lambda.{}.amazonaws.com", m.region);
        let ips = std::iter::once(IpAddr::V4(node.ip)).chain(node.ip6.map(IpAddr::V6));
        for ip in ips {
            out.push(((node.netns.clone(), ip, sn.clone()), Serves::LambdaPublic));
        }
    }
    for e in m
        .vpc_endpoints
        .iter()
        .filter(|e| e.kind == EndpointType::Interface)
    {
        for (_, host) in &e.enis {
            if let Some(node) = s.node(host) {
                // Lambda through PrivateLink: its own API, as on the
                // agent's endpoint (Invoke and the rest), from the VPC.
                let serves = if e.service_name.ends_with(".lambda") {
                    Serves::LambdaEndpoint
                } else {
                    Serves::Simulated(Service {
                        service_name: e.service_name.clone(),
                        endpoint: e.vpce_id.clone(),
                    })
                };
                let key = (node.netns.clone(), node.ip.into(), e.service_name.clone());
                out.push((key, serves));
            }
        }
    }
    Ok(out)
}

/// Binds the services of `want`, each in its namespace: blocking (a
/// thread per namespace), so on the blocking pool.
fn bind(want: Vec<(Key, Serves)>) -> Result<Vec<(Key, (std::net::TcpListener, Serves))>> {
    let mut out = vec![];
    for (key, svc) in want {
        let (ns, ip, what) = (key.0.clone(), key.1, key.2.clone());
        let listener = crate::topology::in_netns(&ns, || {
            let l = std::net::TcpListener::bind((ip, PORT))
                .with_context(|| format!("{what} on {}", SocketAddr::new(ip, PORT)))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        out.push((key, (listener, svc)));
    }
    Ok(out)
}

/// Serves every simulated service of deployment `name` until `shutdown`
/// turns true (or its sender is gone), following the state
/// ([`crate::supervise::follow`]): services of endpoints added at runtime
/// (`vpc apply`) start within two seconds, those of removed ones stop.
/// `lambda`: the Lambda API's router (behind a Lambda endpoint); `public`:
/// Lambda's public endpoint's (the API and function URLs, by `Host`).
pub async fn serve(
    name: &str,
    shutdown: tokio::sync::watch::Receiver<bool>,
    lambda: Router,
    public: Router,
) -> Result<()> {
    let (n, stop) = (name.to_string(), shutdown.clone());
    crate::supervise::follow(
        "the simulated AWS services",
        shutdown,
        move || wanted(&n),
        bind,
        move |_: &Key, (listener, svc)| {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let app = match svc {
                Serves::LambdaEndpoint => lambda.clone(),
                Serves::LambdaPublic => public.clone(),
                Serves::Simulated(svc) => Router::new().fallback(answer).with_state(Arc::new(svc)),
            };
            let mut stop = stop.clone();
            let server = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .into_future();
            Ok(async move { Ok(server.await?) })
        },
    )
    .await
}

/// Any request, any method: who answers, through which endpoint, to whom.
async fn answer(
    State(svc): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> impl IntoResponse {
    let body = serde_json::json!({
        "Service": svc.service_name,
        "VpcEndpointId": svc.endpoint,
        "SourceIp": peer.ip().to_string(),
        "Path": uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}
