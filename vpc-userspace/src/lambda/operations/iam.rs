//! IAM's part of CreateFunction and UpdateFunctionConfiguration
//! ([`crate::iam::lambda`]): the caller's identity policies with the VPC
//! condition keys and `iam:PassRole` on the role it gives (403
//! `AccessDeniedException`), then the execution role (400
//! `InvalidParameterValueException`).
use serde_json::Value;

use crate::{
    iam::{lambda as checks, Iam},
    lambda::lifecycle::ApiError,
    model::{Function, FunctionVpc, Model},
};

fn denied(e: checks::Denied) -> ApiError {
    ApiError::new(403, "AccessDeniedException", e.0)
}

/// A request's `Role`: `None` when it has none.
fn role_of(body: &Value) -> Result<Option<String>, ApiError> {
    match &body["Role"] {
        Value::Null => Ok(None),
        Value::String(r) => Ok(Some(r.clone())),
        _ => Err(ApiError::invalid("Role: a role's ARN expected")),
    }
}

/// CreateFunction of `fname` in `account` (`None`: the owner's) with the
/// VPC settings `vc`: its role and whether the deployment knows it.
pub(super) fn create(
    m: &Model,
    body: &Value,
    account: Option<&str>,
    fname: &str,
    vc: Option<&FunctionVpc>,
    access_key: Option<&str>,
) -> Result<(Option<String>, bool), ApiError> {
    let account = account.unwrap_or(&m.account);
    let arn = format!("arn:aws:lambda:{}:{account}:function:{fname}", m.region);
    checks::authorize(m, access_key, "lambda:CreateFunction", &arn, vc).map_err(denied)?;
    let role = role_of(body)?;
    if let Some(r) = &role {
        checks::authorize_pass_role(m, access_key, r).map_err(denied)?;
    }
    let iam = Iam::of(m);
    checks::check_execution_role(&iam, role.as_deref(), vc.is_some(), &m.region, account)
        .map_err(ApiError::invalid)?;
    let known = role
        .as_deref()
        .is_some_and(|r| iam.role_by_arn(r).is_some());
    Ok((role, known))
}

/// UpdateFunctionConfiguration of `f` to the VPC settings `target` (the
/// request's, else its own): the keys carry what it will have. The role
/// is checked when the request gives a `VpcConfig` or a `Role` and the
/// function ends up in a VPC; a new `Role` is written to `m`.
pub(super) fn update(
    m: &mut Model,
    f: &Function,
    body: &Value,
    target: Option<&FunctionVpc>,
    access_key: Option<&str>,
) -> Result<(), ApiError> {
    let account = f.account.clone().unwrap_or_else(|| m.account.clone());
    let arn = format!("arn:aws:lambda:{}:{account}:function:{}", m.region, f.name);
    checks::authorize(
        m,
        access_key,
        "lambda:UpdateFunctionConfiguration",
        &arn,
        target,
    )
    .map_err(denied)?;
    let role = match role_of(body)? {
        None => f.role.clone(),
        Some(r) => {
            checks::authorize_pass_role(m, access_key, &r).map_err(denied)?;
            Some(r)
        }
    };
    let iam = Iam::of(m);
    if target.is_some() && (body.get("VpcConfig").is_some() || body.get("Role").is_some()) {
        checks::check_execution_role(&iam, role.as_deref(), true, &m.region, &account)
            .map_err(ApiError::invalid)?;
    }
    if role != f.role {
        let known = role
            .as_deref()
            .is_some_and(|r| iam.role_by_arn(r).is_some());
        if let Some(x) = m.functions.iter_mut().find(|x| x.id == f.id) {
            x.role = role;
            x.role_known = known;
        }
    }
    Ok(())
}
