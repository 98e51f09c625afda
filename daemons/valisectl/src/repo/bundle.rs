//! `repo add-bundle`: a bundle from catalog entries and the dev model store, staged as TUF
//! targets under `bundles/<id>/<version>/` (valise-bundle's names and `bundle.toml`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tough::TargetName;
use tough::schema::{Target, Targets};
use valise_bundle::{AcceptanceCase, BundleInfo, Engine, Manifest, TargetCustom, Wave};
use valise_models::{Catalog, FileEntry, ModelKind};

use super::files::{Layout, copy_hashed, write_atomic};
use super::meta::sha256_hashes;

/// The acceptance file given to `--acceptance`: `[[acceptance]]` cases as in `bundle.toml`,
/// except that a transcription case's `input` is a local file (relative to this file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceFile {
    #[serde(default)]
    acceptance: Vec<AcceptanceCase>,
}

#[derive(Debug)]
pub struct AddBundle<'a> {
    pub bundle: Option<String>,
    pub models: &'a [String],
    pub version: u64,
    pub engines: &'a [String],
    pub acceptance: Option<&'a Path>,
    pub catalog: &'a Path,
    pub store: Option<&'a Path>,
    pub wave: Wave,
}

fn engine_of(kind: ModelKind) -> Option<Engine> {
    match kind {
        ModelKind::SpeechToText | ModelKind::VoiceActivity => Some(Engine::Transcribe),
        ModelKind::Translation => Some(Engine::Translate),
        ModelKind::Runtime => None,
    }
}

/// Highest version of bundle `id` among `targets`.
pub fn highest_version(targets: &Targets, id: &str) -> Option<u64> {
    targets
        .targets
        .keys()
        .filter_map(|n| valise_bundle::parse_manifest_target(n.raw()))
        .filter(|(i, _)| i == id)
        .map(|(_, v)| v)
        .max()
}

/// Stages the bundle: files copied (and hashed while copying) under `staged/files/`, their
/// targets added to the pending targets. Returns the manifest.
pub fn stage(
    layout: &Layout,
    a: &AddBundle<'_>,
    pending: &mut Targets,
    published: &Targets,
) -> Result<Manifest> {
    let catalog = Catalog::load(a.catalog)?;
    let store_root = match a.store {
        Some(p) => p.to_path_buf(),
        None => valise_models::discover_root()?,
    };
    let store = valise_models::Store::open(&store_root)?;
    let mut models = Vec::new();
    for id in a.models {
        let entry = catalog.get(id).with_context(|| {
            format!(
                "model {id} is not in {} (see its [[model]] ids)",
                a.catalog.display()
            )
        })?;
        models.push(entry.clone());
    }
    if models.is_empty() {
        bail!("name at least one model with --model");
    }
    let id = match &a.bundle {
        Some(b) => b.clone(),
        None => models[0]
            .id
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect(),
    };
    let engines: Vec<Engine> = if a.engines.is_empty() {
        let mut e: Vec<Engine> = models.iter().filter_map(|m| engine_of(m.kind)).collect();
        e.sort();
        e.dedup();
        e
    } else {
        a.engines
            .iter()
            .map(|s| match s.as_str() {
                "transcribe" => Ok(Engine::Transcribe),
                "translate" => Ok(Engine::Translate),
                _ => bail!("--engines {s:?}: transcribe or translate"),
            })
            .collect::<Result<_>>()?
    };
    for t in [published, &*pending] {
        if let Some(v) = highest_version(t, &id)
            && a.version <= v
        {
            let which = if std::ptr::eq(t, published) {
                "published"
            } else {
                "staged"
            };
            bail!(
                "bundle {id} version {} is not above the {which} version {v}: boxes refuse a \
                 version they have had; use --version {}",
                a.version,
                v + 1
            );
        }
    }

    // Acceptance cases: local inputs become `acceptance/<file name>` files of the bundle.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut cases = Vec::new();
    if let Some(path) = a.acceptance {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let af: AcceptanceFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for mut case in af.acceptance {
            if let AcceptanceCase::Transcribe { input, .. } = &mut case {
                let local = base.join(&*input);
                let name = local
                    .file_name()
                    .with_context(|| format!("acceptance input {input:?}: no file name"))?
                    .to_string_lossy()
                    .into_owned();
                let rel = format!("acceptance/{name}");
                if !local.is_file() {
                    bail!("acceptance input {}: no such file", local.display());
                }
                if let Some((_, other)) = files.iter().find(|(r, _)| *r == rel)
                    && *other != local
                {
                    bail!("two acceptance inputs are both named {name}");
                }
                if !files.iter().any(|(r, _)| *r == rel) {
                    files.push((rel.clone(), local));
                }
                *input = rel;
            }
            cases.push(case);
        }
    }

    let prefix = valise_bundle::target_prefix(&id, a.version);
    let staged = layout.staged_files();
    let mut extra: Vec<FileEntry> = Vec::new();
    let mut new_targets: Vec<(String, Target)> = Vec::new();
    // Model files: from the store, checked against the catalog while they are copied.
    for m in &models {
        let installed = store.get(&m.id).with_context(|| {
            format!(
                "model {} is in the catalog but not in the store {}",
                m.id,
                store_root.display()
            )
        })?;
        if installed.files != m.files {
            bail!(
                "model {}: the store's manifest lists other files than {}",
                m.id,
                a.catalog.display()
            );
        }
        for f in &m.files {
            let src = store.slot().join(&f.path);
            let name = format!("{prefix}/{}", f.path);
            let (len, sha) = copy_hashed(&src, &staged.join(&name))?;
            if len != f.size || !hex::encode(sha).eq_ignore_ascii_case(&f.sha256) {
                let _ = std::fs::remove_file(staged.join(&name));
                bail!(
                    "{}: {len} bytes, sha256 {} — the catalog says {} bytes, sha256 {}",
                    src.display(),
                    hex::encode(sha),
                    f.size,
                    f.sha256
                );
            }
            new_targets.push((name, file_target(len, &sha)));
        }
    }
    for (rel, local) in &files {
        let name = format!("{prefix}/{rel}");
        let (len, sha) = copy_hashed(local, &staged.join(&name))?;
        extra.push(FileEntry {
            path: rel.clone(),
            size: len,
            sha256: hex::encode(sha),
        });
        new_targets.push((name, file_target(len, &sha)));
    }

    let manifest = Manifest {
        bundle: BundleInfo {
            id: id.clone(),
            version: a.version,
            engines: engines.clone(),
            description: String::new(),
        },
        models,
        files: extra,
        acceptance: cases,
    };
    manifest.validate()?;
    let text = manifest.to_toml();
    // The manifest must read back exactly (what the box parses is what was checked here).
    if Manifest::parse(&text)? != manifest {
        bail!("bundle.toml does not read back as written");
    }
    let mname = manifest.manifest_target();
    let mpath = staged.join(&mname);
    write_atomic(&mpath, text.as_bytes(), 0o644)?;
    let (len, sha) = super::files::hash_file(&mpath)?;
    let mut mt = file_target(len, &sha);
    let custom = TargetCustom {
        bundle: id,
        version: a.version,
        engines,
        wave: a.wave.clone(),
    };
    mt.custom.insert(
        valise_bundle::CUSTOM_KEY.into(),
        custom.to_custom()[valise_bundle::CUSTOM_KEY].clone(),
    );
    new_targets.push((mname, mt));

    for (name, t) in new_targets {
        super::meta::target_path(&name, &hex::encode(&*t.hashes.sha256))?;
        let tn = TargetName::new(name.clone())
            .map_err(|e| anyhow::anyhow!("target name {name:?}: {e}"))?;
        pending.targets.insert(tn, t);
    }
    Ok(manifest)
}

/// Stages the CRL file `crl` as the target [`valise_bundle::CRL_TARGET`], after checking it is
/// one CRL signed by the CA certificate `ca` (what a box checks before installing it).
pub fn stage_crl(
    layout: &Layout,
    crl: &Path,
    ca: &Path,
    pending: &mut Targets,
) -> Result<valise_pki::crl::CheckedCrl> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
    let ca_pem = read(ca)?;
    let ca_der = valise_pki::pem::certificates(&ca.display().to_string(), &ca_pem)?;
    let pem = read(crl)?;
    let checked = valise_pki::crl::check(&crl.display().to_string(), &pem, &ca_der)?;
    if pem.len() as u64 > valise_bundle::MAX_CRL_BYTES {
        bail!(
            "{}: {} bytes, boxes accept at most {}",
            crl.display(),
            pem.len(),
            valise_bundle::MAX_CRL_BYTES
        );
    }
    let name = valise_bundle::CRL_TARGET;
    let (len, sha) = copy_hashed(crl, &layout.staged_files().join(name))?;
    let tn = TargetName::new(name.to_owned()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    pending.targets.insert(tn, file_target(len, &sha));
    Ok(checked)
}

fn file_target(len: u64, sha: &[u8; 32]) -> Target {
    Target {
        length: len,
        hashes: sha256_hashes(sha),
        custom: HashMap::new(),
        _extra: HashMap::new(),
    }
}

/// Parses `site/box` identities for a wave.
pub fn parse_boxes(list: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in list.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if b.is_empty() {
            continue;
        }
        let (site, name) = b
            .split_once('/')
            .with_context(|| format!("box {b:?}: write SITE/BOX, e.g. lisbon/box-1"))?;
        valise_pki::BoxIdentity::new(site, name).with_context(|| format!("box {b:?}"))?;
        if !out.iter().any(|o| o == b) {
            out.push(b.to_owned());
        }
    }
    Ok(out)
}
