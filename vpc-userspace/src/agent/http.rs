//! The agent's HTTP endpoint: every AWS API the agent serves on one
//! endpoint, as LocalStack does, so one `--endpoint-url` (or
//! `AWS_ENDPOINT_URL`) serves every client.
//!
//! Listeners: the Unix socket `/run/vpc/<name>/api.sock`, always (the CLI's,
//! [`crate::lambda::api::call`]), and loopback TCP when asked (`vpc up --api-addr
//! 127.0.0.1:PORT`, for SDKs). Both serve the same [`endpoint`].
//!
//! Routing: a request's service is the one its SigV4 signature names (the
//! fourth field of the credential scope `AKID/DATE/REGION/SERVICE/aws4_request`,
//! in the `Authorization` header or a presigned URL's `X-Amz-Credential`),
//! else the one its `X-Amz-Target` names (AWS's JSON protocols), else the one
//! its path names (unsigned requests: the CLI, `/_vpc/...`). Signatures are
//! not verified (any credentials do); the access key id still names the
//! caller's account ([`Caller::account`]). `lambda` goes to the Lambda router
//! ([`crate::lambda::api::router`]), `cloudformation` to the stacks' query API
//! ([`crate::cloudformation::api`]), `ec2` to EC2's VPC operations
//! ([`crate::ec2`]), `ssm` to the Parameter Store ([`crate::ssm::api`]); any other service gets AWS's error for an
//! operation that is not served, in its protocol's shape ([`unserved`]):
//! another service is one more router in [`Endpoint`] and one arm in
//! `dispatch`.
//!
//! Runtime: the agent's one tokio runtime ([`crate::agent::run`]), where
//! the endpoint is a task beside the resolver, the simulated services and
//! the metrics. The handlers only parse, route and encode; whatever blocks
//! (reads of the SQLite store, waiting for the agent's loop, an
//! invocation's process in a namespace) runs on tokio's blocking pool
//! (`spawn_blocking`). Changes go to the agent's loop, on its own thread,
//! over a channel (`lambda::operations::Request`), one at a time; an invocation's
//! handler runs with `ip netns exec`, from the blocking pool.
use std::{
    future::IntoFuture,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use tower::ServiceExt as _;

use super::request::{header_str, query_value, service_of, Caller, RequestPath};
use crate::api;

/// The largest request body taken: `CreateFunction`'s `Code.ZipFile` is the
/// base64 of up to 50 MB at AWS.
pub const BODY_LIMIT: usize = 70 << 20;

/// How long in-flight requests get to finish once the agent stops.
pub const GRACE: Duration = Duration::from_secs(2);

/// The routers of the services served, one per service.
#[derive(Clone)]
pub struct Endpoint {
    lambda: Router,
    cloudformation: Router,
    iam: Router,
    sts: Router,
    ec2: Router,
    ssm: Router,
    console: Router,
}

/// The endpoint's one router: every request goes to [`dispatch`].
/// `lambda`: the Lambda API's router (one per agent: its runtimes and
/// concurrency are shared with the Lambda interface endpoints');
/// `cloudformation`: the deployment's stacks
/// ([`crate::cloudformation::api`]); `iam`: IAM's query API
/// ([`crate::iam::api`]); `sts`: STS's GetCallerIdentity
/// ([`crate::iam::sts`]); `ec2`: EC2's VPC operations over the same stacks
/// ([`crate::ec2`]), and moto's `POST /moto-api/reset`; `ssm`: the
/// Parameter Store ([`crate::ssm::api`]), the machine's, so not per
/// deployment; `console`: the console's pages ([`crate::console`]), by
/// path, for unsigned requests.
pub fn endpoint(
    lambda: Router,
    cloudformation: Router,
    iam: Router,
    sts: Router,
    ec2: Router,
    console: Router,
) -> Router {
    let services = Endpoint {
        lambda,
        cloudformation,
        iam,
        sts,
        ec2,
        ssm: crate::ssm::api::router(),
        console,
    };
    Router::new()
        .fallback(dispatch)
        .with_state(services)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// Hands a request to the router of its service, or answers that the
/// service is not served.
async fn dispatch(State(e): State<Endpoint>, req: Request) -> Response {
    // Every request is read whole before it is answered: a handler that
    // takes no body (PublishVersion) would otherwise answer and close with
    // the body unread, and a Unix socket closed with unread data resets
    // its peer, which may then lose the answer (seen under load).
    let (parts, body) = req.into_parts();
    let caller = Caller::of(&parts.headers, parts.uri.query().unwrap_or(""));
    let service = if parts.uri.path().starts_with("/moto-api/") {
        "ec2".to_string()
    } else if caller.service.is_none() && crate::console::serves(parts.uri.path()) {
        "console".to_string()
    } else {
        service_of(&caller, &parts.headers, parts.uri.path())
    };
    let body = match read_body(body).await {
        Some(b) => b,
        None => {
            let c = Call::of(&service, &parts, b"");
            let message = format!(
                "Request must be smaller than {BODY_LIMIT} bytes for the {} operation",
                c.operation
            );
            return c.error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &message,
            );
        }
    };
    let mut req = Request::from_parts(parts, axum::body::Body::from(body));
    tracing::debug!(
        method = %req.method(),
        uri = %req.uri(),
        service,
        "request"
    );
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(RequestPath(path));
    req.extensions_mut().insert(caller);
    match service.as_str() {
        "lambda" => {
            // `/2015-03-31/functions/` is `/2015-03-31/functions`.
            normalize(&mut req);
            match e.lambda.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
        "cloudformation" => match e.cloudformation.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        "iam" => match e.iam.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        "sts" => match e.sts.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        "ec2" => match e.ec2.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        "ssm" => match e.ssm.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        "console" if !crate::console::host_allowed(header_str(req.headers(), "host")) => {
            crate::console::error(
                StatusCode::FORBIDDEN,
                "the console answers requests to a loopback name or address only",
            )
        }
        "console" => match e.console.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        _ => unserved(&service, req).await,
    }
}

/// How much of a body over [`BODY_LIMIT`] is still read (and dropped)
/// before the 413 is sent.
const DRAIN_LIMIT: usize = 4 * BODY_LIMIT;

/// A request's body, read whole up to [`BODY_LIMIT`]; `None` past it or
/// unreadable. Past the limit the rest is read and dropped (up to
/// [`DRAIN_LIMIT`]) before the answer goes: a client still sending would
/// otherwise meet a reset instead of the 413.
async fn read_body(mut body: axum::body::Body) -> Option<axum::body::Bytes> {
    use http_body_util::BodyExt as _;
    let (mut buf, mut seen) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return None;
        }
        if seen <= BODY_LIMIT {
            buf.extend_from_slice(&data);
        }
    }
    (seen <= BODY_LIMIT).then(|| buf.into())
}

/// One slash before the path and none after it.
fn normalize(req: &mut Request) {
    let uri = req.uri();
    let trimmed = format!("/{}", uri.path().trim_matches('/'));
    if trimmed == uri.path() {
        return;
    }
    let pq = match uri.query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    if let Ok(u) = Uri::from_parts(parts) {
        *req.uri_mut() = u;
    }
}

/// The protocols of AWS's APIs, as far as their errors go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `X-Amz-Target` and `application/x-amz-json-1.x` (DynamoDB, SSM, ...).
    Json,
    /// EC2's query protocol: `<Response><Errors><Error>`.
    Ec2,
    /// The query protocol (CloudFormation, IAM, STS, ...): `<ErrorResponse>`.
    Query,
    /// REST with XML (S3, Route 53, CloudFront): `<Error>`.
    RestXml,
    /// REST with JSON (Lambda, API Gateway, ...).
    RestJson,
}

impl Protocol {
    fn of(service: &str, json: bool, form: bool) -> Self {
        const QUERY: &[&str] = &[
            "cloudformation",
            "iam",
            "sts",
            "sns",
            "sqs",
            "elasticloadbalancing",
            "autoscaling",
            "rds",
            "elasticache",
            "redshift",
            "ses",
            "monitoring",
        ];
        if json {
            Self::Json
        } else if service == "ec2" {
            Self::Ec2
        } else if form || QUERY.contains(&service) {
            Self::Query
        } else if ["s3", "route53", "cloudfront"].contains(&service) {
            Self::RestXml
        } else {
            Self::RestJson
        }
    }
}

/// A request id for an error answered here.
fn request_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        t.as_secs() as u32,
        (t.subsec_nanos() >> 16) as u16,
        std::process::id() & 0xfff,
        N.fetch_add(1, Ordering::Relaxed) & 0xfff,
        t.subsec_nanos() as u64
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// AWS's answer to an operation of a service this endpoint does not serve,
/// in the shape of that service's protocol, so an SDK raises its usual
/// client error: `InvalidAction` (HTTP 400) for the query protocols,
/// `UnknownOperationException` otherwise (400 for JSON, 404 for REST: no
/// such resource), the message naming the service and the operation.
pub async fn unserved(service: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let c = Call::of(service, &parts, &body);
    let message = format!(
        "service {service} is not served by this endpoint yet ({})",
        c.operation
    );
    tracing::info!(service, operation = c.operation, "not served");
    let (status, code) = match c.protocol {
        Protocol::Ec2 | Protocol::Query => (StatusCode::BAD_REQUEST, "InvalidAction"),
        Protocol::Json => (StatusCode::BAD_REQUEST, "UnknownOperationException"),
        Protocol::RestXml | Protocol::RestJson => {
            (StatusCode::NOT_FOUND, "UnknownOperationException")
        }
    };
    c.error(status, code, &message)
}

/// A request as far as answering it with an error goes: its protocol and
/// the operation it names.
struct Call {
    protocol: Protocol,
    /// The action (query protocols, `X-Amz-Target`), else `METHOD path`.
    operation: String,
}

impl Call {
    fn of(service: &str, parts: &axum::http::request::Parts, body: &[u8]) -> Call {
        let query = parts.uri.query().unwrap_or("");
        let target = header_str(&parts.headers, "x-amz-target");
        let content_type = header_str(&parts.headers, "content-type").unwrap_or("");
        let form = content_type.starts_with("application/x-www-form-urlencoded");
        let json = target.is_some() || content_type.starts_with("application/x-amz-json");
        let action = target
            .and_then(|t| t.split_once('.'))
            .map(|(_, op)| op.to_string())
            .or_else(|| query_value(query, "Action"))
            .or_else(|| {
                form.then(|| query_value(&String::from_utf8_lossy(body), "Action"))
                    .flatten()
            });
        Call {
            protocol: Protocol::of(service, json, form || action.is_some()),
            operation: action.unwrap_or_else(|| format!("{} {}", parts.method, parts.uri.path())),
        }
    }

    /// Error `code` (JSON protocols: with the `Exception` suffix they use)
    /// in the shape of the request's protocol, so an SDK raises its usual
    /// client error.
    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let id = request_id();
        let xml = |body: String| -> Response {
            (
                status,
                [
                    (header::CONTENT_TYPE, "text/xml;charset=UTF-8"),
                    (
                        header::HeaderName::from_static("x-amzn-requestid"),
                        id.as_str(),
                    ),
                ],
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
            )
                .into_response()
        };
        let m = xml_escape(message);
        match self.protocol {
            Protocol::Ec2 => xml(format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{m}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
            )),
            Protocol::Query => xml(format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{m}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
            )),
            Protocol::RestXml => xml(format!(
                "<Error><Code>{code}</Code><Message>{m}</Message><RequestId>{id}</RequestId></Error>"
            )),
            Protocol::Json | Protocol::RestJson => {
                let code = if code.ends_with("Exception") {
                    code.to_string()
                } else {
                    format!("{code}Exception")
                };
                let content_type = if self.protocol == Protocol::Json {
                    "application/x-amz-json-1.1"
                } else {
                    "application/json"
                };
                let mut r = (
                    status,
                    [(header::CONTENT_TYPE, content_type)],
                    serde_json::to_vec(&serde_json::json!({
                        "__type": code,
                        "message": message,
                    }))
                    .expect("JSON"),
                )
                    .into_response();
                let h = r.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&code) {
                    h.insert("x-amzn-ErrorType", v);
                }
                if let Ok(v) = HeaderValue::from_str(&id) {
                    h.insert("x-amzn-RequestId", v);
                }
                r
            }
        }
    }
}

/// The endpoint's listeners, bound: the Unix socket, and loopback TCP when
/// asked.
pub struct Listeners {
    unix: tokio::net::UnixListener,
    path: PathBuf,
    tcp: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds the Unix socket of deployment `name` (taking over one left by
    /// an agent that died), and `tcp` if given. In the agent's runtime.
    pub async fn bind(name: &str, tcp: Option<&str>) -> Result<Self> {
        let path = api::socket_path(name);
        let _ = std::fs::remove_file(&path);
        let unix = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("API on {}", path.display()))?;
        let tcp = match tcp {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("API on {a}"))?,
            ),
            None => None,
        };
        Ok(Self { unix, path, tcp })
    }

    /// The TCP address listened on, if any (port 0 picks a free one).
    pub fn tcp_addr(&self) -> Result<Option<SocketAddr>> {
        Ok(self.tcp.as_ref().map(|l| l.local_addr()).transpose()?)
    }
}

/// Serves `app` on `listeners` until `shutdown` turns true (or its sender
/// is gone); requests in flight then get [`GRACE`] to finish.
pub async fn serve(
    listeners: Listeners,
    app: Router,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let Listeners { unix, path, tcp } = listeners;
    match tcp.as_ref().map(|l| l.local_addr()).transpose()? {
        Some(a) => tracing::info!("serving the AWS APIs on {} and http://{a}", path.display()),
        None => tracing::info!("serving the AWS APIs on {}", path.display()),
    }
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let on_unix = axum::serve(unix, app.clone()).with_graceful_shutdown(signal(shutdown.clone()));
    let on_tcp = async {
        match tcp {
            Some(l) => {
                axum::serve(l, app)
                    .with_graceful_shutdown(signal(shutdown.clone()))
                    .await
            }
            None => Ok(()),
        }
    };
    let servers = async { tokio::try_join!(on_unix.into_future(), on_tcp) };
    let grace = async {
        signal(shutdown.clone()).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        r = servers => r.map(|_| ()).context("API"),
        () = grace => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;
    use crate::agent::request::percent_decode;

    fn headers(kv: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in kv {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_signature_names_the_service_and_the_account() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=210987654321/20261205/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )]);
        let c = Caller::of(&h, "");
        assert_eq!(c.service.as_deref(), Some("lambda"));
        assert_eq!(c.region.as_deref(), Some("us-east-1"));
        assert_eq!(c.account().as_deref(), Some("210987654321"));
        assert_eq!(service_of(&c, &h, "/"), "lambda");
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261205/us-east-1/ec2/aws4_request,SignedHeaders=host,Signature=abc",
        )]);
        let c = Caller::of(&h, "");
        assert_eq!(service_of(&c, &h, "/2015-03-31/functions"), "ec2");
        // Not 12 digits: the owner.
        assert_eq!(c.account(), None);
    }

    #[test]
    fn presigned_target_and_path() {
        let q =
            "Action=DescribeVpcs&X-Amz-Credential=test%2F20261205%2Fus-east-1%2Fec2%2Faws4_request";
        let c = Caller::of(&HeaderMap::new(), q);
        assert_eq!(c.service.as_deref(), Some("ec2"));
        // SigV4a: no region.
        assert_eq!(
            Caller::from_scope("AK/20261205/s3/aws4_request")
                .service
                .as_deref(),
            Some("s3")
        );
        let h = headers(&[("x-amz-target", "DynamoDB_20120810.ListTables")]);
        assert_eq!(service_of(&Caller::default(), &h, "/"), "dynamodb");
        let h = headers(&[("x-amz-target", "Foo_20200101.Bar")]);
        assert_eq!(service_of(&Caller::default(), &h, "/"), "Foo");
        // Unsigned, no target: the CLI's and ours.
        let none = HeaderMap::new();
        assert_eq!(
            service_of(&Caller::default(), &none, "/_vpc/clock"),
            "lambda"
        );
        assert_eq!(Caller::of(&none, ""), Caller::default());
    }

    #[test]
    fn protocols() {
        assert_eq!(Protocol::of("ec2", false, true), Protocol::Ec2);
        assert_eq!(
            Protocol::of("cloudformation", false, false),
            Protocol::Query
        );
        assert_eq!(Protocol::of("whatever", false, true), Protocol::Query);
        assert_eq!(Protocol::of("dynamodb", true, false), Protocol::Json);
        assert_eq!(Protocol::of("s3", false, false), Protocol::RestXml);
        assert_eq!(Protocol::of("apigateway", false, false), Protocol::RestJson);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%3Ab%2Fc%"), "a:b/c%");
        assert_eq!(percent_decode("%é%"), "%é%");
        assert_eq!(
            query_value("x=1&Qualifier=%24LATEST&x=2", "Qualifier").as_deref(),
            Some("$LATEST")
        );
        assert_eq!(query_value("x=1&x=2", "x").as_deref(), Some("1"));
        assert!(request_id().len() == 36);
    }
}
