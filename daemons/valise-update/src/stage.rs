//! Building a new slot (DESIGN.md §5.2): `slots/.tmp-<name>` gets the current slot's files
//! that stay (hard links: same filesystem, files are immutable, mode 0444), the new bundle's
//! verified files, the bundle's own `bundle.toml` and acceptance inputs under
//! `.bundles/<id>/`, and a regenerated `manifest.toml`; every file and directory is fsynced,
//! `.complete` is written last, then the directory is renamed to `slots/<name>` and `slots/`
//! fsynced. A slot without `.complete` is never switched to; `.tmp-*` directories are removed
//! at start-up.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use valise_bundle::Manifest;
use valise_models::{Catalog, ModelEntry};

use crate::killpoint;

/// Marks a slot whose every file and directory reached the disk.
pub const COMPLETE: &str = ".complete";
/// Per-bundle data inside a slot: `.bundles/<id>/bundle.toml`, `.bundles/<id>/acceptance/…`.
pub const BUNDLES: &str = ".bundles";
pub const SLOTS: &str = "slots";
pub const TMP_PREFIX: &str = ".tmp-";

/// Where one bundle's own files (its manifest, acceptance inputs) lie inside a slot.
pub fn bundle_dir(slot: &Path, id: &str) -> PathBuf {
    slot.join(BUNDLES).join(id)
}

/// The bundles a slot holds: id → (manifest, raw `bundle.toml`).
pub fn bundles_of(slot: &Path) -> io::Result<BTreeMap<String, Manifest>> {
    let mut out = BTreeMap::new();
    let dir = slot.join(BUNDLES);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let text = fs::read_to_string(e.path().join(valise_bundle::MANIFEST))?;
        let m =
            Manifest::parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        out.insert(m.bundle.id.clone(), m);
    }
    Ok(out)
}

fn catalog_of(slot: &Path) -> io::Result<Catalog> {
    Catalog::load(&slot.join("manifest.toml"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// The models of the new slot: the current ones, less those the bundle's installed version
/// brought, less those the new version replaces, plus the new version's.
pub fn merged_models(current: &Catalog, old: Option<&Manifest>, new: &Manifest) -> Vec<ModelEntry> {
    let gone = |id: &str| {
        old.is_some_and(|o| o.models.iter().any(|m| m.id == id))
            || new.models.iter().any(|m| m.id == id)
    };
    let mut models: Vec<ModelEntry> = current
        .models
        .iter()
        .filter(|m| !gone(&m.id))
        .cloned()
        .collect();
    models.extend(new.models.iter().cloned());
    models
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        // Another filesystem (a dev store on another mount): a copy, synced.
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
            fs::copy(from, to)?;
            File::open(to)?.sync_all()
        }
        Err(e) => Err(e),
    }
}

/// fsyncs every regular file and directory under `dir`, children first.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            sync_tree(&e.path())?;
        } else if t.is_file() {
            File::open(e.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a new slot is made of.
#[derive(Debug)]
pub struct StageInput<'a> {
    /// The store root (holding `current` and `slots/`).
    pub root: &'a Path,
    /// The slot the new one starts from (the current one).
    pub from: &'a Path,
    /// The new bundle and its `bundle.toml` as downloaded.
    pub manifest: &'a Manifest,
    pub manifest_bytes: &'a [u8],
    /// A verified local file for each of the bundle's files, by its path in the bundle.
    pub files: &'a BTreeMap<String, PathBuf>,
    /// The new slot's name.
    pub name: &'a str,
}

/// Builds `slots/<name>` as the module comment says; returns its path.
pub fn stage(input: &StageInput<'_>) -> io::Result<PathBuf> {
    let slots = input.root.join(SLOTS);
    let tmp = slots.join(format!("{TMP_PREFIX}{}", input.name));
    let dest = slots.join(input.name);
    if dest.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", dest.display()),
        ));
    }
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    killpoint!("stage.after_tmp_mkdir");

    let id = &input.manifest.bundle.id;
    let current = catalog_of(input.from)?;
    let old_bundles = bundles_of(input.from)?;
    let models = merged_models(&current, old_bundles.get(id), input.manifest);

    // What stays: model files and other bundles' own files, hard-linked.
    let mut linked = 0usize;
    for m in models
        .iter()
        .filter(|m| !input.manifest.models.iter().any(|n| n.id == m.id))
    {
        for f in &m.files {
            link_or_copy(&input.from.join(&f.path), &tmp.join(&f.path))?;
            linked += 1;
            if linked == 1 {
                killpoint!("stage.mid_links");
            }
        }
    }
    for (other, m) in old_bundles.iter().filter(|(o, _)| *o != id) {
        let src = bundle_dir(input.from, other);
        let dst = bundle_dir(&tmp, other);
        link_or_copy(
            &src.join(valise_bundle::MANIFEST),
            &dst.join(valise_bundle::MANIFEST),
        )?;
        for f in &m.files {
            link_or_copy(&src.join(&f.path), &dst.join(&f.path))?;
        }
    }
    // The new bundle's files, from the verified downloads.
    let bdir = bundle_dir(&tmp, id);
    for m in &input.manifest.models {
        for f in &m.files {
            link_or_copy(&local(input.files, &f.path)?, &tmp.join(&f.path))?;
        }
    }
    for f in &input.manifest.files {
        link_or_copy(&local(input.files, &f.path)?, &bdir.join(&f.path))?;
    }
    fs::create_dir_all(&bdir)?;
    fs::write(bdir.join(valise_bundle::MANIFEST), input.manifest_bytes)?;

    killpoint!("stage.before_manifest");
    fs::write(tmp.join("manifest.toml"), Catalog { models }.to_toml())?;
    sync_tree(&tmp)?;
    killpoint!("stage.before_complete");
    let c = File::create(tmp.join(COMPLETE))?;
    c.sync_all()?;
    fsync_dir(&tmp)?;
    killpoint!("stage.before_slot_rename");
    fs::rename(&tmp, &dest)?;
    fsync_dir(&slots)?;
    Ok(dest)
}

fn local(files: &BTreeMap<String, PathBuf>, path: &str) -> io::Result<PathBuf> {
    files.get(path).cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no verified file for {path}"),
        )
    })
}

/// Removes `slots/.tmp-*` left by an interrupted staging.
pub fn remove_tmp_slots(root: &Path) -> io::Result<usize> {
    let mut n = 0;
    let slots = root.join(SLOTS);
    let Ok(rd) = fs::read_dir(&slots) else {
        return Ok(0);
    };
    for e in rd {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            fs::remove_dir_all(e.path())?;
            n += 1;
        }
    }
    if n > 0 {
        fsync_dir(&slots)?;
    }
    Ok(n)
}

/// Checks a slot completely: every file of `manifest.toml` has its size and sha256, every
/// bundle's models are in the manifest as the bundle lists them and its own files match.
/// Returns the bundles it holds, id → version.
pub fn check_slot(slot: &Path) -> io::Result<BTreeMap<String, u64>> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let catalog = catalog_of(slot)?;
    for m in &catalog.models {
        for f in &m.files {
            let p = slot.join(&f.path);
            let got = valise_models::sha256_file(&p).map_err(|e| bad(e.to_string()))?;
            if got != f.sha256 || fs::metadata(&p)?.len() != f.size {
                return Err(bad(format!("{} differs from the manifest", p.display())));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (id, b) in bundles_of(slot)? {
        for m in &b.models {
            if catalog.get(&m.id) != Some(m) {
                return Err(bad(format!("bundle {id}: model {} not as listed", m.id)));
            }
        }
        for f in &b.files {
            let p = bundle_dir(slot, &id).join(&f.path);
            let got = valise_models::sha256_file(&p).map_err(|e| bad(e.to_string()))?;
            if got != f.sha256 {
                return Err(bad(format!("{} differs from bundle.toml", p.display())));
            }
        }
        out.insert(id, b.bundle.version);
    }
    Ok(out)
}
