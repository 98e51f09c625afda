//! valise-portal: the LAN-facing process staff use.
//!
//! HTTPS with rustls (HTTP/2 and HTTP/1.1), a web UI compiled into the binary, a JSON API
//! for it and for scripts (OpenAI- and LibreTranslate-compatible), local accounts
//! (argon2id), sessions and API tokens, a persistent job queue in SQLite, an audit log, and
//! retention. It holds no model: work goes to `valise-transcribe` and `valise-translate`
//! over their Unix sockets.
//!
//! ```text
//!  browser ──HTTPS──> server ─> http (routes, auth, CSRF, limits) ─> db (SQLite)
//!                                   │ uploads streamed to incoming/, moved to jobs/<id>/
//!                                   v
//!                              dispatch ──unix──> valise-transcribe / valise-translate
//! ```
//! Design note: `DESIGN.md`; API: `API.md`.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod counts;
pub mod db;
pub mod dispatch;
mod error;
pub mod export;
pub mod hashing;
pub mod http;
pub mod jobs;
mod range;
pub mod retention;
pub mod server;
pub mod state;
pub mod storage;
mod throttle;
pub mod transcripts;
mod view;

use std::future::Future;

pub use config::Config;
pub use db::Db;
pub use error::{PortalError, Result};
pub use state::AppState;

/// Opens the database and serves the portal on `listener` (and the redirect on
/// `redirect`) until `shutdown` resolves. Tests bind `127.0.0.1:0` and call this.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    redirect: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = server::load_tls(&config.tls.cert, &config.tls.key)?;
    let files = jobs::Files::new(config.jobs_dir());
    storage::prepare(&config.data_dir, &files)?;
    let db = Db::open(&config.db_path())?;
    db.with(|c| storage::remove_orphans(c, &files))?;
    let connections = config.connections.clone();
    let state = AppState::new(config, db);
    let app = http::router(state.clone());
    let dispatcher = tokio::spawn(dispatch::run(state.clone()));
    let forgetter = tokio::spawn(dispatch::forget_loop(state.clone()));
    let counts = tokio::spawn(counts::publish_loop(state.clone()));
    let https_port = listener.local_addr()?.port();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let redirect_task = redirect.map(|l| {
        let mut rx = stop_rx.clone();
        tokio::spawn(server::serve_redirect(l, https_port, async move {
            let _ = rx.changed().await;
        }))
    });
    valise_daemon::notify("READY=1");
    server::serve_tls(listener, tls, app, &connections, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    valise_daemon::notify("STOPPING=1");
    dispatcher.abort();
    forgetter.abort();
    counts.abort();
    if let Some(t) = redirect_task {
        t.abort();
    }
    Ok(())
}
