//! `valisectl console`: the appliance's console for IT (tty1 and the serial line), issue 10,
//! items 5, 8 and the recovery key of item 4.
//!
//! The image runs it instead of a getty (`valise-console@.service`): no login prompt, no
//! shell, a menu. Nothing here starts a shell, and every action is one of:
//!   1  first-boot setup: site and box, the portal's first administrator, the enrollment
//!      request (`valisectl enroll request`) written to a USB stick, an optional recovery
//!      key, then the portal's address and certificate fingerprint. Once set up: the
//!      enrollment request to a USB stick again;
//!   2  the portal's address(es) and its certificate's SHA-256 fingerprint;
//!   3  a recovery key for the encrypted state volume (systemd-cryptenroll --recovery-key),
//!      checked to open the volume before it is shown. Once the box is set up it needs a
//!      portal administrator's name and password: whoever stands at the console must not be
//!      able to walk away with a key to the staff data;
//!   4  the self-check (valise-boot-check);
//!   5  seal the staff data to this box's TPM again (`seal`), after a boot where the TPM
//!      refused (Secure Boot keys, firmware or mainboard changed) and IT typed the recovery
//!      key at systemd-cryptsetup's prompt. It needs that recovery key, and Secure Boot on;
//!      the banner says when it is needed;
//!   9  wipe (`valisectl wipe`, with its typed confirmation).
//!
//! Reading and writing go through `BufRead`/`Write`, so the tests drive the menu with a
//! scripted standard input. The portal's database is changed by running `valisectl user`
//! as the portal's own user (files SQLite creates in its data directory stay the portal's).

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use valise_pki::enroll::{DEFAULT_DIR, IdentityDir};
use valise_pki::{BoxIdentity, Name};

use crate::seal::{self, Seal};
use crate::wipe;

/// Where the first-boot setup keeps the site and box (on the encrypted state volume: a wipe
/// forgets them, and the box is at first boot again).
pub const STATE_DIR: &str = "/var/lib/valise/console";

#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// Where the site and box chosen at first boot are kept.
    #[arg(long, default_value = STATE_DIR)]
    pub state_dir: PathBuf,
    /// The box's identity directory (`valisectl enroll`).
    #[arg(long, env = "VALISE_IDENTITY_DIR", default_value = DEFAULT_DIR)]
    pub identity_dir: PathBuf,
    /// The portal's configuration (address, certificate, data directory).
    #[arg(long, default_value = "/etc/valise/valise-portal.toml")]
    pub portal_config: PathBuf,
    /// The portal's data directory (default: the configuration's).
    #[arg(long)]
    pub portal_data_dir: Option<PathBuf>,
    /// The user `valisectl user` runs as to change the portal's database ("" = this one).
    #[arg(long, default_value = "valise-portal")]
    pub portal_user: String,
    /// The encrypted state volume (recovery key, wipe).
    #[arg(long, default_value = wipe::STATE_DEVICE)]
    pub device: PathBuf,
    /// A directory standing for the USB stick (tests); without it, USB sticks are found
    /// and written with mtools.
    #[arg(long)]
    pub usb_dir: Option<PathBuf>,
    /// Do not reboot after a wipe.
    #[arg(long)]
    pub no_reboot: bool,
    /// The self-check program.
    #[arg(long, default_value = "/usr/bin/valise-boot-check")]
    pub self_check: PathBuf,
    /// The firmware's Secure Boot variable (efivarfs).
    #[arg(long, default_value = seal::SECURE_BOOT_VAR)]
    pub secure_boot_var: PathBuf,
}

/// The site and box chosen at first boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    pub site: String,
    pub box_name: String,
}

impl Setup {
    fn path(dir: &Path) -> PathBuf {
        dir.join("setup")
    }

    pub fn load(dir: &Path) -> Option<Setup> {
        let text = std::fs::read_to_string(Self::path(dir)).ok()?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Some(Setup {
            site: get("site")?,
            box_name: get("box")?,
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(".setup.new");
        std::fs::write(&tmp, format!("site={}\nbox={}\n", self.site, self.box_name))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}

pub struct Console<'a> {
    args: ConsoleArgs,
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
    /// Secrets are read with echo off from the terminal (rpassword) when there is one.
    tty: bool,
    /// What the TPM does for the state volume, asked once (a TPM unseal takes seconds on a
    /// slow box) and again after sealing or wiping.
    seal: Option<Seal>,
}

pub fn run(args: ConsoleArgs) -> Result<()> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    Console::new(args, &mut input, &mut out, tty).menu()
}

impl<'a> Console<'a> {
    pub fn new(
        args: ConsoleArgs,
        input: &'a mut dyn BufRead,
        out: &'a mut dyn Write,
        tty: bool,
    ) -> Self {
        Self {
            args,
            input,
            out,
            tty,
            seal: None,
        }
    }

    /// One line, without its end; None at the end of input.
    fn ask(&mut self, prompt: &str) -> Result<Option<String>> {
        write!(self.out, "{prompt}")?;
        self.out.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim().to_owned()))
    }

    fn secret(&mut self, prompt: &str) -> Result<Option<String>> {
        if self.tty {
            self.out.flush()?;
            return Ok(Some(rpassword::prompt_password(prompt)?));
        }
        write!(self.out, "{prompt}")?;
        self.out.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        writeln!(self.out)?;
        Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
    }

    fn yes(&mut self, prompt: &str) -> Result<bool> {
        Ok(matches!(
            self.ask(prompt)?
                .as_deref()
                .map(str::to_lowercase)
                .as_deref(),
            Some("y" | "yes")
        ))
    }

    /// The menu, until the end of input.
    pub fn menu(&mut self) -> Result<()> {
        loop {
            let setup = Setup::load(&self.args.state_dir);
            self.banner(setup.as_ref())?;
            let Some(choice) = self.ask("Choice: ")? else {
                return Ok(());
            };
            let done = match choice.as_str() {
                "1" => match &setup {
                    None => self.first_boot(),
                    Some(s) => self.request_again(s),
                },
                "2" => self.show_portal(),
                "3" => self.recovery_key_menu(setup.is_some()),
                "4" => self.self_check(),
                "5" => self.reseal(),
                "9" => self.wipe(setup.as_ref()),
                "" => Ok(()),
                other => writeln!(self.out, "No such choice: {other:?}").map_err(Into::into),
            };
            if let Err(e) = done {
                if e.downcast_ref::<EndOfInput>().is_some() {
                    return Ok(());
                }
                writeln!(self.out, "error: {e:#}")?;
            }
        }
    }

    fn banner(&mut self, setup: Option<&Setup>) -> Result<()> {
        writeln!(self.out, "\n=== Valise console ===")?;
        match setup {
            Some(s) => writeln!(self.out, "site {}  box {}", s.site, s.box_name)?,
            None => writeln!(self.out, "NOT SET UP YET: choose 1 (first-boot setup)")?,
        }
        let seal = *self
            .seal
            .get_or_insert_with(|| seal::state(&self.args.device));
        match seal {
            Seal::Refused => writeln!(
                self.out,
                "VALISE-SEAL refused: the TPM did not open the staff data at this boot (Secure \
                 Boot keys, firmware or\nmainboard changed?); it was opened with the recovery key. \
                 Choose 5 to seal it to this box again."
            )?,
            Seal::NotSealed => writeln!(
                self.out,
                "VALISE-SEAL none: the staff data is not sealed to the TPM; only a key opens it \
                 at boot. Choose 5 to seal it."
            )?,
            Seal::Opens | Seal::NoVolume => {}
        }
        let first = if setup.is_none() {
            "First-boot setup: site, box, first administrator, enrollment request to USB"
        } else {
            "Write the enrollment request to a USB stick"
        };
        writeln!(
            self.out,
            "  1  {first}\n  2  Portal address and certificate fingerprint\n  \
             3  Add a recovery key for the staff data\n  4  Self-check\n  \
             5  Seal the staff data to this box's TPM again (after a recovery-key start)\n  \
             9  WIPE all staff data (evacuation)"
        )?;
        Ok(())
    }

    fn need(&mut self, prompt: &str) -> Result<String> {
        self.ask(prompt)?.ok_or_else(|| EndOfInput.into())
    }

    fn first_boot(&mut self) -> Result<()> {
        writeln!(self.out, "\n--- First-boot setup ---")?;
        let site = loop {
            let s = self.need("Site (the post, e.g. lisbon): ")?;
            match Name::new("site", &s) {
                Ok(_) => break s,
                Err(e) => writeln!(self.out, "{e}")?,
            }
        };
        let (box_name, id) = loop {
            let b = self.need("Box name (e.g. box-1): ")?;
            match BoxIdentity::new(&site, &b) {
                Ok(id) => break (b, id),
                Err(e) => writeln!(self.out, "{e}")?,
            }
        };
        self.first_admin()?;
        let csr = IdentityDir::new(&self.args.identity_dir)
            .request(&id)
            .context("making the enrollment request")?;
        Setup {
            site: site.clone(),
            box_name: box_name.clone(),
        }
        .save(&self.args.state_dir)?;
        writeln!(
            self.out,
            "Enrollment request made for {id}; its key never leaves this box."
        )?;
        self.write_to_usb(&request_file(&site, &box_name), &csr)?;
        if self.yes("Add a recovery key for the staff data now (recommended)? [yes/no]: ")? {
            self.recovery_key()?;
        }
        self.show_portal()?;
        writeln!(
            self.out,
            "VALISE-FIRSTBOOT done site={site} box={box_name}\nNext: have the request signed \
             (valisectl ca issue box), then install it with valisectl enroll install."
        )?;
        Ok(())
    }

    fn request_again(&mut self, s: &Setup) -> Result<()> {
        let dir = IdentityDir::new(&self.args.identity_dir);
        let path = dir.pending_request();
        let csr = match std::fs::read_to_string(&path) {
            Ok(c) => c,
            Err(_) => {
                writeln!(self.out, "No pending request: making a new one.")?;
                dir.request(&BoxIdentity::new(&s.site, &s.box_name)?)?
            }
        };
        self.write_to_usb(&request_file(&s.site, &s.box_name), &csr)
    }

    /// The portal's first administrator, unless it has one.
    fn first_admin(&mut self) -> Result<()> {
        let admins = self.admins()?;
        if !admins.is_empty() {
            writeln!(
                self.out,
                "The portal has an administrator already ({}); none created.",
                admins.join(", ")
            )?;
            return Ok(());
        }
        writeln!(self.out, "The portal's first administrator:")?;
        loop {
            let mut name = self.need("Name [admin]: ")?;
            if name.is_empty() {
                name = "admin".into();
            }
            let pw = self.secret("Password: ")?.ok_or(EndOfInput)?;
            let again = self.secret("Again: ")?.ok_or(EndOfInput)?;
            if pw != again {
                writeln!(self.out, "The two passwords differ; again.")?;
                continue;
            }
            let o = self.portal_ctl(&["user", "add", &name, "--admin", "--password-stdin"], &pw)?;
            if o.status.success() {
                writeln!(self.out, "Administrator {name} created.")?;
                return Ok(());
            }
            writeln!(
                self.out,
                "Not created: {}",
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .trim_start_matches("valisectl: ")
            )?;
        }
    }

    fn admins(&mut self) -> Result<Vec<String>> {
        let o = self.portal_ctl(&["user", "list"], "")?;
        if !o.status.success() {
            bail!(
                "reading the portal's accounts: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let name = f.next()?;
                (f.next() == Some("admin") && f.next().is_none()).then(|| name.to_owned())
            })
            .collect())
    }

    fn data_dir(&self) -> PathBuf {
        self.args
            .portal_data_dir
            .clone()
            .unwrap_or_else(|| self.portal_config().data_dir)
    }

    fn portal_config(&self) -> valise_portal::Config {
        valise_config::load_or_default(&self.args.portal_config).unwrap_or_default()
    }

    /// `valisectl ARGS --data-dir DIR` as the portal's user, `stdin` on its standard input.
    fn portal_ctl(&self, args: &[&str], stdin: &str) -> Result<std::process::Output> {
        let exe = std::env::current_exe().context("finding valisectl")?;
        let mut cmd = if self.args.portal_user.is_empty() {
            Command::new(exe)
        } else {
            // As the portal's user, started by PID 1 (systemd-run) rather than by changing
            // user here: the console's sandbox has no CAP_SETUID/CAP_SETGID. Files SQLite
            // creates stay the portal's; standard input, output and the exit status pass
            // through (--pipe --wait).
            let mut c = Command::new("systemd-run");
            c.args([
                "--quiet",
                "--pipe",
                "--wait",
                "--collect",
                "--service-type=exec",
            ])
            .arg(format!("--uid={}", self.args.portal_user))
            .arg(format!("--gid={}", self.args.portal_user))
            .args(["-p", "PrivateNetwork=yes", "-p", "NoNewPrivileges=yes"])
            .arg(exe);
            c
        };
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running valisectl user")?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin.as_bytes())?;
            i.write_all(b"\n")?;
        }
        Ok(child.wait_with_output()?)
    }

    /// Writes `name` onto a USB stick (found, written with mtools, flushed, read back).
    fn write_to_usb(&mut self, name: &str, contents: &str) -> Result<()> {
        loop {
            if let Some(dir) = self.args.usb_dir.clone() {
                write_synced(&dir.join(name), contents)?;
                writeln!(self.out, "VALISE-USB written {name} to {}", dir.display())?;
                return Ok(());
            }
            let sticks = usb_sticks();
            let stick = match sticks.len() {
                0 => {
                    let a = self
                        .need("No USB stick found. Insert one and press Enter (or type skip): ")?;
                    if a == "skip" {
                        writeln!(self.out, "Not written; choose 1 in the menu later.")?;
                        return Ok(());
                    }
                    continue;
                }
                1 => sticks[0].clone(),
                _ => {
                    for (i, s) in sticks.iter().enumerate() {
                        writeln!(self.out, "  {}  {}", i + 1, s.describe())?;
                    }
                    let a = self.need("Which stick? ")?;
                    match a
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| sticks.get(i.wrapping_sub(1)))
                    {
                        Some(s) => s.clone(),
                        None => continue,
                    }
                }
            };
            writeln!(self.out, "USB stick: {}", stick.describe())?;
            match stick.write(name, contents) {
                Ok(()) => {
                    writeln!(
                        self.out,
                        "VALISE-USB written {name} to {} (you may remove the stick)",
                        stick.dev.display()
                    )?;
                    return Ok(());
                }
                Err(e) => {
                    writeln!(self.out, "Could not write to the stick: {e:#}")?;
                    if self.need("Try again? [yes/no]: ")? != "yes" {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn show_portal(&mut self) -> Result<()> {
        let cfg = self.portal_config();
        let port = match cfg.addr.port() {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let addrs = if cfg.addr.ip().is_unspecified() {
            local_addresses()
        } else {
            vec![cfg.addr.ip()]
        };
        if addrs.is_empty() {
            writeln!(
                self.out,
                "Portal: no network address yet (is the cable in?)"
            )?;
        }
        for a in addrs {
            let host = match a {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            writeln!(self.out, "VALISE-PORTAL https://{host}{port}/")?;
        }
        let certs = [cfg.tls.cert.clone(), self.data_dir().join("tls/cert.pem")];
        match certs.iter().find_map(|p| fingerprint(p).ok()) {
            Some(fp) => writeln!(
                self.out,
                "VALISE-PORTAL certificate SHA-256 {fp}\n(compare it with what the browser shows \
                 before typing a password there)"
            )?,
            None => writeln!(
                self.out,
                "Portal certificate: not made yet (the portal is still starting?)"
            )?,
        }
        Ok(())
    }

    fn recovery_key_menu(&mut self, set_up: bool) -> Result<()> {
        if set_up && !self.admins()?.is_empty() {
            writeln!(
                self.out,
                "A recovery key opens the staff data: a portal administrator must sign in."
            )?;
            let name = self.need("Administrator: ")?;
            let pw = self.secret("Password: ")?.ok_or(EndOfInput)?;
            let o = self.portal_ctl(&["user", "check", &name, "--password-stdin"], &pw)?;
            if !o.status.success() {
                writeln!(
                    self.out,
                    "Refused: not an administrator's name and password."
                )?;
                return Ok(());
            }
        }
        self.recovery_key()
    }

    /// Enrolls a new recovery key (replacing an older one), checks that it opens the volume,
    /// shows it.
    fn recovery_key(&mut self) -> Result<()> {
        let dev = &self.args.device;
        let o = Command::new("systemd-cryptenroll")
            .args([
                "--unlock-tpm2-device=auto",
                "--recovery-key",
                "--wipe-slot=recovery",
            ])
            .arg(dev)
            .stdin(Stdio::null())
            .output()
            .context("running systemd-cryptenroll")?;
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let Some(key) = find_recovery_key(&text) else {
            bail!(
                "systemd-cryptenroll made no recovery key ({}): {}",
                o.status,
                text.trim()
            );
        };
        if let Err(why) = seal::key_opens(dev, &key)? {
            bail!("the new recovery key does not open the volume: {why}");
        }
        writeln!(
            self.out,
            "\nRecovery key for the staff data (checked: it opens the volume):\n\n\
             VALISE-RECOVERY-KEY {key}\n\n\
             Write it down and keep it in the post's safe, never with the box. At boot, when \
             the TPM refuses\n(mainboard or firmware changed), type it at \"Please enter \
             recovery key for disk valise-state\",\nthen choose 5 here. An earlier recovery \
             key no longer works."
        )?;
        Ok(())
    }

    /// Seals the staff data to this boot's PCR 7 again (module `seal`): Secure Boot on, the
    /// recovery key typed (it opens the volume anyway, so it is the authority here), then
    /// checked that the TPM opens the volume by itself.
    fn reseal(&mut self) -> Result<()> {
        let dev = self.args.device.clone();
        match seal::secure_boot_on(&self.args.secure_boot_var) {
            Some(true) => {}
            sb => {
                writeln!(
                    self.out,
                    "Refused: Secure Boot is {}. Sealing now would let any software started on \
                     this box open the staff data.\nTurn Secure Boot on in the firmware, with \
                     the ministry's keys only, and start the box again.",
                    if sb.is_none() { "unknown" } else { "off" }
                )?;
                return Ok(());
            }
        }
        let now = seal::state(&dev);
        self.seal = Some(now);
        match now {
            Seal::NoVolume => bail!("no encrypted state volume at {}", dev.display()),
            Seal::Opens => {
                writeln!(
                    self.out,
                    "The TPM opens the staff data at this boot already: nothing to do."
                )?;
                return Ok(());
            }
            Seal::Refused | Seal::NotSealed => {}
        }
        writeln!(
            self.out,
            "The recovery key (from the post's safe) opens the staff data; type it to seal the \
             data to this box's TPM."
        )?;
        let key = self.secret("Recovery key: ")?.ok_or(EndOfInput)?;
        let key = key.trim();
        if seal::key_opens(&dev, key)?.is_err() {
            writeln!(self.out, "Refused: that key does not open the staff data.")?;
            return Ok(());
        }
        seal::reseal(&dev, key)?;
        // The new header on the disk before IT switches the box off.
        let _ = Command::new("sync").status();
        let after = seal::state(&dev);
        self.seal = Some(after);
        if after != Seal::Opens {
            bail!("sealed, but the TPM still does not open the staff data ({after:?})");
        }
        writeln!(
            self.out,
            "VALISE-SEAL done: this box's TPM opens the staff data at the next boots (PCR 7); \
             the recovery key still works."
        )?;
        Ok(())
    }

    fn self_check(&mut self) -> Result<()> {
        let o = Command::new(&self.args.self_check)
            .output()
            .with_context(|| format!("running {}", self.args.self_check.display()))?;
        self.out.write_all(&o.stdout)?;
        self.out.write_all(&o.stderr)?;
        Ok(())
    }

    fn wipe(&mut self, setup: Option<&Setup>) -> Result<()> {
        let name = setup
            .map(|s| s.box_name.clone())
            .unwrap_or_else(|| wipe::box_name(&self.args.state_dir));
        wipe::run_interactive(
            &mut *self.input,
            &mut *self.out,
            &self.args.device,
            &name,
            self.args.no_reboot,
        )?;
        self.seal = None;
        Ok(())
    }
}

#[derive(Debug)]
struct EndOfInput;

impl std::fmt::Display for EndOfInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("end of input")
    }
}

impl std::error::Error for EndOfInput {}

/// The request's file name on the stick.
pub fn request_file(site: &str, box_name: &str) -> String {
    format!("valise-request-{site}-{box_name}.csr")
}

fn write_synced(path: &Path, contents: &str) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// SHA-256 of the first certificate in a PEM file, as `AB:CD:...`.
pub fn fingerprint(pem: &Path) -> Result<String> {
    let text = std::fs::read_to_string(pem)?;
    let certs = valise_pki::pem::certificates("portal certificate", &text)?;
    let der = certs.first().context("no certificate")?;
    Ok(Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The box's addresses a browser on the LAN can use: every interface's, but loopback and
/// IPv6 link-local.
fn local_addresses() -> Vec<IpAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut v: Vec<IpAddr> = list
        .filter_map(|i| {
            let a = i.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        })
        .filter(|a| match a {
            IpAddr::V4(v4) => !v4.is_loopback(),
            IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A systemd recovery key: 8 groups of 8 "modhex" characters joined by '-'.
pub fn find_recovery_key(text: &str) -> Option<String> {
    const MODHEX: &str = "cbdefghijklnrtuv";
    text.split(|c: char| c.is_whitespace())
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .find(|w| {
            let groups: Vec<&str> = w.split('-').collect();
            groups.len() == 8
                && groups
                    .iter()
                    .all(|g| g.len() == 8 && g.chars().all(|c| MODHEX.contains(c)))
        })
        .map(str::to_owned)
}

#[derive(Debug, Clone)]
struct Stick {
    /// The block device with the FAT file system: the stick's first partition, else the
    /// whole stick.
    dev: PathBuf,
    model: String,
    bytes: u64,
}

impl Stick {
    fn describe(&self) -> String {
        format!(
            "{} {} ({} MB)",
            self.dev.display(),
            self.model,
            self.bytes / 1_000_000
        )
    }

    /// Writes `name` into the FAT file system on the stick with mtools, straight on the
    /// block device: nothing is mounted, so the console needs no mount privilege (its unit
    /// keeps an exposure below 2.0) and a hostile stick's file system never reaches the
    /// kernel's file-system code. Then the device is flushed and the file read back.
    fn write(&self, name: &str, contents: &str) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new().context("a temporary file")?;
        tmp.write_all(contents.as_bytes())?;
        tmp.flush()?;
        let target = format!("::/{name}");
        let mtools = |args: &[&std::ffi::OsStr]| {
            Command::new(args[0])
                .args(&args[1..])
                // Sticks formatted elsewhere often have geometry mtools would question.
                .env("MTOOLS_SKIP_CHECK", "1")
                .stdin(Stdio::null())
                .output()
        };
        let o = mtools(&[
            "mcopy".as_ref(),
            "-o".as_ref(),
            "-i".as_ref(),
            self.dev.as_os_str(),
            tmp.path().as_os_str(),
            target.as_ref(),
        ])
        .context("running mcopy (mtools)")?;
        if !o.status.success() {
            bail!(
                "{} has no FAT file system mtools can write ({}); format it FAT32 elsewhere",
                self.dev.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        std::fs::File::open(&self.dev)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("flushing {}", self.dev.display()))?;
        let back = mtools(&[
            "mtype".as_ref(),
            "-i".as_ref(),
            self.dev.as_os_str(),
            target.as_ref(),
        ])
        .context("running mtype (mtools)")?;
        if back.stdout != contents.as_bytes() {
            bail!("{name} on {} does not read back", self.dev.display());
        }
        Ok(())
    }
}

/// USB or removable disks, from sysfs.
fn usb_sticks() -> Vec<Stick> {
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let sys = e.path();
        let read = |p: &str| {
            std::fs::read_to_string(sys.join(p))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let usb = std::fs::canonicalize(sys.join("device"))
            .map(|p| p.to_string_lossy().contains("/usb"))
            .unwrap_or(false);
        if !(usb || read("removable") == "1") || name.starts_with("sr") {
            continue;
        }
        let bytes = read("size").parse::<u64>().unwrap_or(0) * 512;
        if bytes == 0 {
            continue;
        }
        let mut parts: Vec<String> = std::fs::read_dir(&sys)
            .map(|d| {
                d.flatten()
                    .map(|p| p.file_name().to_string_lossy().into_owned())
                    .filter(|p| p.starts_with(&name) && sys.join(p).join("partition").exists())
                    .collect()
            })
            .unwrap_or_default();
        parts.sort();
        let dev = Path::new("/dev").join(parts.first().unwrap_or(&name));
        let model = format!("{} {}", read("device/vendor"), read("device/model"))
            .trim()
            .to_owned();
        v.push(Stick { dev, model, bytes });
    }
    v.sort_by(|a, b| a.dev.cmp(&b.dev));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_recovery_key_in_cryptenroll_output() {
        let out = "A secret recovery key has been generated for this volume:\n\n    \u{1f510} \
                   fvhtcbuj-nljkgvdr-edtnelhc-ijnrlnlg-kkbkdlit-gfjlfrgc-ulbhkeut-hdehvnbv\n\n\
                   Please save this secret recovery key at a secure location.";
        assert_eq!(
            find_recovery_key(out).as_deref(),
            Some("fvhtcbuj-nljkgvdr-edtnelhc-ijnrlnlg-kkbkdlit-gfjlfrgc-ulbhkeut-hdehvnbv")
        );
        // Not modhex (a, z), or the wrong shape: none.
        assert_eq!(find_recovery_key("aaaaaaaa-bbbbbbbb"), None);
        assert_eq!(
            find_recovery_key(
                "zvhtcbuj-nljkgvdr-edtnelhc-ijnrlnlg-kkbkdlit-gfjlfrgc-ulbhkeut-hdehvnbv"
            ),
            None
        );
    }

    #[test]
    fn setup_round_trips_and_a_missing_one_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Setup::load(d.path()), None);
        let s = Setup {
            site: "lisbon".into(),
            box_name: "box-1".into(),
        };
        s.save(&d.path().join("c")).unwrap();
        assert_eq!(Setup::load(&d.path().join("c")), Some(s));
    }
}
