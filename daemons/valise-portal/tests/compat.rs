//! The scripts' API as existing clients use it (issue 8): files above the small-body limit
//! reach the file endpoints, a list of texts counts against the text limit, one user's huge
//! text does not hold up others' short ones, LibreTranslate's body encodings and error shape,
//! OpenAI's translations and models, and JSON answers for every unknown API path.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Portal, config_in};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use valise_e2e::engines::start_engines;
use valise_e2e::{ffmpeg, testdata, words};

const FRENCH: &str = "/usr/share/asterisk/sounds/fr/conf-onlyperson.wav";

/// Real speech (jfk.wav, 11 s) at 48 kHz stereo, padded with 17 s of silence: 5.1 MiB.
fn big_recording(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("big.wav");
    let src = testdata("jfk.wav");
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-af",
        "apad=whole_dur=28",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-c:a",
        "pcm_s16le",
        out.to_str().unwrap(),
    ]);
    std::fs::read(out).unwrap()
}

/// A .docx with two sentences and a 3 MiB photo (incompressible, stored), as Word writes
/// letters with a scanned signature.
fn big_docx() -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default();
    let parts: [(&str, &[u8]); 3] = [
        (
            "[Content_Types].xml",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="jpeg" ContentType="image/jpeg"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#,
        ),
        (
            "word/document.xml",
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>The embassy is closed on Monday.</w:t></w:r></w:p><w:p><w:r><w:t>Thank you for your patience.</w:t></w:r></w:p></w:body></w:document>"#,
        ),
    ];
    for (name, body) in parts {
        z.start_file(name, opts).unwrap();
        z.write_all(body).unwrap();
    }
    let stored = opts.compression_method(zip::CompressionMethod::Stored);
    z.start_file("word/media/image1.jpeg", stored).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let photo: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    z.write_all(&photo).unwrap();
    z.finish().unwrap().into_inner()
}

fn document_text(docx: &[u8]) -> String {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(docx)).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut z.by_name("word/document.xml").unwrap(), &mut s).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_above_the_small_body_limit_reach_the_file_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path(), 2);
    let recording = big_recording(dir.path());
    assert!(recording.len() > 5 << 20, "{}", recording.len());
    let docx = big_docx();
    assert!(docx.len() > 3 << 20, "{}", docx.len());
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();

    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(recording).file_name("big.wav"),
        )
        .text("model", "whisper-1")
        .text("language", "en");
    let r = c
        .raw(Method::POST, "/v1/audio/transcriptions")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        words(v["text"].as_str().unwrap()).contains("ask not what your country can do for you"),
        "{v}"
    );

    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(docx).file_name("letter.docx"),
        )
        .text("source", "en")
        .text("target", "pt");
    let r = c
        .raw(Method::POST, "/translate_file")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{v}");
    let url = v["translatedFileUrl"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let r = c
        .raw(Method::GET, path)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let out = r.bytes().await.unwrap();
    assert!(out.len() > 3 << 20, "the photo is kept: {}", out.len());
    let text = document_text(&out).to_lowercase();
    assert!(text.contains("embaixada"), "{text}");
}

#[tokio::test]
async fn a_list_of_texts_counts_against_the_text_limit_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.limits.max_text_chars = 1000;
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();
    let send = |body: Value| {
        c.raw(Method::POST, "/translate")
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // Three texts under the limit each, over it together.
    let part = "a".repeat(600);
    let r = send(json!({"q": [part, part, part], "source": "en", "target": "pt"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("1000"), "{v}");
    // More texts than a request may carry, however short.
    let many: Vec<&str> = vec!["a"; 129];
    let r = send(json!({"q": many, "source": "en", "target": "pt"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The portal's own endpoint and /detect count the same way.
    let r = c
        .raw(Method::POST, "/detect")
        .bearer_auth(&token)
        .json(&json!({"q": "a".repeat(1001)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// English prose of about `chars` characters, in varied sentences.
fn prose(chars: usize) -> String {
    let subjects = [
        "The consulate",
        "Our visa section",
        "The ambassador's office",
        "The reception desk",
        "The cultural attaché",
        "The security team",
    ];
    let verbs = [
        "will open",
        "has moved",
        "is expecting visitors",
        "will answer letters",
        "needs two photographs",
        "is preparing the report",
    ];
    let times = [
        "on Monday morning.",
        "before the end of the month.",
        "after the national holiday.",
        "every Thursday afternoon.",
        "during the summer.",
        "as soon as possible.",
    ];
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < chars {
        s.push_str(&format!(
            "{} {} {} ",
            subjects[i % 6],
            verbs[(i / 6) % 6],
            times[(i / 36) % 6]
        ));
        i += 1;
    }
    s.truncate(chars);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_text_does_not_hold_up_other_users_short_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path(), 2);
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("big", false);
    p.add_user("small", false);
    let big = p.token("big");
    let small = p.token("small");
    let c = p.client();
    let short = |c: &common::Client| {
        c.raw(Method::POST, "/translate")
            .bearer_auth(&small)
            .json(&json!({"q": "Thank you for your patience.", "source": "en", "target": "pt"}))
            .send()
    };
    // Warm the model so the first short request's figure is not its load.
    assert_eq!(short(&c).await.unwrap().status(), StatusCode::OK);

    let text = prose(99_000);
    let huge = c
        .raw(Method::POST, "/translate")
        .bearer_auth(&big)
        .json(&json!({"q": text, "source": "en", "target": "pt"}))
        .send();
    let started = Instant::now();
    let mut huge = std::pin::pin!(huge);
    let mut latencies = Vec::new();
    let huge_status = loop {
        let t = Instant::now();
        tokio::select! {
            r = &mut huge => break r.unwrap().status(),
            r = short(&c) => {
                assert_eq!(r.unwrap().status(), StatusCode::OK);
                latencies.push(t.elapsed());
            }
        }
    };
    let huge_took = started.elapsed();
    assert_eq!(huge_status, StatusCode::OK);
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "huge text: {huge_took:?}; {} short requests meanwhile, worst {worst:?}",
        latencies.len()
    );
    // The short requests were answered while the huge one ran, each in a fraction of it.
    assert!(latencies.len() >= 3, "{latencies:?} in {huge_took:?}");
    assert!(
        worst < Duration::from_secs(5) && worst * 4 < huge_took,
        "worst short request {worst:?} while the huge text took {huge_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_is_translated_to_english_through_openais_translations_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path(), 2);
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(FRENCH).unwrap()).file_name("fr.wav"),
        )
        .text("model", "whisper-1");
    let r = c
        .raw(Method::POST, "/v1/audio/translations")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{v}");
    let text = words(v["text"].as_str().unwrap());
    assert!(
        text.contains("only") && text.contains("conference"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libretranslate_bodies_keys_and_html_as_its_clients_send_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path(), 2);
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();
    let bom_dia = |v: &Value| {
        v["translatedText"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("bom dia")
    };

    // Form-urlencoded with the key as a field (libretranslatepy, LibreTranslate's page).
    let r = c
        .raw(Method::POST, "/translate")
        .form(&[
            ("q", "Good morning, how are you?"),
            ("source", "en"),
            ("target", "pt"),
            ("api_key", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(bom_dia(&v), "{v}");
    // Multipart, key in the query string.
    let form = reqwest::multipart::Form::new()
        .text("q", "Good morning, how are you?")
        .text("source", "auto")
        .text("target", "pt");
    let r = c
        .raw(Method::POST, &format!("/translate?api_key={token}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(bom_dia(&v), "{v}");
    assert_eq!(v["detectedLanguage"]["language"], "en", "{v}");
    // GET /languages with the key in a form body, as libretranslatepy sends it.
    let r = c
        .raw(Method::GET, "/languages")
        .form(&[("api_key", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // HTML: markup and attributes kept, text translated.
    let r = c
        .raw(Method::POST, "/translate")
        .json(&json!({"q": "<p class=\"note\">Good morning, <b>how are you</b>?</p>", "source": "en", "target": "pt", "format": "html", "api_key": token}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    let html = v["translatedText"].as_str().unwrap();
    // A snippet stays a snippet: no document is wrapped around it.
    assert!(
        html.starts_with("<p class=\"note\">") && html.contains("<b>"),
        "{html}"
    );
    assert!(html.to_lowercase().contains("bom dia"), "{html}");
    // Errors in LibreTranslate's shape.
    let r = c
        .raw(Method::POST, "/translate")
        .form(&[("q", "Hello"), ("target", "pt"), ("api_key", "vt_forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("sign in"), "{v}");
    let r = c
        .raw(Method::POST, "/translate")
        .form(&[("q", "Hello"), ("api_key", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "target is required", "{v}");
    // What LibreTranslate's clients read first; no key needed, no content in it.
    let r = c
        .raw(Method::GET, "/frontend/settings")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["charLimit"], 100_000);
    assert_eq!(v["keyRequired"], true);
    // A document with the key as a field before the file (LibreTranslate's page).
    let form = reqwest::multipart::Form::new()
        .text("api_key", token.clone())
        .text("target", "pt")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"The embassy is closed on Monday.\n".to_vec())
                .file_name("note.txt"),
        );
    let r = c
        .raw(Method::POST, "/translate_file")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_answer_json_never_the_page() {
    let p = Portal::start().await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();
    for (method, path, status) in [
        (
            Method::GET,
            "/v1/models/nothing/here",
            StatusCode::NOT_FOUND,
        ),
        (Method::POST, "/v1/chat/completions", StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/v1/audio/transcriptions",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::DELETE, "/v1/models", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/api/nothing", StatusCode::NOT_FOUND),
        (Method::PATCH, "/api/jobs", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/translate", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let r = c
            .raw(method.clone(), path)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            ctype.starts_with("application/json"),
            "{method} {path}: {ctype}"
        );
        let v: Value = r.json().await.unwrap();
        let message = if path.starts_with("/v1/") {
            &v["error"]["message"]
        } else if path.starts_with("/api/") {
            &v["message"]
        } else {
            &v["error"]
        };
        assert!(message.is_string(), "{method} {path}: {v}");
    }
    // OpenAI's models, without the engine: the alias alone; unknown ones are 404.
    let r = c
        .raw(Method::GET, "/v1/models")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "whisper-1", "{v}");
    let r = c
        .raw(Method::GET, "/v1/models/gpt-4")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    // Without a token: 401 in OpenAI's shape.
    let r = c.raw(Method::GET, "/v1/models").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthenticated", "{v}");
    // The web UI's page is still what browsers get elsewhere.
    let r = c.raw(Method::GET, "/jobs/123").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn a_file_form_before_its_key_is_bounded() {
    let p = Portal::start().await;
    let c = p.client();
    // The key may come as a field before the file, so fields are read before anyone is
    // known: their number is bounded, not only their size.
    let mut form = reqwest::multipart::Form::new();
    for i in 0..40 {
        form = form.text(format!("f{i}"), "x".repeat(4000));
    }
    let form = form.part(
        "file",
        reqwest::multipart::Part::bytes(b"hello\n".to_vec()).file_name("a.txt"),
    );
    let r = c
        .raw(Method::POST, "/translate_file")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("fields"), "{v}");
    // A file before any key is refused before it is stored.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello\n".to_vec()).file_name("a.txt"),
    );
    let r = c
        .raw(Method::POST, "/translate_file")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let jobs = p.jobs_dir();
    let stored = std::fs::read_dir(&jobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "{}", jobs.display());
}
