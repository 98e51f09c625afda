//! Valise's engine in this process, as `valisectl transcribe` runs it without a daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use valise_protocol::Transcript;
use valise_transcribe::config::DecodingSettings;
use valise_transcribe::pipeline::{self, JobCtx, Request, WorkCounts};
use valise_transcribe::slots::ComputeSlots;
use valise_transcribe::{Config, Engine};

use crate::Lang;

/// The knobs the benchmark turns (defaults: what the daemon ships with, `threads` aside).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Options {
    /// Store root (containing `current`); discovered as the daemon does when absent.
    pub model_store: Option<PathBuf>,
    pub model: String,
    pub threads: u32,
    /// Whisper computations at once (batches side by side); 0: the daemon's automatic choice.
    pub compute_slots: u32,
    pub vad: bool,
    /// The daemon's own decoding settings (every knob it has, recorded as such).
    pub decoding: DecodingSettings,
}

impl Options {
    /// The daemon's decoding defaults for `model` with `threads` threads.
    pub fn defaults(model: &str, threads: u32) -> Self {
        let c = Config::default();
        Self {
            model_store: None,
            model: model.to_string(),
            threads,
            compute_slots: c.compute_slots,
            vad: c.vad.enabled,
            decoding: c.decoding,
        }
    }

    pub fn config(&self) -> Config {
        let mut c = Config {
            model_store: self.model_store.clone(),
            default_model: Some(self.model.clone()),
            threads: self.threads,
            compute_slots: self.compute_slots,
            ..Config::default()
        };
        c.vad.enabled = self.vad;
        c.decoding = self.decoding.clone();
        c
    }
}

/// A loaded engine and model.
#[derive(Debug)]
pub struct Runner {
    config: Config,
    engine: Engine,
    model: Arc<valise_transcribe::engine::SpeechModel>,
    /// Seconds `Engine::load` took (whisper model + VAD).
    pub load_secs: f64,
}

impl Runner {
    pub fn load(opts: &Options) -> anyhow::Result<Self> {
        let config = opts.config();
        config.validate().map_err(anyhow::Error::msg)?;
        let root = match &config.model_store {
            Some(r) => r.clone(),
            None => valise_models::discover_root()
                .context("no model store: run scripts/setup (it builds .valise/models)")?,
        };
        if !root.join("current/manifest.toml").is_file() {
            anyhow::bail!(
                "no model store at {}: run scripts/setup (it builds .valise/models)",
                root.display()
            );
        }
        let started = Instant::now();
        let engine = Engine::load(&Config {
            model_store: Some(root.clone()),
            ..config.clone()
        })
        .with_context(|| {
            format!(
                "cannot load {} from {} (run scripts/setup)",
                opts.model,
                root.display()
            )
        })?;
        let model = engine.model(None)?;
        Ok(Self {
            config,
            engine,
            model,
            load_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Transcribes one file with the language forced; returns the transcript's text.
    pub fn transcribe(&self, path: &Path, lang: Lang) -> anyhow::Result<String> {
        Ok(self.transcribe_counted(path, lang)?.0.text())
    }

    /// The whole transcript, and what the job cost whisper (batches, encoder passes).
    pub fn transcribe_counted(
        &self,
        path: &Path,
        lang: Lang,
    ) -> anyhow::Result<(Transcript, WorkCounts)> {
        let settings = valise_transcribe::jobs::settings_for(&self.config);
        let ctx = Arc::new(JobCtx::default());
        let slots = ComputeSlots::new(self.config.compute_slots());
        let req = Request {
            language: Some(lang.code().into()),
            translate: false,
        };
        let t = pipeline::transcribe(
            &self.engine,
            &self.model,
            path,
            &req,
            &settings,
            &ctx,
            &slots,
        )
        .with_context(|| format!("transcribing {}", path.display()))?;
        Ok((t, ctx.work()))
    }
}
