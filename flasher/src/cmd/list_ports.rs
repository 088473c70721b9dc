//! `list-ports`: the USB serial ports esp-flasher finds, in the order it tries them without
//! `--port`, with their USB IDs, names and serial numbers; the adapters ESP8266 boards carry
//! (the search's own list) are marked.
//!
//! The facts come from serialport: on Linux without libudev it reads them from sysfs
//! (`/sys/class/tty/*/device/..`: idVendor, idProduct, manufacturer, product, serial), on
//! Windows and macOS from the system's device registry.

use serde::Serialize;
use serialport::{SerialPortInfo, SerialPortType};

use super::session::{available_ports, known_adapter};
use super::CmdError;
use crate::output::Output;

/// `list-ports`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ListPortsResult {
    /// The ports in the order esp-flasher tries them without `--port`; empty when none.
    pub ports: Vec<PortEntry>,
}

/// One port.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PortEntry {
    /// The name to give `--port`.
    pub port: String,
    /// USB vendor and product IDs as lsusb prints them ("10c4:ea60"); null when the system
    /// did not say.
    pub vid_pid: Option<String>,
    /// The adapter's manufacturer, as it reports itself.
    pub manufacturer: Option<String>,
    /// The adapter's product name, as it reports itself.
    pub product: Option<String>,
    /// The adapter's serial number, if it has one.
    pub serial_number: Option<String>,
    /// The ESP8266 boards' adapter family ("CP210x", "CH340", ...), null for other devices.
    pub esp_adapter: Option<&'static str>,
}

impl PortEntry {
    fn from_info(info: &SerialPortInfo) -> PortEntry {
        let usb = match &info.port_type {
            SerialPortType::UsbPort(usb) => Some(usb),
            _ => None,
        };
        PortEntry {
            port: info.port_name.clone(),
            vid_pid: usb.map(|usb| format!("{:04x}:{:04x}", usb.vid, usb.pid)),
            manufacturer: usb.and_then(|usb| usb.manufacturer.clone()),
            product: usb.and_then(|usb| usb.product.clone()),
            serial_number: usb.and_then(|usb| usb.serial_number.clone()),
            esp_adapter: usb.and_then(|usb| known_adapter(usb.vid, usb.pid)),
        }
    }

    /// "/dev/ttyUSB0  10c4:ea60  Silicon Labs CP2102 ...  serial 0001  [ESP8266 adapter: CP210x]".
    fn line(&self) -> String {
        let name = match (&self.manufacturer, &self.product) {
            (Some(manufacturer), Some(product)) if !product.starts_with(manufacturer.as_str()) => {
                format!("{manufacturer} {product}")
            }
            (_, Some(product)) => product.clone(),
            (Some(manufacturer), None) => manufacturer.clone(),
            (None, None) => "(no name reported)".into(),
        };
        let mut line = format!(
            "{:<14} {:<10} {name}",
            self.port,
            self.vid_pid.as_deref().unwrap_or("?:?")
        );
        if let Some(serial) = &self.serial_number {
            line.push_str(&format!(", serial {serial}"));
        }
        if let Some(family) = self.esp_adapter {
            line.push_str(&format!("  [ESP8266 adapter: {family}]"));
        }
        line
    }
}

/// Lists the ports; none found is an answer, not a failure.
pub fn run(out: &Output) -> Result<(), CmdError> {
    let ports: Vec<PortEntry> = available_ports().iter().map(PortEntry::from_info).collect();
    for line in describe(&ports) {
        out.line(line);
    }
    out.result(&ListPortsResult { ports });
    Ok(())
}

/// The human lines for `ports`.
fn describe(ports: &[PortEntry]) -> Vec<String> {
    if ports.is_empty() {
        return vec![
            "No USB serial port found.".into(),
            "Connect the board's USB serial adapter (with a data cable; on Windows and macOS \
             install the CP210x or CH340 driver if the port does not appear)."
                .into(),
            "Without a board: --port emu:4MB runs any command on the built-in virtual ESP8266, \
             and esp-emulator serves one on a pseudo-terminal or a TCP port."
                .into(),
        ];
    }
    let mut lines = vec![format!(
        "{} USB serial port(s), in the order esp-flasher tries them without --port:",
        ports.len()
    )];
    lines.extend(ports.iter().map(PortEntry::line));
    lines
}

#[cfg(test)]
mod tests {
    use serialport::UsbPortInfo;

    use super::*;

    fn usb(name: &str, vid: u16, pid: u16, texts: [Option<&str>; 3]) -> SerialPortInfo {
        let [manufacturer, product, serial] = texts.map(|text| text.map(str::to_string));
        SerialPortInfo {
            port_name: name.into(),
            port_type: SerialPortType::UsbPort(UsbPortInfo {
                vid,
                pid,
                serial_number: serial,
                manufacturer,
                product,
            }),
        }
    }

    #[test]
    fn esp_adapters_are_marked_with_ids_names_and_serials() {
        let infos = [
            usb(
                "/dev/ttyUSB0",
                0x10C4,
                0xEA60,
                [
                    Some("Silicon Labs"),
                    Some("CP2102 USB to UART Bridge Controller"),
                    Some("0001"),
                ],
            ),
            usb(
                "/dev/ttyUSB1",
                0x1A86,
                0x7523,
                [None, Some("USB Serial"), None],
            ),
            usb(
                "/dev/ttyACM0",
                0x2E8A,
                0x0005,
                [Some("Raspberry Pi"), Some("Raspberry Pi Pico"), Some("E66")],
            ),
            SerialPortInfo {
                port_name: "/dev/ttyUSB9".into(),
                port_type: SerialPortType::Unknown,
            },
        ];
        let entries: Vec<PortEntry> = infos.iter().map(PortEntry::from_info).collect();
        assert_eq!(entries[0].vid_pid.as_deref(), Some("10c4:ea60"));
        assert_eq!(
            (
                entries[0].esp_adapter,
                entries[1].esp_adapter,
                entries[2].esp_adapter
            ),
            (Some("CP210x"), Some("CH340"), None)
        );
        let lines = describe(&entries);
        assert_eq!(
            lines,
            [
                "4 USB serial port(s), in the order esp-flasher tries them without --port:",
                "/dev/ttyUSB0   10c4:ea60  Silicon Labs CP2102 USB to UART Bridge Controller, serial 0001  [ESP8266 adapter: CP210x]",
                "/dev/ttyUSB1   1a86:7523  USB Serial  [ESP8266 adapter: CH340]",
                "/dev/ttyACM0   2e8a:0005  Raspberry Pi Pico, serial E66",
                "/dev/ttyUSB9   ?:?        (no name reported)",
            ]
        );
        let json = serde_json::to_value(&entries[3]).unwrap();
        assert_eq!(json["vid_pid"], serde_json::Value::Null);
        assert_eq!(json["port"], "/dev/ttyUSB9");
    }

    #[test]
    fn none_found_says_so_and_names_the_virtual_chip() {
        let lines = describe(&[]).join("\n");
        assert!(lines.starts_with("No USB serial port found."));
        assert!(lines.contains("--port emu:4MB") && lines.contains("esp-emulator"));
    }
}
