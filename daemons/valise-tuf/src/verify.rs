//! Threshold verification of a role's metadata against the keys its delegator lists.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{self, Verdict};
use crate::error::Error;
use crate::schema::{Key, RoleKeys, Signature};

/// Counts the distinct authorized keys with a valid signature over `canonical_signed` and
/// refuses below `role.threshold`. Rules:
/// - only key ids the role lists count; signatures by other key ids are ignored;
/// - a key id listed for the role but absent from `keys`, or of an unsupported type, is
///   skipped;
/// - each key counts once: by key id (a key id listed twice counts once) **and** by key
///   material (one key listed under two key ids counts once).
pub fn verify_threshold(
    role_name: &str,
    role: &RoleKeys,
    keys: &BTreeMap<String, Key>,
    canonical_signed: &[u8],
    signatures: &[Signature],
) -> Result<(), Error> {
    let mut counted_ids: BTreeSet<&str> = BTreeSet::new();
    let mut counted_keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    for keyid in &role.keyids {
        if !counted_ids.insert(keyid.as_str()) {
            continue;
        }
        let Some(key) = keys.get(keyid) else {
            continue;
        };
        let valid = signatures
            .iter()
            .filter(|s| &s.keyid == keyid)
            .any(|s| crypto::verify(key, canonical_signed, &s.sig) == Verdict::Valid);
        if valid {
            counted_keys.insert((key.keytype.as_str(), key.keyval.public.as_str()));
        }
    }
    let valid = counted_keys.len();
    if (valid as u64) < role.threshold {
        return Err(Error::Threshold {
            role: role_name.to_owned(),
            valid,
            threshold: role.threshold,
        });
    }
    Ok(())
}
