//! `valise-load-portal`: the load test against a running portal (see `scripts/load-portal`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Load test of a running Valise portal over loopback HTTPS")]
struct Args {
    /// The portal, e.g. https://127.0.0.1:8443
    #[arg(long)]
    url: String,
    /// The portal's data directory (its database: test accounts are created there, and the
    /// final state of every job is read from it).
    #[arg(long)]
    data_dir: PathBuf,
    /// Its certificate (PEM); default DATA_DIR/tls/cert.pem.
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    users: usize,
    #[arg(long, default_value_t = 5)]
    uploads: usize,
    #[arg(long, default_value_t = 60)]
    secs: u64,
    #[arg(long, default_value_t = 10)]
    ramp_secs: u64,
    #[arg(long, default_value_t = 10_000)]
    max_rounds: usize,
    /// The recording the uploaders send.
    #[arg(long)]
    recording: PathBuf,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let cert = a.cert.unwrap_or_else(|| a.data_dir.join("tls/cert.pem"));
    let db_path = a.data_dir.join("portal.db");
    let users = valise_load_portal::create_users(&db_path, a.users)?;
    let plan = valise_load_portal::Plan {
        url: a.url.trim_end_matches('/').to_owned(),
        cert_pem: std::fs::read(&cert)?,
        users,
        uploads: a.uploads,
        recording: std::fs::read(&a.recording)?,
        duration: Duration::from_secs(a.secs),
        max_rounds: a.max_rounds,
        ramp: Duration::from_secs(a.ramp_secs),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let db = valise_portal::Db::open(&db_path)?;
    let report = rt.block_on(valise_load_portal::run(plan, |id| {
        valise_load_portal::db_job_state(&db, id)
    }))?;
    report.print();
    if let Some(p) = a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)?;
    }
    if !report.passed() {
        anyhow::bail!("the load test missed its target (see above)");
    }
    Ok(())
}
