//! esp-flasher with flashlab's stub next to esptool 5.6.0 with its own, each stub executed by
//! its own `esp-emulator` started on the same flash contents: the same command line (esptool's
//! spelling, only the program changed) must leave the two backing files byte for byte equal,
//! and reads must give equal files. Where esp-flasher differs on purpose (it keeps the bytes
//! of a partly written sector that esptool erases), the test says so and checks both sides.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use tempfile::TempDir;

use crate::util::{binary, esptool, pseudo_random, run_output, Emulator};

const MIB: usize = 1024 * 1024;
const SECTOR: usize = 0x1000;

/// Which program drives a board.
#[derive(Clone, Copy, Debug)]
enum Tool {
    EspFlasher,
    Esptool,
}

/// One tool's emulator, its backing file and a folder for the files a command needs.
struct Side {
    tool: Tool,
    emulator: Emulator,
    dir: TempDir,
    flash: PathBuf,
}

impl Side {
    fn start(tool: Tool, contents: &[u8]) -> Side {
        let dir = tempfile::tempdir().unwrap();
        let flash = dir.path().join("flash.bin");
        fs::write(&flash, contents).unwrap();
        let emulator = Emulator::spawn(
            &["--flash", flash.to_str().unwrap()],
            &dir.path().join("emulator.log"),
        );
        Side {
            tool,
            emulator,
            dir,
            flash,
        }
    }

    /// Runs `args` (esptool's underscore spelling; `{dir}` is this side's folder).
    fn run(&self, args: &[&str]) -> (ExitStatus, String) {
        let dir = self.dir.path().to_str().unwrap();
        let mut full = vec!["--port".to_owned(), self.emulator.port().to_owned()];
        let tool = esptool("5.6.0");
        for (index, arg) in args.iter().enumerate() {
            let arg = arg.replace("{dir}", dir);
            // The command is args[0]; esptool 5 spells it with dashes.
            full.push(match self.tool {
                Tool::Esptool if index == 0 => tool.spell(&arg),
                _ => arg,
            });
        }
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let program = match self.tool {
            Tool::EspFlasher => binary("esp-flasher"),
            Tool::Esptool => tool.executable.clone(),
        };
        let log = self.dir.path().join("tool.log");
        run_output(&program, &full, &log)
    }

    /// The backing file once the emulator has saved it and stopped.
    fn finish(self) -> (Vec<u8>, TempDir) {
        let (status, stderr) = self.emulator.terminate();
        assert!(status.success(), "esp-emulator failed: {stderr}");
        (fs::read(&self.flash).unwrap(), self.dir)
    }
}

/// Runs `args` with both tools on `contents`, each after `files` are written to its folder;
/// returns both flashes and folders (esp-flasher's first).
fn both(contents: &[u8], files: &[(&str, &[u8])], args: &[&str]) -> [(Vec<u8>, TempDir); 2] {
    [Tool::EspFlasher, Tool::Esptool].map(|tool| {
        let side = Side::start(tool, contents);
        for (name, data) in files {
            fs::write(side.dir.path().join(name), data).unwrap();
        }
        let (status, output) = side.run(args);
        assert!(status.success(), "{tool:?} {args:?} failed:\n{output}");
        side.finish()
    })
}

#[track_caller]
fn assert_same_flash(ours: &[u8], theirs: &[u8], what: &str) {
    if let Some(at) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        panic!(
            "{what}: the flashes differ first at {at:#x} (esp-flasher {:#04x}, esptool {:#04x})",
            ours[at], theirs[at]
        );
    }
    assert_eq!(ours.len(), theirs.len(), "{what}: flash sizes");
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap()
}

#[test]
fn write_flash_with_header_options_leaves_the_same_flash() {
    let factory = sonoff_like_flash(MIB, 11);
    let image = firmware_image(300 * 1024, 12);
    let [(ours, _), (theirs, _)] = both(
        &factory,
        &[("image.bin", &image)],
        &[
            "write_flash",
            "-fm",
            "dout",
            "-fs",
            "1MB",
            "0x0",
            "{dir}/image.bin",
        ],
    );
    assert_same_flash(&ours, &theirs, "write_flash -fm dout -fs 1MB");
    assert_ne!(ours, factory, "the write changed the flash");
}

#[test]
fn write_flash_of_two_regions_compressed_and_not_leaves_the_same_flash() {
    let factory = pseudo_random(MIB, 21);
    let first = pseudo_random(5 * SECTOR, 22);
    let second = firmware_image(16 * SECTOR, 23);
    let files: [(&str, &[u8]); 2] = [("a.bin", &first), ("b.bin", &second)];
    for compression in ["-z", "-u"] {
        let [(ours, _), (theirs, _)] = both(
            &factory,
            &files,
            &[
                "write_flash",
                compression,
                "0x3000",
                "{dir}/a.bin",
                "0x40000",
                "{dir}/b.bin",
            ],
        );
        assert_same_flash(&ours, &theirs, compression);
        assert_eq!(ours[0x3000..0x3000 + first.len()], first[..]);
    }
}

#[test]
fn erase_region_and_erase_flash_leave_the_same_flash() {
    let factory = pseudo_random(MIB, 31);
    let [(ours, _), (theirs, _)] = both(&factory, &[], &["erase_region", "0x10000", "0x23000"]);
    assert_same_flash(&ours, &theirs, "erase_region");
    assert!(ours[0x10000..0x33000].iter().all(|&byte| byte == 0xFF));
    let [(ours, _), (theirs, _)] = both(&factory, &[], &["erase_flash"]);
    assert_same_flash(&ours, &theirs, "erase_flash");
}

#[test]
fn read_flash_gives_the_same_file() {
    let factory = sonoff_like_flash(MIB, 41);
    let [(our_flash, our_dir), (their_flash, their_dir)] = both(
        &factory,
        &[],
        &["read_flash", "0x1234", "0xF0000", "{dir}/out.bin"],
    );
    let ours = read(our_dir.path(), "out.bin");
    assert_eq!(ours, read(their_dir.path(), "out.bin"));
    assert_eq!(ours, factory[0x1234..0x1234 + 0xF0000]);
    assert_same_flash(
        &our_flash,
        &factory,
        "a read leaves esp-flasher's flash as it was",
    );
    assert_same_flash(
        &their_flash,
        &factory,
        "a read leaves esptool's flash as it was",
    );
}

/// The one difference by design: esptool erases whole sectors, so the bytes around an
/// unaligned write become 0xFF; esp-flasher reads them first and writes them back.
#[test]
fn unaligned_write_keeps_the_sector_bytes_esptool_erases() {
    let factory = pseudo_random(MIB, 51);
    let data = pseudo_random(0x1234, 52);
    let start = 0x1800;
    let end = start + data.len();
    let [(ours, _), (theirs, _)] = both(
        &factory,
        &[("c.bin", &data)],
        &["write_flash", "0x1800", "{dir}/c.bin"],
    );
    assert_eq!(ours[start..end], data[..]);
    assert_eq!(theirs[start..end], data[..]);
    let sectors = start / SECTOR * SECTOR..end.div_ceil(SECTOR) * SECTOR;
    assert_same_flash(&ours, &factory_with(&factory, start, &data), "esp-flasher");
    assert!(
        theirs[sectors.start..start]
            .iter()
            .all(|&byte| byte == 0xFF)
            && theirs[end..sectors.end].iter().all(|&byte| byte == 0xFF),
        "esptool erases the rest of the sectors it writes"
    );
    assert_same_flash(
        &theirs[..sectors.start],
        &factory[..sectors.start],
        "esptool before",
    );
    assert_same_flash(
        &theirs[sectors.end..],
        &factory[sectors.end..],
        "esptool after",
    );
}

fn factory_with(factory: &[u8], at: usize, data: &[u8]) -> Vec<u8> {
    let mut flash = factory.to_vec();
    flash[at..at + data.len()].copy_from_slice(data);
    flash
}
