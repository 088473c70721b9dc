//! Network endpoints for the virtual chip: a raw TCP byte stream (`tcp://HOST:PORT`, for
//! esptool's `--port socket://HOST:PORT`) and a Telnet COM-PORT-CONTROL server
//! (`rfc2217://HOST:PORT`, for `--port rfc2217://HOST:PORT`; see [`crate::rfc2217`]). Built
//! on `std::net` alone, so they work on every OS.
//!
//! Each [`Listener`] serves one client at a time on a [`Board`] it shares with the board's
//! other front ends:
//!
//! - **One client.** A client that connects while another has the endpoint, or while a
//!   client on another endpoint has the chip, is told why in one line of text and
//!   disconnected. A client that has sent nothing for [`ListenOptions::silent_limit`] when
//!   another one connects is dropped for it, so a client that connects and says nothing
//!   cannot keep the port.
//! - **Bad clients.** A client that stops reading while the chip has output for it is
//!   dropped after [`ListenOptions::stall_limit`]; an RFC 2217 client that breaks the
//!   protocol (a subnegotiation without end) at once. What a session buffers is bounded
//!   (a few times 64 KB), and the accept loop never waits on a client. Every drop and
//!   refusal is reported as a [`ServerEvent`].
//! - **No reset on close.** The chip goes on with what it was doing when a client leaves;
//!   on an RFC 2217 endpoint the client's DTR and RTS go inactive, as a port's do when it
//!   is closed, and the board's reset wiring decides what that does.
//! - **Realtime.** Bytes are paced as on the pty ([`crate::board`]); the host's rate is the
//!   one an RFC 2217 client set, and on a raw TCP endpoint (which has no rate) the chip's.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::board::{Board, Pump, ServerEvent, READ_CHUNK};
use crate::rfc2217::{ControlLines, PortEvent, Rfc2217};

/// Escaped output a session holds for a slow client before it stops taking the chip's.
const OUTGOING_LIMIT: usize = 64 * 1024;
/// How long one write to a client may block before the session looks at its input again.
const WRITE_WAIT: Duration = Duration::from_millis(20);
/// Pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// Chunks read from a client that may wait for the session.
const INPUT_QUEUE: usize = 8;

/// What an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A raw byte stream: no baud rate, no control lines.
    Tcp,
    /// Telnet with RFC 2217's COM-PORT-CONTROL option.
    Rfc2217,
}

impl Protocol {
    fn scheme(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Rfc2217 => "rfc2217",
        }
    }
}

/// Where and how to listen: `tcp://HOST:PORT` or `rfc2217://HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// What it speaks.
    pub protocol: Protocol,
    /// The address to bind (port 0: any free port).
    pub address: SocketAddr,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.protocol.scheme(), self.address)
    }
}

/// An endpoint URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// The scheme is not one the emulator serves.
    #[error("'{url}' is no endpoint: use tcp://HOST:PORT or rfc2217://HOST:PORT, e.g. rfc2217://127.0.0.1:4000")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// HOST:PORT does not name an address.
    #[error("'{url}': '{address}' is not HOST:PORT with a port number, e.g. 127.0.0.1:4000")]
    Address {
        /// The URL as given.
        url: String,
        /// The part after the scheme.
        address: String,
    },
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (protocol, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
            (Protocol::Tcp, rest)
        } else if let Some(rest) = url.strip_prefix("rfc2217://") {
            (Protocol::Rfc2217, rest)
        } else {
            return Err(EndpointError::Scheme {
                url: url.to_owned(),
            });
        };
        let bad = || EndpointError::Address {
            url: url.to_owned(),
            address: rest.to_owned(),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // No host: the loopback address, as when none is given on the command line.
        let with_host = match rest.strip_prefix(':') {
            Some(port) => format!("127.0.0.1:{port}"),
            None => rest.to_owned(),
        };
        let address = with_host
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Endpoint { protocol, address })
    }
}

/// An endpoint that could not be opened.
#[derive(Debug, Error)]
pub enum ListenError {
    /// Another program listens there.
    #[error("{endpoint}: the address is already in use; stop the program listening there or choose another port")]
    InUse {
        /// The endpoint asked for.
        endpoint: Endpoint,
    },
    /// Any other failure to bind or listen.
    #[error("{endpoint}: cannot listen: {source}")]
    Bind {
        /// The endpoint asked for.
        endpoint: Endpoint,
        /// What the OS said.
        source: io::Error,
    },
}

/// How a [`Listener`] treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// A client that has sent nothing for this long is dropped when another one connects.
    pub silent_limit: Duration,
    /// A client that takes none of the chip's output for this long is dropped.
    pub stall_limit: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            silent_limit: Duration::from_secs(3),
            stall_limit: Duration::from_secs(5),
        }
    }
}

/// A network endpoint serving a [`Board`]'s chip on a background thread.
pub struct Listener {
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Binds `endpoint` and starts accepting clients for `board`.
    pub fn start(
        board: Arc<Board>,
        endpoint: Endpoint,
        options: ListenOptions,
    ) -> Result<Listener, ListenError> {
        let listener = TcpListener::bind(endpoint.address).map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ListenError::InUse { endpoint }
            } else {
                ListenError::Bind { endpoint, source }
            }
        })?;
        let bound = Endpoint {
            protocol: endpoint.protocol,
            address: listener
                .local_addr()
                .map_err(|source| ListenError::Bind { endpoint, source })?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = Acceptor {
            board,
            endpoint: bound,
            name: bound.to_string(),
            options,
            stop: Arc::clone(&stop),
            current: None,
        };
        let thread = thread::Builder::new()
            .name(format!("esp-emulator-{}", bound.protocol.scheme()))
            .spawn(move || acceptor.run(listener))
            .map_err(|source| ListenError::Bind { endpoint, source })?;
        Ok(Listener {
            endpoint: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The endpoint as bound: the real port when port 0 was asked for.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Drops the client, if any, and stops listening.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.endpoint.address;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = thread.join();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The accept loop's state.
struct Acceptor {
    board: Arc<Board>,
    endpoint: Endpoint,
    name: String,
    options: ListenOptions,
    stop: Arc<AtomicBool>,
    current: Option<Session>,
}

/// The client being served and how to reach its thread.
struct Session {
    peer: SocketAddr,
    control: Arc<SessionControl>,
    thread: JoinHandle<()>,
}

/// What the accept loop and a session thread share.
struct SessionControl {
    /// The socket, to shut it down and so end the session.
    stream: TcpStream,
    /// When the client last sent a byte (or connected).
    last_heard: Mutex<Instant>,
    /// Why the server ended the session, if it did.
    dropped: Mutex<Option<String>>,
}

impl SessionControl {
    fn drop_client(&self, reason: String) {
        let mut dropped = self.dropped.lock().unwrap_or_else(PoisonError::into_inner);
        dropped.get_or_insert(reason);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn silent_for(&self) -> Duration {
        self.last_heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

impl Acceptor {
    fn run(mut self, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else {
                // A connection reset before it was accepted, or out of descriptors: the
                // next accept may well succeed; a short pause keeps a lasting failure
                // from spinning a core.
                thread::sleep(ACCEPT_RETRY);
                continue;
            };
            self.accept(stream);
        }
        if let Some(session) = self.current.take() {
            session
                .control
                .drop_client("the emulator is stopping".into());
            let _ = session.thread.join();
        }
    }

    fn accept(&mut self, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        if self
            .current
            .as_ref()
            .is_some_and(|session| session.thread.is_finished())
        {
            let session = self.current.take().expect("checked above");
            let _ = session.thread.join();
        }
        if let Some(session) = &self.current {
            let silent = session.control.silent_for();
            if silent < self.options.silent_limit {
                let reason = format!(
                    "{} is in use by {} (one client at a time); close that client first",
                    self.name, session.peer
                );
                self.refuse(stream, peer, reason);
                return;
            }
            session.control.drop_client(format!(
                "it sent nothing for {:.1} s and {peer} was waiting",
                silent.as_secs_f64()
            ));
            let session = self.current.take().expect("checked above");
            let _ = session.thread.join();
        }
        if let Err(owner) = self.board.claim(&self.name) {
            let reason = format!(
                "the chip is in use by the client on {owner} (one client at a time); close that client first"
            );
            self.refuse(stream, peer, reason);
            return;
        }
        match self.start_session(stream, peer) {
            Ok(session) => {
                self.board.emit(ServerEvent::ClientConnected {
                    endpoint: self.name.clone(),
                    peer: peer.to_string(),
                });
                self.current = Some(session);
            }
            Err(error) => {
                self.board.release(&self.name);
                self.board.emit(ServerEvent::ClientGone {
                    endpoint: self.name.clone(),
                    peer: peer.to_string(),
                    reason: format!("cannot serve it: {error}"),
                    dropped: true,
                });
            }
        }
    }

    /// Tells the client why in one line, without waiting for it, and hangs up.
    fn refuse(&self, mut stream: TcpStream, peer: SocketAddr, reason: String) {
        let _ = stream.set_nonblocking(true);
        let _ = stream.write(format!("esp-emulator: {reason}\r\n").as_bytes());
        let _ = stream.shutdown(Shutdown::Both);
        self.board.emit(ServerEvent::ClientRefused {
            endpoint: self.name.clone(),
            peer: peer.to_string(),
            reason,
        });
    }

    fn start_session(&self, stream: TcpStream, peer: SocketAddr) -> io::Result<Session> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_WAIT))?;
        let control = Arc::new(SessionControl {
            stream: stream.try_clone()?,
            last_heard: Mutex::new(Instant::now()),
            dropped: Mutex::new(None),
        });
        let reader = stream.try_clone()?;
        let (sender, input) = mpsc::sync_channel(INPUT_QUEUE);
        thread::Builder::new()
            .name("esp-emulator-client-reader".into())
            .spawn(move || read_client(reader, sender))?;
        let serving = Serving {
            board: Arc::clone(&self.board),
            name: self.name.clone(),
            peer,
            stream,
            input,
            control: Arc::clone(&control),
            pump: Pump::new(self.board.realtime()),
            telnet: (self.endpoint.protocol == Protocol::Rfc2217).then(Rfc2217::new),
            outgoing: Vec::new(),
            stall_limit: self.options.stall_limit,
        };
        let thread = thread::Builder::new()
            .name("esp-emulator-client".into())
            .spawn(move || serving.run())?;
        Ok(Session {
            peer,
            control,
            thread,
        })
    }
}

/// What the reader thread passes on.
enum Input {
    Bytes(Vec<u8>),
    Closed(Option<io::Error>),
}

/// Reads the client into a bounded queue: when the session falls behind, the reader waits,
/// the socket's buffers fill and the client's writes block, as on a busy serial line.
fn read_client(mut stream: TcpStream, sender: SyncSender<Input>) {
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        let message = match stream.read(&mut buffer) {
            Ok(0) => Input::Closed(None),
            Ok(count) => Input::Bytes(buffer[..count].to_vec()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Input::Closed(Some(error)),
        };
        let closed = matches!(message, Input::Closed(_));
        if sender.send(message).is_err() || closed {
            return;
        }
    }
}

/// One client's session thread.
struct Serving {
    board: Arc<Board>,
    name: String,
    peer: SocketAddr,
    stream: TcpStream,
    input: Receiver<Input>,
    control: Arc<SessionControl>,
    pump: Pump,
    /// The RFC 2217 session on an `rfc2217://` endpoint.
    telnet: Option<Rfc2217>,
    /// Bytes for the client: Telnet answers and (escaped) chip output.
    outgoing: Vec<u8>,
    stall_limit: Duration,
}

impl Serving {
    fn run(mut self) {
        let ended = self.serve();
        // The port closes: the client's lines go inactive; the wiring decides the rest.
        if self
            .telnet
            .as_ref()
            .is_some_and(|telnet| telnet.lines() != ControlLines::default())
        {
            let now = self.board.now();
            self.board
                .lock()
                .link
                .set_control_lines(now, ControlLines::default());
        }
        // What was already answered (the refusals before a protocol error) still goes out.
        if !self.outgoing.is_empty() {
            let _ = self.stream.write_all(&self.outgoing);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        self.board.release(&self.name);
        let dropped = self
            .control
            .dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (reason, dropped) = match (dropped, ended) {
            (Some(reason), _) => (reason, true),
            (None, Ok(())) => ("closed the connection".to_owned(), false),
            (None, Err(reason)) => (reason, true),
        };
        self.board.emit(ServerEvent::ClientGone {
            endpoint: self.name.clone(),
            peer: self.peer.to_string(),
            reason,
            dropped,
        });
    }

    /// Serves until the client leaves (`Ok`) or must be dropped (`Err` with the reason).
    fn serve(&mut self) -> Result<(), String> {
        // A new client's port starts 8N1, whatever the last client set.
        self.board
            .lock()
            .link
            .set_host_framing(crate::link::Framing::EIGHT_N_ONE);
        let mut last_progress = Instant::now();
        loop {
            let now = self.board.now();
            let wait = if self.outgoing.is_empty() {
                // Rounded up to whole milliseconds, as on the pty: a wake-up for every byte
                // on the wire would send one TCP segment per byte; the pump releases every
                // byte that is due when it wakes, so the line rate is unaffected.
                let suspended = self.telnet.as_ref().is_some_and(Rfc2217::suspended);
                let state = self.board.lock();
                let takes_output = !suspended && state.output_goes_to(&self.name);
                let due = self.pump.timeout(now, &state.link, takes_output);
                drop(state);
                Duration::from_millis(due.as_micros().div_ceil(1000) as u64)
            } else {
                Duration::ZERO
            };
            if self.pump.input_room() > 0 {
                let first = match self.input.recv_timeout(wait) {
                    Ok(input) => Some(input),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                };
                let mut next = first;
                while let Some(input) = next.take() {
                    match input {
                        Input::Bytes(bytes) => self.client_bytes(&bytes)?,
                        Input::Closed(None) => return Ok(()),
                        Input::Closed(Some(error)) => {
                            return Err(format!("the connection failed: {error}"))
                        }
                    }
                    if self.pump.input_room() > 0 {
                        next = match self.input.try_recv() {
                            Ok(input) => Some(input),
                            Err(TryRecvError::Empty) => None,
                            Err(TryRecvError::Disconnected) => return Ok(()),
                        };
                    }
                }
            } else if !wait.is_zero() {
                // Realtime, with the line full: the next byte is due after `wait`.
                thread::sleep(wait);
            }
            self.step()?;
            if self.outgoing.is_empty() {
                last_progress = Instant::now();
                continue;
            }
            match self.stream.write(&self.outgoing) {
                Ok(0) => return Ok(()),
                Ok(written) => {
                    self.outgoing.drain(..written);
                    last_progress = Instant::now();
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if last_progress.elapsed() >= self.stall_limit {
                        return Err(format!(
                            "it read none of the chip's output for {:.1} s ({} bytes waiting)",
                            last_progress.elapsed().as_secs_f64(),
                            self.outgoing.len() + self.pump.ready.len()
                        ));
                    }
                }
                Err(_) => return Ok(()),
            }
        }
    }

    /// What the client sent: Telnet decoded on an RFC 2217 endpoint, data to the line.
    fn client_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        *self
            .control
            .last_heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let now = self.board.now();
        let Some(telnet) = self.telnet.as_mut() else {
            let mut state = self.board.lock();
            self.pump.take_input(now, bytes, None, &mut state.link);
            return Ok(());
        };
        let (mut data, mut events) = (Vec::new(), Vec::new());
        let decoded = telnet.decode(bytes, &mut data, &mut self.outgoing, &mut events);
        let host_baud = telnet.settings().baud;
        let mut state = self.board.lock();
        for event in events {
            match event {
                PortEvent::Baud(baud) => state.link.set_host_baud(baud),
                PortEvent::Lines(lines) => state.link.set_control_lines(now, lines),
                PortEvent::Purge { received, transmit } => {
                    if received {
                        self.pump.clear_outbound();
                    }
                    if transmit {
                        self.pump.clear_inbound();
                    }
                }
                PortEvent::Framing(settings) => state.link.set_host_framing(settings.into()),
            }
        }
        if !data.is_empty() {
            self.pump.take_input(now, &data, host_baud, &mut state.link);
        }
        decoded.map_err(|error| format!("it broke the RFC 2217 protocol: {error}"))
    }

    /// Steps the line and moves what is ready into `outgoing`, escaped for Telnet.
    fn step(&mut self) -> Result<(), String> {
        let now = self.board.now();
        let suspended = self
            .telnet
            .as_ref()
            .is_some_and(|telnet| telnet.suspended());
        let stepped = {
            let mut state = self.board.lock();
            let take_output = !suspended && state.output_goes_to(&self.name);
            self.pump
                .step(now, &mut state, take_output)
                .map_err(|error| format!("the flash could not be saved: {error}"))?
        };
        for line in stepped.trace {
            self.board.emit(ServerEvent::Trace(line));
        }
        if stepped.disconnected {
            // The cable was pulled (a disconnect fault): the client loses the port, the chip
            // powers up again for the next one.
            let now = self.board.now();
            self.board.lock().link.replug(now);
            return Err("the cable was pulled (disconnect fault)".into());
        }
        if self.outgoing.len() < OUTGOING_LIMIT && !suspended && !self.pump.ready.is_empty() {
            match &self.telnet {
                Some(_) => Rfc2217::escape(&self.pump.ready, &mut self.outgoing),
                None => self.outgoing.extend_from_slice(&self.pump.ready),
            }
            self.pump.ready.clear();
        }
        Ok(())
    }
}
