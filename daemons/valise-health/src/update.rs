//! valise-update's socket API (`/run/valise/update.sock`, HTTP over a Unix socket, the
//! workspace's `UnixHttp` client as valisectl and the portal use it): `GET /status` for the
//! installed bundles, the history of installs and rollbacks and the metadata's expiry, and
//! `POST /check` for the centre's `check_for_updates`.
//!
//! The updater's state directory is its own (0700); its API is the one way in, reachable by
//! the members of group `valise-update` (valise-health is one, see `valise.sysusers`).
//!
//! Only the fields read here are decoded: identifiers, versions, times and outcomes. The
//! updater's free-text reasons (`reason`, error messages) are never deserialized, so they
//! cannot reach a message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use valise_engine_client::UnixHttp;

/// `GET /status`, the part valise-health reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct UpdaterStatus {
    /// Bundle id → version, in the current slot.
    #[serde(default)]
    pub installed: BTreeMap<String, u64>,
    /// The journal's phase: `idle`, or `switching` / `rolling_back` with the bundle.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// Installs and rollbacks, oldest first (the last 100).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Unix seconds when the first of the trusted top-level metadata expires.
    #[serde(default)]
    pub metadata_expires: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Phase {
    pub phase: String,
    #[serde(default)]
    pub bundle: Option<String>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// One install or rollback of the updater's history.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Unix seconds when it ended.
    pub at: i64,
    pub bundle: String,
    pub version: u64,
    #[serde(default)]
    pub from_version: Option<u64>,
    /// `installed` or `rolled_back`.
    pub outcome: String,
}

impl Phase {
    /// The bundle and version being installed, while the updater is switching to it.
    pub fn switching(&self) -> Option<(&str, u64)> {
        if self.phase != "switching" {
            return None;
        }
        Some((self.bundle.as_deref()?, self.version?))
    }
}

/// A client of the updater's socket.
#[derive(Clone, Debug)]
pub struct UpdateApi {
    http: UnixHttp,
    timeout: Duration,
}

impl UpdateApi {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self {
            http: UnixHttp::new(socket, "valise-update"),
            timeout,
        }
    }

    /// `GET /status`; `None` (logged) when the updater does not answer within the deadline.
    pub async fn status(&self) -> Option<UpdaterStatus> {
        let call = self
            .http
            .call::<UpdaterStatus>(hyper::Method::GET, "/status", None::<&()>);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read valise-update's status");
                None
            }
            Err(_) => {
                tracing::warn!("reading valise-update's status timed out");
                None
            }
        }
    }

    /// `POST /check`: the updater checks the repository now; answers when the check ended
    /// (a download can take long: no deadline here, the caller runs it on a task of its own).
    /// Returns the check's outcome (`installed`, `up_to_date`, `rolled_back`, `failed`).
    pub async fn check(&self) -> Result<String, String> {
        #[derive(Deserialize)]
        struct CheckRecord {
            outcome: String,
        }
        self.http
            .call::<CheckRecord>(hyper::Method::POST, "/check", None::<&()>)
            .await
            .map(|r| r.outcome)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_updater_answers_and_nothing_more() {
        // As valise-update's `GET /status` writes it (reasons included, never decoded here).
        let text = r#"{"current_slot":"20261204T000000Z-pten-2","installed":{"pten":2},
            "phase":{"phase":"switching","bundle":"pten","version":3,"from":"a","to":"b"},
            "checking":true,"next_check":1,"clock":"ok","time_floor":1,"metadata_expires":99,
            "last_check":{"at":5,"source":"repository","outcome":"installed","reason":"x"},
            "last_update":5,"refused":{},
            "history":[{"at":5,"bundle":"pten","version":2,"from_version":1,"slot":"s",
                        "outcome":"installed","reason":"acceptance passed"},
                       {"at":4,"bundle":"enpt","version":1,"slot":"s",
                        "outcome":"rolled_back","reason":"acceptance: case x"}]}"#;
        let s: UpdaterStatus = serde_json::from_str(text).expect("parse");
        assert_eq!(s.installed["pten"], 2);
        assert_eq!(
            s.phase.as_ref().and_then(Phase::switching),
            Some(("pten", 3))
        );
        assert_eq!(s.metadata_expires, Some(99));
        assert_eq!(s.history[0].from_version, Some(1));
        assert_eq!(s.history[1].from_version, None);
        let idle: Phase = serde_json::from_str(r#"{"phase":"idle"}"#).expect("idle");
        assert_eq!(idle.switching(), None);
    }
}
