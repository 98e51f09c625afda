//! What the API adds to a stored job: queue position, ETA and notices.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::db::now;
use crate::error::Result;
use crate::jobs::{self, Engine, Job, Kind, State};
use crate::state::EnginesUp;

/// What the transcription engine said of a running job at its last poll.
#[derive(Debug, Clone, Copy)]
struct Live {
    at: Instant,
    position_secs: Option<f64>,
    eta_secs: Option<f64>,
}

/// The engine's own view of running jobs, by portal job id: where it is in the recording and
/// the time left it estimates from its recent speed (`JobStatus::eta_secs`). In memory only:
/// it is refreshed at every poll, and a restart loses nothing worth keeping.
#[derive(Debug, Default)]
pub struct LiveJobs(Mutex<HashMap<String, Live>>);

impl LiveJobs {
    /// Entries not refreshed for this long (a job deleted while running) are dropped.
    const STALE: Duration = Duration::from_secs(600);

    /// Records what the engine said of running job `id`.
    pub fn update(&self, id: &str, position_secs: Option<f64>, eta_secs: Option<f64>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, l| l.at.elapsed() < Self::STALE);
        m.insert(
            id.to_owned(),
            Live {
                at: Instant::now(),
                position_secs,
                eta_secs,
            },
        );
    }

    /// The job is no longer running.
    pub fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Running jobs of `list` get the engine's time left (less the time since it said so) and
    /// position, where the engine gave them; the others keep [`decorate`]'s estimate.
    pub fn apply(&self, list: &mut [Job]) {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for job in list.iter_mut().filter(|j| j.state == State::Running) {
            let Some(l) = m.get(&job.id) else { continue };
            job.position_secs = l.position_secs;
            if let Some(eta) = l.eta_secs {
                let left = (eta - l.at.elapsed().as_secs_f64()).max(0.0);
                job.eta_secs = Some(left.ceil() as u64);
            }
        }
    }
}

/// Fills `queue_position`, `eta_secs` and `notice` of `list` (all jobs of one owner).
pub fn decorate(c: &Connection, list: &mut [Job], up: EnginesUp, in_flight: u32) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let queued = jobs::of_state(c, State::Queued)?;
    let running = jobs::of_state(c, State::Running)?;
    for engine in [Engine::Transcribe, Engine::Translate] {
        let q: Vec<Job> = queued
            .iter()
            .filter(|j| j.kind.engine() == engine)
            .cloned()
            .collect();
        let r: Vec<Job> = running
            .iter()
            .filter(|j| j.kind.engine() == engine)
            .cloned()
            .collect();
        let order = jobs::fair_order(&q, &r);
        let engine_up = match engine {
            Engine::Transcribe => up.transcribe,
            Engine::Translate => up.translate,
        };
        for job in list.iter_mut().filter(|j| j.kind.engine() == engine) {
            match job.state {
                State::Queued => {
                    let pos = order.iter().position(|id| *id == job.id).map(|p| p + 1);
                    job.queue_position = pos;
                    if let (Some(p), Some(mean)) = (pos, jobs::mean_run_secs(c, job.kind)?) {
                        let slots = if job.kind == Kind::Transcription {
                            in_flight.max(1)
                        } else {
                            1
                        };
                        job.eta_secs = Some((mean * p as f64 / f64::from(slots)).ceil() as u64);
                    }
                    if !engine_up {
                        job.notice = Some("engine_unavailable".into());
                    }
                }
                State::Running => {
                    if let Some(start) = job.started_at {
                        let elapsed = (now() - start).max(0) as f64;
                        if job.progress > 0.02 {
                            job.eta_secs =
                                Some((elapsed * (1.0 - job.progress) / job.progress).ceil() as u64);
                        }
                    }
                    if !engine_up {
                        job.notice = Some("engine_unavailable".into());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
