//! `valisectl transcribe` against the real `valise-transcribe` daemon (two processes, a Unix
//! socket, real models), and in-process when no daemon runs; then a clean shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use valise_e2e::*;

const JFK: &str = "ask not what your country can do for you ask what you can do for your country";

#[test]
fn valisectl_through_the_daemon_and_in_process_agree() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/transcribe.sock");
    let config = dir.path().join("valise-transcribe.toml");
    std::fs::write(
        &config,
        format!(
            "socket = {:?}\nspool_dir = {:?}\nmodel_store = {:?}\ndefault_model = \"whisper-tiny.en-q8_0\"\nthreads = 2\n",
            sock,
            dir.path().join("spool"),
            store()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(bin("valise-transcribe"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&mut daemon, &sock, Duration::from_secs(60));

    // Through the daemon: SRT on stdout.
    let out = run_with_limit(
        Command::new(bin("valisectl"))
            .args([
                "transcribe",
                "--format",
                "srt",
                "--language",
                "en",
                "--socket",
            ])
            .arg(&sock)
            .arg(testdata("jfk.wav")),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let srt = String::from_utf8(out.stdout).unwrap();
    assert!(srt.starts_with("1\n00:00:00,"), "{srt}");
    let cues: Vec<&str> = srt
        .lines()
        .filter(|l| l.chars().any(char::is_alphabetic))
        .collect();
    assert!(words(&cues.join(" ")).contains(JFK), "{srt}");

    // A file the daemon cannot decode: a clear error and a non-zero exit.
    let junk = dir.path().join("notes.mp3");
    std::fs::write(
        &junk,
        "this is not audio at all, just text in a file named .mp3",
    )
    .unwrap();
    let out = run_with_limit(
        Command::new(bin("valisectl"))
            .args(["transcribe", "--socket"])
            .arg(&sock)
            .arg(&junk),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported_format") || err.contains("format"),
        "{err}"
    );

    // In-process (no daemon named, none at the default socket): the same words, as JSON.
    let out = run_with_limit(
        Command::new(bin("valisectl"))
            .current_dir(repo())
            .env_remove("VALISE_TRANSCRIBE_SOCKET")
            .args([
                "transcribe",
                "--format",
                "json",
                "--model",
                "whisper-tiny.en-q8_0",
            ])
            .arg(testdata("jfk.wav")),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: valise_protocol::Transcript = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t.language, "en");
    assert!(words(&t.text()).contains(JFK), "{}", t.text());

    // SIGTERM: the daemon stops cleanly and removes its socket.
    kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "daemon exit: {status}");
    assert!(!sock.exists(), "socket left behind");
}
