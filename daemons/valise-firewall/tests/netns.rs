//! The rules in a real kernel: network namespaces made by the test (root, `ip`, `nft`), the
//! rendered table loaded into the "box" namespace by the real binary, real TCP connections.
//!
//! ```text
//!   lan (10.77.x.2, fd77:x::2) ──veth── box (10.77.x.1, fd77:x::1) ──veth── central (10.77.y.2, .3)
//!   outsider (10.77.z.2)       ──veth──┘
//! ```
//! Every listener answers before the rules are loaded (so a dropped connection below is the
//! filter, not a missing listener); after, only what the policy allows answers, and the rest
//! is dropped (a timeout, not a reset).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run `ip` (iproute2; scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str, n: u32) -> Self {
        let name = format!("vfw{}-{n}-{tag}", std::process::id() % 100_000);
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    /// Runs `f` on a thread inside this namespace (setns changes only the calling thread).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = File::open(&path).expect("netns file");
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in namespace")
    }

    /// A listener that answers "ok" to every connection, until the namespace goes.
    fn listen(&self, addr: &str) {
        let addr: SocketAddr = addr.parse().unwrap();
        let l = self.run(move || TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr}: {e}")));
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.write_all(b"ok");
            }
        });
    }

    /// Connects from inside this namespace: `Answered`, `Dropped` (no answer within the time)
    /// or `Refused`.
    fn connect(&self, addr: &str) -> Outcome {
        let addr: SocketAddr = addr.parse().unwrap();
        self.run(
            move || match TcpStream::connect_timeout(&addr, Duration::from_millis(700)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = String::new();
                    let _ = s.read_to_string(&mut buf);
                    assert_eq!(buf, "ok", "{addr} answered something else");
                    Outcome::Answered
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    Outcome::Dropped
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Outcome::Refused,
                Err(e) => panic!("{addr}: {e}"),
            },
        )
    }

    fn exec(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Answered,
    Dropped,
    Refused,
}
use Outcome::*;

/// A veth pair between two namespaces with an address (v4 and optionally v6) at each end.
fn wire(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str], n: u32, tag: &str) {
    // Interfaces live in the host namespace until moved: names unique per process too (nextest
    // runs each test in its own process, each counting from 0). At most 15 bytes.
    let id = format!("{}x{n}", std::process::id() % 100_000);
    let (ia, ib) = (format!("{tag}a{id}"), format!("{tag}b{id}"));
    ip(&["link", "add", &ia, "type", "veth", "peer", "name", &ib]);
    ip(&["link", "set", &ia, "netns", &a.0]);
    ip(&["link", "set", &ib, "netns", &b.0]);
    for (ns, dev, addrs) in [(a, &ia, a_addrs), (b, &ib, b_addrs)] {
        for addr in addrs {
            let mut args = vec!["-n", ns.0.as_str(), "addr", "add", addr, "dev", dev];
            if addr.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        }
        ip(&["-n", &ns.0, "link", "set", dev, "up"]);
    }
}

struct Lab {
    boxns: Netns,
    lan: Netns,
    outsider: Netns,
    central: Netns,
    dir: tempfile::TempDir,
}

fn lab() -> Lab {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let boxns = Netns::new("box", n);
    let lan = Netns::new("lan", n);
    let outsider = Netns::new("out", n);
    let central = Netns::new("ctl", n);
    wire(
        &boxns,
        &["10.77.1.1/24", "fd77:1::1/64"],
        &lan,
        &["10.77.1.2/24", "fd77:1::2/64"],
        n,
        "l",
    );
    wire(
        &boxns,
        &["10.77.9.1/24"],
        &outsider,
        &["10.77.9.2/24"],
        n,
        "o",
    );
    wire(
        &boxns,
        &["10.77.2.1/24"],
        &central,
        &["10.77.2.2/24", "10.77.2.3/24"],
        n,
        "c",
    );
    // What the box serves: the portal (443, 80) and two things that must stay private.
    for port in [443, 80, 22, 8080] {
        boxns.listen(&format!("[::]:{port}")); // dual-stack: IPv4 too
    }
    // A LAN host's service the box has no business opening.
    lan.listen("10.77.1.2:9000");
    // The central site: repository, broker, a resolver (TCP 53), and things not to reach.
    for port in [443, 8883, 53, 22] {
        central.listen(&format!("0.0.0.0:{port}"));
    }
    let dir = tempfile::tempdir().unwrap();
    Lab {
        boxns,
        lan,
        outsider,
        central,
        dir,
    }
}

fn write_config(dir: &Path, repository: &str) {
    std::fs::write(
        dir.join("portal.toml"),
        "addr = \"0.0.0.0:443\"\nredirect_addr = \"0.0.0.0:80\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("endpoints.toml"),
        format!("repository = \"{repository}\"\nbroker = \"mqtts://10.77.2.2:8883\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("firewall.toml"),
        format!(
            "lan = [\"10.77.1.0/24\", \"fd77:1::/64\"]\ndns = [\"10.77.2.2\"]\n\
             portal_config = \"{d}/portal.toml\"\nendpoints = \"{d}/endpoints.toml\"\n\
             state = \"{d}/resolved.json\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

fn apply(lab: &Lab, extra: &[&str]) {
    let cfg = lab.dir.path().join("firewall.toml");
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("apply");
    let out = lab.boxns.exec(env!("CARGO_BIN_EXE_valise-firewall"), &args);
    assert!(
        out.status.success(),
        "apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (from, to, expected after the rules).
fn matrix(lab: &Lab) -> Vec<(&Netns, &'static str, Outcome)> {
    vec![
        // in: the portal from the LAN, both families, and nothing else
        (&lab.lan, "10.77.1.1:443", Answered),
        (&lab.lan, "10.77.1.1:80", Answered),
        (&lab.lan, "[fd77:1::1]:443", Answered),
        (&lab.lan, "10.77.1.1:22", Dropped),
        (&lab.lan, "10.77.1.1:8080", Dropped),
        (&lab.lan, "[fd77:1::1]:22", Dropped),
        // not from outside the LAN ranges, not even the portal
        (&lab.outsider, "10.77.9.1:443", Dropped),
        (&lab.central, "10.77.2.1:443", Dropped),
        // out: the repository, the broker and the resolver; nothing else
        (&lab.boxns, "10.77.2.2:443", Answered),
        (&lab.boxns, "10.77.2.2:8883", Answered),
        (&lab.boxns, "10.77.2.2:53", Answered),
        (&lab.boxns, "10.77.2.2:22", Dropped),
        (&lab.boxns, "10.77.2.3:443", Dropped),
        (&lab.boxns, "10.77.2.3:53", Dropped),
        (&lab.boxns, "10.77.1.2:9000", Dropped),
        // nothing listens there (refused before the rules); after, the SYN never leaves
        (&lab.boxns, "10.77.9.2:443", Dropped),
    ]
}

fn need_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests make network namespaces: run them as root (CI does)"
    );
}

#[test]
fn only_the_portal_answers_from_the_lan_and_only_central_services_are_reachable() {
    need_root();
    let lab = lab();
    write_config(lab.dir.path(), "https://10.77.2.2/valise");
    // Before: everything listening answers (the outsider's port has no listener: refused).
    for (from, to, _) in matrix(&lab) {
        let got = from.connect(to);
        let expect = if to == "10.77.9.2:443" {
            Refused
        } else {
            Answered
        };
        assert_eq!(got, expect, "before the rules: {} -> {to}", from.0);
    }
    apply(&lab, &[]);
    for (from, to, want) in matrix(&lab) {
        assert_eq!(from.connect(to), want, "{} -> {to}", from.0);
    }
    // The portal's established connections keep working both ways (replies go out).
    assert_eq!(lab.lan.connect("10.77.1.1:443"), Answered);
    // The table is ours alone and replaced, not appended to, on a second apply.
    apply(&lab, &[]);
    let out = lab.boxns.exec("nft", &["list", "ruleset"]);
    let rules = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rules.matches("table inet valise").count(), 1, "{rules}");
    assert_eq!(rules.matches("policy drop").count(), 3, "{rules}");
}

#[test]
fn at_boot_without_a_resolver_the_last_resolved_addresses_are_used() {
    need_root();
    let lab = lab();
    write_config(lab.dir.path(), "https://repo.valise.test/valise");
    // What the last online run resolved (the name does not resolve here at all).
    std::fs::write(
        lab.dir.path().join("resolved.json"),
        r#"[{"dest":{"name":"update","host":"repo.valise.test","port":443},"addrs":["10.77.2.2"]}]"#,
    )
    .unwrap();
    apply(&lab, &["--offline"]);
    assert_eq!(lab.boxns.connect("10.77.2.2:443"), Answered);
    assert_eq!(lab.boxns.connect("10.77.2.2:8883"), Answered);
    assert_eq!(lab.boxns.connect("10.77.2.3:443"), Dropped);
    // Without that cache, the unresolvable repository gets no opening at all.
    std::fs::remove_file(lab.dir.path().join("resolved.json")).unwrap();
    apply(&lab, &[]);
    assert_eq!(lab.boxns.connect("10.77.2.2:443"), Dropped);
    assert_eq!(lab.boxns.connect("10.77.2.2:8883"), Answered);
    assert_eq!(lab.lan.connect("10.77.1.1:443"), Answered);
}

#[test]
fn a_ruleset_nft_refuses_leaves_the_previous_rules_in_place() {
    need_root();
    let lab = lab();
    write_config(lab.dir.path(), "https://10.77.2.2/valise");
    apply(&lab, &[]);
    // nft refusing the new ruleset (here: an nft that refuses everything).
    let cfg = lab.dir.path().join("firewall.toml");
    let out = lab.boxns.exec(
        env!("CARGO_BIN_EXE_valise-firewall"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "apply",
            "--nft",
            "/bin/false",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the previous rules stay"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lab.lan.connect("10.77.1.1:22"), Dropped);
    assert_eq!(lab.lan.connect("10.77.1.1:443"), Answered);
    // A configuration without a LAN is refused with a clear message and changes nothing.
    std::fs::write(&cfg, "lan = []\n").unwrap();
    let out = lab.boxns.exec(
        env!("CARGO_BIN_EXE_valise-firewall"),
        &["--config", cfg.to_str().unwrap(), "apply"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`lan` is empty"));
    assert_eq!(lab.lan.connect("10.77.1.1:22"), Dropped);
}
