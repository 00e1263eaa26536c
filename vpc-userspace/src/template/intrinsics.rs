//! The intrinsic functions, resolved as CloudFormation resolves them:
//! `Ref` (parameters, pseudo parameters, resources), `Fn::GetAtt`,
//! `Fn::Sub` (both forms), `Fn::Join`, `Fn::Split`, `Fn::Select`,
//! `Fn::FindInMap`, `Fn::GetAZs`, `Fn::Cidr`, `Fn::Base64`, `Fn::If`,
//! `Fn::ImportValue` (the exports of the other stacks),
//! `Fn::GetStackOutput` (an output of another stack), and with
//! `Transform: AWS::LanguageExtensions` `Fn::Length`, `Fn::ToJsonString`
//! and `Fn::FindInMap`'s `DefaultValue`.
use std::{
    cell::{Cell, RefCell},
    collections::{BTreeSet, HashMap},
};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{Context, Env, ModelError, Result, Template};

/// Marker for `AWS::NoValue`: the property (or list element) is removed.
pub(super) const NO_VALUE: &str = "\u{0}AWS::NoValue";

/// Where in the template a value is resolved: what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    /// Resources, Outputs and the top-level Metadata: everything.
    Resources,
    /// Conditions and Rules: parameters and pseudo parameters, no resources.
    Conditions,
}

/// Another stack of the deployment, built in the same model: its own
/// template (mappings, outputs) and instantiation (parameters,
/// conditions, its name).
#[derive(Debug)]
pub struct Scope<'a> {
    pub template: &'a Template,
    pub env: Env,
}

/// How deep cross-stack references may chain (an output importing an
/// export that reads another output ...): a cycle stops here.
const MAX_CROSS_STACK_DEPTH: u32 = 16;

/// Values intrinsic functions resolve against.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub template: &'a Template,
    pub env: Env,
    pub params: HashMap<String, Value>,
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// `(logical id, attribute)` -> value, filled as the model is built.
    pub attrs: HashMap<(String, String), Value>,
    /// What `Ref` of a resource returns (defaults to the logical id).
    pub refs: HashMap<String, Value>,
    /// Export names `Fn::ImportValue` resolved.
    pub imports: RefCell<BTreeSet<String>>,
    pub(super) section: Section,
    /// The deployment's other stacks when several are built as one model
    /// (scope 0 is `template` and `env`; `template` then holds every
    /// stack's resources): a resource resolves in its own stack's scope.
    others: Vec<Scope<'a>>,
    /// Resource id (and `Metadata:<internet host>`) -> its scope.
    owner: HashMap<String, usize>,
    /// The scope being resolved in.
    active: Cell<usize>,
    /// Cross-stack references being followed.
    depth: Cell<u32>,
}

/// The functions CloudFormation knows, as its error lists them.
const SUPPORTED: &str = "Fn::Base64, Fn::GetAtt, Fn::GetAZs, Fn::GetStackOutput, Fn::ImportValue, Fn::Join, Fn::Split, Fn::FindInMap, Fn::Select, Ref, Fn::Equals, Fn::If, Fn::Not, Condition, Fn::And, Fn::Or, Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, Fn::ValueOf, Fn::ValueOfAll, Fn::RefAll, Fn::Sub, Fn::Cidr";

/// Condition and rule functions: not values.
const CONDITION_FUNCTIONS: &[&str] = &[
    "Fn::Equals",
    "Fn::And",
    "Fn::Or",
    "Fn::Not",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
    "Fn::RefAll",
];

fn unsupported(f: &str, language_extensions: bool) -> String {
    let extra = if language_extensions {
        ", Fn::Length, Fn::ToJsonString"
    } else {
        ""
    };
    format!("Template format error: Encountered unsupported function: {f} Supported functions are: [{SUPPORTED}{extra}]")
}

/// A template error for a resource name that is not there (or whose
/// condition is false), as CloudFormation words it.
pub(super) fn unresolved(name: &str, block: &str) -> String {
    format!("Template format error: Unresolved resource dependencies [{name}] in the {block} block of the template")
}

impl<'a> Resolver<'a> {
    pub fn new(template: &'a Template, env: Env) -> Self {
        Self {
            template,
            params: env.params.clone(),
            region: env.ctx.region.clone(),
            account: env.ctx.account.clone(),
            stack_name: env.ctx.stack_name.clone(),
            env,
            attrs: HashMap::new(),
            refs: HashMap::new(),
            imports: RefCell::new(BTreeSet::new()),
            section: Section::Resources,
            others: vec![],
            owner: HashMap::new(),
            active: Cell::new(0),
            depth: Cell::new(0),
        }
    }

    /// Several stacks as one model: `others` are scopes 1.., `owner` maps
    /// each resource (and `Metadata:<internet host>`) to its scope.
    pub fn add_stacks(&mut self, others: Vec<Scope<'a>>, owner: HashMap<String, usize>) {
        self.others = others;
        self.owner = owner;
    }

    fn ctx(&self) -> &Context {
        &self.env.ctx
    }

    /// How many stacks resolve here (1 unless several share the model).
    pub fn scopes(&self) -> usize {
        1 + self.others.len()
    }

    /// Scope `k`'s template (its mappings and outputs).
    pub fn scope_template(&self, k: usize) -> &'a Template {
        match k {
            0 => self.template,
            k => self.others[k - 1].template,
        }
    }

    /// Scope `k`'s instantiation.
    pub fn scope_env(&self, k: usize) -> &Env {
        match k {
            0 => &self.env,
            k => &self.others[k - 1].env,
        }
    }

    /// Scope `k`'s stack name.
    pub fn scope_name(&self, k: usize) -> &str {
        &self.scope_env(k).ctx.stack_name
    }

    /// The scope of resource `id` (0 when it is not another stack's).
    pub fn scope_of(&self, id: &str) -> usize {
        self.owner.get(id).copied().unwrap_or(0)
    }

    /// The name of the stack resource `id` belongs to.
    pub fn stack_of(&self, id: &str) -> &str {
        self.scope_name(self.scope_of(id))
    }

    fn active_env(&self) -> &Env {
        self.scope_env(self.active.get())
    }

    fn params_in_scope(&self) -> &HashMap<String, Value> {
        match self.active.get() {
            0 => &self.params,
            k => &self.others[k - 1].env.params,
        }
    }

    /// The scope a path's resource (or internet host) belongs to.
    fn scope_for(&self, path: &str) -> Option<usize> {
        if self.owner.is_empty() {
            return None;
        }
        let (key, rest) = if let Some(r) = path.strip_prefix("Resources.") {
            ("", r)
        } else if let Some(r) = path.strip_prefix("Metadata.Vpc::Internet.Hosts.") {
            ("Metadata:", r)
        } else {
            return None;
        };
        let id = rest.split(['.', '[']).next()?;
        self.owner.get(&format!("{key}{id}")).copied()
    }

    /// Resolves `v` in scope `k` (stack `k`'s parameters, conditions,
    /// mappings, name).
    pub fn resolve_in(&self, k: usize, v: &Value, path: &str) -> Result<Value> {
        let prev = self.active.replace(k);
        let r = self.resolve_inner(v, path);
        self.active.set(prev);
        r
    }

    /// Follows a cross-stack reference (a sibling's output), refusing a
    /// cycle.
    fn cross_stack(&self, k: usize, v: &Value, path: &str) -> Result<Value> {
        if self.depth.get() >= MAX_CROSS_STACK_DEPTH {
            return Err(ModelError::new(
                path,
                "Circular dependency between stacks: cross-stack references (Fn::ImportValue, Fn::GetStackOutput) refer back to one another",
            ));
        }
        self.depth.set(self.depth.get() + 1);
        let r = self.resolve_in(k, v, path);
        self.depth.set(self.depth.get() - 1);
        r
    }

    /// The value of the export `name` of another stack of this model.
    fn sibling_export(&self, name: &str, path: &str) -> Option<Result<Value>> {
        let active = self.active.get();
        for k in (0..self.scopes()).filter(|k| *k != active) {
            for (key, o) in &self.scope_template(k).outputs {
                let Some(n) = o.get("Export").and_then(|e| e.get("Name")) else {
                    continue;
                };
                let at = format!("Outputs.{key}.Export.Name");
                if self
                    .resolve_in(k, n, &at)
                    .ok()
                    .as_ref()
                    .and_then(Value::as_str)
                    != Some(name)
                {
                    continue;
                }
                let v = o.get("Value").cloned().unwrap_or(Value::Null);
                return Some(self.cross_stack(k, &v, path));
            }
        }
        None
    }

    /// `Fn::GetStackOutput`: an output of another stack of the deployment,
    /// else of another deployment (a stack named after it).
    fn get_stack_output(&self, arg: &Value, path: &str) -> Result<Value> {
        let usage = "Fn::GetStackOutput takes {StackName, OutputName, Region, RoleArn}";
        let Value::Object(a) = self.resolve_inner(arg, path)? else {
            return Err(ModelError::new(path, usage));
        };
        let field = |k: &str| a.get(k).and_then(Value::as_str);
        let (Some(stack), Some(key)) = (field("StackName"), field("OutputName")) else {
            return Err(ModelError::new(path, usage));
        };
        if let Some(k) = a
            .keys()
            .find(|k| !["StackName", "OutputName", "Region", "RoleArn"].contains(&k.as_str()))
        {
            return Err(ModelError::new(path, format!("{usage}, not {k}")));
        }
        let missing = || ModelError::new(path, format!("Stack with id {stack} does not exist"));
        if field("Region").is_some_and(|r| r != self.region) {
            // Every stack here is in the one region.
            return Err(missing());
        }
        let no_output = || {
            ModelError::new(
                path,
                format!("Output {key} does not exist in stack {stack}"),
            )
        };
        let active = self.active.get();
        if let Some(k) = (0..self.scopes()).find(|k| *k != active && self.scope_name(*k) == stack) {
            let o = self
                .scope_template(k)
                .outputs
                .get(key)
                .ok_or_else(no_output)?;
            let v = o.get("Value").cloned().unwrap_or(Value::Null);
            return self.cross_stack(k, &v, path);
        }
        let outputs = self.ctx().stack_outputs.get(stack).ok_or_else(missing)?;
        outputs
            .get(key)
            .map(|v| Value::String(v.clone()))
            .ok_or_else(no_output)
    }

    pub(super) fn in_section(mut self, s: Section) -> Self {
        self.section = s;
        self
    }

    /// A pseudo parameter's value.
    pub fn pseudo(&self, name: &str) -> Option<Value> {
        Some(Value::String(match name {
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account.clone(),
            "AWS::StackName" => self.scope_name(self.active.get()).to_string(),
            "AWS::StackId" => super::stack_id(
                &self.region,
                &self.account,
                self.scope_name(self.active.get()),
            ),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NotificationARNs" => return Some(Value::Array(vec![])),
            "AWS::NoValue" => NO_VALUE.into(),
            _ => return None,
        }))
    }

    fn reference(&self, name: &str, path: &str) -> Result<Value> {
        if let Some(v) = self.params_in_scope().get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = self.pseudo(name) {
            return Ok(v);
        }
        if self.template.resources.contains_key(name) {
            if self.section == Section::Conditions {
                return Err(ModelError::new(path, format!("Template format error: Unresolved dependencies [{name}]. Cannot reference resources in the Conditions block of the template")));
            }
            return Ok(self
                .refs
                .get(name)
                .cloned()
                .unwrap_or_else(|| Value::String(name.into())));
        }
        if self.active_env().removed.contains(name) {
            return Err(ModelError::new(path, unresolved(name, "Resources")));
        }
        Err(ModelError::new(
            path,
            format!(
                "{} (Ref {name}: no parameter, pseudo parameter or resource of that name)",
                unresolved(name, "Resources")
            ),
        ))
    }

    fn get_att(&self, res: &str, attr: &str, path: &str) -> Result<Value> {
        let Some(r) = self.template.resources.get(res) else {
            return Err(ModelError::new(
                path,
                format!(
                    "{} (Fn::GetAtt {res}.{attr}: no resource {res})",
                    unresolved(res, "Resources")
                ),
            ));
        };
        if self.section == Section::Conditions {
            return Err(ModelError::new(path, format!("Template format error: Unresolved dependencies [{res}]. Cannot reference resources in the Conditions block of the template")));
        }
        self.attrs
            .get(&(res.to_string(), attr.to_string()))
            .cloned()
            .ok_or_else(|| {
                ModelError::new(
                    path,
                    format!(
                        "Template error: resource {res} does not support attribute type {attr} in Fn::GetAtt (or this project does not provide it for {})",
                        r.kind
                    ),
                )
            })
    }

    /// Resolves every intrinsic function in `v`, in the scope of the
    /// stack the path's resource belongs to.
    pub fn resolve(&self, v: &Value, path: &str) -> Result<Value> {
        match self.scope_for(path) {
            Some(k) if k != self.active.get() => self.resolve_in(k, v, path),
            _ => self.resolve_inner(v, path),
        }
    }

    pub(super) fn resolve_inner(&self, v: &Value, path: &str) -> Result<Value> {
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
                self.function(k, arg, m, path)
            }
            Value::Object(m) => self.resolve_object(m, path),
            Value::String(s) if s.contains("{{resolve:ssm:") => self.dynamic_references(s, path),
            other => Ok(other.clone()),
        }
    }

    /// `{{resolve:ssm:NAME}}` (or `NAME:VERSION`) in a string: the SSM
    /// parameter's value, from the parameter store. Other dynamic
    /// references (`ssm-secure`, `secretsmanager`) stay as written.
    fn dynamic_references(&self, s: &str, path: &str) -> Result<Value> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{resolve:ssm:") {
            let after = &rest[i + "{{resolve:ssm:".len()..];
            let Some(end) = after.find("}}") else { break };
            out.push_str(&rest[..i]);
            let spec = &after[..end];
            // A version suffix is a number after the last colon.
            let name = match spec.rsplit_once(':') {
                Some((n, v)) if v.chars().all(|c| c.is_ascii_digit()) => n,
                _ => spec,
            };
            let p = crate::ssm::get(&self.env.ctx.ssm, name).ok_or_else(|| {
                ModelError::new(
                    path,
                    format!("Unable to fetch parameters [{name}] from parameter store for this account. (vpc ssm put-parameter --name {name} --value VALUE sets it)"),
                )
            })?;
            out.push_str(&p.value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn function(&self, k: &str, arg: &Value, m: &Map<String, Value>, path: &str) -> Result<Value> {
        let lang = self.active_env().language_extensions;
        match k {
            "Ref" => match arg {
                Value::String(name) => self.reference(name, path),
                _ => Err(ModelError::new(path, "Ref takes a name")),
            },
            "Fn::GetAtt" => self.fn_get_att(arg, path),
            "Fn::Sub" => self.sub(arg, path),
            "Fn::Select" => self.select(arg, path),
            "Fn::GetAZs" => {
                let arg = self.resolve_inner(arg, path)?;
                let region = match arg.as_str() {
                    Some("") | None => self.region.clone(),
                    Some(r) => r.to_string(),
                };
                Ok(Value::Array(
                    Context::availability_zones(&region)
                        .into_iter()
                        .map(Value::String)
                        .collect(),
                ))
            }
            "Fn::Join" => self.join(arg, path),
            "Fn::Split" => {
                let usage = "Template error: every Fn::Split object requires two parameters, (1) a string delimiter and (2) a string to be split or a function that returns a string to be split";
                match self.resolve_inner(arg, path)? {
                    Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                        (Value::String(d), Value::String(s)) if !d.is_empty() => Ok(Value::Array(
                            s.split(d.as_str()).map(|x| Value::String(x.into())).collect(),
                        )),
                        _ => Err(ModelError::new(path, usage)),
                    },
                    _ => Err(ModelError::new(path, usage)),
                }
            }
            "Fn::Base64" => match self.resolve_inner(arg, path)? {
                Value::String(s) => Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                )),
                _ => Err(ModelError::new(
                    path,
                    "Template error: Fn::Base64 takes a string (or a function that returns one)",
                )),
            },
            "Fn::Cidr" => {
                let arg = self.resolve_inner(arg, path)?;
                cidr(&arg, path)
            }
            "Fn::FindInMap" => self.find_in_map(arg, path),
            "Fn::If" => {
                let Value::Array(a) = arg else {
                    return Err(ModelError::new(path, "Template error: Fn::If requires a list argument with three elements"));
                };
                let [Value::String(c), yes, no] = a.as_slice() else {
                    return Err(ModelError::new(path, "Template error: Fn::If requires a list argument with three elements"));
                };
                match self.active_env().conditions.get(c) {
                    Some(true) => self.resolve_inner(yes, &format!("{path}[1]")),
                    Some(false) => self.resolve_inner(no, &format!("{path}[2]")),
                    None => Err(ModelError::new(
                        path,
                        format!("Template format error: Unresolved condition dependency {c} in Fn::If"),
                    )),
                }
            }
            "Fn::ImportValue" => {
                let name = match self.resolve_inner(arg, path)? {
                    Value::String(s) => s,
                    _ => {
                        return Err(ModelError::new(
                            path,
                            "Fn::ImportValue takes an export name",
                        ))
                    }
                };
                if self.scopes() > 1 {
                    if let Some(v) = self.sibling_export(&name, path) {
                        return v;
                    }
                }
                match self.ctx().exports.get(&name) {
                    Some(e) => {
                        self.imports.borrow_mut().insert(name);
                        Ok(Value::String(e.value.clone()))
                    }
                    None => Err(ModelError::new(
                        path,
                        format!("No export named {name} found (exports are the Outputs' Export names of the deployment's other stacks and of the other deployments: vpc status shows them)"),
                    )),
                }
            }
            "Fn::GetStackOutput" => self.get_stack_output(arg, path),
            "Fn::Length" if lang => match self.resolve_inner(arg, path)? {
                Value::Array(a) => Ok(Value::from(a.len())),
                _ => Err(ModelError::new(
                    path,
                    "Fn::Length takes a list (or a function that returns one)",
                )),
            },
            "Fn::ToJsonString" if lang => match self.resolve_inner(arg, path)? {
                v @ (Value::Array(_) | Value::Object(_)) => Ok(Value::String(v.to_string())),
                _ => Err(ModelError::new(
                    path,
                    "Fn::ToJsonString takes an object or a list",
                )),
            },
            "Fn::Transform" => Err(ModelError::new(
                path,
                "Fn::Transform (macros) is not supported by this project",
            )),
            "Fn::ForEach" => Err(ModelError::new(
                path,
                "Fn::ForEach is not supported by this project",
            )),
            // Data, not a function, outside Conditions and Rules: an IAM
            // policy's `Condition`, say.
            "Condition" => self.resolve_object(m, path),
            f if CONDITION_FUNCTIONS.contains(&f) => Err(ModelError::new(
                path,
                format!("Template error: {f} is a condition function: it belongs in Conditions or Rules (use Fn::If in a property)"),
            )),
            f if f.starts_with("Fn::") => Err(ModelError::new(path, unsupported(f, lang))),
            _ => self.resolve_object(m, path),
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

    fn fn_get_att(&self, arg: &Value, path: &str) -> Result<Value> {
        let usage = "Template error: every Fn::GetAtt object requires two non-empty parameters, (1) a resource name and (2) an attribute name";
        // The resource name is literal; the attribute may be a Ref.
        match arg {
            Value::Array(a) if a.len() == 2 => {
                let attr = self.resolve_inner(&a[1], path)?;
                match (a[0].as_str(), attr.as_str()) {
                    (Some(r), Some(at)) if !r.is_empty() && !at.is_empty() => {
                        self.get_att(r, at, path)
                    }
                    _ => Err(ModelError::new(path, usage)),
                }
            }
            Value::String(s) => match s.split_once('.') {
                Some((r, at)) => self.get_att(r, at, path),
                None => Err(ModelError::new(path, usage)),
            },
            _ => Err(ModelError::new(path, usage)),
        }
    }

    fn select(&self, arg: &Value, path: &str) -> Result<Value> {
        let arg = self.resolve_inner(arg, path)?;
        let usage = "Template error: Fn::Select requires a list argument with two elements: an integer index and a list";
        let Value::Array(a) = arg else {
            return Err(ModelError::new(path, usage));
        };
        if a.len() != 2 {
            return Err(ModelError::new(path, usage));
        }
        let idx = match &a[0] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            ModelError::new(
                path,
                "Template error: Fn::Select requires a non-negative integer index",
            )
        })?;
        match &a[1] {
            Value::Array(list) => list.get(idx as usize).cloned().ok_or_else(|| {
                ModelError::new(
                    path,
                    format!(
                        "Template error: Fn::Select cannot select nonexistent value at index {idx}"
                    ),
                )
            }),
            _ => Err(ModelError::new(path, usage)),
        }
    }

    fn join(&self, arg: &Value, path: &str) -> Result<Value> {
        let usage = "Template error: every Fn::Join object requires two parameters, (1) a string delimiter and (2) a list of strings to be joined or a function that returns a list of strings (such as Fn::GetAZs) to be joined.";
        match self.resolve_inner(arg, path)? {
            Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                (Value::String(d), Value::Array(items)) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for x in items {
                        match x {
                            Value::Array(_) | Value::Object(_) | Value::Null => {
                                return Err(ModelError::new(path, usage))
                            }
                            x => parts.push(scalar_string(x)),
                        }
                    }
                    Ok(Value::String(parts.join(d)))
                }
                _ => Err(ModelError::new(path, usage)),
            },
            _ => Err(ModelError::new(path, usage)),
        }
    }

    fn find_in_map(&self, arg: &Value, path: &str) -> Result<Value> {
        let usage = "Template error: every Fn::FindInMap object requires three parameters, the map name, map key and the attribute for return value";
        let Value::Array(a) = arg else {
            return Err(ModelError::new(path, usage));
        };
        let default = match a.len() {
            3 => None,
            4 if self.active_env().language_extensions => match &a[3] {
                Value::Object(o) if o.len() == 1 && o.contains_key("DefaultValue") => {
                    Some(&o["DefaultValue"])
                }
                _ => {
                    return Err(ModelError::new(
                        path,
                        "Fn::FindInMap's fourth argument is {DefaultValue: value}",
                    ))
                }
            },
            4 => {
                return Err(ModelError::new(
                    path,
                    format!("{usage} (a DefaultValue needs Transform: AWS::LanguageExtensions)"),
                ))
            }
            _ => return Err(ModelError::new(path, usage)),
        };
        let mut keys = Vec::with_capacity(3);
        for (i, k) in a[..3].iter().enumerate() {
            match self.resolve_inner(k, &format!("{path}[{i}]"))? {
                Value::String(s) => keys.push(s),
                Value::Number(n) => keys.push(n.to_string()),
                _ => return Err(ModelError::new(path, usage)),
            }
        }
        let found = self
            .scope_template(self.active.get())
            .mappings
            .get(&keys[0])
            .and_then(|m| m.get(&keys[1]))
            .and_then(|m| m.get(&keys[2]));
        match (found, default) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(d)) => self.resolve_inner(d, &format!("{path}[3].DefaultValue")),
            (None, None) => Err(ModelError::new(
                path,
                format!(
                    "Template error: Unable to get mapping for {}::{}::{}",
                    keys[0], keys[1], keys[2]
                ),
            )),
        }
    }

    fn sub(&self, arg: &Value, path: &str) -> Result<Value> {
        let usage = "Template error: Fn::Sub takes a string or [string, {variables}]";
        let (text, vars) = match arg {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Array(a) if a.len() == 2 => {
                match (&a[0], self.resolve_inner(&a[1], &format!("{path}[1]"))?) {
                    (Value::String(s), Value::Object(vars)) => (s.clone(), vars),
                    _ => return Err(ModelError::new(path, usage)),
                }
            }
            _ => return Err(ModelError::new(path, usage)),
        };
        let mut out = String::new();
        for part in sub_parts(&text) {
            match part {
                SubPart::Text(t) => out.push_str(t),
                SubPart::Literal(l) => {
                    out.push_str("${");
                    out.push_str(l);
                    out.push('}');
                }
                SubPart::Var(name) => {
                    let v = if let Some(v) = vars.get(name) {
                        v.clone()
                    } else if let Some((r, a)) =
                        name.split_once('.').filter(|_| !name.starts_with("AWS::"))
                    {
                        self.get_att(r, a, path)?
                    } else {
                        self.reference(name, path)?
                    };
                    match v {
                        Value::Array(_) | Value::Object(_) => {
                            return Err(ModelError::new(
                                path,
                                format!("Template error: variable {name} in Fn::Sub expression does not resolve to a string"),
                            ))
                        }
                        v => out.push_str(&scalar_string(&v)),
                    }
                }
            }
        }
        Ok(Value::String(out))
    }
}

/// A piece of an `Fn::Sub` string.
#[derive(Debug, PartialEq)]
pub(super) enum SubPart<'s> {
    Text(&'s str),
    /// `${Name}` or `${Resource.Attribute}`.
    Var(&'s str),
    /// `${!Literal}`: written as `${Literal}`.
    Literal(&'s str),
}

/// Splits an `Fn::Sub` string; a `${` without its `}` is text, as
/// CloudFormation leaves it.
pub(super) fn sub_parts(text: &str) -> Vec<SubPart<'_>> {
    let mut parts = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        if start > 0 {
            parts.push(SubPart::Text(&rest[..start]));
        }
        let name = &after[..end];
        parts.push(match name.strip_prefix('!') {
            Some(l) => SubPart::Literal(l),
            None => SubPart::Var(name.trim()),
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(SubPart::Text(rest));
    }
    parts
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

/// A scalar as CloudFormation writes it into a string (a list: joined
/// with commas, as `Ref` of a list parameter reads).
pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar_string).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
