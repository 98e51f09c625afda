//! The fleet health messages of Valise: what a box tells the centre over MQTT, and the few
//! commands the centre may send back. Data only: types, topic names and the JSON Schema
//! (`schema/*.json`, generated from these types by [`schemas`]); the MQTT client lives in
//! `valise-health` (box) and `valisectl fleet` (centre).
//!
//! ```text
//!  box (valise-health)                      broker                  centre (valisectl fleet)
//!  valise/v1/<site>/<box>/status  ── retained online / will offline ──▶  valise/v1/+/+/status
//!  valise/v1/<site>/<box>/health  ── periodic, on change (spooled) ──▶  valise/v1/+/+/health
//!  valise/v1/<site>/<box>/events  ── when it happens (spooled)     ──▶  valise/v1/+/+/events
//!  valise/v1/<site>/<box>/cmd     ◀── fixed commands, central id only ─  publish
//! ```
//!
//! **No content, by construction.** No field can hold a file name, a transcript, a
//! translation or a user name: every struct refuses unknown fields, and every string is a
//! bounded identifier ([`ident`]: a version, a model id, a unit name; no spaces, no `/`,
//! at most 64 bytes). Counts and figures are integers. See `README.md`.

pub mod counts;
pub mod ident;
pub mod message;
pub mod topic;

pub use counts::PortalCounts;
pub use ident::{Ident, InvalidIdent, Name, Percent, UnitName, Version};
pub use message::*;
pub use topic::{BoxId, Channel, TOPIC_ROOT, fleet_filter, parse_topic};

/// The message schema version: the `v` field of every message and the `v1` of the topics.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of each message kind, as `(file stem, schema)`: what `schema/<stem>.json`
/// holds (a test keeps the files current).
pub fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("status", schemars::schema_for!(StatusMessage)),
        ("health", schemars::schema_for!(HealthMessage)),
        ("events", schemars::schema_for!(EventMessage)),
        ("cmd", schemars::schema_for!(CommandMessage)),
    ]
}
