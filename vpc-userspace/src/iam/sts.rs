//! STS on the agent's endpoint (requests signed for `sts`):
//! GetCallerIdentity, which SDK code and tools ask for the account (moto's
//! tests, the CDK's environment lookup, `aws sts get-caller-identity`),
//! answered in STS's XML namespace as the deployment's IAM sees the caller
//! ([`Iam::signer`]): an access key of one of its users is that user (its
//! id, ARN and the deployment's account); a key it never knew is the
//! account's root (a 12-digit key id names that account, as everywhere
//! in the agent); an `Inactive` or deleted key is refused, 403
//! `InvalidClientTokenId`. Any other STS action is `InvalidAction`: no
//! role is assumed here.
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::StatusCode,
    response::Response,
    Router,
};

use super::store::{Iam, InvalidKey};
use crate::agent::request::{query_value, Caller};
use crate::cloudformation::xml::{self, Xml};
use crate::state::State as DeploymentState;

/// STS's XML namespace.
pub const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The router of deployment `name`'s STS.
pub fn router(name: &str) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(name.to_string()))
}

/// Who the caller is: `(UserId, Account, Arn)`.
pub fn caller_identity(
    iam: &Iam,
    account: &str,
    caller: &Caller,
) -> Result<(String, String, String), InvalidKey> {
    let user = match caller.access_key.as_deref() {
        Some(k) => iam.signer(k)?,
        None => None,
    };
    Ok(match user {
        Some(u) => (u.id.clone(), account.to_string(), u.arn.clone()),
        None => {
            let a = caller.account().unwrap_or_else(|| account.to_string());
            (a.clone(), a.clone(), format!("arn:aws:iam::{a}:root"))
        }
    })
}

async fn handle(State(name): State<Arc<String>>, req: Request) -> Response {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let action = query_value(parts.uri.query().unwrap_or(""), "Action")
        .or_else(|| query_value(&String::from_utf8_lossy(&body), "Action"))
        .unwrap_or_default();
    let id = xml::request_id("sts");
    let error = |status: StatusCode, code: &str, message: &str| {
        xml::reply(status, xml::error_in(NS, "Sender", code, message, &id), &id)
    };
    if action != "GetCallerIdentity" {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("Could not find operation {action} for version 2011-06-15 (this endpoint serves STS's GetCallerIdentity only: docs/iam.md)"),
        );
    }
    let name = name.to_string();
    let who = tokio::task::spawn_blocking(move || {
        let s = DeploymentState::load(&name)?;
        Ok::<_, anyhow::Error>(caller_identity(
            &Iam::of(&s.model),
            &s.model.account,
            &caller,
        ))
    })
    .await;
    match who {
        Ok(Ok(Ok((user_id, account, arn)))) => {
            let mut x = Xml::default();
            x.leaf("UserId", &user_id)
                .leaf("Account", &account)
                .leaf("Arn", &arn);
            let text = xml::response_in(NS, &action, Some(&x.0), &id);
            xml::reply(StatusCode::OK, text, &id)
        }
        Ok(Ok(Err(InvalidKey))) => error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            InvalidKey::MESSAGE,
        ),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            &format!("{e:#}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::store::{AccessKey, Principal, User};

    #[test]
    fn a_users_key_is_the_user_an_unknown_one_the_root_a_deleted_one_refused() {
        let mut iam = Iam::default();
        iam.users.push(User {
            principal: Principal {
                name: "dev".into(),
                id: "AIDAEXAMPLE".into(),
                arn: "arn:aws:iam::123456789012:user/dev".into(),
                ..Default::default()
            },
            ..Default::default()
        });
        iam.access_keys.push(AccessKey {
            id: "AKIADEV".into(),
            user: "dev".into(),
            status: "Active".into(),
            ..Default::default()
        });
        let caller = |k: &str| Caller {
            access_key: Some(k.into()),
            ..Default::default()
        };
        let who = |iam: &Iam, k: &str| caller_identity(iam, "123456789012", &caller(k));
        assert_eq!(
            who(&iam, "AKIADEV").unwrap(),
            (
                "AIDAEXAMPLE".into(),
                "123456789012".into(),
                "arn:aws:iam::123456789012:user/dev".into()
            )
        );
        assert_eq!(
            who(&iam, "test").unwrap().2,
            "arn:aws:iam::123456789012:root"
        );
        assert_eq!(who(&iam, "210987654321").unwrap().1, "210987654321");
        iam.deleted_access_keys.push("AKIAGONE".into());
        assert_eq!(who(&iam, "AKIAGONE"), Err(InvalidKey));
        iam.access_keys[0].status = "Inactive".into();
        assert_eq!(who(&iam, "AKIADEV"), Err(InvalidKey));
    }
}
