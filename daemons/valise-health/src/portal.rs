//! Counts from the portal's database, read-only: queue depth, jobs finished in the last hour,
//! failed sign-ins in a window. Counts only: the queries select `count(*)`, never a title, a
//! file name or a user name, so there is nothing else to leak.
//!
//! The database is opened read-only for each reading (`SQLITE_OPEN_READ_ONLY`), in WAL mode a
//! reader never blocks the portal's writer; a busy database makes the reading give up after
//! `busy_timeout` rather than wait, and the whole reading runs on a blocking thread under the
//! daemon's read deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use valise_health_schema::JobCounts;

/// One reading of the portal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortalCounts {
    pub jobs: JobCounts,
    /// Failed and throttled sign-ins within the window.
    pub failed_sign_ins: u32,
}

fn count(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<u32> {
    c.query_row(sql, params, |r| r.get::<_, i64>(0))
        .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

fn read(db: &Path, now: i64, window_s: u32, busy: Duration) -> rusqlite::Result<PortalCounts> {
    let c = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(busy)?;
    let hour = now - 3600;
    Ok(PortalCounts {
        jobs: JobCounts {
            queued: count(&c, "SELECT count(*) FROM jobs WHERE state = 'queued'", [])?,
            running: count(&c, "SELECT count(*) FROM jobs WHERE state = 'running'", [])?,
            done_last_hour: count(
                &c,
                "SELECT count(*) FROM jobs WHERE state = 'done' AND finished_at >= ?1",
                [hour],
            )?,
            failed_last_hour: count(
                &c,
                "SELECT count(*) FROM jobs WHERE state = 'failed' AND finished_at >= ?1",
                [hour],
            )?,
        },
        failed_sign_ins: count(
            &c,
            "SELECT count(*) FROM audit WHERE action IN ('login_failed', 'login_throttled') \
             AND at >= ?1",
            [now - i64::from(window_s)],
        )?,
    })
}

/// Reads the counts; `None` when the database is absent, unreadable, busy or slow.
pub async fn counts(db: PathBuf, now: u64, window_s: u32, limit: Duration) -> Option<PortalCounts> {
    if !db.exists() {
        return None;
    }
    let now = i64::try_from(now).ok()?;
    let busy = limit / 2;
    let task = tokio::task::spawn_blocking(move || read(&db, now, window_s, busy));
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(c))) => Some(c),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "cannot read the portal's counts");
            None
        }
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("reading the portal's counts timed out");
            None
        }
    }
}
