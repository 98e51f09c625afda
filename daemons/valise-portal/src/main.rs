use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// valise-portal: the web portal and API of the Valise appliance (HTTPS on the LAN).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = "/etc/valise/valise-portal.toml")]
    config: PathBuf,
    /// HTTPS address (overrides the configuration).
    #[arg(long, env = "VALISE_PORTAL_ADDR")]
    addr: Option<SocketAddr>,
    /// Plain-HTTP redirect address; `none` for no redirect listener.
    #[arg(long)]
    redirect_addr: Option<String>,
    /// Data directory: database and jobs (overrides the configuration).
    #[arg(long, env = "VALISE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    transcribe_socket: Option<PathBuf>,
    #[arg(long)]
    translate_socket: Option<PathBuf>,
    /// Generate a self-signed certificate under the data directory when none is configured
    /// (first runs and tests; a post installs its own).
    #[arg(long)]
    dev_cert: bool,
    /// Largest recording accepted, e.g. `500 MiB` (overrides the configuration).
    #[arg(long)]
    max_upload_bytes: Option<valise_config::ByteSize>,
}

fn main() -> std::process::ExitCode {
    // Everything the portal creates is owner-only, whoever started it (a root shell's 022
    // made first-run files world-readable); the storage code sets modes explicitly too.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    valise_log::init("valise-portal");
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "valise-portal failed");
            eprintln!("valise-portal: {e:#}");
            // 78 = EX_CONFIG: systemd will not restart-loop on a broken configuration.
            std::process::ExitCode::from(78)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config: valise_portal::Config = valise_config::load_or_default(&args.config)?;
    if let Some(a) = args.addr {
        config.addr = a;
    }
    match args.redirect_addr.as_deref() {
        Some("none") => config.redirect_addr = None,
        Some(a) => config.redirect_addr = Some(a.parse()?),
        None => {}
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(s) = args.transcribe_socket {
        config.engines.transcribe_socket = s;
    }
    if let Some(s) = args.translate_socket {
        config.engines.translate_socket = s;
    }
    if let Some(m) = args.max_upload_bytes {
        config.limits.max_upload = m;
    }
    if args.dev_cert {
        config.tls.cert = config.data_dir.join("tls/cert.pem");
        config.tls.key = config.data_dir.join("tls/key.pem");
        valise_portal::server::ensure_dev_cert(
            &config.tls.cert,
            &config.tls.key,
            &valise_portal::server::local_names(config.addr),
        )?;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let redirect = match config.redirect_addr {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
            None => None,
        };
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, "listening");
        eprintln!("valise-portal: listening on https://{local}");
        valise_portal::run(config, listener, redirect, valise_daemon::shutdown_signal()).await
    })
}
