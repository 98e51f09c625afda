//! The client workflow over a [`Fetch`] (HTTPS with mutual TLS or a USB copy).
//!
//! [`Updater::refresh`], spec 1.0.x §5.3–5.6 for the top-level roles: the
//! trusted root from the [`MetadataStore`], the root chain `N+1.root.json` up to
//! [`MAX_ROOT_ROTATIONS`] steps, then timestamp, snapshot (`N.snapshot.json` with consistent
//! snapshots) and targets. Each verified file is written to the store as it was fetched;
//! nothing is written for a step that fails. Local timestamp/snapshot/targets are loaded
//! first (python-tuf's `Updater._load_*`, read, not copied) so rollback checks compare
//! against them, and a local snapshot or targets that is still the version listed is used
//! without fetching.
//!
//! [`Updater::find_target`], spec 5.6.7: the lazy delegation search, one role fetched
//! only when the search reaches it. [`Updater::download_target`] and
//! [`Updater::cached_target`], spec 5.7: see [`crate::download`].
//!
//! valise-update's check: `refresh_with_floor` (reference time from the [`TimeFloor`]),
//! `find_target` for each target it wants, `cached_target` on the local copy, else
//! `download_target` (resumes an interrupted `.part`).

use std::io;
use std::path::Path;

use time::OffsetDateTime;

use crate::error::Error;
use crate::fetch::{Fetch, FetchError};
use crate::limits::{
    MAX_DELEGATIONS, MAX_ROOT_ROTATIONS, MAX_ROOT_SIZE, MAX_SNAPSHOT_SIZE, MAX_TARGETS_SIZE,
    MAX_TIMESTAMP_SIZE,
};
use crate::names;
use crate::schema::{Hashes, MetaFile};
use crate::store::MetadataStore;
use crate::time::TimeFloor;
use crate::trusted::{TimestampUpdate, TrustedSet};

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The store holds no trusted root (the box was not initialised).
    #[error("no trusted root in the metadata store")]
    NoTrustedRoot,
    /// Metadata refused by a rule of the spec.
    #[error(transparent)]
    Tuf(#[from] Error),
    /// A file could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The store or the time floor could not be read or written.
    #[error("local state: {0}")]
    Io(#[from] io::Error),
}

/// The refresher of one box: a source and the box's metadata store.
#[derive(Debug)]
pub struct Updater<F> {
    fetch: F,
    store: MetadataStore,
    max_root_rotations: u64,
    max_delegations: u64,
}

/// A target found by [`Updater::find_target`]: what the trusted targets role that lists it
/// says about it, and where to fetch it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// The target path as listed (`models/fr-en/model.bin`); not a safe file name as such
    /// (see [`names::target_file`]).
    pub name: String,
    /// Length in bytes: a download stops after it.
    pub length: u64,
    /// Hashes as listed, in the repository's order.
    pub hashes: Hashes,
    /// The listing's `custom` object (`Value::Null` when absent).
    pub custom: serde_json::Value,
    /// The URL path relative to the targets base, each segment percent-encoded:
    /// `dir/<first hash>.<basename>` with consistent snapshots (spec 5.7.3), else the path.
    pub url_path: String,
}

fn same_keys(a: &crate::schema::Root, b: &crate::schema::Root, role: &str) -> bool {
    match (a.roles.get(role), b.roles.get(role)) {
        (Some(x), Some(y)) => {
            let mut kx = x.keyids.clone();
            let mut ky = y.keyids.clone();
            kx.sort();
            ky.sort();
            kx == ky && kx.iter().all(|id| a.keys.get(id) == b.keys.get(id))
        }
        _ => false,
    }
}

impl<F: Fetch> Updater<F> {
    /// An updater reading from `fetch` and keeping trusted metadata in `store`.
    pub fn new(fetch: F, store: MetadataStore) -> Self {
        Updater {
            fetch,
            store,
            max_root_rotations: MAX_ROOT_ROTATIONS,
            max_delegations: MAX_DELEGATIONS,
        }
    }

    /// Caps the number of targets roles visited in one target search (spec 5.6.7).
    pub fn with_max_delegations(mut self, n: u64) -> Self {
        self.max_delegations = n;
        self
    }

    /// Caps the number of root versions walked in one refresh.
    pub fn with_max_root_rotations(mut self, n: u64) -> Self {
        self.max_root_rotations = n;
        self
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetch
    }

    /// The store.
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// A refresh at the reference time of `floor` for this `clock` reading; only when it
    /// succeeds is the floor raised, to that reference time capped by what the trusted
    /// timestamp shows of real time ([`TimeFloor::justified`]).
    pub fn refresh_with_floor(
        &self,
        floor: &TimeFloor,
        clock: OffsetDateTime,
    ) -> Result<TrustedSet, UpdateError> {
        let (reference, _) = floor.reference_time(clock)?;
        let set = self.refresh(reference)?;
        let ts = set
            .timestamp()
            .ok_or_else(|| Error::Workflow("no trusted timestamp".into()))?;
        floor.raise_after_refresh(reference, ts.common())?;
        Ok(set)
    }

    /// Spec 5.3–5.6 for the top-level roles at `reference_time`.
    pub fn refresh(&self, reference_time: OffsetDateTime) -> Result<TrustedSet, UpdateError> {
        let root = self.store.read("root")?.ok_or(UpdateError::NoTrustedRoot)?;
        let mut set = TrustedSet::new(&root, reference_time)?;
        self.load_root_chain(&mut set)?;
        self.load_timestamp(&mut set)?;
        self.load_snapshot(&mut set)?;
        self.load_targets(&mut set)?;
        Ok(set)
    }

    /// Spec 5.3: `N+1.root.json` until there is none; each step stored; 5.3.11.
    fn load_root_chain(&self, set: &mut TrustedSet) -> Result<(), UpdateError> {
        let first = set.root().signed.clone();
        let start = set.root().common().version;
        for _ in 0..self.max_root_rotations {
            let next = set.root().common().version.saturating_add(1);
            let name = names::metadata_url_path("root", Some(next))?;
            let bytes = match self.fetch.metadata(&name, MAX_ROOT_SIZE) {
                Ok(b) => b,
                Err(FetchError::NotFound(_)) => break,
                Err(e) => return Err(e.into()),
            };
            set.update_root(&bytes)?;
            self.store.write("root", &bytes)?;
        }
        if set.root().common().version != start {
            let new = &set.root().signed;
            // Spec 5.3.11: timestamp or snapshot keys rotated → delete both trusted files, so
            // a rotation can recover from a fast-forward attack.
            if !same_keys(&first, new, "timestamp") || !same_keys(&first, new, "snapshot") {
                self.store.remove("timestamp")?;
                self.store.remove("snapshot")?;
            }
        }
        Ok(())
    }

    /// Spec 5.4: local timestamp first (errors ignored: it only sets the rollback floor),
    /// then the repository's.
    fn load_timestamp(&self, set: &mut TrustedSet) -> Result<(), UpdateError> {
        if let Some(local) = self.store.read("timestamp")? {
            let _ = set.update_timestamp(&local);
        }
        let bytes = self.fetch.metadata("timestamp.json", MAX_TIMESTAMP_SIZE)?;
        if set.update_timestamp(&bytes)? == TimestampUpdate::Updated {
            self.store.write("timestamp", &bytes)?;
        }
        Ok(())
    }

    /// Spec 5.5: the local snapshot if it is still the listed version, else the repository's.
    fn load_snapshot(&self, set: &mut TrustedSet) -> Result<(), UpdateError> {
        if let Some(local) = self.store.read("snapshot")?
            && set.update_snapshot(&local, true).is_ok()
        {
            return Ok(());
        }
        let meta = set
            .timestamp()
            .ok_or_else(|| Error::Workflow("no trusted timestamp".into()))?
            .signed
            .snapshot_meta()
            .clone();
        let bytes = self.fetch_listed(set, "snapshot", &meta, MAX_SNAPSHOT_SIZE)?;
        set.update_snapshot(&bytes, false)?;
        self.store.write("snapshot", &bytes)?;
        Ok(())
    }

    /// Fetches `role`'s metadata as `meta` lists it: by version when the root asks for
    /// consistent snapshots, at most the listed length (or `max` when none is listed).
    fn fetch_listed(
        &self,
        set: &TrustedSet,
        role: &str,
        meta: &MetaFile,
        max: u64,
    ) -> Result<Vec<u8>, UpdateError> {
        let version = set
            .root()
            .signed
            .consistent_snapshot
            .then_some(meta.version);
        let name = names::metadata_url_path(role, version)?;
        Ok(self.fetch.metadata(&name, meta.length.unwrap_or(max))?)
    }

    /// Spec 5.6: top-level targets, local if still the listed version.
    fn load_targets(&self, set: &mut TrustedSet) -> Result<(), UpdateError> {
        if let Some(local) = self.store.read("targets")?
            && set.update_targets(&local).is_ok()
        {
            return Ok(());
        }
        let meta = set
            .snapshot()
            .ok_or_else(|| Error::Workflow("no trusted snapshot".into()))?
            .signed
            .meta
            .get("targets.json")
            .ok_or_else(|| Error::Workflow("snapshot does not list targets.json".into()))?
            .clone();
        let bytes = self.fetch_listed(set, "targets", &meta, MAX_TARGETS_SIZE)?;
        set.update_targets(&bytes)?;
        self.store.write("targets", &bytes)?;
        Ok(())
    }

    /// Spec 5.6.7: the target `name`, searched in pre-order depth-first from the top-level
    /// targets role (python-tuf's `_preorder_depth_first_walk`, read, not copied). A role is
    /// loaded only when the search reaches it: from `trusted` if already there, else from
    /// the store if it still verifies, else fetched (`N.<role>.json` with consistent
    /// snapshots), verified against its delegator's keys and the snapshot, and stored under
    /// its non-versioned name. Each (role, delegator) pair is visited once, at most
    /// `max_delegations` roles are visited (the top-level one included), and a terminating
    /// delegation that matches drops every role still waiting. `Ok(None)`: not found. A role
    /// on the way that cannot be fetched or verified ends the search with its error.
    pub fn find_target(
        &self,
        trusted: &mut TrustedSet,
        name: &str,
    ) -> Result<Option<TargetFile>, UpdateError> {
        let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited = std::collections::HashSet::new();
        let mut budget = self.max_delegations;
        while budget > 0 {
            let Some((role, delegator)) = to_visit.pop() else {
                break;
            };
            if visited.contains(&(role.clone(), delegator.clone())) {
                continue;
            }
            self.load_targets_role(trusted, &role, &delegator)?;
            let md = trusted
                .targets(&role)
                .ok_or_else(|| Error::Workflow(format!("{role} not trusted after loading")))?;
            if let Some(t) = md.signed.targets.get(name) {
                let consistent = trusted.root().signed.consistent_snapshot;
                return Ok(Some(TargetFile {
                    name: name.to_owned(),
                    length: t.length,
                    hashes: t.hashes.clone(),
                    custom: t.custom.clone().unwrap_or(serde_json::Value::Null),
                    url_path: names::target_url_path(name, t, consistent)?,
                }));
            }
            budget -= 1;
            let mut children = Vec::new();
            if let Some(d) = &md.signed.delegations {
                for (child, terminating) in d.roles_for_target(name) {
                    children.push((child, role.clone()));
                    if terminating {
                        to_visit.clear();
                        break;
                    }
                }
            }
            visited.insert((role, delegator));
            to_visit.extend(children.into_iter().rev());
        }
        Ok(None)
    }

    /// Spec 5.6 / 5.6.7.2: makes `role` (delegated by `delegator`) trusted. A role already
    /// trusted through another delegator is checked against this one's keys as well.
    fn load_targets_role(
        &self,
        set: &mut TrustedSet,
        role: &str,
        delegator: &str,
    ) -> Result<(), UpdateError> {
        // Already trusted: through this delegator too, or the search ends with the error.
        if set.trust_through(role, delegator)? {
            return Ok(());
        }
        if role == "targets" {
            return self.load_targets(set);
        }
        if let Some(local) = self.store.read(role)?
            && set
                .update_delegated_targets(&local, role, delegator)
                .is_ok()
        {
            return Ok(());
        }
        let file = format!("{role}.json");
        let meta = set
            .snapshot()
            .ok_or_else(|| Error::Workflow("no trusted snapshot".into()))?
            .signed
            .meta
            .get(&file)
            .ok_or_else(|| Error::Workflow(format!("{role} is delegated but not in snapshot")))?
            .clone();
        let bytes = self.fetch_listed(set, role, &meta, MAX_TARGETS_SIZE)?;
        set.update_delegated_targets(&bytes, role, delegator)?;
        self.store.write(role, &bytes)?;
        Ok(())
    }

    /// Spec 5.7: downloads `target` (found by [`Updater::find_target`]) to `dest`: at most
    /// its length, every known hash checked while it streams, written to `<dest>.part`, then
    /// synced and renamed onto `dest`; an interrupted `.part` is resumed (HTTP `Range` with
    /// [`crate::fetch::http::HttpFetch`]). See [`crate::download`].
    pub fn download_target(&self, target: &TargetFile, dest: &Path) -> Result<(), UpdateError> {
        crate::download::download(&self.fetch, target, dest)
    }

    /// True when `path` already holds `target` (length and every known hash match): no
    /// download needed. Also [`crate::download::cached`].
    pub fn cached_target(target: &TargetFile, path: &Path) -> bool {
        crate::download::cached(target, path)
    }
}
