//! Fair turns at the CPU.
//!
//! Whisper saturates the cores it is given, so the box runs as many whisper computations at
//! once as it has slots (`compute_slots`), each on its share of the threads. Jobs run
//! concurrently but take *turns*: a batch of speech (at most ~30 s of audio) holds a slot, then
//! the job queues again behind whoever asked in the meantime; a batch that runs alone on every
//! thread holds every slot. First come, first served per turn, so a one-minute voice message
//! submitted during a two-hour meeting waits for one batch, not for the meeting.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug)]
pub struct ComputeSlots {
    width: u32,
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
    n: u32,
}

impl ComputeSlots {
    pub fn new(slots: u32) -> Self {
        Self {
            width: slots.max(1),
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
        self.acquire_n(1)
    }

    /// Blocks until it is this caller's turn (FIFO) and `n` slots are free (at most all of
    /// them): a computation that uses every core takes every slot.
    pub fn acquire_n(&self, n: u32) -> Turn<'_> {
        let n = n.clamp(1, self.width);
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(ticket);
        while !(st.free >= n && st.queue.front() == Some(&ticket)) {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.queue.pop_front();
        st.free -= n;
        // The next in line may also fit if several slots are free.
        self.cv.notify_all();
        Turn { slots: self, n }
    }

    /// How many slots there are.
    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        st.free += self.n;
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

    #[test]
    fn a_wide_turn_waits_for_every_slot_and_keeps_its_place() {
        let slots = Arc::new(ComputeSlots::new(2));
        assert_eq!(slots.width(), 2);
        let one = slots.acquire();
        // The wide turn (both slots) queues first; a narrow one after it does not overtake it
        // although a slot is free.
        let (s, order) = (slots.clone(), Arc::new(Mutex::new(Vec::new())));
        let o = order.clone();
        let wide = std::thread::spawn(move || {
            let _t = s.acquire_n(5); // clamped to the width
            o.lock().unwrap().push("wide");
        });
        while slots.waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (s, o) = (slots.clone(), order.clone());
        let narrow = std::thread::spawn(move || {
            let _t = s.acquire();
            o.lock().unwrap().push("narrow");
        });
        while slots.waiting() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(order.lock().unwrap().is_empty(), "nobody may run yet");
        drop(one);
        wide.join().unwrap();
        narrow.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["wide", "narrow"]);
        // Every slot came back.
        let _a = slots.acquire();
        let _b = slots.acquire();
    }
}
