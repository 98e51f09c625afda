use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// valise-translate: the text-translation engine of the Valise appliance.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "/etc/valise/valise-translate.toml")]
    config: PathBuf,
    /// Override the socket path from the configuration.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Override the model store root.
    #[arg(long)]
    model_store: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    valise_log::init("valise-translate");
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "valise-translate failed");
            eprintln!("valise-translate: {e:#}");
            // 78 = EX_CONFIG: systemd will not restart-loop on a broken configuration.
            std::process::ExitCode::from(78)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config: valise_translate::Config = valise_config::load_or_default(&args.config)?;
    if let Some(s) = args.socket {
        config.socket = s;
    }
    if let Some(s) = args.model_store {
        config.model_store = Some(s);
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let engine = Arc::new(valise_translate::Engine::load(&config)?);
    let socket = config.socket.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = valise_translate::bind(&socket)?;
        tracing::info!(socket = %socket.display(), "listening");
        valise_translate::run(engine, listener, valise_daemon::shutdown_signal()).await?;
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}
