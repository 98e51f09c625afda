//! The valise-transcribe engine API (HTTP/JSON over a Unix socket).
//!
//! ```text
//! GET    /v1/health                  -> Health
//! GET    /v1/models                  -> [ModelInfo]
//! POST   /v1/jobs?language=&translate=&model=   body: the media file (streamed) -> 202 JobStatus
//! GET    /v1/jobs                    -> [JobStatus]
//! GET    /v1/jobs/{id}               -> JobStatus
//! GET    /v1/jobs/{id}/result?format=json|txt|srt|vtt -> the transcript (409 while not done)
//! GET    /v1/jobs/{id}/segments?from=N -> PartialTranscript: the segments so far (from the N-th)
//! DELETE /v1/jobs/{id}               -> cancels a queued or running job and forgets it
//! ```
//! Errors are `ApiError` bodies with a stable `code` the clients match on.

use serde::{Deserialize, Serialize};

/// Per-job options, sent as query parameters of `POST /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    /// `auto` (or absent) to detect, or a language code whisper knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Whisper's own "translate to English" task.
    #[serde(default)]
    pub translate: bool,
    /// Model id from `/v1/models`; the daemon's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// What the decoder found in the uploaded file (no file name: names can be content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaSummary {
    pub container: String,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    pub id: String,
    pub state: JobState,
    /// 0.0 ..= 1.0, share of the audio processed.
    pub progress: f32,
    /// Jobs ahead of this one while it is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Unix seconds.
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// While running: the recording is transcribed up to here (seconds of audio; silence the
    /// VAD skipped counts as done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_secs: Option<f64>,
    /// While running: seconds left, from the engine's recent speed on this job (wall time per
    /// second of recording over its last batches) and the audio still to go. Absent until the
    /// first batch is transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// `GET /v1/jobs/{id}/segments?from=N`: what a job has transcribed so far, so a person can
/// read the first minutes of a long recording while the rest is transcribed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartialTranscript {
    pub state: JobState,
    /// Segments `from..` of those transcribed so far (ids are their index in the transcript).
    pub segments: Vec<crate::Segment>,
    /// How many segments exist so far (the next `from`).
    pub total: u32,
    /// Transcribed up to here (seconds of the recording).
    pub position_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
}

/// An error as the API reports it: `code` is stable and machine-readable
/// (`too_large`, `unsupported_format`, `corrupt`, `no_speech`, `busy`, `not_found`, ...),
/// `message` is for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// The code an engine answers while it stops (SIGTERM: `systemctl stop|restart`, an update):
/// for a job it dropped (state `failed` with this error), a submission or request it refused
/// (HTTP 503), and its health. The work was not at fault: a client submits it again once the
/// engine is back, without counting it as a try. A crash never produces it (only the
/// engine's SIGTERM handler does), so a job that crashes the engine still uses up its tries.
pub const ENGINE_STOPPING: &str = "engine_stopping";

impl ApiError {
    /// The engine is stopping (see [`ENGINE_STOPPING`]).
    pub fn engine_stopping() -> Self {
        Self::new(
            ENGINE_STOPPING,
            "the engine is stopping (restart, update or shutdown); submit the work again once it is back",
        )
    }

    pub fn is_engine_stopping(&self) -> bool {
        self.code == ENGINE_STOPPING
    }

    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    pub kind: String,
    pub languages: Vec<String>,
    pub precision: String,
    pub size_bytes: u64,
    pub loaded: bool,
    pub default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub models_loaded: Vec<String>,
    pub jobs_running: u32,
    pub jobs_queued: u32,
}
