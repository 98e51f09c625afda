use std::path::PathBuf;

/// One error type for the engine; `code()` is what the API reports (mapped to an HTTP status
/// in one `match`, in `api.rs`).
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error(transparent)]
    Model(#[from] valise_models::ModelError),
    #[error("ONNX Runtime: {0}")]
    Runtime(#[from] valise_vad::VadError),
    #[error("cannot load the translation model in {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },
    #[error("no translation model is installed")]
    NoModels,
    #[error("cannot translate from {from:?} to {to:?}; installed pairs: {available}")]
    UnsupportedPair {
        from: String,
        to: String,
        available: String,
    },
    #[error("unknown language code {0:?} (use a code from GET /v1/languages, or \"auto\")")]
    UnknownLanguage(String),
    #[error("cannot tell the language of the text (installed: {installed})")]
    Undetected { installed: String },
    #[error("the text is empty")]
    Empty,
    #[error("the text has {chars} characters; at most {max} are accepted per request")]
    TooLong { chars: usize, max: usize },
    #[error("{0}")]
    BadRequest(String),
    /// Over a size limit other than characters (document bytes, decompressed size, entries).
    #[error("{0}")]
    TooLarge(String),
    /// A document that cannot be read as its format says (malformed XML, broken zip, unsafe
    /// entry names).
    #[error("the document cannot be read: {0}")]
    BadDocument(String),
    #[error("the translation took longer than the {0} s allowed")]
    TimedOut(u64),
    #[error("translation engine failed: {0}")]
    Engine(String),
    #[error("{0}")]
    Internal(String),
}

impl TranslateError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Model(_) | Self::Runtime(_) | Self::ModelLoad { .. } | Self::NoModels => {
                "model_unavailable"
            }
            Self::UnsupportedPair { .. } => "unsupported_pair",
            Self::UnknownLanguage(_) | Self::BadRequest(_) => "bad_request",
            Self::Undetected { .. } => "undetected_language",
            Self::Empty => "empty",
            Self::TooLong { .. } | Self::TooLarge(_) => "too_large",
            Self::BadDocument(_) => "bad_document",
            Self::TimedOut(_) => "timed_out",
            Self::Engine(_) => "engine_failed",
            Self::Internal(_) => "internal",
        }
    }
}
