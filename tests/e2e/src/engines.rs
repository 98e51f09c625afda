//! The two engines as real processes on Unix sockets in a test's directory, with the dev
//! model store: what the portal's tests, the browser test and the load test run against.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{bin, store, wait_for_socket};

/// One engine process; killed when dropped.
#[derive(Debug)]
pub struct EngineProc {
    name: &'static str,
    child: Child,
    pub sock: PathBuf,
    args: Vec<String>,
}

impl EngineProc {
    /// Starts `name` (`valise-transcribe` or `valise-translate`) with `config` on `sock`.
    pub fn start(name: &'static str, config: &Path, sock: &Path) -> Self {
        let args = vec![
            "--config".to_owned(),
            config.display().to_string(),
            "--socket".to_owned(),
            sock.display().to_string(),
            "--model-store".to_owned(),
            store().display().to_string(),
        ];
        let mut p = Self {
            name,
            child: spawn(name, &args),
            sock: sock.to_owned(),
            args,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        wait_for_socket(&mut self.child, &self.sock, Duration::from_secs(120));
    }

    /// Kills the process (SIGKILL: a crash, not a clean stop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// The process id (a fake systemd reports it, tests signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it as systemd does (`systemctl stop`): SIGTERM, then waits for it to exit, at
    /// most `limit` (then SIGKILL, as systemd after `TimeoutStopSec`). Returns whether it
    /// exited by itself within the limit.
    pub fn stop(&mut self, limit: Duration) -> bool {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = kill(pid, Signal::SIGTERM);
        let start = std::time::Instant::now();
        let clean = loop {
            if self.child.try_wait().unwrap().is_some() {
                break true;
            }
            if start.elapsed() > limit {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.kill();
        clean
    }

    /// A planned restart, as `systemctl restart` does it: [`Self::stop`], then start again and
    /// wait until it listens. Returns whether the old process exited by itself within `limit`.
    pub fn restart_planned(&mut self, limit: Duration) -> bool {
        let clean = self.stop(limit);
        self.start_again();
        clean
    }

    /// Starts it again with the same arguments after [`Self::stop`] and waits until it
    /// listens (a benchmark times the stop and the start apart).
    pub fn start_again(&mut self) {
        self.child = spawn(self.name, &self.args);
        self.wait_ready();
    }
}

fn spawn(name: &str, args: &[String]) -> Child {
    Command::new(bin(name))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Both engines in `dir` (`transcribe.sock`, `translate.sock`, spool in `dir/spool`), the
/// transcription engine on `threads` threads.
pub fn start_engines(dir: &Path, threads: u32) -> (EngineProc, EngineProc) {
    let cfg = dir.join("transcribe.toml");
    std::fs::write(
        &cfg,
        format!("spool_dir = {:?}\nthreads = {threads}\n", dir.join("spool")),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("transcribe.sock"));
    let _ = std::fs::remove_file(dir.join("translate.sock"));
    let t = EngineProc::start("valise-transcribe", &cfg, &dir.join("transcribe.sock"));
    let l = EngineProc::start(
        "valise-translate",
        Path::new("/dev/null"),
        &dir.join("translate.sock"),
    );
    (t, l)
}
