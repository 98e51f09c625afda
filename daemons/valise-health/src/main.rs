use std::path::PathBuf;

use clap::Parser;

/// valise-health: reports the box's status, health and events to the central MQTT broker.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "/etc/valise/valise-health.toml")]
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    valise_log::init("valise-health");
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "valise-health failed");
            eprintln!("valise-health: {e:#}");
            // 78 = EX_CONFIG: systemd will not restart-loop on a broken configuration.
            std::process::ExitCode::from(78)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: valise_health::Config = valise_config::load_or_default(&args.config)?;
    config.validate().map_err(anyhow::Error::msg)?;
    // One worker: the daemon waits on the network and on small reads; it must stay cheap.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(valise_health::run(config, valise_daemon::shutdown_signal()))?;
    Ok(())
}
