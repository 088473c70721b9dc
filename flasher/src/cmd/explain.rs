//! What each library error means to a user: one line naming the problem and,
//! where there is one, a line saying what to do.

use esp_flasher::connection::ResetObserved;
use esp_flasher::Error;
use esp_protocol::boot_log::{BOOT_MODE_FLASH, BOOT_MODE_UART_DOWNLOAD};
use esp_protocol::flash_params::size_name;

use super::CmdError;

/// Where esptool keeps the stub JSON this tool can upload.
pub const STUB_HINT: &str = "give a flasher stub with --stub-file PATH or ESP_FLASHER_STUB=PATH: \
esptool's JSON stub, e.g. site-packages/esptool/targets/stub_flasher/2/esp8266.json after `pip install esptool`";

/// The causes of a chip that does not answer, worst offenders first.
pub const NO_ANSWER_CAUSES: &str = "Check: GPIO0 held low (or the FLASH/BOOT button pressed) while powering \
or resetting the board; TX and RX crossed (adapter TX to ESP RX); 3.3 V logic, not 5 V; the right port";

/// What a chip that never answered SYNC showed when it was reset, when that names a wiring
/// problem: the finding (to follow the "no answer" message) and the remedy.
pub fn reset_diagnosis(reset: ResetObserved) -> Option<(String, String)> {
    match reset {
        ResetObserved::Silent => Some((
            "nothing came back when DTR and RTS were pulsed, not even the boot message a reset prints at \
             74880 baud: the chip did not restart (the board has no auto-reset circuit, or the adapter's driver \
             does not pass RTS, as some CH340 drivers do), or its TX does not reach the adapter"
                .into(),
            "Put the chip in the loader by hand: hold GPIO0 low (press and hold FLASH/BOOT, or a jumper from GPIO0 \
             to GND) while you press RESET or power the board, release it, then run the command again with \
             --before no_reset. With a CH340 adapter, WCH's current driver brings the auto-reset back. If that \
             does not help, check the wiring: TX and RX crossed (adapter TX to ESP RX), 3.3 V logic, not 5 V."
                .into(),
        )),
        ResetObserved::BootMode(BOOT_MODE_FLASH) => Some((
            format!(
                "the chip restarted into its firmware (boot mode:({BOOT_MODE_FLASH},x)): GPIO0 was not low at reset"
            ),
            "Hold GPIO0 low (press and hold FLASH/BOOT) while the board resets, then release it. On a board with \
             auto-reset the adapter's DTR does not reach GPIO0: check its DTR wire and driver."
                .into(),
        )),
        ResetObserved::BootMode(BOOT_MODE_UART_DOWNLOAD) => Some((
            format!(
                "the chip restarted into its serial loader (boot mode:({BOOT_MODE_UART_DOWNLOAD},x)) but did not answer"
            ),
            "Check: TX and RX crossed (adapter TX to ESP RX); 3.3 V logic, not 5 V; a power supply that holds \
             3.3 V under load."
                .into(),
        )),
        ResetObserved::BootMode(mode) => Some((
            format!("the chip restarted in boot mode {mode}, neither the loader nor the firmware"),
            "At reset GPIO15 must be low and GPIO2 high, with GPIO0 low for the loader: check what the board \
             connects to them."
                .into(),
        )),
        ResetObserved::NotReset | ResetObserved::Unrecognised => None,
    }
}

impl From<Error> for CmdError {
    fn from(error: Error) -> CmdError {
        let remedy: Option<String> = match &error {
            Error::NoSync { reset, .. } => Some(
                reset_diagnosis(*reset)
                    .map_or_else(|| format!("{NO_ANSWER_CAUSES}."), |(_, remedy)| remedy),
            ),
            Error::Timeout { .. } | Error::Io(_) => Some(
                "The chip stopped answering: check the cable, the power supply (the ESP8266 draws 300 mA peaks) \
                 and try a lower --baud."
                    .into(),
            ),
            Error::StubRequired { .. } => Some(format!("To do this, {STUB_HINT}.")),
            Error::BadStub { .. } | Error::StubDidNotStart => Some(
                "Use esptool's ESP8266 stub (targets/stub_flasher/2/esp8266.json), or --no-stub for what the ROM loader can do."
                    .into(),
            ),
            Error::VerifyFailed { .. } => Some(
                "The flash does not hold the data: do not boot it. Check the power supply and write protection \
                 (read_flash_status), then write again."
                    .into(),
            ),
            Error::WriteProtected { .. } => Some(
                "Check with esp-flasher read_flash_status; clear the protection with \
                 esp-flasher write_flash_status --non-volatile 0, then write again."
                    .into(),
            ),
            Error::SectorsNotWritten { sectors, .. } => Some(format!(
                "A sector that keeps its old contents after an erase is worn out or damaged: replace the flash chip, \
                 or keep firmware and settings away from {:#010x}.",
                sectors[0]
            )),
            Error::FlashWraps { real, .. } => Some(format!(
                "The chip is fake or mislabelled: nothing was read or written past its real size. Back up what is there \
                 with esp-flasher read_flash 0 {real:#x} FILE, and write images for a {} flash (-fs {}).",
                size_name((*real).into()),
                size_name((*real).into())
            )),
            Error::WriteInterrupted { reached, source, .. } => Some(format!(
                "Check the cable, put the board in download mode again and run the same command: \
                 esp-flasher compares each sector by MD5 and writes only those not yet written, from about {reached:#010x}.{}",
                match **source {
                    Error::Timeout { .. } => " If it stops again, try a lower --baud (e.g. --baud 115200).",
                    _ => "",
                }
            )),
            Error::WriteCorrupted { baud, .. } => Some(format!(
                "The serial line corrupts data at {baud} baud: write again with a lower --baud ({}), a shorter \
                 cable or another USB adapter. Do not boot the board until a write has been verified.",
                lower_baud_hint(*baud)
            )),
            Error::ReadFailed { .. } => Some(
                "The line is unreliable: try a shorter cable, a lower --baud or another USB port, then read again."
                    .into(),
            ),
            Error::ReadDisagrees { .. } => Some(
                "The flash reads unreliably: check the power supply (the ESP8266 draws 300 mA peaks), \
                 then read again (nothing was saved)."
                    .into(),
            ),
            Error::ReadInterrupted { .. } => Some(
                "The connection to the chip was lost: check the cable and the power supply, put the board in \
                 download mode again and read again (nothing was saved)."
                    .into(),
            ),
            Error::RegionPastEnd { .. } => Some(
                "Check the address and size against the flash size (flash_id shows it).".into(),
            ),
            Error::UnalignedWrite { alignment, .. } => Some(format!(
                "Write at a multiple of {alignment} (images go at 0x1000 multiples), or drop --no-stub: the stub writes at any address."
            )),
            Error::UnknownFlashSize { .. } => Some(
                "Give the size explicitly, e.g. -fs 4MB, or read with an explicit size instead of ALL.".into(),
            ),
            Error::RomWouldEraseOutside { .. } => Some(
                "Drop --no-stub: the stub reads those bytes first and writes them back. Or pad the file to whole 4 KiB \
                 sectors and write it at a sector boundary."
                    .into(),
            ),
            Error::OutputBusy { .. } => Some(
                "Wait for that run to finish, or give this one another file name: nothing was read or written."
                    .into(),
            ),
            Error::BadRecord { .. } => Some(
                "restore needs FILE and FILE.json exactly as backup wrote them.".into(),
            ),
            Error::File { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => Some(
                "Free some space there and run the command again: nothing was replaced (a previous file or backup of \
                 that name is as it was)."
                    .into(),
            ),
            Error::RestoreMismatch { .. } => Some(
                "Check that the image is meant for this board (a backup of this chip is); add --force to write it anyway."
                    .into(),
            ),
            Error::UnsupportedChip { .. } => Some(
                "esp-flasher handles the ESP8266 and ESP8285; use esptool for the ESP32 family.".into(),
            ),
            _ => None,
        };
        CmdError::Failed {
            message: one_line(&error),
            remedy,
        }
    }
}

/// "--baud 460800" for a line that failed at 921600; the ROM's 115200 at the bottom.
fn lower_baud_hint(baud: u32) -> String {
    match esp_flasher::ops::baud::lower_rate(baud) {
        Some(rate) => format!("e.g. --baud {rate}"),
        None => "e.g. --baud 115200, or a lower rate such as 57600".into(),
    }
}

/// The error's message without the remedy that some library messages carry after a semicolon.
fn one_line(error: &Error) -> String {
    match error {
        Error::NoSync { attempts, reset } => {
            let finding = reset_diagnosis(*reset).map_or_else(String::new, |(finding, _)| format!(": {finding}"));
            format!("no answer from the chip after {attempts} connection attempts{finding}")
        }
        Error::StubRequired { operation } => {
            format!("{operation} needs the flasher stub, which the ESP8266 ROM loader lacks, and none is running")
        }
        Error::VerifyFailed { address, size, expected, got } => format!(
            "verification failed: the {size} bytes of flash at {address:#010x} do not hold the data written \
             (flash MD5 {got}, data MD5 {expected})"
        ),
        Error::WriteInterrupted { address, reached, written, total, source } => format!(
            "the connection was lost while writing: {written} of {total} bytes at {address:#010x} were sent, \
             the flash is written up to about {reached:#010x} ({})",
            one_line(source)
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(error: Error) -> (String, Option<String>) {
        match CmdError::from(error) {
            CmdError::Failed { message, remedy } => (message, remedy),
            CmdError::Usage(message) => panic!("usage error {message}"),
        }
    }

    #[test]
    fn a_write_the_line_corrupted_names_the_address_and_a_lower_baud() {
        let source = Box::new(Error::Device {
            opcode: esp_protocol::packet::Opcode::FlashDeflData,
            code: esp_protocol::status::ErrorCode::BadDataChecksum,
        });
        let (message, remedy) = parts(Error::WriteCorrupted {
            address: 0x10000,
            at: 0x5cccc,
            baud: 921_600,
            source,
        });
        assert!(
            message.contains("at about 0x5cccc") && message.contains("921600 baud"),
            "{message}"
        );
        assert!(remedy.unwrap().contains("--baud 460800"));
        let (_, remedy) = parts(Error::WriteCorrupted {
            address: 0,
            at: 0x4000,
            baud: 115_200,
            source: Box::new(Error::Timeout {
                opcode: esp_protocol::packet::Opcode::FlashData,
                timeout_ms: 3000,
            }),
        });
        assert!(remedy.unwrap().contains("--baud 115200, or a lower rate"));
    }

    #[test]
    fn a_write_that_timed_out_names_the_address_and_suggests_a_lower_baud() {
        let source = Box::new(Error::Timeout {
            opcode: esp_protocol::packet::Opcode::FlashDeflData,
            timeout_ms: 3000,
        });
        let (message, remedy) = parts(Error::WriteInterrupted {
            address: 0x10000,
            reached: 0x23000,
            written: 78643,
            total: 393216,
            source,
        });
        assert!(message.contains("0x00023000"), "{message}");
        assert!(remedy.unwrap().contains("try a lower --baud"));
    }

    #[test]
    fn no_answer_names_the_causes() {
        let (message, remedy) = parts(Error::NoSync {
            attempts: 7,
            reset: ResetObserved::NotReset,
        });
        assert!(message.contains("no answer"));
        let remedy = remedy.unwrap();
        for cause in ["GPIO0", "TX and RX", "5 V", "port"] {
            assert!(remedy.contains(cause), "{remedy}");
        }
    }

    #[test]
    fn no_answer_after_a_reset_names_the_wiring_problem() {
        let (message, remedy) = parts(Error::NoSync {
            attempts: 7,
            reset: ResetObserved::Silent,
        });
        assert!(message.contains("did not restart"), "{message}");
        assert!(message.contains("its TX does not reach"), "{message}");
        assert!(remedy.unwrap().contains("--before no_reset"));
        let (message, remedy) = parts(Error::NoSync {
            attempts: 7,
            reset: ResetObserved::BootMode(BOOT_MODE_FLASH),
        });
        assert!(message.contains("boot mode:(3,x)"), "{message}");
        assert!(remedy.unwrap().contains("Hold GPIO0 low"));
    }

    #[test]
    fn missing_stub_says_how_to_give_one() {
        let (message, remedy) = parts(Error::StubRequired {
            operation: "read_flash",
        });
        assert!(message.starts_with("read_flash needs the flasher stub"));
        let remedy = remedy.unwrap();
        assert!(
            remedy.contains("--stub-file") && remedy.contains("ESP_FLASHER_STUB"),
            "{remedy}"
        );
    }

    #[test]
    fn bad_md5_never_reads_as_success() {
        let error = Error::VerifyFailed {
            address: 0,
            size: 16,
            expected: "aa".into(),
            got: "bb".into(),
        };
        let (message, remedy) = parts(error);
        assert!(message.contains("do not hold the data"));
        assert!(remedy.unwrap().contains("do not boot"));
    }
}
