//! The engine: every installed translation model loaded once, the routes between languages
//! (direct, or through English), and the text pipeline
//! (clean → segment → split long → batch → translate → reassemble).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use valise_models::{ModelKind, Store};
use valise_protocol::translate::{
    Detection, LanguagePair, Languages, SentenceError, TranslateRequest, TranslateResponse,
};

use crate::batcher::Batcher;
use crate::detect::LanguageDetector;
use crate::model::{Decoded, MarianModel};
use crate::segment::{Piece, split_long, split_sentences, strip_controls};
use crate::{Config, TranslateError};

/// A resolved request: languages and the models to run, in order (two when pivoting).
#[derive(Debug, Clone)]
pub struct Route {
    pub source: String,
    pub target: String,
    pub models: Vec<Arc<MarianModel>>,
}

/// One text through [`Engine::translate_texts`].
#[derive(Debug, Clone, Default)]
pub struct TranslatedText {
    pub pieces: Vec<TranslatedPiece>,
    /// Sentences in this text.
    pub sentences: usize,
}

/// A gap (kept as is) or a sentence (or a piece of an over-long one) of a text.
#[derive(Debug, Clone, Default)]
pub struct TranslatedPiece {
    /// Byte range in the source text.
    pub src: std::ops::Range<usize>,
    /// Sentence number (across all texts of the call); unused for gaps.
    pub sentence: usize,
    /// A sentence (or a piece of an over-long one) given to the model, not a gap.
    pub is_sentence: bool,
    /// The translation of a sentence piece that succeeded.
    pub translation: Option<String>,
    /// Why a sentence piece failed (its source text stays in place).
    pub error: Option<SentenceError>,
}

impl TranslatedText {
    /// One error per failed sentence (the pieces of a split sentence share theirs).
    pub fn errors(&self) -> impl Iterator<Item = &SentenceError> {
        let mut last = None;
        self.pieces.iter().filter_map(move |p| {
            let e = p.error.as_ref()?;
            (last.replace(e.sentence) != Some(e.sentence)).then_some(e)
        })
    }
}

impl TranslatedPiece {
    /// What goes into the output: the translation, or the source text for gaps and failures.
    pub fn output<'a>(&'a self, source: &'a str) -> &'a str {
        match &self.translation {
            Some(t) => t,
            None => source.get(self.src.clone()).unwrap_or(""),
        }
    }
}

/// When a request must be done by, and the limit to name if it is not.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub secs: u64,
}

impl Deadline {
    pub fn after(secs: u64) -> Self {
        Self {
            at: Instant::now() + std::time::Duration::from_secs(secs),
            secs,
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() > self.at
    }

    pub fn error(&self) -> TranslateError {
        TranslateError::TimedOut(self.secs)
    }
}

/// The language every pivot goes through.
pub const PIVOT: &str = "en";

#[derive(Debug)]
pub struct Engine {
    models: Vec<Arc<MarianModel>>,
    /// One per model, same order: the sentences of every request batched together.
    batchers: Vec<Batcher>,
    detector: LanguageDetector,
    config: Config,
}

fn model_file(store: &Store, id: &str, i: usize) -> Result<PathBuf, TranslateError> {
    let entry = store.get(id)?;
    store.check_sizes(entry)?;
    store
        .file(entry, i)
        .ok_or_else(|| TranslateError::ModelLoad {
            path: store.slot().join(id),
            message: "the manifest lists no file".into(),
        })
}

impl Engine {
    /// Opens the store (configured or discovered), loads ONNX Runtime from it and every
    /// translation model it holds.
    pub fn load(config: &Config) -> Result<Self, TranslateError> {
        let store = match &config.model_store {
            Some(root) => Store::open(root)?,
            None => Store::discover()?,
        };
        let runtime = store
            .default_of(ModelKind::Runtime)
            .ok_or_else(|| TranslateError::ModelLoad {
                path: store.slot().to_path_buf(),
                message: "no ONNX Runtime library in the store".into(),
            })?
            .id
            .clone();
        valise_vad::init_onnxruntime(&model_file(&store, &runtime, 0)?)?;
        let mut dirs = Vec::new();
        for entry in store.catalog().of_kind(ModelKind::Translation) {
            // The model's directory: the parent of its first file (model.toml).
            let first = model_file(&store, &entry.id, 0)?;
            let dir = first.parent().unwrap_or(Path::new(".")).to_path_buf();
            dirs.push((entry.id.clone(), dir));
        }
        Self::from_dirs(&dirs, config)
    }

    /// Loads the given converter output directories (ONNX Runtime already initialised).
    pub fn from_dirs(dirs: &[(String, PathBuf)], config: &Config) -> Result<Self, TranslateError> {
        let mut models = Vec::new();
        for (id, dir) in dirs {
            let m = MarianModel::load(id, dir, config.workers_per_model as usize)?;
            tracing::info!(model = %id, from = %m.meta.src_lang, to = %m.meta.trg_lang, "translation model loaded");
            models.push(Arc::new(m));
        }
        if models.is_empty() {
            return Err(TranslateError::NoModels);
        }
        let sources: Vec<String> = models.iter().map(|m| m.meta.src_lang.clone()).collect();
        let detector = LanguageDetector::new(sources.iter().map(String::as_str));
        let batchers = models
            .iter()
            .map(|m| {
                Batcher::start(
                    m.clone(),
                    config.workers_per_model as usize,
                    config.batch_size as usize,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            models,
            batchers,
            detector,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn model_ids(&self) -> Vec<String> {
        self.models.iter().map(|m| m.id.clone()).collect()
    }

    fn direct(&self, source: &str, target: &str) -> Option<&Arc<MarianModel>> {
        self.models
            .iter()
            .find(|m| m.meta.src_lang == source && m.meta.trg_lang == target)
    }

    /// The models to run, in order: one (direct) or two (through English).
    pub fn route(
        &self,
        source: &str,
        target: &str,
    ) -> Result<Vec<Arc<MarianModel>>, TranslateError> {
        if let Some(m) = self.direct(source, target) {
            return Ok(vec![m.clone()]);
        }
        if source != PIVOT
            && target != PIVOT
            && let (Some(a), Some(b)) = (self.direct(source, PIVOT), self.direct(PIVOT, target))
        {
            return Ok(vec![a.clone(), b.clone()]);
        }
        Err(TranslateError::UnsupportedPair {
            from: source.chars().take(16).collect(),
            to: target.chars().take(16).collect(),
            available: self
                .languages()
                .pairs
                .iter()
                .map(|p| format!("{}→{}", p.source, p.target))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every pair the installed models can do, direct ones first.
    pub fn languages(&self) -> Languages {
        let langs: BTreeSet<&str> = self
            .models
            .iter()
            .flat_map(|m| [m.meta.src_lang.as_str(), m.meta.trg_lang.as_str()])
            .collect();
        let mut pairs = Vec::new();
        for &s in &langs {
            for &t in &langs {
                if s == t {
                    continue;
                }
                let route = if let Some(m) = self.direct(s, t) {
                    Some(vec![m])
                } else if s != PIVOT && t != PIVOT {
                    self.direct(s, PIVOT)
                        .zip(self.direct(PIVOT, t))
                        .map(|(a, b)| vec![a, b])
                } else {
                    None
                };
                if let Some(r) = route {
                    pairs.push(LanguagePair {
                        source: s.to_owned(),
                        target: t.to_owned(),
                        pivot: r.len() > 1,
                        models: r.iter().map(|m| m.id.clone()).collect(),
                    });
                }
            }
        }
        pairs.sort_by_key(|p| p.pivot);
        Languages { pairs }
    }

    pub fn detect(&self, text: &str) -> Result<Detection, TranslateError> {
        let text = strip_controls(text);
        if text.trim().is_empty() {
            return Err(TranslateError::Empty);
        }
        let (language, confidence) = self.detector.detect(&text)?;
        Ok(Detection {
            language,
            confidence,
        })
    }

    fn check_code(&self, code: &str) -> Result<(), TranslateError> {
        let known = self
            .models
            .iter()
            .any(|m| m.meta.src_lang == code || m.meta.trg_lang == code);
        if known {
            Ok(())
        } else {
            Err(TranslateError::UnknownLanguage(
                code.chars().take(16).collect(),
            ))
        }
    }

    /// Translates a request (blocking: run it off the async runtime). Stops with `timed_out`
    /// once `limits.max_request_secs` have passed (checked between batches).
    pub fn translate(&self, req: &TranslateRequest) -> Result<TranslateResponse, TranslateError> {
        let deadline = Deadline::after(self.config.limits.max_request_secs);
        let chars = req.text.chars().count();
        if chars > self.config.limits.max_chars {
            return Err(TranslateError::TooLong {
                chars,
                max: self.config.limits.max_chars,
            });
        }
        let text = strip_controls(&req.text);
        if text.trim().is_empty() {
            return Err(TranslateError::Empty);
        }
        let route = self.resolve(&req.source, &req.target, &text)?;
        let done = self
            .translate_texts(&route, &[text.as_str()], deadline)?
            .pop()
            .unwrap_or_default();

        let translation: String = done.pieces.iter().map(|p| p.output(&text)).collect();
        let errors: Vec<SentenceError> = done.errors().cloned().collect();
        Ok(TranslateResponse {
            translation,
            source: route.source,
            target: route.target,
            pivot: route.models.len() > 1,
            sentences: done.sentences,
            errors,
        })
    }

    /// Checks the target, detects the source when it is `auto` (on `sample`, among the
    /// languages with a route to the target) and finds the models to run.
    pub fn resolve(
        &self,
        source: &str,
        target: &str,
        sample: &str,
    ) -> Result<Route, TranslateError> {
        let target = target.trim().to_ascii_lowercase();
        self.check_code(&target)?;
        let source = match source.trim().to_ascii_lowercase().as_str() {
            // Only languages with a route to the target are candidates, so a short text is
            // never "detected" as the target itself (2 of the 50 short English UI strings of
            // the fixtures score as Portuguese when both are allowed).
            "auto" | "" => {
                LanguageDetector::new(self.source_candidates(&target)?)
                    .detect(sample)?
                    .0
            }
            code => {
                self.check_code(code)?;
                code.to_owned()
            }
        };
        if source == target {
            return Err(TranslateError::BadRequest(format!(
                "source and target are both {source:?}"
            )));
        }
        let models = self.route(&source, &target)?;
        Ok(Route {
            source,
            target,
            models,
        })
    }

    /// The languages `auto` may detect for `target` (lower case): those with a route to it.
    /// Fails, naming the installed pairs, when there is none.
    pub fn source_candidates(&self, target: &str) -> Result<Vec<&str>, TranslateError> {
        self.check_code(target)?;
        let candidates: Vec<&str> = self
            .detector
            .codes()
            .into_iter()
            .filter(|c| *c != target && self.route(c, target).is_ok())
            .collect();
        if candidates.is_empty() {
            return Err(self
                .route("auto", target)
                .err()
                .unwrap_or(TranslateError::Undetected {
                    installed: String::new(),
                }));
        }
        Ok(candidates)
    }

    /// Translates several texts (control characters already stripped) along `route`, all
    /// their sentences batched together. Each text comes back as its pieces in order (gaps
    /// and sentences, with their byte ranges in the text): joining the pieces' outputs
    /// rebuilds the text translated, layout kept. A sentence that fails keeps its source text
    /// and carries its error; `sentence` numbers count across all the texts.
    pub fn translate_texts(
        &self,
        route: &Route,
        texts: &[&str],
        deadline: Deadline,
    ) -> Result<Vec<TranslatedText>, TranslateError> {
        // Segment, then split over-long sentences with the first model's tokenizer.
        let first = &route.models[0];
        let max_tokens = self.config.limits.max_sentence_tokens;
        let offsets = |s: &str| first.token_offsets(s).unwrap_or_default();
        let mut out: Vec<TranslatedText> = Vec::with_capacity(texts.len());
        let mut segs: Vec<String> = Vec::new();
        let mut base = 0usize;
        for text in texts {
            let mut done = TranslatedText::default();
            let mut at = 0usize;
            let mut push = |done: &mut TranslatedText, len: usize, sentence, is_sentence| {
                let end = (at + len).min(text.len());
                done.pieces.push(TranslatedPiece {
                    src: at..end,
                    sentence,
                    is_sentence,
                    translation: None,
                    error: None,
                });
                at = end;
            };
            for p in split_sentences(text) {
                match p {
                    Piece::Gap(g) => push(&mut done, g.len(), 0, false),
                    Piece::Segment { sentence, text: s } => {
                        done.sentences = done.sentences.max(sentence + 1);
                        for (part, gap) in split_long(&s, max_tokens, &offsets) {
                            push(&mut done, part.len(), base + sentence, true);
                            segs.push(part);
                            if !gap.is_empty() {
                                push(&mut done, gap.len(), 0, false);
                            }
                        }
                    }
                }
            }
            base += done.sentences;
            out.push(done);
        }

        let mut results: Vec<Decoded> = segs.iter().map(|s| Ok(s.clone())).collect();
        for model in &route.models {
            let inputs: Vec<(usize, String)> = results
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().ok().map(|s| (i, s.clone())))
                .collect();
            let texts: Vec<String> = inputs.iter().map(|(_, s)| s.clone()).collect();
            let decoded = self.translate_segments(model, &texts, Some(deadline))?;
            for ((i, _), o) in inputs.into_iter().zip(decoded) {
                results[i] = o;
            }
        }
        let mut results = results.into_iter();
        for done in &mut out {
            for p in &mut done.pieces {
                if !p.is_sentence {
                    continue;
                }
                match results.next() {
                    Some(Ok(t)) => p.translation = Some(t),
                    Some(Err(e)) => {
                        p.error = Some(SentenceError {
                            sentence: p.sentence,
                            code: e.code().to_owned(),
                            message: e.to_string(),
                        })
                    }
                    None => {
                        p.error = Some(SentenceError {
                            sentence: p.sentence,
                            code: "internal".into(),
                            message: "sentence lost".into(),
                        })
                    }
                }
            }
        }
        Ok(out)
    }

    /// Translates single sentences with one model, through its batcher: sorted by token
    /// length, batched with the sentences of the other requests in flight, each row restricted
    /// to its own shortlist. Order of the result = input.
    pub fn translate_segments(
        &self,
        model: &MarianModel,
        texts: &[String],
        deadline: Option<Deadline>,
    ) -> Result<Vec<Decoded>, TranslateError> {
        let Some(batcher) = self
            .models
            .iter()
            .position(|m| std::ptr::eq(m.as_ref(), model))
            .and_then(|i| self.batchers.get(i))
        else {
            return self.translate_batched(model, texts, self.config.batch_size as usize, deadline);
        };
        let (mut results, tokenized) = tokenize_all(model, texts);
        let (at, rows): (Vec<usize>, Vec<Vec<u32>>) = tokenized.into_iter().unzip();
        let out = batcher.translate(rows, deadline)?;
        for (i, o) in at.into_iter().zip(out) {
            results[i] = Some(o);
        }
        Ok(unwrap_all(results))
    }

    /// As [`translate_segments`](Self::translate_segments) on the calling thread alone, with an
    /// explicit batch size (tests and benchmarks compare batch 1 with larger batches).
    pub fn translate_batched(
        &self,
        model: &MarianModel,
        texts: &[String],
        batch_size: usize,
        deadline: Option<Deadline>,
    ) -> Result<Vec<Decoded>, TranslateError> {
        let (mut results, mut tokenized) = tokenize_all(model, texts);
        tokenized.sort_by_key(|(_, ids)| ids.len());
        for chunk in tokenized.chunks(batch_size.max(1)) {
            if let Some(d) = deadline
                && d.passed()
            {
                return Err(d.error());
            }
            let rows: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
            for ((i, _), out) in chunk.iter().zip(model.translate_ids(&rows)) {
                results[*i] = Some(out);
            }
        }
        Ok(unwrap_all(results))
    }

    /// The model for a direct pair (tests, benchmarks).
    pub fn model(&self, source: &str, target: &str) -> Option<&MarianModel> {
        self.direct(source, target).map(|m| m.as_ref())
    }
}

/// A result slot per text, and (index, token ids) of the texts that tokenized.
type Tokenized = (Vec<Option<Decoded>>, Vec<(usize, Vec<u32>)>);

/// Tokenizes every text: a slot per text (filled now for those that failed) and the token
/// ids of the others with their index.
fn tokenize_all(model: &MarianModel, texts: &[String]) -> Tokenized {
    let mut results: Vec<Option<Decoded>> = (0..texts.len()).map(|_| None).collect();
    let mut tokenized = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        match model.tokenize(t) {
            Ok(ids) => tokenized.push((i, ids)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    (results, tokenized)
}

/// Every slot filled, or an internal error where one was not (never a silent drop).
fn unwrap_all(results: Vec<Option<Decoded>>) -> Vec<Decoded> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TranslateError::Internal("sentence lost".into()))))
        .collect()
}
