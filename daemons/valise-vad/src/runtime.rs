//! Loading ONNX Runtime (dynamically) and the process-wide `ort` environment.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ort::environment::Environment;

use crate::VadError;

/// The process-wide environment and the library it came from. `ort` allows one environment
/// per process and the library cannot be unloaded, so both live for the whole process.
static ENV: OnceLock<(Environment, PathBuf)> = OnceLock::new();
/// Serialises the slow path of [`init_onnxruntime`] (`OnceLock::get_or_try_init` is unstable).
static INIT: Mutex<()> = Mutex::new(());

/// Where the system package installs the runtime (last resort of [`find_onnxruntime`]).
pub const SYSTEM_ONNXRUNTIME: &str = "/usr/lib/valise/libonnxruntime.so";

/// Loads the ONNX Runtime shared library at `dylib` and creates the process-wide `ort`
/// environment.
///
/// Idempotent and thread-safe: the first successful call wins and later calls (from any
/// crate or thread) return `Ok(())` without doing anything, even with a different path.
/// A failed call leaves nothing behind, so it may be retried with another path.
///
/// Every crate of the process that uses `ort` must go through this function (or
/// [`VadModel::load`](crate::VadModel::load), which calls it), because `ort` refuses a
/// second environment.
pub fn init_onnxruntime(dylib: &Path) -> Result<(), VadError> {
    environment_from(dylib).map(|_| ())
}

/// The process's ONNX Runtime environment, once [`init_onnxruntime`] has succeeded: other
/// engines of the process (valise-translate) build their sessions on it, since `ort` allows
/// only one.
pub fn onnx_environment() -> Option<&'static Environment> {
    ENV.get().map(|(env, _)| env)
}

/// The path of the library the environment was created from, if it was.
pub fn onnxruntime_path() -> Option<&'static Path> {
    ENV.get().map(|(_, path)| path.as_path())
}

fn environment_from(dylib: &Path) -> Result<&'static Environment, VadError> {
    if let Some((env, loaded)) = ENV.get() {
        if loaded != dylib {
            tracing::debug!(
                requested = %dylib.display(),
                loaded = %loaded.display(),
                "ONNX Runtime already initialised; keeping the loaded library"
            );
        }
        return Ok(env);
    }
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((env, _)) = ENV.get() {
        return Ok(env);
    }
    let env = ort::init_from(dylib)
        .map_err(|source| VadError::RuntimeLoad {
            path: dylib.to_path_buf(),
            source,
        })?
        .with_name("valise")
        .with_telemetry(false)
        .build()
        .map_err(|source| VadError::RuntimeInit {
            path: dylib.to_path_buf(),
            source,
        })?;
    tracing::info!(library = %dylib.display(), "ONNX Runtime loaded");
    Ok(&ENV.get_or_init(|| (env, dylib.to_path_buf())).0)
}

/// The environment, initialising it from [`find_onnxruntime`] if nobody did yet.
pub(crate) fn environment() -> Result<&'static Environment, VadError> {
    if let Some((env, _)) = ENV.get() {
        return Ok(env);
    }
    match find_onnxruntime() {
        Some(path) => environment_from(&path),
        None => Err(VadError::RuntimeNotFound {
            looked: search_description(),
        }),
    }
}

fn search_description() -> String {
    let store = match std::env::var_os("VALISE_MODEL_STORE") {
        Some(s) => format!("{}/runtime/libonnxruntime.so*", Path::new(&s).display()),
        None => "$VALISE_MODEL_STORE/runtime/libonnxruntime.so* (unset)".to_owned(),
    };
    format!(
        "ORT_DYLIB_PATH (unset), {store}, ./.valise/models/current/runtime/libonnxruntime.so*, \
         {SYSTEM_ONNXRUNTIME}"
    )
}

/// Finds the ONNX Runtime shared library, in this order:
///
/// 1. the environment variable `ORT_DYLIB_PATH` (taken as is when set and non-empty, so a
///    wrong value fails loudly at load time instead of silently falling through);
/// 2. `$VALISE_MODEL_STORE/runtime/libonnxruntime.so*`;
/// 3. `./.valise/models/current/runtime/libonnxruntime.so*`;
/// 4. [`/usr/lib/valise/libonnxruntime.so`](SYSTEM_ONNXRUNTIME).
///
/// In a directory, an unversioned `libonnxruntime.so` is preferred, otherwise the highest
/// `libonnxruntime.so.X.Y.Z`.
pub fn find_onnxruntime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(store) = std::env::var_os("VALISE_MODEL_STORE").filter(|p| !p.is_empty())
        && let Some(p) = find_in_dir(&Path::new(&store).join("runtime"))
    {
        return Some(p);
    }
    if let Some(p) = find_in_dir(Path::new("./.valise/models/current/runtime")) {
        return Some(p);
    }
    let system = Path::new(SYSTEM_ONNXRUNTIME);
    system.is_file().then(|| system.to_path_buf())
}

/// The best `libonnxruntime.so*` in `dir`, if any.
pub(crate) fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(suffix) = name.strip_prefix("libonnxruntime.so") else {
            continue;
        };
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let key: Vec<u64> = if suffix.is_empty() {
            vec![u64::MAX] // the unversioned name wins
        } else if let Some(version) = suffix.strip_prefix('.') {
            match version
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()
            {
                Ok(v) => v,
                Err(_) => continue,
            }
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_unversioned_then_highest_version() {
        let dir = std::env::temp_dir().join(format!("valise-vad-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert_eq!(find_in_dir(&dir), None);
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.31.1.dbg",
        ] {
            std::fs::write(dir.join(name), b"").expect("temp dir");
        }
        assert_eq!(
            find_in_dir(&dir),
            Some(dir.join("libonnxruntime.so.1.31.1"))
        );
        std::fs::write(dir.join("libonnxruntime.so"), b"").expect("temp dir");
        assert_eq!(find_in_dir(&dir), Some(dir.join("libonnxruntime.so")));
        std::fs::remove_dir_all(&dir).expect("temp dir");
    }

    #[test]
    fn missing_library_is_an_error_with_the_path() {
        // No other unit test initialises ONNX Runtime, so this really tries to load it.
        let path = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
        let err = init_onnxruntime(path).expect_err("must fail");
        assert!(matches!(err, VadError::RuntimeLoad { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/nonexistent/libonnxruntime.so.1.31.1"),
            "{err}"
        );
        assert!(onnxruntime_path().is_none());
    }
}
