//! The daemon's API over a temporary Unix socket, with the real models of the dev store:
//! the real server (`valise_translate::run`) started in-process, a real HTTP client.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use valise_engine_client::{ClientError, TranslateClient as Client};
use valise_protocol::ApiError;
use valise_protocol::translate::TranslateRequest;
use valise_translate::{Config, Engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_translate_detect_languages_and_refuses_bad_input() {
    let engine = Arc::new(
        Engine::load(&Config::default())
            .unwrap_or_else(|e| panic!("{e} — run scripts/fetch-models")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("translate.sock");
    let listener = valise_translate::bind(&socket).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(valise_translate::run(engine, listener, async move {
        let _ = stopped.await;
    }));
    let client = Client::new(&socket);
    assert!(client.is_up().await);

    let health = client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    assert_eq!(health.models_loaded.len(), 2);

    let langs = client.languages().await.expect("languages");
    assert_eq!(langs.pairs.len(), 2);

    let out = client
        .translate(&TranslateRequest {
            text: "The visa office is open.\n\nBring your passport, please.".into(),
            source: "auto".into(),
            target: "pt".into(),
        })
        .await
        .expect("translate");
    assert_eq!(out.source, "en");
    assert_eq!(out.sentences, 2);
    assert!(!out.pivot);
    assert!(out.errors.is_empty());
    assert_eq!(out.translation.matches("\n\n").count(), 1, "{out:?}");
    assert!(out.translation.contains("passaporte"), "{out:?}");

    let d = client
        .detect("Onde fica o consulado mais próximo?")
        .await
        .expect("detect");
    assert_eq!(d.language, "pt");

    // Invalid UTF-8: 400 with a clear message.
    let mut body = br#"{"text":"caf"#.to_vec();
    body.extend_from_slice(&[0xC3, 0x28]);
    body.extend_from_slice(br#"","target":"pt"}"#);
    let (status, bytes) = client
        .http()
        .send_raw(Method::POST, "/v1/translate", body)
        .await
        .expect("send");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: ApiError = serde_json::from_slice(&bytes).expect("ApiError");
    assert_eq!(err.code, "bad_utf8");
    assert!(err.message.contains("UTF-8"), "{err}");

    // Malformed JSON / unknown field: 400 bad_json.
    let (status, bytes) = client
        .http()
        .send_raw(
            Method::POST,
            "/v1/translate",
            br#"{"txt":"x","target":"pt"}"#.to_vec(),
        )
        .await
        .expect("send");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: ApiError = serde_json::from_slice(&bytes).expect("ApiError");
    assert_eq!(err.code, "bad_json");

    // Empty text.
    let api_err = |r: Result<_, ClientError>| match r {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected an API error, got {other:?}"),
    };
    let e = api_err(
        client
            .translate(&TranslateRequest {
                text: "   \n ".into(),
                source: "en".into(),
                target: "pt".into(),
            })
            .await,
    );
    assert_eq!(e.code, "empty");

    // Unknown target language.
    let e = api_err(
        client
            .translate(&TranslateRequest {
                text: "Hello.".into(),
                source: "en".into(),
                target: "fr".into(),
            })
            .await,
    );
    assert_eq!(e.code, "bad_request");
    assert!(e.message.contains("fr"), "{e}");

    // 1 MB without a full stop: a clear limit error, and the daemon keeps serving.
    let e = api_err(
        client
            .translate(&TranslateRequest {
                text: "word ".repeat(200_000),
                source: "en".into(),
                target: "pt".into(),
            })
            .await,
    );
    assert_eq!(e.code, "too_large", "{e}");
    let again = client
        .translate(&TranslateRequest {
            text: "Good morning.".into(),
            source: "en".into(),
            target: "pt".into(),
        })
        .await
        .expect("still serving");
    assert!(!again.translation.is_empty());

    let _ = stop.send(());
    server.await.expect("join").expect("server");
}
