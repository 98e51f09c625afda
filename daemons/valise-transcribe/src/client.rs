//! A client for the engine API over its Unix socket (used by `valisectl` and the tests; the
//! portal will use the same).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use valise_protocol::{ApiError, Format, Health, JobOptions, JobStatus, ModelInfo};

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
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Body,
        len: Option<u64>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
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
            .header(hyper::header::HOST, "valise-transcribe");
        if let Some(len) = len {
            req = req.header(hyper::header::CONTENT_LENGTH, len);
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn json<T: DeserializeOwned>(&self, method: Method, uri: &str) -> Result<T, ClientError> {
        let (status, bytes) = self.send(method, uri, empty(), None).await?;
        decode(status, &bytes)
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(Method::GET, "/v1/health").await
    }

    /// True when a daemon answers on the socket within a second.
    pub async fn is_up(&self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.health()).await,
            Ok(Ok(_))
        )
    }

    pub async fn models(&self) -> Result<Vec<ModelInfo>, ClientError> {
        self.json(Method::GET, "/v1/models").await
    }

    pub async fn jobs(&self) -> Result<Vec<JobStatus>, ClientError> {
        self.json(Method::GET, "/v1/jobs").await
    }

    pub async fn status(&self, id: &str) -> Result<JobStatus, ClientError> {
        self.json(Method::GET, &format!("/v1/jobs/{}", enc(id)))
            .await
    }

    pub async fn cancel(&self, id: &str) -> Result<JobStatus, ClientError> {
        self.json(Method::DELETE, &format!("/v1/jobs/{}", enc(id)))
            .await
    }

    /// Streams `path` to the engine as a new job.
    pub async fn submit_file(
        &self,
        path: &Path,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
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
        self.submit(body, len, opts).await
    }

    /// Submits bytes held in memory (tests, small clips).
    pub async fn submit_bytes(
        &self,
        data: Vec<u8>,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
        let len = data.len() as u64;
        let body = BodyExt::boxed(Full::new(Bytes::from(data)).map_err(|never| match never {}));
        self.submit(body, len, opts).await
    }

    async fn submit(
        &self,
        body: Body,
        len: u64,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
        let uri = format!("/v1/jobs?{}", query(opts));
        let (status, bytes) = self.send(Method::POST, &uri, body, Some(len)).await?;
        decode(status, &bytes)
    }

    /// The rendered result of a finished job.
    pub async fn result(&self, id: &str, format: Format) -> Result<String, ClientError> {
        let f = format.as_str();
        let (status, bytes) = self
            .send(
                Method::GET,
                &format!("/v1/jobs/{}/result?format={f}", enc(id)),
                empty(),
                None,
            )
            .await?;
        if status.is_success() {
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            Err(api_error(status, &bytes))
        }
    }

    /// Polls until the job is final, calling `on_progress` on the way.
    pub async fn wait(
        &self,
        id: &str,
        mut on_progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, ClientError> {
        loop {
            let s = self.status(id).await?;
            on_progress(&s);
            if s.state.is_final() {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn empty() -> Body {
    BodyExt::boxed(Full::new(Bytes::new()).map_err(|never| match never {}))
}

fn enc(s: &str) -> String {
    // Job ids are hex; anything else cannot name a job, so keep only safe characters.
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn query(o: &JobOptions) -> String {
    let mut q = format!("translate={}", o.translate);
    if let Some(l) = &o.language {
        q.push_str(&format!("&language={}", enc(l)));
    }
    if let Some(m) = &o.model {
        let m: String = m
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        q.push_str(&format!("&model={m}"));
    }
    q
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiError>(bytes) {
        Ok(e) => ClientError::Api(e),
        Err(_) => ClientError::Http(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )),
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if !status.is_success() {
        return Err(api_error(status, bytes));
    }
    serde_json::from_slice(bytes).map_err(|e| ClientError::Http(format!("bad response: {e}")))
}
