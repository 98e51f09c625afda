//! valise-vad
