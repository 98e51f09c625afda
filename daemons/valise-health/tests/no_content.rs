//! Issue 9, item 4: valise-health never sends content. Real work first (the portal with the
//! real engines: a recording transcribed and its transcript translated, a document translated,
//! text translated, failed sign-ins, all with distinctive file names, words and user names),
//! then valise-health reads that box (the portal's real database, the real model store, the
//! fake systemd with a crashing engine) and every message kind it sends is collected from a
//! real Mosquitto: status (online, and offline as the will), health (live and replayed),
//! events (failed_sign_ins, disk_nearly_full, expiry_soon, engine_crashed, engine_restarted).
//! None holds a file name, a word of the text or transcript, or a user name; neither does the
//! spool on disk nor the daemon's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Central, Daemon, Fleet, Received, WAIT};
use nix::sys::signal::Signal;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use valise_e2e::fake_systemd::{FakeSystemd, UnitState};

const USER: &str = "anasecretuser";
const PASSWORD: &str = "correct horse battery";
const INTRUDER: &str = "malloryplugh";
/// Words that must never leave the box (file names, their stems, text, user names).
const SECRETS: &[&str] = &[
    "FROBNICATE",
    "interview-FROBNICATE",
    "XYZZY",
    "confidential-memo",
    "QUUXWORD",
    "ambassador",
    "embassy",
    "anasecretuser",
    "malloryplugh",
    // words of the recording's transcript (jfk.wav) and its translation
    "fellow",
    "country",
    "americans",
];

struct Http {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Http {
    fn new(p: &valise_portal::Config, addr: std::net::SocketAddr) -> Self {
        let pem = std::fs::read(&p.tls.cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in valise_pki::pem::certificates("portal", &String::from_utf8(pem).unwrap()).unwrap()
        {
            roots.add(c).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .resolve("localhost", addr)
            .build()
            .unwrap();
        Self {
            http,
            base: format!("https://localhost:{}", addr.port()),
            cookie: None,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin");
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("__Host-valise-session={c}"));
        }
        r
    }

    async fn login(&mut self, user: &str, password: &str) -> StatusCode {
        let r = self
            .req(Method::POST, "/api/login")
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            let v = r.headers()["set-cookie"].to_str().unwrap();
            self.cookie = v
                .split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_owned());
        }
        r.status()
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        raw: Option<Vec<u8>>,
    ) -> Value {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(b) = raw {
            r = r.body(b);
        }
        let r = r.send().await.unwrap();
        let s = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }

    async fn wait_done(&self, id: &str) {
        let start = Instant::now();
        loop {
            let j = self
                .json(Method::GET, &format!("/api/jobs/{id}"), None, None)
                .await;
            match j["state"].as_str().unwrap() {
                "done" => return,
                "failed" | "cancelled" => panic!("job {id}: {j}"),
                _ => {}
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "job {id} still {j}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Runs real jobs on a real portal with the real engines; returns the portal's database path.
async fn real_work(dir: &std::path::Path) -> std::path::PathBuf {
    let (_t, _l) = valise_e2e::engines::start_engines(dir, 2);
    let mut config = valise_portal::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        redirect_addr: None,
        data_dir: dir.join("portal"),
        ..valise_portal::Config::default()
    };
    config.tls.cert = dir.join("tls/cert.pem");
    config.tls.key = dir.join("tls/key.pem");
    config.engines.transcribe_socket = dir.join("transcribe.sock");
    config.engines.translate_socket = dir.join("translate.sock");
    valise_portal::server::ensure_dev_cert(
        &config.tls.cert,
        &config.tls.key,
        &["localhost".into()],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cfg = config.clone();
    let portal = tokio::spawn(async move {
        valise_portal::run(cfg, listener, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let mut c = Http::new(&config, addr);
    // The database exists once the portal answers.
    let start = Instant::now();
    while c.req(Method::GET, "/api/me").send().await.is_err() {
        assert!(start.elapsed() < WAIT, "the portal never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    valise_portal::Db::open(&config.db_path())
        .unwrap()
        .with(|db| valise_portal::accounts::add_user(db, USER, PASSWORD, false).map(drop))
        .unwrap();

    // Failed sign-ins: a wrong password for the real user, an unknown name.
    for (u, p) in [(USER, "wrong ambassador"), (INTRUDER, "x"), (INTRUDER, "y")] {
        assert_ne!(Http::new(&config, addr).login(u, p).await, StatusCode::OK);
    }
    assert_eq!(c.login(USER, PASSWORD).await, StatusCode::OK);

    let audio = std::fs::read(valise_e2e::testdata("jfk.wav")).unwrap();
    let job = c
        .json(
            Method::POST,
            "/api/jobs/transcribe?filename=interview-FROBNICATE.wav&language=en",
            None,
            Some(audio),
        )
        .await;
    let tid = job["id"].as_str().unwrap().to_owned();
    let doc = c
        .json(
            Method::POST,
            "/api/jobs/document?filename=confidential-memo-XYZZY.txt&target=pt",
            None,
            Some(b"The ambassador meets QUUXWORD at the embassy tomorrow.\n".to_vec()),
        )
        .await;
    let text = c
        .json(
            Method::POST,
            "/api/translate",
            Some(json!({"text": "The ambassador meets QUUXWORD tomorrow.", "target": "pt"})),
            None,
        )
        .await;
    assert!(text["translation"].as_str().unwrap().contains("QUUXWORD"));
    c.wait_done(doc["id"].as_str().unwrap()).await;
    c.wait_done(&tid).await;
    let tr = c
        .json(
            Method::POST,
            &format!("/api/jobs/{tid}/translate"),
            Some(json!({"target": "pt"})),
            None,
        )
        .await;
    c.wait_done(tr["id"].as_str().unwrap()).await;
    let _ = stop.send(());
    portal.await.unwrap();
    config.db_path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_of_any_kind_carries_content() {
    let work = tempfile::tempdir().unwrap();
    let db = real_work(work.path()).await;

    let mut fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let fake = FakeSystemd::start_ok().await;
    for u in [
        "valise-portal.service",
        "valise-transcribe.service",
        "valise-translate.service",
    ] {
        fake.add_unit(u, UnitState::new("active", "running")).await;
    }
    let filters = [
        "valise/v1/+/+/status",
        "valise/v1/+/+/health",
        "valise/v1/+/+/events",
    ];
    // The box starts with the broker down: its first messages wait in the spool (replayed).
    fleet.broker.stop();
    let store = valise_e2e::store();
    let db_s = format!("{:?}", db.display().to_string());
    let store_s = format!("{:?}", store.display().to_string());
    let mut d = Daemon::start(
        &fleet,
        "lisbon.box-1",
        &[
            ("portal_db", db_s.as_str()),
            ("model_store", store_s.as_str()),
            ("health_interval_s", "1"),
            // Low thresholds so that every event kind fires on this machine.
            ("alerts", "{ failed_sign_ins = 2, disk_full_percent = 1 }"),
        ],
        "",
        Some(fake.address()),
    );
    d.wait_log("spooled health", WAIT).await;
    d.signal(Signal::SIGSTOP);
    fleet.broker.restart();
    let mut central = Central::connect(&fleet, "central-1", &filters).await;
    d.signal(Signal::SIGCONT);
    d.wait_log("connected to the broker", WAIT).await;
    fake.update_unit("valise-translate.service", |u| {
        u.active_state = "failed".into();
        u.n_restarts = 2;
    })
    .await;

    let mut got: Vec<Received> = Vec::new();
    let mut kinds = BTreeSet::new();
    let want = [
        "status:online",
        "health:live",
        "health:replayed",
        "events:failed_sign_ins",
        "events:disk_nearly_full",
        "events:expiry_soon",
        "events:engine_crashed",
        "events:engine_restarted",
    ];
    let start = Instant::now();
    while !want.iter().all(|k| kinds.contains(*k)) {
        assert!(start.elapsed() < Duration::from_secs(60), "only {kinds:?}");
        let Some(m) = central.next(WAIT).await else {
            break;
        };
        let channel = m.topic.rsplit('/').next().unwrap().to_owned();
        let kind = match channel.as_str() {
            "status" => format!("status:{}", m.json["state"].as_str().unwrap()),
            "health" if m.json["replayed"] == true => "health:replayed".into(),
            "health" => {
                // The counts came from the portal's real database.
                assert!(
                    m.json["jobs"]["done_last_hour"].as_u64().unwrap() >= 3,
                    "{}",
                    m.json
                );
                "health:live".into()
            }
            _ => format!("events:{}", m.json["event"]["kind"].as_str().unwrap()),
        };
        kinds.insert(kind);
        got.push(m);
    }
    // The will: offline, sent by the broker when the box dies.
    d.signal(Signal::SIGKILL);
    let will = central.next_on("status", WAIT).await;
    assert_eq!(will.json["state"], "offline");
    got.push(will);

    let mut checked = 0;
    for m in &got {
        let text = String::from_utf8_lossy(&m.raw).to_lowercase();
        for s in SECRETS {
            assert!(
                !text.contains(&s.to_lowercase()),
                "{s:?} left the box on {}: {text}",
                m.topic
            );
        }
        checked += 1;
    }
    println!("{checked} messages checked, kinds: {kinds:?}");
    // Nor what stays on the box for it: the spool and the daemon's log.
    let mut on_disk = d.log_text().to_lowercase();
    for e in walk(&d.dir.join("state")) {
        on_disk.push_str(&String::from_utf8_lossy(&std::fs::read(e).unwrap()).to_lowercase());
    }
    for s in SECRETS {
        assert!(
            !on_disk.contains(&s.to_lowercase()),
            "{s:?} in the spool or log"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
