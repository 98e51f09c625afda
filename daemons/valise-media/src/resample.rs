//! Streaming mono resampler to [`TARGET_SAMPLE_RATE`](crate::TARGET_SAMPLE_RATE).
//!
//! Wraps rubato so that the rest of the crate can push arbitrarily sized blocks of mono samples
//! and get a delay-compensated, length-exact 16 kHz stream out:
//!
//! * 16 kHz input is passed through untouched.
//! * Rates with a small ratio to 16 kHz (8, 11.025, 22.05, 24, 32, 44.1, 48, 96 kHz, ...) use
//!   rubato's synchronous FFT resampler (`FftFixedInOut`): exact ratio, high quality, cheap.
//! * Odd rates (e.g. 44 101 Hz) whose reduced ratio would need enormous FFTs use rubato's
//!   windowed-sinc resampler (`SincFixedIn`) instead (aligned to within one output sample).
//!
//! The resampler's own latency (`output_delay`) is trimmed from the start, and at the end the
//! input is zero-padded and the output cut so that exactly `ceil(frames_in * 16000 / rate)`
//! samples come out: output time lines up with input time.

use std::collections::VecDeque;

use rubato::{
    FftFixedInOut, SincFixedIn, SincInterpolationParameters, SincInterpolationType, VecResampler,
    WindowFunction,
};

use crate::TARGET_SAMPLE_RATE;
use crate::error::MediaError;

/// Nominal input block length handed to rubato.
const CHUNK_IN: usize = 1024;
/// Largest FFT (input or output side) the synchronous resampler may use; beyond it the sinc
/// resampler is used. Bounds the resampler's memory to well under 1 MB.
const MAX_FFT_LEN: usize = 16_384;
/// Sinc filter length for the fallback resampler.
const SINC_LEN: usize = 128;

/// A resampler for one run of audio at a fixed input rate.
struct Segment {
    rate: u32,
    /// `None` = passthrough (input is already 16 kHz).
    inner: Option<Box<dyn VecResampler<f32>>>,
    /// Pending input (one channel), consumed `chunk` frames at a time.
    input: Vec<Vec<f32>>,
    /// Output scratch (one channel).
    output: Vec<Vec<f32>>,
    chunk: usize,
    /// Resampler latency in output frames still to be dropped.
    skip: usize,
    frames_in: u64,
    emitted: u64,
}

impl Segment {
    fn new(rate: u32) -> Result<Self, MediaError> {
        if rate < crate::MIN_SAMPLE_RATE {
            return Err(MediaError::corrupt(format!(
                "sample rate {rate} is too low"
            )));
        }
        if rate == TARGET_SAMPLE_RATE {
            return Ok(Segment {
                rate,
                inner: None,
                input: vec![Vec::new()],
                output: vec![Vec::new()],
                chunk: 0,
                skip: 0,
                frames_in: 0,
                emitted: 0,
            });
        }
        let rate_in = rate as usize;
        let rate_out = TARGET_SAMPLE_RATE as usize;
        let g = gcd(rate_in, rate_out);
        let (min_chunk, min_chunk_out) = (rate_in / g, rate_out / g);
        // An odd FFT length shifts the output by half a sample: use an even number of minimal
        // chunks so that both the input and the output FFT lengths are even.
        let mut chunks = CHUNK_IN.div_ceil(min_chunk);
        if chunks % 2 == 1 {
            chunks += 1;
        }
        let fft_fits = chunks * min_chunk.max(min_chunk_out) <= MAX_FFT_LEN;
        let (inner, skip): (Box<dyn VecResampler<f32>>, usize) = if fft_fits {
            let fft = FftFixedInOut::<f32>::new(rate_in, rate_out, chunks * min_chunk, 1)
                .map_err(|e| MediaError::corrupt(format!("resampler setup failed: {e}")))?;
            let skip = fft.output_delay();
            (Box::new(fft), skip)
        } else {
            let window = WindowFunction::BlackmanHarris2;
            let params = SincInterpolationParameters {
                sinc_len: SINC_LEN,
                f_cutoff: rubato::calculate_cutoff(SINC_LEN, window),
                oversampling_factor: 256,
                interpolation: SincInterpolationType::Cubic,
                window,
            };
            let sinc =
                SincFixedIn::<f32>::new(rate_out as f64 / rate_in as f64, 1.0, params, CHUNK_IN, 1)
                    .map_err(|e| MediaError::corrupt(format!("resampler setup failed: {e}")))?;
            // SincFixedIn already compensates its filter delay (its `output_delay` must not be
            // trimmed); what remains is a lag of (ratio - 1) output samples, measured in the
            // tests below. Trim its integer part: alignment is then within one sample.
            let ratio = rate_out as f64 / rate_in as f64;
            (Box::new(sinc), (ratio - 1.0).max(0.0).round() as usize)
        };
        let chunk = inner.input_frames_next();
        let output = vec![vec![0.0; inner.output_frames_max()]];
        Ok(Segment {
            rate,
            inner: Some(inner),
            input: vec![Vec::with_capacity(chunk * 2)],
            output,
            chunk,
            skip,
            frames_in: 0,
            emitted: 0,
        })
    }

    /// Total output frames this segment must produce for the input seen so far.
    fn expected_out(&self) -> u64 {
        let num = u128::from(self.frames_in) * u128::from(TARGET_SAMPLE_RATE);
        let den = u128::from(self.rate);
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }

    fn push(&mut self, samples: &[f32], out: &mut VecDeque<f32>) -> Result<(), MediaError> {
        self.frames_in += samples.len() as u64;
        if self.inner.is_none() {
            out.extend(samples.iter().copied());
            self.emitted += samples.len() as u64;
            return Ok(());
        }
        self.input[0].extend_from_slice(samples);
        while self.input[0].len() >= self.chunk {
            self.process_one(out, None)?;
        }
        Ok(())
    }

    /// Runs one block through rubato and emits it, honouring the start-up skip and an optional
    /// cap on the total number of emitted frames.
    fn process_one(&mut self, out: &mut VecDeque<f32>, cap: Option<u64>) -> Result<(), MediaError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let (consumed, produced) = inner
            .process_into_buffer(&self.input, &mut self.output, None)
            .map_err(|e| MediaError::corrupt(format!("resampler failed: {e}")))?;
        let consumed = consumed.min(self.input[0].len());
        self.input[0].drain(..consumed);
        let mut block = &self.output[0][..produced.min(self.output[0].len())];
        let skip = self.skip.min(block.len());
        block = &block[skip..];
        self.skip -= skip;
        if let Some(cap) = cap {
            let room = usize::try_from(cap.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
            block = &block[..block.len().min(room)];
        }
        out.extend(block.iter().map(|s| s.clamp(-1.0, 1.0)));
        self.emitted += block.len() as u64;
        Ok(())
    }

    /// Flushes the tail: zero-pads the pending input and drains the resampler's latency so that
    /// exactly [`Self::expected_out`] frames have been emitted in total.
    fn finish(&mut self, out: &mut VecDeque<f32>) -> Result<(), MediaError> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = self.expected_out();
        // Latency plus one block is drained after a handful of blocks; the bound only guards
        // against a resampler that stops producing output.
        let mut guard = 0;
        while self.emitted < expected {
            guard += 1;
            if guard > 64 {
                return Err(MediaError::corrupt("resampler did not drain"));
            }
            let missing = self.chunk.saturating_sub(self.input[0].len());
            self.input[0].extend(std::iter::repeat_n(0.0, missing));
            self.process_one(out, Some(expected))?;
        }
        self.input[0].clear();
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.input[0].len()
    }
}

/// Streaming resampler from any rate to 16 kHz, mono.
pub(crate) struct MonoResampler {
    seg: Option<Segment>,
}

impl std::fmt::Debug for MonoResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoResampler")
            .field("rate", &self.seg.as_ref().map(|s| s.rate))
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl MonoResampler {
    pub(crate) fn new() -> Self {
        MonoResampler { seg: None }
    }

    /// Pushes mono samples at `rate`; resampled output is appended to `out`. A change of rate
    /// flushes the previous segment first.
    pub(crate) fn push(
        &mut self,
        rate: u32,
        samples: &[f32],
        out: &mut VecDeque<f32>,
    ) -> Result<(), MediaError> {
        if self.seg.as_ref().is_some_and(|s| s.rate != rate) {
            self.finish(out)?;
        }
        let seg = match self.seg.as_mut() {
            Some(seg) => seg,
            None => self.seg.insert(Segment::new(rate)?),
        };
        seg.push(samples, out)
    }

    /// Flushes everything still inside the resampler.
    pub(crate) fn finish(&mut self, out: &mut VecDeque<f32>) -> Result<(), MediaError> {
        if let Some(mut seg) = self.seg.take() {
            seg.finish(out)?;
        }
        Ok(())
    }

    /// Input samples waiting for a full resampler block.
    pub(crate) fn buffered(&self) -> usize {
        self.seg.as_ref().map_or(0, Segment::buffered)
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn run(rate: u32, input: &[f32], block: usize) -> Vec<f32> {
        let mut r = MonoResampler::new();
        let mut out = VecDeque::new();
        for b in input.chunks(block) {
            r.push(rate, b, &mut out).expect("push");
        }
        r.finish(&mut out).expect("finish");
        out.into_iter().collect()
    }

    /// Phase lead (in 16 kHz samples) and amplitude of a `freq` Hz tone in `out`.
    fn tone_phase(out: &[f32], freq: f64) -> (f64, f64) {
        let (mut si, mut co) = (0.0f64, 0.0f64);
        for (i, x) in out.iter().enumerate().take(18000).skip(2000) {
            let w = 2.0 * std::f64::consts::PI * freq * i as f64 / 16000.0;
            si += f64::from(*x) * w.sin();
            co += f64::from(*x) * w.cos();
        }
        let lead = co.atan2(si) / (2.0 * std::f64::consts::PI * freq) * 16000.0;
        let amplitude = 2.0 * si.hypot(co) / 16000.0;
        (lead, amplitude)
    }

    #[test]
    fn lengths_are_exact_and_phase_is_aligned() {
        // (rate, uses the FFT resampler)
        let rates = [
            (8000u32, true),
            (11025, true),
            (16000, true),
            (22050, true),
            (44100, true),
            (48000, true),
            (96000, true),
            (384_000, true),
            (44101, false),
            (7999, false),
            (1000, true),
            (1001, false),
        ];
        for (rate, fft) in rates {
            // Well inside the pass band of every rate under test.
            let freq = if rate >= 4000 { 440.0 } else { 110.0 };
            let input = sine(rate, freq, 1.3);
            let out = run(rate, &input, 777);
            let expected = (input.len() as u64 * 16000).div_ceil(u64::from(rate)) as usize;
            assert_eq!(out.len(), expected, "rate {rate}");
            let (lead, amplitude) = tone_phase(&out, f64::from(freq));
            assert!(
                (amplitude - 0.5).abs() < 0.005,
                "rate {rate}: amplitude {amplitude}"
            );
            if fft {
                // Delay compensation must line the phases up exactly.
                let ideal = sine(16000, freq, 1.3);
                let mse = out[2000..18000]
                    .iter()
                    .zip(&ideal[2000..18000])
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f32>()
                    / 16000.0;
                assert!(mse < 1e-6, "rate {rate}: mean squared error {mse}");
                assert!(lead.abs() < 0.01, "rate {rate}: phase lead {lead}");
            } else {
                // The sinc fallback is aligned to within one output sample (62.5 µs).
                eprintln!("rate {rate}: phase lead {lead:.3}");
                assert!(lead.abs() <= 1.0, "rate {rate}: phase lead {lead}");
            }
        }
    }

    #[test]
    fn rate_change_flushes() {
        let mut r = MonoResampler::new();
        let mut out = VecDeque::new();
        r.push(8000, &sine(8000, 300.0, 0.5), &mut out)
            .expect("push");
        r.push(48000, &sine(48000, 300.0, 0.5), &mut out)
            .expect("push");
        r.finish(&mut out).expect("finish");
        assert_eq!(out.len(), 16000);
    }

    #[test]
    fn absurdly_low_rates_are_rejected() {
        for rate in [0, 1, 999] {
            let mut r = MonoResampler::new();
            let mut out = VecDeque::new();
            let e = r.push(rate, &[0.0; 10], &mut out).expect_err("low rate");
            assert_eq!(e.code(), "corrupt");
        }
    }
}
