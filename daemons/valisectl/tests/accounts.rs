//! `valisectl user ...` and `valisectl token ...` on a real portal database in a temporary
//! data directory: weak passwords refused, tokens created with expiry and scope, listed,
//! revoked.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use valise_portal::{Db, accounts};

fn valisectl(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_valisectl"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn weak_passwords_are_refused_for_new_users_and_new_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for weak in ["aaaaaaaaaaaa\n", "password1234\n", "amelie123456\n"] {
        let o = valisectl(d, &["user", "add", "amelie", "--password-stdin"], weak);
        assert!(!o.status.success(), "{weak}: {}", text(&o));
        assert!(text(&o).contains("too easy to guess"), "{}", text(&o));
    }
    let o = valisectl(
        d,
        &["user", "add", "amelie", "--password-stdin"],
        "violet tram under the bridge\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = valisectl(
        d,
        &["user", "passwd", "amelie", "--password-stdin"],
        "password1234\n",
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn tokens_are_created_with_expiry_and_scope_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = "violet tram under the bridge\n";
    assert!(
        valisectl(
            d,
            &["user", "add", "root", "--admin", "--password-stdin"],
            pw
        )
        .status
        .success()
    );
    assert!(
        valisectl(d, &["user", "add", "bruno", "--password-stdin"], pw)
            .status
            .success()
    );

    let o = valisectl(
        d,
        &[
            "token",
            "add",
            "root",
            "--label",
            "backup script",
            "--expires-days",
            "30",
            "--admin",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let admin_token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let o = valisectl(d, &["token", "add", "root"], "");
    let plain_token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let o = valisectl(d, &["token", "add", "bruno", "--admin"], "");
    assert!(
        !o.status.success(),
        "no admin scope for staff: {}",
        text(&o)
    );

    let db = Db::open(&d.join("portal.db")).unwrap();
    let user = |t: &str| db.with(|c| accounts::api_token_user(c, t)).unwrap();
    assert!(user(&admin_token).unwrap().admin);
    assert!(
        !user(&plain_token).unwrap().admin,
        "an admin's token without the scope"
    );

    let o = valisectl(d, &["token", "list"], "");
    let listing = text(&o);
    assert!(o.status.success(), "{listing}");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    let scoped = lines.iter().find(|l| l.contains("backup script")).unwrap();
    let cols: Vec<&str> = scoped.split('\t').collect();
    assert_eq!(cols[1..3], ["root", "admin"], "{scoped}");
    assert_ne!(cols[4], "-", "expiry shown: {scoped}");
    assert!(!listing.contains(&admin_token), "tokens are never listed");
    let o = valisectl(d, &["token", "list", "bruno"], "");
    assert_eq!(text(&o).lines().count(), 1, "{}", text(&o));

    let o = valisectl(d, &["token", "revoke", cols[0]], "");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(user(&admin_token), None, "revoked");
    assert!(user(&plain_token).is_some());
    assert!(
        !valisectl(d, &["token", "revoke", "9999"], "")
            .status
            .success()
    );
}
