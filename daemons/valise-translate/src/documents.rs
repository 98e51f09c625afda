//! Documents and transcripts through the engine.
//!
//! [`Engine::translate_document`] hands the format modules ([`crate::document`]) a
//! [`RunTranslator`] that joins each block's runs into one text, translates every block of
//! the document in one batched call, and gives each sentence back to the run that held most
//! of it ([`distribute`]). The report says what was translated, what failed (the source
//! text stays in place) and what was left alone.
//!
//! [`Engine::translate_transcript`] translates a transcript segment by segment: whisper's
//! segments are the subtitles' cues, so each keeps its own text and its exact timings
//! (a sentence is never moved to a neighbouring cue).

use valise_protocol::transcript::{Doubt, Transcript};
use valise_protocol::translate::{DocumentFormat, DocumentReport, SentenceError};

use crate::document::distribute::{Placed, distribute};
use crate::document::{self, Block, RunTranslator};
use crate::engine::{Deadline, Route};
use crate::segment::strip_controls;
use crate::{Engine, TranslateError};

/// How much of a document the language detector reads.
const DETECT_SAMPLE_CHARS: usize = 20_000;

struct DocTranslator<'a> {
    engine: &'a Engine,
    source: String,
    target: String,
    deadline: Deadline,
    route: Option<Route>,
    report: DocumentReport,
}

impl RunTranslator for DocTranslator<'_> {
    fn translate_blocks(&mut self, blocks: &[Block]) -> Result<Vec<Vec<String>>, TranslateError> {
        // Control characters go before anything is measured, run by run.
        let runs: Vec<Vec<String>> = blocks
            .iter()
            .map(|b| b.runs.iter().map(|r| strip_controls(r)).collect())
            .collect();
        let texts: Vec<String> = runs.iter().map(|r| r.concat()).collect();
        let route = match &self.route {
            Some(r) => r.clone(),
            None => {
                let mut sample = String::new();
                let mut chars = 0usize;
                for t in &texts {
                    if chars > DETECT_SAMPLE_CHARS {
                        break;
                    }
                    chars += t.chars().count() + 1;
                    sample.push_str(t);
                    sample.push('\n');
                }
                let r = self.engine.resolve(&self.source, &self.target, &sample)?;
                self.route = Some(r.clone());
                r
            }
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let done = self.engine.translate_texts(&route, &refs, self.deadline)?;
        let mut out = Vec::with_capacity(blocks.len());
        let base = self.report.sentences;
        for ((text, runs), t) in texts.iter().zip(&runs).zip(&done) {
            let placed: Vec<Placed<'_>> = t
                .pieces
                .iter()
                .map(|p| Placed {
                    src: p.src.clone(),
                    out: p.output(text),
                    sentence: p.is_sentence,
                })
                .collect();
            let lens: Vec<usize> = runs.iter().map(String::len).collect();
            let (new_runs, merged) = distribute(&lens, &placed);
            self.report.merged_runs += merged;
            self.report.sentences += t.sentences;
            for e in t.errors() {
                self.report.errors_total += 1;
                if self.report.errors.len() < DocumentReport::MAX_LISTED {
                    self.report.errors.push(SentenceError {
                        sentence: base + e.sentence,
                        ..e.clone()
                    });
                }
            }
            out.push(new_runs);
        }
        Ok(out)
    }
}

impl Engine {
    /// Translates a document (blocking: run it off the async runtime). Returns the document
    /// in the same format and the report of what happened to it.
    pub fn translate_document(
        &self,
        format: DocumentFormat,
        input: &[u8],
        source: &str,
        target: &str,
    ) -> Result<(Vec<u8>, DocumentReport), TranslateError> {
        if input.is_empty() {
            return Err(TranslateError::Empty);
        }
        // A bad target or pair is refused before the document is read.
        let target = target.trim().to_ascii_lowercase();
        let source = source.trim().to_ascii_lowercase();
        if source != "auto" && !source.is_empty() {
            self.resolve(&source, &target, "")?;
        } else {
            self.source_candidates(&target)?;
        }
        let limits = &self.config().limits;
        let mut tr = DocTranslator {
            engine: self,
            source: source.clone(),
            target: target.clone(),
            deadline: Deadline::after(limits.max_document_secs),
            route: None,
            report: DocumentReport {
                format,
                source,
                target,
                ..DocumentReport::default()
            },
        };
        let mut report = DocumentReport::default();
        let target = tr.target.clone();
        let out = document::translate(
            format,
            input,
            &limits.document(),
            &target,
            &mut tr,
            &mut report,
        )?;
        // The format module's part (blocks, skipped) joins the translator's.
        let mut full = tr.report;
        if let Some(r) = &tr.route {
            full.source = r.source.clone();
            full.target = r.target.clone();
            full.pivot = r.models.len() > 1;
        }
        full.blocks = report.blocks;
        full.skipped = report.skipped;
        if full.blocks == 0 {
            document::skip(
                &mut full,
                "the whole document",
                1,
                "it holds no text to translate; it comes back as it was",
            );
        }
        Ok((out, full))
    }

    /// Translates every segment of `transcript` (blocking). Timings, ids and confidence
    /// figures stay as they were; `language` becomes the target. A segment that cannot be
    /// translated keeps its text and gets the `untranslated` doubt.
    pub fn translate_transcript(
        &self,
        transcript: &Transcript,
        source: &str,
        target: &str,
    ) -> Result<Transcript, TranslateError> {
        let limits = &self.config().limits;
        let chars: usize = transcript
            .segments
            .iter()
            .map(|s| s.text.chars().count())
            .sum();
        if chars > limits.max_document_chars {
            return Err(TranslateError::TooLong {
                chars,
                max: limits.max_document_chars,
            });
        }
        let texts: Vec<String> = transcript
            .segments
            .iter()
            .map(|s| strip_controls(&s.text))
            .collect();
        let all = texts.concat();
        if all.trim().is_empty() {
            return Err(TranslateError::Empty);
        }
        // A transcript knows its language; `auto` trusts it when a model starts from it.
        let source = match source.trim() {
            "auto" | "" if self.resolve(&transcript.language, target, "").is_ok() => {
                transcript.language.clone()
            }
            s => s.to_owned(),
        };
        let route = self.resolve(&source, target, &all)?;
        let deadline = Deadline::after(limits.max_document_secs);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let done = self.translate_texts(&route, &refs, deadline)?;
        let mut out = transcript.clone();
        out.language = route.target.clone();
        out.language_probability = None;
        for ((seg, text), t) in out.segments.iter_mut().zip(&texts).zip(&done) {
            seg.text = t.pieces.iter().map(|p| p.output(text)).collect();
            if t.pieces.iter().any(|p| p.error.is_some())
                && !seg.doubts.contains(&Doubt::Untranslated)
            {
                seg.doubts.push(Doubt::Untranslated);
            }
        }
        Ok(out)
    }
}
