//! What a request says about itself before any router sees it: its
//! caller and service from the SigV4 credential scope, the `X-Amz-Target`
//! or the path, and the query helpers the routers share. Below both the
//! endpoint ([`super::http`]) and the service routers ([`crate::api`]).
use axum::http::{header, HeaderMap};

/// What a request's SigV4 credential scope says about its caller (the
/// signature is not checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub access_key: Option<String>,
    pub region: Option<String>,
    /// The service the request was signed for.
    pub service: Option<String>,
}

impl Caller {
    /// Reads the credential scope of the `Authorization` header, else of a
    /// presigned URL's `X-Amz-Credential`.
    pub fn of(headers: &HeaderMap, query: &str) -> Self {
        let scope = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .and_then(|s| s.split([',', ' ']).next())
            .map(str::to_string)
            .or_else(|| query_value(query, "X-Amz-Credential"));
        scope.map(|s| Self::from_scope(&s)).unwrap_or_default()
    }

    /// `AKID/DATE/REGION/SERVICE/aws4_request` (SigV4a has no region:
    /// `AKID/DATE/SERVICE/aws4_request`).
    pub(crate) fn from_scope(scope: &str) -> Self {
        let f: Vec<&str> = scope.split('/').collect();
        let nonempty = |s: Option<&&str>| s.filter(|s| !s.is_empty()).map(|s| s.to_string());
        let (region, service) = match f.len() {
            5 => (nonempty(f.get(2)), nonempty(f.get(3))),
            4 => (None, nonempty(f.get(2))),
            _ => (None, None),
        };
        Self {
            access_key: nonempty(f.first()),
            region,
            service,
        }
    }

    /// The caller's account: an access key id of 12 digits names one (ours:
    /// credentials are not checked here); any other key is the owner's.
    pub fn account(&self) -> Option<String> {
        self.access_key
            .as_deref()
            .filter(|k| crate::model::is_account_id(k))
            .map(str::to_string)
    }
}

/// The service a request is for: its signature's, else its `X-Amz-Target`'s,
/// else its path's.
pub fn service_of(caller: &Caller, headers: &HeaderMap, path: &str) -> String {
    if let Some(s) = &caller.service {
        return s.to_ascii_lowercase();
    }
    if let Some(t) = header_str(headers, "x-amz-target") {
        return target_service(t).to_string();
    }
    service_of_path(path).to_string()
}

/// An unsigned request's service, from its path: the Lambda API's
/// (`/2015-03-31/...`) and ours (`/_vpc/...`) are Lambda's; so is any other
/// path for now (the Lambda router answers it with its 404).
fn service_of_path(_path: &str) -> &'static str {
    "lambda"
}

/// The signing name of the service an `X-Amz-Target` (`Prefix.Operation`)
/// names, for AWS's JSON protocols; an unknown prefix is named as it is,
/// without its API version.
fn target_service(target: &str) -> &str {
    let prefix = target.split('.').next().unwrap_or(target);
    match prefix {
        "DynamoDB_20120810" | "DynamoDBStreams_20120810" => "dynamodb",
        "Logs_20140328" => "logs",
        "AmazonSSM" => "ssm",
        "AWSEvents" => "events",
        "secretsmanager" => "secretsmanager",
        "TrentService" => "kms",
        "AmazonSQS" => "sqs",
        "AWSStepFunctions" => "states",
        "Kinesis_20131202" => "kinesis",
        "AmazonEC2ContainerRegistry_V20150921" => "ecr",
        "AmazonEC2ContainerServiceV20141113" => "ecs",
        "AWSCognitoIdentityProviderService" => "cognito-idp",
        "GraniteServiceVersion20100801" => "monitoring",
        "Firehose_20150804" => "firehose",
        "AWSWAF_20150824" | "AWSWAF_Regional_20161128" | "AWSWAF_20190729" => "waf",
        p => p.split('_').next().unwrap_or(p),
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, k: &str) -> Option<&'a str> {
    headers.get(k).and_then(|v| v.to_str().ok())
}

/// The first `k=value` of a query string or form body, percent-decoded.
pub(crate) fn query_value(query: &str, k: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(a, _)| *a == k)
        .map(|(_, v)| percent_decode(v))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            // Bytes, not a str slice: a multi-byte character may follow.
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
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

/// The path a request came with, before the endpoint normalized it for its
/// router (error messages quote it).
#[derive(Debug, Clone)]
pub struct RequestPath(pub String);
