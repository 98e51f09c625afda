//! The socket API (`/run/valise/update.sock`, HTTP/1.1 over a Unix socket like the engines'):
//!
//! | method | path | body | answer |
//! | --- | --- | --- | --- |
//! | GET | `/status` | — | [`Status`] (installed bundles, last check, history, metadata expiry: what valisectl, the portal and valise-health read) |
//! | POST | `/check` | — | the [`CheckRecord`] of a check of the repository, when it ends |
//! | POST | `/apply` | `{"dir": "/media/usb/valise-repo"}` | the [`CheckRecord`] of a check of that copy |
//!
//! Checks run one at a time on one worker thread; a second request waits its turn.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use valise_protocol::ApiError;

use crate::check::Service;
use crate::history::{CheckRecord, State};
use crate::journal::Phase;
use crate::schedule::NextCheck;
use crate::source::Origin;

/// `GET /status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// What `current` points to.
    pub current_slot: Option<String>,
    /// Bundles in the current slot: id → version.
    pub installed: BTreeMap<String, u64>,
    /// The journal's phase (`idle` unless an update is in progress or was interrupted).
    pub phase: Phase,
    /// A check is running now.
    pub checking: bool,
    /// Unix seconds of the next scheduled check.
    pub next_check: Option<i64>,
    /// `ok`, or `behind_floor` when the clock is behind the last successful check.
    pub clock: String,
    /// Unix seconds: no metadata is accepted as valid before this time.
    pub time_floor: Option<i64>,
    /// Unix seconds when the first of the stored top-level metadata (root, timestamp,
    /// snapshot, targets: verified when they were stored) expires; absent before the first
    /// successful check. valise-health reports the days left.
    pub metadata_expires: Option<i64>,
    #[serde(flatten)]
    pub state: State,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub dir: PathBuf,
}

type Job = (Origin, oneshot::Sender<CheckRecord>);

/// The shared state of the API.
#[derive(Clone, Debug)]
pub struct Api {
    service: Arc<Service>,
    jobs: mpsc::Sender<Job>,
    checking: Arc<AtomicBool>,
    pub next: NextCheck,
    pub reset: Arc<tokio::sync::Notify>,
}

impl Api {
    /// Starts the worker thread that runs checks one after the other.
    pub fn start(service: Arc<Service>) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Job>(16);
        let checking = Arc::new(AtomicBool::new(false));
        let (svc, flag) = (service.clone(), checking.clone());
        std::thread::Builder::new()
            .name("check".into())
            .spawn(move || {
                while let Some((origin, reply)) = rx.blocking_recv() {
                    flag.store(true, Ordering::SeqCst);
                    let rec = svc.check(&origin, OffsetDateTime::now_utc());
                    flag.store(false, Ordering::SeqCst);
                    let _ = reply.send(rec);
                }
            })?;
        Ok(Api {
            service,
            jobs: tx,
            checking,
            next: NextCheck::default(),
            reset: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Runs a check on the worker and waits for its record.
    pub async fn check(&self, origin: Origin) -> Option<CheckRecord> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((origin, tx)).await.ok()?;
        rx.await.ok()
    }

    pub fn status(&self) -> std::io::Result<Status> {
        let svc = &self.service;
        let root = svc.root();
        let current_slot = crate::switch::current_slot(root).ok();
        let installed = current_slot
            .as_ref()
            .and_then(|s| crate::stage::bundles_of(&crate::switch::slot_path(root, s)).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|(id, m)| (id, m.bundle.version))
            .collect();
        let clock = match svc.clock_state(OffsetDateTime::now_utc()) {
            Some(valise_tuf::time::ClockState::Ok) => "ok",
            Some(valise_tuf::time::ClockState::BehindFloor) => "behind_floor",
            None => "unknown",
        };
        Ok(Status {
            current_slot,
            installed,
            phase: svc.journal().read()?,
            checking: self.checking.load(Ordering::SeqCst),
            next_check: self.next.get(),
            clock: clock.into(),
            time_floor: svc.floor().read().ok().map(|t| t.unix_timestamp()),
            metadata_expires: metadata_expires(svc.metadata()),
            state: svc.read_state()?,
        })
    }
}

/// The earliest `signed.expires` of the stored top-level roles (they were verified before
/// they were stored; a file that no longer parses is left out).
fn metadata_expires(store: &valise_tuf::store::MetadataStore) -> Option<i64> {
    #[derive(Deserialize)]
    struct Signed {
        expires: String,
    }
    #[derive(Deserialize)]
    struct Metadata {
        signed: Signed,
    }
    ["root", "timestamp", "snapshot", "targets"]
        .into_iter()
        .filter_map(|role| {
            let bytes = store.read(role).ok()??;
            let m: Metadata = serde_json::from_slice(&bytes).ok()?;
            valise_tuf::schema::parse_expires(&m.signed.expires)
                .ok()
                .map(|t| t.unix_timestamp())
        })
        .min()
}

/// An error as the engines answer theirs ([`ApiError`]).
fn error(status: StatusCode, message: String) -> Response {
    let code = if status.is_server_error() {
        "internal"
    } else {
        "invalid_request"
    };
    (status, Json(ApiError::new(code, message))).into_response()
}

async fn status(AxState(api): AxState<Api>) -> Response {
    match api.status() {
        Ok(s) => Json(s).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn check(AxState(api): AxState<Api>) -> Response {
    api.reset.notify_one();
    match api.check(Origin::Repository).await {
        Some(r) => Json(r).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker stopped".into(),
        ),
    }
}

async fn apply(AxState(api): AxState<Api>, body: axum::body::Bytes) -> Response {
    let req: ApplyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    if !req.dir.is_absolute() {
        return error(
            StatusCode::BAD_REQUEST,
            "dir must be an absolute path".into(),
        );
    }
    match api.check(Origin::Dir(req.dir)).await {
        Some(r) => Json(r).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker stopped".into(),
        ),
    }
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/check", post(check))
        .route("/apply", post(apply))
        .with_state(api)
}
