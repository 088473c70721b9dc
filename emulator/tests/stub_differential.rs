//! Differential test of the flasher stubs: esptool's own stub images, executed by the
//! interpreter (`CodeExecution::Run`), against the behavioural model of `stub.rs`
//! (`CodeExecution::StubModel`).
//!
//! Two devices start with the same random flash, take the same stub upload through the ROM
//! loader (MEM_BEGIN/MEM_DATA/MEM_END, text then data, as esptool sends it), both greet with
//! `OHAI`, and then take the same random command sequence. Every reply frame (opcode, value,
//! data, status bytes) and, at the end, the whole flash must be equal, unless the step is one
//! of the known differences below ([`KnownDifference`]), each with its cause. The stub images
//! come from the esptool releases the tests install (`tests/esptool_install.rs`) and are never
//! stored in the repository: the legacy stub of esptool 4.12.0 (`stub_flasher/1`) and
//! esp-flasher-stub of esptool 5.6.0 (`stub_flasher/2`), the ones each version uploads to an
//! ESP8266.
//!
//! Known differences come in three kinds ([`Allowance`]). Some change one reply only: the
//! test then requires the exact reply each side is documented to give, and goes on. Some keep
//! the replies equal but leave the flashes apart: the replies are compared, and the case ends
//! after the step. The rest change both: the step is still sent to both devices, and the case
//! ends there. The list, each constant saying what and why:
//!
//! - one reply: [`MISALIGNED_ERASE_STATUS`] (v1), [`LEGACY_MD5_PAST_CHIP_END`] (v1),
//!   [`LEGACY_MD5_PAST_DECLARED_SIZE`] (v1), [`EMPTY_MD5_PAST_END`] (v2);
//! - flashes part: [`UNFINISHED_WRITE`] (both);
//! - both: [`WRITE_PAST_CHIP_END`], [`ERASE_PAST_CHIP_END`], [`BROKEN_COMPRESSED_STREAM`],
//!   [`UNALIGNED_WRITE`] (all both).
//!
//! Not generated: READ_FLASH outside the flash or with a packet size of 0 or above 0x1000
//! (the stubs accept, then stall or stream wrapped data; the model refuses on purpose, see
//! `stub.rs`), acknowledgements that are not esptool's, and data whose length is not a
//! multiple of 4 (esptool pads every image to 4 bytes; the ROM's `SPIWrite` refuses such a
//! last piece, so the legacy stub fails where the model writes).
//!
//! `PROPTEST_CASES` overrides the number of cases per stub (128 by default: a few seconds for
//! both stubs); `PROPTEST_RNG_SEED` picks other cases.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use esp_emulator::device::{CodeExecution, Device, DeviceConfig, Program, StubFlavor};
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_protocol::chip::{CHIP_DETECT_MAGIC_REG, EFUSE_REGS};
use esp_protocol::packet::{
    encode_read_ack, stub_baud_change, BeginParams, Command, DataBlock, Response, SpiParams,
    DIRECTION_RESPONSE,
};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::spi_flash::controller::{CMD, SPI0_BASE};
use esp_protocol::status::Status;
use md5::{Digest, Md5};
use proptest::prelude::*;

#[path = "../../tests/esptool_install.rs"]
mod esptool_install;

/// The flash both devices start with: small, so that MD5 of all of it stays quick.
const FLASH_SIZE: u32 = 256 * 1024;
const SECTOR: u32 = 0x1000;
/// The largest generated flash write, uncompressed.
const MAX_WRITE: u32 = 0x6000;
/// esptool's MEM_DATA block size (`ESP_RAM_BLOCK`).
const RAM_BLOCK: usize = 0x1800;
/// The legacy stub's first act is `SPIParamCfg` with a 16 MiB chip: its bound until
/// SPI_SET_PARAMS gives another size.
const LEGACY_INITIAL_CHIP_SIZE: u64 = 16 << 20;
/// UART0's clock divider register.
const UART0_CLKDIV: u32 = esp_protocol::uart::UART0_BASE + esp_protocol::uart::reg::CLKDIV;
/// The rate esptool talks at first.
const INITIAL_BAUD: u32 = 115_200;
/// The device's clock stands still: without realtime, nothing depends on it.
const NOW: Duration = Duration::ZERO;
/// Polls in a row without output after which a chip that still has work due is declared
/// stuck (each poll runs the core for up to 16 million cycles).
const MAX_IDLE_POLLS: usize = 32;
/// READ_REG addresses: eFuses, the UART divider, the chip-detect magic and the SPI command
/// register. (RAM is not compared: the model runs no code, so nothing fills it.)
const REGISTERS: [u32; 5] = [
    EFUSE_REGS[0],
    EFUSE_REGS[3],
    UART0_CLKDIV,
    CHIP_DETECT_MAGIC_REG,
    SPI0_BASE + CMD,
];

/// A stub image as esptool's JSON describes it.
#[derive(Debug, serde::Deserialize)]
struct StubJson {
    entry: u32,
    text: String,
    text_start: u32,
    data: String,
    data_start: u32,
}

/// The decoded segments of a stub image, in upload order.
#[derive(Debug)]
struct StubImage {
    entry: u32,
    segments: [(u32, Vec<u8>); 2],
}

/// The cargo target directory, `CARGO_TARGET_DIR` or not: the test executable is in its
/// `<profile>/deps`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<exe>")
        .to_owned()
}

/// `stub_flasher/<flavour>/esp8266.json` of esptool `version`, installed on first use.
fn stub_json_path(version: &str, flavour: u8) -> PathBuf {
    let venv = esptool_install::installed_venv(&target_dir().join("esptool"), version);
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", lib.display()))
        .filter_map(Result::ok)
        .map(|entry| {
            entry.path().join(format!(
                "site-packages/esptool/targets/stub_flasher/{flavour}/esp8266.json"
            ))
        })
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("esptool {version} has no stub_flasher/{flavour}/esp8266.json"))
}

fn load_stub(path: &Path) -> StubImage {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let json: StubJson = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is no stub image: {error}", path.display()));
    let decode = |field: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(field)
            .unwrap_or_else(|error| panic!("{}: bad base64: {error}", path.display()))
    };
    StubImage {
        entry: json.entry,
        segments: [
            (json.text_start, decode(&json.text)),
            (json.data_start, decode(&json.data)),
        ],
    }
}

/// The stub esptool uploads in `flavor`, loaded once per test process.
fn stub(flavor: StubFlavor) -> &'static StubImage {
    static LEGACY: OnceLock<StubImage> = OnceLock::new();
    static FLASHER_STUB: OnceLock<StubImage> = OnceLock::new();
    let (cell, version, flavour) = match flavor {
        StubFlavor::Legacy => (&LEGACY, "4.12.0", 1),
        StubFlavor::EspFlasherStub => (&FLASHER_STUB, "5.6.0", 2),
    };
    cell.get_or_init(|| {
        let image = load_stub(&stub_json_path(version, flavour));
        assert_eq!(
            StubFlavor::from_entry(image.entry),
            flavor,
            "esptool {version}'s stub_flasher/{flavour} is not the flavour the model expects"
        );
        image
    })
}

/// Deterministic bytes (xorshift64*), different for each seed.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A response frame with raw status bytes.
fn reply_frame(opcode: u8, data: &[u8], status: [u8; 2]) -> SlipEvent {
    let mut frame = vec![DIRECTION_RESPONSE, opcode];
    frame.extend_from_slice(&((data.len() + 2) as u16).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(data);
    frame.extend_from_slice(&status);
    SlipEvent::Frame(frame)
}

/// A host talking to one device in memory.
struct Host {
    device: Device,
    decoder: SlipDecoder,
    /// What the device sent and the host has not consumed yet.
    received: VecDeque<SlipEvent>,
    /// The chip was still busy when the host stopped waiting for it.
    stuck: bool,
}

impl Host {
    fn new(execution: CodeExecution, contents: Vec<u8>) -> Host {
        let flash = SpiFlash::new(contents, FlashOptions::default()).expect("a supported size");
        let config = DeviceConfig {
            execution,
            ..DeviceConfig::default()
        };
        Host {
            device: Device::new(config, flash),
            decoder: SlipDecoder::new(),
            received: VecDeque::new(),
            stuck: false,
        }
    }

    fn send_packet(&mut self, packet: &[u8]) {
        self.device.receive(NOW, &slip::encode_to_vec(packet));
    }

    /// Lets the chip work until it waits for the host, collecting what it sends.
    fn settle(&mut self) {
        let mut out = Vec::new();
        let mut idle_polls = 0;
        while self.device.next_output_at().is_some_and(|at| at <= NOW) {
            if idle_polls == MAX_IDLE_POLLS {
                self.stuck = true;
                break;
            }
            let before = out.len();
            self.device.poll_output(NOW, &mut out);
            idle_polls = if out.len() == before {
                idle_polls + 1
            } else {
                0
            };
        }
        self.received.extend(self.decoder.feed_to_vec(&out));
    }

    /// Everything the chip sends in answer to what it has been given.
    fn take_all(&mut self) -> Vec<SlipEvent> {
        self.settle();
        self.received.drain(..).collect()
    }

    fn next_event(&mut self) -> Option<SlipEvent> {
        if self.received.is_empty() {
            self.settle();
        }
        self.received.pop_front()
    }

    /// READ_FLASH as esptool's `read_flash` does it: after the reply, each data frame is
    /// acknowledged with the total received, then the digest frame follows.
    fn read_flash(&mut self, command: &Command, size: u32) -> Vec<SlipEvent> {
        self.send_packet(&command.to_bytes().unwrap());
        let mut transcript = Vec::new();
        let Some(reply) = self.next_event() else {
            return transcript;
        };
        let accepted = matches!(&reply, SlipEvent::Frame(frame)
            if Response::decode(frame).is_ok_and(|response| response.status == Status::Success));
        transcript.push(reply);
        if accepted {
            let mut total = 0u32;
            while total < size {
                let Some(event) = self.next_event() else {
                    return transcript;
                };
                if let SlipEvent::Frame(frame) = &event {
                    total += frame.len() as u32;
                    self.send_packet(&encode_read_ack(total));
                }
                transcript.push(event);
            }
        }
        transcript.extend(self.take_all());
        transcript
    }
}

/// How the generated data looks: compressible or not.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Random,
    Fill(u8),
    /// A short random phrase repeated.
    Repeated,
}

/// Data to write, generated from a seed.
#[derive(Debug, Clone, Copy)]
struct Payload {
    len: u32,
    pattern: Pattern,
    seed: u64,
}

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        let len = self.len as usize;
        match self.pattern {
            Pattern::Random => pseudo_random(len, self.seed),
            Pattern::Fill(byte) => vec![byte; len],
            Pattern::Repeated => {
                let phrase = pseudo_random(13, self.seed);
                phrase.iter().copied().cycle().take(len).collect()
            }
        }
    }
}

/// How a generated flash write ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteEnd {
    /// All blocks, then END asking to stay in the loader (what esptool sends).
    Stay,
    /// All blocks, then END asking to run the firmware.
    Reboot,
    /// END before the last block.
    Early,
    /// No END: the write stays open for the commands that follow.
    Open,
}

/// A FLASH_BEGIN .. FLASH_END sequence, or the DEFL one.
#[derive(Debug, Clone)]
struct FlashWrite {
    compressed: bool,
    offset: u32,
    payload: Payload,
    /// Data bytes per block: of the image (plain) or of the compressed stream (DEFL).
    block_size: u32,
    /// A block sent with a wrong checksum field.
    bad_checksum_block: Option<u32>,
    end: WriteEnd,
}

impl FlashWrite {
    /// The data blocks esptool's `flash_block` (plain: padded with 0xFF to the block size) or
    /// `flash_defl_block` (the zlib stream cut in pieces) would send.
    fn blocks(&self) -> Vec<Vec<u8>> {
        let image = self.payload.bytes();
        let block_size = self.block_size as usize;
        if self.compressed {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&image).expect("compress to memory");
            let stream = encoder.finish().expect("compress to memory");
            stream.chunks(block_size).map(<[u8]>::to_vec).collect()
        } else {
            image
                .chunks(block_size)
                .map(|chunk| {
                    let mut block = chunk.to_vec();
                    block.resize(block_size, 0xFF);
                    block
                })
                .collect()
        }
    }

    /// The requests, each with whether its checksum field is to be spoiled.
    fn requests(&self) -> Vec<(Command, bool)> {
        let blocks = self.blocks();
        let params = BeginParams {
            size: self.payload.len,
            blocks: blocks.len() as u32,
            block_size: self.block_size,
            offset: self.offset,
            encrypted: Some(false),
        };
        let mut requests = vec![(
            if self.compressed {
                Command::FlashDeflBegin(params)
            } else {
                Command::FlashBegin(params)
            },
            false,
        )];
        let sent = match self.end {
            WriteEnd::Early => blocks.len() - 1,
            _ => blocks.len(),
        };
        for (sequence, data) in (0..).zip(blocks.into_iter().take(sent)) {
            let block = DataBlock { sequence, data };
            let command = if self.compressed {
                Command::FlashDeflData(block)
            } else {
                Command::FlashData(block)
            };
            requests.push((command, self.bad_checksum_block == Some(sequence)));
        }
        let reboot = self.end == WriteEnd::Reboot;
        if self.end != WriteEnd::Open {
            requests.push((
                if self.compressed {
                    Command::FlashDeflEnd { reboot }
                } else {
                    Command::FlashEnd { reboot }
                },
                false,
            ));
        }
        requests
    }

    fn end_address(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.payload.len)
    }
}

/// One step of a generated session.
#[derive(Debug, Clone)]
enum Op {
    Sync,
    ReadReg(u32),
    Md5 {
        address: u32,
        size: u32,
    },
    EraseRegion {
        address: u32,
        size: u32,
    },
    Write(FlashWrite),
    ReadFlash {
        address: u32,
        size: u32,
        packet_size: u32,
        max_in_flight: u32,
    },
    SpiSetParams {
        total_size: u32,
    },
    ChangeBaudrate {
        new_baud: u32,
        /// esp-flasher's form of the request ([`stub_baud_change`]) rather than esptool's.
        flasher_form: bool,
    },
}

/// Where a difference comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The model does not do what the stub does; `stub.rs` should change.
    Model,
    /// The stub's own behaviour, on a request esptool does not make in normal use.
    Stub,
}

/// A difference between the executed stub and the model that this test accepts.
#[derive(Debug)]
struct KnownDifference {
    what: &'static str,
    cause: Cause,
}

/// v1: ERASE_REGION with an address or size that is not a sector multiple. The legacy stub
/// of esptool 4.12 tests `(address | size) & 0xFFF` and answers `01 00`; the model answers
/// `32 00` / `33 00`.
const MISALIGNED_ERASE_STATUS: KnownDifference = KnownDifference {
    what: "v1 misaligned ERASE_REGION: the stub answers 01 00, the model 32 00 / 33 00",
    cause: Cause::Model,
};
/// v1: SPI_FLASH_MD5 past the chip's end. The legacy stub bounds reads by the size in the
/// ROM's `flashchip` descriptor (16 MiB from its start-up `SPIParamCfg`, or what
/// SPI_SET_PARAMS said), so it hashes the flash as the chip wraps addresses; the model
/// answers `63 00`.
const LEGACY_MD5_PAST_CHIP_END: KnownDifference = KnownDifference {
    what: "v1 SPI_FLASH_MD5 past the chip's end: the stub hashes wrapped flash, the model \
           answers 63 00",
    cause: Cause::Model,
};
/// v1: SPI_FLASH_MD5 past the size SPI_SET_PARAMS gave. `SPIRead` fails and the legacy stub
/// sends its reply header, already saying 18 bytes, with only the status `01 00`; the model
/// answers `63 00` in a well-formed reply.
const LEGACY_MD5_PAST_DECLARED_SIZE: KnownDifference = KnownDifference {
    what: "v1 SPI_FLASH_MD5 past the SPI_SET_PARAMS size: the stub sends a reply whose \
           length field says 18 with status 01 00 and no digest, the model 63 00",
    cause: Cause::Model,
};
/// v2: SPI_FLASH_MD5 of 0 bytes at an address past the end: esp-flasher-stub reads nothing
/// and answers the empty digest; the model answers `C4 00`.
const EMPTY_MD5_PAST_END: KnownDifference = KnownDifference {
    what: "v2 SPI_FLASH_MD5 of 0 bytes past the end: the stub answers the digest of nothing, \
           the model C4 00",
    cause: Cause::Model,
};
/// Both: ERASE_REGION (sector-aligned) reaching past the chip's end. The stubs erase,
/// wrapping at the chip's size (v1 within its `flashchip` size, v2 through the SPI
/// registers); the model refuses with `C4 00`. The flashes part.
const ERASE_PAST_CHIP_END: KnownDifference = KnownDifference {
    what: "ERASE_REGION past the chip's end: the stubs erase with the chip wrapping, the \
           model refuses with C4 00",
    cause: Cause::Model,
};
/// Both: FLASH_BEGIN / FLASH_DEFL_BEGIN reaching past the chip's end. The stubs accept
/// (esp-flasher-stub checks no bound; the legacy stub's bound is its `flashchip` size) and
/// write, wrap or fail block by block; the model refuses with `C4 00`. The flashes part.
const WRITE_PAST_CHIP_END: KnownDifference = KnownDifference {
    what: "FLASH_BEGIN / FLASH_DEFL_BEGIN past the chip's end: the stubs accept, the model \
           refuses with C4 00",
    cause: Cause::Model,
};
/// Both: a write whose data do not all arrive (END before the last block, or a block refused
/// for its checksum). The stubs erase ahead of the data (esp-flasher-stub the first sector at
/// BEGIN, the legacy stub a sector as soon as the write position reaches it) and keep
/// inflated data in their 32 KiB window until it fills or the stream ends; the model erases a
/// sector when bytes go into it and writes inflated data at once. The replies agree; the
/// flashes part.
const UNFINISHED_WRITE: KnownDifference = KnownDifference {
    what: "unfinished write: the stubs erase ahead of the data and hold inflated data in \
           their window, the model erases and writes only what arrives",
    cause: Cause::Model,
};
/// Both: a compressed write with a block refused for its checksum, after which the stream
/// no longer inflates. The legacy stub then answers `C7 00` on every second block (the
/// error is reported, cleared, and found again in the next block); the model answers it
/// once, its inflater taking the later blocks without complaint. esp-flasher-stub answers
/// FLASH_DEFL_END with the pending `C7 00` before checking that all data came; the model
/// answers `C0 00`. The flashes part.
const BROKEN_COMPRESSED_STREAM: KnownDifference = KnownDifference {
    what: "compressed stream broken by a refused block: after the inflate error v1 answers \
           C7 00 on every second block and v2 C7 00 at END, the model C7 00 once and C0 00 \
           at END",
    cause: Cause::Model,
};
/// Both: a write at an address that is not a multiple of 4. The ROM's `SPIWrite` refuses a
/// first piece that is not whole words, so the legacy stub writes nothing there and answers
/// `C4 00` at the next DATA or END; esp-flasher-stub writes the head word itself, then passes
/// an unaligned source to `SPIWrite`, whose word loads raise the alignment exception: the
/// chip halts. The model writes the bytes. (esptool allows such addresses with a stub.)
const UNALIGNED_WRITE: KnownDifference = KnownDifference {
    what: "write at an address not a multiple of 4: v1 fails with C4 00, v2 takes an \
           alignment exception in SPIWrite and halts, the model writes",
    cause: Cause::Stub,
};

impl std::fmt::Display for KnownDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cause = match self.cause {
            Cause::Model => "the model differs",
            Cause::Stub => "the stub's own limit",
        };
        write!(f, "{} ({cause})", self.what)
    }
}

/// What a known difference allows for one step.
#[derive(Debug)]
enum Allowance {
    /// The single reply differs: each side must send exactly this; the case goes on.
    Reply {
        difference: &'static KnownDifference,
        executed: Vec<SlipEvent>,
        model: Vec<SlipEvent>,
    },
    /// The replies agree but the flashes part: the case ends after the step.
    FlashParts(&'static KnownDifference),
    /// Replies and flashes part: the step is sent to both, then the case ends.
    EndsCase(&'static KnownDifference),
}

/// The two devices of one case.
struct Pair {
    flavor: StubFlavor,
    run: Host,
    model: Host,
    /// The chip size the legacy stub's `flashchip` descriptor holds.
    legacy_chip_size: u64,
    /// The rate of the link (esptool sends it as CHANGE_BAUDRATE's old rate).
    baud: u32,
    /// Labels of the steps so far, for failure messages.
    log: Vec<String>,
}

impl Pair {
    fn new(flavor: StubFlavor, flash_seed: u64) -> Pair {
        let contents = pseudo_random(FLASH_SIZE as usize, flash_seed);
        Pair {
            flavor,
            run: Host::new(CodeExecution::Run, contents.clone()),
            model: Host::new(CodeExecution::StubModel, contents),
            legacy_chip_size: LEGACY_INITIAL_CHIP_SIZE,
            baud: INITIAL_BAUD,
            log: Vec::new(),
        }
    }

    fn legacy(&self) -> bool {
        self.flavor == StubFlavor::Legacy
    }

    /// MD5 of `size` bytes from `address` as the chip returns them, wrapping at its size.
    fn wrapped_digest(&self, address: u32, size: u32) -> Vec<u8> {
        let flash = self.model.device.flash().as_bytes();
        let mut hasher = Md5::new();
        for offset in 0..u64::from(size) {
            let at = (u64::from(address) + offset) % u64::from(FLASH_SIZE);
            hasher.update([flash[at as usize]]);
        }
        hasher.finalize().to_vec()
    }

    /// The known difference this step runs into, if any.
    fn allowance(&self, op: &Op) -> Option<Allowance> {
        let chip_end = u64::from(FLASH_SIZE);
        match *op {
            Op::EraseRegion { address, size } => {
                if self.legacy() && (address | size) % SECTOR != 0 {
                    let model_code = if address % SECTOR != 0 { 0x32 } else { 0x33 };
                    return Some(Allowance::Reply {
                        difference: &MISALIGNED_ERASE_STATUS,
                        executed: vec![reply_frame(0xD1, &[], [0x01, 0])],
                        model: vec![reply_frame(0xD1, &[], [model_code, 0])],
                    });
                }
                let aligned = (address | size) % SECTOR == 0;
                (aligned && u64::from(address) + u64::from(size) > chip_end)
                    .then_some(Allowance::EndsCase(&ERASE_PAST_CHIP_END))
            }
            Op::Md5 { address, size } => {
                let end = u64::from(address) + u64::from(size);
                if self.legacy() && end > chip_end {
                    let model = vec![reply_frame(0x13, &[], [0x63, 0])];
                    if size > 0 && end > self.legacy_chip_size {
                        let mut frame = vec![DIRECTION_RESPONSE, 0x13, 18, 0, 0, 0, 0, 0];
                        frame.extend_from_slice(&[0x01, 0]);
                        return Some(Allowance::Reply {
                            difference: &LEGACY_MD5_PAST_DECLARED_SIZE,
                            executed: vec![SlipEvent::Frame(frame)],
                            model,
                        });
                    }
                    let digest = self.wrapped_digest(address, size);
                    return Some(Allowance::Reply {
                        difference: &LEGACY_MD5_PAST_CHIP_END,
                        executed: vec![reply_frame(0x13, &digest, [0, 0])],
                        model,
                    });
                }
                (!self.legacy() && size == 0 && end > chip_end).then(|| Allowance::Reply {
                    difference: &EMPTY_MD5_PAST_END,
                    executed: vec![reply_frame(0x13, &Md5::digest([]), [0, 0])],
                    model: vec![reply_frame(0x13, &[], [0xC4, 0])],
                })
            }
            Op::Write(ref write) => {
                let sent = write.blocks().len() - usize::from(write.end == WriteEnd::Early);
                let refused = write
                    .bad_checksum_block
                    .is_some_and(|block| (block as usize) < sent);
                if write.end_address() > chip_end {
                    Some(Allowance::EndsCase(&WRITE_PAST_CHIP_END))
                } else if write.offset % 4 != 0 {
                    Some(Allowance::EndsCase(&UNALIGNED_WRITE))
                } else if refused && write.compressed {
                    Some(Allowance::EndsCase(&BROKEN_COMPRESSED_STREAM))
                } else if write.end == WriteEnd::Early || refused {
                    Some(Allowance::FlashParts(&UNFINISHED_WRITE))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Sends one request to both devices and returns the two answers.
    fn exchange(&mut self, command: &Command, spoil_checksum: bool) -> [Vec<SlipEvent>; 2] {
        let mut packet = command.to_bytes().unwrap();
        if spoil_checksum {
            packet[4] ^= 0x5A;
        }
        self.log.push(describe_command(command));
        self.run.send_packet(&packet);
        self.model.send_packet(&packet);
        [self.run.take_all(), self.model.take_all()]
    }

    /// Fails unless the two answers are equal or `allowance` says exactly how they differ.
    fn check(
        &mut self,
        [run, model]: &[Vec<SlipEvent>; 2],
        allowance: Option<&Allowance>,
    ) -> Result<(), String> {
        if let Some(reason) = self.run.device.halted() {
            return Err(self.failure(format!("the executed stub halted: {reason}")));
        }
        if self.run.stuck || self.model.stuck {
            return Err(self.failure(format!(
                "still busy after {MAX_IDLE_POLLS} polls without output: executed {}, model {}",
                self.run.stuck, self.model.stuck
            )));
        }
        if run == model {
            return Ok(());
        }
        if let Some(Allowance::Reply {
            difference,
            executed,
            model: model_reply,
        }) = allowance
        {
            if run == executed && model == model_reply {
                self.log.push(format!("  (known difference: {difference})"));
                return Ok(());
            }
        }
        Err(self.failure(format!(
            "answers differ:\n  executed: {}\n  model:    {}",
            describe_events(run),
            describe_events(model)
        )))
    }

    fn failure(&self, what: String) -> String {
        format!(
            "{:?} stub, after:\n  {}\n{what}",
            self.flavor,
            self.log.join("\n  ")
        )
    }

    fn upload_stub(&mut self) -> Result<(), String> {
        let image = stub(self.flavor);
        for (address, data) in &image.segments {
            let begin = BeginParams {
                size: data.len() as u32,
                blocks: data.len().div_ceil(RAM_BLOCK) as u32,
                block_size: RAM_BLOCK as u32,
                offset: *address,
                encrypted: None,
            };
            let answers = self.exchange(&Command::MemBegin(begin), false);
            self.check(&answers, None)?;
            for (sequence, chunk) in (0..).zip(data.chunks(RAM_BLOCK)) {
                let block = DataBlock {
                    sequence,
                    data: chunk.to_vec(),
                };
                let answers = self.exchange(&Command::MemData(block), false);
                self.check(&answers, None)?;
            }
        }
        let end = Command::MemEnd {
            execute: true,
            entry: image.entry,
        };
        let answers = self.exchange(&end, false);
        let greeted = matches!(answers[1].as_slice(),
            [SlipEvent::Frame(_), SlipEvent::Frame(greeting)] if greeting == b"OHAI");
        assert!(
            greeted,
            "the model does not greet: {}",
            describe_events(&answers[1])
        );
        // Guards against comparing the model with itself.
        assert_eq!(self.run.device.program(), Program::Running);
        assert_eq!(self.model.device.program(), Program::Stub(self.flavor));
        self.check(&answers, None)
    }

    /// Runs one step on both devices; `Ok(false)` when a known difference ends the case.
    fn apply(&mut self, op: &Op) -> Result<bool, String> {
        let allowance = self.allowance(op);
        if let Some(Allowance::EndsCase(difference)) = allowance {
            let requests = match op {
                Op::Write(write) => write.requests(),
                _ => vec![(single_command(op, self.baud), false)],
            };
            for (command, spoil_checksum) in &requests {
                self.exchange(command, *spoil_checksum);
            }
            self.log
                .push(format!("  (case ends on a known difference: {difference})"));
            return Ok(false);
        }
        match op {
            Op::Write(write) => {
                for (command, spoil_checksum) in write.requests() {
                    let answers = self.exchange(&command, spoil_checksum);
                    self.check(&answers, None)?;
                }
                if let Some(Allowance::FlashParts(difference)) = allowance {
                    self.log
                        .push(format!("  (case ends on a known difference: {difference})"));
                    return Ok(false);
                }
            }
            &Op::ReadFlash { size, .. } => {
                let command = single_command(op, self.baud);
                self.log.push(describe_command(&command));
                let run = self.run.read_flash(&command, size);
                let model = self.model.read_flash(&command, size);
                self.check(&[run, model], None)?;
            }
            _ => {
                let command = single_command(op, self.baud);
                match *op {
                    Op::SpiSetParams { total_size } => {
                        self.legacy_chip_size = u64::from(total_size);
                    }
                    Op::ChangeBaudrate { new_baud, .. } => self.baud = new_baud,
                    _ => {}
                }
                let answers = self.exchange(&command, false);
                self.check(&answers, allowance.as_ref())?;
            }
        }
        Ok(true)
    }

    fn compare_flash(&self) -> Result<(), String> {
        let run = self.run.device.flash().as_bytes();
        let model = self.model.device.flash().as_bytes();
        let Some(first) = run.iter().zip(model).position(|(a, b)| a != b) else {
            return Ok(());
        };
        let last = run
            .iter()
            .zip(model)
            .rposition(|(a, b)| a != b)
            .unwrap_or(first);
        Err(self.failure(format!("the flash differs from {first:#x} to {last:#x}")))
    }
}

/// The request of a one-command step, on a link at `baud`.
fn single_command(op: &Op, baud: u32) -> Command {
    match *op {
        Op::Sync => Command::Sync,
        Op::ReadReg(address) => Command::ReadReg { address },
        Op::Md5 { address, size } => Command::SpiFlashMd5 { address, size },
        Op::EraseRegion { address, size } => Command::EraseRegion { address, size },
        Op::SpiSetParams { total_size } => Command::SpiSetParams(SpiParams {
            id: 0,
            total_size,
            block_size: 0x10000,
            sector_size: SECTOR,
            page_size: 0x100,
            status_mask: 0xFFFF,
        }),
        Op::ChangeBaudrate {
            new_baud,
            flasher_form: true,
        } => stub_baud_change(baud, new_baud),
        Op::ChangeBaudrate {
            new_baud,
            flasher_form: false,
        } => Command::ChangeBaudrate {
            new_baud,
            old_baud: baud,
        },
        Op::ReadFlash {
            address,
            size,
            packet_size,
            max_in_flight,
        } => Command::ReadFlash {
            address,
            size,
            packet_size,
            max_in_flight,
        },
        Op::Write(_) => unreachable!("a write is several requests"),
    }
}

/// A request in a line, without the data of blocks.
fn describe_command(command: &Command) -> String {
    match command {
        Command::MemData(block) | Command::FlashData(block) | Command::FlashDeflData(block) => {
            format!(
                "{} #{} ({} bytes)",
                command.opcode(),
                block.sequence,
                block.data.len()
            )
        }
        other => format!("{other:?}"),
    }
}

fn describe_events(events: &[SlipEvent]) -> String {
    let parts: Vec<String> = events
        .iter()
        .map(|event| match event {
            SlipEvent::Frame(frame) => match Response::decode(frame) {
                Ok(response) if frame[0] == DIRECTION_RESPONSE => {
                    let status = &frame[frame.len() - 2..];
                    format!(
                        "[reply op={:#04x} value={:#010x} data={:02x?} status={:02x}{:02x}]",
                        response.opcode, response.value, response.data, status[0], status[1]
                    )
                }
                _ if frame.len() > 24 => {
                    format!("[frame of {} bytes {:02x?}..]", frame.len(), &frame[..16])
                }
                _ => format!("[frame {frame:02x?}]"),
            },
            other => format!("[{other:?}]"),
        })
        .collect();
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(" ")
    }
}

fn run_case(flavor: StubFlavor, flash_seed: u64, ops: &[Op]) -> Result<(), String> {
    let mut pair = Pair::new(flavor, flash_seed);
    pair.upload_stub()?;
    for op in ops {
        if !pair.apply(op)? {
            return Ok(());
        }
    }
    pair.compare_flash()
}

/// Flash addresses: sector starts, anywhere, word-aligned, and around the end.
fn address() -> impl Strategy<Value = u32> {
    prop_oneof![
        (0..FLASH_SIZE / SECTOR).prop_map(|sector| sector * SECTOR),
        0..FLASH_SIZE,
        (0..FLASH_SIZE / 4).prop_map(|word| word * 4),
        FLASH_SIZE - 0x2000..FLASH_SIZE + 0x1000,
    ]
}

/// Lengths up to `max`: whole sectors, anything, or none.
fn length(max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![
        (1..=max / SECTOR).prop_map(|sectors| sectors * SECTOR),
        0..=max,
        Just(0),
    ]
}

/// Write offsets: mostly where a write fits, sometimes unaligned or near the end.
fn write_offset() -> impl Strategy<Value = u32> {
    let fits = FLASH_SIZE - MAX_WRITE;
    prop_oneof![
        8 => (0..fits / SECTOR).prop_map(|sector| sector * SECTOR),
        8 => (0..fits / 4).prop_map(|word| word * 4),
        1 => 0..fits,
        1 => (FLASH_SIZE - 0x4000..FLASH_SIZE).prop_map(|address| address & !3),
    ]
}

/// Data as esptool sends it: padded to a multiple of 4 bytes.
fn payload() -> impl Strategy<Value = Payload> {
    let pattern = prop_oneof![
        Just(Pattern::Random),
        any::<u8>().prop_map(Pattern::Fill),
        Just(Pattern::Repeated),
    ];
    (1..=MAX_WRITE / 4, pattern, any::<u64>()).prop_map(|(words, pattern, seed)| Payload {
        len: words * 4,
        pattern,
        seed,
    })
}

fn flash_write() -> impl Strategy<Value = FlashWrite> {
    let end = prop_oneof![
        12 => Just(WriteEnd::Stay),
        2 => Just(WriteEnd::Reboot),
        1 => Just(WriteEnd::Early),
        2 => Just(WriteEnd::Open),
    ];
    (
        any::<bool>(),
        write_offset(),
        payload(),
        prop_oneof![Just(0x400u32), Just(0x1000), Just(0x4000)],
        proptest::option::weighted(0.05, 0u32..2),
        end,
    )
        .prop_map(
            |(compressed, offset, payload, block_size, bad_checksum_block, end)| FlashWrite {
                compressed,
                offset,
                payload,
                block_size,
                bad_checksum_block,
                end,
            },
        )
}

/// READ_FLASH inside the flash, with packet sizes and windows up to esptool's.
fn read_flash() -> impl Strategy<Value = Op> {
    (
        0..FLASH_SIZE,
        0u32..=0x3000,
        prop_oneof![Just(0x100u32), Just(0x400), Just(0x1000)],
        prop_oneof![Just(1u32), Just(2), Just(64)],
    )
        .prop_map(
            |(address, size, packet_size, max_in_flight)| Op::ReadFlash {
                address,
                size: size.min(FLASH_SIZE - address),
                packet_size,
                max_in_flight,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Sync),
        2 => proptest::sample::select(&REGISTERS[..]).prop_map(Op::ReadReg),
        3 => (address(), length(FLASH_SIZE)).prop_map(|(address, size)| Op::Md5 { address, size }),
        2 => (address(), length(0x3000))
            .prop_map(|(address, size)| Op::EraseRegion { address, size }),
        4 => flash_write().prop_map(Op::Write),
        2 => read_flash(),
        1 => prop_oneof![Just(FLASH_SIZE), Just(0x40_0000)]
            .prop_map(|total_size| Op::SpiSetParams { total_size }),
        1 => (
            prop_oneof![Just(115_200u32), Just(460_800), Just(921_600)],
            any::<bool>()
        )
            .prop_map(|(new_baud, flasher_form)| Op::ChangeBaudrate {
                new_baud,
                flasher_form
            }),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(128);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn legacy_stub_executed_answers_as_the_model(
        flash_seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..=12),
    ) {
        run_case(StubFlavor::Legacy, flash_seed, &ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn esp_flasher_stub_executed_answers_as_the_model(
        flash_seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..=12),
    ) {
        run_case(StubFlavor::EspFlasherStub, flash_seed, &ops).map_err(TestCaseError::fail)?;
    }
}

/// esp-flasher stepping down 921600 → 460800 sent esptool's form of CHANGE_BAUDRATE; esptool
/// 5's esp-flasher-stub ignores its old rate and set a divider for 3.7 Mbaud, so every later
/// block came back short (scenario `adapter-too-slow`). [`stub_baud_change`] lands both
/// executed stubs, and the model, on the divider for each rate of the walk.
#[test]
fn regression_second_baud_change_lands_on_the_wrong_divider() {
    for flavor in [StubFlavor::Legacy, StubFlavor::EspFlasherStub] {
        let mut pair = Pair::new(flavor, 1);
        pair.upload_stub()
            .unwrap_or_else(|error| panic!("{flavor:?}: {error}"));
        let mut rate = INITIAL_BAUD;
        let mut expected_divider = pair.run.device.machine().uart_divider();
        for new in [921_600u32, 460_800, 230_400, 115_200, 921_600] {
            let answers = pair.exchange(&stub_baud_change(rate, new), false);
            pair.check(&answers, None).unwrap();
            expected_divider =
                (u64::from(expected_divider) * u64::from(rate) / u64::from(new)) as u32;
            rate = new;
            for host in [&pair.run, &pair.model] {
                assert_eq!(
                    host.device.machine().uart_divider(),
                    expected_divider,
                    "{flavor:?} at {new} baud"
                );
            }
        }
    }
}
