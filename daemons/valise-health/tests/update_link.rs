//! valise-health and the real valise-update daemon, through the updater's socket API only:
//! the centre's `check_for_updates` makes the running updater check the repository (nginx
//! with client certificates, the box's enrolled identity, a TUF repository of valise-update's
//! own test fixture); the install and then a rollback reach the centre as `update_started`,
//! `update_finished` and `update_rolled_back` events and in the health message's `bundles`,
//! `last_update` and `expiry.update_metadata`. systemd is the fake on a private D-Bus (the
//! updater restarts the translation engine through it; a failed restart job is the rollback),
//! the translation engine is the real one. A tampered bundle and then tampered metadata on the
//! repository are refused by the updater before any install: the centre sees
//! `last_update.outcome == "failed_verification"` (with the bundle and its versions, then
//! without any), and none of the updater's reasons.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[allow(unexpected_cfgs)]
#[path = "../../valise-update/tests/fixture/mod.rs"]
mod fixture;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Central, Daemon, Fleet, Received, WAIT, write};
use serde_json::Value;
use valise_e2e::engines::EngineProc;
use valise_e2e::fake_systemd::{FakeSystemd, UnitState};
use valise_e2e::nginx::{Nginx, NginxTls};
use valise_pki::ca::Validity;

const CN: &str = "lisbon.box-1";
const CMD: &str = "valise/v1/lisbon/box-1/cmd";
/// Words of the updater's free-text reasons: they stay on the box.
const REASONS: &[&str] = &[
    "acceptance",
    "engines did not come up",
    "slot",
    "repository",
    "refused",
    "sha256",
    "signature",
    "threshold",
    "usb",
];

/// The updater's reasons (free text) never leave the box.
fn no_reasons(got: &[Received]) {
    for m in got {
        let text = String::from_utf8_lossy(&m.raw);
        for r in REASONS {
            assert!(!text.contains(r), "{r:?} in {text}");
        }
    }
}

/// A bundle the translation engine passes: restarted (through the fake systemd) and serving,
/// no acceptance case of its own.
fn pten(version: u64) -> fixture::Bundle {
    let mut b = fixture::bundle("pten", version);
    b.manifest.acceptance.clear();
    b.manifest.validate().unwrap();
    b
}

fn status(socket: &Path) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--unix-socket"])
        .arg(socket)
        .arg("http://update/status")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Collects messages until `done` holds for what was received since the call.
async fn until(
    central: &mut Central,
    what: &str,
    ctx: &dyn Fn() -> String,
    mut done: impl FnMut(&[Received]) -> bool,
) -> Vec<Received> {
    let start = Instant::now();
    let mut got = Vec::new();
    while !done(&got) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what}: only {:#?}\n{}",
            got.iter().map(|m| &m.json).collect::<Vec<_>>(),
            ctx()
        );
        if let Some(m) = central.next(WAIT).await {
            got.push(m);
        }
    }
    got
}

fn events<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Value> {
    got.iter()
        .filter(|m| m.topic.ends_with("/events") && m.json["event"]["kind"] == kind)
        .map(|m| &m.json["event"])
        .collect()
}

fn last_health(got: &[Received]) -> Option<&Value> {
    got.iter()
        .rev()
        .find(|m| m.topic.ends_with("/health"))
        .map(|m| &m.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_for_updates_runs_a_real_check_and_updates_reach_the_centre() {
    let mut fleet = Fleet::start(&[CN], &[]);
    let mut b = fixture::TestBox::new();
    b.repo.publish(&[pten(1)]);
    let t = b.tmp.path().to_owned();

    // The repository over HTTPS with client certificates from the fleet's CA.
    let srv = fleet
        .ca
        .issue_server(&["127.0.0.1".to_owned()], Validity::days(2))
        .unwrap();
    let nginx = Nginx::start(&NginxTls {
        cert: write(&t, "nginx/cert.pem", &srv.cert_pem),
        key: write(&t, "nginx/key.pem", &srv.key_pem),
        client_ca: write(&t, "nginx/ca.pem", &fleet.ca_pem),
        crl: None,
        root: Some(t.clone()),
    });

    // systemd: restart jobs end "done", or "failed" once the flag is set.
    let fail = Arc::new(AtomicBool::new(false));
    let f2 = fail.clone();
    let fake = FakeSystemd::start(Arc::new(move |_unit: String, _mode: String| {
        let failed = f2.load(Ordering::SeqCst);
        Box::pin(async move { if failed { "failed" } else { "done" }.to_owned() })
    }))
    .await;
    fake.add_unit(
        "valise-translate.service",
        UnitState::new("active", "running"),
    )
    .await;
    let translate = EngineProc::start(
        "valise-translate",
        Path::new("/dev/null"),
        &t.join("translate.sock"),
    );

    // The real updater, as a daemon, checking nothing until asked.
    let mut cfg = b.config();
    cfg.identity_dir = fleet.identity_dir(CN);
    cfg.repository = format!("https://127.0.0.1:{}/usb", nginx.addr.port());
    cfg.interval_secs = 86_400;
    cfg.startup_delay_secs = 86_400;
    cfg.random_delay_secs = 0;
    cfg.engines.translate_socket = translate.sock.clone();
    cfg.engines.bus = fake.address().to_owned();
    cfg.engines.ready_timeout_secs = 60;
    let socket = cfg.socket.clone();
    let config = write(&t, "valise-update.toml", &toml::to_string(&cfg).unwrap());
    let log = std::fs::File::create(t.join("update.log")).unwrap();
    let mut child = Command::new(valise_e2e::bin("valise-update"))
        .arg("--config")
        .arg(&config)
        .env("VALISE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    valise_e2e::wait_for_socket(&mut child, &socket, Duration::from_secs(30));
    let _updater = valise_e2e::KillOnDrop(child);
    let update_log = || std::fs::read_to_string(t.join("update.log")).unwrap_or_default();
    assert!(status(&socket)["last_check"].is_null());

    let mut central = Central::connect(
        &fleet,
        "central-1",
        &["valise/v1/+/+/health", "valise/v1/+/+/events"],
    )
    .await;
    let sock_s = format!("{:?}", socket.display().to_string());
    let mut d = Daemon::start(
        &fleet,
        CN,
        &[("update_socket", sock_s.as_str())],
        "",
        Some(fake.address()),
    );
    d.wait_log("subscribed to the command topic", WAIT).await;
    let first = central.next_on("health", WAIT).await;
    assert_eq!(
        first.json["bundles"],
        serde_json::json!([]),
        "{}",
        first.json
    );
    assert!(first.json.get("last_update").is_none(), "{}", first.json);
    // No portal here: no job counts, rather than zeros.
    assert!(first.json.get("jobs").is_none(), "{}", first.json);
    // Before any check the trusted root shipped with the box already has an expiry.
    assert!(
        first.json["expiry"]["update_metadata"].is_i64(),
        "{}",
        first.json
    );

    // The centre asks; the running updater checks the repository over mutual TLS and
    // installs pten 1.
    central
        .publish(
            CMD,
            r#"{"v":1,"id":7,"at":0,"command":"check_for_updates"}"#,
        )
        .await;
    let got = until(&mut central, "install", &update_log, |got| {
        !events(got, "update_finished").is_empty()
            && last_health(got).is_some_and(|h| h["bundles"][0]["version"] == "1")
    })
    .await;
    d.wait_log("command check_for_updates: valise-update ran a check", WAIT)
        .await;
    assert!(d.log_text().contains("id=7"));
    let s = status(&socket);
    assert_eq!(s["last_check"]["source"], "repository", "{s}");
    assert_eq!(
        s["last_check"]["outcome"],
        "installed",
        "{s}\n{}",
        update_log()
    );
    let started = events(&got, "update_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        (
            &started[0]["bundle"],
            &started[0]["from"],
            &started[0]["to"]
        ),
        (&"pten".into(), &"0".into(), &"1".into())
    );
    let finished = events(&got, "update_finished")[0];
    assert_eq!(finished["outcome"], "installed");
    assert_eq!(
        (&finished["from"], &finished["to"]),
        (&"0".into(), &"1".into())
    );
    let h = last_health(&got).unwrap();
    assert_eq!(
        h["bundles"],
        serde_json::json!([{"name": "pten", "version": "1"}])
    );
    assert_eq!(h["last_update"]["outcome"], "installed");
    assert_eq!(h["last_update"]["bundle"], "pten");
    assert_eq!(
        h["last_update"]["at"].as_i64(),
        s["last_update"].as_i64(),
        "the updater's own time"
    );
    // The fixture's metadata expires 2030-01-01: days left, from the updater's status.
    let days = h["expiry"]["update_metadata"]
        .as_i64()
        .expect("metadata expiry");
    let expected = (s["metadata_expires"].as_i64().unwrap() - valise_health::unix_now() as i64)
        .div_euclid(86_400);
    assert!((days - expected).abs() <= 1, "{days} vs {expected}");

    // pten 2, whose engine restart fails: the updater rolls back to 1.
    b.repo.publish(&[pten(2)]);
    fail.store(true, Ordering::SeqCst);
    central
        .publish(
            CMD,
            r#"{"v":1,"id":8,"at":0,"command":"check_for_updates"}"#,
        )
        .await;
    let got = until(&mut central, "rollback", &update_log, |got| {
        !events(got, "update_rolled_back").is_empty()
            && last_health(got).is_some_and(|h| h["last_update"]["outcome"] == "rolled_back")
    })
    .await;
    let s = status(&socket);
    assert_eq!(s["last_check"]["outcome"], "rolled_back", "{s}");
    let started = events(&got, "update_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        (&started[0]["from"], &started[0]["to"]),
        (&"1".into(), &"2".into())
    );
    let rb = events(&got, "update_rolled_back")[0];
    assert_eq!(
        (&rb["bundle"], &rb["from"], &rb["to"], &rb["reason"]),
        (
            &"pten".into(),
            &"2".into(),
            &"1".into(),
            &"health_check_failed".into()
        )
    );
    assert!(events(&got, "update_finished").is_empty());
    let h = last_health(&got).unwrap();
    assert_eq!(
        h["bundles"],
        serde_json::json!([{"name": "pten", "version": "1"}])
    );
    assert_eq!(
        (&h["last_update"]["from"], &h["last_update"]["to"]),
        (&"1".into(), &"2".into())
    );
    no_reasons(&got);

    // pten 3 published with one of its files tampered with on the repository: the updater
    // refuses it before installing anything; the centre sees the failed verification.
    let p3 = pten(3);
    b.repo.publish(std::slice::from_ref(&p3));
    let file = "pten-model/model.onnx";
    let bytes = &p3.contents[file];
    let mut evil = bytes.clone();
    evil[0] ^= 1;
    std::fs::write(
        b.repo.target_path(&p3.manifest.file_target(file), bytes),
        &evil,
    )
    .unwrap();
    central
        .publish(
            CMD,
            r#"{"v":1,"id":9,"at":0,"command":"check_for_updates"}"#,
        )
        .await;
    let got = until(&mut central, "tampered bundle", &update_log, |got| {
        last_health(got).is_some_and(|h| h["last_update"]["outcome"] == "failed_verification")
    })
    .await;
    let s = status(&socket);
    assert_eq!(
        (&s["last_check"]["outcome"], &s["last_check"]["failure"]),
        (&"failed".into(), &"verification".into()),
        "{s}"
    );
    assert!(
        s["last_check"]["reason"]
            .as_str()
            .unwrap()
            .contains("target refused"),
        "{s}"
    );
    let h = last_health(&got).unwrap();
    assert_eq!(
        h["last_update"],
        serde_json::json!({
            "at": s["last_check"]["at"], "bundle": "pten", "from": "1", "to": "3",
            "outcome": "failed_verification",
        })
    );
    assert_eq!(
        h["bundles"],
        serde_json::json!([{"name": "pten", "version": "1"}]),
        "nothing installed"
    );
    assert!(events(&got, "update_started").is_empty(), "nothing began");
    no_reasons(&got);

    // Then the timestamp metadata forged (its signed part changed, the signature kept): refused
    // before any bundle is chosen, so no bundle and no versions are reported.
    let ts = b.repo.dir.join("metadata/timestamp.json");
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&ts).unwrap()).unwrap();
    let v = forged["signed"]["version"].as_u64().unwrap();
    forged["signed"]["version"] = (v + 1).into();
    std::fs::write(&ts, serde_json::to_vec(&forged).unwrap()).unwrap();
    central
        .publish(
            CMD,
            r#"{"v":1,"id":10,"at":0,"command":"check_for_updates"}"#,
        )
        .await;
    let got = until(&mut central, "forged metadata", &update_log, |got| {
        last_health(got).is_some_and(|h| {
            h["last_update"]["outcome"] == "failed_verification"
                && h["last_update"].get("bundle").is_none()
        })
    })
    .await;
    let s = status(&socket);
    assert_eq!(s["last_check"]["failure"], "verification", "{s}");
    assert!(s["last_check"].get("attempt").is_none(), "{s}");
    let h = last_health(&got).unwrap();
    assert_eq!(
        h["last_update"],
        serde_json::json!({"at": s["last_check"]["at"], "outcome": "failed_verification"})
    );
    no_reasons(&got);
    drop(translate);
}
