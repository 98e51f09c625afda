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
use crate::gpu::Nvml;
use crate::host::{CpuTimes, Host};
use crate::portal::{self, Counts, SignInWindow};
use crate::spool::{Class, Spool};
use crate::systemd::Systemd;
use crate::update::{HistoryEntry, LastCheck, UpdateApi, UpdaterStatus};

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

/// The outcome of a check that failed before installing, by the updater's failure kind;
/// `None` for any other check, and for a failure the updater did not classify.
fn failed(c: &LastCheck) -> Option<UpdateOutcome> {
    if c.outcome != "failed" {
        return None;
    }
    match c.failure.as_deref()? {
        "download" => Some(UpdateOutcome::FailedDownload),
        "verification" => Some(UpdateOutcome::FailedVerification),
        "expired_metadata" => Some(UpdateOutcome::FailedExpiredMetadata),
        "install" => Some(UpdateOutcome::FailedInstall),
        _ => None,
    }
}

/// The last update attempt: the most recent of the last install or rollback and the last
/// check when it failed (`from`: the bundle's version before, `0` for none; `bundle`, `from`
/// and `to` absent when the check failed before a bundle was chosen). On the same second the
/// failed check is the later (it is recorded after the installs it made).
fn last_update(s: &UpdaterStatus) -> Option<UpdateReport> {
    let done = s.history.iter().rev().find_map(|e| {
        Some(UpdateReport {
            at: u64::try_from(e.at).unwrap_or(0),
            bundle: Ident::new(&e.bundle).ok(),
            from: Some(version(e.from_version.unwrap_or(0))),
            to: Some(version(e.version)),
            outcome: outcome(e)?,
        })
    });
    let failure = s.last_check.as_ref().and_then(|c| {
        let a = c.attempt.as_ref();
        Some(UpdateReport {
            at: u64::try_from(c.at).unwrap_or(0),
            bundle: a.and_then(|a| Ident::new(&a.bundle).ok()),
            from: a.map(|a| version(a.from_version.unwrap_or(0))),
            to: a.map(|a| version(a.version)),
            outcome: failed(c)?,
        })
    });
    match (done, failure) {
        (Some(d), Some(f)) => Some(if f.at >= d.at { f } else { d }),
        (d, f) => d.or(f),
    }
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
        let host = Host::default().with_nvml(Nvml::new(cfg.nvml_library.clone()));
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
        let resources = self
            .host
            .collect(self.cpu_before, &self.cfg.data_dir, self.cfg.read_timeout())
            .await;
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
            // None when the portal's counts file is missing or stale: absent, not zeros.
            jobs: counts.map(|c| c.jobs),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::{Attempt, LastCheck};
    use valise_health_schema::JobCounts;

    fn entry(at: i64, version: u64, outcome: &str) -> HistoryEntry {
        HistoryEntry {
            at,
            bundle: "pten".into(),
            version,
            from_version: version.checked_sub(1).filter(|v| *v > 0),
            outcome: outcome.into(),
        }
    }

    fn check(at: i64, outcome: &str, failure: Option<&str>) -> LastCheck {
        LastCheck {
            at,
            outcome: outcome.into(),
            failure: failure.map(str::to_owned),
            attempt: None,
        }
    }

    fn status(history: Vec<HistoryEntry>, last_check: Option<LastCheck>) -> UpdaterStatus {
        UpdaterStatus {
            history,
            last_check,
            ..UpdaterStatus::default()
        }
    }

    fn v(s: &str) -> Option<Version> {
        Some(Version::new(s).expect("version"))
    }

    #[test]
    fn each_failure_kind_maps_to_its_outcome() {
        for (kind, outcome) in [
            ("download", UpdateOutcome::FailedDownload),
            ("verification", UpdateOutcome::FailedVerification),
            ("expired_metadata", UpdateOutcome::FailedExpiredMetadata),
            ("install", UpdateOutcome::FailedInstall),
        ] {
            assert_eq!(failed(&check(1, "failed", Some(kind))), Some(outcome));
        }
        // Not failed, not classified (an older updater), or a kind this reader does not know:
        // nothing is reported rather than a guess.
        assert_eq!(failed(&check(1, "up_to_date", None)), None);
        assert_eq!(failed(&check(1, "failed", None)), None);
        assert_eq!(failed(&check(1, "failed", Some("cosmic_rays"))), None);
    }

    #[test]
    fn a_failed_check_before_a_bundle_was_chosen_reports_no_versions() {
        let s = status(vec![], Some(check(50, "failed", Some("expired_metadata"))));
        let r = last_update(&s).expect("reported");
        assert_eq!(
            r,
            UpdateReport {
                at: 50,
                bundle: None,
                from: None,
                to: None,
                outcome: UpdateOutcome::FailedExpiredMetadata,
            }
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"at": 50, "outcome": "failed_expired_metadata"})
        );
    }

    #[test]
    fn last_update_is_the_more_recent_of_the_last_install_and_a_failed_check() {
        let history = vec![entry(10, 1, "installed"), entry(20, 2, "rolled_back")];
        // No failed check: the last history record.
        let r = last_update(&status(history.clone(), None)).expect("r");
        assert_eq!((r.at, r.outcome), (20, UpdateOutcome::RolledBack));
        assert_eq!((r.from, r.to), (v("1"), v("2")));
        // A later check refused a tampered bundle pten 3 (pten 1 installed).
        let mut c = check(30, "failed", Some("verification"));
        c.attempt = Some(Attempt {
            bundle: "pten".into(),
            version: 3,
            from_version: Some(1),
        });
        let r = last_update(&status(history.clone(), Some(c.clone()))).expect("r");
        assert_eq!(
            r,
            UpdateReport {
                at: 30,
                bundle: Ident::new("pten").ok(),
                from: v("1"),
                to: v("3"),
                outcome: UpdateOutcome::FailedVerification,
            }
        );
        // The same second as the install the same check made before failing: the failure.
        c.at = 20;
        let r = last_update(&status(history.clone(), Some(c.clone()))).expect("r");
        assert_eq!(r.outcome, UpdateOutcome::FailedVerification);
        // A failed check older than the last install (an old record): the install.
        c.at = 15;
        let r = last_update(&status(history.clone(), Some(c))).expect("r");
        assert_eq!(r.outcome, UpdateOutcome::RolledBack);
        // A later successful check with nothing new: the failure is gone, the install stays.
        let mut h = history.clone();
        h.push(entry(40, 3, "installed"));
        let r = last_update(&status(h, Some(check(41, "up_to_date", None)))).expect("r");
        assert_eq!(
            (r.at, r.outcome, r.to),
            (40, UpdateOutcome::Installed, v("3"))
        );
        let r = last_update(&status(history, Some(check(50, "up_to_date", None)))).expect("r");
        assert_eq!((r.at, r.outcome), (20, UpdateOutcome::RolledBack));
        // Never tried: nothing.
        assert_eq!(
            last_update(&status(vec![], Some(check(5, "up_to_date", None)))),
            None
        );
    }

    #[tokio::test]
    async fn job_counts_are_absent_when_the_portals_counts_are_absent_or_stale() {
        let d = tempfile::tempdir().expect("tempdir");
        let counts = d.path().join("counts.json");
        let cfg = Config {
            portal_counts: counts.clone(),
            portal_counts_max_age_s: 60,
            update_socket: d.path().join("no-update.sock"),
            model_store: d.path().join("models"),
            data_dir: d.path().to_owned(),
            os_release: d.path().join("os-release"),
            units: Vec::new(),
            read_timeout_ms: 200,
            ..Config::default()
        };
        let mut c = Collector::new(cfg, None, BootReason::Unknown);
        let now = 1_796_000_000;
        let absent = |r: &Reading| {
            let json = serde_json::to_value(&r.health).expect("json");
            r.health.jobs.is_none() && json.get("jobs").is_none()
        };
        let r = c.read(now).await;
        assert!(absent(&r), "no counts file: {:?}", r.health.jobs);
        let write = |at: u64, queued: u32| {
            std::fs::write(
                &counts,
                format!(
                    r#"{{"v":1,"at":{at},"jobs":{{"queued":{queued},"running":0,"done_last_hour":0,"failed_last_hour":0}},"failed_sign_ins_total":0}}"#
                ),
            )
            .expect("write");
        };
        write(now - 61, 4);
        let r = c.read(now).await;
        assert!(absent(&r), "stale counts: {:?}", r.health.jobs);
        write(now - 5, 4);
        let r = c.read(now).await;
        assert_eq!(r.health.jobs.map(|j| j.queued), Some(4));
        // Zeros the portal wrote are sent as zeros: known, not invented.
        write(now, 0);
        let r = c.read(now).await;
        assert_eq!(r.health.jobs, Some(JobCounts::default()));
    }
}
