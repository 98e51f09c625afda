//! The output projection, restricted to a batch's shortlist, outside the decoder graph.
//!
//! `logits = x · W[ids]ᵀ + b[ids]` with `W` the tied embedding (`vocab × dim_emb`) and `ids`
//! the union of a batch's shortlists. The ids only change when the batch does, so the engine
//! gathers `W[ids]` and `b[ids]` once per batch composition and feeds them to the decoder
//! (inputs `out_w`, `out_b`) instead of the graph gathering and dequantizing them at every step
//! (that was 20–40 % of a decoder step). The values are the graph's own: `f32(q) · scale` is
//! one IEEE multiplication, the same as the Cast + Mul the graph would run (MARIAN.md).

use std::path::Path;

use crate::ConvertError;

/// How the embedding is stored in the weight file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputDtype {
    /// int8 values, `value = f32(q) · scale`.
    Int8 { scale: f32 },
    /// f32 values, little-endian.
    F32,
}

impl OutputDtype {
    pub fn name(self) -> &'static str {
        match self {
            OutputDtype::Int8 { .. } => "int8",
            OutputDtype::F32 => "f32",
        }
    }

    /// The dtype `model.toml` names (`weight_dtype`, `weight_scale_f32_bits`), the inverse
    /// of [`OutputLayerSpec::to_toml`]; None for a combination it never writes.
    pub fn from_toml(name: &str, scale_bits: Option<u32>) -> Option<Self> {
        match (name, scale_bits) {
            ("int8", Some(bits)) => Some(OutputDtype::Int8 {
                scale: f32::from_bits(bits),
            }),
            ("f32", None) => Some(OutputDtype::F32),
            _ => None,
        }
    }

    fn bytes_per_value(self) -> usize {
        match self {
            OutputDtype::Int8 { .. } => 1,
            OutputDtype::F32 => 4,
        }
    }
}

/// Where the output layer lives (model.toml `[output_layer]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLayerSpec {
    /// The weight file, relative to the model directory.
    pub file: String,
    /// Byte offset of the embedding (`vocab × dim_emb`, row-major).
    pub weight_offset: u64,
    pub dtype: OutputDtype,
    /// Byte offset of the bias (`vocab` f32).
    pub bias_offset: u64,
}

impl OutputLayerSpec {
    /// The `[output_layer]` table of model.toml.
    pub fn to_toml(&self) -> String {
        let mut s = String::from(
            "[output_layer]\n\
             # logits = x · W[ids]ᵀ + b[ids] over a batch's shortlist ids, gathered by the engine:\n\
             # W = the tied embedding (vocab_size × dim_emb, row-major) at weight_offset in file,\n\
             # b = vocab_size f32 at bias_offset. int8: value = q · scale, the scale given exactly\n\
             # as the bits of an f32.\n",
        );
        s.push_str(&format!(
            "file = \"{}\"\nweight_offset = {}\nweight_dtype = \"{}\"\n",
            self.file,
            self.weight_offset,
            self.dtype.name()
        ));
        if let OutputDtype::Int8 { scale } = self.dtype {
            s.push_str(&format!(
                "weight_scale_f32_bits = {} # {scale:e}\n",
                scale.to_bits()
            ));
        }
        s.push_str(&format!("bias_offset = {}\n\n", self.bias_offset));
        s
    }
}

#[derive(Debug)]
enum Weights {
    Int8 { q: Vec<i8>, scale: f32 },
    F32(Vec<f32>),
}

/// The output layer of one model, in memory (the embedding once: 8 MB for int8).
#[derive(Debug)]
pub struct OutputLayer {
    vocab: usize,
    dim: usize,
    weights: Weights,
    bias: Vec<f32>,
}

impl OutputLayer {
    /// Reads the layer `spec` describes from `dir`, checking that it lies inside the file.
    pub fn read(
        dir: &Path,
        spec: &OutputLayerSpec,
        vocab: usize,
        dim: usize,
    ) -> Result<Self, ConvertError> {
        let path = dir.join(&spec.file);
        let bad = |reason: String| ConvertError::MarianFormat {
            path: path.clone(),
            offset: 0,
            reason,
        };
        if spec.file.contains('/') || spec.file.contains("..") {
            return Err(bad(format!(
                "output layer file {:?} is not a plain name",
                spec.file
            )));
        }
        // Only the two ranges are read: the file holds every weight of both graphs.
        let mut file =
            std::fs::File::open(&path).map_err(|e| ConvertError::io("opening", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| ConvertError::io("reading", &path, e))?
            .len();
        let mut read = |offset: u64, len: usize, what: &str| -> Result<Vec<u8>, ConvertError> {
            use std::io::{Read, Seek, SeekFrom};
            if offset.checked_add(len as u64).is_none_or(|end| end > size) {
                return Err(bad(format!(
                    "{what} ({len} bytes at {offset}) lies outside the {size}-byte file"
                )));
            }
            let mut buf = vec![0u8; len];
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut buf))
                .map_err(|e| ConvertError::io("reading", &path, e))?;
            Ok(buf)
        };
        let n = vocab
            .checked_mul(dim)
            .ok_or_else(|| bad("vocabulary × dimension overflows".into()))?;
        let w = read(
            spec.weight_offset,
            n * spec.dtype.bytes_per_value(),
            "embedding",
        )?;
        let weights = match spec.dtype {
            OutputDtype::Int8 { scale } => {
                if !scale.is_finite() || scale <= 0.0 {
                    return Err(bad(format!("int8 scale {scale} is not a positive number")));
                }
                Weights::Int8 {
                    q: w.iter().map(|&b| b as i8).collect(),
                    scale,
                }
            }
            OutputDtype::F32 => Weights::F32(crate::f32s_le(&w)),
        };
        let bias = crate::f32s_le(&read(spec.bias_offset, vocab * 4, "bias")?);
        Ok(Self {
            vocab,
            dim,
            weights,
            bias,
        })
    }

    /// `W[ids]` (`ids.len() × dim`, row-major) into `w` and `b[ids]` into `b`. Ids outside
    /// the vocabulary are a caller bug (shortlists are checked at load) and panic.
    pub fn gather(&self, ids: &[u32], w: &mut Vec<f32>, b: &mut Vec<f32>) {
        w.clear();
        b.clear();
        self.append(ids, w, b);
    }

    /// As [`gather`](Self::gather), appending to `w` and `b`.
    pub fn append(&self, ids: &[u32], w: &mut Vec<f32>, b: &mut Vec<f32>) {
        let d = self.dim;
        let start = w.len();
        w.resize(start + ids.len() * d, 0.0);
        b.reserve(ids.len());
        for (out, &id) in w[start..].chunks_exact_mut(d).zip(ids) {
            let id = id as usize;
            assert!(id < self.vocab, "shortlist id {id} outside the vocabulary");
            match &self.weights {
                // Written through a slice so that the loop vectorizes.
                Weights::Int8 { q, scale } => {
                    for (o, &v) in out.iter_mut().zip(&q[id * d..(id + 1) * d]) {
                        *o = f32::from(v) * scale;
                    }
                }
                Weights::F32(v) => out.copy_from_slice(&v[id * d..(id + 1) * d]),
            }
            b.push(self.bias[id]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_dequantized_rows_and_refuses_what_lies_outside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // vocab 3, dim 2: int8 embedding at 0, bias at 8.
        let mut bytes = vec![1u8, 2, 0xff, 0x80, 5, 6, 0, 0];
        for v in [0.5f32, -1.0, 2.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(dir.path().join("weights.bin"), &bytes).unwrap();
        let spec = OutputLayerSpec {
            file: "weights.bin".into(),
            weight_offset: 0,
            dtype: OutputDtype::Int8 { scale: 0.25 },
            bias_offset: 8,
        };
        let layer = OutputLayer::read(dir.path(), &spec, 3, 2).unwrap();
        let (mut w, mut b) = (Vec::new(), Vec::new());
        layer.gather(&[1, 0], &mut w, &mut b);
        assert_eq!(w, [-0.25, -32.0, 0.25, 0.5]);
        assert_eq!(b, [-1.0, 0.5]);
        layer.append(&[2], &mut w, &mut b);
        assert_eq!(w, [-0.25, -32.0, 0.25, 0.5, 1.25, 1.5]);
        assert_eq!(b, [-1.0, 0.5, 2.0]);

        for bad in [
            OutputLayerSpec {
                bias_offset: 9,
                ..spec.clone()
            },
            OutputLayerSpec {
                weight_offset: u64::MAX,
                ..spec.clone()
            },
            OutputLayerSpec {
                file: "../weights.bin".into(),
                ..spec.clone()
            },
            OutputLayerSpec {
                dtype: OutputDtype::Int8 { scale: f32::NAN },
                ..spec.clone()
            },
        ] {
            assert!(
                OutputLayer::read(dir.path(), &bad, 3, 2).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            OutputDtype::from_toml("int8", Some(0.25f32.to_bits())),
            Some(OutputDtype::Int8 { scale: 0.25 })
        );
        assert_eq!(OutputDtype::from_toml("f32", None), Some(OutputDtype::F32));
        assert_eq!(OutputDtype::from_toml("int8", None), None);
        assert!(
            spec.to_toml()
                .contains(&format!("weight_scale_f32_bits = {}", 0.25f32.to_bits()))
        );
    }
}
