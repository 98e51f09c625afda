//! Deterministic power cuts for `tests/power_cut.rs` (DESIGN.md §5.5): `killpoint!("name")`
//! raises a real SIGKILL when the daemon was started with `VALISE_UPDATE_KILLPOINT=name`.
//! Compiled to nothing without the `test-hooks` feature; a release build has no such hook.

/// Every kill point of the update path, in the order a check meets them. The power-cut suite
/// generates one test per entry, so a point added here is tested without further work; a
/// name used in `killpoint!` but missing here fails `every_killpoint_is_listed`.
pub const KILLPOINTS: &[&str] = &[
    "download.mid_file",
    "download.mid_bundle",
    "stage.after_tmp_mkdir",
    "stage.mid_links",
    "stage.before_manifest",
    "stage.before_complete",
    "stage.before_slot_rename",
    "switch.after_journal",
    "switch.after_symlink_new",
    "switch.after_rename",
    "restart.after_request",
    "acceptance.before",
    "rollback.after_journal",
    "rollback.after_rename",
    "rollback.after_restart",
    "commit.after_history",
    "commit.before_journal_idle",
    "prune.mid",
];

/// The points reached only when a bundle's acceptance fails.
pub fn is_rollback_point(name: &str) -> bool {
    name.starts_with("rollback.")
}

/// Dies here by SIGKILL when this is the point named in `VALISE_UPDATE_KILLPOINT`.
#[cfg(feature = "test-hooks")]
pub fn hit(name: &str) {
    debug_assert!(KILLPOINTS.contains(&name), "{name} not in KILLPOINTS");
    if std::env::var("VALISE_UPDATE_KILLPOINT").as_deref() == Ok(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// `killpoint!("stage.mid_links")`.
#[macro_export]
macro_rules! killpoint {
    ($name:literal) => {
        $crate::killpoint::hit($name)
    };
}

#[cfg(test)]
mod tests {
    /// Every `killpoint!("…")` in the sources is listed in `KILLPOINTS`, and every listed one
    /// is used (so the suite tests real places).
    #[test]
    fn every_killpoint_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut used = Vec::new();
        for e in std::fs::read_dir(src).expect("src") {
            let path = e.expect("entry").path();
            if path.ends_with("killpoint.rs") {
                continue;
            }
            let text = std::fs::read_to_string(path).expect("read");
            for part in text.split("killpoint!(\"").skip(1) {
                used.push(part.split('"').next().expect("name").to_owned());
            }
        }
        for u in &used {
            assert!(super::KILLPOINTS.contains(&u.as_str()), "{u} not listed");
        }
        for k in super::KILLPOINTS {
            assert!(used.iter().any(|u| u == k), "{k} listed, never used");
        }
    }
}
