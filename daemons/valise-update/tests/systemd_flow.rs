//! The update flow with the box's `SystemdEngines`: restarts go through systemd's D-Bus API
//! (a fake `org.freedesktop.systemd1` on a private `dbus-daemon`, `valise_e2e::fake_systemd`).
//! A restart job that systemd ends `failed` rolls the update back, the reason says so, and the
//! engines are restarted again on the old slot.

mod fixture;

use std::sync::{Arc, Mutex};

use fixture::*;
use valise_e2e::fake_systemd::{FakeSystemd, RestartFn, UnitState};
use valise_update::Service;
use valise_update::engines::SystemdEngines;
use valise_update::history::Outcome;
use valise_update::source::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restart_job_rolls_back_through_dbus() {
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let restart: RestartFn = {
        let calls = calls.clone();
        Arc::new(move |unit: String, mode: String| {
            let calls = calls.clone();
            Box::pin(async move {
                calls.lock().expect("lock").push((unit, mode));
                "failed".to_owned()
            })
        })
    };
    let systemd = FakeSystemd::start(restart).await;
    systemd
        .add_unit(
            "valise-translate.service",
            UnitState::new("active", "running"),
        )
        .await;
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let mut cfg = b.config();
    cfg.engines.bus = systemd.address().to_owned();
    cfg.engines.ready_timeout_secs = 20;
    let engines = SystemdEngines {
        config: cfg.engines.clone(),
    };
    let svc = Service::new(cfg, Box::new(engines)).expect("service");
    let dir = b.repo.dir.clone();
    let r = tokio::task::spawn_blocking(move || svc.check(&Origin::Dir(dir), now()))
        .await
        .expect("check");
    assert_eq!(r.outcome, Outcome::RolledBack, "{}", r.reason);
    assert!(r.reason.contains("engines did not come up"), "{}", r.reason);
    assert!(r.reason.contains("failed"), "{}", r.reason);
    assert_eq!(b.current(), "factory");
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        [
            ("valise-translate.service".to_owned(), "replace".to_owned()),
            ("valise-translate.service".to_owned(), "replace".to_owned()),
        ],
        "restarted for the new slot, then again for the old one"
    );
}
