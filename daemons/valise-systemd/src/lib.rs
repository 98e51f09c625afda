//! systemd's D-Bus API (`org.freedesktop.systemd1(5)`), the part Valise uses, as zbus proxies:
//! one definition for the daemons (valise-update restarts engine units and waits for their
//! jobs; valise-health reads unit states and restart counts and starts `valise-update.service`)
//! and for the tests of the fake systemd (`tests/e2e/src/fake_systemd.rs`, which serves
//! [`UnitRow`] too).
//!
//! Only the interface lives here; connecting, deadlines and what the answers mean stay with
//! each daemon.

use zbus::OwnedObjectPath;
use zbus::zvariant::Type;

/// A `ListUnits`/`ListUnitsByNames` row (`(ssssssouso)`): name, description, load state,
/// active state, sub state, followed unit, unit path, job id, job type, job path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Type, PartialEq)]
pub struct UnitRow(
    pub String,
    pub String,
    pub String,
    pub String,
    pub String,
    pub String,
    pub OwnedObjectPath,
    pub u32,
    pub String,
    pub OwnedObjectPath,
);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait Manager {
    /// Asks systemd to emit job signals to this client (it sends them only to subscribers).
    fn subscribe(&self) -> zbus::Result<()>;

    /// The unit's object path; `org.freedesktop.systemd1.NoSuchUnit` when it is not loaded.
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn list_units(&self) -> zbus::Result<Vec<UnitRow>>;

    /// One row per name; a unit that is not loaded comes back with load state `not-found`.
    fn list_units_by_names(&self, names: &[&str]) -> zbus::Result<Vec<UnitRow>>;

    /// Queues the unit's start; returns the job's path.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Queues the unit's restart; returns the job's path.
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// A job ended: `result` is `done`, `failed`, `timeout`, `canceled`, `dependency` or
    /// `skipped`.
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
pub trait Service {
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
}
