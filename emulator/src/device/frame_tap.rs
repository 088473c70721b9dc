//! Device faults for code the chip executes.
//!
//! When the CPU runs an uploaded stub, the replies come from the stub's own
//! code, not from the model in `stub.rs`. The faults of [`DeviceFaults`] keep
//! their meaning by watching the SLIP frames on the UART, in both directions,
//! the way a protocol analyser on the wire would:
//! - `timeout:op=NAME,nth=N` drops the Nth request frame with that opcode
//!   before it reaches the UART, so the stub never sees it and never answers;
//! - `short-read:frame=N,drop=K` cuts K bytes from the end of the Nth
//!   READ_FLASH or READ_FLASH_DEFLATE data frame the stub sends;
//! - `bad-md5` inverts the digest in SPI_FLASH_MD5 replies and in the digest
//!   frame that ends a READ_FLASH or READ_FLASH_DEFLATE.
//!
//! Only whole frames are held back (until their closing 0xC0); bytes between
//! frames pass at once, and a frame no fault touches leaves byte for byte as
//! it came. With no fault configured the tap is not used at all.

use std::collections::HashMap;

use esp_protocol::packet::{
    Opcode, RequestFrame, DEFLATE_READ_HEADER_LEN, DIRECTION_RESPONSE, HEADER_LEN,
    STUB_READ_PACKET_SIZE,
};
use esp_protocol::slip::{self, SlipDecoder, SlipEvent, MAX_FRAME_LEN};

use super::DeviceFaults;

/// Bytes of an MD5 digest.
const DIGEST_LEN: usize = 16;

/// Splits a byte stream into raw SLIP frames (delimiters included) and the
/// bytes between them, without changing either.
#[derive(Debug, Default)]
struct RawFramer {
    frame: Vec<u8>,
    in_frame: bool,
}

/// A piece of the stream.
enum Piece<'a> {
    /// Bytes outside any frame.
    Between(&'a [u8]),
    /// One complete frame as it was on the wire, both 0xC0 included.
    Frame(Vec<u8>),
}

impl RawFramer {
    fn split<'a>(&mut self, mut bytes: &'a [u8], mut piece: impl FnMut(Piece<'a>)) {
        while !bytes.is_empty() {
            if !self.in_frame {
                let start = bytes.iter().position(|&b| b == slip::END);
                let between = &bytes[..start.unwrap_or(bytes.len())];
                if !between.is_empty() {
                    piece(Piece::Between(between));
                }
                let Some(start) = start else { return };
                self.in_frame = true;
                self.frame.clear();
                self.frame.push(slip::END);
                bytes = &bytes[start + 1..];
                continue;
            }
            match bytes.iter().position(|&b| b == slip::END) {
                // "C0 C0": the second delimiter opens the frame an empty one would have ended.
                Some(0) if self.frame.len() == 1 => {
                    piece(Piece::Between(&bytes[..0]));
                    bytes = &bytes[1..];
                }
                Some(end) => {
                    self.frame.extend_from_slice(&bytes[..=end]);
                    self.in_frame = false;
                    piece(Piece::Frame(std::mem::take(&mut self.frame)));
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.frame.extend_from_slice(bytes);
                    // Longer than any frame: line noise that happens to start with 0xC0.
                    if self.frame.len() > 2 * MAX_FRAME_LEN {
                        self.in_frame = false;
                        let noise = std::mem::take(&mut self.frame);
                        piece(Piece::Frame(noise));
                    }
                    return;
                }
            }
        }
    }

    /// Forgets a frame in progress (the chip was reset).
    fn reset(&mut self) {
        self.frame.clear();
        self.in_frame = false;
    }
}

/// Unescapes one raw frame; `None` when it is not a well-formed frame.
fn payload_of(raw: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = SlipDecoder::new();
    decoder
        .feed_to_vec(raw)
        .into_iter()
        .find_map(|event| match event {
            SlipEvent::Frame(payload) => Some(payload),
            _ => None,
        })
}

/// A READ_FLASH or READ_FLASH_DEFLATE the host asked for, as the tap follows it.
#[derive(Debug, Clone, Copy)]
struct ReadInProgress {
    /// Its opcode.
    opcode: u8,
    /// Flash bytes the stub has still to send.
    remaining: u64,
    /// Flash bytes per data frame: READ_FLASH_DEFLATE's block size (its frames, deflated
    /// or not, each carry one block); for READ_FLASH, a frame's length is what it carries.
    block_size: Option<u64>,
    /// The stub's reply to the request has been seen.
    acknowledged: bool,
}

/// Applies [`DeviceFaults`] to the frames of an executed stub.
#[derive(Debug)]
pub(super) struct FrameTap {
    faults: DeviceFaults,
    host: RawFramer,
    chip: RawFramer,
    read_frames_sent: u32,
    read: Option<ReadInProgress>,
    /// Lines for --trace, taken by the device.
    notes: Vec<String>,
}

impl FrameTap {
    /// A tap for `faults`, or `None` when none of them concerns frames.
    pub(super) fn new(faults: &DeviceFaults) -> Option<FrameTap> {
        let needed = faults.short_read.is_some() || !faults.timeouts.is_empty() || faults.bad_md5;
        needed.then(|| FrameTap {
            faults: faults.clone(),
            host: RawFramer::default(),
            chip: RawFramer::default(),
            read_frames_sent: 0,
            read: None,
            notes: Vec::new(),
        })
    }

    /// The chip was reset: frames in progress are lost; counts since power-on stay.
    pub(super) fn reset(&mut self) {
        self.host.reset();
        self.chip.reset();
        self.read = None;
    }

    /// Host→chip: appends to `out` what reaches the UART. `commands_seen` counts requests
    /// by opcode since power-on, whoever answered them (ROM, model or code).
    pub(super) fn host_bytes(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        commands_seen: &mut HashMap<u8, u32>,
    ) {
        let mut pieces = Vec::new();
        self.host.split(bytes, |piece| pieces.push(piece));
        for piece in pieces {
            match piece {
                Piece::Between(bytes) => out.extend_from_slice(bytes),
                Piece::Frame(raw) => {
                    if self.host_frame_passes(&raw, commands_seen) {
                        out.extend_from_slice(&raw);
                    }
                }
            }
        }
    }

    /// Chip→host: appends to `out` what leaves the UART.
    pub(super) fn chip_bytes(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut pieces = Vec::new();
        self.chip.split(bytes, |piece| pieces.push(piece));
        for piece in pieces {
            match piece {
                Piece::Between(bytes) => out.extend_from_slice(bytes),
                Piece::Frame(raw) => match self.edit_chip_frame(&raw) {
                    Some(payload) => slip::encode(&payload, out),
                    None => out.extend_from_slice(&raw),
                },
            }
        }
    }

    /// Trace lines about what the tap did since the last call.
    pub(super) fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Counts a request and says whether it is delivered.
    fn host_frame_passes(&mut self, raw: &[u8], commands_seen: &mut HashMap<u8, u32>) -> bool {
        let Some(payload) = payload_of(raw) else {
            return true;
        };
        let Ok(request) = RequestFrame::parse(&payload) else {
            return true;
        };
        let seen = commands_seen.entry(request.opcode).or_default();
        *seen += 1;
        let nth = *seen;
        let dropped = self
            .faults
            .timeouts
            .iter()
            .any(|t| t.opcode == request.opcode && t.nth == nth);
        if dropped {
            self.notes.push(format!(
                "fault: command #{nth} with opcode 0x{:02x} dropped",
                request.opcode
            ));
            return false;
        }
        let word = |at: usize| {
            request
                .payload
                .get(at..at + 4)
                .map(|bytes| u64::from(u32::from_le_bytes(bytes.try_into().expect("4 bytes"))))
        };
        if request.opcode == Opcode::ReadFlash as u8 {
            if let Some(size) = word(4) {
                self.read = Some(ReadInProgress {
                    opcode: request.opcode,
                    remaining: size,
                    block_size: None,
                    acknowledged: false,
                });
            }
        }
        if request.opcode == Opcode::ReadFlashDeflate as u8 {
            if let (Some(size), Some(block_size)) = (word(4), word(8)) {
                self.read = Some(ReadInProgress {
                    opcode: request.opcode,
                    remaining: size,
                    block_size: Some(block_size.max(1)),
                    acknowledged: false,
                });
            }
        }
        true
    }

    /// The payload to send instead of `raw`'s, when a fault changes it.
    fn edit_chip_frame(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
        let mut payload = payload_of(raw)?;
        let is_response = payload.len() >= HEADER_LEN && payload[0] == DIRECTION_RESPONSE;
        if let Some(read) = self.read.as_mut() {
            if !read.acknowledged {
                if is_response && payload[1] == read.opcode {
                    read.acknowledged = true;
                }
                return None;
            }
            let largest = match read.block_size {
                Some(block_size) => DEFLATE_READ_HEADER_LEN + block_size as usize,
                None => STUB_READ_PACKET_SIZE as usize,
            };
            if read.remaining > 0 && payload.len() <= largest {
                let carried = read.block_size.unwrap_or(payload.len() as u64);
                read.remaining = read.remaining.saturating_sub(carried);
                self.read_frames_sent += 1;
                let short = self
                    .faults
                    .short_read
                    .filter(|fault| fault.frame == self.read_frames_sent)?;
                let keep = payload.len().saturating_sub(short.drop);
                payload.truncate(keep);
                self.notes.push(format!(
                    "fault: read data frame #{} cut to {keep} bytes",
                    self.read_frames_sent
                ));
                return Some(payload);
            }
            if read.remaining == 0 && payload.len() == DIGEST_LEN {
                self.read = None;
                return self.faults.bad_md5.then(|| invert(payload));
            }
            return None;
        }
        if self.faults.bad_md5 && is_response && payload[1] == Opcode::SpiFlashMd5 as u8 {
            // value (4 bytes) after the header; the digest follows, raw (16) or hex (32).
            let digest_len = payload.len().saturating_sub(HEADER_LEN + 2);
            if digest_len >= DIGEST_LEN {
                let digest = HEADER_LEN..HEADER_LEN + digest_len;
                let inverted = invert_digest(&payload[digest.clone()]);
                payload[digest].copy_from_slice(&inverted);
                self.notes
                    .push("fault: SPI_FLASH_MD5 digest corrupted".to_string());
                return Some(payload);
            }
        }
        None
    }
}

/// A raw digest with every bit inverted, as the stub model reports a bad MD5.
fn invert(mut digest: Vec<u8>) -> Vec<u8> {
    digest.iter_mut().for_each(|byte| *byte = !*byte);
    digest
}

/// Inverts a digest sent raw (16 bytes) or as 32 hex digits (the ROM's and some stubs' form).
fn invert_digest(digest: &[u8]) -> Vec<u8> {
    if digest.len() == 2 * DIGEST_LEN && digest.iter().all(u8::is_ascii_hexdigit) {
        digest
            .iter()
            .map(|&c| {
                let nibble = (c as char).to_digit(16).expect("hex digit checked") as u8;
                b"0123456789abcdef"[usize::from(!nibble & 0xF)]
            })
            .collect()
    } else {
        invert(digest.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{CommandTimeout, ShortRead};
    use esp_protocol::packet::{Command, Response};
    use esp_protocol::status::Status;

    fn tap(faults: DeviceFaults) -> FrameTap {
        FrameTap::new(&faults).expect("a fault is configured")
    }

    fn request(command: &Command) -> Vec<u8> {
        slip::encode_to_vec(&command.to_bytes().unwrap())
    }

    fn response(opcode: u8, data: &[u8]) -> Vec<u8> {
        let response = Response {
            opcode,
            value: 0,
            data: data.to_vec(),
            status: Status::Success,
        };
        slip::encode_to_vec(&response.to_bytes().unwrap())
    }

    #[test]
    fn no_tap_without_frame_faults() {
        assert!(FrameTap::new(&DeviceFaults::default()).is_none());
    }

    #[test]
    fn the_nth_command_of_an_opcode_never_reaches_the_uart() {
        let mut tap = tap(DeviceFaults {
            timeouts: vec![CommandTimeout {
                opcode: Opcode::Sync as u8,
                nth: 2,
            }],
            ..DeviceFaults::default()
        });
        let sync = request(&Command::Sync);
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        tap.host_bytes(&sync, &mut out, &mut seen);
        assert_eq!(out, sync, "the first SYNC passes unchanged");
        out.clear();
        // The second arrives in pieces, with noise before it: the noise passes, the frame does not.
        tap.host_bytes(b"xy", &mut out, &mut seen);
        for chunk in sync.chunks(5) {
            tap.host_bytes(chunk, &mut out, &mut seen);
        }
        assert_eq!(out, b"xy");
        out.clear();
        tap.host_bytes(&sync, &mut out, &mut seen);
        assert_eq!(out, sync, "the third passes");
        assert_eq!(tap.take_notes().len(), 1);
    }

    #[test]
    fn the_nth_read_flash_data_frame_is_cut_and_the_rest_pass() {
        let mut tap = tap(DeviceFaults {
            short_read: Some(ShortRead { frame: 2, drop: 3 }),
            ..DeviceFaults::default()
        });
        let mut out = Vec::new();
        tap.host_bytes(
            &request(&Command::ReadFlash {
                address: 0,
                size: 0x2000,
                packet_size: 0x1000,
                max_in_flight: 64,
            }),
            &mut out,
            &mut HashMap::new(),
        );
        let mut wire = response(Opcode::ReadFlash as u8, &[]);
        let first = vec![0xC0u8; 0x1000];
        let second = vec![0x11u8; 0x1000];
        wire.extend(slip::encode_to_vec(&first));
        wire.extend(slip::encode_to_vec(&second));
        wire.extend(slip::encode_to_vec(&[0x22; 16]));
        let mut sent = Vec::new();
        for chunk in wire.chunks(333) {
            tap.chip_bytes(chunk, &mut sent);
        }
        let frames: Vec<Vec<u8>> = SlipDecoder::new()
            .feed_to_vec(&sent)
            .into_iter()
            .filter_map(|event| match event {
                SlipEvent::Frame(frame) => Some(frame),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[1], first);
        assert_eq!(frames[2], second[..0x1000 - 3]);
        assert_eq!(
            frames[3], [0x22; 16],
            "the digest is left alone without bad-md5"
        );
    }

    #[test]
    fn bad_md5_inverts_the_read_digest_and_the_md5_reply() {
        let mut tap = tap(DeviceFaults {
            bad_md5: true,
            ..DeviceFaults::default()
        });
        let mut out = Vec::new();
        tap.host_bytes(
            &request(&Command::ReadFlash {
                address: 0,
                size: 4,
                packet_size: 0x1000,
                max_in_flight: 1,
            }),
            &mut out,
            &mut HashMap::new(),
        );
        let mut sent = Vec::new();
        tap.chip_bytes(&response(Opcode::ReadFlash as u8, &[]), &mut sent);
        tap.chip_bytes(&slip::encode_to_vec(&[1, 2, 3, 4]), &mut sent);
        tap.chip_bytes(&slip::encode_to_vec(&[0x0F; 16]), &mut sent);
        let expected: Vec<u8> = [
            response(Opcode::ReadFlash as u8, &[]),
            slip::encode_to_vec(&[1, 2, 3, 4]),
            slip::encode_to_vec(&[0xF0; 16]),
        ]
        .concat();
        assert_eq!(sent, expected);

        let mut sent = Vec::new();
        tap.chip_bytes(
            &response(
                Opcode::SpiFlashMd5 as u8,
                b"0123456789abcdef0123456789abcdef",
            ),
            &mut sent,
        );
        let frame = SlipDecoder::new().feed_to_vec(&sent);
        let SlipEvent::Frame(payload) = &frame[0] else {
            panic!("one frame expected, got {frame:?}");
        };
        assert_eq!(
            &payload[HEADER_LEN..HEADER_LEN + 32],
            b"fedcba9876543210fedcba9876543210"
        );
    }

    #[test]
    fn bytes_between_frames_pass_at_once() {
        let mut tap = tap(DeviceFaults {
            bad_md5: true,
            ..DeviceFaults::default()
        });
        let mut sent = Vec::new();
        tap.chip_bytes(b"Hello\r\n", &mut sent);
        assert_eq!(sent, b"Hello\r\n");
    }
}
