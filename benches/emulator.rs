//! How fast the virtual ESP8266 serves a 4MB READ_FLASH — a benchmark to read, not a timed
//! test: `cargo bench --bench emulator`.
//!
//! 1. the device core alone, driven by a minimal host loop in memory;
//! 2. the in-memory transport: `esp-flasher`'s `EmulatorTransport` and `Flasher::read_flash`;
//! 3. over the pty: the `esp-emulator` binary, read by `esp-flasher`'s library over the pty;
//! 4. the emulator's CPU time while the real esptool 5.6.0 reads the same 4MB over the pty.

#[allow(dead_code)]
#[path = "../tests/util.rs"]
mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use esp_emulator::device::{Device, DeviceConfig};
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_emulator::sample_firmware::sonoff_like_flash;
use esp_flasher::{BeforeReset, ConnectOptions, EmulatorTransport, Flasher, SerialTransport, Silent, StubImage};
use esp_protocol::packet::{encode_read_ack, BeginParams, Command, DataBlock};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent};

const FLASH_SIZE: usize = 4 << 20;
const MB: f64 = (1 << 20) as f64;

fn main() {
    let flash = sonoff_like_flash(FLASH_SIZE, 1);
    let device_only = device_core_read(&flash);
    println!("1. device core, in memory:        {:7.1} MB/s", FLASH_SIZE as f64 / MB / device_only.as_secs_f64());
    let in_memory = in_memory_transport_read(&flash);
    println!("2. in-memory transport (flasher): {:7.1} MB/s", FLASH_SIZE as f64 / MB / in_memory.as_secs_f64());

    let dir = tempfile::tempdir().expect("temporary directory");
    let flash_file = dir.path().join("flash.bin");
    std::fs::write(&flash_file, &flash).expect("write the flash file");

    let (pty_time, pty_cpu) = pty_read(&flash_file, dir.path());
    println!(
        "3. over the pty (esp-flasher):    {:7.1} MB/s, emulator CPU {:.2} s",
        FLASH_SIZE as f64 / MB / pty_time.as_secs_f64(),
        pty_cpu.as_secs_f64()
    );
    let (esptool_time, esptool_cpu, emulator_cpu) = esptool_read(&flash_file, dir.path());
    println!(
        "4. esptool 5.6.0 read_flash 4MB:  {:7.2} s wall; esptool CPU {:.2} s, emulator CPU {:.3} s = {:.1}% of esptool's",
        esptool_time.as_secs_f64(),
        esptool_cpu.as_secs_f64(),
        emulator_cpu.as_secs_f64(),
        100.0 * emulator_cpu.as_secs_f64() / esptool_cpu.as_secs_f64()
    );
}

fn new_device(flash: &[u8]) -> Device {
    Device::new(DeviceConfig::default(), SpiFlash::new(flash.to_vec(), FlashOptions::default()).expect("valid flash"))
}

/// Uploads the virtual stub model and reads the whole flash, acking every frame.
fn device_core_read(flash: &[u8]) -> Duration {
    let mut device = new_device(flash);
    let mut host = Host::default();
    let stub = StubImage::virtual_device_model();
    let (text_start, text) = &stub.text;
    host.command(&mut device, &Command::MemBegin(BeginParams {
        size: text.len() as u32,
        blocks: 1,
        block_size: 0x1800,
        offset: *text_start,
        encrypted: None,
    }));
    host.command(&mut device, &Command::MemData(DataBlock { sequence: 0, data: text.clone() }));
    host.command(&mut device, &Command::MemEnd { execute: true, entry: stub.entry });
    host.frames(&mut device); // the reply and "OHAI"

    let started = Instant::now();
    host.send(&mut device, &Command::ReadFlash { address: 0, size: FLASH_SIZE as u32, packet_size: 0x1000, max_in_flight: 64 });
    let mut received = 0usize;
    let mut digest_seen = false;
    while !digest_seen {
        for frame in host.frames(&mut device) {
            if frame.first() == Some(&0x01) && frame.len() == 10 {
                continue; // the command's reply
            }
            if received < FLASH_SIZE {
                received += frame.len();
                let mut ack = Vec::new();
                slip::encode(&encode_read_ack(received as u32), &mut ack);
                device.receive(Duration::ZERO, &ack);
            } else {
                assert_eq!(frame.len(), 16, "the MD5 frame ends the read");
                digest_seen = true;
            }
        }
    }
    started.elapsed()
}

/// A minimal host for the device core: SLIP in, frames out.
#[derive(Default)]
struct Host {
    decoder: SlipDecoder,
    output: Vec<u8>,
    events: Vec<SlipEvent>,
}

impl Host {
    fn send(&mut self, device: &mut Device, command: &Command) {
        let mut framed = Vec::new();
        slip::encode(&command.to_bytes(), &mut framed);
        device.receive(Duration::ZERO, &framed);
    }

    fn command(&mut self, device: &mut Device, command: &Command) {
        self.send(device, command);
        assert!(!self.frames(device).is_empty(), "{command:?} got no reply");
    }

    fn frames(&mut self, device: &mut Device) -> Vec<Vec<u8>> {
        self.output.clear();
        device.poll_output(Duration::ZERO, &mut self.output);
        self.events.clear();
        self.decoder.feed(&self.output, &mut self.events);
        self.events
            .drain(..)
            .filter_map(|event| match event {
                SlipEvent::Frame(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions { before: BeforeReset::NoReset, stub: Some(StubImage::virtual_device_model()), ..ConnectOptions::default() }
}

fn in_memory_transport_read(flash: &[u8]) -> Duration {
    let transport = EmulatorTransport::new(new_device(flash));
    let mut flasher = Flasher::connect(transport, &connect_options(), Box::new(Silent)).expect("connect in memory");
    let started = Instant::now();
    let data = flasher.read_flash(0, FLASH_SIZE as u32).expect("read in memory");
    let elapsed = started.elapsed();
    assert_eq!(data, flash);
    elapsed
}

/// Reads the whole flash over the emulator binary's pty; returns the wall time and the
/// emulator's CPU time during the read.
fn pty_read(flash_file: &Path, dir: &Path) -> (Duration, Duration) {
    let emulator = util::Emulator::spawn(&["--flash", flash_file.to_str().unwrap()], &dir.join("pty.log"));
    let transport = SerialTransport::open(emulator.port(), 115_200).expect("open the pty");
    let mut flasher = Flasher::connect(transport, &connect_options(), Box::new(Silent)).expect("connect over the pty");
    let cpu_before = process_cpu(emulator.pid());
    let started = Instant::now();
    let data = flasher.read_flash(0, FLASH_SIZE as u32).expect("read over the pty");
    let elapsed = started.elapsed();
    let cpu = process_cpu(emulator.pid()) - cpu_before;
    assert_eq!(data, std::fs::read(flash_file).unwrap());
    drop(flasher);
    emulator.terminate();
    (elapsed, cpu)
}

/// Runs esptool's read_flash of the whole chip; returns its wall time, its CPU time and the
/// emulator's CPU time over the same run.
fn esptool_read(flash_file: &Path, dir: &Path) -> (Duration, Duration, Duration) {
    let esptool = util::esptool("5.6.0");
    let emulator = util::Emulator::spawn(&["--flash", flash_file.to_str().unwrap()], &dir.join("esptool.log"));
    let out = dir.join("read.bin");
    let children_before = reaped_children_cpu();
    let emulator_before = process_cpu(emulator.pid());
    let started = Instant::now();
    let (status, output) = util::run_output(
        &esptool.executable,
        &["--port", emulator.port(), "read-flash", "0", "0x400000", out.to_str().unwrap()],
        &dir.join("esptool.out"),
    );
    let elapsed = started.elapsed();
    let emulator_cpu = process_cpu(emulator.pid()) - emulator_before;
    let esptool_cpu = reaped_children_cpu() - children_before;
    assert!(status.success(), "esptool read_flash failed: {output}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(flash_file).unwrap());
    emulator.terminate();
    (elapsed, esptool_cpu, emulator_cpu)
}

/// Fields of /proc/<pid>/stat after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after_name = &stat[stat.rfind(')').expect("stat has the name in parentheses") + 2..];
    after_name.split_whitespace().skip(1).map(|field| field.parse().unwrap_or(0)).collect()
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

/// CPU time of this process's children that have been waited for.
fn reaped_children_cpu() -> Duration {
    let fields = stat_fields("self");
    clock_ticks(fields[12] + fields[13])
}
