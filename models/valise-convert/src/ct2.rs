//! Reader for CTranslate2's `model.bin` (binary format version 6).
//!
//! Layout, all integers little-endian (CTranslate2 `ModelSpec._serialize`):
//!
//! ```text
//! u32 binary_version (= 6)
//! str spec_name            ("WhisperSpec")
//! u32 spec_revision
//! u32 n_variables
//! n_variables × {
//!     str  name
//!     u8   rank
//!     u32  dims[rank]
//!     u8   dtype            (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)
//!     u32  n_bytes
//!     u8   data[n_bytes]
//! }
//! u32 n_aliases
//! n_aliases × { str alias, str target }
//! ```
//!
//! where `str` is `u16 len` (including a trailing NUL) followed by `len` bytes.
//!
//! The whole file is held in memory and variables borrow from it; every length
//! is checked against the bytes actually left before anything is allocated, so
//! a corrupt header cannot make the reader allocate more than the file size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::error::ConvertError;

/// The only CTranslate2 binary format version this reader understands.
pub const SUPPORTED_BINARY_VERSION: u32 = 6;

/// Element type of a CTranslate2 variable (ids of `ctranslate2::DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// numpy-style name, as CTranslate2 uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
        }
    }
}

/// One named variable, borrowing its bytes from the file.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// Number of elements (1 for a scalar).
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Whether the variable holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Element `i` as f64, whatever the dtype (integers exactly).
    pub fn get_f64(&self, i: usize) -> f64 {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            Dtype::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::I8 => f64::from(i8::from_le_bytes([b[0]])),
            Dtype::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            Dtype::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::F16 => f64::from(f16::from_le_bytes([b[0], b[1]]).to_f32()),
            Dtype::Bf16 => f64::from(bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        }
    }

    /// Elements `range` as f32; integer dtypes are returned as their value
    /// (the caller applies any quantization scale).
    pub fn f32_range(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let s = self.dtype.size();
        let bytes = &self.data[range.start * s..range.end * s];
        match self.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::Bf16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
            Dtype::I16 => bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
                .collect(),
            // i32 weights do not occur in CTranslate2 models; exact up to 2^24.
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
        }
    }
}

/// A parsed CTranslate2 model.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub path: PathBuf,
    pub binary_version: u32,
    pub spec_name: String,
    pub spec_revision: u32,
    /// Variables by name (sorted, as CTranslate2 writes them).
    pub variables: BTreeMap<String, Variable<'a>>,
    /// Alias name → name of the variable it stands for.
    pub aliases: BTreeMap<String, String>,
}

impl<'a> Ct2Model<'a> {
    /// Parses `bytes` (the content of `path`, used in error messages).
    pub fn parse(path: &Path, bytes: &'a [u8]) -> Result<Self, ConvertError> {
        let mut r = Reader {
            path,
            bytes,
            pos: 0,
        };
        let binary_version = r.u32("binary version")?;
        if binary_version != SUPPORTED_BINARY_VERSION {
            return Err(ConvertError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: binary_version,
                supported: SUPPORTED_BINARY_VERSION,
            });
        }
        let spec_name = r.string("spec name")?;
        let spec_revision = r.u32("spec revision")?;
        let n_variables = r.u32("variable count")?;

        let mut variables = BTreeMap::new();
        for index in 0..n_variables {
            let at = r.pos;
            let name = r.string(&format!("name of variable #{index}"))?;
            let rank = r.u8(&format!("rank of {name}"))?;
            let mut shape = Vec::with_capacity(usize::from(rank));
            for d in 0..rank {
                shape.push(r.u32(&format!("dimension {d} of {name}"))? as usize);
            }
            let dtype_at = r.pos;
            let dtype_id = r.u8(&format!("dtype of {name}"))?;
            let dtype = Dtype::from_id(dtype_id).ok_or_else(|| r.malformed(
                dtype_at,
                format!("variable {name}: unknown dtype id {dtype_id} (known: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16)"),
            ))?;
            let n_bytes = r.u32(&format!("byte count of {name}"))?;
            let expected = shape
                .iter()
                .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
            if expected != Some(u64::from(n_bytes)) {
                return Err(ConvertError::SizeMismatch {
                    name,
                    shape,
                    dtype: dtype.name(),
                    expected: expected.unwrap_or(u64::MAX),
                    found: u64::from(n_bytes),
                });
            }
            let data = r.take(n_bytes as usize, &format!("data of {name}"))?;
            if variables.contains_key(&name) {
                return Err(r.malformed(at, format!("duplicate variable {name}")));
            }
            variables.insert(name, Variable { shape, dtype, data });
        }

        let n_aliases = r.u32("alias count")?;
        let mut aliases = BTreeMap::new();
        for index in 0..n_aliases {
            let at = r.pos;
            let alias = r.string(&format!("name of alias #{index}"))?;
            let target = r.string(&format!("target of alias {alias}"))?;
            if !variables.contains_key(&target) {
                return Err(r.malformed(
                    at,
                    format!("alias {alias} points to {target}, which is not a variable"),
                ));
            }
            if variables.contains_key(&alias) || aliases.contains_key(&alias) {
                return Err(r.malformed(at, format!("alias {alias} redefines an existing name")));
            }
            aliases.insert(alias, target);
        }

        let left = bytes.len() - r.pos;
        if left != 0 {
            return Err(r.malformed(r.pos, format!("{left} trailing bytes after the aliases")));
        }

        Ok(Self {
            path: path.to_path_buf(),
            binary_version,
            spec_name,
            spec_revision,
            variables,
            aliases,
        })
    }

    /// The variable called `name`, following an alias if it is one.
    pub fn get(&self, name: &str) -> Option<&Variable<'a>> {
        self.variables.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.variables.get(target))
        })
    }
}

struct Reader<'p, 'a> {
    path: &'p Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'_, 'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(ConvertError::Truncated {
                path: self.path.to_path_buf(),
                offset: self.pos as u64,
                what: what.to_owned(),
                needed: n as u64,
                available: available as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, ConvertError> {
        let at = self.pos;
        let len = self.u16(what)?;
        let raw = self.take(usize::from(len), what)?;
        match raw.split_last() {
            Some((0, text)) => match std::str::from_utf8(text) {
                Ok(s) if !s.contains('\0') => Ok(s.to_owned()),
                _ => Err(self.malformed(at, format!("{what}: not a NUL-free UTF-8 string"))),
            },
            _ => Err(self.malformed(at, format!("{what}: string is not NUL-terminated"))),
        }
    }

    fn malformed(&self, offset: usize, reason: String) -> ConvertError {
        ConvertError::Malformed {
            path: self.path.to_path_buf(),
            offset: offset as u64,
            reason,
        }
    }
}
