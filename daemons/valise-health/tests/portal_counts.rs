//! The portal's counts reach the centre while the portal's database is out of valise-health's
//! reach, as on a box: valise-health runs as another user (nobody, as it runs as
//! `valise-health` there), the portal's data directory is 0700 and its database 0600, and the
//! counts come from the file the running portal publishes into a setgid directory of
//! valise-health's group (on a box `/run/valise-portal`, 2750 valise-portal:valise-health).
//! Real portal, real translation engine, a real job and real failed sign-ins first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The portal's own test harness: a real portal in-process and a client of it.
#[path = "../../valise-portal/tests/common/mod.rs"]
mod portal;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Central, Daemon, Fleet, WAIT};
use portal::Portal;
use reqwest::StatusCode;
use valise_e2e::engines::EngineProc;

const NOBODY: (u32, u32) = (65534, 65534);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_reach_the_centre_without_access_to_the_portals_database() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    // /run/valise-portal of a box: root:nogroup here, setgid, 2750.
    let run = tempfile::tempdir().unwrap();
    std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let cdir = run.path().join("valise-portal");
    std::fs::create_dir(&cdir).unwrap();
    std::os::unix::fs::chown(&cdir, Some(0), Some(NOBODY.1)).unwrap();
    std::fs::set_permissions(&cdir, std::fs::Permissions::from_mode(0o2750)).unwrap();
    let counts = cdir.join("counts.json");

    let dir = tempfile::tempdir().unwrap();
    let _translate = EngineProc::start(
        "valise-translate",
        Path::new("/dev/null"),
        &dir.path().join("translate.sock"),
    );
    let mut config = portal::config_in(dir.path());
    config.counts.file = counts.clone();
    config.counts.interval_secs = 1;
    let mut portal = Portal::start_with(dir, config).await;
    portal.add_user("clerk", false);
    let c = portal.login("clerk").await;
    let (s, job) = c
        .upload(
            "/api/jobs/document?filename=memo.txt&target=pt",
            b"The cat is on the table.\n".to_vec(),
        )
        .await;
    assert!(s.is_success(), "{s} {job}");
    let j = portal::wait_job(&c, job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(j["state"], "done", "{j}");

    // What the health process can and cannot reach.
    let db = portal.config.db_path();
    let as_nobody = |p: &Path| {
        std::process::Command::new("head")
            .args(["-c", "1"])
            .arg(p)
            .uid(NOBODY.0)
            .gid(NOBODY.1)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(db.exists());
    assert!(
        !as_nobody(&db),
        "the portal's database must be out of reach"
    );
    let start = Instant::now();
    while !counts.exists() {
        assert!(start.elapsed() < WAIT, "the portal never wrote its counts");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = std::fs::metadata(&counts).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(meta.gid(), NOBODY.1, "the file takes the directory's group");
    assert!(as_nobody(&counts));

    let mut central = Central::connect(
        &fleet,
        "central-1",
        &["valise/v1/+/+/health", "valise/v1/+/+/events"],
    )
    .await;
    let counts_s = format!("{:?}", counts.display().to_string());
    let mut d = Daemon::start_as(
        &fleet,
        "lisbon.box-1",
        &[
            ("portal_counts", counts_s.as_str()),
            ("health_interval_s", "1"),
            (
                "alerts",
                "{ failed_sign_ins = 3, failed_sign_ins_window_s = 600 }",
            ),
        ],
        "",
        None,
        Some(NOBODY),
    );
    d.wait_log("spooled health", WAIT).await;
    for p in ["a", "b", "c"] {
        assert_ne!(
            portal.client().login("clerk", p).await.status(),
            StatusCode::OK
        );
    }
    let (mut jobs_seen, mut alert) = (false, None);
    let start = Instant::now();
    while !(jobs_seen && alert.is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs {jobs_seen}, alert {alert:?}: {}",
            d.log_text()
        );
        let Some(m) = central.next(WAIT).await else {
            continue;
        };
        if m.topic.ends_with("/health") && m.json["jobs"]["done_last_hour"] == 1 {
            jobs_seen = true;
        }
        if m.json["event"]["kind"] == "failed_sign_ins" {
            alert = Some(m.json["event"].clone());
        }
    }
    let alert = alert.unwrap();
    assert_eq!(alert["count"], 3, "{alert}");
    assert_eq!(alert["window_s"], 600);
    assert!(
        !d.log_text().contains("Permission denied"),
        "{}",
        d.log_text()
    );
    portal.stop().await;
}
