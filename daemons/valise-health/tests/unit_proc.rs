//! valise-health reads the kernel's figures from /proc (uptime, boot id, CPU, load, memory).
//! Its unit's sandbox decides which of /proc it sees: `ProcSubset=pid` would leave only the
//! process directories, and every figure would be absent on a real box while every test that
//! reads this machine's /proc passes. This test mounts a procfs with the options the shipped
//! unit asks for (`ProtectProc=` → `hidepid=`, `ProcSubset=` → `subset=`) and reads the box's
//! figures through it.

use std::path::Path;
use std::process::Command;

use valise_health::Host;

/// `Key=value` of `systemd/valise-health.service`, the last one winning as systemd reads it.
fn unit_setting(key: &str) -> Option<String> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd/valise-health.service");
    let text = std::fs::read_to_string(&unit).expect("the shipped unit");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .next_back()
}

/// Unmounts when dropped, so a failing assertion leaves no mount behind.
struct Mounted(std::path::PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn the_units_proc_shows_the_figures_health_reports() {
    let mut opts = Vec::new();
    if let Some(p) = unit_setting("ProtectProc") {
        opts.push(format!("hidepid={p}"));
    }
    if let Some(s) = unit_setting("ProcSubset") {
        opts.push(format!("subset={s}"));
    }
    let root = tempfile::tempdir().expect("a temporary root");
    let proc = root.path().join("proc");
    std::fs::create_dir(&proc).expect("mkdir proc");
    let mut mount = Command::new("mount");
    mount.args(["-t", "proc"]);
    if !opts.is_empty() {
        mount.args(["-o", &opts.join(",")]);
    }
    let st = mount.arg("proc").arg(&proc).status().expect("mount");
    assert!(
        st.success(),
        "mount -t proc -o {} failed (run as root)",
        opts.join(",")
    );
    let _m = Mounted(proc.clone());

    let host = Host::new(root.path());
    let why = format!("with the unit's /proc ({})", opts.join(","));
    assert!(host.uptime_s().is_some(), "no uptime {why}");
    assert!(host.boot_id().is_some(), "no boot id {why}");
    assert!(host.cpu_times().is_some(), "no CPU times {why}");
    assert!(host.load().is_some(), "no load {why}");
    assert!(host.memory().is_some(), "no memory {why}");
}
