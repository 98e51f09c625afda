//! TUF-level attacks, one test per attack, on a box that already trusts a good repository
//! state (version 1, target `models/fr-en/model.bin`). Each test puts the attacker's files
//! where the box fetches from and runs one update (refresh, `find_target`, `download_target`
//! of the target the new state lists), then asserts: the error names the rule that refused
//! it; the metadata store holds exactly what it held before (or, where legitimate new
//! metadata came first in the same update, the attacked role's file is unchanged); nothing
//! is at the download destination and no `.part` is left (slow retrieval keeps its partial
//! `.part` for a resume, below the listed length, by design).
//!
//! Not repeated here (proved at the same level, the updater over a fetcher, elsewhere):
//! rollback of the timestamp, and a newer timestamp listing an older snapshot
//! (`updater.rs::rollback_refused_and_store_unchanged`); freeze with the clock set back
//! behind the time floor (`updater.rs::expired_timestamp_refused_when_clock_goes_back`);
//! 5.3.11 seen in the store (`updater.rs::timestamp_key_rotation_deletes_stored_timestamp_and_snapshot`);
//! a target longer than listed and a wrong sha512 beside a right sha256
//! (`targets.rs::at_most_length_bytes_read`, `every_known_hash_must_match`); a delegated role
//! signed by a key its delegator did not name (`delegations.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use valise_tuf::Error;
use valise_tuf::fetch::http::{HttpFetch, HttpLimits};
use valise_tuf::fetch::{DirFetch, Fetch, FetchError};
use valise_tuf::store::MetadataStore;
use valise_tuf::updater::{UpdateError, Updater};

const TARGET: &str = "models/fr-en/model.bin";

/// The repository's keys: root 2-of-3, timestamp 2-of-2 (so that "below threshold" means
/// something), snapshot and targets 1 each.
struct K {
    k: Keys,
    ts2: Signer,
}

impl K {
    fn new() -> Self {
        K {
            k: Keys::new(),
            ts2: Signer::new(7),
        }
    }

    fn root_signed(&self, version: u64, ts: &[&Signer]) -> Value {
        let r: Vec<&Signer> = self.k.root.iter().collect();
        self.root_for(version, &r, ts, &self.k.snapshot)
    }

    /// A root listing these root keys (threshold 2), timestamp keys (all needed), snapshot
    /// key and the targets key.
    fn root_for(&self, version: u64, root_keys: &[&Signer], ts: &[&Signer], sn: &Signer) -> Value {
        root(
            version,
            FUTURE,
            &[
                ("root", root_keys, 2),
                ("timestamp", ts, ts.len() as u64),
                ("snapshot", &[sn], 1),
                ("targets", &[&self.k.targets], 1),
            ],
        )
    }

    fn root1(&self) -> Vec<u8> {
        sign(
            &self.root_signed(1, &[&self.k.timestamp, &self.ts2]),
            &[&self.k.root[0], &self.k.root[1]],
        )
    }

    fn ts_keys(&self) -> [&Signer; 2] {
        [&self.k.timestamp, &self.ts2]
    }
}

/// One repository state, signed: version `v` of timestamp, snapshot and targets (the
/// snapshot lists targets with length and hashes), the target holding `content`.
struct State {
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
    v: u64,
    content: Vec<u8>,
}

fn targets_signed(v: u64, content: &[u8]) -> Value {
    targets_with(v, &[(TARGET, content)], None)
}

fn snapshot_signed(v: u64, targets_v: u64, targets: &[u8]) -> Value {
    let mut s = snapshot(v, FUTURE, &[("targets", targets_v)]);
    s["meta"]["targets.json"]["length"] = json!(targets.len());
    s["meta"]["targets.json"]["hashes"] = json!({"sha256": sha256_hex(targets)});
    s
}

fn state(k: &K, v: u64, content: &[u8]) -> State {
    let targets = sign(&targets_signed(v, content), &[&k.k.targets]);
    let snapshot = sign(&snapshot_signed(v, v, &targets), &[&k.k.snapshot]);
    let timestamp = sign(&timestamp(v, FUTURE, v, Some(&snapshot)), &k.ts_keys());
    State {
        timestamp,
        snapshot,
        targets,
        v,
        content: content.to_vec(),
    }
}

struct Post {
    tmp: tempfile::TempDir,
    store: MetadataStore,
}

impl Post {
    /// A box trusting root v1 that refreshed state v1 (nothing downloaded yet).
    fn new(k: &K) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(tmp.path().join("store")).unwrap();
        let root = k.root1();
        store.write("root", &root).unwrap();
        fs::create_dir_all(tmp.path().join("dl")).unwrap();
        let b = Post { tmp, store };
        b.put("1.root.json", &root);
        b.publish(&state(k, 1, b"model v1"));
        b.updater().refresh(now()).expect("state v1");
        b
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        let m = self.repo().join("metadata");
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join(name), bytes).unwrap();
    }

    fn publish(&self, s: &State) {
        self.put("timestamp.json", &s.timestamp);
        self.put(&format!("{}.snapshot.json", s.v), &s.snapshot);
        self.put(&format!("{}.targets.json", s.v), &s.targets);
        write_targets(&self.repo(), &[(TARGET, &s.content)], true);
    }

    fn updater(&self) -> Updater<DirFetch> {
        Updater::new(DirFetch::new(self.repo()), self.store.clone())
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dl/model.bin")
    }

    /// One update over `fetch`: refresh, find, download.
    fn update_with<F: Fetch>(&self, fetch: F) -> Result<(), UpdateError> {
        let u = Updater::new(fetch, self.store.clone());
        let mut set = u.refresh(now())?;
        let t = u
            .find_target(&mut set, TARGET)?
            .ok_or_else(|| UpdateError::Tuf(Error::Workflow("not found".into())))?;
        u.download_target(&t, &self.dest())
    }

    fn update(&self) -> Result<(), UpdateError> {
        self.update_with(DirFetch::new(self.repo()))
    }

    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(self.store.dir())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn file(&self, name: &str) -> Vec<u8> {
        fs::read(self.store.dir().join(name)).unwrap()
    }

    /// The store holds exactly `before`, and nothing was downloaded.
    fn assert_unchanged(&self, before: &[(String, Vec<u8>)]) {
        assert_eq!(self.stored(), before, "metadata store changed");
        self.assert_nothing_downloaded();
    }

    /// A timestamp v`version` listing snapshot v`snapshot_version` (these bytes), signed by
    /// `signers`, at `timestamp.json`.
    fn put_timestamp(
        &self,
        version: u64,
        expires: &str,
        snapshot_version: u64,
        snapshot: &[u8],
        signers: &[&Signer],
    ) {
        let ts = timestamp(version, expires, snapshot_version, Some(snapshot));
        self.put("timestamp.json", &sign(&ts, signers));
    }

    /// Nothing downloaded: the download directory is empty.
    fn assert_nothing_downloaded(&self) {
        let left: Vec<_> = fs::read_dir(self.tmp.path().join("dl"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// The store before, and the update's error.
fn attack(b: &Post) -> (Vec<(String, Vec<u8>)>, UpdateError) {
    let before = b.stored();
    let e = b.update().expect_err("the attack must be refused");
    (before, e)
}

#[test]
fn good_update_downloads_the_new_model() {
    // The twin of every attack below: the same box takes a good state v2.
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, b"model v2"));
    b.update().unwrap();
    assert_eq!(fs::read(b.dest()).unwrap(), b"model v2");
}

#[test]
fn attack_unsigned_metadata() {
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    let mut ts: Value = serde_json::from_slice(&s.timestamp).unwrap();
    ts["signatures"] = json!([]);
    b.put("timestamp.json", &serde_json::to_vec(&ts).unwrap());
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Threshold { role, valid: 0, .. }) if role == "timestamp"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_arbitrary_target_bytes() {
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    // Same length, other bytes, at the URL the metadata names.
    let url = b.repo().join(format!(
        "targets/models/fr-en/{}.model.bin",
        sha256_hex(b"model v2")
    ));
    fs::write(&url, b"MALWARE!").unwrap();
    let e = b.update().unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Hash { role, .. }) if role == TARGET),
        "{e}"
    );
    // The metadata were legitimate and are kept; the bytes are not.
    assert_eq!(b.file("targets.json"), s.targets);
    b.assert_nothing_downloaded();
}

#[test]
fn attack_signatures_below_threshold() {
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    let ts = timestamp(2, FUTURE, 2, Some(&s.snapshot));
    b.put("timestamp.json", &sign(&ts, &[&k.k.timestamp]));
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Threshold { role, valid: 1, threshold: 2 }) if role == "timestamp"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_one_signature_counted_twice() {
    // One timestamp key's signature repeated to reach the threshold of 2.
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    let ts = timestamp(2, FUTURE, 2, Some(&s.snapshot));
    let id = k.k.timestamp.keyid.clone();
    b.put(
        "timestamp.json",
        &sign_as(&ts, &[(id.clone(), &k.k.timestamp), (id, &k.k.timestamp)]),
    );
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Format(why)) if why.contains("two signatures")),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_one_key_under_two_keyids() {
    // Root v2 (signed by the old threshold) names one new key twice for the root role,
    // threshold 2, and carries that key's signature under both ids: it counts once, so
    // root v2 does not meet its own threshold.
    let k = K::new();
    let b = Post::new(&k);
    let evil = Signer::new(40);
    let mut r2 = k.root_signed(2, &k.ts_keys());
    let alias = format!("{}-alias", evil.keyid);
    r2["keys"][&evil.keyid] = evil.key_json();
    r2["keys"][&alias] = evil.key_json();
    r2["roles"]["root"] = json!({"keyids": [evil.keyid, alias], "threshold": 2});
    b.put(
        "2.root.json",
        &sign_as(
            &r2,
            &[
                (k.k.root[0].keyid.clone(), &k.k.root[0]),
                (k.k.root[1].keyid.clone(), &k.k.root[1]),
                (evil.keyid.clone(), &evil),
                (alias, &evil),
            ],
        ),
    );
    b.publish(&state(&k, 2, b"model v2"));
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Threshold { role, valid: 1, threshold: 2 }) if role == "root"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_rollback_snapshot() {
    // A new timestamp (v3) listing snapshot v2, and at 2.snapshot.json the box's own
    // snapshot v1 replayed: its version is not the one listed.
    let k = K::new();
    let b = Post::new(&k);
    let old = state(&k, 1, b"model v1");
    let ts = timestamp(3, FUTURE, 2, Some(&old.snapshot));
    b.put("timestamp.json", &sign(&ts, &k.ts_keys()));
    b.put("2.snapshot.json", &old.snapshot);
    let before = b.stored();
    let e = b.update().unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::BadVersion { role, got: 1, .. }) if role == "snapshot"),
        "{e}"
    );
    let after = b.stored();
    assert_eq!(after[1], before[1], "snapshot.json unchanged");
    assert_eq!(b.file("snapshot.json"), old.snapshot);
    b.assert_nothing_downloaded();
}

#[test]
fn attack_rollback_targets() {
    // The box trusts state v2; a snapshot v3 (signed by a stolen snapshot key) lists
    // targets v1 again.
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, b"model v2"));
    b.updater().refresh(now()).unwrap();
    let v1 = state(&k, 1, b"model v1");
    let sn = sign(&snapshot_signed(3, 1, &v1.targets), &[&k.k.snapshot]);
    b.put("3.snapshot.json", &sn);
    b.put_timestamp(3, FUTURE, 3, &sn, &k.ts_keys());
    let before = b.stored();
    let e = b.update().unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::BadVersion { role, got: 1, .. }) if role == "targets.json"),
        "{e}"
    );
    let after = b.stored();
    for f in ["snapshot.json", "targets.json"] {
        let pick = |v: &[(String, Vec<u8>)]| v.iter().find(|(n, _)| n == f).cloned();
        assert_eq!(pick(&after), pick(&before), "{f}");
    }
    b.assert_nothing_downloaded();
}

#[test]
fn attack_freeze_expired_timestamp() {
    // A correctly signed newer timestamp that expired before the box's clock.
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    b.put_timestamp(2, PAST, 2, &s.snapshot, &k.ts_keys());
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Expired { role, .. }) if role == "timestamp"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_mix_and_match() {
    // Snapshot v2 lists targets v2's hash; at 2.targets.json the attacker puts another
    // targets v2, correctly signed (say from a repository branch) but listing other bytes.
    let k = K::new();
    let b = Post::new(&k);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    // Same length as the listed one, so that the hash decides.
    let other = sign(&targets_signed(2, b"model v9"), &[&k.k.targets]);
    assert_eq!(other.len(), s.targets.len());
    b.put("2.targets.json", &other);
    write_targets(&b.repo(), &[(TARGET, b"model v9")], true);
    let before_targets = b.file("targets.json");
    let e = b.update().unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Hash { role, .. }) if role == "targets"),
        "{e}"
    );
    assert_eq!(b.file("targets.json"), before_targets);
    b.assert_nothing_downloaded();
}

/// A repository server over plain HTTP that serves `root`, except that `endless` gets an
/// endless body and `slow` a body of 10 bytes every 50 ms, both without Content-Length.
fn misbehaving_server(root: PathBuf, endless: &'static str, slow: &'static str) -> String {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let root = root.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split(' ').nth(1).unwrap_or("/").to_owned();
                if path == endless || path == slow {
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
                    let (chunk, every): (&[u8], _) = if path == endless {
                        (&[b'x'; 4096], Duration::ZERO)
                    } else {
                        (b"0123456789", Duration::from_millis(50))
                    };
                    while s.write_all(chunk).is_ok() {
                        std::thread::sleep(every);
                    }
                    return;
                }
                let file = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(valise_tuf::names::unquote)
                    .collect::<Option<Vec<String>>>()
                    .and_then(|segs| fs::read(segs.iter().fold(root, |p, s| p.join(s))).ok());
                let _ = match file {
                    Some(b) => s
                        .write_all(
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                                .as_bytes(),
                        )
                        .and_then(|()| s.write_all(&b)),
                    None => s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
                };
            });
        }
    });
    base
}

fn http(base: &str) -> HttpFetch {
    let limits = HttpLimits {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(30),
        metadata_timeout: Duration::from_secs(30),
        min_bytes_per_window: 1000,
        window: Duration::from_millis(300),
        grace: Duration::ZERO,
    };
    HttpFetch::plain_http(
        &format!("{base}/metadata/"),
        &format!("{base}/targets/"),
        limits,
    )
    .unwrap()
}

#[test]
fn attack_endless_metadata() {
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, b"model v2"));
    let base = misbehaving_server(b.repo(), "/metadata/timestamp.json", "");
    let before = b.stored();
    let e = b.update_with(http(&base)).unwrap_err();
    assert!(
        matches!(
            &e,
            UpdateError::Fetch(FetchError::TooLarge { limit: 16_384, .. })
        ),
        "{e}"
    );
    b.assert_unchanged(&before);
    // Twin: the same server and limits serve the good state.
    b.update_with(http(&misbehaving_server(b.repo(), "", "")))
        .unwrap();
    assert_eq!(fs::read(b.dest()).unwrap(), b"model v2");
}

#[test]
fn attack_endless_target() {
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, b"model v2"));
    let url = format!(
        "/targets/models/fr-en/{}.model.bin",
        sha256_hex(b"model v2")
    );
    let base = misbehaving_server(b.repo(), Box::leak(url.into_boxed_str()), "");
    let e = b.update_with(http(&base)).unwrap_err();
    assert!(
        matches!(
            &e,
            UpdateError::Fetch(FetchError::TooLarge { limit: 8, .. })
        ),
        "{e}"
    );
    b.assert_nothing_downloaded();
}

#[test]
fn attack_slow_retrieval() {
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, &[7u8; 100_000]));
    let url = format!(
        "/targets/models/fr-en/{}.model.bin",
        sha256_hex(&[7u8; 100_000])
    );
    let base = misbehaving_server(b.repo(), "", Box::leak(url.into_boxed_str()));
    let t0 = std::time::Instant::now();
    let e = b.update_with(http(&base)).unwrap_err();
    assert!(
        matches!(&e, UpdateError::Fetch(FetchError::TooSlow { .. })),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(!b.dest().exists());
    // The partial bytes stay for a resume, far below the listed length.
    let part = fs::read(b.tmp.path().join("dl/model.bin.part")).unwrap();
    assert!(part.len() < 1000, "{}", part.len());
}

#[test]
fn attack_slow_metadata() {
    let k = K::new();
    let b = Post::new(&k);
    b.publish(&state(&k, 2, b"model v2"));
    let base = misbehaving_server(b.repo(), "", "/metadata/2.snapshot.json");
    let e = b.update_with(http(&base)).unwrap_err();
    assert!(
        matches!(&e, UpdateError::Fetch(FetchError::TooSlow { .. })),
        "{e}"
    );
    assert_eq!(b.file("snapshot.json"), state(&k, 1, b"model v1").snapshot);
    b.assert_nothing_downloaded();
}

#[test]
fn attack_path_traversal_in_target_names() {
    // A targets role (compromised key) lists `../../escape.txt`: the URL segments `..` are
    // refused before any request, and the local name is one flat file in the target dir.
    let k = K::new();
    let b = Post::new(&k);
    let name = "../../escape.txt";
    let tg = sign(&targets_with(2, &[(name, b"boo")], None), &[&k.k.targets]);
    let sn = sign(&snapshot_signed(2, 2, &tg), &[&k.k.snapshot]);
    b.put("2.targets.json", &tg);
    b.put("2.snapshot.json", &sn);
    b.put_timestamp(2, FUTURE, 2, &sn, &k.ts_keys());
    let u = b.updater();
    let mut set = u.refresh(now()).unwrap();
    let t = u.find_target(&mut set, name).unwrap().unwrap();
    let local = valise_tuf::names::target_file(name).unwrap();
    assert_eq!(local, "..%2F..%2Fescape.txt");
    let e = u
        .download_target(&t, &b.tmp.path().join("dl").join(&local))
        .unwrap_err();
    assert!(
        matches!(&e, UpdateError::Fetch(FetchError::Refused { .. })),
        "{e}"
    );
    b.assert_nothing_downloaded();
    assert!(!b.tmp.path().join("escape.txt").exists());
    assert!(!b.tmp.path().parent().unwrap().join("escape.txt").exists());
}

/// Root v2 with new root keys (seeds 50–52, threshold 2), signed by `signers`.
fn rotated_root(k: &K, signers: &[&Signer]) -> Vec<u8> {
    let new = [Signer::new(50), Signer::new(51), Signer::new(52)];
    let nr: Vec<&Signer> = new.iter().collect();
    sign(&k.root_for(2, &nr, &k.ts_keys(), &k.k.snapshot), signers)
}

#[test]
fn root_rotation_done_right_is_followed() {
    let k = K::new();
    let b = Post::new(&k);
    let (n0, n1) = (Signer::new(50), Signer::new(51));
    let r2 = rotated_root(&k, &[&k.k.root[0], &k.k.root[2], &n0, &n1]);
    b.put("2.root.json", &r2);
    b.publish(&state(&k, 2, b"model v2"));
    b.update().unwrap();
    assert_eq!(b.file("root.json"), r2);
    assert_eq!(fs::read(b.dest()).unwrap(), b"model v2");
}

/// Root v2 signed by `signers` (old keys 0–2, new keys 50–51) is refused for want of one
/// valid signature, and nothing changes.
fn rotation_refused(signers: impl Fn(&K, &Signer, &Signer) -> Vec<u8>) {
    let k = K::new();
    let b = Post::new(&k);
    let (n0, n1) = (Signer::new(50), Signer::new(51));
    b.put("2.root.json", &signers(&k, &n0, &n1));
    b.publish(&state(&k, 2, b"model v2"));
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Threshold { role, valid: 1, threshold: 2 }) if role == "root"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

#[test]
fn attack_root_rotation_without_old_threshold() {
    rotation_refused(|k, n0, n1| rotated_root(k, &[&k.k.root[0], n0, n1]));
}

#[test]
fn attack_root_rotation_without_new_threshold() {
    rotation_refused(|k, n0, _| rotated_root(k, &[&k.k.root[0], &k.k.root[1], n0]));
}

#[test]
fn attack_revoked_key() {
    // Root v2 replaces timestamp key 4 by key 8 (key 4 leaked). The box follows; then the
    // holder of key 4 signs a timestamp v3 with it (and key 7): refused.
    let k = K::new();
    let b = Post::new(&k);
    let t8 = Signer::new(8);
    let r: Vec<&Signer> = k.k.root.iter().collect();
    let r2 = sign(
        &k.root_for(2, &r, &[&t8, &k.ts2], &k.k.snapshot),
        &[&k.k.root[0], &k.k.root[1]],
    );
    b.put("2.root.json", &r2);
    let s = state(&k, 2, b"model v2");
    b.publish(&s);
    b.put_timestamp(2, FUTURE, 2, &s.snapshot, &[&t8, &k.ts2]);
    b.update().expect("rotation followed");
    fs::remove_file(b.dest()).unwrap();

    let s3 = state(&k, 3, b"model v3");
    b.publish(&s3);
    b.put_timestamp(3, FUTURE, 3, &s3.snapshot, &[&k.k.timestamp, &k.ts2]);
    let (before, e) = attack(&b);
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Threshold { role, valid: 1, threshold: 2 }) if role == "timestamp"),
        "{e}"
    );
    b.assert_unchanged(&before);
}

/// A box fast-forwarded: it accepted timestamp and snapshot v999 signed with stolen
/// (still trusted) timestamp and snapshot keys.
fn fast_forwarded(k: &K, b: &Post) {
    let v1 = state(k, 1, b"model v1");
    let sn = sign(&snapshot_signed(999, 1, &v1.targets), &[&k.k.snapshot]);
    b.put("999.snapshot.json", &sn);
    b.put_timestamp(999, FUTURE, 999, &sn, &k.ts_keys());
    b.updater()
        .refresh(now())
        .expect("the stolen keys are trusted");
}

#[test]
fn fast_forward_recovery_after_online_key_rotation() {
    let k = K::new();
    let b = Post::new(&k);
    fast_forwarded(&k, &b);
    // Without a key rotation, the repository's honest v2 looks like a rollback.
    b.publish(&state(&k, 2, b"model v2"));
    let e = b.update().unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::BadVersion { role, got: 2, .. }) if role == "timestamp"),
        "{e}"
    );
    // Root v2 rotates the timestamp and snapshot keys: the box drops its v999 files
    // (spec 5.3.11) and takes the honest state.
    let (t8, s9) = (Signer::new(8), Signer::new(9));
    let r: Vec<&Signer> = k.k.root.iter().collect();
    b.put(
        "2.root.json",
        &sign(
            &k.root_for(2, &r, &[&t8], &s9),
            &[&k.k.root[0], &k.k.root[1]],
        ),
    );
    let tg = sign(&targets_signed(2, b"model v2"), &[&k.k.targets]);
    let sn = sign(&snapshot_signed(2, 2, &tg), &[&s9]);
    b.put("2.targets.json", &tg);
    b.put("2.snapshot.json", &sn);
    b.put_timestamp(2, FUTURE, 2, &sn, &[&t8]);
    b.update().expect("recovered");
    assert_eq!(fs::read(b.dest()).unwrap(), b"model v2");
    assert_eq!(b.file("snapshot.json"), sn);
}
