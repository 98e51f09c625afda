//! Signing keys: Ed25519, PKCS#8 PEM files (mode 0600) that IT keeps on separate media.
//! tough's `LocalKeySource` reads Ed25519 only as raw DER, so [`PemKey`] decodes the PEM and
//! hands the DER to tough's `parse_keypair`. An HSM would take this place: a `KeySource`
//! whose `Sign` calls PKCS#11 `C_Sign` (README, "Keys in an HSM").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use tough::async_trait;
use tough::key_source::KeySource;
use tough::schema::Root;
use tough::schema::key::Key;
use tough::sign::{Sign, parse_keypair};

use super::files::write_atomic;

/// A PKCS#8 PEM key file.
#[derive(Debug, Clone)]
pub struct PemKey {
    pub path: PathBuf,
}

fn read_der(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("key {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "key {}: readable by others (mode {:o}); `chmod 600` it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("key {}", path.display()))?;
    let der = valise_pki::pem::private_key(&path.display().to_string(), &text)?;
    Ok(der.secret_der().to_vec())
}

#[async_trait]
impl KeySource for PemKey {
    async fn as_sign(
        &self,
    ) -> std::result::Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>>
    {
        let der = read_der(&self.path).map_err(|e| format!("{e:#}"))?;
        Ok(Box::new(parse_keypair(&der)?))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("valisectl never overwrites a key file".into())
    }
}

/// A key file loaded once: its public key and key id.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    pub path: PathBuf,
    pub key: Key,
    /// Hex key id (sha256 of the canonical public key, as tough computes it).
    pub id: String,
}

impl LoadedKey {
    pub async fn load(path: &Path) -> Result<Self> {
        let sign = PemKey {
            path: path.to_path_buf(),
        }
        .as_sign()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = sign.tuf_key();
        let id = hex::encode(key.key_id().context("key id")?);
        Ok(LoadedKey {
            path: path.to_path_buf(),
            key,
            id,
        })
    }

    pub fn source(&self) -> Box<dyn KeySource> {
        Box::new(PemKey {
            path: self.path.clone(),
        })
    }

    /// `root-2.pem (3fa81c0e)`.
    pub fn label(&self) -> String {
        format!("{} ({})", file_name(&self.path), short(&self.id))
    }
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Makes a new Ed25519 key at `path` (PKCS#8 PEM, mode 0600; refuses to overwrite).
pub fn generate(path: &Path) -> Result<()> {
    if path.exists() {
        bail!("{} exists: refusing to overwrite a key", path.display());
    }
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    write_atomic(path, pem.as_bytes(), 0o600)
}

/// The keys to sign with: the files given with `--key`, else every `*.pem` directly in the
/// repository's `keys/` directory.
pub async fn load_keys(keys_dir: &Path, given: &[PathBuf]) -> Result<Vec<LoadedKey>> {
    let paths: Vec<PathBuf> = if given.is_empty() {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(keys_dir) {
            for e in rd {
                let p = e?.path();
                if p.is_file() && p.extension().is_some_and(|x| x == "pem") {
                    v.push(p);
                }
            }
        }
        v.sort();
        v
    } else {
        given.to_vec()
    };
    let mut out = Vec::new();
    for p in &paths {
        out.push(LoadedKey::load(p).await?);
    }
    Ok(out)
}

/// The key id under which `root` lists this key, if it does.
pub fn id_in(root: &Root, key: &LoadedKey) -> Option<String> {
    root.keys
        .iter()
        .find(|(_, k)| **k == key.key)
        .map(|(id, _)| hex::encode(id))
}

/// The next `keys/root-N.pem` never used before (retired keys keep their name, prefixed
/// with their key id, in `keys/revoked/`).
pub fn next_root_key_path(keys_dir: &Path, revoked: &Path) -> PathBuf {
    let retired: Vec<String> = std::fs::read_dir(revoked)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (1..)
        .map(|n| format!("root-{n}.pem"))
        .find(|n| {
            !keys_dir.join(n).exists()
                && !retired
                    .iter()
                    .any(|r| r == n || r.ends_with(&format!("-{n}")))
        })
        .map(|n| keys_dir.join(n))
        .unwrap_or_else(|| keys_dir.join("root-new.pem"))
}
