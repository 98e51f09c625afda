//! The SQLite database: one file, versioned migrations, one connection behind a mutex used
//! from blocking threads. SQLite serialises writers anyway; at one post's scale (tens of
//! users) one connection in WAL mode keeps every query well under a millisecond.
//!
//! Deleted content must not stay readable in any file (a title, a corrected transcript's
//! old text): `secure_delete` zeroes freed cells and pages, and an update hook marks every
//! delete of a job or a user so that, before the connection is released, the WAL (which
//! still holds the old page images) is checkpointed into the main file and truncated to
//! nothing. A checkpoint another process keeps busy is retried at the next use (the
//! dispatcher touches the database every tick).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::{PortalError, Result};

/// Migrations in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_tokens.sql"),
    include_str!("../migrations/0003_jobs.sql"),
];

#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Content was deleted since the last complete checkpoint.
    erased: Arc<AtomicBool>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            crate::storage::private_dir(dir)?;
        }
        create_private(path)?;
        let mut conn = Connection::open(path)?;
        // The busy timeout comes first: every statement after it may meet another process
        // (the portal and `valisectl` open the same file).
        conn.busy_timeout(BUSY_TIMEOUT)?;
        set_wal(&conn)?;
        // FULL: a job the portal acknowledged survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        migrate(&mut conn)?;
        let erased = Arc::new(AtomicBool::new(false));
        let mark = erased.clone();
        conn.update_hook(Some(
            move |action: rusqlite::hooks::Action, _db: &str, table: &str, _row: i64| {
                if action == rusqlite::hooks::Action::SQLITE_DELETE
                    && matches!(table, "jobs" | "users")
                {
                    mark.store(true, Ordering::SeqCst);
                }
            },
        ));
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            erased,
        })
    }

    /// Runs `f` with the connection on the calling thread (CLI, start-up, blocking code).
    /// When `f` deleted content, the WAL is checkpointed and truncated before returning.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| PortalError::Internal("database lock poisoned".into()))?;
        let out = f(&mut conn);
        if self.erased.swap(false, Ordering::SeqCst) && !checkpoint(&conn) {
            self.erased.store(true, Ordering::SeqCst);
        }
        out
    }

    /// Content was overwritten in place (a corrected transcript's search text): have the
    /// old page images leave the WAL at the end of the next use.
    pub fn mark_erased(&self) {
        self.erased.store(true, Ordering::SeqCst);
    }

    /// Runs `f` with the connection on a blocking thread (request handlers).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| PortalError::Internal(e.to_string()))?
    }
}

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Switches a new database to WAL. The switch needs the file to itself, and SQLite answers
/// SQLITE_BUSY at once, without its busy handler, when another connection is opening the
/// same new file at that moment: retry until the busy timeout.
fn set_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    // The version is read inside a write transaction: the portal and `valisectl` may open a
    // new database at the same moment, and only one of them must run each migration.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let done: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        return Err(PortalError::Internal(format!(
            "the database is from a newer portal (schema {done}, this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tracing::info!(version = i + 1, "database migrated");
    }
    tx.commit()?;
    Ok(())
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: every frame into the main file, the WAL cut to zero
/// bytes. False when a reader of another connection kept it from completing (retried).
fn checkpoint(conn: &Connection) -> bool {
    // TRUNCATE waits for readers of older snapshots through the busy handler: wait briefly
    // rather than hold every request for the whole busy timeout; the next use retries.
    let _ = conn.busy_timeout(CHECKPOINT_WAIT);
    let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    match done {
        Ok(0) => true,
        Ok(_) => {
            tracing::debug!("checkpoint busy; retried later");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint failed; retried later");
            false
        }
    }
}

/// The database holds password hashes and history: the file is created owner-only before
/// SQLite opens it (its -wal and -shm files take the same mode), and an existing one is
/// made owner-only.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_database_together_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.db");
        let opened: Vec<_> = (0..6)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || Db::open(&p).map(|_| ()))
            })
            .collect();
        for t in opened {
            t.join().unwrap().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let v: usize = db
            .with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
    }

    #[test]
    fn a_checkpoint_kept_busy_by_a_reader_is_retried_until_the_wal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.db");
        let db = Db::open(&path).unwrap();
        let wal = dir.path().join("portal.db-wal");
        let marker = "zqxsecretqx";
        db.with(|c| {
            crate::accounts::add_user(c, marker, "correct horse battery", false)?;
            Ok(())
        })
        .unwrap();
        // Another process reads: its snapshot keeps the WAL's frames.
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM users;")
            .unwrap();
        db.with(|c| {
            c.execute("DELETE FROM users WHERE username = ?1", [marker])?;
            Ok(())
        })
        .unwrap();
        let wal_bytes = std::fs::read(&wal).unwrap();
        assert!(
            wal_bytes
                .windows(marker.len())
                .any(|w| w == marker.as_bytes()),
            "the reader should have kept the checkpoint from completing"
        );
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        // Any later use (the dispatcher's next tick) completes it.
        db.with(|_| Ok(())).unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let main = std::fs::read(&path).unwrap();
        assert!(!main.windows(marker.len()).any(|w| w == marker.as_bytes()));
    }
}
