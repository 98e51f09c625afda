//! Box identity and the small central PKI of Valise.
//!
//! A box proves who it is to the central update repository and the MQTT broker with a client
//! certificate; the servers prove who they are with server certificates from the same CA (or
//! a ministry PKI configured the same way, see `provisioning/IDENTITY.md`).
//!
//! ```text
//!  box (valisectl enroll)              IT, USB            central (valisectl ca)
//!  request: key.pem (never leaves) ── request.csr ──▶  issue box: checks site/box, signs
//!  install  ◀──────────────── cert.pem + ca.pem ──────  (clientAuth only, P-256)
//!  current -> gen-<serial>/                              index.json, crl.pem, Mosquitto ACL
//!  daemons: tls::client_config(identity, ca, crls) ──mTLS──▶ nginx / Mosquitto
//! ```
//!
//! - [`identity`]: the one way a box identity is carried in a certificate;
//! - [`ca`]: the CA directory (issue, revoke, CRL, ACL);
//! - [`crl`]: a CRL published after enrollment, checked against the box's CA;
//! - [`enroll`]: the box's identity directory (request, install, load);
//! - [`tls`]: rustls client configuration for mutual TLS;
//! - [`fsutil`]: the atomic file replace other crates share.

pub mod ca;
pub mod crl;
pub mod enroll;
pub mod error;
pub mod fsutil;
pub mod identity;
pub mod pem;
pub mod tls;

pub use error::{Error, Result};
pub use identity::{BoxIdentity, Name};
