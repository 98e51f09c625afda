//! The one error type of valise-health.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a spool record of {len} bytes is over the limit of {max}")]
    RecordTooLarge { len: usize, max: usize },
    #[error("{path}: the spool is in use by another process")]
    Locked { path: PathBuf },
    #[error("spool configuration: {0}")]
    Config(&'static str),
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("box identity: {0}")]
    Identity(#[from] valise_pki::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
