//! Code the virtual ESP8266 executes, seen as a user sees it: real esptool uploads
//! flashlab's C programs (`lx106-programs`), esptool 3.0 runs its own stub, the ROM boots a
//! bare-metal firmware from flash, and a hand-assembled program crashes. Each check reads the
//! pty as the next client does (raw, 8N1, at the chip's rate) and the emulator's `--trace`
//! lines on stderr. Every emulator here runs with `--stub run`: the default, `model`,
//! executes nothing.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use esp_flasher::transport::{SerialTransport, Transport};
use esp_protocol::flash_params::FlashParams;
use esp_protocol::image::{Image, Segment};
use lx106_programs::Builder;

use crate::util::{cpu_time, esptool, esptool_3, pseudo_random, run_output, Emulator, Esptool};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The rate of the ROM's serial loader, and so of what a RAM program it started prints.
const LOADER_BAUD: u32 = 115_200;
/// The rate of the ROM's boot log; firmware that leaves the UART divider alone prints at it too.
const BOOT_LOG_BAUD: u32 = 74_880;
/// Most bytes a check reads from the pty: the programs print without end.
const MAX_READ: usize = MIB;
/// How long a condition on the pty or the trace may take to come true.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often the trace file is looked at while waiting for a line.
const TRACE_POLL: Duration = Duration::from_millis(50);

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Asserts that `output` has a line containing `expected`.
#[track_caller]
fn assert_line(output: &str, expected: &str) {
    assert!(
        output.lines().any(|line| line.contains(expected)),
        "no line contains {expected:?} in:\n{output}"
    );
}

/// The pty as the next client opens it: raw, 8N1, at `baud`.
fn open_port(emulator: &Emulator, baud: u32) -> SerialTransport {
    SerialTransport::open(emulator.port(), baud)
        .unwrap_or_else(|error| panic!("cannot open {} at {baud} baud: {error}", emulator.port()))
}

/// Reads from `port` until `done` holds for everything read so far, [`DEADLINE`] passes or
/// [`MAX_READ`] bytes have come; returns what came.
fn read_until(port: &mut SerialTransport, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * KIB];
    while !done(&received) && received.len() < MAX_READ {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let count = port.read(&mut buffer, left).expect("read the pty");
        received.extend_from_slice(&buffer[..count]);
    }
    received
}

/// The start of what the pty delivered, for a failure message.
fn shown(received: &[u8]) -> String {
    let end = received.len().min(300);
    format!(
        "{} bytes, starting {:?}",
        received.len(),
        String::from_utf8_lossy(&received[..end])
    )
}

/// The end of the emulator's trace, without the lines it repeats while a program runs.
fn trace_summary(stderr: &str) -> String {
    let repeated = ["only polls", "is busy", "gpio:"];
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !repeated.iter().any(|text| line.contains(text)))
        .collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Stops the emulator (SIGTERM) and requires a clean exit, showing its trace otherwise.
#[track_caller]
fn terminate_cleanly(emulator: Emulator) {
    let (status, stderr) = emulator.terminate();
    assert!(
        status.success(),
        "emulator exit {status}: {}",
        trace_summary(&stderr)
    );
}

/// Waits until the emulator's stderr satisfies `done` (returning its value), or panics
/// after [`DEADLINE`] naming `what`.
fn wait_for_trace<T>(emulator: &Emulator, what: &str, done: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stderr = emulator.stderr();
        if let Some(value) = done(&stderr) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} on the emulator's stderr within {DEADLINE:?}; trace:\n{}",
            trace_summary(&stderr)
        );
        std::thread::sleep(TRACE_POLL);
    }
}

/// The first N for which complete lines `tick N` and `tick N+1` follow each other.
fn consecutive_ticks(received: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(received);
    let complete = &text[..text.rfind('\n')?];
    let ticks: Vec<Option<u32>> = complete
        .split('\n')
        .map(|line| {
            line.trim_end_matches('\r')
                .strip_prefix("tick ")?
                .parse()
                .ok()
        })
        .collect();
    ticks.windows(2).find_map(|pair| match pair {
        [Some(first), Some(second)] if *second == first + 1 => Some(*first),
        _ => None,
    })
}

/// esptool 5.6.0 uploads `hello` with `load-ram` and `options`; the program must keep running
/// after esptool closes the port, and the next client must read its output.
///
/// `hello` greets three times at once, then prints `tick N` once a virtual second
/// (`ets_delay_us(1000000)`, 80 cycles a microsecond, on a core at 52 MHz: about 1.5 s).
/// The greeting leaves while esptool still holds the port, right behind the MEM_END reply:
/// esptool reads or leaves it and it goes with esptool's session, as on a board, so the
/// check is on the ticks. `--realtime` paces them: without it they come as fast as the
/// interpreter runs, and a reset chip's leftovers in the pty could pass for a running program.
/// Two consecutive ticks come at least 1.5 s after MEM_END, when esptool (which exits right
/// after the reply) is gone.
fn hello_reaches_the_next_client(options: &[&str]) {
    let hello = Builder::new()
        .hello()
        .unwrap_or_else(|error| panic!("building hello: {error}"));
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let emulator = Emulator::spawn(
        &[
            "--flash",
            path_str(&flash),
            "--size",
            "1MB",
            "--stub",
            "run",
            "--realtime",
            "--trace",
        ],
        &dir.path().join("emulator.log"),
    );
    let mut args = vec![
        "--port",
        emulator.port(),
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ];
    args.extend_from_slice(options);
    args.extend(["load-ram", path_str(&hello.image_path)]);
    let (status, output) = run_output(&tool.executable, &args, &dir.path().join("load-ram.log"));
    assert!(
        status.success(),
        "esptool {args:?} failed ({status}):\n{output}\ntrace:\n{}",
        trace_summary(&emulator.stderr())
    );
    assert_line(&output, &format!("executing at {:#010x}", hello.elf.entry));
    assert_line(&output, "Exiting immediately.");

    let mut port = open_port(&emulator, LOADER_BAUD);
    let received = read_until(&mut port, |received| consecutive_ticks(received).is_some());
    assert!(
        consecutive_ticks(&received).is_some(),
        "the next client read no two consecutive `tick N` lines within {DEADLINE:?}: {}\ntrace:\n{}",
        shown(&received),
        trace_summary(&emulator.stderr())
    );
    drop(port);
    terminate_cleanly(emulator);
}

/// As the user types it: esptool's default uploads its stub first, and the stub loads and
/// starts the program.
#[test]
fn load_ram_hello_prints_on_the_pty() {
    hello_reaches_the_next_client(&[]);
}

/// With `--no-stub` the ROM loader's MEM_END starts the program.
#[test]
fn load_ram_hello_without_stub_prints_on_the_pty() {
    hello_reaches_the_next_client(&["--no-stub"]);
}

/// Offset of the SDK's RF init data for a 1MB header (4 sectors before the end). The
/// emulator's boot applies the SDK's `rf_cal[0] != 0x05` check to every image (README:
/// "the SDK's part is still the model's"), blink's too, so the flash carries its first byte.
const RF_INIT_DATA_1MB: usize = MIB - 4 * 4 * KIB;
const RF_INIT_DATA_MAGIC: u8 = 0x05;

/// GPIO output values from the trace's `gpio: at T ms the outputs are 0xVVVV` lines, in order.
fn gpio_outputs(stderr: &str) -> Vec<(f64, u32)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.split_once("gpio: at ")?.1;
            let (millis, value) = rest.split_once(" ms the outputs are 0x")?;
            Some((
                millis.parse().ok()?,
                u32::from_str_radix(value.trim(), 16).ok()?,
            ))
        })
        .collect()
}

/// The ROM boots blink from flash: its boot log and blink's lines reach a client at 74880
/// baud (blink leaves the divider the ROM set: 115200 for an 80 MHz APB clock that runs at
/// 52 MHz), and `--trace` shows GPIO2 toggling.
#[test]
fn boot_flash_runs_the_blink_firmware() {
    let blink = Builder::new()
        .blink()
        .unwrap_or_else(|error| panic!("building blink: {error}"));
    let mut contents = fs::read(&blink.flash_image_path).expect("blink's flash image");
    assert!(
        contents.len() < RF_INIT_DATA_1MB,
        "blink's flash image runs into the RF init data"
    );
    contents.resize(MIB, 0xFF);
    contents[RF_INIT_DATA_1MB] = RF_INIT_DATA_MAGIC;
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, &contents).unwrap();
    let emulator = Emulator::spawn(
        &[
            "--flash",
            path_str(&flash),
            "--boot",
            "flash",
            "--stub",
            "run",
            "--trace",
        ],
        &dir.path().join("emulator.log"),
    );
    let mut port = open_port(&emulator, BOOT_LOG_BAUD);

    let outputs = wait_for_trace(&emulator, "3 gpio lines", |stderr| {
        let outputs = gpio_outputs(stderr);
        (outputs.len() >= 3).then_some(outputs)
    });
    const GPIO2: u32 = 1 << 2;
    assert_eq!(
        outputs[0].1 & GPIO2,
        GPIO2,
        "blink sets GPIO2 high first: {outputs:?}"
    );
    for pair in outputs.windows(2).take(8) {
        assert_ne!(
            pair[0].1 & GPIO2,
            pair[1].1 & GPIO2,
            "GPIO2 alternates: {outputs:?}"
        );
        assert!(pair[0].0 < pair[1].0, "times increase: {outputs:?}");
    }

    // The firmware's lines at the ROM's 74880 baud. A client that has only read so far
    // gets the power-up output resampled at the pty's default rate (a known emulator
    // limitation: the boot log printed before a client opens the port is garbled), so the
    // client first writes one byte: a rate the pty cannot read then counts as the chip's.
    port.write_all(b"\n").expect("write to the pty");
    let both_levels = |received: &[u8]| {
        let text = String::from_utf8_lossy(received);
        text.contains("GPIO2 low\n") && text.contains("GPIO2 high\n")
    };
    let received = read_until(&mut port, both_levels);
    assert!(
        both_levels(&received),
        "a client at {BOOT_LOG_BAUD} baud did not read blink's `GPIO2 high` and `GPIO2 low`: {}",
        shown(&received)
    );
    drop(port);
    terminate_cleanly(emulator);
}

/// esptool 3.0 uploads its own stub (the legacy one, entry 0x4010e004 in its STUB_CODE),
/// which the virtual CPU executes; flash_id and read_flash go through it.
#[test]
fn esptool_3_0_runs_its_own_stub() {
    const STUB_ENTRY: u32 = 0x4010_E004;
    let tool = esptool_3("3.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let contents = pseudo_random(MIB, 30);
    fs::write(&flash, &contents).unwrap();
    let emulator = Emulator::spawn(
        &["--flash", path_str(&flash), "--stub", "run", "--trace"],
        &dir.path().join("emulator.log"),
    );
    let esptool_py = |args: &[&str], log: &str| {
        let mut full = vec![
            "--before",
            "no_reset",
            "--after",
            "no_reset",
            "--port",
            emulator.port(),
        ];
        full.extend_from_slice(args);
        let (status, output) = run_output(&tool.executable, &full, &dir.path().join(log));
        assert!(
            status.success(),
            "esptool.py 3.0 {args:?} failed ({status}):\n{output}\ntrace:\n{}",
            trace_summary(&emulator.stderr())
        );
        assert_line(&output, "Stub running...");
        assert_line(&output, "Staying in bootloader.");
        output
    };

    let output = esptool_py(&["flash_id"], "flash_id.log");
    assert_line(&output, "Chip is ESP8266EX");
    assert_line(&output, "Manufacturer: ef");
    assert_line(&output, "Device: 4014");
    assert_line(&output, "Detected flash size: 1MB");
    assert_line(
        &emulator.stderr(),
        &format!("chip: the CPU starts at 0x{STUB_ENTRY:08x}"),
    );

    let readback = dir.path().join("out.bin");
    let output = esptool_py(
        &["read_flash", "0", "0x40000", path_str(&readback)],
        "read_flash.log",
    );
    assert_line(&output, "Read 262144 bytes at 0x0");
    let read = fs::read(&readback).unwrap();
    assert_eq!(read.len(), 256 * KIB);
    assert!(
        read == contents[..256 * KIB],
        "out.bin differs from the flash file's first 256 KiB"
    );
    terminate_cleanly(emulator);
}

/// Where the crash program is loaded, and its entry (after its one literal).
const CRASH_LOAD_ADDRESS: u32 = 0x4010_0000;
const CRASH_ENTRY: u32 = CRASH_LOAD_ADDRESS + 4;
/// Nothing is mapped here: an instruction fetch faults (EXCCAUSE 2).
const UNMAPPED: u32 = 0x2000_0000;

/// A RAM program that jumps to [`UNMAPPED`]:
/// ```text
/// 40100000: .word 0x20000000
/// 40100004: 21 ff ff   l32r a2, 0x40100000
/// 40100007: a0 02 00   jx   a2
/// ```
/// (encodings checked with xtensa-lx106-elf-objdump).
fn crash_image() -> Vec<u8> {
    let mut code = UNMAPPED.to_le_bytes().to_vec();
    code.extend_from_slice(&[0x21, 0xFF, 0xFF, 0xA0, 0x02, 0x00]);
    ram_image(CRASH_LOAD_ADDRESS, CRASH_ENTRY, code)
}

/// A version-1 image of `code` (padded to words) loaded at `load_address`, run at `entry`.
fn ram_image(load_address: u32, entry: u32, mut code: Vec<u8>) -> Vec<u8> {
    code.resize(code.len().next_multiple_of(4), 0);
    Image {
        flash_params: FlashParams::default(),
        entry,
        segments: vec![Segment {
            load_address,
            data: code,
        }],
        v2_prefix: None,
    }
    .build()
    .expect("a RAM image builds")
}

/// `esptool load-ram` of `image` through the ROM loader alone (`--no-stub`), so that the ROM
/// starts the program; returns esptool's output after checking it succeeded.
fn load_ram_without_stub(tool: &Esptool, port: &str, image: &Path, log: &Path) -> String {
    let (status, output) = run_output(
        &tool.executable,
        &[
            "--port",
            port,
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "--no-stub",
            "load-ram",
            path_str(image),
        ],
        log,
    );
    assert!(status.success(), "load-ram failed ({status}):\n{output}");
    output
}

/// A program that crashes halts the chip until a reset, which a pty cannot give: the trace
/// names the exception, every later esptool gets no answer (its DTR/RTS reset does nothing
/// on a pty), and the emulator stays alive, idle and answering SIGTERM.
///
/// The upload is `--no-stub`, so that the ROM loader starts the program: the crash is then
/// the only thing that happens to the chip.
#[test]
fn a_crashing_program_leaves_the_emulator_serving() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let image = dir.path().join("crash.bin");
    fs::write(&image, crash_image()).unwrap();
    let emulator = Emulator::spawn(
        &[
            "--flash",
            path_str(&flash),
            "--size",
            "1MB",
            "--stub",
            "run",
            "--trace",
        ],
        &dir.path().join("emulator.log"),
    );
    let port = emulator.port().to_owned();
    let output = load_ram_without_stub(&tool, &port, &image, &dir.path().join("load-ram.log"));
    assert_line(&output, &format!("executing at {CRASH_ENTRY:#010x}"));

    let halt = wait_for_trace(&emulator, "halt line", |stderr| {
        stderr
            .lines()
            .find(|line| line.contains("chip: halted:"))
            .map(str::to_owned)
    });
    for expected in [
        "Fatal exception (2)",
        "InstructionFetchError",
        "epc1=0x20000000",
        "excvaddr=0x20000000",
    ] {
        assert!(halt.contains(expected), "{expected:?} not in {halt:?}");
    }

    // The next user: esptool with its default reset, which a pty cannot carry out.
    let cpu_before = cpu_time(emulator.pid());
    let started = Instant::now();
    let (status, output) = run_output(
        &tool.executable,
        &["--port", &port, "chip-id"],
        &dir.path().join("chip-id.log"),
    );
    let wall = started.elapsed();
    let cpu = cpu_time(emulator.pid()).saturating_sub(cpu_before);
    assert_eq!(
        status.code(),
        Some(2),
        "chip-id on a halted chip:\n{output}"
    );
    assert_line(&output, "Chip was NOT reset");
    assert_line(&output, "No serial data received");
    assert!(
        cpu < wall / 4,
        "the halted chip used {cpu:?} of CPU during esptool's {wall:?} of connection attempts"
    );

    let stderr = emulator.stderr();
    let after_halt = &stderr[stderr.find("chip: halted:").expect("seen above")..];
    assert!(
        !after_halt.contains("chip: reset"),
        "nothing resets the halted chip:\n{}",
        trace_summary(&stderr)
    );
    terminate_cleanly(emulator);
}

/// Under `--realtime` an executed stub's flash erases took half the datasheet time: the
/// flash's busy time ran on both the host's clock and the core's cycles. Four 64 KiB block
/// erases are 4 × 150 ms on the chip, as the stub model answers.
#[test]
fn regression_realtime_erase_by_an_executed_stub_took_half_the_datasheet_time() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, pseudo_random(MIB, 31)).unwrap();
    let emulator = Emulator::spawn(
        &["--flash", path_str(&flash), "--realtime", "--stub", "run"],
        &dir.path().join("emulator.log"),
    );
    let (status, output) = run_output(
        &tool.executable,
        &[
            "--port",
            emulator.port(),
            "--before",
            "no-reset",
            "erase-region",
            "0",
            "0x40000",
        ],
        &dir.path().join("erase.log"),
    );
    assert!(
        status.success(),
        "erase-region failed ({status}):\n{output}"
    );
    let line = output
        .lines()
        .find(|line| line.contains("erased successfully in"))
        .unwrap_or_else(|| panic!("no erase line in:\n{output}"));
    let seconds: f64 = line
        .split("erased successfully in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line:?}"));
    assert!(
        (0.55..1.5).contains(&seconds),
        "4 block erases took {seconds} s on the virtual chip (datasheet: 0.6 s)"
    );
    terminate_cleanly(emulator);
    let erased = fs::read(&flash).unwrap();
    assert!(erased[..256 * KIB].iter().all(|&byte| byte == 0xFF));
}

/// Where the delay program is loaded; its entry follows its two literals.
const DELAY_LOAD_ADDRESS: u32 = esp_protocol::memory_map::IRAM.start;
const DELAY_ENTRY: u32 = DELAY_LOAD_ADDRESS + 8;
/// UART0's FIFO register: a store sends a byte.
const UART0_FIFO: u32 = esp_protocol::uart::UART0_BASE + esp_protocol::uart::reg::FIFO;

/// A RAM program that counts a register down from `count`, prints `X`, and does it again:
/// ```text
/// 40100000: .word 0x60000000
/// 40100004: .word count
/// 40100008: 31 fe ff   l32r a3, 0x40100000
/// 4010000b: 21 fe ff   l32r a2, 0x40100004
/// 4010000e: 22 c2 ff   addi a2, a2, -1
/// 40100011: 56 92 ff   bnez a2, 0x4010000e
/// 40100014: 42 a0 58   movi a4, 88
/// 40100017: 42 63 00   s32i a4, a3, 0
/// 4010001a: 46 fb ff   j    0x4010000b
/// ```
/// (encodings checked with xtensa-lx106-elf-objdump).
fn delay_image(count: u32) -> Vec<u8> {
    let mut code = UART0_FIFO.to_le_bytes().to_vec();
    code.extend_from_slice(&count.to_le_bytes());
    code.extend_from_slice(&[
        0x31, 0xFE, 0xFF, 0x21, 0xFE, 0xFF, 0x22, 0xC2, 0xFF, 0x56, 0x92, 0xFF, 0x42, 0xA0, 0x58,
        0x42, 0x63, 0x00, 0x46, 0xFB, 0xFF,
    ]);
    ram_image(DELAY_LOAD_ADDRESS, DELAY_ENTRY, code)
}

/// A delay loop that only counts in a register was taken for polling after a million quiet
/// cycles and the chip froze until a host byte arrived: the `X`s after it never came.
#[test]
fn regression_a_register_only_delay_loop_froze_the_chip() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let image = dir.path().join("delay.bin");
    fs::write(&image, delay_image(2_000_000)).unwrap();
    let emulator = Emulator::spawn(
        &["--flash", path_str(&flash), "--size", "1MB", "--trace"],
        &dir.path().join("emulator.log"),
    );
    load_ram_without_stub(
        &tool,
        emulator.port(),
        &image,
        &dir.path().join("load-ram.log"),
    );
    let mut port = open_port(&emulator, LOADER_BAUD);
    let xs = |received: &[u8]| received.iter().filter(|&&byte| byte == b'X').count();
    let received = read_until(&mut port, |received| xs(received) >= 3);
    assert!(
        xs(&received) >= 3,
        "fewer than 3 Xs from the delay loop; got {}\ntrace:\n{}",
        shown(&received),
        trace_summary(&emulator.stderr())
    );
    drop(port);
    terminate_cleanly(emulator);
}

/// Blink's flash image, with the RF init data a 1MB flash keeps at its end (the SDK's boot
/// check), as the files esptool writes: the image at 0x0 and one byte at the RF data.
fn blink_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let blink = Builder::new()
        .blink()
        .unwrap_or_else(|error| panic!("building blink: {error}"));
    let image = dir.join("blink.bin");
    fs::copy(&blink.flash_image_path, &image).expect("copy blink's flash image");
    let rf_data = dir.join("rf-init.bin");
    fs::write(&rf_data, [RF_INIT_DATA_MAGIC]).unwrap();
    (image, rf_data)
}

/// True once `received` holds the ROM's boot log from flash and, after it, both of blink's
/// lines: the image booted and runs.
fn booted_blink(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    text.find("boot mode:(3,6)").is_some_and(|boot| {
        let after = &text[boot..];
        after.contains("GPIO2 high\n") && after.contains("GPIO2 low\n")
    })
}

/// What the board sends a client at the boot log's rate until `booted_blink` holds or
/// [`DEADLINE`] passes (polled through the board, as no client is connected).
fn watch_boot(board: &esp_emulator::board::Board) -> Vec<u8> {
    let start = Instant::now();
    let mut received = Vec::new();
    while !booted_blink(&received) && start.elapsed() < DEADLINE && received.len() < MAX_READ {
        board.with_link(|link| {
            link.set_host_baud(BOOT_LOG_BAUD);
            link.poll_output(board.now(), &mut received);
        });
        std::thread::yield_now();
    }
    received
}

/// Issue 14's "`run` and `--after hard_reset` boot the flashed image, and a following
/// connection resets back into the loader", with esptool 5.6.0 over RFC 2217 on a NodeMCU
/// board: write-flash (its stub, then the default hard reset), then `run` (the stub again,
/// then its hard reset) each boot blink — the ROM's boot log, then blink's lines — and the
/// next flash-id's default reset takes the running firmware back to the loader.
#[test]
fn esptool_run_and_hard_reset_boot_the_flashed_image_and_the_next_connection_resets_into_the_loader(
) {
    use esp_emulator::board::{Board, BoardOptions};
    use esp_emulator::device::{BootMode, Device, DeviceConfig, ResetWiring};
    use esp_emulator::flash::SpiFlash;
    use esp_emulator::link::{Link, LinkConfig};
    use esp_emulator::listen::{ListenOptions, Listener};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let (image, rf_data) = blink_files(dir.path());
    let config = DeviceConfig {
        boot: BootMode::Flash,
        reset_wiring: ResetWiring::NodeMcu,
        ..DeviceConfig::default()
    };
    let device = Device::new(config, SpiFlash::blank(MIB).unwrap());
    let board = Arc::new(Board::new(
        Link::new(device, LinkConfig::default()),
        BoardOptions::default(),
    ));
    let listener = Listener::start(
        Arc::clone(&board),
        "rfc2217://127.0.0.1:0".parse().unwrap(),
        ListenOptions::default(),
    )
    .unwrap();
    let port = listener.endpoint().to_string();
    let tool = esptool("5.6.0");
    let esptool_run = |args: &[&str], log: &str| {
        let mut full = vec!["--port", port.as_str()];
        full.extend_from_slice(args);
        let (status, output) = run_output(&tool.executable, &full, &dir.path().join(log));
        assert!(status.success(), "esptool {args:?}:\n{output}");
        assert!(!output.contains("NOT reset"), "{output}");
        output
    };

    let output = esptool_run(
        &[
            "write-flash",
            "0x0",
            path_str(&image),
            &format!("{RF_INIT_DATA_1MB:#x}"),
            path_str(&rf_data),
        ],
        "write.log",
    );
    assert!(output.contains("Hard resetting via RTS pin"), "{output}");
    let received = watch_boot(&board);
    assert!(
        booted_blink(&received),
        "after write-flash's hard reset: {}",
        shown(&received)
    );

    let output = esptool_run(&["run"], "run.log");
    assert!(output.contains("Stub flasher running"), "{output}");
    let received = watch_boot(&board);
    assert!(
        booted_blink(&received),
        "after run with the stub: {}",
        shown(&received)
    );

    let output = esptool_run(&["flash-id"], "flash-id.log");
    assert!(output.contains("Detected flash size: 1MB"), "{output}");
    listener.stop();
}

/// esp-flasher's side of the same, in process on esp-emulator's `VirtualPort` (the `emu:`
/// path): with flashlab's stub running, `run` (RUN_USER_CODE) boots the flashed image, a new
/// connection's reset takes it back to the loader, and `--after hard_reset` boots it again.
#[test]
fn esp_flasher_run_after_the_stub_and_hard_reset_boot_the_flashed_image() {
    use esp_emulator::device::{BootMode, Device, DeviceConfig, ResetWiring};
    use esp_emulator::flash::SpiFlash;
    use esp_emulator::link::{Link, LinkConfig};
    use esp_emulator::serial_port::{PortTime, VirtualPort};
    use esp_flasher::{
        AfterReset, ConnectOptions, EmulatorTransport, Flasher, Loader, Silent, StubImage,
    };
    use serialport::SerialPort as _;

    let dir = tempfile::tempdir().unwrap();
    let (image, _) = blink_files(dir.path());
    let mut contents = fs::read(&image).unwrap();
    contents.resize(MIB, 0xFF);
    contents[RF_INIT_DATA_1MB] = RF_INIT_DATA_MAGIC;
    let config = DeviceConfig {
        boot: BootMode::Flash,
        reset_wiring: ResetWiring::NodeMcu,
        ..DeviceConfig::default()
    };
    let flash = SpiFlash::new(contents, Default::default()).unwrap();
    let link = Link::new(Device::new(config, flash), LinkConfig::default());
    let port = VirtualPort::new(link, PortTime::Virtual);
    let read_boot = |port: &VirtualPort| {
        let mut port = port.clone();
        port.set_baud_rate(BOOT_LOG_BAUD).unwrap();
        port.set_timeout(Duration::from_secs(2)).unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        while !booted_blink(&received) && received.len() < MAX_READ {
            match std::io::Read::read(&mut port, &mut buffer) {
                Ok(count) => received.extend_from_slice(&buffer[..count]),
                Err(_) => break,
            }
        }
        port.set_baud_rate(LOADER_BAUD).unwrap();
        received
    };
    let connect = |port: &VirtualPort| {
        let flasher = Flasher::connect(
            EmulatorTransport::on_port(port.clone()),
            &ConnectOptions {
                stub: Some(StubImage::flashlab()),
                ..ConnectOptions::default()
            },
            Box::new(Silent),
        )
        .expect("the reset takes the chip to the loader");
        assert_eq!(flasher.loader(), Loader::Stub);
        flasher
    };

    let mut flasher = connect(&port);
    flasher.run().unwrap();
    drop(flasher);
    let received = read_boot(&port);
    assert!(booted_blink(&received), "after run: {}", shown(&received));

    let flasher = connect(&port);
    flasher.finish(AfterReset::HardReset).unwrap();
    let received = read_boot(&port);
    assert!(
        booted_blink(&received),
        "after the hard reset: {}",
        shown(&received)
    );
}
