//! The HTTP/JSON API (see [`valise_protocol::translate`]). Bodies are read as bytes and
//! checked here (size, UTF-8, JSON) so that every refusal is a clear [`ApiError`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use valise_protocol::ApiError;
use valise_protocol::translate::{
    DetectRequest, DocumentFormat, TranscriptRequest, TranslateHealth, TranslateRequest,
};

use crate::{Engine, TranslateError};

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/languages", get(languages))
        .route("/v1/translate", post(translate))
        .route("/v1/detect", post(detect))
        .route("/v1/translate/document", post(translate_document))
        .route("/v1/translate/transcript", post(translate_transcript))
        .with_state(engine)
}

/// Every error leaves through here: one `match` from code to HTTP status.
struct Failure(ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.code.as_str() {
            "bad_request" | "bad_json" | "bad_utf8" | "empty" => StatusCode::BAD_REQUEST,
            "unsupported_pair" | "undetected_language" | "bad_document" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "timed_out" => StatusCode::GATEWAY_TIMEOUT,
            "model_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

impl From<TranslateError> for Failure {
    fn from(e: TranslateError) -> Self {
        Failure(ApiError::new(e.code(), e.to_string()))
    }
}

/// Largest body accepted: `max_chars` characters, each possibly written as a 6-byte JSON
/// escape, plus room for the rest of the object.
fn body_limit(engine: &Engine) -> usize {
    engine.config().limits.max_chars.saturating_mul(6) + 64 * 1024
}

/// Bytes read and thrown away after the limit, so that a client still writing a too-large
/// body receives the `too_large` answer instead of a broken connection.
const DRAIN_MAX: usize = 16 << 20;

async fn read_json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, Failure> {
    let bytes = read_bytes(body, limit).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Failure(ApiError::new(
            "bad_utf8",
            format!(
                "the request body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        ))
    })?;
    serde_json::from_str(text)
        .map_err(|e| Failure(ApiError::new("bad_json", format!("invalid request: {e}"))))
}

/// The request body, at most `limit` bytes (a larger one is refused with `too_large`).
async fn read_bytes(body: Body, limit: usize) -> Result<Vec<u8>, Failure> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut bytes: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure(ApiError::new(
                "bad_request",
                format!("reading the request: {e}"),
            ))
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= limit {
                bytes.extend_from_slice(&data);
            } else if total > limit + DRAIN_MAX {
                break;
            }
        }
    }
    if total > limit {
        return Err(Failure(ApiError::new(
            "too_large",
            format!("the request body is larger than {limit} bytes"),
        )));
    }
    Ok(bytes)
}

async fn health(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    Json(TranslateHealth {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        models_loaded: engine.model_ids(),
    })
}

async fn languages(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    Json(engine.languages())
}

async fn detect(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let run = async {
        let req: DetectRequest = read_json(body, body_limit(&engine)).await?;
        Ok::<_, Failure>(Json(engine.detect(&req.text)?))
    };
    match run.await {
        Ok(r) => r.into_response(),
        Err(f) => f.into_response(),
    }
}

async fn translate(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let run = async {
        let req: TranslateRequest = read_json(body, body_limit(&engine)).await?;
        let secs = engine.config().limits.max_request_secs;
        let eng = engine.clone();
        Ok::<_, Failure>(Json(blocking(secs, move || eng.translate(&req)).await?))
    };
    match run.await {
        Ok(r) => r.into_response(),
        Err(f) => f.into_response(),
    }
}

/// Runs `work` on the blocking pool with a backstop `secs` (+5) after which the client gets
/// `timed_out` (the engine checks its own deadline between batches).
async fn blocking<T: Send + 'static>(
    secs: u64,
    work: impl FnOnce() -> Result<T, TranslateError> + Send + 'static,
) -> Result<T, Failure> {
    let job = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(Duration::from_secs(secs + 5), job).await {
        Err(_) => Err(Failure::from(TranslateError::TimedOut(secs))),
        Ok(Err(e)) => Err(Failure::from(TranslateError::Internal(e.to_string()))),
        Ok(Ok(r)) => Ok(r?),
    }
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Failure> {
    q.get(name).map(String::as_str).ok_or_else(|| {
        Failure(ApiError::new(
            "bad_request",
            format!("the query parameter {name:?} is missing"),
        ))
    })
}

/// `POST /v1/translate/document?format=docx&source=auto&target=pt`: the document's bytes
/// in, the translated document out (same format), the report in the `valise-report` header.
async fn translate_document(
    State(engine): State<Arc<Engine>>,
    Query(q): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let run = async {
        // The body first: an answer sent while the client is still writing its upload
        // reaches it as a broken connection, not as the refusal.
        let limits = &engine.config().limits;
        let limit = usize::try_from(limits.max_document_bytes.bytes()).unwrap_or(usize::MAX);
        let bytes = read_bytes(body, limit).await?;
        let format = param(&q, "format")?;
        let format = DocumentFormat::parse(format).ok_or_else(|| {
            Failure(ApiError::new(
                "bad_request",
                format!(
                    "unknown document format {:?} (txt, md, html, docx, odt)",
                    format.chars().take(16).collect::<String>()
                ),
            ))
        })?;
        let source = q.get("source").cloned().unwrap_or_else(|| "auto".into());
        let target = param(&q, "target")?.to_owned();
        let eng = engine.clone();
        let (out, report) = blocking(limits.max_document_secs, move || {
            eng.translate_document(format, &bytes, &source, &target)
        })
        .await?;
        let report = serde_json::to_string(&report).unwrap_or_default();
        let header =
            percent_encoding::utf8_percent_encode(&report, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        Ok::<_, Failure>(
            (
                [
                    (header::CONTENT_TYPE, format.content_type().to_owned()),
                    (HeaderName::from_static("valise-report"), header),
                ],
                out,
            )
                .into_response(),
        )
    };
    match run.await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

/// `POST /v1/translate/transcript`: a transcript translated segment by segment.
async fn translate_transcript(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let run = async {
        let limits = &engine.config().limits;
        let limit = usize::try_from(limits.max_document_bytes.bytes()).unwrap_or(usize::MAX);
        let req: TranscriptRequest = read_json(body, limit).await?;
        let eng = engine.clone();
        let out = blocking(limits.max_document_secs, move || {
            eng.translate_transcript(&req.transcript, &req.source, &req.target)
        })
        .await?;
        Ok::<_, Failure>(Json(out))
    };
    match run.await {
        Ok(r) => r.into_response(),
        Err(f) => f.into_response(),
    }
}
