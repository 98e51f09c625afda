//! Uploads: streamed to disk under a size limit, their type checked from the first bytes
//! before anything decodes them, fsynced before the job is acknowledged.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use valise_protocol::translate::DocumentFormat;

use crate::error::PortalError;

/// Bytes read and dropped after the limit so that a browser still sending gets the
/// `too_large` answer rather than a reset connection.
const DRAIN_MAX: u64 = 8 << 20;
/// Bytes kept for type sniffing.
const SNIFF: usize = 4096;

/// Media containers the transcription engine decodes, recognised by their magic bytes.
pub fn sniff_media(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| {
        head.len() >= off + magic.len() && &head[off..off + magic.len()] == magic
    };
    if at(0, b"RIFF") && at(8, b"WAVE") {
        Some("wav")
    } else if at(0, b"fLaC") {
        Some("flac")
    } else if at(0, b"OggS") {
        Some("ogg")
    } else if at(4, b"ftyp") {
        Some("mp4")
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("webm")
    } else if at(0, b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Some("mp3")
    } else {
        None
    }
}

/// The document format from the file name's extension, confirmed by the first bytes.
pub fn sniff_document(filename: &str, head: &[u8]) -> Result<&'static str, PortalError> {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    // The engine's own list of formats and their extensions.
    let Some(format) = DocumentFormat::parse(&ext).map(DocumentFormat::as_str) else {
        return Err(PortalError::UnsupportedType(
            "documents are .txt, .md, .html, .docx or .odt".into(),
        ));
    };
    let zip = head.starts_with(b"PK\x03\x04");
    let ok = match format {
        "docx" | "odt" => zip,
        _ => {
            // Text: valid UTF-8 (a character may be cut at the end of the sample), no NUL.
            let valid = match std::str::from_utf8(head) {
                Ok(_) => true,
                Err(e) => e.error_len().is_none() && head.len() == SNIFF,
            };
            valid && !head.contains(&0)
        }
    };
    if ok {
        Ok(format)
    } else {
        Err(PortalError::UnsupportedType(format!(
            "the file's content is not a .{format} document"
        )))
    }
}

/// A file name as its owner will see it in the history: no directories, no control
/// characters, bounded.
pub fn clean_title(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let t: String = crate::jobs::display_title(base)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let t = t.trim();
    if t.is_empty() {
        "upload".into()
    } else {
        t.to_owned()
    }
}

/// Streams `chunks` (a request body, a multipart field) into `dest` (created, fsynced).
/// Returns the bytes written and the first bytes for sniffing. Over `limit`: the partial
/// file is removed and `too_large` returned.
pub async fn save<E: std::fmt::Display>(
    chunks: impl Stream<Item = Result<Bytes, E>>,
    dest: &Path,
    limit: u64,
    declared: Option<u64>,
) -> Result<(u64, Vec<u8>), PortalError> {
    let too_large = || {
        PortalError::TooLarge(format!(
            "the file is larger than the limit of {} MiB",
            limit >> 20
        ))
    };
    if declared.is_some_and(|d| d > limit) {
        return Err(too_large());
    }
    if let Some(dir) = dest.parent() {
        crate::storage::private_dir(dir)?;
    }
    let mut file = tokio::fs::File::from_std(crate::storage::private_file(dest)?);
    let mut head = Vec::with_capacity(SNIFF);
    let mut total = 0u64;
    let mut chunks = std::pin::pin!(chunks);
    let mut over = false;
    while let Some(chunk) = chunks.next().await {
        let data = match chunk {
            Ok(d) => d,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Err(PortalError::BadRequest(format!(
                    "the upload was interrupted: {e}"
                )));
            }
        };
        total += data.len() as u64;
        if total > limit {
            over = true;
            if total > limit + DRAIN_MAX {
                break;
            }
            continue;
        }
        if head.len() < SNIFF {
            let n = (SNIFF - head.len()).min(data.len());
            head.extend_from_slice(&data[..n]);
        }
        file.write_all(&data).await?;
    }
    if over {
        drop(file);
        let _ = tokio::fs::remove_file(dest).await;
        return Err(too_large());
    }
    file.sync_all().await?;
    Ok((total, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_magic() {
        assert_eq!(sniff_media(b"RIFF\0\0\0\0WAVEfmt "), Some("wav"));
        assert_eq!(sniff_media(b"\0\0\0\x20ftypM4A "), Some("mp4"));
        assert_eq!(sniff_media(b"ID3\x04"), Some("mp3"));
        assert_eq!(sniff_media(b"%PDF-1.7"), None);
        assert_eq!(sniff_media(b""), None);
    }

    #[test]
    fn document_type_must_match_content() {
        assert_eq!(sniff_document("a.DOCX", b"PK\x03\x04rest").unwrap(), "docx");
        assert_eq!(
            sniff_document("a.docx", b"hello").unwrap_err().code(),
            "unsupported_type"
        );
        assert_eq!(sniff_document("a.txt", "café".as_bytes()).unwrap(), "txt");
        assert_eq!(
            sniff_document("a.txt", b"\xff\xfe\0h").unwrap_err().code(),
            "unsupported_type"
        );
        assert_eq!(
            sniff_document("a.pdf", b"%PDF").unwrap_err().code(),
            "unsupported_type"
        );
    }

    #[test]
    fn titles_lose_paths_and_controls() {
        assert_eq!(clean_title("C:\\Users\\x\\note.docx"), "note.docx");
        assert_eq!(clean_title("../../etc/passwd"), "passwd");
        assert_eq!(clean_title("a\u{7}b\n.txt"), "ab.txt");
        assert_eq!(clean_title(""), "upload");
        // A right-to-left override would show "report\u{202E}fdp.exe" as "reportexe.pdf".
        assert_eq!(clean_title("report\u{202E}fdp.exe"), "reportfdp.exe");
        assert_eq!(clean_title("a\u{2066}b\u{200B}c\u{FEFF}.txt"), "abc.txt");
        // Joiners are kept: Persian and Indic text needs them.
        assert_eq!(clean_title("می\u{200C}خواهم.txt"), "می\u{200C}خواهم.txt");
    }
}
