//! Shared by the integration tests: the real dev model store, real recordings, and an engine
//! served in-process on a temporary Unix socket.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use valise_engine_client::TranscribeClient as Client;
use valise_transcribe::{Config, Engine, Service};

pub use valise_e2e::{ffmpeg, looped_audio, store, testdata, words};

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
    /// Delivers the stop (what SIGTERM does in the daemon) without waiting for the exit.
    pub fn signal_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

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
