//! The reference time of a refresh on a box that may be offline for weeks or have a wrong
//! clock (`daemons/valise-update/DESIGN.md` §3, time policy): `T = max(clock, floor)`, where
//! `floor` is persisted and raised to `T` only after a **successful** refresh. A clock set
//! backwards therefore never makes expired metadata valid again (no freeze opening); a
//! clock far ahead makes the refresh fail without raising the floor, so correcting the
//! clock recovers. The floor file holds unix seconds as decimal text and is replaced
//! atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! The raise is capped by evidence that real time has passed (`DESIGN.md` §3.4): a refresh
//! that succeeds with a clock far ahead (possible with long-lived metadata, e.g. a USB
//! export's 60-day timestamp) would otherwise lift the floor far ahead, and once the clock
//! is corrected every freshly signed online timestamp (1-day expiry) would look expired
//! until real time caught up. So the floor is raised to at most the trusted timestamp's
//! signing time as far as it can be known: `expires − max_timestamp_lifetime` (a timestamp
//! valid until E, issued with a lifetime of at most L, was signed at or after E − L, and
//! real time is past its signing), or, when the repository's timestamp versions are unix
//! seconds at signing (`valisectl repo`, §2.4) and not after its expiry, that version.
//!
//! No clock is read here: callers pass the clock's reading in (the daemon reads
//! `OffsetDateTime::now_utc()`; tests pass explicit times).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

use crate::schema::Common;

/// The longest timestamp lifetime the repository issues (`valisectl repo export-offline`'s
/// 60 days, `DESIGN.md` §2.4).
pub const MAX_TIMESTAMP_LIFETIME: Duration = Duration::days(60);

/// A persisted time floor.
#[derive(Debug, Clone)]
pub struct TimeFloor {
    path: PathBuf,
    initial: OffsetDateTime,
    max_timestamp_lifetime: Duration,
    versions_are_signing_times: bool,
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
            max_timestamp_lifetime: MAX_TIMESTAMP_LIFETIME,
            versions_are_signing_times: true,
        }
    }

    /// The longest lifetime of a timestamp the repository issues (default 60 days).
    pub fn with_max_timestamp_lifetime(mut self, d: Duration) -> Self {
        self.max_timestamp_lifetime = d;
        self
    }

    /// Whether timestamp versions are unix seconds at signing (default true: `valisectl
    /// repo` signs them so; small versions such as 1, 2, 3 read as 1970 and add nothing).
    pub fn with_versions_as_signing_times(mut self, yes: bool) -> Self {
        self.versions_are_signing_times = yes;
        self
    }

    /// The floor a successful refresh at `reference` that trusts `timestamp` justifies:
    /// `reference`, capped at the latest time the timestamp shows to have passed (module
    /// documentation).
    pub fn justified(&self, reference: OffsetDateTime, timestamp: &Common) -> OffsetDateTime {
        let mut passed = timestamp.expires - self.max_timestamp_lifetime;
        if self.versions_are_signing_times
            && let Ok(secs) = i64::try_from(timestamp.version)
            && let Ok(signed) = OffsetDateTime::from_unix_timestamp(secs)
            && signed <= timestamp.expires
        {
            passed = passed.max(signed);
        }
        reference.min(passed)
    }

    /// After a successful refresh at `reference` trusting `timestamp`: raises the floor to
    /// [`TimeFloor::justified`] (never lowers it).
    pub fn raise_after_refresh(
        &self,
        reference: OffsetDateTime,
        timestamp: &Common,
    ) -> io::Result<()> {
        self.raise(self.justified(reference, timestamp))
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
        valise_pki::fsutil::write_atomic(&self.path, format!("{secs}\n").as_bytes(), 0o644)
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

    fn ts(version: u64, expires: i64) -> Common {
        serde_json::from_value(serde_json::json!({
            "_type": "timestamp", "spec_version": "1.0.31", "version": version,
            "expires": t(expires).format(&time::format_description::well_known::Rfc3339)
                .expect("format"),
        }))
        .expect("common")
    }

    const DAY: i64 = 86_400;

    #[test]
    fn raise_capped_by_what_the_timestamp_shows() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = floor(d.path());
        let now = BUILD + 100 * DAY;
        // A USB export signed at `now` (version = unix seconds), valid 60 days; the clock
        // reads 30 days ahead. The floor goes to the signing time, not the clock.
        let usb = ts(now as u64, now + 60 * DAY);
        assert_eq!(f.justified(t(now + 30 * DAY), &usb), t(now));
        // Versions that are not times (1, 2, 3): expiry − 60 days.
        let small = ts(7, now + 60 * DAY);
        assert_eq!(f.justified(t(now + 30 * DAY), &small), t(now));
        assert_eq!(
            f.clone()
                .with_max_timestamp_lifetime(Duration::days(1))
                .justified(t(now + 30 * DAY), &small),
            t(now + 30 * DAY),
            "a 1-day lifetime means signed after now + 59 days: the clock stands"
        );
        // A version after the expiry is no signing time.
        let odd = ts((now + 90 * DAY) as u64, now + 60 * DAY);
        assert_eq!(f.justified(t(now + 30 * DAY), &odd), t(now));
        let no_times = f.clone().with_versions_as_signing_times(false);
        let online = ts(now as u64, now + DAY);
        assert_eq!(no_times.justified(t(now), &online), t(now - 59 * DAY));
        // A right clock is never capped below itself when the version is the signing time.
        assert_eq!(f.justified(t(now + 60), &online), t(now));
        assert_eq!(f.justified(t(now - 60), &online), t(now - 60));
        f.raise_after_refresh(t(now + 30 * DAY), &usb)
            .expect("raise");
        assert_eq!(f.read().expect("read"), t(now));
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
