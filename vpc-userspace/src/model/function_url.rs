//! Function URLs: `AWS::Lambda::Url` in templates, and the configurations
//! the Lambda API's CreateFunctionUrlConfig family keeps
//! ([`crate::lambda::function_url_config`]): which function a URL invokes,
//! its `AuthType`, `Cors`, and its id, the `<url-id>` of
//! `https://<url-id>.lambda-url.<region>.on.aws/`. They are served by
//! AWS's public endpoints on the internet ([`crate::lambda::function_url`]),
//! never through a VPC endpoint (AWS: "Function URLs do not support
//! PrivateLink").
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fnv1a, res_path, Builder, Function, Model};
use crate::template::{ModelError, Result};

pub const URL: &str = "AWS::Lambda::Url";

/// `AuthType`: who may call the URL.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum AuthType {
    /// Anyone: a public endpoint.
    #[serde(rename = "NONE")]
    None,
    /// Requests signed with SigV4 only (the signature is not verified
    /// here, as nowhere in the agent).
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

impl AuthType {
    /// Lambda's own words for a value it does not take.
    pub fn parse(v: &Value) -> std::result::Result<Self, String> {
        match v.as_str() {
            Some("NONE") => Ok(Self::None),
            Some("AWS_IAM") => Ok(Self::AwsIam),
            _ => Err(format!(
                "1 validation error detected: Value {} at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]",
                shown(v)
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::AwsIam => "AWS_IAM",
        }
    }
}

/// A value as Lambda's validation messages quote it: `'text'`, or JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "null".into(),
        v => v.to_string(),
    }
}

/// One function URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionUrl {
    /// The function's id in the model.
    pub function: String,
    /// `Qualifier`: an alias name at AWS (`None`: the unqualified function,
    /// `$LATEST`). This project has no aliases yet, so it is always `None`.
    #[serde(default)]
    pub qualifier: Option<String>,
    pub auth_type: AuthType,
    /// `Cors` as given (checked for its shape; applied to the URL's
    /// answers by `lambda::function_url_cors`).
    #[serde(default)]
    pub cors: Option<Value>,
    /// 32 lower-case letters and digits, derived from the account, the
    /// region, the function's name and the qualifier ([`url_id`]).
    pub url_id: String,
    /// When it was created and last changed (ms since the epoch, on the
    /// deployment's clock); 0 for a template's: created with the deployment.
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub modified_ms: u64,
}

/// A URL's id: stable for one (account, region, function name,
/// qualifier), as AWS's is ("Lambda generates the <url-id> ... based on a
/// number of factors, including your AWS account ID ... this process is
/// deterministic"): four FNV-1a hashes of the four, each read as eight
/// base-36 digits.
pub fn url_id(account: &str, region: &str, function_name: &str, qualifier: Option<&str>) -> String {
    const DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let key = format!(
        "{account}:{region}:{function_name}:{}",
        qualifier.unwrap_or("$LATEST")
    );
    let mut id = String::with_capacity(32);
    for salt in 0..4 {
        let mut h = fnv1a(&format!("{salt}/{key}"));
        for _ in 0..8 {
            id.push(DIGITS[(h % 36) as usize] as char);
            h /= 36;
        }
    }
    id
}

/// The domain suffix of every function URL of `region`.
pub fn url_domain(region: &str) -> String {
    format!("lambda-url.{region}.on.aws")
}

/// `<url-id>.lambda-url.<region>.on.aws`.
pub fn url_host(url_id: &str, region: &str) -> String {
    format!("{url_id}.{}", url_domain(region))
}

/// The URL as AWS writes it (`FunctionUrl`): `https://.../`. Only plain
/// HTTP on port 80 is served here (docs/lambda.md says why).
pub fn function_url(url_id: &str, region: &str) -> String {
    format!("https://{}/", url_host(url_id, region))
}

/// The function name a `TargetFunctionArn` or `FunctionName` gives: a
/// name, a function ARN or a partial ARN (`123456789012:function:f`).
pub fn function_name_of(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix("arn:") {
        // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        return rest.split(':').nth(5).unwrap_or(s);
    }
    match s.split(':').collect::<Vec<_>>()[..] {
        [_, "function", name, ..] => name,
        _ => s,
    }
}

/// `Qualifier` (an alias name at AWS): Lambda's pattern. A version
/// number, or `$LATEST`, is refused by it.
pub fn check_qualifier(q: &str) -> std::result::Result<(), String> {
    let ok = !q.is_empty()
        && q.len() <= 128
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !q.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
        ))
    }
}

/// `InvokeMode`: `BUFFERED` (the default) is what is served here;
/// `RESPONSE_STREAM` (InvokeWithResponseStream) is not.
pub fn check_invoke_mode(v: &Value) -> std::result::Result<(), String> {
    match v.as_str() {
        Some("BUFFERED") => Ok(()),
        Some("RESPONSE_STREAM") => Err(
            "InvokeMode RESPONSE_STREAM (InvokeWithResponseStream) is not supported here: BUFFERED only"
                .into(),
        ),
        _ => Err(format!(
            "1 validation error detected: Value {} at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]",
            shown(v)
        )),
    }
}

/// `Cors`: its fields and their types, as Lambda's API model has them.
/// Errors name the field (`Cors.AllowOrigins`).
pub fn check_cors(v: &Value) -> std::result::Result<(), (String, String)> {
    let Value::Object(o) = v else {
        return Err(("Cors".into(), "must be an object".into()));
    };
    for (k, x) in o {
        let field = format!("Cors.{k}");
        let ok = match k.as_str() {
            "AllowCredentials" => x.is_boolean(),
            "AllowHeaders" | "AllowMethods" | "AllowOrigins" | "ExposeHeaders" => x
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string)),
            "MaxAge" => x.as_u64().is_some_and(|n| n <= 86_400),
            _ => {
                return Err((
                    field,
                    "unknown field (AllowCredentials, AllowHeaders, AllowMethods, AllowOrigins, ExposeHeaders, MaxAge)".into(),
                ))
            }
        };
        if !ok {
            let want = match k.as_str() {
                "AllowCredentials" => "true or false",
                "MaxAge" => "a number of seconds, 0-86400",
                _ => "a list of strings",
            };
            return Err((field, format!("must be {want}")));
        }
    }
    Ok(())
}

impl Model {
    /// A function's ARN, in its account.
    pub fn function_arn(&self, f: &Function) -> String {
        let account = f.account.as_deref().unwrap_or(&self.account);
        format!(
            "arn:aws:lambda:{}:{account}:function:{}",
            self.region, f.name
        )
    }

    /// The URL of function `id` (model id) for `qualifier`.
    pub fn function_url(&self, id: &str, qualifier: Option<&str>) -> Option<&FunctionUrl> {
        self.function_urls
            .iter()
            .find(|u| u.function == id && u.qualifier.as_deref() == qualifier)
    }

    /// The URL whose id is `url_id`.
    pub fn function_url_by_id(&self, url_id: &str) -> Option<&FunctionUrl> {
        self.function_urls.iter().find(|u| u.url_id == url_id)
    }
}

impl Builder<'_> {
    /// `AWS::Lambda::Url`: after the functions. `!Ref` gives the function's
    /// ARN, `!GetAtt U.FunctionUrl` and `U.FunctionArn` the rest.
    pub(super) fn function_urls(&mut self) -> Result<()> {
        for res in self.of_type(URL) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            let field = |f: &str| format!("{path}.{f}");
            if let Some(k) = p.as_object().and_then(|o| {
                o.keys().find(|k| {
                    ![
                        "AuthType",
                        "Cors",
                        "InvokeMode",
                        "Qualifier",
                        "TargetFunctionArn",
                    ]
                    .contains(&k.as_str())
                })
            }) {
                return Err(ModelError::new(field(k), "unknown property"));
            }
            let target = match p.get("TargetFunctionArn") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(ModelError::new(
                        field("TargetFunctionArn"),
                        "must be a string",
                    ))
                }
                None => return Err(ModelError::new(field("TargetFunctionArn"), "is required")),
            };
            let Some(f) = self.m.function(function_name_of(&target)).cloned() else {
                return Err(ModelError::new(
                    field("TargetFunctionArn"),
                    format!("ResourceNotFoundException: Function not found: {target}"),
                ));
            };
            let auth_type = match p.get("AuthType") {
                None => return Err(ModelError::new(field("AuthType"), "is required")),
                Some(v) => AuthType::parse(v).map_err(|e| ModelError::new(field("AuthType"), e))?,
            };
            if let Some(m) = p.get("InvokeMode") {
                check_invoke_mode(m).map_err(|e| ModelError::new(field("InvokeMode"), e))?;
            }
            let cors = p.get("Cors").cloned();
            if let Some(c) = &cors {
                check_cors(c).map_err(|(f, e)| ModelError::new(field(&f), e))?;
            }
            if let Some(q) = p.get("Qualifier") {
                let q = q
                    .as_str()
                    .ok_or_else(|| ModelError::new(field("Qualifier"), "must be a string"))?;
                check_qualifier(q).map_err(|e| ModelError::new(field("Qualifier"), e))?;
                return Err(ModelError::new(
                    field("Qualifier"),
                    format!(
                        "ResourceNotFoundException: Function not found: {}:{q} (a URL's Qualifier names an alias, and aliases are not supported here)",
                        self.m.function_arn(&f)
                    ),
                ));
            }
            let arn = self.m.function_arn(&f);
            if self.m.function_url(&f.id, None).is_some() {
                return Err(ModelError::new(
                    field("TargetFunctionArn"),
                    format!(
                        "ResourceConflictException: Failed to create function url config for [functionArn = {arn}]. Error message:  FunctionUrlConfig exists for this Lambda function"
                    ),
                ));
            }
            let account = f.account.as_deref().unwrap_or(&self.m.account).to_string();
            let url_id = url_id(&account, &self.m.region, &f.name, None);
            self.r.refs.insert(id.clone(), Value::String(arn.clone()));
            self.attr(&id, "FunctionArn", arn);
            self.attr(&id, "FunctionUrl", function_url(&url_id, &self.m.region));
            self.m.function_urls.push(FunctionUrl {
                function: f.id.clone(),
                qualifier: None,
                auth_type,
                cors,
                url_id,
                created_ms: 0,
                modified_ms: 0,
            });
        }
        self.m
            .function_urls
            .sort_by(|a, b| a.function.cmp(&b.function));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::build;

    const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Hello:
    Type: AWS::Lambda::Function
    Properties: {FunctionName: hello, Runtime: python3.11, Handler: index.handler, Code: {ZipFile: "def handler(e, c): return e"}}
  Other:
    Type: AWS::Lambda::Function
    Properties: {Runtime: python3.11, Handler: index.handler, Code: {ZipFile: "def handler(e, c): return e"}}
  HelloUrl:
    Type: AWS::Lambda::Url
    Properties:
      TargetFunctionArn: !GetAtt Hello.Arn
      AuthType: NONE
      Cors: {AllowOrigins: ["*"], MaxAge: 60}
  OtherUrl: {Type: AWS::Lambda::Url, Properties: {TargetFunctionArn: !Ref Other, AuthType: AWS_IAM}}
"#;

    fn build_ok(t: &str) -> Model {
        build(t, &HashMap::new(), "stack").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn url_ids_are_32_lowercase_alphanumerics_stable_per_function_and_qualifier() {
        let a = url_id("123456789012", "us-east-1", "hello", None);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(a, url_id("123456789012", "us-east-1", "hello", None));
        for other in [
            url_id("123456789013", "us-east-1", "hello", None),
            url_id("123456789012", "eu-west-1", "hello", None),
            url_id("123456789012", "us-east-1", "hellO", None),
            url_id("123456789012", "us-east-1", "hello", Some("live")),
        ] {
            assert_ne!(a, other);
        }
        assert_eq!(
            function_url(&a, "us-east-1"),
            format!("https://{a}.lambda-url.us-east-1.on.aws/")
        );
    }

    #[test]
    fn template_urls_resolve_their_function_and_attributes() {
        let m = build_ok(BASE);
        let hello = m.function("hello").unwrap();
        let u = m.function_url(&hello.id, None).unwrap();
        assert_eq!(u.auth_type, AuthType::None);
        assert_eq!(
            u.cors,
            Some(serde_json::json!({"AllowOrigins": ["*"], "MaxAge": 60}))
        );
        assert_eq!(u.url_id, url_id(&m.account, &m.region, "hello", None));
        let other = m.function("Other").unwrap();
        assert_eq!(
            m.function_url(&other.id, None).unwrap().auth_type,
            AuthType::AwsIam
        );
        assert_eq!(m.function_url_by_id(&u.url_id).unwrap().function, hello.id);
        assert_eq!(m.function_urls.len(), 2);
        // Another function's variables see the attributes.
        let t = format!(
            "{BASE}  Reader:\n    Type: AWS::Lambda::Function\n    Properties:\n      Environment: {{Variables: {{URL: !GetAtt HelloUrl.FunctionUrl, ARN: !GetAtt HelloUrl.FunctionArn, REF: !Ref OtherUrl}}}}\n"
        );
        let m = build_ok(&t);
        let vars = &m.function("Reader").unwrap().environment;
        assert_eq!(vars["URL"], function_url(&u.url_id, "us-east-1"));
        assert_eq!(
            vars["ARN"],
            format!("arn:aws:lambda:us-east-1:{}:function:hello", m.account)
        );
        assert_eq!(
            vars["REF"],
            format!(
                "arn:aws:lambda:us-east-1:{}:function:stack-Other",
                m.account
            )
        );
    }

    #[test]
    fn bad_urls_name_their_field() {
        let field = "Resources.HelloUrl.Properties";
        let cases = [
            (
                BASE.replace("AuthType: NONE", "AuthType: OPEN"),
                "AuthType",
                "enum value set: [NONE, AWS_IAM]",
            ),
            (
                BASE.replace("      AuthType: NONE\n", ""),
                "AuthType",
                "is required",
            ),
            (
                BASE.replace("!GetAtt Hello.Arn", "nobody"),
                "TargetFunctionArn",
                "Function not found: nobody",
            ),
            (
                BASE.replace("MaxAge: 60", "MaxAge: -1"),
                "Cors.MaxAge",
                "0-86400",
            ),
            (
                BASE.replace("MaxAge: 60", "MaxAgee: 60"),
                "Cors.MaxAgee",
                "unknown field",
            ),
            (
                BASE.replace("AllowOrigins: [\"*\"]", "AllowOrigins: \"*\""),
                "Cors.AllowOrigins",
                "list of strings",
            ),
            (
                BASE.replace(
                    "AuthType: NONE",
                    "AuthType: NONE\n      InvokeMode: RESPONSE_STREAM",
                ),
                "InvokeMode",
                "BUFFERED only",
            ),
            (
                BASE.replace("AuthType: NONE", "AuthType: NONE\n      InvokeMode: FAST"),
                "InvokeMode",
                "[BUFFERED, RESPONSE_STREAM]",
            ),
            (
                BASE.replace("AuthType: NONE", "AuthType: NONE\n      Qualifier: '1'"),
                "Qualifier",
                "regular expression pattern",
            ),
            (
                BASE.replace("AuthType: NONE", "AuthType: NONE\n      Qualifier: $LATEST"),
                "Qualifier",
                "regular expression pattern",
            ),
            (
                BASE.replace("AuthType: NONE", "AuthType: NONE\n      Qualifier: live"),
                "Qualifier",
                "aliases are not supported here",
            ),
            (
                BASE.replace("AuthType: NONE", "AuthType: NONE\n      Auth: x"),
                "Auth",
                "unknown property",
            ),
            (
                BASE.replace("!Ref Other, AuthType", "hello, AuthType"),
                "",
                "FunctionUrlConfig exists",
            ),
        ];
        for (t, f, msg) in cases {
            let e = build(&t, &HashMap::new(), "stack")
                .expect_err(msg)
                .to_string();
            assert!(e.contains(field) || e.contains("OtherUrl"), "{e}");
            assert!(
                e.contains(f) && e.contains(msg),
                "got {e:?}, want {f} / {msg}"
            );
        }
    }

    #[test]
    fn function_names_come_from_names_and_arns() {
        assert_eq!(function_name_of("f"), "f");
        assert_eq!(
            function_name_of("arn:aws:lambda:us-east-1:123456789012:function:f"),
            "f"
        );
        assert_eq!(
            function_name_of("arn:aws:lambda:us-east-1:123456789012:function:f:live"),
            "f"
        );
        assert_eq!(function_name_of("123456789012:function:f"), "f");
    }
}
