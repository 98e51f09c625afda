//! A planned stop (SIGTERM: `systemctl stop|restart`, an update): the engine refuses new
//! requests with 503 `engine_stopping`, lets the requests in flight finish for at most
//! [`STOP_GRACE`], then answers those still running with `engine_stopping` too and exits.
//! A client (the portal) resends such work once the engine is back without counting a try;
//! a crash never answers this way, so work that crashes the engine still uses up its tries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use tokio::sync::{Notify, watch};
use valise_protocol::ApiError;

/// How long requests in flight may run on after SIGTERM.
pub use valise_daemon::STOP_GRACE;

#[derive(Debug)]
pub struct StopGate {
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    cut: watch::Sender<bool>,
}

impl Default for StopGate {
    fn default() -> Self {
        Self {
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            cut: watch::Sender::new(false),
        }
    }
}

/// One request in flight; counted until dropped.
struct Held(Arc<StopGate>);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_one();
        }
    }
}

impl StopGate {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops taking requests; waits for those in flight at most `grace`, then cuts the rest
    /// (they answer `engine_stopping`).
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let n = valise_daemon::wait_drained(&self.idle, grace, || {
            self.in_flight.load(Ordering::SeqCst)
        })
        .await;
        if n > 0 {
            tracing::warn!(requests = n, "stopping: cutting requests still in flight");
        }
        self.cut.send_replace(true);
    }
}

fn stopping() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ApiError::engine_stopping()),
    )
        .into_response()
}

/// Middleware over every route (health included).
pub async fn guard(State(gate): State<Arc<StopGate>>, req: Request, next: Next) -> Response {
    if gate.is_stopping() {
        return stopping();
    }
    gate.in_flight.fetch_add(1, Ordering::SeqCst);
    let _held = Held(gate.clone());
    let mut cut = gate.cut.subscribe();
    tokio::select! {
        r = next.run(req) => r,
        _ = cut.wait_for(|c| *c) => stopping(),
    }
}
