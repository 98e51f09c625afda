//! The portal's web UI in a real browser, against the real stack: `valise-transcribe` and
//! `valise-translate` on temporary Unix sockets with the dev models, `valise-portal` over
//! HTTPS with a self-signed certificate and a small upload limit, its first administrator
//! made by `valisectl`. Debian's chromium is driven by playwright-core (from npm, unpacked in
//! the test-data cache by scripts/setup) running `tests/portal-e2e/ui.spec.mjs` under plain
//! node. The script signs in, transcribes a French recording, corrects, exports, translates a
//! text and a .docx, survives an engine killed mid-job, searches and deletes, visits the admin
//! pages and signs out; screenshots go to `target/screenshots/`.
//!
//! The script asks this test to kill and restart the transcription daemon (it owns the
//! processes): it prints `@@kill-transcribe` or `@@start-transcribe` and waits for `@@ok`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use valise_e2e::*;

const ADMIN: &str = "admin.poste";
const PASSWORD: &str = "correct horse battery staple";
/// The portal's upload limit in this test: the recording is 431 kB, the oversized file 3 MB.
const MAX_UPLOAD: &str = "1MiB";
/// The whole browser run (node and chromium), start to finish.
const BROWSER_LIMIT: Duration = Duration::from_secs(300);
/// 27 s of French telephone prompt: "Pour activer ou désactiver le mode sourdine, veuillez
/// appuyer sur 1. Pour verrouiller ou déverrouiller la conférence, appuyez sur 2. ..."
const RECORDING: &str = "/usr/share/asterisk/sounds/fr/conf-adminmenu-162.wav";

/// Kills what is still running when the test ends, passed or not.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Lines of a child's pipe, kept for the failure message.
fn collect(
    pipe: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &tx {
                let _ = tx.send(line.clone());
            }
            into.lock().unwrap().push(line);
        }
    });
}

fn tail(lines: &Arc<Mutex<Vec<String>>>) -> String {
    let l = lines.lock().unwrap();
    l[l.len().saturating_sub(40)..].join("\n")
}

fn start_transcribe(config: &Path, sock: &Path) -> Child {
    // A socket left by a killed daemon would look like a ready one.
    let _ = std::fs::remove_file(sock);
    let mut child = Command::new(bin("valise-transcribe"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&mut child, sock, Duration::from_secs(60));
    child
}

/// The browser side must be there: a missing piece fails the test (never skips it).
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("VALISE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is missing (Debian package chromium): {HINT}",
        chromium.display()
    );
    let pw = std::env::var_os("VALISE_PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("VALISE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/valise"));
            cache.join("node_modules/playwright-core")
        });
    assert!(
        pw.join("index.mjs").exists(),
        "playwright-core is not unpacked at {} (scripts/fetch-testdata does it): {HINT}",
        pw.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is not installed: {HINT}"
    );
    (chromium, pw)
}

/// A small English .docx: three paragraphs, the minimum parts Word and LibreOffice accept.
fn make_docx(path: &Path) {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default();
    let parts = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#,
        ),
        (
            "word/document.xml",
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:rPr><w:b/></w:rPr><w:t>Notice to visitors</w:t></w:r></w:p><w:p><w:r><w:t>The embassy is closed on Monday.</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">Please come back tomorrow morning with your passport. </w:t></w:r><w:r><w:t>Thank you for your patience.</w:t></w:r></w:p></w:body></w:document>"#,
        ),
    ];
    for (name, body) in parts {
        z.start_file(name, opts).unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

/// Deterministic noise (xorshift), never starting with a media signature.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    v[0] = 0x00;
    v
}

#[test]
fn staff_use_the_portal_in_a_browser() {
    let (chromium, playwright) = browser_tools();
    let recording = PathBuf::from(RECORDING);
    assert!(recording.exists(), "missing {RECORDING}: {HINT}");
    let store = store();
    let repo = repo();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut procs = Procs::default();

    // The engines, on their own sockets.
    let tsock = d.join("run/transcribe.sock");
    let tconf = d.join("valise-transcribe.toml");
    std::fs::write(
        &tconf,
        format!(
            "socket = {:?}\nspool_dir = {:?}\nmodel_store = {:?}\ndefault_model = \"whisper-base-q8_0\"\nthreads = 2\n",
            tsock,
            d.join("spool"),
            store
        ),
    )
    .unwrap();
    let xsock = d.join("run/translate.sock");
    let xconf = d.join("valise-translate.toml");
    std::fs::write(
        &xconf,
        format!(
            "socket = {:?}\nmodel_store = {:?}\nworkers_per_model = 1\n",
            xsock, store
        ),
    )
    .unwrap();
    let mut translate = Command::new(bin("valise-translate"))
        .arg("--config")
        .arg(&xconf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_socket(&mut translate, &xsock, Duration::from_secs(60));
    procs.0.push(translate);
    procs.0.push(start_transcribe(&tconf, &tsock));
    let transcribe_at = procs.0.len() - 1;

    // The first administrator, as embassy IT makes it.
    let data = d.join("portal");
    let mut add = Command::new(bin("valisectl"))
        .args([
            "user",
            "add",
            ADMIN,
            "--admin",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "valisectl user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The portal, on a free loopback port.
    let mut portal = Command::new(bin("valise-portal"))
        .args(["--config", "/nonexistent/valise-portal.toml"])
        .args([
            "--addr",
            "127.0.0.1:0",
            "--redirect-addr",
            "none",
            "--dev-cert",
        ])
        .args(["--max-upload-bytes", MAX_UPLOAD])
        .arg("--data-dir")
        .arg(&data)
        .arg("--transcribe-socket")
        .arg(&tsock)
        .arg("--translate-socket")
        .arg(&xsock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let portal_log = Arc::new(Mutex::new(Vec::new()));
    let (ptx, prx) = mpsc::channel();
    collect(portal.stderr.take().unwrap(), portal_log.clone(), Some(ptx));
    procs.0.push(portal);
    let portal_at = procs.0.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match prx.recv_timeout(left) {
            Ok(line) => {
                if let Some(i) = line.find("listening on https://") {
                    break line[i + "listening on ".len()..].trim().to_owned();
                }
            }
            Err(_) => panic!(
                "the portal did not say where it listens:\n{}",
                tail(&portal_log)
            ),
        }
    };

    // Fixtures the browser uploads.
    let fixtures = d.join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let docx = fixtures.join("notice.docx");
    make_docx(&docx);
    let corrupt = fixtures.join("message-vocal.mp3");
    std::fs::write(&corrupt, noise(64 << 10)).unwrap();
    // The same noise behind an ID3v2 tag: it passes the portal's type check and reaches the
    // engine, which must fail the job with a reason.
    let corrupt_mp3 = fixtures.join("dictee.mp3");
    let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
    tagged.extend_from_slice(&[0; 10]);
    tagged.extend_from_slice(&noise(64 << 10));
    std::fs::write(&corrupt_mp3, tagged).unwrap();
    let oversized = fixtures.join("reunion-longue.wav");
    std::fs::write(&oversized, noise(3_000_000)).unwrap();
    let shots = repo.join("target/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    // The browser run.
    let t0 = Instant::now();
    let mut node = Command::new("node")
        .arg(repo.join("tests/portal-e2e/ui.spec.mjs"))
        .env("VALISE_URL", &url)
        .env("VALISE_USER", ADMIN)
        .env("VALISE_PASSWORD", PASSWORD)
        .env("VALISE_RECORDING", &recording)
        .env("VALISE_ENGLISH", testdata("jfk.wav"))
        .env("VALISE_DOCX", &docx)
        .env("VALISE_CORRUPT", &corrupt)
        .env("VALISE_CORRUPT_MP3", &corrupt_mp3)
        .env("VALISE_OVERSIZED", &oversized)
        .env("VALISE_SCREENSHOTS", &shots)
        .env("VALISE_DOWNLOADS", d.join("downloads"))
        .env("VALISE_CHROMIUM", &chromium)
        .env("VALISE_PLAYWRIGHT_CORE", &playwright)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("PLAYWRIGHT_BROWSERS_PATH", d.join("no-browsers-here"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_node = node.stdin.take().unwrap();
    let node_log = Arc::new(Mutex::new(Vec::new()));
    let (ntx, nrx) = mpsc::channel();
    collect(node.stdout.take().unwrap(), node_log.clone(), Some(ntx));
    collect(node.stderr.take().unwrap(), node_log.clone(), None);

    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > BROWSER_LIMIT {
            let _ = node.kill();
            let _ = node.wait();
            panic!(
                "the browser run took more than {BROWSER_LIMIT:?}:\n{}\n--- portal:\n{}",
                tail(&node_log),
                tail(&portal_log)
            );
        }
        match nrx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line == "@@kill-transcribe" => {
                let engine = &mut procs.0[transcribe_at];
                kill(Pid::from_raw(engine.id() as i32), Signal::SIGKILL).unwrap();
                engine.wait().unwrap();
                writeln!(to_node, "@@ok").unwrap();
            }
            Ok(line) if line == "@@start-transcribe" => {
                procs.0[transcribe_at] = start_transcribe(&tconf, &tsock);
                writeln!(to_node, "@@ok").unwrap();
            }
            Ok(line) => println!("{line}"),
            Err(_) => {}
        }
    };
    // What was printed after the last poll.
    while let Ok(line) = nrx.try_recv() {
        println!("{line}");
    }
    let elapsed = t0.elapsed();
    assert!(
        status.success(),
        "the browser test failed ({status}):\n{}\n--- portal:\n{}",
        tail(&node_log),
        tail(&portal_log)
    );
    let log = node_log.lock().unwrap().join("\n");
    assert!(log.contains("steps passed"), "{log}");

    // Screenshots of the main pages, real PNGs.
    for name in [
        "01-sign-in",
        "02-transcribe",
        "06-transcript",
        "08-translate",
        "12-history",
        "13-admin-state",
    ] {
        let p = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{} is not a screenshot",
            p.display()
        );
    }
    println!(
        "browser run: {:.1} s; screenshots in {}",
        elapsed.as_secs_f64(),
        shots.display()
    );

    // The portal survived it all, and stops cleanly.
    let portal = &mut procs.0[portal_at];
    assert!(
        portal.try_wait().unwrap().is_none(),
        "the portal died:\n{}",
        tail(&portal_log)
    );
    kill(Pid::from_raw(portal.id() as i32), Signal::SIGTERM).unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = portal.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the portal did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "portal exit: {code}\n{}", tail(&portal_log));
}
