//! Mutual TLS against a real nginx (`ssl_verify_client on`, the CA's CRL), with the rustls
//! client configuration the box daemons use. Accepted: a box certificate from the CA.
//! Refused: no certificate, another CA's, an expired one, a server certificate used as a
//! client, a revoked one; and, by the client, a server with the wrong name or a revoked
//! server certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use valise_e2e::nginx::{Nginx, NginxTls};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Reason, Validity};
use valise_pki::enroll::{Endpoints, IdentityDir};
use valise_pki::pem;
use valise_pki::tls::{ClientIdentity, client_config};

const SERVER: &str = "repo.test";

struct Pki {
    tmp: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::init(&tmp.path().join("ca"), "Test CA", Validity::days(30)).unwrap();
        Self { tmp, ca }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// A box identity made the way a box makes it (key on the box, request, CA signs).
    /// Returns the box's pending key and the signed certificate.
    fn box_cert(&mut self, dir: &str, id: &BoxIdentity, validity: Validity) -> (String, String) {
        let idd = IdentityDir::new(self.path(dir));
        let csr = idd.request(id).unwrap();
        let cert = self.ca.issue_box(&csr, id, validity).unwrap();
        let key = std::fs::read_to_string(self.path(dir).join("pending/key.pem")).unwrap();
        (key, cert.cert_pem)
    }
    fn ca_pem(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        pem::certificates("ca", self.ca.cert_pem()).unwrap()
    }
}

fn identity(cert_pem: &str, key_pem: &str) -> ClientIdentity {
    ClientIdentity {
        chain: pem::certificates("cert", cert_pem).unwrap(),
        key: pem::private_key("key", key_pem).unwrap(),
    }
}

/// GET /whoami; `Ok(response)` when the TLS connection carried one, `Err(why)` otherwise.
async fn whoami(
    nginx: &Nginx,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(nginx.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let req = format!("GET /whoami HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn accepted(r: &Result<String, String>) -> bool {
    matches!(r, Ok(text) if text.starts_with("HTTP/1.1 200") && text.contains("valise-ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_accepts_only_valid_box_certificates() {
    let mut pki = Pki::new();
    let now = OffsetDateTime::now_utc();

    // The repository's server certificate.
    let srv = pki
        .ca
        .issue_server(&[SERVER.to_owned()], Validity::days(30))
        .unwrap();
    // The box, installed the real way.
    let lisbon = BoxIdentity::new("lisbon", "box-1").unwrap();
    let box_dir = IdentityDir::new(pki.path("box"));
    let csr = box_dir.request(&lisbon).unwrap();
    let cert = pki.ca.issue_box(&csr, &lisbon, Validity::days(30)).unwrap();
    let installed = box_dir
        .install(
            &cert.cert_pem,
            pki.ca.cert_pem(),
            &Endpoints::new("https://repo.test", "mqtts://mqtt.test").unwrap(),
            None,
        )
        .unwrap();
    // Expired: valid last week only. `enroll install` refuses it.
    let expired_id = BoxIdentity::new("lisbon", "box-old").unwrap();
    let (expired_key, expired_cert) = pki.box_cert(
        "expired",
        &expired_id,
        Validity {
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(3),
        },
    );
    let err = IdentityDir::new(pki.path("expired"))
        .install(&expired_cert, pki.ca.cert_pem(), &installed.endpoints, None)
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // Revoked.
    let revoked_id = BoxIdentity::new("paris", "box-1").unwrap();
    let (revoked_key, revoked_cert) = pki.box_cert("revoked", &revoked_id, Validity::days(30));
    let revoked_serial = pki.ca.issued().last().unwrap().serial.clone();
    pki.ca
        .revoke(&revoked_serial, Reason::KeyCompromise)
        .unwrap();
    let crl = pki.ca.crl(7).unwrap();
    // Another CA's box certificate, for the same identity.
    let mut foreign = Ca::init(&pki.path("foreign"), "Foreign CA", Validity::days(30)).unwrap();
    let (foreign_key, foreign_cert) = {
        let idd = IdentityDir::new(pki.path("foreign-box"));
        let csr = idd.request(&lisbon).unwrap();
        let c = foreign
            .issue_box(&csr, &lisbon, Validity::days(30))
            .unwrap();
        let k = std::fs::read_to_string(pki.path("foreign-box/pending/key.pem")).unwrap();
        (k, c.cert_pem)
    };

    let nginx = Nginx::start(&NginxTls {
        cert: pki.write("srv.pem", &srv.cert_pem),
        key: pki.write("srv.key", &srv.key_pem),
        client_ca: pki.path("ca/ca.pem"),
        crl: Some(pki.write("crl.pem", &crl.pem)),
        root: None,
    });
    let ca = pki.ca_pem();
    let with = |id: &ClientIdentity| client_config(id, &ca, &[]).unwrap();

    // Accepted: the installed identity, through the config the daemons use.
    let ok = whoami(&nginx, installed.client_config().unwrap(), SERVER).await;
    assert!(accepted(&ok), "{ok:?}\n{}", nginx.error_log());
    assert!(ok.unwrap().contains("CN=lisbon.box-1"));

    // Refused by nginx.
    let no_cert = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            r.add(ca[0].clone()).unwrap();
            r
        })
        .with_no_client_auth(),
    );
    // Each refusal, and nginx's own reason for it (logged before it answers).
    let cases = [
        (
            "no client certificate",
            no_cert,
            "no required SSL certificate",
        ),
        (
            "another CA",
            with(&identity(&foreign_cert, &foreign_key)),
            "unable to verify the first certificate",
        ),
        (
            "expired",
            with(&identity(&expired_cert, &expired_key)),
            "certificate has expired",
        ),
        (
            "server certificate as client",
            with(&identity(&srv.cert_pem, &srv.key_pem)),
            "unsuitable certificate purpose",
        ),
        (
            "revoked",
            with(&identity(&revoked_cert, &revoked_key)),
            "certificate revoked",
        ),
    ];
    for (what, config, reason) in cases {
        let before = nginx.error_log().len();
        let r = whoami(&nginx, config, SERVER).await;
        assert!(!accepted(&r), "{what} was accepted: {r:?}");
        if let Ok(text) = &r {
            assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
        }
        let log = nginx.error_log();
        assert!(log[before..].contains(reason), "{what}: {}", &log[before..]);
    }

    // Refused by the client: the server does not carry the name connected to.
    let r = whoami(&nginx, installed.client_config().unwrap(), "other.test").await;
    let err = r.unwrap_err();
    assert!(
        err.contains("handshake") && err.contains("not valid for name"),
        "{err}"
    );
    drop(nginx);

    // Refused by the client: the server's certificate is revoked in the box's CRL.
    let revoked_srv = pki
        .ca
        .issue_server(&[SERVER.to_owned()], Validity::days(30))
        .unwrap();
    pki.ca
        .revoke(&revoked_srv.issued.serial, Reason::KeyCompromise)
        .unwrap();
    let crl = pki.ca.crl(7).unwrap();
    let nginx = Nginx::start(&NginxTls {
        cert: pki.write("srv2.pem", &revoked_srv.cert_pem),
        key: pki.write("srv2.key", &revoked_srv.key_pem),
        client_ca: pki.path("ca/ca.pem"),
        crl: None,
        root: None,
    });
    let crls = pem::crls("crl", &crl.pem).unwrap();
    let box_id = installed.client.clone();
    let without_crl = whoami(&nginx, client_config(&box_id, &ca, &[]).unwrap(), SERVER).await;
    assert!(accepted(&without_crl), "{without_crl:?}");
    let r = whoami(&nginx, client_config(&box_id, &ca, &crls).unwrap(), SERVER).await;
    let err = r.unwrap_err();
    assert!(err.contains("Revoked"), "{err}");
}
