//! Every failure scenario of `emulator/scenarios/`, reproduced with the real esptool 5.6.0
//! (installed from PyPI on demand) and with esp-flasher against `esp-emulator --scenario`:
//! each tool's exit code and its whole output must be those the scenario file recorded, with
//! times and rates (numbers with one decimal point) and paths filtered out, and the key line
//! must be among the output's lines. A change that breaks the emulator's fidelity, or
//! changes what esp-flasher says, fails here. `FLASHLAB_UPDATE_SCENARIOS=1 cargo test
//! --test tests scenarios` writes this run's outputs into the scenario files instead, for
//! review in the diff.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use esp_emulator::boot::{boot_from_flash, ResetCause};
use esp_emulator::scenario::{self, Scenario, ToolRun};

use crate::util::{binary, esptool, wait_with_limit, Emulator, PtyUse};

/// How long one tool run may take.
const RUN_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Defines one test per scenario, named after the failure, plus a check that none is missed.
macro_rules! scenario_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                reproduce($name);
            }
        )*

        #[test]
        fn every_catalogue_scenario_has_a_test() {
            let tested = [$($name),*];
            for name in scenario::names() {
                assert!(tested.contains(&name), "scenario {name} has no test in tests/scenarios.rs");
            }
        }
    };
}

scenario_tests! {
    regression_wrong_port => "wrong-port",
    regression_board_not_in_download_mode => "not-in-download-mode",
    regression_boot_log_before_every_sync_reply => "boot-log-every-attempt",
    regression_short_read_during_backup => "short-read",
    regression_bit_errors_during_backup => "weak-power-bit-errors",
    regression_write_protected_flash => "write-protected",
    regression_sector_that_will_not_erase => "stuck-sector",
    regression_fake_flash_size_wraps => "fake-flash-size",
    regression_1mb_backup_restored_on_4mb_chip => "1mb-backup-on-4mb-chip",
    regression_qio_image_on_dout_module => "qio-image-on-dout-module",
    regression_cable_pulled_during_write => "cable-pulled-during-write",
    regression_adapter_cannot_keep_up_at_921600_baud => "adapter-too-slow",
    regression_board_without_auto_reset => "no-auto-reset",
    regression_ch340_driver_that_does_not_pass_rts => "ch340-driver-drops-rts",
}

/// Which tool a run uses.
#[derive(Debug, Clone, Copy)]
enum Tool {
    Esptool,
    EspFlasher,
}

/// Runs the scenario with both tools, each on a freshly started board.
fn reproduce(name: &str) {
    let scenario = scenario::load(name).unwrap_or_else(|error| panic!("{error}"));
    // After a pulled cable esptool keeps reopening its old pty, whose number the kernel may
    // already have given to another test's emulator: run such a scenario alone.
    let _ptys = scenario
        .device
        .faults
        .iter()
        .any(|fault| fault.starts_with("disconnect"))
        .then(PtyUse::exclusive);
    run_tool(&scenario, Tool::Esptool, &scenario.esptool);
    run_tool(&scenario, Tool::EspFlasher, &scenario.esp_flasher);
}

fn run_tool(scenario: &Scenario, tool: Tool, run: &ToolRun) {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let flash_arg = flash.to_str().expect("temporary paths are UTF-8");
    let mut args = vec!["--scenario", &scenario.name, "--flash", flash_arg];
    // A board about its DTR/RTS wiring needs modem lines: an RFC 2217 endpoint, not a pty.
    if scenario.needs_modem_lines() {
        args.extend(["--listen", "rfc2217://127.0.0.1:0", "--no-pty"]);
    }
    let emulator = Emulator::spawn(&args, &dir.path().join("emulator.log"));
    let missing = dir.path().join("ttyUSB5");
    let missing = missing.to_str().expect("temporary paths are UTF-8");
    let port = run
        .port
        .replace("{port}", emulator.port())
        .replace("{missing}", missing);
    let mut command = match tool {
        Tool::Esptool => Command::new(&esptool("5.6.0").executable),
        // esp-flasher uploads its own stub, which the virtual chip executes.
        Tool::EspFlasher => {
            let mut command = Command::new(binary("esp-flasher"));
            command.env_remove("ESP_FLASHER_STUB");
            command
        }
    };
    command
        .current_dir(dir.path())
        .arg("--port")
        .arg(&port)
        .args(&run.args);
    let (code, output) = run_to_end(command, &dir.path().join("output.log"));
    let output = output
        .replace(missing, "{missing}")
        .replace(emulator.port(), "{port}")
        .replace(dir.path().to_str().expect("UTF-8"), "{dir}");
    let context = format!(
        "scenario {} with {tool:?}, output:\n{output}\nemulator stderr:\n{}",
        scenario.name,
        emulator.stderr()
    );
    assert_eq!(code, run.exit, "exit code of {context}");
    assert!(
        output.lines().any(|line| line_matches(&run.line, line)),
        "no line matches the recorded key line\n  {}\nin {context}",
        run.line
    );
    if std::env::var_os(UPDATE_VARIABLE).is_some() {
        record_output(&scenario.name, tool, &(as_shown(&output).join("\n") + "\n"));
    } else {
        assert_same_output(
            &run.output,
            &output,
            run.compared_through.as_deref(),
            &context,
        );
    }
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "emulator exit {status}: {stderr}");
    if let Some(expected) = &run.boot {
        let contents = fs::read(&flash).unwrap();
        let wiring = scenario.device_config().unwrap().flash_wiring();
        let report = boot_from_flash(&contents, contents.len(), ResetCause::PowerOn, wiring);
        let text = report.text();
        assert!(
            text.lines().any(|line| line == expected),
            "after {tool:?} in scenario {}, the boot does not print\n  {expected}\nbut:\n{text}",
            scenario.name
        );
    }
    if let Some(file) = &run.backup_equals_flash {
        let backup = fs::read(dir.path().join(file)).unwrap();
        assert!(
            backup == scenario.flash_contents().unwrap(),
            "{file} written by {tool:?} in scenario {} differs from the board's flash",
            scenario.name
        );
    }
}

/// Set, the scenario tests record each tool's output in the scenario files instead of
/// comparing it.
const UPDATE_VARIABLE: &str = "FLASHLAB_UPDATE_SCENARIOS";

/// Fails unless `actual` is the `recorded` output, times and rates aside (and only through
/// the line `through`, if given), naming the first line that differs.
fn assert_same_output(recorded: &str, actual: &str, through: Option<&str>, context: &str) {
    let recorded = filter_measurements(recorded);
    let actual = filter_measurements(actual);
    let compared = |text| {
        let mut lines = as_shown(text);
        if let Some(end) = through.and_then(|last| lines.iter().position(|line| *line == last)) {
            lines.truncate(end + 1);
        }
        lines
    };
    let (recorded, actual) = (compared(&recorded), compared(&actual));
    let lines = recorded.len().max(actual.len());
    if let Some(index) = (0..lines).find(|&index| recorded.get(index) != actual.get(index)) {
        panic!(
            "output line {} differs from the recorded one (times and rates filtered; \
             {UPDATE_VARIABLE}=1 records the new output)\n  recorded: {}\n  now:      {}\nin {context}",
            index + 1,
            recorded.get(index).unwrap_or(&"(no more lines)"),
            actual.get(index).unwrap_or(&"(no more lines)"),
        );
    }
}

/// The lines of `text` that are compared: each line as its last carriage return leaves it,
/// without trailing blanks and blank last lines, and without esptool 5's progress-bar lines
/// (`Reading from 0x00001000 ━╸  1.6% 4.00kB/256.00kB [0s]`), whose count and elapsed
/// seconds follow the machine's speed.
fn as_shown(text: &str) -> Vec<&str> {
    let is_progress_bar = |line: &&str| line.ends_with("s]") && line.contains("% ");
    let mut lines: Vec<&str> = text
        .lines()
        .map(|line| line.rsplit('\r').next().unwrap_or(line).trim_end())
        .filter(|line| !is_progress_bar(line))
        .collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

/// `text` with every number that has one decimal point (a time, a rate) replaced by `{n}`,
/// and every run of dots (a wait drawn as it lasts: "Connecting.....") made three;
/// version numbers such as `v5.6.0` are kept.
fn filter_measurements(text: &str) -> String {
    let mut dots_collapsed = String::with_capacity(text.len());
    for piece in text.split_inclusive(|c: char| c != '.') {
        // Each piece is a run of dots, then one other character (or the end).
        let dots = piece.len() - piece.trim_start_matches('.').len();
        let rest = &piece[dots..];
        dots_collapsed.push_str(if dots >= 2 { "..." } else { &piece[..dots] });
        dots_collapsed.push_str(rest);
    }
    let text = dots_collapsed.as_str();
    let mut filtered = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from_digit) = rest.split_at(start);
        filtered.push_str(before);
        let end = from_digit
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(from_digit.len());
        // A full stop after an integer is not a decimal point.
        let number = from_digit[..end].trim_end_matches('.');
        let part_of_a_word = before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.');
        if number.matches('.').count() == 1 && !part_of_a_word {
            filtered.push_str("{n}");
        } else {
            filtered.push_str(number);
        }
        rest = &from_digit[number.len()..];
    }
    filtered.push_str(rest);
    filtered
}

/// Writes `output` as `tool`'s recorded output into scenario `name`'s file.
fn record_output(name: &str, tool: Tool, output: &str) {
    const START: &str = "output = '''\n";
    let path = crate::util::workspace_root()
        .join("emulator/scenarios")
        .join(format!("{name}.toml"));
    let text = fs::read_to_string(&path).unwrap();
    let section = match tool {
        Tool::Esptool => "[esptool]",
        Tool::EspFlasher => "[esp_flasher]",
    };
    let section_at = text
        .find(section)
        .expect("the scenario has the tool's section");
    let start = section_at + text[section_at..].find(START).expect("an output") + START.len();
    let end = start + text[start..].find("'''").expect("the output's end");
    assert!(
        !output.contains("'''"),
        "the output cannot be a TOML literal string"
    );
    fs::write(&path, format!("{}{output}{}", &text[..start], &text[end..])).unwrap();
}

#[test]
fn measurements_are_filtered_and_the_rest_is_kept() {
    assert_eq!(
        filter_measurements("Read 4 bytes in 0.6 seconds (3738.0 kbit/s) from 0x00007000."),
        "Read 4 bytes in {n} seconds ({n} kbit/s) from 0x00007000."
    );
    assert_eq!(
        filter_measurements("esptool v5.6.0 at 74880."),
        "esptool v5.6.0 at 74880."
    );
    assert_eq!(
        filter_measurements("took 12.5 s, 7 attempts."),
        "took {n} s, 7 attempts."
    );
    assert_eq!(
        filter_measurements("Connecting.......\nWaiting..\nDone."),
        "Connecting...\nWaiting...\nDone."
    );
    assert_eq!(
        as_shown(
            "a\nWriting 10%\rWrote 100 bytes. \nWriting at 0x0 ━╸ 1.6% 4.00kB/256.00kB [0s]\n\n"
        ),
        ["a", "Wrote 100 bytes."]
    );
}

/// Runs `command` with stdout and stderr into `log`; returns the exit code and the text.
fn run_to_end(mut command: Command, log: &Path) -> (i32, String) {
    let output = File::create(log).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let status = wait_with_limit(&mut child, RUN_TIME_LIMIT);
    let text = String::from_utf8_lossy(&fs::read(log).unwrap()).into_owned();
    let status =
        status.unwrap_or_else(|| panic!("{command:?} ran longer than {RUN_TIME_LIMIT:?}:\n{text}"));
    (
        status
            .code()
            .expect("the tool exited, not killed by a signal"),
        text,
    )
}

/// True when `line` is `pattern`, where each `{*}` in the pattern stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("{*}");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn key_line_patterns_match_whole_lines() {
    assert!(line_matches(
        "Read 4 bytes in {*} seconds.",
        "Read 4 bytes in 0.1 seconds."
    ));
    assert!(line_matches("a{*}b{*}c", "a 1 b 2 c"));
    assert!(line_matches("exact", "exact"));
    assert!(!line_matches("exact", "exact and more"));
    assert!(!line_matches("Read {*} seconds.", "Read 4 bytes"));
}
