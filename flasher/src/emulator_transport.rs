//! A virtual ESP8266 in the same process, on virtual time.
//!
//! [`EmulatorTransport`] drives the `esp-emulator` device core through its
//! faulty-line wrapper ([`Link`]) with no file descriptor and no real clock:
//! a read with nothing to deliver returns 0 at once and moves the virtual
//! clock on by its timeout, so timeouts and retries cost microseconds. Bytes
//! take their UART time (10 bits each at the host's rate) on the virtual
//! clock, and when the host's rate differs from the chip's the line garbles
//! them both ways, as a real one would.
//!
//! DTR and RTS drive the usual auto-reset circuit: EN is low while RTS is
//! asserted and DTR is not, and EN going high again resets the chip (into
//! the boot mode its configuration straps). A device configured with reset
//! wiring (`DeviceConfig::reset_wiring`, e.g. NodeMCU's) gets the lines
//! themselves instead, so GPIO0 follows DTR too: esptool's reset sequence then
//! selects the loader and a hard reset the firmware in flash, as on a board.

use std::io;
use std::time::Duration;

use esp_emulator::device::{Device, DeviceConfig, ResetWiring};
use esp_emulator::flash::SpiFlash;
use esp_emulator::link::{Link, LinkConfig};
use esp_emulator::rfc2217::ControlLines;
use esp_protocol::packet::ROM_BAUD;

use crate::transport::{LineControl, Transport};

/// The in-process virtual chip as a [`Transport`].
#[derive(Debug)]
pub struct EmulatorTransport {
    link: Link,
    now: Duration,
    /// Chip→host bytes polled from the link; those before `received_pos` are delivered.
    received: Vec<u8>,
    received_pos: usize,
    dtr: bool,
    rts: bool,
}

/// Polls in a row that may find no output while the chip still has work due before a read
/// gives up: enough for the longest frame an executed stub sends in small UART slices.
const MAX_EMPTY_POLLS: u32 = 4096;

impl EmulatorTransport {
    /// A line to `device` with no link faults, garbling bytes when baud rates differ.
    pub fn new(device: Device) -> Self {
        Self::with_link(Link::new(
            device,
            LinkConfig {
                model_baud: true,
                ..LinkConfig::default()
            },
        ))
    }

    /// A default ESP8266EX in download mode with `flash`.
    pub fn with_flash(flash: SpiFlash) -> Self {
        Self::new(Device::new(DeviceConfig::default(), flash))
    }

    /// A line as `link` models it (faults, seed, baud modelling).
    pub fn with_link(mut link: Link) -> Self {
        link.set_host_baud(ROM_BAUD);
        EmulatorTransport {
            link,
            now: Duration::ZERO,
            received: Vec::new(),
            received_pos: 0,
            dtr: false,
            rts: false,
        }
    }

    /// The virtual chip.
    pub fn device(&self) -> &Device {
        self.link.device()
    }

    /// The virtual chip, to change its flash between commands.
    pub fn device_mut(&mut self) -> &mut Device {
        self.link.device_mut()
    }

    /// The line.
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// UART time of `count` bytes at the host's rate (8N1: 10 bits a byte).
    fn wire_time(&self, count: usize) -> Duration {
        Duration::from_secs_f64(count as f64 * 10.0 / self.link.host_baud() as f64)
    }

    fn check_connected(&self) -> io::Result<()> {
        if self.link.is_disconnected() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the virtual cable was pulled",
            ));
        }
        Ok(())
    }

    fn en_is_low(&self) -> bool {
        self.rts && !self.dtr
    }

    fn set_lines(&mut self, dtr: bool, rts: bool) {
        let was_low = self.en_is_low();
        self.dtr = dtr;
        self.rts = rts;
        if self.link.device().reset_wiring() != ResetWiring::None {
            let was_in_reset = self.link.device().in_reset();
            self.link
                .set_control_lines(self.now, ControlLines { dtr, rts });
            if !was_in_reset && self.link.device().in_reset() {
                // What the chip had sent and the host not yet read is from before the reset.
                self.received.clear();
                self.received_pos = 0;
            }
            return;
        }
        if was_low && !self.en_is_low() {
            self.link.reset(self.now);
            self.received.clear();
            self.received_pos = 0;
        }
    }

    fn poll(&mut self) {
        self.link.poll_output(self.now, &mut self.received);
    }
}

impl Transport for EmulatorTransport {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.check_connected()?;
        self.now += self.wire_time(bytes.len());
        self.link.receive(self.now, bytes);
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = self.now + timeout;
        let mut empty_polls = 0;
        loop {
            if self.received_pos == self.received.len() {
                // Everything delivered: reuse the buffer rather than allocate anew.
                self.received.clear();
                self.received_pos = 0;
                self.poll();
            }
            let pending = &self.received[self.received_pos..];
            if !pending.is_empty() {
                let count = buf.len().min(pending.len());
                buf[..count].copy_from_slice(&pending[..count]);
                self.received_pos += count;
                self.now += self.wire_time(count);
                return Ok(count);
            }
            self.check_connected()?;
            match self.link.next_output_at() {
                Some(ready_at) if ready_at > self.now && ready_at <= deadline => {
                    self.now = ready_at
                }
                // Due now and nothing came: the chip's code is still working, or a fault
                // holds a frame back until it is whole. Run it on, a bounded number of times.
                Some(ready_at) if ready_at <= self.now && empty_polls < MAX_EMPTY_POLLS => {
                    empty_polls += 1;
                }
                // Output that is due but yields nothing was lost on the line; wait it out.
                _ => {
                    self.now = self.now.max(deadline);
                    return Ok(0);
                }
            }
        }
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.link.set_host_baud(baud);
        Ok(())
    }

    fn baud(&self) -> u32 {
        self.link.host_baud()
    }

    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.set_lines(asserted, self.rts);
        Ok(LineControl::Set)
    }

    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.set_lines(self.dtr, asserted);
        Ok(LineControl::Set)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.poll();
        self.received.clear();
        self.received_pos = 0;
        Ok(())
    }

    fn sleep(&mut self, duration: Duration) {
        self.now += duration;
    }

    fn clock(&self) -> Duration {
        self.now
    }
}
