//! `--output table|json`, shared by the commands that print state.
use std::io::Write as _;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

/// How a command that prints state prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    // No doc comments here: clap would print long help everywhere.
    #[default]
    Table,
    Json,
}

impl Output {
    /// The output a command's `--json` (an older spelling of `--output
    /// json`, kept for scripts) asks for.
    pub fn or_json(self, json: bool) -> Output {
        if json {
            Output::Json
        } else {
            self
        }
    }

    pub fn is_json(self) -> bool {
        self == Output::Json
    }
}

/// Prints `v` as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    write_stdout(&text)
}

/// Writes `v` as pretty JSON to the file `p` (its directory made).
pub fn write_json<T: Serialize + ?Sized>(p: &std::path::Path, v: &T) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is no
/// error.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// A JSON answer as aligned `Key  value` lines: nested keys joined with
/// `.`, lists of values with `, `; `-` for nothing.
pub fn print_fields(v: &Value) {
    let mut rows = vec![];
    flatten("", v, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

fn flatten(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                flatten(&key(k), v, rows);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, rows);
            }
        }
        Value::Array(a) if !a.is_empty() => rows.push((
            prefix.to_string(),
            a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        )),
        v => rows.push((prefix.to_string(), scalar(v))),
    }
}

/// A value on one line: strings unquoted, `-` for nothing.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_flatten_nested_answers() {
        let v = serde_json::json!({
            "Name": "s",
            "Ids": ["a", "b"],
            "None": [],
            "Vpc": {"SubnetIds": ["A"], "Ipv6": false, "Env": {}},
            "List": [{"X": 1}],
        });
        let mut rows = vec![];
        flatten("", &v, &mut rows);
        let mut rows: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("Ids", "a, b"),
                ("List[0].X", "1"),
                ("Name", "s"),
                ("None", "-"),
                ("Vpc.Env", "-"),
                ("Vpc.Ipv6", "false"),
                ("Vpc.SubnetIds", "A"),
            ]
        );
    }
}
