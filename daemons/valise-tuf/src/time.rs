//! The reference time of a refresh on a box that may be offline for weeks or have a wrong
//! clock (`daemons/valise-update/DESIGN.md` §3, time policy): `T = max(clock, floor)`, where
//! `floor` is persisted and raised to `T` only after a **successful** refresh. A clock set
//! backwards therefore never makes expired metadata valid again (no freeze opening); a
//! clock far ahead makes the refresh fail without raising the floor, so correcting the
//! clock recovers. The floor file holds unix seconds as decimal text and is replaced
//! atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! No clock is read here: callers pass the clock's reading in (the daemon reads
//! `OffsetDateTime::now_utc()`; tests pass explicit times).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// A persisted time floor.
#[derive(Debug, Clone)]
pub struct TimeFloor {
    path: PathBuf,
    initial: OffsetDateTime,
}

/// Where the clock stands against the floor, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    /// The clock is at or after the floor: it is the reference time.
    Ok,
    /// The clock is behind the last successful check: the floor is the reference time.
    BehindFloor,
}

impl TimeFloor {
    /// The floor kept in `path`; `initial` (the image build time) when the file is absent.
    pub fn new(path: impl Into<PathBuf>, initial: OffsetDateTime) -> Self {
        TimeFloor {
            path: path.into(),
            initial,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The floor: the file's value, or the initial one when the file is absent. A file that
    /// cannot be parsed is an error (never silently a lower floor).
    pub fn read(&self) -> io::Result<OffsetDateTime> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(self.initial),
            Err(e) => return Err(e),
        };
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", self.path.display()),
            )
        };
        let secs: i64 = text.trim().parse().map_err(|e| bad(format!("{e}")))?;
        let t = OffsetDateTime::from_unix_timestamp(secs).map_err(|e| bad(format!("{e}")))?;
        Ok(t.max(self.initial))
    }

    /// The reference time of a refresh: `max(clock, floor)`, and whether the clock is behind.
    pub fn reference_time(
        &self,
        clock: OffsetDateTime,
    ) -> io::Result<(OffsetDateTime, ClockState)> {
        let floor = self.read()?;
        Ok(if clock >= floor {
            (clock, ClockState::Ok)
        } else {
            (floor, ClockState::BehindFloor)
        })
    }

    /// After a successful refresh done at reference time `t`: the floor becomes `t` if that
    /// is higher (it never goes down). Whole seconds, rounded down, so the floor is never
    /// above a time at which the metadata were checked valid.
    pub fn raise(&self, t: OffsetDateTime) -> io::Result<()> {
        let current = self.read()?;
        let secs = t.unix_timestamp();
        if secs <= current.unix_timestamp() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        crate::store::write_atomic(&self.path, format!("{secs}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).expect("valid")
    }

    const BUILD: i64 = 1_790_000_000;

    fn floor(dir: &Path) -> TimeFloor {
        TimeFloor::new(dir.join("state/time-floor"), t(BUILD))
    }

    #[test]
    fn no_file_means_image_build_time() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = floor(d.path());
        assert_eq!(f.read().expect("read"), t(BUILD));
        // A clock reset to 1970 (dead RTC) is lifted to the build time.
        assert_eq!(
            f.reference_time(t(0)).expect("ref"),
            (t(BUILD), ClockState::BehindFloor)
        );
        assert_eq!(
            f.reference_time(t(BUILD + 5)).expect("ref"),
            (t(BUILD + 5), ClockState::Ok)
        );
    }

    #[test]
    fn raise_persists_and_never_lowers() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = floor(d.path());
        f.raise(t(BUILD + 100)).expect("raise");
        assert_eq!(
            fs::read_to_string(f.path()).expect("file"),
            format!("{}\n", BUILD + 100)
        );
        // Another handle on the same file sees it (persisted, not cached).
        assert_eq!(floor(d.path()).read().expect("read"), t(BUILD + 100));
        f.raise(t(BUILD + 50)).expect("lower is a no-op");
        assert_eq!(f.read().expect("read"), t(BUILD + 100));
        // No temporary file left beside it.
        let names: Vec<String> = fs::read_dir(d.path().join("state"))
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["time-floor"]);
    }

    #[test]
    fn clock_behind_floor_uses_floor() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = floor(d.path());
        f.raise(t(BUILD + 1000)).expect("raise");
        assert_eq!(
            f.reference_time(t(BUILD + 10)).expect("ref"),
            (t(BUILD + 1000), ClockState::BehindFloor)
        );
    }

    #[test]
    fn unparsable_floor_is_an_error_not_zero() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = floor(d.path());
        fs::create_dir_all(d.path().join("state")).expect("mkdir");
        fs::write(f.path(), "garbage").expect("write");
        assert_eq!(
            f.read().expect_err("garbage").kind(),
            io::ErrorKind::InvalidData
        );
        assert!(f.reference_time(t(BUILD)).is_err());
    }
}
