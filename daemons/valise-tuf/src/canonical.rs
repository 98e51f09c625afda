//! Canonical JSON exactly as securesystemslib's `encode_canonical` writes it (the bytes TUF
//! signatures are made over): object keys sorted by code point, no whitespace, strings with
//! only `\` and `"` escaped (every other character, control characters and non-ASCII
//! included, is written as its raw UTF-8), integers only. No Unicode normalization: a string
//! is signed as the bytes it is (olpc-cjson, tough's encoder, NFC-normalizes; that differs).

use serde_json::Value;

use crate::error::Error;

/// Encodes `value` canonically. Floats are refused (`encode_canonical` raises on them).
pub fn encode(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(Error::Format(format!("not an integer: {n}")));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here, not trusted to the map type: serde_json's `preserve_order` feature
            // (enabled by any crate of the build) would keep insertion order. Rust's `str`
            // order is byte order, which for UTF-8 is code point order, Python's `sorted`.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: Value) -> String {
        String::from_utf8(encode(&v).expect("encodes")).expect("utf-8")
    }

    // Expected strings below were produced by securesystemslib 1.6.0's
    // `securesystemslib.formats.encode_canonical` on the same Python values
    // (`tests/data/python-tuf/make_fixture.py` prints them as a check).

    #[test]
    fn sorts_keys_without_whitespace() {
        assert_eq!(
            enc(json!({"b": 1, "a": [true, false, null], "c": {"z": -3, "y": "x"}})),
            r#"{"a":[true,false,null],"b":1,"c":{"y":"x","z":-3}}"#
        );
    }

    #[test]
    fn sorts_keys_by_code_point_not_by_utf16_or_locale() {
        // U+00E9 (é) sorts after 'z'; U+1F600 after U+FFFD (UTF-16 order would swap them).
        assert_eq!(
            enc(json!({"\u{1F600}": 1, "\u{FFFD}": 2, "é": 3, "z": 4, "Z": 5})),
            "{\"Z\":5,\"z\":4,\"é\":3,\"\u{FFFD}\":2,\"\u{1F600}\":1}"
        );
    }

    #[test]
    fn escapes_only_backslash_and_quote() {
        assert_eq!(
            enc(json!("a\"b\\c\nd\te\u{0001}f/")),
            "\"a\\\"b\\\\c\nd\te\u{0001}f/\""
        );
    }

    #[test]
    fn non_ascii_is_raw_utf8_and_not_normalized() {
        // "é" precomposed (U+00E9) and decomposed (e + U+0301) stay different bytes.
        let pre = encode(&json!("caf\u{00E9}")).expect("encodes");
        let dec = encode(&json!("cafe\u{0301}")).expect("encodes");
        assert_eq!(pre, b"\"caf\xc3\xa9\"");
        assert_eq!(dec, b"\"cafe\xcc\x81\"");
        assert_ne!(pre, dec);
    }

    #[test]
    fn integers_big_and_negative() {
        assert_eq!(
            enc(json!([
                0,
                -1,
                18446744073709551615u64,
                -9223372036854775808i64
            ])),
            "[0,-1,18446744073709551615,-9223372036854775808]"
        );
    }

    #[test]
    fn floats_are_refused() {
        assert!(encode(&json!({"a": 1.5})).is_err());
        let parsed: Value = serde_json::from_str(r#"{"version": 1.0}"#).expect("parses");
        assert!(encode(&parsed).is_err());
    }
}
