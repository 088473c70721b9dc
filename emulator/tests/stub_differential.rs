//! Differential test of the flasher stubs: esptool's own stub images, executed by the
//! interpreter (`CodeExecution::Run`), against the behavioural model of `stub.rs`
//! (`CodeExecution::StubModel`).
//!
//! Two devices start with the same random flash, take the same stub upload through the ROM
//! loader (MEM_BEGIN/MEM_DATA/MEM_END, text then data, as esptool sends it) and then the same
//! random command sequence. Every reply frame (opcode, value, data, status bytes) and, at the
//! end, the whole flash must be equal, unless the difference is one of [`KNOWN_DIFFERENCES`],
//! each documented with its reason. The stub images come from the esptool releases the tests
//! install (`tests/esptool_install.rs`) and are never stored in the repository: the legacy
//! stub of esptool 4.12.0 (`stub_flasher/1`) and esp-flasher-stub of esptool 5.6.0
//! (`stub_flasher/2`), the ones each version uploads to an ESP8266.
//!
//! Not generated, because the model deliberately answers where the stubs would stall or run
//! off (`stub.rs`, "Deviations"): READ_FLASH outside the flash or with a packet size of 0 or
//! above 0x1000, and acknowledgements that are not what esptool sends.
//!
//! `PROPTEST_CASES` overrides the number of cases per stub (16 by default).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use esp_emulator::device::{CodeExecution, Device, DeviceConfig, StubFlavor};
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_protocol::packet::{
    encode_read_ack, BeginParams, Command, DataBlock, Response, SpiParams,
};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use esp_protocol::status::Status;
use proptest::prelude::*;

#[path = "../../tests/esptool_install.rs"]
mod esptool_install;

/// The flash both devices start with: small, so that MD5 of all of it stays quick.
const FLASH_SIZE: u32 = 256 * 1024;
const SECTOR: u32 = 0x1000;
/// esptool's MEM_DATA block size (`ESP_RAM_BLOCK`).
const RAM_BLOCK: usize = 0x1800;
/// The device's clock stands still: without realtime, nothing depends on it.
const NOW: Duration = Duration::ZERO;
/// Polls after which a chip that still has output due is declared stuck.
const MAX_POLLS: usize = 10_000;
/// READ_REG addresses: eFuses, the UART divider, the chip-detect magic, the SPI command
/// register and the `chip_size` word of the ROM's `flashchip` descriptor.
const REGISTERS: [u32; 6] = [
    0x3FF0_0050,
    0x3FF0_005C,
    0x6000_0014,
    0x4000_1000,
    0x6000_0200,
    0x3FFF_C718,
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

/// The decoded segments of a stub image.
#[derive(Debug)]
struct StubImage {
    entry: u32,
    segments: [(u32, Vec<u8>); 2],
}

/// The cargo target directory (the test executable is in `target/<profile>/deps`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
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
        .unwrap_or_else(|| {
            panic!("esptool {version} has no stub_flasher/{flavour}/esp8266.json")
        })
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

/// A host talking to one device in memory.
struct Host {
    device: Device,
    decoder: SlipDecoder,
    /// What the device sent and the host has not consumed yet.
    received: VecDeque<SlipEvent>,
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
        }
    }

    fn send_packet(&mut self, packet: &[u8]) {
        self.device.receive(NOW, &slip::encode_to_vec(packet));
    }

    /// Lets the chip work until it waits for the host, collecting what it sends.
    fn settle(&mut self) {
        let mut out = Vec::new();
        let mut polls = 0;
        while self.device.next_output_at().is_some_and(|at| at <= NOW) {
            polls += 1;
            assert!(polls < MAX_POLLS, "the chip never stops sending or running");
            self.device.poll_output(NOW, &mut out);
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

    /// Sends one command and returns what comes back.
    fn exchange(&mut self, command: &Command) -> Vec<SlipEvent> {
        self.send_packet(&command.to_bytes());
        self.take_all()
    }

    /// READ_FLASH as esptool's `read_flash` does it: after the reply, each data frame is
    /// acknowledged with the total received, then the digest frame follows.
    fn read_flash(&mut self, command: &Command, size: u32) -> Vec<SlipEvent> {
        self.send_packet(&command.to_bytes());
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

/// A FLASH_BEGIN .. FLASH_END (or the DEFL variants) sequence.
#[derive(Debug, Clone)]
struct FlashWrite {
    compressed: bool,
    offset: u32,
    payload: Payload,
    /// Data bytes per block: of the image (plain) or of the compressed stream (DEFL).
    block_size: u32,
    /// A block sent with a wrong checksum.
    bad_checksum_block: Option<usize>,
    end: WriteEnd,
}

/// One step of a generated session.
#[derive(Debug, Clone)]
enum Op {
    Sync,
    ReadReg(u32),
    Md5 { address: u32, size: u32 },
    EraseRegion { address: u32, size: u32 },
    Write(FlashWrite),
    ReadFlash { address: u32, size: u32, packet_size: u32, max_in_flight: u32 },
    SpiSetParams { total_size: u32 },
    ChangeBaudrate { new_baud: u32 },
}

impl FlashWrite {
    /// The commands esptool's `flash_begin`/`flash_block` (or the DEFL ones) would send.
    fn commands(&self) -> Vec<Command> {
        let image = self.payload.bytes();
        let block_size = self.block_size as usize;
        let blocks: Vec<Vec<u8>> = if self.compressed {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
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
        };
        let params = BeginParams {
            size: self.payload.len,
            blocks: blocks.len() as u32,
            block_size: self.block_size,
            offset: self.offset,
            encrypted: Some(false),
        };
        let mut commands = vec![if self.compressed {
            Command::FlashDeflBegin(params)
        } else {
            Command::FlashBegin(params)
        }];
        let sent = match self.end {
            WriteEnd::Early => blocks.len().saturating_sub(1),
            _ => blocks.len(),
        };
        for (sequence, data) in blocks.into_iter().take(sent).enumerate() {
            let block = DataBlock { sequence: sequence as u32, data };
            commands.push(if self.compressed {
                Command::FlashDeflData(block)
            } else {
                Command::FlashData(block)
            });
        }
        let stay_in_loader = self.end != WriteEnd::Reboot;
        if self.end != WriteEnd::Open {
            commands.push(if self.compressed {
                Command::FlashDeflEnd { stay_in_loader }
            } else {
                Command::FlashEnd { stay_in_loader }
            });
        }
        commands
    }
}

/// A request packet, with the checksum field spoiled for a block that should carry a bad one.
fn packet(command: &Command, spoil_checksum: bool) -> Vec<u8> {
    let mut bytes = command.to_bytes();
    if spoil_checksum {
        bytes[4] ^= 0x5A;
    }
    bytes
}

fn describe_events(events: &[SlipEvent]) -> String {
    let mut text = String::new();
    for event in events {
        match event {
            SlipEvent::Frame(frame) => match Response::decode(frame) {
                Ok(response) if frame.len() >= 10 && frame[0] == 1 => {
                    let status = &frame[frame.len() - 2..];
                    let _ = write!(
                        text,
                        "[reply op={:#04x} value={:#010x} data={:02x?} status={:02x}{:02x}] ",
                        response.opcode, response.value, response.data, status[0], status[1]
                    );
                }
                _ if frame.len() > 24 => {
                    let _ = write!(text, "[frame of {} bytes {:02x?}..] ", frame.len(), &frame[..16]);
                }
                _ => {
                    let _ = write!(text, "[frame {:02x?}] ", frame);
                }
            },
            other => {
                let _ = write!(text, "[{other:?}] ");
            }
        }
    }
    text
}

/// A difference between the executed stub and the model the test accepts, and why.
struct KnownDifference {
    flavor: Option<StubFlavor>,
    why: &'static str,
    /// Whether it applies to this request and these two answers.
    applies: fn(&Command, &[SlipEvent], &[SlipEvent]) -> bool,
}

const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

/// The two devices of one case.
struct Pair {
    flavor: StubFlavor,
    run: Host,
    model: Host,
    log: Vec<String>,
}

impl Pair {
    fn new(flavor: StubFlavor, flash_seed: u64) -> Pair {
        let contents = pseudo_random(FLASH_SIZE as usize, flash_seed);
        Pair {
            flavor,
            run: Host::new(CodeExecution::Run, contents.clone()),
            model: Host::new(CodeExecution::StubModel, contents),
            log: Vec::new(),
        }
    }

    fn compare(
        &mut self,
        command: &Command,
        run: &[SlipEvent],
        model: &[SlipEvent],
    ) -> Result<(), String> {
        let label = format!("{command:?}");
        let label: String = label.chars().take(160).collect();
        self.log.push(label.clone());
        if let Some(reason) = self.run.device.halted() {
            return Err(format!("{}\nthe executed stub halted: {reason}", self.history()));
        }
        if run == model {
            return Ok(());
        }
        if let Some(known) = KNOWN_DIFFERENCES.iter().find(|known| {
            known.flavor.is_none_or(|flavor| flavor == self.flavor)
                && (known.applies)(command, run, model)
        }) {
            self.log.push(format!("  (known difference: {})", known.why));
            return Ok(());
        }
        Err(format!(
            "{}\nanswers differ ({:?}):\n  executed: {}\n  model:    {}",
            self.history(),
            self.flavor,
            describe_events(run),
            describe_events(model)
        ))
    }

    fn history(&self) -> String {
        self.log.join("\n")
    }

    fn exchange(&mut self, command: &Command, spoil_checksum: bool) -> Result<(), String> {
        let bytes = packet(command, spoil_checksum);
        self.run.send_packet(&bytes);
        self.model.send_packet(&bytes);
        let run = self.run.take_all();
        let model = self.model.take_all();
        self.compare(command, &run, &model)
    }

    fn upload_stub(&mut self) -> Result<(), String> {
        if std::env::var_os("TEMP_CONF1").is_some() {
            let write = esp_protocol::packet::RegisterWrite { address: 0x6000_0024, value: 0x8200_6060, mask: u32::MAX, delay_us: 0 };
            self.exchange(&Command::WriteReg(vec![write]), false)?;
        }
        let image = stub(self.flavor);
        for (address, data) in &image.segments {
            let blocks = data.len().div_ceil(RAM_BLOCK);
            let begin = BeginParams {
                size: data.len() as u32,
                blocks: blocks as u32,
                block_size: RAM_BLOCK as u32,
                offset: *address,
                encrypted: None,
            };
            self.exchange(&Command::MemBegin(begin), false)?;
            for (sequence, chunk) in data.chunks(RAM_BLOCK).enumerate() {
                let block = DataBlock { sequence: sequence as u32, data: chunk.to_vec() };
                self.exchange(&Command::MemData(block), false)?;
            }
        }
        let end = Command::MemEnd { execute: true, entry: image.entry };
        self.run.send_packet(&end.to_bytes());
        self.model.send_packet(&end.to_bytes());
        let run = self.run.take_all();
        let model = self.model.take_all();
        let greeted = matches!(model.as_slice(), [SlipEvent::Frame(_), SlipEvent::Frame(ohai)] if ohai == b"OHAI");
        assert!(greeted, "the model does not greet: {}", describe_events(&model));
        self.compare(&end, &run, &model)
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Sync => self.exchange(&Command::Sync, false),
            Op::ReadReg(address) => self.exchange(&Command::ReadReg { address }, false),
            Op::Md5 { address, size } => {
                self.exchange(&Command::SpiFlashMd5 { address, size }, false)
            }
            Op::EraseRegion { address, size } => {
                self.exchange(&Command::EraseRegion { address, size }, false)
            }
            Op::SpiSetParams { total_size } => {
                let params = SpiParams {
                    id: 0,
                    total_size,
                    block_size: 0x10000,
                    sector_size: SECTOR,
                    page_size: 0x100,
                    status_mask: 0xFFFF,
                };
                self.exchange(&Command::SpiSetParams(params), false)
            }
            Op::ChangeBaudrate { new_baud } => self.exchange(
                &Command::ChangeBaudrate { new_baud, old_baud: 115_200 },
                false,
            ),
            Op::ReadFlash { address, size, packet_size, max_in_flight } => {
                let command = Command::ReadFlash { address, size, packet_size, max_in_flight };
                let run = self.run.read_flash(&command, size);
                let model = self.model.read_flash(&command, size);
                self.compare(&command, &run, &model)
            }
            Op::Write(ref write) => {
                let commands = write.commands();
                for (index, command) in commands.iter().enumerate() {
                    // Index 0 is the BEGIN: block n is command n + 1.
                    let spoil = index > 0 && write.bad_checksum_block == Some(index - 1);
                    self.exchange(command, spoil)?;
                }
                Ok(())
            }
        }
    }

    fn compare_flash(&self) -> Result<(), String> {
        let run = self.run.device.flash().as_bytes();
        let model = self.model.device.flash().as_bytes();
        let Some(first) = run.iter().zip(model).position(|(a, b)| a != b) else {
            return Ok(());
        };
        let last = run.iter().zip(model).rposition(|(a, b)| a != b).unwrap_or(first);
        Err(format!(
            "{}\nthe flash differs from {first:#x} to {last:#x} ({:?})",
            self.history(),
            self.flavor
        ))
    }
}

fn run_case(flavor: StubFlavor, flash_seed: u64, ops: &[Op]) -> Result<(), String> {
    let mut pair = Pair::new(flavor, flash_seed);
    pair.upload_stub()?;
    for op in ops {
        pair.apply(op)?;
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

fn payload(max: u32) -> impl Strategy<Value = Payload> {
    let pattern = prop_oneof![
        Just(Pattern::Random),
        any::<u8>().prop_map(Pattern::Fill),
        Just(Pattern::Repeated),
    ];
    (1..=max, pattern, any::<u64>()).prop_map(|(len, pattern, seed)| Payload { len, pattern, seed })
}

fn flash_write() -> impl Strategy<Value = FlashWrite> {
    let end = prop_oneof![
        6 => Just(WriteEnd::Stay),
        1 => Just(WriteEnd::Reboot),
        1 => Just(WriteEnd::Early),
        1 => Just(WriteEnd::Open),
    ];
    (
        any::<bool>(),
        address(),
        payload(0x6000),
        prop_oneof![Just(0x400u32), Just(0x1000), Just(0x4000)],
        proptest::option::weighted(0.1, 0usize..2),
        end,
    )
        .prop_map(|(compressed, offset, mut payload, block_size, bad_checksum_block, end)| {
            payload.len = payload.len.div_ceil(4) * 4;
            let offset = offset & !3;
            FlashWrite { compressed, offset, payload, block_size, bad_checksum_block, end }
        })
}

fn read_flash() -> impl Strategy<Value = Op> {
    (0..FLASH_SIZE, 0u32..=0x3000, prop_oneof![Just(0x100u32), Just(0x400), Just(0x1000)], prop_oneof![Just(1u32), Just(2), Just(64)])
        .prop_map(|(address, size, packet_size, max_in_flight)| {
            let size = size.min(FLASH_SIZE - address);
            Op::ReadFlash { address, size, packet_size, max_in_flight }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Sync),
        2 => proptest::sample::select(&REGISTERS[..]).prop_map(Op::ReadReg),
        3 => (address(), length(FLASH_SIZE)).prop_map(|(address, size)| Op::Md5 { address, size }),
        2 => (address(), length(0x3000)).prop_map(|(address, size)| Op::EraseRegion { address, size }),
        4 => flash_write().prop_map(Op::Write),
        2 => read_flash(),
        1 => prop_oneof![Just(FLASH_SIZE), Just(0x40_0000)].prop_map(|total_size| Op::SpiSetParams { total_size }),
        1 => prop_oneof![Just(115_200u32), Just(460_800), Just(921_600)].prop_map(|new_baud| Op::ChangeBaudrate { new_baud }),
    ]
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(16);
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

fn scratch_run(flavor: StubFlavor, ops: &[Op]) {
    let mut pair = Pair::new(flavor, 0);
    pair.upload_stub().unwrap();
    pair.run.device.set_trace(std::env::var_os("TRACE").is_some());
    let mut r = Ok(());
    for op in ops { r = pair.apply(op); if r.is_err() { break; } }
    if r.is_ok() { r = pair.compare_flash(); }
    for line in pair.run.device.take_trace() { eprintln!("{line}"); }
    eprintln!("{flavor:?} {ops:?}:\n {}", r.map_err(|e| e.lines().filter(|l| !l.starts_with("Mem") && !l.starts_with("WriteReg")).collect::<Vec<_>>().join("\n")).err().unwrap_or_default());
}

fn wr(compressed: bool, offset: u32, len: u32, block_size: u32) -> Op {
    Op::Write(FlashWrite { compressed, offset, payload: Payload { len, pattern: Pattern::Fill(0), seed: 0 }, block_size, bad_checksum_block: None, end: WriteEnd::Stay })
}

#[test]
fn scratch_debug() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{TestRunner, RngAlgorithm, TestRng};
    let n: usize = std::env::var("N").ok().and_then(|t| t.parse().ok()).unwrap_or(50);
    let seed: u8 = std::env::var("SEED").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
    let flavor = if std::env::var_os("V2").is_some() { StubFlavor::EspFlasherStub } else { StubFlavor::Legacy };
    let start = std::time::Instant::now();
    for case in 0..n {
        let ops = proptest::collection::vec(op(), 1..=12).new_tree(&mut runner).unwrap().current();
        if let Err(e) = run_case(flavor, case as u64, &ops) {
            let lines: Vec<&str> = e.lines().filter(|l| !l.starts_with("Mem") && !l.starts_with("WriteReg")).collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            eprintln!("case {case}: {}\n", tail.chars().take(1500).collect::<String>());
        }
    }
    eprintln!("{n} cases in {:?}", start.elapsed());
}
