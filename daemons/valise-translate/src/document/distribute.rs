//! A block's translation handed back run by run.
//!
//! The engine translates a block's runs joined as one text (a sentence split by a bold word is
//! one sentence for the model). Each piece of the result (a sentence, or a gap between
//! sentences) then goes to ONE run: the run that held most of its source bytes, never an
//! earlier run than the previous piece's (so the text keeps its order). Runs that receive
//! nothing come back empty: the format keeps their markup, so styles and structure survive.
//! A sentence whose source spanned several runs takes the formatting of its main run; the
//! report counts those (`merged_runs`).

use std::ops::Range;

/// One piece of a translated block: its byte range in the block's source text and its
/// output text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<'a> {
    pub src: Range<usize>,
    pub out: &'a str,
    pub sentence: bool,
}

/// The runs' new texts (as many as `run_lens`, the byte lengths of the source runs) and how
/// many sentences spanned more than one run.
pub fn distribute(run_lens: &[usize], pieces: &[Placed<'_>]) -> (Vec<String>, usize) {
    let mut starts = Vec::with_capacity(run_lens.len());
    let mut at = 0usize;
    for &l in run_lens {
        starts.push(at);
        at += l;
    }
    let mut out = vec![String::new(); run_lens.len()];
    if out.is_empty() {
        return (out, 0);
    }
    let mut merged = 0usize;
    let mut prev = 0usize;
    for p in pieces {
        let mut best: Option<(usize, usize)> = None; // (overlap, run)
        let mut touched = 0usize;
        for (i, (&s, &l)) in starts.iter().zip(run_lens).enumerate() {
            let overlap = p.src.end.min(s + l).saturating_sub(p.src.start.max(s));
            if overlap > 0 {
                touched += 1;
                if best.is_none_or(|(o, _)| overlap > o) {
                    best = Some((overlap, i));
                }
            }
        }
        // An empty piece (or one outside every run) stays where the text is.
        let owner = best.map_or(prev, |(_, i)| i).max(prev);
        if p.sentence && touched > 1 {
            merged += 1;
        }
        out[owner].push_str(p.out);
        prev = owner;
    }
    (out, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed<'a>(v: &[(Range<usize>, &'a str, bool)]) -> Vec<Placed<'a>> {
        v.iter()
            .map(|(r, o, s)| Placed {
                src: r.clone(),
                out: o,
                sentence: *s,
            })
            .collect()
    }

    #[test]
    fn a_sentence_spanning_runs_goes_to_the_run_holding_most_of_it() {
        // "The " + "embassy" + " is closed on Monday." : one sentence.
        let (runs, merged) = distribute(
            &[4, 7, 21],
            &placed(&[(0..32, "A embaixada fecha na segunda-feira.", true)]),
        );
        assert_eq!(runs, ["", "", "A embaixada fecha na segunda-feira."]);
        assert_eq!(merged, 1);
    }

    #[test]
    fn sentences_in_their_own_runs_keep_their_runs() {
        // "Hello." (bold) + " Good bye." (plain)
        let (runs, merged) = distribute(
            &[6, 10],
            &placed(&[
                (0..6, "Olá.", true),
                (6..7, " ", false),
                (7..16, "Adeus.", true),
            ]),
        );
        assert_eq!(runs, ["Olá.", " Adeus."]);
        assert_eq!(merged, 0);
    }

    #[test]
    fn the_order_of_the_text_is_kept() {
        // Piece 2 overlaps run 0 most, but piece 1 already went to run 1: it follows.
        let (runs, _) = distribute(&[3, 10], &placed(&[(0..5, "a", true), (5..6, "b", true)]));
        assert_eq!(runs.concat(), "ab");
        let (runs, _) = distribute(&[2, 2], &placed(&[(1..4, "x", true), (0..1, "y", true)]));
        assert_eq!(runs, ["", "xy"]);
    }

    #[test]
    fn empty_pieces_and_empty_runs() {
        let (runs, merged) = distribute(
            &[0, 5, 0],
            &placed(&[(0..5, "Bom.", true), (5..5, "", false)]),
        );
        assert_eq!(runs, ["", "Bom.", ""]);
        assert_eq!(merged, 0);
        assert_eq!(distribute(&[], &placed(&[(0..3, "x", true)])).0.len(), 0);
    }
}
