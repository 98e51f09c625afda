//! MQTT topics: `valise/v1/<site>/<box>/{status,health,events,cmd}`.
//!
//! `<site>` and `<box>` are the names in the box certificate (`CN=<site>.<box>`); the broker's
//! ACL lets a box write only under its own prefix and read only its own `cmd`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ident::Name;

/// The root of every topic; `v1` is the message schema version ([`crate::SCHEMA_VERSION`]).
pub const TOPIC_ROOT: &str = "valise/v1";

/// Which box: its site (a post) and its name within the site.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct BoxId {
    pub site: Name,
    #[serde(rename = "box")]
    pub box_name: Name,
}

/// The four topics of a box.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Retained `online`; `offline` is the last will.
    Status,
    /// Periodic, and at once on a change.
    Health,
    /// Things that happened.
    Events,
    /// Commands from the centre (the box subscribes; only the central identity may write).
    Cmd,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Self::Status, Self::Health, Self::Events, Self::Cmd];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Health => "health",
            Self::Events => "events",
            Self::Cmd => "cmd",
        }
    }

    /// Whether messages on this topic are published retained (only `status`).
    pub fn retained(self) -> bool {
        self == Self::Status
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BoxId {
    pub fn new(site: Name, box_name: Name) -> Self {
        Self { site, box_name }
    }

    /// `valise/v1/<site>/<box>`, the same string as `valise_pki::BoxIdentity::topic_prefix`.
    pub fn prefix(&self) -> String {
        format!("{TOPIC_ROOT}/{}/{}", self.site, self.box_name)
    }

    /// `valise/v1/<site>/<box>/<channel>`.
    pub fn topic(&self, channel: Channel) -> String {
        format!("{}/{channel}", self.prefix())
    }

    /// The certificate common name, `<site>.<box>` (the broker's user name for this box).
    pub fn common_name(&self) -> String {
        format!("{}.{}", self.site, self.box_name)
    }
}

impl fmt::Display for BoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.site, self.box_name)
    }
}

/// The filter the fleet view subscribes to for one channel of every box:
/// `valise/v1/+/+/<channel>`.
pub fn fleet_filter(channel: Channel) -> String {
    format!("{TOPIC_ROOT}/+/+/{channel}")
}

/// Reads a topic back into its box and channel; `None` for anything that is not exactly
/// `valise/v1/<site>/<box>/<channel>` with valid names.
pub fn parse_topic(topic: &str) -> Option<(BoxId, Channel)> {
    let rest = topic.strip_prefix(TOPIC_ROOT)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let site = Name::new(parts.next()?).ok()?;
    let box_name = Name::new(parts.next()?).ok()?;
    let channel = Channel::parse(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some((BoxId { site, box_name }, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BoxId {
        BoxId::new(
            Name::new("lisbon").expect("name"),
            Name::new("box-1").expect("name"),
        )
    }

    #[test]
    fn topics_are_built_and_read_back() {
        let b = id();
        assert_eq!(b.topic(Channel::Health), "valise/v1/lisbon/box-1/health");
        assert_eq!(b.topic(Channel::Cmd), "valise/v1/lisbon/box-1/cmd");
        assert_eq!(b.common_name(), "lisbon.box-1");
        for c in Channel::ALL {
            assert_eq!(parse_topic(&b.topic(c)), Some((b.clone(), c)));
        }
        assert_eq!(fleet_filter(Channel::Status), "valise/v1/+/+/status");
        assert!(Channel::Status.retained() && !Channel::Health.retained());
    }

    #[test]
    fn foreign_topics_are_not_read() {
        for t in [
            "valise/v1/lisbon/box-1",
            "valise/v1/lisbon/box-1/health/x",
            "valise/v1/lisbon/box-1/other",
            "valise/v2/lisbon/box-1/health",
            "valise/v1/Lisbon/box-1/health",
            "valise/v1/lisbon/+/health",
            "valise/v1//box-1/health",
            "xvalise/v1/lisbon/box-1/health",
        ] {
            assert_eq!(parse_topic(t), None, "{t}");
        }
    }
}
