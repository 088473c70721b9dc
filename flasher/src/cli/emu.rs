//! `--port`: a serial port, no port (search), or `emu:...`, the built-in virtual chip, whose
//! spec is checked here before anything is opened.

use std::path::PathBuf;

use esp_emulator::device::ResetWiring;
use esp_protocol::numbers::parse_mac;

use super::{parse_size, parse_u32};

/// `--port`: a serial port, the virtual chip, or none (scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortArg {
    /// A serial port by name.
    Serial(String),
    /// `emu:...`, the in-process virtual ESP8266.
    Emulator(EmuSpec),
    /// No `--port`: look for one.
    Scan,
}

impl PortArg {
    /// Reads `--port`; `emu:` specs are checked here, before anything is opened.
    pub fn parse(port: Option<&str>) -> Result<PortArg, String> {
        match port {
            None => Ok(PortArg::Scan),
            Some("") => Err(
                "--port is empty: give the board's serial port (e.g. /dev/ttyUSB0 or COM3), emu:SIZE, or no --port to search"
                    .into(),
            ),
            Some("emu") => Ok(PortArg::Emulator(EmuSpec::default())),
            Some(text) => match text.strip_prefix("emu:") {
                Some(spec) => EmuSpec::parse(spec).map(PortArg::Emulator),
                None => Ok(PortArg::Serial(text.to_string())),
            },
        }
    }
}

/// The virtual chip `--port emu:[SIZE][,file=PATH][,fault=SPEC...][,chip=esp8285][,seed=N][,mac=MAC][,stub=model|run][,wiring=nodemcu|direct|none][,gpio0=low|high]` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuSpec {
    /// Flash size in bytes; `None`: the file's length, else 4 MB.
    pub size: Option<u32>,
    /// Where the flash contents are loaded from and saved back to.
    pub file: Option<PathBuf>,
    /// `--fault` specs for the emulator (they may contain commas).
    pub faults: Vec<String>,
    /// An ESP8285 instead of an ESP8266EX.
    pub esp8285: bool,
    /// Seed of the random faults and of a new file's sample firmware.
    pub seed: u64,
    /// `stub=model` or `stub=run`: who answers once a stub is uploaded.
    pub stub: Option<EmuStub>,
    /// `mac=AA:BB:CC:DD:EE:FF`: the station MAC in its eFuses (else the emulator's default),
    /// so that several virtual boards can be told apart.
    pub mac: Option<[u8; 6]>,
    /// `wiring=`: how DTR and RTS reach EN and GPIO0 (default: a NodeMCU-style auto-reset).
    pub wiring: ResetWiring,
    /// `gpio0=`: where GPIO0 sits when the wiring does not pull it low. `high` (the
    /// default) is a dev board's pull-up: the chip powers up running its firmware, the
    /// auto-reset takes it to the loader and `--after hard_reset` boots the image. `low` is a
    /// jumper to ground: every reset ends in the loader, and `--before no_reset` finds it there.
    pub gpio0_high: bool,
}

impl Default for EmuSpec {
    fn default() -> Self {
        EmuSpec {
            size: None,
            file: None,
            faults: Vec::new(),
            esp8285: false,
            seed: 0,
            stub: None,
            mac: None,
            wiring: ResetWiring::NodeMcu,
            gpio0_high: true,
        }
    }
}

/// `stub=` in an `emu:` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmuStub {
    /// The behavioural model of a stub answers; nothing uploaded runs.
    Model,
    /// The virtual CPU runs the uploaded stub (from --stub-file, else an installed esptool).
    Run,
}

impl EmuSpec {
    /// Parses what follows `emu:`. A comma-separated part that is not a known
    /// `key=value` continues the fault before it (`fault=short-read:frame=3,drop=8`).
    pub fn parse(spec: &str) -> Result<EmuSpec, String> {
        let mut emu = EmuSpec::default();
        let bad = |problem: String| format!("--port emu:{spec}: {problem}");
        let mut in_fault = false;
        for (index, part) in spec.split(',').enumerate() {
            let continues_fault = in_fault;
            in_fault = false;
            match part.split_once('=') {
                Some(("file", path)) if !path.is_empty() => emu.file = Some(PathBuf::from(path)),
                Some(("fault", fault)) if !fault.is_empty() => {
                    emu.faults.push(fault.to_string());
                    in_fault = true;
                }
                Some(("seed", seed)) => {
                    emu.seed =
                        u64::from(parse_u32(seed).map_err(|error| bad(format!("seed {error}")))?)
                }
                Some(("chip", chip)) => emu.esp8285 = parse_emu_chip(chip).map_err(bad)?,
                Some(("mac", mac)) => emu.mac = Some(parse_mac(mac).map_err(bad)?),
                Some(("stub", "model")) => emu.stub = Some(EmuStub::Model),
                Some(("stub", "run")) => emu.stub = Some(EmuStub::Run),
                Some(("stub", other)) => {
                    return Err(bad(format!("stub={other}: use stub=model or stub=run")))
                }
                Some(("size", size)) => emu.size = Some(parse_size(size).map_err(bad)?),
                Some(("wiring", wiring)) => {
                    emu.wiring = match wiring {
                        "nodemcu" => ResetWiring::NodeMcu,
                        "direct" => ResetWiring::Direct,
                        "none" => ResetWiring::None,
                        other => {
                            return Err(bad(format!(
                                "wiring={other}: use wiring=nodemcu, wiring=direct or wiring=none"
                            )))
                        }
                    }
                }
                Some(("gpio0", "low")) => emu.gpio0_high = false,
                Some(("gpio0", "high")) => emu.gpio0_high = true,
                Some(("gpio0", other)) => {
                    return Err(bad(format!("gpio0={other}: use gpio0=low or gpio0=high")))
                }
                _ if index == 0 && part.is_empty() => {}
                _ if index == 0 && !part.contains('=') => {
                    emu.size = Some(parse_size(part).map_err(bad)?)
                }
                _ if continues_fault => {
                    let fault = emu.faults.last_mut().expect("a fault was pushed");
                    fault.push(',');
                    fault.push_str(part);
                    in_fault = true;
                }
                _ => {
                    return Err(bad(format!(
                        "\"{part}\" is not SIZE, file=PATH, fault=SPEC, chip=esp8285, seed=N, mac=MAC, stub=model|run, wiring=nodemcu|direct|none or gpio0=low|high"
                    )))
                }
            }
        }
        Ok(emu)
    }
}

/// Parses `chip=`: true for an ESP8285.
fn parse_emu_chip(chip: &str) -> Result<bool, String> {
    match chip.to_ascii_lowercase().as_str() {
        "esp8266" | "esp8266ex" => Ok(false),
        "esp8285" => Ok(true),
        _ => Err(format!("unknown chip \"{chip}\" (esp8266 or esp8285)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_port_specs() {
        assert_eq!(PortArg::parse(None), Ok(PortArg::Scan));
        assert!(PortArg::parse(Some(""))
            .unwrap_err()
            .contains("--port is empty"));
        assert_eq!(
            PortArg::parse(Some("COM5")),
            Ok(PortArg::Serial("COM5".into()))
        );
        assert_eq!(
            PortArg::parse(Some("emu")),
            Ok(PortArg::Emulator(EmuSpec::default()))
        );
        assert_eq!(
            PortArg::parse(Some("emu:")),
            Ok(PortArg::Emulator(EmuSpec::default()))
        );
        let PortArg::Emulator(emu) = PortArg::parse(Some(
            "emu:1MB,file=demo-flash.bin,fault=short-read:frame=3,drop=8,fault=bad-md5,chip=esp8285,seed=7,mac=5c:cf:7f:00:00:01",
        ))
        .unwrap() else {
            panic!("not an emulator")
        };
        assert_eq!(emu.size, Some(0x10_0000));
        assert_eq!(emu.file, Some(PathBuf::from("demo-flash.bin")));
        assert_eq!(emu.faults, ["short-read:frame=3,drop=8", "bad-md5"]);
        assert!(emu.esp8285);
        assert_eq!(emu.seed, 7);
        assert_eq!(emu.mac, Some([0x5c, 0xcf, 0x7f, 0, 0, 1]));
        assert!(EmuSpec::parse("mac=5c:cf:7f")
            .unwrap_err()
            .contains("not a MAC address"));
        assert!(EmuSpec::parse("1MB,frobnicate")
            .unwrap_err()
            .contains("\"frobnicate\""));
        assert!(EmuSpec::parse("3 MB").is_err());
        assert!(EmuSpec::parse("chip=esp32").is_err());
        assert!(EmuSpec::parse("file=a.bin,drop=8").is_err());
        let wired = EmuSpec::parse("256KB,wiring=none,gpio0=low").unwrap();
        assert_eq!((wired.wiring, wired.gpio0_high), (ResetWiring::None, false));
        let board = EmuSpec::default();
        assert_eq!(
            (board.wiring, board.gpio0_high),
            (ResetWiring::NodeMcu, true)
        );
        assert!(EmuSpec::parse("wiring=ch340")
            .unwrap_err()
            .contains("wiring=nodemcu"));
        assert!(EmuSpec::parse("gpio0=floating").is_err());
    }
}
