//! A CRL that arrives after enrollment (the central team publishes it as the TUF target
//! `pki/crl.pem`, valise-update installs it, see valise-update's DESIGN.md §3.4), checked before
//! a daemon trusts it, and the choice between it and the CRL installed with the identity.
//!
//! Why: the box's TLS refuses every server once its CRL is past its nextUpdate (revocation
//! expiry is enforced), so a CRL only installed at enrollment would cut a box off after a
//! month. A fresher CRL must be signed by the box's own CA (a TUF signature says the central
//! team published it; the CA signature says it is the CA's list, and a CRL of another issuer
//! would only make rustls refuse every server), and is used only while it is newer than the
//! identity's own (a box re-enrolled later carries a newer one).

use std::path::Path;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// What a checked CRL says about itself.
#[derive(Clone, Debug)]
pub struct CheckedCrl {
    pub der: CertificateRevocationListDer<'static>,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// The CRL number extension (RFC 5280 §5.2.3), when present and at most 64 bits.
    pub number: Option<u64>,
    pub revoked: usize,
}

fn invalid(what: &str, why: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.to_owned(),
        why: why.into(),
    }
}

fn time_of(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    t.to_datetime()
}

/// Parses one PEM CRL and checks it was signed by a certificate of `ca` whose subject is its
/// issuer. Its dates are reported, not judged: an expired CRL is still the CA's, and the
/// caller decides (rustls refuses it anyway when it is used past its nextUpdate).
pub fn check(what: &str, pem: &str, ca: &[CertificateDer<'_>]) -> Result<CheckedCrl> {
    let mut all = crate::pem::crls(what, pem)?;
    if all.len() != 1 {
        return Err(invalid(what, format!("{} CRLs, one expected", all.len())));
    }
    check_der(what, all.remove(0), ca)
}

/// [`check`] of a CRL already out of its PEM.
pub fn check_der(
    what: &str,
    der: CertificateRevocationListDer<'static>,
    ca: &[CertificateDer<'_>],
) -> Result<CheckedCrl> {
    let (rest, crl) = x509_parser::parse_x509_crl(der.as_ref())
        .map_err(|e| invalid(what, format!("not an X.509 CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(what, "trailing bytes after the CRL"));
    }
    let mut issuer_known = false;
    let mut signed = false;
    for c in ca {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(c.as_ref()) else {
            continue;
        };
        if cert.subject() != crl.issuer() {
            continue;
        }
        issuer_known = true;
        if crl.verify_signature(cert.public_key()).is_ok() {
            signed = true;
            break;
        }
    }
    if !issuer_known {
        return Err(invalid(
            what,
            format!("issued by {}, not by the box's CA", crl.issuer()),
        ));
    }
    if !signed {
        return Err(invalid(what, "its signature is not the CA's"));
    }
    Ok(facts(&crl, der.clone()))
}

/// What one PEM CRL says about itself, its signature NOT checked: for display (`valisectl repo
/// status`), never for trust.
pub fn inspect(what: &str, pem: &str) -> Result<CheckedCrl> {
    let mut all = crate::pem::crls(what, pem)?;
    if all.len() != 1 {
        return Err(invalid(what, format!("{} CRLs, one expected", all.len())));
    }
    let der = all.remove(0);
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref())
        .map_err(|e| invalid(what, format!("not an X.509 CRL: {e}")))?;
    Ok(facts(&crl, der.clone()))
}

fn facts(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
    der: CertificateRevocationListDer<'static>,
) -> CheckedCrl {
    CheckedCrl {
        this_update: time_of(crl.last_update()),
        next_update: crl.next_update().map(time_of),
        number: crl.crl_number().and_then(|n| u64::try_from(n).ok()),
        revoked: crl.iter_revoked_certificates().count(),
        der,
    }
}

/// Whether `candidate` should replace the CRLs in `installed` (all of the same CA): it was
/// issued later than every one of them.
pub fn fresher(candidate: &CheckedCrl, installed: &[CheckedCrl]) -> bool {
    installed
        .iter()
        .all(|i| match (candidate.number, i.number) {
            (Some(a), Some(b)) if a != b => a > b,
            _ => candidate.this_update > i.this_update,
        })
}

/// Reads and checks the CRL file at `path` against `ca`. `Ok(None)` when there is no file.
pub fn load(path: &Path, ca: &[CertificateDer<'_>]) -> Result<Option<CheckedCrl>> {
    match std::fs::read_to_string(path) {
        Ok(pem) => check(&path.display().to_string(), &pem, ca).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Ca, Validity};

    fn ca(dir: &Path, name: &str) -> Ca {
        Ca::init(&dir.join(name), name, Validity::days(30)).expect("ca")
    }

    fn der(ca: &Ca) -> Vec<CertificateDer<'static>> {
        crate::pem::certificates("ca", ca.cert_pem()).expect("pem")
    }

    #[test]
    fn a_crl_of_the_box_ca_is_accepted_with_its_dates_and_number() {
        let t = tempfile::tempdir().expect("tmp");
        let mut a = ca(t.path(), "A");
        let crl = a.crl(30).expect("crl");
        let c = check("crl", &crl.pem, &der(&a)).expect("checked");
        assert_eq!(c.number, Some(crl.number));
        assert_eq!(c.this_update, crl.this_update);
        assert_eq!(c.next_update, Some(crl.next_update));
        assert_eq!(c.revoked, 0);
    }

    #[test]
    fn a_crl_of_another_ca_is_refused_even_with_the_same_name() {
        let t = tempfile::tempdir().expect("tmp");
        let a = ca(t.path(), "Same");
        let mut other = Ca::init(&t.path().join("other"), "Same", Validity::days(30)).expect("ca");
        let foreign = other.crl(30).expect("crl");
        let e = check("crl", &foreign.pem, &der(&a)).expect_err("refused");
        assert!(e.to_string().contains("signature"), "{e}");
        let mut b = ca(t.path(), "B");
        let e = check("crl", &b.crl(30).expect("crl").pem, &der(&a)).expect_err("refused");
        assert!(e.to_string().contains("not by the box's CA"), "{e}");
    }

    #[test]
    fn garbage_and_two_crls_are_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let mut a = ca(t.path(), "A");
        assert!(check("crl", "not a crl", &der(&a)).is_err());
        let one = a.crl(30).expect("crl").pem;
        let two = a.crl(30).expect("crl").pem;
        let e = check("crl", &format!("{one}{two}"), &der(&a)).expect_err("two");
        assert!(e.to_string().contains("2 CRLs"), "{e}");
    }

    #[test]
    fn the_later_number_is_fresher() {
        let t = tempfile::tempdir().expect("tmp");
        let mut a = ca(t.path(), "A");
        let ca_der = der(&a);
        let first = check("crl", &a.crl(30).expect("crl").pem, &ca_der).expect("1");
        let second = check("crl", &a.crl(30).expect("crl").pem, &ca_der).expect("2");
        assert!(fresher(&second, std::slice::from_ref(&first)));
        assert!(!fresher(&first, std::slice::from_ref(&second)));
        assert!(!fresher(&first, std::slice::from_ref(&first)));
        assert!(fresher(&first, &[]));
    }
}
