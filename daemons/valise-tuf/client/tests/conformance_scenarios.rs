//! Runs `daemons/valise-tuf/tests/conformance/run.py` (repositories built and signed by
//! python-tuf 6.0, the client driven through CLIENT-CLI.md) against this crate's binary,
//! with Ed25519 repository keys to stay quick (the script `scripts/tuf-conformance` runs it
//! with the suite's default RSA keys). It needs the venv `scripts/tuf-conformance` makes
//! (`/var/cache/valise/venv-tuf-conformance`, or `VALISE_TUF_CONFORMANCE_VENV`; `scripts/setup`
//! makes it) and `faketime` (`scripts/install-deps`); without them it fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn python_tuf_scenarios_pass() {
    let venv = std::env::var_os("VALISE_TUF_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise/venv-tuf-conformance"));
    let python = venv.join("bin/python");
    assert!(
        python.exists() && Path::new("/usr/bin/faketime").exists(),
        "no {} or no faketime: run scripts/setup",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/run.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_valise-tuf-client"))
        .args(["--kind", "ed25519"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
