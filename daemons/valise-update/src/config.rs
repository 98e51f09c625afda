//! `/etc/valise/valise-update.toml` (every field has a default; the file may be absent;
//! unknown fields are refused). The documented defaults are in `systemd/valise-update.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The API socket (`valisectl update`, the portal).
    pub socket: PathBuf,
    /// The model store root (holding `current` and `slots/`).
    pub model_store: PathBuf,
    /// The updater's own state: trusted metadata, time floor, journal, downloads, history.
    pub state_dir: PathBuf,
    /// The box identity (certificate, key, CA chain, repository address), `valisectl enroll`.
    pub identity_dir: PathBuf,
    /// The repository's base URL; empty: the address installed with the identity.
    pub repository: String,
    /// The CA's CRL as last published through the repository (`pki/crl.pem`), used instead
    /// of the one installed with the identity once it is newer (valise-health reads it too).
    pub crl_file: PathBuf,
    /// Seconds between two scheduled checks.
    pub interval_secs: u64,
    /// The first check after the daemon starts waits this long (plus the random delay): a
    /// box that was off for weeks checks soon after it boots, not one interval later.
    pub startup_delay_secs: u64,
    /// Each scheduled check waits a further random 0..=this many seconds, so that ~200 boxes
    /// do not all ask at the same moment.
    pub random_delay_secs: u64,
    /// Slots the updater made that are kept besides `current` and the previous one.
    pub keep_slots: usize,
    /// Unix seconds: the time floor before the first successful check (the image build time).
    pub initial_time_floor: i64,
    pub limits: Limits,
    pub engines: Engines,
}

/// Network limits of one check (DESIGN.md §3.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub connect_timeout_secs: u64,
    /// No byte for this long: the download stops (and resumes at the next check).
    pub idle_timeout_secs: u64,
    /// Per metadata file.
    pub metadata_timeout_secs: u64,
    /// The whole check's deadline: no target download starts after it, and no single
    /// download runs longer (so a check ends within about twice this).
    pub check_deadline_secs: u64,
    /// Slow-retrieval defence: at least this many bytes per second, averaged over 60 s,
    /// after a 30 s grace.
    pub min_bytes_per_sec: u64,
}

/// The engines a bundle restarts and checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Engines {
    pub transcribe_socket: PathBuf,
    pub translate_socket: PathBuf,
    /// How long a restarted engine may take to serve again.
    pub ready_timeout_secs: u64,
    /// The D-Bus address of systemd; empty: the system bus (tests: a private bus).
    pub bus: String,
    /// Test builds only (`test-hooks`): a program run as `PROGRAM restart ENGINE…` and
    /// `PROGRAM accept BUNDLE_DIR`, standing in for systemd and the engines.
    #[cfg(feature = "test-hooks")]
    pub test_program: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from("/run/valise/update.sock"),
            model_store: PathBuf::from("/var/lib/valise/models"),
            state_dir: PathBuf::from("/var/lib/valise-update"),
            identity_dir: PathBuf::from(valise_pki::enroll::DEFAULT_DIR),
            repository: String::new(),
            crl_file: PathBuf::from("/var/lib/valise/pki/crl.pem"),
            interval_secs: 6 * 3600,
            startup_delay_secs: 300,
            random_delay_secs: 3600,
            keep_slots: 3,
            // 2026-12-01T00:00:00Z; images set their own build time.
            initial_time_floor: 1_796_083_200,
            limits: Limits::default(),
            engines: Engines::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout_secs: 15,
            idle_timeout_secs: 60,
            metadata_timeout_secs: 60,
            check_deadline_secs: 6 * 3600,
            min_bytes_per_sec: 8 * 1024,
        }
    }
}

impl Default for Engines {
    fn default() -> Self {
        Engines {
            transcribe_socket: PathBuf::from("/run/valise/transcribe.sock"),
            translate_socket: PathBuf::from("/run/valise/translate.sock"),
            ready_timeout_secs: 180,
            bus: String::new(),
            #[cfg(feature = "test-hooks")]
            test_program: None,
        }
    }
}

impl Config {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_secs < 60 {
            return Err("interval_secs must be at least 60".into());
        }
        if self.keep_slots == 0 {
            return Err("keep_slots must be at least 1".into());
        }
        if !self.repository.is_empty() && !self.repository.starts_with("https://") {
            return Err(format!("repository {:?} must be https://", self.repository));
        }
        Ok(())
    }

    pub fn http_limits(&self) -> valise_tuf::fetch::http::HttpLimits {
        use std::time::Duration;
        let l = &self.limits;
        valise_tuf::fetch::http::HttpLimits {
            connect_timeout: Duration::from_secs(l.connect_timeout_secs),
            idle_timeout: Duration::from_secs(l.idle_timeout_secs),
            total_timeout: Duration::from_secs(l.check_deadline_secs),
            metadata_timeout: Duration::from_secs(l.metadata_timeout_secs),
            min_bytes_per_window: l.min_bytes_per_sec * 60,
            window: Duration::from_secs(60),
            grace: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_is_the_defaults_and_unknown_fields_are_refused() {
        let text = include_str!("../../../systemd/valise-update.toml");
        let c: Config = toml::from_str(text).expect("shipped config parses");
        assert_eq!(c, Config::default());
        c.validate().expect("valid");
        assert!(toml::from_str::<Config>("intervall_secs = 5").is_err());
        let c: Config = toml::from_str("interval_secs = 5").expect("parses");
        assert!(c.validate().is_err());
    }
}
