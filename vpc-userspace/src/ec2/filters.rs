//! Describe*'s `Filter.N.Name` / `Filter.N.Value.M`, as EC2 applies them:
//! a resource matches when every filter matches (filters AND), and a
//! filter matches when any of its values matches any of the resource's
//! values for that name (values OR), `*` and `?` as wildcards. `tag:Key`,
//! `tag-key` and `tag-value` work on every resource; a name the resource
//! type does not have is `InvalidParameterValue` (`The filter 'x' is
//! invalid`), as at AWS.
use super::{Ec2Error, Ec2Result, Params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

pub fn parse(p: &Params) -> Vec<Filter> {
    p.structs("Filter")
        .into_iter()
        .filter_map(|f| {
            Some(Filter {
                name: f.get("Name")?.to_string(),
                values: f.list("Value"),
            })
        })
        .collect()
}

/// Whether `value` matches `pattern` (`*`: any run, `?`: one character).
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether a resource with `tags` matches `filters`; `field(name)` gives
/// its values of a filter name (`None`: the type has no such filter).
pub fn matches(
    filters: &[Filter],
    tags: &[(String, String)],
    field: impl Fn(&str) -> Option<Vec<String>>,
) -> Ec2Result<bool> {
    for f in filters {
        let have: Vec<String> = if let Some(k) = f.name.strip_prefix("tag:") {
            tags.iter()
                .filter(|(x, _)| x == k)
                .map(|(_, v)| v.clone())
                .collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|(k, _)| k.clone()).collect()
        } else if f.name == "tag-value" {
            tags.iter().map(|(_, v)| v.clone()).collect()
        } else {
            field(&f.name)
                .ok_or_else(|| Ec2Error::invalid(format!("The filter '{}' is invalid", f.name)))?
        };
        if !f.values.iter().any(|p| have.iter().any(|h| glob(p, h))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One value.
pub fn one(s: impl Into<String>) -> Option<Vec<String>> {
    Some(vec![s.into()])
}

pub fn boolean(b: bool) -> Option<Vec<String>> {
    one(if b { "true" } else { "false" })
}

/// `MaxResults` / `NextToken` over `items` (the token: the index of the
/// next item). `min`: the smallest `MaxResults` the operation takes.
pub fn page<T>(p: &Params, items: Vec<T>, min: i64) -> Ec2Result<(Vec<T>, Option<String>)> {
    let start: usize = match p.get("NextToken") {
        Some(t) => t
            .parse()
            .map_err(|_| Ec2Error::new("InvalidNextToken", "The token is invalid"))?,
        None => 0,
    };
    let Some(max) = p.int("MaxResults")? else {
        return Ok((items.into_iter().skip(start).collect(), None));
    };
    if !(min..=1000).contains(&max) {
        return Err(Ec2Error::invalid(format!(
            "Value ( {max} ) for parameter maxResults is invalid. Parameter must be between {min} and 1000."
        )));
    }
    let n = items.len();
    let end = (start + max as usize).min(n);
    let token = (end < n).then(|| end.to_string());
    Ok((
        items
            .into_iter()
            .skip(start)
            .take(end - start.min(end))
            .collect(),
        token,
    ))
}

/// What one resource kind's Describe needs besides its items.
pub struct Kind {
    /// The parameter naming the ids asked for (`InstanceId` of `InstanceId.N`).
    pub ids: &'static str,
    /// The smallest `MaxResults` the operation takes.
    pub min_page: i64,
    /// The error for an id asked for that is not there (its `.NotFound`,
    /// or `.Malformed` for one not shaped as the kind's ids).
    pub not_found: fn(&str) -> Ec2Error,
}

/// The skeleton every Describe shares: the ids asked for (each must be
/// there), the filters (`field(item, name)`: the item's values of a filter
/// name, `None` when the kind has no such filter) and the page.
pub fn select<T>(
    p: &Params,
    kind: &Kind,
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    tags: impl Fn(&T) -> Vec<(String, String)>,
    field: impl Fn(&T, &str) -> Option<Vec<String>>,
) -> Ec2Result<(Vec<T>, Option<String>)> {
    let wanted = p.list(kind.ids);
    let ids: Vec<String> = items.iter().map(&id).collect();
    if let Some(w) = wanted.iter().find(|w| !ids.contains(w)) {
        return Err((kind.not_found)(w));
    }
    let fs = parse(p);
    let mut out = vec![];
    for (item, i) in items.into_iter().zip(ids) {
        if !wanted.is_empty() && !wanted.contains(&i) {
            continue;
        }
        if matches(&fs, &tags(&item), |n| field(&item, n))? {
            out.push(item);
        }
    }
    page(p, out, kind.min_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn wildcards() {
        assert!(glob("10.0.*", "10.0.1.0/24"));
        assert!(glob("vpc-?bc", "vpc-abc"));
        assert!(!glob("vpc-?bc", "vpc-abbc"));
        assert!(glob("*", ""));
        assert!(!glob("a", "ab"));
        assert!(glob("a*b*c", "axxbyyc"));
    }

    #[test]
    fn filters_and_values_or_tags_and_unknown_names() {
        let tags = vec![("Name".to_string(), "web".to_string())];
        let field = |n: &str| match n {
            "vpc-id" => one("vpc-1"),
            "cidr" => Some(vec!["10.0.0.0/16".into(), "10.1.0.0/16".into()]),
            _ => None,
        };
        let ok = |fs: &[Filter]| matches(fs, &tags, field).unwrap();
        assert!(ok(&[f("vpc-id", &["vpc-2", "vpc-1"])]));
        assert!(!ok(&[f("vpc-id", &["vpc-1"]), f("cidr", &["10.9.*"])]));
        assert!(ok(&[f("cidr", &["10.1.0.0/16"]), f("tag:Name", &["w*"])]));
        assert!(!ok(&[f("tag:Other", &["web"])]));
        assert!(ok(&[f("tag-key", &["Name"]), f("tag-value", &["web"])]));
        let e = matches(&[f("nope", &["x"])], &tags, field).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("InvalidParameterValue", "The filter 'nope' is invalid")
        );
    }

    #[test]
    fn pages() {
        let p = Params(vec![("MaxResults".into(), "5".into())]);
        let (a, t) = page(&p, (0..12).collect(), 5).unwrap();
        assert_eq!((a.len(), t.as_deref()), (5, Some("5")));
        let p = Params(vec![
            ("MaxResults".into(), "5".into()),
            ("NextToken".into(), "10".into()),
        ]);
        let (a, t) = page(&p, (0..12).collect(), 5).unwrap();
        assert_eq!((a, t), (vec![10, 11], None));
        let p = Params(vec![("MaxResults".into(), "2".into())]);
        assert!(page(&p, vec![1], 5).is_err());
    }

    #[test]
    fn select_asks_ids_filters_and_pages() {
        const KIND: Kind = Kind {
            ids: "ThingId",
            min_page: 5,
            not_found: |id| Ec2Error::new("InvalidThingID.NotFound", id),
        };
        let items = vec![("t-1", "a"), ("t-2", "b"), ("t-3", "a")];
        let run = |q: Vec<(&str, &str)>| {
            let p = Params(q.into_iter().map(|(a, b)| (a.into(), b.into())).collect());
            select(
                &p,
                &KIND,
                items.clone(),
                |t| t.0.to_string(),
                |_| vec![],
                |t, n| (n == "kind").then(|| vec![t.1.to_string()]),
            )
        };
        let (got, _) = run(vec![("Filter.1.Name", "kind"), ("Filter.1.Value.1", "a")]).unwrap();
        assert_eq!(got, [("t-1", "a"), ("t-3", "a")]);
        let (got, _) = run(vec![("ThingId.1", "t-2")]).unwrap();
        assert_eq!(got, [("t-2", "b")]);
        assert_eq!(
            run(vec![("ThingId.1", "t-9")]).unwrap_err().code,
            "InvalidThingID.NotFound"
        );
        let (got, token) = run(vec![("MaxResults", "5")]).unwrap();
        assert_eq!((got.len(), token), (3, None));
    }
}
