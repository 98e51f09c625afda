//! Bad input must produce a specific, stable error code: never a panic, a hang or an
//! unbounded allocation.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use valise_media::{Decoder, Limits, MediaError, MediaSource, decode_all};

/// Opens and decodes `path` to the end, returning the error (fails if decoding succeeds).
fn decode_err(path: &Path, limits: &Limits) -> MediaError {
    match decode_all(path, limits) {
        Ok(samples) => panic!(
            "{} decoded to {} samples, expected an error",
            path.display(),
            samples.len()
        ),
        Err(e) => {
            eprintln!("{}: {} ({e})", path.display(), e.code());
            e
        }
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A canonical 44-byte WAV header.
fn wav_header(channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block_align = u32::from(channels) * u32::from(bits) / 8;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(block_align).to_le_bytes());
    h.extend_from_slice(&(block_align as u16).to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// `wav_header` followed by `data_len` bytes of a quiet tone (capped at 1 MB on disk).
fn wav_file(channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let mut bytes = wav_header(channels, rate, bits, data_len);
    let body = (data_len as usize).min(1 << 20);
    bytes.extend((0..body).map(|i| ((i / 7) % 40) as u8));
    bytes
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.wav", b"");
    assert_eq!(decode_err(&path, &Limits::default()).code(), "empty");
}

#[test]
fn random_bytes_are_not_media() {
    let dir = tempfile::tempdir().unwrap();
    for (i, len) in [16usize, 1000, 64 * 1024, 2 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let path = write(
            dir.path(),
            &format!("random{i}.bin"),
            &random_bytes(len, 0x5eed + i as u64),
        );
        let code = decode_err(&path, &Limits::default()).code();
        assert_eq!(code, "unsupported_format", "{len} random bytes");
    }
    // With a misleading extension the MP3 reader is tried first; still not audio.
    let path = write(dir.path(), "random.mp3", &random_bytes(64 * 1024, 99));
    assert_eq!(
        decode_err(&path, &Limits::default()).code(),
        "unsupported_format"
    );
}

#[test]
fn text_file_renamed_mp3() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Minutes of the meeting held on Tuesday.\n".repeat(200);
    let path = write(dir.path(), "minutes.mp3", text.as_bytes());
    assert_eq!(
        decode_err(&path, &Limits::default()).code(),
        "unsupported_format"
    );
}

#[test]
fn zip_archive() {
    // A real (stored, single entry) zip archive.
    let name = b"notes.txt";
    let content = b"not audio\n";
    let crc = crc32(content);
    let mut zip = Vec::new();
    zip.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00");
    zip.extend_from_slice(&crc.to_le_bytes());
    zip.extend_from_slice(&(content.len() as u32).to_le_bytes());
    zip.extend_from_slice(&(content.len() as u32).to_le_bytes());
    zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(name);
    zip.extend_from_slice(content);
    let cd_offset = zip.len() as u32;
    zip.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00");
    zip.extend_from_slice(&crc.to_le_bytes());
    zip.extend_from_slice(&(content.len() as u32).to_le_bytes());
    zip.extend_from_slice(&(content.len() as u32).to_le_bytes());
    zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
    zip.extend_from_slice(&[0; 12]);
    zip.extend_from_slice(&0u32.to_le_bytes());
    zip.extend_from_slice(name);
    let cd_len = zip.len() as u32 - cd_offset;
    zip.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    zip.extend_from_slice(&cd_len.to_le_bytes());
    zip.extend_from_slice(&cd_offset.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());

    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "recording.m4a", &zip);
    assert_eq!(
        decode_err(&path, &Limits::default()).code(),
        "unsupported_format"
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn wav_truncated_in_the_middle() {
    let bytes = std::fs::read(jfk_wav()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cut.wav", &bytes[..bytes.len() / 2]);
    let err = decode_err(&path, &Limits::default());
    assert_eq!(err.code(), "truncated");

    // A streaming caller still gets the audio that is there before the error.
    let mut decoder = Decoder::open(&jfk_wav(), &Limits::default()).unwrap();
    let mut out = Vec::new();
    while decoder.read(&mut out, 16000).unwrap() > 0 {}
    assert!(out.len() > 150_000);

    // A file cut inside its header.
    let path = write(dir.path(), "header-only.wav", &bytes[..30]);
    assert_eq!(decode_err(&path, &Limits::default()).code(), "truncated");
}

#[test]
fn flac_truncated_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let path = encode(&jfk_wav(), dir.path(), "jfk.flac", &["-c:a", "flac"]);
    let bytes = std::fs::read(&path).unwrap();
    let cut = write(dir.path(), "cut.flac", &bytes[..bytes.len() / 2]);
    // FLAC's STREAMINFO states the exact length, so the shortfall is detected at the end.
    let mut decoder = Decoder::open(&cut, &Limits::default()).unwrap();
    let mut out = Vec::new();
    let err = loop {
        match decoder.read(&mut out, 16000) {
            Ok(0) => panic!("truncated FLAC decoded without error"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), "truncated");
    assert!(
        out.len() > 60_000,
        "samples before the cut are delivered: {}",
        out.len()
    );
    // After an error the decoder stays finished.
    assert_eq!(decoder.read(&mut out, 16000).unwrap(), 0);
}

#[test]
fn wav_header_claims_huge_data_length() {
    let dir = tempfile::tempdir().unwrap();
    // 2 GB declared, 64 KB present.
    let mut bytes = wav_header(1, 16000, 16, 0x7fff_0000);
    bytes.extend(random_bytes(64 * 1024, 7));
    let path = write(dir.path(), "liar.wav", &bytes);
    assert_eq!(decode_err(&path, &Limits::default()).code(), "truncated");
}

#[test]
fn wav_absurd_channel_counts_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, u16, u32, &str); 8] = [
        // Upsampling 1 Hz to 16 kHz would need absurd resampler buffers.
        ("rate-1hz.wav", 1, 1, "unsupported_audio_params"),
        ("rate-999hz.wav", 1, 999, "unsupported_audio_params"),
        ("zero-channels.wav", 0, 16000, "corrupt"),
        // WAV cannot express that many positioned channels. (In debug builds symphonia even
        // overflows a u16 here and panics; the panic guard turns that into `corrupt` too.)
        ("65535-channels.wav", 65535, 16000, "corrupt"),
        ("9-channels.wav", 9, 16000, "unsupported_audio_params"),
        ("20-channels.wav", 20, 16000, "unsupported_audio_params"),
        ("rate-zero.wav", 1, 0, "corrupt"),
        (
            "rate-4ghz.wav",
            1,
            4_000_000_000,
            "unsupported_audio_params",
        ),
    ];
    for (name, channels, rate, code) in cases {
        let path = write(dir.path(), name, &wav_file(channels, rate, 16, 32_000));
        let err = decode_err(&path, &Limits::default());
        assert_eq!(err.code(), code, "{name}: {err}");
    }
}

#[test]
fn video_only_mp4_has_no_audio_track() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video-only.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=160x120:rate=10",
        "-c:v",
        "mpeg4",
        "-an",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        decode_err(&path, &Limits::default()).code(),
        "no_audio_track"
    );
}

#[test]
fn unsupported_codec() {
    // AC-3 in Matroska: a real audio track in a codec symphonia does not decode.
    let dir = tempfile::tempdir().unwrap();
    let path = encode(
        &jfk_wav(),
        dir.path(),
        "jfk-ac3.mkv",
        &["-ar", "48000", "-c:a", "ac3"],
    );
    assert_eq!(
        decode_err(&path, &Limits::default()).code(),
        "unsupported_codec"
    );
}

#[test]
fn over_size() {
    let limits = Limits {
        max_file_bytes: 100_000,
        ..Limits::default()
    };
    let err = decode_err(&jfk_wav(), &limits);
    assert_eq!(err.code(), "too_large");

    // A source of unknown length is cut off while reading.
    let bytes = std::fs::read(jfk_wav()).unwrap();
    let source: Box<dyn MediaSource> = Box::new(symphonia_unseekable(bytes));
    let result = Decoder::open_reader(source, Some("wav"), &limits).and_then(|mut d| {
        let mut out = Vec::new();
        while d.read(&mut out, 16000)? > 0 {}
        Ok(out.len())
    });
    assert_eq!(result.unwrap_err().code(), "too_large");
}

/// A non-seekable source that does not report its length (like a pipe).
fn symphonia_unseekable(bytes: Vec<u8>) -> impl MediaSource {
    struct Pipe(std::io::Cursor<Vec<u8>>);
    impl std::io::Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl std::io::Seek for Pipe {
        fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
            Err(std::io::Error::other("not seekable"))
        }
    }
    impl MediaSource for Pipe {
        fn is_seekable(&self) -> bool {
            false
        }
        fn byte_len(&self) -> Option<u64> {
            None
        }
    }
    Pipe(std::io::Cursor::new(bytes))
}

#[test]
fn over_duration_declared_in_header() {
    let limits = Limits {
        max_duration_secs: 5,
        ..Limits::default()
    };
    let err = decode_err(&jfk_wav(), &limits);
    assert_eq!(err.code(), "too_long");
    assert!(
        matches!(err, MediaError::TooLong { declared: true, .. }),
        "{err:?}"
    );
}

#[test]
fn over_duration_with_header_that_under_reports() {
    let limits = Limits {
        max_duration_secs: 5,
        ..Limits::default()
    };
    let dir = tempfile::tempdir().unwrap();

    // FLAC whose STREAMINFO claims 1 s of audio while 11 s follow.
    let path = encode(&jfk_wav(), dir.path(), "jfk.flac", &["-c:a", "flac"]);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[0..4], b"fLaC");
    // STREAMINFO body starts at 8; total samples are the low 36 bits of bytes 21..26.
    let total = 16_000u64;
    bytes[21] = (bytes[21] & 0xf0) | ((total >> 32) as u8 & 0x0f);
    bytes[22..26].copy_from_slice(&(total as u32).to_be_bytes());
    let liar = write(dir.path(), "liar.flac", &bytes);
    let mut decoder = Decoder::open(&liar, &limits).unwrap();
    assert!(
        decoder.info().duration_secs.unwrap() < 1.5,
        "{:?}",
        decoder.info()
    );
    let mut out = Vec::new();
    let err = loop {
        match decoder.read(&mut out, 16000) {
            Ok(0) => panic!(
                "over-long FLAC decoded without error ({} samples)",
                out.len()
            ),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            MediaError::TooLong {
                declared: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        out.len() <= 5 * 16000,
        "no more than the limit is delivered: {}",
        out.len()
    );

    // WAV written to a pipe by ffmpeg: sizes are 0xFFFFFFFF, i.e. no declared duration.
    let piped = dir.path().join("piped.wav");
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(jfk_wav())
        .args(["-f", "wav", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success());
    assert_eq!(
        &output.stdout[4..8],
        &[0xff; 4],
        "ffmpeg wrote a streaming header"
    );
    std::fs::write(&piped, &output.stdout).unwrap();
    let decoder = Decoder::open(&piped, &Limits::default()).unwrap();
    assert_eq!(decoder.info().duration_secs, None);
    let err = decode_err(&piped, &limits);
    assert!(
        matches!(
            err,
            MediaError::TooLong {
                declared: false,
                ..
            }
        ),
        "{err:?}"
    );
    // ...and without the limit the same file decodes completely.
    assert_eq!(
        decode_all(&piped, &Limits::default()).unwrap().len(),
        jfk_reference().len()
    );
}

#[test]
fn zero_length_audio() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "no-samples.wav", &wav_header(1, 16000, 16, 0));
    assert_eq!(decode_err(&path, &Limits::default()).code(), "empty");

    for (name, codec, expected) in [
        ("no-samples.mka", "flac", "empty"),
        // Symphonia's FLAC and Ogg readers need at least one audio frame/page to open a stream,
        // so a header-only file reads as cut short right after its headers.
        ("no-samples.flac", "flac", "truncated"),
        ("no-samples.ogg", "libvorbis", "truncated"),
    ] {
        let path = dir.path().join(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=48000:cl=mono",
            "-t",
            "0",
            "-c:a",
            codec,
            path.to_str().unwrap(),
        ]);
        assert_eq!(
            decode_err(&path, &Limits::default()).code(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn codes_are_distinct_strings() {
    // The HTTP API relies on these exact strings.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.wav", b"");
    assert_eq!(decode_err(&path, &Limits::default()).code(), "empty");
    let missing = dir.path().join("does-not-exist.wav");
    let err = Decoder::open(&missing, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "io");
    assert!(!err.is_input_error());
}

#[test]
fn hostile_float_samples_are_sanitised() {
    // 32-bit float WAV (format tag 3) full of NaN, ±inf and values far outside [-1, 1].
    let values = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -7.5, 0.25];
    let data: Vec<u8> = (0..16_000)
        .flat_map(|i| values[i % values.len()].to_le_bytes())
        .collect();
    let mut bytes = wav_header(1, 16000, 32, data.len() as u32);
    bytes[20..22].copy_from_slice(&3u16.to_le_bytes());
    bytes.extend_from_slice(&data);
    let dir = tempfile::tempdir().unwrap();
    for (name, rate) in [("nan16k.wav", 16000u32), ("nan44k.wav", 44100)] {
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        let path = write(dir.path(), name, &bytes);
        let out = decode_all(&path, &Limits::default()).unwrap();
        assert!(!out.is_empty());
        assert!(
            out.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
            "{name}"
        );
    }
}
