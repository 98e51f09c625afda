//! The x86 box's NVIDIA GPU through NVML: utilization, memory, temperature and power, for
//! `Resources.gpu` (the Jetson's GPU is read from sysfs in `host.rs`; NVML is asked only where
//! no Jetson GPU was found).
//!
//! ```text
//!  nvmlDeviceGetUtilizationRates   .gpu            utilization_percent (0-100)
//!  nvmlDeviceGetMemoryInfo_v2      .used, .total   memory_used_bytes, memory_total_bytes
//!  nvmlDeviceGetTemperature(GPU)                   temperature_c
//!  nvmlDeviceGetPowerUsage                         power_mw
//! ```
//!
//! `libnvidia-ml.so.1` is loaded at run time (nvml-wrapper, through libloading): nothing of
//! NVIDIA or CUDA is needed to build, and a box without the driver has no NVML, so no figures.
//! The library is loaded and initialised once, at the first reading; when it is absent or
//! `nvmlInit` fails, that is logged once at info and remembered: no retry at every cycle, no
//! error for the daemon. nvml-wrapper resolves each entry point on its own and only reports a
//! missing one when it is called, so an old driver lacking one function loses that figure only.
//!
//! Boxes have one GPU: the first device (index 0) is read. A figure whose call fails (a
//! board that does not measure its power says NotSupported) stays `None`: absent, not
//! invented. A value out of range (utilization above 100, a temperature beyond the sensor
//! range, more memory used than there is) is dropped the same way.
//!
//! NVML calls are quick once initialised, but `nvmlInit` can take seconds on a GPU without
//! persistence mode, and a wedged driver can hang any call. [`Nvml::read`] therefore runs on
//! a blocking thread with a time limit; a reading still hanging makes the next ones report no
//! GPU (they do not queue up behind it) until it returns.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use valise_health_schema::{GpuFigures, Percent};

/// What the dynamic loader is asked for by default: the driver's runtime name (the bare
/// `libnvidia-ml.so` nvml-wrapper would ask for is in the development package only).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";
/// Readings outside this range (°C) are a sensor's error value, not a temperature.
const TEMP_MAX_C: u32 = 200;

/// The NVML reader: cheap to clone (one shared state), initialised at the first reading.
#[derive(Clone)]
pub struct Nvml {
    inner: Arc<Inner>,
}

struct Inner {
    library: OsString,
    state: Mutex<State>,
    init_attempts: AtomicU32,
}

enum State {
    NotTried,
    /// No library, or `nvmlInit` failed: not asked again.
    Absent,
    Ready(Box<nvml_wrapper::Nvml>),
}

impl std::fmt::Debug for Nvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nvml")
            .field("library", &self.inner.library)
            .field("init_attempts", &self.init_attempts())
            .finish()
    }
}

impl Nvml {
    /// `library`: a path or a name for the dynamic loader; `None` is [`DEFAULT_LIBRARY`].
    /// Nothing is loaded yet.
    pub fn new(library: Option<PathBuf>) -> Self {
        let library = library.map_or_else(|| OsString::from(DEFAULT_LIBRARY), |p| p.into());
        Self {
            inner: Arc::new(Inner {
                library,
                state: Mutex::new(State::NotTried),
                init_attempts: AtomicU32::new(0),
            }),
        }
    }

    /// How many times loading and initialising NVML was tried (0 or 1).
    pub fn init_attempts(&self) -> u32 {
        self.inner.init_attempts.load(Ordering::Relaxed)
    }

    /// The first GPU's figures, from a blocking thread, waiting at most `limit`; `None` when
    /// there is no NVML, no device, nothing readable or no answer in time.
    pub async fn read(&self, limit: Duration) -> Option<GpuFigures> {
        let me = self.clone();
        let task = tokio::task::spawn_blocking(move || me.read_blocking());
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(figures)) => figures,
            Ok(Err(e)) => {
                tracing::warn!("the NVML reading failed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!("NVML did not answer within {limit:?}: no GPU figures this time");
                None
            }
        }
    }

    /// [`Nvml::read`] on the calling thread (which may block).
    pub fn read_blocking(&self) -> Option<GpuFigures> {
        let mut state = match self.inner.state.try_lock() {
            Ok(s) => s,
            // A reading started earlier still hangs in the driver.
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if matches!(*state, State::NotTried) {
            *state = self.init();
        }
        match &*state {
            State::Ready(nvml) => figures(nvml),
            State::NotTried | State::Absent => None,
        }
    }

    fn init(&self) -> State {
        self.inner.init_attempts.fetch_add(1, Ordering::Relaxed);
        let library = &self.inner.library;
        match nvml_wrapper::Nvml::builder()
            .lib_path(library.as_os_str())
            .init()
        {
            Ok(nvml) => {
                match nvml.device_count() {
                    Ok(n) => tracing::info!(
                        "NVML ({}): {n} GPU(s), the first one is reported",
                        library.to_string_lossy()
                    ),
                    Err(e) => tracing::info!(
                        "NVML ({}) initialised, but no device count: {e}",
                        library.to_string_lossy()
                    ),
                }
                State::Ready(Box::new(nvml))
            }
            Err(e) => {
                tracing::info!(
                    "no NVML ({}: {e}): no x86 GPU figures are reported",
                    library.to_string_lossy()
                );
                State::Absent
            }
        }
    }
}

/// The first device's figures; `None` when there is no device or nothing could be read.
fn figures(nvml: &nvml_wrapper::Nvml) -> Option<GpuFigures> {
    let device = nvml
        .device_by_index(0)
        .map_err(|e| tracing::debug!("NVML: no device 0: {e}"))
        .ok()?;
    let utilization = ok("utilization", device.utilization_rates())
        .and_then(|u| Percent::new(u8::try_from(u.gpu).ok()?));
    let memory = ok("memory", device.memory_info()).filter(|m| m.total > 0 && m.used <= m.total);
    let temperature = ok("temperature", device.temperature(TemperatureSensor::Gpu))
        .filter(|t| *t <= TEMP_MAX_C)
        .and_then(|t| i16::try_from(t).ok());
    let power = ok("power", device.power_usage());
    let f = GpuFigures {
        utilization_percent: utilization,
        memory_used_bytes: memory.as_ref().map(|m| m.used),
        memory_total_bytes: memory.as_ref().map(|m| m.total),
        temperature_c: temperature,
        power_mw: power,
    };
    (f != GpuFigures::default()).then_some(f)
}

/// A figure's call: its value, or `None` (logged at debug: a board without a power sensor
/// says NotSupported at every reading).
fn ok<T>(what: &str, r: Result<T, nvml_wrapper::error::NvmlError>) -> Option<T> {
    r.map_err(|e| tracing::debug!("NVML: no {what}: {e}")).ok()
}
