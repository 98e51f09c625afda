//! `valisectl translate`: through the daemon when one answers, in this process otherwise.
//!
//! The input is sent in chunks of whole lines (each under the engine's per-request limit);
//! the engine keeps every line break, so one line in gives one line out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use valise_engine_client::TranslateClient as Client;
use valise_protocol::translate::{
    DocumentFormat, DocumentReport, TranslateRequest, TranslateResponse,
};
use valise_translate::{Config, Engine};

use crate::args::TranslateArgs;

const DEFAULT_SOCKET: &str = "/run/valise/translate.sock";

/// Characters per request: well under the daemon's default limit (100,000).
const CHUNK_CHARS: usize = 50_000;

enum Backend {
    Daemon(Client),
    Local(Arc<Engine>),
}

impl Backend {
    async fn translate(&self, req: TranslateRequest) -> anyhow::Result<TranslateResponse> {
        match self {
            Self::Daemon(c) => Ok(c.translate(&req).await?),
            Self::Local(e) => {
                let e = e.clone();
                Ok(tokio::task::spawn_blocking(move || e.translate(&req)).await??)
            }
        }
    }
}

/// The box's socket, then the one `scripts/run` starts in a checkout.
fn candidate_sockets() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let s = dir.join(".valise/data/run/translate.sock");
            if s.exists() {
                v.push(s);
                break;
            }
        }
    }
    v
}

async fn backend(args: &TranslateArgs) -> anyhow::Result<Backend> {
    if let Some(s) = &args.socket {
        let c = Client::new(s);
        c.health()
            .await
            .with_context(|| format!("no translation engine answers on {}", s.display()))?;
        return Ok(Backend::Daemon(c));
    }
    for socket in candidate_sockets() {
        let c = Client::new(socket);
        if c.is_up().await {
            return Ok(Backend::Daemon(c));
        }
    }
    let config = Config {
        model_store: args.model_store.clone(),
        workers_per_model: 1,
        ..Config::default()
    };
    let engine = tokio::task::spawn_blocking(move || Engine::load(&config))
        .await?
        .context("loading the translation models in this process")?;
    Ok(Backend::Local(Arc::new(engine)))
}

/// Splits `text` after line breaks into chunks of at most `max` characters (a longer single
/// line is its own chunk; the engine splits or refuses it).
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    let mut last_break = None;
    for (i, c) in text.char_indices() {
        chars += 1;
        if c == '\n' {
            last_break = Some(i + 1);
        }
        if chars >= max
            && let Some(b) = last_break.take()
        {
            out.push(&text[start..b]);
            chars = text[b..=i].chars().count();
            start = b;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

pub async fn run(args: TranslateArgs) -> anyhow::Result<()> {
    if let Some(paths) = &args.document {
        return document(&args, &paths[0], &paths[1]).await;
    }
    let mut text = String::new();
    match &args.file {
        Some(p) => {
            text = std::fs::read_to_string(p)
                .with_context(|| format!("reading {} (UTF-8 text expected)", p.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input (UTF-8 text expected)")?;
        }
    }
    if text.trim().is_empty() {
        bail!("nothing to translate");
    }
    let backend = backend(&args).await?;
    let mut source = args.from.clone();
    let mut out = std::io::stdout().lock();
    let mut failed = 0usize;
    for chunk in chunks(&text, CHUNK_CHARS) {
        if chunk.trim().is_empty() {
            out.write_all(chunk.as_bytes())?;
            continue;
        }
        let resp = backend
            .translate(TranslateRequest {
                text: chunk.to_owned(),
                source: source.clone(),
                target: args.to.clone(),
            })
            .await?;
        // One detection for the whole input: later chunks use the first one's language.
        source = resp.source.clone();
        for e in &resp.errors {
            eprintln!(
                "valisectl: sentence {} not translated ({}): {}",
                e.sentence, e.code, e.message
            );
        }
        failed += resp.errors.len();
        out.write_all(resp.translation.as_bytes())?;
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} sentence(s) left untranslated (kept in the source language)");
    }
    Ok(())
}

/// `--document IN OUT`: the translated document is written next to OUT first and renamed
/// into place, so OUT is either the whole translation or untouched.
async fn document(args: &TranslateArgs, input: &Path, output: &Path) -> anyhow::Result<()> {
    let ext = input.extension().and_then(|e| e.to_str()).unwrap_or("");
    let Some(format) = DocumentFormat::parse(ext) else {
        bail!(
            "{}: documents are .txt, .md, .html, .docx or .odt",
            input.display()
        );
    };
    if output.exists() && std::fs::canonicalize(output)? == std::fs::canonicalize(input)? {
        bail!("the translation would overwrite its own source; choose another OUT");
    }
    let (bytes, report): (Vec<u8>, DocumentReport) = match backend(args).await? {
        Backend::Daemon(c) => {
            let d = c
                .translate_document(input, format.as_str(), &args.from, &args.to)
                .await?;
            let report = d.report.unwrap_or_default();
            (d.bytes.to_vec(), report)
        }
        Backend::Local(e) => {
            let data =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            let (from, to) = (args.from.clone(), args.to.clone());
            tokio::task::spawn_blocking(move || e.translate_document(format, &data, &from, &to))
                .await??
        }
    };
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(&bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(output)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "valisectl: {} → {}: {} paragraph(s), {} sentence(s){}",
        report.source,
        report.target,
        report.blocks,
        report.sentences,
        if report.pivot {
            " (through English)"
        } else {
            ""
        }
    );
    if report.merged_runs > 0 {
        eprintln!(
            "valisectl: {} sentence(s) spanned several formatting runs; each took the style of its main run",
            report.merged_runs
        );
    }
    for s in &report.skipped {
        eprintln!(
            "valisectl: left as is: {} × {} ({})",
            s.count, s.what, s.why
        );
    }
    for e in &report.errors {
        eprintln!(
            "valisectl: sentence {} not translated ({}): {}",
            e.sentence, e.code, e.message
        );
    }
    if report.errors_total > 0 {
        bail!(
            "{} sentence(s) left untranslated (kept in the source language)",
            report.errors_total
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cut_after_line_breaks_and_lose_nothing() {
        let text = "aaaa\nbbbb\ncccc\ndddd";
        let c = chunks(text, 6);
        assert_eq!(c.concat(), text);
        assert!(
            c.iter()
                .all(|s| s.ends_with('\n') || std::ptr::eq(*s, *c.last().unwrap()))
        );
        assert!(c.len() >= 3, "{c:?}");
        assert_eq!(chunks("one line only", 4), ["one line only"]);
    }
}
