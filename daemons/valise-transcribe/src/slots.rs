//! Fair turns at the CPU.
//!
//! Whisper saturates every core it is given, so running two whisper computations at once only
//! makes both slower. Instead, jobs run concurrently but take *turns*: a job holds a compute
//! slot for one batch of speech (at most ~30 s of audio), then queues again behind whoever
//! asked in the meantime. First come, first served per turn, so a one-minute voice message
//! submitted during a two-hour meeting waits for one batch, not for the meeting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug)]
pub struct ComputeSlots {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug)]
struct State {
    free: u32,
    next_ticket: u64,
    queue: VecDeque<u64>,
}

/// A turn; released on drop.
#[derive(Debug)]
pub struct Turn<'a> {
    slots: &'a ComputeSlots,
}

impl ComputeSlots {
    pub fn new(slots: u32) -> Self {
        Self {
            state: Mutex::new(State {
                free: slots.max(1),
                next_ticket: 0,
                queue: VecDeque::new(),
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until it is this caller's turn (FIFO).
    pub fn acquire(&self) -> Turn<'_> {
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(ticket);
        while !(st.free > 0 && st.queue.front() == Some(&ticket)) {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.queue.pop_front();
        st.free -= 1;
        // The next in line may also fit if several slots are free.
        self.cv.notify_all();
        Turn { slots: self }
    }

    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        st.free += 1;
        drop(st);
        self.slots.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn turns_are_first_come_first_served() {
        let slots = Arc::new(ComputeSlots::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = slots.acquire();
        let mut handles = Vec::new();
        for i in 0..4 {
            let (s, o) = (slots.clone(), order.clone());
            handles.push(std::thread::spawn(move || {
                let _t = s.acquire();
                o.lock().unwrap().push(i);
            }));
            // Make the arrival order deterministic.
            while slots.waiting() < i + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(first);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }
}
