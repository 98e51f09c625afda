//! valise-convert: CTranslate2 whisper models → whisper.cpp GGML files, and Marian
//! (Bergamot) translation models → ONNX graphs ([`marian`], see `MARIAN.md`).
//!
//! The central team receives whisper models in CTranslate2 format
//! (faster-whisper's `model.bin`) and ships whisper.cpp GGML files to the
//! appliances. [`convert_whisper`] does that conversion, optionally
//! block-quantizing the weights to q8_0 or q5_1 exactly as whisper.cpp's
//! `quantize` tool would. See `DESIGN.md` for the formats and the name mapping.
//!
//! ```no_run
//! use valise_convert::{ConvertOptions, EnglishOnly, OutType, convert_whisper};
//! let report = convert_whisper(&ConvertOptions {
//!     ct2: "models/base".into(),
//!     assets: "whisper/assets".into(),
//!     out: "ggml-base.bin".into(),
//!     out_type: OutType::F16,
//!     english_only: EnglishOnly::Auto,
//! })?;
//! println!("{report}");
//! # Ok::<(), valise_convert::ConvertError>(())
//! ```

pub mod assets;
pub mod ct2;
mod error;
pub mod ggml;
pub mod marian;
pub mod quant;
mod whisper;

pub use error::ConvertError;
pub use marian::{MarianOptions, MarianReport, WeightType, convert_marian};
pub use whisper::{
    ConvertOptions, EnglishOnly, MULTILINGUAL_MIN_VOCAB, OutType, Report, SUPPORTED_SPEC_REVISIONS,
    WHISPER_SPEC, convert_whisper,
};

/// Little-endian f32 values of `bytes` (a trailing partial value is ignored): how every format
/// read here stores its floats.
pub(crate) fn f32s_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
