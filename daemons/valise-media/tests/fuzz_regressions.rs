//! Every file in `tests/fuzz-regressions/` (inputs that once crashed, hung or blew up the
//! decoder, found by `fuzz/`) plus the fuzz seeds must decode or fail cleanly: no panic, a
//! bounded amount of output, and a known error code.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use valise_media::{Decoder, Limits};

const CODES: &[&str] = &[
    "too_large",
    "too_long",
    "unsupported_format",
    "unsupported_codec",
    "no_audio_track",
    "unsupported_audio_params",
    "corrupt",
    "truncated",
    "empty",
];

fn run_dir(dir: &Path) -> usize {
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_duration_secs: 30,
        max_channels: 8,
        max_sample_rate: 192_000,
    };
    let mut files = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    entries.sort();
    for path in entries {
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        let started = Instant::now();
        let result = Decoder::open_reader(Box::new(Cursor::new(bytes)), None, &limits).and_then(
            |mut decoder| {
                let mut total = 0usize;
                let mut out = Vec::new();
                loop {
                    out.clear();
                    match decoder.read(&mut out, 16_000)? {
                        0 => return Ok(total),
                        n => total += n,
                    }
                }
            },
        );
        let elapsed = started.elapsed();
        match &result {
            Ok(samples) => assert!(*samples <= 30 * 16_000 + 16_000, "{}", path.display()),
            Err(e) => assert!(CODES.contains(&e.code()), "{}: {e}", path.display()),
        }
        assert!(
            elapsed < Duration::from_secs(10),
            "{} took {elapsed:?}",
            path.display()
        );
        eprintln!(
            "{}: {:?}",
            path.file_name().unwrap().to_string_lossy(),
            result.as_ref().map_err(|e| e.code())
        );
    }
    files
}

#[test]
fn fuzz_regressions_fail_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    run_dir(&dir);
}

#[test]
fn fuzz_seeds_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    assert!(run_dir(&dir) >= 5, "seed corpus missing");
}
