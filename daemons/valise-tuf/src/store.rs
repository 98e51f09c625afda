//! The box's trusted metadata on disk: one file per role under non-versioned names
//! (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, `<encoded role>.json`),
//! holding the bytes that were verified, verbatim (python-tuf and the conformance suite's
//! `test_metadata_bytes_match` expect the downloaded bytes, not a re-serialization).
//! Writes are atomic (`valise_pki::fsutil::write_atomic`: temporary file in the same directory,
//! fsync, rename, fsync of the directory), so a power cut leaves the old file or the new one.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use valise_pki::fsutil::write_atomic;

use crate::names;

/// A directory of trusted metadata.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    dir: PathBuf,
}

impl MetadataStore {
    /// The store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(MetadataStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, role: &str) -> io::Result<PathBuf> {
        let file = names::metadata_file(role)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(self.dir.join(file))
    }

    /// The stored bytes of `role`, or None when there are none.
    pub fn read(&self, role: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(role)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `role`'s file with `bytes` atomically and durably.
    pub fn write(&self, role: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.path(role)?, bytes, 0o644)
    }

    /// Removes `role`'s file (spec 5.3.11: after a rotation of timestamp or snapshot keys);
    /// absent is fine.
    pub fn remove(&self, role: &str) -> io::Result<()> {
        match fs::remove_file(self.path(role)?) {
            Ok(()) => File::open(&self.dir)?.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn bytes_kept_verbatim_under_plain_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = MetadataStore::open(tmp.path().join("md")).expect("open");
        assert_eq!(s.read("timestamp").expect("read"), None);
        let pretty = b"{\n  \"signed\" :  {}, \"signatures\": [] }\r\n";
        s.write("timestamp", pretty).expect("write");
        assert_eq!(
            s.read("timestamp").expect("read").as_deref(),
            Some(&pretty[..])
        );
        s.write("timestamp", b"{}").expect("overwrite");
        assert_eq!(
            s.read("timestamp").expect("read").as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(
            entries(s.dir()),
            ["timestamp.json"],
            "no temporary file left"
        );
        s.remove("timestamp").expect("remove");
        s.remove("timestamp").expect("absent is fine");
        assert_eq!(s.read("timestamp").expect("read"), None);
    }

    #[test]
    fn role_names_cannot_leave_the_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = MetadataStore::open(tmp.path().join("md")).expect("open");
        s.write("../evil", b"x").expect("write");
        s.write("a/b", b"y").expect("write");
        assert_eq!(entries(s.dir()), ["..%2Fevil.json", "a%2Fb.json"]);
        assert_eq!(entries(tmp.path()), ["md"]);
        assert!(s.write("", b"z").is_err());
    }
}
