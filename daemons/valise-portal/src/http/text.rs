//! Text translation and language detection (synchronous: the engine answers in
//! milliseconds per sentence).

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use valise_protocol::translate::{Detection, TranslateRequest, TranslateResponse};

use super::session::JsonBody;
use crate::audit;
use crate::auth::Auth;
use crate::error::{PortalError, Result};
use crate::state::AppState;

/// Languages whisper transcribes well enough to offer first; `auto` detects among all.
pub const TRANSCRIPTION_LANGUAGES: &[&str] = &[
    "auto", "fr", "en", "ar", "de", "es", "it", "pt", "ru", "zh", "ja", "ko", "tr", "pl", "nl",
    "uk", "fa", "hi", "sw", "vi",
];

#[derive(Debug, Serialize)]
pub struct Pair {
    pub source: String,
    pub target: String,
    pub pivot: bool,
}

#[derive(Debug, Serialize)]
pub struct LanguagesView {
    pub transcription: Vec<&'static str>,
    pub translation: Vec<Pair>,
}

pub async fn pairs(st: &AppState) -> Result<Vec<Pair>> {
    let langs = st
        .translate
        .languages()
        .await
        .map_err(|_| PortalError::EngineUnavailable("translation"))?;
    Ok(langs
        .pairs
        .into_iter()
        .map(|p| Pair {
            source: p.source,
            target: p.target,
            pivot: p.pivot,
        })
        .collect())
}

pub async fn languages(State(st): State<AppState>, _auth: Auth) -> Result<Json<LanguagesView>> {
    Ok(Json(LanguagesView {
        transcription: TRANSCRIPTION_LANGUAGES.to_vec(),
        translation: pairs(&st).await.unwrap_or_default(),
    }))
}

/// Most texts one request may carry (LibreTranslate's `q` as a list).
pub const MAX_TEXTS: usize = 128;

/// The text limit holds for a request as a whole: a list of texts counts all their
/// characters, and carries at most [`MAX_TEXTS`] of them.
pub fn check_texts(st: &AppState, texts: &[String]) -> Result<()> {
    let max = st.config.limits.max_text_chars;
    if texts.len() > MAX_TEXTS {
        return Err(PortalError::TooLarge(format!(
            "at most {MAX_TEXTS} texts per request"
        )));
    }
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    if chars > max {
        return Err(PortalError::TooLarge(format!(
            "at most {max} characters per request, all texts together"
        )));
    }
    Ok(())
}

fn engine_error(e: valise_engine_client::ClientError) -> PortalError {
    if e.is_unavailable() {
        PortalError::EngineUnavailable("translation")
    } else {
        e.into()
    }
}

/// Records a translation in the audit log: its size and languages, never the text.
async fn audit_translated(st: &AppState, auth: &Auth, detail: String) -> Result<()> {
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    st.db
        .run(move |c| audit::record(c, &actor, "text_translated", &detail, ip.as_deref()))
        .await
}

/// Translates an HTML snippet or page through the engine's HTML document path (markup,
/// attributes and scripts untouched), and records the fact in the audit log.
pub async fn translate_html(
    st: &AppState,
    auth: &Auth,
    html: String,
    source: &str,
    target: &str,
) -> Result<String> {
    let chars = html.chars().count();
    check_texts(st, std::slice::from_ref(&html))?;
    let doc = st
        .translate
        .translate_document_bytes(html.into_bytes(), "html", source, target)
        .await
        .map_err(engine_error)?;
    let out = String::from_utf8(doc.bytes.to_vec())
        .map_err(|_| PortalError::Internal("the engine's HTML is not UTF-8".into()))?;
    audit_translated(st, auth, format!("chars={chars} html {source}->{target}")).await?;
    Ok(out)
}

/// Checks the size, calls the engine, records the fact (never the text) in the audit log.
pub async fn translate_text(
    st: &AppState,
    auth: &Auth,
    req: TranslateRequest,
) -> Result<TranslateResponse> {
    let chars = req.text.chars().count();
    if chars > st.config.limits.max_text_chars {
        return Err(PortalError::TooLarge(format!(
            "at most {} characters per request",
            st.config.limits.max_text_chars
        )));
    }
    let resp = st.translate.translate(&req).await.map_err(engine_error)?;
    audit_translated(
        st,
        auth,
        format!("chars={chars} {}->{}", resp.source, resp.target),
    )
    .await?;
    Ok(resp)
}

pub async fn translate(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<TranslateRequest>,
) -> Result<Json<TranslateResponse>> {
    Ok(Json(translate_text(&st, &auth, req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectBody {
    text: String,
}

pub async fn detect_text(st: &AppState, text: &str) -> Result<Detection> {
    if text.chars().count() > st.config.limits.max_text_chars {
        return Err(PortalError::TooLarge("the text is too long".into()));
    }
    st.translate.detect(text).await.map_err(engine_error)
}

pub async fn detect(
    State(st): State<AppState>,
    _auth: Auth,
    JsonBody(b): JsonBody<DetectBody>,
) -> Result<Json<Detection>> {
    Ok(Json(detect_text(&st, &b.text).await?))
}
