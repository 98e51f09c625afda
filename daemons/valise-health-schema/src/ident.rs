//! Bounded identifiers: the only strings a health message may carry.
//!
//! Each is a newtype that checks its value when built and when deserialized, and describes
//! the same rule to JSON Schema (`pattern`, `maxLength`). None of them can hold a space, a
//! `/`, or anything longer than 64 bytes: there is no room for a file name, a sentence or a
//! person's name to travel in a field meant for a version.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A value that does not fit its identifier's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIdent {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl fmt::Display for InvalidIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is echoed shortened: it was refused because it may be anything.
        let shown: String = self.value.chars().take(40).collect();
        write!(f, "invalid {} {shown:?}: {}", self.what, self.rule)
    }
}

impl std::error::Error for InvalidIdent {}

macro_rules! bounded_string {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:literal, $pattern:literal, $rule:literal, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;
            /// The rule as a JSON Schema (ECMA 262) regular expression.
            pub const PATTERN: &'static str = $pattern;

            pub fn new(value: &str) -> Result<Self, InvalidIdent> {
                let check: fn(&str) -> bool = $check;
                if !value.is_empty() && value.len() <= $max && check(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidIdent { what: $what, value: value.to_owned(), rule: $rule })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidIdent;
            fn try_from(s: String) -> Result<Self, InvalidIdent> {
                Self::new(&s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidIdent;
            fn from_str(s: &str) -> Result<Self, InvalidIdent> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": $rule,
                    "minLength": 1,
                    "maxLength": $max,
                    "pattern": $pattern,
                })
            }
        }
    };
}

fn name_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn leading_alnum_then(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

fn unit_ok(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("valise-") else {
        return false;
    };
    let Some(middle) = [".service", ".timer", ".socket"]
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
    else {
        return false;
    };
    (1..=48).contains(&middle.len())
        && middle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@.-".contains(&b))
}

bounded_string!(
    /// A site or a box name, exactly as in a box certificate (`provisioning/IDENTITY.md`,
    /// `valise_pki::Name`): 1 to 32 of `[a-z0-9-]`, not starting or ending with `-`.
    Name,
    "site or box name",
    32,
    "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$",
    "1 to 32 of [a-z0-9-], not starting or ending with -",
    name_ok
);

bounded_string!(
    /// A software, image, model or bundle version: `1.4.2`, `2026.12.1+jetson`, `v3~rc1`.
    Version,
    "version",
    64,
    "^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}$",
    "1 to 64 of [A-Za-z0-9.+~_-], starting with a letter or digit",
    |s| leading_alnum_then(s, b".+~_-")
);

bounded_string!(
    /// An identifier from the box's own inventory: a model id (`whisper-large-v3-turbo`), a
    /// bundle name, a hardware model (`jetson-orin-nx-16`). Never a path: no `/`, no space.
    Ident,
    "identifier",
    64,
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "1 to 64 of [A-Za-z0-9._-], starting with a letter or digit",
    |s| leading_alnum_then(s, b"._-")
);

bounded_string!(
    /// A Valise systemd unit: `valise-transcribe.service`, `valise-update.timer`,
    /// `valise-transcribe@gpu0.service`.
    UnitName,
    "unit name",
    64,
    "^valise-[a-z0-9@.-]{1,48}\\.(service|timer|socket)$",
    "valise- then 1 to 48 of [a-z0-9@.-], ending in .service, .timer or .socket",
    unit_ok
);

/// A percentage, 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Percent(u8);

impl Percent {
    pub fn new(value: u8) -> Option<Self> {
        (value <= 100).then_some(Self(value))
    }

    /// `part` of `whole`, rounded to the nearest percent (0 when `whole` is 0).
    pub fn of(part: u64, whole: u64) -> Self {
        if whole == 0 {
            return Self(0);
        }
        let p = (u128::from(part.min(whole)) * 100 + u128::from(whole) / 2) / u128::from(whole);
        Self(u8::try_from(p).unwrap_or(100))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Percent {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Self::new(v).ok_or_else(|| format!("{v} is not a percentage (0 to 100)"))
    }
}

impl From<Percent> for u8 {
    fn from(p: Percent) -> u8 {
        p.0
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 0, "maximum": 100 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_certificate_rule() {
        for ok in ["lisbon", "box-1", "a", "0", &"a".repeat(32)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Lisbon",
            "a.b",
            "a b",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(Name::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_refuse_paths_spaces_and_long_values() {
        assert!(Version::new("2026.12.1+jetson~rc_1").is_ok());
        assert!(Ident::new("whisper-large-v3-turbo").is_ok());
        for bad in [
            "",
            "../etc",
            "report.docx ",
            "a b",
            "a/b",
            "-x",
            ".x",
            "é",
            &"a".repeat(65),
        ] {
            assert!(Version::new(bad).is_err(), "version {bad}");
            assert!(Ident::new(bad).is_err(), "ident {bad}");
        }
        assert!(Version::new(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn unit_names_are_valise_units_only() {
        for ok in [
            "valise-portal.service",
            "valise-update.timer",
            "valise-transcribe@gpu0.service",
        ] {
            assert!(UnitName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "valise-.service",
            "sshd.service",
            "valise-portal",
            "valise-Portal.service",
            "valise-a b.service",
            "valise-x.mount",
        ] {
            assert!(UnitName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages_are_bounded() {
        assert_eq!(Percent::new(100).map(Percent::get), Some(100));
        assert!(Percent::new(101).is_none());
        assert_eq!(Percent::of(1, 3).get(), 33);
        assert_eq!(Percent::of(2, 3).get(), 67);
        assert_eq!(Percent::of(5, 0).get(), 0);
        assert_eq!(Percent::of(u64::MAX, u64::MAX).get(), 100);
        assert!(serde_json::from_str::<Percent>("101").is_err());
    }
}
