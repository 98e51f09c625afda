//! A real portal in-process on 127.0.0.1:0 with a generated certificate, and an HTTPS
//! client that trusts it. Engines are whatever sockets the test passes (absent ones are
//! simply "down").

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use valise_portal::{Config, Db, accounts};

pub const PASSWORD: &str = "correct horse battery";

pub struct Portal {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    cert: Vec<u8>,
}

pub fn config_in(dir: &Path) -> Config {
    let mut c = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        redirect_addr: None,
        data_dir: dir.join("data"),
        ..Config::default()
    };
    c.tls.cert = dir.join("tls/cert.pem");
    c.tls.key = dir.join("tls/key.pem");
    c.engines.transcribe_socket = dir.join("transcribe.sock");
    c.engines.translate_socket = dir.join("translate.sock");
    c
}

impl Portal {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        Self::start_with(dir, config).await
    }

    pub async fn start_with(dir: tempfile::TempDir, config: Config) -> Self {
        valise_portal::server::ensure_dev_cert(
            &config.tls.cert,
            &config.tls.key,
            &["localhost".into(), "127.0.0.1".into()],
        )
        .unwrap();
        let cert = std::fs::read(&config.tls.cert).unwrap();
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            valise_portal::run(cfg, listener, None, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        // The database exists once the portal answers.
        let p = Self {
            addr,
            dir,
            config,
            stop: Some(tx),
            task: Some(task),
            cert,
        };
        for _ in 0..100 {
            if p.client().raw(Method::GET, "/api/me").send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        p
    }

    /// Stops the portal (requests in flight finish) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn db(&self) -> Db {
        Db::open(&self.config.db_path()).unwrap()
    }

    pub fn add_user(&self, name: &str, admin: bool) {
        self.db()
            .with(|c| accounts::add_user(c, name, PASSWORD, admin).map(|_| ()))
            .unwrap();
    }

    pub fn token(&self, name: &str) -> String {
        self.db()
            .with(|c| {
                let u = accounts::user_by_name(c, name)?;
                accounts::new_api_token(c, u.id, "test")
            })
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn client(&self) -> Client {
        Client::new(self)
    }

    /// A client whose connections come from `ip` (any 127.0.0.x on Linux loopback), for
    /// tests that need several client addresses.
    pub fn client_from(&self, ip: std::net::IpAddr) -> Client {
        Client::with_local_address(self, Some(ip))
    }

    /// The portal's certificate (PEM), for tests that speak TLS themselves.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert
    }

    /// A signed-in browser-like client.
    pub async fn login(&self, name: &str) -> Client {
        let mut c = self.client();
        let r = c.login(name, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "sign-in of {name}");
        c
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.config.jobs_dir()
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    origin: String,
    pub cookie: Option<String>,
    pub token: Option<String>,
}

impl Client {
    fn new(p: &Portal) -> Self {
        Self::with_local_address(p, None)
    }

    fn with_local_address(p: &Portal, local: Option<std::net::IpAddr>) -> Self {
        let tls = tls_trusting(&p.cert, &[b"h2", b"http/1.1"]);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .resolve("localhost", p.addr)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
            .build()
            .unwrap();
        let base = p.url("");
        Self {
            http,
            origin: base.clone(),
            base,
            cookie: None,
            token: None,
        }
    }

    /// A request with the browser's same-origin headers and the session cookie or token.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .raw(method, path)
            .header("origin", &self.origin)
            .header("sec-fetch-site", "same-origin");
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("__Host-valise-session={c}"));
        }
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// A request with nothing added.
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn login(&mut self, name: &str, password: &str) -> reqwest::Response {
        let r = self
            .req(Method::POST, "/api/login")
            .json(&serde_json::json!({"username": name, "password": password}))
            .send()
            .await
            .unwrap();
        if let Some(set) = r.headers().get("set-cookie") {
            let v = set.to_str().unwrap();
            self.cookie = v
                .split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_owned());
        }
        r
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.req(Method::GET, path).send().await.unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.req(method, path).json(body).send().await.unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn upload(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .req(Method::POST, path)
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

/// A short valid WAV (silence): enough for the portal's type check.
pub fn wav(seconds: f32) -> Vec<u8> {
    let n = (16_000.0 * seconds) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + n * 2).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&16_000u32.to_le_bytes());
    v.extend_from_slice(&32_000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(n * 2).to_le_bytes());
    v.resize(v.len() + (n * 2) as usize, 0);
    v
}

/// A rustls client configuration that trusts only `cert_pem` (the portal's certificate) and
/// offers `alpn` (e.g. `[b"h2", b"http/1.1"]`; empty for none).
pub fn tls_trusting(cert_pem: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls
}

/// An HTTPS client that trusts `cert_pem` and sends `localhost` to `addr` (for portals
/// started as processes).
pub fn https_client(cert_pem: &[u8], addr: SocketAddr) -> reqwest::Client {
    let tls = tls_trusting(cert_pem, &[]);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The files under `dir` whose bytes contain `marker` (case-insensitive), like `grep -ril`.
pub fn grep_dir(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let needle = marker.to_lowercase().into_bytes();
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default().to_ascii_lowercase();
            bytes.windows(needle.len()).any(|w| w == needle.as_slice())
        })
        .collect()
}

/// Polls `/api/jobs/{id}` until the job is final (`done`, `failed`, `cancelled`); fails the
/// test after `limit`.
pub async fn wait_job(c: &Client, id: &str, limit: std::time::Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        let (s, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        if ["done", "failed", "cancelled"].contains(&j["state"].as_str().unwrap()) {
            return j;
        }
        assert!(
            start.elapsed() < limit,
            "job still {} after {limit:?}: {j}",
            j["state"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
