//! Password-guess throttling (sign-in and password change), in memory.
//!
//! An attempt is counted *before* its password is checked: [`Throttle::begin`] reserves it
//! under the lock, so a burst of simultaneous guesses cannot all pass a check made before
//! any of them has failed (issue 8, item 2). Beyond a key's free allowance only one attempt
//! at a time may be in flight, and only once the delay of the last failure has passed.
//!
//! Three kinds of key, so that a stranger cannot lock a real user out (item 4):
//!
//! | key | free failures | then |
//! | --- | --- | --- |
//! | (address, account) | `login_failures_before_throttle` (5) | 1 s, 2 s, 4 s ... up to 15 min |
//! | address | 20 | 1 s, 2 s ... up to 15 min |
//! | account, counted only from addresses that have not signed in to it in the last 30 days | 20 | 1 s, 2 s ... up to 1 min |
//!
//! The real user, at an address they signed in from recently, is counted under neither the
//! stranger's address nor the account-wide key, so they sign in at once whatever a stranger
//! did; the account-wide key still slows a guesser spread over many addresses, but only to
//! one guess a minute, never to a lock-out. IPv6 addresses count by their /64 (one host gets
//! a whole /64). A success forgets the (address, account) key only: signing in to one's own
//! account must not reset an address's count of guesses at others.
//!
//! A restart forgets every counter, which costs an attacker a reboot of the box per free
//! allowance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Free failures per address, over all accounts.
pub const ADDRESS_FREE: u32 = 20;
/// Free failures per account from addresses that are not the account's usual ones.
pub const ACCOUNT_FREE: u32 = 20;
/// How recent a successful sign-in from an address must be for it to count as usual.
pub const USUAL_ADDRESS_DAYS: i64 = 30;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const ACCOUNT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Entries idle for this long after their delay are forgotten (bounds the map).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Policy {
    free: u32,
    max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, String),
    Address(String),
    Account(String),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    in_flight: u32,
    /// No attempt beyond the free allowance before this.
    until: Instant,
    /// Whether a refusal since the last failure was already reported (audited once).
    refusal_reported: bool,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            until: now,
            refusal_reported: false,
        }
    }

    /// Seconds to wait, if this key refuses an attempt now.
    fn wait(&self, free: u32, now: Instant) -> Option<u64> {
        if self.failures + self.in_flight < free {
            return None;
        }
        if self.in_flight == 0 && now >= self.until {
            return None;
        }
        // In flight beyond the allowance: the next try waits at least a second.
        Some(self.until.saturating_duration_since(now).as_secs().max(1))
    }
}

/// The network an address counts as: itself for IPv4, its /64 for IPv6.
pub fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds before the next attempt may be made.
    pub wait_secs: u64,
    /// The first refusal since the last failure (the one worth an audit entry).
    pub first: bool,
}

#[derive(Debug)]
pub struct Throttle {
    pair: Policy,
    address: Policy,
    account: Policy,
    map: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// `free`: failures allowed per (address, account) pair before delays start.
    pub fn new(free: u32) -> Self {
        Self {
            pair: Policy {
                free,
                max_delay: MAX_DELAY,
            },
            address: Policy {
                free: ADDRESS_FREE,
                max_delay: MAX_DELAY,
            },
            account: Policy {
                free: ACCOUNT_FREE,
                max_delay: ACCOUNT_MAX_DELAY,
            },
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves an attempt to guess `account`'s password from `ip`, before the password is
    /// checked. `usual`: `ip` signed in to `account` successfully in the last
    /// [`USUAL_ADDRESS_DAYS`] days. The attempt must end in [`Attempt::failed`] or
    /// [`Attempt::succeeded`]; dropped unresolved, it counts as failed.
    pub fn begin(
        &self,
        ip: Option<IpAddr>,
        account: &str,
        usual: bool,
    ) -> Result<Attempt<'_>, Refused> {
        let net = ip.map_or_else(|| "-".to_owned(), network);
        let account = account.to_lowercase();
        let mut keys = vec![
            (Key::Pair(net.clone(), account.clone()), self.pair),
            (Key::Address(net), self.address),
        ];
        if !usual {
            keys.push((Key::Account(account), self.account));
        }
        let Ok(mut map) = self.map.lock() else {
            return Err(Refused {
                wait_secs: 1,
                first: false,
            });
        };
        let now = Instant::now();
        if map.len() > MAX_ENTRIES {
            map.retain(|_, e| {
                e.in_flight > 0 || now.saturating_duration_since(e.until) < FORGET_AFTER
            });
        }
        let mut refused: Option<Refused> = None;
        for (k, p) in &keys {
            let Some(e) = map.get_mut(k) else { continue };
            if e.in_flight == 0 && now.saturating_duration_since(e.until) > FORGET_AFTER {
                *e = Entry::new(now);
            }
            if let Some(wait) = e.wait(p.free, now) {
                let first = !e.refusal_reported;
                e.refusal_reported = true;
                let r = refused.get_or_insert(Refused {
                    wait_secs: 0,
                    first: false,
                });
                r.wait_secs = r.wait_secs.max(wait);
                r.first |= first;
            }
        }
        if let Some(r) = refused {
            return Err(r);
        }
        for (k, _) in &keys {
            map.entry(k.clone())
                .or_insert_with(|| Entry::new(now))
                .in_flight += 1;
        }
        Ok(Attempt {
            throttle: self,
            keys,
            done: false,
        })
    }

    fn finish(&self, keys: &[(Key, Policy)], failed: bool) {
        let Ok(mut map) = self.map.lock() else { return };
        let now = Instant::now();
        for (k, p) in keys {
            let Some(e) = map.get_mut(k) else { continue };
            e.in_flight = e.in_flight.saturating_sub(1);
            if failed {
                e.failures = e.failures.saturating_add(1);
                e.refusal_reported = false;
                if e.failures >= p.free {
                    // The allowance used up: 1 s after it, then twice as long each time.
                    let exp = (e.failures - p.free).min(20);
                    e.until = now + Duration::from_secs(1u64 << exp).min(p.max_delay);
                }
            } else if matches!(k, Key::Pair(..)) && e.in_flight == 0 {
                map.remove(k);
            }
        }
    }
}

/// An attempt reserved by [`Throttle::begin`].
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: Vec<(Key, Policy)>,
    done: bool,
}

impl Attempt<'_> {
    pub fn failed(mut self) {
        self.done = true;
        self.throttle.finish(&self.keys, true);
    }

    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle.finish(&self.keys, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.keys, true);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn throttles_the_pair_after_the_free_failures_and_clears_it_on_success() {
        let t = Throttle::new(3);
        for _ in 0..3 {
            t.begin(ip("10.0.0.1"), "alice", false).unwrap().failed();
        }
        let r = t.begin(ip("10.0.0.1"), "alice", false).unwrap_err();
        assert!(r.first && r.wait_secs >= 1);
        assert!(!t.begin(ip("10.0.0.1"), "Alice", false).unwrap_err().first);
        t.begin(ip("10.0.0.1"), "bob", false)
            .expect("other accounts from the same address are not affected")
            .succeeded();
        t.begin(ip("10.0.0.2"), "alice", true)
            .expect("the account from another address is not affected")
            .succeeded();
    }

    #[test]
    fn simultaneous_attempts_are_counted_before_they_are_checked() {
        let t = Throttle::new(5);
        let held: Vec<_> = (0..5)
            .map(|_| t.begin(ip("10.0.0.1"), "alice", false).unwrap())
            .collect();
        assert!(
            t.begin(ip("10.0.0.1"), "alice", false).is_err(),
            "a sixth attempt while five are in flight"
        );
        drop(held); // unresolved attempts count as failures
        assert!(t.begin(ip("10.0.0.1"), "alice", false).is_err());
    }

    #[test]
    fn a_stranger_elsewhere_slows_the_account_but_not_its_usual_address() {
        let t = Throttle::new(5);
        for i in 0..ACCOUNT_FREE {
            // One stranger spread over many addresses, 1 guess each.
            t.begin(ip(&format!("10.1.0.{i}")), "admin", false)
                .unwrap()
                .failed();
        }
        let r = t.begin(ip("10.1.1.1"), "admin", false).unwrap_err();
        assert!(r.wait_secs <= 60, "account-wide delays stop at a minute");
        t.begin(ip("10.0.0.9"), "admin", true)
            .expect("the usual address is not counted account-wide")
            .succeeded();
    }

    #[test]
    fn an_address_is_limited_over_all_accounts_and_ipv6_counts_by_64() {
        let t = Throttle::new(5);
        for i in 0..ADDRESS_FREE {
            t.begin(
                ip(&format!("2001:db8:1:2::{i:x}")),
                &format!("user{i}"),
                false,
            )
            .unwrap()
            .failed();
        }
        assert!(
            t.begin(ip("2001:db8:1:2:ffff::1"), "someone", true)
                .is_err()
        );
        assert!(t.begin(ip("2001:db8:1:3::1"), "someone", true).is_ok());
        assert_eq!(network("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }
}
