//! The `esp-flasher` binary end to end, against the built-in virtual ESP8266
//! (`--port emu:...`), with and without esptool's flasher stub.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use esp_emulator::sample_firmware::firmware_image;

/// The esptool release whose stub the tests upload.
#[path = "../../tests/esptool_install.rs"]
mod esptool_install;

const ESPTOOL_VERSION: &str = "5.6.0";
const MB: usize = 1024 * 1024;

/// What a run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless stdout holds `text`.
    fn says(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr holds `text`.
    fn warns(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}\n--- stdout\n{}",
            self.stderr,
            self.stdout
        );
        self
    }
}

/// Runs the binary in `dir` with no stub anywhere in its environment.
fn flasher(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_esp-flasher"))
        .args(args)
        .current_dir(dir)
        .env_remove("ESP_FLASHER_STUB")
        .output()
        .expect("run esp-flasher");
    Run {
        code: output
            .status
            .code()
            .expect("esp-flasher exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with esptool's ESP8266 stub given by `--stub-file`.
fn flasher_with_stub(dir: &Path, args: &[&str]) -> Run {
    let stub = stub_json();
    let mut all = vec!["--stub-file", stub.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    flasher(dir, &all)
}

/// Runs the binary with or without the stub.
/// With esptool's stub, or on the ROM loader alone (`--no-stub`).
fn flasher_maybe_stub(dir: &Path, stub: bool, args: &[&str]) -> Run {
    if stub {
        flasher_with_stub(dir, args)
    } else {
        flasher(dir, &[&["--no-stub"], args].concat())
    }
}

/// esptool 5.6.0's ESP8266 stub JSON, installing esptool into
/// `target/esptool/5.6.0` with python3 -m venv and pip if it is not there.
fn stub_json() -> PathBuf {
    static STUB: OnceLock<PathBuf> = OnceLock::new();
    STUB.get_or_init(|| {
        let venv = esptool_install::installed_venv(&target_dir().join("esptool"), ESPTOOL_VERSION);
        find_stub(&venv).unwrap_or_else(|| {
            panic!(
                "esptool {ESPTOOL_VERSION} is installed in {} but has no stub_flasher/2/esp8266.json",
                venv.display()
            )
        })
    })
    .clone()
}

/// `lib/python3*/site-packages/esptool/targets/stub_flasher/2/esp8266.json` under `venv`.
fn find_stub(venv: &Path) -> Option<PathBuf> {
    fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| {
            entry
                .path()
                .join("site-packages/esptool/targets/stub_flasher/2/esp8266.json")
        })
        .find(|path| path.is_file())
}

/// The cargo target directory (the test executable is in `target/<profile>/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<exe>")
        .to_owned()
}

/// A whole flash of `size` bytes that starts with a firmware image whose
/// header says qio and 4MB, so that `-fm dout -fs 1MB` has something to change.
fn firmware_flash(size: usize) -> Vec<u8> {
    let mut flash = vec![0xFF; size];
    let image = firmware_image(size / 2, 42);
    flash[..image.len()].copy_from_slice(&image);
    flash[2] = 0x00; // qio
    flash[3] = 0x40; // 4MB, 40m
    flash
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

#[test]
fn help_documents_exit_codes_and_ports() {
    let dir = temp();
    let run = flasher(dir.path(), &["--help"]).expect(0);
    run.says("Exit codes:")
        .says("0  success")
        .says("1  the operation failed")
        .says("2  usage error");
    run.says("emu:").says("--stub-file").says("write-flash");
    // The sample flash is described as it is: not blank.
    run.says("firmware at 0x0, SDK settings at the end; not blank")
        .says("command fails (give --port emu: to mean it)");
    flasher(dir.path(), &["write_flash", "--help"])
        .expect(0)
        .says("--flash-size");
    flasher(dir.path(), &["version"])
        .expect(0)
        .says(concat!("esp-flasher ", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_input_exits_2_with_one_line_and_touches_nothing() {
    let dir = temp();
    let flash = firmware_flash(MB);
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    fs::write(dir.path().join("fw.bin"), firmware_image(0x2000, 1)).unwrap();
    let emu = "--port=emu:1MB,file=flash.bin";
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &[emu, "flash_id", "--frobnicate"],
        &[emu, "read_flash", "0xZZ", "16", "out.bin"],
        &[emu, "read_flash", "0", "lots", "out.bin"],
        &[emu, "read_flash", "0", "16", "no-such-folder/out.bin"],
        &[emu, "write_flash", "0x0", "missing.bin"],
        &[emu, "write_flash", "0x0", "fw.bin", "0x1000"],
        &[emu, "write_flash", "0x0", "fw.bin", "0x1000", "fw.bin"],
        &[emu, "write_flash", "-fs", "3MB", "0x0", "fw.bin"],
        &[emu, "write_flash", "-fm", "fast", "0x0", "fw.bin"],
        &[emu, "verify_flash", "0x0", "missing.bin"],
        &[emu, "erase_region", "0x1000", "0x800"],
        &[emu, "erase_region", "0x800", "0x1000"],
        &[emu, "write_flash_status", "--bytes", "1", "0x100"],
        &[emu, "dump_mem", "0x40000000", "6", "rom.bin"],
        &[emu, "restore", "missing.bin"],
        &[emu, "--before", "sometimes", "flash_id"],
        &[emu, "--stub-file", "missing.json", "flash_id"],
        &["--port", "emu:1MB,file=flash.bin,bogus", "flash_id"],
        &[
            "--port",
            "emu:1MB,file=flash.bin,fault=nonsense",
            "flash_id",
        ],
        &["--port", "emu:3MB", "flash_id"],
        &[
            "merge_bin",
            "-o",
            "out.bin",
            "-fs",
            "detect",
            "0x0",
            "fw.bin",
        ],
        &["image_info", "missing.bin"],
    ];
    for args in cases {
        let run = flasher(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{args:?} printed more than one line: {run:?}"
        );
        assert!(run.stderr.starts_with("error"), "{args:?}: {run:?}");
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed on stdout (connected?): {run:?}"
        );
        assert!(
            fs::read(dir.path().join("flash.bin")).unwrap() == flash,
            "{args:?} changed the flash file"
        );
        assert!(!dir.path().join("out.bin").exists() && !dir.path().join("rom.bin").exists());
    }
}

#[test]
fn seed_sequence_on_a_persistent_1mb_flash() {
    let dir = temp();
    let original = firmware_flash(MB);
    fs::write(dir.path().join("flash.bin"), &original).unwrap();
    let emu = "emu:1MB,file=flash.bin";

    let run = flasher_with_stub(dir.path(), &["--port", emu, "flash_id"]).expect(0);
    run.says("Connecting...")
        .says("Chip type:          ESP8266EX")
        .says("Features:           WiFi");
    run.says("MAC:")
        .says("Stub flasher running.")
        .says("Manufacturer: ef")
        .says("Device: 4014");
    run.says("Detected flash size: 1MB")
        .says("Hard resetting via RTS pin...");

    flasher_with_stub(
        dir.path(),
        &[
            "--port",
            emu,
            "read_flash",
            "0x00000",
            "0x100000",
            "image1M.bin",
        ],
    )
    .expect(0)
    .says("Read 1048576 bytes from 0x00000000 in ");
    assert!(fs::read(dir.path().join("image1M.bin")).unwrap() == original);

    flasher_with_stub(dir.path(), &["--port", emu, "erase_flash"])
        .expect(0)
        .says("Flash memory erased successfully");
    assert!(fs::read(dir.path().join("flash.bin"))
        .unwrap()
        .iter()
        .all(|&b| b == 0xFF));

    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            emu,
            "write_flash",
            "-fs",
            "1MB",
            "-fm",
            "dout",
            "0x0",
            "image1M.bin",
        ],
    )
    .expect(0);
    run.says("Flash parameters set to mode dout, size 1MB, freq 40m.")
        .says("Compressed ");
    run.says(" compressed) at 0x00000000 in ")
        .says("Hash of data verified.");
    let written = fs::read(dir.path().join("flash.bin")).unwrap();
    assert_eq!((written[2], written[3]), (0x03, 0x20), "dout, 1MB, 40m");
    assert!(
        written[..2] == original[..2] && written[4..] == original[4..],
        "only header bytes 2 and 3 differ"
    );
}

#[test]
fn seed_command_lines_run_with_only_the_program_name_changed() {
    let dir = temp();
    fs::write(dir.path().join("flash.bin"), firmware_flash(MB)).unwrap();
    for name in ["sonoff.bin", "esp8266-20170823-v1.9.2.bin", "fw.bin"] {
        fs::write(dir.path().join(name), firmware_image(0x3000, 7)).unwrap();
    }
    let emu = "emu:1MB,file=flash.bin";
    for line in [
        "write_flash -fs 1MB -fm dout 0x0 sonoff.bin",
        "--baud 460800 write_flash --flash_size=detect 0 esp8266-20170823-v1.9.2.bin",
        "read_flash 0x00000 0x100000 image1M.bin",
        "erase_flash",
        "flash_id",
        "write_flash --verify --flash_size=detect -fm dout 0x0 fw.bin",
        "read-flash 0 1MB copy.bin",
        "read_flash 0 ALL copy.bin",
    ] {
        let mut args = vec!["--port", emu];
        args.extend(line.split_whitespace());
        flasher_with_stub(dir.path(), &args).expect(0);
    }
    // The port is accepted after the command too.
    flasher(dir.path(), &["flash_id", "--port", emu])
        .expect(0)
        .says("Detected flash size: 1MB");
    // A port that is not there is a failure to reach it, not a usage error.
    flasher(dir.path(), &["--port", "COM5", "flash_id"])
        .expect(1)
        .warns("COM5");
}

#[test]
fn every_command_on_1mb_and_4mb_with_and_without_a_stub() {
    // (command line, works on the ROM loader alone)
    let commands: &[(&str, bool)] = &[
        ("chip_id", true),
        ("read_mac", true),
        ("flash_id", true),
        ("read_flash 0x1000 0x2000 out.bin", false),
        ("verify_flash 0x0 boot.bin", false),
        ("write_flash 0x10000 app.bin", true),
        ("erase_region 0x20000 0x2000", false),
        ("read_flash_status", true),
        ("write_flash_status --bytes 2 0", true),
        ("read_mem 0x3ff00050", true),
        ("write_mem 0x3ffe8000 0x12345678", true),
        ("dump_mem 0x3ff00050 16 efuses.bin", true),
        ("backup whole.bin", false),
        ("erase_flash", false),
        ("run", true),
    ];
    for size in ["1MB", "4MB"] {
        for stub in [false, true] {
            let dir = temp();
            let bytes = if size == "1MB" { MB } else { 4 * MB };
            let flash = firmware_flash(bytes);
            fs::write(dir.path().join("flash.bin"), &flash).unwrap();
            fs::write(dir.path().join("boot.bin"), &flash[..0x1000]).unwrap();
            fs::write(dir.path().join("app.bin"), firmware_image(0x2000, 3)).unwrap();
            let port = format!("emu:{size},file=flash.bin");
            for (line, rom_ok) in commands {
                let mut args = vec!["--port", port.as_str()];
                args.extend(line.split_whitespace());
                let run = flasher_maybe_stub(dir.path(), stub, &args);
                if stub || *rom_ok {
                    run.expect(0);
                } else {
                    let run = run.expect(1);
                    run.warns("needs the flasher stub").warns("--stub-file");
                    assert!(!run.stdout.contains("Hard resetting"), "{line}: {run:?}");
                }
            }
            let expected_flash_id = if size == "1MB" {
                "Device: 4014"
            } else {
                "Device: 4016"
            };
            flasher(dir.path(), &["--port", &port, "flash_id"])
                .expect(0)
                .says(expected_flash_id);
            if stub {
                assert_eq!(fs::read(dir.path().join("out.bin")).unwrap().len(), 0x2000);
                assert_eq!(fs::read(dir.path().join("whole.bin")).unwrap().len(), bytes);
            }
            assert_eq!(fs::read(dir.path().join("efuses.bin")).unwrap().len(), 16);
        }
    }
}

#[test]
fn emu_port_executes_flashlabs_own_stub_without_a_stub_file() {
    backup_of_the_sample_flash("emu:1MB", "Stub: executed by the virtual ESP8266's CPU.");
}

#[test]
fn emu_port_with_stub_model_answers_with_the_model() {
    backup_of_the_sample_flash(
        "emu:1MB,stub=model",
        "Stub: the virtual ESP8266's stub model (stub=model)",
    );
}

/// `backup` on the virtual chip `port` names: it says `stub_line` and the backup is the
/// 1MB sample flash.
fn backup_of_the_sample_flash(port: &str, stub_line: &str) {
    let dir = temp();
    flasher(dir.path(), &["--port", port, "backup", "whole.bin"])
        .expect(0)
        .says(stub_line);
    let backup = fs::read(dir.path().join("whole.bin")).unwrap();
    assert_eq!(
        backup,
        esp_emulator::sample_firmware::sonoff_like_flash(MB, 0)
    );
}

#[test]
fn offline_commands_image_info_and_merge_bin() {
    let dir = temp();
    fs::write(dir.path().join("boot.bin"), firmware_image(0x3000, 5)).unwrap();
    fs::write(dir.path().join("data.bin"), [0xAB; 16]).unwrap();
    let run = flasher(dir.path(), &["image_info", "boot.bin"]).expect(0);
    run.says("Image version: 1")
        .says("Flash mode: DOUT")
        .says("Flash size: 1MB")
        .says("(valid)");
    run.says("IRAM").says("DRAM");
    flasher(
        dir.path(),
        &[
            "merge_bin",
            "-o",
            "merged.bin",
            "-fm",
            "qio",
            "-fs",
            "4MB",
            "0x0",
            "boot.bin",
            "0x4000",
            "data.bin",
        ],
    )
    .expect(0)
    .says("Wrote 0x4010 bytes to file 'merged.bin', ready to flash to offset 0x0.");
    let merged = fs::read(dir.path().join("merged.bin")).unwrap();
    assert_eq!((merged[2], merged[3] & 0xF0), (0x00, 0x40));
    assert!(merged[0x3000..0x4000].iter().all(|&b| b == 0xFF));
    assert_eq!(&merged[0x4000..], &[0xAB; 16]);
    flasher(dir.path(), &["image_info", "data.bin"])
        .expect(1)
        .warns("not an ESP8266 image");
}

#[test]
fn backup_and_restore_round_trip_with_the_record() {
    let dir = temp();
    let port = "emu:4MB,file=board.bin";
    // A new file starts as a board with a sample firmware.
    let run = flasher_with_stub(dir.path(), &["--port", port, "backup", "my-backup.bin"]).expect(0);
    run.says("does not exist yet")
        .says("Hash of data verified.")
        .says("my-backup.bin.json");
    let board = fs::read(dir.path().join("board.bin")).unwrap();
    assert_eq!(
        board[0], 0xE9,
        "the sample firmware starts with an image header"
    );
    assert!(fs::read(dir.path().join("my-backup.bin")).unwrap() == board);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("my-backup.bin.json")).unwrap()).unwrap();
    assert_eq!(record["chip"], "ESP8266EX");
    assert_eq!(record["flash_size"], 4 * MB);
    assert_eq!(record["mac"], "18:fe:34:12:34:56");

    flasher_with_stub(dir.path(), &["--port", port, "erase_flash"]).expect(0);
    flasher_with_stub(dir.path(), &["--port", port, "restore", "my-backup.bin"])
        .expect(0)
        .says("Hash of data verified.")
        .says("Restored 'my-backup.bin'.");
    assert!(fs::read(dir.path().join("board.bin")).unwrap() == board);

    // A record that no longer matches its image is refused before connecting.
    fs::write(dir.path().join("my-backup.bin"), &board[..MB]).unwrap();
    flasher_with_stub(dir.path(), &["--port", port, "restore", "my-backup.bin"])
        .expect(2)
        .warns("the record says");
}

#[test]
fn restore_warns_about_size_mismatch_and_esp8285_flash_mode() {
    let dir = temp();
    flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:1MB,file=small.bin",
            "backup",
            "small-backup.bin",
        ],
    )
    .expect(0);
    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:4MB,file=big.bin",
            "restore",
            "small-backup.bin",
        ],
    )
    .expect(1);
    run.warns("does not fit this chip: the backup was read from flash ID ef4014, but this chip's flash is ef4016")
        .warns("add --force to write it anyway");
    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:4MB,file=big.bin",
            "restore",
            "--force",
            "small-backup.bin",
        ],
    )
    .expect(0);
    run.warns("Warning:")
        .warns("-fs 1MB")
        .warns("SDK")
        .warns("(written anyway: --force)");

    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:1MB,chip=esp8285",
            "restore",
            "--force",
            "-fm",
            "qio",
            "small-backup.bin",
        ],
    )
    .expect(0);
    run.says("ESP8285").warns("-fm dout");
}

#[test]
fn bad_md5_fails_the_write_without_a_success_line() {
    let dir = temp();
    fs::write(dir.path().join("flash.bin"), vec![0xFF; MB]).unwrap();
    fs::write(dir.path().join("fw.bin"), firmware_image(0x4000, 9)).unwrap();
    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:1MB,file=flash.bin,fault=bad-md5",
            "write_flash",
            "0x0",
            "fw.bin",
        ],
    )
    .expect(1);
    run.warns("verification failed")
        .warns("do not hold the data")
        .warns("do not boot");
    assert!(!run.stdout.contains("Hash of data verified"), "{run:?}");
    assert!(!run.stdout.contains("Hard resetting"), "{run:?}");
}

#[test]
fn read_retries_are_warnings_and_the_read_completes() {
    let dir = temp();
    let flash = firmware_flash(MB);
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    let run = flasher_with_stub(
        dir.path(),
        &[
            "--port",
            "emu:1MB,file=flash.bin,fault=short-read:frame=3,drop=100",
            "read_flash",
            "0",
            "0x20000",
            "part.bin",
        ],
    )
    .expect(0);
    run.warns("Warning: block at 0x00000000 failed")
        .warns("attempt 2");
    assert!(fs::read(dir.path().join("part.bin")).unwrap() == flash[..0x20000]);
}

#[test]
fn no_answer_names_the_causes() {
    let dir = temp();
    let run = flasher(
        dir.path(),
        &[
            "--port",
            // GPIO0 jumpered low: the chip is in the loader without a reset.
            "emu:1MB,gpio0=low,fault=timeout:op=SYNC,nth=1",
            "--before",
            "no_reset",
            "flash_id",
        ],
    );
    // One dropped SYNC is retried; the chip answers.
    run.expect(0);
    let mut args = vec!["--port".to_string()];
    let faults: Vec<String> = (1..=40)
        .map(|nth| format!("fault=timeout:op=SYNC,nth={nth}"))
        .collect();
    args.push(format!("emu:1MB,{}", faults.join(",")));
    args.push("flash_id".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = flasher(dir.path(), &args).expect(1);
    // The chip reset into the loader and ignored every SYNC; the virtual chip prints its
    // download-mode boot message only with the boot-log fault, so no message came back: the
    // finding names both a chip that did not restart and one whose TX does not reach us.
    run.warns("no answer from the chip")
        .warns("nothing came back")
        .warns("GPIO0")
        .warns("TX and RX")
        .warns("5 V");
    // Without a reset, the usual causes and the ports.
    let mut no_reset = args.clone();
    no_reset.splice(0..0, ["--before", "no_reset"]);
    flasher(dir.path(), &no_reset)
        .expect(1)
        .warns("no answer from the chip")
        .warns("GPIO0")
        .warns("TX and RX")
        .warns("5 V")
        .warns("ports found");
}

#[test]
fn trace_shows_the_bytes_on_the_line() {
    let dir = temp();
    flasher(dir.path(), &["--port", "emu:1MB", "--trace", "read_mac"])
        .expect(0)
        .says("TRACE write")
        .says("TRACE read");
}

#[test]
fn without_a_port_a_serial_port_is_searched_for() {
    let dir = temp();
    let run = flasher(dir.path(), &["chip_id"]);
    if run.stderr.contains("serial ports found: none") {
        run.expect(1);
    } else {
        run.says("serial port(s):");
    }
}

/// True when this machine has no serial port, so that a command without --port meets the
/// no-board case (the machines the tests run on have none; a developer's may).
fn no_serial_port_here(dir: &Path) -> bool {
    let found = flasher(dir, &["chip_id"])
        .stderr
        .contains("serial ports found: none");
    if !found {
        eprintln!("a serial port is present: the no-board case cannot be reached on this machine");
    }
    found
}

/// With no board attached, `write_flash 0x0 x.bin` ran on the built-in virtual chip and
/// exited 0: a script's `&& echo flashed` passed without hardware.
#[test]
fn regression_commands_that_change_the_flash_ran_on_the_virtual_chip_without_a_board() {
    let dir = temp();
    if !no_serial_port_here(dir.path()) {
        return;
    }
    fs::write(dir.path().join("x.bin"), firmware_image(0x2000, 3)).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("write_flash", &["write_flash", "0x0", "x.bin"]),
        ("erase_flash", &["erase_flash"]),
        ("erase_region", &["erase_region", "0x0", "0x1000"]),
        ("write_flash_status", &["write_flash_status", "0"]),
        ("write_mem", &["write_mem", "0x3ffe8000", "1"]),
        ("restore", &["restore", "--force", "x.bin"]),
    ];
    for (command, args) in cases {
        let run = flasher(dir.path(), args).expect(1);
        run.warns(&format!(
            "no board found (serial ports found: none): {command} changes the flash"
        ))
        .warns("--port emu:4MB");
        assert!(
            !run.stdout.contains("Virtual ESP8266")
                && !run.stdout.contains("Hash of data verified"),
            "{command} reached the virtual chip: {run:?}"
        );
    }
}

/// With no board attached, `read_flash 0 0x100000 image1M.bin` read the built-in virtual
/// chip's sample flash and exited 0: a "backup" of no board at all, which `verify_flash` then
/// called verified.
#[test]
fn regression_read_flash_without_a_board_saved_the_virtual_chips_sample_data() {
    let dir = temp();
    if !no_serial_port_here(dir.path()) {
        return;
    }
    fs::write(dir.path().join("x.bin"), firmware_image(0x2000, 3)).unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "read_flash",
            &["read_flash", "0", "0x100000", "image1M.bin"],
        ),
        ("verify_flash", &["verify_flash", "0x0", "x.bin"]),
        ("flash_id", &["flash_id"]),
        ("chip_id", &["chip_id"]),
        ("read_mac", &["read_mac"]),
        ("read_mem", &["read_mem", "0x3ff00050"]),
        ("dump_mem", &["dump_mem", "0x3ffe8000", "16", "mem.bin"]),
        ("read_flash_status", &["read_flash_status"]),
        ("run", &["run"]),
    ];
    for (command, args) in cases {
        let run = flasher(dir.path(), args).expect(1);
        run.warns(&format!(
            "no board found (serial ports found: none): {command} reads a board"
        ))
        .warns("--port emu:4MB");
        assert!(
            !run.stdout.contains("Virtual ESP8266") && !run.stdout.contains("verified"),
            "{command} reached the virtual chip: {run:?}"
        );
    }
    assert!(!dir.path().join("image1M.bin").exists());
    assert!(!dir.path().join("mem.bin").exists());
}

/// The README's first command: with no board, `backup` runs on the virtual chip, says so in
/// its output and in the record, and exits 0.
#[test]
fn the_readme_first_backup_runs_on_the_named_virtual_chip_and_its_record_says_so() {
    let dir = temp();
    if !no_serial_port_here(dir.path()) {
        return;
    }
    flasher(dir.path(), &["backup", "sonoff-backup.bin"])
        .expect(0)
        .says("No serial port found: using the built-in virtual ESP8266 (emu:4MB)")
        .says("Hash of data verified.")
        .says("(the built-in virtual ESP8266EX (emu:4MB), MAC");
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("sonoff-backup.bin.json")).unwrap())
            .unwrap();
    assert_eq!(record["virtual"], true);
    assert_eq!(record["emu"], "emu:4MB");
}

#[test]
fn a_backup_from_an_emu_port_names_that_port_in_its_record() {
    let dir = temp();
    flasher(dir.path(), &["--port", "emu:1MB,seed=3", "backup", "b.bin"]).expect(0);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("b.bin.json")).unwrap()).unwrap();
    assert_eq!(record["virtual"], true);
    assert_eq!(record["emu"], "emu:1MB,seed=3");
}

#[test]
fn rewriting_the_same_file_skips_unchanged_sectors() {
    let dir = temp();
    fs::write(dir.path().join("fw.bin"), firmware_image(0x6000, 11)).unwrap();
    let args = [
        "--port",
        "emu:1MB,file=flash.bin",
        "write_flash",
        "0x0",
        "fw.bin",
    ];
    let first = flasher_with_stub(dir.path(), &args).expect(0);
    assert!(!first.stdout.contains("Skipped"), "{first:?}");
    flasher_with_stub(dir.path(), &args)
        .expect(0)
        .says("Skipped 24576 bytes already in flash at 0x00000000.")
        .says("Hash of data verified.");
}

/// A 1MB flash whose every byte differs from its neighbours', so a changed byte shows.
fn patterned_flash() -> Vec<u8> {
    (0..MB).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_second_region_past_the_end_fails_before_the_first_is_written() {
    let dir = temp();
    let flash = patterned_flash();
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    fs::write(dir.path().join("a.bin"), firmware_image(0x2000, 3)).unwrap();
    fs::write(dir.path().join("b.bin"), [0x11; 0x100]).unwrap();
    let run = flasher(
        dir.path(),
        &[
            "--port",
            "emu:1MB,file=flash.bin",
            "write_flash",
            "0x0",
            "a.bin",
            "0x200000",
            "b.bin",
        ],
    )
    .expect(1);
    run.warns("past the end of the 1MB");
    assert!(!run.stdout.contains("Wrote"), "{run:?}");
    assert!(fs::read(dir.path().join("flash.bin")).unwrap() == flash);
}

#[test]
fn overlapping_regions_are_refused_and_nothing_is_written() {
    let dir = temp();
    let flash = patterned_flash();
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    fs::write(dir.path().join("a.bin"), [0x22; 0x1800]).unwrap();
    fs::write(dir.path().join("b.bin"), [0x33; 0x100]).unwrap();
    let emu = "emu:1MB,file=flash.bin";
    for (first, second) in [("0x1000", "0x2000"), ("0x1000", "0x1800")] {
        let args = [
            "--port",
            emu,
            "write_flash",
            first,
            "a.bin",
            second,
            "b.bin",
        ];
        flasher(dir.path(), &args).expect(2).warns("overlaps");
        assert!(fs::read(dir.path().join("flash.bin")).unwrap() == flash);
    }
}

#[test]
fn flash_size_larger_than_the_chip_warns_as_esptool_and_writes() {
    let dir = temp();
    fs::write(dir.path().join("fw.bin"), firmware_image(0x2000, 4)).unwrap();
    let args = [
        "--port",
        "emu:1MB,file=flash.bin",
        "write_flash",
        "-fs",
        "4MB",
        "0x0",
        "fw.bin",
    ];
    flasher(dir.path(), &args)
        .expect(0)
        .warns("Set flash_size 4MB is larger than the available flash size of 1MB")
        .says("Hash of data verified.");
    assert_eq!(fs::read(dir.path().join("flash.bin")).unwrap()[3] >> 4, 4);
}

#[test]
fn an_empty_port_is_a_usage_error() {
    let dir = temp();
    let run = flasher(dir.path(), &["--port", "", "flash_id"]).expect(2);
    run.warns("--port is empty");
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn a_regular_file_as_port_is_named_and_left_unchanged() {
    let dir = temp();
    fs::write(dir.path().join("notes.txt"), "my notes\n").unwrap();
    let run = flasher(dir.path(), &["--port", "notes.txt", "flash_id"]).expect(2);
    run.warns("notes.txt is a regular file, not a serial port");
    assert_eq!(
        fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "my notes\n"
    );
}

#[test]
fn verify_flash_of_a_file_larger_than_the_flash_names_the_sizes() {
    let dir = temp();
    fs::write(dir.path().join("big.bin"), vec![0xFF; 2 * MB]).unwrap();
    let run = flasher(
        dir.path(),
        &["--port", "emu:1MB", "verify_flash", "0x0", "big.bin"],
    )
    .expect(1);
    run.warns("2097152 bytes at 0x0")
        .warns("past the end of the 1MB");
    assert!(!run.stderr.contains("error code"), "{run:?}");
}

#[test]
fn run_does_not_also_say_staying_in_bootloader() {
    let dir = temp();
    let run = flasher(dir.path(), &["--port", "emu:1MB", "run"]).expect(0);
    run.says("Running the firmware in flash.");
    assert!(!run.stdout.contains("Staying in bootloader"), "{run:?}");
}

#[test]
fn an_unaligned_write_keeps_the_bytes_of_its_sectors_around_it() {
    let dir = temp();
    let flash = patterned_flash();
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    let data = vec![0x44; 0x1100];
    fs::write(dir.path().join("f.bin"), &data).unwrap();
    let args = [
        "--port",
        "emu:1MB,file=flash.bin",
        "write_flash",
        "0x1001",
        "f.bin",
    ];
    flasher(dir.path(), &args)
        .expect(0)
        .says("Hash of data verified.");
    let mut expected = flash;
    expected[0x1001..0x2101].copy_from_slice(&data);
    assert!(fs::read(dir.path().join("flash.bin")).unwrap() == expected);
}

#[test]
fn an_unaligned_write_on_the_rom_loader_is_refused_before_writing() {
    let dir = temp();
    let flash = patterned_flash();
    fs::write(dir.path().join("flash.bin"), &flash).unwrap();
    fs::write(dir.path().join("f.bin"), [0x55; 0x100]).unwrap();
    let args = [
        "--no-stub",
        "--port",
        "emu:1MB,file=flash.bin",
        "write_flash",
        "0x1001",
        "f.bin",
    ];
    flasher(dir.path(), &args)
        .expect(1)
        .warns("cannot write at 0x1001");
    assert!(fs::read(dir.path().join("flash.bin")).unwrap() == flash);
}

/// `--port emu:1MB,file=fw.bin` rewrote a 1000-byte fw.bin as a 1MB flash image at exit.
#[test]
fn regression_emu_file_of_no_flash_size_was_rewritten_as_a_flash_image() {
    let dir = temp();
    let firmware = dir.path().join("fw.bin");
    fs::write(&firmware, [0x5A; 1000]).unwrap();
    flasher(dir.path(), &["--port", "emu:1MB,file=fw.bin", "flash_id"])
        .expect(2)
        .warns("fw.bin is 1000 bytes, not a flash size");
    assert_eq!(fs::read(&firmware).unwrap(), [0x5A; 1000]);
    // A whole flash image of another size than the port names is refused too.
    fs::write(&firmware, vec![0xFF; 256 * 1024]).unwrap();
    flasher(dir.path(), &["--port", "emu:1MB,file=fw.bin", "flash_id"])
        .expect(2)
        .warns("fw.bin is 256KB but the port asks for 1MB");
    assert_eq!(fs::read(&firmware).unwrap().len(), 256 * 1024);
}

/// On an erased fake chip (the ID says 4MB, 1MB is there) `write_flash 0x100000` reported
/// "Hash of data verified" while it overwrote 0x0: the wrap test gave up on erased flash.
#[test]
fn regression_a_write_past_the_real_size_of_an_erased_fake_chip_overwrote_0x0() {
    let dir = temp();
    fs::write(dir.path().join("blank.bin"), vec![0xFF; 4 * MB]).unwrap();
    fs::write(dir.path().join("fw.bin"), firmware_image(0x2000, 9)).unwrap();
    let port = "emu:file=blank.bin,fault=fake-size:real=1MB";
    for args in [
        &["write_flash", "0x100000", "fw.bin"][..],
        &["read_flash", "0x0", "ALL", "all.bin"],
        &["verify_flash", "0x100000", "fw.bin"],
        &["erase_region", "0x100000", "0x1000"],
        &["backup", "b.bin"],
    ] {
        let run = flasher(dir.path(), &[&["--port", port][..], args].concat()).expect(1);
        run.warns("the flash ID claims 4MB but the chip's addresses wrap every 1MB: only 1MB is really there")
            .warns("nothing was read or written past its real size");
        assert!(
            !run.stdout.contains("Hash of data verified"),
            "{args:?}: {run:?}"
        );
    }
    let flash = fs::read(dir.path().join("blank.bin")).unwrap();
    // Saving the virtual fake chip wrote back only its real 1MB, shrinking the file.
    assert_eq!(flash.len(), 4 * MB, "the flash file changed size");
    assert!(
        flash.iter().all(|&byte| byte == 0xFF),
        "the flash changed (the probe's marker, or a wrapped write)"
    );
    assert!(!dir.path().join("all.bin").exists() && !dir.path().join("b.bin").exists());
    // Within the real size, the same chip is written as usual.
    flasher(
        dir.path(),
        &["--port", port, "write_flash", "0x80000", "fw.bin"],
    )
    .expect(0)
    .says("Hash of data verified.");
}
