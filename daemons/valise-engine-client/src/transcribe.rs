//! `valise-transcribe`'s API (see `valise_protocol::api`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Method;
use valise_protocol::{Format, Health, JobOptions, JobStatus, ModelInfo, PartialTranscript};

use crate::transport::{
    Body, ClientError, UnixHttp, api_error, body_from_bytes, body_from_file, safe,
};

#[derive(Debug, Clone)]
pub struct TranscribeClient {
    http: UnixHttp,
}

impl TranscribeClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            http: UnixHttp::new(socket, "valise-transcribe"),
        }
    }

    pub fn socket(&self) -> &Path {
        self.http.socket()
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.http.call(Method::GET, "/v1/health", None::<&()>).await
    }

    /// True when a daemon answers on the socket within a second.
    pub async fn is_up(&self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.health()).await,
            Ok(Ok(_))
        )
    }

    pub async fn models(&self) -> Result<Vec<ModelInfo>, ClientError> {
        self.http.call(Method::GET, "/v1/models", None::<&()>).await
    }

    pub async fn jobs(&self) -> Result<Vec<JobStatus>, ClientError> {
        self.http.call(Method::GET, "/v1/jobs", None::<&()>).await
    }

    pub async fn status(&self, id: &str) -> Result<JobStatus, ClientError> {
        let uri = format!("/v1/jobs/{}", safe(id));
        self.http.call(Method::GET, &uri, None::<&()>).await
    }

    /// The segments job `id` has so far, from the `from`-th (`GET /v1/jobs/{id}/segments`).
    pub async fn segments(&self, id: &str, from: u32) -> Result<PartialTranscript, ClientError> {
        let uri = format!("/v1/jobs/{}/segments?from={from}", safe(id));
        self.http.call(Method::GET, &uri, None::<&()>).await
    }

    pub async fn cancel(&self, id: &str) -> Result<JobStatus, ClientError> {
        let uri = format!("/v1/jobs/{}", safe(id));
        self.http.call(Method::DELETE, &uri, None::<&()>).await
    }

    /// Streams `path` to the engine as a new job.
    pub async fn submit_file(
        &self,
        path: &Path,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
        let (body, len) = body_from_file(path).await?;
        self.submit(body, len, opts).await
    }

    /// Submits bytes held in memory (tests, small clips).
    pub async fn submit_bytes(
        &self,
        data: Vec<u8>,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
        let len = data.len() as u64;
        self.submit(body_from_bytes(data), len, opts).await
    }

    async fn submit(
        &self,
        body: Body,
        len: u64,
        opts: &JobOptions,
    ) -> Result<JobStatus, ClientError> {
        let uri = format!("/v1/jobs?{}", query(opts));
        let r = self
            .http
            .send(Method::POST, &uri, &[], body, Some(len))
            .await?;
        crate::transport::decode(r.status, &r.body)
    }

    /// The rendered result of a finished job.
    pub async fn result(&self, id: &str, format: Format) -> Result<String, ClientError> {
        let uri = format!("/v1/jobs/{}/result?format={}", safe(id), format.as_str());
        let r = self
            .http
            .send(Method::GET, &uri, &[], body_from_bytes(""), None)
            .await?;
        if r.status.is_success() {
            Ok(String::from_utf8_lossy(&r.body).into_owned())
        } else {
            Err(api_error(r.status, &r.body))
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

fn query(o: &JobOptions) -> String {
    let mut q = format!("translate={}", o.translate);
    if let Some(l) = &o.language {
        q.push_str(&format!("&language={}", safe(l)));
    }
    if let Some(m) = &o.model {
        q.push_str(&format!("&model={}", safe(m)));
    }
    q
}
