//! Acceptance cases through the real engines (processes on Unix sockets, the dev model store):
//! a bundle whose cases hold passes; a wrong transcript, a wrong translation, a model the
//! engine does not have, a case past its deadline and an engine that is down each fail with the
//! case named and what the engine produced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{JFK, PT_EN, jfk, manifest, pt_en, sockets};
use valise_bundle::AcceptanceCase;
use valise_models::FileEntry;
use valise_update::acceptance::{EngineSockets, FailureKind, run_acceptance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_passes_and_fails_precisely_through_the_real_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let bundle = dir.path().join("bundle");
    let s = sockets(dir.path());

    // Both cases hold.
    let m = manifest(&bundle, vec![jfk(JFK, 0.10), pt_en(PT_EN)]);
    let passed = run_acceptance(&m, &bundle, &s).await.unwrap();
    assert_eq!(passed.len(), 2);
    assert_eq!(passed[0].name, "jfk-en");
    assert!(passed[0].wer.unwrap() <= 0.10, "{:?}", passed[0]);
    assert!(
        passed[0]
            .observed
            .to_lowercase()
            .contains("fellow americans"),
        "{:?}",
        passed[0]
    );
    assert_eq!(passed[1].observed, PT_EN);
    assert_eq!(passed[1].wer, None);

    // A transcript far from the expected one: the case is named, the WER and what was heard
    // are in the failure.
    let m = manifest(
        &bundle,
        vec![
            pt_en(PT_EN),
            jfk("The quick brown fox jumps over the lazy dog.", 0.10),
        ],
    );
    let f = run_acceptance(&m, &bundle, &s).await.unwrap_err();
    assert_eq!(f.case, "jfk-en");
    assert_eq!(f.engine, "transcribe");
    let FailureKind::Wer { wer, max_wer } = f.kind else {
        panic!("{f}")
    };
    assert!(wer > 0.5 && max_wer == 0.10, "{f}");
    assert!(
        f.observed
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains("ask not"),
        "{f}"
    );

    // A translation that differs by one character fails, with the engine's text.
    let m = manifest(&bundle, vec![pt_en("The cat is on the table!")]);
    let f = run_acceptance(&m, &bundle, &s).await.unwrap_err();
    assert_eq!(
        (f.case.as_str(), &f.kind),
        ("pt-en-cat", &FailureKind::Mismatch)
    );
    assert_eq!(f.observed.as_deref(), Some(PT_EN));
    assert!(f.to_string().contains("pt-en-cat"), "{f}");

    // The bundle names a model the engine's store does not hold: the engine refuses it.
    let mut m = manifest(&bundle, vec![]);
    let mut other = m.models[0].clone();
    other.id = "whisper-none-q8_0".into();
    for f in &mut other.files {
        f.path = f.path.replacen("whisper-base-q8_0", "whisper-none-q8_0", 1);
    }
    m.models.push(other);
    let case = AcceptanceCase::Transcribe {
        name: "jfk-en".into(),
        model: "whisper-none-q8_0".into(),
        input: "acceptance/jfk.wav".into(),
        language: Some("en".into()),
        expect: JFK.into(),
        max_wer: 0.1,
        timeout_s: Some(60),
    };
    m.acceptance = vec![case];
    let f = run_acceptance(&m, &bundle, &s).await.unwrap_err();
    let FailureKind::Engine(why) = &f.kind else {
        panic!("{f}")
    };
    assert!(why.contains("whisper-none-q8_0"), "{f}");

    // The engine serves a model of that id, but not the bundle's bytes (it was not restarted
    // on the new slot).
    let mut m = manifest(&bundle, vec![jfk(JFK, 0.10)]);
    m.models[0].files[0].size += 1;
    let f = run_acceptance(&m, &bundle, &s).await.unwrap_err();
    let FailureKind::Engine(why) = &f.kind else {
        panic!("{f}")
    };
    assert!(why.contains("bytes"), "{f}");

    // A case past its deadline (1 s for 110 s of speech) fails as a timeout, and its job is
    // cancelled in the engine: it leaves the engine's table as soon as the job's thread lets go.
    let mut m = manifest(&bundle, vec![]);
    let long = bundle.join("acceptance/long.wav");
    let src = valise_e2e::testdata("jfk.wav");
    valise_e2e::looped_audio(&src, 10, &long);
    m.files.push(FileEntry {
        path: "acceptance/long.wav".into(),
        size: std::fs::metadata(&long).unwrap().len(),
        sha256: valise_models::sha256_file(&long).unwrap(),
    });
    m.acceptance = vec![AcceptanceCase::Transcribe {
        name: "long".into(),
        model: "whisper-base-q8_0".into(),
        input: "acceptance/long.wav".into(),
        language: Some("en".into()),
        expect: JFK.repeat(10),
        max_wer: 0.1,
        timeout_s: Some(1),
    }];
    let f = run_acceptance(&m, &bundle, &s).await.unwrap_err();
    assert_eq!(f.kind, FailureKind::Timeout(1), "{f}");
    let engine = valise_engine_client::TranscribeClient::new(&s.transcribe);
    let start = Instant::now();
    loop {
        let left = engine.jobs().await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The engine is not there.
    let gone = EngineSockets {
        transcribe: dir.path().join("nothing.sock"),
        ..s.clone()
    };
    let m = manifest(&bundle, vec![jfk(JFK, 0.10)]);
    let f = run_acceptance(&m, &bundle, &gone).await.unwrap_err();
    assert!(matches!(f.kind, FailureKind::Unavailable(_)), "{f}");
}
