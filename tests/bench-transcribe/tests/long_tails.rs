//! Issue 11's levers on long recordings, on the real five-minute English set with tiny.en:
//! when whisper.cpp's decoder stops short of a batch's end, the batch's last seconds go to the
//! front of the next batch instead of a second encoder pass over a whole window
//! (valise-transcribe's `encoder_gate`). Checked against letting whisper.cpp go on by itself:
//! fewer encoder passes, and no words lost (WER no worse). Needs the dev model store and the
//! test data that `scripts/setup` installs (the long set is built from them once and cached
//! under $VALISE_CACHE/bench-long); without them the test FAILS (it never skips).

use valise_bench_transcribe::Score;
use valise_bench_transcribe::data;
use valise_bench_transcribe::valise::{Options, Runner};

#[test]
fn carried_tails_save_encoder_passes_and_lose_no_words() {
    let set = data::long(&data::LONG_SETS[0]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(set.name, "long5");
    let item = &set.items[0];
    let run = |carry: bool| {
        let mut opts = Options::defaults("whisper-tiny.en-q8_0", 2);
        // One batch at a time: only a batch that runs alone can leave its tail to the next
        // (with two side by side, the next one has already started).
        opts.compute_slots = 1;
        opts.decoding.carry_tails = carry;
        let runner = Runner::load(&opts).unwrap_or_else(|e| panic!("{e:#}\n(run scripts/setup)"));
        let (text, work) = runner
            .transcribe_counted(&item.path, set.lang)
            .unwrap_or_else(|e| panic!("{e:#}"));
        (
            Score::of(&item.reference, &text.text(), set.lang).wer_percent(),
            work,
        )
    };
    let (wer, work) = run(true);
    let (wer_alone, alone) = run(false);
    println!(
        "carried: WER {wer:.2} %, {work:?}\nwhisper.cpp alone: WER {wer_alone:.2} %, {alone:?}"
    );

    // Without the gate whisper.cpp encodes some batches twice; with it, their tails are carried.
    assert!(alone.encoder_passes > alone.batches, "{alone:?}");
    assert_eq!(alone.carried_tails, 0);
    assert!(work.carried_tails >= 1, "{work:?}");
    // Passes that ran (a stopped pass is counted where it was stopped, and did not run).
    let encoded = work.encoder_passes - work.carried_tails;
    assert!(encoded < alone.encoder_passes, "{work:?} against {alone:?}");
    // The carried seconds were transcribed in the next batch: nothing lost.
    assert!(
        wer <= wer_alone + 0.5,
        "WER {wer:.2} % against {wer_alone:.2} %"
    );
}

/// Two batches side by side (the default on two threads: one thread each) against one batch
/// at a time on both threads: the transcript comes out whole and in order, as accurate.
#[test]
fn batches_side_by_side_join_the_transcript_in_order() {
    let set = data::long(&data::LONG_SETS[0]).unwrap_or_else(|e| panic!("{e:#}"));
    let item = &set.items[0];
    let run = |slots: u32| {
        let mut opts = Options::defaults("whisper-tiny.en-q8_0", 2);
        opts.compute_slots = slots;
        let runner = Runner::load(&opts).unwrap_or_else(|e| panic!("{e:#}\n(run scripts/setup)"));
        runner
            .transcribe_counted(&item.path, set.lang)
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let (side, work) = run(2);
    let (one, work_one) = run(1);
    let wer = |t: &valise_protocol::Transcript| {
        Score::of(&item.reference, &t.text(), set.lang).wer_percent()
    };
    println!(
        "side by side: WER {:.2} %, {work:?}\none at a time: WER {:.2} %, {work_one:?}",
        wer(&side),
        wer(&one)
    );
    assert!(work.batches > 5, "{work:?}");
    // Numbered in order, in time order, every one inside the recording.
    for (i, s) in side.segments.iter().enumerate() {
        assert_eq!(s.id as usize, i);
        assert!(s.start <= s.end && s.end <= side.duration + 0.5, "{s:?}");
    }
    assert!(
        side.segments.windows(2).all(|w| w[0].start <= w[1].start),
        "segments out of order"
    );
    assert!(
        wer(&side) <= wer(&one) + 0.5,
        "{} against {}",
        wer(&side),
        wer(&one)
    );
    assert_eq!(side.language, "en");
}
