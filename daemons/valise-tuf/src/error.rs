//! One error type for the client. Every refusal says which rule refused.

/// Why metadata (or a step of the workflow) was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not JSON, not the schema, a float, a bad hex string, a bad date.
    #[error("malformed metadata: {0}")]
    Format(String),
    /// `_type` is not the role the step expects.
    #[error("expected {expected} metadata, got {got}")]
    WrongType { expected: String, got: String },
    /// Fewer valid signatures from distinct authorized keys than the threshold.
    #[error(
        "{role}: {valid} valid signatures from distinct authorized keys, threshold {threshold}"
    )]
    Threshold {
        role: String,
        valid: usize,
        threshold: u64,
    },
    /// A version rule: rollback, wrong root chain step, version different from the one listed.
    #[error("{role}: version {got} refused: {why}")]
    BadVersion { role: String, got: u64, why: String },
    /// Metadata expired at the reference time (freeze attack or stale repository).
    #[error("{role} expired at {expires} (reference time {reference})")]
    Expired {
        role: String,
        expires: String,
        reference: String,
    },
    /// Bytes longer than the listed length or the size limit.
    #[error("{role}: {got} bytes, more than the {limit} allowed")]
    TooLarge { role: String, got: u64, limit: u64 },
    /// Listed length differs from the bytes.
    #[error("{role}: length {got}, listed {listed}")]
    Length { role: String, got: u64, listed: u64 },
    /// A listed hash does not match, or no hash algorithm the client knows is listed.
    #[error("{role}: {why}")]
    Hash { role: String, why: String },
    /// A step called out of order (e.g. snapshot before timestamp, root after timestamp),
    /// or something a step needs is missing (a role not listed in snapshot).
    #[error("{0}")]
    Workflow(String),
}

impl Error {
    pub(crate) fn format(what: impl std::fmt::Display) -> Self {
        Error::Format(what.to_string())
    }
}
