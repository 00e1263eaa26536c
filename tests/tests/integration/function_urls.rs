//! Function URLs and Lambda's public endpoint, end to end on the real
//! datapath (tests/fixtures/function_urls.yaml): an internet test host
//! reaches AWS's public endpoints on the internet by name (its resolver is
//! theirs) over IPv4 and IPv6, and a function URL invokes a real Python
//! handler (awslambdaric) with the payload format 2.0 event; a VPC host
//! reaches it through the internet gateway; `AuthType: AWS_IAM` wants a
//! SigV4 signature (botocore's); a Lambda interface VPC endpoint does not
//! serve URLs; boto3 invokes through `lambda.<region>.api.aws` over IPv6
//! and drives the CreateFunctionUrlConfig family through
//! `lambda.<region>.amazonaws.com` (tests/fixtures/function_urls.py).
use std::process::Output;

use serde_json::Value;
use vpc_tests::{fixture, fixture_path, pyenv_python, text, wait_for, Deployment, FAST};

const TEMPLATE: &str = fixture!("function_urls.yaml");
const CLIENT4: &str = "203.0.113.10";
const CLIENT6: &str = "2001:db8:f00d::10";
/// AWS's public endpoints (model::internet::LAMBDA_PUBLIC).
const PUBLIC4: &str = "198.18.1.10";

fn api(d: &Deployment, method: &str, path: &str) -> vpc::api::Response {
    vpc::api::call(&d.name, method, path, b"").unwrap()
}

/// The host of function `f`'s URL, from GetFunctionUrlConfig.
fn url_host(d: &Deployment, f: &str) -> String {
    let r = api(d, "GET", &format!("/2021-10-31/functions/{f}/url"))
        .ok()
        .unwrap();
    let url = r.json()["FunctionUrl"].as_str().unwrap().to_string();
    let host = url
        .strip_prefix("https://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{url}"));
    assert!(host.ends_with(".lambda-url.us-east-1.on.aws"), "{host}");
    host.to_string()
}

/// An HTTP answer as curl saw it (`curl -i`).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, k: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `curl -i ARGS` run by `who` (`vpc exec`): its answer, or `None` when
/// nothing answered.
fn curl(d: &Deployment, who: &str, args: &[&str]) -> Option<Answer> {
    let mut a = vec!["exec", who, "--", "curl", "-sS", "-i", "--max-time", "20"];
    a.extend_from_slice(args);
    let out = d.vpc(&a);
    if !out.status.success() {
        return None;
    }
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {}", text(&out)));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Waits until `who` gets an answer from `url` (the agent serves AWS's
/// public endpoints and their DNS once its first look at the state is
/// done; a URL made through the API, once the resolver's zone has it).
fn answered(d: &Deployment, who: &str, args: &[&str]) -> Answer {
    let mut got = None;
    wait_for(&format!("{who}: curl {args:?}"), 30, || {
        got = curl(d, who, args);
        got.is_some()
    });
    got.unwrap()
}

/// `tests/fixtures/function_urls.py ARGS` with the venv's Python, run by
/// the internet test host.
fn python(d: &Deployment, args: &[&str]) -> Output {
    let (py, script) = (pyenv_python(), fixture_path("function_urls.py"));
    let mut a = vec![
        "exec",
        "Client",
        "--",
        py.to_str().unwrap(),
        script.to_str().unwrap(),
    ];
    a.extend_from_slice(args);
    d.vpc(&a)
}

/// The number of invocations a function's log shows (`START` lines).
fn starts(d: &Deployment, f: &str) -> usize {
    let out = d.vpc(&["logs", f]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" START RequestId: "))
        .count()
}

/// Echo's URL from the internet by name, over IPv4 and over IPv6: the
/// handler saw the payload 2.0 event of the request (path, query, cookies,
/// headers, the client's own address as the endpoint saw it) and its
/// custom answer came back mapped (status, headers, cookies, body); the
/// event's requestId is the invocation's (its log's). A VPC host with a
/// public address reaches the same URL through the internet gateway, seen
/// from its public address.
#[test]
fn a_function_url_answers_the_internet_over_ipv4_and_ipv6() {
    let d = Deployment::up("furl", TEMPLATE, FAST);
    let host = url_host(&d, "echo");
    for (family, source) in [("-4", CLIENT4), ("-6", CLIENT6)] {
        let url = format!("http://{host}/some/path?a=1&a=2&b=x%20y");
        let r = answered(
            &d,
            "Client",
            &[family, "-H", "Cookie: c=1; d=2", "-A", "agent/1", &url],
        );
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.header("x-echo"), ["yes"]);
        assert_eq!(r.header("set-cookie"), ["seen=1; Max-Age=60"]);
        assert_eq!(r.header("content-type"), ["application/json"]);
        let e = r.json();
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/some/path");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y");
        assert_eq!(
            e["queryStringParameters"],
            serde_json::json!({"a": "1,2", "b": "x y"})
        );
        assert_eq!(e["cookies"], serde_json::json!(["c=1", "d=2"]));
        assert_eq!(e["headers"]["user-agent"], "agent/1");
        assert_eq!(e["headers"]["host"], host.as_str());
        assert!(e.get("body").is_none(), "{e}");
        let rc = &e["requestContext"];
        assert_eq!(rc["accountId"], "anonymous");
        assert_eq!(rc["domainName"], host.as_str());
        assert_eq!(rc["apiId"], host.split('.').next().unwrap());
        assert_eq!(rc["http"]["method"], "GET");
        assert_eq!(rc["http"]["path"], "/some/path");
        assert_eq!(rc["http"]["sourceIp"], source, "{family}");
        assert_eq!(rc["stage"], "$default");
        let id = rc["requestId"].as_str().unwrap();
        assert_eq!(r.header("x-amzn-requestid"), [id]);
        let log = text(&d.vpc(&["logs", "echo"]));
        assert!(
            log.contains(&format!("START RequestId: {id} Version: $LATEST")),
            "{log}"
        );
    }
    // A body, by POST.
    let url = format!("http://{host}/");
    let r = answered(
        &d,
        "Client",
        &[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"k": 1}"#,
            &url,
        ],
    );
    assert_eq!(r.json()["body"], r#"{"k": 1}"#);
    assert_eq!(r.json()["isBase64Encoded"], false);
    // From the VPC: Web's subnet routes the internet to the gateway, and
    // the VPC resolver answers the URL's name with the public address.
    let public = vpc::state::State::load(&d.name)
        .unwrap()
        .model
        .public_ip("Web")
        .expect("Web's launch address");
    let r = answered(&d, "Web", &[&format!("http://{host}/from-the-vpc")]);
    assert_eq!(r.status, 201);
    let seen = &r.json()["requestContext"]["http"]["sourceIp"];
    assert_eq!(seen, public.to_string().as_str());
}

/// `AuthType: AWS_IAM`: an unsigned request is refused 403
/// `{"Message":"Forbidden"}` and runs nothing; one signed with botocore's
/// SigV4Auth for `lambda` is served, the event naming the caller's account
/// (the access key id, 12 digits) and access key. And the answers that are
/// Lambda's, not the function's: a handler that raises is 502 `{"Message":
/// "Internal Server Error"}`, a function with no concurrency left 429.
#[test]
fn an_aws_iam_url_refuses_unsigned_requests_and_serves_signed_ones() {
    let d = Deployment::up("furliam", TEMPLATE, FAST);
    let broken = answered(
        &d,
        "Client",
        &[&format!("http://{}/", url_host(&d, "broken"))],
    );
    assert_eq!(broken.status, 502);
    assert_eq!(
        broken.json(),
        serde_json::json!({"Message": "Internal Server Error"})
    );
    assert_eq!(starts(&d, "broken"), 1, "it ran, and failed");
    let throttled = answered(
        &d,
        "Client",
        &[&format!("http://{}/", url_host(&d, "throttled"))],
    );
    assert_eq!(throttled.status, 429);
    assert_eq!(
        throttled.json(),
        serde_json::json!({"Message": "Rate Exceeded."})
    );
    let host = url_host(&d, "secret");
    let url = format!("http://{host}/");
    let r = answered(&d, "Client", &[&url]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), serde_json::json!({"Message": "Forbidden"}));
    assert_eq!(starts(&d, "secret"), 0, "nothing ran");
    let out = python(&d, &["signed", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let got = String::from_utf8_lossy(&out.stdout);
    let (status, body) = got.trim().split_once(' ').unwrap();
    assert_eq!(status, "200", "{got}");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"accountId": "210987654321", "iam": "210987654321"})
    );
}

/// `Cors` as Lambda applies it: a preflight to a URL with `Cors` is
/// answered from the configuration alone (the function does not run),
/// an allowed origin's request gets the configured headers beside the
/// function's, another origin's none; UpdateFunctionUrlConfig changes it
/// for the next request; a URL without `Cors` hands `OPTIONS` to its
/// function like any other request.
#[test]
fn a_urls_cors_answers_preflights_and_marks_allowed_origins() {
    let d = Deployment::up("furlcors", TEMPLATE, FAST);
    let echo = format!("http://{}/", url_host(&d, "echo"));
    let preflight = |url: &str, origin: &str, method: &str| {
        answered(
            &d,
            "Client",
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                &format!("Access-Control-Request-Method: {method}"),
                url,
            ],
        )
    };
    // EchoUrl: AllowOrigins ["*"], AllowMethods [GET, POST].
    let r = preflight(&echo, "https://app.example", "POST");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), ["*"]);
    assert_eq!(r.header("access-control-allow-methods"), ["GET,POST"]);
    assert!(r.header("x-echo").is_empty() && r.body.is_empty());
    let r = preflight(&echo, "https://app.example", "DELETE");
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_empty());
    assert_eq!(starts(&d, "echo"), 0, "Lambda answered the preflights");
    let r = answered(&d, "Client", &["-H", "Origin: https://app.example", &echo]);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("x-echo"), ["yes"]);
    assert_eq!(r.header("access-control-allow-origin"), ["*"]);
    assert_eq!(starts(&d, "echo"), 1);
    // One origin, with credentials, through the API.
    let cors = serde_json::json!({"Cors": {
        "AllowOrigins": ["https://app.example"], "AllowMethods": ["GET"],
        "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-echo"],
        "MaxAge": 300, "AllowCredentials": true}});
    vpc::api::call(
        &d.name,
        "PUT",
        "/2021-10-31/functions/echo/url",
        cors.to_string().as_bytes(),
    )
    .unwrap()
    .ok()
    .unwrap();
    let r = preflight(&echo, "https://app.example", "GET");
    assert_eq!(
        r.header("access-control-allow-origin"),
        ["https://app.example"]
    );
    assert_eq!(r.header("access-control-allow-credentials"), ["true"]);
    assert_eq!(r.header("access-control-allow-headers"), ["x-custom"]);
    assert_eq!(r.header("access-control-max-age"), ["300"]);
    assert_eq!(r.header("vary"), ["Origin"]);
    let r = answered(&d, "Client", &["-H", "Origin: https://app.example", &echo]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        ["https://app.example"]
    );
    assert_eq!(r.header("access-control-expose-headers"), ["x-echo"]);
    let r = answered(
        &d,
        "Client",
        &["-H", "Origin: https://other.example", &echo],
    );
    assert_eq!(r.status, 201, "served: CORS is the browser's check");
    assert!(r.header("access-control-allow-origin").is_empty());
    // BrokenUrl has no Cors: the preflight is the function's (it raises).
    let broken = format!("http://{}/", url_host(&d, "broken"));
    let r = preflight(&broken, "https://app.example", "GET");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(starts(&d, "broken"), 1, "the function ran");
}

/// AWS: "Function URLs do not support PrivateLink". From a private subnet
/// with no route out, the VPC resolver answers Lambda's regional name with
/// the interface endpoint's address (its private DNS, as before) and the
/// URL's name with the public endpoints' addresses, which the host cannot
/// reach; the endpoint serves Invoke (so it is up), but a request to it
/// with the URL's `Host` is the Lambda API's unknown operation (404) and
/// the function does not run.
#[test]
fn a_function_url_is_not_served_through_a_lambda_interface_endpoint() {
    let d = Deployment::up("furlpl", TEMPLATE, FAST);
    let host = url_host(&d, "echo");
    let endpoint = d.status()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "LambdaEndpoint.1")
        .map(|h| h["address"].as_str().unwrap().to_string())
        .expect("the endpoint's ENI");
    let resolved = |name: &str| text(&d.vpc(&["exec", "App", "--", "getent", "ahosts", name]));
    let regional = resolved("lambda.us-east-1.amazonaws.com");
    assert!(regional.contains(&endpoint), "{regional}");
    assert!(!regional.contains(PUBLIC4), "{regional}");
    // (IPv4 only here: App has no IPv6 address to ask for AAAA with.)
    let url_names = resolved(&host);
    assert!(url_names.contains(PUBLIC4), "{url_names}");
    // The endpoint is serving: Invoke through it.
    let invoke = "http://lambda.us-east-1.amazonaws.com/2015-03-31/functions/echo/invocations";
    let r = answered(&d, "App", &["-X", "POST", "-d", r#"{"n": 1}"#, invoke]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"invoked": {"n": 1}}));
    let before = starts(&d, "echo");
    assert_eq!(before, 1);
    // The URL through the endpoint: not served.
    let r = curl(
        &d,
        "App",
        &[
            "-H",
            &format!("Host: {host}"),
            &format!("http://{endpoint}/"),
        ],
    )
    .expect("the endpoint answers");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.header("x-amzn-errortype"), ["UnknownOperationException"]);
    let r = curl(
        &d,
        "App",
        &[
            "--resolve",
            &format!("{host}:80:{endpoint}"),
            &format!("http://{host}/p?q=1"),
        ],
    )
    .expect("the endpoint answers");
    assert_eq!(r.status, 404, "{}", r.body);
    // By its name: the public address, and no way out to it.
    assert!(curl(&d, "App", &["--max-time", "2", &format!("http://{host}/")]).is_none());
    assert_eq!(starts(&d, "echo"), before, "the function did not run");
}

/// boto3 from the internet test host: Invoke through the dual-stack
/// `lambda.us-east-1.api.aws` over IPv6 only (its resolver's AAAA answer;
/// `lambda.us-east-1.amazonaws.com` has none), and the
/// CreateFunctionUrlConfig family through `lambda.us-east-1.amazonaws.com`
/// with AWS's shapes and errors. `vpc apply` keeps the URLs in force and
/// drops a removed function's. The URL made through the API is served
/// once the resolver's zone has its name; deleted, it answers 403 at once;
/// DeleteFunction takes a function's URL with it.
#[test]
fn boto3_uses_lambdas_public_endpoints_and_the_function_url_api() {
    let d = Deployment::up("furlsdk", TEMPLATE, FAST);
    // Served once the agent's first look at the state is done.
    wait_for("the public endpoint", 30, || {
        curl(
            &d,
            "Client",
            &["http://lambda.us-east-1.amazonaws.com/2015-03-31/functions"],
        )
        .is_some()
    });
    let out = python(&d, &["dualstack", "us-east-1"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(
        v,
        serde_json::json!({"invoked": {"via": "lambda.us-east-1.api.aws"}})
    );
    let out = python(&d, &["config", "us-east-1"]);
    assert!(out.status.success(), "{}", text(&out));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let host = url
        .strip_prefix("https://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap()
        .to_string();
    assert_eq!(url_host(&d, "plain"), host);
    // `vpc apply`: the URLs in force stay (plain's, made through the API);
    // a function the template no longer has takes its URL with it.
    let (from, to) = (
        TEMPLATE.find("  Secret:\n").unwrap(),
        TEMPLATE.find("  Broken:\n").unwrap(),
    );
    d.apply(&format!("{}{}", &TEMPLATE[..from], &TEMPLATE[to..]));
    assert_eq!(url_host(&d, "plain"), host);
    assert_eq!(
        api(&d, "GET", "/2021-10-31/functions/secret/url").status,
        404
    );
    let model = vpc::state::State::load(&d.name).unwrap().model;
    assert_eq!(model.function_urls.len(), 4, "{:?}", model.function_urls);
    let r = answered(&d, "Client", &["-6", &format!("http://{host}/p")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), ["application/json"]);
    assert_eq!(r.body, r#""plain: /p""#);
    let deleted = api(&d, "DELETE", "/2021-10-31/functions/plain/url");
    assert_eq!(deleted.status, 204);
    let resolve = format!("{host}:80:{PUBLIC4}");
    let r = curl(
        &d,
        "Client",
        &["--resolve", &resolve, &format!("http://{host}/p")],
    )
    .unwrap();
    assert_eq!(
        (r.status, r.json()),
        (403, serde_json::json!({"Message": "Forbidden"}))
    );
    // A function's URL goes with it.
    let echo = url_host(&d, "echo");
    assert_eq!(api(&d, "DELETE", "/2015-03-31/functions/echo").status, 204);
    assert_eq!(api(&d, "GET", "/2021-10-31/functions/echo/url").status, 404);
    let model = vpc::state::State::load(&d.name).unwrap().model;
    assert!(model
        .function_urls
        .iter()
        .all(|u| !echo.starts_with(&u.url_id)));
}
