//! Voice activity detection for Valise, with the Silero VAD ONNX model (v5/v6) run by
//! ONNX Runtime through [`ort`], loaded dynamically from a shared library shipped with
//! the model store (nothing is downloaded, ever).
//!
//! The behaviour reproduces silero-vad 6.2.3's Python `OnnxWrapper` and
//! `get_speech_timestamps`: 16 kHz audio is cut into 512-sample (32 ms) frames, each
//! prefixed with the previous frame's last 64 samples and run through the model together
//! with its recurrent state; the per-frame speech probabilities go through a hysteresis
//! state machine (enter speech at `threshold`, leave below `threshold - 0.15` after
//! `min_silence_ms`), short spans are dropped, over-long spans are cut at their longest
//! pause, and spans are padded by `speech_pad_ms` (sharing the gap when two spans are
//! closer than twice the padding). See `DESIGN.md` in this crate.
//!
//! Recordings can be hours long, so the main API is streaming: a [`VadStream`] takes
//! chunks of any size, keeps only the unfinished frame, and hands out each span as soon
//! as no later audio can change it. The result is identical to the offline
//! [`speech_spans`] on the same audio, whatever the chunk sizes.
//!
//! ```no_run
//! use std::path::Path;
//! use valise_vad::{VadConfig, VadModel};
//!
//! # fn main() -> Result<(), valise_vad::VadError> {
//! if let Some(lib) = valise_vad::find_onnxruntime() {
//!     valise_vad::init_onnxruntime(&lib)?;
//! }
//! let model = VadModel::load(Path::new("/usr/share/valise/silero_vad.onnx"))?;
//! let mut stream = model.stream(VadConfig::default());
//! # let chunks: Vec<Vec<f32>> = Vec::new();
//! for chunk in chunks {
//!     for span in stream.push(&chunk)? {
//!         println!("speech {}..{} (samples at 16 kHz)", span.start, span.end);
//!     }
//! }
//! for span in stream.finish()? {
//!     println!("speech {}..{}", span.start, span.end);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod model;
mod runtime;
mod segmenter;

pub use error::VadError;
pub use model::{VadModel, VadStream, speech_spans};
pub use runtime::{
    SYSTEM_ONNXRUNTIME, find_onnxruntime, init_onnxruntime, onnx_environment, onnxruntime_path,
};
pub use segmenter::{Segmenter, spans_from_probabilities};

/// The only sample rate the VAD takes (mono).
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples per model frame (32 ms at 16 kHz).
pub const FRAME_SAMPLES: usize = 512;
/// Samples of the previous frame prepended to each frame.
pub const CONTEXT_SAMPLES: usize = 64;

/// Detection settings; [`Default`] is silero's `get_speech_timestamps` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Speech probability at or above which a frame starts speech (silero: 0.5). Speech
    /// ends below `max(threshold - 0.15, 0.01)`.
    pub threshold: f32,
    /// Spans shorter than this are dropped (silero: 250 ms).
    pub min_speech_ms: u32,
    /// Silence needed to end a span (silero: 100 ms).
    pub min_silence_ms: u32,
    /// Padding added on each side of a span (silero: 30 ms).
    pub speech_pad_ms: u32,
    /// Spans longer than this are split, at their longest pause of more than 98 ms if
    /// there is one (silero: infinite).
    pub max_speech_s: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
            max_speech_s: f32::INFINITY,
        }
    }
}

/// A span of speech, in samples at 16 kHz from the start of the stream (`end` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpeechSpan {
    pub start: u64,
    pub end: u64,
}

impl SpeechSpan {
    /// Length in samples.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Start in seconds.
    pub fn start_secs(&self) -> f64 {
        self.start as f64 / f64::from(SAMPLE_RATE)
    }

    /// End in seconds.
    pub fn end_secs(&self) -> f64 {
        self.end as f64 / f64::from(SAMPLE_RATE)
    }
}
