//! Reader of Marian's binary model format (`model.*.bin`, `marian/src/common/binary.cpp`).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! u64 binaryFileVersion            = 1
//! u64 numHeaders                   = N
//! N × { u64 nameLength, u64 type, u64 shapeLength, u64 dataLength }
//! N × name (nameLength bytes, NUL-terminated)
//! N × shape (shapeLength × i32)
//! u64 offset                       padding that aligns the data to 256 bytes
//! offset bytes
//! N × data (dataLength bytes)      back to back, in header order
//! ```
//!
//! Bergamot's int8 students store each item's data padded to a multiple of 256
//! bytes; `dataLength` includes that padding. An `intgemm8` (type `0x4101`) item
//! holds `rows × cols` int8 values followed by one f32 quantization multiplier `s`
//! (`W = q / s`). The values are stored transposed (row-major `Wᵀ`, so
//! `W[i][j] = q[j·rows + i]`) except for `Wemb`, which is stored as is.
//!
//! Every field is checked against the file size before it is used: a truncated or
//! corrupt file gives a [`ConvertError::MarianFormat`] naming the byte offset, never
//! a panic or an out-of-memory allocation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::ConvertError;

/// The only binary format version Marian has written.
pub const BINARY_FILE_VERSION: u64 = 1;

/// Marian's `Type` codes (`marian/src/common/types.h`) that this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    /// `int8` (0x0101); used for the `special:model.yml` text.
    Int8,
    /// `float32` (0x0404).
    Float32,
    /// `intgemm8` (0x4101): int8 values + one f32 multiplier, architecture-independent layout.
    Intgemm8,
}

impl ItemType {
    /// The type code as stored in the file.
    pub fn code(self) -> u64 {
        match self {
            ItemType::Int8 => 0x0101,
            ItemType::Float32 => 0x0404,
            ItemType::Intgemm8 => 0x4101,
        }
    }

    fn from_code(code: u64) -> Result<Self, String> {
        match code {
            0x0101 => Ok(ItemType::Int8),
            0x0404 => Ok(ItemType::Float32),
            0x4101 => Ok(ItemType::Intgemm8),
            0x0402 => Err("float16 items are not supported".to_owned()),
            0x5101 | 0x6101 | 0x5102 | 0x6102 | 0x4102 => Err(format!(
                "type {code:#06x} is an architecture-specific prepared intgemm layout; \
                 convert the architecture-independent (intgemm8, 0x4101) model instead"
            )),
            _ => Err(format!("unknown item type {code:#06x}")),
        }
    }

    /// Human-readable name (Marian's).
    pub fn name(self) -> &'static str {
        match self {
            ItemType::Int8 => "int8",
            ItemType::Float32 => "float32",
            ItemType::Intgemm8 => "intgemm8",
        }
    }
}

/// One item (tensor or special text) of a Marian binary model.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub item_type: ItemType,
    pub shape: Vec<usize>,
    /// Byte offset of the item's data in the file.
    pub offset: u64,
    /// The data, including any trailing alignment padding.
    pub data: Vec<u8>,
}

impl Item {
    /// Number of elements the shape describes.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An int8 matrix with its per-tensor multiplier: `W = q / multiplier`.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    /// Logical rows (`W` is rows × cols, used as `x · W`).
    pub rows: usize,
    pub cols: usize,
    /// Row-major values of `W` (not of the stored transpose).
    pub q: Vec<i8>,
    /// Marian's multiplier: `W = q / multiplier`.
    pub multiplier: f32,
}

impl QuantMatrix {
    /// The float value of every element, computed as ONNX `DequantizeLinear` does:
    /// `q · (1 / multiplier)` in f32, so f32 and int8 exports hold identical weights.
    pub fn dequantize(&self) -> Vec<f32> {
        let scale = self.dequant_scale();
        self.q.iter().map(|&v| f32::from(v) * scale).collect()
    }

    /// The `DequantizeLinear` scale: `1 / multiplier`.
    pub fn dequant_scale(&self) -> f32 {
        1.0 / self.multiplier
    }
}

/// A matrix as found in the model: float, or int8 with a multiplier.
#[derive(Debug, Clone)]
pub enum Matrix {
    F32 {
        rows: usize,
        cols: usize,
        /// Row-major.
        values: Vec<f32>,
    },
    Int8(QuantMatrix),
}

impl Matrix {
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32 { rows, .. } => *rows,
            Matrix::Int8(q) => q.rows,
        }
    }
    pub fn cols(&self) -> usize {
        match self {
            Matrix::F32 { cols, .. } => *cols,
            Matrix::Int8(q) => q.cols,
        }
    }
    /// Float values, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Matrix::F32 { values, .. } => values.clone(),
            Matrix::Int8(q) => q.dequantize(),
        }
    }
}

/// A parsed Marian binary model.
#[derive(Debug, Clone)]
pub struct MarianModel {
    pub path: PathBuf,
    pub items: Vec<Item>,
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, offset: usize, reason: impl Into<String>) -> ConvertError {
        ConvertError::MarianFormat {
            path: self.path.to_path_buf(),
            offset: offset as u64,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], ConvertError> {
        let left = self.bytes.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| {
                self.err(
                    self.pos,
                    format!("{what} needs {n} bytes, only {left} left (truncated file?)"),
                )
            })?;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ConvertError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// Bytes an item of `ty` with `elements` elements needs (without alignment padding).
fn needed_bytes(ty: ItemType, elements: usize) -> Option<usize> {
    match ty {
        ItemType::Int8 => Some(elements),
        ItemType::Float32 => elements.checked_mul(4),
        ItemType::Intgemm8 => elements.checked_add(4),
    }
}

/// Largest alignment padding accepted after an item's data.
const MAX_ITEM_PADDING: usize = 256;

impl MarianModel {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Self, ConvertError> {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io("reading", path, e))?;
        Self::parse(path, &bytes)
    }

    /// Parses a model held in memory; `path` is only used in error messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConvertError> {
        let mut c = Cursor {
            path,
            bytes,
            pos: 0,
        };
        let version = c.u64("binaryFileVersion")?;
        if version != BINARY_FILE_VERSION {
            return Err(c.err(
                0,
                format!(
                    "binary file version {version}, expected {BINARY_FILE_VERSION} \
                     (not a Marian binary model? .npz models are not supported)"
                ),
            ));
        }
        let n = c.u64("numHeaders")?;
        // Each header is 32 bytes: bound n by the file size before allocating.
        if n == 0 || n > (bytes.len() as u64) / 32 {
            return Err(c.err(8, format!("implausible item count {n}")));
        }
        let n = n as usize;
        let mut headers = Vec::with_capacity(n);
        for i in 0..n {
            let at = c.pos;
            let name_len = c.u64("header nameLength")?;
            let ty = c.u64("header type")?;
            let shape_len = c.u64("header shapeLength")?;
            let data_len = c.u64("header dataLength")?;
            let ty =
                ItemType::from_code(ty).map_err(|r| c.err(at + 8, format!("item {i}: {r}")))?;
            headers.push((name_len, ty, shape_len, data_len));
        }
        let mut names = Vec::with_capacity(n);
        let mut seen = HashSet::new();
        for (i, h) in headers.iter().enumerate() {
            let at = c.pos;
            let raw = c.take(h.0, "item name")?;
            let Some((&0, text)) = raw.split_last() else {
                return Err(c.err(at, format!("item {i}: name is not NUL-terminated")));
            };
            let name = std::str::from_utf8(text)
                .map_err(|_| c.err(at, format!("item {i}: name is not UTF-8")))?;
            if name.is_empty() || name.contains('\0') {
                return Err(c.err(at, format!("item {i}: empty or embedded-NUL name")));
            }
            if !seen.insert(name.to_owned()) {
                return Err(c.err(at, format!("duplicate item name {name:?}")));
            }
            names.push(name.to_owned());
        }
        let mut shapes = Vec::with_capacity(n);
        for (i, h) in headers.iter().enumerate() {
            let at = c.pos;
            let bytes_len =
                h.2.checked_mul(4)
                    .ok_or_else(|| c.err(at, "shape length overflows"))?;
            let raw = c.take(bytes_len, "item shape")?;
            let mut shape = Vec::with_capacity(h.2 as usize);
            for d in raw.chunks_exact(4) {
                let v = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                let v = usize::try_from(v).map_err(|_| {
                    c.err(at, format!("item {:?}: negative dimension {v}", names[i]))
                })?;
                shape.push(v);
            }
            shapes.push(shape);
        }
        let at = c.pos;
        let pad = c.u64("alignment offset")?;
        if pad >= 256 {
            return Err(c.err(at, format!("alignment offset {pad} is not below 256")));
        }
        c.take(pad, "alignment padding")?;

        let mut items = Vec::with_capacity(n);
        for ((h, name), shape) in headers.into_iter().zip(names).zip(shapes) {
            let (_, item_type, _, data_len) = h;
            let at = c.pos;
            let elements = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| c.err(at, format!("item {name:?}: shape {shape:?} overflows")))?;
            let needed = needed_bytes(item_type, elements)
                .ok_or_else(|| c.err(at, format!("item {name:?}: size overflows")))?;
            let data = c.take(data_len, "item data")?;
            if data.len() < needed || data.len() - needed > MAX_ITEM_PADDING {
                return Err(c.err(
                    at,
                    format!(
                        "item {name:?}: {} of shape {shape:?} needs {needed} bytes, \
                         dataLength is {data_len}",
                        item_type.name()
                    ),
                ));
            }
            items.push(Item {
                name,
                item_type,
                shape,
                offset: at as u64,
                data: data.to_vec(),
            });
        }
        if c.pos != bytes.len() {
            return Err(c.err(
                c.pos,
                format!("{} trailing bytes after the last item", bytes.len() - c.pos),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            items,
        })
    }

    /// The item called `name`.
    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    fn unsupported(&self, reason: String) -> ConvertError {
        ConvertError::MarianUnsupported {
            path: self.path.clone(),
            reason,
        }
    }

    fn require(&self, name: &str) -> Result<&Item, ConvertError> {
        self.item(name)
            .ok_or_else(|| ConvertError::MissingVariable {
                name: name.to_owned(),
            })
    }

    /// The text of `special:model.yml` (the architecture the model was trained with).
    pub fn model_yml(&self) -> Result<String, ConvertError> {
        let item = self.require("special:model.yml")?;
        if item.item_type != ItemType::Int8 || item.shape.len() != 1 {
            return Err(self.unsupported(format!(
                "special:model.yml is {} {:?}, expected a 1-D int8 text",
                item.item_type.name(),
                item.shape
            )));
        }
        let text = &item.data[..item.elements()];
        let text = text.strip_suffix(&[0]).unwrap_or(text);
        String::from_utf8(text.to_vec())
            .map_err(|_| self.unsupported("special:model.yml is not UTF-8".to_owned()))
    }

    /// A float vector item of `len` elements (shape `[1, len]` or `[len]`).
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ConvertError> {
        let item = self.require(name)?;
        let ok_shape = item.shape == [1, len] || item.shape == [len];
        if !ok_shape {
            return Err(ConvertError::ShapeMismatch {
                name: name.to_owned(),
                expected: vec![1, len],
                found: item.shape.clone(),
            });
        }
        if item.item_type != ItemType::Float32 {
            return Err(ConvertError::UnsupportedDtype {
                name: name.to_owned(),
                found: item.item_type.name(),
                reason: "biases and layer-norm parameters must be float32".to_owned(),
            });
        }
        let values = crate::f32s_le(&item.data[..len * 4]);
        check_finite(name, &values)?;
        Ok(values)
    }

    /// A `rows × cols` matrix. `stored_transposed`: how intgemm8 data is laid out
    /// (every matrix but `Wemb`); float32 data is always plain row-major.
    pub fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        stored_transposed: bool,
    ) -> Result<Matrix, ConvertError> {
        let item = self.require(name)?;
        if item.shape != [rows, cols] {
            return Err(ConvertError::ShapeMismatch {
                name: name.to_owned(),
                expected: vec![rows, cols],
                found: item.shape.clone(),
            });
        }
        let n = rows * cols;
        match item.item_type {
            ItemType::Float32 => {
                let values: Vec<f32> = item.data[..n * 4]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                check_finite(name, &values)?;
                Ok(Matrix::F32 { rows, cols, values })
            }
            ItemType::Intgemm8 => {
                let raw = &item.data[..n];
                let m = &item.data[n..n + 4];
                let multiplier = f32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                if !multiplier.is_finite() || multiplier <= 0.0 {
                    return Err(ConvertError::MarianFormat {
                        path: self.path.clone(),
                        offset: item.offset + n as u64,
                        reason: format!(
                            "item {name:?}: quantization multiplier {multiplier} is not a \
                             positive finite number"
                        ),
                    });
                }
                let q: Vec<i8> = if stored_transposed {
                    // Stored row-major as Wᵀ (cols × rows).
                    let mut q = vec![0i8; n];
                    for j in 0..cols {
                        let src = &raw[j * rows..(j + 1) * rows];
                        for (i, &b) in src.iter().enumerate() {
                            q[i * cols + j] = b as i8;
                        }
                    }
                    q
                } else {
                    raw.iter().map(|&b| b as i8).collect()
                };
                Ok(Matrix::Int8(QuantMatrix {
                    rows,
                    cols,
                    q,
                    multiplier,
                }))
            }
            ItemType::Int8 => Err(ConvertError::UnsupportedDtype {
                name: name.to_owned(),
                found: "int8",
                reason: "plain int8 matrices carry no multiplier".to_owned(),
            }),
        }
    }
}

fn check_finite(name: &str, values: &[f32]) -> Result<(), ConvertError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(ConvertError::NonFinite {
            name: name.to_owned(),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Writes a Marian binary model (used by tests to build synthetic models and by
/// nothing else): items are written in the given order with 256-byte aligned data.
pub fn write_marian(items: &[(String, ItemType, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&BINARY_FILE_VERSION.to_le_bytes());
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    let padded = |len: usize| len.div_ceil(256) * 256;
    for (name, ty, shape, data) in items {
        out.extend_from_slice(&(name.len() as u64 + 1).to_le_bytes());
        out.extend_from_slice(&ty.code().to_le_bytes());
        out.extend_from_slice(&(shape.len() as u64).to_le_bytes());
        out.extend_from_slice(&(padded(data.len()) as u64).to_le_bytes());
    }
    for (name, ..) in items {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    for (_, _, shape, _) in items {
        for &d in shape {
            out.extend_from_slice(&(d as i32).to_le_bytes());
        }
    }
    let pad = (256 - (out.len() + 8) % 256) % 256;
    out.extend_from_slice(&(pad as u64).to_le_bytes());
    out.resize(out.len() + pad, 0);
    for (_, _, _, data) in items {
        out.extend_from_slice(data);
        out.resize(out.len() + padded(data.len()) - data.len(), 0);
    }
    out
}
