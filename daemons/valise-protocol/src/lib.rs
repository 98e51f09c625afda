//! Data-only formats shared by the engines and their clients (portal, `valisectl`).
//!
//! No I/O lives here: the types that travel over the engines' Unix-socket HTTP/JSON APIs, and
//! the pure functions that render a transcript as txt, srt, vtt or json. Keeping them in one
//! data crate means the daemon, the CLI and the portal cannot disagree on a field name.

pub mod api;
pub mod transcript;
pub mod translate;

pub use api::{
    ApiError, ENGINE_STOPPING, Health, JobOptions, JobState, JobStatus, MediaSummary, ModelInfo,
    PartialTranscript,
};
pub use transcript::{Doubt, Format, Segment, Task, Transcript};
