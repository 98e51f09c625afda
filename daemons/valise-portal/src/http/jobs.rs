//! Jobs: create (uploads), follow, read and correct transcripts, export, delete.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use valise_protocol::transcript::Format;
use valise_protocol::translate::DocumentFormat;

use super::session::JsonBody;
use super::upload;
use crate::audit;
use crate::auth::Auth;
use crate::error::{PortalError, Result};
use crate::jobs::{self, Job, Kind, NewJob, Options, State as JobState};
use crate::state::AppState;
use crate::storage::{self, Incoming};
use crate::transcripts;
use crate::view;

/// A job of the caller's, decorated for display.
pub async fn load_view(st: &AppState, user_id: i64, id: String) -> Result<Job> {
    let up = st.engines_up();
    let in_flight = st.config.engines.transcribe_in_flight;
    st.db
        .run(move |c| {
            let mut j = [jobs::get(c, user_id, &id)?];
            view::decorate(c, &mut j, up, in_flight)?;
            Ok(j)
        })
        .await
        .map(|mut j| {
            st.live.apply(&mut j);
            let [j] = j;
            j
        })
}

#[derive(Debug, Deserialize)]
pub struct TranscribeQuery {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    translate: bool,
    #[serde(default)]
    filename: Option<String>,
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn check_language(l: &str) -> Result<()> {
    if l == "auto"
        || (l.len() <= 8 && l.chars().all(|c| c.is_ascii_lowercase() || c == '-')) && !l.is_empty()
    {
        Ok(())
    } else {
        Err(PortalError::BadRequest(format!("unknown language {l:?}")))
    }
}

/// Reserves a place for an upload of `auth`'s (job limit and quota, uploads in flight
/// counted), then streams it into `incoming/` under the limit for `kind`. Dropped before it
/// is registered, the saved upload is removed and its place released.
pub async fn save_upload<E: std::fmt::Display>(
    st: &AppState,
    auth: &Auth,
    kind: Kind,
    chunks: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    declared: Option<u64>,
) -> Result<Incoming> {
    let uid = auth.user.id;
    let limits = &st.config.limits;
    let (max_jobs, quota) = (
        limits.max_jobs_per_user,
        limits.max_storage_per_user.bytes(),
    );
    let limit = match kind {
        Kind::Transcription => limits.max_upload.bytes(),
        _ => limits.max_document.bytes(),
    };
    let uploads = st.uploads.clone();
    let reservation = st
        .db
        .run(move |c| {
            // Too large for any quota: say so rather than "quota".
            let declared = declared.filter(|d| *d <= limit);
            uploads.reserve(c, uid, max_jobs, quota, declared)
        })
        .await?;
    let id = jobs::new_id();
    let dest = st.files.incoming_upload(&id)?;
    let bound = limit.min(reservation.room);
    match upload::save(chunks, &dest, bound, declared).await {
        Ok((bytes, head)) => Ok(Incoming::new(id, bytes, head, dest, reservation)),
        // Stopped by the quota, not by the size limit.
        Err(PortalError::TooLarge(_)) if bound < limit && declared.is_none_or(|d| d <= limit) => {
            Err(storage::quota_exceeded(quota))
        }
        Err(e) => Err(e),
    }
}

/// Checks a saved upload's type, then records the job (row, audit, the file moved into
/// its directory, the quota checked exactly) and wakes the dispatcher. A refused upload's
/// file is removed.
pub async fn register_upload(
    st: &AppState,
    auth: &Auth,
    upload: Incoming,
    kind: Kind,
    title: String,
    options: Options,
) -> Result<Job> {
    let mut options = options;
    let checked = match kind {
        Kind::Transcription => upload::sniff_media(&upload.head).map(|_| ()).ok_or_else(|| {
            PortalError::UnsupportedType(
                "this is not a recording the box can read (WAV, FLAC, MP3, OGG, Opus, M4A/AAC, MP4, WebM)".into(),
            )
        }),
        _ => upload::sniff_document(&title, &upload.head).map(|f| {
            options.format = Some(f.to_owned());
        }),
    };
    checked?;
    let uid = auth.user.id;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let id = upload.id.clone();
    let files = st.files.clone();
    let quota = st.config.limits.max_storage_per_user.bytes();
    st.db
        .run(move |c| {
            let bytes = upload.bytes;
            if storage::stored_bytes(c, uid)? + bytes > quota {
                return Err(storage::quota_exceeded(quota));
            }
            let tx = c.transaction()?;
            jobs::insert(
                &tx,
                &NewJob {
                    id: &upload.id,
                    user_id: uid,
                    kind,
                    title: &title,
                    options: &options,
                    input_bytes: bytes,
                    parent: None,
                },
            )?;
            audit::record(
                &tx,
                &actor,
                "job_created",
                &format!("job={} kind={} bytes={bytes}", upload.id, kind.as_str()),
                ip.as_deref(),
            )?;
            if let Err(e) = files.adopt_input(&upload.id) {
                let _ = files.remove(&upload.id);
                return Err(e);
            }
            tx.commit()?;
            upload.adopted();
            Ok(())
        })
        .await?;
    st.wake.notify_one();
    load_view(st, uid, id).await
}

/// A whole upload from a raw request body.
pub async fn accept_upload(
    st: &AppState,
    auth: &Auth,
    kind: Kind,
    title: String,
    options: Options,
    headers: &HeaderMap,
    body: Body,
) -> Result<Job> {
    let upload = save_upload(
        st,
        auth,
        kind,
        body.into_data_stream(),
        content_length(headers),
    )
    .await?;
    register_upload(st, auth, upload, kind, title, options).await
}

pub async fn create_transcription(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<TranscribeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Job>)> {
    let language = q.language.unwrap_or_else(|| "auto".into());
    check_language(&language)?;
    let options = Options {
        language: Some(language),
        translate: q.translate,
        ..Options::default()
    };
    let title = upload::clean_title(q.filename.as_deref().unwrap_or("recording"));
    let job = accept_upload(
        &st,
        &auth,
        Kind::Transcription,
        title,
        options,
        &headers,
        body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(job)))
}

#[derive(Debug, Deserialize)]
pub struct DocumentQuery {
    #[serde(default)]
    source: Option<String>,
    target: String,
    filename: String,
}

pub async fn create_document(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<DocumentQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Job>)> {
    let source = q.source.unwrap_or_else(|| "auto".into());
    check_language(&source)?;
    check_language(&q.target)?;
    let options = Options {
        source: Some(source),
        target: Some(q.target),
        ..Options::default()
    };
    let title = upload::clean_title(&q.filename);
    let job = accept_upload(&st, &auth, Kind::Document, title, options, &headers, body).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateTranscript {
    target: String,
    #[serde(default)]
    source: Option<String>,
}

pub async fn translate_transcript(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<TranslateTranscript>,
) -> Result<(StatusCode, Json<Job>)> {
    check_language(&req.target)?;
    let source = req.source.unwrap_or_else(|| "auto".into());
    check_language(&source)?;
    let uid = auth.user.id;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let new_id = jobs::new_id();
    let nid = new_id.clone();
    st.db
        .run(move |c| {
            let parent = jobs::get(c, uid, &id)?;
            if parent.state != JobState::Done || parent.kind == Kind::Document {
                return Err(PortalError::NotReady);
            }
            let options = Options {
                source: Some(source),
                target: Some(req.target.clone()),
                ..Options::default()
            };
            let title = format!("{} ({})", parent.title, req.target);
            jobs::insert(
                c,
                &NewJob {
                    id: &nid,
                    user_id: uid,
                    kind: Kind::TranscriptTranslation,
                    title: &title,
                    options: &options,
                    input_bytes: 0,
                    parent: Some(&parent.id),
                },
            )?;
            audit::record(
                c,
                &actor,
                "job_created",
                &format!("job={nid} kind=transcript_translation parent={}", parent.id),
                ip.as_deref(),
            )
        })
        .await?;
    st.wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(load_view(&st, uid, new_id).await?),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    /// Unix seconds: jobs created before (paging).
    #[serde(default)]
    before: Option<i64>,
}

pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Job>>> {
    let uid = auth.user.id;
    let up = st.engines_up();
    let in_flight = st.config.engines.transcribe_in_flight;
    let list = st
        .db
        .run(move |c| {
            let mut l = jobs::list(c, uid, q.q.as_deref(), q.limit.unwrap_or(50), q.before)?;
            view::decorate(c, &mut l, up, in_flight)?;
            Ok(l)
        })
        .await?;
    let mut list = list;
    st.live.apply(&mut list);
    Ok(Json(list))
}

pub async fn get(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Job>> {
    Ok(Json(load_view(&st, auth.user.id, id).await?))
}

pub async fn delete(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let uid = auth.user.id;
    let files = st.files.clone();
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    st.db
        .run(move |c| {
            jobs::get(c, uid, &id)?;
            // The row's trigger records what the engine must forget (0003_jobs.sql).
            crate::retention::delete_job(c, &files, &id)?;
            audit::record(
                c,
                &actor,
                "job_deleted",
                &format!("job={id}"),
                ip.as_deref(),
            )
        })
        .await?;
    st.forget_deleted();
    Ok(StatusCode::NO_CONTENT)
}

async fn owned_done(st: &AppState, auth: &Auth, id: &str) -> Result<Job> {
    let uid = auth.user.id;
    let id = id.to_owned();
    let job = st.db.run(move |c| jobs::get(c, uid, &id)).await?;
    if job.state != JobState::Done {
        return Err(PortalError::NotReady);
    }
    Ok(job)
}

pub async fn transcript(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let job = owned_done(&st, &auth, &id).await?;
    if job.kind == Kind::Document {
        return Err(PortalError::NotFound);
    }
    let files = st.files.clone();
    let v = tokio::task::spawn_blocking(move || {
        transcripts::load(&files, &job.id).map(|(t, e)| transcripts::to_json(&t, &e))
    })
    .await
    .map_err(|e| PortalError::Internal(e.to_string()))??;
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialQuery {
    #[serde(default)]
    from: Option<u32>,
}

/// `GET /api/jobs/{id}/partial?from=N`: a transcription's segments so far, while it runs (so
/// the first minutes of a meeting can be read while the rest is transcribed), from the N-th.
/// Queued: none yet; done: the stored transcript's.
pub async fn partial(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PartialQuery>,
) -> Result<Json<serde_json::Value>> {
    let uid = auth.user.id;
    let job = st.db.run(move |c| jobs::get(c, uid, &id)).await?;
    if job.kind == Kind::Document {
        return Err(PortalError::NotFound);
    }
    let from = q.from.unwrap_or(0);
    let empty = |state: JobState| {
        serde_json::json!({
            "state": state, "segments": [], "total": 0, "position_secs": 0.0,
        })
    };
    match (job.state, job.engine_job.as_deref()) {
        (JobState::Running, Some(engine_id)) => {
            match st.transcribe.segments(engine_id, from).await {
                Ok(p) => Ok(Json(serde_json::json!({
                    "state": JobState::Running,
                    "segments": p.segments,
                    "total": p.total,
                    "position_secs": p.position_secs,
                    "duration_secs": p.duration_secs,
                }))),
                // The engine lost it or is away: nothing to show until the dispatcher decides.
                Err(_) => Ok(Json(empty(JobState::Running))),
            }
        }
        (JobState::Done, _) => {
            let files = st.files.clone();
            let id = job.id.clone();
            let t = tokio::task::spawn_blocking(move || transcripts::load(&files, &id))
                .await
                .map_err(|e| PortalError::Internal(e.to_string()))??
                .0;
            let total = t.segments.len();
            let segments: Vec<_> = t.segments.into_iter().skip(from as usize).collect();
            Ok(Json(serde_json::json!({
                "state": JobState::Done,
                "segments": segments,
                "total": total,
                "position_secs": t.duration,
                "duration_secs": t.duration,
            })))
        }
        (state, _) => Ok(Json(empty(state))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    index: usize,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corrections {
    segments: Vec<Correction>,
}

pub async fn correct(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Corrections>,
) -> Result<Json<serde_json::Value>> {
    let job = owned_done(&st, &auth, &id).await?;
    if job.kind == Kind::Document {
        return Err(PortalError::NotFound);
    }
    let files = st.files.clone();
    let jid = job.id.clone();
    let (value, search, count) = tokio::task::spawn_blocking(move || {
        let (t, mut edits) = transcripts::load(&files, &jid)?;
        for c in &req.segments {
            if c.index >= t.segments.len() {
                return Err(PortalError::BadRequest(format!(
                    "segment {} does not exist (the transcript has {})",
                    c.index,
                    t.segments.len()
                )));
            }
            edits.insert(c.index, transcripts::clean_text(&c.text)?);
        }
        transcripts::save_edits(&files, &jid, &edits)?;
        let (t, edits) = transcripts::load(&files, &jid)?;
        Ok((
            transcripts::to_json(&t, &edits),
            t.text().to_lowercase(),
            req.segments.len(),
        ))
    })
    .await
    .map_err(|e| PortalError::Internal(e.to_string()))??;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    // The old text leaves the WAL's page images too.
    st.db.mark_erased();
    st.db
        .run(move |c| {
            c.execute(
                "UPDATE jobs SET search_text = lower(title) || ' ' || ?2 WHERE id = ?1",
                rusqlite::params![job.id, search],
            )?;
            audit::record(
                c,
                &actor,
                "transcript_corrected",
                &format!("job={} segments={count}", job.id),
                ip.as_deref(),
            )
        })
        .await?;
    Ok(Json(value))
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    format: String,
}

/// `attachment; filename="..."` with an ASCII fallback and the UTF-8 name (RFC 6266/5987).
pub fn attachment(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let utf8 = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn stem(title: &str) -> &str {
    title
        .rsplit_once('.')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
        .unwrap_or(title)
}

pub async fn export(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    let job = owned_done(&st, &auth, &id).await?;
    if job.kind == Kind::Document {
        return Err(PortalError::NotFound);
    }
    let files = st.files.clone();
    let title = job.title.clone();
    let name_stem = stem(&title).to_owned();
    let fmt = q.format.clone();
    let (bytes, ctype, ext) = tokio::task::spawn_blocking(move || {
        let (t, _) = transcripts::load(&files, &job.id)?;
        if fmt == "docx" {
            return Ok((
                crate::export::docx(&t, &title)?,
                crate::export::DOCX_TYPE,
                "docx",
            ));
        }
        let f: Format = fmt
            .parse()
            .map_err(|_| PortalError::BadRequest("format is txt, srt, vtt, json or docx".into()))?;
        Ok::<_, PortalError>((t.render(f).into_bytes(), f.content_type(), f.as_str()))
    })
    .await
    .map_err(|e| PortalError::Internal(e.to_string()))??;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let detail = format!("job={id} format={ext}");
    st.db
        .run(move |c| audit::record(c, &actor, "transcript_exported", &detail, ip.as_deref()))
        .await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        attachment(&format!("{name_stem}.{ext}")),
    );
    Ok(r)
}

pub async fn media(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let uid = auth.user.id;
    let jid = id.clone();
    let job = st.db.run(move |c| jobs::get(c, uid, &jid)).await?;
    if job.kind != Kind::Transcription {
        return Err(PortalError::NotFound);
    }
    let path = st.files.input(&job.id)?;
    crate::range::serve_file(&path, &headers).await
}

pub async fn result(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = owned_done(&st, &auth, &id).await?;
    if job.kind != Kind::Document {
        return Err(PortalError::NotFound);
    }
    let path = st.files.result(&job.id)?;
    let bytes = tokio::fs::read(&path).await?;
    let format = job.options.format.as_deref().unwrap_or("txt");
    let ctype = DocumentFormat::parse(format)
        .unwrap_or_default()
        .content_type();
    let target = job.options.target.as_deref().unwrap_or("xx");
    let name = format!("{}.{target}.{format}", stem(&job.title));
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let detail = format!("job={} format={format}", job.id);
    st.db
        .run(move |c| audit::record(c, &actor, "document_downloaded", &detail, ip.as_deref()))
        .await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, attachment(&name));
    Ok(r)
}
