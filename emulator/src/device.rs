//! The virtual ESP8266 without I/O: bytes and time go in, bytes come out.
//!
//! A [`Device`] is the chip as its serial port sees it. After a reset in
//! [`BootMode::Download`] the ROM's serial loader answers (opcodes 0x02–0x0A,
//! see `rom.rs`). A MEM_END with an entry point starts the CPU there
//! (`execution.rs`): the uploaded stub or program runs on the [`Machine`], and
//! from then on the UART's bytes are its. With [`CodeExecution::StubModel`]
//! nothing runs: after `OHAI` the device behaves as the flasher stub esptool
//! uploaded (see `stub.rs`), in the flavour (legacy v1 or esp-flasher-stub v2)
//! recognised from the entry point. The [`Machine`] holds memory, registers,
//! the SPI flash controller and the flash chip ([`SpiFlash`]); READ_REG and the
//! CPU see the same state.
//!
//! Nothing here sleeps, reads a clock or touches a file descriptor. The
//! caller passes the current time to every call; with
//! [`DeviceConfig::realtime`] set, replies that follow an erase or program
//! become ready only after the flash model's datasheet durations, which
//! [`Device::next_output_at`] reports. UART byte timing is the front end's job.

mod execution;
mod frame_tap;
mod registers;
mod rom;
mod stub;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use esp_protocol::packet::{Opcode, RequestFrame, Response, ROM_BAUD};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::status::Status;

use crate::boot::{self, FlashWiring, ResetCause, BOOT_LOG_BAUD};
use crate::flash::SpiFlash;
use crate::machine::{Machine, MachineConfig};
use execution::{Execution, PendingRestart, MAX_PENDING_OUTPUT};
use frame_tap::FrameTap;
use stub::Stub;

/// The status bytes of a successful reply.
const SUCCESS: Status = Status::Success;

/// The MAC of [`DeviceConfig::default`] (Espressif OUI 18:fe:34).
pub const DEFAULT_MAC: [u8; 6] = [0x18, 0xFE, 0x34, 0x12, 0x34, 0x56];

/// Which chip the eFuses describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Chip {
    /// ESP8266EX with external flash.
    #[default]
    Esp8266Ex,
    /// ESP8285 with embedded flash, normal temperature grade (esptool prints "ESP8285N08"/"N16").
    Esp8285,
    /// ESP8285 with embedded flash, high temperature grade (esptool prints "ESP8285H08"/"H16").
    Esp8285HighTemperature,
}

/// How the strapping pins boot the chip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BootMode {
    /// GPIO0 low: the ROM's serial download mode.
    #[default]
    Download,
    /// GPIO0 high: boot the firmware from flash; the loader never answers.
    Flash,
}

/// How the USB-serial adapter's DTR and RTS reach the chip's EN (reset) and GPIO0 pins.
///
/// Lines are given as the host sets them: `true` is asserted (pyserial's `dtr = True`),
/// which drives the adapter's pin low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ResetWiring {
    /// No auto-reset: DTR and RTS reach nothing; GPIO0 is wherever the jumper holds it
    /// ([`DeviceConfig::boot`]), as on a bare ESP-01 or a Sonoff on a plain adapter.
    #[default]
    None,
    /// The two-transistor circuit of NodeMCU and Wemos boards: EN is pulled low while RTS
    /// is asserted and DTR is not, GPIO0 while DTR is asserted and RTS is not; both lines
    /// alike leave both pins high, so a terminal that asserts both does not reset the chip.
    NodeMcu,
    /// DTR straight to GPIO0 and RTS straight to EN, no transistors: an asserted line holds
    /// its pin low.
    Direct,
}

impl ResetWiring {
    /// Which pins the lines pull low: `(en_low, gpio0_low)`.
    pub fn pins(self, dtr: bool, rts: bool) -> (bool, bool) {
        match self {
            ResetWiring::None => (false, false),
            ResetWiring::NodeMcu => (rts && !dtr, dtr && !rts),
            ResetWiring::Direct => (rts, dtr),
        }
    }
}

/// How long after EN rises the chip starts; GPIO0 pulled low at any time in this window
/// selects the ROM loader.
///
/// A real chip latches GPIO0 within microseconds of EN rising, and a local serial port
/// changes DTR and RTS microseconds apart. Over RFC 2217 every line change is a network
/// round trip, and pyserial waits at least 50 ms for each acknowledgement, so esptool's
/// sequential reset releases EN (DTR and RTS both asserted for a moment: both pins high)
/// 50 ms or more before RTS drops and DTR pulls GPIO0 low. The window stands for the
/// microseconds the sequence would take on a local port: wide enough for those waits, far
/// shorter than the gap before the client's first SYNC, so a client that resets and syncs
/// sees the chip that board would give it.
pub const STRAP_WINDOW: Duration = Duration::from_millis(200);

/// One READ_FLASH data frame that loses bytes from its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortRead {
    /// 1-based index over the READ_FLASH data frames sent since power-on.
    pub frame: u32,
    /// Bytes cut from the end of that frame.
    pub drop: usize,
}

/// A command that gets no reply at all, and is not executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandTimeout {
    /// The command's opcode byte.
    pub opcode: u8,
    /// 1-based count of commands with that opcode since power-on.
    pub nth: u32,
}

/// Faults the device core injects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFaults {
    /// A READ_FLASH data frame that comes out short.
    pub short_read: Option<ShortRead>,
    /// Commands that are silently dropped.
    pub timeouts: Vec<CommandTimeout>,
    /// SPI_FLASH_MD5 replies and READ_FLASH digest frames carry a wrong MD5.
    pub bad_md5: bool,
}

/// How the device is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The chip variant the eFuses describe.
    pub chip: Chip,
    /// The factory MAC address the eFuses hold.
    pub mac: [u8; 6],
    /// GPIO0 at every reset when the reset wiring does not pull it low: where the jumper
    /// (or the board's pull-up, [`BootMode::Flash`]) holds it.
    pub boot: BootMode,
    /// How the adapter's DTR and RTS reach EN and GPIO0 (see [`Device::set_control_lines`]).
    pub reset_wiring: ResetWiring,
    /// Injected faults.
    pub faults: DeviceFaults,
    /// Delay replies by the flash's datasheet busy times.
    pub realtime: bool,
    /// The flash data lines the module connects; `None`: qio for an ESP8266EX, dout for an ESP8285.
    pub wiring: Option<FlashWiring>,
    /// Whether code the chip is given runs on the CPU or a stub upload is answered by the model.
    pub execution: CodeExecution,
}

/// What the chip does with the code it is given.
///
/// The default runs it, as the chip does; the model stays as a second, independent
/// implementation that the differential test compares with executed stubs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CodeExecution {
    /// The CPU runs it: uploaded stubs and RAM programs (MEM_END with an entry point), and
    /// the firmware a boot from flash finds.
    #[default]
    Run,
    /// Nothing runs: an upload started by MEM_END is answered by the behavioural model of
    /// a flasher stub (`stub.rs`), in the flavour its entry point names, and a boot from
    /// flash stops after the ROM's boot log.
    StubModel,
}

impl DeviceConfig {
    /// The module's flash wiring: the one given, else the chip's usual one.
    pub fn flash_wiring(&self) -> FlashWiring {
        self.wiring.unwrap_or(match self.chip {
            Chip::Esp8266Ex => FlashWiring::Qio,
            Chip::Esp8285 | Chip::Esp8285HighTemperature => FlashWiring::Dout,
        })
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            chip: Chip::Esp8266Ex,
            mac: DEFAULT_MAC,
            boot: BootMode::Download,
            reset_wiring: ResetWiring::None,
            faults: DeviceFaults::default(),
            realtime: false,
            wiring: None,
            execution: CodeExecution::Run,
        }
    }
}

/// Which flasher stub the device behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StubFlavor {
    /// The legacy stub (esptool 4.x, `stub_flasher/1`), entry 0x4010D004.
    Legacy,
    /// esp-flasher-stub (esptool 5.x, `stub_flasher/2`), entry 0x4010C504, and any other entry.
    EspFlasherStub,
}

impl StubFlavor {
    /// Entry point of the legacy stub image esptool 4.12 and 5.6 ship.
    pub const LEGACY_ENTRY: u32 = 0x4010_D004;

    /// The flavour to model for a stub started at `entry`.
    pub fn from_entry(entry: u32) -> StubFlavor {
        if entry == Self::LEGACY_ENTRY {
            StubFlavor::Legacy
        } else {
            StubFlavor::EspFlasherStub
        }
    }
}

/// What runs on the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// The ROM's serial loader.
    RomLoader,
    /// A flasher stub, answered by the behavioural model.
    Stub(StubFlavor),
    /// Code running on the CPU.
    Running,
    /// The firmware (or nothing useful): the serial protocol is not answered.
    UserCode,
}

/// A piece of output and when it may leave the chip.
#[derive(Debug)]
struct OutputChunk {
    ready_at: Duration,
    bytes: Vec<u8>,
    /// The UART switches to this rate once these bytes are out.
    baud_after: Option<u32>,
}

/// An upload to RAM in progress (MEM_BEGIN .. MEM_END).
#[derive(Debug, Clone, Copy)]
struct MemUpload {
    next_address: u32,
    remaining: u32,
    next_sequence: u32,
}

/// The virtual ESP8266.
#[derive(Debug)]
pub struct Device {
    config: DeviceConfig,
    /// Memory, peripherals and the flash chip: what READ_REG and the CPU both see.
    machine: Machine,
    decoder: SlipDecoder,
    program: Program,
    /// The CPU and the ROM's state while code runs.
    execution: Option<Box<Execution>>,
    /// A restart the running code asked for, done after its run loop.
    pending_restart: Option<PendingRestart>,
    /// The device faults, applied to the frames of code the CPU runs.
    frame_tap: Option<FrameTap>,
    rom: rom::RomLoader,
    stub: Stub,
    mem_upload: Option<MemUpload>,
    output: VecDeque<OutputChunk>,
    uart_baud: u32,
    /// The ROM loader has measured the host's rate since the last reset (it auto-bauds once).
    rom_baud_measured: bool,
    /// When the chip finishes the work queued so far; replies are ready then.
    busy_until: Duration,
    last_now: Duration,
    commands_seen: HashMap<u8, u32>,
    read_frames_sent: u32,
    trace: Option<Vec<String>>,
    /// EN is held low by the reset wiring: the chip does nothing.
    held_in_reset: bool,
    /// EN has risen: the chip starts at this time ([`STRAP_WINDOW`] later).
    release_at: Option<Duration>,
    /// The reset wiring pulls GPIO0 low.
    gpio0_pulled_low: bool,
    /// The wiring pulled GPIO0 low at some time since EN rose.
    gpio0_low_since_release: bool,
}

impl Device {
    /// A device powered on at time zero with `flash` attached to its SPI bus.
    pub fn new(config: DeviceConfig, mut flash: SpiFlash) -> Device {
        // In realtime, code driving the flash (executed stubs, ROM functions) sees it busy
        // for the datasheet times, as the model's replies are delayed by them.
        if config.realtime {
            flash.set_model_busy_time(true);
        }
        let efuses = registers::efuse_words(config.chip, config.mac, flash.size());
        let machine = Machine::new(
            MachineConfig {
                efuses,
                boot: config.boot,
            },
            flash,
        );
        let frame_tap = FrameTap::new(&config.faults);
        let mut device = Device {
            config,
            machine,
            decoder: SlipDecoder::new(),
            program: Program::RomLoader,
            execution: None,
            pending_restart: None,
            frame_tap,
            rom: rom::RomLoader::default(),
            stub: Stub::new(StubFlavor::EspFlasherStub),
            mem_upload: None,
            output: VecDeque::new(),
            uart_baud: ROM_BAUD,
            rom_baud_measured: false,
            busy_until: Duration::ZERO,
            last_now: Duration::ZERO,
            commands_seen: HashMap::new(),
            read_frames_sent: 0,
            trace: None,
            held_in_reset: false,
            release_at: None,
            gpio0_pulled_low: false,
            gpio0_low_since_release: false,
        };
        device.restart(Duration::ZERO, ResetCause::PowerOn);
        device
    }

    /// Takes bytes from the host, in arbitrary chunks, and acts on every complete frame.
    pub fn receive(&mut self, now: Duration, bytes: &[u8]) {
        self.advance_to(now);
        if self.in_reset() {
            let lost = bytes.len();
            self.trace_line(|| format!("uart: {lost} host bytes lost: the chip is in reset"));
            return;
        }
        let mut rest = bytes;
        let mut events = Vec::new();
        // Frame by frame: a MEM_END that starts code hands the bytes after it to the code.
        while !rest.is_empty() && self.program != Program::Running {
            if self.tx_blocked() {
                let lost = rest.len();
                self.trace_line(|| {
                    format!("uart: {lost} host bytes lost: the chip waits for the host to read")
                });
                return;
            }
            let piece_end = rest
                .iter()
                .position(|&byte| byte == slip::END)
                .map_or(rest.len(), |end| end + 1);
            let (piece, after) = rest.split_at(piece_end);
            rest = after;
            self.decoder.feed(piece, &mut events);
            for event in events.drain(..) {
                match event {
                    SlipEvent::Frame(frame) => self.handle_frame(&frame),
                    SlipEvent::Garbage(bytes) => {
                        self.trace_line(|| format!("host: {} bytes outside frames", bytes.len()))
                    }
                    SlipEvent::Malformed(error) => {
                        self.trace_line(|| format!("host: frame dropped: {error}"))
                    }
                }
            }
        }
        if self.program == Program::Running && !rest.is_empty() {
            self.execution_receive(rest);
            self.run_code(now);
        }
    }

    /// Appends the bytes the chip has sent by `now`.
    ///
    /// Stops after the last byte sent at the current UART rate when the rate changes
    /// (after CHANGE_BAUDRATE's reply, after the boot log): read [`Device::uart_baud`] and
    /// poll again for the rest.
    pub fn poll_output(&mut self, now: Duration, out: &mut Vec<u8>) {
        let baud = self.uart_baud;
        self.advance_to(now);
        if self.in_reset() {
            return;
        }
        self.run_code(now);
        if self.uart_baud != baud {
            // A restart or the code changed the rate with nothing queued at the old one:
            // what the chip sent since goes at the new rate, which the caller (the link)
            // reads before it polls again.
            return;
        }
        let before = out.len();
        self.take_output(now, out);
        if out.len() > before && self.execution.is_some() {
            self.execution_output_taken();
            self.run_code(now);
        }
    }

    /// The loader or stub model waits on a full TX FIFO: the host has left
    /// [`MAX_PENDING_OUTPUT`] bytes unread, so it stops reading RX and what the host sends
    /// is lost, as the RX FIFO of a chip whose TX is blocked overflows. A READ_FLASH stream
    /// still takes its acknowledgements: its output is bounded by its window.
    fn tx_blocked(&self) -> bool {
        !self.stub.reading() && self.pending_output() >= MAX_PENDING_OUTPUT
    }

    fn take_output(&mut self, now: Duration, out: &mut Vec<u8>) {
        while self
            .output
            .front()
            .is_some_and(|chunk| chunk.ready_at <= now)
        {
            let chunk = self.output.pop_front().expect("front exists");
            out.extend_from_slice(&chunk.bytes);
            if let Some(baud) = chunk.baud_after {
                self.uart_baud = baud;
                return;
            }
        }
    }

    /// When the next output will be ready (possibly already), or `None` if nothing is pending.
    pub fn next_output_at(&self) -> Option<Duration> {
        if self.held_in_reset {
            return None;
        }
        if let Some(release) = self.release_at {
            return Some(release);
        }
        let queued = self.output.front().map(|chunk| chunk.ready_at);
        match (queued, self.execution_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The cycles the CPU has counted since it started the code it runs (an uploaded stub, a
    /// RAM program, firmware), `None` while no code runs. Without realtime the count stands
    /// still while the core waits for input, so a difference measures the work done between.
    pub fn cpu_cycles(&self) -> Option<u64> {
        self.execution
            .as_ref()
            .map(|execution| execution.cpu.cycles())
    }

    /// The chip's UART rate now: [`ROM_BAUD`] after reset, 74880 while the boot log is
    /// pending, the new rate once CHANGE_BAUDRATE's reply has been polled.
    pub fn uart_baud(&self) -> u32 {
        self.uart_baud
    }

    /// The host's first bytes to the ROM's serial loader after a reset arrive at
    /// `host_baud`: the ROM measures their bit times and runs its UART at that rate until the
    /// next reset, as a board does (esptool's `--baud 9600` connects at 9600; its
    /// `--baud 921600` only switches after the stub runs). Later rate changes by the host
    /// are not followed. Call it before the bytes are resampled at [`Device::uart_baud`].
    pub fn measure_host_baud(&mut self, now: Duration, host_baud: u32) {
        self.advance_to(now);
        if self.in_reset() || self.program != Program::RomLoader || self.rom_baud_measured {
            return;
        }
        self.rom_baud_measured = true;
        if host_baud != self.uart_baud {
            self.uart_baud = host_baud;
            self.machine.set_uart_baud(host_baud);
            self.trace_line(|| {
                format!("uart: the ROM loader measured the host's rate: {host_baud} baud")
            });
        }
    }

    /// The reset pin (or the client closing the port): back to the ROM in the configured boot mode.
    pub fn reset(&mut self, now: Duration) {
        self.advance_to(now);
        // Whatever the UART had not sent yet is lost.
        self.output.clear();
        self.held_in_reset = false;
        self.release_at = None;
        self.restart(now, ResetCause::ExternalPin);
    }

    /// The adapter's DTR and RTS as the host now sets them (`true`: asserted); the reset
    /// wiring ([`DeviceConfig::reset_wiring`]) turns them into EN and GPIO0 levels.
    ///
    /// EN pulled low holds the chip in reset: it sends nothing, what it was sending is lost
    /// and what the host sends is ignored. When EN rises the chip starts [`STRAP_WINDOW`]
    /// later: the ROM loader if GPIO0 was pulled low in that window (or the jumper holds it
    /// low), the firmware in flash otherwise. Without wiring the lines change nothing.
    pub fn set_control_lines(&mut self, now: Duration, dtr: bool, rts: bool) {
        self.advance_to(now);
        let (en_low, gpio0_low) = self.config.reset_wiring.pins(dtr, rts);
        self.gpio0_pulled_low = gpio0_low;
        self.gpio0_low_since_release |= gpio0_low;
        if en_low && !self.held_in_reset {
            self.held_in_reset = true;
            self.release_at = None;
            self.output.clear();
            self.execution = None;
            self.pending_restart = None;
            self.trace_line(|| "chip: EN pulled low, held in reset".to_owned());
        } else if !en_low && self.held_in_reset {
            self.held_in_reset = false;
            self.release_at = Some(now + STRAP_WINDOW);
            self.gpio0_low_since_release = gpio0_low;
            self.trace_line(|| "chip: EN released".to_owned());
        }
    }

    /// Puts the chip on the caller's clock or takes it off ([`DeviceConfig::realtime`]): a
    /// serial monitor wants the firmware's delays to take their time, a flasher wants
    /// answers as fast as they come.
    pub fn set_realtime(&mut self, realtime: bool) {
        self.config.realtime = realtime;
        self.machine.flash_mut().set_model_busy_time(realtime);
    }

    /// How the adapter's DTR and RTS reach the chip, as configured.
    pub fn reset_wiring(&self) -> ResetWiring {
        self.config.reset_wiring
    }

    /// Puts the chip on a board with other reset wiring (the lines' next change counts).
    pub fn set_reset_wiring(&mut self, wiring: ResetWiring) {
        self.config.reset_wiring = wiring;
    }

    /// True while EN is low or the chip has not yet started after EN rose.
    pub fn in_reset(&self) -> bool {
        self.held_in_reset || self.release_at.is_some()
    }

    /// GPIO0's level as the chip latches it: low when the wiring pulls it (or pulled it since
    /// EN rose) or the jumper holds it.
    fn strapping(&self) -> BootMode {
        if self.gpio0_pulled_low || self.gpio0_low_since_release {
            BootMode::Download
        } else {
            self.config.boot
        }
    }

    /// The flash chip.
    pub fn flash(&self) -> &SpiFlash {
        self.machine.flash()
    }

    /// The flash chip, to change it (contents, faults) between commands.
    pub fn flash_mut(&mut self) -> &mut SpiFlash {
        self.machine.flash_mut()
    }

    /// The chip's memory and peripherals.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// True when the client closing the port resets the chip: always, but for a program
    /// uploaded to RAM that is no flasher stub (`esptool load_ram` leaves it running).
    pub fn resets_when_port_closes(&self) -> bool {
        self.execution
            .as_ref()
            .is_none_or(|execution| !execution.survives_close)
    }

    /// Why the CPU stopped for good, if it did (a crash, an unimplemented ROM function).
    pub fn halted(&self) -> Option<&str> {
        match &self.execution.as_ref()?.state {
            execution::RunState::Halted(reason) => Some(reason),
            _ => None,
        }
    }

    /// What runs on the chip now.
    pub fn program(&self) -> Program {
        self.program
    }

    /// Starts (or stops, clearing what was collected) collecting one line per packet for `take_trace`.
    pub fn set_trace(&mut self, enabled: bool) {
        self.trace = enabled.then(Vec::new);
        self.machine.set_trace(enabled);
    }

    /// The trace lines collected since the last call (empty unless enabled with `set_trace`).
    pub fn take_trace(&mut self) -> Vec<String> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Power-on or reboot: what the strapping selects, with volatile state cleared; output
    /// already queued (a reply the software flushed before rebooting) still goes out.
    fn restart(&mut self, now: Duration, cause: ResetCause) {
        let strap = self.strapping();
        self.gpio0_low_since_release = false;
        self.machine.set_strapping(strap);
        self.machine.reset(cause);
        self.execution = None;
        self.pending_restart = None;
        if let Some(tap) = self.frame_tap.as_mut() {
            tap.reset();
        }
        self.decoder.reset();
        self.rom = rom::RomLoader::default();
        self.stub = Stub::new(StubFlavor::EspFlasherStub);
        self.mem_upload = None;
        self.uart_baud = ROM_BAUD;
        self.rom_baud_measured = false;
        self.busy_until = now;
        match strap {
            BootMode::Download => {
                self.program = Program::RomLoader;
                self.trace_line(|| format!("chip: reset ({cause:?}), ROM serial loader waiting"));
            }
            BootMode::Flash => self.boot_from_flash(now, cause),
        }
    }

    /// Reads the image at 0x0 as the ROM does and prints the ROM's boot log at 74880 baud,
    /// after any reply still queued; the serial loader no longer answers.
    pub(crate) fn boot_from_flash(&mut self, now: Duration, cause: ResetCause) {
        self.program = Program::UserCode;
        self.execution = None;
        let wiring = self.config.flash_wiring();
        let flash = self.machine.flash();
        let report = boot::boot_from_flash(flash.as_bytes(), flash.size(), cause, wiring);
        if self.output.is_empty() {
            self.uart_baud = BOOT_LOG_BAUD;
        } else {
            self.switch_baud_after_output(BOOT_LOG_BAUD);
        }
        let run = self.config.execution == CodeExecution::Run;
        // The firmware's own output leaves at the rate the ROM left the UART at.
        let baud_after = if run {
            execution::nominal_baud(self.machine.uart_baud())
        } else {
            ROM_BAUD
        };
        self.output.push_back(OutputChunk {
            ready_at: self.busy_until.max(now),
            bytes: report.log.into_bytes(),
            baud_after: Some(baud_after),
        });
        self.trace_line(|| {
            format!(
                "chip: reset ({cause:?}), booting from flash: {}",
                report.outcome
            )
        });
        if let (true, boot::BootOutcome::Started { entry }) = (run, &report.outcome) {
            self.load_firmware_segments();
            self.start_execution(*entry, now, false);
        }
    }

    /// What the ROM does before jumping to the firmware: copies the image's RAM segments.
    fn load_firmware_segments(&mut self) {
        let Ok(parsed) = esp_protocol::image::parse(self.machine.flash().as_bytes()) else {
            return;
        };
        for segment in parsed.image.segments {
            if self
                .machine
                .write_ram(segment.load_address, &segment.data)
                .is_err()
            {
                self.trace_line(|| {
                    format!(
                        "chip: the ROM skips segment at 0x{:08x}: not RAM",
                        segment.load_address
                    )
                });
            }
        }
    }

    /// Runs the code on the CPU, if any, up to `now`; then a restart it asked for.
    fn run_code(&mut self, now: Duration) {
        if self.execution.is_none() {
            return;
        }
        self.run_execution(now);
        if let Some(restart) = self.pending_restart.take() {
            let now = self.busy_until.max(now);
            match restart {
                PendingRestart::Reset(cause) => self.restart(now, cause),
                PendingRestart::BootFirmware => self.boot_from_flash(now, ResetCause::ExternalPin),
            }
        }
    }

    /// Lets the flash chip see the time that passed.
    fn advance_to(&mut self, now: Duration) {
        if let Some(release) = self.release_at.filter(|&release| release <= now) {
            self.release_at = None;
            self.output.clear();
            self.advance_to(release);
            self.restart(release, ResetCause::ExternalPin);
        }
        let elapsed = now.saturating_sub(self.last_now);
        // Running code is the flash's clock then: the machine passes it the core's cycles.
        if self.execution.is_none() {
            self.machine.flash_mut().advance_time(elapsed);
        }
        self.last_now = self.last_now.max(now);
        self.busy_until = self.busy_until.max(now);
    }

    /// Accounts for chip work that takes `duration` (only in realtime mode).
    fn spend(&mut self, duration: Duration) {
        if self.config.realtime {
            self.busy_until += duration;
        }
    }

    fn handle_frame(&mut self, frame: &[u8]) {
        if self.program == Program::UserCode {
            return;
        }
        if self.stub.reading() {
            self.read_flash_ack(frame);
            return;
        }
        let Ok(request) = RequestFrame::parse(frame) else {
            self.trace_line(|| {
                format!(
                    "host: ignored {}-byte frame that is no request",
                    frame.len()
                )
            });
            return;
        };
        self.trace_line(|| {
            let name = Opcode::from_byte(request.opcode).map_or("unknown", Opcode::name);
            format!(
                "host → chip: {name} (0x{:02x}), {} payload bytes",
                request.opcode,
                request.payload.len()
            )
        });
        let seen = self.commands_seen.entry(request.opcode).or_default();
        *seen = seen.saturating_add(1);
        let nth = *seen;
        if self
            .config
            .faults
            .timeouts
            .iter()
            .any(|t| t.opcode == request.opcode && t.nth == nth)
        {
            self.trace_line(|| {
                format!(
                    "fault: command #{nth} with opcode 0x{:02x} dropped",
                    request.opcode
                )
            });
            return;
        }
        match self.program {
            Program::RomLoader => self.rom_command(&request),
            Program::Stub(_) => self.stub_command(&request),
            Program::Running | Program::UserCode => {}
        }
    }

    /// Answers SYNC as ROM and stubs both do: the same reply, `SYNC_REPLIES` times.
    fn answer_sync(&mut self, opcode: u8, value: u32) {
        for _ in 0..esp_protocol::packet::SYNC_REPLIES {
            self.reply(opcode, value, &[], SUCCESS);
        }
    }

    /// Answers READ_REG from the register and memory model.
    fn answer_read_reg(&mut self, opcode: u8, address: u32) {
        let value = self.machine.read_reg(address);
        self.reply(opcode, value, &[], SUCCESS);
    }

    /// Queues a response packet, ready when the queued work is done.
    fn reply(&mut self, opcode: u8, value: u32, data: &[u8], status: Status) {
        let response = Response {
            opcode,
            value,
            data: data.to_vec(),
            status,
        };
        let mut packet = Vec::with_capacity(data.len() + 10);
        if let Err(error) = response.encode(&mut packet) {
            // No reply the device builds comes near 64 KiB; a chip that cannot answer stays silent.
            self.trace_line(|| format!("chip → host: no reply: {error}"));
            return;
        }
        self.trace_line(|| {
            let name = Opcode::from_byte(opcode).map_or("unknown", Opcode::name);
            let [first, second] = status.to_bytes();
            format!("chip → host: {name} (0x{opcode:02x}) value=0x{value:08x} data={} status={first:02x}{second:02x}", data.len())
        });
        self.send_frame(&packet);
    }

    /// Queues one SLIP frame, ready when the queued work is done.
    fn send_frame(&mut self, payload: &[u8]) {
        let ready_at = self.busy_until;
        match self.output.back_mut() {
            Some(chunk) if chunk.ready_at == ready_at && chunk.baud_after.is_none() => {
                slip::encode(payload, &mut chunk.bytes);
            }
            _ => {
                let mut bytes = Vec::with_capacity(payload.len() + payload.len() / 32 + 2);
                slip::encode(payload, &mut bytes);
                self.output.push_back(OutputChunk {
                    ready_at,
                    bytes,
                    baud_after: None,
                });
            }
        }
    }

    /// Makes the UART switch to `baud` once everything queued so far has been polled.
    fn switch_baud_after_output(&mut self, baud: u32) {
        match self.output.back_mut() {
            Some(chunk) if chunk.baud_after.is_none() => chunk.baud_after = Some(baud),
            _ => self.output.push_back(OutputChunk {
                ready_at: self.busy_until,
                bytes: Vec::new(),
                baud_after: Some(baud),
            }),
        }
    }

    /// Starts the uploaded stub: sends `OHAI` and answers as the stub from now on.
    fn start_stub(&mut self, entry: u32) {
        let flavor = StubFlavor::from_entry(entry);
        self.program = Program::Stub(flavor);
        self.stub = Stub::new(flavor);
        self.mem_upload = None;
        // Both stubs attach the flash as they start.
        self.machine.set_flash_attached(true);
        self.trace_line(|| format!("chip: stub started at 0x{entry:08x}, modelled as {flavor:?}"));
        self.send_frame(esp_protocol::packet::STUB_GREETING);
    }

    fn trace_line(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            trace.push(line());
        }
    }
}
