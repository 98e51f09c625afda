//! Interoperability with python-tuf: a repository written by python-tuf 7.0.1's Metadata API
//! and securesystemslib 1.6.0 (`data/python-tuf/make_fixture.py`, output committed) loads
//! through the trusted set, with its Ed25519, ECDSA P-256 and RSA-PSS signatures, sha512-only
//! and sha256 listings, a non-ASCII target name and a delegation; our canonical JSON of each
//! file's `signed` is byte-for-byte securesystemslib's.

mod common;

use common::now;
use serde_json::Value;
use valise_tuf::schema::{Metadata, Root, Snapshot, Targets};
use valise_tuf::trusted::{TimestampUpdate, TrustedSet};
use valise_tuf::verify::verify_threshold;
use valise_tuf::{Error, canonical, hashes};

const FILES: [&str; 6] = [
    "1.root.json",
    "2.root.json",
    "timestamp.json",
    "1.snapshot.json",
    "1.targets.json",
    "1.role1.json",
];

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/python-tuf/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn meta(name: &str) -> Vec<u8> {
    read(&format!("metadata/{name}"))
}

#[test]
fn canonical_bytes_match_securesystemslib() {
    for name in FILES {
        let v: Value = serde_json::from_slice(&meta(name)).expect("json");
        let ours = canonical::encode(&v["signed"]).expect("canonical");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&read(&format!("canonical/{name}"))),
            "{name}"
        );
    }
}

#[test]
fn python_tuf_repository_verifies() {
    let mut t = TrustedSet::new(&meta("1.root.json"), now()).expect("root v1");
    t.update_root(&meta("2.root.json"))
        .expect("root v2, signed by v1 and v2 keys");
    assert_eq!(
        t.update_timestamp(&meta("timestamp.json"))
            .expect("timestamp"),
        TimestampUpdate::Updated
    );
    let ts = t.timestamp().expect("ts").signed.snapshot_meta().clone();
    let ts_hashes = ts.hashes.expect("listed");
    assert_eq!(ts_hashes.first().map(|h| h.0), Some("sha512"));
    assert_eq!(ts_hashes.0.len(), 1, "sha512 only");
    t.update_snapshot(&meta("1.snapshot.json"), false)
        .expect("snapshot (RSA-PSS), sha512-only listing");
    t.update_targets(&meta("1.targets.json"))
        .expect("targets (ECDSA P-256)");
    t.update_delegated_targets(&meta("1.role1.json"), "role1", "targets")
        .expect("role1 (ed25519)");

    let root = &t.root().signed;
    let mut types: Vec<&str> = root.keys.values().map(|k| k.scheme.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        ["ecdsa-sha2-nistp256", "ed25519", "rsassa-pss-sha256"],
        "all three key types were used"
    );

    let targets = &t.targets("targets").expect("targets").signed;
    for (name, tf) in &targets.targets {
        let data = read(&format!("targets/{name}"));
        assert_eq!(tf.length, data.len() as u64, "{name}");
        hashes::verify_hashes(name, &tf.hashes, &data).expect(name);
    }
    let custom = &targets.targets["docs/café ✓.txt"].custom;
    assert_eq!(
        custom.as_ref().expect("custom")["valise"]["note"],
        "ação \"quoted\" \\ back\tslash"
    );
    let d = targets.delegations.as_ref().expect("delegations");
    let role1 = d.role("role1").expect("role1");
    assert!(role1.terminating);
    // The same answers python-tuf's `is_delegated_path` gives (asserted in make_fixture.py).
    assert!(role1.is_delegated_path("models/pt-en/model.bin"));
    assert!(!role1.is_delegated_path("models/model.bin"));
}

/// Each python-signed role, with one byte of its canonical `signed` changed, no longer
/// verifies (a check that the three signature schemes really are verified, not skipped).
#[test]
fn tampered_python_metadata_refused() {
    let root2 = Metadata::<Root>::from_bytes(&meta("2.root.json")).expect("root");
    let root = &root2.signed;
    let snapshot = Metadata::<Snapshot>::from_bytes(&meta("1.snapshot.json")).expect("sn");
    let targets = Metadata::<Targets>::from_bytes(&meta("1.targets.json")).expect("tg");
    let cases: [(&str, Vec<u8>, &[valise_tuf::schema::Signature]); 3] = [
        ("root", root2.canonical_signed.clone(), &root2.signatures),
        (
            "snapshot",
            snapshot.canonical_signed.clone(),
            &snapshot.signatures,
        ),
        (
            "targets",
            targets.canonical_signed.clone(),
            &targets.signatures,
        ),
    ];
    for (role, bytes, sigs) in cases {
        let keys = root.role(role).expect("role");
        verify_threshold(role, keys, &root.keys, &bytes, sigs).expect("untouched verifies");
        let mut bad = bytes.clone();
        let i = bad.len() / 2;
        bad[i] ^= 0x01;
        let e = verify_threshold(role, keys, &root.keys, &bad, sigs).unwrap_err();
        assert!(
            matches!(e, Error::Threshold { valid: 0, .. }),
            "{role}: {e}"
        );
    }
}
