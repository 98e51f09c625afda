//! Restarting engine units through systemd's D-Bus API (DESIGN.md §5.3).
//!
//! [`SystemdUnits`] talks to `org.freedesktop.systemd1.Manager` on the system bus (or a bus
//! address given for tests) with zbus: it calls `Subscribe()` once when it connects (systemd
//! emits job signals only to subscribed clients), and for each restart it starts listening to
//! `JobRemoved` **before** it calls `RestartUnit(unit, "replace")`, then waits for the signal
//! that carries the job path systemd returned. The job's result is systemd's: `done` means the
//! unit started again (the engines are `Type=notify`, so `done` comes after their `READY=1`);
//! anything else (`failed`, `timeout`, `canceled`, `dependency`, `skipped`) is an error naming
//! it. Authorization is polkit's (`systemd/50-valise-update.rules`: user `valise-update` may
//! only restart the two engine units).
//!
//! [`restart_engines`] restarts each engine's unit and then waits until the engine answers its
//! health request on its socket, all within one deadline: an engine that does not come back
//! is the updater's signal to roll back.
//!
//! [`UnitManager`] is dyn-compatible (its method returns a boxed future), so the updater can
//! hold a `Box<dyn UnitManager>` / `&dyn UnitManager` and its tests can pass their own.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use valise_bundle::Engine;
use valise_engine_client::{TranscribeClient, TranslateClient};
use valise_systemd::ManagerProxy;

use crate::acceptance::EngineSockets;

/// How long [`SystemdUnits`] waits for a restart job by default: systemd's default
/// `TimeoutStopSec` (90 s) plus the engines' `TimeoutStartSec` (120 s), and some margin.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(240);

/// How often [`restart_engines`] asks a restarted engine whether it serves.
const HEALTH_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("cannot talk to systemd over D-Bus: {0}")]
    Bus(String),
    /// systemd (or polkit, or the bus) refused the call; `name` is the D-Bus error name
    /// (`org.freedesktop.DBus.Error.AccessDenied`, `org.freedesktop.systemd1.NoSuchUnit`, ...).
    #[error("systemd refused to restart {unit}: {name}: {message}")]
    Refused {
        unit: String,
        name: String,
        message: String,
    },
    /// systemd's job ended with a result other than `done`.
    #[error("restarting {unit}: systemd's job ended {result:?}")]
    JobFailed { unit: String, result: String },
    #[error("restarting {unit}: no result from systemd within {secs} s")]
    Timeout { unit: String, secs: u64 },
    /// The unit restarted, but the engine did not answer its health request in time.
    #[error("{unit} restarted but the engine did not serve on {} within the deadline: {last}", .socket.display())]
    NotServing {
        unit: String,
        socket: PathBuf,
        last: String,
    },
}

/// Restarts systemd units.
pub trait UnitManager: Send + Sync {
    /// Restarts `unit` (`RestartUnit(unit, "replace")`) and waits for systemd's job: `Ok` when
    /// it ended `done`, [`UnitError::JobFailed`] with systemd's result otherwise.
    fn restart<'a>(
        &'a self,
        unit: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), UnitError>> + Send + 'a>>;
}

/// [`UnitManager`] over systemd's D-Bus API.
#[derive(Debug, Clone)]
pub struct SystemdUnits {
    manager: ManagerProxy<'static>,
    job_timeout: Duration,
}

fn bus_error(e: zbus::Error) -> UnitError {
    UnitError::Bus(e.to_string())
}

impl SystemdUnits {
    /// Connects to the system bus (`None`), or to the bus at `address` (tests: a private
    /// `dbus-daemon`), and subscribes to systemd's job signals.
    pub async fn connect(address: Option<&str>) -> Result<Self, UnitError> {
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        };
        let conn = builder.build().await.map_err(bus_error)?;
        let manager = ManagerProxy::new(&conn).await.map_err(bus_error)?;
        manager.subscribe().await.map_err(bus_error)?;
        Ok(Self {
            manager,
            job_timeout: DEFAULT_JOB_TIMEOUT,
        })
    }

    /// Waits at most `limit` for each restart job (default [`DEFAULT_JOB_TIMEOUT`]).
    pub fn with_job_timeout(mut self, limit: Duration) -> Self {
        self.job_timeout = limit;
        self
    }

    async fn restart_unit(&self, unit: &str) -> Result<(), UnitError> {
        // Listening first: the job can end before RestartUnit's reply is read.
        let mut removed = self
            .manager
            .receive_job_removed()
            .await
            .map_err(bus_error)?;
        let job = self
            .manager
            .restart_unit(unit, "replace")
            .await
            .map_err(|e| match e {
                zbus::Error::MethodError(name, message, _) => UnitError::Refused {
                    unit: unit.to_owned(),
                    name: name.to_string(),
                    message: message.unwrap_or_default(),
                },
                e => bus_error(e),
            })?;
        tracing::info!(unit, job = %job.as_str(), "restart requested");
        let wait = async {
            while let Some(signal) = removed.next().await {
                let Ok(args) = signal.args() else { continue };
                if *args.job() == job {
                    return Ok(args.result().clone());
                }
            }
            Err(UnitError::Bus("the bus connection closed".into()))
        };
        let result = tokio::time::timeout(self.job_timeout, wait)
            .await
            .map_err(|_| UnitError::Timeout {
                unit: unit.to_owned(),
                secs: self.job_timeout.as_secs(),
            })??;
        tracing::info!(unit, %result, "restart job ended");
        if result == "done" {
            Ok(())
        } else {
            Err(UnitError::JobFailed {
                unit: unit.to_owned(),
                result,
            })
        }
    }
}

impl UnitManager for SystemdUnits {
    fn restart<'a>(
        &'a self,
        unit: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), UnitError>> + Send + 'a>> {
        Box::pin(self.restart_unit(unit))
    }
}

/// Restarts each engine's unit in turn and waits until the engine answers its health request
/// on its socket; everything within `limit` from the call. Engines named twice are restarted
/// once. The first error stops it (the updater rolls back).
pub async fn restart_engines(
    units: &dyn UnitManager,
    engines: &[Engine],
    sockets: &EngineSockets,
    limit: Duration,
) -> Result<(), UnitError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut done: Vec<Engine> = Vec::new();
    for &engine in engines {
        if done.contains(&engine) {
            continue;
        }
        let unit = engine.unit();
        tokio::time::timeout_at(deadline, units.restart(unit))
            .await
            .map_err(|_| UnitError::Timeout {
                unit: unit.to_owned(),
                secs: limit.as_secs(),
            })??;
        wait_serving(engine, sockets.of(engine).to_path_buf(), deadline).await?;
        done.push(engine);
    }
    Ok(())
}

/// Asks the engine's health until it answers, or `deadline`.
async fn wait_serving(
    engine: Engine,
    socket: PathBuf,
    deadline: tokio::time::Instant,
) -> Result<(), UnitError> {
    let mut last = String::from("no answer yet");
    loop {
        let answer = tokio::time::timeout_at(deadline, async {
            match engine {
                Engine::Transcribe => TranscribeClient::new(&socket).health().await.map(|_| ()),
                Engine::Translate => TranslateClient::new(&socket).health().await.map(|_| ()),
            }
        })
        .await;
        match answer {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => break,
        }
        if tokio::time::timeout_at(deadline, tokio::time::sleep(HEALTH_POLL))
            .await
            .is_err()
        {
            break;
        }
    }
    Err(UnitError::NotServing {
        unit: engine.unit().to_owned(),
        socket,
        last,
    })
}
