//! What the user sees: esptool-style lines on stdout, warnings and errors on
//! stderr, and progress as indicatif bars (stderr is a terminal) or plain lines.
//! With `--json` the esptool-style lines go to stderr too, and stdout carries only the
//! JSON document (see `crate::json`), built from the result a command hands to
//! [`Output::result`].
//! One board of a many-board run has its own [`Output`] ([`Output::for_board`]): its lines
//! go to stderr prefixed with its port, its bars into the run's shared `MultiProgress`.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use esp_flasher::progress::Operation;
use esp_flasher::{ChipInfo, Event, ProgressSink};
use esp_protocol::image::FlashParamsPatch;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The terminal: keeps the "Connecting...." line whole and owns the progress bar.
#[derive(Debug)]
pub struct Output {
    /// A line was started with [`Output::part`] and not ended yet.
    open_line: Cell<bool>,
    /// stderr is a terminal, so progress is drawn as a bar.
    bars: bool,
    /// Print every byte on the line (`--trace`).
    pub trace: bool,
    /// `--json`: every line goes to stderr, stdout is kept for the JSON document.
    json: bool,
    /// The command's result for the JSON document, as the command last gave it.
    result: RefCell<Option<serde_json::Value>>,
    /// Set when this is one board of a many-board run.
    board: Option<BoardOutput>,
}

/// One board's share of a many-board run's terminal, and what it learnt about its chip.
#[derive(Debug)]
struct BoardOutput {
    /// "[PORT] ", in front of every line.
    prefix: String,
    /// The run's bars, when stderr is a terminal.
    multi: Option<MultiProgress>,
    /// Text of a line begun with [`Output::part`].
    pending: RefCell<String>,
    facts: RefCell<BoardFacts>,
}

/// What a board's session found, for the many-board summary.
#[derive(Debug, Clone, Default)]
pub struct BoardFacts {
    /// esptool's description of the chip ("ESP8266EX").
    pub chip: Option<String>,
    /// The station MAC.
    pub mac: Option<[u8; 6]>,
    /// The flash size the JEDEC ID gives, in bytes.
    pub flash_size: Option<u32>,
    /// The output file the command wrote (a template expanded).
    pub file: Option<PathBuf>,
}

impl Output {
    /// Output for this process: bars only when stderr is a terminal.
    pub fn new(trace: bool) -> Rc<Output> {
        Output::build(trace, false)
    }

    /// Output for `--json`: the same lines and bars, all on stderr.
    pub fn json(trace: bool) -> Rc<Output> {
        Output::build(trace, true)
    }

    fn build(trace: bool, json: bool) -> Rc<Output> {
        Rc::new(Output {
            open_line: Cell::new(false),
            bars: std::io::stderr().is_terminal(),
            trace,
            json,
            result: RefCell::new(None),
            board: None,
        })
    }

    /// Keeps `value` as the command's result for the JSON document (the last one given wins).
    pub fn result(&self, value: &impl serde::Serialize) {
        if self.json {
            let value = serde_json::to_value(value).expect("results serialise to JSON");
            self.result.replace(Some(value));
        }
    }

    /// True with `--json`: stdout is kept for the JSON document.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The result [`Output::result`] kept, if any.
    pub fn take_result(&self) -> Option<serde_json::Value> {
        self.result.take()
    }

    /// Output for a many-board run itself (its checks before the boards start): every line
    /// on stderr, so that stdout holds only the summary.
    pub fn for_run(trace: bool) -> Rc<Output> {
        Self::with_prefix(trace, String::new(), None)
    }

    /// Output for the board on `port` in a many-board run: every line goes to stderr behind
    /// "[PORT] "; progress is drawn in `multi` when given (stderr is a terminal), else
    /// printed as lines.
    pub fn for_board(trace: bool, port: &str, multi: Option<MultiProgress>) -> Rc<Output> {
        Self::with_prefix(trace, format!("[{port}] "), multi)
    }

    /// Output whose every line goes to stderr behind `prefix`.
    fn with_prefix(trace: bool, prefix: String, multi: Option<MultiProgress>) -> Rc<Output> {
        Rc::new(Output {
            open_line: Cell::new(false),
            bars: multi.is_some(),
            trace,
            json: false,
            result: RefCell::new(None),
            board: Some(BoardOutput {
                prefix,
                multi,
                pending: RefCell::new(String::new()),
                facts: RefCell::new(BoardFacts::default()),
            }),
        })
    }

    /// Prints a line on stdout (stderr with `--json`).
    pub fn line(&self, text: impl AsRef<str>) {
        self.end_line();
        match &self.board {
            Some(board) => board.emit(text.as_ref()),
            None if self.json => eprintln!("{}", text.as_ref()),
            None => println!("{}", text.as_ref()),
        }
    }

    /// Prints text on stdout (stderr with `--json`) without ending the line.
    pub fn part(&self, text: &str) {
        self.open_line.set(true);
        if let Some(board) = &self.board {
            board.pending.borrow_mut().push_str(text);
            return;
        }
        // A failed flush only delays the text.
        let _ = match self.json {
            true => {
                eprint!("{text}");
                std::io::stderr().flush()
            }
            false => {
                print!("{text}");
                std::io::stdout().flush()
            }
        };
    }

    /// Prints "Warning: ..." on stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        self.end_line();
        match &self.board {
            Some(board) => board.emit(&format!("Warning: {}", text.as_ref())),
            None => eprintln!("Warning: {}", text.as_ref()),
        }
    }

    /// Prints "error: ..." on stderr, and the remedy on the next line if there is one.
    pub fn error(&self, message: &str, remedy: Option<&str>) {
        self.end_line();
        let Some(board) = &self.board else {
            eprintln!("error: {message}");
            if let Some(remedy) = remedy {
                eprintln!("{remedy}");
            }
            return;
        };
        board.emit(&format!("error: {message}"));
        if let Some(remedy) = remedy {
            board.emit(remedy);
        }
    }

    /// Ends a line begun with [`Output::part`].
    pub fn end_line(&self) {
        if self.open_line.replace(false) {
            match &self.board {
                Some(board) => {
                    let text = board.pending.take();
                    board.emit(&text);
                }
                None if self.json => eprintln!(),
                None => println!(),
            }
        }
    }

    /// Notes the output file the command writes, for the many-board summary.
    pub fn note_file(&self, path: &Path) {
        if let Some(board) = &self.board {
            board.facts.borrow_mut().file = Some(path.to_path_buf());
        }
    }

    /// What this board's session found (many-board runs; empty otherwise).
    pub fn board_facts(&self) -> BoardFacts {
        self.board
            .as_ref()
            .map(|board| board.facts.borrow().clone())
            .unwrap_or_default()
    }

    /// Notes the connected chip, for the summary and the progress bars' names.
    fn note_chip(&self, chip: &ChipInfo) {
        if let Some(board) = &self.board {
            let mut facts = board.facts.borrow_mut();
            facts.chip = Some(chip.description.clone());
            facts.mac = Some(chip.mac);
        }
    }

    /// Notes the flash size the chip's JEDEC ID gives.
    fn note_flash_size(&self, size: u32) {
        if let Some(board) = &self.board {
            board.facts.borrow_mut().flash_size = Some(size);
        }
    }

    /// A new progress bar: in the run's `MultiProgress`, named by port and MAC, for a board
    /// of a many-board run; on its own otherwise.
    fn new_bar(&self, total: u64, style: ProgressStyle, label: String) -> ProgressBar {
        let bar = ProgressBar::new(total).with_style(style);
        let Some(board) = &self.board else {
            bar.set_message(label);
            return bar;
        };
        let multi = board
            .multi
            .as_ref()
            .expect("bars only with a MultiProgress");
        let bar = multi.add(bar);
        let mac = board
            .facts
            .borrow()
            .mac
            .map(|mac| esp_flasher::chip::format_mac(&mac));
        let name = board.prefix.trim_end();
        bar.set_message(match mac {
            Some(mac) => format!("{name} {mac} {label}"),
            None => format!("{name} {label}"),
        });
        bar
    }
}

impl BoardOutput {
    /// One line of this board's on stderr, above the bars when there are bars.
    fn emit(&self, text: &str) {
        let line = format!("{}{text}", self.prefix);
        match &self.multi {
            // Only fails when stderr is gone: nothing is left to tell.
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// Turns the library's events into lines and progress.
pub struct Reporter {
    out: Rc<Output>,
    /// The port, for "Connected to ESP8266 on PORT:".
    port: String,
    progress: RefCell<Option<Progress>>,
    /// A stub segment was uploaded in this session.
    stub_uploaded: bool,
}

impl Reporter {
    /// A reporter for a session on `port`.
    pub fn new(out: Rc<Output>, port: &str) -> Reporter {
        Reporter {
            out,
            port: port.to_string(),
            progress: RefCell::new(None),
            stub_uploaded: false,
        }
    }
}

impl ProgressSink for Reporter {
    fn event(&mut self, event: &Event) {
        let out = &self.out;
        match event {
            Event::Connecting { attempt: 1 } => out.part("Connecting..."),
            Event::Connecting { .. } => out.part("."),
            Event::Garbage { bytes } if out.trace => {
                out.line(format!("TRACE garbage: {}", hex_dump(bytes)))
            }
            Event::Garbage { .. } => {}
            Event::Connected(chip) => {
                out.note_chip(chip);
                out.line(format!("Connected to ESP8266 on {}:", self.port));
                out.line(format!("{:<20}{}", "Chip type:", chip.description));
                let features = chip.kind.features().join(", ");
                out.line(format!("{:<20}{features}", "Features:"));
                out.line(format!("{:<20}{}", "MAC:", chip.mac_string()));
                out.line("");
            }
            Event::StubRunning if self.stub_uploaded => out.line("Stub flasher running."),
            Event::StubRunning => {
                out.line("Stub flasher is already running. No upload is necessary.")
            }
            Event::BaudChanged { baud } => out.line(format!("Changed baud rate to {baud}.")),
            Event::FlashDetected { size, .. } => {
                if let Some(size) = size {
                    out.note_flash_size(*size);
                }
            }
            Event::Started {
                operation,
                address,
                total,
            } => {
                if *operation == Operation::StubUpload && !self.stub_uploaded {
                    self.stub_uploaded = true;
                    out.line("Uploading stub flasher...");
                }
                let progress = Progress::start(out, *operation, *address, *total);
                if let Some(old) = self.progress.replace(Some(progress)) {
                    old.finish();
                }
            }
            Event::Progress { done, .. } => {
                if let Some(progress) = self.progress.borrow_mut().as_mut() {
                    progress.update(out, *done);
                }
            }
            Event::Finished { .. } => {
                if let Some(progress) = self.progress.take() {
                    progress.finish();
                }
            }
            Event::Retrying {
                operation,
                address,
                attempt,
                reason,
            } => {
                let again = match operation {
                    Operation::Read => "reading it again",
                    Operation::Write => "sending it again",
                    Operation::StubUpload => "uploading the stub again",
                };
                out.warn(format!(
                    "block at {address:#010x} failed ({reason}); {again} (attempt {attempt})"
                ))
            }
            Event::Skipped { address, bytes, .. } if *bytes > 0 => out.line(format!(
                "Skipped {bytes} bytes already in flash at {address:#010x}."
            )),
            Event::Skipped { .. } => {}
            Event::HeaderPatched(patch) => match patch {
                FlashParamsPatch::NotApplicable => {}
                FlashParamsPatch::Changed { .. } | FlashParamsPatch::Unchanged(_) => {
                    out.line(format!("{}.", capitalize(&patch.to_string())))
                }
                FlashParamsPatch::NotAnImage | FlashParamsPatch::InvalidImage(_) => {
                    out.warn(format!("the file at 0x0: {patch}"))
                }
            },
            // Commands print these where esptool does: after "Wrote ...".
            Event::Erased { .. } | Event::Verified { .. } => {}
            Event::Warning(warning) => out.warn(warning.to_string()),
        }
    }
}

/// One operation's progress: a bar on a terminal, else a line every 10 %.
struct Progress {
    bar: Option<ProgressBar>,
    operation: Operation,
    address: u32,
    total: usize,
    /// The last tenth printed as a plain line.
    last_tenth: usize,
}

impl Progress {
    fn start(out: &Output, operation: Operation, address: u32, total: usize) -> Progress {
        let bar = out.bars.then(|| {
            out.end_line();
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> ");
            let label = format!("{} {address:#010x}", verb(operation));
            let bar = out.new_bar(total as u64, style, label);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            operation,
            address,
            total,
            last_tenth: 0,
        }
    }

    fn update(&mut self, out: &Output, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            return;
        }
        let tenth = (done * 10).checked_div(self.total).unwrap_or(10);
        if tenth > self.last_tenth && tenth < 10 && self.operation != Operation::StubUpload {
            self.last_tenth = tenth;
            let percent = tenth * 10;
            match self.operation {
                Operation::Read => {
                    let at = self.address as usize + done;
                    out.line(format!("Reading from {at:#010x}... ({percent} %)"));
                }
                // Writes skip unchanged sectors, so the bytes done say more than an address.
                _ => out.line(format!(
                    "Writing {done} of {} bytes at {:#010x}... ({percent} %)",
                    self.total, self.address
                )),
            }
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The progress label of an operation, as esptool words it.
fn verb(operation: Operation) -> &'static str {
    match operation {
        Operation::Write => "Writing at",
        Operation::Read => "Reading from",
        Operation::StubUpload => "Uploading stub to",
    }
}

/// `text` with its first letter upper-case.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Bytes as space-separated hex, for `--trace` (by hand: the hex crate has no separator).
pub fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A transfer rate as esptool prints it: " (123.4 kbit/s)", or nothing for an instant.
pub fn rate(bytes: usize, seconds: f64) -> String {
    if seconds > 0.0 {
        format!(" ({:.1} kbit/s)", bytes as f64 * 8.0 / 1000.0 / seconds)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_in_kbit_per_second() {
        assert_eq!(rate(1_048_576, 4.3), " (1950.8 kbit/s)");
        assert_eq!(rate(10, 0.0), "");
    }

    #[test]
    fn capitalizes_patch_descriptions() {
        assert_eq!(
            capitalize("flash parameters set to mode dout"),
            "Flash parameters set to mode dout"
        );
        assert_eq!(capitalize(""), "");
    }

    #[test]
    fn hex_dump_spaces_bytes() {
        assert_eq!(hex_dump(&[0xc0, 0x00, 0x08]), "c0 00 08");
    }
}
