//! The accuracy floor, on real speech: Valise's default model on French telephone prompts, and
//! whisper tiny.en on read English. Needs the dev model store and the test data that
//! `scripts/setup` installs; without them the test FAILS (it never skips).

use std::time::Instant;

use valise_bench_transcribe::data::{self, DataSet};
use valise_bench_transcribe::valise::{Options, Runner};
use valise_bench_transcribe::{Lang, Score};

const THREADS: u32 = 2;
/// A regression floor, NOT the product's target. The target (issue 2: at most 12% with whisper
/// base) is not met: these 25 telephone prompts measure 18.7% (diacritics stripped, as
/// openai-whisper's normalizer does), and faster-whisper on the same weights is no better
/// (README.md). Lower this as the figure improves; never raise it to make a test pass.
const MAX_FRENCH_WER: f64 = 21.0;
const MAX_ENGLISH_WER: f64 = 10.0;

fn run(model: &str, sets: &[DataSet]) -> Score {
    let runner = Runner::load(&Options::defaults(model, THREADS))
        .unwrap_or_else(|e| panic!("{e:#}\n(run scripts/setup)"));
    let mut total = Score::default();
    let (mut audio, started) = (0.0, Instant::now());
    for s in sets {
        let mut score = Score::default();
        for item in &s.items {
            let hyp = runner
                .transcribe(&item.path, s.lang)
                .unwrap_or_else(|e| panic!("{e:#}"));
            let sc = Score::of(&item.reference, &hyp, s.lang);
            if sc.edits > 0 {
                println!(
                    "  {}/{}: {} of {}\n    ref: {}\n    hyp: {}",
                    s.name, item.id, sc.edits, sc.ref_words, item.reference, hyp
                );
            }
            score.add(sc);
            audio += data::wav_duration(&item.path).unwrap_or(0.0);
        }
        println!(
            "{model} on {} ({} files): WER {:.2}% ({} edits / {} words)",
            s.name,
            s.items.len(),
            score.wer_percent(),
            score.edits,
            score.ref_words
        );
        total.add(score);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{model}: WER {:.2}% over {:.0} s of audio in {secs:.1} s (RTF {:.3}, {THREADS} threads, load {:.1} s)",
        total.wer_percent(),
        audio,
        secs / audio,
        runner.load_secs
    );
    total
}

fn load(name: &str, limit: Option<usize>) -> DataSet {
    let mut s = data::load(name, false).unwrap_or_else(|e| panic!("{e:#}"));
    s.items = data::subset(std::mem::take(&mut s.items), limit);
    s
}

#[test]
fn french_prompts_with_whisper_base_q8_0() {
    let fr = load("fr", Some(25));
    assert_eq!(fr.lang, Lang::Fr);
    assert_eq!(
        fr.items.len(),
        25,
        "the French prompt set is smaller than expected"
    );
    let score = run("whisper-base-q8_0", &[fr]);
    assert!(
        score.wer_percent() <= MAX_FRENCH_WER,
        "French WER {:.2}% > {MAX_FRENCH_WER}% with whisper-base-q8_0",
        score.wer_percent()
    );
}

#[test]
fn english_read_speech_with_whisper_tiny_en_q8_0() {
    let sets = [load("jfk", None), load("librivox", None)];
    assert_eq!(sets[1].items.len(), 5, "expected the 5 LibriVox clips");
    let score = run("whisper-tiny.en-q8_0", &sets);
    assert!(
        score.wer_percent() <= MAX_ENGLISH_WER,
        "English WER {:.2}% > {MAX_ENGLISH_WER}% with whisper-tiny.en-q8_0",
        score.wer_percent()
    );
}
