//! Engine restarts through systemd's D-Bus API, against a fake `org.freedesktop.systemd1` on a
//! private `dbus-daemon` (`valise_e2e::fake_systemd`): its `RestartUnit` really stops the
//! engine process with SIGTERM and starts it again with the dev models, as systemd would.
//! After the restart, a bundle's acceptance cases pass through the new processes: the engine
//! half of an update, end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{JFK, PT_EN, jfk, manifest, pt_en, sockets};
use valise_bundle::Engine;
use valise_e2e::engines::EngineProc;
use valise_e2e::fake_systemd::{FakeSystemd, RestartFn, UnitState};
use valise_engine_client::{TranscribeClient, TranslateClient};
use valise_update::acceptance::run_acceptance;
use valise_update::systemd::{SystemdUnits, UnitError, UnitManager, restart_engines};

const UNITS: [&str; 2] = ["valise-transcribe.service", "valise-translate.service"];

async fn fake(restart: RestartFn, units: &[&str]) -> FakeSystemd {
    let f = FakeSystemd::start(restart).await;
    for u in units {
        f.add_unit(u, UnitState::new("active", "running")).await;
    }
    f
}

fn result(r: &'static str) -> RestartFn {
    Arc::new(move |_, _| Box::pin(async move { r.to_owned() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_engines_restarts_both_real_engines_then_acceptance_passes_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let (t, l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let old = (t.pid(), l.pid());
    let engines: Arc<Mutex<(EngineProc, EngineProc)>> = Arc::new(Mutex::new((t, l)));
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let restart: RestartFn = {
        let (engines, calls) = (engines.clone(), calls.clone());
        Arc::new(move |unit: String, mode: String| {
            let (engines, calls) = (engines.clone(), calls.clone());
            Box::pin(async move {
                calls.lock().unwrap().push((unit.clone(), mode));
                tokio::task::spawn_blocking(move || {
                    let mut e = engines.lock().unwrap();
                    let p = match unit.as_str() {
                        "valise-transcribe.service" => &mut e.0,
                        _ => &mut e.1,
                    };
                    // systemd: SIGTERM, wait for the exit, start, wait for READY=1 (the
                    // engines notify once they listen; here: once the socket exists).
                    if p.restart_planned(Duration::from_secs(60)) {
                        "done".to_owned()
                    } else {
                        "timeout".to_owned()
                    }
                })
                .await
                .unwrap()
            })
        })
    };
    let systemd = fake(restart, &UNITS).await;
    let units = SystemdUnits::connect(Some(systemd.address()))
        .await
        .unwrap();
    assert_eq!(systemd.subscribers(), 1, "Subscribe() was called");
    let s = sockets(dir.path());

    restart_engines(
        &units,
        &[Engine::Transcribe, Engine::Translate, Engine::Transcribe],
        &s,
        Duration::from_secs(180),
    )
    .await
    .unwrap();

    // Each unit restarted once, in "replace" mode, by new processes that serve right away.
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            (UNITS[0].to_owned(), "replace".to_owned()),
            (UNITS[1].to_owned(), "replace".to_owned())
        ]
    );
    let new = {
        let e = engines.lock().unwrap();
        (e.0.pid(), e.1.pid())
    };
    assert!(new.0 != old.0 && new.1 != old.1, "{old:?} -> {new:?}");
    TranscribeClient::new(&s.transcribe).health().await.unwrap();
    TranslateClient::new(&s.translate).health().await.unwrap();

    // The bundle's cases, through the restarted engines.
    let bundle = dir.path().join("bundle");
    let m = manifest(&bundle, vec![jfk(JFK, 0.10), pt_en(PT_EN)]);
    let passed = run_acceptance(&m, &bundle, &s).await.unwrap();
    assert_eq!(passed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ends_done_at_once_is_not_missed() {
    // The fake ends the job as soon as it has answered RestartUnit: JobRemoved can arrive
    // before the reply is read, so the client must listen before it calls.
    let systemd = fake(result("done"), &UNITS).await;
    let units = SystemdUnits::connect(Some(systemd.address()))
        .await
        .unwrap()
        .with_job_timeout(Duration::from_secs(10));
    for _ in 0..20 {
        units.restart(UNITS[0]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_results_and_refusals_are_reported_precisely() {
    for r in ["failed", "timeout", "canceled", "dependency"] {
        let systemd = fake(result(r), &UNITS).await;
        let units = SystemdUnits::connect(Some(systemd.address()))
            .await
            .unwrap();
        assert_eq!(
            units.restart(UNITS[1]).await,
            Err(UnitError::JobFailed {
                unit: UNITS[1].to_owned(),
                result: r.to_owned()
            })
        );
    }

    // A unit systemd does not know: its own error name comes back.
    let systemd = fake(result("done"), &UNITS[..1]).await;
    let units = SystemdUnits::connect(Some(systemd.address()))
        .await
        .unwrap();
    let Err(UnitError::Refused { unit, name, .. }) = units.restart(UNITS[1]).await else {
        panic!("expected a refusal")
    };
    assert_eq!(unit, UNITS[1]);
    assert_eq!(name, "org.freedesktop.systemd1.NoSuchUnit");

    // A job that never ends.
    let never: RestartFn = Arc::new(|_, _| Box::pin(std::future::pending()));
    let systemd = fake(never, &UNITS).await;
    let units = SystemdUnits::connect(Some(systemd.address()))
        .await
        .unwrap()
        .with_job_timeout(Duration::from_secs(1));
    assert_eq!(
        units.restart(UNITS[0]).await,
        Err(UnitError::Timeout {
            unit: UNITS[0].to_owned(),
            secs: 1
        })
    );

    // No bus there.
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix:path={}", dir.path().join("bus").display());
    assert!(matches!(
        SystemdUnits::connect(Some(&nowhere)).await,
        Err(UnitError::Bus(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_does_not_come_back_fails_within_the_deadline() {
    // systemd says done, but nothing listens on the engine's socket.
    let systemd = fake(result("done"), &UNITS).await;
    let units = SystemdUnits::connect(Some(systemd.address()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = sockets(dir.path());
    let start = std::time::Instant::now();
    let e = restart_engines(&units, &[Engine::Translate], &s, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let UnitError::NotServing { unit, socket, .. } = e else {
        panic!("{e}")
    };
    assert_eq!((unit.as_str(), socket), (UNITS[1], s.translate));
}
