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
    /// Set a new password (ends the user's sessions).
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
        /// What the token is for (shown to admins).
        #[arg(long, default_value = "valisectl")]
        label: String,
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

pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Add { name, label, dir } => {
            let db = open(&dir)?;
            let t = db.with(|c| {
                let u = accounts::user_by_name(c, &name)?;
                let t = accounts::new_api_token(c, u.id, &label)?;
                audit::record(
                    c,
                    &operator(),
                    "token_created",
                    &format!("user={}", u.username),
                    None,
                )?;
                Ok(t)
            })?;
            println!("{t}");
        }
    }
    Ok(())
}
