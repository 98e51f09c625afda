//! `valisectl update status|apply|check` against the updater as a real process (a program
//! stands in for systemd and the engines, as in the power-cut suite): what a person reads,
//! and exit statuses a script can rely on. Needs `valisectl` built (`cargo build -p valisectl`).

mod common;

use std::process::{Command, Output};

use common::daemon::Harness;
use common::*;

fn valisectl(h: &Harness, args: &[&str]) -> Output {
    Command::new(valise_e2e::bin("valisectl"))
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
