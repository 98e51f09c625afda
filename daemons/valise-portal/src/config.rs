//! `/etc/valise/valise-portal.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use valise_config::ByteSize;

/// Every field has a default; the file may be absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTPS address on the LAN.
    pub addr: SocketAddr,
    /// Plain-HTTP address that only redirects to HTTPS; none when absent.
    pub redirect_addr: Option<SocketAddr>,
    /// SQLite database, uploads and results (`portal.db`, `jobs/`).
    pub data_dir: PathBuf,
    pub tls: Tls,
    pub engines: Engines,
    pub limits: Limits,
    pub sessions: Sessions,
    pub connections: Connections,
    /// Days after which uploads and results are deleted (the default of the admin setting).
    pub retention_days: u32,
    pub counts: Counts,
}

/// The counts valise-health reports (queue depth, jobs per hour, failed sign-ins): integers
/// only, written atomically into a directory only valise-health may read (`counts.rs`), so
/// that valise-health never opens the database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Counts {
    /// The file; nothing is written when its directory does not exist (no valise-health on
    /// this machine). Default `/run/valise-portal/counts.json`.
    pub file: PathBuf,
    /// Seconds between two writes. Default 5.
    pub interval_secs: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            file: PathBuf::from("/run/valise-portal/counts.json"),
            interval_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain and private key of the portal's LAN certificate (separate from
    /// the box identity used towards the central services).
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Engines {
    pub transcribe_socket: PathBuf,
    pub translate_socket: PathBuf,
    /// Transcription jobs handed to the engine at once (the rest wait in the portal's queue,
    /// where per-user fairness is decided).
    pub transcribe_in_flight: u32,
    /// Tries per job when the engine disappears under it (a crash, a kill); a planned stop
    /// (restart, update, shutdown: the engine reports `engine_stopping`) is not a try.
    pub max_attempts: u32,
    /// The model updater's socket (valise-update): the admin page's `last_update`.
    pub update_socket: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest recording accepted.
    pub max_upload: ByteSize,
    /// Largest document accepted.
    pub max_document: ByteSize,
    /// Characters of text per translation request.
    pub max_text_chars: usize,
    /// Jobs waiting or running per user, uploads in flight included; more is refused with
    /// `too_many_jobs`.
    pub max_jobs_per_user: u32,
    /// Space one user's uploads may take on the box (kept inputs, counted when each job is
    /// written); an upload that would pass it is refused with 413 `quota_exceeded`.
    pub max_storage_per_user: ByteSize,
    /// Failed password guesses (sign-in or password change) allowed per client address and
    /// account pair before each further guess must wait (1 s, doubling, up to 15 minutes).
    /// Each address also has 20 free failures over all accounts, and each account 20 from
    /// addresses that have not signed in to it in the last 30 days (delays capped at one
    /// minute there, so that a stranger cannot lock the real user out).
    pub login_failures_before_throttle: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// A session ends after this long without a request.
    pub idle_minutes: u64,
    /// ... and after this long in any case.
    pub max_hours: u64,
}

/// How many connections are served and how long a client may hold one without making
/// progress (the defence against clients that open connections and then send nothing or
/// send slowly; see `DESIGN.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Connections served at once. When full, a new connection takes the place of the one
    /// that has gone longest without a request or a request-body byte; if every connection
    /// is busy (a request in flight that waits on the portal), the new one is closed.
    pub max: u32,
    /// Connections at once from one client address (an IPv6 client counts by its /64).
    pub max_per_address: u32,
    /// The TLS handshake must finish in this time.
    pub handshake_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed; HTTP/1.1 request
    /// headers must arrive whole within this time too.
    pub idle_timeout_secs: u64,
    /// A request body must arrive at least this fast (bytes per second), measured over
    /// `body_rate_window_secs`; a slower upload is cut and its connection closed.
    pub min_body_rate: ByteSize,
    pub body_rate_window_secs: u64,
    /// An answer that makes no progress (the client does not read it) for this long is cut.
    pub send_timeout_secs: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            max: 512,
            max_per_address: 32,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 30,
            min_body_rate: ByteSize::new(1024),
            body_rate_window_secs: 30,
            send_timeout_secs: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 443)),
            redirect_addr: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            data_dir: PathBuf::from("/var/lib/valise-portal"),
            tls: Tls::default(),
            engines: Engines::default(),
            limits: Limits::default(),
            sessions: Sessions::default(),
            connections: Connections::default(),
            retention_days: 7,
            counts: Counts::default(),
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("/etc/valise/portal/cert.pem"),
            key: PathBuf::from("/etc/valise/portal/key.pem"),
        }
    }
}

impl Default for Engines {
    fn default() -> Self {
        Self {
            transcribe_socket: PathBuf::from("/run/valise/transcribe.sock"),
            translate_socket: PathBuf::from("/run/valise/translate.sock"),
            transcribe_in_flight: 2,
            max_attempts: 3,
            update_socket: PathBuf::from("/run/valise/update.sock"),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload: ByteSize::gib(1),
            max_document: ByteSize::mib(50),
            max_text_chars: 100_000,
            max_jobs_per_user: 20,
            max_storage_per_user: ByteSize::gib(10),
            login_failures_before_throttle: 5,
        }
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            idle_minutes: 60,
            max_hours: 12,
        }
    }
}

impl Config {
    /// Rejects settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.retention_days) {
            return Err("retention_days must be between 1 and 3650".into());
        }
        if self.engines.transcribe_in_flight == 0 || self.engines.max_attempts == 0 {
            return Err("engines.transcribe_in_flight and max_attempts must be at least 1".into());
        }
        if self.limits.max_upload.bytes() == 0
            || self.limits.max_document.bytes() == 0
            || self.limits.max_storage_per_user.bytes() == 0
        {
            return Err("upload limits must be above zero".into());
        }
        if self.sessions.idle_minutes == 0 || self.sessions.max_hours == 0 {
            return Err("session lifetimes must be above zero".into());
        }
        if self.counts.interval_secs == 0 {
            return Err("counts.interval_secs must be above zero".into());
        }
        let c = &self.connections;
        if c.max == 0 || c.max_per_address == 0 || c.max_per_address > c.max {
            return Err(
                "connections.max and max_per_address must be at least 1, max_per_address at most max"
                    .into(),
            );
        }
        if c.handshake_timeout_secs == 0
            || c.idle_timeout_secs == 0
            || c.body_rate_window_secs == 0
            || c.send_timeout_secs == 0
        {
            return Err("connections timeouts must be above zero".into());
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("portal.db")
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    /// Uploads and results while they are written (emptied at start-up).
    pub fn incoming_dir(&self) -> PathBuf {
        self.data_dir.join("incoming")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let text = include_str!("../../../systemd/valise-portal.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        assert_eq!(parsed, Config::default());
        parsed.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_impossible_values_are_refused() {
        assert!(toml::from_str::<Config>("adress = \"0.0.0.0:443\"").is_err());
        let c: Config = toml::from_str("retention_days = 0").unwrap();
        assert!(c.validate().is_err());
    }
}
