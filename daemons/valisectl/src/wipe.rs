//! `valisectl wipe`: crypto-erase of all staff data for an evacuation (issue 10, item 8).
//!
//! Everything the box keeps about its staff is on the LUKS2 state volume (`/var`). Its data
//! is only readable with the volume key, and the volume key exists only wrapped in the LUKS
//! header's keyslots (the TPM-sealed one, the recovery key's). Destroying the header destroys
//! every copy of the key at once, in a second or two, whatever the volume's size:
//!   1. `cryptsetup erase`: every keyslot (and the TPM token) overwritten;
//!   2. the whole header area (both binary headers, JSON, keyslots area up to the data) zeroed,
//!      so nothing on the disk even says "LUKS" any more;
//!   3. the partition removed from the GPT, so systemd-repart makes a fresh encrypted one on
//!      the next boot and the box comes back to first boot;
//!   4. reboot (the volume key still sits in the running kernel until then).
//!
//! The confirmation cannot be given by accident: the operator types `ERASE` and the box's
//! name on one line, exactly (see [`confirmation_ok`]).

use std::fs::OpenOptions;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The partition systemd-repart makes on first boot (`repart.d/50-valise-state.conf`).
pub const STATE_DEVICE: &str = "/dev/disk/by-partlabel/valise-state";

/// The word typed before the box's name.
pub const WORD: &str = "ERASE";

/// LUKS2's default data offset (header, JSON and keyslots area), used when the header says
/// nothing readable about its segment.
const DEFAULT_HEADER_BYTES: u64 = 16 << 20;

#[derive(clap::Args, Debug)]
pub struct WipeArgs {
    /// The encrypted state volume.
    #[arg(long, default_value = STATE_DEVICE)]
    pub device: PathBuf,
    /// The box's name the operator must type (default: the one set at first boot, else the
    /// host name).
    #[arg(long = "box")]
    pub box_name: Option<String>,
    /// Where the first-boot setup keeps the site and box (`valisectl console`).
    #[arg(long, default_value = crate::console::STATE_DIR)]
    pub state_dir: PathBuf,
    /// Do not reboot afterwards (the volume stays readable until the next reboot).
    #[arg(long)]
    pub no_reboot: bool,
}

/// The line the operator must type to confirm a wipe of `box_name`.
pub fn phrase(box_name: &str) -> String {
    format!("{WORD} {box_name}")
}

/// True only for exactly `ERASE <box>` (spaces around it ignored, nothing else forgiven:
/// not `y`, not `yes`, not the box name alone, not another box's name, not lower case).
pub fn confirmation_ok(box_name: &str, typed: &str) -> bool {
    !box_name.trim().is_empty() && typed.trim() == phrase(box_name.trim())
}

/// The box's name for the confirmation: the first-boot setup's, else the host name.
pub fn box_name(state_dir: &Path) -> String {
    if let Some(s) = crate::console::Setup::load(state_dir) {
        return s.box_name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "valise".into())
}

/// Asks for the confirmation on `out`, reads one line from `input`. Ok(true) when given.
pub fn confirm(input: &mut dyn BufRead, out: &mut dyn Write, box_name: &str) -> Result<bool> {
    writeln!(
        out,
        "\nThis ERASES ALL STAFF DATA on this box for good: recordings, transcripts, \
         accounts, the box's identity.\nThere is no undo and no recovery key will help.\n\
         To confirm, type exactly:  {}",
        phrase(box_name)
    )?;
    write!(out, "> ")?;
    out.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    let ok = confirmation_ok(box_name, &line);
    if !ok {
        writeln!(out, "Not confirmed: nothing was erased.")?;
    }
    Ok(ok)
}

/// What [`erase`] did, with its duration.
#[derive(Debug)]
pub struct Erased {
    pub seconds: f64,
}

/// Destroys the LUKS volume at `device` (steps 1-3 of the module's description).
pub fn erase(device: &Path, out: &mut dyn Write) -> Result<Erased> {
    let t0 = Instant::now();
    let dev = std::fs::canonicalize(device)
        .with_context(|| format!("the state volume {} is not there", device.display()))?;
    let header_bytes = header_size(&dev).unwrap_or(DEFAULT_HEADER_BYTES);
    // 1. Every keyslot and token, through cryptsetup (it knows LUKS1 and LUKS2 layouts).
    let st = Command::new("cryptsetup")
        .args(["erase", "--batch-mode"])
        .arg(&dev)
        .status()
        .context("running cryptsetup")?;
    if st.success() {
        writeln!(out, "keyslots erased (cryptsetup erase)")?;
    } else {
        // Go on: zeroing the header below destroys the keyslots as well.
        writeln!(
            out,
            "cryptsetup erase failed ({st}); zeroing the header anyway"
        )?;
    }
    // 2. The whole header area, so no LUKS header (primary or secondary) is left to read.
    zero(&dev, header_bytes)?;
    writeln!(out, "header zeroed ({} MiB)", header_bytes >> 20)?;
    // 3. The partition, when it is one: repart makes a fresh one on the next boot.
    let partition_removed = remove_partition(&dev)?;
    if let Some(p) = &partition_removed {
        writeln!(out, "partition {p} removed from the partition table")?;
    }
    let _ = Command::new("sync").status();
    Ok(Erased {
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The LUKS2 data segment's offset (the header's full size) from the JSON area, when the
/// device holds a LUKS2 header.
fn header_size(dev: &Path) -> Option<u64> {
    let h = crate::luks::read(dev)?;
    let v: serde_json::Value = serde_json::from_slice(&h.json).ok()?;
    let max = v["segments"]
        .as_object()?
        .values()
        .filter_map(|s| s["offset"].as_str()?.parse::<u64>().ok())
        .min()?;
    Some(max.max(2 * h.size))
}

fn zero(dev: &Path, bytes: u64) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(dev)
        .with_context(|| format!("opening {} for writing", dev.display()))?;
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    let bytes = if len > 0 { bytes.min(len) } else { bytes };
    let block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])
            .with_context(|| format!("zeroing {}", dev.display()))?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// Removes `dev` from its disk's partition table when it is a partition; its name
/// (e.g. `vda5`) then. The kernel keeps its view until the reboot (the volume is in use).
fn remove_partition(dev: &Path) -> Result<Option<String>> {
    let Some(name) = dev.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    let sys = Path::new("/sys/class/block").join(name);
    let Ok(number) = std::fs::read_to_string(sys.join("partition")) else {
        return Ok(None);
    };
    let parent = std::fs::canonicalize(sys.join(".."))?;
    let disk = Path::new("/dev").join(parent.file_name().context("no parent disk")?);
    let st = Command::new("sfdisk")
        .args(["--no-reread", "--delete"])
        .arg(&disk)
        .arg(number.trim())
        .status()
        .context("running sfdisk")?;
    if !st.success() {
        bail!("sfdisk could not remove partition {name} ({st})");
    }
    Ok(Some(name.to_owned()))
}

pub fn reboot(out: &mut dyn Write) -> Result<()> {
    writeln!(out, "rebooting: the box comes back at first boot")?;
    out.flush()?;
    let st = Command::new("systemctl").arg("reboot").status()?;
    if !st.success() {
        bail!("systemctl reboot: {st}");
    }
    Ok(())
}

/// The whole command: confirm, erase, reboot.
pub fn run_interactive(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    device: &Path,
    box_name: &str,
    no_reboot: bool,
) -> Result<bool> {
    if !confirm(input, out, box_name)? {
        return Ok(false);
    }
    let e = erase(device, out)?;
    writeln!(
        out,
        "VALISE-WIPE done in {:.1}s: all staff data is unreadable",
        e.seconds
    )?;
    if no_reboot {
        writeln!(
            out,
            "not rebooting (--no-reboot): the running system still holds the key until it reboots"
        )?;
    } else {
        reboot(out)?;
    }
    Ok(true)
}

pub fn run(args: WipeArgs) -> Result<()> {
    let name = args
        .box_name
        .clone()
        .unwrap_or_else(|| box_name(&args.state_dir));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    if !run_interactive(&mut input, &mut out, &args.device, &name, args.no_reboot)? {
        bail!("not confirmed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_phrase_confirms() {
        let b = "lisbon-1";
        assert!(confirmation_ok(b, "ERASE lisbon-1\n"));
        assert!(confirmation_ok(b, "  ERASE lisbon-1  \r\n"));
        for wrong in [
            "",
            "\n",
            "y\n",
            "yes\n",
            "YES\n",
            "ERASE\n",
            "lisbon-1\n",
            "erase lisbon-1\n",
            "ERASE lisbon-2\n",
            "ERASE  lisbon-1\n",
            "ERASE lisbon-1 now\n",
            "9\n",
        ] {
            assert!(!confirmation_ok(b, wrong), "{wrong:?} must not confirm");
        }
        // No box name: nothing can confirm (not even "ERASE ").
        assert!(!confirmation_ok("", "ERASE \n"));
        assert!(!confirmation_ok("  ", "ERASE\n"));
    }

    #[test]
    fn confirm_reads_one_line_and_says_why_not() {
        let mut out = Vec::new();
        let mut input: &[u8] = b"yes\nERASE box-1\n";
        assert!(!confirm(&mut input, &mut out, "box-1").unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("type exactly:  ERASE box-1"), "{text}");
        assert!(text.contains("nothing was erased"), "{text}");
        // The second line was not consumed by the first question.
        let mut out = Vec::new();
        assert!(confirm(&mut input, &mut out, "box-1").unwrap());
    }

    #[test]
    fn header_size_reads_the_segment_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let mut img = vec![0u8; 16384];
        img[..6].copy_from_slice(b"LUKS\xba\xbe");
        img[6..8].copy_from_slice(&[0, 2]);
        img[8..16].copy_from_slice(&16384u64.to_be_bytes());
        let json = br#"{"keyslots":{},"segments":{"0":{"type":"crypt","offset":"16777216"}}}"#;
        img[4096..4096 + json.len()].copy_from_slice(json);
        std::fs::write(&p, &img).unwrap();
        assert_eq!(header_size(&p), Some(16 << 20));
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        assert_eq!(header_size(&p), None);
    }
}
