//! What the API adds to a stored job: queue position, ETA and notices.

use rusqlite::Connection;

use crate::db::now;
use crate::error::Result;
use crate::jobs::{self, Engine, Job, Kind, State};
use crate::state::EnginesUp;

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
