//! `valisectl repo ...`: the central team's TUF repository of model bundles (issue 12, items
//! 3 and 4; `daemons/valise-update/DESIGN.md` §2). Metadata are built with tough's schema
//! types and signed with its `SignedRole`, one role at a time (offline keys for root and
//! targets, the online key for snapshot and timestamp); target files and metadata are written
//! by this module at the spec's paths, and what a box must accept is re-checked with
//! valise-tuf before it is written (rotated roots, staged targets).
//!
//! ```text
//! DIR/repo.toml                     expiries, web root (nothing secret)
//! DIR/state.toml                    last snapshot/timestamp version issued (unix seconds)
//! DIR/keys/root-N.pem, online.pem   PKCS#8 PEM, 0600, directory 0700; never published
//! DIR/keys/revoked/                 keys taken out of the root
//! DIR/staged/                       added bundles and wave changes, not yet published
//! DIR/published/metadata/           N.root.json (all kept), N.targets.json, N.snapshot.json, timestamp.json
//! DIR/published/targets/            bundles/<id>/<version>/<dir>/<sha256>.<name>
//! ```

mod bundle;
mod files;
mod keys;
mod meta;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{RoleKeys, RoleType, Root, Targets};
use valise_bundle::{TargetCustom, Wave};

use files::{Layout, RepoConfig, mirror, private_dir, write_atomic};
use keys::{LoadedKey, load_keys, short};
use meta::{
    Freshness, Published, SPEC_VERSION, Written, check_threshold, nz, publish_targets, sign,
    target_path, verify_targets,
};

#[derive(Args, Debug)]
pub struct RepoArgs {
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Create a repository: root keys, an online key, root v1 and empty targets, published.
    Init {
        /// Where to create it (empty or absent).
        dir: PathBuf,
        /// Number of root keys (they sign root and targets).
        #[arg(long, default_value_t = 3)]
        root_keys: u32,
        /// Signatures of root keys needed for root and targets.
        #[arg(long, default_value_t = 2)]
        threshold: u32,
        /// Expiry per role, e.g. `--expires targets=90d` (defaults: root=365d targets=180d
        /// snapshot=30d timestamp=1d offline=60d); kept in DIR/repo.toml.
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
        /// A directory nginx serves: every publication is copied there too.
        #[arg(long)]
        webroot: Option<PathBuf>,
    },
    /// Stage a bundle: catalog entries with their files from the model store, and
    /// acceptance cases.
    AddBundle {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Catalog model ids (`models/catalog.toml`).
        #[arg(long = "model", required = true, num_args = 1..)]
        models: Vec<String>,
        /// Bundle version: above every version of this bundle published before.
        #[arg(long)]
        version: u64,
        /// Bundle id ([a-z0-9-]); by default the first model id, lower-cased.
        #[arg(long)]
        bundle: Option<String>,
        /// Engines restarted when the bundle is switched in (default: from the model kinds).
        #[arg(long, value_delimiter = ',')]
        engines: Vec<String>,
        /// TOML file of `[[acceptance]]` cases; transcription inputs are local files.
        #[arg(long)]
        acceptance: Option<PathBuf>,
        #[arg(long, default_value = "models/catalog.toml")]
        catalog: PathBuf,
        /// Model store root (the dev store is found automatically otherwise).
        #[arg(long, env = "VALISE_MODEL_STORE")]
        store: Option<PathBuf>,
        /// First wave: boxes offered the bundle (SITE/BOX, comma-separated).
        #[arg(long, value_delimiter = ',')]
        boxes: Vec<String>,
        /// First wave: share of the fleet, 0-100 (100 when neither this nor --boxes is given).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: Option<u8>,
    },
    /// Stage the CA's CRL as the target `pki/crl.pem` (replacing the one published before):
    /// boxes install it at their next check, online or from USB, so their CRL never expires
    /// and a revoked server or broker certificate is refused fleet-wide. Sign and publish
    /// well before the previous CRL's nextUpdate.
    AddCrl {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// The CRL (PEM), e.g. `valisectl ca crl`'s `CA_DIR/crl.pem`.
        crl: PathBuf,
        /// The CA certificate the boxes trust (`CA_DIR/ca.pem`): the CRL must be its own.
        #[arg(long)]
        ca: PathBuf,
    },
    /// Sign the staged targets with a threshold of the targets keys.
    Sign {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Key files (default: every keys/*.pem of DIR).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Expiry per role for this command, e.g. `targets=90d` (repo.toml's otherwise).
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
    },
    /// Publish: staged files at their target paths, targets, snapshot, timestamp last.
    Publish {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Also copy the published repository into this directory (a web root).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Expiry per role for this command, e.g. `targets=90d` (repo.toml's otherwise).
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
    },
    /// Sign a new timestamp (daily, from cron); the snapshot too when it expires soon.
    RefreshTimestamp {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Also copy the published repository into this directory (a web root).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Expiry per role for this command, e.g. `targets=90d` (repo.toml's otherwise).
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
    },
    /// A new root: keys removed or added, signed by a threshold of the old and of the new
    /// root keys, checked as a box checks it before it is written.
    RotateRoot {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Key id (or its first 8+ hex digits) to take out.
        #[arg(long)]
        remove: Vec<String>,
        /// Add a new root key (repeat for more).
        #[arg(long, action = clap::ArgAction::Count)]
        add: u8,
        /// New threshold for root and targets (default: unchanged).
        #[arg(long)]
        threshold: Option<u32>,
        /// Key files (default: every keys/*.pem of DIR).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Expiry per role for this command, e.g. `targets=90d` (repo.toml's otherwise).
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
    },
    /// Revoke a compromised key: a new root without it (signed without it) and a new key in
    /// its place; its file moves to keys/revoked/.
    RevokeKey {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Key id (or its first 8+ hex digits), as `repo status` lists it.
        keyid: String,
        /// Key files (default: every keys/*.pem of DIR).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Expiry per role for this command, e.g. `targets=90d` (repo.toml's otherwise).
        #[arg(long, value_name = "ROLE=DURATION")]
        expires: Vec<String>,
    },
    /// Set who is offered a bundle: named boxes and/or a share of the fleet (then sign and
    /// publish).
    Wave {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// Bundle id, or ID/VERSION (default: its highest version).
        bundle: String,
        #[arg(long, value_delimiter = ',')]
        boxes: Vec<String>,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: Option<u8>,
    },
    /// A copy for posts updated from a USB stick: all roots, targets, and a snapshot and
    /// timestamp that stay valid longer.
    ExportOffline {
        /// The repository directory (`repo init`).
        dir: PathBuf,
        /// An empty directory (on the USB stick).
        usbdir: PathBuf,
        /// Validity of the copy's snapshot and timestamp (default: `offline` of repo.toml).
        #[arg(long)]
        expires: Option<String>,
    },
    /// What is published: versions, expiries, keys, bundles and their waves, staged changes.
    Status { dir: PathBuf },
}

pub async fn run(args: RepoArgs) -> Result<()> {
    match args.command {
        RepoCommand::Init {
            dir,
            root_keys,
            threshold,
            expires,
            webroot,
        } => init(&dir, root_keys, threshold, &expires, webroot).await,
        RepoCommand::AddBundle {
            dir,
            models,
            version,
            bundle,
            engines,
            acceptance,
            catalog,
            store,
            boxes,
            percent,
        } => {
            let wave = wave_of(&boxes, percent, true)?;
            add_bundle(
                &dir,
                &bundle::AddBundle {
                    bundle,
                    models: &models,
                    version,
                    engines: &engines,
                    acceptance: acceptance.as_deref(),
                    catalog: &catalog,
                    store: store.as_deref(),
                    wave,
                },
            )
        }
        RepoCommand::AddCrl { dir, crl, ca } => add_crl(&dir, &crl, &ca),
        RepoCommand::Sign { dir, keys, expires } => sign_staged(&dir, &keys, &expires).await,
        RepoCommand::Publish { dir, to, expires } => publish(&dir, to, &expires).await,
        RepoCommand::RefreshTimestamp { dir, to, expires } => {
            refresh_timestamp(&dir, to, &expires).await
        }
        RepoCommand::RotateRoot {
            dir,
            remove,
            add,
            threshold,
            keys,
            expires,
        } => {
            rotate(
                &dir,
                &remove,
                usize::from(add),
                threshold,
                &keys,
                &expires,
                false,
            )
            .await
        }
        RepoCommand::RevokeKey {
            dir,
            keyid,
            keys,
            expires,
        } => rotate(&dir, &[keyid], 0, None, &keys, &expires, true).await,
        RepoCommand::Wave {
            dir,
            bundle,
            boxes,
            percent,
        } => wave(&dir, &bundle, &boxes, percent),
        RepoCommand::ExportOffline {
            dir,
            usbdir,
            expires,
        } => export_offline(&dir, &usbdir, expires).await,
        RepoCommand::Status { dir } => status(&dir).await,
    }
}

fn wave_of(boxes: &[String], percent: Option<u8>, default_all: bool) -> Result<Wave> {
    let boxes = bundle::parse_boxes(boxes)?;
    let percent = match percent {
        Some(p) => p,
        None if boxes.is_empty() && default_all => 100,
        None if boxes.is_empty() => {
            bail!("say who gets the bundle: --boxes SITE/BOX,... and/or --percent P")
        }
        None => 0,
    };
    Ok(Wave { boxes, percent })
}

struct Repo {
    layout: Layout,
    cfg: RepoConfig,
}

impl Repo {
    fn open(dir: &Path, expires: &[String]) -> Result<Self> {
        let layout = Layout::new(dir);
        let mut cfg = RepoConfig::load(&layout)?;
        cfg.expires.apply(expires)?;
        Ok(Repo { layout, cfg })
    }

    async fn online(&self, root: &Root) -> Result<LoadedKey> {
        let k = LoadedKey::load(&self.layout.online_key())
            .await
            .with_context(
                || "the online key signs snapshot and timestamp; it lives on the publishing host",
            )?;
        check_threshold(
            root,
            RoleType::Timestamp,
            std::slice::from_ref(&k),
            "timestamp",
        )?;
        check_threshold(
            root,
            RoleType::Snapshot,
            std::slice::from_ref(&k),
            "snapshot",
        )?;
        Ok(k)
    }

    /// Copies the published tree to the web roots asked for.
    fn mirror(&self, to: Option<&Path>) -> Result<()> {
        for dest in to.into_iter().chain(self.cfg.webroot.as_deref()) {
            let n = mirror(&self.layout.published(), dest)?;
            println!("copied {n} changed file(s) to {}", dest.display());
        }
        Ok(())
    }

    /// The targets being prepared: the staged ones, else the published ones.
    fn pending(&self, p: &Published) -> Result<Targets> {
        match std::fs::read(self.layout.pending()) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| self.layout.pending().display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(p.targets.signed.clone()),
            Err(e) => Err(e).with_context(|| self.layout.pending().display().to_string()),
        }
    }

    fn save_pending(&self, t: &Targets) -> Result<()> {
        write_atomic(
            &self.layout.pending(),
            &serde_json::to_vec_pretty(t)?,
            0o644,
        )?;
        // Whatever was signed before no longer matches.
        match std::fs::remove_file(self.layout.pending_signed()) {
            Ok(()) => println!("the staged signatures no longer match: run `repo sign` again"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

fn key_id(id: &str) -> Result<Decoded<Hex>> {
    Ok(Decoded::from(hex::decode(id)?))
}

fn role_keys(ids: &[&LoadedKey], threshold: u32) -> Result<RoleKeys> {
    Ok(RoleKeys {
        keyids: ids.iter().map(|k| key_id(&k.id)).collect::<Result<_>>()?,
        threshold: nz(u64::from(threshold))?,
        _extra: Default::default(),
    })
}

async fn init(
    dir: &Path,
    n: u32,
    threshold: u32,
    expires: &[String],
    webroot: Option<PathBuf>,
) -> Result<()> {
    let layout = Layout::new(dir);
    if layout.config().exists() || layout.keys().exists() || layout.published().exists() {
        bail!("{}: a repository is already there", dir.display());
    }
    if n == 0 || threshold == 0 || threshold > n {
        bail!("--threshold {threshold} with --root-keys {n}: the threshold must be 1..={n}");
    }
    let mut cfg = RepoConfig {
        webroot,
        ..Default::default()
    };
    cfg.expires.apply(expires)?;
    private_dir(&layout.keys())?;
    let mut root_paths = Vec::new();
    for i in 1..=n {
        let p = layout.keys().join(format!("root-{i}.pem"));
        keys::generate(&p)?;
        root_paths.push(p);
    }
    keys::generate(&layout.online_key())?;
    write_atomic(&layout.config(), toml::to_string(&cfg)?.as_bytes(), 0o644)?;

    let mut root_keys = Vec::new();
    for p in &root_paths {
        root_keys.push(LoadedKey::load(p).await?);
    }
    let online = LoadedKey::load(&layout.online_key()).await?;
    let mut root = Root {
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: nz(1)?,
        expires: cfg.expires.at("root")?,
        keys: Default::default(),
        roles: Default::default(),
        _extra: Default::default(),
    };
    for k in root_keys.iter().chain([&online]) {
        root.keys.insert(key_id(&k.id)?, k.key.clone());
    }
    let rk: Vec<&LoadedKey> = root_keys.iter().collect();
    root.roles
        .insert(RoleType::Root, role_keys(&rk, threshold)?);
    root.roles
        .insert(RoleType::Targets, role_keys(&rk, threshold)?);
    root.roles
        .insert(RoleType::Snapshot, role_keys(&[&online], 1)?);
    root.roles
        .insert(RoleType::Timestamp, role_keys(&[&online], 1)?);
    let signed_root = sign(root.clone(), &root, &rk).await?;
    write_atomic(
        &layout.metadata().join("1.root.json"),
        signed_root.buffer(),
        0o644,
    )?;
    let targets = Targets::new(SPEC_VERSION.into(), nz(1)?, cfg.expires.at("targets")?);
    let targets: Written = (&sign(targets, &root, &rk).await?).into();
    std::fs::create_dir_all(layout.targets())?;
    let (sv, tv) = publish_targets(&layout, &root, &targets, &online, &cfg.expires).await?;
    let repo = Repo { layout, cfg };
    repo.mirror(None)?;
    println!(
        "repository created in {}: root v1 ({threshold} of {n} root keys), targets v1 (empty), snapshot v{sv}, timestamp v{tv}",
        dir.display()
    );
    for k in &root_keys {
        println!("  root and targets key {}", k.label());
    }
    println!("  online key (snapshot, timestamp) {}", online.label());
    println!(
        "Move the root keys to separate media now; give a box {}/1.root.json as its trusted root.",
        repo.layout.metadata().display()
    );
    Ok(())
}

fn add_bundle(dir: &Path, a: &bundle::AddBundle<'_>) -> Result<()> {
    let repo = Repo::open(dir, &[])?;
    let p = Published::load(&repo.layout)?;
    let mut pending = repo.pending(&p)?;
    let m = bundle::stage(&repo.layout, a, &mut pending, &p.targets.signed)?;
    repo.save_pending(&pending)?;
    let bytes: u64 = m.all_files().map(|f| f.size).sum();
    println!(
        "staged bundle {} version {}: {} model(s), {} file(s), {bytes} bytes, {} acceptance case(s), wave {}",
        m.bundle.id,
        m.bundle.version,
        m.models.len(),
        m.all_files().count() + 1,
        m.acceptance.len(),
        describe_wave(&a.wave)
    );
    println!(
        "next: valisectl repo sign {0} && valisectl repo publish {0}",
        dir.display()
    );
    Ok(())
}

fn add_crl(dir: &Path, crl: &Path, ca: &Path) -> Result<()> {
    let repo = Repo::open(dir, &[])?;
    let p = Published::load(&repo.layout)?;
    let mut pending = repo.pending(&p)?;
    let c = bundle::stage_crl(&repo.layout, crl, ca, &mut pending)?;
    repo.save_pending(&pending)?;
    let next = c
        .next_update
        .map_or_else(|| "no nextUpdate".into(), |t| format!("next update {t}"));
    println!(
        "staged CRL {} ({} revoked, {next}) as {}",
        c.number.map_or_else(|| "-".into(), |n| n.to_string()),
        c.revoked,
        valise_bundle::CRL_TARGET
    );
    println!(
        "next: valisectl repo sign {0} && valisectl repo publish {0}",
        dir.display()
    );
    Ok(())
}

fn describe_wave(w: &Wave) -> String {
    if w.boxes.is_empty() {
        format!("{}% of the fleet", w.percent)
    } else {
        format!("{} + {}% of the fleet", w.boxes.join(","), w.percent)
    }
}

async fn sign_staged(dir: &Path, given: &[PathBuf], expires: &[String]) -> Result<()> {
    let repo = Repo::open(dir, expires)?;
    let p = Published::load(&repo.layout)?;
    let root = &p.root.signed;
    let mut t = repo.pending(&p)?;
    t.version = nz(p.targets.signed.version.get() + 1)?;
    t.expires = repo.cfg.expires.at("targets")?;
    let keys = load_keys(&repo.layout.keys(), given).await?;
    let targets_ids: Vec<String> = root.roles[&RoleType::Targets]
        .keyids
        .iter()
        .map(hex::encode)
        .collect();
    for k in &keys {
        if !given.is_empty() && !keys::id_in(root, k).is_some_and(|id| targets_ids.contains(&id)) {
            bail!(
                "key {} is not a targets key of root v{} (revoked, or another role's key)",
                k.label(),
                root.version
            );
        }
    }
    let have = check_threshold(root, RoleType::Targets, &keys, "targets")?;
    let signed = sign(t, root, &have).await?;
    write_atomic(&repo.layout.pending_signed(), signed.buffer(), 0o644)?;
    println!(
        "targets v{} signed by {} (threshold {}), expires {}; publish with `valisectl repo publish {}`",
        signed.signed().signed.version,
        have.iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", "),
        root.roles[&RoleType::Targets].threshold,
        signed.signed().signed.expires,
        dir.display()
    );
    Ok(())
}

/// Copies every target of `t` that is not yet at its spec path in `dest`, from the staged
/// files (by target name) or a published targets tree (by spec path), checking length and
/// sha256.
fn place_targets(
    t: &Targets,
    staged: Option<&Path>,
    published: &Path,
    dest: &Path,
) -> Result<usize> {
    let mut n = 0;
    for (name, target) in &t.targets {
        let sha = hex::encode(&*target.hashes.sha256);
        let rel = target_path(name.raw(), &sha)?;
        let to = dest.join(&rel);
        if let Ok(m) = std::fs::metadata(&to)
            && m.len() == target.length
        {
            continue;
        }
        let from = staged
            .map(|s| s.join(name.raw()))
            .into_iter()
            .chain([published.join(&rel)])
            .find(|p| p.is_file())
            .with_context(|| format!("target {}: neither staged nor published", name.raw()))?;
        let (len, got) = files::copy_hashed(&from, &to)?;
        if len != target.length || hex::encode(got) != sha {
            let _ = std::fs::remove_file(&to);
            bail!(
                "{}: {len} bytes, sha256 {} — the signed targets say {} bytes, sha256 {sha}",
                from.display(),
                hex::encode(got),
                target.length
            );
        }
        n += 1;
    }
    Ok(n)
}

async fn publish(dir: &Path, to: Option<PathBuf>, expires: &[String]) -> Result<()> {
    let repo = Repo::open(dir, expires)?;
    let p = Published::load(&repo.layout)?;
    let root = &p.root.signed;
    let online = repo.online(root).await?;
    let staged_signed = repo.layout.pending_signed();
    if staged_signed.exists() {
        let bytes = std::fs::read(&staged_signed)?;
        verify_targets(&p.root_bytes, &bytes).with_context(|| {
            format!(
                "the staged targets do not verify against root v{}: run `valisectl repo sign` again",
                root.version
            )
        })?;
        let t: tough::schema::Signed<Targets> = serde_json::from_slice(&bytes)?;
        let v = t.signed.version.get();
        if v <= p.targets.signed.version.get() {
            bail!(
                "the staged targets v{v} are not above the published v{}: run `valisectl repo sign` again",
                p.targets.signed.version
            );
        }
        let copied = place_targets(
            &t.signed,
            Some(&repo.layout.staged_files()),
            &repo.layout.targets(),
            &repo.layout.targets(),
        )?;
        let w = Written { version: v, bytes };
        let (sv, tv) = publish_targets(&repo.layout, root, &w, &online, &repo.cfg.expires).await?;
        std::fs::remove_dir_all(repo.layout.staged())?;
        println!(
            "published targets v{v} ({} targets, {copied} new file(s)), snapshot v{sv}, timestamp v{tv}",
            t.signed.targets.len()
        );
    } else if repo.layout.pending().exists() {
        bail!(
            "staged changes are not signed: run `valisectl repo sign {}` first",
            dir.display()
        );
    } else {
        let w = Written {
            version: p.targets.signed.version.get(),
            bytes: p.targets_bytes.clone(),
        };
        let (sv, tv) = publish_targets(&repo.layout, root, &w, &online, &repo.cfg.expires).await?;
        println!("nothing staged: snapshot v{sv} and timestamp v{tv} re-signed");
    }
    repo.mirror(to.as_deref())
}

async fn refresh_timestamp(dir: &Path, to: Option<PathBuf>, expires: &[String]) -> Result<()> {
    let repo = Repo::open(dir, expires)?;
    let p = Published::load(&repo.layout)?;
    let root = &p.root.signed;
    let online = repo.online(root).await?;
    let md = repo.layout.metadata();
    // Re-sign the snapshot as well when it would expire within two timestamp periods.
    let horizon = repo
        .cfg
        .expires
        .at("timestamp")?
        .checked_add(files::parse_duration(&repo.cfg.expires.timestamp)?)?;
    let snap = if p.snapshot.signed.expires <= horizon {
        meta::resign_snapshot(
            &repo.layout,
            &p,
            &online,
            &repo.cfg.expires,
            Freshness::Online,
        )
        .await?
    } else {
        let v = p.snapshot.signed.version.get();
        Written {
            version: v,
            bytes: std::fs::read(md.join(format!("{v}.snapshot.json")))?,
        }
    };
    let renewed = snap.version != p.snapshot.signed.version.get();
    let tv = meta::write_snapshot_and_timestamp(
        &repo.layout,
        root,
        &snap,
        &online,
        &repo.cfg.expires,
        Freshness::Online,
        &md,
    )
    .await?;
    println!(
        "timestamp v{tv}, expires in {}{}",
        repo.cfg.expires.timestamp,
        if renewed {
            format!("; snapshot re-signed as v{}", snap.version)
        } else {
            String::new()
        }
    );
    repo.mirror(to.as_deref())
}

/// Finds the key id `prefix` names in `root`.
fn resolve_id(root: &Root, prefix: &str) -> Result<String> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 8 {
        bail!("key id {prefix:?}: give at least its first 8 hex digits (`repo status` lists them)");
    }
    let ids: Vec<String> = root
        .keys
        .keys()
        .map(hex::encode)
        .filter(|id| id.starts_with(&prefix))
        .collect();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no key {prefix} in root v{} (its keys: {})",
            root.version,
            root.keys
                .keys()
                .map(|k| short(&hex::encode(k)).to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => bail!("key id {prefix} is ambiguous: give more digits"),
    }
}

async fn rotate(
    dir: &Path,
    remove: &[String],
    add: usize,
    threshold: Option<u32>,
    given: &[PathBuf],
    expires: &[String],
    revoke: bool,
) -> Result<()> {
    let repo = Repo::open(dir, expires)?;
    let layout = &repo.layout;
    let p = Published::load(layout)?;
    let old = &p.root.signed;
    let removed: Vec<String> = remove
        .iter()
        .map(|r| resolve_id(old, r))
        .collect::<Result<_>>()?;
    let online_now = repo.online(old).await?;
    let online_removed = removed.contains(&online_now.id);
    let root_removed = removed.iter().any(|id| *id != online_now.id);
    // A revoked root/targets key is replaced by a new one.
    let add = add + usize::from(revoke && root_removed);

    // Every key we hold, the removed ones set aside: a key taken out never signs.
    let mut held = load_keys(&layout.keys(), given).await?;
    if !given.is_empty() {
        held.push(online_now.clone());
    }
    let (out_keys, held): (Vec<LoadedKey>, Vec<LoadedKey>) =
        held.into_iter().partition(|k| removed.contains(&k.id));
    // New keys are made under new names; they only replace anything once the root is written.
    let mut new_paths = Vec::new();
    let mut new_keys = Vec::new();
    for _ in 0..add {
        let path = keys::next_root_key_path(&layout.keys(), &layout.revoked());
        keys::generate(&path)?;
        new_keys.push(LoadedKey::load(&path).await?);
        new_paths.push(path);
    }
    let new_online_path = layout.keys().join("online.next.pem");
    let online = if online_removed {
        let _ = std::fs::remove_file(&new_online_path);
        keys::generate(&new_online_path)?;
        LoadedKey::load(&new_online_path).await?
    } else {
        online_now.clone()
    };

    let mut new = old.clone();
    new.version = nz(old.version.get() + 1)?;
    new.expires = repo.cfg.expires.at("root")?;
    let old_root_ids: Vec<String> = old.roles[&RoleType::Root]
        .keyids
        .iter()
        .map(hex::encode)
        .collect();
    let mut root_ids: Vec<String> = old_root_ids
        .iter()
        .filter(|id| !removed.contains(id))
        .cloned()
        .collect();
    root_ids.extend(new_keys.iter().map(|k| k.id.clone()));
    let th = threshold.map_or(old.roles[&RoleType::Root].threshold.get(), u64::from);
    if th == 0 || th > root_ids.len() as u64 {
        let _ = cleanup(&new_paths, &new_online_path);
        bail!(
            "the new root would have {} root key(s) for a threshold of {th}: add keys with --add or lower --threshold",
            root_ids.len()
        );
    }
    let rk = RoleKeys {
        keyids: root_ids.iter().map(|i| key_id(i)).collect::<Result<_>>()?,
        threshold: nz(th)?,
        _extra: Default::default(),
    };
    new.roles.insert(RoleType::Root, rk.clone());
    new.roles.insert(RoleType::Targets, rk);
    let ok = role_keys(&[&online], 1)?;
    new.roles.insert(RoleType::Snapshot, ok.clone());
    new.roles.insert(RoleType::Timestamp, ok);
    new.keys.clear();
    for k in held.iter().chain(&new_keys).chain([&online]) {
        if root_ids.contains(&k.id) || k.id == online.id {
            new.keys.insert(key_id(&k.id)?, k.key.clone());
        }
    }
    // Root keys listed but not held here (kept on other media): carried over as they were.
    for id in &root_ids {
        let kid = key_id(id)?;
        if let std::collections::hash_map::Entry::Vacant(e) = new.keys.entry(kid) {
            let k = old
                .keys
                .get(e.key())
                .context("root key without a public key")?;
            e.insert(k.clone());
        }
    }

    let mut signers: Vec<LoadedKey> = held.clone();
    signers.extend(new_keys.iter().cloned());
    // The current root's threshold: a key retired by rotate-root may still sign this once
    // (rotating two of three keys at once needs it); a revoked key never signs again.
    let mut old_signers = signers.clone();
    if !revoke {
        old_signers.extend(out_keys.iter().cloned());
    }
    let checks = (|| -> Result<()> {
        check_threshold(
            old,
            RoleType::Root,
            &old_signers,
            "the new root, by the current root's keys",
        )?;
        check_threshold(
            &new,
            RoleType::Root,
            &signers,
            "the new root, by its own keys",
        )?;
        check_threshold(
            &new,
            RoleType::Targets,
            &signers,
            "targets under the new root",
        )?;
        Ok(())
    })();
    if let Err(e) = checks {
        cleanup(&new_paths, &new_online_path)?;
        return Err(e);
    }
    let by_new = check_threshold(&new, RoleType::Root, &signers, "")?;
    let by_old = check_threshold(old, RoleType::Root, &old_signers, "")?;
    let signed_new = sign(new.clone(), &new, &by_new).await?;
    let signed_old = sign(new.clone(), old, &by_old).await?;
    let merged = signed_new
        .add_old_signatures(signed_old.signed().signatures.clone())
        .map_err(|e| anyhow::anyhow!("merging root signatures: {e}"))?;
    // What a box does with it (spec 5.3.4-5.3.8, valise-tuf): refuse to write anything else.
    let now = time::OffsetDateTime::now_utc();
    let check = valise_tuf::TrustedSet::new(&p.root_bytes, now)
        .and_then(|mut set| set.update_root(merged.buffer()));
    if let Err(e) = check {
        cleanup(&new_paths, &new_online_path)?;
        bail!("the new root does not verify as a box checks it, nothing written: {e}");
    }
    let v = new.version.get();
    write_atomic(
        &layout.metadata().join(format!("{v}.root.json")),
        merged.buffer(),
        0o644,
    )?;

    // Keys taken out leave keys/ (a revoked key is kept for the record, never used again).
    private_dir(&layout.revoked())?;
    for k in &out_keys {
        if k.path.starts_with(layout.keys()) {
            let to =
                layout
                    .revoked()
                    .join(format!("{}-{}", short(&k.id), keys::file_name(&k.path)));
            std::fs::rename(&k.path, &to)?;
            println!("{} moved to {}", k.label(), to.display());
        }
    }
    let online = if online_removed {
        std::fs::rename(&new_online_path, layout.online_key())?;
        LoadedKey::load(&layout.online_key()).await?
    } else {
        online
    };

    // Targets again under the new root (the old signatures may no longer reach the
    // threshold), then snapshot and timestamp.
    let mut t = p.targets.signed.clone();
    t.version = nz(t.version.get() + 1)?;
    t.expires = repo.cfg.expires.at("targets")?;
    let have = check_threshold(&new, RoleType::Targets, &signers, "targets")?;
    let t: Written = (&sign(t, &new, &have).await?).into();
    let (sv, tv) = publish_targets(layout, &new, &t, &online, &repo.cfg.expires).await?;
    let _ = std::fs::remove_file(layout.pending_signed());
    println!(
        "root v{v}: {} root key(s), threshold {th}, signed by {} old and {} new root key(s){}",
        root_ids.len(),
        by_old.len(),
        by_new.len(),
        if online_removed {
            format!("; new online key {}", online.label())
        } else {
            String::new()
        }
    );
    for k in &new_keys {
        println!("  new root key {}", k.label());
    }
    for id in &removed {
        println!(
            "  {} {}",
            if revoke { "revoked" } else { "removed" },
            short(id)
        );
    }
    println!(
        "targets v{} re-signed, snapshot v{sv}, timestamp v{tv}",
        t.version
    );
    repo.mirror(None)
}

fn cleanup(new_paths: &[PathBuf], online_next: &Path) -> Result<()> {
    for p in new_paths {
        std::fs::remove_file(p)?;
    }
    match std::fs::remove_file(online_next) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn wave(dir: &Path, which: &str, boxes: &[String], percent: Option<u8>) -> Result<()> {
    let repo = Repo::open(dir, &[])?;
    let p = Published::load(&repo.layout)?;
    let mut t = repo.pending(&p)?;
    let (id, version) = match which.split_once('/') {
        Some((id, v)) => (
            id.to_owned(),
            Some(
                v.parse::<u64>()
                    .with_context(|| format!("{which}: write ID or ID/VERSION"))?,
            ),
        ),
        None => (which.to_owned(), None),
    };
    let version = match version.or_else(|| bundle::highest_version(&t, &id)) {
        Some(v) => v,
        None => bail!("no bundle {id} published or staged"),
    };
    let name = valise_bundle::manifest_target(&id, version);
    let target = t
        .targets
        .iter_mut()
        .find(|(n, _)| n.raw() == name)
        .map(|(_, t)| t)
        .with_context(|| format!("no bundle {id} version {version} published or staged"))?;
    let custom = serde_json::Value::Object(target.custom.clone().into_iter().collect());
    let mut c = TargetCustom::from_custom(&custom)
        .with_context(|| format!("{name}: no custom.valise on its target"))?;
    c.wave = wave_of(boxes, percent, false)?;
    target.custom.insert(
        valise_bundle::CUSTOM_KEY.into(),
        c.to_custom()[valise_bundle::CUSTOM_KEY].clone(),
    );
    repo.save_pending(&t)?;
    println!(
        "bundle {id} version {version}: wave set to {}; next: valisectl repo sign {1} && valisectl repo publish {1}",
        describe_wave(&c.wave),
        dir.display()
    );
    Ok(())
}

async fn export_offline(dir: &Path, usb: &Path, expires: Option<String>) -> Result<()> {
    let repo = Repo::open(
        dir,
        &expires
            .map(|e| vec![format!("offline={e}")])
            .unwrap_or_default(),
    )?;
    let layout = &repo.layout;
    if std::fs::read_dir(usb).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{}: not empty; export into an empty directory",
            usb.display()
        );
    }
    let p = Published::load(layout)?;
    let root = &p.root.signed;
    let online = repo.online(root).await?;
    let umd = usb.join("metadata");
    // Every root version: a box offline since root v1 walks them all (spec 5.3).
    for v in meta::root_versions(layout)? {
        let name = format!("{v}.root.json");
        files::copy_hashed(&layout.metadata().join(&name), &umd.join(&name))?;
    }
    let tv = p.targets.signed.version.get();
    write_atomic(
        &umd.join(format!("{tv}.targets.json")),
        &p.targets_bytes,
        0o644,
    )?;
    let n = place_targets(
        &p.targets.signed,
        None,
        &layout.targets(),
        &usb.join("targets"),
    )?;
    let exp = &repo.cfg.expires;
    let snap: Written = meta::resign_snapshot(layout, &p, &online, exp, Freshness::Offline).await?;
    let ts = meta::write_snapshot_and_timestamp(
        layout,
        root,
        &snap,
        &online,
        exp,
        Freshness::Offline,
        &umd,
    )
    .await?;
    // Then the online repository moves above the copy's versions, so a box that applied the
    // copy follows the online repository again (and an older copy is refused as a rollback).
    let osnap: Written = meta::resign_snapshot(layout, &p, &online, exp, Freshness::Online).await?;
    let ots = meta::write_snapshot_and_timestamp(
        layout,
        root,
        &osnap,
        &online,
        exp,
        Freshness::Online,
        &layout.metadata(),
    )
    .await?;
    println!(
        "exported to {}: root v1..v{}, targets v{tv}, {n} target file(s), snapshot v{} and timestamp v{ts} valid for {}",
        usb.display(),
        root.version,
        snap.version,
        exp.offline
    );
    println!(
        "online repository re-signed above it: snapshot v{}, timestamp v{ots}",
        osnap.version
    );
    repo.mirror(None)
}

async fn status(dir: &Path) -> Result<()> {
    let repo = Repo::open(dir, &[])?;
    let p = Published::load(&repo.layout)?;
    let root = &p.root.signed;
    let now = jiff::Timestamp::now();
    let left = |t: &jiff::Timestamp| {
        let d = t.as_second() - now.as_second();
        if d < 0 {
            "EXPIRED".to_owned()
        } else {
            format!("{}d {}h left", d / 86_400, d % 86_400 / 3_600)
        }
    };
    println!("repository {}", dir.display());
    println!(
        "root      v{:<12} expires {} ({}), {} root version(s) kept",
        root.version,
        root.expires,
        left(&root.expires),
        meta::root_versions(&repo.layout)?.len()
    );
    for (name, v, e) in [
        (
            "targets",
            p.targets.signed.version,
            &p.targets.signed.expires,
        ),
        (
            "snapshot",
            p.snapshot.signed.version,
            &p.snapshot.signed.expires,
        ),
        (
            "timestamp",
            p.timestamp.signed.version,
            &p.timestamp.signed.expires,
        ),
    ] {
        println!("{name:<9} v{v:<12} expires {e} ({})", left(e));
    }
    // Key files in keys/ (one that cannot be read is just not listed as held).
    let mut held = Vec::new();
    if let Ok(rd) = std::fs::read_dir(repo.layout.keys()) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "pem")
                && let Ok(k) = LoadedKey::load(&e.path()).await
            {
                held.push(k);
            }
        }
    }
    println!("keys:");
    let mut roles_of: Vec<(String, Vec<String>)> = Vec::new();
    for (role, rk) in &root.roles {
        for id in &rk.keyids {
            let id = hex::encode(id);
            match roles_of.iter_mut().find(|(i, _)| *i == id) {
                Some((_, r)) => r.push(role.to_string()),
                None => roles_of.push((id, vec![role.to_string()])),
            }
        }
    }
    roles_of.sort();
    for (id, mut roles) in roles_of {
        roles.sort();
        let file = held
            .iter()
            .find(|k| keys::id_in(root, k).is_some_and(|k| k == id))
            .map(|k| keys::file_name(&k.path))
            .unwrap_or_else(|| "(not in keys/)".into());
        println!("  {id}  {:<28} {file}", roles.join(","));
    }
    for (name, th) in [
        ("root", &root.roles[&RoleType::Root].threshold),
        ("targets", &root.roles[&RoleType::Targets].threshold),
    ] {
        println!("  {name} threshold {th}");
    }
    println!("bundles:");
    let mut any = false;
    for (name, t) in &p.targets.signed.targets {
        if let Some((id, v)) = valise_bundle::parse_manifest_target(name.raw()) {
            any = true;
            let custom = serde_json::Value::Object(t.custom.clone().into_iter().collect());
            let prefix = format!("{}/", valise_bundle::target_prefix(&id, v));
            let (n, bytes) = p
                .targets
                .signed
                .targets
                .iter()
                .filter(|(n, _)| n.raw().starts_with(&prefix))
                .fold((0, 0), |(n, b), (_, t)| (n + 1, b + t.length));
            let wave = TargetCustom::from_custom(&custom)
                .map(|c| describe_wave(&c.wave))
                .unwrap_or_else(|| "no custom.valise".into());
            println!("  {id} v{v}: {n} file(s), {bytes} bytes, wave: {wave}");
        }
    }
    if !any {
        println!("  (none)");
    }
    println!("CRL: {}", published_crl(&repo.layout, &p.targets.signed));
    if repo.layout.pending_signed().exists() {
        println!("staged: signed, not published (`repo publish`)");
    } else if repo.layout.pending().exists() {
        println!("staged: changes not signed yet (`repo sign`)");
    }
    if let Some(w) = &repo.cfg.webroot {
        println!("web root: {}", w.display());
    }
    println!("box check: {}", box_check(&repo.layout)?);
    Ok(())
}

/// The published `pki/crl.pem`: its number and how long until its nextUpdate, after which
/// boxes refuse every server (publish a new one well before).
fn published_crl(layout: &Layout, t: &Targets) -> String {
    let Some((_, target)) = t
        .targets
        .iter()
        .find(|(n, _)| n.raw() == valise_bundle::CRL_TARGET)
    else {
        return "none published (boxes use the CRL they were enrolled with)".into();
    };
    let read = target_path(
        valise_bundle::CRL_TARGET,
        &hex::encode(&*target.hashes.sha256),
    )
    .ok()
    .and_then(|rel| std::fs::read(layout.targets().join(rel)).ok());
    let Some(pem) = read else {
        return "published, unreadable here".into();
    };
    match valise_pki::crl::inspect("CRL", &String::from_utf8_lossy(&pem)) {
        Ok(c) => {
            let number = c.number.map_or_else(|| "-".into(), |n| n.to_string());
            let left = c.next_update.map_or_else(
                || "no nextUpdate".into(),
                |t| {
                    let h = (t - time::OffsetDateTime::now_utc()).whole_hours();
                    if h < 0 {
                        format!("EXPIRED {t}")
                    } else {
                        format!("next update {t} ({}d {}h left)", h / 24, h % 24)
                    }
                },
            );
            format!("number {number}, {} revoked, {left}", c.revoked)
        }
        Err(e) => format!("published, not readable: {e}"),
    }
}

/// What a box that only trusts root v1 makes of the published tree now: valise-tuf's refresh
/// (root chain, timestamp, snapshot, targets) from a fresh store.
fn box_check(layout: &Layout) -> Result<String> {
    use valise_tuf::fetch::DirFetch;
    use valise_tuf::store::MetadataStore;
    let tmp = tempfile::tempdir()?;
    let store = MetadataStore::open(tmp.path())?;
    store.write(
        "root",
        &std::fs::read(layout.metadata().join("1.root.json"))?,
    )?;
    let updater = valise_tuf::updater::Updater::new(DirFetch::new(layout.published()), store);
    Ok(match updater.refresh(time::OffsetDateTime::now_utc()) {
        Ok(set) => format!(
            "ok (a box trusting root v1 reaches root v{} and targets v{})",
            set.root().common().version,
            set.targets("targets").map_or(0, |t| t.common().version)
        ),
        Err(e) => format!("REFUSED: {e}"),
    })
}
