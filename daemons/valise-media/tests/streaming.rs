//! A long recording is decoded in bounded memory: the decoder's buffers and the process's
//! resident memory stay flat while 20 minutes of audio stream through `Decoder::read`.
//! (Alone in its own test binary so that other tests do not disturb the RSS measurement.)
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use valise_media::{Decoder, Limits};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn twenty_minutes_stream_in_bounded_memory() {
    const MINUTES: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.mp3");
    // jfk.wav looped for 20 minutes, 44.1 kHz stereo MP3: exercises demux, decode, downmix
    // and the FFT resampler.
    ffmpeg(&[
        "-stream_loop",
        "-1",
        "-i",
        jfk_wav().to_str().unwrap(),
        "-t",
        &(MINUTES * 60).to_string(),
        "-ar",
        "44100",
        "-ac",
        "2",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "48k",
        path.to_str().unwrap(),
    ]);

    let mut decoder = Decoder::open(&path, &Limits::default()).unwrap();
    let declared = decoder.info().duration_secs.unwrap();
    assert!(
        (declared - (MINUTES * 60) as f64).abs() < 2.0,
        "declared {declared}"
    );

    const CHUNK: usize = 16_000 * 5;
    let mut chunk = Vec::with_capacity(CHUNK);
    // Warm up (allocator, codec tables, FFT plans) before taking the baseline.
    decoder.read(&mut chunk, CHUNK).unwrap();
    let baseline = resident_bytes();
    let (mut total, mut peak_rss, mut peak_buffered) = (chunk.len() as u64, baseline, 0usize);
    let mut energy = 0.0f64;
    loop {
        chunk.clear();
        let n = decoder.read(&mut chunk, CHUNK).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(
            chunk.capacity(),
            CHUNK,
            "read must not grow the caller's chunk"
        );
        total += n as u64;
        energy += chunk
            .iter()
            .map(|s| f64::from(*s) * f64::from(*s))
            .sum::<f64>();
        peak_buffered = peak_buffered.max(decoder.buffered_samples());
        peak_rss = peak_rss.max(resident_bytes());
    }
    let secs = total as f64 / 16000.0;
    eprintln!(
        "decoded {secs:.1} s; peak buffered {peak_buffered} samples; RSS baseline {} KiB, \
         peak growth {} KiB",
        baseline / 1024,
        (peak_rss - baseline) / 1024
    );
    assert!(
        (secs - (MINUTES * 60) as f64).abs() < 1.0,
        "decoded {secs} s"
    );
    assert!((decoder.position_secs() - secs).abs() < 1e-6);
    assert!(energy / total as f64 > 1e-4, "the audio is not silent");
    // Internal buffering: at most ~10 s of output plus one packet and one resampler block.
    assert!(
        peak_buffered < 16_000 * 11,
        "decoder buffered {peak_buffered} samples"
    );
    // 20 minutes of 16 kHz f32 would be 77 MB; the decoder must stay within a few MB.
    assert!(
        peak_rss - baseline < 8 * 1024 * 1024,
        "resident memory grew by {} KiB",
        (peak_rss - baseline) / 1024
    );
}
