//! The real Silero VAD model on real speech, through the real ONNX Runtime 1.31.1.
//!
//! Needs `$VALISE_CACHE` (default /var/cache/valise) as filled by the fetch script; fails
//! (never skips) when something is missing.

mod common;

use std::time::Instant;

use common::{fixture, jfk, model, pairs, spans_of};
use valise_vad::{SAMPLE_RATE, SpeechSpan, VadConfig, VadModel, speech_spans};

const SR: usize = SAMPLE_RATE as usize;

fn covered(spans: &[SpeechSpan]) -> u64 {
    spans.iter().map(SpeechSpan::len).sum()
}

fn streamed(model: &VadModel, pcm: &[f32], cfg: &VadConfig, chunk: usize) -> Vec<SpeechSpan> {
    let mut stream = model.stream(cfg.clone());
    let mut spans = Vec::new();
    for c in pcm.chunks(chunk.max(1)) {
        spans.extend(stream.push(c).expect("push"));
    }
    spans.extend(stream.finish().expect("finish"));
    spans
}

/// jfk.wav with 20 s of digital silence inserted at the middle sample.
fn jfk_with_gap() -> (Vec<f32>, usize) {
    let jfk = jfk();
    let mid = jfk.len() / 2;
    let mut out = Vec::with_capacity(jfk.len() + 20 * SR);
    out.extend_from_slice(&jfk[..mid]);
    out.resize(mid + 20 * SR, 0.0);
    out.extend_from_slice(&jfk[mid..]);
    (out, mid)
}

#[test]
fn probabilities_match_python_reference() {
    let reference = fixture("jfk_reference.json");
    let expected: Vec<f64> = reference["first_probs"]
        .as_array()
        .expect("first_probs")
        .iter()
        .map(|v| v.as_f64().expect("prob"))
        .collect();
    assert!(expected.len() >= 300);
    let probs = model().probabilities(&jfk()).expect("probabilities");
    assert_eq!(probs.len(), 176_000usize.div_ceil(512));
    let mut worst = (0usize, 0.0f64);
    for (i, (&got, &want)) in probs.iter().zip(&expected).enumerate() {
        let diff = (f64::from(got) - want).abs();
        if diff > worst.1 {
            worst = (i, diff);
        }
    }
    println!(
        "max |rust - python| over {} frames: {:.3e} (frame {})",
        expected.len(),
        worst.1,
        worst.0
    );
    assert!(
        worst.1 < 1e-3,
        "frame {}: rust {} vs python {}",
        worst.0,
        probs[worst.0],
        expected[worst.0]
    );
}

#[test]
fn jfk_spans_match_python_reference() {
    let reference = fixture("jfk_reference.json");
    let audio = jfk();
    assert_eq!(
        audio.len() as u64,
        reference["jfk_samples"].as_u64().expect("n")
    );
    let spans = speech_spans(model(), &audio, &VadConfig::default()).expect("spans");
    assert_eq!(pairs(&spans), spans_of(&reference["jfk_spans"]));

    let cfg = VadConfig {
        max_speech_s: 2.0,
        ..VadConfig::default()
    };
    let spans = speech_spans(model(), &audio, &cfg).expect("spans");
    assert_eq!(
        pairs(&spans),
        spans_of(&reference["jfk_spans_max_speech_2s"])
    );
    for s in &spans {
        assert!(s.len() <= 2 * 16_000, "{s:?} longer than max_speech_s");
    }
}

#[test]
fn jfk_speech_is_found_with_pauses() {
    let audio = jfk();
    let spans = speech_spans(model(), &audio, &VadConfig::default()).expect("spans");
    let secs: Vec<(f64, f64)> = spans
        .iter()
        .map(|s| (s.start_secs(), s.end_secs()))
        .collect();
    println!("jfk.wav speech spans (s): {secs:.2?}");
    let fraction = covered(&spans) as f64 / audio.len() as f64;
    assert!(
        fraction > 0.70,
        "speech covers only {:.0}% of jfk.wav",
        fraction * 100.0
    );
    // "And so, my fellow Americans / ask not / what your country can do for you /
    // ask what you can do for your country": JFK pauses between the phrases.
    assert!(spans.len() >= 3, "expected several phrases, got {secs:?}");
    let long_pauses = spans
        .windows(2)
        .filter(|w| w[1].start - w[0].end >= 8_000)
        .count();
    assert!(
        long_pauses >= 2,
        "expected ≥ 2 pauses of ≥ 0.5 s, got {secs:?}"
    );
    for w in spans.windows(2) {
        assert!(
            w[0].end <= w[1].start,
            "spans overlap or are out of order: {secs:?}"
        );
    }
    // Silence before the first word is not speech.
    assert!(spans[0].start > 2_000, "{secs:?}");
    assert!(spans.last().expect("spans").end <= audio.len() as u64);
}

#[test]
fn digital_silence_has_no_speech() {
    let silence = vec![0.0f32; 10 * SR];
    let spans = speech_spans(model(), &silence, &VadConfig::default()).expect("spans");
    assert!(spans.is_empty(), "{spans:?}");
}

#[test]
fn white_noise_is_not_speech() {
    // Deterministic Gaussian-ish white noise (sum of 4 uniforms), RMS ≈ 0.05 (−26 dBFS).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let noise: Vec<f32> = (0..10 * SR)
        .map(|_| {
            let g = (uniform() + uniform() + uniform() + uniform()) * 3f64.sqrt();
            (0.05 * g) as f32
        })
        .collect();
    let rms =
        (noise.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    assert!((0.04..0.06).contains(&rms), "rms {rms}");
    let spans = speech_spans(model(), &noise, &VadConfig::default()).expect("spans");
    let speech = covered(&spans) as f64 / SR as f64;
    println!(
        "white noise (rms {rms:.3}): {:.2} s of 10 s flagged as speech",
        speech
    );
    assert!(
        speech <= 0.5,
        "{speech:.2} s of white noise taken for speech: {spans:?}"
    );
}

#[test]
fn inserted_silence_is_avoided() {
    let (audio, mid) = jfk_with_gap();
    let spans = speech_spans(model(), &audio, &VadConfig::default()).expect("spans");
    let quiet = (mid + SR) as u64..(mid + 19 * SR) as u64; // the middle 18 s of the gap
    for s in &spans {
        assert!(
            s.end <= quiet.start || s.start >= quiet.end,
            "span {s:?} overlaps the inserted silence {quiet:?}"
        );
    }
    assert!(
        spans.iter().any(|s| s.end <= quiet.start),
        "speech before the gap: {spans:?}"
    );
    assert!(
        spans.iter().any(|s| s.start >= quiet.end),
        "speech after the gap: {spans:?}"
    );
    let reference = fixture("jfk_reference.json");
    assert_eq!(
        mid as u64,
        reference["gapped_insert_at"].as_u64().expect("mid")
    );
    assert_eq!(pairs(&spans), spans_of(&reference["gapped_spans"]));
}

#[test]
fn streaming_equals_offline_for_any_chunking() {
    let (gapped, _) = jfk_with_gap();
    let jfk = jfk();
    let short_max = VadConfig {
        max_speech_s: 2.0,
        ..VadConfig::default()
    };
    for (name, audio) in [("jfk", &jfk), ("jfk+gap", &gapped)] {
        for cfg in [VadConfig::default(), short_max.clone()] {
            let offline = speech_spans(model(), audio, &cfg).expect("offline");
            assert!(!offline.is_empty());
            for chunk in [160, 512, 7777, audio.len()] {
                let got = streamed(model(), audio, &cfg, chunk);
                assert_eq!(got, offline, "{name}, chunks of {chunk}, {cfg:?}");
            }
            // Irregular chunk sizes, including empty pushes.
            let mut stream = model().stream(cfg.clone());
            let mut got = Vec::new();
            let mut rest = &audio[..];
            for n in [0usize, 1, 63, 64, 65, 511, 513, 0, 1023, 3000]
                .iter()
                .cycle()
            {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*n).min(rest.len()));
                got.extend(stream.push(a).expect("push"));
                rest = b;
            }
            got.extend(stream.finish().expect("finish"));
            assert_eq!(got, offline, "{name}, irregular chunks, {cfg:?}");
        }
    }
}

#[test]
fn spans_are_handed_out_before_the_end_of_the_stream() {
    let (audio, mid) = jfk_with_gap();
    let mut stream = model().stream(VadConfig::default());
    // Everything up to 2 s into the inserted silence.
    let early = stream.push(&audio[..mid + 2 * SR]).expect("push");
    assert!(
        !early.is_empty(),
        "spans before the gap should be final by now"
    );
    assert!(!stream.in_speech());
    let mut all = early.clone();
    all.extend(stream.push(&audio[mid + 2 * SR..]).expect("push"));
    all.extend(stream.finish().expect("finish"));
    assert_eq!(
        all,
        speech_spans(model(), &audio, &VadConfig::default()).expect("offline")
    );
}

#[test]
fn concurrent_streams_are_independent() {
    let audio = jfk();
    let expected = speech_spans(model(), &audio, &VadConfig::default()).expect("spans");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let audio = &audio;
                s.spawn(move || streamed(model(), audio, &VadConfig::default(), 1000 + 337 * i))
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().expect("thread"), expected);
        }
    });
}

#[test]
fn errors_name_the_file() {
    let missing = std::path::Path::new("/nonexistent/silero_vad.onnx");
    model(); // runtime initialised
    let err = VadModel::load(missing).expect_err("missing model must fail");
    assert!(
        err.to_string().contains("/nonexistent/silero_vad.onnx"),
        "{err}"
    );

    let not_a_model = common::required(
        common::testdata_dir().join("jfk.wav"),
        "jfk.wav test recording",
    );
    let err = VadModel::load(&not_a_model).expect_err("a WAV is not a model");
    assert!(err.to_string().contains("jfk.wav"), "{err}");

    let bad = VadConfig {
        threshold: 1.5,
        ..VadConfig::default()
    };
    let err = speech_spans(model(), &[0.0; 1000], &bad).expect_err("bad threshold");
    assert!(err.to_string().contains("threshold"), "{err}");
}

#[test]
fn other_silero_exports_load() {
    // The op15 export has the same signature; the speed/accuracy trade-off may differ.
    let path = common::required(
        common::cache_dir().join("src/silero/silero_vad/data/silero_vad_16k_op15.onnx"),
        "Silero VAD op15 model",
    );
    model();
    let op15 = VadModel::load(&path).expect("load op15");
    let spans = speech_spans(&op15, &jfk(), &VadConfig::default()).expect("spans");
    println!("op15 spans: {:?}", pairs(&spans));
    assert!(covered(&spans) as f64 > 0.6 * 176_000.0);
}

#[test]
fn speed_single_thread() {
    let audio = jfk();
    let model = model();
    // Warm up (first session run allocates).
    speech_spans(model, &audio[..SR], &VadConfig::default()).expect("warm-up");
    let rounds = 5;
    let start = Instant::now();
    for _ in 0..rounds {
        speech_spans(model, &audio, &VadConfig::default()).expect("spans");
    }
    let elapsed = start.elapsed().as_secs_f64() / f64::from(rounds);
    let audio_secs = audio.len() as f64 / SR as f64;
    let frames = audio.len().div_ceil(512) as f64;
    println!(
        "VAD speed (1 intra-op thread, debug-profile crate, ORT release): {audio_secs:.1} s of audio in \
         {:.1} ms → RTF {:.4} ({:.0}× real time, {:.1} µs/frame)",
        elapsed * 1e3,
        elapsed / audio_secs,
        audio_secs / elapsed,
        elapsed / frames * 1e6
    );
    // Generous bound: VAD must never be the bottleneck next to whisper.
    assert!(
        elapsed / audio_secs < 0.1,
        "VAD too slow: RTF {}",
        elapsed / audio_secs
    );
}

/// `pending_from` is a promise to callers that drop old audio (the transcription pipeline
/// keeps only what spans still to come may need): no span handed out later may start before
/// what it said. Long speech with forced cuts (max_speech_s) is where this is hardest.
#[test]
fn pending_from_never_overtakes_a_later_span() {
    let jfk = jfk();
    let mut pcm = Vec::new();
    for _ in 0..6 {
        pcm.extend_from_slice(&jfk);
    }
    for max_speech_s in [3.0, 28.0] {
        let cfg = VadConfig {
            max_speech_s,
            ..VadConfig::default()
        };
        for chunk in [512, 4000, 80_000] {
            let mut stream = model().stream(cfg.clone());
            let mut promised = 0u64;
            let mut spans = 0;
            for part in pcm.chunks(chunk) {
                for s in stream.push(part).unwrap() {
                    assert!(
                        s.start >= promised,
                        "span {s:?} starts before the promised {promised} (chunk {chunk}, max {max_speech_s})"
                    );
                    spans += 1;
                }
                let now = stream.pending_from();
                assert!(now >= promised, "pending_from went backwards");
                assert!(now <= stream.samples());
                promised = now;
            }
            for s in stream.finish().unwrap() {
                assert!(s.start >= promised, "final span {s:?} before {promised}");
                spans += 1;
            }
            assert!(spans >= 6, "{spans} spans");
        }
    }
}
