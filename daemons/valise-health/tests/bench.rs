//! Issue 9, item 10: figures, not a pass/fail test (ignored by default). Run:
//!
//! ```sh
//! cargo nextest run -p valise-health --test bench --run-ignored only --no-capture
//! # VALISE_BENCH_IDLE_S=600 for a longer idle run (default 60 s)
//! ```
//!
//! - **Idle cost on the box**: the real valise-health with its default intervals (health every
//!   300 s, checks every 15 s, keep-alive 30 s) against a real Mosquitto and the fake
//!   systemd: CPU seconds per hour (utime + stime from /proc), resident memory (VmRSS, VmHWM),
//!   and bytes per hour on the wire (both directions, TLS included, counted by a TCP relay
//!   between the daemon and the broker).
//! - **Fleet ingest**: 1,000 simulated boxes (retained status + health messages from the
//!   schema's example, QoS 1) on loopback; the fleet view's path (rumqttc + `FleetTable`, as
//!   `valisectl fleet` runs it) and `mosquitto_sub` (the peer) subscribed to the same stream
//!   in the same run: messages per second each, from first to last message.
//! - **Offline detection**: a real valise-health box killed (SIGKILL: the socket closes) and
//!   frozen (SIGSTOP: silence, as a power cut or a dead link): time until the fleet table
//!   shows it offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Fleet, WAIT};
use nix::sys::signal::Signal;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event};
use valise_e2e::fake_systemd::{FakeSystemd, UnitState};
use valise_health::fleet::FleetTable;

fn proc_field(pid: i32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// utime + stime, seconds.
fn cpu_s(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // fields 14 and 15 of stat, counted after the state (field 3) as index 0
    let ticks = f[11] + f[12];
    ticks as f64
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64
}

/// Copies `from` to `to`, adding every chunk to `count` as it passes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

/// A TCP relay on 127.0.0.1:0 to `to`, counting bytes both ways as they pass.
async fn relay(to: std::net::SocketAddr) -> (u16, Arc<AtomicU64>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let bytes = Arc::new(AtomicU64::new(0));
    let b = bytes.clone();
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let Ok(s) = tokio::net::TcpStream::connect(to).await else {
                continue;
            };
            let (ar, aw) = a.into_split();
            let (sr, sw) = s.into_split();
            tokio::spawn(pump(ar, sw, b.clone()));
            tokio::spawn(pump(sr, aw, b.clone()));
        }
    });
    (port, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn idle_cost_on_the_box() {
    let idle_s: u64 = std::env::var("VALISE_BENCH_IDLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let fake = FakeSystemd::start_ok().await;
    for u in valise_health::config::DEFAULT_UNITS {
        fake.add_unit(u, UnitState::new("active", "running")).await;
    }
    let (port, wire) = relay(fleet.broker.addr).await;
    let url = format!("\"mqtts://127.0.0.1:{port}\"");
    // Copy-on-close relay: count bytes while the connection lives by restarting it at the end.
    let mut d = Daemon::start(
        &fleet,
        "lisbon.box-1",
        &[
            ("broker", url.as_str()),
            ("health_interval_s", "300"),
            ("check_interval_s", "15"),
            ("keep_alive_s", "30"),
        ],
        "",
        Some(fake.address()),
    );
    d.wait_log("connected to the broker", WAIT).await;
    let pid = d.pid().as_raw();
    let cpu0 = cpu_s(pid);
    // Counted from here: the connection (TLS handshake, online, the first health) is made.
    let wire0 = wire.load(Ordering::SeqCst);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_s)).await;
    let cpu = cpu_s(pid) - cpu0;
    let elapsed = t0.elapsed().as_secs_f64();
    let total_cpu = cpu_s(pid);
    let rss = proc_field(pid, "status", "VmRSS:");
    let hwm = proc_field(pid, "status", "VmHWM:");
    let bytes = (wire.load(Ordering::SeqCst) - wire0) as f64;
    println!(
        "idle valise-health over {elapsed:.0} s: CPU {:.2} s/h ({total_cpu:.2} s since start), \
         RSS {} KiB (peak {} KiB), wire {:.0} bytes/h ({:.0} bytes in the window: pings, \
         health every 300 s)",
        cpu * 3600.0 / elapsed,
        rss,
        hwm,
        bytes * 3600.0 / elapsed,
        bytes
    );
    d.signal(Signal::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn fleet_ingest_of_a_thousand_boxes_and_offline_detection() {
    let boxes: usize = std::env::var("VALISE_BENCH_BOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    const HEALTH_PER_BOX: usize = 5;
    let mut fleet = Fleet::start(&["lisbon.box-1"], &[]);
    // Simulators write for many boxes: a bench-only ACL grant on top of the CA's.
    let sim = fleet
        .ca
        .issue_central(&"sim".parse().unwrap(), Validity::days(1))
        .unwrap();
    let acl = fleet.tmp.path().join("srv/acl");
    let mut text = std::fs::read_to_string(&acl).unwrap();
    text.push_str("\nuser central:sim\ntopic write valise/v1/#\n");
    std::fs::write(&acl, text).unwrap();
    // Subscribers must not lose a burst to Mosquitto's per-client queue (1000 by default).
    fleet.broker.add_config("max_queued_messages 0\n");
    fleet.broker.restart();
    let sim_id = common::identity(&sim.cert_pem, &sim.key_pem);

    let total = (boxes * (1 + HEALTH_PER_BOX)) as u64;
    // The peer: mosquitto_sub, counting the same stream.
    let peer = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &fleet.broker.addr.port().to_string(),
        ])
        .args([
            "-i",
            "peer-sub",
            "-q",
            "1",
            "-C",
            &total.to_string(),
            "-W",
            "300",
        ])
        .args(["-t", "valise/v1/+/+/status", "-t", "valise/v1/+/+/health"])
        .args(["-F", "%U"])
        .arg("--cafile")
        .arg(fleet.tmp.path().join("srv/ca.pem"))
        .arg("--cert")
        .arg(&fleet.central_files.cert)
        .arg("--key")
        .arg(&fleet.central_files.key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fleet
        .broker
        .wait_log("Received SUBSCRIBE from peer-sub", WAIT);

    // Ours: rumqttc + FleetTable, as `valisectl fleet watch` runs them.
    let (client, mut ev) =
        AsyncClient::new(fleet.options("fleet-view", fleet.tls(&fleet.central)), 1024);
    let ready = Arc::new(tokio::sync::Notify::new());
    let r2 = ready.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (off_tx, mut off_rx) = tokio::sync::mpsc::unbounded_channel();
    let ours = tokio::spawn(async move {
        let mut table = FleetTable::new();
        let (mut first, mut n) = (None, 0u64);
        let mut done_tx = Some(done_tx);
        let mut subacks = 0;
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in ["valise/v1/+/+/status", "valise/v1/+/+/health"] {
                        client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subacks += 1;
                    if subacks == 2 {
                        r2.notify_one();
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let change = table.ingest(&topic, &p.payload, valise_health::unix_now());
                    if topic.contains("/lisbon/box-1/") {
                        if let valise_health::fleet::Change::Status(_, online) = change {
                            let _ = off_tx.send((online, Instant::now()));
                        }
                        continue;
                    }
                    n += 1;
                    let f = *first.get_or_insert_with(Instant::now);
                    if n == total
                        && let Some(tx) = done_tx.take()
                    {
                        let _ = tx.send((f.elapsed(), table.len()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("fleet view: {e}");
                    return;
                }
            }
        }
    });
    ready.notified().await;

    // The simulators: 10 connections, 100 boxes each, QoS 1.
    let example = std::fs::read_to_string(
        valise_e2e::repo().join("daemons/valise-health-schema/schema/examples/health-jetson.json"),
    )
    .unwrap();
    let health: serde_json::Value = serde_json::from_str(&example).unwrap();
    let t0 = Instant::now();
    let mut sims = Vec::new();
    for s in 0..10 {
        let (c, mut ev) =
            AsyncClient::new(fleet.options(&format!("sim-{s}"), fleet.tls(&sim_id)), 256);
        let health = health.clone();
        sims.push(tokio::spawn(async move {
            let pub_task = tokio::spawn(async move {
                for k in 0..HEALTH_PER_BOX + 1 {
                    for b in 0..boxes / 10 {
                        let prefix = format!("valise/v1/site-{s}/box-{b}");
                        let (topic, body, retain) = if k == 0 {
                            (
                                format!("{prefix}/status"),
                                r#"{"v":1,"state":"online","at":1796371200}"#.to_owned(),
                                true,
                            )
                        } else {
                            let mut h = health.clone();
                            h["seq"] = (k as u64).into();
                            (format!("{prefix}/health"), h.to_string(), false)
                        };
                        c.publish(topic, QoS::AtLeastOnce, retain, body.into_bytes())
                            .await
                            .unwrap();
                    }
                }
                c
            });
            let mut acks = 0;
            while acks < boxes / 10 * (HEALTH_PER_BOX + 1) {
                if let Event::Incoming(Packet::PubAck(_)) = ev.poll().await.unwrap() {
                    acks += 1;
                }
            }
            drop(pub_task.await);
        }));
    }
    for s in sims {
        s.await.unwrap();
    }
    let published = t0.elapsed();
    let Ok(Ok((ours_t, rows))) = tokio::time::timeout(Duration::from_secs(60), done_rx).await
    else {
        let log = fleet.broker.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!("the fleet view did not get everything: {tail:#?}");
    };
    let out = peer.wait_with_output().unwrap();
    let stamps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect();
    assert_eq!(
        stamps.len() as u64,
        total,
        "mosquitto_sub got {}",
        stamps.len()
    );
    let peer_t = stamps.last().unwrap() - stamps.first().unwrap();
    println!(
        "fleet ingest, {boxes} boxes, {total} messages: published in {:.2} s; fleet view \
         (rumqttc + FleetTable) {:.0} msg/s ({:.2} s, {rows} rows); mosquitto_sub {:.0} msg/s \
         ({:.2} s)",
        published.as_secs_f64(),
        total as f64 / ours_t.as_secs_f64(),
        ours_t.as_secs_f64(),
        total as f64 / peer_t,
        peer_t
    );
    assert_eq!(rows, boxes);

    // A real box going away, twice: killed (its socket closes), then frozen (silence).
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[("keep_alive_s", "5")], "", None);
    wait_state(&mut off_rx, true).await;
    let t = Instant::now();
    d.signal(Signal::SIGKILL);
    let killed = wait_state(&mut off_rx, false).await.duration_since(t);
    d.spawn();
    wait_state(&mut off_rx, true).await;
    d.wait_log_n("connected to the broker", 2, WAIT).await;
    let t = Instant::now();
    d.signal(Signal::SIGSTOP);
    let frozen = wait_state(&mut off_rx, false).await.duration_since(t);
    d.signal(Signal::SIGCONT);
    println!(
        "box gone offline shown by the fleet table: killed {:.3} s, frozen (keep-alive 5 s) \
         {:.1} s",
        killed.as_secs_f64(),
        frozen.as_secs_f64()
    );
    ours.abort();
}

use valise_pki::ca::Validity;

/// The next time the watched box's row turned `want` (online or offline).
async fn wait_state(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(bool, Instant)>,
    want: bool,
) -> Instant {
    loop {
        let (online, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if online == want {
            return at;
        }
    }
}
