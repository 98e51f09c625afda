//! A planned stop (SIGTERM in the daemon): queued and running jobs are reported `failed` with
//! `engine_stopping`, new work and health are refused with it, a finished job stays
//! collectable, and the server exits as soon as its clients have taken note of all that,
//! long before `STOP_GRACE`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use valise_engine_client::ClientError;
use valise_protocol::{Format, JobOptions, JobState};

fn opts() -> JobOptions {
    JobOptions {
        language: Some("en".into()),
        ..JobOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_stop_reports_dropped_jobs_and_exits_once_they_are_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), "whisper-base-q8_0");
    config.max_running_jobs = 1;
    let spool = config.spool_dir.clone();
    let mut r = common::start(config).await;
    let c = r.client.clone();
    let jfk = common::testdata("jfk.wav");
    let long = dir.path().join("long.wav");
    common::looped_audio(&jfk, 10, &long);

    // One job done and not collected yet, one running, one queued behind it.
    let done = c.submit_file(&jfk, &opts()).await.unwrap().id;
    assert_eq!(c.wait(&done, |_| {}).await.unwrap().state, JobState::Done);
    let running = c.submit_file(&long, &opts()).await.unwrap().id;
    let queued = c.submit_file(&long, &opts()).await.unwrap().id;
    let start = Instant::now();
    while c.status(&running).await.unwrap().progress == 0.0 {
        assert!(start.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.status(&queued).await.unwrap().state, JobState::Queued);

    r.signal_stop();
    // Health says so (and is how a client waiting for the new process tells them apart).
    let start = Instant::now();
    let refusal = loop {
        match c.health().await {
            Err(ClientError::Api(e)) => break e,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(refusal.is_engine_stopping(), "{refusal:?}");
    // No new work.
    let Err(ClientError::Api(e)) = c.submit_bytes(b"RIFF".to_vec(), &opts()).await else {
        panic!("a submission was taken while stopping")
    };
    assert!(e.is_engine_stopping(), "{e:?}");
    // The dropped jobs say why; the server waits for the finished one to be collected.
    for id in [&running, &queued] {
        let s = c.status(id).await.unwrap();
        assert_eq!(s.state, JobState::Failed, "{s:?}");
        assert!(s.error.unwrap().is_engine_stopping());
    }
    assert!(
        !r.task.is_finished(),
        "exited before the result was collected"
    );
    let t = c.result(&done, Format::Txt).await.unwrap();
    assert!(common::words(&t).contains("ask not"), "{t}");
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), &mut r.task)
        .await
        .expect("the server exits once its clients took note, not after the grace")
        .unwrap()
        .unwrap();
    assert!(stopped.elapsed() < valise_transcribe::STOP_GRACE / 2);
    // Nothing of the uploads is left behind.
    let start = Instant::now();
    while std::fs::read_dir(&spool).unwrap().next().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "spool not emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
