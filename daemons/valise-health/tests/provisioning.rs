//! `provisioning/mosquitto/valise.conf`, as shipped (only its paths and port pointed at the
//! test's files), run by a real Mosquitto: valise-health connects with its box identity and
//! goes online; the central identity reads it; a box writing under another box's prefix is
//! refused; a client without a certificate is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Central, Daemon, Fleet, WAIT, until};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use valise_e2e::mosquitto::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_broker_configuration_enforces_identity_and_acl() {
    // The fleet's CA, boxes and ACL; its own test broker is replaced by the shipped config.
    let mut fleet = Fleet::start(&["lisbon.box-1", "paris.box-9"], &[]);
    let srv = fleet.tmp.path().join("srv");
    let shipped =
        std::fs::read_to_string(valise_e2e::repo().join("provisioning/mosquitto/valise.conf"))
            .unwrap();
    let port = Mosquitto::free_port();
    let persist = fleet.tmp.path().join("persist/");
    std::fs::create_dir_all(&persist).unwrap();
    let conf = shipped
        .replace("/etc/mosquitto/valise/", &format!("{}/", srv.display()))
        .replace(
            "/etc/mosquitto/valise.acl",
            &srv.join("acl").display().to_string(),
        )
        .replace("/var/lib/mosquitto/", &persist.display().to_string())
        .replace("listener 8883", &format!("listener {port} 127.0.0.1"));
    assert!(
        conf.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| !l.contains("/etc/mosquitto")),
        "{conf}"
    );
    fleet.broker.stop();
    fleet.broker = Mosquitto::start_with_config(&conf, port, &srv.join("ca.pem"));

    let mut central = Central::connect(&fleet, "central-1", &["valise/v1/+/+/status"]).await;
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[], "", None);
    let m = central.next_on("status", WAIT).await;
    assert_eq!(m.topic, "valise/v1/lisbon/box-1/status");
    assert_eq!(m.json["state"], "online");
    d.wait_log("connected to the broker", WAIT).await;
    // The user name is the certificate's CN.
    assert!(
        fleet.broker.log().contains("u'lisbon.box-1'"),
        "{}",
        fleet.broker.log()
    );

    let tls = fleet.tls(&fleet.box_identity("paris.box-9"));
    let (c, mut ev) = AsyncClient::new(fleet.options("paris.box-9", tls), 4);
    c.publish(
        "valise/v1/lisbon/box-1/status",
        QoS::AtLeastOnce,
        true,
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    let Packet::PubAck(ack) = until(&mut ev, WAIT, |p| matches!(p, Packet::PubAck(_))).await else {
        unreachable!()
    };
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);

    let r = common::connect(&fleet, "anonymous", fleet.tls_without_certificate()).await;
    assert!(r.is_err(), "a client without a certificate got in");
}
