//! The seam between the update flow and the engines: restart a bundle's engines and wait
//! until they serve, then run its acceptance cases. The systemd D-Bus restart (`systemd.rs`)
//! and the acceptance runner (`acceptance.rs`) are built beside this module; until they are
//! wired in here, the production implementation refuses, so an update rolls back instead of
//! running unchecked models. Test builds (`test-hooks`) can stand a program in for both.

use std::path::Path;

use valise_bundle::{Engine, Manifest};

/// Restarts engines and checks a bundle through them.
pub trait EngineControl: Send + Sync + std::fmt::Debug {
    /// Restarts the units of `engines` and returns once each serves again (or why not).
    fn restart(&self, engines: &[Engine]) -> Result<(), String>;
    /// Runs `manifest`'s acceptance cases, inputs under `bundle_dir`; the error names the
    /// failed case and what was seen.
    fn accept(&self, manifest: &Manifest, bundle_dir: &Path) -> Result<(), String>;
}

/// The engines on a box, through systemd and their sockets.
#[derive(Debug, Clone)]
pub struct SystemdEngines {
    pub config: crate::config::Engines,
}

impl EngineControl for SystemdEngines {
    fn restart(&self, _engines: &[Engine]) -> Result<(), String> {
        Err("engine restarts through systemd are not built into this valise-update yet".into())
    }
    fn accept(&self, _manifest: &Manifest, _bundle_dir: &Path) -> Result<(), String> {
        Err("acceptance cases are not built into this valise-update yet".into())
    }
}

/// `PROGRAM restart ENGINE…` / `PROGRAM accept BUNDLE_DIR`: exit 0 is success, otherwise the
/// first line of its output is the reason (test builds only).
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone)]
pub struct ProgramEngines {
    pub program: std::path::PathBuf,
}

#[cfg(feature = "test-hooks")]
impl ProgramEngines {
    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let out = std::process::Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", self.program.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Err(text.lines().next().unwrap_or("failed").to_owned())
    }
}

#[cfg(feature = "test-hooks")]
impl EngineControl for ProgramEngines {
    fn restart(&self, engines: &[Engine]) -> Result<(), String> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["restart".as_ref()];
        args.extend(engines.iter().map(|e| std::ffi::OsStr::new(e.name())));
        self.run(&args)
    }
    fn accept(&self, _manifest: &Manifest, bundle_dir: &Path) -> Result<(), String> {
        self.run(&["accept".as_ref(), bundle_dir.as_os_str()])
    }
}
