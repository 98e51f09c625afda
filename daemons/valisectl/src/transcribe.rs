//! `valisectl transcribe` and `valisectl models`: through the daemon when one runs, in this
//! process otherwise (so IT can check a box by hand, even with the daemon stopped).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use valise_engine_client::TranscribeClient as Client;
use valise_protocol::{Format, JobOptions, JobState};
use valise_transcribe::pipeline::{self, JobCtx, Request};
use valise_transcribe::slots::ComputeSlots;
use valise_transcribe::{Config, Engine};

use crate::args::{EngineArgs, TranscribeArgs};

const DEFAULT_SOCKET: &str = "/run/valise/transcribe.sock";

/// The daemon to use, if one answers: an explicit socket must answer.
async fn daemon(engine: &EngineArgs) -> anyhow::Result<Option<Client>> {
    match &engine.socket {
        Some(s) => {
            let c = Client::new(s);
            c.health()
                .await
                .with_context(|| format!("no engine answers on {}", s.display()))?;
            Ok(Some(c))
        }
        None => {
            for socket in candidate_sockets() {
                let c = Client::new(socket);
                if c.is_up().await {
                    return Ok(Some(c));
                }
            }
            Ok(None)
        }
    }
}

/// The box's socket, then the one `scripts/run` starts in a checkout (found from the current
/// directory upwards, like the dev model store).
fn candidate_sockets() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(DEFAULT_SOCKET)];
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let s = dir.join(".valise/data/run/transcribe.sock");
            if s.exists() {
                v.push(s);
                break;
            }
        }
    }
    v
}

fn local_config(engine: &EngineArgs, model: Option<&str>, threads: u32, vad: bool) -> Config {
    let mut c = Config {
        model_store: engine.model_store.clone(),
        default_model: model.map(str::to_string),
        threads,
        ..Config::default()
    };
    c.vad.enabled = vad;
    c
}

pub async fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    if !args.file.is_file() {
        bail!("{} is not a readable file", args.file.display());
    }
    let text = match daemon(&args.engine).await? {
        Some(client) => via_daemon(&client, &args, format).await?,
        None => in_process(args, format).await?,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn via_daemon(
    client: &Client,
    args: &TranscribeArgs,
    format: Format,
) -> anyhow::Result<String> {
    let opts = JobOptions {
        language: Some(args.language.clone()),
        translate: args.translate,
        model: args.model.clone(),
    };
    let job = client.submit_file(&args.file, &opts).await?;
    let show = std::io::stderr().is_terminal();
    let done = client
        .wait(&job.id, |s| {
            if show {
                eprint!("\r{:?} {:>3.0}%", s.state, s.progress * 100.0);
            }
        })
        .await?;
    if show {
        eprintln!();
    }
    match done.state {
        JobState::Done => {
            let text = client.result(&job.id, format).await?;
            let _ = client.cancel(&job.id).await; // forget it: the result is printed
            Ok(text)
        }
        _ => match done.error {
            Some(e) => bail!("{e}"),
            None => bail!("the job ended {:?}", done.state),
        },
    }
}

async fn in_process(args: TranscribeArgs, format: Format) -> anyhow::Result<String> {
    let config = local_config(
        &args.engine,
        args.model.as_deref(),
        args.threads,
        !args.no_vad,
    );
    config.validate().map_err(anyhow::Error::msg)?;
    let path: PathBuf = args.file.clone();
    let req = Request {
        language: Some(args.language.clone()),
        translate: args.translate,
    };
    let transcript = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let engine = Engine::load(&config).context("cannot load the models")?;
        let model = engine.model(None)?;
        let settings = valise_transcribe::jobs::settings_for(&config);
        let ctx = Arc::new(JobCtx::default());
        let slots = ComputeSlots::new(config.compute_slots());
        Ok(pipeline::transcribe(
            &engine, &model, &path, &req, &settings, &ctx, &slots,
        )?)
    })
    .await??;
    Ok(transcript.render(format))
}

pub async fn models(args: EngineArgs) -> anyhow::Result<()> {
    let list = match daemon(&args).await? {
        Some(c) => c.models().await?,
        None => {
            let config = local_config(&args, None, 0, false);
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                Ok(Engine::load(&config)?.models())
            })
            .await??
        }
    };
    for m in list {
        println!(
            "{:<24} {:<8} {:>10} {}{}",
            m.id,
            m.precision,
            m.size_bytes,
            m.languages.join(","),
            if m.default { "  (default)" } else { "" }
        );
    }
    Ok(())
}
