//! Who may do what, enforced by a real Mosquitto with the CA's ACL and CRL and seen from
//! rumqttc (MQTT 5, so a refused publish comes back as a PUBACK reason): box A cannot publish
//! under box B's prefix nor read B's commands (and B never acts on what A sends it); no
//! certificate, a certificate from a foreign CA, an expired one and a revoked one are refused
//! at the handshake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Central, Daemon, Fleet, WAIT, until};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Validity};
use valise_pki::enroll::IdentityDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_cannot_write_or_read_another_box() {
    let fleet = Fleet::start(&["lisbon.box-1", "paris.box-9"], &[]);
    let central = Central::connect(&fleet, "central-1", &["valise/v1/+/+/health"]).await;
    let mut b = Daemon::start(&fleet, "paris.box-9", &[], "", None);
    b.wait_log("subscribed to the command topic", WAIT).await;

    let a_tls = fleet.tls(&fleet.box_identity("lisbon.box-1"));
    let (a, mut ev) = AsyncClient::new(fleet.options("lisbon.box-1", a_tls), 16);
    until(&mut ev, WAIT, |p| matches!(p, Packet::ConnAck(_))).await;

    // Publishing under B's prefix: refused by the broker (PUBACK 0x87), not forwarded.
    for (topic, payload) in [
        ("valise/v1/paris/box-9/health", "{}".to_owned()),
        (
            "valise/v1/paris/box-9/cmd",
            r#"{"v":1,"id":66,"at":0,"command":"report_health_now"}"#.to_owned(),
        ),
    ] {
        a.publish(topic, QoS::AtLeastOnce, false, payload.into_bytes())
            .await
            .unwrap();
        let Packet::PubAck(ack) = until(&mut ev, WAIT, |p| matches!(p, Packet::PubAck(_))).await
        else {
            unreachable!()
        };
        assert_eq!(ack.reason, PubAckReason::NotAuthorized, "{topic}");
    }
    // Its own prefix is fine.
    a.publish(
        "valise/v1/lisbon/box-1/health",
        QoS::AtLeastOnce,
        false,
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    let Packet::PubAck(ack) = until(&mut ev, WAIT, |p| matches!(p, Packet::PubAck(_))).await else {
        unreachable!()
    };
    assert!(
        matches!(
            ack.reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        ),
        "{:?}",
        ack.reason
    );

    // Reading B's commands: A subscribes to B's cmd and its own; the centre sends one to
    // each, B's first. Delivery is in order, so A getting only its own means B's never came.
    a.subscribe("valise/v1/paris/box-9/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    a.subscribe("valise/v1/lisbon/box-1/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut subacks = 0;
    until(&mut ev, WAIT, |p| {
        subacks += usize::from(matches!(p, Packet::SubAck(_)));
        subacks == 2
    })
    .await;
    central
        .publish(
            "valise/v1/paris/box-9/cmd",
            r#"{"v":1,"id":77,"at":0,"command":"report_health_now"}"#,
        )
        .await;
    central
        .publish(
            "valise/v1/lisbon/box-1/cmd",
            r#"{"v":1,"id":78,"at":0,"command":"report_health_now"}"#,
        )
        .await;
    let Packet::Publish(p) = until(&mut ev, WAIT, |p| matches!(p, Packet::Publish(_))).await else {
        unreachable!()
    };
    assert_eq!(&p.topic[..], b"valise/v1/lisbon/box-1/cmd");
    assert!(String::from_utf8_lossy(&p.payload).contains("\"id\":78"));

    // B acted on the centre's command (77) and never on A's forged one (66).
    b.wait_log("id=77", WAIT).await;
    assert_eq!(b.count("command received"), 1, "{}", b.log_text());
    assert_eq!(b.count("id=66"), 0);
}

/// Connecting with `tls` never reaches CONNACK: the broker refuses the handshake.
async fn refused(fleet: &Fleet, id: &str, tls: Arc<rustls::ClientConfig>) {
    let r = common::connect(fleet, id, tls).await;
    let e = r.expect_err("the broker accepted the client");
    println!("{id}: refused: {e}");
    let log = fleet.broker.log();
    assert!(!log.contains(&format!(" as {id} (")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_are_refused() {
    let mut fleet = Fleet::start(&["lisbon.box-1"], &["rome.box-2"]);
    let t = fleet.tmp.path().to_path_buf();

    // The good one connects (the harness works).
    let (_ok, mut ev) = AsyncClient::new(
        fleet.options("good", fleet.tls(&fleet.box_identity("lisbon.box-1"))),
        4,
    );
    until(&mut ev, WAIT, |p| matches!(p, Packet::ConnAck(_))).await;

    // No client certificate.
    refused(&fleet, "no-cert", fleet.tls_without_certificate()).await;

    // A box certificate from another CA, for a name the broker knows.
    let mut foreign = Ca::init(&t.join("foreign-ca"), "Foreign CA", Validity::days(2)).unwrap();
    let id = BoxIdentity::new("lisbon", "box-1").unwrap();
    let dir = IdentityDir::new(t.join("foreign-box"));
    let csr = dir.request(&id).unwrap();
    let cert = foreign.issue_box(&csr, &id, Validity::days(2)).unwrap();
    let key = std::fs::read_to_string(t.join("foreign-box/pending/key.pem")).unwrap();
    refused(
        &fleet,
        "foreign-ca",
        fleet.tls(&common::identity(&cert.cert_pem, &key)),
    )
    .await;

    // Expired yesterday, from the right CA.
    let dir = IdentityDir::new(t.join("expired-box"));
    let csr = dir.request(&id).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let past = Validity {
        not_before: now - time::Duration::days(3),
        not_after: now - time::Duration::days(1),
    };
    let cert = fleet.ca.issue_box(&csr, &id, past).unwrap();
    let key = std::fs::read_to_string(t.join("expired-box/pending/key.pem")).unwrap();
    refused(
        &fleet,
        "expired",
        fleet.tls(&common::identity(&cert.cert_pem, &key)),
    )
    .await;

    // Revoked (in the broker's CRL).
    refused(
        &fleet,
        "revoked",
        fleet.tls(&fleet.box_identity("rome.box-2")),
    )
    .await;
}
