//! The collector: reads the box (kernel figures, systemd, the portal's counts, the model
//! store, expiry dates), builds health messages and detects events, and pushes both into the
//! spool. Everything it puts in a message comes from the box's own inventory and counters,
//! through the bounded identifier types of `valise-health-schema`: no file name, no text, no
//! user name can get in.

use std::collections::BTreeMap;
use std::path::Path;

use valise_health_schema::{
    BootReason, DiskArea, Event, EventMessage, Expiring, ExpiryDays, HealthMessage, Ident,
    JobCounts, ModelKind, ModelStatus, Percent, UnitState, UnitStatus, V1, Version, Versions,
};

use crate::config::Config;
use crate::host::{CpuTimes, Host};
use crate::portal::{self, PortalCounts};
use crate::spool::{Class, Spool};
use crate::systemd::Systemd;

/// Collector state between readings: what was last seen, to send events on changes only.
#[derive(Debug)]
pub struct Collector {
    cfg: Config,
    host: Host,
    systemd: Systemd,
    cpu_before: Option<CpuTimes>,
    units: BTreeMap<String, (UnitState, u32)>,
    /// The parts of the last health message whose change sends a new one at once.
    last_shape: Option<String>,
    disk_full: bool,
    sign_ins_alerted: bool,
    expiry_warned: [Option<i32>; 2],
    certificate_not_after: Option<u64>,
}

/// What one reading found.
#[derive(Debug)]
pub struct Reading {
    pub health: HealthMessage,
    pub events: Vec<Event>,
    /// The health message differs from the last in units, models, versions or expiry.
    pub changed: bool,
}

fn days_until(not_after: u64, now: u64) -> i32 {
    let d = (i128::from(not_after) - i128::from(now)).div_euclid(86_400);
    d.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

/// `IMAGE_VERSION=` (else `VERSION_ID=`) of an os-release file.
fn image_version(path: &Path) -> Option<Version> {
    let text = std::fs::read_to_string(path).ok()?;
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    get("IMAGE_VERSION")
        .or_else(|| get("VERSION_ID"))
        .and_then(|v| Version::new(&v).ok())
}

/// The installed models: id, kind and a version (the first 12 hex digits of the first
/// file's sha256 in the store's manifest: the catalog has no version numbers, the content
/// hash identifies a build exactly).
fn models(store: &Path) -> Vec<ModelStatus> {
    let manifest = store.join("current/manifest.toml");
    let Ok(cat) = valise_models::Catalog::load(&manifest) else {
        return Vec::new();
    };
    cat.models
        .iter()
        .filter_map(|m| {
            let kind = match m.kind {
                valise_models::ModelKind::SpeechToText => ModelKind::Transcribe,
                valise_models::ModelKind::Translation => ModelKind::Translate,
                valise_models::ModelKind::VoiceActivity => ModelKind::Vad,
                valise_models::ModelKind::Runtime => ModelKind::Other,
            };
            let version = m.files.first().map(|f| f.sha256.get(..12).unwrap_or(""))?;
            Some(ModelStatus {
                id: Ident::new(&m.id).ok()?,
                kind,
                version: Version::new(version).ok()?,
            })
        })
        .take(64)
        .collect()
}

/// `signed.expires` of a TUF `timestamp.json`, as Unix seconds.
fn metadata_expires(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() > 1 << 20 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let s = v.get("signed")?.get("expires")?.as_str()?;
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

impl Collector {
    /// `certificate_not_after`: the box certificate's expiry (Unix seconds), when enrolled.
    pub fn new(cfg: Config, certificate_not_after: Option<u64>) -> Self {
        let host = Host::default();
        let cpu_before = host.cpu_times();
        let systemd = Systemd::new(cfg.read_timeout());
        Self {
            cfg,
            host,
            systemd,
            cpu_before,
            units: BTreeMap::new(),
            last_shape: None,
            disk_full: false,
            sign_ins_alerted: false,
            expiry_warned: [None, None],
            certificate_not_after,
        }
    }

    /// Reads everything once. `seq` is left 0: the spool numbers messages when they are
    /// pushed ([`push_health`], [`push_event`]).
    pub async fn read(&mut self, now: u64) -> Reading {
        let mut events = Vec::new();
        let units = self.read_units(&mut events).await;
        let counts = portal::counts(
            self.cfg.portal_db.clone(),
            now,
            self.cfg.alerts.failed_sign_ins_window_s,
            self.cfg.read_timeout(),
        )
        .await;
        self.sign_ins(counts, &mut events);
        let cpu_now = self.host.cpu_times();
        let resources = self.host.resources(self.cpu_before, &self.cfg.data_dir);
        self.cpu_before = cpu_now.or(self.cpu_before);
        self.disk(&mut events);
        let expiry = ExpiryDays {
            certificate: self.certificate_not_after.map(|t| days_until(t, now)),
            update_metadata: self
                .cfg
                .update_metadata
                .as_deref()
                .and_then(metadata_expires)
                .map(|t| days_until(t, now)),
        };
        self.expiry(&expiry, &mut events);
        let health = HealthMessage {
            v: V1,
            seq: 0,
            at: now,
            replayed: false,
            versions: Versions {
                image: image_version(&self.cfg.os_release)
                    .unwrap_or_else(|| Version::new("unknown").expect("a valid version")),
                valise: Version::new(env!("CARGO_PKG_VERSION")).expect("a valid version"),
                hardware: self
                    .cfg
                    .hardware
                    .as_deref()
                    .and_then(|h| Ident::new(h).ok()),
            },
            uptime_s: self.host.uptime_s().unwrap_or(0),
            // What valise-update records about the last boot is not read yet.
            boot_reason: BootReason::Unknown,
            units,
            models: models(&self.cfg.model_store),
            bundles: Vec::new(),
            last_update: None,
            jobs: counts.map(|c| c.jobs).unwrap_or(JobCounts::default()),
            resources,
            expiry,
        };
        let shape = serde_json::to_string(&(
            &health.versions,
            &health.units,
            &health.models,
            &health.expiry,
            self.disk_full,
        ))
        .unwrap_or_default();
        let changed = self.last_shape.as_ref() != Some(&shape);
        self.last_shape = Some(shape);
        Reading {
            health,
            events,
            changed,
        }
    }

    /// `check_for_updates`: starts `valise-update.service` (a oneshot check) through systemd.
    pub async fn start_update_check(&mut self) -> Result<(), String> {
        self.systemd
            .start("valise-update.service")
            .await
            .map_err(|e| e.to_string())
    }

    async fn read_units(&mut self, events: &mut Vec<Event>) -> Vec<UnitStatus> {
        let Some(units) = self.systemd.units(&self.cfg.units).await else {
            return Vec::new();
        };
        for u in &units {
            let name = u.unit.as_str().to_owned();
            if let Some((state, restarts)) = self.units.get(&name) {
                if u.state == UnitState::Failed && *state != UnitState::Failed {
                    events.push(Event::EngineCrashed {
                        unit: u.unit.clone(),
                        exit_code: None,
                        signal: None,
                        restarts: u.restarts,
                    });
                }
                if u.restarts > *restarts {
                    events.push(Event::EngineRestarted {
                        unit: u.unit.clone(),
                        restarts: u.restarts,
                    });
                }
            }
            self.units.insert(name, (u.state, u.restarts));
        }
        units
    }

    fn sign_ins(&mut self, counts: Option<PortalCounts>, events: &mut Vec<Event>) {
        let Some(c) = counts else { return };
        let over = c.failed_sign_ins >= self.cfg.alerts.failed_sign_ins;
        if over && !self.sign_ins_alerted {
            events.push(Event::FailedSignIns {
                count: c.failed_sign_ins,
                window_s: self.cfg.alerts.failed_sign_ins_window_s,
            });
        }
        self.sign_ins_alerted = over;
    }

    fn disk(&mut self, events: &mut Vec<Event>) {
        let Some(d) = Host::disk(&self.cfg.data_dir) else {
            return;
        };
        if d.total_bytes == 0 {
            return;
        }
        let used = Percent::of(d.used_bytes, d.total_bytes);
        let limit = self.cfg.alerts.disk_full_percent;
        if used.get() >= limit && !self.disk_full {
            self.disk_full = true;
            events.push(Event::DiskNearlyFull {
                area: DiskArea::Data,
                used_percent: used,
                free_bytes: d.total_bytes - d.used_bytes,
            });
        } else if used.get() < limit.saturating_sub(5) {
            self.disk_full = false;
        }
    }

    fn expiry(&mut self, e: &ExpiryDays, events: &mut Vec<Event>) {
        for (i, (what, days)) in [
            (Expiring::Certificate, e.certificate),
            (Expiring::UpdateMetadata, e.update_metadata),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(days) = days else { continue };
            // Once per day left, while under the warning threshold.
            if days < self.cfg.alerts.expiry_warn_days && self.expiry_warned[i] != Some(days) {
                self.expiry_warned[i] = Some(days);
                events.push(Event::ExpirySoon {
                    what,
                    days_left: days,
                });
            }
        }
    }
}

/// Pushes a health message, numbered with the spool's next `seq`.
pub fn push_health(spool: &mut Spool, mut m: HealthMessage) -> crate::Result<u64> {
    m.seq = spool.next_seq();
    let bytes = serde_json::to_vec(&m).unwrap_or_default();
    spool.push(Class::Health, m.at, &bytes)
}

/// Pushes an event, numbered with the spool's next `seq`.
pub fn push_event(spool: &mut Spool, at: u64, event: Event) -> crate::Result<u64> {
    let m = EventMessage {
        v: V1,
        seq: spool.next_seq(),
        at,
        replayed: false,
        event,
    };
    let bytes = serde_json::to_vec(&m).unwrap_or_default();
    spool.push(Class::Event, at, &bytes)
}
