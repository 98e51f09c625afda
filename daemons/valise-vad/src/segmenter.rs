//! Turning per-frame speech probabilities into speech spans: a streaming restatement of
//! silero-vad 6.2.3's `get_speech_timestamps_from_probs` (with its defaults
//! `use_max_poss_sil_at_max_speech=True`, `min_silence_at_max_speech=98`).

use crate::{FRAME_SAMPLES, SAMPLE_RATE, SpeechSpan, VadConfig, VadError};

/// Validated thresholds and durations in samples, as the Python code computes them.
#[derive(Debug, Clone, Copy)]
struct Params {
    threshold: f64,
    neg_threshold: f64,
    min_speech: i64,
    pad: i64,
    /// `sr * max_speech_duration_s - window - 2 * pad`, a float in Python (may be `inf`).
    max_speech: f64,
    min_silence: i64,
    min_silence_at_max_speech: i64,
}

/// `f32` → the `f64` of its shortest decimal form, so that `0.3f32` compares like Python's
/// `0.3` (a plain `as f64` would give 0.30000001192…, which can flip a comparison).
fn decimal_f64(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(f64::from(x))
}

fn ms_to_samples(ms: u32) -> i64 {
    // SAMPLE_RATE * ms / 1000 is exact at 16 kHz.
    i64::from(ms) * i64::from(SAMPLE_RATE) / 1000
}

impl Params {
    fn new(cfg: &VadConfig) -> Result<Self, VadError> {
        if !(cfg.threshold > 0.0 && cfg.threshold <= 1.0) {
            return Err(VadError::Config(format!(
                "threshold must be in (0, 1], got {}",
                cfg.threshold
            )));
        }
        if cfg.max_speech_s.is_nan() || cfg.max_speech_s <= 0.0 {
            return Err(VadError::Config(format!(
                "max_speech_s must be positive (or infinite), got {}",
                cfg.max_speech_s
            )));
        }
        let threshold = decimal_f64(cfg.threshold);
        let pad = ms_to_samples(cfg.speech_pad_ms);
        Ok(Self {
            threshold,
            neg_threshold: (threshold - 0.15).max(0.01),
            min_speech: ms_to_samples(cfg.min_speech_ms),
            pad,
            max_speech: f64::from(SAMPLE_RATE) * decimal_f64(cfg.max_speech_s)
                - FRAME_SAMPLES as f64
                - 2.0 * pad as f64,
            min_silence: ms_to_samples(cfg.min_silence_ms),
            min_silence_at_max_speech: ms_to_samples(98),
        })
    }
}

/// Streaming speech segmenter over per-frame (512 samples, 32 ms) speech probabilities.
///
/// Feed one probability per frame with [`push`](Self::push), then call
/// [`finish`](Self::finish) with the total number of samples. The concatenation of
/// everything returned equals silero's `get_speech_timestamps_from_probs` on the whole
/// sequence: spans are only handed out once no later frame can change them (their end
/// padding depends on the next span's start, so a span is held until the next one starts
/// or until the stream has moved at least `2 * speech_pad` past its end).
#[derive(Debug, Clone)]
pub struct Segmenter {
    p: Params,
    /// Index of the next frame.
    frame: u64,
    triggered: bool,
    /// `current_speech['start']` (Python's dict is non-empty exactly when this is `Some`).
    current_start: Option<i64>,
    /// Potential end of the current speech (0 = none, as in Python).
    temp_end: i64,
    /// `(temp_end, silence_duration)` candidates for cutting an over-long span.
    possible_ends: Vec<(i64, i64)>,
    /// The last raw span handed to the padding stage: (padded start, raw end).
    held: Option<(i64, i64)>,
}

impl Segmenter {
    /// A segmenter with `cfg`'s thresholds and durations.
    pub fn new(cfg: &VadConfig) -> Result<Self, VadError> {
        Ok(Self {
            p: Params::new(cfg)?,
            frame: 0,
            triggered: false,
            current_start: None,
            temp_end: 0,
            possible_ends: Vec::new(),
            held: None,
        })
    }

    /// Number of frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Whether the segmenter is currently inside speech.
    pub fn in_speech(&self) -> bool {
        self.triggered
    }

    /// The earliest sample that a span not yet handed out may still include: a caller that
    /// keeps audio for the spans to come can drop everything before it.
    pub fn pending_from(&self) -> u64 {
        let next = self.frame as i64 * FRAME_SAMPLES as i64 - self.p.pad;
        let open = self.current_start.map(|s| s - self.p.pad);
        let held = self.held.map(|(s, _)| s);
        let earliest = [Some(next), open, held]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next);
        u64::try_from(earliest).unwrap_or(0)
    }

    /// Feeds the probability of the next frame; appends spans that became final to `out`.
    pub fn push(&mut self, prob: f32, out: &mut Vec<SpeechSpan>) {
        let cur = self.frame as i64 * FRAME_SAMPLES as i64;
        self.frame += 1;
        self.step(f64::from(prob), cur, out);
        // Any span started from now on begins at or after this bound.
        let bound = self
            .current_start
            .unwrap_or(self.frame as i64 * FRAME_SAMPLES as i64);
        if let Some((start, end)) = self.held
            && bound >= end + 2 * self.p.pad
            && end + self.p.pad <= cur + 1
        {
            // The next span cannot come close enough to share the gap: full padding. The
            // frame just pushed holds at least one sample, so the audio is at least
            // `cur + 1` long and Python's clamp to the audio length cannot bite.
            out.push(span(start, end + self.p.pad));
            self.held = None;
        }
    }

    /// The body of Python's per-frame loop.
    fn step(&mut self, prob: f64, cur: i64, out: &mut Vec<SpeechSpan>) {
        let p = self.p;
        let speech = prob >= p.threshold;

        if speech && self.temp_end != 0 {
            let sil_dur = cur - self.temp_end;
            // Only ever read when a span exceeds max_speech: with no limit, keeping them
            // would just grow memory over a long unbroken span.
            if sil_dur > p.min_silence_at_max_speech && p.max_speech.is_finite() {
                self.possible_ends.push((self.temp_end, sil_dur));
            }
            self.temp_end = 0;
            // (`if next_start < prev_end` is dead with use_max_poss_sil_at_max_speech.)
        }

        if speech && !self.triggered {
            self.triggered = true;
            self.current_start = Some(cur);
            return;
        }

        if self.triggered
            && let Some(start) = self.current_start
            && (cur - start) as f64 > p.max_speech
        {
            // Python's max(possible_ends, key=dur): the *first* longest silence.
            let longest = self
                .possible_ends
                .iter()
                .copied()
                .reduce(|best, x| if x.1 > best.1 { x } else { best });
            if let Some((prev_end, dur)) = longest {
                self.emit_raw(start, prev_end, out);
                let next_start = prev_end + dur;
                if next_start < prev_end + cur {
                    self.current_start = Some(next_start);
                } else {
                    self.current_start = None;
                    self.triggered = false;
                }
                self.temp_end = 0;
                self.possible_ends.clear();
                // No `continue` here in Python: fall through to the silence check.
            } else {
                // No silence to cut at (prev_end is always 0 in this mode): cut right here.
                self.emit_raw(start, cur, out);
                self.current_start = None;
                self.temp_end = 0;
                self.triggered = false;
                self.possible_ends.clear();
                return;
            }
        }

        if prob < p.neg_threshold && self.triggered {
            if self.temp_end == 0 {
                self.temp_end = cur;
            }
            if cur - self.temp_end < p.min_silence {
                return;
            }
            if let Some(start) = self.current_start.take() {
                let end = self.temp_end;
                if end - start > p.min_speech {
                    self.emit_raw(start, end, out);
                }
            }
            self.temp_end = 0;
            self.triggered = false;
            self.possible_ends.clear();
        }
    }

    /// The padding pass of Python, done incrementally: pads the held span using the gap to
    /// this one, emits it, and holds this one.
    fn emit_raw(&mut self, start: i64, end: i64, out: &mut Vec<SpeechSpan>) {
        let padded_start = match self.held.take() {
            Some((held_start, held_end)) => {
                let gap = start - held_end;
                if gap < 2 * self.p.pad {
                    let half = gap.div_euclid(2);
                    out.push(span(held_start, held_end + half));
                    (start - half).max(0)
                } else {
                    out.push(span(held_start, held_end + self.p.pad));
                    (start - self.p.pad).max(0)
                }
            }
            None => (start - self.p.pad).max(0),
        };
        self.held = Some((padded_start, end));
    }

    /// Ends the stream of `total_samples` samples (the audio length, not rounded up to
    /// frames) and returns the remaining spans.
    pub fn finish(mut self, total_samples: u64) -> Vec<SpeechSpan> {
        let len = i64::try_from(total_samples).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        if let Some(start) = self.current_start.take()
            && len - start > self.p.min_speech
        {
            self.emit_raw(start, len, &mut out);
        }
        if let Some((start, end)) = self.held.take() {
            out.push(span(start, (end + self.p.pad).min(len)));
        }
        out
    }
}

fn span(start: i64, end: i64) -> SpeechSpan {
    SpeechSpan {
        start: u64::try_from(start).unwrap_or(0),
        end: u64::try_from(end).unwrap_or(0),
    }
}

/// Speech spans for a whole sequence of per-frame probabilities (one per 512 samples) of
/// audio `total_samples` long: silero's `get_speech_timestamps_from_probs`.
pub fn spans_from_probabilities(
    probs: &[f32],
    total_samples: u64,
    cfg: &VadConfig,
) -> Result<Vec<SpeechSpan>, VadError> {
    let mut seg = Segmenter::new(cfg)?;
    let mut out = Vec::new();
    for &p in probs {
        seg.push(p, &mut out);
    }
    out.extend(seg.finish(total_samples));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(probs: &[f32], len: u64) -> Vec<(u64, u64)> {
        spans_from_probabilities(probs, len, &VadConfig::default())
            .expect("valid config")
            .into_iter()
            .map(|s| (s.start, s.end))
            .collect()
    }

    #[test]
    fn silence_gives_nothing() {
        assert!(run(&[0.01; 100], 51200).is_empty());
        assert!(run(&[], 0).is_empty());
    }

    #[test]
    fn one_padded_span() {
        // Speech in frames 10..30, silence after: start 5120-480, end 15360+480.
        let mut probs = vec![0.0f32; 60];
        probs[10..30].fill(0.9);
        assert_eq!(run(&probs, 60 * 512), vec![(4640, 15840)]);
    }

    #[test]
    fn too_short_speech_is_dropped() {
        let mut probs = vec![0.0f32; 60];
        probs[10..15].fill(0.9); // 5 frames = 2560 samples < 4000
        assert!(run(&probs, 60 * 512).is_empty());
    }

    #[test]
    fn hysteresis_keeps_speech_between_thresholds() {
        let mut probs = vec![0.0f32; 80];
        probs[10..20].fill(0.9);
        probs[20..40].fill(0.4); // below threshold, above neg_threshold: still speech
        probs[40..50].fill(0.9);
        assert_eq!(
            run(&probs, 80 * 512),
            vec![(10 * 512 - 480, 50 * 512 + 480)]
        );
    }

    #[test]
    fn rejects_bad_config() {
        let cfg = VadConfig {
            threshold: 0.0,
            ..VadConfig::default()
        };
        assert!(Segmenter::new(&cfg).is_err());
        let cfg = VadConfig {
            max_speech_s: f32::NAN,
            ..VadConfig::default()
        };
        assert!(Segmenter::new(&cfg).is_err());
    }

    #[test]
    fn decimal_conversion() {
        assert_eq!(decimal_f64(0.3), 0.3);
        assert_eq!(decimal_f64(f32::INFINITY), f64::INFINITY);
    }
}
