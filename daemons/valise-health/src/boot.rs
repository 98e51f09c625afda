//! Why the box last booted, as far as valise-health can tell honestly.
//!
//! valise-health keeps a small record in its own state directory (`boot.json`: the kernel's
//! boot id, the reason decided for that boot, and whether valise-health was stopped cleanly),
//! written atomically at start and again at a clean stop. systemd stops every service with
//! SIGTERM on an orderly shutdown or reboot, so at the next start:
//!
//! | record | boot id | `boot_reason` |
//! | --- | --- | --- |
//! | none (first start on this box) | — | `unknown` |
//! | any | the same as now (only valise-health restarted) | the reason recorded for this boot |
//! | `clean: true` | another | `reboot`: the previous boot ended with an orderly shutdown or reboot |
//! | `clean: false` | another | `unexpected`: it ended without one (power cut, hang, kernel panic, watchdog, reset button) |
//!
//! Limits, stated rather than guessed around: an orderly power-off followed by a power-on
//! reads `reboot` (the box cannot tell them apart); a valise-health stopped by hand
//! (`systemctl stop`) before a power cut reads `reboot`; `unexpected` does not say which of
//! the causes it was (pstore and the watchdog's status are not read).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use valise_health_schema::BootReason;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    boot_id: String,
    reason: BootReason,
    clean: bool,
}

/// The record of this boot, in `<state_dir>/boot.json`.
#[derive(Debug)]
pub struct Boot {
    path: PathBuf,
    record: Record,
}

fn read_boot_id(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty() && s.len() <= 64).then(|| s.to_owned())
}

impl Boot {
    /// Decides this boot's reason from the record left by the previous start, and records
    /// this start (not clean until [`Boot::stopped_cleanly`]).
    pub fn start(state_dir: &Path, boot_id_path: &Path) -> Self {
        let path = state_dir.join("boot.json");
        let previous: Option<Record> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let now_id = read_boot_id(boot_id_path);
        let reason = match (&previous, &now_id) {
            (_, None) | (None, _) => BootReason::Unknown,
            (Some(p), Some(id)) if &p.boot_id == id => p.reason,
            (Some(p), Some(_)) if p.clean => BootReason::Reboot,
            (Some(_), Some(_)) => BootReason::Unexpected,
        };
        let b = Boot {
            path,
            record: Record {
                boot_id: now_id.unwrap_or_default(),
                reason,
                clean: false,
            },
        };
        b.save();
        b
    }

    pub fn reason(&self) -> BootReason {
        self.record.reason
    }

    /// Records that valise-health stopped cleanly (SIGTERM: an orderly shutdown, or a stop
    /// or restart of the service).
    pub fn stopped_cleanly(&mut self) {
        self.record.clean = true;
        self.save();
    }

    fn save(&self) {
        if self.record.boot_id.is_empty() {
            return;
        }
        let bytes = serde_json::to_vec(&self.record).unwrap_or_default();
        if let Err(e) = valise_pki::fsutil::write_atomic(&self.path, &bytes, 0o600) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record the boot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_same_boot_orderly_and_unexpected_ends() {
        let d = tempfile::tempdir().expect("tempdir");
        let id = d.path().join("boot_id");
        let set = |s: &str| std::fs::write(&id, format!("{s}\n")).expect("write");
        set("a");
        let mut b = Boot::start(d.path(), &id);
        assert_eq!(
            b.reason(),
            BootReason::Unknown,
            "no record: the first start"
        );
        b.stopped_cleanly();
        // The service restarted within the same boot: the reason stays.
        assert_eq!(Boot::start(d.path(), &id).reason(), BootReason::Unknown);
        // ... that start was not stopped cleanly, but the boot is the same.
        let mut b = Boot::start(d.path(), &id);
        b.stopped_cleanly();
        set("b");
        let b = Boot::start(d.path(), &id);
        assert_eq!(b.reason(), BootReason::Reboot, "an orderly shutdown before");
        // No clean stop (a power cut), then a new boot.
        set("c");
        assert_eq!(Boot::start(d.path(), &id).reason(), BootReason::Unexpected);
        // Restarts within boot c keep its reason.
        assert_eq!(Boot::start(d.path(), &id).reason(), BootReason::Unexpected);
        // No boot id readable: unknown.
        assert_eq!(
            Boot::start(d.path(), &d.path().join("none")).reason(),
            BootReason::Unknown
        );
    }
}
