//! The seam between the update flow and the engines: restart a bundle's engines and wait
//! until they serve, then run its acceptance cases. [`SystemdEngines`] is the box's: the
//! systemd D-Bus restart (`systemd.rs`) and the acceptance runner (`acceptance.rs`). Test
//! builds (`test-hooks`) can stand a program in for both.

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

/// The engines on a box: units restarted through systemd's D-Bus API (`systemd.rs`), then
/// waited for until they answer on their sockets; acceptance cases run through those sockets
/// (`acceptance.rs`). Each call runs on the check's worker thread in a runtime of its own.
#[derive(Debug, Clone)]
pub struct SystemdEngines {
    pub config: crate::config::Engines,
}

impl SystemdEngines {
    fn sockets(&self) -> crate::acceptance::EngineSockets {
        crate::acceptance::EngineSockets {
            transcribe: self.config.transcribe_socket.clone(),
            translate: self.config.translate_socket.clone(),
        }
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?
            .block_on(f)
    }
}

impl EngineControl for SystemdEngines {
    fn restart(&self, engines: &[Engine]) -> Result<(), String> {
        let bus = Some(self.config.bus.as_str()).filter(|b| !b.is_empty());
        let limit = std::time::Duration::from_secs(self.config.ready_timeout_secs);
        self.block_on(async {
            let units = crate::systemd::SystemdUnits::connect(bus)
                .await
                .map_err(|e| e.to_string())?
                .with_job_timeout(limit);
            crate::systemd::restart_engines(&units, engines, &self.sockets(), limit)
                .await
                .map_err(|e| e.to_string())
        })
    }
    fn accept(&self, manifest: &Manifest, bundle_dir: &Path) -> Result<(), String> {
        self.block_on(async {
            crate::acceptance::run_acceptance(manifest, bundle_dir, &self.sockets())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
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
