//! valise-transcribe: speech to text on the box.
//!
//! A daemon with no network at all: it serves an HTTP/JSON API on a Unix socket (see
//! [`valise_protocol::api`]) to the portal and `valisectl`, decodes untrusted media with
//! [`valise_media`], skips silence with [`valise_vad`], and transcribes with whisper.cpp
//! (whisper-rs). One model is loaded once and shared; each job has its own whisper states; jobs
//! take fair turns per batch of speech ([`slots`]). `valisectl` also uses [`pipeline`]
//! in-process when no daemon runs. Design note: `DESIGN.md` beside this crate.

pub mod api;
pub mod config;
mod encoder_gate;
pub mod engine;
mod error;
pub mod jobs;
pub mod omp;
pub mod pipeline;
pub mod slots;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use engine::Engine;
pub use error::TranscribeError;
pub use jobs::Service;

pub use valise_daemon::bind_socket as bind;

/// How long a stopping engine waits for its clients to take note of the jobs it dropped (and
/// to collect finished results) before it exits; the portal polls every half second.
pub use valise_daemon::STOP_GRACE;

/// Serves the API on `listener` until `shutdown` resolves. Then the engine stops taking work,
/// drops its queued and running jobs with `engine_stopping` ([`Service::begin_stop`]), keeps
/// answering until its clients have taken note of them (at most [`STOP_GRACE`]), and exits.
pub async fn run(
    service: Arc<Service>,
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = {
        let svc = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                svc.expire();
            }
        })
    };
    let app = api::router(service.clone());
    valise_daemon::notify("READY=1");
    let stopping = service.clone();
    let shutdown = async move {
        shutdown.await;
        valise_daemon::notify("STOPPING=1");
        stopping.begin_stop();
        stopping.drain(STOP_GRACE).await;
    };
    let served = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await;
    expiry.abort();
    for job in service.list() {
        if !job.state.is_final() {
            service.delete(&job.id);
        }
    }
    served
}
