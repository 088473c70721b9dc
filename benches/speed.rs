//! esp-flasher against esptool 5.6.0 on the same virtual ESP8266 — a program that prints a
//! table, not a timed test: `cargo bench --bench speed`.
//!
//! It builds (or finds) the release `esp-flasher` and `esp-emulator`, installs esptool 5.6.0
//! into `target/esptool/` as the integration tests do, and runs each tool as a separate
//! process against a freshly started `esp-emulator` on a pty (each uploading its own stub,
//! executed by the virtual chip: flashlab's and esptool 5.6.0's), for three cases:
//!
//! 1. back up the whole flash (esp-flasher `backup`, esptool `read-flash 0 SIZE`);
//! 2. write a firmware-like image (`esp_emulator::sample_firmware`, which zlib compresses
//!    about as well as real firmware) over different contents, verified by MD5;
//! 3. write that image again after changing one 4 KiB sector.
//!
//! Each case runs unthrottled (4MB flash, 1MB image), then with `esp-emulator --realtime` at
//! 921600 baud (1MB flash and image), on a serial adapter that carries 2M baud and loses
//! bytes above it (`baud-limit:max=2000000`; esp-flasher at `--baud auto`, esptool at
//! 921600, its usual fastest) and at 115200 baud (256KB flash and image: smaller, to keep the
//! run within a few minutes). Under `--realtime` bytes take their UART time, so the
//! table also shows the share of the link's capacity used: payload bytes (flash bytes read,
//! compressed bytes written) and bytes on the wire (in the transfer's direction, counted by
//! the emulator's read/write syscalls on the pty, less what a bare connect costs), each over
//! `baud / 10` bytes per second for the transfer time the tool itself prints. Peak resident
//! memory (VmHWM) of esp-flasher backing up 4MB and of the emulator close the run.
//!
//! A second table times whole backups under `--realtime` (connect included, as a user waits
//! for them): the 1MB Sonoff-like flash at 115200 and 2M, the 4MB POW-like one at 921600, and
//! 1MB of incompressible data at 921600; esp-flasher as it runs by default (erased sectors
//! skipped, blocks deflated on the chip where that pays), esp-flasher with `-u` (plain
//! READ_FLASH blocks, erased sectors still skipped) and esptool's `read-flash`.
//! `cargo bench --bench speed -- backups` runs only that table.
//!
//! A third table is the fleet case: N `esp-emulator --realtime` ptys at 921600 baud
//! (N = 1, 2, 4, 8), each 1MB Sonoff-like flash backed up whole by ONE esp-flasher command
//! (`--port` given N times), with that command's wall time, its CPU time (user + system,
//! read from /proc once it has exited and before it is reaped) and its peak resident memory
//! (VmHWM, sampled every 2 ms while it runs), in total and per board.
//! `cargo bench --bench speed -- fleet` runs only that table.

#[allow(dead_code)]
#[path = "../tests/util.rs"]
mod util;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use esp_protocol::flash_params::size_name;

const KB: usize = 1024;
const MB: usize = 1024 * KB;
/// How long one tool run may take before the benchmark gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// One line of conditions: the emulator's mode, the baud rate and the sizes.
struct Scenario {
    name: &'static str,
    realtime: bool,
    /// The rate both tools are given, unless `adapter_limit` is set.
    baud: u32,
    /// A serial adapter that loses bytes above this rate (`baud-limit`): esp-flasher then runs
    /// with `--baud auto` (and its link use is counted at this rate), esptool at `baud`.
    adapter_limit: Option<u32>,
    flash_size: usize,
    image_size: usize,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "unthrottled",
        realtime: false,
        baud: 921_600,
        adapter_limit: None,
        flash_size: 4 * MB,
        image_size: MB,
    },
    Scenario {
        name: "realtime 921600",
        realtime: true,
        baud: 921_600,
        adapter_limit: None,
        flash_size: MB,
        image_size: MB,
    },
    Scenario {
        name: "realtime, adapter carries 2M (esp-flasher --baud auto, esptool 921600)",
        realtime: true,
        baud: 921_600,
        adapter_limit: Some(2_000_000),
        flash_size: MB,
        image_size: MB,
    },
    Scenario {
        name: "realtime 115200",
        realtime: true,
        baud: 115_200,
        adapter_limit: None,
        flash_size: 256 * KB,
        image_size: 256 * KB,
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    EspFlasher,
    Esptool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Connect,
    Backup,
    /// esp-flasher's `backup -u`: plain READ_FLASH blocks (esptool runs its usual read).
    PlainBackup,
    Write,
    Rewrite,
}

/// One row of the whole-backup table.
struct BackupRow {
    name: &'static str,
    baud: u32,
    flash_size: usize,
    /// Incompressible data over the whole flash instead of the Sonoff-like sample.
    incompressible: bool,
    /// What the issue asks of esp-flasher's default backup, in seconds.
    target: Option<f64>,
}

const BACKUP_ROWS: [BackupRow; 4] = [
    BackupRow {
        name: "Sonoff-like 1MB, 115200",
        baud: 115_200,
        flash_size: MB,
        incompressible: false,
        target: Some(35.0),
    },
    BackupRow {
        name: "Sonoff-like 1MB, 2M",
        baud: 2_000_000,
        flash_size: MB,
        incompressible: false,
        target: Some(2.5),
    },
    BackupRow {
        name: "POW-like 4MB, 921600",
        baud: 921_600,
        flash_size: 4 * MB,
        incompressible: false,
        target: Some(10.0),
    },
    BackupRow {
        name: "incompressible 1MB, 921600",
        baud: 921_600,
        flash_size: MB,
        incompressible: true,
        target: None,
    },
];

/// Whole backups under `--realtime`, connect included: esp-flasher, esp-flasher `-u` and
/// esptool on the same flash, each checked against it.
fn run_backups(setup: &Setup) {
    let dir = setup.dir.path();
    println!("== whole backups under --realtime, connect included (wall seconds)");
    println!(
        "  {:<28} {:>11} {:>11} {:>9} {:>8}  {:>7}  {:>6}",
        "flash, baud", "esp-flasher", "(-u, plain)", "esptool", "ratio", "target", "bytes/wire"
    );
    for row in &BACKUP_ROWS {
        let flash = if row.incompressible {
            incompressible(row.flash_size)
        } else {
            sonoff_like_flash(row.flash_size, 1)
        };
        let scenario = Scenario {
            name: row.name,
            realtime: true,
            baud: row.baud,
            adapter_limit: None,
            flash_size: row.flash_size,
            image_size: 0,
        };
        let flash_path = dir.join("flash.bin");
        let mut walls = Vec::new();
        let mut default_transfer = None;
        for (tool, case) in [
            (Tool::EspFlasher, Case::Backup),
            (Tool::EspFlasher, Case::PlainBackup),
            (Tool::Esptool, Case::Backup),
        ] {
            fs::write(&flash_path, &flash).expect("write the flash file");
            let measured = run_tool(setup, &scenario, tool, case, &flash_path, &flash_path);
            check_result(case, &scenario, &flash_path, dir, tool, &[], &[], &flash);
            if tool == Tool::EspFlasher && case == Case::Backup {
                default_transfer = measured.transfer;
            }
            walls.push(measured.wall);
        }
        // Flash bytes per second of the transfer, over what the line carries (baud / 10).
        let over_wire = default_transfer.map_or("?".to_owned(), |seconds| {
            format!(
                "{:.2}x",
                row.flash_size as f64 / seconds / (f64::from(row.baud) / 10.0)
            )
        });
        let target = row.target.map_or("-".to_owned(), |target| {
            let verdict = if walls[0] <= target { "met" } else { "MISSED" };
            format!("<={target}s {verdict}")
        });
        println!(
            "  {:<28} {:>10.2}s {:>10.2}s {:>8.2}s {:>7.1}x  {:>7}  {:>6}",
            row.name,
            walls[0],
            walls[1],
            walls[2],
            walls[2] / walls[0],
            target,
            over_wire
        );
    }
    println!();
}

/// Board counts of the fleet table.
#[cfg(unix)]
const FLEET_SIZES: [usize; 4] = [1, 2, 4, 8];

/// The fleet case: N virtual boards under `--realtime` at 921600, each 1MB flash backed up
/// whole by one esp-flasher command; every backup is checked against its flash.
#[cfg(unix)]
fn run_fleet(setup: &Setup) {
    let scenario = Scenario {
        name: "fleet",
        realtime: true,
        baud: 921_600,
        adapter_limit: None,
        flash_size: MB,
        image_size: 0,
    };
    println!(
        "== fleet: N boards (esp-emulator --realtime, 921600, 1MB Sonoff-like flash each) backed up whole by one esp-flasher command"
    );
    println!(
        "  {:>6} {:>9} {:>8}  {:>18}  {:>23}  {:>15}",
        "boards", "wall", "vs 1", "CPU (per board)", "peak memory (per board)", "emulators' CPU"
    );
    let mut one_board = None;
    for boards in FLEET_SIZES {
        let dir = setup.dir.path().join(format!("fleet{boards}"));
        fs::create_dir_all(&dir).expect("create the fleet folder");
        let mut flashes = Vec::new();
        let mut emulators = Vec::new();
        for n in 1..=boards {
            let flash_path = dir.join(format!("flash{n}.bin"));
            let flash = sonoff_like_flash(MB, n as u64);
            fs::write(&flash_path, &flash).expect("write the flash file");
            emulators.push(Emulator::start(setup, &scenario, &flash_path));
            flashes.push(flash);
        }
        let mut command = Command::new(&setup.flasher);
        for emulator in &emulators {
            command.args(["--port", &emulator.port]);
        }
        let log = dir.join("flasher.log");
        let output = fs::File::create(&log).expect("create the flasher log");
        command
            .args(["--baud", "921600", "backup"])
            .arg(dir.join("backup-{n}.bin"))
            .env_remove("ESP_FLASHER_STUB")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone the log handle"))
            .stderr(output);
        let start = Instant::now();
        let child = command.spawn().expect("start esp-flasher");
        let usage = wait_with_usage(child);
        let wall = start.elapsed().as_secs_f64();
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(usage.success, "{command:?} failed:\n{text}");
        // The virtual chips' CPUs are emulated on this host's cores too (a board has its own).
        let emulator_cpu: f64 = emulators
            .iter()
            .map(|emulator| util::cpu_time(emulator.child.id()).as_secs_f64())
            .sum();
        for emulator in &mut emulators {
            emulator.finish();
        }
        for (n, flash) in flashes.iter().enumerate() {
            let backup = fs::read(dir.join(format!("backup-{}.bin", n + 1))).expect("a backup");
            assert!(
                backup == *flash,
                "board {}'s backup differs from its flash",
                n + 1
            );
        }
        let base = *one_board.get_or_insert(wall);
        let per = boards as f64;
        println!(
            "  {:>6} {:>8.2}s {:>7.2}x  {:>7.2}s ({:>5.2}s)  {:>10.1} MB ({:>5.1} MB)  {:>14.2}s",
            boards,
            wall,
            wall / base,
            usage.cpu_seconds,
            usage.cpu_seconds / per,
            usage.peak_kb as f64 / 1024.0,
            usage.peak_kb as f64 / 1024.0 / per,
            emulator_cpu
        );
    }
    println!("  goal: 8 boards within 1.25x the time of 1 (CPU and memory are esp-flasher's, per run and per board)");
    println!();
}

/// What a finished child used.
#[cfg(unix)]
struct Usage {
    success: bool,
    /// User plus system CPU seconds.
    cpu_seconds: f64,
    /// Peak resident memory, kB.
    peak_kb: u64,
}

/// The fleet case reads esp-flasher's CPU time and memory from Linux's /proc.
#[cfg(not(unix))]
fn run_fleet(_setup: &Setup) {
    println!("== fleet: not run: it measures esp-flasher through /proc (Linux)");
}

/// Waits for `child`, sampling its peak memory; once it has exited, reads its CPU time from
/// /proc before reaping it.
#[cfg(unix)]
fn wait_with_usage(mut child: Child) -> Usage {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    let pid = child.id();
    let start = Instant::now();
    let mut peak_kb = 0;
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
    loop {
        peak_kb = peak_kb.max(status_field(pid, "VmHWM").unwrap_or(0));
        match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags).expect("waitid") {
            WaitStatus::StillAlive => {}
            _ => break,
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("esp-flasher ran longer than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
    let cpu_seconds = util::cpu_time(pid).as_secs_f64();
    let status = child.wait().expect("reap esp-flasher");
    Usage {
        success: status.success(),
        cpu_seconds,
        peak_kb,
    }
}

/// `size` bytes that no compressor shrinks: MD5 in counter mode.
fn incompressible(size: usize) -> Vec<u8> {
    use md5::{Digest, Md5};
    (0..size.div_ceil(16) as u64)
        .flat_map(|counter| Md5::digest(counter.to_le_bytes()))
        .take(size)
        .collect()
}

/// What one tool run measured.
struct Measured {
    wall: f64,
    /// The transfer time the tool printed ("in 6.2 seconds").
    transfer: Option<f64>,
    /// Compressed bytes the tool reported sending.
    compressed: Option<u64>,
    /// Bytes the emulator read from the pty (host→chip) and wrote to it (chip→host).
    host_to_chip: u64,
    chip_to_host: u64,
    /// Peak resident memory of the tool, kB.
    tool_hwm_kb: u64,
    /// Peak resident memory of the emulator, kB.
    emulator_hwm_kb: u64,
}

struct Setup {
    flasher: PathBuf,
    emulator: PathBuf,
    esptool: util::Esptool,
    dir: tempfile::TempDir,
}

fn main() {
    let started = Instant::now();
    let setup = Setup {
        flasher: util::binary("esp-flasher"),
        emulator: util::binary("esp-emulator"),
        esptool: util::esptool("5.6.0"),
        dir: tempfile::tempdir().expect("temporary directory"),
    };
    if std::env::args().any(|argument| argument == "fleet") {
        run_fleet(&setup);
        println!(
            "\nWhole benchmark: {:.0} s.",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    if std::env::args().any(|argument| argument == "backups") {
        run_backups(&setup);
        println!(
            "\nWhole benchmark: {:.0} s.",
            started.elapsed().as_secs_f64()
        );
        return;
    }
    println!(
        "esp-flasher vs esptool 5.6.0 on esp-emulator (release builds); wall seconds per run."
    );
    println!("Realtime runs use smaller flashes and images to keep the run short (sizes in each heading).");
    println!();
    let mut memory = None;
    for scenario in &SCENARIOS {
        let results = run_scenario(&setup, scenario);
        if scenario.flash_size == 4 * MB {
            memory = Some(results);
        }
    }
    run_backups(&setup);
    run_fleet(&setup);
    if let Some((flasher_hwm, emulator_hwm)) = memory {
        println!("Peak resident memory (VmHWM), backing up 4MB:");
        println!(
            "  esp-flasher  {:6.1} MB   (target < 32 MB)",
            flasher_hwm as f64 / 1024.0
        );
        println!(
            "  esp-emulator {:6.1} MB   (target < 16 MB + 4 MB flash = 20 MB)",
            emulator_hwm as f64 / 1024.0
        );
    }
    println!(
        "\nWhole benchmark: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
}

/// Runs the three cases with both tools; returns esp-flasher's and the emulator's peak memory
/// during esp-flasher's backup.
fn run_scenario(setup: &Setup, scenario: &Scenario) -> (u64, u64) {
    let dir = setup.dir.path();
    println!(
        "== {} (--baud {}): backup {}, write {} image, rewrite with one sector changed",
        scenario.name,
        match scenario.adapter_limit {
            Some(_) => "auto | 921600".to_owned(),
            None => scenario.baud.to_string(),
        },
        size_name(scenario.flash_size as u64),
        size_name(scenario.image_size as u64)
    );
    let factory = sonoff_like_flash(scenario.flash_size, 1);
    let image = firmware_image(scenario.image_size, 2);
    let mut changed = image.clone();
    let sector = scenario.image_size / 2 / 0x1000 * 0x1000;
    for byte in &mut changed[sector + 100..sector + 200] {
        *byte ^= 0xA5;
    }
    let image_path = dir.join("image.bin");
    let changed_path = dir.join("changed.bin");
    fs::write(&image_path, &image).expect("write the image");
    fs::write(&changed_path, &changed).expect("write the changed image");

    let mut memory = (0, 0);
    let mut connect_cost = [(0u64, 0u64); 2];
    println!(
        "  {:<10}              {:>9} {:>9} {:>9}   link use (esp-flasher | esptool)",
        "case", "esp-flasher", "esptool", "ratio"
    );
    for case in [Case::Connect, Case::Backup, Case::Write, Case::Rewrite] {
        let flash_before = match case {
            Case::Connect | Case::Backup | Case::PlainBackup | Case::Write => &factory,
            Case::Rewrite => &{
                let mut after_write = factory.clone();
                after_write[..image.len()].copy_from_slice(&image);
                after_write
            },
        };
        let mut results = Vec::new();
        for (index, tool) in [Tool::EspFlasher, Tool::Esptool].into_iter().enumerate() {
            let flash_path = dir.join("flash.bin");
            fs::write(&flash_path, flash_before).expect("write the flash file");
            let file = match case {
                Case::Rewrite => &changed_path,
                _ => &image_path,
            };
            let measured = run_tool(setup, scenario, tool, case, &flash_path, file);
            check_result(
                case,
                scenario,
                &flash_path,
                dir,
                tool,
                &image,
                &changed,
                &factory,
            );
            if case == Case::Connect {
                connect_cost[index] = (measured.host_to_chip, measured.chip_to_host);
            }
            if case == Case::Backup && tool == Tool::EspFlasher {
                memory = (measured.tool_hwm_kb, measured.emulator_hwm_kb);
            }
            results.push(measured);
        }
        let label = match case {
            Case::Connect => "connect",
            Case::Backup | Case::PlainBackup => "1 backup",
            Case::Write => "2 write",
            Case::Rewrite => "3 rewrite",
        };
        let link = if scenario.realtime && case != Case::Connect {
            let shares: Vec<String> = results
                .iter()
                .zip(connect_cost)
                .zip([Tool::EspFlasher, Tool::Esptool])
                .map(|((measured, connect), tool)| {
                    link_use(scenario, tool, case, measured, connect)
                })
                .collect();
            shares.join(" | ")
        } else {
            String::new()
        };
        println!(
            "  {:<10} {:>12} {:>8.2}s {:>8.2}s {:>8.1}x   {}",
            label,
            "",
            results[0].wall,
            results[1].wall,
            results[1].wall / results[0].wall,
            link
        );
    }
    println!();
    memory
}

/// "payload 97% wire 99%" for one run: shares of `baud / 10` bytes per second over the
/// transfer time the tool printed.
fn link_use(
    scenario: &Scenario,
    tool: Tool,
    case: Case,
    measured: &Measured,
    connect: (u64, u64),
) -> String {
    let Some(transfer) = measured.transfer else {
        return "no transfer time printed".into();
    };
    let baud = match (tool, scenario.adapter_limit) {
        (Tool::EspFlasher, Some(limit)) => limit,
        _ => scenario.baud,
    };
    let capacity = baud as f64 / 10.0 * transfer;
    let (payload, wire) = match case {
        Case::Backup | Case::PlainBackup => (
            Some(scenario.flash_size as u64),
            measured.chip_to_host.saturating_sub(connect.1),
        ),
        _ => (
            measured.compressed,
            measured.host_to_chip.saturating_sub(connect.0),
        ),
    };
    let payload = payload.map_or("?".into(), |bytes| {
        format!("{:.0}%", 100.0 * bytes as f64 / capacity)
    });
    format!(
        "payload {payload:>4} wire {:>4.0}% ({transfer:.1}s)",
        100.0 * wire as f64 / capacity
    )
}

/// The tool's command line for `case`.
fn tool_command(
    setup: &Setup,
    scenario: &Scenario,
    tool: Tool,
    case: Case,
    port: &str,
    file: &Path,
) -> Command {
    let out = setup.dir.path().join("read.bin");
    let _ = fs::remove_file(&out);
    let baud = scenario.baud.to_string();
    let flasher_baud = match scenario.adapter_limit {
        Some(_) => "auto".to_owned(),
        None => baud.clone(),
    };
    let file = file.to_str().expect("UTF-8 temporary path").to_owned();
    let out = out.to_str().expect("UTF-8 temporary path").to_owned();
    let size = format!("{:#x}", scenario.flash_size);
    let mut command;
    match tool {
        Tool::EspFlasher => {
            command = Command::new(&setup.flasher);
            // Each tool uploads its own stub: esp-flasher flashlab's, esptool its own.
            command
                .args(["--port", port, "--baud", &flasher_baud])
                .env_remove("ESP_FLASHER_STUB");
            match case {
                Case::Connect => command.args(["flash_id"]),
                Case::Backup => command.args(["backup", &out]),
                Case::PlainBackup => command.args(["backup", "-u", &out]),
                Case::Write | Case::Rewrite => command.args(["write_flash", "0x0", &file]),
            };
        }
        Tool::Esptool => {
            command = Command::new(&setup.esptool.executable);
            command.args(["--port", port, "--baud", &baud]);
            match case {
                Case::Connect => command.args(["flash-id"]),
                Case::Backup | Case::PlainBackup => command.args(["read-flash", "0", &size, &out]),
                Case::Write | Case::Rewrite => command.args(["write-flash", "0x0", &file]),
            };
        }
    }
    command
}

/// Starts an emulator on `flash_path`, runs the tool once, stops the emulator.
fn run_tool(
    setup: &Setup,
    scenario: &Scenario,
    tool: Tool,
    case: Case,
    flash_path: &Path,
    file: &Path,
) -> Measured {
    let mut emulator = Emulator::start(setup, scenario, flash_path);
    let log = setup.dir.path().join("tool.log");
    let mut command = tool_command(setup, scenario, tool, case, &emulator.port, file);
    let output = fs::File::create(&log).expect("create the tool log");
    command
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the log handle"))
        .stderr(output);
    let start = Instant::now();
    let mut child = command.spawn().expect("start the tool");
    let mut tool_hwm_kb = 0;
    let status = loop {
        tool_hwm_kb = tool_hwm_kb.max(status_field(child.id(), "VmHWM").unwrap_or(0));
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("{:?} ran longer than {RUN_LIMIT:?}", command);
        }
        thread::sleep(Duration::from_millis(2));
    };
    let wall = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{command:?} failed ({status}):\n{text}");
    let (host_to_chip, chip_to_host, emulator_hwm_kb) = emulator.finish();
    Measured {
        wall,
        transfer: transfer_seconds(&text),
        compressed: compressed_bytes(&text),
        host_to_chip,
        chip_to_host,
        tool_hwm_kb,
        emulator_hwm_kb,
    }
}

/// Checks that the run did what it should: the backup equals the flash, the flash the image.
#[allow(clippy::too_many_arguments)]
fn check_result(
    case: Case,
    scenario: &Scenario,
    flash_path: &Path,
    dir: &Path,
    tool: Tool,
    image: &[u8],
    changed: &[u8],
    factory: &[u8],
) {
    let name = match tool {
        Tool::EspFlasher => "esp-flasher",
        Tool::Esptool => "esptool",
    };
    let flash = fs::read(flash_path).expect("read the flash file back");
    match case {
        Case::Connect => {}
        Case::Backup | Case::PlainBackup => {
            let read = fs::read(dir.join("read.bin")).expect("the backup exists");
            assert!(read == factory, "{name}'s backup differs from the flash");
        }
        Case::Write => assert!(
            flash[..image.len()] == *image,
            "{name} left the flash unequal to the image"
        ),
        Case::Rewrite => assert!(
            flash[..changed.len()] == *changed,
            "{name} left the flash unequal to the image"
        ),
    }
    assert_eq!(flash.len(), scenario.flash_size);
}

/// The seconds in the tool's "... in 6.2 seconds" line (the last one).
fn transfer_seconds(text: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with("Read ") || line.starts_with("Wrote "))
        .filter_map(|line| {
            let (_, rest) = line.split_once(" in ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .next_back()
}

/// N in the tool's "Wrote ... (N compressed)" line.
fn compressed_bytes(text: &str) -> Option<u64> {
    text.lines()
        .filter(|line| line.starts_with("Wrote "))
        .find_map(|line| {
            let (before, _) = line.split_once(" compressed)")?;
            before.rsplit('(').next()?.parse().ok()
        })
}

/// A field of /proc/PID/status in kB.
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A counter of /proc/PID/io.
fn io_field(pid: u32, field: &str) -> u64 {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// An `esp-emulator` process for one run.
struct Emulator {
    child: Child,
    port: String,
    /// Bytes read and written before the client came: loading the flash file.
    baseline: (u64, u64),
}

impl Emulator {
    fn start(setup: &Setup, scenario: &Scenario, flash_path: &Path) -> Emulator {
        let mut command = Command::new(&setup.emulator);
        command
            .arg("--flash")
            .arg(flash_path)
            .args(["--size", &format!("{}KB", scenario.flash_size / KB)]);
        if scenario.realtime {
            command.arg("--realtime");
        }
        if let Some(limit) = scenario.adapter_limit {
            command.args(["--fault", &format!("baud-limit:max={limit}")]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start esp-emulator");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert!(!port.is_empty(), "esp-emulator printed no pty path");
        let pid = child.id();
        let baseline = (io_field(pid, "rchar"), io_field(pid, "wchar"));
        Emulator {
            child,
            port,
            baseline,
        }
    }

    /// Host→chip and chip→host bytes of the session and the peak memory (kB); stops it.
    fn finish(&mut self) -> (u64, u64, u64) {
        let pid = self.child.id();
        // The server notices the hang-up within a few milliseconds and saves the flash.
        thread::sleep(Duration::from_millis(50));
        let (read, written) = (io_field(pid, "rchar"), io_field(pid, "wchar"));
        let hwm = status_field(pid, "VmHWM").unwrap_or(0);
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = util::wait_with_limit(&mut self.child, Duration::from_secs(20));
        (read - self.baseline.0, written - self.baseline.1, hwm)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
