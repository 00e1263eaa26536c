//! `vpc eni list` as a client of EC2's DescribeNetworkInterfaces on the
//! agent's endpoint (its Unix socket), with the Lambda ENI finder's query
//! (`interface-type` `lambda`, `requester-id` `*:awslambda_*`) and any
//! further `--filter` of EC2's: which interfaces there are, and their
//! status, are EC2's answer; the agent's counters (connections, capacity,
//! the functions and environments sending through each) complete the row.
use anyhow::{bail, Context, Result};

/// How the CLI signs: any credentials do; the scope names the service.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=vpc-cli/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
/// The CLI's user agent: its reads do not make the default VPC appear
/// (docs/ec2.md).
pub const USER_AGENT: &str = "vpc-cli/1";

/// `NAME=VALUE[,VALUE...]` of `--filter`, as EC2's `Filter.N`.
fn filter_params(filters: &[String]) -> Result<Vec<(String, String)>> {
    let mut base = vec![
        ("interface-type".to_string(), vec!["lambda".to_string()]),
        (
            "requester-id".to_string(),
            vec!["*:awslambda_*".to_string()],
        ),
    ];
    for f in filters {
        let (n, v) = f
            .split_once('=')
            .with_context(|| format!("--filter {f:?}: NAME=VALUE[,VALUE...]"))?;
        base.push((n.to_string(), v.split(',').map(str::to_string).collect()));
    }
    let mut out = vec![];
    for (i, (n, vs)) in base.into_iter().enumerate() {
        out.push((format!("Filter.{}.Name", i + 1), n));
        for (j, v) in vs.into_iter().enumerate() {
            out.push((format!("Filter.{}.Value.{}", i + 1, j + 1), v));
        }
    }
    Ok(out)
}

/// The text of each `<tag>` directly in `item` (ours: the first one).
fn leaf<'a>(item: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = item.find(&open)? + open.len();
    let end = item[start..].find('<')? + start;
    Some(&item[start..end])
}

/// XML's five entities back to their characters.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The interfaces EC2 lists for the finder's query and `filters`: (id,
/// status), in EC2's order.
pub fn described(name: &str, filters: &[String]) -> Result<Vec<(String, String)>> {
    let mut params = vec![
        (
            "Action".to_string(),
            "DescribeNetworkInterfaces".to_string(),
        ),
        ("Version".to_string(), "2016-11-15".to_string()),
    ];
    params.extend(filter_params(filters)?);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let r = vpc::api::call_with(
        name,
        "POST",
        &format!("/?{query}"),
        &[("Authorization", AUTH), ("User-Agent", USER_AGENT)],
        b"",
    )?;
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        let code = leaf(&body, "Code").unwrap_or("Error");
        let msg = unescape(leaf(&body, "Message").unwrap_or_default());
        bail!("EC2 DescribeNetworkInterfaces: {code}: {msg}");
    }
    // Each interface is an `<item>` of `networkInterfaceSet` opening with
    // its id; its own `status` comes before its attachment's.
    Ok(body
        .split("<item><networkInterfaceId>")
        .skip(1)
        .filter_map(|item| {
            let id = item.split('<').next()?.to_string();
            let status = leaf(item, "status").unwrap_or_default().to_string();
            Some((id, status))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_ec2s_and_items_are_read() {
        let p = filter_params(&["subnet-id=subnet-1,subnet-2".into()]).unwrap();
        assert!(p.contains(&("Filter.3.Name".into(), "subnet-id".into())));
        assert!(p.contains(&("Filter.3.Value.2".into(), "subnet-2".into())));
        assert!(p.contains(&("Filter.2.Value.1".into(), "*:awslambda_*".into())));
        assert!(filter_params(&["nope".into()]).is_err());
        let item = "<networkInterfaceId>eni-1</networkInterfaceId><status>available</status><attachment><status>attached</status></attachment>";
        assert_eq!(leaf(item, "status"), Some("available"));
        assert_eq!(unescape("&apos;a&apos; &amp;lt;"), "'a' &lt;");
    }
}
