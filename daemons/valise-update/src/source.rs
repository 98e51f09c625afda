//! Where a check reads the repository: online over HTTPS with mutual TLS, or a copy on a USB
//! stick (`valisectl update apply DIR`). Both go through the same `valise_tuf::Updater`
//! (refresh, target search, streamed download with hash checks and resume); only the
//! transport differs.

use std::io;
use std::path::PathBuf;

use valise_tuf::fetch::http::HttpFetch;
use valise_tuf::fetch::{DirFetch, Fetch, FetchError, Sink};

use crate::killpoint;

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

/// Passes chunks on; the power-cut suite's `download.mid_file` point is after the first.
struct Watched<'a> {
    inner: &'a mut dyn Sink,
    chunks: u64,
}

impl Sink for Watched<'_> {
    fn restart(&mut self) -> io::Result<()> {
        self.inner.restart()
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.inner.write(chunk)?;
        self.chunks += 1;
        if self.chunks == 1 {
            killpoint!("download.mid_file");
        }
        Ok(())
    }
}

impl Fetch for Source {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        match self {
            Source::Http(h) => h.metadata(name, max_len),
            Source::Dir(d) => d.metadata(name, max_len),
        }
    }
    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        let mut w = Watched {
            inner: sink,
            chunks: 0,
        };
        match self {
            Source::Http(h) => h.target_into(path, length, from, &mut w),
            Source::Dir(d) => d.target_into(path, length, from, &mut w),
        }
    }
}
