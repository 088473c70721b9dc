//! The serial monitor's understanding of what a board prints, with no I/O: [`Decoder`] passes
//! the bytes through untouched and, after a line it recognises, adds a line of its own in
//! words — the ROM's reset cause and boot mode, the exception of a crash dump (the ROM's and
//! the Non-OS SDK's `Fatal exception`, the Arduino core's `Exception (28):`), and, given a
//! [`Symbolize`] (the firmware's ELF, [`elf::ElfSymbols`]), the function and source line of
//! each code address in the dump. [`BootLogWatch`] decides from the same lines when the ROM's
//! boot log (at 74880 baud) is over, so the monitor can change to the firmware's rate without
//! garbling either. The binary owns the port, the terminal and the clock.

pub mod elf;

use std::fmt;
use std::time::Duration;

use esp_protocol::boot_log::{boot_mode_description, ends_rom_log, ResetCause, BANNER_START};
use esp_protocol::exceptions::{cause_description, cause_name};
use esp_protocol::memory_map::{FLASH_CACHE, IRAM, ROM};

/// Longest line the decoder looks at; the bytes of a longer one still pass through.
pub const MAX_LINE: usize = 512;

/// Where in the firmware a code address is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLocation {
    /// The function (from the debug information, else the symbol table).
    pub function: String,
    /// The source file, when the ELF has line information for the address.
    pub file: Option<String>,
    /// The line in `file`.
    pub line: Option<u32>,
}

impl fmt::Display for CodeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.function)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " at {file}:{line}"),
            (Some(file), None) => write!(f, " in {file}"),
            _ => Ok(()),
        }
    }
}

/// Turns a code address into a function and source line.
pub trait Symbolize {
    /// Where `address` is, or `None` when the firmware has nothing there.
    fn locate(&self, address: u32) -> Option<CodeLocation>;
}

/// True for an address in memory the CPU runs code from: the ROM, IRAM, or flash through
/// the cache.
pub fn is_code_address(address: u32) -> bool {
    [ROM, IRAM, FLASH_CACHE]
        .iter()
        .any(|range| range.contains(&address))
}

/// What a complete line is, for [`BootLogWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A line of the ROM's boot log that more of it follows.
    RomLog,
    /// The line after which the ROM prints no more (`csum 0x..`, `ets_main.c`, ...).
    RomLogEnd,
    /// Anything else: the firmware's output (or garbage).
    Other,
}

/// What the monitor shows, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes from the board, as they came.
    Bytes(Vec<u8>),
    /// A line the monitor adds after the board's line (no line end).
    Note(String),
    /// A line from the board ended, of this kind.
    LineEnded(LineKind),
}

/// Where a crash dump is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DumpState {
    Outside,
    /// Between the Arduino core's `>>>stack>>>` and `<<<stack<<<`.
    Stack,
}

/// Decodes the board's byte stream line by line; see the module docs. Feeding the same bytes
/// in any chunks gives the same pieces (bytes merged).
pub struct Decoder {
    line: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: it is not looked at.
    overlong: bool,
    dump: DumpState,
    symbols: Option<Box<dyn Symbolize>>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("line", &String::from_utf8_lossy(&self.line))
            .field("dump", &self.dump)
            .field("symbols", &self.symbols.is_some())
            .finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(None)
    }
}

impl Decoder {
    /// A decoder that names code addresses with `symbols`, if given.
    pub fn new(symbols: Option<Box<dyn Symbolize>>) -> Decoder {
        Decoder {
            line: Vec::new(),
            overlong: false,
            dump: DumpState::Outside,
            symbols,
        }
    }

    /// Takes the next bytes from the board; appends what to show to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        let mut start = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            if byte != b'\n' {
                if self.line.len() < MAX_LINE {
                    self.line.push(byte);
                } else {
                    self.overlong = true;
                }
                continue;
            }
            push_bytes(out, &bytes[start..=index]);
            start = index + 1;
            let line = std::mem::take(&mut self.line);
            let kind = if std::mem::take(&mut self.overlong) {
                self.dump = DumpState::Outside;
                LineKind::Other
            } else {
                self.decode_line(&String::from_utf8_lossy(&line), out)
            };
            out.push(Piece::LineEnded(kind));
        }
        push_bytes(out, &bytes[start..]);
    }

    /// Adds the notes for one complete line and says what kind it is.
    fn decode_line(&mut self, raw: &str, out: &mut Vec<Piece>) -> LineKind {
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if let Some(note) = banner_note(line) {
            out.push(Piece::Note(note));
            return LineKind::RomLog;
        }
        if let Some(cause) = exception_cause(line) {
            out.push(Piece::Note(format!(
                "exception {cause} = {}: {}",
                cause_name(cause),
                cause_description(cause)
            )));
            return LineKind::Other;
        }
        if line.contains("epc1=0x") {
            self.register_notes(line, out);
            return LineKind::Other;
        }
        match line {
            ">>>stack>>>" => self.dump = DumpState::Stack,
            "<<<stack<<<" => self.dump = DumpState::Outside,
            _ if self.dump == DumpState::Stack => self.stack_notes(line, out),
            _ => {}
        }
        if ends_rom_log(line) {
            LineKind::RomLogEnd
        } else if is_rom_log_line(line) {
            LineKind::RomLog
        } else {
            LineKind::Other
        }
    }

    /// `epc1=0x40201234, epc2=0x00000000, ..., excvaddr=0x00000000, depc=0x00000000`.
    fn register_notes(&self, line: &str, out: &mut Vec<Piece>) {
        for (name, value) in registers(line) {
            let in_code = is_code_address(value);
            let located = match (&self.symbols, name) {
                (Some(symbols), "epc1" | "epc2" | "epc3" | "depc") if value != 0 => {
                    symbols.locate(value)
                }
                (Some(symbols), "excvaddr") if in_code => symbols.locate(value),
                _ => None,
            };
            if let Some(location) = located {
                out.push(Piece::Note(format!("{name} 0x{value:08x}: {location}")));
            } else if name == "excvaddr" && value < 0x1000 {
                out.push(Piece::Note(format!(
                    "excvaddr 0x{value:08x}: the access was near address 0, a NULL pointer (plus an offset)"
                )));
            }
        }
    }

    /// `3ffffe20:  3fffdad0 40201234 3ffee6c4 40202e55`: each word that is a code address the
    /// ELF knows.
    fn stack_notes(&self, line: &str, out: &mut Vec<Piece>) {
        let Some(symbols) = &self.symbols else {
            return;
        };
        let Some((address, words)) = line.split_once(':') else {
            return;
        };
        if u32::from_str_radix(address.trim(), 16).is_err() {
            return;
        }
        for word in words.split_whitespace() {
            let Ok(value) = u32::from_str_radix(word, 16) else {
                return;
            };
            if !is_code_address(value) {
                continue;
            }
            if let Some(location) = symbols.locate(value) {
                out.push(Piece::Note(format!("0x{value:08x}: {location}")));
            }
        }
    }
}

/// Appends bytes to the last [`Piece::Bytes`] if that is the last piece.
fn push_bytes(out: &mut Vec<Piece>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Piece::Bytes(previous)) => previous.extend_from_slice(bytes),
        _ => out.push(Piece::Bytes(bytes.to_vec())),
    }
}

/// `ets Jan  8 2013,rst cause:2, boot mode:(3,6)` in words.
fn banner_note(line: &str) -> Option<String> {
    let rest = &line[line.find(BANNER_START)? + BANNER_START.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number: u32 = digits.parse().ok()?;
    let cause = match ResetCause::from_number(number) {
        Some(cause) => format!("rst cause {number} = {}", cause.description()),
        None => format!("rst cause {number} = not a cause Espressif documents"),
    };
    let mode = rest
        .split_once("boot mode:(")
        .and_then(|(_, mode)| mode.split_once(')'))
        .map(|(mode, _)| mode);
    let strapping = mode.and_then(|mode| mode.split(',').next()?.trim().parse::<u32>().ok());
    Some(match (mode, strapping) {
        (Some(mode), Some(strapping)) => format!(
            "{cause}; boot mode ({mode}) = {}",
            boot_mode_description(strapping)
        ),
        _ => cause,
    })
}

/// The cause number of `Fatal exception (28):` (ROM), `Fatal exception 28(LoadProhibitedCause):`
/// (Non-OS SDK) or `Exception (28):` (Arduino core).
fn exception_cause(line: &str) -> Option<u32> {
    let rest = line
        .strip_prefix("Fatal exception")
        .or_else(|| line.strip_prefix("Exception"))?;
    let rest = rest.trim_start_matches([' ', '(']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if digits.is_empty() || digits.len() > 3 || !after.contains(':') {
        return None;
    }
    digits.parse().ok()
}

/// The `name=0xHEX` pairs of a register line.
fn registers(line: &str) -> impl Iterator<Item = (&str, u32)> {
    line.split([',', ' '])
        .filter_map(|pair| pair.split_once("=0x"))
        .filter_map(|(name, hex)| Some((name.trim(), u32::from_str_radix(hex.trim(), 16).ok()?)))
}

/// A line the ROM prints while it boots (besides the first and the last).
fn is_rom_log_line(line: &str) -> bool {
    line.is_empty()
        || ["load 0x", "tail ", "chksum 0x", "ho ", "room "]
            .iter()
            .any(|start| line.starts_with(start))
        || line == "wdt reset"
}

/// How long the line must stay quiet after the ROM's last line before the rate changes:
/// what the ROM prints after `csum` (`csum err`, `ets_main.c`) follows at once, and what a
/// second-stage loader prints at 74880 right after comes within it too, while the firmware
/// takes longer to set its own rate up.
pub const BOOT_LOG_QUIET: Duration = Duration::from_millis(30);
/// How long to wait for the ROM's first line after a reset before taking the board for one
/// that did not reset (no auto-reset wiring) and changing to the firmware's rate.
pub const BOOT_LOG_WAIT: Duration = Duration::from_millis(1500);

/// Decides when the ROM's boot log is over, from the lines the [`Decoder`] reports and the
/// time of the last byte (on the line's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLogWatch {
    started: Duration,
    last_byte: Option<Duration>,
    rom_log_ended: bool,
    firmware_line_seen: bool,
}

impl BootLogWatch {
    /// Starts watching at `now`, right after the reset.
    pub fn new(now: Duration) -> BootLogWatch {
        BootLogWatch {
            started: now,
            last_byte: None,
            rom_log_ended: false,
            firmware_line_seen: false,
        }
    }

    /// Bytes arrived at `now`.
    pub fn bytes(&mut self, now: Duration) {
        self.last_byte = Some(now);
    }

    /// A line of `kind` ended.
    pub fn line(&mut self, kind: LineKind) {
        match kind {
            LineKind::RomLogEnd => self.rom_log_ended = true,
            // Before the ROM's log ended: not the ROM at 74880, so the board did not reset
            // (or nothing will make sense at this rate). After: the second-stage loader.
            LineKind::Other if !self.rom_log_ended => self.firmware_line_seen = true,
            _ => {}
        }
    }

    /// True once the rate should change to the firmware's.
    pub fn boot_log_over(&self, now: Duration) -> bool {
        if self.firmware_line_seen {
            return true;
        }
        match self.last_byte {
            None => now.saturating_sub(self.started) >= BOOT_LOG_WAIT,
            Some(last) => self.rom_log_ended && now.saturating_sub(last) >= BOOT_LOG_QUIET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pieces as one text: bytes as they are, each note on its own line after `[note] `.
    fn render(pieces: &[Piece]) -> String {
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => text.push_str(&String::from_utf8_lossy(bytes)),
                Piece::Note(note) => text.push_str(&format!("[note] {note}\n")),
                Piece::LineEnded(kind) => text.push_str(&format!("[{kind:?}]")),
            }
        }
        text
    }

    fn decode(text: &str) -> String {
        let mut out = Vec::new();
        Decoder::default().feed(text.as_bytes(), &mut out);
        render(&out)
    }

    fn notes(decoder: &mut Decoder, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        decoder.feed(text.as_bytes(), &mut out);
        out.into_iter()
            .filter_map(|piece| match piece {
                Piece::Note(note) => Some(note),
                _ => None,
            })
            .collect()
    }

    /// A symbol table of two functions, as an ELF would give.
    struct TwoFunctions;

    impl Symbolize for TwoFunctions {
        fn locate(&self, address: u32) -> Option<CodeLocation> {
            let (function, line) = match address {
                0x4020_1000..0x4020_1040 => ("crash_now", 12),
                0x4010_0000..0x4010_0100 => ("program_entry", 40),
                _ => return None,
            };
            Some(CodeLocation {
                function: function.into(),
                file: Some("crash.c".into()),
                line: Some(line),
            })
        }
    }

    #[test]
    fn the_rom_banner_gets_its_cause_and_mode_in_words() {
        let text = decode("\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n");
        assert_eq!(
            text,
            "\r\n[RomLog] ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\
             [note] rst cause 2 = external reset (the EN/RST pin or the adapter's auto-reset; also waking from deep sleep); \
             boot mode (3,6) = flash boot (GPIO0 high): the firmware in flash runs\n[RomLog]"
        );
        let watchdog = decode(" ets Jan  8 2013,rst cause:4, boot mode:(1,7)\n");
        assert!(watchdog.contains("rst cause 4 = hardware watchdog reset"));
        assert!(watchdog.contains("boot mode (1,7) = UART download mode"));
        assert!(decode(" ets Jan  8 2013,rst cause:9, boot mode:(3,6)\n")
            .contains("rst cause 9 = not a cause Espressif documents"));
    }

    #[test]
    fn exception_lines_of_the_rom_the_sdk_and_arduino() {
        for line in [
            "Fatal exception (28): \r\n",
            "Fatal exception 28(LoadProhibitedCause):\n",
            "Exception (28):\n",
        ] {
            let text = decode(line);
            assert!(
                text.ends_with(
                    "[note] exception 28 = LoadProhibited: a load from an address where nothing can \
                     be read (often a NULL or freed pointer)\n[Other]"
                ),
                "{line:?} gave {text:?}"
            );
        }
        assert!(decode("Exception (3):\n").contains("exception 3 = LoadStoreError"));
        // Not dumps: no note.
        for line in [
            "Exception handling is fun\n",
            "Exception (28) is bad\n",
            "Fatal exception\n",
        ] {
            assert!(!decode(line).contains("[note]"), "{line}");
        }
    }

    #[test]
    fn registers_and_the_stack_name_code_with_symbols_only() {
        let registers = "epc1=0x40201010, epc2=0x00000000, epc3=0x00000000, excvaddr=0x00000004, depc=0x00000000\n";
        let mut plain = Decoder::default();
        assert_eq!(
            notes(&mut plain, registers),
            ["excvaddr 0x00000004: the access was near address 0, a NULL pointer (plus an offset)"]
        );
        let mut decoder = Decoder::new(Some(Box::new(TwoFunctions)));
        assert_eq!(
            notes(&mut decoder, registers),
            [
                "epc1 0x40201010: crash_now at crash.c:12",
                "excvaddr 0x00000004: the access was near address 0, a NULL pointer (plus an offset)"
            ]
        );
        let stack = ">>>stack>>>\n\nctx: cont\nsp: 3ffffe20 end: 3fffffc0 offset: 01a0\n\
                     3ffffe20:  3fffdad0 40201004 3ffee6c4 40100010  \n<<<stack<<<\n\
                     3ffffe30:  40201004 40201004 40201004 40201004\n";
        assert_eq!(
            notes(&mut decoder, stack),
            [
                "0x40201004: crash_now at crash.c:12",
                "0x40100010: program_entry at crash.c:40"
            ]
        );
        assert!(notes(&mut plain, stack).is_empty());
    }

    #[test]
    fn the_rom_log_lines_and_its_end() {
        let log = "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nload 0x4010f000, len 3424, room 16 \r\ntail 0\r\nchksum 0x2e\r\ncsum 0x2e\r\nv00048810\r\n";
        let mut out = Vec::new();
        Decoder::default().feed(log.as_bytes(), &mut out);
        let kinds: Vec<LineKind> = out
            .iter()
            .filter_map(|piece| match piece {
                Piece::LineEnded(kind) => Some(*kind),
                _ => None,
            })
            .collect();
        use LineKind::*;
        assert_eq!(
            kinds,
            [RomLog, RomLog, RomLog, RomLog, RomLog, RomLog, RomLogEnd, Other]
        );
    }

    #[test]
    fn an_overlong_line_passes_through_unread() {
        let long = format!("{} Exception (28):\n", "x".repeat(MAX_LINE));
        let mut out = Vec::new();
        Decoder::default().feed(long.as_bytes(), &mut out);
        assert_eq!(
            out,
            [
                Piece::Bytes(long.clone().into_bytes()),
                Piece::LineEnded(LineKind::Other)
            ]
        );
    }

    #[test]
    fn the_boot_log_ends_after_its_last_line_and_a_quiet_moment() {
        let ms = Duration::from_millis;
        let mut watch = BootLogWatch::new(ms(100));
        assert!(!watch.boot_log_over(ms(100) + BOOT_LOG_WAIT - ms(1)));
        assert!(
            watch.boot_log_over(ms(100) + BOOT_LOG_WAIT),
            "no boot log at all"
        );
        watch.bytes(ms(300));
        watch.line(LineKind::RomLog);
        assert!(!watch.boot_log_over(ms(5000)), "the ROM is still printing");
        watch.line(LineKind::RomLogEnd);
        assert!(!watch.boot_log_over(ms(300) + BOOT_LOG_QUIET - ms(1)));
        watch.bytes(ms(320));
        watch.line(LineKind::Other); // eboot's `~ld` at 74880, after the ROM's log
        assert!(!watch.boot_log_over(ms(320) + BOOT_LOG_QUIET - ms(1)));
        assert!(watch.boot_log_over(ms(320) + BOOT_LOG_QUIET));
        let mut garbled = BootLogWatch::new(ms(0));
        garbled.bytes(ms(10));
        garbled.line(LineKind::Other);
        assert!(garbled.boot_log_over(ms(10)), "not the ROM: change at once");
    }

    /// A boot log, a crash dump and a stack with code addresses, as one stream.
    const SAMPLE: &str = "\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nload 0x4010f000, len 3424, room 16 \r\n\
        tail 0\r\nchksum 0x2e\r\ncsum 0x2e\r\nhello\r\nException (28):\nepc1=0x40201010 epc2=0x00000000 \
        epc3=0x00000000 excvaddr=0x00000000 depc=0x00000000\n\n>>>stack>>>\n3ffffe20:  3fffdad0 40201004 3ffee6c4 40100010\n<<<stack<<<\n";

    proptest! {
        #[test]
        fn chunking_changes_nothing(cuts in proptest::collection::vec(0..SAMPLE.len(), 0..12)) {
            let mut whole = Vec::new();
            Decoder::new(Some(Box::new(TwoFunctions))).feed(SAMPLE.as_bytes(), &mut whole);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunked = Vec::new();
            let mut decoder = Decoder::new(Some(Box::new(TwoFunctions)));
            let mut start = 0;
            for cut in cuts.into_iter().chain([SAMPLE.len()]) {
                decoder.feed(&SAMPLE.as_bytes()[start..cut], &mut chunked);
                start = cut;
            }
            prop_assert_eq!(render(&chunked), render(&whole));
        }

        #[test]
        fn any_bytes_pass_through_unchanged_and_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)
        ) {
            let mut decoder = Decoder::new(Some(Box::new(TwoFunctions)));
            let mut out = Vec::new();
            for chunk in &chunks {
                decoder.feed(chunk, &mut out);
            }
            let passed: Vec<u8> = out
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Bytes(bytes) => Some(bytes.as_slice()),
                    _ => None,
                })
                .flatten()
                .copied()
                .collect();
            prop_assert_eq!(passed, chunks.concat());
        }

        #[test]
        fn dump_shaped_lines_never_panic(
            cause in "[0-9]{0,12}",
            words in proptest::collection::vec("[0-9a-fA-F=x ,:]{0,20}", 0..6)
        ) {
            let text = format!(
                "Fatal exception ({cause}):\nepc1=0x{}\n>>>stack>>>\n{}\n ets Jan  8 2013,rst cause:{cause}, boot mode:({})\n",
                words.join(""),
                words.join(" "),
                words.join(",")
            );
            let mut out = Vec::new();
            Decoder::new(Some(Box::new(TwoFunctions))).feed(text.as_bytes(), &mut out);
        }
    }
}
