//! The text-translation engine's API (`valise-translate`, Unix socket, HTTP/JSON).
//!
//! ```text
//! GET  /v1/health     -> TranslateHealth
//! GET  /v1/languages  -> Languages (the pairs the installed models can do)
//! POST /v1/translate  TranslateRequest -> TranslateResponse
//! POST /v1/detect     DetectRequest -> Detection
//! POST /v1/translate/document?format=F&source=S&target=T   document bytes -> same format,
//!                     report in the `valise-report` header (DocumentReport, percent-encoded)
//! POST /v1/translate/transcript  TranscriptRequest -> Transcript (segments translated)
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

/// The document formats `POST /v1/translate/document?format=…` takes and gives back.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DocumentFormat {
    #[default]
    Txt,
    Md,
    Html,
    Docx,
    Odt,
}

impl DocumentFormat {
    pub const ALL: [DocumentFormat; 5] = [Self::Txt, Self::Md, Self::Html, Self::Docx, Self::Odt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Txt => "txt",
            Self::Md => "md",
            Self::Html => "html",
            Self::Docx => "docx",
            Self::Odt => "odt",
        }
    }

    /// From a format name or a file extension (`htm`, `markdown` included), any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase()
            .as_str()
        {
            "txt" | "text" => Some(Self::Txt),
            "md" | "markdown" => Some(Self::Md),
            "html" | "htm" => Some(Self::Html),
            "docx" => Some(Self::Docx),
            "odt" => Some(Self::Odt),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Txt => "text/plain; charset=utf-8",
            Self::Md => "text/markdown; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Odt => "application/vnd.oasis.opendocument.text",
        }
    }
}

/// Something of a document that was left as it was, and why (one line per kind).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    pub what: String,
    pub count: usize,
    pub why: String,
}

/// What happened to a document: sent back percent-encoded in the `valise-report` header of
/// `POST /v1/translate/document` (lists are capped so the header stays small).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct DocumentReport {
    pub format: DocumentFormat,
    pub source: String,
    pub target: String,
    pub pivot: bool,
    /// Paragraph-like units with text (paragraphs, headings, cells, list items).
    pub blocks: usize,
    pub sentences: usize,
    /// Sentences whose text spanned several formatting runs: translated as one sentence, the
    /// translation takes the formatting of the run that held most of it.
    pub merged_runs: usize,
    /// Sentences that could not be translated (their source text is kept in place); at most
    /// [`DocumentReport::MAX_LISTED`] are listed, `errors_total` counts them all.
    pub errors: Vec<SentenceError>,
    pub errors_total: usize,
    pub skipped: Vec<Skipped>,
}

impl DocumentReport {
    pub const MAX_LISTED: usize = 20;
}

/// `POST /v1/translate/transcript`: a transcript translated segment by segment, timings kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TranscriptRequest {
    pub transcript: crate::transcript::Transcript,
    #[serde(default = "auto")]
    pub source: String,
    pub target: String,
}
