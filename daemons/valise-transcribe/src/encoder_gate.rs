//! Stops whisper.cpp before it encodes a batch a second time.
//!
//! whisper.cpp transcribes its input window by window: when the decoder's last timestamp
//! falls short of the input's end (the last words looked cut off), it seeks there and encodes
//! again. For one of our batches that second pass is a whole encoder window (the batch's
//! `audio_ctx`, up to 1488 frames, 0.45 s for base on two cores) spent on the batch's last
//! seconds. The pipeline would rather put those seconds at the front of the next batch, where
//! they cost their share of a window ([`crate::pipeline`]). The gate lets the first pass
//! through, and before the second one reads where the first pass's segments end: if that
//! leaves at most half the batch, it stops whisper.cpp there and says where; otherwise (no
//! segment, or most of the batch left) whisper.cpp goes on by itself.
//!
//! The only unsafe code of the daemon: whisper-rs offers no safe form of this callback.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use whisper_rs::FullParams;
use whisper_rs::whisper_rs_sys::{
    whisper_context, whisper_full_get_segment_t1_from_state, whisper_full_n_segments_from_state,
    whisper_state,
};

/// One whisper call's gate. Create it before the call's `FullParams` and keep it until the
/// call returns (whisper.cpp holds a pointer to it).
#[derive(Debug)]
pub(crate) struct EncoderGate {
    /// The batch's length, in whisper's centiseconds.
    batch_cs: i64,
    /// Whether a second pass may be stopped at all.
    stop: bool,
    passes: AtomicU32,
    /// Where the first pass's last segment ends (centiseconds into the batch) once stopped.
    stopped_at: AtomicI64,
}

impl EncoderGate {
    /// A gate for a batch of `batch_samples` at 16 kHz. With `stop` false it only counts.
    pub(crate) fn new(batch_samples: usize, stop: bool) -> Self {
        Self {
            batch_cs: (batch_samples / 160) as i64,
            stop,
            passes: AtomicU32::new(0),
            stopped_at: AtomicI64::new(-1),
        }
    }

    /// Puts the gate in front of each of whisper.cpp's encoder passes for the call made with
    /// `params`. `self` must outlive that call.
    pub(crate) fn install(&self, params: &mut FullParams<'_, '_>) {
        // SAFETY: whisper.cpp stores the function and the pointer in the call's parameters and
        // calls `begin` with them only during that call, on its thread; the caller keeps `self`
        // alive across the call (see `new`). `begin` only reads through the pointer (the
        // counters are atomics).
        unsafe {
            params.set_start_encoder_callback(Some(begin));
            params.set_start_encoder_callback_user_data(self as *const Self as *mut c_void);
        }
    }

    /// Encoder passes started (a stopped one included).
    pub(crate) fn passes(&self) -> u32 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Where whisper.cpp was stopped: the first pass's last segment end, in samples into the
    /// batch. `None` when it ran to the end by itself.
    pub(crate) fn stopped_at_sample(&self) -> Option<usize> {
        let cs = self.stopped_at.load(Ordering::Relaxed);
        (cs > 0).then(|| cs as usize * 160)
    }

    /// Whether to stop before pass `pass` (1-based), given where the segments so far end.
    fn decide(&self, pass: u32, last_t1_cs: Option<i64>) -> bool {
        if !self.stop || pass < 2 {
            return false;
        }
        // At least half the batch done: the carried tail is at most half a batch, and every
        // stopped call consumes at least half its input (no loop can carry forever).
        matches!(last_t1_cs, Some(t1) if t1 > 0 && 2 * t1 >= self.batch_cs)
    }
}

/// whisper.cpp's `encoder_begin_callback`: `true` lets the pass run.
unsafe extern "C" fn begin(
    _ctx: *mut whisper_context,
    state: *mut whisper_state,
    user_data: *mut c_void,
) -> bool {
    // SAFETY: `user_data` is the `EncoderGate` installed with this function, alive for the call
    // (`EncoderGate::install`).
    let gate = unsafe { &*(user_data as *const EncoderGate) };
    let pass = gate.passes.fetch_add(1, Ordering::Relaxed) + 1;
    if pass < 2 || !gate.stop {
        return true;
    }
    // SAFETY: `state` is the call's own state, which whisper.cpp passes for this purpose;
    // reading its segment list between passes is what the whisper.h accessors are for.
    let last_t1 = unsafe {
        let n = whisper_full_n_segments_from_state(state);
        (n > 0).then(|| whisper_full_get_segment_t1_from_state(state, n - 1))
    };
    if gate.decide(pass, last_t1) {
        gate.stopped_at
            .store(last_t1.unwrap_or(-1), Ordering::Relaxed);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_only_a_second_pass_that_leaves_at_most_half_the_batch() {
        let gate = EncoderGate::new(28 * 16_000, true);
        assert!(!gate.decide(1, Some(2_000)), "the first pass always runs");
        assert!(gate.decide(2, Some(2_500)), "3 s left of 28: carried");
        assert!(gate.decide(2, Some(1_400)), "exactly half left: carried");
        assert!(
            !gate.decide(2, Some(1_000)),
            "18 s left: whisper.cpp goes on"
        );
        assert!(!gate.decide(2, None), "no segment: whisper.cpp goes on");
        assert!(!gate.decide(2, Some(0)));
        let counting = EncoderGate::new(28 * 16_000, false);
        assert!(
            !counting.decide(2, Some(2_500)),
            "a counting gate never stops"
        );
        assert_eq!(gate.stopped_at_sample(), None);
    }
}
