//! The job table: submission, queueing, running, results, cancellation, expiry.
//!
//! Jobs live in memory: the engine is a worker, the portal owns persistence and retries.
//! Uploaded media sit in the spool directory only while their job exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, Semaphore};
use valise_protocol::{ApiError, Health, JobState, JobStatus, PartialTranscript, Transcript};

use crate::TranscribeError;
use crate::config::Config;
use crate::engine::Engine;
use crate::pipeline::{self, JobCtx, Request, Settings};
use crate::slots::ComputeSlots;

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
struct Job {
    seq: u64,
    status: JobStatus,
    ctx: Arc<JobCtx>,
    result: Option<Arc<Transcript>>,
    spool: Option<PathBuf>,
    finished: Option<Instant>,
    /// Deleted while running: drop everything once the thread lets go.
    forget: bool,
    /// Dropped by a stop ([`Service::begin_stop`]): its status says `engine_stopping`.
    interrupted: bool,
    /// A client has read the status (interrupted jobs) or the result (done jobs) since.
    seen: bool,
}

/// The engine's state behind the API.
#[derive(Debug)]
pub struct Service {
    engine: Arc<Engine>,
    config: Config,
    slots: Arc<ComputeSlots>,
    running: Arc<Semaphore>,
    jobs: Mutex<HashMap<String, Job>>,
    next_seq: Mutex<u64>,
    /// Set by [`Service::begin_stop`]: no new work, health answers `engine_stopping`.
    stopping: AtomicBool,
    /// Woken whenever a client takes note of a job (status, result, delete).
    noticed: Notify,
}

impl Service {
    pub fn new(engine: Arc<Engine>, config: Config) -> Result<Arc<Self>, TranscribeError> {
        std::fs::create_dir_all(&config.spool_dir).map_err(|e| {
            TranscribeError::Internal(format!(
                "cannot create spool {}: {e}",
                config.spool_dir.display()
            ))
        })?;
        set_private(&config.spool_dir);
        // Leftovers of a previous run belong to jobs that no longer exist.
        if let Ok(rd) = std::fs::read_dir(&config.spool_dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Arc::new(Self {
            slots: Arc::new(ComputeSlots::new(config.compute_slots())),
            running: Arc::new(Semaphore::new(config.max_running_jobs as usize)),
            engine,
            config,
            jobs: Mutex::new(HashMap::new()),
            next_seq: Mutex::new(0),
            stopping: AtomicBool::new(false),
            noticed: Notify::new(),
        }))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses work the engine cannot take before the upload is read.
    pub fn admit(&self, req: &Request, model: Option<&str>) -> Result<String, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::engine_stopping());
        }
        let queued = self
            .jobs()
            .values()
            .filter(|j| j.status.state == JobState::Queued)
            .count();
        if queued >= self.config.max_queued_jobs as usize {
            return Err(ApiError::new(
                "busy",
                format!("{queued} jobs are already waiting; try again later"),
            ));
        }
        let m = self.engine.model(model).map_err(|e| e.to_api())?;
        pipeline::check_request(&m, req).map_err(|e| e.to_api())?;
        Ok(m.id.clone())
    }

    /// A fresh spool path for an upload.
    pub fn spool_path(&self, id: &str) -> PathBuf {
        self.config.spool_dir.join(format!("{id}.media"))
    }

    /// Registers an uploaded file as a job and starts it when a running slot frees up.
    pub fn submit(
        self: &Arc<Self>,
        id: String,
        model: String,
        spool: PathBuf,
        req: Request,
    ) -> JobStatus {
        let seq = {
            let mut n = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            *n
        };
        let ctx = Arc::new(JobCtx::default());
        let status = JobStatus {
            id: id.clone(),
            state: JobState::Queued,
            progress: 0.0,
            queue_position: None,
            model: model.clone(),
            media: None,
            error: None,
            created_at: now_unix(),
            started_at: None,
            finished_at: None,
            position_secs: None,
            eta_secs: None,
        };
        let mut jobs = self.jobs();
        jobs.insert(
            id.clone(),
            Job {
                seq,
                status,
                ctx: ctx.clone(),
                result: None,
                spool: Some(spool.clone()),
                finished: None,
                forget: false,
                interrupted: false,
                seen: false,
            },
        );
        // Admitted just before a stop began (`begin_stop` sets the flag before it takes the
        // table's lock): dropped like the others, never left queued in a stopping engine.
        if self.is_stopping()
            && let Some(j) = jobs.get_mut(&id)
        {
            interrupt(&id, j);
        }
        drop(jobs);
        tracing::info!(job = %id, %model, "job queued");
        let svc = self.clone();
        let task_id = id.clone();
        tokio::spawn(async move {
            let id = task_id;
            let permit = svc.running.clone().acquire_owned().await;
            if ctx.is_cancelled() || permit.is_err() {
                svc.finish(&id, Err(TranscribeError::Cancelled));
                return;
            }
            svc.set_running(&id);
            let svc2 = svc.clone();
            let id2 = id.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                svc2.run_job(&model, &spool, &req, &ctx)
            })
            .await
            .unwrap_or_else(|e| Err(TranscribeError::Internal(format!("job thread failed: {e}"))));
            svc.finish(&id2, outcome);
        });
        self.status(&id).unwrap_or_else(|| unreachable_status(&id))
    }

    fn run_job(
        &self,
        model: &str,
        spool: &Path,
        req: &Request,
        ctx: &Arc<JobCtx>,
    ) -> Result<Transcript, TranscribeError> {
        let model = self.engine.model(Some(model))?;
        let settings = settings_for(&self.config);
        pipeline::transcribe(
            &self.engine,
            &model,
            spool,
            req,
            &settings,
            ctx,
            &self.slots,
        )
    }

    fn set_running(&self, id: &str) {
        if let Some(j) = self.jobs().get_mut(id) {
            j.status.state = JobState::Running;
            j.status.started_at = Some(now_unix());
        }
    }

    fn finish(&self, id: &str, outcome: Result<Transcript, TranscribeError>) {
        let mut jobs = self.jobs();
        let Some(j) = jobs.get_mut(id) else { return };
        if let Some(p) = j.spool.take() {
            let _ = std::fs::remove_file(p);
        }
        if j.forget {
            jobs.remove(id);
            return;
        }
        if j.interrupted {
            // Its status was set by `begin_stop`; whatever the thread made of it is dropped.
            return;
        }
        j.status.finished_at = Some(now_unix());
        j.finished = Some(Instant::now());
        j.status.media = j.ctx.media();
        match outcome {
            Ok(t) => {
                j.status.state = JobState::Done;
                j.status.progress = 1.0;
                tracing::info!(job = %id, audio_s = t.duration, segments = t.segments.len(), "job done");
                j.result = Some(Arc::new(t));
            }
            Err(TranscribeError::Cancelled) => {
                j.status.state = JobState::Cancelled;
                tracing::info!(job = %id, "job cancelled");
            }
            Err(e) => {
                j.status.state = JobState::Failed;
                tracing::warn!(job = %id, code = e.code(), error = %e, "job failed");
                j.status.error = Some(e.to_api());
            }
        }
    }

    pub fn status(&self, id: &str) -> Option<JobStatus> {
        let mut jobs = self.jobs();
        let j = jobs.get_mut(id)?;
        if j.interrupted && !j.seen {
            j.seen = true;
            self.noticed.notify_one();
        }
        let j = jobs.get(id)?;
        Some(live_status(j, &jobs))
    }

    pub fn list(&self) -> Vec<JobStatus> {
        let jobs = self.jobs();
        let mut v: Vec<(u64, JobStatus)> = jobs
            .values()
            .map(|j| (j.seq, live_status(j, &jobs)))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// What job `id` has transcribed so far, from its `from`-th segment: while it runs, the
    /// segments of the batches done; once done, the transcript's.
    pub fn partial(&self, id: &str, from: usize) -> Option<PartialTranscript> {
        let jobs = self.jobs();
        let j = jobs.get(id)?;
        let duration_secs = j.ctx.media().and_then(|m| m.duration_secs);
        let (segments, total, position_secs) = match &j.result {
            Some(t) => (
                t.segments.get(from..).unwrap_or_default().to_vec(),
                t.segments.len(),
                t.duration,
            ),
            None => {
                let (segs, total) = j.ctx.segments_from(from);
                (segs, total, j.ctx.position_secs())
            }
        };
        Some(PartialTranscript {
            state: j.status.state,
            segments,
            total: total as u32,
            position_secs,
            duration_secs,
        })
    }

    pub fn result(&self, id: &str) -> Result<Arc<Transcript>, ApiError> {
        let mut jobs = self.jobs();
        let j = jobs
            .get_mut(id)
            .ok_or_else(|| ApiError::new("not_found", "no such job"))?;
        match (&j.result, j.status.state) {
            (Some(t), _) => {
                if !j.seen {
                    j.seen = true;
                    self.noticed.notify_one();
                }
                Ok(t.clone())
            }
            (None, JobState::Failed) => Err(j
                .status
                .error
                .clone()
                .unwrap_or_else(|| ApiError::new("engine_failed", "the job failed"))),
            (None, JobState::Cancelled) => Err(ApiError::new("cancelled", "the job was cancelled")),
            (None, _) => Err(ApiError::new("not_ready", "the job has not finished")),
        }
    }

    /// Cancels the job (queued or running) and forgets it, its upload and its result.
    pub fn delete(&self, id: &str) -> Option<JobStatus> {
        let mut jobs = self.jobs();
        let j = jobs.get_mut(id)?;
        j.ctx.cancel();
        let was = j.status.state;
        let mut status = j.status.clone();
        if !was.is_final() {
            status.state = JobState::Cancelled;
        }
        if was == JobState::Running {
            // The job's thread still reads the spool file: `finish` removes it and the entry.
            j.forget = true;
        } else {
            if let Some(p) = j.spool.take() {
                let _ = std::fs::remove_file(p);
            }
            jobs.remove(id);
        }
        tracing::info!(job = %id, "job deleted");
        self.noticed.notify_one();
        Some(status)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The daemon was asked to stop (SIGTERM): no new job is taken, and every queued or running
    /// job is cancelled and reported `failed` with `engine_stopping`, so that its client
    /// resubmits it once the engine is back without counting a try. Finished jobs are kept
    /// for their clients to collect.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let mut jobs = self.jobs();
        for (id, j) in jobs.iter_mut() {
            interrupt(id, j);
        }
    }

    /// Jobs a client has not taken note of yet: dropped ones whose status nobody read since,
    /// finished ones whose result nobody read.
    pub fn unnoticed(&self) -> usize {
        self.jobs()
            .values()
            .filter(|j| !j.seen && !j.forget && (j.interrupted || j.status.state == JobState::Done))
            .count()
    }

    /// After [`Self::begin_stop`]: waits until clients have taken note of every dropped job and
    /// collected every finished one, at most `grace` (a client that is not polling, or a
    /// job submitted by a one-off command, does not hold the stop longer).
    pub async fn drain(&self, grace: Duration) {
        let left = valise_daemon::wait_drained(&self.noticed, grace, || self.unnoticed()).await;
        if left > 0 {
            tracing::warn!(
                jobs = left,
                "stopping before every client took note of its job"
            );
        }
    }

    /// Forgets finished jobs older than `keep_finished_secs`.
    pub fn expire(&self) {
        let keep = Duration::from_secs(self.config.keep_finished_secs);
        self.jobs()
            .retain(|_, j| j.finished.is_none_or(|t| t.elapsed() < keep));
    }

    pub fn health(&self) -> Health {
        let jobs = self.jobs();
        let count = |s| jobs.values().filter(|j| j.status.state == s).count() as u32;
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            models_loaded: self.engine.loaded_ids(),
            jobs_running: count(JobState::Running),
            jobs_queued: count(JobState::Queued),
        }
    }
}

/// Drops a queued or running job because the engine stops (see [`Service::begin_stop`]).
fn interrupt(id: &str, j: &mut Job) {
    if j.status.state.is_final() {
        return;
    }
    j.ctx.cancel();
    if j.status.state == JobState::Queued
        && let Some(p) = j.spool.take()
    {
        let _ = std::fs::remove_file(p);
    }
    j.interrupted = true;
    j.status.state = JobState::Failed;
    j.status.error = Some(ApiError::engine_stopping());
    j.status.finished_at = Some(now_unix());
    j.finished = Some(Instant::now());
    tracing::info!(job = %id, "job dropped: the engine is stopping");
}

fn live_status(j: &Job, all: &HashMap<String, Job>) -> JobStatus {
    let mut s = j.status.clone();
    match s.state {
        JobState::Queued => {
            let ahead = all
                .values()
                .filter(|o| o.status.state == JobState::Queued && o.seq < j.seq)
                .count();
            s.queue_position = Some(ahead as u32);
        }
        JobState::Running => {
            s.progress = j.ctx.progress();
            s.media = j.ctx.media();
            s.position_secs = Some(j.ctx.position_secs());
            s.eta_secs = j.ctx.eta_secs();
        }
        _ => {}
    }
    s
}

fn unreachable_status(id: &str) -> JobStatus {
    JobStatus {
        id: id.into(),
        state: JobState::Cancelled,
        progress: 0.0,
        queue_position: None,
        model: String::new(),
        media: None,
        error: None,
        created_at: now_unix(),
        started_at: None,
        finished_at: None,
        position_secs: None,
        eta_secs: None,
    }
}

/// The pipeline settings a job runs with.
pub fn settings_for(config: &Config) -> Settings {
    Settings {
        threads: config.threads(),
        decoding: config.decoding.clone(),
        vad: config.vad.clone(),
        media: valise_media::Limits {
            max_file_bytes: config.limits.max_file_size.bytes(),
            max_duration_secs: config.limits.max_duration_secs,
            max_channels: config.limits.max_channels,
            max_sample_rate: config.limits.max_sample_rate,
        },
        deadline: Some(Instant::now() + Duration::from_secs(config.limits.max_job_secs)),
        max_job_secs: config.limits.max_job_secs,
    }
}

fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}
