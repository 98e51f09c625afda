//! The evaluation sets: real speech with reference transcripts, all installed by
//! `scripts/setup` (Debian packages `asterisk-core-sounds-{en,fr}-wav`, `pocketsphinx` test data,
//! and `scripts/fetch-testdata` for JFK).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::{Lang, normalize};

/// One recording and what is said in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Unique within its set (file name without `.wav`, with its subdirectory if any).
    pub id: String,
    pub path: PathBuf,
    pub reference: String,
}

/// A named set of recordings in one language.
#[derive(Debug, Clone)]
pub struct DataSet {
    pub name: String,
    pub lang: Lang,
    pub items: Vec<Item>,
}

/// Names accepted by [`load`], in the order the benchmark runs them.
pub const SET_NAMES: [&str; 4] = ["fr", "en", "librivox", "jfk"];

pub const JFK_REFERENCE: &str = "And so my fellow Americans, ask not what your country can do for \
    you, ask what you can do for your country.";

fn setup_hint(what: &str, path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} not found at {} — run scripts/setup (it installs the test data)",
        path.display()
    )
}

/// `$VALISE_TESTDATA`, else `$VALISE_CACHE/testdata`, else `/var/cache/valise/testdata`.
pub fn testdata_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("VALISE_TESTDATA") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("VALISE_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/valise"), PathBuf::from);
    cache.join("testdata")
}

pub const LIBRIVOX_DIR: &str = "/usr/share/pocketsphinx/test/data/librivox";
pub const ASTERISK_SOUNDS: &str = "/usr/share/asterisk/sounds";
pub const ASTERISK_DOC: &str = "/usr/share/doc";

/// JFK's "ask not" (11 s, 16 kHz).
pub fn jfk() -> anyhow::Result<DataSet> {
    let path = testdata_dir().join("jfk.wav");
    if !path.is_file() {
        return Err(setup_hint("jfk.wav", &path));
    }
    Ok(DataSet {
        name: "jfk".into(),
        lang: Lang::En,
        items: vec![Item {
            id: "jfk".into(),
            path,
            reference: JFK_REFERENCE.into(),
        }],
    })
}

/// The five LibriVox clips of pocketsphinx's test data (read English, 16 kHz), with the
/// references of its `transcription` file (`<s> text </s> (fileid)`).
pub fn librivox() -> anyhow::Result<DataSet> {
    let dir = Path::new(LIBRIVOX_DIR);
    let tr = dir.join("transcription");
    let text =
        std::fs::read_to_string(&tr).map_err(|_| setup_hint("LibriVox transcription", &tr))?;
    let mut items = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (body, id) = line
            .rsplit_once('(')
            .with_context(|| format!("{}: bad line {line:?}", tr.display()))?;
        let id = id.trim_end_matches(')').trim().to_string();
        let reference = body
            .replace("<s>", " ")
            .replace("</s>", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let path = dir.join(format!("{id}.wav"));
        if !path.is_file() {
            return Err(setup_hint("LibriVox clip", &path));
        }
        items.push(Item {
            id,
            path,
            reference,
        });
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    if items.is_empty() {
        bail!("{}: no clips", tr.display());
    }
    Ok(DataSet {
        name: "librivox".into(),
        lang: Lang::En,
        items,
    })
}

/// Stage directions inside a transcript, not spoken: removed from the reference.
const STAGE_DIRECTIONS: [&str; 3] = [
    "(emphase)",
    "(simple tone sound plays)",
    "(note: does not say \"2\")",
];

/// The reference for one Asterisk transcript line, or `None` for a sound description.
fn asterisk_reference(text: &str) -> Option<String> {
    let t = text.trim();
    // "[ascending tones]", "(ahooga)", "(10 seconds of silence)": not speech
    if (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')')) {
        return None;
    }
    let mut r = t.to_string();
    for s in STAGE_DIRECTIONS {
        r = r.replace(s, " ");
    }
    // "at [@]", "dash [-]": the bracket shows the symbol, the word is what is said
    while let (Some(a), Some(b)) = (r.find('['), r.find(']')) {
        if b < a {
            break;
        }
        r.replace_range(a..=b, " ");
    }
    let r = r.split_whitespace().collect::<Vec<_>>().join(" ");
    (!r.is_empty()).then_some(r)
}

/// The Asterisk core prompts in `lang` (8 kHz telephone speech), with the transcripts
/// shipped in `core-sounds-<lang>.txt.gz` (`name: text` lines). Prompts whose transcript is a
/// sound description are skipped; so are those in subdirectories (`digits/`, `letters/`...)
/// unless `subdirs`. The transcripts' typos are kept: they are the reference.
pub fn asterisk(lang: Lang, subdirs: bool) -> anyhow::Result<DataSet> {
    let code = lang.code();
    let doc = Path::new(ASTERISK_DOC).join(format!(
        "asterisk-core-sounds-{code}/core-sounds-{code}.txt.gz"
    ));
    let sounds = Path::new(ASTERISK_SOUNDS).join(code);
    let file = std::fs::File::open(&doc).map_err(|_| setup_hint("Asterisk transcripts", &doc))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", doc.display()))?;
    let mut items = Vec::new();
    for line in text.lines().flat_map(split_glued_entries) {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((name, body)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(' ') || (!subdirs && name.contains('/')) {
            continue;
        }
        let Some(reference) = asterisk_reference(body) else {
            continue;
        };
        if normalize(&reference, lang).is_empty() {
            continue;
        }
        let path = sounds.join(format!("{name}.wav"));
        if !path.is_file() {
            continue; // a transcript for a prompt the package does not ship
        }
        items.push(Item {
            id: name.to_string(),
            path,
            reference,
        });
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items.dedup_by(|a, b| a.id == b.id);
    if items.is_empty() {
        return Err(setup_hint("Asterisk prompts", &sounds));
    }
    Ok(DataSet {
        name: code.into(),
        lang,
        items,
    })
}

/// Splits a transcript line that holds two entries because a newline is missing in the
/// package (French `vm-record-prepend: … dièse.vm-review-nonurgent: Pour enlever …`): a new
/// entry starts right after a `.`, `?` or `!` with a prompt name (lowercase letters, digits,
/// `_`, `/`, at least one `-`) and a `:`. Without this, one prompt's reference would carry
/// another's words.
fn split_glued_entries(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if !matches!(c, '.' | '?' | '!') || i < start {
            continue;
        }
        let rest = &line[i + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_/".contains(c)))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.contains('-') && rest[name_len..].starts_with(':') {
            parts.push(&line[start..=i]);
            start = i + 1;
        }
    }
    parts.push(&line[start..]);
    parts
}

/// Loads a set by name (see [`SET_NAMES`]).
pub fn load(name: &str, subdirs: bool) -> anyhow::Result<DataSet> {
    match name {
        "fr" => asterisk(Lang::Fr, subdirs),
        "en" => asterisk(Lang::En, subdirs),
        "librivox" => librivox(),
        "jfk" => jfk(),
        other => match LONG_SETS.iter().find(|l| l.name == other) {
            Some(l) => long(l),
            None => bail!(
                "unknown set {other:?} (known: {}, {})",
                SET_NAMES.join(", "),
                LONG_SETS.map(|l| l.name).join(", ")
            ),
        },
    }
}

/// A long recording built from the short sets, as a meeting or an interview is: real speech
/// joined end to end with pauses between the speakers.
#[derive(Debug, Clone, Copy)]
pub struct LongSet {
    pub name: &'static str,
    pub lang: Lang,
    /// The recording is at least this long.
    pub min_secs: f64,
}

/// The long sets (`--sets long5,long5-fr`...): English from the Asterisk English prompts
/// with the LibriVox clips and JFK woven in, French from the French prompts.
pub const LONG_SETS: [LongSet; 5] = [
    LongSet {
        name: "long5",
        lang: Lang::En,
        min_secs: 300.0,
    },
    LongSet {
        name: "long5-fr",
        lang: Lang::Fr,
        min_secs: 300.0,
    },
    LongSet {
        name: "long30",
        lang: Lang::En,
        min_secs: 1800.0,
    },
    LongSet {
        name: "long30-fr",
        lang: Lang::Fr,
        min_secs: 1800.0,
    },
    LongSet {
        name: "long120",
        lang: Lang::En,
        min_secs: 7200.0,
    },
];

/// Bumped whenever the way long sets are built changes, so cached builds are not reused.
const LONG_BUILD_VERSION: u32 = 1;

/// Where built long sets are cached: `$VALISE_CACHE/bench-long` (outside the work tree, like
/// the other fetched data; rebuilt when missing).
pub fn long_cache_dir() -> PathBuf {
    let cache = std::env::var_os("VALISE_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/valise"), PathBuf::from);
    cache.join("bench-long")
}

/// The pause after the `i`-th piece: 0.8 to 3.2 s, varied as turns in a conversation are.
pub fn long_gap_secs(i: usize) -> f64 {
    0.8 + ((i * 7) % 5) as f64 * 0.6
}

/// The pieces of a long set, in order, before the length is reached: short-set items taken
/// in turn (English: one LibriVox clip or JFK after every six prompts), over again if needed.
fn long_sources(l: &LongSet) -> anyhow::Result<Vec<Item>> {
    Ok(match l.lang {
        Lang::Fr => asterisk(Lang::Fr, false)?.items,
        Lang::En => {
            let prompts = asterisk(Lang::En, false)?.items;
            let mut read = librivox()?.items;
            read.extend(jfk()?.items);
            let mut out = Vec::new();
            for (i, p) in prompts.into_iter().enumerate() {
                out.push(p);
                if i % 6 == 5 {
                    out.push(read[(i / 6) % read.len()].clone());
                }
            }
            out
        }
    })
}

/// The long set `l`: one WAV (16 kHz mono, 16-bit) and its joined reference, built on first
/// use from the real recordings and cached under [`long_cache_dir`]. Each piece is decoded and
/// resampled by Valise's own decoder (valise-media), the one the daemon uses for an 8 kHz
/// upload; pauses hold a faint deterministic noise floor (about -66 dBFS), not digital zero,
/// as a room does.
pub fn long(l: &LongSet) -> anyhow::Result<DataSet> {
    let sources = long_sources(l)?;
    let dir = long_cache_dir();
    let wav = dir.join(format!("{}-v{LONG_BUILD_VERSION}.wav", l.name));
    let txt = wav.with_extension("txt");
    if !(wav.is_file() && txt.is_file()) {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = wav.with_extension("wav.part");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&tmp, spec)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let mut refs = Vec::new();
        let mut samples = 0u64;
        let mut noise = 0x2545_f491_u32;
        let limits = valise_media::Limits::default();
        let mut pcm = Vec::new();
        for (i, item) in sources.iter().cycle().enumerate() {
            if samples as f64 / 16_000.0 >= l.min_secs {
                break;
            }
            let mut dec = valise_media::Decoder::open(&item.path, &limits)
                .with_context(|| format!("decoding {}", item.path.display()))?;
            pcm.clear();
            while dec.read(&mut pcm, 16_000 * 5)? > 0 {}
            for &x in &pcm {
                w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
            }
            let gap = (long_gap_secs(i) * 16_000.0) as u64;
            for _ in 0..gap {
                // xorshift32: the same noise on every build
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                w.write_sample((noise % 33) as i16 - 16)?;
            }
            samples += pcm.len() as u64 + gap;
            refs.push(item.reference.clone());
        }
        w.finalize()?;
        std::fs::write(&txt, refs.join("\n") + "\n")?;
        std::fs::rename(&tmp, &wav)?;
    }
    let reference = std::fs::read_to_string(&txt)?
        .lines()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(DataSet {
        name: l.name.into(),
        lang: l.lang,
        items: vec![Item {
            id: l.name.into(),
            path: wav,
            reference,
        }],
    })
}

/// A deterministic subset of at most `limit` items, spread evenly over the set sorted by id:
/// item `floor(i * len / limit)` for `i` in `0..limit` (every k-th item when `len` is a
/// multiple of `limit`). `None` keeps everything.
pub fn subset(mut items: Vec<Item>, limit: Option<usize>) -> Vec<Item> {
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let len = items.len();
    match limit {
        Some(n) if n < len => (0..n).map(|i| items[i * len / n].clone()).collect(),
        _ => items,
    }
}

/// Audio length of a WAV file in seconds (from its header).
pub fn wav_duration(path: &Path) -> anyhow::Result<f64> {
    let r =
        hound::WavReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let spec = r.spec();
    Ok(f64::from(r.duration()) / f64::from(spec.sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glued_transcript_entries_are_split() {
        assert_eq!(
            split_glued_entries("a-b: Appuyez sur dièse.c-d-e: Pour enlever ce message."),
            ["a-b: Appuyez sur dièse.", "c-d-e: Pour enlever ce message."]
        );
        // a name without a hyphen, or a space after the full stop, is ordinary text
        assert_eq!(
            split_glued_entries("x: 28.8 kbps. Note: ok"),
            ["x: 28.8 kbps. Note: ok"]
        );
        assert_eq!(
            split_glued_entries("x: fin.suite: ok"),
            ["x: fin.suite: ok"]
        );
    }

    #[test]
    fn sound_descriptions_are_not_references() {
        assert_eq!(asterisk_reference(" [ascending tones]"), None);
        assert_eq!(asterisk_reference("(ahooga)"), None);
        assert_eq!(
            asterisk_reference("Pour (emphase)").as_deref(),
            Some("Pour")
        );
        assert_eq!(asterisk_reference("dash [-]").as_deref(), Some("dash"));
        assert_eq!(
            asterisk_reference("au menu poli (ne m'appelez plus, jamais), 4.").as_deref(),
            Some("au menu poli (ne m'appelez plus, jamais), 4.")
        );
    }

    #[test]
    fn subsets_are_spread_and_deterministic() {
        let items: Vec<Item> = (0..10)
            .rev()
            .map(|i| Item {
                id: format!("{i:02}"),
                path: PathBuf::new(),
                reference: String::new(),
            })
            .collect();
        let ids = |v: Vec<Item>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(subset(items.clone(), Some(5))),
            ["00", "02", "04", "06", "08"]
        );
        assert_eq!(ids(subset(items.clone(), Some(3))), ["00", "03", "06"]);
        assert_eq!(ids(subset(items.clone(), None)).len(), 10);
        assert_eq!(ids(subset(items, Some(50))).len(), 10);
    }
}
