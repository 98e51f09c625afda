//! `/etc/valise/valise-transcribe.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use valise_config::ByteSize;

/// Every field has a default; the file may be absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The Unix socket the API listens on (the portal and `valisectl` connect here).
    pub socket: PathBuf,
    /// Where uploaded media wait while their job runs; emptied at start-up.
    pub spool_dir: PathBuf,
    /// Model store root (containing `current`); discovered when absent.
    pub model_store: Option<PathBuf>,
    /// Model used when a job names none; the store's default speech model when absent.
    pub default_model: Option<String>,
    /// CPU threads for whisper, all computations together; 0 = all cores.
    pub threads: u32,
    /// Whisper computations at once, each with `threads / compute_slots` threads (a batch
    /// that runs alone takes them all). A long recording runs this many batches side by side;
    /// jobs take turns per batch, so a short job waits for at most one batch of a long one.
    /// 0 = automatic: 2 when whisper runs on the CPU with 2 threads or more, else 1. Two
    /// single-threaded batches side by side measured 1.3-1.5x faster than one batch on two
    /// threads (ggml's threads wait for each other at every step of the decoder;
    /// tests/bench-transcribe/README.md, "Long recordings").
    pub compute_slots: u32,
    /// Jobs in progress at once (each holds a decoder and a whisper state).
    pub max_running_jobs: u32,
    /// Jobs waiting beyond that; more is refused with `busy`.
    pub max_queued_jobs: u32,
    pub limits: Limits,
    pub vad: VadSettings,
    pub decoding: DecodingSettings,
    /// Finished jobs are forgotten (result and all) after this many seconds.
    pub keep_finished_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest upload accepted.
    pub max_file_size: ByteSize,
    /// Longest recording accepted (checked from the header, and again while decoding).
    pub max_duration_secs: u64,
    pub max_channels: u16,
    pub max_sample_rate: u32,
    /// Wall-clock time one job may take before it is stopped.
    pub max_job_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VadSettings {
    /// Off: whisper sees all the audio, silence included.
    pub enabled: bool,
    /// Model id in the store; the store's voice-activity model when absent.
    pub model: Option<String>,
    pub threshold: f32,
    pub min_speech_ms: u32,
    pub min_silence_ms: u32,
    pub speech_pad_ms: u32,
    pub max_speech_secs: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecodingSettings {
    /// Speech is packed into batches of about this length for whisper (its window is 30 s).
    pub batch_secs: f32,
    /// Shrink whisper's audio context for batches shorter than 30 s: whisper's encoder
    /// otherwise encodes a 30 s window whatever the clip, mostly silence for a voice message.
    /// On by default: with the `min_audio_ctx` floor it measured 1.2-1.7x faster than
    /// faster-whisper on every benchmark set at equal or better WER (without it, 0.4-0.5x).
    pub trim_audio_ctx: bool,
    /// With `trim_audio_ctx`: never fewer encoder frames than this (512 = 10.24 s). A context
    /// cut to the clip itself made whisper loop on short clips; with 512 frames the measured
    /// WER equals the full context's (the suite's 25 French prompts: 19.18 % both) for
    /// 3-5x less time on short clips (tests/bench-transcribe/README.md).
    pub min_audio_ctx: u32,
    /// whisper.cpp's CPU flash attention: measured 1.2-1.6x *slower* on this CPU at 2
    /// threads (tests/bench-transcribe), for ~90 MB less per whisper state. Off by default.
    pub flash_attn: bool,
    /// Temperature fallback when decoding fails whisper's quality checks (as openai-whisper).
    pub temperature_fallback: bool,
    /// 1: greedy decoding. More: beam search with this many beams (more accurate, slower;
    /// see tests/bench-transcribe/README.md for the measured trade-off).
    pub beam_size: u32,
    /// When whisper.cpp would encode a batch a second time for its last seconds (its decoder
    /// stopped short of the end), stop it and put those seconds at the front of the next batch
    /// instead: a second pass costs a whole encoder window ([`crate::encoder_gate`]).
    pub carry_tails: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/valise/transcribe.sock"),
            spool_dir: PathBuf::from("/var/lib/valise-transcribe/spool"),
            model_store: None,
            default_model: None,
            threads: 0,
            compute_slots: 0,
            max_running_jobs: 4,
            max_queued_jobs: 64,
            limits: Limits::default(),
            vad: VadSettings::default(),
            decoding: DecodingSettings::default(),
            keep_finished_secs: 3600,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: ByteSize::gib(2),
            max_duration_secs: 4 * 3600,
            max_channels: 16,
            max_sample_rate: 384_000,
            max_job_secs: 6 * 3600,
        }
    }
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            model: None,
            threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 500,
            speech_pad_ms: 200,
            max_speech_secs: 28.0,
        }
    }
}

impl Default for DecodingSettings {
    fn default() -> Self {
        Self {
            batch_secs: 28.0,
            trim_audio_ctx: true,
            min_audio_ctx: 512,
            flash_attn: false,
            temperature_fallback: true,
            beam_size: 1,
            carry_tails: true,
        }
    }
}

impl Config {
    pub fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.threads as usize
        }
    }

    /// Whisper computations at once (`compute_slots`, or the automatic choice), never more
    /// than there are threads.
    pub fn compute_slots(&self) -> u32 {
        let threads = u32::try_from(self.threads()).unwrap_or(u32::MAX).max(1);
        match self.compute_slots {
            0 if cfg!(feature = "cuda") => 1,
            0 => threads.min(2),
            n => n.min(threads),
        }
    }

    /// Rejects settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_running_jobs == 0 {
            return Err("max_running_jobs must be at least 1".into());
        }
        if !(1.0..=30.0).contains(&self.decoding.batch_secs) {
            return Err("decoding.batch_secs must be between 1 and 30".into());
        }
        if !(64..=1500).contains(&self.decoding.min_audio_ctx) {
            return Err("decoding.min_audio_ctx must be between 64 and 1500 frames".into());
        }
        if !(0.05..=0.95).contains(&self.vad.threshold) {
            return Err("vad.threshold must be between 0.05 and 0.95".into());
        }
        if !(1.0..=30.0).contains(&self.vad.max_speech_secs) {
            return Err("vad.max_speech_secs must be between 1 and 30".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let bad: Result<Config, _> = toml::from_str("[limits]\nmax_file_sise = 3\n");
        assert!(bad.is_err());
    }

    #[test]
    fn the_shipped_example_is_the_documented_default() {
        let text = include_str!("../../../systemd/valise-transcribe.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c, Config::default());
    }
}
