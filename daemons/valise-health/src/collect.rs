//! The collector: reads the box (kernel figures, systemd, the portal's counts, the model
//! store, expiry dates), builds health messages and detects events, and pushes both into the
//! spool. Everything it puts in a message comes from the box's own inventory and counters,
//! through the bounded identifier types of `valise-health-schema`: no file name, no text, no
//! user name can get in.

use std::collections::BTreeMap;
use std::path::Path;

use valise_health_schema::{
    BootReason, BundleStatus, DiskArea, Event, EventMessage, Expiring, ExpiryDays, HealthMessage,
    Ident, ModelKind, ModelStatus, Percent, RollbackReason, UnitState, UnitStatus, UpdateOutcome,
    UpdateReport, V1, Version, Versions,
};

use crate::config::Config;
use crate::host::{CpuTimes, Host};
use crate::portal::{self, Counts, SignInWindow};
use crate::spool::{Class, Spool};
use crate::systemd::Systemd;
use crate::update::{HistoryEntry, UpdateApi, UpdaterStatus};

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
    boot_reason: BootReason,
    sign_in_window: SignInWindow,
    updater: UpdateApi,
    /// What the last answer of valise-update said, to send events on changes only.
    update_seen: Option<UpdateSeen>,
}

/// valise-update as last read.
#[derive(Debug, Default)]
struct UpdateSeen {
    installed: BTreeMap<String, u64>,
    /// The history records seen (the updater keeps the last 100).
    history: Vec<HistoryEntry>,
    /// `update_started` was sent for this bundle version.
    started: Option<(String, u64)>,
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

fn version(v: u64) -> Version {
    Version::new(&v.to_string()).expect("a number is a valid version")
}

/// The installed bundles, as valise-update lists them.
fn bundles(s: &UpdaterStatus) -> Vec<BundleStatus> {
    s.installed
        .iter()
        .filter_map(|(id, v)| {
            Some(BundleStatus {
                name: Ident::new(id).ok()?,
                version: version(*v),
            })
        })
        .take(64)
        .collect()
}

fn outcome(e: &HistoryEntry) -> Option<UpdateOutcome> {
    match e.outcome.as_str() {
        "installed" => Some(UpdateOutcome::Installed),
        "rolled_back" => Some(UpdateOutcome::RolledBack),
        _ => None,
    }
}

/// The last install or rollback (`from`: the bundle's version before, `0` for none).
fn last_update(s: &UpdaterStatus) -> Option<UpdateReport> {
    let e = s.history.iter().rev().find(|e| outcome(e).is_some())?;
    Some(UpdateReport {
        at: u64::try_from(e.at).unwrap_or(0),
        bundle: Ident::new(&e.bundle).ok(),
        from: version(e.from_version.unwrap_or(0)),
        to: version(e.version),
        outcome: outcome(e)?,
    })
}

impl UpdateSeen {
    /// The events between the last answer and `now`: `update_started` when the updater is
    /// seen switching to a bundle version; for each new history record, `update_started`
    /// first if the update began and ended between two readings, then `update_finished`
    /// (installed) or `update_rolled_back`.
    fn events(&mut self, s: &UpdaterStatus, events: &mut Vec<Event>) {
        if let Some((b, v)) = s.phase.as_ref().and_then(|p| p.switching())
            && self.started.as_ref() != Some(&(b.to_owned(), v))
        {
            let from = self
                .installed
                .get(b)
                .or_else(|| s.installed.get(b).filter(|x| **x != v))
                .copied()
                .unwrap_or(0);
            events.push(Event::UpdateStarted {
                bundle: Ident::new(b).ok(),
                from: version(from),
                to: version(v),
            });
            self.started = Some((b.to_owned(), v));
        }
        for e in s.history.iter().filter(|e| !self.history.contains(e)) {
            let Some(outcome) = outcome(e) else { continue };
            let bundle = Ident::new(&e.bundle).ok();
            let from = version(e.from_version.unwrap_or(0));
            let to = version(e.version);
            if self.started.as_ref() != Some(&(e.bundle.clone(), e.version)) {
                events.push(Event::UpdateStarted {
                    bundle: bundle.clone(),
                    from: from.clone(),
                    to: to.clone(),
                });
            }
            self.started = None;
            events.push(match outcome {
                UpdateOutcome::RolledBack => Event::UpdateRolledBack {
                    bundle,
                    from: to,
                    to: from,
                    // The updater rolls back when the engines do not come up with the new
                    // bundle or its acceptance cases fail: the box's health check.
                    reason: RollbackReason::HealthCheckFailed,
                },
                outcome => Event::UpdateFinished {
                    bundle,
                    from,
                    to,
                    outcome,
                },
            });
        }
        self.installed = s.installed.clone();
        self.history = s.history.clone();
    }
}

impl Collector {
    /// `certificate_not_after`: the box certificate's expiry (Unix seconds), when enrolled.
    /// `boot_reason`: decided once at start (`boot.rs`).
    pub fn new(cfg: Config, certificate_not_after: Option<u64>, boot_reason: BootReason) -> Self {
        let host = Host::default();
        let cpu_before = host.cpu_times();
        let systemd = Systemd::new(cfg.read_timeout());
        let updater = UpdateApi::new(cfg.update_socket.clone(), cfg.read_timeout());
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
            boot_reason,
            sign_in_window: SignInWindow::default(),
            updater,
            update_seen: None,
        }
    }

    /// The client of valise-update's socket (for `check_for_updates`).
    pub fn updater(&self) -> UpdateApi {
        self.updater.clone()
    }

    /// Reads everything once. `seq` is left 0: the spool numbers messages when they are
    /// pushed ([`push_health`], [`push_event`]).
    pub async fn read(&mut self, now: u64) -> Reading {
        let mut events = Vec::new();
        let units = self.read_units(&mut events).await;
        let counts = portal::read(
            &self.cfg.portal_counts,
            now,
            self.cfg.portal_counts_max_age_s,
        )
        .map(|c| {
            let window = self.cfg.alerts.failed_sign_ins_window_s;
            let n = self
                .sign_in_window
                .push(now, c.failed_sign_ins_total, window);
            Counts::of(&c, n)
        });
        self.sign_ins(counts, &mut events);
        let update = self.updater.status().await;
        if let Some(s) = &update {
            match &mut self.update_seen {
                Some(seen) => seen.events(s, &mut events),
                // The first answer is the baseline: what happened before valise-health
                // started is in `last_update`, not sent again as events.
                None => {
                    self.update_seen = Some(UpdateSeen {
                        installed: s.installed.clone(),
                        history: s.history.clone(),
                        started: s
                            .phase
                            .as_ref()
                            .and_then(|p| p.switching())
                            .map(|(b, v)| (b.to_owned(), v)),
                    });
                }
            }
        }
        let cpu_now = self.host.cpu_times();
        let resources = self.host.resources(self.cpu_before, &self.cfg.data_dir);
        self.cpu_before = cpu_now.or(self.cpu_before);
        self.disk(&mut events);
        let expiry = ExpiryDays {
            certificate: self.certificate_not_after.map(|t| days_until(t, now)),
            update_metadata: update
                .as_ref()
                .and_then(|s| s.metadata_expires)
                .and_then(|t| u64::try_from(t).ok())
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
            boot_reason: self.boot_reason,
            units,
            models: models(&self.cfg.model_store),
            bundles: update.as_ref().map(bundles).unwrap_or_default(),
            last_update: update.as_ref().and_then(last_update),
            jobs: counts.map(|c| c.jobs).unwrap_or_default(),
            resources,
            expiry,
        };
        let shape = serde_json::to_string(&(
            &health.versions,
            &health.units,
            &health.models,
            &health.bundles,
            &health.last_update,
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

    fn sign_ins(&mut self, counts: Option<Counts>, events: &mut Vec<Event>) {
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
