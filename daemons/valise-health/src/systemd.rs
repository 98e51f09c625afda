//! systemd over D-Bus (zbus): the state and restart count of each Valise unit.
//!
//! Read-only (`check_for_updates` goes to valise-update's socket, `update.rs`); every call has a deadline (`read_timeout_ms`), so a
//! hung bus delays one health message's unit list, never the daemon. The bus is the system
//! bus (`DBUS_SYSTEM_BUS_ADDRESS` when set, as zbus reads it): tests point it at the fake
//! systemd of `tests/e2e/src/fake_systemd.rs`.

use std::time::Duration;

use valise_health_schema::{UnitName, UnitState, UnitStatus};
use valise_systemd::{ManagerProxy, ServiceProxy, UnitRow};

/// A connection to systemd, made lazily and remade after a failure.
#[derive(Debug)]
pub struct Systemd {
    conn: Option<zbus::Connection>,
    timeout: Duration,
}

fn active_state(s: &str) -> Option<UnitState> {
    Some(match s {
        "active" => UnitState::Active,
        "reloading" => UnitState::Reloading,
        "inactive" => UnitState::Inactive,
        "failed" => UnitState::Failed,
        "activating" => UnitState::Activating,
        "deactivating" => UnitState::Deactivating,
        "maintenance" => UnitState::Maintenance,
        "refreshing" => UnitState::Refreshing,
        _ => return None,
    })
}

impl Systemd {
    pub fn new(timeout: Duration) -> Self {
        Self {
            conn: None,
            timeout,
        }
    }

    async fn conn(&mut self) -> zbus::Result<zbus::Connection> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, zbus::Connection::system())
            .await
            .map_err(|_| zbus::Error::Failure("connecting to the system bus timed out".into()))??;
        self.conn = Some(c.clone());
        Ok(c)
    }

    /// The loaded units among `names`, with state and restart count; `None` when systemd
    /// could not be asked (then the message carries no unit list rather than a guess).
    pub async fn units(&mut self, names: &[String]) -> Option<Vec<UnitStatus>> {
        match tokio::time::timeout(self.timeout, self.read_units(names)).await {
            Ok(Ok(u)) => Some(u),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read unit states from systemd");
                self.conn = None;
                None
            }
            Err(_) => {
                tracing::warn!("reading unit states from systemd timed out");
                self.conn = None;
                None
            }
        }
    }

    async fn read_units(&mut self, names: &[String]) -> zbus::Result<Vec<UnitStatus>> {
        let conn = self.conn().await?;
        let manager = ManagerProxy::new(&conn).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let rows = manager.list_units_by_names(&refs).await?;
        let mut out = Vec::new();
        for UnitRow(name, _, load, active, _, _, path, ..) in rows {
            if load != "loaded" {
                continue;
            }
            let (Ok(unit), Some(state)) = (UnitName::new(&name), active_state(&active)) else {
                continue;
            };
            let restarts = if name.ends_with(".service") {
                let svc = ServiceProxy::builder(&conn)
                    .path(path)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?;
                svc.n_restarts().await.unwrap_or(0)
            } else {
                0
            };
            out.push(UnitStatus {
                unit,
                state,
                restarts,
            });
        }
        Ok(out)
    }
}
