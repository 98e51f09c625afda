//! The one error type of the converter.
//!
//! Every variant carries enough context (file, byte offset, tensor name, what
//! was expected and what was found) for an operator to tell a corrupt
//! download from an unsupported model without reading the source.

use std::path::PathBuf;

use thiserror::Error;

/// Why a conversion failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// An I/O operation on `path` failed.
    #[error("{action} {path}: {source}", path = .path.display())]
    Io {
        /// What was being done ("reading", "creating temp file in", ...).
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The CTranslate2 file ends before a field it announces.
    #[error(
        "{path}: truncated at byte {offset}: {what} needs {needed} bytes, only {available} left",
        path = .path.display()
    )]
    Truncated {
        path: PathBuf,
        offset: u64,
        what: String,
        needed: u64,
        available: u64,
    },

    /// The CTranslate2 binary format version is not the one this converter reads.
    #[error(
        "{path}: unsupported CTranslate2 binary version {found} (supported: {supported})",
        path = .path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The model is not a whisper model, or a whisper spec revision we do not know.
    #[error("{path}: unsupported model spec {found:?} revision {revision} (expected {expected})", path = .path.display())]
    UnsupportedSpec {
        path: PathBuf,
        found: String,
        revision: u32,
        expected: String,
    },

    /// A structural problem in the CTranslate2 container (bad string, bad dtype id,
    /// duplicate name, trailing bytes, ...).
    #[error("{path}: malformed CTranslate2 file at byte {offset}: {reason}", path = .path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A variable's declared byte count disagrees with its shape and dtype.
    #[error(
        "variable {name}: shape {shape:?} of {dtype} needs {expected} bytes, file declares {found}"
    )]
    SizeMismatch {
        name: String,
        shape: Vec<usize>,
        dtype: &'static str,
        expected: u64,
        found: u64,
    },

    /// A variable whisper needs is absent.
    #[error("missing variable {name}")]
    MissingVariable { name: String },

    /// A variable the whisper mapping does not know; converting without it could
    /// silently produce a wrong model.
    #[error("unexpected variable {name} (not part of the whisper layout this converter knows)")]
    UnexpectedVariable { name: String },

    /// A variable has the wrong shape.
    #[error("variable {name}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A variable has a dtype that cannot be used where it appears.
    #[error("variable {name}: unsupported dtype {found} ({reason})")]
    UnsupportedDtype {
        name: String,
        found: &'static str,
        reason: String,
    },

    /// whisper's attention key projections have no bias; CTranslate2 stores a
    /// zero one inside the fused bias, which must really be zero to be dropped.
    #[error(
        "variable {name}: key bias element {index} is {value}, expected exactly 0 (whisper has no key bias)"
    )]
    NonZeroKeyBias {
        name: String,
        index: usize,
        value: f32,
    },

    /// A weight holds NaN or infinity.
    #[error("variable {name}: element {index} is not finite ({value})")]
    NonFinite {
        name: String,
        index: usize,
        value: f32,
    },

    /// A model setting (activation, normalisation, ...) differs from whisper's.
    #[error("variable {name}: expected {expected}, found {found}")]
    UnsupportedSetting {
        name: String,
        expected: String,
        found: String,
    },

    /// Hyperparameters are inconsistent with each other or with whisper.cpp.
    #[error("invalid hyperparameters: {reason}")]
    Hparams { reason: String },

    /// `mel_filters.npz` is missing the entry, or it is malformed.
    #[error("mel filters {path}: {reason}", path = .path.display())]
    MelFilters { path: PathBuf, reason: String },

    /// A tiktoken vocabulary file is malformed.
    #[error("tokenizer {path}, line {line}: {reason}", path = .path.display())]
    Tokenizer {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// The tokenizer has more entries than the model's embedding has rows.
    #[error(
        "tokenizer {path} has {tokens} tokens but the model has only n_vocab = {n_vocab} (wrong --english-only?)",
        path = .path.display()
    )]
    VocabTooLarge {
        path: PathBuf,
        tokens: usize,
        n_vocab: usize,
    },

    /// A tensor chosen for block quantization has a row length that is not a
    /// multiple of the block size.
    #[error(
        "tensor {name}: row length {row_len} is not a multiple of the {block}-element quantization block"
    )]
    NotBlockAligned {
        name: String,
        row_len: usize,
        block: usize,
    },

    /// A Marian binary model file is malformed (bad header, bad item table, data
    /// outside the file, a type or size that does not add up, ...).
    #[error("{path}: malformed Marian model at byte {offset}: {reason}", path = .path.display())]
    MarianFormat {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The Marian model is well formed but its architecture (special:model.yml, item
    /// types) is not the transformer + SSRU student layout this converter knows.
    #[error("{path}: unsupported Marian model: {reason}", path = .path.display())]
    MarianUnsupported { path: PathBuf, reason: String },

    /// A binary lexical shortlist (`lex.*.s2t.bin`) is malformed.
    #[error("{path}: malformed binary shortlist: {reason}", path = .path.display())]
    Shortlist { path: PathBuf, reason: String },

    /// A SentencePiece vocabulary (`vocab.*.spm`) is malformed or does not fit the model.
    #[error("{path}: bad SentencePiece vocabulary: {reason}", path = .path.display())]
    Vocabulary { path: PathBuf, reason: String },

    /// A value does not fit the 32-bit signed fields of the GGML header.
    #[error("{what} = {value} does not fit a GGML i32 field")]
    TooLarge { what: String, value: u64 },
}

impl ConvertError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
