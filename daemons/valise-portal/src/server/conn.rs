//! One connection's life: TCP options, the TLS handshake under its timeout, HTTP/1.1 or
//! HTTP/2 with the body guards of `body.rs`, and closing when idle, when asked to give way
//! (admission), or at shutdown.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use tower::ServiceExt;

use super::activity::Activity;
use super::admission::Ticket;
use super::body::{Answer, BodyRate, GuardedBody, Handoff};
use crate::auth::ClientAddr;
use crate::config::Connections;

/// Requests in flight get this long to finish at shutdown.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The per-connection settings, from `[connections]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub handshake: Duration,
    pub idle: Duration,
    pub send: Duration,
    pub rate: BodyRate,
}

impl From<&Connections> for Settings {
    fn from(c: &Connections) -> Self {
        Self {
            handshake: Duration::from_secs(c.handshake_timeout_secs),
            idle: Duration::from_secs(c.idle_timeout_secs),
            send: Duration::from_secs(c.send_timeout_secs),
            rate: BodyRate {
                min_rate: c.min_body_rate.bytes(),
                window: Duration::from_secs(c.body_rate_window_secs),
            },
        }
    }
}

/// Serves one admitted connection until it ends, is idle, gives way, or the portal stops.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    s: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    // A second handle on the socket, to end a connection's reading while its handler
    // still runs (see `give_way`).
    let Ok(tcp) = tcp.into_std() else { return };
    let Ok(handle) = tcp.try_clone() else { return };
    let Ok(tcp) = TcpStream::from_std(tcp) else {
        return;
    };
    let activity = ticket.activity.clone();
    let io = SendDeadline::new(tcp, s.send);
    let tls = tokio::select! {
        r = tokio::time::timeout(s.handshake, acceptor.accept(io)) => match r {
            Ok(Ok(t)) => t,
            _ => return,
        },
        () = activity.evicted() => return,
        _ = shutdown.changed() => return,
    };
    activity.touch();
    let act = activity.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let app = app.clone();
        let activity = act.clone();
        async move {
            let in_flight = activity.request();
            req.extensions_mut().insert(ClientAddr(peer));
            let expects_continue = req
                .headers()
                .get(hyper::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            let handoff = Handoff::default();
            let h = handoff.clone();
            let req = req.map(|b| {
                Body::new(GuardedBody::new(
                    b,
                    s.rate,
                    activity.receiving(),
                    h,
                    expects_continue,
                ))
            });
            let resp = app.oneshot(req).await;
            handoff.answered();
            resp.map(|r| r.map(|b| Answer::new(b, in_flight)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    let mut conn = std::pin::pin!(conn);
    let give_way = tokio::select! {
        _ = conn.as_mut() => false,
        () = activity.evicted() => true,
        () = idle(&activity, s.idle) => false,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
            false
        }
    };
    if give_way && activity.requests() > 0 {
        // Uploads in progress: end the reading side, so that their handlers see the body
        // end early and clean up (an HTTP/1.1 handler runs inside the connection, and
        // dropping the connection would drop it mid-write).
        let _ = handle.shutdown(std::net::Shutdown::Read);
        let _ = tokio::time::timeout(GIVE_WAY, conn).await;
    }
    drop(ticket);
}

/// A connection asked to give way while receiving gets this long for its handlers to end.
const GIVE_WAY: Duration = Duration::from_secs(5);

/// Resolves once the connection had no request in flight and no progress for `limit`.
async fn idle(a: &Activity, limit: Duration) {
    loop {
        let waited = a.idle_for();
        if a.requests() == 0 && waited >= limit {
            return;
        }
        let next = if a.requests() == 0 {
            limit - waited
        } else {
            limit
        };
        tokio::time::sleep(next.max(Duration::from_millis(100))).await;
    }
}

/// A socket whose writes must make progress within `limit` (a client that stops reading
/// its answer cannot hold the connection and its buffers).
pub struct SendDeadline<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendDeadline<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    fn progress<R>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if p.is_ready() {
            self.stalled = None;
            return p;
        }
        let limit = self.limit;
        let t = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if t.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answer",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, p)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(cx, p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
