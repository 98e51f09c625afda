//! The CRL valise-update installs from the repository (`crl_file`) is used from the next
//! connection to the broker on, without restarting valise-health: a long-running box does not
//! keep its enrollment's CRL past its nextUpdate, and a revoked broker certificate is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Daemon, Fleet, WAIT};
use valise_pki::ca::Reason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_installed_later_is_used_at_the_next_connection() {
    let mut fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let crl_file = fleet.tmp.path().join("lisbon.box-1/pki/crl.pem");
    let crl_s = format!("{:?}", crl_file.display().to_string());
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[("crl_file", &crl_s)], "", None);
    d.wait_log("connected to the broker", WAIT).await;

    // The central team revokes the broker's certificate; the box gets the new CRL (as
    // valise-update writes it) while valise-health keeps running.
    let serial = fleet.server_serial.clone();
    fleet.ca.revoke(&serial, Reason::KeyCompromise).unwrap();
    let crl = fleet.ca.crl(1).unwrap();
    std::fs::create_dir_all(crl_file.parent().unwrap()).unwrap();
    std::fs::write(&crl_file, &crl.pem).unwrap();

    let before = d.count("connected to the broker");
    fleet.broker.restart();
    d.wait_log("broker link down", WAIT).await;
    // Reconnections are refused: the broker's certificate is revoked.
    d.wait_log_n("broker link down", 3, WAIT).await;
    let log = d.log_text();
    assert_eq!(d.count("connected to the broker"), before, "{log}");
    assert!(log.to_lowercase().contains("revoked"), "{log}");
}
