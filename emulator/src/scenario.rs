//! Failure scenarios: one TOML file per reported failure in `emulator/scenarios/`, loaded
//! by `esp-emulator --scenario NAME|PATH`.
//!
//! A scenario sets up the virtual board a user had — chip, flash size and contents, boot
//! strapping, flash wiring, faults and their seed — and records what happened: the report
//! it reproduces, the command the user ran with esptool and with esp-flasher, each tool's
//! exit code, its key output line and its whole output as it was printed. The catalogue is
//! compiled into the binary, so a NAME works from any directory.
//!
//! ```toml
//! summary = "Dropped bytes during a backup"
//! report = "what the user saw, and where (a seed file)"
//!
//! [device]
//! chip = "esp8266"               # or esp8285
//! flash_size = "256KB"
//! contents = "sample-firmware"   # erased | sample-firmware | layout ([[device.layout]])
//! boot = "download"              # or flash: GPIO0 not held, the ROM boots the firmware
//! reset_wiring = "none"          # nodemcu | direct | none: the board has DTR/RTS wiring
//!                                # (served over RFC 2217, as a pty has no modem lines)
//! flash_wiring = "dout"          # qio | dio | dout (default: qio, dout on an ESP8285)
//! faults = ["short-read:frame=20,drop=3"]
//! seed = 0
//!
//! [[inputs]]                     # files the commands use, written beside them
//! name = "sonoff.bin"
//! image = "sample-firmware"      # sample-firmware | firmware | erased
//! size = "1MB"
//!
//! [esptool]                      # and [esp_flasher]
//! args = ["read-flash", "0", "ALL", "backup.bin"]
//! exit = 2
//! line = "ERROR: A fatal error occurred: Corrupt data, ..."
//! output = """..."""
//! ```
//!
//! In `line` and `output`, `{port}` stands for the serial port and `{dir}` for the directory
//! the command ran in; `{*}` in `line` matches any text (timings). A tool's `port` is
//! `{port}` unless the scenario is about a port that does not exist (`{missing}`).
//! `boot` names a line the ROM's boot log or verdict holds when the board boots from its
//! flash after the command; `backup_equals_flash` names a file that must hold exactly the
//! board's flash.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;

use crate::boot::FlashWiring;
use crate::device::{BootMode, Chip, DeviceConfig, ResetWiring};
use crate::faults::FaultPlan;
use crate::flash::{FlashOptions, SpiFlash};
use crate::sample_firmware::{firmware_image, sonoff_like_flash};
use esp_protocol::flash_params::{FlashMode, FlashSize};
use esp_protocol::numbers::parse_size;

/// The scenario files compiled into the binary, by name.
pub const CATALOGUE: &[(&str, &str)] = &[
    ("wrong-port", include_str!("../scenarios/wrong-port.toml")),
    (
        "not-in-download-mode",
        include_str!("../scenarios/not-in-download-mode.toml"),
    ),
    (
        "boot-log-every-attempt",
        include_str!("../scenarios/boot-log-every-attempt.toml"),
    ),
    ("short-read", include_str!("../scenarios/short-read.toml")),
    (
        "weak-power-bit-errors",
        include_str!("../scenarios/weak-power-bit-errors.toml"),
    ),
    (
        "write-protected",
        include_str!("../scenarios/write-protected.toml"),
    ),
    (
        "stuck-sector",
        include_str!("../scenarios/stuck-sector.toml"),
    ),
    (
        "fake-flash-size",
        include_str!("../scenarios/fake-flash-size.toml"),
    ),
    (
        "1mb-backup-on-4mb-chip",
        include_str!("../scenarios/1mb-backup-on-4mb-chip.toml"),
    ),
    (
        "qio-image-on-dout-module",
        include_str!("../scenarios/qio-image-on-dout-module.toml"),
    ),
    (
        "cable-pulled-during-write",
        include_str!("../scenarios/cable-pulled-during-write.toml"),
    ),
    (
        "adapter-too-slow",
        include_str!("../scenarios/adapter-too-slow.toml"),
    ),
    (
        "no-auto-reset",
        include_str!("../scenarios/no-auto-reset.toml"),
    ),
    (
        "ch340-driver-drops-rts",
        include_str!("../scenarios/ch340-driver-drops-rts.toml"),
    ),
];

/// The MAC of a scenario's board, as `esp-emulator` uses by default.
pub const SCENARIO_MAC: [u8; 6] = [0x18, 0xFE, 0x34, 0xA1, 0xB2, 0xC3];

/// One reported failure, reproducible on the virtual board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The catalogue name, or the file's stem.
    #[serde(skip)]
    pub name: String,
    /// One line: the failure.
    pub summary: String,
    /// Which user report it reproduces and what the user saw.
    pub report: String,
    /// The board.
    pub device: DeviceSpec,
    /// Files the commands read.
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// What esptool 5.6.0 does.
    pub esptool: ToolRun,
    /// What esp-flasher does.
    pub esp_flasher: ToolRun,
}

/// The virtual board of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// `esp8266` or `esp8285`.
    #[serde(default = "default_chip")]
    pub chip: String,
    /// The size the flash ID claims, e.g. `1MB`.
    pub flash_size: String,
    /// What the flash holds.
    pub contents: Contents,
    /// Pieces placed on erased flash when `contents = "layout"`.
    #[serde(default)]
    pub layout: Vec<Placement>,
    /// `download` (GPIO0 held low) or `flash`.
    #[serde(default = "default_boot")]
    pub boot: String,
    /// `qio`, `dio` or `dout`; the chip's usual wiring when left out.
    pub flash_wiring: Option<String>,
    /// How DTR and RTS reach EN and GPIO0: `nodemcu`, `direct` or `none`. Given, the board is
    /// about its modem lines and is served over RFC 2217 (a pty has none); left out, no
    /// wiring, on a pty.
    pub reset_wiring: Option<String>,
    /// `--fault` specs.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Seed of the random faults.
    #[serde(default)]
    pub seed: u64,
}

/// A scenario flash's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contents {
    /// All 0xFF.
    Erased,
    /// [`sonoff_like_flash`] of the whole flash.
    SampleFirmware,
    /// The `[[device.layout]]` pieces on erased flash.
    Layout,
}

/// Bytes of a layout piece or an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// A whole Sonoff-like flash of this size ([`sonoff_like_flash`]).
    SampleFirmware,
    /// A bare firmware image of this length ([`firmware_image`]).
    Firmware,
    /// 0xFF bytes.
    Erased,
}

/// A piece of a layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Flash offset.
    pub address: u32,
    /// What to put there.
    pub image: ImageKind,
    /// Its length, e.g. `1MB`.
    pub size: String,
    /// Seed of the generated bytes.
    #[serde(default)]
    pub seed: u64,
}

/// A file a command reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// File name, relative to the directory the commands run in.
    pub name: String,
    /// What it holds.
    pub image: ImageKind,
    /// Its length, e.g. `1MB`.
    pub size: String,
    /// Seed of the generated bytes.
    #[serde(default)]
    pub seed: u64,
    /// Flash mode to put in the image header (`qio`, `dio`, `dout`).
    pub flash_mode: Option<String>,
    /// Also write `NAME.json`, the record esp-flasher's `backup` writes, for the scenario's board.
    #[serde(default)]
    pub backup_record: bool,
}

/// One tool's run: the command and what it printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRun {
    /// `{port}`, or `{missing}` for a port that does not exist. In a scenario about the
    /// board's DTR/RTS wiring, esp-flasher (which does not speak RFC 2217) runs on its built-in
    /// virtual chip instead, given as the same board: `emu:SIZE,wiring=...,gpio0=...`.
    #[serde(default = "default_port")]
    pub port: String,
    /// The arguments after `--port PORT`.
    pub args: Vec<String>,
    /// The exit code.
    pub exit: i32,
    /// The key output line.
    pub line: String,
    /// The whole output (stdout then stderr), as recorded.
    pub output: String,
    /// The output is compared through the first line equal to this one: what follows
    /// depends on timing (a client's reconnect loop racing the replugged port).
    pub compared_through: Option<String>,
    /// A line the boot log or verdict holds when the board boots from flash afterwards.
    pub boot: Option<String>,
    /// A file the command writes that must equal the board's flash.
    pub backup_equals_flash: Option<String>,
}

fn default_chip() -> String {
    "esp8266".into()
}

fn default_boot() -> String {
    "download".into()
}

fn default_port() -> String {
    "{port}".into()
}

/// The names in the catalogue.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|(name, _)| *name)
}

/// Loads a catalogue scenario by NAME, else the scenario file at PATH.
pub fn load(name_or_path: &str) -> Result<Scenario, String> {
    if let Some((name, text)) = CATALOGUE.iter().find(|(name, _)| *name == name_or_path) {
        return parse(name, text);
    }
    let path = Path::new(name_or_path);
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "no scenario named '{name_or_path}' and no such file ({error}); the catalogue has: {}",
            names().collect::<Vec<_>>().join(", ")
        )
    })?;
    let name = path.file_stem().map_or_else(
        || name_or_path.to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    parse(&name, &text)
}

/// Parses and checks a scenario file's text.
pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
    let mut scenario: Scenario = toml::from_str(text)
        .map_err(|error| format!("scenario {name}: {}", error.to_string().trim_end()))?;
    scenario.name = name.to_owned();
    scenario
        .check()
        .map_err(|problem| format!("scenario {name}: {problem}"))?;
    Ok(scenario)
}

impl Scenario {
    /// Finds every bad value now, so a scenario that loads also starts.
    fn check(&self) -> Result<(), String> {
        self.chip()?;
        self.boot_mode()?;
        self.wiring()?;
        self.reset_wiring()?;
        self.fault_plan()?;
        self.flash()?;
        for input in &self.inputs {
            input.bytes()?;
        }
        Ok(())
    }

    /// The chip the eFuses describe.
    pub fn chip(&self) -> Result<Chip, String> {
        match self.device.chip.as_str() {
            "esp8266" => Ok(Chip::Esp8266Ex),
            "esp8285" => Ok(Chip::Esp8285),
            other => Err(format!("chip '{other}' must be esp8266 or esp8285")),
        }
    }

    /// The boot strapping.
    pub fn boot_mode(&self) -> Result<BootMode, String> {
        match self.device.boot.as_str() {
            "download" => Ok(BootMode::Download),
            "flash" => Ok(BootMode::Flash),
            other => Err(format!("boot '{other}' must be download or flash")),
        }
    }

    /// The flash wiring, if the scenario sets one.
    pub fn wiring(&self) -> Result<Option<FlashWiring>, String> {
        self.device
            .flash_wiring
            .as_deref()
            .map(str::parse)
            .transpose()
    }

    /// The board's reset wiring (none unless the scenario names one).
    pub fn reset_wiring(&self) -> Result<ResetWiring, String> {
        match self.device.reset_wiring.as_deref() {
            None | Some("none") => Ok(ResetWiring::None),
            Some("nodemcu") => Ok(ResetWiring::NodeMcu),
            Some("direct") => Ok(ResetWiring::Direct),
            Some(other) => Err(format!(
                "reset_wiring '{other}' must be nodemcu, direct or none"
            )),
        }
    }

    /// True when the scenario is about the board's DTR/RTS wiring, which only an RFC 2217
    /// endpoint carries.
    pub fn needs_modem_lines(&self) -> bool {
        self.device.reset_wiring.is_some()
    }

    /// The faults.
    pub fn fault_plan(&self) -> Result<FaultPlan, String> {
        FaultPlan::parse(&self.device.faults).map_err(|error| error.to_string())
    }

    /// The device configuration, faults included.
    pub fn device_config(&self) -> Result<DeviceConfig, String> {
        Ok(DeviceConfig {
            chip: self.chip()?,
            mac: SCENARIO_MAC,
            boot: self.boot_mode()?,
            faults: self.fault_plan()?.device,
            realtime: false,
            wiring: self.wiring()?,
            reset_wiring: self.reset_wiring()?,
            execution: crate::device::CodeExecution::default(),
        })
    }

    /// The flash contents at the claimed size.
    pub fn flash_contents(&self) -> Result<Vec<u8>, String> {
        let size: usize = parse_size(&self.device.flash_size).map_err(|error| error.to_string())?;
        match self.device.contents {
            Contents::Erased => Ok(vec![0xFF; size]),
            Contents::SampleFirmware => Ok(sonoff_like_flash(size, 0)),
            Contents::Layout => {
                let mut flash = vec![0xFF; size];
                for piece in &self.device.layout {
                    let bytes = generate(piece.image, &piece.size, piece.seed)?;
                    let start = piece.address as usize;
                    let end = start + bytes.len();
                    if end > size {
                        return Err(format!(
                            "layout piece at {start:#x} ends past the {size}-byte flash"
                        ));
                    }
                    flash[start..end].copy_from_slice(&bytes);
                }
                Ok(flash)
            }
        }
    }

    /// The flash chip, with the flash faults applied.
    pub fn flash(&self) -> Result<SpiFlash, String> {
        let mut options = FlashOptions::default();
        self.fault_plan()?.flash.apply_to(&mut options);
        SpiFlash::new(self.flash_contents()?, options).map_err(|error| error.to_string())
    }

    /// Writes the input files into `dir`; returns their paths.
    pub fn write_inputs(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        let mut written = Vec::new();
        for input in &self.inputs {
            let bytes = input.bytes()?;
            let path = dir.join(&input.name);
            std::fs::write(&path, &bytes)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            written.push(path.clone());
            if input.backup_record {
                let record_path = dir.join(format!("{}.json", input.name));
                std::fs::write(&record_path, self.backup_record(&bytes))
                    .map_err(|error| format!("cannot write {}: {error}", record_path.display()))?;
                written.push(record_path);
            }
        }
        Ok(written)
    }

    /// The record esp-flasher's `backup` writes beside an image taken from this board.
    fn backup_record(&self, image: &[u8]) -> String {
        // By hand: the hex crate has no separator.
        let mac = SCENARIO_MAC.map(|octet| format!("{octet:02x}")).join(":");
        let md5 = hex::encode(Md5::digest(image));
        let jedec_id = 0xEF4000 | image.len().trailing_zeros();
        let chip = match self.chip() {
            Ok(Chip::Esp8266Ex) => "ESP8266EX",
            _ => "ESP8285N08",
        };
        format!(
            "{{\n  \"chip\": \"{chip}\",\n  \"mac\": \"{mac}\",\n  \"flash_jedec_id\": \"{jedec_id:06x}\",\n  \
             \"flash_size\": {},\n  \"md5\": \"{md5}\",\n  \"date\": \"2026-01-01T00:00:00Z\",\n  \
             \"tool\": \"esp-flasher 0.1.0\"\n}}\n",
            image.len()
        )
    }

    /// The esptool command line a user runs, with `port`.
    pub fn esptool_command(&self, port: &str) -> String {
        command_line("esptool", &self.esptool, port)
    }

    /// The esp-flasher command line a user runs, with `port`.
    pub fn esp_flasher_command(&self, port: &str) -> String {
        command_line("esp-flasher", &self.esp_flasher, port)
    }
}

/// The port a user names in a scenario about a port that does not exist.
pub const MISSING_PORT: &str = "/dev/ttyUSB5";

fn command_line(program: &str, run: &ToolRun, port: &str) -> String {
    let port = run
        .port
        .replace("{port}", port)
        .replace("{missing}", MISSING_PORT);
    format!("{program} --port {port} {}", run.args.join(" "))
}

impl InputFile {
    /// The file's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        let mut bytes = generate(self.image, &self.size, self.seed)?;
        if let Some(mode) = &self.flash_mode {
            let mode = FlashMode::ALL
                .into_iter()
                .find(|candidate| candidate.name() == mode)
                .ok_or_else(|| {
                    format!(
                        "input {}: flash_mode '{mode}' must be qio, qout, dio or dout",
                        self.name
                    )
                })?;
            bytes[2] = mode.header_byte();
        }
        Ok(bytes)
    }
}

/// The bytes of `kind` at `size`.
fn generate(kind: ImageKind, size: &str, seed: u64) -> Result<Vec<u8>, String> {
    let size: usize = parse_size(size).map_err(|error| error.to_string())?;
    Ok(match kind {
        ImageKind::SampleFirmware => {
            if FlashSize::from_bytes(size as u32).is_none() {
                return Err(format!(
                    "a sample-firmware flash must have a flash size, not {size} bytes"
                ));
            }
            sonoff_like_flash(size, seed)
        }
        ImageKind::Firmware => firmware_image(size, seed),
        ImageKind::Erased => vec![0xFF; size],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_scenario_loads_and_builds_its_board() {
        for name in names() {
            let scenario = load(name).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(scenario.name, name);
            scenario.flash().unwrap();
            scenario.device_config().unwrap();
        }
    }

    #[test]
    fn an_unknown_name_lists_the_catalogue() {
        let error = load("no-such-scenario").unwrap_err();
        assert!(error.contains("short-read"), "{error}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = CATALOGUE[0]
            .1
            .replace("chip = \"esp8266\"", "chip = \"esp32\"");
        let error = parse("x", &text).unwrap_err();
        assert!(error.contains("chip 'esp32'"), "{error}");
    }
}
