//! A long recording through the engine's API, with the real model: progress by audio position,
//! a time left that holds up (20 % once a tenth of the job is done, measured on 12 minutes
//! with `VALISE_ETA_STRICT=1` on a quiet machine; see `valise_e2e::eta_strict`), and the
//! segments so far readable while the rest is transcribed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use valise_protocol::{Format, JobOptions, JobState, Segment, Transcript};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_reports_position_a_fair_eta_and_its_segments_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path(), "whisper-tiny.en-q8_0")).await;
    let c = &srv.client;

    // JFK looped: 2 minutes, or 12 when measuring the estimate (`valise_e2e::long_job_loops`).
    let long = dir.path().join("long.flac");
    valise_e2e::looped_audio(&testdata("jfk.wav"), valise_e2e::long_job_loops(), &long);
    let opts = JobOptions {
        language: Some("en".into()),
        translate: false,
        model: None,
    };
    let job = c.submit_file(&long, &opts).await.unwrap();

    let started = Instant::now();
    // (time, position, eta) of the first reading past 10 % of the recording.
    let mut first_eta: Option<(Instant, f64, f64)> = None;
    let mut partial: Vec<Segment> = Vec::new();
    let mut positions = Vec::new();
    let done_at = loop {
        let s = c.status(&job.id).await.unwrap();
        let now = Instant::now();
        match s.state {
            JobState::Done => break now,
            JobState::Running => {
                // Running a moment before the media is probed: no duration yet.
                let Some(duration) = s.media.as_ref().and_then(|m| m.duration_secs) else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let pos = s.position_secs.expect("a running job says where it is");
                positions.push(pos);
                println!(
                    "{:6.1} s: position {pos:6.1} / {duration:.0} s, eta {:?}",
                    started.elapsed().as_secs_f64(),
                    s.eta_secs.map(|e| e.round())
                );
                // Progress is the position, not the decoder's read-ahead (the two are stored one
                // after the other: a read in between may see them one batch apart).
                assert!(
                    (f64::from(s.progress) - pos / duration * 0.99).abs() < 0.02 + 30.0 / duration,
                    "{s:?}"
                );
                if first_eta.is_none()
                    && pos >= 0.10 * duration
                    && let Some(eta) = s.eta_secs
                {
                    first_eta = Some((now, pos, eta));
                }
                if partial.is_empty() {
                    let p = c.segments(&job.id, 0).await.unwrap();
                    if p.state == JobState::Running && !p.segments.is_empty() {
                        assert_eq!(p.total as usize, p.segments.len());
                        assert!(p.position_secs > 0.0 && p.position_secs < duration);
                        // `from` skips what was read already.
                        let later = c.segments(&job.id, p.total).await.unwrap();
                        assert!(later.total >= p.total);
                        assert_eq!(later.segments.len(), (later.total - p.total) as usize);
                        partial = p.segments;
                    }
                }
            }
            JobState::Queued => {}
            other => panic!("job ended {other:?}: {s:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the long job took too long"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Position only moves forward.
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    // Segments so far were there while the job ran, and they are the transcript's beginning.
    assert!(
        !partial.is_empty(),
        "no segments were readable while the job ran"
    );
    let t: Transcript =
        serde_json::from_str(&c.result(&job.id, Format::Json).await.unwrap()).unwrap();
    assert!(t.segments.len() > partial.len());
    for (a, b) in partial.iter().zip(&t.segments) {
        assert_eq!((a.id, &a.text, a.start), (b.id, &b.text, b.start));
    }
    assert!(words(&partial[0].text).contains("ask not"), "{partial:?}");

    // The time left said after the first tenth of the job, against the time it really took.
    let (at, pos, eta) = first_eta.expect("an ETA once a tenth of the recording was done");
    let actual = done_at.duration_since(at).as_secs_f64();
    let err = valise_e2e::check_eta(eta, actual, t.duration - pos)
        .unwrap_or_else(|e| panic!("ETA at {pos:.0} s of {:.0} s: {e}", t.duration));
    println!(
        "ETA at {pos:.0} s of {:.0} s: said {eta:.1} s, took {actual:.1} s ({:.0} % off)",
        t.duration,
        err * 100.0
    );
    srv.stop().await.unwrap();
}
