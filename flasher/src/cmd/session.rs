//! A session with a chip: finding the port (serial, `emu:`, or a scan),
//! loading the stub, connecting, running a command and leaving as `--after` says.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use esp_emulator::device::{BootMode, Chip, CodeExecution, Device, DeviceConfig, DEFAULT_MAC};
use esp_emulator::faults::FaultPlan;
use esp_emulator::flash::{FlashOptions, SpiFlash, SUPPORTED_SIZES};
use esp_emulator::link::{Link, LinkConfig};
use esp_emulator::sample_firmware::sonoff_like_flash;
use esp_emulator::serial_port::{PortTime, VirtualPort};
use esp_flasher::connection::ResetObserved;
use esp_flasher::files::OutputLock;
use esp_flasher::{
    AfterReset, BeforeReset, ConnectOptions, EmulatorTransport, Error, Flasher, LineControl,
    SerialTransport, StubImage, Transport,
};
use esp_protocol::flash_params::size_name;
use esp_protocol::packet::ROM_BAUD;
use serialport::{SerialPortInfo, SerialPortType};

use super::explain::{reset_diagnosis, NO_ANSWER_CAUSES};
use super::files::io_reason;
use super::CmdError;
use crate::cli::{AfterArg, BaudArg, BeforeArg, ConnectArgs, EmuSpec, EmuStub, PortArg};
use crate::output::{hex_dump, Output, Reporter};

/// The virtual chip's flash when neither a size nor a file says otherwise.
const DEFAULT_EMU_SIZE: u32 = 4 * 1024 * 1024;
/// USB vendor:product IDs of the serial adapters ESP8266 boards carry, most common first.
const KNOWN_ADAPTERS: [(u16, u16, &str); 6] = [
    (0x10C4, 0xEA60, "CP210x"),
    (0x1A86, 0x7523, "CH340"),
    (0x1A86, 0x55D4, "CH9102"),
    (0x0403, 0x6001, "FTDI FT232R"),
    (0x0403, 0x6015, "FTDI FT231X"),
    (0x067B, 0x2303, "PL2303"),
];

/// The serial line under a session: a port or the virtual chip, traced with `--trace`.
pub struct Line {
    kind: LineKind,
    trace: Option<Rc<Output>>,
    /// The `emu:` spec of the virtual chip on this line; `None` for a serial port.
    virtual_port: Option<String>,
    /// The port as the user named it (or as the search found it).
    port: String,
}

enum LineKind {
    Serial(SerialTransport),
    Emulator(Box<EmulatorTransport>),
}

impl Line {
    /// The `emu:` spec when this line reaches the virtual chip, not a board.
    pub fn virtual_port(&self) -> Option<&str> {
        self.virtual_port.as_deref()
    }

    /// The port this line is on, as the user named it (or as the search found it).
    pub fn port(&self) -> &str {
        &self.port
    }

    fn inner(&mut self) -> &mut dyn Transport {
        match &mut self.kind {
            LineKind::Serial(serial) => serial,
            LineKind::Emulator(emulator) => emulator.as_mut(),
        }
    }

    fn inner_ref(&self) -> &dyn Transport {
        match &self.kind {
            LineKind::Serial(serial) => serial,
            LineKind::Emulator(emulator) => emulator.as_ref(),
        }
    }
}

impl Transport for Line {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(out) = &self.trace {
            out.line(format!(
                "TRACE write {} bytes: {}",
                bytes.len(),
                hex_dump(bytes)
            ));
        }
        self.inner().write_all(bytes)
    }
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let count = self.inner().read(buf, timeout)?;
        if let (Some(out), true) = (&self.trace, count > 0) {
            out.line(format!(
                "TRACE read {count} bytes: {}",
                hex_dump(&buf[..count])
            ));
        }
        Ok(count)
    }
    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.inner().set_baud(baud)
    }
    fn baud(&self) -> u32 {
        self.inner_ref().baud()
    }
    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.inner().set_dtr(asserted)
    }
    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.inner().set_rts(asserted)
    }
    fn discard_input(&mut self) -> io::Result<()> {
        self.inner().discard_input()
    }
    fn sleep(&mut self, duration: Duration) {
        self.inner().sleep(duration)
    }
    fn clock(&self) -> Duration {
        self.inner_ref().clock()
    }
}

/// A connected chip.
pub struct Session {
    flasher: Flasher<Line>,
    out: Rc<Output>,
    /// The file the virtual flash is saved to at the end.
    emu_file: Option<EmuFile>,
    /// When the session started, in real time.
    started: Instant,
}

/// Times an operation on the line's clock: virtual time on the emulator, real time on a port.
pub struct Stopwatch(Duration);

impl Stopwatch {
    /// Starts now.
    pub fn start<T: Transport>(flasher: &Flasher<T>) -> Stopwatch {
        Stopwatch(flasher.transport().clock())
    }

    /// Seconds since the start.
    pub fn seconds<T: Transport>(&self, flasher: &Flasher<T>) -> f64 {
        flasher
            .transport()
            .clock()
            .saturating_sub(self.0)
            .as_secs_f64()
    }
}

/// Whether a search for a board that finds no serial port may fall back to the built-in
/// virtual chip: only for the README's first run, `backup`, which names the virtual chip and
/// says so in its record. Anything else reaches the virtual chip only through an explicit
/// `--port emu:...`, so that neither a script's `esp-flasher write_flash ... && echo flashed`
/// nor a `read_flash` "backup" of sample data passes without a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The first-run demonstration: with no port found, the virtual chip answers, and the
    /// output says so.
    Demonstration,
    /// A board only (the command's name, and whether it changes the flash, for the message).
    Board {
        command: &'static str,
        changes: bool,
    },
}

/// Connects as `connect` says, runs `body`, then resets as `--after` says; for commands
/// that only read (`command` names it). Without `--port`, only a board will do.
pub fn with_chip<F>(
    command: &'static str,
    connect: &ConnectArgs,
    out: &Rc<Output>,
    body: F,
) -> Result<(), CmdError>
where
    F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
{
    let access = Access::Board {
        command,
        changes: false,
    };
    Session::open(connect, out, access)?.run(Some(connect.after), body)
}

/// [`with_chip`] for a command that changes the flash or the chip.
pub fn with_chip_to_change<F>(
    command: &'static str,
    connect: &ConnectArgs,
    out: &Rc<Output>,
    body: F,
) -> Result<(), CmdError>
where
    F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
{
    let access = Access::Board {
        command,
        changes: true,
    };
    Session::open(connect, out, access)?.run(Some(connect.after), body)
}

/// [`with_chip`] for `backup`, the README's first run: with no serial port at all, the
/// built-in virtual chip answers, named in the output and in the record.
pub fn with_chip_or_demonstration<F>(
    connect: &ConnectArgs,
    out: &Rc<Output>,
    body: F,
) -> Result<(), CmdError>
where
    F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
{
    Session::open(connect, out, Access::Demonstration)?.run(Some(connect.after), body)
}

impl Session {
    /// Checks the port spec and the stub, then connects; nothing is sent before both are good.
    pub fn open(
        connect: &ConnectArgs,
        out: &Rc<Output>,
        access: Access,
    ) -> Result<Session, CmdError> {
        let port = PortArg::parse(connect.port.as_deref()).map_err(CmdError::Usage)?;
        if let PortArg::Serial(name) = &port {
            check_serial_name(name)?;
        }
        let options = connect_options(connect, &port, out)?;
        match port {
            PortArg::Serial(name) => {
                let line = open_serial(&name, connect.trace.then(|| out.clone()))?;
                connect_line(line, &name, &options, out, None)
                    .map_err(|error| no_answer(error, std::slice::from_ref(&name)))
            }
            PortArg::Emulator(spec) => {
                let given = connect.port.clone().unwrap_or_else(|| "emu".into());
                open_emulator(&spec, given, connect, &options, out)
            }
            PortArg::Scan => scan(connect, &options, out, access),
        }
    }

    /// Runs `body` as [`Session::run`] does and hands the line back for what follows (the
    /// monitor), the virtual flash saved; `after` is applied first.
    pub fn run_keeping_line<F>(mut self, after: AfterArg, body: F) -> Result<Line, CmdError>
    where
        F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
    {
        let result = body(&mut self.flasher, &self.out);
        let reset = match after {
            AfterArg::HardReset => AfterReset::HardReset,
            AfterArg::SoftReset => AfterReset::SoftReset,
            AfterArg::NoReset => AfterReset::NoReset,
        };
        let line = self
            .flasher
            .finish(if result.is_ok() {
                reset
            } else {
                AfterReset::NoReset
            })
            .map_err(CmdError::from)?;
        if let (LineKind::Emulator(emulator), Some(file)) = (&line.kind, &self.emu_file) {
            save_flash(file, &emulator.flash_contents())?;
        }
        result.map(|()| line)
    }

    /// Runs `body`; on success resets as `after` says (`None`: leave the chip alone).
    /// The virtual flash is saved either way, as a real flash keeps what was written.
    pub fn run<F>(mut self, after: Option<AfterArg>, body: F) -> Result<(), CmdError>
    where
        F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
    {
        let result = body(&mut self.flasher, &self.out);
        if result.is_ok() && matches!(self.flasher.transport().kind, LineKind::Emulator(_)) {
            self.out.line(format!(
                "(Times above are the virtual serial line's: what a board on this link would take. \
                 The virtual chip answered in {:.1} s of real time.)",
                self.started.elapsed().as_secs_f64()
            ));
        }
        // Without `after` the command has left the loader itself (`run`): nothing to say.
        if let (Ok(()), Some(after)) = (&result, after) {
            self.out.line(match after {
                AfterArg::HardReset => "Hard resetting via RTS pin...",
                AfterArg::SoftReset => "Soft resetting...",
                AfterArg::NoReset => "Staying in bootloader.",
            });
        }
        let after = match after.filter(|_| result.is_ok()) {
            Some(AfterArg::HardReset) => AfterReset::HardReset,
            Some(AfterArg::SoftReset) => AfterReset::SoftReset,
            Some(AfterArg::NoReset) | None => AfterReset::NoReset,
        };
        let finished = self.flasher.finish(after);
        let saved = match (finished, &self.emu_file) {
            (
                Ok(Line {
                    kind: LineKind::Emulator(emulator),
                    ..
                }),
                Some(file),
            ) => save_flash(file, &emulator.flash_contents()),
            (Ok(_), _) => Ok(()),
            (Err(error), _) => Err(CmdError::from(error)),
        };
        result.and(saved)
    }
}

/// The stub, baud and reset choices, checked before anything is opened.
fn connect_options(
    connect: &ConnectArgs,
    port: &PortArg,
    out: &Output,
) -> Result<ConnectOptions, CmdError> {
    let stub = match StubImage::locate(connect.stub_file.as_deref()) {
        _ if connect.no_stub => None,
        Some(path) => Some(load_stub(&path)?),
        None => Some(default_stub(port)),
    };
    // flashlab's own stub comes in two stages above 115200; a stub file, or the virtual
    // chip's stub model, goes through the ROM as it is.
    let first_stage = stub
        .as_ref()
        .filter(|&stub| *stub == StubImage::flashlab())
        .map(|_| StubImage::flashlab_first_stage());
    let baud = connect.baud.unwrap_or(BaudArg::Rate(ROM_BAUD));
    if stub.is_none() && matches!(connect.baud, Some(BaudArg::Rate(rate)) if rate != ROM_BAUD) {
        out.warn(format!(
            "the ROM loader cannot change the baud rate; staying at {ROM_BAUD} (--baud needs a stub)"
        ));
    }
    Ok(ConnectOptions {
        before: match connect.before {
            BeforeArg::DefaultReset => BeforeReset::DefaultReset,
            BeforeArg::NoReset => BeforeReset::NoReset,
            BeforeArg::NoResetNoSync => BeforeReset::NoResetNoSync,
        },
        baud: match baud {
            BaudArg::Rate(rate) if stub.is_some() && rate != ROM_BAUD => Some(rate),
            _ => None,
        },
        auto_baud: stub.is_some() && baud == BaudArg::Auto,
        stub,
        first_stage,
        ..ConnectOptions::default()
    })
}

/// The stub when none is named: flashlab's own, on every port, except on a virtual chip
/// told to answer with its stub model (`emu:...,stub=model`), which executes nothing.
fn default_stub(port: &PortArg) -> StubImage {
    match port {
        PortArg::Emulator(spec) if spec.stub == Some(EmuStub::Model) => {
            StubImage::virtual_device_model()
        }
        _ => StubImage::flashlab(),
    }
}

/// Loads a stub file; a missing or malformed one is bad input.
fn load_stub(path: &Path) -> Result<StubImage, CmdError> {
    StubImage::load(path).map_err(|error| match error {
        Error::File { path, source } => CmdError::Usage(format!(
            "stub file {}: {}",
            path.display(),
            io_reason(&source)
        )),
        other => CmdError::Usage(other.to_string()),
    })
}

/// Refuses a `--port` that names a regular file or a folder: opening it would not reach a chip.
pub(super) fn check_serial_name(name: &str) -> Result<(), CmdError> {
    let kind = match std::fs::metadata(name) {
        Ok(metadata) if metadata.is_file() => "a regular file",
        Ok(metadata) if metadata.is_dir() => "a folder",
        _ => return Ok(()),
    };
    Err(CmdError::Usage(format!(
        "--port {name} is {kind}, not a serial port: give the board's port (e.g. /dev/ttyUSB0 or COM3) or emu:SIZE"
    )))
}

/// Opens a serial port at the ROM's rate, explaining the usual failures.
fn open_serial(name: &str, trace: Option<Rc<Output>>) -> Result<Line, CmdError> {
    // serialport locks the port: another holder shows as "no device" on Unix (the lock is
    // refused) and as "access denied" on Windows.
    let in_use = || {
        CmdError::failed(
            format!("serial port {name} is in use by another program"),
            "Close the other program using it (a serial monitor, esptool, the Arduino IDE, another esp-flasher), then run the command again.",
        )
    };
    let serial = SerialTransport::open(name, ROM_BAUD).map_err(|error| match error.kind() {
        io::ErrorKind::PermissionDenied if cfg!(windows) => in_use(),
        io::ErrorKind::PermissionDenied => CmdError::failed(
            format!("permission denied opening {name}"),
            "Add yourself to the dialout group: sudo usermod -aG dialout $USER, then log out and in again.",
        ),
        io::ErrorKind::NotFound if cfg!(unix) && Path::new(name).exists() => in_use(),
        io::ErrorKind::NotFound => CmdError::failed(
            format!("serial port {name} does not exist"),
            format!("Ports found: {}.", port_list(&available_ports())),
        ),
        _ => CmdError::failed(
            format!("cannot open {name}: {}", io_reason(&error)),
            "Is another program (a serial monitor) using the port?",
        ),
    })?;
    Ok(Line {
        kind: LineKind::Serial(serial),
        trace,
        virtual_port: None,
        port: name.to_string(),
    })
}

/// Connects over `line`, reporting as the session on `label`.
fn connect_line(
    line: Line,
    label: &str,
    options: &ConnectOptions,
    out: &Rc<Output>,
    emu_file: Option<EmuFile>,
) -> Result<Session, Error> {
    let reporter = Reporter::new(out.clone(), label);
    let flasher = Flasher::connect(line, options, Box::new(reporter))?;
    Ok(Session {
        flasher,
        out: out.clone(),
        emu_file,
        started: Instant::now(),
    })
}

/// Turns a failed connection into the error that lists the causes and the ports.
fn no_answer(error: Error, tried: &[String]) -> CmdError {
    match error {
        Error::NoSync { attempts, reset } => {
            let tried = tried.join(", ");
            match reset_diagnosis(reset) {
                Some((finding, remedy)) => CmdError::failed(
                    format!(
                        "no answer from the chip on {tried} after {attempts} attempts: {finding}"
                    ),
                    remedy,
                ),
                None => CmdError::failed(
                    format!("no answer from the chip on {tried} after {attempts} attempts"),
                    format!(
                        "{NO_ANSWER_CAUSES} (ports found: {}).",
                        port_list(&available_ports())
                    ),
                ),
            }
        }
        other => CmdError::from(other),
    }
}

/// Builds the virtual chip `spec` describes (`port` as the user would give it) and connects to it.
fn open_emulator(
    spec: &EmuSpec,
    port: String,
    connect: &ConnectArgs,
    options: &ConnectOptions,
    out: &Rc<Output>,
) -> Result<Session, CmdError> {
    let model = spec.stub == Some(EmuStub::Model)
        || options.stub.as_ref() == Some(&StubImage::virtual_device_model());
    let (line, label, emu_file) = emulator_line(spec, port, connect, out, model)?;
    if model {
        out.line(
            "Stub: the virtual ESP8266's stub model (stub=model): uploaded code is not executed.",
        );
    } else if options.stub.is_some() {
        out.line("Stub: executed by the virtual ESP8266's CPU.");
    }
    connect_line(line, &label, options, out, emu_file).map_err(|error| no_answer(error, &[label]))
}

/// The line to the virtual chip `spec` describes (`port` as the user gave it), its label
/// and the file its flash is saved to; `model` answers uploads with the stub model.
fn emulator_line(
    spec: &EmuSpec,
    port: String,
    connect: &ConnectArgs,
    out: &Rc<Output>,
    model: bool,
) -> Result<(Line, String, Option<EmuFile>), CmdError> {
    let plan =
        FaultPlan::parse(&spec.faults).map_err(|error| CmdError::Usage(error.to_string()))?;
    // Locked before it is read, so no other run changes it between the read and the save.
    let held = spec.file.as_deref().map(hold_flash_file).transpose()?;
    let (contents, origin) = emu_contents(spec)?;
    let label = format!("emu:{}", size_name(contents.len() as u64));
    let mut flash_options = FlashOptions::default();
    plan.flash.apply_to(&mut flash_options);
    // A fake-size chip keeps only its real memory: the file's bytes past it are saved back
    // as they were, so the file keeps the size the chip claims.
    let emu_file = spec.file.clone().zip(held).map(|(path, held)| EmuFile {
        tail: flash_options
            .physical_size
            .and_then(|real| contents.get(real..))
            .unwrap_or_default()
            .to_vec(),
        path,
        _held: held,
    });
    let flash = SpiFlash::new(contents, flash_options)
        .map_err(|error| CmdError::Usage(format!("--port {port}: {error}")))?;
    let chip = if spec.esp8285 { "ESP8285" } else { "ESP8266" };
    out.line(format!("Virtual {chip} ({label}): {origin}"));
    let config = DeviceConfig {
        execution: if model {
            CodeExecution::StubModel
        } else {
            CodeExecution::Run
        },
        chip: if spec.esp8285 {
            Chip::Esp8285
        } else {
            Chip::Esp8266Ex
        },
        faults: plan.device,
        mac: spec.mac.unwrap_or(DEFAULT_MAC),
        reset_wiring: spec.wiring,
        boot: if spec.gpio0_high {
            BootMode::Flash
        } else {
            BootMode::Download
        },
        ..DeviceConfig::default()
    };
    let link = Link::new(
        Device::new(config, flash),
        LinkConfig {
            faults: plan.link,
            seed: spec.seed,
            model_baud: true,
        },
    );
    let virtual_chip = VirtualPort::new(link, PortTime::Virtual);
    let line = Line {
        kind: LineKind::Emulator(Box::new(EmulatorTransport::on_port(virtual_chip))),
        trace: connect.trace.then(|| out.clone()),
        virtual_port: Some(port.clone()),
        port,
    };
    Ok((line, label, emu_file))
}

/// The line `--port` names, opened without a word to the chip: for the monitor, which
/// reads what the firmware prints. Without `--port`, the first USB serial port found.
pub fn open_line(connect: &ConnectArgs, out: &Rc<Output>) -> Result<Line, CmdError> {
    let port = PortArg::parse(connect.port.as_deref()).map_err(CmdError::Usage)?;
    let trace = || connect.trace.then(|| out.clone());
    match port {
        PortArg::Serial(name) => {
            check_serial_name(&name)?;
            open_serial(&name, trace())
        }
        PortArg::Emulator(spec) => {
            let given = connect.port.clone().unwrap_or_else(|| "emu".into());
            let model = spec.stub == Some(EmuStub::Model);
            emulator_line(&spec, given, connect, out, model).map(|(line, _, _)| line)
        }
        PortArg::Scan => {
            let ports = available_ports();
            let Some(first) = ports.first() else {
                return Err(no_board(
                    "monitor",
                    false,
                    &format!("emu:{}", size_name(DEFAULT_EMU_SIZE.into())),
                ));
            };
            out.line(format!(
                "Found {} serial port(s): {}; monitoring {}",
                ports.len(),
                port_list(&ports),
                first.port_name
            ));
            open_serial(&first.port_name, trace())
        }
    }
}

impl Line {
    /// Readies the line for the monitor: a virtual chip's CPU then keeps to the line's clock
    /// (realtime), so that what the firmware prints after a delay comes that much later, as
    /// on a board; a flasher session before it ran unthrottled.
    pub fn for_monitor(&mut self) {
        if let LineKind::Emulator(emulator) = &mut self.kind {
            emulator
                .port()
                .with_link(|link| link.device_mut().set_realtime(true));
        }
    }

    /// The port's name as the user gave it (the `emu:` spec for the virtual chip).
    pub fn name(&self) -> String {
        match (&self.kind, &self.virtual_port) {
            (_, Some(spec)) => spec.clone(),
            (LineKind::Serial(serial), None) => serial.name(),
            (LineKind::Emulator(_), None) => "emu".into(),
        }
    }
}

/// The virtual flash's first contents and a sentence saying where they came from.
fn emu_contents(spec: &EmuSpec) -> Result<(Vec<u8>, String), CmdError> {
    let Some(path) = &spec.file else {
        let size = spec.size.unwrap_or(DEFAULT_EMU_SIZE);
        return Ok((
            sonoff_like_flash(size as usize, spec.seed),
            "a Sonoff-like sample flash (firmware at 0x0, SDK settings at the end), discarded at exit; \
             add ,file=PATH to keep it between runs."
                .into(),
        ));
    };
    match std::fs::read(path) {
        Ok(data) => {
            // The file is the flash, written back at exit: one of another length would be
            // silently rewritten as a whole flash image.
            if !SUPPORTED_SIZES.contains(&data.len()) {
                return Err(CmdError::Usage(format!(
                    "{} is {} bytes, not a flash size (256KB to 16MB): file= keeps a whole flash \
                     image and rewrites it at exit; give a new name, or a copy padded to a flash size",
                    path.display(),
                    data.len()
                )));
            }
            if let Some(size) = spec.size.filter(|&size| size as usize != data.len()) {
                return Err(CmdError::Usage(format!(
                    "{} is {} but the port asks for {}: drop the size from emu:, or use emu:{}",
                    path.display(),
                    size_name(data.len() as u64),
                    size_name(u64::from(size)),
                    size_name(data.len() as u64)
                )));
            }
            Ok((
                data,
                format!("flash loaded from {}, saved back at exit.", path.display()),
            ))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let size = spec.size.unwrap_or(DEFAULT_EMU_SIZE) as usize;
            Ok((
                sonoff_like_flash(size, spec.seed),
                format!(
                    "{} does not exist yet: the flash starts with a sample firmware and is saved there at exit.",
                    path.display()
                ),
            ))
        }
        Err(error) => Err(CmdError::Usage(format!(
            "{}: {}",
            path.display(),
            io_reason(&error)
        ))),
    }
}

/// The file behind an `emu:...,file=` flash.
struct EmuFile {
    path: PathBuf,
    /// The file's bytes past the memory a fake-size chip really has (empty for a genuine one).
    tail: Vec<u8>,
    /// Its locks, held until the session ends.
    _held: HeldFlashFile,
}

/// The locks on an `emu:...,file=` flash file: the [`OutputLock`] other esp-flasher runs
/// take, and the file's own lock, which an `esp-emulator` serving the file holds.
struct HeldFlashFile {
    _output: OutputLock,
    _file: Option<std::fs::File>,
}

/// Locks an `emu:...,file=` flash file for this run, or says who holds it.
fn hold_flash_file(path: &Path) -> Result<HeldFlashFile, CmdError> {
    let output = OutputLock::acquire(path)?;
    // A new file has no lock to take: nothing else can be using it.
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(_) => {
            return Ok(HeldFlashFile {
                _output: output,
                _file: None,
            })
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(HeldFlashFile {
            _output: output,
            _file: Some(file),
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(CmdError::failed(
            format!(
                "flash file {} is in use by another program (an esp-emulator serving it?)",
                path.display()
            ),
            "Stop that program first, or give esp-flasher a copy of the file.".to_string(),
        )),
        Err(std::fs::TryLockError::Error(error)) => Err(CmdError::failed(
            format!(
                "cannot lock flash file {}: {}",
                path.display(),
                io_reason(&error)
            ),
            "Use a file on a local disk.".to_string(),
        )),
    }
}

/// Writes the virtual flash (its real memory, then the file's bytes past it) back to its file.
fn save_flash(file: &EmuFile, memory: &[u8]) -> Result<(), CmdError> {
    let data = [memory, &file.tail].concat();
    esp_flasher::backup::write_file_atomically(&file.path, &data).map_err(CmdError::from)
}

/// No `--port`: try each USB serial port, known adapters first. None at all means the
/// virtual chip for a command that only reads, and a failure for one that changes the chip.
fn scan(
    connect: &ConnectArgs,
    options: &ConnectOptions,
    out: &Rc<Output>,
    access: Access,
) -> Result<Session, CmdError> {
    let ports = available_ports();
    let default_emu = format!("emu:{}", size_name(DEFAULT_EMU_SIZE.into()));
    match (ports.is_empty(), access) {
        (true, Access::Demonstration) => {
            out.line(format!(
                "No serial port found: using the built-in virtual ESP8266 ({default_emu}). \
                 Connect a board or pass --port to use hardware."
            ));
            return open_emulator(&EmuSpec::default(), default_emu, connect, options, out);
        }
        (true, Access::Board { command, changes }) => {
            return Err(no_board(command, changes, &default_emu))
        }
        (false, _) => {}
    }
    out.line(format!(
        "Found {} serial port(s): {}",
        ports.len(),
        port_list(&ports)
    ));
    let mut tried = Vec::new();
    for port in &ports {
        out.line(format!("Serial port {}:", port.port_name));
        tried.push(port.port_name.clone());
        let line = match open_serial(&port.port_name, connect.trace.then(|| out.clone())) {
            Ok(line) => line,
            Err(CmdError::Failed { message, .. }) => {
                out.warn(message);
                continue;
            }
            Err(usage) => return Err(usage),
        };
        match connect_line(line, &port.port_name, options, out, None) {
            Ok(session) => return Ok(session),
            Err(Error::NoSync { .. }) => out.warn(format!("{} did not answer", port.port_name)),
            Err(other) => return Err(CmdError::from(other)),
        }
    }
    Err(no_answer(
        Error::NoSync {
            attempts: options.attempts,
            reset: ResetObserved::NotReset,
        },
        &tried,
    ))
}

/// The failure of a command that changes the chip when no serial port was found: it names
/// the ports found (none) and the explicit way to the virtual chip.
fn no_board(command: &str, changes: bool, default_emu: &str) -> CmdError {
    let why = if changes {
        "changes the flash"
    } else {
        "reads a board (the virtual chip holds sample data)"
    };
    CmdError::failed(
        format!(
            "no board found (serial ports found: none): {command} {why}, so it does not fall back to \
             the built-in virtual ESP8266"
        ),
        format!(
            "Connect the board's USB serial adapter, or give its port with --port (e.g. /dev/ttyUSB0 or COM3). \
             To run it on the virtual chip, say so: --port {default_emu} (add ,file=PATH to keep its flash)."
        ),
    )
}

/// The USB serial ports present, known ESP adapters first.
pub(super) fn available_ports() -> Vec<SerialPortInfo> {
    // serialport panics when Linux has no /sys/class/tty (some containers).
    let listed = if cfg!(target_os = "linux") && !Path::new("/sys/class/tty").is_dir() {
        Vec::new()
    } else {
        serialport::available_ports().unwrap_or_default()
    };
    let mut ports: Vec<SerialPortInfo> = listed
        .into_iter()
        .filter(|port| matches!(port.port_type, SerialPortType::UsbPort(_)))
        .collect();
    for pattern in [
        "/dev/ttyUSB",
        "/dev/ttyACM",
        "/dev/cu.usbserial",
        "/dev/cu.SLAB",
        "/dev/cu.wchusbserial",
    ] {
        for name in device_files(pattern) {
            if !ports.iter().any(|port| port.port_name == name) {
                ports.push(SerialPortInfo {
                    port_name: name,
                    port_type: SerialPortType::Unknown,
                });
            }
        }
    }
    ports.sort_by_key(|port| (adapter_rank(port), port.port_name.clone()));
    ports
}

/// Files in /dev whose path starts with `prefix`.
fn device_files(prefix: &str) -> Vec<String> {
    let path = Path::new(prefix);
    let (Some(dir), Some(stem)) = (
        path.parent(),
        path.file_name().and_then(|name| name.to_str()),
    ) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(stem))
        .map(|name| dir.join(name).to_string_lossy().into_owned())
        .collect()
}

/// Sort key: known adapters by their rank, then other USB ports, then the rest.
fn adapter_rank(port: &SerialPortInfo) -> usize {
    match &port.port_type {
        SerialPortType::UsbPort(usb) => KNOWN_ADAPTERS
            .iter()
            .position(|(vid, pid, _)| (*vid, *pid) == (usb.vid, usb.pid))
            .unwrap_or(KNOWN_ADAPTERS.len()),
        _ => KNOWN_ADAPTERS.len() + 1,
    }
}

/// The name of the ESP8266 boards' adapter with these USB IDs, if it is one of them.
pub(super) fn known_adapter(vid: u16, pid: u16) -> Option<&'static str> {
    KNOWN_ADAPTERS
        .iter()
        .find(|known| (known.0, known.1) == (vid, pid))
        .map(|known| known.2)
}

/// "/dev/ttyUSB0 (CP210x), /dev/ttyUSB1", or "none".
pub(super) fn port_list(ports: &[SerialPortInfo]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(|port| match &port.port_type {
            SerialPortType::UsbPort(usb) => {
                let name = known_adapter(usb.vid, usb.pid).map_or_else(
                    || format!("{:04x}:{:04x}", usb.vid, usb.pid),
                    str::to_string,
                );
                format!("{} ({name})", port.port_name)
            }
            _ => port.port_name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::UsbPortInfo;

    fn usb(name: &str, vid: u16, pid: u16) -> SerialPortInfo {
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: None,
                manufacturer: None,
                product: None,
            }),
        }
    }

    #[test]
    fn known_adapters_sort_first_and_are_named() {
        let mut ports = vec![
            SerialPortInfo {
                port_name: "/dev/ttyUSB9".into(),
                port_type: SerialPortType::Unknown,
            },
            usb("/dev/ttyACM0", 0x2E8A, 0x0005),
            usb("/dev/ttyUSB1", 0x1A86, 0x7523),
            usb("/dev/ttyUSB0", 0x10C4, 0xEA60),
        ];
        ports.sort_by_key(|port| (adapter_rank(port), port.port_name.clone()));
        assert_eq!(
            port_list(&ports),
            "/dev/ttyUSB0 (CP210x), /dev/ttyUSB1 (CH340), /dev/ttyACM0 (2e8a:0005), /dev/ttyUSB9"
        );
        assert_eq!(port_list(&[]), "none");
    }

    #[test]
    fn new_emulator_flash_starts_with_sample_firmware() {
        let dir = tempfile::tempdir().unwrap();
        let spec = EmuSpec {
            size: Some(0x10_0000),
            file: Some(dir.path().join("new.bin")),
            ..EmuSpec::default()
        };
        let (contents, origin) = emu_contents(&spec).unwrap();
        assert_eq!((contents.len(), contents[0]), (0x10_0000, 0xE9));
        assert!(origin.contains("does not exist yet"));
        let (fresh, origin) = emu_contents(&EmuSpec::default()).unwrap();
        assert_eq!(fresh, sonoff_like_flash(4 << 20, 0));
        assert!(origin.contains("discarded at exit"));
    }
}
