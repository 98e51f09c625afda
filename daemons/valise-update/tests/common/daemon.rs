//! The updater as a real process: its configuration, a program standing in for systemd and
//! the engines, requests over its socket with curl.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

const ENGINES: &str = r#"#!/bin/sh
# Stands in for systemd and the engines: restarts are logged, acceptance fails for a bundle
# that says so.
case "$1" in
  restart) shift; echo "restart $*" >> "$(dirname "$0")/engines.log"; exit 0 ;;
  accept) if grep -q 'fails acceptance' "$2/bundle.toml"; then echo "case bom-dia: wrong output"; exit 1; fi; exit 0 ;;
esac
exit 2
"#;

pub struct Harness {
    pub b: TestBox,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl Harness {
    pub fn new(fail_acceptance: bool) -> Self {
        let mut b = TestBox::new();
        let mut pten = bundle("pten", 1);
        if fail_acceptance {
            pten.manifest.bundle.description = "fails acceptance".into();
        }
        b.repo.publish(&[pten]);
        // An old slot of the updater's, beyond keep_slots: the commit prunes it.
        let old = b.store.join("slots/20260101T000000Z-old-1");
        fs::create_dir_all(old.join("x")).expect("mkdir");
        fs::write(old.join("x/f"), b"old").expect("f");
        fs::write(old.join(".complete"), b"").expect("complete");
        let program = b.tmp.path().join("engines.sh");
        fs::write(&program, ENGINES).expect("script");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut cfg = b.config();
        cfg.keep_slots = 1;
        cfg.interval_secs = 86_400;
        cfg.startup_delay_secs = 86_400;
        cfg.random_delay_secs = 0;
        cfg.engines.test_program = Some(program);
        let config = b.tmp.path().join("valise-update.toml");
        fs::write(&config, toml::to_string(&cfg).expect("toml")).expect("config");
        let socket = cfg.socket.clone();
        Harness { b, config, socket }
    }

    pub fn start(&self, killpoint: Option<&str>) -> Child {
        self.start_in(killpoint, None)
    }

    /// Starts the daemon with its clock at `faketime` (`faketime 'DATE' valise-update …`).
    pub fn start_at(&self, faketime: &str) -> Child {
        self.start_in(None, Some(faketime))
    }

    fn start_in(&self, killpoint: Option<&str>, faketime: Option<&str>) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.b.tmp.path().join("daemon.log"))
            .expect("log");
        let bin = env!("CARGO_BIN_EXE_valise-update");
        let mut cmd = match faketime {
            Some(at) => {
                let mut c = Command::new("faketime");
                c.arg(at).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config")
            .arg(&self.config)
            .env_remove("VALISE_UPDATE_KILLPOINT")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(k) = killpoint {
            cmd.env("VALISE_UPDATE_KILLPOINT", k);
        }
        let _ = fs::remove_file(&self.socket);
        let mut child = cmd.spawn().expect("valise-update");
        valise_e2e::wait_for_socket(&mut child, &self.socket, Duration::from_secs(30));
        child
    }

    /// `curl --unix-socket … -X POST /apply`: the check of the repository copy.
    pub fn apply(&self) -> Option<serde_json::Value> {
        let body = serde_json::json!({"dir": self.b.repo.dir}).to_string();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--unix-socket"])
            .arg(&self.socket)
            .args([
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                &body,
            ])
            .arg("http://update/apply")
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn status(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--unix-socket"])
            .arg(&self.socket)
            .arg("http://update/status")
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.b.tmp.path().join("daemon.log")).unwrap_or_default()
    }

    /// `current` is a whole slot holding exactly `before` or `after`.
    pub fn assert_old_or_new(&self, before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) {
        let got = self.b.check_current();
        assert!(
            &got == before || &got == after,
            "current holds {got:?}, neither {before:?} nor {after:?}"
        );
    }
}
