//! Retention: uploads and results are deleted after the configured number of days (the
//! admin may change it), and at once when their owner asks. Deleting removes the files
//! first, then the row, so a crash in between leaves a row without files (shown as gone),
//! never files without a row.

use rusqlite::{Connection, OptionalExtension, params};

use crate::audit;
use crate::db::now;
use crate::error::Result;
use crate::jobs::{self, Files};

const KEY: &str = "retention_days";

pub fn days(c: &Connection, default: u32) -> Result<u32> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(default))
}

pub fn set_days(c: &Connection, days: u32) -> Result<()> {
    c.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![KEY, days.to_string()],
    )?;
    Ok(())
}

/// Deletes one job's files and row.
pub fn delete_job(c: &Connection, files: &Files, id: &str) -> Result<()> {
    files.remove(id)?;
    jobs::delete(c, id)
}

/// Deletes every finished job older than the retention period; returns how many.
pub fn purge(c: &Connection, files: &Files, default_days: u32) -> Result<usize> {
    let days = days(c, default_days)?;
    let cutoff = now() - i64::from(days) * 86_400;
    let ids = jobs::expired(c, cutoff)?;
    for id in &ids {
        delete_job(c, files, id)?;
    }
    // Directories without a row (a crash between upload and insert) are removed too.
    if let Ok(entries) = std::fs::read_dir(files.root()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if jobs::valid_id(&name) && age > 3600 && jobs::get_any(c, &name)?.is_none() {
                files.remove(&name)?;
            }
        }
    }
    if !ids.is_empty() {
        audit::record(
            c,
            "system",
            "retention_purge",
            &format!("jobs={}", ids.len()),
            None,
        )?;
    }
    Ok(ids.len())
}
