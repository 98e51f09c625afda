//! The offline spool: health and event messages wait here, on disk, while the broker cannot be
//! reached, and are replayed in order when it comes back.
//!
//! ```text
//!  <dir>/health/00000000000000000001.seg   segments of one class, named by their first seq
//!  <dir>/health/00000000000000000412.seg   (append-only; the last one is the active one)
//!  <dir>/events/00000000000000000007.seg
//!  <dir>/acked                             highest seq delivered, highest seq handed out
//!                                          (2 × u64 LE + CRC-32)
//!  <dir>/lock                              flock: one process at a time
//!
//!  record = len:u32 LE | crc32:u32 LE | seq:u64 LE | at:u64 LE | payload[len]
//!           crc32 covers seq, at and payload
//! ```
//!
//! - **Order.** Every record gets the next `seq`, shared by both classes and rising across
//!   restarts; [`Spool::front`] and [`Spool::records`] give the pending records in `seq` order.
//!   The caller publishes, then [`Spool::ack`]s: delivery is at least once (a crash between
//!   publish and ack sends that record again; the centre deduplicates by `(box, seq)`).
//! - **Bounds.** The segment files together never exceed [`SpoolConfig::max_bytes`]. To make
//!   room, whole segments are dropped, oldest first: health segments while there are any,
//!   event segments only then, so events are kept longest. Records older than their class's
//!   maximum age ([`SpoolConfig::health_max_age_s`], [`SpoolConfig::event_max_age_s`]) are
//!   never replayed, and a segment whose newest record is that old is deleted.
//!   Dropping by whole segments loses at most one segment more than strictly needed; within
//!   each class, what is kept is always the newest records, with no gap.
//! - **Crashes.** A record is written with one `write` at the end of the active segment; on
//!   open each segment is read frame by frame and the first frame that is short or fails its
//!   CRC ends it: a torn tail (SIGKILL or power cut mid-write) is cut off (the last segment
//!   is truncated to its last whole record, so new records follow whole ones).
//! - **fsync policy.** With [`SpoolConfig::fsync`] (the default) a record's data is synced
//!   (`fdatasync`) before [`Spool::push`] returns, so a message the daemon has spooled survives
//!   a power cut; the directory is synced after a segment is created or deleted and after the
//!   `acked` file is replaced (write to a temporary file, sync, rename, sync the directory).
//!   Without it, records survive a crash of the process (the page cache is the kernel's) but
//!   the newest may be lost to a power cut; a torn tail is still cut off cleanly.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result, io};

const HEADER: usize = 24;
const ACKED: &str = "acked";
const LOCK: &str = "lock";

/// Longest payload accepted: a health message is about 2 KiB.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The two kinds of spooled message; they differ in how long they are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Health,
    Event,
}

impl Class {
    const ALL: [Class; 2] = [Class::Health, Class::Event];

    fn dir_name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Event => "events",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Health => 0,
            Self::Event => 1,
        }
    }
}

/// Bounds and durability of the spool (`[spool]` in `/etc/valise/valise-health.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Most bytes all segment files may take together. Default 64 MiB.
    pub max_bytes: u64,
    /// A segment is closed when the next record would take it past this. Default 1 MiB; at
    /// most a quarter of `max_bytes` (it is the granularity of dropping).
    pub segment_bytes: u64,
    /// Health messages older than this are not replayed. Default 7 days.
    pub health_max_age_s: u64,
    /// Events older than this are not replayed. Default 30 days.
    pub event_max_age_s: u64,
    /// Sync each record before `push` returns. Default true.
    pub fsync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            segment_bytes: 1 << 20,
            health_max_age_s: 7 * 86_400,
            event_max_age_s: 30 * 86_400,
            fsync: true,
        }
    }
}

impl SpoolConfig {
    pub fn check(&self) -> Result<()> {
        if self.segment_bytes < (HEADER + MAX_PAYLOAD) as u64 {
            return Err(Error::Config("segment_bytes must hold the largest record"));
        }
        if self.segment_bytes.saturating_mul(4) > self.max_bytes {
            return Err(Error::Config(
                "segment_bytes must be at most a quarter of max_bytes",
            ));
        }
        Ok(())
    }

    fn max_age(&self, class: Class) -> u64 {
        match class {
            Class::Health => self.health_max_age_s,
            Class::Event => self.event_max_age_s,
        }
    }
}

/// One spooled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub class: Class,
    /// Unix seconds, as given to [`Spool::push`].
    pub at: u64,
    pub payload: Vec<u8>,
}

/// What the spool did, for the daemon's log and its tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes after the last whole record of a segment, cut off at open (torn writes).
    pub torn_bytes: u64,
    /// Records dropped to keep within `max_bytes`, per class (health, events).
    pub dropped_for_space: [u64; 2],
    /// Records dropped for age, per class (health, events).
    pub dropped_for_age: [u64; 2],
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at: u64,
    offset: u64,
    len: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Bytes of whole records (the file's length once a torn tail is cut off).
    len: u64,
    /// Records not yet acknowledged nor expired, oldest first.
    entries: VecDeque<Entry>,
    newest_at: u64,
}

#[derive(Debug, Default)]
struct ClassState {
    segments: VecDeque<Segment>,
    /// Open for appending: the last segment, when it may still grow.
    active: Option<File>,
}

/// The spool directory, opened. One process at a time: [`Spool::open`] takes an exclusive
/// `flock` on `<dir>/lock`, held until the spool is dropped (or the process dies).
#[derive(Debug)]
pub struct Spool {
    _lock: Flock<File>,
    dir: PathBuf,
    cfg: SpoolConfig,
    classes: [ClassState; 2],
    next_seq: u64,
    acked: u64,
    stats: SpoolStats,
}

fn crc(seq: u64, at: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&at.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

/// Reads the whole records at the start of `bytes`: `(entries, valid length)`.
fn scan(bytes: &[u8]) -> (Vec<Entry>, u64) {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= HEADER {
        let h = &bytes[pos..pos + HEADER];
        let word = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(&h[r]);
            u64::from_le_bytes(b)
        };
        let len = word(0..4) as usize;
        let sum = word(4..8) as u32;
        let (seq, at) = (word(8..16), word(16..24));
        if len > MAX_PAYLOAD || bytes.len() - pos - HEADER < len {
            break;
        }
        let payload = &bytes[pos + HEADER..pos + HEADER + len];
        if crc(seq, at, payload) != sum {
            break;
        }
        entries.push(Entry {
            seq,
            at,
            offset: pos as u64,
            len: len as u32,
        });
        pos += HEADER + len;
    }
    (entries, pos as u64)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, cutting off torn tails and applying the bounds
    /// as of `now` (Unix seconds).
    pub fn open(dir: impl Into<PathBuf>, cfg: SpoolConfig, now: u64) -> Result<Self> {
        cfg.check()?;
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock_path = dir.join(LOCK);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::Locked { path: dir });
            }
            Err((_, errno)) => return Err(io(&lock_path)(errno.into())),
        };
        let (acked, high) = read_state(&dir.join(ACKED));
        let mut spool = Self {
            _lock: lock,
            acked,
            dir,
            cfg,
            classes: Default::default(),
            next_seq: 1,
            stats: SpoolStats::default(),
        };
        let mut max_seq = acked.max(high);
        for class in Class::ALL {
            let cdir = spool.dir.join(class.dir_name());
            fs::create_dir_all(&cdir).map_err(io(&cdir))?;
            let mut names: Vec<(u64, PathBuf)> = fs::read_dir(&cdir)
                .map_err(io(&cdir))?
                .filter_map(|e| {
                    let path = e.ok()?.path();
                    let first = path
                        .file_name()?
                        .to_str()?
                        .strip_suffix(".seg")?
                        .parse()
                        .ok()?;
                    Some((first, path))
                })
                .collect();
            names.sort();
            let count = names.len();
            for (i, (_, path)) in names.into_iter().enumerate() {
                let bytes = fs::read(&path).map_err(io(&path))?;
                let (entries, valid) = scan(&bytes);
                let torn = bytes.len() as u64 - valid;
                if torn > 0 {
                    spool.stats.torn_bytes += torn;
                    if i + 1 == count {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io(&path))?;
                        f.set_len(valid).map_err(io(&path))?;
                        f.sync_all().map_err(io(&path))?;
                    }
                }
                max_seq = max_seq.max(entries.last().map_or(0, |e| e.seq));
                let seg = Segment {
                    path,
                    // A damaged segment before the last keeps its bytes on disk: count them.
                    len: if i + 1 == count {
                        valid
                    } else {
                        bytes.len() as u64
                    },
                    newest_at: entries.iter().map(|e| e.at).max().unwrap_or(0),
                    entries: entries
                        .into_iter()
                        .filter(|e| e.seq > spool.acked)
                        .collect(),
                };
                spool.classes[class.index()].segments.push_back(seg);
            }
            // Appending resumes at the end of the last segment, if it has room.
            let state = &mut spool.classes[class.index()];
            if let Some(last) = state.segments.back()
                && last.len + (HEADER + MAX_PAYLOAD) as u64 <= spool.cfg.segment_bytes
            {
                let f = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(io(&last.path))?;
                state.active = Some(f);
            }
        }
        spool.next_seq = max_seq + 1;
        spool.remove_spent_segments()?;
        spool.expire(now)?;
        spool.make_room(0)?;
        Ok(spool)
    }

    /// Spools one message, returning its `seq`. `at` is the message's time (Unix seconds),
    /// used for the age bound. With `fsync`, the record is on disk when this returns.
    pub fn push(&mut self, class: Class, at: u64, payload: &[u8]) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let frame_len = (HEADER + payload.len()) as u64;
        self.make_room(frame_len)?;
        let seq = self.next_seq;
        let mut frame = Vec::with_capacity(frame_len as usize);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc(seq, at, payload).to_le_bytes());
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(&at.to_le_bytes());
        frame.extend_from_slice(payload);

        let segment_bytes = self.cfg.segment_bytes;
        let fsync = self.cfg.fsync;
        let cdir = self.dir.join(class.dir_name());
        let state = &mut self.classes[class.index()];
        let full = state
            .segments
            .back()
            .is_none_or(|s| s.len + frame_len > segment_bytes);
        if state.active.is_none() || full {
            let path = cdir.join(format!("{seq:020}.seg"));
            let f = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            if fsync {
                sync_dir(&cdir)?;
            }
            state.active = Some(f);
            state.segments.push_back(Segment {
                path,
                len: 0,
                entries: VecDeque::new(),
                newest_at: 0,
            });
        }
        let (Some(file), Some(seg)) = (state.active.as_mut(), state.segments.back_mut()) else {
            unreachable!("an active segment was just ensured");
        };
        let written = file
            .write_all(&frame)
            .and_then(|()| if fsync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Leave no partial frame behind for the next record to follow.
            let _ = file.set_len(seg.len);
            return Err(Error::Io {
                path: seg.path.clone(),
                source: e,
            });
        }
        seg.entries.push_back(Entry {
            seq,
            at,
            offset: seg.len,
            len: payload.len() as u32,
        });
        seg.len += frame_len;
        seg.newest_at = seg.newest_at.max(at);
        self.next_seq += 1;
        Ok(seq)
    }

    /// The oldest pending record (lowest `seq`), not yet acknowledged; records past their
    /// age as of `now` are dropped first.
    pub fn front(&mut self, now: u64) -> Result<Option<Record>> {
        self.expire(now)?;
        loop {
            let Some(class) = self.front_class() else {
                return Ok(None);
            };
            let state = &mut self.classes[class.index()];
            let Some(seg) = state.segments.iter_mut().find(|s| !s.entries.is_empty()) else {
                return Ok(None);
            };
            let Some(e) = seg.entries.front() else {
                return Ok(None);
            };
            let mut buf = vec![0u8; e.len as usize];
            let f = File::open(&seg.path).map_err(io(&seg.path))?;
            f.read_exact_at(&mut buf, e.offset + HEADER as u64)
                .map_err(io(&seg.path))?;
            let mut h = [0u8; 4];
            f.read_exact_at(&mut h, e.offset + 4)
                .map_err(io(&seg.path))?;
            if crc(e.seq, e.at, &buf) != u32::from_le_bytes(h) {
                // Rotted on disk since it was opened: skip it rather than send garbage.
                seg.entries.pop_front();
                continue;
            }
            return Ok(Some(Record {
                seq: e.seq,
                class,
                at: e.at,
                payload: buf,
            }));
        }
    }

    /// Every pending record, in `seq` order, read at once (up to `max_bytes` in memory: for
    /// tests and tools; the daemon replays one record at a time with [`Spool::front`] and
    /// [`Spool::ack`]).
    pub fn records(&mut self, now: u64) -> Result<Vec<Record>> {
        self.expire(now)?;
        let mut all = Vec::new();
        for class in Class::ALL {
            for seg in &self.classes[class.index()].segments {
                if seg.entries.is_empty() {
                    continue;
                }
                let bytes = fs::read(&seg.path).map_err(io(&seg.path))?;
                for e in &seg.entries {
                    let start = e.offset as usize + HEADER;
                    let Some(payload) = bytes.get(start..start + e.len as usize) else {
                        continue;
                    };
                    all.push(Record {
                        seq: e.seq,
                        class,
                        at: e.at,
                        payload: payload.to_vec(),
                    });
                }
            }
        }
        all.sort_by_key(|r| r.seq);
        Ok(all)
    }

    /// Marks every record up to `seq` delivered: they are not replayed again, even after a
    /// restart, and segments holding only delivered records are deleted.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if seq <= self.acked {
            return Ok(());
        }
        self.acked = seq.min(self.next_seq.saturating_sub(1));
        self.write_state()?;
        let acked = self.acked;
        for state in &mut self.classes {
            for seg in &mut state.segments {
                while seg.entries.front().is_some_and(|e| e.seq <= acked) {
                    seg.entries.pop_front();
                }
            }
        }
        self.remove_spent_segments()
    }

    /// Records waiting to be sent.
    pub fn pending(&self) -> usize {
        self.classes
            .iter()
            .flat_map(|c| &c.segments)
            .map(|s| s.entries.len())
            .sum()
    }

    /// Bytes the segment files take (never more than `max_bytes`).
    pub fn disk_bytes(&self) -> u64 {
        self.classes
            .iter()
            .flat_map(|c| &c.segments)
            .map(|s| s.len)
            .sum()
    }

    /// The `seq` the next [`Spool::push`] will return.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn front_class(&self) -> Option<Class> {
        Class::ALL
            .into_iter()
            .filter_map(|c| {
                let seq = self.classes[c.index()]
                    .segments
                    .iter()
                    .find_map(|s| s.entries.front())?
                    .seq;
                Some((seq, c))
            })
            .min_by_key(|(seq, _)| *seq)
            .map(|(_, c)| c)
    }

    /// Drops records past their class's age; deletes segments whose newest record is.
    fn expire(&mut self, now: u64) -> Result<()> {
        for class in Class::ALL {
            let max_age = self.cfg.max_age(class);
            let old = |at: u64| at.saturating_add(max_age) < now;
            for seg in &mut self.classes[class.index()].segments {
                while seg.entries.front().is_some_and(|e| old(e.at)) {
                    seg.entries.pop_front();
                    self.stats.dropped_for_age[class.index()] += 1;
                }
            }
            while self.classes[class.index()]
                .segments
                .front()
                .is_some_and(|seg| seg.len > 0 && old(seg.newest_at))
            {
                self.drop_front(class, false)?;
            }
        }
        Ok(())
    }

    /// Deletes segments (other than the one being appended to) that hold nothing pending.
    fn remove_spent_segments(&mut self) -> Result<()> {
        for class in Class::ALL {
            loop {
                let state = &self.classes[class.index()];
                let Some(seg) = state.segments.front() else {
                    break;
                };
                let is_active = state.segments.len() == 1 && state.active.is_some();
                if !seg.entries.is_empty() || (is_active && seg.len > 0) {
                    break;
                }
                self.drop_front(class, false)?;
            }
        }
        Ok(())
    }

    /// Drops whole segments until `extra` more bytes fit in `max_bytes`: health first.
    fn make_room(&mut self, extra: u64) -> Result<()> {
        while self.disk_bytes() + extra > self.cfg.max_bytes {
            let class = if self.classes[Class::Health.index()].segments.is_empty() {
                Class::Event
            } else {
                Class::Health
            };
            if self.classes[class.index()].segments.is_empty() {
                break;
            }
            self.drop_front(class, true)?;
        }
        Ok(())
    }

    /// Replaces `<dir>/acked`: the highest delivered seq and the highest seq handed out, so
    /// numbering resumes above it even when every segment is gone.
    fn write_state(&self) -> Result<()> {
        let path = self.dir.join(ACKED);
        let tmp = self.dir.join("acked.tmp");
        let mut bytes = self.acked.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.next_seq.saturating_sub(1).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        if self.cfg.fsync {
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        if self.cfg.fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn drop_front(&mut self, class: Class, for_space: bool) -> Result<()> {
        let state = &mut self.classes[class.index()];
        let Some(seg) = state.segments.pop_front() else {
            return Ok(());
        };
        if seg.len > 0 {
            // Its seqs may be the highest handed out: keep the mark before they are gone.
            self.write_state()?;
        }
        let state = &mut self.classes[class.index()];
        if state.segments.is_empty() {
            state.active = None;
        }
        if for_space {
            self.stats.dropped_for_space[class.index()] += seg.entries.len() as u64;
        } else {
            self.stats.dropped_for_age[class.index()] += seg.entries.len() as u64;
        }
        match fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&seg.path)(e)),
        }
        if self.cfg.fsync {
            sync_dir(&self.dir.join(class.dir_name()))?;
        }
        Ok(())
    }
}

/// `(highest delivered seq, highest seq handed out)`; `(0, 0)` when missing or damaged (then
/// everything on disk is replayed again: duplicates, never losses).
fn read_state(path: &Path) -> (u64, u64) {
    let Ok(bytes) = fs::read(path) else {
        return (0, 0);
    };
    let word = |r: std::ops::Range<usize>| -> Option<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes.get(r)?);
        Some(u64::from_le_bytes(b))
    };
    let (Some(acked), Some(high), Some(sum)) = (word(0..8), word(8..16), bytes.get(16..20)) else {
        return (0, 0);
    };
    let mut s = [0u8; 4];
    s.copy_from_slice(sum);
    if bytes.len() != 20 || crc32fast::hash(&bytes[..16]) != u32::from_le_bytes(s) {
        return (0, 0);
    }
    (acked, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_stops_at_a_short_or_corrupt_frame() {
        let frame = |seq: u64, payload: &[u8]| {
            let mut f = (payload.len() as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&crc(seq, 7, payload).to_le_bytes());
            f.extend_from_slice(&seq.to_le_bytes());
            f.extend_from_slice(&7u64.to_le_bytes());
            f.extend_from_slice(payload);
            f
        };
        let mut bytes = frame(1, b"one");
        bytes.extend(frame(2, b"two"));
        let whole = bytes.len() as u64;
        let (e, valid) = scan(&bytes);
        assert_eq!((e.len(), valid), (2, whole));
        let third = frame(3, b"three");
        for cut in 1..third.len() {
            let mut b = bytes.clone();
            b.extend_from_slice(&third[..cut]);
            assert_eq!(scan(&b).1, whole, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[HEADER + 1] ^= 1;
        let (e, valid) = scan(&flipped);
        assert_eq!((e.len(), valid), (0, 0));
    }
}
