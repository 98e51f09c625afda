//! A short run of the load test against the real portal process and the real engines:
//! every call answered without error, every job created finished, none lost. (Latency
//! targets are measured by `scripts/load-portal`, not asserted here.)

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use valise_e2e::{bin, testdata};

#[test]
fn concurrent_staff_get_answers_and_no_job_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = valise_e2e::engines::start_engines(dir.path(), 2);
    let data = dir.path().join("data");
    let mut portal = Command::new(bin("valise-portal"))
        .args([
            "--config",
            "/dev/null",
            "--addr",
            "127.0.0.1:0",
            "--redirect-addr",
            "none",
            "--dev-cert",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--transcribe-socket")
        .arg(dir.path().join("transcribe.sock"))
        .arg("--translate-socket")
        .arg(dir.path().join("translate.sock"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(portal.stderr.take().unwrap()).lines();
    let _portal = valise_e2e::KillOnDrop(portal);
    let url = loop {
        let line = lines
            .next()
            .expect("the portal exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let users = valise_load_portal::create_users(&data.join("portal.db"), 12).unwrap();
    let plan = valise_load_portal::Plan {
        url,
        cert_pem: std::fs::read(data.join("tls/cert.pem")).unwrap(),
        users,
        uploads: 2,
        recording: std::fs::read(testdata("jfk.wav")).unwrap(),
        duration: Duration::from_secs(12),
        max_rounds: 1000,
        ramp: Duration::from_secs(2),
    };
    let db = valise_portal::Db::open(&data.join("portal.db")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(valise_load_portal::run(plan, |id| {
            valise_load_portal::db_job_state(&db, id)
        }))
        .unwrap();
    report.print();
    assert_eq!(report.errors(), 0, "{:?}", report.error_samples);
    assert!(report.kinds["login"].count == 12, "every user signed in");
    assert!(report.kinds["translate"].count > 10);
    assert!(report.jobs_created >= 2, "both uploaders uploaded");
    assert_eq!((report.jobs_failed, report.jobs_lost), (0, 0));
    // Jobs still running at the end finish: none is stuck.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let ids: Vec<String> = db
        .with(|c| {
            Ok(
                valise_portal::jobs::of_state(c, valise_portal::jobs::State::Queued)?
                    .into_iter()
                    .chain(valise_portal::jobs::of_state(
                        c,
                        valise_portal::jobs::State::Running,
                    )?)
                    .map(|j| j.id)
                    .collect(),
            )
        })
        .unwrap();
    for id in ids {
        loop {
            let s = valise_load_portal::db_job_state(&db, &id).unwrap();
            if s == "done" {
                break;
            }
            assert!(s == "queued" || s == "running", "{id}: {s}");
            assert!(std::time::Instant::now() < deadline, "{id} stuck in {s}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
