//! Shared by the integration tests: the real dev model store, real recordings, and an engine
//! served in-process on a temporary Unix socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use valise_transcribe::client::Client;
use valise_transcribe::{Config, Engine, Service};

pub const HINT: &str = "run scripts/setup first (it fetches the real models and test recordings)";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn store() -> PathBuf {
    let p = std::env::var_os("VALISE_MODEL_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".valise/models"));
    assert!(
        p.join("current/manifest.toml").exists(),
        "no model store at {}: {HINT}",
        p.display()
    );
    p
}

pub fn testdata(name: &str) -> PathBuf {
    let dir = std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise/testdata"));
    let p = dir.join(name);
    assert!(p.exists(), "missing {}: {HINT}", p.display());
    p
}

pub fn config(dir: &Path, model: &str) -> Config {
    Config {
        socket: dir.join("t.sock"),
        spool_dir: dir.join("spool"),
        model_store: Some(store()),
        default_model: Some(model.into()),
        threads: 2,
        ..Config::default()
    }
}

/// Starts the real service on a temporary socket; dropped with the returned guard.
pub struct Running {
    pub client: Client,
    pub service: Arc<Service>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("server task")
    }
}

pub async fn start(config: Config) -> Running {
    let socket = config.socket.clone();
    let engine = tokio::task::spawn_blocking({
        let c = config.clone();
        move || Engine::load(&c)
    })
    .await
    .unwrap()
    .expect("engine loads");
    let service = Service::new(Arc::new(engine), config).expect("service");
    let listener = valise_transcribe::bind(&socket).expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(valise_transcribe::run(
        service.clone(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        client: Client::new(socket),
        service,
        stop: Some(tx),
        task,
    }
}

/// Lower-case words, punctuation dropped: enough to compare a transcript with a reference.
pub fn words(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs ffmpeg (Debian's) to make a fixture; panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (scripts/install-deps)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
