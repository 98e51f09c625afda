//! File names and URL paths the client derives from role and target names (spec 5.3.3,
//! 5.5.1, 5.6.1, 5.7.3), so that no name from a repository can address a file outside the
//! client's directories.
//!
//! - Local files are one flat name each, the whole role or target name percent-encoded as
//!   python-tuf does (`urllib.parse.quote(name, safe="")`: `/` becomes `%2F`), so `../x`
//!   is the harmless file `..%2Fx`; names that would still be special (empty, `.`, `..`)
//!   are refused.
//! - URLs: `N.<role>.json` / `<role>.json` with the role name encoded the same way; target
//!   paths encoded per `/`-separated segment, and with consistent snapshots the first listed
//!   hash prefixed to the last segment (`dir/<hash>.<name>`, spec 5.7.3, python-tuf's
//!   `download_target`).

use crate::error::Error;
use crate::schema::TargetFile;

/// Python's `urllib.parse.quote(s, safe="")`: every UTF-8 byte except ASCII letters,
/// digits and `_.-~` as `%XX` (upper-case hex).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`quote`] for one URL path segment: `%XX` decoded; None when an escape
/// is not two hex digits or the bytes are not UTF-8 (stricter than Python's `unquote`,
/// which keeps such sequences: a name we could not have written is refused).
pub fn unquote(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The one-component local file name for a role's metadata or a target.
fn flat_name(name: &str, suffix: &str) -> Result<String, Error> {
    let q = quote(name);
    if q.is_empty() || ((q == "." || q == "..") && suffix.is_empty()) {
        return Err(Error::format(format!(
            "name {name:?} cannot be a file name"
        )));
    }
    Ok(format!("{q}{suffix}"))
}

/// `<role>.json`, the name a role's trusted metadata is stored under (no version).
pub fn metadata_file(role: &str) -> Result<String, Error> {
    flat_name(role, ".json")
}

/// The metadata URL path relative to the metadata base URL: `N.<role>.json` when a
/// version is given (root always; others with consistent snapshots), else `<role>.json`.
pub fn metadata_url_path(role: &str, version: Option<u64>) -> Result<String, Error> {
    let file = metadata_file(role)?;
    Ok(match version {
        Some(v) => format!("{v}.{file}"),
        None => file,
    })
}

/// The file name a downloaded target is kept under in the target directory.
pub fn target_file(target_path: &str) -> Result<String, Error> {
    flat_name(target_path, "")
}

/// The target URL path relative to the targets base URL.
pub fn target_url_path(
    target_path: &str,
    target: &TargetFile,
    consistent_snapshot: bool,
) -> Result<String, Error> {
    let (dir, base) = match target_path.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, target_path),
    };
    let base = if consistent_snapshot {
        let (_, hash) = target
            .hashes
            .first()
            .ok_or_else(|| Error::format(format!("{target_path}: no hashes")))?;
        format!("{hash}.{base}")
    } else {
        base.to_owned()
    };
    let mut segments: Vec<String> = match dir {
        Some(d) => d.split('/').map(quote).collect(),
        None => Vec::new(),
    };
    segments.push(quote(&base));
    Ok(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Hashes;

    #[test]
    fn quote_like_python() {
        // Expected: Python 3.11 `urllib.parse.quote(s, safe="")`.
        assert_eq!(quote("a/b c"), "a%2Fb%20c");
        assert_eq!(quote("../x"), "..%2Fx");
        assert_eq!(quote("café ✓"), "caf%C3%A9%20%E2%9C%93");
        assert_eq!(quote("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(quote("%41"), "%2541");
        for s in ["a/b c", "../x", "café ✓", "%41", ""] {
            assert_eq!(unquote(&quote(s)).as_deref(), Some(s));
        }
        assert_eq!(unquote("%2e%2E").as_deref(), Some(".."));
        assert_eq!(unquote("%4"), None);
        assert_eq!(unquote("%zz"), None);
        assert_eq!(unquote("%FF"), None);
    }

    #[test]
    fn metadata_names() {
        assert_eq!(
            metadata_url_path("root", Some(3)).expect("ok"),
            "3.root.json"
        );
        assert_eq!(
            metadata_url_path("timestamp", None).expect("ok"),
            "timestamp.json"
        );
        assert_eq!(metadata_file("a/../b").expect("ok"), "a%2F..%2Fb.json");
        assert!(metadata_file("").is_err());
    }

    #[test]
    fn target_files_stay_in_their_directory() {
        assert_eq!(
            target_file("../../etc/passwd").expect("ok"),
            "..%2F..%2Fetc%2Fpasswd"
        );
        assert_eq!(target_file("/abs").expect("ok"), "%2Fabs");
        for bad in ["", ".", ".."] {
            assert!(target_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn target_urls_with_and_without_consistent_snapshot() {
        let t = TargetFile {
            length: 1,
            hashes: Hashes(vec![
                ("sha512".into(), "bb".into()),
                ("sha256".into(), "aa".into()),
            ]),
            custom: None,
        };
        assert_eq!(
            target_url_path("models/pt en/m.bin", &t, true).expect("ok"),
            "models/pt%20en/bb.m.bin"
        );
        assert_eq!(
            target_url_path("models/pt en/m.bin", &t, false).expect("ok"),
            "models/pt%20en/m.bin"
        );
        assert_eq!(
            target_url_path("top.txt", &t, true).expect("ok"),
            "bb.top.txt"
        );
    }
}
