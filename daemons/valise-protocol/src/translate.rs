//! The text-translation engine's API (`valise-translate`, Unix socket, HTTP/JSON).
//!
//! ```text
//! GET  /v1/health     -> TranslateHealth
//! GET  /v1/languages  -> Languages (the pairs the installed models can do)
//! POST /v1/translate  TranslateRequest -> TranslateResponse
//! POST /v1/detect     DetectRequest -> Detection
//! ```
//! Errors are [`ApiError`](crate::ApiError) bodies with a stable `code`.

use serde::{Deserialize, Serialize};

/// `source` may be `"auto"` (detected among the installed source languages).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    pub text: String,
    #[serde(default = "auto")]
    pub source: String,
    pub target: String,
}

fn auto() -> String {
    "auto".to_owned()
}

/// One sentence that could not be translated; its source text is kept in place in
/// `translation` so that nothing is silently dropped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentenceError {
    /// Index of the sentence in the request (0-based, in text order).
    pub sentence: usize,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TranslateResponse {
    /// The translated text; paragraphs, line breaks and surrounding whitespace as in the input.
    pub translation: String,
    /// The source language used (the detected one when the request said `auto`).
    pub source: String,
    pub target: String,
    /// True when no direct model exists and the text went through English.
    pub pivot: bool,
    /// Sentences translated (pieces of over-long sentences count once per sentence).
    pub sentences: usize,
    pub errors: Vec<SentenceError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LanguagePair {
    pub source: String,
    pub target: String,
    /// Through English (two models).
    pub pivot: bool,
    /// The model ids used, in order.
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Languages {
    pub pairs: Vec<LanguagePair>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Detection {
    pub language: String,
    /// 0..1, from the detector; low for short texts.
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TranslateHealth {
    pub status: String,
    pub version: String,
    pub models_loaded: Vec<String>,
}
