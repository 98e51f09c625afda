//! The portal's counts, from the file the portal publishes (`/run/valise-portal/counts.json`,
//! `valise_health_schema::PortalCounts`): queue depth, jobs finished and failed in the last
//! hour, and a rising counter of failed sign-ins. valise-health never opens the portal's
//! database (0600 in a 0700 directory: it holds password hashes, user names and titles); the
//! portal writes integers only into a directory only valise-health may read.
//!
//! A file older than `portal_counts_max_age_s` is treated as absent (the portal stopped):
//! stale figures are not reported as current. Failed sign-ins within the alert window are the
//! rise of the counter over that window, measured by valise-health's own readings
//! ([`SignInWindow`]); failures before valise-health started are not counted.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

use valise_health_schema::{JobCounts, PortalCounts};

/// One reading of the portal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub jobs: JobCounts,
    /// Failed and throttled sign-ins within the window.
    pub failed_sign_ins: u32,
}

/// Reads the counts file; `None` when it is absent, unreadable, malformed or older than
/// `max_age_s` at `now`.
pub fn read(path: &Path, now: u64, max_age_s: u64) -> Option<PortalCounts> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the portal's counts");
            }
            return None;
        }
    };
    let mut bytes = Vec::new();
    f.take(PortalCounts::MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let c: PortalCounts = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the portal's counts do not parse");
            return None;
        }
    };
    if now.saturating_sub(c.at) > max_age_s {
        tracing::debug!(
            age_s = now.saturating_sub(c.at),
            "the portal's counts are stale"
        );
        return None;
    }
    Some(c)
}

/// The failed-sign-in counter as valise-health saw it, to count the rise within a window.
#[derive(Debug, Default)]
pub struct SignInWindow {
    samples: VecDeque<(u64, u64)>,
}

impl SignInWindow {
    /// Adds a reading of the counter at `now`; returns the failed sign-ins within the last
    /// `window_s` (the rise since the last reading at or before `now - window_s`, or since the
    /// first reading when there is none that old).
    pub fn push(&mut self, now: u64, total: u64, window_s: u32) -> u32 {
        if self.samples.back().is_some_and(|&(_, t)| total < t) {
            // The counter went back (a new database): start over.
            self.samples.clear();
        }
        self.samples.push_back((now, total));
        let since = now.saturating_sub(u64::from(window_s));
        // Keep one reading at or before the window's start, as the base.
        while self.samples.len() > 1 && self.samples[1].0 <= since {
            self.samples.pop_front();
        }
        let base = self.samples.front().map_or(total, |&(_, t)| t);
        u32::try_from(total - base).unwrap_or(u32::MAX)
    }
}

impl Counts {
    pub fn of(c: &PortalCounts, failed_sign_ins: u32) -> Self {
        Self {
            jobs: c.jobs,
            failed_sign_ins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_sign_ins_are_the_rise_within_the_window() {
        let mut w = SignInWindow::default();
        assert_eq!(
            w.push(1000, 7, 900),
            0,
            "what came before valise-health is not counted"
        );
        assert_eq!(w.push(1015, 9, 900), 2);
        assert_eq!(w.push(1500, 12, 900), 5);
        // 1015 is now at or before the window's start (1920 - 900 = 1020): the base is 9.
        assert_eq!(w.push(1920, 12, 900), 3);
        assert_eq!(w.push(3000, 12, 900), 0);
        // A new database: the counter starts over.
        assert_eq!(w.push(3015, 1, 900), 0);
        assert_eq!(w.push(3030, 4, 900), 3);
    }

    #[test]
    fn stale_or_malformed_files_are_absent() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("counts.json");
        assert_eq!(read(&p, 100, 60), None);
        std::fs::write(&p, r#"{"v":1,"at":100,"jobs":{"queued":1,"running":0,"done_last_hour":2,"failed_last_hour":0},"failed_sign_ins_total":3}"#).expect("write");
        assert_eq!(read(&p, 130, 60).map(|c| c.jobs.done_last_hour), Some(2));
        assert_eq!(read(&p, 161, 60), None, "stale");
        std::fs::write(&p, r#"{"v":1,"at":100,"user":"x"}"#).expect("write");
        assert_eq!(read(&p, 100, 60), None);
    }
}
