//! `/etc/valise/valise-translate.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use valise_config::ByteSize;

use crate::document::DocLimits;

/// Every field has a default; the file may be absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The Unix socket the API listens on (the portal and `valisectl` connect here).
    pub socket: PathBuf,
    /// Model store root (containing `current`); discovered when absent.
    pub model_store: Option<PathBuf>,
    /// Session pairs per model: how many batches of one direction run at once. Each costs
    /// about 70 MB and one core while it runs.
    pub workers_per_model: u32,
    /// Sentences per batch (sorted by length first, so padding stays small).
    pub batch_size: u32,
    pub limits: Limits,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Characters (Unicode scalar values) per request; more is refused with `too_large`.
    pub max_chars: usize,
    /// Longest sentence given to the model, in source tokens; longer ones are split at
    /// clause punctuation, then at token boundaries (never truncated).
    pub max_sentence_tokens: usize,
    /// Wall-clock time one request may take before it is stopped with `timed_out`.
    pub max_request_secs: u64,
    /// Size of an uploaded document (or a transcript's JSON).
    pub max_document_bytes: ByteSize,
    /// Characters to translate in one document or transcript.
    pub max_document_chars: usize,
    /// Decompressed size of one part of a .docx/.odt (what a zip bomb would inflate) and of
    /// all parts together.
    pub max_document_part_bytes: ByteSize,
    pub max_document_unzipped_bytes: ByteSize,
    /// Entries in a .docx/.odt container.
    pub max_document_entries: usize,
    /// Wall-clock time for one document or transcript.
    pub max_document_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/valise/translate.sock"),
            model_store: None,
            workers_per_model: 2,
            batch_size: 16,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_chars: 100_000,
            max_sentence_tokens: 128,
            max_request_secs: 120,
            max_document_bytes: ByteSize::mib(50),
            max_document_chars: 2_000_000,
            max_document_part_bytes: ByteSize::mib(64),
            max_document_unzipped_bytes: ByteSize::mib(256),
            max_document_entries: 10_000,
            max_document_secs: 900,
        }
    }
}

impl Config {
    /// Rejects settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=16).contains(&self.workers_per_model) {
            return Err("workers_per_model must be between 1 and 16".into());
        }
        if !(1..=256).contains(&self.batch_size) {
            return Err("batch_size must be between 1 and 256".into());
        }
        if self.limits.max_chars == 0 || self.limits.max_request_secs == 0 {
            return Err("limits.max_chars and limits.max_request_secs must be positive".into());
        }
        let l = &self.limits;
        if l.max_document_bytes.bytes() == 0
            || l.max_document_chars == 0
            || l.max_document_part_bytes.bytes() == 0
            || l.max_document_unzipped_bytes.bytes() == 0
            || l.max_document_entries == 0
            || l.max_document_secs == 0
        {
            return Err("the limits.max_document_* settings must be positive".into());
        }
        if !(8..=512).contains(&self.limits.max_sentence_tokens) {
            return Err("limits.max_sentence_tokens must be between 8 and 512".into());
        }
        Ok(())
    }
}

impl Limits {
    /// The document limits these settings give.
    pub fn document(&self) -> DocLimits {
        DocLimits {
            max_bytes: self.max_document_bytes.bytes(),
            max_entry_bytes: self.max_document_part_bytes.bytes(),
            max_total_bytes: self.max_document_unzipped_bytes.bytes(),
            max_entries: self.max_document_entries,
            max_chars: self.max_document_chars,
            ..DocLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert!(toml::from_str::<Config>("[limits]\nmax_char = 3\n").is_err());
        let bad = Config {
            batch_size: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_shipped_example_is_the_documented_default() {
        let text = include_str!("../../../systemd/valise-translate.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c, Config::default());
    }
}
