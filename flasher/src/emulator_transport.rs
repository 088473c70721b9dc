//! A virtual ESP8266 in the same process, on virtual time.
//!
//! [`EmulatorTransport`] is a [`SerialTransport`] over esp-emulator's
//! [`VirtualPort`], the same [`serialport::SerialPort`] that other Rust tools open
//! in their tests: the bytes take the path a real port's take, through the
//! serialport trait. The port runs the chip on virtual time: a read with nothing
//! to deliver moves the clock on by its timeout at once, so timeouts and retries
//! cost microseconds, and [`Transport::sleep`] moves the chip's clock rather than
//! the thread. Bytes take their UART time (10 bits each at the host's rate), and
//! when the host's rate differs from the chip's the line garbles them both ways,
//! as a real one would.
//!
//! DTR and RTS reach the board's reset wiring: the constructors that take a
//! device or a link wire a NodeMCU-style auto-reset circuit (EN low while RTS is
//! asserted and DTR is not; the chip restarts into the boot mode GPIO0 selects),
//! [`EmulatorTransport::on_port`] keeps the port's board as it is.

use std::io;
use std::time::Duration;

use esp_emulator::device::{Device, DeviceConfig, ResetWiring};
use esp_emulator::flash::SpiFlash;
use esp_emulator::link::{Link, LinkConfig};
use esp_emulator::serial_port::{PortTime, VirtualPort};
use esp_protocol::packet::ROM_BAUD;

use crate::transport::{LineClock, LineControl, SerialTransport, Transport};

/// The in-process virtual chip as a [`Transport`].
pub struct EmulatorTransport {
    line: SerialTransport,
    port: VirtualPort,
}

impl std::fmt::Debug for EmulatorTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorTransport")
            .field("now", &self.port.now())
            .finish()
    }
}

/// A [`VirtualPort`]'s clock: virtual or real, as the port runs.
struct PortClock(VirtualPort);

impl LineClock for PortClock {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn sleep(&mut self, duration: Duration) {
        self.0.sleep(duration);
    }
}

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

    /// A line as `link` models it (faults, seed, baud modelling), on virtual time, with the
    /// chip on a NodeMCU-style auto-reset circuit.
    pub fn with_link(mut link: Link) -> Self {
        link.device_mut().set_reset_wiring(ResetWiring::NodeMcu);
        Self::on_port(VirtualPort::new(link, PortTime::Virtual))
    }

    /// A line over `port` (a clone: the caller's handle still reaches the chip), on the
    /// port's clock and its board's wiring.
    pub fn on_port(port: VirtualPort) -> Self {
        let line = SerialTransport::with_port(
            Box::new(port.clone()),
            ROM_BAUD,
            Box::new(PortClock(port.clone())),
        );
        EmulatorTransport { line, port }
    }

    /// The virtual port: the chip, its link and its clock (clones share them).
    pub fn port(&self) -> &VirtualPort {
        &self.port
    }

    /// A copy of the virtual chip's flash.
    pub fn flash_contents(&self) -> Vec<u8> {
        self.port.flash_snapshot()
    }

    /// The port's clock.
    pub fn now(&self) -> Duration {
        self.port.now()
    }
}

impl Transport for EmulatorTransport {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.line.write_all(bytes)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.line.read(buf, timeout)
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.line.set_baud(baud)
    }

    fn baud(&self) -> u32 {
        self.line.baud()
    }

    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.line.set_dtr(asserted)
    }

    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
        self.line.set_rts(asserted)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.line.discard_input()
    }

    fn sleep(&mut self, duration: Duration) {
        self.line.sleep(duration)
    }

    fn clock(&self) -> Duration {
        self.line.clock()
    }
}
