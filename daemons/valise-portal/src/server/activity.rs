//! What one connection is doing, shared between its task, its requests' bodies and the
//! admission control that may ask it to give way.
//!
//! "Progress" is a request starting or ending, or request-body bytes arriving; bytes that
//! carry no request (HTTP/2 pings, TLS records) are not progress, so they keep nothing open.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Milliseconds on a monotonic clock (since the first call).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Debug, Default)]
pub struct Activity {
    /// `now_ms()` of the last progress.
    last: AtomicU64,
    /// Requests whose answer is not finished.
    requests: AtomicU32,
    /// Of those, the ones whose request body is still arriving.
    receiving: AtomicU32,
    evicted: AtomicBool,
    evict: Notify,
}

impl Activity {
    pub fn new() -> Self {
        let a = Self::default();
        a.touch();
        a
    }

    pub fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }

    /// Time since the last progress.
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    /// May give way to a new connection: nothing in flight that waits on the portal (idle,
    /// in its handshake, or only waiting for request bodies), and no progress for `min_idle`.
    pub fn evictable(&self, min_idle: Duration) -> bool {
        self.requests.load(Ordering::Relaxed) <= self.receiving.load(Ordering::Relaxed)
            && self.idle_for() >= min_idle
    }

    /// Asks the connection's task to close it.
    pub fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.evict.notify_one();
    }

    /// Resolves once `evict` was called.
    pub async fn evicted(&self) {
        if self.evicted.load(Ordering::Relaxed) {
            return;
        }
        self.evict.notified().await;
    }

    /// Marks a request in flight until the guard drops (with its answer's body).
    pub fn request(self: &std::sync::Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// Marks a request body as arriving until the guard drops or `done` is called.
    pub fn receiving(self: &std::sync::Arc<Self>) -> Receiving {
        self.receiving.fetch_add(1, Ordering::Relaxed);
        Receiving(Some(self.clone()))
    }
}

/// A request in flight (see [`Activity::request`]).
#[derive(Debug)]
pub struct InFlight(std::sync::Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A request body still arriving (see [`Activity::receiving`]).
#[derive(Debug)]
pub struct Receiving(Option<std::sync::Arc<Activity>>);

impl Receiving {
    /// A marker that counts nothing.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn activity(&self) -> Option<&Activity> {
        self.0.as_deref()
    }

    pub fn done(&mut self) {
        if let Some(a) = self.0.take() {
            a.receiving.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.done();
    }
}
