//! What the updater did and why (`<state_dir>/state.json`, replaced atomically): the last
//! check and its result, the bundle versions refused (never tried again: a central "revert"
//! is a new, higher version), and a bounded history of installs and rollbacks. `valisectl
//! update status` and the portal's admin page read it through the socket API.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Entries kept in `history`.
pub const MAX_HISTORY: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check found nothing new for this box.
    UpToDate,
    /// A bundle was installed and passed its acceptance cases.
    Installed,
    /// A bundle was installed, failed, and the previous slot came back.
    RolledBack,
    /// Nothing was installed: metadata or a bundle were refused, or the source failed.
    Failed,
}

/// What kind of failure ended a check that installed nothing ([`Outcome::Failed`]): a closed
/// vocabulary, so the fleet's health messages can report it without the free-text `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The source could not be reached or read: the repository (TLS, HTTP, too slow) or the
    /// USB copy; a fetch failed or the check's deadline passed before a download.
    Download,
    /// Signatures, thresholds, versions (rollback), hashes or lengths did not verify, or a
    /// `bundle.toml` contradicts its signed target or does not parse.
    Verification,
    /// The metadata had expired at the reference time (TUF `Error::Expired`).
    ExpiredMetadata,
    /// A local error: staging, slots, the journal, the state, I/O.
    Install,
}

/// The bundle a failed check was installing: the version offered and the one installed
/// before. Absent when the failure came before a bundle was chosen (the metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub bundle: String,
    /// The version offered.
    pub version: u64,
    /// The version of `bundle` installed when the check began; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u64>,
}

/// One check (online or from a directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Unix seconds (the box's clock) when the check ended.
    pub at: i64,
    /// `repository` or `dir:<path>`.
    pub source: String,
    pub outcome: Outcome,
    /// Why, in words (the error, the failed acceptance case, "up to date").
    pub reason: String,
    /// For a failed check, what kind of failure (absent otherwise, and in records written
    /// before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// For a failed check, the bundle it was installing; absent when none was chosen yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
}

/// One install or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: i64,
    pub bundle: String,
    pub version: u64,
    /// The version of `bundle` in the slot the update started from; absent when that slot
    /// had none (a first install) or in records written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u64>,
    pub slot: String,
    pub outcome: Outcome,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub version: u64,
    pub at: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub last_check: Option<CheckRecord>,
    /// Unix seconds of the last bundle installed for good.
    pub last_update: Option<i64>,
    /// Bundle id → versions refused after a rollback.
    pub refused: BTreeMap<String, Vec<Refusal>>,
    pub history: Vec<Entry>,
}

impl State {
    pub fn is_refused(&self, bundle: &str, version: u64) -> bool {
        self.refused
            .get(bundle)
            .is_some_and(|v| v.iter().any(|r| r.version == version))
    }

    /// Adds `e`, replacing an entry for the same bundle version and slot (a step redone after
    /// a power cut records once).
    pub fn record(&mut self, e: Entry) {
        self.history
            .retain(|h| !(h.bundle == e.bundle && h.version == e.version && h.slot == e.slot));
        if e.outcome == Outcome::Installed {
            self.last_update = Some(e.at);
        }
        if e.outcome == Outcome::RolledBack && !self.is_refused(&e.bundle, e.version) {
            self.refused
                .entry(e.bundle.clone())
                .or_default()
                .push(Refusal {
                    version: e.version,
                    at: e.at,
                    reason: e.reason.clone(),
                });
        }
        self.history.push(e);
        let n = self.history.len();
        if n > MAX_HISTORY {
            self.history.drain(..n - MAX_HISTORY);
        }
    }
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> Self {
        StateFile {
            path: state_dir.join("state.json"),
        }
    }

    pub fn read(&self) -> io::Result<State> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    /// Reads, applies `f`, writes back atomically.
    pub fn update(&self, f: impl FnOnce(&mut State)) -> io::Result<State> {
        let mut s = self.read()?;
        f(&mut s);
        let bytes = serde_json::to_vec_pretty(&s).map_err(io::Error::other)?;
        valise_pki::fsutil::write_atomic(&self.path, &bytes, 0o644)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome, slot: &str) -> Entry {
        Entry {
            at: 10,
            bundle: "pten".into(),
            version: 2,
            from_version: Some(1),
            slot: slot.into(),
            outcome,
            reason: "r".into(),
        }
    }

    #[test]
    fn records_once_refuses_rolled_back_versions_and_persists() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = StateFile::new(d.path());
        assert_eq!(f.read().expect("read"), State::default());
        f.update(|s| {
            s.record(entry(Outcome::RolledBack, "x"));
            s.record(entry(Outcome::RolledBack, "x"));
        })
        .expect("update");
        let s = f.read().expect("read");
        assert_eq!(s.history.len(), 1, "a redone step records once");
        assert!(s.is_refused("pten", 2) && !s.is_refused("pten", 3));
        assert_eq!(s.refused["pten"].len(), 1);
        assert_eq!(s.last_update, None);
        let s = f
            .update(|s| s.record(entry(Outcome::Installed, "y")))
            .expect("update");
        assert_eq!(s.last_update, Some(10));
        assert_eq!(s.history.len(), 2);
    }

    #[test]
    fn a_state_file_written_before_failures_were_classified_still_reads() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("state.json"),
            r#"{"last_check":{"at":7,"source":"repository","outcome":"failed",
                "reason":"metadata refused: timestamp expired"},
                "last_update":null,"refused":{},"history":[]}"#,
        )
        .expect("write");
        let s = StateFile::new(d.path())
            .read()
            .expect("an old state file reads");
        let c = s.last_check.expect("last check");
        assert_eq!(
            (c.outcome, c.failure, c.attempt),
            (Outcome::Failed, None, None)
        );
    }

    #[test]
    fn failures_and_attempts_are_written_snake_case_and_only_when_present() {
        let mut c = CheckRecord {
            at: 1,
            source: "repository".into(),
            outcome: Outcome::UpToDate,
            reason: "up to date ()".into(),
            failure: None,
            attempt: None,
        };
        let v = serde_json::to_value(&c).expect("json");
        assert!(
            v.get("failure").is_none() && v.get("attempt").is_none(),
            "{v}"
        );
        c.outcome = Outcome::Failed;
        c.failure = Some(Failure::ExpiredMetadata);
        c.attempt = Some(Attempt {
            bundle: "pten".into(),
            version: 2,
            from_version: None,
        });
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["failure"], "expired_metadata");
        assert_eq!(
            v["attempt"],
            serde_json::json!({"bundle": "pten", "version": 2})
        );
        let back: CheckRecord = serde_json::from_value(v).expect("back");
        assert_eq!(back, c);
        for (f, w) in [
            (Failure::Download, "download"),
            (Failure::Verification, "verification"),
            (Failure::Install, "install"),
        ] {
            assert_eq!(serde_json::to_value(f).expect("json"), w);
        }
    }
}
