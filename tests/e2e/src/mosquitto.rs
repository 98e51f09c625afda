//! A real Mosquitto broker (Debian's) on loopback with TLS, required client certificates,
//! the certificate's common name as the user name and an ACL file, started by a test and
//! stopped by its PID when dropped; and its real command-line clients.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct MosquittoTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates client certificates must chain to.
    pub ca: PathBuf,
    pub crl: Option<PathBuf>,
    pub acl: PathBuf,
}

/// A client's certificate and key files.
#[derive(Debug, Clone)]
pub struct MqttClient {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub addr: SocketAddr,
    ca: PathBuf,
    dir: tempfile::TempDir,
    stopped: bool,
}

fn need(bin: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(bin);
    let p = if p.exists() {
        p
    } else {
        Path::new("/usr/bin").join(bin)
    };
    assert!(
        p.exists(),
        "{bin} is not installed: scripts/install-deps installs it"
    );
    p
}

impl Mosquitto {
    pub fn start(tls: &MosquittoTls) -> Mosquitto {
        let port = Self::free_port();
        let mut conf = format!(
            "per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n\
             acl_file {acl}\n\
             persistence false\n",
            ca = tls.ca.display(),
            cert = tls.cert.display(),
            key = tls.key.display(),
            acl = tls.acl.display(),
        );
        if let Some(crl) = &tls.crl {
            conf.push_str(&format!("crlfile {}\n", crl.display()));
        }
        Self::start_with_config(&conf, port, &tls.ca)
    }

    /// Starts Mosquitto with a configuration written elsewhere (a provisioning file, its
    /// paths already pointed at the test's files, or [`Mosquitto::start`]'s), listening on
    /// `port`; the log goes to the broker's own directory.
    pub fn start_with_config(conf: &str, port: u16, ca: &Path) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "{conf}\nlog_dest file {}\nlog_type all\n",
            dir.path().join("mosquitto.log").display()
        );
        // As root Mosquitto would switch to its own user, which cannot read the test's files.
        if nix::unistd::geteuid().is_root() {
            conf.push_str("user root\n");
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let child = Self::spawn(dir.path(), addr);
        Mosquitto {
            child,
            addr,
            ca: ca.to_path_buf(),
            dir,
            stopped: false,
        }
    }

    /// A free port on 127.0.0.1.
    pub fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn spawn(dir: &Path, addr: SocketAddr) -> Child {
        let mut child = Command::new(need("mosquitto"))
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready when it accepts connections; an early exit is a configuration error.
        crate::wait_for_port(&mut child, addr, &dir.join("mosquitto.log"), "mosquitto");
        child
    }

    /// Adds lines to the broker's configuration; they take effect at the next [`restart`].
    ///
    /// [`restart`]: Mosquitto::restart
    pub fn add_config(&self, lines: &str) {
        let path = self.dir.path().join("mosquitto.conf");
        let mut conf = std::fs::read_to_string(&path).unwrap();
        conf.push_str(lines);
        std::fs::write(path, conf).unwrap();
    }

    /// The broker's process id (to stop it with SIGSTOP, for instance).
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Stops the broker (SIGTERM) and waits for it: clients lose their connection.
    pub fn stop(&mut self) {
        if !self.stopped {
            let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT);
            let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
            self.stopped = true;
        }
    }

    /// Starts the broker again with the same configuration, on the same port (its log goes
    /// on in the same file). Retained messages do not survive (persistence is off).
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.dir.path(), self.addr);
        self.stopped = false;
    }

    /// Suspends the broker (SIGSTOP): connections stay open but nothing is answered, as with
    /// a hung broker or a dead link.
    pub fn freeze(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    }

    /// Resumes a frozen broker (SIGCONT).
    pub fn thaw(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Waits until the broker's log holds `needle` (an event it logs, such as a
    /// subscription), at most `limit`.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "mosquitto never logged {needle:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self, bin: &str, who: &MqttClient, id: &str) -> Command {
        let mut c = Command::new(need(bin));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.addr.port().to_string(),
            "-i",
            id,
        ])
        .arg("--cafile")
        .arg(&self.ca)
        .arg("--cert")
        .arg(&who.cert)
        .arg("--key")
        .arg(&who.key);
        c
    }

    /// Publishes one message with QoS 1 (so it has reached the broker when this returns).
    pub fn publish(&self, who: &MqttClient, id: &str, topic: &str, message: &str) -> Output {
        self.client("mosquitto_pub", who, id)
            .args(["-q", "1", "-t", topic, "-m", message])
            .output()
            .unwrap()
    }

    /// Subscribes to `topics` and prints `topic message` lines until `count` messages came
    /// (or `timeout_s` passed); returns once the broker has the subscription.
    pub fn subscribe(
        &self,
        who: &MqttClient,
        id: &str,
        topics: &[&str],
        count: u32,
        timeout_s: u32,
    ) -> Child {
        let mut c = self.client("mosquitto_sub", who, id);
        for t in topics {
            c.args(["-t", t]);
        }
        let child = c
            .args(["-v", "-C", &count.to_string(), "-W", &timeout_s.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_log(
            &format!("Received SUBSCRIBE from {id}"),
            Duration::from_secs(10),
        );
        child
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
