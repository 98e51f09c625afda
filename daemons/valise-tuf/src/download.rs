//! Target download (spec 1.0.x §5.7) and the target cache.
//!
//! A target is streamed into `<dest>.part` beside its destination, at most its listed
//! `length` bytes (the fetcher stops at `length + 1`), and every listed hash of a known
//! algorithm (sha256, sha512) is computed as the bytes arrive; a listing with no known
//! algorithm is refused before any request. When length and all known hashes match, the
//! part file is synced and renamed onto `dest`, and the directory synced: a power cut leaves
//! the old file or the new one. A `.part` left by an interrupted download (too slow, I/O
//! error, connection cut short) is kept and resumed at the next call: its bytes are hashed
//! again first, then the fetcher is asked for the rest (HTTP `Range`); if the whole then does
//! not match, the download starts over from byte 0 once. A download refused for what it
//! carried (too long, wrong hash, refused name) removes the `.part`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fetch::{Fetch, FetchError, Sink};
use crate::hashes::{Digests, no_known_hash};
use crate::limits::MAX_TARGET_SIZE;
use crate::schema::Hashes;
use crate::updater::{TargetFile, UpdateError};

/// Chunk size for reading files back.
const CHUNK: usize = 64 * 1024;

/// The `.part` file of one download, hashed as it grows.
struct PartFile {
    path: PathBuf,
    file: File,
    len: u64,
    digests: Digests,
    hashes: Hashes,
}

impl PartFile {
    /// Opens (or creates) `path` and hashes what it already holds; a file longer than
    /// `length` is emptied.
    fn open(path: PathBuf, target: &TargetFile) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut p = PartFile {
            path,
            file,
            len: 0,
            digests: Digests::new(&target.hashes),
            hashes: target.hashes.clone(),
        };
        let mut buf = vec![0u8; CHUNK];
        let mut reader = (&p.file).take(target.length.saturating_add(1));
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            p.digests.update(&buf[..n]);
            p.len += n as u64;
        }
        if p.len > target.length {
            p.restart()?;
        }
        Ok(p)
    }

    fn remove(self) -> io::Result<()> {
        drop(self.file);
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Sync, rename onto `dest`, sync the directory.
    fn commit(self, dest: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, dest)?;
        File::open(parent(dest))?.sync_all()
    }
}

impl Sink for PartFile {
    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.digests = Digests::new(&self.hashes);
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)?;
        self.digests.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `<dest>.part`, beside `dest`.
fn part_path(dest: &Path) -> io::Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", dest.display()),
        )
    })?;
    let mut part = name.to_owned();
    part.push(".part");
    Ok(parent(dest).join(part))
}

/// True when `path` holds exactly the target: its length and every known hash (at least
/// one known). A missing or unreadable file is not cached.
pub fn cached(target: &TargetFile, path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    if !file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() == target.length)
    {
        return false;
    }
    let mut digests = Digests::new(&target.hashes);
    let mut reader = file.take(target.length.saturating_add(1));
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                digests.update(&buf[..n]);
                len += n as u64;
            }
            Err(_) => return false,
        }
    }
    len == target.length && digests.check(&target.name).is_ok()
}

/// Spec 5.7: `target` into `dest` through `fetch` (see the module documentation).
pub fn download<F: Fetch + ?Sized>(
    fetch: &F,
    target: &TargetFile,
    dest: &Path,
) -> Result<(), UpdateError> {
    let what = target.name.as_str();
    if Digests::new(&target.hashes).is_empty() {
        return Err(no_known_hash(what).into());
    }
    if target.length > MAX_TARGET_SIZE {
        return Err(Error::TooLarge {
            role: what.to_owned(),
            got: target.length,
            limit: MAX_TARGET_SIZE,
        }
        .into());
    }
    let mut part = PartFile::open(part_path(dest)?, target)?;
    let mut resumed = part.len > 0;
    loop {
        if part.len < target.length
            && let Err(e) = fetch.target_into(&target.url_path, target.length, part.len, &mut part)
        {
            // Interrupted: keep the part for the next call. Refused for what it carried: drop it.
            if !matches!(e, FetchError::TooSlow { .. } | FetchError::Io { .. }) {
                part.remove()?;
            }
            return Err(e.into());
        }
        if part.len < target.length {
            // Cut short without an error (a body without Content-Length): resume next time.
            return Err(Error::Length {
                role: what.to_owned(),
                got: part.len,
                listed: target.length,
            }
            .into());
        }
        match part.digests.check(what) {
            Ok(()) => return Ok(part.commit(dest)?),
            Err(_) if resumed => {
                // The kept prefix was not this target's: once more from byte 0.
                part.restart()?;
                resumed = false;
            }
            Err(e) => {
                part.remove()?;
                return Err(e.into());
            }
        }
    }
}
