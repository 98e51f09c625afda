//! valise-tuf: the box's client of The Update Framework (spec 1.0.x, "Detailed client
//! workflow", section 5), written step by step from the spec on our own schema types
//! (`daemons/valise-update/DESIGN.md` §3 says why not tough on the box).
//!
//! Data flow: a [`fetch::Fetch`] (HTTPS with mutual TLS, [`fetch::http::HttpFetch`], or a
//! USB copy, [`fetch::DirFetch`]) brings bytes; [`updater::Updater::refresh`] feeds them
//! through [`trusted::TrustedSet`] (spec 5.2–5.6: [`schema`], [`canonical`] JSON, [`crypto`]
//! and [`verify`] thresholds, [`hashes`]) and writes what passed, verbatim, to the
//! [`store`]; [`updater::Updater::find_target`] searches delegations lazily (spec 5.6.7,
//! [`delegation`]); [`updater::Updater::download_target`] streams a target through the
//! same fetcher into a hash-checked, resumable `.part` ([`download`], spec 5.7). [`names`]
//! turns role and target names into URL paths and flat file names; [`limits`] caps sizes;
//! [`time`] keeps the reference time from going backwards. The conformance suite's client
//! (`valise-tuf-client`, crate `client/`) and valise-update run this same code.

pub mod canonical;
pub mod crypto;
pub mod delegation;
pub mod download;
pub mod error;
pub mod fetch;
pub mod hashes;
pub mod limits;
pub mod names;
pub mod schema;
pub mod store;
pub mod time;
pub mod trusted;
pub mod updater;
pub mod verify;

pub use error::Error;
pub use trusted::TrustedSet;
pub use updater::{TargetFile, UpdateError, Updater};
