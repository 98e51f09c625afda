//! The appliance's packet filter, as one nftables table rendered from configuration.
//!
//! Policy (issue 10, item 2; DESIGN.md beside this crate):
//! - **in**: drop by default; the portal's HTTPS port and its HTTP redirect port, from the LAN
//!   ranges only; replies to what the box itself opened; loopback; DHCP replies and IPv6
//!   neighbour discovery when the LAN needs them.
//! - **out**: drop by default; the update repository and the MQTT broker (their addresses come
//!   from the enrollment's `endpoints.toml`, so IT configures them once), the resolvers and
//!   time servers named in the configuration, replies to LAN clients of the portal.
//! - **forward**: drop.
//!
//! The table is replaced in one nftables transaction (`add; delete; define`), so a box is never
//! without rules while they change, and a ruleset nft refuses leaves the old one in place.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The nftables table Valise owns; nothing else on the box is touched.
pub const TABLE: &str = "valise";
pub const DEFAULT_CONFIG: &str = "/etc/valise/firewall.toml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `/etc/valise/firewall.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who may reach the portal: CIDR ranges, IPv4 or IPv6. Required: there is no default LAN.
    pub lan: Vec<IpNet>,
    /// Resolvers the box may ask (UDP and TCP 53), for the central hosts' names.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// Time servers (UDP 123): update metadata expiry depends on a sane clock.
    #[serde(default)]
    pub ntp: Vec<IpAddr>,
    /// Let DHCP (v4) through, for a LAN address from the post's DHCP server.
    #[serde(default)]
    pub dhcp: bool,
    /// The portal's configuration, read for its ports.
    #[serde(default = "default_portal_config")]
    pub portal_config: PathBuf,
    /// The enrollment's central addresses (absent before enrollment: nothing goes out).
    #[serde(default = "default_endpoints")]
    pub endpoints: PathBuf,
    /// The addresses last resolved for the central hosts, used when a name cannot be resolved
    /// (at boot, before the network is up, or while the resolver is down).
    #[serde(default = "default_state")]
    pub state: PathBuf,
}

fn default_portal_config() -> PathBuf {
    PathBuf::from("/etc/valise/valise-portal.toml")
}
fn default_endpoints() -> PathBuf {
    PathBuf::from("/etc/valise/identity/current/endpoints.toml")
}
fn default_state() -> PathBuf {
    PathBuf::from("/var/lib/valise-firewall/resolved.json")
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let cfg: Config = toml::from_str(&read(path)?).map_err(|e| bad(e.to_string()))?;
        if cfg.lan.is_empty() {
            return Err(bad(
                "`lan` is empty: name the ranges that may reach the portal".into(),
            ));
        }
        Ok(cfg)
    }
}

/// The portal's ports, from its own configuration file (so the two cannot disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalPorts {
    pub https: u16,
    pub redirect: Option<u16>,
}

/// Reads `addr` and `redirect_addr` from the portal's TOML (other fields are the portal's
/// business). Defaults are the portal's: 443 and 80; a file that does not exist means defaults.
pub fn portal_ports(path: &Path) -> Result<PortalPorts> {
    #[derive(Deserialize)]
    struct Portal {
        addr: Option<SocketAddr>,
        #[serde(default = "some_80")]
        redirect_addr: Option<SocketAddr>,
    }
    fn some_80() -> Option<SocketAddr> {
        Some(SocketAddr::from(([0, 0, 0, 0], 80)))
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let p: Portal = toml::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(PortalPorts {
        https: p.addr.map_or(443, |a| a.port()),
        redirect: p.redirect_addr.map(|a| a.port()),
    })
}

/// A central service the box may open connections to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Destination {
    /// `update` or `broker`.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// The update repository and the broker, from the enrollment's `endpoints.toml`; none before
/// enrollment.
pub fn destinations(endpoints: &Path) -> Result<Vec<Destination>> {
    if !endpoints.exists() {
        return Ok(Vec::new());
    }
    let e: valise_pki::enroll::Endpoints =
        toml::from_str(&read(endpoints)?).map_err(|e| Error::Config {
            path: endpoints.to_path_buf(),
            msg: e.to_string(),
        })?;
    let url = |r: valise_pki::Result<(String, u16)>| r.map_err(|e| Error::Invalid(e.to_string()));
    let (uh, up) = url(e.repository_addr())?;
    let (bh, bp) = url(e.broker_addr())?;
    Ok(vec![
        Destination {
            name: "update".into(),
            host: uh,
            port: up,
        },
        Destination {
            name: "broker".into(),
            host: bh,
            port: bp,
        },
    ])
}

/// A destination with the addresses it was resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub dest: Destination,
    pub addrs: BTreeSet<IpAddr>,
}

/// What could not be resolved, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub dest: Destination,
    pub reason: String,
    /// Whether the last known addresses were used instead.
    pub used_previous: bool,
}

/// Resolves each destination with `lookup` (IP literals need none); a name that fails keeps
/// the addresses it had in `previous`, or is left out (nothing goes there until it resolves).
pub fn resolve_all(
    dests: &[Destination],
    previous: &[Resolved],
    lookup: impl Fn(&str, u16) -> std::io::Result<Vec<IpAddr>>,
) -> (Vec<Resolved>, Vec<Unresolved>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for d in dests {
        let found = match d.host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => lookup(&d.host, d.port).and_then(|v| {
                if v.is_empty() {
                    Err(std::io::Error::other("no address"))
                } else {
                    Ok(v)
                }
            }),
        };
        match found {
            Ok(addrs) => ok.push(Resolved {
                dest: d.clone(),
                addrs: addrs.into_iter().collect(),
            }),
            Err(e) => {
                let prev = previous.iter().find(|p| p.dest == *d);
                if let Some(p) = prev {
                    ok.push(p.clone());
                }
                failed.push(Unresolved {
                    dest: d.clone(),
                    reason: e.to_string(),
                    used_previous: prev.is_some(),
                });
            }
        }
    }
    (ok, failed)
}

/// The system resolver (getaddrinfo).
pub fn system_lookup(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// Everything the ruleset is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub lan: Vec<IpNet>,
    pub portal: PortalPorts,
    pub dns: Vec<IpAddr>,
    pub ntp: Vec<IpAddr>,
    pub dhcp: bool,
    pub outbound: Vec<Resolved>,
}

fn set<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> Option<String> {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    (!v.is_empty()).then(|| format!("{{ {} }}", v.join(", ")))
}

/// One `ip`/`ip6` match per family present in `addrs`, each followed by `rest`.
fn per_family(out: &mut String, dir: &str, addrs: &[String], v6: &[bool], rest: &str) {
    for (family, six) in [("ip", false), ("ip6", true)] {
        let mine: Vec<&String> = addrs
            .iter()
            .zip(v6)
            .filter(|(_, s)| **s == six)
            .map(|(a, _)| a)
            .collect();
        if let Some(s) = set(mine) {
            let _ = writeln!(out, "\t\t{family} {dir} {s} {rest}");
        }
    }
}

/// The nftables script: one transaction replacing table `inet valise`.
pub fn render(plan: &Plan) -> String {
    let mut ports = vec![plan.portal.https];
    ports.extend(plan.portal.redirect);
    ports.sort_unstable();
    ports.dedup();
    let ports = set(&ports).expect("at least the HTTPS port");
    let lan: Vec<String> = plan.lan.iter().map(|n| n.trunc().to_string()).collect();
    let lan6: Vec<bool> = plan.lan.iter().map(|n| matches!(n, IpNet::V6(_))).collect();

    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Rendered by valise-firewall; do not edit (edit /etc/valise/firewall.toml).\n\
         table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
    );
    // in
    s.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n");
    s.push_str("\t\tiif lo accept\n\t\tct state invalid drop\n");
    s.push_str("\t\tct state established,related accept\n");
    s.push_str(
        "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } \
         ip6 hoplimit 255 accept\n",
    );
    if plan.dhcp {
        s.push_str("\t\tudp sport 67 udp dport 68 accept comment \"dhcp\"\n");
    }
    per_family(
        &mut s,
        "saddr",
        &lan,
        &lan6,
        &format!("tcp dport {ports} ct state new accept comment \"portal\""),
    );
    s.push_str("\t\tcounter comment \"dropped in\"\n\t}\n");
    // out
    s.push_str("\tchain output {\n\t\ttype filter hook output priority filter; policy drop;\n");
    s.push_str("\t\toif lo accept\n\t\tct state invalid drop\n");
    s.push_str("\t\tct state established,related accept\n");
    s.push_str(
        "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } \
         accept\n",
    );
    if plan.dhcp {
        s.push_str("\t\tudp sport 68 udp dport 67 accept comment \"dhcp\"\n");
    }
    let fam = |v: &[IpAddr]| -> (Vec<String>, Vec<bool>) {
        (
            v.iter().map(IpAddr::to_string).collect(),
            v.iter().map(IpAddr::is_ipv6).collect(),
        )
    };
    let (dns, dns6) = fam(&plan.dns);
    per_family(
        &mut s,
        "daddr",
        &dns,
        &dns6,
        "meta l4proto { udp, tcp } th dport 53 accept comment \"dns\"",
    );
    let (ntp, ntp6) = fam(&plan.ntp);
    per_family(
        &mut s,
        "daddr",
        &ntp,
        &ntp6,
        "udp dport 123 accept comment \"ntp\"",
    );
    for r in &plan.outbound {
        let v: Vec<IpAddr> = r.addrs.iter().copied().collect();
        let (a, a6) = fam(&v);
        per_family(
            &mut s,
            "daddr",
            &a,
            &a6,
            &format!(
                "tcp dport {} accept comment \"{} {}\"",
                r.dest.port,
                r.dest.name,
                r.dest.host.replace('"', "")
            ),
        );
    }
    s.push_str("\t\tcounter comment \"dropped out\"\n\t}\n");
    s.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n",
    );
    s
}

/// Reads the last resolved addresses (none when the file is absent or unreadable: it is a
/// cache, and a damaged cache only means waiting for the resolver).
pub fn load_state(path: &Path) -> Vec<Resolved> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the cache atomically (temp file, rename).
pub fn save_state(path: &Path, resolved: &[Resolved]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(resolved).expect("serializable"),
    )
    .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_lookup_keeps_the_last_known_addresses() {
        let d = Destination {
            name: "update".into(),
            host: "repo.example".into(),
            port: 443,
        };
        let lit = Destination {
            name: "broker".into(),
            host: "10.0.0.9".into(),
            port: 8883,
        };
        let prev = vec![Resolved {
            dest: d.clone(),
            addrs: ["10.0.0.5".parse().unwrap()].into(),
        }];
        let fail = |_: &str, _: u16| Err(std::io::Error::other("resolver down"));
        let (ok, failed) = resolve_all(&[d.clone(), lit.clone()], &prev, fail);
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0], prev[0]);
        assert_eq!(ok[1].addrs, ["10.0.0.9".parse().unwrap()].into());
        assert_eq!(failed.len(), 1);
        assert!(failed[0].used_previous);
        let (ok, failed) = resolve_all(std::slice::from_ref(&d), &[], fail);
        assert!(ok.is_empty());
        assert!(!failed[0].used_previous);
    }

    #[test]
    fn renders_one_transaction_with_both_families() {
        let plan = Plan {
            lan: vec![
                "192.168.10.7/24".parse().unwrap(),
                "fd00:10::/64".parse().unwrap(),
            ],
            portal: PortalPorts {
                https: 443,
                redirect: Some(80),
            },
            dns: vec!["192.168.10.1".parse().unwrap()],
            ntp: vec![],
            dhcp: false,
            outbound: vec![Resolved {
                dest: Destination {
                    name: "update".into(),
                    host: "repo.example".into(),
                    port: 443,
                },
                addrs: [
                    "203.0.113.5".parse().unwrap(),
                    "2001:db8::5".parse().unwrap(),
                ]
                .into(),
            }],
        };
        let s = render(&plan);
        assert!(s.starts_with("# Rendered"));
        assert!(s.contains("table inet valise\ndelete table inet valise\n"));
        assert!(
            s.contains("ip saddr { 192.168.10.0/24 } tcp dport { 80, 443 } ct state new accept")
        );
        assert!(s.contains("ip6 saddr { fd00:10::/64 } tcp dport { 80, 443 }"));
        assert!(s.contains("ip daddr { 203.0.113.5 } tcp dport 443 accept"));
        assert!(s.contains("ip6 daddr { 2001:db8::5 } tcp dport 443 accept"));
        assert!(s.contains("ip daddr { 192.168.10.1 } meta l4proto { udp, tcp } th dport 53"));
        assert!(!s.contains("ntp"));
        assert!(!s.contains("dhcp"));
        assert_eq!(s.matches("policy drop").count(), 3);
    }
}
