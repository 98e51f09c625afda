//! valise-update: the box's model updater (DESIGN.md §5). It checks the central repository
//! (TUF metadata over HTTPS with mutual TLS, `valise-tuf`) on a schedule and on demand, or a
//! copy of it on a USB stick, picks the bundles offered to this box by their wave, downloads
//! and verifies them, stages a new slot of the model store, switches `current` atomically,
//! restarts the engines, runs the bundle's acceptance cases, and commits or rolls back by
//! itself. A journal makes every step restartable after a power cut.

// The update flow (this helper): check, staging, switching, journal, prune, history, API.
pub mod api;
pub mod check;
pub mod config;
pub mod engines;
pub mod history;
pub mod journal;
pub mod killpoint;
pub mod prune;
pub mod schedule;
pub mod source;
pub mod stage;
pub mod switch;

// Engines: restarts through systemd's D-Bus API, acceptance cases through the engines.
pub mod acceptance;
pub mod systemd;

pub use check::{CheckError, Service};
pub use config::Config;
pub use killpoint::KILLPOINTS;
