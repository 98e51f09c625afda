//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use valise_engine_client::{TranscribeClient, TranslateClient};

use crate::Config;
use crate::db::Db;
use crate::hashing::Hasher;
use crate::jobs::Files;
use crate::storage::Uploads;
use crate::throttle::Throttle;

#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub files: Files,
    pub transcribe: TranscribeClient,
    pub translate: TranslateClient,
    pub throttle: Throttle,
    /// Password hashing on its own fixed pool of threads with reused memory (argon2 costs
    /// ~20 MiB and tens of milliseconds per hash): a burst of sign-ins neither grows the
    /// portal's memory nor holds the database lock.
    pub hasher: Hasher,
    /// Wakes the dispatcher when a job is queued or deleted.
    pub wake: Notify,
    /// Whether each engine answered at the dispatcher's last look (for the UI's notices).
    pub engines_up: std::sync::Mutex<EnginesUp>,
    /// Uploads in flight per user (the job limit counts them).
    pub uploads: Arc<Uploads>,
    /// Jobs whose request to an engine is in flight (a recording being handed over, a
    /// translation): cancelled when the job is deleted.
    pub in_engine: std::sync::Mutex<HashMap<String, CancellationToken>>,
    /// Wakes the task that makes engines forget deleted jobs.
    pub forget: Notify,
    /// What the transcription engine last said of each running job (position, time left).
    pub live: crate::view::LiveJobs,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct EnginesUp {
    pub transcribe: bool,
    pub translate: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, db: Db) -> Self {
        let files = Files::new(config.jobs_dir());
        let transcribe = TranscribeClient::new(&config.engines.transcribe_socket);
        let translate = TranslateClient::new(&config.engines.translate_socket);
        let throttle = Throttle::new(config.limits.login_failures_before_throttle);
        Self(Arc::new(Inner {
            config,
            db,
            files,
            transcribe,
            translate,
            throttle,
            hasher: Hasher::new(),
            wake: Notify::new(),
            engines_up: std::sync::Mutex::new(EnginesUp {
                transcribe: true,
                translate: true,
            }),
            uploads: Arc::new(Uploads::default()),
            in_engine: std::sync::Mutex::new(HashMap::new()),
            forget: Notify::new(),
            live: crate::view::LiveJobs::default(),
        }))
    }

    /// Records that `job_id`'s request to an engine is in flight; the token is cancelled if
    /// the job is deleted meanwhile. Dropping the guard unregisters it.
    pub fn engine_request(&self, job_id: &str) -> EngineRequest {
        let token = CancellationToken::new();
        if let Ok(mut m) = self.in_engine.lock() {
            m.insert(job_id.to_owned(), token.clone());
        }
        EngineRequest {
            state: self.clone(),
            job_id: job_id.to_owned(),
            token,
        }
    }

    /// A job was deleted (or its user): engines forget it now.
    pub fn forget_deleted(&self) {
        self.forget.notify_one();
        self.wake.notify_one();
    }

    pub fn engines_up(&self) -> EnginesUp {
        self.engines_up.lock().map(|g| *g).unwrap_or_default()
    }
}

/// See [`AppState::engine_request`].
#[derive(Debug)]
pub struct EngineRequest {
    state: AppState,
    job_id: String,
    pub token: CancellationToken,
}

impl Drop for EngineRequest {
    fn drop(&mut self) {
        if let Ok(mut m) = self.state.in_engine.lock() {
            m.remove(&self.job_id);
        }
    }
}
