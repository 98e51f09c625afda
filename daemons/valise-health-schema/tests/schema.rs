//! The JSON Schema files and examples in `schema/` against the types.
//!
//! - `schema/<kind>.json` is what `valise_health_schema::schemas()` generates (regenerate with
//!   `VALISE_UPDATE_SCHEMA=1 cargo test -p valise-health-schema --test schema`);
//! - every `schema/examples/<kind>-*.json` deserializes into its type, serializes back to the
//!   same JSON, and validates against the committed schema;
//! - every `schema/examples/invalid/<kind>-*.json` is refused by both the types and the schema.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use valise_health_schema::{
    BoxId, Channel, CommandMessage, EventMessage, HealthMessage, Name, StatusMessage, schemas,
};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("JSON")
}

fn kind_of(path: &Path) -> String {
    let stem = path.file_stem().expect("stem").to_string_lossy();
    stem.split('-').next().expect("kind").to_owned()
}

fn validator(kind: &str) -> jsonschema::Validator {
    let schema = read_json(&schema_dir().join(format!("{kind}.json")));
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Deserializes with the type for `kind`, and serializes back.
fn through_types(kind: &str, v: &Value) -> Result<Value, serde_json::Error> {
    fn go<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, serde_json::Error> {
        let t: T = serde_json::from_value(v.clone())?;
        serde_json::to_value(&t)
    }
    match kind {
        "status" => go::<StatusMessage>(v),
        "health" => go::<HealthMessage>(v),
        "events" => go::<EventMessage>(v),
        "cmd" => go::<CommandMessage>(v),
        other => panic!("example of unknown kind {other}"),
    }
}

#[test]
fn schema_files_are_current() {
    let update = std::env::var_os("VALISE_UPDATE_SCHEMA").is_some();
    for (stem, schema) in schemas() {
        let path = schema_dir().join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&schema).expect("serialize") + "\n";
        if update {
            fs::write(&path, &text).expect("write schema");
        }
        let committed = fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} differs from the types: run VALISE_UPDATE_SCHEMA=1 cargo test -p valise-health-schema --test schema",
            path.display()
        );
    }
}

#[test]
fn every_example_deserializes_round_trips_and_validates() {
    let files = json_files(&schema_dir().join("examples"));
    let mut kinds = BTreeSet::new();
    let mut event_kinds = BTreeSet::new();
    let mut commands = BTreeSet::new();
    for path in &files {
        let kind = kind_of(path);
        let v = read_json(path);
        let back = through_types(&kind, &v)
            .unwrap_or_else(|e| panic!("{}: refused by the types: {e}", path.display()));
        assert_eq!(back, v, "{}: does not round-trip", path.display());
        let errors: Vec<String> = validator(&kind)
            .iter_errors(&v)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: invalid against schema/{kind}.json: {errors:?}",
            path.display()
        );
        match kind.as_str() {
            "events" => {
                event_kinds.insert(v["event"]["kind"].as_str().expect("kind").to_owned());
            }
            "cmd" => {
                commands.insert(v["command"].as_str().expect("command").to_owned());
            }
            _ => {}
        }
        kinds.insert(kind);
    }
    assert_eq!(
        kinds,
        ["cmd", "events", "health", "status"]
            .map(String::from)
            .into()
    );
    // One example per event and per command, so the documentation shows each.
    let all_events: BTreeSet<String> = [
        "update_started",
        "update_finished",
        "update_rolled_back",
        "engine_crashed",
        "engine_restarted",
        "expiry_soon",
        "disk_nearly_full",
        "failed_sign_ins",
    ]
    .map(String::from)
    .into();
    assert_eq!(event_kinds, all_events);
    let all_commands: BTreeSet<String> = valise_health_schema::Command::ALL
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .expect("c")
                .as_str()
                .expect("s")
                .to_owned()
        })
        .collect();
    assert_eq!(commands, all_commands);
}

#[test]
fn every_invalid_example_is_refused_by_the_types_and_the_schema() {
    let files = json_files(&schema_dir().join("examples/invalid"));
    assert!(files.len() >= 10, "the failure fixtures are missing");
    for path in &files {
        let kind = kind_of(path);
        let v = read_json(path);
        assert!(
            through_types(&kind, &v).is_err(),
            "{}: accepted by the types",
            path.display()
        );
        assert!(
            !validator(&kind).is_valid(&v),
            "{}: accepted by schema/{kind}.json",
            path.display()
        );
    }
}

#[test]
fn spooled_messages_are_marked_replayed_and_read_back() {
    let v = read_json(&schema_dir().join("examples/events-engine-crashed.json"));
    let msg: EventMessage = serde_json::from_value(v).expect("event");
    assert!(!msg.replayed);
    let mut s = valise_health_schema::Spooled::Event(msg);
    s.mark_replayed();
    let bytes = s.to_json();
    let back = valise_health_schema::Spooled::from_json(Channel::Events, &bytes).expect("back");
    assert_eq!(back, s);
    assert_eq!(back.seq(), 103);
    let replayed: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(replayed["replayed"], Value::Bool(true));
    assert!(validator("events").is_valid(&replayed));
}

/// The names and the topic prefix are the ones of the box certificate (`valise-pki`).
#[test]
fn names_and_topics_agree_with_the_box_identity() {
    for s in [
        "lisbon",
        "box-1",
        "a",
        "-a",
        "a-",
        "A",
        "a.b",
        "a:b",
        "a b",
        "",
        "é",
        &"x".repeat(32),
        &"x".repeat(33),
    ] {
        assert_eq!(
            Name::new(s).is_ok(),
            valise_pki::Name::new("name", s).is_ok(),
            "{s:?}"
        );
    }
    let pki = valise_pki::BoxIdentity::new("lisbon", "box-1").expect("identity");
    let ours = BoxId::new(
        Name::new("lisbon").expect("n"),
        Name::new("box-1").expect("n"),
    );
    assert_eq!(ours.prefix(), pki.topic_prefix());
    assert_eq!(ours.common_name(), pki.common_name());
    assert_eq!(
        ours.topic(Channel::Cmd),
        format!("{}/cmd", pki.topic_prefix())
    );
}
