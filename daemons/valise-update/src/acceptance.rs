//! Running a bundle's acceptance cases through the engines (DESIGN.md §5.4).
//!
//! After a switch and the engines' restart, every `[[acceptance]]` case of the bundle's
//! manifest runs through the engine sockets, in manifest order, each with its own deadline:
//!
//! * `transcribe`: the case's input file (a `[[file]]` of the bundle, read from
//!   `bundle_dir`) is submitted with the case's model forced (an engine that did not load the
//!   new model refuses it), and the transcript is scored with [`valise_bundle::wer`]: word
//!   error rate on [`normalize`]d words, at most `max_wer` (a fraction, 0..=1). The
//!   normalization's language is the case's `language`, else the detected one; number words
//!   exist for `en` and `fr`, any other language is normalized with English rules (digits
//!   spelled the same way on both sides, so they still compare equal);
//! * `translate`: the text goes from the model's first language to its second (a
//!   translation model lists exactly `[source, target]`); the answer must equal
//!   `expect_exact` byte for byte, come from a direct model (no pivot through English: that
//!   would not test the bundle's model), and carry no sentence error.
//!
//! The first failing case stops the run: [`AcceptanceFailure`] names it, says why, and holds
//! what the engine produced, truncated to [`OBSERVED_MAX_CHARS`]. Inputs and expected outputs
//! come from the signed bundle, never from staff, so the observed output may be logged and
//! kept in the update history as the reason of a rollback.
//!
//! The engines' jobs are deleted once read (or on timeout), so acceptance leaves nothing in
//! the engine's spool.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use valise_bundle::wer::{Lang, Score, normalize};
use valise_bundle::{AcceptanceCase, Engine, Manifest};
use valise_engine_client::{ClientError, TranscribeClient, TranslateClient};
use valise_protocol::translate::TranslateRequest;
use valise_protocol::{Format, JobOptions, JobState, Transcript};

/// The most characters of an engine's output kept in a failure.
pub const OBSERVED_MAX_CHARS: usize = 200;

/// The engines' Unix sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSockets {
    pub transcribe: PathBuf,
    pub translate: PathBuf,
}

impl EngineSockets {
    /// The socket `engine` listens on.
    pub fn of(&self, engine: Engine) -> &Path {
        match engine {
            Engine::Transcribe => &self.transcribe,
            Engine::Translate => &self.translate,
        }
    }
}

/// A case that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub name: String,
    pub engine: Engine,
    /// The engine's output, truncated to [`OBSERVED_MAX_CHARS`].
    pub observed: String,
    /// Transcription only: the word error rate measured (a fraction, 0..=1 or above).
    pub wer: Option<f64>,
    pub elapsed: Duration,
}

/// Why a case failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FailureKind {
    /// The manifest itself is unusable (it was validated at download; checked again here).
    #[error("the manifest is invalid: {0}")]
    Manifest(String),
    /// The case's input could not be read from the staged bundle.
    #[error("cannot read the input: {0}")]
    Input(String),
    /// The engine did not answer (socket missing, connection dropped).
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
    /// The engine answered with an error (model not loaded, job failed, ...).
    #[error("the engine refused or failed: {0}")]
    Engine(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("word error rate {wer:.3} above the bound {max_wer:.3}")]
    Wer { wer: f64, max_wer: f64 },
    #[error("the translation differs from the expected text")]
    Mismatch,
    #[error("the engine translated through English (no direct {0} model loaded)")]
    Pivot(String),
}

/// The first case that failed; the updater rolls back with it as the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("acceptance case {case:?} ({engine}) failed: {kind}{}", observed_note(.observed))]
pub struct AcceptanceFailure {
    /// The case's name (`""` when the manifest itself failed).
    pub case: String,
    pub engine: String,
    pub kind: FailureKind,
    /// What the engine produced, truncated to [`OBSERVED_MAX_CHARS`] (None when it produced
    /// nothing).
    pub observed: Option<String>,
}

fn observed_note(o: &Option<String>) -> String {
    o.as_ref()
        .map(|o| format!("; observed {o:?}"))
        .unwrap_or_default()
}

/// Cuts `s` to [`OBSERVED_MAX_CHARS`] characters, marking the cut with `…`.
pub fn truncate(s: &str) -> String {
    match s.char_indices().nth(OBSERVED_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Runs every acceptance case of `manifest` through the engines at `sockets`, in order; the
/// inputs are read from `bundle_dir` (the directory holding the bundle's files, e.g. the
/// staged slot or the download directory). Stops at the first failure.
pub async fn run_acceptance(
    manifest: &Manifest,
    bundle_dir: &Path,
    sockets: &EngineSockets,
) -> Result<Vec<CaseResult>, AcceptanceFailure> {
    manifest.validate().map_err(|e| AcceptanceFailure {
        case: String::new(),
        engine: String::new(),
        kind: FailureKind::Manifest(e.to_string()),
        observed: None,
    })?;
    let mut passed = Vec::with_capacity(manifest.acceptance.len());
    for case in &manifest.acceptance {
        passed.push(run_case(manifest, case, bundle_dir, sockets).await?);
    }
    Ok(passed)
}

/// Runs one case within its `timeout_s`.
pub async fn run_case(
    manifest: &Manifest,
    case: &AcceptanceCase,
    bundle_dir: &Path,
    sockets: &EngineSockets,
) -> Result<CaseResult, AcceptanceFailure> {
    let start = Instant::now();
    let limit = case.timeout_s();
    let fail = |kind: FailureKind, observed: Option<String>| AcceptanceFailure {
        case: case.name().to_owned(),
        engine: case.engine().name().to_owned(),
        kind,
        observed: observed.as_deref().map(truncate),
    };
    let outcome = match case {
        AcceptanceCase::Transcribe {
            model,
            input,
            language,
            expect,
            max_wer,
            ..
        } => {
            let client = TranscribeClient::new(&sockets.transcribe);
            let path = bundle_dir.join(input);
            let size = manifest
                .models
                .iter()
                .find(|m| m.id == *model)
                .map(|m| m.size());
            let t =
                match transcribe(&client, &path, (model, size), language.as_deref(), limit).await {
                    Ok(t) => t,
                    Err(kind) => return Err(fail(kind, None)),
                };
            let text = t.text();
            let lang = match language.as_deref().unwrap_or(&t.language) {
                "fr" => Lang::Fr,
                _ => Lang::En,
            };
            let score = Score::of(expect, &text, lang);
            let wer = if score.ref_words == 0 {
                // An empty expected transcript: any word heard is wrong.
                if normalize(&text, lang).is_empty() {
                    0.0
                } else {
                    1.0
                }
            } else {
                score.edits as f64 / score.ref_words as f64
            };
            if wer > *max_wer {
                return Err(fail(
                    FailureKind::Wer {
                        wer,
                        max_wer: *max_wer,
                    },
                    Some(text),
                ));
            }
            Ok((truncate(&text), Some(wer)))
        }
        AcceptanceCase::Translate {
            model,
            text,
            expect_exact,
            ..
        } => {
            let Some((source, target)) = pair_of(manifest, model) else {
                return Err(fail(
                    FailureKind::Manifest(format!(
                        "model {model} is not a translation model with [source, target] languages"
                    )),
                    None,
                ));
            };
            let client = TranslateClient::new(&sockets.translate);
            let req = TranslateRequest {
                text: text.clone(),
                source: source.clone(),
                target: target.clone(),
            };
            match tokio::time::timeout(Duration::from_secs(limit), client.translate(&req)).await {
                Err(_) => Err(fail(FailureKind::Timeout(limit), None)),
                Ok(Err(e)) => Err(fail(client_failure(&e), None)),
                Ok(Ok(r)) if r.pivot => Err(fail(
                    FailureKind::Pivot(format!("{source}→{target}")),
                    Some(r.translation),
                )),
                Ok(Ok(r)) if !r.errors.is_empty() => Err(fail(
                    FailureKind::Engine(format!(
                        "sentence {}: {} ({})",
                        r.errors[0].sentence, r.errors[0].message, r.errors[0].code
                    )),
                    Some(r.translation),
                )),
                Ok(Ok(r)) if r.translation != *expect_exact => {
                    Err(fail(FailureKind::Mismatch, Some(r.translation)))
                }
                Ok(Ok(r)) => Ok((truncate(&r.translation), None)),
            }
        }
    };
    let (observed, wer) = outcome?;
    Ok(CaseResult {
        name: case.name().to_owned(),
        engine: case.engine(),
        observed,
        wer,
        elapsed: start.elapsed(),
    })
}

/// `[source, target]` of a translation model of the bundle.
fn pair_of(manifest: &Manifest, model: &str) -> Option<(String, String)> {
    let m = manifest.models.iter().find(|m| m.id == model)?;
    match m.languages.as_slice() {
        [s, t] if s != "multilingual" && t != "multilingual" => Some((s.clone(), t.clone())),
        _ => None,
    }
}

fn client_failure(e: &ClientError) -> FailureKind {
    if e.is_unavailable() {
        FailureKind::Unavailable(e.to_string())
    } else {
        FailureKind::Engine(e.to_string())
    }
}

/// Checks the engine serves `model` (of `size` bytes), submits `path` with it forced, waits for the job at most `limit_s`, reads its
/// transcript and deletes the job in the engine (also on timeout or failure).
async fn transcribe(
    client: &TranscribeClient,
    path: &Path,
    (model, size): (&str, Option<u64>),
    language: Option<&str>,
    limit_s: u64,
) -> Result<Transcript, FailureKind> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limit_s);
    let timeout = || FailureKind::Timeout(limit_s);
    if !path.is_file() {
        return Err(FailureKind::Input(format!(
            "{} is not a file",
            path.display()
        )));
    }
    // The engine must serve the bundle's model from the slot it was restarted on: same id,
    // same bytes on disk. (Checked before the upload: an engine refusing the model answers
    // before it reads the body, which can surface as a broken connection instead.)
    let models = tokio::time::timeout_at(deadline, client.models())
        .await
        .map_err(|_| timeout())?
        .map_err(|e| client_failure(&e))?;
    match models.iter().find(|m| m.id == model) {
        None => {
            return Err(FailureKind::Engine(format!(
                "the engine has no model {model}"
            )));
        }
        Some(m) if size.is_some_and(|s| s != m.size_bytes) => {
            return Err(FailureKind::Engine(format!(
                "the engine's model {model} has {} bytes, the bundle's {}",
                m.size_bytes,
                size.unwrap_or_default()
            )));
        }
        Some(_) => {}
    }
    let opts = JobOptions {
        language: language.map(str::to_owned),
        translate: false,
        model: Some(model.to_owned()),
    };
    let job = tokio::time::timeout_at(deadline, client.submit_file(path, &opts))
        .await
        .map_err(|_| timeout())?
        .map_err(|e| match e {
            ClientError::File { .. } => FailureKind::Input(e.to_string()),
            e => client_failure(&e),
        })?;
    let id = job.id;
    let result = tokio::time::timeout_at(deadline, async {
        let status = client
            .wait(&id, |_| {})
            .await
            .map_err(|e| client_failure(&e))?;
        if status.state != JobState::Done {
            let why = status
                .error
                .map(|e| format!("{} ({})", e.message, e.code))
                .unwrap_or_else(|| format!("the job ended {:?}", status.state));
            return Err(FailureKind::Engine(why));
        }
        let json = client
            .result(&id, Format::Json)
            .await
            .map_err(|e| client_failure(&e))?;
        serde_json::from_str::<Transcript>(&json)
            .map_err(|e| FailureKind::Engine(format!("unreadable transcript: {e}")))
    })
    .await
    .unwrap_or_else(|_| Err(timeout()));
    // Forgotten in the engine whatever happened: a job still running there is cancelled.
    let _ = client.cancel(&id).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(OBSERVED_MAX_CHARS + 5);
        let t = truncate(&long);
        assert_eq!(t.chars().count(), OBSERVED_MAX_CHARS + 1);
        assert!(t.ends_with('…'));
        let exact = "a".repeat(OBSERVED_MAX_CHARS);
        assert_eq!(truncate(&exact), exact);
    }

    #[test]
    fn failure_message_names_the_case_and_what_was_seen() {
        let f = AcceptanceFailure {
            case: "jfk-en".into(),
            engine: "transcribe".into(),
            kind: FailureKind::Wer {
                wer: 0.5,
                max_wer: 0.1,
            },
            observed: Some("and so my fellow".into()),
        };
        assert_eq!(
            f.to_string(),
            "acceptance case \"jfk-en\" (transcribe) failed: word error rate 0.500 above the \
             bound 0.100; observed \"and so my fellow\""
        );
    }
}
