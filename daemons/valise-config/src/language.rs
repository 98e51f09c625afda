use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ConfigError;

/// A language code as users and models write it: ISO 639-1 (`fr`, `en`), a few ISO 639-2/3
/// codes whisper uses (`haw`, `yue`), or `auto` for "detect it". Lower-case ASCII letters only,
/// 2 or 3 of them, so it is safe to put in a path, a log line or a C string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(String);

impl Language {
    pub fn auto() -> Self {
        Self("auto".into())
    }
    pub fn is_auto(&self) -> bool {
        self.0 == "auto"
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Language {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let ok = t == "auto"
            || ((2..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase()));
        if ok {
            Ok(Self(t))
        } else {
            Err(ConfigError::Value {
                value: s.chars().take(32).collect(),
                reason: "expected a 2- or 3-letter language code or \"auto\"".into(),
            })
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Language({})", self.0)
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_codes_and_rejects_the_rest() {
        assert_eq!("FR".parse::<Language>().unwrap().as_str(), "fr");
        assert!("auto".parse::<Language>().unwrap().is_auto());
        assert!("haw".parse::<Language>().is_ok());
        for bad in ["", "f", "fren", "f1", "../", "fr\0"] {
            assert!(bad.parse::<Language>().is_err(), "{bad:?}");
        }
    }
}
