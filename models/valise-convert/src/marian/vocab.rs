//! The piece table of a SentencePiece model (`vocab.*.spm`, sentencepiece_model.proto):
//! enough to check the vocabulary size and find the `</s>` / `<unk>` ids. Tokenization
//! itself is the runtime's job (through the equivalent `tokenizer.json`).

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::ConvertError;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<SentencePiece>,
}

#[derive(Clone, PartialEq, Message)]
struct SentencePiece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    #[prost(int32, optional, tag = "3")]
    r#type: Option<i32>,
}

/// The pieces of a SentencePiece model, in id order.
#[derive(Debug, Clone)]
pub struct SpmVocab {
    pieces: Vec<String>,
    ids: HashMap<String, u32>,
}

impl SpmVocab {
    /// Parses a serialized SentencePiece `ModelProto`; `path` is for error messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConvertError> {
        let err = |reason: String| ConvertError::Vocabulary {
            path: path.to_path_buf(),
            reason,
        };
        let model = ModelProto::decode(bytes)
            .map_err(|e| err(format!("not a SentencePiece model protobuf: {e}")))?;
        if model.pieces.is_empty() {
            return Err(err("no pieces".to_owned()));
        }
        let mut pieces = Vec::with_capacity(model.pieces.len());
        let mut ids = HashMap::with_capacity(model.pieces.len());
        for (i, p) in model.pieces.into_iter().enumerate() {
            let piece = p.piece.unwrap_or_default();
            if piece.is_empty() {
                return Err(err(format!("piece {i} is empty")));
            }
            if ids.insert(piece.clone(), i as u32).is_some() {
                return Err(err(format!("duplicate piece {piece:?}")));
            }
            pieces.push(piece);
        }
        Ok(Self { pieces, ids })
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }
}
