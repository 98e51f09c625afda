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

/// How long whisper.cpp's OpenMP threads spin at each step of the model before they sleep
/// (libgomp's `GOMP_SPINCOUNT`, read once when libgomp is loaded, before `main`). ggml's own
/// pool only spins: on a busy box the waiting thread burns the time slice of the one it waits
/// for. Sleeping at once (`OMP_WAIT_POLICY=passive`) costs a wake-up per step when the box is
/// quiet; a short spin of 300 rounds (a few microseconds) is as good as passive under load and
/// 1.2-1.4x faster when quiet; 1,000 and more lose under load (tests/bench-transcribe/README.md,
/// "Long recordings").
const GOMP_SPINCOUNT: &str = "300";

fn main() -> std::process::ExitCode {
    ensure_omp_waits();
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

/// The unit sets `GOMP_SPINCOUNT`; started any other way (scripts/run, the tests, a Jetson
/// unit someone edited), the engine starts itself again with it, as libgomp only reads it at
/// load time. An explicit spin count or wait policy (to measure another) is left alone.
fn ensure_omp_waits() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GOMP_SPINCOUNT").is_some() || std::env::var_os("OMP_WAIT_POLICY").is_some()
    {
        return;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "valise-transcribe".into());
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        .exec();
    // Only reached if the exec failed: run as we are, slower on a busy box.
    eprintln!("valise-transcribe: could not restart with GOMP_SPINCOUNT={GOMP_SPINCOUNT}: {err}");
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
