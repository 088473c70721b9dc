//! `esp-flasher monitor` (and `--monitor` after write_flash, restore and run) against the
//! virtual chip, in process (`emu:`) and behind `esp-emulator`'s pty. The firmware is
//! flashlab's `crash` (`programs/c/firmware/crash.c`), executed by the virtual CPU: the ROM
//! prints its boot log at 74880 baud, the firmware sets UART0 to 115200, greets three times
//! and dies on a NULL pointer, so the ROM's exception handler prints its dump at 115200.
//! The in-process line garbles bytes read at another rate than the chip's, so clean text
//! on both sides of the switch is the proof that the monitor switched at the right moment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lx106_programs::{Builder, FlashFirmware};

use crate::util::{binary, wait_with_limit, Emulator};

const MIB: usize = 1024 * 1024;
/// Offset of the SDK's RF init data for a 1MB header, and its first byte: the emulator
/// applies the SDK's `rf_cal[0]` check to every boot.
const RF_INIT_DATA_1MB: usize = MIB - 4 * 4096;
const RF_INIT_DATA_MAGIC: u8 = 0x05;
/// The line of `crash.c` that reads through the NULL pointer.
const CRASH_LINE_TEXT: &str = "return object[1];";

fn crash_firmware() -> FlashFirmware {
    Builder::new()
        .crash()
        .unwrap_or_else(|error| panic!("building the crash firmware: {error}"))
}

/// A 1MB flash file holding `firmware` at 0x0 and the RF init data.
fn flash_with(firmware: &FlashFirmware, dir: &Path) -> PathBuf {
    let mut contents = fs::read(&firmware.flash_image_path).expect("the firmware's flash image");
    assert!(contents.len() < RF_INIT_DATA_1MB);
    contents.resize(MIB, 0xFF);
    contents[RF_INIT_DATA_1MB] = RF_INIT_DATA_MAGIC;
    let path = dir.join("flash.bin");
    fs::write(&path, &contents).unwrap();
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// How long one esp-flasher run may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs esp-flasher with `args` (stdin not a terminal); its exit code and stdout+stderr,
/// bytes that are no UTF-8 (a garbled line) shown as U+FFFD.
fn esp_flasher(args: &[&str], dir: &Path) -> (i32, String) {
    let log = dir.join("esp-flasher.log");
    let output = fs::File::create(&log).expect("create the output log");
    let mut child = Command::new(binary("esp-flasher"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the log handle"))
        .stderr(output)
        .spawn()
        .expect("start esp-flasher");
    let status = wait_with_limit(&mut child, RUN_LIMIT)
        .unwrap_or_else(|| panic!("esp-flasher {args:?} ran longer than {RUN_LIMIT:?}"));
    let text = String::from_utf8_lossy(&fs::read(&log).expect("read the output log")).into_owned();
    (status.code().expect("esp-flasher exited by itself"), text)
}

#[track_caller]
fn assert_line(output: &str, expected: &str) {
    assert!(
        output.lines().any(|line| line.contains(expected)),
        "no line contains {expected:?} in:\n{output}"
    );
}

/// The 1-based line of `crash.c` that holds `text`.
fn crash_source_line(text: &str) -> u32 {
    let source = lx106_programs_source("crash.c");
    let index = source
        .lines()
        .position(|line| line.contains(text))
        .unwrap_or_else(|| panic!("crash.c has no line with {text:?}"));
    index as u32 + 1
}

fn lx106_programs_source(name: &str) -> String {
    let path = crate::util::workspace_root()
        .join("programs/c/firmware")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `epc1=0x...` value of the dump in `output`.
fn epc1(output: &str) -> u32 {
    let hex = output
        .split("epc1=0x")
        .nth(1)
        .and_then(|rest| rest.get(..8))
        .unwrap_or_else(|| panic!("no epc1 in:\n{output}"));
    u32::from_str_radix(hex, 16).expect("epc1 is hex")
}

/// Every character the board sent is printable ASCII or a line end: nothing was read at a
/// rate the chip was not sending at.
#[track_caller]
fn assert_clean(output: &str) {
    let garbled: Vec<char> = output
        .chars()
        .filter(|c| !(c.is_ascii_graphic() || matches!(c, ' ' | '\r' | '\n')))
        .collect();
    assert!(
        garbled.is_empty(),
        "garbled characters {garbled:?} in:\n{output}"
    );
}

/// `monitor` on the in-process virtual chip: the boot log at 74880 with its cause and mode
/// in words, the firmware's greetings at 115200, its crash dump decoded, and with `--elf`
/// the crashing function and line, which Debian's `xtensa-lx106-elf-addr2line` confirms.
#[test]
fn monitor_shows_the_boot_log_then_the_firmware_at_115200_decoded() {
    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = flash_with(&firmware, dir.path());
    let port = format!("emu:1MB,file={}", path_str(&flash));
    let elf = path_str(&firmware.elf.path);
    let (code, output) = esp_flasher(
        &["--port", &port, "monitor", "--timeout", "3", "--elf", elf],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "ets Jan  8 2013,rst cause:2, boot mode:(3,6)");
    assert_line(&output, "=> rst cause 2 = external reset");
    assert_line(&output, "boot mode (3,6) = flash boot");
    assert_line(&output, "csum 0x");
    for count in 1..=3 {
        assert_line(&output, &format!("crash: hello {count} at 115200 baud"));
    }
    assert_line(&output, "crash: reading through a NULL pointer");
    assert_line(&output, "Fatal exception (");
    let cause_note = output
        .lines()
        .find(|line| line.contains("=> exception "))
        .unwrap_or_else(|| panic!("no exception note in:\n{output}"));
    let epc1 = epc1(&output);
    let line = crash_source_line(CRASH_LINE_TEXT);
    let expected = format!("=> epc1 0x{epc1:08x}: crash_now at ");
    let located = output
        .lines()
        .find(|text| text.contains(&expected))
        .unwrap_or_else(|| panic!("no {expected:?} in:\n{output}"));
    assert!(
        located.ends_with(&format!("crash.c:{line}")),
        "{located} is not crash.c:{line}"
    );
    assert_line(
        &output,
        "excvaddr 0x00000004: the access was near address 0",
    );
    assert_line(&output, "--- monitor: --timeout reached ---");
    assert_clean(&output);
    // The ELF's symbol table (read by lx106-programs) and binutils' addr2line agree.
    let described = firmware.elf.describe_address(epc1);
    assert!(
        described.contains("<crash_now"),
        "the symbol table says {described}"
    );
    let oracle = Command::new("xtensa-lx106-elf-addr2line")
        .args(["-f", "-e", elf, &format!("{epc1:#x}")])
        .output()
        .expect("run xtensa-lx106-elf-addr2line (apt-get install -y binutils-xtensa-lx106)");
    let oracle = String::from_utf8_lossy(&oracle.stdout);
    assert!(
        oracle.starts_with("crash_now\n")
            && oracle.trim_end().ends_with(&format!("crash.c:{line}")),
        "addr2line says {oracle:?}"
    );
    eprintln!("exception note: {cause_note}");
}

/// The same firmware read at the wrong rate comes out garbled: the line does model the rates,
/// so the clean text above is the monitor's switch, not a line that ignores rates.
#[test]
fn the_firmware_at_another_rate_than_monitor_baud_is_garbled() {
    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = flash_with(&firmware, dir.path());
    let port = format!("emu:1MB,file={}", path_str(&flash));
    let (code, output) = esp_flasher(
        &[
            "--port",
            &port,
            "monitor",
            "--timeout",
            "2",
            "--monitor-baud",
            "57600",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "ets Jan  8 2013,rst cause:2, boot mode:(3,6)");
    assert!(!output.contains("crash: hello"), "{output}");
}

/// `write_flash --monitor` writes the firmware, then resets the board into it and shows its
/// boot log and output; so does `restore --monitor`; `run --monitor` starts it through the
/// loader.
#[test]
fn write_flash_restore_and_run_with_monitor_show_the_new_firmware() {
    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("board.bin");
    let port = format!("emu:1MB,file={}", path_str(&flash));
    let image = path_str(&firmware.flash_image_path);
    let (code, output) = esp_flasher(
        &[
            "--port",
            &port,
            "write_flash",
            "--monitor",
            "--timeout",
            "2",
            "0x0",
            image,
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "Hash of data verified.");
    assert_line(&output, "--- monitor: reset the board");
    assert_line(&output, "rst cause:2, boot mode:(3,6)");
    assert_line(&output, "crash: hello 3 at 115200 baud");
    assert!(!output.contains("Hard resetting via RTS pin"), "{output}");

    let (code, output) = esp_flasher(
        &[
            "--port",
            &port,
            "restore",
            "--monitor",
            "--timeout",
            "2",
            image,
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "Restored '");
    assert_line(&output, "rst cause:2, boot mode:(3,6)");
    assert_line(&output, "crash: hello 3 at 115200 baud");

    let (code, output) = esp_flasher(
        &["--port", &port, "run", "--monitor", "--timeout", "2"],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "Running the firmware in flash.");
    assert_line(&output, "boot mode:(3,6)");
    assert_line(&output, "crash: hello 1 at 115200 baud");
    assert_clean(
        output
            .split("Running the firmware")
            .nth(1)
            .unwrap_or_default(),
    );
}

/// `esp-emulator --boot flash` on a pty: the port has no DTR/RTS, so the monitor says it
/// could not reset; the firmware's lines and its decoded crash dump arrive. The boot log the
/// chip printed at power-up does not arrive legibly: the emulator's pty resamples output
/// sent before the client's first write at the pty's default rate (its known limitation,
/// see `executed_code.rs`), and the monitor sends nothing unasked.
#[test]
fn monitor_over_the_emulators_pty_shows_the_firmware_and_its_crash() {
    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = flash_with(&firmware, dir.path());
    let emulator = Emulator::spawn(
        &["--flash", path_str(&flash), "--boot", "flash"],
        &dir.path().join("emulator.log"),
    );
    let (code, output) = esp_flasher(
        &["--port", emulator.port(), "monitor", "--timeout", "3"],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_line(&output, "has no DTR/RTS lines, so the board was not reset");
    assert_line(&output, "crash: hello 3 at 115200 baud");
    assert_line(&output, "crash: reading through a NULL pointer");
    assert_line(&output, "=> exception ");
}

/// Regression: the port vanishing mid-monitor (the emulator killed) ends the monitor with
/// exit 1 and one line naming the port, not a hang or a panic.
#[test]
fn regression_port_vanishing_mid_monitor_exits_1_with_one_line() {
    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = flash_with(&firmware, dir.path());
    let emulator = Emulator::spawn(
        &["--flash", path_str(&flash), "--boot", "flash"],
        &dir.path().join("emulator.log"),
    );
    let port = emulator.port().to_owned();
    let stdout_path = dir.path().join("monitor.out");
    let stderr_path = dir.path().join("monitor.err");
    let mut monitor = Command::new(binary("esp-flasher"))
        .args(["--port", &port, "monitor"])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start esp-flasher monitor");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&fs::read(&stdout_path).unwrap_or_default())
        .contains("crash: hello 1")
    {
        assert!(
            Instant::now() < deadline,
            "the monitor showed no firmware output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(emulator); // SIGKILL: the pty goes away
    let status = wait_with_limit(&mut monitor, Duration::from_secs(20))
        .expect("the monitor kept running after its port went away");
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("the port {port} went away")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Absurd `--timeout` values and a bad `--elf` are usage errors (exit 2, one line) and
/// nothing is opened.
#[test]
fn absurd_timeouts_and_a_bad_elf_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("firmware.bin");
    fs::write(&not_elf, [0xE9u8; 64]).unwrap();
    for (args, expected) in [
        (vec!["--timeout", "0"], "no time at all"),
        (vec!["--timeout", "-1"], "negative"),
        (
            vec!["--timeout", "100000000000000000000"],
            "more than a year",
        ),
        (vec!["--elf", path_str(&not_elf)], "is not an ELF file"),
        (
            vec!["--elf", "/nonexistent/fw.elf"],
            "cannot read /nonexistent/fw.elf",
        ),
    ] {
        let mut full = vec!["--port", "/nonexistent/ttyUSB9", "monitor"];
        full.extend(args.iter().copied());
        let (code, output) = esp_flasher(&full, dir.path());
        assert_eq!(code, 2, "{args:?}: {output}");
        assert_eq!(output.lines().count(), 1, "{args:?}: {output}");
        assert!(output.contains(expected), "{args:?}: {output}");
    }
}

/// From a terminal (a pty as stdin): raw mode, Ctrl-T Ctrl-R resets the board (a second boot
/// log), Ctrl-T Ctrl-H shows the keys, Ctrl-] quits with exit 0, and the terminal is back in
/// its cooked mode afterwards (`stty` reads it), as it is after a SIGTERM.
#[cfg(unix)]
#[test]
fn keys_from_a_terminal_reset_show_help_and_quit_and_the_terminal_is_restored() {
    use serialport::SerialPort as _;
    use std::io::Write as _;

    let firmware = crash_firmware();
    let dir = tempfile::tempdir().unwrap();
    let flash = flash_with(&firmware, dir.path());
    let (mut keyboard, terminal) = serialport::TTYPort::pair().expect("a pty pair");
    let terminal_path = terminal.name().expect("the pty's path");
    let stty = |path: &str| {
        let output = Command::new("stty")
            .args(["-F", path, "-a"])
            .output()
            .expect("run stty");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // serialport leaves its pty raw: make it a terminal as a shell has it.
    let sane = Command::new("stty")
        .args(["-F", &terminal_path, "sane"])
        .status();
    assert!(
        sane.is_ok_and(|status| status.success()),
        "stty sane failed"
    );
    assert!(stty(&terminal_path).contains(" icanon"));
    let stdin = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&terminal_path)
        .expect("open the pty's slave");
    let stdout_path = dir.path().join("monitor.out");
    let stderr_path = dir.path().join("monitor.err");
    let port = format!("emu:1MB,file={}", path_str(&flash));
    let mut monitor = Command::new(binary("esp-flasher"))
        .args(["--port", &port, "monitor"])
        .stdin(Stdio::from(stdin))
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start esp-flasher monitor");
    let read =
        |path: &Path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let wait_for = |path: &Path, what: &dyn Fn(&str) -> bool, name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !what(&read(path)) {
            assert!(
                Instant::now() < deadline,
                "waited in vain for {name}:\n{}\n{}",
                read(&stdout_path),
                read(&stderr_path)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(
        &stdout_path,
        &|out| out.contains("crash: hello 3"),
        "the firmware",
    );
    assert!(stty(&terminal_path).contains("-icanon"), "not in raw mode");
    keyboard.write_all(b"\x14\x12").unwrap();
    wait_for(
        &stdout_path,
        &|out| {
            out.matches("rst cause:2").count() == 2 && out.matches("crash: hello 3").count() == 2
        },
        "a second boot after Ctrl-T Ctrl-R",
    );
    keyboard.write_all(b"\x14\x08").unwrap();
    wait_for(
        &stderr_path,
        &|err| err.contains("Ctrl-T Ctrl-R"),
        "the help",
    );
    keyboard.write_all(b"\x1d").unwrap();
    let status = wait_with_limit(&mut monitor, Duration::from_secs(20))
        .expect("Ctrl-] did not end the monitor");
    assert_eq!(status.code(), Some(0), "{}", read(&stderr_path));
    let modes = stty(&terminal_path);
    assert!(
        modes.contains(" icanon") && modes.contains(" echo"),
        "the terminal was left raw: {modes}"
    );

    // SIGTERM (as Ctrl-C or a closed window would end it) restores the terminal too.
    let stdin = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&terminal_path)
        .expect("open the pty's slave");
    fs::write(&stdout_path, "").unwrap();
    let mut monitor = Command::new(binary("esp-flasher"))
        .args(["--port", &port, "monitor"])
        .stdin(Stdio::from(stdin))
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start esp-flasher monitor");
    wait_for(
        &stdout_path,
        &|out| out.contains("crash: hello 1"),
        "the firmware",
    );
    assert!(stty(&terminal_path).contains("-icanon"), "not in raw mode");
    let killed = Command::new("kill")
        .args(["-TERM", &monitor.id().to_string()])
        .status();
    assert!(killed.is_ok_and(|status| status.success()));
    let status = wait_with_limit(&mut monitor, Duration::from_secs(20))
        .expect("SIGTERM did not end the monitor");
    assert_eq!(status.code(), Some(130), "{}", read(&stderr_path));
    let modes = stty(&terminal_path);
    assert!(
        modes.contains(" icanon") && modes.contains(" echo"),
        "SIGTERM left the terminal raw: {modes}"
    );
}
