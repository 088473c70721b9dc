//! Commands and responses over a [`Transport`]: SLIP framing, per-command
//! timeouts, resets and SYNC.
//!
//! Frames that are not the awaited response are skipped: stale responses
//! (the ROM answers SYNC eight times) silently, anything else reported as
//! [`Event::Garbage`], as are bytes outside frames (a boot log).

use std::collections::VecDeque;
use std::time::Duration;

use esp_protocol::boot_log::{self, BOOT_LOG_BAUD};
use esp_protocol::packet::{Command, Opcode, Response, SYNC_REPLIES};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::status::Status;

use crate::error::{Error, Result};
use crate::progress::{Event, ProgressSink, Warning};
use crate::transport::{LineControl, Transport};

/// esptool's timeout for ordinary commands.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// esptool's timeout for one SYNC.
pub const SYNC_TIMEOUT: Duration = Duration::from_millis(100);
/// esptool's timeout for ERASE_FLASH.
pub const CHIP_ERASE_TIMEOUT: Duration = Duration::from_secs(120);
/// esptool's timeout for MEM_END on the ROM (it may jump away without answering).
pub const MEM_END_ROM_TIMEOUT: Duration = Duration::from_millis(200);
/// Seconds per megabyte esptool allows for SPI_FLASH_MD5.
pub const MD5_SECONDS_PER_MB: f64 = 8.0;
/// Seconds per megabyte esptool allows for erasing (ERASE_REGION, FLASH_BEGIN, a data block).
pub const ERASE_SECONDS_PER_MB: f64 = 40.0;

/// A timeout scaled by size as esptool's `timeout_per_mb` does, never below [`DEFAULT_TIMEOUT`].
pub fn timeout_per_mb(seconds_per_mb: f64, size: u32) -> Duration {
    let scaled = Duration::from_secs_f64(seconds_per_mb * size as f64 / 1e6);
    scaled.max(DEFAULT_TIMEOUT)
}

/// What to do before talking to the chip (esptool's `--before`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BeforeReset {
    /// Reset into the loader with DTR/RTS, then SYNC.
    #[default]
    DefaultReset,
    /// SYNC without a reset: the chip is already in the loader.
    NoReset,
    /// Neither reset nor SYNC: the loader is already synchronised.
    NoResetNoSync,
}

/// What to do when done (esptool's `--after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterReset {
    /// Pulse RTS to reset the chip into its firmware.
    #[default]
    HardReset,
    /// Ask the loader to run the firmware (no modem lines needed).
    SoftReset,
    /// Leave the chip in the loader.
    NoReset,
}

/// Which program answers on the chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The mask ROM's serial loader.
    Rom,
    /// A flasher stub uploaded to RAM.
    Stub,
}

/// What the chip showed when it was reset and never answered SYNC: the clue to a wiring
/// problem (see [`Connection::connect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetObserved {
    /// No reset was tried: `--before no_reset`, or the port has no DTR/RTS lines.
    NotReset,
    /// DTR and RTS were pulsed and the chip sent nothing at all: it did not restart. The board
    /// has no auto-reset circuit, or the adapter's driver does not pass the lines.
    Silent,
    /// The chip restarted and its ROM printed this boot mode
    /// ([`esp_protocol::boot_log::BOOT_MODE_FLASH`]: GPIO0 was high, the firmware runs).
    BootMode(u8),
    /// The chip sent something after the reset, but no boot message could be read in it.
    Unrecognised,
}

/// How long the boot message may take to arrive after a reset.
const BOOT_LOG_WAIT: Duration = Duration::from_millis(500);
/// Most bytes read while looking for the boot message: it is about 100.
const BOOT_LOG_MAX: usize = 4096;

/// SYNC rounds per connection attempt (esptool's five).
const SYNCS_PER_ATTEMPT: u32 = 5;
/// How long the line must stay quiet for a drain to end.
const QUIET_TIME: Duration = Duration::from_millis(100);

/// A command/response session over a transport.
pub struct Connection<T: Transport> {
    transport: T,
    decoder: SlipDecoder,
    pending: VecDeque<SlipEvent>,
    progress: Box<dyn ProgressSink>,
    loader: Loader,
    warned_modem_lines: bool,
    /// Garbled input seen so far: bytes outside frames, malformed frames, undecodable replies.
    line_errors: u64,
}

impl<T: Transport> Connection<T> {
    /// A connection over `transport` reporting to `progress`; it assumes the ROM loader.
    pub fn new(transport: T, progress: Box<dyn ProgressSink>) -> Self {
        Connection {
            transport,
            decoder: SlipDecoder::new(),
            pending: VecDeque::new(),
            progress,
            loader: Loader::Rom,
            warned_modem_lines: false,
            line_errors: 0,
        }
    }

    /// The program answering.
    pub fn loader(&self) -> Loader {
        self.loader
    }

    /// Records that a stub now answers (or the ROM again, after a reset).
    pub fn set_loader(&mut self, loader: Loader) {
        self.loader = loader;
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, to change its baud rate or the like.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Ends the session, returning the transport.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Reports an event.
    pub fn report(&mut self, event: Event) {
        if matches!(event, Event::Garbage { .. }) {
            self.line_errors += 1;
        }
        self.progress.event(&event);
    }

    /// How many times garbled input has arrived so far (bytes outside any frame, malformed
    /// frames, replies that do not decode): compare two counts to tell whether a failure
    /// came with corruption on the line or was plain silence.
    pub fn line_errors(&self) -> u64 {
        self.line_errors
    }

    /// Sends one command without waiting for an answer.
    pub fn send(&mut self, command: &Command) -> Result<()> {
        let packet = command.to_bytes().map_err(|source| Error::Encode {
            opcode: command.opcode(),
            source,
        })?;
        self.send_frame(&packet)
    }

    /// Sends `payload` as one SLIP frame (READ_FLASH acknowledgements are bare frames).
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        let mut wire = Vec::with_capacity(payload.len() + 8);
        slip::encode(payload, &mut wire);
        self.transport.write_all(&wire)?;
        Ok(())
    }

    /// The next frame, or `None` when none completes within `timeout`.
    /// Garbage and malformed frames met on the way are reported.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = self.transport.clock() + timeout;
        // Large enough for a 4 KiB READ_FLASH frame many times over: one read per burst.
        let mut buf = vec![0u8; 0x10000];
        loop {
            while let Some(event) = self.pending.pop_front() {
                match event {
                    SlipEvent::Frame(frame) => return Ok(Some(frame)),
                    SlipEvent::Garbage(bytes) => self.report(Event::Garbage { bytes }),
                    SlipEvent::Malformed(_) => self.line_errors += 1,
                }
            }
            let now = self.transport.clock();
            let remaining = deadline.saturating_sub(now);
            let read = if remaining.is_zero() {
                0
            } else {
                self.transport.read(&mut buf, remaining)?
            };
            if read == 0 {
                if self.decoder.in_frame() {
                    // A frame that never ended: its END byte was lost or garbled.
                    self.line_errors += 1;
                }
                self.report_pending_garbage();
                return Ok(None);
            }
            let mut events = Vec::new();
            self.decoder.feed(&buf[..read], &mut events);
            self.pending.extend(events);
        }
    }

    /// A boot log without a frame after it stays in the decoder; show it when the line goes quiet.
    fn report_pending_garbage(&mut self) {
        if !self.decoder.in_frame() && !self.decoder.pending_garbage().is_empty() {
            let bytes = self.decoder.pending_garbage().to_vec();
            self.decoder.reset();
            self.report(Event::Garbage { bytes });
        }
    }

    /// Sends `command` and waits up to `timeout` for the response to its opcode.
    /// A failure status becomes [`Error::Device`].
    pub fn command(&mut self, command: &Command, timeout: Duration) -> Result<Response> {
        let opcode = command.opcode();
        self.send(command)?;
        let response = self.wait_response(opcode, timeout)?;
        match response.status {
            Status::Success => Ok(response),
            Status::Failure { code, .. } => Err(Error::Device { opcode, code }),
        }
    }

    /// Waits for the response to `opcode`, skipping stale responses and reporting other frames.
    fn wait_response(&mut self, opcode: Opcode, timeout: Duration) -> Result<Response> {
        let deadline = self.transport.clock() + timeout;
        loop {
            let remaining = deadline.saturating_sub(self.transport.clock());
            let Some(frame) = self.read_frame(remaining)? else {
                return Err(Error::Timeout {
                    opcode,
                    timeout_ms: timeout.as_millis(),
                });
            };
            match Response::decode(&frame) {
                Ok(response) if response.opcode == opcode as u8 => return Ok(response),
                // A refusal of a command never sent: a request whose opcode the line corrupted.
                Ok(stale) if matches!(stale.status, Status::Failure { .. }) => {
                    self.line_errors += 1
                }
                Ok(_stale) => {}
                Err(_) => self.report(Event::Garbage { bytes: frame }),
            }
        }
    }

    /// Reads and reports whatever arrives until the line is quiet for a moment
    /// (at most `limit` in all): what is left of an interrupted stream.
    pub fn drain(&mut self, limit: Duration) -> Result<()> {
        let end = self.transport.clock() + limit;
        while self.transport.clock() < end {
            if self.read_frame(QUIET_TIME)?.is_none() {
                break;
            }
        }
        self.pending.clear();
        self.decoder.reset();
        Ok(())
    }

    /// One SYNC: on success the extra replies the ROM sends are drained.
    /// Returns the loader that answered (a stub replies with value 0).
    pub fn sync(&mut self) -> Result<Loader> {
        let response = self.command(&Command::Sync, SYNC_TIMEOUT)?;
        // The loader answers SYNC eight times: take the other seven as they come (as esptool
        // does) rather than waiting for the line to go quiet.
        let mut replies = 1;
        while replies < SYNC_REPLIES {
            let Some(frame) = self.read_frame(SYNC_TIMEOUT)? else {
                break;
            };
            if matches!(Response::decode(&frame), Ok(r) if r.opcode == Opcode::Sync as u8) {
                replies += 1;
            } else {
                self.report(Event::Garbage { bytes: frame });
            }
        }
        Ok(if response.value == 0 {
            Loader::Stub
        } else {
            Loader::Rom
        })
    }

    /// Resets the chip as `before` says and synchronises, up to `attempts` times.
    pub fn connect(&mut self, before: BeforeReset, attempts: u32) -> Result<()> {
        if before == BeforeReset::NoResetNoSync {
            return Ok(());
        }
        for attempt in 1..=attempts.max(1) {
            self.report(Event::Connecting { attempt });
            if before == BeforeReset::DefaultReset {
                self.transport.discard_input()?;
                if self.reset_into_loader()? {
                    // Show the boot log, if any, before syncing.
                    self.drain(Duration::from_millis(500))?;
                }
            }
            for _ in 0..SYNCS_PER_ATTEMPT {
                match self.sync() {
                    Ok(loader) => {
                        self.loader = loader;
                        return Ok(());
                    }
                    Err(Error::Timeout { .. }) => self.transport.sleep(Duration::from_millis(50)),
                    Err(other) => return Err(other),
                }
            }
        }
        // DTR/RTS were pulsed: watch one more reset at the boot message's rate, to tell a
        // chip that did not restart from one that restarted into its firmware.
        let reset = if before == BeforeReset::DefaultReset && !self.warned_modem_lines {
            self.observe_reset()?
        } else {
            ResetObserved::NotReset
        };
        Err(Error::NoSync {
            attempts: attempts.max(1),
            reset,
        })
    }

    /// Resets the chip as for the loader and reads what it prints at the boot message's rate.
    fn observe_reset(&mut self) -> Result<ResetObserved> {
        let baud = self.transport.baud();
        self.transport.set_baud(BOOT_LOG_BAUD)?;
        self.transport.discard_input()?;
        self.reset_into_loader()?;
        let end = self.transport.clock() + BOOT_LOG_WAIT;
        let mut heard = Vec::new();
        let mut buf = [0u8; 1024];
        while heard.len() < BOOT_LOG_MAX {
            let remaining = end.saturating_sub(self.transport.clock());
            if remaining.is_zero() {
                break;
            }
            let count = self.transport.read(&mut buf, remaining)?;
            if count == 0 {
                break;
            }
            heard.extend_from_slice(&buf[..count]);
        }
        self.transport.set_baud(baud)?;
        Ok(match boot_log::boot_mode(&heard) {
            Some(mode) => ResetObserved::BootMode(mode),
            None if heard.is_empty() => ResetObserved::Silent,
            None => ResetObserved::Unrecognised,
        })
    }

    /// esptool's classic reset: EN low, then EN high with GPIO0 held low.
    /// False when the port has no modem lines, so nothing was reset.
    fn reset_into_loader(&mut self) -> Result<bool> {
        if !self.set_lines(Some(false), Some(true))? {
            return Ok(false);
        }
        self.transport.sleep(Duration::from_millis(100));
        self.set_lines(Some(true), Some(false))?;
        self.transport.sleep(Duration::from_millis(50));
        self.set_lines(Some(false), None)?;
        Ok(true)
    }

    /// Pulses RTS (EN) with GPIO0 high, booting the firmware.
    pub fn hard_reset(&mut self) -> Result<()> {
        if !self.set_lines(Some(false), Some(true))? {
            return Ok(());
        }
        self.transport.sleep(Duration::from_millis(100));
        self.set_lines(None, Some(false))?;
        self.loader = Loader::Rom;
        Ok(())
    }

    /// Sets DTR and RTS; false (after one warning) when the port has no modem lines.
    fn set_lines(&mut self, dtr: Option<bool>, rts: Option<bool>) -> Result<bool> {
        let mut outcomes = Vec::new();
        if let Some(level) = dtr {
            outcomes.push(self.transport.set_dtr(level)?);
        }
        if let Some(level) = rts {
            outcomes.push(self.transport.set_rts(level)?);
        }
        if outcomes.contains(&LineControl::Unsupported) {
            if !self.warned_modem_lines {
                self.warned_modem_lines = true;
                self.report(Event::Warning(Warning::ModemLinesUnsupported));
            }
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::progress::EventLog;
    use esp_protocol::status::ErrorCode;
    use std::io;

    /// A transport that answers each request frame with scripted bytes, on virtual time.
    #[derive(Default)]
    pub(crate) struct ScriptedTransport {
        /// Bytes delivered before anything is sent (a boot log).
        pub incoming: VecDeque<u8>,
        /// Bytes to deliver after each write, in order; an empty entry means silence.
        pub replies: VecDeque<Vec<u8>>,
        /// Every write, as sent.
        pub written: Vec<Vec<u8>>,
        pub now: Duration,
        pub modem_lines: bool,
        pub line_changes: Vec<(&'static str, bool)>,
    }

    impl ScriptedTransport {
        pub fn reply(&mut self, response: Response) {
            self.replies
                .push_back(slip::encode_to_vec(&response.to_bytes().unwrap()));
        }
    }

    impl Transport for ScriptedTransport {
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.written.push(bytes.to_vec());
            if let Some(reply) = self.replies.pop_front() {
                self.incoming.extend(reply);
            }
            Ok(())
        }
        fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
            if self.incoming.is_empty() {
                self.now += timeout;
                return Ok(0);
            }
            let n = buf.len().min(self.incoming.len()).min(64);
            for slot in &mut buf[..n] {
                *slot = self.incoming.pop_front().expect("checked");
            }
            Ok(n)
        }
        fn set_baud(&mut self, _baud: u32) -> io::Result<()> {
            Ok(())
        }
        fn baud(&self) -> u32 {
            115_200
        }
        fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
            self.line_changes.push(("dtr", asserted));
            Ok(if self.modem_lines {
                LineControl::Set
            } else {
                LineControl::Unsupported
            })
        }
        fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
            self.line_changes.push(("rts", asserted));
            Ok(if self.modem_lines {
                LineControl::Set
            } else {
                LineControl::Unsupported
            })
        }
        fn discard_input(&mut self) -> io::Result<()> {
            self.incoming.clear();
            Ok(())
        }
        fn sleep(&mut self, duration: Duration) {
            self.now += duration;
        }
        fn clock(&self) -> Duration {
            self.now
        }
    }

    fn connection(transport: ScriptedTransport) -> (Connection<ScriptedTransport>, EventLog) {
        let log = EventLog::new();
        (Connection::new(transport, Box::new(log.clone())), log)
    }

    fn rom_sync_replies() -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..8 {
            slip::encode(
                &Response::ok(0x08, 0x2020_1207).to_bytes().unwrap(),
                &mut bytes,
            );
        }
        bytes
    }

    #[test]
    fn command_returns_the_matching_response_after_garbage_and_stale_frames() {
        let mut transport = ScriptedTransport::default();
        let mut reply = b"noise".to_vec();
        slip::encode(&Response::ok(0x08, 1).to_bytes().unwrap(), &mut reply);
        slip::encode(
            &Response::ok(0x0A, esp_protocol::chip::ESP8266_MAGIC)
                .to_bytes()
                .unwrap(),
            &mut reply,
        );
        transport.replies.push_back(reply);
        let (mut connection, log) = connection(transport);
        let response = connection
            .command(
                &Command::ReadReg {
                    address: esp_protocol::chip::CHIP_DETECT_MAGIC_REG,
                },
                DEFAULT_TIMEOUT,
            )
            .unwrap();
        assert_eq!(response.value, esp_protocol::chip::ESP8266_MAGIC);
        assert_eq!(
            log.events(),
            vec![Event::Garbage {
                bytes: b"noise".to_vec()
            }]
        );
    }

    #[test]
    fn failure_status_becomes_a_device_error() {
        let mut transport = ScriptedTransport::default();
        transport.reply(Response::failure(
            0x13,
            Status::stub_failure(ErrorCode::FailedSpiOp),
        ));
        let (mut connection, _) = connection(transport);
        let error = connection
            .command(
                &Command::SpiFlashMd5 {
                    address: 0,
                    size: 16,
                },
                DEFAULT_TIMEOUT,
            )
            .unwrap_err();
        assert!(matches!(
            error,
            Error::Device {
                opcode: Opcode::SpiFlashMd5,
                code: ErrorCode::FailedSpiOp
            }
        ));
    }

    #[test]
    fn silence_times_out_on_the_transport_clock() {
        let (mut connection, _) = connection(ScriptedTransport::default());
        let error = connection
            .command(&Command::ReadReg { address: 0 }, DEFAULT_TIMEOUT)
            .unwrap_err();
        assert!(matches!(
            error,
            Error::Timeout {
                opcode: Opcode::ReadReg,
                timeout_ms: 3000
            }
        ));
        assert_eq!(connection.transport().now, DEFAULT_TIMEOUT);
    }

    #[test]
    fn rom_sync_drains_all_eight_replies() {
        let mut transport = ScriptedTransport::default();
        transport.replies.push_back(rom_sync_replies());
        transport.reply(Response::ok(0x0A, 7));
        let (mut connection, log) = connection(transport);
        assert_eq!(connection.sync().unwrap(), Loader::Rom);
        let value = connection
            .command(&Command::ReadReg { address: 0 }, DEFAULT_TIMEOUT)
            .unwrap()
            .value;
        assert_eq!(value, 7);
        assert!(log.events().is_empty());
    }

    #[test]
    fn stub_answers_sync_once_with_zero() {
        let mut transport = ScriptedTransport::default();
        transport.reply(Response::ok(0x08, 0));
        let (mut connection, _) = connection(transport);
        assert_eq!(connection.sync().unwrap(), Loader::Stub);
    }

    #[test]
    fn connect_retries_sync_and_reports_the_boot_log() {
        let mut transport = ScriptedTransport {
            modem_lines: true,
            ..Default::default()
        };
        // Two unanswered SYNCs, then the ROM answers.
        transport
            .replies
            .push_back(b"ets Jan  8 2013,rst cause:2, boot mode:(1,6)\r\n".to_vec());
        transport.replies.push_back(Vec::new());
        transport.replies.push_back(rom_sync_replies());
        let (mut connection, log) = connection(transport);
        connection.connect(BeforeReset::NoReset, 1).unwrap();
        assert_eq!(connection.loader(), Loader::Rom);
        assert_eq!(connection.transport().written.len(), 3);
        assert!(log
            .events()
            .iter()
            .any(|e| matches!(e, Event::Garbage { bytes } if bytes.starts_with(b"ets Jan"))));
    }

    #[test]
    fn reset_drives_en_and_gpio0_like_esptool() {
        let mut transport = ScriptedTransport {
            modem_lines: true,
            ..Default::default()
        };
        transport.replies.push_back(rom_sync_replies());
        let (mut connection, _) = connection(transport);
        connection.connect(BeforeReset::DefaultReset, 1).unwrap();
        assert_eq!(
            connection.transport().line_changes,
            vec![
                ("dtr", false),
                ("rts", true),
                ("dtr", true),
                ("rts", false),
                ("dtr", false)
            ]
        );
    }

    #[test]
    fn missing_modem_lines_warn_once_and_connect_goes_on() {
        let mut transport = ScriptedTransport::default();
        transport.replies.push_back(Vec::new());
        transport.replies.push_back(rom_sync_replies());
        let (mut connection, log) = connection(transport);
        connection.connect(BeforeReset::DefaultReset, 3).unwrap();
        connection.hard_reset().unwrap();
        let warnings = log
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Warning(_)))
            .count();
        assert_eq!(warnings, 1);
    }

    #[test]
    fn no_answer_at_all_is_a_typed_error() {
        let (mut connection, _) = connection(ScriptedTransport::default());
        assert!(matches!(
            connection.connect(BeforeReset::NoReset, 2),
            Err(Error::NoSync {
                attempts: 2,
                reset: ResetObserved::NotReset
            })
        ));
        assert_eq!(connection.transport().written.len(), 10);
    }

    #[test]
    fn timeouts_scale_with_size_like_esptool() {
        assert_eq!(timeout_per_mb(MD5_SECONDS_PER_MB, 0x1000), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout_per_mb(ERASE_SECONDS_PER_MB, 4_000_000),
            Duration::from_secs(160)
        );
    }
}
