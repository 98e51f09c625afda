//! A small test repository: Ed25519 keys from fixed seeds (ring), metadata built as JSON
//! values and signed over valise-tuf's canonical encoding (itself checked against
//! securesystemslib in the unit tests and in `interop.rs`).
#![allow(dead_code)]

use ring::digest;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use time::OffsetDateTime;
use valise_tuf::canonical;

/// The reference time of every test: 2026-12-04T00:00:00Z.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_342_400).expect("valid")
}

pub const FUTURE: &str = "2030-01-01T00:00:00Z";
pub const PAST: &str = "2026-12-03T23:59:59Z";
/// Exactly the reference time: expired (expiry ≤ reference).
pub const NOW: &str = "2026-12-04T00:00:00Z";

/// An Ed25519 key from a fixed seed, with its TUF key id.
#[derive(Debug)]
pub struct Signer {
    kp: Ed25519KeyPair,
    pub keyid: String,
}

impl Signer {
    pub fn new(seed: u8) -> Self {
        let kp = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("seed");
        let mut s = Signer {
            kp,
            keyid: String::new(),
        };
        // The key id as securesystemslib computes it (sha256 of the canonical key); the
        // client never recomputes it, any string works.
        s.keyid = hex::encode(digest::digest(
            &digest::SHA256,
            &canonical::encode(&s.key_json()).expect("canonical"),
        ));
        s
    }

    pub fn key_json(&self) -> Value {
        json!({
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": {"public": hex::encode(self.kp.public_key().as_ref())}
        })
    }

    pub fn sig(&self, signed: &Value) -> String {
        hex::encode(self.kp.sign(&canonical::encode(signed).expect("canonical")))
    }
}

/// `{"signed": signed, "signatures": [...]}` signed by `signers` under their own key ids.
pub fn sign(signed: &Value, signers: &[&Signer]) -> Vec<u8> {
    let sigs: Vec<(String, &Signer)> = signers.iter().map(|s| (s.keyid.clone(), *s)).collect();
    sign_as(signed, &sigs)
}

/// Like `sign`, with the key id of each signature chosen by the test.
pub fn sign_as(signed: &Value, sigs: &[(String, &Signer)]) -> Vec<u8> {
    let signatures: Vec<Value> = sigs
        .iter()
        .map(|(id, s)| json!({"keyid": id, "sig": s.sig(signed)}))
        .collect();
    serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": signatures})).expect("json")
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, b))
}

pub fn sha512_hex(b: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA512, b))
}

/// Keys of the test repository: root 2-of-3, one key each for the other roles.
#[derive(Debug)]
pub struct Keys {
    pub root: [Signer; 3],
    pub timestamp: Signer,
    pub snapshot: Signer,
    pub targets: Signer,
}

impl Keys {
    pub fn new() -> Self {
        Keys {
            root: [Signer::new(1), Signer::new(2), Signer::new(3)],
            timestamp: Signer::new(4),
            snapshot: Signer::new(5),
            targets: Signer::new(6),
        }
    }
}

/// A root's signed part listing, for each top-level role, its keys and threshold.
pub fn root(version: u64, expires: &str, roles: &[(&str, &[&Signer], u64)]) -> Value {
    let mut keys = serde_json::Map::new();
    let mut role_map = serde_json::Map::new();
    for (name, signers, threshold) in roles {
        for s in *signers {
            keys.insert(s.keyid.clone(), s.key_json());
        }
        let ids: Vec<&str> = signers.iter().map(|s| s.keyid.as_str()).collect();
        role_map.insert(
            (*name).to_owned(),
            json!({"keyids": ids, "threshold": threshold}),
        );
    }
    json!({
        "_type": "root", "spec_version": "1.0.31", "version": version, "expires": expires,
        "consistent_snapshot": true, "keys": keys, "roles": role_map,
    })
}

/// The default root of `keys`.
pub fn default_root(keys: &Keys, version: u64, expires: &str) -> Value {
    let r: Vec<&Signer> = keys.root.iter().collect();
    root(
        version,
        expires,
        &[
            ("root", &r, 2),
            ("timestamp", &[&keys.timestamp], 1),
            ("snapshot", &[&keys.snapshot], 1),
            ("targets", &[&keys.targets], 1),
        ],
    )
}

/// A timestamp listing snapshot `snapshot_version`, with length and sha256 of
/// `snapshot_bytes` when given.
pub fn timestamp(
    version: u64,
    expires: &str,
    snapshot_version: u64,
    snapshot_bytes: Option<&[u8]>,
) -> Value {
    let mut meta = json!({"version": snapshot_version});
    if let Some(b) = snapshot_bytes {
        meta["length"] = json!(b.len());
        meta["hashes"] = json!({"sha256": sha256_hex(b)});
    }
    json!({
        "_type": "timestamp", "spec_version": "1.0.31", "version": version, "expires": expires,
        "meta": {"snapshot.json": meta},
    })
}

/// A snapshot listing `(role, version)` pairs (no lengths or hashes).
pub fn snapshot(version: u64, expires: &str, roles: &[(&str, u64)]) -> Value {
    let mut meta = serde_json::Map::new();
    for (name, v) in roles {
        meta.insert(format!("{name}.json"), json!({"version": v}));
    }
    json!({
        "_type": "snapshot", "spec_version": "1.0.31", "version": version, "expires": expires,
        "meta": meta,
    })
}

/// A targets role with one target file `a.txt` ("hello").
pub fn targets(version: u64, expires: &str) -> Value {
    json!({
        "_type": "targets", "spec_version": "1.0.31", "version": version, "expires": expires,
        "targets": {"a.txt": {"length": 5, "hashes": {"sha256": sha256_hex(b"hello")}}},
    })
}

/// The signed bytes of a whole consistent repository: (root, timestamp, snapshot, targets).
pub struct Repo {
    pub root: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub targets: Vec<u8>,
}

/// Root v1, targets v1, snapshot v1 (listing targets v1), timestamp v1 (listing snapshot v1
/// with its length and hash); all valid until 2030.
pub fn repo(keys: &Keys) -> Repo {
    let root_b = sign(
        &default_root(keys, 1, FUTURE),
        &[&keys.root[0], &keys.root[1]],
    );
    let targets_b = sign(&targets(1, FUTURE), &[&keys.targets]);
    let snapshot_b = sign(&snapshot(1, FUTURE, &[("targets", 1)]), &[&keys.snapshot]);
    let timestamp_b = sign(
        &timestamp(1, FUTURE, 1, Some(&snapshot_b)),
        &[&keys.timestamp],
    );
    Repo {
        root: root_b,
        timestamp: timestamp_b,
        snapshot: snapshot_b,
        targets: targets_b,
    }
}

/// `signed` with an `x-pad` field sized so that the signed envelope is exactly `len` bytes.
pub fn signed_of_len(signed: &Value, signers: &[&Signer], len: usize) -> Vec<u8> {
    let mut v = signed.clone();
    v["x-pad"] = json!("");
    let base = sign(&v, signers).len();
    v["x-pad"] = json!("x".repeat(len - base));
    let b = sign(&v, signers);
    assert_eq!(b.len(), len);
    b
}

/// A targets role's signed part with the given targets (path, content) and delegations.
pub fn targets_with(version: u64, files: &[(&str, &[u8])], delegations: Option<Value>) -> Value {
    let mut t = serde_json::Map::new();
    for (path, content) in files {
        t.insert(
            (*path).to_owned(),
            json!({"length": content.len(), "hashes": {"sha256": sha256_hex(content)}}),
        );
    }
    let mut v = json!({
        "_type": "targets", "spec_version": "1.0.31", "version": version, "expires": FUTURE,
        "targets": t,
    });
    if let Some(d) = delegations {
        v["delegations"] = d;
    }
    v
}

/// One entry of `delegations.roles`: name, its one key, `paths`, terminating.
pub struct Deleg<'a> {
    pub name: &'a str,
    pub key: &'a Signer,
    pub paths: &'a [&'a str],
    pub terminating: bool,
}

impl<'a> Deleg<'a> {
    /// A non-terminating delegation of `paths` to `name`.
    pub fn to(name: &'a str, key: &'a Signer, paths: &'a [&'a str]) -> Self {
        Deleg {
            name,
            key,
            paths,
            terminating: false,
        }
    }
}

/// `delegations` with `roles` in this order (threshold 1 each).
pub fn delegations(roles: &[Deleg]) -> Value {
    let mut keys = serde_json::Map::new();
    let list: Vec<Value> = roles
        .iter()
        .map(|r| {
            keys.insert(r.key.keyid.clone(), r.key.key_json());
            json!({"name": r.name, "keyids": [r.key.keyid], "threshold": 1,
                   "terminating": r.terminating, "paths": r.paths})
        })
        .collect();
    json!({"keys": keys, "roles": list})
}

/// Writes a repository under `dir/metadata/` and returns root v1's bytes: root v1 (default
/// keys), `N.<role>.json` for each (role name, signed part, signer), a snapshot v1 listing
/// them at their versions (no hashes) and a timestamp v1 listing the snapshot with hashes.
/// Role names are percent-encoded in file names the way the client asks for them, then
/// decoded (as a web server would), so `1.<decoded name>.json` is the file on disk.
pub fn write_repo(
    dir: &std::path::Path,
    keys: &Keys,
    roles: &[(&str, &Value, &Signer)],
) -> Vec<u8> {
    write_repo_opts(dir, keys, roles, true)
}

/// `write_repo`, with `consistent_snapshot` chosen: when false, `<role>.json` and
/// `snapshot.json` without version prefixes.
pub fn write_repo_opts(
    dir: &std::path::Path,
    keys: &Keys,
    roles: &[(&str, &Value, &Signer)],
    consistent: bool,
) -> Vec<u8> {
    let m = dir.join("metadata");
    std::fs::create_dir_all(&m).expect("mkdir");
    let mut root = default_root(keys, 1, FUTURE);
    root["consistent_snapshot"] = json!(consistent);
    let root_b = sign(&root, &[&keys.root[0], &keys.root[1]]);
    std::fs::write(m.join("1.root.json"), &root_b).expect("write");
    let file = |v: u64, name: &str| {
        if consistent {
            format!("{v}.{name}.json")
        } else {
            format!("{name}.json")
        }
    };
    let mut listed = Vec::new();
    for (name, signed, signer) in roles {
        let v = signed["version"].as_u64().expect("version");
        std::fs::write(m.join(file(v, name)), sign(signed, &[signer])).expect("write");
        listed.push((*name, v));
    }
    let snapshot_b = sign(&snapshot(1, FUTURE, &listed), &[&keys.snapshot]);
    std::fs::write(m.join(file(1, "snapshot")), &snapshot_b).expect("write");
    let ts = sign(
        &timestamp(1, FUTURE, 1, Some(&snapshot_b)),
        &[&keys.timestamp],
    );
    std::fs::write(m.join("timestamp.json"), &ts).expect("write");
    root_b
}

/// Writes target files under `dir/targets/`: `d/<sha256>.<name>` when `consistent`, else
/// `d/<name>`.
pub fn write_targets(dir: &std::path::Path, files: &[(&str, &[u8])], consistent: bool) {
    for (path, content) in files {
        let (d, base) = path.rsplit_once('/').unwrap_or(("", path));
        let base = if consistent {
            format!("{}.{base}", sha256_hex(content))
        } else {
            (*base).to_owned()
        };
        let full = dir.join("targets").join(d).join(base);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }
}

/// A fetcher that logs each request (`metadata/<name>`, `targets/<path>`) before passing it on.
#[derive(Debug, Clone)]
pub struct Recording<F> {
    pub inner: F,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl<F> Recording<F> {
    pub fn new(inner: F) -> Self {
        Recording {
            inner,
            log: Default::default(),
        }
    }

    /// The requests so far, and forget them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

impl<F: valise_tuf::fetch::Fetch> valise_tuf::fetch::Fetch for Recording<F> {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, valise_tuf::fetch::FetchError> {
        self.log
            .lock()
            .expect("lock")
            .push(format!("metadata/{name}"));
        self.inner.metadata(name, max_len)
    }

    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn valise_tuf::fetch::Sink,
    ) -> Result<(), valise_tuf::fetch::FetchError> {
        let entry = if from > 0 {
            format!("targets/{path} from {from}")
        } else {
            format!("targets/{path}")
        };
        self.log.lock().expect("lock").push(entry);
        self.inner.target_into(path, length, from, sink)
    }
}
