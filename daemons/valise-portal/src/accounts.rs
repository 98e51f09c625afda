//! Local accounts: argon2id passwords, sessions, API tokens.
//!
//! Session and API tokens are 256-bit random values; the database keeps only their SHA-256,
//! so a copy of the database does not let anyone sign in. Passwords are argon2id PHC strings
//! (the `argon2` crate's defaults: 19 MiB, 2 passes — OWASP's recommendation).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::now;
use crate::error::{PortalError, Result};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Bounds the work one sign-in can cost (argon2 hashes the whole password).
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login: Option<i64>,
}

pub fn check_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PortalError::BadRequest(format!(
            "a user name is 1 to {MAX_USERNAME_CHARS} letters, digits or . _ - @"
        )))
    }
}

pub fn check_password(pw: &str) -> Result<()> {
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PortalError::WeakPassword(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(PortalError::WeakPassword(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn hash_password(pw: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PortalError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PortalError::Internal(e.to_string()))
}

pub fn verify_password(pw: &str, phc: &str) -> bool {
    if pw.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash of a password nobody has, verified for unknown users so that a sign-in takes as
/// long whether or not the account exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that is never used").unwrap_or_default())
}

pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn add_user(c: &Connection, username: &str, password: &str, admin: bool) -> Result<User> {
    check_username(username)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    let r = c.execute(
        "INSERT INTO users (username, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![username, hash, admin, now()],
    );
    match r {
        Ok(_) => Ok(User {
            id: c.last_insert_rowid(),
            username: username.to_owned(),
            admin,
        }),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(PortalError::Conflict(format!(
                "a user named {username} already exists"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn set_password(c: &Connection, user_id: i64, password: &str) -> Result<()> {
    check_password(password)?;
    let hash = hash_password(password)?;
    let n = c.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, user_id],
    )?;
    if n == 0 {
        return Err(PortalError::NotFound);
    }
    // A new password ends every session of the account.
    c.execute("DELETE FROM sessions WHERE user_id = ?1", params![user_id])?;
    Ok(())
}

/// (user, password hash, disabled) by name.
pub fn credentials(c: &Connection, username: &str) -> Result<Option<(User, String, bool)>> {
    Ok(c.query_row(
        "SELECT id, username, admin, password_hash, disabled FROM users WHERE username = ?1",
        params![username],
        |r| {
            Ok((
                User {
                    id: r.get(0)?,
                    username: r.get(1)?,
                    admin: r.get(2)?,
                },
                r.get(3)?,
                r.get(4)?,
            ))
        },
    )
    .optional()?)
}

pub fn user_by_name(c: &Connection, username: &str) -> Result<User> {
    credentials(c, username)?
        .map(|(u, _, _)| u)
        .ok_or(PortalError::NotFound)
}

pub fn list_users(c: &Connection) -> Result<Vec<UserRow>> {
    let mut st = c.prepare(
        "SELECT id, username, admin, disabled, created_at, last_login FROM users ORDER BY username",
    )?;
    let rows = st.query_map([], |r| {
        Ok(UserRow {
            id: r.get(0)?,
            username: r.get(1)?,
            admin: r.get(2)?,
            disabled: r.get(3)?,
            created_at: r.get(4)?,
            last_login: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn user_row(c: &Connection, id: i64) -> Result<UserRow> {
    list_users(c)?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or(PortalError::NotFound)
}

pub fn count_admins(c: &Connection) -> Result<i64> {
    Ok(c.query_row(
        "SELECT count(*) FROM users WHERE admin = 1 AND disabled = 0",
        [],
        |r| r.get(0),
    )?)
}

/// Creates a session; returns the cookie value.
pub fn new_session(c: &Connection, user_id: i64) -> Result<String> {
    let token = new_secret();
    let t = now();
    c.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, last_seen) VALUES (?1, ?2, ?3, ?3)",
        params![token_hash(&token), user_id, t],
    )?;
    c.execute(
        "UPDATE users SET last_login = ?1 WHERE id = ?2",
        params![t, user_id],
    )?;
    Ok(token)
}

/// The user of a live session (idle and absolute lifetimes checked; disabled users have none).
pub fn session_user(
    c: &Connection,
    token: &str,
    idle_secs: i64,
    max_secs: i64,
) -> Result<Option<User>> {
    let h = token_hash(token);
    let t = now();
    let row = c
        .query_row(
            "SELECT u.id, u.username, u.admin, s.created_at, s.last_seen FROM sessions s
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1 AND u.disabled = 0",
            params![h],
            |r| {
                Ok((
                    User {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        admin: r.get(2)?,
                    },
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((user, created, seen)) = row else {
        return Ok(None);
    };
    if t - seen > idle_secs || t - created > max_secs {
        c.execute("DELETE FROM sessions WHERE token_hash = ?1", params![h])?;
        return Ok(None);
    }
    // Written at most once a minute: polling pages must not turn every read into a write.
    if t - seen >= 60 {
        c.execute(
            "UPDATE sessions SET last_seen = ?1 WHERE token_hash = ?2",
            params![t, h],
        )?;
    }
    Ok(Some(user))
}

pub fn end_session(c: &Connection, token: &str) -> Result<()> {
    c.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        params![token_hash(token)],
    )?;
    Ok(())
}

pub fn purge_sessions(c: &Connection, idle_secs: i64, max_secs: i64) -> Result<usize> {
    let t = now();
    Ok(c.execute(
        "DELETE FROM sessions WHERE last_seen < ?1 OR created_at < ?2",
        params![t - idle_secs, t - max_secs],
    )?)
}

/// Creates an API token for `user_id`; returns it (shown once, stored hashed).
pub fn new_api_token(c: &Connection, user_id: i64, label: &str) -> Result<String> {
    let token = format!("vt_{}", new_secret());
    c.execute(
        "INSERT INTO api_tokens (token_hash, user_id, label, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(&token), user_id, label, now()],
    )?;
    Ok(token)
}

pub fn api_token_user(c: &Connection, token: &str) -> Result<Option<User>> {
    let h = token_hash(token);
    let user = c
        .query_row(
            "SELECT u.id, u.username, u.admin FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND u.disabled = 0",
            params![h],
            |r| {
                Ok(User {
                    id: r.get(0)?,
                    username: r.get(1)?,
                    admin: r.get(2)?,
                })
            },
        )
        .optional()?;
    if user.is_some() {
        c.execute(
            "UPDATE api_tokens SET last_used = ?1 WHERE token_hash = ?2",
            params![now(), h],
        )?;
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut c).unwrap();
        c
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password(&"x".repeat(2000), &h));
    }

    #[test]
    fn weak_passwords_and_odd_names_are_refused() {
        let c = db();
        assert_eq!(
            add_user(&c, "alice", "short", false).unwrap_err().code(),
            "weak_password"
        );
        assert_eq!(
            add_user(&c, "a b", "long enough password", false)
                .unwrap_err()
                .code(),
            "bad_request"
        );
        add_user(&c, "alice", "long enough password", false).unwrap();
        assert_eq!(
            add_user(&c, "ALICE", "long enough password", false)
                .unwrap_err()
                .code(),
            "conflict",
            "user names are case-insensitive"
        );
    }

    #[test]
    fn sessions_and_tokens_are_stored_hashed_and_expire() {
        let c = db();
        let u = add_user(&c, "bob", "long enough password", false).unwrap();
        let s = new_session(&c, u.id).unwrap();
        let stored: String = c
            .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, s);
        assert_eq!(session_user(&c, &s, 60, 3600).unwrap(), Some(u.clone()));
        c.execute("UPDATE sessions SET last_seen = last_seen - 120", [])
            .unwrap();
        assert_eq!(
            session_user(&c, &s, 60, 3600).unwrap(),
            None,
            "idle session ended"
        );
        let t = new_api_token(&c, u.id, "script").unwrap();
        assert!(t.starts_with("vt_"));
        assert_eq!(api_token_user(&c, &t).unwrap(), Some(u.clone()));
        assert_eq!(api_token_user(&c, "vt_nope").unwrap(), None);
        c.execute("UPDATE users SET disabled = 1", []).unwrap();
        assert_eq!(
            api_token_user(&c, &t).unwrap(),
            None,
            "disabled users' tokens stop working"
        );
    }

    #[test]
    fn a_new_password_ends_all_sessions() {
        let c = db();
        let u = add_user(&c, "carol", "long enough password", false).unwrap();
        let s = new_session(&c, u.id).unwrap();
        set_password(&c, u.id, "another long password").unwrap();
        assert_eq!(session_user(&c, &s, 60, 3600).unwrap(), None);
    }
}
