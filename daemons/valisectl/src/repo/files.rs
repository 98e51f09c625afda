//! The repository directory on disk: layout, `repo.toml` (expiries, web root), `state.toml`
//! (the last snapshot/timestamp version issued), and writes that survive a power cut
//! (temporary file in the same directory, fsync, rename, fsync the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The paths of a repository directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("repo.toml")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.toml")
    }
    pub fn keys(&self) -> PathBuf {
        self.dir.join("keys")
    }
    pub fn revoked(&self) -> PathBuf {
        self.dir.join("keys/revoked")
    }
    pub fn online_key(&self) -> PathBuf {
        self.dir.join("keys/online.pem")
    }
    pub fn staged(&self) -> PathBuf {
        self.dir.join("staged")
    }
    /// The pending (unsigned) targets metadata: `add-bundle` and `wave` edit it.
    pub fn pending(&self) -> PathBuf {
        self.dir.join("staged/targets.json")
    }
    /// The pending targets once `repo sign` signed them.
    pub fn pending_signed(&self) -> PathBuf {
        self.dir.join("staged/targets.signed.json")
    }
    /// Files of staged bundles, by target name.
    pub fn staged_files(&self) -> PathBuf {
        self.dir.join("staged/files")
    }
    pub fn published(&self) -> PathBuf {
        self.dir.join("published")
    }
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("published/metadata")
    }
    pub fn targets(&self) -> PathBuf {
        self.dir.join("published/targets")
    }
}

/// A duration written `365d`, `12h`, `30m` or `90s`.
pub fn parse_duration(s: &str) -> Result<jiff::SignedDuration> {
    let (num, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = num
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("duration {s:?}: write a positive number and d, h, m or s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => bail!("duration {s:?}: the unit must be d, h, m or s"),
    };
    Ok(jiff::SignedDuration::from_secs(n.saturating_mul(secs)))
}

/// How long each role's metadata stays valid once signed (`repo.toml`, `[expires]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expiries {
    /// Root: re-sign (`repo rotate-root` with no change) well before.
    pub root: String,
    /// Targets: `repo sign` again well before.
    pub targets: String,
    /// Snapshot: re-signed by `repo publish` and, when due, by `repo refresh-timestamp`.
    pub snapshot: String,
    /// Timestamp: `repo refresh-timestamp` from cron, at least daily.
    pub timestamp: String,
    /// Timestamp and snapshot of a USB copy (`repo export-offline`).
    pub offline: String,
}

impl Default for Expiries {
    fn default() -> Self {
        Expiries {
            root: "365d".into(),
            targets: "180d".into(),
            snapshot: "30d".into(),
            timestamp: "1d".into(),
            offline: "60d".into(),
        }
    }
}

impl Expiries {
    /// Applies `role=duration` overrides (`--expires targets=90d`).
    pub fn apply(&mut self, overrides: &[String]) -> Result<()> {
        for o in overrides {
            let (role, dur) = o.split_once('=').with_context(|| {
                format!("--expires {o:?}: write ROLE=DURATION, e.g. targets=90d")
            })?;
            let d = parse_duration(dur)?;
            // A box caps how far one refresh may raise its time floor by the longest
            // timestamp lifetime the repository issues (valise-tuf `time.rs`): never more.
            let max = valise_tuf::time::MAX_TIMESTAMP_LIFETIME;
            if matches!(role, "timestamp" | "offline") && d.as_secs() > max.whole_seconds() {
                bail!(
                    "--expires {o:?}: a timestamp may live at most {} days (boxes rely on it \
                     to bound their time floor)",
                    max.whole_days()
                );
            }
            let slot = match role {
                "root" => &mut self.root,
                "targets" => &mut self.targets,
                "snapshot" => &mut self.snapshot,
                "timestamp" => &mut self.timestamp,
                "offline" => &mut self.offline,
                _ => bail!(
                    "--expires {o:?}: the role must be root, targets, snapshot, timestamp or offline"
                ),
            };
            *slot = dur.to_owned();
        }
        Ok(())
    }

    /// The expiry time for a role signed now.
    pub fn at(&self, role: &str) -> Result<jiff::Timestamp> {
        let d = match role {
            "root" => &self.root,
            "targets" => &self.targets,
            "snapshot" => &self.snapshot,
            "timestamp" => &self.timestamp,
            _ => &self.offline,
        };
        let now = jiff::Timestamp::now();
        // Whole seconds: TUF's `expires` has no fraction.
        let now = jiff::Timestamp::from_second(now.as_second())?;
        Ok(now.checked_add(parse_duration(d)?)?)
    }
}

/// `repo.toml`: nothing secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    #[serde(default)]
    pub expires: Expiries,
    /// A directory served by the web server (nginx): every command that changes the
    /// published repository copies it there too, metadata last, `timestamp.json` very last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webroot: Option<PathBuf>,
}

impl RepoConfig {
    pub fn load(layout: &Layout) -> Result<Self> {
        let p = layout.config();
        let text = fs::read_to_string(&p).with_context(|| {
            format!(
                "{}: not a repository (create one with `valisectl repo init`)",
                p.display()
            )
        })?;
        let cfg: RepoConfig = toml::from_str(&text).with_context(|| p.display().to_string())?;
        // Refuse a bad duration now rather than half-way through a command.
        Expiries::default()
            .apply(&[
                format!("root={}", cfg.expires.root),
                format!("targets={}", cfg.expires.targets),
                format!("snapshot={}", cfg.expires.snapshot),
                format!("timestamp={}", cfg.expires.timestamp),
                format!("offline={}", cfg.expires.offline),
            ])
            .with_context(|| p.display().to_string())?;
        Ok(cfg)
    }
}

/// `state.toml`: the highest snapshot or timestamp version issued, online or on a USB copy.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub last_version: u64,
}

/// The next snapshot or timestamp version: unix seconds now, and always above every version
/// issued before (online or exported), so a USB copy and the online repository never roll
/// each other back.
pub fn next_version(layout: &Layout) -> Result<u64> {
    let p = layout.state();
    let state: State = match fs::read_to_string(&p) {
        Ok(t) => toml::from_str(&t).with_context(|| p.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(e).with_context(|| p.display().to_string()),
    };
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
    let v = now.max(state.last_version + 1);
    write_atomic(
        &p,
        toml::to_string(&State { last_version: v })?.as_bytes(),
        0o644,
    )?;
    Ok(v)
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

fn tmp_name(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: no file name", path.display()))?;
    Ok(path.with_file_name(format!(
        ".tmp-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    )))
}

/// Writes `bytes` to `path` with exactly `mode` (`valise_pki::fsutil::write_atomic`: temporary
/// file, fsync, rename, fsync dir), creating the directory first.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    valise_pki::fsutil::write_atomic(path, bytes, mode)
        .with_context(|| format!("write {}", path.display()))
}

/// Copies `from` to `to` (temporary file, fsync, rename), returning its length and sha256
/// computed on the bytes written.
pub fn copy_hashed(from: &Path, to: &Path) -> Result<(u64, [u8; 32])> {
    let dir = to.parent().context("no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = tmp_name(to)?;
    let res = (|| -> std::io::Result<(u64, [u8; 32])> {
        let mut src = File::open(from)?;
        let mut dst = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            dst.write_all(&buf[..n])?;
            len += n as u64;
        }
        dst.sync_all()?;
        fs::rename(&tmp, to)?;
        Ok((len, h.finalize().into()))
    })();
    match res {
        Ok(r) => {
            fsync_dir(dir)?;
            Ok(r)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e).with_context(|| format!("copy {} to {}", from.display(), to.display()))
        }
    }
}

/// Length and sha256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = File::open(path).with_context(|| format!("read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, h.finalize().into()))
}

/// Creates a directory only its owner can enter (the keys).
pub fn private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", dir.display()))
}

/// Copies the published tree into `to` in the order a client can never see half of:
/// targets first, then versioned metadata, `timestamp.json` very last. Files already there
/// with the same bytes are left alone.
pub fn mirror(from: &Path, to: &Path) -> Result<usize> {
    let mut copied = 0;
    let mut later = Vec::new();
    for sub in ["targets", "metadata"] {
        let base = from.join(sub);
        for file in walk(&base)? {
            let rel = file.strip_prefix(from).context("walk")?;
            if rel == Path::new("metadata/timestamp.json") {
                later.push(file.clone());
                continue;
            }
            copied += copy_if_changed(&file, &to.join(rel))?;
        }
    }
    for file in later {
        let rel = file.strip_prefix(from).context("walk")?;
        copied += copy_if_changed(&file, &to.join(rel))?;
    }
    Ok(copied)
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<usize> {
    // Targets are named by their sha256 (consistent snapshots): same name and length is the
    // same file, no need to read gigabytes again. Metadata are small: compare the bytes.
    let content_addressed = to.components().any(|c| c.as_os_str() == "targets");
    let same = if content_addressed {
        matches!((fs::metadata(from), fs::metadata(to)), (Ok(a), Ok(b)) if a.len() == b.len())
    } else {
        matches!((fs::read(from), fs::read(to)), (Ok(a), Ok(b)) if a == b)
    };
    if same {
        return Ok(0);
    }
    copy_hashed(from, to)?;
    Ok(1)
}

/// Regular files under `dir`, sorted, skipping temporary files (`.tmp-…` of [`copy_hashed`],
/// `.<name>.tmp` of [`write_atomic`]: every name starting with a dot).
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", d.display())),
        };
        for e in rd {
            let e = e.with_context(|| format!("read {}", d.display()))?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
