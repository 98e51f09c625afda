//! Errors returned while opening or decoding media.

use std::io;

/// Why a file could not be (fully) decoded.
///
/// Every variant carries enough context for a log line or an operator; the HTTP API should use
/// [`MediaError::code`], which is a stable machine-readable string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The file is larger than [`Limits::max_file_bytes`](crate::Limits::max_file_bytes).
    #[error("file is {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// Size of the file (or bytes read so far when the size is not known up front).
        size: u64,
        /// The configured limit.
        limit: u64,
    },

    /// The audio is longer than [`Limits::max_duration_secs`](crate::Limits::max_duration_secs).
    #[error(
        "audio is {}{duration_secs:.1} s long, the limit is {limit_secs} s",
        if *.declared { "declared as " } else { "at least " }
    )]
    TooLong {
        /// Declared duration (from the container header) or the duration decoded so far.
        duration_secs: f64,
        /// The configured limit.
        limit_secs: u64,
        /// `true` when the container header declared the duration (checked before decoding),
        /// `false` when the limit was hit while decoding.
        declared: bool,
    },

    /// The container format was not recognised (wrong magic bytes, text, archives, ...).
    #[error("unsupported or unrecognised file format: {detail}")]
    UnsupportedFormat {
        /// What the demuxer said.
        detail: String,
    },

    /// The container holds audio, but in a codec this build cannot decode.
    #[error("unsupported audio codec {codec}: {detail}")]
    UnsupportedCodec {
        /// Codec name or identifier as reported by the container.
        codec: String,
        /// What the decoder said.
        detail: String,
    },

    /// The container holds no audio track at all (e.g. a video-only MP4).
    #[error("the {container} file contains no audio track")]
    NoAudioTrack {
        /// Short name of the container format.
        container: String,
    },

    /// The stream declares (or decodes to) a channel count or sample rate outside the accepted
    /// range.
    #[error("{what} of {value} is not supported (accepted: {min}..={max})")]
    UnsupportedAudioParams {
        /// `"channel count"` or `"sample rate"`.
        what: &'static str,
        /// The declared value.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value (the configured limit).
        max: u64,
    },

    /// The file is malformed: invalid header fields, undecodable data, a decoder panic.
    #[error("corrupt media: {detail}")]
    Corrupt {
        /// What went wrong.
        detail: String,
    },

    /// The file ends before the audio its header declares. For streaming callers this is
    /// reported after all decodable samples have been returned.
    #[error("truncated media: {detail}")]
    Truncated {
        /// What was declared and what was found.
        detail: String,
    },

    /// The file is zero bytes long or contains no audio samples.
    #[error("no audio: {detail}")]
    Empty {
        /// Why the file counts as empty.
        detail: String,
    },

    /// Reading the file failed for a reason unrelated to its content.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl MediaError {
    /// A stable, machine-readable code for the HTTP API and metrics.
    ///
    /// The set of codes is: `too_large`, `too_long`, `unsupported_format`,
    /// `unsupported_codec`, `no_audio_track`, `unsupported_audio_params`, `corrupt`,
    /// `truncated`, `empty`, `io`.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::TooLarge { .. } => "too_large",
            MediaError::TooLong { .. } => "too_long",
            MediaError::UnsupportedFormat { .. } => "unsupported_format",
            MediaError::UnsupportedCodec { .. } => "unsupported_codec",
            MediaError::NoAudioTrack { .. } => "no_audio_track",
            MediaError::UnsupportedAudioParams { .. } => "unsupported_audio_params",
            MediaError::Corrupt { .. } => "corrupt",
            MediaError::Truncated { .. } => "truncated",
            MediaError::Empty { .. } => "empty",
            MediaError::Io { .. } => "io",
        }
    }

    /// `true` when the error is caused by the uploaded content (the client's fault, HTTP 4xx);
    /// `false` for local I/O failures (HTTP 5xx).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, MediaError::Io { .. })
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        MediaError::Corrupt {
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let e = MediaError::TooLong {
            duration_secs: 12.0,
            limit_secs: 10,
            declared: true,
        };
        assert_eq!(e.code(), "too_long");
        assert_eq!(
            e.to_string(),
            "audio is declared as 12.0 s long, the limit is 10 s"
        );
        let e = MediaError::TooLong {
            duration_secs: 10.5,
            limit_secs: 10,
            declared: false,
        };
        assert_eq!(
            e.to_string(),
            "audio is at least 10.5 s long, the limit is 10 s"
        );
        assert_eq!(MediaError::corrupt("x").code(), "corrupt");
        let io = MediaError::Io {
            context: "reading",
            source: io::Error::other("boom"),
        };
        assert_eq!(io.code(), "io");
        assert!(!io.is_input_error());
        assert!(MediaError::corrupt("x").is_input_error());
    }
}
