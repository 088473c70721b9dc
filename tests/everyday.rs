//! The everyday commands through the `esp-flasher` binary: `list-ports`, `board-info` (on
//! `emu:` ports and on an `esp-emulator` pty, genuine and fake-size flash), `completions`
//! for every shell, and `--json`: one JSON document on stdout for every read-only command,
//! human text on stderr, and the README's examples holding the fields the binary gives.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    binary, esptool, pseudo_random, run_flasher, wait_with_limit, workspace_root, Emulator,
    FlasherRun,
};

/// How long one esp-flasher run may take before the test kills it and fails.
const TIME_LIMIT: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

type Run = FlasherRun;

impl FlasherRun {
    #[track_caller]
    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code of {self:#?}");
        self
    }

    /// stdout as the one JSON document it must be: nothing before or after it.
    #[track_caller]
    fn document(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}): {self:#?}"))
    }
}

/// Runs esp-flasher with `args` in `dir`, no stub from the environment, stdin closed.
fn flasher(dir: &Path, args: &[&str]) -> Run {
    let run = run_flasher(dir, args, TIME_LIMIT);
    assert!(
        run.code != -1,
        "esp-flasher {args:?} was killed after {TIME_LIMIT:?}: {run:#?}"
    );
    run
}

/// `document["result"]` after checking the envelope: the command's name and `ok: true`.
#[track_caller]
fn result_of(run: &Run, command: &str) -> Value {
    let document = run.document();
    assert_eq!(document["command"], command, "{run:#?}");
    assert_eq!(document["ok"], true, "{run:#?}");
    assert!(document.get("error").is_none(), "{run:#?}");
    document["result"].clone()
}

/// Panics unless `value` is an object with exactly the keys `keys`, in that order.
#[track_caller]
fn assert_keys(value: &Value, keys: &[&str]) {
    let actual: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(actual, keys, "in {value:#}");
}

#[test]
fn every_read_only_command_prints_one_json_document_and_its_human_text_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let emu = ["--port", "emu:1MB", "--json"];
    let with_emu = |args: &[&str]| flasher(dir, &[&emu[..], args].concat());

    let run = with_emu(&["chip_id"]).expect(0);
    assert_eq!(result_of(&run, "chip-id")["chip_id"], 0x0012_3456);
    // Everything a plain run prints on stdout is on stderr instead.
    for human in [
        "Connected to ESP8266 on emu:1MB:",
        "Chip ID: 0x00123456",
        "Hard resetting",
    ] {
        assert!(
            run.stderr.contains(human),
            "stderr lacks {human:?}: {run:#?}"
        );
    }

    let run = with_emu(&["read_mac"]).expect(0);
    assert_keys(&result_of(&run, "read-mac"), &["mac"]);
    assert_eq!(result_of(&run, "read-mac")["mac"], "18:fe:34:12:34:56");

    let run = with_emu(&["flash_id"]).expect(0);
    let flash = result_of(&run, "flash-id");
    assert_keys(
        &flash,
        &[
            "jedec_id",
            "manufacturer",
            "manufacturer_name",
            "device",
            "detected_size",
        ],
    );
    assert_eq!(
        (
            &flash["jedec_id"],
            &flash["manufacturer_name"],
            &flash["detected_size"]
        ),
        (
            &Value::from(0xEF4014),
            &Value::from("Winbond"),
            &Value::from(MIB)
        )
    );

    let run = with_emu(&["read_flash_status", "--bytes", "3"]).expect(0);
    let status = result_of(&run, "read-flash-status");
    assert_keys(&status, &["status", "bytes"]);
    assert_eq!(status["bytes"], 3);

    let run = with_emu(&["read_mem", "0x3ff00050"]).expect(0);
    let word = result_of(&run, "read-mem");
    assert_keys(&word, &["address", "value"]);
    assert_eq!(word["address"], 0x3FF0_0050);
    assert!(run.stderr.contains(&format!(
        "0x3ff00050 = {:#010x}",
        word["value"].as_u64().unwrap()
    )));

    let run = with_emu(&["dump_mem", "0x40000000", "64", "rom.bin"]).expect(0);
    let dump = result_of(&run, "dump-mem");
    assert_keys(&dump, &["address", "size", "file", "seconds"]);
    assert_eq!(
        (&dump["size"], &dump["file"]),
        (&Value::from(64), &Value::from("rom.bin"))
    );
    assert_eq!(fs::metadata(dir.join("rom.bin")).unwrap().len(), 64);

    let run = with_emu(&["read_flash", "0", "0x10000", "app.bin"]).expect(0);
    let read = result_of(&run, "read-flash");
    assert_keys(&read, &["address", "size", "file", "seconds"]);
    assert_eq!(read["size"], 0x10000);

    let run = with_emu(&["verify_flash", "0", "app.bin"]).expect(0);
    let verified = result_of(&run, "verify-flash");
    assert_keys(&verified, &["verified", "regions"]);
    assert_eq!(verified["verified"], true);
    assert_keys(
        &verified["regions"][0],
        &["address", "size", "file", "matches"],
    );

    let run = flasher(dir, &["--json", "image_info", "app.bin"]).expect(0);
    let image = result_of(&run, "image-info");
    assert_keys(
        &image,
        &[
            "file_size",
            "image_version",
            "entry",
            "flash_mode",
            "flash_size",
            "flash_freq",
            "segments",
            "checksum",
            "crc32",
        ],
    );
    assert_eq!(image["checksum"]["valid"], true);
    assert_keys(
        &image["segments"][0],
        &["length", "load_address", "memory_types"],
    );

    let run = flasher(dir, &["--json", "version"]).expect(0);
    assert_eq!(
        result_of(&run, "version")["version"],
        env!("CARGO_PKG_VERSION")
    );

    let run = with_emu(&["backup", "sonoff.bin"]).expect(0);
    let backup = result_of(&run, "backup");
    assert_keys(&backup, &["file", "record_file", "seconds", "record"]);
    let record: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("sonoff.bin.json")).unwrap()).unwrap();
    assert_eq!(
        backup["record"], record,
        "the result's record is the one written"
    );
}

#[test]
fn a_failure_is_still_one_json_document_with_an_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A file that differs: the result says which, and the error says it failed.
    fs::write(dir.join("other.bin"), [0x5Au8; 4096]).unwrap();
    let run = flasher(
        dir,
        &[
            "--port",
            "emu:1MB",
            "--json",
            "verify_flash",
            "0",
            "other.bin",
        ],
    );
    let document = run.expect(1).document();
    assert_keys(&document, &["command", "ok", "result", "error"]);
    assert_eq!(
        (&document["ok"], &document["result"]["verified"]),
        (&Value::from(false), &Value::from(false))
    );
    assert_keys(
        &document["error"],
        &["kind", "message", "remedy", "exit_code"],
    );
    assert_eq!(
        (&document["error"]["kind"], &document["error"]["exit_code"]),
        (&Value::from("failed"), &Value::from(1))
    );

    // No such port: a failure of the command, nothing on stdout but the document.
    let run = flasher(
        dir,
        &["--port", "/dev/ttyUSB-no-such-port", "--json", "chip_id"],
    )
    .expect(1);
    let document = run.document();
    assert_keys(&document, &["command", "ok", "error"]);
    assert!(document["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    assert!(run
        .stderr
        .contains("error: serial port /dev/ttyUSB-no-such-port does not exist"));

    // A command line clap refuses: exit 2, the command unknown.
    let run = flasher(dir, &["--json", "read_flash", "0xZZ", "16", "x.bin"]).expect(2);
    let document = run.document();
    assert_eq!(
        (&document["command"], &document["error"]["kind"]),
        (&Value::Null, &Value::from("usage"))
    );

    // completions has no result to give.
    let run = flasher(dir, &["--json", "completions", "bash"]).expect(2);
    assert_eq!(run.document()["error"]["kind"], "usage");
}

/// Ctrl-C in the middle of a `--json` read: the document says "interrupted", stdout holds
/// nothing else, and no file is left behind.
#[test]
fn an_interrupted_json_run_still_prints_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, pseudo_random(MIB, 13)).unwrap();
    // At the line's real speed the 1MB read takes about 10 s at 921600 baud.
    let emulator = Emulator::spawn(
        &["--flash", flash.to_str().unwrap(), "--realtime"],
        &dir.path().join("emulator.log"),
    );
    let stdout_path = dir.path().join("flasher.out");
    let stderr_path = dir.path().join("flasher.err");
    let mut child = Command::new(binary("esp-flasher"))
        .args(["--port", emulator.port(), "--json", "-b", "921600"])
        .args(["read_flash", "0", "ALL", "copy.bin"])
        .current_dir(dir.path())
        .env_remove("ESP_FLASHER_STUB")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start esp-flasher");
    let started = Instant::now();
    while !fs::read_to_string(&stderr_path)
        .unwrap()
        .contains("Changed baud rate to 921600")
    {
        assert!(
            started.elapsed() < TIME_LIMIT && child.try_wait().unwrap().is_none(),
            "the read did not start: {}",
            fs::read_to_string(&stderr_path).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let signal = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let status = wait_with_limit(&mut child, TIME_LIMIT).expect("esp-flasher exits on Ctrl-C");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&stdout_path).unwrap(),
        stderr: fs::read_to_string(&stderr_path).unwrap(),
    };
    let document = run.expect(130).document();
    assert_eq!(
        (&document["ok"], &document["error"]["kind"]),
        (&Value::from(false), &Value::from("interrupted"))
    );
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("copy.bin"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn board_info_on_a_genuine_and_a_fake_size_chip() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let run = flasher(dir, &["--port", "emu:4MB", "board-info"]).expect(0);
    for line in [
        "Chip:               ESP8266EX",
        "Features:           WiFi",
        "Crystal:            26 MHz",
        "MAC:                18:fe:34:12:34:56",
        "Flash ID:           ef4016 (manufacturer ef (Winbond), device 4016)",
        "Flash size:         4MB (from the flash ID)",
        "Real flash size:    4MB: every address is distinct (wrap test passed)",
    ] {
        assert!(run.stdout.contains(line), "stdout lacks {line:?}: {run:#?}");
    }

    let fake = [
        "--port",
        "emu:4MB,fault=fake-size:real=1MB",
        "--json",
        "board-info",
    ];
    let run = flasher(dir, &fake).expect(0);
    let info = result_of(&run, "board-info");
    assert_keys(
        &info,
        &["chip", "features", "crystal_mhz", "mac", "chip_id", "flash"],
    );
    assert_keys(
        &info["flash"],
        &[
            "jedec_id",
            "manufacturer",
            "manufacturer_name",
            "device",
            "detected_size",
            "real_size",
            "wraps",
        ],
    );
    assert_eq!(
        (
            &info["flash"]["detected_size"],
            &info["flash"]["real_size"],
            &info["flash"]["wraps"]
        ),
        (&Value::from(4 * MIB), &Value::from(MIB), &Value::from(true))
    );
    assert!(run
        .stderr
        .contains("the addresses wrap every 1MB although the ID claims 4MB"));
    assert!(run
        .stderr
        .contains("Warning: this flash is not the size its ID claims: write images with -fs 1MB"));

    // esptool's stub has no FLASH_REAL_SIZE: the host probes the wrap through its MD5s.
    let stub = esptool("5.6.0").stub_json(2);
    let stub = stub.to_str().unwrap();
    let run = flasher(dir, &[&fake[..], &["--stub-file", stub]].concat()).expect(0);
    assert_eq!(result_of(&run, "board-info")["flash"]["real_size"], MIB);

    // An ESP8285 on the ROM loader alone: its embedded flash, and no wrap test.
    let rom = [
        "--port",
        "emu:1MB,chip=esp8285",
        "--no-stub",
        "--json",
        "board-info",
    ];
    let run = flasher(dir, &rom).expect(0);
    let info = result_of(&run, "board-info");
    assert_eq!(
        info["features"],
        serde_json::json!(["WiFi", "Embedded Flash"])
    );
    assert_eq!(
        (&info["flash"]["real_size"], &info["flash"]["wraps"]),
        (&Value::Null, &Value::Null)
    );
    assert!(run
        .stderr
        .contains("the ROM loader cannot check that the flash is as large as its ID claims"));
}

#[test]
fn board_info_over_an_esp_emulator_pty_finds_its_fake_flash() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, vec![0xFFu8; 4 * MIB]).unwrap();
    let emulator = Emulator::spawn(
        &[
            "--flash",
            flash.to_str().unwrap(),
            "--fault",
            "fake-size:real=512KB",
        ],
        &dir.path().join("emulator.log"),
    );
    let run = flasher(
        dir.path(),
        &["--port", emulator.port(), "--json", "board-info"],
    )
    .expect(0);
    let info = result_of(&run, "board-info");
    assert_eq!(info["crystal_mhz"], 26);
    assert_eq!(
        (&info["flash"]["detected_size"], &info["flash"]["real_size"]),
        (&Value::from(4 * MIB), &Value::from(512 * 1024))
    );
    assert!(run
        .stderr
        .contains(&format!("Connected to ESP8266 on {}:", emulator.port())));
    // The probe marked an erased sector and erased it again: the flash is as it was.
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "{stderr}");
    assert!(fs::read(&flash).unwrap().iter().all(|&byte| byte == 0xFF));
}

#[test]
fn list_ports_lists_what_the_search_finds_or_says_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let human = flasher(dir.path(), &["list-ports"]).expect(0);
    let run = flasher(dir.path(), &["--json", "list-ports"]).expect(0);
    let ports = result_of(&run, "list-ports")["ports"].clone();
    let ports = ports.as_array().expect("ports is an array");
    if ports.is_empty() {
        // The machines the tests run on have no USB serial adapter.
        assert!(
            human.stdout.starts_with("No USB serial port found."),
            "{human:#?}"
        );
        assert!(human.stdout.contains("--port emu:4MB") && human.stdout.contains("esp-emulator"));
    } else {
        for port in ports {
            assert_keys(
                port,
                &[
                    "port",
                    "vid_pid",
                    "manufacturer",
                    "product",
                    "serial_number",
                    "esp_adapter",
                ],
            );
            assert!(
                human.stdout.contains(port["port"].as_str().unwrap()),
                "{human:#?}"
            );
        }
    }
}

/// A USB device in a fake sysfs tree: `devices/<name>` holding the device's attribute files,
/// and an interface directory `<name>:1.0` whose `subsystem` link names `interface_subsystem`.
#[cfg(target_os = "linux")]
fn fake_usb_device(
    root: &Path,
    name: &str,
    attributes: &[(&str, &str)],
    interface_subsystem: &str,
) -> std::path::PathBuf {
    let device = root.join("devices").join(name);
    let interface = device.join(format!("{name}:1.0"));
    fs::create_dir_all(&interface).unwrap();
    for (file, value) in attributes {
        fs::write(device.join(file), format!("{value}\n")).unwrap();
    }
    let subsystem = root.join("subsystems").join(interface_subsystem);
    fs::create_dir_all(&subsystem).unwrap();
    std::os::unix::fs::symlink(&subsystem, interface.join("subsystem")).unwrap();
    interface
}

/// `list-ports` through serialport's own sysfs reader (esp-flasher is built without libudev)
/// on a fake `/sys/class/tty`: a CP2102 behind the usb-serial driver (`ttyUSB0`), a CH9102
/// and a Raspberry Pi Pico behind cdc-acm (`ttyACM*`), and a built-in UART (`ttyS0`), which
/// is not a USB port and is left out. The tree is bind-mounted over `/sys/class/tty`, and a
/// tmpfs with the device nodes over `/dev`, in a user and mount namespace of the run alone
/// (`unshare -rm`: no root needed where unprivileged user namespaces are enabled).
#[cfg(target_os = "linux")]
#[test]
fn list_ports_reads_ids_names_and_serials_from_a_fake_sysfs_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tty = root.join("class-tty");
    let link_tty = |name: &str, device: &Path| {
        fs::create_dir_all(tty.join(name)).unwrap();
        std::os::unix::fs::symlink(device, tty.join(name).join("device")).unwrap();
    };
    let cp2102 = fake_usb_device(
        root,
        "1-1",
        &[
            ("idVendor", "10c4"),
            ("idProduct", "ea60"),
            ("manufacturer", "Silicon Labs"),
            ("product", "CP2102 USB to UART Bridge Controller"),
            ("serial", "0001"),
        ],
        "usb",
    );
    // usb-serial drivers put a ttyUSB0 directory under the interface, with its own subsystem.
    let usb_serial = cp2102.join("ttyUSB0");
    fs::create_dir_all(&usb_serial).unwrap();
    let subsystem = root.join("subsystems/usb-serial");
    fs::create_dir_all(&subsystem).unwrap();
    std::os::unix::fs::symlink(&subsystem, usb_serial.join("subsystem")).unwrap();
    link_tty("ttyUSB0", &usb_serial);
    let ch9102 = fake_usb_device(
        root,
        "1-2",
        &[
            ("idVendor", "1a86"),
            ("idProduct", "55d4"),
            ("product", "USB Single Serial"),
        ],
        "usb",
    );
    link_tty("ttyACM1", &ch9102);
    let pico = fake_usb_device(
        root,
        "1-3",
        &[
            ("idVendor", "2e8a"),
            ("idProduct", "0005"),
            ("manufacturer", "Raspberry Pi"),
            ("product", "Pico"),
            ("serial", "E6614C311B"),
        ],
        "usb",
    );
    link_tty("ttyACM0", &pico);
    let uart = root.join("devices/serial8250/ttyS0");
    fs::create_dir_all(&uart).unwrap();
    let subsystem = root.join("subsystems/serial-base");
    fs::create_dir_all(&subsystem).unwrap();
    std::os::unix::fs::symlink(&subsystem, uart.join("subsystem")).unwrap();
    link_tty("ttyS0", &uart);

    let script = format!(
        "mount --bind {tty} /sys/class/tty && mount -t tmpfs none /dev && \
         touch /dev/ttyUSB0 /dev/ttyACM0 /dev/ttyACM1 /dev/ttyS0 && exec {flasher} \"$@\"",
        tty = tty.display(),
        flasher = binary("esp-flasher").display()
    );
    let run = |args: &[&str]| {
        let output = Command::new("unshare")
            .args(["-rm", "sh", "-c", &script, "sh"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare (util-linux)");
        assert!(
            output.status.success(),
            "unshare -rm (a user and mount namespace) failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        run(&["list-ports"]),
        "3 USB serial port(s), in the order esp-flasher tries them without --port:\n\
         /dev/ttyUSB0   10c4:ea60  Silicon Labs CP2102 USB to UART Bridge Controller, serial 0001  [ESP8266 adapter: CP210x]\n\
         /dev/ttyACM1   1a86:55d4  USB Single Serial  [ESP8266 adapter: CH9102]\n\
         /dev/ttyACM0   2e8a:0005  Raspberry Pi Pico, serial E6614C311B\n"
    );
    let document: Value = serde_json::from_str(&run(&["--json", "list-ports"])).unwrap();
    assert_eq!(
        document["result"]["ports"][2],
        serde_json::json!({
            "port": "/dev/ttyACM0",
            "vid_pid": "2e8a:0005",
            "manufacturer": "Raspberry Pi",
            "product": "Pico",
            "serial_number": "E6614C311B",
            "esp_adapter": null
        })
    );
}

#[test]
fn completions_for_every_shell_and_bash_completes_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = flasher(dir.path(), &["completions", shell]).expect(0);
        // fish names a long option `-l port`, the others `--port`.
        let (port, json) = match shell {
            "fish" => ("-l port", "-l json"),
            _ => ("--port", "--json"),
        };
        for word in [
            "board-info",
            "list-ports",
            "read-flash",
            "backup",
            port,
            json,
        ] {
            assert!(run.stdout.contains(word), "the {shell} script lacks {word}");
        }
    }
    let script = dir.path().join("esp-flasher.bash");
    fs::write(
        &script,
        flasher(dir.path(), &["completions", "bash"]).stdout,
    )
    .unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    // Source it and ask for the completions of `esp-flasher boa` and `esp-flasher list-ports --j`
    // (the second completed nothing with clap_complete's own script: see `cmd::completions`).
    let ask = |words: &str, current: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={current}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; completer=$(complete -p esp-flasher | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
             \"$completer\" esp-flasher \"${{COMP_WORDS[$COMP_CWORD]}}\" \
             \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(program)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(ask("esp-flasher boa", 1).trim(), "board-info");
    assert!(ask("esp-flasher list-ports --j", 2)
        .lines()
        .any(|word| word == "--json"));
}

/// The README's `--json` examples (```console blocks whose first line is `$ esp-flasher ...
/// --json ...`), run in order in one directory: each must exit as its document says and
/// print a document with the same fields, nested the same way (values differ: times, dates).
#[test]
fn the_readme_json_examples_have_the_fields_the_binary_prints() {
    let readme = fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut examples = 0;
    for block in readme.split("```console\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let Some((first, documented)) = block.split_once('\n') else {
            continue;
        };
        let Some(command) = first.strip_prefix("$ esp-flasher ") else {
            continue;
        };
        if !command.split_whitespace().any(|word| word == "--json") {
            continue;
        }
        examples += 1;
        let documented: Value = serde_json::from_str(documented)
            .unwrap_or_else(|error| panic!("README example `{first}` is not JSON: {error}"));
        let args: Vec<&str> = command.split_whitespace().collect();
        let run = flasher(dir.path(), &args);
        let code = match documented["ok"].as_bool() {
            Some(true) => 0,
            _ => documented["error"]["exit_code"].as_i64().unwrap() as i32,
        };
        let printed = run.expect(code).document();
        assert_same_fields(&documented, &printed, first);
    }
    assert!(
        examples >= 12,
        "only {examples} --json examples found in README.md"
    );
}

/// Panics unless `printed` has the fields of `documented` and no others, recursively (an
/// empty array, or a null on either side, matches anything).
#[track_caller]
fn assert_same_fields(documented: &Value, printed: &Value, example: &str) {
    match (documented, printed) {
        (Value::Object(documented), Value::Object(printed)) => {
            let keys = |object: &serde_json::Map<String, Value>| {
                object.keys().cloned().collect::<Vec<_>>()
            };
            assert_eq!(keys(documented), keys(printed), "fields of `{example}`");
            for (key, value) in documented {
                assert_same_fields(value, &printed[key], example);
            }
        }
        (Value::Array(documented), Value::Array(printed)) => {
            if let (Some(documented), Some(printed)) = (documented.first(), printed.first()) {
                assert_same_fields(documented, printed, example);
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (documented, printed) => assert_eq!(
            std::mem::discriminant(documented),
            std::mem::discriminant(printed),
            "`{example}`: README has {documented}, the binary prints {printed}"
        ),
    }
}
