//! SLIP framing (RFC 1055 as the ESP loaders use it): every frame starts and
//! ends with 0xC0; 0xC0 and 0xDB inside a frame are escaped as DB DC / DB DD.
//!
//! The decoder is incremental: feed it chunks of any size and it yields the
//! same events whatever the chunking. Bytes outside frames (a boot log, line
//! noise) are not errors: they come out as [`SlipEvent::Garbage`] so a client
//! can say what it saw, as esptool's "Invalid head of packet" does.

/// Frame delimiter.
pub const END: u8 = 0xC0;
/// Escape byte.
pub const ESC: u8 = 0xDB;
/// Escaped form of [`END`] (after [`ESC`]).
pub const ESC_END: u8 = 0xDC;
/// Escaped form of [`ESC`] (after [`ESC`]).
pub const ESC_ESC: u8 = 0xDD;

/// Longest frame the decoder accepts: a 0x4000-byte flash block plus headers,
/// with room to spare. Anything longer is line noise without delimiters.
pub const MAX_FRAME_LEN: usize = 0x10000;

/// Garbage is reported in pieces of at most this many bytes, so a device that
/// prints forever never makes the decoder grow without bound.
pub const MAX_GARBAGE_CHUNK: usize = 1024;

/// Appends `payload` to `out` as one SLIP frame.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + payload.len() / 64 + 2);
    out.push(END);
    let mut rest = payload;
    // Copy runs without special bytes in one go; escape the special ones.
    while let Some(pos) = rest.iter().position(|&b| b == END || b == ESC) {
        out.extend_from_slice(&rest[..pos]);
        out.push(ESC);
        out.push(if rest[pos] == END { ESC_END } else { ESC_ESC });
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    out.push(END);
}

/// Returns `payload` encoded as one SLIP frame.
pub fn encode_to_vec(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(payload, &mut out);
    out
}

/// Why a frame was thrown away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// 0xDB followed by something other than 0xDC or 0xDD.
    #[error("invalid SLIP escape 0xdb 0x{0:02x}")]
    InvalidEscape(u8),
    /// No closing 0xC0 within [`MAX_FRAME_LEN`] bytes.
    #[error("SLIP frame longer than {MAX_FRAME_LEN} bytes")]
    TooLong,
}

/// What the decoder found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlipEvent {
    /// A complete, unescaped frame.
    Frame(Vec<u8>),
    /// Bytes between frames.
    Garbage(Vec<u8>),
    /// A frame that could not be decoded; the bytes up to the next 0xC0 are dropped.
    Malformed(FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Inside a frame.
    InFrame,
    /// Inside a frame, right after 0xDB.
    Escaped,
    /// After a malformed frame, waiting for the 0xC0 that ends it.
    Discarding,
}

/// Incremental SLIP decoder.
#[derive(Debug, Clone)]
pub struct SlipDecoder {
    state: State,
    frame: Vec<u8>,
    garbage: Vec<u8>,
}

impl Default for SlipDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SlipDecoder {
    /// A decoder waiting for the first frame.
    pub fn new() -> Self {
        SlipDecoder {
            state: State::Idle,
            frame: Vec::new(),
            garbage: Vec::new(),
        }
    }

    /// Decodes `input`, appending what it completes to `events`.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<SlipEvent>) {
        let mut rest = input;
        while !rest.is_empty() {
            let consumed = match self.state {
                State::InFrame => self.copy_frame_run(rest, events),
                _ => {
                    self.step(rest[0], events);
                    1
                }
            };
            rest = &rest[consumed..];
        }
    }

    /// Decodes `input` and returns the events it completes.
    pub fn feed_to_vec(&mut self, input: &[u8]) -> Vec<SlipEvent> {
        let mut events = Vec::new();
        self.feed(input, &mut events);
        events
    }

    /// Bytes seen outside frames and not yet reported (reported when the next
    /// frame starts or the piece grows to [`MAX_GARBAGE_CHUNK`]).
    pub fn pending_garbage(&self) -> &[u8] {
        &self.garbage
    }

    /// True when the decoder is in the middle of a frame.
    pub fn in_frame(&self) -> bool {
        matches!(self.state, State::InFrame | State::Escaped)
    }

    /// Forgets any partial frame and pending garbage (after a reset of the line).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Fast path inside a frame: copies the run of plain bytes, then handles
    /// the special byte that ends it. Returns how many bytes were consumed.
    fn copy_frame_run(&mut self, input: &[u8], events: &mut Vec<SlipEvent>) -> usize {
        let run = input
            .iter()
            .position(|&b| b == END || b == ESC)
            .unwrap_or(input.len());
        let room = MAX_FRAME_LEN - self.frame.len();
        if run > room {
            self.fail(FrameError::TooLong, events);
            return room + 1;
        }
        self.frame.extend_from_slice(&input[..run]);
        if run < input.len() {
            self.step(input[run], events);
            run + 1
        } else {
            run
        }
    }

    fn step(&mut self, byte: u8, events: &mut Vec<SlipEvent>) {
        match (self.state, byte) {
            (State::Idle, END) => {
                self.flush_garbage(events);
                self.state = State::InFrame;
            }
            (State::Idle, _) => {
                self.garbage.push(byte);
                if self.garbage.len() >= MAX_GARBAGE_CHUNK {
                    self.flush_garbage(events);
                }
            }
            // Back-to-back delimiters: an empty frame is just another start.
            (State::InFrame, END) if self.frame.is_empty() => {}
            (State::InFrame, END) => {
                events.push(SlipEvent::Frame(std::mem::take(&mut self.frame)));
                self.state = State::Idle;
            }
            (State::InFrame, ESC) => self.state = State::Escaped,
            (State::InFrame, _) => self.push_frame_byte(byte, events),
            (State::Escaped, ESC_END) => {
                self.state = State::InFrame;
                self.push_frame_byte(END, events);
            }
            (State::Escaped, ESC_ESC) => {
                self.state = State::InFrame;
                self.push_frame_byte(ESC, events);
            }
            (State::Escaped, other) => {
                self.fail(FrameError::InvalidEscape(other), events);
                // The delimiter that follows a bad escape closes the bad frame.
                if other == END {
                    self.state = State::Idle;
                }
            }
            (State::Discarding, END) => self.state = State::Idle,
            (State::Discarding, _) => {}
        }
    }

    fn push_frame_byte(&mut self, byte: u8, events: &mut Vec<SlipEvent>) {
        if self.frame.len() >= MAX_FRAME_LEN {
            self.fail(FrameError::TooLong, events);
        } else {
            self.frame.push(byte);
        }
    }

    fn fail(&mut self, error: FrameError, events: &mut Vec<SlipEvent>) {
        self.frame.clear();
        self.state = State::Discarding;
        events.push(SlipEvent::Malformed(error));
    }

    fn flush_garbage(&mut self, events: &mut Vec<SlipEvent>) {
        if !self.garbage.is_empty() {
            events.push(SlipEvent::Garbage(std::mem::take(&mut self.garbage)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(events: Vec<SlipEvent>) -> Vec<Vec<u8>> {
        events
            .into_iter()
            .filter_map(|e| match e {
                SlipEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn encodes_special_bytes_as_escapes() {
        assert_eq!(
            encode_to_vec(&[0x01, 0xC0, 0x02, 0xDB, 0x03]),
            vec![0xC0, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xC0]
        );
        assert_eq!(encode_to_vec(&[]), vec![0xC0, 0xC0]);
    }

    #[test]
    fn decodes_escapes() {
        let mut decoder = SlipDecoder::new();
        let events = decoder.feed_to_vec(&[0xC0, 0x01, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0]);
        assert_eq!(events, vec![SlipEvent::Frame(vec![0x01, 0xC0, 0xDB])]);
    }

    #[test]
    fn boot_log_before_a_frame_is_reported_as_garbage() {
        let mut decoder = SlipDecoder::new();
        let mut input = b"ets Jan  8 2013,rst cause:2\r\n".to_vec();
        input.extend_from_slice(&[0xC0, 0x01, 0x08, 0xC0]);
        let events = decoder.feed_to_vec(&input);
        assert_eq!(
            events,
            vec![
                SlipEvent::Garbage(b"ets Jan  8 2013,rst cause:2\r\n".to_vec()),
                SlipEvent::Frame(vec![0x01, 0x08]),
            ]
        );
    }

    #[test]
    fn invalid_escape_drops_the_frame_and_recovers() {
        let mut decoder = SlipDecoder::new();
        let events = decoder.feed_to_vec(&[0xC0, 0x01, 0xDB, 0x05, 0x02, 0xC0, 0xC0, 0x07, 0xC0]);
        assert_eq!(
            events,
            vec![
                SlipEvent::Malformed(FrameError::InvalidEscape(0x05)),
                SlipEvent::Frame(vec![0x07]),
            ]
        );
    }

    #[test]
    fn overlong_frame_is_rejected_without_growing_forever() {
        let mut decoder = SlipDecoder::new();
        let mut input = vec![0xC0];
        input.extend(std::iter::repeat_n(0x11, MAX_FRAME_LEN + 10));
        input.extend_from_slice(&[0xC0, 0xC0, 0x22, 0xC0]);
        let events = decoder.feed_to_vec(&input);
        assert_eq!(events[0], SlipEvent::Malformed(FrameError::TooLong));
        assert_eq!(frames(events), vec![vec![0x22]]);
    }

    #[test]
    fn garbage_is_reported_in_bounded_pieces() {
        let mut decoder = SlipDecoder::new();
        let events = decoder.feed_to_vec(&vec![b'x'; MAX_GARBAGE_CHUNK * 2 + 5]);
        assert_eq!(events.len(), 2);
        assert_eq!(decoder.pending_garbage().len(), 5);
    }
}
