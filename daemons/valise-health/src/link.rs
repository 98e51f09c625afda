//! The MQTT link: one task owns the rumqttc event loop (MQTT 5 over mutual TLS) and drains the
//! spool into it, one record at a time, acknowledging each to the spool only once the broker
//! acknowledged it (PUBACK): delivery is at least once, in `seq` order.
//!
//! ```text
//!            connect (TLS: box cert, CA from the identity; will = offline, retained)
//!  backoff ◀─────────────────────────────────────────────┐
//!    │ 1 s, 2 s, ... reconnect_max_s                      │ error / keep-alive / PUBACK timeout
//!    ▼                                                    │
//!  CONNACK ─▶ publish status online (retained) ─▶ subscribe <prefix>/cmd ─▶ drain spool ─┘
//!                 records older than this connection go out with "replayed": true
//! ```
//!
//! A session lives as long as its event loop; after any error a fresh client is built, so
//! nothing is retransmitted behind the spool's back (the spool is the only queue). A broker
//! that stops answering (SIGSTOP, a dead link) is noticed by the keep-alive (rumqttc fails the
//! session when a PINGRESP is missing by the next ping) or by a PUBACK that does not come
//! within `publish_timeout_s`; meanwhile the collector keeps spooling: nothing on the box
//! waits for the broker.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{Notify, mpsc, watch};
use valise_health_schema::{BoxId, BoxState, Channel, CommandMessage, Spooled, StatusMessage, V1};

use crate::spool::{Class, Spool};
use crate::unix_now;

/// `mqtts://host[:port]` (port 8883 by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

impl BrokerAddr {
    /// Read by valise-pki's `host_port`, the one reading of an enrolled address (IPv6 literals
    /// in brackets, port 8883 by default); a path, query or fragment is refused besides (a
    /// trailing `/` is not one): a broker address has none.
    pub fn parse(s: &str) -> Result<Self, String> {
        let authority = s.strip_prefix("mqtts://").unwrap_or(s);
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#']) {
            return Err(format!("{s:?} is not an mqtts://host[:port] address"));
        }
        let (host, port) =
            valise_pki::enroll::host_port(s, "mqtts", valise_pki::enroll::BROKER_PORT)
                .map_err(|e| e.to_string())?;
        Ok(Self { host, port })
    }
}

/// Where each session's TLS configuration comes from: the identity directory read again
/// (a renewed certificate is used without a restart) with the CRL valise-update last installed
/// from the repository when it is newer than the enrollment's. Without re-reading, a daemon
/// running for months would keep the enrollment's CRL past its nextUpdate and the broker
/// would be refused at every reconnection. If a reading fails, the last good one is kept.
#[derive(Clone, Debug)]
pub struct TlsSource {
    pub identity_dir: std::path::PathBuf,
    pub crl_file: std::path::PathBuf,
    last: Arc<std::sync::Mutex<Arc<rustls::ClientConfig>>>,
}

impl TlsSource {
    /// `first`: the configuration built at start (from the same identity).
    pub fn new(
        identity_dir: std::path::PathBuf,
        crl_file: std::path::PathBuf,
        first: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            identity_dir,
            crl_file,
            last: Arc::new(std::sync::Mutex::new(first)),
        }
    }

    /// Reads the identity and the published CRL (see [`load_tls`]).
    pub fn load(identity_dir: &std::path::Path, crl_file: &std::path::Path) -> crate::Result<Self> {
        let first = load_tls(identity_dir, crl_file)?;
        Ok(Self::new(
            identity_dir.to_owned(),
            crl_file.to_owned(),
            first,
        ))
    }

    /// The configuration for a new session.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match load_tls(&self.identity_dir, &self.crl_file) {
            Ok(c) => *last = c,
            Err(e) => tracing::warn!(error = %e, "identity not re-read; the last one is used"),
        }
        last.clone()
    }
}

/// The box identity's TLS configuration, with the CRL at `crl_file` in place of the
/// enrollment's when it is the same CA's and newer (a bad file is logged and ignored).
pub fn load_tls(
    identity_dir: &std::path::Path,
    crl_file: &std::path::Path,
) -> crate::Result<Arc<rustls::ClientConfig>> {
    let mut id = valise_pki::enroll::IdentityDir::new(identity_dir).load()?;
    if let Err(e) = id.use_fresher_crl(crl_file) {
        tracing::warn!(error = %e, "published CRL not used");
    }
    Ok(id.client_config()?)
}

/// What the link needs.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub box_id: BoxId,
    pub broker: BrokerAddr,
    pub tls: TlsSource,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    pub reconnect_max: Duration,
    pub publish_timeout: Duration,
}

/// The client id: the certificate's common name (the broker's user name for this box), so
/// a second connection of the same box replaces the first instead of running beside it.
pub fn client_id(box_id: &BoxId) -> String {
    box_id.common_name()
}

fn status_json(state: BoxState, at: u64) -> Vec<u8> {
    serde_json::to_vec(&StatusMessage { v: V1, state, at }).unwrap_or_default()
}

/// The MQTT 5 options of a session: TLS with the box identity, the retained `offline` will.
pub fn options(cfg: &LinkConfig, now: u64) -> MqttOptions {
    let mut o = MqttOptions::new(client_id(&cfg.box_id), &cfg.broker.host, cfg.broker.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        cfg.tls.config(),
    )));
    o.set_keep_alive(cfg.keep_alive);
    o.set_connection_timeout(cfg.connect_timeout.as_secs().max(1));
    o.set_clean_start(true);
    o.set_last_will(LastWill::new(
        cfg.box_id.topic(Channel::Status),
        status_json(BoxState::Offline, now),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    o
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Status,
    Record(u64),
}

enum End {
    Shutdown,
    Lost(String),
}

/// Runs until `shutdown` turns true: connects, reconnects with backoff, drains the spool,
/// hands commands to `commands`. `wake` is notified by the collector after each push.
pub async fn run(
    cfg: LinkConfig,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<Notify>,
    commands: mpsc::Sender<CommandMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut connected = false;
        let end = session(
            &cfg,
            &spool,
            &wake,
            &commands,
            &mut shutdown,
            &mut connected,
        )
        .await;
        match end {
            End::Shutdown => return,
            End::Lost(why) => {
                if connected {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(
                    reason = %why,
                    retry_in_s = backoff.as_secs(),
                    "broker link down"
                );
            }
        }
        // A little jitter so a fleet cut off together does not reconnect in lockstep.
        let jitter = Duration::from_millis(u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_millis())
                .unwrap_or(0)
                % 250,
        ));
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            () = stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(cfg.reconnect_max);
    }
}

fn is_delivered(reason: PubAckReason) -> bool {
    matches!(
        reason,
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
    )
}

async fn session(
    cfg: &LinkConfig,
    spool: &Mutex<Spool>,
    wake: &Notify,
    commands: &mpsc::Sender<CommandMessage>,
    shutdown: &mut watch::Receiver<bool>,
    connected: &mut bool,
) -> End {
    let (client, mut ev) = AsyncClient::new(options(cfg, unix_now()), 16);
    let cmd_topic = cfg.box_id.topic(Channel::Cmd);
    let status_topic = cfg.box_id.topic(Channel::Status);
    // Records spooled before this connection are replays.
    let mut live_from = u64::MAX;
    let mut queued: VecDeque<Sent> = VecDeque::new();
    let mut by_pkid: HashMap<u16, Sent> = HashMap::new();
    let mut inflight: Option<(u64, tokio::time::Instant)> = None;
    loop {
        if *connected && inflight.is_none() {
            match next_record(spool, live_from) {
                Ok(Some((seq, channel, payload))) => {
                    let topic = cfg.box_id.topic(channel);
                    if client
                        .try_publish(topic, QoS::AtLeastOnce, false, payload)
                        .is_err()
                    {
                        return End::Lost("the client's request queue is closed".into());
                    }
                    queued.push_back(Sent::Record(seq));
                    inflight = Some((seq, tokio::time::Instant::now() + cfg.publish_timeout));
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the spool"),
            }
        }
        let deadline = inflight.map(|(_, d)| d);
        tokio::select! {
            event = ev.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    *connected = true;
                    live_from = spool.lock().map(|s| s.next_seq()).unwrap_or(u64::MAX);
                    tracing::info!(
                        broker = %cfg.broker.host,
                        port = cfg.broker.port,
                        client = %client_id(&cfg.box_id),
                        "connected to the broker"
                    );
                    let online = status_json(BoxState::Online, unix_now());
                    if client
                        .try_publish(status_topic.clone(), QoS::AtLeastOnce, true, online)
                        .is_err()
                        || client.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce).is_err()
                    {
                        return End::Lost("the client's request queue is closed".into());
                    }
                    queued.push_back(Sent::Status);
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(s) = queued.pop_front() {
                        by_pkid.insert(pkid, s);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => match by_pkid.remove(&ack.pkid) {
                    Some(Sent::Record(seq)) => {
                        if !is_delivered(ack.reason) {
                            // The broker refused this topic (ACL): retrying cannot help.
                            tracing::error!(seq, reason = ?ack.reason, "the broker refused a message");
                        }
                        if let Ok(mut s) = spool.lock()
                            && let Err(e) = s.ack(seq)
                        {
                            tracing::error!(error = %e, "cannot mark a message delivered");
                        }
                        inflight = None;
                    }
                    Some(Sent::Status) if !is_delivered(ack.reason) => {
                        tracing::error!(reason = ?ack.reason, "the broker refused the status");
                    }
                    _ => {}
                },
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    tracing::info!(codes = ?ack.return_codes, "subscribed to the command topic");
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    on_command(&cmd_topic, &p.topic, &p.payload, commands);
                }
                Ok(Event::Incoming(Packet::Disconnect(d))) => {
                    return End::Lost(format!("the broker disconnected: {:?}", d.reason_code));
                }
                Ok(_) => {}
                Err(e) => return End::Lost(e.to_string()),
            },
            _ = wake.notified(), if *connected && inflight.is_none() => {}
            _ = sleep_until(deadline), if deadline.is_some() => {
                return End::Lost("no PUBACK within publish_timeout_s".into());
            }
            () = stopped(shutdown) => {
                if *connected {
                    goodbye(&client, &mut ev, &status_topic).await;
                }
                return End::Shutdown;
            }
        }
    }
}

/// Completes when `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// On a clean stop: `offline` (retained), and once the broker acknowledged it a DISCONNECT,
/// all within two seconds. Waiting for the PUBACK first matters: Mosquitto 2.0.11 drops the
/// connection on rumqttc's MQTT 5 DISCONNECT ("out of memory") and with it whatever it had not
/// processed from the same read, the `offline` included (its will then says offline instead).
async fn goodbye(client: &AsyncClient, ev: &mut rumqttc::v5::EventLoop, status_topic: &str) {
    let offline = status_json(BoxState::Offline, unix_now());
    if client
        .try_publish(status_topic, QoS::AtLeastOnce, true, offline)
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut ours = None;
        loop {
            match ev.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) if ours.is_none() => {
                    ours = Some(pkid);
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == ours => {
                    let _ = client.try_disconnect();
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// The oldest spooled record, as it goes on the wire: its channel and its JSON, marked
/// `replayed` when it was spooled before this connection. Records that no longer parse are
/// dropped (acknowledged) rather than sent.
fn next_record(
    spool: &Mutex<Spool>,
    live_from: u64,
) -> crate::Result<Option<(u64, Channel, Vec<u8>)>> {
    let Ok(mut s) = spool.lock() else {
        return Ok(None);
    };
    loop {
        let Some(r) = s.front(unix_now())? else {
            return Ok(None);
        };
        let channel = match r.class {
            Class::Health => Channel::Health,
            Class::Event => Channel::Events,
        };
        match Spooled::from_json(channel, &r.payload) {
            Ok(mut m) => {
                if r.seq < live_from {
                    m.mark_replayed();
                }
                return Ok(Some((r.seq, channel, m.to_json())));
            }
            Err(e) => {
                tracing::error!(seq = r.seq, error = %e, "dropping a spooled record that does not parse");
                s.ack(r.seq)?;
            }
        }
    }
}

/// A message on the box's own command topic: acted on only when it is exactly that topic and
/// parses as one of the fixed commands; everything is logged (never the payload itself,
/// which may be anything).
fn on_command(
    cmd_topic: &str,
    topic: &[u8],
    payload: &[u8],
    commands: &mpsc::Sender<CommandMessage>,
) {
    if topic != cmd_topic.as_bytes() {
        tracing::warn!(
            topic_bytes = topic.len(),
            "ignored a message on a topic other than this box's command topic"
        );
        return;
    }
    match serde_json::from_slice::<CommandMessage>(payload) {
        Ok(cmd) => {
            tracing::info!(id = cmd.id, command = ?cmd.command, sent_at = cmd.at, "command received");
            if commands.try_send(cmd).is_err() {
                tracing::warn!("command dropped: the previous ones are still being handled");
            }
        }
        Err(_) => {
            tracing::warn!(
                bytes = payload.len(),
                "refused a command that is not on the fixed list"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let a = BrokerAddr::parse("mqtts://mqtt.valise.example:8883").expect("parse");
        assert_eq!((a.host.as_str(), a.port), ("mqtt.valise.example", 8883));
        let a = BrokerAddr::parse("mqtts://127.0.0.1:1884").expect("parse");
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 1884));
        assert_eq!(
            BrokerAddr::parse("mqtts://broker").expect("parse").port,
            8883
        );
        let a = BrokerAddr::parse("mqtts://[fd00::2]:1884/").expect("parse");
        assert_eq!((a.host.as_str(), a.port), ("fd00::2", 1884));
        for bad in [
            "mqtt://broker",
            "mqtts://",
            "mqtts://u@broker",
            "mqtts://broker:x",
            "mqtts://broker/path",
            "https://broker",
            // An unbracketed IPv6 literal: host and port cannot be told apart.
            "mqtts://fd00::2",
        ] {
            assert!(BrokerAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
