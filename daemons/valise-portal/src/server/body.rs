//! Request and answer bodies as the connection sees them.
//!
//! - A request body must arrive at `min_rate` bytes per second, measured over `window`
//!   (from the first time the handler reads it); a slower one is cut: the handler sees an
//!   error and the stream (HTTP/2) or connection (HTTP/1.1) is closed.
//! - A request body the handler did not read to its end (an upload refused before it was
//!   read: 413, 429, 401, 403) is read and dropped after the answer is produced, up to
//!   [`DRAIN_MAX`] bytes or [`DRAIN_TIME`], so that the client, still sending, reads the
//!   answer instead of a reset connection (a socket closed with unread bytes sends RST).
//! - An answer's body holds its request "in flight" until it is sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::BoxError;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::activity::{InFlight, Receiving};

/// Unread request bytes read and dropped after an early answer, at most.
pub const DRAIN_MAX: u64 = 64 << 20;
/// ... and for at most this long.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    /// Bytes per second.
    pub min_rate: u64,
    pub window: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {0} bytes per second")]
pub struct TooSlow(u64);

/// Where a request's unread body goes when the handler drops it.
#[derive(Debug, Clone, Default)]
pub struct Handoff(Arc<Mutex<(bool, Option<GuardedBody>)>>);

impl Handoff {
    /// The answer is produced: drain what the handler left (now or when it drops the body).
    pub fn answered(&self) {
        let rest = {
            let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            g.0 = true;
            g.1.take()
        };
        if let Some(rest) = rest {
            tokio::spawn(rest.drain());
        }
    }

    fn give(&self, rest: GuardedBody) {
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if g.0 {
            drop(g);
            tokio::spawn(rest.drain());
        } else {
            g.1 = Some(rest);
        }
    }
}

/// A request body under the rate guard (see the module's text).
#[derive(Debug)]
pub struct GuardedBody {
    inner: Option<Incoming>,
    rate: BodyRate,
    /// Bytes received in the current window, and its end (from the first read).
    window_bytes: u64,
    window_end: Option<Pin<Box<Sleep>>>,
    receiving: Receiving,
    handoff: Option<Handoff>,
    /// The client waits for `100 Continue` before sending: an unread body was never sent.
    expects_continue: bool,
    polled: bool,
}

impl GuardedBody {
    pub fn new(
        inner: Incoming,
        rate: BodyRate,
        mut receiving: Receiving,
        handoff: Handoff,
        expects_continue: bool,
    ) -> Self {
        use hyper::body::Body as _;
        if inner.is_end_stream() {
            receiving.done();
        }
        Self {
            inner: Some(inner),
            rate,
            window_bytes: 0,
            window_end: None,
            receiving,
            handoff: Some(handoff),
            expects_continue,
            polled: false,
        }
    }

    /// Ends the window if its time is up: too few bytes cut the body.
    fn check_window(&mut self, now: Instant) -> Result<(), TooSlow> {
        let Some(end) = self.window_end.as_mut() else {
            return Ok(());
        };
        if now < end.deadline() {
            return Ok(());
        }
        let needed = self
            .rate
            .min_rate
            .saturating_mul(self.rate.window.as_secs().max(1));
        if self.window_bytes < needed {
            return Err(TooSlow(self.rate.min_rate));
        }
        self.window_bytes = 0;
        end.as_mut().reset(now + self.rate.window);
        Ok(())
    }

    fn cut(&mut self, e: TooSlow) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        tracing::debug!("request body too slow: cut");
        // Dropping the body ends the stream (HTTP/2) or closes the connection once the
        // answer is written (HTTP/1.1).
        self.inner = None;
        self.receiving.done();
        Poll::Ready(Some(Err(e.into())))
    }

    async fn drain(mut self) {
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut n = 0u64;
            while let Some(Ok(f)) = self.frame().await {
                n += f.data_ref().map_or(0, |d| d.len() as u64);
                if n > DRAIN_MAX {
                    break;
                }
            }
        })
        .await;
    }
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polled = true;
        if this.window_end.is_none() {
            let end = Instant::now() + this.rate.window;
            this.window_end = Some(Box::pin(tokio::time::sleep_until(end)));
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.window_bytes += d.len() as u64;
                    if let Some(a) = this.receiving.activity() {
                        a.touch();
                    }
                }
                if let Err(e) = this.check_window(Instant::now()) {
                    return this.cut(e);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.receiving.done();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.receiving.done();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => loop {
                let Some(end) = this.window_end.as_mut() else {
                    return Poll::Pending;
                };
                ready!(end.as_mut().poll(cx));
                if let Err(e) = this.check_window(Instant::now()) {
                    return this.cut(e);
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        use hyper::body::Body as _;
        let Some(handoff) = self.handoff.take() else {
            return;
        };
        let Some(inner) = self.inner.take() else {
            return;
        };
        if inner.is_end_stream() || (self.expects_continue && !self.polled) {
            return;
        }
        handoff.give(Self {
            inner: Some(inner),
            rate: self.rate,
            window_bytes: self.window_bytes,
            window_end: self.window_end.take(),
            receiving: std::mem::replace(&mut self.receiving, Receiving::none()),
            handoff: None,
            expects_continue: self.expects_continue,
            polled: self.polled,
        });
    }
}

/// An answer's body; its request stays in flight until it is sent or dropped.
#[derive(Debug)]
pub struct Answer {
    inner: Body,
    _in_flight: InFlight,
}

impl Answer {
    pub fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
