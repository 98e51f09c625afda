//! OpenAI's audio API as its SDK calls it: `POST /v1/audio/transcriptions`,
//! `POST /v1/audio/translations` (speech in any language to English text), and
//! `GET /v1/models[/{id}]`. Any `model` name is accepted and runs the box's default speech
//! model; `/v1/models` lists `whisper-1` (that default, under OpenAI's name) and the models
//! installed on the box.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use valise_protocol::transcript::{Format, Transcript};

use super::{Form, field, read_form, wait_done};
use crate::auth::TokenAuth;
use crate::error::{PortalError, Result};
use crate::jobs::{Kind, Options};
use crate::state::AppState;
use crate::transcripts;

/// The name OpenAI's clients ask for; it runs the box's default speech model.
const ALIAS: &str = "whisper-1";

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(
    State(st): State<AppState>,
    TokenAuth(auth): TokenAuth,
    req: Request,
) -> Result<Response> {
    speech(st, auth, req, false).await
}

/// `POST /v1/audio/translations`: speech in any language, English text out (whisper's
/// translate task).
pub async fn translations(
    State(st): State<AppState>,
    TokenAuth(auth): TokenAuth,
    req: Request,
) -> Result<Response> {
    speech(st, auth, req, true).await
}

async fn speech(
    st: AppState,
    auth: crate::auth::Auth,
    req: Request,
    translate: bool,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let Form {
        auth,
        upload,
        filename,
        fields,
    } = read_form(&st, &parts, body, Some(auth), Kind::Transcription).await?;
    let format = field(&fields, "response_format")
        .unwrap_or("json")
        .to_owned();
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&format.as_str()) {
        return Err(PortalError::BadRequest(
            "response_format is json, text, srt, vtt or verbose_json".into(),
        ));
    }
    // Translations take no language: whisper detects it.
    let language = match translate {
        true => "auto".to_owned(),
        false => field(&fields, "language").unwrap_or("auto").to_owned(),
    };
    let options = Options {
        language: Some(language),
        translate,
        ..Options::default()
    };
    let title = crate::http::upload::clean_title(&filename);
    let job = super::super::jobs::register_upload(
        &st,
        &auth,
        upload,
        Kind::Transcription,
        title,
        options,
    )
    .await?;
    let job = wait_done(&st, auth.user.id, &job.id).await?;
    let files = st.files.clone();
    let (t, _) = tokio::task::spawn_blocking(move || transcripts::load(&files, &job.id))
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))??;
    Ok(answer(&t, &format, translate))
}

fn answer(t: &Transcript, format: &str, translate: bool) -> Response {
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
        // Every field OpenAI's segment has, so typed clients find them all.
        "verbose_json" => Json(json!({
            "task": if translate { "translate" } else { "transcribe" },
            "language": t.language,
            "duration": t.duration,
            "text": t.text(),
            "segments": t.segments.iter().enumerate().map(|(i, s)| json!({
                "id": i, "seek": (s.start * 100.0).round() as i64,
                "start": s.start, "end": s.end, "text": s.text,
                "tokens": [], "temperature": 0.0,
                "avg_logprob": s.avg_logprob, "compression_ratio": 0.0,
                "no_speech_prob": s.no_speech_prob,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => Json(json!({ "text": t.text() })).into_response(),
    }
}

fn entry(id: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "valise" })
}

/// The alias and the speech models installed on the box (the alias alone while the
/// engine is down).
async fn model_ids(st: &AppState) -> Vec<String> {
    let mut ids = vec![ALIAS.to_owned()];
    if let Ok(models) = st.transcribe.models().await {
        ids.extend(models.into_iter().map(|m| m.id));
    }
    ids
}

/// `GET /v1/models`.
pub async fn models(State(st): State<AppState>, TokenAuth(_auth): TokenAuth) -> Json<Value> {
    let data: Vec<Value> = model_ids(&st).await.iter().map(|id| entry(id)).collect();
    Json(json!({ "object": "list", "data": data }))
}

/// `GET /v1/models/{id}`.
pub async fn model(
    State(st): State<AppState>,
    TokenAuth(_auth): TokenAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    if model_ids(&st).await.contains(&id) {
        Ok(Json(entry(&id)))
    } else {
        Err(PortalError::NotFound)
    }
}
