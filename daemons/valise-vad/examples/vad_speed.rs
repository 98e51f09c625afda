//! Measures how fast the VAD runs (one intra-op thread) on a 16 kHz mono s16 WAV.
//!
//! ```text
//! cargo run --release -p valise-vad --example vad_speed -- [file.wav] [model.onnx] [libonnxruntime.so]
//! ```
//! Defaults: `$VALISE_TESTDATA/jfk.wav` and the model/runtime under `$VALISE_CACHE/src`
//! (VALISE_CACHE defaults to /var/cache/valise).

use std::path::PathBuf;
use std::time::Instant;

use valise_vad::{VadConfig, VadModel, speech_spans};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = std::env::var_os("VALISE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise"));
    let testdata = std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("testdata"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let wav = args.next().unwrap_or_else(|| testdata.join("jfk.wav"));
    let model_path = args
        .next()
        .unwrap_or_else(|| cache.join("src/silero/silero_vad/data/silero_vad.onnx"));
    let runtime = args
        .next()
        .unwrap_or_else(|| cache.join("src/ort/onnxruntime/capi/libonnxruntime.so.1.31.1"));

    let mut reader = hound::WavReader::open(&wav)?;
    let spec = reader.spec();
    if (spec.sample_rate, spec.channels, spec.bits_per_sample) != (16000, 1, 16) {
        return Err(format!("{} must be 16 kHz mono s16", wav.display()).into());
    }
    let audio = reader
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<Vec<_>, _>>()?;
    let secs = audio.len() as f64 / 16000.0;

    let t = Instant::now();
    valise_vad::init_onnxruntime(&runtime)?;
    let t_runtime = t.elapsed();
    let t = Instant::now();
    let model = VadModel::load(&model_path)?;
    let t_model = t.elapsed();
    // A second concurrent stream needs a second session: what does one cost?
    let first = model.stream(VadConfig::default());
    let mut second = model.stream(VadConfig::default());
    let t = Instant::now();
    second.push(&[0.0; 512])?; // creates the session lazily
    let t_session = t.elapsed();
    drop((first, second));

    let cfg = VadConfig::default();
    let spans = speech_spans(&model, &audio, &cfg)?; // warm-up
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        speech_spans(&model, &audio, &cfg)?;
    }
    let per_run = t.elapsed().as_secs_f64() / f64::from(rounds);
    let frames = audio.len().div_ceil(512) as f64;

    println!("audio:        {} ({secs:.2} s)", wav.display());
    println!(
        "runtime load: {:.1} ms ({})",
        t_runtime.as_secs_f64() * 1e3,
        runtime.display()
    );
    println!(
        "model load:   {:.1} ms ({})",
        t_model.as_secs_f64() * 1e3,
        model_path.display()
    );
    println!("extra session: {:.1} ms", t_session.as_secs_f64() * 1e3);
    println!(
        "VAD, 1 thread: {:.2} ms per pass → RTF {:.5} ({:.0}× real time), {:.1} µs per 32 ms frame",
        per_run * 1e3,
        per_run / secs,
        secs / per_run,
        per_run / frames * 1e6
    );
    println!(
        "{} speech spans, {:.2} s of speech",
        spans.len(),
        spans.iter().map(|s| s.len()).sum::<u64>() as f64 / 16000.0
    );
    Ok(())
}
