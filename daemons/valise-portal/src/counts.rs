//! The counts valise-health reports, published by the portal itself: queue depth, jobs
//! finished and failed in the last hour, and a counter of failed sign-ins — integers only
//! (`valise_health_schema::PortalCounts`), never a title, a file name or a user name.
//!
//! ```text
//!  portal.db (0600, in 0700 /var/lib/valise-portal) ─ count(*) every interval_secs ─▶
//!  /run/valise-portal/counts.json  (temp file, 0640, rename; dir 2750 valise-portal:valise-health)
//!                                   ─▶ valise-health reads it; it never opens the database
//! ```
//!
//! The file is replaced atomically (a temporary file in the same directory, then `rename`),
//! so a reader sees a whole old file or a whole new one. When the directory does not exist
//! (no valise-health on this machine, a developer's run), nothing is written.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use valise_health_schema::{JobCounts, PortalCounts, V1};

use crate::AppState;

fn count(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<u32> {
    c.query_row(sql, params, |r| r.get::<_, i64>(0))
        .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// Counts the database at `now` (Unix seconds).
pub fn read(c: &Connection, now: u64) -> rusqlite::Result<PortalCounts> {
    let hour = i64::try_from(now).unwrap_or(i64::MAX) - 3600;
    Ok(PortalCounts {
        v: V1,
        at: now,
        jobs: JobCounts {
            queued: count(c, "SELECT count(*) FROM jobs WHERE state = 'queued'", [])?,
            running: count(c, "SELECT count(*) FROM jobs WHERE state = 'running'", [])?,
            done_last_hour: count(
                c,
                "SELECT count(*) FROM jobs WHERE state = 'done' AND finished_at >= ?1",
                [hour],
            )?,
            failed_last_hour: count(
                c,
                "SELECT count(*) FROM jobs WHERE state = 'failed' AND finished_at >= ?1",
                [hour],
            )?,
        },
        failed_sign_ins_total: u64::from(count(
            c,
            "SELECT count(*) FROM audit WHERE action IN ('login_failed', 'login_throttled')",
            [],
        )?),
    })
}

/// Replaces `path` with `counts` (mode 0640: the directory's group, valise-health, reads it).
pub fn write(path: &Path, counts: &PortalCounts) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(".counts.json.tmp");
    let bytes = serde_json::to_vec(counts).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    // The portal's umask (0077) would leave the group out of a file it creates.
    f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    f.write_all(&bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes the counts every `counts.interval_secs` until aborted.
pub async fn publish_loop(state: AppState) {
    let cfg = state.config.counts.clone();
    let Some(dir) = cfg.file.parent().filter(|d| d.is_dir()) else {
        tracing::debug!(file = %cfg.file.display(), "no directory for the counts file: not published");
        return;
    };
    tracing::info!(dir = %dir.display(), "publishing counts for valise-health");
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let st = state.clone();
        let file = cfg.file.clone();
        let done = tokio::task::spawn_blocking(move || {
            let counts = st
                .db
                .with(|c| read(c, unix_now()).map_err(Into::into))
                .map_err(|e| e.to_string())?;
            write(&file, &counts).map_err(|e| format!("{}: {e}", file.display()))
        })
        .await;
        match done {
            Ok(Ok(())) => failing = false,
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot publish the counts");
            }
            _ => {}
        }
    }
}
