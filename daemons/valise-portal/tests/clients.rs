//! The users' own client libraries against the real portal and the real engines (issue 8,
//! items 12–14): OpenAI's Python SDK (transcriptions as json, text, srt and verbose_json,
//! translations, models) and LibreTranslate's `libretranslatepy` (translate, detect,
//! languages, with its `api_key`), run unchanged by `tests/clients/check_clients.py` in the
//! venv that `scripts/fetch-clients` installs (pinned by sha256). A missing venv fails the
//! test: it says to run scripts/setup.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Portal, config_in};
use serde_json::Value;
use valise_e2e::engines::start_engines;
use valise_e2e::{run_with_limit, testdata, words};

const FRENCH: &str = "/usr/share/asterisk/sounds/fr/conf-onlyperson.wav";

fn client_python() -> PathBuf {
    let cache = std::env::var_os("VALISE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/valise"));
    let py = cache.join("venv-clients/bin/python");
    assert!(
        py.exists() && cache.join("venv-clients/.valise-sha256").exists(),
        "the API clients' venv is missing at {} (scripts/fetch-clients makes it): run scripts/setup",
        py.display()
    );
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openais_sdk_and_libretranslatepy_work_unchanged() {
    let python = client_python();
    let dir = tempfile::tempdir().unwrap();
    let (_t, _l) = start_engines(dir.path(), 2);
    let config = config_in(dir.path());
    let p = Portal::start_with(dir, config).await;
    p.add_user("omar", false);
    let token = p.token("omar");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/check_clients.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg(p.url(""))
        .arg(&token)
        .arg(testdata("jfk.wav"))
        .arg(FRENCH)
        .env("SSL_CERT_FILE", &p.config.tls.cert)
        .env("NO_PROXY", "*")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    // The client blocks; the portal runs on this runtime's other threads.
    let out =
        tokio::task::spawn_blocking(move || run_with_limit(&mut cmd, Duration::from_secs(600)))
            .await
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check_clients.py failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    let jfk = "ask not what your country can do for you";
    assert!(
        words(v["transcription_json"].as_str().unwrap()).contains(jfk),
        "{v}"
    );
    assert!(
        words(v["transcription_text"].as_str().unwrap()).contains(jfk),
        "{v}"
    );
    let srt = v["transcription_srt"].as_str().unwrap();
    assert!(
        srt.starts_with("1\n00:00:00,") && srt.contains(" --> "),
        "{srt}"
    );
    let verbose = &v["transcription_verbose"];
    assert_eq!(verbose["language"], "en", "{verbose}");
    assert!(verbose["duration"].as_f64().unwrap() > 10.0, "{verbose}");
    assert!(words(verbose["text"].as_str().unwrap()).contains(jfk));
    let segments = verbose["segments"].as_array().unwrap();
    assert!(!segments.is_empty() && segments[0]["start"].as_f64().unwrap() < 1.0);
    // French speech, English text.
    let en = words(v["translation"].as_str().unwrap());
    assert!(en.contains("only") && en.contains("conference"), "{en}");
    let models: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(models.contains(&"whisper-1"), "{models:?}");
    assert!(
        models.len() > 1,
        "the box's own models are listed: {models:?}"
    );
    assert_eq!(v["model"], "whisper-1");
    assert_eq!(v["missing_model"]["status"], 404, "{v}");
    assert_eq!(v["forged_key"]["status"], 401, "{v}");

    assert!(
        v["lt_translate"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("bom dia"),
        "{v}"
    );
    assert!(
        v["lt_translate_auto"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("embaixada"),
        "{v}"
    );
    assert_eq!(v["lt_detect"][0]["language"], "pt", "{v}");
    assert!(v["lt_detect"][0]["confidence"].as_f64().unwrap() > 50.0);
    let en = v["lt_languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "en")
        .unwrap();
    assert_eq!(en["name"], "English");
    assert!(en["targets"].as_array().unwrap().contains(&"pt".into()));
    assert_eq!(v["lt_forged_key"]["status"], 401, "{v}");
    assert!(v["lt_forged_key"]["body"]["error"].is_string(), "{v}");
}
