//! A planned restart of both engines (what valise-update does after switching models, and
//! `systemctl restart`: SIGTERM, wait for the exit, start again) under a loaded portal: the
//! transcriptions the engine was working on, the ones waiting in the portal's queue and the
//! document translations all end `done`, with `max_attempts = 1`: a planned stop does not
//! count as a try (the engine reports `engine_stopping` for the work it drops, see the portal's
//! DESIGN.md "Planned engine restarts"). A crash still counts: the test beside it in
//! `engines.rs` kills the engine.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Portal, config_in, wait_job};
use reqwest::StatusCode;
use valise_e2e::engines::EngineProc;
use valise_e2e::testdata;
use valise_engine_client::TranscribeClient;
use valise_protocol::JobState;

/// `systemctl restart`, blocking this worker only.
fn restart(e: &mut EngineProc) -> Duration {
    let start = Instant::now();
    let clean = tokio::task::block_in_place(|| e.restart_planned(Duration::from_secs(60)));
    assert!(clean, "the engine did not exit by itself after SIGTERM");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_restart_of_both_engines_loses_and_fails_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, mut l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let mut config = config_in(dir.path());
    config.engines.max_attempts = 1;
    config.engines.transcribe_in_flight = 2;
    let engine = TranscribeClient::new(dir.path().join("transcribe.sock"));
    // Two minutes of speech: long enough to be mid-job when the engine stops.
    let long = dir.path().join("long.wav");
    let jfk = testdata("jfk.wav");
    valise_e2e::looped_audio(&jfk, 10, &long);
    let p = Portal::start_with(dir, config).await;
    p.add_user("ana", false);
    let c = p.login("ana").await;

    let mut ids = Vec::new();
    for (name, file) in [("a.wav", &long), ("b.wav", &long), ("c.wav", &jfk)] {
        let (s, j) = c
            .upload(
                &format!("/api/jobs/transcribe?filename={name}&language=en"),
                std::fs::read(file).unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    let text =
        "The embassy is closed on Monday. Please come back on Tuesday morning.\n".repeat(150);
    for name in ["one.txt", "two.txt"] {
        let (s, j) = c
            .upload(
                &format!("/api/jobs/document?filename={name}&source=en&target=pt"),
                text.clone().into_bytes(),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        ids.push(j["id"].as_str().unwrap().to_owned());
    }

    // The engine is working on two transcriptions (the third waits in the portal's queue).
    let start = Instant::now();
    loop {
        let running: Vec<_> = engine
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.state == JobState::Running && j.progress > 0.0)
            .collect();
        if running.len() == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{running:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, queued) = c.get_json(&format!("/api/jobs/{}", ids[2])).await;
    assert_eq!(queued["state"], "queued", "{queued}");

    let took = restart(&mut t);
    // The engine stopped as soon as the portal had taken note of the dropped jobs, well before
    // its grace period ran out.
    assert!(took < Duration::from_secs(8), "stop + start took {took:?}");
    restart(&mut l);

    for id in &ids {
        let j = wait_job(&c, id, Duration::from_secs(600)).await;
        assert_eq!(j["state"], "done", "{j}");
        assert_eq!(j["attempts"], 1, "a planned restart is not a try: {j}");
        assert!(j.get("error").is_none(), "{j}");
    }
}
