//! CTranslate2 `WhisperSpec` → whisper.cpp GGML.
//!
//! The conversion runs in two phases:
//!
//! 1. **Plan.** Every CTranslate2 variable is validated (shape, dtype, model
//!    settings, zero key biases) and mapped onto the openai-whisper state-dict
//!    name whisper.cpp expects, as an element range of a source variable
//!    (fused projections are row-major, so splitting them by rows is a range).
//!    Any variable left unused is an error: converting a model whose layout we
//!    do not fully understand could silently produce garbage.
//! 2. **Write.** Tensors are materialised one at a time, encoded (f32, f16 or
//!    a quantized block type) and streamed through a SHA-256 into a temp file
//!    next to the output, which is fsynced and renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::f16;

use crate::assets::{load_mel_filters, load_tiktoken};
use crate::ct2::{Ct2Model, Dtype, Variable};
use crate::error::ConvertError;
use crate::ggml::{
    self, GGML_QNT_VERSION, GGML_QNT_VERSION_FACTOR, GgmlType, HashingWriter, Hparams,
};

/// The CTranslate2 spec name of whisper models.
pub const WHISPER_SPEC: &str = "WhisperSpec";
/// Spec revisions whose layout this converter has been checked against.
pub const SUPPORTED_SPEC_REVISIONS: std::ops::RangeInclusive<u32> = 1..=3;
/// Smallest n_vocab of a multilingual whisper model (whisper.cpp `is_multilingual`).
pub const MULTILINGUAL_MIN_VOCAB: usize = 51865;
/// CTranslate2's `Activation.GELU`.
const CT2_GELU: f64 = 3.0;
/// whisper's attention head width, for models that do not store `num_heads`.
const WHISPER_HEAD_DIM: usize = 64;

/// Output element type of the 2-D weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutType {
    /// As `convert-pt-to-ggml.py`: f16 weights, f32 biases/norms/positional embeddings.
    F16,
    /// As whisper.cpp `quantize ... q8_0`.
    Q8_0,
    /// As whisper.cpp `quantize ... q5_1`.
    Q5_1,
    /// As whisper.cpp `quantize ... q4_0`.
    Q4_0,
}

impl OutType {
    /// `ftype` as stored in the hparams: `GGML_FTYPE_MOSTLY_F16` = 1 like the
    /// converter script; the quantize tool stores `GGML_FTYPE_MOSTLY_Q8_0` = 7 /
    /// `GGML_FTYPE_MOSTLY_Q5_1` = 9 plus `GGML_QNT_VERSION * 1000` (whisper.cpp's
    /// loader takes `ftype % 1000` as the type and `ftype / 1000` as the
    /// quantization version).
    pub fn hparams_ftype(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + 7,
            Self::Q5_1 => GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + 9,
            // GGML_FTYPE_MOSTLY_Q4_0 = 2
            Self::Q4_0 => GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + 2,
        }
    }

    fn quantized(self) -> Option<GgmlType> {
        match self {
            Self::F16 => None,
            Self::Q8_0 => Some(GgmlType::Q8_0),
            Self::Q5_1 => Some(GgmlType::Q5_1),
            Self::Q4_0 => Some(GgmlType::Q4_0),
        }
    }

    /// Lower-case name (`f16`, `q8_0`, `q5_1`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q5_1 => "q5_1",
            Self::Q4_0 => "q4_0",
        }
    }
}

/// Which tokenizer to embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EnglishOnly {
    /// English-only iff n_vocab < 51865 (whisper.cpp's own rule).
    #[default]
    Auto,
    Yes,
    No,
}

/// What to convert, from where, to where.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// A CTranslate2 model directory or its `model.bin`.
    pub ct2: PathBuf,
    /// openai-whisper's `whisper/assets/` directory.
    pub assets: PathBuf,
    /// The GGML file to write (replaced atomically).
    pub out: PathBuf,
    pub out_type: OutType,
    pub english_only: EnglishOnly,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Report {
    pub input: PathBuf,
    pub output: PathBuf,
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the output file.
    pub sha256: String,
    pub hparams: Hparams,
    pub out_type: OutType,
    pub english_only: bool,
    pub tokenizer: PathBuf,
    pub n_tokens: usize,
    pub n_tensors: usize,
    /// Tensors written block-quantized.
    pub n_quantized: usize,
    pub spec_revision: u32,
    /// Source dtypes of the converted weights and how many variables had each.
    pub source_dtypes: BTreeMap<&'static str, usize>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.hparams;
        writeln!(f, "input:      {}", self.input.display())?;
        writeln!(f, "output:     {}", self.output.display())?;
        writeln!(
            f,
            "type:       {} (hparams ftype {})",
            self.out_type.name(),
            h.ftype
        )?;
        writeln!(f, "size:       {} bytes", self.size_bytes)?;
        writeln!(f, "sha256:     {}", self.sha256)?;
        writeln!(
            f,
            "model:      n_vocab {} | audio ctx {} state {} heads {} layers {} | text ctx {} state {} heads {} layers {} | n_mels {}",
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer,
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels
        )?;
        writeln!(
            f,
            "tokenizer:  {} ({} tokens, {})",
            self.tokenizer.display(),
            self.n_tokens,
            if self.english_only {
                "english-only"
            } else {
                "multilingual"
            }
        )?;
        let dtypes: Vec<String> = self
            .source_dtypes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(
            f,
            "tensors:    {} ({} quantized); source WhisperSpec rev {} with {}",
            self.n_tensors,
            self.n_quantized,
            self.spec_revision,
            dtypes.join(", ")
        )
    }
}

/// Converts a CTranslate2 whisper model to a whisper.cpp GGML file.
pub fn convert_whisper(opts: &ConvertOptions) -> Result<Report, ConvertError> {
    let model_path = if opts.ct2.is_dir() {
        opts.ct2.join("model.bin")
    } else {
        opts.ct2.clone()
    };
    let bytes =
        std::fs::read(&model_path).map_err(|e| ConvertError::io("reading", &model_path, e))?;
    let model = Ct2Model::parse(&model_path, &bytes)?;
    if model.spec_name != WHISPER_SPEC || !SUPPORTED_SPEC_REVISIONS.contains(&model.spec_revision) {
        return Err(ConvertError::UnsupportedSpec {
            path: model_path,
            found: model.spec_name.clone(),
            revision: model.spec_revision,
            expected: format!(
                "{WHISPER_SPEC} revision {}..={}",
                SUPPORTED_SPEC_REVISIONS.start(),
                SUPPORTED_SPEC_REVISIONS.end()
            ),
        });
    }

    let plan = Plan::build(&model)?;
    let n_vocab = plan.n_vocab;
    let english_only = match opts.english_only {
        EnglishOnly::Auto => n_vocab < MULTILINGUAL_MIN_VOCAB,
        EnglishOnly::Yes => true,
        EnglishOnly::No => false,
    };
    let tokenizer = opts.assets.join(if english_only {
        "gpt2.tiktoken"
    } else {
        "multilingual.tiktoken"
    });
    let tokens = load_tiktoken(&tokenizer)?;
    if tokens.len() > n_vocab {
        return Err(ConvertError::VocabTooLarge {
            path: tokenizer,
            tokens: tokens.len(),
            n_vocab,
        });
    }
    let filters = load_mel_filters(&opts.assets.join("mel_filters.npz"), plan.n_mels)?;

    let mut hparams = plan.hparams()?;
    hparams.ftype = opts.out_type.hparams_ftype();

    let written = write_atomically(&opts.out, |w| {
        ggml::write_header(w, &hparams).map_err(|e| ConvertError::io("writing", &opts.out, e))?;
        let io = |e| ConvertError::io("writing", &opts.out, e);
        w.i32(i32_field("n_mel", filters.n_mel)?).map_err(io)?;
        w.i32(i32_field("n_fft", filters.n_fft)?).map_err(io)?;
        let mut buf = Vec::with_capacity(filters.data.len() * 4);
        for v in &filters.data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf).map_err(io)?;
        w.i32(i32_field("token count", tokens.len())?).map_err(io)?;
        for t in &tokens {
            w.i32(i32_field("token length", t.len())?).map_err(io)?;
            w.write_all(t).map_err(io)?;
        }
        let mut n_quantized = 0;
        for t in &plan.tensors {
            if plan.write_tensor(&model, t, opts.out_type, w, &opts.out)? {
                n_quantized += 1;
            }
        }
        Ok(n_quantized)
    })?;

    Ok(Report {
        input: model_path,
        output: opts.out.clone(),
        size_bytes: written.size,
        sha256: hex::encode(written.sha256),
        hparams,
        out_type: opts.out_type,
        english_only,
        tokenizer,
        n_tokens: tokens.len(),
        n_tensors: plan.tensors.len(),
        n_quantized: written.value,
        spec_revision: model.spec_revision,
        source_dtypes: plan.source_dtypes,
    })
}

fn i32_field(what: &str, v: usize) -> Result<i32, ConvertError> {
    i32::try_from(v).map_err(|_| ConvertError::TooLarge {
        what: what.to_owned(),
        value: v as u64,
    })
}

struct Written<T> {
    value: T,
    size: u64,
    sha256: [u8; 32],
}

/// Runs `body` against a hashing writer on a temp file beside `out`, then
/// flushes, fsyncs, renames it over `out` and fsyncs the directory. On any
/// error the temp file is removed and `out` is left untouched.
fn write_atomically<T>(
    out: &Path,
    body: impl FnOnce(&mut HashingWriter<BufWriter<&std::fs::File>>) -> Result<T, ConvertError>,
) -> Result<Written<T>, ConvertError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".valise-convert-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| ConvertError::io("creating a temp file in", &dir, e))?;
    let (value, sha256, size) = {
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp.as_file()));
        let value = body(&mut w)?;
        let (buf, sha, size) = w.finish();
        buf.into_inner()
            .map_err(|e| ConvertError::io("writing", tmp.path(), e.into_error()))?;
        (value, sha, size)
    };
    tmp.as_file()
        .sync_all()
        .map_err(|e| ConvertError::io("syncing", tmp.path(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // tempfile creates 0600; a model file is meant to be read by the service user.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| ConvertError::io("setting permissions of", tmp.path(), e))?;
    }
    tmp.persist(out)
        .map_err(|e| ConvertError::io("renaming the temp file to", out, e.error))?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ConvertError::io("syncing directory", &dir, e))?;
    Ok(Written {
        value,
        size,
        sha256,
    })
}

/// How a planned tensor is stored in the f16 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    F32,
    F16,
}

/// One output tensor: `range` (in elements) of CTranslate2 variable `src`.
#[derive(Debug)]
struct Planned {
    name: String,
    /// torch shape (after convert-pt-to-ggml's squeeze / conv-bias reshape).
    shape: Vec<usize>,
    src: String,
    range: Range<usize>,
    storage: Storage,
}

/// Tensors convert-pt-to-ggml keeps f32 although 2-D, and that the quantize
/// tool therefore skips (its `to_skip` list is exactly these).
const F32_2D: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

struct Plan<'m, 'a> {
    model: &'m Ct2Model<'a>,
    used: BTreeSet<String>,
    tensors: Vec<Planned>,
    source_dtypes: BTreeMap<&'static str, usize>,
    n_vocab: usize,
    n_mels: usize,
    n_audio_ctx: usize,
    n_audio_state: usize,
    n_audio_head: usize,
    n_audio_layer: usize,
    n_text_ctx: usize,
    n_text_state: usize,
    n_text_head: usize,
    n_text_layer: usize,
}

impl<'m, 'a> Plan<'m, 'a> {
    fn build(model: &'m Ct2Model<'a>) -> Result<Self, ConvertError> {
        let mut p = Plan {
            model,
            used: BTreeSet::new(),
            tensors: Vec::new(),
            source_dtypes: BTreeMap::new(),
            n_vocab: 0,
            n_mels: 0,
            n_audio_ctx: 0,
            n_audio_state: 0,
            n_audio_head: 0,
            n_audio_layer: 0,
            n_text_ctx: 0,
            n_text_state: 0,
            n_text_head: 0,
            n_text_layer: 0,
        };
        p.settings()?;
        p.dimensions()?;
        p.encoder()?;
        p.decoder()?;
        p.check_all_used()?;
        Ok(p)
    }

    fn hparams(&self) -> Result<Hparams, ConvertError> {
        Ok(Hparams {
            n_vocab: i32_field("n_vocab", self.n_vocab)?,
            n_audio_ctx: i32_field("n_audio_ctx", self.n_audio_ctx)?,
            n_audio_state: i32_field("n_audio_state", self.n_audio_state)?,
            n_audio_head: i32_field("n_audio_head", self.n_audio_head)?,
            n_audio_layer: i32_field("n_audio_layer", self.n_audio_layer)?,
            n_text_ctx: i32_field("n_text_ctx", self.n_text_ctx)?,
            n_text_state: i32_field("n_text_state", self.n_text_state)?,
            n_text_head: i32_field("n_text_head", self.n_text_head)?,
            n_text_layer: i32_field("n_text_layer", self.n_text_layer)?,
            n_mels: i32_field("n_mels", self.n_mels)?,
            ftype: 1,
        })
    }

    /// Looks `name` up (through aliases) and marks it used.
    fn var(&mut self, name: &str) -> Result<&'m Variable<'a>, ConvertError> {
        let v = self
            .model
            .get(name)
            .ok_or_else(|| ConvertError::MissingVariable {
                name: name.to_owned(),
            })?;
        self.used.insert(name.to_owned());
        if let Some(target) = self.model.aliases.get(name) {
            self.used.insert(target.clone());
        }
        Ok(v)
    }

    fn has(&self, name: &str) -> bool {
        self.model.get(name).is_some()
    }

    fn shape_of(&mut self, name: &str, rank: usize) -> Result<Vec<usize>, ConvertError> {
        let v = self.var(name)?;
        if v.shape.len() != rank {
            // Report the found dims with placeholders for the expected rank.
            return Err(ConvertError::Hparams {
                reason: format!(
                    "{name} has rank {} (shape {:?}), expected rank {rank}",
                    v.shape.len(),
                    v.shape
                ),
            });
        }
        Ok(v.shape.clone())
    }

    fn expect_shape(
        &mut self,
        name: &str,
        expected: &[usize],
    ) -> Result<&'m Variable<'a>, ConvertError> {
        let v = self.var(name)?;
        if v.shape != expected {
            return Err(ConvertError::ShapeMismatch {
                name: name.to_owned(),
                expected: expected.to_vec(),
                found: v.shape.clone(),
            });
        }
        Ok(v)
    }

    /// Reads an optional scalar setting.
    fn scalar(&mut self, name: &str) -> Result<Option<f64>, ConvertError> {
        if !self.has(name) {
            return Ok(None);
        }
        let v = self.var(name)?;
        if !v.shape.is_empty() {
            return Err(ConvertError::ShapeMismatch {
                name: name.to_owned(),
                expected: vec![],
                found: v.shape.clone(),
            });
        }
        Ok(Some(v.get_f64(0)))
    }

    fn setting(&mut self, name: &str, expected: f64, meaning: &str) -> Result<(), ConvertError> {
        match self.scalar(name)? {
            Some(v) if v != expected => Err(ConvertError::UnsupportedSetting {
                name: name.to_owned(),
                expected: format!("{expected} ({meaning})"),
                found: v.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Model settings that must match whisper's architecture.
    fn settings(&mut self) -> Result<(), ConvertError> {
        for side in ["encoder", "decoder"] {
            self.setting(&format!("{side}/activation"), CT2_GELU, "GELU")?;
            self.setting(&format!("{side}/pre_norm"), 1.0, "pre-norm")?;
            self.setting(&format!("{side}/alibi"), 0.0, "no ALiBi")?;
            self.setting(
                &format!("{side}/scale_embeddings"),
                0.0,
                "unscaled embeddings",
            )?;
        }
        self.setting(
            "decoder/start_from_zero_embedding",
            0.0,
            "token embedding at step 0",
        )?;
        // Word-timestamp metadata of CTranslate2; whisper.cpp has its own presets.
        for name in ["decoder/alignment_heads", "decoder/alignment_layer"] {
            self.scalar(name)?;
        }
        Ok(())
    }

    fn dimensions(&mut self) -> Result<(), ConvertError> {
        let enc_pos = self.shape_of("encoder/position_encodings/encodings", 2)?;
        (self.n_audio_ctx, self.n_audio_state) = (enc_pos[0], enc_pos[1]);
        let conv1 = self.shape_of("encoder/conv1/weight", 3)?;
        self.n_mels = conv1[1];
        let emb = self.shape_of("decoder/embeddings/weight", 2)?;
        (self.n_vocab, self.n_text_state) = (emb[0], emb[1]);
        let dec_pos = self.shape_of("decoder/position_encodings/encodings", 2)?;
        self.n_text_ctx = dec_pos[0];

        let count = |p: &Self, side: &str| {
            (0..)
                .take_while(|i| p.has(&format!("{side}/layer_{i}/self_attention/linear_0/weight")))
                .count()
        };
        self.n_audio_layer = count(self, "encoder");
        self.n_text_layer = count(self, "decoder");
        self.n_audio_head = self.heads("encoder", self.n_audio_state)?;
        self.n_text_head = self.heads("decoder", self.n_text_state)?;

        let bad = |reason: String| Err(ConvertError::Hparams { reason });
        if self.n_audio_state != self.n_text_state {
            return bad(format!(
                "audio state {} != text state {} (whisper.cpp requires them equal)",
                self.n_audio_state, self.n_text_state
            ));
        }
        for (what, v) in [
            ("n_vocab", self.n_vocab),
            ("n_mels", self.n_mels),
            ("n_audio_ctx", self.n_audio_ctx),
            ("n_audio_state", self.n_audio_state),
            ("n_audio_layer", self.n_audio_layer),
            ("n_text_ctx", self.n_text_ctx),
            ("n_text_layer", self.n_text_layer),
        ] {
            if v == 0 {
                return bad(format!("{what} is 0"));
            }
        }
        Ok(())
    }

    fn heads(&mut self, side: &str, state: usize) -> Result<usize, ConvertError> {
        let name = format!("{side}/num_heads");
        let heads = match self.scalar(&name)? {
            Some(v) if v >= 1.0 && v.fract() == 0.0 => v as usize,
            Some(v) => {
                return Err(ConvertError::UnsupportedSetting {
                    name,
                    expected: "a positive integer".into(),
                    found: v.to_string(),
                });
            }
            None => state / WHISPER_HEAD_DIM,
        };
        if heads == 0 || !state.is_multiple_of(heads) {
            return Err(ConvertError::Hparams {
                reason: format!("{side}: {heads} heads do not divide state {state}"),
            });
        }
        Ok(heads)
    }

    /// Plans `name` = elements `range` of `src`, shaped `shape`.
    fn push(&mut self, name: String, shape: Vec<usize>, src: &str, range: Range<usize>) {
        let storage = if shape.len() < 2 || F32_2D.contains(&name.as_str()) {
            Storage::F32
        } else {
            Storage::F16
        };
        self.tensors.push(Planned {
            name,
            shape,
            src: src.to_owned(),
            range,
            storage,
        });
    }

    /// Plans a whole variable after checking its shape.
    fn whole(&mut self, name: String, src: &str, shape: &[usize]) -> Result<(), ConvertError> {
        let v = self.expect_shape(src, shape)?;
        self.count_dtype(src, v)?;
        let n = v.len();
        self.push(name, shape.to_vec(), src, 0..n);
        Ok(())
    }

    /// Checks the dtype is usable, marks a quantization scale used, and counts it.
    fn count_dtype(&mut self, src: &str, v: &Variable<'_>) -> Result<(), ConvertError> {
        match v.dtype {
            Dtype::F32 | Dtype::F16 | Dtype::Bf16 => {}
            Dtype::I8 | Dtype::I16 => {
                let scale_name = format!("{src}_scale");
                let rows = v.shape.first().copied().unwrap_or(1);
                let scale = self
                    .var(&scale_name)
                    .map_err(|_| ConvertError::UnsupportedDtype {
                        name: src.to_owned(),
                        found: v.dtype.name(),
                        reason: format!("quantized weight without {scale_name}"),
                    })?;
                let ok_shape = scale.shape.is_empty() || scale.shape == [rows];
                let ok_dtype = matches!(scale.dtype, Dtype::F32 | Dtype::F16 | Dtype::Bf16);
                if !ok_shape || !ok_dtype {
                    return Err(ConvertError::UnsupportedDtype {
                        name: scale_name,
                        found: scale.dtype.name(),
                        reason: format!(
                            "scale must be a float scalar or one per row ([{rows}]), found shape {:?}",
                            scale.shape
                        ),
                    });
                }
            }
            Dtype::I32 => {
                return Err(ConvertError::UnsupportedDtype {
                    name: src.to_owned(),
                    found: v.dtype.name(),
                    reason: "int32 weights are not produced by CTranslate2 converters".into(),
                });
            }
        }
        *self.source_dtypes.entry(v.dtype.name()).or_default() += 1;
        Ok(())
    }

    fn layer_norm(&mut self, src: &str, dst: &str, n: usize) -> Result<(), ConvertError> {
        self.whole(format!("{dst}.weight"), &format!("{src}/gamma"), &[n])?;
        self.whole(format!("{dst}.bias"), &format!("{src}/beta"), &[n])
    }

    fn linear(&mut self, src: &str, dst: &str, out: usize, inp: usize) -> Result<(), ConvertError> {
        self.whole(
            format!("{dst}.weight"),
            &format!("{src}/weight"),
            &[out, inp],
        )?;
        self.whole(format!("{dst}.bias"), &format!("{src}/bias"), &[out])
    }

    /// Checks that elements `range` of bias `src` are exactly zero.
    fn zero_key_bias(&mut self, src: &str, range: Range<usize>) -> Result<(), ConvertError> {
        let v = self.var(src)?;
        let start = range.start;
        for (i, x) in dequantize(self.model, src, v, range)?
            .into_iter()
            .enumerate()
        {
            if x != 0.0 {
                return Err(ConvertError::NonZeroKeyBias {
                    name: src.to_owned(),
                    index: start + i,
                    value: x,
                });
            }
        }
        Ok(())
    }

    /// `self_attention/linear_0` = [q; k; v] by rows (k has no bias in whisper).
    fn self_attention(&mut self, src: &str, dst: &str, n: usize) -> Result<(), ConvertError> {
        let w = format!("{src}/linear_0/weight");
        let b = format!("{src}/linear_0/bias");
        let wv = self.expect_shape(&w, &[3 * n, n])?;
        self.count_dtype(&w, wv)?;
        let bv = self.expect_shape(&b, &[3 * n])?;
        self.count_dtype(&b, bv)?;
        self.zero_key_bias(&b, n..2 * n)?;
        let nn = n * n;
        self.push(format!("{dst}.query.weight"), vec![n, n], &w, 0..nn);
        self.push(format!("{dst}.query.bias"), vec![n], &b, 0..n);
        self.push(format!("{dst}.key.weight"), vec![n, n], &w, nn..2 * nn);
        self.push(
            format!("{dst}.value.weight"),
            vec![n, n],
            &w,
            2 * nn..3 * nn,
        );
        self.push(format!("{dst}.value.bias"), vec![n], &b, 2 * n..3 * n);
        self.linear(&format!("{src}/linear_1"), &format!("{dst}.out"), n, n)
    }

    /// `attention/linear_0` = q, `linear_1` = [k; v] by rows, `linear_2` = out.
    fn cross_attention(&mut self, src: &str, dst: &str, n: usize) -> Result<(), ConvertError> {
        self.linear(&format!("{src}/linear_0"), &format!("{dst}.query"), n, n)?;
        let w = format!("{src}/linear_1/weight");
        let b = format!("{src}/linear_1/bias");
        let wv = self.expect_shape(&w, &[2 * n, n])?;
        self.count_dtype(&w, wv)?;
        let bv = self.expect_shape(&b, &[2 * n])?;
        self.count_dtype(&b, bv)?;
        self.zero_key_bias(&b, 0..n)?;
        let nn = n * n;
        self.push(format!("{dst}.key.weight"), vec![n, n], &w, 0..nn);
        self.push(format!("{dst}.value.weight"), vec![n, n], &w, nn..2 * nn);
        self.push(format!("{dst}.value.bias"), vec![n], &b, n..2 * n);
        self.linear(&format!("{src}/linear_2"), &format!("{dst}.out"), n, n)
    }

    fn ffn(&mut self, src: &str, dst: &str, n: usize) -> Result<(), ConvertError> {
        self.linear(
            &format!("{src}/linear_0"),
            &format!("{dst}.mlp.0"),
            4 * n,
            n,
        )?;
        self.linear(
            &format!("{src}/linear_1"),
            &format!("{dst}.mlp.2"),
            n,
            4 * n,
        )?;
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}.mlp_ln"), n)
    }

    /// Order follows openai-whisper's module registration (state_dict order).
    fn encoder(&mut self) -> Result<(), ConvertError> {
        let (n, ctx, mels) = (self.n_audio_state, self.n_audio_ctx, self.n_mels);
        self.whole(
            "encoder.positional_embedding".into(),
            "encoder/position_encodings/encodings",
            &[ctx, n],
        )?;
        self.whole(
            "encoder.conv1.weight".into(),
            "encoder/conv1/weight",
            &[n, mels, 3],
        )?;
        self.conv_bias("encoder.conv1.bias", "encoder/conv1/bias", n)?;
        self.whole(
            "encoder.conv2.weight".into(),
            "encoder/conv2/weight",
            &[n, n, 3],
        )?;
        self.conv_bias("encoder.conv2.bias", "encoder/conv2/bias", n)?;
        for i in 0..self.n_audio_layer {
            let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
            self.self_attention(&format!("{src}/self_attention"), &format!("{dst}.attn"), n)?;
            self.layer_norm(
                &format!("{src}/self_attention/layer_norm"),
                &format!("{dst}.attn_ln"),
                n,
            )?;
            self.ffn(&format!("{src}/ffn"), &dst, n)?;
        }
        self.layer_norm("encoder/layer_norm", "encoder.ln_post", n)
    }

    /// convert-pt-to-ggml reshapes conv biases from [n] to [n, 1].
    fn conv_bias(&mut self, dst: &str, src: &str, n: usize) -> Result<(), ConvertError> {
        let v = self.expect_shape(src, &[n])?;
        self.count_dtype(src, v)?;
        self.push(dst.to_owned(), vec![n, 1], src, 0..n);
        Ok(())
    }

    fn decoder(&mut self) -> Result<(), ConvertError> {
        let (n, ctx, vocab) = (self.n_text_state, self.n_text_ctx, self.n_vocab);
        self.whole(
            "decoder.positional_embedding".into(),
            "decoder/position_encodings/encodings",
            &[ctx, n],
        )?;
        self.whole(
            "decoder.token_embedding.weight".into(),
            "decoder/embeddings/weight",
            &[vocab, n],
        )?;
        for i in 0..self.n_text_layer {
            let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
            self.self_attention(&format!("{src}/self_attention"), &format!("{dst}.attn"), n)?;
            self.layer_norm(
                &format!("{src}/self_attention/layer_norm"),
                &format!("{dst}.attn_ln"),
                n,
            )?;
            self.cross_attention(&format!("{src}/attention"), &format!("{dst}.cross_attn"), n)?;
            self.layer_norm(
                &format!("{src}/attention/layer_norm"),
                &format!("{dst}.cross_attn_ln"),
                n,
            )?;
            self.ffn(&format!("{src}/ffn"), &dst, n)?;
        }
        self.layer_norm("decoder/layer_norm", "decoder.ln", n)?;
        self.output_projection()
    }

    /// whisper ties the output projection to the token embedding; CTranslate2
    /// stores it as an alias (or, unoptimised, as an identical copy).
    fn output_projection(&mut self) -> Result<(), ConvertError> {
        const PROJ: &str = "decoder/projection/weight";
        const EMB: &str = "decoder/embeddings/weight";
        if self.has(PROJ) {
            let tied = match self.model.aliases.get(PROJ) {
                Some(target) => target == EMB,
                None => {
                    let (p, e) = (self.var(PROJ)?, self.var(EMB)?);
                    p.shape == e.shape && p.dtype == e.dtype && p.data == e.data
                }
            };
            self.var(PROJ)?;
            if !tied {
                return Err(ConvertError::UnsupportedSetting {
                    name: PROJ.into(),
                    expected: format!("tied to {EMB} (whisper shares them)"),
                    found: "a different matrix".into(),
                });
            }
        }
        const BIAS: &str = "decoder/projection/bias";
        if self.has(BIAS) {
            let v = self.expect_shape(BIAS, &[self.n_vocab])?;
            let n = v.len();
            if let Some((i, x)) = dequantize(self.model, BIAS, v, 0..n)?
                .into_iter()
                .enumerate()
                .find(|(_, x)| *x != 0.0)
            {
                return Err(ConvertError::UnsupportedSetting {
                    name: BIAS.into(),
                    expected: "all zero (whisper has no output bias)".into(),
                    found: format!("element {i} = {x}"),
                });
            }
        }
        Ok(())
    }

    fn check_all_used(&self) -> Result<(), ConvertError> {
        let names = self.model.variables.keys().chain(self.model.aliases.keys());
        for name in names {
            if !self.used.contains(name) {
                return Err(ConvertError::UnexpectedVariable { name: name.clone() });
            }
        }
        Ok(())
    }

    /// Encodes and writes one tensor; returns whether it was block-quantized.
    fn write_tensor<W: Write>(
        &self,
        model: &Ct2Model<'_>,
        t: &Planned,
        out_type: OutType,
        w: &mut HashingWriter<W>,
        out: &Path,
    ) -> Result<bool, ConvertError> {
        let io = |e| ConvertError::io("writing", out, e);
        let src = model
            .get(&t.src)
            .ok_or_else(|| ConvertError::MissingVariable {
                name: t.src.clone(),
            })?;
        // whisper.cpp's quantize rewrites every 2-D tensor of the f16 file except
        // its skip list (= the F32 2-D ones), starting from the f16 values.
        let quant = out_type
            .quantized()
            .filter(|_| t.storage == Storage::F16 && t.shape.len() == 2);
        let ttype = match (quant, t.storage) {
            (Some(q), _) => q,
            (None, Storage::F32) => GgmlType::F32,
            (None, Storage::F16) => GgmlType::F16,
        };

        let n_dims = i32_field("n_dims", t.shape.len())?;
        let name_len = i32_field("tensor name length", t.name.len())?;
        w.i32(n_dims).map_err(io)?;
        w.i32(name_len).map_err(io)?;
        w.i32(ttype.id()).map_err(io)?;
        for &d in t.shape.iter().rev() {
            w.i32(i32_field(&format!("dimension of {}", t.name), d)?)
                .map_err(io)?;
        }
        w.write_all(t.name.as_bytes()).map_err(io)?;

        // Fast path: f16 → f16 is a byte copy (bit-exact, no re-rounding).
        if ttype == GgmlType::F16 && src.dtype == Dtype::F16 {
            let bytes = &src.data[t.range.start * 2..t.range.end * 2];
            check_finite_f16(&t.src, t.range.start, bytes)?;
            w.write_all(bytes).map_err(io)?;
            return Ok(false);
        }

        let values = dequantize(model, &t.src, src, t.range.clone())?;
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ConvertError::NonFinite {
                name: t.src.clone(),
                index: t.range.start + i,
                value: *v,
            });
        }
        let mut buf = Vec::new();
        match ttype {
            GgmlType::F32 => {
                buf.reserve(values.len() * 4);
                for v in &values {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
            GgmlType::F16 => {
                buf.reserve(values.len() * 2);
                for v in &values {
                    buf.extend_from_slice(&f16::from_f32(*v).to_le_bytes());
                }
            }
            GgmlType::Q8_0 | GgmlType::Q5_1 | GgmlType::Q4_0 => {
                let block = ttype.block().map_or(1, |(len, _)| len);
                let row_len = t.shape.last().copied().unwrap_or(0);
                if row_len == 0 || !row_len.is_multiple_of(block) {
                    return Err(ConvertError::NotBlockAligned {
                        name: t.name.clone(),
                        row_len,
                        block,
                    });
                }
                // Quantize what the f16 file would hold, as the quantize tool does.
                let rounded: Vec<f32> = values.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
                ttype.quantize(&rounded, &mut buf);
            }
        }
        w.write_all(&buf).map_err(io)?;
        Ok(quant.is_some())
    }
}

fn check_finite_f16(name: &str, start: usize, bytes: &[u8]) -> Result<(), ConvertError> {
    for (i, b) in bytes.chunks_exact(2).enumerate() {
        let h = f16::from_le_bytes([b[0], b[1]]);
        if !h.is_finite() {
            return Err(ConvertError::NonFinite {
                name: name.to_owned(),
                index: start + i,
                value: h.to_f32(),
            });
        }
    }
    Ok(())
}

/// Elements `range` of `v` as f32, undoing CTranslate2's int8 (per-row scale)
/// or int16 (scalar scale) quantization: `w = q / scale`.
fn dequantize(
    model: &Ct2Model<'_>,
    name: &str,
    v: &Variable<'_>,
    range: Range<usize>,
) -> Result<Vec<f32>, ConvertError> {
    let mut values = v.f32_range(range.clone());
    if matches!(v.dtype, Dtype::I8 | Dtype::I16) {
        let scale_name = format!("{name}_scale");
        let scale = model
            .get(&scale_name)
            .ok_or_else(|| ConvertError::UnsupportedDtype {
                name: name.to_owned(),
                found: v.dtype.name(),
                reason: format!("quantized weight without {scale_name}"),
            })?;
        let row_len = v.shape.iter().skip(1).product::<usize>().max(1);
        let scales = scale.f32_range(0..scale.len());
        for (i, x) in values.iter_mut().enumerate() {
            let row = (range.start + i) / row_len;
            let s = match (scales.len(), scales.get(row)) {
                (1, _) => scales[0],
                (_, Some(&s)) => s,
                (n, None) => {
                    return Err(ConvertError::ShapeMismatch {
                        name: scale_name,
                        expected: vec![row + 1],
                        found: vec![n],
                    });
                }
            };
            if s == 0.0 || !s.is_finite() {
                return Err(ConvertError::NonFinite {
                    name: scale_name,
                    index: row,
                    value: s,
                });
            }
            *x /= s;
        }
    }
    Ok(values)
}
