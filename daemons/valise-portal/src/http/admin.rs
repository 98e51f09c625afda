//! Admin pages' API: accounts, the box's state, retention, audit log. Admins manage
//! accounts; they do not see other users' jobs.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use valise_protocol::ModelInfo;

use super::session::JsonBody;
use crate::accounts::{self, UserRow};
use crate::audit;
use crate::auth::Auth;
use crate::error::{PortalError, Result};
use crate::jobs::{self, State as JobState};
use crate::state::AppState;

pub async fn users(State(st): State<AppState>, auth: Auth) -> Result<Json<Vec<UserRow>>> {
    auth.require_admin()?;
    Ok(Json(st.db.run(|c| accounts::list_users(c)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

pub async fn add_user(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<UserRow>)> {
    auth.require_admin()?;
    accounts::check_username(&req.username)?;
    accounts::check_password(&req.password, &req.username)?;
    let hash = st.hasher.hash(req.password).await?;
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let row = st
        .db
        .run(move |c| {
            let u = accounts::insert_user(c, &req.username, &hash, req.admin)?;
            audit::record(
                c,
                &actor,
                "user_created",
                &format!("user={} admin={}", u.username, u.admin),
                ip.as_deref(),
            )?;
            accounts::user_row(c, u.id)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

pub async fn update_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> Result<Json<UserRow>> {
    auth.require_admin()?;
    // A new password is checked and hashed before the database is touched.
    let new_hash = match &req.password {
        Some(p) => {
            let name = st
                .db
                .run(move |c| accounts::user_row(c, id))
                .await?
                .username;
            accounts::check_password(p, &name)?;
            Some(st.hasher.hash(p.clone()).await?)
        }
        None => None,
    };
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let row = st
        .db
        .run(move |c| {
            let before = accounts::user_row(c, id)?;
            let loses_admin = before.admin
                && !before.disabled
                && (req.admin == Some(false) || req.disabled == Some(true));
            if loses_admin && accounts::count_admins(c)? <= 1 {
                return Err(PortalError::Conflict(
                    "the box must keep at least one active admin".into(),
                ));
            }
            let mut changes = Vec::new();
            if let Some(a) = req.admin {
                c.execute(
                    "UPDATE users SET admin = ?1 WHERE id = ?2",
                    rusqlite::params![a, id],
                )?;
                changes.push(format!("admin={a}"));
            }
            if let Some(d) = req.disabled {
                c.execute(
                    "UPDATE users SET disabled = ?1 WHERE id = ?2",
                    rusqlite::params![d, id],
                )?;
                if d {
                    accounts::end_access(c, id)?;
                }
                changes.push(format!("disabled={d}"));
            }
            if let Some(h) = &new_hash {
                accounts::replace_password(c, id, h, None)?;
                changes.push("password=reset".into());
            }
            audit::record(
                c,
                &actor,
                "user_updated",
                &format!("user={} {}", before.username, changes.join(" ")),
                ip.as_deref(),
            )?;
            accounts::user_row(c, id)
        })
        .await?;
    Ok(Json(row))
}

pub async fn delete_user(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    auth.require_admin()?;
    if id == auth.user.id {
        return Err(PortalError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    let files = st.files.clone();
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    st.db
        .run(move |c| {
            let u = accounts::user_row(c, id)?;
            if u.admin && !u.disabled && accounts::count_admins(c)? <= 1 {
                return Err(PortalError::Conflict(
                    "the box must keep at least one active admin".into(),
                ));
            }
            // Their files first, then the rows (jobs, sessions, tokens cascade).
            let ids = jobs::ids_of_user(c, id)?;
            for j in &ids {
                files.remove(j)?;
            }
            c.execute("DELETE FROM users WHERE id = ?1", rusqlite::params![id])?;
            audit::record(
                c,
                &actor,
                "user_deleted",
                &format!("user={} jobs={}", u.username, ids.len()),
                ip.as_deref(),
            )
        })
        .await?;
    // Their jobs' rows went by cascade; the trigger recorded what the engines hold.
    st.forget_deleted();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct EngineState {
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_running: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_queued: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models_loaded: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Engines {
    pub transcribe: EngineState,
    pub translate: EngineState,
}

#[derive(Debug, Serialize)]
pub struct Disk {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub data_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct JobCounts {
    pub queued: usize,
    pub running: usize,
}

#[derive(Debug, Serialize)]
pub struct BoxState {
    pub version: &'static str,
    pub engines: Engines,
    pub models: Vec<ModelInfo>,
    pub disk: Disk,
    pub jobs: JobCounts,
    /// Unix seconds of the last model bundle valise-update installed (null: never, or the
    /// updater did not answer within [`UPDATE_STATUS_TIMEOUT`]).
    pub last_update: Option<i64>,
}

/// How long the admin page waits for the updater's status.
pub const UPDATE_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// `last_update` from valise-update's `GET /status`, or None when it does not answer in time.
async fn last_update(socket: &std::path::Path) -> Option<i64> {
    let http = valise_engine_client::UnixHttp::new(socket, "valise-update");
    let call = http.call::<serde_json::Value>(axum::http::Method::GET, "/status", None::<&()>);
    tokio::time::timeout(UPDATE_STATUS_TIMEOUT, call)
        .await
        .ok()?
        .ok()?
        .get("last_update")?
        .as_i64()
}

fn disk(path: &std::path::Path) -> Disk {
    let (total, free) = nix::sys::statvfs::statvfs(path)
        .map(|s| {
            let f = s.fragment_size();
            (s.blocks() * f, s.blocks_available() * f)
        })
        .unwrap_or((0, 0));
    let data = walk_size(path);
    Disk {
        total_bytes: total,
        free_bytes: free,
        data_bytes: data,
    }
}

fn walk_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub async fn box_state(State(st): State<AppState>, auth: Auth) -> Result<Json<BoxState>> {
    auth.require_admin()?;
    let (th, tm, lh, last_update) = tokio::join!(
        st.transcribe.health(),
        st.transcribe.models(),
        st.translate.health(),
        last_update(&st.config.engines.update_socket)
    );
    let transcribe = match th {
        Ok(h) => EngineState {
            up: true,
            version: Some(h.version),
            jobs_running: Some(h.jobs_running),
            jobs_queued: Some(h.jobs_queued),
            models_loaded: h.models_loaded,
        },
        Err(_) => EngineState {
            up: false,
            version: None,
            jobs_running: None,
            jobs_queued: None,
            models_loaded: vec![],
        },
    };
    let translate = match lh {
        Ok(h) => EngineState {
            up: true,
            version: Some(h.version),
            jobs_running: None,
            jobs_queued: None,
            models_loaded: h.models_loaded,
        },
        Err(_) => EngineState {
            up: false,
            version: None,
            jobs_running: None,
            jobs_queued: None,
            models_loaded: vec![],
        },
    };
    let data_dir = st.config.data_dir.clone();
    let (disk, counts) = st
        .db
        .run(move |c| {
            let counts = JobCounts {
                queued: jobs::of_state(c, JobState::Queued)?.len(),
                running: jobs::of_state(c, JobState::Running)?.len(),
            };
            Ok((disk(&data_dir), counts))
        })
        .await?;
    Ok(Json(BoxState {
        version: env!("CARGO_PKG_VERSION"),
        engines: Engines {
            transcribe,
            translate,
        },
        models: tm.unwrap_or_default(),
        disk,
        jobs: counts,
        last_update,
    }))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub days: u32,
}

pub async fn retention(State(st): State<AppState>, auth: Auth) -> Result<Json<Retention>> {
    auth.require_admin()?;
    let default = st.config.retention_days;
    let days = st
        .db
        .run(move |c| crate::retention::days(c, default))
        .await?;
    Ok(Json(Retention { days }))
}

pub async fn set_retention(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(r): JsonBody<Retention>,
) -> Result<Json<Retention>> {
    auth.require_admin()?;
    if !(1..=3650).contains(&r.days) {
        return Err(PortalError::BadRequest(
            "retention is 1 to 3650 days".into(),
        ));
    }
    let actor = auth.user.username.clone();
    let ip = auth.ip.clone();
    let days = r.days;
    st.db
        .run(move |c| {
            crate::retention::set_days(c, days)?;
            audit::record(
                c,
                &actor,
                "retention_changed",
                &format!("days={days}"),
                ip.as_deref(),
            )
        })
        .await?;
    st.wake.notify_one();
    Ok(Json(r))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<i64>,
}

pub async fn audit(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<audit::Entry>>> {
    auth.require_admin()?;
    Ok(Json(
        st.db
            .run(move |c| audit::list(c, q.limit.unwrap_or(100), q.before))
            .await?,
    ))
}
