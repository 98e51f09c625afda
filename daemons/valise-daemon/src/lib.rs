//! What every Valise daemon does the same way around its own work: bind its Unix socket,
//! tell systemd it is ready (`Type=notify`), and stop on SIGTERM or Ctrl-C.

mod notify;
mod stop;

use std::path::Path;

pub use notify::notify;
pub use stop::{STOP_GRACE, wait_drained};

/// Binds an API socket: a stale socket file is replaced; the socket is group-accessible
/// (`0660`) so that only the portal's group (and root) can talk to the engine.
pub fn bind_socket(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Resolves on SIGTERM (systemd stopping the unit) or Ctrl-C (a developer's terminal).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
