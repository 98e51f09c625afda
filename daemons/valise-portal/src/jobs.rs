//! The persistent job queue: rows in SQLite, files in `jobs/<id>/`.
//!
//! ```text
//!   upload ──> queued ──> running ──> done | failed | cancelled
//!                ^           │
//!                └───────────┘ engine vanished (crash, restart, update): retried,
//!                              up to `max_attempts` tries, then failed with the reason
//! ```
//! A job is written (row + file fsynced) before the upload is acknowledged, so neither a
//! portal restart nor an engine crash loses it. Which queued job goes next is decided here,
//! fairly between users ([`fair_order`]), not by arrival alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use valise_protocol::ApiError;

use crate::db::now;
use crate::error::{PortalError, Result};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Transcription,
    Document,
    TranscriptTranslation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transcription => "transcription",
            Self::Document => "document",
            Self::TranscriptTranslation => "transcript_translation",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "document" => Self::Document,
            "transcript_translation" => Self::TranscriptTranslation,
            _ => Self::Transcription,
        }
    }

    /// Which engine runs it.
    pub fn engine(self) -> Engine {
        match self {
            Self::Transcription => Engine::Transcribe,
            Self::Document | Self::TranscriptTranslation => Engine::Translate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Transcribe,
    Translate,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

/// What the user asked for; stored as JSON in the row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Options {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default)]
    pub translate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Document format (`docx`, `odt`, `html`, `md`, `txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// A job as the API shows it to its owner.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: Kind,
    pub state: State,
    pub title: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<u64>,
    /// While a transcription runs: how far into the recording it is (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_secs: Option<f64>,
    /// Set while the job waits because its engine does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(flatten)]
    pub options: Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    pub attempts: u32,
    pub input_bytes: u64,
    #[serde(skip)]
    pub user_id: i64,
    #[serde(skip)]
    pub engine_job: Option<String>,
}

const COLUMNS: &str = "id, user_id, kind, state, title, options, created_at, started_at, finished_at, \
     progress, engine_job, attempts, error_code, error_message, detected_language, duration_secs, \
     input_bytes, parent, report";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let options: String = r.get(5)?;
    let code: Option<String> = r.get(12)?;
    let message: Option<String> = r.get(13)?;
    let report: Option<String> = r.get(18)?;
    Ok(Job {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: Kind::parse(&r.get::<_, String>(2)?),
        state: State::parse(&r.get::<_, String>(3)?),
        title: display_title(&r.get::<_, String>(4)?),
        options: serde_json::from_str(&options).unwrap_or_default(),
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        progress: r.get(9)?,
        engine_job: r.get(10)?,
        attempts: r.get(11)?,
        error: code.map(|c| ApiError::new(c, message.unwrap_or_default())),
        detected_language: r.get(14)?,
        duration_secs: r.get(15)?,
        input_bytes: r.get::<_, i64>(16)?.max(0) as u64,
        parent: r.get(17)?,
        report: report.and_then(|s| serde_json::from_str(&s).ok()),
        queue_position: None,
        eta_secs: None,
        position_secs: None,
        notice: None,
    })
}

/// Where a job's files live. Ids are generated here (uuid hex) and checked when they come
/// back in a URL, so a path is never built from user input.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
    incoming: PathBuf,
}

impl Files {
    /// `root` is `<data>/jobs`; uploads and results in progress go to `<data>/incoming`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let incoming = root.parent().unwrap_or(Path::new(".")).join("incoming");
        Self { root, incoming }
    }

    pub fn incoming(&self) -> &Path {
        &self.incoming
    }

    pub fn dir(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(PortalError::NotFound);
        }
        Ok(self.root.join(id))
    }

    pub fn input(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir(id)?.join("input"))
    }

    /// Transcript JSON (transcriptions, transcript translations) or the translated document.
    pub fn result(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir(id)?.join("result"))
    }

    /// The owner's corrections: `{segment index: text}`.
    pub fn edits(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir(id)?.join("edits.json"))
    }

    /// Removes a job's files (retention, delete). Missing files are fine.
    pub fn remove(&self, id: &str) -> Result<()> {
        match std::fs::remove_dir_all(self.dir(id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A title as it may be shown: without Unicode format characters (category Cf: bidi
/// overrides such as U+202E that make `exe.txt` read as `txt.exe`, invisible marks), but
/// with the zero-width (non-)joiners U+200C/U+200D that Persian and Indic scripts need.
/// Applied when a title is made and again when one is read, for titles stored before.
pub fn display_title(s: &str) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    s.chars()
        .filter(|&c| {
            c == '\u{200C}' || c == '\u{200D}' || c.general_category() != GeneralCategory::Format
        })
        .collect()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Debug)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub kind: Kind,
    pub title: &'a str,
    pub options: &'a Options,
    pub input_bytes: u64,
    pub parent: Option<&'a str>,
}

pub fn insert(c: &Connection, j: &NewJob<'_>) -> Result<()> {
    c.execute(
        "INSERT INTO jobs (id, user_id, kind, state, title, options, created_at, input_bytes, parent, search_text)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            j.id,
            j.user_id,
            j.kind.as_str(),
            j.title,
            serde_json::to_string(j.options).map_err(|e| PortalError::Internal(e.to_string()))?,
            now(),
            j.input_bytes as i64,
            j.parent,
            j.title.to_lowercase(),
        ],
    )?;
    Ok(())
}

pub fn active_count(c: &Connection, user_id: i64) -> Result<u32> {
    Ok(c.query_row(
        "SELECT count(*) FROM jobs WHERE user_id = ?1 AND state IN ('queued', 'running')",
        params![user_id],
        |r| r.get(0),
    )?)
}

/// Any job by id (the dispatcher's view).
pub fn get_any(c: &Connection, id: &str) -> Result<Option<Job>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
        params![id],
        from_row,
    )
    .optional()?)
}

/// A job of `user_id`'s; someone else's job is "not found", admins included.
pub fn get(c: &Connection, user_id: i64, id: &str) -> Result<Job> {
    match get_any(c, id)? {
        Some(j) if j.user_id == user_id => Ok(j),
        _ => Err(PortalError::NotFound),
    }
}

pub fn list(
    c: &Connection,
    user_id: i64,
    query: Option<&str>,
    limit: u32,
    before: Option<i64>,
) -> Result<Vec<Job>> {
    let pattern = query
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty())
        .map(|q| {
            format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE user_id = ?1
           AND (?2 IS NULL OR search_text LIKE ?2 ESCAPE '\\')
           AND (?3 IS NULL OR created_at < ?3)
         ORDER BY created_at DESC, rowid DESC LIMIT ?4"
    ))?;
    let rows = st.query_map(params![user_id, pattern, before, limit.min(500)], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn of_state(c: &Connection, state: State) -> Result<Vec<Job>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE state = ?1 ORDER BY created_at, rowid"
    ))?;
    let rows = st.query_map(params![state.as_str()], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The order in which queued jobs of one engine will start: round-robin between users
/// (each user's oldest job first), users with fewer jobs running going first. A user with
/// fifty recordings queued cannot hold everyone else back.
pub fn fair_order(queued: &[Job], running: &[Job]) -> Vec<String> {
    let mut busy: HashMap<i64, usize> = HashMap::new();
    for j in running {
        *busy.entry(j.user_id).or_default() += 1;
    }
    let mut rank: HashMap<i64, usize> = HashMap::new();
    let mut keyed: Vec<(usize, i64, usize, &str)> = queued
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let r = rank.entry(j.user_id).or_default();
            let key = *r + busy.get(&j.user_id).copied().unwrap_or(0);
            *r += 1;
            (key, j.created_at, i, j.id.as_str())
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .map(|(_, _, _, id)| id.to_owned())
        .collect()
}

/// Marks a queued job as handed to its engine; false when the job is no longer there to
/// mark (deleted meanwhile: the caller makes the engine forget it).
pub fn set_running(c: &Connection, id: &str, engine_job: Option<&str>) -> Result<bool> {
    let n = c.execute(
        "UPDATE jobs SET state = 'running', started_at = ?2, engine_job = ?3, attempts = attempts + 1,
            progress = 0, error_code = NULL, error_message = NULL WHERE id = ?1 AND state = 'queued'",
        params![id, now(), engine_job],
    )?;
    Ok(n == 1)
}

pub fn set_progress(c: &Connection, id: &str, progress: f64, duration: Option<f64>) -> Result<()> {
    c.execute(
        "UPDATE jobs SET progress = ?2, duration_secs = coalesce(?3, duration_secs)
         WHERE id = ?1 AND state = 'running'",
        params![id, progress.clamp(0.0, 1.0), duration],
    )?;
    Ok(())
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub detected_language: Option<String>,
    pub duration_secs: Option<f64>,
    pub report: Option<serde_json::Value>,
    /// Lower-cased text for the owner's history search.
    pub search_text: Option<String>,
}

pub fn set_done(c: &Connection, id: &str, o: &Outcome) -> Result<()> {
    c.execute(
        "UPDATE jobs SET state = 'done', progress = 1, finished_at = ?2,
            detected_language = coalesce(?3, detected_language),
            duration_secs = coalesce(?4, duration_secs), report = ?5,
            search_text = search_text || ' ' || coalesce(?6, '')
         WHERE id = ?1 AND state = 'running'",
        params![
            id,
            now(),
            o.detected_language,
            o.duration_secs,
            o.report.as_ref().map(|r| r.to_string()),
            o.search_text,
        ],
    )?;
    Ok(())
}

pub fn set_failed(c: &Connection, id: &str, error: &ApiError) -> Result<()> {
    c.execute(
        "UPDATE jobs SET state = 'failed', finished_at = ?2, error_code = ?3, error_message = ?4
         WHERE id = ?1 AND state IN ('queued', 'running')",
        params![id, now(), error.code, error.message],
    )?;
    Ok(())
}

/// Back to the queue after its engine vanished or stopped; the error says why, for the UI.
/// `counted`: the try `set_running` counted stands (the engine crashed, lost the job); false
/// gives it back (the engine stopped as planned, `engine_stopping`, or never received the job).
pub fn requeue(c: &Connection, id: &str, why: &ApiError, counted: bool) -> Result<()> {
    c.execute(
        "UPDATE jobs SET state = 'queued', progress = 0, engine_job = NULL, error_code = ?2,
            error_message = ?3, attempts = max(attempts - ?4, 0) WHERE id = ?1 AND state = 'running'",
        params![id, why.code, why.message, i64::from(!counted)],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
    Ok(())
}

/// Ids of jobs finished (or created) before `cutoff`: what retention removes.
pub fn expired(c: &Connection, cutoff: i64) -> Result<Vec<String>> {
    let mut st = c.prepare(
        "SELECT id FROM jobs WHERE coalesce(finished_at, created_at) < ?1
           AND state NOT IN ('queued', 'running')",
    )?;
    let rows = st.query_map(params![cutoff], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn ids_of_user(c: &Connection, user_id: i64) -> Result<Vec<String>> {
    let mut st = c.prepare("SELECT id FROM jobs WHERE user_id = ?1")?;
    let rows = st.query_map(params![user_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Mean seconds a finished job of `kind` spent running (last 20), for ETAs.
pub fn mean_run_secs(c: &Connection, kind: Kind) -> Result<Option<f64>> {
    Ok(c.query_row(
        "SELECT avg(finished_at - started_at) FROM (SELECT finished_at, started_at FROM jobs
           WHERE kind = ?1 AND state = 'done' AND started_at IS NOT NULL
           ORDER BY finished_at DESC LIMIT 20)",
        params![kind.as_str()],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, user: i64, t: i64) -> Job {
        Job {
            id: id.into(),
            kind: Kind::Transcription,
            state: State::Queued,
            title: String::new(),
            created_at: t,
            started_at: None,
            finished_at: None,
            progress: 0.0,
            queue_position: None,
            eta_secs: None,
            position_secs: None,
            notice: None,
            options: Options::default(),
            detected_language: None,
            duration_secs: None,
            parent: None,
            error: None,
            report: None,
            attempts: 0,
            input_bytes: 0,
            user_id: user,
            engine_job: None,
        }
    }

    #[test]
    fn fair_order_interleaves_users_and_favours_the_idle() {
        // Alice queued three jobs before Bob's one; Bob's goes second, not fourth.
        let q = [
            job("a1", 1, 1),
            job("a2", 1, 2),
            job("a3", 1, 3),
            job("b1", 2, 4),
        ];
        assert_eq!(fair_order(&q, &[]), ["a1", "b1", "a2", "a3"]);
        // With one of Alice's already running, Bob's goes first.
        let running = [job("a0", 1, 0)];
        assert_eq!(fair_order(&q, &running), ["b1", "a1", "a2", "a3"]);
    }

    #[test]
    fn ids_from_urls_cannot_name_paths() {
        let f = Files::new("/data/jobs");
        assert!(f.dir("../../etc").is_err());
        assert!(f.dir("0123456789abcdef0123456789abcdef").is_ok());
        assert!(f.dir(&new_id()).is_ok());
    }
}
