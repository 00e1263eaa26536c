//! CloudFormation's API on the agent's endpoint (requests signed for
//! `cloudformation`), in its query protocol: form-encoded actions, XML
//! answers as AWS's, errors as `<ErrorResponse>`. Stacks: CreateStack,
//! UpdateStack, DeleteStack, DescribeStacks, DescribeStackResources,
//! DescribeStackResource, ListStackResources, DescribeStackEvents,
//! ListStacks, GetTemplate, GetTemplateSummary, ValidateTemplate; change
//! sets: CreateChangeSet, DescribeChangeSet, ExecuteChangeSet,
//! DeleteChangeSet, ListChangeSets.
//!
//! Decision: an operation that changes a stack (CreateStack, UpdateStack,
//! DeleteStack, ExecuteChangeSet) answers once it is done (AWS answers at
//! once and works on): the stack's status is final when the answer comes,
//! so a waiter (`stack_create_complete`, what `aws cloudformation deploy`
//! polls every 30 s) sees it on its first look. Operations that change
//! stacks run one at a time ([`SERIAL`]).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use anyhow::Result;
use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::Response,
    Router,
};
use serde_json::Value;

use super::{
    change_sets, load,
    operations::{self, refused_error, Checked, Operation, Refused, StackInput},
    xml::{self, Xml},
    Stack,
};
use crate::state::State as DeploymentState;

/// One operation that changes stacks at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// The largest request taken (a template's body: 51,200 bytes at AWS,
/// 1 MB from S3; more is allowed here).
const BODY_LIMIT: usize = 16 << 20;

/// The router of deployment `name`'s CloudFormation API.
pub fn router(name: &str) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(name.to_string()))
}

/// An error as the API answers it.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    sender: bool,
    code: String,
    message: String,
}

impl ApiError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            sender: true,
            code: "ValidationError".into(),
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Refused>() {
            Ok(r) => Self {
                status: StatusCode::BAD_REQUEST,
                sender: true,
                code: r.code.into(),
                message: r.message,
            },
            Err(e) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                sender: false,
                code: "InternalFailure".into(),
                message: format!("{e:#}"),
            },
        }
    }
}

pub(super) type Answer = std::result::Result<Option<String>, ApiError>;

/// A request's parameters: its query and its form body.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    fn required(&self, k: &str) -> std::result::Result<&str, ApiError> {
        self.get(k).ok_or_else(|| {
            let mut field = k.to_string();
            field[..1].make_ascii_lowercase();
            ApiError::validation(format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    fn flag(&self, k: &str) -> bool {
        self.get(k) == Some("true")
    }

    /// `Prefix.member.N` values, in N's order.
    fn list(&self, prefix: &str) -> Vec<String> {
        let p = format!("{prefix}.member.");
        let mut v: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.parse().ok()?, v.clone())))
            .collect();
        v.sort();
        v.into_iter().map(|(_, v)| v).collect()
    }

    /// `Prefix.member.N.Field` structures, in N's order.
    fn structs(&self, prefix: &str) -> Vec<HashMap<String, String>> {
        let p = format!("{prefix}.member.");
        let mut by: BTreeMap<u32, HashMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&p) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(n) = n.parse() {
                by.entry(n).or_default().insert(field.into(), v.clone());
            }
        }
        by.into_values().collect()
    }

    fn tags(&self) -> Vec<(String, String)> {
        self.structs("Tags")
            .into_iter()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.clone(),
                    t.get("Value").cloned().unwrap_or_default(),
                ))
            })
            .collect()
    }
}

async fn handle(State(name): State<Arc<String>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let id = xml::request_id("cloudformation");
    let name = name.to_string();
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let a = action.clone();
    let answer = tokio::task::spawn_blocking(move || dispatch(&name, &a, &Params(params)))
        .await
        .unwrap_or_else(|e| Err(ApiError::from(anyhow::anyhow!("the operation failed: {e}"))));
    tracing::debug!(action, ok = answer.is_ok(), "cloudformation");
    let (status, text) = match answer {
        Ok(body) => (StatusCode::OK, xml::response(&action, body.as_deref(), &id)),
        Err(e) => (
            e.status,
            xml::error(
                if e.sender { "Sender" } else { "Receiver" },
                &e.code,
                &e.message,
                &id,
            ),
        ),
    };
    xml::reply(status, text, &id)
}

fn dispatch(name: &str, action: &str, p: &Params) -> Answer {
    match action {
        "CreateStack" => create_stack(name, p),
        "UpdateStack" => update_stack(name, p),
        "DeleteStack" => delete_stack(name, p),
        "DescribeStacks" => super::describe::describe_stacks(name, p.get("StackName")),
        "DescribeStackResources" => super::describe::stack_resources(
            name,
            p.required("StackName")?,
            p.get("LogicalResourceId"),
            "DescribeStackResources",
        ),
        "DescribeStackResource" => super::describe::stack_resources(
            name,
            p.required("StackName")?,
            Some(p.required("LogicalResourceId")?),
            "DescribeStackResource",
        ),
        "ListStackResources" => {
            super::describe::stack_resources(name, p.required("StackName")?, None, "ListStackResources")
        }
        "DescribeStackEvents" => super::describe::stack_events(name, p.required("StackName")?),
        "ListStacks" => super::describe::list_stacks(name, &p.list("StackStatusFilter")),
        "GetTemplate" => get_template(name, p),
        "GetTemplateSummary" => template_summary(name, p, true),
        "ValidateTemplate" => template_summary(name, p, false),
        "CreateChangeSet" => create_change_set(name, p),
        "DescribeChangeSet" => super::describe::change_set(
            name,
            p.required("ChangeSetName")?,
            p.get("StackName"),
        ),
        "ExecuteChangeSet" => {
            let quotas = quotas(name)?;
            change_sets::execute(name, p.required("ChangeSetName")?, p.get("StackName"), quotas)?;
            Ok(None)
        }
        "DeleteChangeSet" => {
            change_sets::delete(name, p.required("ChangeSetName")?, p.get("StackName"))?;
            Ok(Some(String::new()))
        }
        "ListChangeSets" => super::describe::list_change_sets(name, p.required("StackName")?),
        "" => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            sender: true,
            code: "MissingAction".into(),
            message: "Missing Action".into(),
        }),
        other => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            sender: true,
            code: "InvalidAction".into(),
            message: format!(
                "Could not find operation {other} for version 2010-05-15 (this endpoint serves CloudFormation's stack and change-set operations)"
            ),
        }),
    }
}

/// Whether stack `s` is the one `name` names: its name, or its id.
pub fn names(s: &Stack, name: &str) -> bool {
    s.name == name || s.stack_id == name
}

/// The stack a request names (not a deleted one, unless by its id).
pub(super) fn find_stack(stacks: &[Stack], name: &str) -> std::result::Result<Stack, ApiError> {
    stacks
        .iter()
        .rev()
        .filter(|s| !crate::ec2::stack::is_internal(&s.name))
        .find(|s| names(s, name) && (!s.deleted() || s.stack_id == name))
        .cloned()
        .ok_or_else(|| ApiError::validation(format!("Stack with id {name} does not exist")))
}

fn quotas(name: &str) -> std::result::Result<crate::model::Quotas, ApiError> {
    Ok(DeploymentState::load(name)?.quotas)
}

/// A stack name as CloudFormation accepts it.
fn stack_name(p: &Params) -> std::result::Result<String, ApiError> {
    let n = p.required("StackName")?;
    if crate::ec2::stack::is_internal(n) {
        return Err(ApiError::validation(format!(
            "Stack [{n}] holds the EC2 API's resources: choose another name"
        )));
    }
    let ok = n.len() <= 128
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{n}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*|arn:[-a-zA-Z0-9:/._+]*"
        )));
    }
    Ok(n.to_string())
}

fn template_body(p: &Params) -> std::result::Result<Option<String>, ApiError> {
    if p.get("TemplateURL").is_some() {
        return Err(ApiError::validation(
            "TemplateURL is not supported by this endpoint (it serves no S3): give the template as TemplateBody",
        ));
    }
    Ok(p.get("TemplateBody").map(str::to_string))
}

/// CloudFormation's capabilities check: a template with IAM resources
/// needs `CAPABILITY_IAM` (`CAPABILITY_NAMED_IAM` when one has a custom
/// name); one with a transform, created directly (not through a change
/// set), `CAPABILITY_AUTO_EXPAND`.
pub fn check_capabilities(c: &Checked, given: &[String], direct: bool) -> Result<()> {
    let (needed, _) = required_capabilities(c);
    let has = |k: &str| given.iter().any(|g| g == k);
    let mut missing: Vec<&str> = vec![];
    for k in &needed {
        let ok = match k.as_str() {
            "CAPABILITY_IAM" => has("CAPABILITY_IAM") || has("CAPABILITY_NAMED_IAM"),
            "CAPABILITY_AUTO_EXPAND" => !direct || has(k),
            other => has(other),
        };
        if !ok {
            missing.push(k);
        }
    }
    if !missing.is_empty() {
        return Err(refused_error(
            "InsufficientCapabilitiesException",
            format!("Requires capabilities : [{}]", missing.join(", ")),
        ));
    }
    Ok(())
}

/// The capabilities a template needs, and why (`CapabilitiesReason`).
pub fn required_capabilities(c: &Checked) -> (Vec<String>, Option<String>) {
    const NAMES: &[&str] = &[
        "RoleName",
        "UserName",
        "GroupName",
        "ManagedPolicyName",
        "InstanceProfileName",
    ];
    let iam: Vec<&crate::template::Resource> = c
        .template
        .resources
        .values()
        .filter(|r| r.kind.starts_with("AWS::IAM::"))
        .collect();
    let mut caps = vec![];
    let mut reason = None;
    if !iam.is_empty() {
        let named = iam
            .iter()
            .any(|r| NAMES.iter().any(|n| r.properties.contains_key(*n)));
        caps.push(
            if named {
                "CAPABILITY_NAMED_IAM"
            } else {
                "CAPABILITY_IAM"
            }
            .to_string(),
        );
        let mut types: Vec<&str> = iam.iter().map(|r| r.kind.as_str()).collect();
        types.sort();
        types.dedup();
        reason = Some(format!(
            "The following resource(s) require capabilities: [{}]",
            types.join(", ")
        ));
    }
    if !c.transforms.is_empty()
        && c.transforms
            .iter()
            .any(|t| t != crate::template::LANGUAGE_EXTENSIONS)
    {
        caps.push("CAPABILITY_AUTO_EXPAND".into());
    }
    (caps, reason)
}

/// The input of CreateStack / UpdateStack (`previous`: the stack updated).
fn input(
    name: &str,
    p: &Params,
    stack: &str,
    previous: Option<&Stack>,
) -> std::result::Result<(StackInput, Checked), ApiError> {
    let (mut parameters, keep) = change_sets::parameters_of(&p.structs("Parameters"));
    for k in keep {
        if let Some(v) = previous.and_then(|s| s.parameters.get(&k)) {
            parameters.insert(k, v.clone());
        }
    }
    let body = match (template_body(p)?, previous) {
        (Some(b), _) => b,
        (None, Some(s)) if p.flag("UsePreviousTemplate") => s.template_body.clone(),
        _ => {
            return Err(ApiError::validation(
                "Either Template URL or Template Body must be specified.",
            ))
        }
    };
    let i = StackInput {
        name: stack.to_string(),
        template_body: body,
        template_dir: previous.and_then(|s| s.template_dir.clone()),
        label: format!("stack {stack}"),
        parameters,
        capabilities: p.list("Capabilities"),
        tags: p.tags(),
    };
    let checked =
        operations::validate(name, &i).map_err(|e| ApiError::validation(e.to_string()))?;
    check_capabilities(&checked, &i.capabilities, true)?;
    Ok((i, checked))
}

fn stack_id(s: &Stack) -> Option<String> {
    let mut x = Xml::default();
    x.leaf("StackId", &s.stack_id);
    Some(x.0)
}

fn create_stack(name: &str, p: &Params) -> Answer {
    let stack = stack_name(p)?;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (i, _) = input(name, p, &stack, None)?;
    let out = operations::run(name, &Operation::Create(i), quotas(name)?)?;
    Ok(stack_id(&out.stack))
}

fn update_stack(name: &str, p: &Params) -> Answer {
    let stack = p.required("StackName")?.to_string();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let previous = find_stack(&load(name)?, &stack)?;
    let (i, _) = input(name, p, &previous.name, Some(&previous))?;
    let out = operations::run(
        name,
        &Operation::Update {
            input: i,
            require_change: true,
        },
        quotas(name)?,
    )?;
    Ok(stack_id(&out.stack))
}

fn delete_stack(name: &str, p: &Params) -> Answer {
    let stack = p.required("StackName")?;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Deleting a stack that does not exist succeeds, as at AWS.
    let Ok(s) = find_stack(&load(name)?, stack) else {
        return Ok(None);
    };
    if s.deleted() {
        return Ok(None);
    }
    operations::run(name, &Operation::Delete(s.name.clone()), quotas(name)?)?;
    Ok(None)
}

fn get_template(name: &str, p: &Params) -> Answer {
    let stacks = load(name)?;
    let s = find_stack(&stacks, p.required("StackName")?)?;
    let body = match p.get("ChangeSetName") {
        Some(cs) => {
            let (st, i) = change_sets::find(&stacks, cs, Some(&s.name)).ok_or_else(|| {
                refused_error(
                    "ChangeSetNotFound",
                    format!("ChangeSet [{cs}] does not exist"),
                )
            })?;
            st.change_sets[i].template_body.clone()
        }
        None => s.template_body.clone(),
    };
    let body = if p.get("TemplateStage") == Some("Processed") {
        processed(name, &s, &body).map_err(|e| ApiError::validation(e.to_string()))?
    } else {
        body
    };
    let mut x = Xml::default();
    x.leaf("TemplateBody", &body)
        .members("StagesAvailable", &["Original", "Processed"], |x, s| {
            x.0.push_str(s);
        });
    Ok(Some(x.0))
}

/// A template after its transforms, as JSON (the template as written when
/// it has none).
fn processed(
    name: &str,
    s: &Stack,
    body: &str,
) -> std::result::Result<String, crate::template::ModelError> {
    let doc = crate::template::document(body)?;
    if !crate::template::sam::is_sam(&doc) {
        return Ok(body.to_string());
    }
    let mut ctx = crate::deploy::stack_context(name)
        .map_err(|e| crate::template::ModelError::new("stacks", format!("{e:#}")))?;
    ctx.stack_name = s.name.clone();
    let params = s.parameters.clone().into_iter().collect();
    let out = crate::template::sam::expand(doc, &params, &ctx, s.template_dir.as_deref())?;
    Ok(serde_json::to_string_pretty(&out).unwrap_or_default())
}

/// GetTemplateSummary (`summary`) and ValidateTemplate.
fn template_summary(name: &str, p: &Params, summary: bool) -> Answer {
    let (body, stack) = match (template_body(p)?, p.get("StackName").filter(|_| summary)) {
        (Some(b), _) => (b, None),
        (None, Some(n)) => {
            let s = find_stack(&load(name)?, n)?;
            (s.template_body.clone(), Some(s))
        }
        (None, None) => {
            return Err(ApiError::validation(
                "Either Template URL or Template Body must be specified.",
            ))
        }
    };
    let i = StackInput {
        name: stack
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| name.to_string()),
        template_body: body,
        template_dir: stack.as_ref().and_then(|s| s.template_dir.clone()),
        ..Default::default()
    };
    // Parameters without a value are not an error here: checked with
    // placeholders for those without a Default.
    let doc = crate::template::document(&i.template_body)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let declared: Vec<(String, Value)> = doc
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let description = doc
        .get("Description")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut i = i;
    for (k, decl) in &declared {
        if decl.get("Default").is_none() {
            i.parameters.insert(k.clone(), placeholder(decl));
        }
    }
    let checked =
        operations::validate(name, &i).map_err(|e| ApiError::validation(e.to_string()))?;
    let (caps, reason) = required_capabilities(&checked);
    let mut x = Xml::default();
    x.members("Parameters", &declared, |x, (k, d)| {
        x.leaf("ParameterKey", k);
        if let Some(v) = d.get("Default") {
            x.leaf("DefaultValue", &crate::template::scalar_string(v));
        }
        if summary {
            x.opt("ParameterType", d.get("Type").and_then(Value::as_str));
        }
        x.leaf(
            "NoEcho",
            if d.get("NoEcho").is_some_and(|v| v == true || v == "true") {
                "true"
            } else {
                "false"
            },
        );
        x.opt("Description", d.get("Description").and_then(Value::as_str));
        if summary {
            x.open("ParameterConstraints");
            if let Some(Value::Array(a)) = d.get("AllowedValues") {
                let v: Vec<String> = a.iter().map(crate::template::scalar_string).collect();
                x.members("AllowedValues", &v, |x, s| {
                    x.0.push_str(&xml::escape(s));
                });
            }
            x.close("ParameterConstraints");
        }
    });
    x.opt("Description", description.as_deref());
    x.members("Capabilities", &caps, |x, c| {
        x.0.push_str(c);
    });
    x.opt("CapabilitiesReason", reason.as_deref());
    if summary {
        let mut types: Vec<String> = checked
            .template
            .resources
            .values()
            .map(|r| r.kind.clone())
            .collect();
        types.sort();
        types.dedup();
        x.members("ResourceTypes", &types, |x, t| {
            x.0.push_str(&xml::escape(t));
        });
        x.leaf("Version", "2010-09-09");
    }
    x.members("DeclaredTransforms", &checked.transforms, |x, t| {
        x.0.push_str(&xml::escape(t));
    });
    Ok(Some(x.0))
}

/// A value that satisfies a parameter's declaration well enough to check
/// the rest of the template.
fn placeholder(decl: &Value) -> String {
    if let Some(Value::Array(a)) = decl.get("AllowedValues") {
        if let Some(v) = a.first() {
            return crate::template::scalar_string(v);
        }
    }
    match decl.get("Type").and_then(Value::as_str).unwrap_or("String") {
        "Number" | "List<Number>" => decl
            .get("MinValue")
            .map(crate::template::scalar_string)
            .unwrap_or_else(|| "1".into()),
        _ => "placeholder".into(),
    }
}

fn create_change_set(name: &str, p: &Params) -> Answer {
    let stack = stack_name(p)?;
    let (parameters, use_previous) = change_sets::parameters_of(&p.structs("Parameters"));
    let req = change_sets::Request {
        stack_name: stack,
        change_set_name: p.required("ChangeSetName")?.to_string(),
        change_set_type: p.get("ChangeSetType").unwrap_or("UPDATE").to_string(),
        template_body: if p.flag("UsePreviousTemplate") {
            None
        } else {
            Some(template_body(p)?.ok_or_else(|| {
                ApiError::validation("Either Template URL or Template Body must be specified.")
            })?)
        },
        parameters,
        use_previous,
        capabilities: p.list("Capabilities"),
        tags: p.tags(),
        description: p.get("Description").map(str::to_string),
    };
    let (id, stack_id) = change_sets::create(name, &req)?;
    let mut x = Xml::default();
    x.leaf("Id", &id).leaf("StackId", &stack_id);
    Ok(Some(x.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    /// The query protocol's lists and structures (`+` is a space).
    #[test]
    fn lists_and_structures_are_read_in_member_order() {
        let p = params("Action=CreateStack&Capabilities.member.2=B&Capabilities.member.1=A&Parameters.member.2.ParameterKey=Y&Parameters.member.2.UsePreviousValue=true&Parameters.member.1.ParameterKey=X&Parameters.member.1.ParameterValue=a+b%2Bc&Tags.member.1.Key=k&Tags.member.1.Value=v");
        assert_eq!(p.list("Capabilities"), ["A", "B"]);
        let (values, previous) = change_sets::parameters_of(&p.structs("Parameters"));
        assert_eq!(values["X"], "a b+c");
        assert_eq!(previous, ["Y"]);
        assert_eq!(p.tags(), [("k".to_string(), "v".to_string())]);
        let e = p.required("StackName").unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'stackName' failed to satisfy constraint: Member must not be null"
        );
        assert!(stack_name(&params("StackName=bad_name")).is_err());
        assert_eq!(stack_name(&params("StackName=Good-1")).unwrap(), "Good-1");
    }

    /// IAM resources need CAPABILITY_IAM (NAMED with a custom name), a
    /// transform CAPABILITY_AUTO_EXPAND when the stack is created directly.
    #[test]
    fn capabilities_are_required_as_cloudformation_requires_them() {
        let checked = |text: &str, transforms: &[&str]| Checked {
            transforms: transforms.iter().map(|t| t.to_string()).collect(),
            template: crate::template::parse(text).unwrap(),
        };
        let role = "Resources:\n  R: {Type: AWS::IAM::Role}\n";
        let named = "Resources:\n  R: {Type: AWS::IAM::Role, Properties: {RoleName: n}}\n";
        let caps = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = |c: &Checked, given: &[&str], direct| {
            check_capabilities(c, &caps(given), direct)
                .err()
                .map(|e| e.to_string())
        };
        let c = checked(role, &[]);
        assert_eq!(
            err(&c, &[], true).as_deref(),
            Some("InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_IAM]")
        );
        assert_eq!(err(&c, &["CAPABILITY_NAMED_IAM"], true), None);
        let c = checked(named, &[]);
        assert!(err(&c, &["CAPABILITY_IAM"], true)
            .unwrap()
            .contains("CAPABILITY_NAMED_IAM"));
        let c = checked(role, &["AWS::Serverless-2016-10-31"]);
        assert!(err(&c, &["CAPABILITY_IAM"], true)
            .unwrap()
            .contains("CAPABILITY_AUTO_EXPAND"));
        assert_eq!(
            err(&c, &["CAPABILITY_IAM"], false),
            None,
            "a change set expands"
        );
        assert_eq!(
            required_capabilities(&c).1.as_deref(),
            Some("The following resource(s) require capabilities: [AWS::IAM::Role]")
        );
    }
}
