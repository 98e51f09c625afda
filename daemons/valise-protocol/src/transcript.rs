//! A transcript and its renderings (txt, srt, vtt, json).

use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Transcribe,
    /// Whisper's speech-to-English translation.
    Translate,
}

/// Why a segment deserves a second look.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Doubt {
    /// Whisper thinks there may be no speech here (possible hallucination).
    NoSpeech,
    /// The decoder was unsure of its words (low average log-probability).
    LowConfidence,
    /// The text repeats itself, whisper's classic failure on noise and music.
    Repetition,
    /// A translated transcript's segment that could not be translated (its source text is
    /// kept).
    Untranslated,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    pub id: u32,
    /// Seconds from the start of the recording.
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// exp(avg_logprob): 0..1.
    pub confidence: f32,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    /// Share of repeated word 3-grams in the text, 0..1.
    pub repetition: f32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doubts: Vec<Doubt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transcript {
    /// Spoken language (detected or forced), ISO code.
    pub language: String,
    /// Detection probability, when detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_probability: Option<f32>,
    pub task: Task,
    pub model: String,
    /// Duration of the audio, seconds.
    pub duration: f64,
    /// Seconds of audio the voice activity detector judged to be speech.
    pub speech_duration: f64,
    pub segments: Vec<Segment>,
}

impl Transcript {
    /// The text alone, segments joined by spaces.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            let t = s.text.trim();
            if t.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
        out
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Txt => render_txt(self),
            Format::Srt => render_srt(self),
            Format::Vtt => render_vtt(self),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Txt,
    Srt,
    Vtt,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Txt => "txt",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Txt => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "txt" | "text" => Ok(Self::Txt),
            "srt" => Ok(Self::Srt),
            "vtt" => Ok(Self::Vtt),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown format {s:?} (txt, srt, vtt, json)")),
        }
    }
}

fn render_txt(t: &Transcript) -> String {
    let mut out = String::new();
    for s in &t.segments {
        let text = s.text.trim();
        if !text.is_empty() {
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// `HH:MM:SS<sep>mmm`, rounding to the millisecond.
fn timestamp(secs: f64, sep: char) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

fn render_srt(t: &Transcript) -> String {
    let mut out = String::new();
    let mut n = 0;
    for s in &t.segments {
        // A blank line ends an SRT cue, so text must not contain one.
        let text = s.text.trim().replace("\n\n", "\n");
        if text.is_empty() {
            continue;
        }
        n += 1;
        let _ = write!(
            out,
            "{n}\n{} --> {}\n{text}\n\n",
            timestamp(s.start, ','),
            timestamp(s.end, ',')
        );
    }
    out
}

fn render_vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in &t.segments {
        // WebVTT cue text is markup: escape it, and keep "-->" and blank lines out of it.
        let text = s
            .text
            .trim()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace("\n\n", "\n");
        if text.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "{} --> {}\n{text}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.')
        );
    }
    out
}

/// Share of word 3-grams that occur more than once: 0 for normal speech, close to 1 for
/// whisper's "thank you thank you thank you ..." loops.
pub fn repetition_score(text: &str) -> f32 {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() < 6 {
        return 0.0;
    }
    let grams: Vec<&[String]> = words.windows(3).collect();
    let mut seen = std::collections::HashSet::new();
    let repeated = grams.iter().filter(|g| !seen.insert(**g)).count();
    repeated as f32 / grams.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transcript {
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
        Transcript {
            language: "fr".into(),
            language_probability: Some(0.98),
            task: Task::Transcribe,
            model: "whisper-base-q8_0".into(),
            duration: 3725.5,
            speech_duration: 10.0,
            segments: vec![
                seg(0, 0.0, 1.5, " Bonjour à tous."),
                seg(1, 3723.25, 3725.5, " <b>Fin</b> & merci --> au revoir"),
            ],
        }
    }

    #[test]
    fn srt_has_numbered_cues_with_comma_milliseconds() {
        let srt = sample().render(Format::Srt);
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:01,500\nBonjour à tous.\n\n2\n01:02:03,250 --> 01:02:05,500\n"), "{srt}");
    }

    #[test]
    fn vtt_escapes_markup() {
        let vtt = sample().render(Format::Vtt);
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nBonjour à tous.\n"));
        assert!(
            vtt.contains("&lt;b&gt;Fin&lt;/b&gt; &amp; merci --&gt; au revoir"),
            "{vtt}"
        );
    }

    #[test]
    fn txt_and_json_round_trip() {
        let t = sample();
        assert_eq!(
            t.render(Format::Txt),
            "Bonjour à tous.\n<b>Fin</b> & merci --> au revoir\n"
        );
        let back: Transcript = serde_json::from_str(&t.render(Format::Json)).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn repetition_spots_loops() {
        assert_eq!(
            repetition_score("ask not what your country can do for you"),
            0.0
        );
        let looped = "thank you for watching ".repeat(8);
        assert!(repetition_score(&looped) > 0.7);
    }
}
