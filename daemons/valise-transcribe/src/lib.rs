//! valise-transcribe: speech to text on the box.
//!
//! A daemon with no network at all: it serves an HTTP/JSON API on a Unix socket (see
//! [`valise_protocol::api`]) to the portal and `valisectl`, decodes untrusted media with
//! [`valise_media`], skips silence with [`valise_vad`], and transcribes with whisper.cpp
//! (whisper-rs). One model is loaded once and shared; each job has its own whisper state; jobs
//! take fair turns per batch of speech ([`slots`]). `valisectl` also uses [`pipeline`]
//! in-process when no daemon runs. Design note: `DESIGN.md` beside this crate.

pub mod api;
pub mod client;
pub mod config;
pub mod engine;
mod error;
pub mod jobs;
pub mod notify;
pub mod pipeline;
pub mod slots;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
pub use engine::Engine;
pub use error::TranscribeError;
pub use jobs::Service;

/// Binds the API socket: a stale socket file is replaced; the socket is group-accessible
/// (`0660`) so that only the portal's group (and root) can talk to the engine.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves the API on `listener` until `shutdown` resolves; running jobs are cancelled then.
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
    notify::notify("READY=1");
    let served = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await;
    notify::notify("STOPPING=1");
    expiry.abort();
    for job in service.list() {
        if !job.state.is_final() {
            service.delete(&job.id);
        }
    }
    served
}
