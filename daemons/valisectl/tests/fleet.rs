//! `valisectl fleet report` against a real Mosquitto with the CA's ACL: the central identity
//! reads what a box publishes (with Mosquitto's own client, a peer independent of ours) and
//! the report shows the box, online, with its versions, models and alerts; messages the ACL
//! refuses never reach it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use valise_e2e::mosquitto::{Mosquitto, MosquittoTls, MqttClient};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Validity};
use valise_pki::enroll::IdentityDir;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        valise_e2e::repo()
            .join("daemons/valise-health-schema/schema/examples")
            .join(name),
    )
    .unwrap()
    .replace('\n', " ")
}

#[test]
fn report_shows_what_boxes_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut ca = Ca::init(&t.join("ca"), "Test CA", Validity::days(2)).unwrap();
    let mut boxes = Vec::new();
    for (site, name) in [("lisbon", "box-1"), ("paris", "box-9")] {
        let id = BoxIdentity::new(site, name).unwrap();
        let home = t.join(id.common_name());
        let csr = IdentityDir::new(&home).request(&id).unwrap();
        let cert = ca.issue_box(&csr, &id, Validity::days(2)).unwrap();
        boxes.push(MqttClient {
            cert: write(&home, "cert.pem", &cert.cert_pem),
            key: home.join("pending/key.pem"),
        });
    }
    let central = ca
        .issue_central(&"fleet".parse().unwrap(), Validity::days(2))
        .unwrap();
    let srv = ca
        .issue_server(&["127.0.0.1".into()], Validity::days(2))
        .unwrap();
    let broker = Mosquitto::start(&MosquittoTls {
        cert: write(t, "srv.pem", &srv.cert_pem),
        key: write(t, "srv.key", &srv.key_pem),
        ca: t.join("ca/ca.pem"),
        crl: None,
        acl: write(t, "acl", &ca.mosquitto_acl()),
    });
    let report = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(["fleet", "report", "--format", "json", "--wait-s", "3"])
        .args(["--client-id", "fleet-report"])
        .arg("--broker")
        .arg(format!("mqtts://127.0.0.1:{}", broker.addr.port()))
        .arg("--cert")
        .arg(write(t, "central.pem", &central.cert_pem))
        .arg("--key")
        .arg(write(t, "central.key", &central.key_pem))
        .arg("--ca")
        .arg(t.join("ca/ca.pem"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    broker.wait_log(
        "Received SUBSCRIBE from fleet-report",
        Duration::from_secs(10),
    );
    let ok = |o: std::process::Output| assert!(o.status.success(), "{o:?}");
    let (lisbon, paris) = (&boxes[0], &boxes[1]);
    ok(broker.publish(
        lisbon,
        "l1",
        "valise/v1/lisbon/box-1/status",
        &example("status-online.json"),
    ));
    ok(broker.publish(
        lisbon,
        "l2",
        "valise/v1/lisbon/box-1/health",
        &example("health-jetson.json"),
    ));
    ok(broker.publish(
        paris,
        "p1",
        "valise/v1/paris/box-9/status",
        &example("status-offline-will.json"),
    ));
    // Refused by the ACL: paris writing under lisbon's prefix.
    ok(broker.publish(
        paris,
        "p2",
        "valise/v1/lisbon/box-1/status",
        &example("status-offline-will.json"),
    ));
    let out = report.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let lisbon = rows.iter().find(|r| r["site"] == "lisbon").unwrap();
    assert_eq!(lisbon["box"], "box-1");
    assert_eq!(lisbon["online"], true, "the forged offline must not count");
    assert_eq!(lisbon["image"], "2026.11.2");
    assert!(
        lisbon["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "silero-vad@5.1")
    );
    assert!(
        lisbon["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "failed:valise-translate.service"),
        "{lisbon}"
    );
    let paris = rows.iter().find(|r| r["site"] == "paris").unwrap();
    assert_eq!(paris["online"], false);
}
