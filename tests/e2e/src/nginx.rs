//! A real nginx (Debian's) on loopback, with TLS and client-certificate verification, started
//! by a test and stopped by its PID when dropped. The peer the update repository tests run
//! against (`ssl_verify_client on`, optionally a CRL).
//!
//! `GET /whoami` answers `valise-ok <client subject DN>`; with [`NginxTls::root`] everything
//! else is served from that directory.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What nginx presents and what it requires.
#[derive(Debug, Clone)]
pub struct NginxTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates client certificates must chain to.
    pub client_ca: PathBuf,
    /// CRL checked for client certificates (`ssl_crl`).
    pub crl: Option<PathBuf>,
    /// Files served under `/`.
    pub root: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/nginx");
    assert!(
        sbin.exists(),
        "nginx is not installed: scripts/install-deps installs it"
    );
    sbin.to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    pub fn start(tls: &NginxTls) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = free_port();
        let crl = tls
            .crl
            .as_ref()
            .map(|c| format!("ssl_crl {};", c.display()))
            .unwrap_or_default();
        let root = tls
            .root
            .as_ref()
            .map(|r| format!("location / {{ root {}; }}", r.display()))
            .unwrap_or_default();
        // One process (no master, no workers dropping privileges), so the PID we hold is
        // the whole server and it reads files as the test's user.
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format valise '$request $status $request_length $bytes_sent $ssl_protocol $ssl_cipher';
    access_log {d}/access.log valise;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        {crl}
        location = /whoami {{ return 200 "valise-ok $ssl_client_s_dn\n"; }}
        {root}
    }}
}}
"#,
            cert = tls.cert.display(),
            key = tls.key.display(),
            ca = tls.client_ca.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new(binary())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Ready when it accepts connections; an early exit is a configuration error.
        crate::wait_for_port(&mut child, addr, &dir.path().join("error.log"), "nginx");
        Nginx { child, addr, dir }
    }

    /// nginx's access log so far, a line per request: `$request $status $request_length
    /// $bytes_sent $ssl_protocol $ssl_cipher` (HTTP bytes as nginx counts them, TLS not
    /// included).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// nginx's error log so far (why it refused a client).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}
