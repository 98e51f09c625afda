//! `/etc/valise/valise-health.toml`: every field has a documented default, unknown fields are
//! an error (a typo must not silently change what the box reports).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use valise_config::ByteSize;

use crate::spool::SpoolConfig;

/// The Valise units reported by default (systemd's names; each must fit
/// `valise_health_schema::UnitName`).
pub const DEFAULT_UNITS: &[&str] = &[
    "valise-portal.service",
    "valise-transcribe.service",
    "valise-translate.service",
    "valise-update.service",
    "valise-health.service",
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The box identity (valise-pki): certificate, key, CA chain, CRL and the broker address.
    /// Default `/etc/valise/identity`.
    pub identity_dir: PathBuf,
    /// The CA's CRL as valise-update last installed it from the repository; used instead of
    /// the enrollment's once it is newer. Default `/var/lib/valise/pki/crl.pem`.
    pub crl_file: PathBuf,
    /// `mqtts://host:port` of the broker; default: the `broker` of the identity's
    /// `endpoints.toml`.
    pub broker: Option<String>,
    /// State directory (the spool lives in `<state_dir>/spool`). Default
    /// `/var/lib/valise-health`.
    pub state_dir: PathBuf,
    /// Seconds between periodic health messages. Default 300.
    pub health_interval_s: u64,
    /// Seconds between readings of the units, the portal's counts and the disk (a change
    /// sends a health message at once). Default 15.
    pub check_interval_s: u64,
    /// MQTT keep-alive in seconds (at least 5): a broker that stops answering is noticed
    /// within twice this. Default 30.
    pub keep_alive_s: u64,
    /// Seconds a connection attempt (TCP, TLS, CONNACK) may take. Default 10.
    pub connect_timeout_s: u64,
    /// Longest wait between reconnection attempts, in seconds (the wait doubles from 1 s).
    /// Default 60.
    pub reconnect_max_s: u64,
    /// Seconds to wait for a PUBACK before the link is declared broken. Default 20.
    pub publish_timeout_s: u64,
    /// Units whose state and restart count are reported.
    pub units: Vec<String>,
    /// The counts the portal publishes (queue depth, jobs per hour, failed sign-ins;
    /// `portal.rs`): valise-health never opens the portal's database. Default
    /// `/run/valise-portal/counts.json`.
    pub portal_counts: PathBuf,
    /// Seconds after which the portal's counts file is too old to report (the portal
    /// stopped). Default 60.
    pub portal_counts_max_age_s: u64,
    /// valise-update's socket (`update.rs`): installed bundles, last update, update events,
    /// the metadata's expiry, and `check_for_updates`. Default `/run/valise-update/update.sock`.
    pub update_socket: PathBuf,
    /// The kernel's boot id, to tell a new boot from a restart of valise-health (`boot.rs`).
    /// Default `/proc/sys/kernel/random/boot_id`.
    pub boot_id: PathBuf,
    /// The model store (its `current/manifest.toml` lists installed models). Default
    /// `/var/lib/valise/models`.
    pub model_store: PathBuf,
    /// A path on the data partition, for the disk figures. Default `/var/lib`.
    pub data_dir: PathBuf,
    /// Where the OS image's release is read (`IMAGE_VERSION=`, else `VERSION_ID=`). Default
    /// `/etc/os-release`.
    pub os_release: PathBuf,
    /// The hardware model reported (`jetson-orin-nx-16`); absent by default.
    pub hardware: Option<String>,
    /// Milliseconds any one read of systemd, valise-update or NVML may take. Default 2000.
    pub read_timeout_ms: u64,
    /// The NVML library read for the x86 GPU's figures (`gpu.rs`): a path, or a name the
    /// dynamic loader looks up. Default: `libnvidia-ml.so.1`, the driver's, found by the
    /// loader. A box without it (a Jetson, a box without an NVIDIA driver) reports no NVML
    /// figures.
    pub nvml_library: Option<PathBuf>,
    pub alerts: Alerts,
    pub spool: SpoolSection,
}

/// When an event is raised.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// `disk_nearly_full` at or above this share used. Default 90.
    pub disk_full_percent: u8,
    /// `expiry_soon` when the certificate or the update metadata has fewer days left.
    /// Default 30.
    pub expiry_warn_days: i32,
    /// `failed_sign_ins` when the portal saw at least this many within the window. Default 5.
    pub failed_sign_ins: u32,
    /// The window for failed sign-ins, seconds. Default 900.
    pub failed_sign_ins_window_s: u32,
}

/// `[spool]`: the offline spool's bounds (see `spool.rs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// Default 64 MiB.
    pub max_bytes: ByteSize,
    /// Default 1 MiB.
    pub segment_bytes: ByteSize,
    /// Default 7 days.
    pub health_max_age_s: u64,
    /// Default 30 days.
    pub event_max_age_s: u64,
    /// Default true.
    pub fsync: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            identity_dir: PathBuf::from(valise_pki::enroll::DEFAULT_DIR),
            crl_file: PathBuf::from("/var/lib/valise/pki/crl.pem"),
            broker: None,
            state_dir: PathBuf::from("/var/lib/valise-health"),
            health_interval_s: 300,
            check_interval_s: 15,
            keep_alive_s: 30,
            connect_timeout_s: 10,
            reconnect_max_s: 60,
            publish_timeout_s: 20,
            units: DEFAULT_UNITS.iter().map(|s| (*s).to_owned()).collect(),
            portal_counts: PathBuf::from("/run/valise-portal/counts.json"),
            portal_counts_max_age_s: 60,
            update_socket: PathBuf::from("/run/valise-update/update.sock"),
            boot_id: PathBuf::from("/proc/sys/kernel/random/boot_id"),
            model_store: PathBuf::from("/var/lib/valise/models"),
            data_dir: PathBuf::from("/var/lib"),
            os_release: PathBuf::from("/etc/os-release"),
            hardware: None,
            read_timeout_ms: 2000,
            nvml_library: None,
            alerts: Alerts::default(),
            spool: SpoolSection::default(),
        }
    }
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            disk_full_percent: 90,
            expiry_warn_days: 30,
            failed_sign_ins: 5,
            failed_sign_ins_window_s: 900,
        }
    }
}

impl Default for SpoolSection {
    fn default() -> Self {
        let d = SpoolConfig::default();
        Self {
            max_bytes: ByteSize::new(d.max_bytes),
            segment_bytes: ByteSize::new(d.segment_bytes),
            health_max_age_s: d.health_max_age_s,
            event_max_age_s: d.event_max_age_s,
            fsync: d.fsync,
        }
    }
}

impl SpoolSection {
    pub fn to_spool_config(&self) -> SpoolConfig {
        SpoolConfig {
            max_bytes: self.max_bytes.bytes(),
            segment_bytes: self.segment_bytes.bytes(),
            health_max_age_s: self.health_max_age_s,
            event_max_age_s: self.event_max_age_s,
            fsync: self.fsync,
        }
    }
}

impl Config {
    /// Checks what serde cannot: ranges, unit names, the hardware identifier.
    pub fn validate(&self) -> Result<(), String> {
        if self.keep_alive_s < 5 {
            return Err("keep_alive_s must be at least 5".into());
        }
        for (name, v) in [
            ("health_interval_s", self.health_interval_s),
            ("check_interval_s", self.check_interval_s),
            ("connect_timeout_s", self.connect_timeout_s),
            ("reconnect_max_s", self.reconnect_max_s),
            ("publish_timeout_s", self.publish_timeout_s),
            ("read_timeout_ms", self.read_timeout_ms),
            ("portal_counts_max_age_s", self.portal_counts_max_age_s),
        ] {
            if v == 0 {
                return Err(format!("{name} must be above 0"));
            }
        }
        if self.units.len() > 32 {
            return Err("at most 32 units".into());
        }
        for u in &self.units {
            valise_health_schema::UnitName::new(u).map_err(|e| e.to_string())?;
        }
        if let Some(h) = &self.hardware {
            valise_health_schema::Ident::new(h).map_err(|e| e.to_string())?;
        }
        if self.alerts.disk_full_percent > 100 {
            return Err("alerts.disk_full_percent is a percentage".into());
        }
        if let Some(b) = &self.broker {
            crate::link::BrokerAddr::parse(b)?;
        }
        self.spool
            .to_spool_config()
            .check()
            .map_err(|e| e.to_string())
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../systemd/valise-health.toml");
        let c: Config = valise_config::load(&path).expect("the example parses");
        c.validate().expect("and validates");
        let d = Config::default();
        assert_eq!(c.units, d.units);
        assert_eq!(c.spool.to_spool_config(), d.spool.to_spool_config());
        assert_eq!(
            (c.health_interval_s, c.keep_alive_s, c.check_interval_s),
            (d.health_interval_s, d.keep_alive_s, d.check_interval_s)
        );
        assert_eq!(c.nvml_library, d.nvml_library);
    }

    #[test]
    fn unknown_and_invalid_fields_are_refused() {
        let bad: Result<Config, _> = toml::from_str("helth_interval_s = 5\n");
        assert!(bad.is_err());
        for text in [
            "keep_alive_s = 2",
            "units = [\"sshd.service\"]",
            "broker = \"mqtt://plain:1883\"",
            "hardware = \"a b\"",
            "[spool]\nmax_bytes = \"1 MiB\"\nsegment_bytes = \"1 MiB\"",
        ] {
            let c: Config = toml::from_str(text).expect(text);
            assert!(c.validate().is_err(), "{text}");
        }
    }
}
