//! The byte pipe under a session: a serial port, or a virtual chip in memory.
//!
//! Everything above this module works over [`Transport`], so a flash session
//! runs unchanged against `/dev/ttyUSB0`, `COM3`, a pseudo-terminal or the
//! in-process emulator. All of them are a [`SerialTransport`] over a
//! [`serialport::SerialPort`]: a real port on the host's clock, or esp-emulator's
//! `VirtualPort` on its own (`EmulatorTransport`, with the `emulator` feature).

use std::io;
use std::time::{Duration, Instant};

/// Whether a modem line (DTR/RTS) could be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineControl {
    /// The line is now at the level asked for.
    Set,
    /// The port has no modem lines (a pty answers ENOTTY); nothing was done.
    Unsupported,
}

/// A serial line to an ESP8266.
pub trait Transport {
    /// Sends all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Reads what is available into `buf`, waiting at most `timeout` for the
    /// first byte. Returns 0 when nothing came in time.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;

    /// Changes the line's baud rate.
    fn set_baud(&mut self, baud: u32) -> io::Result<()>;

    /// The line's baud rate.
    fn baud(&self) -> u32;

    /// Sets DTR (asserted = `true`; on the usual auto-reset circuit it pulls GPIO0 low).
    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl>;

    /// Sets RTS (asserted = `true`; on the usual auto-reset circuit it pulls EN low).
    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl>;

    /// Throws away bytes received and not yet read.
    fn discard_input(&mut self) -> io::Result<()>;

    /// Lets `duration` pass (a real sleep on a real line).
    fn sleep(&mut self, duration: Duration);

    /// Time since the transport was opened, on the transport's own clock;
    /// deadlines are measured with it so that virtual time works too.
    fn clock(&self) -> Duration;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).write_all(bytes)
    }
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        (**self).read(buf, timeout)
    }
    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        (**self).set_baud(baud)
    }
    fn baud(&self) -> u32 {
        (**self).baud()
    }
    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
        (**self).set_dtr(asserted)
    }
    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
        (**self).set_rts(asserted)
    }
    fn discard_input(&mut self) -> io::Result<()> {
        (**self).discard_input()
    }
    fn sleep(&mut self, duration: Duration) {
        (**self).sleep(duration)
    }
    fn clock(&self) -> Duration {
        (**self).clock()
    }
}

/// The clock a [`SerialTransport`]'s deadlines and pauses run on.
pub trait LineClock: Send {
    /// Time since the line was opened.
    fn now(&self) -> Duration;

    /// Lets `duration` pass.
    fn sleep(&mut self, duration: Duration);
}

/// The host's monotonic clock, for a real port.
#[derive(Debug)]
pub struct HostClock {
    opened_at: Instant,
}

impl HostClock {
    /// A clock that starts now.
    pub fn start() -> HostClock {
        HostClock {
            opened_at: Instant::now(),
        }
    }
}

impl LineClock for HostClock {
    fn now(&self) -> Duration {
        self.opened_at.elapsed()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A serial port as a [`Transport`]: a USB-serial adapter, a COM port, a pty path, or any
/// other [`serialport::SerialPort`] (the in-process virtual chip is one).
pub struct SerialTransport {
    port: Box<dyn serialport::SerialPort>,
    /// The rate last set. Read back from the port it can be wrong: a pty keeps no custom
    /// rate, and CHANGE_BAUDRATE's old rate (the stub's divider scale) must be exact.
    baud: u32,
    clock: Box<dyn LineClock>,
}

impl std::fmt::Debug for SerialTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialTransport")
            .field("port", &self.port.name())
            .finish()
    }
}

impl SerialTransport {
    /// Opens `path` at `baud`, 8N1, no flow control.
    pub fn open(path: &str, baud: u32) -> io::Result<SerialTransport> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(io::Error::from)?;
        Ok(SerialTransport::with_port(
            port,
            baud,
            Box::new(HostClock::start()),
        ))
    }

    /// A transport over `port`, already open at `baud`, whose timeouts and pauses run on
    /// `clock` (the host's for a real port; a virtual port's own for one on virtual time).
    pub fn with_port(
        port: Box<dyn serialport::SerialPort>,
        baud: u32,
        clock: Box<dyn LineClock>,
    ) -> SerialTransport {
        SerialTransport { port, baud, clock }
    }

    /// The port's name, as it was opened.
    pub fn name(&self) -> String {
        self.port.name().unwrap_or_default()
    }

    fn set_line(&mut self, result: serialport::Result<()>) -> io::Result<LineControl> {
        match result {
            Ok(()) => Ok(LineControl::Set),
            // serialport reports errno values it has no kind for (ENOTTY on a pty,
            // "not supported" on some virtual COM ports) as Unknown.
            Err(error) if error.kind() == serialport::ErrorKind::Unknown => {
                Ok(LineControl::Unsupported)
            }
            Err(error) => Err(io::Error::from(error)),
        }
    }
}

impl Transport for SerialTransport {
    // A signal (Ctrl-C, whose handler runs on its own thread and ends the process) can
    // interrupt a wait on the port: that is no I/O failure, the call is made again.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.port, bytes)?;
        loop {
            match io::Write::flush(&mut self.port) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                flushed => return flushed,
            }
        }
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.port
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(io::Error::from)?;
        loop {
            match io::Read::read(&mut self.port, buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::TimedOut => return Ok(0),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn set_baud(&mut self, baud: u32) -> io::Result<()> {
        self.port.set_baud_rate(baud).map_err(io::Error::from)?;
        self.baud = baud;
        Ok(())
    }

    fn baud(&self) -> u32 {
        self.baud
    }

    fn set_dtr(&mut self, asserted: bool) -> io::Result<LineControl> {
        let result = self.port.write_data_terminal_ready(asserted);
        self.set_line(result)
    }

    fn set_rts(&mut self, asserted: bool) -> io::Result<LineControl> {
        let result = self.port.write_request_to_send(asserted);
        self.set_line(result)
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.port
            .clear(serialport::ClearBuffer::Input)
            .map_err(io::Error::from)
    }

    fn sleep(&mut self, duration: Duration) {
        self.clock.sleep(duration);
    }

    fn clock(&self) -> Duration {
        self.clock.now()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serialport::SerialPort as _;

    #[test]
    fn a_pty_works_but_has_no_modem_lines() {
        let (mut host_side, chip_side) = serialport::TTYPort::pair().expect("pty pair");
        let path = chip_side.name().expect("pty path");
        let mut transport = SerialTransport::open(&path, 115_200).unwrap();
        assert_eq!(transport.set_dtr(true).unwrap(), LineControl::Unsupported);
        assert_eq!(transport.set_rts(false).unwrap(), LineControl::Unsupported);

        io::Write::write_all(&mut host_side, b"\xC0ping\xC0").unwrap();
        let mut buf = [0u8; 16];
        let read = transport.read(&mut buf, Duration::from_secs(2)).unwrap();
        assert!(read > 0 && b"\xC0ping\xC0".starts_with(&buf[..read]));
        transport.discard_input().unwrap();
        assert_eq!(
            transport.read(&mut buf, Duration::from_millis(20)).unwrap(),
            0
        );
    }
}
