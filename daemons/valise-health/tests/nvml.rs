//! The x86 GPU's figures through NVML (`gpu.rs`), without a GPU: the test machines have none
//! and no libnvidia-ml, so the library is either absent (the figures must be too, with one
//! try and no error per cycle) or a test double, `fake_nvml/fake_nvml.c`, built here with
//! `cc -shared -fPIC` and loaded through the configurable path (`nvml_library`). The double
//! reports one GPU at 37 %, 1 GiB of 80 GiB used, 61 °C and 123456 mW; these must arrive in
//! `Resources.gpu` and in the health message the real daemon sends to a real broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Central, Daemon, Fleet, WAIT};
use valise_health::Host;
use valise_health::gpu::Nvml;
use valise_health_schema::{GpuFigures, Percent};

const GIB: u64 = 1 << 30;
const LIMIT: Duration = Duration::from_secs(10);

/// Builds the double into `dir` (as `libnvidia-ml.so.1`) with the given `-D` defines.
fn fake_nvml(dir: &Path, defines: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let out = dir.join("libnvidia-ml.so.1");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .args(defines.iter().map(|d| format!("-D{d}")))
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "cc {defines:?} failed");
    out
}

fn full() -> GpuFigures {
    GpuFigures {
        utilization_percent: Percent::new(37),
        memory_used_bytes: Some(GIB),
        memory_total_bytes: Some(80 * GIB),
        temperature_c: Some(61),
        power_mw: Some(123_456),
    }
}

/// A host on an empty tree (no Jetson GPU) reading NVML from `nvml`.
fn host(root: &Path, nvml: &Nvml) -> Host {
    Host::new(root).with_nvml(nvml.clone())
}

#[tokio::test]
async fn without_the_library_gpu_is_absent_and_nvml_is_tried_once() {
    let dir = tempfile::tempdir().unwrap();
    for lib in [
        dir.path().join("no/libnvidia-ml.so.1"),
        // A library that is not NVML: no nvmlInit_v2.
        PathBuf::from("libm.so.6"),
    ] {
        let nvml = Nvml::new(Some(lib.clone()));
        let h = host(dir.path(), &nvml);
        for _ in 0..3 {
            let r = h.collect(None, Path::new("/"), LIMIT).await;
            assert_eq!(r.gpu, None, "{lib:?}");
            // The rest is still read.
            assert!(r.disk_total_bytes.is_some());
        }
        assert_eq!(
            nvml.init_attempts(),
            1,
            "{lib:?}: loaded once, not at every cycle"
        );
    }
}

#[tokio::test]
async fn the_double_s_figures_arrive_in_resources() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = Nvml::new(Some(fake_nvml(dir.path(), &[])));
    let h = host(dir.path(), &nvml);
    for _ in 0..2 {
        let r = h.collect(None, Path::new("/"), LIMIT).await;
        assert_eq!(r.gpu, Some(full()));
    }
    assert_eq!(nvml.init_attempts(), 1);
    assert_eq!(nvml.read_blocking(), Some(full()));
    // Without a reader, `collect` is `resources`: no GPU.
    let plain = Host::new(dir.path());
    assert_eq!(plain.collect(None, Path::new("/"), LIMIT).await.gpu, None);
}

#[tokio::test]
async fn a_figure_the_board_does_not_measure_stays_absent() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = Nvml::new(Some(fake_nvml(dir.path(), &["FAKE_NO_POWER"])));
    let r = host(dir.path(), &nvml)
        .collect(None, Path::new("/"), LIMIT)
        .await;
    assert_eq!(
        r.gpu,
        Some(GpuFigures {
            power_mw: None,
            ..full()
        })
    );
}

#[tokio::test]
async fn a_failed_init_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = Nvml::new(Some(fake_nvml(dir.path(), &["FAKE_INIT_FAILS"])));
    let h = host(dir.path(), &nvml);
    for _ in 0..3 {
        assert_eq!(h.collect(None, Path::new("/"), LIMIT).await.gpu, None);
    }
    assert_eq!(nvml.init_attempts(), 1);
}

#[tokio::test]
async fn a_jetson_is_read_from_sysfs_and_nvml_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = Nvml::new(Some(fake_nvml(dir.path(), &[])));
    let root = dir.path().join("root");
    common::write(&root, "sys/devices/gpu.0/load", "500\n");
    let r = host(&root, &nvml)
        .collect(None, Path::new("/"), LIMIT)
        .await;
    assert_eq!(
        r.gpu,
        Some(GpuFigures {
            utilization_percent: Percent::new(50),
            ..GpuFigures::default()
        })
    );
    assert_eq!(nvml.init_attempts(), 0);
}

/// A call that hangs costs one reading at most `limit`; the next ones do not queue behind it
/// (no GPU at once) and the figures come back when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_driver_does_not_hold_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = Nvml::new(Some(fake_nvml(dir.path(), &["FAKE_HANG_MS=3000"])));
    let h = host(dir.path(), &nvml);
    let limit = Duration::from_millis(300);
    let t = std::time::Instant::now();
    assert_eq!(h.collect(None, Path::new("/"), limit).await.gpu, None);
    assert_eq!(h.collect(None, Path::new("/"), limit).await.gpu, None);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    let deadline = t + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if h.collect(None, Path::new("/"), limit).await.gpu == Some(full()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the figures never came back"
        );
    }
    assert!(t.elapsed() >= Duration::from_millis(2900));
    assert_eq!(nvml.init_attempts(), 1);
}

/// The real daemon, configured with the double as `nvml_library`, sends its figures in the
/// health message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_message_carries_the_nvml_figures() {
    let fleet = Fleet::start(&["lisbon.box-1"], &[]);
    let lib = fake_nvml(fleet.tmp.path(), &["FAKE_NO_POWER"]);
    let mut central = Central::connect(&fleet, "central-watch", &["valise/v1/+/+/health"]).await;
    let lib = format!("{:?}", lib.display().to_string());
    let mut d = Daemon::start(&fleet, "lisbon.box-1", &[("nvml_library", &lib)], "", None);
    let m = central.next_on("health", WAIT).await;
    assert_eq!(m.topic, "valise/v1/lisbon/box-1/health");
    let gpu = &m.json["resources"]["gpu"];
    assert_eq!(
        gpu,
        &serde_json::json!({
            "utilization_percent": 37,
            "memory_used_bytes": GIB,
            "memory_total_bytes": 80 * GIB,
            "temperature_c": 61,
        }),
        "{:?}",
        m.json
    );
    d.wait_log("NVML (", WAIT).await;
    assert_eq!(d.count("NVML ("), 1, "{}", d.log_text());
}
