//! The agent's Lambda-shaped HTTP API, on a Unix socket
//! (`/run/vpc/<name>/api.sock`, always) and on loopback TCP when asked
//! (`vpc up --api-addr 127.0.0.1:PORT`), so an AWS SDK can be pointed at it
//! (`endpoint_url`). Paths, JSON shapes and errors (`x-amzn-ErrorType`, a
//! body with `Type` and `message`) are the Lambda REST API's:
//!
//! | action | request |
//! |---|---|
//! | ListFunctions | `GET /2015-03-31/functions` |
//! | GetFunction | `GET /2015-03-31/functions/{name}[?Qualifier=N]` |
//! | GetFunctionConfiguration | `GET /2015-03-31/functions/{name}/configuration` |
//! | UpdateFunctionConfiguration | `PUT /2015-03-31/functions/{name}/configuration` |
//! | DeleteFunction | `DELETE /2015-03-31/functions/{name}` |
//! | PublishVersion | `POST /2015-03-31/functions/{name}/versions` |
//! | Invoke | `POST /2015-03-31/functions/{name}/invocations` |
//!
//! Ours (not AWS's), under `/_vpc`: `POST /_vpc/clock` `{"AdvanceMs": N}`
//! moves a test clock; `POST /_vpc/ram/(dis)associate-resource-share`
//! `{"ResourceShare", "SubnetIds", "Principals"}` changes a share (RAM's
//! API is another service's); `POST /_vpc/functions/{name}/claim?env=N` is what
//! `vpc invoke F -- CMD` asks before running CMD itself (the lifecycle
//! checks of Invoke, and where to run).
//!
//! Reads are answered from the store on the server's threads; changes go
//! to the agent's loop (`reconcile::Request`), one at a time.
use std::{
    io::{Read, Write},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{atomic::AtomicBool, mpsc::Sender},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{
    lifecycle::{self, ApiError},
    reconcile::{Op, Request},
    state::{Lifecycle, State},
};

pub fn socket_path(name: &str) -> PathBuf {
    crate::paths::state_dir(name).join("api.sock")
}

/// Serves until `stop`: the Unix socket, and `tcp` if given. `bound` gets
/// the TCP address once listening (`None` without TCP).
pub fn serve(
    name: &str,
    tcp: Option<&str>,
    ops: Sender<Request>,
    stop: &AtomicBool,
    bound: impl FnOnce(Option<SocketAddr>),
) -> Result<()> {
    let path = socket_path(name);
    // A socket left by an agent that died: this agent takes over.
    let _ = std::fs::remove_file(&path);
    let unix = tiny_http::Server::http_unix(&path)
        .map_err(|e| anyhow::anyhow!("API on {}: {e}", path.display()))?;
    let tcp = match tcp {
        Some(a) => {
            let s = tiny_http::Server::http(a).map_err(|e| anyhow::anyhow!("API on {a}: {e}"))?;
            let local = s.server_addr().to_ip().context("API: not an IP socket")?;
            Some((s, local))
        }
        None => None,
    };
    bound(tcp.as_ref().map(|(_, a)| *a));
    std::thread::scope(|sc| {
        let servers: Vec<&tiny_http::Server> = std::iter::once(&unix)
            .chain(tcp.as_ref().map(|(s, _)| s))
            .collect();
        for server in servers {
            let ops = ops.clone();
            sc.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                        continue;
                    };
                    let ops = ops.clone();
                    // An invocation may take a while: one thread per request.
                    let name = name.to_string();
                    std::thread::spawn(move || respond(name, req, &ops));
                }
            });
        }
    });
    Ok(())
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);

fn json_reply(status: u16, v: &Value) -> Reply {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        serde_json::to_vec(v).expect("JSON"),
    )
}

fn error_reply(e: &ApiError) -> Reply {
    let (s, mut h, b) = json_reply(
        e.status,
        &json!({"Type": "User", "message": e.message, "Message": e.message}),
    );
    h.push(("x-amzn-ErrorType".into(), e.kind.into()));
    (s, h, b)
}

fn respond(name: String, mut req: tiny_http::Request, ops: &Sender<Request>) {
    let mut body = vec![];
    let _ = req.as_reader().read_to_end(&mut body);
    let method = req.method().as_str().to_string();
    let url = req.url().to_string();
    // The caller's account: an access key id of 12 digits names one (ours:
    // credentials are not checked here); any other key is the owner's.
    let account = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| {
            let v = h.value.as_str();
            let key = v.split("Credential=").nth(1)?.split('/').next()?;
            crate::model::is_account_id(key).then(|| key.to_string())
        });
    let (status, headers, data) = match route(&name, &method, &url, &body, account, ops) {
        Ok(r) => r,
        Err(e) => error_reply(&e),
    };
    let mut resp = tiny_http::Response::from_data(data).with_status_code(status);
    for (k, v) in headers {
        resp.add_header(header(&k, &v));
    }
    let _ = req.respond(resp);
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asks the agent's loop to make a change and waits for its answer.
fn ask(ops: &Sender<Request>, op: Op) -> Result<Value, ApiError> {
    let (tx, rx) = std::sync::mpsc::channel();
    ops.send(Request { op, reply: tx })
        .map_err(|_| ApiError::new(503, "ServiceException", "the agent is stopping"))?;
    rx.recv()
        .map_err(|_| ApiError::new(503, "ServiceException", "the agent is stopping"))?
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::new(500, "ServiceException", format!("{e:#}"))
}

fn route(
    name: &str,
    method: &str,
    url: &str,
    body: &[u8],
    account: Option<String>,
    ops: &Sender<Request>,
) -> Result<Reply, ApiError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let q = |k: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(a, _)| *a == k)
            .map(|(_, v)| percent_decode(v))
    };
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the request body is not JSON: {e}")))
    };
    // A function name may be an ARN.
    let fname = |s: &str| -> String {
        match s.strip_prefix("arn:aws:lambda:") {
            Some(rest) => rest.split(':').nth(3).unwrap_or(s).to_string(),
            None => s.to_string(),
        }
    };
    match (method, parts.as_slice()) {
        ("GET", ["2015-03-31", "functions"]) => {
            let (s, lc) = load(name)?;
            let fs: Vec<Value> = s
                .model
                .functions
                .iter()
                .filter(|f| f.version_of.is_none())
                .map(|f| {
                    let st = lc.functions.get(&f.id).cloned().unwrap_or_default();
                    lifecycle::configuration(&s.model, f, &st, None)
                })
                .collect();
            Ok(json_reply(200, &json!({ "Functions": fs })))
        }
        ("GET", ["2015-03-31", "functions", f]) => {
            let c = get_configuration(name, &fname(f), q("Qualifier"))?;
            Ok(json_reply(
                200,
                &json!({
                    "Configuration": c,
                    "Code": {"RepositoryType": "S3", "Location": ""},
                }),
            ))
        }
        ("GET", ["2015-03-31", "functions", f, "configuration"]) => Ok(json_reply(
            200,
            &get_configuration(name, &fname(f), q("Qualifier"))?,
        )),
        ("PUT", ["2015-03-31", "functions", f, "configuration"]) => {
            let body = json_body()?;
            let c = ask(
                ops,
                Op::Update {
                    function: fname(f),
                    body,
                },
            )?;
            Ok(json_reply(200, &c))
        }
        ("DELETE", ["2015-03-31", "functions", f]) => {
            if q("Qualifier").is_some() {
                return Err(ApiError::invalid(
                    "deleting one version is not supported here: delete the function",
                ));
            }
            ask(ops, Op::Delete { function: fname(f) })?;
            Ok((204, vec![], vec![]))
        }
        ("POST", ["2015-03-31", "functions", f, "versions"]) => {
            let c = ask(ops, Op::Publish { function: fname(f) })?;
            Ok(json_reply(201, &c))
        }
        ("POST", ["2015-03-31", "functions", f, "invocations"]) => {
            let c = ask(
                ops,
                Op::Claim {
                    function: fname(f),
                    env: 1,
                    qualifier: qualifier(q("Qualifier"))?,
                },
            )?;
            invoke(&c, body)
        }
        ("POST", ["_vpc", "functions", f, "claim"]) => {
            let env = q("env").and_then(|e| e.parse().ok()).unwrap_or(1);
            let c = ask(
                ops,
                Op::Claim {
                    function: fname(f),
                    env,
                    qualifier: qualifier(q("Qualifier"))?,
                },
            )?;
            Ok(json_reply(200, &c))
        }
        ("POST", ["_vpc", "clock"]) => {
            let b = json_body()?;
            let ms = b
                .get("AdvanceMs")
                .and_then(|v| v.as_u64())
                .ok_or_else(|| ApiError::invalid("AdvanceMs: milliseconds expected"))?;
            Ok(json_reply(200, &ask(ops, Op::AdvanceClock { ms })?))
        }
        (
            "POST",
            ["_vpc", "ram", op @ ("associate-resource-share" | "disassociate-resource-share")],
        ) => {
            let b = json_body()?;
            let list = |k: &str| -> Vec<String> {
                b.get(k)
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let share = b
                .get("ResourceShare")
                .and_then(|v| v.as_str())
                .ok_or_else(|| ApiError::invalid("ResourceShare: its Name or logical id"))?
                .to_string();
            let r = ask(
                ops,
                Op::Share {
                    share,
                    subnets: list("SubnetIds"),
                    principals: list("Principals"),
                    associate: *op == "associate-resource-share",
                },
            )?;
            Ok(json_reply(200, &r))
        }
        ("POST", ["2015-03-31", "functions"]) => {
            let body = json_body()?;
            let c = ask(ops, Op::Create { body, account })?;
            Ok(json_reply(201, &c))
        }
        _ => Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!("{method} {path}: no such operation"),
        )),
    }
}

/// A version qualifier: `None` for `$LATEST`.
fn qualifier(q: Option<String>) -> Result<Option<u32>, ApiError> {
    match q.as_deref() {
        None | Some("$LATEST") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "Qualifier {v:?}: a version number or $LATEST (aliases are not supported here)"
            ))
        }),
    }
}

fn load(name: &str) -> Result<(State, Lifecycle), ApiError> {
    Ok((
        State::load(name).map_err(internal)?,
        Lifecycle::load(name).map_err(internal)?,
    ))
}

fn get_configuration(name: &str, f: &str, qualifier: Option<String>) -> Result<Value, ApiError> {
    let (s, lc) = load(name)?;
    let func = s.model.function(f).ok_or_else(|| ApiError::not_found(f))?;
    let st = lc.functions.get(&func.id).cloned().unwrap_or_default();
    let version = match qualifier.as_deref() {
        None | Some("$LATEST") => None,
        Some(q) => Some(
            q.parse::<u32>()
                .ok()
                .and_then(|n| st.life.versions.iter().find(|v| v.version == n))
                .ok_or_else(|| ApiError::not_found(&format!("{}:{q}", func.name)))?,
        ),
    };
    // A version reports its own execution environments' state.
    let vst = version.and_then(|v| {
        lc.functions
            .get(&lifecycle::version_id(&func.id, v.version))
    });
    Ok(lifecycle::configuration(
        &s.model,
        func,
        vst.unwrap_or(&st),
        version,
    ))
}

/// Runs the function's handler in its execution environment: the payload
/// on stdin, the response from stdout; a handler that fails is reported as
/// Lambda reports one (200, `X-Amz-Function-Error: Unhandled`).
fn invoke(claim: &Value, payload: &[u8]) -> Result<Reply, ApiError> {
    let ns = claim["Netns"].as_str().unwrap_or_default();
    let code = claim["Code"].as_str().unwrap_or("cat");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", ns, "sh", "-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(vars) = claim["Environment"].as_object() {
        for (k, v) in vars {
            cmd.env(k, v.as_str().unwrap_or_default());
        }
    }
    let mut child = cmd.spawn().map_err(|e| internal(e.into()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&payload);
    });
    let out = child.wait_with_output().map_err(|e| internal(e.into()))?;
    let _ = writer.join();
    let version = claim["Version"].as_str().unwrap_or("$LATEST").to_string();
    let mut headers = vec![("X-Amz-Executed-Version".to_string(), version)];
    if out.status.success() {
        Ok((200, headers, out.stdout))
    } else {
        headers.push(("X-Amz-Function-Error".into(), "Unhandled".into()));
        let body = json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!(
                "exit status {}: {}",
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
        Ok((200, headers, serde_json::to_vec(&body).expect("JSON")))
    }
}

/// An HTTP response from the agent.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// `Err` with Lambda's error type and message for an error response.
    pub fn ok(self) -> Result<Self> {
        if self.status < 300 {
            return Ok(self);
        }
        let kind = self
            .header("x-amzn-ErrorType")
            .unwrap_or("Error")
            .to_string();
        let v = self.json();
        let msg = v["message"].as_str().unwrap_or_default();
        bail!("{kind}: {msg} (HTTP {})", self.status)
    }
}

/// One request to the agent's API over its Unix socket (the CLI's client).
pub fn call(name: &str, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    let sock = socket_path(name);
    let mut s = UnixStream::connect(&sock).with_context(|| {
        format!(
            "the agent of {name:?} does not answer on {} (is the deployment up and its agent running?)",
            sock.display()
        )
    })?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = vec![];
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("API: malformed response")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("API: no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let mut i = 0;
    while let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(String::from_utf8_lossy(&b[i..i + eol]).trim(), 16).unwrap_or(0);
        i += eol + 2;
        if n == 0 || i + n > b.len() {
            break;
        }
        out.extend_from_slice(&b[i..i + n]);
        i += n + 2;
    }
    out
}
