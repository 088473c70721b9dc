//! The port list of a many-board run: `--port all` expanded, each port checked, none twice.
//! All of it happens before any board is opened, so bad input starts nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use esp_emulator::faults::FaultPlan;

use crate::cli::{PortArg, ALL_PORTS};
use crate::cmd::CmdError;

/// What the checks need to know about the machine: which serial ports exist.
pub struct PortsFound {
    /// The USB serial adapters found (what `--port all` means), known ESP adapters first.
    pub adapters: Vec<String>,
    /// The same, as the usage errors list them ("/dev/ttyUSB0 (CP210x)", or "none").
    pub listed: String,
}

/// The boards' ports in `--port` order, `all` replaced by every adapter found. A port given
/// twice, one that does not exist, or an `emu:` spec that does not parse is a usage error;
/// `all` finding no adapter is a failure (no board is there), as with a single board.
pub fn board_ports(
    given: &[String],
    found: &PortsFound,
    exists: impl Fn(&str) -> bool,
) -> Result<Vec<String>, CmdError> {
    let mut ports = Vec::new();
    for port in given {
        if port == ALL_PORTS {
            if found.adapters.is_empty() {
                return Err(CmdError::failed(
                    "--port all: no USB serial adapter found",
                    "Connect the boards' USB serial adapters, or name each port with --port \
                     (e.g. /dev/ttyUSB0, COM3, or emu:1MB for a virtual board).",
                ));
            }
            ports.extend(found.adapters.iter().cloned());
        } else {
            ports.push(port.clone());
        }
    }
    // The same device or virtual chip under two names counts as given twice.
    let mut seen: HashMap<PathBuf, &str> = HashMap::new();
    let mut flash_files: HashMap<PathBuf, &str> = HashMap::new();
    for port in &ports {
        let key = match PortArg::parse(Some(port)).map_err(CmdError::Usage)? {
            PortArg::Serial(name) => {
                super::super::session::check_serial_name(&name)?;
                if !exists(&name) {
                    return Err(CmdError::Usage(format!(
                        "--port {name} does not exist (serial ports found: {}): give the ports \
                         of connected boards, all, or emu:SIZE",
                        found.listed
                    )));
                }
                std::fs::canonicalize(&name).unwrap_or_else(|_| PathBuf::from(&name))
            }
            PortArg::Emulator(spec) => {
                FaultPlan::parse(&spec.faults)
                    .map_err(|error| CmdError::Usage(format!("--port {port}: {error}")))?;
                if let Some(file) = &spec.file {
                    let key = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
                    if let Some(first) = flash_files.insert(key, port) {
                        return Err(CmdError::Usage(format!(
                            "--port {first} and --port {port} share the flash file {}: give each \
                             virtual board its own file=",
                            file.display()
                        )));
                    }
                }
                PathBuf::from(port)
            }
            PortArg::Scan => unreachable!("a given port is never a search"),
        };
        if let Some(first) = seen.insert(key, port) {
            let same = match first == port {
                true => format!("--port {port} is given twice"),
                false => format!("--port {first} and --port {port} are the same port"),
            };
            return Err(CmdError::Usage(format!(
                "{same}: give each board once (add seed=N or mac=MAC to tell virtual boards apart)"
            )));
        }
    }
    Ok(ports)
}

/// Whether a serial port of this name is there: its device file on Unix, else among every
/// port the system lists (Windows' COM ports have no file; `\\.\COM10` is `COM10`).
pub fn serial_port_exists(name: &str) -> bool {
    if cfg!(unix) {
        return Path::new(name).exists();
    }
    let name = name.strip_prefix(r"\\.\").unwrap_or(name);
    serialport::available_ports()
        .unwrap_or_default()
        .iter()
        .any(|port| port.port_name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(adapters: &[&str]) -> PortsFound {
        PortsFound {
            adapters: adapters.iter().map(|name| name.to_string()).collect(),
            listed: match adapters.is_empty() {
                true => "none".into(),
                false => adapters.join(", "),
            },
        }
    }

    fn given(ports: &[&str]) -> Vec<String> {
        ports.iter().map(|port| port.to_string()).collect()
    }

    /// Ports "exist" when they start with /dev/ttyUSB (no device file is needed).
    fn usb_exists(name: &str) -> bool {
        name.starts_with("/dev/ttyUSB")
    }

    fn usage(result: Result<Vec<String>, CmdError>) -> String {
        match result {
            Err(CmdError::Usage(message)) => message,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn all_means_every_adapter_in_order_with_the_other_ports() {
        let adapters = found(&["/dev/ttyUSB0", "/dev/ttyUSB1"]);
        let ports = board_ports(&given(&["emu:1MB", "all"]), &adapters, usb_exists).unwrap();
        assert_eq!(ports, ["emu:1MB", "/dev/ttyUSB0", "/dev/ttyUSB1"]);
    }

    #[test]
    fn all_with_no_adapter_is_a_failure_not_a_usage_error() {
        let result = board_ports(&given(&["all"]), &found(&[]), usb_exists);
        let Err(CmdError::Failed { message, .. }) = result else {
            panic!("not a failure: {result:?}")
        };
        assert!(message.contains("no USB serial adapter found"));
    }

    #[test]
    fn a_port_given_twice_is_a_usage_error() {
        let none = found(&[]);
        let twice = usage(board_ports(
            &given(&["/dev/ttyUSB0", "/dev/ttyUSB0"]),
            &none,
            usb_exists,
        ));
        assert!(
            twice.contains("--port /dev/ttyUSB0 is given twice"),
            "{twice}"
        );
        let emu = usage(board_ports(
            &given(&["emu:1MB", "emu:1MB"]),
            &none,
            usb_exists,
        ));
        assert!(
            emu.contains("emu:1MB is given twice") && emu.contains("seed=N"),
            "{emu}"
        );
        // `all` and a port it contains.
        let adapters = found(&["/dev/ttyUSB0"]);
        let overlap = usage(board_ports(
            &given(&["all", "/dev/ttyUSB0"]),
            &adapters,
            usb_exists,
        ));
        assert!(overlap.contains("given twice"), "{overlap}");
        assert!(board_ports(
            &given(&["emu:1MB,seed=1", "emu:1MB,seed=2"]),
            &none,
            usb_exists
        )
        .is_ok());
    }

    #[test]
    fn a_port_that_does_not_exist_is_a_usage_error_listing_the_found_ones() {
        let adapters = found(&["/dev/ttyUSB0"]);
        let missing = usage(board_ports(
            &given(&["/dev/ttyUSB0", "/dev/ttyXYZ9"]),
            &adapters,
            usb_exists,
        ));
        assert!(
            missing.contains("--port /dev/ttyXYZ9 does not exist"),
            "{missing}"
        );
        assert!(
            missing.contains("serial ports found: /dev/ttyUSB0"),
            "{missing}"
        );
    }

    #[test]
    fn bad_emulator_specs_are_usage_errors() {
        let none = found(&[]);
        let fault = usage(board_ports(
            &given(&["emu:1MB", "emu:1MB,fault=melt"]),
            &none,
            usb_exists,
        ));
        assert!(
            fault.contains("--port emu:1MB,fault=melt") && fault.contains("melt"),
            "{fault}"
        );
        let spec = usage(board_ports(
            &given(&["emu:1MB", "emu:3 MB"]),
            &none,
            usb_exists,
        ));
        assert!(spec.contains("emu:3 MB"), "{spec}");
        let shared = usage(board_ports(
            &given(&["emu:1MB,file=f.bin", "emu:1MB,seed=2,file=f.bin"]),
            &none,
            usb_exists,
        ));
        assert!(shared.contains("share the flash file f.bin"), "{shared}");
        let empty = usage(board_ports(&given(&["emu:1MB", ""]), &none, usb_exists));
        assert!(empty.contains("--port is empty"), "{empty}");
    }

    #[test]
    fn a_regular_file_is_not_a_port() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        let name = file.to_str().unwrap();
        let error = usage(board_ports(&given(&["emu:1MB", name]), &found(&[]), |_| {
            true
        }));
        assert!(error.contains("is a regular file"), "{error}");
    }
}
