//! The retained status against a real Mosquitto: `online` when valise-health connects,
//! `offline` from the broker as the box's last will when the process is killed with SIGKILL
//! (nothing of the box runs to say goodbye), and `offline` from the box itself on a clean
//! stop. A subscriber that arrives later still sees the box's last state (retained).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Central, Daemon, Fleet, WAIT};
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_then_offline_by_last_will_on_sigkill() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let mut central = Central::connect(&fleet, "central-watch", &["valise/v1/+/+/status"]).await;
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[], "", None);

    let m = central.next_on("status", WAIT).await;
    assert_eq!(m.topic, "valise/v1/lisbon/box-1/status");
    assert_eq!(m.json["state"], "online", "{:?}", m.json);
    assert_eq!(m.json["v"], 1);
    d.wait_log("connected to the broker", WAIT).await;

    // A late subscriber gets the retained `online`.
    let mut late = Central::connect(&fleet, "central-late", &["valise/v1/+/+/status"]).await;
    let r = late.next_on("status", WAIT).await;
    assert!(r.retain, "status must be retained");
    assert_eq!(r.json["state"], "online");
    drop(late);

    d.signal(Signal::SIGKILL);
    // The broker publishes the will once it sees the TCP connection gone.
    let m = central.next_on("status", WAIT).await;
    assert_eq!(m.topic, "valise/v1/lisbon/box-1/status");
    assert_eq!(m.json["state"], "offline", "{:?}", m.json);
    // The box never said goodbye: that `offline` is the will.
    let log = fleet.broker.log();
    assert!(
        !log.contains("Received DISCONNECT from lisbon.box-1"),
        "{log}"
    );
    assert!(
        log.contains("Client lisbon.box-1 closed its connection"),
        "{log}"
    );
    let mut late = Central::connect(&fleet, "central-late-2", &["valise/v1/+/+/status"]).await;
    let r = late.next_on("status", WAIT).await;
    assert!(r.retain);
    assert_eq!(r.json["state"], "offline");

    // Restarted, the box is online again.
    d.spawn();
    let m = central.next_on("status", WAIT).await;
    assert_eq!(m.json["state"], "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_stop_says_offline_itself() {
    let fleet = Fleet::start(&["paris.box-9"], &[]);
    let mut central = Central::connect(&fleet, "central-watch", &["valise/v1/+/+/status"]).await;
    let mut d = Daemon::start(&fleet, "paris.box-9", &[], "", None);
    assert_eq!(
        central.next_on("status", WAIT).await.json["state"],
        "online"
    );
    d.wait_log("connected to the broker", WAIT).await;
    d.signal(Signal::SIGTERM);
    let m = central.next_on("status", WAIT).await;
    assert_eq!(m.json["state"], "offline");
    // It said so itself: the box published its status twice (online, then offline), it
    // did not leave it to the will.
    let own = fleet
        .broker
        .log()
        .lines()
        .filter(|l| {
            l.contains("Received PUBLISH from paris.box-9")
                && l.contains("'valise/v1/paris/box-9/status'")
        })
        .count();
    assert_eq!(own, 2, "{}", fleet.broker.log());
}
