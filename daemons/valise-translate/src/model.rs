//! One Marian (Bergamot) student converted by `valise-convert marian`: its ONNX sessions, its
//! tokenizer and its lexical shortlist, and the greedy decoder (models/valise-convert/MARIAN.md,
//! "Graphs").
//!
//! Sessions need `&mut` to run (ort rc.15), so a model holds a small pool of workers (one
//! encoder and one decoder session each, one intra-op thread); a [`Decoding`] takes a worker
//! while it has rows and gives it back when empty. The weights are constant-folded into each
//! session, so a worker costs about the model's f32 size (≈ 70 MB).
//!
//! Decoding is continuous: a [`Decoding`] holds the rows being decoded together; rows join
//! between decoder steps (after their own encoder run) and leave as soon as they finish, each
//! at its own step. Which rows share a step never changes a row's translation: padded source
//! positions are masked to exact zeros and each row's argmax is restricted to its own shortlist
//! (tested: batched = batch 1 = the reference).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use serde::Deserialize;
use tokenizers::Tokenizer;
use valise_convert::marian::{
    OutputDtype, OutputLayer, OutputLayerSpec, Shortlist, cross_names, state_names,
};

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
    pub output_layer: OutputLayerToml,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    pub dim_emb: usize,
    pub heads: usize,
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

/// `[output_layer]`: where the output projection lies (valise-convert's `OutputLayerSpec`).
#[derive(Debug, Clone, Deserialize)]
pub struct OutputLayerToml {
    pub file: String,
    pub weight_offset: u64,
    pub weight_dtype: String,
    pub weight_scale_f32_bits: Option<u32>,
    pub bias_offset: u64,
}

impl OutputLayerToml {
    fn spec(&self) -> Result<OutputLayerSpec, String> {
        let (t, bits) = (self.weight_dtype.as_str(), self.weight_scale_f32_bits);
        let dtype = OutputDtype::from_toml(t, bits).ok_or_else(|| {
            format!(
                "[output_layer] weight_dtype {t:?} with scale bits {bits:?} (expected int8 with a scale, or f32)"
            )
        })?;
        Ok(OutputLayerSpec {
            file: self.file.clone(),
            weight_offset: self.weight_offset,
            dtype,
            bias_offset: self.bias_offset,
        })
    }
}

/// The `model.toml` format version this engine runs (valise-convert's `FORMAT_VERSION`).
const FORMAT_VERSION: u32 = valise_convert::marian::FORMAT_VERSION;

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
    output: OutputLayer,
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
        // The memory pattern plans a run's buffers per input shape; with rows joining and
        // leaving between steps the shapes change nearly every step, so the planning costs
        // more than it saves (measured: +8 % batch-1 and +5-9 % concurrent throughput off).
        .with_memory_pattern(false)
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
        if meta.format != "valise-marian-onnx" || meta.format_version != FORMAT_VERSION {
            return Err(load_err(
                dir,
                format!(
                    "model.toml format {} v{} (expected valise-marian-onnx v{FORMAT_VERSION}: \
                     convert the model again with this release's valise-convert)",
                    meta.format, meta.format_version
                ),
            ));
        }
        let arch = &meta.architecture;
        if arch.heads == 0 || !arch.dim_emb.is_multiple_of(arch.heads) || arch.dec_depth == 0 {
            return Err(load_err(
                dir,
                format!(
                    "architecture: dim_emb {} heads {} dec_depth {}",
                    arch.dim_emb, arch.heads, arch.dec_depth
                ),
            ));
        }
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(dir, format!("tokenizer.json: {e}")))?;
        let vocab = meta.architecture.vocab_size;
        let shortlist = Shortlist::read(&dir.join(&meta.shortlist.file), vocab, vocab)
            .map_err(|e| load_err(dir, e))?;
        let spec = meta.output_layer.spec().map_err(|e| load_err(dir, e))?;
        let output = OutputLayer::read(dir, &spec, vocab, meta.architecture.dim_emb)
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
            output,
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

    /// Translates already-tokenized sentences (ids without `</s>`) decoded together, greedy,
    /// each row restricted to its own shortlist. Empty rows give empty strings.
    pub fn translate_ids(&self, rows: &[Vec<u32>]) -> Vec<Decoded> {
        let mut out: Vec<Option<Decoded>> = (0..rows.len()).map(|_| None).collect();
        let mut dec = Decoding::new(self);
        for (i, r) in dec.add(rows.iter().cloned().enumerate().collect()) {
            out[i] = Some(r);
        }
        while !dec.is_empty() {
            for (i, r) in dec.step() {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(TranslateError::Internal("sentence lost".into()))))
            .collect()
    }
}

/// One row's cross-attention inputs, per decoder layer: keys `[H, dh, n]`, values `[H, n, dh]`.
type Cross = Vec<(Vec<f32>, Vec<f32>)>;

/// One sentence being decoded.
#[derive(Debug)]
struct Row<T> {
    tag: T,
    /// Source length, `</s>` included.
    src_len: usize,
    /// At `src_len`.
    cross: Cross,
    /// Per decoder layer: the SSRU state `[D]`.
    states: Vec<Vec<f32>>,
    prev: i64,
    step: usize,
    max_steps: usize,
    out: Vec<u32>,
    /// This row's shortlist (sorted ids).
    shortlist: Vec<u32>,
}

/// The decoder inputs that change only with the batch's rows. Joining rows are appended (ids
/// new to the union of shortlists, their output rows and source blocks; a full rebuild only
/// when a row's source is longer than the padding), leaving rows are compacted away in place.
/// The union may then be a superset, which is exact (each row keeps its own mask, ties go to
/// the lowest id as in a sorted union) but costs: the output Gemm grows with it, so the union
/// is rebuilt once a quarter of it is stale. Rebuilding on every change cost 8 % of a worker's
/// time in the one-sentence-per-request benchmark: gathering 1,000+ output rows is memory-bound.
#[derive(Debug, Default)]
struct Fixed {
    /// Padded source length.
    len: usize,
    /// `[b, len]`.
    mask: Vec<f32>,
    /// Per decoder layer, `[b, H, dh, len]` and `[b, H, len, dh]`, zeros past each row's end.
    cross: Vec<(Vec<f32>, Vec<f32>)>,
    /// Union of the rows' shortlists (the i64 the graph takes), in the order gathered.
    ids: Vec<i64>,
    /// Position of each vocabulary id in `ids`, `u32::MAX` if absent (vocab-sized once set).
    pos: Vec<u32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    /// Per row: which of `ids` it may produce.
    allowed: Vec<Vec<bool>>,
    /// Rows left since `ids` was computed.
    stale: bool,
}

impl Fixed {
    /// Moves the last row's blocks into row `i` and drops the last (as `Vec::swap_remove`).
    fn swap_remove(&mut self, i: usize, rows_before: usize) {
        fn block_swap(v: &mut Vec<f32>, i: usize, b: usize) {
            let n = v.len() / b;
            if i + 1 < b {
                v.copy_within((b - 1) * n..b * n, i * n);
            }
            v.truncate((b - 1) * n);
        }
        block_swap(&mut self.mask, i, rows_before);
        for (k, v) in &mut self.cross {
            block_swap(k, i, rows_before);
            block_swap(v, i, rows_before);
        }
        self.allowed.swap_remove(i);
    }
}

/// Rows of one model decoded together, continuously: [`add`](Self::add) encodes rows and lets
/// them join, [`step`](Self::step) runs one decoder step for all and hands back the finished.
/// `T` tags each row for the caller. Holds one of the model's workers while it has rows.
pub struct Decoding<'m, T> {
    model: &'m MarianModel,
    worker: Option<Worker>,
    rows: Vec<Row<T>>,
    /// Reused from step to step (its buffers too: fresh ones of this size cost page faults).
    fixed: Fixed,
    /// False: `fixed` is rebuilt before the next step.
    fixed_valid: bool,
}

impl<T> std::fmt::Debug for Decoding<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoding")
            .field("model", &self.model.id)
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl<T> Drop for Decoding<'_, T> {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.model.give_back(w);
        }
    }
}

fn eng(e: ort::Error) -> TranslateError {
    TranslateError::Engine(e.to_string())
}

impl<'m, T> Decoding<'m, T> {
    pub fn new(model: &'m MarianModel) -> Self {
        Self {
            model,
            worker: None,
            rows: Vec::new(),
            fixed: Fixed::default(),
            fixed_valid: false,
        }
    }

    /// Rows being decoded.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Encodes `rows` (token ids without `</s>`) in one encoder run and lets them join. Returns
    /// the rows that failed (all of them if the encoder did), with their error.
    pub fn add(&mut self, rows: Vec<(T, Vec<u32>)>) -> Vec<(T, Decoded)> {
        if rows.is_empty() {
            return Vec::new();
        }
        let encoded = {
            let model = self.model;
            let w = self.worker.get_or_insert_with(|| model.take());
            model.encode(w, rows.iter().map(|(_, ids)| ids.as_slice()))
        };
        match encoded {
            Ok(cross) => {
                let first = self.rows.len();
                let model = self.model;
                self.rows.extend(
                    rows.into_iter()
                        .zip(cross)
                        .map(|((tag, ids), cross)| model.new_row(tag, &ids, cross)),
                );
                if self.fixed_valid
                    && self.rows[first..]
                        .iter()
                        .all(|r| r.src_len <= self.fixed.len)
                {
                    self.model
                        .append_fixed(&mut self.fixed, &self.rows[first..]);
                } else {
                    self.fixed_valid = false;
                }
                Vec::new()
            }
            Err(e) => {
                self.release_if_empty();
                let msg = e.to_string();
                rows.into_iter()
                    .map(|(tag, _)| (tag, Err(TranslateError::Engine(msg.clone()))))
                    .collect()
            }
        }
    }

    /// Drops the rows `leave` says so (a request past its deadline) and returns their tags.
    pub fn remove_where(&mut self, leave: impl Fn(&T) -> bool) -> Vec<T> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.rows.len() {
            if leave(&self.rows[i].tag) {
                gone.push(self.remove(i).tag);
            } else {
                i += 1;
            }
        }
        self.release_if_empty();
        gone
    }

    fn remove(&mut self, i: usize) -> Row<T> {
        if self.fixed_valid {
            self.fixed.swap_remove(i, self.rows.len());
            self.fixed.stale = true;
        }
        self.rows.swap_remove(i)
    }

    fn release_if_empty(&mut self) {
        if self.rows.is_empty() {
            self.fixed_valid = false;
            if let Some(w) = self.worker.take() {
                self.model.give_back(w);
            }
        }
    }

    /// One decoder step for every row; returns the rows that finished, with their
    /// translation. An engine error fails every row.
    pub fn step(&mut self) -> Vec<(T, Decoded)> {
        if self.rows.is_empty() {
            return Vec::new();
        }
        let result = self.try_step();
        let finished = match result {
            Ok(finished) => finished,
            Err(e) => {
                let msg = e.to_string();
                let all: Vec<(T, Decoded)> = std::mem::take(&mut self.rows)
                    .into_iter()
                    .map(|r| (r.tag, Err(TranslateError::Engine(msg.clone()))))
                    .collect();
                self.release_if_empty();
                return all;
            }
        };
        let mut out = Vec::with_capacity(finished.len());
        // Highest index first, so that swap_remove does not move a row still to be removed.
        for i in finished.into_iter().rev() {
            let row = self.remove(i);
            let text = self
                .model
                .tokenizer
                .decode(&row.out, true)
                .map_err(|e| TranslateError::Engine(format!("detokenizing: {e}")));
            out.push((row.tag, text));
        }
        self.release_if_empty();
        out
    }

    /// Runs the step; returns the indices of the rows that finished, ascending.
    fn try_step(&mut self) -> Result<Vec<usize>, TranslateError> {
        let model = self.model;
        if !self.fixed_valid {
            model.fill_fixed(&mut self.fixed, &self.rows);
            self.fixed_valid = true;
        } else if self.fixed.stale {
            model.shrink_shortlist(&mut self.fixed, &self.rows);
        }
        let fixed = &self.fixed;
        let Some(w) = &mut self.worker else {
            return Err(TranslateError::Internal("decoding without a worker".into()));
        };
        let arch = &model.meta.architecture;
        let (b, d, len, k) = (self.rows.len(), arch.dim_emb, fixed.len, fixed.ids.len());
        let (heads, dh) = (arch.heads, arch.dim_emb / arch.heads);
        let prev: Vec<i64> = self.rows.iter().map(|r| r.prev).collect();
        let steps: Vec<i64> = self.rows.iter().map(|r| r.step as i64).collect();
        let states: Vec<Vec<f32>> = (0..arch.dec_depth)
            .map(|l| {
                self.rows
                    .iter()
                    .flat_map(|r| r.states[l].iter().copied())
                    .collect()
            })
            .collect();
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (
                Cow::Borrowed("prev_ids"),
                TensorRef::from_array_view(([b], &prev[..]))
                    .map_err(eng)?
                    .into(),
            ),
            (
                Cow::Borrowed("step"),
                TensorRef::from_array_view(([b], &steps[..]))
                    .map_err(eng)?
                    .into(),
            ),
            (
                Cow::Borrowed("src_mask"),
                TensorRef::from_array_view(([b, len], &fixed.mask[..]))
                    .map_err(eng)?
                    .into(),
            ),
            (
                Cow::Borrowed("out_w"),
                TensorRef::from_array_view(([k, d], &fixed.out_w[..]))
                    .map_err(eng)?
                    .into(),
            ),
            (
                Cow::Borrowed("out_b"),
                TensorRef::from_array_view(([k], &fixed.out_b[..]))
                    .map_err(eng)?
                    .into(),
            ),
        ];
        for l in 1..=arch.dec_depth {
            let (kn, vn) = cross_names(l);
            let (kd, vd) = &fixed.cross[l - 1];
            inputs.push((
                Cow::Owned(kn),
                TensorRef::from_array_view(([b, heads, dh, len], &kd[..]))
                    .map_err(eng)?
                    .into(),
            ));
            inputs.push((
                Cow::Owned(vn),
                TensorRef::from_array_view(([b, heads, len, dh], &vd[..]))
                    .map_err(eng)?
                    .into(),
            ));
            let (sn, _) = state_names(l);
            inputs.push((
                Cow::Owned(sn),
                TensorRef::from_array_view(([b, d], &states[l - 1][..]))
                    .map_err(eng)?
                    .into(),
            ));
        }
        let outputs = w.decoder.run(inputs).map_err(eng)?;
        let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().map_err(eng)?;
        let eos = i64::from(arch.eos_id);
        let mut finished = Vec::new();
        for (r, row) in self.rows.iter_mut().enumerate() {
            let scores = &logits[r * k..(r + 1) * k];
            let allowed = &fixed.allowed[r];
            // First maximum in id order (the union is not always sorted).
            let mut best: Option<usize> = None;
            for (i, &v) in scores.iter().enumerate() {
                if allowed[i]
                    && best.is_none_or(|bi| {
                        v > scores[bi] || (v == scores[bi] && fixed.ids[i] < fixed.ids[bi])
                    })
                {
                    best = Some(i);
                }
            }
            let token = best.map_or(eos, |i| fixed.ids[i]);
            if token == eos {
                finished.push(r);
            } else {
                row.out.push(token as u32);
                row.prev = token;
                if row.step + 1 >= row.max_steps {
                    finished.push(r);
                }
            }
            row.step += 1;
        }
        for l in 0..arch.dec_depth {
            let (_, sn) = state_names(l + 1);
            let (_, data) = outputs[sn.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(eng)?;
            for (r, row) in self.rows.iter_mut().enumerate() {
                row.states[l].copy_from_slice(&data[r * d..(r + 1) * d]);
            }
        }
        Ok(finished)
    }
}

impl MarianModel {
    /// A row about to be decoded: its cross-attention keys and values (from `encode`), zero
    /// states, its shortlist and step budget.
    fn new_row<T>(&self, tag: T, ids: &[u32], cross: Cross) -> Row<T> {
        let arch = &self.meta.architecture;
        let mut src = ids.to_vec();
        src.push(arch.eos_id);
        Row {
            tag,
            src_len: src.len(),
            cross,
            states: vec![vec![0f32; arch.dim_emb]; arch.dec_depth],
            prev: 0,
            step: 0,
            max_steps: (src.len() as f64 * arch.max_length_factor) as usize,
            out: Vec::new(),
            shortlist: self
                .shortlist
                .generate(&src, self.meta.shortlist.add_source_words),
        }
    }

    /// One packed encoder run over `rows`; per row and decoder layer, its cross-attention keys
    /// `[H, dh, n]` and values `[H, n, dh]` at its own length `n` (`</s>` included).
    fn encode<'a>(
        &self,
        w: &mut Worker,
        rows: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
    ) -> Result<Vec<Cross>, TranslateError> {
        let arch = &self.meta.architecture;
        let eos = arch.eos_id;
        let b = rows.len();
        let len = rows.clone().map(|r| r.len() + 1).max().unwrap_or(1);
        // Packed tokens (`</s>` ending each sentence) and the packed <-> padded maps.
        let total: usize = rows.clone().map(|r| r.len() + 1).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        let mut pack_index = Vec::with_capacity(total);
        let mut pad_index = vec![total as i64; b * len];
        let mut mask = vec![0f32; b * len];
        for (r, row) in rows.clone().enumerate() {
            for (j, &t) in row.iter().chain(std::iter::once(&eos)).enumerate() {
                pad_index[r * len + j] = ids.len() as i64;
                pack_index.push((r * len + j) as i64);
                ids.push(i64::from(t));
                positions.push(j as f32);
                mask[r * len + j] = 1.0;
            }
        }
        let outputs = w
            .encoder
            .run(vec![
                (
                    Cow::Borrowed("input_ids"),
                    SessionInputValue::from(
                        TensorRef::from_array_view(([total], &ids[..])).map_err(eng)?,
                    ),
                ),
                (
                    Cow::Borrowed("positions"),
                    SessionInputValue::from(
                        TensorRef::from_array_view(([total], &positions[..])).map_err(eng)?,
                    ),
                ),
                (
                    Cow::Borrowed("pad_index"),
                    SessionInputValue::from(
                        TensorRef::from_array_view(([b * len], &pad_index[..])).map_err(eng)?,
                    ),
                ),
                (
                    Cow::Borrowed("pack_index"),
                    SessionInputValue::from(
                        TensorRef::from_array_view(([total], &pack_index[..])).map_err(eng)?,
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
        let (heads, dh) = (arch.heads, arch.dim_emb / arch.heads);
        let lens: Vec<usize> = rows.map(|r| r.len() + 1).collect();
        let mut out: Vec<Cross> = lens
            .iter()
            .map(|_| Vec::with_capacity(arch.dec_depth))
            .collect();
        for l in 1..=arch.dec_depth {
            let (kn, vn) = cross_names(l);
            let (ks, kd) = outputs[kn.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(eng)?;
            let (vs, vd) = outputs[vn.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(eng)?;
            let expect_k = [b, heads, dh, len].map(|v| v as i64);
            let expect_v = [b, heads, len, dh].map(|v| v as i64);
            if **ks != expect_k || **vs != expect_v {
                return Err(TranslateError::Engine(format!(
                    "encoder output shapes {ks:?} / {vs:?}, expected {expect_k:?} / {expect_v:?}"
                )));
            }
            for (r, (cross, &n)) in out.iter_mut().zip(&lens).enumerate() {
                let mut k = Vec::with_capacity(heads * dh * n);
                for hd in 0..heads * dh {
                    let at = (r * heads * dh + hd) * len;
                    k.extend_from_slice(&kd[at..at + n]);
                }
                let mut v = Vec::with_capacity(heads * n * dh);
                for h in 0..heads {
                    let at = (r * heads + h) * len * dh;
                    v.extend_from_slice(&vd[at..at + n * dh]);
                }
                cross.push((k, v));
            }
        }
        Ok(out)
    }

    /// Fills `f` with the membership-dependent decoder inputs for `rows` (buffers reused):
    /// padded to the longest row, every row appended, the union of shortlists sorted.
    fn fill_fixed<T>(&self, f: &mut Fixed, rows: &[Row<T>]) {
        f.len = rows.iter().map(|r| r.src_len).max().unwrap_or(1);
        f.stale = false;
        f.mask.clear();
        f.cross
            .resize_with(self.meta.architecture.dec_depth, Default::default);
        for (k, v) in &mut f.cross {
            k.clear();
            v.clear();
        }
        for row in rows {
            self.append_source(f, row);
        }
        self.set_shortlist(f, rows, union_of(rows));
    }

    /// Shrinks a stale union of shortlists once a quarter of it is no longer needed.
    fn shrink_shortlist<T>(&self, f: &mut Fixed, rows: &[Row<T>]) {
        f.stale = false;
        let union = union_of(rows);
        if union.len() * 4 < f.ids.len() * 3 {
            self.set_shortlist(f, rows, union);
        }
    }

    /// The shortlist part of the inputs: `ids` (sorted), the output layer's rows, each row's
    /// mask.
    fn set_shortlist<T>(&self, f: &mut Fixed, rows: &[Row<T>], union: Vec<u32>) {
        for &id in &f.ids {
            f.pos[id as usize] = u32::MAX;
        }
        f.pos.resize(self.meta.architecture.vocab_size, u32::MAX);
        for (p, &id) in union.iter().enumerate() {
            f.pos[id as usize] = p as u32;
        }
        f.allowed.resize_with(rows.len(), Vec::new);
        for (m, row) in f.allowed.iter_mut().zip(rows) {
            row_mask(m, &f.pos, &row.shortlist, union.len());
        }
        self.output.gather(&union, &mut f.out_w, &mut f.out_b);
        f.ids.clear();
        f.ids.extend(union.iter().map(|&i| i64::from(i)));
    }

    /// Appends `row`'s source block (no longer than `f.len`) to the mask and cross tensors,
    /// zeros past its end.
    fn append_source<T>(&self, f: &mut Fixed, row: &Row<T>) {
        let arch = &self.meta.architecture;
        let (heads, dh, len, n) = (arch.heads, arch.dim_emb / arch.heads, f.len, row.src_len);
        let at = f.mask.len();
        f.mask.resize(at + len, 0.0);
        f.mask[at..at + n].fill(1.0);
        for ((k, v), (rk, rv)) in f.cross.iter_mut().zip(&row.cross) {
            for hd in 0..heads * dh {
                let at = k.len();
                k.resize(at + len, 0.0);
                k[at..at + n].copy_from_slice(&rk[hd * n..(hd + 1) * n]);
            }
            for h in 0..heads {
                let at = v.len();
                v.resize(at + len * dh, 0.0);
                v[at..at + n * dh].copy_from_slice(&rv[h * n * dh..(h + 1) * n * dh]);
            }
        }
    }

    /// Appends `rows` (joining, each no longer than `f.len`) to `f`: their source blocks, the
    /// ids of their shortlists not in the union yet, their masks.
    fn append_fixed<T>(&self, f: &mut Fixed, rows: &[Row<T>]) {
        for row in rows {
            self.append_source(f, row);
            let new: Vec<u32> = row
                .shortlist
                .iter()
                .copied()
                .filter(|&id| f.pos[id as usize] == u32::MAX)
                .collect();
            for &id in &new {
                f.pos[id as usize] = f.ids.len() as u32;
                f.ids.push(i64::from(id));
            }
            self.output.append(&new, &mut f.out_w, &mut f.out_b);
        }
        let k = f.ids.len();
        for m in &mut f.allowed {
            m.resize(k, false);
        }
        for row in rows {
            let mut m = Vec::new();
            row_mask(&mut m, &f.pos, &row.shortlist, k);
            f.allowed.push(m);
        }
    }
}

/// `m` = which of the union's `k` positions (`pos`: id → position) `shortlist` allows.
fn row_mask(m: &mut Vec<bool>, pos: &[u32], shortlist: &[u32], k: usize) {
    m.clear();
    m.resize(k, false);
    for &id in shortlist {
        if let Some(&p) = pos.get(id as usize)
            && let Some(slot) = m.get_mut(p as usize)
        {
            *slot = true;
        }
    }
}

/// The sorted union of the rows' shortlists.
fn union_of<T>(rows: &[Row<T>]) -> Vec<u32> {
    let mut union: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.shortlist.iter().copied())
        .collect();
    union.sort_unstable();
    union.dedup();
    union
}
