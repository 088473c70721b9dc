//! `--baud auto`: the fastest rate the serial adapter carries cleanly.
//!
//! esptool switches to `--baud B` once and hopes; an adapter (or cable) that cannot keep up at
//! 921600 then fails a read with "Corrupt data, expected 0x1000 bytes but received 0xffd
//! bytes". With auto baud the session climbs instead: once the stub runs it switches to each
//! rate of [`AUTO_BAUD_RATES`], fastest first, and keeps the first at which a probe read of
//! [`PROBE_SIZE`] bytes comes back whole and matching the chip's MD5. Later, a read block that
//! arrives corrupt steps the rate down one level before that block is read again
//! ([`Flasher::read_flash`]), so a marginal rate costs one block, not the backup.
//!
//! Only corruption steps down: a short frame, a digest mismatch, garbled frames. A reply that
//! is simply lost (a timeout with nothing garbled on the line) says nothing about the rate, so
//! that read is tried again at the same rate.
//!
//! A switch whose reply is lost on the bad line is checked both ways: SYNC at the new rate
//! (the chip switched), else at the old one (it did not, so ask again).

use crate::error::{Error, Result};
use crate::flasher::Flasher;
use crate::progress::{Event, Warning};
use crate::transport::Transport;

/// The rates `--baud auto` tries, fastest first. Above 921600 they are the rates USB serial
/// adapters commonly carry (FTDI and CP2102N 3M, CH340 2M); the ESP8266's UART reaches them
/// with an integer divider of its 80 MHz clock (3M: 27, about 1% off, within a UART's
/// tolerance).
pub const AUTO_BAUD_RATES: [u32; 6] = [3_000_000, 2_000_000, 1_500_000, 921_600, 460_800, 230_400];
/// The ROM loader's rate: where auto baud ends up when nothing faster works.
pub const FLOOR_BAUD: u32 = 115_200;
/// Bytes the probe read checks at each rate (one READ_FLASH frame).
pub const PROBE_SIZE: u32 = 0x1000;
/// CHANGE_BAUDRATE attempts before a switch fails.
const SWITCH_TRIES: u32 = 3;
/// SYNC tries when checking which rate the chip listens at.
const RESYNC_TRIES: u32 = 3;
/// Probe reads at one rate that may go unanswered (no corruption seen) before it counts as failing.
const PROBE_TRIES: u32 = 3;

/// The next rate below `baud` on the auto-baud ladder, if any.
pub fn lower_rate(baud: u32) -> Option<u32> {
    AUTO_BAUD_RATES
        .into_iter()
        .chain([FLOOR_BAUD])
        .find(|&rate| rate < baud)
}

impl<T: Transport> Flasher<T> {
    /// Climbs to the fastest rate of [`AUTO_BAUD_RATES`] that passes a verified probe read
    /// (stub only), and lets later reads step down on corrupt blocks. Returns the rate chosen.
    pub fn auto_baud(&mut self) -> Result<u32> {
        self.require_stub("choosing the baud rate")?;
        self.auto_baud = true;
        let start = self.connection.transport().baud();
        for rate in AUTO_BAUD_RATES.into_iter().filter(|&rate| rate > start) {
            self.switch_baud(rate)?;
            if self.probe_line()? {
                return Ok(rate);
            }
            let next = lower_rate(rate).unwrap_or(start).max(start);
            self.report(Event::Warning(Warning::BaudTooFast { baud: rate, next }));
        }
        if self.connection.transport().baud() != start {
            self.switch_baud(start)?;
        }
        Ok(start)
    }

    /// With auto baud on, goes down one rate after a corrupt block; false when it cannot.
    /// Callers step down only on corruption ([`crate::progress::RetryReason::is_line_corruption`]).
    pub(crate) fn step_baud_down(&mut self) -> Result<bool> {
        if !self.auto_baud {
            return Ok(false);
        }
        let baud = self.connection.transport().baud();
        let Some(next) = lower_rate(baud) else {
            return Ok(false);
        };
        self.report(Event::Warning(Warning::BaudTooFast { baud, next }));
        self.switch_baud(next)?;
        Ok(true)
    }

    /// CHANGE_BAUDRATE that survives a lost reply: retried, and checked by SYNC at both rates.
    fn switch_baud(&mut self, baud: u32) -> Result<()> {
        let old = self.connection.transport().baud();
        let mut last_error = None;
        for _ in 0..SWITCH_TRIES {
            match self.change_baud(baud) {
                Ok(()) => return Ok(()),
                Err(error @ (Error::Timeout { .. } | Error::Device { .. })) => {
                    last_error = Some(error)
                }
                Err(other) => return Err(other),
            }
            // The reply was lost or garbled: the chip may have switched anyway.
            self.connection.transport_mut().set_baud(baud)?;
            if self.resync()? {
                self.report(Event::BaudChanged { baud });
                return Ok(());
            }
            self.connection.transport_mut().set_baud(old)?;
            self.resync()?;
        }
        Err(last_error.expect("a failed try leaves its error"))
    }

    /// True when a SYNC is answered at the current rate.
    fn resync(&mut self) -> Result<bool> {
        self.connection
            .drain(std::time::Duration::from_millis(300))?;
        for _ in 0..RESYNC_TRIES {
            match self.connection.sync() {
                Ok(_) => return Ok(true),
                Err(Error::Timeout { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Ok(false)
    }

    /// A verified read of [`PROBE_SIZE`] bytes at 0; false (line recovered) when the line
    /// corrupts it, or when every one of [`PROBE_TRIES`] tries goes unanswered. A plain
    /// timeout (a lost reply, nothing garbled) is tried again at the same rate.
    fn probe_line(&mut self) -> Result<bool> {
        for _ in 0..PROBE_TRIES {
            match self.read_block(0, PROBE_SIZE, None)? {
                Ok(_) => return Ok(true),
                Err(reason) => {
                    self.recover_from_failed_read(PROBE_SIZE)?;
                    if reason.is_line_corruption() {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_goes_down_to_the_rom_rate() {
        assert_eq!(lower_rate(3_000_000), Some(2_000_000));
        assert_eq!(lower_rate(2_000_000), Some(1_500_000));
        assert_eq!(lower_rate(1_500_000), Some(921_600));
        assert_eq!(lower_rate(921_600), Some(460_800));
        assert_eq!(lower_rate(460_800), Some(230_400));
        assert_eq!(lower_rate(230_400), Some(115_200));
        assert_eq!(lower_rate(500_000), Some(460_800));
        assert_eq!(lower_rate(115_200), None);
    }
}
