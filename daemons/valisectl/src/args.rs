use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "valisectl", version, about = "Administer a Valise box")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Transcribe a recording and print the result on standard output.
    Transcribe(TranscribeArgs),
    /// List the speech models installed.
    Models(EngineArgs),
    /// Translate text (a file, or standard input) and print it on standard output, line for
    /// line.
    Translate(TranslateArgs),
    /// Manage the portal's local accounts.
    #[command(subcommand)]
    User(crate::accounts::UserCommand),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(crate::accounts::TokenCommand),
    /// The central team's small certificate authority: box, server and central
    /// certificates, revocation, CRL, the broker's ACL.
    Ca(crate::pki::CaArgs),
    /// This box's identity: make a key and a certificate request, install the signed
    /// certificate, show its state.
    Enroll(crate::pki::EnrollArgs),
    /// The central team's fleet view from the MQTT broker: `watch` (live table) or
    /// `report` (once, as text, JSON or CSV).
    Fleet(crate::fleet::FleetArgs),
    /// The model updater: check the repository now, apply a USB copy, show installed bundles,
    /// the last check and why, the next check.
    Update(crate::update::UpdateArgs),
    /// The console for IT (tty1, serial line): first-boot setup, enrollment request to USB,
    /// the portal's address and fingerprint, recovery key, wipe. Run by valise-console@.service.
    Console(crate::console::ConsoleArgs),
    /// Crypto-erase all staff data (evacuation): the encrypted state volume's keys and header
    /// are destroyed, the box reboots into first boot. Asks to type `ERASE <box name>`.
    Wipe(crate::wipe::WipeArgs),
    /// The central team's TUF repository of model bundles: keys, bundles, signing,
    /// publication, waves, key rotation and revocation, USB exports.
    #[cfg(feature = "central")]
    Repo(crate::repo::RepoArgs),
}

#[derive(clap::Args, Debug)]
pub struct TranslateArgs {
    /// Text file (UTF-8); standard input when absent.
    #[arg(conflicts_with = "document")]
    pub file: Option<PathBuf>,
    /// Translate a document (.txt, .md, .html, .docx, .odt) into a new file of the same
    /// format: `--document IN OUT`. What was not translated is reported on standard error.
    #[arg(long, num_args = 2, value_names = ["IN", "OUT"])]
    pub document: Option<Vec<PathBuf>>,
    /// Source language: `auto` to detect, or a code such as en, pt.
    #[arg(long = "from", default_value = "auto")]
    pub from: String,
    /// Target language, e.g. pt or en.
    #[arg(long = "to")]
    pub to: String,
    /// The translation engine's socket. Without this flag the default socket is used when a
    /// daemon answers there, and the models run in this process otherwise.
    #[arg(long, env = "VALISE_TRANSLATE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Model store root for in-process use (found automatically otherwise).
    #[arg(long, env = "VALISE_MODEL_STORE")]
    pub model_store: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// The engine's socket. Without this flag the default socket is used when a daemon
    /// answers there, and the model runs in this process otherwise.
    #[arg(long, env = "VALISE_TRANSCRIBE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Model store root for in-process use (found automatically otherwise).
    #[arg(long, env = "VALISE_MODEL_STORE")]
    pub model_store: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct TranscribeArgs {
    /// The recording (WAV, FLAC, MP3, OGG/Opus, M4A/AAC, MP4, WebM...).
    pub file: PathBuf,
    /// Spoken language: `auto` to detect, or a code such as fr, en, es, ar.
    #[arg(long, default_value = "auto")]
    pub language: String,
    /// Translate the speech to English (whisper's own translation).
    #[arg(long)]
    pub translate: bool,
    /// Output format.
    #[arg(long, default_value = "txt", value_parser = ["txt", "srt", "vtt", "json"])]
    pub format: String,
    /// Model id (see `valisectl models`); the multilingual base model by default.
    #[arg(long)]
    pub model: Option<String>,
    /// CPU threads for in-process use (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Do not skip silence with voice activity detection (in-process only).
    #[arg(long)]
    pub no_vad: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}
