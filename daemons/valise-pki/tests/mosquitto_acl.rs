//! The ACL `valisectl ca acl` writes, enforced by a real Mosquitto with the identities the CA
//! issues (common name as user name, CRL): a box writes only under its own
//! `valise/v1/<site>/<box>/` and reads only its own `cmd`; the central client reads all and
//! writes commands; a revoked box does not get in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use valise_e2e::mosquitto::{Mosquitto, MosquittoTls, MqttClient};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Reason, Validity};
use valise_pki::enroll::IdentityDir;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn enroll(ca: &mut Ca, dir: &Path, site: &str, name: &str) -> MqttClient {
    let id = BoxIdentity::new(site, name).unwrap();
    let home = dir.join(id.common_name());
    let csr = IdentityDir::new(&home).request(&id).unwrap();
    let cert = ca.issue_box(&csr, &id, Validity::days(2)).unwrap();
    MqttClient {
        cert: write(&home, "cert.pem", &cert.cert_pem),
        key: home.join("pending/key.pem"),
    }
}

/// What a `mosquitto_sub -v` printed, once it exits (after its count or its timeout).
fn received(child: std::process::Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn broker_enforces_the_generated_acl() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut ca = Ca::init(&t.join("ca"), "Test CA", Validity::days(2)).unwrap();
    let lisbon = enroll(&mut ca, t, "lisbon", "box-1");
    let paris = enroll(&mut ca, t, "paris", "box-9");
    let rome = enroll(&mut ca, t, "rome", "box-2");
    let rome_serial = ca.issued().last().unwrap().serial.clone();
    ca.revoke(&rome_serial, Reason::KeyCompromise).unwrap();
    let central = ca
        .issue_central(&"fleet".parse().unwrap(), Validity::days(2))
        .unwrap();
    let central = MqttClient {
        cert: write(t, "central.pem", &central.cert_pem),
        key: write(t, "central.key", &central.key_pem),
    };
    let srv = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], Validity::days(2))
        .unwrap();
    let acl = ca.mosquitto_acl();
    assert!(!acl.contains("rome.box-2"), "{acl}");
    let crl = ca.crl(1).unwrap();
    let broker = Mosquitto::start(&MosquittoTls {
        cert: write(t, "srv.pem", &srv.cert_pem),
        key: write(t, "srv.key", &srv.key_pem),
        ca: t.join("ca/ca.pem"),
        crl: Some(write(t, "crl.pem", &crl.pem)),
        acl: write(t, "acl", &acl),
    });

    // Boxes publish; the central client reads everything. A box writing under another
    // box's prefix is dropped (QoS 1: each publish reached the broker before the next).
    let fleet = broker.subscribe(&central, "central-sub", &["valise/v1/#"], 2, 10);
    let ok = |o: std::process::Output| assert!(o.status.success(), "{o:?}");
    ok(broker.publish(
        &lisbon,
        "lisbon-forge",
        "valise/v1/paris/box-9/health",
        "forged",
    ));
    ok(broker.publish(
        &lisbon,
        "lisbon-pub",
        "valise/v1/lisbon/box-1/health",
        "ok-1",
    ));
    ok(broker.publish(&paris, "paris-pub", "valise/v1/paris/box-9/health", "ok-9"));
    assert_eq!(
        received(fleet),
        [
            "valise/v1/lisbon/box-1/health ok-1",
            "valise/v1/paris/box-9/health ok-9"
        ]
    );
    assert!(broker.log().contains("Denied PUBLISH from lisbon-forge"));

    // Commands: each box reads only its own `cmd`, even when it subscribes to others';
    // only the central client's commands arrive.
    let lisbon_in = broker.subscribe(
        &lisbon,
        "lisbon-sub",
        &[
            "valise/v1/lisbon/box-1/cmd",
            "valise/v1/paris/box-9/cmd",
            "valise/v1/paris/box-9/health",
        ],
        1,
        10,
    );
    let paris_in = broker.subscribe(&paris, "paris-sub", &["valise/v1/paris/box-9/cmd"], 1, 10);
    ok(broker.publish(
        &lisbon,
        "lisbon-cmd",
        "valise/v1/paris/box-9/cmd",
        "forged-cmd",
    ));
    ok(broker.publish(
        &paris,
        "paris-health",
        "valise/v1/paris/box-9/health",
        "ok-9b",
    ));
    ok(broker.publish(
        &central,
        "central-1",
        "valise/v1/paris/box-9/cmd",
        "real-cmd",
    ));
    ok(broker.publish(
        &central,
        "central-2",
        "valise/v1/lisbon/box-1/cmd",
        "restart",
    ));
    assert_eq!(received(paris_in), ["valise/v1/paris/box-9/cmd real-cmd"]);
    assert_eq!(received(lisbon_in), ["valise/v1/lisbon/box-1/cmd restart"]);

    // A revoked box is refused at the TLS handshake (CRL).
    let out = broker.publish(&rome, "rome-pub", "valise/v1/rome/box-2/health", "x");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !broker
            .log()
            .contains("New client connected from 127.0.0.1 as rome-pub")
    );
}
