//! Conversion of small synthetic CTranslate2 whisper models: the mapping, the
//! output layout, and the rejection of malformed input (never a panic).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use half::f16;
use valise_convert::ggml::{GgmlType, read_ggml};
use valise_convert::{ConvertError, ConvertOptions, EnglishOnly, OutType, convert_whisper};

const N: usize = 64; // state
const HEADS: i16 = 2;
const MELS: usize = 4;
const AUDIO_CTX: usize = 8;
const TEXT_CTX: usize = 6;
const VOCAB: usize = 40;
const N_TOKENS: usize = 30;
const N_FFT: usize = 5;

const F32: u8 = 0;
const I8: u8 = 1;
const I16: u8 = 2;
const F16: u8 = 4;

#[derive(Clone)]
struct Var {
    shape: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

/// A CTranslate2 model.bin under construction.
#[derive(Clone)]
struct Ct2 {
    version: u32,
    spec: String,
    revision: u32,
    vars: BTreeMap<String, Var>,
    aliases: Vec<(String, String)>,
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.5
    }
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
        .collect()
}

impl Ct2 {
    fn whisper() -> Self {
        let mut m = Ct2 {
            version: 6,
            spec: "WhisperSpec".into(),
            revision: 3,
            vars: BTreeMap::new(),
            aliases: vec![(
                "decoder/projection/weight".into(),
                "decoder/embeddings/weight".into(),
            )],
        };
        let mut rng = Lcg(7);
        let mut t = |m: &mut Ct2, name: &str, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.next()).collect();
            m.set_f16(name, shape, &values);
        };
        t(&mut m, "encoder/conv1/weight", &[N, MELS, 3]);
        t(&mut m, "encoder/conv1/bias", &[N]);
        t(&mut m, "encoder/conv2/weight", &[N, N, 3]);
        t(&mut m, "encoder/conv2/bias", &[N]);
        t(
            &mut m,
            "encoder/position_encodings/encodings",
            &[AUDIO_CTX, N],
        );
        t(&mut m, "encoder/layer_norm/gamma", &[N]);
        t(&mut m, "encoder/layer_norm/beta", &[N]);
        t(&mut m, "decoder/embeddings/weight", &[VOCAB, N]);
        t(
            &mut m,
            "decoder/position_encodings/encodings",
            &[TEXT_CTX, N],
        );
        t(&mut m, "decoder/layer_norm/gamma", &[N]);
        t(&mut m, "decoder/layer_norm/beta", &[N]);
        for side in ["encoder", "decoder"] {
            let p = format!("{side}/layer_0");
            for ln in ["self_attention", "ffn"] {
                t(&mut m, &format!("{p}/{ln}/layer_norm/gamma"), &[N]);
                t(&mut m, &format!("{p}/{ln}/layer_norm/beta"), &[N]);
            }
            t(
                &mut m,
                &format!("{p}/self_attention/linear_0/weight"),
                &[3 * N, N],
            );
            t(
                &mut m,
                &format!("{p}/self_attention/linear_0/bias"),
                &[3 * N],
            );
            t(
                &mut m,
                &format!("{p}/self_attention/linear_1/weight"),
                &[N, N],
            );
            t(&mut m, &format!("{p}/self_attention/linear_1/bias"), &[N]);
            t(&mut m, &format!("{p}/ffn/linear_0/weight"), &[4 * N, N]);
            t(&mut m, &format!("{p}/ffn/linear_0/bias"), &[4 * N]);
            t(&mut m, &format!("{p}/ffn/linear_1/weight"), &[N, 4 * N]);
            t(&mut m, &format!("{p}/ffn/linear_1/bias"), &[N]);
            m.zero_range(&format!("{p}/self_attention/linear_0/bias"), N..2 * N);
            m.scalar(&format!("{side}/num_heads"), I16, &HEADS.to_le_bytes());
        }
        let p = "decoder/layer_0/attention";
        t(&mut m, &format!("{p}/layer_norm/gamma"), &[N]);
        t(&mut m, &format!("{p}/layer_norm/beta"), &[N]);
        t(&mut m, &format!("{p}/linear_0/weight"), &[N, N]);
        t(&mut m, &format!("{p}/linear_0/bias"), &[N]);
        t(&mut m, &format!("{p}/linear_1/weight"), &[2 * N, N]);
        t(&mut m, &format!("{p}/linear_1/bias"), &[2 * N]);
        t(&mut m, &format!("{p}/linear_2/weight"), &[N, N]);
        t(&mut m, &format!("{p}/linear_2/bias"), &[N]);
        m.zero_range(&format!("{p}/linear_1/bias"), 0..N);
        m.scalar("decoder/activation", I8, &[3]);
        m.scalar("decoder/alibi", I8, &[0]);
        m.scalar("decoder/pre_norm", I8, &[1]);
        m.scalar("decoder/scale_embeddings", I8, &[0]);
        m.scalar("decoder/start_from_zero_embedding", I8, &[0]);
        m.scalar("decoder/alignment_heads", I16, &1i16.to_le_bytes());
        m.scalar("decoder/alignment_layer", I16, &(-1i16).to_le_bytes());
        m
    }

    fn set_f16(&mut self, name: &str, shape: &[usize], values: &[f32]) {
        self.vars.insert(
            name.into(),
            Var {
                shape: shape.to_vec(),
                dtype: F16,
                data: f16_bytes(values),
            },
        );
    }

    fn scalar(&mut self, name: &str, dtype: u8, bytes: &[u8]) {
        self.vars.insert(
            name.into(),
            Var {
                shape: vec![],
                dtype,
                data: bytes.to_vec(),
            },
        );
    }

    fn zero_range(&mut self, name: &str, range: std::ops::Range<usize>) {
        let v = self.vars.get_mut(name).expect("var");
        for b in &mut v.data[range.start * 2..range.end * 2] {
            *b = 0;
        }
    }

    fn values(&self, name: &str) -> Vec<f32> {
        self.vars[name]
            .data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    }

    fn to_bytes(&self) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        string(&mut out, &self.spec);
        out.extend_from_slice(&self.revision.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for (name, v) in &self.vars {
            string(&mut out, name);
            out.push(v.shape.len() as u8);
            for d in &v.shape {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(v.dtype);
            out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&v.data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
        out
    }
}

/// A temp dir with assets/ (mel_4 filters + small tiktoken files).
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let assets = dir.path().join("assets");
        std::fs::create_dir(&assets).expect("mkdir");

        let mut npy_header =
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({MELS}, {N_FFT}), }}");
        while !(10 + npy_header.len() + 1).is_multiple_of(64) {
            npy_header.push(' ');
        }
        npy_header.push('\n');
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&(npy_header.len() as u16).to_le_bytes());
        npy.extend_from_slice(npy_header.as_bytes());
        for i in 0..MELS * N_FFT {
            npy.extend_from_slice(&(i as f32 * 0.25).to_le_bytes());
        }
        let file = std::fs::File::create(assets.join("mel_filters.npz")).expect("create npz");
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("mel_{MELS}.npy"), opts)
            .expect("zip entry");
        zip.write_all(&npy).expect("zip write");
        zip.finish().expect("zip finish");

        use base64::Engine as _;
        for (name, n) in [
            ("gpt2.tiktoken", N_TOKENS),
            ("multilingual.tiktoken", N_TOKENS + 1),
        ] {
            let mut text = String::new();
            for i in 0..n {
                let token = format!("tok{i}");
                let b64 = base64::engine::general_purpose::STANDARD.encode(token.as_bytes());
                text.push_str(&format!("{b64} {i}\n"));
            }
            std::fs::write(assets.join(name), text).expect("tiktoken");
        }
        Env { dir }
    }

    fn assets(&self) -> PathBuf {
        self.dir.path().join("assets")
    }

    fn write_model(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).expect("write model");
        p
    }

    fn convert_bytes(&self, bytes: &[u8], out_type: OutType) -> Result<PathBuf, ConvertError> {
        let model = self.write_model("model.bin", bytes);
        let out = self.dir.path().join(format!("out-{}.bin", out_type.name()));
        self.convert_path(&model, &out, out_type, EnglishOnly::Auto)?;
        Ok(out)
    }

    fn convert_path(
        &self,
        model: &Path,
        out: &Path,
        out_type: OutType,
        english_only: EnglishOnly,
    ) -> Result<valise_convert::Report, ConvertError> {
        convert_whisper(&ConvertOptions {
            ct2: model.to_path_buf(),
            assets: self.assets(),
            out: out.to_path_buf(),
            out_type,
            english_only,
        })
    }

    fn convert(&self, m: &Ct2) -> Result<PathBuf, ConvertError> {
        self.convert_bytes(&m.to_bytes(), OutType::F16)
    }
}

fn tensor_f32s(bytes: &[u8], ttype: GgmlType) -> Vec<f32> {
    match ttype {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => valise_convert::quant::dequantize_q8_0(bytes),
        GgmlType::Q5_1 => valise_convert::quant::dequantize_q5_1(bytes),
        GgmlType::Q4_0 => valise_convert::quant::dequantize_q4_0(bytes),
    }
}

#[test]
fn maps_and_splits_every_tensor() {
    let env = Env::new();
    let m = Ct2::whisper();
    let out = env.convert(&m).expect("convert");
    let bytes = std::fs::read(&out).expect("read");
    let file = read_ggml(&out, &bytes).expect("parse");

    let h = file.hparams;
    assert_eq!(
        [
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer,
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels,
            h.ftype
        ],
        [
            VOCAB as i32,
            AUDIO_CTX as i32,
            N as i32,
            2,
            1,
            TEXT_CTX as i32,
            N as i32,
            2,
            1,
            MELS as i32,
            1
        ]
    );
    assert_eq!((file.n_mel, file.n_fft), (MELS, N_FFT));
    assert_eq!(file.filters[3], 0.75);
    assert_eq!(file.tokens.len(), N_TOKENS, "english-only: gpt2 vocabulary");
    assert_eq!(file.tokens[12], b"tok12");
    assert_eq!(file.tensors.len(), 5 + 15 + 2 + 2 + 24 + 2);

    let by_name: BTreeMap<&str, _> = file.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let get = |name: &str| {
        let t = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        (
            t.ne.clone(),
            t.ttype,
            tensor_f32s(&bytes[t.offset..t.offset + t.len], t.ttype),
        )
    };
    let nn = N * N;
    let qkv = m.values("encoder/layer_0/self_attention/linear_0/weight");
    let qkv_b = m.values("encoder/layer_0/self_attention/linear_0/bias");
    assert_eq!(
        get("encoder.blocks.0.attn.query.weight"),
        (vec![N, N], GgmlType::F16, qkv[..nn].to_vec())
    );
    assert_eq!(get("encoder.blocks.0.attn.key.weight").2, qkv[nn..2 * nn]);
    assert_eq!(get("encoder.blocks.0.attn.value.weight").2, qkv[2 * nn..]);
    assert_eq!(
        get("encoder.blocks.0.attn.query.bias"),
        (vec![N], GgmlType::F32, qkv_b[..N].to_vec())
    );
    assert_eq!(get("encoder.blocks.0.attn.value.bias").2, qkv_b[2 * N..]);
    assert!(!by_name.contains_key("encoder.blocks.0.attn.key.bias"));

    let kv = m.values("decoder/layer_0/attention/linear_1/weight");
    let kv_b = m.values("decoder/layer_0/attention/linear_1/bias");
    assert_eq!(get("decoder.blocks.0.cross_attn.key.weight").2, kv[..nn]);
    assert_eq!(get("decoder.blocks.0.cross_attn.value.weight").2, kv[nn..]);
    assert_eq!(get("decoder.blocks.0.cross_attn.value.bias").2, kv_b[N..]);
    assert_eq!(
        get("decoder.blocks.0.cross_attn.query.weight").2,
        m.values("decoder/layer_0/attention/linear_0/weight")
    );
    assert_eq!(
        get("decoder.blocks.0.cross_attn.out.bias").2,
        m.values("decoder/layer_0/attention/linear_2/bias")
    );
    assert_eq!(
        get("decoder.blocks.0.mlp.2.weight"),
        (
            vec![4 * N, N],
            GgmlType::F16,
            m.values("decoder/layer_0/ffn/linear_1/weight")
        )
    );
    assert_eq!(
        get("decoder.blocks.0.cross_attn_ln.weight").2,
        m.values("decoder/layer_0/attention/layer_norm/gamma")
    );
    assert_eq!(
        get("encoder.ln_post.bias").2,
        m.values("encoder/layer_norm/beta")
    );
    assert_eq!(
        get("decoder.ln.weight").2,
        m.values("decoder/layer_norm/gamma")
    );
    assert_eq!(
        get("decoder.token_embedding.weight"),
        (
            vec![N, VOCAB],
            GgmlType::F16,
            m.values("decoder/embeddings/weight")
        )
    );
    let (ne, tt, v) = get("encoder.conv1.bias");
    assert_eq!((ne, tt), (vec![1, N], GgmlType::F32));
    assert_eq!(v, m.values("encoder/conv1/bias"));
    assert_eq!(get("encoder.conv1.weight").0, vec![3, MELS, N]);
    assert_eq!(get("encoder.positional_embedding").1, GgmlType::F32);
    assert_eq!(get("decoder.positional_embedding").1, GgmlType::F32);
}

#[test]
fn quantized_outputs_follow_the_quantize_tool() {
    let env = Env::new();
    let bytes = Ct2::whisper().to_bytes();
    for (out_type, qtype, ftype) in [
        (OutType::Q8_0, GgmlType::Q8_0, 2007),
        (OutType::Q5_1, GgmlType::Q5_1, 2009),
        (OutType::Q4_0, GgmlType::Q4_0, 2002),
    ] {
        let out = env.convert_bytes(&bytes, out_type).expect("convert");
        let data = std::fs::read(&out).expect("read");
        let file = read_ggml(&out, &data).expect("parse");
        assert_eq!(file.hparams.ftype, ftype);
        for t in &file.tensors {
            let skip = [
                "encoder.conv1.bias",
                "encoder.conv2.bias",
                "encoder.positional_embedding",
                "decoder.positional_embedding",
            ]
            .contains(&t.name.as_str());
            let want = match (t.ne.len(), skip) {
                (2, false) => qtype,
                (1, _) | (2, true) => GgmlType::F32,
                _ => GgmlType::F16, // conv weights
            };
            assert_eq!(t.ttype, want, "{}", t.name);
        }
    }
}

#[test]
fn output_is_deterministic_and_report_matches_file() {
    let env = Env::new();
    let bytes = Ct2::whisper().to_bytes();
    let model = env.write_model("m.bin", &bytes);
    let a = env.dir.path().join("a.bin");
    let b = env.dir.path().join("b.bin");
    for t in [OutType::F16, OutType::Q8_0, OutType::Q5_1, OutType::Q4_0] {
        let ra = env
            .convert_path(&model, &a, t, EnglishOnly::Auto)
            .expect("a");
        let rb = env
            .convert_path(&model, &b, t, EnglishOnly::Auto)
            .expect("b");
        assert_eq!(ra.sha256, rb.sha256);
        let file = std::fs::read(&a).expect("read");
        assert_eq!(file.len() as u64, ra.size_bytes);
        use sha2::Digest as _;
        assert_eq!(hex::encode(sha2::Sha256::digest(&file)), ra.sha256);
        assert_eq!(file, std::fs::read(&b).expect("read"));
    }
    // A directory input means DIR/model.bin.
    env.write_model("model.bin", &bytes);
    let r = env
        .convert_path(env.dir.path(), &a, OutType::F16, EnglishOnly::No)
        .expect("dir input");
    assert_eq!(r.n_tokens, N_TOKENS + 1, "multilingual vocabulary forced");
}

#[test]
fn int8_weights_are_dequantized() {
    let env = Env::new();
    let mut m = Ct2::whisper();
    let name = "encoder/layer_0/ffn/linear_0/weight";
    let orig = m.values(name);
    // CTranslate2 int8: per-row scale = 127 / amax, q = rint(w * scale).
    let (rows, cols) = (4 * N, N);
    let mut q = Vec::new();
    let mut scales = Vec::new();
    for r in 0..rows {
        let row = &orig[r * cols..(r + 1) * cols];
        let amax = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let s = 127.0 / amax;
        scales.extend_from_slice(&s.to_le_bytes());
        q.extend(row.iter().map(|v| (v * s).round() as i8 as u8));
    }
    m.vars.insert(
        name.into(),
        Var {
            shape: vec![rows, cols],
            dtype: I8,
            data: q,
        },
    );
    m.vars.insert(
        format!("{name}_scale"),
        Var {
            shape: vec![rows],
            dtype: F32,
            data: scales,
        },
    );
    let out = env.convert(&m).expect("convert");
    let bytes = std::fs::read(&out).expect("read");
    let file = read_ggml(&out, &bytes).expect("parse");
    let t = file
        .tensors
        .iter()
        .find(|t| t.name == "encoder.blocks.0.mlp.0.weight")
        .expect("mlp.0");
    let got = tensor_f32s(&bytes[t.offset..t.offset + t.len], t.ttype);
    for (a, b) in orig.iter().zip(&got) {
        assert!((a - b).abs() < 0.5 / 127.0 + 1e-3, "{a} vs {b}");
    }

    // Without its scale the int8 weight is refused.
    m.vars.remove(&format!("{name}_scale"));
    assert!(matches!(
        env.convert(&m),
        Err(ConvertError::UnsupportedDtype { .. })
    ));
}

#[test]
fn f32_source_is_accepted() {
    let env = Env::new();
    let mut m = Ct2::whisper();
    let name = "decoder/layer_0/ffn/linear_1/bias";
    let values = m.values(name);
    m.vars.insert(
        name.into(),
        Var {
            shape: vec![N],
            dtype: F32,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
    );
    env.convert(&m).expect("f32 variables convert");
}

fn expect_err(env: &Env, m: &Ct2, check: impl Fn(&ConvertError) -> bool) {
    match env.convert(m) {
        Ok(_) => panic!("conversion should fail"),
        Err(e) => assert!(check(&e), "unexpected error: {e}"),
    }
}

#[test]
fn rejects_non_zero_key_biases() {
    let env = Env::new();
    let mut m = Ct2::whisper();
    let name = "encoder/layer_0/self_attention/linear_0/bias";
    m.vars.get_mut(name).expect("var").data[2 * (N + 5)..2 * (N + 5) + 2]
        .copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::NonZeroKeyBias { name: n, index, value } if n == name && *index == N + 5 && *value == 0.25),
    );

    let mut m = Ct2::whisper();
    let name = "decoder/layer_0/attention/linear_1/bias";
    m.vars.get_mut(name).expect("var").data[0..2]
        .copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
    expect_err(&env, &m, |e| {
        matches!(e, ConvertError::NonZeroKeyBias { index: 0, .. })
    });
}

#[test]
fn rejects_wrong_shapes_settings_and_names() {
    let env = Env::new();

    let mut m = Ct2::whisper();
    m.vars
        .get_mut("decoder/layer_0/ffn/linear_1/weight")
        .expect("var")
        .shape = vec![4 * N, N];
    expect_err(&env, &m, |e| {
        matches!(e, ConvertError::ShapeMismatch { name, expected, found }
            if name == "decoder/layer_0/ffn/linear_1/weight" && expected == &vec![N, 4 * N] && found == &vec![4 * N, N])
    });

    let mut m = Ct2::whisper();
    m.scalar("decoder/activation", I8, &[0]);
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::UnsupportedSetting { name, .. } if name == "decoder/activation"),
    );

    let mut m = Ct2::whisper();
    m.scalar("decoder/something_new", I8, &[1]);
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::UnexpectedVariable { name } if name == "decoder/something_new"),
    );

    let mut m = Ct2::whisper();
    m.vars.remove("decoder/layer_0/attention/linear_2/bias");
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::MissingVariable { name } if name == "decoder/layer_0/attention/linear_2/bias"),
    );

    let mut m = Ct2::whisper();
    m.scalar("encoder/num_heads", I16, &5i16.to_le_bytes());
    expect_err(&env, &m, |e| matches!(e, ConvertError::Hparams { .. }));

    let mut m = Ct2::whisper();
    m.spec = "TransformerSpec".into();
    expect_err(&env, &m, |e| {
        matches!(e, ConvertError::UnsupportedSpec { .. })
    });

    let mut m = Ct2::whisper();
    m.version = 5;
    expect_err(&env, &m, |e| {
        matches!(
            e,
            ConvertError::UnsupportedVersion {
                found: 5,
                supported: 6,
                ..
            }
        )
    });

    let mut m = Ct2::whisper();
    m.aliases[0].1 = "decoder/layer_norm/gamma".into();
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::UnsupportedSetting { name, .. } if name == "decoder/projection/weight"),
    );

    let mut m = Ct2::whisper();
    m.aliases.push(("decoder/x".into(), "decoder/nope".into()));
    expect_err(&env, &m, |e| matches!(e, ConvertError::Malformed { .. }));

    let mut m = Ct2::whisper();
    let v = m.vars.get_mut("encoder/conv2/weight").expect("var");
    v.data[10..12].copy_from_slice(&f16::NAN.to_le_bytes());
    expect_err(&env, &m, |e| {
        matches!(e, ConvertError::NonFinite { index: 5, .. })
    });

    let mut m = Ct2::whisper();
    m.vars.get_mut("encoder/conv1/bias").expect("var").dtype = 9;
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::Malformed { reason, .. } if reason.contains("dtype id 9")),
    );

    // Declared byte count disagreeing with shape × dtype.
    let mut m = Ct2::whisper();
    m.vars.get_mut("encoder/conv1/bias").expect("var").shape = vec![N + 1];
    expect_err(&env, &m, |e| matches!(e, ConvertError::SizeMismatch { .. }));
}

#[test]
fn rejects_truncated_and_trailing_bytes_without_panicking() {
    let env = Env::new();
    let bytes = Ct2::whisper().to_bytes();
    // Every prefix in the header area, then a spread over the whole file.
    let cuts: Vec<usize> = (0..600).chain((600..bytes.len()).step_by(997)).collect();
    for cut in cuts {
        let e = env
            .convert_bytes(&bytes[..cut], OutType::F16)
            .expect_err("truncated input must fail");
        assert!(
            matches!(
                e,
                ConvertError::Truncated { .. } | ConvertError::Malformed { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    let e = env
        .convert_bytes(&long, OutType::F16)
        .expect_err("trailing byte");
    assert!(
        matches!(e, ConvertError::Malformed { ref reason, .. } if reason.contains("trailing")),
        "{e}"
    );
}

#[test]
fn random_corruption_never_panics() {
    let env = Env::new();
    let bytes = Ct2::whisper().to_bytes();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            // Bias towards the header and the first variables, where structure lives.
            let pos = (next()
                % if next() % 2 == 0 {
                    2048
                } else {
                    b.len() as u64
                }) as usize;
            b[pos] = next() as u8;
        }
        let _ = env.convert_bytes(&b, OutType::Q5_1);
    }
}

#[test]
fn failed_conversion_leaves_existing_output_alone() {
    let env = Env::new();
    let out = env.dir.path().join("keep.bin");
    std::fs::write(&out, b"previous model").expect("write");
    let mut m = Ct2::whisper();
    m.vars.remove("encoder/conv1/bias");
    let model = env.write_model("bad.bin", &m.to_bytes());
    env.convert_path(&model, &out, OutType::F16, EnglishOnly::Auto)
        .expect_err("must fail");
    assert_eq!(std::fs::read(&out).expect("read"), b"previous model");
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind");
}

#[test]
fn rejects_bad_assets() {
    let env = Env::new();
    let bytes = Ct2::whisper().to_bytes();
    let model = env.write_model("m.bin", &bytes);
    let out = env.dir.path().join("o.bin");

    // Tokenizer larger than the embedding.
    let many: String = (0..VOCAB + 1)
        .map(|i| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("t{i}"));
            format!("{b64} {i}\n")
        })
        .collect();
    std::fs::write(env.assets().join("gpt2.tiktoken"), many).expect("write");
    let e = env
        .convert_path(&model, &out, OutType::F16, EnglishOnly::Auto)
        .expect_err("too many tokens");
    assert!(
        matches!(e, ConvertError::VocabTooLarge { tokens, n_vocab: VOCAB, .. } if tokens == VOCAB + 1),
        "{e}"
    );

    std::fs::write(env.assets().join("gpt2.tiktoken"), "not base64! 0\n").expect("write");
    let e = env
        .convert_path(&model, &out, OutType::F16, EnglishOnly::Auto)
        .expect_err("bad tokenizer");
    assert!(matches!(e, ConvertError::Tokenizer { line: 1, .. }), "{e}");

    // No mel_4 entry for this model.
    let env = Env::new();
    let mut m = Ct2::whisper();
    let conv1 = m.values("encoder/conv1/weight");
    m.set_f16(
        "encoder/conv1/weight",
        &[N, MELS / 2, 3],
        &conv1[..N * MELS / 2 * 3],
    );
    expect_err(
        &env,
        &m,
        |e| matches!(e, ConvertError::MelFilters { reason, .. } if reason.contains("mel_2.npy")),
    );

    std::fs::write(env.assets().join("mel_filters.npz"), b"not a zip").expect("write");
    expect_err(&env, &Ct2::whisper(), |e| {
        matches!(e, ConvertError::MelFilters { .. })
    });

    let missing = ConvertOptions {
        ct2: env.dir.path().join("nope/model.bin"),
        assets: env.assets(),
        out: out.clone(),
        out_type: OutType::F16,
        english_only: EnglishOnly::Auto,
    };
    let e = convert_whisper(&missing).expect_err("missing input");
    assert!(matches!(e, ConvertError::Io { .. }), "{e}");
    assert!(e.to_string().contains("nope/model.bin"), "{e}");
}

#[test]
fn cli_converts_and_reports_errors() {
    let env = Env::new();
    let model = env.write_model("model.bin", &Ct2::whisper().to_bytes());
    let out = env.dir.path().join("cli.bin");
    let run = |ct2: &Path, ty: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_valise-convert"))
            .arg("whisper")
            .arg("--ct2")
            .arg(ct2)
            .arg("--assets")
            .arg(env.assets())
            .arg("--out")
            .arg(&out)
            .args(["--type", ty, "--english-only", "auto"])
            .output()
            .expect("run valise-convert")
    };
    let ok = run(&model, "q8_0");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let size = std::fs::metadata(&out).expect("output").len();
    assert!(
        stdout.contains(&format!("size:       {size} bytes")),
        "{stdout}"
    );
    assert!(stdout.contains("sha256:"), "{stdout}");
    assert!(stdout.contains("hparams ftype 2007"), "{stdout}");

    let bad = env.write_model("bad.bin", b"\x05\x00\x00\x00");
    let failed = run(&bad, "f16");
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("unsupported CTranslate2 binary version 5"),
        "{stderr}"
    );
}
