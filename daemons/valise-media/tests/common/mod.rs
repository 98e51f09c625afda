//! Shared helpers for the integration tests: fixture paths, ffmpeg, a reference WAV reader and
//! signal comparison.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directory with the speech fixtures (`jfk.wav`): `$VALISE_TESTDATA` or the appliance default.
pub fn testdata_dir() -> PathBuf {
    std::env::var_os("VALISE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise/testdata"))
}

/// The 11 s, 16 kHz mono speech reference. Panics (fails the test) with a clear message when
/// it is missing: these tests must not silently skip.
pub fn jfk_wav() -> PathBuf {
    let path = testdata_dir().join("jfk.wav");
    assert!(
        path.is_file(),
        "speech fixture {} is missing: install the test data (provisioning) or point \
         VALISE_TESTDATA at a directory containing jfk.wav",
        path.display()
    );
    path
}

/// French telephone prompt shipped by asterisk (8 kHz mono).
pub fn asterisk_prompt() -> PathBuf {
    let path = PathBuf::from("/usr/share/asterisk/sounds/fr/activated.wav");
    assert!(
        path.is_file(),
        "fixture {} is missing: install the Debian package asterisk-prompt-fr",
        path.display()
    );
    path
}

/// Runs `ffmpeg -y -hide_banner -loglevel error <args>`; fails the test with ffmpeg's stderr
/// (or a clear message when ffmpeg is not installed).
pub fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffmpeg ({e}): install it (Debian package ffmpeg) to run these tests")
        });
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Encodes `input` to `dir/name` with the given ffmpeg output options.
pub fn encode(input: &Path, dir: &Path, name: &str, opts: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec!["-i", input.to_str().unwrap()];
    args.extend_from_slice(opts);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// Minimal independent WAV reader for 16-bit PCM files: returns (rate, channels, interleaved
/// samples in [-1, 1)). Used as the reference, so it shares no code with the crate.
pub fn read_wav_s16(path: &Path) -> (u32, u16, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut pos = 12;
    let (mut rate, mut channels) = (0u32, 0u16);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        match id {
            b"fmt " => {
                assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "not PCM");
                channels = u16::from_le_bytes([body[2], body[3]]);
                rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                assert_eq!(u16::from_le_bytes([body[14], body[15]]), 16, "not 16-bit");
            }
            b"data" => {
                let samples = body
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect();
                return (rate, channels, samples);
            }
            _ => {}
        }
        pos += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// The jfk reference as 16 kHz mono.
pub fn jfk_reference() -> Vec<f32> {
    let (rate, channels, samples) = read_wav_s16(&jfk_wav());
    assert_eq!((rate, channels), (16000, 1), "jfk.wav must be 16 kHz mono");
    samples
}

fn ncc_at(a: &[f32], b: &[f32], lag: isize) -> f64 {
    // Correlates a[i + lag] with b[i] over the overlap.
    let (a, b) = if lag >= 0 {
        let l = lag as usize;
        if l >= a.len() {
            return 0.0;
        }
        (&a[l..], b)
    } else {
        let l = (-lag) as usize;
        if l >= b.len() {
            return 0.0;
        }
        (a, &b[l..])
    };
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]), f64::from(b[i]));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn decimate(x: &[f32], factor: usize) -> Vec<f32> {
    x.chunks(factor)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

/// Best normalised cross-correlation of `decoded` against `reference` over lags within
/// ±`max_lag` samples: returns (ncc, lag). A positive lag means `decoded` is late.
pub fn best_ncc(decoded: &[f32], reference: &[f32], max_lag: usize) -> (f64, isize) {
    // Coarse search on 8x-decimated signals, then refine at full rate.
    let (dd, rd) = (decimate(decoded, 8), decimate(reference, 8));
    let coarse_max = (max_lag / 8) as isize + 1;
    let coarse = (-coarse_max..=coarse_max)
        .map(|l| (ncc_at(&dd, &rd, l), l))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
        .1;
    ((coarse * 8 - 12)..=(coarse * 8 + 12))
        .filter(|l| l.unsigned_abs() <= max_lag)
        .map(|l| (ncc_at(decoded, reference, l), l))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

/// Correlation of the RMS envelopes (100 ms windows) of two 16 kHz signals.
pub fn envelope_correlation(a: &[f32], b: &[f32]) -> f64 {
    let env = |x: &[f32]| -> Vec<f32> {
        x.chunks(1600)
            .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
            .collect()
    };
    let (ea, eb) = (env(a), env(b));
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let n = ea.len().min(eb.len());
    let (ma, mb) = (mean(&ea[..n]), mean(&eb[..n]));
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let (x, y) = (f64::from(ea[i] - ma), f64::from(eb[i] - mb));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}
