//! Spec 5.6.7, the target search through delegations: pre-order depth-first, each role
//! fetched only when the search reaches it (the request log is asserted in order), a
//! (role, delegator) pair visited once (cycles end), a terminating delegation drops every
//! role still waiting, at most `max_delegations` roles visited, `paths` matched per segment,
//! `path_hash_prefixes`, TAP 15 succinct hash bins; a delegated role verified against its
//! delegator's keys and the snapshot's version, stored under its non-versioned,
//! percent-encoded name, and taken from the store by the next search.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;
use valise_tuf::fetch::DirFetch;
use valise_tuf::store::MetadataStore;
use valise_tuf::updater::{UpdateError, Updater};
use valise_tuf::{Error, TrustedSet};

struct World {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    store: MetadataStore,
    fetch: Recording<DirFetch>,
}

impl World {
    /// A box initialised with the repository's root, and the repository written by `write`.
    fn new(write: impl FnOnce(&std::path::Path) -> Vec<u8>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let root = write(&repo);
        let store = MetadataStore::open(tmp.path().join("store")).expect("store");
        store.write("root", &root).expect("root");
        let fetch = Recording::new(DirFetch::new(&repo));
        World {
            _tmp: tmp,
            repo,
            store,
            fetch,
        }
    }

    fn updater(&self) -> Updater<Recording<DirFetch>> {
        Updater::new(self.fetch.clone(), self.store.clone())
    }

    /// A refresh, then the request log cleared.
    fn refreshed(&self) -> TrustedSet {
        let set = self.updater().refresh(now()).expect("refresh");
        self.fetch.take();
        set
    }
}

fn md(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("metadata/1.{n}.json"))
        .collect()
}

#[test]
fn search_is_lazy_preorder_depth_first() {
    let keys = Keys::new();
    let (ka, kb, kc, kd, ke) = (
        Signer::new(10),
        Signer::new(11),
        Signer::new(12),
        Signer::new(13),
        Signer::new(14),
    );
    let d = Deleg::to;
    let top = targets_with(
        1,
        &[],
        Some(delegations(&[
            d("A", &ka, &["*"]),
            d("D", &kd, &["other/*"]),
            d("B", &kb, &["*.txt"]),
            d("E", &ke, &["*"]),
        ])),
    );
    let a = targets_with(1, &[], Some(delegations(&[d("C", &kc, &["*"])])));
    let mut b = targets_with(1, &[("f.txt", b"found")], None);
    b["targets"]["f.txt"]["custom"] = json!({"bundle": "fr-en"});
    let c = targets_with(1, &[("g.txt", b"other")], None);
    let e = targets_with(1, &[("f.txt", b"shadowed")], None);
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("A", &a, &ka),
                ("B", &b, &kb),
                ("C", &c, &kc),
                ("D", &targets_with(1, &[], None), &kd),
                ("E", &e, &ke),
            ],
        )
    });
    let mut set = w.refreshed();
    let t = w
        .updater()
        .find_target(&mut set, "f.txt")
        .expect("search")
        .expect("found");
    // A, then A's child C, then B (D does not match, E comes after the find).
    assert_eq!(w.fetch.take(), md(&["A", "C", "B"]));
    assert_eq!(t.name, "f.txt");
    assert_eq!(t.length, 5);
    assert_eq!(
        t.hashes.first(),
        Some(("sha256", sha256_hex(b"found").as_str()))
    );
    assert_eq!(t.custom, json!({"bundle": "fr-en"}));
    assert_eq!(t.url_path, format!("{}.f.txt", sha256_hex(b"found")));
    // Stored verbatim under non-versioned names; D and E never fetched.
    for role in ["A", "B", "C"] {
        assert_eq!(
            w.store.read(role).expect("read").expect("stored"),
            std::fs::read(w.repo.join(format!("metadata/1.{role}.json"))).expect("read")
        );
    }
    assert_eq!(w.store.read("D").expect("read"), None);
    assert_eq!(w.store.read("E").expect("read"), None);
    // Same trusted set: nothing fetched again; a target found at the top level: no fetch.
    w.updater()
        .find_target(&mut set, "f.txt")
        .expect("again")
        .expect("found");
    assert_eq!(w.fetch.take(), Vec::<String>::new());
    // A new refresh: the stored roles verify and are used without fetching.
    let mut set = w.refreshed();
    let t2 = w
        .updater()
        .find_target(&mut set, "f.txt")
        .expect("search")
        .expect("found");
    assert_eq!(t2, t);
    assert_eq!(w.fetch.take(), Vec::<String>::new());
    // Absent everywhere: every matching role visited (pre-order), then None.
    assert_eq!(
        w.updater().find_target(&mut set, "x.bin").expect("search"),
        None
    );
    assert_eq!(w.fetch.take(), md(&["E"]));
}

/// targets → [A (→ A1), B]; `f.txt` is in B.
fn nested(a1_terminating: bool) -> (World, TrustedSet) {
    let keys = Keys::new();
    let (ka, ka1, kb) = (Signer::new(10), Signer::new(11), Signer::new(12));
    let top = targets_with(
        1,
        &[],
        Some(delegations(&[
            Deleg::to("A", &ka, &["*"]),
            Deleg::to("B", &kb, &["*"]),
        ])),
    );
    let a = targets_with(
        1,
        &[],
        Some(delegations(&[Deleg {
            name: "A1",
            key: &ka1,
            paths: &["f.*"],
            terminating: a1_terminating,
        }])),
    );
    let b = targets_with(1, &[("f.txt", b"in b")], None);
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("A", &a, &ka),
                ("A1", &targets_with(1, &[], None), &ka1),
                ("B", &b, &kb),
            ],
        )
    });
    let set = w.refreshed();
    (w, set)
}

#[test]
fn terminating_delegation_drops_every_waiting_role() {
    let (w, mut set) = nested(true);
    assert_eq!(
        w.updater().find_target(&mut set, "f.txt").expect("search"),
        None
    );
    assert_eq!(w.fetch.take(), md(&["A", "A1"]), "B never fetched");
    // A terminating delegation that does not match the path stops nothing.
    assert!(
        w.updater()
            .find_target(&mut set, "g.txt")
            .expect("search")
            .is_none()
    );
    assert_eq!(w.fetch.take(), md(&["B"]));
}

#[test]
fn non_terminating_twin_goes_on_to_the_next_role() {
    let (w, mut set) = nested(false);
    let t = w
        .updater()
        .find_target(&mut set, "f.txt")
        .expect("search")
        .expect("found in B");
    assert_eq!(t.length, 4);
    assert_eq!(w.fetch.take(), md(&["A", "A1", "B"]));
}

#[test]
fn delegation_cycles_end_and_each_role_is_fetched_once() {
    let keys = Keys::new();
    let (ka, kb) = (Signer::new(10), Signer::new(11));
    let to = |name, key| Deleg::to(name, key, &["*"]);
    let top = targets_with(1, &[], Some(delegations(&[to("A", &ka)])));
    let a = targets_with(1, &[], Some(delegations(&[to("B", &kb), to("A", &ka)])));
    let b = targets_with(1, &[], Some(delegations(&[to("A", &ka), to("B", &kb)])));
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("A", &a, &ka),
                ("B", &b, &kb),
            ],
        )
    });
    let mut set = w.refreshed();
    assert_eq!(
        w.updater().find_target(&mut set, "nowhere").expect("ends"),
        None
    );
    assert_eq!(w.fetch.take(), md(&["A", "B"]));
}

/// targets → r1 → r2 → … → r40, the target only in r40.
fn chain() -> World {
    let keys = Keys::new();
    let signers: Vec<Signer> = (0..41).map(|i| Signer::new(20 + i)).collect();
    let names: Vec<String> = (1..=40).map(|i| format!("r{i}")).collect();
    let mut signed = Vec::new();
    for i in 0..=40usize {
        let next = (i < 40).then(|| delegations(&[Deleg::to(&names[i], &signers[i + 1], &["*"])]));
        let files: &[(&str, &[u8])] = if i == 40 { &[("deep", b"deep")] } else { &[] };
        signed.push(targets_with(1, files, next));
    }
    World::new(|dir| {
        let mut roles = vec![("targets", &signed[0], &keys.targets)];
        for i in 1..=40 {
            roles.push((names[i - 1].as_str(), &signed[i], &signers[i]));
        }
        write_repo(dir, &keys, &roles)
    })
}

#[test]
fn max_delegations_caps_the_search() {
    let w = chain();
    let mut set = w.refreshed();
    // Default 32 roles, the top-level one included: r1..r31 fetched, then the search stops.
    assert_eq!(
        w.updater().find_target(&mut set, "deep").expect("search"),
        None
    );
    let fetched = w.fetch.take();
    assert_eq!(fetched.len(), 31);
    assert_eq!(
        fetched.last().map(String::as_str),
        Some("metadata/1.r31.json")
    );
    // Twin: room for 41 roles finds it.
    let t = w
        .updater()
        .with_max_delegations(41)
        .find_target(&mut set, "deep")
        .expect("search");
    assert_eq!(t.map(|t| t.length), Some(4));
    assert_eq!(w.fetch.take().len(), 9, "r32..r40; r1..r31 already trusted");
    // One role: only the top-level targets is looked at.
    let mut set = w.refreshed();
    assert_eq!(
        w.updater()
            .with_max_delegations(1)
            .find_target(&mut set, "deep")
            .expect("search"),
        None
    );
    assert_eq!(w.fetch.take(), Vec::<String>::new());
}

#[test]
fn paths_per_segment_and_hash_prefixes_choose_the_roles() {
    let keys = Keys::new();
    let (kp, kq, kr, ks) = (
        Signer::new(10),
        Signer::new(11),
        Signer::new(12),
        Signer::new(13),
    );
    let target = "models/fr-en/model.bin";
    // sha256(target) starts with b7494ad7 (Python's hashlib agrees).
    let mut d = delegations(&[
        Deleg::to("P", &kp, &["models/*"]),
        Deleg::to("Q", &kq, &["models/*/*.bin"]),
        Deleg::to("R", &kr, &[]),
        Deleg::to("S", &ks, &[]),
    ]);
    d["roles"][2].as_object_mut().expect("role").remove("paths");
    d["roles"][2]["path_hash_prefixes"] = json!(["00", "b8"]);
    d["roles"][3].as_object_mut().expect("role").remove("paths");
    d["roles"][3]["path_hash_prefixes"] = json!(["b749"]);
    let top = targets_with(1, &[], Some(d));
    let s = targets_with(1, &[(target, b"weights")], None);
    let q = targets_with(1, &[("models/fr-en/other.bin", b"x")], None);
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("P", &targets_with(1, &[], None), &kp),
                ("Q", &q, &kq),
                ("R", &targets_with(1, &[], None), &kr),
                ("S", &s, &ks),
            ],
        )
    });
    let mut set = w.refreshed();
    let t = w
        .updater()
        .find_target(&mut set, target)
        .expect("search")
        .expect("found in S");
    // P: one segment for three; R: other prefixes. Only Q (per-segment match) and S.
    assert_eq!(w.fetch.take(), md(&["Q", "S"]));
    assert_eq!(
        t.url_path,
        format!("models/fr-en/{}.model.bin", sha256_hex(b"weights"))
    );
}

#[test]
fn succinct_hash_bins_fetch_only_the_target_bin() {
    let keys = Keys::new();
    let kbin = Signer::new(10);
    let mut keymap = serde_json::Map::new();
    keymap.insert(kbin.keyid.clone(), kbin.key_json());
    let top = targets_with(
        1,
        &[],
        Some(json!({"keys": keymap, "succinct_roles": {
            "keyids": [kbin.keyid], "threshold": 1, "bit_length": 10, "name_prefix": "bin"}})),
    );
    // Python: sha256 first 32 bits >> 22, as 3 hex digits: "models/fr-en/model.bin" →
    // 2dd, "a.txt" → 062.
    let bin_2dd = targets_with(1, &[("models/fr-en/model.bin", b"w")], None);
    let bin_062 = targets_with(1, &[("models/fr-en/model.bin", b"wrong bin")], None);
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("bin-2dd", &bin_2dd, &kbin),
                ("bin-062", &bin_062, &kbin),
            ],
        )
    });
    let mut set = w.refreshed();
    let t = w
        .updater()
        .find_target(&mut set, "models/fr-en/model.bin")
        .expect("search")
        .expect("found");
    assert_eq!(t.length, 1);
    assert_eq!(w.fetch.take(), md(&["bin-2dd"]));
    // a.txt's bin is bin-062, which does not list it: terminating, so not found.
    assert_eq!(
        w.updater().find_target(&mut set, "a.txt").expect("search"),
        None
    );
    assert_eq!(w.fetch.take(), md(&["bin-062"]));
}

#[test]
fn role_names_percent_encoded_in_urls_and_store() {
    let keys = Keys::new();
    let k = Signer::new(10);
    let top = targets_with(
        1,
        &[],
        Some(delegations(&[Deleg::to("équipe lisbonne", &k, &["*"])])),
    );
    let role = targets_with(1, &[("t", b"t")], None);
    let w = World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("équipe lisbonne", &role, &k),
            ],
        )
    });
    let mut set = w.refreshed();
    w.updater()
        .find_target(&mut set, "t")
        .expect("search")
        .expect("found");
    assert_eq!(w.fetch.take(), ["metadata/1.%C3%A9quipe%20lisbonne.json"]);
    assert!(w.store.dir().join("%C3%A9quipe%20lisbonne.json").is_file());
}

/// targets → A (key ka); the repository's A is `a` signed by `signer`, listed in snapshot at
/// version `listed`.
fn one_delegation(signer_seed: u8, listed: u64, role_version: u64) -> (World, TrustedSet) {
    let keys = Keys::new();
    let ka = Signer::new(10);
    let signer = Signer::new(signer_seed);
    let top = targets_with(1, &[], Some(delegations(&[Deleg::to("A", &ka, &["*"])])));
    let a = targets_with(role_version, &[("f", b"f")], None);
    let w = World::new(|dir| {
        let root = write_repo(
            dir,
            &keys,
            &[("targets", &top, &keys.targets), ("A", &a, &signer)],
        );
        if listed != role_version {
            // Snapshot lists `listed`; the file at that URL holds version `role_version`.
            let m = dir.join("metadata");
            std::fs::rename(
                m.join(format!("{role_version}.A.json")),
                m.join(format!("{listed}.A.json")),
            )
            .expect("rename");
            let sn = sign(
                &snapshot(1, FUTURE, &[("targets", 1), ("A", listed)]),
                &[&keys.snapshot],
            );
            std::fs::write(m.join("1.snapshot.json"), &sn).expect("write");
            let ts = sign(&timestamp(1, FUTURE, 1, Some(&sn)), &[&keys.timestamp]);
            std::fs::write(m.join("timestamp.json"), &ts).expect("write");
        }
        root
    });
    let set = w.refreshed();
    (w, set)
}

#[test]
fn delegated_role_signed_by_another_key_refused_and_not_stored() {
    let (w, mut set) = one_delegation(11, 1, 1);
    let r = w.updater().find_target(&mut set, "f");
    assert!(
        matches!(&r, Err(UpdateError::Tuf(Error::Threshold { role, valid: 0, .. })) if role == "A"),
        "{r:?}"
    );
    assert_eq!(w.store.read("A").expect("read"), None);
    // Twin: signed by the delegated key.
    let (w, mut set) = one_delegation(10, 1, 1);
    assert!(
        w.updater()
            .find_target(&mut set, "f")
            .expect("search")
            .is_some()
    );
}

#[test]
fn delegated_role_version_must_be_the_snapshot_s() {
    let (w, mut set) = one_delegation(10, 2, 1);
    let r = w.updater().find_target(&mut set, "f");
    assert!(
        matches!(&r, Err(UpdateError::Tuf(Error::BadVersion { role, got: 1, .. })) if role == "A"),
        "{r:?}"
    );
    assert_eq!(w.fetch.take(), ["metadata/2.A.json"]);
    assert_eq!(w.store.read("A").expect("read"), None);
}

#[test]
fn delegated_role_missing_from_snapshot_is_an_error() {
    let keys = Keys::new();
    let ka = Signer::new(10);
    let top = targets_with(1, &[], Some(delegations(&[Deleg::to("A", &ka, &["*"])])));
    let w = World::new(|dir| write_repo(dir, &keys, &[("targets", &top, &keys.targets)]));
    let mut set = w.refreshed();
    let r = w.updater().find_target(&mut set, "f");
    assert!(
        matches!(&r, Err(UpdateError::Tuf(Error::Workflow(_)))),
        "{r:?}"
    );
    assert_eq!(w.fetch.take(), Vec::<String>::new());
}

/// targets → parent-a ("team-a/*") → release, targets → parent-b ("team-b/*") → release:
/// one role name delegated by two roles, each with its own key for it (`kr_b` for
/// parent-b's). release is signed with `release_signer` only and lists a file under each
/// team's path.
fn one_role_two_delegators(kr_b_seed: u8) -> World {
    let keys = Keys::new();
    let (ka, kb, kr_a) = (Signer::new(10), Signer::new(11), Signer::new(12));
    let kr_b = Signer::new(kr_b_seed);
    let top = targets_with(
        1,
        &[],
        Some(delegations(&[
            Deleg::to("parent-a", &ka, &["team-a/*"]),
            Deleg::to("parent-b", &kb, &["team-b/*"]),
        ])),
    );
    let a = targets_with(
        1,
        &[],
        Some(delegations(&[Deleg::to("release", &kr_a, &["team-a/*"])])),
    );
    let b = targets_with(
        1,
        &[],
        Some(delegations(&[Deleg::to("release", &kr_b, &["team-b/*"])])),
    );
    let release = targets_with(
        1,
        &[
            ("team-a/file", b"trusted A"),
            ("team-b/file", b"malicious B"),
        ],
        None,
    );
    World::new(|dir| {
        write_repo(
            dir,
            &keys,
            &[
                ("targets", &top, &keys.targets),
                ("parent-a", &a, &ka),
                ("parent-b", &b, &kb),
                ("release", &release, &kr_a),
            ],
        )
    })
}

#[test]
fn role_trusted_through_one_delegator_is_verified_again_through_another() {
    // parent-b lists another key for release than the one that signed it.
    let w = one_role_two_delegators(13);
    let mut set = w.refreshed();
    let up = w.updater();
    let a = up.find_target(&mut set, "team-a/file").expect("through A");
    assert_eq!(a.map(|t| t.length), Some(9));
    assert_eq!(w.fetch.take(), md(&["parent-a", "release"]));
    // Same set, same process: release is already trusted, but only with parent-a's
    // authority; through parent-b its signature must meet parent-b's keys, and does not.
    let err = up
        .find_target(&mut set, "team-b/file")
        .expect_err("release is not signed by parent-b's key for it");
    assert!(
        matches!(err, UpdateError::Tuf(Error::Threshold { ref role, .. }) if role == "release"),
        "{err:?}"
    );
    assert_eq!(w.fetch.take(), md(&["parent-b"]));
}

#[test]
fn role_delegated_twice_with_its_signing_key_is_found_through_both() {
    // Twin: parent-b lists the key that signed release (seed 12, as parent-a does).
    let w = one_role_two_delegators(12);
    let mut set = w.refreshed();
    let up = w.updater();
    assert!(
        up.find_target(&mut set, "team-a/file")
            .expect("A")
            .is_some()
    );
    let b = up.find_target(&mut set, "team-b/file").expect("through B");
    assert_eq!(b.map(|t| t.length), Some(11));
    // release verified again from the trusted copy, not fetched again.
    assert_eq!(w.fetch.take(), md(&["parent-a", "release", "parent-b"]));
}
