//! PEM in and out, with errors that name the file.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::{Result, invalid};

/// Every certificate in `pem` (at least one).
pub fn certificates(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(what, "holds no certificate"));
    }
    Ok(certs)
}

pub fn private_key(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| invalid(what, format!("not a PEM private key: {e}")))
}

/// Every CRL in `pem` (possibly none).
pub fn crls(what: &str, pem: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, format!("not PEM CRLs: {e}")))
}

pub(crate) fn serial_hex(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    hex::encode(cert.raw_serial())
}
