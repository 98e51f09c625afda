//! `valisectl update status|apply|check` against the updater as a real process (a program
//! stands in for systemd and the engines, as in the power-cut suite): what a person reads,
//! and exit statuses a script can rely on. Needs `valisectl` built (`cargo build -p valisectl`).

mod fixture;

use std::process::{Command, Output};

use fixture::daemon::Harness;
use fixture::*;

fn valisectl(h: &Harness, args: &[&str]) -> Output {
    // `VALISECTL`: a copy of the binary, where other worktrees share the target directory.
    let bin = std::env::var_os("VALISECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| valise_e2e::bin("valisectl"));
    Command::new(bin)
        .arg("update")
        .args(args)
        .env("VALISE_UPDATE_SOCKET", &h.socket)
        .output()
        .expect("valisectl")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_apply_and_check_through_valisectl() {
    let mut h = Harness::new(false);
    let _daemon = valise_e2e::KillOnDrop(h.start(None));

    let o = valisectl(&h, &["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("installed:   no bundle (factory models) (slot factory)"),
        "{t}"
    );
    assert!(t.contains("last check:  never"), "{t}");
    assert!(t.contains("next check:  20"), "a planned time: {t}");

    let dir = h.b.repo.dir.to_str().expect("utf-8").to_owned();
    let o = valisectl(&h, &["apply", &dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with("installed: installed pten 1 in "),
        "{}",
        text(&o)
    );

    // A version whose acceptance fails: rolled back, exit status 1, the case named.
    let mut bad = bundle("pten", 2);
    bad.manifest.bundle.description = "fails acceptance".into();
    h.b.repo.publish(&[bad]);
    let o = valisectl(&h, &["apply", &dir]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("rolled back: pten 2 rolled back: acceptance: case bom-dia"),
        "{}",
        text(&o)
    );

    let o = valisectl(&h, &["status"]);
    let t = text(&o);
    assert!(t.contains("installed:   pten 1 (slot 20"), "{t}");
    assert!(t.contains(&format!("from dir:{dir}: rolled back: ")), "{t}");
    assert!(
        t.contains("refused:     pten 2: acceptance: case bom-dia: wrong output"),
        "{t}"
    );
    assert!(t.contains("history:\n"), "{t}");
    assert!(t.contains("installed pten 1: acceptance passed"), "{t}");

    // Online check without an enrolled identity: fails, says why, changes nothing.
    let o = valisectl(&h, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("failed: box identity:"), "{}", text(&o));
    assert_eq!(h.b.check_current()["pten"], 1);

    let o = valisectl(&h, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["installed"]["pten"], 1);
    assert_eq!(v["last_check"]["outcome"], "failed");
}

/// The time policy end to end with the daemon's real clock shifted by `faketime`: a month
/// after the timestamp expired, `apply` installs nothing and says why, the factory models
/// stay; with the clock right again the same copy installs.
#[test]
fn apply_with_the_clock_a_month_ahead_installs_nothing_then_recovers() {
    let mut h = Harness::new(false);
    h.b.repo
        .publish_with(&[bundle("pten", 1)], &rfc3339(now() + days(2)));
    let dir = h.b.repo.dir.to_str().expect("utf-8").to_owned();
    {
        let _daemon = valise_e2e::KillOnDrop(h.start_at(&faketime_date(now() + days(33))));
        let o = valisectl(&h, &["apply", &dir]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("failed: metadata refused: timestamp expired"),
            "{t}"
        );
        assert!(t.contains("clock ahead"), "{t}");
        assert_eq!(h.b.current(), "factory");
    }
    let _daemon = valise_e2e::KillOnDrop(h.start(None));
    let o = valisectl(&h, &["apply", &dir]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(h.b.check_current()["pten"], 1);
}

fn faketime_date(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// From the central team's `valisectl repo` (init, add-bundle, sign, publish, export-offline)
/// to a box's `valisectl update apply` of the USB export: the two sides agree on the format.
#[test]
fn a_bundle_published_by_valisectl_repo_installs_from_its_usb_export() {
    let h = Harness::new(false);
    let t = h.b.tmp.path();
    // The central side's dev store: one translation model.
    let slot = t.join("central/slots/a");
    let w: Vec<u8> = (0..40_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let v = b"vocabulary".to_vec();
    let m = model("tiny-pten", &[("model.onnx", &w), ("vocab.spm", &v)]);
    std::fs::create_dir_all(slot.join("tiny-pten")).expect("mkdir");
    std::fs::write(slot.join("tiny-pten/model.onnx"), &w).expect("w");
    std::fs::write(slot.join("tiny-pten/vocab.spm"), &v).expect("v");
    let catalog = valise_models::Catalog { models: vec![m] }.to_toml();
    std::fs::write(slot.join("manifest.toml"), &catalog).expect("manifest");
    std::os::unix::fs::symlink("slots/a", t.join("central/current")).expect("current");
    std::fs::write(t.join("catalog.toml"), &catalog).expect("catalog");
    let central = |args: &[&str]| {
        let bin = std::env::var_os("VALISECTL")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| valise_e2e::bin("valisectl"));
        let o = Command::new(bin)
            .args(args)
            .env("VALISE_MODEL_STORE", t.join("central"))
            .current_dir(t)
            .output()
            .expect("valisectl");
        assert!(o.status.success(), "valisectl {args:?}: {}", text(&o));
    };
    central(&["repo", "init", "r"]);
    central(&[
        "repo",
        "add-bundle",
        "r",
        "--catalog",
        "catalog.toml",
        "--model",
        "tiny-pten",
        "--version",
        "1",
    ]);
    central(&["repo", "sign", "r"]);
    central(&["repo", "publish", "r"]);
    central(&["repo", "export-offline", "r", "usb-export"]);
    // The box ships with the repository's root v1.
    std::fs::copy(
        t.join("r/published/metadata/1.root.json"),
        h.b.state.join("metadata/root.json"),
    )
    .expect("root");

    let _daemon = valise_e2e::KillOnDrop(h.start(None));
    let usb = t.join("usb-export");
    let o = valisectl(&h, &["apply", usb.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("installed tiny-pten 1"), "{}", text(&o));
    let bundles = h.b.check_current();
    assert_eq!(bundles.get("tiny-pten"), Some(&1), "{bundles:?}");
    let slot = h.b.store.join("slots").join(h.b.current());
    assert_eq!(
        std::fs::read(slot.join("tiny-pten/model.onnx")).expect("model"),
        w
    );
    assert!(
        slot.join("factory-model/w.bin").is_file(),
        "the factory model stays"
    );
}
