//! The portal with the real engines (processes, Unix sockets, real models): a French
//! recording transcribed, corrected and exported; an English transcript translated in one
//! click; the OpenAI- and LibreTranslate-compatible APIs; and a transcription engine killed
//! mid-job, whose job is retried once the engine is back, not lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Portal, config_in, wait_job};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use valise_e2e::engines::EngineProc;
use valise_e2e::{testdata, words};

const FRENCH: &str = "/usr/share/asterisk/sounds/fr/conf-onlyperson.wav";
const FRENCH_LONG: &str = "/usr/share/asterisk/sounds/fr/demo-congrats.wav";

fn start_engines(dir: &Path) -> (EngineProc, EngineProc) {
    valise_e2e::engines::start_engines(dir, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_transcribe_correct_export_and_translate_through_the_portal() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path());
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("nadia", false);
    let c = p.login("nadia").await;

    // French recording, language detected.
    let audio =
        std::fs::read(FRENCH).unwrap_or_else(|e| panic!("{FRENCH}: {e}: {}", valise_e2e::HINT));
    let (s, job) = c
        .upload("/api/jobs/transcribe?filename=réunion.wav", audio.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let job = wait_job(&c, &id, Duration::from_secs(180)).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["detected_language"], "fr");
    let (_, t) = c.get_json(&format!("/api/jobs/{id}/transcript")).await;
    let text = words(
        &t["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" "),
    );
    for w in ["seul", "participant", "conférence"] {
        assert!(text.contains(w), "{w:?} missing in {text:?}");
    }
    // Correct the first segment; the correction is what exports carry, and search finds it.
    let (s, t2) = c
        .send_json(Method::PUT, &format!("/api/jobs/{id}/transcript"), &json!({"segments": [{"index": 0, "text": "Vous êtes actuellement le seul participant."}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    assert_eq!(t2["segments"][0]["edited"], true);
    let srt = c
        .req(Method::GET, &format!("/api/jobs/{id}/export?format=srt"))
        .send()
        .await
        .unwrap();
    assert_eq!(srt.status(), StatusCode::OK);
    let disposition = srt.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("attachment") && disposition.contains(".srt"),
        "{disposition}"
    );
    let srt = srt.text().await.unwrap();
    assert!(
        srt.starts_with("1\n00:00:0") && srt.contains("actuellement"),
        "{srt}"
    );
    let (_, found) = c.get_json("/api/jobs?q=actuellement").await;
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "search finds the corrected text"
    );
    let docx = c
        .req(Method::GET, &format!("/api/jobs/{id}/export?format=docx"))
        .send()
        .await
        .unwrap();
    let bytes = docx.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("word/document.xml").unwrap(), &mut xml)
        .unwrap();
    assert!(xml.contains("actuellement"));
    // The player's audio, with ranges.
    let r = c
        .req(Method::GET, &format!("/api/jobs/{id}/media"))
        .header("range", "bytes=0-43")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &audio[..44]);

    // English recording, then its transcript translated to Portuguese in one click, timings kept.
    let (s, job) = c
        .upload(
            "/api/jobs/transcribe?filename=jfk.wav&language=en",
            std::fs::read(testdata("jfk.wav")).unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let en = job["id"].as_str().unwrap().to_owned();
    assert_eq!(
        wait_job(&c, &en, Duration::from_secs(180)).await["state"],
        "done"
    );
    let (s, tj) = c
        .send_json(
            Method::POST,
            &format!("/api/jobs/{en}/translate"),
            &json!({"target": "pt"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tj}");
    let tid = tj["id"].as_str().unwrap().to_owned();
    let tj = wait_job(&c, &tid, Duration::from_secs(60)).await;
    assert_eq!(tj["state"], "done", "{tj}");
    assert_eq!(tj["parent"], en.as_str());
    let (_, src) = c.get_json(&format!("/api/jobs/{en}/transcript")).await;
    let (_, dst) = c.get_json(&format!("/api/jobs/{tid}/transcript")).await;
    let (ss, ds) = (
        src["segments"].as_array().unwrap(),
        dst["segments"].as_array().unwrap(),
    );
    assert_eq!(ss.len(), ds.len());
    assert_eq!(ss[0]["start"], ds[0]["start"]);
    let pt = words(
        &ds.iter()
            .map(|s| s["text"].as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" "),
    );
    assert!(pt.contains("país"), "{pt}");

    // Text translation.
    let (s, r) = c
        .send_json(
            Method::POST,
            "/api/translate",
            &json!({"text": "The embassy is closed on Monday.\n\nThank you.", "target": "pt"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(
        r["translation"].as_str().unwrap().contains("embaixada"),
        "{r}"
    );
    assert!(
        r["translation"].as_str().unwrap().contains("\n\n"),
        "paragraphs kept: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_use_the_openai_and_libretranslate_compatible_apis() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path());
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let c = p.client();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(testdata("jfk.wav")).unwrap())
                .file_name("jfk.wav"),
        )
        .text("model", "whisper-1")
        .text("language", "en")
        .text("response_format", "verbose_json");
    let r = c
        .raw(Method::POST, "/v1/audio/transcriptions")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["language"], "en");
    assert!(
        words(v["text"].as_str().unwrap()).contains("ask not what your country can do for you"),
        "{v}"
    );
    assert!(v["segments"][0]["start"].is_number());
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(testdata("jfk.wav")).unwrap())
                .file_name("jfk.wav"),
        )
        .text("response_format", "srt");
    let r = c
        .raw(Method::POST, "/v1/audio/transcriptions")
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("1\n00:00:00,"));
    // The job is in the owner's history like any other.
    let mut owner = p.client();
    owner.token = Some(token.clone());
    let (_, list) = owner.get_json("/api/jobs").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // LibreTranslate: key in the body, as its clients send it.
    let r = c.raw(Method::POST, "/translate").json(&json!({"q": "Good morning, how are you?", "source": "en", "target": "pt", "api_key": token})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["translatedText"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("bom dia"),
        "{v}"
    );
    let r = c
        .raw(Method::POST, "/translate")
        .bearer_auth(&token)
        .json(&json!({"q": ["Thank you.", "Good night."], "source": "auto", "target": "pt"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["translatedText"].as_array().unwrap().len(), 2, "{v}");
    let r = c.raw(Method::POST, "/detect").json(&json!({"q": "Obrigado pela sua paciência, o consulado está fechado.", "api_key": token})).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["language"], "pt", "{v}");
    let r = c
        .raw(Method::GET, "/languages")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let en = v
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "en")
        .unwrap();
    assert!(en["targets"].as_array().unwrap().contains(&json!("pt")));
    let r = c
        .raw(Method::POST, "/translate")
        .json(&json!({"q": "Hello", "target": "pt", "api_key": "vt_forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_engine_dies_is_retried_when_it_returns_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, _l) = start_engines(dir.path());
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("pia", false);
    let c = p.login("pia").await;
    let audio = std::fs::read(FRENCH_LONG)
        .unwrap_or_else(|e| panic!("{FRENCH_LONG}: {e}: {}", valise_e2e::HINT));
    let (s, job) = c
        .upload("/api/jobs/transcribe?filename=long.wav&language=fr", audio)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = job["id"].as_str().unwrap().to_owned();
    // Wait until the engine works on it, then kill the engine.
    let start = Instant::now();
    loop {
        let (_, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        if j["state"] == "running" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.kill();
    let start = Instant::now();
    loop {
        let (_, j) = c.get_json(&format!("/api/jobs/{id}")).await;
        if j["state"] == "queued" {
            assert_eq!(j["notice"], "engine_unavailable", "{j}");
            assert_eq!(j["error"]["code"], "retrying", "{j}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.restart();
    let j = wait_job(&c, &id, Duration::from_secs(300)).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["attempts"], 2);
    assert!(j.get("error").is_none(), "the retry note is cleared: {j}");
    let (_, t) = c.get_json(&format!("/api/jobs/{id}/transcript")).await;
    assert!(words(t["segments"][0]["text"].as_str().unwrap_or("")).len() > 3);
}
