//! The planned stop's gate (`stop.rs`) in front of a real server on a Unix socket, with a
//! handler the test holds: requests in flight finish, new ones get 503 `engine_stopping`, the
//! stop ends as soon as nothing is in flight, and past the grace the rest are answered
//! `engine_stopping` too.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::sync::{Notify, mpsc};
use valise_engine_client::{ClientError, UnixHttp};
use valise_translate::stop::{StopGate, guard};

struct Server {
    gate: Arc<StopGate>,
    http: UnixHttp,
    entered: mpsc::UnboundedReceiver<()>,
    release: Arc<Notify>,
    _dir: tempfile::TempDir,
}

/// `/slow` reports that it started and answers once released; `/fast` answers at once.
fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let gate = Arc::new(StopGate::default());
    let (tx, entered) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let rel = release.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (tx, rel) = (tx.clone(), rel.clone());
                async move {
                    let _ = tx.send(());
                    rel.notified().await;
                    "{}"
                }
            }),
        )
        .route("/fast", get(|| async { "{}" }))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), guard));
    let listener = valise_translate::bind(&sock).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        gate,
        http: UnixHttp::new(sock, "valise-translate"),
        entered,
        release,
        _dir: dir,
    }
}

async fn get_json(http: &UnixHttp, path: &str) -> Result<serde_json::Value, ClientError> {
    http.call(axum::http::Method::GET, path, None::<&()>).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_and_new_ones_are_refused() {
    let mut s = serve();
    get_json(&s.http, "/fast").await.unwrap();
    let http = s.http.clone();
    let slow = tokio::spawn(async move { get_json(&http, "/slow").await });
    s.entered.recv().await.unwrap();

    let gate = s.gate.clone();
    let stop = tokio::spawn(async move { gate.stop(Duration::from_secs(30)).await });
    let start = Instant::now();
    while !s.gate.is_stopping() {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::task::yield_now().await;
    }
    let Err(ClientError::Api(e)) = get_json(&s.http, "/fast").await else {
        panic!("a request was taken while stopping")
    };
    assert!(e.is_engine_stopping(), "{e:?}");
    assert!(
        !stop.is_finished(),
        "the stop did not wait for the request in flight"
    );

    s.release.notify_one();
    assert!(
        slow.await.unwrap().is_ok(),
        "the request in flight finished"
    );
    let released = Instant::now();
    stop.await.unwrap();
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "ended on idle, not on the grace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_requests_in_flight_are_answered_engine_stopping() {
    let mut s = serve();
    let http = s.http.clone();
    let slow = tokio::spawn(async move { get_json(&http, "/slow").await });
    s.entered.recv().await.unwrap();
    s.gate.stop(Duration::from_millis(200)).await;
    let Err(ClientError::Api(e)) = slow.await.unwrap() else {
        panic!("the request in flight was not cut")
    };
    assert!(e.is_engine_stopping(), "{e:?}");
}
