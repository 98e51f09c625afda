//! LibreTranslate's API as its clients call it (its web page's scripts, `libretranslatepy`,
//! `curl` examples from its documentation): parameters in the query string or in a JSON,
//! form-urlencoded or multipart body; the key as `api_key` in any of those or as a Bearer
//! token; `format=html` through the engine's HTML document path; errors as
//! `{"error": "..."}` (by [`super::error_shapes`]).

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Json;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use valise_protocol::translate::TranslateRequest;

use super::{Form, field, header_auth, key_auth, read_form, wait_done};
use crate::auth::Auth;
use crate::error::{PortalError, Result};
use crate::http::text;
use crate::jobs::{Kind, Options};
use crate::state::AppState;

/// A request's parameters: the query string's, overridden by the body's.
#[derive(Debug, Default)]
struct Params(Map<String, Value>);

impl Params {
    fn str(&self, k: &str) -> Option<&str> {
        self.0
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Adds `k=v`; a repeated key becomes a list (`q=a&q=b`).
    fn push(&mut self, k: String, v: String) {
        match self.0.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                self.0.insert(k, Value::String(v));
            }
        }
    }
}

/// `application/x-www-form-urlencoded` pairs (also the query string's syntax).
fn form_pairs(s: &[u8]) -> Result<Vec<(String, String)>> {
    let decode = |b: &[u8]| -> Result<String> {
        let plus: Vec<u8> = b
            .iter()
            .map(|&c| if c == b'+' { b' ' } else { c })
            .collect();
        percent_encoding::percent_decode(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| PortalError::BadRequest("the form is not valid UTF-8".into()))
    };
    s.split(|&c| c == b'&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = match kv.iter().position(|&c| c == b'=') {
                Some(i) => (&kv[..i], &kv[i + 1..]),
                None => (kv, &b""[..]),
            };
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Reads the parameters from wherever LibreTranslate accepts them. `libretranslatepy`
/// sends a form body even with `GET /languages`, so the body is read for every method.
async fn params(st: &AppState, req: Request) -> Result<(Parts, Params)> {
    let (parts, body) = req.into_parts();
    let mut p = Params::default();
    for (k, v) in form_pairs(parts.uri.query().unwrap_or("").as_bytes())? {
        p.push(k, v);
    }
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let req = Request::from_parts(parts.clone(), body);
    let mut from_body = Params::default();
    if ctype.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, st)
            .await
            .map_err(|e| PortalError::BadRequest(e.body_text()))?;
        while let Some(f) = form
            .next_field()
            .await
            .map_err(|e| PortalError::BadRequest(format!("bad multipart body: {e}")))?
        {
            let name = f.name().unwrap_or_default().to_owned();
            let v = f
                .text()
                .await
                .map_err(|e| PortalError::BadRequest(format!("bad multipart body: {e}")))?;
            from_body.push(name, v);
        }
    } else {
        let bytes = Bytes::from_request(req, st).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                PortalError::TooLarge("the request body is too large".into())
            } else {
                PortalError::BadRequest(e.body_text())
            }
        })?;
        if ctype.starts_with("application/json") {
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(m)) => from_body.0 = m,
                Ok(_) => return Err(PortalError::BadRequest("the body is not an object".into())),
                Err(e) => return Err(PortalError::BadRequest(format!("invalid JSON: {e}"))),
            }
        } else if !bytes.is_empty() {
            // Form-urlencoded, also when a client leaves out the content type.
            for (k, v) in form_pairs(&bytes)? {
                from_body.push(k, v);
            }
        }
    }
    for (k, v) in from_body.0 {
        p.0.insert(k, v);
    }
    Ok((parts, p))
}

/// A Bearer token, else `api_key` from the parameters.
async fn authenticate(st: &AppState, parts: &Parts, p: &Params) -> Result<Auth> {
    if let Some(a) = header_auth(st, parts).await? {
        return Ok(a);
    }
    let key = p.str("api_key").ok_or(PortalError::Unauthenticated)?;
    key_auth(st, parts, key).await
}

/// `POST /translate`: `q` a text or a list of texts (at most [`text::MAX_TEXTS`], the
/// character limit counting them all), `format` `text` or `html`.
pub async fn translate(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (parts, p) = params(&st, req).await?;
    let auth = authenticate(&st, &parts, &p).await?;
    let target = p
        .str("target")
        .ok_or_else(|| PortalError::BadRequest("target is required".into()))?
        .to_owned();
    let source = p.str("source").unwrap_or("auto").to_owned();
    let html = match p.str("format").unwrap_or("text") {
        "text" => false,
        "html" => true,
        _ => return Err(PortalError::BadRequest("format is text or html".into())),
    };
    let bad_q = || PortalError::BadRequest("q is a string or a list of strings".into());
    let (texts, list) = match p.0.get("q") {
        Some(Value::String(s)) => (vec![s.clone()], false),
        Some(Value::Array(items)) => (
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad_q))
                .collect::<Result<Vec<_>>>()?,
            true,
        ),
        None => return Err(PortalError::BadRequest("q is required".into())),
        Some(_) => return Err(bad_q()),
    };
    text::check_texts(&st, &texts)?;
    let mut translated = Vec::with_capacity(texts.len());
    let mut detected = Vec::with_capacity(texts.len());
    for t in texts {
        if html {
            translated.push(text::translate_html(&st, &auth, t, &source, &target).await?);
        } else {
            let req = TranslateRequest {
                text: t,
                source: source.clone(),
                target: target.clone(),
            };
            let r = text::translate_text(&st, &auth, req).await?;
            detected.push(json!({ "language": r.source, "confidence": 100.0 }));
            translated.push(r.translation);
        }
    }
    let mut out = match list {
        true => json!({ "translatedText": translated }),
        false => json!({ "translatedText": translated.pop().unwrap_or_default() }),
    };
    if source == "auto" && !detected.is_empty() {
        out["detectedLanguage"] = match list {
            true => Value::Array(detected),
            false => detected.swap_remove(0),
        };
    }
    Ok(Json(out))
}

/// `GET /languages`: `[{"code","name","targets"}]`.
pub async fn languages(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (parts, p) = params(&st, req).await?;
    authenticate(&st, &parts, &p).await?;
    let pairs = text::pairs(&st).await?;
    let mut codes: Vec<String> = pairs.iter().map(|p| p.source.clone()).collect();
    codes.sort();
    codes.dedup();
    let out: Vec<Value> = codes
        .iter()
        .map(|c| {
            let targets: Vec<&str> = pairs
                .iter()
                .filter(|p| &p.source == c)
                .map(|p| p.target.as_str())
                .collect();
            json!({ "code": c, "name": language_name(c), "targets": targets })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

fn language_name(code: &str) -> &str {
    match code {
        "auto" => "Auto Detect",
        "en" => "English",
        "fr" => "French",
        "pt" => "Portuguese",
        "es" => "Spanish",
        "de" => "German",
        "it" => "Italian",
        _ => code,
    }
}

/// `POST /detect`: `[{"language","confidence"}]`, confidence in percent.
pub async fn detect(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (parts, p) = params(&st, req).await?;
    authenticate(&st, &parts, &p).await?;
    let q = p
        .str("q")
        .ok_or_else(|| PortalError::BadRequest("q is required".into()))?;
    let d = text::detect_text(&st, q).await?;
    Ok(Json(
        json!([{ "language": d.language, "confidence": (d.confidence * 100.0).round() }]),
    ))
}

/// `GET /frontend/settings`: what LibreTranslate's clients read before they send anything
/// (no content, so no key needed, as in LibreTranslate).
pub async fn frontend_settings(State(st): State<AppState>) -> Json<Value> {
    Json(json!({
        "charLimit": st.config.limits.max_text_chars,
        "frontendTimeout": 500,
        "apiKeys": true,
        "keyRequired": true,
        "suggestions": false,
        "filesTranslation": true,
        "supportedFilesFormat": [".txt", ".md", ".html", ".docx", ".odt"],
        "language": {
            "source": { "code": "auto", "name": "Auto Detect" },
            "target": { "code": "pt", "name": "Portuguese" },
        },
    }))
}

/// `POST /translate_file`: multipart `file`, `source`, `target` (and `api_key` before the
/// file, or in the query, or a Bearer token). Waits for the document job, answers with the
/// URL to fetch the result (with the same key).
pub async fn translate_file(State(st): State<AppState>, req: Request) -> Result<Json<Value>> {
    let (parts, body) = req.into_parts();
    let host = crate::auth::request_host(&parts).unwrap_or_else(|| "localhost".into());
    let mut auth = header_auth(&st, &parts).await?;
    if auth.is_none()
        && let Some((_, key)) = form_pairs(parts.uri.query().unwrap_or("").as_bytes())?
            .into_iter()
            .find(|(k, v)| k == "api_key" && !v.is_empty())
    {
        auth = Some(key_auth(&st, &parts, &key).await?);
    }
    let Form {
        auth,
        upload,
        filename,
        fields,
    } = read_form(&st, &parts, body, auth, Kind::Document).await?;
    let target = match field(&fields, "target") {
        Some(t) => t.to_owned(),
        None => {
            return Err(PortalError::BadRequest("target is required".into()));
        }
    };
    let options = Options {
        source: Some(field(&fields, "source").unwrap_or("auto").to_owned()),
        target: Some(target),
        ..Options::default()
    };
    let title = crate::http::upload::clean_title(&filename);
    let job =
        super::super::jobs::register_upload(&st, &auth, upload, Kind::Document, title, options)
            .await?;
    let job = wait_done(&st, auth.user.id, &job.id).await?;
    Ok(Json(
        json!({ "translatedFileUrl": format!("https://{host}/api/jobs/{}/result", job.id) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_like_urllib_encodes_them() {
        let p = form_pairs(b"q=Hello+world%21&source=en&target=pt&api_key=vt_a%2Bb&empty").unwrap();
        assert_eq!(
            p,
            [
                ("q", "Hello world!"),
                ("source", "en"),
                ("target", "pt"),
                ("api_key", "vt_a+b"),
                ("empty", "")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(form_pairs(b"q=%ff").is_err());
        let mut params = Params::default();
        for (k, v) in form_pairs(b"q=a&q=b").unwrap() {
            params.push(k, v);
        }
        assert_eq!(params.0["q"], json!(["a", "b"]));
    }
}
