//! [`HttpFetch`]: the repository over HTTPS with mutual TLS (the box presents its certificate;
//! the rustls configuration comes from `valise_pki::tls::client_config`, so the server name,
//! the CA and the CRLs are checked there). `DESIGN.md` §3.3 limits, enforced while the body
//! streams: at most `limit + 1` bytes read, a connect timeout, an idle timeout (no byte for
//! that long), a minimum throughput per window after a grace period, and an overall time
//! limit per file. Redirects are not followed (a 3xx is refused). Targets resume after an
//! interruption ([`Fetch::target_into`] from a byte offset: HTTP Range, `206` with a matching
//! `Content-Range` required, a `200` starts the sink over).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::time::Instant;

use super::{Fetch, FetchError, Sink};

/// Time and throughput limits for one file (`DESIGN.md` §3.3).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// No byte (headers or body) for this long: abort.
    pub idle_timeout: Duration,
    /// Whole request, headers and body, per target.
    pub total_timeout: Duration,
    /// Whole request, headers and body, per metadata file.
    pub metadata_timeout: Duration,
    /// Fewer than `min_bytes_per_window` bytes in a `window`: abort (slow retrieval).
    pub min_bytes_per_window: u64,
    pub window: Duration,
    /// No throughput check before this much time has passed since the request began.
    pub grace: Duration,
}

impl Default for HttpLimits {
    /// §3.3's defaults: 15 s connect, 60 s idle, 8 KiB/s averaged over 60 s after 30 s grace.
    /// A target's total is the 6 h check deadline (several GiB at a slow post); metadata 60 s.
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(6 * 3600),
            metadata_timeout: Duration::from_secs(60),
            min_bytes_per_window: 8 * 1024 * 60,
            window: Duration::from_secs(60),
            grace: Duration::from_secs(30),
        }
    }
}

/// The repository: metadata under one base URL, targets under another (`base/metadata/`
/// and `base/targets/` for [`HttpFetch::new`]).
#[derive(Debug)]
pub struct HttpFetch {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    metadata_base: Url,
    targets_base: Url,
    limits: HttpLimits,
}

fn io_err(name: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> FetchError {
    // reqwest's own message leaves out why ("error sending request for url"): the causes
    // (a revoked or expired server certificate, a reset) go into the message a person reads.
    let e = e.into();
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        cause = c.source();
    }
    FetchError::Io {
        name: name.to_owned(),
        source: std::io::Error::other(msg),
    }
}

fn slow(name: &str, why: String) -> FetchError {
    FetchError::TooSlow {
        name: name.to_owned(),
        why,
    }
}

/// Which base a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Metadata,
    Target,
}

/// `url` as a base: parsed, a path ending in `/` so that names append below it.
fn base_url(url: &str) -> Result<Url, FetchError> {
    let mut u = Url::parse(url).map_err(|e| io_err(url, e))?;
    if u.cannot_be_a_base() {
        return Err(FetchError::Refused {
            name: url.to_owned(),
            why: "not a base URL".to_owned(),
        });
    }
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

impl HttpFetch {
    /// Over HTTPS only, with `tls` (mutual TLS: it carries the box's certificate); metadata
    /// at `base/metadata/`, targets at `base/targets/`.
    pub fn new(
        base: &str,
        tls: Arc<rustls::ClientConfig>,
        limits: HttpLimits,
    ) -> Result<Self, FetchError> {
        let b = base_url(base)?;
        let sub = |d: &str| b.join(d).map_err(|e| io_err(base, e));
        Self::https(sub("metadata/")?, sub("targets/")?, tls, limits)
    }

    /// Over HTTPS only, metadata and targets under separate base URLs.
    pub fn with_urls(
        metadata_url: &str,
        targets_url: &str,
        tls: Arc<rustls::ClientConfig>,
        limits: HttpLimits,
    ) -> Result<Self, FetchError> {
        Self::https(base_url(metadata_url)?, base_url(targets_url)?, tls, limits)
    }

    fn https(
        metadata_base: Url,
        targets_base: Url,
        tls: Arc<rustls::ClientConfig>,
        limits: HttpLimits,
    ) -> Result<Self, FetchError> {
        for u in [&metadata_base, &targets_base] {
            if u.scheme() != "https" {
                return Err(FetchError::Refused {
                    name: u.to_string(),
                    why: "the repository URL must be https".to_owned(),
                });
            }
        }
        let builder = reqwest::Client::builder()
            .https_only(true)
            .use_preconfigured_tls((*tls).clone());
        Self::build(metadata_base, targets_base, builder, limits)
    }

    /// Plain HTTP (or HTTPS without a client certificate and without trusted roots, i.e.
    /// plain HTTP in practice): the conformance suite's test client and this module's unit
    /// tests only. The box's daemon never enables the `plain-http` feature.
    #[cfg(any(test, feature = "plain-http"))]
    pub fn plain_http(
        metadata_url: &str,
        targets_url: &str,
        limits: HttpLimits,
    ) -> Result<Self, FetchError> {
        // reqwest's build wants a TLS configuration even for plain HTTP (no default provider).
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| io_err(metadata_url, e))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let builder = reqwest::Client::builder().use_preconfigured_tls(tls);
        Self::build(
            base_url(metadata_url)?,
            base_url(targets_url)?,
            builder,
            limits,
        )
    }

    /// Plain HTTP at `base/metadata/`, `base/targets/`, for the unit tests' scripted servers.
    #[cfg(test)]
    fn plain_http_for_tests(base: &str, limits: HttpLimits) -> Self {
        let b = base_url(base).expect("test URL");
        let m = b.join("metadata/").expect("url");
        let t = b.join("targets/").expect("url");
        Self::plain_http(m.as_str(), t.as_str(), limits).expect("client")
    }

    fn build(
        metadata_base: Url,
        targets_base: Url,
        builder: reqwest::ClientBuilder,
        limits: HttpLimits,
    ) -> Result<Self, FetchError> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .no_proxy()
            .build()
            .map_err(|e| io_err(metadata_base.as_str(), e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io_err(metadata_base.as_str(), e))?;
        Ok(HttpFetch {
            client,
            runtime,
            metadata_base,
            targets_base,
            limits,
        })
    }

    /// The base URL below it of `name`, a URL path whose segments are already
    /// percent-encoded ([`crate::names`]): only unreserved characters, `%` and `/`; no
    /// empty, `.` or `..` segment, before or after decoding, no `\\` or NUL once decoded (an
    /// encoded `/` inside a segment, as in role `a/b`'s `1.a%2Fb.json`, is the server's to
    /// map). Not encoded again.
    fn url(&self, kind: Kind, name: &str) -> Result<Url, FetchError> {
        let plain = !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'%' | b'/')
            })
            && name.split('/').all(|s| {
                crate::names::unquote(s).is_some_and(|d| {
                    !d.is_empty() && d != "." && d != ".." && !d.contains(['\\', '\0'])
                })
            });
        if !plain {
            return Err(FetchError::Refused {
                name: name.to_owned(),
                why: "not a plain relative path".to_owned(),
            });
        }
        let base = match kind {
            Kind::Metadata => &self.metadata_base,
            Kind::Target => &self.targets_base,
        };
        let mut url = base.clone();
        url.set_path(&format!("{}{name}", base.path()));
        Ok(url)
    }

    fn run(
        &self,
        kind: Kind,
        name: &str,
        limit: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        let url = self.url(kind, name)?;
        let total = if kind == Kind::Metadata {
            self.limits.metadata_timeout
        } else {
            self.limits.total_timeout
        };
        self.runtime.block_on(async {
            match tokio::time::timeout(total, self.stream(url, name, limit, from, sink)).await {
                Ok(r) => r,
                Err(_) => Err(slow(name, format!("not done within {total:?}"))),
            }
        })
    }

    /// Sends the body to `sink`, which holds bytes `0..from` already.
    async fn stream(
        &self,
        url: Url,
        name: &str,
        limit: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        let l = &self.limits;
        let start = Instant::now();
        let mut req = self.client.get(url);
        if from > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let resp = match tokio::time::timeout(l.idle_timeout, req.send()).await {
            Err(_) => {
                return Err(slow(
                    name,
                    format!("no response within {:?}", l.idle_timeout),
                ));
            }
            Ok(Err(e)) => return Err(io_err(name, e)),
            Ok(Ok(r)) => r,
        };
        let refused = |why: String| FetchError::Refused {
            name: name.to_owned(),
            why,
        };
        let mut held = from;
        match resp.status() {
            StatusCode::OK => {
                if from > 0 {
                    // The server ignored the range: start over.
                    sink.restart().map_err(|e| io_err(name, e))?;
                    held = 0;
                }
            }
            StatusCode::PARTIAL_CONTENT if from > 0 => {
                let range = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !range.starts_with(&format!("bytes {from}-")) {
                    return Err(refused(format!(
                        "Content-Range {range:?} for bytes={from}-"
                    )));
                }
            }
            // 403 too, as python-tuf's fetcher does: it ends a root chain the same way.
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {
                return Err(FetchError::NotFound(name.to_owned()));
            }
            s => return Err(refused(format!("HTTP status {s}"))),
        }
        let too_large = || FetchError::TooLarge {
            name: name.to_owned(),
            limit,
        };
        // A declared length over the limit is refused before reading; the body is capped
        // anyway, whatever the header says.
        if resp
            .content_length()
            .is_some_and(|n| n > limit.saturating_sub(held))
        {
            return Err(too_large());
        }
        let mut resp = resp;
        let mut window_start = start;
        let mut window_bytes: u64 = 0;
        // Measured from the last byte, not from each wake-up at a window boundary.
        let mut idle_until = Instant::now() + l.idle_timeout;
        loop {
            let check_at = window_start + l.window;
            let wait_until = check_at.min(idle_until);
            match tokio::time::timeout_at(wait_until, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    idle_until = Instant::now() + l.idle_timeout;
                    window_bytes += chunk.len() as u64;
                    held += chunk.len() as u64;
                    if held > limit {
                        return Err(too_large());
                    }
                    sink.write(&chunk).map_err(|e| io_err(name, e))?;
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(io_err(name, e)),
                Err(_) if Instant::now() >= idle_until => {
                    return Err(slow(name, format!("no byte for {:?}", l.idle_timeout)));
                }
                Err(_) => {}
            }
            let now = Instant::now();
            if now >= check_at {
                if now.duration_since(start) >= l.grace && window_bytes < l.min_bytes_per_window {
                    return Err(slow(
                        name,
                        format!(
                            "{window_bytes} bytes in {:?}, fewer than {}",
                            l.window, l.min_bytes_per_window
                        ),
                    ));
                }
                window_start = now;
                window_bytes = 0;
            }
        }
    }
}

impl Fetch for HttpFetch {
    fn metadata(&self, name: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        self.run(Kind::Metadata, name, max_len, 0, &mut out)?;
        Ok(out)
    }

    fn target_into(
        &self,
        path: &str,
        length: u64,
        from: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        self.run(Kind::Target, path, length, from, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::time::Duration;

    /// A one-connection HTTP/1.1 server that answers any request with `head`, then writes
    /// `chunk` every `every` until the client goes away. Returns its base URL.
    fn trickle(head: &'static str, chunk: &'static [u8], every: Duration) -> String {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut s: TcpStream = s;
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            while s.write_all(chunk).is_ok() {
                if !every.is_zero() {
                    std::thread::sleep(every);
                }
            }
        });
        format!("http://{addr}/repo/")
    }

    fn limits() -> HttpLimits {
        HttpLimits {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            metadata_timeout: Duration::from_secs(20),
            min_bytes_per_window: 1000,
            window: Duration::from_millis(300),
            grace: Duration::ZERO,
        }
    }

    const HEAD_CLOSE: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";

    #[test]
    fn slow_retrieval_aborted() {
        // 10 bytes every 50 ms is 60 bytes per 300 ms window, under the 1000 required.
        let base = trickle(HEAD_CLOSE, b"0123456789", Duration::from_millis(50));
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        let t0 = std::time::Instant::now();
        let r = f.target("big.bin", 1 << 30);
        assert!(
            matches!(&r, Err(FetchError::TooSlow { why, .. }) if why.contains("fewer than 1000")),
            "{r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn fast_endless_body_capped_at_limit_plus_one() {
        // Twin of the slow test: the same limits let a fast body through, and an endless one
        // (no Content-Length) stops at limit + 1 bytes.
        let base = trickle(HEAD_CLOSE, &[b'x'; 4096], Duration::ZERO);
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        let r = f.metadata("timestamp.json", 100_000);
        assert!(
            matches!(r, Err(FetchError::TooLarge { limit: 100_000, .. })),
            "{r:?}"
        );
    }

    #[test]
    fn metadata_time_limit_stops_a_never_ending_file() {
        // 10 bytes every 50 ms passes the throughput check (window 300 ms, 50 bytes needed)
        // but never ends: the metadata limit stops it.
        let base = trickle(HEAD_CLOSE, b"0123456789", Duration::from_millis(50));
        let mut l = limits();
        l.min_bytes_per_window = 50;
        l.metadata_timeout = Duration::from_millis(700);
        let f = HttpFetch::plain_http_for_tests(&base, l);
        let r = f.metadata("timestamp.json", 1 << 30);
        assert!(
            matches!(&r, Err(FetchError::TooSlow { why, .. }) if why.contains("not done within 700ms")),
            "{r:?}"
        );
    }

    #[test]
    fn idle_timeout_spans_throughput_windows() {
        // Windows of 100 ms with no minimum: only the 400 ms idle limit can stop a stall,
        // and it must not be reset at each window boundary.
        let base = trickle(HEAD_CLOSE, b"", Duration::from_secs(1));
        let mut l = limits();
        l.min_bytes_per_window = 0;
        l.window = Duration::from_millis(100);
        l.idle_timeout = Duration::from_millis(400);
        let f = HttpFetch::plain_http_for_tests(&base, l);
        let t0 = std::time::Instant::now();
        let r = f.target("t", 100);
        assert!(
            matches!(&r, Err(FetchError::TooSlow { why, .. }) if why.contains("no byte")),
            "{r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    #[test]
    fn stalled_body_hits_idle_timeout() {
        let base = trickle(HEAD_CLOSE, b"", Duration::from_secs(1));
        let mut l = limits();
        l.idle_timeout = Duration::from_millis(200);
        l.window = Duration::from_secs(60);
        let f = HttpFetch::plain_http_for_tests(&base, l);
        let r = f.metadata("timestamp.json", 100);
        assert!(
            matches!(&r, Err(FetchError::TooSlow { why, .. }) if why.contains("no byte")),
            "{r:?}"
        );
    }

    #[test]
    fn redirect_not_followed_and_bad_names_refused() {
        let base = trickle(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n",
            b"",
            Duration::from_secs(1),
        );
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        let r = f.metadata("root.json", 100);
        assert!(
            matches!(&r, Err(FetchError::Refused { why, .. }) if why.contains("302")),
            "{r:?}"
        );
        for bad in [
            "../x", "a//b", "", "./x", "a\\b", "a b", "%2E%2E/x", "x/%2e", "a%5Cb", "a%00", "a?b",
            "a#b", "http:x",
        ] {
            assert!(
                matches!(f.url(Kind::Metadata, bad), Err(FetchError::Refused { .. })),
                "{bad:?}"
            );
        }
        // Names arrive percent-encoded (names.rs) and are not encoded again.
        assert_eq!(
            f.url(Kind::Target, "d/a%20b.txt").expect("url").path(),
            "/repo/targets/d/a%20b.txt"
        );
        assert_eq!(
            f.url(Kind::Metadata, "1.a%2Fb.json").expect("url").path(),
            "/repo/metadata/1.a%2Fb.json"
        );
    }

    /// Answers one request with `response`, then closes; returns the base URL.
    fn serve_once(response: &'static [u8]) -> String {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = s.write_all(response);
        });
        format!("http://{addr}/repo/")
    }

    #[test]
    fn forbidden_and_not_found_both_end_a_root_chain() {
        for status in ["403 Forbidden", "404 Not Found"] {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let base = serve_once(Box::leak(head.into_bytes().into_boxed_slice()));
            let f = HttpFetch::plain_http_for_tests(&base, limits());
            let r = f.metadata("3.root.json", 100);
            assert!(
                matches!(&r, Err(FetchError::NotFound(n)) if n == "3.root.json"),
                "{r:?}"
            );
        }
        // Twin: another refusal is not "not found".
        let base = serve_once(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        let r = f.metadata("3.root.json", 100);
        assert!(matches!(&r, Err(FetchError::Refused { .. })), "{r:?}");
    }

    #[test]
    fn resume_starts_over_on_200_and_refuses_a_wrong_content_range() {
        let mut held = b"XX".to_vec();
        let base = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        f.target_into("t", 5, 2, &mut held).expect("200");
        assert_eq!(held, b"hello", "restarted, not appended");

        let mut held = b"he".to_vec();
        let base = serve_once(
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/5\r\nContent-Length: 5\r\n\r\nhello",
        );
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        let r = f.target_into("t", 5, 2, &mut held);
        assert!(
            matches!(&r, Err(FetchError::Refused { why, .. }) if why.contains("Content-Range")),
            "{r:?}"
        );
        // Twin: the right Content-Range appends.
        let mut held = b"he".to_vec();
        let base = serve_once(
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-4/5\r\nContent-Length: 3\r\n\r\nllo",
        );
        let f = HttpFetch::plain_http_for_tests(&base, limits());
        f.target_into("t", 5, 2, &mut held).expect("206");
        assert_eq!(held, b"hello");
    }
}
