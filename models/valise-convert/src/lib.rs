//! valise-convert
