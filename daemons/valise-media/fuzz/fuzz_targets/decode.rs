//! Fuzz target: arbitrary bytes through the whole decode pipeline with tight limits.
//!
//! The decoder guards symphonia calls with `catch_unwind`, so by default a panic *inside* a
//! guarded call is silenced here (it becomes `MediaError::Corrupt`) and only panics that escape
//! to the caller, hangs, and excessive memory use are reported as crashes. Set
//! `VALISE_FUZZ_STRICT=1` to report every panic, including the ones the guard catches.
#![no_main]

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::{Mutex, Once};

use libfuzzer_sys::fuzz_target;
use valise_media::{Decoder, Limits};

static INIT: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    INIT.call_once(|| {
        if std::env::var_os("VALISE_FUZZ_STRICT").is_none() {
            // libfuzzer-sys aborts from its panic hook; replace it with one that only reports
            // each distinct panic location once. Escaping panics still abort: libfuzzer-sys
            // catches them around this closure.
            let seen = Mutex::new(HashSet::new());
            std::panic::set_hook(Box::new(move |info| {
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                if seen.lock().is_ok_and(|mut s| s.insert(location.clone())) {
                    eprintln!(
                        "VALISE-CAUGHT-PANIC at {location}: {}",
                        info.payload_as_str().unwrap_or("")
                    );
                }
            }));
        }
    });
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_duration_secs: 30,
        max_channels: 8,
        max_sample_rate: 192_000,
    };
    let source = Box::new(Cursor::new(data.to_vec()));
    if let Ok(mut decoder) = Decoder::open_reader(source, None, &limits) {
        let mut out = Vec::new();
        loop {
            out.clear();
            match decoder.read(&mut out, 16_000) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert!(n <= 16_000 && out.len() == n),
            }
            assert!(
                decoder.position_secs() <= 30.5,
                "duration limit not enforced"
            );
        }
    }
});
