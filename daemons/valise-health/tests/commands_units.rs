//! Commands and unit states, with a real Mosquitto and the fake systemd on a private D-Bus:
//! commands act only when they come on the box's own topic and are on the fixed list, each is
//! logged (`check_for_updates` goes to valise-update's socket, never to systemd:
//! `tests/update_link.rs` runs it against the real updater); the units'
//! states and restart counts are read over D-Bus, a change sends health at once with the
//! engine_crashed / engine_restarted events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Central, Daemon, Fleet, WAIT};
use valise_e2e::fake_systemd::{FakeSystemd, UnitState};

const CMD: &str = "valise/v1/lisbon/box-1/cmd";

async fn fake() -> (FakeSystemd, Arc<Mutex<Vec<(String, String)>>>) {
    let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = calls.clone();
    let fake = FakeSystemd::start(Arc::new(move |unit: String, mode: String| {
        let seen = seen.clone();
        Box::pin(async move {
            seen.lock().unwrap().push((unit, mode));
            "done".to_owned()
        })
    }))
    .await;
    fake.add_unit("valise-portal.service", UnitState::new("active", "running"))
        .await;
    fake.add_unit(
        "valise-translate.service",
        UnitState::new("active", "running"),
    )
    .await;
    fake.add_unit("valise-update.service", UnitState::new("inactive", "dead"))
        .await;
    fake.add_unit("valise-update.timer", UnitState::new("active", "waiting"))
        .await;
    (fake, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_the_fixed_list_only_and_logged() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let (fake, calls) = fake().await;
    let mut central = Central::connect(&fleet, "central-1", &["valise/v1/+/+/health"]).await;
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[], "", Some(fake.address()));
    d.wait_log("subscribed to the command topic", WAIT).await;
    // The first health (at start); health_interval_s is an hour, so the next one is ours.
    central.next_on("health", WAIT).await;

    // Not on the list, with an argument, not even JSON: refused and logged, nothing done.
    for bad in [
        r#"{"v":1,"id":1,"at":0,"command":"reboot"}"#,
        r#"{"v":1,"id":2,"at":0,"command":"check_for_updates","force":true}"#,
        r#"{"v":2,"id":3,"at":0,"command":"check_for_updates"}"#,
        "rm -rf /",
    ] {
        central.publish(CMD, bad).await;
    }
    d.wait_log_n("refused a command that is not on the fixed list", 4, WAIT)
        .await;
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(d.count("command received"), 0);
    // The refusal log does not echo the payload.
    assert!(!d.log_text().contains("rm -rf"));

    central
        .publish(
            CMD,
            r#"{"v":1,"id":41,"at":0,"command":"check_for_updates"}"#,
        )
        .await;
    d.wait_log(
        "command check_for_updates: asking valise-update for a check",
        WAIT,
    )
    .await;
    assert!(d.log_text().contains("id=41"));
    // No updater on this box: said so, and systemd was asked for nothing.
    d.wait_log(
        "command check_for_updates: valise-update did not run a check",
        WAIT,
    )
    .await;
    assert!(calls.lock().unwrap().is_empty());

    central
        .publish(
            CMD,
            r#"{"v":1,"id":42,"at":0,"command":"report_health_now"}"#,
        )
        .await;
    let h = central.next_on("health", WAIT).await;
    assert_eq!(h.json["replayed"], false);
    d.wait_log("command report_health_now", WAIT).await;
    assert!(d.log_text().contains("id=42"));
    assert_eq!(d.count("command received"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_states_come_from_systemd_over_dbus() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let (fake, _) = fake().await;
    let mut central = Central::connect(
        &fleet,
        "central-1",
        &["valise/v1/+/+/health", "valise/v1/+/+/events"],
    )
    .await;
    let _d = Daemon::start(&fleet, "lisbon.box-1", &[], "", Some(fake.address()));
    let h = central.next_on("health", WAIT).await;
    let units = h.json["units"].as_array().unwrap().clone();
    let find = |units: &[serde_json::Value], name: &str| {
        units
            .iter()
            .find(|u| u["unit"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {units:?}"))
    };
    assert_eq!(find(&units, "valise-portal.service")["state"], "active");
    assert_eq!(find(&units, "valise-update.service")["state"], "inactive");
    // valise-update.timer exists on the bus here but is not a Valise unit: not asked for.
    assert!(units.iter().all(|u| u["unit"] != "valise-update.timer"));
    // Not loaded on this box: not reported (rather than invented).
    assert!(
        units
            .iter()
            .all(|u| u["unit"] != "valise-transcribe.service")
    );
    assert_eq!(units.len(), 3, "{units:?}");

    // The engine crashes and systemd restarts it: health at once, and both events.
    fake.update_unit("valise-translate.service", |u| {
        u.active_state = "failed".into();
        u.sub_state = "failed".into();
        u.n_restarts = 1;
    })
    .await;
    let mut kinds = Vec::new();
    let mut failed_seen = false;
    while !(failed_seen && kinds.len() >= 2) {
        let m = central.next(WAIT).await.expect("no health or event");
        let kind = m.json["event"]["kind"].as_str().unwrap_or("").to_owned();
        if m.topic.ends_with("/events") && kind.starts_with("engine_") {
            assert_eq!(m.json["event"]["unit"], "valise-translate.service");
            assert_eq!(m.json["event"]["restarts"], 1);
            kinds.push(kind);
        } else if m.topic.ends_with("/health") {
            let units = m.json["units"].as_array().unwrap();
            let t = find(units, "valise-translate.service");
            if t["state"] == "failed" {
                assert_eq!(t["restarts"], 1);
                failed_seen = true;
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["engine_crashed", "engine_restarted"]);
}
