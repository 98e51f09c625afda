//! Loaded models, shared by every job.
//!
//! A whisper model is loaded once (`WhisperContext`, read-only weights) and shared through an
//! `Arc`; each job creates its own `WhisperState`s (KV caches, mel buffers; one per batch it
//! runs at once), so jobs never share mutable whisper memory. The VAD model is loaded once as
//! well.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use valise_models::{ModelEntry, ModelKind, Store};
use valise_protocol::ModelInfo;
use valise_vad::VadModel;
use whisper_rs::{WhisperContext, WhisperContextParameters};

use crate::TranscribeError;
use crate::config::Config;

/// A whisper model ready to use.
#[derive(Debug)]
pub struct SpeechModel {
    pub id: String,
    pub multilingual: bool,
    pub ctx: WhisperContext,
}

/// Models and runtime shared by all jobs.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    default_model: String,
    flash_attn: bool,
    loaded: Mutex<HashMap<String, Arc<SpeechModel>>>,
    vad: Option<Arc<VadModel>>,
}

impl Engine {
    /// Opens the store, loads the default speech model and (if enabled) the VAD model.
    pub fn load(config: &Config) -> Result<Self, TranscribeError> {
        // whisper.cpp and ggml print to stderr by default; route them through tracing.
        whisper_rs::install_logging_hooks();
        let store = match &config.model_store {
            Some(root) => Store::open(root)?,
            None => Store::discover()?,
        };
        let default_model = match &config.default_model {
            Some(id) => store.get(id)?.id.clone(),
            None => store
                .default_of(ModelKind::SpeechToText)
                .ok_or_else(|| TranscribeError::ModelLoad {
                    id: "(default)".into(),
                    message: format!("no speech model in {}", store.slot().display()),
                })?
                .id
                .clone(),
        };
        let vad = if config.vad.enabled {
            Some(Arc::new(load_vad(&store, config.vad.model.as_deref())?))
        } else {
            None
        };
        let engine = Self {
            store,
            default_model,
            flash_attn: config.decoding.flash_attn,
            loaded: Mutex::new(HashMap::new()),
            vad,
        };
        engine.model(None)?;
        Ok(engine)
    }

    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    pub fn vad(&self) -> Option<&Arc<VadModel>> {
        self.vad.as_ref()
    }

    /// The speech model `id` (default when `None`), loading it on first use.
    pub fn model(&self, id: Option<&str>) -> Result<Arc<SpeechModel>, TranscribeError> {
        let id = id.unwrap_or(&self.default_model);
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| TranscribeError::Internal("model table poisoned".into()))?;
        if let Some(m) = loaded.get(id) {
            return Ok(m.clone());
        }
        let entry = self.store.get(id)?.clone();
        if entry.kind != ModelKind::SpeechToText {
            return Err(TranscribeError::NotSpeechModel { id: entry.id });
        }
        let model = Arc::new(load_whisper(&self.store, &entry, self.flash_attn)?);
        loaded.insert(entry.id.clone(), model.clone());
        Ok(model)
    }

    pub fn models(&self) -> Vec<ModelInfo> {
        let loaded: Vec<String> = self
            .loaded
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        self.store
            .catalog()
            .models
            .iter()
            .filter(|m| m.kind == ModelKind::SpeechToText)
            .map(|m| ModelInfo {
                id: m.id.clone(),
                kind: "speech-to-text".into(),
                languages: m.languages.clone(),
                precision: m.precision.clone(),
                size_bytes: m.size(),
                loaded: loaded.contains(&m.id),
                default: m.id == self.default_model,
            })
            .collect()
    }

    pub fn loaded_ids(&self) -> Vec<String> {
        self.loaded
            .lock()
            .map(|l| {
                let mut v: Vec<String> = l.keys().cloned().collect();
                v.sort();
                v
            })
            .unwrap_or_default()
    }
}

fn model_file(store: &Store, entry: &ModelEntry) -> Result<PathBuf, TranscribeError> {
    store.check_sizes(entry)?;
    store
        .file(entry, 0)
        .ok_or_else(|| TranscribeError::ModelLoad {
            id: entry.id.clone(),
            message: "manifest lists no file".into(),
        })
}

fn load_whisper(
    store: &Store,
    entry: &ModelEntry,
    flash_attn: bool,
) -> Result<SpeechModel, TranscribeError> {
    let path = model_file(store, entry)?;
    let mut params = WhisperContextParameters::default();
    params.use_gpu(cfg!(feature = "cuda"));
    params.flash_attn(flash_attn);
    let start = std::time::Instant::now();
    let ctx =
        WhisperContext::new_with_params(&path, params).map_err(|e| TranscribeError::ModelLoad {
            id: entry.id.clone(),
            message: e.to_string(),
        })?;
    tracing::info!(model = %entry.id, ms = start.elapsed().as_millis() as u64, "speech model loaded");
    Ok(SpeechModel {
        id: entry.id.clone(),
        multilingual: ctx.is_multilingual(),
        ctx,
    })
}

fn load_vad(store: &Store, id: Option<&str>) -> Result<VadModel, TranscribeError> {
    let entry = match id {
        Some(id) => store.get(id)?,
        None => store.default_of(ModelKind::VoiceActivity).ok_or_else(|| {
            TranscribeError::ModelLoad {
                id: "(vad)".into(),
                message: "no voice-activity model in the store (or set vad.enabled = false)".into(),
            }
        })?,
    };
    let runtime =
        store
            .default_of(ModelKind::Runtime)
            .ok_or_else(|| TranscribeError::ModelLoad {
                id: entry.id.clone(),
                message: "no ONNX Runtime library in the store".into(),
            })?;
    let runtime_path = model_file(store, runtime)?;
    valise_vad::init_onnxruntime(&runtime_path)?;
    let path = model_file(store, entry)?;
    Ok(VadModel::load(&path)?)
}
