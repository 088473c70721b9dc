//! Many boards in one `esp-flasher` command (`--port` given more than once): the real binary
//! on four virtual boards — `emu:` specs, each with its own flash file, and `esp-emulator`
//! processes on ptys — with one faulty board among healthy ones. Every check looks at the
//! summary, the exit code and the bytes: each healthy board's backup must equal its flash
//! file, and each written flash file must hold the image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use serde_json::Value;
use tempfile::TempDir;

use crate::util::{run_flasher, Emulator, FlasherRun};

const MIB: usize = 1024 * 1024;
/// How long one many-board run may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

type Run = FlasherRun;

/// Runs esp-flasher with `args` in `dir`.
fn flasher(dir: &Path, args: &[String]) -> Run {
    run_flasher(dir, args, RUN_LIMIT)
}

/// `--port P` for each port, then `rest`.
fn command_line(ports: &[String], rest: &[&str]) -> Vec<String> {
    ports
        .iter()
        .flat_map(|port| ["--port".to_string(), port.clone()])
        .chain(rest.iter().map(|arg| arg.to_string()))
        .collect()
}

/// Four virtual boards, each on its own flash file holding a different Sonoff-like flash,
/// with its own MAC; `fault` is added to the last one's spec.
struct VirtualBoards {
    dir: TempDir,
    ports: Vec<String>,
    flashes: Vec<PathBuf>,
}

impl VirtualBoards {
    fn new(fault: &str) -> VirtualBoards {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut flashes = Vec::new();
        for n in 1..=4u8 {
            let flash = dir.path().join(format!("flash{n}.bin"));
            fs::write(&flash, sonoff_like_flash(MIB, u64::from(n))).unwrap();
            let mut port = format!("emu:1MB,file={},mac=5c:cf:7f:00:00:0{n}", flash.display());
            if n == 4 {
                port.push_str(fault);
            }
            ports.push(port);
            flashes.push(flash);
        }
        VirtualBoards {
            dir,
            ports,
            flashes,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The JSON summary's board `index`, checked to be the documented shape.
fn board(json: &Value, index: usize) -> &Value {
    let board = &json["boards"][index];
    for field in [
        "n",
        "port",
        "chip",
        "mac",
        "flash_size",
        "result",
        "error",
        "remedy",
        "seconds",
        "file",
    ] {
        assert!(board.get(field).is_some(), "no {field} in {board}");
    }
    board
}

#[test]
fn backup_of_four_virtual_boards_by_mac_with_one_returning_bad_md5s() {
    let boards = VirtualBoards::new(",fault=bad-md5");
    let run = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["--json", "backup", "sonoff-{mac}.bin"]),
    );
    assert_eq!(run.code, 1, "one board failed: {run}");
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}): {run}"));
    assert_eq!(
        (json["succeeded"].as_u64(), json["failed"].as_u64()),
        (Some(3), Some(1))
    );
    for (index, flash) in boards.flashes.iter().enumerate().take(3) {
        let entry = board(&json, index);
        let mac = format!("5c:cf:7f:00:00:0{}", index + 1);
        assert_eq!(entry["n"], index + 1);
        assert_eq!(entry["port"], boards.ports[index].as_str());
        assert_eq!(entry["result"], "ok", "{run}");
        assert_eq!(entry["chip"], "ESP8266EX");
        assert_eq!(entry["mac"], mac.as_str());
        assert_eq!(entry["flash_size"], MIB);
        assert!(entry["error"].is_null());
        let file = boards.path(&format!("sonoff-5ccf7f00000{}.bin", index + 1));
        assert_eq!(entry["file"], file.file_name().unwrap().to_str().unwrap());
        assert!(
            fs::read(&file).unwrap() == fs::read(flash).unwrap(),
            "the backup of board {} differs from its flash",
            index + 1
        );
        assert!(boards
            .path(&format!("sonoff-5ccf7f00000{}.bin.json", index + 1))
            .exists());
    }
    let faulty = board(&json, 3);
    assert_eq!(faulty["result"], "failed");
    assert_eq!(faulty["mac"], "5c:cf:7f:00:00:04");
    let error = faulty["error"].as_str().unwrap();
    assert!(error.contains("MD5"), "{error}");
    assert!(faulty["remedy"]
        .as_str()
        .is_some_and(|remedy| !remedy.is_empty()));
    assert!(
        !boards.path("sonoff-5ccf7f000004.bin").exists(),
        "a failed backup left a file"
    );
    // Human text goes to stderr: each board's lines behind its port, then the table.
    assert!(run
        .stderr
        .contains(&format!("[{}] Hash of data verified.", boards.ports[0])));
    assert!(
        run.stderr.contains("Summary: 3 of 4 boards succeeded"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains(&format!("Failed on {}: {error}", boards.ports[3])),
        "{run}"
    );
}

#[test]
fn write_flash_to_four_virtual_boards_with_one_cable_pulled() {
    let boards = VirtualBoards::new(",fault=disconnect:after=60000,from=host");
    let image = firmware_image(256 * 1024, 9);
    fs::write(boards.path("firmware.bin"), &image).unwrap();
    let run = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["write_flash", "0x0", "firmware.bin"]),
    );
    assert_eq!(run.code, 1, "{run}");
    for flash in &boards.flashes[..3] {
        let written = fs::read(flash).unwrap();
        assert!(
            written[..image.len()] == image[..],
            "{} lacks the image",
            flash.display()
        );
    }
    let table: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        table[0].split(" in ").next(),
        Some("Summary: 3 of 4 boards succeeded"),
        "{run}"
    );
    assert!(table[1].contains("port") && table[1].contains("MAC") && table[1].contains("result"));
    for (row, port) in table[2..6].iter().zip(&boards.ports) {
        assert!(row.contains(port.as_str()), "{row}");
    }
    assert!(table[2..5].iter().all(|row| row.contains(" ok ")), "{run}");
    assert!(table[5].contains(" failed "), "{run}");
    // The unplugged board is named by its port, with the address the write reached.
    let failure = table
        .iter()
        .find(|line| line.starts_with("Failed on "))
        .unwrap_or_else(|| panic!("no failure line: {run}"));
    assert!(
        failure.starts_with(&format!("Failed on {}: ", boards.ports[3])),
        "{failure}"
    );
    assert!(
        failure.contains("the flash is written up to about 0x"),
        "{failure}"
    );
}

#[test]
fn same_mac_on_two_boards_fails_the_second_before_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    // Both virtual boards have the emulator's default MAC.
    let ports = ["emu:1MB,seed=1".to_string(), "emu:1MB,seed=2".to_string()];
    let run = flasher(
        dir.path(),
        &command_line(&ports, &["backup", "b-{mac}.bin"]),
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.contains("Summary: 1 of 2 boards succeeded"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("which reports the same MAC 18:fe:34:12:34:56"),
        "{run}"
    );
    let written: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("b-"))
        .collect();
    assert_eq!(written.len(), 2, "one image and its record: {written:?}");
}

#[test]
fn bad_port_lists_and_colliding_names_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("new-flash.bin");
    let with_file = format!("emu:1MB,file={}", flash.display());
    for (ports, rest, problem) in [
        (
            vec!["emu:1MB", "emu:1MB"],
            vec!["backup", "b-{n}.bin"],
            "is given twice",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,seed=2"],
            vec!["backup", "b.bin"],
            "would be written by",
        ),
        (
            vec![with_file.as_str(), "/dev/no-such-port"],
            vec!["backup", "b-{n}.bin"],
            "does not exist",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,fault=melt"],
            vec!["flash_id"],
            "melt",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,seed=2"],
            vec!["write_flash", "0", "missing.bin"],
            "missing.bin",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,seed=2"],
            vec!["version"],
            "does not use a board",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,seed=2"],
            vec!["monitor", "--timeout", "1"],
            "one --port at a time",
        ),
        (
            vec![with_file.as_str(), "emu:1MB,seed=2"],
            vec!["run", "--monitor"],
            "one --port at a time",
        ),
    ] {
        let ports: Vec<String> = ports.iter().map(|port| port.to_string()).collect();
        let run = flasher(dir.path(), &command_line(&ports, &rest));
        assert_eq!(run.code, 2, "{ports:?} {rest:?}: {run}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {run}");
        assert!(lines[0].contains(problem), "{problem}: {run}");
        assert!(run.stdout.is_empty(), "{run}");
        assert!(!flash.exists(), "a virtual board was started: {run}");
    }
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.len() == 2, "only the run's logs: {left:?}");
}

#[test]
fn backup_of_four_emulator_ptys_by_port_with_one_timing_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut emulators = Vec::new();
    let mut flashes = Vec::new();
    for n in 1..=4u64 {
        let flash = dir.path().join(format!("flash{n}.bin"));
        fs::write(&flash, sonoff_like_flash(MIB, n)).unwrap();
        let mut args = vec!["--flash".to_string(), flash.to_str().unwrap().to_string()];
        if n == 2 {
            // The first deflated read block goes unanswered: that board waits, asks again
            // and finishes; the others go on meanwhile.
            args.extend([
                "--fault".into(),
                "timeout:op=READ_FLASH_DEFLATE,nth=1".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        emulators.push(Emulator::spawn(
            &args,
            &dir.path().join(format!("emulator{n}.log")),
        ));
        flashes.push(flash);
    }
    let ports: Vec<String> = emulators
        .iter()
        .map(|emulator| emulator.port().to_string())
        .collect();
    let run = flasher(
        dir.path(),
        &command_line(
            &ports,
            &["--json", "--baud", "921600", "backup", "pty-{port}.bin"],
        ),
    );
    assert_eq!(run.code, 0, "{run}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    for (index, (port, flash)) in ports.iter().zip(&flashes).enumerate() {
        let entry = board(&json, index);
        assert_eq!(entry["result"], "ok", "{run}");
        assert_eq!(entry["port"], port.as_str());
        let name = format!(
            "pty-{}.bin",
            port.trim_start_matches("/dev/").replace('/', "_")
        );
        assert_eq!(entry["file"], name.as_str());
        assert!(
            fs::read(dir.path().join(&name)).unwrap() == fs::read(flash).unwrap(),
            "the backup from {port} differs from its flash"
        );
    }
    assert!(
        run.stderr
            .contains(&format!("[{}] Warning: block at 0x", ports[1])),
        "the timed-out block was read again: {run}"
    );
}

#[test]
fn a_board_that_never_answers_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut emulators = Vec::new();
    let mut flashes = Vec::new();
    for n in 1..=2u64 {
        let flash = dir.path().join(format!("flash{n}.bin"));
        fs::write(&flash, sonoff_like_flash(MIB, n)).unwrap();
        let log = dir.path().join(format!("emulator{n}.log"));
        emulators.push(Emulator::spawn(&["--flash", flash.to_str().unwrap()], &log));
        flashes.push(flash);
    }
    // The second board hangs: its emulator is stopped, so its pty takes bytes and answers none.
    let stopped = Command::new("kill")
        .args(["-STOP", &emulators[1].pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let ports: Vec<String> = emulators
        .iter()
        .map(|emulator| emulator.port().to_string())
        .collect();
    let run = flasher(
        dir.path(),
        &command_line(&ports, &["--json", "backup", "b-{n}.bin"]),
    );
    // Dropping the emulators kills them, stopped or not.
    assert_eq!(run.code, 1, "{run}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let (healthy, hung) = (board(&json, 0), board(&json, 1));
    assert_eq!(healthy["result"], "ok", "{run}");
    assert!(fs::read(dir.path().join("b-1.bin")).unwrap() == fs::read(&flashes[0]).unwrap());
    assert_eq!(hung["result"], "failed");
    let error = hung["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("no answer from the chip on {}", ports[1])),
        "{error}"
    );
    assert!(hung["chip"].is_null() && hung["mac"].is_null());
    // The healthy board finished while the hung one was still being asked.
    assert!(
        healthy["seconds"].as_f64().unwrap() < hung["seconds"].as_f64().unwrap(),
        "{run}"
    );
}

#[test]
fn each_board_gets_its_own_backup_back_by_mac() {
    let boards = VirtualBoards::new("");
    let originals: Vec<Vec<u8>> = boards
        .flashes
        .iter()
        .map(|flash| fs::read(flash).unwrap())
        .collect();
    let backup = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["backup", "sonoff-{mac}.bin"]),
    );
    assert_eq!(backup.code, 0, "{backup}");
    // Every board is flashed with the same new firmware, then each restored from its own file.
    fs::write(boards.path("tasmota.bin"), firmware_image(128 * 1024, 77)).unwrap();
    let write = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["write_flash", "0x0", "tasmota.bin"]),
    );
    assert_eq!(write.code, 0, "{write}");
    assert!(fs::read(&boards.flashes[0]).unwrap() != originals[0]);
    let restore = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["restore", "sonoff-{mac}.bin"]),
    );
    assert_eq!(restore.code, 0, "{restore}");
    assert!(
        restore
            .stdout
            .starts_with("Summary: 4 of 4 boards succeeded"),
        "{restore}"
    );
    for (flash, original) in boards.flashes.iter().zip(&originals) {
        assert!(
            fs::read(flash).unwrap() == *original,
            "{} was not restored",
            flash.display()
        );
    }
}

#[test]
fn one_board_names_its_backup_by_mac_too() {
    let dir = tempfile::tempdir().unwrap();
    let run = flasher(
        dir.path(),
        &[
            "--port".into(),
            "emu:1MB,mac=5c:cf:7f:ab:cd:ef".into(),
            "backup".into(),
            "b-{mac}-{n}.bin".into(),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("to 'b-5ccf7fabcdef-1.bin'."), "{run}");
    assert!(
        !run.stdout.contains("Summary"),
        "one board prints no summary: {run}"
    );
    assert!(dir.path().join("b-5ccf7fabcdef-1.bin.json").exists());
}

#[test]
fn restore_of_one_image_to_many_boards_is_not_refused_as_busy() {
    let boards = VirtualBoards::new("");
    let image = sonoff_like_flash(MIB, 99);
    fs::write(boards.path("factory.bin"), &image).unwrap();
    let run = flasher(
        boards.dir.path(),
        &command_line(&boards.ports, &["--json", "restore", "factory.bin"]),
    );
    assert_eq!(run.code, 0, "{run}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["succeeded"], 4, "{run}");
    // Said once, before the boards start, and on stderr: stdout is the JSON alone.
    let said = "'factory.bin' has no .json record";
    assert_eq!(run.stderr.matches(said).count(), 1, "{run}");
    for flash in &boards.flashes {
        assert!(
            fs::read(flash).unwrap() == image,
            "{} was not restored",
            flash.display()
        );
    }
}
