//! What every request handler shares.

use std::sync::Arc;

use tokio::sync::Notify;
use valise_engine_client::{TranscribeClient, TranslateClient};

use crate::Config;
use crate::db::Db;
use crate::hashing::Hasher;
use crate::jobs::Files;
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
        }))
    }

    pub fn engines_up(&self) -> EnginesUp {
        self.engines_up.lock().map(|g| *g).unwrap_or_default()
    }
}
