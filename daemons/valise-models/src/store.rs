use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Catalog, ModelEntry, ModelError, ModelKind};

/// An opened model store slot (what `current` points at).
#[derive(Debug, Clone)]
pub struct Store {
    slot: PathBuf,
    catalog: Catalog,
}

/// Finds the store root: `$VALISE_MODEL_STORE`, else `.valise/models` in the current directory
/// or one of its parents (a developer's checkout after `scripts/setup`), else the box's
/// `/var/lib/valise/models`.
pub fn discover_root() -> Result<PathBuf, ModelError> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os("VALISE_MODEL_STORE") {
        return Ok(PathBuf::from(p));
    }
    looked.push("$VALISE_MODEL_STORE".to_string());
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join(".valise/models");
            if cand.join("current").exists() {
                return Ok(cand);
            }
        }
        looked.push(format!("{}/.valise/models and its parents", cwd.display()));
    }
    let sys = PathBuf::from("/var/lib/valise/models");
    if sys.join("current").exists() {
        return Ok(sys);
    }
    looked.push(sys.display().to_string());
    Err(ModelError::NoStore {
        looked: looked.join(", "),
    })
}

impl Store {
    /// Opens `root/current`, reading its manifest.
    pub fn open(root: &Path) -> Result<Self, ModelError> {
        let slot = root.join("current");
        let slot = std::fs::canonicalize(&slot).map_err(|source| ModelError::Io {
            path: slot.clone(),
            source,
        })?;
        let catalog = Catalog::load(&slot.join("manifest.toml"))?;
        Ok(Self { slot, catalog })
    }

    pub fn discover() -> Result<Self, ModelError> {
        Self::open(&discover_root()?)
    }

    pub fn slot(&self) -> &Path {
        &self.slot
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn get(&self, id: &str) -> Result<&ModelEntry, ModelError> {
        self.catalog
            .get(id)
            .ok_or_else(|| ModelError::UnknownModel {
                id: id.chars().take(64).collect(),
                installed: self
                    .catalog
                    .models
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The model of `kind` marked default, else the first of that kind.
    pub fn default_of(&self, kind: ModelKind) -> Option<&ModelEntry> {
        let mut it = self.catalog.of_kind(kind);
        self.catalog
            .of_kind(kind)
            .find(|m| m.default)
            .or_else(|| it.next())
    }

    /// Path of the `i`-th file of `entry` (paths were checked to be plain when parsed).
    pub fn file(&self, entry: &ModelEntry, i: usize) -> Option<PathBuf> {
        entry.files.get(i).map(|f| self.slot.join(&f.path))
    }

    /// Size check only: cheap enough for every start-up.
    pub fn check_sizes(&self, entry: &ModelEntry) -> Result<(), ModelError> {
        for f in &entry.files {
            let p = self.slot.join(&f.path);
            let len = std::fs::metadata(&p)
                .map_err(|source| ModelError::Io {
                    path: p.clone(),
                    source,
                })?
                .len();
            if len != f.size {
                return Err(ModelError::Damaged {
                    path: p,
                    reason: format!("{len} bytes, manifest says {}", f.size),
                });
            }
        }
        Ok(())
    }

    /// Full check: size and sha256 of every file.
    pub fn verify(&self, entry: &ModelEntry) -> Result<(), ModelError> {
        self.check_sizes(entry)?;
        for f in &entry.files {
            let p = self.slot.join(&f.path);
            let got = sha256_file(&p)?;
            if !got.eq_ignore_ascii_case(&f.sha256) {
                return Err(ModelError::Damaged {
                    path: p,
                    reason: format!("sha256 {got}, manifest says {}", f.sha256),
                });
            }
        }
        Ok(())
    }
}

pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_current_and_detects_damage() {
        let root = tempfile::tempdir().unwrap();
        let slot = root.path().join("slots/a");
        std::fs::create_dir_all(slot.join("m")).unwrap();
        std::fs::write(slot.join("m/w.bin"), b"weights").unwrap();
        let sha = sha256_file(&slot.join("m/w.bin")).unwrap();
        std::fs::write(
            slot.join("manifest.toml"),
            format!(
                r#"[[model]]
id = "m"
kind = "speech-to-text"
family = "whisper"
languages = ["multilingual"]
runtime = "whisper.cpp"
precision = "f16"
licence = "MIT"
provenance = "test"
default = true
source = {{ packages = [], recipe = "" }}
files = [{{ path = "m/w.bin", size = 7, sha256 = "{sha}" }}]
"#
            ),
        )
        .unwrap();
        std::os::unix::fs::symlink("slots/a", root.path().join("current")).unwrap();
        let store = Store::open(root.path()).unwrap();
        let m = store.default_of(ModelKind::SpeechToText).unwrap().clone();
        store.verify(&m).unwrap();
        assert!(store.get("nope").is_err());
        std::fs::write(slot.join("m/w.bin"), b"weightz").unwrap();
        let err = store.verify(&m).unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        std::fs::write(slot.join("m/w.bin"), b"short").unwrap();
        assert!(store.check_sizes(&m).is_err());
    }
}
