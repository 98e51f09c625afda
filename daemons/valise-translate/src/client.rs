//! A client for the translation API over its Unix socket (`valisectl`, tests; the portal
//! will use the same).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use valise_protocol::ApiError;
use valise_protocol::translate::{
    DetectRequest, Detection, Languages, TranslateHealth, TranslateRequest, TranslateResponse,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the translation engine at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("translation engine connection failed: {0}")]
    Http(String),
    #[error("{0}")]
    Api(ApiError),
}

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

    /// Sends raw bytes (tests use it for malformed bodies); returns status and body.
    pub async fn send_raw(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
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
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "valise-translate")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
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

    async fn call<T: DeserializeOwned>(
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
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Http(format!("bad response: {e}")))
        } else {
            Err(ClientError::Api(
                serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    ApiError::new(
                        "http",
                        format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                    )
                }),
            ))
        }
    }

    pub async fn health(&self) -> Result<TranslateHealth, ClientError> {
        self.call(Method::GET, "/v1/health", None::<&()>).await
    }

    /// True when a daemon answers on the socket within a second.
    pub async fn is_up(&self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.health()).await,
            Ok(Ok(_))
        )
    }

    pub async fn languages(&self) -> Result<Languages, ClientError> {
        self.call(Method::GET, "/v1/languages", None::<&()>).await
    }

    pub async fn translate(
        &self,
        req: &TranslateRequest,
    ) -> Result<TranslateResponse, ClientError> {
        self.call(Method::POST, "/v1/translate", Some(req)).await
    }

    pub async fn detect(&self, text: &str) -> Result<Detection, ClientError> {
        let req = DetectRequest {
            text: text.to_owned(),
        };
        self.call(Method::POST, "/v1/detect", Some(&req)).await
    }
}
