//! Local accounts: argon2id passwords, sessions, API tokens.
//!
//! Session and API tokens are 256-bit random values; the database keeps only their SHA-256,
//! so a copy of the database does not let anyone sign in. Passwords are argon2id PHC strings
//! (the `argon2` crate's defaults: 19 MiB, 2 passes — OWASP's recommendation).

use std::net::IpAddr;

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

/// Lowest zxcvbn score accepted (3: "safely unguessable: moderate protection from offline
/// slow-hash scenario", about 10^8 guesses or more).
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// Length bounds, then guessability (ASVS 2.1.7): zxcvbn estimates the guesses needed
/// against lists of common passwords, words, names, keyboard patterns, repeats and
/// sequences, and against the user name itself (`alice2024alice!` for alice is weak).
pub fn check_password(pw: &str, username: &str) -> Result<()> {
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
    // zxcvbn itself looks at the first 100 characters only (its cost grows with length).
    let inputs = [username, "valise"];
    if u8::from(zxcvbn::zxcvbn(pw, &inputs).score()) < MIN_PASSWORD_SCORE {
        return Err(PortalError::WeakPassword(
            "this password is too easy to guess (a common password, a word, a pattern or the \
             user name); use a few unrelated words"
                .into(),
        ));
    }
    Ok(())
}

/// An argon2id PHC string for `pw` (the CLI's path; the portal hashes on its pool, with the
/// same code and its reused memory).
pub fn hash_password(pw: &str) -> Result<String> {
    crate::hashing::hash_with(&mut Vec::new(), pw)
}

pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks and hashes on the calling thread, then inserts (the CLI, tests); the portal hashes
/// on its pool first and calls [`insert_user`].
pub fn add_user(c: &Connection, username: &str, password: &str, admin: bool) -> Result<User> {
    check_username(username)?;
    check_password(password, username)?;
    let hash = hash_password(password)?;
    insert_user(c, username, &hash, admin)
}

/// Inserts an account whose password was checked and hashed already.
pub fn insert_user(c: &Connection, username: &str, hash: &str, admin: bool) -> Result<User> {
    check_username(username)?;
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

/// Checks and hashes on the calling thread, then [`replace_password`] (the CLI, tests).
pub fn set_password(c: &Connection, user_id: i64, password: &str) -> Result<()> {
    let name = user_row(c, user_id)?.username;
    check_password(password, &name)?;
    let hash = hash_password(password)?;
    replace_password(c, user_id, &hash, None)
}

/// Stores a checked and hashed password. A new password ends every API token and every
/// session of the account but `keep` (the session of a user changing their own password).
pub fn replace_password(
    c: &Connection,
    user_id: i64,
    hash: &str,
    keep: Option<&str>,
) -> Result<()> {
    let n = c.execute(
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, user_id],
    )?;
    if n == 0 {
        return Err(PortalError::NotFound);
    }
    let keep = keep.map(token_hash).unwrap_or_default();
    c.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash != ?2",
        params![user_id, keep],
    )?;
    c.execute(
        "DELETE FROM api_tokens WHERE user_id = ?1",
        params![user_id],
    )?;
    Ok(())
}

/// Ends every session and API token of an account (disabled accounts keep none).
pub fn end_access(c: &Connection, user_id: i64) -> Result<()> {
    c.execute("DELETE FROM sessions WHERE user_id = ?1", params![user_id])?;
    c.execute(
        "DELETE FROM api_tokens WHERE user_id = ?1",
        params![user_id],
    )?;
    Ok(())
}

/// Whether `ip` signed in to `username` successfully in the last `days` days (from the
/// audit log's `login` entries; IPv6 compared by /64 as the throttle counts them).
pub fn usual_address(c: &Connection, username: &str, ip: IpAddr, days: i64) -> Result<bool> {
    let mut st = c.prepare(
        "SELECT DISTINCT ip FROM audit WHERE action = 'login' AND actor = ?1 COLLATE NOCASE
         AND at >= ?2 AND ip IS NOT NULL",
    )?;
    let net = crate::throttle::network(ip);
    let found = st
        .query_map(params![username, now() - days * 86_400], |r| {
            r.get::<_, String>(0)
        })?
        .filter_map(|r| r.ok())
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .any(|a| crate::throttle::network(a) == net);
    Ok(found)
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

/// An API token as listed (never the token itself: only its hash is stored).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub username: String,
    pub label: String,
    /// Carries its user's admin rights (only an admin's token created with the admin scope).
    pub admin: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used: Option<i64>,
}

/// What a new API token is for.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub label: String,
    /// Days until it stops working; none: until revoked.
    pub expires_days: Option<u32>,
    /// Admin scope (refused for a user who is not an admin).
    pub admin: bool,
}

pub const MAX_TOKEN_DAYS: u32 = 3650;
const MAX_LABEL_CHARS: usize = 100;

/// Creates an API token for `user_id` with no expiry and no admin scope; returns it (shown
/// once, stored hashed).
pub fn new_api_token(c: &Connection, user_id: i64, label: &str) -> Result<String> {
    let t = NewToken {
        label: label.to_owned(),
        ..NewToken::default()
    };
    create_api_token(c, user_id, &t).map(|(_, token)| token)
}

/// Creates an API token; returns its row and the token (shown once, stored hashed).
pub fn create_api_token(c: &Connection, user_id: i64, t: &NewToken) -> Result<(TokenRow, String)> {
    let label = t.label.trim();
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(PortalError::BadRequest(format!(
            "a token label has at most {MAX_LABEL_CHARS} characters and no control characters"
        )));
    }
    if t.expires_days
        .is_some_and(|d| !(1..=MAX_TOKEN_DAYS).contains(&d))
    {
        return Err(PortalError::BadRequest(format!(
            "a token expires in 1 to {MAX_TOKEN_DAYS} days"
        )));
    }
    let user = user_row(c, user_id)?;
    if t.admin && !user.admin {
        return Err(PortalError::Forbidden);
    }
    let token = format!("vt_{}", new_secret());
    let created = now();
    let expires = t.expires_days.map(|d| created + i64::from(d) * 86_400);
    c.execute(
        "INSERT INTO api_tokens (token_hash, user_id, label, created_at, expires_at, admin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token_hash(&token),
            user_id,
            label,
            created,
            expires,
            t.admin
        ],
    )?;
    let row = TokenRow {
        id: c.last_insert_rowid(),
        username: user.username,
        label: label.to_owned(),
        admin: t.admin,
        created_at: created,
        expires_at: expires,
        last_used: None,
    };
    Ok((row, token))
}

/// Tokens of one user, or of everyone; newest first. Expired ones are listed until revoked.
pub fn list_api_tokens(c: &Connection, user_id: Option<i64>) -> Result<Vec<TokenRow>> {
    let mut st = c.prepare(
        "SELECT t.id, u.username, t.label, t.admin, t.created_at, t.expires_at, t.last_used
         FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.id DESC",
    )?;
    let rows = st.query_map(params![user_id], |r| {
        Ok(TokenRow {
            id: r.get(0)?,
            username: r.get(1)?,
            label: r.get(2)?,
            admin: r.get(3)?,
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
            last_used: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes token `id` (of `user_id` only, when given); returns its row.
pub fn revoke_api_token(c: &Connection, id: i64, user_id: Option<i64>) -> Result<TokenRow> {
    let row = list_api_tokens(c, user_id)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(PortalError::NotFound)?;
    c.execute("DELETE FROM api_tokens WHERE id = ?1", params![id])?;
    Ok(row)
}

/// The user of a live API token: not expired, user not disabled; admin only if both the
/// user and the token's scope are.
pub fn api_token_user(c: &Connection, token: &str) -> Result<Option<User>> {
    let h = token_hash(token);
    let t = now();
    let user = c
        .query_row(
            "SELECT u.id, u.username, u.admin AND t.admin FROM api_tokens t
             JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND u.disabled = 0 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![h, t],
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
        // Written at most once a minute, like sessions' last_seen.
        c.execute(
            "UPDATE api_tokens SET last_used = ?1 WHERE token_hash = ?2
             AND (last_used IS NULL OR last_used <= ?1 - 60)",
            params![t, h],
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
        let verify = |pw: &str| crate::hashing::verify_with(&mut Vec::new(), pw, &h);
        assert!(verify("correct horse battery"));
        assert!(!verify("correct horse batterY"));
        assert!(!verify(&"x".repeat(2000)));
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
    fn guessable_passwords_are_refused() {
        for (pw, user) in [
            ("aaaaaaaaaaaa", "alice"),
            ("password1234", "alice"),
            ("qwertyuiop123", "alice"),
            ("alice.dupont1984", "alice.dupont"),
        ] {
            assert_eq!(
                check_password(pw, user).map_err(|e| e.code().to_owned()),
                Err("weak_password".into()),
                "{pw} for {user}"
            );
        }
        for pw in [
            "correct horse battery",
            "long enough password",
            "another long password",
            "load test password 1234",
            "a long enough passphrase 42",
            "another long passphrase 7",
        ] {
            check_password(pw, "alice").unwrap_or_else(|e| panic!("{pw}: {e}"));
        }
        let c = db();
        for pw in ["aaaaaaaaaaaa", "password1234"] {
            assert_eq!(
                add_user(&c, "bob", pw, false).unwrap_err().code(),
                "weak_password"
            );
        }
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
    fn a_new_password_ends_all_sessions_and_tokens_but_the_kept_one() {
        let c = db();
        let u = add_user(&c, "carol", "long enough password", false).unwrap();
        let s = new_session(&c, u.id).unwrap();
        let t = new_api_token(&c, u.id, "script").unwrap();
        set_password(&c, u.id, "another long password").unwrap();
        assert_eq!(session_user(&c, &s, 60, 3600).unwrap(), None);
        assert_eq!(api_token_user(&c, &t).unwrap(), None);
        let mine = new_session(&c, u.id).unwrap();
        let other = new_session(&c, u.id).unwrap();
        let h = hash_password("a third long password").unwrap();
        replace_password(&c, u.id, &h, Some(&mine)).unwrap();
        assert!(session_user(&c, &mine, 60, 3600).unwrap().is_some());
        assert_eq!(session_user(&c, &other, 60, 3600).unwrap(), None);
    }

    #[test]
    fn tokens_expire_and_carry_admin_rights_only_with_the_admin_scope() {
        let c = db();
        let admin = add_user(&c, "root", "long enough password", true).unwrap();
        let staff = add_user(&c, "dan", "long enough password", false).unwrap();
        let plain = new_api_token(&c, admin.id, "plain").unwrap();
        assert!(!api_token_user(&c, &plain).unwrap().unwrap().admin);
        let scoped = NewToken {
            label: "admin script".into(),
            expires_days: Some(1),
            admin: true,
        };
        let (row, t) = create_api_token(&c, admin.id, &scoped).unwrap();
        assert!(row.admin && row.expires_at.is_some());
        assert!(api_token_user(&c, &t).unwrap().unwrap().admin);
        assert_eq!(
            create_api_token(&c, staff.id, &scoped).unwrap_err().code(),
            "forbidden",
            "no admin scope for a non-admin"
        );
        c.execute(
            "UPDATE api_tokens SET expires_at = ?1 WHERE id = ?2",
            params![now() - 1, row.id],
        )
        .unwrap();
        assert_eq!(api_token_user(&c, &t).unwrap(), None, "expired");
        assert_eq!(list_api_tokens(&c, Some(admin.id)).unwrap().len(), 2);
        revoke_api_token(&c, row.id, Some(staff.id)).unwrap_err();
        revoke_api_token(&c, row.id, Some(admin.id)).unwrap();
        assert_eq!(list_api_tokens(&c, None).unwrap().len(), 1);
    }
}
