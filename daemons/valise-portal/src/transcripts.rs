//! Transcripts as their owner sees them: the engine's result with the owner's corrections
//! applied. The engine's result is never rewritten; corrections live beside it, so what the
//! machine heard stays available and a correction can be traced.

use std::collections::BTreeMap;
use std::path::Path;

use valise_protocol::transcript::Transcript;

use crate::error::{PortalError, Result};
use crate::jobs::Files;

/// Longest corrected segment text.
pub const MAX_SEGMENT_CHARS: usize = 10_000;

pub type Edits = BTreeMap<usize, String>;

pub fn load(files: &Files, id: &str) -> Result<(Transcript, Edits)> {
    let raw = std::fs::read(files.result(id)?).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PortalError::NotReady,
        _ => e.into(),
    })?;
    let mut t: Transcript = serde_json::from_slice(&raw)
        .map_err(|e| PortalError::Internal(format!("stored transcript unreadable: {e}")))?;
    let edits: Edits = match std::fs::read(files.edits(id)?) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => Edits::new(),
    };
    for (i, text) in &edits {
        if let Some(s) = t.segments.get_mut(*i) {
            s.text = text.clone();
        }
    }
    Ok((t, edits))
}

/// The transcript as JSON with `"edited": true` on corrected segments.
pub fn to_json(t: &Transcript, edits: &Edits) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(segs) = v.get_mut("segments").and_then(|s| s.as_array_mut()) {
        for i in edits.keys() {
            if let Some(obj) = segs.get_mut(*i).and_then(|s| s.as_object_mut()) {
                obj.insert("edited".into(), serde_json::Value::Bool(true));
            }
        }
    }
    v
}

/// Cleans a correction: no control characters but line breaks, bounded.
pub fn clean_text(s: &str) -> Result<String> {
    if s.chars().count() > MAX_SEGMENT_CHARS {
        return Err(PortalError::TooLarge(format!(
            "a segment has at most {MAX_SEGMENT_CHARS} characters"
        )));
    }
    Ok(s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect())
}

/// Writes a file so that a power cut leaves the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    // The directory is not created here: a job deleted meanwhile must not get one back.
    let mut f = crate::storage::private_file(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub fn save_edits(files: &Files, id: &str, edits: &Edits) -> Result<()> {
    let bytes = serde_json::to_vec(edits).map_err(|e| PortalError::Internal(e.to_string()))?;
    write_atomic(&files.edits(id)?, &bytes).map_err(|e| match e {
        // Deleted while the correction was being made.
        PortalError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => PortalError::NotFound,
        e => e,
    })
}
