//! Sign in, sign out, who am I, change my password.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::accounts::{self, User};
use crate::audit;
use crate::auth::{self, Auth, COOKIE, Via, client_addr, client_ip};
use crate::error::PortalError;
use crate::state::AppState;
use crate::throttle;

/// `Json` whose refusals are the portal's own `bad_request` errors.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = PortalError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(PortalError::TooLarge(
                "the request body is too large".into(),
            )),
            Err(e) => Err(PortalError::BadRequest(e.body_text())),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

pub async fn login(State(st): State<AppState>, req: Request) -> Result<Response, PortalError> {
    let (parts, body) = req.into_parts();
    // Login CSRF: a sign-in form on another site must not sign the browser into our portal.
    if !auth::same_origin_parts(&parts) {
        return Err(PortalError::Csrf);
    }
    let ip = client_ip(&parts.extensions);
    let addr = client_addr(&parts.extensions);
    let JsonBody(Login { username, password }) =
        JsonBody::from_request(Request::from_parts(parts, body), &st).await?;
    // The account and its hash are read before the attempt is reserved; the hash is checked
    // after, on the hashing pool, without the database lock.
    let name = username.clone();
    let (creds, usual) = st
        .db
        .run(move |c| {
            let creds = accounts::credentials(c, &name)?;
            let usual = match addr {
                Some(a) => accounts::usual_address(c, &name, a, throttle::USUAL_ADDRESS_DAYS)?,
                None => false,
            };
            Ok((creds, usual))
        })
        .await?;
    // Only an existing account's name is ever recorded (a password typed into the name
    // field must not end up in the log).
    let actor = creds
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |(u, _, _)| u.username.clone());
    let attempt = match st.throttle.begin(addr, &username, usual) {
        Ok(a) => a,
        Err(refused) => {
            if refused.first {
                audit_async(&st, actor, "login_throttled", ip).await?;
            }
            return Err(PortalError::Throttled(refused.wait_secs));
        }
    };
    let (hash, ok_user) = match creds {
        Some((u, h, disabled)) => (h, (!disabled).then_some(u)),
        None => (st.hasher.decoy().await?, None),
    };
    // Verified even for unknown or disabled accounts: same time either way.
    let good = st.hasher.verify(password, hash).await;
    let Some(user) = ok_user.filter(|_| good) else {
        attempt.failed();
        audit_async(&st, actor, "login_failed", ip).await?;
        return Err(PortalError::BadCredentials);
    };
    attempt.succeeded();
    let uid = user.id;
    let actor = user.username.clone();
    let token = st
        .db
        .run(move |c| {
            let t = accounts::new_session(c, uid)?;
            audit::record(c, &actor, "login", "", ip.as_deref())?;
            Ok(t)
        })
        .await?;
    let max_age = st.config.sessions.max_hours * 3600;
    let cookie =
        format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    let mut resp = Json(user).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| PortalError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

async fn audit_async(
    st: &AppState,
    actor: String,
    action: &'static str,
    ip: Option<String>,
) -> Result<(), PortalError> {
    st.db
        .run(move |c| audit::record(c, &actor, action, "", ip.as_deref()))
        .await
}

pub async fn logout(
    State(st): State<AppState>,
    auth: Auth,
    req: Request,
) -> Result<Response, PortalError> {
    if let Some(token) = auth::session_cookie(req.headers()) {
        let actor = auth.user.username.clone();
        let ip = auth.ip.clone();
        st.db
            .run(move |c| {
                accounts::end_session(c, &token)?;
                audit::record(c, &actor, "logout", "", ip.as_deref())
            })
            .await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-valise-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(resp)
}

pub async fn me(auth: Auth) -> Json<User> {
    Json(auth.user)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current: String,
    new: String,
}

/// Guessing the current password here is throttled like sign-ins (same keys: a session
/// left open must not become an unthrottled password oracle). The new password ends every
/// other session and every API token of the account; this session stays.
pub async fn change_password(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ChangePassword>,
) -> Result<StatusCode, PortalError> {
    let name = auth.user.username.clone();
    let ip = auth.ip.clone();
    let addr = ip.as_deref().and_then(|i| i.parse().ok());
    let attempt = match st.throttle.begin(addr, &name, true) {
        Ok(a) => a,
        Err(refused) => {
            if refused.first {
                audit_async(&st, name, "password_change_throttled", ip).await?;
            }
            return Err(PortalError::Throttled(refused.wait_secs));
        }
    };
    let n = name.clone();
    let creds = st
        .db
        .run(move |c| accounts::credentials(c, &n))
        .await?
        .ok_or(PortalError::Unauthenticated)?;
    if !st.hasher.verify(req.current, creds.1).await {
        attempt.failed();
        audit_async(&st, name, "password_change_failed", ip).await?;
        return Err(PortalError::BadCredentials);
    }
    attempt.succeeded();
    accounts::check_password(&req.new, &name)?;
    let hash = st.hasher.hash(req.new).await?;
    let keep = match auth.via {
        Via::Cookie => auth::session_cookie(&headers),
        Via::Token => None,
    };
    let uid = auth.user.id;
    st.db
        .run(move |c| {
            accounts::replace_password(c, uid, &hash, keep.as_deref())?;
            audit::record(c, &name, "password_changed", "", ip.as_deref())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
