//! valisectl: one command line for embassy IT and the central team.

mod accounts;
mod args;
mod console;
mod fleet;
mod luks;
mod pki;
#[cfg(feature = "central")]
mod repo;
mod seal;
mod transcribe;
mod translate;
mod update;
mod wipe;

use clap::Parser;

fn main() -> std::process::ExitCode {
    valise_log::init_with_level("valisectl", "warn");
    let args = args::Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("valisectl: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async move {
        match args.command {
            args::Command::Transcribe(t) => transcribe::run(t).await,
            args::Command::Models(m) => transcribe::models(m).await,
            args::Command::Translate(t) => translate::run(t).await,
            args::Command::User(u) => accounts::user(u),
            args::Command::Token(t) => accounts::token(t),
            args::Command::Ca(c) => pki::ca(c),
            args::Command::Enroll(e) => pki::enroll(e),
            args::Command::Fleet(f) => fleet::fleet(f).await,
            args::Command::Update(u) => update::run(u).await,
            args::Command::Console(c) => console::run(c),
            args::Command::Wipe(w) => wipe::run(w),
            #[cfg(feature = "central")]
            args::Command::Repo(r) => repo::run(r).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valisectl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
