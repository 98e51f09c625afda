//! # valise-media
//!
//! Streaming decode of **untrusted** uploaded media into the 16 kHz mono `f32` PCM that the
//! Valise transcriber (whisper) consumes.
//!
//! Staff upload recordings in whatever their phone, dictaphone or video-call tool produced:
//! WAV, FLAC, MP3, Ogg (Vorbis, Opus), M4A/AAC, or the audio track of MP4 / WebM / MKV files.
//! This crate
//!
//! * probes the container from its content (the file name is only a hint),
//! * picks the first decodable audio track,
//! * decodes it packet by packet, downmixes to mono and resamples to 16 kHz,
//! * hands the result out in caller-sized chunks ([`Decoder::read`]), so a two-hour
//!   recording never needs two hours of PCM in memory,
//! * enforces [`Limits`] (file size, duration, channels, sample rate) before decoding where the
//!   header allows it and again while decoding, because headers lie,
//! * turns every kind of bad input (truncated, garbage, lying headers, decoder panics, endless
//!   empty packets) into a [`MediaError`] with a stable [`code`](MediaError::code) instead of a
//!   panic, a hang or an unbounded allocation.
//!
//! Decoding is done by [symphonia](https://docs.rs/symphonia) (pure Rust) with libopus, through
//! `symphonia-adapter-libopus`, for Opus; resampling by [rubato](https://docs.rs/rubato).
//! See `DESIGN.md` next to this crate's `Cargo.toml` for the data flow and the limits.
//!
//! ```no_run
//! use valise_media::{Decoder, Limits};
//!
//! # fn main() -> Result<(), valise_media::MediaError> {
//! let mut dec = Decoder::open("upload.m4a".as_ref(), &Limits::default())?;
//! let mut chunk = Vec::new();
//! loop {
//!     chunk.clear();
//!     if dec.read(&mut chunk, 16_000 * 30)? == 0 {
//!         break;
//!     }
//!     // feed `chunk` (16 kHz mono f32) to the transcriber
//! }
//! # Ok(())
//! # }
//! ```

mod decoder;
mod error;
mod resample;

use std::path::Path;

pub use decoder::Decoder;
pub use error::MediaError;
pub use symphonia::core::io::MediaSource;

/// Sample rate of the decoded output, in Hz (what whisper expects).
pub const TARGET_SAMPLE_RATE: u32 = 16_000;

/// Lowest accepted source sample rate, in Hz. Real recordings start around 4–8 kHz; below this
/// the 16 kHz upsampling ratio (and the resampler's buffers) would be unreasonable, so such a
/// stream is rejected with `unsupported_audio_params`.
pub const MIN_SAMPLE_RATE: u32 = 1_000;

/// Resource limits applied to one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted file, in bytes (checked from metadata before probing).
    pub max_file_bytes: u64,
    /// Longest accepted audio, in seconds: checked against the container header before
    /// decoding, and against the decoded sample count while decoding.
    pub max_duration_secs: u64,
    /// Most channels accepted in the audio track.
    pub max_channels: u16,
    /// Highest sample rate accepted, in Hz.
    pub max_sample_rate: u32,
}

impl Default for Limits {
    /// 2 GiB, 4 hours, 8 channels, 384 kHz.
    fn default() -> Self {
        Limits {
            max_file_bytes: 2 * 1024 * 1024 * 1024,
            max_duration_secs: 4 * 60 * 60,
            max_channels: 8,
            max_sample_rate: 384_000,
        }
    }
}

/// What the container says about the selected audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Short name of the container format (`"wave"`, `"ogg"`, `"isomp4"`, `"matroska"`, ...).
    pub container: String,
    /// Short name of the codec (`"pcm_s16le"`, `"flac"`, `"mp3"`, `"aac"`, `"vorbis"`,
    /// `"opus"`, ...).
    pub codec: String,
    /// Source sample rate in Hz (0 if the container does not declare it).
    pub sample_rate: u32,
    /// Source channel count (0 if the container does not declare it).
    pub channels: u16,
    /// Duration declared by the container, if any. Informational: it is not trusted.
    pub duration_secs: Option<f64>,
}

/// Decodes a whole file into memory. Convenience for short clips; for anything long use
/// [`Decoder::read`] in a loop.
pub fn decode_all(path: &Path, limits: &Limits) -> Result<Vec<f32>, MediaError> {
    let mut decoder = Decoder::open(path, limits)?;
    let mut out = Vec::new();
    if let Some(secs) = decoder.info().duration_secs {
        // Pre-size from the (capped) declared duration; the header is not trusted beyond that.
        let hint = (secs.min(limits.max_duration_secs as f64).max(0.0) * 16_000.0) as usize;
        out.reserve(hint.min(16_000 * 600));
    }
    while decoder.read(&mut out, 16_000 * 10)? > 0 {}
    Ok(out)
}
