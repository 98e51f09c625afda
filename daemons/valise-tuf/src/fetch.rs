//! Where metadata and targets come from: the [`Fetch`] trait, and [`DirFetch`] for a copy of
//! the repository on a USB stick (`valisectl update apply DIR`), and [`http::HttpFetch`] for the
//! repository over HTTPS with mutual TLS. A fetcher
//! caps what it reads (at most `limit + 1` bytes, so "too long" is known without reading an
//! endless file); the trusted set then checks lengths, hashes and signatures.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub mod http;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The file does not exist (for `N.root.json`: the end of the root chain).
    #[error("{0}: not found")]
    NotFound(String),
    /// Longer than allowed.
    #[error("{name}: longer than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    /// A name that would leave the repository, or a file that is not a regular file inside it.
    #[error("{name}: refused: {why}")]
    Refused { name: String, why: String },
    /// Too slow: no byte within the idle timeout, fewer bytes than the minimum throughput in a
    /// window, or past the overall time limit (slow-retrieval defence).
    #[error("{name}: too slow: {why}")]
    TooSlow { name: String, why: String },
    /// Any other I/O error.
    #[error("{name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Where a streamed target goes (the updater's `.part` file, hashed as it grows).
pub trait Sink {
    /// The source could not resume where asked: what the sink holds is dropped and the
    /// bytes start again at 0.
    fn restart(&mut self) -> io::Result<()>;
    /// The next bytes.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
}

/// A sink in memory.
impl Sink for Vec<u8> {
    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// A source of repository files. Names are URL paths relative to the metadata or targets
/// base, each segment percent-encoded ([`crate::names`]). Requests are made one after the
/// other (the conformance suite's server answers one at a time).
pub trait Fetch {
    /// The metadata file `name` (e.g. `3.root.json`, `timestamp.json`), at most `max_len` bytes.
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError>;

    /// Streams the target at `path` into `sink`, resuming at byte `from` (the sink already
    /// holds bytes `0..from`), at most `length` bytes in all: `TooLarge` as soon as more
    /// arrive. A source that cannot start at `from` calls `sink.restart()` and sends from 0.
    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError>;

    /// The whole target at `path` in memory, at most `length` bytes.
    fn target(&self, path: &str, length: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        self.target_into(path, length, 0, &mut out)?;
        Ok(out)
    }
}

/// Chunk size of file copies.
const CHUNK: usize = 64 * 1024;

/// A repository copied into a directory: `DIR/metadata/<name>`, `DIR/targets/<path>`.
#[derive(Debug, Clone)]
pub struct DirFetch {
    metadata: PathBuf,
    targets: PathBuf,
}

impl DirFetch {
    /// The repository copy in `dir` (with `metadata/` and `targets/` under it).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        DirFetch {
            metadata: dir.join("metadata"),
            targets: dir.join("targets"),
        }
    }

    /// Opens `base/<name>`: `name` a URL path decoded per segment, symlinks resolved and
    /// kept inside `base`, a regular file only.
    fn open(base: &Path, name: &str) -> Result<File, FetchError> {
        let refused = |why: &str| FetchError::Refused {
            name: name.to_owned(),
            why: why.to_owned(),
        };
        let io_err = |source: io::Error| io_error(name, source);
        // `name` is a URL path (segments percent-encoded by `names`): decoded per segment as
        // a web server would, each decoded segment one plain file name.
        let mut rel = PathBuf::new();
        for seg in name.split('/') {
            let plain = crate::names::unquote(seg).filter(|d| {
                !d.is_empty() && d != "." && d != ".." && !d.contains(['/', '\\', '\0'])
            });
            match plain {
                Some(d) => rel.push(d),
                None => return Err(refused("not a plain relative path")),
            }
        }
        // Resolve symlinks (the stick's contents are the attacker's) and stay inside `base`.
        let base = base.canonicalize().map_err(io_err)?;
        let real = base.join(rel).canonicalize().map_err(io_err)?;
        if !real.starts_with(&base) {
            return Err(refused("leaves the repository directory"));
        }
        let file = File::open(&real).map_err(io_err)?;
        if !file.metadata().map_err(io_err)?.is_file() {
            return Err(refused("not a regular file"));
        }
        Ok(file)
    }
}

fn io_error(name: &str, source: io::Error) -> FetchError {
    if source.kind() == io::ErrorKind::NotFound {
        FetchError::NotFound(name.to_owned())
    } else {
        FetchError::Io {
            name: name.to_owned(),
            source,
        }
    }
}

impl Fetch for DirFetch {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        Self::open(&self.metadata, name)?
            .take(max_len.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| io_error(name, e))?;
        if out.len() as u64 > max_len {
            return Err(FetchError::TooLarge {
                name: name.to_owned(),
                limit: max_len,
            });
        }
        Ok(out)
    }

    /// A file resumes by seeking (a file shorter than `from` starts over).
    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        use std::io::{Seek, SeekFrom};
        let io_err = |e| io_error(path, e);
        let mut file = Self::open(&self.targets, path)?;
        let mut at = from;
        if from > file.metadata().map_err(io_err)?.len() {
            sink.restart().map_err(io_err)?;
            at = 0;
        }
        file.seek(SeekFrom::Start(at)).map_err(io_err)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                return Ok(());
            }
            at += n as u64;
            if at > length {
                return Err(FetchError::TooLarge {
                    name: path.to_owned(),
                    limit: length,
                });
            }
            sink.write(&buf[..n]).map_err(io_err)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn repo() -> (tempfile::TempDir, DirFetch) {
        let d = tempfile::tempdir().expect("tempdir");
        let r = d.path().join("repo");
        fs::create_dir_all(r.join("metadata")).expect("mkdir");
        fs::create_dir_all(r.join("targets/dir")).expect("mkdir");
        fs::write(r.join("metadata/1.root.json"), b"root!").expect("write");
        fs::write(r.join("targets/dir/a.txt"), b"hello").expect("write");
        fs::write(d.path().join("secret"), b"outside").expect("write");
        let f = DirFetch::new(&r);
        (d, f)
    }

    #[test]
    fn reads_files_within_limits() {
        let (_d, f) = repo();
        assert_eq!(f.metadata("1.root.json", 5).expect("exact"), b"root!");
        assert_eq!(f.target("dir/a.txt", 5).expect("exact"), b"hello");
        // Resumed by seeking; a start past the end starts over.
        let mut v = b"he".to_vec();
        f.target_into("dir/a.txt", 5, 2, &mut v).expect("resume");
        assert_eq!(v, b"hello");
        let mut v = b"0123456".to_vec();
        f.target_into("dir/a.txt", 5, 7, &mut v).expect("restart");
        assert_eq!(v, b"hello");
        let mut v = b"hell".to_vec();
        assert!(matches!(
            f.target_into("dir/a.txt", 4, 4, &mut v),
            Err(FetchError::TooLarge { limit: 4, .. })
        ));
        // URL paths are decoded per segment, as a web server does.
        assert_eq!(f.target("%64ir/a%2Etxt", 5).expect("decoded"), b"hello");
        assert!(matches!(
            f.metadata("1.root.json", 4),
            Err(FetchError::TooLarge { limit: 4, .. })
        ));
        assert!(matches!(
            f.target("dir/a.txt", 4),
            Err(FetchError::TooLarge { .. })
        ));
        assert!(matches!(
            f.metadata("2.root.json", 100),
            Err(FetchError::NotFound(_))
        ));
    }

    #[test]
    fn endless_file_read_only_to_limit_plus_one() {
        // /dev/zero through a symlink would be refused as leaving the directory; a FIFO
        // is not a regular file; so check the cap on a large sparse file instead.
        let (d, f) = repo();
        let big = File::create(d.path().join("repo/metadata/timestamp.json")).expect("create");
        big.set_len(1 << 40).expect("sparse 1 TiB");
        assert!(matches!(
            f.metadata("timestamp.json", 16_384),
            Err(FetchError::TooLarge { limit: 16_384, .. })
        ));
    }

    #[test]
    fn paths_escaping_the_directory_refused() {
        let (_d, f) = repo();
        for bad in [
            "../secret",
            "../../secret",
            "/etc/passwd",
            "dir/../../secret",
            "./1.root.json",
            "",
            "..\\secret",
            "%2E%2E/secret",
            "dir%2F..%2F..%2Fsecret",
            "a%00",
        ] {
            assert!(
                matches!(f.metadata(bad, 100), Err(FetchError::Refused { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            f.target("dir/../../secret", 100),
            Err(FetchError::Refused { .. })
        ));
        assert!(matches!(
            f.target("dir", 100),
            Err(FetchError::Refused { .. })
        ));
    }

    #[test]
    fn symlinks_out_refused_in_kept() {
        let (d, f) = repo();
        let m = d.path().join("repo/metadata");
        std::os::unix::fs::symlink(d.path().join("secret"), m.join("timestamp.json"))
            .expect("symlink");
        assert!(matches!(
            f.metadata("timestamp.json", 100),
            Err(FetchError::Refused { .. })
        ));
        // Twin: a symlink that stays inside the directory is followed.
        std::os::unix::fs::symlink(m.join("1.root.json"), m.join("root.json")).expect("symlink");
        assert_eq!(f.metadata("root.json", 100).expect("inside"), b"root!");
    }
}
