//! The LUKS2 header read straight from the device: no cryptsetup process, and no lock on a
//! volume that is open. The wipe needs the header's size, the seal its tokens.

use std::io::Read;
use std::path::Path;

/// A LUKS2 header: its size (binary header and JSON area, per copy) and its JSON metadata.
pub struct Header {
    pub size: u64,
    /// The JSON area up to its first NUL (at most 4 MiB).
    pub json: Vec<u8>,
}

/// The primary LUKS2 header of `dev`; None when there is none (not LUKS2, unreadable).
pub fn read(dev: &Path) -> Option<Header> {
    let mut f = std::fs::File::open(dev).ok()?;
    let mut bin = [0u8; 4096];
    f.read_exact(&mut bin).ok()?;
    if &bin[..6] != b"LUKS\xba\xbe" || bin[6..8] != [0, 2] {
        return None;
    }
    // hdr_size (binary header + JSON) at offset 8, big endian.
    let size = u64::from_be_bytes(bin[8..16].try_into().ok()?);
    let mut json = vec![0u8; usize::try_from(size.checked_sub(4096)?).ok()?.min(4 << 20)];
    f.read_exact(&mut json).ok()?;
    let end = json.iter().position(|&b| b == 0).unwrap_or(json.len());
    json.truncate(end);
    Some(Header { size, json })
}
