//! A long recording through the portal with the real engines: while it runs, the job shows
//! how far it is and a time left that holds up (20 % once a tenth is done, measured on 12
//! minutes with `VALISE_ETA_STRICT=1` on a quiet machine: `valise_e2e::eta_strict`), and its
//! segments so far can be read (`GET /api/jobs/{id}/partial`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Portal, config_in};
use reqwest::StatusCode;
use serde_json::Value;
use valise_e2e::{looped_audio, testdata, words};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_shows_a_fair_eta_and_its_first_segments_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let long = dir.path().join("long.flac");
    // JFK looped: 2 minutes, or 12 when measuring the estimate (`valise_e2e::long_job_loops`).
    looped_audio(&testdata("jfk.wav"), valise_e2e::long_job_loops(), &long);
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("nadia", false);
    let c = p.login("nadia").await;

    let (s, job) = c
        .upload(
            "/api/jobs/transcribe?filename=meeting.flac&language=en",
            std::fs::read(&long).unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    // (time, progress, eta, recording seconds still to do) of the first reading past 10 %.
    let mut first_eta: Option<(Instant, f64, f64, f64)> = None;
    let mut partial: Vec<Value> = Vec::new();
    let done_at = loop {
        let (s, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        let now = Instant::now();
        match j["state"].as_str().unwrap() {
            "done" => break now,
            "running" => {
                let progress = j["progress"].as_f64().unwrap();
                println!(
                    "{:6.1} s: progress {progress:.3}, position {}, eta {}",
                    started.elapsed().as_secs_f64(),
                    j["position_secs"],
                    j["eta_secs"]
                );
                if first_eta.is_none()
                    && progress >= 0.10
                    && let Some(eta) = j["eta_secs"].as_f64()
                {
                    let duration = j["duration_secs"].as_f64().expect("a probed duration");
                    first_eta = Some((now, progress, eta, (1.0 - progress) * duration));
                }
                if partial.is_empty() {
                    let (s, pt) = c.get_json(&format!("/api/jobs/{id}/partial")).await;
                    assert_eq!(s, StatusCode::OK, "{pt}");
                    if pt["state"] == "running" {
                        partial = pt["segments"].as_array().unwrap().clone();
                    }
                }
            }
            "queued" => {}
            other => panic!("job ended {other}: {j}"),
        }
        assert!(started.elapsed() < Duration::from_secs(900), "too long");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // The first segments were readable before the job was done, and they are the
    // transcript's beginning.
    assert!(!partial.is_empty(), "no segments while the job ran");
    let (_, t) = c.get_json(&format!("/api/jobs/{id}/transcript")).await;
    let all = t["segments"].as_array().unwrap();
    assert!(all.len() > partial.len());
    for (a, b) in partial.iter().zip(all) {
        assert_eq!(a["text"], b["text"]);
    }
    assert!(words(partial[0]["text"].as_str().unwrap()).contains("ask not"));
    // Once done, `partial` gives the stored transcript, from `from`.
    let (_, pt) = c.get_json(&format!("/api/jobs/{id}/partial?from=1")).await;
    assert_eq!(pt["state"], "done");
    assert_eq!(pt["total"].as_u64().unwrap() as usize, all.len());
    assert_eq!(pt["segments"].as_array().unwrap().len(), all.len() - 1);

    let (at, progress, eta, remaining_audio) = first_eta.expect("an ETA once a tenth was done");
    let actual = done_at.duration_since(at).as_secs_f64();
    let err = valise_e2e::check_eta(eta, actual, remaining_audio)
        .unwrap_or_else(|e| panic!("ETA at {:.0} %: {e}", progress * 100.0));
    println!(
        "ETA at {:.0} %: said {eta:.0} s, took {actual:.1} s ({:.0} % off)",
        progress * 100.0,
        err * 100.0
    );
}
