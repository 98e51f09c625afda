//! What the broker tests share: a CA with enrolled boxes and a central identity (valise-pki),
//! a real Mosquitto with TLS, required certificates and the CA's ACL, the real valise-health
//! binary run against it, and a central subscriber (rumqttc, MQTT 5) standing in for the
//! fleet view.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::{Notify, mpsc};
use valise_e2e::mosquitto::{Mosquitto, MosquittoTls, MqttClient};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Reason, Validity};
use valise_pki::enroll::{Endpoints, IdentityDir};
use valise_pki::tls::ClientIdentity;

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

pub fn identity(cert_pem: &str, key_pem: &str) -> ClientIdentity {
    ClientIdentity {
        chain: valise_pki::pem::certificates("cert", cert_pem).unwrap(),
        key: valise_pki::pem::private_key("key", key_pem).unwrap(),
    }
}

/// A CA, enrolled boxes, a central identity and a broker enforcing the CA's ACL.
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub ca: Ca,
    pub ca_pem: String,
    pub broker: Mosquitto,
    pub central: ClientIdentity,
    pub central_files: MqttClient,
}

impl Fleet {
    /// Enrolls `boxes` (`site.box`) with installed identity directories under the tempdir,
    /// and `revoked` boxes whose certificates are revoked (in the broker's CRL) before it
    /// starts.
    pub fn start(boxes: &[&str], revoked: &[&str]) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().to_path_buf();
        let mut ca = Ca::init(&t.join("ca"), "Test CA", Validity::days(2)).unwrap();
        let ca_pem = ca.cert_pem().to_owned();
        for cn in boxes.iter().chain(revoked) {
            Self::enroll(&mut ca, &t, &ca_pem, cn);
        }
        for cn in revoked {
            let (site, b) = cn.split_once('.').unwrap();
            ca.revoke_box(&BoxIdentity::new(site, b).unwrap(), Reason::KeyCompromise)
                .unwrap();
        }
        let central = ca
            .issue_central(&"fleet".parse().unwrap(), Validity::days(2))
            .unwrap();
        let central_files = MqttClient {
            cert: write(&t, "central/cert.pem", &central.cert_pem),
            key: write(&t, "central/key.pem", &central.key_pem),
        };
        let srv = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], Validity::days(2))
            .unwrap();
        let crl = ca.crl(1).unwrap();
        let broker = Mosquitto::start(&MosquittoTls {
            cert: write(&t, "srv/cert.pem", &srv.cert_pem),
            key: write(&t, "srv/key.pem", &srv.key_pem),
            ca: write(&t, "srv/ca.pem", &ca_pem),
            crl: Some(write(&t, "srv/crl.pem", &crl.pem)),
            acl: write(&t, "srv/acl", &ca.mosquitto_acl()),
        });
        Fleet {
            central: identity(&central.cert_pem, &central.key_pem),
            central_files,
            tmp,
            ca,
            ca_pem,
            broker,
        }
    }

    fn enroll(ca: &mut Ca, t: &Path, ca_pem: &str, cn: &str) {
        let (site, b) = cn.split_once('.').unwrap();
        let id = BoxIdentity::new(site, b).unwrap();
        let dir = IdentityDir::new(t.join(cn).join("identity"));
        let csr = dir.request(&id).unwrap();
        let cert = ca.issue_box(&csr, &id, Validity::days(2)).unwrap();
        // The broker's real address goes in the daemon's configuration (`broker`).
        let endpoints = Endpoints::new("https://updates.invalid", "mqtts://127.0.0.1:1").unwrap();
        dir.install(&cert.cert_pem, ca_pem, &endpoints, None)
            .unwrap();
    }

    pub fn identity_dir(&self, cn: &str) -> PathBuf {
        self.tmp.path().join(cn).join("identity")
    }

    /// A box's installed client identity, for talking to the broker directly.
    pub fn box_identity(&self, cn: &str) -> ClientIdentity {
        IdentityDir::new(self.identity_dir(cn))
            .load()
            .unwrap()
            .client
    }

    pub fn ca_certs(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        valise_pki::pem::certificates("ca", &self.ca_pem).unwrap()
    }

    pub fn tls(&self, who: &ClientIdentity) -> Arc<rustls::ClientConfig> {
        valise_pki::tls::client_config(who, &self.ca_certs(), &[]).unwrap()
    }

    /// TLS that trusts the CA but shows no client certificate.
    pub fn tls_without_certificate(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.ca_certs() {
            roots.add(c).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }

    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.broker.addr.port())
    }

    pub fn options(&self, id: &str, tls: Arc<rustls::ClientConfig>) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", self.broker.addr.port());
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        o.set_keep_alive(Duration::from_secs(5));
        o.set_connection_timeout(5);
        o
    }
}

/// Polls until `pred` matches an incoming packet (or panics after `limit`).
pub async fn until(
    ev: &mut EventLoop,
    limit: Duration,
    mut pred: impl FnMut(&Packet) -> bool,
) -> Packet {
    tokio::time::timeout(limit, async {
        loop {
            if let Event::Incoming(p) = ev.poll().await.expect("connection failed")
                && pred(&p)
            {
                return p;
            }
        }
    })
    .await
    .expect("the packet never came")
}

/// Connects with `tls`: `Ok` at the CONNACK, the error when the broker refused first;
/// panics when neither came within 10 s.
pub async fn connect(
    fleet: &Fleet,
    id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(), ConnectionError> {
    let (_c, mut ev) = AsyncClient::new(fleet.options(id, tls), 4);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("neither connected nor refused")
}

/// Gives `dir` and everything under it to `uid:gid`.
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if dir.is_dir() && !dir.is_symlink() {
        for e in std::fs::read_dir(dir).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

/// The real valise-health binary, its stderr in a file.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// Runs as this (uid, gid) instead of the test's user, with no supplementary group.
    user: Option<(u32, u32)>,
}

impl Daemon {
    /// Starts valise-health for box `cn` with a configuration for tests (short intervals),
    /// `set` overriding or adding top-level keys (`("health_interval_s", "1")`) and `spool`
    /// lines for `[spool]`. `dbus`: the bus of a fake systemd, if any.
    pub fn start(
        fleet: &Fleet,
        cn: &str,
        set: &[(&str, &str)],
        spool: &str,
        dbus: Option<&str>,
    ) -> Daemon {
        Self::start_as(fleet, cn, set, spool, dbus, None)
    }

    /// [`Daemon::start`] as another user (`(uid, gid)`, e.g. nobody): the box's directory
    /// (identity, state, log) is given to it and the test's directory made passable.
    pub fn start_as(
        fleet: &Fleet,
        cn: &str,
        set: &[(&str, &str)],
        spool: &str,
        dbus: Option<&str>,
        user: Option<(u32, u32)>,
    ) -> Daemon {
        let dir = fleet.tmp.path().join(cn).join("daemon");
        std::fs::create_dir_all(&dir).unwrap();
        let q = |p: PathBuf| format!("{:?}", p.display().to_string());
        let mut keys: std::collections::BTreeMap<&str, String> = [
            ("identity_dir", q(fleet.identity_dir(cn))),
            ("broker", format!("{:?}", fleet.url())),
            ("state_dir", q(dir.join("state"))),
            ("check_interval_s", "1".into()),
            ("health_interval_s", "3600".into()),
            ("keep_alive_s", "5".into()),
            ("connect_timeout_s", "2".into()),
            ("reconnect_max_s", "1".into()),
            ("publish_timeout_s", "5".into()),
            ("portal_counts", q(dir.join("no-portal/counts.json"))),
            ("update_socket", q(dir.join("no-update.sock"))),
            ("model_store", q(dir.join("no-store"))),
            ("data_dir", q(dir.clone())),
        ]
        .into_iter()
        .collect();
        for (k, v) in set {
            keys.insert(k, (*v).to_owned());
        }
        let mut text: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        text.push_str(&format!("[spool]\n{spool}\n"));
        let config = write(&dir, "valise-health.toml", &text);
        let mut env = vec![
            (
                "VALISE_LOG".to_owned(),
                "info,valise_health=debug,rumqttc=error".to_owned(),
            ),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(a) = dbus {
            env.push(("DBUS_SYSTEM_BUS_ADDRESS".to_owned(), a.to_owned()));
        }
        let mut d = Daemon {
            child: None,
            log: dir.join("stderr.log"),
            dir,
            config,
            env,
            user,
        };
        if let Some((uid, gid)) = user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(fleet.tmp.path(), std::fs::Permissions::from_mode(0o711))
                .unwrap();
            std::fs::File::create(&d.log).unwrap();
            chown_tree(&fleet.tmp.path().join(cn), uid, gid);
        }
        d.spawn();
        d
    }

    /// (Re)starts the process with the same configuration; its log continues.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut c = Command::new(valise_e2e::bin("valise-health"));
        c.arg("--config")
            .arg(&self.config)
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            // std drops the supplementary groups (setgroups) when it changes the uid.
            c.uid(uid).gid(gid);
        }
        self.child = Some(c.spawn().unwrap());
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    pub fn signal(&mut self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap();
        if matches!(
            sig,
            nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGTERM
        ) {
            let status = self.child.take().unwrap().wait().unwrap();
            assert!(
                sig == nix::sys::signal::Signal::SIGKILL || status.success(),
                "valise-health exited {status}: {}",
                self.log_text()
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    /// Waits until the log holds `needle` at least `n` times.
    pub async fn wait_log_n(&mut self, needle: &str, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.count(needle) < n {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait().unwrap()
            {
                panic!("valise-health exited {status}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < limit,
                "valise-health never logged {needle:?} {n} times within {limit:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_log(&mut self, needle: &str, limit: Duration) {
        self.wait_log_n(needle, 1, limit).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message the central side received.
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    pub retain: bool,
    pub json: serde_json::Value,
    pub raw: Vec<u8>,
}

/// A central subscriber (the central identity, MQTT 5), re-subscribing after each
/// reconnection.
pub struct Central {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Received>,
    subscribed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Central {
    pub async fn connect(fleet: &Fleet, id: &str, filters: &[&str]) -> Central {
        let (client, mut ev) = AsyncClient::new(fleet.options(id, fleet.tls(&fleet.central)), 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let subscribed = Arc::new(Notify::new());
        let filters: Vec<String> = filters.iter().map(|s| (*s).to_owned()).collect();
        let (c2, s2) = (client.clone(), subscribed.clone());
        let task = tokio::spawn(async move {
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            c2.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => s2.notify_one(),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let raw = p.payload.to_vec();
                        let _ = tx.send(Received {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            retain: p.retain,
                            json: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
                            raw,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let c = Central {
            client,
            rx,
            subscribed,
            task,
        };
        tokio::time::timeout(Duration::from_secs(10), c.subscribed.notified())
            .await
            .expect("the central subscriber never got its SUBACK");
        c
    }

    /// The next message, at most `limit` away.
    pub async fn next(&mut self, limit: Duration) -> Option<Received> {
        tokio::time::timeout(limit, self.rx.recv()).await.ok()?
    }

    /// The next message on a topic ending in `/suffix`, skipping others.
    pub async fn next_on(&mut self, suffix: &str, limit: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no message on */{suffix} within {limit:?}"));
            if m.topic.ends_with(&format!("/{suffix}")) {
                return m;
            }
        }
    }

    /// Everything received within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        while let Some(m) = self.next(window).await {
            out.push(m);
        }
        out
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const WAIT: Duration = Duration::from_secs(20);
