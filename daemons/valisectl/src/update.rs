//! `valisectl update check|status|apply DIR`: the model updater (valise-update) through its
//! socket. The daemon does the work (the same verification online and from a USB copy); this
//! is what a person types and reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use valise_engine_client::UnixHttp;
use valise_update::api::Status;
use valise_update::history::{CheckRecord, Outcome};

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The updater's socket.
    #[arg(
        long,
        env = "VALISE_UPDATE_SOCKET",
        default_value = "/run/valise-update/update.sock",
        global = true
    )]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: UpdateCommand,
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Check the central repository now (waits for the check, and any install, to end).
    Check,
    /// Installed bundles and versions, the last check and its result, the next check, history.
    Status {
        /// The daemon's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Apply a copy of the repository (a USB stick: DIR/metadata, DIR/targets), with exactly
    /// the verification of an online check.
    Apply {
        /// The copy's directory.
        dir: PathBuf,
    },
}

/// One request to the updater (the engines' transport, `UnixHttp::send_raw`); its answer's
/// body, or an error with what it said.
async fn call(socket: &Path, method: hyper::Method, path: &str, body: Vec<u8>) -> Result<Vec<u8>> {
    let (status, body) = UnixHttp::new(socket, "valise-update")
        .send_raw(method, path, body)
        .await
        .with_context(|| format!("is valise-update running? ({})", socket.display()))?;
    if !status.is_success() {
        bail!(
            "valise-update answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body.to_vec())
}

fn date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::UpToDate => "up to date",
        Outcome::Installed => "installed",
        Outcome::RolledBack => "rolled back",
        Outcome::Failed => "failed",
    }
}

/// Prints a check's result; an error (exit status 1) when nothing new could be installed
/// because something failed or was rolled back.
fn report(rec: &CheckRecord) -> Result<()> {
    println!("{}: {}", outcome(&rec.outcome), rec.reason);
    match rec.outcome {
        Outcome::UpToDate | Outcome::Installed => Ok(()),
        Outcome::RolledBack | Outcome::Failed => bail!("the update did not install"),
    }
}

/// The status as a person reads it.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let installed: Vec<String> = s
        .installed
        .iter()
        .map(|(id, v)| format!("{id} {v}"))
        .collect();
    out.push_str(&format!(
        "installed:   {} (slot {})\n",
        if installed.is_empty() {
            "no bundle (factory models)".to_owned()
        } else {
            installed.join(", ")
        },
        s.current_slot.as_deref().unwrap_or("?")
    ));
    match &s.state.last_check {
        Some(c) => out.push_str(&format!(
            "last check:  {} from {}: {}: {}\n",
            date(c.at),
            c.source,
            outcome(&c.outcome),
            c.reason
        )),
        None => out.push_str("last check:  never\n"),
    }
    match s.state.last_update {
        Some(t) => out.push_str(&format!("last update: {}\n", date(t))),
        None => out.push_str("last update: never\n"),
    }
    if s.checking {
        out.push_str("next check:  running now\n");
    } else {
        match s.next_check {
            Some(t) => out.push_str(&format!("next check:  {}\n", date(t))),
            None => out.push_str("next check:  not planned\n"),
        }
    }
    let floor = s.time_floor.map(date).unwrap_or_else(|| "?".into());
    out.push_str(&match s.clock.as_str() {
        "behind_floor" => {
            format!("clock:       behind the last successful check ({floor}); that time is used\n")
        }
        c => format!("clock:       {c} (no metadata valid before {floor})\n"),
    });
    let phase = serde_json::to_value(&s.phase)
        .ok()
        .and_then(|v| v.get("phase").and_then(|p| p.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if phase != "idle" {
        out.push_str(&format!("in progress: {phase}\n"));
    }
    for (id, rs) in &s.state.refused {
        for r in rs {
            out.push_str(&format!("refused:     {id} {}: {}\n", r.version, r.reason));
        }
    }
    if !s.state.history.is_empty() {
        out.push_str("history:\n");
        for e in s.state.history.iter().rev().take(10) {
            out.push_str(&format!(
                "  {} {} {} {}: {}\n",
                date(e.at),
                outcome(&e.outcome),
                e.bundle,
                e.version,
                e.reason
            ));
        }
    }
    out
}

pub async fn run(a: UpdateArgs) -> Result<()> {
    match a.command {
        UpdateCommand::Check => {
            let b = call(&a.socket, hyper::Method::POST, "/check", Vec::new()).await?;
            report(&serde_json::from_slice(&b).context("valise-update's answer")?)
        }
        UpdateCommand::Apply { dir } => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("{}", dir.display()))?;
            let body = serde_json::to_vec(&serde_json::json!({ "dir": dir }))?;
            let b = call(&a.socket, hyper::Method::POST, "/apply", body).await?;
            report(&serde_json::from_slice(&b).context("valise-update's answer")?)
        }
        UpdateCommand::Status { json } => {
            let b = call(&a.socket, hyper::Method::GET, "/status", Vec::new()).await?;
            if json {
                println!("{}", String::from_utf8_lossy(&b));
                return Ok(());
            }
            let s: Status = serde_json::from_slice(&b).context("valise-update's answer")?;
            print!("{}", render(&s));
            Ok(())
        }
    }
}
