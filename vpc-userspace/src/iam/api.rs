//! IAM's query API on the agent's endpoint (requests signed for `iam`):
//! form-encoded actions, XML answers as IAM's (policy documents
//! URL-encoded, as IAM returns them and SDKs decode them), errors as
//! `<ErrorResponse>` with IAM's codes and messages: `NoSuchEntity` (404),
//! `EntityAlreadyExists` and `DeleteConflict` (409),
//! `MalformedPolicyDocument`, `UnmodifiableEntity` and `ValidationError`
//! (400).
//!
//! Roles: CreateRole, GetRole, DeleteRole, ListRoles, PutRolePolicy,
//! GetRolePolicy, DeleteRolePolicy, AttachRolePolicy, DetachRolePolicy,
//! ListAttachedRolePolicies. Policies: CreatePolicy, GetPolicy,
//! DeletePolicy. Users: CreateUser, GetUser, ListUsers, DeleteUser, CreateAccessKey,
//! DeleteAccessKey, UpdateAccessKey, ListAccessKeys, PutUserPolicy, AttachUserPolicy. Groups: CreateGroup,
//! AddUserToGroup, PutGroupPolicy, AttachGroupPolicy.
//!
//! What the API creates is the deployment's ([`Store`] in the desired
//! model), written under the deployment's lock; the templates' entities
//! are read here and refused to change (`UnmodifiableEntity`: change the
//! template).
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::Response,
    Router,
};

use super::policy::{Kind, Policy};
use super::store::{AccessKey, Iam, ManagedPolicy, Role, User};
use crate::cloudformation::xml::{self, Xml};
use crate::model::Model;
use crate::state::{transact, State as DeploymentState};

mod identities;
use identities::{holds_no_policies, not_found, principal, principal_mut, Entity};

/// IAM's XML namespace.
pub const NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// The router of deployment `name`'s IAM API.
pub fn router(name: &str) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(name.to_string()))
}

/// An error as IAM answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct IamError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

type Answer = Result<String, IamError>;

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> IamError {
    IamError {
        status,
        code,
        message: message.into(),
    }
}

fn no_such(message: impl Into<String>) -> IamError {
    err(StatusCode::NOT_FOUND, "NoSuchEntity", message)
}

fn exists(message: impl Into<String>) -> IamError {
    err(StatusCode::CONFLICT, "EntityAlreadyExists", message)
}

fn conflict(message: impl Into<String>) -> IamError {
    err(StatusCode::CONFLICT, "DeleteConflict", message)
}

fn validation(message: impl Into<String>) -> IamError {
    err(StatusCode::BAD_REQUEST, "ValidationError", message)
}

fn internal(e: anyhow::Error) -> IamError {
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ServiceFailure",
        format!("{e:#}"),
    )
}

/// A template's entity: not changed through the API.
fn unmodifiable(what: &str, name: &str, logical_id: &str) -> IamError {
    err(
        StatusCode::BAD_REQUEST,
        "UnmodifiableEntity",
        format!(
            "Cannot perform the operation on the {what} {name}: it is declared by this deployment's template (resource {logical_id}); change it there (vpc apply)"
        ),
    )
}

/// The request's parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    /// A required parameter, or IAM's validation error naming it.
    fn required(&self, k: &str) -> Result<&str, IamError> {
        self.get(k).ok_or_else(|| {
            let mut field = k.to_string();
            field[..1].make_ascii_lowercase();
            validation(format!(
                "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    /// A name parameter (`RoleName`, ...): IAM's pattern and length.
    fn name(&self, k: &str, max: usize) -> Result<&str, IamError> {
        let n = self.required(k)?;
        let ok = !n.is_empty()
            && n.len() <= max
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
        if !ok {
            let mut field = k.to_string();
            field[..1].make_ascii_lowercase();
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length less than or equal to {max}"
            )));
        }
        Ok(n)
    }

    fn path(&self) -> Result<String, IamError> {
        let p = self.get("Path").unwrap_or("/");
        if !p.starts_with('/') || !p.ends_with('/') || p.len() > 512 {
            return Err(validation(format!(
                "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters. ({p})"
            )));
        }
        Ok(p.to_string())
    }
}

async fn handle(State(name): State<Arc<String>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (name, a) = (name.to_string(), action.clone());
    let answer = tokio::task::spawn_blocking(move || dispatch(&name, &a, &Params(params)))
        .await
        .unwrap_or_else(|e| Err(internal(anyhow::anyhow!("the operation failed: {e}"))));
    tracing::debug!(action, ok = answer.is_ok(), "iam");
    let id = xml::request_id("iam");
    let (status, text) = match answer {
        Ok(body) => (
            StatusCode::OK,
            xml::response_in(NS, &action, Some(&body), &id),
        ),
        Err(e) => (
            e.status,
            xml::error_in(NS, "Sender", e.code, &e.message, &id),
        ),
    };
    xml::reply(status, text, &id)
}

fn dispatch(name: &str, action: &str, p: &Params) -> Answer {
    if let Some(answer) = identities::dispatch(name, action, p) {
        return answer;
    }
    match action {
        "CreateRole" => create_role(name, p),
        "GetRole" => read(name, |iam, _| {
            let n = Entity::Role.name(p)?;
            let r = iam.role(n).ok_or_else(|| not_found(Entity::Role, n))?;
            Ok(wrap("Role", |x| role_xml(x, r)))
        }),
        "DeleteRole" => delete_role(name, p),
        "ListRoles" => read(name, |iam, _| {
            let mut x = Xml::default();
            x.members("Roles", &iam.roles, role_xml)
                .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "CreatePolicy" => create_policy(name, p),
        "GetPolicy" => read(name, |iam, _| {
            let arn = p.required("PolicyArn")?;
            let pol = iam
                .policy(arn)
                .ok_or_else(|| no_such(format!("Policy {arn} was not found.")))?;
            let n = iam.attachments(arn);
            Ok(wrap("Policy", |x| policy_xml(x, &pol, n)))
        }),
        "DeletePolicy" => edit(name, |m, iam| {
            let arn = p.required("PolicyArn")?;
            let pol = iam
                .policy(arn)
                .ok_or_else(|| no_such(format!("Policy {arn} was not found.")))?;
            if super::managed::is_aws(arn) {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    format!("Cannot delete the AWS managed policy {arn}."),
                ));
            }
            if let Some(id) = &pol.stack {
                return Err(unmodifiable("policy", &pol.name, id));
            }
            if iam.attachments(arn) > 0 {
                return Err(conflict("Cannot delete a policy attached to entities."));
            }
            m.iam.policies.retain(|x| x.arn != arn);
            Ok(String::new())
        }),
        "CreateUser" => edit(name, |m, iam| {
            let n = Entity::User.name(p)?;
            if iam.user(n).is_some() {
                return Err(exists(format!("User with name {n} already exists.")));
            }
            let u = User {
                principal: Entity::User.create(m, n, p.path()?),
                ..Default::default()
            };
            let out = wrap("User", |x| user_xml(x, &u));
            m.iam.users.push(u);
            Ok(out)
        }),
        "GetUser" => read(name, |iam, _| {
            let n = Entity::User.name(p)?;
            let u = iam.user(n).ok_or_else(|| not_found(Entity::User, n))?;
            Ok(wrap("User", |x| user_xml(x, u)))
        }),
        "ListUsers" => read(name, |iam, _| {
            let mut x = Xml::default();
            x.members("Users", &iam.users, user_xml)
                .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "DeleteUser" => delete_user(name, p),
        "CreateAccessKey" => edit(name, |m, iam| {
            let n = p.name("UserName", 64)?;
            let u = principal(iam, Entity::User, n)?;
            if let Some(id) = &u.stack {
                return Err(unmodifiable("user", n, id));
            }
            let seed = format!("{n}/{}", now());
            let k = AccessKey {
                id: format!("AKIA{}", alnum(&seed, 16, true)),
                secret: alnum(&format!("{seed}/secret"), 40, false),
                user: n.into(),
                status: "Active".into(),
                created_ms: now(),
                stack: None,
            };
            let mut x = Xml::default();
            x.open("AccessKey")
                .leaf("UserName", &k.user)
                .leaf("AccessKeyId", &k.id)
                .leaf("Status", &k.status)
                .leaf("SecretAccessKey", &k.secret)
                .time("CreateDate", k.created_ms)
                .close("AccessKey");
            m.iam.access_keys.push(k);
            Ok(x.0)
        }),
        "DeleteAccessKey" => edit(name, |m, iam| {
            let id = p.required("AccessKeyId")?;
            api_key(iam, p, id)?;
            m.iam.access_keys.retain(|k| k.id != id);
            // Requests signed with it are refused from now on, not taken
            // for the root's (`iam::lambda::check`).
            m.iam.deleted_access_keys.push(id.to_string());
            Ok(String::new())
        }),
        "UpdateAccessKey" => edit(name, |m, iam| {
            let id = p.required("AccessKeyId")?;
            let status = p.required("Status")?;
            if status != "Active" && status != "Inactive" {
                return Err(validation(format!(
                    "1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
                )));
            }
            api_key(iam, p, id)?;
            if let Some(k) = m.iam.access_keys.iter_mut().find(|k| k.id == id) {
                k.status = status.to_string();
            }
            Ok(String::new())
        }),
        "ListAccessKeys" => read(name, |iam, _| {
            let n = p.name("UserName", 64)?;
            principal(iam, Entity::User, n)?;
            let keys: Vec<_> = iam.access_keys.iter().filter(|k| k.user == n).collect();
            let mut x = Xml::default();
            x.members("AccessKeyMetadata", &keys, |x, k| {
                x.leaf("UserName", &k.user)
                    .leaf("AccessKeyId", &k.id)
                    .leaf("Status", &k.status)
                    .time("CreateDate", k.created_ms);
            })
            .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "" => Err(err(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action",
        )),
        other => Err(err(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "Could not find operation {other} for version 2010-05-08 (this endpoint serves IAM's roles, users, groups, policies and access keys: docs/iam.md)"
            ),
        )),
    }
}

fn now() -> u64 {
    crate::lambda::lifecycle::real_ms()
}

/// `n` characters `A-Z0-9` (or `a-z0-9`) derived from `seed`.
fn alnum(seed: &str, n: usize, upper: bool) -> String {
    let chars: &[u8] = if upper {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    } else {
        b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
    };
    (0..n)
        .map(|i| {
            let h = crate::model::fnv1a(&format!("{seed}/{}", i / 8));
            chars[((h >> ((i % 8) * 8)) as usize) % chars.len()] as char
        })
        .collect()
}

/// An IAM unique id: its prefix (`AROA` a role, `AIDA` a user, `AGPA` a
/// group, `ANPA` a policy) and 17 characters.
fn unique_id(prefix: &str, name: &str) -> String {
    format!(
        "{prefix}{}",
        alnum(&format!("{prefix}/{name}/{}", now()), 17, true)
    )
}

/// A policy document as IAM returns it: URL-encoded (RFC 3986; SDKs
/// decode it).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `<tag>...</tag>` written by `f`.
fn wrap(tag: &str, f: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml::default();
    x.open(tag);
    f(&mut x);
    x.close(tag);
    x.0
}

fn role_xml(x: &mut Xml, r: &Role) {
    x.leaf("Path", &r.path)
        .leaf("RoleName", &r.name)
        .leaf("RoleId", &r.id)
        .leaf("Arn", &r.arn)
        .time("CreateDate", r.created_ms)
        .leaf(
            "AssumeRolePolicyDocument",
            &url_encode(&r.assume_role_policy),
        )
        .leaf("MaxSessionDuration", "3600");
}

fn user_xml(x: &mut Xml, u: &User) {
    x.leaf("Path", &u.path)
        .leaf("UserName", &u.name)
        .leaf("UserId", &u.id)
        .leaf("Arn", &u.arn)
        .time("CreateDate", u.created_ms);
}

fn policy_xml(x: &mut Xml, p: &ManagedPolicy, attachments: usize) {
    x.leaf("PolicyName", &p.name)
        .leaf("PolicyId", &p.id)
        .leaf("Arn", &p.arn)
        .leaf("Path", &p.path)
        .leaf("DefaultVersionId", super::managed::default_version(&p.arn))
        .leaf("AttachmentCount", &attachments.to_string())
        .leaf("PermissionsBoundaryUsageCount", "0")
        .leaf("IsAttachable", "true")
        .time("CreateDate", p.created_ms)
        .time("UpdateDate", p.created_ms);
}

/// A read, from the store.
fn read(name: &str, f: impl FnOnce(&Iam, &Model) -> Answer) -> Answer {
    let s = DeploymentState::load(name).map_err(internal)?;
    f(&Iam::of(&s.model), &s.model)
}

/// A change of the API's entities (`m.iam`), under the deployment's lock,
/// written with the desired model; `iam` is the whole view before it.
fn edit(name: &str, f: impl FnOnce(&mut Model, &Iam) -> Answer) -> Answer {
    transact(name, |s, _| {
        let iam = Iam::of(&s.model);
        let r = f(&mut s.model, &iam);
        if r.is_err() {
            // Nothing half-applied: the transaction is not committed.
            anyhow::bail!(Rollback(r.expect_err("error")));
        }
        Ok(r)
    })
    .or_else(|e| match e.downcast::<Rollback>() {
        Ok(Rollback(e)) => Ok(Err(e)),
        Err(e) => Err(internal(e)),
    })?
}

/// An API error that undoes the transaction it happened in.
#[derive(Debug)]
struct Rollback(IamError);

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Rollback {}

/// Access key `id` of the request's `UserName` (when given), one the API
/// may change (a template's is refused).
fn api_key(iam: &Iam, p: &Params, id: &str) -> Result<(), IamError> {
    let k = iam
        .access_keys
        .iter()
        .find(|k| k.id == id && p.get("UserName").is_none_or(|u| u == k.user))
        .ok_or_else(|| no_such(format!("The Access Key with id {id} cannot be found.")))?;
    match &k.stack {
        Some(l) => Err(unmodifiable("access key", id, l)),
        None => Ok(()),
    }
}

/// A policy document of a request, checked as IAM checks it.
fn document(p: &Params, k: &str, kind: Kind) -> Result<String, IamError> {
    let d = p.required(k)?;
    Policy::parse_text(d, kind)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", e))?;
    Ok(d.to_string())
}

fn create_role(name: &str, p: &Params) -> Answer {
    edit(name, |m, iam| {
        let n = p.name("RoleName", 64)?;
        let path = p.path()?;
        let trust = document(p, "AssumeRolePolicyDocument", Kind::Trust)?;
        if iam.role(n).is_some() {
            return Err(exists(format!("Role with name {n} already exists.")));
        }
        let r = Role {
            principal: Entity::Role.create(m, n, path),
            assume_role_policy: trust,
        };
        let out = wrap("Role", |x| role_xml(x, &r));
        m.iam.roles.push(r);
        Ok(out)
    })
}

/// IAM refuses to delete a role with policies; a function may still name
/// it (Lambda then cannot manage its ENIs: docs/iam.md).
fn delete_role(name: &str, p: &Params) -> Answer {
    edit(name, |m, _| {
        let n = p.name("RoleName", 64)?;
        holds_no_policies(principal_mut(m, Entity::Role, n)?)?;
        m.iam.roles.retain(|r| r.name != n);
        Ok(String::new())
    })
}

fn delete_user(name: &str, p: &Params) -> Answer {
    edit(name, |m, iam| {
        let n = p.name("UserName", 64)?;
        holds_no_policies(principal_mut(m, Entity::User, n)?)?;
        let u = iam.user(n).ok_or_else(|| not_found(Entity::User, n))?;
        if !u.groups.is_empty() {
            return Err(conflict(
                "Cannot delete entity, must remove users from group first.",
            ));
        }
        if iam.access_keys.iter().any(|k| k.user == n) {
            return Err(conflict(
                "Cannot delete entity, must delete access keys first.",
            ));
        }
        m.iam.users.retain(|u| u.name != n);
        Ok(String::new())
    })
}

fn create_policy(name: &str, p: &Params) -> Answer {
    edit(name, |m, iam| {
        let n = p.name("PolicyName", 128)?;
        let path = p.path()?;
        let d = document(p, "PolicyDocument", Kind::Identity)?;
        let arn = format!("arn:aws:iam::{}:policy{path}{n}", m.account);
        if iam.policy(&arn).is_some() {
            return Err(exists(format!(
                "A policy called {n} already exists. Duplicate names are not allowed."
            )));
        }
        let pol = ManagedPolicy {
            name: n.into(),
            arn,
            id: unique_id("ANPA", n),
            path,
            document: d,
            created_ms: now(),
            stack: None,
        };
        let out = wrap("Policy", |x| policy_xml(x, &pol, 0));
        m.iam.policies.push(pol);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_url_encoded_as_iam_returns_them() {
        assert_eq!(
            url_encode(r#"{"Version": "2012-10-17"}"#),
            "%7B%22Version%22%3A%20%222012-10-17%22%7D"
        );
        assert_eq!(unique_id("AROA", "r").len(), 21);
        assert!(alnum("s", 40, false).len() == 40);
    }
}
