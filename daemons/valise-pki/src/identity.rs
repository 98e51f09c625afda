//! The identity of a box, and how it is carried in a certificate.
//!
//! There is one way, and every component reads it with [`BoxIdentity::from_certificate`]:
//!
//! - the subject's common name is `<site>.<box>` (what Mosquitto's `use_identity_as_username`
//!   and nginx's `$ssl_client_s_dn` see);
//! - exactly one URI subject alternative name `urn:valise:box:<site>:<box>`;
//! - both must agree, and `<site>` and `<box>` are 1 to 32 characters of `[a-z0-9-]`, not
//!   starting or ending with `-` (so `.` and `:` separate them unambiguously, and they are
//!   safe in MQTT topics and file names).
//!
//! The central team's own client (the fleet service reading health messages) carries
//! `central:<name>` and `urn:valise:central:<name>`; `:` cannot occur in a box identity, so
//! the two never collide.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, invalid};

/// URI SAN prefix of a box certificate.
pub const BOX_URI_PREFIX: &str = "urn:valise:box:";
/// URI SAN prefix of the central team's client certificate.
pub const CENTRAL_URI_PREFIX: &str = "urn:valise:central:";
/// MQTT topic root; a box publishes under `valise/v1/<site>/<box>/`.
pub const TOPIC_ROOT: &str = "valise/v1";

/// A site or box name: 1 to 32 characters of `[a-z0-9-]`, no leading or trailing `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn new(what: &'static str, value: &str) -> Result<Self> {
        let bad = |why| Error::InvalidName {
            what,
            value: value.to_owned(),
            why,
        };
        if value.is_empty() || value.len() > 32 {
            return Err(bad("must be 1 to 32 characters"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("only a-z, 0-9 and - are allowed"));
        }
        if value.starts_with('-') || value.ends_with('-') {
            return Err(bad("must not start or end with -"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new("name", s)
    }
}

impl TryFrom<String> for Name {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new("name", &s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Which box this is: its site (a post, e.g. `lisbon`) and its name within the site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxIdentity {
    pub site: Name,
    #[serde(rename = "box")]
    pub box_name: Name,
}

impl BoxIdentity {
    pub fn new(site: &str, box_name: &str) -> Result<Self> {
        Ok(Self {
            site: Name::new("site name", site)?,
            box_name: Name::new("box name", box_name)?,
        })
    }

    /// The certificate's subject common name, `<site>.<box>`.
    pub fn common_name(&self) -> String {
        format!("{}.{}", self.site, self.box_name)
    }

    /// The certificate's URI subject alternative name, `urn:valise:box:<site>:<box>`.
    pub fn uri(&self) -> String {
        format!("{BOX_URI_PREFIX}{}:{}", self.site, self.box_name)
    }

    /// The MQTT topic prefix this box publishes under, `valise/v1/<site>/<box>`.
    pub fn topic_prefix(&self) -> String {
        format!("{TOPIC_ROOT}/{}/{}", self.site, self.box_name)
    }

    /// Reads the identity from a DER certificate: the common name and the one URI SAN must
    /// both be present, well-formed and agree.
    pub fn from_certificate(der: &[u8]) -> Result<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| invalid("certificate", e.to_string()))?;
        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("certificate subject", e.to_string()))?;
        let mut uris = Vec::new();
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| invalid("certificate subjectAltName", e.to_string()))?
        {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(u) = name {
                    uris.push(*u);
                }
            }
        }
        Self::from_parts(&cn, &uris)
    }

    /// The rule shared by certificates and requests.
    pub(crate) fn from_parts(common_names: &[&str], uris: &[&str]) -> Result<Self> {
        let what = "box identity";
        let ours: Vec<&str> = uris
            .iter()
            .filter_map(|u| u.strip_prefix(BOX_URI_PREFIX))
            .collect();
        let [rest] = ours[..] else {
            return Err(invalid(
                what,
                format!(
                    "expected exactly one {BOX_URI_PREFIX}<site>:<box> URI, found {}",
                    ours.len()
                ),
            ));
        };
        let Some((site, box_name)) = rest.split_once(':') else {
            return Err(invalid(
                what,
                format!("malformed URI {BOX_URI_PREFIX}{rest}"),
            ));
        };
        let id = Self::new(site, box_name)?;
        match common_names {
            [cn] if *cn == id.common_name() => Ok(id),
            _ => Err(invalid(
                what,
                format!(
                    "the common name {common_names:?} does not match the URI's {}",
                    id.common_name()
                ),
            )),
        }
    }
}

impl fmt::Display for BoxIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.site, self.box_name)
    }
}

/// The common name of the central team's client certificate `name`.
pub fn central_common_name(name: &Name) -> String {
    format!("central:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted() {
        for ok in ["lisbon", "a", "box-01", &"x".repeat(32)] {
            assert!(Name::new("n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Lisbon",
            "a.b",
            "a:b",
            "a/b",
            "-a",
            "a-",
            "é",
            &"x".repeat(33),
        ] {
            assert!(Name::new("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_must_agree() {
        let id = BoxIdentity::new("lisbon", "box-1").unwrap();
        assert_eq!(id.common_name(), "lisbon.box-1");
        assert_eq!(id.uri(), "urn:valise:box:lisbon:box-1");
        assert_eq!(
            BoxIdentity::from_parts(&["lisbon.box-1"], &[&id.uri()]).unwrap(),
            id
        );
        // Missing, doubled or disagreeing parts are refused.
        assert!(BoxIdentity::from_parts(&["lisbon.box-1"], &[]).is_err());
        assert!(BoxIdentity::from_parts(&[], &[&id.uri()]).is_err());
        assert!(BoxIdentity::from_parts(&["lisbon.box-2"], &[&id.uri()]).is_err());
        assert!(
            BoxIdentity::from_parts(
                &["lisbon.box-1"],
                &[&id.uri(), "urn:valise:box:paris:box-1"]
            )
            .is_err()
        );
        assert!(BoxIdentity::from_parts(&["lisbon.box-1", "x"], &[&id.uri()]).is_err());
        assert!(
            BoxIdentity::from_parts(&["Lisbon.box-1"], &["urn:valise:box:Lisbon:box-1"]).is_err()
        );
    }
}
