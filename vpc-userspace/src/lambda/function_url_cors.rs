//! A function URL's `Cors`, applied as Lambda applies it (the developer
//! guide's "Cross-origin resource sharing (CORS)" for function URLs):
//! - a preflight request (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) to a URL with `Cors` is answered by
//!   Lambda from the configuration alone: the function is not invoked, and
//!   only the configured CORS headers are sent ("the configured CORS
//!   headers on the function URL take precedence");
//! - any other request with an `Origin` the configuration allows gets the
//!   configured `Access-Control-Allow-Origin`, `-Expose-Headers` and
//!   `-Allow-Credentials` beside the function's own headers (AWS returns
//!   both, duplicates included).
//!
//! Decisions where the guide is silent: an origin the configuration does
//! not allow gets no CORS header at all (the browser refuses; the request
//! itself is still served, as CORS is the browser's check); a preflight is
//! answered `200` with an empty body; `AllowOrigins: ["*"]` answers `*`
//! unless `AllowCredentials` is true, where browsers refuse `*` and the
//! request's origin is echoed instead; a preflight to an `AWS_IAM` URL is
//! answered without a signature (browsers never sign one; as API Gateway
//! answers preflights before its authorizers). A URL without `Cors` passes an
//! `OPTIONS` request to the function like any other.
use axum::http::HeaderMap;
use serde_json::Value;

/// `Cors` as the model keeps it (checked by `model::function_url::check_cors`).
#[derive(Debug, Default, PartialEq)]
pub struct Cors {
    allow_credentials: bool,
    allow_headers: Vec<String>,
    allow_methods: Vec<String>,
    allow_origins: Vec<String>,
    expose_headers: Vec<String>,
    max_age: Option<u64>,
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn header<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

impl Cors {
    pub fn of(v: &Value) -> Cors {
        Cors {
            allow_credentials: v.get("AllowCredentials").and_then(Value::as_bool) == Some(true),
            allow_headers: strings(v, "AllowHeaders"),
            allow_methods: strings(v, "AllowMethods"),
            allow_origins: strings(v, "AllowOrigins"),
            expose_headers: strings(v, "ExposeHeaders"),
            max_age: v.get("MaxAge").and_then(Value::as_u64),
        }
    }

    /// Whether a request is a CORS preflight.
    pub fn is_preflight(method: &str, h: &HeaderMap) -> bool {
        method.eq_ignore_ascii_case("OPTIONS")
            && header(h, "origin").is_some()
            && header(h, "access-control-request-method").is_some()
    }

    /// `Access-Control-Allow-Origin` for the request's `Origin`, if allowed
    /// (origins compare without regard to case, as hosts do).
    fn allow_origin(&self, h: &HeaderMap) -> Option<String> {
        let origin = header(h, "origin")?;
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some(if self.allow_credentials {
                origin.to_string()
            } else {
                "*".to_string()
            });
        }
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }

    fn common(&self, origin: String) -> Vec<(String, String)> {
        let mut out = vec![("access-control-allow-origin".to_string(), origin)];
        if self.allow_credentials {
            out.push(("access-control-allow-credentials".into(), "true".into()));
        }
        if self.allow_origins.iter().all(|o| o != "*") || self.allow_credentials {
            out.push(("vary".into(), "Origin".into()));
        }
        out
    }

    /// The headers of a preflight's answer: none when the origin or the
    /// requested method is not allowed.
    pub fn preflight(&self, h: &HeaderMap) -> Vec<(String, String)> {
        let Some(origin) = self.allow_origin(h) else {
            return vec![];
        };
        let method = header(h, "access-control-request-method").unwrap_or("");
        let allowed = self
            .allow_methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method));
        if !allowed {
            return vec![];
        }
        let mut out = self.common(origin);
        out.push((
            "access-control-allow-methods".into(),
            self.allow_methods.join(","),
        ));
        if !self.allow_headers.is_empty() {
            out.push((
                "access-control-allow-headers".into(),
                self.allow_headers.join(","),
            ));
        }
        if let Some(age) = self.max_age {
            out.push(("access-control-max-age".into(), age.to_string()));
        }
        out
    }

    /// The headers added to the function's answer to any other request.
    pub fn actual(&self, h: &HeaderMap) -> Vec<(String, String)> {
        let Some(origin) = self.allow_origin(h) else {
            return vec![];
        };
        let mut out = self.common(origin);
        if !self.expose_headers.is_empty() {
            out.push((
                "access-control-expose-headers".into(),
                self.expose_headers.join(","),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(h: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    fn get<'a>(out: &'a [(String, String)], k: &str) -> Option<&'a str> {
        out.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_the_configuration() {
        let c = Cors::of(&json!({
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-custom"],
            "MaxAge": 300
        }));
        let h = headers(&[
            ("origin", "https://APP.example"),
            ("access-control-request-method", "post"),
        ]);
        assert!(Cors::is_preflight("OPTIONS", &h));
        assert!(!Cors::is_preflight("GET", &h));
        let out = c.preflight(&h);
        assert_eq!(
            get(&out, "access-control-allow-origin"),
            Some("https://APP.example")
        );
        assert_eq!(get(&out, "access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(get(&out, "access-control-allow-headers"), Some("x-custom"));
        assert_eq!(get(&out, "access-control-max-age"), Some("300"));
        assert_eq!(get(&out, "vary"), Some("Origin"));
        assert_eq!(get(&out, "access-control-allow-credentials"), None);
        // Another origin, or a method not listed: nothing.
        let other = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(c.preflight(&other).is_empty());
        let delete = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "DELETE"),
        ]);
        assert!(c.preflight(&delete).is_empty());
    }

    #[test]
    fn a_wildcard_answers_a_star_unless_credentials_are_allowed() {
        let h = headers(&[("origin", "https://a.example")]);
        let star = Cors::of(&json!({"AllowOrigins": ["*"], "ExposeHeaders": ["x-a", "x-b"]}));
        let out = star.actual(&h);
        assert_eq!(get(&out, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&out, "access-control-expose-headers"), Some("x-a,x-b"));
        assert_eq!(get(&out, "vary"), None);
        let creds = Cors::of(&json!({"AllowOrigins": ["*"], "AllowCredentials": true}));
        let out = creds.actual(&h);
        assert_eq!(
            get(&out, "access-control-allow-origin"),
            Some("https://a.example")
        );
        assert_eq!(get(&out, "access-control-allow-credentials"), Some("true"));
        // No Origin: not a CORS request, nothing added.
        assert!(star.actual(&HeaderMap::new()).is_empty());
    }
}
