//! Documents and transcripts through the real daemon (in-process server on a temporary Unix
//! socket, the dev store's real models) and the client the portal uses
//! (`valise-engine-client`): each format comes back in its format, translated, with its
//! structure and non-text parts untouched and a report; hostile documents get a clear error
//! and the daemon keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;

use valise_engine_client::{ClientError, TranslateClient};
use valise_protocol::transcript::{Segment, Task, Transcript};
use valise_translate::{Config, Engine};

struct Daemon {
    client: TranslateClient,
    dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn daemon() -> Daemon {
    let engine = Arc::new(
        Engine::load(&Config::default())
            .unwrap_or_else(|e| panic!("{e} — run scripts/fetch-models")),
    );
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("translate.sock");
    let listener = valise_translate::bind(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(valise_translate::run(engine, listener, async move {
        let _ = stopped.await;
    }));
    Daemon {
        client: TranslateClient::new(&socket),
        dir,
        _stop: stop,
    }
}

impl Daemon {
    async fn doc(
        &self,
        name: &str,
        bytes: &[u8],
        format: &str,
    ) -> Result<(Vec<u8>, serde_json::Value), ClientError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let d = self
            .client
            .translate_document(&path, format, "auto", "pt")
            .await?;
        let report = d.report.expect("the engine sent a report");
        Ok((
            d.bytes.to_vec(),
            serde_json::to_value(report).expect("json"),
        ))
    }
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in entries {
        let opts =
            zip::write::SimpleFileOptions::default().compression_method(if *name == "mimetype" {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            });
        z.start_file(*name, opts).unwrap();
        z.write_all(body).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn entry(zip_bytes: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut out = Vec::new();
    z.by_name(name).unwrap().read_to_end(&mut out).unwrap();
    out
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="png" ContentType="image/png"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
/// Not a real PNG: bytes that must come back untouched.
const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\n-- image bytes, never to be touched --";

fn docx(body: &str) -> Vec<u8> {
    let doc = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("word/document.xml", doc.as_bytes()),
        ("word/media/image1.png", IMAGE),
    ])
}

/// The text of every `w:t` of a paragraph, per paragraph.
fn docx_paragraphs(xml: &str) -> Vec<String> {
    xml.split("</w:p>")
        .filter(|p| p.contains("<w:p"))
        .map(|p| {
            p.split("<w:t")
                .skip(1)
                .filter_map(|t| {
                    t.split_once('>')
                        .map(|(_, rest)| rest.split("</w:t>").next().unwrap_or("").to_owned())
                })
                .collect::<String>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docx_comes_back_translated_with_its_styles_and_images() {
    let d = daemon().await;
    let input = docx(concat!(
        r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Notice to visitors</w:t></w:r></w:p>"#,
        // One sentence over three runs: the bold word must not cut it.
        r#"<w:p><w:r><w:t xml:space="preserve">The </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>embassy</w:t></w:r><w:r><w:t xml:space="preserve"> is closed on Monday.</w:t></w:r></w:p>"#,
        r#"<w:p><w:r><w:t>Please bring your passport.</w:t></w:r></w:p>"#,
    ));
    let (out, report) = d.doc("notice.docx", &input, "docx").await.unwrap();
    let xml = String::from_utf8(entry(&out, "word/document.xml")).unwrap();
    let paras = docx_paragraphs(&xml);
    assert_eq!(paras.len(), 3, "{xml}");
    assert!(paras[1].to_lowercase().contains("embaixada"), "{paras:?}");
    assert!(paras[2].to_lowercase().contains("passaporte"), "{paras:?}");
    assert!(!xml.contains("embassy"), "{xml}");
    // Styles and run properties are still there, the image is byte for byte the same.
    assert!(xml.contains(r#"<w:pStyle w:val="Heading1"/>"#), "{xml}");
    assert!(xml.contains("<w:b/>"), "{xml}");
    assert_eq!(entry(&out, "word/media/image1.png"), IMAGE);
    assert_eq!(entry(&out, "_rels/.rels"), RELS.as_bytes());
    assert_eq!(report["source"], "en", "{report}");
    assert_eq!(report["target"], "pt");
    assert_eq!(report["format"], "docx");
    assert_eq!(report["blocks"], 3, "{report}");
    assert_eq!(report["sentences"], 3, "{report}");
    assert_eq!(report["merged_runs"], 1, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_markdown_html_and_odt_come_back_in_their_format() {
    let d = daemon().await;

    let (out, _) = d
        .doc(
            "a.txt",
            "The embassy is closed on Monday.\r\n\r\nPlease bring your passport.\n".as_bytes(),
            "txt",
        )
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.matches("\r\n").count(), 2, "{out:?}");
    assert!(
        out.ends_with(".\n") && out.contains("passaporte"),
        "{out:?}"
    );

    let md = "# Consular services\n\nThe *embassy* is closed on Monday.\n\n```\nkeep this code\n```\n\n- Bring your [passport](https://example.org/passport).\n";
    let (out, report) = d.doc("a.md", md.as_bytes(), "md").await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("# "), "{out}");
    assert!(out.contains("```\nkeep this code\n```"), "{out}");
    assert!(out.contains("(https://example.org/passport)"), "{out}");
    assert!(out.to_lowercase().contains("embaixada"), "{out}");
    assert!(!out.contains("Monday"), "{out}");
    assert!(
        report["skipped"].as_array().is_some_and(|s| !s.is_empty()),
        "{report}"
    );

    let html = r#"<!doctype html><html><head><title>Consular services</title><style>p { color: red }</style></head><body><p>The <b>embassy</b> is closed on Monday.</p><script>var s = "The embassy is closed";</script><img src="x.png" alt="The flag of the embassy"></body></html>"#;
    let (out, _) = d.doc("a.html", html.as_bytes(), "html").await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(r#"<script>var s = "The embassy is closed";</script>"#),
        "{out}"
    );
    assert!(out.contains("<style>p { color: red }</style>"), "{out}");
    assert!(out.contains("<b>"), "{out}");
    assert!(
        !out.contains("Monday") && out.to_lowercase().contains("embaixada"),
        "{out}"
    );
    assert!(!out.contains("The flag"), "alt text is translated: {out}");

    let content = r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3"><office:body><office:text><text:h text:outline-level="1">Notice to visitors</text:h><text:p text:style-name="P1">The <text:span text:style-name="T1">embassy</text:span> is closed on Monday.</text:p></office:text></office:body></office:document-content>"#;
    let styles = r#"<?xml version="1.0" encoding="UTF-8"?><office:document-styles xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" office:version="1.3"/>"#;
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    let odt = zip_of(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", content.as_bytes()),
        ("styles.xml", styles.as_bytes()),
    ]);
    let (out, report) = d.doc("a.odt", &odt, "odt").await.unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&out)).unwrap();
    assert_eq!(z.by_index(0).unwrap().name(), "mimetype");
    assert_eq!(
        z.by_index(0).unwrap().compression(),
        zip::CompressionMethod::Stored
    );
    let xml = String::from_utf8(entry(&out, "content.xml")).unwrap();
    assert!(xml.contains(r#"text:style-name="T1""#), "{xml}");
    assert!(
        !xml.contains("Monday") && xml.to_lowercase().contains("embaixada"),
        "{xml}"
    );
    assert_eq!(report["blocks"], 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_is_translated_with_its_timings() {
    let d = daemon().await;
    let seg = |id, start, end, text: &str| Segment {
        id,
        start,
        end,
        text: text.into(),
        confidence: 0.9,
        avg_logprob: -0.1,
        no_speech_prob: 0.01,
        repetition: 0.0,
        doubts: vec![],
    };
    let t = Transcript {
        language: "en".into(),
        language_probability: Some(0.98),
        task: Task::Transcribe,
        model: "whisper-base-q8_0".into(),
        duration: 9.0,
        speech_duration: 8.0,
        segments: vec![
            seg(0, 0.0, 4.2, " The embassy is closed on Monday."),
            seg(1, 4.2, 8.9, " Please bring your passport."),
        ],
    };
    let out = d
        .client
        .translate_transcript(&t, "auto", "pt")
        .await
        .unwrap();
    assert_eq!(out.language, "pt");
    assert_eq!(out.segments.len(), 2);
    for (a, b) in t.segments.iter().zip(&out.segments) {
        assert_eq!((a.id, a.start, a.end), (b.id, b.start, b.end));
        assert_ne!(a.text, b.text);
        assert!(b.text.starts_with(' '), "leading space kept: {:?}", b.text);
    }
    assert!(out.segments[1].text.contains("passaporte"), "{out:?}");
    assert_eq!(out.duration, t.duration);
}

fn api_code(e: ClientError) -> String {
    match e {
        ClientError::Api(a) => a.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_get_clear_errors_and_the_daemon_keeps_serving() {
    let d = daemon().await;
    // A zip bomb: 300 MiB of zeros in a few hundred kB.
    let zeros = vec![0u8; 300 << 20];
    let bomb = zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("word/document.xml", &zeros),
    ]);
    drop(zeros);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let e = d.doc("bomb.docx", &bomb, "docx").await.unwrap_err();
    assert_eq!(api_code(e), "too_large");

    // Path traversal in an entry name.
    let evil = zip_of(&[
        ("word/document.xml", b"<w:document xmlns:w=\"x\"/>"),
        ("../../etc/cron.d/evil", b"* * * * * root true"),
    ]);
    assert_eq!(
        api_code(d.doc("evil.docx", &evil, "docx").await.unwrap_err()),
        "bad_document"
    );

    // Malformed XML, not a zip at all, a truncated zip, invalid UTF-8 text, empty input.
    let broken = docx("<w:p><w:r><w:t>The embassy</w:r></w:p>");
    assert_eq!(
        api_code(d.doc("broken.docx", &broken, "docx").await.unwrap_err()),
        "bad_document"
    );
    assert_eq!(
        api_code(d.doc("nz.docx", b"not a zip", "docx").await.unwrap_err()),
        "bad_document"
    );
    let good = docx("<w:p><w:r><w:t>Hello.</w:t></w:r></w:p>");
    assert_eq!(
        api_code(
            d.doc("cut.docx", &good[..good.len() / 2], "docx")
                .await
                .unwrap_err()
        ),
        "bad_document"
    );
    assert_eq!(
        api_code(d.doc("bad.txt", b"caf\xc3\x28", "txt").await.unwrap_err()),
        "bad_document"
    );
    assert_eq!(
        api_code(d.doc("empty.txt", b"", "txt").await.unwrap_err()),
        "empty"
    );
    let e = d.doc("a.pdf", b"%PDF-1.7", "pdf").await.unwrap_err();
    assert_eq!(api_code(e), "bad_request");
    // A pair no model does is refused before the document is read.
    let path = d.dir.path().join("fr.txt");
    std::fs::write(&path, "Bonjour.").unwrap();
    let e = d
        .client
        .translate_document(&path, "txt", "fr", "pt")
        .await
        .unwrap_err();
    assert_eq!(api_code(e), "bad_request");

    // Still serving.
    assert!(d.client.is_up().await);
    let (out, _) = d.doc("ok.docx", &good, "docx").await.unwrap();
    assert!(
        !String::from_utf8(entry(&out, "word/document.xml"))
            .unwrap()
            .contains(">Hello.<")
    );
}
