//! whisper.cpp's legacy GGML model file, as written by whisper.cpp's
//! `models/convert-pt-to-ggml.py` and rewritten by `examples/quantize`.
//!
//! ```text
//! i32 magic = 0x67676d6c ("ggml")
//! i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
//!     n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
//! i32 n_mel, n_fft; f32 filters[n_mel * n_fft]
//! i32 n_tokens; n_tokens × { i32 len; u8 bytes[len] }
//! until EOF: { i32 n_dims; i32 name_len; i32 ttype; i32 ne[n_dims] (torch shape
//!              reversed); u8 name[name_len]; data }
//! ```
//!
//! All little-endian. `data` is row-major in torch order: f32, f16, or blocks
//! of 32 elements along `ne[0]` for the quantized types.

use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ConvertError;
use crate::quant::{
    Q4_0_BLOCK_BYTES, Q5_1_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK4_0, QK5_1, QK8_0, quantize_q4_0,
    quantize_q5_1, quantize_q8_0,
};

/// `GGML_FILE_MAGIC`.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// `GGML_QNT_VERSION`: quantized files store `ftype + 1000 * GGML_QNT_VERSION`.
pub const GGML_QNT_VERSION: i32 = 2;
/// `GGML_QNT_VERSION_FACTOR`.
pub const GGML_QNT_VERSION_FACTOR: i32 = 1000;

/// Per-tensor element type (`enum ggml_type` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q5_1,
    Q8_0,
}

impl GgmlType {
    /// The `ggml_type` id written in the tensor header.
    pub fn id(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
        }
    }

    /// The type for a `ggml_type` id, if it is one this crate writes.
    pub fn from_id(id: i32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            _ => return None,
        })
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q4_0 => "q4_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
        }
    }

    /// For a block-quantized type: (elements per block, bytes per block). None for f32/f16.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            Self::F32 | Self::F16 => None,
            Self::Q4_0 => Some((QK4_0, Q4_0_BLOCK_BYTES)),
            Self::Q5_1 => Some((QK5_1, Q5_1_BLOCK_BYTES)),
            Self::Q8_0 => Some((QK8_0, Q8_0_BLOCK_BYTES)),
        }
    }

    /// Quantizes `x` (a whole number of blocks) into `out`, for a block-quantized type; false
    /// (and nothing written) for f32/f16.
    pub fn quantize(self, x: &[f32], out: &mut Vec<u8>) -> bool {
        match self {
            Self::F32 | Self::F16 => return false,
            Self::Q4_0 => quantize_q4_0(x, out),
            Self::Q5_1 => quantize_q5_1(x, out),
            Self::Q8_0 => quantize_q8_0(x, out),
        }
        true
    }

    /// Bytes taken by `n` elements (n a multiple of the block size for
    /// quantized types), or None if that is not a whole number of blocks.
    pub fn data_bytes(self, n: usize) -> Option<usize> {
        match (self, self.block()) {
            (Self::F32, _) => n.checked_mul(4),
            (Self::F16, _) => n.checked_mul(2),
            (_, Some((len, bytes))) => n.is_multiple_of(len).then(|| n / len * bytes),
            (_, None) => None,
        }
    }
}

/// The hyperparameter block of a whisper GGML file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// `GGML_FTYPE_*`, plus `1000 * GGML_QNT_VERSION` for quantized files.
    pub ftype: i32,
}

impl Hparams {
    fn fields(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

/// A writer that hashes and counts what goes through it.
#[derive(Debug)]
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub(crate) fn i32(&mut self, v: i32) -> io::Result<()> {
        self.write_all(&v.to_le_bytes())
    }

    /// (inner writer, sha256, bytes written)
    pub(crate) fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the magic and hparams.
pub(crate) fn write_header<W: Write>(w: &mut HashingWriter<W>, h: &Hparams) -> io::Result<()> {
    w.write_all(&GGML_MAGIC.to_le_bytes())?;
    for v in h.fields() {
        w.i32(v)?;
    }
    Ok(())
}

/// A tensor header as it appears in a GGML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ttype: GgmlType,
    /// GGML dims (`ne`): the torch shape reversed.
    pub ne: Vec<usize>,
    /// Offset of the tensor data in the file.
    pub offset: usize,
    /// Length of the tensor data in bytes.
    pub len: usize,
}

/// The structure of a whisper GGML file (what whisper.cpp's loader reads).
#[derive(Debug, Clone)]
pub struct GgmlFile {
    pub hparams: Hparams,
    pub n_mel: usize,
    pub n_fft: usize,
    pub filters: Vec<f32>,
    pub tokens: Vec<Vec<u8>>,
    pub tensors: Vec<TensorInfo>,
}

/// Parses a whisper GGML file (header, filters, vocab, tensor table) and checks
/// that every tensor's data is exactly where and as long as its header says.
pub fn read_ggml(path: &Path, bytes: &[u8]) -> Result<GgmlFile, ConvertError> {
    let mut pos = 0usize;
    let bad = |offset: usize, reason: String| ConvertError::Malformed {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let take = |pos: &mut usize, n: usize, what: &str| -> Result<&[u8], ConvertError> {
        if n > bytes.len() - *pos {
            return Err(ConvertError::Truncated {
                path: path.to_path_buf(),
                offset: *pos as u64,
                what: what.to_owned(),
                needed: n as u64,
                available: (bytes.len() - *pos) as u64,
            });
        }
        let s = &bytes[*pos..*pos + n];
        *pos += n;
        Ok(s)
    };
    let i32_at = |pos: &mut usize, what: &str| -> Result<i32, ConvertError> {
        let b = take(pos, 4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = |pos: &mut usize, what: &str| -> Result<usize, ConvertError> {
        let at = *pos;
        let v = i32_at(pos, what)?;
        usize::try_from(v).map_err(|_| bad(at, format!("{what} is negative ({v})")))
    };

    let magic = i32_at(&mut pos, "magic")? as u32;
    if magic != GGML_MAGIC {
        return Err(bad(0, format!("bad magic {magic:#010x}")));
    }
    let mut f = [0i32; 11];
    for v in &mut f {
        *v = i32_at(&mut pos, "hparams")?;
    }
    let hparams = Hparams {
        n_vocab: f[0],
        n_audio_ctx: f[1],
        n_audio_state: f[2],
        n_audio_head: f[3],
        n_audio_layer: f[4],
        n_text_ctx: f[5],
        n_text_state: f[6],
        n_text_head: f[7],
        n_text_layer: f[8],
        n_mels: f[9],
        ftype: f[10],
    };
    let n_mel = count(&mut pos, "n_mel")?;
    let n_fft = count(&mut pos, "n_fft")?;
    let n = n_mel
        .checked_mul(n_fft)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| bad(pos, "filter size overflows".into()))?;
    let filters = crate::f32s_le(take(&mut pos, n, "mel filters")?);
    let n_tokens = count(&mut pos, "token count")?;
    let mut tokens = Vec::new();
    for _ in 0..n_tokens {
        let len = count(&mut pos, "token length")?;
        tokens.push(take(&mut pos, len, "token")?.to_vec());
    }
    let mut tensors = Vec::new();
    while pos < bytes.len() {
        let at = pos;
        let n_dims = count(&mut pos, "n_dims")?;
        let name_len = count(&mut pos, "name length")?;
        let ttype_id = i32_at(&mut pos, "ttype")?;
        if !(1..=4).contains(&n_dims) {
            return Err(bad(at, format!("tensor n_dims {n_dims} out of range")));
        }
        let ttype = GgmlType::from_id(ttype_id)
            .ok_or_else(|| bad(at, format!("unknown ttype {ttype_id}")))?;
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            ne.push(count(&mut pos, "dimension")?);
        }
        let name = String::from_utf8(take(&mut pos, name_len, "tensor name")?.to_vec())
            .map_err(|_| bad(at, "tensor name is not UTF-8".into()))?;
        let elems = ne
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(at, format!("{name}: element count overflows")))?;
        let len = ttype.data_bytes(elems).ok_or_else(|| {
            bad(
                at,
                format!(
                    "{name}: {elems} elements do not fill whole {} blocks",
                    ttype.name()
                ),
            )
        })?;
        let offset = pos;
        take(&mut pos, len, &format!("data of {name}"))?;
        tensors.push(TensorInfo {
            name,
            ttype,
            ne,
            offset,
            len,
        });
    }
    Ok(GgmlFile {
        hparams,
        n_mel,
        n_fft,
        filters,
        tokens,
        tensors,
    })
}
