//! The messages: `status`, `health`, `events` (box → centre) and `cmd` (centre → box).
//!
//! Every struct refuses unknown fields and every string is a bounded identifier
//! ([`crate::ident`]): a message that carries anything else does not deserialize and does not
//! validate against the JSON Schema.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SCHEMA_VERSION;
use crate::ident::{Ident, Percent, UnitName, Version};

/// The schema version field `v`: always `1` in this crate; anything else is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(SCHEMA_VERSION)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v == SCHEMA_VERSION {
            Ok(V1)
        } else {
            Err(serde::de::Error::custom(format!(
                "schema version {v}, this reader knows {SCHEMA_VERSION}"
            )))
        }
    }
}

impl JsonSchema for V1 {
    fn schema_name() -> Cow<'static, str> {
        "SchemaVersion".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Message schema version", "const": SCHEMA_VERSION })
    }
}

/// A list of at most `N` items: the bound of the schema's `maxItems`, enforced when reading.
fn at_most<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    let v = Vec::<T>::deserialize(d)?;
    if v.len() > N {
        return Err(serde::de::Error::invalid_length(
            v.len(),
            &format!("at most {N} items").as_str(),
        ));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// status

/// `valise/v1/<site>/<box>/status`, retained: `online` when the box connects, `offline` as its
/// last will (so a box that vanishes shows offline by itself) and on a clean shutdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMessage {
    pub v: V1,
    pub state: BoxState,
    /// Unix seconds when the state was declared (for the last will: when the box connected).
    pub at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    Online,
    Offline,
}

// ---------------------------------------------------------------------------------------------
// health

/// `valise/v1/<site>/<box>/health`: what the box is and how it is, periodically and at once on
/// a change. Figures the hardware does not expose are absent, never guessed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthMessage {
    pub v: V1,
    /// The box's message counter, shared by health and events, rising across restarts (the
    /// spool's sequence number): the centre orders and deduplicates by `(box, seq)`.
    pub seq: u64,
    /// Unix seconds when the figures were taken.
    pub at: u64,
    /// True when the message waited in the offline spool and is sent late.
    pub replayed: bool,
    pub versions: Versions,
    pub uptime_s: u64,
    pub boot_reason: BootReason,
    /// Every Valise unit: state and restart count (from systemd).
    #[schemars(length(max = 32))]
    #[serde(deserialize_with = "at_most::<_, _, 32>")]
    pub units: Vec<UnitStatus>,
    /// Installed models.
    #[schemars(length(max = 64))]
    #[serde(deserialize_with = "at_most::<_, _, 64>")]
    pub models: Vec<ModelStatus>,
    /// Installed bundles (the update repository's targets).
    #[schemars(length(max = 64))]
    #[serde(deserialize_with = "at_most::<_, _, 64>")]
    pub bundles: Vec<BundleStatus>,
    /// The last update attempt; absent when the box never tried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<UpdateReport>,
    /// The portal's job counts; absent when the box does not know them (the portal's counts
    /// file is missing or stale: the portal is stopped), never zeros in their place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobCounts>,
    pub resources: Resources,
    pub expiry: ExpiryDays,
}

/// Box and software versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    /// The OS image (the A/B slot's release).
    pub image: Version,
    /// The Valise software release.
    pub valise: Version,
    /// The hardware model, where the box knows it (`jetson-orin-nx-16`, `x86-rtx4000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Ident>,
}

/// Why the box last booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BootReason {
    PowerOn,
    /// The previous boot ended with an orderly shutdown or reboot (valise-health was stopped
    /// by systemd; an orderly power-off and power-on reads the same).
    Reboot,
    /// The previous boot ended without an orderly shutdown: a power cut, a hang, a kernel
    /// panic, a watchdog or the reset button (which one is not known).
    Unexpected,
    Watchdog,
    /// Rebooted into a newly installed update.
    Update,
    /// Rebooted back into the previous slot after a failed update.
    Rollback,
    KernelPanic,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitStatus {
    pub unit: UnitName,
    pub state: UnitState,
    /// systemd's `NRestarts` since the box booted.
    pub restarts: u32,
}

/// systemd's `ActiveState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelStatus {
    pub id: Ident,
    pub kind: ModelKind,
    pub version: Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Transcribe,
    Translate,
    Vad,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleStatus {
    pub name: Ident,
    pub version: Version,
}

/// The result of one update attempt: the last install or rollback, or a later check that
/// failed before installing anything (`failed_*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReport {
    /// Unix seconds when the attempt ended.
    pub at: u64,
    /// The bundle updated (valise-update's bundle id); `from` and `to` are its versions.
    /// Absent, with `from` and `to`, when the attempt failed before a bundle was chosen (the
    /// repository unreachable, its metadata refused or expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Ident>,
    /// The bundle's version before the attempt, `0` when none was installed; absent when no
    /// bundle was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Version>,
    /// The version offered; absent when no bundle was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Version>,
    pub outcome: UpdateOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    Installed,
    RolledBack,
    /// The repository (or the USB copy) could not be reached or read.
    FailedDownload,
    /// Signatures, thresholds, versions, hashes or lengths did not verify (a forged,
    /// tampered or replayed repository), or a bundle contradicts its signed description.
    FailedVerification,
    /// The repository's metadata had expired.
    FailedExpiredMetadata,
    /// A local error on the box (staging a slot, its state, I/O).
    FailedInstall,
    /// The new version booted but did not pass its health check.
    FailedHealthCheck,
}

impl UpdateOutcome {
    pub fn is_success(self) -> bool {
        self == Self::Installed
    }
}

/// Counts only: how much work the box has and does, never what it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCounts {
    pub queued: u32,
    pub running: u32,
    pub done_last_hour: u32,
    pub failed_last_hour: u32,
}

/// Machine figures where the hardware exposes them (NVML on x86, the Jetson's sysfs); each
/// is absent when it is not known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// The data partition (jobs, models, spool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<u64>,
    /// The hottest thermal zone, in °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuFigures>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_mw: Option<u32>,
}

/// Days until expiry (negative: expired that many days ago); absent when there is nothing to
/// expire yet (a box not enrolled, no update metadata fetched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiryDays {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_metadata: Option<i32>,
}

// ---------------------------------------------------------------------------------------------
// events

/// `valise/v1/<site>/<box>/events`: something happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMessage {
    pub v: V1,
    /// Shared with health messages: see [`HealthMessage::seq`].
    pub seq: u64,
    /// Unix seconds when it happened.
    pub at: u64,
    pub replayed: bool,
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// An update began (sent when a reading sees the updater switching, or, when the update
    /// was over between two readings, just before its outcome).
    UpdateStarted {
        /// The bundle (valise-update's bundle id); `from` and `to` are its versions, `0`
        /// when none was installed before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<Ident>,
        from: Version,
        to: Version,
    },
    UpdateFinished {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<Ident>,
        from: Version,
        to: Version,
        outcome: UpdateOutcome,
    },
    UpdateRolledBack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<Ident>,
        /// The version that failed.
        from: Version,
        /// The version the box is back on.
        to: Version,
        reason: RollbackReason,
    },
    EngineCrashed {
        unit: UnitName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        restarts: u32,
    },
    EngineRestarted {
        unit: UnitName,
        restarts: u32,
    },
    ExpirySoon {
        what: Expiring,
        days_left: i32,
    },
    DiskNearlyFull {
        area: DiskArea,
        used_percent: Percent,
        free_bytes: u64,
    },
    /// Repeated failed sign-ins on the portal: a count, never who.
    FailedSignIns {
        count: u32,
        window_s: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackReason {
    BootFailed,
    HealthCheckFailed,
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expiring {
    Certificate,
    UpdateMetadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskArea {
    System,
    Data,
}

/// How much a person should care; derived, not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Alert,
}

impl Event {
    pub fn severity(&self) -> Severity {
        match self {
            Self::UpdateStarted { .. } | Self::EngineRestarted { .. } => Severity::Info,
            Self::UpdateFinished { outcome, .. } if outcome.is_success() => Severity::Info,
            Self::UpdateFinished { .. }
            | Self::EngineCrashed { .. }
            | Self::ExpirySoon { .. }
            | Self::FailedSignIns { .. } => Severity::Warning,
            Self::UpdateRolledBack { .. } | Self::DiskNearlyFull { .. } => Severity::Alert,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cmd

/// `valise/v1/<site>/<box>/cmd`: a command from the centre. The box acts only on this topic,
/// only on the commands below, and logs each one with its `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandMessage {
    pub v: V1,
    /// Chosen by the centre, logged by the box.
    pub id: u64,
    /// Unix seconds when the centre sent it.
    pub at: u64,
    pub command: Command,
}

/// The fixed list: a command not named here is refused (it does not deserialize).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Ask valise-update to check the repository now.
    CheckForUpdates,
    /// Send a health message now.
    ReportHealthNow,
}

impl Command {
    pub const ALL: [Command; 2] = [Self::CheckForUpdates, Self::ReportHealthNow];
}

// ---------------------------------------------------------------------------------------------
// spooled

/// A message that goes through the offline spool: health and events (status is retained and
/// never spooled; commands flow the other way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spooled {
    Health(Box<HealthMessage>),
    Event(EventMessage),
}

impl Spooled {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Health(m) => m.seq,
            Self::Event(m) => m.seq,
        }
    }

    /// Marks the message as sent late, from the spool.
    pub fn mark_replayed(&mut self) {
        match self {
            Self::Health(m) => m.replayed = true,
            Self::Event(m) => m.replayed = true,
        }
    }

    pub fn channel(&self) -> crate::Channel {
        match self {
            Self::Health(_) => crate::Channel::Health,
            Self::Event(_) => crate::Channel::Events,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let r = match self {
            Self::Health(m) => serde_json::to_vec(m),
            Self::Event(m) => serde_json::to_vec(m),
        };
        // These types hold no maps with non-string keys and no floats: serializing cannot fail.
        r.unwrap_or_default()
    }

    /// Reads a spooled payload back, given the channel it was written for.
    pub fn from_json(channel: crate::Channel, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        match channel {
            crate::Channel::Events => serde_json::from_slice(bytes).map(Self::Event),
            _ => serde_json::from_slice(bytes).map(|m| Self::Health(Box::new(m))),
        }
    }
}
