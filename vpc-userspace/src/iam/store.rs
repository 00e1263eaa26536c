//! The deployment's IAM: roles, users, groups, managed policies and access
//! keys. Two sources, one view ([`Iam::of`]):
//!
//! * what the templates declare (`AWS::IAM::Role`, `User`, `Group`,
//!   `AccessKey`, `ManagedPolicy`, `Policy`, `RolePolicy`, `UserPolicy`,
//!   `GroupPolicy`, `UserToGroupAddition`), read from the model's kept
//!   resources (`Model::stack_resources`, their properties resolved): they
//!   are the stacks', and the IAM API refuses to change them
//!   (`UnmodifiableEntity`);
//! * what the IAM API created ([`Store`], `Model::iam`), kept in the
//!   desired state with the model and carried over every `vpc apply`.
//!
//! AWS managed policies are known by ARN ([`super::managed`]).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::managed;
use super::policy::{Kind, Policy};
use crate::model::{Model, StackResource};

/// What roles, users and groups share: a name under a path, their ids,
/// and the identity policies they hold (inline and attached).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    /// Inline policies: name -> document (JSON text).
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// Managed policies attached, by ARN.
    #[serde(default)]
    pub attached: Vec<String>,
    pub created_ms: u64,
    /// The template resource that declares it (`None`: the IAM API's).
    #[serde(default)]
    pub stack: Option<String>,
}

/// A role (`AssumeRolePolicyDocument` as JSON text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Role {
    #[serde(flatten)]
    pub principal: Principal,
    pub assume_role_policy: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(flatten)]
    pub principal: Principal,
    /// Its groups, by name.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    #[serde(flatten)]
    pub principal: Principal,
}

// A role, user or group reads as its principal (`r.name`, `u.inline`).
macro_rules! principal_deref {
    ($($t:ty),*) => {$(
        impl std::ops::Deref for $t {
            type Target = Principal;
            fn deref(&self) -> &Principal {
                &self.principal
            }
        }
        impl std::ops::DerefMut for $t {
            fn deref_mut(&mut self) -> &mut Principal {
                &mut self.principal
            }
        }
    )*};
}
principal_deref!(Role, User, Group);

/// A customer managed policy (one version, `v1`), or an AWS managed one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    pub document: String,
    pub created_ms: u64,
    #[serde(default)]
    pub stack: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub user: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created_ms: u64,
    #[serde(default)]
    pub stack: Option<String>,
}

/// A request signed with an access key that is `Inactive` or was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKey;

impl InvalidKey {
    /// AWS's words.
    pub const MESSAGE: &'static str = "The security token included in the request is invalid.";
}

/// What the IAM API created (in the desired model: `Model::iam`); with
/// the templates' entities, the deployment's IAM ([`Iam::of`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Store {
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub policies: Vec<ManagedPolicy>,
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
    /// Access key ids deleted through the IAM API: a request signed with
    /// one is refused (`UnrecognizedClientException`), as at AWS, rather
    /// than taken for an unknown key's (the root's).
    #[serde(default)]
    pub deleted_access_keys: Vec<String>,
}

/// The deployment's IAM: the templates' entities and the API's.
pub type Iam = Store;

impl Store {
    /// The IAM of `m`: its templates' IAM resources, then the API's.
    pub fn of(m: &Model) -> Iam {
        let mut iam = from_template(&m.stack_resources);
        let api = m.iam.clone();
        iam.roles.extend(api.roles);
        iam.users.extend(api.users);
        iam.groups.extend(api.groups);
        iam.policies.extend(api.policies);
        iam.access_keys.extend(api.access_keys);
        iam.deleted_access_keys.extend(api.deleted_access_keys);
        iam
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// A role by ARN (its path included), as a function's `Role` names it.
    pub fn role_by_arn(&self, arn: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.arn == arn)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The user an access key id belongs to.
    pub fn user_of_key(&self, key: &str) -> Option<&User> {
        let k = self.access_keys.iter().find(|k| k.id == key)?;
        self.user(&k.user)
    }

    /// Who signs with access key `key`: its user; `Ok(None)` for a key
    /// the deployment never knew (the account's root: any credentials do
    /// here); `Err(InvalidKey)` for one that is `Inactive` or was deleted
    /// through the IAM API, refused as AWS refuses it.
    pub fn signer(&self, key: &str) -> Result<Option<&User>, InvalidKey> {
        let inactive = self
            .access_keys
            .iter()
            .any(|k| k.id == key && k.status != "Active");
        if inactive || self.deleted_access_keys.iter().any(|k| k == key) {
            return Err(InvalidKey);
        }
        Ok(self.user_of_key(key))
    }

    /// A managed policy by ARN: the account's, or AWS's.
    pub fn policy(&self, arn: &str) -> Option<ManagedPolicy> {
        self.policies
            .iter()
            .find(|p| p.arn == arn)
            .cloned()
            .or_else(|| managed::policy(arn))
    }

    /// Every policy document that applies to an identity with these inline
    /// and attached policies, parsed (a document that does not parse
    /// grants nothing).
    fn documents(&self, inline: &BTreeMap<String, String>, attached: &[String]) -> Vec<Policy> {
        inline
            .values()
            .cloned()
            .chain(
                attached
                    .iter()
                    .filter_map(|a| self.policy(a).map(|p| p.document)),
            )
            .filter_map(|d| Policy::parse_text(&d, Kind::Identity).ok())
            .collect()
    }

    /// A role's identity policies: inline and attached.
    pub fn role_policies(&self, r: &Role) -> Vec<Policy> {
        self.documents(&r.inline, &r.attached)
    }

    /// A user's identity policies: its own and its groups'.
    pub fn user_policies(&self, u: &User) -> Vec<Policy> {
        let mut out = self.documents(&u.inline, &u.attached);
        for g in u.groups.iter().filter_map(|g| self.group(g)) {
            out.extend(self.documents(&g.inline, &g.attached));
        }
        out
    }

    /// Managed policy `arn`'s attachments (roles, users, groups).
    pub fn attachments(&self, arn: &str) -> usize {
        self.roles
            .iter()
            .filter(|r| r.attached.iter().any(|a| a == arn))
            .count()
            + self
                .users
                .iter()
                .filter(|u| u.attached.iter().any(|a| a == arn))
                .count()
            + self
                .groups
                .iter()
                .filter(|g| g.attached.iter().any(|a| a == arn))
                .count()
    }
}

/// A policy document as IAM keeps it: JSON text (a template may give a
/// value or text).
pub fn document_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn attr(r: &StackResource, k: &str) -> String {
    r.attributes
        .get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `Policies: [{PolicyName, PolicyDocument}]` of a role, user or group.
fn inline_policies(p: &Value) -> BTreeMap<String, String> {
    p.get("Policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| {
            Some((
                x.get("PolicyName")?.as_str()?.to_string(),
                document_text(x.get("PolicyDocument")?),
            ))
        })
        .collect()
}

/// The IAM entities the templates declare, from the model's kept
/// resources (their properties resolved).
pub fn from_template(resources: &[StackResource]) -> Store {
    let mut s = Store::default();
    let path = |p: &Value| {
        p.get("Path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string()
    };
    // Identities and managed policies first, then what attaches to them.
    for r in resources {
        let p = &r.properties;
        let stack = Some(r.logical_id.clone());
        let principal = |id: String| Principal {
            name: r.physical_id.clone(),
            path: path(p),
            arn: attr(r, "Arn"),
            id,
            inline: inline_policies(p),
            attached: strs(p.get("ManagedPolicyArns")),
            created_ms: 0,
            stack: stack.clone(),
        };
        match r.resource_type.as_str() {
            "AWS::IAM::Role" => s.roles.push(Role {
                principal: principal(attr(r, "RoleId")),
                assume_role_policy: p
                    .get("AssumeRolePolicyDocument")
                    .map(document_text)
                    .unwrap_or_default(),
            }),
            "AWS::IAM::User" => s.users.push(User {
                principal: principal(format!("AIDA{}", crate::model::fnv1a(&r.logical_id))),
                groups: strs(p.get("Groups")),
            }),
            "AWS::IAM::Group" => s.groups.push(Group {
                principal: principal(format!("AGPA{}", crate::model::fnv1a(&r.logical_id))),
            }),
            "AWS::IAM::ManagedPolicy" => s.policies.push(ManagedPolicy {
                name: r
                    .physical_id
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                path: path(p),
                arn: r.physical_id.clone(),
                id: attr(r, "PolicyId"),
                document: p
                    .get("PolicyDocument")
                    .map(document_text)
                    .unwrap_or_default(),
                created_ms: 0,
                stack,
            }),
            "AWS::IAM::AccessKey" => s.access_keys.push(AccessKey {
                id: r.physical_id.clone(),
                secret: attr(r, "SecretAccessKey"),
                user: p
                    .get("UserName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                status: p
                    .get("Status")
                    .and_then(Value::as_str)
                    .unwrap_or("Active")
                    .to_string(),
                created_ms: 0,
                stack,
            }),
            _ => {}
        }
    }
    for r in resources {
        let p = &r.properties;
        let doc = || {
            Some((
                p.get("PolicyName")?.as_str()?.to_string(),
                document_text(p.get("PolicyDocument")?),
            ))
        };
        match r.resource_type.as_str() {
            // An inline policy of each role, user and group it names.
            "AWS::IAM::Policy" => {
                let Some((name, d)) = doc() else { continue };
                for n in strs(p.get("Roles")) {
                    if let Some(x) = s.roles.iter_mut().find(|x| x.name == n) {
                        x.inline.insert(name.clone(), d.clone());
                    }
                }
                for n in strs(p.get("Users")) {
                    if let Some(x) = s.users.iter_mut().find(|x| x.name == n) {
                        x.inline.insert(name.clone(), d.clone());
                    }
                }
                for n in strs(p.get("Groups")) {
                    if let Some(x) = s.groups.iter_mut().find(|x| x.name == n) {
                        x.inline.insert(name.clone(), d.clone());
                    }
                }
            }
            "AWS::IAM::RolePolicy" | "AWS::IAM::UserPolicy" | "AWS::IAM::GroupPolicy" => {
                let Some((name, d)) = doc() else { continue };
                let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
                let (role, user, group) = (get("RoleName"), get("UserName"), get("GroupName"));
                if let Some(x) = s.roles.iter_mut().find(|x| x.name == role) {
                    x.inline.insert(name.clone(), d.clone());
                }
                if let Some(x) = s.users.iter_mut().find(|x| x.name == user) {
                    x.inline.insert(name.clone(), d.clone());
                }
                if let Some(x) = s.groups.iter_mut().find(|x| x.name == group) {
                    x.inline.insert(name, d);
                }
            }
            // Attached to each role, user and group it names.
            "AWS::IAM::ManagedPolicy" => {
                let arn = &r.physical_id;
                for n in strs(p.get("Roles")) {
                    if let Some(x) = s.roles.iter_mut().find(|x| x.name == n) {
                        x.attached.push(arn.clone());
                    }
                }
                for n in strs(p.get("Users")) {
                    if let Some(x) = s.users.iter_mut().find(|x| x.name == n) {
                        x.attached.push(arn.clone());
                    }
                }
                for n in strs(p.get("Groups")) {
                    if let Some(x) = s.groups.iter_mut().find(|x| x.name == n) {
                        x.attached.push(arn.clone());
                    }
                }
            }
            "AWS::IAM::UserToGroupAddition" => {
                let g = p
                    .get("GroupName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for n in strs(p.get("Users")) {
                    if let Some(x) = s.users.iter_mut().find(|x| x.name == n) {
                        x.groups.push(g.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// Every managed policy the templates' roles, users and groups attach
/// (`ManagedPolicyArns`), with the path of its entry
/// (`Resources.X.Properties.ManagedPolicyArns[0]`), for the model's check:
/// one that does not resolve fails the stack rather than grant (or deny)
/// nothing.
pub fn template_attachments(resources: &[StackResource]) -> Vec<(String, String)> {
    let mut out = vec![];
    for r in resources {
        if !matches!(
            r.resource_type.as_str(),
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group"
        ) {
            continue;
        }
        let arns = match r.properties.get("ManagedPolicyArns") {
            Some(Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
            None => continue,
        };
        for (i, a) in arns.iter().enumerate() {
            out.push((
                format!(
                    "Resources.{}.Properties.ManagedPolicyArns[{i}]",
                    r.logical_id
                ),
                a.as_str().map_or_else(|| a.to_string(), str::to_string),
            ));
        }
    }
    out
}

/// Every policy document the templates declare, with the path of its
/// property (`Resources.X.Properties.PolicyDocument`, ...), for the
/// model's check: a document IAM would refuse fails the stack, naming it.
pub fn template_documents(resources: &[StackResource]) -> Vec<(String, Value, Kind)> {
    let mut out = vec![];
    for r in resources {
        if !r.resource_type.starts_with("AWS::IAM::") {
            continue;
        }
        let base = format!("Resources.{}.Properties", r.logical_id);
        let p = &r.properties;
        if let Some(d) = p.get("AssumeRolePolicyDocument") {
            out.push((
                format!("{base}.AssumeRolePolicyDocument"),
                d.clone(),
                Kind::Trust,
            ));
        }
        if let Some(d) = p.get("PolicyDocument") {
            out.push((format!("{base}.PolicyDocument"), d.clone(), Kind::Identity));
        }
        for (i, x) in p
            .get("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(d) = x.get("PolicyDocument") {
                out.push((
                    format!("{base}.Policies[{i}].PolicyDocument"),
                    d.clone(),
                    Kind::Identity,
                ));
            }
        }
    }
    out
}
