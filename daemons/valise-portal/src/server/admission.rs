//! Admission control: connections counted in all and per client address (an IPv6 client by
//! its /64, since one host holds a whole /64), and which connection gives way when full.
//!
//! A client that opens connections and sends nothing (or sends a byte now and then) must
//! not keep others out: when a limit is reached, the connection that has gone longest
//! without progress (and at least `min_idle`) is closed to make room; only when every
//! connection is busy is the new one refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::activity::Activity;

/// The unit counted per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrKey {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    let mut p = [0; 8];
                    p.copy_from_slice(&o[..8]);
                    Self::V6(p)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address holds `max_per_address` busy connections.
    Address,
    /// The portal holds `max` busy connections.
    Full,
}

#[derive(Debug)]
pub struct Admission {
    max: usize,
    max_per_address: usize,
    min_idle: Duration,
    inner: Mutex<Inner>,
    empty: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, (AddrKey, Arc<Activity>)>,
    per_address: HashMap<AddrKey, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Arc<Activity>> {
        let (key, activity) = self.conns.remove(&id)?;
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
        }
        Some(activity)
    }

    /// Closes the connection (of `key`, or any) that has gone longest without progress.
    fn evict_one(&mut self, key: Option<AddrKey>, min_idle: Duration) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, (k, a))| key.is_none_or(|key| *k == key) && a.evictable(min_idle))
            .max_by_key(|(_, (_, a))| a.idle_for())
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(a) => {
                a.evict();
                true
            }
            None => false,
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.admission.lock();
        g.remove(self.id);
        if g.conns.is_empty() {
            self.admission.empty.notify_waiters();
        }
    }
}

impl Admission {
    pub fn new(max: usize, max_per_address: usize, min_idle: Duration) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_address,
            min_idle,
            inner: Mutex::default(),
            empty: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, closing an idle one to make room if needed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let key = AddrKey::of(ip);
        let mut g = self.lock();
        if g.per_address.get(&key).copied().unwrap_or(0) >= self.max_per_address
            && !g.evict_one(Some(key), self.min_idle)
        {
            return Err(Refused::Address);
        }
        if g.conns.len() >= self.max && !g.evict_one(None, self.min_idle) {
            return Err(Refused::Full);
        }
        let id = g.next_id;
        g.next_id += 1;
        let activity = Arc::new(Activity::new());
        g.conns.insert(id, (key, activity.clone()));
        *g.per_address.entry(key).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            id,
            activity,
        })
    }

    pub fn count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Resolves once no connection is left.
    pub async fn drained(&self) {
        loop {
            let n = self.empty.notified();
            let mut n = std::pin::pin!(n);
            n.as_mut().enable();
            if self.lock().conns.is_empty() {
                return;
            }
            n.await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ipv6_counts_by_64_and_mapped_v4_as_v4() {
        let a = AddrKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = AddrKey::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = AddrKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            AddrKey::of("::ffff:10.0.0.1".parse().unwrap()),
            AddrKey::of("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn limits_evict_the_idle_and_refuse_when_all_are_busy() {
        let adm = Admission::new(3, 2, Duration::ZERO);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a1 = adm.admit(ip("10.0.0.1")).unwrap();
        let _busy1 = a1.activity.request();
        let a2 = adm.admit(ip("10.0.0.1")).unwrap();
        let _busy2 = a2.activity.request();
        // Both of this address's connections are busy: a third is refused.
        assert_eq!(adm.admit(ip("10.0.0.1")).unwrap_err(), Refused::Address);
        let b1 = adm.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(adm.count(), 3);
        // Full: the idle one (b1) gives way.
        let c1 = adm.admit(ip("10.0.0.3")).unwrap();
        assert!(b1.activity.evictable(Duration::ZERO));
        assert_eq!(adm.count(), 3);
        drop(b1);
        assert_eq!(adm.count(), 3);
        let _busy3 = c1.activity.request();
        assert_eq!(adm.admit(ip("10.0.0.4")).unwrap_err(), Refused::Full);
        drop((a1, a2, c1));
        assert_eq!(adm.count(), 0);
    }
}
