//! valise-tuf: the box's client of The Update Framework (spec 1.0.x, "Detailed client
//! workflow", section 5), written step by step from the spec on our own schema types
//! (`daemons/valise-update/DESIGN.md` §3 says why not tough on the box).
//!
//! What exists: [`schema`] (metadata types), [`canonical`] (securesystemslib canonical
//! JSON), [`crypto`] + [`verify`] (signatures with ring, thresholds), [`hashes`] (length and
//! hash checks), [`delegation`] (which paths a delegated role may sign for), [`names`]
//! (file names and URL paths from role and target names), [`trusted::TrustedSet`] (the
//! state machine of spec 5.3–5.6 over bytes the caller fetched), [`store`] (trusted
//! metadata on disk, verbatim, atomic), [`limits`], [`time`] (reference time from a
//! persisted floor), [`fetch`] (`Fetch`, `DirFetch` for USB copies, `http::HttpFetch` over
//! HTTPS with mutual TLS), [`updater`] (refresh of the top-level roles over a `Fetch`). The
//! delegation search, target downloads
//! and the `valise-tuf-client` binary come later.

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
