//! Marian reader, shortlist and converter on small synthetic models: layout,
//! validation errors (never panics), determinism.

use std::path::Path;

use valise_convert::marian::binary::{ItemType, Matrix, write_marian};
use valise_convert::marian::{MarianArch, MarianModel, Shortlist, parse_model_yml};
use valise_convert::{ConvertError, MarianOptions, WeightType, convert_marian};

const D: usize = 8;
const FFN: usize = 16;
const V: usize = 16;

fn yml(extra: &str) -> String {
    format!(
        "dec-cell: ssru\ndec-depth: 1\ndim-emb: {D}\ndim-vocabs:\n  - {V}\n  - {V}\nenc-depth: 1\n\
         layer-normalization: false\ntied-embeddings-all: true\ntransformer-decoder-autoreg: rnn\n\
         transformer-dim-ffn: {FFN}\ntransformer-ffn-activation: relu\ntransformer-ffn-depth: 2\n\
         transformer-heads: 2\ntransformer-postprocess: dan\ntransformer-postprocess-emb: d\n\
         transformer-postprocess-top: \"\"\ntransformer-preprocess: \"\"\ntransformer-tied-layers: []\n\
         type: transformer\n{extra}"
    )
}

type Items = Vec<(String, ItemType, Vec<usize>, Vec<u8>)>;

fn f32_item(name: &str, shape: &[usize], seed: usize) -> (String, ItemType, Vec<usize>, Vec<u8>) {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .flat_map(|i| (((i * 31 + seed * 17) % 23) as f32 / 23.0 - 0.5).to_le_bytes())
        .collect();
    (name.to_owned(), ItemType::Float32, shape.to_vec(), data)
}

fn int8_item(
    name: &str,
    rows: usize,
    cols: usize,
    seed: usize,
) -> (String, ItemType, Vec<usize>, Vec<u8>) {
    let mut data: Vec<u8> = (0..rows * cols)
        .map(|i| (((i * 7 + seed) % 255) as i32 - 127) as i8 as u8)
        .collect();
    data.extend_from_slice(&50f32.to_le_bytes());
    (name.to_owned(), ItemType::Intgemm8, vec![rows, cols], data)
}

fn model_items(extra_yml: &str) -> Items {
    let mut items: Items = vec![
        int8_item("Wemb", V, D, 1),
        f32_item("decoder_ff_logit_out_b", &[1, V], 2),
    ];
    let mut seed = 3;
    let mut mat = |items: &mut Items, name: String, r: usize, c: usize| {
        seed += 1;
        items.push(int8_item(&name, r, c, seed));
    };
    for (p, sq) in [("encoder_l1_self", true)] {
        for w in ["Wq", "Wk", "Wv", "Wo"] {
            mat(&mut items, format!("{p}_{w}"), D, D);
        }
        let _ = sq;
    }
    mat(&mut items, "encoder_l1_ffn_W1".into(), D, FFN);
    mat(&mut items, "encoder_l1_ffn_W2".into(), FFN, D);
    for w in [
        "context_Wq",
        "context_Wk",
        "context_Wv",
        "context_Wo",
        "rnn_W",
        "rnn_Wf",
    ] {
        mat(&mut items, format!("decoder_l1_{w}"), D, D);
    }
    mat(&mut items, "decoder_l1_ffn_W1".into(), D, FFN);
    mat(&mut items, "decoder_l1_ffn_W2".into(), FFN, D);
    let mut s = 100;
    for name in [
        "encoder_l1_self_bq",
        "encoder_l1_self_bk",
        "encoder_l1_self_bv",
        "encoder_l1_self_bo",
        "encoder_l1_self_Wo_ln_scale",
        "encoder_l1_self_Wo_ln_bias",
        "encoder_l1_ffn_b2",
        "encoder_l1_ffn_ffn_ln_scale",
        "encoder_l1_ffn_ffn_ln_bias",
        "decoder_l1_rnn_bf",
        "decoder_l1_rnn_ffn_ln_scale",
        "decoder_l1_rnn_ffn_ln_bias",
        "decoder_l1_context_bq",
        "decoder_l1_context_bk",
        "decoder_l1_context_bv",
        "decoder_l1_context_bo",
        "decoder_l1_context_Wo_ln_scale",
        "decoder_l1_context_Wo_ln_bias",
        "decoder_l1_ffn_b2",
        "decoder_l1_ffn_ffn_ln_scale",
        "decoder_l1_ffn_ffn_ln_bias",
    ] {
        s += 1;
        items.push(f32_item(name, &[1, D], s));
    }
    items.push(f32_item("encoder_l1_ffn_b1", &[1, FFN], 201));
    items.push(f32_item("decoder_l1_ffn_b1", &[1, FFN], 202));
    items.push(f32_item("encoder_l1_self_Wq_QuantMultA", &[1, 1], 203));
    let y = yml(extra_yml);
    items.push((
        "special:model.yml".into(),
        ItemType::Int8,
        vec![y.len()],
        y.into_bytes(),
    ));
    items
}

fn shortlist() -> Shortlist {
    // Source word w translates to (w + 1) % V and (w + 5) % V.
    let mut offsets = vec![0u64];
    let mut lists = Vec::new();
    for w in 0..V as u32 {
        lists.extend([(w + 1) % V as u32, (w + 5) % V as u32]);
        offsets.push(lists.len() as u64);
    }
    Shortlist {
        first_num: 3,
        best_num: 2,
        offsets,
        lists,
        trg_vocab: V,
    }
}

/// A SentencePiece ModelProto with V pieces: field 1 (pieces), each with field 1 (piece).
fn spm() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..V {
        let piece = match i {
            0 => "</s>".to_owned(),
            1 => "<unk>".to_owned(),
            _ => format!("▁w{i}"),
        };
        let inner_len = 2 + piece.len();
        out.push(0x0a);
        out.push(inner_len as u8);
        out.push(0x0a);
        out.push(piece.len() as u8);
        out.extend_from_slice(piece.as_bytes());
    }
    out
}

fn write_inputs(dir: &Path, items: &Items) -> MarianOptions {
    std::fs::write(dir.join("model.xxyy.bin"), write_marian(items)).expect("write model");
    std::fs::write(dir.join("vocab.spm"), spm()).expect("write vocab");
    std::fs::write(dir.join("lex.bin"), shortlist().to_bytes()).expect("write shortlist");
    MarianOptions {
        model: dir.join("model.xxyy.bin"),
        vocab: dir.join("vocab.spm"),
        shortlist: dir.join("lex.bin"),
        tokenizer: None,
        out: dir.join("out"),
        weights: WeightType::Int8,
        src_lang: None,
        trg_lang: None,
    }
}

#[test]
fn reads_items_and_untransposes_intgemm() {
    let items = model_items("");
    let bytes = write_marian(&items);
    let m = MarianModel::parse(Path::new("mem"), &bytes).expect("parse");
    assert_eq!(m.items.len(), items.len());
    let arch = MarianArch::from_model(&m).expect("arch");
    assert_eq!(
        (arch.dim_emb, arch.heads, arch.dim_ffn, arch.vocab),
        (D, 2, FFN, V)
    );
    // W1 is stored transposed (FFN × D) and must come back as D × FFN.
    let raw = &items
        .iter()
        .find(|i| i.0 == "encoder_l1_ffn_W1")
        .expect("W1")
        .3;
    let Matrix::Int8(q) = m.matrix("encoder_l1_ffn_W1", D, FFN, true).expect("W1") else {
        panic!("expected int8");
    };
    for i in 0..D {
        for j in 0..FFN {
            assert_eq!(q.q[i * FFN + j], raw[j * D + i] as i8);
        }
    }
    assert_eq!(q.multiplier, 50.0);
    assert!((q.dequantize()[1] - f32::from(q.q[1]) / 50.0).abs() < 1e-6);
}

#[test]
fn truncation_and_garbage_are_errors_not_panics() {
    let bytes = write_marian(&model_items(""));
    for cut in [0, 7, 8, 16, 40, 300, bytes.len() / 2, bytes.len() - 1] {
        let r = MarianModel::parse(Path::new("mem"), &bytes[..cut]);
        assert!(
            matches!(r, Err(ConvertError::MarianFormat { .. })),
            "cut at {cut}: {r:?}"
        );
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(MarianModel::parse(Path::new("mem"), &extra).is_err());
    let mut bad = bytes.clone();
    bad[0] = 2;
    let e = MarianModel::parse(Path::new("mem"), &bad).expect_err("version");
    assert!(e.to_string().contains("version 2"), "{e}");
    // Flip every byte of the header region in turn: errors or success, never a panic.
    for i in 0..600.min(bytes.len()) {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        let _ = MarianModel::parse(Path::new("mem"), &b);
    }
}

#[test]
fn unsupported_architecture_is_reported() {
    let m = MarianModel::parse(
        Path::new("mem"),
        &write_marian(&model_items("transformer-ffn-activation: gelu\n")),
    );
    // The extra line overrides the relu one (later keys win in the flat map).
    let e = MarianArch::from_model(&m.expect("parse")).expect_err("gelu");
    assert!(e.to_string().contains("gelu"), "{e}");
    let y = parse_model_yml("a: 1\nb:\n  - x\n  - y\nc: \"\"\n");
    assert_eq!(y["b"], vec!["x", "y"]);
    assert!(y["c"].is_empty() || y["c"] == vec![""]);
}

#[test]
fn shortlist_roundtrip_generate_and_corruption() {
    let sl = shortlist();
    let bytes = sl.to_bytes();
    let back = Shortlist::parse(Path::new("mem"), &bytes, V, V).expect("parse");
    assert_eq!(back, sl);
    // first 3 + lists of 7 → {8, 12} and of 0 (EOS) → {1, 5}: {0,1,2,5,8,12} = 6, padded
    // to 8 with the first unselected ids from firstNum on: 3, 4.
    assert_eq!(back.generate(&[7, 0], false), vec![0, 1, 2, 3, 4, 5, 8, 12]);
    // With the source words: + 7 → 7 ids, padded with 3.
    assert_eq!(back.generate(&[7, 0], true), vec![0, 1, 2, 3, 5, 7, 8, 12]);
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = Shortlist::parse(Path::new("mem"), &bad, V, V).expect_err("checksum");
    assert!(e.to_string().contains("checksum"), "{e}");
    assert!(Shortlist::parse(Path::new("mem"), &bytes[..bytes.len() - 4], V, V).is_err());
    assert!(Shortlist::parse(Path::new("mem"), &bytes, V + 1, V).is_err());
}

#[test]
fn converts_deterministically_and_rejects_unknown_items() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = write_inputs(tmp.path(), &model_items(""));
    let a = convert_marian(&opts).expect("convert");
    let b = convert_marian(&opts).expect("convert again");
    assert_eq!(
        a.files.iter().map(|f| &f.sha256).collect::<Vec<_>>(),
        b.files.iter().map(|f| &f.sha256).collect::<Vec<_>>()
    );
    assert_eq!(
        (a.src_lang.as_str(), a.trg_lang.as_str(), a.eos_id, a.unk_id),
        ("xx", "yy", 0, 1)
    );
    for f in [
        "encoder.onnx",
        "decoder.onnx",
        "weights.bin",
        "shortlist.bin",
        "vocab.spm",
        "model.toml",
    ] {
        assert!(opts.out.join(f).is_file(), "{f} missing");
    }
    let toml = std::fs::read_to_string(opts.out.join("model.toml")).expect("toml");
    assert!(
        toml.contains("vocab_size = 16") && toml.contains("eos_id = 0"),
        "{toml}"
    );
    // Int8 weights: the embedding (V × D bytes) is stored once for both graphs.
    let f32_opts = MarianOptions {
        weights: WeightType::F32,
        out: tmp.path().join("out32"),
        ..opts.clone()
    };
    let f = convert_marian(&f32_opts).expect("f32");
    assert!(f.model_bytes() > a.model_bytes());

    let mut items = model_items("");
    items.push(f32_item("decoder_l1_self_Wq", &[D, D], 9));
    let opts = write_inputs(tmp.path(), &items);
    let e = convert_marian(&opts).expect_err("unknown item");
    assert!(matches!(e, ConvertError::UnexpectedVariable { .. }), "{e}");
}
