//! A policy statement's `Condition`: operators, keys and values, evaluated
//! as IAM does
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>):
//!
//! * every operator of the block, and every key of an operator, must hold
//!   (AND); several values of one key are alternatives (OR), and for a
//!   negated operator (`StringNotEquals`, `ArnNotLike`, ...) the request's
//!   value must match none of them (NOR);
//! * a key absent from the request: the condition is false, except for a
//!   negated operator (true), `...IfExists` (true) and `Null` (which tests
//!   exactly that);
//! * multivalued keys: `ForAllValues:` holds when every value of the request
//!   matches, and so when the key is absent or empty (AWS's documented
//!   pitfall: pair it with `Null` to require the key); `ForAnyValue:` when
//!   at least one does (false when absent, true with `...IfExists`). Without a prefix, a
//!   multivalued key holds when one of its values matches (a negated
//!   operator: when none does), as for a single value.
use std::net::IpAddr;

use serde_json::Value;

use super::policy::{arn_like, glob, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Base {
    fn parse(s: &str) -> Option<Self> {
        use Base::*;
        Some(match s {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "BinaryEquals" => BinaryEquals,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Null" => Null,
            _ => return None,
        })
    }

    /// The request's value must match none of the policy's.
    fn negated(self) -> bool {
        use Base::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }

    /// Does the request's `value` match the policy's `p` (the positive
    /// form of a negated operator)?
    fn matches(self, p: &str, value: &str) -> bool {
        use Base::*;
        match self {
            StringEquals | StringNotEquals => p == value,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                p.to_lowercase() == value.to_lowercase()
            }
            StringLike | StringNotLike => glob(p, value, false),
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => {
                let (Ok(p), Ok(v)) = (p.parse::<f64>(), value.parse::<f64>()) else {
                    return false;
                };
                compare(self, v.partial_cmp(&p))
            }
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => {
                let (Some(p), Some(v)) = (date(p), date(value)) else {
                    return false;
                };
                compare(self, Some(v.cmp(&p)))
            }
            Bool => p.eq_ignore_ascii_case(value),
            BinaryEquals => p == value,
            IpAddress | NotIpAddress => {
                let Ok(a) = value.parse::<IpAddr>() else {
                    return false;
                };
                match p.parse::<ipnet::IpNet>() {
                    Ok(n) => n.contains(&a),
                    Err(_) => p.parse::<IpAddr>() == Ok(a),
                }
            }
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => arn_like(p, value),
            Null => false,
        }
    }
}

/// `<`, `<=`, `>`, `>=`, `==`, `!=` of the numeric and date operators.
fn compare(op: Base, o: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    use Base::*;
    let Some(o) = o else { return false };
    match op {
        NumericLessThan | DateLessThan => o == Less,
        NumericLessThanEquals | DateLessThanEquals => o != Greater,
        NumericGreaterThan | DateGreaterThan => o == Greater,
        NumericGreaterThanEquals | DateGreaterThanEquals => o != Less,
        _ => o == Equal,
    }
}

/// A date as policies write them: ISO 8601 (a date, or a date and time),
/// or seconds since the epoch.
fn date(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n * 1000);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    None,
    ForAllValues,
    ForAnyValue,
}

/// One operator on one key, with the policy's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    set: Set,
    base: Base,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

/// A `Condition` block: `{"Operator": {"key": value or [values]}}`.
pub fn parse(block: &Value) -> Result<Vec<Condition>, String> {
    let Value::Object(ops) = block else {
        return Err(super::policy::SYNTAX.into());
    };
    let mut out = vec![];
    for (op, keys) in ops {
        let invalid = || format!("Invalid Condition type : {op}");
        let (set, rest) = if let Some(r) = op.strip_prefix("ForAllValues:") {
            (Set::ForAllValues, r)
        } else if let Some(r) = op.strip_prefix("ForAnyValue:") {
            (Set::ForAnyValue, r)
        } else {
            (Set::None, op.as_str())
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(r) if r != "Null" => (r, true),
            _ => (rest, false),
        };
        let base = Base::parse(rest).ok_or_else(invalid)?;
        let Value::Object(keys) = keys else {
            return Err(super::policy::SYNTAX.into());
        };
        for (key, v) in keys {
            if key
                .split_once(':')
                .is_none_or(|(a, b)| a.is_empty() || b.is_empty())
            {
                return Err(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                        .into(),
                );
            }
            let one = |x: &Value| match x {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let values = match v {
                Value::Array(a) => a.iter().map(one).collect::<Option<Vec<_>>>(),
                x => one(x).map(|s| vec![s]),
            }
            .ok_or(super::policy::SYNTAX)?;
            out.push(Condition {
                set,
                base,
                if_exists,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

impl Condition {
    /// One value of the request against the policy's values: any of them
    /// (OR), or for a negated operator none of them (NOR).
    fn one(&self, value: &str) -> bool {
        let hit = self.values.iter().any(|p| self.base.matches(p, value));
        hit != self.base.negated()
    }

    /// Does the condition hold in `ctx`?
    pub fn holds(&self, ctx: &Context) -> bool {
        let present = ctx.get(&self.key);
        if self.base == Base::Null {
            // "true": the key must be absent; "false": present.
            let absent = present.is_none();
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        match self.set {
            Set::ForAllValues => present.is_none_or(|vs| vs.iter().all(|v| self.one(v))),
            // "If the key is not present, evaluate the condition element
            // as true" with IfExists.
            Set::ForAnyValue => match present {
                None => self.if_exists,
                Some(vs) => vs.iter().any(|v| self.one(v)),
            },
            Set::None => match present {
                None => self.if_exists || self.base.negated(),
                Some(vs) if self.base.negated() => vs.iter().all(|v| self.one(v)),
                Some(vs) => vs.iter().any(|v| self.one(v)),
            },
        }
    }
}
