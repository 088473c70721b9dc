//! One virtual chip shared by the front ends that serve it (the pty, TCP and RFC 2217
//! endpoints), and the UART pacing each front end applies to its client's bytes.
//!
//! A [`Board`] owns the [`Link`] (and through it the [`Device`]), the clock every front end
//! reads, the hook that keeps changed flash sectors and the event handler. Only one client
//! talks to the chip at a time: a front end [claims](Board::claim) the board for its client
//! and [releases](Board::release) it when the client leaves; while another endpoint holds
//! it, a front end neither feeds the chip nor takes its output.
//!
//! `Pump` (crate-private) is the byte pacing the pty server has always done, now shared by every front
//! end: with realtime on, host→chip bytes reach the device 10 bit times (8N1) after they
//! arrive, at the client's rate, and chip→host bytes leave one 10-bit time apart at the
//! chip's rate; without it, bytes pass as fast as the device answers. It does no I/O: the
//! front end reads its client, hands the bytes in, steps the pump and writes what is ready.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::flash::SpiFlash;
use crate::link::Link;

/// Longest a front end sleeps between looks at the clock and its client.
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Output a front end buffers before it stops asking the device for more.
pub(crate) const OUTPUT_BACKLOG: usize = 64 * 1024;
/// Bits per byte on an 8N1 line: start, eight data, stop.
const BITS_PER_BYTE: u32 = 10;
/// Realtime: host bytes scheduled on the wire beyond which the front end stops reading its
/// client, so the client's own buffers push back on it, as a real port's line rate does.
pub(crate) const MAX_INBOUND: usize = 4 * 1024;
/// Largest piece a front end reads from its client at once.
pub(crate) const READ_CHUNK: usize = 4096;

/// Something a server reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client closed the port.
    SessionEnded {
        /// The chip was reset, as a board's auto-reset does; `false`: the program it runs
        /// (a RAM program loaded with `load_ram`, or anything on a TCP endpoint) goes on.
        chip_reset: bool,
    },
    /// The cable was pulled and plugged in again: the device now serves on a new slave path.
    Replugged(std::path::PathBuf),
    /// One line of the device's packet trace.
    Trace(String),
    /// A network client connected to an endpoint and now has the chip.
    ClientConnected {
        /// The endpoint's URL, e.g. `tcp://127.0.0.1:4000`.
        endpoint: String,
        /// The client's address.
        peer: String,
    },
    /// A network client left or was dropped.
    ClientGone {
        /// The endpoint's URL.
        endpoint: String,
        /// The client's address.
        peer: String,
        /// Why the session ended, e.g. "closed the connection".
        reason: String,
        /// True when the server dropped the client (misbehaviour, a silent client another
        /// one waited behind); false when the client closed.
        dropped: bool,
    },
    /// A network client was turned away; it was told why.
    ClientRefused {
        /// The endpoint's URL.
        endpoint: String,
        /// The client's address.
        peer: String,
        /// What it was told.
        reason: String,
    },
}

/// Receives [`ServerEvent`]s on a server thread.
pub type EventHandler = Box<dyn FnMut(ServerEvent) + Send>;

/// Keeps the flash's changed sectors somewhere; called before any chip output reaches a
/// client, so what the chip acknowledges is kept first. An error stops the front end that
/// called it: no reply goes out for a change that could not be kept.
pub type FlashPersist = Box<dyn FnMut(&mut SpiFlash) -> io::Result<()> + Send>;

/// How a [`Board`] is built.
#[derive(Default)]
pub struct BoardOptions {
    /// Bytes take UART time (see the module docs).
    pub realtime: bool,
    /// Called for every event; without one, events are dropped.
    pub on_event: Option<EventHandler>,
    /// Keeps the changed flash sectors (see [`FlashPersist`]).
    pub persist: Option<FlashPersist>,
}

/// The chip and what the front ends share about it.
pub struct Board {
    state: Mutex<BoardState>,
    on_event: Mutex<Option<EventHandler>>,
    realtime: bool,
    clock: Instant,
}

/// The part of a [`Board`] behind its lock.
pub(crate) struct BoardState {
    pub(crate) link: Link,
    /// The endpoint whose client has the chip, by name.
    owner: Option<String>,
    pub(crate) persist: Option<FlashPersist>,
}

impl Board {
    /// A board around `link`, whose device has just powered up.
    pub fn new(link: Link, options: BoardOptions) -> Board {
        Board {
            state: Mutex::new(BoardState {
                link,
                owner: None,
                persist: options.persist,
            }),
            on_event: Mutex::new(options.on_event),
            realtime: options.realtime,
            clock: Instant::now(),
        }
    }

    /// The time since the board was built: the device's clock.
    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// True when bytes take UART time.
    pub fn realtime(&self) -> bool {
        self.realtime
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the device while every front end is paused.
    pub fn with_device<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        f(self.lock().link.device_mut())
    }

    /// Runs `f` on the link (the device behind its faulty line) while every front end is paused.
    pub fn with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        f(&mut self.lock().link)
    }

    /// A copy of the flash contents (its physical memory).
    pub fn flash_snapshot(&self) -> Vec<u8> {
        self.with_device(|device| device.flash().as_bytes().to_vec())
    }

    /// Gives the chip to `endpoint`'s client; `Err` names the endpoint whose client has it.
    pub fn claim(&self, endpoint: &str) -> Result<(), String> {
        let mut state = self.lock();
        match &state.owner {
            Some(owner) if owner != endpoint => Err(owner.clone()),
            _ => {
                state.owner = Some(endpoint.to_owned());
                Ok(())
            }
        }
    }

    /// `endpoint`'s client has left: the chip is free (no-op if another endpoint has it).
    pub fn release(&self, endpoint: &str) {
        let mut state = self.lock();
        if state.owner.as_deref() == Some(endpoint) {
            state.owner = None;
        }
    }

    /// The endpoint whose client has the chip, if any.
    pub fn owner(&self) -> Option<String> {
        self.lock().owner.clone()
    }

    /// Reports `event` to the handler, if there is one.
    pub fn emit(&self, event: ServerEvent) {
        let mut handler = self.on_event.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handler) = handler.as_mut() {
            handler(event);
        }
    }

    /// Unwraps the device.
    pub fn into_device(self) -> Device {
        self.state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .link
            .into_device()
    }
}

impl BoardState {
    /// True when `endpoint` may take the chip's output: it has the chip, or no one has.
    pub(crate) fn output_goes_to(&self, endpoint: &str) -> bool {
        self.owner.as_deref().is_none_or(|owner| owner == endpoint)
    }
}

/// What one [`Pump::step`] found besides the bytes it made ready.
#[derive(Debug, Default)]
pub(crate) struct Stepped {
    /// The device's trace lines since the last step.
    pub(crate) trace: Vec<String>,
    /// The link's cable was pulled (a `disconnect` fault) and nothing is left on the wire.
    pub(crate) disconnected: bool,
}

/// One front end's UART pacing between its client and the chip (see the module docs).
#[derive(Debug)]
pub(crate) struct Pump {
    realtime: bool,
    /// Realtime: host→chip bytes still on the wire, with the time they arrive.
    inbound: VecDeque<(Duration, Vec<u8>)>,
    /// Bytes in `inbound`.
    inbound_len: usize,
    rx_line_free: Duration,
    /// Realtime: chip→host bytes not yet through the UART.
    on_wire: VecDeque<u8>,
    tx_line_free: Duration,
    /// Chip→host bytes waiting for the client to take them.
    pub(crate) ready: Vec<u8>,
}

impl Pump {
    pub(crate) fn new(realtime: bool) -> Pump {
        Pump {
            realtime,
            inbound: VecDeque::new(),
            inbound_len: 0,
            rx_line_free: Duration::ZERO,
            on_wire: VecDeque::new(),
            tx_line_free: Duration::ZERO,
            ready: Vec::new(),
        }
    }

    /// How many client bytes the front end may read now.
    pub(crate) fn input_room(&self) -> usize {
        if self.realtime {
            MAX_INBOUND.saturating_sub(self.inbound_len)
        } else {
            READ_CHUNK
        }
    }

    /// How long the front end may wait before the next byte or device output is due;
    /// `takes_output` says whether it takes the device's output now ([`Pump::step`]).
    pub(crate) fn timeout(&self, now: Duration, link: &Link, takes_output: bool) -> Duration {
        let inbound_due = self.inbound.front().map(|(due, _)| *due);
        let outbound_due = (!self.on_wire.is_empty())
            .then(|| self.tx_line_free + byte_time(link.device().uart_baud()));
        // With the backlog full the device's output must wait for the client to read, and
        // output another front end takes is not this one's to wait for: either due time
        // would turn the wait into a busy loop.
        let device_due = (takes_output && self.backlog() < OUTPUT_BACKLOG)
            .then(|| link.next_output_at())
            .flatten();
        [inbound_due, outbound_due, device_due]
            .into_iter()
            .flatten()
            .map(|due| due.saturating_sub(now))
            .fold(IDLE_WAIT, Duration::min)
    }

    fn backlog(&self) -> usize {
        self.ready.len() + self.on_wire.len()
    }

    /// Takes bytes the client sent at `host_baud` (`None`: a rate the front end cannot
    /// know, which counts as matching the chip).
    pub(crate) fn take_input(
        &mut self,
        now: Duration,
        bytes: &[u8],
        host_baud: Option<u32>,
        link: &mut Link,
    ) {
        let baud = host_baud.unwrap_or_else(|| link.device().uart_baud());
        link.set_host_baud(baud);
        if self.realtime {
            let due = self.rx_line_free.max(now) + byte_time(baud) * bytes.len() as u32;
            self.rx_line_free = due;
            self.inbound_len += bytes.len();
            self.inbound.push_back((due, bytes.to_vec()));
        } else {
            link.receive(now, bytes);
        }
    }

    /// Moves bytes along: arrivals to the device and, when `take_output`, the device's
    /// output to the wire and on to [`Pump::ready`].
    pub(crate) fn step(
        &mut self,
        now: Duration,
        state: &mut BoardState,
        take_output: bool,
    ) -> io::Result<Stepped> {
        let link = &mut state.link;
        while let Some((due, _)) = self.inbound.front() {
            if *due > now {
                break;
            }
            let (_, bytes) = self.inbound.pop_front().expect("front exists");
            self.inbound_len -= bytes.len();
            link.receive(now, &bytes);
        }
        let chip_baud = link.device().uart_baud();
        if take_output && self.backlog() < OUTPUT_BACKLOG {
            let mut output = Vec::new();
            link.poll_output(now, &mut output);
            if let Some(persist) = state.persist.as_mut().filter(|_| !output.is_empty()) {
                persist(link.device_mut().flash_mut())?;
            }
            if self.realtime {
                if self.on_wire.is_empty() {
                    self.tx_line_free = self.tx_line_free.max(now);
                }
                self.on_wire.extend(output);
            } else {
                self.ready.extend(output);
            }
        }
        let byte_time = byte_time(chip_baud);
        while !self.on_wire.is_empty() && self.tx_line_free + byte_time <= now {
            self.tx_line_free += byte_time;
            self.ready.extend(self.on_wire.pop_front());
        }
        Ok(Stepped {
            trace: link.device_mut().take_trace(),
            disconnected: link.is_disconnected() && self.on_wire.is_empty(),
        })
    }

    /// Forgets the host bytes on the wire; the next client's bytes find the line free.
    pub(crate) fn clear_inbound(&mut self) {
        self.inbound.clear();
        self.inbound_len = 0;
        self.rx_line_free = Duration::ZERO;
    }

    /// Forgets the chip's bytes on the wire and those waiting for the client.
    pub(crate) fn clear_outbound(&mut self) {
        self.on_wire.clear();
        self.ready.clear();
    }
}

/// Time one 8N1 byte takes at `baud`.
pub(crate) fn byte_time(baud: u32) -> Duration {
    Duration::from_secs(u64::from(BITS_PER_BYTE)) / baud.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceConfig;
    use crate::flash::SpiFlash;
    use crate::link::LinkConfig;
    use esp_protocol::packet::Command;
    use esp_protocol::slip;

    /// A link whose chip has replies waiting (a SYNC nobody has read the answers to).
    fn link_with_output() -> Link {
        let device = Device::new(
            DeviceConfig::default(),
            SpiFlash::blank(256 * 1024).unwrap(),
        );
        let mut link = Link::new(device, LinkConfig::default());
        let sync = slip::encode_to_vec(&Command::Sync.to_bytes().unwrap());
        link.receive(Duration::ZERO, &sync);
        link
    }

    #[test]
    fn regression_a_front_end_without_the_chip_polled_without_waiting() {
        // The pty, with a terminal open on it while a network client held the chip, took
        // the chip's pending output as its own due time: a zero timeout, a core at 100%.
        let link = link_with_output();
        let now = Duration::from_millis(5);
        assert_eq!(link.next_output_at(), Some(Duration::ZERO));
        let pump = Pump::new(false);
        assert_eq!(pump.timeout(now, &link, true), Duration::ZERO);
        assert_eq!(pump.timeout(now, &link, false), IDLE_WAIT);
    }

    #[test]
    fn the_board_belongs_to_one_endpoint_at_a_time() {
        let board = Board::new(link_with_output(), BoardOptions::default());
        assert_eq!(board.claim("tcp://127.0.0.1:4000"), Ok(()));
        assert_eq!(board.claim("tcp://127.0.0.1:4000"), Ok(()), "its own again");
        assert_eq!(board.claim("pty"), Err("tcp://127.0.0.1:4000".to_owned()));
        assert!(!board.lock().output_goes_to("pty"));
        board.release("pty");
        assert_eq!(board.owner().as_deref(), Some("tcp://127.0.0.1:4000"));
        board.release("tcp://127.0.0.1:4000");
        assert!(board.lock().output_goes_to("pty"));
        assert_eq!(board.claim("pty"), Ok(()));
    }
}
