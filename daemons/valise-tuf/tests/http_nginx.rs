//! `HttpFetch` against a real nginx (`ssl_verify_client on`) serving a repository directory,
//! with the box's mutual-TLS configuration from `valise_pki::tls::client_config`: a file
//! fetched; a file longer than the limit refused; a missing one is `NotFound`; without a
//! client certificate nothing is served; an interrupted target resumes with HTTP Range.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use valise_e2e::nginx::{Nginx, NginxTls};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Validity};
use valise_pki::enroll::IdentityDir;
use valise_pki::pem;
use valise_pki::tls::{ClientIdentity, client_config};
use valise_tuf::fetch::http::{HttpFetch, HttpLimits};
use valise_tuf::fetch::{Fetch, FetchError};

struct Repo {
    _tmp: tempfile::TempDir,
    nginx: Nginx,
    /// The box's mutual-TLS configuration.
    tls: Arc<rustls::ClientConfig>,
    /// Trusts the CA but presents no certificate.
    anonymous: Arc<rustls::ClientConfig>,
}

fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s);
    let mut ca = Ca::init(&p("ca"), "Test CA", Validity::days(30)).unwrap();
    let srv = ca
        .issue_server(&["127.0.0.1".to_owned()], Validity::days(30))
        .unwrap();
    std::fs::write(p("srv.pem"), &srv.cert_pem).unwrap();
    std::fs::write(p("srv.key"), &srv.key_pem).unwrap();
    let id = BoxIdentity::new("lisbon", "box-1").unwrap();
    let idd = IdentityDir::new(p("box"));
    let csr = idd.request(&id).unwrap();
    let cert = ca.issue_box(&csr, &id, Validity::days(30)).unwrap();
    let key = std::fs::read_to_string(p("box/pending/key.pem")).unwrap();
    let identity = ClientIdentity {
        chain: pem::certificates("cert", &cert.cert_pem).unwrap(),
        key: pem::private_key("key", &key).unwrap(),
    };
    let ca_der = pem::certificates("ca", ca.cert_pem()).unwrap();
    let tls = client_config(&identity, &ca_der, &[]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der[0].clone()).unwrap();
    let anonymous = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    let www = p("www");
    std::fs::create_dir_all(www.join("repo/metadata")).unwrap();
    std::fs::create_dir_all(www.join("repo/targets/fr-en")).unwrap();
    std::fs::write(www.join("repo/metadata/1.root.json"), b"{\"root\":1}").unwrap();
    std::fs::write(www.join("repo/targets/fr-en/model.bin"), vec![7u8; 100_000]).unwrap();
    let nginx = Nginx::start(&NginxTls {
        cert: p("srv.pem"),
        key: p("srv.key"),
        client_ca: p("ca/ca.pem"),
        crl: None,
        root: Some(www),
    });
    Repo {
        _tmp: tmp,
        nginx,
        tls,
        anonymous,
    }
}

impl Repo {
    fn fetch(&self, tls: &Arc<rustls::ClientConfig>) -> HttpFetch {
        let base = format!("https://{}/repo/", self.nginx.addr);
        HttpFetch::new(&base, tls.clone(), HttpLimits::default()).unwrap()
    }
}

#[test]
fn fetches_over_mutual_tls_within_limits() {
    let r = repo();
    let f = r.fetch(&r.tls);
    assert_eq!(f.metadata("1.root.json", 10).unwrap(), b"{\"root\":1}");
    let model = f.target("fr-en/model.bin", 100_000).unwrap();
    assert_eq!(model, vec![7u8; 100_000]);
    // One byte under the length: refused, not truncated.
    let short = f.target("fr-en/model.bin", 99_999);
    assert!(
        matches!(short, Err(FetchError::TooLarge { limit: 99_999, .. })),
        "{short:?}"
    );
    let short = f.metadata("1.root.json", 9);
    assert!(
        matches!(short, Err(FetchError::TooLarge { limit: 9, .. })),
        "{short:?}"
    );
    let missing = f.metadata("2.root.json", 512_000);
    assert!(
        matches!(&missing, Err(FetchError::NotFound(n)) if n == "2.root.json"),
        "{missing:?}"
    );
}

#[test]
fn interrupted_target_resumes_with_range() {
    let r = repo();
    let f = r.fetch(&r.tls);
    // A prefix that differs from the file's bytes: the result shows only the rest was
    // requested (the hash check is what catches a wrong prefix, not the fetcher).
    let mut got = vec![9u8; 40_000];
    f.target_into("fr-en/model.bin", 100_000, 40_000, &mut got)
        .unwrap();
    let mut want = vec![9u8; 40_000];
    want.extend(vec![7u8; 60_000]);
    assert_eq!(got, want);
    // Twin: from 0 fetches the whole file.
    let mut got = Vec::new();
    f.target_into("fr-en/model.bin", 100_000, 0, &mut got)
        .unwrap();
    assert_eq!(got, vec![7u8; 100_000]);
    // Longer than the listed length: refused.
    let mut got = vec![7u8; 10];
    let r = f.target_into("fr-en/model.bin", 99_999, 10, &mut got);
    assert!(matches!(r, Err(FetchError::TooLarge { .. })), "{r:?}");
}

#[test]
fn without_client_certificate_nothing_is_served() {
    let r = repo();
    let f = r.fetch(&r.anonymous);
    let res = f.metadata("1.root.json", 512_000);
    // nginx answers 400 ("No required SSL certificate was sent") over TLS 1.3, or the
    // handshake fails: either way no bytes of the file.
    assert!(
        match &res {
            Err(FetchError::Refused { why, .. }) => why.contains("400"),
            Err(FetchError::Io { .. }) => true,
            _ => false,
        },
        "{res:?}"
    );
    // Twin: the same server, the box's certificate: served.
    assert!(r.fetch(&r.tls).metadata("1.root.json", 100).is_ok());
}

#[test]
fn plain_http_url_refused() {
    let r = repo();
    let res = HttpFetch::new(
        &format!("http://{}/repo/", r.nginx.addr),
        r.tls.clone(),
        HttpLimits::default(),
    );
    assert!(matches!(res, Err(FetchError::Refused { .. })), "{res:?}");
}
