//! Load test of a running portal over loopback HTTPS, as staff use it: `users` people sign
//! in (staggered over the first seconds, as a morning at a post), then each loops over the
//! pages and API calls of the UI — the page and its script, who am I, my history, a text
//! translation, the status of their jobs — while `uploads` of them keep one recording each
//! in flight (upload, poll until done, again). Bounded in time and in requests.
//!
//! Latencies are kept per kind of call: `page` and `api` never wait on an engine (the
//! target is p95 < 300 ms), `translate` waits on the translation engine, `upload` streams a
//! recording to disk, `login` costs an argon2id hash. At the end every job created must be
//! `done` (or still running/queued if the run stopped first): none failed, none lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    /// PEM of the portal's certificate (self-signed in tests and dev).
    pub cert_pem: Vec<u8>,
    /// `(user name, password)` for each simulated user.
    pub users: Vec<(String, String)>,
    /// How many of the users keep a recording in flight.
    pub uploads: usize,
    pub recording: Vec<u8>,
    pub duration: Duration,
    /// Requests per user at most (bounds the run on a fast machine).
    pub max_rounds: usize,
    /// Sign-ins are spread over this long.
    pub ramp: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct Kind {
    pub count: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub users: usize,
    pub uploads_in_flight: usize,
    pub secs: f64,
    pub kinds: BTreeMap<String, Kind>,
    pub jobs_created: usize,
    pub jobs_done: usize,
    pub jobs_unfinished: usize,
    pub jobs_failed: usize,
    pub jobs_lost: usize,
    pub error_samples: Vec<String>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.kinds.values().map(|k| k.errors).sum()
    }

    /// The target: p95 of calls that do not wait on an engine.
    pub fn p95_no_engine_ms(&self) -> f64 {
        ["page", "api"]
            .iter()
            .filter_map(|k| self.kinds.get(*k))
            .map(|k| k.p95_ms)
            .fold(0.0, f64::max)
    }

    /// p95 under 300 ms for calls that do not wait on an engine, no error, no job lost or
    /// failed.
    pub fn passed(&self) -> bool {
        self.p95_no_engine_ms() < 300.0
            && self.errors() == 0
            && self.jobs_lost == 0
            && self.jobs_failed == 0
    }

    pub fn print(&self) {
        println!(
            "portal load: {} users, {} uploads in flight, {:.1} s",
            self.users, self.uploads_in_flight, self.secs
        );
        println!(
            "{:<10} {:>7} {:>7} {:>9} {:>9} {:>9}",
            "kind", "calls", "errors", "p50 ms", "p95 ms", "max ms"
        );
        for (name, k) in &self.kinds {
            println!(
                "{:<10} {:>7} {:>7} {:>9.1} {:>9.1} {:>9.1}",
                name, k.count, k.errors, k.p50_ms, k.p95_ms, k.max_ms
            );
        }
        println!(
            "jobs: {} created, {} done, {} unfinished at the end, {} failed, {} lost",
            self.jobs_created,
            self.jobs_done,
            self.jobs_unfinished,
            self.jobs_failed,
            self.jobs_lost
        );
        let p95 = self.p95_no_engine_ms();
        let ok = self.passed();
        println!(
            "target (p95 < 300 ms for page/api, zero errors, zero lost jobs): p95 {p95:.1} ms, {} errors -> {}",
            self.errors(),
            if ok { "PASS" } else { "FAIL" }
        );
        for e in &self.error_samples {
            println!("  error: {e}");
        }
    }
}

#[derive(Default)]
struct Samples {
    ms: BTreeMap<&'static str, Vec<f64>>,
    errors: BTreeMap<&'static str, usize>,
    samples: Vec<String>,
}

type Shared = Arc<Mutex<Samples>>;

fn record(s: &Shared, kind: &'static str, t: Instant, ok: Result<(), String>) {
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if let Ok(mut g) = s.lock() {
        g.ms.entry(kind).or_default().push(ms);
        if let Err(e) = ok {
            *g.errors.entry(kind).or_default() += 1;
            if g.samples.len() < 10 {
                g.samples.push(format!("{kind}: {e}"));
            }
        }
    }
}

fn client(plan: &Plan) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&plan.cert_pem) {
        roots.add(c.context("certificate")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(120))
        .build()?)
}

struct User {
    http: reqwest::Client,
    url: String,
    cookie: String,
}

impl User {
    fn req(&self, m: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.url))
            .header("cookie", format!("__Host-valise-session={}", self.cookie))
            .header("sec-fetch-site", "same-origin")
            .header("origin", &self.url)
    }
}

async fn check(r: reqwest::Result<reqwest::Response>, want: StatusCode) -> Result<Value, String> {
    let r = r.map_err(|e| e.to_string())?;
    let s = r.status();
    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
    if s != want {
        return Err(format!(
            "HTTP {s}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn sign_in(
    plan: &Plan,
    http: reqwest::Client,
    name: &str,
    pw: &str,
    s: &Shared,
) -> Option<User> {
    let t = Instant::now();
    let r = http
        .post(format!("{}/api/login", plan.url))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": name, "password": pw}))
        .send()
        .await;
    let cookie = match r {
        Ok(r) if r.status() == StatusCode::OK => r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.to_owned()),
        Ok(r) => {
            record(s, "login", t, Err(format!("HTTP {}", r.status())));
            return None;
        }
        Err(e) => {
            record(s, "login", t, Err(e.to_string()));
            return None;
        }
    };
    record(
        s,
        "login",
        t,
        cookie
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| "no cookie".into()),
    );
    Some(User {
        http,
        url: plan.url.clone(),
        cookie: cookie?,
    })
}

const TEXTS: &[&str] = &[
    "The embassy will be closed on Monday for the national holiday.",
    "Please send the signed copies of the agreement before Friday.",
    "The visa section receives applicants every morning from nine to noon.",
    "Thank you for your letter of the fourth of March.",
];

/// One simulated person; returns the ids of the jobs they created.
async fn person(plan: Arc<Plan>, i: usize, s: Shared, deadline: Instant) -> Vec<String> {
    let mut jobs = Vec::new();
    let Ok(http) = client(&plan) else { return jobs };
    let delay = plan.ramp.mul_f64(i as f64 / plan.users.len().max(1) as f64);
    tokio::time::sleep(delay).await;
    let (name, pw) = &plan.users[i];
    let Some(u) = sign_in(&plan, http, name, pw, &s).await else {
        return jobs;
    };
    let uploader = i < plan.uploads;
    let mut current: Option<String> = None;
    for round in 0..plan.max_rounds {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let r = check(u.req(Method::GET, "/").send().await, StatusCode::OK)
            .await
            .map(|_| ());
        record(&s, "page", t, r);
        if round % 4 == 0 {
            let t = Instant::now();
            let r = check(
                u.req(Method::GET, "/assets/app.js").send().await,
                StatusCode::OK,
            )
            .await
            .map(|_| ());
            record(&s, "page", t, r);
        }
        let t = Instant::now();
        let r = check(u.req(Method::GET, "/api/me").send().await, StatusCode::OK)
            .await
            .map(|_| ());
        record(&s, "api", t, r);
        let t = Instant::now();
        let r = check(
            u.req(Method::GET, "/api/jobs?limit=20").send().await,
            StatusCode::OK,
        )
        .await
        .map(|_| ());
        record(&s, "api", t, r);
        if uploader {
            match &current {
                None => {
                    let t = Instant::now();
                    let r = check(
                        u.req(
                            Method::POST,
                            "/api/jobs/transcribe?language=en&filename=load.wav",
                        )
                        .body(plan.recording.clone())
                        .send()
                        .await,
                        StatusCode::CREATED,
                    )
                    .await;
                    let id = r
                        .as_ref()
                        .ok()
                        .and_then(|v| v["id"].as_str())
                        .map(str::to_owned);
                    record(&s, "upload", t, r.map(|_| ()));
                    if let Some(id) = id {
                        jobs.push(id.clone());
                        current = Some(id);
                    }
                }
                Some(id) => {
                    let t = Instant::now();
                    let r = check(
                        u.req(Method::GET, &format!("/api/jobs/{id}")).send().await,
                        StatusCode::OK,
                    )
                    .await;
                    let state = r
                        .as_ref()
                        .ok()
                        .and_then(|v| v["state"].as_str())
                        .map(str::to_owned);
                    record(&s, "api", t, r.map(|_| ()));
                    if state.as_deref() == Some("done") || state.as_deref() == Some("failed") {
                        current = None;
                    }
                }
            }
        } else if round % 3 == 0 {
            let t = Instant::now();
            let text = TEXTS[(i + round) % TEXTS.len()];
            let r = check(
                u.req(Method::POST, "/api/translate")
                    .json(&json!({"text": text, "source": "en", "target": "pt"}))
                    .send()
                    .await,
                StatusCode::OK,
            )
            .await
            .and_then(|v| {
                if v["translation"].as_str().is_some_and(|t| !t.is_empty()) {
                    Ok(())
                } else {
                    Err(format!("empty translation: {v}"))
                }
            });
            record(&s, "translate", t, r);
        }
        // A person reads between clicks.
        tokio::time::sleep(Duration::from_millis(400 + (i as u64 * 37) % 400)).await;
    }
    jobs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs the plan; `job_state(id)` reads a job's final state from the portal's database (the
/// check that nothing was lost does not trust the API alone).
pub async fn run(plan: Plan, job_state: impl Fn(&str) -> Option<String>) -> anyhow::Result<Report> {
    if plan.users.is_empty() || plan.uploads > plan.users.len() {
        bail!("need at least one user, and no more uploaders than users");
    }
    let plan = Arc::new(plan);
    let shared: Shared = Arc::default();
    let start = Instant::now();
    let deadline = start + plan.ramp + plan.duration;
    let mut tasks = Vec::new();
    for i in 0..plan.users.len() {
        tasks.push(tokio::spawn(person(
            plan.clone(),
            i,
            shared.clone(),
            deadline,
        )));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    let g = shared.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut report = Report {
        users: plan.users.len(),
        uploads_in_flight: plan.uploads,
        secs,
        jobs_created: created.len(),
        error_samples: g.samples.clone(),
        ..Report::default()
    };
    for (kind, ms) in &g.ms {
        let mut v = ms.clone();
        v.sort_by(f64::total_cmp);
        report.kinds.insert(
            (*kind).to_owned(),
            Kind {
                count: v.len(),
                errors: g.errors.get(kind).copied().unwrap_or(0),
                p50_ms: percentile(&v, 0.5),
                p95_ms: percentile(&v, 0.95),
                max_ms: v.last().copied().unwrap_or(0.0),
            },
        );
    }
    for id in &created {
        match job_state(id).as_deref() {
            Some("done") => report.jobs_done += 1,
            Some("queued" | "running") => report.jobs_unfinished += 1,
            Some(_) => report.jobs_failed += 1,
            None => report.jobs_lost += 1,
        }
    }
    Ok(report)
}

/// Creates `n` staff accounts `load-user-<i>` directly in the portal's database.
pub fn create_users(db_path: &std::path::Path, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let db = valise_portal::Db::open(db_path)?;
    let pw = "load test password 1234".to_owned();
    let mut users = Vec::new();
    for i in 0..n {
        let name = format!("load-user-{i}");
        db.with(
            |c| match valise_portal::accounts::add_user(c, &name, &pw, false) {
                Ok(_) => Ok(()),
                Err(e) if e.code() == "conflict" => Ok(()),
                Err(e) => Err(e),
            },
        )?;
        users.push((name, pw.clone()));
    }
    Ok(users)
}

/// A job's state read from the portal's database.
pub fn db_job_state(db: &valise_portal::Db, id: &str) -> Option<String> {
    db.with(|c| Ok(valise_portal::jobs::get_any(c, id)?.map(|j| j.state.as_str().to_owned())))
        .ok()
        .flatten()
}
