//! The virtual chip as a [`serialport::SerialPort`]: a tool built on the serialport crate opens
//! a [`VirtualPort`] instead of a real port, in its own tests, on every OS, with no binary
//! and no pseudo-terminal.
//!
//! The port drives a [`Link`] (the device behind its faulty line, so `--fault` specs parsed
//! with [`FaultPlan`](crate::faults::FaultPlan) apply) on one of two clocks
//! ([`PortTime`]): virtual time, which stands still until a read waits and then jumps to when
//! the chip has output (tests run as fast as the chip answers, flash busy times included when
//! [`DeviceConfig::realtime`](crate::device::DeviceConfig::realtime) is set), or the host's
//! real clock. On virtual time a host cannot wait by sleeping, so a write to a chip that EN
//! has just released first lets the time pass until the chip has started, as the host's
//! pause after a reset would. The baud rate and framing set on the port are the host's on the
//! line (a framing other than 8N1 garbles bytes as the chip's 8N1 UART would); DTR and RTS go
//! to the board's reset wiring ([`DeviceConfig::reset_wiring`](crate::device::DeviceConfig::reset_wiring)).
//! No modem input is wired: CTS, DSR, RI and CD read low. Clones share the chip.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! use esp_emulator::device::{Device, DeviceConfig};
//! use esp_emulator::flash::SpiFlash;
//! use esp_emulator::link::{Link, LinkConfig};
//! use esp_emulator::serial_port::{PortTime, VirtualPort};
//! use esp_protocol::chip::{decode_efuses, EFUSE_REGS};
//! use esp_protocol::packet::{BeginParams, Command, DataBlock, Response};
//! use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
//! use esp_protocol::status::Status;
//! use serialport::SerialPort;
//!
//! /// Sends `command` and returns its first reply: the serialport trait is all it uses.
//! fn ask(port: &mut dyn SerialPort, command: &Command) -> Response {
//!     port.write_all(&slip::encode_to_vec(&command.to_bytes().unwrap())).unwrap();
//!     let mut decoder = SlipDecoder::new();
//!     let mut buffer = [0u8; 256];
//!     loop {
//!         let count = port.read(&mut buffer).expect("a reply before the timeout");
//!         for event in decoder.feed_to_vec(&buffer[..count]) {
//!             if let SlipEvent::Frame(frame) = event {
//!                 return Response::decode(&frame).unwrap();
//!             }
//!         }
//!     }
//! }
//!
//! let device = Device::new(DeviceConfig::default(), SpiFlash::blank(1 << 20).unwrap());
//! let mut port = VirtualPort::new(Link::new(device, LinkConfig::default()), PortTime::Virtual);
//! port.set_timeout(Duration::from_secs(1)).unwrap();
//!
//! ask(&mut port, &Command::Sync);
//! port.clear(serialport::ClearBuffer::Input).unwrap(); // SYNC's other replies
//! let mut words = [0u32; 4];
//! for (word, address) in words.iter_mut().zip(EFUSE_REGS) {
//!     *word = ask(&mut port, &Command::ReadReg { address }).value;
//! }
//! assert_eq!(decode_efuses(words).unwrap().mac, [0x18, 0xFE, 0x34, 0x12, 0x34, 0x56]);
//!
//! let data = vec![0xA5; 0x400];
//! let begin = BeginParams { size: 0x400, blocks: 1, block_size: 0x400, offset: 0x1000, encrypted: None };
//! assert_eq!(ask(&mut port, &Command::FlashBegin(begin)).status, Status::Success);
//! let block = DataBlock { sequence: 0, data: data.clone() };
//! assert_eq!(ask(&mut port, &Command::FlashData(block)).status, Status::Success);
//! assert_eq!(&port.flash_snapshot()[0x1000..0x1400], &data[..]);
//! ```

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use crate::link::{Framing, Link};
use crate::rfc2217::{self, ControlLines};

/// Longest a real-time read sleeps before it looks at the chip again.
const REAL_TIME_POLL: Duration = Duration::from_millis(1);
/// Polls in a row that may find no output while the chip still has work due, before a
/// virtual-time read gives up: enough for the longest frame an executed stub sends in small
/// UART slices.
const MAX_EMPTY_POLLS: u32 = 4096;

/// Which clock a [`VirtualPort`] runs the chip on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortTime {
    /// Time passes only while a read waits, and jumps to when the chip has output.
    Virtual,
    /// The host's monotonic clock: a read waits as long as the chip takes.
    Real,
}

/// The virtual ESP8266 behind a [`SerialPort`] (see the module docs).
#[derive(Clone)]
pub struct VirtualPort {
    shared: Arc<Mutex<Shared>>,
}

/// What clones of a port share.
struct Shared {
    link: Link,
    time: PortTime,
    started: Instant,
    /// Virtual time.
    now: Duration,
    /// Chip output not yet read.
    received: Vec<u8>,
    baud: u32,
    data_bits: DataBits,
    flow_control: FlowControl,
    parity: Parity,
    stop_bits: StopBits,
    timeout: Duration,
    lines: ControlLines,
}

impl Shared {
    fn now(&self) -> Duration {
        match self.time {
            PortTime::Virtual => self.now,
            PortTime::Real => self.started.elapsed(),
        }
    }

    /// Takes what the chip has sent by now.
    fn collect(&mut self) {
        let now = self.now();
        self.link.poll_output(now, &mut self.received);
    }

    /// UART time of `count` bytes at the port's rate and framing.
    fn wire_time(&self, count: usize) -> Duration {
        let bits = count as f64 * self.link.host_framing().bits_per_byte();
        Duration::from_secs_f64(bits / f64::from(self.baud.max(1)))
    }

    /// A pulled cable ([`Link::is_disconnected`]) fails reads and writes, as a vanished
    /// USB adapter does.
    fn check_connected(&self) -> io::Result<()> {
        if self.link.is_disconnected() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the virtual cable was pulled",
            ));
        }
        Ok(())
    }

    /// Hands over up to `buf.len()` received bytes; on virtual time they take their UART
    /// time to arrive.
    fn deliver(&mut self, buf: &mut [u8]) -> usize {
        let count = self.received.len().min(buf.len());
        buf[..count].copy_from_slice(&self.received[..count]);
        self.received.drain(..count);
        if self.time == PortTime::Virtual {
            self.now += self.wire_time(count);
        }
        count
    }

    /// Sets the link's framing from the port's settings.
    fn apply_framing(&mut self) {
        let framing = Framing {
            data_bits: match self.data_bits {
                DataBits::Five => 5,
                DataBits::Six => 6,
                DataBits::Seven => 7,
                DataBits::Eight => 8,
            },
            parity: match self.parity {
                Parity::None => rfc2217::Parity::None,
                Parity::Odd => rfc2217::Parity::Odd,
                Parity::Even => rfc2217::Parity::Even,
            },
            stop_bits: match self.stop_bits {
                StopBits::One => rfc2217::StopBits::One,
                StopBits::Two => rfc2217::StopBits::Two,
            },
        };
        self.link.set_host_framing(framing);
    }
}

/// The time out that a read with nothing to deliver ends in.
fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the virtual chip sent nothing before the timeout",
    )
}

impl VirtualPort {
    /// A port at 115200 baud, 8N1, no flow control, a zero timeout, DTR and RTS not asserted,
    /// on `link`'s chip.
    pub fn new(mut link: Link, time: PortTime) -> VirtualPort {
        link.set_host_baud(esp_protocol::packet::ROM_BAUD);
        link.set_host_framing(Framing::EIGHT_N_ONE);
        VirtualPort {
            shared: Arc::new(Mutex::new(Shared {
                link,
                time,
                started: Instant::now(),
                now: Duration::ZERO,
                received: Vec::new(),
                baud: esp_protocol::packet::ROM_BAUD,
                data_bits: DataBits::Eight,
                flow_control: FlowControl::None,
                parity: Parity::None,
                stop_bits: StopBits::One,
                timeout: Duration::ZERO,
                lines: ControlLines::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the link (and through it the device) between reads and writes.
    pub fn with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        f(&mut self.lock().link)
    }

    /// A copy of the flash contents.
    pub fn flash_snapshot(&self) -> Vec<u8> {
        self.with_link(|link| link.device().flash().as_bytes().to_vec())
    }

    /// The port's clock now: virtual or real time since the port was made.
    pub fn now(&self) -> Duration {
        self.lock().now()
    }

    /// Lets `duration` pass with the port idle, as a tool's pause between two steps: on
    /// virtual time the clock moves on at once (the chip catches up at the next read or
    /// write), on real time the calling thread sleeps.
    pub fn sleep(&self, duration: Duration) {
        let mut shared = self.lock();
        match shared.time {
            PortTime::Virtual => shared.now += duration,
            PortTime::Real => {
                drop(shared);
                std::thread::sleep(duration);
            }
        }
    }

    fn set_lines(&mut self, change: impl FnOnce(&mut ControlLines)) {
        let mut shared = self.lock();
        change(&mut shared.lines);
        let (now, lines) = (shared.now(), shared.lines);
        shared.link.set_control_lines(now, lines);
    }
}

impl io::Read for VirtualPort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut shared = self.lock();
        let deadline = shared.now() + shared.timeout;
        let mut empty_polls = 0;
        loop {
            shared.collect();
            if !shared.received.is_empty() {
                return Ok(shared.deliver(buf));
            }
            shared.check_connected()?;
            let now = shared.now();
            if shared.time == PortTime::Real {
                if now >= deadline {
                    return Err(timed_out());
                }
                let due = shared
                    .link
                    .next_output_at()
                    .filter(|&due| due > now)
                    .map_or(deadline, |due| due.min(deadline));
                drop(shared);
                std::thread::sleep((due - now).min(REAL_TIME_POLL));
                shared = self.lock();
                continue;
            }
            match shared.link.next_output_at() {
                Some(due) if due > now && due <= deadline => shared.now = due,
                // Due now and nothing came: the chip's code is still working, or a fault
                // holds a frame back until it is whole. Run it on, a bounded number of times.
                Some(due) if due <= now && empty_polls < MAX_EMPTY_POLLS => empty_polls += 1,
                // Output that is due but yields nothing was lost on the line; wait it out.
                _ => {
                    shared.now = now.max(deadline);
                    return Err(timed_out());
                }
            }
        }
    }
}

impl io::Write for VirtualPort {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut shared = self.lock();
        shared.check_connected()?;
        if shared.time == PortTime::Virtual {
            if shared.link.device().in_reset() {
                // EN released: the chip starts at its next output time (held in reset: none).
                if let Some(start) = shared.link.next_output_at() {
                    shared.now = shared.now.max(start);
                }
            }
            // The bytes reach the chip once they have crossed the line.
            let wire = shared.wire_time(bytes.len());
            shared.now += wire;
        }
        let (now, baud) = (shared.now(), shared.baud);
        shared.link.set_host_baud(baud);
        shared.link.receive(now, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SerialPort for VirtualPort {
    fn name(&self) -> Option<String> {
        Some("esp-emulator virtual ESP8266".to_owned())
    }

    fn baud_rate(&self) -> serialport::Result<u32> {
        Ok(self.lock().baud)
    }

    fn data_bits(&self) -> serialport::Result<DataBits> {
        Ok(self.lock().data_bits)
    }

    fn flow_control(&self) -> serialport::Result<FlowControl> {
        Ok(self.lock().flow_control)
    }

    fn parity(&self) -> serialport::Result<Parity> {
        Ok(self.lock().parity)
    }

    fn stop_bits(&self) -> serialport::Result<StopBits> {
        Ok(self.lock().stop_bits)
    }

    fn timeout(&self) -> Duration {
        self.lock().timeout
    }

    fn set_baud_rate(&mut self, baud_rate: u32) -> serialport::Result<()> {
        if baud_rate == 0 {
            return Err(serialport::Error::new(
                serialport::ErrorKind::InvalidInput,
                "a baud rate of 0 is no rate",
            ));
        }
        let mut shared = self.lock();
        shared.baud = baud_rate;
        shared.link.set_host_baud(baud_rate);
        Ok(())
    }

    fn set_data_bits(&mut self, data_bits: DataBits) -> serialport::Result<()> {
        let mut shared = self.lock();
        shared.data_bits = data_bits;
        shared.apply_framing();
        Ok(())
    }

    fn set_flow_control(&mut self, flow_control: FlowControl) -> serialport::Result<()> {
        self.lock().flow_control = flow_control;
        Ok(())
    }

    fn set_parity(&mut self, parity: Parity) -> serialport::Result<()> {
        let mut shared = self.lock();
        shared.parity = parity;
        shared.apply_framing();
        Ok(())
    }

    fn set_stop_bits(&mut self, stop_bits: StopBits) -> serialport::Result<()> {
        let mut shared = self.lock();
        shared.stop_bits = stop_bits;
        shared.apply_framing();
        Ok(())
    }

    fn set_timeout(&mut self, timeout: Duration) -> serialport::Result<()> {
        self.lock().timeout = timeout;
        Ok(())
    }

    fn write_request_to_send(&mut self, level: bool) -> serialport::Result<()> {
        self.set_lines(|lines| lines.rts = level);
        Ok(())
    }

    fn write_data_terminal_ready(&mut self, level: bool) -> serialport::Result<()> {
        self.set_lines(|lines| lines.dtr = level);
        Ok(())
    }

    fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }

    fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }

    fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }

    fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
        Ok(false)
    }

    fn bytes_to_read(&self) -> serialport::Result<u32> {
        let mut shared = self.lock();
        shared.collect();
        Ok(u32::try_from(shared.received.len()).unwrap_or(u32::MAX))
    }

    fn bytes_to_write(&self) -> serialport::Result<u32> {
        // Writes reach the chip at once.
        Ok(0)
    }

    fn clear(&self, buffer_to_clear: ClearBuffer) -> serialport::Result<()> {
        if matches!(buffer_to_clear, ClearBuffer::Input | ClearBuffer::All) {
            let mut shared = self.lock();
            shared.collect();
            shared.received.clear();
        }
        Ok(())
    }

    fn try_clone(&self) -> serialport::Result<Box<dyn SerialPort>> {
        Ok(Box::new(self.clone()))
    }

    fn set_break(&self) -> serialport::Result<()> {
        Ok(())
    }

    fn clear_break(&self) -> serialport::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{BootMode, Device, DeviceConfig, ResetWiring, STRAP_WINDOW};
    use crate::flash::SpiFlash;
    use crate::link::LinkConfig;
    use esp_protocol::packet::Command;
    use esp_protocol::slip;
    use std::io::Read;

    fn port(config: DeviceConfig, time: PortTime) -> Box<dyn SerialPort> {
        let device = Device::new(config, SpiFlash::blank(256 * 1024).unwrap());
        Box::new(VirtualPort::new(
            Link::new(device, LinkConfig::default()),
            time,
        ))
    }

    /// SYNC through the trait alone: true when a reply starts to come back.
    fn syncs(port: &mut dyn SerialPort) -> bool {
        port.clear(ClearBuffer::Input).unwrap();
        port.write_all(&slip::encode_to_vec(&Command::Sync.to_bytes().unwrap()))
            .unwrap();
        let mut reply = [0u8; 4];
        port.read_exact(&mut reply).is_ok() && reply[..3] == [0xC0, 0x01, 0x08]
    }

    #[test]
    fn a_read_with_nothing_to_say_times_out_on_either_clock() {
        for time in [PortTime::Virtual, PortTime::Real] {
            let mut port = port(DeviceConfig::default(), time);
            port.set_timeout(Duration::from_millis(20)).unwrap();
            let error = port.read(&mut [0u8; 8]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert!(syncs(port.as_mut()), "{time:?}");
        }
    }

    #[test]
    fn the_port_rate_is_the_hosts_rate_on_the_line() {
        let device = Device::new(
            DeviceConfig::default(),
            SpiFlash::blank(256 * 1024).unwrap(),
        );
        let link = Link::new(
            device,
            LinkConfig {
                model_baud: true,
                ..LinkConfig::default()
            },
        );
        let mut port = VirtualPort::new(link, PortTime::Virtual);
        port.set_timeout(Duration::from_millis(100)).unwrap();
        // The ROM loader takes the rate of the first bytes after a reset, then keeps it.
        port.set_baud_rate(9_600).unwrap();
        assert!(syncs(&mut port));
        port.set_baud_rate(115_200).unwrap();
        assert!(
            !syncs(&mut port),
            "a SYNC at 115200 is garbage to a chip at 9600"
        );
        assert!(port.set_baud_rate(0).is_err());
        assert_eq!(port.baud_rate().unwrap(), 115_200);
    }

    #[test]
    fn a_port_set_to_7e1_garbles_what_the_8n1_chip_receives() {
        let mut port = port(DeviceConfig::default(), PortTime::Virtual);
        port.set_timeout(Duration::from_millis(100)).unwrap();
        port.set_data_bits(DataBits::Seven).unwrap();
        port.set_parity(Parity::Even).unwrap();
        assert!(!syncs(port.as_mut()), "a 7E1 SYNC was understood");
        port.set_data_bits(DataBits::Eight).unwrap();
        port.set_parity(Parity::None).unwrap();
        assert!(syncs(port.as_mut()));
    }

    #[test]
    fn a_pulled_cable_fails_reads_and_writes() {
        let plan = crate::faults::FaultPlan::parse(&["disconnect:after=1"]).unwrap();
        let device = Device::new(
            DeviceConfig::default(),
            SpiFlash::blank(256 * 1024).unwrap(),
        );
        let link = Link::new(
            device,
            LinkConfig {
                faults: plan.link,
                ..LinkConfig::default()
            },
        );
        let mut port = VirtualPort::new(link, PortTime::Virtual);
        port.set_timeout(Duration::from_millis(100)).unwrap();
        assert!(!syncs(&mut port));
        let error = port.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        let error = io::Write::write(&mut port, b"\xC0").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn virtual_time_moves_by_the_uart_time_and_by_sleeps() {
        let port = VirtualPort::new(
            Link::new(
                Device::new(
                    DeviceConfig::default(),
                    SpiFlash::blank(256 * 1024).unwrap(),
                ),
                LinkConfig::default(),
            ),
            PortTime::Virtual,
        );
        port.sleep(Duration::from_millis(250));
        assert_eq!(port.now(), Duration::from_millis(250));
        let mut writer = port.clone();
        // 1152 bytes at 115200 baud, 10 bits each: 0.1 s on the line.
        io::Write::write_all(&mut writer, &[0u8; 1152]).unwrap();
        assert_eq!(port.now(), Duration::from_millis(350));
    }

    #[test]
    fn fault_specs_apply_as_on_the_command_line() {
        // `--fault timeout:op=SYNC,nth=1`: the first SYNC gets no reply, the second does.
        let plan = crate::faults::FaultPlan::parse(&["timeout:op=SYNC,nth=1"]).unwrap();
        let config = DeviceConfig {
            faults: plan.device,
            ..DeviceConfig::default()
        };
        let device = Device::new(config, SpiFlash::blank(256 * 1024).unwrap());
        let link = Link::new(
            device,
            LinkConfig {
                faults: plan.link,
                ..LinkConfig::default()
            },
        );
        let mut port = VirtualPort::new(link, PortTime::Virtual);
        port.set_timeout(Duration::from_millis(100)).unwrap();
        assert!(!syncs(&mut port), "the first SYNC was answered");
        assert!(syncs(&mut port));
    }

    #[test]
    fn dtr_and_rts_reset_a_nodemcu_board_into_the_loader() {
        let config = DeviceConfig {
            boot: BootMode::Flash,
            reset_wiring: ResetWiring::NodeMcu,
            ..DeviceConfig::default()
        };
        let mut port = port(config, PortTime::Virtual);
        port.set_timeout(STRAP_WINDOW * 2).unwrap();
        assert!(!syncs(port.as_mut()), "booted from flash: no loader");
        port.write_data_terminal_ready(false).unwrap();
        port.write_request_to_send(true).unwrap();
        port.write_data_terminal_ready(true).unwrap();
        port.write_request_to_send(false).unwrap();
        // The chip starts when the strap window has passed; the read waits for it.
        assert!(syncs(port.as_mut()));
    }
}
