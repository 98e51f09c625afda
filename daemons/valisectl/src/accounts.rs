//! `valisectl user ...` and `valisectl token ...`: local accounts of the portal, managed on
//! the box itself (the first admin is created here, never by a default password).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use valise_portal::{Db, accounts, audit};

#[derive(clap::Args, Debug)]
pub struct DataDir {
    /// The portal's data directory (holds portal.db). Default: $VALISE_DATA_DIR, else the
    /// checkout's .valise/data when run from a checkout, else /var/lib/valise-portal.
    #[arg(long, env = "VALISE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is asked for (twice), or read from standard input
    /// with --password-stdin.
    Add {
        name: String,
        /// Administrator (manages accounts and the box; does not see others' jobs).
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Check an administrator's password, read from standard input: exit status 0 only for
    /// an enabled administrator with that password (`valisectl console` asks it before
    /// showing a recovery key).
    #[command(hide = true)]
    Check {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Set a new password (ends the user's sessions and API tokens).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (it is shown only once).
    Add {
        name: String,
        /// What the token is for (shown to its user and to admins).
        #[arg(long, default_value = "valisectl")]
        label: String,
        /// Days until the token stops working (default: until revoked).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_days: Option<u32>,
        /// Admin scope: the token carries the user's admin rights (only for an admin).
        /// Without it an admin's token acts as a staff member's.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List API tokens (of one user, or of everyone): id, user, scope, created, expires,
    /// last used, label. Never the tokens themselves.
    List {
        name: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke an API token by its id (from `token list`).
    Revoke {
        id: i64,
        #[command(flatten)]
        dir: DataDir,
    },
}

fn data_dir(d: &DataDir) -> PathBuf {
    if let Some(p) = &d.data_dir {
        return p.clone();
    }
    // From a checkout (after scripts/setup), the run command's data directory.
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join(".valise").is_dir() && dir.join("Cargo.toml").is_file() {
                return dir.join(".valise/data");
            }
        }
    }
    PathBuf::from("/var/lib/valise-portal")
}

fn open(d: &DataDir) -> anyhow::Result<Db> {
    let dir = data_dir(d);
    let path = dir.join("portal.db");
    Db::open(&path).with_context(|| format!("opening {}", path.display()))
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let a = rpassword::prompt_password("New password: ")?;
    let b = rpassword::prompt_password("Again: ")?;
    if a != b {
        bail!("the two passwords differ");
    }
    Ok(a)
}

fn operator() -> String {
    format!(
        "valisectl:{}",
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "root".into())
    )
}

pub fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            admin,
            password_stdin,
            dir,
        } => {
            let db = open(&dir)?;
            let pw = read_password(password_stdin)?;
            let u = db.with(|c| {
                let u = accounts::add_user(c, &name, &pw, admin)?;
                audit::record(
                    c,
                    &operator(),
                    "user_created",
                    &format!("user={} admin={admin}", u.username),
                    None,
                )?;
                Ok(u)
            })?;
            println!(
                "created {}{}",
                u.username,
                if u.admin { " (admin)" } else { "" }
            );
        }
        UserCommand::List { dir } => {
            let db = open(&dir)?;
            for u in db.with(|c| accounts::list_users(c))? {
                println!(
                    "{}\t{}{}",
                    u.username,
                    if u.admin { "admin" } else { "staff" },
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
        }
        UserCommand::Check {
            name,
            password_stdin,
            dir,
        } => {
            let db = open(&dir)?;
            let pw = read_password(password_stdin)?;
            let found = db.with(|c| accounts::credentials(c, &name))?;
            let (admin, phc) = match found {
                Some((u, phc, disabled)) => (u.admin && !disabled, phc),
                None => (false, String::new()),
            };
            let hasher = valise_portal::hashing::Hasher::new();
            let ok = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(hasher.verify(pw, phc))
            });
            if !(ok && admin) {
                bail!("not an administrator's name and password");
            }
            println!("ok");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            dir,
        } => {
            let db = open(&dir)?;
            let pw = read_password(password_stdin)?;
            db.with(|c| {
                let u = accounts::user_by_name(c, &name)?;
                accounts::set_password(c, u.id, &pw)?;
                audit::record(
                    c,
                    &operator(),
                    "user_updated",
                    &format!("user={} password=reset", u.username),
                    None,
                )
            })?;
            println!("password changed for {name}");
        }
    }
    Ok(())
}

/// RFC 3339 (UTC) for a Unix time; `-` for none.
fn when(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Add {
            name,
            label,
            expires_days,
            admin,
            dir,
        } => {
            let db = open(&dir)?;
            let t = db.with(|c| {
                let u = accounts::user_by_name(c, &name)?;
                if admin && !u.admin {
                    return Err(valise_portal::PortalError::BadRequest(format!(
                        "{} is not an admin: no admin scope",
                        u.username
                    )));
                }
                let new = accounts::NewToken {
                    label: label.clone(),
                    expires_days,
                    admin,
                };
                let (row, t) = accounts::create_api_token(c, u.id, &new)?;
                let mut detail = format!("user={} token={}", u.username, row.id);
                if admin {
                    detail.push_str(" admin=true");
                }
                if let Some(e) = row.expires_at {
                    detail.push_str(&format!(" expires_at={e}"));
                }
                audit::record(c, &operator(), "token_created", &detail, None)?;
                Ok(t)
            })?;
            println!("{t}");
        }
        TokenCommand::List { name, dir } => {
            let db = open(&dir)?;
            let rows = db.with(|c| {
                let uid = match &name {
                    Some(n) => Some(accounts::user_by_name(c, n)?.id),
                    None => None,
                };
                accounts::list_api_tokens(c, uid)
            })?;
            println!("id\tuser\tscope\tcreated\texpires\tlast_used\tlabel");
            for t in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.username,
                    if t.admin { "admin" } else { "user" },
                    when(Some(t.created_at)),
                    when(t.expires_at),
                    when(t.last_used),
                    t.label
                );
            }
        }
        TokenCommand::Revoke { id, dir } => {
            let db = open(&dir)?;
            let row = db.with(|c| {
                let row = accounts::revoke_api_token(c, id, None)?;
                audit::record(
                    c,
                    &operator(),
                    "token_revoked",
                    &format!("user={} token={}", row.username, row.id),
                    None,
                )?;
                Ok(row)
            })?;
            println!("revoked token {} of {}", row.id, row.username);
        }
    }
    Ok(())
}
