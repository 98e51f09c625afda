//! The offline spool against a real directory: order, restarts, bounds and torn tails.

use std::fs;
use std::path::Path;

use valise_health::{Class, Spool, SpoolConfig};

const T0: u64 = 1_796_371_200;

fn small() -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 20,
        segment_bytes: 128 << 10,
        fsync: false,
        ..SpoolConfig::default()
    }
}

fn payload(seq_hint: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq_hint as usize * 31 + i) as u8)
        .collect()
}

/// What the segment files really take on disk.
fn files_bytes(dir: &Path) -> u64 {
    ["health", "events"]
        .iter()
        .flat_map(|c| fs::read_dir(dir.join(c)).expect("dir"))
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum()
}

#[test]
fn replays_in_order_across_classes_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("open");
    let mut pushed = Vec::new();
    for i in 0..300u64 {
        let class = if i % 7 == 3 {
            Class::Event
        } else {
            Class::Health
        };
        let p = payload(i, 100 + (i as usize % 900));
        let seq = spool.push(class, T0 + i, &p).expect("push");
        pushed.push((seq, class, p));
    }
    let seqs: Vec<u64> = pushed.iter().map(|p| p.0).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    drop(spool);

    let mut spool = Spool::open(dir.path(), small(), T0 + 300).expect("reopen");
    let got = spool.records(T0 + 300).expect("records");
    let got: Vec<_> = got
        .into_iter()
        .map(|r| (r.seq, r.class, r.payload))
        .collect();
    assert_eq!(got, pushed);

    // Deliver the first 120 one by one through front/ack, as the daemon will.
    for (seq, class, p) in &pushed[..120] {
        let r = spool.front(T0 + 300).expect("front").expect("a record");
        assert_eq!((&r.seq, &r.class, &r.payload), (seq, class, p));
        spool.ack(r.seq).expect("ack");
    }
    drop(spool);
    let mut spool = Spool::open(dir.path(), small(), T0 + 300).expect("reopen");
    assert_eq!(spool.pending(), 180);
    assert_eq!(
        spool.front(T0 + 300).expect("front").map(|r| r.seq),
        Some(121)
    );
    // Numbering continues after the restart.
    assert_eq!(spool.push(Class::Event, T0 + 301, b"x").expect("push"), 301);
    spool.ack(301).expect("ack all");
    assert_eq!(spool.pending(), 0);
    assert!(spool.front(T0 + 302).expect("front").is_none());
    drop(spool);
    let spool = Spool::open(dir.path(), small(), T0 + 302).expect("reopen");
    assert_eq!(spool.pending(), 0);
    // Delivered segments are gone; at most the active one per class stays.
    assert!(
        spool.disk_bytes() <= 2 * (128 << 10),
        "{}",
        spool.disk_bytes()
    );
}

/// A week-long outage: health every 30 s, an event every hour. The spool never passes its
/// bound, keeps every event, and keeps the newest health messages without a gap.
#[test]
fn long_outage_stays_within_bound_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small();
    let mut spool = Spool::open(dir.path(), cfg.clone(), T0).expect("open");
    let (mut health, mut events) = (Vec::new(), Vec::new());
    let health_len = 1500;
    let mut max_seen = 0;
    for i in 0..(7 * 86_400 / 30) {
        let at = T0 + i * 30;
        health.push(
            spool
                .push(Class::Health, at, &payload(i, health_len))
                .expect("push"),
        );
        if i.is_multiple_of(120) {
            events.push(
                spool
                    .push(Class::Event, at, &payload(i, 300))
                    .expect("push"),
            );
        }
        let disk = files_bytes(dir.path());
        assert_eq!(disk, spool.disk_bytes());
        assert!(disk <= cfg.max_bytes, "{disk} > {}", cfg.max_bytes);
        max_seen = max_seen.max(disk);
    }
    let now = T0 + 7 * 86_400;
    let kept = spool.records(now).expect("records");
    // Order kept.
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
    // Every event is still there.
    let kept_events: Vec<u64> = kept
        .iter()
        .filter(|r| r.class == Class::Event)
        .map(|r| r.seq)
        .collect();
    assert_eq!(kept_events, events);
    // Health: the newest ones, with no gap, and as many as the bound allows less one segment.
    let kept_health: Vec<u64> = kept
        .iter()
        .filter(|r| r.class == Class::Health)
        .map(|r| r.seq)
        .collect();
    assert_eq!(kept_health, health[health.len() - kept_health.len()..]);
    let frame = (24 + health_len) as u64;
    let event_bytes: u64 = events.len() as u64 * (24 + 300);
    let floor = (cfg.max_bytes - event_bytes - 2 * cfg.segment_bytes) / frame;
    assert!(
        kept_health.len() as u64 >= floor,
        "kept {} health messages, the bound allows {floor}",
        kept_health.len()
    );
    let stats = spool.stats().clone();
    assert_eq!(stats.dropped_for_space[1], 0, "an event was dropped");
    assert_eq!(
        stats.dropped_for_space[0] as usize + kept_health.len(),
        health.len()
    );
    eprintln!(
        "week outage: {} health + {} events pushed, kept {} health, disk at most {max_seen} of {} bytes",
        health.len(),
        events.len(),
        kept_health.len(),
        cfg.max_bytes
    );
    // The same after a restart.
    drop(spool);
    let mut spool = Spool::open(dir.path(), cfg, now).expect("reopen");
    assert_eq!(spool.records(now).expect("records"), kept);
}

#[test]
fn events_go_only_once_no_health_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small();
    let mut spool = Spool::open(dir.path(), cfg.clone(), T0).expect("open");
    for i in 0..50 {
        spool
            .push(Class::Health, T0, &payload(i, 1000))
            .expect("push");
    }
    let mut events = Vec::new();
    for i in 0..3000 {
        events.push(
            spool
                .push(Class::Event, T0, &payload(i, 1000))
                .expect("push"),
        );
        assert!(files_bytes(dir.path()) <= cfg.max_bytes);
    }
    let kept = spool.records(T0).expect("records");
    assert!(
        kept.iter().all(|r| r.class == Class::Event),
        "health kept over events"
    );
    let kept: Vec<u64> = kept.iter().map(|r| r.seq).collect();
    assert_eq!(kept, events[events.len() - kept.len()..]);
    assert!(kept.len() as u64 >= (cfg.max_bytes - 2 * cfg.segment_bytes) / 1024);
    assert_eq!(spool.stats().dropped_for_space[0], 50);
}

#[test]
fn old_messages_are_not_replayed_and_health_ages_out_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SpoolConfig {
        health_max_age_s: 3600,
        event_max_age_s: 86_400,
        ..small()
    };
    let mut spool = Spool::open(dir.path(), cfg.clone(), T0).expect("open");
    spool.push(Class::Health, T0, b"h0").expect("push");
    spool.push(Class::Event, T0, b"e0").expect("push");
    spool.push(Class::Health, T0 + 3000, b"h1").expect("push");
    let at = |spool: &mut Spool, now| -> Vec<Vec<u8>> {
        spool
            .records(now)
            .expect("records")
            .into_iter()
            .map(|r| r.payload)
            .collect()
    };
    assert_eq!(
        at(&mut spool, T0 + 3600),
        [b"h0".to_vec(), b"e0".into(), b"h1".into()]
    );
    assert_eq!(at(&mut spool, T0 + 3601), [b"e0".to_vec(), b"h1".into()]);
    drop(spool);
    let mut spool = Spool::open(dir.path(), cfg, T0 + 7000).expect("reopen");
    assert_eq!(at(&mut spool, T0 + 7000), [b"e0".to_vec()]);
    // Whole segments past their age are deleted.
    assert!(
        fs::read_dir(dir.path().join("health"))
            .expect("dir")
            .next()
            .is_none()
    );
    assert!(at(&mut spool, T0 + 86_401).is_empty());
    assert_eq!(files_bytes(dir.path()), 0);
}

#[test]
fn a_torn_tail_is_cut_off_and_writing_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("open");
    for i in 0..5 {
        spool
            .push(Class::Event, T0, &payload(i, 200))
            .expect("push");
    }
    drop(spool);
    let seg = fs::read_dir(dir.path().join("events"))
        .expect("dir")
        .next()
        .expect("a segment")
        .expect("entry")
        .path();
    let whole = fs::read(&seg).expect("read");
    let frame = whole.len() / 5;
    for cut in [1, 23, 24, frame - 1] {
        // The fifth record torn at `cut` bytes, as a SIGKILL or a power cut leaves it.
        fs::write(&seg, &whole[..4 * frame + cut]).expect("write");
        let mut spool = Spool::open(dir.path(), small(), T0).expect("reopen");
        assert_eq!(spool.stats().torn_bytes, cut as u64);
        let got = spool.records(T0).expect("records");
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        for r in &got {
            assert_eq!(r.payload, payload(r.seq - 1, 200));
        }
        assert_eq!(fs::metadata(&seg).expect("meta").len(), 4 * frame as u64);
        let seq = spool.push(Class::Event, T0, b"after").expect("push");
        assert_eq!(seq, 5);
        drop(spool);
        let mut spool = Spool::open(dir.path(), small(), T0).expect("reopen");
        assert_eq!(spool.stats().torn_bytes, 0);
        let got = spool.records(T0).expect("records");
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].payload, b"after");
    }
    // A flipped bit in the middle ends the segment there: nothing after it is trusted.
    let mut bad = whole.clone();
    bad[2 * frame + 30] ^= 0x40;
    fs::write(&seg, &bad).expect("write");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("reopen");
    let got = spool.records(T0).expect("records");
    assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn a_damaged_ack_file_means_replaying_again_not_losing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("open");
    for i in 0..3 {
        spool.push(Class::Event, T0, &payload(i, 10)).expect("push");
    }
    spool.ack(1).expect("ack");
    drop(spool);
    let acked = dir.path().join("acked");
    let mut b = fs::read(&acked).expect("read");
    b[0] ^= 1;
    fs::write(&acked, b).expect("write");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("reopen");
    let seqs: Vec<u64> = spool
        .records(T0)
        .expect("r")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn bad_configuration_and_oversized_records_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SpoolConfig {
        max_bytes: 1 << 20,
        segment_bytes: 512 << 10,
        ..SpoolConfig::default()
    };
    assert!(Spool::open(dir.path(), cfg, T0).is_err());
    let mut spool = Spool::open(dir.path(), small(), T0).expect("open");
    assert!(
        spool
            .push(
                Class::Health,
                T0,
                &vec![0; valise_health::spool::MAX_PAYLOAD + 1]
            )
            .is_err()
    );
    assert_eq!(spool.pending(), 0);
}

/// The daemon's path: schema messages go in as JSON, come back in order after a restart, are
/// marked replayed and still validate as their types.
#[test]
fn schema_messages_go_through_the_spool_and_come_back_marked_replayed() {
    use valise_health_schema::{Channel, Spooled};
    let examples =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../valise-health-schema/schema/examples");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), small(), T0).expect("open");
    let mut sent = Vec::new();
    for name in [
        "health-jetson.json",
        "events-update-started.json",
        "events-engine-crashed.json",
    ] {
        let bytes = fs::read(examples.join(name)).expect("example");
        let (class, channel) = if name.starts_with("events") {
            (Class::Event, Channel::Events)
        } else {
            (Class::Health, Channel::Health)
        };
        let msg = Spooled::from_json(channel, &bytes).expect("example parses");
        spool.push(class, T0, &msg.to_json()).expect("push");
        sent.push(msg);
    }
    drop(spool);
    let mut spool = Spool::open(dir.path(), small(), T0).expect("reopen");
    let back: Vec<Spooled> = spool
        .records(T0)
        .expect("records")
        .into_iter()
        .map(|r| {
            let channel = match r.class {
                Class::Health => Channel::Health,
                Class::Event => Channel::Events,
            };
            let mut m = Spooled::from_json(channel, &r.payload).expect("parses back");
            m.mark_replayed();
            m
        })
        .collect();
    assert_eq!(back.len(), sent.len());
    for (mut s, b) in sent.into_iter().zip(back) {
        s.mark_replayed();
        assert_eq!(s, b);
        let json: serde_json::Value = serde_json::from_slice(&b.to_json()).expect("json");
        assert_eq!(json["replayed"], serde_json::Value::Bool(true));
    }
}

#[test]
fn a_second_opener_is_refused_while_the_first_holds_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(dir.path(), small(), T0).expect("open");
    match Spool::open(dir.path(), small(), T0) {
        Err(valise_health::Error::Locked { .. }) => {}
        other => panic!("a second open must be refused: {other:?}"),
    }
    drop(spool);
    Spool::open(dir.path(), small(), T0).expect("free again once the first is dropped");
}

/// `seq` never goes back, even when every record was dropped before a restart: the centre
/// deduplicates by `(box, seq)`, so a reused number would hide a new message.
#[test]
fn seq_keeps_rising_after_everything_was_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = small();
    let mut spool = Spool::open(dir.path(), cfg.clone(), T0).expect("open");
    for i in 0..3 {
        spool
            .push(Class::Health, T0, &payload(i, 10))
            .expect("push");
    }
    spool.ack(1).expect("ack");
    drop(spool);
    // Eight days later every health message is past its age and its segment deleted.
    let later = T0 + 8 * 86_400;
    let spool = Spool::open(dir.path(), cfg.clone(), later).expect("reopen");
    assert_eq!(spool.pending(), 0);
    assert_eq!(files_bytes(dir.path()), 0);
    // And the box restarts again with an empty spool.
    drop(spool);
    let mut spool = Spool::open(dir.path(), cfg.clone(), later).expect("reopen");
    assert_eq!(spool.push(Class::Event, later, b"e").expect("push"), 4);
    drop(spool);
    let spool = Spool::open(dir.path(), cfg, later).expect("reopen");
    assert_eq!(spool.next_seq(), 5);
}
