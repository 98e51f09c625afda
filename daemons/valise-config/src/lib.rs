//! Configuration shared by every Valise daemon.
//!
//! Each daemon reads exactly one file, `/etc/valise/<daemon>.toml`, into its own serde struct
//! (with `deny_unknown_fields`, so a typo is an error rather than a silently ignored setting).
//! This crate holds what they share: the loader, and validated newtypes for values parsed from
//! outside ([`ByteSize`], [`Language`]) so a bad value is rejected when the file is read, not
//! when it is first used.
//!
//! ```text
//! /etc/valise/valise-transcribe.toml --load::<T>()--> T (validated) --> daemon::run(config, ..)
//! ```

mod bytesize;
mod error;
mod language;
mod load;

pub use bytesize::ByteSize;
pub use error::ConfigError;
pub use language::Language;
pub use load::{default_path, load, load_or_default};
