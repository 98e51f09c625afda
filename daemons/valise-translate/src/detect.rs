//! Offline language identification with `whatlang` (trigram profiles compiled into the
//! binary, pure Rust, no model file), restricted to the languages the installed models read.

use whatlang::{Detector, Lang};

use crate::TranslateError;

/// ISO 639-1 codes (what the catalog and the API use) and whatlang's languages.
const CODES: &[(&str, Lang)] = &[
    ("en", Lang::Eng),
    ("pt", Lang::Por),
    ("es", Lang::Spa),
    ("fr", Lang::Fra),
    ("de", Lang::Deu),
    ("it", Lang::Ita),
    ("nl", Lang::Nld),
    ("ru", Lang::Rus),
    ("uk", Lang::Ukr),
    ("pl", Lang::Pol),
    ("ar", Lang::Ara),
    ("fa", Lang::Pes),
    ("tr", Lang::Tur),
    ("zh", Lang::Cmn),
    ("ja", Lang::Jpn),
    ("ko", Lang::Kor),
    ("hi", Lang::Hin),
    ("cs", Lang::Ces),
    ("el", Lang::Ell),
    ("ro", Lang::Ron),
    ("bg", Lang::Bul),
    ("hu", Lang::Hun),
    ("sv", Lang::Swe),
    ("da", Lang::Dan),
    ("fi", Lang::Fin),
    ("et", Lang::Est),
    ("he", Lang::Heb),
    ("id", Lang::Ind),
    ("vi", Lang::Vie),
];

/// Only this much of a long text is looked at (detection cost is linear).
const SAMPLE_CHARS: usize = 4000;

#[derive(Debug, Clone)]
pub struct LanguageDetector {
    langs: Vec<(&'static str, Lang)>,
    detector: Detector,
}

impl LanguageDetector {
    /// A detector that only answers one of `codes` (unknown codes are ignored).
    pub fn new<'a>(codes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut langs: Vec<(&'static str, Lang)> = Vec::new();
        for code in codes {
            if let Some(&(c, l)) = CODES.iter().find(|(c, _)| *c == code)
                && !langs.iter().any(|(k, _)| *k == c)
            {
                langs.push((c, l));
            }
        }
        let detector = Detector::with_allowlist(langs.iter().map(|&(_, l)| l).collect());
        Self { langs, detector }
    }

    pub fn codes(&self) -> Vec<&'static str> {
        self.langs.iter().map(|&(c, _)| c).collect()
    }

    /// The language of `text` and the detector's confidence (0..1).
    pub fn detect(&self, text: &str) -> Result<(String, f64), TranslateError> {
        let undetected = || TranslateError::Undetected {
            installed: self.codes().join(", "),
        };
        if self.langs.len() == 1 {
            return Ok((self.langs[0].0.to_owned(), 1.0));
        }
        let sample: String = text.chars().take(SAMPLE_CHARS).collect();
        let info = self.detector.detect(&sample).ok_or_else(undetected)?;
        let code = self
            .langs
            .iter()
            .find(|&&(_, l)| l == info.lang())
            .map(|&(c, _)| c)
            .ok_or_else(undetected)?;
        Ok((code.to_owned(), info.confidence()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_english_from_portuguese() {
        let d = LanguageDetector::new(["en", "pt", "xx"]);
        assert_eq!(d.codes(), ["en", "pt"]);
        let (l, _) = d
            .detect("The embassy will be closed on Monday for the holiday.")
            .unwrap();
        assert_eq!(l, "en");
        let (l, c) = d
            .detect("A embaixada estará fechada na segunda-feira por causa do feriado.")
            .unwrap();
        assert_eq!(l, "pt");
        assert!(c > 0.0 && c <= 1.0);
        assert!(d.detect("1234 !!").is_err());
    }
}
