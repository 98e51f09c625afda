//! The data directory on disk, and who may add to it.
//!
//! ```text
//!  <data>/                 0700
//!    portal.db             0600, created before SQLite opens it (-wal and -shm take its mode)
//!    incoming/<id>         an upload while it streams in; incoming/<id>.result an engine's
//!                          result before it is placed; emptied at every start
//!    jobs/<id>/            0700: input, result, edits.json (0600)
//! ```
//! An upload moves from `incoming/` into `jobs/<id>/` in the same step, under the database
//! lock, as its job's row is written; a result moves into place only if its job still
//! exists. A crash or a `kill -9` mid-upload therefore leaves only `incoming/` files and
//! job directories without a row, and [`prepare`] and [`remove_orphans`] remove both at the
//! next start. Everything is created owner-only whatever the umask of whoever started the
//! portal (`scripts/run` from a root shell has 022).
//!
//! Upload reservations ([`Uploads`]): the per-user limit of active jobs counts the uploads
//! still streaming in, checked and reserved in one step under one lock, so thirty uploads
//! started together cannot all pass a limit of twenty. The per-user disk quota is checked
//! before the body is read when its length is declared, bounds the stream otherwise, and is
//! checked exactly when the job's row is written.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

use crate::error::{PortalError, Result};
use crate::jobs::{self, Files};

/// Creates `path` (and its parents) owner-only; an existing directory is made owner-only.
pub fn private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    fs::set_permissions(path, Permissions::from_mode(0o700))
}

/// Creates (or truncates) `path` for writing, owner-only.
pub fn private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its old mode through `open`: set it.
    f.set_permissions(Permissions::from_mode(0o600))?;
    Ok(f)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// At start-up, before anything is served: the data directory, `jobs/` and an empty
/// `incoming/` exist owner-only, and what an older portal (or a looser umask) left readable
/// is made owner-only.
pub fn prepare(data_dir: &Path, files: &Files) -> Result<()> {
    private_dir(data_dir)?;
    private_dir(files.root())?;
    match fs::remove_dir_all(files.incoming()) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    private_dir(files.incoming())?;
    restrict_tree(data_dir);
    Ok(())
}

/// Directories 0700, files 0600, below `dir` (links are left alone).
fn restrict_tree(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let path = e.path();
        if t.is_dir() {
            let _ = fs::set_permissions(&path, Permissions::from_mode(0o700));
            restrict_tree(&path);
        } else if t.is_file() {
            let _ = fs::set_permissions(&path, Permissions::from_mode(0o600));
        }
    }
}

/// At start-up: removes every entry of `jobs/` that is not the directory of a job with a
/// row (an upload whose row was never written, a result placed after a crash), and the
/// temporary files an interrupted write left inside job directories. Returns how many
/// directories went.
pub fn remove_orphans(c: &Connection, files: &Files) -> Result<usize> {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(files.root()) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let known = jobs::valid_id(&name) && is_dir && jobs::get_any(c, &name)?.is_some();
        if known {
            if let Ok(inner) = fs::read_dir(&path) {
                for f in inner.flatten() {
                    if f.file_name().to_string_lossy().ends_with(".tmp") {
                        remove_file(&f.path())?;
                    }
                }
            }
            continue;
        }
        if is_dir {
            fs::remove_dir_all(&path)?;
        } else {
            remove_file(&path)?;
        }
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, "removed job files without a job");
    }
    Ok(removed)
}

impl Files {
    /// Where an upload streams before its job exists.
    pub fn incoming_upload(&self, id: &str) -> Result<PathBuf> {
        jobs::valid_id(id)
            .then(|| self.incoming().join(id))
            .ok_or(PortalError::NotFound)
    }

    /// Where an engine's result is written before it is placed.
    pub fn incoming_result(&self, id: &str) -> Result<PathBuf> {
        Ok(self.incoming_upload(id)?.with_extension("result"))
    }

    /// Moves a finished upload into its job's directory (call with the database lock held,
    /// in the step that writes the job's row).
    pub fn adopt_input(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        private_dir(&dir)?;
        fs::rename(self.incoming_upload(id)?, self.input(id)?)?;
        sync_dir(&dir)?;
        sync_dir(self.root())?;
        Ok(())
    }

    /// Writes `bytes` as the result-to-be of job `id` in `incoming/` (fsynced).
    pub fn write_incoming_result(&self, id: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let path = self.incoming_result(id)?;
        let mut f = private_file(&path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    }

    /// Places the result written by [`Files::write_incoming_result`] when `keep` (the job
    /// still exists: call with the database lock held), removes it otherwise.
    pub fn place_result(&self, id: &str, keep: bool) -> Result<()> {
        let tmp = self.incoming_result(id)?;
        if !keep {
            remove_file(&tmp)?;
            return Ok(());
        }
        let dir = self.dir(id)?;
        private_dir(&dir)?;
        fs::rename(&tmp, self.result(id)?)?;
        sync_dir(&dir)?;
        Ok(())
    }
}

/// Uploads in flight per user, for the job limit.
#[derive(Debug, Default)]
pub struct Uploads {
    in_flight: Mutex<HashMap<i64, u32>>,
}

/// What one upload may take: released (dropped) once its job's row is written or it is
/// refused.
#[derive(Debug)]
pub struct Reservation {
    uploads: Arc<Uploads>,
    user_id: i64,
    /// Bytes the upload may still add under the user's quota.
    pub room: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut m = self
            .uploads
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.user_id);
            }
        }
    }
}

/// Bytes of uploads a user keeps on the box (what the quota counts).
pub fn stored_bytes(c: &Connection, user_id: i64) -> Result<u64> {
    let n: i64 = c.query_row(
        "SELECT coalesce(sum(input_bytes), 0) FROM jobs WHERE user_id = ?1",
        params![user_id],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

pub fn quota_exceeded(quota: u64) -> PortalError {
    PortalError::QuotaExceeded(format!(
        "your uploads would take more than your {} MiB of space on the box; delete older jobs first",
        quota >> 20
    ))
}

impl Uploads {
    /// Checks the job limit (jobs waiting or running plus uploads in flight) and the quota
    /// (`declared` bytes, when known, must fit), and reserves a place, in one step. Call
    /// with the database lock held (`Db::run`).
    pub fn reserve(
        self: &Arc<Self>,
        c: &Connection,
        user_id: i64,
        max_jobs: u32,
        quota: u64,
        declared: Option<u64>,
    ) -> Result<Reservation> {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let flying = m.get(&user_id).copied().unwrap_or(0);
        let active = jobs::active_count(c, user_id)?;
        if active + flying >= max_jobs {
            return Err(PortalError::TooManyJobs(format!(
                "you already have {} jobs waiting, running or uploading; wait for some to finish",
                active + flying
            )));
        }
        let room = quota.saturating_sub(stored_bytes(c, user_id)?);
        if room == 0 || declared.is_some_and(|d| d > room) {
            return Err(quota_exceeded(quota));
        }
        *m.entry(user_id).or_default() += 1;
        Ok(Reservation {
            uploads: self.clone(),
            user_id,
            room,
        })
    }
}

/// A saved upload in `incoming/`, not yet a job: dropped, it is removed and its
/// reservation released.
#[derive(Debug)]
pub struct Incoming {
    pub id: String,
    pub bytes: u64,
    /// The first bytes, for type sniffing.
    pub head: Vec<u8>,
    path: PathBuf,
    reservation: Option<Reservation>,
    adopted: bool,
}

impl Incoming {
    pub fn new(id: String, bytes: u64, head: Vec<u8>, path: PathBuf, r: Reservation) -> Self {
        Self {
            id,
            bytes,
            head,
            path,
            reservation: Some(r),
            adopted: false,
        }
    }

    /// The job's row is written and the file moved: nothing to clean up any more.
    pub fn adopted(mut self) {
        self.adopted = true;
        self.reservation.take();
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.adopted {
            let _ = remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_dirs_are_owner_only_over_an_old_mode() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        private_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = dir.join("f");
        fs::write(&f, b"x").unwrap();
        fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        private_file(&f).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
