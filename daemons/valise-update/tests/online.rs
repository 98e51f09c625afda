//! An online check (DESIGN.md §5, issue 12 item 5) against a real nginx serving the
//! repository with `ssl_verify_client on`: the box presents the certificate `valisectl enroll`
//! installed, its identity (`site/box` from that certificate) decides the wave, and the same
//! flow as a USB copy installs the bundle. A box the wave does not name installs nothing.

mod fixture;

use fixture::*;
use valise_bundle::Wave;
use valise_e2e::nginx::{Nginx, NginxTls};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Validity};
use valise_pki::enroll::{Endpoints, IdentityDir};
use valise_update::Service;
use valise_update::history::Outcome;
use valise_update::source::Origin;

/// A CA, nginx serving the test box's repository directory over mutual TLS, and the box's
/// identity `lisbon/<box_name>` installed in `<tmp>/identity`.
fn online(b: &TestBox, box_name: &str) -> Nginx {
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
    idd.install(&cert.cert_pem, ca.cert_pem(), &endpoints, None)
        .expect("install");
    nginx
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
