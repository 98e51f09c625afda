//! HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with rustls, the plain-HTTP redirect, and the
//! locally generated certificate for a first run.
//!
//! Connections are admitted under global and per-address limits (`admission`), each served
//! by its own task (`conn`) with handshake, idle and send timeouts, and request bodies
//! under a minimum rate and drained after early answers (`body`); `activity` is what a
//! connection is doing, shared between them. Design note: `DESIGN.md`, "Connections".

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::config::Connections;

mod activity;
mod admission;
mod body;
mod conn;

pub use admission::{AddrKey, Admission, Refused};

/// HTTP/1 request headers on the plain-HTTP redirect must arrive in this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// When a limit is reached, the connection that has gone longest without progress gives
/// way, however short that is: a new client's handshake and first request take
/// milliseconds, while a flood of connections that send nothing ages by itself.
const MIN_IDLE_TO_EVICT: Duration = Duration::ZERO;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_err(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(cert, &e))?;
    if certs.is_empty() {
        return Err(read_err(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Writes a self-signed certificate for `names` unless a usable pair is there (the README's
/// run command and the appliance's `--dev-cert`; a real post installs its own certificate).
///
/// Each file is replaced atomically (key first, then the certificate: a power cut leaves the
/// old pair, or a new key beside an old certificate, which the check below catches). A pair
/// that does not load (empty or torn files after a power cut on a box that had just made
/// them, a key that does not match) is made again: it is this function's own self-signed
/// pair, so nothing is lost, and a portal that refused to start on it would stay down.
pub fn ensure_dev_cert(cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    if cert.exists() && key.exists() {
        match load_tls(cert, key) {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "the self-signed certificate does not load: making a new one")
            }
        }
    }
    let g = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let gen_err = |e: &dyn std::fmt::Display| TlsError::Generate(e.to_string());
    for p in [cert, key] {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| gen_err(&e))?;
        }
    }
    crate::transcripts::write_atomic(key, g.signing_key.serialize_pem().as_bytes())
        .map_err(|e| gen_err(&e))?;
    crate::transcripts::write_atomic(cert, g.cert.pem().as_bytes()).map_err(|e| gen_err(&e))?;
    Ok(())
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, under the connection
/// limits and timeouts of `limits` (see `DESIGN.md`).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: &Connections,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let admission = Admission::new(
        limits.max as usize,
        limits.max_per_address as usize,
        MIN_IDLE_TO_EVICT,
    );
    let settings = conn::Settings::from(limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of descriptors or memory: give the running connections time to end.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let ticket = match admission.admit(peer.ip()) {
            Ok(t) => t,
            Err(why) => {
                tracing::debug!(peer = %peer.ip(), ?why, "connection refused");
                // Closed at once: no handshake, nothing held.
                drop(tcp);
                continue;
            }
        };
        tokio::spawn(conn::serve(
            tcp,
            peer,
            ticket,
            acceptor.clone(),
            app.clone(),
            settings,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(conn::DRAIN, admission.drained()).await;
}

/// Plain HTTP: every request is answered with a permanent redirect to the HTTPS address.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(v) => v, Err(_) => continue },
            _ = &mut shutdown => break,
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| async move {
                let host = req
                    .headers()
                    .get(hyper::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n).to_owned())
                    .filter(|h| {
                        h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-[]".contains(c))
                    })
                    .unwrap_or_else(|| "localhost".into());
                let port = if https_port == 443 {
                    String::new()
                } else {
                    format!(":{https_port}")
                };
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let location = format!("https://{host}{port}{path}");
                hyper::Response::builder()
                    .status(hyper::StatusCode::PERMANENT_REDIRECT)
                    .header(hyper::header::LOCATION, location)
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
            });
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(tcp), svc),
            )
            .await;
        });
    }
}

pub fn local_names(addr: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str()
        && !h.is_empty()
    {
        names.push(h.to_owned());
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A power cut just after the box made its pair left empty files (seen in the appliance's
    /// boot test): the portal must start with a new pair, not exit on the old one forever.
    #[test]
    fn a_torn_dev_certificate_is_made_again_and_a_good_one_kept() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = (d.path().join("tls/cert.pem"), d.path().join("tls/key.pem"));
        let names = vec!["valise".to_owned()];
        ensure_dev_cert(&cert, &key, &names).unwrap();
        let first = std::fs::read(&cert).unwrap();
        assert!(load_tls(&cert, &key).is_ok());
        ensure_dev_cert(&cert, &key, &names).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "a good pair is kept");

        std::fs::write(&cert, b"").unwrap();
        assert!(load_tls(&cert, &key).is_err());
        ensure_dev_cert(&cert, &key, &names).unwrap();
        assert!(load_tls(&cert, &key).is_ok());
        assert_ne!(std::fs::read(&cert).unwrap(), first);

        std::fs::write(&key, b"-----BEGIN PRIVATE KEY-----\n").unwrap();
        ensure_dev_cert(&cert, &key, &names).unwrap();
        assert!(load_tls(&cert, &key).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!d.path().join("tls/key.tmp").exists());
    }
}
