//! Real esptool (5.6.0 and 4.12.0, installed from PyPI on demand) against the
//! `esp-emulator` binary over its pty. Each check looks at esptool's output lines and at the
//! bytes of the backing file, not only at exit codes. Expected texts come from the two
//! versions' sources (`cmds.py`, `loader.py`) and the fact sheet in notes/esptool-esp8266.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use esp_emulator::sample_firmware::firmware_image;
use tempfile::TempDir;

use crate::util::{pseudo_random, run_output, with_both_esptools, Emulator, Esptool};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// An Espressif MAC whose OUI the eFuse selects (18:fe:34), as on most modules.
const MAC: &str = "18:fe:34:12:34:ab";

/// One emulator process with its backing file, driven by one esptool version.
struct Board {
    tool: Esptool,
    emulator: Emulator,
    dir: TempDir,
    flash: PathBuf,
    runs: usize,
}

impl Board {
    /// An emulator on a flash file of `contents` (or a new erased one of `size`) with `extra` flags.
    fn start(tool: &Esptool, contents: &[u8], extra: &[&str]) -> Board {
        let dir = tempfile::tempdir().unwrap();
        let flash = dir.path().join("flash.bin");
        fs::write(&flash, contents).unwrap();
        let mut args = vec!["--flash", path_str(&flash)];
        if !extra.contains(&"--mac") {
            args.extend(["--mac", MAC]);
        }
        args.extend_from_slice(extra);
        let emulator = Emulator::spawn(&args, &dir.path().join("emulator.log"));
        Board {
            tool: tool.clone(),
            emulator,
            dir,
            flash,
            runs: 0,
        }
    }

    /// A blank board of `size` bytes.
    fn blank(tool: &Esptool, size: usize, extra: &[&str]) -> Board {
        Self::start(tool, &vec![0xFF; size], extra)
    }

    /// A path in the board's temporary directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `data` to a file in the temporary directory and returns its path.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, data).unwrap();
        path
    }

    /// Runs esptool with `--port <pty>` and `args` (command names in this version's spelling).
    fn run(&mut self, args: &[&str]) -> (ExitStatus, String) {
        self.runs += 1;
        let mut full = vec!["--port", self.emulator.port()];
        full.extend_from_slice(args);
        let log = self.path(&format!("esptool-{}.log", self.runs));
        run_output(&self.tool.executable, &full, &log)
    }

    /// Runs esptool and requires success; returns its output.
    fn ok(&mut self, args: &[&str]) -> String {
        let (status, output) = self.run(args);
        assert!(
            status.success(),
            "esptool {} {args:?} failed ({status}):\n{output}\nemulator stderr:\n{}",
            self.tool.version,
            self.emulator.stderr()
        );
        output
    }

    /// Runs esptool and requires it to fail with exit code 2; returns its output.
    fn fatal(&mut self, args: &[&str]) -> String {
        let (status, output) = self.run(args);
        assert_eq!(
            status.code(),
            Some(2),
            "esptool {} {args:?} should fail with a fatal error:\n{output}",
            self.tool.version
        );
        output
    }

    /// Stops the emulator (SIGTERM, which saves the flash) and returns the backing file.
    fn finish(self) -> Vec<u8> {
        let (status, stderr) = self.emulator.terminate();
        assert!(status.success(), "emulator exit {status}: {stderr}");
        fs::read(&self.flash).unwrap()
    }

    /// This version's spelling of a command or choice.
    fn spell(&self, name: &str) -> String {
        self.tool.spell(name)
    }

    /// `text5` for esptool 5.x, `text4` for 4.x.
    fn says<'a>(&self, text5: &'a str, text4: &'a str) -> &'a str {
        if self.tool.is_v5() {
            text5
        } else {
            text4
        }
    }
}

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

/// Compressible data, so that both versions use FLASH_DEFL_*.
fn text_like(len: usize) -> Vec<u8> {
    b"flashlab conformance data 0123456789 "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

// Each with esptool 5.6.0 and 4.12.0.
with_both_esptools!(
    chip_id_with_default_and_no_reset,
    read_mac,
    regression_baud_9600_gets_no_serial_data_under_realtime,
    flash_id_1mb,
    flash_id_4mb,
    flash_id_override,
    esp8285,
    read_flash_whole_chip,
    write_flash_regions_keep_header,
    write_flash_sets_header,
    write_flash_no_stub,
    verify_flash,
    erase_flash,
    erase_region,
    flash_status,
    memory_commands,
    fault_short_read,
    fault_timeout,
    fault_bad_md5,
    fault_boot_log_and_noise,
    fault_write_protect,
    fault_stuck_sector,
    fault_fake_size,
);

fn chip_id_with_default_and_no_reset(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &[]);
    let chip_id = board.spell("chip_id");
    let output = board.ok(&[&chip_id]);
    assert_line(&output, "Chip ID: 0x001234ab");
    assert_line(
        &output,
        board.says("Chip type:          ESP8266EX", "Chip is ESP8266EX"),
    );
    assert_line(&output, "WARNING: Chip was NOT reset.");
    // A second session on the same port, without touching the (missing) modem lines.
    let no_reset = board.spell("no_reset");
    let output = board.ok(&["--before", &no_reset, "--after", &no_reset, &chip_id]);
    assert_line(&output, "Chip ID: 0x001234ab");
    assert_line(&output, "Staying in bootloader.");
    assert!(!output.contains("NOT reset"), "{output}");
    if tool.is_v5() {
        // 5.x accepts the 4.x spellings too.
        let output = board.ok(&["--before", "no_reset", "chip_id"]);
        assert_line(&output, "Chip ID: 0x001234ab");
    }
    board.finish();
}

fn read_mac(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &["--mac", "5c:cf:7f:a1:b2:c3"]);
    let output = board.ok(&[&board.spell("read_mac")]);
    assert_line(
        &output,
        board.says(
            "MAC:                5c:cf:7f:a1:b2:c3",
            "MAC: 5c:cf:7f:a1:b2:c3",
        ),
    );
    board.finish();
}

/// esptool starts at `--baud` when it is below 115200, as the ESP8266's ROM loader measures
/// the rate of the host's first bytes. Under `--realtime` the virtual chip stayed at 115200,
/// so `--baud 9600` failed with "No serial data received" where a board answers.
fn regression_baud_9600_gets_no_serial_data_under_realtime(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &["--realtime"]);
    let output = board.ok(&["--baud", "9600", "--no-stub", &board.spell("read_mac")]);
    assert_line(
        &output,
        board.says(
            "MAC:                18:fe:34:12:34:ab",
            "MAC: 18:fe:34:12:34:ab",
        ),
    );
    // The crystal comes from the UART's divider at the rate esptool connected at.
    assert_line(
        &output,
        board.says("Crystal frequency:  26MHz", "Crystal is 26MHz"),
    );
    board.finish();
}

fn flash_id(tool: &Esptool, size: usize, extra: &[&str], lines: &[&str]) {
    let mut board = Board::blank(tool, size, extra);
    let output = board.ok(&[&board.spell("flash_id")]);
    for line in lines {
        assert_line(&output, line);
    }
    board.finish();
}

fn flash_id_1mb(tool: &Esptool) {
    flash_id(
        tool,
        MIB,
        &[],
        &[
            "Manufacturer: ef",
            "Device: 4014",
            "Detected flash size: 1MB",
        ],
    );
}

fn flash_id_4mb(tool: &Esptool) {
    flash_id(
        tool,
        4 * MIB,
        &[],
        &[
            "Manufacturer: ef",
            "Device: 4016",
            "Detected flash size: 4MB",
        ],
    );
}

fn flash_id_override(tool: &Esptool) {
    flash_id(
        tool,
        4 * MIB,
        &["--flash-id", "e04016"],
        &[
            "Manufacturer: e0",
            "Device: 4016",
            "Detected flash size: 4MB",
        ],
    );
}

fn esp8285(tool: &Esptool) {
    let mut board = Board::blank(tool, MIB, &["--chip", "esp8285"]);
    let output = board.ok(&[&board.spell("flash_id")]);
    assert_line(
        &output,
        board.says("Chip type:          ESP8285N08", "Chip is ESP8285N08"),
    );
    assert_line(
        &output,
        board.says(
            "Features:           Wi-Fi, 160MHz, Embedded Flash",
            "Features: WiFi, Embedded Flash",
        ),
    );
    assert_line(&output, "Detected flash size: 1MB");
    board.finish();
}

fn read_flash_whole_chip(tool: &Esptool) {
    let contents = pseudo_random(MIB, 11);
    let mut board = Board::start(tool, &contents, &[]);
    let out = board.path("read.bin");
    let output = board.ok(&[&board.spell("read_flash"), "0", "0x100000", path_str(&out)]);
    assert_line(
        &output,
        board.says(
            "Read 1048576 bytes from 0x00000000",
            "Read 1048576 bytes at 0x00000000",
        ),
    );
    assert!(fs::read(&out).unwrap() == contents, "read_flash differs");
    assert!(board.finish() == contents, "reading changed the flash");
}

fn write_flash_regions_keep_header(tool: &Esptool) {
    let initial = pseudo_random(MIB, 3);
    let mut board = Board::start(tool, &initial, &[]);
    let image = firmware_image(0x3000, 5);
    let random = pseudo_random(0xA000, 6);
    let text = text_like(0x1000);
    let files = [
        (0x0, board.file("image.bin", &image)),
        (0x10000, board.file("random.bin", &random)),
        (0x7F000, board.file("text.bin", &text)),
    ];
    let write_flash = board.spell("write_flash");
    let mut args = vec![
        write_flash.as_str(),
        "-fm",
        "keep",
        "-fs",
        "keep",
        "-ff",
        "keep",
    ];
    let offsets: Vec<String> = files
        .iter()
        .map(|(offset, _)| format!("{offset:#x}"))
        .collect();
    for ((_, path), offset) in files.iter().zip(&offsets) {
        args.push(offset);
        args.push(path_str(path));
    }
    let output = board.ok(&args);
    assert!(
        !output.contains("Flash param"),
        "keep changes nothing:\n{output}"
    );
    if tool.is_v5() {
        assert_eq!(
            output.matches("Hash of data verified.").count(),
            3,
            "{output}"
        );
    }
    let file = board.finish();
    let mut expected = initial;
    expected[..0x3000].copy_from_slice(&image);
    expected[0x10000..0x1A000].copy_from_slice(&random);
    expected[0x7F000..0x80000].copy_from_slice(&text);
    assert_eq!(file[..4], image[..4], "header kept");
    assert!(
        file == expected,
        "backing file differs from the written regions"
    );
}

fn write_flash_sets_header(tool: &Esptool) {
    let mut board = Board::blank(tool, MIB, &[]);
    let image = firmware_image(0x2000, 8);
    assert_eq!(image[..4], [0xE9, 0x02, 0x03, 0x20], "dout, 1MB, 40m");
    let path = board.file("image.bin", &image);
    let output = board.ok(&[
        &board.spell("write_flash"),
        "-fm",
        "dio",
        "-fs",
        "1MB",
        "-ff",
        "80m",
        "0x0",
        path_str(&path),
    ]);
    assert_line(
        &output,
        board.says(
            "Flash parameters set to 0x022f.",
            "Flash params set to 0x022f",
        ),
    );
    // `detect` takes the size from the flash ID: 1MB is 0x20 in the high nibble.
    let output = board.ok(&[
        &board.spell("write_flash"),
        "-fm",
        "qio",
        "-fs",
        "detect",
        "-ff",
        "26m",
        "0x0",
        path_str(&path),
    ]);
    assert_line(
        &output,
        board.says(
            "Flash parameters set to 0x0021.",
            "Flash params set to 0x0021",
        ),
    );
    let file = board.finish();
    assert_eq!(file[..4], [0xE9, 0x02, 0x00, 0x21]);
    assert_eq!(
        file[4..0x2000],
        image[4..],
        "only the header's parameters change"
    );
}

fn write_flash_no_stub(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &[]);
    let data = pseudo_random(0x2400, 9);
    let path = board.file("data.bin", &data);
    let output = board.ok(&[
        "--no-stub",
        &board.spell("write_flash"),
        "0x4000",
        path_str(&path),
    ]);
    assert_line(&output, "Took ");
    let file = board.finish();
    assert_eq!(&file[0x4000..0x6400], &data[..]);
    assert!(file[..0x4000].iter().all(|&byte| byte == 0xFF));
    assert!(file[0x6400..].iter().all(|&byte| byte == 0xFF));
}

fn verify_flash(tool: &Esptool) {
    let contents = pseudo_random(256 * KIB, 12);
    let mut board = Board::start(tool, &contents, &[]);
    let same = board.file("same.bin", &contents[0x1000..0x1800]);
    let output = board.ok(&[&board.spell("verify_flash"), "0x1000", path_str(&same)]);
    assert_line(
        &output,
        board.says(
            "Verification successful (digest matched).",
            "-- verify OK (digest matched)",
        ),
    );
    let other = board.file("other.bin", &pseudo_random(0x800, 13));
    let output = board.fatal(&[&board.spell("verify_flash"), "0x1000", path_str(&other)]);
    assert_line(
        &output,
        board.says(
            "Verification failed (digest mismatch).",
            "-- verify FAILED (digest mismatch)",
        ),
    );
    assert!(board.finish() == contents);
}

fn erase_flash(tool: &Esptool) {
    let mut board = Board::start(tool, &pseudo_random(256 * KIB, 14), &[]);
    let output = board.ok(&[&board.spell("erase_flash")]);
    assert_line(
        &output,
        board.says(
            "Flash memory erased successfully",
            "Chip erase completed successfully",
        ),
    );
    assert!(board.finish().iter().all(|&byte| byte == 0xFF));
}

fn erase_region(tool: &Esptool) {
    let contents = pseudo_random(256 * KIB, 15);
    let mut board = Board::start(tool, &contents, &[]);
    let output = board.ok(&[&board.spell("erase_region"), "0x1000", "0x2000"]);
    assert_line(
        &output,
        board.says(
            "Flash memory region erased successfully",
            "Erase completed successfully",
        ),
    );
    let file = board.finish();
    assert!(file[0x1000..0x3000].iter().all(|&byte| byte == 0xFF));
    assert_eq!(file[..0x1000], contents[..0x1000]);
    assert!(file[0x3000..] == contents[0x3000..]);
}

fn flash_status(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &[]);
    let read_status = board.spell("read_flash_status");
    let output = board.ok(&[&read_status]);
    assert_line(
        &output,
        board.says("Flash memory status: 0x0000", "Status value: 0x0000"),
    );
    let output = board.ok(&[
        &board.spell("write_flash_status"),
        "--non-volatile",
        "--bytes",
        "2",
        "0x0200",
    ]);
    assert_line(
        &output,
        board.says(
            "After flash memory status:   0x0200",
            "After flash status:   0x0200",
        ),
    );
    // Non-volatile: still there in the next session, after the reset between them.
    let output = board.ok(&[&read_status]);
    assert_line(
        &output,
        board.says("Flash memory status: 0x0200", "Status value: 0x0200"),
    );
    board.finish();
}

fn memory_commands(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &[]);
    let output = board.ok(&[&board.spell("read_mem"), "0x40001000"]);
    assert_line(&output, "0x40001000 = 0xfff0c101");
    let output = board.ok(&[
        &board.spell("write_mem"),
        "0x3ffe8000",
        "0x12345678",
        "0xffffffff",
    ]);
    assert_line(
        &output,
        board.says(
            "Wrote 0x12345678 with mask 0xffffffff to 0x3ffe8000.",
            "Wrote 12345678, mask ffffffff to 3ffe8000",
        ),
    );
    let dump = board.path("dump.bin");
    let output = board.ok(&[&board.spell("dump_mem"), "0x40001000", "4", path_str(&dump)]);
    assert_line(
        &output,
        board.says("Dumped 4 bytes from 0x40001000", "Done!"),
    );
    assert_eq!(fs::read(&dump).unwrap(), [0x01, 0xC1, 0xF0, 0xFF]);
    board.finish();
}

fn fault_short_read(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &["--fault", "short-read:frame=1,drop=3"]);
    let out = board.path("read.bin");
    let output = board.fatal(&[&board.spell("read_flash"), "0", "0x3000", path_str(&out)]);
    assert_line(
        &output,
        board.says(
            "A fatal error occurred: Corrupt data, expected 0x1000 bytes but received 0xffd bytes.",
            "A fatal error occurred: Corrupt data, expected 0x1000 bytes but received 0xffd bytes",
        ),
    );
    board.finish();
}

fn fault_timeout(tool: &Esptool) {
    let mut board = Board::blank(
        tool,
        256 * KIB,
        &["--fault", "timeout:op=FLASH_DEFL_DATA,nth=1"],
    );
    let path = board.file("text.bin", &text_like(0x4000));
    let output = board.fatal(&[&board.spell("write_flash"), "0x10000", path_str(&path)]);
    assert_line(
        &output,
        board.says(
            "A fatal error occurred: No more data to read from the serial port.",
            "A fatal error occurred: The chip stopped responding.",
        ),
    );
    board.finish();
}

fn fault_bad_md5(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &["--fault", "bad-md5"]);
    let data = text_like(0x2000);
    let path = board.file("text.bin", &data);
    let output = board.fatal(&[&board.spell("write_flash"), "0x10000", path_str(&path)]);
    assert_line(
        &output,
        "A fatal error occurred: MD5 of file does not match data in flash!",
    );
    assert_line(&output, board.says("Flash MD5: ", "Flash md5: "));
    // The data itself was written; only the digest lies.
    assert_eq!(&board.finish()[0x10000..0x12000], &data[..]);
}

fn fault_boot_log_and_noise(tool: &Esptool) {
    for fault in ["boot-log", "noise:bytes=40"] {
        let mut board = Board::blank(tool, 256 * KIB, &["--fault", fault, "--seed", "3"]);
        let chip_id = board.spell("chip_id");
        // Two sessions: the preamble comes again after the reset between them.
        for _ in 0..2 {
            let output = board.ok(&[&chip_id]);
            assert_line(&output, "Chip ID: 0x001234ab");
            // The first SYNC try meets the garbage and fails: one dot, then it connects.
            assert!(
                output.lines().any(|line| line == "."),
                "no failed SYNC try in:\n{output}"
            );
        }
        board.finish();
    }
}

/// The block-protect bits are set and the status register is writable. esptool 5's
/// esp-flasher-stub writes through the protection and finds nothing written; esptool 4's
/// legacy stub calls the ROM's `SPIUnlock` as it starts, which clears the bits, so its write
/// succeeds (what a board with this flash does).
fn fault_write_protect(tool: &Esptool) {
    let mut board = Board::blank(tool, 256 * KIB, &["--fault", "write-protect"]);
    let output = board.ok(&[&board.spell("read_flash_status"), "--bytes", "1"]);
    assert_line(
        &output,
        board.says("Flash memory status: 0x001c", "Status value: 0x001c"),
    );
    let data = text_like(0x1000);
    let path = board.file("text.bin", &data);
    let write = [&board.spell("write_flash"), "0x10000", path_str(&path)];
    if tool.is_v5() {
        let output = board.fatal(&write);
        assert_line(
            &output,
            "A fatal error occurred: Write failed, the written flash region is empty.",
        );
        assert!(board.finish().iter().all(|&byte| byte == 0xFF));
    } else {
        let output = board.ok(&write);
        assert_line(&output, "Hash of data verified.");
        let output = board.ok(&[&board.spell("read_flash_status"), "--bytes", "1"]);
        assert_line(&output, "Status value: 0x0000");
        let file = board.finish();
        assert_eq!(&file[0x10000..0x11000], &data[..], "written once unlocked");
    }
}

fn fault_stuck_sector(tool: &Esptool) {
    let contents = pseudo_random(256 * KIB, 16);
    let mut board = Board::start(tool, &contents, &["--fault", "stuck-sector:addr=0x2000"]);
    board.ok(&[&board.spell("erase_region"), "0x1000", "0x3000"]);
    let file = board.finish();
    assert!(file[0x1000..0x2000].iter().all(|&byte| byte == 0xFF));
    assert_eq!(file[0x2000..0x3000], contents[0x2000..0x3000], "stuck");
    assert!(file[0x3000..0x4000].iter().all(|&byte| byte == 0xFF));
}

fn fault_fake_size(tool: &Esptool) {
    let mut board = Board::blank(tool, 4 * MIB, &["--fault", "fake-size:real=1MB"]);
    let output = board.ok(&[&board.spell("flash_id")]);
    assert_line(&output, "Detected flash size: 4MB");
    let data = text_like(0x1000);
    let path = board.file("text.bin", &data);
    // Written at 1MB, it lands at 0: the addresses wrap at the real size.
    board.ok(&[&board.spell("write_flash"), "0x100000", path_str(&path)]);
    let file = board.finish();
    assert_eq!(file.len(), 4 * MIB, "the file keeps the claimed size");
    assert_eq!(&file[..0x1000], &data[..]);
    assert!(file[0x100000..0x101000].iter().all(|&byte| byte == 0xFF));
}

with_both_esptools!(stub_images_match_the_device_model);

/// The device tells the stubs apart by entry point; the shipped images must agree.
fn stub_images_match_the_device_model(tool: &Esptool) {
    use esp_emulator::device::StubFlavor;
    let legacy = fs::read_to_string(tool.stub_json(1)).unwrap();
    let entry = format!("\"entry\": {}", StubFlavor::LEGACY_ENTRY);
    assert!(legacy.contains(&entry), "legacy stub entry is not {entry}");
    let flasher_stub = fs::read_to_string(tool.stub_json(2)).unwrap();
    assert!(flasher_stub.contains("\"entry\": "));
    assert!(!flasher_stub.contains(&entry));
}
