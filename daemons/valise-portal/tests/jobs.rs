//! Uploads and the job queue against the real portal: limits and type checks before any
//! decoding, persistence across restarts, deletion and retention that remove files.

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
