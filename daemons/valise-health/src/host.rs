//! The box's own figures, read from the kernel: uptime and boot id, CPU use and load, memory,
//! disk, temperatures and the Jetson GPU's load; with the x86 GPU's figures from NVML
//! (`gpu.rs`) they fill [`Resources`] in the health message.
//!
//! ```text
//!  <root>/proc/uptime                         uptime_s
//!  <root>/proc/sys/kernel/random/boot_id      boot id (a new one at every boot)
//!  <root>/proc/stat (first "cpu" line)        cpu_percent, from two readings' difference
//!  <root>/proc/loadavg                        load averages (not in the v1 message)
//!  <root>/proc/meminfo MemTotal, MemAvailable memory_total_bytes, memory_used_bytes
//!  statvfs(path)                              disk_total_bytes, disk_used_bytes
//!  <root>/sys/class/thermal/thermal_zone*/temp
//!  <root>/sys/class/hwmon/hwmon*/temp*_input  temperature_c: the hottest, in °C
//!  <root>/sys/devices/.../gpu.0/load etc.     gpu.utilization_percent (Jetson, per mille)
//!  NVML, first device (x86 NVIDIA GPU)        gpu.*: utilization, memory, temperature, power
//! ```
//!
//! Every reader works under a root directory (`/` on the box), so tests can point it at a
//! fake tree for hardware the test machine lacks. A file that is absent, unreadable or holds
//! anything but what the kernel writes gives `None`: never a zero, never a guess. Parsing
//! refuses nonsense (garbage, truncation, out-of-range values) and never panics.
//!
//! `gpu` comes from the Jetson's sysfs where that exists, else from NVML where the host was
//! given a reader ([`Host::with_nvml`]; the daemon's is), else it is absent. NVML is never
//! loaded on a Jetson. [`Host::resources`] reads the kernel only (and never blocks on a
//! driver); [`Host::collect`] adds NVML from a blocking thread, within a time limit.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use valise_health_schema::{GpuFigures, Percent, Resources};

use crate::gpu::Nvml;

/// The most bytes read from one kernel file (a /proc/stat of a few hundred CPUs fits).
const MAX_FILE: u64 = 1 << 20;
/// The most directory entries looked at in one sysfs class directory.
const MAX_ENTRIES: usize = 256;
/// Temperatures outside this range (°C) are a sensor's error value, not a reading.
const TEMP_RANGE_C: std::ops::RangeInclusive<i64> = -60..=200;
/// Where the Jetson family exposes its GPU load, in per mille (first present wins).
const JETSON_GPU_LOAD: &[&str] = &[
    "sys/devices/gpu.0/load",
    "sys/devices/platform/gpu.0/load",
    "sys/devices/17000000.gv11b/load",
    "sys/devices/platform/17000000.ga10b/load",
    "sys/devices/platform/bus@0/17000000.gpu/load",
];

/// The kernel's CPU time counters (aggregate "cpu" line of /proc/stat), in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest is inside user).
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// The share of time busy between `earlier` and `self`; `None` when no tick passed or
    /// the counters went backwards (another boot).
    pub fn busy_since(&self, earlier: &CpuTimes) -> Option<Percent> {
        let total = self.total.checked_sub(earlier.total)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        if total == 0 || idle > total {
            return None;
        }
        Some(Percent::of(total - idle, total))
    }
}

/// Load averages over 1, 5 and 15 minutes, in hundredths (1.50 is 150).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadAvg {
    pub one: u32,
    pub five: u32,
    pub fifteen: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

/// Reads the figures under a root directory, and the x86 GPU through NVML when given.
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
    nvml: Option<Nvml>,
}

impl Default for Host {
    fn default() -> Self {
        Self::new("/")
    }
}

impl Host {
    /// Without NVML: the kernel's figures only (see [`Host::with_nvml`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            nvml: None,
        }
    }

    /// Reads the GPU through `nvml` where no Jetson GPU is found ([`Host::collect`]).
    pub fn with_nvml(mut self, nvml: Nvml) -> Self {
        self.nvml = Some(nvml);
        self
    }

    fn read(&self, rel: &str) -> Option<String> {
        read_small(&self.root.join(rel))
    }

    pub fn uptime_s(&self) -> Option<u64> {
        parse_uptime(&self.read("proc/uptime")?)
    }

    /// The boot id, 36 lowercase characters (`8-4-4-4-12` hex digits).
    pub fn boot_id(&self) -> Option<String> {
        parse_boot_id(&self.read("proc/sys/kernel/random/boot_id")?)
    }

    pub fn cpu_times(&self) -> Option<CpuTimes> {
        parse_stat(&self.read("proc/stat")?)
    }

    pub fn load(&self) -> Option<LoadAvg> {
        parse_loadavg(&self.read("proc/loadavg")?)
    }

    pub fn memory(&self) -> Option<Memory> {
        parse_meminfo(&self.read("proc/meminfo")?)
    }

    /// The file system holding `path` (not under the root: statvfs asks the kernel directly).
    // The statvfs fields are u64 on 64-bit Linux but narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    pub fn disk(path: &Path) -> Option<Disk> {
        let st = nix::sys::statvfs::statvfs(path).ok()?;
        let frsize = u64::from(st.fragment_size());
        let blocks = u64::from(st.blocks());
        let free = u64::from(st.blocks_free());
        Some(Disk {
            total_bytes: blocks.checked_mul(frsize)?,
            used_bytes: blocks.checked_sub(free)?.checked_mul(frsize)?,
        })
    }

    /// The hottest reading over the thermal zones and hwmon sensors, in °C.
    pub fn temperature_c(&self) -> Option<i16> {
        let mut files = Vec::new();
        for dir in self.entries("sys/class/thermal", |n| n.starts_with("thermal_zone")) {
            files.push(dir.join("temp"));
        }
        for dir in self.entries("sys/class/hwmon", |n| n.starts_with("hwmon")) {
            files.extend(list(&dir, |n| {
                n.strip_prefix("temp")
                    .and_then(|r| r.strip_suffix("_input"))
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            }));
        }
        files
            .iter()
            .filter_map(|f| parse_millidegrees(&read_small(f)?))
            .max()
    }

    /// The Jetson GPU's load, where the kernel exposes it.
    pub fn jetson_gpu_load(&self) -> Option<Percent> {
        JETSON_GPU_LOAD
            .iter()
            .find_map(|rel| parse_per_mille(&self.read(rel)?))
    }

    /// The `resources` of a health message: [`Host::resources`], then, where that found no
    /// Jetson GPU, the NVML figures (if the host has a reader), waiting at most `limit` for
    /// them.
    pub async fn collect(
        &self,
        cpu_before: Option<CpuTimes>,
        disk: &Path,
        limit: std::time::Duration,
    ) -> Resources {
        let mut r = self.resources(cpu_before, disk);
        if r.gpu.is_none()
            && let Some(nvml) = &self.nvml
        {
            r.gpu = nvml.read(limit).await;
        }
        r
    }

    /// The `resources` of a health message from the kernel alone (the GPU's only where it is
    /// a Jetson's). `cpu_before` is a reading taken some time ago (the caller's interval);
    /// `disk` is the data partition's path.
    pub fn resources(&self, cpu_before: Option<CpuTimes>, disk: &Path) -> Resources {
        let cpu_percent = cpu_before
            .zip(self.cpu_times())
            .and_then(|(before, now)| now.busy_since(&before));
        let memory = self.memory();
        let disk = Self::disk(disk);
        // The Jetson's sysfs load; the x86 GPU's figures are added by `collect` (NVML).
        let gpu = self.jetson_gpu_load().map(|load| GpuFigures {
            utilization_percent: Some(load),
            ..GpuFigures::default()
        });
        Resources {
            cpu_percent,
            memory_used_bytes: memory.map(|m| m.total_bytes - m.available_bytes),
            memory_total_bytes: memory.map(|m| m.total_bytes),
            disk_used_bytes: disk.map(|d| d.used_bytes),
            disk_total_bytes: disk.map(|d| d.total_bytes),
            temperature_c: self.temperature_c(),
            gpu,
        }
    }

    fn entries(&self, rel: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        list(&self.root.join(rel), keep)
    }
}

fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .take(MAX_ENTRIES)
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .collect()
}

fn read_small(path: &Path) -> Option<String> {
    let mut s = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// A plain decimal number: digits, then optionally `.` and 1 to `max_frac` digits; gives
/// the integer part and the fraction scaled to `max_frac` digits.
fn decimal(s: &str, max_frac: usize) -> Option<(u64, u64)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (s.contains('.') && !digits(frac)) || frac.len() > max_frac {
        return None;
    }
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..max_frac {
        f *= 10;
    }
    Some((int.parse().ok()?, f))
}

/// `/proc/uptime`: "12345.67 23456.78\n" → 12345.
pub fn parse_uptime(s: &str) -> Option<u64> {
    let mut it = s.split_ascii_whitespace();
    let up = it.next()?;
    decimal(it.next()?, 2)?;
    if it.next().is_some() {
        return None;
    }
    Some(decimal(up, 2)?.0)
}

pub fn parse_boot_id(s: &str) -> Option<String> {
    let id = s.strip_suffix('\n').unwrap_or(s);
    let groups: Vec<&str> = id.split('-').collect();
    let ok = groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    ok.then(|| id.to_owned())
}

/// The aggregate "cpu" line of `/proc/stat` (at least user…idle; missing later columns,
/// as on old kernels, count as 0).
pub fn parse_stat(s: &str) -> Option<CpuTimes> {
    let line = s.lines().next()?;
    let mut it = line.split_ascii_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = it.map(|t| t.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 4 || v.len() > 10 {
        return None;
    }
    let col = |i: usize| v.get(i).copied().unwrap_or(0);
    let total = (0..8).try_fold(0u64, |acc, i| acc.checked_add(col(i)))?;
    let idle = col(3).checked_add(col(4))?;
    Some(CpuTimes { total, idle })
}

/// `/proc/loadavg`: "0.43 1.50 1.37 1/91 8811\n".
pub fn parse_loadavg(s: &str) -> Option<LoadAvg> {
    let mut it = s.split_ascii_whitespace();
    let mut next = || -> Option<u32> {
        let (i, f) = decimal(it.next()?, 2)?;
        u32::try_from(i.checked_mul(100)?.checked_add(f)?).ok()
    };
    let (one, five, fifteen) = (next()?, next()?, next()?);
    let running = it.next()?;
    let (r, t) = running.split_once('/')?;
    r.parse::<u32>().ok()?;
    t.parse::<u32>().ok()?;
    it.next()?.parse::<u32>().ok()?;
    Some(LoadAvg { one, five, fifteen })
}

/// `/proc/meminfo`: MemTotal and MemAvailable (kB), both needed; available ≤ total.
pub fn parse_meminfo(s: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let rest = s.lines().find_map(|l| l.strip_prefix(name))?;
        let mut it = rest.split_ascii_whitespace();
        let kb: u64 = it.next()?.parse().ok()?;
        (it.next()? == "kB" && it.next().is_none()).then_some(())?;
        kb.checked_mul(1024)
    };
    let total_bytes = field("MemTotal:")?;
    let available_bytes = field("MemAvailable:")?;
    (total_bytes > 0 && available_bytes <= total_bytes).then_some(Memory {
        total_bytes,
        available_bytes,
    })
}

/// A sysfs temperature, millidegrees Celsius ("45000\n") → whole °C, rounded to nearest.
pub fn parse_millidegrees(s: &str) -> Option<i16> {
    let t = s.strip_suffix('\n').unwrap_or(s);
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t),
    };
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let m: i64 = digits.parse().ok()?;
    let c = (m + 500) / 1000;
    let c = if neg { -c } else { c };
    if !TEMP_RANGE_C.contains(&c) {
        return None;
    }
    i16::try_from(c).ok()
}

/// The Jetson GPU `load` file: per mille, 0 to 1000.
pub fn parse_per_mille(s: &str) -> Option<Percent> {
    let t = s.strip_suffix('\n').unwrap_or(s);
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u16 = t.parse().ok()?;
    if v > 1000 {
        return None;
    }
    Percent::new(u8::try_from((v + 5) / 10).ok()?)
}
