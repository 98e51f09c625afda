//! The update flow in-process (DESIGN.md §5.2): a repository copy in a directory (the way
//! `valisectl update apply DIR` reads a USB stick), a model store with a factory slot, and an
//! in-test `EngineControl` that records restarts and passes or fails acceptance on demand
//! (the systemd and acceptance modules are tested on their own).

mod fixture;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fixture::*;
use valise_bundle::{Engine, Manifest, Wave};
use valise_update::Service;
use valise_update::history::{Attempt, Failure, Outcome};
use valise_update::journal::Phase;
use valise_update::source::Origin;

#[derive(Debug, Default)]
struct Engines {
    calls: Mutex<Vec<String>>,
    fail_accept: Mutex<Option<String>>,
    fail_restart: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Engines>);

impl valise_update::engines::EngineControl for Shared {
    fn restart(&self, engines: &[Engine]) -> Result<(), String> {
        let names: Vec<&str> = engines.iter().map(|e| e.name()).collect();
        self.0
            .calls
            .lock()
            .expect("ok")
            .push(format!("restart {}", names.join(" ")));
        match self.0.fail_restart.lock().expect("ok").clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn accept(&self, manifest: &Manifest, bundle_dir: &Path) -> Result<(), String> {
        assert!(bundle_dir.join("acceptance/input.txt").is_file());
        self.0.calls.lock().expect("ok").push(format!(
            "accept {} {}",
            manifest.bundle.id, manifest.bundle.version
        ));
        match self.0.fail_accept.lock().expect("ok").clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn service(b: &TestBox, engines: &Shared) -> Service {
    Service::new(b.config(), Box::new(engines.clone())).expect("service")
}

fn apply(svc: &Service, b: &TestBox) -> valise_update::history::CheckRecord {
    svc.check(&Origin::Dir(b.repo.dir.clone()), now())
}

#[test]
fn installs_a_bundle_from_a_directory_and_commits() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let eng = Shared::default();
    let svc = service(&b, &eng);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    assert_eq!(r.source, format!("dir:{}", b.repo.dir.display()));
    let cur = b.current();
    assert!(
        cur.ends_with("-pten-1") && cur.starts_with("20261204T"),
        "{cur}"
    );
    assert_eq!(b.check_current().get("pten"), Some(&1));
    // The factory model stays, hard-linked (same inode), and every file is read-only.
    let new = b.store.join("slots").join(&cur);
    let old = b.store.join("slots/factory");
    assert_eq!(
        fs::metadata(new.join("factory-model/w.bin"))
            .expect("ok")
            .ino(),
        fs::metadata(old.join("factory-model/w.bin"))
            .expect("ok")
            .ino()
    );
    let m = fs::metadata(new.join("pten-model/model.onnx")).expect("ok");
    assert_eq!(m.mode() & 0o222, 0, "installed files are read-only");
    assert_eq!(
        *eng.0.calls.lock().expect("ok"),
        ["restart translate", "accept pten 1"]
    );
    assert_eq!(svc.journal().read().expect("ok"), Phase::Idle);
    let st = svc.read_state().expect("ok");
    assert_eq!(st.history.len(), 1);
    assert_eq!(st.history[0].outcome, Outcome::Installed);
    assert!(st.last_update.is_some());
    assert_eq!(st.last_check.expect("ok").outcome, Outcome::Installed);
    // Downloads are gone once in the slot; nothing staged is left behind.
    assert_eq!(
        fs::read_dir(b.state.join("downloads")).expect("ok").count(),
        0
    );
    assert_eq!(b.slots(), [cur.as_str(), "factory"]);
    // The same repository again: nothing to do.
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert_eq!(r.reason, "up to date (pten 1)");
}

#[test]
fn a_new_version_replaces_the_old_models_and_keeps_unchanged_files() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let eng = Shared::default();
    let svc = service(&b, &eng);
    assert_eq!(apply(&svc, &b).outcome, Outcome::Installed);
    let v1 = b.current();
    // v2 drops model pten-model for pten2-model; a second bundle arrives at the same time.
    let mut v2 = bundle("pten", 2);
    let mut m2 = v2.manifest.models[0].clone();
    m2.id = "pten2-model".into();
    for f in &mut m2.files {
        let name = f.path.split_once('/').expect("ok").1.to_owned();
        let bytes = v2.contents.remove(&f.path).expect("ok");
        f.path = format!("pten2-model/{name}");
        v2.contents.insert(f.path.clone(), bytes);
    }
    v2.manifest.models = vec![m2];
    if let valise_bundle::AcceptanceCase::Translate { model, .. } = &mut v2.manifest.acceptance[0] {
        *model = "pten2-model".into();
    }
    v2.manifest.validate().expect("ok");
    b.repo.publish(&[v2, bundle("enpt", 1)]);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    let bundles = b.check_current();
    assert_eq!(bundles.len(), 2, "{bundles:?}");
    assert_eq!(bundles["pten"], 2);
    assert_eq!(bundles["enpt"], 1);
    let slot = b.store.join("slots").join(b.current());
    assert!(!slot.join("pten-model").exists(), "v1's model left with v1");
    assert!(slot.join("pten2-model/model.onnx").is_file());
    assert!(slot.join("factory-model/w.bin").is_file());
    // v1's slot is kept as the previous one.
    assert!(b.slots().contains(&v1));
}

#[test]
fn failed_acceptance_rolls_back_by_itself_and_the_version_is_not_retried() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let eng = Shared::default();
    *eng.0.fail_accept.lock().expect("ok") =
        Some("case bom-dia: got \"Good day.\", expected \"Good morning.\"".into());
    let svc = service(&b, &eng);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(r.reason.contains("bom-dia"), "{}", r.reason);
    assert_eq!(b.current(), "factory");
    assert_eq!(b.check_current().len(), 0);
    assert_eq!(b.slots(), ["factory"], "the refused slot is removed");
    assert_eq!(
        *eng.0.calls.lock().expect("ok"),
        ["restart translate", "accept pten 1", "restart translate"],
        "the engines are restarted on the old slot"
    );
    let st = svc.read_state().expect("ok");
    assert!(st.is_refused("pten", 1));
    assert_eq!(st.history[0].outcome, Outcome::RolledBack);
    assert!(st.history[0].reason.contains("Good day"));
    assert_eq!(st.last_update, None);
    // Acceptance would pass now, but that version is refused for good.
    *eng.0.fail_accept.lock().expect("ok") = None;
    assert_eq!(apply(&svc, &b).outcome, Outcome::UpToDate);
    assert_eq!(b.current(), "factory");
}

#[test]
fn an_engine_that_does_not_come_up_rolls_back() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let eng = Shared::default();
    *eng.0.fail_restart.lock().expect("ok") = Some("valise-translate.service failed".into());
    let svc = service(&b, &eng);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(r.reason.contains("engines did not come up"), "{}", r.reason);
    assert_eq!(b.current(), "factory");
    assert!(
        !eng.0
            .calls
            .lock()
            .expect("ok")
            .iter()
            .any(|c| c.starts_with("accept"))
    );
}

#[test]
fn an_older_or_equal_bundle_version_is_refused() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 2)]);
    let eng = Shared::default();
    let svc = service(&b, &eng);
    assert_eq!(apply(&svc, &b).outcome, Outcome::Installed);
    let cur = b.current();
    // Newer metadata offering an older bundle (a compromised or mistaken publisher).
    b.repo.publish(&[bundle("pten", 1)]);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::UpToDate, "{}", r.reason);
    assert_eq!(b.current(), cur);
    assert_eq!(b.check_current()["pten"], 2);
}

#[test]
fn a_wave_that_does_not_include_the_box_installs_nothing() {
    let mut b = TestBox::new();
    let mut pten = bundle("pten", 1);
    pten.wave = Wave {
        boxes: vec!["paris/box1".into()],
        percent: 0,
    };
    b.repo.publish(&[pten]);
    let svc = service(&b, &Shared::default());
    assert_eq!(apply(&svc, &b).outcome, Outcome::UpToDate);
    assert_eq!(b.current(), "factory");
}

#[test]
fn a_tampered_target_is_refused_and_nothing_is_staged() {
    let mut b = TestBox::new();
    let pten = bundle("pten", 1);
    b.repo.publish(std::slice::from_ref(&pten));
    let name = pten.manifest.file_target("pten-model/model.onnx");
    let bytes = &pten.contents["pten-model/model.onnx"];
    let path = b.repo.target_path(&name, bytes);
    let mut evil = bytes.clone();
    evil[0] ^= 1;
    fs::write(&path, &evil).expect("ok");
    let eng = Shared::default();
    let svc = service(&b, &eng);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("target refused"), "{}", r.reason);
    assert_eq!(r.failure, Some(Failure::Verification), "{}", r.reason);
    assert_eq!(
        r.attempt,
        Some(Attempt {
            bundle: "pten".into(),
            version: 1,
            from_version: None
        })
    );
    assert_eq!(
        svc.read_state().expect("state").last_check.as_ref(),
        Some(&r),
        "recorded with its kind"
    );
    assert_eq!(b.current(), "factory");
    assert_eq!(b.slots(), ["factory"]);
    assert!(eng.0.calls.lock().expect("ok").is_empty());
    // The bundle withdrawn: what was downloaded for it goes at the next check.
    assert!(
        fs::read_dir(b.state.join("downloads"))
            .expect("dir")
            .count()
            > 0
    );
    b.repo.publish(&[]);
    assert_eq!(apply(&svc, &b).outcome, Outcome::UpToDate);
    assert_eq!(
        fs::read_dir(b.state.join("downloads"))
            .expect("dir")
            .count(),
        0
    );
}

#[test]
fn old_slots_are_pruned_to_the_configured_count() {
    let mut b = TestBox::new();
    let eng = Shared::default();
    let mut cfg = b.config();
    cfg.keep_slots = 2;
    let svc = Service::new(cfg, Box::new(eng.clone())).expect("ok");
    let mut made = Vec::new();
    for v in 1..=5 {
        b.repo.publish(&[bundle("pten", v)]);
        // A later clock reading per install: slot names are stamped with it.
        let r = svc.check(
            &Origin::Dir(b.repo.dir.clone()),
            now() + time::Duration::minutes(v as i64),
        );
        assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
        made.push(b.current());
    }
    // The 2 newest (current among them), and the factory slot (not the updater's).
    assert_eq!(b.slots(), [made[3].as_str(), made[4].as_str(), "factory"]);
    assert_eq!(b.check_current()["pten"], 5);
}

#[test]
fn no_download_starts_after_the_checks_deadline_and_the_next_check_installs() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    let eng = Shared::default();
    let mut cfg = b.config();
    cfg.limits.check_deadline_secs = 0;
    let svc = Service::new(cfg, Box::new(eng.clone())).expect("service");
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
    assert!(r.reason.contains("deadline"), "{}", r.reason);
    assert_eq!(r.failure, Some(Failure::Download));
    assert_eq!(b.current(), "factory");
    let calls = eng.0.calls.lock().expect("ok").clone();
    assert!(calls.is_empty(), "{calls:?}");
    let svc = service(&b, &eng);
    let r = apply(&svc, &b);
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    assert_eq!(b.check_current()["pten"], 1);
}
