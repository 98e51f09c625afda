//! Test fixtures: a TUF repository of model bundles written into a directory (signed with
//! valise-tuf's fixed-seed test keys, `tuf.rs` below is that crate's `tests/common/mod.rs`,
//! included, not copied), and a box: a model store whose `current` is a factory slot, the
//! updater's state directory with the trusted root, and a configuration.
#![allow(dead_code)]

#[cfg(feature = "test-hooks")]
pub mod daemon;
#[path = "../../../valise-tuf/tests/common/mod.rs"]
pub mod tuf;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tuf::{Keys, sha256_hex, sign};
use valise_bundle::{Engine, Manifest, TargetCustom, Wave};
use valise_models::{Catalog, FileEntry, ModelEntry, ModelKind, Source};

/// 2026-12-04T00:00:00Z, the time of every test unless a test moves the clock.
pub fn now() -> OffsetDateTime {
    tuf::now()
}

pub fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// RFC 3339 as TUF writes it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A model entry with files `(name, bytes)` under `<id>/`.
pub fn model(id: &str, files: &[(&str, &[u8])]) -> ModelEntry {
    ModelEntry {
        id: id.into(),
        kind: ModelKind::Translation,
        family: "test".into(),
        languages: vec!["pt".into(), "en".into()],
        runtime: "onnxruntime".into(),
        precision: "int8".into(),
        licence: "MIT".into(),
        provenance: "test".into(),
        default: false,
        source: Source {
            packages: vec!["pypi:x==1".into()],
            recipe: "test".into(),
        },
        files: files
            .iter()
            .map(|(n, b)| FileEntry {
                path: format!("{id}/{n}"),
                size: b.len() as u64,
                sha256: sha256_hex(b),
            })
            .collect(),
    }
}

/// A bundle with its file contents (path inside the bundle → bytes).
#[derive(Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub contents: BTreeMap<String, Vec<u8>>,
    pub wave: Wave,
}

/// Bundle `id` at `version`: one model `<id>-model` with two files whose contents depend on
/// the version, an acceptance input, and one translate acceptance case.
pub fn bundle(id: &str, version: u64) -> Bundle {
    let model_id = format!("{id}-model");
    let w = format!("weights of {id} v{version}")
        .repeat(100)
        .into_bytes();
    let v = format!("vocabulary of {id} v{version}").into_bytes();
    let input = b"acceptance input".to_vec();
    let m = model(&model_id, &[("model.onnx", &w), ("vocab.spm", &v)]);
    let mut contents = BTreeMap::new();
    contents.insert(format!("{model_id}/model.onnx"), w);
    contents.insert(format!("{model_id}/vocab.spm"), v);
    contents.insert("acceptance/input.txt".into(), input.clone());
    let manifest = Manifest {
        bundle: valise_bundle::BundleInfo {
            id: id.into(),
            version,
            engines: vec![Engine::Translate],
            description: String::new(),
        },
        models: vec![m],
        files: vec![FileEntry {
            path: "acceptance/input.txt".into(),
            size: input.len() as u64,
            sha256: sha256_hex(&input),
        }],
        acceptance: vec![valise_bundle::AcceptanceCase::Translate {
            name: "bom-dia".into(),
            model: model_id,
            text: "Bom dia.".into(),
            expect_exact: "Good morning.".into(),
            timeout_s: None,
        }],
    };
    manifest.validate().expect("valid test bundle");
    Bundle {
        manifest,
        contents,
        wave: Wave::default(),
    }
}

fn target_entry(bytes: &[u8], custom: Option<Value>) -> Value {
    let mut t = json!({"length": bytes.len(), "hashes": {"sha256": sha256_hex(bytes)}});
    if let Some(c) = custom {
        t["custom"] = c;
    }
    t
}

/// A repository directory (`metadata/`, `targets/`) with consistent snapshots.
pub struct Repo {
    pub dir: PathBuf,
    pub keys: Keys,
    pub root: Vec<u8>,
    version: u64,
    root_version: u64,
}

impl Repo {
    pub fn new(dir: &Path) -> Self {
        Self::with_root_expiry(dir, tuf::FUTURE)
    }

    /// A repository whose first root expires at `expires`.
    pub fn with_root_expiry(dir: &Path, expires: &str) -> Self {
        let keys = Keys::new();
        let root = sign(
            &tuf::default_root(&keys, 1, expires),
            &[&keys.root[0], &keys.root[1]],
        );
        fs::create_dir_all(dir.join("metadata")).expect("mkdir");
        fs::create_dir_all(dir.join("targets")).expect("mkdir");
        fs::write(dir.join("metadata/1.root.json"), &root).expect("root");
        Repo {
            dir: dir.to_path_buf(),
            keys,
            root,
            version: 0,
            root_version: 1,
        }
    }

    /// Publishes root N+1 (same keys, valid until `expires`), signed by 2 of 3 root keys.
    pub fn rotate_root(&mut self, expires: &str) {
        self.root_version += 1;
        let v = self.root_version;
        let bytes = sign(
            &tuf::default_root(&self.keys, v, expires),
            &[&self.keys.root[1], &self.keys.root[2]],
        );
        fs::write(self.dir.join(format!("metadata/{v}.root.json")), bytes).expect("root");
    }

    fn put_target(&self, name: &str, bytes: &[u8]) {
        let (d, base) = name.rsplit_once('/').expect("dir/name");
        let dir = self.dir.join("targets").join(d);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(format!("{}.{base}", sha256_hex(bytes))), bytes).expect("target");
    }

    /// Publishes a new version of targets, snapshot and timestamp listing `bundles`; the
    /// timestamp expires at `ts_expires`, the others in 2030. Signed "now" (plus one second
    /// per publication, so versions grow).
    pub fn publish_with(&mut self, bundles: &[Bundle], ts_expires: &str) -> u64 {
        let at = now() + time::Duration::seconds(self.version as i64 + 1);
        self.publish_at(bundles, ts_expires, at)
    }

    /// Like `publish_with`, signed at `signed_at`: timestamp and snapshot versions are the
    /// unix seconds of their signing, as `valisectl repo` writes them (DESIGN.md §2.4), so the
    /// box's time floor can rise to that time.
    pub fn publish_at(
        &mut self,
        bundles: &[Bundle],
        ts_expires: &str,
        signed_at: OffsetDateTime,
    ) -> u64 {
        self.version += 1;
        let v = self.version;
        let sv = signed_at.unix_timestamp() as u64;
        let mut targets = serde_json::Map::new();
        for b in bundles {
            let m = &b.manifest;
            for (path, bytes) in &b.contents {
                let name = m.file_target(path);
                self.put_target(&name, bytes);
                targets.insert(name, target_entry(bytes, None));
            }
            let text = m.to_toml().into_bytes();
            let custom = TargetCustom {
                bundle: m.bundle.id.clone(),
                version: m.bundle.version,
                engines: m.bundle.engines.clone(),
                wave: b.wave.clone(),
            };
            self.put_target(&m.manifest_target(), &text);
            targets.insert(
                m.manifest_target(),
                target_entry(&text, Some(custom.to_custom())),
            );
        }
        let targets_signed = json!({
            "_type": "targets", "spec_version": "1.0.31", "version": v,
            "expires": tuf::FUTURE, "targets": targets,
        });
        let t = sign(&targets_signed, &[&self.keys.targets]);
        let s = sign(
            &tuf::snapshot(sv, tuf::FUTURE, &[("targets", v)]),
            &[&self.keys.snapshot],
        );
        let ts = sign(
            &tuf::timestamp(sv, ts_expires, sv, Some(&s)),
            &[&self.keys.timestamp],
        );
        let md = self.dir.join("metadata");
        fs::write(md.join(format!("{v}.targets.json")), t).expect("targets");
        fs::write(md.join(format!("{sv}.snapshot.json")), s).expect("snapshot");
        fs::write(md.join("timestamp.json"), ts).expect("timestamp");
        v
    }

    pub fn publish(&mut self, bundles: &[Bundle]) -> u64 {
        self.publish_with(bundles, tuf::FUTURE)
    }

    /// The path of a published target file (to tamper with it).
    pub fn target_path(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let (d, base) = name.rsplit_once('/').expect("dir/name");
        self.dir
            .join("targets")
            .join(d)
            .join(format!("{}.{base}", sha256_hex(bytes)))
    }
}

/// The factory model every box starts with.
pub fn factory_model() -> (ModelEntry, Vec<u8>) {
    let b = b"factory weights".repeat(50);
    (model("factory-model", &[("w.bin", &b)]), b)
}

/// A box: store with `current -> slots/factory`, state dir with the trusted root.
pub struct TestBox {
    pub tmp: tempfile::TempDir,
    pub store: PathBuf,
    pub state: PathBuf,
    pub repo: Repo,
}

impl TestBox {
    pub fn new() -> Self {
        Self::with_root_expiry(tuf::FUTURE)
    }

    /// A box whose trusted root (the one shipped in its image) expires at `expires`.
    pub fn with_root_expiry(expires: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = tmp.path().join("models");
        let slot = store.join("slots/factory");
        let (m, bytes) = factory_model();
        fs::create_dir_all(slot.join("factory-model")).expect("mkdir");
        fs::write(slot.join("factory-model/w.bin"), &bytes).expect("w");
        fs::write(
            slot.join("manifest.toml"),
            Catalog { models: vec![m] }.to_toml(),
        )
        .expect("manifest");
        std::os::unix::fs::symlink("slots/factory", store.join("current")).expect("current");
        let state = tmp.path().join("state");
        let repo = Repo::with_root_expiry(&tmp.path().join("usb"), expires);
        fs::create_dir_all(state.join("metadata")).expect("mkdir");
        fs::write(state.join("metadata/root.json"), &repo.root).expect("root");
        TestBox {
            store,
            state,
            repo,
            tmp,
        }
    }

    pub fn config(&self) -> valise_update::Config {
        valise_update::Config {
            socket: self.tmp.path().join("update.sock"),
            model_store: self.store.clone(),
            state_dir: self.state.clone(),
            identity_dir: self.tmp.path().join("no-identity"),
            // The floor starts a week before the tests' "now".
            initial_time_floor: (now() - days(7)).unix_timestamp(),
            ..valise_update::Config::default()
        }
    }

    pub fn current(&self) -> String {
        valise_update::switch::current_slot(&self.store).expect("current")
    }

    /// Checks `current` completely and returns its bundles.
    pub fn check_current(&self) -> BTreeMap<String, u64> {
        let slot = self.store.join("slots").join(self.current());
        valise_update::stage::check_slot(&slot).expect("current slot is whole")
    }

    pub fn slots(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.store.join("slots"))
            .expect("slots")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Engines that restart and pass every acceptance case (the flow around them is under test).
#[derive(Debug, Clone, Default)]
pub struct OkEngines;

impl valise_update::engines::EngineControl for OkEngines {
    fn restart(&self, _: &[Engine]) -> Result<(), String> {
        Ok(())
    }
    fn accept(&self, _: &Manifest, _: &Path) -> Result<(), String> {
        Ok(())
    }
}
