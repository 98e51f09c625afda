//! valise-health: fleet health on the box (issue 9).
//!
//! The box reports its status, health and events to the central MQTT broker under
//! `valise/v1/<site>/<box>/` (message types in `valise-health-schema`), over mutual TLS with
//! its enrolled identity (valise-pki), and takes a fixed list of commands from its own `cmd`
//! topic. Design note: `DESIGN.md`.
//!
//! ```text
//!  collector (collect.rs)                    spool (spool.rs)               link (link.rs)
//!  kernel, systemd (D-Bus), portal counts ─▶ push, fsync ─▶ segments ─▶ front/ack ─▶ MQTT 5/TLS
//!  file, valise-update's API (update.sock)
//!  every check_interval_s; health every       bounded, ordered,             status online/will
//!  health_interval_s and at once on change     survives SIGKILL              offline; cmd ◀──
//!          ▲                                                                      │
//!          └───────────────── commands (check_for_updates, report_health_now) ◀───┘
//!  check_for_updates = POST /check on valise-update's socket
//! ```

pub mod boot;
pub mod collect;
pub mod config;
pub mod error;
pub mod fleet;
pub mod gpu;
pub mod host;
pub mod link;
pub mod portal;
pub mod spool;
pub mod systemd;
pub mod update;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use valise_health_schema::{BoxId, Command, Name};

pub use config::Config;
pub use error::{Error, Result};
pub use host::Host;
pub use spool::{Class, Record, Spool, SpoolConfig, SpoolStats};

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the daemon until `shutdown` completes: loads the identity, opens the spool, starts the
/// link and collects. Returns once the link said goodbye (retained `offline`).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    cfg.validate().map_err(Error::Invalid)?;
    let installed = valise_pki::enroll::IdentityDir::new(&cfg.identity_dir).load()?;
    let name = |s: &str| Name::new(s).map_err(|e| Error::Invalid(e.to_string()));
    let box_id = BoxId::new(
        name(installed.identity.site.as_str())?,
        name(installed.identity.box_name.as_str())?,
    );
    let broker = cfg
        .broker
        .clone()
        .unwrap_or_else(|| installed.endpoints.broker.clone());
    let link_cfg = link::LinkConfig {
        box_id: box_id.clone(),
        broker: link::BrokerAddr::parse(&broker).map_err(Error::Invalid)?,
        tls: link::TlsSource::load(&cfg.identity_dir, &cfg.crl_file)?,
        keep_alive: Duration::from_secs(cfg.keep_alive_s),
        connect_timeout: Duration::from_secs(cfg.connect_timeout_s),
        reconnect_max: Duration::from_secs(cfg.reconnect_max_s),
        publish_timeout: Duration::from_secs(cfg.publish_timeout_s),
    };
    let not_after = u64::try_from(installed.not_after.unix_timestamp()).ok();
    let spool = Spool::open(
        cfg.state_dir.join("spool"),
        cfg.spool.to_spool_config(),
        unix_now(),
    )?;
    tracing::info!(
        box_id = %box_id,
        pending = spool.pending(),
        next_seq = spool.next_seq(),
        torn_bytes = spool.stats().torn_bytes,
        "spool open"
    );
    let spool = Arc::new(Mutex::new(spool));
    let wake = Arc::new(Notify::new());
    let (cmd_tx, mut cmd_rx) = mpsc::channel(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let link = tokio::spawn(link::run(
        link_cfg,
        spool.clone(),
        wake.clone(),
        cmd_tx,
        stop_rx,
    ));

    let mut boot = boot::Boot::start(&cfg.state_dir, &cfg.boot_id);
    tracing::info!(boot_reason = ?boot.reason(), "boot");
    let mut collector = collect::Collector::new(cfg.clone(), not_after, boot.reason());
    let checking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut check = tokio::time::interval(Duration::from_secs(cfg.check_interval_s));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let health_every = Duration::from_secs(cfg.health_interval_s);
    let mut next_health = tokio::time::Instant::now();
    valise_daemon::notify("READY=1");
    tokio::pin!(shutdown);
    loop {
        let mut force = false;
        tokio::select! {
            _ = check.tick() => {}
            cmd = cmd_rx.recv() => match cmd {
                Some(c) => match c.command {
                    Command::ReportHealthNow => {
                        tracing::info!(id = c.id, "command report_health_now: sending health now");
                        force = true;
                    }
                    Command::CheckForUpdates => check_for_updates(c.id, collector.updater(), &checking),
                },
                None => continue,
            },
            () = &mut shutdown => break,
        }
        let now = unix_now();
        let reading = collector.read(now).await;
        let due = tokio::time::Instant::now() >= next_health;
        let send = force || due || reading.changed || !reading.events.is_empty();
        let pushed = {
            let Ok(mut s) = spool.lock() else { break };
            let mut r = Ok(());
            for e in reading.events {
                tracing::info!(event = ?e, "event");
                r = r.and(collect::push_event(&mut s, now, e).map(|seq| {
                    tracing::debug!(seq, "spooled event");
                }));
            }
            if send {
                r = r.and(collect::push_health(&mut s, reading.health).map(|seq| {
                    tracing::debug!(seq, pending = s.pending(), "spooled health");
                }));
            }
            r
        };
        if let Err(e) = pushed {
            tracing::error!(error = %e, "cannot spool a message");
        }
        if send {
            next_health = tokio::time::Instant::now() + health_every;
        }
        wake.notify_one();
    }
    let _ = stop_tx.send(true);
    let _ = link.await;
    boot.stopped_cleanly();
    Ok(())
}

/// `check_for_updates`: `POST /check` on valise-update's socket, on a task of its own (a
/// check with downloads takes long; the collector goes on). One at a time: while one is
/// asked, another command is logged and dropped.
fn check_for_updates(
    id: u64,
    api: update::UpdateApi,
    checking: &Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    if checking.swap(true, Ordering::SeqCst) {
        tracing::info!(
            id,
            "command check_for_updates: a check asked for earlier is still running"
        );
        return;
    }
    tracing::info!(
        id,
        "command check_for_updates: asking valise-update for a check"
    );
    let checking = checking.clone();
    tokio::spawn(async move {
        match api.check().await {
            Ok(outcome) => {
                tracing::info!(id, outcome = %outcome, "command check_for_updates: valise-update ran a check");
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "command check_for_updates: valise-update did not run a check");
            }
        }
        checking.store(false, Ordering::SeqCst);
    });
}
