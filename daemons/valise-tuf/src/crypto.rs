//! Signature verification with ring, for the key types securesystemslib writes:
//! - `ed25519`/`ed25519`: `keyval.public` = 32 bytes hex;
//! - `ecdsa` (or `ecdsa-sha2-nistp256`/`-nistp384`) / `ecdsa-sha2-nistp256`/`-nistp384`:
//!   PEM SubjectPublicKeyInfo, ASN.1 DER signatures;
//! - `rsa` / `rsassa-pss-sha256` (salt = digest length) or `rsa-pkcs1v15-sha256`: PEM SPKI.
//!
//! A key of another type or scheme, or one whose public part does not decode, is
//! [`Verdict::Unsupported`]: it is not counted towards a threshold, and it is not an error
//! (spec: a client ignores keys it cannot use).

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

use crate::schema::Key;

/// The outcome of checking one signature with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The signature is valid for the message.
    Valid,
    /// The signature does not verify.
    Invalid,
    /// The key's type/scheme is unknown here, or its public part is malformed.
    Unsupported,
}

/// SPKI prefix of an uncompressed P-256 public key (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// SPKI prefix of an uncompressed P-384 public key (id-ecPublicKey, secp384r1).
const P384_SPKI_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// DER of the rsaEncryption OID.
const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// Checks `sig` over `msg` with `key`.
pub fn verify(key: &Key, msg: &[u8], sig: &[u8]) -> Verdict {
    let Some((alg, public)) = public_key(key) else {
        return Verdict::Unsupported;
    };
    match UnparsedPublicKey::new(alg, public).verify(msg, sig) {
        Ok(()) => Verdict::Valid,
        Err(_) => Verdict::Invalid,
    }
}

/// The ring algorithm and public key bytes for `key`, or None when unusable.
fn public_key(key: &Key) -> Option<(&'static dyn VerificationAlgorithm, Vec<u8>)> {
    let public = key.keyval.public.as_str();
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ed25519", "ed25519") => {
            let raw = hex::decode(public).ok()?;
            (raw.len() == 32).then_some((&signature::ED25519 as _, raw))
        }
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            let der = pem_spki(public)?;
            let point = der.strip_prefix(P256_SPKI_PREFIX)?;
            (point.len() == 65).then(|| (&signature::ECDSA_P256_SHA256_ASN1 as _, point.to_vec()))
        }
        ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => {
            let der = pem_spki(public)?;
            let point = der.strip_prefix(P384_SPKI_PREFIX)?;
            (point.len() == 97).then(|| (&signature::ECDSA_P384_SHA384_ASN1 as _, point.to_vec()))
        }
        ("rsa", "rsassa-pss-sha256") => {
            let pkcs1 = rsa_spki_to_pkcs1(&pem_spki(public)?)?;
            Some((&signature::RSA_PSS_2048_8192_SHA256 as _, pkcs1))
        }
        ("rsa", "rsa-pkcs1v15-sha256") => {
            let pkcs1 = rsa_spki_to_pkcs1(&pem_spki(public)?)?;
            Some((&signature::RSA_PKCS1_2048_8192_SHA256 as _, pkcs1))
        }
        _ => None,
    }
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM block.
fn pem_spki(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Reads one DER TLV at the start of `der`: (tag, contents, rest).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// SubjectPublicKeyInfo { AlgorithmIdentifier { rsaEncryption, NULL }, BIT STRING {
/// RSAPublicKey } } → the RSAPublicKey DER ring wants.
fn rsa_spki_to_pkcs1(spki: &[u8]) -> Option<Vec<u8>> {
    let (0x30, body, []) = tlv(spki)? else {
        return None;
    };
    let (0x30, alg, rest) = tlv(body)? else {
        return None;
    };
    if !alg.starts_with(RSA_OID) {
        return None;
    }
    let (0x03, bits, []) = tlv(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KeyVal;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn key(keytype: &str, scheme: &str, public: String) -> Key {
        Key {
            keytype: keytype.into(),
            scheme: scheme.into(),
            keyval: KeyVal { public },
        }
    }

    fn pem(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn ed25519_valid_invalid_and_wrong_message() {
        let kp = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let k = key("ed25519", "ed25519", hex::encode(kp.public_key().as_ref()));
        let sig = kp.sign(b"hello");
        assert_eq!(verify(&k, b"hello", sig.as_ref()), Verdict::Valid);
        assert_eq!(verify(&k, b"hellO", sig.as_ref()), Verdict::Invalid);
        let mut bad = sig.as_ref().to_vec();
        bad[0] ^= 1;
        assert_eq!(verify(&k, b"hello", &bad), Verdict::Invalid);
    }

    #[test]
    fn unknown_or_malformed_keys_are_unsupported() {
        let kp = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let sig = kp.sign(b"m");
        let public = hex::encode(kp.public_key().as_ref());
        for k in [
            key("ed25519", "ed25519ph", public.clone()),
            key("sphincs", "ed25519", public.clone()),
            key("ed25519", "ed25519", public[..62].to_owned()),
            key("ed25519", "ed25519", "zz".repeat(32)),
            key("ecdsa", "ecdsa-sha2-nistp256", "not pem".into()),
            key("rsa", "rsassa-pss-sha256", pem(b"\x30\x00")),
        ] {
            assert_eq!(
                verify(&k, b"m", sig.as_ref()),
                Verdict::Unsupported,
                "{k:?}"
            );
        }
    }

    #[test]
    fn ecdsa_p256_spki_pem() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load");
        let spki = [P256_SPKI_PREFIX, kp.public_key().as_ref()].concat();
        let sig = kp.sign(&rng, b"msg").expect("sign");
        for keytype in ["ecdsa", "ecdsa-sha2-nistp256"] {
            let k = key(keytype, "ecdsa-sha2-nistp256", pem(&spki));
            assert_eq!(verify(&k, b"msg", sig.as_ref()), Verdict::Valid);
            assert_eq!(verify(&k, b"msG", sig.as_ref()), Verdict::Invalid);
        }
        // The same key under the P-384 scheme does not parse.
        let k = key("ecdsa", "ecdsa-sha2-nistp384", pem(&spki));
        assert_eq!(verify(&k, b"msg", sig.as_ref()), Verdict::Unsupported);
    }

    #[test]
    fn ecdsa_p384_spki_pem() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate");
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load");
        let spki = [P384_SPKI_PREFIX, kp.public_key().as_ref()].concat();
        let sig = kp.sign(&rng, b"msg").expect("sign");
        let k = key("ecdsa", "ecdsa-sha2-nistp384", pem(&spki));
        assert_eq!(verify(&k, b"msg", sig.as_ref()), Verdict::Valid);
        assert_eq!(verify(&k, b"msX", sig.as_ref()), Verdict::Invalid);
    }
}
