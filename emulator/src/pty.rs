//! Serves a virtual ESP8266 on a pseudo-terminal, so real tools (esptool, esp-flasher) can
//! open its slave side (`/dev/pts/N` on Linux, `/dev/ttysNNN` on macOS) as if it were a USB
//! serial adapter. Unix only (the crate compiles it on `cfg(unix)`): Windows has no
//! pseudo-terminal a serial client can open, and uses the in-process `emu:` port or the
//! network endpoints of [`crate::listen`] instead.
//!
//! [`PtyServer::start`] builds a [`Board`] and serves it; [`PtyServer::serve`] serves a board
//! that other front ends (TCP, RFC 2217) share. Either opens a pty pair, sets the slave to
//! raw mode through the master and runs a background thread that polls the master, feeds
//! what the client writes to the board's [`Link`] (with `now` from the board's monotonic
//! clock) and writes back what the link outputs; while a network client holds the board, what
//! the pty's client types is dropped. The slave stays open for any number of client sessions:
//!
//! - **End of a session.** When the last process closes the slave, the server resets the
//!   device back to the ROM loader, as a board with auto-reset does after esptool's hard
//!   reset, and sets raw mode again (Linux resets a pty's termios on its last close). It
//!   learns of the close from POLLHUP on the master (reading it gives EIO), and on Linux from
//!   inotify's queue of the slave's opens and closes too: a client that opens the slave right
//!   after another closed it clears the hang-up before a busy server thread may have seen it,
//!   but the queued close is still there, before the new client's bytes. The server keeps no
//!   slave fd open itself, which would hide the hang-up. A pty has no DTR/RTS lines: esptool
//!   warns that it could not reset the chip and carries on.
//! - **Cable pulled.** When the link disconnects (`disconnect:after=N`), the server closes the
//!   master, so the client sees a hang-up and the slave node vanishes, then opens a new pty
//!   (a new path, reported by [`ServerEvent::Replugged`]) and powers the device up again.
//! - **Realtime** ([`PtyOptions::realtime`]). Bytes take UART time: host→chip bytes reach the
//!   device 10 bit times (8N1) after they were written, at the rate the client set on the
//!   port (read from the slave's termios through the master); chip→host bytes leave one
//!   10-bit time apart at the chip's [`Device::uart_baud`](crate::device::Device::uart_baud).
//!   The master is read only while a few KB are on the wire, so the pty's buffer makes a
//!   faster writer wait, as a port's line rate does; what a client leaves unread when it
//!   closes is dropped.
//!   The link also garbles bytes when the two rates differ (see [`crate::link`]). A rate set
//!   with Linux's custom-speed interface (BOTHER) cannot be read this way and counts as
//!   matching the chip. Without realtime the device answers as fast as it can and rates are
//!   ignored.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::board::{Board, BoardOptions, Pump, READ_CHUNK};
pub use crate::board::{EventHandler, FlashPersist, ServerEvent};
use crate::device::{Device, DeviceConfig};
use crate::flash::SpiFlash;
use crate::link::{Link, LinkConfig};

/// How often to look for a new client while no process has the slave open.
const NO_CLIENT_WAIT: Duration = Duration::from_millis(10);
/// The name the pty's client holds the board under (its path changes on a replug).
pub const PTY_ENDPOINT: &str = "pty";

/// How a [`PtyServer`] runs.
#[derive(Default)]
pub struct PtyOptions {
    /// Line faults, their seed and whether baud rates must match.
    pub link: LinkConfig,
    /// Bytes take UART time (see the module docs).
    pub realtime: bool,
    /// Collect the device's packet trace and report it as [`ServerEvent::Trace`].
    pub trace: bool,
    /// Called for every event; without one, events are dropped.
    pub on_event: Option<EventHandler>,
    /// Called with the flash before any chip output reaches the pty, so that what the chip
    /// acknowledges is kept first (the binary writes the changed sectors to its file). An
    /// error stops the server: no reply goes out for a change that could not be kept.
    pub persist: Option<FlashPersist>,
}

/// A virtual ESP8266 served on a pty by a background thread.
pub struct PtyServer {
    board: Arc<Board>,
    slave_path: Arc<Mutex<PathBuf>>,
    stop_signal: OwnedFd,
    thread: JoinHandle<io::Result<()>>,
}

impl PtyServer {
    /// Builds the device, opens a pty and starts serving it.
    pub fn start(config: DeviceConfig, flash: SpiFlash, options: PtyOptions) -> io::Result<Self> {
        let mut device = Device::new(config, flash);
        device.set_trace(options.trace);
        let link = Link::new(device, options.link.clone());
        let board = Arc::new(Board::new(
            link,
            BoardOptions {
                realtime: options.realtime,
                on_event: options.on_event,
                persist: options.persist,
            },
        ));
        Self::serve(board)
    }

    /// Opens a pty and serves `board`'s chip on it, beside the board's other front ends.
    pub fn serve(board: Arc<Board>) -> io::Result<Self> {
        let port = Port::open()?;
        let slave_path = Arc::new(Mutex::new(port.slave_path.clone()));
        let (stop_wait, stop_signal) = nix::unistd::pipe()?;
        let server = Server {
            pump: Pump::new(board.realtime()),
            board: Arc::clone(&board),
            slave_path: Arc::clone(&slave_path),
            stop_wait,
            #[cfg(target_os = "linux")]
            openers: Openers::watch(&port.slave_path)?,
            port,
            in_session: false,
        };
        let thread = thread::Builder::new()
            .name("esp-emulator-pty".into())
            .spawn(move || server.run())?;
        Ok(Self {
            board,
            slave_path,
            stop_signal,
            thread,
        })
    }

    /// The slave side clients open, e.g. `/dev/pts/7` (it changes when the cable is replugged).
    pub fn slave_path(&self) -> PathBuf {
        lock(&self.slave_path).clone()
    }

    /// The board this server serves.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// A copy of the flash contents (its physical memory).
    pub fn flash_snapshot(&self) -> Vec<u8> {
        self.board.flash_snapshot()
    }

    /// Runs `f` on the device while the server is paused.
    pub fn with_device<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        self.board.with_device(f)
    }

    /// False once the server thread has ended, which it does only on an I/O error or [`Self::stop`].
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops serving and closes the pty; returns the error that ended the server, if any.
    /// The board, and the chip on it, stay with its other holders.
    pub fn shut_down(self) -> io::Result<Arc<Board>> {
        // The thread may already have ended on an error, closing the pipe's other end.
        let _ = nix::unistd::write(&self.stop_signal, &[1]);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the pty server thread panicked"))??;
        Ok(self.board)
    }

    /// Stops serving, closes the pty and returns the device, or the error that ended the
    /// server. Panics if another front end still holds the board (use [`Self::shut_down`]).
    pub fn stop(self) -> io::Result<Device> {
        let board = self.shut_down()?;
        let board = Arc::into_inner(board).expect("no other front end holds the board");
        Ok(board.into_device())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The master side of a pty and the path of its slave.
struct Port {
    master: File,
    slave_path: PathBuf,
}

impl Port {
    fn open() -> io::Result<Self> {
        // openpty and ttyname are the portable calls (Linux, macOS, the BSDs); ptsname_r is
        // Linux-only and ptsname is not thread-safe. The slave is closed at once: the server
        // keeps no slave fd open, so that a client's close shows as a hang-up.
        let pair = openpty(None, None)?;
        let slave_path = nix::unistd::ttyname(&pair.slave)?;
        drop(pair.slave);
        let master = File::from(pair.master);
        let flags = OFlag::from_bits_retain(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let port = Self { master, slave_path };
        port.make_slave_raw()?;
        Ok(port)
    }

    /// Puts the slave in raw mode; termios calls on the master act on the slave.
    fn make_slave_raw(&self) -> io::Result<()> {
        let mut termios = tcgetattr(&self.master)?;
        cfmakeraw(&mut termios);
        tcsetattr(&self.master, SetArg::TCSANOW, &termios)?;
        Ok(())
    }

    /// The baud rate the client set on the slave, if it is a standard one.
    fn client_baud(&self) -> Option<u32> {
        termios_rate(&tcgetattr(&self.master).ok()?)
    }
}

/// The rate in a termios: Linux codes standard rates as `B*` constants in the control flags.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn termios_rate(termios: &nix::sys::termios::Termios) -> Option<u32> {
    let speed = termios.control_flags.bits() & libc::CBAUD;
    STANDARD_RATES
        .iter()
        .find(|&&(constant, _)| constant == speed)
        .map(|&(_, rate)| rate)
}

/// The rate in a termios: macOS and the BSDs keep the rate itself.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn termios_rate(termios: &nix::sys::termios::Termios) -> Option<u32> {
    let rate = nix::sys::termios::cfgetospeed(termios);
    (rate != 0).then_some(rate)
}

/// Linux's termios speed constants and their rates.
#[cfg(any(target_os = "linux", target_os = "android"))]
const STANDARD_RATES: [(libc::tcflag_t, u32); 21] = [
    (libc::B1200, 1_200),
    (libc::B2400, 2_400),
    (libc::B4800, 4_800),
    (libc::B9600, 9_600),
    (libc::B19200, 19_200),
    (libc::B38400, 38_400),
    (libc::B57600, 57_600),
    (libc::B115200, 115_200),
    (libc::B230400, 230_400),
    (libc::B460800, 460_800),
    (libc::B500000, 500_000),
    (libc::B576000, 576_000),
    (libc::B921600, 921_600),
    (libc::B1000000, 1_000_000),
    (libc::B1152000, 1_152_000),
    (libc::B1500000, 1_500_000),
    (libc::B2000000, 2_000_000),
    (libc::B2500000, 2_500_000),
    (libc::B3000000, 3_000_000),
    (libc::B3500000, 3_500_000),
    (libc::B4000000, 4_000_000),
];

/// Counts the processes that have the slave open from inotify's queue of its opens and
/// closes, which keeps events in order however late the server reads them.
#[cfg(target_os = "linux")]
struct Openers {
    inotify: nix::sys::inotify::Inotify,
    open: u32,
}

#[cfg(target_os = "linux")]
impl Openers {
    /// Starts counting; nobody has the slave open yet (the server closed its own fd).
    fn watch(slave: &std::path::Path) -> io::Result<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(slave, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE)?;
        Ok(Self { inotify, open: 0 })
    }

    /// Reads the queued events: true when some close since the last call left the slave
    /// open by nobody (later opens may have followed).
    fn last_one_closed(&mut self) -> io::Result<bool> {
        use nix::sys::inotify::AddWatchFlags;
        let mut closed = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(closed),
                Err(Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_OPEN) {
                    self.open += 1;
                } else if event.mask.intersects(AddWatchFlags::IN_CLOSE) {
                    self.open = self.open.saturating_sub(1);
                    closed |= self.open == 0;
                }
            }
        }
    }
}

/// What one wait on the port found.
enum Wake {
    Stop,
    Input,
    HangUp,
    Timeout,
}

/// The server thread's state.
struct Server {
    board: Arc<Board>,
    slave_path: Arc<Mutex<PathBuf>>,
    stop_wait: OwnedFd,
    port: Port,
    /// The slave's opens and closes (Linux).
    #[cfg(target_os = "linux")]
    openers: Openers,
    /// A client has written since the last reset.
    in_session: bool,
    pump: Pump,
}

impl Server {
    fn run(mut self) -> io::Result<()> {
        loop {
            let timeout = self.timeout();
            let (wake, hung_up) = self.wait(timeout)?;
            // The last client closed the slave, and a new one has already opened it (so the
            // master shows no hang-up): the old session ends before the new bytes count.
            #[cfg(target_os = "linux")]
            if self.openers.last_one_closed()? && !hung_up {
                self.end_session()?;
            }
            #[cfg(not(target_os = "linux"))]
            let _ = hung_up;
            match wake {
                Wake::Stop => {
                    self.board.release(PTY_ENDPOINT);
                    return Ok(());
                }
                Wake::HangUp => {
                    // No client: the chip's output waits for the next one.
                    self.end_session()?;
                    self.wait_for_client()?;
                    continue;
                }
                Wake::Input => self.read_input()?,
                Wake::Timeout => {}
            }
            self.step()?;
        }
    }

    /// How long to wait before the next byte or device output is due.
    fn timeout(&self) -> Duration {
        let now = self.board.now();
        let state = self.board.lock();
        self.pump
            .timeout(now, &state.link, state.output_goes_to(PTY_ENDPOINT))
    }

    /// Waits for input, room for output, a hang-up or `timeout`; also says whether the master
    /// reports a hang-up (no process has the slave open), which comes with any of them.
    fn wait(&self, timeout: Duration) -> io::Result<(Wake, bool)> {
        let mut master_events = PollFlags::empty();
        // POLLHUP is reported whether asked for or not, so a full backlog still sees a hang-up.
        if self.pump.input_room() > 0 {
            master_events |= PollFlags::POLLIN;
        }
        if !self.pump.ready.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = [
            PollFd::new(self.stop_wait.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.port.master.as_fd(), master_events),
        ];
        // Rounded up: a due time less than 1 ms away would otherwise make a 0 ms poll, and the
        // thread would spin for as long as bytes are on the wire (UART pacing releases every
        // byte that is due when it wakes, so the rate is unaffected).
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(error) => return Err(error.into()),
        }
        let stop = fds[0].any().unwrap_or(false);
        let master = fds[1].revents().unwrap_or(PollFlags::empty());
        let hung_up = master.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        let wake = if stop {
            Wake::Stop
        } else if master.contains(PollFlags::POLLIN) {
            Wake::Input
        } else if hung_up {
            Wake::HangUp
        } else {
            Wake::Timeout
        };
        Ok((wake, hung_up))
    }

    fn read_input(&mut self) -> io::Result<()> {
        let mut buffer = [0u8; READ_CHUNK];
        let room = self.pump.input_room().min(buffer.len());
        if room == 0 {
            return Ok(());
        }
        let count = match (&self.port.master).read(&mut buffer[..room]) {
            Ok(count) => count,
            // No client has the slave open: the next wait reports the hang-up.
            Err(error) if error.raw_os_error() == Some(libc::EIO) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(error) => return Err(error),
        };
        if let Err(owner) = self.board.claim(PTY_ENDPOINT) {
            // A network client has the chip: what is typed on the pty goes nowhere.
            self.board.emit(ServerEvent::Trace(format!(
                "pty: {count} bytes dropped: the chip is in use by the client on {owner}"
            )));
            return Ok(());
        }
        self.in_session = true;
        let now = self.board.now();
        // A rate set through BOTHER (as the serialport crate does) cannot be read here: it
        // counts as matching the chip, as the module docs say.
        let host_baud = self.port.client_baud();
        let mut state = self.board.lock();
        self.pump
            .take_input(now, &buffer[..count], host_baud, &mut state.link);
        Ok(())
    }

    /// The client closed the port: reset the chip and wait for the next client.
    fn end_session(&mut self) -> io::Result<()> {
        if self.in_session {
            self.in_session = false;
            self.pump.clear_inbound();
            self.discard_unread_input();
            // A program that is no flasher stub keeps running, and what it printed waits
            // for the next client; anything else resets, as a board's auto-reset does.
            let chip_reset = {
                let mut state = self.board.lock();
                let chip_reset = state.link.device().resets_when_port_closes();
                if chip_reset {
                    self.pump.clear_outbound();
                    let now = self.board.now();
                    state.link.reset(now);
                }
                chip_reset
            };
            self.board.release(PTY_ENDPOINT);
            self.port.make_slave_raw()?;
            self.board.emit(ServerEvent::SessionEnded { chip_reset });
        }
        Ok(())
    }

    /// Waits a little for a client to open the slave: until one does, the master keeps
    /// reporting the hang-up, and polling it would spin.
    fn wait_for_client(&self) -> io::Result<()> {
        let mut fds = [PollFd::new(self.stop_wait.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(NO_CLIENT_WAIT).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Drops what the client that left wrote and the server has not read yet (realtime
    /// leaves it in the pty while the line is busy): it must not reach the next session.
    fn discard_unread_input(&self) {
        let mut buffer = [0u8; READ_CHUNK];
        // Bounded, in case a new client is already writing.
        for _ in 0..64 {
            match (&self.port.master).read(&mut buffer) {
                Ok(count) if count > 0 => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
    }

    /// Moves bytes along: arrivals to the device, device output to the wire and the pty.
    fn step(&mut self) -> io::Result<()> {
        let now = self.board.now();
        let stepped = {
            let mut state = self.board.lock();
            let take_output = state.output_goes_to(PTY_ENDPOINT);
            self.pump.step(now, &mut state, take_output)?
        };
        for line in stepped.trace {
            self.board.emit(ServerEvent::Trace(line));
        }
        self.write_ready()?;
        if stepped.disconnected {
            self.replug()?;
        }
        Ok(())
    }

    fn write_ready(&mut self) -> io::Result<()> {
        let ready = &mut self.pump.ready;
        while !ready.is_empty() {
            match (&self.port.master).write(ready) {
                Ok(written) => {
                    ready.drain(..written);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The client is gone; the hang-up is handled on the next wait.
                Err(error) if error.raw_os_error() == Some(libc::EIO) => {
                    ready.clear();
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Pulls the cable (closes the master), then plugs a new one in (a new pty).
    fn replug(&mut self) -> io::Result<()> {
        let port = Port::open()?;
        let path = port.slave_path.clone();
        // Replacing the port drops, and so closes, the old master: the client sees a hang-up.
        #[cfg(target_os = "linux")]
        {
            self.openers = Openers::watch(&port.slave_path)?;
        }
        self.port = port;
        self.in_session = false;
        self.pump.clear_inbound();
        self.pump.ready.clear();
        let now = self.board.now();
        self.board.lock().link.replug(now);
        self.board.release(PTY_ENDPOINT);
        *lock(&self.slave_path) = path.clone();
        self.board.emit(ServerEvent::Replugged(path));
        Ok(())
    }
}
