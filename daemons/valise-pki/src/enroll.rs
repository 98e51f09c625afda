//! The box's side: its key, its request, its installed identity.
//!
//! ```text
//! /etc/valise/identity/ (0750 root:valise-identity)
//!   pending/           after `request`, until `install`
//!     key.pem          the new P-256 key: made here, never copied anywhere else
//!     request.csr      what IT carries to the CA
//!   gen-<serial>/      one per installed certificate, never modified once in place
//!     key.pem          (0640 root:valise-identity, or 0600 when that group does not exist)
//!     cert.pem         the box certificate
//!     ca.pem           the CA chain: trusted for servers, and the box certificate's issuer
//!     crl.pem          optional: the CA's CRL, to refuse revoked servers
//!     endpoints.toml   the update repository and the MQTT broker
//!   current -> gen-<serial>   switched atomically (symlink, rename, fsync)
//! ```
//!
//! Renewal is the same flow: a new request makes a new key in `pending/` while `current`
//! keeps serving; installing its certificate switches `current` in one rename. Old
//! generations stay until removed by hand, so a mistake can be undone by pointing `current`
//! back.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ca::{parse_request, request_identity};
use crate::error::{Error, Result, invalid, io, rc};
use crate::fsutil::{ensure_dir, fsync_dir, read_string, write_new};
use crate::identity::BoxIdentity;
use crate::pem;
use crate::tls::ClientIdentity;

/// Where the identity lives on a box.
pub const DEFAULT_DIR: &str = "/etc/valise/identity";
/// The group whose members (the daemons that talk to the repository and the broker) may read
/// the key. When it does not exist, the key stays 0600 root.
pub const GROUP: &str = "valise-identity";

const PENDING: &str = "pending";
const CURRENT: &str = "current";

/// The central addresses a box talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// The update repository, `https://host[:port][/path]`.
    pub repository: String,
    /// The MQTT broker, `mqtts://host[:port]`.
    pub broker: String,
}

/// Host and port of `scheme://host[:port][/path]` (IPv6 literals in brackets, no user info):
/// the one reading of an enrolled address, shared by the enrollment (which refuses what it
/// cannot read), the updater, the health reporter and the packet filter, so an address the box
/// accepts is one every daemon can use.
pub fn host_port(url: &str, scheme: &str, default_port: u16) -> Result<(String, u16)> {
    let bad = || {
        invalid(
            "address",
            format!("{url:?} is not a {scheme}://host[:port] address"),
        )
    };
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (h, port)
    } else if authority.matches(':').count() > 1 {
        return Err(bad()); // an IPv6 literal without brackets: host and port cannot be told apart
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default_port,
    };
    let ok_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if !ok_host {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The default ports of the two central services.
pub const REPOSITORY_PORT: u16 = 443;
pub const BROKER_PORT: u16 = 8883;

impl Endpoints {
    /// The repository's host and port.
    pub fn repository_addr(&self) -> Result<(String, u16)> {
        host_port(&self.repository, "https", REPOSITORY_PORT)
    }
    /// The broker's host and port.
    pub fn broker_addr(&self) -> Result<(String, u16)> {
        host_port(&self.broker, "mqtts", BROKER_PORT)
    }
    pub fn new(repository: &str, broker: &str) -> Result<Self> {
        host_port(repository, "https", REPOSITORY_PORT)?;
        host_port(broker, "mqtts", BROKER_PORT)?;
        Ok(Self {
            repository: repository.to_owned(),
            broker: broker.to_owned(),
        })
    }
}

/// The identity in use (`current`), loaded for the daemons and for `enroll status`.
#[derive(Debug)]
pub struct InstalledIdentity {
    pub identity: BoxIdentity,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issuer: String,
    pub endpoints: Endpoints,
    pub client: ClientIdentity,
    /// The CA chain the box trusts for servers.
    pub ca: Vec<CertificateDer<'static>>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// The generation directory `current` points to.
    pub dir: PathBuf,
}

impl InstalledIdentity {
    /// Whole days until the certificate expires (negative once expired).
    pub fn days_left(&self) -> i64 {
        (self.not_after - OffsetDateTime::now_utc()).whole_days()
    }

    /// Uses the CRL file at `path` (published by the central team through the update
    /// repository, see [`crate::crl`]) instead of the CRLs installed with the identity when it
    /// is signed by the identity's CA and newer than every one of them. `Ok(false)`: no file,
    /// or not newer. An error (a file that is not the CA's CRL) leaves the identity as it was.
    pub fn use_fresher_crl(&mut self, path: &Path) -> Result<bool> {
        let Some(candidate) = crate::crl::load(path, &self.ca)? else {
            return Ok(false);
        };
        // The identity's own CRLs were checked at install time; one that no longer parses
        // (it cannot, but) does not stop a fresher one.
        let installed: Vec<_> = self
            .crls
            .iter()
            .filter_map(|d| crate::crl::check_der("installed CRL", d.clone(), &self.ca).ok())
            .collect();
        if !crate::crl::fresher(&candidate, &installed) {
            return Ok(false);
        }
        self.crls = vec![candidate.der];
        Ok(true)
    }

    /// The rustls client configuration for mutual TLS with the repository or the broker.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        crate::tls::client_config(&self.client, &self.ca, &self.crls)
    }
}

/// The box's identity directory.
#[derive(Clone, Debug)]
pub struct IdentityDir {
    root: PathBuf,
}

fn group_id() -> Option<nix::unistd::Gid> {
    nix::unistd::Group::from_name(GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid)
}

/// Gives a file or directory to the identity group with `mode`, when the group exists.
fn share_with_group(path: &Path, mode: u32) -> Result<()> {
    if let Some(gid) = group_id() {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid(path.display().to_string(), "NUL in path"))?;
        nix::unistd::chown(c.as_c_str(), None, Some(gid))
            .map_err(|e| io(path)(std::io::Error::from(e)))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))?;
    }
    Ok(())
}

fn cert_facts(der: &[u8]) -> Result<(String, OffsetDateTime, OffsetDateTime, String, Vec<u8>)> {
    let (_, c) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| invalid("certificate", e.to_string()))?;
    let v = c.validity();
    Ok((
        pem::serial_hex(&c),
        v.not_before.to_datetime(),
        v.not_after.to_datetime(),
        c.issuer().to_string(),
        c.public_key().subject_public_key.data.to_vec(),
    ))
}

impl IdentityDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pending_request(&self) -> PathBuf {
        self.root.join(PENDING).join("request.csr")
    }

    /// Makes a new key pair here and the certificate request for `identity` (PEM, returned
    /// and kept in `pending/request.csr`). A pending request from before is replaced; the
    /// identity in use is not touched.
    pub fn request(&self, identity: &BoxIdentity) -> Result<String> {
        ensure_dir(&self.root, 0o750)?;
        share_with_group(&self.root, 0o750)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc("key"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, identity.common_name());
        p.subject_alt_names = vec![SanType::URI(
            identity
                .uri()
                .try_into()
                .map_err(|e| invalid("identity URI", e))?,
        )];
        let csr = p
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .map_err(rc("certificate request"))?;

        // Build the new pending directory beside the old one, then swap.
        let staging = self.root.join(".pending.new");
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        fs::create_dir(&staging).map_err(io(&staging))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o700)).map_err(io(&staging))?;
        write_new(
            &staging.join("key.pem"),
            key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_new(&staging.join("request.csr"), csr.as_bytes(), 0o644)?;
        fsync_dir(&staging)?;
        let pending = self.root.join(PENDING);
        if pending.exists() {
            fs::remove_dir_all(&pending).map_err(io(&pending))?;
        }
        fs::rename(&staging, &pending).map_err(io(&pending))?;
        fsync_dir(&self.root)?;
        Ok(csr)
    }

    /// Installs the certificate IT brought back for the pending request, with the CA chain,
    /// the central addresses and optionally a CRL, and makes it `current`.
    ///
    /// Refused unless: the certificate is for the pending key and names the identity the
    /// request named; it chains to `chain` and is valid now for client authentication (the
    /// same check a server makes, with rustls/webpki); it is not revoked by `crl`.
    pub fn install(
        &self,
        cert_pem: &str,
        chain_pem: &str,
        endpoints: &Endpoints,
        crl_pem: Option<&str>,
    ) -> Result<InstalledIdentity> {
        let pending = self.root.join(PENDING);
        if !pending.is_dir() {
            return Err(Error::Refused(format!(
                "no pending request in {} (run `valisectl enroll request` first)",
                self.root.display()
            )));
        }
        let key_pem = read_string(&pending.join("key.pem"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(rc("pending key"))?;
        let request = parse_request(&read_string(&pending.join("request.csr"))?)?;
        let wanted = request_identity(&request)?;

        let certs = pem::certificates("certificate", cert_pem)?;
        let leaf = &certs[0];
        let identity = BoxIdentity::from_certificate(leaf)?;
        if identity != wanted {
            return Err(Error::Refused(format!(
                "the certificate is for {identity}, but this box requested {wanted}"
            )));
        }
        let (serial, _, _, _, public_key) = cert_facts(leaf)?;
        if public_key != key.public_key_raw() {
            return Err(Error::Refused(
                "the certificate is not for this box's pending key (was it issued for another request?)"
                    .into(),
            ));
        }
        let ca = pem::certificates("CA chain", chain_pem)?;
        let crls = match crl_pem {
            Some(p) => pem::crls("CRL", p)?,
            None => Vec::new(),
        };
        crate::tls::verify_client_certificate(&certs, &ca, &crls, UnixTime::now())?;

        // Write the generation beside its final name, then rename it in place.
        let name = format!("gen-{serial}");
        let gen_dir = self.root.join(&name);
        if gen_dir.exists() {
            // Only a power cut between the rename below and the switch leaves the
            // generation in place with the request still pending: finish that install.
            if read_string(&gen_dir.join("cert.pem"))? != cert_pem {
                return Err(Error::Refused(format!(
                    "{} exists with another certificate",
                    gen_dir.display()
                )));
            }
        } else {
            self.write_generation(&name, &key_pem, cert_pem, chain_pem, endpoints, crl_pem)?;
        }

        // The switch: a new symlink renamed over `current` is atomic.
        let link_tmp = self.root.join(".current.new");
        let _ = fs::remove_file(&link_tmp);
        symlink(&name, &link_tmp).map_err(io(&link_tmp))?;
        let current = self.root.join(CURRENT);
        fs::rename(&link_tmp, &current).map_err(io(&current))?;
        fsync_dir(&self.root)?;

        // The key now lives in the generation; the request is done.
        fs::remove_dir_all(&pending).map_err(io(&pending))?;
        fsync_dir(&self.root)?;
        self.load()
    }

    /// Writes a generation beside its final name, then renames it in place.
    fn write_generation(
        &self,
        name: &str,
        key_pem: &str,
        cert_pem: &str,
        chain_pem: &str,
        endpoints: &Endpoints,
        crl_pem: Option<&str>,
    ) -> Result<()> {
        let gen_dir = self.root.join(name);
        let staging = self.root.join(format!(".{name}.new"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        fs::create_dir(&staging).map_err(io(&staging))?;
        write_new(&staging.join("key.pem"), key_pem.as_bytes(), 0o600)?;
        share_with_group(&staging.join("key.pem"), 0o640)?;
        write_new(&staging.join("cert.pem"), cert_pem.as_bytes(), 0o644)?;
        write_new(&staging.join("ca.pem"), chain_pem.as_bytes(), 0o644)?;
        if let Some(crl) = crl_pem {
            write_new(&staging.join("crl.pem"), crl.as_bytes(), 0o644)?;
        }
        let toml = toml::to_string(endpoints).map_err(|e| invalid("endpoints", e))?;
        write_new(&staging.join("endpoints.toml"), toml.as_bytes(), 0o644)?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o750)).map_err(io(&staging))?;
        share_with_group(&staging, 0o750)?;
        fsync_dir(&staging)?;
        fs::rename(&staging, &gen_dir).map_err(io(&gen_dir))?;
        fsync_dir(&self.root)
    }

    /// Loads the identity `current` points to.
    pub fn load(&self) -> Result<InstalledIdentity> {
        let current = self.root.join(CURRENT);
        let target = fs::read_link(&current).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Refused(format!(
                    "no identity installed in {} (see `valisectl enroll request`)",
                    self.root.display()
                ))
            } else {
                io(&current)(e)
            }
        })?;
        let dir = self.root.join(target);
        let cert_pem = read_string(&dir.join("cert.pem"))?;
        let chain = pem::certificates("cert.pem", &cert_pem)?;
        let identity = BoxIdentity::from_certificate(&chain[0])?;
        let (serial, not_before, not_after, issuer, _) = cert_facts(&chain[0])?;
        let key: PrivateKeyDer<'static> =
            pem::private_key("key.pem", &read_string(&dir.join("key.pem"))?)?;
        let ca = pem::certificates("ca.pem", &read_string(&dir.join("ca.pem"))?)?;
        let crl_path = dir.join("crl.pem");
        let crls = if crl_path.exists() {
            pem::crls("crl.pem", &read_string(&crl_path)?)?
        } else {
            Vec::new()
        };
        let ep_path = dir.join("endpoints.toml");
        let endpoints: Endpoints = toml::from_str(&read_string(&ep_path)?)
            .map_err(|e| invalid(ep_path.display().to_string(), e))?;
        Ok(InstalledIdentity {
            identity,
            serial,
            not_before,
            not_after,
            issuer,
            endpoints,
            client: ClientIdentity { chain, key },
            ca,
            crls,
            dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A power cut after the new generation is in place but before `current` switched:
    /// running the same install again finishes it.
    #[test]
    fn an_install_cut_short_is_finished_by_running_it_again() {
        use crate::ca::{Ca, Validity};
        let tmp = tempfile::tempdir().unwrap();
        let mut ca = Ca::init(&tmp.path().join("ca"), "T", Validity::days(1)).unwrap();
        let dir = IdentityDir::new(tmp.path().join("id"));
        let id = BoxIdentity::new("lisbon", "box-1").unwrap();
        let ep = Endpoints::new("https://r", "mqtts://m").unwrap();
        let first = ca
            .issue_box(&dir.request(&id).unwrap(), &id, Validity::days(1))
            .unwrap();
        dir.install(&first.cert_pem, ca.cert_pem(), &ep, None)
            .unwrap();

        let csr = dir.request(&id).unwrap();
        let second = ca.issue_box(&csr, &id, Validity::days(1)).unwrap();
        let key = read_string(&dir.root.join("pending/key.pem")).unwrap();
        // The state the cut leaves: generation written, request pending, old `current`.
        dir.write_generation(
            &format!("gen-{}", second.issued.serial),
            &key,
            &second.cert_pem,
            ca.cert_pem(),
            &ep,
            None,
        )
        .unwrap();
        assert_eq!(dir.load().unwrap().serial, first.issued.serial);
        // Another certificate cannot take that generation's place...
        assert!(
            dir.install(&first.cert_pem, ca.cert_pem(), &ep, None)
                .is_err()
        );
        // ...the same install completes.
        let now = dir
            .install(&second.cert_pem, ca.cert_pem(), &ep, None)
            .unwrap();
        assert_eq!(now.serial, second.issued.serial);
        assert!(!dir.root.join("pending").exists());
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(Endpoints::new("https://repo.example:8443/v1", "mqtts://broker.example").is_ok());
        assert!(Endpoints::new("http://repo.example", "mqtts://b").is_err());
        assert!(Endpoints::new("https://", "mqtts://b").is_err());
        assert!(Endpoints::new("https://user@repo", "mqtts://b").is_err());
        assert!(Endpoints::new("https://repo", "mqtt://b").is_err());
    }

    #[test]
    fn parses_urls_with_and_without_ports() {
        assert_eq!(
            host_port("https://repo.example:8443/valise", "https", 443).unwrap(),
            ("repo.example".into(), 8443)
        );
        assert_eq!(
            host_port("mqtts://10.0.0.2", "mqtts", 8883).unwrap(),
            ("10.0.0.2".into(), 8883)
        );
        assert_eq!(
            host_port("https://[fd00::2]:443/", "https", 443).unwrap(),
            ("fd00::2".into(), 443)
        );
        for bad in [
            "http://x",
            "https://",
            "https://u@x",
            "https://x:0",
            "https://x:99999",
            "https://x y",
            "https://[fd00::2",
            "https://fd00::2",
        ] {
            assert!(host_port(bad, "https", 443).is_err(), "{bad}");
        }
    }
}
