//! valise-translate: text translation on the box.
//!
//! A daemon with no network at all: it serves an HTTP/JSON API on a Unix socket (see
//! [`valise_protocol::translate`]) to the portal and `valisectl`. At start-up the [`Engine`]
//! loads every translation model of the model store once (Marian/Bergamot students converted
//! to ONNX by `valise-convert marian`, run with ONNX Runtime through `ort`).
//!
//! A request flows: strip control characters → [`segment`] into sentences and gaps (layout
//! kept) → split over-long sentences → tokenize → sort by length and batch → greedy decoding
//! with each sentence's own lexical shortlist ([`model`]) → reassemble with the gaps. Pairs
//! without a direct model go through English when both halves are installed. `valisectl`
//! uses the same [`Engine`] in-process when no daemon runs. Design note: `DESIGN.md`.

pub mod api;
mod batcher;
pub mod config;
pub mod detect;
pub mod document;
mod documents;
pub mod engine;
mod error;
pub mod model;
pub mod segment;
pub mod stop;

use std::future::Future;
use std::sync::Arc;

pub use config::Config;
pub use engine::Engine;
pub use error::TranslateError;

pub use valise_daemon::bind_socket as bind;

/// Serves the API on `listener` until `shutdown` resolves. Then new requests are refused with
/// `engine_stopping`, those in flight finish within [`stop::STOP_GRACE`] (or are answered
/// `engine_stopping`), and the server exits.
pub async fn run(
    engine: Arc<Engine>,
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gate = Arc::new(stop::StopGate::default());
    let app = api::router(engine).layer(axum::middleware::from_fn_with_state(
        gate.clone(),
        stop::guard,
    ));
    valise_daemon::notify("READY=1");
    let shutdown = async move {
        shutdown.await;
        valise_daemon::notify("STOPPING=1");
        gate.stop(stop::STOP_GRACE).await;
    };
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
