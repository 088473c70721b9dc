//! How fast the virtual ESP8266 serves esptool's flash operations — a benchmark to read, not a
//! timed test: `cargo bench --bench emulator`.
//!
//! 1. the device core alone with the stub model (a placeholder upload the model answers),
//!    driven by a minimal host loop in memory: READ_FLASH of 4MB;
//! 2. the in-memory transport with the stub model: `esp-flasher`'s `EmulatorTransport` and
//!    `Flasher::read_flash`;
//! 3. esptool 5.6.0's real stubs (v2, which 5.6.0 uploads, and the legacy v1) uploaded as
//!    esptool does and executed on the virtual CPU, in memory on time that stands still (no
//!    realtime), next to the stub model answering the same upload: READ_FLASH of 4MB acked
//!    as esptool acks, and a 1MB compressed write (zlib level 9 by the esptool venv's
//!    Python, as esptool compresses) checked with SPI_FLASH_MD5. Wall and CPU seconds: the
//!    machine may be shared, CPU time is what the device cost. A case whose device stops
//!    answering is reported as stalled and the others go on;
//! 4. over the pty with the stub model: the `esp-emulator` binary, read by `esp-flasher`'s
//!    library;
//! 5. the emulator's CPU time while the real esptool 5.6.0 reads the same 4MB over the pty,
//!    with the stub model and with its stub executed;
//! 6. over TCP with the stub model: the `esp-emulator` binary with `--listen tcp://`, read by
//!    `esp-flasher`'s library through a minimal socket transport defined here;
//! 7. link use with `--realtime` at 921600 baud, 1MB read by `esp-flasher`'s library with the
//!    stub model, over the pty and over `--listen rfc2217://` (the socket transport with
//!    Telnet escaping and SET-BAUDRATE): the payload's 10-bit line time over the wall time.
//!
//! `cargo bench --bench emulator -- tcp` runs sections 6 and 7 alone.

#[allow(dead_code)]
#[path = "../tests/util.rs"]
mod util;

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use esp_emulator::device::{CodeExecution, Device, DeviceConfig};
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_emulator::rfc2217::Rfc2217;
use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use esp_flasher::{
    BeforeReset, ConnectOptions, EmulatorTransport, Flasher, SerialTransport, Silent, StubImage,
};
use esp_protocol::packet::{
    encode_read_ack, BeginParams, Command, DataBlock, ResponseFrame, SpiParams,
    STUB_FLASH_BLOCK_SIZE, STUB_GREETING, STUB_READ_PACKET_SIZE,
};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
use md5::Digest as _;

const FLASH_SIZE: usize = 4 << 20;
const IMAGE_SIZE: usize = 1 << 20;
const MB: f64 = (1 << 20) as f64;
/// esptool's MEM_DATA block size (ESP_RAM_BLOCK).
const RAM_BLOCK: usize = 0x1800;
/// The READ_FLASH frames esptool 5.6.0 lets the stub send ahead of its acks.
const READ_MAX_IN_FLIGHT: u32 = 64;
/// How long the host waits for one frame before declaring the device stuck (it is declared
/// stuck at once when it waits for input with nothing to send).
const FRAME_LIMIT: Duration = Duration::from_secs(60);
/// Where the executed cases write the compressed image.
const WRITE_ADDRESS: u32 = 0;

fn main() {
    let flash = sonoff_like_flash(FLASH_SIZE, 1);
    let dir = tempfile::tempdir().expect("temporary directory");
    let flash_file = dir.path().join("flash.bin");
    std::fs::write(&flash_file, &flash).expect("write the flash file");
    if std::env::args().any(|arg| arg == "tcp") {
        tcp_section(&flash_file, dir.path());
        return;
    }
    let model = StubImage::virtual_device_model();
    let device_only = Host::with_stub(&flash, CodeExecution::StubModel, &model)
        .and_then(|mut host| read_whole_flash(&mut host, &flash))
        .unwrap_or_else(|stall| panic!("the stub model: {stall}"));
    println!(
        "1. device core, stub model, in memory:        {:7.1} MB/s",
        mb_per_s(FLASH_SIZE, device_only.wall)
    );
    let in_memory = in_memory_transport_read(&flash);
    println!(
        "2. in-memory transport (flasher), stub model: {:7.1} MB/s",
        mb_per_s(FLASH_SIZE, in_memory)
    );

    let esptool = util::esptool("5.6.0");
    real_stubs_in_memory(&esptool, &flash, dir.path());

    let (pty_time, pty_cpu) = pty_read(&flash_file, dir.path());
    println!(
        "4. over the pty (esp-flasher), stub model:    {:7.1} MB/s, emulator CPU {:.2} s",
        mb_per_s(FLASH_SIZE, pty_time),
        pty_cpu.as_secs_f64()
    );
    tcp_section(&flash_file, dir.path());
    for stub in ["model", "run"] {
        match esptool_read(&esptool, stub, &flash_file, dir.path()) {
            Ok((esptool_time, esptool_cpu, emulator_cpu)) => println!(
                "5. esptool 5.6.0 read_flash 4MB, --stub {stub:5}: {:6.2} s wall; esptool CPU {:.2} s, emulator CPU {:.3} s = {:.1}% of esptool's",
                esptool_time.as_secs_f64(),
                esptool_cpu.as_secs_f64(),
                emulator_cpu.as_secs_f64(),
                100.0 * emulator_cpu.as_secs_f64() / esptool_cpu.as_secs_f64()
            ),
            Err(failure) => println!("5. esptool 5.6.0 read_flash 4MB, --stub {stub:5}: FAILED: {failure}"),
        }
    }
}

fn tcp_section(flash_file: &Path, dir: &Path) {
    let (tcp_time, tcp_cpu) = tcp_read(flash_file, dir);
    println!(
        "6. over TCP (esp-flasher), stub model:       {:7.1} MB/s, emulator CPU {:.2} s",
        mb_per_s(FLASH_SIZE, tcp_time),
        tcp_cpu.as_secs_f64()
    );
    for (name, rfc2217) in [("pty", false), ("rfc2217", true)] {
        let elapsed = realtime_read(flash_file, dir, rfc2217);
        let line_time = REALTIME_READ as f64 * 10.0 / f64::from(REALTIME_BAUD);
        println!(
            "7. --realtime {REALTIME_BAUD} baud, 1MB read over {name:7}: {:6.2} s, link use {:.1}%",
            elapsed.as_secs_f64(),
            100.0 * line_time / elapsed.as_secs_f64()
        );
    }
}

/// Section 7's rate and read size.
const REALTIME_BAUD: u32 = 921_600;
const REALTIME_READ: usize = 1 << 20;

/// Reads 1MB at 921600 baud in realtime over the pty or an `rfc2217://` endpoint.
fn realtime_read(flash_file: &Path, dir: &Path, rfc2217: bool) -> Duration {
    let mut args = vec![
        "--flash",
        flash_file.to_str().unwrap(),
        "--stub",
        "model",
        "--realtime",
    ];
    if rfc2217 {
        args.extend(["--no-pty", "--listen", "rfc2217://127.0.0.1:0"]);
    }
    let (emulator, lines) =
        util::Emulator::spawn_with_endpoints(&args, &dir.join("realtime.log"), 1);
    let options = ConnectOptions {
        baud: Some(REALTIME_BAUD),
        ..connect_options()
    };
    let elapsed = if rfc2217 {
        let address = lines[0]
            .strip_prefix("rfc2217://")
            .expect("an rfc2217 endpoint");
        let stream = std::net::TcpStream::connect(address).expect("connect to the endpoint");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut transport = TcpLine {
            stream,
            opened: Instant::now(),
            baud: 115_200,
            telnet: Some((Rfc2217::new(), Vec::new())),
        };
        esp_flasher::Transport::set_baud(&mut transport, 115_200).expect("set the rate");
        timed_read(transport, &options)
    } else {
        let transport = SerialTransport::open(emulator.port(), 115_200).expect("open the pty");
        timed_read(transport, &options)
    };
    emulator.terminate();
    elapsed
}

fn timed_read<T: esp_flasher::Transport>(transport: T, options: &ConnectOptions) -> Duration {
    let mut flasher =
        Flasher::connect(transport, options, Box::new(Silent)).expect("connect in realtime");
    let started = Instant::now();
    flasher
        .read_flash(0, REALTIME_READ as u32)
        .expect("read in realtime");
    started.elapsed()
}

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / MB / time.as_secs_f64()
}

fn new_device(flash: &[u8], execution: CodeExecution) -> Device {
    let config = DeviceConfig {
        execution,
        ..DeviceConfig::default()
    };
    Device::new(
        config,
        SpiFlash::new(flash.to_vec(), FlashOptions::default()).expect("valid flash"),
    )
}

/// Case 3: esptool's two ESP8266 stubs, executed and modelled, reading and writing.
fn real_stubs_in_memory(esptool: &util::Esptool, flash: &[u8], dir: &Path) {
    let image = firmware_image(IMAGE_SIZE, 2);
    let compressed = zlib_best_by_python(esptool, &image, dir);
    println!(
        "3. esptool 5.6.0's stubs on the device core, in memory (upload with MEM_BEGIN/DATA/END, \
         SPI_SET_PARAMS 4MB):"
    );
    println!(
        "   read: READ_FLASH 0..4MB, 0x{STUB_READ_PACKET_SIZE:x}-byte frames, {READ_MAX_IN_FLIGHT} in \
         flight, each acked; data and digest checked (target executed: <= 1 s)"
    );
    println!(
        "   write: 1MB image zlib -9 to {} bytes, FLASH_DEFL_BEGIN/DATA(0x{STUB_FLASH_BLOCK_SIZE:x})/END, \
         SPI_FLASH_MD5; digest and flash checked (target executed: <= 2 s)",
        compressed.len()
    );
    println!(
        "   {:<26} {:>7} {:>7} {:>7}   {:>7} {:>7} {:>7} {:>7}",
        "stub", "read s", "CPU s", "MB/s", "write s", "CPU s", "MB/s", "MD5 s"
    );
    for flavour in [2, 1] {
        let stub_path = esptool.stub_json(flavour);
        let stub = StubImage::load(&stub_path)
            .unwrap_or_else(|error| panic!("load {}: {error}", stub_path.display()));
        for (execution, mode) in [
            (CodeExecution::Run, "executed"),
            (CodeExecution::StubModel, "stub model"),
        ] {
            let name = if flavour == 2 { "5.6.0's" } else { "legacy" };
            let label = format!("v{flavour} ({name}), {mode}");
            let mut host = match Host::with_stub(flash, execution, &stub) {
                Ok(host) => host,
                Err(stall) => {
                    println!("   {label:<26} upload {stall}");
                    continue;
                }
            };
            match host
                .set_flash_parameters()
                .and_then(|()| read_whole_flash(&mut host, flash))
            {
                Ok(read) => print!(
                    "   {label:<26} {:7.3} {:7.2} {:7.1}",
                    read.wall.as_secs_f64(),
                    read.cpu.as_secs_f64(),
                    mb_per_s(FLASH_SIZE, read.wall)
                ),
                Err(stall) => {
                    println!("   {label:<26} read {stall}");
                    continue;
                }
            }
            match compressed_write(&mut host, &image, &compressed) {
                Ok(write) => println!(
                    "   {:7.3} {:7.2} {:7.1} {:7.3}",
                    write.total.wall.as_secs_f64(),
                    write.total.cpu.as_secs_f64(),
                    mb_per_s(IMAGE_SIZE, write.total.wall),
                    write.md5.as_secs_f64(),
                ),
                Err(stall) => println!("   write {stall}"),
            }
        }
    }
}

/// `bytes` compressed as esptool compresses them (`zlib.compress(image, 9)`), by the
/// Python of the esptool venv.
fn zlib_best_by_python(esptool: &util::Esptool, bytes: &[u8], dir: &Path) -> Vec<u8> {
    let input = dir.join("image.bin");
    let output = dir.join("image.zlib");
    std::fs::write(&input, bytes).expect("write the image");
    let status = std::process::Command::new(esptool.venv.join("bin/python"))
        .args([
            "-c",
            "import sys, zlib; open(sys.argv[2], 'wb').write(zlib.compress(open(sys.argv[1], 'rb').read(), 9))",
        ])
        .arg(&input)
        .arg(&output)
        .status()
        .expect("run the esptool venv's python");
    assert!(status.success(), "python zlib.compress failed: {status}");
    std::fs::read(&output).expect("read the compressed image")
}

/// READ_FLASH of the whole flash as esptool 5.6.0 does it: one ack per data frame, then the
/// digest frame. Checks the data and the digest; times the command up to the digest.
fn read_whole_flash(host: &mut Host, flash: &[u8]) -> Result<Timed, Stall> {
    let timer = Timer::start();
    host.command(&Command::ReadFlash {
        address: 0,
        size: flash.len() as u32,
        packet_size: STUB_READ_PACKET_SIZE,
        max_in_flight: READ_MAX_IN_FLIGHT,
    })?;
    let mut data = Vec::with_capacity(flash.len());
    while data.len() < flash.len() {
        let frame = host.next_frame("a READ_FLASH data frame")?;
        assert!(
            frame.len() == STUB_READ_PACKET_SIZE as usize
                || data.len() + frame.len() == flash.len(),
            "a {}-byte data frame after {} bytes",
            frame.len(),
            data.len()
        );
        data.extend_from_slice(&frame);
        host.send_payload(&encode_read_ack(data.len() as u32));
    }
    let digest = host.next_frame("the READ_FLASH digest")?;
    let elapsed = timer.stop();
    assert!(data == flash, "READ_FLASH data differs from the flash");
    assert_eq!(
        digest,
        md5::Md5::digest(&data).as_slice(),
        "READ_FLASH digest"
    );
    Ok(elapsed)
}

/// Times of a compressed write.
struct WriteTimes {
    /// From FLASH_DEFL_BEGIN to SPI_FLASH_MD5's reply.
    total: Timed,
    /// SPI_FLASH_MD5 alone, wall time.
    md5: Duration,
}

/// esptool's compressed write of `image` at [`WRITE_ADDRESS`] (one block in flight, as
/// esptool's `check_command` waits for each reply), then its MD5 check; checks the digest and
/// the flash.
fn compressed_write(host: &mut Host, image: &[u8], compressed: &[u8]) -> Result<WriteTimes, Stall> {
    let block_size = STUB_FLASH_BLOCK_SIZE as usize;
    let timer = Timer::start();
    host.command(&Command::FlashDeflBegin(BeginParams {
        size: image.len() as u32,
        blocks: compressed.len().div_ceil(block_size) as u32,
        block_size: STUB_FLASH_BLOCK_SIZE,
        offset: WRITE_ADDRESS,
        encrypted: Some(false),
    }))?;
    for (sequence, block) in compressed.chunks(block_size).enumerate() {
        host.command(&Command::FlashDeflData(DataBlock {
            sequence: sequence as u32,
            data: block.to_vec(),
        }))?;
    }
    host.command(&Command::FlashDeflEnd { reboot: false })?;
    let md5_started = Instant::now();
    let digest = host.command(&Command::SpiFlashMd5 {
        address: WRITE_ADDRESS,
        size: image.len() as u32,
    })?;
    let times = WriteTimes {
        md5: md5_started.elapsed(),
        total: timer.stop(),
    };
    assert_eq!(
        digest,
        md5::Md5::digest(image).as_slice(),
        "SPI_FLASH_MD5 after the write"
    );
    let start = WRITE_ADDRESS as usize;
    assert!(
        host.device.flash().as_bytes()[start..start + image.len()] == *image,
        "the flash does not hold the image"
    );
    Ok(times)
}

/// Wall and CPU time of one operation.
struct Timed {
    wall: Duration,
    cpu: Duration,
}

struct Timer {
    wall: Instant,
    cpu: Duration,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    fn stop(self) -> Timed {
        Timed {
            wall: self.wall.elapsed(),
            cpu: thread_cpu() - self.cpu,
        }
    }
}

/// The device stopped answering: what the host waited for, and why it gave up.
struct Stall(String);

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "STALLED: {}", self.0)
    }
}

/// A minimal host for the device core, on time that stands still (no realtime): SLIP in,
/// frames out, polling until the device has answered.
struct Host {
    device: Device,
    decoder: SlipDecoder,
    frames: VecDeque<Vec<u8>>,
    output: Vec<u8>,
    events: Vec<SlipEvent>,
}

impl Host {
    /// A device holding `flash`, with `stub` uploaded and started as esptool does it.
    fn with_stub(flash: &[u8], execution: CodeExecution, stub: &StubImage) -> Result<Host, Stall> {
        let mut host = Host {
            device: new_device(flash, execution),
            decoder: SlipDecoder::new(),
            frames: VecDeque::new(),
            output: Vec::new(),
            events: Vec::new(),
        };
        let segments = std::iter::once(&stub.text).chain(stub.data.as_ref());
        for (address, bytes) in segments {
            host.command(&Command::MemBegin(BeginParams {
                size: bytes.len() as u32,
                blocks: bytes.len().div_ceil(RAM_BLOCK) as u32,
                block_size: RAM_BLOCK as u32,
                offset: *address,
                encrypted: None,
            }))?;
            for (sequence, block) in bytes.chunks(RAM_BLOCK).enumerate() {
                host.command(&Command::MemData(DataBlock {
                    sequence: sequence as u32,
                    data: block.to_vec(),
                }))?;
            }
        }
        host.command(&Command::MemEnd {
            execute: true,
            entry: stub.entry,
        })?;
        assert_eq!(
            host.next_frame("the stub's greeting")?,
            STUB_GREETING,
            "the stub's greeting"
        );
        Ok(host)
    }

    /// SPI_SET_PARAMS as esptool sends it once it knows the flash size.
    fn set_flash_parameters(&mut self) -> Result<(), Stall> {
        self.command(&Command::SpiSetParams(SpiParams {
            id: 0,
            total_size: FLASH_SIZE as u32,
            block_size: 64 * 1024,
            sector_size: 4 * 1024,
            page_size: 256,
            status_mask: 0xFFFF,
        }))
        .map(drop)
    }

    fn send_payload(&mut self, payload: &[u8]) {
        let mut framed = Vec::with_capacity(payload.len() + 16);
        slip::encode(payload, &mut framed);
        self.device.receive(Duration::ZERO, &framed);
    }

    /// Sends `command` and waits for its reply; returns the reply's data before the status
    /// bytes, after checking the opcode and a success status.
    fn command(&mut self, command: &Command) -> Result<Vec<u8>, Stall> {
        self.send_payload(&command.to_bytes().unwrap());
        let opcode = command.opcode();
        let frame = self.next_frame(&format!("the reply to {}", opcode.name()))?;
        let reply = ResponseFrame::parse(&frame)
            .unwrap_or_else(|error| panic!("{command:?}: bad reply {frame:02x?}: {error}"));
        assert_eq!(
            reply.opcode, opcode as u8,
            "{command:?}: reply to another opcode"
        );
        let (data, status) = reply.body.split_at(reply.body.len().saturating_sub(2));
        assert_eq!(status, [0, 0], "{command:?} failed");
        Ok(data.to_vec())
    }

    /// The next frame from the chip, running the device until it sends one.
    fn next_frame(&mut self, waiting_for: &str) -> Result<Vec<u8>, Stall> {
        let started = Instant::now();
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(frame);
            }
            if let Some(reason) = self.device.halted() {
                return Err(Stall(format!(
                    "waiting for {waiting_for}: the CPU halted: {reason}"
                )));
            }
            if started.elapsed() > FRAME_LIMIT {
                return Err(Stall(format!("no {waiting_for} within {FRAME_LIMIT:?}")));
            }
            self.output.clear();
            self.device.poll_output(Duration::ZERO, &mut self.output);
            self.decoder.feed(&self.output, &mut self.events);
            for event in self.events.drain(..) {
                if let SlipEvent::Frame(frame) = event {
                    self.frames.push_back(frame);
                }
            }
            if self.output.is_empty() && self.device.next_output_at().is_none() {
                return Err(Stall(format!(
                    "no {waiting_for}: the device waits for input with nothing to send"
                )));
            }
        }
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions {
        before: BeforeReset::NoReset,
        stub: Some(StubImage::virtual_device_model()),
        ..ConnectOptions::default()
    }
}

fn in_memory_transport_read(flash: &[u8]) -> Duration {
    let transport = EmulatorTransport::new(new_device(flash, CodeExecution::StubModel));
    let mut flasher = Flasher::connect(transport, &connect_options(), Box::new(Silent))
        .expect("connect in memory");
    let started = Instant::now();
    let data = flasher
        .read_flash(0, FLASH_SIZE as u32)
        .expect("read in memory");
    let elapsed = started.elapsed();
    assert_eq!(data, flash);
    elapsed
}

/// Reads the whole flash over the emulator binary's pty (stub model); returns the wall time
/// and the emulator's CPU time during the read.
fn pty_read(flash_file: &Path, dir: &Path) -> (Duration, Duration) {
    let emulator = util::Emulator::spawn(
        &["--flash", flash_file.to_str().unwrap(), "--stub", "model"],
        &dir.join("pty.log"),
    );
    let transport = SerialTransport::open(emulator.port(), 115_200).expect("open the pty");
    let mut flasher = Flasher::connect(transport, &connect_options(), Box::new(Silent))
        .expect("connect over the pty");
    let cpu_before = process_cpu(emulator.pid());
    let started = Instant::now();
    let data = flasher
        .read_flash(0, FLASH_SIZE as u32)
        .expect("read over the pty");
    let elapsed = started.elapsed();
    let cpu = process_cpu(emulator.pid()) - cpu_before;
    assert_eq!(data, std::fs::read(flash_file).unwrap());
    drop(flasher);
    emulator.terminate();
    (elapsed, cpu)
}

/// esp-flasher's side of a `tcp://` endpoint (a byte stream with no rate and no lines) or,
/// with `telnet`, of an `rfc2217://` one: data IAC-escaped, the rate sent as SET-BAUDRATE.
/// The emulator's own codec decodes what the server sends: it unescapes the data the same
/// way, and the server's answers, which it does not know as requests, are dropped.
struct TcpLine {
    stream: std::net::TcpStream,
    opened: Instant,
    baud: u32,
    /// The decoder and data decoded but not yet read.
    telnet: Option<(Rfc2217, Vec<u8>)>,
}

impl esp_flasher::Transport for TcpLine {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.telnet.is_some() {
            let mut escaped = Vec::with_capacity(bytes.len() + 8);
            Rfc2217::escape(bytes, &mut escaped);
            return std::io::Write::write_all(&mut self.stream, &escaped);
        }
        std::io::Write::write_all(&mut self.stream, bytes)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
        if let Some((_, decoded)) = self.telnet.as_mut().filter(|(_, data)| !data.is_empty()) {
            let count = decoded.len().min(buf.len());
            buf[..count].copy_from_slice(&decoded[..count]);
            decoded.drain(..count);
            return Ok(count);
        }
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut raw = vec![0u8; buf.len()];
        match std::io::Read::read(&mut self.stream, &mut raw) {
            Ok(count) => match self.telnet.as_mut() {
                Some((codec, decoded)) => {
                    codec
                        .decode(&raw[..count], decoded, &mut Vec::new(), &mut Vec::new())
                        .map_err(std::io::Error::other)?;
                    let count = decoded.len().min(buf.len());
                    buf[..count].copy_from_slice(&decoded[..count]);
                    decoded.drain(..count);
                    Ok(count)
                }
                None => {
                    buf[..count].copy_from_slice(&raw[..count]);
                    Ok(count)
                }
            },
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }

    fn set_baud(&mut self, baud: u32) -> std::io::Result<()> {
        self.baud = baud;
        if self.telnet.is_some() {
            // IAC SB COM-PORT-OPTION SET-BAUDRATE <rate> IAC SE.
            let mut request = vec![255, 250, 44, 1];
            Rfc2217::escape(&baud.to_be_bytes(), &mut request);
            request.extend_from_slice(&[255, 240]);
            std::io::Write::write_all(&mut self.stream, &request)?;
        }
        Ok(())
    }

    fn baud(&self) -> u32 {
        self.baud
    }

    fn set_dtr(&mut self, _: bool) -> std::io::Result<esp_flasher::LineControl> {
        Ok(esp_flasher::LineControl::Unsupported)
    }

    fn set_rts(&mut self, _: bool) -> std::io::Result<esp_flasher::LineControl> {
        Ok(esp_flasher::LineControl::Unsupported)
    }

    fn discard_input(&mut self) -> std::io::Result<()> {
        let mut buffer = [0u8; 4096];
        while self.read(&mut buffer, Duration::ZERO)? > 0 {}
        Ok(())
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn clock(&self) -> Duration {
        self.opened.elapsed()
    }
}

/// Reads the whole flash over the emulator binary's `tcp://` endpoint (stub model); returns
/// the wall time and the emulator's CPU time during the read.
fn tcp_read(flash_file: &Path, dir: &Path) -> (Duration, Duration) {
    let (emulator, lines) = util::Emulator::spawn_with_endpoints(
        &[
            "--flash",
            flash_file.to_str().unwrap(),
            "--stub",
            "model",
            "--no-pty",
            "--listen",
            "tcp://127.0.0.1:0",
        ],
        &dir.join("tcp.log"),
        1,
    );
    let address = lines[0].strip_prefix("tcp://").expect("a tcp endpoint");
    let stream = std::net::TcpStream::connect(address).expect("connect to the endpoint");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let transport = TcpLine {
        stream,
        opened: Instant::now(),
        baud: 115_200,
        telnet: None,
    };
    let mut flasher = Flasher::connect(transport, &connect_options(), Box::new(Silent))
        .expect("connect over TCP");
    let cpu_before = process_cpu(emulator.pid());
    let started = Instant::now();
    let data = flasher
        .read_flash(0, FLASH_SIZE as u32)
        .expect("read over TCP");
    let elapsed = started.elapsed();
    let cpu = process_cpu(emulator.pid()) - cpu_before;
    assert_eq!(data, std::fs::read(flash_file).unwrap());
    drop(flasher);
    emulator.terminate();
    (elapsed, cpu)
}

/// Runs esptool's read_flash of the whole chip against `esp-emulator --stub <stub>`; returns
/// its wall time, its CPU time and the emulator's CPU time over the same run, or esptool's
/// last error line and the emulator's log file when it fails.
fn esptool_read(
    esptool: &util::Esptool,
    stub: &str,
    flash_file: &Path,
    dir: &Path,
) -> Result<(Duration, Duration, Duration), String> {
    let log = dir.join(format!("esptool-{stub}.log"));
    let emulator = util::Emulator::spawn(
        &["--flash", flash_file.to_str().unwrap(), "--stub", stub],
        &log,
    );
    let out = dir.join("read.bin");
    let children_before = reaped_children_cpu();
    let emulator_before = process_cpu(emulator.pid());
    let started = Instant::now();
    let (status, output) = util::run_output(
        &esptool.executable,
        &[
            "--port",
            emulator.port(),
            "read-flash",
            "0",
            "0x400000",
            out.to_str().unwrap(),
        ],
        &dir.join("esptool.out"),
    );
    let elapsed = started.elapsed();
    let emulator_cpu = process_cpu(emulator.pid()) - emulator_before;
    let esptool_cpu = reaped_children_cpu() - children_before;
    if !status.success() {
        let error = output
            .lines()
            .rfind(|line| line.contains("ERROR"))
            .unwrap_or("no ERROR line");
        let kept = std::env::temp_dir().join(format!("flashlab-bench-esptool-{stub}.log"));
        let _ = std::fs::copy(&log, &kept);
        return Err(format!(
            "{} (emulator log: {})",
            error.trim(),
            kept.display()
        ));
    }
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(flash_file).unwrap()
    );
    emulator.terminate();
    Ok((elapsed, esptool_cpu, emulator_cpu))
}

/// Fields of /proc/<pid>/stat after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = &stat[stat.rfind(')').expect("stat has the name in parentheses") + 2..];
    after_name
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect()
}

fn clock_ticks(ticks: u64) -> Duration {
    // The kernel reports CPU time in USER_HZ ticks, 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}

/// User plus system CPU time of a running process.
fn process_cpu(pid: u32) -> Duration {
    let fields = stat_fields(&pid.to_string());
    clock_ticks(fields[10] + fields[11])
}

/// User plus system CPU time of the calling thread (the in-memory cases run on it).
fn thread_cpu() -> Duration {
    let fields = stat_fields("thread-self");
    clock_ticks(fields[10] + fields[11])
}

/// CPU time of this process's children that have been waited for.
fn reaped_children_cpu() -> Duration {
    let fields = stat_fields("self");
    clock_ticks(fields[12] + fields[13])
}
