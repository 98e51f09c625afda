//! Logging for every Valise process.
//!
//! Under systemd (`JOURNAL_STREAM` names our stderr) events go to journald with structured
//! fields through `tracing-journald`; anywhere else (a terminal, a test, CI) they go to stderr
//! as text. The level comes from `VALISE_LOG` (`tracing_subscriber::EnvFilter` syntax), `info` by
//! default. Never log content: no transcript text, no file names of uploads, no secrets; call
//! sites log job ids, sizes and durations only.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// journald when stderr is connected to the journal (systemd sets `JOURNAL_STREAM` to
/// `device:inode` of that stream), stderr otherwise.
pub fn detect_sink() -> Sink {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        Sink::Journald
    } else {
        Sink::Stderr
    }
}

/// Installs the global subscriber for process `name`. Safe to call more than once (later calls
/// do nothing), which keeps tests that start daemons in-process simple.
pub fn init(name: &'static str) -> Sink {
    init_with_level(name, "info")
}

/// Like [`init`], with another default level (command-line tools print only warnings).
pub fn init_with_level(name: &'static str, level: &str) -> Sink {
    // Libraries that log at info (ONNX Runtime's session set-up, whisper.cpp's model load) or
    // at error for what is only bad user input (symphonia's probe) are quietened; our own
    // code reports those outcomes itself.
    let default = format!("{level},ort=warn,whisper_rs=warn,symphonia_core=off");
    let filter = EnvFilter::try_from_env("VALISE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let sink = detect_sink();
    let registry = tracing_subscriber::registry().with(filter);
    match sink {
        Sink::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let _ = registry
                    .with(layer.with_syslog_identifier(name.to_string()))
                    .try_init();
            }
            Err(_) => {
                let _ = registry
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                    .try_init();
                return Sink::Stderr;
            }
        },
        Sink::Stderr => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_target(false),
                )
                .try_init();
        }
    }
    sink
}
