use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// valise-transcribe: the speech-to-text engine of the Valise appliance.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "/etc/valise/valise-transcribe.toml")]
    config: PathBuf,
    /// Override the socket path from the configuration.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Override the spool directory from the configuration.
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Override the model store root.
    #[arg(long)]
    model_store: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    valise_transcribe::omp::ensure_waits();
    valise_log::init("valise-transcribe");
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "valise-transcribe failed");
            eprintln!("valise-transcribe: {e:#}");
            // 78 = EX_CONFIG: systemd will not restart-loop on a broken configuration.
            std::process::ExitCode::from(78)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config: valise_transcribe::Config = valise_config::load_or_default(&args.config)?;
    if let Some(s) = args.socket {
        config.socket = s;
    }
    if let Some(s) = args.spool_dir {
        config.spool_dir = s;
    }
    if let Some(s) = args.model_store {
        config.model_store = Some(s);
    }
    config.validate().map_err(anyhow::Error::msg)?;
    tracing::info!(
        gomp_spincount = std::env::var("GOMP_SPINCOUNT").unwrap_or_default(),
        omp_wait_policy = std::env::var("OMP_WAIT_POLICY").unwrap_or_default(),
        "starting"
    );
    let engine = Arc::new(valise_transcribe::Engine::load(&config)?);
    let socket = config.socket.clone();
    let service = valise_transcribe::Service::new(engine, config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = valise_transcribe::bind(&socket)?;
        tracing::info!(socket = %socket.display(), "listening");
        valise_transcribe::run(service, listener, valise_daemon::shutdown_signal()).await?;
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}
