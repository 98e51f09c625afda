//! Builds the encoder and one-step decoder ONNX graphs of a Marian transformer
//! student with an SSRU decoder (see MARIAN.md for the diagrams).

use super::binary::{MarianModel, Matrix, QuantMatrix};
use super::onnx::{Attr, Dim, Graph, TensorProto, WeightFile, dtype, f32_bytes, i8_bytes};
use super::output::{OutputDtype, OutputLayerSpec};
use super::{Activation, MarianArch, WeightType};
use crate::ConvertError;

/// Marian's additive mask value for padded source positions.
const MASK_VALUE: f32 = -99_999_999.0;
/// Marian's transformer layer-norm epsilon.
const LN_EPS: f32 = 1e-6;

/// Name of the quantization-free embedding tensor in the weight file.
const WEMB: &str = "Wemb";

/// Marian's sinusoidal inverse frequencies (`inits::sinusoidalPositionEmbeddings`):
/// position p, channel i < D/2 gets sin(p·inv[i]), channel D/2 + i gets cos(p·inv[i]).
pub fn inverse_frequencies(dim_emb: usize) -> Vec<f32> {
    let half = dim_emb / 2;
    let inc = 10000f32.ln() / (half as f32 - 1.0);
    (0..half).map(|i| (i as f32 * -inc).exp()).collect()
}

/// `float(q) · scale`, the value `DequantizeLinear(q, scale)` defines, written as
/// Cast + Mul on purpose: ONNX Runtime's QDQ optimizer rewrites `DequantizeLinear →
/// MatMul` into `MatMulNBits` that computes with int8-quantized activations (other
/// results than the f32 graph), while Cast + Mul of an initializer is plainly
/// constant-folded at session creation: int8 on disk, f32 weights and f32-identical
/// results in memory, whatever the session options.
fn dequantize(g: &mut Graph, q: &str, scale: f32, out: Option<&str>) -> String {
    let f = g.op("Cast", &[q], &[Attr::Int("to", i64::from(dtype::FLOAT))]);
    let scale = g.scalar_f32(scale);
    g.op_named("Mul", &[&f, &scale], &[], out)
}

/// Graph-building context shared by the encoder and decoder.
struct Ctx<'a> {
    model: &'a MarianModel,
    arch: &'a MarianArch,
    weights: WeightType,
    file: &'a mut WeightFile,
    /// Encoder only: the packing tensors (see [`build_encoder`]).
    packing: Option<Packing>,
}

/// The encoder's packed layout: position-wise work on the `T` real tokens of all sentences
/// (`[T, D]`, no padding), attention on a padded `[b, L]` view built by gathers.
#[derive(Debug, Clone)]
struct Packing {
    /// `[b·L]`: for each padded slot, its row in `[T + 1, D]` (`T` = a zero row).
    pad_index: String,
    /// `[T]`: for each token, its slot in `[b·L, D]`.
    pack_index: String,
    /// `[4]` = `[b, L, H, dh]`.
    heads_shape: String,
    /// `[1, D]` zeros.
    zero_row: String,
}

fn quantize(values: &[f32], rows: usize, cols: usize) -> QuantMatrix {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let multiplier = if max > 0.0 { 127.0 / max } else { 1.0 };
    QuantMatrix {
        rows,
        cols,
        q: values
            .iter()
            .map(|v| (v * multiplier).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        multiplier,
    }
}

impl Ctx<'_> {
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix, ConvertError> {
        self.model.matrix(name, rows, cols, name != WEMB)
    }

    /// A float `rows × cols` weight usable as MatMul's right operand.
    fn weight(
        &mut self,
        g: &mut Graph,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<String, ConvertError> {
        let m = self.matrix(name, rows, cols)?;
        let dims = [rows as i64, cols as i64];
        Ok(match self.weights {
            WeightType::F32 => {
                g.initializer(
                    self.file
                        .tensor(name, dtype::FLOAT, &dims, &f32_bytes(&m.to_f32())),
                )
            }
            WeightType::Int8 => {
                let q = match m {
                    Matrix::Int8(q) => q,
                    Matrix::F32 { values, .. } => quantize(&values, rows, cols),
                };
                let qname = g.initializer(self.file.tensor(
                    &format!("{name}.q"),
                    dtype::INT8,
                    &dims,
                    &i8_bytes(&q.q),
                ));
                dequantize(g, &qname, q.dequant_scale(), Some(&format!("{name}.dq")))
            }
        })
    }

    fn vector(&mut self, g: &mut Graph, name: &str, len: usize) -> Result<String, ConvertError> {
        let v = self.model.vector(name, len)?;
        Ok(g.initializer(
            self.file
                .tensor(name, dtype::FLOAT, &[len as i64], &f32_bytes(&v)),
        ))
    }

    /// The tied embedding (`vocab × D`) in the weight file (added once), as its initializer
    /// and how it is stored: the graphs' input embeddings and the engine's output layer read
    /// the same bytes.
    fn embedding(&mut self) -> Result<(TensorProto, OutputDtype), ConvertError> {
        let (v, d) = (self.arch.vocab, self.arch.dim_emb);
        let m = self.matrix(WEMB, v, d)?;
        let dims = [v as i64, d as i64];
        Ok(match self.weights {
            WeightType::F32 => (
                self.file
                    .tensor(WEMB, dtype::FLOAT, &dims, &f32_bytes(&m.to_f32())),
                OutputDtype::F32,
            ),
            WeightType::Int8 => {
                let q = match m {
                    Matrix::Int8(q) => q,
                    Matrix::F32 { values, .. } => quantize(&values, v, d),
                };
                (
                    self.file
                        .tensor("Wemb.q", dtype::INT8, &dims, &i8_bytes(&q.q)),
                    OutputDtype::Int8 {
                        scale: q.dequant_scale(),
                    },
                )
            }
        })
    }

    /// Rows `ids` of the tied embedding, as float: Gather(Wemb, ids), dequantized
    /// after the gather in int8 mode (exact: the scale is per tensor).
    fn embedding_rows(&mut self, g: &mut Graph, ids: &str) -> Result<String, ConvertError> {
        let (t, stored) = self.embedding()?;
        let w = g.initializer(t);
        let rows = g.op("Gather", &[&w, ids], &[Attr::Int("axis", 0)]);
        Ok(match stored {
            OutputDtype::F32 => rows,
            OutputDtype::Int8 { scale } => dequantize(g, &rows, scale, None),
        })
    }

    /// Puts the tied embedding and the output bias in the weight file (once) and says where.
    fn output_layer(&mut self) -> Result<OutputLayerSpec, ConvertError> {
        let v = self.arch.vocab;
        let (t, dtype_) = self.embedding()?;
        let name = t.name;
        let bias_name = "decoder_ff_logit_out_b";
        let bias = self.model.vector(bias_name, v)?;
        self.file
            .tensor(bias_name, dtype::FLOAT, &[v as i64], &f32_bytes(&bias));
        let offset = |n: &str| {
            self.file
                .offset(n)
                .ok_or_else(|| ConvertError::MarianUnsupported {
                    path: self.model.path.clone(),
                    reason: format!("{n} missing from the weight file"),
                })
        };
        Ok(OutputLayerSpec {
            file: self.file.location.clone(),
            weight_offset: offset(&name)?,
            dtype: dtype_,
            bias_offset: offset(bias_name)?,
        })
    }

    /// `x · W + b` for `W = {prefix}_W{suffix}`, `b = {prefix}_b{suffix}`.
    fn affine(
        &mut self,
        g: &mut Graph,
        x: &str,
        w: &str,
        b: &str,
        rows: usize,
        cols: usize,
    ) -> Result<String, ConvertError> {
        let w = self.weight(g, w, rows, cols)?;
        let b = self.vector(g, b, cols)?;
        let xw = g.op("MatMul", &[x, &w], &[]);
        Ok(g.op("Add", &[&xw, &b], &[]))
    }

    /// `LayerNorm(a + residual)` with `{ln}_ln_scale` / `{ln}_ln_bias` (Marian's "dan").
    fn add_norm(
        &mut self,
        g: &mut Graph,
        a: &str,
        residual: &str,
        ln: &str,
    ) -> Result<String, ConvertError> {
        let d = self.arch.dim_emb;
        let sum = g.op("Add", &[a, residual], &[]);
        let scale = self.vector(g, &format!("{ln}_ln_scale"), d)?;
        let bias = self.vector(g, &format!("{ln}_ln_bias"), d)?;
        Ok(g.op(
            "LayerNormalization",
            &[&sum, &scale, &bias],
            &[Attr::Int("axis", -1), Attr::Float("epsilon", LN_EPS)],
        ))
    }

    /// Position-wise FFN block with add & norm (`{prefix}_ffn_*`).
    fn ffn(&mut self, g: &mut Graph, x: &str, prefix: &str) -> Result<String, ConvertError> {
        let (d, f) = (self.arch.dim_emb, self.arch.dim_ffn);
        let h = self.affine(
            g,
            x,
            &format!("{prefix}_ffn_W1"),
            &format!("{prefix}_ffn_b1"),
            d,
            f,
        )?;
        let h = match self.arch.ffn_activation {
            Activation::Relu => g.op("Relu", &[&h], &[]),
            Activation::Swish => {
                let s = g.op("Sigmoid", &[&h], &[]);
                g.op("Mul", &[&h, &s], &[])
            }
        };
        let o = self.affine(
            g,
            &h,
            &format!("{prefix}_ffn_W2"),
            &format!("{prefix}_ffn_b2"),
            f,
            d,
        )?;
        self.add_norm(g, &o, x, &format!("{prefix}_ffn_ffn"))
    }

    /// `[b, D]` or `[b, L, D]` sinusoidal positions for float positions `pos` of shape `[n]`:
    /// returns `[n, D]`.
    fn positions(&mut self, g: &mut Graph, pos: &str) -> String {
        let inv = inverse_frequencies(self.arch.dim_emb);
        let inv = g.const_f32(&[1, inv.len() as i64], &inv);
        let axes1 = g.const_i64(&[1]);
        let col = g.op("Unsqueeze", &[pos, &axes1], &[]);
        let angles = g.op("Mul", &[&col, &inv], &[]);
        let s = g.op("Sin", &[&angles], &[]);
        let c = g.op("Cos", &[&angles], &[]);
        g.op("Concat", &[&s, &c], &[Attr::Int("axis", 1)])
    }

    /// Additive attention bias `[b, 1, 1, L]` from a `[b, L]` float mask.
    fn mask_bias(&mut self, g: &mut Graph, mask: &str) -> String {
        let one = g.scalar_f32(1.0);
        let big = g.scalar_f32(MASK_VALUE);
        let inv = g.op("Sub", &[&one, mask], &[]);
        let bias = g.op("Mul", &[&inv, &big], &[]);
        let axes = g.const_i64(&[1, 2]);
        g.op("Unsqueeze", &[&bias, &axes], &[])
    }

    /// The encoder's packing tensors (set by `build_encoder` before any layer is built).
    fn packing(&self) -> Packing {
        self.packing
            .clone()
            .unwrap_or_else(|| unreachable!("the packing is the encoder's"))
    }

    fn head_dim(&self) -> usize {
        self.arch.dim_emb / self.arch.heads
    }

    /// Packed `[T, D]` → padded `[b, H, L, dh]` (perm 0213) or `[b, H, dh, L]` (perm 0231).
    /// Padded slots get zeros (masked in attention, so their value never counts).
    fn split_heads(&mut self, g: &mut Graph, x: &str, perm: &[i64]) -> String {
        let p = self.packing();
        let with_zero = g.op("Concat", &[x, &p.zero_row], &[Attr::Int("axis", 0)]);
        let padded = g.op(
            "Gather",
            &[&with_zero, &p.pad_index],
            &[Attr::Int("axis", 0)],
        );
        let r = g.op("Reshape", &[&padded, &p.heads_shape], &[]);
        g.op("Transpose", &[&r], &[Attr::Ints("perm", perm.to_vec())])
    }

    /// softmax(scale · q·k + bias) · v, for q `[b,H,Lq,dh]`, kᵀ `[b,H,dh,Lk]`, v `[b,H,Lk,dh]`.
    fn attend(&mut self, g: &mut Graph, q: &str, kt: &str, v: &str, bias: &str) -> String {
        let scale = g.scalar_f32(1.0 / (self.head_dim() as f32).sqrt());
        let z = g.op("MatMul", &[q, kt], &[]);
        let z = g.op("Mul", &[&z, &scale], &[]);
        let z = g.op("Add", &[&z, bias], &[]);
        let p = g.op("Softmax", &[&z], &[Attr::Int("axis", -1)]);
        g.op("MatMul", &[&p, v], &[])
    }

    fn encoder_layer(
        &mut self,
        g: &mut Graph,
        x: &str,
        bias: &str,
        l: usize,
    ) -> Result<String, ConvertError> {
        let d = self.arch.dim_emb;
        let p = format!("encoder_l{l}_self");
        let q = self.affine(g, x, &format!("{p}_Wq"), &format!("{p}_bq"), d, d)?;
        let k = self.affine(g, x, &format!("{p}_Wk"), &format!("{p}_bk"), d, d)?;
        let v = self.affine(g, x, &format!("{p}_Wv"), &format!("{p}_bv"), d, d)?;
        let q = self.split_heads(g, &q, &[0, 2, 1, 3]);
        let kt = self.split_heads(g, &k, &[0, 2, 3, 1]);
        let v = self.split_heads(g, &v, &[0, 2, 1, 3]);
        let c = self.attend(g, &q, &kt, &v, bias);
        // Back from the padded view to the packed tokens.
        let c = g.op("Transpose", &[&c], &[Attr::Ints("perm", vec![0, 2, 1, 3])]);
        let shape = g.const_i64(&[-1, d as i64]);
        let c = g.op("Reshape", &[&c, &shape], &[]);
        let pack = self.packing().pack_index;
        let c = g.op("Gather", &[&c, &pack], &[Attr::Int("axis", 0)]);
        let o = self.affine(g, &c, &format!("{p}_Wo"), &format!("{p}_bo"), d, d)?;
        let x = self.add_norm(g, &o, x, &format!("{p}_Wo"))?;
        self.ffn(g, &x, &format!("encoder_l{l}"))
    }
}

/// Names of the cached cross-attention tensors of decoder layer `l` (1-based).
pub fn cross_names(l: usize) -> (String, String) {
    (format!("cross_k_{l}"), format!("cross_v_{l}"))
}

/// Names of the SSRU state input / output of decoder layer `l` (1-based).
pub fn state_names(l: usize) -> (String, String) {
    (format!("state_{l}"), format!("state_{l}_out"))
}

/// The encoder graph, packed: the sentences of a batch are concatenated, so the position-wise
/// work (projections, FFN, layer norms: nearly all of it) runs on real tokens only, and only
/// attention sees a padded `[b, L]` view (its keys at the same offsets as alone, masked past each
/// sentence's end, so a sentence's result does not depend on its batch).
///
/// Inputs: `input_ids [T]` (all sentences' tokens, `</s>` included), `positions [T]` (each
/// token's position in its sentence, float), `pad_index [b·L]` and `pack_index [T]` (the
/// packed ↔ padded maps: slot `r·L + j` ↔ token `offset_r + j`; empty slots point at row `T`,
/// a zero row), `src_mask [b, L]`. Outputs, per decoder layer, the cross-attention keys
/// `cross_k_l [b, H, dh, L]` (already transposed for the score product) and values
/// `cross_v_l [b, H, L, dh]`.
pub fn build_encoder(
    model: &MarianModel,
    arch: &MarianArch,
    weights: WeightType,
    file: &mut WeightFile,
) -> Result<Vec<u8>, ConvertError> {
    let mut cx = Ctx {
        model,
        arch,
        weights,
        file,
        packing: None,
    };
    let d = arch.dim_emb;
    let (heads, dh) = (arch.heads as i64, cx.head_dim() as i64);
    let mut g = Graph::new("marian_encoder");
    let ids = g.input("input_ids", dtype::INT64, &[Dim::Named("tokens")]);
    let pos = g.input("positions", dtype::FLOAT, &[Dim::Named("tokens")]);
    let pad_index = g.input("pad_index", dtype::INT64, &[Dim::Named("slots")]);
    let pack_index = g.input("pack_index", dtype::INT64, &[Dim::Named("tokens")]);
    let mask = g.input(
        "src_mask",
        dtype::FLOAT,
        &[Dim::Named("batch"), Dim::Named("src_len")],
    );
    let bl = g.op("Shape", &[&mask], &[]);
    let hd = g.const_i64(&[heads, dh]);
    let heads_shape = g.op("Concat", &[&bl, &hd], &[Attr::Int("axis", 0)]);
    let zero_row = g.const_f32(&[1, d as i64], &vec![0.0; d]);
    cx.packing = Some(Packing {
        pad_index,
        pack_index,
        heads_shape,
        zero_row,
    });

    let emb = cx.embedding_rows(&mut g, &ids)?;
    let sqrt_d = g.scalar_f32((d as f32).sqrt());
    let emb = g.op("Mul", &[&emb, &sqrt_d], &[]);
    let pos = cx.positions(&mut g, &pos);
    let mut x = g.op("Add", &[&emb, &pos], &[]);
    let bias = cx.mask_bias(&mut g, &mask);
    for l in 1..=arch.enc_depth {
        x = cx.encoder_layer(&mut g, &x, &bias, l)?;
    }
    for l in 1..=arch.dec_depth {
        let p = format!("decoder_l{l}_context");
        let k = cx.affine(&mut g, &x, &format!("{p}_Wk"), &format!("{p}_bk"), d, d)?;
        let v = cx.affine(&mut g, &x, &format!("{p}_Wv"), &format!("{p}_bv"), d, d)?;
        let kt = cx.split_heads(&mut g, &k, &[0, 2, 3, 1]);
        let v = cx.split_heads(&mut g, &v, &[0, 2, 1, 3]);
        let (kn, vn) = cross_names(l);
        g.output(
            &kt,
            &kn,
            dtype::FLOAT,
            &[
                Dim::Named("batch"),
                Dim::Fixed(heads),
                Dim::Fixed(dh),
                Dim::Named("src_len"),
            ],
        );
        g.output(
            &v,
            &vn,
            dtype::FLOAT,
            &[
                Dim::Named("batch"),
                Dim::Fixed(heads),
                Dim::Named("src_len"),
                Dim::Fixed(dh),
            ],
        );
    }
    Ok(g.finish("Marian transformer encoder (valise-convert marian); see MARIAN.md"))
}

/// The one-step decoder graph. Inputs: `prev_ids [b]` (ignored at step 0, whose input
/// embedding is zero), `step [b]` (each row's target position, 0-based), `src_mask [b, L]`,
/// `out_w [k, D]` and `out_b [k]` (the output layer's rows for the batch's shortlist ids),
/// `cross_k_l`, `cross_v_l`, `state_l [b, D]` (zeros at step 0).
/// Outputs: `logits [b, k]` over the shortlist, `state_l_out [b, D]`. Also returns where the
/// output layer lies in the weight file.
pub fn build_decoder(
    model: &MarianModel,
    arch: &MarianArch,
    weights: WeightType,
    file: &mut WeightFile,
) -> Result<(Vec<u8>, OutputLayerSpec), ConvertError> {
    let mut cx = Ctx {
        model,
        arch,
        weights,
        file,
        packing: None,
    };
    let d = arch.dim_emb;
    let (heads, dh) = (arch.heads as i64, cx.head_dim() as i64);
    let mut g = Graph::new("marian_decoder_step");
    let prev = g.input("prev_ids", dtype::INT64, &[Dim::Named("batch")]);
    let step = g.input("step", dtype::INT64, &[Dim::Named("batch")]);
    let mask = g.input(
        "src_mask",
        dtype::FLOAT,
        &[Dim::Named("batch"), Dim::Named("src_len")],
    );
    let out_w = g.input(
        "out_w",
        dtype::FLOAT,
        &[Dim::Named("shortlist"), Dim::Fixed(d as i64)],
    );
    let out_b = g.input("out_b", dtype::FLOAT, &[Dim::Named("shortlist")]);
    let mut cross = Vec::new();
    let mut states = Vec::new();
    for l in 1..=arch.dec_depth {
        let (kn, vn) = cross_names(l);
        let k = g.input(
            &kn,
            dtype::FLOAT,
            &[
                Dim::Named("batch"),
                Dim::Fixed(heads),
                Dim::Fixed(dh),
                Dim::Named("src_len"),
            ],
        );
        let v = g.input(
            &vn,
            dtype::FLOAT,
            &[
                Dim::Named("batch"),
                Dim::Fixed(heads),
                Dim::Named("src_len"),
                Dim::Fixed(dh),
            ],
        );
        cross.push((k, v));
    }
    for l in 1..=arch.dec_depth {
        let (sn, _) = state_names(l);
        states.push(g.input(
            &sn,
            dtype::FLOAT,
            &[Dim::Named("batch"), Dim::Fixed(d as i64)],
        ));
    }

    // Input: sqrt(D)·emb(prev) (zero at step 0) + position(step).
    let emb = cx.embedding_rows(&mut g, &prev)?;
    let sqrt_d = g.scalar_f32((d as f32).sqrt());
    let emb = g.op("Mul", &[&emb, &sqrt_d], &[]);
    let zero_i = g.scalar_i64(0);
    let started = g.op("Greater", &[&step, &zero_i], &[]);
    let started = g.op(
        "Cast",
        &[&started],
        &[Attr::Int("to", i64::from(dtype::FLOAT))],
    );
    // [b] → [b, 1]: each row is at its own step (rows join a batch at different times).
    let axes1 = g.const_i64(&[1]);
    let started = g.op("Unsqueeze", &[&started, &axes1], &[]);
    let emb = g.op("Mul", &[&emb, &started], &[]);
    let stepf = g.op(
        "Cast",
        &[&step],
        &[Attr::Int("to", i64::from(dtype::FLOAT))],
    );
    let pos = cx.positions(&mut g, &stepf);
    let mut x = g.op("Add", &[&emb, &pos], &[]);
    let bias = cx.mask_bias(&mut g, &mask);

    for l in 1..=arch.dec_depth {
        // SSRU: f = σ(x·Wf + bf); c = f·c_prev + (1 − f)·(x·W); h = ReLU(c).
        let p = format!("decoder_l{l}_rnn");
        let w = cx.weight(&mut g, &format!("{p}_W"), d, d)?;
        let xw = g.op("MatMul", &[&x, &w], &[]);
        let f = cx.affine(&mut g, &x, &format!("{p}_Wf"), &format!("{p}_bf"), d, d)?;
        let f = g.op("Sigmoid", &[&f], &[]);
        let one = g.scalar_f32(1.0);
        let keep = g.op("Mul", &[&f, &states[l - 1]], &[]);
        let inv = g.op("Sub", &[&one, &f], &[]);
        let new = g.op("Mul", &[&inv, &xw], &[]);
        let c = g.op("Add", &[&keep, &new], &[]);
        let (_, out_name) = state_names(l);
        g.output(
            &c,
            &out_name,
            dtype::FLOAT,
            &[Dim::Named("batch"), Dim::Fixed(d as i64)],
        );
        let h = g.op("Relu", &[&c], &[]);
        x = cx.add_norm(&mut g, &h, &x, &format!("{p}_ffn"))?;

        // Cross-attention over the cached keys and values.
        let p = format!("decoder_l{l}_context");
        let q = cx.affine(&mut g, &x, &format!("{p}_Wq"), &format!("{p}_bq"), d, d)?;
        let qshape = g.const_i64(&[0, heads, 1, dh]);
        let q = g.op("Reshape", &[&q, &qshape], &[]);
        let (k, v) = cross[l - 1].clone();
        let a = cx.attend(&mut g, &q, &k, &v, &bias);
        let flat = g.const_i64(&[0, d as i64]);
        let a = g.op("Reshape", &[&a, &flat], &[]);
        let o = cx.affine(&mut g, &a, &format!("{p}_Wo"), &format!("{p}_bo"), d, d)?;
        x = cx.add_norm(&mut g, &o, &x, &format!("{p}_Wo"))?;

        x = cx.ffn(&mut g, &x, &format!("decoder_l{l}"))?;
    }

    // Output layer restricted to the shortlist: Gemm(x, Wemb[ids], b[ids], transB = 1), the
    // rows gathered by the engine once per batch composition (output.rs).
    let logits = g.op("Gemm", &[&x, &out_w, &out_b], &[Attr::Int("transB", 1)]);
    g.output(
        &logits,
        "logits",
        dtype::FLOAT,
        &[Dim::Named("batch"), Dim::Named("shortlist")],
    );
    let spec = cx.output_layer()?;
    Ok((
        g.finish("Marian transformer one-step SSRU decoder (valise-convert marian); see MARIAN.md"),
        spec,
    ))
}
