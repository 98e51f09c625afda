//! The HTTP/JSON API on the Unix socket (routes listed in `valise_protocol::api`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use valise_protocol::{ApiError, Format, JobOptions};

use crate::jobs::Service;
use crate::pipeline::Request;

pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(status).delete(delete))
        .route("/v1/jobs/{id}/result", get(result))
        .route("/v1/jobs/{id}/segments", get(segments))
        .with_state(svc)
}

/// Every error leaves through here: one `match` from code to HTTP status.
struct Failure(ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0.code.as_str() {
            "not_found" => StatusCode::NOT_FOUND,
            "not_ready" => StatusCode::CONFLICT,
            "too_large" | "too_long" => StatusCode::PAYLOAD_TOO_LARGE,
            "busy" | valise_protocol::ENGINE_STOPPING => StatusCode::SERVICE_UNAVAILABLE,
            "bad_request" => StatusCode::BAD_REQUEST,
            "unsupported_format"
            | "unsupported_codec"
            | "unsupported_audio_params"
            | "no_audio_track"
            | "corrupt"
            | "truncated"
            | "empty" => StatusCode::UNPROCESSABLE_ENTITY,
            "cancelled" => StatusCode::GONE,
            "model_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0)).into_response()
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure(ApiError::new("bad_request", msg))
}

/// While the engine stops, 503 `engine_stopping`: it takes no new work and a client waiting
/// for it to serve again must not mistake the old process for the new one.
async fn health(State(svc): State<Arc<Service>>) -> Response {
    if svc.is_stopping() {
        return Failure(ApiError::engine_stopping()).into_response();
    }
    Json(svc.health()).into_response()
}

async fn models(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    Json(svc.engine().models())
}

async fn list(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    Json(svc.list())
}

async fn status(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    match svc.status(&id) {
        Some(s) => Json(s).into_response(),
        None => Failure(ApiError::new("not_found", "no such job")).into_response(),
    }
}

async fn delete(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    match svc.delete(&id) {
        Some(s) => Json(s).into_response(),
        None => Failure(ApiError::new("not_found", "no such job")).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultQuery {
    format: Option<String>,
}

async fn result(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Response {
    let format: Format = match q.format.as_deref().unwrap_or("json").parse() {
        Ok(f) => f,
        Err(e) => return bad(e).into_response(),
    };
    match svc.result(&id) {
        Ok(t) => (
            [(header::CONTENT_TYPE, format.content_type())],
            t.render(format),
        )
            .into_response(),
        Err(e) => Failure(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentsQuery {
    from: Option<usize>,
}

/// The segments so far of a queued, running or finished job (`from`: skip those already read).
async fn segments(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(q): Query<SegmentsQuery>,
) -> Response {
    match svc.partial(&id, q.from.unwrap_or(0)) {
        Some(p) => Json(p).into_response(),
        None => Failure(ApiError::new("not_found", "no such job")).into_response(),
    }
}

/// A refused upload is read (and thrown away) up to this much further, so a client that is
/// still sending gets the 413 answer rather than a broken pipe. Beyond it the connection is cut.
const DRAIN_MAX: u64 = 32 << 20;

async fn drain(mut body: Body, max: u64) {
    let mut n = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        n += frame.data_ref().map_or(0, |d| d.len() as u64);
        if n > max {
            break;
        }
    }
}

/// `POST /v1/jobs?language=..&translate=..&model=..` with the media file as the body.
/// Options and capacity are checked first; the body is streamed to the spool with the size
/// limit enforced as it arrives, so an oversized upload costs at most the limit in disk and
/// nothing in memory.
async fn submit(
    State(svc): State<Arc<Service>>,
    Query(opts): Query<JobOptions>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match submit_inner(svc, opts, headers, body).await {
        Ok(s) => (StatusCode::ACCEPTED, Json(s)).into_response(),
        Err(f) => f.into_response(),
    }
}

async fn submit_inner(
    svc: Arc<Service>,
    opts: JobOptions,
    headers: HeaderMap,
    body: Body,
) -> Result<valise_protocol::JobStatus, Failure> {
    let req = Request {
        language: opts.language.clone(),
        translate: opts.translate,
    };
    let model = svc.admit(&req, opts.model.as_deref()).map_err(Failure)?;
    let limit = svc.config().limits.max_file_size.bytes();
    let too_large = |n: u64| {
        Failure(ApiError::new(
            "too_large",
            format!("the file is larger than the {limit} bytes allowed ({n} bytes or more)"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > limit) {
        if len - limit <= DRAIN_MAX {
            drain(body, DRAIN_MAX).await;
        }
        return Err(too_large(len));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let path = svc.spool_path(&id);
    let io_fail = |e: std::io::Error| {
        Failure(ApiError::new(
            "internal",
            format!("cannot store the upload: {e}"),
        ))
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(io_fail)?;
    let mut written = 0u64;
    let mut body = body;
    let copy: Result<(), Failure> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| bad(format!("upload interrupted: {e}")))?;
            if let Some(data) = frame.data_ref() {
                written += data.len() as u64;
                if written > limit {
                    return Err(too_large(written));
                }
                file.write_all(data).await.map_err(io_fail)?;
            }
        }
        file.flush().await.map_err(io_fail)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(f) = copy {
        let _ = tokio::fs::remove_file(&path).await;
        if f.0.code == "too_large" {
            drain(body, DRAIN_MAX).await;
        }
        return Err(f);
    }
    if written == 0 {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(Failure(ApiError::new("empty", "the upload is empty")));
    }
    Ok(svc.submit(id, model, path, req))
}
