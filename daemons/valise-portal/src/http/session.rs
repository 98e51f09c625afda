//! Sign in, sign out, who am I, change my password.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::accounts::{self, User};
use crate::audit;
use crate::auth::{self, Auth, COOKIE, client_ip};
use crate::error::PortalError;
use crate::state::AppState;

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
    let JsonBody(Login { username, password }) =
        JsonBody::from_request(Request::from_parts(parts, body), &st).await?;
    let ukey = format!("u:{}", username.to_lowercase());
    let ikey = format!("ip:{}", ip.as_deref().unwrap_or("-"));
    let keys = [ukey.as_str(), ikey.as_str()];
    if let Some(wait) = st.throttle.check(&keys) {
        return Err(PortalError::Throttled(wait));
    }
    let _permit = st
        .hashing
        .acquire()
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let name = username.clone();
    let found = st
        .db
        .run(move |c| {
            let creds = accounts::credentials(c, &name)?;
            let (hash, ok_user) = match &creds {
                Some((u, h, disabled)) => (h.clone(), (!disabled).then(|| u.clone())),
                None => (accounts::decoy_hash().to_owned(), None),
            };
            // Verified even for unknown or disabled accounts: same time either way.
            let good = accounts::verify_password(&password, &hash);
            Ok(ok_user.filter(|_| good))
        })
        .await?;
    let Some(user) = found else {
        st.throttle.failed(&keys);
        let ip2 = ip.clone();
        st.db
            .run(move |c| {
                // The typed name is recorded only if such an account exists (a password typed
                // into the name field must not end up in the log).
                let actor = accounts::credentials(c, &username)?
                    .map(|(u, _, _)| u.username)
                    .unwrap_or_else(|| "unknown".into());
                audit::record(c, &actor, "login_failed", "", ip2.as_deref())
            })
            .await?;
        return Err(PortalError::BadCredentials);
    };
    st.throttle.succeeded(&keys);
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

pub async fn change_password(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<ChangePassword>,
) -> Result<StatusCode, PortalError> {
    let _permit = st
        .hashing
        .acquire()
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    let name = auth.user.username.clone();
    let ip = auth.ip.clone();
    st.db
        .run(move |c| {
            let Some((u, hash, _)) = accounts::credentials(c, &name)? else {
                return Err(PortalError::Unauthenticated);
            };
            if !accounts::verify_password(&req.current, &hash) {
                return Err(PortalError::BadCredentials);
            }
            accounts::set_password(c, u.id, &req.new)?;
            audit::record(c, &name, "password_changed", "", ip.as_deref())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
