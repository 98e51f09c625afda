//! valise-health: fleet health on the box (issue 9).
//!
//! The box reports its status, health and events to the central MQTT broker under
//! `valise/v1/<site>/<box>/` (message types in `valise-health-schema`). So far this crate
//! holds the [`spool`], where messages wait, on disk and bounded, while the link is down, and
//! the [`host`] figures (uptime, CPU, memory, disk, temperatures read from the kernel).
//! The MQTT client, systemd over D-Bus and the binary come next.

pub mod error;
pub mod host;
pub mod spool;

pub use error::{Error, Result};
pub use host::Host;
pub use spool::{Class, Record, Spool, SpoolConfig, SpoolStats};
