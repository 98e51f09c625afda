//! The polkit rule beside the units (`systemd/50-valise-update.rules`), run in a real
//! JavaScript engine (node; polkit runs rules in its own, with the same `polkit.addRule`
//! interface): user `valise-update` may restart the two engine units and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// polkit's rule API, enough to evaluate one rule file: `addRule`, `Result`, an action with
/// `id` and `lookup`, a subject with `user`. Prints one verdict per case.
const HARNESS: &str = r#"
const fs = require("fs");
const rules = [];
const polkit = {
  Result: { NO: "no", YES: "yes", AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep",
            AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep",
            NOT_HANDLED: null },
  addRule(f) { rules.push(f); },
  addAdminRule(f) {},
  log(m) {},
};
new Function("polkit", fs.readFileSync(process.argv[1], "utf8"))(polkit);
const cases = JSON.parse(process.argv[2]);
const out = cases.map(([user, id, verb, unit]) => {
  const action = { id, lookup: (k) => ({ verb, unit })[k] };
  const subject = { user };
  for (const r of rules) {
    const v = r(action, subject);
    if (v !== undefined && v !== null) return v;
  }
  return "not_handled";
});
console.log(JSON.stringify(out));
"#;

fn verdicts(cases: &[[&str; 4]]) -> Vec<String> {
    let rules = valise_e2e::repo().join("systemd/50-valise-update.rules");
    let out = Command::new("node")
        .arg("-e")
        .arg(HARNESS)
        .arg(&rules)
        .arg(serde_json::to_string(cases).unwrap())
        .output()
        .expect("node: scripts/install-deps installs it (npm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const MANAGE: &str = "org.freedesktop.systemd1.manage-units";

#[test]
fn valise_update_may_restart_the_two_engines_and_nothing_else() {
    let cases = [
        [
            "valise-update",
            MANAGE,
            "restart",
            "valise-transcribe.service",
        ],
        [
            "valise-update",
            MANAGE,
            "restart",
            "valise-translate.service",
        ],
        // other verbs on the engines
        ["valise-update", MANAGE, "stop", "valise-transcribe.service"],
        ["valise-update", MANAGE, "start", "valise-translate.service"],
        ["valise-update", MANAGE, "kill", "valise-translate.service"],
        // other units
        ["valise-update", MANAGE, "restart", "valise-portal.service"],
        ["valise-update", MANAGE, "restart", "ssh.service"],
        [
            "valise-update",
            MANAGE,
            "restart",
            "valise-transcribe.service.d",
        ],
        // other systemd actions
        [
            "valise-update",
            "org.freedesktop.systemd1.manage-unit-files",
            "",
            "",
        ],
        [
            "valise-update",
            "org.freedesktop.systemd1.set-environment",
            "",
            "",
        ],
        // other users: polkit's defaults, untouched
        [
            "valise-portal",
            MANAGE,
            "restart",
            "valise-transcribe.service",
        ],
        ["root", MANAGE, "restart", "ssh.service"],
        // other actions of valise-update: not this rule's business
        ["valise-update", "org.freedesktop.login1.reboot", "", ""],
    ];
    let v = verdicts(&cases);
    let expected = [
        "yes",
        "yes",
        "no",
        "no",
        "no",
        "no",
        "no",
        "no",
        "no",
        "no",
        "not_handled",
        "not_handled",
        "not_handled",
    ];
    for ((c, got), want) in cases.iter().zip(&v).zip(expected) {
        assert_eq!(got, want, "{c:?}");
    }
}
