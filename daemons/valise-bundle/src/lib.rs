//! A model bundle: what the central team publishes (`valisectl repo add-bundle`) and what
//! valise-update installs on the box. Data and pure functions only, no I/O, so both sides read
//! and write exactly the same format.
//!
//! A bundle is the files of one or more catalog entries plus acceptance cases, published as
//! TUF targets under one prefix (see `daemons/valise-update/DESIGN.md` §2.5):
//!
//! ```text
//! bundles/<id>/<version>/bundle.toml           this manifest (its target entry carries `custom.valise`)
//! bundles/<id>/<version>/<model-id>/<file>     every model file, as in a store slot
//! bundles/<id>/<version>/acceptance/<file>     acceptance inputs (a short recording, ...)
//! ```
//!
//! `bundle.toml`:
//!
//! ```toml
//! [bundle]
//! id = "pten"                 # [a-z0-9-], at most 64
//! version = 3                 # strictly increasing per id; the box refuses a version it has had
//! engines = ["translate"]     # the engines restarted when it is switched in
//!
//! [[model]]                   # the catalog entry, same schema as models/catalog.toml
//! id = "bergamot-pten-tiny-int8"
//! ...
//!
//! [[file]]                    # other files of the bundle (acceptance inputs)
//! path = "acceptance/jfk.wav"
//! size = 352078
//! sha256 = "…"
//!
//! [[acceptance]]
//! name = "jfk-en"
//! engine = "transcribe"
//! model = "whisper-base-q8_0"
//! input = "acceptance/jfk.wav"
//! language = "en"
//! expect = "And so my fellow Americans…"
//! max_wer = 0.10
//!
//! [[acceptance]]
//! name = "pt-en-1"
//! engine = "translate"
//! model = "bergamot-pten-tiny-int8"
//! text = "Bom dia."
//! expect_exact = "Good morning."
//! ```

pub mod wer;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use valise_models::{FileEntry, ModelEntry};

/// The prefix of every bundle's targets.
pub const TARGETS_PREFIX: &str = "bundles";
/// The name of the manifest inside a bundle.
pub const MANIFEST: &str = "bundle.toml";
/// The key under a target's `custom` object that Valise reads.
pub const CUSTOM_KEY: &str = "valise";
/// Longest accepted `bundle.toml` (it is a TUF target too, so its length is also signed).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;
/// Default per-case deadline when a case does not set one.
pub const DEFAULT_TIMEOUT_S: u64 = 120;
/// The CA's certificate revocation list, published as a target beside the bundles so a box
/// that checks (online or from USB) keeps a CRL that has not expired (valise-update's
/// DESIGN.md §3.4).
pub const CRL_TARGET: &str = "pki/crl.pem";
/// Longest accepted CRL target (a CRL of thousands of revoked certificates is far smaller).
pub const MAX_CRL_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle.toml: {0}")]
    Toml(String),
    #[error("bundle.toml: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> BundleError {
    BundleError::Invalid(msg.into())
}

/// An engine a bundle's models are served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Transcribe,
    Translate,
}

impl Engine {
    /// The systemd unit that runs it.
    pub fn unit(self) -> &'static str {
        match self {
            Engine::Transcribe => "valise-transcribe.service",
            Engine::Translate => "valise-translate.service",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Engine::Transcribe => "transcribe",
            Engine::Translate => "translate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleInfo {
    pub id: String,
    pub version: u64,
    pub engines: Vec<Engine>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One golden input with its expected output, run through the engine after the switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "engine", rename_all = "lowercase", deny_unknown_fields)]
pub enum AcceptanceCase {
    Transcribe {
        name: String,
        model: String,
        /// A `[[file]]` of this bundle.
        input: String,
        /// Forced language (`en`, `fr`, ...); absent: detected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        expect: String,
        /// Highest word error rate accepted, 0..=1, on [`wer::normalize`]d words.
        max_wer: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<u64>,
    },
    Translate {
        name: String,
        model: String,
        text: String,
        expect_exact: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<u64>,
    },
}

impl AcceptanceCase {
    pub fn name(&self) -> &str {
        match self {
            AcceptanceCase::Transcribe { name, .. } | AcceptanceCase::Translate { name, .. } => {
                name
            }
        }
    }
    pub fn model(&self) -> &str {
        match self {
            AcceptanceCase::Transcribe { model, .. } | AcceptanceCase::Translate { model, .. } => {
                model
            }
        }
    }
    pub fn engine(&self) -> Engine {
        match self {
            AcceptanceCase::Transcribe { .. } => Engine::Transcribe,
            AcceptanceCase::Translate { .. } => Engine::Translate,
        }
    }
    pub fn timeout_s(&self) -> u64 {
        match self {
            AcceptanceCase::Transcribe { timeout_s, .. }
            | AcceptanceCase::Translate { timeout_s, .. } => timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
        }
    }
}

/// `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub bundle: BundleInfo,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub acceptance: Vec<AcceptanceCase>,
}

impl Manifest {
    /// Parses and checks a manifest; nothing in a bundle that fails here is ever used.
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(invalid(format!("longer than {MAX_MANIFEST_BYTES} bytes")));
        }
        let m: Manifest = toml::from_str(text).map_err(|e| BundleError::Toml(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a manifest always serializes")
    }

    /// The checks `parse` makes, for a manifest built in code.
    pub fn validate(&self) -> Result<(), BundleError> {
        let b = &self.bundle;
        if !valid_id(&b.id) {
            return Err(invalid(format!(
                "bundle id {:?}: use 1 to 64 of a-z, 0-9, '-'",
                b.id
            )));
        }
        if b.version == 0 {
            return Err(invalid("bundle version must be at least 1"));
        }
        if b.engines.is_empty() {
            return Err(invalid("bundle.engines is empty"));
        }
        if self.models.is_empty() {
            return Err(invalid("a bundle carries at least one model"));
        }
        // The catalog's own checks (ids, plain paths, sha256 shape) on the models.
        valise_models::check_entries(&self.models).map_err(invalid)?;
        let mut paths = BTreeSet::new();
        for m in &self.models {
            for f in &m.files {
                let first = f.path.split('/').next().unwrap_or_default();
                if first != m.id || !f.path.contains('/') {
                    return Err(invalid(format!(
                        "file {:?} of model {} must be under {}/",
                        f.path, m.id, m.id
                    )));
                }
                if !paths.insert(f.path.as_str()) {
                    return Err(invalid(format!("file {:?} listed twice", f.path)));
                }
            }
        }
        for f in &self.files {
            valise_models::check_file(f).map_err(|e| {
                invalid(format!(
                    "{e}: extra files are plain paths under acceptance/"
                ))
            })?;
            if !f.path.starts_with("acceptance/") {
                return Err(invalid(format!(
                    "extra file {:?} must be a plain path under acceptance/",
                    f.path
                )));
            }
            if !paths.insert(f.path.as_str()) {
                return Err(invalid(format!("file {:?} listed twice", f.path)));
            }
        }
        let mut names = BTreeSet::new();
        for case in &self.acceptance {
            if case.name().is_empty() || !names.insert(case.name()) {
                return Err(invalid(format!(
                    "acceptance case name {:?} empty or repeated",
                    case.name()
                )));
            }
            if !b.engines.contains(&case.engine()) {
                return Err(invalid(format!(
                    "acceptance case {} runs on {}, which the bundle does not restart",
                    case.name(),
                    case.engine().name()
                )));
            }
            if !self.models.iter().any(|m| m.id == case.model()) {
                return Err(invalid(format!(
                    "acceptance case {} names model {}, not in the bundle",
                    case.name(),
                    case.model()
                )));
            }
            if let AcceptanceCase::Transcribe { input, max_wer, .. } = case {
                if !self.files.iter().any(|f| &f.path == input) {
                    return Err(invalid(format!(
                        "acceptance case {} reads {input:?}, not a [[file]] of the bundle",
                        case.name()
                    )));
                }
                if !(0.0..=1.0).contains(max_wer) {
                    return Err(invalid(format!(
                        "acceptance case {}: max_wer must be within 0..=1",
                        case.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every file of the bundle, models first, as (path inside the bundle, size, sha256).
    pub fn all_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.models
            .iter()
            .flat_map(|m| m.files.iter())
            .chain(self.files.iter())
    }

    /// The TUF target name of the manifest.
    pub fn manifest_target(&self) -> String {
        manifest_target(&self.bundle.id, self.bundle.version)
    }

    /// The TUF target name of one of the bundle's files.
    pub fn file_target(&self, path: &str) -> String {
        format!(
            "{}/{path}",
            target_prefix(&self.bundle.id, self.bundle.version)
        )
    }
}

/// `bundles/<id>/<version>`.
pub fn target_prefix(id: &str, version: u64) -> String {
    format!("{TARGETS_PREFIX}/{id}/{version}")
}

/// `bundles/<id>/<version>/bundle.toml`.
pub fn manifest_target(id: &str, version: u64) -> String {
    format!("{}/{MANIFEST}", target_prefix(id, version))
}

/// Reads `(id, version)` back from a manifest target name; `None` for any other target.
pub fn parse_manifest_target(name: &str) -> Option<(String, u64)> {
    let mut parts = name.split('/');
    let (Some(TARGETS_PREFIX), Some(id), Some(ver), Some(MANIFEST), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !valid_id(id) || ver.starts_with('0') || !ver.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.to_string(), ver.parse().ok()?))
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What a bundle's manifest target carries in `custom.valise`: enough for the box to decide
/// whether to fetch it at all, before downloading anything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetCustom {
    pub bundle: String,
    pub version: u64,
    pub engines: Vec<Engine>,
    #[serde(default)]
    pub wave: Wave,
}

impl TargetCustom {
    /// Reads `custom.valise` from a target's `custom` object (`None` when absent or malformed:
    /// such a target is not a bundle the box installs).
    pub fn from_custom(custom: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(custom.get(CUSTOM_KEY)?.clone()).ok()
    }
    /// The `custom` object to put on the manifest's target.
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ CUSTOM_KEY: self })
    }
}

/// A rollout wave: the boxes named, plus a stable share of the others.
///
/// Without a wave section a bundle goes to everyone (`percent` defaults to 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Box identities `site/box` offered the bundle whatever the percent.
    #[serde(default)]
    pub boxes: Vec<String>,
    /// Share of all boxes, 0..=100.
    #[serde(default = "all")]
    pub percent: u8,
}

fn all() -> u8 {
    100
}

impl Default for Wave {
    fn default() -> Self {
        Wave {
            boxes: Vec::new(),
            percent: 100,
        }
    }
}

impl Wave {
    /// Whether the box `site/box` is offered `bundle` at `version`.
    ///
    /// The share is decided by a bucket 0..100 from a hash of (box, bundle, version): the same
    /// answer at every check, and a box inside at 10 % stays inside at 50 %.
    pub fn includes(&self, identity: &str, bundle: &str, version: u64) -> bool {
        self.boxes.iter().any(|b| b == identity)
            || bucket(identity, bundle, version) < u16::from(self.percent.min(100))
    }
}

/// The box's bucket 0..100 for a bundle version.
pub fn bucket(identity: &str, bundle: &str, version: u64) -> u16 {
    let h = Sha256::new()
        .chain_update(identity.as_bytes())
        .chain_update([0])
        .chain_update(bundle.as_bytes())
        .chain_update([0])
        .chain_update(version.to_be_bytes())
        .finalize();
    u16::from_be_bytes([h[0], h[1]]) % 100
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "81cfccb75eb8eb4eecf9829be7448c60e3d4abcb5bdb0f00e2c8a726f7ae2f25";

    fn manifest() -> String {
        format!(
            r#"
[bundle]
id = "pten"
version = 3
engines = ["translate", "transcribe"]

[[model]]
id = "bergamot-pten-tiny-int8"
kind = "translation"
family = "bergamot-tiny"
languages = ["pt", "en"]
runtime = "onnxruntime"
precision = "int8"
licence = "MIT"
provenance = "test"
source = {{ packages = ["pypi:x==1"], recipe = "r" }}
files = [{{ path = "bergamot-pten-tiny-int8/model.onnx", size = 10, sha256 = "{SHA}" }}]

[[file]]
path = "acceptance/jfk.wav"
size = 5
sha256 = "{SHA}"

[[acceptance]]
name = "pt-en"
engine = "translate"
model = "bergamot-pten-tiny-int8"
text = "Bom dia."
expect_exact = "Good morning."

[[acceptance]]
name = "jfk"
engine = "transcribe"
model = "bergamot-pten-tiny-int8"
input = "acceptance/jfk.wav"
language = "en"
expect = "ask not"
max_wer = 0.1
timeout_s = 30
"#
        )
    }

    #[test]
    fn parses_round_trips_and_names_targets() {
        let m = Manifest::parse(&manifest()).unwrap();
        assert_eq!(m.bundle.version, 3);
        assert_eq!(m.acceptance.len(), 2);
        assert_eq!(m.acceptance[1].timeout_s(), 30);
        assert_eq!(m.acceptance[0].timeout_s(), DEFAULT_TIMEOUT_S);
        assert_eq!(m.manifest_target(), "bundles/pten/3/bundle.toml");
        assert_eq!(
            m.file_target("acceptance/jfk.wav"),
            "bundles/pten/3/acceptance/jfk.wav"
        );
        assert_eq!(m.all_files().count(), 2);
        assert_eq!(Manifest::parse(&m.to_toml()).unwrap(), m);
        assert_eq!(
            parse_manifest_target("bundles/pten/3/bundle.toml"),
            Some(("pten".into(), 3))
        );
        for bad in [
            "bundles/pten/03/bundle.toml",
            "bundles/../3/bundle.toml",
            "bundles/pten/3/x/bundle.toml",
            "other/pten/3/bundle.toml",
            "bundles/pten/3/model.onnx",
        ] {
            assert_eq!(parse_manifest_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_unsafe_or_inconsistent_manifests() {
        let good = manifest();
        for (from, to, why) in [
            ("id = \"pten\"", "id = \"../x\"", "bundle id"),
            ("version = 3", "version = 0", "at least 1"),
            (
                "bergamot-pten-tiny-int8/model.onnx",
                "other/model.onnx",
                "must be under",
            ),
            (
                "bergamot-pten-tiny-int8/model.onnx",
                "bergamot-pten-tiny-int8/../../etc/passwd",
                "unsafe file path",
            ),
            (
                "path = \"acceptance/jfk.wav\"",
                "path = \"jfk.wav\"",
                "under acceptance/",
            ),
            (
                "path = \"acceptance/jfk.wav\"",
                "path = \"acceptance/../x\"",
                "under acceptance/",
            ),
            (
                "input = \"acceptance/jfk.wav\"",
                "input = \"acceptance/other.wav\"",
                "not a [[file]]",
            ),
            ("max_wer = 0.1", "max_wer = 1.5", "max_wer"),
            ("name = \"jfk\"", "name = \"pt-en\"", "repeated"),
            (
                "engines = [\"translate\", \"transcribe\"]",
                "engines = [\"translate\"]",
                "does not restart",
            ),
            (
                "expect = \"ask not\"",
                "expect = \"ask not\"\nextra = 1",
                "unknown field",
            ),
        ] {
            let text = good.replacen(from, to, 1);
            assert_ne!(text, good, "{from}");
            let err = Manifest::parse(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{to}: {err}");
        }
    }

    #[test]
    fn waves_are_stable_and_grow_monotonically() {
        let named = Wave {
            boxes: vec!["paris/box1".into()],
            percent: 0,
        };
        assert!(named.includes("paris/box1", "pten", 3));
        assert!(!named.includes("paris/box2", "pten", 3));
        let ids: Vec<String> = (0..1000).map(|i| format!("site{i}/box")).collect();
        let mut prev = 0;
        for p in [0u8, 10, 50, 100] {
            let w = Wave {
                boxes: vec![],
                percent: p,
            };
            let inside: Vec<&String> = ids.iter().filter(|i| w.includes(i, "pten", 3)).collect();
            assert!(inside.len() >= prev);
            // roughly the share asked for
            let n = inside.len() as i64;
            assert!((n - i64::from(p) * 10).abs() <= 60, "{p}%: {n}");
            prev = inside.len();
            // every box inside at p stays inside at 100
            assert!(
                inside
                    .iter()
                    .all(|i| Wave::default().includes(i, "pten", 3))
            );
        }
    }

    #[test]
    fn custom_round_trips_and_ignores_other_targets() {
        let c = TargetCustom {
            bundle: "pten".into(),
            version: 3,
            engines: vec![Engine::Translate],
            wave: Wave {
                boxes: vec!["a/b".into()],
                percent: 10,
            },
        };
        assert_eq!(TargetCustom::from_custom(&c.to_custom()), Some(c));
        assert_eq!(
            TargetCustom::from_custom(&serde_json::json!({"other": 1})),
            None
        );
        let no_wave =
            serde_json::json!({"valise": {"bundle": "x", "version": 1, "engines": ["translate"]}});
        assert_eq!(
            TargetCustom::from_custom(&no_wave).unwrap().wave,
            Wave::default()
        );
    }
}
