//! The trusted metadata set: spec 1.0.x §5.2–5.6 as a state machine over bytes the caller
//! fetched (from the network, a USB copy or the local store). Order enforced: root chain,
//! then timestamp, then snapshot, then targets (top-level, then delegated roles). The
//! reference time is fixed when the set is made (spec 5.1): no clock is read here.
//!
//! Behaviour the spec leaves open follows python-tuf's `TrustedMetadataSet` (read, not
//! copied): an expired or version-mismatched timestamp/snapshot is still kept after the
//! error, for the rollback checks of a later step (local metadata loaded first, then newer
//! remote ones); an equal-version timestamp is not an error: the trusted one is kept and the
//! caller goes on to snapshot (spec 5.4.3.1, "MUST NOT update").
//!
//! Spec 5.3.11 (timestamp/snapshot keys rotated → delete the trusted ones) needs no code
//! here: a set lives for one refresh, root updates are refused once a timestamp is loaded,
//! and local timestamp/snapshot files signed by rotated-out keys fail verification against
//! the new root when the updater loads them (it then deletes them from the store).

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::error::Error;
use crate::hashes::verify_length_and_hashes;
use crate::limits::{MAX_ROOT_SIZE, MAX_SNAPSHOT_SIZE, MAX_TARGETS_SIZE, MAX_TIMESTAMP_SIZE};
use crate::schema::{Common, Metadata, Root, Signed, Snapshot, Targets, Timestamp};
use crate::verify::verify_threshold;

/// What `update_timestamp` did with a valid timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is now trusted.
    Updated,
    /// Same version as the trusted one: the trusted one is kept (spec 5.4.3.1).
    Unchanged,
}

/// Trusted metadata of one refresh.
#[derive(Debug)]
pub struct TrustedSet {
    reference_time: OffsetDateTime,
    root: Metadata<Root>,
    timestamp: Option<Metadata<Timestamp>>,
    snapshot: Option<Metadata<Snapshot>>,
    targets: BTreeMap<String, Metadata<Targets>>,
    /// For each trusted targets role, the delegators whose keys and threshold its
    /// signatures were checked against ("root" for "targets").
    verified_by: BTreeMap<String, BTreeSet<String>>,
}

fn check_size(role: &str, data: &[u8], limit: u64) -> Result<(), Error> {
    let got = data.len() as u64;
    if got > limit {
        return Err(Error::TooLarge {
            role: role.to_owned(),
            got,
            limit,
        });
    }
    Ok(())
}

fn expired(role: &str, common: &Common, reference: OffsetDateTime) -> Error {
    Error::Expired {
        role: role.to_owned(),
        expires: common.expires.to_string(),
        reference: reference.to_string(),
    }
}

impl TrustedSet {
    /// Spec 5.2: loads the trusted root (shipped with the box or stored by the last
    /// refresh). It must be signed by a threshold of its own root keys; its expiry does not
    /// matter yet (checked on the final root, 5.3.10).
    pub fn new(root_bytes: &[u8], reference_time: OffsetDateTime) -> Result<Self, Error> {
        check_size("root", root_bytes, MAX_ROOT_SIZE)?;
        let root = Metadata::<Root>::from_bytes(root_bytes)?;
        Self::verify_with_root(&root, &root.signed, "root")?;
        Ok(TrustedSet {
            reference_time,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            verified_by: BTreeMap::new(),
        })
    }

    /// The reference time this set checks expiry against.
    pub fn reference_time(&self) -> OffsetDateTime {
        self.reference_time
    }

    /// The trusted root.
    pub fn root(&self) -> &Metadata<Root> {
        &self.root
    }

    /// The trusted timestamp, if loaded.
    pub fn timestamp(&self) -> Option<&Metadata<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded.
    pub fn snapshot(&self) -> Option<&Metadata<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// Trusted targets metadata of `role` ("targets" or a delegated role), if loaded.
    pub fn targets(&self, role: &str) -> Option<&Metadata<Targets>> {
        self.targets.get(role)
    }

    fn verify_with_root<T: Signed>(md: &Metadata<T>, root: &Root, role: &str) -> Result<(), Error> {
        verify_threshold(
            role,
            root.role(role)?,
            &root.keys,
            &md.canonical_signed,
            &md.signatures,
        )
    }

    /// Spec 5.3.4–5.3.8: one step of the root chain, `N.root.json` with N = trusted + 1.
    /// The new root must be signed by a threshold of the trusted root's root keys **and** a
    /// threshold of its own, and carry exactly version trusted + 1. Its expiry is not
    /// checked here (an intermediate root may be expired; the final one is checked before
    /// the timestamp step). Refused once a timestamp is loaded.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.timestamp.is_some() {
            return Err(Error::Workflow(
                "root cannot be updated after the timestamp".into(),
            ));
        }
        check_size("root", bytes, MAX_ROOT_SIZE)?;
        let new = Metadata::<Root>::from_bytes(bytes)?;
        Self::verify_with_root(&new, &self.root.signed, "root")?;
        let trusted = self.root.common().version;
        let got = new.common().version;
        if Some(got) != trusted.checked_add(1) {
            return Err(Error::BadVersion {
                role: "root".into(),
                got,
                why: format!("expected {} after trusted {trusted}", trusted + 1),
            });
        }
        Self::verify_with_root(&new, &new.signed, "root")?;
        self.root = new;
        Ok(())
    }

    /// Spec 5.3.10 + 5.4: the final root must not be expired; the timestamp is verified
    /// with the root's timestamp keys; its version and the snapshot version it lists never
    /// go below the trusted timestamp's; an equal version keeps the trusted one. An expired
    /// timestamp is kept as trusted (for later rollback checks) and refused.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate, Error> {
        if self.snapshot.is_some() {
            return Err(Error::Workflow(
                "timestamp cannot be updated after the snapshot".into(),
            ));
        }
        if self.root.common().is_expired(self.reference_time) {
            return Err(expired("root", self.root.common(), self.reference_time));
        }
        check_size("timestamp", bytes, MAX_TIMESTAMP_SIZE)?;
        let new = Metadata::<Timestamp>::from_bytes(bytes)?;
        Self::verify_with_root(&new, &self.root.signed, "timestamp")?;
        if let Some(old) = &self.timestamp {
            let (old_v, new_v) = (old.common().version, new.common().version);
            if new_v < old_v {
                return Err(Error::BadVersion {
                    role: "timestamp".into(),
                    got: new_v,
                    why: format!("rollback: trusted version is {old_v}"),
                });
            }
            if new_v == old_v {
                return Ok(TimestampUpdate::Unchanged);
            }
            let old_sv = old.signed.snapshot_meta().version;
            let new_sv = new.signed.snapshot_meta().version;
            if new_sv < old_sv {
                return Err(Error::BadVersion {
                    role: "snapshot".into(),
                    got: new_sv,
                    why: format!("rollback: trusted timestamp lists version {old_sv}"),
                });
            }
        }
        self.timestamp = Some(new);
        self.check_final_timestamp()?;
        Ok(TimestampUpdate::Updated)
    }

    fn check_final_timestamp(&self) -> Result<&Metadata<Timestamp>, Error> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or_else(|| Error::Workflow("no trusted timestamp".into()))?;
        if ts.common().is_expired(self.reference_time) {
            return Err(expired("timestamp", ts.common(), self.reference_time));
        }
        Ok(ts)
    }

    /// Spec 5.5: the snapshot's length and hashes as the timestamp lists them (skipped for
    /// `trusted_local`, bytes read back from the box's own store), the root's snapshot
    /// keys, no targets role listed by the trusted snapshot missing or at a lower version.
    /// Then kept as trusted, and refused if expired or if its version is not the one the
    /// timestamp lists.
    pub fn update_snapshot(&mut self, bytes: &[u8], trusted_local: bool) -> Result<(), Error> {
        if !self.targets.is_empty() {
            return Err(Error::Workflow(
                "snapshot cannot be updated after targets".into(),
            ));
        }
        let ts = self.check_final_timestamp()?;
        let meta = ts.signed.snapshot_meta();
        check_size("snapshot", bytes, meta.length.unwrap_or(MAX_SNAPSHOT_SIZE))?;
        if !trusted_local {
            verify_length_and_hashes("snapshot", bytes, meta.length, meta.hashes.as_ref())?;
        }
        let new = Metadata::<Snapshot>::from_bytes(bytes)?;
        Self::verify_with_root(&new, &self.root.signed, "snapshot")?;
        if let Some(old) = &self.snapshot {
            for (name, old_info) in &old.signed.meta {
                let Some(new_info) = new.signed.meta.get(name) else {
                    return Err(Error::BadVersion {
                        role: "snapshot".into(),
                        got: new.common().version,
                        why: format!("{name} is no longer listed"),
                    });
                };
                if new_info.version < old_info.version {
                    return Err(Error::BadVersion {
                        role: name.clone(),
                        got: new_info.version,
                        why: format!("rollback: trusted snapshot lists {}", old_info.version),
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot()?;
        Ok(())
    }

    fn check_final_snapshot(&self) -> Result<&Metadata<Snapshot>, Error> {
        let ts = self.check_final_timestamp()?;
        let sn = self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::Workflow("no trusted snapshot".into()))?;
        if sn.common().is_expired(self.reference_time) {
            return Err(expired("snapshot", sn.common(), self.reference_time));
        }
        let listed = ts.signed.snapshot_meta().version;
        if sn.common().version != listed {
            return Err(Error::BadVersion {
                role: "snapshot".into(),
                got: sn.common().version,
                why: format!("timestamp lists version {listed}"),
            });
        }
        Ok(sn)
    }

    /// Spec 5.6: top-level targets, delegated by root.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Spec 5.6 (and 5.6.7.2 for delegated roles): `role`'s metadata, delegated by
    /// `delegator` ("root" for "targets", else a trusted targets role). Length and hashes as
    /// the snapshot lists them, the delegator's keys and threshold for `role`, version equal
    /// to the snapshot's, not expired. Kept only when all checks pass.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<(), Error> {
        let sn = self.check_final_snapshot()?;
        let file = format!("{role}.json");
        let meta = sn
            .signed
            .meta
            .get(&file)
            .ok_or_else(|| Error::Workflow(format!("snapshot does not list {file}")))?;
        check_size(role, bytes, meta.length.unwrap_or(MAX_TARGETS_SIZE))?;
        verify_length_and_hashes(role, bytes, meta.length, meta.hashes.as_ref())?;
        let new = Metadata::<Targets>::from_bytes(bytes)?;
        self.verify_delegated(&new, role, delegator)?;
        let got = new.common().version;
        if got != meta.version {
            return Err(Error::BadVersion {
                role: role.to_owned(),
                got,
                why: format!("snapshot lists version {}", meta.version),
            });
        }
        if new.common().is_expired(self.reference_time) {
            return Err(expired(role, new.common(), self.reference_time));
        }
        self.targets.insert(role.to_owned(), new);
        self.verified_by
            .insert(role.to_owned(), BTreeSet::from([delegator.to_owned()]));
        Ok(())
    }

    /// Spec 5.6.7.2 for a role already trusted: `Ok(true)` when `role`'s trusted metadata
    /// also meet `delegator`'s keys and threshold for it (checked once per delegator, on the
    /// trusted copy: nothing is fetched), `Ok(false)` when `role` is not trusted yet. One
    /// role name can be delegated by several roles, each with its own keys: metadata
    /// trusted through one delegator carry no authority through another whose keys did not
    /// sign them (the suite's test_cached_role_is_verified_against_current_delegator).
    pub fn trust_through(&mut self, role: &str, delegator: &str) -> Result<bool, Error> {
        let Some(md) = self.targets.get(role) else {
            return Ok(false);
        };
        if self
            .verified_by
            .get(role)
            .is_some_and(|d| d.contains(delegator))
        {
            return Ok(true);
        }
        self.verify_delegated(md, role, delegator)?;
        self.verified_by
            .entry(role.to_owned())
            .or_default()
            .insert(delegator.to_owned());
        Ok(true)
    }

    /// `md` (of `role`) signed by a threshold of the keys `delegator` lists for `role`:
    /// root's for "targets", else the trusted delegator's delegations.
    fn verify_delegated(
        &self,
        md: &Metadata<Targets>,
        role: &str,
        delegator: &str,
    ) -> Result<(), Error> {
        match (role, delegator) {
            ("targets", "root") => Self::verify_with_root(md, &self.root.signed, "targets"),
            ("targets", _) | (_, "root") => Err(Error::Workflow(format!(
                "{role} cannot be delegated by {delegator}"
            ))),
            _ => {
                let parent = self.targets.get(delegator).ok_or_else(|| {
                    Error::Workflow(format!("delegator {delegator} is not trusted yet"))
                })?;
                let delegations = parent
                    .signed
                    .delegations
                    .as_ref()
                    .ok_or_else(|| Error::Workflow(format!("{delegator} delegates nothing")))?;
                let keys = delegations.role_keys(role).ok_or_else(|| {
                    Error::Workflow(format!("{delegator} does not delegate to {role}"))
                })?;
                verify_threshold(
                    role,
                    &keys,
                    &delegations.keys,
                    &md.canonical_signed,
                    &md.signatures,
                )
            }
        }
    }
}
