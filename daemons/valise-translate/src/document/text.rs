//! `.txt` documents: UTF-8 text (a BOM is kept), one block per line, line endings (`\n`,
//! `\r\n`) kept byte for byte. A line is one run: its sentences are cut by the engine.

use valise_protocol::translate::DocumentReport;

use super::{Block, DocLimits, RunTranslator, check_chars, utf8_body};
use crate::TranslateError;

pub fn translate(
    input: &[u8],
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    let (bom, body) = utf8_body(input).map_err(TranslateError::BadDocument)?;
    // Lines with their terminators split off: (line, terminator).
    let lines: Vec<(&str, &str)> = body
        .split_inclusive('\n')
        .map(|l| {
            let content = l.trim_end_matches(['\n', '\r']);
            (content, &l[content.len()..])
        })
        .collect();
    let mut sent: Vec<usize> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for (i, (line, _)) in lines.iter().enumerate() {
        let b = Block::new(vec![(*line).to_owned()]);
        if !b.is_blank() {
            sent.push(i);
            blocks.push(b);
        }
    }
    check_chars(&blocks, limits)?;
    report.blocks = blocks.len();
    let translated = if blocks.is_empty() {
        Vec::new()
    } else {
        tr.translate_blocks(&blocks)?
    };
    let mut new_lines: Vec<String> = lines.iter().map(|(l, _)| (*l).to_owned()).collect();
    for (i, runs) in sent.into_iter().zip(translated) {
        new_lines[i] = runs.concat();
    }
    let mut out = String::with_capacity(input.len() + input.len() / 4);
    out.push_str(std::str::from_utf8(bom).unwrap_or_default());
    for ((_, end), line) in lines.iter().zip(new_lines) {
        out.push_str(&line);
        out.push_str(end);
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::document::testing::Upper;

    fn run(input: &str) -> (String, Vec<Block>) {
        let mut tr = Upper::default();
        let mut report = DocumentReport::default();
        let out = translate(
            input.as_bytes(),
            &DocLimits::default(),
            &mut tr,
            &mut report,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), tr.seen)
    }

    #[test]
    fn lines_and_their_endings_are_kept() {
        let (out, seen) = run("\u{feff}One line.\r\n\r\n  Two.\nthree");
        assert_eq!(out, "\u{feff}ONE LINE.\r\n\r\n  TWO.\nTHREE");
        assert_eq!(seen.len(), 3, "blank lines are not sent");
    }

    #[test]
    fn invalid_utf8_and_limits() {
        let mut tr = Upper::default();
        let mut report = DocumentReport::default();
        let e = translate(b"ok\xff", &DocLimits::default(), &mut tr, &mut report).unwrap_err();
        assert_eq!(e.code(), "bad_document");
        assert!(e.to_string().contains("offset 2"), "{e}");
        let limits = DocLimits {
            max_chars: 3,
            ..DocLimits::default()
        };
        let e = translate(b"four", &limits, &mut tr, &mut report).unwrap_err();
        assert_eq!(e.code(), "too_large");
    }
}
