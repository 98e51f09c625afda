//! The state volume's seal to the TPM (issue 10, item 4): is it sealed, does the TPM open it
//! at this boot, and sealing it again to this box's TPM after the TPM refused and IT started
//! the box with the recovery key.
//!
//! systemd-repart enrols a random key in a `systemd-tpm2` token bound to PCR 7 (Secure Boot
//! state and keys). When PCR 7 changes (other Secure Boot keys enrolled, a firmware reset,
//! another mainboard, or Secure Boot turned off) the TPM refuses, and systemd-cryptsetup asks
//! for the recovery key at boot. Sealing again binds a new TPM key to the PCR 7 of *this*
//! boot, so it is refused while Secure Boot is off: sealing then would let whatever that
//! firmware boots open the staff data.
//!
//! The header's tokens are read from the device (`luks`, as the wipe reads its size); the
//! TPM and the keys go through cryptsetup and systemd-cryptenroll, with the key on a pipe or
//! in the child's environment (never on a command line, never in a file).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The firmware's SecureBoot variable (efivarfs: 4 bytes of attributes, then 1 = on).
pub const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Secure Boot's state as the firmware reports it; None where there is no such variable
/// (not booted through UEFI).
pub fn secure_boot_on(var: &Path) -> Option<bool> {
    let b = std::fs::read(var).ok()?;
    Some(b.get(4) == Some(&1))
}

/// What the TPM does for the state volume at this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// No LUKS volume there (a test box, or a box mid-wipe).
    NoVolume,
    /// No `systemd-tpm2` token in the header: only a passphrase or recovery key opens it.
    NotSealed,
    /// The TPM releases the key: the box starts by itself.
    Opens,
    /// Sealed, but the TPM refuses at this boot: it was started with the recovery key.
    Refused,
}

/// Reads the header's tokens, then asks the TPM (cryptsetup's systemd-tpm2 token plugin,
/// without a passphrase prompt) whether it releases the key now.
pub fn state(dev: &Path) -> Seal {
    let Some(h) = crate::luks::read(dev) else {
        return Seal::NoVolume;
    };
    if !has_tpm2_token(&h.json) {
        return Seal::NotSealed;
    }
    if tpm_opens(dev) {
        Seal::Opens
    } else {
        Seal::Refused
    }
}

/// Whether LUKS2 JSON metadata lists a token of systemd-cryptenroll's TPM 2.0 type.
pub fn has_tpm2_token(json: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            v.get("tokens")?.as_object().map(|t| {
                t.values()
                    .any(|t| t.get("type").and_then(|t| t.as_str()) == Some("systemd-tpm2"))
            })
        })
        .unwrap_or(false)
}

fn tpm_opens(dev: &Path) -> bool {
    Command::new("cryptsetup")
        .args([
            "open",
            "--test-passphrase",
            "--token-only",
            "--token-type",
            "systemd-tpm2",
        ])
        .arg(dev)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `key` (a passphrase or recovery key) opens the volume; cryptsetup's complaint if not.
pub fn key_opens(dev: &Path, key: &str) -> Result<std::result::Result<(), String>> {
    let mut child = Command::new("cryptsetup")
        .args(["open", "--test-passphrase", "--key-file=-"])
        .arg(dev)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cryptsetup")?;
    if let Some(mut i) = child.stdin.take() {
        // A cryptsetup that exits early closes the pipe: its status says why, not this write.
        let _ = i.write_all(key.as_bytes());
    }
    let o = child.wait_with_output()?;
    Ok(if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_owned())
    })
}

/// Seals the volume to this boot's PCR 7: a new `systemd-tpm2` slot, unlocked by `key`, and
/// every older TPM slot wiped (systemd-cryptenroll never wipes the slot it just made). The
/// recovery key's slot stays.
pub fn reseal(dev: &Path, key: &str) -> Result<()> {
    // The key in $PASSWORD (read and erased by systemd-cryptenroll; a process's environment
    // is readable by its own user only): --unlock-key-file=/dev/stdin fails on a pipe
    // ("Illegal seek").
    let o = Command::new("systemd-cryptenroll")
        .args(["--tpm2-device=auto", "--tpm2-pcrs=7", "--wipe-slot=tpm2"])
        .arg(dev)
        .env("PASSWORD", key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running systemd-cryptenroll")?;
    if !o.status.success() {
        bail!(
            "systemd-cryptenroll: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_variable_is_read_past_its_attributes() {
        let d = tempfile::tempdir().unwrap();
        let v = d.path().join("SecureBoot");
        assert_eq!(secure_boot_on(&v), None);
        std::fs::write(&v, [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(secure_boot_on(&v), Some(true));
        std::fs::write(&v, [6, 0, 0, 0, 0]).unwrap();
        assert_eq!(secure_boot_on(&v), Some(false));
        std::fs::write(&v, [6, 0, 0, 0]).unwrap();
        assert_eq!(secure_boot_on(&v), Some(false));
    }

    #[test]
    fn tpm2_tokens_are_found_in_the_metadata() {
        let sealed = br#"{"keyslots":{},"tokens":{"0":{"type":"systemd-recovery","keyslots":["1"]},
            "1":{"type":"systemd-tpm2","keyslots":["0"]}}}"#;
        assert!(has_tpm2_token(sealed));
        assert!(!has_tpm2_token(
            br#"{"tokens":{"0":{"type":"systemd-recovery"}}}"#
        ));
        assert!(!has_tpm2_token(br#"{"tokens":{}}"#));
        assert!(!has_tpm2_token(b"not json"));
    }
}
