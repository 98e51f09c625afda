//! openai-whisper's assets: the mel filterbank (`mel_filters.npz`) and the
//! tiktoken vocabularies (`gpt2.tiktoken`, `multilingual.tiktoken`).

use std::io::Read;
use std::path::Path;

use base64::Engine as _;

use crate::error::ConvertError;

/// Upper bound on one decompressed `.npy` entry. The real `mel_128.npy` is
/// 103 KB; the bound only stops a zip bomb from exhausting memory.
const MAX_NPY_BYTES: u64 = 64 << 20;

/// A row-major `n_mel × n_fft` filterbank.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    pub n_mel: usize,
    pub n_fft: usize,
    pub data: Vec<f32>,
}

/// Loads entry `mel_{n_mels}.npy` of the npz archive at `path`.
pub fn load_mel_filters(path: &Path, n_mels: usize) -> Result<MelFilters, ConvertError> {
    let err = |reason: String| ConvertError::MelFilters {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| ConvertError::io("opening", path, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| err(format!("not a readable npz (zip) archive: {e}")))?;
    let entry_name = format!("mel_{n_mels}.npy");
    let mut entry = archive.by_name(&entry_name).map_err(|e| {
        err(format!(
            "no entry {entry_name} for a model with n_mels = {n_mels}: {e}"
        ))
    })?;
    let mut npy = Vec::new();
    (&mut entry)
        .take(MAX_NPY_BYTES + 1)
        .read_to_end(&mut npy)
        .map_err(|e| err(format!("decompressing {entry_name}: {e}")))?;
    if npy.len() as u64 > MAX_NPY_BYTES {
        return Err(err(format!(
            "{entry_name} is larger than {MAX_NPY_BYTES} bytes"
        )));
    }
    let filters =
        parse_npy_f32_2d(&npy).map_err(|reason| err(format!("{entry_name}: {reason}")))?;
    if filters.n_mel != n_mels {
        return Err(err(format!(
            "{entry_name} has {} rows, expected {n_mels}",
            filters.n_mel
        )));
    }
    Ok(filters)
}

/// Parses a little-endian float32/float64, C-ordered, 2-D `.npy` array.
pub fn parse_npy_f32_2d(npy: &[u8]) -> Result<MelFilters, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if npy.len() < 10 || &npy[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = npy[6];
    let (header_len, header_start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([npy[8], npy[9]])), 10),
        2 | 3 => {
            if npy.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes([npy[8], npy[9], npy[10], npy[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= npy.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&npy[header_start..data_start])
        .map_err(|_| "npy header is not text")?;

    let descr = dict_value(header, "descr").ok_or("npy header has no 'descr'")?;
    let item = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        other => return Err(format!("unsupported dtype {other} (expected <f4 or <f8)")),
    };
    let fortran = dict_value(header, "fortran_order").ok_or("npy header has no 'fortran_order'")?;
    if fortran != "False" {
        return Err(format!(
            "fortran_order = {fortran}; only C order is supported"
        ));
    }
    let shape = dict_value(header, "shape").ok_or("npy header has no 'shape'")?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape}")))
        .collect::<Result<_, _>>()?;
    let [n_mel, n_fft] = dims[..] else {
        return Err(format!("expected a 2-D array, found shape {shape}"));
    };
    let n = n_mel
        .checked_mul(n_fft)
        .and_then(|n| n.checked_mul(item))
        .ok_or_else(|| format!("shape {shape} overflows"))?;
    let body = &npy[data_start..];
    if body.len() != n {
        return Err(format!(
            "shape {shape} needs {n} data bytes, found {}",
            body.len()
        ));
    }
    let data = if item == 4 {
        crate::f32s_le(body)
    } else {
        body.chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect()
    };
    Ok(MelFilters { n_mel, n_fft, data })
}

/// The raw text of `'key': VALUE` in a numpy header dict (tuples kept whole).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let at = quoted
        .iter()
        .find_map(|q| header.find(q.as_str()).map(|i| i + q.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

/// Reads a tiktoken vocabulary: one `base64(token) rank` per line, ranks
/// 0, 1, 2, ... in order (whisper.cpp assigns ids by position, so a file
/// whose ranks are not its line order would silently mis-tokenize).
pub fn load_tiktoken(path: &Path) -> Result<Vec<Vec<u8>>, ConvertError> {
    let text = std::fs::read(path).map_err(|e| ConvertError::io("reading", path, e))?;
    parse_tiktoken(path, &text)
}

/// [`load_tiktoken`] on bytes already read.
pub fn parse_tiktoken(path: &Path, text: &[u8]) -> Result<Vec<Vec<u8>>, ConvertError> {
    let err = |line: usize, reason: String| ConvertError::Tokenizer {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut tokens = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| err(line_no, "not ASCII text".into()))?;
        let mut fields = line.split_ascii_whitespace();
        let (Some(b64), Some(rank), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err(
                line_no,
                format!("expected `BASE64 RANK`, found {line:?}"),
            ));
        };
        // multilingual.tiktoken ends with `= 50256`: Python's b64decode (which
        // convert-pt-to-ggml.py uses) turns the lone pad into an empty token.
        let token = if b64.bytes().all(|b| b == b'=') {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| err(line_no, format!("bad base64 {b64:?}: {e}")))?
        };
        let rank: usize = rank
            .parse()
            .map_err(|_| err(line_no, format!("bad rank {rank:?}")))?;
        if rank != tokens.len() {
            return Err(err(
                line_no,
                format!("rank {rank} out of order, expected {}", tokens.len()),
            ));
        }
        if !seen.insert(token.clone()) {
            return Err(err(line_no, format!("duplicate token {b64}")));
        }
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err(err(0, "no tokens".into()));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn npy_f32_and_f64() {
        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = parse_npy_f32_2d(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &body,
        ))
        .expect("valid f4");
        assert_eq!((m.n_mel, m.n_fft), (2, 3));
        assert_eq!(m.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        let body: Vec<u8> = [0.5f64, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = parse_npy_f32_2d(&npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
            &body,
        ))
        .expect("valid f8");
        assert_eq!(m.data, vec![0.5, -1.0]);
    }

    #[test]
    fn npy_rejects_bad_input() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert!(parse_npy_f32_2d(&npy(ok, &[0; 23])).is_err(), "short body");
        assert!(parse_npy_f32_2d(&npy(ok, &[0; 25])).is_err(), "long body");
        let be = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert!(parse_npy_f32_2d(&npy(be, &[0; 24])).is_err(), "big endian");
        let f = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
        assert!(parse_npy_f32_2d(&npy(f, &[0; 24])).is_err(), "fortran");
        let d3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }";
        assert!(parse_npy_f32_2d(&npy(d3, &[0; 24])).is_err(), "3-D");
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 3), }";
        assert!(parse_npy_f32_2d(&npy(huge, &[0; 24])).is_err(), "overflow");
        assert!(
            parse_npy_f32_2d(b"\x93NUMPY\x01\x00\xff\xff{").is_err(),
            "truncated"
        );
        assert!(parse_npy_f32_2d(b"PK").is_err(), "magic");
    }

    #[test]
    fn tiktoken_parses_and_validates() {
        let p = Path::new("t.tiktoken");
        let toks = parse_tiktoken(p, b"IQ== 0\r\nIg== 1\n\nIGE= 2\n= 3\n").expect("valid");
        assert_eq!(
            toks,
            vec![b"!".to_vec(), b"\"".to_vec(), b" a".to_vec(), Vec::new()]
        );

        for bad in [
            &b"IQ== 1\n"[..],
            b"IQ== 0\nIQ== 1\n",
            b"= 0\n== 1\n",
            b"I*== 0\n",
            b"IQ==\n",
            b"IQ== 0 7\n",
            b"IQ== x\n",
            b"",
            b"\xff 0\n",
        ] {
            let e = parse_tiktoken(p, bad).expect_err("must reject");
            assert!(matches!(e, ConvertError::Tokenizer { .. }), "{e}");
        }
    }
}
