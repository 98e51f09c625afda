//! When the next check runs: `startup_delay + random(0..=random_delay)` after start, then
//! `interval + random(0..=random_delay)` after each check (scheduled or asked for), so ~200
//! boxes spread their requests and a box that was off for weeks checks soon after boot.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::Rng;

use crate::config::Config;

/// The delay before the next check.
pub fn delay(base_secs: u64, random_delay_secs: u64, rng: &mut impl Rng) -> Duration {
    Duration::from_secs(base_secs + rng.random_range(0..=random_delay_secs))
}

/// The time of the next scheduled check (unix seconds; 0 while none is planned).
#[derive(Debug, Clone, Default)]
pub struct NextCheck(Arc<AtomicI64>);

impl NextCheck {
    pub fn set_after(&self, d: Duration) {
        let at = time::OffsetDateTime::now_utc().unix_timestamp() + d.as_secs() as i64;
        self.0.store(at, Ordering::Relaxed);
    }
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// Runs forever: waits, asks for a check through `check` (which returns when it is done),
/// waits again. A check asked for on demand resets the wait through `reset`.
pub async fn run<F, Fut>(config: Config, next: NextCheck, reset: Arc<tokio::sync::Notify>, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut wait = delay(
        config.startup_delay_secs,
        config.random_delay_secs,
        &mut rand::rng(),
    );
    loop {
        next.set_after(wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => check().await,
            _ = reset.notified() => {}
        }
        wait = delay(
            config.interval_secs,
            config.random_delay_secs,
            &mut rand::rng(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_window_and_spread() {
        let mut rng = rand::rng();
        let ds: Vec<u64> = (0..200)
            .map(|_| delay(100, 50, &mut rng).as_secs())
            .collect();
        assert!(ds.iter().all(|d| (100..=150).contains(d)));
        let distinct: std::collections::BTreeSet<_> = ds.iter().collect();
        assert!(distinct.len() > 10, "random, not fixed: {distinct:?}");
        assert_eq!(delay(7, 0, &mut rng), Duration::from_secs(7));
    }
}
