//! Length and hash checks of fetched bytes against what the delegating metadata lists.
//!
//! Known algorithms: `sha256` and `sha512`. A listing with no known algorithm is refused
//! (nothing could be checked); every known one listed must match; others are ignored
//! (python-tuf refuses algorithms `hashlib` lacks; we cannot check them either, and
//! accepting sha512-only listings is what the issue asks). Digests compare as lower-case
//! hex strings, exactly as written (python-tuf compares `hexdigest()` strings too).

use ring::digest;

use crate::error::Error;
use crate::schema::Hashes;

fn algorithm(name: &str) -> Option<&'static digest::Algorithm> {
    match name {
        "sha256" => Some(&digest::SHA256),
        "sha512" => Some(&digest::SHA512),
        _ => None,
    }
}

/// Running digests of every listed hash the client knows, for bytes that arrive in pieces
/// (a target streamed to disk): (algorithm, listed hex, context).
pub(crate) struct Digests(Vec<(String, String, digest::Context)>);

impl Digests {
    pub(crate) fn new(hashes: &Hashes) -> Self {
        Digests(
            hashes
                .0
                .iter()
                .filter_map(|(alg, hex)| {
                    algorithm(alg).map(|a| (alg.clone(), hex.clone(), digest::Context::new(a)))
                })
                .collect(),
        )
    }

    /// No listed algorithm is known: nothing could be checked.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for (_, _, c) in &mut self.0 {
            c.update(bytes);
        }
    }

    /// Every known hash matches (and there is at least one).
    pub(crate) fn check(&self, what: &str) -> Result<(), Error> {
        if self.is_empty() {
            return Err(no_known_hash(what));
        }
        for (alg, listed, c) in &self.0 {
            let got = hex::encode(c.clone().finish());
            if &got != listed {
                return Err(Error::Hash {
                    role: what.to_owned(),
                    why: format!("{alg} {got}, listed {listed}"),
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn no_known_hash(what: &str) -> Error {
    Error::Hash {
        role: what.to_owned(),
        why: "no hash algorithm the client knows (sha256, sha512) is listed".to_owned(),
    }
}

/// Checks `data` against every known algorithm in `hashes`; refuses when none is known.
pub fn verify_hashes(what: &str, hashes: &Hashes, data: &[u8]) -> Result<(), Error> {
    let mut d = Digests::new(hashes);
    d.update(data);
    d.check(what)
}

/// Checks `data`'s length (when listed) and hashes (when listed).
pub fn verify_length_and_hashes(
    what: &str,
    data: &[u8],
    length: Option<u64>,
    hashes: Option<&Hashes>,
) -> Result<(), Error> {
    if let Some(listed) = length {
        let got = data.len() as u64;
        if got != listed {
            return Err(Error::Length {
                role: what.to_owned(),
                got,
                listed,
            });
        }
    }
    if let Some(h) = hashes {
        verify_hashes(what, h, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const ABC512: &str = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    fn h(pairs: &[(&str, &str)]) -> Hashes {
        Hashes(
            pairs
                .iter()
                .map(|(a, d)| ((*a).to_owned(), (*d).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn sha256_and_sha512_each_accepted_alone() {
        verify_hashes("t", &h(&[("sha256", ABC256)]), b"abc").expect("sha256");
        verify_hashes("t", &h(&[("sha512", ABC512)]), b"abc").expect("sha512 only");
    }

    #[test]
    fn every_known_hash_must_match() {
        let bad512 = ABC512.replace('d', "e");
        assert!(
            verify_hashes("t", &h(&[("sha256", ABC256), ("sha512", &bad512)]), b"abc").is_err()
        );
        assert!(
            verify_hashes("t", &h(&[("sha512", &bad512), ("sha256", ABC256)]), b"abc").is_err()
        );
        assert!(verify_hashes("t", &h(&[("sha256", ABC256)]), b"abd").is_err());
        // Upper-case hex is not what was signed for: compared as written.
        assert!(verify_hashes("t", &h(&[("sha256", &ABC256.to_uppercase())]), b"abc").is_err());
    }

    #[test]
    fn unknown_algorithms_alone_refused_beside_known_ignored() {
        assert!(
            verify_hashes(
                "t",
                &h(&[("md5", "900150983cd24fb0d6963f7d28e17f72")]),
                b"abc"
            )
            .is_err()
        );
        assert!(verify_hashes("t", &h(&[]), b"abc").is_err());
        verify_hashes("t", &h(&[("blake2b", "00"), ("sha256", ABC256)]), b"abc")
            .expect("unknown ignored");
    }

    #[test]
    fn length_checked_when_listed() {
        verify_length_and_hashes("t", b"abc", Some(3), None).expect("3");
        assert!(verify_length_and_hashes("t", b"abc", Some(4), None).is_err());
        assert!(verify_length_and_hashes("t", b"abc", Some(2), None).is_err());
        verify_length_and_hashes("t", b"abc", None, None).expect("nothing listed");
    }
}
