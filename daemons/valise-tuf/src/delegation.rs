//! Which targets a delegated role may sign for (spec 5.6.7.1): `paths` patterns matched per
//! `/`-separated segment with shell-style wildcards (same segment count; python-tuf's
//! `_is_target_in_pathpattern` with `fnmatch.fnmatchcase`), or `path_hash_prefixes` matched
//! against the hex sha256 of the target path. The search itself (pre-order, lazy fetch,
//! terminating roles, visit limit) is the updater's, later.

use ring::digest;

use crate::schema::DelegatedRole;

impl DelegatedRole {
    /// True when this role is trusted for `target_path`.
    pub fn is_delegated_path(&self, target_path: &str) -> bool {
        if let Some(prefixes) = &self.path_hash_prefixes {
            let h = hex::encode(digest::digest(&digest::SHA256, target_path.as_bytes()));
            return prefixes.iter().any(|p| h.starts_with(p.as_str()));
        }
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| path_matches(target_path, p));
        }
        false
    }
}

/// `target` matches `pattern` segment by segment (equal number of `/`-separated segments).
pub fn path_matches(target: &str, pattern: &str) -> bool {
    let t: Vec<&str> = target.split('/').collect();
    let p: Vec<&str> = pattern.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| fnmatch(t, p))
}

/// Python's `fnmatch.fnmatchcase`: `*` any run, `?` one character, `[seq]`, `[!seq]` with
/// ranges; a `[` without a closing `]` is literal; no escape character.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    matches(&n, &p)
}

fn matches(n: &[char], p: &[char]) -> bool {
    let Some((&first, rest)) = p.split_first() else {
        return n.is_empty();
    };
    match first {
        '*' => (0..=n.len()).any(|i| matches(&n[i..], rest)),
        '?' => !n.is_empty() && matches(&n[1..], rest),
        '[' => match class(p) {
            Some(Class {
                negated,
                ranges: items,
                len,
            }) => {
                let Some((&c, n_rest)) = n.split_first() else {
                    return false;
                };
                let inside = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != negated && matches(n_rest, &p[len..])
            }
            None => n.first() == Some(&'[') && matches(&n[1..], rest),
        },
        c => n.first() == Some(&c) && matches(&n[1..], rest),
    }
}

/// A parsed `[...]` class.
struct Class {
    negated: bool,
    /// Inclusive character ranges (a single character is `(c, c)`).
    ranges: Vec<(char, char)>,
    /// Pattern characters the class takes, brackets included.
    len: usize,
}

/// Parses a `[...]` class at the start of `p`, or None when it does not close (then `[` is
/// a literal).
fn class(p: &[char]) -> Option<Class> {
    let mut j = 1;
    let negated = p.get(j) == Some(&'!');
    if negated {
        j += 1;
    }
    let start = j;
    if p.get(j) == Some(&']') {
        j += 1;
    }
    while j < p.len() && p[j] != ']' {
        j += 1;
    }
    if j >= p.len() {
        return None;
    }
    let body = &p[start..j];
    let mut items = Vec::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            items.push((body[k], body[k + 2]));
            k += 3;
        } else {
            items.push((body[k], body[k]));
            k += 1;
        }
    }
    Some(Class {
        negated,
        ranges: items,
        len: j + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values: Python 3.11 `fnmatch.fnmatchcase(name, pattern)` on the same pairs.
    #[test]
    fn fnmatch_like_python() {
        for (name, pattern, expected) in [
            ("model.bin", "*", true),
            ("model.bin", "*.bin", true),
            ("model.bin", "*.onnx", false),
            ("", "*", true),
            ("a", "?", true),
            ("ab", "?", false),
            ("b", "[abc]", true),
            ("d", "[abc]", false),
            ("d", "[!abc]", true),
            ("m", "[a-z]", true),
            ("M", "[a-z]", false),
            ("-", "[a-]", true),
            ("]", "[]]", true),
            ("[x", "[x", true),
            ("x", "[!]]", true),
            ("é", "?", true),
            ("Model", "model", false),
            ("a.b.c", "a*c", true),
            ("abc", "a\\bc", false),
        ] {
            assert_eq!(fnmatch(name, pattern), expected, "{name:?} {pattern:?}");
        }
    }

    #[test]
    fn paths_match_per_segment() {
        assert!(path_matches("models/pt-en/model.bin", "models/*/*.bin"));
        assert!(!path_matches("models/pt-en/model.bin", "models/*"));
        assert!(path_matches("models/x", "models/*"));
        assert!(!path_matches("models/x", "*"));
        assert!(path_matches("/abs", "/*"));
    }

    #[test]
    fn role_paths_and_hash_prefixes() {
        let role = |paths: Option<Vec<&str>>, prefixes: Option<Vec<&str>>| DelegatedRole {
            name: "r".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: paths.map(|v| v.into_iter().map(String::from).collect()),
            path_hash_prefixes: prefixes.map(|v| v.into_iter().map(String::from).collect()),
        };
        assert!(role(Some(vec!["docs/*", "models/*"]), None).is_delegated_path("models/a"));
        assert!(!role(Some(vec!["docs/*"]), None).is_delegated_path("models/a"));
        // sha256("models/a") = 9178ae0c… (Python's hashlib agrees).
        assert!(role(None, Some(vec!["00", "9178"])).is_delegated_path("models/a"));
        assert!(!role(None, Some(vec!["9179", "0"])).is_delegated_path("models/a"));
        assert!(!role(None, None).is_delegated_path("models/a"));
    }
}
