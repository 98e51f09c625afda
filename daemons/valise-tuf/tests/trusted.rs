//! The trusted-metadata state machine (spec §5.2–5.6), one test per rule, on metadata signed
//! here with fixed Ed25519 keys. Each "refused" test has an "accepted" twin, so a test fails
//! both when a rule is missing and when it refuses too much.

mod common;

use common::*;
use serde_json::{Value, json};
use valise_tuf::Error;
use valise_tuf::limits;
use valise_tuf::trusted::{TimestampUpdate, TrustedSet};

fn set(keys: &Keys) -> TrustedSet {
    TrustedSet::new(&repo(keys).root, now()).expect("trusted root loads")
}

/// A set with root, timestamp and snapshot of `repo(keys)` loaded.
fn set_through_snapshot(keys: &Keys) -> TrustedSet {
    let r = repo(keys);
    let mut t = set(keys);
    t.update_timestamp(&r.timestamp).expect("timestamp");
    t.update_snapshot(&r.snapshot, false).expect("snapshot");
    t
}

mod signatures {
    use super::*;

    #[test]
    fn whole_repository_loads() {
        let keys = Keys::new();
        let r = repo(&keys);
        let mut t = set(&keys);
        assert_eq!(
            t.update_timestamp(&r.timestamp).expect("ts"),
            TimestampUpdate::Updated
        );
        t.update_snapshot(&r.snapshot, false).expect("snapshot");
        t.update_targets(&r.targets).expect("targets");
        let targets = t.targets("targets").expect("trusted");
        assert_eq!(targets.signed.targets["a.txt"].length, 5);
    }

    #[test]
    fn root_below_threshold_refused() {
        let keys = Keys::new();
        let one = sign(&default_root(&keys, 1, FUTURE), &[&keys.root[0]]);
        let e = TrustedSet::new(&one, now()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Threshold {
                    valid: 1,
                    threshold: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn one_key_under_two_keyids_counts_once() {
        // The root lists root key 1 under its own id and under a second id, both authorized
        // for root with threshold 2; two signatures by that one key must not be enough.
        let keys = Keys::new();
        let mut v = default_root(&keys, 1, FUTURE);
        let k1 = &keys.root[0];
        v["keys"]["alias"] = k1.key_json();
        v["roles"]["root"]["keyids"] = json!([k1.keyid, "alias"]);
        let twice = sign_as(&v, &[(k1.keyid.clone(), k1), ("alias".into(), k1)]);
        let e = TrustedSet::new(&twice, now()).unwrap_err();
        assert!(matches!(e, Error::Threshold { valid: 1, .. }), "{e}");
        // Twin: a second, different key under the alias id reaches the threshold.
        let k2 = &keys.root[1];
        v["keys"]["alias"] = k2.key_json();
        let two = sign_as(&v, &[(k1.keyid.clone(), k1), ("alias".into(), k2)]);
        TrustedSet::new(&two, now()).expect("two distinct keys");
    }

    #[test]
    fn one_keyid_signing_twice_is_refused_at_parse() {
        let keys = Keys::new();
        let v = default_root(&keys, 1, FUTURE);
        let k1 = &keys.root[0];
        let twice = sign_as(&v, &[(k1.keyid.clone(), k1), (k1.keyid.clone(), k1)]);
        let e = TrustedSet::new(&twice, now()).unwrap_err();
        assert!(matches!(e, Error::Format(_)), "{e}");
    }

    #[test]
    fn unknown_keyids_ignored_and_unauthorized_keys_not_counted() {
        let keys = Keys::new();
        let v = default_root(&keys, 1, FUTURE);
        let stranger = Signer::new(99);
        // A signature by an unknown key id beside a threshold of good ones: accepted.
        let b = sign(&v, &[&stranger, &keys.root[0], &keys.root[1]]);
        TrustedSet::new(&b, now()).expect("unknown key id ignored");
        // The timestamp key is listed in root's keys but not authorized for root: its
        // signature does not count towards root's threshold.
        let b = sign(&v, &[&keys.root[0], &keys.timestamp]);
        let e = TrustedSet::new(&b, now()).unwrap_err();
        assert!(matches!(e, Error::Threshold { valid: 1, .. }), "{e}");
    }

    #[test]
    fn signature_over_other_bytes_refused() {
        // A field changed after signing (unknown fields are covered by the signature too).
        let keys = Keys::new();
        let v = default_root(&keys, 1, FUTURE);
        let b = sign(&v, &[&keys.root[0], &keys.root[1]]);
        let mut env: Value = serde_json::from_slice(&b).expect("json");
        env["signed"]["x-note"] = json!("added later");
        let e = TrustedSet::new(&serde_json::to_vec(&env).expect("json"), now()).unwrap_err();
        assert!(matches!(e, Error::Threshold { valid: 0, .. }), "{e}");
    }

    #[test]
    fn key_ids_are_not_recomputed() {
        // A key id that is no hash of the key (and a key carrying securesystemslib's old
        // keyid_hash_algorithms field): accepted as given.
        let keys = Keys::new();
        let mut v = default_root(&keys, 1, FUTURE);
        let (k1, k2) = (&keys.root[0], &keys.root[1]);
        let mut kj = k1.key_json();
        kj["keyid_hash_algorithms"] = json!(["sha256", "sha512"]);
        v["keys"]["my-root-key"] = kj;
        v["roles"]["root"]["keyids"] = json!(["my-root-key", k2.keyid]);
        let b = sign_as(&v, &[("my-root-key".into(), k1), (k2.keyid.clone(), k2)]);
        TrustedSet::new(&b, now()).expect("key id kept as given");
    }
}

mod root_chain {
    use super::*;

    /// Root v2 where root keys 1, 2, 3 are replaced by 7, 8, 9 (threshold 2).
    fn rotated(keys: &Keys, version: u64, new: &[Signer; 3]) -> Value {
        let r: Vec<&Signer> = new.iter().collect();
        root(
            version,
            FUTURE,
            &[
                ("root", &r, 2),
                ("timestamp", &[&keys.timestamp], 1),
                ("snapshot", &[&keys.snapshot], 1),
                ("targets", &[&keys.targets], 1),
            ],
        )
    }

    fn new_keys() -> [Signer; 3] {
        [Signer::new(7), Signer::new(8), Signer::new(9)]
    }

    #[test]
    fn rotation_signed_by_old_and_new_thresholds_accepted() {
        let keys = Keys::new();
        let nk = new_keys();
        let v2 = rotated(&keys, 2, &nk);
        let mut t = set(&keys);
        t.update_root(&sign(&v2, &[&keys.root[0], &keys.root[2], &nk[0], &nk[1]]))
            .expect("rotation");
        assert_eq!(t.root().common().version, 2);
        // The next step is verified against v2's keys: v3 signed by old keys only fails.
        let v3 = rotated(&keys, 3, &nk);
        let e = t
            .update_root(&sign(&v3, &[&keys.root[0], &keys.root[1]]))
            .unwrap_err();
        assert!(matches!(e, Error::Threshold { .. }), "{e}");
        t.update_root(&sign(&v3, &[&nk[1], &nk[2]]))
            .expect("v3 by v2's keys");
    }

    #[test]
    fn rotation_without_old_threshold_refused() {
        let keys = Keys::new();
        let nk = new_keys();
        let v2 = rotated(&keys, 2, &nk);
        let mut t = set(&keys);
        let e = t
            .update_root(&sign(&v2, &[&keys.root[0], &nk[0], &nk[1]]))
            .unwrap_err();
        assert!(matches!(e, Error::Threshold { valid: 1, .. }), "{e}");
        assert_eq!(t.root().common().version, 1);
    }

    #[test]
    fn rotation_without_new_threshold_refused() {
        let keys = Keys::new();
        let nk = new_keys();
        let v2 = rotated(&keys, 2, &nk);
        let mut t = set(&keys);
        let e = t
            .update_root(&sign(&v2, &[&keys.root[0], &keys.root[1], &nk[0]]))
            .unwrap_err();
        assert!(matches!(e, Error::Threshold { valid: 1, .. }), "{e}");
        assert_eq!(t.root().common().version, 1);
    }

    #[test]
    fn root_version_must_be_trusted_plus_one() {
        let keys = Keys::new();
        let mut t = set(&keys);
        for v in [1, 3] {
            let b = sign(
                &default_root(&keys, v, FUTURE),
                &[&keys.root[0], &keys.root[1]],
            );
            let e = t.update_root(&b).unwrap_err();
            assert!(
                matches!(e, Error::BadVersion { got, .. } if got == v),
                "{e}"
            );
        }
        let b = sign(
            &default_root(&keys, 2, FUTURE),
            &[&keys.root[0], &keys.root[1]],
        );
        t.update_root(&b).expect("v2");
    }

    #[test]
    fn intermediate_root_may_be_expired_final_may_not() {
        let keys = Keys::new();
        let r = repo(&keys);
        let mut t = set(&keys);
        let b = sign(
            &default_root(&keys, 2, PAST),
            &[&keys.root[0], &keys.root[1]],
        );
        t.update_root(&b)
            .expect("expired intermediate root accepted");
        // Final root expired: the timestamp step refuses (spec 5.3.10, freeze).
        let e = t.update_timestamp(&r.timestamp).unwrap_err();
        assert!(
            matches!(&e, Error::Expired { role, .. } if role == "root"),
            "{e}"
        );
        let b = sign(
            &default_root(&keys, 3, FUTURE),
            &[&keys.root[0], &keys.root[1]],
        );
        t.update_root(&b).expect("v3");
        t.update_timestamp(&r.timestamp).expect("fresh final root");
    }

    #[test]
    fn trusted_root_expiry_ignored_at_load() {
        let keys = Keys::new();
        let b = sign(
            &default_root(&keys, 1, PAST),
            &[&keys.root[0], &keys.root[1]],
        );
        TrustedSet::new(&b, now()).expect("spec 5.2: expiry not checked yet");
    }

    #[test]
    fn root_update_after_timestamp_refused() {
        let keys = Keys::new();
        let r = repo(&keys);
        let mut t = set(&keys);
        t.update_timestamp(&r.timestamp).expect("ts");
        let b = sign(
            &default_root(&keys, 2, FUTURE),
            &[&keys.root[0], &keys.root[1]],
        );
        assert!(matches!(t.update_root(&b).unwrap_err(), Error::Workflow(_)));
    }

    #[test]
    fn oversized_root_refused() {
        let keys = Keys::new();
        let v = default_root(&keys, 2, FUTURE);
        let signers = [&keys.root[0], &keys.root[1]];
        let max = limits::MAX_ROOT_SIZE as usize;
        let mut t = set(&keys);
        let e = t
            .update_root(&signed_of_len(&v, &signers, max + 1))
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        // Twin: exactly at the limit passes.
        t.update_root(&signed_of_len(&v, &signers, max))
            .expect("at limit");
    }

    #[test]
    fn rotated_timestamp_key_refuses_old_timestamps() {
        // Spec 5.3.11: after a rotation of the timestamp key, a timestamp signed by the old
        // key (what the box has stored) no longer verifies.
        let keys = Keys::new();
        let r = repo(&keys);
        let new_ts = Signer::new(40);
        let rk: Vec<&Signer> = keys.root.iter().collect();
        let v2 = root(
            2,
            FUTURE,
            &[
                ("root", &rk, 2),
                ("timestamp", &[&new_ts], 1),
                ("snapshot", &[&keys.snapshot], 1),
                ("targets", &[&keys.targets], 1),
            ],
        );
        let mut t = set(&keys);
        t.update_root(&sign(&v2, &[&keys.root[0], &keys.root[1]]))
            .expect("v2");
        let e = t.update_timestamp(&r.timestamp).unwrap_err();
        assert!(matches!(e, Error::Threshold { .. }), "{e}");
        let snap = sign(&snapshot(1, FUTURE, &[("targets", 1)]), &[&keys.snapshot]);
        t.update_timestamp(&sign(&timestamp(1, FUTURE, 1, Some(&snap)), &[&new_ts]))
            .expect("timestamp by the new key");
    }
}

mod timestamp {
    use super::*;

    fn ts(keys: &Keys, version: u64, expires: &str, snapshot_version: u64) -> Vec<u8> {
        sign(
            &timestamp(version, expires, snapshot_version, None),
            &[&keys.timestamp],
        )
    }

    #[test]
    fn timestamp_below_threshold_refused() {
        let keys = Keys::new();
        let mut t = set(&keys);
        let b = sign(&timestamp(1, FUTURE, 1, None), &[&keys.snapshot]);
        assert!(matches!(
            t.update_timestamp(&b).unwrap_err(),
            Error::Threshold { .. }
        ));
        assert!(t.timestamp().is_none());
    }

    #[test]
    fn timestamp_rollback_refused() {
        let keys = Keys::new();
        let mut t = set(&keys);
        t.update_timestamp(&ts(&keys, 5, FUTURE, 5)).expect("v5");
        let e = t.update_timestamp(&ts(&keys, 4, FUTURE, 5)).unwrap_err();
        assert!(matches!(e, Error::BadVersion { got: 4, .. }), "{e}");
        assert_eq!(t.timestamp().expect("kept").common().version, 5);
        t.update_timestamp(&ts(&keys, 6, FUTURE, 5)).expect("v6");
    }

    #[test]
    fn equal_version_keeps_the_trusted_timestamp() {
        let keys = Keys::new();
        let mut t = set(&keys);
        t.update_timestamp(&ts(&keys, 5, FUTURE, 5)).expect("v5");
        // Same version, other content (a newer snapshot): not an error, and not taken.
        let r = t
            .update_timestamp(&ts(&keys, 5, FUTURE, 9))
            .expect("not an error");
        assert_eq!(r, TimestampUpdate::Unchanged);
        assert_eq!(
            t.timestamp().expect("kept").signed.snapshot_meta().version,
            5
        );
    }

    #[test]
    fn snapshot_version_in_timestamp_never_goes_back() {
        let keys = Keys::new();
        let mut t = set(&keys);
        t.update_timestamp(&ts(&keys, 5, FUTURE, 5)).expect("v5");
        let e = t.update_timestamp(&ts(&keys, 6, FUTURE, 4)).unwrap_err();
        assert!(
            matches!(&e, Error::BadVersion { role, got: 4, .. } if role == "snapshot"),
            "{e}"
        );
        t.update_timestamp(&ts(&keys, 6, FUTURE, 5))
            .expect("same snapshot version");
    }

    #[test]
    fn expired_timestamp_refused_but_kept_for_rollback_checks() {
        let keys = Keys::new();
        let mut t = set(&keys);
        let e = t.update_timestamp(&ts(&keys, 5, NOW, 5)).unwrap_err();
        assert!(
            matches!(&e, Error::Expired { role, .. } if role == "timestamp"),
            "{e}"
        );
        // Kept as the intermediate trusted timestamp: an older one is a rollback...
        assert_eq!(t.timestamp().expect("kept").common().version, 5);
        let e = t.update_timestamp(&ts(&keys, 4, FUTURE, 5)).unwrap_err();
        assert!(matches!(e, Error::BadVersion { .. }), "{e}");
        // ...and snapshot cannot be loaded on top of it.
        let e = t.update_snapshot(b"{}", true).unwrap_err();
        assert!(matches!(e, Error::Expired { .. }), "{e}");
        // A fresh, newer timestamp recovers.
        t.update_timestamp(&ts(&keys, 6, FUTURE, 5)).expect("fresh");
    }

    #[test]
    fn oversized_timestamp_refused() {
        let keys = Keys::new();
        let mut t = set(&keys);
        let v = timestamp(1, FUTURE, 1, None);
        let max = limits::MAX_TIMESTAMP_SIZE as usize;
        let e = t
            .update_timestamp(&signed_of_len(&v, &[&keys.timestamp], max + 1))
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        t.update_timestamp(&signed_of_len(&v, &[&keys.timestamp], max))
            .expect("at limit");
    }

    #[test]
    fn timestamp_after_snapshot_refused() {
        let keys = Keys::new();
        let mut t = set_through_snapshot(&keys);
        let e = t.update_timestamp(&ts(&keys, 2, FUTURE, 1)).unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
    }
}

mod snapshot {
    use super::*;

    fn snap(keys: &Keys, version: u64, expires: &str, targets_v: u64) -> Vec<u8> {
        sign(
            &snapshot(version, expires, &[("targets", targets_v)]),
            &[&keys.snapshot],
        )
    }

    /// A set whose trusted timestamp lists `snapshot_meta` for snapshot.json.
    fn set_with_ts_meta(keys: &Keys, snapshot_meta: Value) -> TrustedSet {
        let mut v = timestamp(1, FUTURE, 1, None);
        v["meta"]["snapshot.json"] = snapshot_meta;
        let mut t = set(keys);
        t.update_timestamp(&sign(&v, &[&keys.timestamp]))
            .expect("ts");
        t
    }

    #[test]
    fn snapshot_before_timestamp_refused() {
        let keys = Keys::new();
        let mut t = set(&keys);
        let e = t
            .update_snapshot(&snap(&keys, 1, FUTURE, 1), false)
            .unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
    }

    #[test]
    fn snapshot_hash_mismatch_refused() {
        let keys = Keys::new();
        let b = snap(&keys, 1, FUTURE, 1);
        let mut t = set_with_ts_meta(
            &keys,
            json!({"version": 1, "hashes": {"sha256": sha256_hex(b"other")}}),
        );
        let e = t.update_snapshot(&b, false).unwrap_err();
        assert!(matches!(e, Error::Hash { .. }), "{e}");
        // Local bytes (already verified when stored) skip the hash check (python-tuf too).
        t.update_snapshot(&b, true).expect("trusted local");
    }

    #[test]
    fn snapshot_sha512_only_accepted() {
        let keys = Keys::new();
        let b = snap(&keys, 1, FUTURE, 1);
        let mut t = set_with_ts_meta(
            &keys,
            json!({"version": 1, "hashes": {"sha512": sha512_hex(&b)}}),
        );
        t.update_snapshot(&b, false).expect("sha512 only");
    }

    #[test]
    fn snapshot_unknown_hash_algorithm_only_refused() {
        let keys = Keys::new();
        let b = snap(&keys, 1, FUTURE, 1);
        let mut t = set_with_ts_meta(&keys, json!({"version": 1, "hashes": {"sha3-256": "00"}}));
        let e = t.update_snapshot(&b, false).unwrap_err();
        assert!(matches!(e, Error::Hash { .. }), "{e}");
        let mut t = set_with_ts_meta(
            &keys,
            json!({"version": 1, "hashes": {"sha3-256": "00", "sha256": sha256_hex(&b)}}),
        );
        t.update_snapshot(&b, false)
            .expect("unknown beside sha256 is ignored");
    }

    #[test]
    fn snapshot_length_mismatch_and_size_refused() {
        let keys = Keys::new();
        let b = snap(&keys, 1, FUTURE, 1);
        let len = b.len() as u64;
        let mut t = set_with_ts_meta(&keys, json!({"version": 1, "length": len - 1}));
        let e = t.update_snapshot(&b, false).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        let mut t = set_with_ts_meta(&keys, json!({"version": 1, "length": len + 1}));
        let e = t.update_snapshot(&b, false).unwrap_err();
        assert!(matches!(e, Error::Length { .. }), "{e}");
        let mut t = set_with_ts_meta(&keys, json!({"version": 1, "length": len}));
        t.update_snapshot(&b, false).expect("exact length");
    }

    #[test]
    fn snapshot_without_listed_length_capped_by_limit() {
        let keys = Keys::new();
        let v = snapshot(1, FUTURE, &[("targets", 1)]);
        let max = limits::MAX_SNAPSHOT_SIZE as usize;
        let mut t = set_with_ts_meta(&keys, json!({"version": 1}));
        let e = t
            .update_snapshot(&signed_of_len(&v, &[&keys.snapshot], max + 1), false)
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        t.update_snapshot(&signed_of_len(&v, &[&keys.snapshot], max), false)
            .expect("at limit");
    }

    #[test]
    fn snapshot_below_threshold_refused() {
        let keys = Keys::new();
        let b = sign(&snapshot(1, FUTURE, &[("targets", 1)]), &[&keys.targets]);
        let mut t = set_with_ts_meta(&keys, json!({"version": 1}));
        let e = t.update_snapshot(&b, false).unwrap_err();
        assert!(matches!(e, Error::Threshold { .. }), "{e}");
        assert!(t.snapshot().is_none());
    }

    #[test]
    fn snapshot_version_must_match_timestamp() {
        let keys = Keys::new();
        let mut t = set_with_ts_meta(&keys, json!({"version": 2}));
        let e = t
            .update_snapshot(&snap(&keys, 1, FUTURE, 1), false)
            .unwrap_err();
        assert!(matches!(e, Error::BadVersion { got: 1, .. }), "{e}");
        t.update_snapshot(&snap(&keys, 2, FUTURE, 1), false)
            .expect("v2 as listed");
    }

    #[test]
    fn expired_snapshot_refused() {
        let keys = Keys::new();
        let mut t = set_with_ts_meta(&keys, json!({"version": 1}));
        let e = t
            .update_snapshot(&snap(&keys, 1, NOW, 1), false)
            .unwrap_err();
        assert!(
            matches!(&e, Error::Expired { role, .. } if role == "snapshot"),
            "{e}"
        );
        // Kept as intermediate, but targets cannot be loaded on top of it.
        let e = t.update_targets(&repo(&keys).targets).unwrap_err();
        assert!(matches!(e, Error::Expired { .. }), "{e}");
    }

    #[test]
    fn targets_version_rollback_in_snapshot_refused() {
        let keys = Keys::new();
        let mut t = set_with_ts_meta(&keys, json!({"version": 2}));
        // The box's stored snapshot v1 lists targets v3 (loaded as local, version mismatch
        // with the new timestamp is reported but it is kept for the rollback check).
        let e = t
            .update_snapshot(&snap(&keys, 1, FUTURE, 3), true)
            .unwrap_err();
        assert!(matches!(e, Error::BadVersion { .. }), "{e}");
        let e = t
            .update_snapshot(&snap(&keys, 2, FUTURE, 2), false)
            .unwrap_err();
        assert!(
            matches!(&e, Error::BadVersion { role, got: 2, .. } if role == "targets.json"),
            "{e}"
        );
        t.update_snapshot(&snap(&keys, 2, FUTURE, 3), false)
            .expect("same targets version");
    }

    #[test]
    fn targets_role_disappearing_from_snapshot_refused() {
        let keys = Keys::new();
        let mut t = set_with_ts_meta(&keys, json!({"version": 2}));
        let old = sign(
            &snapshot(1, FUTURE, &[("targets", 1), ("role1", 1)]),
            &[&keys.snapshot],
        );
        let _ = t.update_snapshot(&old, true);
        let e = t
            .update_snapshot(&snap(&keys, 2, FUTURE, 1), false)
            .unwrap_err();
        assert!(matches!(e, Error::BadVersion { .. }), "{e}");
        let new = sign(
            &snapshot(2, FUTURE, &[("targets", 1), ("role1", 1)]),
            &[&keys.snapshot],
        );
        t.update_snapshot(&new, false).expect("role kept");
    }

    #[test]
    fn snapshot_after_targets_refused() {
        let keys = Keys::new();
        let r = repo(&keys);
        let mut t = set_through_snapshot(&keys);
        t.update_targets(&r.targets).expect("targets");
        let e = t.update_snapshot(&r.snapshot, false).unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
    }
}

mod targets {
    use super::*;

    /// A set through a snapshot whose `targets.json` entry is `meta` (and that lists
    /// `role1` v1 with no hashes).
    fn set_with_snapshot_meta(keys: &Keys, meta: Value) -> TrustedSet {
        let mut v = snapshot(1, FUTURE, &[("targets", 1), ("role1", 1)]);
        v["meta"]["targets.json"] = meta;
        let sb = sign(&v, &[&keys.snapshot]);
        let mut t = set(keys);
        t.update_timestamp(&sign(
            &timestamp(1, FUTURE, 1, Some(&sb)),
            &[&keys.timestamp],
        ))
        .expect("ts");
        t.update_snapshot(&sb, false).expect("snapshot");
        t
    }

    #[test]
    fn targets_before_snapshot_refused() {
        let keys = Keys::new();
        let r = repo(&keys);
        let mut t = set(&keys);
        t.update_timestamp(&r.timestamp).expect("ts");
        assert!(matches!(
            t.update_targets(&r.targets).unwrap_err(),
            Error::Workflow(_)
        ));
    }

    #[test]
    fn targets_hash_and_length_from_snapshot() {
        let keys = Keys::new();
        let b = repo(&keys).targets;
        let mut t = set_with_snapshot_meta(
            &keys,
            json!({"version": 1, "hashes": {"sha256": sha256_hex(b"x")}}),
        );
        assert!(matches!(
            t.update_targets(&b).unwrap_err(),
            Error::Hash { .. }
        ));
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1, "length": b.len() + 1}));
        assert!(matches!(
            t.update_targets(&b).unwrap_err(),
            Error::Length { .. }
        ));
        let mut t = set_with_snapshot_meta(
            &keys,
            json!({"version": 1, "length": b.len(), "hashes": {"sha512": sha512_hex(&b)}}),
        );
        t.update_targets(&b).expect("listed length and sha512");
    }

    #[test]
    fn targets_version_must_match_snapshot() {
        let keys = Keys::new();
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 2}));
        let e = t.update_targets(&repo(&keys).targets).unwrap_err();
        assert!(matches!(e, Error::BadVersion { got: 1, .. }), "{e}");
        assert!(t.targets("targets").is_none());
        t.update_targets(&sign(&targets(2, FUTURE), &[&keys.targets]))
            .expect("v2");
    }

    #[test]
    fn targets_threshold_and_expiry() {
        let keys = Keys::new();
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1}));
        let e = t
            .update_targets(&sign(&targets(1, FUTURE), &[&keys.snapshot]))
            .unwrap_err();
        assert!(matches!(e, Error::Threshold { .. }), "{e}");
        let e = t
            .update_targets(&sign(&targets(1, NOW), &[&keys.targets]))
            .unwrap_err();
        assert!(matches!(e, Error::Expired { .. }), "{e}");
        assert!(
            t.targets("targets").is_none(),
            "an expired targets is not kept"
        );
        t.update_targets(&sign(&targets(1, FUTURE), &[&keys.targets]))
            .expect("valid");
    }

    #[test]
    fn targets_oversized_without_listed_length_refused() {
        let keys = Keys::new();
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1}));
        let v = targets(1, FUTURE);
        let max = limits::MAX_TARGETS_SIZE as usize;
        let e = t
            .update_targets(&signed_of_len(&v, &[&keys.targets], max + 1))
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        t.update_targets(&signed_of_len(&v, &[&keys.targets], max))
            .expect("at limit");
    }

    #[test]
    fn sha512_only_target_parses() {
        let keys = Keys::new();
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1}));
        let mut v = targets(1, FUTURE);
        v["targets"]["b.bin"] = json!({"length": 3, "hashes": {"sha512": sha512_hex(b"abc")}});
        t.update_targets(&sign(&v, &[&keys.targets]))
            .expect("sha512-only target");
        let tf = &t.targets("targets").expect("trusted").signed.targets["b.bin"];
        valise_tuf::hashes::verify_hashes("b.bin", &tf.hashes, b"abc").expect("matches");
    }

    fn delegating_targets(keys: &Keys, delegate: &Signer) -> Vec<u8> {
        let mut v = targets(1, FUTURE);
        v["delegations"] = json!({
            "keys": {delegate.keyid.clone(): delegate.key_json()},
            "roles": [{"name": "role1", "keyids": [delegate.keyid], "threshold": 1,
                       "terminating": true, "paths": ["models/*"]}],
        });
        sign(&v, &[&keys.targets])
    }

    fn role1(version: u64) -> Value {
        let mut v = targets(version, FUTURE);
        v["targets"] =
            json!({"models/m.bin": {"length": 5, "hashes": {"sha256": sha256_hex(b"hello")}}});
        v
    }

    #[test]
    fn delegated_role_verified_with_the_delegators_keys() {
        let keys = Keys::new();
        let delegate = Signer::new(50);
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1}));
        t.update_targets(&delegating_targets(&keys, &delegate))
            .expect("targets");
        // Signed by the top-level targets key, not the delegated one: refused.
        let e = t
            .update_delegated_targets(&sign(&role1(1), &[&keys.targets]), "role1", "targets")
            .unwrap_err();
        assert!(matches!(e, Error::Threshold { .. }), "{e}");
        t.update_delegated_targets(&sign(&role1(1), &[&delegate]), "role1", "targets")
            .expect("delegated key");
        assert!(t.targets("role1").is_some());
        let d = t
            .targets("targets")
            .expect("t")
            .signed
            .delegations
            .clone()
            .expect("d");
        assert!(d.role("role1").expect("role1").terminating);
    }

    #[test]
    fn delegated_role_rules() {
        let keys = Keys::new();
        let delegate = Signer::new(50);
        let b = sign(&role1(1), &[&delegate]);
        let mut t = set_with_snapshot_meta(&keys, json!({"version": 1}));
        // Delegator not trusted yet.
        let e = t
            .update_delegated_targets(&b, "role1", "targets")
            .unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
        t.update_targets(&delegating_targets(&keys, &delegate))
            .expect("targets");
        // Not delegated by that role; not listed in snapshot; root delegates only targets.
        let e = t
            .update_delegated_targets(&b, "role2", "targets")
            .unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
        let e = t.update_delegated_targets(&b, "role1", "root").unwrap_err();
        assert!(matches!(e, Error::Workflow(_)), "{e}");
        let e = t
            .update_delegated_targets(&sign(&role1(2), &[&delegate]), "role1", "targets")
            .unwrap_err();
        assert!(matches!(e, Error::BadVersion { .. }), "{e}");
        t.update_delegated_targets(&b, "role1", "targets")
            .expect("ok");
    }
}
