//! `valise-firewall render|apply`: renders the appliance's nftables table from
//! `/etc/valise/firewall.toml`, the portal's ports and the enrollment's central addresses, and
//! loads it in one transaction. Run at boot before the network (`--offline`: last known
//! addresses only, no resolver yet) and again once the network is up and hourly (names of the
//! central hosts re-resolved).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand};
use valise_firewall::{
    Config, Plan, destinations, load_state, portal_ports, render, resolve_all, save_state,
    system_lookup,
};

#[derive(Parser)]
#[command(version, about = "The Valise appliance's nftables rules")]
struct Args {
    #[arg(long, default_value = valise_firewall::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Do not resolve names: use the addresses last resolved (boot, before the network).
    #[arg(long)]
    offline: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the ruleset.
    Render,
    /// Load the ruleset (`nft -f -`); the previous one stays if nft refuses it.
    Apply {
        /// The nft binary.
        #[arg(long, default_value = "nft")]
        nft: PathBuf,
    },
}

fn run(args: Args) -> Result<(), String> {
    let cfg = Config::load(&args.config).map_err(|e| e.to_string())?;
    let portal = portal_ports(&cfg.portal_config).map_err(|e| e.to_string())?;
    let dests = destinations(&cfg.endpoints).map_err(|e| e.to_string())?;
    let previous = load_state(&cfg.state);
    let lookup = |host: &str, port: u16| {
        if args.offline {
            Err(std::io::Error::other("offline: not resolving"))
        } else {
            system_lookup(host, port)
        }
    };
    let (outbound, unresolved) = resolve_all(&dests, &previous, lookup);
    for u in &unresolved {
        let what = if u.used_previous {
            "using the addresses last resolved"
        } else {
            "no connection to it is allowed until it resolves"
        };
        eprintln!(
            "valise-firewall: cannot resolve {} ({}:{}): {}; {what}",
            u.dest.name, u.dest.host, u.dest.port, u.reason
        );
    }
    let plan = Plan {
        lan: cfg.lan.clone(),
        portal,
        dns: cfg.dns.clone(),
        ntp: cfg.ntp.clone(),
        dhcp: cfg.dhcp,
        outbound: outbound.clone(),
    };
    let rules = render(&plan);
    match args.cmd {
        Cmd::Render => {
            print!("{rules}");
            Ok(())
        }
        Cmd::Apply { nft } => {
            let mut child = Command::new(&nft)
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", nft.display()))?;
            // An nft that exits early (it refused the input) closes the pipe: its exit status
            // is the answer, not the write error.
            let written = child
                .stdin
                .take()
                .expect("piped")
                .write_all(rules.as_bytes());
            let status = child.wait().map_err(|e| e.to_string())?;
            if let (Err(e), true) = (written, status.success()) {
                return Err(format!("writing to nft: {e}"));
            }
            if !status.success() {
                return Err(format!(
                    "nft refused the ruleset ({status}); the previous rules stay"
                ));
            }
            if !args.offline && outbound != previous {
                save_state(&cfg.state, &outbound).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("valise-firewall: {e}");
            ExitCode::FAILURE
        }
    }
}
