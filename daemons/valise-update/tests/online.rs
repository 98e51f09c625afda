//! An online check (DESIGN.md §5, issue 12 item 5) against a real nginx serving the
//! repository with `ssl_verify_client on`: the box presents the certificate `valisectl enroll`
//! installed, its identity (`site/box` from that certificate) decides the wave, and the same
//! flow as a USB copy installs the bundle. A box the wave does not name installs nothing.

mod fixture;

use fixture::*;
use valise_bundle::CRL_TARGET;
use valise_bundle::Wave;
use valise_e2e::nginx::{Nginx, NginxTls};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Reason, Validity};
use valise_pki::enroll::{Endpoints, IdentityDir};
use valise_update::Service;
use valise_update::history::{Failure, Outcome};
use valise_update::source::Origin;

/// A CA, nginx serving the test box's repository directory over mutual TLS, and the box's
/// identity `lisbon/<box_name>` installed in `<tmp>/identity`.
fn online(b: &TestBox, box_name: &str) -> Nginx {
    online_with_ca(b, box_name).0
}

/// [`online`], also giving the CA and the serial of nginx's server certificate; the identity
/// is installed with the CA's first CRL (number 1, nothing revoked).
fn online_with_ca(b: &TestBox, box_name: &str) -> (Nginx, Ca, String) {
    let p = |s: &str| b.tmp.path().join(s);
    let mut ca = Ca::init(&p("ca"), "Test CA", Validity::days(30)).expect("ca");
    let srv = ca
        .issue_server(&["127.0.0.1".to_owned()], Validity::days(30))
        .expect("server");
    std::fs::write(p("srv.pem"), &srv.cert_pem).expect("write");
    std::fs::write(p("srv.key"), &srv.key_pem).expect("write");
    let nginx = Nginx::start(&NginxTls {
        cert: p("srv.pem"),
        key: p("srv.key"),
        client_ca: p("ca/ca.pem"),
        crl: None,
        root: Some(b.tmp.path().to_owned()),
    });
    let id = BoxIdentity::new("lisbon", box_name).expect("identity");
    let idd = IdentityDir::new(p("identity"));
    let csr = idd.request(&id).expect("request");
    let cert = ca.issue_box(&csr, &id, Validity::days(30)).expect("issue");
    let repo = format!("https://127.0.0.1:{}/usb", nginx.addr.port());
    let endpoints = Endpoints::new(&repo, "mqtts://127.0.0.1:8883").expect("endpoints");
    let crl = ca.crl(30).expect("crl");
    idd.install(&cert.cert_pem, ca.cert_pem(), &endpoints, Some(&crl.pem))
        .expect("install");
    (nginx, ca, srv.issued.serial)
}

fn service(b: &TestBox) -> Service {
    let mut cfg = b.config();
    cfg.identity_dir = b.tmp.path().join("identity");
    Service::new(cfg, Box::new(OkEngines)).expect("service")
}

fn only_box_1() -> Bundle {
    let mut pten = bundle("pten", 1);
    pten.wave = Wave {
        boxes: vec!["lisbon/box-1".into()],
        percent: 0,
    };
    pten
}

#[test]
fn online_check_over_mutual_tls_installs_for_the_box_the_wave_names() {
    let mut b = TestBox::new();
    b.repo.publish(&[only_box_1()]);
    let _nginx = online(&b, "box-1");
    let svc = service(&b);
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    assert_eq!(r.source, "repository");
    assert_eq!(b.check_current()["pten"], 1);
}

#[test]
fn online_check_for_a_box_outside_the_wave_installs_nothing() {
    let mut b = TestBox::new();
    b.repo.publish(&[only_box_1()]);
    let _nginx = online(&b, "box-2");
    let svc = service(&b);
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert_eq!(b.current(), "factory");
}

// The CA's CRL published as the target `pki/crl.pem` (DESIGN.md §3.4): a box keeps a CRL
// that has not expired, and a revocation reaches boxes through the signed repository.

#[test]
fn a_published_crl_is_installed_and_then_refuses_a_revoked_repository_server() {
    let mut b = TestBox::new();
    let (_nginx, mut ca, server_serial) = online_with_ca(&b, "box-1");
    ca.revoke(&server_serial, Reason::KeyCompromise)
        .expect("revoke");
    let crl = ca.crl(30).expect("crl 2");
    b.repo.extra = vec![(CRL_TARGET.into(), crl.pem.clone().into_bytes())];
    b.repo.publish(&[]);
    let svc = service(&b);
    // This check still trusts the server (the enrollment's CRL revokes nobody) and brings
    // the new CRL.
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert!(
        r.reason.contains("CRL 2 installed (1 revoked)"),
        "{}",
        r.reason
    );
    let installed = std::fs::read_to_string(b.tmp.path().join("pki/crl.pem")).expect("file");
    assert_eq!(installed, crl.pem);
    // The next one refuses the revoked server.
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.to_lowercase().contains("revoked"), "{}", r.reason);
    assert_eq!(
        r.failure,
        Some(Failure::Download),
        "the repository could not be reached"
    );
    assert_eq!(r.attempt, None);
}

#[test]
fn a_crl_from_a_usb_copy_is_used_by_the_next_online_check() {
    let mut b = TestBox::new();
    let (_nginx, mut ca, server_serial) = online_with_ca(&b, "box-1");
    ca.revoke(&server_serial, Reason::Superseded)
        .expect("revoke");
    b.repo.extra = vec![(CRL_TARGET.into(), ca.crl(30).expect("crl").pem.into_bytes())];
    b.repo.publish(&[]);
    let svc = service(&b);
    let r = svc.check(&Origin::Dir(b.repo.dir.clone()), now());
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert!(r.reason.contains("CRL 2 installed"), "{}", r.reason);
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.to_lowercase().contains("revoked"), "{}", r.reason);
}

#[test]
fn a_crl_of_another_ca_or_an_older_one_is_not_installed() {
    let mut b = TestBox::new();
    let (_nginx, ca, _) = online_with_ca(&b, "box-1");
    // Another CA with the same name, revoking nothing: installed, it would make the box
    // refuse every server (a CRL whose signature does not match).
    let mut other =
        Ca::init(&b.tmp.path().join("other"), "Test CA", Validity::days(30)).expect("other ca");
    let foreign = other.crl(30).expect("crl");
    b.repo.extra = vec![(CRL_TARGET.into(), foreign.pem.into_bytes())];
    b.repo.publish(&[]);
    let svc = service(&b);
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert!(r.reason.contains("CRL refused"), "{}", r.reason);
    assert!(!b.tmp.path().join("pki/crl.pem").exists());
    // The CA's own first CRL again (number 1, as installed): not newer, not installed.
    let first = std::fs::read_to_string(b.tmp.path().join("ca/crl.pem")).expect("ca crl");
    drop(ca);
    b.repo.extra = vec![(CRL_TARGET.into(), first.into_bytes())];
    b.repo.publish(&[]);
    let r = svc.check(&Origin::Repository, now());
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert!(!r.reason.contains("CRL"), "{}", r.reason);
    assert!(!b.tmp.path().join("pki/crl.pem").exists());
}
