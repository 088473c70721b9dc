//! `monitor`: the board's serial output, decoded. It resets the board into its firmware
//! (`--before default_reset`), shows the ROM's boot log at 74880 baud and, once that log is
//! over (see [`esp_flasher::monitor::BootLogWatch`]), the firmware's output at
//! `--monitor-baud`; keys typed go to the board. Also the tail of `write_flash`, `restore`
//! and `run` with `--monitor`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use esp_flasher::monitor::elf::ElfSymbols;
use esp_flasher::monitor::{BootLogWatch, Decoder, Piece, Symbolize};
use esp_flasher::{Flasher, LineControl, Transport};
use esp_protocol::boot_log::BOOT_LOG_BAUD;

use super::session::{open_line, with_chip_to_change, Access, Line, Session};
use super::CmdError;
use crate::cli::{AfterArg, BeforeArg, ConnectArgs, MonitorAfter, MonitorArgs, MonitorOptions};
use crate::output::Output;

/// How long one read of the port waits before the keyboard and the clock are looked at.
const POLL: Duration = Duration::from_millis(20);
/// How long EN is held low for a reset (esptool's hard reset).
const RESET_PULSE: Duration = Duration::from_millis(100);
/// The prefix of the lines the monitor adds after the board's.
const NOTE_PREFIX: &str = "  => ";
/// Ctrl-T: the menu key.
const MENU_BYTE: u8 = 0x14;
/// Ctrl-]: quits.
const QUIT_BYTE: u8 = 0x1D;
/// What Ctrl-T Ctrl-H shows.
const HELP: &str = "--- esp-flasher monitor keys:
---   Ctrl-]          quit
---   Ctrl-T Ctrl-R   reset the board (its boot log is shown at 74880 baud again)
---   Ctrl-T Ctrl-H   this help
---   Ctrl-T Ctrl-T   send Ctrl-T itself;  Ctrl-T Ctrl-]  send Ctrl-] itself
--- Every other key goes to the board (Enter as CR LF).";

/// Whether the terminal is in raw mode: the interrupt handler restores it before exiting.
static RAW_MODE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as it was, if the monitor had it in raw mode (for the Ctrl-C,
/// SIGTERM and SIGHUP handler, which exits without unwinding).
pub fn restore_terminal() {
    if RAW_MODE.swap(false, Ordering::SeqCst) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// How the monitor begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Reset the board into its firmware, then read its boot log.
    Reset,
    /// The board was just started by the command before: read its boot log.
    BootLog,
    /// Leave the board alone: read at the firmware's rate.
    Attach,
}

/// The `--elf` symbols, read before anything is opened (a bad file is a usage error).
pub struct Prepared {
    symbols: Option<Box<dyn Symbolize>>,
}

/// Reads `--elf`, if given.
pub fn prepare(options: &MonitorOptions) -> Result<Prepared, CmdError> {
    let symbols = match &options.elf {
        Some(path) => Some(load_symbols(path)?),
        None => None,
    };
    Ok(Prepared { symbols })
}

fn load_symbols(path: &Path) -> Result<Box<dyn Symbolize>, CmdError> {
    ElfSymbols::load(path)
        .map(|symbols| Box::new(symbols) as Box<dyn Symbolize>)
        .map_err(|error| {
            CmdError::Usage(format!(
                "--elf: {error}; give the firmware's .elf (the linker's output, not the .bin)"
            ))
        })
}

/// `monitor`: opens the port without a word to the chip and shows what it prints.
pub fn run(args: &MonitorArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    let prepared = prepare(&args.options)?;
    let line = open_line(connect, out)?;
    let start = match connect.before {
        BeforeArg::DefaultReset => Start::Reset,
        BeforeArg::NoReset | BeforeArg::NoResetNoSync => Start::Attach,
    };
    Monitor::new(line, &args.options, prepared).run(start)
}

/// The monitor after a command: `--after hard_reset` (the default) resets the board here, so
/// that its boot log is read from the start; after `soft_reset` or `run` the firmware is
/// already starting; `no_reset` leaves the chip in the loader and just listens.
pub fn after_command(
    line: Line,
    after: Option<AfterArg>,
    options: &MonitorOptions,
    prepared: Prepared,
) -> Result<(), CmdError> {
    let start = match after {
        Some(AfterArg::HardReset) => Start::Reset,
        Some(AfterArg::SoftReset) | None => Start::BootLog,
        Some(AfterArg::NoReset) => Start::Attach,
    };
    Monitor::new(line, options, prepared).run(start)
}

/// [`with_chip_to_change`] for `write_flash` and `restore`, then, with `--monitor`, the
/// monitor on the same line (`--elf` is read before anything starts).
pub fn with_chip_to_change_then_monitor<F>(
    command: &'static str,
    connect: &ConnectArgs,
    monitor: &MonitorAfter,
    out: &Rc<Output>,
    body: F,
) -> Result<(), CmdError>
where
    F: FnOnce(&mut Flasher<Line>, &Output) -> Result<(), CmdError>,
{
    if !monitor.monitor {
        return with_chip_to_change(command, connect, out, body);
    }
    let prepared = prepare(&monitor.options)?;
    let access = Access::Board {
        command,
        changes: true,
    };
    let line = Session::open(connect, out, access)?
        .run_keeping_line(session_after(connect.after), body)?;
    after_command(line, Some(connect.after), &monitor.options, prepared)
}

/// What the session with the command before the monitor should do at its end: the monitor
/// makes the hard reset itself.
fn session_after(after: AfterArg) -> AfterArg {
    match after {
        AfterArg::HardReset => AfterArg::NoReset,
        other => other,
    }
}

/// What a key does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyAction {
    Send(Vec<u8>),
    Quit,
    Reset,
    Help,
    /// Ctrl-T was pressed: the next key is a command.
    Menu,
    /// A key after Ctrl-T that is no command.
    UnknownCommand,
    Nothing,
}

/// Turns key presses into actions; remembers a pending Ctrl-T.
#[derive(Debug, Default)]
struct Keys {
    menu: bool,
}

impl Keys {
    fn action(&mut self, key: KeyEvent) -> KeyAction {
        if key.kind == KeyEventKind::Release {
            return KeyAction::Nothing;
        }
        let Some(bytes) = key_bytes(key) else {
            return KeyAction::Nothing;
        };
        if std::mem::take(&mut self.menu) {
            return match bytes.as_slice() {
                [MENU_BYTE] => KeyAction::Send(vec![MENU_BYTE]),
                [QUIT_BYTE] => KeyAction::Send(vec![QUIT_BYTE]),
                [0x12] | [b'r'] | [b'R'] => KeyAction::Reset,
                [0x08] | [0x7F] | [b'h'] | [b'H'] | [b'?'] => KeyAction::Help,
                _ => KeyAction::UnknownCommand,
            };
        }
        match bytes.as_slice() {
            [QUIT_BYTE] => KeyAction::Quit,
            [MENU_BYTE] => {
                self.menu = true;
                KeyAction::Menu
            }
            _ => KeyAction::Send(bytes),
        }
    }
}

/// The bytes a key sends to the board, as a terminal would.
fn key_bytes(key: KeyEvent) -> Option<Vec<u8>> {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    let bytes = match key.code {
        // Terminals send Ctrl-] as 0x1D, which crossterm reads as Ctrl-5.
        KeyCode::Char(']' | '5') if control => vec![QUIT_BYTE],
        KeyCode::Char(c) if control && c.is_ascii_alphabetic() => {
            vec![c.to_ascii_lowercase() as u8 & 0x1F]
        }
        KeyCode::Char(c) => {
            let mut text = String::new();
            if key.modifiers.contains(KeyModifiers::ALT) {
                text.push('\x1b');
            }
            text.push(c);
            text.into_bytes()
        }
        KeyCode::Enter => b"\r\n".to_vec(),
        KeyCode::Backspace => vec![0x08],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::Esc => vec![0x1B],
        KeyCode::Up => b"\x1b[A".to_vec(),
        KeyCode::Down => b"\x1b[B".to_vec(),
        KeyCode::Right => b"\x1b[C".to_vec(),
        KeyCode::Left => b"\x1b[D".to_vec(),
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        _ => return None,
    };
    Some(bytes)
}

/// Raw mode for as long as it lives; restored on drop (also when a panic unwinds).
struct RawMode;

impl RawMode {
    fn enable() -> Result<RawMode, CmdError> {
        crossterm::terminal::enable_raw_mode().map_err(|error| {
            CmdError::failed(
                format!("cannot put the terminal in raw mode: {error}"),
                "Run the monitor with input from a file or /dev/null (it then reads no keys).",
            )
        })?;
        RAW_MODE.store(true, Ordering::SeqCst);
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Reads key presses on a thread (crossterm's read blocks) while the port is read here.
fn spawn_keyboard() -> mpsc::Receiver<KeyEvent> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if let Event::Key(key) = event {
                if sender.send(key).is_err() {
                    break;
                }
            }
        }
    });
    receiver
}

/// Where the board's output goes: stdout, with bare line feeds turned into CR LF where a
/// terminal in raw mode shows them (stdout, and stderr for the status lines).
struct Screen {
    raw: bool,
    raw_status: bool,
    last: u8,
}

impl Screen {
    fn bytes(&mut self, bytes: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        if self.raw {
            let mut shown = Vec::with_capacity(bytes.len() + 8);
            for &byte in bytes {
                if byte == b'\n' && self.last != b'\r' {
                    shown.push(b'\r');
                }
                shown.push(byte);
                self.last = byte;
            }
            let _ = stdout.write_all(&shown);
        } else {
            let _ = stdout.write_all(bytes);
            if let Some(&last) = bytes.last() {
                self.last = last;
            }
        }
        let _ = stdout.flush();
    }

    /// A line of the monitor's own among the board's output.
    fn note(&mut self, text: &str) {
        let end = if self.raw { "\r\n" } else { "\n" };
        let start = if self.last == b'\n' { "" } else { end };
        self.bytes(format!("{start}{NOTE_PREFIX}{text}{end}").as_bytes());
    }

    /// A status line, on stderr.
    fn status(&self, text: &str) {
        let end = if self.raw_status { "\r\n" } else { "\n" };
        let text = text.replace('\n', end);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{text}{end}");
        let _ = stderr.flush();
    }
}

/// Which rate the monitor reads at.
enum Phase {
    /// The ROM's boot log at 74880 baud, until the watch says it is over.
    BootLog(BootLogWatch),
    /// The firmware's output at `--monitor-baud`.
    Firmware,
}

struct Monitor<'a> {
    line: Line,
    options: &'a MonitorOptions,
    decoder: Decoder,
    port: String,
}

impl<'a> Monitor<'a> {
    fn new(mut line: Line, options: &'a MonitorOptions, prepared: Prepared) -> Monitor<'a> {
        line.for_monitor();
        let port = line.name();
        Monitor {
            line,
            options,
            decoder: Decoder::new(prepared.symbols),
            port,
        }
    }

    fn run(mut self, start: Start) -> Result<(), CmdError> {
        let keyboard = std::io::stdin().is_terminal();
        let _raw = keyboard.then(RawMode::enable).transpose()?;
        let keys = keyboard.then(spawn_keyboard);
        let mut screen = Screen {
            raw: keyboard && std::io::stdout().is_terminal(),
            raw_status: keyboard && std::io::stderr().is_terminal(),
            last: b'\n',
        };
        let stop = match (keyboard, self.options.timeout) {
            (true, _) => "Ctrl-] quits, Ctrl-T Ctrl-H shows the keys",
            (false, Some(_)) => "no keys (stdin is not a terminal); it stops after --timeout",
            (false, None) => {
                "no keys (stdin is not a terminal); it stops when the port goes away (--timeout sets a limit)"
            }
        };
        screen.status(&format!(
            "--- esp-flasher monitor on {}: the ROM's boot log at {BOOT_LOG_BAUD} baud, then {} baud; {stop} ---",
            self.port, self.options.monitor_baud
        ));
        // On the line's clock: the virtual chip's time on emu:, real time on a port.
        let deadline = self
            .options
            .timeout
            .and_then(|timeout| self.line.clock().checked_add(timeout));
        let mut phase = match start {
            Start::Reset => self.reset(&mut screen)?,
            Start::BootLog => self.boot_log_phase()?,
            Start::Attach => {
                self.set_baud(self.options.monitor_baud)?;
                Phase::Firmware
            }
        };
        let (clock_start, wall_start) = (self.line.clock(), Instant::now());
        let mut menu = Keys::default();
        let mut buffer = vec![0u8; 4096];
        let mut pieces = Vec::new();
        loop {
            if deadline.is_some_and(|deadline| self.line.clock() >= deadline) {
                screen.status("--- monitor: --timeout reached ---");
                return Ok(());
            }
            while let Some(key) = keys.as_ref().and_then(|keys| keys.try_recv().ok()) {
                match menu.action(key) {
                    KeyAction::Quit => return Ok(()),
                    KeyAction::Send(bytes) => self
                        .line
                        .write_all(&bytes)
                        .map_err(|error| self.vanished(&error))?,
                    KeyAction::Reset => phase = self.reset(&mut screen)?,
                    KeyAction::Help => screen.status(HELP),
                    KeyAction::UnknownCommand => {
                        screen.status("--- not a monitor command: Ctrl-T Ctrl-H shows the keys ---")
                    }
                    KeyAction::Menu | KeyAction::Nothing => {}
                }
            }
            let count = self
                .line
                .read(&mut buffer, POLL)
                .map_err(|error| self.vanished(&error))?;
            let now = self.line.clock();
            // The virtual chip's clock runs ahead of the wall's when it has nothing to say:
            // wait for the wall, so that a second of its output takes a second to watch.
            let ahead = now
                .saturating_sub(clock_start)
                .saturating_sub(wall_start.elapsed());
            if !ahead.is_zero() {
                std::thread::sleep(ahead.min(POLL));
            }
            if count > 0 {
                self.decoder.feed(&buffer[..count], &mut pieces);
            }
            for piece in pieces.drain(..) {
                match piece {
                    Piece::Bytes(bytes) => screen.bytes(&bytes),
                    Piece::Note(note) => screen.note(&note),
                    Piece::LineEnded(kind) => {
                        if let Phase::BootLog(watch) = &mut phase {
                            watch.line(kind);
                        }
                    }
                }
            }
            if let Phase::BootLog(watch) = &mut phase {
                if count > 0 {
                    watch.bytes(now);
                }
                if watch.boot_log_over(now) {
                    self.set_baud(self.options.monitor_baud)?;
                    phase = Phase::Firmware;
                }
            }
        }
    }

    /// Resets the board into its firmware, as esptool's hard reset does (EN pulsed low
    /// through RTS, GPIO0 left high), and starts reading its boot log.
    fn reset(&mut self, screen: &mut Screen) -> Result<Phase, CmdError> {
        self.set_baud(BOOT_LOG_BAUD)?;
        let lines = [self.line.set_dtr(false), self.line.set_rts(true)];
        let mut supported = true;
        for result in lines {
            supported &= result.map_err(|error| self.vanished(&error))? == LineControl::Set;
        }
        if supported {
            self.line
                .discard_input()
                .map_err(|error| self.vanished(&error))?;
            self.line.sleep(RESET_PULSE);
            self.line
                .set_rts(false)
                .map_err(|error| self.vanished(&error))?;
            screen.status("--- monitor: reset the board (EN pulsed through RTS, GPIO0 high) ---");
        } else {
            screen.status(&format!(
                "--- monitor: {} has no DTR/RTS lines, so the board was not reset; reset it by hand to see its boot log ---",
                self.port
            ));
        }
        Ok(Phase::BootLog(BootLogWatch::new(self.line.clock())))
    }

    fn boot_log_phase(&mut self) -> Result<Phase, CmdError> {
        self.set_baud(BOOT_LOG_BAUD)?;
        Ok(Phase::BootLog(BootLogWatch::new(self.line.clock())))
    }

    fn set_baud(&mut self, baud: u32) -> Result<(), CmdError> {
        self.line.set_baud(baud).map_err(|error| {
            CmdError::failed(
                format!("{} cannot be set to {baud} baud: {error}", self.port),
                "Use a rate the adapter supports (--monitor-baud).",
            )
        })
    }

    /// The port went away (unplugged, the emulator ended): one line, exit 1.
    fn vanished(&self, error: &std::io::Error) -> CmdError {
        CmdError::Failed {
            message: format!(
                "the port {} went away ({error}): was the board unplugged?",
                self.port
            ),
            remedy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn keys_quit_reset_help_and_pass_through() {
        let ctrl = KeyModifiers::CONTROL;
        let none = KeyModifiers::NONE;
        let mut keys = Keys::default();
        assert_eq!(
            keys.action(press(KeyCode::Char('a'), none)),
            KeyAction::Send(b"a".to_vec())
        );
        assert_eq!(
            keys.action(press(KeyCode::Enter, none)),
            KeyAction::Send(b"\r\n".to_vec())
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('c'), ctrl)),
            KeyAction::Send(vec![3])
        );
        assert_eq!(
            keys.action(press(KeyCode::Char(']'), ctrl)),
            KeyAction::Quit
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('5'), ctrl)),
            KeyAction::Quit
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Menu
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('r'), ctrl)),
            KeyAction::Reset
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Menu
        );
        // Ctrl-H arrives as Backspace from most terminals.
        assert_eq!(
            keys.action(press(KeyCode::Backspace, none)),
            KeyAction::Help
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Menu
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('h'), ctrl)),
            KeyAction::Help
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Menu
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Send(vec![0x14])
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('t'), ctrl)),
            KeyAction::Menu
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('z'), none)),
            KeyAction::UnknownCommand
        );
        assert_eq!(
            keys.action(press(KeyCode::Char('r'), ctrl)),
            KeyAction::Send(vec![0x12])
        );
        let mut release = press(KeyCode::Char('a'), none);
        release.kind = KeyEventKind::Release;
        assert_eq!(keys.action(release), KeyAction::Nothing);
    }

    #[test]
    fn the_command_before_leaves_the_hard_reset_to_the_monitor() {
        assert_eq!(session_after(AfterArg::HardReset), AfterArg::NoReset);
        assert_eq!(session_after(AfterArg::SoftReset), AfterArg::SoftReset);
        assert_eq!(session_after(AfterArg::NoReset), AfterArg::NoReset);
    }
}
