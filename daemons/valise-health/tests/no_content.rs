//! Issue 9, item 4: valise-health never sends content. Real work first (the portal with the
//! real engines: a recording transcribed and its transcript translated, a document translated,
//! text translated, failed sign-ins, all with distinctive file names, words and user names),
//! then valise-health reads that box (the counts the running portal publishes from its real
//! database, the real model store, the fake systemd with a crashing engine) and every message kind it sends is collected from a
//! real Mosquitto: status (online, and offline as the will), health (live and replayed),
//! events (failed_sign_ins, disk_nearly_full, expiry_soon, engine_crashed, engine_restarted).
//! None holds a file name, a word of the text or transcript, or a user name; neither does the
//! spool on disk nor the daemon's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The portal's own test harness: a real portal in-process and a client of it.
#[path = "../../valise-portal/tests/common/mod.rs"]
mod portal;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Central, Daemon, Fleet, Received, WAIT};
use nix::sys::signal::Signal;
use portal::Portal;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use valise_e2e::fake_systemd::{FakeSystemd, UnitState};

const USER: &str = "anasecretuser";
const INTRUDER: &str = "malloryplugh";
/// Words that must never leave the box (file names, their stems, text, user names).
const SECRETS: &[&str] = &[
    "FROBNICATE",
    "interview-FROBNICATE",
    "XYZZY",
    "confidential-memo",
    "QUUXWORD",
    "ambassador",
    "embassy",
    "anasecretuser",
    "malloryplugh",
    // words of the recording's transcript (jfk.wav) and its translation
    "fellow",
    "country",
    "americans",
];

/// Runs real jobs on a real portal with the real engines (the portal's own test harness);
/// returns the portal, still running and publishing its counts into `counts` every second.
async fn real_work(counts: &std::path::Path) -> Portal {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let mut config = portal::config_in(dir.path());
    config.counts.file = counts.to_owned();
    config.counts.interval_secs = 1;
    let portal = Portal::start_with(dir, config).await;
    portal.add_user(USER, false);

    // Failed sign-ins: a wrong password for the real user, an unknown name.
    for (u, p) in [(USER, "wrong ambassador"), (INTRUDER, "x"), (INTRUDER, "y")] {
        assert_ne!(portal.client().login(u, p).await.status(), StatusCode::OK);
    }
    let c = portal.login(USER).await;

    let ok = |(s, v): (StatusCode, Value)| {
        assert!(s.is_success(), "{s} {v}");
        v
    };
    let done = async |id: &str| {
        let j = portal::wait_job(&c, id, Duration::from_secs(300)).await;
        assert_eq!(j["state"], "done", "job {id}: {j}");
    };
    let audio = std::fs::read(valise_e2e::testdata("jfk.wav")).unwrap();
    let job = ok(c
        .upload(
            "/api/jobs/transcribe?filename=interview-FROBNICATE.wav&language=en",
            audio,
        )
        .await);
    let tid = job["id"].as_str().unwrap().to_owned();
    let doc = ok(c
        .upload(
            "/api/jobs/document?filename=confidential-memo-XYZZY.txt&target=pt",
            b"The ambassador meets QUUXWORD at the embassy tomorrow.\n".to_vec(),
        )
        .await);
    let text = ok(c
        .send_json(
            Method::POST,
            "/api/translate",
            &json!({"text": "The ambassador meets QUUXWORD tomorrow.", "target": "pt"}),
        )
        .await);
    assert!(text["translation"].as_str().unwrap().contains("QUUXWORD"));
    done(doc["id"].as_str().unwrap()).await;
    done(&tid).await;
    let tr = ok(c
        .send_json(
            Method::POST,
            &format!("/api/jobs/{tid}/translate"),
            &json!({"target": "pt"}),
        )
        .await);
    done(tr["id"].as_str().unwrap()).await;
    portal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_of_any_kind_carries_content() {
    let run = tempfile::tempdir().unwrap();
    let counts = run.path().join("counts.json");
    let mut portal = real_work(&counts).await;

    let mut fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let fake = FakeSystemd::start_ok().await;
    for u in [
        "valise-portal.service",
        "valise-transcribe.service",
        "valise-translate.service",
    ] {
        fake.add_unit(u, UnitState::new("active", "running")).await;
    }
    let filters = [
        "valise/v1/+/+/status",
        "valise/v1/+/+/health",
        "valise/v1/+/+/events",
    ];
    // The box starts with the broker down: its first messages wait in the spool (replayed).
    fleet.broker.stop();
    let store = valise_e2e::store();
    let counts_s = format!("{:?}", counts.display().to_string());
    let store_s = format!("{:?}", store.display().to_string());
    let mut d = Daemon::start(
        &fleet,
        "lisbon.box-1",
        &[
            ("portal_counts", counts_s.as_str()),
            ("model_store", store_s.as_str()),
            ("health_interval_s", "1"),
            // Low thresholds so that every event kind fires on this machine.
            ("alerts", "{ failed_sign_ins = 2, disk_full_percent = 1 }"),
        ],
        "",
        Some(fake.address()),
    );
    d.wait_log("spooled health", WAIT).await;
    // Failed sign-ins while valise-health watches (it counts the rise of the portal's counter
    // within its window, from its first reading on).
    for p in ["wrong ambassador", "x"] {
        assert_ne!(
            portal.client().login(INTRUDER, p).await.status(),
            StatusCode::OK
        );
    }
    d.signal(Signal::SIGSTOP);
    fleet.broker.restart();
    let mut central = Central::connect(&fleet, "central-1", &filters).await;
    d.signal(Signal::SIGCONT);
    d.wait_log("connected to the broker", WAIT).await;
    fake.update_unit("valise-translate.service", |u| {
        u.active_state = "failed".into();
        u.n_restarts = 2;
    })
    .await;

    let mut got: Vec<Received> = Vec::new();
    let mut kinds = BTreeSet::new();
    let want = [
        "status:online",
        "health:live",
        "health:replayed",
        "events:failed_sign_ins",
        "events:disk_nearly_full",
        "events:expiry_soon",
        "events:engine_crashed",
        "events:engine_restarted",
    ];
    let start = Instant::now();
    while !want.iter().all(|k| kinds.contains(*k)) {
        assert!(start.elapsed() < Duration::from_secs(60), "only {kinds:?}");
        let Some(m) = central.next(WAIT).await else {
            break;
        };
        let channel = m.topic.rsplit('/').next().unwrap().to_owned();
        let kind = match channel.as_str() {
            "status" => format!("status:{}", m.json["state"].as_str().unwrap()),
            "health" if m.json["replayed"] == true => "health:replayed".into(),
            "health" => {
                // The counts came from the portal's real database, through its counts file.
                assert!(
                    m.json["jobs"]["done_last_hour"].as_u64().unwrap() >= 3,
                    "{}",
                    m.json
                );
                "health:live".into()
            }
            _ => format!("events:{}", m.json["event"]["kind"].as_str().unwrap()),
        };
        kinds.insert(kind);
        got.push(m);
    }
    // The will: offline, sent by the broker when the box dies.
    d.signal(Signal::SIGKILL);
    let will = central.next_on("status", WAIT).await;
    assert_eq!(will.json["state"], "offline");
    got.push(will);

    let mut checked = 0;
    for m in &got {
        let text = String::from_utf8_lossy(&m.raw).to_lowercase();
        for s in SECRETS {
            assert!(
                !text.contains(&s.to_lowercase()),
                "{s:?} left the box on {}: {text}",
                m.topic
            );
        }
        checked += 1;
    }
    println!("{checked} messages checked, kinds: {kinds:?}");
    // Nor what stays on the box for it: the spool and the daemon's log.
    let mut on_disk = d.log_text().to_lowercase();
    for e in portal::files_under(&d.dir.join("state")) {
        on_disk.push_str(&String::from_utf8_lossy(&std::fs::read(e).unwrap()).to_lowercase());
    }
    for s in SECRETS {
        assert!(
            !on_disk.contains(&s.to_lowercase()),
            "{s:?} in the spool or log"
        );
    }
    portal.stop().await;
}
