//! The streaming decoder: probe → packet loop → decode → downmix → resample.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::LazyLock;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia_adapter_libopus::OpusDecoder;

use crate::error::MediaError;
use crate::resample::MonoResampler;
use crate::{Limits, MIN_SAMPLE_RATE, MediaInfo, TARGET_SAMPLE_RATE};

/// Give up after this many packets in a row that fail to demux or decode.
const MAX_CONSECUTIVE_ERRORS: u32 = 200;
/// Give up after this many audio packets in a row that decode to zero samples.
const MAX_CONSECUTIVE_EMPTY: u32 = 1000;
/// Give up after this many packets in a row that belong to other tracks (video, subtitles).
/// Generous: a video track can have many packets per audio packet, and the loop is linear in
/// the file size anyway.
const MAX_CONSECUTIVE_FOREIGN: u64 = 1_000_000;
/// `read` never buffers more than this many output samples internally (10 s at 16 kHz), however
/// large the caller's `max` is.
const READ_TARGET_CAP: usize = 16_000 * 10;
/// A declared packet size beyond this is treated as a corrupt header (protects allocations).
const MAX_FRAMES_PER_PACKET: u64 = 1 << 20;
/// Tolerance when comparing declared and decoded lengths of exact-length codecs.
const TRUNCATION_TOLERANCE: f64 = 0.02;

/// Symphonia's default codecs plus libopus for Opus.
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<OpusDecoder>();
    registry
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// End of stream reached; the queue may still hold samples.
    Finished,
    /// An error was returned; every further `read` returns `Ok(0)`.
    Done,
}

/// A streaming decoder from an untrusted media file to 16 kHz mono `f32` PCM.
///
/// Created by [`Decoder::open`] / [`Decoder::open_reader`]; pull samples with
/// [`Decoder::read`]. Memory use is bounded independently of the file's duration: the decoder
/// holds at most one decoded packet, one resampler block and about ten seconds of output.
pub struct Decoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    info: MediaInfo,
    limits: Limits,
    resampler: MonoResampler,
    /// Scratch: decoded planes of the current packet.
    planes: Vec<Vec<f32>>,
    /// Scratch: the current packet downmixed to mono.
    mono: Vec<f32>,
    /// Resampled output waiting for `read`.
    ready: VecDeque<f32>,
    /// Source frames decoded so far, over all rates.
    frames_decoded: u64,
    /// Seconds of source audio decoded so far.
    secs_decoded: f64,
    /// Output samples handed out by `read`.
    emitted: u64,
    consecutive_errors: u32,
    total_errors: u64,
    consecutive_empty: u32,
    consecutive_foreign: u64,
    /// Declared frame count for codecs whose header length is exact (PCM, FLAC): checked at
    /// the end to detect truncated files.
    exact_declared_frames: Option<u64>,
    /// Error to report once the queued samples have been handed out (truncation).
    deferred: Option<MediaError>,
    state: State,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("info", &self.info)
            .field("track_id", &self.track_id)
            .field("frames_decoded", &self.frames_decoded)
            .field("emitted", &self.emitted)
            .field("buffered_samples", &self.buffered_samples())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Runs `f`, turning a panic inside symphonia (or a codec) into [`MediaError::Corrupt`].
fn guarded<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, MediaError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::warn!(what, panic = %msg, "decoder panicked on malformed input");
        MediaError::corrupt(format!("decoder failure in {what}: {msg}"))
    })
}

/// Maps a symphonia error raised while opening (probe, track setup).
fn open_error(err: SymError, limits: &Limits) -> MediaError {
    match err {
        SymError::Unsupported(what) => MediaError::UnsupportedFormat {
            detail: what.to_owned(),
        },
        SymError::IoError(e) => io_error(e, "reading the header (no audio data follows)", limits),
        SymError::DecodeError(what) => MediaError::corrupt(what),
        SymError::LimitError(what) => MediaError::corrupt(format!("limit exceeded: {what}")),
        SymError::SeekError(kind) => MediaError::corrupt(format!("seek failed: {kind:?}")),
        SymError::ResetRequired => MediaError::corrupt("unexpected stream reset while probing"),
        other => MediaError::corrupt(other.to_string()),
    }
}

fn io_error(e: io::Error, context: &'static str, limits: &Limits) -> MediaError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => MediaError::Truncated {
            detail: format!("file ends while {context}"),
        },
        io::ErrorKind::FileTooLarge => MediaError::TooLarge {
            size: limits.max_file_bytes.saturating_add(1),
            limit: limits.max_file_bytes,
        },
        _ => MediaError::Io { context, source: e },
    }
}

/// A `MediaSource` that refuses to read past `limit` bytes; used when the total size of the
/// source is not known up front.
struct LimitedSource {
    inner: Box<dyn MediaSource>,
    pos: u64,
    limit: u64,
}

impl Read for LimitedSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.limit {
            // Only an error if there actually is more data.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "media source exceeds the size limit",
                )),
            };
        }
        let room = usize::try_from(self.limit - self.pos).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for LimitedSource {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

impl MediaSource for LimitedSource {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }
    fn byte_len(&self) -> Option<u64> {
        None
    }
}

fn is_exact_length_codec(short_name: &str) -> bool {
    short_name.starts_with("pcm") || short_name == "flac"
}

/// Declared duration of a track in seconds, if the container states one.
fn declared_secs(track: &Track, sample_rate: Option<u32>) -> Option<f64> {
    if let (Some(frames), Some(rate)) = (track.num_frames, sample_rate)
        && rate > 0
    {
        return Some(frames as f64 / f64::from(rate));
    }
    let (tb, dur) = (track.time_base?, track.duration?);
    tb.calc_duration(dur).map(|t| t.as_secs_f64())
}

impl Decoder {
    /// Opens a file: checks its size against `limits`, probes the container, picks the first
    /// decodable audio track and validates its parameters. No audio is decoded yet.
    pub fn open(path: &Path, limits: &Limits) -> Result<Self, MediaError> {
        let file = File::open(path).map_err(|source| MediaError::Io {
            context: "opening the file",
            source,
        })?;
        let meta = file.metadata().map_err(|source| MediaError::Io {
            context: "reading file metadata",
            source,
        })?;
        if !meta.is_file() {
            return Err(MediaError::UnsupportedFormat {
                detail: "not a regular file".to_owned(),
            });
        }
        let ext = path.extension().and_then(|e| e.to_str());
        Self::open_reader(Box::new(file), ext, limits)
    }

    /// Opens any [`MediaSource`] (a file, an in-memory `Cursor<Vec<u8>>`, ...). `extension` is
    /// an optional file-name extension used only as a probing hint; the content decides.
    ///
    /// When the source does not report its length, reading past
    /// [`Limits::max_file_bytes`] fails with `too_large`.
    pub fn open_reader(
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
        limits: &Limits,
    ) -> Result<Self, MediaError> {
        let source: Box<dyn MediaSource> = match source.byte_len() {
            Some(0) => {
                return Err(MediaError::Empty {
                    detail: "the file is zero bytes long".to_owned(),
                });
            }
            Some(size) if size > limits.max_file_bytes => {
                return Err(MediaError::TooLarge {
                    size,
                    limit: limits.max_file_bytes,
                });
            }
            Some(_) => source,
            None => Box::new(LimitedSource {
                inner: source,
                pos: 0,
                limit: limits.max_file_bytes,
            }),
        };
        let byte_len = source.byte_len();

        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let format = guarded("probe", || {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        })?
        .map_err(|e| open_error(e, limits))?;

        Self::from_format(format, byte_len, limits)
    }

    fn from_format(
        format: Box<dyn FormatReader>,
        byte_len: Option<u64>,
        limits: &Limits,
    ) -> Result<Self, MediaError> {
        let container = format.format_info().short_name.to_owned();

        // First audio track whose codec we can decode.
        let mut first_unsupported: Option<String> = None;
        let mut chosen: Option<(Track, AudioCodecParameters, &'static str)> = None;
        for track in format.tracks() {
            let Some(params) = track.codec_params.as_ref().and_then(|p| p.audio()) else {
                continue;
            };
            match CODECS.get_audio_decoder(params.codec) {
                Some(reg) => {
                    chosen = Some((track.clone(), params.clone(), reg.codec.info.short_name));
                    break;
                }
                None => {
                    first_unsupported.get_or_insert_with(|| params.codec.to_string());
                }
            }
        }
        let Some((track, mut params, codec_name)) = chosen else {
            return Err(match first_unsupported {
                Some(codec) => MediaError::UnsupportedCodec {
                    codec,
                    detail: format!("no decoder for the audio track in the {container} file"),
                },
                None => MediaError::NoAudioTrack { container },
            });
        };

        // Validate what the header declares before any decoder allocates buffers for it.
        let channels = match &params.channels {
            Some(ch) => {
                let n = ch.count();
                if n == 0 {
                    return Err(MediaError::corrupt("the audio track declares 0 channels"));
                }
                if n > usize::from(limits.max_channels) {
                    return Err(MediaError::UnsupportedAudioParams {
                        what: "channel count",
                        value: n as u64,
                        min: 1,
                        max: u64::from(limits.max_channels),
                    });
                }
                Some(n as u16)
            }
            None => None,
        };
        match params.sample_rate {
            Some(0) => {
                return Err(MediaError::corrupt(
                    "the audio track declares sample rate 0",
                ));
            }
            Some(rate) if !(MIN_SAMPLE_RATE..=limits.max_sample_rate).contains(&rate) => {
                return Err(MediaError::UnsupportedAudioParams {
                    what: "sample rate",
                    value: u64::from(rate),
                    min: u64::from(MIN_SAMPLE_RATE),
                    max: u64::from(limits.max_sample_rate),
                });
            }
            _ => {}
        }
        if params
            .max_frames_per_packet
            .is_some_and(|n| n > MAX_FRAMES_PER_PACKET)
        {
            return Err(MediaError::corrupt(
                "the audio track declares absurdly large packets",
            ));
        }
        if params.codec == CODEC_ID_OPUS {
            // Opus always decodes at 48 kHz (packet trimming is expressed in 48 kHz units);
            // containers sometimes carry the original input rate instead.
            params.sample_rate = Some(48_000);
        }

        // Duration checks from the header, before decoding anything.
        let declared = declared_secs(&track, params.sample_rate);
        let exact = is_exact_length_codec(codec_name);
        let mut exact_declared_frames = None;
        if exact && let (Some(frames), Some(ch)) = (track.num_frames, channels) {
            // PCM: the header's frame count implies a minimum byte size. A header that claims
            // more audio than the file can hold is a lie (or the file was cut short).
            let bits = params.bits_per_coded_sample.or(params.bits_per_sample);
            if let (true, Some(bits), Some(len)) = (codec_name.starts_with("pcm"), bits, byte_len) {
                let needed = u128::from(frames) * u128::from(ch) * u128::from(bits.div_ceil(8));
                let allowed = u128::from(len) + u128::from(len) / 50 + 4096;
                if needed > allowed {
                    return Err(MediaError::Truncated {
                        detail: format!(
                            "the header declares {frames} frames ({needed} bytes of audio) but \
                             the file is only {len} bytes long"
                        ),
                    });
                }
            }
            exact_declared_frames = Some(frames);
        }
        if let Some(secs) = declared
            && secs > limits.max_duration_secs as f64
        {
            return Err(MediaError::TooLong {
                duration_secs: secs,
                limit_secs: limits.max_duration_secs,
                declared: true,
            });
        }

        let decoder = guarded("decoder setup", || {
            CODECS.make_audio_decoder(&params, &AudioDecoderOptions::default())
        })?
        .map_err(|e| match e {
            SymError::Unsupported(what) => MediaError::UnsupportedCodec {
                codec: codec_name.to_owned(),
                detail: what.to_owned(),
            },
            other => open_error(other, limits),
        })?;

        let info = MediaInfo {
            container,
            codec: codec_name.to_owned(),
            sample_rate: params.sample_rate.unwrap_or(0),
            channels: channels.unwrap_or(0),
            duration_secs: declared,
        };
        tracing::debug!(?info, "opened media");

        Ok(Decoder {
            format,
            decoder,
            track_id: track.id,
            info,
            limits: limits.clone(),
            resampler: MonoResampler::new(),
            planes: Vec::new(),
            mono: Vec::new(),
            ready: VecDeque::new(),
            frames_decoded: 0,
            secs_decoded: 0.0,
            emitted: 0,
            consecutive_errors: 0,
            total_errors: 0,
            consecutive_empty: 0,
            consecutive_foreign: 0,
            exact_declared_frames,
            deferred: None,
            state: State::Running,
        })
    }

    /// What the container declared about the selected audio track.
    ///
    /// `sample_rate`/`channels` are 0 when the container does not declare them (they are then
    /// learnt from the decoded audio and still checked against the limits).
    pub fn info(&self) -> &MediaInfo {
        &self.info
    }

    /// Appends up to `max` 16 kHz mono samples to `out` and returns how many were appended.
    ///
    /// `Ok(0)` (with `max > 0`) means the end of the stream. An `Err` is terminal: all later
    /// calls return `Ok(0)`. A `truncated` error is reported only after every decodable sample
    /// has been returned, so a streaming caller may keep what it already has.
    pub fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, MediaError> {
        if max == 0 || self.state == State::Done {
            return Ok(0);
        }
        let target = max.min(READ_TARGET_CAP);
        while self.state == State::Running && self.ready.len() < target {
            if let Err(e) = self.step() {
                self.state = State::Done;
                self.ready.clear();
                return Err(e);
            }
        }
        let n = target.min(self.ready.len());
        if n == 0 {
            // Finished and drained.
            self.state = State::Done;
            return match self.deferred.take() {
                Some(e) => Err(e),
                None => Ok(0),
            };
        }
        out.reserve(n);
        out.extend(self.ready.drain(..n));
        self.emitted += n as u64;
        Ok(n)
    }

    /// Seconds of 16 kHz output produced so far.
    pub fn position_secs(&self) -> f64 {
        self.emitted as f64 / f64::from(TARGET_SAMPLE_RATE)
    }

    /// Samples held inside the decoder between calls (resampler input plus queued output).
    /// Bounded regardless of the file's length; exposed for tests and metrics.
    pub fn buffered_samples(&self) -> usize {
        self.ready.len() + self.resampler.buffered() + self.mono.capacity()
    }

    /// Demuxes and decodes one packet, feeding the result to the resampler.
    fn step(&mut self) -> Result<(), MediaError> {
        let next = guarded("demuxer", || self.format.next_packet())?;
        let packet = match next {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymError::ResetRequired) => return self.finish(),
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return self.finish();
            }
            Err(SymError::IoError(e)) => {
                return Err(io_error(e, "reading packets", &self.limits));
            }
            Err(SymError::DecodeError(what)) => return self.packet_error(what),
            Err(other) => {
                return Err(MediaError::corrupt(format!("demuxer failed: {other}")));
            }
        };
        if packet.track_id != self.track_id {
            self.consecutive_foreign += 1;
            if self.consecutive_foreign > MAX_CONSECUTIVE_FOREIGN {
                return Err(MediaError::corrupt(
                    "no audio packets found among the other tracks",
                ));
            }
            return Ok(());
        }
        self.consecutive_foreign = 0;

        let (decoder, planes) = (&mut self.decoder, &mut self.planes);
        let decoded = guarded("decoder", || {
            decoder.decode(&packet).map(|buf| {
                let spec = buf.spec();
                let (rate, channels) = (spec.rate(), spec.channels().count());
                let frames = buf.frames();
                if frames > 0 && channels > 0 {
                    buf.copy_to_vecs_planar::<f32>(planes);
                }
                (rate, channels, frames)
            })
        })?;
        let (rate, channels, frames) = match decoded {
            Ok(v) => v,
            Err(SymError::DecodeError(what)) => return self.packet_error(what),
            Err(SymError::IoError(_)) => return self.packet_error("packet is too short"),
            Err(SymError::Unsupported(what)) => {
                return Err(MediaError::UnsupportedCodec {
                    codec: self.info.codec.clone(),
                    detail: what.to_owned(),
                });
            }
            Err(other) => return Err(MediaError::corrupt(format!("decoder failed: {other}"))),
        };
        self.consecutive_errors = 0;

        if frames == 0 {
            self.consecutive_empty += 1;
            if self.consecutive_empty > MAX_CONSECUTIVE_EMPTY {
                return Err(MediaError::corrupt(format!(
                    "{MAX_CONSECUTIVE_EMPTY} consecutive packets decoded to no audio"
                )));
            }
            return Ok(());
        }
        self.consecutive_empty = 0;

        // The decoded audio itself must respect the limits too (headers can lie).
        if channels == 0 || rate == 0 {
            return Err(MediaError::corrupt(
                "decoded audio has no channels or a zero rate",
            ));
        }
        if channels > usize::from(self.limits.max_channels) {
            return Err(MediaError::UnsupportedAudioParams {
                what: "channel count",
                value: channels as u64,
                min: 1,
                max: u64::from(self.limits.max_channels),
            });
        }
        if !(MIN_SAMPLE_RATE..=self.limits.max_sample_rate).contains(&rate) {
            return Err(MediaError::UnsupportedAudioParams {
                what: "sample rate",
                value: u64::from(rate),
                min: u64::from(MIN_SAMPLE_RATE),
                max: u64::from(self.limits.max_sample_rate),
            });
        }

        self.frames_decoded += frames as u64;
        self.secs_decoded += frames as f64 / f64::from(rate);
        if self.secs_decoded > self.limits.max_duration_secs as f64 {
            return Err(MediaError::TooLong {
                duration_secs: self.secs_decoded,
                limit_secs: self.limits.max_duration_secs,
                declared: false,
            });
        }

        // Downmix: mean of all channels; non-finite samples (float PCM can carry NaN/inf)
        // become silence, and out-of-range float samples are clipped to [-1, 1].
        let planes = &self.planes[..channels.min(self.planes.len())];
        let scale = 1.0 / planes.len().max(1) as f32;
        self.mono.clear();
        self.mono.extend((0..frames).map(|i| {
            let sum: f32 = planes
                .iter()
                .map(|p| p.get(i).copied().unwrap_or(0.0))
                .sum();
            let s = sum * scale;
            if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }));
        self.resampler.push(rate, &self.mono, &mut self.ready)
    }

    /// Counts a bad packet; too many in a row means the file is garbage.
    fn packet_error(&mut self, what: &str) -> Result<(), MediaError> {
        self.consecutive_errors += 1;
        self.total_errors += 1;
        tracing::debug!(error = what, "skipping undecodable packet");
        if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
            return Err(MediaError::corrupt(format!(
                "{MAX_CONSECUTIVE_ERRORS} consecutive packets could not be decoded (last: {what})"
            )));
        }
        Ok(())
    }

    /// End of stream: flush the resampler and run the end-of-file checks.
    fn finish(&mut self) -> Result<(), MediaError> {
        self.state = State::Finished;
        if self.frames_decoded == 0 {
            return Err(if self.total_errors > 0 {
                MediaError::corrupt(format!(
                    "none of the {} audio packets could be decoded",
                    self.total_errors
                ))
            } else {
                MediaError::Empty {
                    detail: "the audio track contains no samples".to_owned(),
                }
            });
        }
        self.resampler.finish(&mut self.ready)?;
        if self.total_errors > 0 {
            tracing::info!(skipped = self.total_errors, "skipped undecodable packets");
        }
        if let Some(declared) = self.exact_declared_frames {
            let short_by = declared.saturating_sub(self.frames_decoded);
            if short_by as f64 > declared as f64 * TRUNCATION_TOLERANCE {
                self.deferred = Some(MediaError::Truncated {
                    detail: format!(
                        "the header declares {declared} frames but only {} could be decoded",
                        self.frames_decoded
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn decoder_is_send() {
        assert_send::<Decoder>();
    }

    #[test]
    fn limited_source_refuses_to_read_past_limit() {
        let mut src = LimitedSource {
            inner: Box::new(io::Cursor::new(vec![7u8; 100])),
            pos: 0,
            limit: 10,
        };
        let mut buf = [0u8; 64];
        assert_eq!(src.read(&mut buf).expect("read"), 10);
        let e = src.read(&mut buf).expect_err("past the limit");
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);

        let mut exact = LimitedSource {
            inner: Box::new(io::Cursor::new(vec![7u8; 10])),
            pos: 0,
            limit: 10,
        };
        assert_eq!(exact.read(&mut buf).expect("read"), 10);
        assert_eq!(exact.read(&mut buf).expect("eof"), 0);
    }
}
