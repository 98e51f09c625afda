//! Power cut (issue 12 item 11, DESIGN.md §5.5): the updater, a real process, killed by a real
//! SIGKILL at each kill point of download, staging, switching, restarting, acceptance,
//! rolling back, committing and pruning, then started again. After the kill and after the
//! restart, `current` is a whole slot that holds exactly the old bundles or the new ones,
//! never a mix; after the restart nothing is left half-done (no `.tmp-*`, journal idle, one
//! history entry) and nothing needed a person.
//!
//! A small program stands in for systemd and the engines (`engines.test_program`): it logs
//! restarts and fails acceptance for a bundle whose description says so (the `rollback.*`
//! points install such a bundle, B′). SIGKILL keeps the page cache, so the fsync order is
//! reviewed in the code, not proven here.

mod fixture;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use fixture::daemon::Harness;
use valise_update::KILLPOINTS;
use valise_update::history::Outcome;
use valise_update::journal::Phase;

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(start.elapsed() < limit, "the daemon did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn leftovers(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.join("slots"))
        .expect("slots")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    if store.join("current.new").exists() {
        v.push("current.new".into());
    }
    v
}

fn power_cut(point: &str) {
    let rollback = valise_update::killpoint::is_rollback_point(point);
    let h = Harness::new(rollback);
    let before = BTreeMap::new();
    let new: BTreeMap<String, u64> = [("pten".to_owned(), 1)].into();
    let expected = if rollback { &before } else { &new };

    let mut child = h.start(Some(point));
    let answer = h.apply();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(9),
        "{point}: expected death by SIGKILL, got {status} (answer {answer:?}); log:\n{}",
        h.log()
    );
    assert!(
        answer.is_none(),
        "{point}: the request was answered: {answer:?}"
    );
    h.assert_old_or_new(&before, &new);

    // Started again, without the kill point: it finishes by itself.
    let daemon = valise_e2e::KillOnDrop(h.start(None));
    let r = h.apply().expect("answer after restart");
    let st = h.status();
    drop(daemon);

    assert_eq!(h.b.check_current(), *expected, "{point}: {r}\n{}", h.log());
    assert!(
        leftovers(&h.b.store).is_empty(),
        "{point}: {:?}",
        leftovers(&h.b.store)
    );
    let journal = valise_update::journal::Journal::new(&h.b.state);
    assert_eq!(journal.read().expect("journal"), Phase::Idle, "{point}");
    let state = valise_update::history::StateFile::new(&h.b.state)
        .read()
        .expect("state");
    assert_eq!(state.history.len(), 1, "{point}: {:?}", state.history);
    let want = if rollback {
        Outcome::RolledBack
    } else {
        Outcome::Installed
    };
    assert_eq!(state.history[0].outcome, want, "{point}");
    assert_eq!(st["phase"]["phase"], "idle", "{point}: {st}");
    assert_eq!(
        st["installed"],
        serde_json::json!(expected),
        "{point}: {st}"
    );
    // The engines were restarted after the last switch (whatever slot it went to).
    let engines = fs::read_to_string(h.b.tmp.path().join("engines.log")).unwrap_or_default();
    assert!(
        engines.lines().any(|l| l == "restart translate"),
        "{point}: {engines}"
    );
    if rollback {
        assert!(state.is_refused("pten", 1), "{point}");
        assert!(h.b.current() == "factory", "{point}");
    }
}

macro_rules! power_cut_tests {
    ($($test:ident => $point:literal,)*) => {
        $(
            #[test]
            fn $test() {
                power_cut($point);
            }
        )*
        /// A kill point added to `KILLPOINTS` without a test here fails this.
        #[test]
        fn every_killpoint_has_a_test() {
            assert_eq!(&[$($point),*][..], KILLPOINTS);
        }
    };
}

power_cut_tests! {
    download_mid_file => "download.mid_file",
    download_mid_bundle => "download.mid_bundle",
    stage_after_tmp_mkdir => "stage.after_tmp_mkdir",
    stage_mid_links => "stage.mid_links",
    stage_before_manifest => "stage.before_manifest",
    stage_before_complete => "stage.before_complete",
    stage_before_slot_rename => "stage.before_slot_rename",
    switch_after_journal => "switch.after_journal",
    switch_after_symlink_new => "switch.after_symlink_new",
    switch_after_rename => "switch.after_rename",
    restart_after_request => "restart.after_request",
    acceptance_before => "acceptance.before",
    rollback_after_journal => "rollback.after_journal",
    rollback_after_rename => "rollback.after_rename",
    rollback_after_restart => "rollback.after_restart",
    commit_after_history => "commit.after_history",
    commit_before_journal_idle => "commit.before_journal_idle",
    prune_mid => "prune.mid",
}
