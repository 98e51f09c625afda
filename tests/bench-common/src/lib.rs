//! The machine facts the benchmarks (`bench-transcribe`, `bench-translate`) record beside
//! their figures: each engine's process reports its own peak memory and CPU time, and the run
//! records the CPU model and the load average before and after (a busy machine is flagged,
//! because side-by-side ratios hold better than absolute speeds there).

/// Peak resident memory of this process (`VmHWM` in `/proc/self/status`), in KiB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time (user + system, all threads) this process has used so far, in seconds.
pub fn cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// The one-minute load average (0 when `/proc/loadavg` cannot be read).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The CPU's model name from `/proc/cpuinfo` (empty when unknown).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_cpu_time_and_a_cpu() {
        let kb = peak_rss_kb().expect("VmHWM on Linux");
        assert!(kb > 100, "{kb} KiB");
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed().as_millis() < 50 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_secs() > 0.02, "{}", cpu_secs());
        assert!(loadavg() >= 0.0);
        assert!(!cpu_model().is_empty());
    }
}
