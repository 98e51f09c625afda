//! Word error rate: the normalization both sides of a comparison go through, and word-level
//! Levenshtein distance. The benchmark (`tests/bench-transcribe`) scores whole sets with it;
//! valise-update scores a bundle's transcription acceptance cases with the same code, so a
//! bound written from a benchmark figure means the same thing on the box.

use serde::{Deserialize, Serialize};

/// A set's language: it picks the language forced on both engines and the number words used
/// by [`normalize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }
}

/// Normalizes `text` into the words WER is counted on.
///
/// * lowercase; diacritics removed (NFKD, combining marks dropped), as openai-whisper's
///   `BasicTextNormalizer(remove_diacritics=True)` does for non-English WER — the Asterisk
///   references themselves often drop accents (`desirez`, `boite`, `etes`), so keeping them
///   would count the reference's spelling against the engine;
/// * apostrophes (`'`, `’`, `‘`, `` ` ``) and hyphens/dashes become spaces, so `l'heure` is
///   `l heure` and `vingt-deux` is `vingt deux`;
/// * a `,` or `.` between two digits is dropped (`1,000` is `1000`); any other character that
///   is not a letter or a digit (punctuation, symbols) becomes a space; spaces collapse;
/// * numbers: a token made only of ASCII digits whose value is 0..=9999 is spelled out in
///   words ([`number_words`]), on BOTH sides, so whisper writing `10` where the reference says
///   `dix` (or the other way round) is not an error. Larger numbers and tokens that mix digits
///   and letters (`1er`, `2nd`) are left as they are;
/// * French only: `une` counts as `un` (whisper writes `1 minute`, the prompt says
///   `une minute`; spelled out, the digit gives `un`). Applied to both sides, this only merges
///   the two genders of the same word.
pub fn normalize(text: &str, lang: Lang) -> Vec<String> {
    let lower = strip_diacritics(&text.to_lowercase());
    let chars: Vec<char> = lower.chars().collect();
    let mut cleaned = String::with_capacity(lower.len());
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            cleaned.push(c);
        } else if (c == ',' || c == '.')
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        {
            // a thousands separator: drop it
        } else {
            cleaned.push(' ');
        }
    }
    let mut words = Vec::new();
    for tok in cleaned.split_whitespace() {
        if tok.bytes().all(|b| b.is_ascii_digit())
            && let Some(n) = tok.parse::<u32>().ok().filter(|n| *n <= 9999)
        {
            words.extend(
                strip_diacritics(&number_words(n, lang))
                    .split(' ')
                    .map(str::to_string),
            );
            continue;
        }
        words.push(tok.to_string());
    }
    if lang == Lang::Fr {
        for w in &mut words {
            if w == "une" {
                *w = "un".to_string();
            }
        }
    }
    words
}

/// `é` -> `e`, `ç` -> `c`, ... (NFKD, combining marks dropped).
fn strip_diacritics(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    s.nfkd().filter(|c| !is_combining_mark(*c)).collect()
}

const EN_UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const EN_TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const FR_UNITS: [&str; 17] = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze",
    "douze", "treize", "quatorze", "quinze", "seize",
];
const FR_TENS: [&str; 7] = [
    "",
    "dix",
    "vingt",
    "trente",
    "quarante",
    "cinquante",
    "soixante",
];

/// `n` (0..=9999) in words, separated by single spaces, as the normalized text has them:
/// English `one thousand nine hundred ninety nine` (no "and"), French
/// `mille neuf cent quatre vingt dix neuf` (1990 spelling rules for `et`, plural `vingts` and
/// `cents` when nothing follows). Values above 9999 are returned as digits.
pub fn number_words(n: u32, lang: Lang) -> String {
    if n > 9999 {
        return n.to_string();
    }
    match lang {
        Lang::En => en_words(n),
        Lang::Fr => fr_words(n),
    }
}

fn en_words(n: u32) -> String {
    let mut parts: Vec<String> = Vec::new();
    let (th, rest) = (n / 1000, n % 1000);
    let (h, below) = (rest / 100, rest % 100);
    if th > 0 {
        parts.push(format!("{} thousand", EN_UNITS[th as usize]));
    }
    if h > 0 {
        parts.push(format!("{} hundred", EN_UNITS[h as usize]));
    }
    if below > 0 || parts.is_empty() {
        if below < 20 {
            parts.push(EN_UNITS[below as usize].to_string());
        } else if below % 10 == 0 {
            parts.push(EN_TENS[(below / 10) as usize].to_string());
        } else {
            parts.push(format!(
                "{} {}",
                EN_TENS[(below / 10) as usize],
                EN_UNITS[(below % 10) as usize]
            ));
        }
    }
    parts.join(" ")
}

/// 0..=99 in French; `last` says nothing follows (plural `quatre vingts`).
fn fr_below_100(n: u32, last: bool) -> String {
    let n = n as usize;
    if n <= 16 {
        return FR_UNITS[n].to_string();
    }
    if n < 20 {
        return format!("dix {}", FR_UNITS[n - 10]);
    }
    let (t, u) = (n / 10, n % 10);
    match t {
        2..=6 => match u {
            0 => FR_TENS[t].to_string(),
            1 => format!("{} et un", FR_TENS[t]),
            _ => format!("{} {}", FR_TENS[t], FR_UNITS[u]),
        },
        7 => match u {
            1 => "soixante et onze".to_string(),
            _ => format!("soixante {}", fr_below_100(10 + u as u32, false)),
        },
        _ => {
            // 80..=99
            let rest = n - 80;
            if rest == 0 {
                if last {
                    "quatre vingts".to_string()
                } else {
                    "quatre vingt".to_string()
                }
            } else {
                format!("quatre vingt {}", fr_below_100(rest as u32, false))
            }
        }
    }
}

fn fr_words(n: u32) -> String {
    if n == 0 {
        return FR_UNITS[0].to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let (th, rest) = (n / 1000, n % 1000);
    let (h, below) = (rest / 100, rest % 100);
    match th {
        0 => {}
        1 => parts.push("mille".into()),
        _ => parts.push(format!("{} mille", fr_below_100(th, false))),
    }
    match h {
        0 => {}
        1 => parts.push("cent".into()),
        _ if below == 0 => parts.push(format!("{} cents", FR_UNITS[h as usize])),
        _ => parts.push(format!("{} cent", FR_UNITS[h as usize])),
    }
    if below > 0 {
        parts.push(fr_below_100(below, true));
    }
    parts.join(" ")
}

/// Word-level Levenshtein distance: substitutions + deletions + insertions turning
/// `reference` into `hypothesis`.
pub fn edit_distance<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0usize; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r.as_ref() != h.as_ref());
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

/// Edits and reference words, summed over a set: WER = edits / reference words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub edits: usize,
    pub ref_words: usize,
}

impl Score {
    /// Scores one hypothesis against its reference, both normalized with [`normalize`].
    pub fn of(reference: &str, hypothesis: &str, lang: Lang) -> Self {
        let r = normalize(reference, lang);
        let h = normalize(hypothesis, lang);
        Self {
            edits: edit_distance(&r, &h),
            ref_words: r.len(),
        }
    }

    pub fn add(&mut self, other: Score) {
        self.edits += other.edits;
        self.ref_words += other.ref_words;
    }

    /// Word error rate in percent (0 for an empty reference).
    pub fn wer_percent(&self) -> f64 {
        if self.ref_words == 0 {
            0.0
        } else {
            100.0 * self.edits as f64 / self.ref_words as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, lang: Lang) -> String {
        normalize(s, lang).join(" ")
    }

    #[test]
    fn normalizes_case_punctuation_apostrophes_and_hyphens() {
        assert_eq!(
            n("Au timbre sonore, l'heure sera exactement…", Lang::Fr),
            "au timbre sonore l heure sera exactement"
        );
        assert_eq!(
            n("Échec à l’ouverture de session. Veuillez-vous", Lang::Fr),
            "echec a l ouverture de session veuillez vous"
        );
        assert_eq!(
            n("  And so,  my fellow Americans — ask NOT!", Lang::En),
            "and so my fellow americans ask not"
        );
        assert_eq!(
            n("That's the \"pound\" key (#).", Lang::En),
            "that s the pound key"
        );
        // diacritics dropped (as whisper's BasicTextNormalizer), typos kept
        assert_eq!(n("présentemnet", Lang::Fr), "presentemnet");
        assert_eq!(n("Vous êtes", Lang::Fr), n("vous etes", Lang::Fr));
        assert_eq!(n("zéro", Lang::Fr), n("0", Lang::Fr));
    }

    #[test]
    fn digits_and_number_words_compare_equal() {
        assert_eq!(n("appuyez sur 1", Lang::Fr), n("appuyez sur un", Lang::Fr));
        assert_eq!(n("10 secondes", Lang::Fr), n("dix secondes", Lang::Fr));
        assert_eq!(n("1 minute", Lang::Fr), n("une minute", Lang::Fr));
        assert_eq!(n("press 2", Lang::En), n("press two", Lang::En));
        assert_eq!(
            n("1,000 miles", Lang::En),
            n("one thousand miles", Lang::En)
        );
        assert_eq!(n("1er", Lang::Fr), "1er");
        assert_eq!(n("12345", Lang::En), "12345");
    }

    #[test]
    fn english_numbers() {
        let cases = [
            (0, "zero"),
            (7, "seven"),
            (13, "thirteen"),
            (20, "twenty"),
            (42, "forty two"),
            (100, "one hundred"),
            (105, "one hundred five"),
            (999, "nine hundred ninety nine"),
            (1000, "one thousand"),
            (1999, "one thousand nine hundred ninety nine"),
            (9999, "nine thousand nine hundred ninety nine"),
        ];
        for (v, w) in cases {
            assert_eq!(number_words(v, Lang::En), w, "{v}");
        }
    }

    #[test]
    fn french_numbers() {
        let cases = [
            (0, "zéro"),
            (1, "un"),
            (16, "seize"),
            (17, "dix sept"),
            (21, "vingt et un"),
            (22, "vingt deux"),
            (61, "soixante et un"),
            (70, "soixante dix"),
            (71, "soixante et onze"),
            (77, "soixante dix sept"),
            (80, "quatre vingts"),
            (81, "quatre vingt un"),
            (90, "quatre vingt dix"),
            (99, "quatre vingt dix neuf"),
            (100, "cent"),
            (101, "cent un"),
            (200, "deux cents"),
            (280, "deux cent quatre vingts"),
            (1000, "mille"),
            (1980, "mille neuf cent quatre vingts"),
            (2024, "deux mille vingt quatre"),
            (80_000, "80000"),
        ];
        for (v, w) in cases {
            assert_eq!(number_words(v, Lang::Fr), w, "{v}");
        }
        // written with hyphens in a reference, the same words once normalized
        assert_eq!(n("quatre-vingt-dix-neuf", Lang::Fr), n("99", Lang::Fr));
        assert_eq!(n("vingt-et-un", Lang::Fr), n("21", Lang::Fr));
    }

    #[test]
    fn edit_distance_counts_substitutions_insertions_deletions() {
        let w = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(edit_distance(&w("a b c"), &w("a b c")), 0);
        assert_eq!(edit_distance(&w("a b c"), &w("a x c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a b c d")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("")), 3);
        assert_eq!(edit_distance(&w(""), &w("x y")), 2);
        assert_eq!(edit_distance(&w("the cat sat"), &w("cat sat on")), 2);
    }

    #[test]
    fn wer_sums_over_a_set() {
        let mut total = Score::default();
        total.add(Score::of("Ask not what", "ask not what", Lang::En));
        total.add(Score::of("one two three four", "1 2 free", Lang::En));
        assert_eq!(
            total,
            Score {
                edits: 2,
                ref_words: 7
            }
        );
        assert!((total.wer_percent() - 200.0 / 7.0).abs() < 1e-9);
        assert_eq!(Score::default().wer_percent(), 0.0);
    }
}
