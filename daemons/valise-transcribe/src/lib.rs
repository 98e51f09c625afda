//! valise-transcribe
