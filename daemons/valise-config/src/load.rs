use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Largest configuration file we accept; a config file is a few hundred bytes.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `/etc/valise/<name>.toml`: one file per daemon, named after it.
pub fn default_path(name: &str) -> PathBuf {
    PathBuf::from("/etc/valise").join(format!("{name}.toml"))
}

/// Reads and validates `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("file is {len} bytes, more than the {MAX_CONFIG_BYTES} allowed"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads `path` if it exists; otherwise every field takes its documented default.
pub fn load_or_default<T: DeserializeOwned + Default>(path: &Path) -> Result<T, ConfigError> {
    match std::fs::metadata(path) {
        Ok(_) => load(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        threads: u32,
        size: crate::ByteSize,
    }

    #[test]
    fn reads_known_fields_and_rejects_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("demo.toml");
        std::fs::write(&p, "threads = 2\nsize = \"3 MiB\"\n").unwrap();
        let d: Demo = load(&p).unwrap();
        assert_eq!(d.threads, 2);
        assert_eq!(d.size.bytes(), 3 << 20);

        std::fs::write(&p, "threads = 2\nthreds = 3\n").unwrap();
        let err = load::<Demo>(&p).unwrap_err().to_string();
        assert!(err.contains("threds"), "{err}");
    }

    #[test]
    fn missing_file_gives_defaults_but_unreadable_value_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let d: Demo = load_or_default(&dir.path().join("absent.toml")).unwrap();
        assert_eq!(d, Demo::default());
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "size = \"lots\"\n").unwrap();
        assert!(load_or_default::<Demo>(&p).is_err());
    }
}
