//! The HTTP routes (see `API.md`), and the headers every answer carries.

mod admin;
mod compat;
mod jobs;
mod session;
mod text;
mod tokens;
mod ui;
pub(crate) mod upload;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::state::AppState;

/// Small JSON bodies (sign-in, text to translate, corrections) are read whole; this bounds
/// them. Uploads stream to disk under their own limits.
pub const JSON_LIMIT: usize = 2 << 20;

pub fn router(state: AppState) -> Router {
    let json_limit = JSON_LIMIT.max(state.config.limits.max_text_chars * 6 + 4096);
    Router::new()
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/me/password", put(session::change_password))
        .route("/api/me/tokens", get(tokens::mine).post(tokens::create))
        .route(
            "/api/me/tokens/{id}",
            axum::routing::delete(tokens::revoke_mine),
        )
        .route("/api/admin/tokens", get(tokens::all))
        .route(
            "/api/admin/tokens/{id}",
            axum::routing::delete(tokens::revoke_any),
        )
        .route("/api/jobs", get(jobs::list))
        .route("/api/jobs/transcribe", post(jobs::create_transcription))
        .route("/api/jobs/document", post(jobs::create_document))
        .route("/api/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/api/jobs/{id}/translate", post(jobs::translate_transcript))
        .route(
            "/api/jobs/{id}/transcript",
            get(jobs::transcript).put(jobs::correct),
        )
        .route("/api/jobs/{id}/export", get(jobs::export))
        .route("/api/jobs/{id}/partial", get(jobs::partial))
        .route("/api/jobs/{id}/media", get(jobs::media))
        .route("/api/jobs/{id}/result", get(jobs::result))
        .route("/api/languages", get(text::languages))
        .route("/api/translate", post(text::translate))
        .route("/api/detect", post(text::detect))
        .route("/api/admin/users", get(admin::users).post(admin::add_user))
        .route(
            "/api/admin/users/{id}",
            axum::routing::patch(admin::update_user).delete(admin::delete_user),
        )
        .route("/api/admin/state", get(admin::box_state))
        .route(
            "/api/admin/retention",
            get(admin::retention).put(admin::set_retention),
        )
        .route("/api/admin/audit", get(admin::audit))
        // The file routes stream their multipart body to disk under their own limits
        // (`limits.max_upload`, `max_document`), not the small-body one.
        .route(
            "/v1/audio/transcriptions",
            post(compat::transcriptions).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/audio/translations",
            post(compat::translations).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/models", get(compat::models))
        .route("/v1/models/{id}", get(compat::model))
        .route("/v1/{*rest}", axum::routing::any(compat::not_found))
        .route("/translate", post(compat::translate))
        .route("/languages", get(compat::languages))
        .route("/detect", post(compat::detect))
        .route(
            "/translate_file",
            post(compat::translate_file).layer(DefaultBodyLimit::disable()),
        )
        .route("/frontend/settings", get(compat::frontend_settings))
        .route("/openapi.json", get(compat::openapi))
        .route("/assets/{file}", get(ui::asset))
        .route("/api/{*rest}", axum::routing::any(ui::api_not_found))
        .fallback(get(ui::index))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn(compat::error_shapes))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Strict headers on every answer: no framing, no sniffing, no referrer, a CSP that allows
/// only the portal's own scripts and styles (the UI has no inline script), HSTS, and no
/// caching of anything that may hold content.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; \
         form-action 'self'; base-uri 'none'",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
