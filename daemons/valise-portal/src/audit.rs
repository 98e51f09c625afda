//! The audit log: who did what, when, from where. Never content and never file names: the
//! `detail` of an entry is built only from ids, kinds, sizes, counts and user names.

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::db::now;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

pub fn record(
    c: &Connection,
    actor: &str,
    action: &str,
    detail: &str,
    ip: Option<&str>,
) -> Result<()> {
    c.execute(
        "INSERT INTO audit (at, actor, action, detail, ip) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now(), actor, action, detail, ip],
    )?;
    Ok(())
}

/// Newest first.
pub fn list(c: &Connection, limit: u32, before: Option<i64>) -> Result<Vec<Entry>> {
    let mut st = c.prepare(
        "SELECT id, at, actor, action, detail, ip FROM audit WHERE (?1 IS NULL OR id < ?1)
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![before, limit.clamp(1, 1000)], |r| {
        Ok(Entry {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            detail: r.get(4)?,
            ip: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
