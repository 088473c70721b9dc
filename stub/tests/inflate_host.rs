//! The stub's zlib inflater (`c/inflate.c`) on the host: built with the host C compiler together
//! with `c/host/inflate_driver.c` (with AddressSanitizer and UBSan when the compiler has them),
//! fed zlib streams from flate2 in many chunkings, and checked against flate2's own decoder as
//! the oracle, also on truncated, corrupted and random input.
//!
//! The driver reads chunks framed as a 4-byte little-endian length and the bytes (0xFFFFFFFF
//! ends), hands each to one `inflate_feed` call, writes the output to stdout and
//! `status=.. total=.. calls=.. feeds=..` to stderr, and exits with 2 when an invariant breaks
//! (a write outside the struct, output outside the window, DONE/ERROR not staying, ...).

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

mod host_c;

use flate2::write::ZlibEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use proptest::prelude::*;

const NEED_INPUT: i32 = 0;
const DONE: i32 = 1;
const ERROR: i32 = -1;

/// Long enough for 1 MiB under the sanitizers on a slow machine; a hang ends here.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The driver, built once per test process.
fn driver() -> &'static host_c::Driver {
    static DRIVER: OnceLock<host_c::Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        host_c::Driver::build("inflate_driver", &["inflate.c", "host/inflate_driver.c"])
    })
}

/// What the driver reported.
#[derive(Debug)]
struct Outcome {
    status: i32,
    total: u64,
    calls: u64,
    output: Vec<u8>,
}

/// Runs the driver on `chunks`; panics if it crashes, breaks an invariant or times out.
fn run(chunks: &[&[u8]]) -> Outcome {
    let mut framed = Vec::with_capacity(chunks.iter().map(|c| c.len() + 4).sum::<usize>() + 4);
    for chunk in chunks {
        framed.extend_from_slice(&u32::try_from(chunk.len()).unwrap().to_le_bytes());
        framed.extend_from_slice(chunk);
    }
    framed.extend_from_slice(&u32::MAX.to_le_bytes());

    let (exit, output, log) = driver().run(framed, TIMEOUT);
    assert!(exit.success(), "the inflate driver failed ({exit}):\n{log}");

    let line = log
        .lines()
        .find(|line| line.starts_with("status="))
        .unwrap_or_else(|| panic!("no status line from the driver:\n{log}"));
    let field = |name: &str| -> i64 {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in `{line}`"))
    };
    let outcome = Outcome {
        status: i32::try_from(field("status")).unwrap(),
        total: u64::try_from(field("total")).unwrap(),
        calls: u64::try_from(field("calls")).unwrap(),
        output,
    };
    assert_eq!(
        outcome.total,
        outcome.output.len() as u64,
        "total_out vs bytes output"
    );
    outcome
}

fn run_whole(stream: &[u8]) -> Outcome {
    run(&[stream])
}

fn run_pieces(stream: &[u8], size: usize) -> Outcome {
    run(&stream.chunks(size).collect::<Vec<_>>())
}

/// Splits `stream` at the given points (taken modulo its length + 1, in any order); empty
/// pieces are kept, as a caller may feed them.
fn run_split(stream: &[u8], points: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        pieces.push(&stream[start..cut]);
        start = cut;
    }
    pieces.push(&stream[start..]);
    run(&pieces)
}

fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// flate2's verdict on a byte string: everything it decoded, and whether it reached the end
/// with a good checksum, needs more input, or found an error.
#[derive(Debug)]
enum Reference {
    Done(Vec<u8>),
    Truncated(Vec<u8>),
    Error(Vec<u8>, String),
}

fn reference(stream: &[u8]) -> Reference {
    let mut decoder = Decompress::new(true);
    let mut out = Vec::with_capacity(stream.len() * 4 + 4096);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let (total_in, total_out) = (decoder.total_in(), decoder.total_out());
        let input = &stream[usize::try_from(total_in).unwrap()..];
        match decoder.decompress_vec(input, &mut out, FlushDecompress::None) {
            Err(error) => return Reference::Error(out, error.to_string()),
            Ok(Status::StreamEnd) => return Reference::Done(out),
            Ok(_) => {
                if decoder.total_in() == total_in && decoder.total_out() == total_out {
                    return Reference::Truncated(out);
                }
            }
        }
    }
}

/// Our inflater must agree with zlib on any input: same verdict and the same bytes out (both
/// emit every byte decoded before an error or the end of the input). The one allowed difference:
/// a header asking for a preset dictionary is an error for us at once, while zlib first waits
/// for the 4-byte dictionary id.
fn check_against_reference(stream: &[u8], got: &Outcome) {
    let (status, expected, why) = match reference(stream) {
        Reference::Done(bytes) => (DONE, bytes, String::new()),
        Reference::Truncated(bytes) => (NEED_INPUT, bytes, String::new()),
        Reference::Error(bytes, why) => (ERROR, bytes, why),
    };
    let dictionary = stream.len() >= 2 && stream[1] & 0x20 != 0;
    if dictionary && got.status == ERROR && got.output.is_empty() {
        return;
    }
    assert_eq!(
        got.status,
        status,
        "verdict differs from zlib ({why}) on a {}-byte stream: {:02x?}",
        stream.len(),
        &stream[..stream.len().min(64)]
    );
    assert!(
        got.output == expected,
        "output differs from zlib: {} bytes vs {} (first difference at {:?}), status {}",
        got.output.len(),
        expected.len(),
        got.output.iter().zip(&expected).position(|(a, b)| a != b),
        got.status
    );
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "flash",
        "stub",
        "writes",
        "a",
        "block",
        "of",
        "compressed",
        "data",
        "to",
        "sector",
        "and",
        "checks",
        "its",
        "digest",
        "while",
        "ROM",
        "loader",
        "waits",
        "for",
        "SLIP",
        "frames",
        "over",
        "UART",
        "inflater",
        "window",
        "Huffman",
        "code",
        "length",
        "distance",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        out.push(match rng.below(12) {
            0 => b'\n',
            1 => b',',
            2 => b'.',
            _ => b' ',
        });
    }
    out.truncate(len);
    out
}

fn runs(len: usize) -> Vec<u8> {
    let mut rng = Rng(7);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let byte = rng.next() as u8;
        let run = [1, 2, 3, 4, 258, 259, 1000, 40_000][rng.below(8)];
        out.extend(std::iter::repeat_n(byte, run));
    }
    out.truncate(len);
    out
}

/// 1 MiB that looks like firmware: a header, instruction-like bytes from a small vocabulary,
/// literal pools of nearby addresses, strings, 0xFF padding and incompressible assets.
fn firmware(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x5EED);
    let mut out = vec![0xE9, 0x03, 0x02, 0x40, 0x00, 0x10, 0x10, 0x40];
    while out.len() < len {
        match rng.below(10) {
            0..=4 => {
                const OPS: [u8; 12] = [
                    0x12, 0x22, 0x32, 0x0c, 0x1c, 0x21, 0x31, 0xc0, 0x85, 0x06, 0x20, 0x0d,
                ];
                for _ in 0..rng.below(2000) {
                    out.push(OPS[rng.below(OPS.len())]);
                    out.push((rng.below(16) as u8) << 4 | 0x01);
                    if rng.below(3) != 0 {
                        out.push(rng.below(32) as u8);
                    }
                }
            }
            5 => {
                for _ in 0..rng.below(256) {
                    let address = 0x4010_0000u32 + (rng.below(0x8000) as u32 & !3);
                    out.extend_from_slice(&address.to_le_bytes());
                }
            }
            6 => {
                let len = rng.below(3000);
                out.extend(text(len, rng.next()));
            }
            7 => out.extend(std::iter::repeat_n(0xFF, rng.below(9000))),
            8 => out.extend(std::iter::repeat_n(0x00, rng.below(500))),
            _ => {
                let len = rng.below(6000);
                out.extend(rng.bytes(len));
            }
        }
    }
    out.truncate(len);
    out
}

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![0x42]),
        ("text", text(100_000, 1)),
        ("random", Rng(3).bytes(100_000)),
        ("runs", runs(300_000)),
        ("firmware", firmware(1 << 20)),
    ]
}

fn assert_inflates(name: &str, level: u32, data: &[u8], got: &Outcome) {
    assert_eq!(got.status, DONE, "{name} at level {level}: status");
    assert!(
        got.output == data,
        "{name} at level {level}: output differs"
    );
}

#[test]
fn vectors_at_every_level_whole_and_in_16k_pieces() {
    for (name, data) in vectors() {
        for level in 0..=9 {
            let stream = compress(&data, level);
            let whole = run_whole(&stream);
            assert_inflates(name, level, &data, &whole);
            // At most one output call per window wrap plus one before returning.
            assert!(
                whole.calls <= data.len() as u64 / 32768 + 1,
                "{name}: {} output calls",
                whole.calls
            );
            let pieces = run_pieces(&stream, 16 * 1024);
            assert_inflates(name, level, &data, &pieces);
        }
    }
}

#[test]
fn one_byte_pieces() {
    let vectors = [
        ("text", text(40_000, 2)),
        ("random", Rng(4).bytes(6_000)),
        ("runs", runs(70_000)),
        ("firmware", firmware(80_000)),
        ("empty", Vec::new()),
    ];
    for (name, data) in &vectors {
        for level in [0, 1, 6, 9] {
            let stream = compress(data, level);
            assert_inflates(name, level, data, &run_pieces(&stream, 1));
        }
    }
}

#[test]
fn bytes_after_the_trailer_are_ignored() {
    let data = text(5_000, 9);
    let mut stream = compress(&data, 6);
    stream.extend_from_slice(b"trailing garbage");
    assert_inflates("trailing", 6, &data, &run_whole(&stream));
    assert_inflates("trailing", 6, &data, &run_pieces(&stream, 3));
}

#[test]
fn truncated_streams_need_input() {
    let data = [text(3_000, 5), Rng(6).bytes(500), runs(2_000)].concat();
    for level in [0, 9] {
        let stream = compress(&data, level);
        let mut cuts: Vec<usize> = (0..stream.len()).step_by(stream.len() / 150 + 1).collect();
        cuts.extend(0..3);
        cuts.extend(stream.len() - 8..stream.len());
        for cut in cuts {
            let got = run_pieces(&stream[..cut], 64);
            assert_eq!(
                got.status,
                NEED_INPUT,
                "level {level}, cut at {cut} of {}",
                stream.len()
            );
            assert!(
                data.starts_with(&got.output),
                "cut at {cut}: output is not a prefix"
            );
            check_against_reference(&stream[..cut], &got);
        }
    }
}

#[test]
fn a_bad_adler_trailer_is_an_error() {
    for data in [Vec::new(), text(70_000, 8)] {
        let stream = compress(&data, 9);
        for at in stream.len() - 4..stream.len() {
            for flip in [0x01, 0x80] {
                let mut bad = stream.clone();
                bad[at] ^= flip;
                let got = run_whole(&bad);
                assert_eq!(got.status, ERROR, "flip {flip:#x} at {at}");
                assert!(got.output == data, "all data is output before the check");
                let got = run_pieces(&bad, 1);
                assert_eq!(got.status, ERROR, "flip {flip:#x} at {at}, 1-byte pieces");
            }
        }
    }
}

#[test]
fn bad_headers_are_errors() {
    let stream = compress(b"hello hello hello", 6);
    // FLG with the given flag bits and the check bits that make CMF * 256 + FLG a multiple of 31.
    let header = |cmf: u8, flags: u8| {
        let check = (31 - (u32::from(cmf) * 256 + u32::from(flags)) % 31) % 31;
        let mut bad = stream.clone();
        bad[0] = cmf;
        bad[1] = flags + check as u8;
        bad
    };
    let mut wrong_check = stream.clone();
    wrong_check[1] ^= 1;
    for bad in [
        wrong_check,
        header(0x79, 0x80), // CM 9
        header(0x88, 0x80), // CINFO 8: a 64 KiB window
        header(0x78, 0xa0), // FDICT
    ] {
        assert_eq!(
            run_whole(&bad).status,
            ERROR,
            "header {:02x} {:02x}",
            bad[0],
            bad[1]
        );
    }
    // Block type 3 right after a valid header.
    assert_eq!(run_whole(&[0x78, 0x9c, 0x07, 0x00]).status, ERROR);
    // A stored block whose NLEN is not the complement of LEN.
    assert_eq!(
        run_whole(&[0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xfe, 0x41]).status,
        ERROR
    );
    // A fixed block whose first match reaches before the start.
    assert_eq!(run_whole(&[0x78, 0x9c, 0x03, 0x02, 0x00]).status, ERROR);
}

#[test]
fn single_byte_corruptions_agree_with_zlib() {
    let data = [text(6_000, 10), runs(3_000), Rng(11).bytes(800)].concat();
    let mut rng = Rng(12);
    for level in [0, 1, 9] {
        let stream = compress(&data, level);
        // Every byte of the headers, then a sample of the rest (about 200 per level).
        let positions = (0..40).chain((40..stream.len()).step_by(stream.len() / 160 + 1));
        for at in positions {
            let mut bad = stream.clone();
            bad[at] ^= 1 << rng.below(8);
            let got = run_whole(&bad);
            check_against_reference(&bad, &got);
            // DONE means the Adler-32 matched, which a corruption of the data would break.
            if got.status == DONE {
                assert!(got.output == data, "DONE with wrong output, flip at {at}");
            }
        }
    }
}

/// A hand-made zlib stream: deflate bits least significant first, Huffman codes most
/// significant first.
struct Stream {
    bytes: Vec<u8>,
    bit: u32,
}

impl Stream {
    fn new() -> Self {
        Stream {
            bytes: vec![0x78, 0x01],
            bit: 8,
        }
    }

    fn put(&mut self, value: u32, count: u32) {
        for i in 0..count {
            if self.bit == 8 {
                self.bytes.push(0);
                self.bit = 0;
            }
            *self.bytes.last_mut().unwrap() |= ((value >> i & 1) as u8) << self.bit;
            self.bit += 1;
        }
    }

    fn code(&mut self, (code, len): (u32, u32)) {
        for i in (0..len).rev() {
            self.put(code >> i, 1);
        }
    }

    /// Fixed-code literal/length symbol.
    fn fixed(&mut self, symbol: u32) {
        self.code(match symbol {
            0..=143 => (0x30 + symbol, 8),
            144..=255 => (0x190 + symbol - 144, 9),
            256..=279 => (symbol - 256, 7),
            _ => (0xC0 + symbol - 280, 8),
        });
    }

    /// Ends the deflate data and appends the Adler-32 of `data`.
    fn finish(mut self, data: &[u8]) -> Vec<u8> {
        self.bit = 8;
        self.bytes.extend_from_slice(&adler32(data).to_be_bytes());
        self.bytes
    }

    /// Ends the stream right after the last bit, with no trailer.
    fn cut(self) -> Vec<u8> {
        self.bytes
    }
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// Canonical Huffman codes (code, length) for the given code lengths.
fn canonical(lengths: &[u8]) -> Vec<(u32, u32)> {
    let mut next = [0u32; 17];
    let mut code = 0;
    for len in 1..16 {
        let shorter = lengths
            .iter()
            .filter(|&&l| u32::from(l) == len - 1 && l != 0)
            .count() as u32;
        code = (code + shorter) << 1;
        next[len as usize] = code;
    }
    lengths
        .iter()
        .map(|&len| {
            let code = next[usize::from(len)];
            next[usize::from(len)] += 1;
            (code, u32::from(len))
        })
        .collect()
}

/// The code length code used by `dynamic`: 0..=12 get 4 bits, 13..=18 get 5 bits.
fn clen_code() -> Vec<(u32, u32)> {
    canonical(&[4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5])
}

/// Writes a final dynamic block header: HLIT/HDIST as given (257.., 1..) and the code lengths
/// as (code length symbol, extra bits value) pairs. Returns the codes of `lit` and `dist`.
fn dynamic(s: &mut Stream, nlit: u32, ndist: u32, ops: &[(u8, u32)]) {
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let clen = clen_code();
    s.put(1, 1);
    s.put(2, 2);
    s.put(nlit - 257, 5);
    s.put(ndist - 1, 5);
    s.put(15, 4);
    for symbol in ORDER {
        s.put(clen[symbol].1, 3);
    }
    for &(symbol, extra) in ops {
        s.code(clen[usize::from(symbol)]);
        match symbol {
            16 => s.put(extra, 2),
            17 => s.put(extra, 3),
            18 => s.put(extra, 7),
            _ => {}
        }
    }
}

/// Code length ops that spell out `lengths` one by one.
fn plain(lengths: &[u8]) -> Vec<(u8, u32)> {
    lengths.iter().map(|&l| (l, 0)).collect()
}

fn lengths_with(len: usize, set: &[(usize, u8)]) -> Vec<u8> {
    let mut lengths = vec![0; len];
    for &(symbol, l) in set {
        lengths[symbol] = l;
    }
    lengths
}

/// Hand-made blocks for the checks random corruption rarely reaches: incomplete, empty and
/// over-long codes, repeats past the end, too many symbols, distance codes 30 and 31.
#[test]
fn handmade_blocks_agree_with_zlib() {
    let mut cases: Vec<(&str, Vec<u8>, i32)> = Vec::new();
    // Literals A, B, end of block, length 3: two bits each.
    let lit = lengths_with(258, &[(65, 2), (66, 2), (256, 2), (257, 2)]);
    let lit_codes = canonical(&lit);

    // A single one-bit distance code is allowed; "A" + (3, 1) gives "AAAA".
    let mut s = Stream::new();
    dynamic(&mut s, 258, 1, &plain(&[lit.as_slice(), &[1]].concat()));
    let header = s.bytes.clone();
    let header_bit = s.bit;
    s.code(lit_codes[65]);
    s.code(lit_codes[257]);
    s.put(0, 1);
    s.code(lit_codes[256]);
    cases.push(("single distance code", s.finish(b"AAAA"), DONE));
    // Its unused code is an error, already when the stream ends right after that bit.
    let mut s = Stream {
        bytes: header.clone(),
        bit: header_bit,
    };
    s.code(lit_codes[65]);
    s.code(lit_codes[257]);
    s.put(1, 1);
    cases.push(("unused half of a one-bit code", s.cut(), ERROR));

    // No distance codes at all is fine for literals only, an error on the first match.
    let mut s = Stream::new();
    dynamic(&mut s, 258, 1, &plain(&[lit.as_slice(), &[0]].concat()));
    let header = (s.bytes.clone(), s.bit);
    s.code(lit_codes[66]);
    s.code(lit_codes[256]);
    cases.push(("empty distance code", s.finish(b"B"), DONE));
    let mut s = Stream {
        bytes: header.0,
        bit: header.1,
    };
    s.code(lit_codes[66]);
    s.code(lit_codes[257]);
    s.put(0, 1);
    cases.push(("match with no distance codes", s.cut(), ERROR));

    // No end-of-block code.
    let mut s = Stream::new();
    let no_end = lengths_with(258, &[(65, 2), (66, 2), (67, 2), (257, 2)]);
    dynamic(&mut s, 258, 1, &plain(&[no_end.as_slice(), &[1]].concat()));
    s.code(canonical(&no_end)[65]);
    cases.push(("no end-of-block code", s.cut(), ERROR));

    // Incomplete and over-subscribed literal/length codes.
    for (name, set) in [
        (
            "incomplete literal code",
            [(65, 2), (66, 2), (256, 2), (257, 3)],
        ),
        (
            "over-subscribed literal code",
            [(65, 2), (66, 2), (256, 2), (257, 1)],
        ),
    ] {
        let mut s = Stream::new();
        dynamic(
            &mut s,
            258,
            1,
            &plain(&[lengths_with(258, &set).as_slice(), &[1]].concat()),
        );
        cases.push((name, s.finish(b""), ERROR));
    }

    // A repeat that runs past HLIT + HDIST (257 + 1): "A" and end of block get one bit each,
    // then "repeat the previous length 3 times" would fill lengths 257..259.
    let ops = [(18, 54), (1, 0), (18, 127), (18, 41), (1, 0), (16, 0)];
    let mut s = Stream::new();
    dynamic(&mut s, 257, 1, &ops);
    s.put(0, 1);
    s.put(1, 1);
    cases.push(("repeat past the end", s.finish(b"A"), ERROR));
    // The same lengths without the overrun are a valid block.
    let ops = [(18, 54), (1, 0), (18, 127), (18, 41), (1, 0), (1, 0)];
    let mut s = Stream::new();
    dynamic(&mut s, 257, 1, &ops);
    s.put(0, 1);
    s.put(1, 1);
    cases.push(("repeat up to the end", s.finish(b"A"), DONE));
    // A first repeat has no previous length.
    let mut s = Stream::new();
    dynamic(&mut s, 257, 1, &[(16, 0)]);
    cases.push(("repeat without a previous length", s.cut(), ERROR));

    // 288 literal/length or 31 distance codes: more than RFC 1951 allows.
    for (nlit, ndist) in [(288, 1), (257, 31)] {
        let lengths = lengths_with(
            nlit as usize + ndist as usize,
            &[(65, 1), (256, 1), (nlit as usize, 1)],
        );
        let mut s = Stream::new();
        dynamic(&mut s, nlit, ndist, &plain(&lengths));
        s.put(0, 1);
        s.put(1, 1);
        cases.push(("too many codes", s.finish(b"A"), ERROR));
    }

    // Fixed codes: distance codes 30 and 31 and lengths 286 and 287 exist but are invalid,
    // also once more than 32 KiB are out (distance 32769 would be in reach).
    for bad_distance in [29, 30, 31] {
        let mut s = Stream::new();
        s.put(1, 1);
        s.put(1, 2);
        s.fixed(u32::from(b'A'));
        for _ in 0..128 {
            s.fixed(285);
            s.code((0, 5));
        }
        s.fixed(257);
        s.code((bad_distance, 5));
        s.put(0, 13);
        s.put(0, 1); // the 14th extra bit of codes 30 and 31, if they had one
        s.fixed(256);
        let expected = vec![b'A'; 1 + 128 * 258 + 3];
        let status = if bad_distance == 29 { DONE } else { ERROR };
        cases.push(("far distance", s.finish(&expected), status));
    }
    for bad_length in [286, 287] {
        let mut s = Stream::new();
        s.put(1, 1);
        s.put(1, 2);
        s.fixed(u32::from(b'A'));
        s.fixed(bad_length);
        cases.push(("length code 286/287", s.finish(b"A"), ERROR));
    }

    for (name, stream, status) in &cases {
        for got in [run_whole(stream), run_pieces(stream, 1)] {
            assert_eq!(got.status, *status, "{name}");
            check_against_reference(stream, &got);
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Data from few distinct symbols with repeats, or plain random bytes.
fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        (
            1u8..=16,
            prop::collection::vec((any::<u8>(), 1usize..300), 0..200)
        )
            .prop_map(|(k, runs)| {
                runs.into_iter()
                    .flat_map(|(b, n)| std::iter::repeat_n(b % k, n))
                    .collect()
            }),
        (0usize..70_000, any::<u64>()).prop_map(|(len, seed)| text(len, seed | 1)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_data_level_and_splits(
        data in data_strategy(),
        level in 0u32..=9,
        points in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream = compress(&data, level);
        let got = run_split(&stream, &points);
        prop_assert_eq!(got.status, DONE);
        prop_assert!(got.output == data, "output differs");
    }

    #[test]
    fn random_garbage_agrees_with_zlib(
        header in prop_oneof![Just(vec![0x78, 0x9c]), Just(vec![0x78, 0x01]), Just(Vec::new())],
        body in prop::collection::vec(any::<u8>(), 0..2000),
        points in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let stream = [header, body].concat();
        let got = run_split(&stream, &points);
        check_against_reference(&stream, &got);
    }

    #[test]
    fn corrupted_streams_agree_with_zlib(
        data in data_strategy(),
        level in 0u32..=9,
        flips in prop::collection::vec((any::<usize>(), 0u8..8), 1..4),
        points in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = compress(&data, level);
        for (at, bit) in flips {
            let len = stream.len();
            stream[at % len] ^= 1 << bit;
        }
        let got = run_split(&stream, &points);
        check_against_reference(&stream, &got);
    }
}
