//! The scripts' API: OpenAI-compatible transcription and LibreTranslate-compatible
//! translation, authenticated by per-user API tokens (`Authorization: Bearer`, or
//! LibreTranslate's `api_key` field). Jobs made here appear in the user's history like any
//! other.

use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use valise_protocol::transcript::{Format, Transcript};
use valise_protocol::translate::TranslateRequest;

use super::jobs::{load_view, register_upload, save_upload};
use super::session::JsonBody;
use super::text;
use crate::accounts;
use crate::auth::{Auth, TokenAuth, Via, client_ip};
use crate::error::{PortalError, Result};
use crate::jobs::{Job, Kind, Options, State as JobState};
use crate::state::AppState;
use crate::storage::Incoming;
use crate::transcripts;

/// Longest a synchronous API call waits for its job.
const WAIT_MAX: Duration = Duration::from_secs(4 * 3600);
/// Largest non-file multipart field.
const FIELD_MAX: usize = 4096;

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

/// Reads a multipart form: the `file` field streams into a new job's directory, the other
/// fields (bounded) are returned.
async fn read_form(
    st: &AppState,
    auth: &Auth,
    kind: Kind,
    mut form: Multipart,
) -> Result<(Incoming, String, Vec<(String, String)>)> {
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
                let filename = field.file_name().unwrap_or("upload").to_owned();
                let upload = save_upload(st, auth, kind, field, None).await?;
                saved = Some((upload, filename));
            } else {
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
                fields.push((name, String::from_utf8_lossy(&value).into_owned()));
            }
        }
        Ok(())
    }
    .await;
    // On error, a saved upload is removed when dropped.
    result?;
    let (upload, filename) =
        saved.ok_or_else(|| PortalError::BadRequest("the form has no `file` field".into()))?;
    Ok((upload, filename, fields))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `POST /v1/audio/transcriptions` (OpenAI).
pub async fn transcriptions(
    State(st): State<AppState>,
    TokenAuth(auth): TokenAuth,
    form: Multipart,
) -> Result<Response> {
    let (upload, filename, fields) = read_form(&st, &auth, Kind::Transcription, form).await?;
    let language = field(&fields, "language").unwrap_or("auto").to_owned();
    let format = field(&fields, "response_format")
        .unwrap_or("json")
        .to_owned();
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&format.as_str()) {
        return Err(PortalError::BadRequest(
            "response_format is json, text, srt, vtt or verbose_json".into(),
        ));
    }
    let options = Options {
        language: Some(language),
        ..Options::default()
    };
    let title = super::upload::clean_title(&filename);
    let job = register_upload(&st, &auth, upload, Kind::Transcription, title, options).await?;
    let job = wait_done(&st, auth.user.id, &job.id).await?;
    let files = st.files.clone();
    let (t, _) = tokio::task::spawn_blocking(move || transcripts::load(&files, &job.id))
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))??;
    Ok(openai_body(&t, &format))
}

fn openai_body(t: &Transcript, format: &str) -> Response {
    let text_resp = |s: String, ctype: &'static str| {
        let mut r = (StatusCode::OK, s).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    };
    match format {
        "text" => text_resp(t.render(Format::Txt), "text/plain; charset=utf-8"),
        "srt" => text_resp(t.render(Format::Srt), "application/x-subrip"),
        "vtt" => text_resp(t.render(Format::Vtt), "text/vtt; charset=utf-8"),
        "verbose_json" => Json(json!({
            "task": "transcribe",
            "language": t.language,
            "duration": t.duration,
            "text": t.text(),
            "segments": t.segments.iter().enumerate().map(|(i, s)| json!({
                "id": i, "start": s.start, "end": s.end, "text": s.text,
                "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => Json(json!({ "text": t.text() })).into_response(),
    }
}

/// LibreTranslate clients send the key in the body; accept it there or as a Bearer token.
async fn token_or_key(st: &AppState, parts: &Parts, api_key: Option<&str>) -> Result<Auth> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let a = crate::auth::authenticate(st, parts).await?;
        if a.via == Via::Token {
            return Ok(a);
        }
    }
    let key = api_key.ok_or(PortalError::Unauthenticated)?.to_owned();
    let ip = client_ip(&parts.extensions);
    let user = st
        .db
        .run(move |c| accounts::api_token_user(c, &key))
        .await?
        .ok_or(PortalError::Unauthenticated)?;
    Ok(Auth {
        user,
        via: Via::Token,
        ip,
    })
}

/// A JSON body, and the request's parts for authentication.
async fn json_and_parts<T: serde::de::DeserializeOwned>(
    st: &AppState,
    req: Request,
) -> Result<(T, Parts)> {
    let (parts, body) = req.into_parts();
    let JsonBody(v) = JsonBody::from_request(Request::from_parts(parts.clone(), body), st).await?;
    Ok((v, parts))
}

#[derive(Debug, Deserialize)]
pub struct LtTranslate {
    q: Value,
    #[serde(default)]
    source: Option<String>,
    target: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

/// `POST /translate` (LibreTranslate).
pub async fn translate(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (body, parts): (LtTranslate, Parts) = json_and_parts(&st, req).await?;
    let auth = token_or_key(&st, &parts, body.api_key.as_deref()).await?;
    if body.format.as_deref().is_some_and(|f| f != "text") {
        return Err(PortalError::BadRequest(
            "only format=text is supported here; send documents to /translate_file".into(),
        ));
    }
    let source = body.source.unwrap_or_else(|| "auto".into());
    let one = |text: String| TranslateRequest {
        text,
        source: source.clone(),
        target: body.target.clone(),
    };
    match body.q {
        Value::String(s) => {
            let r = text::translate_text(&st, &auth, one(s)).await?;
            let mut out = json!({ "translatedText": r.translation });
            if source == "auto" {
                out["detectedLanguage"] = json!({ "language": r.source, "confidence": 100.0 });
            }
            Ok(Json(out))
        }
        Value::Array(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for v in items {
                let Value::String(s) = v else {
                    return Err(PortalError::BadRequest(
                        "q is a string or an array of strings".into(),
                    ));
                };
                texts.push(text::translate_text(&st, &auth, one(s)).await?.translation);
            }
            Ok(Json(json!({ "translatedText": texts })))
        }
        _ => Err(PortalError::BadRequest(
            "q is a string or an array of strings".into(),
        )),
    }
}

/// `GET /languages` (LibreTranslate).
pub async fn languages(
    State(st): State<AppState>,
    TokenAuth(_auth): TokenAuth,
) -> Result<Json<Value>> {
    let pairs = text::pairs(&st).await?;
    let mut codes: Vec<String> = pairs.iter().map(|p| p.source.clone()).collect();
    codes.sort();
    codes.dedup();
    let out: Vec<Value> = codes
        .iter()
        .map(|c| {
            let targets: Vec<&str> = pairs
                .iter()
                .filter(|p| &p.source == c)
                .map(|p| p.target.as_str())
                .collect();
            json!({ "code": c, "name": language_name(c), "targets": targets })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

fn language_name(code: &str) -> &str {
    match code {
        "en" => "English",
        "fr" => "French",
        "pt" => "Portuguese",
        "es" => "Spanish",
        "de" => "German",
        "it" => "Italian",
        _ => code,
    }
}

#[derive(Debug, Deserialize)]
pub struct LtDetect {
    q: String,
    #[serde(default)]
    api_key: Option<String>,
}

/// `POST /detect` (LibreTranslate; confidence in percent).
pub async fn detect(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (body, parts): (LtDetect, Parts) = json_and_parts(&st, req).await?;
    token_or_key(&st, &parts, body.api_key.as_deref()).await?;
    let d = text::detect_text(&st, &body.q).await?;
    Ok(Json(
        json!([{ "language": d.language, "confidence": (d.confidence * 100.0).round() }]),
    ))
}

/// `POST /translate_file` (LibreTranslate): waits for the document job, answers with the
/// URL to fetch the result (with the same token).
pub async fn translate_file(
    State(st): State<AppState>,
    TokenAuth(auth): TokenAuth,
    req: Request,
) -> Result<Json<Value>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let form = Multipart::from_request(req, &st)
        .await
        .map_err(|e| PortalError::BadRequest(e.body_text()))?;
    let (upload, filename, fields) = read_form(&st, &auth, Kind::Document, form).await?;
    let target = field(&fields, "target")
        .ok_or_else(|| PortalError::BadRequest("target is required".into()))?
        .to_owned();
    let options = Options {
        source: Some(field(&fields, "source").unwrap_or("auto").to_owned()),
        target: Some(target),
        ..Options::default()
    };
    let title = super::upload::clean_title(&filename);
    let job = register_upload(&st, &auth, upload, Kind::Document, title, options).await?;
    let job = wait_done(&st, auth.user.id, &job.id).await?;
    Ok(Json(
        json!({ "translatedFileUrl": format!("https://{host}/api/jobs/{}/result", job.id) }),
    ))
}

pub async fn openapi() -> Response {
    let mut r = (StatusCode::OK, include_str!("../../openapi.json")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
