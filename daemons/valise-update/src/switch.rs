//! Switching `current` (DESIGN.md §5.2): `symlink(slots/<name>, current.new)`,
//! `rename(current.new, current)`, fsync of the store directory. A reader sees the old link or
//! the new one, never none; after a power cut the link is the old one or the new one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::killpoint;
use crate::stage::{COMPLETE, SLOTS, fsync_dir};

pub const CURRENT: &str = "current";

/// The slot name `current` points to (`slots/<name>`).
pub fn current_slot(root: &Path) -> io::Result<String> {
    let target = fs::read_link(root.join(CURRENT))?;
    let mut parts = target.components();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(name), None) if s.as_os_str() == SLOTS => {
            Ok(name.as_os_str().to_string_lossy().into_owned())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}/current -> {}: not slots/<name>",
                root.display(),
                target.display()
            ),
        )),
    }
}

pub fn slot_path(root: &Path, name: &str) -> PathBuf {
    root.join(SLOTS).join(name)
}

/// Points `current` at `slots/<name>` atomically. `require_complete`: refuse a slot without
/// `.complete` (every forward switch; a rollback goes back to what was current before, which
/// may be a slot installed by hand).
pub fn switch_to(root: &Path, name: &str, require_complete: bool) -> io::Result<()> {
    let slot = slot_path(root, name);
    if !slot.is_dir() || (require_complete && !slot.join(COMPLETE).exists()) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a complete slot", slot.display()),
        ));
    }
    let new = root.join("current.new");
    match fs::remove_file(&new) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(Path::new(SLOTS).join(name), &new)?;
    killpoint!("switch.after_symlink_new");
    fs::rename(&new, root.join(CURRENT))?;
    fsync_dir(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_replaces_the_link_and_refuses_incomplete_slots() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        for s in ["a", "b", "c"] {
            fs::create_dir_all(root.join("slots").join(s)).expect("mkdir");
        }
        fs::write(root.join("slots/b/.complete"), b"").expect("complete");
        std::os::unix::fs::symlink("slots/a", root.join("current")).expect("link");
        assert_eq!(current_slot(root).expect("current"), "a");
        assert!(switch_to(root, "c", true).is_err(), "c is not complete");
        assert!(switch_to(root, "nope", false).is_err());
        assert_eq!(current_slot(root).expect("unchanged"), "a");
        switch_to(root, "b", true).expect("switch");
        assert_eq!(current_slot(root).expect("current"), "b");
        assert!(!root.join("current.new").exists());
        // A leftover current.new (killed between symlink and rename) does not block.
        std::os::unix::fs::symlink("slots/b", root.join("current.new")).expect("stale");
        switch_to(root, "a", false).expect("back");
        assert_eq!(current_slot(root).expect("current"), "a");
        assert_eq!(
            fs::canonicalize(root.join("current")).expect("canon"),
            fs::canonicalize(root.join("slots/a")).expect("canon")
        );
    }
}
