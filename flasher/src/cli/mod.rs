//! The command line: the clap definitions (the options every command shares, flattened into
//! [`Cli`], and each command's arguments) and the parsers for numbers, sizes and flash
//! parameters. The `emu:` port spec is in [`emu`], esptool's spellings are rewritten in
//! [`rewrite`] before clap sees them.

mod emu;
mod rewrite;

pub use emu::{EmuSpec, EmuStub, PortArg};
pub use rewrite::normalize_args;

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use esp_protocol::flash_params::{FlashFreq, FlashMode, FlashParamOverrides, FlashSize};
use esp_protocol::numbers;

/// What `--help` says after the options: the exit codes and the stub sources. (clap shows
/// the two characters `{n}`, wherever they are, as a line break.)
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed (no answer, write or verify error, ...)
  2  usage error (unknown command or flag, malformed number, missing file); nothing was sent

Ports:
  --port COM5                       a serial port: COM5 on Windows, /dev/cu.usbserial-* or
                                    /dev/cu.wchusbserial* on macOS, /dev/ttyUSB0 or /dev/ttyACM0
                                    on Linux. ESPTOOL_PORT and ESPTOOL_BAUD stand in for --port
                                    and --baud, as with esptool
  --port emu:[SIZE][,file=PATH][,fault=SPEC][,chip=esp8285][,seed=N][,mac=MAC][,stub=model|run]
                                    the built-in virtual ESP8266: a Sonoff-like sample flash each
                                    run (firmware at 0x0, SDK settings at the end; not blank),
                                    or loaded from and saved back to PATH (a new PATH starts
                                    with that sample). Its CPU runs the uploaded stub
                                    (flashlab's own, or --stub-file); stub=model answers with
                                    a model of a stub instead
  --port A --port B ..., --port all run the command on many boards at once (all: every USB
                                    serial adapter found) and print a summary (--json: as
                                    JSON). File names take {mac}, {port} and the board's
                                    number, written as the letter n in braces, e.g.
                                    backup 'sonoff-{mac}.bin'
  no --port                         try each USB serial port found (CP210x, CH340 and FTDI
                                    adapters first; list-ports shows them); with none, backup
                                    (the first run) uses the virtual ESP8266 and says so, and
                                    every other command fails (give --port emu: to mean it)

Commands and options take esptool's spellings too: read_flash, --flash_size=detect, -fs 1MB.

--json: stdout carries one JSON document (command, ok, result or error), everything else goes to
stderr; the README describes each command's result.

Stub: --stub-file FILE or ESP_FLASHER_STUB=FILE (esptool's JSON stub, e.g.
site-packages/esptool/targets/stub_flasher/2/esp8266.json); --no-stub uses the ROM loader only.";

/// Flash and back up ESP8266/ESP8285 boards; takes esptool.py's command lines.
#[derive(Debug, Clone, Parser)]
#[command(name = "esp-flasher", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// How to reach the chip.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print the result as one JSON document on stdout; human text goes to stderr
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command that talks to a chip shares.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Serial port (/dev/ttyUSB0, COM5, /dev/cu.usbserial-110) or emu:[SIZE][,file=PATH][,fault=SPEC][,chip=esp8285][,seed=N][,mac=MAC][,stub=model|run];
    /// give it more than once, or `all` (every USB serial adapter), to run the command on many boards at once
    /// [env: ESPTOOL_PORT]
    #[arg(short = 'p', long = "port", global = true, value_name = "PORT", action = clap::ArgAction::Append)]
    pub ports: Vec<String>,
    /// The one port of a single-board run: the one `--port`, else `ESPTOOL_PORT`, else none
    /// (search). Set by [`ConnectArgs::with_environment`].
    #[arg(skip)]
    pub port: Option<String>,
    /// Baud rate after connecting: a number, or auto for the fastest the line carries cleanly
    /// (auto is the default for backup and restore, 115200 for the rest)
    /// [env: ESPTOOL_BAUD]
    #[arg(short = 'b', long, global = true, value_name = "BAUD|auto", value_parser = parse_baud)]
    pub baud: Option<BaudArg>,
    /// Target chip
    #[arg(short = 'c', long, global = true, value_enum, default_value_t = ChipArg::Auto)]
    pub chip: ChipArg,
    /// What to do before connecting
    #[arg(long, global = true, value_enum, default_value_t = BeforeArg::DefaultReset)]
    pub before: BeforeArg,
    /// What to do after the command
    #[arg(short = 'a', long, global = true, value_enum, default_value_t = AfterArg::HardReset)]
    pub after: AfterArg,
    /// Use the ROM loader only, without uploading a stub
    #[arg(long, global = true)]
    pub no_stub: bool,
    /// The flasher stub to upload (esptool's JSON format) [env: ESP_FLASHER_STUB]
    #[arg(long, global = true, value_name = "FILE")]
    pub stub_file: Option<PathBuf>,
    /// Print every byte sent and received
    #[arg(short = 't', long, global = true)]
    pub trace: bool,
}

/// `--baud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaudArg {
    /// Switch to this rate once the stub runs.
    Rate(u32),
    /// Climb to the fastest rate a probe read passes at; step down on a corrupt block.
    Auto,
}

/// `--port all`: every USB serial adapter found.
pub const ALL_PORTS: &str = "all";
/// esptool's environment variable for `--port`.
pub const PORT_ENV_VAR: &str = "ESPTOOL_PORT";
/// esptool's environment variable for `--baud`.
pub const BAUD_ENV_VAR: &str = "ESPTOOL_BAUD";

impl ConnectArgs {
    /// Fills `--port` and `--baud` from `ESPTOOL_PORT` and `ESPTOOL_BAUD` when they were not
    /// given, as esptool does: the flag wins, and an empty variable counts as unset.
    /// `var` looks a variable up (`std::env::var(name).ok()` in the binary).
    pub fn with_environment(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectArgs, String> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        self.port = match self.ports.as_slice() {
            [] => set(PORT_ENV_VAR),
            [one] => Some(one.clone()),
            _ => None,
        };
        if let (None, Some(text)) = (self.baud, set(BAUD_ENV_VAR)) {
            let baud = parse_baud(&text).map_err(|problem| {
                format!("error: {BAUD_ENV_VAR}: {problem}; set it to a rate or unset it")
            })?;
            self.baud = Some(baud);
        }
        Ok(self)
    }

    /// Whether the command runs on many boards: `--port` given more than once, or `--port all`.
    pub fn is_fleet(&self) -> bool {
        self.ports.len() > 1 || self.ports.iter().any(|port| port == ALL_PORTS)
    }

    /// These options for one board of a many-board run.
    pub fn for_board(&self, port: &str) -> ConnectArgs {
        ConnectArgs {
            ports: vec![port.to_string()],
            port: Some(port.to_string()),
            ..self.clone()
        }
    }

    /// These options with `baud` when `--baud` was not given.
    pub fn with_default_baud(&self, baud: BaudArg) -> ConnectArgs {
        ConnectArgs {
            baud: Some(self.baud.unwrap_or(baud)),
            ..self.clone()
        }
    }
}

/// `--chip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChipArg {
    /// Whatever answers.
    Auto,
    /// ESP8266 or ESP8285.
    Esp8266,
}

/// `--before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BeforeArg {
    /// Reset into the ROM loader with DTR/RTS.
    #[value(alias = "default_reset")]
    DefaultReset,
    /// Do not reset; sync with the chip as it is.
    #[value(alias = "no_reset")]
    NoReset,
    /// Do not reset and do not sync: the chip is already talking to us.
    #[value(alias = "no_reset_no_sync")]
    NoResetNoSync,
}

/// `--after`; the variants are esptool's choice names.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AfterArg {
    /// Reset via RTS so the new firmware runs.
    #[value(alias = "hard_reset")]
    HardReset,
    /// Jump to the firmware without a reset.
    #[value(alias = "soft_reset")]
    SoftReset,
    /// Stay in the loader.
    #[value(alias = "no_reset")]
    NoReset,
}

/// The commands, named as in esptool (underscores are accepted too).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the chip ID
    ChipId,
    /// Print the MAC address
    ReadMac,
    /// Print the SPI flash manufacturer, device ID and size
    FlashId,
    /// Read flash contents to a file
    ReadFlash(ReadFlashArgs),
    /// Write files to flash
    WriteFlash(WriteFlashArgs),
    /// Erase the whole flash
    EraseFlash,
    /// Erase a region of the flash
    EraseRegion(EraseRegionArgs),
    /// Check that flash holds the given files
    VerifyFlash(VerifyFlashArgs),
    /// Read the SPI flash status register
    ReadFlashStatus(ReadFlashStatusArgs),
    /// Write the SPI flash status register
    WriteFlashStatus(WriteFlashStatusArgs),
    /// Read a 32-bit word of memory
    ReadMem(ReadMemArgs),
    /// Write a 32-bit word of memory, optionally masked
    WriteMem(WriteMemArgs),
    /// Read memory to a file
    DumpMem(DumpMemArgs),
    /// Show the header and segments of a firmware image file
    ImageInfo(ImageInfoArgs),
    /// Merge files into one image to write at 0x0
    MergeBin(MergeBinArgs),
    /// Run the firmware in flash
    Run(RunArgs),
    /// Print the esp-flasher version
    Version,
    /// Save the whole flash and a .json record of the chip to FILE
    Backup(BackupArgs),
    /// Write a backup made by `backup`, or a plain firmware image, back to the chip at 0x0
    Restore(RestoreArgs),
    /// List the USB serial ports, the ESP8266 boards' adapters marked
    ListPorts,
    /// Show the chip, crystal, MAC, flash ID and the flash's real size (the wrap test)
    BoardInfo,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Show the board's serial output: the ROM's boot log at 74880 baud, then the firmware's
    /// (Ctrl-] quits, Ctrl-T Ctrl-H for help)
    Monitor(MonitorArgs),
}

/// `completions SHELL`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `monitor [--monitor-baud BAUD] [--elf FILE] [--timeout DURATION]`.
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// How to show the output
    #[command(flatten)]
    pub options: MonitorOptions,
}

/// `--monitor` for write_flash, restore and run: the monitor once the command is done.
#[derive(Debug, Clone, Args)]
pub struct MonitorAfter {
    /// Start the serial monitor once done (see `monitor --help`)
    #[arg(long)]
    pub monitor: bool,
    /// The monitor's options
    #[command(flatten)]
    pub options: MonitorOptions,
}

/// The serial monitor's options.
#[derive(Debug, Clone, Args)]
pub struct MonitorOptions {
    /// The firmware's baud rate (the ROM's boot log before it is read at 74880)
    #[arg(long, value_name = "BAUD", default_value = "115200", value_parser = parse_monitor_baud)]
    pub monitor_baud: u32,
    /// The firmware's ELF file: code addresses in crash dumps get their function and line
    #[arg(long, value_name = "FILE")]
    pub elf: Option<PathBuf>,
    /// Stop the monitor after this long (3, 2.5, 500ms, 10s, 2m); without it, it runs until
    /// Ctrl-] or the port goes away
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, allow_hyphen_values = true)]
    pub timeout: Option<std::time::Duration>,
}

/// `run [--monitor ...]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The serial monitor afterwards
    #[command(flatten)]
    pub monitor: MonitorAfter,
}

/// `read_flash ADDR SIZE|ALL FILE`.
#[derive(Debug, Clone, Args)]
pub struct ReadFlashArgs {
    /// Start address (hex or decimal)
    #[arg(value_parser = parse_u32)]
    pub address: u32,
    /// Bytes to read: a number, 1MB/512KB, or ALL for the whole chip
    #[arg(value_parser = parse_read_size)]
    pub size: ReadSize,
    /// Where to save the data
    pub file: PathBuf,
    /// Read the blocks as they are: the chip does not deflate them (erased sectors are still skipped)
    #[arg(short = 'u', long)]
    pub no_compress: bool,
}

/// `write_flash [OPTIONS] ADDR FILE [ADDR FILE ...]`.
#[derive(Debug, Clone, Args)]
pub struct WriteFlashArgs {
    /// Header flash parameters for an image written at 0x0
    #[command(flatten)]
    pub params: FlashParamArgs,
    /// Erase the whole flash first, not only the written sectors
    #[arg(short = 'e', long)]
    pub erase_all: bool,
    /// Compress the data in transit (the default with a stub)
    #[arg(short = 'z', long, conflicts_with = "no_compress")]
    pub compress: bool,
    /// Send the data uncompressed (the default without a stub)
    #[arg(short = 'u', long)]
    pub no_compress: bool,
    /// Check the MD5 of each region after writing (the default)
    #[arg(long, conflicts_with = "no_verify")]
    pub verify: bool,
    /// Skip the MD5 check after writing
    #[arg(long)]
    pub no_verify: bool,
    /// Address and file pairs
    #[arg(value_name = "ADDR FILE", num_args = 2.., required = true)]
    pub addr_file: Vec<String>,
    /// The serial monitor afterwards
    #[command(flatten)]
    pub monitor: MonitorAfter,
}

impl WriteFlashArgs {
    /// `-z`/`-u` as a choice; `None` means "compress when a stub runs".
    pub fn compression(&self) -> Option<bool> {
        match (self.compress, self.no_compress) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// `-fs`/`-fm`/`-ff`, shared by write_flash, verify_flash and merge_bin.
#[derive(Debug, Clone, Copy, Args)]
pub struct FlashParamArgs {
    /// Flash size for the header: keep, detect, 256KB, 512KB, 1MB, 2MB, 2MB-c1, 4MB, 4MB-c1, 8MB, 16MB
    #[arg(long, value_name = "SIZE", value_parser = parse_flash_size_arg, default_value = "keep")]
    pub flash_size: FlashSizeArg,
    /// Flash mode for the header: keep, qio, qout, dio, dout
    #[arg(long, value_name = "MODE", value_parser = parse_flash_mode_arg, default_value = "keep")]
    pub flash_mode: KeepOr<FlashMode>,
    /// Flash frequency for the header: keep, 40m, 26m, 20m, 80m
    #[arg(long, value_name = "FREQ", value_parser = parse_flash_freq_arg, default_value = "keep")]
    pub flash_freq: KeepOr<FlashFreq>,
}

impl FlashParamArgs {
    /// The mode and frequency to put in the header; the size is resolved by the caller.
    pub fn overrides(&self, size: Option<FlashSize>) -> FlashParamOverrides {
        FlashParamOverrides {
            mode: self.flash_mode.value(),
            size,
            freq: self.flash_freq.value(),
        }
    }
}

/// A header value to set, or "keep" what the image has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepOr<T> {
    /// Leave the header alone.
    Keep,
    /// Write this value.
    Set(T),
}

impl<T: Copy> KeepOr<T> {
    /// The value to write, if any.
    pub fn value(self) -> Option<T> {
        match self {
            KeepOr::Keep => None,
            KeepOr::Set(value) => Some(value),
        }
    }
}

/// `-fs`: keep the header's size, detect it from the chip, or a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashSizeArg {
    /// Leave the header alone.
    Keep,
    /// Use the size the chip's JEDEC ID reports.
    Detect,
    /// Use this size.
    Size(FlashSize),
}

/// `erase_region ADDR SIZE`.
#[derive(Debug, Clone, Args)]
pub struct EraseRegionArgs {
    /// Start address, a multiple of 4096 (0x1000)
    #[arg(value_parser = parse_u32)]
    pub address: u32,
    /// Bytes to erase, a multiple of 4096 (0x1000)
    #[arg(value_parser = parse_u32)]
    pub size: u32,
}

/// `verify_flash ADDR FILE [ADDR FILE ...]`.
#[derive(Debug, Clone, Args)]
pub struct VerifyFlashArgs {
    /// Header flash parameters the image at 0x0 was written with
    #[command(flatten)]
    pub params: FlashParamArgs,
    /// Address and file pairs
    #[arg(value_name = "ADDR FILE", num_args = 2.., required = true)]
    pub addr_file: Vec<String>,
}

/// `read_flash_status [--bytes N]`.
#[derive(Debug, Clone, Args)]
pub struct ReadFlashStatusArgs {
    /// Status bytes to read (1-3)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub bytes: u8,
}

/// `write_flash_status [--non-volatile] [--bytes N] VALUE`.
#[derive(Debug, Clone, Args)]
pub struct WriteFlashStatusArgs {
    /// Write the non-volatile status bits (use with care)
    #[arg(long)]
    pub non_volatile: bool,
    /// Status bytes to write (1-3)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub bytes: u8,
    /// The new status value
    #[arg(value_parser = parse_u32)]
    pub value: u32,
}

/// `read_mem ADDR`.
#[derive(Debug, Clone, Args)]
pub struct ReadMemArgs {
    /// Address of the word
    #[arg(value_parser = parse_u32)]
    pub address: u32,
}

/// `write_mem ADDR VALUE [MASK]`.
#[derive(Debug, Clone, Args)]
pub struct WriteMemArgs {
    /// Address of the word
    #[arg(value_parser = parse_u32)]
    pub address: u32,
    /// Value to write
    #[arg(value_parser = parse_u32)]
    pub value: u32,
    /// Bits of VALUE to write; the others keep their contents
    #[arg(value_parser = parse_u32, default_value = "0xFFFFFFFF")]
    pub mask: u32,
}

/// `dump_mem ADDR SIZE FILE`.
#[derive(Debug, Clone, Args)]
pub struct DumpMemArgs {
    /// Start address
    #[arg(value_parser = parse_u32)]
    pub address: u32,
    /// Bytes to read
    #[arg(value_parser = parse_u32)]
    pub size: u32,
    /// Where to save the data
    pub file: PathBuf,
}

/// `image_info FILE`.
#[derive(Debug, Clone, Args)]
pub struct ImageInfoArgs {
    /// The firmware image
    pub file: PathBuf,
}

/// `merge_bin -o OUT [-fs/-fm/-ff] ADDR FILE ...`.
#[derive(Debug, Clone, Args)]
pub struct MergeBinArgs {
    /// The merged file to write
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Header flash parameters for the image at 0x0 (detect is not possible here)
    #[command(flatten)]
    pub params: FlashParamArgs,
    /// Pad the output with 0xFF up to this flash size
    #[arg(long, value_name = "SIZE", value_parser = parse_flash_size)]
    pub pad_to_size: Option<FlashSize>,
    /// Address and file pairs
    #[arg(value_name = "ADDR FILE", num_args = 2.., required = true)]
    pub addr_file: Vec<String>,
}

/// `backup FILE`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The flash image to write; the record goes to FILE.json
    pub file: PathBuf,
    /// Read the blocks as they are: the chip does not deflate them (erased sectors are still skipped)
    #[arg(short = 'u', long)]
    pub no_compress: bool,
}

/// `restore [-fs/-fm/-ff] FILE`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Header flash parameters to write the image's header with
    #[command(flatten)]
    pub params: FlashParamArgs,
    /// Write even if the record names another chip or flash, or the image's header does not fit the chip
    #[arg(long)]
    pub force: bool,
    /// A flash image made by `backup` (its FILE.json record is read too), or a plain firmware image
    pub file: PathBuf,
    /// Set by the many-board driver, which has checked FILE and holds its lock for all boards
    /// (each taking it would shut the others out).
    #[arg(skip)]
    pub image_locked: bool,
    /// The serial monitor afterwards
    #[command(flatten)]
    pub monitor: MonitorAfter,
}

/// `read_flash`'s SIZE: a byte count or the whole chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSize {
    /// This many bytes.
    Bytes(u32),
    /// Everything up to the end of the detected flash.
    All,
}

/// Parses an address or count: esp-protocol's one number grammar (decimal, 0x, 0o, 0b).
pub fn parse_u32(text: &str) -> Result<u32, String> {
    numbers::parse_number(text).map_err(|error| error.to_string())
}

/// Parses a byte count that may carry a K/KB or M/MB suffix ("1MB", "512KB", "4M"):
/// esp-protocol's one size grammar.
pub fn parse_size(text: &str) -> Result<u32, String> {
    numbers::parse_size(text).map_err(|error| error.to_string())
}

/// Parses `--baud`: `auto` or a rate in bits per second.
fn parse_baud(text: &str) -> Result<BaudArg, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(BaudArg::Auto);
    }
    match parse_u32(text) {
        Ok(rate) if rate >= 300 => Ok(BaudArg::Rate(rate)),
        _ => Err(format!(
            "\"{text}\" is not a baud rate (use e.g. 115200, 921600 or auto)"
        )),
    }
}

/// Parses `--monitor-baud`: a rate in bits per second.
fn parse_monitor_baud(text: &str) -> Result<u32, String> {
    match parse_baud(text) {
        Ok(BaudArg::Rate(rate)) => Ok(rate),
        _ => Err(format!(
            "\"{text}\" is not a baud rate (use the firmware's: e.g. 115200, 74880 or 9600)"
        )),
    }
}

/// The longest `--timeout`: a year.
const MAX_TIMEOUT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses `--timeout`: seconds (`3`, `2.5`) or a number with a unit (`500ms`, `10s`, `2m`),
/// more than 0 and at most a year.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let usage = "give a duration such as 3, 2.5, 500ms, 10s or 2m";
    if text.starts_with('-') {
        return Err(format!("{text} is negative: {usage}"));
    }
    let duration = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds <= MAX_TIMEOUT_SECONDS => {
            std::time::Duration::from_secs_f64(seconds)
        }
        Ok(_) => return Err(format!("{text} seconds is more than a year: {usage}")),
        Err(_) => humantime::parse_duration(text)
            .map_err(|error| format!("\"{text}\" is not a duration ({error}): {usage}"))?,
    };
    if duration.is_zero() {
        return Err(format!("{text} is no time at all: {usage}"));
    }
    if duration.as_secs_f64() > MAX_TIMEOUT_SECONDS {
        return Err(format!("{text} is more than a year: {usage}"));
    }
    Ok(duration)
}

/// Parses `read_flash`'s SIZE: `ALL` or a byte count.
fn parse_read_size(text: &str) -> Result<ReadSize, String> {
    if text.eq_ignore_ascii_case("all") {
        Ok(ReadSize::All)
    } else {
        parse_size(text).map(ReadSize::Bytes)
    }
}

/// Parses an esptool flash size name ("1MB", "4MB-c1").
fn parse_flash_size(text: &str) -> Result<FlashSize, String> {
    text.parse().map_err(|error| format!("{error}"))
}

/// Parses `-fs`: keep, detect or a size name.
fn parse_flash_size_arg(text: &str) -> Result<FlashSizeArg, String> {
    match text.to_ascii_lowercase().as_str() {
        "keep" => Ok(FlashSizeArg::Keep),
        "detect" => Ok(FlashSizeArg::Detect),
        _ => parse_flash_size(text)
            .map(FlashSizeArg::Size)
            .map_err(|error| format!("{error}, keep or detect")),
    }
}

/// Parses `-fm`: keep or a mode name.
fn parse_flash_mode_arg(text: &str) -> Result<KeepOr<FlashMode>, String> {
    parse_keep_or(text)
}

/// Parses `-ff`: keep or a frequency name.
fn parse_flash_freq_arg(text: &str) -> Result<KeepOr<FlashFreq>, String> {
    parse_keep_or(text)
}

/// Parses "keep" or a value of `T`, whose error lists the choices.
fn parse_keep_or<T: FromStr>(text: &str) -> Result<KeepOr<T>, String>
where
    T::Err: std::fmt::Display,
{
    if text.eq_ignore_ascii_case("keep") {
        return Ok(KeepOr::Keep);
    }
    text.parse()
        .map(KeepOr::Set)
        .map_err(|error| format!("{error} or keep"))
}

/// A clap error as one line: its first line, with the choices if clap listed them.
pub fn one_line_error(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: bad command line")
        .to_string();
    let choices = lines.find(|line| line.starts_with("[possible values:"));
    let help = "(see esp-flasher --help)";
    match choices {
        Some(choices) => format!("{first} {choices} {help}"),
        None => format!("{first} {help}"),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::CommandFactory;

    use super::*;

    /// Parses a command line given as one string, after the esptool rewrite.
    fn parse(line: &str) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("esp-flasher")
            .chain(line.split_whitespace())
            .map(OsString::from);
        Cli::try_parse_from(normalize_args(argv))
    }

    fn parse_ok(line: &str) -> Cli {
        parse(line).unwrap_or_else(|error| panic!("{line}: {error}"))
    }

    /// `parse_ok(line)`'s connect options with `environment` as the process's variables.
    fn connect_with(line: &str, environment: &[(&str, &str)]) -> Result<ConnectArgs, String> {
        parse_ok(line).connect.with_environment(|name| {
            environment
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn esptool_port_and_baud_variables_stand_in_for_absent_flags() {
        let both = [("ESPTOOL_PORT", "COM5"), ("ESPTOOL_BAUD", "460800")];
        let connect = connect_with("flash_id", &both).unwrap();
        assert_eq!(connect.port.as_deref(), Some("COM5"));
        assert_eq!(connect.baud, Some(BaudArg::Rate(460_800)));
        let flags = connect_with("--port /dev/ttyUSB0 -b 115200 flash_id", &both).unwrap();
        assert_eq!(flags.port.as_deref(), Some("/dev/ttyUSB0"));
        assert_eq!(flags.baud, Some(BaudArg::Rate(115_200)));
        let empty = [("ESPTOOL_PORT", ""), ("ESPTOOL_BAUD", "")];
        let unset = connect_with("flash_id", &empty).unwrap();
        assert_eq!((unset.port, unset.baud), (None, None));
        let auto = connect_with("flash_id", &[("ESPTOOL_BAUD", "auto")]).unwrap();
        assert_eq!(auto.baud, Some(BaudArg::Auto));
        let bad = connect_with("flash_id", &[("ESPTOOL_BAUD", "fast")]).unwrap_err();
        assert!(bad.contains("ESPTOOL_BAUD") && bad.contains("\"fast\" is not a baud rate"));
        // The flag wins over a malformed variable, which is then not read.
        assert!(connect_with("-b 9600 flash_id", &[("ESPTOOL_BAUD", "fast")]).is_ok());
    }

    #[test]
    fn port_given_more_than_once_or_all_means_many_boards() {
        let many = parse_ok("--port /dev/ttyUSB0 backup b-{n}.bin -p emu:1MB --port COM3 --json");
        assert_eq!(many.connect.ports, ["/dev/ttyUSB0", "emu:1MB", "COM3"]);
        assert!(many.connect.is_fleet() && many.json);
        // ESPTOOL_PORT is for one board: it does not join a list, and no single port is set.
        let connect = connect_with(
            "--port /dev/ttyUSB0 -p /dev/ttyUSB1 flash_id",
            &[("ESPTOOL_PORT", "COM5")],
        )
        .unwrap();
        assert_eq!(connect.port, None);
        assert_eq!(
            connect.for_board("/dev/ttyUSB1").port.as_deref(),
            Some("/dev/ttyUSB1")
        );
        assert!(parse_ok("--port all flash_id").connect.is_fleet());
        for single in ["--port COM5 flash_id", "flash_id"] {
            assert!(!parse_ok(single).connect.is_fleet(), "{single}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seed_write_flash_with_two_letter_flags() {
        let cli = parse_ok("--port COM5 write_flash -fs 1MB -fm dout 0x0 sonoff.bin");
        assert_eq!(cli.connect.ports, ["COM5"]);
        let Command::WriteFlash(args) = cli.command else {
            panic!("not write_flash")
        };
        assert_eq!(
            args.params.flash_size,
            FlashSizeArg::Size(FlashSize::Size1M)
        );
        assert_eq!(args.params.flash_mode, KeepOr::Set(FlashMode::Dout));
        assert_eq!(args.params.flash_freq, KeepOr::Keep);
        assert_eq!(args.addr_file, ["0x0", "sonoff.bin"]);
    }

    #[test]
    fn seed_write_flash_with_baud_and_detect() {
        let cli = parse_ok(
            "--port /dev/ttyUSB0 --baud 460800 write_flash --flash_size=detect 0 esp8266-20170823-v1.9.2.bin",
        );
        assert_eq!(cli.connect.baud, Some(BaudArg::Rate(460_800)));
        let Command::WriteFlash(args) = cli.command else {
            panic!("not write_flash")
        };
        assert_eq!(args.params.flash_size, FlashSizeArg::Detect);
        assert_eq!(args.addr_file, ["0", "esp8266-20170823-v1.9.2.bin"]);
    }

    #[test]
    fn seed_write_flash_verify() {
        let cli = parse_ok("write_flash --verify --flash_size=detect -fm dout 0x0 fw.bin");
        let Command::WriteFlash(args) = cli.command else {
            panic!("not write_flash")
        };
        assert!(args.verify);
        assert_eq!(args.params.flash_size, FlashSizeArg::Detect);
        assert_eq!(args.params.flash_mode, KeepOr::Set(FlashMode::Dout));
    }

    #[test]
    fn seed_read_flash_erase_flash_flash_id() {
        let Command::ReadFlash(args) = parse_ok("read_flash 0x00000 0x100000 image1M.bin").command
        else {
            panic!("not read_flash")
        };
        assert_eq!((args.address, args.size), (0, ReadSize::Bytes(0x10_0000)));
        assert_eq!(args.file, PathBuf::from("image1M.bin"));
        let cli = parse_ok("--port /dev/ttyUSB0 erase_flash");
        assert!(matches!(cli.command, Command::EraseFlash));
        assert!(matches!(parse_ok("flash_id").command, Command::FlashId));
    }

    #[test]
    fn hyphen_and_underscore_forms_of_every_command() {
        for (underscored, rest) in [
            ("chip_id", ""),
            ("read_mac", ""),
            ("flash_id", ""),
            ("read_flash", "0 ALL out.bin"),
            ("write_flash", "0 a.bin"),
            ("erase_flash", ""),
            ("erase_region", "0x1000 0x1000"),
            ("verify_flash", "0 a.bin"),
            ("read_flash_status", "--bytes 3"),
            ("write_flash_status", "--non-volatile 0"),
            ("read_mem", "0x3ff00050"),
            ("write_mem", "0x3ff00050 1 0xff"),
            ("dump_mem", "0x40000000 64 rom.bin"),
            ("image_info", "fw.bin"),
            ("merge_bin", "-o out.bin 0 a.bin"),
        ] {
            parse_ok(&format!("{underscored} {rest}"));
            parse_ok(&format!("{} {rest}", underscored.replace('_', "-")));
        }
        for plain in ["run", "version", "backup b.bin", "restore b.bin", "monitor"] {
            parse_ok(plain);
        }
    }

    #[test]
    fn global_options_before_and_after_the_command() {
        let before =
            parse_ok("--port emu:1MB --no-stub --before no_reset --after no_reset flash_id");
        let after = parse_ok("flash_id --port emu:1MB --no_stub --before no-reset -a no_reset");
        for cli in [before, after] {
            assert_eq!(cli.connect.ports, ["emu:1MB"]);
            assert!(cli.connect.no_stub);
            assert_eq!(cli.connect.before, BeforeArg::NoReset);
            assert_eq!(cli.connect.after, AfterArg::NoReset);
        }
    }

    #[test]
    fn numbers_in_hex_and_decimal() {
        assert_eq!(parse_u32("0"), Ok(0));
        assert_eq!(parse_u32("0x0"), Ok(0));
        assert_eq!(parse_u32("0x00000"), Ok(0));
        assert_eq!(parse_u32("0X1000"), Ok(0x1000));
        assert_eq!(parse_u32("1048576"), Ok(0x10_0000));
        assert_eq!(parse_u32("0xFFFFFFFF"), Ok(u32::MAX));
        assert!(parse_u32("0x1_0000_0000").is_err());
        assert!(parse_u32("0x100000000").unwrap_err().contains("larger"));
        assert!(parse_u32("0xZZ").unwrap_err().contains("\"0xZZ\""));
        assert!(parse_u32("").is_err());
        assert!(parse_u32("-1").is_err());
    }

    #[test]
    fn sizes_with_units_and_all() {
        assert_eq!(parse_size("1MB"), Ok(0x10_0000));
        assert_eq!(parse_size("512KB"), Ok(0x8_0000));
        assert_eq!(parse_size("4m"), Ok(0x40_0000));
        assert_eq!(parse_read_size("ALL"), Ok(ReadSize::All));
        assert_eq!(parse_read_size("all"), Ok(ReadSize::All));
        assert_eq!(parse_read_size("0x100000"), Ok(ReadSize::Bytes(0x10_0000)));
        assert!(parse_size("1GBB").is_err());
    }

    #[test]
    fn flash_parameter_choices() {
        assert_eq!(parse_flash_size_arg("keep"), Ok(FlashSizeArg::Keep));
        assert_eq!(parse_flash_size_arg("DETECT"), Ok(FlashSizeArg::Detect));
        assert_eq!(
            parse_flash_size_arg("4MB-c1"),
            Ok(FlashSizeArg::Size(FlashSize::Size4MC1))
        );
        assert!(parse_flash_size_arg("3MB")
            .unwrap_err()
            .contains("keep or detect"));
        assert_eq!(parse_flash_mode_arg("qio"), Ok(KeepOr::Set(FlashMode::Qio)));
        assert_eq!(parse_flash_mode_arg("keep"), Ok(KeepOr::Keep));
        assert_eq!(
            parse_flash_freq_arg("80m"),
            Ok(KeepOr::Set(FlashFreq::Freq80M))
        );
        assert!(parse_flash_freq_arg("81m").is_err());
    }

    #[test]
    fn write_flash_options() {
        let Command::WriteFlash(args) =
            parse_ok("write_flash -e -z -ff 80m 0x0 boot.bin 0x1000 app.bin").command
        else {
            panic!("not write_flash")
        };
        assert!(args.erase_all);
        assert_eq!(args.compression(), Some(true));
        assert_eq!(args.params.flash_freq, KeepOr::Set(FlashFreq::Freq80M));
        assert_eq!(args.addr_file.len(), 4);
        assert!(parse("write_flash -z -u 0 a.bin").is_err());
        assert!(parse("write_flash --verify --no-verify 0 a.bin").is_err());
        assert!(parse("write_flash 0").is_err());
    }

    #[test]
    fn monitor_options_alone_and_after_a_command() {
        let Command::Monitor(args) =
            parse_ok("--port emu:1MB monitor --monitor-baud 74880 --elf fw.elf --timeout 3")
                .command
        else {
            panic!("not monitor")
        };
        assert_eq!(args.options.monitor_baud, 74_880);
        assert_eq!(args.options.elf, Some(PathBuf::from("fw.elf")));
        assert_eq!(
            args.options.timeout,
            Some(std::time::Duration::from_secs(3))
        );
        let Command::Monitor(default) = parse_ok("monitor").command else {
            panic!("not monitor")
        };
        assert_eq!(
            (default.options.monitor_baud, default.options.timeout),
            (115_200, None)
        );
        let Command::WriteFlash(write) =
            parse_ok("write_flash --monitor --timeout 500ms 0x0 fw.bin").command
        else {
            panic!("not write_flash")
        };
        assert!(write.monitor.monitor);
        assert_eq!(write.addr_file, ["0x0", "fw.bin"]);
        assert_eq!(
            write.monitor.options.timeout,
            Some(std::time::Duration::from_millis(500))
        );
        let Command::Restore(restore) = parse_ok("restore --monitor b.bin").command else {
            panic!("not restore")
        };
        assert!(restore.monitor.monitor);
        let Command::Run(run) = parse_ok("run --monitor --monitor-baud 9600").command else {
            panic!("not run")
        };
        assert_eq!(
            (run.monitor.monitor, run.monitor.options.monitor_baud),
            (true, 9600)
        );
    }

    #[test]
    fn absurd_timeouts_are_refused_in_one_line() {
        assert_eq!(
            parse_timeout("2.5"),
            Ok(std::time::Duration::from_millis(2500))
        );
        assert_eq!(parse_timeout("2m"), Ok(std::time::Duration::from_secs(120)));
        for (text, expected) in [
            ("0", "no time at all"),
            ("0s", "no time at all"),
            ("-1", "negative"),
            ("100000000000000000000", "more than a year"),
            ("1e20", "more than a year"),
            ("400days", "more than a year"),
            ("inf", "more than a year"),
            ("NaN", "more than a year"),
            ("soon", "not a duration"),
        ] {
            let error = parse_timeout(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        for line in [
            "monitor --timeout -1",
            "monitor --timeout 0",
            "monitor --monitor-baud fast",
        ] {
            assert!(parse(line).is_err(), "{line} parsed");
        }
    }

    #[test]
    fn bad_input_is_a_clap_error() {
        for line in [
            "frobnicate",
            "flash_id --frobnicate",
            "read_flash 0xZZ 16 out.bin",
            "read_flash 0 lots out.bin",
            "write_flash -fs 3MB 0 a.bin",
            "write_flash -fm fast 0 a.bin",
            "read_flash_status --bytes 4",
            "--before sometimes flash_id",
        ] {
            assert!(parse(line).is_err(), "{line} parsed");
        }
    }
}
