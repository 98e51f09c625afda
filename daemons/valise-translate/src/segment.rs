//! Text → sentences and back.
//!
//! The text is cut into a flat list of [`Piece`]s: `Gap`s (whitespace, line breaks, kept
//! byte for byte) and `Segment`s (text to translate, tagged with the sentence it belongs to).
//! Joining the gaps with the translated segments rebuilds the layout of the input.
//!
//! Rules:
//! - a line break always ends a sentence (paragraphs, lists and one-sentence-per-line input
//!   keep their shape);
//! - inside a line, a sentence ends after `.`, `!`, `?`, `…` (and closing quotes or brackets
//!   after them) followed by whitespace, unless the next word starts with a lower-case letter,
//!   or the `.` ends a known abbreviation (`Mr.`, `Dr.`, `Sr.`, `Sra.`, `e.g.`, `etc.` before
//!   a lower-case word, …) or an initial (`J. Smith`). Numbers (`3.5`, `1.000,00`) have no
//!   space after the point and are never cut;
//! - a sentence longer than the model's limit is split at `;`, `:`, `,` (keeping pieces as
//!   large as allowed), then, if a piece is still too long, hard at token boundaries. The
//!   pieces are translated separately and joined with their original whitespace: never
//!   truncated.

/// One piece of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Kept as is.
    Gap(String),
    /// Translated; `sentence` numbers the input's sentences (pieces of a split sentence share
    /// it).
    Segment { sentence: usize, text: String },
}

/// Abbreviations (lower case, without the final point) after which a point never ends a
/// sentence: titles and Latin/Portuguese forms that are followed by more of the same sentence.
const NEVER_END: &[&str] = &[
    "mr", "mrs", "ms", "dr", "dra", "drs", "prof", "profa", "sr", "sra", "srs", "sras", "srta",
    "st", "jr", "e.g", "i.e", "vs", "cf", "no", "nº", "n.º", "art", "arts", "fig", "figs", "p",
    "pp", "vol", "vols", "ed", "eds", "ex", "exmo", "exma", "av", "gen", "gov", "sen", "dep",
    "min", "v.exa", "v. exa", "ltd", "inc", "co", "corp", "approx", "aprox", "tel", "op", "cit",
    "pág", "págs", "cap",
];

// Other abbreviations (`etc.`, `p.m.`, `Ltda.`) end a sentence only before an upper-case word,
// which is the general rule.

/// Characters removed from the input: C0/C1 controls other than the whitespace ones
/// (`\t \n \v \f \r`, which are layout and kept), and the Unicode BOM. Decision: strip, not
/// reject — copy-pasted and extracted text routinely carries them, and they carry no meaning
/// the models could translate.
pub fn strip_controls(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            let layout = matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
            (layout || !c.is_control()) && c != '\u{feff}'
        })
        .collect()
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']' | '}' | '›')
}

/// Splits a text into gaps and sentences (not yet length-limited).
pub fn split_sentences(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut sentence = 0usize;
    let mut rest = text;
    while !rest.is_empty() {
        // A line (without its terminator), then the line break(s).
        let line_end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let (line, after) = rest.split_at(line_end);
        split_line(line, &mut pieces, &mut sentence);
        let brk_len = after
            .char_indices()
            .find(|&(_, c)| c != '\n' && c != '\r')
            .map_or(after.len(), |(i, _)| i);
        push_gap(&mut pieces, &after[..brk_len]);
        rest = &after[brk_len..];
    }
    pieces
}

fn push_gap(pieces: &mut Vec<Piece>, gap: &str) {
    if gap.is_empty() {
        return;
    }
    if let Some(Piece::Gap(g)) = pieces.last_mut() {
        g.push_str(gap);
    } else {
        pieces.push(Piece::Gap(gap.to_owned()));
    }
}

fn split_line(line: &str, pieces: &mut Vec<Piece>, sentence: &mut usize) {
    let trimmed_start = line.len() - line.trim_start().len();
    push_gap(pieces, &line[..trimmed_start]);
    let body = line.trim();
    if body.is_empty() {
        push_gap(pieces, &line[trimmed_start..]);
        return;
    }
    let mut start = 0usize;
    for end in sentence_ends(body) {
        let s = &body[start..end];
        let t = s.trim_end();
        pieces.push(Piece::Segment {
            sentence: *sentence,
            text: t.to_owned(),
        });
        *sentence += 1;
        // The whitespace between this sentence and the next.
        let next = body[end..]
            .char_indices()
            .find(|&(_, c)| !c.is_whitespace())
            .map_or(body.len(), |(i, _)| end + i);
        push_gap(pieces, &body[start + t.len()..next]);
        start = next;
    }
    if start < body.len() {
        pieces.push(Piece::Segment {
            sentence: *sentence,
            text: body[start..].to_owned(),
        });
        *sentence += 1;
    }
    push_gap(pieces, &line[trimmed_start + body.len()..]);
}

/// Byte offsets (in `body`, trimmed) just after each sentence-final run.
fn sentence_ends(body: &str) -> Vec<usize> {
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut ends = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !matches!(c, '.' | '!' | '?' | '…') {
            i += 1;
            continue;
        }
        let term_start = i;
        let mut j = i;
        while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…') {
            j += 1;
        }
        while j < chars.len() && is_closer(chars[j].1) {
            j += 1;
        }
        // Must be followed by whitespace (not "3.5", "e.g.x", "U.S.A").
        if j >= chars.len() || !chars[j].1.is_whitespace() {
            i = j.max(i + 1);
            continue;
        }
        let end = chars[j].0;
        let mut k = j;
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        if k >= chars.len() {
            break;
        }
        let next = chars[k].1;
        let next_lower = next.is_lowercase();
        // A single point (not "!", "?", "…" or "..."): may be an abbreviation or an initial.
        let only_point = chars[term_start..j]
            .iter()
            .filter(|&&(_, c)| matches!(c, '.' | '!' | '?' | '…'))
            .count()
            == 1
            && chars[term_start].1 == '.';
        let cut = if next_lower {
            false
        } else if only_point && term_start > 0 {
            let word = word_before(body, chars[term_start].0).to_lowercase();
            let single_letter = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
            !(NEVER_END.contains(&word.as_str()) || single_letter)
        } else {
            true
        };
        if cut {
            ends.push(end);
        }
        i = k;
    }
    ends
}

/// The word right before byte `at` (letters, digits, inner points), e.g. `e.g` in "e.g.".
fn word_before(body: &str, at: usize) -> &str {
    let head = &body[..at];
    let start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '.' || c == 'º'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &head[start..]
}

/// Splits `text` into pieces of at most `max_tokens` tokens. `offsets` gives the byte range
/// of each token of a string (the model's tokenizer). Returns (piece, whitespace after it).
pub fn split_long(
    text: &str,
    max_tokens: usize,
    offsets: &dyn Fn(&str) -> Vec<(usize, usize)>,
) -> Vec<(String, String)> {
    let max_tokens = max_tokens.max(1);
    if offsets(text).len() <= max_tokens {
        return vec![(text.to_owned(), String::new())];
    }
    // Clauses: cut after ';' ':' ',' followed by whitespace.
    let mut clauses: Vec<&str> = Vec::new();
    let mut start = 0;
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    for w in bytes.windows(2) {
        let ((i, c), (_, n)) = (w[0], w[1]);
        if matches!(c, ',' | ';' | ':') && n.is_whitespace() {
            clauses.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    clauses.push(&text[start..]);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut cur = String::new();
    let mut cur_tokens = 0usize;
    let flush = |cur: &mut String, out: &mut Vec<(String, String)>| {
        if !cur.trim().is_empty() {
            let body = cur.trim();
            let lead = &cur[..cur.len() - cur.trim_start().len()];
            if let Some(last) = out.last_mut() {
                last.1.push_str(lead);
            }
            out.push((body.to_owned(), cur[lead.len() + body.len()..].to_owned()));
        }
        cur.clear();
    };
    for clause in clauses {
        let n = offsets(clause.trim()).len();
        if n > max_tokens {
            flush(&mut cur, &mut out);
            cur_tokens = 0;
            for piece in hard_split(clause, max_tokens, offsets) {
                let mut p = piece;
                flush(&mut p, &mut out);
            }
            continue;
        }
        if cur_tokens + n > max_tokens {
            flush(&mut cur, &mut out);
            cur_tokens = 0;
        }
        cur.push_str(clause);
        cur_tokens += n;
    }
    flush(&mut cur, &mut out);
    if let Some(last) = out.last_mut() {
        last.1.clear();
    }
    out
}

/// Cuts at token starts, preferring a token that begins after whitespace.
fn hard_split(
    text: &str,
    max_tokens: usize,
    offsets: &dyn Fn(&str) -> Vec<(usize, usize)>,
) -> Vec<String> {
    let offs = offsets(text);
    let mut out = Vec::new();
    let mut from_tok = 0usize;
    let mut from_byte = 0usize;
    while offs.len() - from_tok > max_tokens {
        let limit = from_tok + max_tokens;
        // Latest token start in (from_tok, limit] preceded by whitespace, else `limit`.
        let mut cut = limit;
        for t in (from_tok + 1..=limit).rev() {
            let b = offs[t].0;
            if text[..b].ends_with(char::is_whitespace) {
                cut = t;
                break;
            }
        }
        let b = offs[cut].0;
        out.push(text[from_byte..b].to_owned());
        from_byte = b;
        from_tok = cut;
    }
    out.push(text[from_byte..].to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<String> {
        split_sentences(text)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Segment { text, .. } => Some(text),
                Piece::Gap(_) => None,
            })
            .collect()
    }

    fn rebuild(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Gap(g) => g.as_str(),
                Piece::Segment { text, .. } => text.as_str(),
            })
            .collect()
    }

    #[test]
    fn abbreviations_numbers_and_quotes() {
        assert_eq!(
            sentences("Mr. Smith met Dr. Jones at 3.5 p.m. today. He paid 1.000,00 euros!"),
            [
                "Mr. Smith met Dr. Jones at 3.5 p.m. today.",
                "He paid 1.000,00 euros!"
            ]
        );
        assert_eq!(
            sentences(
                "O Sr. Silva e a Sra. Costa chegaram. Trouxeram frutas, e.g. maçãs, etc. e peras."
            ),
            [
                "O Sr. Silva e a Sra. Costa chegaram.",
                "Trouxeram frutas, e.g. maçãs, etc. e peras."
            ]
        );
        assert_eq!(
            sentences("He said \"Stop.\" Then he left. J. R. Tolkien wrote it."),
            [
                "He said \"Stop.\"",
                "Then he left.",
                "J. R. Tolkien wrote it."
            ]
        );
        assert_eq!(
            sentences("What? Really... Yes."),
            ["What?", "Really...", "Yes."]
        );
    }

    #[test]
    fn layout_is_kept_byte_for_byte() {
        for text in [
            "  One. Two.  \n\n\tThree?\r\nFour  ",
            "\n\n",
            "no full stop at all",
            "A.  B is here.\n",
        ] {
            assert_eq!(rebuild(&split_sentences(text)), text);
        }
        assert_eq!(sentences("Line one\nline two"), ["Line one", "line two"]);
    }

    #[test]
    fn controls_are_stripped_layout_kept() {
        assert_eq!(
            strip_controls("a\u{0}b\u{7}\tc\nd\u{feff}\u{85}"),
            "ab\tc\nd"
        );
    }

    #[test]
    fn long_sentences_split_at_clauses_then_hard() {
        let words = |s: &str| {
            let mut v = Vec::new();
            let mut start = None;
            for (i, c) in s.char_indices() {
                match (c.is_whitespace(), start) {
                    (false, None) => start = Some(i),
                    (true, Some(st)) => {
                        v.push((st, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(st) = start {
                v.push((st, s.len()));
            }
            v
        };
        let text = "a b c, d e f; g h i j k l m n o p q";
        let parts = split_long(text, 4, &words);
        let rebuilt: String = parts.iter().map(|(p, g)| format!("{p}{g}")).collect();
        assert_eq!(rebuilt, text);
        assert!(parts.iter().all(|(p, _)| words(p).len() <= 4), "{parts:?}");
        assert_eq!(parts[0].0, "a b c,");
        assert_eq!(split_long("short one", 4, &words).len(), 1);
    }
}
