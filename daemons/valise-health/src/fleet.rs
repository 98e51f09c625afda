//! The central side's view of the fleet (`valisectl fleet watch|report`): one row per box,
//! built from the messages of `valise/v1/+/+/{status,health,events}`. No I/O here: the
//! caller feeds [`FleetTable::ingest`] whatever its MQTT client receives (and the benchmark
//! feeds it directly).
//!
//! - Messages that do not parse as the v1 schema, or come on a topic that is not exactly a
//!   box's, are counted and ignored.
//! - Health and events are applied in `seq` order per box: an older `seq` (a late replay, a
//!   duplicate of at-least-once delivery) never overwrites newer figures.
//! - Alerts are derived: failed units, a failed update, expiry within 30 days, and warning or
//!   alert events of the last 24 hours.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use valise_health_schema::{
    BoxId, BoxState, Channel, EventMessage, HealthMessage, Severity, StatusMessage, UnitState,
    parse_topic,
};

/// Events older than this no longer raise an alert.
const EVENT_ALERT_S: u64 = 86_400;
/// Expiry closer than this is an alert.
const EXPIRY_ALERT_DAYS: i32 = 30;

/// One box as the centre sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub site: String,
    #[serde(rename = "box")]
    pub box_name: String,
    /// `None` until a status message came.
    pub online: Option<bool>,
    /// When the box declared that state (box clock).
    pub status_at: Option<u64>,
    pub image: Option<String>,
    pub valise: Option<String>,
    /// `id@version`, in the box's order.
    pub models: Vec<String>,
    /// `outcome version at` (`outcome at` for a check that failed before a bundle was
    /// chosen: no version to show), from the last health message.
    pub last_update: Option<String>,
    pub alerts: BTreeSet<String>,
    /// When the centre last received anything from the box (centre clock).
    pub last_seen: u64,
    pub seq: u64,
    #[serde(skip)]
    health_alerts: BTreeSet<String>,
    #[serde(skip)]
    events: Vec<(u64, String)>,
}

/// The fleet: rows by box, and counters of what came in.
#[derive(Debug, Default)]
pub struct FleetTable {
    rows: BTreeMap<BoxId, Row>,
    pub messages: u64,
    pub ignored: u64,
}

/// What an ingested message changed, for a watcher that reacts to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Status(BoxId, bool),
    Health(BoxId),
    Event(BoxId),
    Ignored,
}

impl FleetTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    pub fn get(&self, id: &BoxId) -> Option<&Row> {
        self.rows.get(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Applies one message received at `now` (centre clock, Unix seconds).
    pub fn ingest(&mut self, topic: &str, payload: &[u8], now: u64) -> Change {
        self.messages += 1;
        let change = self.apply(topic, payload, now);
        if change == Change::Ignored {
            self.ignored += 1;
        }
        change
    }

    fn row(&mut self, id: &BoxId) -> &mut Row {
        self.rows.entry(id.clone()).or_insert_with(|| Row {
            site: id.site.to_string(),
            box_name: id.box_name.to_string(),
            ..Row::default()
        })
    }

    fn apply(&mut self, topic: &str, payload: &[u8], now: u64) -> Change {
        let Some((id, channel)) = parse_topic(topic) else {
            return Change::Ignored;
        };
        match channel {
            Channel::Status => {
                let Ok(m) = serde_json::from_slice::<StatusMessage>(payload) else {
                    return Change::Ignored;
                };
                let online = m.state == BoxState::Online;
                let row = self.row(&id);
                row.online = Some(online);
                row.status_at = Some(m.at);
                row.last_seen = row.last_seen.max(now);
                Change::Status(id, online)
            }
            Channel::Health => {
                let Ok(m) = serde_json::from_slice::<HealthMessage>(payload) else {
                    return Change::Ignored;
                };
                let row = self.row(&id);
                row.last_seen = row.last_seen.max(now);
                if m.seq > row.seq {
                    row.seq = m.seq;
                    apply_health(row, &m);
                }
                recompute_alerts(row, now);
                Change::Health(id)
            }
            Channel::Events => {
                let Ok(m) = serde_json::from_slice::<EventMessage>(payload) else {
                    return Change::Ignored;
                };
                let row = self.row(&id);
                row.last_seen = row.last_seen.max(now);
                row.seq = row.seq.max(m.seq);
                if m.event.severity() >= Severity::Warning {
                    let kind = serde_json::to_value(&m.event)
                        .ok()
                        .and_then(|v| v.get("kind")?.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    row.events.push((m.at, kind));
                    // Bounded: the newest 32 per box.
                    if row.events.len() > 32 {
                        row.events.remove(0);
                    }
                }
                recompute_alerts(row, now);
                Change::Event(id)
            }
            Channel::Cmd => Change::Ignored,
        }
    }

    /// The table as text, one line per box, sorted by site and box.
    pub fn to_text(&self, now: u64) -> String {
        let mut out = format!(
            "{:<16} {:<12} {:<8} {:<12} {:<10} {:<40} {:<28} {:<32} {}\n",
            "SITE", "BOX", "ONLINE", "IMAGE", "VALISE", "MODELS", "LAST UPDATE", "ALERTS", "SEEN"
        );
        for r in self.rows.values() {
            let _ = writeln!(
                out,
                "{:<16} {:<12} {:<8} {:<12} {:<10} {:<40} {:<28} {:<32} {}",
                r.site,
                r.box_name,
                match r.online {
                    Some(true) => "online",
                    Some(false) => "OFFLINE",
                    None => "?",
                },
                r.image.as_deref().unwrap_or("-"),
                r.valise.as_deref().unwrap_or("-"),
                clip(&r.models.join(","), 40),
                r.last_update.as_deref().unwrap_or("-"),
                clip(&r.alerts.iter().cloned().collect::<Vec<_>>().join(","), 32),
                ago(r.last_seen, now),
            );
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.rows.values().collect::<Vec<_>>()).unwrap_or_default()
    }

    /// RFC 4180 CSV; lists are joined with `;`.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("site,box,online,image,valise,models,last_update,alerts,last_seen\n");
        for r in self.rows.values() {
            let fields = [
                r.site.clone(),
                r.box_name.clone(),
                r.online.map_or(String::new(), |o| o.to_string()),
                r.image.clone().unwrap_or_default(),
                r.valise.clone().unwrap_or_default(),
                r.models.join(";"),
                r.last_update.clone().unwrap_or_default(),
                r.alerts.iter().cloned().collect::<Vec<_>>().join(";"),
                r.last_seen.to_string(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}

fn apply_health(row: &mut Row, m: &HealthMessage) {
    row.image = Some(m.versions.image.to_string());
    row.valise = Some(m.versions.valise.to_string());
    row.models = m
        .models
        .iter()
        .map(|x| format!("{}@{}", x.id, x.version))
        .collect();
    row.last_update = m.last_update.as_ref().map(|u| {
        let outcome = serde_json::to_value(u.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match &u.to {
            Some(to) => format!("{outcome} {to} {}", u.at),
            None => format!("{outcome} {}", u.at),
        }
    });
    let mut a = BTreeSet::new();
    for u in &m.units {
        if u.state == UnitState::Failed {
            a.insert(format!("failed:{}", u.unit));
        }
    }
    if let Some(u) = &m.last_update
        && !u.outcome.is_success()
    {
        a.insert("update-failed".to_owned());
    }
    for (what, days) in [
        ("certificate", m.expiry.certificate),
        ("update-metadata", m.expiry.update_metadata),
    ] {
        if let Some(d) = days
            && d < EXPIRY_ALERT_DAYS
        {
            a.insert(format!("{what}-expires:{d}d"));
        }
    }
    row.health_alerts = a;
}

fn recompute_alerts(row: &mut Row, now: u64) {
    let mut a = row.health_alerts.clone();
    for (at, kind) in &row.events {
        if at.saturating_add(EVENT_ALERT_S) >= now {
            a.insert(kind.clone());
        }
    }
    row.alerts = a;
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn ago(t: u64, now: u64) -> String {
    if t == 0 {
        return "-".into();
    }
    let d = now.saturating_sub(t);
    match d {
        0..60 => format!("{d}s ago"),
        60..3600 => format!("{}m ago", d / 60),
        3600..86_400 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../valise-health-schema/schema/examples")
            .join(name);
        std::fs::read(p).expect("example")
    }

    #[test]
    fn rows_follow_status_health_and_events_in_seq_order() {
        let mut t = FleetTable::new();
        let now = 1_796_374_900;
        let base = "valise/v1/lisbon/box-1/";
        assert!(matches!(
            t.ingest(
                &format!("{base}status"),
                &example("status-online.json"),
                now
            ),
            Change::Status(_, true)
        ));
        t.ingest(
            &format!("{base}health"),
            &example("health-jetson.json"),
            now,
        );
        let row = t.rows().next().expect("a row");
        assert_eq!(row.online, Some(true));
        assert_eq!(row.image.as_deref(), Some("2026.11.2"));
        assert!(
            row.alerts.contains("failed:valise-translate.service"),
            "{:?}",
            row.alerts
        );
        assert!(row.models.iter().any(|m| m == "silero-vad@5.1"));
        // An older health (a late replay) does not overwrite.
        let mut old: serde_json::Value =
            serde_json::from_slice(&example("health-jetson.json")).expect("json");
        old["seq"] = 1.into();
        old["versions"]["image"] = "2020.1".into();
        t.ingest(
            &format!("{base}health"),
            &serde_json::to_vec(&old).expect("json"),
            now,
        );
        assert_eq!(
            t.rows().next().expect("row").image.as_deref(),
            Some("2026.11.2")
        );
        t.ingest(
            &format!("{base}events"),
            &example("events-update-rolled-back.json"),
            now,
        );
        assert!(
            t.rows()
                .next()
                .expect("row")
                .alerts
                .contains("update_rolled_back")
        );
        t.ingest(
            &format!("{base}status"),
            &example("status-offline-will.json"),
            now,
        );
        assert_eq!(t.rows().next().expect("row").online, Some(false));
        // Foreign topics and bad payloads are counted, not applied.
        assert_eq!(
            t.ingest("valise/v1/lisbon/box-1/health", b"{}", now),
            Change::Ignored
        );
        assert_eq!(t.ingest("valise/v1/x/y/z", b"{}", now), Change::Ignored);
        assert_eq!(t.ignored, 2);
        assert_eq!(t.len(), 1);
        let csv = t.to_csv();
        assert!(csv.starts_with("site,box,online"));
        assert!(csv.contains("lisbon,box-1,false,2026.11.2"), "{csv}");
        assert!(t.to_text(now).contains("OFFLINE"));
        let json: serde_json::Value = serde_json::from_str(&t.to_json()).expect("json");
        assert_eq!(json[0]["box"], "box-1");
    }

    #[test]
    fn a_check_refused_before_a_bundle_was_chosen_shows_and_alerts() {
        let mut t = FleetTable::new();
        let now = 1_796_378_500;
        let topic = "valise/v1/lisbon/box-2/health";
        t.ingest(topic, &example("health-jetson.json"), now);
        let row = t.rows().next().expect("row");
        assert_eq!(
            row.last_update.as_deref(),
            Some("installed 2026.11.2 1796288400")
        );
        assert!(!row.alerts.contains("update-failed"), "{:?}", row.alerts);
        // A later health: the last check refused the repository's metadata; no versions.
        assert!(matches!(
            t.ingest(topic, &example("health-update-failed.json"), now),
            Change::Health(_)
        ));
        let row = t.rows().next().expect("row");
        assert_eq!(
            row.last_update.as_deref(),
            Some("failed_verification 1796378100")
        );
        assert!(row.alerts.contains("update-failed"), "{:?}", row.alerts);
        assert!(t.to_text(now).contains("failed_verification 1796378100"));
        // A box whose portal is stopped sends no job counts: read, not ignored.
        assert_eq!(
            t.ingest(topic, &example("health-minimal-replayed.json"), now),
            Change::Health(id("lisbon", "box-2"))
        );
        assert_eq!(t.ignored, 0);
    }

    fn id(site: &str, b: &str) -> BoxId {
        BoxId::new(
            valise_health_schema::Name::new(site).expect("site"),
            valise_health_schema::Name::new(b).expect("box"),
        )
    }
}
