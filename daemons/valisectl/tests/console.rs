//! `valisectl console` and `valisectl wipe` driven through a scripted standard input, on real
//! peers: the portal's SQLite database, the box identity (valise-pki), openssl reading the
//! request and the portal certificate, and a real LUKS2 volume (a file formatted by
//! cryptsetup) for the wipe. What only the appliance has (USB sticks mounted, the TPM,
//! rebooting) is exercised by image/boot-test in the emulator.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASSWORD: &str = "correct horse battery staple";

struct Box_ {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Box_ {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        for d in ["state", "identity", "portal", "usb"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        // A LUKS2 volume standing for the state partition (32 MiB, header 16 MiB).
        let dev = root.join("state.luks");
        std::fs::File::create(&dev)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        std::fs::write(root.join("key"), "a passphrase").unwrap();
        let o = Command::new("cryptsetup")
            .args(["luksFormat", "--batch-mode", "--type", "luks2"])
            .args(["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"])
            .arg(&dev)
            .arg("--key-file")
            .arg(root.join("key"))
            .output()
            .expect("cryptsetup (scripts/install-deps: cryptsetup-bin)");
        assert!(o.status.success(), "{o:?}");
        Box_ { _tmp: tmp, root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn console(&self, script: &str) -> Output {
        let r = &self.root;
        run(
            &[
                "console",
                "--state-dir",
                r.join("state").to_str().unwrap(),
                "--identity-dir",
                r.join("identity").to_str().unwrap(),
                "--portal-config",
                r.join("no-such-portal.toml").to_str().unwrap(),
                "--portal-data-dir",
                r.join("portal").to_str().unwrap(),
                "--portal-user",
                "",
                "--device",
                r.join("state.luks").to_str().unwrap(),
                "--usb-dir",
                r.join("usb").to_str().unwrap(),
                "--no-reboot",
                "--self-check",
                "/bin/true",
                "--secure-boot-var",
                r.join("SecureBoot").to_str().unwrap(),
            ],
            script,
        )
    }

    fn is_luks(&self) -> bool {
        Command::new("cryptsetup")
            .arg("isLuks")
            .arg(self.p("state.luks"))
            .status()
            .unwrap()
            .success()
    }

    /// A `systemd-tpm2` token as systemd-repart leaves it (the sealed blob made up): the
    /// header says "sealed to the TPM", and no TPM here opens it, as after a change of
    /// Secure Boot keys.
    fn seal_to_a_tpm(&self) {
        let mut c = Command::new("cryptsetup")
            .args(["token", "import", "--json-file", "-"])
            .arg(self.p("state.luks"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(
                br#"{"type":"systemd-tpm2","keyslots":["0"],"tpm2-blob":"AAAA","tpm2-pcrs":[7],
                "tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-pin":false,
                "tpm2-policy-hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
            )
            .unwrap();
        assert!(c.wait().unwrap().success());
    }

    fn tokens(&self) -> String {
        let o = Command::new("cryptsetup")
            .args(["luksDump", "--dump-json-metadata"])
            .arg(self.p("state.luks"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["tokens"].to_string()
    }

    /// The firmware's SecureBoot variable: attributes, then 1 (on) or 0 (off).
    fn secure_boot(&self, on: bool) {
        std::fs::write(self.p("SecureBoot"), [6, 0, 0, 0, u8::from(on)]).unwrap();
    }

    fn opens(&self) -> bool {
        Command::new("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(self.p("key"))
            .arg(self.p("state.luks"))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn users(b: &Box_) -> String {
    let o = run(
        &[
            "user",
            "list",
            "--data-dir",
            b.p("portal").to_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn check(b: &Box_, name: &str, pw: &str) -> bool {
    let d = b.p("portal");
    run(
        &[
            "user",
            "check",
            name,
            "--password-stdin",
            "--data-dir",
            d.to_str().unwrap(),
        ],
        &format!("{pw}\n"),
    )
    .status
    .success()
}

fn openssl(args: &[&str], path: &Path) -> String {
    let o = Command::new("openssl")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn first_boot_sets_up_site_box_admin_and_writes_the_request_to_the_stick() {
    let b = Box_::new();
    // The portal's own (dev) certificate, as the image's portal makes it.
    let cert = b.p("portal/tls/cert.pem");
    valise_portal::server::ensure_dev_cert(&cert, &b.p("portal/tls/key.pem"), &["valise".into()])
        .unwrap();
    // A bad site name is asked again; the passwords differ once; a weak one is refused by the
    // portal's rules; then it goes through. No recovery key (no TPM here).
    let script = format!(
        "1\nLisbon Post!\nlisbon\nbox-1\nit-admin\n{PASSWORD}\nother\nit-admin\npassword1234\n\
         password1234\nit-admin\n{PASSWORD}\n{PASSWORD}\nno\n"
    );
    let o = b.console(&script);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("NOT SET UP YET"), "{out}");
    assert!(out.contains("The two passwords differ"), "{out}");
    assert!(out.contains("Not created:"), "{out}");
    assert!(out.contains("Administrator it-admin created."), "{out}");
    assert!(
        out.contains("VALISE-FIRSTBOOT done site=lisbon box=box-1"),
        "{out}"
    );
    // After setup the menu says so.
    assert!(out.contains("site lisbon  box box-1"), "{out}");
    // The administrator is in the portal's database and signs in with that password.
    assert_eq!(users(&b), "it-admin\tadmin\n");
    assert!(check(&b, "it-admin", PASSWORD));
    assert!(!check(&b, "it-admin", "correct horse battery stapler"));
    // The request on the stick is a valid CSR, self-signed, for this site and box.
    let csr = b.p("usb/valise-request-lisbon-box-1.csr");
    let req = openssl(&["req", "-verify", "-noout", "-text", "-in"], &csr);
    assert!(req.contains("CN = lisbon.box-1"), "{req}");
    assert!(req.contains("URI:urn:valise:box:lisbon:box-1"), "{req}");
    assert_eq!(
        std::fs::read_to_string(&csr).unwrap(),
        std::fs::read_to_string(b.p("identity/pending/request.csr")).unwrap()
    );
    // The fingerprint shown is the certificate's (openssl's own computation).
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in"], &cert);
    let fp = fp.trim().rsplit('=').next().unwrap();
    assert!(
        out.contains(&format!("VALISE-PORTAL certificate SHA-256 {fp}")),
        "{fp}: {out}"
    );

    // A second run: set up already, so no second administrator is made; 1 writes the same
    // request to the stick again; 3 (recovery key) wants an administrator's password.
    std::fs::remove_file(&csr).unwrap();
    let o = b.console("1\n3\nit-admin\nwrong password here\n7\n");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("NOT SET UP YET"), "{out}");
    assert!(
        out.contains("VALISE-USB written valise-request-lisbon-box-1.csr"),
        "{out}"
    );
    assert!(csr.exists());
    assert!(out.contains("Refused: not an administrator"), "{out}");
    assert!(out.contains("No such choice: \"7\""), "{out}");
    assert_eq!(users(&b), "it-admin\tadmin\n");
}

#[test]
fn an_administrator_made_elsewhere_is_kept() {
    let b = Box_::new();
    let d = b.p("portal");
    let o = run(
        &[
            "user",
            "add",
            "admin",
            "--admin",
            "--password-stdin",
            "--data-dir",
            d.to_str().unwrap(),
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = b.console("1\nlisbon\nbox-2\nno\n");
    let out = text(&o);
    assert!(
        out.contains("has an administrator already (admin); none created"),
        "{out}"
    );
    assert!(out.contains("VALISE-FIRSTBOOT done"), "{out}");
    assert_eq!(users(&b), "admin\tadmin\n");
    // `user check` (the recovery key's gate) accepts an administrator only: a staff member
    // with the right password, or an unknown name, is refused.
    let o = run(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--data-dir",
            d.to_str().unwrap(),
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(check(&b, "admin", PASSWORD));
    assert!(!check(&b, "bob", PASSWORD));
    assert!(!check(&b, "nobody", PASSWORD));
}

#[test]
fn wipe_from_the_menu_needs_the_exact_phrase_then_destroys_the_volume() {
    let b = Box_::new();
    std::fs::write(b.p("state/setup"), "site=lisbon\nbox=box-1\n").unwrap();
    assert!(b.opens());
    // Accidents: a bare Enter, "yes", the name alone, another box's name. Nothing happens.
    let o = b.console("9\n\n9\nyes\n9\nbox-1\n9\nERASE box-2\n");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("nothing was erased").count(), 4, "{out}");
    assert!(out.contains("type exactly:  ERASE box-1"), "{out}");
    assert!(b.is_luks() && b.opens());

    let t0 = std::time::Instant::now();
    let o = b.console("9\nERASE box-1\n");
    let took = t0.elapsed();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("VALISE-WIPE done"), "{out}");
    assert!(!b.is_luks(), "still a LUKS volume: {out}");
    assert!(!b.opens());
    // The whole header area (up to the data at 16 MiB) is zero: no secondary header left.
    let img = std::fs::read(b.p("state.luks")).unwrap();
    assert!(img[..16 << 20].iter().all(|&x| x == 0));
    assert!(took.as_secs() < 10, "wipe took {took:?}");
}

#[test]
fn wipe_command_reads_the_confirmation_from_standard_input() {
    let b = Box_::new();
    let dev = b.p("state.luks");
    let args = [
        "wipe",
        "--box",
        "box-9",
        "--no-reboot",
        "--device",
        dev.to_str().unwrap(),
    ];
    let o = run(&args, "ERASE box-1\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("not confirmed"), "{}", text(&o));
    assert!(b.opens());
    let o = run(&args, "ERASE box-9\n");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!b.is_luks());
}

/// After a boot where the TPM refused (here: no TPM opens the made-up seal), the banner says
/// so, and sealing again needs Secure Boot on and the key that opens the volume; a sealing
/// that fails (no TPM on this machine) leaves the volume as it was. The sealing that works is
/// image/boot-test's (swtpm, other Secure Boot keys).
#[test]
fn sealing_again_needs_secure_boot_and_the_recovery_key_and_fails_safe() {
    let b = Box_::new();
    std::fs::write(b.p("state/setup"), "site=lisbon\nbox=box-1\n").unwrap();
    let o = b.console("");
    assert!(text(&o).contains("VALISE-SEAL none"), "{}", text(&o));
    b.seal_to_a_tpm();
    let before = b.tokens();
    assert!(before.contains("systemd-tpm2"), "{before}");

    // Secure Boot's variable missing (not UEFI), then off: refused before any key is asked.
    let o = b.console("5\n");
    let out = text(&o);
    assert!(
        out.contains("VALISE-SEAL refused: the TPM did not open"),
        "{out}"
    );
    assert!(out.contains("Refused: Secure Boot is unknown"), "{out}");
    b.secure_boot(false);
    let out = text(&b.console("5\na passphrase\n"));
    assert!(out.contains("Refused: Secure Boot is off"), "{out}");
    assert!(!out.contains("Recovery key: "), "{out}");

    // On: a wrong key is refused; the right one reaches systemd-cryptenroll.
    b.secure_boot(true);
    let out = text(&b.console("5\nnot the key\n"));
    assert!(out.contains("Recovery key: "), "{out}");
    assert!(
        out.contains("Refused: that key does not open the staff data"),
        "{out}"
    );
    if !Path::new("/dev/tpmrm0").exists() {
        let out = text(&b.console("5\na passphrase\n"));
        // Its own complaint ("TPM2 support is not installed", no TPM), or none at all where
        // the machine has no systemd-cryptenroll: an error either way, nothing changed.
        assert!(
            out.contains("error: systemd-cryptenroll: ")
                || out.contains("error: running systemd-cryptenroll"),
            "{out}"
        );
        assert!(!out.contains("VALISE-SEAL done"), "{out}");
    }
    assert_eq!(b.tokens(), before, "the header changed");
    assert!(b.opens());
}
