use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid catalog {path}: {message}")]
    Catalog { path: PathBuf, message: String },
    #[error(
        "no model store found (looked in: {looked}); run the set-up command (scripts/setup) or set VALISE_MODEL_STORE"
    )]
    NoStore { looked: String },
    #[error("model {id:?} is not installed (installed: {installed})")]
    UnknownModel { id: String, installed: String },
    #[error("model file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}
