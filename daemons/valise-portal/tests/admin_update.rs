//! The admin page's `last_update` comes from the model updater (valise-update, the real
//! daemon on its socket), with a short timeout when it does not answer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;

/// Starts valise-update on `dir/update.sock` with a store whose `current` is a factory slot
/// and a history saying a bundle was installed at `at`.
fn updater(dir: &std::path::Path, at: i64) -> valise_e2e::KillOnDrop {
    let store = dir.join("models");
    std::fs::create_dir_all(store.join("slots/factory")).expect("ok");
    std::fs::write(store.join("slots/factory/manifest.toml"), "").expect("ok");
    std::os::unix::fs::symlink("slots/factory", store.join("current")).expect("ok");
    let state = dir.join("update-state");
    std::fs::create_dir_all(&state).expect("ok");
    std::fs::write(
        state.join("state.json"),
        format!(r#"{{"last_update": {at}}}"#),
    )
    .expect("ok");
    let socket = dir.join("update.sock");
    let config = dir.join("valise-update.toml");
    std::fs::write(
        &config,
        format!(
            "socket = {socket:?}\nmodel_store = {store:?}\nstate_dir = {state:?}\nidentity_dir = {:?}\n",
            dir.join("identity")
        ),
    )
    .expect("ok");
    let mut child = std::process::Command::new(valise_e2e::bin("valise-update"))
        .arg("--config")
        .arg(&config)
        .spawn()
        .expect("ok");
    valise_e2e::wait_for_socket(&mut child, &socket, Duration::from_secs(30));
    valise_e2e::KillOnDrop(child)
}

#[tokio::test]
async fn last_update_is_read_from_the_updater() {
    let dir = tempfile::tempdir().expect("ok");
    let mut config = config_in(dir.path());
    config.engines.update_socket = dir.path().join("update.sock");
    let _updater = updater(dir.path(), 1_796_342_400);
    let portal = Portal::start_with(dir, config).await;
    portal.add_user("root", true);
    let admin = portal.login("root").await;
    let (s, state) = admin.get_json("/api/admin/state").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state["last_update"], 1_796_342_400, "{state}");
}

#[tokio::test]
async fn no_updater_means_null_quickly() {
    let dir = tempfile::tempdir().expect("ok");
    let mut config = config_in(dir.path());
    // A socket nobody accepts on: connect succeeds, no answer ever comes.
    let sock = dir.path().join("silent.sock");
    let _silent = std::os::unix::net::UnixListener::bind(&sock).expect("ok");
    config.engines.update_socket = sock;
    let portal = Portal::start_with(dir, config).await;
    portal.add_user("root", true);
    let admin = portal.login("root").await;
    let t = Instant::now();
    let (s, state) = admin.get_json("/api/admin/state").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(state["last_update"], serde_json::Value::Null);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
