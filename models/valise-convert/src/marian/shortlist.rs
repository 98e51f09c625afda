//! Marian's binary lexical shortlist (`lex.*.s2t.bin`, `marian/src/data/shortlist.{h,cpp}`,
//! `BinaryShortlistGenerator`).
//!
//! Layout (little-endian):
//!
//! ```text
//! u64 magic              = 0xF11A48D5013417F5
//! u64 checksum           hash_combine over every u64 word from firstNum to the end
//! u64 firstNum           the most frequent target words always allowed (ids 0..firstNum)
//! u64 bestNum            translations kept per source word when the list was built
//! u64 wordToOffsetSize   = source vocabulary size + 1
//! u64 shortListsSize
//! u64 wordToOffset[wordToOffsetSize]   list of source word w = shortLists[off[w]..off[w+1]]
//! u32 shortLists[shortListsSize]       target word ids
//! ```
//!
//! [`Shortlist::generate`] reproduces `BinaryShortlistGenerator::generate` exactly,
//! including the padding to a multiple of 8 with the first unselected ids from
//! `firstNum` on (those padding words get real logits and can win the argmax, so
//! they matter for identical output).

use std::path::Path;

use crate::ConvertError;

/// Magic number of a binary shortlist.
pub const SHORTLIST_MAGIC: u64 = 0xF11A_48D5_0134_17F5;

const HEADER_BYTES: usize = 48;

/// A loaded, validated binary shortlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortlist {
    pub first_num: u64,
    pub best_num: u64,
    /// `offsets[w]..offsets[w + 1]` indexes `lists` for source word `w`.
    pub offsets: Vec<u64>,
    pub lists: Vec<u32>,
    /// Target vocabulary size the ids were checked against.
    pub trg_vocab: usize,
}

/// Marian's `util::hashMem<uint64_t, uint64_t>` (boost-style `hash_combine` with the
/// identity hash of `std::hash<uint64_t>`).
pub fn hash_words(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut seed = 0u64;
    for v in words {
        seed ^= v
            .wrapping_add(0x9e37_79b9)
            .wrapping_add(seed << 6)
            .wrapping_add(seed >> 2);
    }
    seed
}

impl Shortlist {
    /// Reads and validates `path` for a model with `src_vocab` source and `trg_vocab`
    /// target words.
    pub fn read(path: &Path, src_vocab: usize, trg_vocab: usize) -> Result<Self, ConvertError> {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io("reading", path, e))?;
        Self::parse(path, &bytes, src_vocab, trg_vocab)
    }

    /// Parses a shortlist held in memory; `path` is only used in error messages.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        src_vocab: usize,
        trg_vocab: usize,
    ) -> Result<Self, ConvertError> {
        let err = |reason: String| ConvertError::Shortlist {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < HEADER_BYTES {
            return Err(err(format!(
                "{} bytes, too short for the {HEADER_BYTES}-byte header",
                bytes.len()
            )));
        }
        let word = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a)
        };
        let (magic, checksum, first_num, best_num, n_offsets, n_lists) =
            (word(0), word(1), word(2), word(3), word(4), word(5));
        if magic != SHORTLIST_MAGIC {
            return Err(err(format!(
                "magic {magic:#018x}, expected {SHORTLIST_MAGIC:#018x} (a text shortlist?)"
            )));
        }
        let expected = n_offsets
            .checked_mul(8)
            .and_then(|a| n_lists.checked_mul(4).and_then(|b| a.checked_add(b)))
            .and_then(|a| a.checked_add(HEADER_BYTES as u64));
        if expected != Some(bytes.len() as u64) {
            return Err(err(format!(
                "header announces {n_offsets} offsets and {n_lists} ids ({} bytes), file has {}",
                expected.map_or_else(|| "overflowing".to_owned(), |e| e.to_string()),
                bytes.len()
            )));
        }
        let actual = hash_words((2..(bytes.len() / 8)).map(word));
        if actual != checksum {
            return Err(err(format!(
                "checksum {actual:#018x} does not match the header's {checksum:#018x} (corrupt file)"
            )));
        }
        if n_offsets != src_vocab as u64 + 1 {
            return Err(err(format!(
                "{n_offsets} offsets for a source vocabulary of {src_vocab} (expected {})",
                src_vocab + 1
            )));
        }
        let offsets: Vec<u64> = (0..n_offsets as usize).map(|i| word(6 + i)).collect();
        if offsets[0] != 0 {
            return Err(err(format!("first offset is {}, expected 0", offsets[0])));
        }
        if let Some(w) = offsets.windows(2).position(|p| p[1] < p[0]) {
            return Err(err(format!("offsets decrease at source word {w}")));
        }
        if offsets[offsets.len() - 1] != n_lists {
            return Err(err(format!(
                "last offset {} differs from the list size {n_lists}",
                offsets[offsets.len() - 1]
            )));
        }
        let start = HEADER_BYTES + 8 * n_offsets as usize;
        let lists: Vec<u32> = bytes[start..]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = lists.iter().position(|&t| t as usize >= trg_vocab) {
            return Err(err(format!(
                "target id {} at list position {i} is outside the vocabulary of {trg_vocab}",
                lists[i]
            )));
        }
        if first_num as usize > trg_vocab {
            return Err(err(format!(
                "firstNum {first_num} exceeds the target vocabulary {trg_vocab}"
            )));
        }
        Ok(Self {
            first_num,
            best_num,
            offsets,
            lists,
            trg_vocab,
        })
    }

    /// Number of source words covered.
    pub fn src_vocab(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The sorted target ids allowed for a sentence whose source ids (including the
    /// final `</s>`) are `src`. `shared`: source and target share one vocabulary, so
    /// the source words themselves are allowed too (Marian does this when both sides
    /// load the same vocabulary file, as Bergamot's configurations do).
    ///
    /// Source ids outside the vocabulary are ignored.
    pub fn generate(&self, src: &[u32], shared: bool) -> Vec<u32> {
        let mut allowed = vec![false; self.trg_vocab];
        let mut seen = vec![false; self.src_vocab()];
        let first = (self.first_num as usize).min(self.trg_vocab);
        allowed[..first].fill(true);
        for &s in src {
            let s = s as usize;
            if s >= seen.len() {
                continue;
            }
            if shared && s < allowed.len() {
                allowed[s] = true;
            }
            if !seen[s] {
                let (a, b) = (self.offsets[s] as usize, self.offsets[s + 1] as usize);
                for &t in &self.lists[a..b] {
                    allowed[t as usize] = true;
                }
                seen[s] = true;
            }
        }
        let mut count = allowed.iter().filter(|&&a| a).count();
        let mut i = first;
        while i < allowed.len() && count % 8 != 0 {
            if !allowed[i] {
                allowed[i] = true;
                count += 1;
            }
            i += 1;
        }
        (0..allowed.len() as u32)
            .filter(|&t| allowed[t as usize])
            .collect()
    }

    /// Serialises back to the binary format (used for synthetic tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_BYTES + 8 * self.offsets.len() + 4 * self.lists.len());
        out.extend_from_slice(&SHORTLIST_MAGIC.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&self.first_num.to_le_bytes());
        out.extend_from_slice(&self.best_num.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.lists.len() as u64).to_le_bytes());
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for t in &self.lists {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let words = (2..out.len() / 8).map(|i| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&out[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a)
        });
        let sum = hash_words(words.collect::<Vec<_>>());
        out[8..16].copy_from_slice(&sum.to_le_bytes());
        out
    }
}
