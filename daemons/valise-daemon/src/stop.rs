//! A planned stop (SIGTERM: `systemctl stop|restart`, an update, a shutdown): an engine stops
//! taking work, then waits a bounded time for the work in flight before it exits. What that
//! work is differs (transcription jobs its clients must take note of, translation requests
//! in flight); the bounded wait is this.

use std::time::Duration;

use tokio::sync::Notify;

/// How long a stopping engine waits for its work in flight before it exits. Well under
/// systemd's `TimeoutStopSec` (90 s).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Waits until `pending()` is 0, counting again each time `wake` is notified, for at most
/// `grace`. Returns what was still pending when the grace ran out (0: all done in time).
pub async fn wait_drained(wake: &Notify, grace: Duration, pending: impl Fn() -> usize) -> usize {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        // Registered before counting, so a wake between the count and the wait is not lost.
        let woken = wake.notified();
        let left = pending();
        if left == 0 || tokio::time::timeout_at(deadline, woken).await.is_err() {
            return left;
        }
    }
}
