//! Shared by the integration tests: a bundle made of the dev store's models, with acceptance
//! cases that hold on them, and the engines' sockets in a test's directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use valise_bundle::{AcceptanceCase, BundleInfo, Engine, Manifest};
use valise_models::{Catalog, FileEntry};
use valise_update::acceptance::EngineSockets;

pub const JFK: &str = "And so, my fellow Americans, ask not what your country can do for you, \
                   ask what you can do for your country.";
pub const PT: &str = "O gato está em cima da mesa.";
pub const PT_EN: &str = "The cat is on the table.";

/// A bundle of the dev store's default whisper model and pt→en model, with `jfk.wav` as its
/// acceptance input in `dir/acceptance/`.
pub fn manifest(dir: &Path, cases: Vec<AcceptanceCase>) -> Manifest {
    let store = valise_e2e::store();
    let text = std::fs::read_to_string(store.join("current/manifest.toml")).unwrap();
    let catalog = Catalog::parse(&text, Path::new("manifest.toml")).unwrap();
    let models = catalog
        .models
        .into_iter()
        .filter(|m| m.id == "whisper-base-q8_0" || m.id == "bergamot-pten-tiny-int8")
        .collect();
    std::fs::create_dir_all(dir.join("acceptance")).unwrap();
    let wav = dir.join("acceptance/jfk.wav");
    std::fs::copy(valise_e2e::testdata("jfk.wav"), &wav).unwrap();
    let m = Manifest {
        bundle: BundleInfo {
            id: "test".into(),
            version: 1,
            engines: vec![Engine::Transcribe, Engine::Translate],
            description: String::new(),
        },
        models,
        files: vec![FileEntry {
            path: "acceptance/jfk.wav".into(),
            size: std::fs::metadata(&wav).unwrap().len(),
            sha256: valise_models::sha256_file(&wav).unwrap(),
        }],
        acceptance: cases,
    };
    m.validate().unwrap();
    m
}

pub fn jfk(expect: &str, max_wer: f64) -> AcceptanceCase {
    AcceptanceCase::Transcribe {
        name: "jfk-en".into(),
        model: "whisper-base-q8_0".into(),
        input: "acceptance/jfk.wav".into(),
        language: Some("en".into()),
        expect: expect.into(),
        max_wer,
        timeout_s: Some(120),
    }
}

pub fn pt_en(expect: &str) -> AcceptanceCase {
    AcceptanceCase::Translate {
        name: "pt-en-cat".into(),
        model: "bergamot-pten-tiny-int8".into(),
        text: PT.into(),
        expect_exact: expect.into(),
        timeout_s: Some(60),
    }
}

pub fn sockets(dir: &Path) -> EngineSockets {
    EngineSockets {
        transcribe: dir.join("transcribe.sock"),
        translate: dir.join("translate.sock"),
    }
}
