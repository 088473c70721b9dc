//! What the ESP8266's mask ROM prints when it starts, as facts both sides use: the rate it
//! prints at, its first line (`ets Jan  8 2013,rst cause:2, boot mode:(3,6)`), the reset
//! causes and boot modes that line names, and the lines that end its log. The emulator
//! prints the log; esp-flasher's monitor reads it, names the cause and the mode in words and
//! knows from it when the firmware's output starts.
//!
//! Sources: Espressif's ESP8266 Non-OS SDK API reference, appendix "ESP8266 Boot Messages"
//! (74880 baud; rst cause 1 power on, 2 external reset, 4 hardware watchdog; boot mode 1 UART
//! download, 3 flash boot) and the esp8266-wiki's "Boot Process" page (the first boot-mode
//! number's three low bits are GPIO15, GPIO0 and GPIO2).

/// Baud rate of the ROM's boot messages (26 MHz crystal, ROM assumes 40 MHz).
pub const BOOT_LOG_BAUD: u32 = 74880;

/// The APB clock (UARTs, timers) while the ROM runs: its PLL setting for a 40 MHz crystal
/// on the 26 MHz one boards carry, so 80 MHz × 26/40. A divider meant for 115200 at 80 MHz
/// gives the boot log's 74880 here; firmware without an SDK to raise the clock divides
/// this one.
pub const ROM_APB_CLOCK_HZ: u32 = 52_000_000;

/// What the ROM's first line starts with, after a blank line (`\r\n`) and a space.
pub const BANNER_START: &str = "ets Jan  8 2013,rst cause:";

/// The boot mode of the serial download loader (GPIO0 low at reset).
pub const BOOT_MODE_UART_DOWNLOAD: u8 = 1;

/// The boot mode that runs the firmware in flash (GPIO0 high at reset).
pub const BOOT_MODE_FLASH: u8 = 3;

/// The text before the boot-mode numbers.
const BOOT_MODE_PREFIX: &[u8] = b"boot mode:(";

/// The boot mode (first number of `boot mode:(N,M)`) in a boot message read at
/// [`BOOT_LOG_BAUD`], if one is there.
pub fn boot_mode(log: &[u8]) -> Option<u8> {
    let start = log
        .windows(BOOT_MODE_PREFIX.len())
        .position(|window| window == BOOT_MODE_PREFIX)?
        + BOOT_MODE_PREFIX.len();
    let digit = *log.get(start)?;
    digit.is_ascii_digit().then(|| digit - b'0')
}

/// Why the chip reset, as the ROM prints it after `rst cause:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// Power applied.
    PowerOn = 1,
    /// The EN/RST pin, or a USB adapter's auto-reset.
    ExternalPin = 2,
    /// The watchdog fired (a crashing firmware).
    Watchdog = 4,
}

impl ResetCause {
    /// The cause the ROM prints as `number`, if it is one Espressif documents.
    pub fn from_number(number: u32) -> Option<ResetCause> {
        match number {
            1 => Some(ResetCause::PowerOn),
            2 => Some(ResetCause::ExternalPin),
            4 => Some(ResetCause::Watchdog),
            _ => None,
        }
    }

    /// The cause in words.
    pub fn description(self) -> &'static str {
        match self {
            ResetCause::PowerOn => "power-on",
            ResetCause::ExternalPin => {
                "external reset (the EN/RST pin or the adapter's auto-reset; also waking from deep sleep)"
            }
            ResetCause::Watchdog => {
                "hardware watchdog reset (the firmware hung or crashed without feeding it)"
            }
        }
    }
}

/// The first number of `boot mode:(X,Y)` in words: bits 2..0 of X are the levels GPIO15,
/// GPIO0 and GPIO2 had at reset. The second number is not decoded.
pub fn boot_mode_description(strapping: u32) -> &'static str {
    match strapping & 0b111 {
        1 => "UART download mode (GPIO0 low): the ROM serial loader waits for a flasher",
        3 => "flash boot (GPIO0 high): the firmware in flash runs",
        4..=7 => "SDIO boot (GPIO15 high): check GPIO15's pull-down",
        _ => "no boot mode (GPIO2 low): check GPIO2's pull-up",
    }
}

/// True for a line (without its line end) after which the ROM prints no more of its log:
/// the image's checksum (`csum 0x2b`, then the firmware runs or `csum err` follows at once),
/// the failure (`ets_main.c`) or the serial loader's `waiting for host`.
pub fn ends_rom_log(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("csum ") || line.starts_with("ets_main.c") || line == "waiting for host"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_causes_and_modes_in_words() {
        assert_eq!(ResetCause::from_number(2), Some(ResetCause::ExternalPin));
        assert_eq!(ResetCause::from_number(3), None);
        assert_eq!(ResetCause::Watchdog as u32, 4);
        assert!(ResetCause::Watchdog.description().contains("watchdog"));
        assert!(boot_mode_description(3).starts_with("flash boot"));
        assert!(boot_mode_description(1).starts_with("UART download"));
        assert!(boot_mode_description(6).starts_with("SDIO"));
        assert!(boot_mode_description(2).contains("GPIO2"));
    }

    #[test]
    fn the_lines_that_end_the_rom_log() {
        for line in ["csum 0x2b", "csum err", "ets_main.c ", "waiting for host"] {
            assert!(ends_rom_log(line), "{line}");
        }
        for line in [
            "chksum 0x2b",
            "load 0x4010f000, len 3424, room 16 ",
            "tail 0",
            "",
        ] {
            assert!(!ends_rom_log(line), "{line}");
        }
    }

    #[test]
    fn the_boot_mode_is_read_from_the_banner() {
        let log = b"\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nload 0x40100000";
        assert_eq!(boot_mode(log), Some(BOOT_MODE_FLASH));
        assert_eq!(
            boot_mode(b"garbage\x00\xffboot mode:(1,7)\r\n"),
            Some(BOOT_MODE_UART_DOWNLOAD)
        );
        assert_eq!(boot_mode(b"boot mode:("), None);
        assert_eq!(boot_mode(b"\xc0\x01\x08"), None);
    }
}
