//! The engine with the real en→pt and pt→en models of the dev store (scripts/fetch-models):
//! reference agreement through the whole text pipeline, batching exactness, layout, limits.
//! A missing store FAILS the tests, it never skips.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use valise_protocol::translate::TranslateRequest;
use valise_translate::{Config, Engine, TranslateError};

pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Arc::new(Engine::load(&Config::default()).unwrap_or_else(|e| {
                panic!("loading the translation models from the dev store: {e} — run scripts/fetch-models")
            }))
        })
        .clone()
}

struct Fixture {
    source: String,
    reference: String,
}

fn fixtures(pair: &str) -> Vec<Fixture> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../models/valise-convert/tests/fixtures/{pair}.jsonl"
    ));
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

fn req(text: &str, source: &str, target: &str) -> TranslateRequest {
    TranslateRequest {
        text: text.to_owned(),
        source: source.to_owned(),
        target: target.to_owned(),
    }
}

/// Every fixture sentence as its own request, through the full pipeline (segmentation,
/// automatic source language included).
fn check_reference(pair: &str, from: &str, to: &str) {
    let e = engine();
    let rows = fixtures(pair);
    assert!(rows.len() >= 50);
    let mut same = 0;
    let mut detected = 0;
    for r in &rows {
        let out = e.translate(&req(&r.source, "auto", to)).expect("translate");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.source, from);
        if out.translation == r.reference {
            same += 1;
        } else {
            eprintln!(
                "{pair} DIFF: {:?}\n  reference: {:?}\n  valise:    {:?}",
                r.source, r.reference, out.translation
            );
        }
        let auto = e.detect(&r.source).expect("detect");
        if auto.language == from {
            detected += 1;
        }
    }
    let pct = 100.0 * same as f64 / rows.len() as f64;
    eprintln!(
        "{pair}: {same}/{} identical to the reference engine ({pct:.1}%); source detected {detected}/{}",
        rows.len(),
        rows.len()
    );
    assert!(pct >= 98.0, "{pair}: only {pct:.1}% identical");
    assert!(
        detected * 10 >= rows.len() * 9,
        "{pair}: detection {detected}/{}",
        rows.len()
    );
}

#[test]
fn enpt_matches_reference_through_the_pipeline() {
    check_reference("enpt", "en", "pt");
}

#[test]
fn pten_matches_reference_through_the_pipeline() {
    check_reference("pten", "pt", "en");
}

#[test]
fn batched_equals_batch_of_one() {
    let e = engine();
    for (pair, from, to) in [("enpt", "en", "pt"), ("pten", "pt", "en")] {
        let m = e.model(from, to).expect("model");
        let texts: Vec<String> = fixtures(pair).into_iter().map(|f| f.source).collect();
        let _ = e.translate_batched(m, &texts[..2], 1, None);
        let t = Instant::now();
        let one = e.translate_batched(m, &texts, 1, None).expect("batch 1");
        let r1 = texts.len() as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let many = e.translate_batched(m, &texts, 16, None).expect("batch 16");
        let r16 = texts.len() as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "{pair}: {r1:.1} sentences/s batch 1, {r16:.1} sentences/s batch 16 (one worker)"
        );
        let one: Vec<String> = one.into_iter().map(|r| r.expect("ok")).collect();
        let many: Vec<String> = many.into_iter().map(|r| r.expect("ok")).collect();
        for (i, (a, b)) in one.iter().zip(&many).enumerate() {
            assert_eq!(a, b, "{pair} sentence {i} ({:?}) differs batched", texts[i]);
        }
    }
}

/// Continuous decoding: rows that join a running batch at different steps, and leave it as
/// they finish, come out exactly as each alone, and every row comes back once.
#[test]
fn rows_joining_and_leaving_a_running_batch_translate_as_alone() {
    let e = engine();
    for (pair, from, to) in [("enpt", "en", "pt"), ("pten", "pt", "en")] {
        let m = e.model(from, to).expect("model");
        let rows: Vec<Vec<u32>> = fixtures(pair)
            .iter()
            .take(24)
            .map(|f| m.tokenize(&f.source).expect("tokenize"))
            .collect();
        let alone: Vec<String> = rows
            .iter()
            .map(|r| {
                let mut out = m.translate_ids(std::slice::from_ref(r));
                out.pop().expect("one result").expect("ok")
            })
            .collect();
        let mut dec = valise_translate::model::Decoding::new(m);
        let mut got: Vec<Option<String>> = vec![None; rows.len()];
        let mut next = 0;
        let mut steps = 0;
        // One row joins every third step (two at a time every seventh), whatever is running.
        while next < rows.len() || !dec.is_empty() {
            if next < rows.len() && (steps % 3 == 0 || dec.is_empty()) {
                let n = if steps % 7 == 0 { 2 } else { 1 }.min(rows.len() - next);
                let joining = (next..next + n).map(|i| (i, rows[i].clone())).collect();
                assert!(dec.add(joining).is_empty(), "{pair}: encoder failed");
                next += n;
            }
            for (i, r) in dec.step() {
                assert!(got[i].is_none(), "{pair}: row {i} came back twice");
                got[i] = Some(r.expect("ok"));
            }
            steps += 1;
        }
        for (i, (g, a)) in got.iter().zip(&alone).enumerate() {
            assert_eq!(
                g.as_deref(),
                Some(a.as_str()),
                "{pair} row {i} differs when joining late"
            );
        }
    }
}

/// A request past its deadline stops taking the workers' time at the next decoder step (its
/// rows leave the running batches), ends `timed_out`, and the next request is unaffected.
#[test]
fn a_request_past_its_deadline_leaves_the_running_batches() {
    let mut config = Config::default();
    config.limits.max_request_secs = 1;
    config.limits.max_chars = 1_000_000;
    let e = Engine::load(&config).expect("engine");
    let lines: Vec<String> = fixtures("enpt").into_iter().map(|f| f.source).collect();
    // About 20 s of work on two workers of this 2-core machine.
    let mut text = String::new();
    while text.len() + 200 < 600_000 {
        text.push_str(&lines[text.len() % lines.len()]);
        text.push('\n');
    }
    let t = Instant::now();
    let err = e
        .translate(&req(&text, "en", "pt"))
        .expect_err("past its deadline");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(err.code(), "timed_out");
    assert!(
        took < 4.0,
        "a 1 s deadline took {took:.1} s to end the request"
    );
    let short = &lines[0];
    let alone = engine().translate(&req(short, "en", "pt")).expect("ok");
    let after = e
        .translate(&req(short, "en", "pt"))
        .expect("served after a timeout");
    assert_eq!(after.translation, alone.translation);
}

#[test]
fn layout_and_abbreviations_are_kept() {
    let e = engine();
    let text = "  Mr. Smith met Dr. Jones at 3.5 p.m. in the embassy.  The meeting was short!\n\n\tThe visa costs 1.000,00 euros.\r\nThank you.  \n";
    let out = e.translate(&req(text, "en", "pt")).expect("translate");
    eprintln!("{:?}", out.translation);
    assert_eq!(out.sentences, 4, "{out:?}");
    assert!(out.errors.is_empty());
    assert!(out.translation.starts_with("  "), "{:?}", out.translation);
    assert!(out.translation.ends_with(".  \n"), "{:?}", out.translation);
    assert!(out.translation.contains("!\n\n\t"), "{:?}", out.translation);
    assert!(out.translation.contains(".\r\n"), "{:?}", out.translation);
    assert_eq!(out.translation.matches('\n').count(), 4);
    assert!(!out.pivot);
    assert_eq!(out.source, "en");

    let pt = e
        .translate(&req(
            "O Sr. Silva chegou. A Sra. Costa também.",
            "auto",
            "en",
        ))
        .expect("translate");
    assert_eq!(pt.source, "pt");
    assert_eq!(pt.sentences, 2, "{pt:?}");
}

#[test]
fn unsupported_pairs_and_bad_input_are_clear_errors() {
    let e = engine();
    let langs = e.languages();
    assert_eq!(langs.pairs.len(), 2, "{langs:?}");
    assert!(langs.pairs.iter().all(|p| !p.pivot));
    // en↔pt only: no pivot is possible for anything else.
    let err = e.route("pt", "fr").expect_err("no such pair");
    assert!(
        matches!(err, TranslateError::UnsupportedPair { .. }),
        "{err}"
    );
    assert_eq!(err.code(), "unsupported_pair");
    assert!(err.to_string().contains("en→pt"), "{err}");
    let err = e.translate(&req("Hello.", "en", "fr")).expect_err("fr");
    assert_eq!(err.code(), "bad_request", "{err}");
    let err = e
        .translate(&req(" \n\u{0}\t ", "en", "pt"))
        .expect_err("empty");
    assert_eq!(err.code(), "empty");
    let err = e.translate(&req("Hello.", "en", "en")).expect_err("same");
    assert_eq!(err.code(), "bad_request");
    // Control characters are stripped, not translated and not fatal.
    let out = e
        .translate(&req("Good\u{0} morning.\u{7}", "en", "pt"))
        .expect("ok");
    assert!(
        !out.translation
            .chars()
            .any(|c| c == '\u{0}' || c == '\u{7}')
    );
}

#[test]
fn long_text_without_full_stop_is_split_not_truncated() {
    let e = engine();
    let words = [
        "the",
        "embassy",
        "staff",
        "will",
        "review",
        "every",
        "application",
        "and",
    ];
    let text: String = (0..1200)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let out = e.translate(&req(&text, "en", "pt")).expect("translate");
    assert_eq!(out.sentences, 1);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // 1200 words in: the translation must cover them, not stop after the first 128 tokens.
    let n = out.translation.split_whitespace().count();
    assert!(n > 800, "only {n} words out of 1200");

    let mega = "a".repeat(1_000_001);
    let err = e.translate(&req(&mega, "en", "pt")).expect_err("too long");
    assert_eq!(err.code(), "too_large");
}

#[test]
fn pivots_through_english_when_both_halves_exist() {
    // A stand-in "es→en" model: the real pt→en files relabelled (model.toml only), so that
    // es→pt has no direct model but es→en + en→pt exist.
    let _ = engine(); // initialises ONNX Runtime from the store
    let store = valise_models::Store::discover().expect("dev store");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dirs = Vec::new();
    for (id, relabel) in [
        ("bergamot-enpt-tiny-int8", None),
        ("bergamot-pten-tiny-int8", Some(("pt", "es"))),
    ] {
        let src = store.slot().join(id);
        let dst = tmp.path().join(id);
        std::fs::create_dir_all(&dst).expect("mkdir");
        for f in std::fs::read_dir(&src).expect("model dir").flatten() {
            std::fs::copy(f.path(), dst.join(f.file_name())).expect("copy");
        }
        if let Some((from, to)) = relabel {
            let p = dst.join("model.toml");
            let t = std::fs::read_to_string(&p).expect("model.toml");
            let t = t.replace(
                &format!("src_lang = \"{from}\""),
                &format!("src_lang = \"{to}\""),
            );
            std::fs::write(&p, t).expect("write");
        }
        dirs.push((id.to_owned(), dst));
    }
    let e = Engine::from_dirs(&dirs, &Config::default()).expect("engine");
    let langs = e.languages();
    let pivot: Vec<_> = langs.pairs.iter().filter(|p| p.pivot).collect();
    assert_eq!(pivot.len(), 1, "{langs:?}");
    assert_eq!(
        (pivot[0].source.as_str(), pivot[0].target.as_str()),
        ("es", "pt")
    );
    let out = e
        .translate(&req("A embaixada está fechada.", "es", "pt"))
        .expect("pivot");
    assert!(out.pivot);
    assert!(out.errors.is_empty());
    assert!(!out.translation.is_empty());
    // No route to es at all: a clear error.
    let err = e.route("pt", "es").expect_err("no model into es");
    assert_eq!(err.code(), "unsupported_pair");
}

/// Concurrent requests share batches (the batcher), without changing any translation, and a
/// one-sentence request is not held up until a long document is done.
#[test]
fn concurrent_requests_share_batches_fairly_and_exactly() {
    let e = engine();
    let set = fixtures("enpt");
    let singles: Vec<String> = set.iter().take(8).map(|f| f.source.clone()).collect();
    let alone: Vec<String> = singles
        .iter()
        .map(|s| e.translate(&req(s, "en", "pt")).expect("alone").translation)
        .collect();
    // A document of many lines, sent first.
    let doc: String = (0..12)
        .flat_map(|_| set.iter().map(|f| f.source.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    let doc_lines = doc.lines().count();
    let started = Instant::now();
    let d = {
        let e = e.clone();
        let doc = doc.clone();
        std::thread::spawn(move || {
            let r = e.translate(&req(&doc, "en", "pt")).expect("document");
            (r, started.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let threads: Vec<_> = singles
        .iter()
        .cloned()
        .map(|s| {
            let e = e.clone();
            std::thread::spawn(move || {
                let r = e.translate(&req(&s, "en", "pt")).expect("single");
                (r.translation, started.elapsed())
            })
        })
        .collect();
    let got: Vec<(String, std::time::Duration)> = threads
        .into_iter()
        .map(|t| t.join().expect("join"))
        .collect();
    let (doc_out, doc_time) = d.join().expect("join");
    for ((out, _), want) in got.iter().zip(&alone) {
        assert_eq!(out, want, "a sentence batched with others changed");
    }
    assert_eq!(doc_out.translation.lines().count(), doc_lines);
    assert!(doc_out.errors.is_empty());
    let slowest_single = got.iter().map(|(_, t)| *t).max().unwrap_or_default();
    eprintln!(
        "document ({doc_lines} lines) {doc_time:?}; slowest single sentence {slowest_single:?}"
    );
    assert!(
        slowest_single < doc_time,
        "single sentences waited for the whole document ({slowest_single:?} vs {doc_time:?})"
    );
}
