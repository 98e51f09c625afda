//! The host figures: against this machine's real /proc (checked with `free -b`, `df` and a
//! reading of its own), against a fake /sys tree for the hardware it lacks (thermal zones,
//! hwmon, a Jetson GPU), and against truncated and garbage files.

use std::fs;
use std::path::Path;
use std::process::Command;

use valise_health::Host;
use valise_health::host::{
    CpuTimes, parse_boot_id, parse_loadavg, parse_meminfo, parse_millidegrees, parse_per_mille,
    parse_stat, parse_uptime,
};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("a parent")).expect("create the fake tree");
    fs::write(p, text).expect("write a fake file");
}

fn within_percent(a: u64, b: u64, pct: u64) -> bool {
    a.abs_diff(b) * 100 <= b * pct
}

#[test]
fn real_proc_memory_matches_free() {
    let out = Command::new("free").arg("-b").output().expect("free");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("Mem:")).unwrap();
    let cols: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    let (free_total, free_available) = (cols[0], cols[5]);
    let mem = Host::default().memory().expect("memory from /proc/meminfo");
    assert!(
        within_percent(mem.total_bytes, free_total, 1),
        "{mem:?} vs free total {free_total}"
    );
    // available moves between the two readings; 10% of total covers that.
    assert!(
        mem.available_bytes.abs_diff(free_available) * 10 <= free_total,
        "{mem:?} vs {free_available}"
    );
}

#[test]
fn real_proc_uptime_boot_id_and_load() {
    let host = Host::default();
    let before: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let up = host.uptime_s().expect("uptime");
    let after: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        up as f64 >= before.floor() && up as f64 <= after,
        "{before} <= {up} <= {after}"
    );

    let id = host.boot_id().expect("boot id");
    assert_eq!(
        id,
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
    assert_eq!(
        host.boot_id(),
        Some(id),
        "the boot id is stable within a boot"
    );

    let load = host.load().expect("load");
    let first: f64 = fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // the 1-minute average moves slowly; a few hundredths between the two readings at most
    assert!(
        (f64::from(load.one) / 100.0 - first).abs() < 0.5,
        "{load:?} vs {first}"
    );
}

#[test]
fn real_proc_cpu_percent_over_an_interval() {
    let host = Host::default();
    let before = host.cpu_times().expect("cpu times");
    // keep one core busy for a while so ticks pass and the interval is not idle
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(300) {
        x = x.wrapping_mul(31).wrapping_add(1);
    }
    std::hint::black_box(x);
    let after = host.cpu_times().unwrap();
    assert!(after.total > before.total && after.idle >= before.idle);
    let busy = after.busy_since(&before).expect("ticks passed");
    let cores = std::thread::available_parallelism().unwrap().get().min(100) as u8;
    // one core of `cores` was busy the whole time: at least most of its share
    assert!(
        busy.get() >= 100 / cores / 2,
        "{} % busy on {cores} cores",
        busy.get()
    );
    assert_eq!(
        before.busy_since(&after),
        None,
        "counters going backwards give nothing"
    );
    assert_eq!(after.busy_since(&after), None, "no tick passed");
}

#[test]
fn real_disk_matches_df() {
    let out = Command::new("df")
        .args(["-B1", "--output=size,used", "/"])
        .output()
        .expect("df");
    let text = String::from_utf8(out.stdout).unwrap();
    let cols: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let disk = Host::disk(Path::new("/")).expect("statvfs /");
    assert_eq!(disk.total_bytes, cols[0]);
    assert!(
        within_percent(disk.used_bytes, cols[1], 1),
        "{disk:?} vs df {cols:?}"
    );
    assert_eq!(Host::disk(Path::new("/no/such/path")), None);
}

#[test]
fn fake_tree_fills_resources_and_absent_files_give_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let host = Host::new(root);
    // an empty root: nothing known, nothing invented
    let r = host.resources(None, Path::new("/no/such/path"));
    assert_eq!(r, Default::default());
    assert_eq!(
        (host.uptime_s(), host.boot_id(), host.load()),
        (None, None, None)
    );

    write(root, "proc/uptime", "3600.25 7000.50\n");
    write(
        root,
        "proc/sys/kernel/random/boot_id",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    );
    write(
        root,
        "proc/stat",
        "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n",
    );
    write(
        root,
        "proc/meminfo",
        "MemTotal:        8000 kB\nMemFree:  1 kB\nMemAvailable:    2000 kB\n",
    );
    write(root, "sys/class/thermal/thermal_zone0/temp", "45500\n");
    write(root, "sys/class/thermal/thermal_zone1/temp", "-5000\n");
    write(root, "sys/class/thermal/thermal_zone2/temp", "garbage\n");
    write(root, "sys/class/thermal/cooling_device0/temp", "99000\n"); // not a zone
    write(root, "sys/class/hwmon/hwmon0/temp1_input", "51250\n");
    write(root, "sys/class/hwmon/hwmon0/temp1_max", "95000\n"); // a limit, not a reading
    write(root, "sys/class/hwmon/hwmon1/temp2_input", "-273000\n"); // error value
    write(root, "sys/devices/platform/17000000.ga10b/load", "487\n");

    let before = host.cpu_times().unwrap();
    assert_eq!(
        before,
        CpuTimes {
            total: 1000,
            idle: 800
        }
    );
    write(root, "proc/stat", "cpu  400 0 150 800 150 0 0 0 0 0\n");
    let r = host.resources(Some(before), Path::new("/"));
    assert_eq!(host.uptime_s(), Some(3600));
    assert_eq!(
        host.boot_id().as_deref(),
        Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    );
    // 500 ticks passed, 150 of them idle (100 idle, 50 waiting for I/O)
    assert_eq!(r.cpu_percent.map(|p| p.get()), Some(70));
    assert_eq!(r.memory_total_bytes, Some(8000 * 1024));
    assert_eq!(r.memory_used_bytes, Some(6000 * 1024));
    assert!(r.disk_total_bytes.is_some() && r.disk_used_bytes.is_some());
    assert_eq!(r.temperature_c, Some(51));
    let gpu = r.gpu.clone().expect("Jetson GPU load");
    assert_eq!(gpu.utilization_percent.map(|p| p.get()), Some(49));
    assert_eq!(
        (gpu.memory_total_bytes, gpu.temperature_c, gpu.power_mw),
        (None, None, None)
    );

    // the JSON carries exactly the known fields
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["gpu"], serde_json::json!({"utilization_percent": 49}));

    // an unreadable-as-text GPU file gives no GPU, not a zero
    write(root, "sys/devices/platform/17000000.ga10b/load", "1001\n");
    assert_eq!(host.resources(None, Path::new("/")).gpu, None);
}

#[test]
fn parsers_accept_what_the_kernel_writes() {
    assert_eq!(parse_uptime("12345.67 23456.78\n"), Some(12345));
    assert_eq!(parse_uptime("0.00 0.00\n"), Some(0));
    let l = parse_loadavg("0.43 1.50 12.37 1/91 8811\n").unwrap();
    assert_eq!((l.one, l.five, l.fifteen), (43, 150, 1237));
    assert_eq!(
        parse_stat("cpu  1 2 3 4\n"),
        Some(CpuTimes { total: 10, idle: 4 })
    );
    assert_eq!(parse_millidegrees("45000\n"), Some(45));
    assert_eq!(parse_millidegrees("44499"), Some(44));
    assert_eq!(parse_millidegrees("-12000\n"), Some(-12));
    assert_eq!(parse_per_mille("1000\n").map(|p| p.get()), Some(100));
    assert_eq!(parse_per_mille("0\n").map(|p| p.get()), Some(0));
}

#[test]
fn parsers_refuse_nonsense() {
    for s in [
        "",
        "\n",
        "nan nan",
        "inf 1.0",
        "-1.00 2.00",
        "1e9 2",
        "1.2.3 4",
        "12 ",
        "12.5 3.5 9",
        "１２ 3",
    ] {
        assert_eq!(parse_uptime(s), None, "{s:?}");
    }
    for s in [
        "",
        "0.1 0.2",
        "a b c 1/2 3",
        "0.1 0.2 0.3 1/2",
        "0.1 0.2 0.3 x 3",
        "99999999999.00 0 0 1/1 1",
    ] {
        assert_eq!(parse_loadavg(s), None, "{s:?}");
    }
    for s in [
        "",
        "cpu 1 2 3",
        "cpu0 1 2 3 4",
        "cpu -1 2 3 4",
        "cpu 1 2 3 4 5 6 7 8 9 10 11",
        "intr 1 2 3 4",
    ] {
        assert_eq!(parse_stat(s), None, "{s:?}");
    }
    let max = u64::MAX.to_string();
    assert_eq!(
        parse_stat(&format!("cpu {max} {max} 0 0")),
        None,
        "overflow"
    );
    for s in [
        "",
        "MemTotal: 100 kB\n",
        "MemTotal: 100 kB\nMemAvailable: 200 kB\n",
        "MemTotal: 100 MB\nMemAvailable: 20 kB\n",
        "MemTotal: x kB\nMemAvailable: 20 kB\n",
        "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
    ] {
        assert_eq!(parse_meminfo(s), None, "{s:?}");
    }
    assert_eq!(
        parse_meminfo(&format!("MemTotal: {max} kB\nMemAvailable: 1 kB\n")),
        None
    );
    for s in [
        "",
        "-",
        "45.5",
        "+45000",
        "45000 ",
        "999999999",
        "250000",
        "-100000",
        "0x10",
    ] {
        assert_eq!(parse_millidegrees(s), None, "{s:?}");
    }
    for s in ["", "-1", "1001", "50%", "12345", " 5"] {
        assert_eq!(parse_per_mille(s), None, "{s:?}");
    }
    for s in [
        "",
        "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
        "../../etc/passwd",
    ] {
        assert_eq!(parse_boot_id(s), None, "{s:?}");
    }
}

/// Every prefix of a real file, and random bytes, go through every parser without a panic;
/// a truncated number may parse (the kernel writes it whole), but never into something
/// out of range.
#[test]
fn truncated_and_garbage_files_never_panic() {
    let samples = [
        fs::read_to_string("/proc/uptime").unwrap(),
        fs::read_to_string("/proc/stat").unwrap(),
        fs::read_to_string("/proc/loadavg").unwrap(),
        fs::read_to_string("/proc/meminfo").unwrap(),
        fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap(),
        "45000\n".to_owned(),
        "487\n".to_owned(),
    ];
    let all = |s: &str| {
        let _ = parse_uptime(s);
        let _ = parse_stat(s);
        let _ = parse_loadavg(s);
        if let Some(m) = parse_meminfo(s) {
            assert!(m.available_bytes <= m.total_bytes);
        }
        if let Some(t) = parse_millidegrees(s) {
            assert!((-60..=200).contains(&t));
        }
        if let Some(p) = parse_per_mille(s) {
            assert!(p.get() <= 100);
        }
        if let Some(id) = parse_boot_id(s) {
            assert_eq!(id.len(), 36);
        }
    };
    for sample in &samples {
        for cut in 0..=sample.len() {
            if sample.is_char_boundary(cut) {
                all(&sample[..cut]);
            }
        }
    }
    // xorshift: reproducible garbage without a dependency
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"0123456789.-: \nkBcpuMemTotalAvailable\xff/abcdef";
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        all(&String::from_utf8_lossy(&bytes));
    }
    // a file that is not text at all reads as nothing
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "proc/uptime", "");
    fs::write(dir.path().join("proc/uptime"), [0xff, 0xfe, 0x00, 0x31]).unwrap();
    assert_eq!(Host::new(dir.path()).uptime_s(), None);
}
