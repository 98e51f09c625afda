//! The journal (`<state_dir>/journal.json`, DESIGN.md §5.2): the phase of the update in
//! progress, written (temporary file, fsync, rename, fsync of the directory) *before* each
//! step that changes the store, so that a daemon started after a power cut knows what to
//! finish. Recovery never needs a person: see `Service::recover`.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the updater was doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Nothing in progress: `current` is a committed slot.
    Idle,
    /// Slot `to` is complete and about to become `current` (or already is); `from` was current.
    Switching {
        bundle: String,
        version: u64,
        from: String,
        to: String,
    },
    /// Going back from `to` to `from` because of `reason`.
    RollingBack {
        bundle: String,
        version: u64,
        from: String,
        to: String,
        reason: String,
    },
}

/// The journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(state_dir: &Path) -> Self {
        Journal {
            path: state_dir.join("journal.json"),
        }
    }

    /// The phase written last; `Idle` when there is no journal yet.
    pub fn read(&self) -> io::Result<Phase> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Phase::Idle),
            Err(e) => Err(e),
        }
    }

    /// Records `phase` durably.
    pub fn write(&self, phase: &Phase) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(phase).map_err(io::Error::other)?;
        valise_pki::fsutil::write_atomic(&self.path, &bytes, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_is_idle_and_phases_round_trip() {
        let d = tempfile::tempdir().expect("tempdir");
        let j = Journal::new(d.path());
        assert_eq!(j.read().expect("read"), Phase::Idle);
        let p = Phase::RollingBack {
            bundle: "pten".into(),
            version: 3,
            from: "a".into(),
            to: "b".into(),
            reason: "case x".into(),
        };
        j.write(&p).expect("write");
        assert_eq!(Journal::new(d.path()).read().expect("read"), p);
        std::fs::write(d.path().join("journal.json"), b"{").expect("write");
        assert!(j.read().is_err(), "a damaged journal is an error, not Idle");
    }
}
