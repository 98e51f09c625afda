//! `valisectl ca ...` (the central team's small CA) and `valisectl enroll ...` (on the box).
//! The work is in valise-pki; this is argument handling and what a person reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use valise_pki::ca::{Ca, Reason, Validity};
use valise_pki::enroll::{DEFAULT_DIR, Endpoints, IdentityDir, InstalledIdentity};
use valise_pki::{BoxIdentity, Name};

#[derive(Args, Debug)]
pub struct CaArgs {
    /// The CA directory (ca.key, ca.pem, index.json, crl.pem).
    #[arg(long, env = "VALISE_CA_DIR", global = true)]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a new CA (P-256 key, mode 0600) in an empty directory.
    Init {
        /// The CA certificate's common name.
        #[arg(long, default_value = "Valise central CA")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a certificate.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Revoke a certificate by serial, or every certificate of a box.
    Revoke {
        /// Serial number in hex (as `ca list` or `openssl x509 -serial` print it).
        #[arg(required_unless_present = "box_name", conflicts_with_all = ["site", "box_name"])]
        serial: Option<String>,
        #[arg(long, requires = "box_name")]
        site: Option<String>,
        #[arg(long = "box", requires = "site")]
        box_name: Option<String>,
        #[arg(long, default_value = "unspecified", value_parser = Reason::NAMES)]
        reason: String,
    },
    /// Sign a new CRL of every revoked certificate (also kept as crl.pem in the CA
    /// directory). Servers and boxes refuse everyone once its nextUpdate passes: publish a
    /// new one well before.
    Crl {
        /// Days until nextUpdate.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the Mosquitto ACL for every box and central client with an active certificate.
    Acl {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the certificates issued.
    List,
}

#[derive(Subcommand, Debug)]
pub enum IssueCommand {
    /// Sign a box's certificate request (client authentication only). The request must name
    /// the site and box given here.
    Box {
        /// The request file the box made (`valisectl enroll request`).
        request: PathBuf,
        #[arg(long)]
        site: String,
        #[arg(long = "box")]
        box_name: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory to write cert.pem and ca.pem into (what `enroll install` takes).
        #[arg(long)]
        out: PathBuf,
    },
    /// A server certificate (update repository, MQTT broker) with a new key.
    Server {
        /// DNS name or IP address; repeat for several. The first is the common name.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        #[arg(long, default_value_t = 397)]
        days: u32,
        /// Directory to write cert.pem, key.pem (0600) and ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
    /// The central team's client certificate (`central:NAME`) with a new key.
    Central {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory to write cert.pem, key.pem (0600) and ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The box's identity directory.
    #[arg(long, env = "VALISE_IDENTITY_DIR", default_value = DEFAULT_DIR, global = true)]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: EnrollCommand,
}

#[derive(Subcommand, Debug)]
pub enum EnrollCommand {
    /// Make this box's key pair (it never leaves the box) and a certificate request for IT
    /// to carry to the CA. Renewal is the same command.
    Request {
        #[arg(long)]
        site: String,
        #[arg(long = "box")]
        box_name: String,
        /// Also write the request here (e.g. on the USB stick).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install the certificate signed for the pending request, the CA chain and the central
    /// addresses, and switch to them atomically.
    Install {
        cert: PathBuf,
        chain: PathBuf,
        /// The update repository, https://host[:port][/path].
        #[arg(long)]
        repository: String,
        /// The MQTT broker, mqtts://host[:port].
        #[arg(long)]
        broker: String,
        /// The CA's CRL, to refuse revoked servers.
        #[arg(long)]
        crl: Option<PathBuf>,
    },
    /// Show the installed identity, its expiry and the central addresses.
    Status,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

fn date(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub fn ca(args: CaArgs) -> Result<()> {
    let dir = args
        .dir
        .context("the CA directory: --dir DIR or VALISE_CA_DIR")?;
    match args.command {
        CaCommand::Init { name, days } => {
            let ca = Ca::init(&dir, &name, Validity::days(days))?;
            println!(
                "CA {name:?} created in {} (key ca.key, mode 0600: keep it offline and backed up)",
                ca.dir().display()
            );
        }
        CaCommand::Issue(issue) => {
            let mut ca = Ca::open(&dir)?;
            match issue {
                IssueCommand::Box {
                    request,
                    site,
                    box_name,
                    days,
                    out,
                } => {
                    let id = BoxIdentity::new(&site, &box_name)?;
                    let issued = ca.issue_box(&read(&request)?, &id, Validity::days(days))?;
                    out_dir(&out)?;
                    write(&out.join("cert.pem"), &issued.cert_pem, 0o644)?;
                    write(&out.join("ca.pem"), ca.cert_pem(), 0o644)?;
                    println!(
                        "issued {id} serial {} until {}\non the box: valisectl enroll install {} {} --repository URL --broker URL",
                        issued.issued.serial,
                        date(issued.issued.not_after),
                        out.join("cert.pem").display(),
                        out.join("ca.pem").display()
                    );
                }
                IssueCommand::Server { names, days, out } => {
                    let issued = ca.issue_server(&names, Validity::days(days))?;
                    write_with_key(&ca, &issued, &out)?;
                }
                IssueCommand::Central { name, days, out } => {
                    let name = Name::new("central name", &name)?;
                    let issued = ca.issue_central(&name, Validity::days(days))?;
                    write_with_key(&ca, &issued, &out)?;
                }
            }
        }
        CaCommand::Revoke {
            serial,
            site,
            box_name,
            reason,
        } => {
            let reason: Reason = reason.parse()?;
            let mut ca = Ca::open(&dir)?;
            let revoked = match (serial, site, box_name) {
                (Some(s), _, _) => vec![ca.revoke(&s, reason)?],
                (None, Some(site), Some(b)) => {
                    ca.revoke_box(&BoxIdentity::new(&site, &b)?, reason)?
                }
                _ => anyhow::bail!("give a serial, or --site and --box"),
            };
            for r in revoked {
                println!("revoked {} ({})", r.serial, r.subject);
            }
            println!("now run `valisectl ca crl` and `valisectl ca acl`, and publish both");
        }
        CaCommand::Crl { days, out } => {
            let mut ca = Ca::open(&dir)?;
            let crl = ca.crl(days)?;
            if let Some(out) = out {
                std::fs::write(&out, &crl.pem)
                    .with_context(|| format!("writing {}", out.display()))?;
            } else {
                print!("{}", crl.pem);
            }
            eprintln!(
                "CRL number {} lists {} revoked certificate(s); nextUpdate {}",
                crl.number,
                crl.revoked,
                date(crl.next_update)
            );
        }
        CaCommand::Acl { out } => {
            let ca = Ca::open(&dir)?;
            let acl = ca.mosquitto_acl();
            match out {
                Some(out) => std::fs::write(&out, acl)
                    .with_context(|| format!("writing {}", out.display()))?,
                None => print!("{acl}"),
            }
        }
        CaCommand::List => {
            let ca = Ca::open(&dir)?;
            let now = time::OffsetDateTime::now_utc();
            for i in ca.issued() {
                let state = match (&i.revoked, i.not_after <= now) {
                    (Some(r), _) => format!("revoked {} ({:?})", date(r.at), r.reason),
                    (None, true) => "expired".to_owned(),
                    (None, false) => "active".to_owned(),
                };
                println!(
                    "{}  {:<7} {:<32} until {}  {state}",
                    i.serial,
                    format!("{:?}", i.kind).to_lowercase(),
                    i.subject,
                    date(i.not_after)
                );
            }
        }
    }
    Ok(())
}

fn write_with_key(ca: &Ca, issued: &valise_pki::ca::IssuedWithKey, out: &Path) -> Result<()> {
    out_dir(out)?;
    write(&out.join("key.pem"), &issued.key_pem, 0o600)?;
    write(&out.join("cert.pem"), &issued.cert_pem, 0o644)?;
    write(&out.join("ca.pem"), ca.cert_pem(), 0o644)?;
    println!(
        "issued {} serial {} until {} into {}",
        issued.issued.subject,
        issued.issued.serial,
        date(issued.issued.not_after),
        out.display()
    );
    Ok(())
}

fn print_status(id: &InstalledIdentity) {
    let left = id.days_left();
    println!("identity:   {}", id.identity);
    println!("site:       {}", id.identity.site);
    println!("box:        {}", id.identity.box_name);
    println!("serial:     {}", id.serial);
    println!("issuer:     {}", id.issuer);
    println!("valid from: {}", date(id.not_before));
    println!("expires:    {}", date(id.not_after));
    println!("days left:  {left}");
    println!("repository: {}", id.endpoints.repository);
    println!("broker:     {}", id.endpoints.broker);
    println!("directory:  {}", id.dir.display());
    if left < 0 {
        println!("EXPIRED: run `valisectl enroll request` and have IT sign it");
    } else if left < 30 {
        println!("renew soon: run `valisectl enroll request` and have IT sign it");
    }
}

pub fn enroll(args: EnrollArgs) -> Result<()> {
    let dir = IdentityDir::new(&args.dir);
    match args.command {
        EnrollCommand::Request {
            site,
            box_name,
            out,
        } => {
            let id = BoxIdentity::new(&site, &box_name)?;
            let csr = dir.request(&id)?;
            if let Some(out) = &out {
                std::fs::write(out, &csr).with_context(|| format!("writing {}", out.display()))?;
            }
            println!(
                "request for {id} written to {}{}\nthe key stays in {}; take the request to IT: valisectl ca issue box REQUEST --site {site} --box {box_name} --out DIR",
                dir.pending_request().display(),
                out.map(|o| format!(" and {}", o.display()))
                    .unwrap_or_default(),
                args.dir.join("pending").display()
            );
        }
        EnrollCommand::Install {
            cert,
            chain,
            repository,
            broker,
            crl,
        } => {
            let endpoints = Endpoints::new(&repository, &broker)?;
            let crl = crl.as_deref().map(read).transpose()?;
            let id = dir.install(&read(&cert)?, &read(&chain)?, &endpoints, crl.as_deref())?;
            println!("installed:");
            print_status(&id);
        }
        EnrollCommand::Status => print_status(&dir.load()?),
    }
    Ok(())
}
