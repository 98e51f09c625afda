//! Files that must survive a power cut: write to a temporary name, fsync, rename, fsync the
//! directory. Secrets are created with mode 0600 from the start (never widened, even briefly).
//!
//! [`write_atomic`] is the workspace's one atomic replace: valise-tuf's metadata store and time
//! floor, valise-update's journal and history and `valisectl repo` write through it too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Result, io};

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Replaces `path` with `bytes` so that a power cut leaves the old file or the new one, the
/// new one having exactly `mode` (whatever the umask): `.<name>.tmp` beside it (a leftover
/// replaced), written, fsynced, renamed over `path`, then the directory fsynced. The
/// temporary file is removed again when a step fails.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    if let Err(e) = create_synced(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// Creates `path` (replacing a leftover), writes and fsyncs it, with `mode`.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    create_synced(path, bytes, mode).map_err(io(path))
}

fn create_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have narrowed the mode; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

pub(crate) fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io(path))
}

/// Creates `dir` (and parents) if missing and sets its mode.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(io(dir))
}
