//! Pruning old slots (DESIGN.md §5.2): the `keep` newest slots the updater made are kept,
//! and always `current` (what the engines run once restarted) and the slots named in
//! `protect` (the previous one, a rollback target). Slots not made by the updater (their name
//! does not start with the `yyyymmddThhmmssZ-` stamp, such as a factory or dev slot) are a
//! person's and are left alone.

use std::fs;
use std::io;
use std::path::Path;

use crate::killpoint;
use crate::stage::{SLOTS, fsync_dir};
use crate::switch::current_slot;

/// Whether `name` is a slot name the updater gives (`20261204T101500Z-pten-3`).
pub fn is_updater_slot(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 17
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
}

/// Removes the updater's slots beyond the `keep` newest; returns the names removed.
pub fn prune(root: &Path, keep: usize, protect: &[&str]) -> io::Result<Vec<String>> {
    let current = current_slot(root)?;
    let slots = root.join(SLOTS);
    let mut names: Vec<String> = fs::read_dir(&slots)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_updater_slot(n))
        .collect();
    names.sort();
    names.reverse();
    let mut removed = Vec::new();
    for name in names.into_iter().skip(keep) {
        if name == current || protect.contains(&name.as_str()) {
            continue;
        }
        // Remove `.complete` first and sync: a slot half-removed by a power cut is then
        // never a switch target, and the next prune finishes it.
        let dir = slots.join(&name);
        match fs::remove_file(dir.join(crate::stage::COMPLETE)) {
            Ok(()) => fsync_dir(&dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if removed.is_empty() {
            killpoint!("prune.mid");
        }
        fs::remove_dir_all(&dir)?;
        removed.push(name);
    }
    if !removed.is_empty() {
        fsync_dir(&slots)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_current_protected_and_foreign_slots() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        let names = [
            "dev",
            "20261201T000000Z-pten-1",
            "20261202T000000Z-pten-2",
            "20261203T000000Z-pten-3",
            "20261204T000000Z-pten-4",
            "20261205T000000Z-pten-5",
        ];
        for n in names {
            fs::create_dir_all(root.join("slots").join(n).join("m")).expect("mkdir");
            fs::write(root.join("slots").join(n).join("m/f"), b"x").expect("file");
        }
        // current is an old one (a rollback happened), pten-2 is protected.
        std::os::unix::fs::symlink("slots/20261201T000000Z-pten-1", root.join("current"))
            .expect("link");
        let removed = prune(root, 2, &["20261202T000000Z-pten-2"]).expect("prune");
        assert_eq!(removed, ["20261203T000000Z-pten-3"]);
        let mut left: Vec<String> = fs::read_dir(root.join("slots"))
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20261201T000000Z-pten-1",
                "20261202T000000Z-pten-2",
                "20261204T000000Z-pten-4",
                "20261205T000000Z-pten-5",
                "dev"
            ]
        );
        assert!(!is_updater_slot("dev") && !is_updater_slot("20261201T000000Z"));
    }
}
