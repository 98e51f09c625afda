//! One Marian (Bergamot) student converted by `valise-convert marian`: its ONNX sessions, its
//! tokenizer and its lexical shortlist, and the greedy decoder (models/valise-convert/MARIAN.md,
//! "Graphs").
//!
//! Sessions need `&mut` to run (ort rc.15), so a model holds a small pool of workers (one
//! encoder and one decoder session each, one intra-op thread); a request takes a worker for one
//! batch and gives it back. The weights are constant-folded into each session, so a worker
//! costs about the model's f32 size (≈ 70 MB).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use serde::Deserialize;
use tokenizers::Tokenizer;
use valise_convert::marian::{Shortlist, cross_names, state_names};

use crate::TranslateError;

/// The parts of `model.toml` the decoder needs (the file has more; unknown keys are fine
/// here because the converter owns the format and its version is checked).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelToml {
    pub format: String,
    pub format_version: u32,
    pub src_lang: String,
    pub trg_lang: String,
    pub architecture: Architecture,
    pub shortlist: ShortlistToml,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    pub dim_emb: usize,
    pub dec_depth: usize,
    pub vocab_size: usize,
    pub eos_id: u32,
    pub max_length_factor: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShortlistToml {
    pub file: String,
    pub add_source_words: bool,
}

/// One sentence's decoding result.
pub type Decoded = Result<String, TranslateError>;

#[derive(Debug)]
struct Worker {
    encoder: Session,
    decoder: Session,
}

/// A loaded translation model (one direction).
#[derive(Debug)]
pub struct MarianModel {
    pub id: String,
    pub meta: ModelToml,
    dir: PathBuf,
    tokenizer: Tokenizer,
    shortlist: Shortlist,
    pool: Mutex<Vec<Worker>>,
    returned: Condvar,
}

fn load_err(dir: &Path, message: impl std::fmt::Display) -> TranslateError {
    TranslateError::ModelLoad {
        path: dir.to_path_buf(),
        message: message.to_string(),
    }
}

fn session(
    path: &Path,
    prepacked: &ort::session::builder::PrepackedWeights,
) -> Result<Session, TranslateError> {
    let env = valise_vad::onnx_environment()
        .ok_or_else(|| load_err(path, "ONNX Runtime is not initialised"))?;
    let e = |err: ort::Error| load_err(path, err);
    Session::builder(env)
        .map_err(e)?
        .with_intra_threads(1)
        .map_err(|err| e(err.into()))?
        .with_inter_threads(1)
        .map_err(|err| e(err.into()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|err| e(err.into()))?
        .with_prepacked_weights(prepacked)
        .map_err(|err| e(err.into()))?
        .commit_from_file(path)
        .map_err(e)
}

impl MarianModel {
    /// Loads `dir` (a converter output directory) with `workers` session pairs. ONNX Runtime
    /// must be initialised ([`valise_vad::init_onnxruntime`]).
    pub fn load(id: &str, dir: &Path, workers: usize) -> Result<Self, TranslateError> {
        let text = std::fs::read_to_string(dir.join("model.toml")).map_err(|e| load_err(dir, e))?;
        let meta: ModelToml = toml::from_str(&text).map_err(|e| load_err(dir, e))?;
        if meta.format != "valise-marian-onnx" || meta.format_version != 1 {
            return Err(load_err(
                dir,
                format!(
                    "model.toml format {} v{} (expected valise-marian-onnx v1)",
                    meta.format, meta.format_version
                ),
            ));
        }
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(dir, format!("tokenizer.json: {e}")))?;
        let vocab = meta.architecture.vocab_size;
        let shortlist = Shortlist::read(&dir.join(&meta.shortlist.file), vocab, vocab)
            .map_err(|e| load_err(dir, e))?;
        // The session pairs of one model share ONNX Runtime's prepacked copies of the weights
        // (the MatMul kernels repack them at load): one copy per model, not per worker.
        let prepacked = ort::session::builder::PrepackedWeights::new();
        let mut pool = Vec::with_capacity(workers.max(1));
        for _ in 0..workers.max(1) {
            pool.push(Worker {
                encoder: session(&dir.join("encoder.onnx"), &prepacked)?,
                decoder: session(&dir.join("decoder.onnx"), &prepacked)?,
            });
        }
        Ok(Self {
            id: id.to_owned(),
            meta,
            dir: dir.to_path_buf(),
            tokenizer,
            shortlist,
            pool: Mutex::new(pool),
            returned: Condvar::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Source token ids of `text`, `</s>` excluded.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, TranslateError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TranslateError::Engine(format!("tokenizing: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Byte offsets in `text` of each token (for hard splits of over-long sentences).
    pub fn token_offsets(&self, text: &str) -> Result<Vec<(usize, usize)>, TranslateError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TranslateError::Engine(format!("tokenizing: {e}")))?;
        Ok(enc.get_offsets().to_vec())
    }

    fn take(&self) -> Worker {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(w) = pool.pop() {
                return w;
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, w: Worker) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(w);
        self.returned.notify_one();
    }

    /// Translates one batch of already-tokenized sentences (ids without `</s>`), greedy, with
    /// each row restricted to its own shortlist. Empty rows give empty strings.
    pub fn translate_ids(&self, rows: &[Vec<u32>]) -> Vec<Decoded> {
        if rows.is_empty() {
            return Vec::new();
        }
        let mut worker = self.take();
        let out = self.run_batch(&mut worker, rows);
        self.give_back(worker);
        match out {
            Ok(v) => v,
            Err(e) => rows
                .iter()
                .map(|_| Err(TranslateError::Engine(e.to_string())))
                .collect(),
        }
    }

    fn run_batch(&self, w: &mut Worker, rows: &[Vec<u32>]) -> Result<Vec<Decoded>, TranslateError> {
        let eng = |e: ort::Error| TranslateError::Engine(e.to_string());
        let arch = &self.meta.architecture;
        let eos = arch.eos_id;
        let b = rows.len();
        let len = rows.iter().map(|r| r.len() + 1).max().unwrap_or(1);
        let mut ids = vec![i64::from(eos); b * len];
        let mut mask = vec![0f32; b * len];
        let mut max_steps = Vec::with_capacity(b);
        for (r, row) in rows.iter().enumerate() {
            for (j, &t) in row.iter().chain(std::iter::once(&eos)).enumerate() {
                ids[r * len + j] = i64::from(t);
                mask[r * len + j] = 1.0;
            }
            max_steps.push(((row.len() + 1) as f64 * arch.max_length_factor) as usize);
        }

        // Encoder: cross-attention keys/values of every decoder layer.
        let mut cross: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        {
            let outputs = w
                .encoder
                .run(vec![
                    (
                        Cow::Borrowed("input_ids"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([b, len], &ids[..])).map_err(eng)?,
                        ),
                    ),
                    (
                        Cow::Borrowed("src_mask"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([b, len], &mask[..])).map_err(eng)?,
                        ),
                    ),
                ])
                .map_err(eng)?;
            for l in 1..=arch.dec_depth {
                let (k, v) = cross_names(l);
                for name in [k, v] {
                    let (shape, data) = outputs[name.as_str()]
                        .try_extract_tensor::<f32>()
                        .map_err(eng)?;
                    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                    cross.push((shape, data.to_vec()));
                }
            }
        }

        // Shortlists: the union goes to the graph, each row keeps a mask of its own ids.
        let per_row: Vec<Vec<u32>> = rows
            .iter()
            .map(|row| {
                let mut src = row.clone();
                src.push(eos);
                self.shortlist
                    .generate(&src, self.meta.shortlist.add_source_words)
            })
            .collect();
        let mut union: Vec<u32> = per_row.iter().flatten().copied().collect();
        union.sort_unstable();
        union.dedup();
        let allowed: Vec<Vec<bool>> = per_row
            .iter()
            .map(|list| {
                let mut m = vec![false; union.len()];
                for id in list {
                    if let Ok(p) = union.binary_search(id) {
                        m[p] = true;
                    }
                }
                m
            })
            .collect();
        let shortlist: Vec<i64> = union.iter().map(|&i| i64::from(i)).collect();
        let k = shortlist.len();

        let dim = arch.dim_emb;
        let mut states = vec![vec![0f32; b * dim]; arch.dec_depth];
        let mut prev = vec![0i64; b];
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let steps = max_steps.iter().copied().max().unwrap_or(0);
        for step in 0..steps {
            let step_in = [step as i64];
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
                (
                    Cow::Borrowed("prev_ids"),
                    TensorRef::from_array_view(([b], &prev[..]))
                        .map_err(eng)?
                        .into(),
                ),
                (
                    Cow::Borrowed("step"),
                    TensorRef::from_array_view(([1usize], &step_in[..]))
                        .map_err(eng)?
                        .into(),
                ),
                (
                    Cow::Borrowed("src_mask"),
                    TensorRef::from_array_view(([b, len], &mask[..]))
                        .map_err(eng)?
                        .into(),
                ),
                (
                    Cow::Borrowed("shortlist_ids"),
                    TensorRef::from_array_view(([k], &shortlist[..]))
                        .map_err(eng)?
                        .into(),
                ),
            ];
            for l in 1..=arch.dec_depth {
                let (kn, vn) = cross_names(l);
                let (ks, kd) = &cross[2 * (l - 1)];
                let (vs, vd) = &cross[2 * (l - 1) + 1];
                inputs.push((
                    Cow::Owned(kn),
                    TensorRef::from_array_view((ks.clone(), &kd[..]))
                        .map_err(eng)?
                        .into(),
                ));
                inputs.push((
                    Cow::Owned(vn),
                    TensorRef::from_array_view((vs.clone(), &vd[..]))
                        .map_err(eng)?
                        .into(),
                ));
                let (s, _) = state_names(l);
                inputs.push((
                    Cow::Owned(s),
                    TensorRef::from_array_view(([b, dim], &states[l - 1][..]))
                        .map_err(eng)?
                        .into(),
                ));
            }
            let outputs = w.decoder.run(inputs).map_err(eng)?;
            let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().map_err(eng)?;
            for r in 0..b {
                if done[r] {
                    continue;
                }
                let row = &logits[r * k..(r + 1) * k];
                let mut best: Option<usize> = None;
                for (i, &v) in row.iter().enumerate() {
                    if allowed[r][i] && best.is_none_or(|bi| v > row[bi]) {
                        best = Some(i);
                    }
                }
                let token = best.map_or(i64::from(eos), |i| shortlist[i]);
                if token == i64::from(eos) {
                    done[r] = true;
                } else {
                    out[r].push(token as u32);
                    prev[r] = token;
                    if step + 1 >= max_steps[r] {
                        done[r] = true;
                    }
                }
            }
            for (l, state) in states.iter_mut().enumerate() {
                let (_, s) = state_names(l + 1);
                let (_, data) = outputs[s.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(eng)?;
                state.copy_from_slice(data);
            }
            drop(outputs);
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out
            .iter()
            .map(|toks| {
                self.tokenizer
                    .decode(toks, true)
                    .map_err(|e| TranslateError::Engine(format!("detokenizing: {e}")))
            })
            .collect())
    }
}
