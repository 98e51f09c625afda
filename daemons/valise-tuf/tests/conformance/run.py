#!/usr/bin/env python3
"""Conformance scenarios for valise-tuf-client, written here (not taken from the
tuf-conformance suite) on python-tuf's Metadata API: repositories are built and signed by
python-tuf 6.0 / securesystemslib 1.3 (RSA PKCS#1 v1.5 keys by default, as the suite uses,
plus Ed25519, ECDSA P-256 and RSA-PSS), served by a single-threaded HTTP server that answers
one request at a time while the client runs and logs every request, and the client is run
through the suite's CLIENT-CLI.md protocol (init, refresh, download; faketime for clock
shifts). Each scenario asserts exit codes, the trusted metadata left in the metadata
directory (bytes), the downloaded artifacts and, where the spec fixes it, the request order.

    run.py CLIENT [-k SUBSTRING] [--kind rsa|rsa-pss|ecdsa|ed25519] [-v]

Prints one line per scenario and "conformance scenarios: N passed, M failed"; exit 1 if any
failed. scripts/tuf-conformance runs it in the venv it makes.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from urllib import parse

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TOP = ("root", "timestamp", "snapshot", "targets")


def new_signer(kind: str = "rsa") -> CryptoSigner:
    if kind == "rsa":
        return CryptoSigner.generate_rsa(scheme="rsa-pkcs1v15-sha256")
    if kind == "rsa-pss":
        return CryptoSigner.generate_rsa()
    if kind == "ecdsa":
        return CryptoSigner.generate_ecdsa()
    if kind == "ed25519":
        return CryptoSigner.generate_ed25519()
    raise ValueError(kind)


class Repo:
    """A repository whose current metadata are edited in place and published as new
    versions; every published version stays fetchable (N.role.json)."""

    def __init__(self, kind: str = "rsa") -> None:
        self.kind = kind
        self.expiry = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0
        ) + datetime.timedelta(days=30)
        self.md: dict[str, Metadata] = {
            "root": Metadata(Root(expires=self.expiry)),
            "timestamp": Metadata(Timestamp(expires=self.expiry)),
            "snapshot": Metadata(Snapshot(expires=self.expiry)),
            "targets": Metadata(Targets(expires=self.expiry)),
        }
        self.signers: dict[str, list[CryptoSigner]] = {}
        self.published: dict[str, list[bytes]] = {}
        self.artifacts: dict[str, bytes] = {}
        for role in TOP:
            s = new_signer(kind)
            self.root.add_key(s.public_key, role)
            self.signers[role] = [s]
        self.publish("targets", "snapshot", "timestamp", "root")

    @property
    def root(self) -> Root:
        return self.md["root"].signed

    def signed(self, role: str):
        return self.md[role].signed

    def publish(self, *roles: str, bump: bool = True) -> None:
        for role in roles:
            md = self.md[role]
            if bump and role in self.published:
                md.signed.version += 1
            md.signatures.clear()
            for s in self.signers[role]:
                md.sign(s, append=True)
            self.published.setdefault(role, []).append(md.to_bytes(JSONSerializer()))

    def update_timestamp(self) -> None:
        self.signed("timestamp").snapshot_meta = MetaFile(self.signed("snapshot").version)
        self.publish("timestamp")

    def update_snapshot(self) -> None:
        for role, versions in self.published.items():
            if role in ("root", "timestamp", "snapshot"):
                continue
            v = Metadata.from_bytes(versions[-1]).signed.version
            self.signed("snapshot").meta[f"{role}.json"] = MetaFile(v)
        self.publish("snapshot")
        self.update_timestamp()

    def add_artifact(self, role: str, path: str, data: bytes, algs=("sha256",)) -> None:
        self.signed(role).targets[path] = TargetFile.from_data(path, data, list(algs))
        self.artifacts[path] = data

    def delegate(
        self,
        delegator: str,
        name: str,
        paths: list[str] | None = None,
        terminating: bool = False,
        hash_prefixes: list[str] | None = None,
    ) -> None:
        t = self.signed(delegator)
        if t.delegations is None:
            t.delegations = Delegations({}, roles={})
        t.delegations.roles[name] = DelegatedRole(
            name, [], 1, terminating, paths, hash_prefixes
        )
        s = new_signer(self.kind)
        t.add_key(s.public_key, name)
        self.signers[name] = [s]
        if name not in self.md:
            self.md[name] = Metadata(Targets(expires=self.expiry))

    def rotate(self, role: str, kind: str | None = None) -> CryptoSigner:
        """Replace role's keys by one new key (a new root version must be published)."""
        for keyid in list(self.root.roles[role].keyids):
            self.root.revoke_key(keyid, role)
        s = new_signer(kind or self.kind)
        self.root.add_key(s.public_key, role)
        self.signers[role] = [s]
        return s

    def serve(self, path: str) -> bytes | None:
        if path.startswith("/metadata/") and path.endswith(".json"):
            name = parse.unquote(path[len("/metadata/") : -len(".json")])
            if name == "timestamp" or not self.root.consistent_snapshot:
                versions = self.published.get(name)
                if name == "root" or not versions:
                    return None
                return versions[-1]
            ver, _, role = name.partition(".")
            if not ver.isdigit() or role not in self.published:
                return None
            # The last one published with that version (tests may publish out of order).
            for data in reversed(self.published[role]):
                if Metadata.from_bytes(data).signed.version == int(ver):
                    return data
            return None
        if path.startswith("/targets/"):
            rest = parse.unquote(path[len("/targets/") :])
            d, sep, base = rest.rpartition("/")
            if self.root.consistent_snapshot:
                h, _, base = base.partition(".")
                name = f"{d}{sep}{base}"
                data = self.artifacts.get(name)
                if data is None:
                    return None
                listed = {
                    v
                    for r in self.md.values()
                    if isinstance(r.signed, Targets) and name in r.signed.targets
                    for v in r.signed.targets[name].hashes.values()
                }
                return data if h in listed else None
            return self.artifacts.get(rest)
        return None


class Server(http.server.HTTPServer):
    """One request at a time (handle_request while the client runs), each logged."""

    def __init__(self, repo: Repo) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.log.append(self.path)
                data = outer.repo.serve(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.timeout = 0.02
        self.repo = repo
        self.log: list[str] = []

    def take(self) -> list[str]:
        out, self.log = self.log, []
        return out


class Client:
    def __init__(self, exe: str, server: Server, tmp: str, verbose: bool) -> None:
        self.exe, self.server, self.verbose = exe, server, verbose
        self.md_dir = os.path.join(tmp, "metadata")
        self.dl_dir = os.path.join(tmp, "targets")
        os.mkdir(self.md_dir)
        os.mkdir(self.dl_dir)
        host, port = server.server_address[:2]
        self.md_url = f"http://{host}:{port}/metadata/"
        self.t_url = f"http://{host}:{port}/targets/"
        self.tmp = tmp

    def _run(self, args: list[str], days: int = 0) -> int:
        cmd = [self.exe, *args]
        if days:
            cmd = ["faketime", "-f", f"+{days}d", *cmd]
        err = None if self.verbose else subprocess.DEVNULL
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        while p.poll() is None:
            self.server.handle_request()
        return p.returncode

    def init(self, root: bytes) -> int:
        path = os.path.join(self.tmp, "initial_root.json")
        with open(path, "wb") as f:
            f.write(root)
        return self._run(["--metadata-dir", self.md_dir, "init", path])

    def refresh(self, days: int = 0) -> int:
        args = ["--metadata-url", self.md_url, "--metadata-dir", self.md_dir, "refresh"]
        return self._run(args, days)

    def download(self, name: str, days: int = 0) -> int:
        args = [
            "--metadata-dir", self.md_dir, "--metadata-url", self.md_url,
            "--target-name", name, "--target-base-url", self.t_url,
            "--target-dir", self.dl_dir, "download",
        ]
        return self._run(args, days)

    def trusted(self) -> dict[str, bytes]:
        out = {}
        for n in sorted(os.listdir(self.md_dir)):
            with open(os.path.join(self.md_dir, n), "rb") as f:
                out[n] = f.read()
        return out

    def version(self, role: str) -> int:
        with open(os.path.join(self.md_dir, f"{parse.quote(role, '')}.json"), "rb") as f:
            return Metadata.from_bytes(f.read()).signed.version

    def downloads(self) -> dict[str, bytes]:
        out = {}
        for n in sorted(os.listdir(self.dl_dir)):
            with open(os.path.join(self.dl_dir, n), "rb") as f:
                out[n] = f.read()
        return out


SCENARIOS = []


def release(repo: Repo, path: str, data: bytes, algs=("sha256",)) -> None:
    """A new targets version listing `path`, then snapshot and timestamp."""
    repo.add_artifact("targets", path, data, algs)
    repo.publish("targets")
    repo.update_snapshot()


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


# --- top-level metadata -------------------------------------------------------------------


@scenario
def refresh_stores_served_bytes(repo, c):
    assert c.init(repo.published["root"][0]) == 0
    assert c.refresh() == 0
    assert c.server.take() == [
        "/metadata/2.root.json", "/metadata/timestamp.json",
        "/metadata/1.snapshot.json", "/metadata/1.targets.json",
    ]
    t = c.trusted()
    assert t == {
        "root.json": repo.published["root"][0],
        "snapshot.json": repo.published["snapshot"][0],
        "targets.json": repo.published["targets"][0],
        "timestamp.json": repo.published["timestamp"][0],
    }, sorted(t)


@scenario
def each_key_type_verifies(repo, c):
    for kind in ("ed25519", "ecdsa", "rsa-pss", "rsa"):
        r = Repo(kind)
        c.server.repo = r
        shutil.rmtree(c.md_dir)
        os.mkdir(c.md_dir)
        assert c.init(r.published["root"][0]) == 0
        assert c.refresh() == 0, kind
        assert sorted(c.trusted()) == [
            "root.json", "snapshot.json", "targets.json", "timestamp.json"
        ], kind


@scenario
def same_version_timestamp_is_not_an_error(repo, c):
    c.init(repo.published["root"][0])
    assert c.refresh() == 0
    assert c.refresh() == 0
    assert c.version("timestamp") == 1


@scenario
def timestamp_rollback_refused(repo, c):
    c.init(repo.published["root"][0])
    repo.update_timestamp()
    repo.update_timestamp()
    assert c.refresh() == 0
    before = c.trusted()
    repo.published["timestamp"].append(repo.published["timestamp"][0])
    assert c.refresh() == 1
    assert c.trusted() == before


@scenario
def snapshot_meta_version_rollback_refused(repo, c):
    c.init(repo.published["root"][0])
    repo.publish("targets")
    repo.update_snapshot()
    assert c.refresh() == 0
    before = c.trusted()
    repo.signed("snapshot").meta["targets.json"] = MetaFile(1)
    repo.publish("snapshot")
    repo.update_timestamp()
    assert c.refresh() == 1
    assert c.trusted()["snapshot.json"] == before["snapshot.json"]


@scenario
def expired_timestamp_refused_with_faketime(repo, c):
    c.init(repo.published["root"][0])
    assert c.refresh() == 0
    before = c.trusted()
    repo.update_timestamp()
    assert c.refresh(days=31) == 1
    assert c.trusted() == before
    assert c.refresh() == 0


@scenario
def root_rotation_chain_followed(repo, c):
    c.init(repo.published["root"][0])
    for _ in range(3):
        old = list(repo.signers["root"])
        repo.rotate("root")
        repo.signers["root"] = old + repo.signers["root"]
        repo.publish("root")
        repo.signers["root"] = repo.signers["root"][len(old):]
    assert c.refresh() == 0
    assert c.version("root") == 4
    assert c.trusted()["root.json"] == repo.published["root"][3]


@scenario
def root_rotation_without_old_signature_refused(repo, c):
    c.init(repo.published["root"][0])
    repo.rotate("root")
    repo.publish("root")
    assert c.refresh() == 1
    assert c.version("root") == 1


@scenario
def root_rotation_without_new_signature_refused(repo, c):
    c.init(repo.published["root"][0])
    old = list(repo.signers["root"])
    repo.rotate("root")
    repo.signers["root"] = old
    repo.publish("root")
    assert c.refresh() == 1
    assert c.version("root") == 1


@scenario
def expired_intermediate_root_accepted(repo, c):
    c.init(repo.published["root"][0])
    repo.root.expires = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    repo.publish("root")
    repo.root.expires = repo.expiry
    repo.publish("root")
    assert c.refresh() == 0
    assert c.version("root") == 3


@scenario
def fast_forward_recovery_by_rotating_timestamp_key(repo, c):
    c.init(repo.published["root"][0])
    repo.signed("timestamp").version = 99
    repo.update_timestamp()
    assert c.refresh() == 0
    repo.signed("timestamp").version = 1
    repo.update_timestamp()
    assert c.refresh() == 1, "looks like a rollback before the rotation"
    repo.rotate("timestamp")
    repo.publish("root")
    repo.update_timestamp()
    assert c.refresh() == 0
    assert c.version("timestamp") == 3


@scenario
def same_version_timestamp_with_other_bytes_keeps_the_trusted_one(repo, c):
    c.init(repo.published["root"][0])
    assert c.refresh() == 0
    first = c.trusted()["timestamp.json"]
    repo.signed("timestamp").expires += datetime.timedelta(days=1)
    repo.publish("timestamp", bump=False)
    assert repo.published["timestamp"][-1] != first
    assert c.refresh() == 0
    assert c.trusted()["timestamp.json"] == first


@scenario
def snapshot_fast_forward_recovery_by_rotating_snapshot_key(repo, c):
    c.init(repo.published["root"][0])
    repo.signed("snapshot").version = 99
    repo.publish("snapshot", bump=False)
    repo.update_timestamp()
    assert c.refresh() == 0
    assert c.version("snapshot") == 99
    repo.signed("snapshot").version = 2
    repo.publish("snapshot", bump=False)
    repo.update_timestamp()
    assert c.refresh() == 1, "snapshot 2 after 99: rollback until the key rotates"
    repo.rotate("snapshot")
    repo.publish("root")
    repo.signed("snapshot").version = 3
    repo.publish("snapshot", bump=False)
    repo.update_timestamp()
    assert c.refresh() == 0
    assert c.version("snapshot") == 3


@scenario
def targets_fast_forward_recovery_by_rotating_snapshot_key(repo, c):
    c.init(repo.published["root"][0])
    repo.signed("targets").version = 99
    repo.publish("targets", bump=False)
    repo.update_snapshot()
    assert c.refresh() == 0
    assert c.version("targets") == 99
    repo.signed("targets").version = 2
    repo.publish("targets", bump=False)
    repo.update_snapshot()
    assert c.refresh() == 1, "snapshot lists targets 2 after 99"
    repo.rotate("snapshot")
    repo.publish("root")
    repo.update_snapshot()
    assert c.refresh() == 0
    assert c.version("targets") == 2


@scenario
def keyid_not_recomputed(repo, c):
    # A key with an extra field (its key id no longer its sha256): still the trusted key.
    c.init(repo.published["root"][0])
    keyid = repo.root.roles["timestamp"].keyids[0]
    repo.root.keys[keyid].unrecognized_fields["keyid_hash_algorithms"] = ["sha256", "sha512"]
    repo.publish("root")
    assert c.refresh() == 0
    assert c.version("root") == 2


@scenario
def metadata_unversioned_without_consistent_snapshot(repo, c):
    repo.root.consistent_snapshot = False
    repo.publish("root", bump=False)
    repo.published["root"] = repo.published["root"][-1:]
    release(repo, "a.txt", b"abc")
    c.init(repo.published["root"][0])
    assert c.download("a.txt") == 0
    assert c.server.take() == [
        "/metadata/2.root.json", "/metadata/timestamp.json",
        "/metadata/snapshot.json", "/metadata/targets.json", "/targets/a.txt",
    ]


@scenario
def snapshot_hashes_checked_when_listed(repo, c):
    c.init(repo.published["root"][0])
    snap = repo.published["snapshot"][-1]
    repo.signed("timestamp").snapshot_meta = MetaFile(
        1, len(snap), {"sha256": hashlib.sha256(b"other").hexdigest()}
    )
    repo.publish("timestamp")
    assert c.refresh() == 1
    assert "snapshot.json" not in c.trusted()


# --- targets ------------------------------------------------------------------------------


@scenario
def download_hash_prefixed_then_cached(repo, c):
    release(repo, "dir/a file.txt", b"payload")
    c.init(repo.published["root"][0])
    assert c.download("dir/a file.txt") == 0
    h = hashlib.sha256(b"payload").hexdigest()
    assert c.server.take()[-1] == f"/targets/dir/{h}.a%20file.txt"
    assert c.downloads() == {"dir%2Fa%20file.txt": b"payload"}
    assert c.download("dir/a file.txt") == 0
    assert not any(p.startswith("/targets/") for p in c.server.take())


@scenario
def sha512_only_target(repo, c):
    release(repo, "b.bin", b"\x00\x01", algs=("sha512",))
    c.init(repo.published["root"][0])
    assert c.download("b.bin") == 0
    assert c.downloads() == {"b.bin": b"\x00\x01"}


@scenario
def wrong_target_bytes_refused(repo, c):
    release(repo, "a.txt", b"good")
    repo.artifacts["a.txt"] = b"evil"
    c.init(repo.published["root"][0])
    assert c.download("a.txt") == 1
    assert c.downloads() == {}


@scenario
def target_longer_than_listed_refused(repo, c):
    release(repo, "a.txt", b"good")
    repo.artifacts["a.txt"] = b"good and more"
    c.init(repo.published["root"][0])
    assert c.download("a.txt") == 1
    assert c.downloads() == {}


@scenario
def changed_artifact_downloaded_again_under_the_same_name(repo, c):
    release(repo, "a.txt", b"one")
    c.init(repo.published["root"][0])
    assert c.download("a.txt") == 0
    release(repo, "a.txt", b"two!")
    assert c.download("a.txt") == 0
    assert c.downloads() == {"a.txt": b"two!"}


@scenario
def missing_target_fails(repo, c):
    c.init(repo.published["root"][0])
    assert c.download("nothing") == 1


# --- delegations --------------------------------------------------------------------------


@scenario
def delegation_graph_preorder_and_lazy(repo, c):
    # targets -> A(*), B(*); A -> C(*), D(other/*); target in B.
    for name, parent, paths in (
        ("A", "targets", ["*"]), ("B", "targets", ["*"]),
        ("C", "A", ["*"]), ("D", "A", ["other/*"]),
    ):
        repo.delegate(parent, name, paths)
    repo.add_artifact("B", "t.txt", b"in B")
    for r in ("C", "D", "A", "B", "targets"):
        repo.publish(r)
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download("t.txt") == 0
    reqs = c.server.take()
    assert reqs[4:] == [
        "/metadata/1.A.json", "/metadata/1.C.json", "/metadata/1.B.json",
        f"/targets/{hashlib.sha256(b'in B').hexdigest()}.t.txt",
    ], reqs
    assert sorted(c.trusted()) == [
        "A.json", "B.json", "C.json", "root.json", "snapshot.json",
        "targets.json", "timestamp.json",
    ]


@scenario
def terminating_delegation_stops_search(repo, c):
    repo.delegate("targets", "A", ["*"], terminating=True)
    repo.delegate("targets", "B", ["*"])
    repo.add_artifact("B", "t.txt", b"in B")
    for r in ("A", "B", "targets"):
        repo.publish(r)
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download("t.txt") == 1
    assert not any("B.json" in p for p in c.server.take())


@scenario
def hash_prefix_delegation(repo, c):
    name = "models/x.bin"
    prefix = hashlib.sha256(name.encode()).hexdigest()[:4]
    repo.delegate("targets", "miss", hash_prefixes=["ffff" if prefix != "ffff" else "0000"])
    repo.delegate("targets", "hit", hash_prefixes=[prefix])
    repo.add_artifact("hit", name, b"x")
    for r in ("miss", "hit", "targets"):
        repo.publish(r)
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download(name) == 0
    reqs = c.server.take()
    assert "/metadata/1.hit.json" in reqs, reqs
    assert not any("miss" in p for p in reqs), reqs
    assert c.downloads() == {"models%2Fx.bin": b"x"}


@scenario
def succinct_hash_bins(repo, c):
    s = new_signer(repo.kind)
    sr = SuccinctRoles([], 1, 8, "bins")
    repo.signed("targets").delegations = Delegations({}, None, sr)
    repo.signed("targets").add_key(s.public_key)
    name = "a/b.txt"
    bin_name = sr.get_role_for_target(name)
    repo.md[bin_name] = Metadata(Targets(expires=repo.expiry))
    repo.signers[bin_name] = [s]
    repo.add_artifact(bin_name, name, b"binned")
    repo.publish(bin_name)
    repo.publish("targets")
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download(name) == 0
    assert f"/metadata/1.{bin_name}.json" in c.server.take()
    assert c.downloads() == {"a%2Fb.txt": b"binned"}


@scenario
def unusual_role_and_target_names(repo, c):
    for role in ("with space", "ünïcode", "a/b", "..", "%41"):
        repo.delegate("targets", role, ["*"])
        repo.publish(role)
    repo.delegate("targets", "last", ["*"])
    repo.add_artifact("last", "t ✓.txt", b"found")
    repo.publish("last")
    repo.publish("targets")
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download("t ✓.txt") == 0
    files = sorted(c.trusted())
    for f in ("with%20space.json", "%C3%BCn%C3%AFcode.json", "a%2Fb.json", "...json",
              "%2541.json", "last.json"):
        assert f in files, (f, files)
    assert c.downloads() == {"t%20%E2%9C%93.txt": b"found"}


@scenario
def delegated_role_wrong_key_refused(repo, c):
    repo.delegate("targets", "A", ["*"])
    repo.add_artifact("A", "t.txt", b"x")
    repo.signers["A"] = [new_signer(repo.kind)]
    repo.publish("A")
    repo.publish("targets")
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download("t.txt") == 1
    assert "A.json" not in c.trusted()


@scenario
def expired_delegated_role_refused(repo, c):
    repo.delegate("targets", "A", ["*"])
    repo.add_artifact("A", "t.txt", b"x")
    repo.signed("A").expires = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    repo.publish("A")
    repo.publish("targets")
    repo.update_snapshot()
    c.init(repo.published["root"][0])
    assert c.download("t.txt") == 1
    assert c.downloads() == {}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("client")
    ap.add_argument("-k", default="")
    ap.add_argument("--kind", default="rsa", help="key type of the repositories' keys")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    exe = os.path.abspath(a.client)
    passed = failed = 0
    for fn in SCENARIOS:
        if a.k not in fn.__name__:
            continue
        repo = Repo(a.kind)
        server = Server(repo)
        tmp = tempfile.mkdtemp(prefix="valise-conformance-")
        try:
            fn(repo, Client(exe, server, tmp, a.v))
            passed += 1
            print(f"PASS {fn.__name__}")
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc(limit=2)
        finally:
            server.server_close()
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"conformance scenarios: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
