//! API tokens: each user lists, creates and revokes their own from the signed-in web UI
//! (never with a token: a leaked token must not mint others); admins list and revoke
//! anyone's.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};

use super::session::JsonBody;
use crate::accounts::{self, NewToken, TokenRow};
use crate::audit;
use crate::auth::{Auth, Via};
use crate::error::{PortalError, Result};
use crate::state::AppState;

fn require_cookie(auth: &Auth) -> Result<()> {
    if auth.via == Via::Cookie {
        Ok(())
    } else {
        Err(PortalError::Forbidden)
    }
}

pub async fn mine(State(st): State<AppState>, auth: Auth) -> Result<Json<Vec<TokenRow>>> {
    require_cookie(&auth)?;
    let uid = auth.user.id;
    Ok(Json(
        st.db
            .run(move |c| accounts::list_api_tokens(c, Some(uid)))
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    label: String,
    #[serde(default)]
    expires_days: Option<u32>,
    #[serde(default)]
    admin: bool,
}

#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    row: TokenRow,
    /// The token itself, shown this once.
    token: String,
}

pub async fn create(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<Created>)> {
    require_cookie(&auth)?;
    let uid = auth.user.id;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let (row, token) = st
        .db
        .run(move |c| {
            let t = NewToken {
                label: req.label,
                expires_days: req.expires_days,
                admin: req.admin,
            };
            let (row, token) = accounts::create_api_token(c, uid, &t)?;
            audit::record(c, &actor, "token_created", &detail(&row), ip.as_deref())?;
            Ok((row, token))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Created { row, token })))
}

/// Ids, scope and expiry only: a label is the user's free text and stays out of the log.
fn detail(row: &TokenRow) -> String {
    let mut d = format!("user={} token={}", row.username, row.id);
    if row.admin {
        d.push_str(" admin=true");
    }
    if let Some(e) = row.expires_at {
        d.push_str(&format!(" expires_at={e}"));
    }
    d
}

pub async fn revoke_mine(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    require_cookie(&auth)?;
    revoke(&st, &auth, id, Some(auth.user.id)).await
}

async fn revoke(st: &AppState, auth: &Auth, id: i64, owner: Option<i64>) -> Result<StatusCode> {
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    st.db
        .run(move |c| {
            let row = accounts::revoke_api_token(c, id, owner)?;
            audit::record(c, &actor, "token_revoked", &detail(&row), ip.as_deref())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct AdminQuery {
    #[serde(default)]
    user: Option<String>,
}

pub async fn all(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<AdminQuery>,
) -> Result<Json<Vec<TokenRow>>> {
    auth.require_admin()?;
    Ok(Json(
        st.db
            .run(move |c| {
                let uid = match &q.user {
                    Some(name) => Some(accounts::user_by_name(c, name)?.id),
                    None => None,
                };
                accounts::list_api_tokens(c, uid)
            })
            .await?,
    ))
}

pub async fn revoke_any(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    auth.require_admin()?;
    revoke(&st, &auth, id, None).await
}
