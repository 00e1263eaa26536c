//! Function URLs served: `http://<url-id>.lambda-url.<region>.on.aws/...`
//! on AWS's public endpoints on the internet ([`public`], bound by
//! [`crate::services`] in the `AwsPublic` namespace), never through a
//! Lambda interface VPC endpoint (AWS: "Function URLs do not support
//! PrivateLink"; the endpoint serves the Lambda API alone, which answers
//! a URL's request 404 `UnknownOperationException`).
//!
//! A request becomes the payload format 2.0 event ([`event`]), the
//! function is invoked through Invoke's own path (the loop's claim, then
//! [`super::api::start`]: its reserved concurrency, its runtime) and its
//! answer becomes the HTTP response as Lambda maps it ([`response`]).
//! `AuthType: AWS_IAM` refuses a request without a SigV4 signature
//! (`Authorization: AWS4-HMAC-SHA256 ...` or a presigned query) for
//! `lambda` with 403 `{"Message":"Forbidden"}`; a signed one passes: the
//! signature itself is not verified, as nowhere in the agent.
use std::net::{IpAddr, SocketAddr};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tower::ServiceExt as _;

use super::{
    api::{self, Lambda},
    function_url_cors::Cors,
    lifecycle::ApiError,
    operations::Op,
};
use crate::{
    agent::request::{percent_decode, query_value, Caller},
    model::{function_url::url_domain, AuthType},
};

/// The largest request a function URL takes (BUFFERED: Invoke's 6 MB).
pub const MAX_REQUEST: usize = 6 * 1024 * 1024;

/// Whether `host` (a `Host` header, maybe with a port) is a function URL's.
pub fn is_url_host(host: &str) -> bool {
    let h = strip_port(host).to_ascii_lowercase();
    h.contains(".lambda-url.") && h.ends_with(".on.aws")
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        // A bare IPv6 literal, without brackets: no port.
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => host,
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[derive(Clone)]
struct Public {
    api: Router,
    urls: Router,
}

/// AWS's public endpoint for Lambda on the internet: a function URL's
/// host goes to `urls`, anything else (`lambda.<region>.amazonaws.com`,
/// `lambda.<region>.api.aws`, an address) to `api`, the agent's endpoint
/// (the Lambda API, by signature).
pub fn public(api: Router, urls: Router) -> Router {
    Router::new()
        .fallback(by_host)
        .with_state(Public { api, urls })
}

async fn by_host(State(p): State<Public>, req: Request) -> Response {
    let url = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_url_host);
    let to = if url { p.urls } else { p.api };
    match to.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The function URLs' router: every path and method of a URL's host.
pub(super) fn router(l: Lambda) -> Router {
    Router::new().fallback(invoke_url).with_state(l)
}

/// Lambda's answers that are not the function's: `{"Message": ...}`.
fn message(status: u16, m: &str) -> Response {
    let mut r = Response::new(Body::from(json!({ "Message": m }).to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// What the URL's configuration says, for one request.
struct Target {
    function: String,
    auth_type: AuthType,
    /// The function owner's account.
    account: String,
    region: String,
    url_id: String,
    cors: Option<Cors>,
}

/// One request to a function URL.
async fn invoke_url(State(l): State<Lambda>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => {
            return message(
                413,
                &format!(
                "Request must be smaller than {MAX_REQUEST} bytes for the InvokeFunction operation"
            ),
            )
        }
    };
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| strip_port(h).to_ascii_lowercase())
        .unwrap_or_default();
    let target = l
        .blocking(move |name, _| {
            let s = crate::state::State::load(name).map_err(api::internal)?;
            let m = &s.model;
            let Some(id) = host.strip_suffix(&format!(".{}", url_domain(&m.region))) else {
                return Ok(None);
            };
            let Some(u) = m.function_url_by_id(id) else {
                return Ok(None);
            };
            let Some(f) = m.function(&u.function) else {
                return Ok(None);
            };
            Ok(Some(Target {
                function: f.name.clone(),
                auth_type: u.auth_type,
                account: f.account.clone().unwrap_or_else(|| m.account.clone()),
                region: m.region.clone(),
                url_id: u.url_id.clone(),
                cors: u.cors.as_ref().map(Cors::of),
            }))
        })
        .await;
    let target = match target {
        Ok(Some(t)) => t,
        // No such URL (deleted, or never made): what AWS answers too.
        Ok(None) => return message(403, "Forbidden"),
        Err(e) => return message(500, &e.message),
    };
    let query = parts.uri.query().unwrap_or("");
    let caller = Caller::of(&parts.headers, query);
    // A preflight is Lambda's to answer when the URL has `Cors`, before
    // any signature is asked for (browsers never sign one).
    if let Some(c) = target
        .cors
        .as_ref()
        .filter(|_| Cors::is_preflight(parts.method.as_str(), &parts.headers))
    {
        let mut resp = Response::new(Body::empty());
        append(&mut resp, c.preflight(&parts.headers));
        return resp;
    }
    if target.auth_type == AuthType::AwsIam && !signed(&parts.headers, query, &caller) {
        return message(403, "Forbidden");
    }
    let request_id = super::runtime::request_id();
    let time_ms = super::logs::now_ms().max(0) as u64;
    let r = UrlRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        protocol: protocol(parts.version),
        headers: &parts.headers,
        body: &body,
        source_ip: peer.unwrap_or(IpAddr::from([0, 0, 0, 0])),
    };
    let ctx = Context {
        url_id: &target.url_id,
        region: &target.region,
        owner: &target.account,
        auth_type: target.auth_type,
        caller: &caller,
        request_id: &request_id,
        time_ms,
    };
    let payload = serde_json::to_vec(&event(&r, &ctx)).expect("JSON");
    let answer = run(&l, target.function, &request_id, payload).await;
    let (status, headers, body) = match answer {
        Ok((body, unhandled)) => response(&body, unhandled),
        Err(e) if e.status == 429 => return message(429, "Rate Exceeded."),
        // The function cannot run now (Pending, Inactive, Failed ...).
        Err(e) => return message(502, &e.message),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    append(&mut resp, headers);
    if let Some(c) = &target.cors {
        append(&mut resp, c.actual(&parts.headers));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp.into_response()
}

/// Appends headers given as text (those that are not valid HTTP dropped).
fn append(resp: &mut Response, headers: Vec<(String, String)>) {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
}

/// Invoke's path: the loop's claim (the lifecycle's checks, where to run),
/// then the function's reserved concurrency and its runtime, under the
/// event's `requestId` (its log lines' `RequestId`, the handler's
/// `context.aws_request_id`, as at AWS). The answer's body, and whether
/// the function failed.
async fn run(
    l: &Lambda,
    function: String,
    request_id: &str,
    payload: Vec<u8>,
) -> Result<(Vec<u8>, bool), ApiError> {
    let mut c = l
        .blocking(move |_, ops| {
            api::ask(
                ops,
                Op::Claim {
                    function,
                    env: 0,
                    qualifier: None,
                    dry_run: false,
                },
            )
        })
        .await?;
    c["RequestId"] = request_id.into();
    let (slot, task) = api::start(l, c, Bytes::from(payload)).await?;
    let r = task
        .await
        .map_err(|e| api::internal(anyhow::anyhow!("the invocation's task: {e}")))??;
    drop(slot);
    Ok((r.body, r.unhandled))
}

/// SigV4 for `lambda`, in the `Authorization` header or a presigned query
/// (not verified: any credentials do, as everywhere in the agent).
fn signed(headers: &HeaderMap, query: &str, caller: &Caller) -> bool {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ") && a.contains("Signature="));
    let presigned = query_value(query, "X-Amz-Signature").is_some();
    (header || presigned)
        && caller.access_key.is_some()
        && caller.service.as_deref() == Some("lambda")
}

fn protocol(v: axum::http::Version) -> &'static str {
    match v {
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        axum::http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// A request to a function URL, as the event needs it.
pub struct UrlRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub protocol: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The client's address as the endpoint sees it.
    pub source_ip: IpAddr,
}

/// What the event says beside the request.
pub struct Context<'a> {
    pub url_id: &'a str,
    pub region: &'a str,
    /// The function owner's account.
    pub owner: &'a str,
    pub auth_type: AuthType,
    pub caller: &'a Caller,
    pub request_id: &'a str,
    pub time_ms: u64,
}

/// Whether a body of this `Content-Type` is text (given as it is) rather
/// than binary (base64), as API Gateway's payload 2.0 tells them apart.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("json")
        || ct.ends_with("xml")
        || ct.ends_with("javascript")
        || ct == "application/x-www-form-urlencoded"
}

/// The function URL payload format 2.0 event of a request (Lambda's
/// "Request payload format"): headers lower-cased, a repeated one's
/// values joined by commas; `Cookie` as `cookies`; query parameters
/// decoded, repeated ones joined by commas; the body as text or base64.
/// `requestContext.accountId` is "anonymous" for `AuthType: NONE` and the
/// caller's account (its access key id when 12 digits, else the owner's)
/// for `AWS_IAM`, with `authorizer.iam` then.
pub fn event(r: &UrlRequest, c: &Context) -> Value {
    let mut headers = Map::new();
    let mut cookies = vec![];
    for (k, v) in r.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if k == axum::http::header::COOKIE {
            cookies.extend(
                v.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        let k = k.as_str().to_ascii_lowercase();
        match headers.get_mut(&k) {
            Some(Value::String(old)) => {
                old.push(',');
                old.push_str(&v);
            }
            _ => {
                headers.insert(k, Value::String(v));
            }
        }
    }
    // What AWS's front end adds on the way in.
    headers.insert("x-forwarded-for".into(), r.source_ip.to_string().into());
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-forwarded-port".into(), "80".into());
    headers.insert(
        "x-amzn-trace-id".into(),
        format!(
            "Root=1-{:08x}-{}",
            c.time_ms / 1000,
            c.request_id.replace('-', "").get(..24).unwrap_or_default()
        )
        .into(),
    );
    let mut params = Map::new();
    for p in r.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        match params.get_mut(&k) {
            Some(Value::String(old)) => {
                old.push(',');
                old.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    }
    let content_type = r
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let text = is_text(content_type) && std::str::from_utf8(r.body).is_ok();
    let body = if text {
        String::from_utf8_lossy(r.body).into_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(r.body)
    };
    let iam = c.auth_type == AuthType::AwsIam;
    let caller_account = c.caller.account().unwrap_or_else(|| c.owner.to_string());
    let authorizer = if iam {
        json!({"iam": {
            "accessKey": c.caller.access_key,
            "accountId": caller_account,
            // Not known here: credentials are not checked.
            "callerId": null,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": null,
            "userId": null,
        }})
    } else {
        Value::Null
    };
    let time = chrono::DateTime::from_timestamp_millis(c.time_ms as i64)
        .unwrap_or_default()
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string();
    let domain = format!("{}.{}", c.url_id, url_domain(c.region));
    let mut e = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": r.path,
        "rawQueryString": r.query,
        "headers": headers,
        "requestContext": {
            "accountId": if iam { caller_account.as_str() } else { "anonymous" },
            "apiId": c.url_id,
            "authentication": null,
            "authorizer": authorizer,
            "domainName": domain,
            "domainPrefix": c.url_id,
            "http": {
                "method": r.method,
                "path": r.path,
                "protocol": r.protocol,
                "sourceIp": r.source_ip.to_string(),
                "userAgent": r.headers.get(axum::http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": c.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time,
            "timeEpoch": c.time_ms,
        },
        "isBase64Encoded": !text,
    });
    let o = e.as_object_mut().expect("object");
    // Absent when there is nothing, as in Lambda's events.
    if !cookies.is_empty() {
        o.insert("cookies".into(), json!(cookies));
    }
    if !params.is_empty() {
        o.insert("queryStringParameters".into(), Value::Object(params));
    }
    if !r.body.is_empty() {
        o.insert("body".into(), body.into());
    }
    e
}

/// The HTTP response of a function's answer, as Lambda maps it (its
/// "Response payload format"): an object with a `statusCode` gives the
/// status, `headers`, `cookies` (one `set-cookie` each), `body` (base64
/// with `isBase64Encoded`); any other answer is the body of a 200 with
/// `content-type: application/json`. A function that failed (unhandled,
/// timed out), or an answer that cannot be read so, is a 502
/// `{"Message":"Internal Server Error"}`.
pub fn response(answer: &[u8], unhandled: bool) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let json_type = || vec![("content-type".to_string(), "application/json".to_string())];
    let failed = || {
        (
            502,
            json_type(),
            br#"{"Message":"Internal Server Error"}"#.to_vec(),
        )
    };
    if unhandled {
        return failed();
    }
    let o = match serde_json::from_slice::<Value>(answer) {
        Ok(Value::Object(o)) if o.contains_key("statusCode") => o,
        _ => return (200, json_type(), answer.to_vec()),
    };
    let status = match &o["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(status) = status.filter(|s| (100..=599).contains(s)) else {
        return failed();
    };
    let mut headers = vec![];
    if let Some(h) = o.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => continue,
            };
            headers.push((k.to_ascii_lowercase(), v));
        }
    }
    for c in o
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        headers.push(("set-cookie".into(), c.to_string()));
    }
    let body = match o.get("body") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) if o.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(b) => b,
                Err(_) => return failed(),
            }
        }
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v) => v.to_string().into_bytes(),
    };
    (status as u16, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(kv: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in kv {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ctx<'a>(auth_type: AuthType, caller: &'a Caller) -> Context<'a> {
        Context {
            url_id: "abcdefghijklmnopqrstuvwxyz012345",
            region: "us-east-1",
            owner: "123456789012",
            auth_type,
            caller,
            request_id: "6f1c2a4e-8d0b-4c1e-9f3a-2b7d5e0c9a11",
            time_ms: 1_583_348_638_390,
        }
    }

    #[test]
    fn a_request_becomes_a_payload_2_0_event() {
        let h = headers(&[
            (
                "Host",
                "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
            ),
            ("User-Agent", "curl/7.88.1"),
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("Cookie", "a=1; b=2"),
            ("Content-Type", "application/json"),
        ]);
        let r = UrlRequest {
            method: "POST",
            path: "/my/path",
            query: "p1=v1&p1=v2&p2=a%20b&flag",
            protocol: "HTTP/1.1",
            headers: &h,
            body: br#"{"k": 1}"#,
            source_ip: "203.0.113.10".parse().unwrap(),
        };
        let caller = Caller::default();
        let e = event(&r, &ctx(AuthType::None, &caller));
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/my/path");
        assert_eq!(e["rawQueryString"], "p1=v1&p1=v2&p2=a%20b&flag");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["headers"]["x-custom"], "one,two");
        assert_eq!(e["headers"]["user-agent"], "curl/7.88.1");
        assert_eq!(e["headers"]["x-forwarded-for"], "203.0.113.10");
        assert!(e["headers"].get("cookie").is_none());
        assert!(e["headers"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| *k == k.to_ascii_lowercase()));
        assert_eq!(
            e["queryStringParameters"],
            json!({"p1": "v1,v2", "p2": "a b", "flag": ""})
        );
        assert_eq!(e["body"], r#"{"k": 1}"#);
        assert_eq!(e["isBase64Encoded"], false);
        let rc = &e["requestContext"];
        assert_eq!(rc["accountId"], "anonymous");
        assert_eq!(rc["apiId"], "abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(rc["authorizer"], Value::Null);
        assert_eq!(
            rc["domainName"],
            "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
        );
        assert_eq!(rc["domainPrefix"], "abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(
            rc["http"],
            json!({"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1",
                   "sourceIp": "203.0.113.10", "userAgent": "curl/7.88.1"})
        );
        assert_eq!(rc["requestId"], "6f1c2a4e-8d0b-4c1e-9f3a-2b7d5e0c9a11");
        assert_eq!(rc["stage"], "$default");
        assert_eq!(rc["routeKey"], "$default");
        assert_eq!(rc["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(rc["timeEpoch"], 1_583_348_638_390u64);
    }

    #[test]
    fn binary_bodies_are_base64_and_empty_parts_are_left_out() {
        let h = headers(&[("Content-Type", "application/octet-stream")]);
        let caller = Caller::default();
        let mut r = UrlRequest {
            method: "PUT",
            path: "/",
            query: "",
            protocol: "HTTP/1.1",
            headers: &h,
            body: &[0xff, 0x00, 0x41],
            source_ip: "2001:db8:f00d::10".parse().unwrap(),
        };
        let e = event(&r, &ctx(AuthType::None, &caller));
        assert_eq!(e["body"], "/wBB");
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "2001:db8:f00d::10");
        r.body = b"";
        let e = event(&r, &ctx(AuthType::None, &caller));
        for absent in ["body", "cookies", "queryStringParameters"] {
            assert!(e.get(absent).is_none(), "{absent}: {e}");
        }
        assert_eq!(e["rawQueryString"], "");
    }

    #[test]
    fn an_iam_url_names_its_caller() {
        let h = headers(&[]);
        let caller = Caller::from_scope("210987654321/20260101/us-east-1/lambda/aws4_request");
        let r = UrlRequest {
            method: "GET",
            path: "/",
            query: "",
            protocol: "HTTP/1.1",
            headers: &h,
            body: b"",
            source_ip: "203.0.113.10".parse().unwrap(),
        };
        let e = event(&r, &ctx(AuthType::AwsIam, &caller));
        assert_eq!(e["requestContext"]["accountId"], "210987654321");
        assert_eq!(
            e["requestContext"]["authorizer"]["iam"]["accessKey"],
            "210987654321"
        );
        // Any other key: the owner's account.
        let caller = Caller::from_scope("AKIDEXAMPLE/20260101/us-east-1/lambda/aws4_request");
        let e = event(&r, &ctx(AuthType::AwsIam, &caller));
        assert_eq!(e["requestContext"]["accountId"], "123456789012");
    }

    #[test]
    fn signatures_are_looked_for_not_checked() {
        let unsigned = headers(&[]);
        assert!(!signed(&unsigned, "", &Caller::of(&unsigned, "")));
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
        let h = headers(&[("Authorization", auth)]);
        assert!(signed(&h, "", &Caller::of(&h, "")));
        // Signed for another service: not for a function URL.
        let other = auth.replace("/lambda/", "/execute-api/");
        let h = headers(&[("Authorization", other.as_str())]);
        assert!(!signed(&h, "", &Caller::of(&h, "")));
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Signature=00";
        assert!(signed(&unsigned, q, &Caller::of(&unsigned, q)));
        let h = headers(&[("Authorization", "Bearer x")]);
        assert!(!signed(&h, "", &Caller::of(&h, "")));
    }

    #[test]
    fn answers_map_to_responses_as_lambda_maps_them() {
        let (s, h, b) = response(
            br#"{"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-N": 7}, "cookies": ["a=1; Max-Age=60", "b=2"], "body": "made"}"#,
            false,
        );
        assert_eq!(s, 201);
        assert_eq!(b, b"made");
        assert_eq!(
            h,
            [
                ("content-type".to_string(), "text/plain".to_string()),
                ("x-n".into(), "7".into()),
                ("set-cookie".into(), "a=1; Max-Age=60".into()),
                ("set-cookie".into(), "b=2".into()),
            ]
        );
        let (s, _, b) = response(
            br#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}"#,
            false,
        );
        assert_eq!((s, b.as_slice()), (200, b"hi".as_slice()));
        // No statusCode: the JSON itself, 200, application/json.
        for answer in [
            &br#"{"message": "Hello"}"#[..],
            br#""Hello, world!""#,
            b"[1,2]",
        ] {
            let (s, h, b) = response(answer, false);
            assert_eq!(s, 200);
            assert_eq!(
                h,
                [("content-type".to_string(), "application/json".to_string())]
            );
            assert_eq!(b, answer);
        }
        // A failed function, a status that is none.
        for (answer, unhandled) in [
            (
                &br#"{"errorMessage": "boom", "errorType": "Exception"}"#[..],
                true,
            ),
            (br#"{"statusCode": "many"}"#, false),
            (
                br#"{"statusCode": 200, "body": "*", "isBase64Encoded": true}"#,
                false,
            ),
        ] {
            let (s, _, b) = response(answer, unhandled);
            assert_eq!(s, 502);
            assert_eq!(b, br#"{"Message":"Internal Server Error"}"#);
        }
    }

    #[test]
    fn url_hosts_are_told_apart() {
        assert!(is_url_host("abc.lambda-url.us-east-1.on.aws"));
        assert!(is_url_host("ABC.lambda-url.us-east-1.on.aws:80"));
        assert!(!is_url_host("lambda.us-east-1.amazonaws.com"));
        assert!(!is_url_host("lambda.us-east-1.api.aws"));
        assert!(!is_url_host("198.18.1.10"));
        assert!(!is_url_host("[2001:2:ffff::10]:80"));
        assert_eq!(strip_port("[2001:2:ffff::10]:80"), "[2001:2:ffff::10]");
        assert_eq!(strip_port("a.on.aws:8080"), "a.on.aws");
    }
}
