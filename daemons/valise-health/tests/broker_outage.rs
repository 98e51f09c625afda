//! The link down, against a real Mosquitto: messages made while the broker is stopped wait in
//! the spool and arrive, in order and marked replayed, once it is back; a hung broker
//! (SIGSTOP) is noticed by the keep-alive while the box goes on spooling; a week-long outage
//! stays within the spool's bound and every record the bound kept arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Central, Daemon, Fleet, Received, WAIT};
use nix::sys::signal::Signal;
use valise_health::{Class, Spool, SpoolConfig};

const FILTERS: &[&str] = &["valise/v1/+/+/health", "valise/v1/+/+/events"];

/// Seqs must rise by exactly one from message to message: nothing lost, nothing reordered.
fn assert_contiguous(got: &[Received]) {
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| m.json["seq"].as_u64().unwrap())
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "seqs not contiguous: {seqs:?}");
    }
}

/// Receives until a message with `seq >= until` arrived.
async fn receive_until(central: &mut Central, until: u64) -> Vec<Received> {
    let mut got = Vec::new();
    loop {
        let m = central
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("stopped after {} messages", got.len()));
        let seq = m.json["seq"].as_u64().unwrap();
        got.push(m);
        if seq >= until {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_in_order_after_the_broker_comes_back() {
    let mut fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let mut central = Central::connect(&fleet, "central-1", FILTERS).await;
    let mut d = Daemon::start(
        &fleet,
        "lisbon.box-1",
        &[("health_interval_s", "1")],
        "",
        None,
    );
    // The very first message may have been spooled before the link was up (then it is a
    // replay); wait for one sent live.
    let mut live = central.next_on("health", WAIT).await;
    while live.json["replayed"] != false {
        live = central.next_on("health", WAIT).await;
    }
    let before = live.json["seq"].as_u64().unwrap();

    fleet.broker.stop();
    d.wait_log("broker link down", WAIT).await;
    let spooled = d.count("spooled health");
    d.wait_log_n("spooled health", spooled + 4, WAIT).await;
    // A fresh spool numbers from 1: the highest seq so far is the number of pushes.
    // Held still while the broker comes back and the centre re-subscribes, so that what the
    // box sends cannot race the centre's subscription.
    d.signal(Signal::SIGSTOP);
    let last_spooled = d.count("spooled");
    fleet.broker.restart();
    drop(central);
    let mut central = Central::connect(&fleet, "central-2", FILTERS).await;
    d.signal(Signal::SIGCONT);

    // Everything after the last live message arrives, in order; what waited is replayed.
    let got = receive_until(&mut central, last_spooled as u64).await;
    assert_contiguous(&got);
    let first = got[0].json["seq"].as_u64().unwrap();
    assert!(
        first <= before + 1,
        "first after the outage {first}, last before {before}"
    );
    let replayed: Vec<&Received> = got.iter().filter(|m| m.json["replayed"] == true).collect();
    assert!(replayed.len() >= 4, "{} replayed", replayed.len());
    // Replays come first, then live messages only.
    let first_live = got
        .iter()
        .position(|m| m.json["replayed"] == false)
        .unwrap_or(got.len());
    assert!(
        got[first_live..]
            .iter()
            .all(|m| m.json["replayed"] == false)
    );
    assert!(
        got.iter()
            .all(|m| m.topic.starts_with("valise/v1/lisbon/box-1/"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_broker_is_noticed_by_keep_alive_and_the_box_goes_on() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let mut central = Central::connect(&fleet, "central-1", FILTERS).await;
    let mut d = Daemon::start(
        &fleet,
        "lisbon.box-1",
        &[("health_interval_s", "1"), ("publish_timeout_s", "60")],
        "",
        None,
    );
    let live = central.next_on("health", WAIT).await;
    let before = live.json["seq"].as_u64().unwrap();
    d.wait_log("connected to the broker", WAIT).await;

    fleet.broker.freeze();
    let frozen = Instant::now();
    let spooled = d.count("spooled health");
    d.wait_log("broker link down", Duration::from_secs(30))
        .await;
    let noticed = frozen.elapsed();
    // keep_alive_s = 5: a missing PINGRESP fails the session at the next ping (publish
    // timeout set far beyond, so it is the keep-alive that notices).
    println!("hung broker noticed after {:.1} s", noticed.as_secs_f64());
    assert!(noticed <= Duration::from_secs(16), "{noticed:?}");
    // The box did not wait for the broker: it kept making and spooling health messages.
    d.wait_log_n("spooled health", spooled + 3, WAIT).await;
    assert!(d.count("spooled health") > spooled + 2);

    fleet.broker.thaw();
    let last = d.count("spooled") as u64;
    let got = receive_until(&mut central, last).await;
    assert!(got.iter().any(|m| m.json["replayed"] == true));
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| m.json["seq"].as_u64().unwrap())
        .collect();
    // At least once: a message in flight when the broker hung may come twice; none is
    // missing, and the order holds.
    let mut dedup = seqs.clone();
    dedup.dedup();
    for w in dedup.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{seqs:?}");
    }
    // The last message before the hang may come again (its PUBACK was lost in the hang).
    assert!(dedup[0] <= before + 1, "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_offline_stays_within_the_bound_and_loses_nothing_it_kept() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let spool_lines = "max_bytes = \"320KiB\"\nsegment_bytes = \"80KiB\"\nfsync = false";
    let cfg = SpoolConfig {
        max_bytes: 320 << 10,
        segment_bytes: 80 << 10,
        fsync: false,
        ..SpoolConfig::default()
    };
    // A week offline, a health message every 10 minutes and an event every 6 hours, as the
    // daemon writes them (schema messages, seq from the spool).
    let dir = fleet.tmp.path().join("lisbon.box-1/daemon/state/spool");
    let now = valise_health::unix_now();
    let start = now - 7 * 86_400;
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            valise_e2e::repo()
                .join("daemons/valise-health-schema/schema/examples/health-jetson.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (kept_events, kept_health, max_seen) = {
        let mut s = Spool::open(&dir, cfg.clone(), start).unwrap();
        let mut max_seen = 0;
        for i in 0..1008u64 {
            let at = start + i * 600;
            let mut h = example.clone();
            h["seq"] = s.next_seq().into();
            h["at"] = at.into();
            s.push(Class::Health, at, &serde_json::to_vec(&h).unwrap())
                .unwrap();
            if i % 36 == 0 {
                let e = serde_json::json!({"v": 1, "seq": s.next_seq(), "at": at, "replayed": false,
                    "event": {"kind": "engine_restarted", "unit": "valise-translate.service", "restarts": i / 36}});
                s.push(Class::Event, at, &serde_json::to_vec(&e).unwrap())
                    .unwrap();
            }
            max_seen = max_seen.max(s.disk_bytes());
            assert!(s.disk_bytes() <= cfg.max_bytes);
        }
        let recs = s.records(now).unwrap();
        let ev = recs.iter().filter(|r| r.class == Class::Event).count();
        (ev, recs.len() - ev, max_seen)
    };
    println!(
        "spool after a week offline: {kept_health} health + {kept_events} events kept, \
         at most {max_seen} of {} bytes",
        cfg.max_bytes
    );
    // Health was dropped to make room, every event stayed.
    assert_eq!(kept_events, 28);
    assert!(kept_health < 1008 && kept_health > 100, "{kept_health}");

    let mut central = Central::connect(&fleet, "central-1", FILTERS).await;
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[], spool_lines, None);
    d.wait_log("connected to the broker", WAIT).await;
    let mut got = Vec::new();
    while got.len() < kept_events + kept_health {
        let m = central
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of the kept records arrived", got.len()));
        if m.json["replayed"] == true {
            got.push(m);
        }
    }
    let ev = got.iter().filter(|m| m.topic.ends_with("/events")).count();
    assert_eq!(ev, kept_events);
    // Replayed in seq order; health without gaps among the kept (the newest), events all.
    let seqs: Vec<u64> = got
        .iter()
        .map(|m| m.json["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let health: Vec<u64> = got
        .iter()
        .filter(|m| m.topic.ends_with("/health"))
        .map(|m| m.json["at"].as_u64().unwrap())
        .collect();
    assert!(
        health.windows(2).all(|w| w[1] == w[0] + 600),
        "gap in health"
    );
    assert_eq!(*health.last().unwrap(), start + 1007 * 600);
    let spool_bytes: u64 = walk(&dir);
    assert!(spool_bytes <= cfg.max_bytes, "{spool_bytes}");
}

fn walk(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    // The daemon deletes delivered segments meanwhile: a file gone is not counted.
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            n += walk(&e.path());
        } else if e.path().extension().is_some_and(|x| x == "seg") {
            n += m.len();
        }
    }
    n
}
