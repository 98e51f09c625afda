//! The fake systemd answers like systemd: read through the zbus proxies of `valise-systemd`,
//! written against systemd's documented interface (what the daemons use) and through `dbus-send` (libdbus, an independent
//! client), including errors, property changes and the restart job's signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use valise_e2e::fake_systemd::{FakeSystemd, UnitState, unit_path};
use valise_systemd::{ManagerProxy, ServiceProxy, UnitProxy};

async fn client(fake: &FakeSystemd) -> zbus::Connection {
    zbus::connection::Builder::address(fake.address())
        .build()
        .await
        .unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn unit_paths_are_escaped_like_systemd() {
    // Values from `systemctl show -p ObjectPath` on a real system.
    assert_eq!(
        unit_path("valise-portal.service"),
        "/org/freedesktop/systemd1/unit/valise_2dportal_2eservice"
    );
    assert_eq!(
        unit_path("systemd-fsck@dev-sda1.service"),
        "/org/freedesktop/systemd1/unit/systemd_2dfsck_40dev_2dsda1_2eservice"
    );
    assert_eq!(
        unit_path("1x.service"),
        "/org/freedesktop/systemd1/unit/_31x_2eservice"
    );
}

#[tokio::test]
async fn units_states_and_errors() {
    let fake = FakeSystemd::start_ok().await;
    fake.add_unit("valise-portal.service", UnitState::new("active", "running"))
        .await;
    fake.add_unit("valise-update.timer", UnitState::new("active", "waiting"))
        .await;
    let conn = client(&fake).await;
    let m = ManagerProxy::new(&conn).await.unwrap();

    m.subscribe().await.unwrap();
    assert_eq!(fake.subscribers(), 1);

    let rows = m
        .list_units_by_names(&["valise-portal.service", "valise-nope.service"])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].3.as_str(), rows[0].4.as_str()),
        ("valise-portal.service", "active", "running")
    );
    assert_eq!(
        (rows[1].2.as_str(), rows[1].3.as_str()),
        ("not-found", "inactive")
    );
    assert_eq!(m.list_units().await.unwrap().len(), 2);

    // An unknown unit is systemd's NoSuchUnit error, not a generic failure.
    match m.get_unit("valise-nope.service").await {
        Err(zbus::Error::MethodError(name, _, _)) => {
            assert_eq!(name.as_str(), "org.freedesktop.systemd1.NoSuchUnit")
        }
        other => panic!("expected NoSuchUnit, got {other:?}"),
    }

    let path = m.get_unit("valise-portal.service").await.unwrap();
    assert_eq!(path.as_str(), unit_path("valise-portal.service"));
    let unit = UnitProxy::builder(&conn)
        .path(path.clone())
        .build()
        .await
        .unwrap();
    // Direct reads, not the proxy's cache (which follows PropertiesChanged asynchronously).
    let svc = ServiceProxy::builder(&conn)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let unit_now = UnitProxy::builder(&conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    assert_eq!(unit.active_state().await.unwrap(), "active");
    assert_eq!(svc.n_restarts().await.unwrap(), 0);

    // A change made by the test reaches a subscribed client as PropertiesChanged.
    let mut states = unit.receive_active_state_changed().await;
    let first = tokio::time::timeout(WAIT, states.next()).await.unwrap();
    assert_eq!(first.unwrap().get().await.unwrap(), "active");
    fake.set_state("valise-portal.service", "failed", "failed")
        .await;
    fake.set_restarts("valise-portal.service", 3).await;
    let changed = tokio::time::timeout(WAIT, states.next()).await.unwrap();
    assert_eq!(changed.unwrap().get().await.unwrap(), "failed");
    assert_eq!(unit_now.sub_state().await.unwrap(), "failed");
    assert_eq!(svc.n_restarts().await.unwrap(), 3);

    // An independent client (libdbus's dbus-send) reads the same property by systemd's names.
    let out = tokio::process::Command::new("dbus-send")
        .arg(format!("--bus={}", fake.address()))
        .args([
            "--print-reply",
            "--dest=org.freedesktop.systemd1",
            "/org/freedesktop/systemd1/unit/valise_2dportal_2eservice",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.systemd1.Service",
            "string:NRestarts",
        ])
        .output()
        .await
        .expect("dbus-send: scripts/install-deps installs dbus-bin");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("uint32 3"), "{text}");
}

#[tokio::test]
async fn restart_runs_the_callback_then_signals_job_removed() {
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = calls.clone();
    let fake = FakeSystemd::start(Arc::new(move |unit: String, mode: String| {
        let seen = seen.clone();
        Box::pin(async move {
            let failed = unit == "valise-translate.service";
            seen.lock().unwrap().push((unit, mode));
            if failed { "failed" } else { "done" }.to_owned()
        })
    }))
    .await;
    fake.add_unit("valise-portal.service", UnitState::new("failed", "failed"))
        .await;
    fake.add_unit(
        "valise-translate.service",
        UnitState::new("active", "running"),
    )
    .await;
    let conn = client(&fake).await;
    let m = ManagerProxy::new(&conn).await.unwrap();
    m.subscribe().await.unwrap();
    let mut removed = m.receive_job_removed().await.unwrap();

    let job = m
        .restart_unit("valise-portal.service", "replace")
        .await
        .unwrap();
    let sig = tokio::time::timeout(WAIT, removed.next())
        .await
        .unwrap()
        .unwrap();
    let args = sig.args().unwrap();
    assert_eq!(args.job.as_str(), job.as_str());
    assert_eq!(args.unit, "valise-portal.service");
    assert_eq!(args.result, "done");
    let after = fake.unit("valise-portal.service").unwrap();
    assert_eq!(
        (after.active_state.as_str(), after.sub_state.as_str()),
        ("active", "running")
    );

    let job2 = m
        .restart_unit("valise-translate.service", "fail")
        .await
        .unwrap();
    assert_ne!(job2.as_str(), job.as_str());
    let sig = tokio::time::timeout(WAIT, removed.next())
        .await
        .unwrap()
        .unwrap();
    let args = sig.args().unwrap();
    assert_eq!(
        (args.unit.as_str(), args.result.as_str()),
        ("valise-translate.service", "failed")
    );
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            ("valise-portal.service".to_owned(), "replace".to_owned()),
            ("valise-translate.service".to_owned(), "fail".to_owned()),
        ]
    );

    // No job for a unit that is not loaded.
    assert!(
        m.restart_unit("valise-nope.service", "replace")
            .await
            .is_err()
    );
    assert_eq!(calls.lock().unwrap().len(), 2);
}
