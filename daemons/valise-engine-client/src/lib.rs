//! Clients for the engines' HTTP/JSON APIs over their Unix sockets.
//!
//! The engines (`valise-transcribe`, `valise-translate`) listen on Unix sockets only; the
//! portal, `valisectl` and the tests reach them through this crate. It holds no model and
//! pulls in neither whisper nor ONNX Runtime, so the portal stays small and unprivileged.
//!
//! [`UnixHttp`] is the transport (one HTTP/1.1 connection per request: the engines are local
//! and requests are few, so pooling buys nothing). [`TranscribeClient`] and
//! [`TranslateClient`] are the typed APIs of `valise_protocol::api` and
//! `valise_protocol::translate`.

mod transcribe;
mod translate;
mod transport;

pub use transcribe::TranscribeClient;
pub use translate::TranslateClient;
pub use transport::{Body, ClientError, UnixHttp, body_from_bytes, body_from_file};
