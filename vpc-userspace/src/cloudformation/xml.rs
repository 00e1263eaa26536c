//! Answers in AWS's query protocol's XML (CloudFormation's, and IAM's with
//! its own namespace): a response element named after the action, its
//! `Result`, and the request id; errors as `<ErrorResponse>`; the HTTP
//! reply with AWS's headers.
use chrono::{TimeZone, Utc};

/// CloudFormation's XML namespace.
pub const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// An XML document written element by element.
#[derive(Debug, Default)]
pub struct Xml(pub String);

impl Xml {
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag>text</tag>`, the text escaped.
    pub fn leaf(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        self.0.push_str(&escape(text));
        self.close(tag)
    }

    /// A leaf when there is a value.
    pub fn opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
        self
    }

    /// A timestamp as CloudFormation writes them (ISO 8601, UTC, ms).
    pub fn time(&mut self, tag: &str, ms: u64) -> &mut Self {
        self.leaf(tag, &iso8601(ms))
    }

    /// `<tag><member>...</member>...</tag>`, each member written by `f`.
    pub fn members<T>(
        &mut self,
        tag: &str,
        items: &[T],
        mut f: impl FnMut(&mut Self, &T),
    ) -> &mut Self {
        self.open(tag);
        for i in items {
            self.open("member");
            f(self, i);
            self.close("member");
        }
        self.close(tag)
    }

    /// `<tag><item>...</item>...</tag>`: EC2's lists.
    pub fn items<T>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.open(tag);
        for i in items {
            self.open("item");
            f(self, i);
            self.close("item");
        }
        self.close(tag)
    }

    /// `<tag>true</tag>` or `false`.
    pub fn flag(&mut self, tag: &str, v: bool) -> &mut Self {
        self.leaf(tag, if v { "true" } else { "false" })
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

pub fn iso8601(ms: u64) -> String {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// `<ActionResponse xmlns=...><ActionResult>body</ActionResult>
/// <ResponseMetadata><RequestId>id</RequestId></ResponseMetadata>
/// </ActionResponse>` (an empty `Result` when `body` is `None`: SDKs
/// look for the result element of operations whose answer is empty).
pub fn response(action: &str, body: Option<&str>, request_id: &str) -> String {
    response_in(NS, action, body, request_id)
}

/// `response` in the XML namespace `ns` (each query API has its own).
pub fn response_in(ns: &str, action: &str, body: Option<&str>, request_id: &str) -> String {
    let result = format!(
        "<{action}Result>{}</{action}Result>",
        body.unwrap_or_default()
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{ns}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )
}

/// An error: `Sender` (the request's fault) or `Receiver`.
pub fn error(kind: &str, code: &str, message: &str, request_id: &str) -> String {
    error_in(NS, kind, code, message, request_id)
}

/// `error` in the XML namespace `ns`.
pub fn error_in(ns: &str, kind: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(code),
        escape(message)
    )
}

/// The HTTP reply of a query API: `text` as `text/xml`, with the request
/// id in `x-amzn-RequestId` as AWS sends it.
pub fn reply(
    status: axum::http::StatusCode,
    text: String,
    request_id: &str,
) -> axum::response::Response {
    use axum::{http::header, response::IntoResponse};
    let mut r = (status, axum::body::Body::from(text)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/xml"),
    );
    if let Ok(v) = header::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    r
}

/// A request id shaped as AWS's (a version-4 UUID), unique in the process:
/// a hash of `service`, the time and a counter.
pub fn request_id(service: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let now = super::now_ms();
    let h = crate::template::fnv1a(&format!("{service}/{now}/{n}"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        n & 0xfff,
        now & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_escaped_and_times_are_iso8601() {
        let mut x = Xml::default();
        x.leaf("Message", "a < b & \"c\"")
            .time("CreationTime", 1_700_000_000_123)
            .members("Tags", &["k"], |x, t| {
                x.leaf("Key", t);
            });
        assert_eq!(
            x.0,
            "<Message>a &lt; b &amp; &quot;c&quot;</Message><CreationTime>2023-11-14T22:13:20.123Z</CreationTime><Tags><member><Key>k</Key></member></Tags>"
        );
        assert!(response("DeleteStack", None, "r").contains("<DeleteStackResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><DeleteStackResult></DeleteStackResult><ResponseMetadata><RequestId>r</RequestId>"));
    }
}
