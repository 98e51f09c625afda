//! The dispatcher: moves jobs from the portal's queue to the engines and records what
//! comes back. One task, woken by new jobs and by a tick.
//!
//! * Transcriptions: up to `transcribe_in_flight` handed to the engine at once, in
//!   [`jobs::fair_order`]; each tick polls their progress. The engine forgetting a job
//!   (it restarted) or not answering sends the job back to the queue; after
//!   `max_attempts` tries it fails with the reason.
//! * A planned stop of an engine (SIGTERM: restart, update, shutdown) is not a try: the
//!   engine reports the jobs it drops as failed with `engine_stopping` (and refuses work with
//!   it) before it exits, and the portal queues them again without counting
//!   ([`requeue_planned`]); a translation request that never reached the engine (connection
//!   refused) does not count either. Only the engine's SIGTERM handler answers
//!   `engine_stopping`, so a job that crashes the engine still uses up its tries (DESIGN.md,
//!   "Planned engine restarts").
//! * Documents and transcript translations: one at a time on a task of their own (the
//!   engine batches sentences internally; one document already keeps it busy).
//! * Retention runs here too, every few minutes.
//!
//! At start-up, translation jobs that were running are re-queued (their request died with
//! the previous portal); transcriptions keep their engine job id and are polled as usual.

use std::time::{Duration, Instant};

use valise_engine_client::ClientError;
use valise_protocol::transcript::{Format, Transcript};
use valise_protocol::{ApiError, JobOptions, JobState};

use crate::error::{PortalError, Result};
use crate::jobs::{self, Engine, Job, Kind, Outcome, State};
use crate::retention;
use crate::state::AppState;
use crate::transcripts;

const TICK: Duration = Duration::from_millis(500);
const RETENTION_EVERY: Duration = Duration::from_secs(300);

pub async fn run(st: AppState) {
    if let Err(e) = recover(&st).await {
        tracing::error!(error = %e, "recovering jobs at start-up");
    }
    let mut last_purge: Option<Instant> = None;
    let mut translating: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        if let Err(e) = step_transcriptions(&st).await {
            tracing::warn!(error = %e, "dispatching transcriptions");
        }
        if translating.as_ref().is_none_or(|t| t.is_finished()) {
            translating = match next_translation(&st).await {
                Ok(Some(job)) => {
                    let st2 = st.clone();
                    Some(tokio::spawn(async move { run_translation(st2, job).await }))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatching translations");
                    None
                }
            };
        }
        if last_purge.is_none_or(|t| t.elapsed() > RETENTION_EVERY) {
            last_purge = Some(Instant::now());
            let files = st.files.clone();
            let days = st.config.retention_days;
            let idle = (st.config.sessions.idle_minutes * 60) as i64;
            let max = (st.config.sessions.max_hours * 3600) as i64;
            match st
                .db
                .run(move |c| {
                    crate::accounts::purge_sessions(c, idle, max)?;
                    retention::purge(c, &files, days)
                })
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(jobs = n, "retention: deleted expired jobs");
                    st.forget.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention purge failed"),
            }
        }
        tokio::select! {
            _ = st.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Runs the retention purge now (admin change, tests).
pub async fn purge_now(st: &AppState) -> Result<usize> {
    let files = st.files.clone();
    let days = st.config.retention_days;
    st.db.run(move |c| retention::purge(c, &files, days)).await
}

async fn recover(st: &AppState) -> Result<()> {
    st.db
        .run(|c| {
            for j in jobs::of_state(c, State::Running)? {
                if j.kind.engine() == Engine::Translate {
                    jobs::requeue(c, &j.id, &restarted(), true)?;
                }
            }
            Ok(())
        })
        .await
}

fn restarted() -> ApiError {
    ApiError::new(
        "retrying",
        "the portal restarted while this job was running; it was queued again",
    )
}

fn set_up(st: &AppState, engine: Engine, up: bool) {
    if let Ok(mut g) = st.engines_up.lock() {
        match engine {
            Engine::Transcribe => g.transcribe = up,
            Engine::Translate => g.translate = up,
        }
    }
}

/// The engine vanished under `job`: queue it again, or fail it after too many tries.
async fn engine_lost(st: &AppState, job: &Job, what: &str) -> Result<()> {
    let max = st.config.engines.max_attempts;
    let id = job.id.clone();
    let attempts = job.attempts;
    let what = what.to_owned();
    st.db
        .run(move |c| {
            if attempts >= max {
                jobs::set_failed(
                    c,
                    &id,
                    &ApiError::new(
                        "engine_failed",
                        format!(
                            "the engine stopped {attempts} times while working on this job ({what})"
                        ),
                    ),
                )
            } else {
                jobs::requeue(
                    c,
                    &id,
                    &ApiError::new("retrying", format!("{what}; the job was queued again")),
                    true,
                )
            }
        })
        .await
}

/// The engine stopped as planned (`engine_stopping`), or never received the job: queue it
/// again without counting the try.
async fn requeue_planned(st: &AppState, job: &Job, what: &str) -> Result<()> {
    let id = job.id.clone();
    let why = ApiError::new("retrying", format!("{what}; the job was queued again"));
    tracing::info!(job = %id, "{what}; queued again, not counted as a try");
    st.db.run(move |c| jobs::requeue(c, &id, &why, false)).await
}

async fn step_transcriptions(st: &AppState) -> Result<()> {
    let (running, queued) = st
        .db
        .run(|c| {
            let r: Vec<Job> = jobs::of_state(c, State::Running)?
                .into_iter()
                .filter(|j| j.kind == Kind::Transcription)
                .collect();
            let q: Vec<Job> = jobs::of_state(c, State::Queued)?
                .into_iter()
                .filter(|j| j.kind == Kind::Transcription)
                .collect();
            Ok((r, q))
        })
        .await?;
    let mut in_flight = running.len();
    for job in &running {
        poll(st, job).await?;
    }
    if queued.is_empty() {
        return Ok(());
    }
    let up = st.transcribe.is_up().await;
    set_up(st, Engine::Transcribe, up);
    if !up {
        return Ok(());
    }
    let order = jobs::fair_order(&queued, &running);
    for id in order {
        if in_flight >= st.config.engines.transcribe_in_flight as usize {
            break;
        }
        let Some(job) = queued.iter().find(|j| j.id == id) else {
            continue;
        };
        submit(st, job).await?;
        in_flight += 1;
    }
    Ok(())
}

async fn submit(st: &AppState, job: &Job) -> Result<()> {
    let opts = JobOptions {
        language: job.options.language.clone().filter(|l| l != "auto"),
        translate: job.options.translate,
        model: None,
    };
    let input = st.files.input(&job.id)?;
    let id = job.id.clone();
    // A delete while the recording streams to the engine cuts the stream: the engine drops
    // the partial copy.
    let request = st.engine_request(&job.id);
    let handed = tokio::select! {
        r = st.transcribe.submit_file(&input, &opts) => r,
        () = request.token.cancelled() => return Ok(()),
    };
    drop(request);
    match handed {
        Ok(status) => {
            let engine_id = status.id.clone();
            let gone = st
                .db
                .run(move |c| {
                    if jobs::set_running(c, &id, Some(&engine_id))? {
                        return Ok(false);
                    }
                    // Deleted while it was handed over: the engine forgets it too.
                    c.execute(
                        "INSERT INTO engine_forget (job_id, engine_job, created_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![id, engine_id, crate::db::now()],
                    )?;
                    Ok(true)
                })
                .await?;
            if gone {
                st.forget.notify_one();
            }
            Ok(())
        }
        Err(ClientError::Api(a)) if a.is_engine_stopping() => {
            // Stopping: the job waits here for the engine to come back.
            set_up(st, Engine::Transcribe, false);
            Ok(())
        }
        Err(e) if e.refusal().is_some() => {
            // The engine refused the file itself (format, length, limits): final.
            let e = e
                .refusal()
                .unwrap_or_else(|| ApiError::new("failed", "failed"));
            st.db.run(move |c| jobs::set_failed(c, &id, &e)).await
        }
        Err(e) => {
            set_up(st, Engine::Transcribe, false);
            tracing::warn!(error = %e, "transcription engine unavailable at submission");
            Ok(())
        }
    }
}

async fn poll(st: &AppState, job: &Job) -> Result<()> {
    let Some(engine_id) = job.engine_job.clone() else {
        return engine_lost(st, job, "the job had no engine id").await;
    };
    let status = match st.transcribe.status(&engine_id).await {
        Ok(s) => s,
        Err(ClientError::Api(e)) if e.code == "not_found" => {
            set_up(st, Engine::Transcribe, true);
            return engine_lost(st, job, "the transcription engine restarted").await;
        }
        Err(e) => {
            set_up(st, Engine::Transcribe, false);
            tracing::warn!(error = %e, "transcription engine unavailable");
            return engine_lost(st, job, "the transcription engine stopped").await;
        }
    };
    set_up(st, Engine::Transcribe, true);
    let id = job.id.clone();
    if status.state == JobState::Running {
        st.live.update(&id, status.position_secs, status.eta_secs);
    } else {
        st.live.remove(&id);
    }
    match status.state {
        JobState::Queued | JobState::Running => {
            let duration = status.media.as_ref().and_then(|m| m.duration_secs);
            let p = f64::from(status.progress);
            st.db
                .run(move |c| jobs::set_progress(c, &id, p, duration))
                .await
        }
        JobState::Done => {
            let json = match st.transcribe.result(&engine_id, Format::Json).await {
                Ok(j) => j,
                Err(e) if e.is_unavailable() => {
                    return engine_lost(st, job, "the transcription engine stopped").await;
                }
                Err(e) => return Err(e.into()),
            };
            let t: Transcript = serde_json::from_str(&json)
                .map_err(|e| PortalError::Internal(format!("engine result unreadable: {e}")))?;
            store_transcript(st, &job.id, &t).await?;
            // The engine's copy of the upload goes as soon as the result is safe here.
            let _ = st.transcribe.cancel(&engine_id).await;
            Ok(())
        }
        JobState::Failed
            if status
                .error
                .as_ref()
                .is_some_and(ApiError::is_engine_stopping) =>
        {
            let _ = st.transcribe.cancel(&engine_id).await;
            requeue_planned(st, job, "the transcription engine stopped as planned").await
        }
        JobState::Failed | JobState::Cancelled => {
            let e = status
                .error
                .unwrap_or_else(|| ApiError::new("cancelled", "the engine cancelled the job"));
            let _ = st.transcribe.cancel(&engine_id).await;
            st.db.run(move |c| jobs::set_failed(c, &id, &e)).await
        }
    }
}

async fn store_transcript(st: &AppState, id: &str, t: &Transcript) -> Result<()> {
    let bytes = serde_json::to_vec(t).map_err(|e| PortalError::Internal(e.to_string()))?;
    let outcome = Outcome {
        detected_language: Some(t.language.clone()),
        duration_secs: Some(t.duration),
        report: None,
        search_text: Some(t.text().to_lowercase()),
    };
    commit_result(st, id, bytes, outcome).await
}

/// Writes a job's result to `incoming/`, then, in one step under the database lock, moves
/// it into the job's directory and marks the job done, only if the job still runs: a job
/// deleted meanwhile gets no directory back, and its result is removed.
async fn commit_result(st: &AppState, id: &str, bytes: Vec<u8>, outcome: Outcome) -> Result<()> {
    let files = st.files.clone();
    let id = id.to_owned();
    // Written (and fsynced) outside the database lock; only the move happens under it.
    tokio::task::spawn_blocking({
        let (files, id) = (files.clone(), id.clone());
        move || files.write_incoming_result(&id, &bytes)
    })
    .await
    .map_err(|e| PortalError::Internal(e.to_string()))??;
    st.db
        .run(move |c| {
            let running = jobs::get_any(c, &id)?.is_some_and(|j| j.state == State::Running);
            files.place_result(&id, running)?;
            if running {
                jobs::set_done(c, &id, &outcome)?;
            }
            Ok(())
        })
        .await
}

async fn next_translation(st: &AppState) -> Result<Option<Job>> {
    let next = st
        .db
        .run(|c| {
            let q: Vec<Job> = jobs::of_state(c, State::Queued)?
                .into_iter()
                .filter(|j| j.kind.engine() == Engine::Translate)
                .collect();
            let r: Vec<Job> = jobs::of_state(c, State::Running)?
                .into_iter()
                .filter(|j| j.kind.engine() == Engine::Translate)
                .collect();
            Ok(jobs::fair_order(&q, &r)
                .first()
                .and_then(|id| q.iter().find(|j| j.id == *id).cloned()))
        })
        .await?;
    let Some(job) = next else { return Ok(None) };
    let up = st.translate.is_up().await;
    set_up(st, Engine::Translate, up);
    if !up {
        return Ok(None);
    }
    let id = job.id.clone();
    if !st.db.run(move |c| jobs::set_running(c, &id, None)).await? {
        return Ok(None);
    }
    Ok(Some(Job {
        attempts: job.attempts + 1,
        ..job
    }))
}

async fn run_translation(st: AppState, job: Job) {
    let request = st.engine_request(&job.id);
    let result = tokio::select! {
        r = translate_job(&st, &job) => r,
        // Deleted while the engine works on it: the request is dropped (its connection
        // closed) and nothing is written.
        () = request.token.cancelled() => {
            st.wake.notify_one();
            return;
        }
    };
    drop(request);
    let id = job.id.clone();
    let saved = match result {
        Ok((bytes, outcome)) => commit_result(&st, &id, bytes, outcome).await,
        Err(ClientError::Api(a)) if a.is_engine_stopping() => {
            set_up(&st, Engine::Translate, false);
            requeue_planned(&st, &job, "the translation engine stopped as planned").await
        }
        Err(ClientError::Connect { .. }) => {
            // The request never reached the engine: the job cannot have been at fault.
            set_up(&st, Engine::Translate, false);
            requeue_planned(&st, &job, "the translation engine was not reachable").await
        }
        Err(e) if e.refusal().is_some() => {
            let e = e
                .refusal()
                .unwrap_or_else(|| ApiError::new("failed", "failed"));
            st.db.run(move |c| jobs::set_failed(c, &id, &e)).await
        }
        Err(e) => {
            set_up(&st, Engine::Translate, false);
            tracing::warn!(error = %e, "translation engine unavailable");
            engine_lost(&st, &job, "the translation engine stopped").await
        }
    };
    if let Err(e) = saved {
        tracing::error!(error = %e, "recording a translation job's outcome");
    }
    st.wake.notify_one();
}

/// Runs a document or transcript translation; returns the result's bytes and outcome.
async fn translate_job(st: &AppState, job: &Job) -> Result<(Vec<u8>, Outcome), ClientError> {
    let source = job.options.source.clone().unwrap_or_else(|| "auto".into());
    let target = job.options.target.clone().unwrap_or_default();
    match job.kind {
        Kind::Document => {
            let input = st
                .files
                .input(&job.id)
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let format = job.options.format.clone().unwrap_or_else(|| "txt".into());
            let doc = st
                .translate
                .translate_document(&input, &format, &source, &target)
                .await?;
            let detected = doc.report.as_ref().map(|r| r.source.clone());
            Ok((
                doc.bytes.to_vec(),
                Outcome {
                    detected_language: detected,
                    report: doc.report.and_then(|r| serde_json::to_value(r).ok()),
                    ..Outcome::default()
                },
            ))
        }
        _ => {
            let parent = job.parent.clone().unwrap_or_default();
            let files = st.files.clone();
            let (t, _) = tokio::task::spawn_blocking(move || transcripts::load(&files, &parent))
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .map_err(|e| {
                    ClientError::Api(ApiError::new(
                        "parent_gone",
                        format!("the transcript to translate is gone: {e}"),
                    ))
                })?;
            let source = if source == "auto" {
                t.language.clone()
            } else {
                source
            };
            let out = st
                .translate
                .translate_transcript(&t, &source, &target)
                .await?;
            let bytes = serde_json::to_vec(&out).map_err(|e| ClientError::Http(e.to_string()))?;
            Ok((
                bytes,
                Outcome {
                    detected_language: Some(source),
                    duration_secs: Some(out.duration),
                    search_text: Some(out.text().to_lowercase()),
                    report: None,
                },
            ))
        }
    }
}

/// How often rows of `engine_forget` an engine could not take yet are tried again.
const FORGET_RETRY: Duration = Duration::from_secs(2);

/// Makes the engines forget deleted jobs (see `migrations/0003_jobs.sql`): woken by every
/// delete, and every few seconds for what an unreachable engine could not take.
pub async fn forget_loop(st: AppState) {
    loop {
        if let Err(e) = forget_deleted(&st).await {
            tracing::warn!(error = %e, "making the engines forget deleted jobs");
        }
        tokio::select! {
            _ = st.forget.notified() => {}
            _ = tokio::time::sleep(FORGET_RETRY) => {}
        }
    }
}

/// One pass over `engine_forget`: a request in flight for the job is cut, the transcription
/// engine's job (queued, running or finished) is deleted there with its copy of the upload
/// and its result. A row stays until the engine has answered.
pub async fn forget_deleted(st: &AppState) -> Result<usize> {
    let rows: Vec<(i64, String, Option<String>)> = st
        .db
        .run(|c| {
            let mut q =
                c.prepare("SELECT id, job_id, engine_job FROM engine_forget ORDER BY id")?;
            let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await?;
    let mut done = Vec::new();
    for (row, job_id, engine_job) in rows {
        if let Ok(m) = st.in_engine.lock()
            && let Some(t) = m.get(&job_id)
        {
            t.cancel();
        }
        let forgotten = match engine_job {
            None => true,
            Some(e) => match st.transcribe.cancel(&e).await {
                Ok(_) => true,
                // Gone already: collected, expired, or the engine restarted since.
                Err(ClientError::Api(a)) if a.code == "not_found" => true,
                Err(e) => {
                    tracing::debug!(error = %e, "the transcription engine could not forget a job yet");
                    false
                }
            },
        };
        if forgotten {
            done.push(row);
        }
    }
    let n = done.len();
    if n > 0 {
        st.db
            .run(move |c| {
                for row in done {
                    c.execute("DELETE FROM engine_forget WHERE id = ?1", [row])?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(n)
}
