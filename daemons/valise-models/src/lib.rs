//! The model catalog and the local model store.
//!
//! The catalog (`models/catalog.toml` in the repository, `manifest.toml` inside a store) says,
//! for every model: its id, kind, languages, runtime, precision, licence, provenance, and the
//! size and sha256 of each of its files. A store is a directory laid out the way the box lays
//! it out:
//!
//! ```text
//! /var/lib/valise/models/            (dev: ./.valise/models/)
//!   current -> slots/<slot>          switched atomically by valise-update (rename of a symlink)
//!   slots/<slot>/manifest.toml       the catalog entries of what this slot holds
//!   slots/<slot>/<model-id>/<file>   the files, checked against the manifest
//! ```
//! Engines open `current` once at start-up and only ever read it.

mod catalog;
mod error;
mod store;

pub use catalog::{Catalog, FileEntry, ModelEntry, ModelKind, Source, check_entries, check_file};
pub use error::ModelError;
pub use store::{Store, discover_root, sha256_file};
