//! What the portal leaves on disk: nothing of deleted content in any file of the data
//! directory (WAL included), nothing of an upload cut by a crash, owner-only files whatever
//! the umask, uploads bounded per user (jobs in flight, disk quota), titles that cannot
//! fake an extension.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Client, Portal, config_in, files_under, grep_dir, https_client, wav};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use valise_e2e::testdata;

async fn wait_job(c: &Client, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (s, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        if ["done", "failed", "cancelled"].contains(&j["state"].as_str().unwrap()) {
            return j;
        }
        assert!(start.elapsed() < limit, "job still {}: {j}", j["state"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_gone(data: &Path, marker: &str) {
    let found = grep_dir(data, marker);
    assert!(found.is_empty(), "{marker:?} still in {found:?}");
}

fn assert_present(data: &Path, marker: &str) {
    assert!(
        !grep_dir(data, marker).is_empty(),
        "{marker:?} should be on disk before the delete (is the scan blind?)"
    );
}

async fn delete(c: &Client, path: &str) {
    let r = c.req(Method::DELETE, path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "DELETE {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_corrected_content_leaves_no_byte_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let config = config_in(dir.path());
    let data = config.data_dir.clone();
    let p = Portal::start_with(dir, config).await;
    p.add_user("uma", false);
    p.add_user("vic", false);
    p.add_user("root", true);
    let c = p.login("uma").await;

    // A transcript, corrected twice: the first correction's text must go with the second.
    let (s, job) = c
        .upload(
            "/api/jobs/transcribe?filename=zqxtitlemarkqx.wav&language=en",
            std::fs::read(testdata("jfk.wav")).unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let tid = job["id"].as_str().unwrap().to_owned();
    assert_eq!(
        wait_job(&c, &tid, Duration::from_secs(180)).await["state"],
        "done"
    );
    for text in ["zqxoldcorrectionqx", "zqxnewcorrectionqx"] {
        let (s, r) = c
            .send_json(
                Method::PUT,
                &format!("/api/jobs/{tid}/transcript"),
                &json!({"segments": [{"index": 0, "text": text}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    assert_present(&data, "zqxnewcorrectionqx");
    assert_gone(&data, "zqxoldcorrectionqx");

    // Its translation, and a translated document.
    let (s, tr) = c
        .send_json(
            Method::POST,
            &format!("/api/jobs/{tid}/translate"),
            &json!({"target": "pt"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tr}");
    let trid = tr["id"].as_str().unwrap().to_owned();
    let (s, doc) = c
        .upload(
            "/api/jobs/document?filename=zqxdoctitleqx.txt&source=en&target=pt",
            b"The meeting with zqxdocbodyqx is on Monday.\n".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let did = doc["id"].as_str().unwrap().to_owned();
    for id in [&trid, &did] {
        let j = wait_job(&c, id, Duration::from_secs(120)).await;
        assert_eq!(j["state"], "done", "{j}");
    }
    let (_, translated) = c.get_json(&format!("/api/jobs/{trid}/transcript")).await;
    let word = translated["segments"][1]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .max_by_key(|w| w.len())
        .unwrap()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned();
    assert!(word.len() >= 5, "{translated}");
    for m in ["zqxtitlemarkqx", "zqxdoctitleqx", "zqxdocbodyqx", &word] {
        assert_present(&data, m);
    }
    for id in [&tid, &trid, &did] {
        delete(&c, &format!("/api/jobs/{id}")).await;
    }
    for m in [
        "zqxtitlemarkqx",
        "zqxnewcorrectionqx",
        "zqxdoctitleqx",
        "zqxdocbodyqx",
        &word,
    ] {
        assert_gone(&data, m);
    }

    // Retention's purge.
    let (s, old) = c
        .upload(
            "/api/jobs/document?filename=zqxpurgedqx.txt&target=pt",
            b"Old news.\n".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{old}");
    let oid = old["id"].as_str().unwrap().to_owned();
    wait_job(&c, &oid, Duration::from_secs(120)).await;
    assert_present(&data, "zqxpurgedqx");
    let db = p.db();
    db.with(|conn| {
        conn.execute(
            "UPDATE jobs SET finished_at = strftime('%s','now') - 30 * 86400 WHERE id = ?1",
            [&oid],
        )?;
        Ok(())
    })
    .unwrap();
    let files = valise_portal::jobs::Files::new(p.jobs_dir());
    let n = db
        .with(|conn| valise_portal::retention::purge(conn, &files, 7))
        .unwrap();
    assert_eq!(n, 1);
    assert_gone(&data, "zqxpurgedqx");

    // A user deleted by an admin, with their jobs.
    let v = p.login("vic").await;
    let (s, _) = v
        .upload("/api/jobs/transcribe?filename=zqxvicjobqx.wav", wav(0.5))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_present(&data, "zqxvicjobqx");
    let admin = p.login("root").await;
    let (_, users) = admin.get_json("/api/admin/users").await;
    let vic = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "vic")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    delete(&admin, &format!("/api/admin/users/{vic}")).await;
    assert_gone(&data, "zqxvicjobqx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_uploads_at_once_get_exactly_the_job_limit() {
    let p = Portal::start().await;
    assert_eq!(p.config.limits.max_jobs_per_user, 20);
    p.add_user("wes", false);
    let c = std::sync::Arc::new(p.login("wes").await);
    let body = wav(8.0);
    let uploads: Vec<_> = (0..30)
        .map(|i| {
            let c = c.clone();
            let body = body.clone();
            tokio::spawn(async move {
                c.upload(&format!("/api/jobs/transcribe?filename=r{i}.wav"), body)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for u in uploads {
        let (s, e) = u.await.unwrap();
        match s {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(e["code"], "too_many_jobs", "{e}");
                refused += 1;
            }
            other => panic!("{other}: {e}"),
        }
    }
    assert_eq!((created, refused), (20, 10));
    let (_, list) = c.get_json("/api/jobs").await;
    assert_eq!(list.as_array().unwrap().len(), 20);
    let incoming: Vec<_> = std::fs::read_dir(p.config.incoming_dir())
        .unwrap()
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
}

#[tokio::test]
async fn the_disk_quota_refuses_uploads_that_would_pass_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.limits.max_storage_per_user = valise_config::ByteSize::new(100 * 1024);
    config.limits.max_upload = valise_config::ByteSize::new(80 * 1024);
    let p = Portal::start_with(dir, config).await;
    p.add_user("xia", false);
    p.add_user("yan", false);
    let c = p.login("xia").await;
    let body = wav(2.0); // 64 KB
    let (s, first) = c
        .upload("/api/jobs/transcribe?filename=a.wav", body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    // Larger than the upload limit: that is what the answer says, quota or not.
    let (s, e) = c
        .upload("/api/jobs/transcribe?filename=big.wav", wav(3.0))
        .await;
    assert_eq!(e["code"], "too_large", "{s} {e}");
    // Declared length: refused before the body is read.
    let (s, e) = c
        .upload("/api/jobs/transcribe?filename=b.wav", body.clone())
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("quota_exceeded")),
        "{e}"
    );
    // No declared length (chunked): stopped while it streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let r = c
        .req(Method::POST, "/api/jobs/document?filename=b.txt&target=pt")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "quota_exceeded", "{e}");
    // The quota is per user, and deleting frees it.
    let (s, _) = p
        .login("yan")
        .await
        .upload("/api/jobs/transcribe?filename=c.wav", body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED);
    delete(&c, &format!("/api/jobs/{}", first["id"].as_str().unwrap())).await;
    let (s, _) = c
        .upload("/api/jobs/transcribe?filename=d.wav", body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let incoming: Vec<_> = std::fs::read_dir(p.config.incoming_dir())
        .unwrap()
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
}

#[tokio::test]
async fn titles_cannot_fake_an_extension_with_format_characters() {
    let p = Portal::start().await;
    p.add_user("zoe", false);
    let c = p.login("zoe").await;
    // "invoice\u{202E}fdp.exe" displays as "invoiceexe.pdf".
    let (s, job) = c
        .upload(
            "/api/jobs/document?filename=invoice%E2%80%AEfdp.txt&target=pt",
            b"Hello.\n".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["title"], "invoicefdp.txt");
    let id = job["id"].as_str().unwrap().to_owned();
    // A title stored before this check (an older portal) is cleaned when read; joiners stay.
    p.db()
        .with(|conn| {
            conn.execute(
                "UPDATE jobs SET title = ?2 WHERE id = ?1",
                [
                    &id,
                    &"\u{2067}rapport\u{202E}txt.exe\u{2069} ب\u{200C}ی".to_owned(),
                ],
            )?;
            Ok(())
        })
        .unwrap();
    let (_, job) = c.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["title"], "rapporttxt.exe ب\u{200C}ی");
    let (_, list) = c.get_json("/api/jobs").await;
    assert_eq!(list[0]["title"], "rapporttxt.exe ب\u{200C}ی");
}

/// The real binary, started by a shell with umask 022 as `scripts/run` does.
fn start_binary(dir: &Path, port: u16) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_valise-portal"))
        .args(["--config", &dir.join("none.toml").display().to_string()])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--redirect-addr", "none", "--dev-cert"])
        .args(["--data-dir", &dir.join("data").display().to_string()])
        .args([
            "--transcribe-socket",
            &dir.join("t.sock").display().to_string(),
        ])
        .args([
            "--translate-socket",
            &dir.join("l.sock").display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("portal.log")).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until the portal answers; returns a client for it.
async fn wait_ready(dir: &Path, port: u16, child: &mut Child) -> reqwest::Client {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the portal exited: {}",
            std::fs::read_to_string(dir.join("portal.log")).unwrap_or_default()
        );
        if let Ok(cert) = std::fs::read(dir.join("data/tls/cert.pem")) {
            let http = https_client(&cert, addr);
            if http
                .get(format!("https://localhost:{port}/api/me"))
                .send()
                .await
                .is_ok()
            {
                return http;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "portal not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign_in(http: &reqwest::Client, port: u16) -> String {
    let origin = format!("https://localhost:{port}");
    let r = http
        .post(format!("{origin}/api/login"))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": "ana", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_killed_mid_upload_leaves_no_orphan_and_keeps_files_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let mut child = start_binary(dir.path(), port);
    let http = wait_ready(dir.path(), port, &mut child).await;
    // The target directory may be shared with other checkouts: be sure this is our build.
    assert!(
        data.join("incoming").is_dir(),
        "{} is not this checkout's build",
        env!("CARGO_BIN_EXE_valise-portal")
    );
    valise_portal::Db::open(&data.join("portal.db"))
        .unwrap()
        .with(|c| valise_portal::accounts::add_user(c, "ana", common::PASSWORD, false).map(|_| ()))
        .unwrap();
    let cookie = sign_in(&http, port).await;
    let origin = format!("https://localhost:{port}");

    // An upload that sends half of its body, then waits.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = wav(4.0);
    let half = body.len() / 2;
    tx.send(Ok(body[..half].to_vec())).await.unwrap();
    let upload = tokio::spawn({
        let http = http.clone();
        let (origin, cookie) = (origin.clone(), cookie.clone());
        async move {
            http.post(format!("{origin}/api/jobs/transcribe?filename=cut.wav"))
                .header("origin", &origin)
                .header("sec-fetch-site", "same-origin")
                .header("cookie", cookie)
                .header("content-length", body.len())
                .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
                .send()
                .await
        }
    });
    let start = Instant::now();
    while !files_under(&data).iter().any(|f| {
        std::fs::metadata(f)
            .map(|m| m.len() as usize >= half / 2)
            .unwrap_or(false)
            && !f.to_string_lossy().contains("portal.db")
            && !f.to_string_lossy().contains("tls")
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(tx);
    let _ = upload.await;

    let mut child = start_binary(dir.path(), port);
    let http = wait_ready(dir.path(), port, &mut child).await;
    let jobs: Vec<_> = std::fs::read_dir(data.join("jobs")).unwrap().collect();
    assert!(jobs.is_empty(), "orphan job files: {jobs:?}");
    let incoming: Vec<_> = std::fs::read_dir(data.join("incoming")).unwrap().collect();
    assert!(incoming.is_empty(), "upload left in incoming: {incoming:?}");

    // A complete job, then every file of the data directory is owner-only.
    let cookie = sign_in(&http, port).await;
    let r = http
        .post(format!("{origin}/api/jobs/transcribe?filename=ok.wav"))
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .header("cookie", cookie)
        .body(wav(1.0))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", d.display());
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is {mode:o}", e.path().display());
                seen += 1;
            }
        }
    }
    // portal.db, -wal, -shm, the certificate and key, the upload.
    assert!(seen >= 6, "{seen} files");
    let _ = child.kill();
    let _ = child.wait();
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_by_its_client_leaves_nothing_behind() {
    let p = Portal::start().await;
    p.add_user("abe", false);
    let c = p.login("abe").await;
    let incoming = p.config.incoming_dir();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = wav(4.0);
    tx.send(Ok(body[..body.len() / 2].to_vec())).await.unwrap();
    let req = c
        .req(Method::POST, "/api/jobs/transcribe?filename=gone.wav")
        .header("content-length", body.len())
        .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)));
    let upload = tokio::spawn(async move { req.send().await });
    let start = Instant::now();
    while std::fs::read_dir(&incoming).unwrap().next().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The client goes away mid-body.
    upload.abort();
    let _ = upload.await;
    drop(tx);
    let start = Instant::now();
    loop {
        let left: Vec<_> = std::fs::read_dir(&incoming).unwrap().collect();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And its place under the job limit is free again.
    let (s, _) = c
        .upload("/api/jobs/transcribe?filename=next.wav", wav(0.5))
        .await;
    assert_eq!(s, StatusCode::CREATED);
}
