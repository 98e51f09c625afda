//! One model's sentences from every request, decoded together.
//!
//! Each model has `workers_per_model` session pairs and as many worker threads here. A
//! request hands its tokenized sentences (sorted by length) to the model's batcher and waits.
//! Each worker decodes continuously (`model::Decoding`): between two decoder steps it lets
//! waiting sentences join its batch, round-robin over the requests in flight, and hands each
//! sentence back the moment it is finished:
//!
//! ```text
//!  request A (a document, 300 sentences)  ─┐            ┌─▶ worker 1: [A0..A15] ─ A3 done, B0 joins ─▶ …
//!  request B (1 sentence)                  ├─▶ queue ───┤
//!  request C (1 sentence)                 ─┘            └─▶ worker 2: [C0, A16..] ─ …
//! ```
//!
//! - Throughput: a step costs about the same for 1 row as for 4, so the batch is kept full:
//!   a finished sentence's slot is taken by the next waiting one instead of idling until the
//!   longest sentence of the batch is done, and one-sentence requests arriving together share
//!   steps. One document keeps every session pair busy, not just one.
//! - Fairness: joining starts with the next request in turn, so a short request waits for a
//!   free slot (at most one sentence's decoding), never for a whole document.
//! - Exactness: rows of a batch are restricted to their own shortlists (`model.rs`), so which
//!   sentences share a batch never changes a translation (tested: batched == batch 1).
//! - Deadlines: a request past its deadline gets no more slots and its rows leave the
//!   batches at the next step; it ends `timed_out`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::TranslateError;
use crate::engine::Deadline;
use crate::model::{Decoded, Decoding, MarianModel};

#[derive(Debug)]
pub struct Batcher {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    model: Arc<MarianModel>,
    batch_size: usize,
    state: Mutex<State>,
    /// Workers wait here for sentences.
    work: Condvar,
    /// Requests wait here for their results.
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    jobs: VecDeque<Job>,
    next_id: u64,
    stop: bool,
}

#[derive(Debug)]
struct Job {
    id: u64,
    /// (index in the request, token ids), sorted by length; the ids of a taken row are moved
    /// to the worker (left empty here).
    rows: Vec<(usize, Vec<u32>)>,
    /// Rows handed to workers so far (a prefix of `rows`).
    taken: usize,
    /// Rows handed out and not back yet.
    in_flight: usize,
    results: Vec<Option<Decoded>>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl Job {
    fn waiting(&self) -> bool {
        self.taken < self.rows.len()
    }

    /// Rows not handed to a worker yet.
    fn waiting_rows(&self) -> usize {
        self.rows.len() - self.taken
    }

    fn finished(&self) -> bool {
        !self.waiting() && self.in_flight == 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Batcher {
    /// Starts `workers` threads for `model` (one per session pair of the model). Fails if the
    /// system refuses a thread (the threads already started are stopped).
    pub fn start(
        model: Arc<MarianModel>,
        workers: usize,
        batch_size: usize,
    ) -> Result<Self, TranslateError> {
        let shared = Arc::new(Shared {
            model,
            batch_size: batch_size.max(1),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let mut batcher = Self {
            shared,
            threads: Vec::new(),
        };
        for i in 0..workers.max(1) {
            let s = batcher.shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("translate-{i}"))
                .spawn(move || worker(&s))
                .map_err(|e| {
                    TranslateError::Internal(format!("cannot start a translation thread: {e}"))
                })?;
            batcher.threads.push(t);
        }
        Ok(batcher)
    }

    /// Translates `rows` (token ids per sentence) and returns one result per row, in order.
    /// Blocks until every row is back, or fails with `timed_out` once `deadline` has passed.
    pub fn translate(
        &self,
        rows: Vec<Vec<u32>>,
        deadline: Option<Deadline>,
    ) -> Result<Vec<Decoded>, TranslateError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let n = rows.len();
        let mut indexed: Vec<(usize, Vec<u32>)> = rows.into_iter().enumerate().collect();
        indexed.sort_by_key(|(_, ids)| ids.len());
        let mut st = self.shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.jobs.push_back(Job {
            id,
            rows: indexed,
            taken: 0,
            in_flight: 0,
            results: (0..n).map(|_| None).collect(),
            deadline: deadline.map(|d| d.at),
            timed_out: false,
        });
        self.shared.work.notify_all();
        loop {
            let pos = st.jobs.iter().position(|j| j.id == id);
            let Some(pos) = pos else {
                return Err(TranslateError::Internal(
                    "a translation request was lost".into(),
                ));
            };
            if st.jobs[pos].finished() {
                let job = st.jobs.remove(pos).unwrap_or_else(|| unreachable!());
                if job.timed_out
                    && let Some(d) = deadline
                {
                    return Err(d.error());
                }
                return Ok(job
                    .results
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| Err(TranslateError::Internal("sentence lost".into())))
                    })
                    .collect());
            }
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Rows joining a worker's batch: (job id, row index in the request) and the token ids, as
/// `Decoding::add` takes them.
type Batch = Vec<((u64, usize), Vec<u32>)>;

/// Free slots from which a worker lets waiting rows join: a quarter of the batch, so that
/// joining rows share one encoder run instead of one run each, and an emptied batch refills.
fn join_threshold(batch_size: usize) -> usize {
    (batch_size / 4).max(1)
}

/// A worker decoding at least this many rows lets waiting sentences gather until there are
/// [`JOIN_WANT`] of them or [`MAX_DEFERRED_STEPS`] steps (about 5 ms) have passed: the packed
/// encoder costs less per sentence for three than for one, and the rows being decoded keep
/// the worker busy meanwhile. A worker with fewer rows takes them at once (no added latency
/// for a lone user). Measured with 8 clients sending one sentence each (bench-translate,
/// same run): joining at once 227 sentences/s; gathering 2 or 4 steps 250; 3 or 8 steps 265
/// (282 in another run); 4 or 12 steps 264; 3 or 16 steps 257.
const DEFER_WHEN_DECODING: usize = 2;
const JOIN_WANT: usize = 3;
const MAX_DEFERRED_STEPS: usize = 8;

/// Whether a worker decoding `decoding` rows, with `waiting` rows queued, lets them join now.
fn join_now(decoding: usize, waiting: usize, deferred_steps: usize) -> bool {
    waiting > 0
        && (decoding < DEFER_WHEN_DECODING
            || waiting >= JOIN_WANT
            || deferred_steps >= MAX_DEFERRED_STEPS)
}

fn worker(s: &Shared) {
    let mut dec: Decoding<'_, (u64, usize)> = Decoding::new(&s.model);
    let mut deferred = 0;
    loop {
        let (joining, expired) = {
            let mut st = s.lock();
            loop {
                if st.stop {
                    return;
                }
                if expire(&mut st) {
                    s.done.notify_all();
                }
                let free = s.batch_size.saturating_sub(dec.len());
                let waiting: usize = st.jobs.iter().map(Job::waiting_rows).sum();
                if (free >= join_threshold(s.batch_size) || dec.is_empty())
                    && join_now(dec.len(), waiting, deferred)
                    && let Some(batch) = next_batch(&mut st, free)
                {
                    deferred = 0;
                    break (Some(batch), timed_out_jobs(&st));
                }
                if !dec.is_empty() {
                    if waiting > 0 {
                        deferred += 1;
                    }
                    break (None, timed_out_jobs(&st));
                }
                st = s.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut finished: Vec<((u64, usize), Option<Decoded>)> = Vec::new();
        if !expired.is_empty() {
            finished.extend(
                dec.remove_where(|(job, _)| expired.contains(job))
                    .into_iter()
                    .map(|owner| (owner, None)),
            );
        }
        if let Some(rows) = joining {
            for (owner, r) in dec.add(rows) {
                finished.push((owner, Some(r)));
            }
        }
        for (owner, r) in dec.step() {
            finished.push((owner, Some(r)));
        }
        if finished.is_empty() {
            continue;
        }
        let mut st = s.lock();
        for ((job_id, index), result) in finished {
            if let Some(job) = st.jobs.iter_mut().find(|j| j.id == job_id) {
                // A row dropped for the deadline has no result: the job ends timed_out.
                job.results[index] = result;
                job.in_flight -= 1;
            }
        }
        s.done.notify_all();
    }
}

/// Ids of the requests that ran past their deadline.
fn timed_out_jobs(st: &State) -> Vec<u64> {
    st.jobs
        .iter()
        .filter(|j| j.timed_out && j.in_flight > 0)
        .map(|j| j.id)
        .collect()
}

/// Requests past their deadline get no more slots; true when one just expired.
fn expire(st: &mut State) -> bool {
    let now = Instant::now();
    let mut any = false;
    for job in st.jobs.iter_mut() {
        if !job.timed_out && !job.finished() && job.deadline.is_some_and(|d| now > d) {
            job.taken = job.rows.len();
            job.timed_out = true;
            any = true;
        }
    }
    any
}

/// Up to `size` rows: first from the request whose turn it is (which then goes to the back
/// of the line), then from the others in order.
fn next_batch(st: &mut State, size: usize) -> Option<Batch> {
    if size == 0 {
        return None;
    }
    let first = st.jobs.iter().position(Job::waiting)?;
    // The request served now goes to the back of the line.
    let job = st.jobs.remove(first)?;
    st.jobs.push_back(job);
    let order: Vec<usize> = std::iter::once(st.jobs.len() - 1)
        .chain(0..st.jobs.len() - 1)
        .collect();
    let mut batch = Vec::with_capacity(size);
    for i in order {
        let job = &mut st.jobs[i];
        while batch.len() < size && job.waiting() {
            // Handed over, not copied: a taken row is never read again.
            let (index, ids) = &mut job.rows[job.taken];
            batch.push(((job.id, *index), std::mem::take(ids)));
            job.taken += 1;
            job.in_flight += 1;
        }
        if batch.len() == size {
            break;
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, lens: &[usize]) -> Job {
        Job {
            id,
            rows: lens
                .iter()
                .enumerate()
                .map(|(i, &l)| (i, vec![1; l]))
                .collect(),
            taken: 0,
            in_flight: 0,
            results: lens.iter().map(|_| None).collect(),
            deadline: None,
            timed_out: false,
        }
    }

    fn ids(b: &Batch) -> Vec<u64> {
        b.iter().map(|((j, _), _)| *j).collect()
    }

    #[test]
    fn batches_take_turns_and_fill_up_with_other_requests() {
        let mut st = State::default();
        st.jobs.push_back(job(1, &[3; 10])); // a document
        st.jobs.push_back(job(2, &[2])); // two single sentences
        st.jobs.push_back(job(3, &[5]));
        let b = next_batch(&mut st, 4).unwrap();
        assert_eq!(ids(&b), [1, 1, 1, 1]);
        // Request 1 went to the back: the two single sentences go next, topped up with it.
        let b = next_batch(&mut st, 4).unwrap();
        assert_eq!(ids(&b), [2, 3, 1, 1]);
        let b = next_batch(&mut st, 4).unwrap();
        assert_eq!(ids(&b), [1, 1, 1, 1]);
        assert!(
            next_batch(&mut st, 4).is_none(),
            "every row is handed out once"
        );
        let total: usize = st.jobs.iter().map(|j| j.in_flight).sum();
        assert_eq!(total, 12);
    }

    #[test]
    fn a_lone_sentence_waits_a_few_steps_for_company_only_when_the_worker_is_busy() {
        assert!(join_now(0, 1, 0), "an idle worker takes it at once");
        assert!(join_now(1, 1, 0), "so does one decoding a single row");
        assert!(!join_now(5, 1, 0), "a busy one waits");
        assert!(!join_now(5, JOIN_WANT - 1, 0), "for company");
        assert!(join_now(5, JOIN_WANT, 0), "until enough sentences wait");
        assert!(
            join_now(5, 1, MAX_DEFERRED_STEPS),
            "or a few steps have passed"
        );
        assert!(!join_now(5, 0, 9), "nothing to join");
    }

    #[test]
    fn a_request_past_its_deadline_gets_no_more_batches() {
        let mut st = State::default();
        let mut j = job(1, &[3; 5]);
        j.deadline = Some(Instant::now() - std::time::Duration::from_secs(1));
        j.taken = 2;
        j.in_flight = 2;
        st.jobs.push_back(j);
        assert!(expire(&mut st));
        assert!(st.jobs[0].timed_out);
        assert!(next_batch(&mut st, 4).is_none());
        assert!(!st.jobs[0].finished(), "still waits for its rows in flight");
    }
}
