//! Helpers for the tests that need the real world: the dev model store, real recordings,
//! ffmpeg-made fixtures, the workspace's built binaries, processes run with a deadline. Crates'
//! own integration tests use it too (as a dev-dependency), so there is one way to find things.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod engines;
pub mod fake_systemd;
pub mod mosquitto;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub const HINT: &str = "run scripts/setup, then build the workspace (scripts/test does both)";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A binary built by this workspace, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(p.exists(), "{} is not built: {HINT}", p.display());
    p
}

/// The dev model store (`$VALISE_MODEL_STORE`, else `.valise/models` in the checkout).
pub fn store() -> PathBuf {
    let p = std::env::var_os("VALISE_MODEL_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".valise/models"));
    assert!(
        p.join("current/manifest.toml").exists(),
        "no model store: {HINT}"
    );
    p
}

pub fn testdata(name: &str) -> PathBuf {
    let dir = std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise/testdata"));
    let p = dir.join(name);
    assert!(p.exists(), "missing {}: {HINT}", p.display());
    p
}

/// Runs `cmd` to completion, killing it after `limit`.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} ran past {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `path` to exist (a socket appearing), while `child` is still alive.
pub fn wait_for_socket(child: &mut Child, path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the daemon exited early: {status}");
        }
        assert!(
            start.elapsed() < limit,
            "no socket at {} after {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `addr` accepts TCP connections (a server started by a test is ready), while
/// `child` is still alive; an early exit fails with the server's log at `log`.
pub fn wait_for_port(child: &mut Child, addr: std::net::SocketAddr, log: &Path, name: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{name} exited ({status}): {log}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ffmpeg -y -hide_banner -loglevel error -nostdin <args>` (Debian's) to make a fixture;
/// fails the test with ffmpeg's stderr, or a clear message when it is not installed.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}): {HINT}"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `src` played `times` times in a row to `out` (a long recording from a short one:
/// work that is still running when a test stops an engine).
pub fn looped_audio(src: &Path, times: u32, out: &Path) {
    let loops = (times.max(1) - 1).to_string();
    ffmpeg(&[
        "-stream_loop",
        &loops,
        "-i",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
}

/// Whether the long-job tests measure the time-left target (issue 11: within 20 % once a tenth
/// is done) on a long recording: `VALISE_ETA_STRICT=1`, on a quiet machine. In the whole suite
/// other tests load the two cores mid-job and then stop (an estimate 106 % off was seen, and
/// CI failed on one), so a timed assertion there would only be flaky: the target is a
/// measurement, and the suite checks the mechanism on a shorter recording.
pub fn eta_strict() -> bool {
    std::env::var_os("VALISE_ETA_STRICT").is_some_and(|v| v == "1")
}

/// How many times the long-job tests loop JFK (11 s): about 12 minutes when measuring the
/// target (a tenth of it is well past the first batch, whose one-off costs the estimate leaves
/// out), about 2 minutes otherwise (several 30 s batches, so there is a tenth past the first).
/// `VALISE_LONG_JOB_LOOPS=N` sets it (164: the 30-minute job of issue 11).
pub fn long_job_loops() -> u32 {
    if let Some(n) = std::env::var("VALISE_LONG_JOB_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if eta_strict() { 64 } else { 12 }
}

/// Checks a time left said with `remaining_audio` seconds of recording still to do, against
/// the `actual` seconds the rest took. Strict: within 20 %. Otherwise an estimate that is one:
/// positive, and not slower than 20 times real time (a unit mix-up or a stuck estimate).
pub fn check_eta(eta: f64, actual: f64, remaining_audio: f64) -> Result<f64, String> {
    let err = (eta - actual).abs() / actual;
    let ok = if eta_strict() {
        err <= 0.20
    } else {
        eta.is_finite() && eta > 0.0 && eta <= 20.0 * remaining_audio + 60.0
    };
    if ok {
        Ok(err)
    } else {
        Err(format!(
            "said {eta:.1} s left with {remaining_audio:.0} s of audio to go; it took {actual:.1} s ({:.0} % off)",
            err * 100.0
        ))
    }
}

/// Lower-case words without punctuation.
pub fn words(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
