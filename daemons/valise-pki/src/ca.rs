//! A small certificate authority kept in a directory, for tests and small deployments.
//!
//! ```text
//! <dir>/ (0700)
//!   ca.key      the CA's P-256 private key (0600)
//!   ca.pem      the CA certificate: what boxes, nginx and Mosquitto trust
//!   index.json  every certificate issued (serial, kind, subject, validity, revocation)
//!   crl.pem     the last CRL generated (`Ca::crl`)
//!   .lock       held (flock) while a command changes the directory
//! ```
//!
//! It issues three kinds of certificate, all P-256/ECDSA-SHA256:
//! - **box**: client authentication only, signed from the box's own certificate request (the
//!   key never leaves the box), carrying the identity of [`crate::identity`];
//! - **server**: server authentication only, for the update repository and the MQTT broker;
//! - **central**: client authentication for the central team's fleet service.
//!
//! Nothing in a request is copied into a certificate except its public key: the CA builds the
//! subject, names and usages itself, after checking the request names the box IT approved.

use std::fs::{File, OpenOptions};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result, invalid, io, rc};
use crate::fsutil::{ensure_dir, read_string, write_atomic, write_new};
use crate::identity::{BoxIdentity, CENTRAL_URI_PREFIX, Name, TOPIC_ROOT, central_common_name};

const KEY: &str = "ca.key";
const CERT: &str = "ca.pem";
const INDEX: &str = "index.json";
const CRL: &str = "crl.pem";

/// How long a certificate is valid. It starts five minutes in the past so that a peer whose
/// clock is slightly behind accepts a certificate issued just now.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    pub fn days(days: u32) -> Self {
        // Whole seconds: what X.509 times hold, so the index says exactly what the
        // certificate says.
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Self {
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Box,
    Server,
    Central,
}

/// Why a certificate was revoked (RFC 5280 §5.3.1, the codes that apply here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl Reason {
    pub const NAMES: [&'static str; 5] = [
        "unspecified",
        "key-compromise",
        "affiliation-changed",
        "superseded",
        "cessation-of-operation",
    ];

    fn code(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            invalid(
                "revocation reason",
                format!("{s:?} is not one of {}", Reason::NAMES.join(", ")),
            )
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub reason: Reason,
}

/// One certificate the CA issued.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issued {
    /// Lower-case hex of the serial number's bytes (as `openssl x509 -serial` prints it).
    pub serial: String,
    pub kind: Kind,
    /// The subject's common name.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<BoxIdentity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

impl Issued {
    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked.is_none() && self.not_after > now
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    /// The number the next CRL carries (RFC 5280 §5.2.3: monotonically increasing).
    next_crl_number: u64,
    issued: Vec<Issued>,
}

/// A certificate with the key the CA made for it (server and central certificates).
#[derive(Debug)]
pub struct IssuedWithKey {
    pub issued: Issued,
    pub cert_pem: String,
    /// PKCS#8 PEM; write it with mode 0600.
    pub key_pem: String,
}

/// A box certificate signed from the box's request.
#[derive(Debug)]
pub struct IssuedBox {
    pub issued: Issued,
    pub cert_pem: String,
}

/// A CRL just generated.
#[derive(Debug)]
pub struct Crl {
    pub pem: String,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub revoked: usize,
}

/// An open CA directory, locked against other writers while this value lives.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    index: Index,
    _lock: Flock<File>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("issued", &self.index.issued.len())
            .finish_non_exhaustive()
    }
}

fn random_serial() -> SerialNumber {
    // 16 random bytes, positive and without a leading zero byte, so the DER encoding and the
    // hex recorded in the index are the same bytes.
    let mut b: [u8; 16] = rand::random();
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

fn lock(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        Error::Refused(format!(
            "{}: another valisectl is using this CA ({e})",
            dir.display()
        ))
    })
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn end_entity_params(cn: &str, validity: Validity) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = validity.not_before;
    p.not_after = validity.not_after;
    p.serial_number = Some(random_serial());
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn dn_string(v: &DnValue) -> Option<&str> {
    match v {
        DnValue::Utf8String(s) => Some(s),
        DnValue::PrintableString(s) => Some(s.as_str()),
        DnValue::Ia5String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The box identity a certificate request names, by the rule of [`crate::identity`].
pub fn request_identity(csr: &CertificateSigningRequestParams) -> Result<BoxIdentity> {
    let cns: Vec<&str> = csr
        .params
        .distinguished_name
        .iter()
        .filter(|(t, _)| **t == DnType::CommonName)
        .filter_map(|(_, v)| dn_string(v))
        .collect();
    let uris: Vec<&str> = csr
        .params
        .subject_alt_names
        .iter()
        .filter_map(|s| match s {
            SanType::URI(u) => Some(u.as_str()),
            _ => None,
        })
        .collect();
    BoxIdentity::from_parts(&cns, &uris)
}

/// Parses and verifies (signature, P-256 key) a box's certificate request.
pub fn parse_request(pem: &str) -> Result<CertificateSigningRequestParams> {
    let csr = CertificateSigningRequestParams::from_pem(pem).map_err(rc("certificate request"))?;
    if csr.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(invalid(
            "certificate request",
            "the key is not an ECDSA P-256 key",
        ));
    }
    Ok(csr)
}

impl Ca {
    /// Creates a CA in `dir` (which must not hold one already).
    pub fn init(dir: &Path, common_name: &str, validity: Validity) -> Result<Ca> {
        if dir.join(KEY).exists() || dir.join(CERT).exists() {
            return Err(Error::Refused(format!(
                "{} already holds a CA",
                dir.display()
            )));
        }
        ensure_dir(dir, 0o700)?;
        let lock = lock(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc("CA key"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(common_name);
        p.not_before = validity.not_before;
        p.not_after = validity.not_after;
        p.serial_number = Some(random_serial());
        // Path length 0: this CA signs end-entity certificates only.
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.key_identifier_method = KeyIdMethod::Sha256;
        let cert = p.self_signed(&key).map_err(rc("CA certificate"))?;
        write_new(&dir.join(KEY), key.serialize_pem().as_bytes(), 0o600)?;
        let cert_path = dir.join(CERT);
        write_atomic(&cert_path, cert.pem().as_bytes(), 0o644).map_err(io(&cert_path))?;
        let mut ca = Ca {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
            index: Index {
                next_crl_number: 1,
                issued: Vec::new(),
            },
            _lock: lock,
        };
        ca.save()?;
        Ok(ca)
    }

    pub fn open(dir: &Path) -> Result<Ca> {
        let lock = lock(dir)?;
        let cert_pem = read_string(&dir.join(CERT))?;
        let key = KeyPair::from_pem(&read_string(&dir.join(KEY))?).map_err(rc("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(rc("CA certificate"))?;
        let index_path = dir.join(INDEX);
        let index = serde_json::from_str(&read_string(&index_path)?)
            .map_err(|e| invalid(index_path.display().to_string(), e))?;
        Ok(Ca {
            dir: dir.to_owned(),
            cert_pem,
            issuer,
            index,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): the chain a box installs, and what servers trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn issued(&self) -> &[Issued] {
        &self.index.issued
    }

    fn save(&mut self) -> Result<()> {
        let mut json =
            serde_json::to_string_pretty(&self.index).map_err(|e| invalid("index", e))?;
        json.push('\n');
        let path = self.dir.join(INDEX);
        write_atomic(&path, json.as_bytes(), 0o600).map_err(io(path))
    }

    fn record(&mut self, issued: Issued) -> Result<()> {
        self.index.issued.push(issued);
        self.save()
    }

    /// Signs a box certificate (client authentication only) from the box's request, which
    /// must name `expected`: the box IT approved.
    pub fn issue_box(
        &mut self,
        request_pem: &str,
        expected: &BoxIdentity,
        validity: Validity,
    ) -> Result<IssuedBox> {
        let csr = parse_request(request_pem)?;
        let requested = request_identity(&csr)?;
        if &requested != expected {
            return Err(Error::Refused(format!(
                "the request is for {requested}, not {expected}"
            )));
        }
        let mut p = end_entity_params(&expected.common_name(), validity);
        p.subject_alt_names = vec![SanType::URI(
            expected
                .uri()
                .try_into()
                .map_err(|e| invalid("identity URI", e))?,
        )];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let signed = CertificateSigningRequestParams {
            params: p.clone(),
            public_key: csr.public_key,
        }
        .signed_by(&self.issuer)
        .map_err(rc("box certificate"))?;
        let issued = self.entry(&p, Kind::Box, Some(expected.clone()), Vec::new());
        self.record(issued.clone())?;
        Ok(IssuedBox {
            issued,
            cert_pem: signed.pem(),
        })
    }

    /// A server certificate (server authentication only) for `names` (DNS names or IP
    /// addresses), with a key made here.
    pub fn issue_server(&mut self, names: &[String], validity: Validity) -> Result<IssuedWithKey> {
        let Some(first) = names.first() else {
            return Err(invalid("server certificate", "needs at least one name"));
        };
        let mut p = end_entity_params(first, validity);
        for n in names {
            p.subject_alt_names.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    let lower = n.to_ascii_lowercase();
                    let ok = !lower.is_empty()
                        && lower.split('.').all(|l| {
                            !l.is_empty()
                                && l.len() <= 63
                                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        });
                    if !ok {
                        return Err(invalid("server name", format!("{n:?} is not a DNS name")));
                    }
                    SanType::DnsName(lower.try_into().map_err(|e| invalid("server name", e))?)
                }
            });
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_with_key(p, Kind::Server, names.to_vec())
    }

    /// The central team's client certificate `central:<name>`.
    pub fn issue_central(&mut self, name: &Name, validity: Validity) -> Result<IssuedWithKey> {
        let mut p = end_entity_params(&central_common_name(name), validity);
        p.subject_alt_names = vec![SanType::URI(
            format!("{CENTRAL_URI_PREFIX}{name}")
                .try_into()
                .map_err(|e| invalid("central URI", e))?,
        )];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_with_key(p, Kind::Central, Vec::new())
    }

    fn issue_with_key(
        &mut self,
        p: CertificateParams,
        kind: Kind,
        names: Vec<String>,
    ) -> Result<IssuedWithKey> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc("key"))?;
        let cert = p.signed_by(&key, &self.issuer).map_err(rc("certificate"))?;
        let issued = self.entry(&p, kind, None, names);
        self.record(issued.clone())?;
        Ok(IssuedWithKey {
            issued,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn entry(
        &self,
        p: &CertificateParams,
        kind: Kind,
        identity: Option<BoxIdentity>,
        names: Vec<String>,
    ) -> Issued {
        let subject = p
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(dn_string)
            .unwrap_or_default()
            .to_owned();
        Issued {
            serial: p
                .serial_number
                .as_ref()
                .map(|s| hex::encode(s.to_bytes()))
                .unwrap_or_default(),
            kind,
            subject,
            identity,
            names,
            not_before: p.not_before,
            not_after: p.not_after,
            revoked: None,
        }
    }

    /// Revokes the certificate with this serial (hex, `:` separators and case ignored).
    pub fn revoke(&mut self, serial: &str, reason: Reason) -> Result<Issued> {
        let want: String = serial
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let Some(entry) = self.index.issued.iter_mut().find(|i| i.serial == want) else {
            return Err(Error::Refused(format!(
                "no certificate with serial {serial} was issued here"
            )));
        };
        if entry.revoked.is_some() {
            return Err(Error::Refused(format!("{serial} is already revoked")));
        }
        entry.revoked = Some(Revocation {
            at: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            reason,
        });
        let out = entry.clone();
        self.save()?;
        Ok(out)
    }

    /// Revokes every unrevoked certificate of a box (a box lost or stolen).
    pub fn revoke_box(&mut self, identity: &BoxIdentity, reason: Reason) -> Result<Vec<Issued>> {
        let serials: Vec<String> = self
            .index
            .issued
            .iter()
            .filter(|i| i.identity.as_ref() == Some(identity) && i.revoked.is_none())
            .map(|i| i.serial.clone())
            .collect();
        if serials.is_empty() {
            return Err(Error::Refused(format!(
                "{identity} has no unrevoked certificate here"
            )));
        }
        serials.iter().map(|s| self.revoke(s, reason)).collect()
    }

    /// Signs a CRL of every revoked certificate, valid until now + `days` (its nextUpdate:
    /// peers enforcing CRL expiry refuse everyone once it passes, so publish a new one well
    /// before), and writes it to `crl.pem` in the CA directory.
    pub fn crl(&mut self, days: u32) -> Result<Crl> {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let number = self.index.next_crl_number;
        let revoked: Vec<RevokedCertParams> = self
            .index
            .issued
            .iter()
            .filter_map(|i| {
                let r = i.revoked.as_ref()?;
                Some(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&hex::decode(&i.serial).ok()?),
                    revocation_time: r.at,
                    reason_code: Some(r.reason.code()),
                    invalidity_date: None,
                })
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(i64::from(days.max(1))),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(rc("CRL"))?;
        let pem = crl.pem().map_err(rc("CRL"))?;
        let crl_path = self.dir.join(CRL);
        write_atomic(&crl_path, pem.as_bytes(), 0o644).map_err(io(crl_path))?;
        self.index.next_crl_number = number + 1;
        self.save()?;
        Ok(Crl {
            pem,
            number,
            this_update: params.this_update,
            next_update: params.next_update,
            revoked: params.revoked_certs.len(),
        })
    }

    /// A Mosquitto ACL file (`acl_file`) for the broker, to be used with
    /// `require_certificate true` and `use_identity_as_username true`: one `user` block per
    /// box with an active certificate (a box writes only under its own
    /// `valise/v1/<site>/<box>/` and reads only its `.../cmd`), one per central client
    /// (reads everything under `valise/v1/`, writes boxes' `cmd` topics). No `pattern` lines:
    /// every grant is spelled out, so the file can be read and diffed by a person.
    pub fn mosquitto_acl(&self) -> String {
        let now = OffsetDateTime::now_utc();
        let mut boxes: Vec<&BoxIdentity> = self
            .index
            .issued
            .iter()
            .filter(|i| i.kind == Kind::Box && i.is_active(now))
            .filter_map(|i| i.identity.as_ref())
            .collect();
        boxes.sort();
        boxes.dedup();
        let mut central: Vec<&str> = self
            .index
            .issued
            .iter()
            .filter(|i| i.kind == Kind::Central && i.is_active(now))
            .map(|i| i.subject.as_str())
            .collect();
        central.sort();
        central.dedup();
        let mut out = String::from(
            "# Mosquitto ACL generated by `valisectl ca acl` from the CA's index.\n\
             # Broker settings: require_certificate true, use_identity_as_username true,\n\
             # crlfile set to the CA's current CRL. Regenerate after each issue or revocation.\n\
             # Clients not listed here (and anonymous ones) get no access at all.\n",
        );
        for c in central {
            out.push_str(&format!(
                "\nuser {c}\ntopic read {TOPIC_ROOT}/#\ntopic write {TOPIC_ROOT}/+/+/cmd\n"
            ));
        }
        for b in boxes {
            let t = b.topic_prefix();
            out.push_str(&format!(
                "\nuser {}\ntopic write {t}/#\ntopic read {t}/cmd\n",
                b.common_name()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request asking for more than a box gets (CA, server use, a DNS name): the
    /// certificate carries only what the CA decides.
    #[test]
    fn nothing_but_the_key_is_taken_from_a_request() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ca = Ca::init(&tmp.path().join("ca"), "T", Validity::days(1)).unwrap();
        let id = BoxIdentity::new("lisbon", "box-1").unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        p.distinguished_name = dn(&id.common_name());
        p.subject_alt_names
            .push(SanType::URI(id.uri().try_into().unwrap()));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let csr = p.serialize_request(&key).unwrap().pem().unwrap();
        let issued = ca.issue_box(&csr, &id, Validity::days(1)).unwrap();
        let der = crate::pem::certificates("c", &issued.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names.len(), 1);
        assert_eq!(BoxIdentity::from_certificate(&der[0]).unwrap(), id);
        assert_eq!(
            cert.public_key().subject_public_key.data,
            key.public_key_raw()
        );
        assert_eq!(crate::pem::serial_hex(&cert), issued.issued.serial);

        // A server certificate carries no box identity.
        let srv = ca
            .issue_server(&["repo.test".to_owned()], Validity::days(1))
            .unwrap();
        let der = crate::pem::certificates("s", &srv.cert_pem).unwrap();
        assert!(BoxIdentity::from_certificate(&der[0]).is_err());
    }

    #[test]
    fn a_second_writer_is_refused_while_the_ca_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let ca = Ca::init(&dir, "T", Validity::days(1)).unwrap();
        assert!(matches!(Ca::open(&dir), Err(Error::Refused(_))));
        drop(ca);
        assert!(Ca::open(&dir).is_ok());
    }
}
