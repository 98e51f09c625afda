//! One job, from file to transcript, in bounded memory.
//!
//! ```text
//! file -> valise_media::Decoder --16 kHz mono chunks--> Window (last ~30 s of PCM)
//!                                      |                     |
//!                                      v                     | speech spans, sliced out
//!                              valise_vad::VadStream ---------+
//!                                                            v
//!                     Batch (speech packed up to ~28 s, with a map back to recording time)
//!                                                            |  one compute turn per batch
//!                                                            v
//!                                 whisper full() on the job's own WhisperState -> segments
//! ```
//! Memory is bounded by the window and one batch, whatever the recording's length. Silence
//! never reaches whisper, which is both faster and the best cure for whisper's hallucinations
//! over silence. Timestamps are mapped back through the batch's piece table.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ScopedJoinHandle;

use std::time::Instant;

use valise_media::{Decoder, MediaInfo};
use valise_protocol::transcript::repetition_score;
use valise_protocol::{Doubt, MediaSummary, Segment, Task, Transcript};
use valise_vad::{SpeechSpan, VadConfig};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

use crate::TranscribeError;
use crate::config::{DecodingSettings, VadSettings};
use crate::encoder_gate::EncoderGate;
use crate::engine::{Engine, SpeechModel};
use crate::slots::ComputeSlots;

pub const SAMPLE_RATE: usize = 16_000;
/// Silence put between two speech spans packed into one batch, so words do not run together.
const GAP_SAMPLES: usize = SAMPLE_RATE / 5;
/// Samples read from the decoder at a time.
const CHUNK: usize = SAMPLE_RATE * 5;

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `None` or `Some("auto")`: detect.
    pub language: Option<String>,
    pub translate: bool,
}

/// How the job runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub threads: usize,
    pub decoding: DecodingSettings,
    pub vad: VadSettings,
    pub media: valise_media::Limits,
    pub deadline: Option<Instant>,
    pub max_job_secs: u64,
}

/// Shared between a running job and whoever watches it (the API, the CLI).
#[derive(Debug, Default)]
pub struct JobCtx {
    cancel: AtomicBool,
    progress: AtomicU32,
    media: Mutex<Option<MediaSummary>>,
    /// Samples of the recording done (transcribed, or silence skipped).
    done_samples: AtomicU64,
    /// The segments so far: the partial transcript, and at the end the whole one.
    segments: Mutex<Vec<Segment>>,
    eta: Mutex<Option<Eta>>,
    /// How the work went: whisper calls, whisper.cpp's encoder passes, and the tails carried
    /// to the next batch instead of a second pass ([`crate::encoder_gate`]).
    batches: AtomicU32,
    encoder_passes: AtomicU32,
    carried_tails: AtomicU32,
}

/// What a job cost whisper, for the log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkCounts {
    pub batches: u32,
    pub encoder_passes: u32,
    pub carried_tails: u32,
}

/// The time left as estimated at `at`.
#[derive(Debug, Clone, Copy)]
struct Eta {
    at: Instant,
    secs: f64,
}

/// The speed of this job as it goes: wall seconds per second of recording over its last
/// [`Speed::WINDOW`] batches (about four minutes of recording), so that the estimate follows the
/// box's recent speed (another job taking turns, a busier machine) rather than the job's whole
/// average, while one quick or slow batch (little speech, many tokens) does not swing it.
#[derive(Debug, Clone)]
struct Speed {
    last_at: Instant,
    last_done: u64,
    /// (wall seconds, recording seconds) of the last intervals, oldest first.
    recent: std::collections::VecDeque<(f64, f64)>,
    /// Intervals measured since the job started.
    counted: usize,
    /// The first intervals left out (one per batch that starts with the job).
    warmup: usize,
}

impl Speed {
    /// Intervals (batches) the rate is measured over.
    const WINDOW: usize = 8;
    /// Wall seconds the rate needs, after the warm-up, to leave the warm-up out.
    const MIN_WALL_SECS: f64 = 0.5;

    fn new(at: Instant, done: u64, warmup: usize) -> Self {
        Self {
            warmup: warmup.max(1),
            last_at: at,
            last_done: done,
            recent: std::collections::VecDeque::with_capacity(Self::WINDOW),
            counted: 0,
        }
    }

    /// The job has done `done` samples at `at`: updates the rate, returns it.
    fn update(&mut self, at: Instant, done: u64) -> Option<f64> {
        let audio = done.saturating_sub(self.last_done) as f64 / SAMPLE_RATE as f64;
        // Intervals of under a second of audio say little (and divide by almost nothing).
        if audio >= 1.0 {
            if self.recent.len() == Self::WINDOW {
                self.recent.pop_front();
            }
            self.recent
                .push_back((at.duration_since(self.last_at).as_secs_f64(), audio));
            self.counted += 1;
            self.last_at = at;
            self.last_done = done;
        }
        // The job's first intervals carry one-off costs (the whisper state's buffers, the
        // first touch of the weights), and with batches side by side the first one also holds
        // the work of the batches that started with it and end just after: the first `warmup`
        // (one per lane) are left out while there are others.
        let skip = if self.counted == self.recent.len() {
            self.warmup.min(self.recent.len().saturating_sub(1))
        } else {
            0
        };
        let sum = |skip: usize| {
            self.recent
                .iter()
                .skip(skip)
                .fold((0.0, 0.0), |(w, a), (dw, da)| (w + dw, a + da))
        };
        let (mut wall, mut audio) = sum(skip);
        // Batches that finished while an older one ran join the transcript together, a moment
        // apart: what is left after the warm-up may be such a burst, with next to no wall
        // time. Then the warm-up counts too.
        if wall < Self::MIN_WALL_SECS {
            (wall, audio) = sum(0);
        }
        (audio > 0.0).then(|| wall / audio)
    }
}

impl JobCtx {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    pub fn progress(&self) -> f32 {
        f32::from_bits(self.progress.load(Ordering::Relaxed))
    }
    fn set_progress(&self, p: f32) {
        self.progress
            .store(p.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
    pub fn media(&self) -> Option<MediaSummary> {
        self.media.lock().ok().and_then(|m| m.clone())
    }
    /// Seconds of the recording done so far.
    pub fn position_secs(&self) -> f64 {
        self.done_samples.load(Ordering::Relaxed) as f64 / SAMPLE_RATE as f64
    }
    /// Seconds left, as last estimated, minus the time since.
    pub fn eta_secs(&self) -> Option<f64> {
        let eta = (*self.eta.lock().ok()?)?;
        Some((eta.secs - eta.at.elapsed().as_secs_f64()).max(0.0))
    }
    /// Segments `from..` of those transcribed so far, and how many there are.
    pub fn segments_from(&self, from: usize) -> (Vec<Segment>, usize) {
        match self.segments.lock() {
            Ok(s) => (s.get(from..).unwrap_or_default().to_vec(), s.len()),
            Err(_) => (Vec::new(), 0),
        }
    }
    pub fn work(&self) -> WorkCounts {
        WorkCounts {
            batches: self.batches.load(Ordering::Relaxed),
            encoder_passes: self.encoder_passes.load(Ordering::Relaxed),
            carried_tails: self.carried_tails.load(Ordering::Relaxed),
        }
    }
    fn segment_count(&self) -> usize {
        self.segments.lock().map_or(0, |s| s.len())
    }
    fn push_segments(&self, new: Vec<Segment>) {
        if let Ok(mut s) = self.segments.lock() {
            s.extend(new);
        }
    }
    fn take_segments(&self) -> Vec<Segment> {
        self.segments
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
    /// The recording is done up to `done` samples (never goes back).
    fn set_done(&self, done: u64) {
        self.done_samples.fetch_max(done, Ordering::Relaxed);
    }
    fn set_eta(&self, secs: f64) {
        if let Ok(mut e) = self.eta.lock() {
            *e = Some(Eta {
                at: Instant::now(),
                secs,
            });
        }
    }
}

fn summary(info: &MediaInfo) -> MediaSummary {
    MediaSummary {
        container: info.container.clone(),
        codec: info.codec.clone(),
        sample_rate: info.sample_rate,
        channels: info.channels,
        duration_secs: info.duration_secs,
    }
}

/// Checks the request against the model before any work is done.
pub fn check_request(
    model: &SpeechModel,
    req: &Request,
) -> Result<Option<String>, TranscribeError> {
    let forced = match req.language.as_deref() {
        None | Some("auto") | Some("") => None,
        Some(l) => {
            let l = l.to_ascii_lowercase();
            if whisper_rs::get_lang_id(&l).is_none() {
                return Err(TranscribeError::UnknownLanguage(
                    l.chars().take(16).collect(),
                ));
            }
            Some(l)
        }
    };
    if !model.multilingual {
        if let Some(l) = forced.as_deref().filter(|l| *l != "en") {
            return Err(TranscribeError::EnglishOnly {
                model: model.id.clone(),
                language: l.to_string(),
            });
        }
        if req.translate {
            return Err(TranscribeError::EnglishOnly {
                model: model.id.clone(),
                language: "translate".into(),
            });
        }
        // An English-only model has no language detection: what it hears is English.
        return Ok(Some("en".into()));
    }
    Ok(forced)
}

/// The most recent PCM, indexed by absolute sample position.
#[derive(Debug, Default)]
struct Window {
    base: u64,
    pcm: Vec<f32>,
}

impl Window {
    fn end(&self) -> u64 {
        self.base + self.pcm.len() as u64
    }
    fn slice(&self, start: u64, end: u64) -> &[f32] {
        let s = start.clamp(self.base, self.end());
        let e = end.clamp(s, self.end());
        &self.pcm[(s - self.base) as usize..(e - self.base) as usize]
    }
    fn drop_before(&mut self, pos: u64) {
        let pos = pos.min(self.end());
        if pos > self.base {
            self.pcm.drain(..(pos - self.base) as usize);
            self.base = pos;
        }
    }
}

/// Speech packed for one whisper call.
#[derive(Debug, Default)]
struct Batch {
    pcm: Vec<f32>,
    /// (offset in batch, length, absolute start in the recording)
    pieces: Vec<(usize, usize, u64)>,
    last_abs_end: Option<u64>,
    /// All it holds is the tail another batch left (see [`Batch::tail_from`]): whisper.cpp
    /// finishes such a batch by itself, so that no audio is carried twice.
    carried: bool,
}

impl Batch {
    fn push(&mut self, abs_start: u64, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        // Contiguous audio (no VAD, or touching spans) is not separated by a gap.
        if !self.pcm.is_empty() && self.last_abs_end != Some(abs_start) {
            self.pcm.resize(self.pcm.len() + GAP_SAMPLES, 0.0);
        }
        self.pieces.push((self.pcm.len(), samples.len(), abs_start));
        self.pcm.extend_from_slice(samples);
        self.last_abs_end = Some(abs_start + samples.len() as u64);
        self.carried = false;
    }

    /// The audio of this batch from `from` (samples into it) to the end of its last piece, as
    /// a new batch with the same map back to the recording: what whisper.cpp left for a second
    /// pass. Silence put between pieces or after the last one is not carried.
    fn tail_from(&self, from: usize) -> Batch {
        let mut tail = Batch::default();
        for &(off, len, start) in &self.pieces {
            if off + len <= from {
                continue;
            }
            let skip = from.saturating_sub(off);
            tail.push(start + skip as u64, &self.pcm[off + skip..off + len]);
        }
        tail.carried = !tail.pcm.is_empty();
        tail
    }

    /// Where the batch starts in the recording.
    fn abs_start(&self) -> Option<u64> {
        self.pieces.first().map(|&(_, _, start)| start)
    }

    fn would_exceed(&self, n: usize, max: usize) -> bool {
        !self.pcm.is_empty() && self.pcm.len() + GAP_SAMPLES + n > max
    }

    /// Batch time (samples) to recording time (seconds). A time inside the silence put
    /// between two pieces snaps to the start of the next piece.
    fn to_abs_secs(&self, t: usize) -> f64 {
        let mut abs = 0u64;
        for &(off, len, start) in &self.pieces {
            if t < off {
                abs = start;
                break;
            }
            if t < off + len {
                abs = start + (t - off) as u64;
                break;
            }
            abs = start + len as u64;
        }
        abs as f64 / SAMPLE_RATE as f64
    }
}

/// What all of a job's batches share.
#[derive(Clone, Copy)]
struct Job<'a> {
    model: &'a SpeechModel,
    req: &'a Request,
    settings: &'a Settings,
    ctx: &'a Arc<JobCtx>,
    slots: &'a ComputeSlots,
    states: &'a States,
    /// Set when one of the job's batches fails (or the job does), so that the others stop at
    /// their next step.
    failed: &'a Arc<AtomicBool>,
}

struct Run<'a, 's> {
    job: Job<'a>,
    language: Option<String>,
    batch: Batch,
    /// Samples in the recording, from its header (for the time left).
    total_samples: Option<u64>,
    speed: Speed,
    /// Batches of this recording whisper may work on at once (the compute slots' width), each
    /// with `threads / lanes` threads.
    lanes: usize,
    /// Batches being transcribed on their own thread, oldest first: where each starts, its
    /// number, and its thread.
    in_flight: std::collections::VecDeque<(u64, u64, ScopedJoinHandle<'s, BatchResult>)>,
    next_seq: u64,
    /// Numbers of the batches in flight whose thread is done (told through `finished`).
    completed: std::collections::HashSet<u64>,
    finished: (mpsc::Sender<u64>, mpsc::Receiver<u64>),
    scope: &'s std::thread::Scope<'s, 'a>,
}

/// A batch back from whisper: its segments (numbered when they join the transcript), where
/// whisper.cpp was stopped before a second pass, and the language it heard.
struct Done {
    batch: Batch,
    segments: Vec<Segment>,
    stopped_at: Option<usize>,
    language: Option<String>,
}

type BatchResult = Result<Done, TranscribeError>;

/// Transcribes `path`. Blocking: call it from a thread of its own.
pub fn transcribe(
    engine: &Engine,
    model: &SpeechModel,
    path: &Path,
    req: &Request,
    settings: &Settings,
    ctx: &Arc<JobCtx>,
    slots: &ComputeSlots,
) -> Result<Transcript, TranscribeError> {
    let forced = check_request(model, req)?;
    let check = |ctx: &JobCtx| -> Result<(), TranscribeError> {
        if ctx.is_cancelled() {
            return Err(TranscribeError::Cancelled);
        }
        if settings.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(TranscribeError::TimedOut(settings.max_job_secs));
        }
        Ok(())
    };
    let mut dec = Decoder::open(path, &settings.media)?;
    let info = summary(dec.info());
    let duration_hint = info.duration_secs.filter(|d| *d > 0.0);
    if let Ok(mut m) = ctx.media.lock() {
        *m = Some(info);
    }

    let vad_cfg = VadConfig {
        threshold: settings.vad.threshold,
        min_speech_ms: settings.vad.min_speech_ms,
        min_silence_ms: settings.vad.min_silence_ms,
        speech_pad_ms: settings.vad.speech_pad_ms,
        max_speech_s: settings.vad.max_speech_secs,
    };
    let mut vad = match engine.vad() {
        Some(v) if settings.vad.enabled => Some(v.stream(vad_cfg)),
        _ => None,
    };
    let batch_max = (settings.decoding.batch_secs * SAMPLE_RATE as f32) as usize;

    let failed = Arc::new(AtomicBool::new(false));
    let states = States::default();
    let (language, speech_samples) = std::thread::scope(|scope| {
        let mut run = Run {
            job: Job {
                model,
                req,
                settings,
                ctx,
                slots,
                states: &states,
                failed: &failed,
            },
            language: forced.clone(),
            batch: Batch::default(),
            total_samples: duration_hint.map(|d| (d * SAMPLE_RATE as f64) as u64),
            speed: Speed::new(Instant::now(), 0, slots.width() as usize),
            lanes: slots.width() as usize,
            in_flight: std::collections::VecDeque::new(),
            next_seq: 0,
            completed: std::collections::HashSet::new(),
            finished: mpsc::channel(),
            scope,
        };
        let r = (|| -> Result<u64, TranscribeError> {
            let mut window = Window::default();
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut speech_samples = 0u64;
            loop {
                check(ctx)?;
                chunk.clear();
                let n = dec.read(&mut chunk, CHUNK.min(batch_max))?;
                if n == 0 {
                    break;
                }
                let chunk_start = window.end();
                window.pcm.extend_from_slice(&chunk);
                let spans = match vad.as_mut() {
                    Some(v) => v.push(&chunk)?,
                    None => vec![SpeechSpan {
                        start: chunk_start,
                        end: chunk_start + n as u64,
                    }],
                };
                for span in spans {
                    tracing::debug!(start = span.start, end = span.end, "speech span");
                    speech_samples += span.end.saturating_sub(span.start);
                    run.add(&window, span, batch_max, &check)?;
                }
                // Keep exactly what spans still to come may need (the VAD knows); without VAD every
                // chunk has been consumed already.
                let keep_from = match vad.as_ref() {
                    Some(v) => v.pending_from(),
                    None => window.end(),
                };
                window.drop_before(keep_from.min(window.end()));
                // Done: everything before the batch being filled, or before what the VAD still holds.
                run.set_done(match run.batch.pieces.first() {
                    Some(&(_, _, start)) => start,
                    None => keep_from.min(window.end()),
                });
            }
            if let Some(v) = vad.take() {
                for span in v.finish()? {
                    speech_samples += span.end.saturating_sub(span.start);
                    run.add(&window, span, batch_max, &check)?;
                }
            }
            run.finish(&check)?;
            Ok(speech_samples)
        })();
        // On an error the batches still in flight stop at their next step; the scope waits
        // for them.
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        r.map(|speech| (run.language.take(), speech))
    })?;
    let duration = dec.position_secs();
    if duration <= 0.0 {
        return Err(valise_media::MediaError::Empty {
            detail: "no audio samples".into(),
        }
        .into());
    }
    ctx.set_progress(1.0);
    let work = ctx.work();
    tracing::debug!(
        batches = work.batches,
        encoder_passes = work.encoder_passes,
        carried_tails = work.carried_tails,
        "recording transcribed"
    );
    let segments = ctx.take_segments();
    Ok(Transcript {
        language: language.unwrap_or_else(|| "und".into()),
        language_probability: None,
        task: if req.translate {
            Task::Translate
        } else {
            Task::Transcribe
        },
        model: model.id.clone(),
        duration,
        speech_duration: speech_samples as f64 / SAMPLE_RATE as f64,
        segments,
    })
}

type Check<'c> = dyn Fn(&JobCtx) -> Result<(), TranscribeError> + 'c;

impl<'a, 's> Run<'a, 's> {
    /// Progress by audio position: the recording is done up to `done` samples, but never past
    /// a batch still being transcribed. After a batch, also the time left, from this job's
    /// recent speed.
    fn set_done(&mut self, done: u64) {
        let done = match self.in_flight.front() {
            Some(&(start, _, _)) => done.min(start),
            None => done,
        };
        self.job.ctx.set_done(done);
        let done = self.job.ctx.done_samples.load(Ordering::Relaxed);
        if let Some(total) = self.total_samples.filter(|t| *t > 0) {
            self.job
                .ctx
                .set_progress((done as f64 / total as f64 * 0.99) as f32);
        }
    }

    fn after_batch(&mut self, done: u64) {
        self.set_done(done);
        let done = self.job.ctx.done_samples.load(Ordering::Relaxed);
        if let (Some(rate), Some(total)) =
            (self.speed.update(Instant::now(), done), self.total_samples)
        {
            let left = total.saturating_sub(done) as f64 / SAMPLE_RATE as f64;
            self.job.ctx.set_eta(left * rate);
        }
    }

    fn add(
        &mut self,
        window: &Window,
        span: SpeechSpan,
        batch_max: usize,
        check: &Check<'_>,
    ) -> Result<(), TranscribeError> {
        if span.start < window.base {
            tracing::warn!(
                lost = window.base - span.start,
                "speech span starts before the kept window"
            );
        }
        let pcm = window.slice(span.start, span.end);
        let abs_start = span.start.max(window.base);
        for (i, part) in pcm.chunks(batch_max).enumerate() {
            let start = abs_start + (i * batch_max) as u64;
            // A flush may leave the batch's last seconds in it (carried): flush again if
            // they and this part do not fit together.
            while self.batch.would_exceed(part.len(), batch_max) {
                self.flush(check, false)?;
            }
            // Everything before this span is done (the batches, and silence after them) but
            // what a flush carried.
            self.set_done(self.batch.abs_start().unwrap_or(start));
            self.batch.push(start, part);
        }
        Ok(())
    }

    /// Hands the batch to whisper. Batches run side by side, one per lane, each on its own
    /// thread, and join the transcript in order. A batch runs alone, with every thread, when
    /// nothing can run beside it: the first one while the language is still to be detected
    /// (every later batch is decoded in it), the last one when nothing else is left, and every
    /// batch with a single lane. Only a batch that runs alone, and not the last, can leave its
    /// last seconds to the next one (see [`crate::encoder_gate`]): they stay in the batch, at
    /// its front.
    fn flush(&mut self, check: &Check<'_>, last: bool) -> Result<(), TranscribeError> {
        if self.batch.pcm.is_empty() {
            return Ok(());
        }
        // Whisper needs at least a second of input; pad very short speech with silence.
        if self.batch.pcm.len() < SAMPLE_RATE {
            self.batch.pcm.resize(SAMPLE_RATE + SAMPLE_RATE / 10, 0.0);
        }
        let alone =
            self.lanes == 1 || self.language.is_none() || (last && self.in_flight.is_empty());
        if alone {
            self.collect_all()?;
        } else {
            self.wait_for_a_lane()?;
        }
        check(self.job.ctx)?;
        let batch = std::mem::take(&mut self.batch);
        let call = Call {
            job: self.job,
            language: self.language.clone(),
            width: if alone { self.lanes as u32 } else { 1 },
            threads: if alone {
                self.job.settings.threads
            } else {
                (self.job.settings.threads / self.lanes).max(1)
            },
            // At the end of the recording there is no next batch: whisper.cpp finishes the
            // batch itself, as it would a short clip.
            carry: alone && !last,
        };
        if alone {
            let done = call.run(batch)?;
            self.commit(done);
        } else {
            let start = batch.abs_start().unwrap_or(0);
            let seq = self.next_seq;
            self.next_seq += 1;
            let told = Told(seq, self.finished.0.clone());
            let handle = self.scope.spawn(move || {
                let _told = told;
                call.run(batch)
            });
            self.in_flight.push_back((start, seq, handle));
        }
        Ok(())
    }

    /// Returns once a lane is free. Whichever batch finishes first frees its lane (batches
    /// differ in length and in words: waiting for the oldest would leave the other lane idle);
    /// finished batches join the transcript in order. At most two batches per lane are kept
    /// waiting behind a slow one.
    fn wait_for_a_lane(&mut self) -> Result<(), TranscribeError> {
        loop {
            while let Ok(seq) = self.finished.1.try_recv() {
                self.note_finished(seq);
            }
            while let Some(&(_, seq, _)) = self.in_flight.front() {
                if !self.completed.contains(&seq) {
                    break;
                }
                self.collect_one()?;
            }
            let running = self.in_flight.len().saturating_sub(self.completed.len());
            if running < self.lanes && self.in_flight.len() < 2 * self.lanes {
                return Ok(());
            }
            // Some batch is still running (else the front would have been collected), and
            // each tells once, even when it panics.
            if let Ok(seq) = self.finished.1.recv() {
                self.note_finished(seq);
            }
        }
    }

    /// Batch `seq` is done; unless it was already collected (joined at the end).
    fn note_finished(&mut self, seq: u64) {
        if self.in_flight.iter().any(|&(_, s, _)| s == seq) {
            self.completed.insert(seq);
        }
    }

    /// Waits for the oldest batch in flight and adds its segments to the transcript.
    fn collect_one(&mut self) -> Result<(), TranscribeError> {
        let Some((_, seq, handle)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.completed.remove(&seq);
        let done = match handle.join() {
            Ok(r) => r?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        self.commit(done);
        Ok(())
    }

    fn collect_all(&mut self) -> Result<(), TranscribeError> {
        while !self.in_flight.is_empty() {
            self.collect_one()?;
        }
        Ok(())
    }

    /// A batch's segments join the transcript (numbered in order); what whisper.cpp left of
    /// it becomes the front of the next batch.
    fn commit(&mut self, done: Done) {
        let Done {
            batch,
            mut segments,
            stopped_at,
            language,
        } = done;
        if self.language.is_none() {
            self.language = language;
        }
        let first = self.job.ctx.segment_count();
        for (i, seg) in segments.iter_mut().enumerate() {
            seg.id = (first + i) as u32;
        }
        self.job.ctx.push_segments(segments);
        let end = batch.last_abs_end.unwrap_or(0);
        if let Some(at) = stopped_at {
            // Only a batch that runs alone is stopped, and it is committed as soon as it is
            // done, before anything new is added: the batch being filled is still empty.
            debug_assert!(self.batch.pcm.is_empty());
            self.batch = batch.tail_from(at);
        }
        let done_to = self.batch.abs_start().map_or(end, |s| s.min(end));
        self.after_batch(done_to);
    }

    /// Flushes until nothing is left (the end of the recording).
    fn finish(&mut self, check: &Check<'_>) -> Result<(), TranscribeError> {
        while !self.batch.pcm.is_empty() {
            self.flush(check, true)?;
        }
        self.collect_all()
    }
}

/// Tells the job that batch `.0` is done when its thread ends, however it ends.
struct Told(u64, mpsc::Sender<u64>);

impl Drop for Told {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

/// One whisper call: everything a batch's thread needs.
struct Call<'a> {
    job: Job<'a>,
    language: Option<String>,
    /// Compute slots taken for the call (all of them for a batch that runs alone).
    width: u32,
    threads: usize,
    /// Whether whisper.cpp may be stopped before a second pass (see [`crate::encoder_gate`]).
    carry: bool,
}

/// The job's idle whisper states (the buffers of one computation, ~150 MB for base): one per
/// batch it runs at once, created when first needed. A state is the job's own, never another
/// job's: whisper.cpp's sampler (temperature fallback) keeps its random state in it from call
/// to call, so a recording transcribed in one batch (a voice message, a phone prompt) gives the
/// same text every time, as it did with one state per job. (With batches side by side, which
/// state a batch gets depends on which finished first: a window that falls back to sampling
/// may come out differently from one run to the next, as faster-whisper's do.)
#[derive(Default)]
struct States(Mutex<Vec<WhisperState>>);

impl States {
    fn take(&self, model: &SpeechModel) -> Result<WhisperState, TranscribeError> {
        let idle = self.0.lock().ok().and_then(|mut s| s.pop());
        match idle {
            Some(s) => Ok(s),
            None => Ok(model.ctx.create_state()?),
        }
    }

    fn put(&self, state: WhisperState) {
        if let Ok(mut s) = self.0.lock() {
            s.push(state);
        }
    }
}

impl Call<'_> {
    fn run(self, batch: Batch) -> BatchResult {
        let turn = self.job.slots.acquire_n(self.width);
        if self.job.ctx.is_cancelled() || self.job.failed.load(Ordering::Relaxed) {
            return Err(TranscribeError::Cancelled);
        }
        let r = self.job.states.take(self.job.model).and_then(|mut state| {
            let r = self.whisper(&mut state, &batch);
            // A state whose call failed is dropped, not reused.
            if r.is_ok() {
                self.job.states.put(state);
            }
            r
        });
        drop(turn);
        let (segments, stopped_at, language) =
            r.inspect_err(|_| self.job.failed.store(true, Ordering::Relaxed))?;
        Ok(Done {
            batch,
            segments,
            stopped_at,
            language,
        })
    }

    /// Segments of the batch (numbered from 0), where whisper.cpp was stopped before a second
    /// pass (samples into the batch) if it was, and the language whisper heard.
    #[allow(clippy::type_complexity)]
    fn whisper(
        &self,
        state: &mut WhisperState,
        batch: &Batch,
    ) -> Result<(Vec<Segment>, Option<usize>, Option<String>), TranscribeError> {
        let dec = &self.job.settings.decoding;
        let strategy = match dec.beam_size {
            0 | 1 => SamplingStrategy::Greedy { best_of: 1 },
            n => SamplingStrategy::BeamSearch {
                beam_size: n as i32,
                patience: -1.0,
            },
        };
        // Declared before the parameters that point to it, so that it outlives them.
        let gate = EncoderGate::new(
            batch.pcm.len(),
            dec.carry_tails && self.carry && !batch.carried,
        );
        let mut p = FullParams::new(strategy);
        gate.install(&mut p);
        p.set_n_threads(self.threads as i32);
        p.set_translate(self.job.req.translate);
        p.set_language(Some(self.language.as_deref().unwrap_or("auto")));
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_no_context(true);
        if !dec.temperature_fallback {
            p.set_temperature_inc(0.0);
        }
        let secs = batch.pcm.len() as f32 / SAMPLE_RATE as f32;
        if let Some(frames) = encoder_frames(secs, dec) {
            p.set_audio_ctx(frames);
        }
        // whisper.cpp polls this between decoder steps, so a cancel, the deadline or another
        // batch's failure stops the computation within a fraction of a second. (The explicit
        // boxed type matters: whisper-rs 0.16's trampoline is only sound for
        // `F = Box<dyn FnMut() -> bool>`.)
        let ctx = Arc::clone(self.job.ctx);
        let failed = Arc::clone(self.job.failed);
        let deadline = self.job.settings.deadline;
        p.set_abort_callback_safe::<_, Box<dyn FnMut() -> bool>>(Some(Box::new(move || {
            ctx.is_cancelled()
                || failed.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| Instant::now() > d)
        })
            as Box<dyn FnMut() -> bool>));

        let started = Instant::now();
        let result = state.full(p, &batch.pcm);
        if self.job.ctx.is_cancelled() || self.job.failed.load(Ordering::Relaxed) {
            return Err(TranscribeError::Cancelled);
        }
        if self
            .job
            .settings
            .deadline
            .is_some_and(|d| Instant::now() > d)
        {
            return Err(TranscribeError::TimedOut(self.job.settings.max_job_secs));
        }
        result?;
        let stopped_at = gate.stopped_at_sample();
        self.job.ctx.batches.fetch_add(1, Ordering::Relaxed);
        self.job
            .ctx
            .encoder_passes
            .fetch_add(gate.passes(), Ordering::Relaxed);
        if stopped_at.is_some() {
            self.job.ctx.carried_tails.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            audio_s = secs,
            ms = started.elapsed().as_millis() as u64,
            encoder_passes = gate.passes(),
            carried_s = stopped_at.map(|at| secs - at as f32 / SAMPLE_RATE as f32),
            "batch transcribed"
        );
        let language = match &self.language {
            Some(l) => Some(l.clone()),
            None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_string),
        };
        let eot = self.job.model.ctx.token_eot();
        let mut out = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            let mut logp = 0.0f32;
            let mut n = 0u32;
            for i in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(i) {
                    let data = tok.token_data();
                    if data.id < eot {
                        logp += data.plog;
                        n += 1;
                    }
                }
            }
            let avg_logprob = if n > 0 { logp / n as f32 } else { 0.0 };
            let no_speech_prob = seg.no_speech_probability();
            // openai-whisper's rule: both signals together mean "this was not speech".
            if no_speech_prob > 0.6 && avg_logprob < -1.0 {
                continue;
            }
            let repetition = repetition_score(&text);
            let mut doubts = Vec::new();
            if no_speech_prob > 0.6 {
                doubts.push(Doubt::NoSpeech);
            }
            if avg_logprob < -1.0 {
                doubts.push(Doubt::LowConfidence);
            }
            if repetition > 0.4 {
                doubts.push(Doubt::Repetition);
            }
            let t0 = (seg.start_timestamp().max(0) as usize) * SAMPLE_RATE / 100;
            let t1 = (seg.end_timestamp().max(0) as usize) * SAMPLE_RATE / 100;
            let start = batch.to_abs_secs(t0);
            let end = batch.to_abs_secs(t1.max(t0)).max(start);
            out.push(Segment {
                id: out.len() as u32,
                start,
                end,
                text: text.trim().to_string(),
                confidence: avg_logprob.exp(),
                avg_logprob,
                no_speech_prob,
                repetition,
                doubts,
            });
        }
        Ok((out, stopped_at, language))
    }
}

/// Encoder frames (whisper's `audio_ctx`) for a batch of `secs` seconds; `None` keeps
/// whisper's full 30 s window (1500 frames, 20 ms each).
///
/// whisper's encoder sees 30 s whatever the input; for shorter input, encode only what is
/// there plus a margin of 128 frames (2.56 s), never less than `min_audio_ctx` (large
/// speed-up for short clips). The count is rounded up to a multiple of [`FRAME_ALIGN`]
/// because ggml's blocked matrix kernels (llamafile's tinyBLAS, built in: `GGML_LLAMAFILE`)
/// take the attention products only when the context is a multiple of their block: with 1500
/// or 1378 frames both attention products fall back to one dot product per element
/// (`ggml_vec_dot_f16`, 27 % of a long recording's time). That is also why a batch near 30 s
/// gets 1488 frames (29.76 s) rather than 1500: its audio still fits, with 0.76 s or more
/// of margin (batches are at most `batch_secs`, 28 s by default).
pub(crate) fn encoder_frames(secs: f32, dec: &DecodingSettings) -> Option<i32> {
    if !dec.trim_audio_ctx || secs >= 29.0 {
        return None;
    }
    let ctx = ((secs / 30.0) * 1500.0).ceil() as i32 + 128;
    let min = i32::try_from(dec.min_audio_ctx).unwrap_or(1500);
    let aligned = (ctx.max(min) + FRAME_ALIGN - 1) / FRAME_ALIGN * FRAME_ALIGN;
    Some(aligned.min(FULL_FRAMES_ALIGNED))
}

/// The block of ggml's tinyBLAS kernels over the context (16 f32 lanes with AVX-512).
const FRAME_ALIGN: i32 = 16;
/// The largest aligned context within whisper's 1500 frames.
const FULL_FRAMES_ALIGNED: i32 = 1500 / FRAME_ALIGN * FRAME_ALIGN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_times_map_back_to_the_recording() {
        let mut b = Batch::default();
        b.push(16_000, &[0.1; 16_000]); // 1..2 s
        b.push(32_000, &[0.1; 8_000]); // touching: no gap
        b.push(80_000, &[0.1; 16_000]); // 5..6 s, after a gap
        assert_eq!(b.pieces.len(), 3);
        assert_eq!(b.pcm.len(), 16_000 + 8_000 + GAP_SAMPLES + 16_000);
        assert_eq!(b.to_abs_secs(0), 1.0);
        assert_eq!(b.to_abs_secs(8_000), 1.5);
        assert_eq!(b.to_abs_secs(20_000), 2.25);
        // Inside the gap: the start of the next piece.
        assert_eq!(b.to_abs_secs(24_000 + GAP_SAMPLES / 2), 5.0);
        assert_eq!(b.to_abs_secs(24_000 + GAP_SAMPLES + 8_000), 5.5);
        // Past the end: the end of the last piece.
        assert_eq!(b.to_abs_secs(10_000_000), 6.0);
    }

    #[test]
    fn a_tail_keeps_its_place_in_the_recording() {
        let mut b = Batch::default();
        b.push(16_000, &[0.1; 16_000]); // 1..2 s
        b.push(80_000, &[0.2; 16_000]); // 5..6 s, after a gap
        b.pcm.resize(b.pcm.len() + 8_000, 0.0); // padding, as a short batch gets
        // From inside the first piece: its end, the gap, and the second piece.
        let t = b.tail_from(8_000);
        assert!(t.carried);
        assert_eq!(
            t.pieces,
            vec![(0, 8_000, 24_000), (8_000 + GAP_SAMPLES, 16_000, 80_000)]
        );
        assert_eq!(t.to_abs_secs(0), 1.5);
        assert_eq!(t.abs_start(), Some(24_000));
        // From inside the gap: the second piece only.
        let t = b.tail_from(16_000 + GAP_SAMPLES / 2);
        assert_eq!(t.pieces, vec![(0, 16_000, 80_000)]);
        assert_eq!(t.pcm, vec![0.2; 16_000]);
        // From the padding: nothing is carried.
        let t = b.tail_from(b.pcm.len() - 100);
        assert!(t.pcm.is_empty() && !t.carried);
        // New audio after a carried tail makes an ordinary batch again.
        let mut t = b.tail_from(8_000);
        t.push(200_000, &[0.3; 100]);
        assert!(!t.carried);
    }

    #[test]
    fn encoder_frames_cover_the_batch_in_whole_kernel_blocks() {
        let dec = DecodingSettings::default();
        for tenths in 10..290 {
            let secs = tenths as f32 / 10.0;
            let frames = encoder_frames(secs, &dec).expect("trimmed below 29 s");
            assert_eq!(frames % FRAME_ALIGN, 0, "{secs} s: {frames} frames");
            assert!(
                frames >= dec.min_audio_ctx as i32,
                "{secs} s: under the floor"
            );
            assert!(frames <= 1500, "{secs} s: past whisper's window");
            // the batch's audio (50 frames a second) always fits, with some margin
            assert!(
                frames as f32 >= secs * 50.0 + 20.0,
                "{secs} s: {frames} frames"
            );
        }
        assert_eq!(encoder_frames(3.0, &dec), Some(512)); // the floor, already aligned
        assert_eq!(encoder_frames(20.0, &dec), Some(1136)); // 1000 + 128 rounded up
        assert_eq!(encoder_frames(28.0, &dec), Some(1488)); // the default batch's longest
        assert_eq!(encoder_frames(29.0, &dec), None); // whisper's own 1500
        let full = DecodingSettings {
            trim_audio_ctx: false,
            ..DecodingSettings::default()
        };
        assert_eq!(encoder_frames(3.0, &full), None);
    }

    #[test]
    fn speed_is_measured_over_the_last_batches() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + std::time::Duration::from_secs_f64(s);
        let sr = SAMPLE_RATE as u64;
        let mut sp = Speed::new(t0, 0, 1);
        assert_eq!(sp.update(at(30.0), 30 * sr), Some(1.0)); // 30 s of audio in 30 s
        // then 30 s in 10 s: the first (warm-up) interval is left out
        assert_eq!(sp.update(at(40.0), 60 * sr), Some(10.0 / 30.0));
        // under a second of audio says nothing
        assert_eq!(sp.update(at(45.0), 60 * sr + 100), Some(10.0 / 30.0));
        // after WINDOW more batches at 0.5, the first ones no longer count
        let mut t = 40.0;
        for i in 0..Speed::WINDOW as u64 {
            t += 15.0;
            sp.update(at(t), (90 + 30 * i) * sr);
        }
        let r = sp
            .update(at(t), (90 + 30 * (Speed::WINDOW as u64 - 1)) * sr)
            .unwrap();
        assert!((r - 0.5).abs() < 1e-9, "{r}");

        // Two lanes: two batches of 30 s start together, each takes 20 s; they end at 20 and
        // 20.1 s. Both first intervals are the start-up (the second got only 0.1 s of wall
        // time for its 30 s): left out, the steady rate is 20 s per 60 s of audio.
        let mut sp = Speed::new(t0, 0, 2);
        sp.update(at(20.0), 30 * sr);
        sp.update(at(20.1), 60 * sr);
        sp.update(at(40.0), 90 * sr);
        let r = sp.update(at(40.1), 120 * sr).unwrap();
        assert!((r - 20.0 / 60.0).abs() < 1e-9, "{r}");

        // Three batches that join the transcript at once after 6 s: no time after the
        // warm-up, so the warm-up counts (never a rate of zero, a time left of nothing).
        let mut sp = Speed::new(t0, 0, 2);
        sp.update(at(6.0), 28 * sr);
        sp.update(at(6.0005), 56 * sr);
        let r = sp.update(at(6.001), 84 * sr).unwrap();
        assert!((r - 6.001 / 84.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn window_keeps_absolute_positions() {
        let mut w = Window::default();
        w.pcm.extend((0..100).map(|i| i as f32));
        w.drop_before(40);
        assert_eq!(w.base, 40);
        assert_eq!(w.slice(30, 45), &[40.0, 41.0, 42.0, 43.0, 44.0]);
        assert_eq!(w.slice(95, 200), &[95.0, 96.0, 97.0, 98.0, 99.0]);
        w.drop_before(1000);
        assert_eq!((w.base, w.pcm.len()), (100, 0));
    }
}
