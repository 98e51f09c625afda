//! The top-level refresh (spec §5.3–5.6) over repositories written here into a directory
//! and read with `DirFetch`, the way `valisectl update apply DIR` reads a USB copy.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use time::OffsetDateTime;
use valise_tuf::Error;
use valise_tuf::fetch::DirFetch;
use valise_tuf::store::MetadataStore;
use valise_tuf::time::TimeFloor;
use valise_tuf::updater::{UpdateError, Updater};

/// Writes `files` (name, bytes) under `dir/metadata/`.
fn publish(dir: &Path, files: &[(&str, &[u8])]) {
    let m = dir.join("metadata");
    fs::create_dir_all(&m).expect("mkdir");
    for (name, bytes) in files {
        fs::write(m.join(name), bytes).expect("write");
    }
}

/// A repository with the given versions of timestamp (listing snapshot `sv`), snapshot `sv`
/// (listing targets `tv`) and targets `tv`, valid until `ts_expires` for the timestamp.
fn versions(keys: &Keys, ts_v: u64, sv: u64, tv: u64, ts_expires: &str) -> [(String, Vec<u8>); 3] {
    let targets_b = sign(&targets(tv, FUTURE), &[&keys.targets]);
    let snapshot_b = sign(&snapshot(sv, FUTURE, &[("targets", tv)]), &[&keys.snapshot]);
    let ts_b = sign(
        &timestamp(ts_v, ts_expires, sv, Some(&snapshot_b)),
        &[&keys.timestamp],
    );
    [
        ("timestamp.json".into(), ts_b),
        (format!("{sv}.snapshot.json"), snapshot_b),
        (format!("{tv}.targets.json"), targets_b),
    ]
}

fn publish_versions(dir: &Path, files: &[(String, Vec<u8>)]) {
    let v: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    publish(dir, &v);
}

/// A box whose store holds only `root` (as shipped), and a repository dir.
struct Box {
    _tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    store: MetadataStore,
}

impl Box {
    fn new(root: &[u8]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(tmp.path().join("store")).expect("store");
        store.write("root", root).expect("root");
        let repo = tmp.path().join("usb");
        Box {
            repo,
            store,
            _tmp: tmp,
        }
    }

    fn updater(&self) -> Updater<DirFetch> {
        Updater::new(DirFetch::new(&self.repo), self.store.clone())
    }

    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(self.store.dir())
            .expect("dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        v.sort();
        v
    }
}

#[test]
fn good_refresh_stores_each_verified_file() {
    let keys = Keys::new();
    let r = repo(&keys);
    let b = Box::new(&r.root);
    publish(
        &b.repo,
        &[
            ("1.root.json", &r.root),
            ("timestamp.json", &r.timestamp),
            ("1.snapshot.json", &r.snapshot),
            ("1.targets.json", &r.targets),
        ],
    );
    let set = b.updater().refresh(now()).expect("refresh");
    assert_eq!(
        set.targets("targets").expect("targets").signed.targets["a.txt"].length,
        5
    );
    assert_eq!(
        b.stored(),
        [
            ("root.json".into(), r.root.clone()),
            ("snapshot.json".into(), r.snapshot.clone()),
            ("targets.json".into(), r.targets.clone()),
            ("timestamp.json".into(), r.timestamp.clone()),
        ]
    );
    // Newer versions on the stick: fetched and stored (versioned snapshot/targets names).
    let v2 = versions(&keys, 2, 2, 2, FUTURE);
    publish_versions(&b.repo, &v2);
    b.updater().refresh(now()).expect("refresh v2");
    let stored = b.stored();
    assert_eq!(stored[1], ("snapshot.json".into(), v2[1].1.clone()));
    assert_eq!(stored[2], ("targets.json".into(), v2[2].1.clone()));
    assert_eq!(stored[3], ("timestamp.json".into(), v2[0].1.clone()));
}

#[test]
fn no_trusted_root_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(tmp.path()).expect("store");
    let e = Updater::new(DirFetch::new(tmp.path()), store)
        .refresh(now())
        .unwrap_err();
    assert!(matches!(e, UpdateError::NoTrustedRoot), "{e}");
}

#[test]
fn root_rotation_with_timestamp_key_rotation() {
    let keys = Keys::new();
    let r = repo(&keys);
    let b = Box::new(&r.root);
    publish(
        &b.repo,
        &[
            ("1.root.json", &r.root),
            ("timestamp.json", &r.timestamp),
            ("1.snapshot.json", &r.snapshot),
            ("1.targets.json", &r.targets),
        ],
    );
    b.updater().refresh(now()).expect("first refresh");

    // Root v2: root keys 2 and 3 plus a new one (seed 9), new timestamp key (seed 10);
    // signed by a threshold of v1's root keys and of its own.
    let new_root_key = Signer::new(9);
    let new_ts = Signer::new(10);
    let r2_root: Vec<&Signer> = vec![&keys.root[1], &keys.root[2], &new_root_key];
    let root2 = sign(
        &root(
            2,
            FUTURE,
            &[
                ("root", &r2_root, 2),
                ("timestamp", &[&new_ts], 1),
                ("snapshot", &[&keys.snapshot], 1),
                ("targets", &[&keys.targets], 1),
            ],
        ),
        &[&keys.root[0], &keys.root[1], &new_root_key],
    );
    // The new timestamp is signed by the new key only.
    let ts_new = sign(&timestamp(1, FUTURE, 1, Some(&r.snapshot)), &[&new_ts]);
    publish(
        &b.repo,
        &[("2.root.json", &root2), ("timestamp.json", &ts_new)],
    );

    // Capped at zero rotations: the old root stays, and the new timestamp is refused.
    let e = b
        .updater()
        .with_max_root_rotations(0)
        .refresh(now())
        .unwrap_err();
    assert!(
        matches!(e, UpdateError::Tuf(Error::Threshold { .. })),
        "{e}"
    );

    let set = b.updater().refresh(now()).expect("rotation");
    assert_eq!(set.root().common().version, 2);
    let stored = b.stored();
    assert_eq!(stored[0], ("root.json".into(), root2.clone()));
    assert_eq!(stored[3], ("timestamp.json".into(), ts_new.clone()));
}

#[test]
fn timestamp_key_rotation_deletes_stored_timestamp_and_snapshot() {
    // Spec 5.3.11, seen in the store: the rotation happens, the new timestamp is missing
    // from the stick, so the refresh fails after the root chain; the old timestamp and
    // snapshot (signed by rotated-out keys) are gone, root v2 and targets stay.
    let keys = Keys::new();
    let r = repo(&keys);
    let b = Box::new(&r.root);
    b.store.write("timestamp", &r.timestamp).expect("ts");
    b.store.write("snapshot", &r.snapshot).expect("sn");
    b.store.write("targets", &r.targets).expect("tg");
    let new_ts = Signer::new(10);
    let rk: Vec<&Signer> = keys.root.iter().collect();
    let root2 = sign(
        &root(
            2,
            FUTURE,
            &[
                ("root", &rk, 2),
                ("timestamp", &[&new_ts], 1),
                ("snapshot", &[&keys.snapshot], 1),
                ("targets", &[&keys.targets], 1),
            ],
        ),
        &[&keys.root[0], &keys.root[1]],
    );
    publish(&b.repo, &[("2.root.json", &root2)]);
    let e = b.updater().refresh(now()).unwrap_err();
    assert!(matches!(e, UpdateError::Fetch(_)), "{e}");
    let names: Vec<String> = b.stored().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["root.json", "targets.json"]);

    // Twin: a rotation of root keys only keeps timestamp and snapshot.
    let b = Box::new(&r.root);
    b.store.write("timestamp", &r.timestamp).expect("ts");
    b.store.write("snapshot", &r.snapshot).expect("sn");
    let root2 = sign(
        &default_root(&keys, 2, FUTURE),
        &[&keys.root[0], &keys.root[1]],
    );
    publish(&b.repo, &[("2.root.json", &root2)]);
    b.updater().refresh(now()).unwrap_err();
    let names: Vec<String> = b.stored().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["root.json", "snapshot.json", "timestamp.json"]);
}

#[test]
fn rollback_refused_and_store_unchanged() {
    let keys = Keys::new();
    let r = repo(&keys);
    let b = Box::new(&r.root);
    publish(&b.repo, &[("1.root.json", &r.root)]);
    publish_versions(&b.repo, &versions(&keys, 3, 3, 3, FUTURE));
    b.updater().refresh(now()).expect("v3");
    let before = b.stored();

    // An older copy (a stale USB export): timestamp v2, snapshot v2, targets v2.
    let old = tempfile::tempdir().expect("tempdir");
    publish(old.path(), &[("1.root.json", &r.root)]);
    publish_versions(old.path(), &versions(&keys, 2, 2, 2, FUTURE));
    let e = Updater::new(DirFetch::new(old.path()), b.store.clone())
        .refresh(now())
        .unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::BadVersion { role, got: 2, .. }) if role == "timestamp"),
        "{e}"
    );
    assert_eq!(b.stored(), before, "store unchanged");

    // A newer timestamp listing an older snapshot is refused the same way.
    let mixed = tempfile::tempdir().expect("tempdir");
    publish(mixed.path(), &[("1.root.json", &r.root)]);
    let v = versions(&keys, 4, 2, 2, FUTURE);
    publish_versions(mixed.path(), &v);
    let e = Updater::new(DirFetch::new(mixed.path()), b.store.clone())
        .refresh(now())
        .unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::BadVersion { role, .. }) if role == "snapshot"),
        "{e}"
    );
    assert_eq!(b.stored(), before, "store unchanged");
}

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("time")
}

#[test]
fn expired_timestamp_refused_when_clock_goes_back() {
    // Freeze: the box refreshed at 2026-12-10 (floor raised); then an attacker sets the
    // clock back to 2026-12-05 and offers a timestamp that expired on 2026-12-08. With
    // the clock alone it would pass; with the floor it is expired and nothing changes.
    let keys = Keys::new();
    let r = repo(&keys);
    let b = Box::new(&r.root);
    let floor = TimeFloor::new(
        b.store.dir().join("../time-floor"),
        t("2026-01-01T00:00:00Z"),
    );
    publish(&b.repo, &[("1.root.json", &r.root)]);
    publish_versions(&b.repo, &versions(&keys, 5, 5, 5, FUTURE));
    b.updater()
        .refresh_with_floor(&floor, t("2026-12-10T00:00:00Z"))
        .expect("first");
    assert_eq!(floor.read().expect("floor"), t("2026-12-10T00:00:00Z"));
    let before = b.stored();

    let frozen = tempfile::tempdir().expect("tempdir");
    publish(frozen.path(), &[("1.root.json", &r.root)]);
    publish_versions(
        frozen.path(),
        &versions(&keys, 6, 6, 6, "2026-12-08T00:00:00Z"),
    );
    let up = Updater::new(DirFetch::new(frozen.path()), b.store.clone());
    let e = up
        .refresh_with_floor(&floor, t("2026-12-05T00:00:00Z"))
        .unwrap_err();
    assert!(
        matches!(&e, UpdateError::Tuf(Error::Expired { role, .. }) if role == "timestamp"),
        "{e}"
    );
    assert_eq!(b.stored(), before, "store unchanged");
    assert_eq!(floor.read().expect("floor"), t("2026-12-10T00:00:00Z"));

    // Twin: a box whose floor is below the expiry (never saw 2026-12-10) takes it, and its
    // floor is raised.
    let b2 = Box::new(&r.root);
    let floor2 = TimeFloor::new(
        b2.store.dir().join("../time-floor"),
        t("2026-01-01T00:00:00Z"),
    );
    Updater::new(DirFetch::new(frozen.path()), b2.store.clone())
        .refresh_with_floor(&floor2, t("2026-12-05T00:00:00Z"))
        .expect("valid at the box's reference time");
    // Raised, but (versions 1..6 are no signing times) only to what the timestamp proves:
    // expiry 2026-12-08 minus the 60-day longest lifetime.
    assert_eq!(floor2.read().expect("floor"), t("2026-10-09T00:00:00Z"));

    // A clock far ahead makes the check fail without raising the floor; fixing it recovers.
    let b3 = Box::new(&r.root);
    let floor3 = TimeFloor::new(
        b3.store.dir().join("../time-floor"),
        t("2026-01-01T00:00:00Z"),
    );
    let up3 = Updater::new(DirFetch::new(frozen.path()), b3.store.clone());
    up3.refresh_with_floor(&floor3, t("2027-06-01T00:00:00Z"))
        .unwrap_err();
    assert_eq!(floor3.read().expect("floor"), t("2026-01-01T00:00:00Z"));
    up3.refresh_with_floor(&floor3, t("2026-12-05T00:00:00Z"))
        .expect("clock corrected");
}

#[test]
fn python_tuf_repository_refreshes() {
    // The repository python-tuf 7.0.1 wrote (tests/data/python-tuf), read as a USB copy:
    // root chain 1 → 2, timestamp, 1.snapshot.json, 1.targets.json, stored byte for byte.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/python-tuf");
    let md = |n: &str| fs::read(dir.join("metadata").join(n)).expect("fixture");
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = MetadataStore::open(tmp.path()).expect("store");
    store.write("root", &md("1.root.json")).expect("root");
    let set = Updater::new(DirFetch::new(&dir), store.clone())
        .refresh(now())
        .expect("refresh");
    assert_eq!(set.root().common().version, 2);
    assert_eq!(
        store.read("root").expect("r").expect("root"),
        md("2.root.json")
    );
    assert_eq!(
        store.read("timestamp").expect("r").expect("ts"),
        md("timestamp.json")
    );
    assert_eq!(
        store.read("snapshot").expect("r").expect("sn"),
        md("1.snapshot.json")
    );
    assert_eq!(
        store.read("targets").expect("r").expect("tg"),
        md("1.targets.json")
    );
}

#[test]
fn clock_far_ahead_success_does_not_lift_the_floor_past_the_signing_time() {
    // Real time 2026-12-04. A USB export signed now (timestamp version = unix seconds at
    // signing, as `valisectl repo` writes it) is valid 60 days; the box's clock reads 30
    // days ahead, so the refresh succeeds. The clock is then corrected and the online
    // repository's next timestamp, signed a day later with a 1-day expiry, must be taken.
    let keys = Keys::new();
    let r = repo(&keys);
    let signed_at = now().unix_timestamp() as u64;
    let usb = versions(&keys, signed_at, signed_at, 1, "2027-02-02T00:00:00Z");
    let b = Box::new(&r.root);
    publish(&b.repo, &[("1.root.json", &r.root)]);
    publish_versions(&b.repo, &usb);
    let floor = TimeFloor::new(
        b.store.dir().join("../time-floor"),
        t("2026-01-01T00:00:00Z"),
    );
    b.updater()
        .refresh_with_floor(&floor, t("2027-01-03T00:00:00Z"))
        .expect("valid at the clock ahead");
    assert_eq!(
        floor.read().expect("floor"),
        now(),
        "the signing time, not the clock"
    );

    let online = versions(
        &keys,
        signed_at + 86_400,
        signed_at + 86_400,
        1,
        "2026-12-06T00:00:00Z",
    );
    publish_versions(&b.repo, &online);
    b.updater()
        .refresh_with_floor(&floor, t("2026-12-05T00:00:10Z"))
        .expect("corrected clock, fresh metadata");
    assert_eq!(floor.read().expect("floor"), t("2026-12-05T00:00:00Z"));
    // And the floor still refuses going back before what was seen.
    assert_eq!(
        floor
            .reference_time(t("2026-11-01T00:00:00Z"))
            .expect("ref")
            .0,
        t("2026-12-05T00:00:00Z")
    );
}
