#!/usr/bin/env python3
"""Writes a small TUF repository with python-tuf's Metadata API, for valise-tuf's
interoperability test (`daemons/valise-tuf/tests/interop.rs`).

Made with tuf 7.0.1 and securesystemslib 1.6.0 (with its `crypto` extra) from PyPI:
    python3 -m venv /tmp/tufvenv
    /tmp/tufvenv/bin/pip install tuf==7.0.1 'securesystemslib[crypto]==1.6.0'
    /tmp/tufvenv/bin/python3 daemons/valise-tuf/tests/data/python-tuf/make_fixture.py

Output (beside this script), committed: `metadata/` (1.root.json, 2.root.json,
timestamp.json, 1.snapshot.json, 1.targets.json, 1.role1.json, written by python-tuf's
`to_file`), `canonical/<file>` (securesystemslib's canonical bytes of each file's `signed`),
`targets/` (the target files). Key material is generated anew on each run (ECDSA and RSA-PSS
signatures are randomized anyway), so a rerun changes every file; the test only needs a
consistent set.

Repository: root v1 = 2-of-{ed25519, ecdsa-p256} root keys; timestamp ed25519, snapshot
rsassa-pss-sha256, targets ecdsa-p256. Root v2 adds a third root key (ed25519), threshold
2, signed by both v1 root keys and the new one. Timestamp lists snapshot with length and
sha512 only; snapshot lists targets and role1 with length and sha256. Targets has two
targets, one with a non-ASCII name and `custom` data with escapes, and delegates
`models/*/*` to role1 (ed25519 key).
"""

import hashlib
import os
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import CanonicalJSONSerializer, JSONSerializer

HERE = os.path.dirname(os.path.abspath(__file__))
EXPIRES = datetime(2030, 1, 1, tzinfo=timezone.utc)


def ed25519(seed: int) -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def check_canonical_vectors() -> None:
    """The vectors of valise-tuf's `canonical.rs` unit tests, as securesystemslib writes them."""
    assert encode_canonical({"b": 1, "a": [True, False, None], "c": {"z": -3, "y": "x"}}) == (
        '{"a":[true,false,null],"b":1,"c":{"y":"x","z":-3}}'
    )
    assert encode_canonical({"\U0001F600": 1, "\uFFFD": 2, "é": 3, "z": 4, "Z": 5}) == (
        '{"Z":5,"z":4,"é":3,"\uFFFD":2,"\U0001F600":1}'
    )
    assert encode_canonical('a"b\\c\nd\te\u0001f/') == '"a\\"b\\\\c\nd\te\u0001f/"'
    assert encode_canonical("caf\u00e9") != encode_canonical("cafe\u0301")
    assert encode_canonical([0, -1, 2**64 - 1, -(2**63)]) == (
        "[0,-1,18446744073709551615,-9223372036854775808]"
    )


def main() -> None:
    check_canonical_vectors()
    meta_dir = os.path.join(HERE, "metadata")
    canon_dir = os.path.join(HERE, "canonical")
    targets_dir = os.path.join(HERE, "targets")
    for d in (meta_dir, canon_dir, targets_dir):
        os.makedirs(d, exist_ok=True)

    root_a = ed25519(11)
    root_b = CryptoSigner.generate_ecdsa()
    root_c = ed25519(13)
    ts_key = ed25519(14)
    sn_key = CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256", size=3072)
    tg_key = CryptoSigner.generate_ecdsa()
    r1_key = ed25519(15)

    files = {}

    root = Metadata(Root(expires=EXPIRES, consistent_snapshot=True))
    for s in (root_a, root_b):
        root.signed.add_key(s.public_key, "root")
    root.signed.roles["root"].threshold = 2
    root.signed.add_key(ts_key.public_key, "timestamp")
    root.signed.add_key(sn_key.public_key, "snapshot")
    root.signed.add_key(tg_key.public_key, "targets")
    root.sign(root_a, append=True)
    root.sign(root_b, append=True)
    files["1.root.json"] = root

    root2 = Metadata.from_bytes(root.to_bytes())
    root2.signatures.clear()
    root2.signed.version = 2
    root2.signed.add_key(root_c.public_key, "root")
    for s in (root_a, root_b, root_c):
        root2.sign(s, append=True)
    files["2.root.json"] = root2

    contents = {
        "models/pt-en/model.bin": b"weights\x00\x01\x02",
        "docs/caf\u00e9 \u2713.txt": "ação ✓\n".encode(),
    }
    targets = Metadata(Targets(expires=EXPIRES))
    for name, data in contents.items():
        path = os.path.join(targets_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        tf = TargetFile.from_data(name, data, ["sha256", "sha512"])
        targets.signed.targets[name] = tf
    targets.signed.targets["docs/caf\u00e9 \u2713.txt"].unrecognized_fields["custom"] = {
        "valise": {"note": 'ação "quoted" \\ back\tslash', "n": 7}
    }
    targets.signed.delegations = Delegations(
        keys={r1_key.public_key.keyid: r1_key.public_key},
        roles={
            "role1": DelegatedRole(
                "role1", [r1_key.public_key.keyid], 1, True, paths=["models/*/*"]
            )
        },
    )
    targets.sign(tg_key)
    files["1.targets.json"] = targets

    role1 = Metadata(Targets(expires=EXPIRES))
    role1.signed.targets["models/pt-en/model.bin"] = targets.signed.targets[
        "models/pt-en/model.bin"
    ]
    role1.sign(r1_key)
    files["1.role1.json"] = role1

    def raw(md: Metadata) -> bytes:
        return md.to_bytes(JSONSerializer(compact=False))

    snapshot = Metadata(Snapshot(expires=EXPIRES))
    for role, name in (("targets", "1.targets.json"), ("role1", "1.role1.json")):
        data = raw(files[name])
        snapshot.signed.meta[f"{role}.json"] = MetaFile(
            version=1, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
        )
    snapshot.sign(sn_key)
    files["1.snapshot.json"] = snapshot

    sdata = raw(snapshot)
    timestamp = Metadata(Timestamp(expires=EXPIRES))
    timestamp.signed.snapshot_meta = MetaFile(
        version=1, length=len(sdata), hashes={"sha512": hashlib.sha512(sdata).hexdigest()}
    )
    timestamp.sign(ts_key)
    files["timestamp.json"] = timestamp

    for name, md in files.items():
        with open(os.path.join(meta_dir, name), "wb") as f:
            f.write(raw(md))
        with open(os.path.join(canon_dir, name), "wb") as f:
            f.write(CanonicalJSONSerializer().serialize(md.signed))
        # What was written verifies with python-tuf itself.
        Metadata.from_bytes(raw(md))
    delegated = targets.signed.delegations.roles["role1"]
    assert delegated.is_delegated_path("models/pt-en/model.bin")
    assert not delegated.is_delegated_path("models/model.bin")
    root.verify_delegate("root", root2)
    root2.verify_delegate("root", root2)
    print("wrote", sorted(files))


if __name__ == "__main__":
    main()
