//! `valise-translate`'s API (see `valise_protocol::translate`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::Method;
use valise_protocol::translate::{
    DetectRequest, Detection, Languages, TranslateHealth, TranslateRequest, TranslateResponse,
};

use crate::transport::{ClientError, UnixHttp};

#[derive(Debug, Clone)]
pub struct TranslateClient {
    http: UnixHttp,
}

impl TranslateClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            http: UnixHttp::new(socket, "valise-translate"),
        }
    }

    pub fn socket(&self) -> &Path {
        self.http.socket()
    }

    /// The transport, for endpoints without a typed method (documents, tests).
    pub fn http(&self) -> &UnixHttp {
        &self.http
    }

    pub async fn health(&self) -> Result<TranslateHealth, ClientError> {
        self.http.call(Method::GET, "/v1/health", None::<&()>).await
    }

    /// True when a daemon answers on the socket within a second.
    pub async fn is_up(&self) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.health()).await,
            Ok(Ok(_))
        )
    }

    pub async fn languages(&self) -> Result<Languages, ClientError> {
        self.http
            .call(Method::GET, "/v1/languages", None::<&()>)
            .await
    }

    pub async fn translate(
        &self,
        req: &TranslateRequest,
    ) -> Result<TranslateResponse, ClientError> {
        self.http
            .call(Method::POST, "/v1/translate", Some(req))
            .await
    }

    pub async fn detect(&self, text: &str) -> Result<Detection, ClientError> {
        let req = DetectRequest {
            text: text.to_owned(),
        };
        self.http.call(Method::POST, "/v1/detect", Some(&req)).await
    }
}

/// A translated document and the engine's report of what was not translated.
#[derive(Debug)]
pub struct TranslatedDocument {
    pub bytes: bytes::Bytes,
    /// None when the engine sent no readable report (it always should).
    pub report: Option<valise_protocol::translate::DocumentReport>,
}

impl TranslateClient {
    /// Streams the document at `path` (format `docx`, `odt`, `html`, `md`, `txt`) to the
    /// engine; returns it translated, in the same format.
    pub async fn translate_document(
        &self,
        path: &Path,
        format: &str,
        source: &str,
        target: &str,
    ) -> Result<TranslatedDocument, ClientError> {
        let (body, len) = crate::transport::body_from_file(path).await?;
        self.document(body, len, format, source, target).await
    }

    /// [`Self::translate_document`] for a document already in memory (a snippet of HTML
    /// sent as text, for instance).
    pub async fn translate_document_bytes(
        &self,
        bytes: impl Into<bytes::Bytes>,
        format: &str,
        source: &str,
        target: &str,
    ) -> Result<TranslatedDocument, ClientError> {
        let bytes = bytes.into();
        let len = bytes.len() as u64;
        let body = crate::transport::body_from_bytes(bytes);
        self.document(body, len, format, source, target).await
    }

    async fn document(
        &self,
        body: crate::transport::Body,
        len: u64,
        format: &str,
        source: &str,
        target: &str,
    ) -> Result<TranslatedDocument, ClientError> {
        let uri = format!(
            "/v1/translate/document?format={}&source={}&target={}",
            crate::transport::safe(format),
            crate::transport::safe(source),
            crate::transport::safe(target)
        );
        let r = self
            .http
            .send(
                Method::POST,
                &uri,
                &[("content-type", "application/octet-stream")],
                body,
                Some(len),
            )
            .await?;
        if !r.status.is_success() {
            return Err(crate::transport::api_error(r.status, &r.body));
        }
        let report = r
            .headers
            .get("valise-report")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| percent_decode(v).and_then(|s| serde_json::from_str(&s).ok()));
        Ok(TranslatedDocument {
            bytes: r.body,
            report,
        })
    }

    /// Translates a transcript as a whole, keeping its segment timings.
    pub async fn translate_transcript(
        &self,
        transcript: &valise_protocol::transcript::Transcript,
        source: &str,
        target: &str,
    ) -> Result<valise_protocol::transcript::Transcript, ClientError> {
        let req = serde_json::json!({
            "transcript": transcript,
            "source": source,
            "target": target,
        });
        self.http
            .call(Method::POST, "/v1/translate/transcript", Some(&req))
            .await
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}
