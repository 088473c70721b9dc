//! Output file names with placeholders, so that one command can name each board's file:
//! `{mac}` (the board's MAC as 12 hex digits), `{port}` (its port, made fit for a file name)
//! and `{n}` (its place in the `--port` order, from 1).
//!
//! `{port}` and `{n}` are known before anything starts and are expanded then, so that two
//! boards that would write the same file are a usage error. `{mac}` is known once a board has
//! answered: the command expands it after connecting and [`claim`]s the name, so that a
//! second board reporting the same MAC fails before it writes anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::cli::Command;
use crate::cmd::CmdError;

/// The board's MAC, as 12 lower-case hex digits (no `:`, which Windows refuses in names).
pub const MAC: &str = "{mac}";
/// The board's port, made fit for a file name.
pub const PORT: &str = "{port}";
/// The board's place in the `--port` order, from 1.
pub const INDEX: &str = "{n}";

/// Whether `path` names its file by the board's MAC.
pub fn needs_mac(path: &Path) -> bool {
    path.to_str().is_some_and(|text| text.contains(MAC))
}

/// `path` with `{mac}` replaced by `mac`.
pub fn with_mac(path: &Path, mac: &[u8; 6]) -> PathBuf {
    replace(path, MAC, &hex::encode(mac))
}

/// `path` with `{port}` and `{n}` replaced for the board on `port`, the `n`th.
pub fn for_board(path: &Path, port: &str, n: usize) -> PathBuf {
    let path = replace(path, PORT, &port_for_file_name(port));
    replace(&path, INDEX, &n.to_string())
}

/// `path` with every `placeholder` replaced (a name that is not UTF-8 has none).
fn replace(path: &Path, placeholder: &str, value: &str) -> PathBuf {
    match path.to_str() {
        Some(text) if text.contains(placeholder) => PathBuf::from(text.replace(placeholder, value)),
        _ => path.to_path_buf(),
    }
}

/// A port as part of a file name: without the `/dev/` or `\\.\` in front, and every
/// character other than a letter, a digit, `.`, `-` and `_` made `_`
/// (`/dev/ttyUSB0` → `ttyUSB0`, `emu:1MB,seed=2` → `emu_1MB_seed_2`).
pub fn port_for_file_name(port: &str) -> String {
    let short = port
        .strip_prefix("/dev/")
        .or_else(|| port.strip_prefix(r"\\.\"))
        .unwrap_or(port);
    short
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

/// The file a command writes for each board (`None` for a command that writes none).
pub fn output_file(command: &Command) -> Option<&Path> {
    match command {
        Command::Backup(args) => Some(&args.file),
        Command::ReadFlash(args) => Some(&args.file),
        Command::DumpMem(args) => Some(&args.file),
        _ => None,
    }
}

/// The command with its file names' `{port}` and `{n}` expanded for the board on `port`:
/// the output file, and `restore`'s input (each board may restore its own backup).
pub fn expand_command(command: &Command, port: &str, n: usize) -> Command {
    let mut command = command.clone();
    let file = match &mut command {
        Command::Backup(args) => &mut args.file,
        Command::ReadFlash(args) => &mut args.file,
        Command::DumpMem(args) => &mut args.file,
        Command::Restore(args) => &mut args.file,
        _ => return command,
    };
    *file = for_board(file, port, n);
    command
}

/// Checks that no two boards would write the same file: the output file of each board
/// (`ports` in `--port` order) after `{port}` and `{n}`. A name that still has `{mac}` is
/// told apart by the MACs, checked as the boards answer ([`claim`]).
pub fn check_distinct_outputs(template: &Path, ports: &[String]) -> Result<(), String> {
    let mut seen: HashMap<PathBuf, &str> = HashMap::new();
    for (index, port) in ports.iter().enumerate() {
        let file = for_board(template, port, index + 1);
        if needs_mac(&file) {
            continue;
        }
        if let Some(first) = seen.insert(file.clone(), port) {
            return Err(format!(
                "'{}' would be written by the board on {first} and the one on {port}: put {MAC}, \
                 {PORT} or {INDEX} in the file name (e.g. 'backup-{MAC}.bin') so that each board \
                 has its own",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Output files taken in this process, with the port of the board that took each.
fn claimed() -> &'static Mutex<HashMap<PathBuf, String>> {
    static CLAIMED: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    CLAIMED.get_or_init(Default::default)
}

/// Takes `file` (a `{mac}` name, expanded) for the board on `port` for the rest of the run,
/// or fails when another board took it: two boards reporting the same MAC. The first keeps
/// the name; the second writes nothing.
pub fn claim(file: &Path, port: &str, mac: &[u8; 6]) -> Result<(), CmdError> {
    let mut claimed = claimed()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match claimed.get(file) {
        Some(owner) if owner != port => Err(CmdError::failed(
            format!(
                "'{}' is the file of the board on {owner}, which reports the same MAC {}: \
                 nothing was written for this board",
                file.display(),
                esp_flasher::chip::format_mac(mac)
            ),
            format!(
                "Put {INDEX} or {PORT} in the file name too (e.g. 'backup-{MAC}-{INDEX}.bin'), \
                 or check the boards' MACs with read_mac."
            ),
        )),
        _ => {
            claimed.insert(file.to_path_buf(), port.to_string());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn placeholders_expand_per_board() {
        let template = Path::new("out/sonoff-{port}-{n}-{mac}.bin");
        let board = for_board(template, "/dev/ttyUSB1", 2);
        assert_eq!(board, Path::new("out/sonoff-ttyUSB1-2-{mac}.bin"));
        assert!(needs_mac(&board));
        let mac = [0x5c, 0xcf, 0x7f, 0x0a, 0xbc, 0xde];
        assert_eq!(
            with_mac(&board, &mac),
            Path::new("out/sonoff-ttyUSB1-2-5ccf7f0abcde.bin")
        );
        assert_eq!(
            for_board(Path::new("plain.bin"), "COM5", 1),
            Path::new("plain.bin")
        );
        assert!(!needs_mac(Path::new("plain.bin")));
    }

    #[test]
    fn ports_become_file_name_parts() {
        assert_eq!(port_for_file_name("/dev/ttyUSB0"), "ttyUSB0");
        assert_eq!(port_for_file_name("/dev/pts/7"), "pts_7");
        assert_eq!(port_for_file_name("COM12"), "COM12");
        assert_eq!(port_for_file_name(r"\\.\COM12"), "COM12");
        assert_eq!(
            port_for_file_name("emu:1MB,fault=timeout:op=READ_FLASH"),
            "emu_1MB_fault_timeout_op_READ_FLASH"
        );
        assert_eq!(
            port_for_file_name("/dev/cu.usbserial-110"),
            "cu.usbserial-110"
        );
    }

    #[test]
    fn a_name_without_placeholders_collides_on_two_boards() {
        let two = ports(&["/dev/ttyUSB0", "/dev/ttyUSB1"]);
        let error = check_distinct_outputs(Path::new("backup.bin"), &two).unwrap_err();
        assert!(error.contains("'backup.bin' would be written by the board on /dev/ttyUSB0"));
        assert!(error.contains("{mac}, {port} or {n}"));
        assert!(check_distinct_outputs(Path::new("backup.bin"), &two[..1]).is_ok());
        for distinct in ["b-{n}.bin", "b-{port}.bin", "b-{mac}.bin", "{mac}/{n}.bin"] {
            assert!(
                check_distinct_outputs(Path::new(distinct), &two).is_ok(),
                "{distinct}"
            );
        }
    }

    #[test]
    fn ports_that_look_alike_in_a_file_name_collide() {
        // Both become "pts_3": {port} alone cannot tell them apart, {n} can.
        let alike = ports(&["/dev/pts/3", "/dev/pts_3"]);
        assert!(check_distinct_outputs(Path::new("b-{port}.bin"), &alike).is_err());
        assert!(check_distinct_outputs(Path::new("b-{port}-{n}.bin"), &alike).is_ok());
    }

    #[test]
    fn a_second_board_with_the_same_mac_cannot_claim_the_file() {
        let mac = [0x18, 0xfe, 0x34, 1, 2, 3];
        let file = Path::new("claim-test-18fe34010203.bin");
        claim(file, "emu:1MB,seed=1", &mac).unwrap();
        // The same board again (a retry within the run) keeps it.
        claim(file, "emu:1MB,seed=1", &mac).unwrap();
        let Err(CmdError::Failed { message, remedy }) = claim(file, "emu:1MB,seed=2", &mac) else {
            panic!("the second board claimed the same file")
        };
        assert!(message
            .contains("board on emu:1MB,seed=1, which reports the same MAC 18:fe:34:01:02:03"));
        assert!(remedy.unwrap().contains("{n}"));
    }

    #[test]
    fn commands_expand_output_and_restore_files_only() {
        use crate::cli::{normalize_args, Cli};
        use clap::Parser;
        let parse = |line: &str| {
            let argv = std::iter::once("esp-flasher")
                .chain(line.split_whitespace())
                .map(std::ffi::OsString::from);
            Cli::try_parse_from(normalize_args(argv)).unwrap().command
        };
        let Command::Backup(args) = expand_command(&parse("backup b-{n}-{port}.bin"), "COM3", 4)
        else {
            panic!("not backup")
        };
        assert_eq!(args.file, Path::new("b-4-COM3.bin"));
        let Command::Restore(args) = expand_command(&parse("restore b-{n}.bin"), "COM3", 2) else {
            panic!("not restore")
        };
        assert_eq!(args.file, Path::new("b-2.bin"));
        let write = parse("write_flash 0x0 fw-{n}.bin");
        let Command::WriteFlash(args) = expand_command(&write, "COM3", 2) else {
            panic!("not write_flash")
        };
        assert_eq!(args.addr_file, ["0x0", "fw-{n}.bin"]);
        assert_eq!(
            output_file(&parse("read_flash 0 ALL r.bin")),
            Some(Path::new("r.bin"))
        );
        assert_eq!(output_file(&write), None);
    }
}
