//! The portal's one error type, and its one mapping to HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use valise_protocol::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in {0} s")]
    Throttled(u64),
    #[error("you are not allowed to do this")]
    Forbidden,
    #[error("the request did not come from this portal's own pages")]
    Csrf,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("{0}")]
    Conflict(String),
    #[error("not ready yet")]
    NotReady,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    TooManyJobs(String),
    /// The user's uploads would pass `limits.max_storage_per_user`.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the {0} engine is not available; try again in a moment")]
    EngineUnavailable(&'static str),
    /// An engine refused the request; its code and message pass through.
    #[error("{0}")]
    Engine(ApiError),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = PortalError> = std::result::Result<T, E>;

impl PortalError {
    pub fn code(&self) -> &str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::BadCredentials => "bad_credentials",
            Self::Throttled(_) => "throttled",
            Self::Forbidden => "forbidden",
            Self::Csrf => "csrf",
            Self::NotFound => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::WeakPassword(_) => "weak_password",
            Self::Conflict(_) => "conflict",
            Self::NotReady => "not_ready",
            Self::TooLarge(_) => "too_large",
            Self::UnsupportedType(_) => "unsupported_type",
            Self::TooManyJobs(_) => "too_many_jobs",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::EngineUnavailable(_) => "engine_unavailable",
            Self::Engine(e) => &e.code,
            Self::Db(_) | Self::Io(_) | Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden | Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::WeakPassword(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::NotReady => StatusCode::CONFLICT,
            Self::TooLarge(_) | Self::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyJobs(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::EngineUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Engine(e) => match e.code.as_str() {
                "too_large" | "too_long" => StatusCode::PAYLOAD_TOO_LARGE,
                "timed_out" => StatusCode::GATEWAY_TIMEOUT,
                "model_unavailable" | "busy" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            Self::Db(_) | Self::Io(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn api(&self) -> ApiError {
        ApiError::new(self.code(), self.to_string())
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, Self::EngineUnavailable(_)) {
            // Internal details go to the journal, not to the browser.
            tracing::error!(error = %self, "request failed");
            let body = ApiError::new(
                self.code(),
                "internal error; the administrator can see it in the journal",
            );
            return (status, Json(body)).into_response();
        }
        let mut resp = (status, Json(self.api())).into_response();
        if let Self::Throttled(secs) = self
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<valise_engine_client::ClientError> for PortalError {
    fn from(e: valise_engine_client::ClientError) -> Self {
        match e.refusal() {
            Some(a) => Self::Engine(a),
            None => Self::Internal(e.to_string()),
        }
    }
}
