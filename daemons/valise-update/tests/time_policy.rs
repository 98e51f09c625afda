//! The time policy for posts offline for weeks and clocks that drift (issue 12 item 7,
//! DESIGN.md §3.4), through the updater with explicit clock readings: no freeze opening when
//! the clock goes back, metadata never go backwards (online or from a USB copy), an expired
//! trusted root does not brick a box that was offline, and the installed models keep serving
//! whatever the metadata do.

mod fixture;

use fixture::*;
use valise_update::Service;
use valise_update::history::{Failure, Outcome};
use valise_update::source::Origin;

fn service(b: &TestBox) -> Service {
    Service::new(b.config(), Box::new(OkEngines)).expect("service")
}

fn at(svc: &Service, b: &TestBox, t: time::OffsetDateTime) -> valise_update::history::CheckRecord {
    svc.check(&Origin::Dir(b.repo.dir.clone()), t)
}

#[test]
fn expired_metadata_install_nothing_and_the_installed_models_keep_serving() {
    let mut b = TestBox::new();
    b.repo
        .publish_with(&[bundle("pten", 1)], &rfc3339(now() + days(1)));
    let svc = service(&b);
    assert_eq!(at(&svc, &b, now()).outcome, Outcome::Installed);
    let slot = b.current();
    // A month offline; the copy it finally sees was never refreshed centrally.
    b.repo
        .publish_with(&[bundle("pten", 2)], &rfc3339(now() + days(1)));
    let r = at(&svc, &b, now() + days(30));
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("expired"), "{}", r.reason);
    assert_eq!(r.failure, Some(Failure::ExpiredMetadata));
    assert_eq!(r.attempt, None, "no bundle was chosen");
    assert_eq!(b.current(), slot, "nothing switched");
    assert_eq!(b.check_current()["pten"], 1, "v1 still whole");
}

#[test]
fn a_clock_set_back_opens_no_freeze_window() {
    let mut b = TestBox::new();
    b.repo.publish_at(
        &[bundle("pten", 1)],
        &rfc3339(now() + days(30)),
        now() + days(20),
    );
    let svc = service(&b);
    let r = at(&svc, &b, now() + days(20));
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    let floor = svc.floor().read().expect("floor");
    assert_eq!(floor, now() + days(20), "raised by the successful check");
    // Metadata valid until day 15 only, a new bundle in them, and the box's clock reset to
    // day 0 (dead RTC or an attacker's NTP): at the floor (day 20) they are expired.
    b.repo.publish_at(
        &[bundle("pten", 2)],
        &rfc3339(now() + days(15)),
        now() + days(21),
    );
    let r = at(&svc, &b, now());
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("clock is behind"), "{}", r.reason);
    assert_eq!(b.check_current()["pten"], 1);
    assert_eq!(
        svc.clock_state(now()),
        Some(valise_tuf::time::ClockState::BehindFloor)
    );
    assert_eq!(svc.floor().read().expect("floor"), floor, "never lowered");
}

#[test]
fn a_clock_far_ahead_fails_without_raising_the_floor_and_correcting_it_recovers() {
    let mut b = TestBox::new();
    b.repo
        .publish_with(&[bundle("pten", 1)], &rfc3339(now() + days(1)));
    let svc = service(&b);
    let before = svc.floor().read().expect("floor");
    let r = at(&svc, &b, now() + days(400));
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("clock ahead"), "{}", r.reason);
    assert_eq!(svc.floor().read().expect("floor"), before);
    assert_eq!(b.current(), "factory");
    let r = at(&svc, &b, now());
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
}

#[test]
fn metadata_never_go_backwards_between_online_and_usb() {
    let mut b = TestBox::new();
    b.repo.publish(&[bundle("pten", 1)]);
    b.repo.publish(&[bundle("pten", 1)]);
    b.repo.publish(&[bundle("pten", 2)]);
    let svc = service(&b);
    assert_eq!(at(&svc, &b, now()).outcome, Outcome::Installed);
    assert_eq!(b.check_current()["pten"], 2);
    // An older export (versions 1..2) on a stick, with a bundle v3 an attacker slipped in
    // by replaying it: refused as a rollback of the timestamp, nothing installed.
    let old = b.tmp.path().join("old-usb");
    let mut copy = Repo::new(&old);
    copy.publish(&[bundle("pten", 3)]);
    copy.publish(&[bundle("pten", 3)]);
    let r = svc.check(&Origin::Dir(old), now());
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.contains("version"), "{}", r.reason);
    assert_eq!(r.failure, Some(Failure::Verification));
    assert_eq!(b.check_current()["pten"], 2);
}

#[test]
fn weeks_offline_with_an_expired_trusted_root_follow_the_root_chain_from_usb() {
    // The image's root expired on day 10; the box comes back on day 60 with a USB export
    // carrying root v2 and v3 and a 60-day timestamp.
    let mut b = TestBox::with_root_expiry(&rfc3339(now() + days(10)));
    b.repo.rotate_root(&rfc3339(now() + days(40)));
    b.repo.rotate_root(tuf_future());
    b.repo
        .publish_with(&[bundle("pten", 1)], &rfc3339(now() + days(90)));
    let svc = service(&b);
    let r = at(&svc, &b, now() + days(60));
    assert_eq!(r.outcome, Outcome::Installed, "{}", r.reason);
    let root: serde_json::Value =
        serde_json::from_slice(&svc.metadata().read("root").expect("read").expect("root"))
            .expect("json");
    assert_eq!(root["signed"]["version"], 3);
}

fn tuf_future() -> &'static str {
    fixture::tuf::FUTURE
}
