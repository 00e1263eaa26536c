//! The desired state as etcd keys, so that a watch carries only what
//! changed and one write stays one transaction.
//!
//! Keys, relative to `/vpc/<cluster>/desired/` (field names and ids
//! percent-escaped: `%`, `/`, `#`):
//! - `v/<f>`: top-level field `f`; `{}` when `f` is an object, whose fields
//!   are then keys of their own:
//! - `o/<f>/<g>`: field `g` of object `f`; `[]` when `g` is an array, whose
//!   elements are then keys of their own:
//! - `a/<f>/<g>/<id>`: one element of array `f.g`, keyed by its `id` when
//!   every element has a distinct string `id` (`a/<f>/<g>/#<position>`
//!   otherwise). The value is `{"at": position, "v": element}`.
//!
//! Positions order an array's elements. They are sparse (2^32 apart) and
//! kept across writes for the elements that keep their relative order (the
//! longest increasing run of old positions), so an insert, an append, a
//! removal or an edit writes only that element's key; only when a gap runs
//! out does the whole array get new positions.
use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys (relative to the desired state's prefix) and their values.
pub type Kvs = BTreeMap<String, Vec<u8>>;

/// A stored desired state: its keys, and per array (by key prefix) its
/// elements' identities and positions, in order.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub kvs: Kvs,
    order: HashMap<String, Vec<(String, u64)>>,
}

/// The space between neighbouring positions when there is room.
const GAP: u64 = 1 << 32;

#[derive(Deserialize)]
struct Element {
    at: u64,
    v: Value,
}

/// `v` (a JSON object) as keys, keeping the positions of `prev`'s elements.
pub fn split(v: &Value, prev: &Layout) -> Result<Layout> {
    let Value::Object(top) = v else {
        bail!("the desired state must be a JSON object");
    };
    let mut out = Layout::default();
    for (f, fv) in top {
        let f = escape(f);
        let Value::Object(obj) = fv else {
            out.kvs.insert(format!("v/{f}"), serde_json::to_vec(fv)?);
            continue;
        };
        out.kvs.insert(format!("v/{f}"), b"{}".to_vec());
        for (g, gv) in obj {
            let g = escape(g);
            let Value::Array(items) = gv else {
                out.kvs
                    .insert(format!("o/{f}/{g}"), serde_json::to_vec(gv)?);
                continue;
            };
            out.kvs.insert(format!("o/{f}/{g}"), b"[]".to_vec());
            let prefix = format!("a/{f}/{g}/");
            let (keyed, ids) = identities(&prefix, items);
            let old = prev.order.get(&prefix).map(Vec::as_slice).unwrap_or(&[]);
            let at = positions(old, &ids);
            for ((item, id), &at) in items.iter().zip(&ids).zip(&at) {
                let key = if keyed {
                    id.clone()
                } else {
                    format!("{prefix}#{at:016x}")
                };
                let mut value = format!("{{\"at\":{at},\"v\":").into_bytes();
                serde_json::to_writer(&mut value, item)?;
                value.push(b'}');
                out.kvs.insert(key, value);
            }
            out.order.insert(prefix, ids.into_iter().zip(at).collect());
        }
    }
    Ok(out)
}

/// The JSON `kvs` hold (as [`split`] wrote them) and their layout.
pub fn assemble(kvs: Kvs) -> Result<(Value, Layout)> {
    let mut top = Map::new();
    let mut objects: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut arrays: BTreeMap<(String, String), Vec<(u64, Value)>> = BTreeMap::new();
    for (k, v) in &kvs {
        let parse = || -> Result<Value> {
            serde_json::from_slice(v).with_context(|| format!("desired/{k}: not JSON"))
        };
        let bad = || anyhow::anyhow!("desired/{k}: not a key of the desired state's layout");
        match k.split_once('/').ok_or_else(bad)? {
            ("v", f) => match parse()? {
                Value::Object(o) if o.is_empty() => {
                    objects.entry(unescape(f)).or_default();
                }
                v => {
                    top.insert(unescape(f), v);
                }
            },
            ("o", rest) => {
                let (f, g) = rest.split_once('/').ok_or_else(bad)?;
                match parse()? {
                    Value::Array(a) if a.is_empty() => {
                        arrays.entry((f.into(), g.into())).or_default();
                    }
                    v => {
                        objects
                            .entry(unescape(f))
                            .or_default()
                            .insert(unescape(g), v);
                    }
                }
            }
            ("a", rest) => {
                let (f, rest) = rest.split_once('/').ok_or_else(bad)?;
                let (g, _) = rest.split_once('/').ok_or_else(bad)?;
                let e: Element = serde_json::from_slice(v)
                    .with_context(|| format!("desired/{k}: not an array element"))?;
                arrays
                    .entry((f.into(), g.into()))
                    .or_default()
                    .push((e.at, e.v));
            }
            _ => return Err(bad()),
        }
    }
    let mut order = HashMap::new();
    for ((f, g), mut items) in arrays {
        items.sort_by_key(|(at, _)| *at);
        let (at, items): (Vec<u64>, Vec<Value>) = items.into_iter().unzip();
        let prefix = format!("a/{f}/{g}/");
        let (_, ids) = identities(&prefix, &items);
        order.insert(prefix, ids.into_iter().zip(at).collect());
        objects
            .entry(unescape(&f))
            .or_default()
            .insert(unescape(&g), Value::Array(items));
    }
    for (f, o) in objects {
        top.insert(f, Value::Object(o));
    }
    Ok((Value::Object(top), Layout { kvs, order }))
}

/// What turns `old` into `new`: the keys to put (new or changed) and to delete.
pub fn diff<'a>(old: &Kvs, new: &'a Kvs) -> (Vec<(&'a String, &'a Vec<u8>)>, Vec<String>) {
    let puts = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .collect();
    let deletes = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (puts, deletes)
}

/// Each element's identity across writes: its key when every element has a
/// distinct string `id` (`true`), else its JSON and occurrence.
fn identities(prefix: &str, items: &[Value]) -> (bool, Vec<String>) {
    let ids: Option<Vec<&str>> = items
        .iter()
        .map(|e| e.get("id").and_then(Value::as_str))
        .collect();
    if let Some(ids) = ids {
        if ids.iter().collect::<HashSet<_>>().len() == ids.len() {
            return (
                true,
                ids.iter()
                    .map(|i| format!("{prefix}{}", escape(i)))
                    .collect(),
            );
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let ids = items
        .iter()
        .map(|e| {
            let json = e.to_string();
            let n = seen.entry(json.clone()).or_default();
            *n += 1;
            format!("{json}\0{n}")
        })
        .collect();
    (false, ids)
}

/// Positions for `new` (identities in order), keeping those of `old` that
/// stay in increasing order and filling the gaps between them.
fn positions(old: &[(String, u64)], new: &[String]) -> Vec<u64> {
    let old: HashMap<&str, u64> = old.iter().map(|(k, p)| (k.as_str(), *p)).collect();
    let was: Vec<Option<u64>> = new.iter().map(|k| old.get(k.as_str()).copied()).collect();
    let keep = longest_increasing(&was);
    let mut at = vec![0u64; new.len()];
    let (mut i, mut lo) = (0, 0u64);
    while i < new.len() {
        if keep[i] {
            at[i] = was[i].unwrap_or_default();
            lo = at[i];
            i += 1;
            continue;
        }
        let j = (i..new.len()).find(|&j| keep[j]).unwrap_or(new.len());
        let k = (j - i) as u64;
        let step = match was.get(j).copied().flatten() {
            Some(hi) => (hi - lo) / (k + 1),
            None if lo.checked_add(GAP * k).is_some() => GAP,
            None => 0,
        };
        if step == 0 {
            return (1..=new.len() as u64).map(|n| n * GAP).collect();
        }
        for (t, p) in at[i..j].iter_mut().enumerate() {
            *p = lo + step * (t as u64 + 1);
        }
        lo = at[j - 1];
        i = j;
    }
    at
}

/// Which entries form a longest strictly increasing subsequence of the
/// `Some`s (O(n log n)).
fn longest_increasing(v: &[Option<u64>]) -> Vec<bool> {
    // tails[l]: index of the smallest last value of a run of length l+1.
    let mut tails: Vec<usize> = vec![];
    let mut parent = vec![usize::MAX; v.len()];
    for (i, x) in v.iter().enumerate() {
        let Some(x) = x else { continue };
        let l = tails.partition_point(|&t| v[t].is_some_and(|t| t < *x));
        if l > 0 {
            parent[i] = tails[l - 1];
        }
        if l == tails.len() {
            tails.push(i);
        } else {
            tails[l] = i;
        }
    }
    let mut keep = vec![false; v.len()];
    let mut i = tails.last().copied().unwrap_or(usize::MAX);
    while i != usize::MAX {
        keep[i] = true;
        i = parent[i];
    }
    keep
}

fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace('#', "%23")
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%23", "#")
        .replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn functions(ids: &[&str]) -> Value {
        let fs: Vec<Value> = ids
            .iter()
            .map(|i| json!({"id": i, "subnets": ["subnet-a"], "memory": 128}))
            .collect();
        json!({"model": {"stack_name": "s", "functions": fs, "imports": ["x", "y", "x"],
                         "conditions": {"a": true}, "route_tables": []},
               "stacks": [{"name": "s"}], "version": 3, "empty": {}})
    }

    fn round_trip(v: &Value, prev: &Layout) -> Layout {
        let l = split(v, prev).unwrap();
        let (back, l2) = assemble(l.kvs.clone()).unwrap();
        assert_eq!(&back, v);
        assert_eq!(l2.order, l.order);
        l
    }

    #[test]
    fn split_and_assemble_round_trip_keeping_order() {
        let v = functions(&["f3", "f1", "a/b#%", "f2"]);
        let l = round_trip(&v, &Layout::default());
        assert!(
            l.kvs.contains_key("a/model/functions/a%2Fb%23%25"),
            "{:?}",
            l.kvs.keys()
        );
        assert!(l.kvs.contains_key("v/version"));
        assert_eq!(l.kvs["v/model"], b"{}");
        assert_eq!(l.kvs["o/model/route_tables"], b"[]");
        assert_eq!(
            l.kvs
                .keys()
                .filter(|k| k.starts_with("a/model/imports/#"))
                .count(),
            3
        );
        assert!(split(&json!([1]), &Layout::default()).is_err());
    }

    #[test]
    fn a_change_writes_only_what_changed() {
        let before = round_trip(&functions(&["f1", "f2", "f3", "f4"]), &Layout::default());
        let changed = |ids: &[&str]| {
            let after = round_trip(&functions(ids), &before);
            let (puts, dels) = diff(&before.kvs, &after.kvs);
            let mut keys: Vec<String> = puts.iter().map(|(k, _)| k.to_string()).collect();
            keys.extend(dels.iter().map(|k| format!("-{k}")));
            keys
        };
        // Insert in the middle, at the front, append: one key each.
        assert_eq!(
            changed(&["f1", "f2", "new", "f3", "f4"]),
            ["a/model/functions/new"]
        );
        assert_eq!(
            changed(&["new", "f1", "f2", "f3", "f4"]),
            ["a/model/functions/new"]
        );
        assert_eq!(
            changed(&["f1", "f2", "f3", "f4", "new"]),
            ["a/model/functions/new"]
        );
        // A removal: one delete; a move: one key.
        assert_eq!(changed(&["f1", "f3", "f4"]), ["-a/model/functions/f2"]);
        assert_eq!(changed(&["f1", "f3", "f4", "f2"]), ["a/model/functions/f2"]);
        // An edited element: its key alone.
        let mut v = functions(&["f1", "f2", "f3", "f4"]);
        v["model"]["functions"][2]["memory"] = json!(256);
        let after = round_trip(&v, &before);
        let (puts, dels) = diff(&before.kvs, &after.kvs);
        assert_eq!(puts.len(), 1);
        assert_eq!(puts[0].0, "a/model/functions/f3");
        assert!(dels.is_empty());
    }

    #[test]
    fn a_gap_that_runs_out_renumbers() {
        let mut l = round_trip(&functions(&["a", "z"]), &Layout::default());
        let mut ids = vec!["a".to_string(), "z".to_string()];
        // Inserting right after "a" again and again halves the gap each time.
        for n in 0..40 {
            ids.insert(1, format!("n{n}"));
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            l = round_trip(&functions(&refs), &l);
        }
        let at: Vec<u64> = l.order["a/model/functions/"]
            .iter()
            .map(|(_, p)| *p)
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    }

    #[test]
    fn longest_increasing_run() {
        let keep = longest_increasing(&[Some(5), None, Some(1), Some(2), Some(9), Some(3)]);
        assert_eq!(keep, [false, false, true, true, false, true]);
    }
}
