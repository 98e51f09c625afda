//! The span logic against silero-vad's own `get_speech_timestamps_from_probs` on synthetic
//! probability sequences (fixture made by tests/fixtures/make_reference.py). No model needed.

mod common;

use common::{fixture, pairs, spans_of};
use valise_vad::{Segmenter, VadConfig, spans_from_probabilities};

fn config(cfg: &serde_json::Value) -> VadConfig {
    let mut c = VadConfig::default();
    let num = |k: &str| cfg.get(k).and_then(serde_json::Value::as_f64);
    if let Some(v) = num("threshold") {
        c.threshold = v as f32;
    }
    if let Some(v) = num("min_speech_duration_ms") {
        c.min_speech_ms = v as u32;
    }
    if let Some(v) = num("min_silence_duration_ms") {
        c.min_silence_ms = v as u32;
    }
    if let Some(v) = num("speech_pad_ms") {
        c.speech_pad_ms = v as u32;
    }
    if let Some(v) = num("max_speech_duration_s") {
        c.max_speech_s = v as f32;
    }
    c
}

#[test]
fn matches_upstream_on_synthetic_probabilities() {
    let data = fixture("logic_cases.json");
    let cases = data["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40);
    let mut total_spans = 0;
    let mut total_early = 0;
    for (i, case) in cases.iter().enumerate() {
        let cfg = config(&case["cfg"]);
        let probs: Vec<f32> = case["probs"]
            .as_array()
            .expect("probs")
            .iter()
            .map(|p| p.as_f64().expect("prob") as f32)
            .collect();
        let samples = case["samples"].as_u64().expect("samples");
        let expected = spans_of(&case["spans"]);
        total_spans += expected.len();

        let got = spans_from_probabilities(&probs, samples, &cfg).expect("valid config");
        assert_eq!(pairs(&got), expected, "case {i} ({cfg:?})");

        // Spans handed out early must already be final and arrive in order.
        let mut seg = Segmenter::new(&cfg).expect("valid config");
        let mut early = Vec::new();
        for (frame, &p) in probs.iter().enumerate() {
            let before = early.len();
            seg.push(p, &mut early);
            for s in &early[before..] {
                assert!(
                    s.end <= (frame as u64 + 1) * 512,
                    "case {i}: span {s:?} handed out before its end was seen (frame {frame})"
                );
            }
        }
        let n_early = early.len();
        total_early += n_early;
        early.extend(seg.finish(samples));
        assert_eq!(
            pairs(&early),
            expected,
            "case {i} streamed ({n_early} early)"
        );
    }
    assert!(
        total_spans > 100,
        "fixture should exercise many spans, has {total_spans}"
    );
    // Streaming is only useful if most spans come out before the end of the stream.
    assert!(
        total_early * 10 >= total_spans * 7,
        "only {total_early} of {total_spans} spans were handed out before finish"
    );
}
