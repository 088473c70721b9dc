//! The Telnet COM-PORT-CONTROL option (RFC 2217) as a byte codec without I/O: what a
//! client sends goes in, the serial data for the chip, the replies for the client and
//! the port changes the client asked for come out.
//!
//! The server side of the protocol, as `esptool --port rfc2217://HOST:PORT` and other
//! pyserial clients use it:
//!
//! - **Option negotiation.** BINARY (0), SUPPRESS-GO-AHEAD (3) and COM-PORT-OPTION (44) are
//!   accepted in both directions; anything else is refused (WONT / DONT). A request for a
//!   state an option already has gets no answer, so two peers cannot loop.
//! - **Port settings.** SET-BAUDRATE, SET-DATASIZE, SET-PARITY and SET-STOPSIZE are kept and
//!   acknowledged with the value in force (a zero value asks for it without changing it).
//!   The baud rate is what the line model uses as the host's rate.
//! - **Control lines.** SET-CONTROL sets DTR and RTS (and BREAK and the flow-control
//!   settings, which are acknowledged and kept); each DTR or RTS change is reported, for the
//!   board's reset wiring.
//! - **Purge, modem state, flow control.** PURGE-DATA is reported and acknowledged;
//!   NOTIFY-MODEMSTATE from the client is a poll answered with the modem state (the board
//!   wires no modem inputs: CTS, DSR, RI and CD are all low), which is also sent once when
//!   the option is enabled; FLOWCONTROL-SUSPEND/RESUME pause the chip's output to the client.
//! - **Escaping.** 0xFF (IAC) in the data is doubled in both directions.
//!
//! A subnegotiation longer than [`MAX_SUBNEGOTIATION`] bytes is an error: the server drops
//! such a client rather than buffer without end.

use thiserror::Error;

/// Interpret As Command.
const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
/// Subnegotiation begin.
const SB: u8 = 250;
/// Subnegotiation end.
const SE: u8 = 240;

const OPTION_BINARY: u8 = 0;
const OPTION_SGA: u8 = 3;
/// RFC 2217's COM-PORT-OPTION.
const OPTION_COM_PORT: u8 = 44;

/// Client→server command codes; the server answers with the code plus 100.
const SIGNATURE: u8 = 0;
const SET_BAUDRATE: u8 = 1;
const SET_DATASIZE: u8 = 2;
const SET_PARITY: u8 = 3;
const SET_STOPSIZE: u8 = 4;
const SET_CONTROL: u8 = 5;
const NOTIFY_MODEMSTATE: u8 = 7;
const FLOWCONTROL_SUSPEND: u8 = 8;
const FLOWCONTROL_RESUME: u8 = 9;
const SET_LINESTATE_MASK: u8 = 10;
const SET_MODEMSTATE_MASK: u8 = 11;
const PURGE_DATA: u8 = 12;
const SERVER_OFFSET: u8 = 100;

/// Longest subnegotiation body accepted (the longest valid one, a signature, is far shorter).
pub const MAX_SUBNEGOTIATION: usize = 256;

/// What the server says it is when a client asks for its signature.
const SERVER_SIGNATURE: &[u8] = b"esp-emulator virtual ESP8266";

/// A client broke the protocol so that the server cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rfc2217Error {
    /// A subnegotiation ran past the limit without its IAC SE.
    #[error("a Telnet subnegotiation ran past {limit} bytes without ending")]
    SubnegotiationTooLong {
        /// The limit ([`MAX_SUBNEGOTIATION`]).
        limit: usize,
    },
}

/// Parity, as SET-PARITY codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit (code 1).
    None,
    /// Odd (2).
    Odd,
    /// Even (3).
    Even,
    /// Mark (4).
    Mark,
    /// Space (5).
    Space,
}

/// Stop bits, as SET-STOPSIZE codes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    /// One (code 1).
    One,
    /// Two (2).
    Two,
    /// One and a half (3).
    OnePointFive,
}

/// The serial settings the client has set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSettings {
    /// The baud rate; `None` until the client sets one.
    pub baud: Option<u32>,
    /// Data bits, 5 to 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
}

impl PortSettings {
    /// True for the framing the ESP8266's UART uses: 8 data bits, no parity, 1 stop bit.
    pub fn is_8n1(&self) -> bool {
        self.data_bits == 8 && self.parity == Parity::None && self.stop_bits == StopBits::One
    }
}

impl Default for PortSettings {
    fn default() -> Self {
        PortSettings {
            baud: None,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: StopBits::One,
        }
    }
}

/// The modem-control lines the client drives (true: asserted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlLines {
    /// Data Terminal Ready.
    pub dtr: bool,
    /// Request To Send.
    pub rts: bool,
}

/// A change the client asked for that the server must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortEvent {
    /// SET-BAUDRATE set a new rate.
    Baud(u32),
    /// DATASIZE, PARITY or STOPSIZE changed.
    Framing(PortSettings),
    /// DTR or RTS changed; the lines as they are now.
    Lines(ControlLines),
    /// PURGE-DATA: drop the chip's output not yet sent to the client (`received`) and/or
    /// the client's data not yet delivered to the chip (`transmit`).
    Purge {
        /// The server's receive buffer: chip→client.
        received: bool,
        /// The server's transmit buffer: client→chip.
        transmit: bool,
    },
}

/// Where the decoder is in the Telnet stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Negotiate(u8),
    Subnegotiation,
    SubnegotiationIac,
}

/// One client's RFC 2217 session (see the module docs).
#[derive(Debug)]
pub struct Rfc2217 {
    state: State,
    body: Vec<u8>,
    /// Options the server has enabled on its side (it sent WILL).
    local: [bool; 256],
    /// Options the client has enabled on its side (it sent WILL, the server DO).
    remote: [bool; 256],
    settings: PortSettings,
    lines: ControlLines,
    /// The client asked the server to stop sending it data.
    suspended: bool,
    linestate_mask: u8,
    modemstate_mask: u8,
}

impl Default for Rfc2217 {
    fn default() -> Self {
        Self::new()
    }
}

impl Rfc2217 {
    /// A session just connected: 8N1, no rate set, DTR and RTS not asserted.
    pub fn new() -> Rfc2217 {
        Rfc2217 {
            state: State::Data,
            body: Vec::new(),
            local: [false; 256],
            remote: [false; 256],
            settings: PortSettings::default(),
            lines: ControlLines::default(),
            suspended: false,
            linestate_mask: 0,
            modemstate_mask: 0xFF,
        }
    }

    /// The serial settings in force.
    pub fn settings(&self) -> PortSettings {
        self.settings
    }

    /// DTR and RTS as the client drives them.
    pub fn lines(&self) -> ControlLines {
        self.lines
    }

    /// True while the client has asked (FLOWCONTROL-SUSPEND) not to be sent data.
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    /// Decodes what the client sent: serial data to `data`, Telnet answers to `reply`,
    /// port changes to `events`. State carries over between calls, so any split works.
    pub fn decode(
        &mut self,
        input: &[u8],
        data: &mut Vec<u8>,
        reply: &mut Vec<u8>,
        events: &mut Vec<PortEvent>,
    ) -> Result<(), Rfc2217Error> {
        for &byte in input {
            self.state = match (self.state, byte) {
                (State::Data, IAC) => State::Iac,
                (State::Data, _) => {
                    data.push(byte);
                    State::Data
                }
                (State::Iac, IAC) => {
                    data.push(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Negotiate(byte),
                (State::Iac, SB) => {
                    self.body.clear();
                    State::Subnegotiation
                }
                // NOP, AYT, BRK and the other commands carry nothing the port needs.
                (State::Iac, _) => State::Data,
                (State::Negotiate(verb), option) => {
                    self.negotiate(verb, option, reply);
                    State::Data
                }
                (State::Subnegotiation, IAC) => State::SubnegotiationIac,
                (State::Subnegotiation, _) => {
                    self.push_body(byte)?;
                    State::Subnegotiation
                }
                (State::SubnegotiationIac, IAC) => {
                    self.push_body(IAC)?;
                    State::Subnegotiation
                }
                (State::SubnegotiationIac, SE) => {
                    let body = std::mem::take(&mut self.body);
                    self.subnegotiation(&body, reply, events);
                    self.body = body;
                    State::Data
                }
                // IAC followed by anything else inside a subnegotiation: RFC 854 leaves it
                // undefined; drop the subnegotiation and read on as data.
                (State::SubnegotiationIac, _) => State::Data,
            };
        }
        Ok(())
    }

    fn push_body(&mut self, byte: u8) -> Result<(), Rfc2217Error> {
        if self.body.len() >= MAX_SUBNEGOTIATION {
            return Err(Rfc2217Error::SubnegotiationTooLong {
                limit: MAX_SUBNEGOTIATION,
            });
        }
        self.body.push(byte);
        Ok(())
    }

    /// Appends `data` for the client with every IAC doubled.
    pub fn escape(data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 64);
        for &byte in data {
            out.push(byte);
            if byte == IAC {
                out.push(IAC);
            }
        }
    }

    fn negotiate(&mut self, verb: u8, option: u8, reply: &mut Vec<u8>) {
        let supported = matches!(option, OPTION_BINARY | OPTION_SGA | OPTION_COM_PORT);
        let index = usize::from(option);
        match verb {
            DO if supported => {
                if !self.local[index] {
                    self.local[index] = true;
                    reply.extend_from_slice(&[IAC, WILL, option]);
                    if option == OPTION_COM_PORT {
                        self.notify_modem_state(reply);
                    }
                }
            }
            DO => reply.extend_from_slice(&[IAC, WONT, option]),
            DONT => {
                if self.local[index] {
                    self.local[index] = false;
                    reply.extend_from_slice(&[IAC, WONT, option]);
                }
            }
            WILL if supported => {
                if !self.remote[index] {
                    self.remote[index] = true;
                    reply.extend_from_slice(&[IAC, DO, option]);
                }
            }
            WILL => reply.extend_from_slice(&[IAC, DONT, option]),
            _ => {
                if self.remote[index] {
                    self.remote[index] = false;
                    reply.extend_from_slice(&[IAC, DONT, option]);
                }
            }
        }
    }

    fn subnegotiation(&mut self, body: &[u8], reply: &mut Vec<u8>, events: &mut Vec<PortEvent>) {
        let [OPTION_COM_PORT, command, value @ ..] = body else {
            return;
        };
        let framing = self.framing();
        match *command {
            SIGNATURE if value.is_empty() => self.answer(SIGNATURE, SERVER_SIGNATURE, reply),
            // The client's own signature: nothing to answer.
            SIGNATURE => {}
            SET_BAUDRATE => {
                if let Ok(bytes) = <[u8; 4]>::try_from(value) {
                    let baud = u32::from_be_bytes(bytes);
                    if baud != 0 && self.settings.baud != Some(baud) {
                        self.settings.baud = Some(baud);
                        events.push(PortEvent::Baud(baud));
                    }
                }
                let current = self.settings.baud.unwrap_or(0).to_be_bytes();
                self.answer(SET_BAUDRATE, &current, reply);
            }
            SET_DATASIZE => {
                if let Some(&bits @ 5..=8) = value.first() {
                    self.settings.data_bits = bits;
                }
                self.answer(SET_DATASIZE, &[self.settings.data_bits], reply);
            }
            SET_PARITY => {
                let parity = match value.first() {
                    Some(1) => Some(Parity::None),
                    Some(2) => Some(Parity::Odd),
                    Some(3) => Some(Parity::Even),
                    Some(4) => Some(Parity::Mark),
                    Some(5) => Some(Parity::Space),
                    _ => None,
                };
                if let Some(parity) = parity {
                    self.settings.parity = parity;
                }
                let code = match self.settings.parity {
                    Parity::None => 1,
                    Parity::Odd => 2,
                    Parity::Even => 3,
                    Parity::Mark => 4,
                    Parity::Space => 5,
                };
                self.answer(SET_PARITY, &[code], reply);
            }
            SET_STOPSIZE => {
                match value.first() {
                    Some(1) => self.settings.stop_bits = StopBits::One,
                    Some(2) => self.settings.stop_bits = StopBits::Two,
                    Some(3) => self.settings.stop_bits = StopBits::OnePointFive,
                    _ => {}
                }
                let code = match self.settings.stop_bits {
                    StopBits::One => 1,
                    StopBits::Two => 2,
                    StopBits::OnePointFive => 3,
                };
                self.answer(SET_STOPSIZE, &[code], reply);
            }
            SET_CONTROL => {
                let Some(&request) = value.first() else {
                    return;
                };
                let before = self.lines;
                let answer = match request {
                    // Outbound flow control: asked for, none; set, acknowledged.
                    0 => 1,
                    // BREAK: asked for, off; set, acknowledged (the chip sees no break).
                    4 => 6,
                    7 => {
                        if self.lines.dtr {
                            8
                        } else {
                            9
                        }
                    }
                    8 | 9 => {
                        self.lines.dtr = request == 8;
                        request
                    }
                    10 => {
                        if self.lines.rts {
                            11
                        } else {
                            12
                        }
                    }
                    11 | 12 => {
                        self.lines.rts = request == 11;
                        request
                    }
                    // Inbound flow control: asked for, none.
                    13 => 14,
                    other => other,
                };
                self.answer(SET_CONTROL, &[answer], reply);
                if self.lines != before {
                    events.push(PortEvent::Lines(self.lines));
                }
            }
            NOTIFY_MODEMSTATE => self.notify_modem_state(reply),
            FLOWCONTROL_SUSPEND => self.suspended = true,
            FLOWCONTROL_RESUME => self.suspended = false,
            SET_LINESTATE_MASK => {
                self.linestate_mask = value.first().copied().unwrap_or(0);
                self.answer(SET_LINESTATE_MASK, &[self.linestate_mask], reply);
            }
            SET_MODEMSTATE_MASK => {
                self.modemstate_mask = value.first().copied().unwrap_or(0);
                self.answer(SET_MODEMSTATE_MASK, &[self.modemstate_mask], reply);
            }
            PURGE_DATA => {
                let Some(&which @ 1..=3) = value.first() else {
                    return;
                };
                events.push(PortEvent::Purge {
                    received: which & 1 != 0,
                    transmit: which & 2 != 0,
                });
                self.answer(PURGE_DATA, &[which], reply);
            }
            _ => {}
        }
        if self.framing() != framing {
            events.push(PortEvent::Framing(self.settings));
        }
    }

    fn framing(&self) -> (u8, Parity, StopBits) {
        (
            self.settings.data_bits,
            self.settings.parity,
            self.settings.stop_bits,
        )
    }

    /// Sends NOTIFY-MODEMSTATE: no modem input is wired, so every line reads low (and no
    /// bit the mask could hide is set).
    fn notify_modem_state(&self, reply: &mut Vec<u8>) {
        self.answer(NOTIFY_MODEMSTATE, &[0x00], reply);
    }

    fn answer(&self, command: u8, value: &[u8], reply: &mut Vec<u8>) {
        reply.extend_from_slice(&[IAC, SB, OPTION_COM_PORT, command + SERVER_OFFSET]);
        Self::escape(value, reply);
        reply.extend_from_slice(&[IAC, SE]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(session: &mut Rfc2217, input: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<PortEvent>) {
        let (mut data, mut reply, mut events) = (Vec::new(), Vec::new(), Vec::new());
        session
            .decode(input, &mut data, &mut reply, &mut events)
            .unwrap();
        (data, reply, events)
    }

    #[test]
    fn supported_options_are_accepted_once_and_others_refused() {
        let mut session = Rfc2217::new();
        let (_, reply, _) = decode(
            &mut session,
            &[IAC, WILL, OPTION_COM_PORT, IAC, DO, OPTION_SGA, IAC, DO, 1],
        );
        assert_eq!(
            reply,
            [
                IAC,
                DO,
                OPTION_COM_PORT,
                IAC,
                WILL,
                OPTION_SGA,
                IAC,
                WONT,
                1
            ]
        );
        // Asking again for a state already in force gets no answer: no negotiation loop.
        let (_, reply, _) = decode(&mut session, &[IAC, WILL, OPTION_COM_PORT]);
        assert!(reply.is_empty());
        let (_, reply, _) = decode(&mut session, &[IAC, WONT, OPTION_COM_PORT]);
        assert_eq!(reply, [IAC, DONT, OPTION_COM_PORT]);
    }

    #[test]
    fn enabling_the_com_port_option_sends_the_modem_state() {
        let mut session = Rfc2217::new();
        let (_, reply, _) = decode(&mut session, &[IAC, DO, OPTION_COM_PORT]);
        assert_eq!(
            reply,
            [
                IAC,
                WILL,
                OPTION_COM_PORT,
                IAC,
                SB,
                OPTION_COM_PORT,
                107,
                0,
                IAC,
                SE
            ]
        );
    }

    #[test]
    fn iac_is_doubled_both_ways_and_data_survives_any_split() {
        let payload = [0xC0, IAC, 0x01, IAC, IAC, 0xC0];
        let mut escaped = Vec::new();
        Rfc2217::escape(&payload, &mut escaped);
        assert_eq!(escaped.len(), payload.len() + 3);
        for split in 0..=escaped.len() {
            let mut session = Rfc2217::new();
            let (mut data, _, _) = decode(&mut session, &escaped[..split]);
            data.extend(decode(&mut session, &escaped[split..]).0);
            assert_eq!(data, payload, "split at {split}");
        }
    }

    #[test]
    fn baud_rate_is_set_reported_and_acknowledged() {
        let mut session = Rfc2217::new();
        let mut request = vec![IAC, SB, OPTION_COM_PORT, SET_BAUDRATE];
        request.extend_from_slice(&921_600u32.to_be_bytes());
        request.extend_from_slice(&[IAC, SE]);
        let (data, reply, events) = decode(&mut session, &request);
        assert!(data.is_empty());
        assert_eq!(events, [PortEvent::Baud(921_600)]);
        let mut expected = vec![IAC, SB, OPTION_COM_PORT, 101];
        expected.extend_from_slice(&921_600u32.to_be_bytes());
        expected.extend_from_slice(&[IAC, SE]);
        assert_eq!(reply, expected);
        // A query (rate 0) changes nothing and answers the rate in force.
        let (_, reply, events) = decode(
            &mut session,
            &[IAC, SB, OPTION_COM_PORT, SET_BAUDRATE, 0, 0, 0, 0, IAC, SE],
        );
        assert!(events.is_empty());
        assert_eq!(reply, expected);
    }

    #[test]
    fn a_rate_with_an_iac_byte_is_unescaped() {
        // 0x0001_C2FF: the last byte is IAC, doubled on the wire.
        let mut session = Rfc2217::new();
        let request = [
            IAC,
            SB,
            OPTION_COM_PORT,
            SET_BAUDRATE,
            0,
            1,
            0xC2,
            IAC,
            IAC,
            IAC,
            SE,
        ];
        let (_, reply, events) = decode(&mut session, &request);
        assert_eq!(events, [PortEvent::Baud(0x0001_C2FF)]);
        assert_eq!(&reply[4..9], [0, 1, 0xC2, IAC, IAC]);
    }

    #[test]
    fn dtr_and_rts_changes_are_reported_and_echoed() {
        let mut session = Rfc2217::new();
        let set = |value| [IAC, SB, OPTION_COM_PORT, SET_CONTROL, value, IAC, SE];
        let (_, reply, events) = decode(&mut session, &set(8));
        assert_eq!(reply, [IAC, SB, OPTION_COM_PORT, 105, 8, IAC, SE]);
        assert_eq!(
            events,
            [PortEvent::Lines(ControlLines {
                dtr: true,
                rts: false
            })]
        );
        let (_, _, events) = decode(&mut session, &set(11));
        assert_eq!(
            events,
            [PortEvent::Lines(ControlLines {
                dtr: true,
                rts: true
            })]
        );
        // Setting a line to the state it has is acknowledged but changes nothing.
        let (_, reply, events) = decode(&mut session, &set(11));
        assert_eq!(reply, [IAC, SB, OPTION_COM_PORT, 105, 11, IAC, SE]);
        assert!(events.is_empty());
        let (_, reply, _) = decode(&mut session, &set(7));
        assert_eq!(reply[4], 8, "DTR reads as on");
    }

    #[test]
    fn framing_and_purge_are_reported() {
        let mut session = Rfc2217::new();
        let (_, reply, events) = decode(
            &mut session,
            &[IAC, SB, OPTION_COM_PORT, SET_PARITY, 3, IAC, SE],
        );
        assert_eq!(reply, [IAC, SB, OPTION_COM_PORT, 103, 3, IAC, SE]);
        assert!(matches!(events[..], [PortEvent::Framing(settings)] if !settings.is_8n1()));
        let (_, reply, events) = decode(
            &mut session,
            &[IAC, SB, OPTION_COM_PORT, PURGE_DATA, 1, IAC, SE],
        );
        assert_eq!(reply, [IAC, SB, OPTION_COM_PORT, 112, 1, IAC, SE]);
        assert_eq!(
            events,
            [PortEvent::Purge {
                received: true,
                transmit: false
            }]
        );
    }

    #[test]
    fn regression_a_subnegotiation_that_never_ends_grows_without_bound() {
        let mut session = Rfc2217::new();
        let mut input = vec![IAC, SB, OPTION_COM_PORT];
        input.extend(std::iter::repeat_n(b'x', 10_000));
        let error = session
            .decode(&input, &mut Vec::new(), &mut Vec::new(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(
            error,
            Rfc2217Error::SubnegotiationTooLong {
                limit: MAX_SUBNEGOTIATION
            }
        );
        assert!(session.body.capacity() <= 2 * MAX_SUBNEGOTIATION);
    }

    #[test]
    fn flow_control_suspend_and_resume() {
        let mut session = Rfc2217::new();
        decode(
            &mut session,
            &[IAC, SB, OPTION_COM_PORT, FLOWCONTROL_SUSPEND, IAC, SE],
        );
        assert!(session.suspended());
        decode(
            &mut session,
            &[IAC, SB, OPTION_COM_PORT, FLOWCONTROL_RESUME, IAC, SE],
        );
        assert!(!session.suspended());
    }
}
