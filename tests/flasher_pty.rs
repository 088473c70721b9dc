//! The `esp-flasher` binary against the `esp-emulator` binary over a real pseudo-terminal
//! (`--port /dev/pts/N`), with esptool 5.6.0's ESP8266 stub (`--stub-file`) and without
//! (`--no-stub`), and cross-checked against the real esptool 5.6.0 and 4.12.0 on the same
//! virtual device. Every check looks at the output lines and at the bytes of the emulator's
//! backing file after SIGTERM (the emulator saves on SIGTERM), not only at exit codes.
//!
//! A pty has no DTR/RTS lines: every session must warn about that exactly once and carry on.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use tempfile::TempDir;

use crate::util::{
    binary, esptool, pseudo_random, run_output, wait_with_limit, with_both_esptools, Emulator,
    Esptool,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// An Espressif MAC (OUI 18:fe:34); the chip ID is its last three bytes.
const MAC: &str = "18:fe:34:12:34:ab";
/// How long one esp-flasher run may take before the test kills it and fails.
const FLASHER_TIME_LIMIT: Duration = Duration::from_secs(60);
/// The warning every session on a pty prints, once.
const NO_MODEM_LINES: &str = "the port has no DTR/RTS lines";

/// What one esp-flasher run did.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// Panics with the whole run unless the exit code is `code`.
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code of {self}");
        self
    }

    /// Panics unless a stdout line contains `text`.
    #[track_caller]
    fn says(&self, text: &str) -> &Run {
        assert!(
            self.stdout.lines().any(|line| line.contains(text)),
            "stdout lacks {text:?}: {self}"
        );
        self
    }

    /// Panics unless a stderr line contains `text`.
    #[track_caller]
    fn warns(&self, text: &str) -> &Run {
        assert!(
            self.stderr.lines().any(|line| line.contains(text)),
            "stderr lacks {text:?}: {self}"
        );
        self
    }

    /// Panics if stdout or stderr contains `text`.
    #[track_caller]
    fn never(&self, text: &str) -> &Run {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "{text:?} should not appear: {self}"
        );
        self
    }

    /// Panics unless the run connected over the pty, warned once about the missing modem lines
    /// and went on.
    #[track_caller]
    fn connected_once_without_modem_lines(&self, port: &str) -> &Run {
        self.says(&format!("Connected to ESP8266 on {port}:"));
        let warnings = self
            .stderr
            .lines()
            .filter(|line| line.contains(NO_MODEM_LINES))
            .count();
        assert_eq!(warnings, 1, "one modem-line warning expected: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "esp-flasher {:?} exited {} after {:.1} s\n--- stdout\n{}--- stderr\n{}",
            self.args,
            self.code,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// How a run loads the stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stub {
    /// No stub option: esp-flasher uploads flashlab's own stub, which the chip executes.
    Flashlab,
    /// `--stub-file` with esptool 5.6.0's `targets/stub_flasher/2/esp8266.json`.
    Esptool,
    /// `--no-stub`: the ROM loader alone.
    None,
}

/// One `esp-emulator` process with its backing file, in a temporary directory that is also
/// the working directory of every client run.
struct Board {
    emulator: Emulator,
    dir: TempDir,
    flash: PathBuf,
    runs: usize,
    /// The stub [`Board::ok`] runs use.
    stub: Stub,
}

impl Board {
    /// An emulator on a flash file holding `contents`, with `extra` flags.
    fn start(contents: &[u8], extra: &[&str]) -> Board {
        let dir = tempfile::tempdir().unwrap();
        let flash = dir.path().join("flash.bin");
        fs::write(&flash, contents).unwrap();
        let mut args = vec!["--flash", path_str(&flash), "--mac", MAC];
        args.extend_from_slice(extra);
        let emulator = Emulator::spawn(&args, &dir.path().join("emulator.log"));
        Board {
            emulator,
            dir,
            flash,
            runs: 0,
            stub: Stub::Flashlab,
        }
    }

    fn port(&self) -> String {
        self.emulator.port().to_owned()
    }

    /// A path in the board's directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `data` to `name` in the board's directory.
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, data).unwrap();
        path
    }

    /// Reads `name` from the board's directory.
    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap_or_else(|error| panic!("cannot read {name}: {error}"))
    }

    /// Runs `esp-flasher --port <pty>` with the stub choice and `args`, in the board's directory.
    fn flasher(&mut self, stub: Stub, args: &[&str]) -> Run {
        let mut full: Vec<String> = vec!["--port".into(), self.port()];
        match stub {
            Stub::Flashlab => {}
            Stub::Esptool => {
                full.push("--stub-file".into());
                full.push(path_str(&stub_json()).to_owned());
            }
            Stub::None => full.push("--no-stub".into()),
        }
        full.extend(args.iter().map(|arg| arg.to_string()));
        self.runs += 1;
        let stdout_path = self.path(&format!("flasher-{}.out", self.runs));
        let stderr_path = self.path(&format!("flasher-{}.err", self.runs));
        let started = Instant::now();
        let mut child = Command::new(binary("esp-flasher"))
            .args(&full)
            .current_dir(self.dir.path())
            .env_remove("ESP_FLASHER_STUB")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).unwrap())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start esp-flasher");
        let status = wait_with_limit(&mut child, FLASHER_TIME_LIMIT);
        let run = Run {
            args: full,
            code: status.and_then(|status| status.code()).unwrap_or(-1),
            stdout: fs::read_to_string(&stdout_path).unwrap(),
            stderr: fs::read_to_string(&stderr_path).unwrap(),
            took: started.elapsed(),
        };
        assert!(
            status.is_some(),
            "killed after {FLASHER_TIME_LIMIT:?}: {run}\nemulator stderr:\n{}",
            self.emulator.stderr()
        );
        run
    }

    /// Runs esp-flasher with the board's stub; requires success and the pty's one warning.
    #[track_caller]
    fn ok(&mut self, args: &[&str]) -> Run {
        let port = self.port();
        let run = self.flasher(self.stub, args).expect(0);
        run.connected_once_without_modem_lines(&port)
            .says("Stub flasher running.");
        run
    }

    /// Runs esp-flasher on the ROM loader alone; requires success and the pty's one warning.
    #[track_caller]
    fn rom_ok(&mut self, args: &[&str]) -> Run {
        let port = self.port();
        let run = self.flasher(Stub::None, args).expect(0);
        run.connected_once_without_modem_lines(&port)
            .never("Stub flasher");
        run
    }

    /// Runs real esptool with `--port <pty>` and `args` (in its own spelling); requires success.
    fn esptool(&mut self, tool: &Esptool, args: &[&str]) -> String {
        self.runs += 1;
        let mut full = vec!["--port", self.emulator.port()];
        full.extend_from_slice(args);
        let log = self.path(&format!("esptool-{}.log", self.runs));
        let (status, output) = run_output(&tool.executable, &full, &log);
        assert!(
            status.success(),
            "esptool {} {args:?} failed ({status}):\n{output}\nemulator stderr:\n{}",
            tool.version,
            self.emulator.stderr()
        );
        output
    }

    /// Stops the emulator with SIGTERM (which saves the flash) and returns the backing file.
    fn finish(self) -> Vec<u8> {
        let (status, stderr) = self.emulator.terminate();
        assert!(status.success(), "emulator exit {status}: {stderr}");
        fs::read(&self.flash).unwrap()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// esptool 5.6.0's ESP8266 stub (the esp-flasher-stub flavour), installed on first use.
fn stub_json() -> PathBuf {
    esptool("5.6.0").stub_json(2)
}

/// A Sonoff-like whole flash (firmware image at 0x0, SDK settings at the end) whose image
/// header says qio and 4MB, so that `-fm dout -fs 1MB` visibly patches bytes 2 and 3.
fn sonoff_with_qio_4mb_header(size: usize, seed: u64) -> Vec<u8> {
    let mut flash = sonoff_like_flash(size, seed);
    assert_eq!(
        flash[0], 0xE9,
        "the sample flash starts with an image header"
    );
    flash[2] = 0x00; // qio
    flash[3] = 0x40 | (flash[3] & 0x0F); // 4MB, the frequency kept
    flash
}

/// `image` with the header bytes `-fm dout -fs 1MB` write: mode 3, size 1MB (0x20), same frequency.
fn as_dout_1mb(image: &[u8]) -> Vec<u8> {
    let mut patched = image.to_vec();
    patched[2] = 0x03;
    patched[3] = 0x20 | (image[3] & 0x0F);
    patched
}

/// Compressible data, so that writes go through the stub's deflate path.
fn text_like(len: usize) -> Vec<u8> {
    b"flashlab pty data 0123456789 "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Panics, naming the first differing offset, unless `actual == expected`.
#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(at) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at {at:#x}: {:#04x}, expected {:#04x}",
            actual[at], expected[at]
        );
    }
}

/// What flash holds after `data` is written at the sector-aligned `address`: the data, and
/// 0xFF in the rest of its last sector (writes erase whole 4 KiB sectors).
fn written(flash: &mut [u8], address: u32, data: &[u8]) {
    let start = address as usize;
    assert_eq!(start % 0x1000, 0, "a sector-aligned address");
    let end = start + data.len();
    flash[start..end].copy_from_slice(data);
    flash[end..end.next_multiple_of(0x1000)].fill(0xFF);
}

/// What flash holds after esp-flasher (with a stub) writes `data` at `address`: the data,
/// and the rest of its sectors as they were (it reads them back and writes them merged).
fn placed(flash: &mut [u8], address: u32, data: &[u8]) {
    let start = address as usize;
    flash[start..start + data.len()].copy_from_slice(data);
}

/// Names of the files in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// 1. Every command over the pty, with and without the stub.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_command_over_the_pty_with_flashlabs_stub_1mb() {
    every_command_over_the_pty_with(Stub::Flashlab);
}

#[test]
fn every_command_over_the_pty_with_esptools_stub_1mb() {
    every_command_over_the_pty_with(Stub::Esptool);
}

fn every_command_over_the_pty_with(stub: Stub) {
    let initial = sonoff_with_qio_4mb_header(MIB, 1);
    let mut board = Board::start(&initial, &[]);
    board.stub = stub;
    let port = board.port();

    board.ok(&["chip_id"]).says("Chip ID: 0x001234ab");
    board
        .ok(&["read_mac"])
        .says(&format!("MAC:                {MAC}"));
    board
        .ok(&["flash_id"])
        .says("Manufacturer: ef")
        .says("Device: 4014")
        .says("Detected flash size: 1MB")
        .says("Hard resetting via RTS pin...");

    board
        .ok(&["read_flash", "0x1000", "0x2000", "part.bin"])
        .says("Read 8192 bytes from 0x00001000 in ");
    assert_bytes(
        &board.read("part.bin"),
        &initial[0x1000..0x3000],
        "read_flash",
    );

    // A small image with the qio/4MB header, written with esptool's -fs/-fm.
    let mut image = firmware_image(0x3000, 2);
    image[2] = 0x00;
    image[3] = 0x40 | (image[3] & 0x0F);
    board.file("image.bin", &image);
    board
        .ok(&[
            "write_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image.bin",
        ])
        .says("Flash parameters set to mode dout, size 1MB, freq 40m.")
        .says("Hash of data verified.");
    let mut expected = initial.clone();
    written(&mut expected, 0x0, &as_dout_1mb(&image));

    // verify_flash patches the header as write_flash did; without the flags the header differs.
    board
        .ok(&[
            "verify_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image.bin",
        ])
        .says("Hash of data verified.")
        .says("Verification successful (digest matched).");
    board
        .flasher(stub, &["verify_flash", "0x0", "image.bin"])
        .expect(1)
        .connected_once_without_modem_lines(&port)
        .says("'image.bin' differs from the flash.")
        .warns("verification failed")
        .never("Verification successful");

    board
        .ok(&["erase_region", "0x20000", "0x2000"])
        .says("Flash memory region erased successfully");
    assert!(expected[0x20000..0x22000].iter().any(|&byte| byte != 0xFF));
    expected[0x20000..0x22000].fill(0xFF);

    board
        .ok(&["read_flash_status"])
        .says("Flash memory status: 0x0000");
    board
        .ok(&[
            "write_flash_status",
            "--non-volatile",
            "--bytes",
            "2",
            "0x0200",
        ])
        .says("Initial flash memory status: 0x0000")
        .says("After flash memory status:   0x0200");
    // Non-volatile: still there in the next session, after the reset between them.
    board
        .ok(&["read_flash_status"])
        .says("Flash memory status: 0x0200");
    board
        .ok(&["write_flash_status", "--non-volatile", "0"])
        .says("After flash memory status:   0x0000");

    board
        .ok(&["read_mem", "0x40001000"])
        .says("0x40001000 = 0xfff0c101");
    board
        .ok(&["write_mem", "0x3ffe8000", "0x12345678"])
        .says("Wrote 0x12345678 with mask 0xffffffff to 0x3ffe8000.");
    board
        .ok(&["dump_mem", "0x40001000", "4", "rom.bin"])
        .says("Dumped 4 bytes from 0x40001000");
    assert_eq!(board.read("rom.bin"), [0x01, 0xC1, 0xF0, 0xFF]);

    board
        .ok(&["backup", "whole.bin"])
        .says("Read 1048576 bytes from 0x00000000 in ")
        .says("Hash of data verified.")
        .says("Backup record: 'whole.bin.json'");
    assert_bytes(&board.read("whole.bin"), &expected, "backup");
    let record = String::from_utf8(board.read("whole.bin.json")).unwrap();
    for field in [
        "\"chip\": \"ESP8266EX\"".to_owned(),
        format!("\"mac\": \"{MAC}\""),
        "\"flash_jedec_id\": \"ef4014\"".to_owned(),
        "\"flash_size\": 1048576".to_owned(),
    ] {
        assert!(record.contains(&field), "record lacks {field}: {record}");
    }

    board
        .ok(&["erase_flash"])
        .says("Flash memory erased successfully");
    board.file("blank.bin", &vec![0xFF; MIB]);
    board
        .ok(&["verify_flash", "0x0", "blank.bin"])
        .says("Verification successful (digest matched).");

    board
        .ok(&["restore", "whole.bin"])
        .says("Hash of data verified.")
        .says("Restored 'whole.bin'.");

    // run leaves the chip in its firmware; the next session finds the loader again.
    board
        .ok(&["run"])
        .says("Running the firmware in flash.")
        .never("Hard resetting");
    board.ok(&["chip_id"]).says("Chip ID: 0x001234ab");

    assert_bytes(&board.finish(), &expected, "backing file after restore");
}

#[test]
fn every_command_over_the_pty_on_the_rom_loader_alone_1mb() {
    let initial = sonoff_with_qio_4mb_header(MIB, 3);
    let mut board = Board::start(&initial, &[]);
    let port = board.port();

    board.rom_ok(&["chip_id"]).says("Chip ID: 0x001234ab");
    board
        .rom_ok(&["read_mac"])
        .says(&format!("MAC:                {MAC}"));
    board
        .rom_ok(&["flash_id"])
        .says("Device: 4014")
        .says("Detected flash size: 1MB");

    // What needs the stub says so, names --stub-file, sends nothing more and creates nothing.
    board.file("blank.bin", &vec![0xFF; 0x1000]);
    for command in [
        &["read_flash", "0x1000", "0x2000", "part.bin"][..],
        &["verify_flash", "0x0", "blank.bin"],
        &["erase_region", "0x20000", "0x2000"],
        &["erase_flash"],
        &["backup", "whole.bin"],
    ] {
        let run = board.flasher(Stub::None, command).expect(1);
        run.connected_once_without_modem_lines(&port)
            .warns("needs the flasher stub")
            .warns("--stub-file")
            .never("Hard resetting")
            .never("Verification successful")
            .never("erased successfully");
    }
    assert!(!board.path("part.bin").exists() && !board.path("whole.bin").exists());
    assert!(!board.path("whole.bin.json").exists());

    // restore works on the ROM loader (uncompressed, unverified): a backup and its record.
    let restored = sonoff_with_qio_4mb_header(MIB, 4);
    board.file("other.bin", &restored);
    board.file(
        "other.bin.json",
        format!(
            r#"{{"chip": "ESP8266EX", "mac": "{MAC}", "flash_jedec_id": "ef4014", "flash_size": {MIB},
                "md5": "{}", "date": "2026-01-01T00:00:00Z", "tool": "test"}}"#,
            md5_hex(&restored)
        )
        .as_bytes(),
    );
    board
        .rom_ok(&["restore", "other.bin"])
        .says("Wrote 1048576 bytes at 0x00000000")
        .says("Restored 'other.bin'.");

    // The ROM's FLASH_BEGIN erase cannot erase 3 sectors at 0x0 exactly (4 go), and it cannot
    // read the rest of the third first: the write is refused before anything is sent.
    board.file("odd.bin", &firmware_image(0x2400, 5));
    board
        .flasher(Stub::None, &["write_flash", "0x0", "odd.bin"])
        .expect(1)
        .warns("would also erase 0x2400..0x4000 (7168 bytes outside the file)")
        .warns("Drop --no-stub");

    // write_flash works on the ROM loader, patching the header, unverified (and says so).
    let image = firmware_image(0x2000, 5);
    board.file("image.bin", &image);
    let mut image_qio = image.clone();
    image_qio[2] = 0x00;
    image_qio[3] = 0x40 | (image[3] & 0x0F);
    board.file("image-qio.bin", &image_qio);
    board
        .rom_ok(&[
            "write_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image-qio.bin",
        ])
        .says("Flash parameters set to mode dout, size 1MB, freq 40m.")
        .says("Wrote 8192 bytes at 0x00000000")
        .warns("will not be verified")
        .never("Hash of data verified");
    let data = pseudo_random(0x2000, 6);
    board.file("data.bin", &data);
    board
        .rom_ok(&["write_flash", "0x40000", "data.bin"])
        .says("Wrote 8192 bytes at 0x00040000");

    board
        .rom_ok(&["read_flash_status"])
        .says("Flash memory status: 0x0000");
    board
        .rom_ok(&["write_flash_status", "--bytes", "1", "0x00"])
        .says("After flash memory status:   0x00");
    board
        .rom_ok(&["read_mem", "0x40001000"])
        .says("0x40001000 = 0xfff0c101");
    board
        .rom_ok(&["write_mem", "0x3ffe8000", "0x12345678", "0xff00ff00"])
        .says("Wrote 0x12345678 with mask 0xff00ff00 to 0x3ffe8000.");
    board
        .rom_ok(&["dump_mem", "0x40001000", "4", "rom.bin"])
        .says("Dumped 4 bytes from 0x40001000");
    assert_eq!(board.read("rom.bin"), [0x01, 0xC1, 0xF0, 0xFF]);
    board
        .rom_ok(&["run"])
        .says("Running the firmware in flash.");
    board.rom_ok(&["chip_id"]).says("Chip ID: 0x001234ab");

    let mut expected = restored;
    written(&mut expected, 0x0, &as_dout_1mb(&image_qio));
    written(&mut expected, 0x40000, &data);
    assert_bytes(&board.finish(), &expected, "backing file");
}

#[test]
fn flash_id_and_whole_chip_backup_over_the_pty_4mb() {
    let initial = sonoff_like_flash(4 * MIB, 9);
    let mut board = Board::start(&initial, &[]);
    for stub in [Stub::Flashlab, Stub::Esptool, Stub::None] {
        let port = board.port();
        board
            .flasher(stub, &["flash_id"])
            .expect(0)
            .connected_once_without_modem_lines(&port)
            .says("Device: 4016")
            .says("Detected flash size: 4MB");
    }
    board
        .ok(&["backup", "whole.bin"])
        .says("Read 4194304 bytes from 0x00000000 in ")
        .says("Hash of data verified.");
    assert_bytes(&board.read("whole.bin"), &initial, "backup");
    let record = String::from_utf8(board.read("whole.bin.json")).unwrap();
    assert!(record.contains("\"flash_size\": 4194304"), "{record}");
    assert!(
        record.contains("\"flash_jedec_id\": \"ef4016\""),
        "{record}"
    );
    assert_bytes(&board.finish(), &initial, "backing file");
}

/// MD5 of `data`, lower-case hex, as the backup record stores it.
fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

// ---------------------------------------------------------------------------------------------
// 2. The seed tutorials' sequence.
// ---------------------------------------------------------------------------------------------

#[test]
fn seed_sequence_over_the_pty_changes_only_header_bytes_2_and_3() {
    let initial = sonoff_with_qio_4mb_header(MIB, 5);
    let mut board = Board::start(&initial, &[]);
    board
        .ok(&["flash_id"])
        .says("Manufacturer: ef")
        .says("Device: 4014")
        .says("Detected flash size: 1MB");
    board
        .ok(&["read_flash", "0x00000", "0x100000", "image1M.bin"])
        .says("Read 1048576 bytes from 0x00000000 in ");
    let backup = board.read("image1M.bin");
    assert_bytes(&backup, &initial, "image1M.bin");
    board
        .ok(&["erase_flash"])
        .says("Flash memory erased successfully");
    board
        .ok(&[
            "write_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image1M.bin",
        ])
        .says("Flash parameters set to mode dout, size 1MB, freq 40m.")
        .says(" compressed) at 0x00000000 in ")
        .says("Hash of data verified.");
    board
        .ok(&[
            "verify_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image1M.bin",
        ])
        .says("Verification successful (digest matched).");
    let file = board.finish();
    assert_eq!(
        (file[2], file[3]),
        (0x03, 0x20 | (backup[3] & 0x0F)),
        "dout, 1MB"
    );
    assert_eq!(file[..2], backup[..2]);
    assert_bytes(&file[4..], &backup[4..], "backing file after byte 3");
}

// ---------------------------------------------------------------------------------------------
// 3. Cross-checks with the real esptool on the same virtual device.
// ---------------------------------------------------------------------------------------------

// Each with esptool 5.6.0 and 4.12.0.
with_both_esptools!(
    esptool_reads_back_what_esp_flasher_wrote,
    esp_flasher_reads_back_what_esptool_wrote,
);

fn esptool_reads_back_what_esp_flasher_wrote(tool: &Esptool) {
    let initial = pseudo_random(MIB, 21);
    let mut board = Board::start(&initial, &[]);
    let regions: [(u32, Vec<u8>); 3] = [
        (0x0, firmware_image(0x3000, 22)),
        (0x10000, pseudo_random(0xA123, 23)),
        (0x7F000, text_like(0x1000)),
    ];
    let mut args = vec!["write_flash".to_owned()];
    for (index, (address, data)) in regions.iter().enumerate() {
        let name = format!("region{index}.bin");
        board.file(&name, data);
        args.push(format!("{address:#x}"));
        args.push(name);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = board.ok(&args);
    assert_eq!(
        run.stdout.matches("Hash of data verified.").count(),
        3,
        "{run}"
    );

    let read_flash = tool.spell("read_flash");
    let mut expected = initial;
    for (index, (address, data)) in regions.iter().enumerate() {
        let out = board.path(&format!("esptool-read{index}.bin"));
        let size = format!("{:#x}", data.len());
        board.esptool(
            tool,
            &[&read_flash, &format!("{address:#x}"), &size, path_str(&out)],
        );
        assert_bytes(&fs::read(&out).unwrap(), data, "esptool's read_flash");
        placed(&mut expected, *address, data);
    }
    assert_bytes(&board.finish(), &expected, "backing file");
}

fn esp_flasher_reads_back_what_esptool_wrote(tool: &Esptool) {
    let initial = sonoff_like_flash(MIB, 31);
    let mut board = Board::start(&initial, &[]);
    let regions: [(u32, Vec<u8>); 3] = [
        (0x1000, pseudo_random(0x2345, 32)),
        (0x30000, text_like(0x8000)),
        (0xF0000, pseudo_random(0x3000, 33)),
    ];
    let write_flash = tool.spell("write_flash");
    let keep = tool.spell("keep");
    let mut args = vec![
        write_flash,
        "-fm".into(),
        keep.clone(),
        "-fs".into(),
        keep.clone(),
        "-ff".into(),
        keep,
    ];
    for (index, (address, data)) in regions.iter().enumerate() {
        let name = format!("region{index}.bin");
        board.file(&name, data);
        args.push(format!("{address:#x}"));
        args.push(path_str(&board.path(&name)).to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    board.esptool(tool, &args);
    let mut expected = initial;
    for (address, data) in &regions {
        written(&mut expected, *address, data);
    }

    for (index, (address, data)) in regions.iter().enumerate() {
        let name = format!("flasher-read{index}.bin");
        board.ok(&[
            "read_flash",
            &format!("{address:#x}"),
            &format!("{:#x}", data.len()),
            &name,
        ]);
        assert_bytes(&board.read(&name), data, "esp-flasher's read_flash");
    }
    let mut verify = vec!["verify_flash".to_owned()];
    for (index, (address, _)) in regions.iter().enumerate() {
        verify.push(format!("{address:#x}"));
        verify.push(format!("region{index}.bin"));
    }
    let verify: Vec<&str> = verify.iter().map(String::as_str).collect();
    let run = board.ok(&verify);
    run.says("Verification successful (digest matched).");
    assert_eq!(
        run.stdout.matches("Hash of data verified.").count(),
        3,
        "{run}"
    );

    // esp-flasher's backup of the device equals esptool's read_flash of it.
    board.ok(&["backup", "whole.bin"]);
    let esptool_copy = board.path("esptool-whole.bin");
    board.esptool(
        tool,
        &[
            &tool.spell("read_flash"),
            "0",
            "0x100000",
            path_str(&esptool_copy),
        ],
    );
    let backup = board.read("whole.bin");
    assert_bytes(
        &backup,
        &fs::read(&esptool_copy).unwrap(),
        "backup vs esptool",
    );
    assert_bytes(&backup, &expected, "backup");
    assert_bytes(&board.finish(), &expected, "backing file");
}

// ---------------------------------------------------------------------------------------------
// 4. Faults over the pty.
// ---------------------------------------------------------------------------------------------

/// A backup on a board with `faults` (and `--seed`) completes, says it retried, and equals the
/// backing file.
fn backup_survives(faults: &[&str], seed: u64, retry_warning: &str) -> Run {
    let initial = sonoff_like_flash(MIB, 41);
    let seed = seed.to_string();
    let mut extra = vec!["--seed", seed.as_str()];
    for fault in faults {
        extra.extend(["--fault", fault]);
    }
    let mut board = Board::start(&initial, &extra);
    let run = board.ok(&["backup", "whole.bin"]);
    run.says("Hash of data verified.")
        .warns("reading it again (attempt 2)")
        .warns(retry_warning);
    assert_bytes(&board.read("whole.bin"), &initial, "backup");
    assert_bytes(&board.finish(), &initial, "backing file");
    run
}

#[test]
fn corrupt_data_0xffd_bytes_backup_still_completes() {
    // esptool's "Corrupt data, expected 0x1000 bytes but received 0xffd bytes". The backup
    // reads compressed: the cut block inflates short of its 4096 bytes.
    backup_survives(
        &["short-read:frame=3,drop=3"],
        7,
        "of 4096 bytes)); reading it again",
    );
}

#[test]
fn no_answer_to_the_first_compressed_read_backup_still_completes() {
    backup_survives(
        &["timeout:op=READ_FLASH_DEFLATE,nth=1"],
        7,
        "failed (timeout); reading it again",
    );
}

#[test]
fn bit_flips_at_1e_5_md5_digest_mismatch_backup_still_completes() {
    // With seed 5 (as with 7 of the first 16 seeds), five reads of one 64 KiB block all came
    // back corrupt and the backup failed ("reading flash failed at 0x... after 5 attempts"),
    // until a corrupt block was read again at half the length.
    backup_survives(&["bitflip:rate=1e-5"], 5, "failed (MD5 digest mismatch)");
}

#[test]
fn bad_md5_write_flash_exits_1_without_a_success_line() {
    let initial = sonoff_like_flash(MIB, 51);
    let mut board = Board::start(&initial, &["--fault", "bad-md5"]);
    let port = board.port();
    let data = text_like(0x4000);
    board.file("text.bin", &data);
    let run = board
        .flasher(Stub::Flashlab, &["write_flash", "0x80000", "text.bin"])
        .expect(1);
    run.connected_once_without_modem_lines(&port)
        .warns("verification failed")
        .warns("do not boot");
    for success in [
        "Hash of data verified",
        "Wrote ",
        "Compressed ",
        "Hard resetting",
        "Staying in bootloader",
        "successful",
    ] {
        run.never(success);
    }
    // The data itself went to the flash; only the digest lies.
    let mut expected = initial;
    written(&mut expected, 0x80000, &data);
    assert_bytes(&board.finish(), &expected, "backing file");
}

#[test]
fn cable_pulled_mid_backup_exits_1_names_the_address_and_leaves_no_file() {
    let initial = sonoff_like_flash(MIB, 61);
    // About 200 KB into the chip's output: well inside the 1MB read, which sends the firmware
    // compressed to about two thirds (some 300 KB of flash by then).
    let mut board = Board::start(&initial, &["--fault", "disconnect:after=200000"]);
    let port = board.port();
    fs::create_dir(board.path("out")).unwrap();
    let run = board
        .flasher(Stub::Flashlab, &["backup", "out/whole.bin"])
        .expect(1);
    run.connected_once_without_modem_lines(&port)
        .never("Hash of data verified")
        .never("Hard resetting");
    // The address reached: the block that was being read when the cable went.
    let named = run
        .stderr
        .lines()
        .find_map(|line| {
            let at = line.find(" at 0x")?;
            let hex: String = line[at + 6..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            u32::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or_else(|| panic!("no address named: {run}"));
    assert!(
        (0x40000..0x70000).contains(&named),
        "the address named, {named:#x}, is not where ~200 KB had been sent: {run}"
    );
    assert!(
        listing(&board.path("out")).is_empty(),
        "files left behind: {:?}",
        listing(&board.path("out"))
    );
    assert_bytes(&board.finish(), &initial, "backing file");
}

/// While another program held the pty, esp-flasher said the port did not exist and listed
/// no ports: the port is there and busy.
#[test]
fn regression_a_busy_port_was_called_missing() {
    let mut board = Board::start(&sonoff_like_flash(MIB, 71), &[]);
    let holder = esp_flasher::SerialTransport::open(&board.port(), 115_200)
        .expect("the first client opens the pty");
    let run = board.flasher(Stub::Flashlab, &["flash_id"]).expect(1);
    run.warns(&format!(
        "serial port {} is in use by another program",
        board.port()
    ))
    .warns("Close the other program")
    .never("does not exist");
    drop(holder);
    board.finish();
}
