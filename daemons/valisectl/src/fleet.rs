//! `valisectl fleet watch|report`: the central team's view of the fleet, from the broker.
//!
//! Subscribes with the central identity (`valisectl ca issue central`, which the broker's ACL
//! lets read `valise/v1/#`) to every box's `status`, `health` and `events` over MQTT 5 and
//! mutual TLS, feeds them into `valise_health::fleet::FleetTable` and shows it: `watch`
//! redraws a live table every second; `report` listens for `--wait-s` seconds (the retained
//! statuses arrive at once, health within a box's health interval) and prints the table once
//! as text, JSON or CSV.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use valise_health::fleet::FleetTable;
use valise_health::link::BrokerAddr;
use valise_health_schema::{Channel, fleet_filter};

#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum FleetCommand {
    /// A live table of every box (site, box, online, versions, models, last update, alerts,
    /// last seen), redrawn every second until Ctrl-C.
    Watch(Connect),
    /// Listen for a while, then print the table once.
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct Connect {
    /// The broker, `mqtts://host[:port]`.
    #[arg(long, env = "VALISE_BROKER")]
    pub broker: String,
    /// The central client certificate (PEM), from `valisectl ca issue central`.
    #[arg(long, env = "VALISE_FLEET_CERT")]
    pub cert: PathBuf,
    /// Its key (PEM).
    #[arg(long, env = "VALISE_FLEET_KEY")]
    pub key: PathBuf,
    /// The CA chain the broker's certificate must chain to (PEM).
    #[arg(long, env = "VALISE_FLEET_CA")]
    pub ca: PathBuf,
    /// Optional CRL (PEM): a revoked broker certificate is refused.
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// MQTT client id (two watchers need two ids).
    #[arg(long)]
    pub client_id: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Seconds to listen before printing.
    #[arg(long, default_value_t = 10)]
    pub wait_s: u64,
    /// Output format.
    #[arg(long, value_parser = ["text", "json", "csv"], default_value = "text")]
    pub format: String,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn options(c: &Connect) -> anyhow::Result<MqttOptions> {
    let addr = BrokerAddr::parse(&c.broker).map_err(anyhow::Error::msg)?;
    let identity = valise_pki::tls::ClientIdentity {
        chain: valise_pki::pem::certificates("certificate", &read(&c.cert)?)?,
        key: valise_pki::pem::private_key("key", &read(&c.key)?)?,
    };
    let ca = valise_pki::pem::certificates("CA", &read(&c.ca)?)?;
    let crls = match &c.crl {
        Some(p) => valise_pki::pem::crls("CRL", &read(p)?)?,
        None => Vec::new(),
    };
    let tls = valise_pki::tls::client_config(&identity, &ca, &crls)?;
    let id = c
        .client_id
        .clone()
        .unwrap_or_else(|| format!("valisectl-fleet-{}", std::process::id()));
    let mut o = MqttOptions::new(id, addr.host, addr.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    o.set_keep_alive(Duration::from_secs(30));
    o.set_connection_timeout(10);
    Ok(o)
}

/// Subscribes and ingests until `until` completes; `tick` runs every second.
async fn follow(
    c: &Connect,
    table: &mut FleetTable,
    until: impl std::future::Future<Output = ()>,
    mut tick: impl FnMut(&FleetTable),
) -> anyhow::Result<()> {
    // A thousand boxes send bursts (every retained status at once on subscribe).
    let (client, mut ev) = AsyncClient::new(options(c)?, 1024);
    let client = Arc::new(client);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut refused = 0u32;
    tokio::pin!(until);
    loop {
        tokio::select! {
            e = ev.poll() => match e {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    refused = 0;
                    for ch in [Channel::Status, Channel::Health, Channel::Events] {
                        client.subscribe(fleet_filter(ch), QoS::AtLeastOnce).await?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    table.ingest(&topic, &p.payload, valise_health::unix_now());
                }
                Ok(_) => {}
                Err(e) => {
                    refused += 1;
                    if refused >= 5 {
                        bail!("cannot reach the broker {}: {e}", c.broker);
                    }
                    tracing::warn!(error = %e, "broker connection lost; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = every.tick() => tick(table),
            () = &mut until => return Ok(()),
        }
    }
}

pub async fn fleet(args: FleetArgs) -> anyhow::Result<()> {
    let mut table = FleetTable::new();
    match args.command {
        FleetCommand::Watch(c) => {
            let mut last = (0u64, std::time::Instant::now());
            follow(&c, &mut table, valise_daemon::shutdown_signal(), |t| {
                let now = valise_health::unix_now();
                let rate = (t.messages - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (t.messages, std::time::Instant::now());
                let online = t.rows().filter(|r| r.online == Some(true)).count();
                print!(
                    "\x1b[H\x1b[2J{} boxes, {online} online, {rate:.0} messages/s\n\n{}",
                    t.len(),
                    t.to_text(now)
                );
            })
            .await
        }
        FleetCommand::Report(r) => {
            let wait = tokio::time::sleep(Duration::from_secs(r.wait_s));
            follow(&r.connect, &mut table, wait, |_| {}).await?;
            let out = match r.format.as_str() {
                "json" => table.to_json() + "\n",
                "csv" => table.to_csv(),
                _ => table.to_text(valise_health::unix_now()),
            };
            print!("{out}");
            Ok(())
        }
    }
}
