//! Who is asking: the session cookie (browsers) or an API token (scripts), and the CSRF
//! rule for cookie-authenticated requests.
//!
//! CSRF defence in depth: the cookie is `__Host-` prefixed (only this origin, `Secure`,
//! `Path=/`), `SameSite=Strict` and `HttpOnly`; and every unsafe request that relies on it
//! must show it comes from the portal's own pages — `Sec-Fetch-Site: same-origin`, or,
//! from a browser too old to send that header, an `Origin` equal to the portal's host.
//! A token in `Authorization` cannot be sent by another site's page, so it needs neither.

use std::net::SocketAddr;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use crate::accounts::{self, User};
use crate::error::PortalError;
use crate::state::AppState;

pub const COOKIE: &str = "__Host-valise-session";

/// The client's address, put in every request's extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

pub fn client_ip(parts_ext: &axum::http::Extensions) -> Option<String> {
    client_addr(parts_ext).map(|a| a.to_string())
}

/// The client's IP address (IPv4-mapped IPv6 addresses as IPv4).
pub fn client_addr(parts_ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    parts_ext
        .get::<ClientAddr>()
        .map(|a| a.0.ip().to_canonical())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Token,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: User,
    pub via: Via,
    pub ip: Option<String>,
}

impl Auth {
    pub fn require_admin(&self) -> Result<(), PortalError> {
        if self.user.admin {
            Ok(())
        } else {
            Err(PortalError::Forbidden)
        }
    }
}

/// Only an API token (the scripts' API: no cookies, so no CSRF surface at all).
#[derive(Debug, Clone)]
pub struct TokenAuth(pub Auth);

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    let t = t.trim();
    (!t.is_empty() && t.len() <= 128).then(|| t.to_owned())
}

/// The host the client addressed: `Host` (HTTP/1.1) or the `:authority` (HTTP/2), which
/// hyper exposes as the URI's authority.
pub fn request_host(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
}

/// The CSRF rule for a cookie-authenticated request.
pub fn same_origin(method: &Method, headers: &HeaderMap, host: Option<&str>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(o), Some(h)) => o.strip_prefix("https://") == Some(h),
        _ => false,
    }
}

/// [`same_origin`] for a request's parts.
pub fn same_origin_parts(parts: &Parts) -> bool {
    same_origin(
        &parts.method,
        &parts.headers,
        request_host(parts).as_deref(),
    )
}

/// The user of API token `token` (from a header, or LibreTranslate's `api_key`).
pub async fn token_auth(
    state: &AppState,
    token: String,
    ip: Option<String>,
) -> Result<Auth, PortalError> {
    let user = state
        .db
        .run(move |c| accounts::api_token_user(c, &token))
        .await?
        .ok_or(PortalError::Unauthenticated)?;
    Ok(Auth {
        user,
        via: Via::Token,
        ip,
    })
}

pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Auth, PortalError> {
    let ip = client_ip(&parts.extensions);
    let headers = &parts.headers;
    if let Some(token) = bearer(headers) {
        return token_auth(state, token, ip).await;
    }
    let Some(token) = session_cookie(headers) else {
        return Err(PortalError::Unauthenticated);
    };
    if !same_origin_parts(parts) {
        return Err(PortalError::Csrf);
    }
    let idle = (state.config.sessions.idle_minutes * 60) as i64;
    let max = (state.config.sessions.max_hours * 3600) as i64;
    let user = state
        .db
        .run(move |c| accounts::session_user(c, &token, idle, max))
        .await?
        .ok_or(PortalError::Unauthenticated)?;
    Ok(Auth {
        user,
        via: Via::Cookie,
        ip,
    })
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(&AppState::from_ref(state), parts).await
    }
}

impl<S> FromRequestParts<S> for TokenAuth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if bearer(&parts.headers).is_none() {
            return Err(PortalError::Unauthenticated);
        }
        authenticate(&AppState::from_ref(state), parts)
            .await
            .map(TokenAuth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn csrf_rule() {
        let post = Method::POST;
        let host = Some("box.lan");
        assert!(same_origin(&Method::GET, &h(&[]), host));
        assert!(same_origin(
            &post,
            &h(&[("sec-fetch-site", "same-origin")]),
            host
        ));
        assert!(!same_origin(
            &post,
            &h(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(!same_origin(
            &post,
            &h(&[("sec-fetch-site", "same-site")]),
            host
        ));
        assert!(same_origin(
            &post,
            &h(&[("origin", "https://box.lan")]),
            host
        ));
        assert!(!same_origin(
            &post,
            &h(&[("origin", "https://evil.example")]),
            host
        ));
        assert!(!same_origin(
            &post,
            &h(&[("origin", "http://box.lan")]),
            host
        ));
        assert!(
            !same_origin(&post, &h(&[]), host),
            "no proof of origin at all"
        );
    }

    #[test]
    fn cookie_parsing() {
        let m = h(&[("cookie", "a=1; __Host-valise-session=abc; b=2")]);
        assert_eq!(session_cookie(&m).as_deref(), Some("abc"));
        assert_eq!(
            session_cookie(&h(&[("cookie", "valise-session=abc")])),
            None
        );
    }
}
