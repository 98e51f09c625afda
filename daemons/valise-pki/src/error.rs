//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    /// Input that does not parse or does not have the expected form (a PEM file, an index, a
    /// certificate whose identity is malformed).
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    /// A well-formed request that policy refuses (a certificate for another key or another
    /// box, a CA that exists already, a serial that was never issued).
    #[error("{0}")]
    Refused(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

pub(crate) fn rc(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.into();
    move |source| Error::Certificate { what, source }
}

pub(crate) fn invalid(what: impl Into<String>, why: impl ToString) -> Error {
    Error::Invalid {
        what: what.into(),
        why: why.to_string(),
    }
}
