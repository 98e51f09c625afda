//! The scripts' API: OpenAI-compatible speech-to-text (`openai.rs`) and
//! LibreTranslate-compatible translation (`libretranslate.rs`), authenticated by per-user
//! API tokens (`Authorization: Bearer`, or LibreTranslate's `api_key` field). Jobs made here
//! appear in the user's history like any other. Both families answer errors in their own
//! shape (see [`error_shapes`]), so the projects' own client libraries read them.

mod libretranslate;
mod openai;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Multipart, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use libretranslate::{detect, frontend_settings, languages, translate, translate_file};
pub use openai::{model, models, transcriptions, translations};

use super::jobs::{load_view, save_upload};
use crate::auth::{Auth, Via, client_ip};
use crate::error::{PortalError, Result};
use crate::jobs::{Job, Kind, State as JobState};
use crate::state::AppState;
use crate::storage::Incoming;

/// Longest a synchronous API call waits for its job.
const WAIT_MAX: Duration = Duration::from_secs(4 * 3600);
/// Largest non-file multipart field.
const FIELD_MAX: usize = 4096;
/// Most non-file fields in a form (OpenAI's and LibreTranslate's use fewer than ten); with
/// [`FIELD_MAX`] it bounds what a form makes the portal hold, even before its key is seen.
const FIELDS_MAX: usize = 32;

async fn wait_done(st: &AppState, user_id: i64, id: &str) -> Result<Job> {
    let started = tokio::time::Instant::now();
    loop {
        let j = load_view(st, user_id, id.to_owned()).await?;
        match j.state {
            JobState::Done => return Ok(j),
            JobState::Failed | JobState::Cancelled => {
                return Err(PortalError::Engine(j.error.unwrap_or_else(|| {
                    valise_protocol::ApiError::new("failed", "the job failed")
                })));
            }
            _ if started.elapsed() > WAIT_MAX => {
                return Err(PortalError::Internal("the job took too long".into()));
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// A multipart form whose `file` field was streamed into a new job's directory.
struct Form {
    auth: Auth,
    upload: Incoming,
    filename: String,
    fields: Vec<(String, String)>,
}

/// Reads the multipart form of `body`: the `file` field streams into a new job's directory,
/// the other fields (bounded) are returned. Without `auth` (no token in the headers), an `api_key`
/// field before the file authenticates the request, as LibreTranslate's clients send it.
async fn read_form(
    st: &AppState,
    parts: &Parts,
    body: Body,
    mut auth: Option<Auth>,
    kind: Kind,
) -> Result<Form> {
    let mut form = <Multipart as axum::extract::FromRequest<AppState>>::from_request(
        Request::from_parts(parts.clone(), body),
        st,
    )
    .await
    .map_err(|e| PortalError::BadRequest(e.body_text()))?;
    let mut saved: Option<(Incoming, String)> = None;
    let mut fields = Vec::new();
    let result: Result<()> = async {
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| PortalError::BadRequest(format!("bad multipart body: {e}")))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                if saved.is_some() {
                    return Err(PortalError::BadRequest("only one file per request".into()));
                }
                let Some(a) = &auth else {
                    return Err(PortalError::Unauthenticated);
                };
                let filename = field.file_name().unwrap_or("upload").to_owned();
                let upload = save_upload(st, a, kind, field, None).await?;
                saved = Some((upload, filename));
            } else {
                if fields.len() >= FIELDS_MAX {
                    return Err(PortalError::BadRequest(format!(
                        "at most {FIELDS_MAX} fields per form"
                    )));
                }
                let mut field = field;
                let mut value = Vec::new();
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| PortalError::BadRequest(format!("bad multipart body: {e}")))?
                {
                    value.extend_from_slice(&chunk);
                    if value.len() > FIELD_MAX {
                        return Err(PortalError::TooLarge(format!(
                            "the field {name:?} is too long"
                        )));
                    }
                }
                let value = String::from_utf8_lossy(&value).into_owned();
                if name == "api_key" && auth.is_none() {
                    auth = Some(key_auth(st, parts, &value).await?);
                }
                fields.push((name, value));
            }
        }
        Ok(())
    }
    .await;
    // On error, a saved upload is removed when dropped.
    result?;
    let (upload, filename) =
        saved.ok_or_else(|| PortalError::BadRequest("the form has no `file` field".into()))?;
    Ok(Form {
        auth: auth.ok_or(PortalError::Unauthenticated)?,
        upload,
        filename,
        fields,
    })
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The user of an API key (LibreTranslate's name for the token).
async fn key_auth(st: &AppState, parts: &Parts, key: &str) -> Result<Auth> {
    let key = key.trim().to_owned();
    if key.is_empty() || key.len() > 128 {
        return Err(PortalError::Unauthenticated);
    }
    crate::auth::token_auth(st, key, client_ip(&parts.extensions)).await
}

/// A token in `Authorization`, if the request carries one (a wrong one is refused).
async fn header_auth(st: &AppState, parts: &Parts) -> Result<Option<Auth>> {
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let a = crate::auth::authenticate(st, parts).await?;
    if a.via == Via::Token {
        Ok(Some(a))
    } else {
        Err(PortalError::Unauthenticated)
    }
}

pub async fn openapi() -> Response {
    let mut r = (StatusCode::OK, include_str!("../../../openapi.json")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The API families, told apart by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `/api/...`: the portal's own `{"code","message"}`.
    Portal,
    /// `/v1/...`: OpenAI's `{"error": {"message","type","code"}}`.
    OpenAi,
    /// LibreTranslate's routes: `{"error": "message"}`.
    LibreTranslate,
}

fn dialect(path: &str) -> Option<Dialect> {
    const LT: &[&str] = &[
        "/translate",
        "/translate_file",
        "/detect",
        "/languages",
        "/frontend/settings",
    ];
    if path.starts_with("/api/") || path == "/api" {
        Some(Dialect::Portal)
    } else if path.starts_with("/v1/") || path == "/v1" {
        Some(Dialect::OpenAi)
    } else if LT.contains(&path.trim_end_matches('/')) {
        Some(Dialect::LibreTranslate)
    } else {
        None
    }
}

/// Largest error body rewritten (the portal's own are a few hundred bytes).
const ERROR_BODY_MAX: usize = 64 << 10;

/// Every error answer of the APIs is JSON in its family's shape: the portal's own errors
/// (`{"code","message"}`) are reshaped for the OpenAI and LibreTranslate routes, and the
/// router's bodiless ones (unknown path, wrong method, a rejected extractor) get a body, so
/// a script never receives the web UI's HTML page or an empty answer.
pub async fn error_shapes(req: Request, next: Next) -> Response {
    let Some(d) = dialect(req.uri().path()) else {
        return next.run(req).await;
    };
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json && d == Dialect::Portal {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_MAX)
        .await
        .unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<valise_protocol::ApiError>(&bytes) {
        Ok(e) if is_json => (e.code, e.message),
        _ => {
            let code = match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_type",
                s if s.is_server_error() => "internal",
                _ => "bad_request",
            };
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let message = if text.is_empty() || text.len() > 500 || text.starts_with('<') {
                match status {
                    StatusCode::NOT_FOUND => "no such API path".to_owned(),
                    StatusCode::METHOD_NOT_ALLOWED => {
                        let allow = parts
                            .headers
                            .get(header::ALLOW)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        format!("this path does not take this method (it takes: {allow})")
                    }
                    s => s.canonical_reason().unwrap_or("error").to_owned(),
                }
            } else {
                text
            };
            (code.to_owned(), message)
        }
    };
    let body = match d {
        Dialect::Portal => json!({ "code": code, "message": message }),
        Dialect::OpenAi => json!({ "error": {
            "message": message,
            "type": if status.is_server_error() { "server_error" } else { "invalid_request_error" },
            "param": Value::Null,
            "code": code,
        }}),
        Dialect::LibreTranslate => json!({ "error": message }),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// Unknown `/v1/...` paths (the UI's page is for browsers).
pub async fn not_found() -> PortalError {
    PortalError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_by_path() {
        assert_eq!(dialect("/api/jobs"), Some(Dialect::Portal));
        assert_eq!(dialect("/v1/models"), Some(Dialect::OpenAi));
        assert_eq!(dialect("/translate"), Some(Dialect::LibreTranslate));
        assert_eq!(dialect("/frontend/settings"), Some(Dialect::LibreTranslate));
        assert_eq!(dialect("/"), None);
        assert_eq!(dialect("/assets/app.js"), None);
        assert_eq!(dialect("/v1x"), None);
    }
}
