use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

/// valise-update: the model updater of the Valise appliance.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "/etc/valise/valise-update.toml")]
    config: PathBuf,
    /// Override the socket path from the configuration.
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    valise_log::init("valise-update");
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "valise-update failed");
            eprintln!("valise-update: {e:#}");
            // 78 = EX_CONFIG: systemd will not restart-loop on a broken configuration.
            std::process::ExitCode::from(78)
        }
    }
}

fn engines(config: &valise_update::Config) -> Box<dyn valise_update::engines::EngineControl> {
    #[cfg(feature = "test-hooks")]
    if let Some(program) = &config.engines.test_program {
        return Box::new(valise_update::engines::ProgramEngines {
            program: program.clone(),
        });
    }
    Box::new(valise_update::engines::SystemdEngines {
        config: config.engines.clone(),
    })
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config: valise_update::Config = valise_config::load_or_default(&args.config)?;
    if let Some(s) = args.socket {
        config.socket = s;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let service = Arc::new(valise_update::Service::new(
        config.clone(),
        engines(&config),
    )?);
    // Finish what a power cut interrupted before anything else; a failure here is logged
    // and retried before the next check (the models in `current` keep serving meanwhile).
    if let Err(e) = service.recover() {
        tracing::error!(error = %e, "recovery failed; retried before the next check");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let api = valise_update::api::Api::start(service)?;
        let listener = valise_daemon::bind_socket(&config.socket)?;
        tracing::info!(socket = %config.socket.display(), "listening");
        let sched = api.clone();
        tokio::spawn(valise_update::schedule::run(
            config.clone(),
            sched.next.clone(),
            sched.reset.clone(),
            move || {
                let api = sched.clone();
                async move {
                    let _ = api.check(valise_update::source::Origin::Repository).await;
                }
            },
        ));
        let app = valise_update::api::router(api);
        valise_daemon::notify("READY=1");
        axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(valise_daemon::shutdown_signal())
            .await?;
        valise_daemon::notify("STOPPING=1");
        let _ = std::fs::remove_file(&config.socket);
        Ok(())
    })
}
