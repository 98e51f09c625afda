//! A fake `org.freedesktop.systemd1` on a private D-Bus bus (a real `dbus-daemon` started by
//! the test), for the daemons that talk to systemd's Manager: valise-health reads unit states
//! and restart counts, valise-update restarts units and waits for their jobs.
//!
//! It serves the part of systemd's real D-Bus API those daemons use, with the real names,
//! object paths and signatures (systemd's `org.freedesktop.systemd1(5)`):
//!
//! - `/org/freedesktop/systemd1`, interface `org.freedesktop.systemd1.Manager`:
//!   `Subscribe()`, `Unsubscribe()`, `GetUnit(s) -> o`, `LoadUnit(s) -> o`,
//!   `ListUnits() -> a(ssssssouso)`, `ListUnitsByNames(as) -> a(ssssssouso)`,
//!   `RestartUnit(s name, s mode) -> o job`, `StartUnit(s, s) -> o` (same job flow), and the signals `JobNew(u, o, s)` and
//!   `JobRemoved(u id, o job, s unit, s result)`;
//! - one object per unit at `/org/freedesktop/systemd1/unit/<escaped name>` with
//!   `org.freedesktop.systemd1.Unit` (`Id`, `LoadState`, `ActiveState`, `SubState`) and, for
//!   `.service` units, `org.freedesktop.systemd1.Service` (`NRestarts`, `MainPID`, `Result`),
//!   emitting `PropertiesChanged` when the test changes them.
//!
//! `RestartUnit` answers with the job's path at once (as systemd does), then runs the
//! test-supplied callback and emits `JobRemoved` with the result the callback returned
//! (`"done"`, `"failed"`, `"timeout"`, ...); on `"done"` the unit becomes `active`/`running`.
//! Unknown units give systemd's own error `org.freedesktop.systemd1.NoSuchUnit`.
//!
//! Clients reach it through `DBUS_SYSTEM_BUS_ADDRESS=` [`FakeSystemd::address`], which is what
//! `zbus::Connection::system()` and `busctl --system` read.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use zbus::OwnedObjectPath;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, interface};

/// The `ListUnits` row, as the daemons' proxies read it.
pub use valise_systemd::UnitRow;

pub const BUS_NAME: &str = "org.freedesktop.systemd1";
pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";

/// What `RestartUnit` (and `StartUnit`) runs before it emits `JobRemoved`: takes the unit name and the mode,
/// returns the job result systemd would report (`"done"`, `"failed"`, `"timeout"`,
/// `"canceled"`, `"dependency"`, `"skipped"`).
pub type RestartFn =
    Arc<dyn Fn(String, String) -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// One unit's state as the test sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub n_restarts: u32,
    pub main_pid: u32,
    /// The service's `Result` property (`success`, `exit-code`, `signal`, ...).
    pub result: String,
}

impl UnitState {
    /// A loaded unit in `active_state`/`sub_state`, no restarts yet.
    pub fn new(active_state: &str, sub_state: &str) -> UnitState {
        UnitState {
            description: String::new(),
            load_state: "loaded".into(),
            active_state: active_state.into(),
            sub_state: sub_state.into(),
            n_restarts: 0,
            main_pid: 0,
            result: "success".into(),
        }
    }
}

type Units = Arc<Mutex<BTreeMap<String, UnitState>>>;

/// systemd's object path for a unit: bytes other than `[A-Za-z0-9]` (and a leading digit)
/// become `_xx` in lower-case hex (sd_bus_path_encode).
pub fn unit_path(name: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

fn object_path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p.to_owned()).unwrap()
}

/// systemd's own error names (`org.freedesktop.systemd1.NoSuchUnit`, ...).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
pub enum SystemdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

fn no_such_unit(name: &str) -> SystemdError {
    SystemdError::NoSuchUnit(format!("Unit {name} not loaded."))
}

struct Manager {
    units: Units,
    restart: RestartFn,
    next_job: Arc<AtomicU32>,
    subscribers: Arc<AtomicU32>,
}

impl Manager {
    fn row(name: &str, u: &UnitState) -> UnitRow {
        UnitRow(
            name.to_owned(),
            u.description.clone(),
            u.load_state.clone(),
            u.active_state.clone(),
            u.sub_state.clone(),
            String::new(),
            object_path(&unit_path(name)),
            0,
            String::new(),
            object_path("/"),
        )
    }

    /// Queues a job for `name`: answers with its path at once, then (as systemd) runs it and
    /// emits `JobNew`/`JobRemoved`, so a client must have subscribed to the signal first.
    fn job(
        &self,
        conn: &Connection,
        name: String,
        mode: String,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.lookup(&name)?;
        let id = self.next_job.fetch_add(1, Ordering::SeqCst);
        let job = object_path(&format!("/org/freedesktop/systemd1/job/{id}"));
        let (conn, units, restart, job2) = (
            conn.clone(),
            self.units.clone(),
            self.restart.clone(),
            job.clone(),
        );
        tokio::spawn(async move {
            let emitter = SignalEmitter::new(&conn, MANAGER_PATH).unwrap();
            let _ = Manager::job_new(&emitter, id, job2.clone(), name.clone()).await;
            let result = restart(name.clone(), mode).await;
            if result == "done" {
                let changed = {
                    let mut units = units.lock().unwrap();
                    units.get_mut(&name).map(|u| {
                        u.active_state = "active".into();
                        u.sub_state = "running".into();
                    })
                };
                if changed.is_some() {
                    let _ = emit_changed(&conn, &name).await;
                }
            }
            let _ = Manager::job_removed(&emitter, id, job2, name, result).await;
        });
        Ok(job)
    }

    fn lookup(&self, name: &str) -> Result<OwnedObjectPath, SystemdError> {
        if self.units.lock().unwrap().contains_key(name) {
            Ok(object_path(&unit_path(name)))
        } else {
            Err(no_such_unit(name))
        }
    }
}

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    fn subscribe(&self) {
        self.subscribers.fetch_add(1, Ordering::SeqCst);
    }

    fn unsubscribe(&self) {
        self.subscribers.fetch_sub(1, Ordering::SeqCst);
    }

    fn get_unit(&self, name: String) -> Result<OwnedObjectPath, SystemdError> {
        self.lookup(&name)
    }

    fn load_unit(&self, name: String) -> Result<OwnedObjectPath, SystemdError> {
        self.lookup(&name)
    }

    fn list_units(&self) -> Vec<UnitRow> {
        let units = self.units.lock().unwrap();
        units.iter().map(|(n, u)| Self::row(n, u)).collect()
    }

    /// Like systemd: names that are not loaded come back with load state `not-found`.
    fn list_units_by_names(&self, names: Vec<String>) -> Vec<UnitRow> {
        let units = self.units.lock().unwrap();
        names
            .iter()
            .map(|n| match units.get(n) {
                Some(u) => Self::row(n, u),
                None => {
                    let mut u = UnitState::new("inactive", "dead");
                    u.load_state = "not-found".into();
                    Self::row(n, &u)
                }
            })
            .collect()
    }

    async fn restart_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.job(conn, name, mode)
    }

    /// Like `RestartUnit` (the same callback runs; the test sees the mode it was given).
    async fn start_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, SystemdError> {
        self.job(conn, name, mode)
    }

    #[zbus(signal)]
    async fn job_new(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> String {
        "fake-valise".into()
    }
}

struct Unit {
    name: String,
    units: Units,
}

impl Unit {
    fn get<T>(&self, f: impl FnOnce(&UnitState) -> T) -> T {
        let units = self.units.lock().unwrap();
        let u = units
            .get(&self.name)
            .expect("unit object outlived its unit");
        f(u)
    }
}

#[interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn id(&self) -> String {
        self.name.clone()
    }
    #[zbus(property)]
    fn description(&self) -> String {
        self.get(|u| u.description.clone())
    }
    #[zbus(property)]
    fn load_state(&self) -> String {
        self.get(|u| u.load_state.clone())
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.get(|u| u.active_state.clone())
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.get(|u| u.sub_state.clone())
    }
}

struct Service {
    name: String,
    units: Units,
}

#[interface(name = "org.freedesktop.systemd1.Service")]
impl Service {
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.units.lock().unwrap()[&self.name].n_restarts
    }
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> u32 {
        self.units.lock().unwrap()[&self.name].main_pid
    }
    #[zbus(property)]
    fn result(&self) -> String {
        self.units.lock().unwrap()[&self.name].result.clone()
    }
}

/// Emits `PropertiesChanged` for every property of the unit's objects.
async fn emit_changed(conn: &Connection, name: &str) -> zbus::Result<()> {
    let path = unit_path(name);
    let server = conn.object_server();
    let unit = server.interface::<_, Unit>(path.as_str()).await?;
    {
        let u = unit.get().await;
        let e = unit.signal_emitter();
        u.load_state_changed(e).await?;
        u.active_state_changed(e).await?;
        u.sub_state_changed(e).await?;
    }
    if name.ends_with(".service") {
        let svc = server.interface::<_, Service>(path.as_str()).await?;
        let s = svc.get().await;
        let e = svc.signal_emitter();
        s.n_restarts_changed(e).await?;
        s.main_p_i_d_changed(e).await?;
        s.result_changed(e).await?;
    }
    Ok(())
}

/// A private `dbus-daemon` with the fake systemd on it; both stop when this is dropped.
pub struct FakeSystemd {
    dir: tempfile::TempDir,
    daemon: tokio::process::Child,
    address: String,
    conn: Connection,
    units: Units,
    subscribers: Arc<AtomicU32>,
}

impl std::fmt::Debug for FakeSystemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSystemd")
            .field("address", &self.address)
            .field("units", &self.units)
            .finish()
    }
}

impl FakeSystemd {
    /// Starts a bus and the fake on it. `restart` runs for each `RestartUnit` call.
    pub async fn start(restart: RestartFn) -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("bus");
        let mut daemon = tokio::process::Command::new(need_dbus_daemon())
            .arg("--session")
            .arg(format!("--address=unix:path={}", sock.display()))
            .args(["--nofork", "--print-address"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("dbus-daemon: scripts/install-deps installs it");
        // It prints its address once it listens: that line is the readiness event.
        let mut line = String::new();
        let stdout = daemon.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reader.read_line(&mut line),
        )
        .await
        .expect("dbus-daemon did not print its address within 10 s")
        .unwrap();
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon printed {address:?}"
        );

        let units: Units = Arc::default();
        let subscribers = Arc::new(AtomicU32::new(0));
        let manager = Manager {
            units: units.clone(),
            restart,
            next_job: Arc::new(AtomicU32::new(1)),
            subscribers: subscribers.clone(),
        };
        let conn = zbus::connection::Builder::address(address.as_str())
            .serve_at(MANAGER_PATH, manager)
            .name(BUS_NAME)
            .build()
            .await
            .unwrap();
        FakeSystemd {
            dir,
            daemon,
            address,
            conn,
            units,
            subscribers,
        }
    }

    /// A fake whose `RestartUnit` jobs all end `"done"` at once.
    pub async fn start_ok() -> FakeSystemd {
        FakeSystemd::start(Arc::new(|_, _| Box::pin(async { "done".to_owned() }))).await
    }

    /// The bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The bus socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// How many clients called `Subscribe` (and not `Unsubscribe`).
    pub fn subscribers(&self) -> u32 {
        self.subscribers.load(Ordering::SeqCst)
    }

    /// Adds (or replaces) a unit and its objects.
    pub async fn add_unit(&self, name: &str, state: UnitState) {
        let fresh = self
            .units
            .lock()
            .unwrap()
            .insert(name.to_owned(), state)
            .is_none();
        if fresh {
            let server = self.conn.object_server();
            let path = unit_path(name);
            let unit = Unit {
                name: name.to_owned(),
                units: self.units.clone(),
            };
            server.at(path.as_str(), unit).await.unwrap();
            if name.ends_with(".service") {
                let svc = Service {
                    name: name.to_owned(),
                    units: self.units.clone(),
                };
                server.at(path.as_str(), svc).await.unwrap();
            }
        } else {
            emit_changed(&self.conn, name).await.unwrap();
        }
    }

    /// Changes a unit's state with `f` and emits `PropertiesChanged`.
    pub async fn update_unit(&self, name: &str, f: impl FnOnce(&mut UnitState)) {
        {
            let mut units = self.units.lock().unwrap();
            f(units.get_mut(name).expect("no such unit in the fake"));
        }
        emit_changed(&self.conn, name).await.unwrap();
    }

    /// Sets `ActiveState` and `SubState`.
    pub async fn set_state(&self, name: &str, active: &str, sub: &str) {
        self.update_unit(name, |u| {
            u.active_state = active.into();
            u.sub_state = sub.into();
        })
        .await;
    }

    /// Sets the service's `NRestarts`.
    pub async fn set_restarts(&self, name: &str, n: u32) {
        self.update_unit(name, |u| u.n_restarts = n).await;
    }

    /// The unit's current state.
    pub fn unit(&self, name: &str) -> Option<UnitState> {
        self.units.lock().unwrap().get(name).cloned()
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = self.daemon.start_kill();
    }
}

fn need_dbus_daemon() -> PathBuf {
    let p = PathBuf::from("/usr/bin/dbus-daemon");
    assert!(
        p.exists(),
        "dbus-daemon is not installed: scripts/install-deps installs it (package dbus-daemon)"
    );
    p
}
