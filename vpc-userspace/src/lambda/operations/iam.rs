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
    let code = match e {
        checks::Denied::Policy(_) => "AccessDeniedException",
        checks::Denied::InvalidKey => "UnrecognizedClientException",
    };
    ApiError::new(403, code, e.message())
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

/// A function's role after UpdateFunctionConfiguration, and whether the
/// deployment knows it.
pub(super) struct NewRole {
    role: Option<String>,
    known: bool,
}

impl NewRole {
    /// Writes it to function `id` of `m`, once the whole request is valid.
    pub(super) fn apply(self, m: &mut Model, id: &str) {
        if let Some(x) = m.functions.iter_mut().find(|x| x.id == id) {
            x.role = self.role;
            x.role_known = self.known;
        }
    }
}

/// UpdateFunctionConfiguration of `f` to the VPC settings `target` (the
/// request's, else its own): the keys carry what it will have. The role
/// is checked when the request gives a `Role`, or a `VpcConfig` that puts
/// the function in a VPC. Changes nothing: a new `Role` is returned, for
/// the caller to write once the rest of the request is valid.
pub(super) fn update(
    m: &Model,
    f: &Function,
    body: &Value,
    target: Option<&FunctionVpc>,
    access_key: Option<&str>,
) -> Result<Option<NewRole>, ApiError> {
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
    let given = role_of(body)?;
    if let Some(r) = &given {
        checks::authorize_pass_role(m, access_key, r).map_err(denied)?;
    }
    let role = given.clone().or_else(|| f.role.clone());
    let iam = Iam::of(m);
    let vpc_given = body.get("VpcConfig").is_some() && target.is_some();
    if given.is_some() || vpc_given {
        checks::check_execution_role(&iam, role.as_deref(), target.is_some(), &m.region, &account)
            .map_err(ApiError::invalid)?;
    }
    if role == f.role {
        return Ok(None);
    }
    let known = role
        .as_deref()
        .is_some_and(|r| iam.role_by_arn(r).is_some());
    Ok(Some(NewRole { role, known }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    const T: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  F: {Type: AWS::Lambda::Function, Properties: {Role: !GetAtt Basic.Arn}}
  Basic:
    Type: AWS::IAM::Role
    Properties:
      RoleName: basic
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
  Ec2:
    Type: AWS::IAM::Role
    Properties:
      RoleName: ec2
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: ec2.amazonaws.com}, Action: sts:AssumeRole}]
      ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]
"#;

    /// A new `Role` is checked whether or not the function is in a VPC,
    /// and `update` writes nothing (its caller does, once all is valid).
    #[test]
    fn a_new_role_is_checked_without_a_vpc_and_returned_not_written() {
        let m = crate::model::build(T, &HashMap::new(), "t").unwrap();
        let f = m.function("F").unwrap().clone();
        let before = m.clone();
        let ec2 = "arn:aws:iam::123456789012:role/ec2";
        let e = update(&m, &f, &json!({"Role": ec2}), None, None)
            .err()
            .expect("refused");
        assert_eq!(
            (e.status, e.kind, e.message.as_str()),
            (400, "InvalidParameterValueException", checks::CANNOT_ASSUME)
        );
        // Into a VPC with the function's own (basic) role: the ENI calls.
        let vc = FunctionVpc {
            vpc: "Vpc".into(),
            subnets: vec!["A".into()],
            groups: vec!["Sg".into()],
            ipv6_allowed_for_dual_stack: false,
        };
        let body = json!({"VpcConfig": {"SubnetIds": ["A"], "SecurityGroupIds": ["Sg"]}});
        let e = update(&m, &f, &body, Some(&vc), None)
            .err()
            .expect("refused");
        assert!(
            e.message.contains("CreateNetworkInterface"),
            "{}",
            e.message
        );
        // Leaving a VPC (empty VpcConfig) needs no check.
        assert!(update(&m, &f, &json!({"VpcConfig": {}}), None, None)
            .unwrap()
            .is_none());
        let basic = "arn:aws:iam::123456789012:role/basic";
        let r = update(&m, &f, &json!({"Role": basic}), None, None).unwrap();
        assert!(r.is_none(), "the same role");
        let other = "arn:aws:iam::123456789012:role/elsewhere";
        let r = update(&m, &f, &json!({"Role": other}), None, None)
            .unwrap()
            .expect("a new role");
        assert_eq!(m, before, "nothing written");
        let mut m = m;
        r.apply(&mut m, &f.id);
        let g = m.function("F").unwrap();
        assert_eq!((g.role.as_deref(), g.role_known), (Some(other), false));
    }
}
