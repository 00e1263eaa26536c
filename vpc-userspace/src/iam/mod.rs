//! IAM where Lambda's VPC settings need it ([docs/iam.md](../../../docs/iam.md)):
//! policy documents and AWS's evaluation logic ([`policy`], [`condition`]),
//! the deployment's roles, users, groups, policies and access keys — the
//! templates' and the IAM API's ([`store`]; AWS managed policies by ARN,
//! [`managed`]), the IAM query API on the agent's endpoint ([`api`]), STS's
//! GetCallerIdentity ([`sts`]), and what Lambda checks with them
//! ([`lambda`]).
pub mod api;
pub mod condition;
pub mod lambda;
pub mod managed;
pub mod policy;
pub mod store;
pub mod sts;

pub use store::{Iam, Store};

use crate::model::Model;
use crate::template::ModelError;

/// The model's IAM as CloudFormation and Lambda check it, once a stack's
/// model is built (over `prior`, the model in force, whose IAM API
/// entities `m` carries): every policy document the templates declare
/// must parse as IAM parses it (`MalformedPolicyDocument`, naming the
/// property), every managed policy they attach must exist (`NoSuchEntity`,
/// naming the `ManagedPolicyArns` entry), and every template function that is new, or whose `Role` or
/// `VpcConfig` changed, must have an execution role that lets Lambda
/// manage its ENIs ([`lambda::check_execution_role`]), else the error names
/// the function's `Role`. Records on each function whether the
/// deployment knows its role.
pub fn check_model(m: &mut Model, prior: Option<&Model>) -> Result<(), ModelError> {
    for (path, doc, kind) in store::template_documents(&m.stack_resources) {
        policy::Policy::parse(&doc, kind)
            .map_err(|e| ModelError::new(path, format!("MalformedPolicyDocument: {e}")))?;
    }
    let iam = Iam::of(m);
    for (path, arn) in store::template_attachments(&m.stack_resources) {
        if iam.policy(&arn).is_none() {
            return Err(ModelError::new(
                path,
                format!("NoSuchEntity: Policy {arn} does not exist or is not attachable."),
            ));
        }
    }
    for f in m.functions.iter_mut().filter(|f| f.version_of.is_none()) {
        f.role_known = f
            .role
            .as_deref()
            .is_some_and(|r| iam.role_by_arn(r).is_some());
        let unchanged = prior
            .and_then(|p| p.function(&f.id))
            .is_some_and(|p| p.role == f.role && p.vpc_config == f.vpc_config);
        if unchanged {
            continue;
        }
        let account = f.account.as_deref().unwrap_or(&m.account);
        lambda::check_execution_role(
            &iam,
            f.role.as_deref(),
            f.vpc_config.is_some(),
            &m.region,
            account,
        )
        .map_err(|e| {
            let why = if f.vpc_config.is_some() && e != lambda::CANNOT_ASSUME {
                format!(
                    " (role {}; the function's VpcConfig needs {} from its policies, as AWSLambdaVPCAccessExecutionRole grants)",
                    f.role.as_deref().unwrap_or_default(),
                    lambda::ENI_ACTIONS.join(", ")
                )
            } else {
                String::new()
            };
            ModelError::new(
                format!("Resources.{}.Properties.Role", f.id),
                format!("InvalidParameterValueException: {e}{why}"),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
