//! The ROM's boot message: what every ESP8266 prints on UART0 after a reset, before the
//! loader or the firmware says anything. Its first line names the reset cause and the
//! strapping the chip latched: `ets Jan  8 2013,rst cause:2, boot mode:(3,6)`, where the
//! first number is the boot mode GPIO15, GPIO0 and GPIO2 select.

/// Baud rate of the ROM's boot message: the UART divider for 115200 at a 40 MHz crystal,
/// run from the 26 MHz crystal the boards carry.
pub const BOOT_LOG_BAUD: u32 = 74_880;

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

#[cfg(test)]
mod tests {
    use super::*;

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
