//! HTTP/1.1 over a Unix socket, with streamed request bodies.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use valise_protocol::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the engine at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("engine connection failed: {0}")]
    Http(String),
    #[error("{0}")]
    Api(ApiError),
    /// The engine answered with an error status but no error body (an endpoint it does not
    /// have, an older engine): a refusal, not an outage.
    #[error("the engine answered HTTP {0}: {1}")]
    Status(u16, String),
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// True when the engine could not be reached or dropped the connection: the request may
    /// be retried once it is back (as opposed to an answer refusing the request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Http(_))
    }

    /// The engine's answer as an API error (`Status` gets a generic code), or None when the
    /// engine did not answer.
    pub fn refusal(&self) -> Option<ApiError> {
        match self {
            Self::Api(e) => Some(e.clone()),
            Self::Status(code, body) => Some(ApiError::new(
                "engine_error",
                format!("the engine answered HTTP {code}: {body}"),
            )),
            _ => None,
        }
    }
}

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn body_from_bytes(data: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(data.into()).map_err(|never| match never {}))
}

/// Streams a file as a request body; returns the body and its length.
pub async fn body_from_file(path: &Path) -> Result<(Body, u64), ClientError> {
    let file_err = |source| ClientError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(file_err)?;
    let len = file.metadata().await.map_err(file_err)?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let body = BodyExt::boxed(StreamBody::new(futures_util::TryStreamExt::map_ok(
        stream,
        Frame::data,
    )));
    Ok((body, len))
}

/// One engine's socket.
#[derive(Debug, Clone)]
pub struct UnixHttp {
    socket: PathBuf,
    host: &'static str,
}

/// A response: status, headers and the whole body (engine answers are bounded: JSON, a
/// transcript, or a translated document the engine itself limited).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl UnixHttp {
    pub fn new(socket: impl Into<PathBuf>, host: &'static str) -> Self {
        Self {
            socket: socket.into(),
            host,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
        len: Option<u64>,
    ) -> Result<Response, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, self.host);
        if let Some(len) = len {
            req = req.header(hyper::header::CONTENT_LENGTH, len);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Response {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends raw bytes as a JSON body (tests use it for malformed bodies).
    pub async fn send_raw(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let len = body.len() as u64;
        let r = self
            .send(
                method,
                uri,
                &[("content-type", "application/json")],
                body_from_bytes(body),
                Some(len),
            )
            .await?;
        Ok((r.status, r.body))
    }

    /// A JSON call: `body` serialized (or empty), the answer decoded or turned into the
    /// engine's [`ApiError`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        uri: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Http(e.to_string()))?,
            None => Vec::new(),
        };
        let (status, bytes) = self.send_raw(method, uri, bytes).await?;
        decode(status, &bytes)
    }
}

pub(crate) fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(bytes) {
        Ok(e) => ClientError::Api(e),
        Err(_) => ClientError::Status(
            status.as_u16(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        ),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    serde_json::from_slice(bytes).map_err(|e| ClientError::Http(format!("bad response: {e}")))
}

/// Keeps only characters that can appear in ids and language codes, so nothing a user
/// typed can change the shape of an engine URL.
pub(crate) fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect()
}
