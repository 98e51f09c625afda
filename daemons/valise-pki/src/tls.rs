//! Mutual TLS with rustls: the client side every box daemon uses (valise-update towards the
//! repository, valise-health towards the broker), and the check `enroll install` makes.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{Error, Result};

/// A client certificate chain (leaf first) and its key.
#[derive(Debug)]
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c.clone())?;
    }
    Ok(Arc::new(roots))
}

/// A client configuration that presents `identity` and accepts only servers whose
/// certificate chains to `ca` (and nothing else: no system roots), carries the name the
/// caller connects to, and is not revoked by `crls`.
///
/// With CRLs given, revocation is checked for the whole chain, a certificate whose status no
/// CRL covers is refused, and an expired CRL (past its nextUpdate) is an error rather than
/// a stale truth. Without CRLs there is no revocation check.
pub fn client_config(
    identity: &ClientIdentity,
    ca: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
) -> Result<Arc<ClientConfig>> {
    let mut verifier = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider());
    if !crls.is_empty() {
        verifier = verifier
            .with_crls(crls.iter().cloned())
            .enforce_revocation_expiration();
    }
    let verifier = verifier.build()?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    Ok(Arc::new(config))
}

/// Whether a server trusting `ca` (and `crls`) would accept `chain` as a client at `now`:
/// signature chain, validity period, the clientAuth usage, revocation.
pub fn verify_client_certificate(
    chain: &[CertificateDer<'static>],
    ca: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
    now: UnixTime,
) -> Result<()> {
    let mut b = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
    if !crls.is_empty() {
        b = b.with_crls(crls.iter().cloned());
    }
    let verifier = b.build()?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| Error::Refused("empty certificate chain".into()))?;
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map_err(|e| {
            Error::Refused(format!(
                "the certificate does not verify against the CA chain: {e}"
            ))
        })?;
    Ok(())
}
