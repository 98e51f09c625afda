//! Shared helpers for the tests: where the real model, runtime and audio live.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use valise_vad::VadModel;

const FETCH_HINT: &str = "run the fetch script (scripts/setup) to populate \
     $VALISE_CACHE (default /var/cache/valise), or point VALISE_CACHE / VALISE_TESTDATA at a copy";

pub fn cache_dir() -> PathBuf {
    std::env::var_os("VALISE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise"))
}

pub fn testdata_dir() -> PathBuf {
    std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("testdata"))
}

/// `path`, or a test failure that says how to get it. Never a silent skip.
pub fn required(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{what} is missing: {} — {FETCH_HINT}",
        path.display()
    );
    path
}

pub fn runtime_path() -> PathBuf {
    required(
        cache_dir().join("src/ort/onnxruntime/capi/libonnxruntime.so.1.31.1"),
        "ONNX Runtime 1.31.1 (from the onnxruntime wheel)",
    )
}

pub fn model_path() -> PathBuf {
    required(
        cache_dir().join("src/silero/silero_vad/data/silero_vad.onnx"),
        "Silero VAD model (from the silero-vad 6.2.3 wheel)",
    )
}

/// The model, loaded once per test binary (tests run on several threads).
pub fn model() -> &'static VadModel {
    static MODEL: OnceLock<VadModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        valise_vad::init_onnxruntime(&runtime_path()).expect("init ONNX Runtime");
        VadModel::load(&model_path()).expect("load the Silero VAD model")
    })
}

/// 16 kHz mono s16 WAV → f32 in [-1, 1) (x / 32768, as torchaudio and the reference do).
pub fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e} — {FETCH_HINT}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (16000, 1, 16),
        "{} must be 16 kHz mono s16",
        path.display()
    );
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("wav sample")) / 32768.0)
        .collect()
}

pub fn jfk() -> Vec<f32> {
    read_wav(&required(
        testdata_dir().join("jfk.wav"),
        "jfk.wav test recording",
    ))
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

pub fn spans_of(v: &serde_json::Value) -> Vec<(u64, u64)> {
    v.as_array()
        .expect("array of spans")
        .iter()
        .map(|p| (p[0].as_u64().expect("start"), p[1].as_u64().expect("end")))
        .collect()
}

pub fn pairs(spans: &[valise_vad::SpeechSpan]) -> Vec<(u64, u64)> {
    spans.iter().map(|s| (s.start, s.end)).collect()
}
