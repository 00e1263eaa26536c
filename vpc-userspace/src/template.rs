//! CloudFormation templates: YAML (with the short `!Ref`-style tags) or JSON,
//! `Parameters`, pseudo parameters and the intrinsic functions this project
//! supports (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Select`, `Fn::GetAZs`,
//! `Fn::Join`, `Fn::Cidr`). Pure Rust, no kernel.
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// An error that names where in the template it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelError {
    /// Dotted path, e.g. `Resources.Db.Properties.SubnetId`.
    pub path: String,
    pub message: String,
}

impl ModelError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// A parsed template, before resolution.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    /// The top-level `Metadata` (unresolved): CloudFormation ignores what
    /// it does not know there, so extensions live in it (`Vpc::Internet`).
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    /// Unresolved `Properties` (an object; empty when absent).
    pub properties: Map<String, Value>,
    /// `Metadata` (an object; empty when absent).
    pub metadata: Map<String, Value>,
}

/// Parses YAML or JSON text into a template.
pub fn parse(text: &str) -> Result<Template> {
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| ModelError::new("template", format!("invalid JSON: {e}")))?
    } else {
        let y: yaml_serde::Value = yaml_serde::from_str(text)
            .map_err(|e| ModelError::new("template", format!("invalid YAML: {e}")))?;
        yaml_to_json(y, "template")?
    };
    let Value::Object(top) = doc else {
        return Err(ModelError::new(
            "template",
            "the template must be a mapping",
        ));
    };
    let parameters = match top.get("Parameters") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m.clone().into_iter().collect(),
        Some(_) => return Err(ModelError::new("Parameters", "must be a mapping")),
    };
    let res = match top.get("Resources") {
        Some(Value::Object(m)) if !m.is_empty() => m,
        _ => {
            return Err(ModelError::new(
                "Resources",
                "the template needs a non-empty Resources mapping",
            ))
        }
    };
    let mut resources = BTreeMap::new();
    for (id, r) in res {
        let path = format!("Resources.{id}");
        let Value::Object(r) = r else {
            return Err(ModelError::new(path, "a resource must be a mapping"));
        };
        let kind = match r.get("Type") {
            Some(Value::String(t)) => t.clone(),
            _ => {
                return Err(ModelError::new(
                    format!("{path}.Type"),
                    "missing or not a string",
                ))
            }
        };
        let properties = match r.get("Properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => {
                return Err(ModelError::new(
                    format!("{path}.Properties"),
                    "must be a mapping",
                ))
            }
        };
        resources.insert(
            id.clone(),
            Resource {
                logical_id: id.clone(),
                kind,
                properties,
                metadata: match r.get("Metadata") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                },
            },
        );
    }
    let metadata = match top.get("Metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ModelError::new("Metadata", "must be a mapping")),
    };
    Ok(Template {
        parameters,
        resources,
        metadata,
    })
}

/// YAML to JSON, turning the short-form tags into their long forms.
fn yaml_to_json(v: yaml_serde::Value, path: &str) -> Result<Value> {
    use yaml_serde::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(
            s.into_iter()
                .map(|x| yaml_to_json(x, path))
                .collect::<Result<_>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(ModelError::new(path, "mapping keys must be scalars")),
                };
                let sub = format!("{path}.{key}");
                out.insert(key, yaml_to_json(v, &sub)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(t.value, path)?;
            let long = match name {
                "Ref" => "Ref".to_string(),
                "GetAtt" => {
                    // `!GetAtt A.B` is a string; the long form is a list.
                    let inner = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((a, b)) => Value::Array(vec![a.into(), b.into()]),
                            None => {
                                return Err(ModelError::new(
                                    path,
                                    format!("!GetAtt {s}: expected Resource.Attribute"),
                                ))
                            }
                        },
                        other => other,
                    };
                    let mut m = Map::new();
                    m.insert("Fn::GetAtt".into(), inner);
                    return Ok(Value::Object(m));
                }
                other => format!("Fn::{other}"),
            };
            let mut m = Map::new();
            m.insert(long, inner);
            Value::Object(m)
        }
    })
}

/// Values intrinsic functions resolve against.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub template: &'a Template,
    pub params: HashMap<String, Value>,
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// `(logical id, attribute)` -> value, filled as the model is built.
    pub attrs: HashMap<(String, String), Value>,
    /// What `Ref` of a resource returns (defaults to the logical id).
    pub refs: HashMap<String, Value>,
}

/// Marker for `AWS::NoValue`: the property is removed.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

impl<'a> Resolver<'a> {
    /// Resolves `Parameters` from defaults and `overrides`.
    pub fn new(
        template: &'a Template,
        overrides: &HashMap<String, String>,
        stack_name: &str,
    ) -> Result<Self> {
        let mut params = HashMap::new();
        for (name, decl) in &template.parameters {
            let path = format!("Parameters.{name}");
            let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
            let raw = match overrides.get(name) {
                Some(v) => Value::String(v.clone()),
                None => match decl.get("Default") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Number(n)) => Value::String(n.to_string()),
                    Some(Value::Array(a)) => Value::Array(a.clone()),
                    Some(_) => {
                        return Err(ModelError::new(
                            format!("{path}.Default"),
                            "must be a string, number or list",
                        ))
                    }
                    None => {
                        return Err(ModelError::new(
                            path,
                            "no value: no Default, and not given with --parameter NAME=VALUE",
                        ))
                    }
                },
            };
            if let (Some(Value::Array(allowed)), Value::String(s)) =
                (decl.get("AllowedValues"), &raw)
            {
                if !allowed.iter().any(|a| {
                    a.as_str() == Some(s) || a.as_i64().is_some_and(|n| n.to_string() == *s)
                }) {
                    return Err(ModelError::new(
                        path,
                        format!("value {s:?} is not one of AllowedValues"),
                    ));
                }
            }
            let value = match (ty, raw) {
                (t, Value::String(s)) if t == "CommaDelimitedList" || t.starts_with("List<") => {
                    Value::Array(
                        s.split(',')
                            .map(|x| Value::String(x.trim().to_string()))
                            .collect(),
                    )
                }
                (_, v) => v,
            };
            params.insert(name.clone(), value);
        }
        for name in overrides.keys() {
            if !template.parameters.contains_key(name) {
                return Err(ModelError::new(
                    format!("Parameters.{name}"),
                    "given with --parameter but not declared",
                ));
            }
        }
        Ok(Self {
            template,
            params,
            region: DEFAULT_REGION.into(),
            account: DEFAULT_ACCOUNT.into(),
            stack_name: stack_name.into(),
            attrs: HashMap::new(),
            refs: HashMap::new(),
        })
    }

    fn pseudo(&self, name: &str) -> Option<Value> {
        Some(Value::String(match name {
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account.clone(),
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                self.region, self.account, self.stack_name
            ),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => NO_VALUE.into(),
            _ => return None,
        }))
    }

    fn reference(&self, name: &str, path: &str) -> Result<Value> {
        if let Some(v) = self.params.get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = self.pseudo(name) {
            return Ok(v);
        }
        if self.template.resources.contains_key(name) {
            return Ok(self
                .refs
                .get(name)
                .cloned()
                .unwrap_or_else(|| Value::String(name.into())));
        }
        Err(ModelError::new(
            path,
            format!("Ref {name}: no parameter, pseudo parameter or resource of that name"),
        ))
    }

    fn get_att(&self, res: &str, attr: &str, path: &str) -> Result<Value> {
        if !self.template.resources.contains_key(res) {
            return Err(ModelError::new(
                path,
                format!("Fn::GetAtt {res}.{attr}: no resource {res}"),
            ));
        }
        self.attrs
            .get(&(res.to_string(), attr.to_string()))
            .cloned()
            .ok_or_else(|| {
                ModelError::new(
                    path,
                    format!(
                        "Fn::GetAtt {res}.{attr}: attribute not supported (or not available here)"
                    ),
                )
            })
    }

    /// Resolves every intrinsic function in `v`.
    pub fn resolve(&self, v: &Value, path: &str) -> Result<Value> {
        let out = self.resolve_inner(v, path)?;
        Ok(out)
    }

    fn resolve_inner(&self, v: &Value, path: &str) -> Result<Value> {
        match v {
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    let r = self.resolve_inner(x, &format!("{path}[{i}]"))?;
                    if r.as_str() != Some(NO_VALUE) {
                        out.push(r);
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one entry");
                match k.as_str() {
                    "Ref" => match arg {
                        Value::String(name) => self.reference(name, path),
                        _ => Err(ModelError::new(path, "Ref takes a name")),
                    },
                    "Fn::GetAtt" => {
                        let arg = self.resolve_inner(arg, path)?;
                        match arg {
                            Value::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str())
                            {
                                (Some(r), Some(at)) => self.get_att(r, at, path),
                                _ => Err(ModelError::new(
                                    path,
                                    "Fn::GetAtt takes [Resource, Attribute]",
                                )),
                            },
                            Value::String(s) => match s.split_once('.') {
                                Some((r, at)) => self.get_att(r, at, path),
                                None => Err(ModelError::new(
                                    path,
                                    "Fn::GetAtt takes Resource.Attribute",
                                )),
                            },
                            _ => Err(ModelError::new(
                                path,
                                "Fn::GetAtt takes [Resource, Attribute]",
                            )),
                        }
                    }
                    "Fn::Sub" => self.sub(arg, path),
                    "Fn::Select" => {
                        let arg = self.resolve_inner(arg, path)?;
                        let Value::Array(a) = arg else {
                            return Err(ModelError::new(path, "Fn::Select takes [index, list]"));
                        };
                        let idx = match a.first() {
                            Some(Value::Number(n)) => n.as_u64(),
                            Some(Value::String(s)) => s.parse().ok(),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            ModelError::new(path, "Fn::Select: index must be a non-negative number")
                        })?;
                        match a.get(1) {
                            Some(Value::Array(list)) => {
                                list.get(idx as usize).cloned().ok_or_else(|| {
                                    ModelError::new(
                                        path,
                                        format!(
                                            "Fn::Select: index {idx} out of range (list has {})",
                                            list.len()
                                        ),
                                    )
                                })
                            }
                            _ => Err(ModelError::new(
                                path,
                                "Fn::Select: second argument must be a list",
                            )),
                        }
                    }
                    "Fn::GetAZs" => {
                        let arg = self.resolve_inner(arg, path)?;
                        let region = match arg.as_str() {
                            Some("") | None => self.region.clone(),
                            Some(r) => r.to_string(),
                        };
                        Ok(Value::Array(
                            ["a", "b", "c"]
                                .iter()
                                .map(|z| Value::String(format!("{region}{z}")))
                                .collect(),
                        ))
                    }
                    "Fn::Join" => {
                        let arg = self.resolve_inner(arg, path)?;
                        match arg {
                            Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                                (Value::String(d), Value::Array(items)) => Ok(Value::String(
                                    items.iter().map(scalar_string).collect::<Vec<_>>().join(d),
                                )),
                                _ => Err(ModelError::new(path, "Fn::Join takes [delimiter, list]")),
                            },
                            _ => Err(ModelError::new(path, "Fn::Join takes [delimiter, list]")),
                        }
                    }
                    "Fn::Cidr" => {
                        let arg = self.resolve_inner(arg, path)?;
                        cidr(&arg, path)
                    }
                    f if f.starts_with("Fn::") || f == "Condition" => Err(ModelError::new(
                        path,
                        format!("{f} is not supported by this project"),
                    )),
                    _ => self.resolve_object(m, path),
                }
            }
            Value::Object(m) => self.resolve_object(m, path),
            other => Ok(other.clone()),
        }
    }

    fn resolve_object(&self, m: &Map<String, Value>, path: &str) -> Result<Value> {
        let mut out = Map::new();
        for (k, v) in m {
            let r = self.resolve_inner(v, &format!("{path}.{k}"))?;
            if r.as_str() != Some(NO_VALUE) {
                out.insert(k.clone(), r);
            }
        }
        Ok(Value::Object(out))
    }

    fn sub(&self, arg: &Value, path: &str) -> Result<Value> {
        let (text, vars) = match arg {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Array(a) if a.len() == 2 => match (&a[0], self.resolve_inner(&a[1], path)?) {
                (Value::String(s), Value::Object(vars)) => (s.clone(), vars),
                _ => {
                    return Err(ModelError::new(
                        path,
                        "Fn::Sub takes a string or [string, {vars}]",
                    ))
                }
            },
            _ => {
                return Err(ModelError::new(
                    path,
                    "Fn::Sub takes a string or [string, {vars}]",
                ))
            }
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| ModelError::new(path, "Fn::Sub: unterminated ${"))?;
            let name = &after[..end];
            if let Some(lit) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(lit);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&scalar_string(v));
            } else if let Some((r, a)) = name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&scalar_string(&self.get_att(r, a, path)?));
            } else {
                out.push_str(&scalar_string(&self.reference(name, path)?));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }
}

/// `Fn::Cidr [ipBlock, count, cidrBits]`: the first `count` consecutive
/// blocks of `ipBlock` with `cidrBits` host bits each (a mask of
/// /(32 or 128 - cidrBits)), as CloudFormation computes them. `count` is
/// 1-256; the blocks must fit in `ipBlock`.
fn cidr(arg: &Value, path: &str) -> Result<Value> {
    let usage = "Fn::Cidr takes [ipBlock, count, cidrBits]";
    let Value::Array(a) = arg else {
        return Err(ModelError::new(path, usage));
    };
    if a.len() != 3 {
        return Err(ModelError::new(path, usage));
    }
    let block: ipnet::IpNet = a[0].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        ModelError::new(
            path,
            format!(
                "Fn::Cidr: ipBlock {} is not a CIDR block",
                scalar_string(&a[0])
            ),
        )
    })?;
    let int = |v: &Value, what: &str| -> Result<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            ModelError::new(
                path,
                format!("Fn::Cidr: {what} must be a non-negative integer"),
            )
        })
    };
    let count = int(&a[1], "count")?;
    let bits = int(&a[2], "cidrBits")?;
    if !(1..=256).contains(&count) {
        return Err(ModelError::new(
            path,
            format!("Fn::Cidr: count {count} is not between 1 and 256"),
        ));
    }
    let width: u64 = if block.addr().is_ipv4() { 32 } else { 128 };
    let block = block.trunc();
    if bits == 0 || bits > width - block.prefix_len() as u64 {
        return Err(ModelError::new(
            path,
            format!(
                "Fn::Cidr: cidrBits {bits} does not fit {block} (1-{})",
                width - block.prefix_len() as u64
            ),
        ));
    }
    let new_len = width - bits;
    let available = 1u128
        .checked_shl((new_len - block.prefix_len() as u64) as u32)
        .unwrap_or(u128::MAX);
    if count as u128 > available {
        return Err(ModelError::new(
            path,
            format!("Fn::Cidr: {block} holds only {available} blocks of /{new_len}, not {count}"),
        ));
    }
    let out = (0..count as u128)
        .map(|i| {
            let s = match block {
                ipnet::IpNet::V4(n) => {
                    let base = u32::from(n.network()) as u128;
                    let a = std::net::Ipv4Addr::from((base + (i << bits)) as u32);
                    format!("{a}/{new_len}")
                }
                ipnet::IpNet::V6(n) => {
                    let base = u128::from(n.network());
                    let a = std::net::Ipv6Addr::from(base + (i << bits));
                    format!("{a}/{new_len}")
                }
            };
            Value::String(s)
        })
        .collect();
    Ok(Value::Array(out))
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar_string).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver_for(t: &Template) -> Resolver<'_> {
        Resolver::new(t, &HashMap::new(), "stack").unwrap()
    }

    #[test]
    fn short_tags_become_long_forms() {
        let t = parse(
            "Parameters:\n  Cidr: {Type: String, Default: 10.0.0.0/16}\nResources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref Cidr\n      Tags: [{Key: n, Value: !Sub '${AWS::StackName}-${Cidr}'}]\n      Az: !Select [1, !GetAZs '']\n      G: !GetAtt V.CidrBlock\n",
        )
        .unwrap();
        let mut r = resolver_for(&t);
        r.attrs
            .insert(("V".into(), "CidrBlock".into()), "10.0.0.0/16".into());
        let props = Value::Object(t.resources["V"].properties.clone());
        let v = r.resolve(&props, "Resources.V.Properties").unwrap();
        assert_eq!(v["CidrBlock"], "10.0.0.0/16");
        assert_eq!(v["Tags"][0]["Value"], "stack-10.0.0.0/16");
        assert_eq!(v["Az"], "us-east-1b");
        assert_eq!(v["G"], "10.0.0.0/16");
    }

    #[test]
    fn json_long_forms() {
        let t = parse(r#"{"Resources":{"V":{"Type":"AWS::EC2::VPC","Properties":{"A":{"Fn::Join":["-",["a",{"Ref":"AWS::Region"}]]},"B":{"Fn::Sub":["${X}!${!Y}",{"X":"x"}]}}}}}"#).unwrap();
        let r = resolver_for(&t);
        let v = r
            .resolve(&Value::Object(t.resources["V"].properties.clone()), "p")
            .unwrap();
        assert_eq!(v["A"], "a-us-east-1");
        assert_eq!(v["B"], "x!${Y}");
    }

    #[test]
    fn errors_name_the_place() {
        let t = parse("Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref Nope\n").unwrap();
        let r = resolver_for(&t);
        let e = r
            .resolve(
                &Value::Object(t.resources["V"].properties.clone()),
                "Resources.V.Properties",
            )
            .unwrap_err();
        assert_eq!(e.path, "Resources.V.Properties.CidrBlock");
        assert!(e.message.contains("Nope"), "{e}");

        let e = parse("Parameters:\n  P: {Type: String}\nResources:\n  V: {Type: AWS::EC2::VPC}\n")
            .and_then(|t| Resolver::new(&t, &HashMap::new(), "s").map(|_| ()))
            .unwrap_err();
        assert_eq!(e.path, "Parameters.P");
        assert!(parse("Resources: {}").is_err());
        assert!(parse("- a\n- b").is_err());
    }

    #[test]
    fn unsupported_intrinsic_is_an_error() {
        let t = parse("Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !If [C, a, b]\n").unwrap();
        let e = resolver_for(&t)
            .resolve(&Value::Object(t.resources["V"].properties.clone()), "x")
            .unwrap_err();
        assert!(e.message.contains("Fn::If"), "{e}");
    }

    #[test]
    fn fn_cidr_splits_a_block_as_cloudformation_does() {
        let t = parse(
            "Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      A: !Cidr [10.0.0.0/16, 3, 8]\n      B: !Select [1, !Cidr ['2001:db8:ec2:100::/56', 256, 64]]\n      C: !Select [255, !Cidr ['2001:db8:ec2:100::/56', 256, 64]]\n      D: !Cidr ['10.0.0.0/24', '2', '4']\n",
        )
        .unwrap();
        let v = resolver_for(&t)
            .resolve(&Value::Object(t.resources["V"].properties.clone()), "x")
            .unwrap();
        assert_eq!(
            v["A"],
            serde_json::json!(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"])
        );
        assert_eq!(v["B"], "2001:db8:ec2:101::/64");
        assert_eq!(v["C"], "2001:db8:ec2:1ff::/64");
        assert_eq!(v["D"], serde_json::json!(["10.0.0.0/28", "10.0.0.16/28"]));
        for (bad, want) in [
            ("!Cidr ['2001:db8::/56', 257, 64]", "count 257"),
            ("!Cidr ['2001:db8::/56', 512, 72]", "count 512"),
            ("!Cidr ['2001:db8::/56', 2, 73]", "cidrBits 73"),
            ("!Cidr ['2001:db8::/63', 4, 64]", "holds only 2"),
            ("!Cidr [nope, 1, 8]", "not a CIDR"),
            ("!Cidr [10.0.0.0/16, 1]", "[ipBlock, count, cidrBits]"),
            ("!Cidr [10.0.0.0/16, 1, 0]", "cidrBits 0"),
        ] {
            let t = parse(&format!(
                "Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      A: {bad}\n"
            ))
            .unwrap();
            let e = resolver_for(&t)
                .resolve(
                    &Value::Object(t.resources["V"].properties.clone()),
                    "Resources.V.Properties",
                )
                .unwrap_err();
            assert_eq!(e.path, "Resources.V.Properties.A", "{bad}");
            assert!(e.message.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn no_value_removes_the_property() {
        let t = parse("Resources:\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n      A: !Ref AWS::NoValue\n      B: [1, !Ref AWS::NoValue]\n").unwrap();
        let v = resolver_for(&t)
            .resolve(&Value::Object(t.resources["V"].properties.clone()), "x")
            .unwrap();
        assert!(v.get("A").is_none());
        assert_eq!(v["B"], serde_json::json!([1]));
    }

    #[test]
    fn parameter_overrides_and_lists() {
        let t = parse("Parameters:\n  L: {Type: CommaDelimitedList, Default: 'a, b'}\n  P: {Type: String, AllowedValues: [x, y]}\nResources:\n  V: {Type: AWS::EC2::VPC}\n").unwrap();
        let mut o = HashMap::new();
        o.insert("P".to_string(), "y".to_string());
        let r = Resolver::new(&t, &o, "s").unwrap();
        assert_eq!(r.params["L"], serde_json::json!(["a", "b"]));
        o.insert("P".to_string(), "z".to_string());
        assert!(Resolver::new(&t, &o, "s")
            .unwrap_err()
            .message
            .contains("AllowedValues"));
        o.insert("Q".to_string(), "z".to_string());
        o.insert("P".to_string(), "x".to_string());
        assert_eq!(Resolver::new(&t, &o, "s").unwrap_err().path, "Parameters.Q");
    }
}
