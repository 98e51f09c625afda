//! Where a check reads the repository: online over HTTPS with mutual TLS, or a copy on a USB
//! stick (`valisectl update apply DIR`). Both go through the same `valise_tuf::Updater` and
//! the same target checks; only the transport differs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use valise_tuf::fetch::http::HttpFetch;
use valise_tuf::fetch::{DirFetch, Fetch, FetchError};

/// Which repository a check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configured repository (or the one installed with the identity).
    Repository,
    /// A copy of the repository in a directory (`DIR/metadata`, `DIR/targets`).
    Dir(PathBuf),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Repository => "repository".into(),
            Origin::Dir(d) => format!("dir:{}", d.display()),
        }
    }
}

#[derive(Debug)]
pub enum Source {
    Http(Box<HttpFetch>),
    Dir(DirFetch),
}

impl Source {
    /// A target into `part`: over HTTP resumed from what `part` holds (Range), from a
    /// directory read whole. The caller checks length and hashes.
    pub fn target_to(&self, path: &str, length: u64, part: &Path) -> Result<Vec<u8>, FetchError> {
        match self {
            Source::Http(h) => h.target_resumable(path, length, part),
            Source::Dir(d) => d.target(path, length),
        }
    }
}

/// A `Fetch` over a shared source, so the updater and the target downloads use one client.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<Source>);

impl Fetch for Shared {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        match &*self.0 {
            Source::Http(h) => h.metadata(name, max_len),
            Source::Dir(d) => d.metadata(name, max_len),
        }
    }
    fn target(&self, path: &str, length: u64) -> Result<Vec<u8>, FetchError> {
        match &*self.0 {
            Source::Http(h) => h.target(path, length),
            Source::Dir(d) => d.target(path, length),
        }
    }
}
