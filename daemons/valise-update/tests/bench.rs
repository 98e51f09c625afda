//! Issue 12, item 13: a bundle's way from the repository to serving, measured side by side
//! with peers in one run. Figures, not a pass/fail test (ignored by default). Run:
//!
//! ```sh
//! cargo nextest run -p valise-update --test bench --run-ignored only --no-capture
//! # VALISE_BENCH_ROUNDS=N for more alternating rounds (default 5)
//! ```
//!
//! The bundle holds a real model file of the dev store, `whisper-base-f16/ggml-model.bin`
//! (147,951,465 bytes), published in a TUF repository (the tests' fixture) that a real nginx
//! serves over TLS with `ssl_verify_client on`, CA, server certificate and box certificate
//! from valise-pki (`valisectl ca` / `enroll`'s code).
//!
//! 1. **Download**: valise-tuf's `HttpFetch` + `Updater::download_target` (as valise-update
//!    uses them: sha256 computed while streaming into a `.part`, fsync, rename, fsync of the
//!    directory; a new client and TLS session per round) against `curl` with the same client
//!    certificate and the same URL, writing to a file on the same disk (no fsync: `curl` +
//!    fsync is printed too). Rounds alternate who goes first; medians and their ratio.
//! 2. **Verification** of the downloaded file, page cache warm for all: `download::cached`
//!    (what a check runs on a download it already has: ring's SHA-256, 64 KiB reads) and
//!    `valise_models::sha256_file` (what `stage::check_slot` runs: RustCrypto sha2, 1 MiB
//!    reads) against `sha256sum` and `openssl dgst -sha256`.
//! 3. **Switch**: `stage::stage` (the new slot: hard links of the current slot's files and of
//!    the verified download, every file and directory fsynced, `.complete`, rename) and
//!    `switch::switch_to` (symlink, rename, fsync of the store directory) apart.
//! 4. **A whole online check** that installs the bundle (refresh, download, stage, switch;
//!    engines not restarted) and **bytes on the wire** for a check that finds nothing new,
//!    both directions, TLS included, counted by a TCP relay between the box and nginx.
//! 5. **Engines serving again**: the real valise-transcribe and valise-translate on the dev
//!    store's default models, restarted as the updater does (`systemd::restart_engines`
//!    over D-Bus to the fake systemd of `valise_e2e`, whose `RestartUnit` sends SIGTERM,
//!    waits for the exit, starts the binary again and waits for its socket), until the
//!    bundle's acceptance cases (a real transcription of jfk.wav and a real pt→en
//!    translation) have answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fixture;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixture::{Bundle, OkEngines, Repo, now};
use valise_bundle::{AcceptanceCase, BundleInfo, Engine, Manifest, Wave};
use valise_e2e::engines::EngineProc;
use valise_e2e::fake_systemd::{FakeSystemd, RestartFn, UnitState};
use valise_e2e::nginx::{Nginx, NginxTls};
use valise_models::{Catalog, FileEntry};
use valise_pki::BoxIdentity;
use valise_pki::ca::{Ca, Validity};
use valise_pki::enroll::{Endpoints, IdentityDir};
use valise_tuf::fetch::http::{HttpFetch, HttpLimits};
use valise_tuf::store::MetadataStore;
use valise_tuf::{TargetFile, Updater};
use valise_update::history::Outcome;
use valise_update::source::Origin;
use valise_update::systemd::{SystemdUnits, restart_engines};
use valise_update::{Service, stage, switch};

/// The real model file the bundle carries (the largest of the dev store).
const BIG: &str = "whisper-base-f16";

fn rounds() -> usize {
    std::env::var("VALISE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("min {min:.1}, max {max:.1}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// MB/s (10^6 bytes) of `bytes` in `d`.
fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// A store whose `current` is `slots/factory`: the dev store's current slot, hard-linked,
/// less the model the bundle brings (so that a check must fetch it, not link it).
fn factory_store(root: &Path) -> Catalog {
    let dev = fs::canonicalize(valise_e2e::store().join("current")).unwrap();
    let cat = Catalog::load(&dev.join("manifest.toml")).unwrap();
    let slot = root.join("slots/factory");
    let models: Vec<_> = cat.models.iter().filter(|m| m.id != BIG).cloned().collect();
    for f in models.iter().flat_map(|m| &m.files) {
        let to = slot.join(&f.path);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::hard_link(dev.join(&f.path), &to).unwrap();
    }
    fs::write(slot.join("manifest.toml"), Catalog { models }.to_toml()).unwrap();
    std::os::unix::fs::symlink("slots/factory", root.join("current")).unwrap();
    cat
}

/// Bundle `bench` 1: the dev store's whisper-base-f16 model, with jfk.wav as acceptance input.
fn big_bundle(dev: &Catalog) -> Bundle {
    let dev_slot = fs::canonicalize(valise_e2e::store().join("current")).unwrap();
    let model = dev.get(BIG).unwrap().clone();
    let mut contents = BTreeMap::new();
    for f in &model.files {
        contents.insert(f.path.clone(), fs::read(dev_slot.join(&f.path)).unwrap());
    }
    let wav = fs::read(valise_e2e::testdata("jfk.wav")).unwrap();
    let jfk = FileEntry {
        path: "acceptance/jfk.wav".into(),
        size: wav.len() as u64,
        sha256: fixture::tuf::sha256_hex(&wav),
    };
    contents.insert(jfk.path.clone(), wav);
    let manifest = Manifest {
        bundle: BundleInfo {
            id: "bench".into(),
            version: 1,
            engines: vec![Engine::Transcribe],
            description: String::new(),
        },
        models: vec![model],
        files: vec![jfk],
        acceptance: vec![AcceptanceCase::Transcribe {
            name: "jfk-en".into(),
            model: BIG.into(),
            input: "acceptance/jfk.wav".into(),
            language: Some("en".into()),
            expect: common::JFK.into(),
            max_wer: 0.1,
            timeout_s: Some(120),
        }],
    };
    manifest.validate().unwrap();
    Bundle {
        manifest,
        contents,
        wave: Wave::default(),
    }
}

/// The box's identity files as `valisectl enroll install` leaves them.
struct Identity {
    dir: PathBuf,
}

impl Identity {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join("current").join(name)
    }
}

/// CA, nginx serving `root` over mutual TLS, the box identity `lisbon/box-1` in `dir/identity`.
fn serve(dir: &Path, root: &Path) -> (Nginx, Identity) {
    let p = |s: &str| dir.join(s);
    let mut ca = Ca::init(&p("ca"), "Bench CA", Validity::days(30)).unwrap();
    let srv = ca
        .issue_server(&["127.0.0.1".to_owned()], Validity::days(30))
        .unwrap();
    fs::write(p("srv.pem"), &srv.cert_pem).unwrap();
    fs::write(p("srv.key"), &srv.key_pem).unwrap();
    let nginx = Nginx::start(&NginxTls {
        cert: p("srv.pem"),
        key: p("srv.key"),
        client_ca: p("ca/ca.pem"),
        crl: None,
        root: Some(root.to_owned()),
    });
    let id = BoxIdentity::new("lisbon", "box-1").unwrap();
    let idd = IdentityDir::new(p("identity"));
    let csr = idd.request(&id).unwrap();
    let cert = ca.issue_box(&csr, &id, Validity::days(30)).unwrap();
    let repo = format!("https://127.0.0.1:{}/repo", nginx.addr.port());
    let endpoints = Endpoints::new(&repo, "mqtts://127.0.0.1:8883").unwrap();
    idd.install(&cert.cert_pem, ca.cert_pem(), &endpoints, None)
        .unwrap();
    (nginx, Identity { dir: p("identity") })
}

/// A TCP relay on 127.0.0.1:0 to `to`, counting bytes both ways, TLS included.
struct Relay {
    port: u16,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
    done: mpsc::Receiver<()>,
    finished: u64,
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>, done: mpsc::Sender<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = done.send(());
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (up, down, conns): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) =
            Default::default();
        let (tx, done) = mpsc::channel();
        let (u, d, c) = (Arc::clone(&up), Arc::clone(&down), Arc::clone(&conns));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(client) = s else { break };
                let server = TcpStream::connect(to).unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (u, d, t1, t2) = (u.clone(), d.clone(), tx.clone(), tx.clone());
                std::thread::spawn(move || pump(client, server, u, t1));
                std::thread::spawn(move || pump(s2, c2, d, t2));
            }
        });
        Relay {
            port,
            up,
            down,
            conns,
            done,
            finished: 0,
        }
    }

    /// Waits until every connection so far has closed both ways; returns (up, down,
    /// connections) since the last call.
    fn settle(&mut self) -> (u64, u64, u64) {
        while self.finished < 2 * self.conns.load(Ordering::SeqCst) {
            self.done
                .recv_timeout(Duration::from_secs(30))
                .expect("the relayed connections close");
            self.finished += 1;
        }
        self.finished = 0;
        (
            self.up.swap(0, Ordering::SeqCst),
            self.down.swap(0, Ordering::SeqCst),
            self.conns.swap(0, Ordering::SeqCst),
        )
    }
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// `openssl dgst -sha256 -r`: OpenSSL's SHA-256 (with the CPU's SHA extensions where it has
/// them; Debian's sha256sum is coreutils' own C code).
fn openssl_sha256(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn openssl_version() -> String {
    let out = Command::new("openssl").arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn curl(id: &Identity, url: &str, out: &Path) {
    let st = Command::new("curl")
        .args(["-sS", "--fail", "--cert"])
        .arg(id.file("cert.pem"))
        .arg("--key")
        .arg(id.file("key.pem"))
        .arg("--cacert")
        .arg(id.file("ca.pem"))
        .arg("-o")
        .arg(out)
        .arg(url)
        .status()
        .unwrap();
    assert!(st.success(), "curl {url}");
}

/// `cmd --version`'s first line, its first `words` words.
fn tool_version(cmd: &str, words: usize) -> String {
    let out = Command::new(cmd).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    line.split_whitespace()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "a benchmark: figures, not a pass/fail test (see the module comment)"]
fn bundle_from_repository_to_serving() {
    let n = rounds();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    println!(
        "\n== valise-update bench (issue 12 item 13), {n} alternating rounds; load {:.2}, {}",
        valise_bench_common::loadavg(),
        valise_bench_common::cpu_model()
    );

    // The repository, the box's store, nginx.
    let store = dir.join("models");
    let dev = factory_store(&store);
    let bundle = big_bundle(&dev);
    let mut repo = Repo::new(&dir.join("repo"));
    repo.publish(std::slice::from_ref(&bundle));
    let (nginx, id) = serve(dir, dir);
    let base = format!("https://127.0.0.1:{}/repo", nginx.addr.port());
    let tls = IdentityDir::new(&id.dir)
        .load()
        .unwrap()
        .client_config()
        .unwrap();
    let big_path = dev.get(BIG).unwrap().files[0].path.clone();
    let big_target = bundle.manifest.file_target(&big_path);

    // The target as the box's updater sees it (refresh once, untimed).
    let meta = dir.join("bench-metadata");
    fs::create_dir_all(&meta).unwrap();
    fs::write(meta.join("root.json"), &repo.root).unwrap();
    let updater = Updater::new(
        HttpFetch::new(&base, tls.clone(), HttpLimits::default()).unwrap(),
        MetadataStore::open(&meta).unwrap(),
    );
    let mut set = updater.refresh(now()).unwrap();
    let tf: TargetFile = updater.find_target(&mut set, &big_target).unwrap().unwrap();
    let size = tf.length;
    let url = format!("{base}/targets/{}", tf.url_path);
    drop(updater);

    // 1. Download.
    let ours_dest = dir.join("dl-valise");
    let curl_dest = dir.join("dl-curl");
    let (mut ours, mut theirs, mut theirs_sync) = (vec![], vec![], vec![]);
    for round in 0..n {
        for who in [round % 2, 1 - round % 2] {
            if who == 0 {
                let _ = fs::remove_file(&ours_dest);
                let fetch = HttpFetch::new(&base, tls.clone(), HttpLimits::default()).unwrap();
                let u = Updater::new(fetch, MetadataStore::open(&meta).unwrap());
                let (r, d) = timed(|| u.download_target(&tf, &ours_dest));
                r.unwrap();
                ours.push(mbps(size, d));
            } else {
                let _ = fs::remove_file(&curl_dest);
                let (_, d) = timed(|| curl(&id, &url, &curl_dest));
                let (_, s) = timed(|| fs::File::open(&curl_dest).unwrap().sync_all().unwrap());
                theirs.push(mbps(size, d));
                theirs_sync.push(mbps(size, d + s));
            }
        }
    }
    let want = &tf.hashes.0.iter().find(|(a, _)| a == "sha256").unwrap().1;
    assert_eq!(&sha256sum(&curl_dest), want, "curl fetched the target");
    assert_eq!(fs::metadata(&ours_dest).unwrap().len(), size);
    println!(
        "\n1. download over mutual TLS (nginx {}, loopback), {BIG}/{} {size} bytes",
        nginx_version(),
        Path::new(&big_path).file_name().unwrap().to_string_lossy()
    );
    println!(
        "   valise (HttpFetch + download_target, sha256 while streaming, fsync): median {:.1} MB/s ({})",
        median(&ours),
        spread(&ours)
    );
    println!(
        "   curl ({}, -o file): median {:.1} MB/s ({}); curl + fsync {:.1} MB/s",
        tool_version("curl", 2),
        median(&theirs),
        spread(&theirs),
        median(&theirs_sync)
    );
    println!(
        "   ratio valise/curl {:.2}, valise/(curl + fsync) {:.2}",
        median(&ours) / median(&theirs),
        median(&ours) / median(&theirs_sync)
    );

    // 2. Verification, page cache warm (the file was just written and read).
    let _ = sha256sum(&ours_dest);
    let (mut cached, mut slot_check, mut peer, mut ossl) = (vec![], vec![], vec![], vec![]);
    for round in 0..n {
        for who in (0..4).map(|i| (round + i) % 4) {
            match who {
                0 => {
                    let (ok, d) = timed(|| valise_tuf::download::cached(&tf, &ours_dest));
                    assert!(ok);
                    cached.push(mbps(size, d));
                }
                1 => {
                    let (h, d) = timed(|| valise_models::sha256_file(&ours_dest).unwrap());
                    assert_eq!(&h, want);
                    slot_check.push(mbps(size, d));
                }
                2 => {
                    let (h, d) = timed(|| sha256sum(&ours_dest));
                    assert_eq!(&h, want);
                    peer.push(mbps(size, d));
                }
                _ => {
                    let (h, d) = timed(|| openssl_sha256(&ours_dest));
                    assert_eq!(&h, want);
                    ossl.push(mbps(size, d));
                }
            }
        }
    }
    println!("\n2. verification of the same file (sha256, page cache warm)");
    println!(
        "   valise download::cached (ring): median {:.1} MB/s ({})",
        median(&cached),
        spread(&cached)
    );
    println!(
        "   valise sha256_file (stage::check_slot, sha2): median {:.1} MB/s ({})",
        median(&slot_check),
        spread(&slot_check)
    );
    println!(
        "   sha256sum ({}): median {:.1} MB/s ({})",
        tool_version("sha256sum", 4),
        median(&peer),
        spread(&peer)
    );
    println!(
        "   openssl dgst -sha256 ({}): median {:.1} MB/s ({})",
        openssl_version(),
        median(&ossl),
        spread(&ossl)
    );
    println!(
        "   ratio cached/sha256sum {:.2}, sha256_file/sha256sum {:.2}; cached/openssl {:.2}, sha256_file/openssl {:.2}",
        median(&cached) / median(&peer),
        median(&slot_check) / median(&peer),
        median(&cached) / median(&ossl),
        median(&slot_check) / median(&ossl)
    );

    // 3. Stage and switch.
    let from = switch::slot_path(&store, "factory");
    let mbytes = bundle.manifest.to_toml().into_bytes();
    let wav = dir.join("jfk.wav");
    fs::write(&wav, &bundle.contents["acceptance/jfk.wav"]).unwrap();
    let files: BTreeMap<String, PathBuf> = [
        (big_path.clone(), ours_dest.clone()),
        ("acceptance/jfk.wav".to_owned(), wav),
    ]
    .into();
    let (mut staged, mut forward, mut back) = (vec![], vec![], vec![]);
    for round in 0..n {
        let name = format!("bench-{round}");
        let (r, d) = timed(|| {
            stage::stage(&stage::StageInput {
                root: &store,
                from: &from,
                manifest: &bundle.manifest,
                manifest_bytes: &mbytes,
                files: &files,
                name: &name,
            })
        });
        r.unwrap();
        staged.push(ms(d));
        let (r, d) = timed(|| switch::switch_to(&store, &name, true));
        r.unwrap();
        forward.push(ms(d));
        assert_eq!(switch::current_slot(&store).unwrap(), name);
        let (r, d) = timed(|| switch::switch_to(&store, "factory", false));
        r.unwrap();
        back.push(ms(d));
        fs::remove_dir_all(switch::slot_path(&store, &name)).unwrap();
    }
    let files_in_slot: usize = dev.models.iter().map(|m| m.files.len()).sum::<usize>() + 3;
    println!(
        "\n3. switching `current` (store on the same disk, slot of {files_in_slot} files, {:.0} MB)",
        dev.models
            .iter()
            .flat_map(|m| &m.files)
            .map(|f| f.size)
            .sum::<u64>() as f64
            / 1e6
    );
    println!(
        "   stage (hard links, fsync of every file and directory, .complete, rename): median {:.1} ms ({})",
        median(&staged),
        spread(&staged)
    );
    println!(
        "   switch_to (symlink, rename, fsync of the store directory): median {:.2} ms forward ({}), {:.2} ms back",
        median(&forward),
        spread(&forward),
        median(&back)
    );

    // 4. A whole online check through the counting relay, then one that finds nothing new.
    let mut relay = Relay::start(nginx.addr);
    let state = dir.join("state");
    fs::create_dir_all(state.join("metadata")).unwrap();
    fs::write(state.join("metadata/root.json"), &repo.root).unwrap();
    let svc = Service::new(
        valise_update::Config {
            socket: dir.join("update.sock"),
            model_store: store.clone(),
            state_dir: state,
            identity_dir: id.dir.clone(),
            repository: format!("https://127.0.0.1:{}/repo", relay.port),
            initial_time_floor: (now() - fixture::days(7)).unix_timestamp(),
            ..valise_update::Config::default()
        },
        Box::new(OkEngines),
    )
    .unwrap();
    let (r, install) = timed(|| svc.check(&Origin::Repository, now()));
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    let (up1, down1, conns1) = relay.settle();
    let mut quiet = vec![];
    let mut requests = String::new();
    for _ in 0..n {
        let before = nginx.access_log().len();
        let (r, d) = timed(|| svc.check(&Origin::Repository, now()));
        assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
        let (up, down, conns) = relay.settle();
        requests = nginx.access_log()[before..].to_owned();
        quiet.push((up as f64, down as f64, conns as f64, ms(d)));
    }
    // The least a check could cost: one TLS session fetching timestamp.json with curl.
    let before = nginx.access_log().len();
    curl(
        &id,
        &format!(
            "https://127.0.0.1:{}/repo/metadata/timestamp.json",
            relay.port
        ),
        &dir.join("ts.json"),
    );
    let (cu, cd, _) = relay.settle();
    let curl_request = nginx.access_log()[before..].trim().to_owned();
    let col = |i: usize| {
        quiet
            .iter()
            .map(|q| [q.0, q.1, q.2, q.3][i])
            .collect::<Vec<_>>()
    };
    let (up, down) = (median(&col(0)), median(&col(1)));
    println!("\n4. online check, through a TCP relay counting both directions (TLS included)");
    println!(
        "   check that installs the bundle (refresh, download, verify, stage, switch; engines not restarted): {:.2} s, {up1} bytes up, {down1} down, {conns1} connection(s)",
        install.as_secs_f64()
    );
    println!(
        "   check that finds nothing new: median {up:.0} bytes up ({}), {down:.0} bytes down ({}), {:.0} in all, {:.0} connection(s), median {:.1} ms",
        spread(&col(0)),
        spread(&col(1)),
        up + down,
        median(&col(2)),
        median(&col(3))
    );
    println!(
        "   its requests in nginx's access log ($request $status $request_length $bytes_sent $ssl_protocol $ssl_cipher; bytes without TLS):"
    );
    for l in requests.lines() {
        println!("     {l}");
    }
    println!(
        "   curl of timestamp.json alone (one TLS session): {cu} up, {cd} down; ratio check/curl {:.2}",
        (up + down) / (cu + cd) as f64
    );
    println!("     {curl_request}");

    // 5. Engines restarted as an update does, until they answer real requests.
    engines_serving_again(n.min(3));
}

fn nginx_version() -> String {
    let out = Command::new("/usr/sbin/nginx").arg("-v").output().unwrap();
    String::from_utf8_lossy(&out.stderr)
        .trim()
        .trim_start_matches("nginx version: ")
        .to_owned()
}

const UNITS: [&str; 2] = ["valise-transcribe.service", "valise-translate.service"];

fn engines_serving_again(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let (t, l) = valise_e2e::engines::start_engines(dir.path(), 2);
        let engines: Arc<Mutex<(EngineProc, EngineProc)>> = Arc::new(Mutex::new((t, l)));
        // (unit, SIGTERM → exit, exec → socket), ms
        let splits: Arc<Mutex<Vec<(String, f64, f64)>>> = Arc::default();
        let restart: RestartFn = {
            let (engines, splits) = (engines.clone(), splits.clone());
            Arc::new(move |unit: String, _mode: String| {
                let (engines, splits) = (engines.clone(), splits.clone());
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || {
                        let mut e = engines.lock().unwrap();
                        let p = if unit == UNITS[0] { &mut e.0 } else { &mut e.1 };
                        let (clean, stop) = timed(|| p.stop(Duration::from_secs(60)));
                        let (_, start) = timed(|| p.start_again());
                        splits.lock().unwrap().push((unit, ms(stop), ms(start)));
                        if clean { "done" } else { "timeout" }.to_owned()
                    })
                    .await
                    .unwrap()
                })
            })
        };
        let systemd = FakeSystemd::start(restart).await;
        for u in UNITS {
            systemd
                .add_unit(u, UnitState::new("active", "running"))
                .await;
        }
        let units = SystemdUnits::connect(Some(systemd.address()))
            .await
            .unwrap();
        let s = common::sockets(dir.path());
        let bundle = dir.path().join("bundle");
        let m = common::manifest(
            &bundle,
            vec![common::jfk(common::JFK, 0.10), common::pt_en(common::PT_EN)],
        );
        // The same requests on engines that are up and warm (after one request that is not
        // timed, the first after their start), alternating with the restarts.
        valise_update::acceptance::run_acceptance(&m, &bundle, &s)
            .await
            .unwrap();
        let (mut warm, mut restart_ms, mut serve_ms) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let (r, d) =
                timed_async(valise_update::acceptance::run_acceptance(&m, &bundle, &s)).await;
            r.unwrap();
            warm.push(ms(d));
            let (r, d) = timed_async(restart_engines(
                &units,
                &[Engine::Transcribe, Engine::Translate],
                &s,
                Duration::from_secs(240),
            ))
            .await;
            r.unwrap();
            restart_ms.push(ms(d));
            let (r, d) =
                timed_async(valise_update::acceptance::run_acceptance(&m, &bundle, &s)).await;
            assert_eq!(r.unwrap().len(), 2);
            serve_ms.push(ms(d));
        }
        let sp = splits.lock().unwrap().clone();
        let of = |unit: &str, f: fn(&(String, f64, f64)) -> f64| {
            median(&sp.iter().filter(|x| x.0 == unit).map(f).collect::<Vec<_>>())
        };
        println!(
            "\n5. engines serving again after a restart (real binaries, dev store's default models, {n} rounds)"
        );
        for u in UNITS {
            println!(
                "   {u}: SIGTERM → exit median {:.0} ms, exec → socket median {:.0} ms (socket polled every 50 ms)",
                of(u, |x| x.1),
                of(u, |x| x.2)
            );
        }
        println!(
            "   restart_engines (D-Bus RestartUnit + JobRemoved for both, then /v1/health polled every 100 ms): median {:.0} ms ({})",
            median(&restart_ms),
            spread(&restart_ms)
        );
        println!(
            "   first real requests after it (jfk.wav transcription, pt→en translation): median {:.0} ms ({}); the same on warm engines {:.0} ms",
            median(&serve_ms),
            spread(&serve_ms),
            median(&warm)
        );
        println!(
            "   restart request → both engines answered a real request: median {:.0} ms; the first requests' extra over warm {:.0} ms",
            median(&restart_ms) + median(&serve_ms),
            median(&serve_ms) - median(&warm)
        );
    });
}

async fn timed_async<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let r = f.await;
    (r, t.elapsed())
}
