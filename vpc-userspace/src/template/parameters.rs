//! `Parameters`: each given its value (the user's, else its `Default`),
//! checked against its type and constraints with CloudFormation's
//! messages, and turned into what `Ref` returns (a string, or a list of
//! strings for the list types). `AWS::SSM::Parameter::Value<...>` types
//! take a parameter name and resolve it from the parameter store.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, ModelError, Result, Template};

/// A parameter as the stack shows it (DescribeStacks' `Parameters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackParameter {
    pub key: String,
    /// As given (for an SSM type, the parameter's name); `****` with `NoEcho`.
    pub value: String,
    /// An SSM type's value, from the parameter store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_value: Option<String>,
    #[serde(default)]
    pub no_echo: bool,
}

/// The EC2 (and Route 53) types whose values name existing resources.
const AWS_TYPES: &[&str] = &[
    "AWS::EC2::AvailabilityZone::Name",
    "AWS::EC2::Image::Id",
    "AWS::EC2::Instance::Id",
    "AWS::EC2::KeyPair::KeyName",
    "AWS::EC2::SecurityGroup::GroupName",
    "AWS::EC2::SecurityGroup::Id",
    "AWS::EC2::Subnet::Id",
    "AWS::EC2::Volume::Id",
    "AWS::EC2::VPC::Id",
    "AWS::Route53::HostedZone::Id",
];

const KEYS: &[&str] = &[
    "Type",
    "Default",
    "Description",
    "AllowedValues",
    "AllowedPattern",
    "ConstraintDescription",
    "MaxLength",
    "MinLength",
    "MaxValue",
    "MinValue",
    "NoEcho",
];

/// A parameter type.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    String,
    Number,
    ListNumber,
    CommaDelimitedList,
    /// One of [`AWS_TYPES`].
    Aws(String),
    ListAws(String),
    /// `AWS::SSM::Parameter::Name`.
    SsmName,
    /// `AWS::SSM::Parameter::Value<T>`: T is String, a list, or an AWS type.
    Ssm(Box<Kind>),
}

impl Kind {
    fn parse(t: &str) -> Option<Kind> {
        Some(match t {
            "String" => Kind::String,
            "Number" => Kind::Number,
            "List<Number>" => Kind::ListNumber,
            "CommaDelimitedList" => Kind::CommaDelimitedList,
            "AWS::SSM::Parameter::Name" => Kind::SsmName,
            t if AWS_TYPES.contains(&t) => Kind::Aws(t.into()),
            t => {
                if let Some(inner) = t
                    .strip_prefix("List<")
                    .and_then(|s| s.strip_suffix('>'))
                    .filter(|i| AWS_TYPES.contains(i))
                {
                    Kind::ListAws(inner.into())
                } else if let Some(inner) = t
                    .strip_prefix("AWS::SSM::Parameter::Value<")
                    .and_then(|s| s.strip_suffix('>'))
                {
                    let inner = match inner {
                        "List<String>" => Kind::CommaDelimitedList,
                        i => match Kind::parse(i)? {
                            k @ (Kind::String
                            | Kind::CommaDelimitedList
                            | Kind::Aws(_)
                            | Kind::ListAws(_)) => k,
                            _ => return None,
                        },
                    };
                    Kind::Ssm(Box::new(inner))
                } else {
                    return None;
                }
            }
        })
    }

    fn is_list(&self) -> bool {
        matches!(
            self,
            Kind::ListNumber | Kind::CommaDelimitedList | Kind::ListAws(_)
        )
    }
}

/// Every parameter's value (as `Ref` gives it) and how the stack shows it.
pub(super) fn evaluate(
    t: &Template,
    overrides: &HashMap<String, String>,
    ctx: &Context,
) -> Result<(HashMap<String, Value>, Vec<StackParameter>)> {
    let mut extra: Vec<&str> = overrides
        .keys()
        .map(String::as_str)
        .filter(|k| !t.parameters.contains_key(*k))
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(ModelError::new(
            format!("Parameters.{}", extra[0]),
            format!(
                "Parameters: [{}] do not exist in the template",
                extra.join(", ")
            ),
        ));
    }
    let mut values = HashMap::new();
    let mut shown = vec![];
    for (name, decl) in &t.parameters {
        let (value, view) = parameter(name, decl, overrides.get(name), ctx)?;
        values.insert(name.clone(), value);
        shown.push(view);
    }
    Ok((values, shown))
}

fn parameter(
    name: &str,
    decl: &Value,
    given: Option<&String>,
    ctx: &Context,
) -> Result<(Value, StackParameter)> {
    let path = format!("Parameters.{name}");
    if let Some(k) = decl
        .as_object()
        .and_then(|o| o.keys().find(|k| !KEYS.contains(&k.as_str())))
    {
        return Err(ModelError::new(
            format!("{path}.{k}"),
            format!("Template format error: Invalid template parameter property '{k}'"),
        ));
    }
    let ty = match decl.get("Type") {
        Some(Value::String(t)) => t.as_str(),
        _ => {
            return Err(ModelError::new(
                format!("{path}.Type"),
                "Template format error: Every Parameters object must contain a Type member.",
            ))
        }
    };
    let kind = Kind::parse(ty).ok_or_else(|| {
        ModelError::new(
            format!("{path}.Type"),
            format!("Template format error: Unrecognized parameter type: {ty}"),
        )
    })?;
    let raw = match given {
        Some(v) => v.clone(),
        None => match decl.get("Default") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            // A list default, where the type is a list: as if comma-separated.
            Some(Value::Array(a)) if kind.is_list() => a
                .iter()
                .map(super::scalar_string)
                .collect::<Vec<_>>()
                .join(","),
            Some(_) => {
                return Err(ModelError::new(
                    format!("{path}.Default"),
                    "must be a string (or a number)",
                ))
            }
            None => {
                return Err(ModelError::new(
                    &path,
                    format!("Parameters: [{name}] must have values (no Default: give one with --parameter {name}=VALUE)"),
                ))
            }
        },
    };
    let c = Constraints::of(name, decl)?;
    let no_echo = matches!(decl.get("NoEcho"), Some(Value::Bool(true)))
        || decl
            .get("NoEcho")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let mut view = StackParameter {
        key: name.to_string(),
        value: if no_echo { "****".into() } else { raw.clone() },
        resolved_value: None,
        no_echo,
    };
    let value = match &kind {
        Kind::Ssm(inner) => {
            c.check_string(&raw, &path)?;
            let p = crate::ssm::get(&ctx.ssm, &raw).ok_or_else(|| {
                ModelError::new(
                    &path,
                    format!("Unable to fetch parameters [{raw}] from parameter store for this account. (vpc ssm put-parameter --name {raw} --value VALUE sets it)"),
                )
            })?;
            if p.kind == "SecureString" {
                return Err(ModelError::new(
                    &path,
                    format!("Parameters [{raw}] referenced by template have types not supported by CloudFormation."),
                ));
            }
            view.resolved_value = Some(if no_echo {
                "****".into()
            } else {
                p.value.clone()
            });
            typed(name, inner, &p.value, &path, ctx)?
        }
        k => {
            c.check(k, &raw, &path)?;
            typed(name, k, &raw, &path, ctx)?
        }
    };
    Ok((value, view))
}

/// A raw value as its type makes it: a string, or a list for list types;
/// numbers and AWS-specific values checked.
fn typed(name: &str, kind: &Kind, raw: &str, path: &str, ctx: &Context) -> Result<Value> {
    let items = || -> Vec<String> {
        if raw.is_empty() {
            vec![]
        } else {
            raw.split(',').map(|x| x.trim().to_string()).collect()
        }
    };
    Ok(match kind {
        Kind::String | Kind::SsmName => Value::String(raw.into()),
        Kind::Number => {
            number(name, raw, path)?;
            Value::String(raw.trim().into())
        }
        Kind::ListNumber => {
            let xs = items();
            for x in &xs {
                number(name, x, path)?;
            }
            Value::Array(xs.into_iter().map(Value::String).collect())
        }
        Kind::CommaDelimitedList => Value::Array(items().into_iter().map(Value::String).collect()),
        Kind::Aws(t) => {
            aws_value(name, t, raw, path, ctx)?;
            Value::String(raw.into())
        }
        Kind::ListAws(t) => {
            let xs = items();
            for x in &xs {
                aws_value(name, t, x, path, ctx)?;
            }
            Value::Array(xs.into_iter().map(Value::String).collect())
        }
        Kind::Ssm(_) => unreachable!("an SSM type's value is of its inner type"),
    })
}

fn number(name: &str, s: &str, path: &str) -> Result<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| ModelError::new(path, format!("Parameter '{name}' must be a number.")))
}

/// An AWS-specific value: the shape of an id of its type (this project has
/// no resources outside the stack to look it up in; an Availability Zone
/// must be one of the region's).
fn aws_value(name: &str, t: &str, v: &str, path: &str, ctx: &Context) -> Result<()> {
    let hex_id = |prefix: &str| {
        v.strip_prefix(prefix).is_some_and(|h| {
            (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
        })
    };
    let ok = match t {
        "AWS::EC2::AvailabilityZone::Name" => Context::availability_zones(&ctx.region)
            .iter()
            .any(|z| z == v),
        "AWS::EC2::Image::Id" => hex_id("ami-"),
        "AWS::EC2::Instance::Id" => hex_id("i-"),
        "AWS::EC2::SecurityGroup::Id" => hex_id("sg-"),
        "AWS::EC2::Subnet::Id" => hex_id("subnet-"),
        "AWS::EC2::Volume::Id" => hex_id("vol-"),
        "AWS::EC2::VPC::Id" => hex_id("vpc-"),
        "AWS::Route53::HostedZone::Id" => {
            v.starts_with('Z') && v.len() > 1 && v.chars().all(|c| c.is_ascii_alphanumeric())
        }
        _ => !v.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(ModelError::new(
            path,
            format!("Parameter validation failed: parameter value {v} for parameter name {name} does not exist ({t})"),
        ))
    }
}

/// `AllowedValues`, `AllowedPattern`, `MinLength`/`MaxLength`,
/// `MinValue`/`MaxValue`, and the `ConstraintDescription` that replaces
/// their messages.
struct Constraints<'a> {
    name: &'a str,
    allowed: Option<Vec<String>>,
    pattern: Option<(String, regex::Regex)>,
    min_len: Option<u64>,
    max_len: Option<u64>,
    min: Option<f64>,
    max: Option<f64>,
    description: Option<&'a str>,
}

impl<'a> Constraints<'a> {
    fn of(name: &'a str, decl: &'a Value) -> Result<Self> {
        let path = |k: &str| format!("Parameters.{name}.{k}");
        let num = |k: &str| -> Result<Option<f64>> {
            match decl.get(k) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                    ModelError::new(
                        path(k),
                        format!("Template format error: {k} must be a number"),
                    )
                }),
                Some(_) => Err(ModelError::new(
                    path(k),
                    format!("Template format error: {k} must be a number"),
                )),
            }
        };
        let int = |k: &str| -> Result<Option<u64>> {
            num(k)?
                .map(|n| {
                    (n >= 0.0 && n.fract() == 0.0)
                        .then_some(n as u64)
                        .ok_or_else(|| {
                            ModelError::new(
                                path(k),
                                format!(
                                    "Template format error: {k} must be a non-negative integer"
                                ),
                            )
                        })
                })
                .transpose()
        };
        let allowed = match decl.get("AllowedValues") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                        _ => Err(ModelError::new(
                            path("AllowedValues"),
                            "Template format error: AllowedValues must be a list of strings",
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(_) => {
                return Err(ModelError::new(
                    path("AllowedValues"),
                    "Template format error: AllowedValues must be a list of strings",
                ))
            }
        };
        let pattern = match decl.get("AllowedPattern") {
            None => None,
            Some(Value::String(p)) => {
                // CloudFormation matches the whole value (Java's matches()).
                let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    ModelError::new(
                        path("AllowedPattern"),
                        format!("Template format error: AllowedPattern {p} is not a valid regular expression: {e}"),
                    )
                })?;
                Some((p.clone(), re))
            }
            Some(_) => {
                return Err(ModelError::new(
                    path("AllowedPattern"),
                    "Template format error: AllowedPattern must be a string",
                ))
            }
        };
        Ok(Constraints {
            name,
            allowed,
            pattern,
            min_len: int("MinLength")?,
            max_len: int("MaxLength")?,
            min: num("MinValue")?,
            max: num("MaxValue")?,
            description: decl.get("ConstraintDescription").and_then(Value::as_str),
        })
    }

    fn fail(&self, path: &str, message: String) -> ModelError {
        let name = self.name;
        ModelError::new(
            path,
            match self.description {
                Some(d) => format!("Parameter '{name}' failed to satisfy constraint: {d}"),
                None => message,
            },
        )
    }

    /// The constraints of a string (each element of a list type's value).
    fn check_string(&self, v: &str, path: &str) -> Result<()> {
        let name = self.name;
        if let Some(a) = &self.allowed {
            if !a.iter().any(|x| x == v) {
                return Err(self.fail(
                    path,
                    format!("Parameter '{name}' must be one of AllowedValues"),
                ));
            }
        }
        if let Some((p, re)) = &self.pattern {
            if !re.is_match(v) {
                return Err(self.fail(path, format!("Parameter '{name}' must match pattern {p}")));
            }
        }
        let len = v.chars().count() as u64;
        if let Some(n) = self.min_len.filter(|n| len < *n) {
            return Err(self.fail(
                path,
                format!("Parameter '{name}' must contain at least {n} characters"),
            ));
        }
        if let Some(n) = self.max_len.filter(|n| len > *n) {
            return Err(self.fail(
                path,
                format!("Parameter '{name}' must contain at most {n} characters"),
            ));
        }
        Ok(())
    }

    fn check_number(&self, v: &str, path: &str) -> Result<()> {
        let name = self.name;
        let n = number(name, v, path)?;
        if let Some(a) = &self.allowed {
            if !a.iter().any(|x| x.parse::<f64>().ok() == Some(n) || x == v) {
                return Err(self.fail(
                    path,
                    format!("Parameter '{name}' must be one of AllowedValues"),
                ));
            }
        }
        let fmt = |x: f64| {
            if x.fract() == 0.0 {
                format!("{}", x as i64)
            } else {
                x.to_string()
            }
        };
        if let Some(m) = self.min.filter(|m| n < *m) {
            return Err(self.fail(
                path,
                format!(
                    "Parameter '{name}' must be a number not less than {}",
                    fmt(m)
                ),
            ));
        }
        if let Some(m) = self.max.filter(|m| n > *m) {
            return Err(self.fail(
                path,
                format!(
                    "Parameter '{name}' must be a number not greater than {}",
                    fmt(m)
                ),
            ));
        }
        Ok(())
    }

    fn check(&self, kind: &Kind, raw: &str, path: &str) -> Result<()> {
        match kind {
            Kind::Number => self.check_number(raw, path),
            Kind::ListNumber => raw
                .split(',')
                .try_for_each(|x| self.check_number(x.trim(), path)),
            Kind::CommaDelimitedList | Kind::ListAws(_) => raw
                .split(',')
                .try_for_each(|x| self.check_string(x.trim(), path)),
            _ => self.check_string(raw, path),
        }
    }
}
