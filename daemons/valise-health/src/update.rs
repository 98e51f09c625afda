//! valise-update's socket API (`/run/valise-update/update.sock`, HTTP over a Unix socket, the
//! workspace's `UnixHttp` client as valisectl and the portal use it): `GET /status` for the
//! installed bundles, the history of installs and rollbacks and the metadata's expiry, and
//! `POST /check` for the centre's `check_for_updates`.
//!
//! The updater's state directory is its own (0700); its API is the one way in, reachable by
//! the members of group `valise-update` (valise-health is one, see `valise.sysusers`).
//!
//! Only the fields read here are decoded: identifiers, versions, times, outcomes and the
//! failure kind of the last check. The updater's free-text reasons (`reason`, error messages)
//! and the check's `source` (which may name a USB path) are never deserialized, so they
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
    /// The last check (online or from a USB copy).
    #[serde(default)]
    pub last_check: Option<LastCheck>,
}

/// The updater's last check, the part valise-health reads: never its `reason` or `source`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LastCheck {
    /// Unix seconds when it ended.
    pub at: i64,
    /// `up_to_date`, `installed`, `rolled_back` or `failed`.
    pub outcome: String,
    /// For a failed check: `download`, `verification`, `expired_metadata` or `install`
    /// (absent from an updater that did not classify its failures).
    #[serde(default)]
    pub failure: Option<String>,
    /// For a failure while installing an offered bundle: which, and its versions.
    #[serde(default)]
    pub attempt: Option<Attempt>,
}

/// The bundle a failed check was installing.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    pub bundle: String,
    /// The version offered.
    pub version: u64,
    /// The version installed before; absent when none was.
    #[serde(default)]
    pub from_version: Option<u64>,
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
        let c = s.last_check.expect("last check");
        assert_eq!(
            (c.at, c.outcome.as_str(), c.failure, c.attempt),
            (5, "installed", None, None)
        );
    }

    #[test]
    fn a_failed_check_is_read_without_its_reason_or_source() {
        let text = r#"{"installed":{},"history":[],
            "last_check":{"at":9,"source":"dir:/media/alice/FROBNICATE","outcome":"failed",
                "reason":"target refused: pten/model.onnx: sha256 mismatch",
                "failure":"verification",
                "attempt":{"bundle":"pten","version":2,"from_version":1}}}"#;
        let s: UpdaterStatus = serde_json::from_str(text).expect("parse");
        let c = s.last_check.clone().expect("last check");
        assert_eq!(c.failure.as_deref(), Some("verification"));
        assert_eq!(
            c.attempt,
            Some(Attempt {
                bundle: "pten".into(),
                version: 2,
                from_version: Some(1)
            })
        );
        // Nothing of the reason or the source was kept.
        let kept = format!("{s:?}");
        for w in ["FROBNICATE", "media", "sha256", "refused", "repository"] {
            assert!(!kept.contains(w), "{w:?} in {kept}");
        }
    }
}
