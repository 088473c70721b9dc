//! The flasher stub: a small program uploaded to RAM that adds compressed
//! writes, READ_FLASH, SPI_FLASH_MD5 and erase commands to the ROM's set.
//!
//! flashlab's own stub ships with this crate ([`StubImage::flashlab`]); another is read from
//! esptool's JSON format (`entry`, `text_start`, `text`, `data_start`, `data`; the blobs
//! base64), from a path given with `--stub-file` or the [`STUB_ENV_VAR`] variable. Above
//! 115200 baud flashlab's goes in two stages ([`run_stub_in_two_stages`]): the ROM takes its
//! small first stage at 115200, which takes the stub at the session's rate. The virtual
//! ESP8266 told to model the stub (`emu:...,stub=model`) executes nothing:
//! [`StubImage::virtual_device_model`] starts that model without any code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use esp_protocol::packet::{
    stub_baud_change, BeginParams, Command, DataBlock, ROM_BAUD, STUB_GREETING,
};
use esp_protocol::status::ErrorCode;

use crate::connection::{Connection, Loader, DEFAULT_TIMEOUT, MEM_END_ROM_TIMEOUT};
use crate::error::{Error, Result};
use crate::progress::{Event, Operation, RetryReason, Warning};
use crate::transport::Transport;

/// Environment variable naming a stub JSON file.
pub const STUB_ENV_VAR: &str = "ESP_FLASHER_STUB";
/// Bytes per MEM_DATA block (esptool's ESP_RAM_BLOCK).
pub const RAM_BLOCK_SIZE: usize = esp_protocol::packet::RAM_BLOCK_SIZE as usize;
/// The rate the first-stage loader switches to under `--baud auto`, before the stub climbs
/// the ladder: one most adapters carry, at which the stub takes an eighth of the time it
/// takes at 115200.
pub const FIRST_STAGE_AUTO_BAUD: u32 = 921_600;
/// How long the stub may take to say hello after MEM_END.
const GREETING_TIMEOUT: Duration = Duration::from_secs(1);

/// A stub program: code and data segments and where to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubImage {
    /// Entry point.
    pub entry: u32,
    /// Load address and bytes of the code.
    pub text: (u32, Vec<u8>),
    /// Load address and bytes of the initialised data, if any.
    pub data: Option<(u32, Vec<u8>)>,
}

#[derive(serde::Deserialize)]
struct StubJson {
    entry: u32,
    text: String,
    text_start: u32,
    data: Option<String>,
    data_start: Option<u32>,
}

impl StubImage {
    /// Parses esptool's stub JSON; `path` only names the source in errors.
    pub fn from_json(json: &str, path: &Path) -> Result<StubImage> {
        let bad = |reason: String| Error::BadStub {
            path: path.to_path_buf(),
            reason,
        };
        let parsed: StubJson =
            serde_json::from_str(json).map_err(|e| bad(format!("not esptool stub JSON: {e}")))?;
        let decode = |field: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| bad(format!("field \"{field}\" is not base64: {e}")))
        };
        let text = decode("text", &parsed.text)?;
        let data = match (parsed.data, parsed.data_start) {
            (Some(data), Some(start)) => Some((start, decode("data", &data)?)),
            (None, _) => None,
            (Some(_), None) => return Err(bad("\"data\" without \"data_start\"".into())),
        };
        Ok(StubImage {
            entry: parsed.entry,
            text: (parsed.text_start, text),
            data,
        })
    }

    /// Reads a stub JSON file.
    pub fn load(path: &Path) -> Result<StubImage> {
        let json = std::fs::read_to_string(path).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        StubImage::from_json(&json, path)
    }

    /// The stub file named by `explicit`, else by [`STUB_ENV_VAR`], else none.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(STUB_ENV_VAR).map(PathBuf::from))
    }

    /// flashlab's own stub (the `esp-stub` crate), built from this repository's C source and
    /// committed as an image, so no esptool installation is needed.
    pub fn flashlab() -> StubImage {
        StubImage::from_json(esp_stub::IMAGE_JSON, Path::new(esp_stub::IMAGE_PATH))
            .expect("the committed stub image is esptool stub JSON (checked by a test)")
    }

    /// flashlab's first-stage loader: uploaded through the ROM, it switches the rate and
    /// takes [`StubImage::flashlab`] over at it ([`run_stub_in_two_stages`]).
    pub fn flashlab_first_stage() -> StubImage {
        StubImage::from_json(
            esp_stub::FIRST_STAGE_JSON,
            Path::new(esp_stub::FIRST_STAGE_PATH),
        )
        .expect("the committed first-stage image is esptool stub JSON (checked by a test)")
    }

    /// What to upload to the virtual ESP8266: it models esptool 5's stub
    /// (recognised by its load address and entry) and executes nothing, so the
    /// image is a note saying so, not code. Never for a real chip.
    pub fn virtual_device_model() -> StubImage {
        const TEXT_START: u32 = 0x4010_C500;
        let note =
            b"flashlab: the virtual ESP8266 models the flasher stub; this is not code".to_vec();
        StubImage {
            entry: TEXT_START + 4,
            text: (TEXT_START, note),
            data: None,
        }
    }

    fn segments(&self) -> impl Iterator<Item = (u32, &[u8])> {
        std::iter::once((self.text.0, self.text.1.as_slice())).chain(
            self.data
                .iter()
                .map(|(address, bytes)| (*address, bytes.as_slice())),
        )
    }
}

/// Uploads of the stub before giving up: the ROM loader does not take a block again, so a
/// block the line lost or corrupted (no reply, or a checksum the ROM refused) starts the
/// upload over, after a new SYNC.
const UPLOAD_ATTEMPTS: u32 = 3;
/// How long the line must be quiet before a SYNC after a failed upload.
const RESYNC_DRAIN: Duration = Duration::from_millis(300);
/// SYNCs tried after a failed upload.
const RESYNC_TRIES: u32 = 5;
/// How long the host waits after switching its rate before it listens (as for a running
/// stub's CHANGE_BAUDRATE).
const BAUD_SETTLE_TIME: Duration = Duration::from_millis(50);
/// What the first stage's reply to a block may take beyond the block's time on the line.
const FIRST_STAGE_REPLY_MARGIN: Duration = Duration::from_millis(200);

/// [`run_stub`], started over when the line loses or corrupts a block of the upload. A stub
/// that did start (its greeting was what the line lost) answers the new SYNC and is kept.
pub fn run_stub_retrying<T: Transport>(
    connection: &mut Connection<T>,
    stub: &StubImage,
) -> Result<()> {
    let mut attempt = 1;
    loop {
        let line_errors = connection.line_errors();
        let (address, error) = match run_stub(connection, stub) {
            Ok(()) => return Ok(()),
            Err((address, error)) => (address, error),
        };
        let reason = match &error {
            Error::Timeout { .. } | Error::StubDidNotStart
                if connection.line_errors() > line_errors =>
            {
                RetryReason::Garbled
            }
            Error::Timeout { .. } | Error::StubDidNotStart => RetryReason::Timeout,
            Error::Device {
                code: ErrorCode::BadDataChecksum | ErrorCode::BadDataLength,
                ..
            } => RetryReason::Garbled,
            _ => return Err(error),
        };
        if attempt == UPLOAD_ATTEMPTS {
            return Err(error);
        }
        attempt += 1;
        connection.report(Event::Retrying {
            operation: Operation::StubUpload,
            address,
            attempt,
            reason,
        });
        connection.drain(RESYNC_DRAIN)?;
        if resync(connection)? == Some(Loader::Stub) {
            connection.set_loader(Loader::Stub);
            connection.report(Event::StubRunning);
            return Ok(());
        }
    }
}

/// SYNC until something answers: the loader that did, or `None` if nothing did.
fn resync<T: Transport>(connection: &mut Connection<T>) -> Result<Option<Loader>> {
    for _ in 0..RESYNC_TRIES {
        match connection.sync() {
            Ok(loader) => return Ok(Some(loader)),
            Err(Error::Timeout { .. }) => continue,
            Err(other) => return Err(other),
        }
    }
    Ok(None)
}

/// Uploads `stub` through the ROM loader, starts it and waits for "OHAI"; on failure, the
/// RAM address of the block (or segment) that failed, with the error.
fn run_stub<T: Transport>(
    connection: &mut Connection<T>,
    stub: &StubImage,
) -> std::result::Result<(), (u32, Error)> {
    start_program(connection, stub, DEFAULT_TIMEOUT)?;
    connection.set_loader(Loader::Stub);
    connection.report(Event::StubRunning);
    Ok(())
}

/// Uploads `program` through the loader that answers (the ROM, or the first stage), waiting
/// up to `block_timeout` for each block's reply, starts it and waits for "OHAI"; on failure,
/// the RAM address of the block (or segment) that failed, with the error.
fn start_program<T: Transport>(
    connection: &mut Connection<T>,
    program: &StubImage,
    block_timeout: Duration,
) -> std::result::Result<(), (u32, Error)> {
    let mut failed_at = program.entry;
    let mut upload = || -> Result<()> {
        upload_segments(connection, program, &mut failed_at, block_timeout)?;
        failed_at = program.entry;
        connection.command(
            &Command::MemEnd {
                execute: true,
                entry: program.entry,
            },
            MEM_END_ROM_TIMEOUT,
        )?;
        wait_for_greeting(connection)
    };
    upload().map_err(|error| (failed_at, error))
}

/// Starts `stub` through `first_stage`: the ROM takes the small first stage at its 115200
/// baud, the first stage switches to `baud` and takes the stub at that rate, then starts it,
/// handing over the rate in force. When any of that fails, the stub goes the old way, at
/// 115200 (through the ROM, or through the first stage if that is what answers), after a
/// warning; a stub the line only failed to announce is kept.
pub fn run_stub_in_two_stages<T: Transport>(
    connection: &mut Connection<T>,
    first_stage: &StubImage,
    stub: &StubImage,
    baud: u32,
) -> Result<()> {
    let error = match bring_stub_over(connection, first_stage, stub, baud) {
        Ok(()) => return Ok(()),
        Err(error @ Error::Io(_)) => return Err(error),
        Err(error) => error,
    };
    connection.report(Event::Warning(Warning::FirstStageFailed {
        baud,
        reason: error.to_string(),
    }));
    if back_to_rom_rate(connection, baud)? == Some(Loader::Stub) {
        connection.set_loader(Loader::Stub);
        connection.report(Event::StubRunning);
        return Ok(());
    }
    run_stub_retrying(connection, stub)
}

/// The first stage's part of [`run_stub_in_two_stages`]: its upload, the rate change and the
/// stub's upload at the new rate.
fn bring_stub_over<T: Transport>(
    connection: &mut Connection<T>,
    first_stage: &StubImage,
    stub: &StubImage,
    baud: u32,
) -> Result<()> {
    start_program(connection, first_stage, DEFAULT_TIMEOUT).map_err(|(_, error)| error)?;
    let switched = connection.command(&stub_baud_change(ROM_BAUD, baud), DEFAULT_TIMEOUT);
    // The first stage may have switched even if its reply was lost: the host follows, and
    // back_to_rom_rate looks at both rates.
    set_host_baud(connection, baud)?;
    switched?;
    connection.report(Event::BaudChanged { baud });
    start_program(connection, stub, first_stage_block_timeout(baud)).map_err(|(_, error)| error)?;
    connection.set_loader(Loader::Stub);
    connection.report(Event::StubRunning);
    Ok(())
}

/// How long a block of the stub's upload through the first stage may go unanswered at `baud`:
/// the first stage answers as soon as the block is in (it copies it, nothing more), so
/// beyond twice the block's time on the line (every byte escaped) the line lost it, and an
/// adapter that cannot carry the rate costs a fraction of a second, not esptool's 3 s.
fn first_stage_block_timeout(baud: u32) -> Duration {
    let bits = 10 * 2 * (RAM_BLOCK_SIZE as u64 + 64);
    Duration::from_millis(bits * 1000 / u64::from(baud.max(1))) + FIRST_STAGE_REPLY_MARGIN
}

/// Switches the host's side of the line, lets the UART settle and drops what arrived
/// meanwhile.
fn set_host_baud<T: Transport>(connection: &mut Connection<T>, baud: u32) -> Result<()> {
    let transport = connection.transport_mut();
    transport.set_baud(baud)?;
    transport.sleep(BAUD_SETTLE_TIME);
    transport.discard_input()?;
    Ok(())
}

/// After a failed two-stage start: whatever answers at `baud` (the first stage, or the stub
/// whose greeting was lost) is asked back to 115200, and the host goes there too. Returns
/// which loader answered at `baud`, if any.
fn back_to_rom_rate<T: Transport>(
    connection: &mut Connection<T>,
    baud: u32,
) -> Result<Option<Loader>> {
    if connection.transport().baud() == ROM_BAUD {
        return Ok(None);
    }
    connection.drain(RESYNC_DRAIN)?;
    let answered = resync(connection)?;
    match answered {
        Some(Loader::Stub) => return Ok(answered),
        Some(Loader::Rom) => {
            // The reply may be lost on this line; the SYNC at 115200 that follows tells.
            let _ = connection.command(&stub_baud_change(baud, ROM_BAUD), DEFAULT_TIMEOUT);
        }
        None => {}
    }
    set_host_baud(connection, ROM_BAUD)?;
    Ok(answered)
}

/// MEM_BEGIN and MEM_DATA for each of the stub's segments; `failed_at` follows the block
/// being sent.
fn upload_segments<T: Transport>(
    connection: &mut Connection<T>,
    stub: &StubImage,
    failed_at: &mut u32,
    block_timeout: Duration,
) -> Result<()> {
    for (address, bytes) in stub.segments() {
        connection.report(Event::Started {
            operation: Operation::StubUpload,
            address,
            total: bytes.len(),
        });
        let blocks = bytes.len().div_ceil(RAM_BLOCK_SIZE) as u32;
        let begin = BeginParams {
            size: bytes.len() as u32,
            blocks,
            block_size: RAM_BLOCK_SIZE as u32,
            offset: address,
            encrypted: None,
        };
        *failed_at = address;
        connection.command(&Command::MemBegin(begin), block_timeout)?;
        for (sequence, chunk) in bytes.chunks(RAM_BLOCK_SIZE).enumerate() {
            *failed_at = address + (sequence * RAM_BLOCK_SIZE) as u32;
            let block = DataBlock {
                sequence: sequence as u32,
                data: chunk.to_vec(),
            };
            connection.command(&Command::MemData(block), block_timeout)?;
            let done = (sequence * RAM_BLOCK_SIZE + chunk.len()).min(bytes.len());
            connection.report(Event::Progress {
                operation: Operation::StubUpload,
                done,
                total: bytes.len(),
            });
        }
        connection.report(Event::Finished {
            operation: Operation::StubUpload,
        });
    }
    Ok(())
}

fn wait_for_greeting<T: Transport>(connection: &mut Connection<T>) -> Result<()> {
    while let Some(frame) = connection.read_frame(GREETING_TIMEOUT)? {
        if frame == STUB_GREETING {
            return Ok(());
        }
        connection.report(Event::Garbage { bytes: frame });
    }
    Err(Error::StubDidNotStart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::tests::ScriptedTransport;
    use crate::progress::Silent;
    use esp_protocol::packet::Response;
    use esp_protocol::slip;

    #[test]
    fn flashlab_stub_is_code_in_iram_and_data_in_dram() {
        let stub = StubImage::flashlab();
        assert!((0x4010_0000..0x4011_0000).contains(&stub.text.0));
        assert!((stub.text.0..stub.text.0 + stub.text.1.len() as u32).contains(&stub.entry));
        let (data_start, _) = stub.data.as_ref().expect("the stub has data");
        assert!((0x3FFE_8000..0x4000_0000).contains(data_start));
    }

    /// PLACEHOLDER stub JSON: the bytes are not a real stub program, only
    /// enough to exercise the format and the upload.
    const PLACEHOLDER_STUB_JSON: &str = r#"{"entry": 1074790404, "text": "AAECAw==", "text_start": 1074790400,
        "data": "BAUG", "data_start": 1073643520}"#;

    #[test]
    fn parses_esptool_json() {
        let stub = StubImage::from_json(PLACEHOLDER_STUB_JSON, Path::new("stub.json")).unwrap();
        assert_eq!(stub.entry, 0x4010_0004);
        assert_eq!(stub.text, (0x4010_0000, vec![0, 1, 2, 3]));
        assert_eq!(stub.data, Some((0x3FFE_8000, vec![4, 5, 6])));
    }

    #[test]
    fn bad_json_names_the_file() {
        let error = StubImage::from_json(
            r#"{"entry": 1, "text": "!!", "text_start": 0}"#,
            Path::new("s.json"),
        );
        assert!(
            matches!(error, Err(Error::BadStub { ref path, .. }) if path == Path::new("s.json"))
        );
        assert!(error
            .unwrap_err()
            .to_string()
            .contains("\"text\" is not base64"));
    }

    #[test]
    fn upload_sends_mem_commands_then_waits_for_ohai() {
        let stub = StubImage {
            entry: 0x4010_0004,
            text: (0x4010_0000, vec![0xAB; RAM_BLOCK_SIZE + 1]),
            data: None,
        };
        let mut transport = ScriptedTransport::default();
        transport.reply(Response::ok(0x05, 0));
        transport.reply(Response::ok(0x07, 0));
        transport.reply(Response::ok(0x07, 0));
        let mut end_reply = slip::encode_to_vec(&Response::ok(0x06, 0).to_bytes().unwrap());
        slip::encode(STUB_GREETING, &mut end_reply);
        transport.replies.push_back(end_reply);
        let mut connection = Connection::new(transport, Box::new(Silent));
        run_stub(&mut connection, &stub).unwrap();
        assert_eq!(connection.loader(), Loader::Stub);
        let opcodes: Vec<u8> = connection
            .transport()
            .written
            .iter()
            .map(|w| w[2])
            .collect();
        assert_eq!(opcodes, vec![0x05, 0x07, 0x07, 0x06]);
    }

    #[test]
    fn no_greeting_is_a_typed_error() {
        let stub = StubImage {
            entry: 0,
            text: (0x4010_0000, vec![1]),
            data: None,
        };
        let mut transport = ScriptedTransport::default();
        for opcode in [0x05, 0x07, 0x06] {
            transport.reply(Response::ok(opcode, 0));
        }
        let mut connection = Connection::new(transport, Box::new(Silent));
        assert!(matches!(
            run_stub(&mut connection, &stub),
            Err((0, Error::StubDidNotStart))
        ));
    }
}
