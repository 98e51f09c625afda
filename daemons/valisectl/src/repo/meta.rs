//! Reading the published metadata back, building and signing roles with tough's schema types
//! and `SignedRole`, and re-checking what was signed with valise-tuf (the box's verifier).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tough::editor::signed::SignedRole;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{
    Hashes, KeyHolder, Metafile, Role, RoleType, Root, Signed, Snapshot, Targets, Timestamp,
};

use sha2::{Digest, Sha256};

use super::files::{Expiries, Layout, next_version, write_atomic};
use super::keys::{LoadedKey, id_in};

/// The spec version written in every role.
pub const SPEC_VERSION: &str = "1.0.31";

/// The repository as a box sees it now: the newest root and the chain from `timestamp.json`.
#[derive(Debug)]
pub struct Published {
    pub root: Signed<Root>,
    pub root_bytes: Vec<u8>,
    pub timestamp: Signed<Timestamp>,
    pub snapshot: Signed<Snapshot>,
    pub targets: Signed<Targets>,
    pub targets_bytes: Vec<u8>,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<(T, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let v = serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))?;
    Ok((v, bytes))
}

/// Versions of `N.root.json` in the metadata directory, sorted.
pub fn root_versions(layout: &Layout) -> Result<Vec<u64>> {
    let mut v = Vec::new();
    let dir = layout.metadata();
    for e in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_suffix(".root.json")
            .and_then(|n| n.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    if v.is_empty() {
        bail!("{}: no root metadata", dir.display());
    }
    Ok(v)
}

impl Published {
    pub fn load(layout: &Layout) -> Result<Self> {
        let md = layout.metadata();
        let newest = *root_versions(layout)?.last().context("no root")?;
        let (root, root_bytes) = read_json(&md.join(format!("{newest}.root.json")))?;
        let (timestamp, _): (Signed<Timestamp>, _) = read_json(&md.join("timestamp.json"))?;
        let sv = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .context("timestamp lists no snapshot.json")?
            .version;
        let (snapshot, _): (Signed<Snapshot>, _) =
            read_json(&md.join(format!("{sv}.snapshot.json")))?;
        let tv = snapshot
            .signed
            .meta
            .get("targets.json")
            .context("snapshot lists no targets.json")?
            .version;
        let (targets, targets_bytes) = read_json(&md.join(format!("{tv}.targets.json")))?;
        Ok(Published {
            root,
            root_bytes,
            timestamp,
            snapshot,
            targets,
            targets_bytes,
        })
    }
}

/// Keys of `role` in `root` that `keys` hold, checked against the role's threshold with an
/// error that says what is missing.
pub fn check_threshold<'a>(
    root: &Root,
    role: RoleType,
    keys: &'a [LoadedKey],
    what: &str,
) -> Result<Vec<&'a LoadedKey>> {
    let rk = root
        .roles
        .get(&role)
        .with_context(|| format!("root lists no {role} role"))?;
    let ids: Vec<String> = rk.keyids.iter().map(hex::encode).collect();
    let mut have: Vec<&LoadedKey> = Vec::new();
    for k in keys {
        if let Some(id) = id_in(root, k)
            && ids.contains(&id)
            && !have.iter().any(|h| h.id == k.id)
        {
            have.push(k);
        }
    }
    let need = rk.threshold.get();
    if (have.len() as u64) < need {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !have.iter().any(|h| &&h.id == id))
            .map(|id| super::keys::short(id).to_owned())
            .collect();
        bail!(
            "threshold not met for {what}: the {role} role of root v{} needs {need} signature(s), \
             the keys given hold {}{}; pass the files of {} more of the keys {} with --key",
            root.version,
            have.len(),
            if have.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    have.iter()
                        .map(|k| k.label())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            need - have.len() as u64,
            missing.join(", ")
        );
    }
    Ok(have)
}

/// Signs `role` with the keys of `root` that `keys` hold (after [`check_threshold`]).
pub async fn sign<T: Role + Serialize>(
    role: T,
    root: &Root,
    keys: &[&LoadedKey],
) -> Result<SignedRole<T>> {
    let sources: Vec<_> = keys.iter().map(|k| k.source()).collect();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    SignedRole::new(role, &KeyHolder::Root(root.clone()), &sources, &rng)
        .await
        .map_err(|e| anyhow::anyhow!("signing {}: {e}", T::TYPE))
}

pub fn nz(v: u64) -> Result<NonZeroU64> {
    NonZeroU64::new(v).context("version 0")
}

pub fn sha256_hashes(sha: &[u8]) -> Hashes {
    Hashes {
        sha256: Decoded::<Hex>::from(sha.to_vec()),
        _extra: HashMap::new(),
    }
}

/// Signed metadata as written: version and bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub version: u64,
    pub bytes: Vec<u8>,
}

impl<T: Role> From<&SignedRole<T>> for Written {
    fn from(r: &SignedRole<T>) -> Self {
        Written {
            version: r.signed().signed.version().get(),
            bytes: r.buffer().clone(),
        }
    }
}

fn metafile(w: &Written) -> Result<Metafile> {
    let sha: [u8; 32] = Sha256::digest(&w.bytes).into();
    Ok(Metafile {
        length: Some(w.bytes.len() as u64),
        hashes: Some(sha256_hashes(&sha)),
        version: nz(w.version)?,
        _extra: HashMap::new(),
    })
}

/// Which expiries the snapshot and timestamp get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The online repository: `snapshot`, `timestamp`.
    Online,
    /// A USB copy: `offline` for both.
    Offline,
}

/// A new snapshot listing `targets` (version: [`next_version`]), signed with the online key.
pub async fn new_snapshot(
    layout: &Layout,
    root: &Root,
    targets: &Written,
    online: &LoadedKey,
    exp: &Expiries,
    f: Freshness,
) -> Result<Written> {
    let role = if f == Freshness::Online {
        "snapshot"
    } else {
        "offline"
    };
    let mut snap = Snapshot::new(
        SPEC_VERSION.into(),
        nz(next_version(layout)?)?,
        exp.at(role)?,
    );
    snap.meta.insert("targets.json".into(), metafile(targets)?);
    Ok((&sign(snap, root, &[online]).await?).into())
}

/// A new snapshot of the published targets (new version and expiry).
pub async fn resign_snapshot(
    layout: &Layout,
    p: &Published,
    online: &LoadedKey,
    exp: &Expiries,
    f: Freshness,
) -> Result<Written> {
    let targets = Written {
        version: p.targets.signed.version.get(),
        bytes: p.targets_bytes.clone(),
    };
    new_snapshot(layout, &p.root.signed, &targets, online, exp, f).await
}

/// Writes `N.snapshot.json`, then signs and writes `timestamp.json` listing it (very last).
/// Returns the timestamp version.
pub async fn write_snapshot_and_timestamp(
    layout: &Layout,
    root: &Root,
    snap: &Written,
    online: &LoadedKey,
    exp: &Expiries,
    f: Freshness,
    out_dir: &Path,
) -> Result<u64> {
    write_atomic(
        &out_dir.join(format!("{}.snapshot.json", snap.version)),
        &snap.bytes,
        0o644,
    )?;
    let role = if f == Freshness::Online {
        "timestamp"
    } else {
        "offline"
    };
    let mut ts = Timestamp::new(
        SPEC_VERSION.into(),
        nz(next_version(layout)?)?,
        exp.at(role)?,
    );
    ts.meta.insert("snapshot.json".into(), metafile(snap)?);
    let ts: Written = (&sign(ts, root, &[online]).await?).into();
    write_atomic(&out_dir.join("timestamp.json"), &ts.bytes, 0o644)?;
    Ok(ts.version)
}

/// Writes `N.targets.json`, a new snapshot and a new timestamp into the published metadata,
/// in that order. Returns (snapshot, timestamp) versions.
pub async fn publish_targets(
    layout: &Layout,
    root: &Root,
    targets: &Written,
    online: &LoadedKey,
    exp: &Expiries,
) -> Result<(u64, u64)> {
    let md = layout.metadata();
    write_atomic(
        &md.join(format!("{}.targets.json", targets.version)),
        &targets.bytes,
        0o644,
    )?;
    let snap = new_snapshot(layout, root, targets, online, exp, Freshness::Online).await?;
    let ts = write_snapshot_and_timestamp(layout, root, &snap, online, exp, Freshness::Online, &md)
        .await?;
    Ok((snap.version, ts))
}

/// valise-tuf's view of signed targets bytes: verified against `root_bytes` by threshold.
pub fn verify_targets(root_bytes: &[u8], targets_bytes: &[u8]) -> Result<()> {
    use valise_tuf::schema::{Metadata, Root as TRoot, Targets as TTargets};
    let root = Metadata::<TRoot>::from_bytes(root_bytes)?;
    let t = Metadata::<TTargets>::from_bytes(targets_bytes)?;
    valise_tuf::verify::verify_threshold(
        "targets",
        root.signed.role("targets")?,
        &root.signed.keys,
        &t.canonical_signed,
        &t.signatures,
    )?;
    Ok(())
}

/// The path a box fetches a target from (spec 5.7.3, `dir/<sha256>.<name>`), as valise-tuf
/// computes it; refused when the name would need percent-encoding.
pub fn target_path(name: &str, sha256_hex: &str) -> Result<String> {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, name),
    };
    let plain = name.split('/').all(|s| valise_tuf::names::quote(s) == s);
    if !plain || base.is_empty() {
        bail!("target name {name:?}: use only letters, digits and . _ - ~ in its parts");
    }
    Ok(match dir {
        Some(d) => format!("{d}/{sha256_hex}.{base}"),
        None => format!("{sha256_hex}.{base}"),
    })
}
