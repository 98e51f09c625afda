//! Spec 5.7, target download through the `Fetch` trait: the URL (`dir/<first listed
//! hash>.<basename>` with consistent snapshots, the plain path without), at most `length`
//! bytes, every known hash checked, `<dest>.part` then rename (nothing at `dest` and no
//! `.part` after a refusal), sha512-only listings accepted, listings with no known algorithm
//! refused before any request, the cache (`cached_target`), an interrupted `.part` resumed
//! (from a directory by seeking; over nginx with mutual TLS by HTTP Range).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use valise_tuf::fetch::{DirFetch, Fetch, FetchError, Sink};
use valise_tuf::store::MetadataStore;
use valise_tuf::updater::{TargetFile, UpdateError, Updater};
use valise_tuf::{Error, TrustedSet};

const MODEL: &[u8] = b"model weights, version 2";

struct World {
    tmp: tempfile::TempDir,
    store: MetadataStore,
    fetch: Recording<DirFetch>,
}

impl World {
    /// A repository whose top-level targets lists `listing` (path → {length, hashes}), with
    /// the files `files` written under `targets/`.
    fn new(listing: Value, files: &[(&str, &[u8])], consistent: bool) -> Self {
        let keys = Keys::new();
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let mut top = targets_with(1, &[], None);
        top["targets"] = listing;
        let root = write_repo_opts(
            &repo,
            &keys,
            &[("targets", &top, &keys.targets)],
            consistent,
        );
        write_targets(&repo, files, consistent);
        let store = MetadataStore::open(tmp.path().join("store")).unwrap();
        store.write("root", &root).unwrap();
        fs::create_dir_all(tmp.path().join("dl")).unwrap();
        World {
            fetch: Recording::new(DirFetch::new(&repo)),
            tmp,
            store,
        }
    }

    /// The usual repository: `models/fr-en/model.bin` listed with sha256.
    fn model(consistent: bool) -> Self {
        Self::new(
            listing("models/fr-en/model.bin", MODEL, &[("sha256", MODEL)]),
            &[("models/fr-en/model.bin", MODEL)],
            consistent,
        )
    }

    fn updater(&self) -> Updater<Recording<DirFetch>> {
        Updater::new(self.fetch.clone(), self.store.clone())
    }

    fn find(&self, name: &str) -> TargetFile {
        let mut set: TrustedSet = self.updater().refresh(now()).unwrap();
        let t = self.updater().find_target(&mut set, name).unwrap().unwrap();
        self.fetch.take();
        t
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dl/model.bin")
    }

    /// The download directory's entries.
    fn downloads(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.tmp.path().join("dl"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// `{name: {length, hashes}}` with the hashes of `content` for each (algorithm, bytes
/// hashed) pair in this order (bytes other than `content` make a wrong hash).
fn listing(name: &str, content: &[u8], hashes: &[(&str, &[u8])]) -> Value {
    let mut h = serde_json::Map::new();
    for (alg, bytes) in hashes {
        let hex = match *alg {
            "sha256" => sha256_hex(bytes),
            "sha512" => sha512_hex(bytes),
            _ => "900150983cd24fb0d6963f7d28e17f72".to_owned(),
        };
        h.insert((*alg).to_owned(), json!(hex));
    }
    json!({name: {"length": content.len(), "hashes": h}})
}

#[test]
fn consistent_snapshot_url_is_dir_then_hash_dot_basename() {
    let w = World::model(true);
    let t = w.find("models/fr-en/model.bin");
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(
        w.fetch.take(),
        [format!(
            "targets/models/fr-en/{}.model.bin",
            sha256_hex(MODEL)
        )]
    );
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
    assert_eq!(w.downloads(), ["model.bin"], "no .part left");
}

#[test]
fn without_consistent_snapshot_url_is_the_path() {
    let w = World::model(false);
    let t = w.find("models/fr-en/model.bin");
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(w.fetch.take(), ["targets/models/fr-en/model.bin"]);
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
}

#[test]
fn sha512_only_listing_accepted_and_first_listed_hash_names_the_file() {
    let w = World::new(listing("m.bin", MODEL, &[("sha512", MODEL)]), &[], true);
    let dir = w.tmp.path().join("repo/targets");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("{}.m.bin", sha512_hex(MODEL))), MODEL).unwrap();
    let t = w.find("m.bin");
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
    assert!(Updater::<DirFetch>::cached_target(&t, &w.dest()));

    // sha512 listed first, sha256 second: the URL uses the sha512. (serde_json writes keys
    // sorted; the lines are swapped in the file, which the signature over canonical JSON
    // does not see.)
    let w = World::new(
        listing("m.bin", MODEL, &[("sha512", MODEL), ("sha256", MODEL)]),
        &[],
        true,
    );
    let file = w.tmp.path().join("repo/metadata/1.targets.json");
    let text = fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let i = lines
        .iter()
        .position(|l| l.trim_start().starts_with("\"sha256\""))
        .unwrap();
    assert!(lines[i + 1].trim_start().starts_with("\"sha512\""));
    let first = format!("{},", lines[i + 1]);
    lines[i + 1] = lines[i].trim_end_matches(',').to_owned();
    lines[i] = first;
    fs::write(&file, lines.join("\n")).unwrap();
    let t = w.find("m.bin");
    assert_eq!(t.hashes.first().map(|(a, _)| a), Some("sha512"));
    assert_eq!(t.url_path, format!("{}.m.bin", sha512_hex(MODEL)));
}

#[test]
fn no_known_hash_algorithm_refused_before_any_request() {
    let w = World::new(
        listing("models/fr-en/model.bin", MODEL, &[("md5", MODEL)]),
        &[("models/fr-en/model.bin", MODEL)],
        false,
    );
    let t = w.find("models/fr-en/model.bin");
    let r = w.updater().download_target(&t, &w.dest());
    assert!(
        matches!(r, Err(UpdateError::Tuf(Error::Hash { .. }))),
        "{r:?}"
    );
    assert_eq!(w.fetch.take(), Vec::<String>::new());
    assert!(w.downloads().is_empty());
    // An unknown algorithm beside a known one is ignored.
    let w = World::new(
        listing(
            "models/fr-en/model.bin",
            MODEL,
            &[("md5", MODEL), ("sha256", MODEL)],
        ),
        &[("models/fr-en/model.bin", MODEL)],
        false,
    );
    let t = w.find("models/fr-en/model.bin");
    w.updater().download_target(&t, &w.dest()).unwrap();
}

#[test]
fn every_known_hash_must_match() {
    // sha256 right, sha512 of other bytes: refused, nothing left behind.
    let w = World::new(
        listing(
            "models/fr-en/model.bin",
            MODEL,
            &[("sha256", MODEL), ("sha512", b"other bytes")],
        ),
        &[("models/fr-en/model.bin", MODEL)],
        true,
    );
    let t = w.find("models/fr-en/model.bin");
    let r = w.updater().download_target(&t, &w.dest());
    assert!(
        matches!(&r, Err(UpdateError::Tuf(Error::Hash { why, .. })) if why.starts_with("sha512")),
        "{r:?}"
    );
    assert!(w.downloads().is_empty(), "{:?}", w.downloads());
}

#[test]
fn at_most_length_bytes_read() {
    // Listed as one byte shorter than the file served.
    let mut l = listing("models/fr-en/model.bin", MODEL, &[("sha256", MODEL)]);
    l["models/fr-en/model.bin"]["length"] = json!(MODEL.len() - 1);
    let w = World::new(l, &[("models/fr-en/model.bin", MODEL)], false);
    let t = w.find("models/fr-en/model.bin");
    let r = w.updater().download_target(&t, &w.dest());
    assert!(
        matches!(&r, Err(UpdateError::Fetch(FetchError::TooLarge { limit, .. })) if *limit == MODEL.len() as u64 - 1),
        "{r:?}"
    );
    assert!(w.downloads().is_empty(), "{:?}", w.downloads());
}

#[test]
fn cached_target_is_not_fetched_again() {
    let w = World::model(true);
    let t = w.find("models/fr-en/model.bin");
    let cached = |p: &Path| Updater::<DirFetch>::cached_target(&t, p);
    assert!(!cached(&w.dest()), "absent");
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert!(cached(&w.dest()));
    // Same length, other bytes; other length: not cached.
    let mut other = MODEL.to_vec();
    other[0] ^= 1;
    fs::write(w.dest(), &other).unwrap();
    assert!(!cached(&w.dest()));
    fs::write(w.dest(), &MODEL[1..]).unwrap();
    assert!(!cached(&w.dest()));
    // A new download replaces it.
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
}

#[test]
fn a_part_file_is_resumed_and_a_wrong_prefix_starts_over() {
    let w = World::model(true);
    let t = w.find("models/fr-en/model.bin");
    let part = w.tmp.path().join("dl/model.bin.part");
    let url = format!("targets/models/fr-en/{}.model.bin", sha256_hex(MODEL));
    fs::write(&part, &MODEL[..10]).unwrap();
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(w.fetch.take(), [format!("{url} from 10")]);
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
    assert_eq!(w.downloads(), ["model.bin"]);
    // A prefix of other bytes: resumed, the whole fails its hash, fetched again from 0.
    fs::write(&part, b"XXXXXXXXXX").unwrap();
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(w.fetch.take(), [format!("{url} from 10"), url.clone()]);
    assert_eq!(fs::read(w.dest()).unwrap(), MODEL);
    // A part already complete: verified without any request.
    fs::write(&part, MODEL).unwrap();
    w.updater().download_target(&t, &w.dest()).unwrap();
    assert_eq!(w.fetch.take(), Vec::<String>::new());
    assert_eq!(w.downloads(), ["model.bin"]);
}

/// Passes on at most `budget` bytes of a target, then fails as a cut connection would.
struct CutAfter<F> {
    inner: F,
    budget: std::cell::Cell<u64>,
    /// Bytes each call received.
    received: std::cell::RefCell<Vec<u64>>,
}

struct CountingSink<'a> {
    inner: &'a mut dyn Sink,
    budget: u64,
    got: u64,
}

impl Sink for CountingSink<'_> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.inner.restart()
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let n = (chunk.len() as u64).min(self.budget - self.got);
        self.inner.write(&chunk[..n as usize])?;
        self.got += n;
        if self.got == self.budget {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "cut",
            ));
        }
        Ok(())
    }
}

impl<F: Fetch> Fetch for CutAfter<F> {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        self.inner.metadata(name, max_len)
    }
    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        let mut s = CountingSink {
            inner: sink,
            budget: self.budget.replace(u64::MAX),
            got: 0,
        };
        let r = self.inner.target_into(path, length, from, &mut s);
        self.received.borrow_mut().push(s.got);
        r
    }
}

#[test]
fn over_nginx_mutual_tls_an_interrupted_download_resumes_with_range() {
    use valise_e2e::nginx::{Nginx, NginxTls};
    use valise_pki::BoxIdentity;
    use valise_pki::ca::{Ca, Validity};
    use valise_pki::enroll::IdentityDir;
    use valise_pki::pem;
    use valise_pki::tls::{ClientIdentity, client_config};
    use valise_tuf::fetch::http::{HttpFetch, HttpLimits};

    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s);
    let mut ca = Ca::init(&p("ca"), "Test CA", Validity::days(30)).unwrap();
    let srv = ca
        .issue_server(&["127.0.0.1".to_owned()], Validity::days(30))
        .unwrap();
    fs::write(p("srv.pem"), &srv.cert_pem).unwrap();
    fs::write(p("srv.key"), &srv.key_pem).unwrap();
    let id = BoxIdentity::new("lisbon", "box-1").unwrap();
    let csr = IdentityDir::new(p("box")).request(&id).unwrap();
    let cert = ca.issue_box(&csr, &id, Validity::days(30)).unwrap();
    let identity = ClientIdentity {
        chain: pem::certificates("cert", &cert.cert_pem).unwrap(),
        key: pem::private_key(
            "key",
            &fs::read_to_string(p("box/pending/key.pem")).unwrap(),
        )
        .unwrap(),
    };
    let tls = client_config(
        &identity,
        &pem::certificates("ca", ca.cert_pem()).unwrap(),
        &[],
    )
    .unwrap();

    // A 3 MB model: several TLS records and chunks, cut after 1 MB.
    let model: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let keys = Keys::new();
    let repo = p("www/repo");
    let mut top = targets_with(1, &[], None);
    top["targets"] = listing(
        "models/fr-en/model.bin",
        &model,
        &[("sha256", &model), ("sha512", &model)],
    );
    let root = write_repo(&repo, &keys, &[("targets", &top, &keys.targets)]);
    write_targets(&repo, &[("models/fr-en/model.bin", &model)], true);
    let nginx = Nginx::start(&NginxTls {
        cert: p("srv.pem"),
        key: p("srv.key"),
        client_ca: p("ca/ca.pem"),
        crl: None,
        root: Some(p("www")),
    });
    let store = MetadataStore::open(p("store")).unwrap();
    store.write("root", &root).unwrap();
    let http = HttpFetch::new(
        &format!("https://{}/repo/", nginx.addr),
        tls,
        HttpLimits::default(),
    )
    .unwrap();
    let updater = Updater::new(
        CutAfter {
            inner: http,
            budget: std::cell::Cell::new(1_000_000),
            received: Default::default(),
        },
        store,
    );
    let mut set = updater.refresh(now()).unwrap();
    let t = updater
        .find_target(&mut set, "models/fr-en/model.bin")
        .unwrap()
        .unwrap();
    fs::create_dir_all(p("dl")).unwrap();
    let dest = p("dl/model.bin");
    let r = updater.download_target(&t, &dest);
    assert!(
        matches!(r, Err(UpdateError::Fetch(FetchError::Io { .. }))),
        "{r:?}"
    );
    assert!(!dest.exists());
    assert_eq!(fs::read(p("dl/model.bin.part")).unwrap().len(), 1_000_000);
    // Next call: only the 2 MB left travel (206 to `Range: bytes=1000000-`).
    updater.download_target(&t, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), model);
    assert!(!p("dl/model.bin.part").exists());
    assert_eq!(*updater.fetcher().received.borrow(), [1_000_000, 2_000_000]);
    // Nothing refused by nginx along the way (no client-certificate complaint).
    assert!(
        !nginx
            .error_log()
            .contains("client sent no required SSL certificate")
    );
}
