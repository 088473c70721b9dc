//! The `esp-emulator` command line and the flash backing file.
//!
//! Every problem becomes a [`Failure`]: one line naming the problem and the fix, and an exit
//! code (2 for usage errors, 1 for everything else).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use esp_emulator::boot::FlashWiring;
use esp_emulator::device::{BootMode, Chip, CodeExecution, ResetWiring};
use esp_emulator::flash::{SpiFlash, SECTOR_SIZE, SUPPORTED_SIZES};
use esp_emulator::listen::{Endpoint, EndpointError};
use esp_protocol::flash_params::size_name;
use esp_protocol::numbers::{parse_mac, parse_size};

/// The flash file, locked (`flock`) on Unix against a second emulator; unlocked elsewhere.
#[cfg(unix)]
type LockedFile = nix::fcntl::Flock<File>;
#[cfg(not(unix))]
type LockedFile = File;

/// Size of a flash file created without `--size`.
const DEFAULT_SIZE: usize = 4 * 1024 * 1024;

/// A virtual ESP8266 on a pseudo-terminal: prints the slave path (e.g. /dev/pts/7) on the
/// first line of stdout, then serves it until SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(
    name = "esp-emulator",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Flash backing file; created at --size, filled with 0xFF, if missing. With --scenario:
    /// a new file that receives the scenario's flash and keeps what clients write.
    #[arg(long, value_name = "PATH", required_unless_present = "scenario")]
    pub flash: Option<PathBuf>,
    /// Reproduce a reported failure: a scenario NAME from the catalogue (emulator/scenarios)
    /// or a scenario file PATH; it sets the chip, flash, boot mode, wiring, faults and seed.
    #[arg(long, value_name = "NAME|PATH", conflicts_with_all = ["size", "chip", "flash_id", "faults", "seed", "boot", "flash_wiring"])]
    pub scenario: Option<String>,
    /// Flash size, e.g. 1MB or 4MB (default: the file's length, or 4MB for a new file).
    #[arg(long, value_parser = parse_flash_size)]
    pub size: Option<usize>,
    /// Chip model.
    #[arg(long, value_enum, default_value_t = ChipArg::Esp8266)]
    pub chip: ChipArg,
    /// JEDEC ID the flash reports, in hex (default: the Winbond part of that size).
    #[arg(long, value_name = "HEX", value_parser = parse_flash_id)]
    pub flash_id: Option<u32>,
    /// Station MAC address.
    #[arg(long, default_value = "18:FE:34:A1:B2:C3", value_parser = parse_mac)]
    pub mac: [u8; 6],
    /// Also make a symlink at PATH to the slave (replaced if it exists, removed on exit).
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,
    /// Inject a fault (repeatable), e.g. short-read:frame=1,drop=3; see the faults module.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Seed of the random faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Bytes take UART time and mismatched baud rates garble them.
    #[arg(long)]
    pub realtime: bool,
    /// Boot strapping: the ROM loader (download) or the firmware in flash.
    #[arg(long, value_enum)]
    pub boot: Option<BootArg>,
    /// The flash data lines the module connects (default: qio, dout on an ESP8285); a boot
    /// from flash fails when the image header asks for a mode they do not carry.
    #[arg(long, value_name = "qio|dio|dout")]
    pub flash_wiring: Option<FlashWiring>,
    /// What answers once a client uploads code: the CPU runs it (run, the default; also runs
    /// the firmware a boot from flash finds), or the behavioural model of a flasher stub
    /// answers and nothing is executed (model).
    #[arg(long, value_enum, default_value_t = StubArg::Run)]
    pub stub: StubArg,
    /// Also serve the chip on a network endpoint (repeatable): tcp://HOST:PORT, a raw byte
    /// stream for esptool --port socket://HOST:PORT, or rfc2217://HOST:PORT, a Telnet
    /// COM-port server (baud rate, DTR/RTS) for --port rfc2217://HOST:PORT. Port 0 picks a
    /// free port; each bound URL is printed on its own stdout line, after the pty's.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub listen: Vec<Endpoint>,
    /// Serve no pseudo-terminal, only the --listen endpoints (the first line is then the
    /// first endpoint).
    #[arg(long, requires = "listen", conflicts_with = "link")]
    pub no_pty: bool,
    /// How the adapter's DTR and RTS reach EN and GPIO0 on an rfc2217:// endpoint: nodemcu
    /// (the two-transistor auto-reset of NodeMCU/Wemos boards), direct (DTR to GPIO0, RTS
    /// to EN) or none (GPIO0 where the jumper is, see --gpio0).
    #[arg(long, value_enum, default_value_t = ResetWiringArg::None, conflicts_with = "scenario")]
    pub reset_wiring: ResetWiringArg,
    /// Where GPIO0 is held when the wiring does not pull it low: low (a jumper to ground:
    /// the ROM loader) or high (the pull-up: the firmware in flash). Default: low with
    /// --reset-wiring none, high otherwise.
    #[arg(long, value_enum, conflicts_with_all = ["boot", "scenario"])]
    pub gpio0: Option<Gpio0Arg>,
    /// Log client sessions and cable events to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Log every packet to stderr (implies --verbose).
    #[arg(long)]
    pub trace: bool,
    /// A helper instead of the virtual board.
    #[command(subcommand)]
    pub command: Option<Helper>,
}

/// Helpers that need no pseudo-terminal.
#[derive(Debug, clap::Subcommand)]
pub enum Helper {
    /// Print what the ROM does booting FILE (an image or a flash dump): its boot log, the
    /// verdict and notes.
    BootReport {
        /// The image or flash dump; it starts at flash offset 0x0.
        file: PathBuf,
        /// The chip's flash size (default: FILE's length if that is a flash size, else 4MB).
        #[arg(long, value_parser = parse_flash_size)]
        size: Option<usize>,
        /// The module's flash wiring.
        #[arg(long, value_name = "qio|dio|dout", default_value = "qio")]
        flash_wiring: FlashWiring,
    },
}

/// `--chip` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChipArg {
    /// ESP8266EX with external flash.
    Esp8266,
    /// ESP8285 with embedded flash.
    Esp8285,
}

impl From<ChipArg> for Chip {
    fn from(chip: ChipArg) -> Chip {
        match chip {
            ChipArg::Esp8266 => Chip::Esp8266Ex,
            ChipArg::Esp8285 => Chip::Esp8285,
        }
    }
}

/// `--reset-wiring` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResetWiringArg {
    /// The NodeMCU/Wemos two-transistor auto-reset circuit.
    Nodemcu,
    /// DTR to GPIO0 and RTS to EN, no transistors.
    Direct,
    /// No auto-reset: the lines reach nothing.
    None,
}

impl From<ResetWiringArg> for ResetWiring {
    fn from(wiring: ResetWiringArg) -> ResetWiring {
        match wiring {
            ResetWiringArg::Nodemcu => ResetWiring::NodeMcu,
            ResetWiringArg::Direct => ResetWiring::Direct,
            ResetWiringArg::None => ResetWiring::None,
        }
    }
}

/// `--gpio0` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gpio0Arg {
    /// Held low: the ROM serial loader at every reset.
    Low,
    /// Pulled high: the firmware in flash, unless the wiring pulls it low.
    High,
}

impl From<Gpio0Arg> for BootMode {
    fn from(level: Gpio0Arg) -> BootMode {
        match level {
            Gpio0Arg::Low => BootMode::Download,
            Gpio0Arg::High => BootMode::Flash,
        }
    }
}

impl Args {
    /// GPIO0 where nothing pulls it: --gpio0, else --boot when given, else low without
    /// reset wiring (today's download mode) and high (the board's pull-up) with it.
    pub fn gpio0(&self) -> BootMode {
        match (self.gpio0, self.boot) {
            (Some(level), _) => level.into(),
            (None, Some(boot)) => boot.into(),
            (None, None) if self.reset_wiring == ResetWiringArg::None => BootMode::Download,
            (None, None) => BootMode::Flash,
        }
    }
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse()
        .map_err(|error: EndpointError| error.to_string())
}

/// `--stub` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StubArg {
    /// The CPU executes the uploaded code.
    Run,
    /// The behavioural model answers as a stub; uploaded code is not executed.
    Model,
}

impl From<StubArg> for CodeExecution {
    fn from(stub: StubArg) -> CodeExecution {
        match stub {
            StubArg::Run => CodeExecution::Run,
            StubArg::Model => CodeExecution::StubModel,
        }
    }
}

/// `--boot` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BootArg {
    /// GPIO0 low: the ROM serial loader.
    Download,
    /// GPIO0 high: run the firmware in flash.
    Flash,
}

impl From<BootArg> for BootMode {
    fn from(boot: BootArg) -> BootMode {
        match boot {
            BootArg::Download => BootMode::Download,
            BootArg::Flash => BootMode::Flash,
        }
    }
}

/// Why the command stops: a one-line message and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// One line naming the problem and the fix.
    pub message: String,
}

impl Failure {
    /// A usage error (exit code 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    /// A run-time error (exit code 1).
    pub fn runtime(message: impl fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// Parses the command line; help and version requests print and exit here.
pub fn parse_args() -> Result<Args, Failure> {
    Args::try_parse().map_err(|error| {
        if !error.use_stderr() {
            // --help or --version: not an error.
            let _ = error.print();
            std::process::exit(0);
        }
        let rendered = error.render().to_string();
        let details: Vec<&str> = rendered
            .lines()
            .map(|line| line.trim().trim_start_matches("error: "))
            .filter(|line| {
                !line.is_empty()
                    && !line.starts_with("Usage:")
                    && !line.starts_with("For more information")
            })
            .collect();
        Failure::usage(format!(
            "{}; run 'esp-emulator --help' for usage",
            details.join("; ")
        ))
    })
}

fn parse_flash_size(text: &str) -> Result<usize, String> {
    let size: usize = parse_size(text).map_err(|error| error.to_string())?;
    if SUPPORTED_SIZES.contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "{text} is not a flash size: use a power of two from 256KB to 16MB"
        ))
    }
}

fn parse_flash_id(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    u32::from_str_radix(digits, 16)
        .ok()
        .filter(|&id| id <= 0xFF_FFFF)
        .ok_or_else(|| format!("'{text}' is not a 24-bit hex JEDEC ID such as ef4016"))
}

/// The flash backing file: sectors the device changed are written back in place.
#[derive(Debug)]
pub struct BackingFile {
    path: PathBuf,
    /// Locked while the process runs.
    file: LockedFile,
    /// Sectors taken from the device but not yet written, by byte offset.
    unsaved: BTreeMap<usize, Vec<u8>>,
}

/// A backing file's contents before the flash chip is built.
#[derive(Debug)]
pub struct LoadedFlash {
    /// The flash contents, as long as the chip.
    pub contents: Vec<u8>,
    /// The file, locked, or `None` when it must be created.
    file: Option<LockedFile>,
}

/// Reads the flash file at `path`, checking its length against `size`, or plans to create it.
///
/// Nothing is written: a file that is rejected is left untouched. The file is locked
/// (`flock`, exclusive) for as long as it is open, so a second esp-emulator on it refuses
/// to start rather than mix its writes with the first one's.
pub fn load_flash(path: &Path, size: Option<usize>) -> Result<LoadedFlash, Failure> {
    let shown = path.display();
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let parent = path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty());
            if let Some(parent) = parent.filter(|parent| !parent.is_dir()) {
                return Err(Failure::runtime(format!(
                    "cannot create flash file {shown}: directory {} does not exist; create it or choose another --flash path",
                    parent.display()
                )));
            }
            let size = size.unwrap_or(DEFAULT_SIZE);
            return Ok(LoadedFlash {
                contents: vec![0xFF; size],
                file: None,
            });
        }
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Err(Failure::runtime(format!(
                "flash file {shown} is not writable ({error}); make it writable (chmod u+rw {shown}) or use another --flash path"
            )));
        }
        Err(error) => {
            return Err(Failure::runtime(format!(
                "cannot open flash file {shown}: {error}"
            )))
        }
    };
    let mut file = lock(file, path)?;
    let length = file
        .metadata()
        .map_err(|error| Failure::runtime(format!("cannot stat flash file {shown}: {error}")))?
        .len() as usize;
    if !SUPPORTED_SIZES.contains(&length) {
        return Err(Failure::usage(format!(
            "flash file {shown} is {length} bytes, not a flash size (a power of two from 256KB to 16MB); fix or remove the file"
        )));
    }
    if let Some(size) = size.filter(|&size| size != length) {
        return Err(Failure::usage(format!(
            "flash file {shown} is {} but --size says {}; drop --size or pass --size {}",
            size_name(length as u64),
            size_name(size as u64),
            size_name(length as u64)
        )));
    }
    let mut contents = Vec::with_capacity(length);
    file.read_to_end(&mut contents)
        .map_err(|error| Failure::runtime(format!("cannot read flash file {shown}: {error}")))?;
    Ok(LoadedFlash {
        contents,
        file: Some(file),
    })
}

impl LoadedFlash {
    /// Opens the backing file, creating it (filled with 0xFF, `size` bytes) if needed.
    pub fn into_backing(self, path: &Path, size: usize) -> Result<BackingFile, Failure> {
        let file = match self.file {
            Some(file) => file,
            None => create_erased(path, size)?,
        };
        Ok(BackingFile {
            path: path.to_owned(),
            file,
            unsaved: BTreeMap::new(),
        })
    }
}

/// Takes the exclusive lock on the flash file, or names the instance that holds it.
#[cfg(unix)]
fn lock(file: File, path: &Path) -> Result<LockedFile, Failure> {
    use nix::errno::Errno;
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::MetadataExt;
    let inode = file
        .metadata()
        .map(|metadata| (metadata.dev(), metadata.ino()))
        .ok();
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => Failure::runtime(format!(
            "{} is in use by another esp-emulator{} (it holds a lock on it); stop that one or use another file",
            path.display(),
            inode
                .and_then(|(device, inode)| lock_holder(device, inode))
                .map_or(String::new(), |pid| format!(" (process {pid})"))
        )),
        _ => Failure::runtime(format!(
            "cannot lock flash file {}: {errno}; use a file on a local file system",
            path.display()
        )),
    })
}

/// The process holding a `flock` on the file `(device, inode)`, from Linux's /proc/locks
/// (lines such as `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF`, the device as
/// hexadecimal major:minor).
#[cfg(target_os = "linux")]
fn lock_holder(device: u64, inode: u64) -> Option<u32> {
    use nix::sys::stat::{major, minor};
    let file = format!("{:02x}:{:02x}:{inode}", major(device), minor(device));
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, locked) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        (*kind == "FLOCK" && *locked == file)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// Other Unix systems have no /proc/locks: the holder goes unnamed.
#[cfg(all(unix, not(target_os = "linux")))]
fn lock_holder(_device: u64, _inode: u64) -> Option<u32> {
    None
}

/// No `flock` here: the file is used unlocked.
#[cfg(not(unix))]
fn lock(file: File, _: &Path) -> Result<LockedFile, Failure> {
    Ok(file)
}

/// Creates the flash file, locked before anything is written, filled with 0xFF.
fn create_erased(path: &Path, size: usize) -> Result<LockedFile, Failure> {
    let erased = vec![0xFF; SECTOR_SIZE * 16];
    create_flash_file(path, |file| {
        (0..size / erased.len()).try_for_each(|_| file.write_all(&erased))
    })
}

/// Creates a new flash file holding `contents` (a scenario's flash), locked while it is
/// written; on a full disk no truncated file is left.
pub fn create_flash_file_with(path: &Path, contents: &[u8]) -> Result<(), Failure> {
    create_flash_file(path, |file| file.write_all(contents)).map(drop)
}

/// Creates `path` (it must not exist), locks it, lets `fill` write it and syncs it; a file
/// that cannot be written whole is removed, so that none is mistaken for a flash image.
fn create_flash_file(
    path: &Path,
    fill: impl FnOnce(&mut LockedFile) -> io::Result<()>,
) -> Result<LockedFile, Failure> {
    let failed = |error: io::Error| {
        Failure::runtime(format!(
            "cannot create flash file {}: {error}",
            path.display()
        ))
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        // Another process created it since it was found missing.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let file = File::open(path).map_err(failed)?;
            lock(file, path)?;
            return Err(Failure::runtime(format!(
                "flash file {} appeared while esp-emulator started; start it again",
                path.display()
            )));
        }
        Err(error) => return Err(failed(error)),
    };
    let mut file = lock(file, path)?;
    let filled = fill(&mut file).and_then(|()| file.sync_all());
    if let Err(error) = filled {
        // A full disk: no truncated file is left to be mistaken for a flash image.
        let _ = std::fs::remove_file(path);
        return Err(failed(error));
    }
    Ok(file)
}

impl BackingFile {
    /// Takes the sectors `flash` changed and writes them at their offsets in the file.
    pub fn save(&mut self, flash: &mut SpiFlash) -> Result<(), Failure> {
        self.take_dirty(flash);
        self.write_unsaved()
    }

    /// Copies the changed sectors out of `flash` (cheap; call with the device paused).
    pub fn take_dirty(&mut self, flash: &mut SpiFlash) {
        for sector in flash.dirty_sectors() {
            let offset = sector * SECTOR_SIZE;
            let data = flash.as_bytes()[offset..offset + SECTOR_SIZE].to_vec();
            self.unsaved.insert(offset, data);
        }
        flash.clear_dirty();
    }

    /// Writes the copied sectors; those that fail stay queued for the next attempt.
    pub fn write_unsaved(&mut self) -> Result<(), Failure> {
        while let Some((offset, data)) = self.unsaved.pop_first() {
            let mut file: &File = &self.file;
            let written = file
                .seek(SeekFrom::Start(offset as u64))
                .and_then(|_| file.write_all(&data));
            if let Err(error) = written {
                self.unsaved.insert(offset, data);
                return Err(Failure::runtime(format!(
                    "cannot write flash file {}: {error}",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }

    /// Writes everything and waits until it is on disk.
    pub fn sync(&mut self) -> Result<(), Failure> {
        self.write_unsaved()?;
        self.file.sync_all().map_err(|error| {
            Failure::runtime(format!(
                "cannot sync flash file {}: {error}",
                self.path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_flash_size("1MB"), Ok(1 << 20));
        assert!(parse_flash_size("3MB").is_err());
        assert_eq!(parse_flash_id("e04016"), Ok(0xE04016));
        assert_eq!(parse_flash_id("0xEF4014"), Ok(0xEF4014));
        assert!(parse_flash_id("1000000").is_err());
        assert_eq!(
            parse_mac("aa:BB:cc:dd:ee:01"),
            Ok([0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x01])
        );
        assert!(parse_mac("aa:bb:cc:dd:ee").is_err());
        assert!(parse_mac("aa:bb:cc:dd:ee:f").is_err());
    }

    #[test]
    fn dirty_sectors_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let loaded = load_flash(&path, Some(256 * 1024)).unwrap();
        let mut flash = SpiFlash::new(loaded.contents.clone(), Default::default()).unwrap();
        let mut backing = loaded.into_backing(&path, 256 * 1024).unwrap();
        flash.program(0x2001, &[0x12, 0x34]).unwrap();
        backing.save(&mut flash).unwrap();
        backing.sync().unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), 256 * 1024);
        assert_eq!(file, flash.as_bytes());

        drop(backing);
        let error = load_flash(&path, Some(1 << 20)).unwrap_err();
        assert_eq!(error.code, 2);
        assert!(error.message.contains("is 256KB but --size says 1MB"));
    }

    #[test]
    fn a_locked_flash_file_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let first = load_flash(&path, Some(256 * 1024))
            .unwrap()
            .into_backing(&path, 256 * 1024)
            .unwrap();
        let error = load_flash(&path, None).unwrap_err();
        assert_eq!(error.code, 1);
        // On Linux the holder is named: this very process.
        let holder = match cfg!(target_os = "linux") {
            true => format!(" (process {})", std::process::id()),
            false => String::new(),
        };
        assert!(
            error.message.ends_with(&format!(
                "flash.bin is in use by another esp-emulator{holder} (it holds a lock on it); stop that one or use another file"
            )),
            "{}",
            error.message
        );
        drop(first);
        assert!(load_flash(&path, None).is_ok());
    }
}
