//! `valise-tuf-client`: the client-under-test of the TUF conformance suite
//! (theupdateframework/tuf-conformance, `CLIENT-CLI.md`), running valise-tuf's verification
//! (the code valise-update runs) over plain HTTP:
//!
//! ```text
//! valise-tuf-client --metadata-dir DIR init TRUSTED_ROOT
//! valise-tuf-client --metadata-dir DIR --metadata-url URL refresh
//! valise-tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH \
//!     [--target-name PATH ...] --target-base-url URL --target-dir DIR download
//! ```
//!
//! Options come before the subcommand, in any order. Exit 0 on success, 1 on any failure
//! (usage errors included). Repeated `--target-name`s are downloaded in argument order by
//! one updater after one refresh (one trusted set), stopping at the first that fails.
//! Trusted metadata stay in DIR under non-versioned names
//! (`root.json`, `timestamp.json`, ..., `<percent-encoded role>.json`); a target is written
//! to TARGET_DIR under its percent-encoded name, and not fetched again when the file there
//! already has its length and hashes. Requests are made one after the other (the suite's
//! server answers one at a time). The reference time is the clock (the suite shifts it with
//! `faketime`); valise-update's time floor is not used here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use valise_tuf::TrustedSet;
use valise_tuf::fetch::http::{HttpFetch, HttpLimits};
use valise_tuf::names;
use valise_tuf::store::MetadataStore;
use valise_tuf::updater::Updater;

#[derive(Debug, Parser)]
#[command(
    name = "valise-tuf-client",
    about = "TUF conformance client on valise-tuf"
)]
struct Cli {
    /// Directory of trusted metadata.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable: downloaded in this order).
    #[arg(long)]
    target_name: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Directory the target is written to.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trust TRUSTED_ROOT: copied to METADATA_DIR/root.json, no network.
    Init { trusted_root: PathBuf },
    /// Refresh the top-level metadata.
    Refresh,
    /// Refresh, find the target (delegations searched lazily), download it unless cached.
    Download,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store = MetadataStore::open(&cli.metadata_dir)
        .with_context(|| format!("{}", cli.metadata_dir.display()))?;
    let need = |o: &Option<String>, what: &str| {
        o.clone()
            .with_context(|| format!("--{what} is required for this command"))
    };
    match cli.command {
        Command::Init { trusted_root } => {
            let root = std::fs::read(&trusted_root)
                .with_context(|| format!("{}", trusted_root.display()))?;
            store.write("root", &root)?;
        }
        Command::Refresh => {
            let url = need(&cli.metadata_url, "metadata-url")?;
            let fetch = HttpFetch::plain_http(&url, &url, HttpLimits::default())?;
            Updater::new(fetch, store).refresh(OffsetDateTime::now_utc())?;
        }
        Command::Download => {
            let url = need(&cli.metadata_url, "metadata-url")?;
            if cli.target_name.is_empty() {
                bail!("--target-name is required for this command");
            }
            let base = need(&cli.target_base_url, "target-base-url")?;
            let dir = cli.target_dir.context("--target-dir is required")?;
            let fetch = HttpFetch::plain_http(&url, &base, HttpLimits::default())?;
            let updater = Updater::new(fetch, store);
            let mut set = updater.refresh(OffsetDateTime::now_utc())?;
            for name in &cli.target_name {
                download(&updater, &mut set, name, &dir)?;
            }
        }
    }
    Ok(())
}

/// One target of `download`: searched in `set` (delegated roles loaded so far stay
/// trusted for the next name, each checked again against the delegator it is reached
/// through), written to `dir` unless already there with its length and hashes.
fn download(
    updater: &Updater<HttpFetch>,
    set: &mut TrustedSet,
    name: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let Some(target) = updater.find_target(set, name)? else {
        bail!("{name}: not found in the repository");
    };
    std::fs::create_dir_all(dir)?;
    let dest = dir.join(names::target_file(name)?);
    if !Updater::<HttpFetch>::cached_target(&target, &dest) {
        let r = updater.download_target(&target, &dest);
        if r.is_err() {
            // The suite counts every file in TARGET_DIR as a download: no resume
            // across runs here, so no `.part` left behind.
            let mut part = dest.clone().into_os_string();
            part.push(".part");
            let _ = std::fs::remove_file(part);
        }
        r.with_context(|| name.to_owned())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valise-tuf-client: {e:#}");
            ExitCode::from(1)
        }
    }
}
