//! One check, from metadata to a committed (or rolled back) slot, and the recovery after a
//! power cut (DESIGN.md §5.2). The order of durable steps:
//!
//! 1. refresh the metadata (`valise_tuf::Updater::refresh_with_floor`: reference time
//!    `max(clock, floor)`, floor raised only after success);
//! 2. pick, per bundle id, the highest version offered to this box by its wave, above the
//!    installed version and never refused before;
//! 3. download `bundle.toml` and every file it lists, each a signed target whose length and
//!    hashes are checked (files already in the current slot with the same sha256 are linked,
//!    not fetched); downloads are content-addressed in `<state_dir>/downloads/` and kept
//!    across checks until the bundle is committed (resume);
//! 4. stage the slot (`stage.rs`);
//! 5. journal `Switching`, switch `current`, restart the bundle's engines, run its acceptance
//!    cases;
//! 6. pass: history, journal `Idle`, prune. Fail: journal `RollingBack` with the reason,
//!    switch back, restart, history (the version is refused from then on), journal `Idle`.
//!
//! `recover` (at start-up) removes `.tmp-*` slots and finishes a `Switching` (forward: switch
//! if not yet, restart, acceptance, commit or roll back) or a `RollingBack` journal.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use valise_bundle::{Manifest, TargetCustom};
use valise_tuf::TrustedSet;
use valise_tuf::fetch::DirFetch;
use valise_tuf::fetch::FetchError;
use valise_tuf::fetch::http::HttpFetch;
use valise_tuf::store::MetadataStore;
use valise_tuf::time::{ClockState, TimeFloor};
use valise_tuf::updater::TargetFile;
use valise_tuf::updater::{UpdateError, Updater};

use crate::config::Config;
use crate::engines::EngineControl;
use crate::history::{Attempt, CheckRecord, Entry, Failure, Outcome, State, StateFile};
use crate::journal::{Journal, Phase};
use crate::killpoint;
use crate::source::{Origin, Source};
use crate::stage::{self, StageInput};
use crate::switch::{self, current_slot, slot_path};

/// The updater of one box.
#[derive(Debug)]
pub struct Service {
    pub config: Config,
    engines: Box<dyn EngineControl>,
    journal: Journal,
    state: StateFile,
    floor: TimeFloor,
    metadata: MetadataStore,
    /// When the running check started: no new target download begins after its deadline
    /// (`limits.check_deadline_secs`), so one check of many files cannot run for days.
    check_started: std::sync::Mutex<Option<std::time::Instant>>,
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The result of installing one bundle.
struct Installed {
    outcome: Outcome,
    reason: String,
}

/// Why a check installed nothing: the kind of failure (recorded beside the reason, and what
/// valise-health reports to the centre) and the reason in words, as the check's record and
/// `valisectl` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    pub failure: Failure,
    pub reason: String,
    /// The bundle being installed when it happened (set by `run_bundles`).
    pub attempt: Option<Attempt>,
}

impl CheckError {
    pub fn new(failure: Failure, reason: impl Into<String>) -> Self {
        CheckError {
            failure,
            reason: reason.into(),
            attempt: None,
        }
    }

    /// A `valise_tuf` refusal, its reason `reason`.
    fn tuf(e: &UpdateError, reason: impl Into<String>) -> Self {
        Self::new(classify(e), reason)
    }
}

/// A local error (staging, slots, the journal, the state, I/O): the many `?` on local steps.
impl From<String> for CheckError {
    fn from(reason: String) -> Self {
        Self::new(Failure::Install, reason)
    }
}

impl From<&str> for CheckError {
    fn from(reason: &str) -> Self {
        Self::new(Failure::Install, reason)
    }
}

/// The kind of failure of a metadata refresh or a target download.
pub fn classify(e: &UpdateError) -> Failure {
    match e {
        // More bytes than the signed length or the metadata limit: a length that did not
        // verify (an endless-data attack), not a source that could not be read.
        UpdateError::Fetch(FetchError::TooLarge { .. }) => Failure::Verification,
        UpdateError::Fetch(_) => Failure::Download,
        UpdateError::Tuf(valise_tuf::Error::Expired { .. }) => Failure::ExpiredMetadata,
        UpdateError::Tuf(_) => Failure::Verification,
        UpdateError::Io(_) | UpdateError::NoTrustedRoot => Failure::Install,
    }
}

/// A refusal of the bundle's own files: `bundle.toml` against its signed target.
fn refused(reason: String) -> CheckError {
    CheckError::new(Failure::Verification, reason)
}

impl Service {
    pub fn new(config: Config, engines: Box<dyn EngineControl>) -> io::Result<Self> {
        let dir = &config.state_dir;
        fs::create_dir_all(dir.join("downloads"))?;
        let initial = OffsetDateTime::from_unix_timestamp(config.initial_time_floor)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Service {
            journal: Journal::new(dir),
            state: StateFile::new(dir),
            floor: TimeFloor::new(dir.join("time-floor"), initial),
            metadata: MetadataStore::open(dir.join("metadata"))?,
            check_started: std::sync::Mutex::new(None),
            config,
            engines,
        })
    }

    pub fn root(&self) -> &Path {
        &self.config.model_store
    }
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
    pub fn state(&self) -> &StateFile {
        &self.state
    }
    pub fn floor(&self) -> &TimeFloor {
        &self.floor
    }
    pub fn metadata(&self) -> &MetadataStore {
        &self.metadata
    }

    fn identity(&self) -> Option<valise_pki::enroll::InstalledIdentity> {
        valise_pki::enroll::IdentityDir::new(&self.config.identity_dir)
            .load()
            .ok()
    }

    /// The source of `origin`; every error is a [`Failure::Download`] (the USB copy or the
    /// repository cannot be read or reached).
    fn source(&self, origin: &Origin) -> Result<Source, CheckError> {
        self.source_of(origin)
            .map_err(|e| CheckError::new(Failure::Download, e))
    }

    fn source_of(&self, origin: &Origin) -> Result<Source, String> {
        match origin {
            Origin::Dir(d) => {
                if !d.join("metadata").is_dir() {
                    return Err(format!("{}: no metadata/ directory", d.display()));
                }
                Ok(Source::Dir(DirFetch::new(d)))
            }
            Origin::Repository => {
                let id = valise_pki::enroll::IdentityDir::new(&self.config.identity_dir)
                    .load()
                    .map_err(|e| format!("box identity: {e}"))?;
                let base = if self.config.repository.is_empty() {
                    id.endpoints.repository.clone()
                } else {
                    self.config.repository.clone()
                };
                let mut id = id;
                // A CRL published later through the repository, when newer than the
                // enrollment's (with the enrollment's alone, a box is cut off once it expires).
                if let Err(e) = id.use_fresher_crl(&self.config.crl_file) {
                    tracing::warn!(error = %e, "published CRL not used");
                }
                let tls = id.client_config().map_err(|e| format!("TLS: {e}"))?;
                Ok(Source::Http(Box::new(
                    HttpFetch::new(&base, tls, self.config.http_limits()).map_err(s)?,
                )))
            }
        }
    }

    /// One check at clock reading `now`; its result is recorded as the last check.
    pub fn check(&self, origin: &Origin, now: OffsetDateTime) -> CheckRecord {
        if let Ok(mut started) = self.check_started.lock() {
            *started = Some(std::time::Instant::now());
        }
        let (outcome, reason, failure, attempt) = match self.run(origin, now) {
            Ok(r) => (r.outcome, r.reason, None, None),
            Err(e) => (Outcome::Failed, e.reason, Some(e.failure), e.attempt),
        };
        let rec = CheckRecord {
            at: OffsetDateTime::now_utc().unix_timestamp(),
            source: origin.describe(),
            outcome,
            reason,
            failure,
            attempt,
        };
        let r2 = rec.clone();
        if let Err(e) = self.state.update(|st| st.last_check = Some(r2)) {
            tracing::error!(error = %e, "cannot record the check");
        }
        tracing::info!(source = %rec.source, outcome = ?rec.outcome, failure = ?rec.failure, reason = %rec.reason, "check");
        rec
    }

    fn refresh(
        &self,
        source: Source,
        now: OffsetDateTime,
    ) -> Result<(Updater<Source>, TrustedSet), CheckError> {
        let updater = Updater::new(source, self.metadata.clone());
        let clock = self
            .floor
            .reference_time(now)
            .map(|(_, c)| c)
            .map_err(|e| format!("time floor: {e}"))?;
        let set = updater.refresh_with_floor(&self.floor, now).map_err(|e| {
            let hint = match (&e, clock) {
                (UpdateError::Tuf(valise_tuf::Error::Expired { .. }), ClockState::BehindFloor) => {
                    " (the clock is behind the last successful check; the time floor was used)"
                }
                (UpdateError::Tuf(valise_tuf::Error::Expired { .. }), ClockState::Ok) => {
                    " (metadata not refreshed centrally, or the clock ahead of the newest signed metadata?)"
                }
                _ => "",
            };
            CheckError::tuf(&e, format!("metadata refused: {e}{hint}"))
        })?;
        Ok((updater, set))
    }

    fn run(&self, origin: &Origin, now: OffsetDateTime) -> Result<Installed, CheckError> {
        if self.journal.read().map_err(s)? != Phase::Idle {
            self.recover().map_err(|e| format!("recovery: {e}"))?;
        }
        let source = self.source(origin)?;
        let (updater, mut set) = self.refresh(source, now)?;
        let crl = self.install_crl(&updater, &mut set);
        let mut r = self.run_bundles(&updater, &mut set, now)?;
        if let Some(note) = crl {
            r.reason = format!("{}; {note}", r.reason);
        }
        Ok(r)
    }

    /// The CA's CRL the central team publishes as the target `pki/crl.pem`: installed into
    /// `crl_file` when it is signed by the box's CA and newer than the CRLs the box uses.
    /// What happened is returned for the check's reason; a bad CRL does not stop the check
    /// (the bundles are verified by TUF alone).
    fn install_crl(&self, updater: &Updater<Source>, set: &mut TrustedSet) -> Option<String> {
        let tf = match updater.find_target(set, valise_bundle::CRL_TARGET) {
            Ok(Some(tf)) => tf,
            Ok(None) => return None,
            Err(e) => return Some(format!("CRL not looked up: {e}")),
        };
        // Not enrolled: no CA to check it against, and no TLS that would use it.
        let mut id = self.identity()?;
        if tf.length > valise_bundle::MAX_CRL_BYTES {
            return Some(format!("CRL refused: {} bytes", tf.length));
        }
        let pem = self
            .download(updater, &tf)
            .map_err(|e| e.reason)
            .and_then(|p| {
                let text = fs::read_to_string(&p).map_err(s);
                let _ = fs::remove_file(&p);
                text
            });
        let crl = pem.and_then(|pem| {
            valise_pki::crl::check(valise_bundle::CRL_TARGET, &pem, &id.ca)
                .map(|c| (c, pem))
                .map_err(s)
        });
        let (crl, pem) = match crl {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "published CRL refused");
                return Some(format!("CRL refused: {e}"));
            }
        };
        // The CRLs in use: the enrollment's, or a fresher one installed before.
        if let Err(e) = id.use_fresher_crl(&self.config.crl_file) {
            tracing::warn!(error = %e, "installed CRL unreadable; replaced");
        }
        let in_use: Vec<_> = id
            .crls
            .iter()
            .filter_map(|d| valise_pki::crl::check_der("CRL in use", d.clone(), &id.ca).ok())
            .collect();
        if !valise_pki::crl::fresher(&crl, &in_use) {
            return None;
        }
        let written = match self.config.crl_file.parent() {
            Some(d) => fs::create_dir_all(d),
            None => Ok(()),
        }
        .and_then(|()| {
            valise_pki::fsutil::write_atomic(&self.config.crl_file, pem.as_bytes(), 0o644)
        });
        match written {
            Ok(()) => {
                tracing::info!(number = ?crl.number, revoked = crl.revoked, "CRL installed");
                Some(format!(
                    "CRL {} installed ({} revoked)",
                    crl.number.map_or_else(|| "-".into(), |n| n.to_string()),
                    crl.revoked
                ))
            }
            Err(e) => Some(format!("CRL not installed: {e}")),
        }
    }

    fn run_bundles(
        &self,
        updater: &Updater<Source>,
        set: &mut TrustedSet,
        now: OffsetDateTime,
    ) -> Result<Installed, CheckError> {
        let targets = &set
            .targets("targets")
            .ok_or("no trusted targets")?
            .signed
            .targets;
        let from = current_slot(self.root()).map_err(s)?;
        let installed = stage::bundles_of(&slot_path(self.root(), &from)).map_err(s)?;
        let state = self.state.read().map_err(s)?;
        let identity = self.identity().map(|i| {
            format!(
                "{}/{}",
                i.identity.site.as_str(),
                i.identity.box_name.as_str()
            )
        });
        let offers = offers(targets, &installed, &state, identity.as_deref());
        if offers.is_empty() {
            // Nothing offered: downloads kept for a resume are no longer wanted.
            self.clear_downloads()
                .map_err(|e| format!("downloads: {e}"))?;
            let have: Vec<String> = installed
                .iter()
                .map(|(id, m)| format!("{id} {}", m.bundle.version))
                .collect();
            return Ok(Installed {
                outcome: Outcome::UpToDate,
                reason: format!("up to date ({})", have.join(", ")),
            });
        }
        let mut last = None;
        for (name, custom) in offers {
            let r = self
                .install(updater, set, &name, &custom, now)
                .map_err(|e| CheckError {
                    attempt: Some(Attempt {
                        bundle: custom.bundle.clone(),
                        version: custom.version,
                        from_version: installed.get(&custom.bundle).map(|m| m.bundle.version),
                    }),
                    ..e
                })?;
            let stop = r.outcome != Outcome::Installed;
            last = Some(r);
            if stop {
                break;
            }
        }
        last.ok_or_else(|| "nothing to do".into())
    }

    /// The signed target `tf` verified in `downloads/<sha256>` (fetched unless already there,
    /// resumed from a `.part` an earlier check left), read-only.
    fn download(&self, updater: &Updater<Source>, tf: &TargetFile) -> Result<PathBuf, CheckError> {
        let sha = sha256_of(tf).ok_or_else(|| refused(format!("{}: no sha256 listed", tf.name)))?;
        let dest = self.config.state_dir.join("downloads").join(&sha);
        if !Updater::<Source>::cached_target(tf, &dest) {
            let deadline = std::time::Duration::from_secs(self.config.limits.check_deadline_secs);
            let started = self.check_started.lock().ok().and_then(|s| *s);
            if started.is_some_and(|t| t.elapsed() >= deadline) {
                return Err(CheckError::new(
                    Failure::Download,
                    format!(
                        "{}: the check's deadline ({} s) has passed; what was downloaded is kept \
                         and the next check resumes",
                        tf.name,
                        deadline.as_secs()
                    ),
                ));
            }
            updater
                .download_target(tf, &dest)
                .map_err(|e| CheckError::tuf(&e, format!("target refused: {e}")))?;
        }
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o444)).map_err(s)?;
        Ok(dest)
    }

    fn install(
        &self,
        updater: &Updater<Source>,
        set: &mut TrustedSet,
        name: &str,
        custom: &TargetCustom,
        now: OffsetDateTime,
    ) -> Result<Installed, CheckError> {
        let listed = updater
            .find_target(set, name)
            .map_err(|e| CheckError::tuf(&e, format!("{name}: {e}")))?
            .ok_or_else(|| refused(format!("{name}: not a signed target")))?;
        if listed.length > valise_bundle::MAX_MANIFEST_BYTES {
            return Err(refused(format!(
                "{name}: {} bytes, too long for a bundle.toml",
                listed.length
            )));
        }
        let mpath = self.download(updater, &listed)?;
        let mbytes = fs::read(&mpath).map_err(s)?;
        let text =
            String::from_utf8(mbytes.clone()).map_err(|_| refused(format!("{name}: not UTF-8")))?;
        let manifest = Manifest::parse(&text).map_err(|e| refused(format!("{name}: {e}")))?;
        if manifest.bundle.id != custom.bundle
            || manifest.bundle.version != custom.version
            || manifest.bundle.engines != custom.engines
        {
            return Err(refused(format!(
                "{name}: bundle.toml says {} {} for {:?}, its target says {} {} for {:?}",
                manifest.bundle.id,
                manifest.bundle.version,
                manifest.bundle.engines,
                custom.bundle,
                custom.version,
                custom.engines
            )));
        }
        let from = current_slot(self.root()).map_err(s)?;
        let from_path = slot_path(self.root(), &from);
        let have = files_by_sha(&from_path).map_err(s)?;
        let mut files = BTreeMap::new();
        let mut fetched = 0usize;
        for f in manifest.all_files() {
            let tname = manifest.file_target(&f.path);
            let ttf = updater
                .find_target(set, &tname)
                .map_err(|e| CheckError::tuf(&e, format!("{tname}: {e}")))?
                .ok_or_else(|| {
                    refused(format!(
                        "{tname}: listed in bundle.toml, not a signed target"
                    ))
                })?;
            if ttf.length != f.size || sha256_of(&ttf).as_deref() != Some(f.sha256.as_str()) {
                return Err(refused(format!(
                    "{tname}: bundle.toml and the signed target disagree on length or sha256"
                )));
            }
            let local = match have.get(&f.sha256) {
                Some(p) => p.clone(),
                None => {
                    let p = self.download(updater, &ttf)?;
                    fetched += 1;
                    if fetched == 1 {
                        killpoint!("download.mid_bundle");
                    }
                    p
                }
            };
            files.insert(f.path.clone(), local);
        }
        let id = manifest.bundle.id.clone();
        let version = manifest.bundle.version;
        let mut slot = format!("{}-{id}-{version}", slot_stamp(now));
        if slot_path(self.root(), &slot).exists() {
            slot.push_str("-b");
        }
        stage::stage(&StageInput {
            root: self.root(),
            from: &from_path,
            manifest: &manifest,
            manifest_bytes: &mbytes,
            files: &files,
            name: &slot,
        })
        .map_err(|e| format!("staging {slot}: {e}"))?;
        self.journal
            .write(&Phase::Switching {
                bundle: id,
                version,
                from,
                to: slot.clone(),
            })
            .map_err(s)?;
        killpoint!("switch.after_journal");
        switch::switch_to(self.root(), &slot, true).map_err(s)?;
        killpoint!("switch.after_rename");
        let r = self.finish_forward().map_err(s)?;
        // The bundle's downloads are in the slot now (hard links) or refused; drop them.
        for p in files.values().chain([&mpath]) {
            if p.starts_with(self.config.state_dir.join("downloads")) {
                let _ = fs::remove_file(p);
            }
        }
        Ok(r)
    }

    /// The version of `bundle` in slot `slot`, if it holds that bundle.
    fn version_in(&self, slot: &str, bundle: &str) -> Option<u64> {
        stage::bundles_of(&slot_path(self.root(), slot))
            .ok()?
            .get(bundle)
            .map(|m| m.bundle.version)
    }

    /// After the switch: restart, acceptance, then commit or roll back.
    fn finish_forward(&self) -> io::Result<Installed> {
        let Phase::Switching {
            bundle,
            version,
            from,
            to,
        } = self.journal.read()?
        else {
            return Err(io::Error::other("finish_forward outside Switching"));
        };
        if current_slot(self.root())? != to {
            switch::switch_to(self.root(), &to, true)?;
        }
        let to_path = slot_path(self.root(), &to);
        let bdir = stage::bundle_dir(&to_path, &bundle);
        let text = fs::read_to_string(bdir.join(valise_bundle::MANIFEST))?;
        let manifest = Manifest::parse(&text).map_err(io::Error::other)?;
        let verdict = self
            .engines
            .restart(&manifest.bundle.engines)
            .map_err(|e| format!("engines did not come up: {e}"))
            .and_then(|()| {
                killpoint!("restart.after_request");
                killpoint!("acceptance.before");
                self.engines
                    .accept(&manifest, &bdir)
                    .map_err(|e| format!("acceptance: {e}"))
            });
        match verdict {
            Ok(()) => {
                let at = OffsetDateTime::now_utc().unix_timestamp();
                let from_version = self.version_in(&from, &bundle);
                self.state.update(|st| {
                    st.record(Entry {
                        at,
                        bundle: bundle.clone(),
                        version,
                        from_version,
                        slot: to.clone(),
                        outcome: Outcome::Installed,
                        reason: "acceptance passed".into(),
                    })
                })?;
                killpoint!("commit.after_history");
                killpoint!("commit.before_journal_idle");
                self.journal.write(&Phase::Idle)?;
                let removed = crate::prune::prune(self.root(), self.config.keep_slots, &[&from])?;
                if !removed.is_empty() {
                    tracing::info!(?removed, "pruned slots");
                }
                Ok(Installed {
                    outcome: Outcome::Installed,
                    reason: format!("installed {bundle} {version} in {to}"),
                })
            }
            Err(reason) => {
                self.journal.write(&Phase::RollingBack {
                    bundle,
                    version,
                    from,
                    to,
                    reason,
                })?;
                killpoint!("rollback.after_journal");
                self.finish_rollback()
            }
        }
    }

    /// Back to `from`: switch, restart, record, `Idle`, remove the refused slot.
    fn finish_rollback(&self) -> io::Result<Installed> {
        let Phase::RollingBack {
            bundle,
            version,
            from,
            to,
            reason,
        } = self.journal.read()?
        else {
            return Err(io::Error::other("finish_rollback outside RollingBack"));
        };
        if current_slot(self.root())? != from {
            switch::switch_to(self.root(), &from, false)?;
        }
        killpoint!("rollback.after_rename");
        let engines = stage::bundles_of(&slot_path(self.root(), &to))
            .ok()
            .and_then(|b| b.get(&bundle).map(|m| m.bundle.engines.clone()))
            .unwrap_or_else(|| {
                vec![
                    valise_bundle::Engine::Transcribe,
                    valise_bundle::Engine::Translate,
                ]
            });
        let mut why = reason.clone();
        if let Err(e) = self.engines.restart(&engines) {
            why.push_str(&format!(
                "; after the rollback the engines did not come up: {e}"
            ));
        }
        killpoint!("rollback.after_restart");
        let at = OffsetDateTime::now_utc().unix_timestamp();
        let from_version = self.version_in(&from, &bundle);
        self.state.update(|st| {
            st.record(Entry {
                at,
                bundle: bundle.clone(),
                version,
                from_version,
                slot: to.clone(),
                outcome: Outcome::RolledBack,
                reason: why.clone(),
            })
        })?;
        self.journal.write(&Phase::Idle)?;
        let refused = slot_path(self.root(), &to);
        let _ = fs::remove_file(refused.join(stage::COMPLETE));
        let _ = fs::remove_dir_all(&refused);
        Ok(Installed {
            outcome: Outcome::RolledBack,
            reason: format!("{bundle} {version} rolled back: {why}"),
        })
    }

    /// At start-up (and before a check if the journal is not `Idle`): finish what a power
    /// cut interrupted. Never needs a person.
    pub fn recover(&self) -> io::Result<()> {
        let n = stage::remove_tmp_slots(self.root())?;
        if n > 0 {
            tracing::info!(n, "removed unfinished slots");
        }
        let _ = fs::remove_file(self.root().join("current.new"));
        match self.journal.read()? {
            Phase::Idle => Ok(()),
            Phase::Switching { to, .. } => {
                if !slot_path(self.root(), &to).join(stage::COMPLETE).exists() {
                    // Cannot happen (the journal is written after `.complete`); go back to
                    // where `current` is.
                    return self.journal.write(&Phase::Idle);
                }
                tracing::warn!(slot = %to, "finishing an interrupted switch");
                self.finish_forward().map(|_| ())
            }
            Phase::RollingBack { .. } => {
                tracing::warn!("finishing an interrupted rollback");
                self.finish_rollback().map(|_| ())
            }
        }
    }

    /// Removes every file in `downloads/` (verified files and `.part`s of earlier checks).
    fn clear_downloads(&self) -> io::Result<()> {
        let dir = self.config.state_dir.join("downloads");
        for e in fs::read_dir(&dir)? {
            fs::remove_file(e?.path())?;
        }
        Ok(())
    }

    /// The reference time against the floor, for `status`.
    pub fn clock_state(&self, now: OffsetDateTime) -> Option<ClockState> {
        self.floor.reference_time(now).ok().map(|(_, c)| c)
    }

    pub fn read_state(&self) -> io::Result<State> {
        self.state.read()
    }
}

/// The target's sha256 (the content address of its download), when listed and well formed.
fn sha256_of(t: &TargetFile) -> Option<String> {
    t.hashes
        .0
        .iter()
        .find(|(a, h)| a == "sha256" && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, h)| h.to_ascii_lowercase())
}

/// `yyyymmddThhmmssZ`.
fn slot_stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Files of a slot by sha256 (manifest models and bundle files), to link instead of fetch.
fn files_by_sha(slot: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    if let Ok(c) = valise_models::Catalog::load(&slot.join("manifest.toml")) {
        for m in &c.models {
            for f in &m.files {
                out.insert(f.sha256.clone(), slot.join(&f.path));
            }
        }
    }
    for (id, b) in stage::bundles_of(slot)? {
        for f in &b.files {
            out.insert(f.sha256.clone(), stage::bundle_dir(slot, &id).join(&f.path));
        }
    }
    Ok(out)
}

/// The manifest targets offered to this box: per bundle id the highest version whose wave
/// includes `identity`, above the installed one, not refused before.
pub fn offers(
    targets: &BTreeMap<String, valise_tuf::schema::TargetFile>,
    installed: &BTreeMap<String, Manifest>,
    state: &State,
    identity: Option<&str>,
) -> Vec<(String, TargetCustom)> {
    let mut best: BTreeMap<String, (String, TargetCustom)> = BTreeMap::new();
    for (name, tf) in targets {
        let Some((id, version)) = valise_bundle::parse_manifest_target(name) else {
            continue;
        };
        let Some(custom) = tf.custom.as_ref().and_then(TargetCustom::from_custom) else {
            continue;
        };
        if custom.bundle != id || custom.version != version {
            continue;
        }
        let offered = match identity {
            Some(i) => custom.wave.includes(i, &id, version),
            None => custom.wave.percent >= 100,
        };
        let have = installed.get(&id).map_or(0, |m| m.bundle.version);
        if !offered || version <= have || state.is_refused(&id, version) {
            continue;
        }
        if best.get(&id).is_none_or(|(_, c)| c.version < version) {
            best.insert(id, (name.clone(), custom));
        }
    }
    best.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(e: FetchError) -> Failure {
        classify(&UpdateError::Fetch(e))
    }

    fn tuf(e: valise_tuf::Error) -> Failure {
        classify(&UpdateError::Tuf(e))
    }

    #[test]
    fn refusals_are_classified_by_what_refused_them() {
        let name = || "timestamp.json".to_owned();
        // The source: unreachable, missing files, too slow, a read error.
        assert_eq!(fetch(FetchError::NotFound(name())), Failure::Download);
        assert_eq!(
            fetch(FetchError::TooSlow {
                name: name(),
                why: "idle".into()
            }),
            Failure::Download
        );
        assert_eq!(
            fetch(FetchError::Io {
                name: name(),
                source: io::Error::other("connection refused")
            }),
            Failure::Download
        );
        assert_eq!(
            fetch(FetchError::Refused {
                name: name(),
                why: "symlink".into()
            }),
            Failure::Download
        );
        // More bytes than signed: a length that did not verify.
        assert_eq!(
            fetch(FetchError::TooLarge {
                name: name(),
                limit: 4
            }),
            Failure::Verification
        );
        assert_eq!(
            tuf(valise_tuf::Error::Expired {
                role: "timestamp".into(),
                expires: "2020-01-01T00:00:00Z".into(),
                reference: "2021-01-01T00:00:00Z".into()
            }),
            Failure::ExpiredMetadata
        );
        for e in [
            valise_tuf::Error::Threshold {
                role: "targets".into(),
                valid: 0,
                threshold: 1,
            },
            valise_tuf::Error::BadVersion {
                role: "timestamp".into(),
                got: 1,
                why: "rollback".into(),
            },
            valise_tuf::Error::Hash {
                role: "pten/model.onnx".into(),
                why: "sha256 mismatch".into(),
            },
            valise_tuf::Error::Length {
                role: "pten/model.onnx".into(),
                got: 1,
                listed: 2,
            },
            valise_tuf::Error::Format("not JSON".into()),
        ] {
            assert_eq!(tuf(e), Failure::Verification);
        }
        assert_eq!(
            classify(&UpdateError::Io(io::Error::other("disk full"))),
            Failure::Install
        );
        assert_eq!(classify(&UpdateError::NoTrustedRoot), Failure::Install);
    }

    #[test]
    fn local_errors_default_to_install_and_keep_their_reason() {
        let e: CheckError = "no trusted targets".into();
        assert_eq!(e, CheckError::new(Failure::Install, "no trusted targets"));
        let e: CheckError = format!("staging {}: {}", "s", "no space").into();
        assert_eq!(
            (e.failure, e.reason.as_str()),
            (Failure::Install, "staging s: no space")
        );
        assert_eq!(e.attempt, None);
        let e = CheckError::tuf(
            &UpdateError::Fetch(FetchError::NotFound("x".into())),
            "metadata refused: x: not found",
        );
        assert_eq!(
            (e.failure, e.reason.as_str()),
            (Failure::Download, "metadata refused: x: not found")
        );
    }
}
