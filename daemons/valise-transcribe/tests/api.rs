//! The engine's API end to end, with the real model and real recordings, on a temporary Unix
//! socket: transcription, formats, progress, cancellation, fairness, and bad input that must
//! not cost the daemon anything.

mod common;

use std::time::{Duration, Instant};

use common::*;
use valise_engine_client::ClientError;
use valise_protocol::{Format, JobOptions, JobState, Transcript};

const JFK: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

fn opts(lang: &str) -> JobOptions {
    JobOptions {
        language: Some(lang.into()),
        translate: false,
        model: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribes_real_speech_in_every_format_and_survives_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "whisper-tiny.en-q8_0");
    cfg.limits.max_file_size = valise_config::ByteSize::mib(8);
    let srv = start(cfg).await;
    let c = &srv.client;

    let h = c.health().await.unwrap();
    assert_eq!(h.models_loaded, vec!["whisper-tiny.en-q8_0".to_string()]);
    let models = c.models().await.unwrap();
    assert!(
        models
            .iter()
            .any(|m| m.id == "whisper-base-q8_0" && !m.loaded)
    );

    // A real recording, as MP3 (decoded, resampled, VAD, whisper).
    let job = c
        .submit_file(&testdata("jfk.mp3"), &opts("en"))
        .await
        .unwrap();
    let done = c.wait(&job.id, |_| {}).await.unwrap();
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let media = done.media.expect("media summary");
    assert_eq!(media.codec, "mp3");
    let json = c.result(&job.id, Format::Json).await.unwrap();
    let t: Transcript = serde_json::from_str(&json).unwrap();
    assert_eq!(words(&t.text()), JFK, "{}", t.text());
    assert_eq!(t.language, "en");
    assert!((t.duration - 11.0).abs() < 0.3, "duration {}", t.duration);
    assert!(t.speech_duration > 6.0 && t.speech_duration < 11.0);
    let first = &t.segments[0];
    assert!(first.start < 1.0 && first.end > first.start, "{first:?}");
    assert!(t.segments.last().unwrap().end <= t.duration + 0.01);
    assert!(
        t.segments
            .iter()
            .all(|s| s.confidence > 0.3 && s.doubts.is_empty()),
        "{t:?}"
    );
    let srt = c.result(&job.id, Format::Srt).await.unwrap();
    assert!(srt.starts_with("1\n00:00:0"), "{srt}");
    assert!(srt.contains(" --> "));
    let vtt = c.result(&job.id, Format::Vtt).await.unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n"));
    assert!(
        words(&c.result(&job.id, Format::Txt).await.unwrap()).contains("ask not what your country")
    );

    // Bad input: each gets its own clear error, and the daemon keeps serving.
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bad = c.submit_bytes(garbage, &opts("auto")).await.unwrap();
    let bad = c.wait(&bad.id, |_| {}).await.unwrap();
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(
        bad.error.as_ref().unwrap().code,
        "unsupported_format",
        "{bad:?}"
    );
    match c.result(&bad.id, Format::Txt).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, "unsupported_format"),
        other => panic!("{other:?}"),
    }

    match c.submit_bytes(Vec::new(), &opts("auto")).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, "empty"),
        other => panic!("{other:?}"),
    }
    match c.submit_bytes(vec![0u8; 9 << 20], &opts("auto")).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, "too_large"),
        other => panic!("{other:?}"),
    }
    match c.submit_bytes(b"RIFF".to_vec(), &opts("xx")).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, "bad_request"),
        other => panic!("{other:?}"),
    }
    // English-only model asked for French.
    match c.submit_bytes(b"RIFF".to_vec(), &opts("fr")).await {
        Err(ClientError::Api(e)) => assert!(e.message.contains("English"), "{e:?}"),
        other => panic!("{other:?}"),
    }
    // Nothing of the refused uploads is left in the spool.
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );

    // Pure silence and pure noise are not errors: a transcript with nothing (or nothing
    // trustworthy) in it, never whisper's hallucinated "Thank you." over silence.
    let silence = dir.path().join("silence.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=stereo",
        "-t",
        "20",
        silence.to_str().unwrap(),
    ]);
    let noise = dir.path().join("noise.ogg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=white:amplitude=0.1:r=16000",
        "-t",
        "15",
        "-c:a",
        "libvorbis",
        noise.to_str().unwrap(),
    ]);
    for (file, secs) in [(&silence, 20.0), (&noise, 15.0)] {
        let j = c.submit_file(file, &opts("auto")).await.unwrap();
        let j = c.wait(&j.id, |_| {}).await.unwrap();
        assert_eq!(j.state, JobState::Done, "{j:?}");
        let t: Transcript =
            serde_json::from_str(&c.result(&j.id, Format::Json).await.unwrap()).unwrap();
        assert!((t.duration - secs).abs() < 0.5, "{t:?}");
        assert!(t.speech_duration < 1.0, "{file:?}: {t:?}");
        assert!(
            t.segments.iter().all(|s| !s.doubts.is_empty()),
            "{file:?}: {t:?}"
        );
    }

    // A WAV cut in the middle: what could be decoded is transcribed, or a clear error.
    let jfk_bytes = std::fs::read(testdata("jfk.wav")).unwrap();
    let cut = c
        .submit_bytes(jfk_bytes[..jfk_bytes.len() / 2].to_vec(), &opts("en"))
        .await
        .unwrap();
    let cut = c.wait(&cut.id, |_| {}).await.unwrap();
    match cut.state {
        JobState::Done => {
            let t = c.result(&cut.id, Format::Txt).await.unwrap();
            assert!(words(&t).contains("my fellow americans"), "{t}");
        }
        JobState::Failed => assert_eq!(cut.error.unwrap().code, "truncated"),
        other => panic!("{other:?}"),
    }

    // Still serving.
    let again = c
        .submit_file(&testdata("jfk.wav"), &opts("auto"))
        .await
        .unwrap();
    let again = c.wait(&again.id, |_| {}).await.unwrap();
    assert_eq!(again.state, JobState::Done);
    assert_eq!(c.jobs().await.unwrap().len(), 6);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_job_is_not_stuck_behind_a_long_one_and_cancel_stops_work() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path(), "whisper-tiny.en-q8_0")).await;
    let c = &srv.client;

    // A long recording: jfk.wav 16 times over (about 3 minutes of speech).
    let long = dir.path().join("long.flac");
    let jfk = testdata("jfk.wav");
    ffmpeg(&[
        "-stream_loop",
        "15",
        "-i",
        jfk.to_str().unwrap(),
        long.to_str().unwrap(),
    ]);

    let long_job = c.submit_file(&long, &opts("en")).await.unwrap();
    // Let the long job start computing.
    let started = Instant::now();
    loop {
        let s = c.status(&long_job.id).await.unwrap();
        if s.state == JobState::Running && s.progress > 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "long job never started: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let short = c.submit_file(&jfk, &opts("en")).await.unwrap();
    let short = c.wait(&short.id, |_| {}).await.unwrap();
    assert_eq!(short.state, JobState::Done);
    let long_now = c.status(&long_job.id).await.unwrap();
    assert_eq!(
        long_now.state,
        JobState::Running,
        "the short job waited for the long one: {long_now:?}"
    );
    assert!(long_now.progress < 0.9);

    // Cancel the long job: it stops promptly and its upload is gone.
    let t = Instant::now();
    c.cancel(&long_job.id).await.unwrap();
    loop {
        if c.status(&long_job.id).await.is_err() {
            break; // forgotten
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "cancel did not stop the job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = c.health().await.unwrap();
    assert_eq!(health.jobs_running, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
    srv.stop().await.unwrap();
}
