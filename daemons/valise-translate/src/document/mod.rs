//! Documents: `.txt`, `.md`, `.html`, `.docx` and `.odt` come back in the same format, with
//! their structure, styles and non-text parts untouched and only the text translated.
//!
//! Every format module does the same three steps:
//!
//! ```text
//!  bytes ──parse──▶ [Block { runs }]  ──RunTranslator──▶ [new runs]  ──rewrite──▶ bytes
//!                    one per paragraph,                   same count
//!                    heading, cell, list item             per block
//! ```
//!
//! A [`Block`] is a paragraph-like unit; its `runs` are the pieces of text between two
//! formatting changes (a bold word, a link, a span). The translator sees a block's runs
//! joined as ONE text, so a sentence split across formatting runs is translated as one
//! sentence; it then hands the translation back run by run (each sentence goes to the run
//! that held most of it: see [`crate::engine`]), and the format module writes each run's new
//! text where the old one was. Everything that is not a run (markup, styles, images,
//! embedded objects, code) is copied byte for byte.
//!
//! Untrusted input: every format is parsed with explicit limits ([`DocLimits`]); zip
//! containers are checked for bombs (declared and actual decompressed size, entry count) and
//! for path traversal in entry names; XML is read with quick-xml (no DTD, no external
//! entities: an entity it does not know is an error, never a fetch).

pub mod distribute;
pub mod docx;
pub mod html;
pub mod markdown;
pub mod odt;
pub mod text;
mod xml;
mod zipio;

use valise_protocol::translate::{DocumentFormat, DocumentReport, Skipped};

use crate::TranslateError;

/// A paragraph-like unit of a document: the texts of its formatting runs, in order. Runs
/// hold plain text (entities decoded, no markup).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    pub runs: Vec<String>,
}

impl Block {
    pub fn new(runs: Vec<String>) -> Self {
        Self { runs }
    }

    /// The block's text as the translator sees it.
    pub fn text(&self) -> String {
        self.runs.concat()
    }

    /// True when there is nothing to translate (no letter or digit).
    pub fn is_blank(&self) -> bool {
        !self
            .runs
            .iter()
            .any(|r| r.chars().any(char::is_alphanumeric))
    }
}

/// Translates blocks of runs. The real one is the engine's ([`crate::engine::Engine`]); the
/// format modules' tests use simple ones.
pub trait RunTranslator {
    /// One output per block, each with exactly as many runs as its input, in order.
    fn translate_blocks(&mut self, blocks: &[Block]) -> Result<Vec<Vec<String>>, TranslateError>;
}

/// What a document may cost before any work starts or while it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocLimits {
    /// Size of the uploaded file.
    pub max_bytes: u64,
    /// Decompressed size of one zip entry (what a zip bomb would inflate).
    pub max_entry_bytes: u64,
    /// Decompressed size of all entries together.
    pub max_total_bytes: u64,
    /// Entries in a zip container.
    pub max_entries: usize,
    /// Characters to translate in the whole document.
    pub max_chars: usize,
    /// XML nesting depth.
    pub max_depth: usize,
}

impl Default for DocLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_entry_bytes: 64 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_entries: 10_000,
            max_chars: 2_000_000,
            max_depth: 256,
        }
    }
}

/// Translates `input` (a document in `format`) into `target` with `tr`; returns the
/// translated document in the same format. `report` gains what was skipped and why (the
/// engine fills in the languages, sentence counts and per-sentence errors).
pub fn translate(
    format: DocumentFormat,
    input: &[u8],
    limits: &DocLimits,
    target: &str,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    if input.len() as u64 > limits.max_bytes {
        return Err(TranslateError::TooLarge(format!(
            "the document is {} bytes; at most {} are accepted",
            input.len(),
            limits.max_bytes
        )));
    }
    report.format = format;
    let tr = &mut Checked(tr);
    match format {
        DocumentFormat::Txt => text::translate(input, limits, tr, report),
        DocumentFormat::Md => markdown::translate(input, limits, tr, report),
        // HTML declares its language; the other formats leave that to their styles.
        DocumentFormat::Html => html::translate(input, limits, Some(target), tr, report),
        DocumentFormat::Docx => docx::translate(input, limits, tr, report),
        DocumentFormat::Odt => odt::translate(input, limits, tr, report),
    }
}

/// The translator's contract (one output per block, as many runs as given) is checked rather
/// than trusted, once for every format: a mismatch would put text in the wrong places.
struct Checked<'a>(&'a mut dyn RunTranslator);

impl RunTranslator for Checked<'_> {
    fn translate_blocks(&mut self, blocks: &[Block]) -> Result<Vec<Vec<String>>, TranslateError> {
        let out = self.0.translate_blocks(blocks)?;
        let same = out.len() == blocks.len()
            && blocks
                .iter()
                .zip(&out)
                .all(|(b, t)| b.runs.len() == t.len());
        if same {
            Ok(out)
        } else {
            Err(TranslateError::Internal(
                "the translator returned a different number of blocks or runs".into(),
            ))
        }
    }
}

/// Splits off a UTF-8 byte-order mark and checks that the rest is UTF-8; the error names the
/// byte offset of the first invalid sequence (counting the BOM).
pub(crate) fn utf8_body(input: &[u8]) -> Result<(&[u8], &str), String> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (bom, body) = match input.strip_prefix(BOM) {
        Some(rest) => (BOM, rest),
        None => (&input[..0], input),
    };
    match std::str::from_utf8(body) {
        Ok(text) => Ok((bom, text)),
        Err(e) => Err(format!(
            "the document is not valid UTF-8 (invalid bytes at offset {}); only UTF-8 is accepted",
            bom.len() + e.valid_up_to()
        )),
    }
}

/// Adds `count` to the report's line for `what` (kept once per kind, not once per item).
pub fn skip(report: &mut DocumentReport, what: &str, count: usize, why: &str) {
    if count == 0 {
        return;
    }
    if let Some(s) = report.skipped.iter_mut().find(|s| s.what == what) {
        s.count += count;
    } else {
        report.skipped.push(Skipped {
            what: what.to_owned(),
            count,
            why: why.to_owned(),
        });
    }
}

/// Checks the document's text against `limits.max_chars` before anything is translated.
pub fn check_chars(blocks: &[Block], limits: &DocLimits) -> Result<(), TranslateError> {
    let chars: usize = blocks
        .iter()
        .flat_map(|b| &b.runs)
        .map(|r| r.chars().count())
        .sum();
    if chars > limits.max_chars {
        return Err(TranslateError::TooLong {
            chars,
            max: limits.max_chars,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_shape_from_the_translator_is_an_error() {
        struct Short;
        impl RunTranslator for Short {
            fn translate_blocks(
                &mut self,
                _: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                Ok(vec![])
            }
        }
        for (format, doc) in [
            (DocumentFormat::Txt, "Hello.".as_bytes()),
            (DocumentFormat::Html, b"<p>Hello.</p>"),
            (DocumentFormat::Md, b"# Hello"),
        ] {
            let mut report = DocumentReport::default();
            let e = translate(
                format,
                doc,
                &DocLimits::default(),
                "pt",
                &mut Short,
                &mut report,
            );
            assert!(
                matches!(e, Err(TranslateError::Internal(_))),
                "{format:?}: {e:?}"
            );
        }
    }
}

/// Test translators for the format modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Upper-cases every run (run count and boundaries kept): shows which text was
    /// translated and which was copied.
    #[derive(Debug, Default)]
    pub struct Upper {
        pub seen: Vec<Block>,
    }

    impl RunTranslator for Upper {
        fn translate_blocks(
            &mut self,
            blocks: &[Block],
        ) -> Result<Vec<Vec<String>>, TranslateError> {
            self.seen.extend_from_slice(blocks);
            Ok(blocks
                .iter()
                .map(|b| b.runs.iter().map(|r| r.to_uppercase()).collect())
                .collect())
        }
    }

    /// Returns every run unchanged: the output must then be the input, byte for byte.
    #[derive(Debug, Default)]
    pub struct Same;

    impl RunTranslator for Same {
        fn translate_blocks(
            &mut self,
            blocks: &[Block],
        ) -> Result<Vec<Vec<String>>, TranslateError> {
            Ok(blocks.iter().map(|b| b.runs.clone()).collect())
        }
    }

    /// Puts each block's whole text, upper-cased, into its first run and empties the others:
    /// what the engine does when one sentence spans every run.
    #[derive(Debug, Default)]
    pub struct Merge;

    impl RunTranslator for Merge {
        fn translate_blocks(
            &mut self,
            blocks: &[Block],
        ) -> Result<Vec<Vec<String>>, TranslateError> {
            Ok(blocks
                .iter()
                .map(|b| {
                    let mut out = vec![String::new(); b.runs.len()];
                    if let Some(first) = out.first_mut() {
                        *first = b.text().to_uppercase();
                    }
                    out
                })
                .collect())
        }
    }
}
