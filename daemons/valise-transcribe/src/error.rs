use valise_media::MediaError;
use valise_protocol::ApiError;

/// One error type for the engine; `code()` is what the API reports.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("voice activity detection failed: {0}")]
    Vad(#[from] valise_vad::VadError),
    #[error(transparent)]
    Model(#[from] valise_models::ModelError),
    #[error("cannot load whisper model {id}: {message}")]
    ModelLoad { id: String, message: String },
    #[error("model {id} is not a speech model")]
    NotSpeechModel { id: String },
    #[error("whisper failed: {0}")]
    Whisper(String),
    #[error("language {0:?} is not one whisper knows")]
    UnknownLanguage(String),
    #[error(
        "model {model} only knows English: use a multilingual model for {language:?} or translation"
    )]
    EnglishOnly { model: String, language: String },
    #[error("the job was cancelled")]
    Cancelled,
    #[error("the job took longer than the {0} s allowed")]
    TimedOut(u64),
    #[error("{0}")]
    Internal(String),
}

impl TranscribeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Media(e) => e.code(),
            Self::Vad(_) => "vad_failed",
            Self::Model(_) | Self::ModelLoad { .. } => "model_unavailable",
            Self::NotSpeechModel { .. } => "bad_request",
            Self::Whisper(_) => "engine_failed",
            Self::UnknownLanguage(_) | Self::EnglishOnly { .. } => "bad_request",
            Self::Cancelled => "cancelled",
            Self::TimedOut(_) => "timed_out",
            Self::Internal(_) => "internal",
        }
    }

    pub fn to_api(&self) -> ApiError {
        ApiError::new(self.code(), self.to_string())
    }
}

impl From<whisper_rs::WhisperError> for TranscribeError {
    fn from(e: whisper_rs::WhisperError) -> Self {
        Self::Whisper(e.to_string())
    }
}
