//! `valisectl repo ...` through the real binary, in temporary directories, with every
//! result checked the way a box checks it: valise-tuf's `Updater::refresh` over a `DirFetch`
//! of the published tree (or a USB copy), its `TrustedSet`, and the bytes of each target at
//! the path a box fetches. One test serves the repository with nginx over mutual TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use time::{Duration, OffsetDateTime};
use valise_bundle::{Manifest, TargetCustom, Wave};
use valise_tuf::TrustedSet;
use valise_tuf::fetch::{DirFetch, Fetch};
use valise_tuf::schema::{Metadata, Root, Signed, Targets};
use valise_tuf::store::MetadataStore;
use valise_tuf::updater::{UpdateError, Updater};

struct World {
    tmp: tempfile::TempDir,
}

const STT: &str = "tiny-stt";
const PTEN: &str = "tiny-pten";

impl World {
    /// A temporary directory with a small dev model store (`store/`, two models) and its
    /// catalog (`catalog.toml`).
    fn new() -> Self {
        let w = World {
            tmp: tempfile::tempdir().unwrap(),
        };
        let slot = w.path("store/slots/a");
        let mut catalog = String::new();
        for (id, kind, langs, files) in [
            (
                STT,
                "speech-to-text",
                r#"["multilingual"]"#,
                vec![("ggml-model.bin", 300_000usize)],
            ),
            (
                PTEN,
                "translation",
                r#"["pt", "en"]"#,
                vec![("model.onnx", 40_000), ("vocab.spm", 1_000)],
            ),
        ] {
            let mut entries = Vec::new();
            for (i, (name, len)) in files.iter().enumerate() {
                let bytes: Vec<u8> = (0..*len)
                    .map(|j| (j * 31 + i * 7 + id.len()) as u8)
                    .collect();
                let rel = format!("{id}/{name}");
                std::fs::create_dir_all(slot.join(id)).unwrap();
                std::fs::write(slot.join(&rel), &bytes).unwrap();
                let sha = valise_models::sha256_file(&slot.join(&rel)).unwrap();
                entries.push(format!(
                    "{{ path = \"{rel}\", size = {len}, sha256 = \"{sha}\" }}"
                ));
            }
            catalog.push_str(&format!(
                r#"
[[model]]
id = "{id}"
kind = "{kind}"
family = "test"
languages = {langs}
runtime = "test"
precision = "int8"
licence = "MIT"
provenance = "made by the test"
source = {{ packages = [], recipe = "" }}
files = [{}]
"#,
                entries.join(", ")
            ));
        }
        std::fs::write(slot.join("manifest.toml"), &catalog).unwrap();
        std::os::unix::fs::symlink("slots/a", w.path("store/current")).unwrap();
        std::fs::write(w.path("catalog.toml"), &catalog).unwrap();
        w
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_valisectl"))
            .args(args)
            .env("VALISE_MODEL_STORE", self.path("store"))
            .env("VALISE_CA_DIR", self.path("ca"))
            .env("VALISE_IDENTITY_DIR", self.path("identity"))
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "valisectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "valisectl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `repo init r` (2 of 3).
    fn init(&self) {
        self.ok(&["repo", "init", "r"]);
    }

    /// `repo sign r --key K...`, which must fail: its error.
    fn sign_fails(&self, keys: &[&str]) -> String {
        let mut args = vec!["repo", "sign", "r"];
        for k in keys {
            args.extend(["--key", k]);
        }
        self.fails(&args)
    }

    /// `repo add-bundle r --catalog catalog.toml ...`, which must succeed.
    fn add(&self, extra: &[&str]) -> String {
        let mut args = vec!["repo", "add-bundle", "r", "--catalog", "catalog.toml"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// add-bundle, sign, publish.
    fn publish_bundle(&self, extra: &[&str]) -> String {
        self.add(extra);
        self.ok(&["repo", "sign", "r"]);
        self.ok(&["repo", "publish", "r"])
    }

    /// A box that trusts root v1 of `r`, with its metadata store in `name`.
    fn new_box(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        let store = MetadataStore::open(&dir).unwrap();
        store
            .write(
                "root",
                &std::fs::read(self.path("r/published/metadata/1.root.json")).unwrap(),
            )
            .unwrap();
        dir
    }

    /// Key id of `keys/<file>` as `repo status` lists it.
    fn key_id(&self, file: &str) -> String {
        let status = self.ok(&["repo", "status", "r"]);
        status
            .lines()
            .find(|l| l.trim_end().ends_with(file))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{file} not in status:\n{status}"))
            .to_owned()
    }
}

/// A box's refresh from a copy of the repository at `source`, at time `at`.
fn refresh(box_dir: &Path, source: &Path, at: OffsetDateTime) -> Result<TrustedSet, UpdateError> {
    Updater::new(DirFetch::new(source), MetadataStore::open(box_dir).unwrap()).refresh(at)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn targets(set: &TrustedSet) -> &Targets {
    &set.targets("targets").unwrap().signed
}

/// Every target of the trusted targets, fetched as a box fetches it (consistent-snapshot
/// path) and checked against its length and hashes: (name, bytes).
fn fetch_all(set: &TrustedSet, fetch: &impl Fetch) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, tf) in &targets(set).targets {
        let path = valise_tuf::names::target_url_path(name, tf, true).unwrap();
        let (_, sha) = tf.hashes.first().unwrap();
        let (dir, base) = name.rsplit_once('/').unwrap();
        assert_eq!(path, format!("{dir}/{sha}.{base}"), "spec 5.7.3 path");
        let bytes = fetch.target(&path, tf.length).unwrap();
        valise_tuf::hashes::verify_length_and_hashes(
            name,
            &bytes,
            Some(tf.length),
            Some(&tf.hashes),
        )
        .unwrap();
        out.push((name.clone(), bytes));
    }
    out
}

fn custom_of(set: &TrustedSet, name: &str) -> TargetCustom {
    let t = &targets(set).targets[name];
    TargetCustom::from_custom(t.custom.as_ref().unwrap()).unwrap()
}

#[test]
fn init_publishes_a_repository_a_box_trusts_and_keys_stay_private() {
    let w = World::new();
    let out = w.ok(&["repo", "init", "r"]);
    assert!(out.contains("2 of 3 root keys"), "{out}");
    assert_eq!(mode(&w.path("r/keys")), 0o700);
    for k in ["root-1", "root-2", "root-3", "online"] {
        let p = w.path(&format!("r/keys/{k}.pem"));
        assert_eq!(mode(&p), 0o600, "{k}");
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }
    // Nothing secret in the published tree.
    for f in walk(&w.path("r/published")) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(!text.contains("PRIVATE KEY"), "{}", f.display());
    }

    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let root = &set.root().signed;
    assert!(root.consistent_snapshot);
    assert_eq!(root.role("root").unwrap().threshold, 2);
    assert_eq!(root.role("root").unwrap().keyids.len(), 3);
    assert_eq!(root.role("targets").unwrap().threshold, 2);
    assert_eq!(root.role("timestamp").unwrap().keyids.len(), 1);
    assert!(targets(&set).targets.is_empty());
    // Default expiries: root 365 d, targets 180 d, snapshot 30 d, timestamp 1 d.
    let days = |e: OffsetDateTime| (e - now()).whole_hours() as f64 / 24.0;
    assert!((days(set.root().common().expires) - 365.0).abs() < 0.1);
    assert!((days(targets(&set).common().expires) - 180.0).abs() < 0.1);
    assert!((days(set.snapshot().unwrap().common().expires) - 30.0).abs() < 0.1);
    assert!((days(set.timestamp().unwrap().common().expires) - 1.0).abs() < 0.1);

    // A second init over it is refused; a threshold above the keys too.
    assert!(w.fails(&["repo", "init", "r"]).contains("already"));
    let err = w.fails(&["repo", "init", "r2", "--root-keys", "2", "--threshold", "3"]);
    assert!(err.contains("threshold"), "{err}");
    let err = w.fails(&["repo", "init", "r3", "--expires", "targets=soon"]);
    assert!(err.contains("duration"), "{err}");
    // Boxes bound their time floor by a 60-day timestamp lifetime: no longer one is issued.
    let err = w.fails(&["repo", "init", "r4", "--expires", "offline=61d"]);
    assert!(err.contains("at most 60 days"), "{err}");
    let err = w.fails(&["repo", "export-offline", "r", "usb", "--expires", "90d"]);
    assert!(err.contains("at most 60 days"), "{err}");
    assert!(!w.path("usb").exists());

    // refresh-timestamp: a newer timestamp the box takes; the snapshot stays.
    let ts1 = set.timestamp().unwrap().common().version;
    let sn1 = set.snapshot().unwrap().common().version;
    w.ok(&["repo", "refresh-timestamp", "r"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert!(set.timestamp().unwrap().common().version > ts1);
    assert_eq!(set.snapshot().unwrap().common().version, sn1);
    // Versions are unix seconds (never below the clock at signing).
    assert!(ts1 as i64 >= now().unix_timestamp() - 600);
}

#[test]
fn configured_expiries_are_what_the_box_sees() {
    let w = World::new();
    w.ok(&[
        "repo",
        "init",
        "r",
        "--expires",
        "targets=90d",
        "--expires",
        "timestamp=6h",
    ]);
    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let hours = |e: OffsetDateTime| (e - now()).whole_minutes() as f64 / 60.0;
    assert!((hours(targets(&set).common().expires) - 90.0 * 24.0).abs() < 1.0);
    assert!((hours(set.timestamp().unwrap().common().expires) - 6.0).abs() < 0.1);
    // A box 7 hours later: timestamp expired (freeze defence), refresh refused.
    let b2 = w.new_box("box2");
    assert!(refresh(&b2, &w.path("r/published"), now() + Duration::hours(7)).is_err());
    // One-off override on sign.
    w.ok(&["repo", "sign", "r", "--expires", "targets=10d"]);
    w.ok(&["repo", "publish", "r"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert!((hours(targets(&set).common().expires) - 240.0).abs() < 1.0);
    // A root re-signed with no change of keys renews its expiry; the box follows.
    w.ok(&["repo", "rotate-root", "r", "--expires", "root=30d"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert_eq!(set.root().common().version, 2);
    assert!((hours(set.root().common().expires) - 30.0 * 24.0).abs() < 1.0);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn published_bundle_files_are_the_store_bytes_at_spec_paths() {
    let w = World::new();
    w.init();
    std::fs::create_dir_all(w.path("acc")).unwrap();
    std::fs::write(w.path("acc/hello.wav"), b"RIFF fake wav bytes").unwrap();
    std::fs::write(
        w.path("acc/cases.toml"),
        format!(
            r#"
[[acceptance]]
name = "hello-en"
engine = "transcribe"
model = "{STT}"
input = "hello.wav"
language = "en"
expect = "hello"
max_wer = 0.2

[[acceptance]]
name = "pt-en"
engine = "translate"
model = "{PTEN}"
text = "Bom dia."
expect_exact = "Good morning."
"#
        ),
    )
    .unwrap();
    let out = w.publish_bundle(&[
        "--model",
        STT,
        PTEN,
        "--bundle",
        "starter",
        "--version",
        "1",
        "--acceptance",
        "acc/cases.toml",
    ]);
    assert!(out.contains("published targets v2"), "{out}");

    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let got = fetch_all(&set, &DirFetch::new(w.path("r/published")));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "bundles/starter/1/acceptance/hello.wav",
            "bundles/starter/1/bundle.toml",
            "bundles/starter/1/tiny-pten/model.onnx",
            "bundles/starter/1/tiny-pten/vocab.spm",
            "bundles/starter/1/tiny-stt/ggml-model.bin",
        ]
    );
    for (name, bytes) in &got {
        let rel = name.strip_prefix("bundles/starter/1/").unwrap();
        if let Some(model_file) = rel.strip_prefix("tiny-") {
            let store = std::fs::read(w.path(&format!("store/current/tiny-{model_file}"))).unwrap();
            assert!(*bytes == store, "{name} differs from the store");
        }
    }
    assert_eq!(got[0].1, b"RIFF fake wav bytes");
    let manifest = Manifest::parse(std::str::from_utf8(&got[1].1).unwrap()).unwrap();
    assert_eq!(manifest.bundle.id, "starter");
    assert_eq!(manifest.models.len(), 2);
    assert_eq!(manifest.files[0].path, "acceptance/hello.wav");
    assert_eq!(manifest.acceptance.len(), 2);
    let custom = custom_of(&set, "bundles/starter/1/bundle.toml");
    assert_eq!(custom.version, 1);
    assert_eq!(custom.wave, Wave::default());
    assert_eq!(custom.engines.len(), 2);
    // Only the manifest carries custom.valise.
    assert_eq!(
        targets(&set)
            .targets
            .values()
            .filter(|t| t.custom.is_some())
            .count(),
        1
    );
    // Nothing staged is left behind, and no temporary file of the writes.
    assert!(!w.path("r/staged").exists());
    for f in walk(&w.path("r")) {
        let name = f.file_name().unwrap().to_string_lossy();
        let tmp = name.starts_with(".tmp-") || (name.starts_with('.') && name.ends_with(".tmp"));
        assert!(!tmp, "{}", f.display());
    }
    let status = w.ok(&["repo", "status", "r"]);
    assert!(status.contains("starter v1: 5 file(s)"), "{status}");
    assert!(status.contains("box check: ok"), "{status}");
    // A tampered target metadata file: status says a box would refuse it.
    let tv = targets(&set).common().version;
    let f = w.path(&format!("r/published/metadata/{tv}.targets.json"));
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replacen("starter", "starteR", 1);
    std::fs::write(&f, text).unwrap();
    let status = w.ok(&["repo", "status", "r"]);
    assert!(status.contains("box check: REFUSED"), "{status}");
}

#[test]
fn misuse_is_refused_with_a_clear_error() {
    let w = World::new();
    w.init();
    w.publish_bundle(&["--model", PTEN, "--version", "2"]);
    let add = |extra: &[&str]| {
        let mut a = vec!["repo", "add-bundle", "r", "--catalog", "catalog.toml"];
        a.extend_from_slice(extra);
        w.fails(&a)
    };
    // A version not above the published one.
    let err = add(&["--model", PTEN, "--version", "2"]);
    assert!(err.contains("not above the published version 2"), "{err}");
    // A model the catalog does not have.
    assert!(add(&["--model", "nope", "--version", "3"]).contains("not in"));
    // A store file whose bytes are not the catalog's.
    std::fs::write(
        w.path("store/current/tiny-pten/vocab.spm"),
        vec![0u8; 1_000],
    )
    .unwrap();
    let err = add(&["--model", PTEN, "--version", "3"]);
    assert!(err.contains("the catalog says"), "{err}");
    // An unknown acceptance field, a missing acceptance input.
    std::fs::write(w.path("bad.toml"), "[[acceptance]]\nname = \"x\"\nengine = \"translate\"\nmodel = \"tiny-pten\"\ntext = \"a\"\nexpect_exact = \"b\"\nfoo = 1\n").unwrap();
    assert!(add(&["--model", STT, "--version", "1", "--acceptance", "bad.toml"]).contains("foo"));
    std::fs::write(
        w.path("bad2.toml"),
        format!("[[acceptance]]\nname = \"x\"\nengine = \"transcribe\"\nmodel = \"{STT}\"\ninput = \"missing.wav\"\nexpect = \"a\"\nmax_wer = 0.1\n"),
    )
    .unwrap();
    assert!(
        add(&[
            "--model",
            STT,
            "--version",
            "1",
            "--acceptance",
            "bad2.toml"
        ])
        .contains("no such file")
    );

    // Signing below the threshold; a key file that is not there.
    w.add(&["--model", STT, "--version", "1"]);
    let err = w.fails(&["repo", "publish", "r"]);
    assert!(err.contains("not signed"), "{err}");
    let err = w.sign_fails(&["r/keys/root-1.pem"]);
    assert!(err.contains("threshold not met"), "{err}");
    assert!(err.contains("needs 2"), "{err}");
    let err = w.sign_fails(&["r/keys/root-1.pem", "r/keys/root-9.pem"]);
    assert!(err.contains("root-9.pem"), "{err}");
    // The online key is not a targets key.
    let err = w.sign_fails(&["r/keys/root-1.pem", "r/keys/online.pem"]);
    assert!(err.contains("not a targets key"), "{err}");
    // A key readable by others is refused.
    std::fs::set_permissions(
        w.path("r/keys/root-2.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = w.fails(&["repo", "sign", "r"]);
    assert!(err.contains("readable by others"), "{err}");
    std::fs::set_permissions(
        w.path("r/keys/root-2.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // Without the online key, nothing is published.
    w.ok(&["repo", "sign", "r"]);
    std::fs::rename(w.path("r/keys/online.pem"), w.path("online.pem")).unwrap();
    let err = w.fails(&["repo", "publish", "r"]);
    assert!(err.contains("online key"), "{err}");
    std::fs::rename(w.path("online.pem"), w.path("r/keys/online.pem")).unwrap();
    w.ok(&["repo", "publish", "r"]);
    // Waves: unknown bundle, bad identity, nobody named.
    assert!(
        w.fails(&["repo", "wave", "r", "nope", "--percent", "5"])
            .contains("no bundle nope")
    );
    assert!(
        w.fails(&["repo", "wave", "r", "tiny-stt", "--boxes", "nobox"])
            .contains("SITE/BOX")
    );
    assert!(
        w.fails(&["repo", "wave", "r", "tiny-stt"])
            .contains("say who")
    );
    // Not a repository.
    assert!(
        w.fails(&["repo", "status", "elsewhere"])
            .contains("not a repository")
    );
    // Still a good repository after all that.
    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert!(
        targets(&set)
            .targets
            .contains_key("bundles/tiny-stt/1/bundle.toml")
    );
}

#[test]
fn wave_lists_exactly_the_boxes_asked() {
    let w = World::new();
    w.init();
    w.publish_bundle(&["--model", PTEN, "--version", "1", "--boxes", "lisbon/box-1"]);
    let b = w.new_box("box");
    let name = "bundles/tiny-pten/1/bundle.toml";
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let wave = custom_of(&set, name).wave;
    assert_eq!(wave.boxes, ["lisbon/box-1"]);
    assert_eq!(wave.percent, 0);
    assert!(wave.includes("lisbon/box-1", "tiny-pten", 1));
    assert!(!wave.includes("lisbon/box-2", "tiny-pten", 1));

    let out = w.ok(&[
        "repo",
        "wave",
        "r",
        "tiny-pten",
        "--boxes",
        "lisbon/box-1,paris/box-7",
        "--percent",
        "10",
    ]);
    assert!(out.contains("sign"), "{out}");
    // Not offered before it is signed and published.
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert_eq!(custom_of(&set, name).wave.boxes, ["lisbon/box-1"]);
    w.ok(&["repo", "sign", "r"]);
    w.ok(&["repo", "publish", "r"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let wave = custom_of(&set, name).wave;
    assert_eq!(wave.boxes, ["lisbon/box-1", "paris/box-7"]);
    assert_eq!(wave.percent, 10);
    // Everyone.
    w.ok(&["repo", "wave", "r", "tiny-pten/1", "--percent", "100"]);
    w.ok(&["repo", "sign", "r"]);
    w.ok(&["repo", "publish", "r"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert_eq!(custom_of(&set, name).wave, Wave::default());
    let status = w.ok(&["repo", "status", "r"]);
    assert!(status.contains("tiny-pten v1: 3 file(s)"), "{status}");
    assert!(status.contains("100% of the fleet"), "{status}");
}

#[test]
fn rotated_root_is_followed_by_a_box_that_trusted_root_v1() {
    let w = World::new();
    w.init();
    w.publish_bundle(&["--model", PTEN, "--version", "1"]);
    let b = w.new_box("box");
    refresh(&b, &w.path("r/published"), now()).unwrap();
    let r3 = w.key_id("root-3.pem");

    // Below the old threshold (only root-1 at hand): refused, nothing written.
    let err = w.fails(&[
        "repo",
        "rotate-root",
        "r",
        "--remove",
        &r3[..12],
        "--add",
        "--key",
        "r/keys/root-1.pem",
    ]);
    assert!(err.contains("threshold not met"), "{err}");
    assert!(!w.path("r/published/metadata/2.root.json").exists());
    assert!(!w.path("r/keys/root-4.pem").exists());
    // Removing a key without adding one leaves 2 keys for threshold 2: allowed; 3 → refused.
    let err = w.fails(&[
        "repo",
        "rotate-root",
        "r",
        "--remove",
        &r3,
        "--threshold",
        "3",
    ]);
    assert!(err.contains("threshold of 3"), "{err}");
    assert!(
        w.fails(&["repo", "rotate-root", "r", "--remove", "abc"])
            .contains("8 hex digits")
    );

    let out = w.ok(&["repo", "rotate-root", "r", "--remove", &r3, "--add"]);
    assert!(out.contains("root v2"), "{out}");
    assert_eq!(mode(&w.path("r/keys/root-4.pem")), 0o600);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let root = &set.root().signed;
    assert_eq!(set.root().common().version, 2);
    let ids = &root.role("root").unwrap().keyids;
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&r3));
    assert!(ids.contains(&w.key_id("root-4.pem")));
    // Signed by the new root's keys (root-1, root-2, root-4) and, for the old root, by the
    // retired root-3 as well.
    let sigs: Vec<&str> = set
        .root()
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect();
    assert_eq!(sigs.len(), 4, "{sigs:?}");
    assert!(sigs.contains(&r3.as_str()));
    // The box keeps the targets it had, re-signed under the new root.
    assert!(
        targets(&set)
            .targets
            .contains_key("bundles/tiny-pten/1/bundle.toml")
    );
    // A fresh box that only knows root v1 walks to v2 as well.
    let b2 = w.new_box("box2");
    assert_eq!(
        refresh(&b2, &w.path("r/published"), now())
            .unwrap()
            .root()
            .common()
            .version,
        2
    );
    // Two of three keys at once (root-1 and root-2 retired, two new ones): the new root's
    // keys alone are below the old threshold, so the retired keys sign for the old root.
    let (r1, r2) = (w.key_id("root-1.pem"), w.key_id("root-2.pem"));
    w.ok(&[
        "repo",
        "rotate-root",
        "r",
        "--remove",
        &r1,
        "--remove",
        &r2,
        "--add",
        "--add",
    ]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    assert_eq!(set.root().common().version, 3);
    let ids = &set.root().signed.role("root").unwrap().keyids;
    assert!(!ids.contains(&r1) && !ids.contains(&r2));
    let sigs: Vec<&str> = set
        .root()
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect();
    assert!(
        sigs.contains(&r1.as_str()) || sigs.contains(&r2.as_str()),
        "{sigs:?}"
    );
    assert_eq!(
        refresh(&b2, &w.path("r/published"), now())
            .unwrap()
            .root()
            .common()
            .version,
        3
    );
    // And the removed key can no longer sign targets.
    let revoked: Vec<PathBuf> = walk(&w.path("r/keys/revoked"));
    assert_eq!(revoked.len(), 3, "{revoked:#?}");
    // New keys never reuse a retired key's file name.
    assert!(w.path("r/keys/root-5.pem").exists() && w.path("r/keys/root-6.pem").exists());
    let err = w.sign_fails(&[revoked[0].to_str().unwrap(), "r/keys/root-4.pem"]);
    assert!(err.contains("not a targets key"), "{err}");
}

#[test]
fn after_revoke_key_the_old_keys_signatures_no_longer_count() {
    let w = World::new();
    w.init();
    // Targets signed by exactly root-1 and root-2 (the threshold).
    w.add(&["--model", PTEN, "--version", "1"]);
    w.ok(&[
        "repo",
        "sign",
        "r",
        "--key",
        "r/keys/root-1.pem",
        "--key",
        "r/keys/root-2.pem",
    ]);
    w.ok(&["repo", "publish", "r"]);
    let b = w.new_box("box");
    let before = refresh(&b, &w.path("r/published"), now()).unwrap();
    let old_targets = std::fs::read(w.path(&format!(
        "r/published/metadata/{}.targets.json",
        targets(&before).common().version
    )))
    .unwrap();
    let r1 = w.key_id("root-1.pem");

    let out = w.ok(&["repo", "revoke-key", "r", &r1]);
    assert!(out.contains("revoked"), "{out}");
    assert!(!w.path("r/keys/root-1.pem").exists());
    assert_eq!(walk(&w.path("r/keys/revoked")).len(), 1);
    let after = refresh(&b, &w.path("r/published"), now()).unwrap();
    let root2 = &after.root().signed;
    assert!(!root2.keys.contains_key(&r1));
    assert_eq!(
        root2.role("root").unwrap().keyids.len(),
        3,
        "a replacement key"
    );
    // The new root carries no signature by the revoked key.
    assert!(after.root().signatures.iter().all(|s| s.keyid != r1));

    // The targets signed by root-1 + root-2: enough under root v1, not under root v2.
    let t = Metadata::<Targets>::from_bytes(&old_targets).unwrap();
    let check = |root: &Root| {
        valise_tuf::verify::verify_threshold(
            "targets",
            root.role("targets").unwrap(),
            &root.keys,
            &t.canonical_signed,
            &t.signatures,
        )
    };
    check(&before.root().signed).unwrap();
    assert!(check(root2).is_err());
    // The revoked key file cannot sign any more.
    let revoked = walk(&w.path("r/keys/revoked"));
    let err = w.sign_fails(&[revoked[0].to_str().unwrap(), "r/keys/root-2.pem"]);
    assert!(err.contains("not a targets key"), "{err}");

    // The online key: a new one signs snapshot and timestamp, the box follows (5.3.11).
    let online = w.key_id("online.pem");
    w.ok(&["repo", "revoke-key", "r", &online]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let new_online = w.key_id("online.pem");
    assert_ne!(online, new_online);
    assert_eq!(
        set.root().signed.role("timestamp").unwrap().keyids,
        std::slice::from_ref(&new_online)
    );
    assert_eq!(set.timestamp().unwrap().signatures[0].keyid, new_online);
    assert_eq!(set.root().common().version, 3);
}

#[test]
fn an_export_outlives_the_online_copy_and_neither_rolls_the_other_back() {
    let w = World::new();
    w.init();
    w.publish_bundle(&["--model", PTEN, "--version", "1"]);
    w.ok(&[
        "repo",
        "rotate-root",
        "r",
        "--remove",
        &w.key_id("root-3.pem"),
        "--add",
    ]);
    assert!(
        w.fails(&["repo", "export-offline", "r", "r"])
            .contains("not empty")
    );
    let out = w.ok(&["repo", "export-offline", "r", "usb"]);
    assert!(out.contains("root v1..v2"), "{out}");
    assert!(w.path("usb/metadata/1.root.json").exists());
    assert!(!w.path("usb/keys").exists());

    // 50 days on: the USB copy still refreshes (and walks both roots), the online one does not.
    let later = now() + Duration::days(50);
    let usb_box = w.new_box("usb-box");
    let set = refresh(&usb_box, &w.path("usb"), later).unwrap();
    assert_eq!(set.root().common().version, 2);
    let got = fetch_all(&set, &DirFetch::new(w.path("usb")));
    assert_eq!(got.len(), 3);
    let online_box = w.new_box("online-box");
    let err = refresh(&online_box, &w.path("r/published"), later).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    // 70 days on, the export is too old as well (60 d by default).
    let old_box = w.new_box("old-box");
    assert!(refresh(&old_box, &w.path("usb"), now() + Duration::days(70)).is_err());

    // The box that applied the USB copy goes on with the online repository (its versions
    // are above the copy's) ...
    let usb_box2 = w.new_box("usb-box2");
    let from_usb = refresh(&usb_box2, &w.path("usb"), now()).unwrap();
    let online = refresh(&usb_box2, &w.path("r/published"), now()).unwrap();
    assert!(
        online.timestamp().unwrap().common().version
            > from_usb.timestamp().unwrap().common().version
    );
    // ... and an older copy is refused once the box has newer metadata: a rollback.
    let err = refresh(&usb_box2, &w.path("usb"), now()).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
    // --expires sets the copy's validity.
    w.ok(&["repo", "export-offline", "r", "usb2", "--expires", "10d"]);
    let b = w.new_box("short");
    assert!(refresh(&b, &w.path("usb2"), now() + Duration::days(11)).is_err());
}

#[test]
fn a_realistic_bundle_from_the_dev_store() {
    // The real bergamot pt→en model of the dev store (scripts/setup), catalog of the repo.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let store = root.join(".valise/models");
    assert!(
        store.join("current").exists(),
        "no dev model store at {} (scripts/setup)",
        store.display()
    );
    let w = World::new();
    w.init();
    let catalog = root.join("models/catalog.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args([
            "repo",
            "add-bundle",
            "r",
            "--model",
            "bergamot-pten-tiny-int8",
            "--version",
            "1",
            "--bundle",
            "pten",
        ])
        .arg("--catalog")
        .arg(&catalog)
        .env("VALISE_MODEL_STORE", &store)
        .current_dir(w.tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.ok(&["repo", "sign", "r"]);
    w.ok(&["repo", "publish", "r"]);
    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let got = fetch_all(&set, &DirFetch::new(w.path("r/published")));
    let real = valise_models::Store::open(&store).unwrap();
    let entry = real.get("bergamot-pten-tiny-int8").unwrap();
    assert_eq!(got.len(), entry.files.len() + 1);
    for f in &entry.files {
        let (_, bytes) = got
            .iter()
            .find(|(n, _)| *n == format!("bundles/pten/1/{}", f.path))
            .unwrap();
        assert_eq!(bytes.len() as u64, f.size);
        assert!(
            *bytes == std::fs::read(real.slot().join(&f.path)).unwrap(),
            "{}",
            f.path
        );
    }
    assert_eq!(
        custom_of(&set, "bundles/pten/1/bundle.toml").engines,
        [valise_bundle::Engine::Translate]
    );
}

#[test]
fn published_to_nginx_and_refreshed_over_mutual_tls() {
    use valise_e2e::nginx::{Nginx, NginxTls};
    use valise_pki::pem;
    use valise_pki::tls::{ClientIdentity, client_config};
    use valise_tuf::fetch::http::{HttpFetch, HttpLimits};

    let w = World::new();
    // The CA, the server certificate and the box's identity from `valisectl ca`/`enroll`.
    w.ok(&["ca", "init", "--name", "Test CA"]);
    w.ok(&[
        "ca",
        "issue",
        "server",
        "--name",
        "127.0.0.1",
        "--out",
        "srv",
    ]);
    w.ok(&[
        "enroll", "request", "--site", "lisbon", "--box", "box-1", "--out", "req.csr",
    ]);
    w.ok(&[
        "ca", "issue", "box", "req.csr", "--site", "lisbon", "--box", "box-1", "--out", "issued",
    ]);

    w.init();
    std::fs::create_dir_all(w.path("www")).unwrap();
    w.add(&["--model", PTEN, "--version", "1"]);
    w.ok(&["repo", "sign", "r"]);
    let out = w.ok(&["repo", "publish", "r", "--to", "www"]);
    assert!(out.contains("to www"), "{out}");
    assert!(!w.path("www/keys").exists());

    let nginx = Nginx::start(&NginxTls {
        cert: w.path("srv/cert.pem"),
        key: w.path("srv/key.pem"),
        client_ca: w.path("ca/ca.pem"),
        crl: None,
        root: Some(w.path("www")),
    });
    let read = |p: &str| std::fs::read_to_string(w.path(p)).unwrap();
    let identity = ClientIdentity {
        chain: pem::certificates("cert", &read("issued/cert.pem")).unwrap(),
        key: pem::private_key("key", &read("identity/pending/key.pem")).unwrap(),
    };
    let ca = pem::certificates("ca", &read("issued/ca.pem")).unwrap();
    let tls = client_config(&identity, &ca, &[]).unwrap();
    let fetch = HttpFetch::new(
        &format!("https://{}/", nginx.addr),
        tls,
        HttpLimits::default(),
    )
    .unwrap();
    let b = w.new_box("box");
    let set = Updater::new(fetch, MetadataStore::open(&b).unwrap())
        .refresh(now())
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    assert!(
        targets(&set)
            .targets
            .contains_key("bundles/tiny-pten/1/bundle.toml")
    );
    let tls = client_config(&identity, &ca, &[]).unwrap();
    let fetch = HttpFetch::new(
        &format!("https://{}/", nginx.addr),
        tls,
        HttpLimits::default(),
    )
    .unwrap();
    let got = fetch_all(&set, &fetch);
    let (_, onnx) = got.iter().find(|(n, _)| n.ends_with("model.onnx")).unwrap();
    assert!(*onnx == std::fs::read(w.path("store/current/tiny-pten/model.onnx")).unwrap());
}

#[test]
fn add_crl_publishes_the_cas_crl_as_a_target_and_refuses_another_cas() {
    let w = World::new();
    w.init();
    w.ok(&["ca", "init", "--name", "Test CA"]);
    w.ok(&["ca", "crl"]);
    let out = w.ok(&["repo", "add-crl", "r", "ca/crl.pem", "--ca", "ca/ca.pem"]);
    assert!(out.contains("staged CRL 1 (0 revoked"), "{out}");
    w.ok(&["repo", "sign", "r"]);
    w.ok(&["repo", "publish", "r"]);
    let b = w.new_box("box");
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let fetched = fetch_all(&set, &DirFetch::new(w.path("r/published")));
    let crl = fetched
        .iter()
        .find(|(n, _)| n == valise_bundle::CRL_TARGET)
        .expect("pki/crl.pem published");
    assert_eq!(crl.1, std::fs::read(w.path("ca/crl.pem")).unwrap());
    // A newer CRL replaces it; the box sees only the newer one.
    w.ok(&["ca", "crl"]);
    w.ok(&["repo", "add-crl", "r", "ca/crl.pem", "--ca", "ca/ca.pem"]);
    w.ok(&["repo", "sign", "r"]);
    w.ok(&["repo", "publish", "r"]);
    let set = refresh(&b, &w.path("r/published"), now()).unwrap();
    let fetched = fetch_all(&set, &DirFetch::new(w.path("r/published")));
    let crls: Vec<_> = fetched
        .iter()
        .filter(|(n, _)| n.starts_with("pki/"))
        .collect();
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].1, std::fs::read(w.path("ca/crl.pem")).unwrap());
    let status = w.ok(&["repo", "status", "r"]);
    assert!(
        status.contains("CRL: number 2, 0 revoked, next update"),
        "{status}"
    );
    // Another CA's CRL, or something that is no CRL, is refused before it is staged.
    std::fs::create_dir_all(w.path("other")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(["ca", "init", "--name", "Test CA"])
        .env("VALISE_CA_DIR", w.path("other/ca"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(["ca", "crl"])
        .env("VALISE_CA_DIR", w.path("other/ca"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = w.fails(&[
        "repo",
        "add-crl",
        "r",
        "other/ca/crl.pem",
        "--ca",
        "ca/ca.pem",
    ]);
    assert!(err.contains("signature is not the CA's"), "{err}");
    let err = w.fails(&["repo", "add-crl", "r", "catalog.toml", "--ca", "ca/ca.pem"]);
    assert!(err.contains("CRL"), "{err}");
}
