//! The operations roles, users and groups share, one implementation for
//! the three ([`Entity`]): their inline policies (Put/Get/Delete/List
//! `{Role,User,Group}Policy`), their attached managed policies
//! (Attach/Detach/ListAttached), and groups' membership (CreateGroup,
//! GetGroup, ListGroups, DeleteGroup, AddUserToGroup,
//! RemoveUserFromGroup, ListGroupsForUser).
use super::{
    conflict, edit, exists, no_such, now, read, unique_id, unmodifiable, Answer, IamError, Params,
};
use crate::cloudformation::xml::Xml;
use crate::iam::store::{from_template, Group, Iam, ManagedPolicy, Principal, Store, User};
use crate::model::Model;

/// An identity that holds policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    Role,
    User,
    Group,
}

impl Entity {
    /// The entity an action names (`PutUserPolicy`: a user).
    fn of(action: &str) -> Entity {
        if action.contains("Role") {
            Entity::Role
        } else if action.contains("User") {
            Entity::User
        } else {
            Entity::Group
        }
    }

    /// As IAM's messages name it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Entity::Role => "role",
            Entity::User => "user",
            Entity::Group => "group",
        }
    }

    /// The parameter naming it: `RoleName`, ...
    fn param(self) -> &'static str {
        match self {
            Entity::Role => "RoleName",
            Entity::User => "UserName",
            Entity::Group => "GroupName",
        }
    }

    /// Its name in a request, checked as IAM checks it.
    pub(super) fn name(self, p: &Params) -> Result<&str, IamError> {
        let max = if self == Entity::Group { 128 } else { 64 };
        p.name(self.param(), max)
    }

    fn find<'a>(self, s: &'a Store, n: &str) -> Option<&'a Principal> {
        match self {
            Entity::Role => s.role(n).map(|r| &r.principal),
            Entity::User => s.user(n).map(|u| &u.principal),
            Entity::Group => s.group(n).map(|g| &g.principal),
        }
    }

    fn find_mut<'a>(self, s: &'a mut Store, n: &str) -> Option<&'a mut Principal> {
        match self {
            Entity::Role => s
                .roles
                .iter_mut()
                .find(|r| r.name == n)
                .map(|r| &mut r.principal),
            Entity::User => s
                .users
                .iter_mut()
                .find(|u| u.name == n)
                .map(|u| &mut u.principal),
            Entity::Group => s
                .groups
                .iter_mut()
                .find(|g| g.name == n)
                .map(|g| &mut g.principal),
        }
    }

    /// A new one made through the API: IAM's ARN and unique id.
    pub(super) fn create(self, m: &Model, n: &str, path: String) -> Principal {
        let prefix = match self {
            Entity::Role => "AROA",
            Entity::User => "AIDA",
            Entity::Group => "AGPA",
        };
        Principal {
            name: n.into(),
            arn: format!("arn:aws:iam::{}:{}{path}{n}", m.account, self.label()),
            id: unique_id(prefix, n),
            path,
            created_ms: now(),
            ..Default::default()
        }
    }
}

pub(super) fn not_found(e: Entity, n: &str) -> IamError {
    no_such(format!("The {} with name {n} cannot be found.", e.label()))
}

/// A role, user or group of the deployment (a template's or the API's).
pub(super) fn principal<'a>(iam: &'a Iam, e: Entity, n: &str) -> Result<&'a Principal, IamError> {
    e.find(iam, n).ok_or_else(|| not_found(e, n))
}

/// One of the API's to change: a template's is refused
/// (`UnmodifiableEntity`: change the template).
pub(super) fn principal_mut<'a>(
    m: &'a mut Model,
    e: Entity,
    n: &str,
) -> Result<&'a mut Principal, IamError> {
    if let Some(t) = e.find(&from_template(&m.stack_resources), n) {
        return Err(unmodifiable(
            e.label(),
            n,
            t.stack.as_deref().unwrap_or_default(),
        ));
    }
    e.find_mut(&mut m.iam, n).ok_or_else(|| not_found(e, n))
}

/// IAM refuses to delete an identity that still holds policies.
pub(super) fn holds_no_policies(p: &Principal) -> Result<(), IamError> {
    if !p.inline.is_empty() {
        return Err(conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !p.attached.is_empty() {
        return Err(conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    Ok(())
}

/// An API user to change, as a user (its groups).
fn user_mut<'a>(m: &'a mut Model, n: &str) -> Result<&'a mut User, IamError> {
    principal_mut(m, Entity::User, n)?;
    m.iam
        .users
        .iter_mut()
        .find(|u| u.name == n)
        .ok_or_else(|| not_found(Entity::User, n))
}

fn group_xml(x: &mut Xml, g: &Group) {
    x.leaf("Path", &g.path)
        .leaf("GroupName", &g.name)
        .leaf("GroupId", &g.id)
        .leaf("Arn", &g.arn)
        .time("CreateDate", g.created_ms);
}

/// The operations of this module; `None` for any other action.
pub(super) fn dispatch(name: &str, action: &str, p: &Params) -> Option<Answer> {
    let e = Entity::of(action);
    Some(match action {
        "PutRolePolicy" | "PutUserPolicy" | "PutGroupPolicy" => edit(name, |m, _| {
            let pn = p.name("PolicyName", 128)?.to_string();
            let d = super::document(p, "PolicyDocument", crate::iam::policy::Kind::Identity)?;
            principal_mut(m, e, e.name(p)?)?.inline.insert(pn, d);
            Ok(String::new())
        }),
        "GetRolePolicy" | "GetUserPolicy" | "GetGroupPolicy" => read(name, |iam, _| {
            let who = principal(iam, e, e.name(p)?)?;
            let pn = p.name("PolicyName", 128)?;
            let d = who.inline.get(pn).ok_or_else(|| {
                no_such(format!(
                    "The {} policy with name {pn} cannot be found.",
                    e.label()
                ))
            })?;
            let mut x = Xml::default();
            x.leaf(e.param(), &who.name)
                .leaf("PolicyName", pn)
                .leaf("PolicyDocument", &super::url_encode(d));
            Ok(x.0)
        }),
        "DeleteRolePolicy" | "DeleteUserPolicy" | "DeleteGroupPolicy" => edit(name, |m, _| {
            let who = principal_mut(m, e, e.name(p)?)?;
            let pn = p.name("PolicyName", 128)?;
            who.inline.remove(pn).ok_or_else(|| {
                no_such(format!(
                    "The {} policy with name {pn} cannot be found.",
                    e.label()
                ))
            })?;
            Ok(String::new())
        }),
        "ListRolePolicies" | "ListUserPolicies" | "ListGroupPolicies" => read(name, |iam, _| {
            let who = principal(iam, e, e.name(p)?)?;
            let names: Vec<&String> = who.inline.keys().collect();
            let mut x = Xml::default();
            x.members("PolicyNames", &names, |x, n| {
                x.0.push_str(&crate::cloudformation::xml::escape(n));
            })
            .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "AttachRolePolicy" | "AttachUserPolicy" | "AttachGroupPolicy" => edit(name, |m, iam| {
            let arn = p.required("PolicyArn")?.to_string();
            if iam.policy(&arn).is_none() {
                return Err(no_such(format!(
                    "Policy {arn} does not exist or is not attachable."
                )));
            }
            let attached = &mut principal_mut(m, e, e.name(p)?)?.attached;
            if !attached.contains(&arn) {
                attached.push(arn);
            }
            Ok(String::new())
        }),
        "DetachRolePolicy" | "DetachUserPolicy" | "DetachGroupPolicy" => edit(name, |m, _| {
            let arn = p.required("PolicyArn")?;
            let who = principal_mut(m, e, e.name(p)?)?;
            let before = who.attached.len();
            who.attached.retain(|a| a != arn);
            if who.attached.len() == before {
                return Err(no_such(format!("Policy {arn} was not found.")));
            }
            Ok(String::new())
        }),
        "ListAttachedRolePolicies" | "ListAttachedUserPolicies" | "ListAttachedGroupPolicies" => {
            read(name, |iam, _| {
                let who = principal(iam, e, e.name(p)?)?;
                let attached: Vec<ManagedPolicy> =
                    who.attached.iter().filter_map(|a| iam.policy(a)).collect();
                let mut x = Xml::default();
                x.members("AttachedPolicies", &attached, |x, a| {
                    x.leaf("PolicyName", &a.name).leaf("PolicyArn", &a.arn);
                })
                .leaf("IsTruncated", "false");
                Ok(x.0)
            })
        }
        "CreateGroup" => edit(name, |m, iam| {
            let n = Entity::Group.name(p)?;
            if iam.group(n).is_some() {
                return Err(exists(format!("Group with name {n} already exists.")));
            }
            let g = Group {
                principal: Entity::Group.create(m, n, p.path()?),
            };
            let mut x = Xml::default();
            x.open("Group");
            group_xml(&mut x, &g);
            x.close("Group");
            m.iam.groups.push(g);
            Ok(x.0)
        }),
        "GetGroup" => read(name, |iam, _| {
            let n = Entity::Group.name(p)?;
            let g = iam.group(n).ok_or_else(|| not_found(Entity::Group, n))?;
            let users: Vec<&User> = iam
                .users
                .iter()
                .filter(|u| u.groups.iter().any(|x| x == n))
                .collect();
            let mut x = Xml::default();
            x.open("Group");
            group_xml(&mut x, g);
            x.close("Group")
                .members("Users", &users, |x, u| super::user_xml(x, u))
                .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "ListGroups" => read(name, |iam, _| {
            let mut x = Xml::default();
            x.members("Groups", &iam.groups, group_xml)
                .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "ListGroupsForUser" => read(name, |iam, _| {
            let n = Entity::User.name(p)?;
            let u = iam.user(n).ok_or_else(|| not_found(Entity::User, n))?;
            let groups: Vec<&Group> = u.groups.iter().filter_map(|g| iam.group(g)).collect();
            let mut x = Xml::default();
            x.members("Groups", &groups, |x, g| group_xml(x, g))
                .leaf("IsTruncated", "false");
            Ok(x.0)
        }),
        "DeleteGroup" => edit(name, |m, iam| {
            let n = Entity::Group.name(p)?;
            holds_no_policies(principal_mut(m, Entity::Group, n)?)?;
            if iam.users.iter().any(|u| u.groups.iter().any(|g| g == n)) {
                return Err(conflict(
                    "Cannot delete entity, must remove users from group first.",
                ));
            }
            m.iam.groups.retain(|g| g.name != n);
            Ok(String::new())
        }),
        "AddUserToGroup" => edit(name, |m, iam| {
            let g = principal(iam, Entity::Group, Entity::Group.name(p)?)?
                .name
                .clone();
            let u = user_mut(m, Entity::User.name(p)?)?;
            if !u.groups.contains(&g) {
                u.groups.push(g);
            }
            Ok(String::new())
        }),
        "RemoveUserFromGroup" => edit(name, |m, iam| {
            let g = principal(iam, Entity::Group, Entity::Group.name(p)?)?
                .name
                .clone();
            let n = Entity::User.name(p)?;
            let u = user_mut(m, n)?;
            if !u.groups.contains(&g) {
                return Err(no_such(format!(
                    "The user with name {n} cannot be found in group {g}."
                )));
            }
            u.groups.retain(|x| *x != g);
            Ok(String::new())
        }),
        _ => return None,
    })
}
