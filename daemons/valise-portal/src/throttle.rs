//! Sign-in throttling: after `free` failures for an account or from an address, each further
//! attempt must wait twice as long as the previous one (1 s, 2 s, 4 s ... up to 15 minutes).
//! A success clears the account's and the address's counters. In memory: a restart forgets
//! the counters, which costs an attacker a reboot of the box per `free` guesses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Entries not touched for this long are forgotten (bounds the map).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct Throttle {
    free: u32,
    map: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub fn new(free: u32) -> Self {
        Self {
            free,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait before `keys` may try again, if any must wait.
    pub fn check(&self, keys: &[&str]) -> Option<u64> {
        let map = self.map.lock().ok()?;
        let now = Instant::now();
        keys.iter()
            .filter_map(|k| map.get(*k))
            .filter(|(_, until)| *until > now)
            .map(|(_, until)| (*until - now).as_secs().max(1))
            .max()
    }

    pub fn failed(&self, keys: &[&str]) {
        let Ok(mut map) = self.map.lock() else { return };
        let now = Instant::now();
        if map.len() > MAX_ENTRIES {
            map.retain(|_, (_, until)| now.duration_since(*until) < FORGET_AFTER);
        }
        for k in keys {
            let e = map.entry((*k).to_owned()).or_insert((0, now));
            if now.duration_since(e.1) > FORGET_AFTER {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = if e.0 > self.free {
                let exp = (e.0 - self.free - 1).min(20);
                now + Duration::from_secs(1u64 << exp).min(MAX_DELAY)
            } else {
                now
            };
        }
    }

    pub fn succeeded(&self, keys: &[&str]) {
        if let Ok(mut map) = self.map.lock() {
            for k in keys {
                map.remove(*k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_the_free_failures_and_clears_on_success() {
        let t = Throttle::new(3);
        for _ in 0..3 {
            assert_eq!(t.check(&["u:alice"]), None);
            t.failed(&["u:alice"]);
        }
        assert_eq!(t.check(&["u:alice"]), None, "three free failures");
        t.failed(&["u:alice"]);
        assert!(
            t.check(&["u:alice"]).is_some(),
            "the fourth failure throttles"
        );
        assert_eq!(t.check(&["u:bob"]), None, "other accounts are not affected");
        t.failed(&["u:alice"]);
        assert!(t.check(&["u:alice"]).unwrap() >= 1);
        t.succeeded(&["u:alice"]);
        assert_eq!(t.check(&["u:alice"]), None);
    }
}
