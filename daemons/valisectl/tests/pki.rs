//! The whole identity flow through the real `valisectl` binary, checked with the real
//! `openssl verify`: CA, box request, issuance, install, status, renewal, revocation, CRL,
//! the broker's ACL, and the refusals on the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    /// Runs valisectl with the CA at `ca` and the box's identity at `box_dir`.
    fn run(&self, box_dir: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_valisectl"))
            .args(args)
            .env("VALISE_CA_DIR", self.path("ca"))
            .env("VALISE_IDENTITY_DIR", self.path(box_dir))
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }
    fn ok(&self, box_dir: &str, args: &[&str]) -> String {
        let out = self.run(box_dir, args);
        assert!(
            out.status.success(),
            "valisectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    fn fails(&self, box_dir: &str, args: &[&str]) -> String {
        let out = self.run(box_dir, args);
        assert!(!out.status.success(), "valisectl {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `openssl verify` as a TLS server checks a client certificate.
fn openssl_verify(w: &World, cert: &Path, crl: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(w.path("ca/ca.pem"));
    if let Some(crl) = crl {
        cmd.arg("-crl_check").arg("-CRLfile").arg(crl);
    }
    let out = cmd
        .arg(cert)
        .output()
        .expect("openssl is installed (scripts/install-deps)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn serial_of(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("serial:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn identity_flow_from_ca_to_box_and_back() {
    let w = World::new();
    let ep = [
        "--repository",
        "https://repo.test:8443/v1",
        "--broker",
        "mqtts://mqtt.test",
    ];

    // The CA: key readable by its owner only.
    w.ok("box", &["ca", "init", "--name", "Test CA"]);
    assert_eq!(mode(&w.path("ca")), 0o700);
    assert_eq!(mode(&w.path("ca/ca.key")), 0o600);
    w.fails("box", &["ca", "init"]);

    // The box makes its key and request; the key is 0600 and nowhere but on the box.
    w.ok(
        "box",
        &[
            "enroll", "request", "--site", "lisbon", "--box", "box-1", "--out", "req.csr",
        ],
    );
    assert_eq!(mode(&w.path("box/pending/key.pem")), 0o600);
    let csr = std::fs::read_to_string(w.path("req.csr")).unwrap();
    assert!(csr.contains("BEGIN CERTIFICATE REQUEST") && !csr.contains("PRIVATE KEY"));
    assert!(
        w.fails("box", &["enroll", "status"])
            .contains("no identity installed")
    );

    // IT must name the box the request is for.
    let err = w.fails(
        "box",
        &[
            "ca", "issue", "box", "req.csr", "--site", "lisbon", "--box", "box-2", "--out", "x",
        ],
    );
    assert!(err.contains("the request is for lisbon.box-1"), "{err}");
    w.fails(
        "box",
        &[
            "ca", "issue", "box", "req.csr", "--site", "Lisbon", "--box", "box-1", "--out", "x",
        ],
    );
    // A request whose signature does not verify is refused.
    let mut tampered = csr.clone().into_bytes();
    let i = tampered.len() - 40;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(w.path("bad.csr"), tampered).unwrap();
    w.fails(
        "box",
        &[
            "ca", "issue", "box", "bad.csr", "--site", "lisbon", "--box", "box-1", "--out", "x",
        ],
    );

    w.ok(
        "box",
        &[
            "ca", "issue", "box", "req.csr", "--site", "lisbon", "--box", "box-1", "--out",
            "issued",
        ],
    );
    let (ok, msg) = openssl_verify(&w, &w.path("issued/cert.pem"), None);
    assert!(ok, "{msg}");
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(w.path("issued/cert.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CN = lisbon.box-1"), "{text}");
    assert!(text.contains("URI:urn:valise:box:lisbon:box-1"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("Server Authentication"), "{text}");

    // Another box requesting the same identity gets its own key: its certificate does not
    // install on the first box.
    w.ok(
        "other",
        &["enroll", "request", "--site", "lisbon", "--box", "box-1"],
    );
    w.ok(
        "other",
        &[
            "ca",
            "issue",
            "box",
            "other/pending/request.csr",
            "--site",
            "lisbon",
            "--box",
            "box-1",
            "--out",
            "other-issued",
        ],
    );
    let err = w.fails(
        "box",
        &[
            &[
                "enroll",
                "install",
                "other-issued/cert.pem",
                "issued/ca.pem",
            ][..],
            &ep,
        ]
        .concat(),
    );
    assert!(err.contains("not for this box's pending key"), "{err}");

    // A chain from another CA does not make the certificate installable.
    w.ok("box", &["ca", "init", "--dir", "foreign"]);
    let err = w.fails(
        "box",
        &[
            &["enroll", "install", "issued/cert.pem", "foreign/ca.pem"][..],
            &ep,
        ]
        .concat(),
    );
    assert!(err.contains("does not verify"), "{err}");
    // Nor does a plain-HTTP repository address.
    w.fails(
        "box",
        &[
            "enroll",
            "install",
            "issued/cert.pem",
            "issued/ca.pem",
            "--repository",
            "http://repo.test",
            "--broker",
            "mqtts://mqtt.test",
        ],
    );

    // Install and status.
    w.ok(
        "box",
        &[
            &["enroll", "install", "issued/cert.pem", "issued/ca.pem"][..],
            &ep,
        ]
        .concat(),
    );
    let status = w.ok("box", &["enroll", "status"]);
    assert!(status.contains("identity:   lisbon.box-1"), "{status}");
    assert!(status.contains("days left:  364"), "{status}");
    assert!(
        status.contains("repository: https://repo.test:8443/v1"),
        "{status}"
    );
    let first = serial_of(&status);
    assert!(!w.path("box/pending").exists());
    assert_eq!(
        mode(&w.path("box/current/key.pem")) & 0o007,
        0,
        "key readable by others"
    );
    assert!(
        std::fs::read_link(w.path("box/current"))
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with(&first)
    );

    // Renewal is the same flow; the old identity serves until the new one is installed.
    w.ok(
        "box",
        &["enroll", "request", "--site", "lisbon", "--box", "box-1"],
    );
    assert_eq!(serial_of(&w.ok("box", &["enroll", "status"])), first);
    w.ok(
        "box",
        &[
            "ca",
            "issue",
            "box",
            "box/pending/request.csr",
            "--site",
            "lisbon",
            "--box",
            "box-1",
            "--out",
            "renewed",
        ],
    );
    w.ok(
        "box",
        &[
            &["enroll", "install", "renewed/cert.pem", "renewed/ca.pem"][..],
            &ep,
        ]
        .concat(),
    );
    let second = serial_of(&w.ok("box", &["enroll", "status"]));
    assert_ne!(first, second);
    assert!(
        w.path(&format!("box/gen-{first}")).is_dir(),
        "old generation kept"
    );
    // Installing again without a new request is refused.
    w.fails(
        "box",
        &[
            &["enroll", "install", "renewed/cert.pem", "renewed/ca.pem"][..],
            &ep,
        ]
        .concat(),
    );

    // Servers and the central client.
    w.ok(
        "box",
        &[
            "ca",
            "issue",
            "server",
            "--name",
            "repo.test",
            "--name",
            "127.0.0.1",
            "--out",
            "srv",
        ],
    );
    assert_eq!(mode(&w.path("srv/key.pem")), 0o600);
    let (ok, msg) = openssl_verify(&w, &w.path("srv/cert.pem"), None);
    assert!(
        !ok && msg.contains("unsuitable certificate purpose"),
        "{msg}"
    );
    w.ok(
        "box",
        &[
            "ca", "issue", "central", "--name", "fleet", "--out", "central",
        ],
    );
    let (ok, msg) = openssl_verify(&w, &w.path("central/cert.pem"), None);
    assert!(ok, "{msg}");

    // The ACL: every grant spelled out, no patterns.
    let acl = w.ok("box", &["ca", "acl"]);
    assert!(!acl.contains("%u") && !acl.contains("pattern"), "{acl}");
    assert_eq!(acl.matches("user lisbon.box-1\n").count(), 1, "{acl}");
    assert!(acl.contains(
        "user lisbon.box-1\ntopic write valise/v1/lisbon/box-1/#\ntopic read valise/v1/lisbon/box-1/cmd\n"
    ));
    assert!(
        acl.contains("user central:fleet\ntopic read valise/v1/#\n"),
        "{acl}"
    );

    // Revocation: the first certificate by serial, then a CRL.
    w.ok("box", &["ca", "revoke", &first, "--reason", "superseded"]);
    w.fails("box", &["ca", "revoke", &first]);
    w.fails("box", &["ca", "revoke", "00ff"]);
    w.ok("box", &["ca", "crl", "--days", "7", "--out", "crl1.pem"]);
    let (ok, msg) = openssl_verify(
        &w,
        &w.path(&format!("box/gen-{first}/cert.pem")),
        Some(&w.path("crl1.pem")),
    );
    assert!(!ok && msg.contains("certificate revoked"), "{msg}");
    let (ok, msg) = openssl_verify(&w, &w.path("renewed/cert.pem"), Some(&w.path("crl1.pem")));
    assert!(ok, "{msg}");
    let crl_text = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(w.path("crl1.pem"))
        .output()
        .unwrap();
    let crl_text = String::from_utf8_lossy(&crl_text.stdout);
    assert!(crl_text.contains("Next Update"), "{crl_text}");
    assert!(crl_text.contains("Superseded"), "{crl_text}");

    // The box stolen: every certificate of it revoked, and it leaves the ACL.
    w.ok(
        "box",
        &[
            "ca",
            "revoke",
            "--site",
            "lisbon",
            "--box",
            "box-1",
            "--reason",
            "key-compromise",
        ],
    );
    w.ok("box", &["ca", "crl", "--out", "crl2.pem"]);
    let (ok, msg) = openssl_verify(&w, &w.path("renewed/cert.pem"), Some(&w.path("crl2.pem")));
    assert!(!ok && msg.contains("certificate revoked"), "{msg}");
    let acl = w.ok("box", &["ca", "acl"]);
    assert!(!acl.contains("lisbon.box-1"), "{acl}");
    assert!(acl.contains("user central:fleet"), "{acl}");
    // CRL numbers increase.
    let n = |f: &str| {
        let out = Command::new("openssl")
            .args(["crl", "-noout", "-crlnumber", "-in"])
            .arg(w.path(f))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(n("crl1.pem"), "crlNumber=0x01");
    assert_eq!(n("crl2.pem"), "crlNumber=0x02");
}
