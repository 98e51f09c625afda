//! `valise-tuf-client` as a process, speaking the conformance suite's CLIENT-CLI.md protocol
//! against a repository served over plain HTTP by a small single-threaded server in the test
//! (one request at a time, each logged, as the suite's server does): exit codes, the files
//! left in the metadata and target directories, and the exact request sequence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

/// Serves `root` over HTTP/1.0-style connections (one request each), one connection at a
/// time, logging each request path. Stops when the test ends (the thread is detached).
struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The request for `cut` (if any) gets its full Content-Length and only half the body
    /// before the connection closes (an interrupted download).
    fn start_cutting(root: PathBuf, cut: String) -> Self {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).is_err() {
                    continue;
                }
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split(' ').nth(1).unwrap_or("/").to_owned();
                log2.lock().unwrap().push(path.clone());
                let decoded: Option<Vec<String>> = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(valise_tuf::names::unquote)
                    .collect();
                let file = decoded
                    .filter(|segs| segs.iter().all(|s| !s.is_empty() && s != ".."))
                    .map(|segs| segs.iter().fold(root.clone(), |p, s| p.join(s)))
                    .and_then(|p| std::fs::read(p).ok());
                let file = match file {
                    Some(body) if path == cut => {
                        let head =
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                        let _ = s
                            .write_all(head.as_bytes())
                            .and_then(|()| s.write_all(&body[..body.len() / 2]));
                        continue;
                    }
                    f => f,
                };
                let _ = match file {
                    Some(body) => s
                        .write_all(
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|()| s.write_all(&body)),
                    None => s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
                };
            }
        });
        Server { base, log }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

struct World {
    tmp: tempfile::TempDir,
    server: Server,
    root: Vec<u8>,
}

impl World {
    fn md(&self) -> PathBuf {
        self.tmp.path().join("client/metadata")
    }
    fn dl(&self) -> PathBuf {
        self.tmp.path().join("client/downloads")
    }
    fn repo(&self) -> PathBuf {
        self.tmp.path().join("www")
    }

    /// Runs the client with `args`; its exit code.
    fn client(&self, args: &[&str]) -> i32 {
        let out = Command::new(env!("CARGO_BIN_EXE_valise-tuf-client"))
            .args(args)
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out.status.code().unwrap()
    }

    fn init(&self) {
        let root = self.tmp.path().join("trusted-root.json");
        std::fs::write(&root, &self.root).unwrap();
        let md = self.md();
        assert_eq!(
            self.client(&[
                "--metadata-dir",
                md.to_str().unwrap(),
                "init",
                root.to_str().unwrap()
            ]),
            0
        );
    }

    fn refresh(&self) -> i32 {
        let url = format!("{}/metadata/", self.server.base);
        self.client(&[
            "--metadata-url",
            &url,
            "--metadata-dir",
            self.md().to_str().unwrap(),
            "refresh",
        ])
    }

    fn download(&self, name: &str) -> i32 {
        self.download_all(&[name])
    }

    /// One `download` with a `--target-name` for each of `names`, in this order.
    fn download_all(&self, names: &[&str]) -> i32 {
        let md = format!("{}/metadata/", self.server.base);
        let t = format!("{}/targets/", self.server.base);
        let dl = self.dl();
        let mut args: Vec<&str> = names.iter().flat_map(|n| ["--target-name", n]).collect();
        let mdir = self.md();
        args.extend([
            "--metadata-dir",
            mdir.to_str().unwrap(),
            "--target-dir",
            dl.to_str().unwrap(),
            "--target-base-url",
            &t,
            "--metadata-url",
            &md,
            "download",
        ]);
        self.client(&args)
    }

    /// The metadata directory's files and their bytes.
    fn trusted(&self) -> Vec<(String, Vec<u8>)> {
        dir_files(&self.md())
    }
}

fn dir_files(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = match std::fs::read_dir(d) {
        Ok(rd) => rd
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// targets delegates `docs/*` to role "docs team"; "docs team" lists `docs/café ✓.txt`;
/// targets itself lists `a.txt`.
fn world() -> World {
    world_cutting(String::new())
}

/// `world()`, the server cutting the request for `cut` short.
fn world_cutting(cut: String) -> World {
    let keys = Keys::new();
    let kd = Signer::new(10);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("www");
    let top = targets_with(
        1,
        &[("a.txt", b"hello")],
        Some(delegations(&[Deleg {
            name: "docs team",
            key: &kd,
            paths: &["docs/*"],
            terminating: true,
        }])),
    );
    let docs = targets_with(1, &[("docs/café ✓.txt", b"ol\xc3\xa1")], None);
    let root = write_repo(
        &repo,
        &keys,
        &[("targets", &top, &keys.targets), ("docs team", &docs, &kd)],
    );
    write_targets(
        &repo,
        &[("a.txt", b"hello"), ("docs/café ✓.txt", b"ol\xc3\xa1")],
        true,
    );
    let server = Server::start_cutting(repo, cut);
    World { tmp, server, root }
}

fn gets(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

#[test]
fn init_copies_the_root_without_network() {
    let w = world();
    w.init();
    assert_eq!(w.trusted(), [("root.json".to_owned(), w.root.clone())]);
    assert_eq!(w.server.take(), Vec::<String>::new());
}

#[test]
fn refresh_stores_verbatim_metadata_under_plain_names() {
    let w = world();
    w.init();
    assert_eq!(w.refresh(), 0);
    assert_eq!(
        w.server.take(),
        gets(&[
            "/metadata/2.root.json",
            "/metadata/timestamp.json",
            "/metadata/1.snapshot.json",
            "/metadata/1.targets.json",
        ])
    );
    let m = w.repo().join("metadata");
    let read = |f: &str| std::fs::read(m.join(f)).unwrap();
    assert_eq!(
        w.trusted(),
        [
            ("root.json".to_owned(), w.root.clone()),
            ("snapshot.json".to_owned(), read("1.snapshot.json")),
            ("targets.json".to_owned(), read("1.targets.json")),
            ("timestamp.json".to_owned(), read("timestamp.json")),
        ]
    );
    // Second refresh: the same timestamp; snapshot and targets come from the directory.
    assert_eq!(w.refresh(), 0);
    assert_eq!(
        w.server.take(),
        gets(&["/metadata/2.root.json", "/metadata/timestamp.json"])
    );
}

#[test]
fn download_searches_delegations_then_uses_the_cache() {
    let w = world();
    w.init();
    assert_eq!(w.download("docs/café ✓.txt"), 0);
    let hash = sha256_hex(b"ol\xc3\xa1");
    assert_eq!(
        w.server.take(),
        vec![
            "/metadata/2.root.json".to_owned(),
            "/metadata/timestamp.json".to_owned(),
            "/metadata/1.snapshot.json".to_owned(),
            "/metadata/1.targets.json".to_owned(),
            "/metadata/1.docs%20team.json".to_owned(),
            format!("/targets/docs/{hash}.caf%C3%A9%20%E2%9C%93.txt"),
        ]
    );
    assert_eq!(
        dir_files(&w.dl()),
        [(
            "docs%2Fcaf%C3%A9%20%E2%9C%93.txt".to_owned(),
            b"ol\xc3\xa1".to_vec()
        )]
    );
    assert!(w.md().join("docs%20team.json").is_file());
    // Again: already there with matching hashes, so no target request.
    assert_eq!(w.download("docs/café ✓.txt"), 0);
    assert_eq!(
        w.server.take(),
        gets(&["/metadata/2.root.json", "/metadata/timestamp.json"])
    );
    // A file with other bytes under that name is replaced.
    std::fs::write(w.dl().join("docs%2Fcaf%C3%A9%20%E2%9C%93.txt"), b"bad!").unwrap();
    assert_eq!(w.download("docs/café ✓.txt"), 0);
    assert_eq!(w.server.take().len(), 3);
    assert_eq!(
        std::fs::read(w.dl().join("docs%2Fcaf%C3%A9%20%E2%9C%93.txt")).unwrap(),
        b"ol\xc3\xa1"
    );
}

#[test]
fn repeated_target_names_are_downloaded_in_order_by_one_updater() {
    // CLIENT-CLI.md: `--target-name` may be repeated; targets in argument order, one
    // client/updater instance (one refresh), stop with exit 1 at the first that fails.
    let w = world();
    w.init();
    assert_eq!(w.download_all(&["a.txt", "docs/café ✓.txt"]), 0);
    let (ha, hd) = (sha256_hex(b"hello"), sha256_hex(b"ol\xc3\xa1"));
    assert_eq!(
        w.server.take(),
        vec![
            "/metadata/2.root.json".to_owned(),
            "/metadata/timestamp.json".to_owned(),
            "/metadata/1.snapshot.json".to_owned(),
            "/metadata/1.targets.json".to_owned(),
            format!("/targets/{ha}.a.txt"),
            "/metadata/1.docs%20team.json".to_owned(),
            format!("/targets/docs/{hd}.caf%C3%A9%20%E2%9C%93.txt"),
        ]
    );
    assert_eq!(dir_files(&w.dl()).len(), 2);
    // The second of three fails: the third is not looked for, the first stays downloaded.
    let w = world();
    w.init();
    assert_eq!(
        w.download_all(&["a.txt", "docs/missing.txt", "docs/café ✓.txt"]),
        1
    );
    assert_eq!(
        dir_files(&w.dl()),
        [("a.txt".to_owned(), b"hello".to_vec())]
    );
    assert!(
        !w.server.take().iter().any(|p| p.contains("caf")),
        "nothing fetched for the third target"
    );
}

#[test]
fn failures_exit_1() {
    let w = world();
    w.init();
    // Not in the repository (docs/* is a terminating delegation that does not list it).
    assert_eq!(w.download("docs/missing.txt"), 1);
    assert!(dir_files(&w.dl()).is_empty());
    // Usage errors: 1, not clap's 2.
    assert_eq!(w.client(&["refresh"]), 1);
    assert_eq!(w.client(&["--metadata-dir", "/tmp", "frobnicate"]), 1);
    assert_eq!(
        w.client(&["--metadata-dir", w.md().to_str().unwrap(), "refresh"]),
        1,
        "refresh without --metadata-url"
    );
    // A timestamp signed by no trusted key: refused, nothing stored beyond what was.
    let before = w.trusted();
    let bad = sign(
        &json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 2,
                "expires": FUTURE, "meta": {"snapshot.json": {"version": 1}}}),
        &[&Signer::new(99)],
    );
    std::fs::write(w.repo().join("metadata/timestamp.json"), bad).unwrap();
    assert_eq!(w.refresh(), 1);
    assert_eq!(w.trusted(), before);
    // Twin: `a.txt` from targets, once the timestamp is good again, exit 0.
    let w = world();
    w.init();
    assert_eq!(w.download("a.txt"), 0);
}

#[test]
fn init_with_a_missing_root_file_exits_1() {
    let w = world();
    let md = w.md();
    assert_eq!(
        w.client(&[
            "--metadata-dir",
            md.to_str().unwrap(),
            "init",
            "/nonexistent/root.json"
        ]),
        1
    );
}

#[test]
fn an_interrupted_download_exits_1_and_leaves_no_part_file() {
    // The suite counts every file in the target directory as a download.
    let cut = format!("/targets/{}.a.txt", sha256_hex(b"hello"));
    let w = world_cutting(cut);
    w.init();
    assert_eq!(w.download("a.txt"), 1);
    assert_eq!(dir_files(&w.dl()), Vec::new());
}
