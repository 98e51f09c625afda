//! Uploads and the job queue against the real portal: limits and type checks before any
//! decoding, persistence across restarts, deletion and retention that remove files.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Portal, config_in, wav};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn uploads_are_checked_before_anything_decodes_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.limits.max_upload = valise_config::ByteSize::new(64 * 1024);
    let p = Portal::start_with(dir, config).await;
    p.add_user("judy", false);
    let c = p.login("judy").await;
    let (s, e) = c
        .upload("/api/jobs/transcribe?filename=big.wav", wav(3.0))
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")),
        "{e}"
    );
    let (s, e) = c
        .upload(
            "/api/jobs/transcribe?filename=x.mp3",
            b"%PDF-1.7 not audio".to_vec(),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_type"))
    );
    let (s, e) = c
        .upload(
            "/api/jobs/document?filename=a.docx&target=pt",
            b"plain text".to_vec(),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_type"))
    );
    let (s, e) = c
        .upload(
            "/api/jobs/document?filename=a.exe&target=pt",
            b"MZ".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");
    let (s, e) = c
        .upload(
            "/api/jobs/transcribe?filename=a.wav&language=../x",
            wav(0.5),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Nothing refused is left on disk, no row was written.
    let left: Vec<_> = std::fs::read_dir(p.jobs_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let (_, list) = c.get_json("/api/jobs").await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (s, job) = c
        .upload("/api/jobs/transcribe?filename=ok.wav", wav(1.0))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
}

#[tokio::test]
async fn queued_jobs_survive_a_restart_and_say_the_engine_is_down() {
    let mut p = Portal::start().await;
    p.add_user("ken", false);
    let c = p.login("ken").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, job) = c
            .upload(&format!("/api/jobs/transcribe?filename=r{i}.wav"), wav(1.0))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (_, job) = c.get_json(&format!("/api/jobs/{}", ids[2])).await;
    assert_eq!(job["state"], "queued");
    assert_eq!(job["queue_position"], 3);
    assert_eq!(job["notice"], "engine_unavailable", "{job}");
    let cookie = c.cookie.clone();
    p.stop().await;
    let dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
    let config = p.config.clone();
    let p2 = Portal::start_with(dir, config).await;
    let mut c2 = p2.client();
    c2.cookie = cookie;
    let (s, list) = c2.get_json("/api/jobs").await;
    assert_eq!(s, StatusCode::OK, "the session survives the restart too");
    let got: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert!(got.contains(&id.as_str()), "{id} lost");
        assert!(p2.jobs_dir().join(id).join("input").exists());
    }
}

#[tokio::test]
async fn deleting_a_job_removes_its_files_and_retention_purges_old_ones() {
    let p = Portal::start().await;
    p.add_user("leo", true);
    let c = p.login("leo").await;
    let (_, a) = c
        .upload("/api/jobs/transcribe?filename=a.wav", wav(1.0))
        .await;
    let (_, b) = c
        .upload("/api/jobs/transcribe?filename=b.wav", wav(1.0))
        .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    let r = c
        .req(Method::DELETE, &format!("/api/jobs/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        !p.jobs_dir().join(&a).exists(),
        "files removed, not just the row"
    );
    let (s, _) = c.get_json(&format!("/api/jobs/{a}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Retention: make b old and failed, then purge.
    let (s, r) = c
        .send_json(
            Method::PUT,
            "/api/admin/retention",
            &serde_json::json!({"days": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let db = p.db();
    db.with(|conn| {
        conn.execute(
            "UPDATE jobs SET state = 'failed', finished_at = finished_at - 0, created_at = created_at - 3 * 86400,
             finished_at = strftime('%s','now') - 3 * 86400 WHERE id = ?1",
            [&b],
        )?;
        Ok(())
    })
    .unwrap();
    let files = valise_portal::jobs::Files::new(p.jobs_dir());
    let n = db
        .with(|conn| valise_portal::retention::purge(conn, &files, 7))
        .unwrap();
    assert_eq!(n, 1);
    assert!(!p.jobs_dir().join(&b).exists());
    let (s, _) = c.get_json(&format!("/api/jobs/{b}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn each_user_has_a_job_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.limits.max_jobs_per_user = 2;
    let p = Portal::start_with(dir, config).await;
    p.add_user("mia", false);
    let c = p.login("mia").await;
    for _ in 0..2 {
        let (s, _) = c
            .upload("/api/jobs/transcribe?filename=a.wav", wav(0.5))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, e) = c
        .upload("/api/jobs/transcribe?filename=a.wav", wav(0.5))
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_jobs"))
    );
}

/// Waits until the transcription engine holds no job and its spool no recording.
async fn wait_engine_forgot(
    engine: &valise_engine_client::TranscribeClient,
    spool: &std::path::Path,
    what: &str,
) {
    let start = std::time::Instant::now();
    loop {
        let jobs = engine.jobs().await.unwrap();
        let spooled: Vec<_> = std::fs::read_dir(spool).unwrap().flatten().collect();
        if jobs.is_empty() && spooled.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what}: the engine still holds {jobs:?}, its spool {spooled:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn wait_state(c: &common::Client, id: &str, state: &str) {
    let start = std::time::Instant::now();
    loop {
        let (_, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        if j["state"] == state {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "waiting for {state}: {j}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn delete_job(c: &common::Client, id: &str) {
    let r = c
        .req(Method::DELETE, &format!("/api/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_reaches_the_engines_in_every_state() {
    const FRENCH_LONG: &str = "/usr/share/asterisk/sounds/fr/demo-congrats.wav";
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let engine = valise_engine_client::TranscribeClient::new(dir.path().join("transcribe.sock"));
    let spool = dir.path().join("spool");
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("ida", false);
    p.add_user("ivo", false);
    p.add_user("boss", true);
    let c = p.login("ida").await;
    let long = std::fs::read(FRENCH_LONG)
        .unwrap_or_else(|e| panic!("{FRENCH_LONG}: {e}: {}", valise_e2e::HINT));

    // Being handed over: an hour-long recording, deleted as soon as the engine's copy
    // appears in its spool (while the portal still streams it, or just after).
    let (s, job) = c
        .upload("/api/jobs/transcribe?filename=hour.wav", wav(3600.0))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let start = std::time::Instant::now();
    while std::fs::read_dir(&spool).unwrap().next().is_none() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    delete_job(&c, &id).await;
    wait_engine_forgot(&engine, &spool, "deleted while handed over").await;

    // Running at the engine.
    let (_, job) = c
        .upload(
            "/api/jobs/transcribe?filename=long.wav&language=fr",
            long.clone(),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_state(&c, &id, "running").await;
    delete_job(&c, &id).await;
    wait_engine_forgot(&engine, &spool, "deleted while running").await;

    // Done at the engine, not collected yet: deleted the moment the engine says done.
    let (_, job) = c
        .upload(
            "/api/jobs/transcribe?filename=jfk.wav&language=en",
            std::fs::read(valise_e2e::testdata("jfk.wav")).unwrap(),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let start = std::time::Instant::now();
    loop {
        let jobs = engine.jobs().await.unwrap();
        if jobs
            .iter()
            .any(|j| j.state == valise_protocol::JobState::Done)
        {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "{jobs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    delete_job(&c, &id).await;
    wait_engine_forgot(&engine, &spool, "deleted when done").await;
    assert!(!p.jobs_dir().join(&id).exists(), "no result placed for it");

    // The user deleted by an admin while their job runs.
    let v = p.login("ivo").await;
    let (_, job) = v
        .upload("/api/jobs/transcribe?filename=long.wav&language=fr", long)
        .await;
    let vid = job["id"].as_str().unwrap().to_owned();
    wait_state(&v, &vid, "running").await;
    let admin = p.login("boss").await;
    let (_, users) = admin.get_json("/api/admin/users").await;
    let ivo = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "ivo")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = admin
        .req(Method::DELETE, &format!("/api/admin/users/{ivo}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    wait_engine_forgot(&engine, &spool, "user deleted while their job ran").await;

    // Translating: a long document deleted while the engine works on it leaves no result,
    // and the next document does not wait for it.
    let text: String = (0..400)
        .map(|i| format!("The consulate will review application number {i} next week.\n"))
        .collect();
    let (s, a) = c
        .upload(
            "/api/jobs/document?filename=long.txt&source=en&target=pt",
            text.into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let (_, b) = c
        .upload(
            "/api/jobs/document?filename=short.txt&source=en&target=pt",
            b"Thank you.\n".to_vec(),
        )
        .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    wait_state(&c, &a, "running").await;
    delete_job(&c, &a).await;
    wait_state(&c, &b, "done").await;
    assert!(
        !p.jobs_dir().join(&a).exists(),
        "the deleted translation's result was written"
    );
    let incoming: Vec<_> = std::fs::read_dir(p.config.incoming_dir())
        .unwrap()
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
}
