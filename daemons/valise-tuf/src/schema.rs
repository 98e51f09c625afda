//! TUF metadata as the box reads it: our own serde types (not tough's; see the design note
//! §3.1). Envelopes keep the canonical bytes of `signed` (what signatures cover, unknown
//! fields included) beside the typed view. Key ids are kept as given, never recomputed.
//! Hashes keep the repository's order and accept any algorithm name; which ones count is
//! decided when checking (`hashes::verify`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::canonical;
use crate::error::Error;

/// Names of the four top-level roles.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Key id as written by the signer.
    pub keyid: String,
    /// Signature bytes (hex-decoded).
    pub sig: Vec<u8>,
}

#[derive(Deserialize)]
struct RawSignature {
    keyid: String,
    sig: String,
}

#[derive(Deserialize)]
struct RawEnvelope<T> {
    signed: T,
    signatures: Vec<RawSignature>,
}

/// A role's signed part, with the fields every role shares.
pub trait Signed: DeserializeOwned {
    /// The `_type` this role carries.
    const TYPE: &'static str;
    /// Common fields.
    fn common(&self) -> &Common;
    /// Extra schema checks serde cannot express.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Fields every role's `signed` carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Common {
    /// `_type`: "root", "timestamp", "snapshot" or "targets".
    #[serde(rename = "_type")]
    pub type_: String,
    /// Specification version, e.g. "1.0.31" (major 1 required).
    pub spec_version: String,
    /// Version, ≥ 1.
    pub version: u64,
    /// Expiry, "YYYY-MM-DDTHH:MM:SSZ".
    #[serde(deserialize_with = "de_expires")]
    pub expires: OffsetDateTime,
}

impl Common {
    /// Expired at `reference` (expiry ≤ reference, as python-tuf's `is_expired`).
    pub fn is_expired(&self, reference: OffsetDateTime) -> bool {
        self.expires <= reference
    }
}

fn de_expires<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse_expires(&s).map_err(de::Error::custom)
}

/// Parses the spec's expiry format, `YYYY-MM-DDTHH:MM:SSZ`, strictly (no fraction, no
/// offset other than `Z`: python-tuf's `strptime("%Y-%m-%dT%H:%M:%SZ")`).
pub fn parse_expires(s: &str) -> Result<OffsetDateTime, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
        || b[19] != b'Z'
    {
        return Err(format!("expires {s:?} is not YYYY-MM-DDTHH:MM:SSZ"));
    }
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expires {s:?}: {e}"))
}

/// A verified-shape envelope: typed `signed`, its canonical bytes, the signatures.
#[derive(Debug, Clone)]
pub struct Metadata<T> {
    /// Typed view of `signed`.
    pub signed: T,
    /// `signed` in canonical JSON: the bytes the signatures are over.
    pub canonical_signed: Vec<u8>,
    /// Signatures, one per key id (duplicates refused at parse).
    pub signatures: Vec<Signature>,
}

impl<T: Signed> Metadata<T> {
    /// Parses a metadata file. Refuses: not JSON, not an object with `signed` and
    /// `signatures`, floats, a `_type` other than `T::TYPE`, an unsupported spec major
    /// version, version 0, a bad expiry, two signatures with one key id (python-tuf's
    /// `Metadata.from_dict` refuses them too), non-hex signatures.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let raw: Value = serde_json::from_slice(bytes).map_err(Error::format)?;
        let signed_value = raw
            .get("signed")
            .ok_or_else(|| Error::format("no \"signed\""))?;
        let type_ = signed_value.get("_type").and_then(Value::as_str);
        if type_ != Some(T::TYPE) {
            return Err(Error::WrongType {
                expected: T::TYPE.to_owned(),
                got: type_.unwrap_or("nothing").to_owned(),
            });
        }
        let canonical_signed = canonical::encode(signed_value)?;
        // Typed view from the bytes (not from `raw`): keeps the order of hash maps.
        let env: RawEnvelope<T> = serde_json::from_slice(bytes).map_err(Error::format)?;
        let common = env.signed.common();
        check_spec_version(&common.spec_version)?;
        if common.version == 0 {
            return Err(Error::format("version must be > 0"));
        }
        env.signed.validate()?;
        let mut seen = BTreeSet::new();
        let mut signatures = Vec::with_capacity(env.signatures.len());
        for s in env.signatures {
            if !seen.insert(s.keyid.clone()) {
                return Err(Error::format(format!(
                    "two signatures for key id {}",
                    s.keyid
                )));
            }
            let sig = hex::decode(&s.sig)
                .map_err(|e| Error::format(format!("signature of {}: {e}", s.keyid)))?;
            signatures.push(Signature {
                keyid: s.keyid,
                sig,
            });
        }
        Ok(Metadata {
            signed: env.signed,
            canonical_signed,
            signatures,
        })
    }

    /// The common fields of `signed`.
    pub fn common(&self) -> &Common {
        self.signed.common()
    }
}

fn check_spec_version(v: &str) -> Result<(), Error> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric {
        return Err(Error::format(format!("spec_version {v:?} unparsable")));
    }
    if parts[0] != "1" {
        return Err(Error::format(format!("spec_version {v:?} unsupported")));
    }
    Ok(())
}

/// A public key as listed (`keys` of root or of delegations).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Key {
    /// "ed25519", "ecdsa", "ecdsa-sha2-nistp256", "rsa", ...
    pub keytype: String,
    /// "ed25519", "ecdsa-sha2-nistp256", "rsassa-pss-sha256", ...
    pub scheme: String,
    /// `keyval`; `public` is the one field used.
    pub keyval: KeyVal,
}

/// A key's `keyval`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyVal {
    /// Hex (ed25519) or PEM SubjectPublicKeyInfo (ecdsa, rsa).
    pub public: String,
}

/// Key ids and threshold of a role.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleKeys {
    /// Authorized key ids (unique).
    pub keyids: Vec<String>,
    /// Signatures needed, ≥ 1.
    pub threshold: u64,
}

impl RoleKeys {
    fn validate(&self, role: &str) -> Result<(), Error> {
        let unique: BTreeSet<&String> = self.keyids.iter().collect();
        if unique.len() != self.keyids.len() {
            return Err(Error::format(format!("{role}: key ids not unique")));
        }
        if self.threshold < 1 {
            return Err(Error::format(format!("{role}: threshold < 1")));
        }
        Ok(())
    }
}

/// `root`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    #[serde(flatten)]
    common: Common,
    /// Consistent snapshots (spec 5.3.12); absent means false.
    #[serde(default)]
    pub consistent_snapshot: bool,
    /// Keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// Exactly the four top-level roles.
    pub roles: BTreeMap<String, RoleKeys>,
}

impl Root {
    /// The keys and threshold of a top-level role (present by validation).
    pub fn role(&self, name: &str) -> Result<&RoleKeys, Error> {
        self.roles
            .get(name)
            .ok_or_else(|| Error::format(format!("root lists no role {name}")))
    }
}

impl Signed for Root {
    const TYPE: &'static str = "root";
    fn common(&self) -> &Common {
        &self.common
    }
    fn validate(&self) -> Result<(), Error> {
        let names: BTreeSet<&str> = self.roles.keys().map(String::as_str).collect();
        if names != TOP_LEVEL_ROLES.into_iter().collect() {
            return Err(Error::format(
                "root roles must be exactly root, timestamp, snapshot, targets",
            ));
        }
        for (name, role) in &self.roles {
            role.validate(name)?;
        }
        Ok(())
    }
}

/// A `meta` entry (timestamp's snapshot, snapshot's targets roles).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MetaFile {
    /// Version of the listed metadata, ≥ 1.
    pub version: u64,
    /// Length in bytes, if listed.
    #[serde(default)]
    pub length: Option<u64>,
    /// Hashes, if listed (non-empty then).
    #[serde(default)]
    pub hashes: Option<Hashes>,
}

impl MetaFile {
    fn validate(&self, name: &str) -> Result<(), Error> {
        if self.version == 0 {
            return Err(Error::format(format!("meta {name}: version must be > 0")));
        }
        if let Some(h) = &self.hashes {
            h.validate(name)?;
        }
        Ok(())
    }
}

/// `timestamp`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp {
    #[serde(flatten)]
    common: Common,
    /// `meta`: must list `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
}

impl Timestamp {
    /// The snapshot entry.
    pub fn snapshot_meta(&self) -> &MetaFile {
        // Present: `validate` refuses a timestamp without it.
        &self.meta["snapshot.json"]
    }
}

impl Signed for Timestamp {
    const TYPE: &'static str = "timestamp";
    fn common(&self) -> &Common {
        &self.common
    }
    fn validate(&self) -> Result<(), Error> {
        let m = self
            .meta
            .get("snapshot.json")
            .ok_or_else(|| Error::format("timestamp meta lists no snapshot.json"))?;
        m.validate("snapshot.json")
    }
}

/// `snapshot`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    common: Common,
    /// `<role>.json` → version (and optionally length, hashes).
    pub meta: BTreeMap<String, MetaFile>,
}

impl Signed for Snapshot {
    const TYPE: &'static str = "snapshot";
    fn common(&self) -> &Common {
        &self.common
    }
    fn validate(&self) -> Result<(), Error> {
        for (name, m) in &self.meta {
            m.validate(name)?;
        }
        Ok(())
    }
}

/// One target file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes (non-empty).
    pub hashes: Hashes,
    /// Application data (bundles, waves).
    #[serde(default)]
    pub custom: Option<Value>,
}

/// A delegated role (`delegations.roles[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DelegatedRole {
    /// Role name (also its metadata file name).
    pub name: String,
    /// Authorized key ids, unique.
    pub keyids: Vec<String>,
    /// Signatures needed, ≥ 1.
    pub threshold: u64,
    /// A terminating delegation ends the search (spec 5.6.7.2.1).
    #[serde(default)]
    pub terminating: bool,
    /// Path patterns (exactly one of `paths`, `path_hash_prefixes`).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of sha256(target name).
    #[serde(default)]
    pub path_hash_prefixes: Option<Vec<String>>,
}

impl DelegatedRole {
    /// Key ids and threshold, as a top-level role's.
    pub fn keys(&self) -> RoleKeys {
        RoleKeys {
            keyids: self.keyids.clone(),
            threshold: self.threshold,
        }
    }
}

/// `delegations` of a targets role, kept as data (the search is the updater's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Delegations {
    /// Keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles in priority order (exactly one of `roles`, `succinct_roles`).
    #[serde(default)]
    pub roles: Option<Vec<DelegatedRole>>,
    /// TAP 15 succinct delegations (hash bins).
    #[serde(default)]
    pub succinct_roles: Option<SuccinctRoles>,
}

/// TAP 15 succinct hash-bin delegation: `2^bit_length` roles named
/// `<name_prefix>-<bin as zero-padded lower-case hex>`, all with the same keys and
/// threshold; a target belongs to the bin given by the first `bit_length` bits of
/// sha256(target path). Each bin delegation is terminating (python-tuf's `SuccinctRoles`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SuccinctRoles {
    /// Authorized key ids, unique.
    pub keyids: Vec<String>,
    /// Signatures needed, ≥ 1.
    pub threshold: u64,
    /// Bits of the hash that select the bin, 1..=32.
    pub bit_length: u32,
    /// Bin role names start with `<name_prefix>-`.
    pub name_prefix: String,
}

impl SuccinctRoles {
    /// How many bins: `2^bit_length`.
    pub fn number_of_bins(&self) -> u64 {
        1u64 << self.bit_length
    }

    /// Hex digits of a bin suffix: those of the largest bin number.
    fn suffix_len(&self) -> usize {
        format!("{:x}", self.number_of_bins() - 1).len()
    }

    /// The bin role trusted for `target_path`.
    pub fn role_for_target(&self, target_path: &str) -> String {
        let h = ring::digest::digest(&ring::digest::SHA256, target_path.as_bytes());
        let mut first = [0u8; 4];
        first.copy_from_slice(&h.as_ref()[..4]);
        let bin = u64::from(u32::from_be_bytes(first)) >> (32 - self.bit_length);
        format!(
            "{}-{:0width$x}",
            self.name_prefix,
            bin,
            width = self.suffix_len()
        )
    }

    /// True when `name` is one of the bins.
    pub fn is_delegated_role(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|s| s.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.suffix_len()
            && suffix.bytes().all(|b| b.is_ascii_hexdigit())
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < self.number_of_bins())
    }

    fn keys(&self) -> RoleKeys {
        RoleKeys {
            keyids: self.keyids.clone(),
            threshold: self.threshold,
        }
    }
}

impl Delegations {
    fn validate(&self) -> Result<(), Error> {
        match (&self.roles, &self.succinct_roles) {
            (Some(roles), None) => {
                let mut names = BTreeSet::new();
                for r in roles {
                    if r.name.is_empty() || TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                        return Err(Error::format(format!(
                            "delegated role name {:?} refused",
                            r.name
                        )));
                    }
                    if !names.insert(r.name.as_str()) {
                        return Err(Error::format(format!(
                            "delegated role {} listed twice",
                            r.name
                        )));
                    }
                    if r.paths.is_some() == r.path_hash_prefixes.is_some() {
                        return Err(Error::format(format!(
                            "delegated role {}: exactly one of paths, path_hash_prefixes",
                            r.name
                        )));
                    }
                    r.keys().validate(&r.name)?;
                }
                Ok(())
            }
            (None, Some(s)) => {
                if !(1..=32).contains(&s.bit_length) {
                    return Err(Error::format(format!(
                        "succinct_roles: bit_length {} not in 1..=32",
                        s.bit_length
                    )));
                }
                s.keys().validate(&s.name_prefix)
            }
            _ => Err(Error::format(
                "delegations: exactly one of roles, succinct_roles",
            )),
        }
    }

    /// The delegated role named `name` (listed in `roles`).
    pub fn role(&self, name: &str) -> Option<&DelegatedRole> {
        self.roles.as_ref()?.iter().find(|r| r.name == name)
    }

    /// Keys and threshold of the delegated role `name`, from `roles` or a succinct bin.
    pub fn role_keys(&self, name: &str) -> Option<RoleKeys> {
        if let Some(s) = &self.succinct_roles {
            return s.is_delegated_role(name).then(|| s.keys());
        }
        self.role(name).map(DelegatedRole::keys)
    }

    /// Spec 5.6.7.2: the roles trusted for `target_path`, in priority order, each with its
    /// `terminating` flag (a succinct bin is one terminating role).
    pub fn roles_for_target(&self, target_path: &str) -> Vec<(String, bool)> {
        if let Some(s) = &self.succinct_roles {
            return vec![(s.role_for_target(target_path), true)];
        }
        self.roles
            .iter()
            .flatten()
            .filter(|r| r.is_delegated_path(target_path))
            .map(|r| (r.name.clone(), r.terminating))
            .collect()
    }
}

/// `targets`' signed part (top-level or delegated).
#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    #[serde(flatten)]
    common: Common,
    /// Target path → file.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations, if any.
    #[serde(default)]
    pub delegations: Option<Delegations>,
}

impl Signed for Targets {
    const TYPE: &'static str = "targets";
    fn common(&self) -> &Common {
        &self.common
    }
    fn validate(&self) -> Result<(), Error> {
        for (name, t) in &self.targets {
            t.hashes.validate(name)?;
        }
        if let Some(d) = &self.delegations {
            d.validate()?;
        }
        Ok(())
    }
}

/// Hashes as listed: (algorithm, lower-case hex digest), in the repository's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hashes(pub Vec<(String, String)>);

impl Hashes {
    fn validate(&self, what: &str) -> Result<(), Error> {
        if self.0.is_empty() {
            return Err(Error::format(format!("{what}: empty hashes")));
        }
        Ok(())
    }

    /// The first listed hash (the one consistent-snapshot target names use).
    pub fn first(&self) -> Option<(&str, &str)> {
        self.0.first().map(|(a, h)| (a.as_str(), h.as_str()))
    }
}

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hashes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of algorithm to hex digest")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hashes, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    // A repeated key: the last one wins, as in Python's json (and serde_json's
                    // `Value`, which the signature covers).
                    out.retain(|(a, _)| a != &k);
                    out.push((k, v));
                }
                Ok(Hashes(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_json(extra: &str) -> String {
        format!(
            r#"{{"signed": {{"_type": "root", "spec_version": "1.0.31", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "consistent_snapshot": true,
            "keys": {{"k1": {{"keytype": "ed25519", "scheme": "ed25519",
                      "keyval": {{"public": "00"}}, "keyid_hash_algorithms": ["sha512"]}}}},
            "roles": {{"root": {{"keyids": ["k1"], "threshold": 1}},
                      "timestamp": {{"keyids": ["k1"], "threshold": 1}},
                      "snapshot": {{"keyids": ["k1"], "threshold": 1}},
                      "targets": {{"keyids": ["k1"], "threshold": 1}}}}{extra}}},
            "signatures": [{{"keyid": "k1", "sig": "abcd"}}]}}"#
        )
    }

    #[test]
    fn root_parses_and_keeps_unknown_fields_in_signed_bytes() {
        let m = Metadata::<Root>::from_bytes(root_json(r#", "x-extra": "é""#).as_bytes())
            .expect("parses");
        assert_eq!(m.common().version, 1);
        assert!(m.signed.consistent_snapshot);
        assert_eq!(m.signatures[0].sig, vec![0xab, 0xcd]);
        let c = String::from_utf8(m.canonical_signed).expect("utf-8");
        assert!(c.contains(r#""x-extra":"é""#), "{c}");
        assert!(c.contains(r#""keyid_hash_algorithms":["sha512"]"#), "{c}");
    }

    #[test]
    fn wrong_type_refused() {
        let e = Metadata::<Timestamp>::from_bytes(root_json("").as_bytes()).unwrap_err();
        assert!(matches!(e, Error::WrongType { .. }), "{e}");
    }

    #[test]
    fn duplicate_signature_keyids_refused() {
        let j = root_json("").replace(
            r#"[{"keyid": "k1", "sig": "abcd"}]"#,
            r#"[{"keyid": "k1", "sig": "abcd"}, {"keyid": "k1", "sig": "abcd"}]"#,
        );
        assert!(Metadata::<Root>::from_bytes(j.as_bytes()).is_err());
    }

    #[test]
    fn role_set_must_be_exactly_top_level() {
        let j = root_json("").replace(
            r#""targets": {"keyids": ["k1"], "threshold": 1}}"#,
            r#""targets": {"keyids": ["k1"], "threshold": 1}, "extra": {"keyids": [], "threshold": 1}}"#,
        );
        assert!(Metadata::<Root>::from_bytes(j.as_bytes()).is_err());
        let j = root_json("").replace(r#""targets": {"keyids""#, r#""targetz": {"keyids""#);
        assert_ne!(j, root_json(""));
        assert!(Metadata::<Root>::from_bytes(j.as_bytes()).is_err());
    }

    #[test]
    fn threshold_zero_and_duplicate_role_keyids_refused() {
        let j = root_json("").replace(
            r#""root": {"keyids": ["k1"], "threshold": 1}"#,
            r#""root": {"keyids": ["k1"], "threshold": 0}"#,
        );
        assert!(Metadata::<Root>::from_bytes(j.as_bytes()).is_err());
        let j = root_json("").replace(
            r#""root": {"keyids": ["k1"], "threshold": 1}"#,
            r#""root": {"keyids": ["k1", "k1"], "threshold": 1}"#,
        );
        assert!(Metadata::<Root>::from_bytes(j.as_bytes()).is_err());
    }

    #[test]
    fn floats_version_zero_spec_major_and_bad_expiry_refused() {
        for (from, to) in [
            (r#""version": 1"#, r#""version": 1.0"#),
            (r#""version": 1"#, r#""version": 0"#),
            (r#""1.0.31""#, r#""2.0.0""#),
            (r#""1.0.31""#, r#""1.0.x""#),
            (
                r#""2030-01-01T00:00:00Z""#,
                r#""2030-01-01T00:00:00+00:00""#,
            ),
            (r#""2030-01-01T00:00:00Z""#, r#""2030-01-01T00:00:00.5Z""#),
            (r#""2030-01-01T00:00:00Z""#, r#""2030-13-01T00:00:00Z""#),
            (r#""keyid_hash_algorithms": ["sha512"]"#, r#""weight": 0.5"#),
        ] {
            let j = root_json("").replace(from, to);
            assert_ne!(j, root_json(""));
            assert!(
                Metadata::<Root>::from_bytes(j.as_bytes()).is_err(),
                "{to} accepted"
            );
        }
    }

    #[test]
    fn hashes_keep_order_and_any_algorithm() {
        let t: TargetFile = serde_json::from_str(
            r#"{"length": 3, "hashes": {"sha512": "bb", "sha256": "aa", "blake2": "cc"}}"#,
        )
        .expect("parses");
        assert_eq!(t.hashes.first(), Some(("sha512", "bb")));
        assert_eq!(t.hashes.0.len(), 3);
    }

    #[test]
    fn delegations_rules() {
        let base = r#"{"keys": {}, "roles": [ROLES]}"#;
        let role = |name: &str, paths: &str| {
            format!(
                r#"{{"name": "{name}", "keyids": [], "threshold": 1, "terminating": false{paths}}}"#
            )
        };
        let ok = base.replace("ROLES", &role("a", r#", "paths": ["a/*"]"#));
        let d: Delegations = serde_json::from_str(&ok).expect("parses");
        d.validate().expect("valid");
        for bad in [
            base.replace("ROLES", &role("targets", r#", "paths": ["a/*"]"#)),
            base.replace("ROLES", &role("a", "")),
            base.replace(
                "ROLES",
                &role("a", r#", "paths": ["a/*"], "path_hash_prefixes": ["ab"]"#),
            ),
            base.replace(
                "ROLES",
                &format!(
                    "{},{}",
                    role("a", r#", "paths": ["a"]"#),
                    role("a", r#", "paths": ["b"]"#)
                ),
            ),
        ] {
            let d: Delegations = serde_json::from_str(&bad).expect("parses");
            assert!(d.validate().is_err(), "{bad}");
        }
    }
}
