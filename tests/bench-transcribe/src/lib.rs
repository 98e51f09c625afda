//! Accuracy and speed of Valise's transcription, measured on real speech with references.
//!
//! * [`data`]: the evaluation sets (JFK, LibriVox, the Asterisk prompts in English and French)
//!   and a deterministic subset selector.
//! * [`normalize`] and [`Score`]: text normalization for WER and word-level WER by Levenshtein
//!   distance (sum of edits over sum of reference words, over a whole set).
//! * [`valise`]: Valise's engine used in-process, as `valisectl transcribe` does.
//!
//! The `bench-transcribe` binary runs each configuration in a child process and puts
//! faster-whisper (same CTranslate2 weights, same thread count, same decoding settings) beside
//! it; the `french_wer` test holds the accuracy floor. See README.md.

pub mod data;
pub mod valise;

pub use valise_bundle::wer::{Lang, Score, edit_distance, normalize, number_words};
