//! `valisectl translate` in-process (no daemon on the default socket in a test), with the
//! real models of the dev store found from the repository root: one line in, one line out.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn translates_stdin_line_for_line_without_a_daemon() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(["translate", "--from", "auto", "--to", "pt"])
        .current_dir(repo)
        .env_remove("VALISE_TRANSLATE_SOCKET")
        .env_remove("VALISE_MODEL_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("valisectl");
    let input = "Good morning.\nThe embassy is closed today. Come back tomorrow.\n\nThank you, Mr. Smith.\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.split('\n').collect();
    assert_eq!(lines.len(), input.split('\n').count(), "{stdout:?}");
    assert_eq!(lines[2], "", "{stdout:?}");
    assert!(lines[0].starts_with("Bom dia"), "{stdout:?}");
    assert!(lines[3].contains("Smith"), "{stdout:?}");
}
