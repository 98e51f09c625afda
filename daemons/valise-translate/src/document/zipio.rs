//! Zip containers (`.docx`, `.odt`) read with limits and written back entry for entry.
//!
//! ```text
//!  bytes ──Package::open──▶ entry names checked (count, traversal, encryption, overlap)
//!        ──Package::read(name)──▶ one part inflated through a bounded reader
//!        ──Package::write(replaced)──▶ the same entries in the same order: replaced parts
//!                                      compressed again, every other entry raw-copied
//! ```
//!
//! The input is untrusted, so nothing the archive declares is believed: an entry is inflated
//! through a reader that stops one byte past `max_entry_bytes` (a declared size can lie), and
//! a running total caps everything inflated for one document. Declared sizes are still
//! checked first so that an honest but oversized document fails before any inflation.
//! Entries that are not parsed are never inflated at all: they are copied compressed, which
//! also keeps them byte for byte (images, embedded objects, the ODF `mimetype`, stored and
//! first, which readers check at a fixed offset).

use std::io::{Cursor, Read, Write};

use zip::result::ZipError;
use zip::{ZipArchive, ZipWriter};

use super::DocLimits;
use crate::TranslateError;

/// An opened zip container whose entry names have been checked.
pub(crate) struct Package<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    names: Vec<String>,
    max_entry_bytes: u64,
    max_total_bytes: u64,
    /// Bytes inflated so far (all parts read from this package).
    inflated: u64,
}

impl std::fmt::Debug for Package<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("entries", &self.names.len())
            .field("inflated", &self.inflated)
            .finish()
    }
}

impl<'a> Package<'a> {
    /// Opens `input` as a zip and checks every entry before anything is inflated: the entry
    /// count, the names (no absolute path, `..`, backslash or NUL: the output is opened by
    /// other programs, which may extract it), no encryption, and no compressed data shared
    /// between entries (a raw copy of overlapping entries would multiply the output).
    pub fn open(input: &'a [u8], limits: &DocLimits) -> Result<Self, TranslateError> {
        let mut archive = ZipArchive::new(Cursor::new(input))
            .map_err(|e| bad(format!("not a readable zip container: {e}")))?;
        if archive.len() > limits.max_entries {
            return Err(TranslateError::TooLarge(format!(
                "the container has {} entries; at most {} are accepted",
                archive.len(),
                limits.max_entries
            )));
        }
        let mut names = Vec::with_capacity(archive.len());
        let mut compressed_total: u64 = 0;
        for index in 0..archive.len() {
            let entry = archive
                .by_index_raw(index)
                .map_err(|e| bad(format!("broken zip container: {e}")))?;
            let name = entry.name().to_owned();
            check_name(&name)?;
            if entry.encrypted() {
                return Err(bad(format!(
                    "entry {name:?} is encrypted (password-protected documents are not accepted)"
                )));
            }
            compressed_total = compressed_total.saturating_add(entry.compressed_size());
            names.push(name);
        }
        // Entries that do not overlap cannot hold more compressed bytes than the file.
        if compressed_total > input.len() as u64 {
            return Err(bad(
                "entries share their compressed data (overlapping entries, a zip bomb)".into(),
            ));
        }
        Ok(Self {
            archive,
            names,
            max_entry_bytes: limits.max_entry_bytes,
            max_total_bytes: limits.max_total_bytes,
            inflated: 0,
        })
    }

    /// Entry names, in archive order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether an entry of this exact name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The decompressed bytes of entry `name`, read through a bounded reader: at most
    /// `max_entry_bytes` for this entry and `max_total_bytes` for the whole package, whatever
    /// the archive declares.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, TranslateError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| bad(format!("entry {name:?} is missing")))?;
        let left = self.max_total_bytes.saturating_sub(self.inflated);
        let cap = self.max_entry_bytes.min(left);
        let (max_entry, max_total) = (self.max_entry_bytes, self.max_total_bytes);
        let too_large = |size: u64| {
            if size > max_entry {
                TranslateError::TooLarge(format!(
                    "entry {name:?} decompresses to more than {max_entry} bytes"
                ))
            } else {
                TranslateError::TooLarge(format!(
                    "the container decompresses to more than {max_total} bytes"
                ))
            }
        };
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| zip_error(name, &e))?;
        // Fail fast on an honest declaration; the bounded read below catches a lying one.
        if entry.size() > cap {
            return Err(too_large(entry.size()));
        }
        let mut bytes = Vec::new();
        entry
            .take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("entry {name:?} cannot be decompressed: {e}")))?;
        let read = bytes.len() as u64;
        if read > cap {
            return Err(too_large(read));
        }
        self.inflated += read;
        Ok(bytes)
    }

    /// Writes the container again: the same entries in the same order, those named in
    /// `replaced` with their new bytes (same compression method, date and permissions as
    /// the original), all others copied raw (never inflated, byte for byte).
    pub fn write(mut self, replaced: &[(String, Vec<u8>)]) -> Result<Vec<u8>, TranslateError> {
        let mut out = ZipWriter::new(Cursor::new(Vec::new()));
        for index in 0..self.names.len() {
            let name = self.names[index].clone();
            let entry = self
                .archive
                .by_index_raw(index)
                .map_err(|e| zip_error(&name, &e))?;
            match replaced.iter().find(|(n, _)| *n == name) {
                Some((_, bytes)) => {
                    let options = entry.options();
                    drop(entry);
                    out.start_file(name.as_str(), options)
                        .map_err(|e| write_error(&name, &e))?;
                    out.write_all(bytes)
                        .map_err(|e| write_error(&name, &ZipError::Io(e)))?;
                }
                None => out
                    .raw_copy_file(entry)
                    .map_err(|e| write_error(&name, &e))?,
            }
        }
        let cursor = out.finish().map_err(|e| write_error("the container", &e))?;
        Ok(cursor.into_inner())
    }
}

/// Rejects names that would escape the extraction folder of whoever unpacks the output, or
/// that no producer of OOXML/ODF writes.
fn check_name(name: &str) -> Result<(), TranslateError> {
    let drive = name.as_bytes().get(1) == Some(&b':');
    let unsafe_name = name.is_empty()
        || name.starts_with('/')
        || drive
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|part| part == "..");
    if unsafe_name {
        return Err(bad(format!(
            "entry name {name:?} is unsafe (absolute path or path traversal)"
        )));
    }
    Ok(())
}

fn bad(message: String) -> TranslateError {
    TranslateError::BadDocument(message)
}

fn zip_error(name: &str, e: &ZipError) -> TranslateError {
    bad(format!("entry {name:?} cannot be read: {e}"))
}

/// Writing goes to memory, so a failure here is ours, not the document's.
fn write_error(what: &str, e: &ZipError) -> TranslateError {
    TranslateError::Internal(format!("cannot write {what} to the output zip: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use zip::CompressionMethod;
    use zip::write::SimpleFileOptions;

    /// Builds a zip in memory: `(name, bytes, stored?)` in order.
    pub(crate) fn build_zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes, stored) in entries {
            let method = if *stored {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            let options = SimpleFileOptions::default()
                .compression_method(method)
                .large_file(bytes.len() as u64 > u32::MAX as u64);
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Every entry of a zip: `(name, decompressed bytes, method)`, in order.
    pub(crate) fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>, CompressionMethod)> {
        let mut archive = ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut f = archive.by_index(i).unwrap();
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).unwrap();
                (f.name().to_owned(), bytes, f.compression())
            })
            .collect()
    }

    fn small_limits() -> DocLimits {
        DocLimits {
            max_entry_bytes: 1024 * 1024,
            ..DocLimits::default()
        }
    }

    fn err_of(input: &[u8], limits: &DocLimits) -> TranslateError {
        Package::open(input, limits).unwrap_err()
    }

    #[test]
    fn unsafe_names_are_rejected_by_name() {
        for name in [
            "../evil.xml",
            "/abs.xml",
            "a/../../b",
            "a\\b",
            "C:/x",
            "a\0b",
        ] {
            let zip = build_zip(&[("ok.xml", b"<a/>", false), (name, b"x", false)]);
            match err_of(&zip, &DocLimits::default()) {
                TranslateError::BadDocument(m) => assert!(m.contains("unsafe"), "{name}: {m}"),
                e => panic!("{name}: {e:?}"),
            }
        }
    }

    #[test]
    fn too_many_entries_are_too_large() {
        let zip = build_zip(&[("a", b"1", false), ("b", b"2", false), ("c", b"3", false)]);
        let limits = DocLimits {
            max_entries: 2,
            ..DocLimits::default()
        };
        assert!(matches!(err_of(&zip, &limits), TranslateError::TooLarge(_)));
    }

    #[test]
    fn not_a_zip_and_truncated_zip_are_bad_documents() {
        let zip = build_zip(&[("a.xml", b"<a>hello</a>", false)]);
        for input in [&b"not a zip at all"[..], &zip[..zip.len() / 2], &[][..]] {
            assert!(matches!(
                err_of(input, &DocLimits::default()),
                TranslateError::BadDocument(_)
            ));
        }
    }

    #[test]
    fn a_deflated_bomb_stops_at_the_entry_limit() {
        let zeros = vec![0u8; 20 * 1024 * 1024];
        let zip = build_zip(&[("word/document.xml", &zeros, false)]);
        assert!(zip.len() < 100 * 1024, "compresses well: {}", zip.len());
        let mut p = Package::open(&zip, &small_limits()).unwrap();
        assert!(matches!(
            p.read("word/document.xml"),
            Err(TranslateError::TooLarge(_))
        ));
    }

    #[test]
    fn a_lying_declared_size_is_caught_by_the_bounded_read() {
        let zeros = vec![b'a'; 3 * 1024 * 1024];
        let mut zip = build_zip(&[("big.xml", &zeros, false)]);
        // Rewrite the declared uncompressed size (local header offset 22, central directory
        // entry offset 24) to 10 bytes.
        patch_declared_size(&mut zip, 10);
        let mut archive = ZipArchive::new(Cursor::new(&zip[..])).unwrap();
        assert_eq!(
            archive.by_index_raw(0).unwrap().size(),
            10,
            "the lie is in place"
        );
        let mut p = Package::open(&zip, &small_limits()).unwrap();
        match p.read("big.xml") {
            Err(TranslateError::TooLarge(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    fn patch_declared_size(zip: &mut [u8], size: u32) {
        let le = size.to_le_bytes();
        zip[22..26].copy_from_slice(&le);
        let central = zip
            .windows(4)
            .position(|w| w == b"PK\x01\x02")
            .expect("central directory");
        zip[central + 24..central + 28].copy_from_slice(&le);
    }

    #[test]
    fn the_total_limit_covers_all_parts_read() {
        let part = vec![b'x'; 600 * 1024];
        let zip = build_zip(&[("a.xml", &part, false), ("b.xml", &part, false)]);
        let limits = DocLimits {
            max_total_bytes: 1024 * 1024,
            ..small_limits()
        };
        let mut p = Package::open(&zip, &limits).unwrap();
        assert_eq!(p.read("a.xml").unwrap().len(), part.len());
        assert!(matches!(p.read("b.xml"), Err(TranslateError::TooLarge(_))));
    }

    #[test]
    fn untouched_entries_are_copied_raw_in_order() {
        let png = [0x89, b'P', b'N', b'G', 1, 2, 3, 4];
        let zip = build_zip(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text", true),
            ("content.xml", b"<a>old</a>", false),
            ("Pictures/x.png", &png, false),
        ]);
        let mut p = Package::open(&zip, &DocLimits::default()).unwrap();
        assert_eq!(p.read("content.xml").unwrap(), b"<a>old</a>");
        let out = p
            .write(&[("content.xml".into(), b"<a>new</a>".to_vec())])
            .unwrap();
        let got = entries(&out);
        let names: Vec<_> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["mimetype", "content.xml", "Pictures/x.png"]);
        assert_eq!(got[0].2, CompressionMethod::Stored);
        assert_eq!(got[1].1, b"<a>new</a>");
        assert_eq!(got[1].2, CompressionMethod::Deflated);
        assert_eq!(got[2].1, png);
    }

    #[test]
    fn a_missing_entry_is_a_bad_document() {
        let zip = build_zip(&[("a.xml", b"<a/>", false)]);
        let mut p = Package::open(&zip, &DocLimits::default()).unwrap();
        assert!(p.contains("a.xml"));
        assert!(matches!(
            p.read("b.xml"),
            Err(TranslateError::BadDocument(_))
        ));
    }
}
