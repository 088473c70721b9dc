//! The stub's compressor (`c/deflate.c`) on the host: built with the host C compiler together
//! with `c/host/deflate_driver.c` (with AddressSanitizer and UBSan when the compiler has them),
//! and every stream it makes inflated by flate2, which must give back exactly the input:
//! random, erased (0xFF), zeroed, firmware-like, text and incompressible data, every input
//! length from 0 to 300 and the flash block sizes around 4 KiB and 16 KiB, and any input in a
//! property test. The output buffer is exactly as large as the capacity given: a stream that
//! does not fit is reported as 0 with nothing written past the buffer (the driver checks guard
//! bytes; the sanitizers check every access).

mod host_c;

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

use esp_emulator::sample_firmware::{firmware_image, sonoff_like_flash};
use flate2::read::DeflateDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use proptest::prelude::*;

/// Long enough for a few MiB under the sanitizers on a slow machine; a hang ends here.
const TIMEOUT: Duration = Duration::from_secs(60);
/// `DEFLATE_MAX_INPUT` in `c/deflate.h`.
const MAX_INPUT: usize = 0x8000;
/// A capacity no stream of these tests reaches (stored data would need 5 bytes per 64 KiB).
const ROOMY: u32 = (MAX_INPUT * 2) as u32;
const SECTOR: usize = 4096;

fn driver() -> &'static host_c::Driver {
    static DRIVER: OnceLock<host_c::Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        host_c::Driver::build("deflate_driver", &["deflate.c", "host/deflate_driver.c"])
    })
}

/// Compresses each (input, capacity) in one driver run; None where deflate_block said 0.
fn deflate_all(cases: &[(&[u8], u32)]) -> Vec<Option<Vec<u8>>> {
    let mut input = Vec::new();
    for (data, capacity) in cases {
        input.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        input.extend_from_slice(&capacity.to_le_bytes());
        input.extend_from_slice(data);
    }
    let (exit, output, log) = driver().run(input, TIMEOUT);
    assert!(exit.success(), "the deflate driver failed ({exit}):\n{log}");
    let mut results = Vec::with_capacity(cases.len());
    let mut rest = output.as_slice();
    for (_, capacity) in cases {
        let (word, tail) = rest.split_at(4);
        let length = u32::from_le_bytes(word.try_into().unwrap());
        assert!(
            length <= *capacity,
            "{length} bytes for a capacity of {capacity}"
        );
        let (stream, tail) = tail.split_at(length as usize);
        rest = tail;
        results.push((length > 0).then(|| stream.to_vec()));
    }
    assert!(rest.is_empty(), "{} bytes after the last case", rest.len());
    results
}

fn deflate(data: &[u8], capacity: u32) -> Option<Vec<u8>> {
    deflate_all(&[(data, capacity)]).pop().unwrap()
}

/// flate2's reading of a raw deflate stream, which must end exactly at its last byte.
fn inflate(stream: &[u8]) -> Vec<u8> {
    let mut decoder = DeflateDecoder::new(stream);
    let mut out = Vec::new();
    decoder
        .read_to_end(&mut out)
        .unwrap_or_else(|error| panic!("flate2 cannot inflate the stream: {error}"));
    assert_eq!(
        decoder.total_in(),
        stream.len() as u64,
        "the stream has bytes after its final block"
    );
    out
}

fn assert_round_trip(name: &str, data: &[u8], stream: Option<Vec<u8>>) -> usize {
    let stream = stream.unwrap_or_else(|| panic!("{name}: no stream with room to spare"));
    assert!(
        inflate(&stream) == data,
        "{name} ({} bytes): inflates to something else",
        data.len()
    );
    stream.len()
}

fn zlib6(data: &[u8]) -> usize {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap().len()
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

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Text from a small vocabulary: many short matches at all distances.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "flash ", "sector ", "erase ", "the ", "stub ", "reads ", "block ", "digest ", "and ",
        "window ", "match ", "code\n",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.next() as usize % WORDS.len()].as_bytes());
    }
    out.truncate(len);
    out
}

/// Every kind of data the stub meets in a flash, `len` bytes of each.
fn kinds(len: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut sparse = vec![0xFF; len];
    for i in (0..len).step_by(97) {
        sparse[i] = i as u8;
    }
    vec![
        ("random", Rng(len as u64 | 1).bytes(len)),
        ("erased", vec![0xFF; len]),
        ("zeroed", vec![0; len]),
        ("firmware", firmware_image(len.max(64), 5)[..len].to_vec()),
        ("text", text(len, 3)),
        ("sparse", sparse),
        (
            "period-3 pattern",
            (0..len).map(|i| (i % 3) as u8).collect(),
        ),
    ]
}

#[test]
fn every_kind_round_trips_at_every_length_up_to_300() {
    let inputs: Vec<(String, Vec<u8>)> = (0..=300)
        .flat_map(|len| {
            kinds(len)
                .into_iter()
                .map(move |(name, data)| (format!("{name} of {len}"), data))
        })
        .collect();
    let cases: Vec<(&[u8], u32)> = inputs.iter().map(|(_, d)| (d.as_slice(), ROOMY)).collect();
    for ((name, data), stream) in inputs.iter().zip(deflate_all(&cases)) {
        assert_round_trip(name, data, stream);
    }
}

#[test]
fn every_kind_round_trips_at_flash_block_sizes() {
    let lengths = [
        1023,
        1024,
        SECTOR - 1,
        SECTOR,
        SECTOR + 1,
        8192,
        16383,
        16384,
        16385,
        MAX_INPUT - 1,
        MAX_INPUT,
    ];
    for len in lengths {
        let inputs = kinds(len);
        let cases: Vec<(&[u8], u32)> = inputs.iter().map(|(_, d)| (d.as_slice(), ROOMY)).collect();
        for ((name, data), stream) in inputs.iter().zip(deflate_all(&cases)) {
            assert_round_trip(&format!("{name} of {len}"), data, stream);
        }
    }
}

/// Past DEFLATE_MAX_INPUT the positions would not fit in 16 bits: the caller gets 0.
#[test]
fn an_input_longer_than_the_maximum_is_refused() {
    let data = vec![0xFF; MAX_INPUT + 1];
    assert_eq!(deflate(&data, ROOMY), None);
}

#[test]
fn the_same_input_gives_the_same_stream_whatever_came_before() {
    let firmware = firmware_image(SECTOR, 9);
    let random = Rng(11).bytes(MAX_INPUT);
    let results = deflate_all(&[
        (&firmware, ROOMY),
        (&random, ROOMY),
        (&firmware, ROOMY),
        (&[], ROOMY),
        (&firmware, ROOMY),
    ]);
    assert_eq!(results[0], results[2]);
    assert_eq!(results[0], results[4]);
}

/// Every capacity below the stream's length gives 0 (and, checked by the driver, no byte
/// written past the buffer); the exact length gives the same stream as a roomy buffer.
#[test]
fn a_stream_that_does_not_fit_is_refused_at_every_capacity() {
    let firmware = firmware_image(SECTOR, 2);
    let text = text(2000, 4);
    let erased = vec![0xFF; SECTOR];
    for (name, data) in [
        ("firmware", &firmware),
        ("text", &text),
        ("erased", &erased),
    ] {
        let full = deflate(data, ROOMY).unwrap();
        let length = full.len() as u32;
        let mut cases: Vec<(&[u8], u32)> = (0..length).map(|cap| (data.as_slice(), cap)).collect();
        cases.push((data, length));
        cases.push((data, length + 1));
        let results = deflate_all(&cases);
        for (capacity, result) in (0..length).zip(&results) {
            assert_eq!(
                *result, None,
                "{name}: a {length}-byte stream in {capacity} bytes"
            );
        }
        assert_eq!(
            results[length as usize].as_ref(),
            Some(&full),
            "{name}: exact fit"
        );
        assert_eq!(
            results[length as usize + 1].as_ref(),
            Some(&full),
            "{name}: a byte spare"
        );
    }
}

/// The stub sends a block raw when its stream is not shorter: with the capacity set to the
/// input's length, random data is refused.
#[test]
fn incompressible_data_does_not_fit_in_its_own_length() {
    for len in [1, 100, SECTOR, 16384, MAX_INPUT] {
        let data = Rng(len as u64).bytes(len);
        assert_eq!(deflate(&data, len as u32), None, "{len} random bytes");
    }
}

#[test]
fn erased_and_zeroed_sectors_shrink_to_a_few_bytes() {
    for byte in [0xFF, 0x00] {
        let stream = deflate(&[byte; SECTOR], SECTOR as u32).unwrap();
        assert!(
            stream.len() <= 32,
            "{} bytes for a sector of {byte:#04x}",
            stream.len()
        );
        assert_eq!(inflate(&stream), [byte; SECTOR]);
    }
}

/// The sample Sonoff flash's firmware, sector by sector and in 16 KiB blocks: within 3% of
/// what zlib at level 6 makes of the same blocks (the compressor's window is 4 KiB).
#[test]
fn firmware_compresses_about_as_well_as_zlib_6_block_by_block() {
    let flash = sonoff_like_flash(1 << 20, 1);
    let firmware = &flash[..0x7_0000];
    for block in [SECTOR, 16384] {
        let cases: Vec<(&[u8], u32)> = firmware
            .chunks(block)
            .map(|chunk| (chunk, chunk.len() as u32))
            .collect();
        let mut ours = 0;
        for ((chunk, _), stream) in cases.iter().zip(deflate_all(&cases)) {
            ours += assert_round_trip("firmware block", chunk, stream);
        }
        let zlib: usize = firmware.chunks(block).map(zlib6).sum();
        let ratio = ours as f64 / firmware.len() as f64;
        let zlib_ratio = zlib as f64 / firmware.len() as f64;
        assert!(
            ratio < zlib_ratio + 0.03,
            "{block}-byte blocks: {ratio:.3} against zlib -6's {zlib_ratio:.3}"
        );
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Random bytes, runs of few distinct bytes, text, or a slice of firmware with bytes changed.
fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..5000),
        (
            1u8..=16,
            prop::collection::vec((any::<u8>(), 1usize..400), 0..200)
        )
            .prop_map(|(k, runs)| {
                runs.into_iter()
                    .flat_map(|(b, n)| std::iter::repeat_n(b % k, n))
                    .take(MAX_INPUT)
                    .collect()
            }),
        (0usize..=MAX_INPUT, any::<u64>()).prop_map(|(len, seed)| text(len, seed | 1)),
        (
            0usize..=MAX_INPUT,
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..50)
        )
            .prop_map(|(len, changes)| {
                let mut data = firmware_image(len.max(64), 6)[..len].to_vec();
                for (at, byte) in changes {
                    if !data.is_empty() {
                        let i = at % data.len();
                        data[i] = byte;
                    }
                }
                data
            }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any input compresses to a stream flate2 inflates to exactly that input; with the
    /// capacity cut to anything, the answer is the same stream or 0.
    #[test]
    fn any_input_round_trips_or_is_refused(data in data_strategy(), cut in any::<u32>()) {
        let full = deflate(&data, ROOMY);
        prop_assert!(full.is_some(), "no stream with room to spare");
        let full = full.unwrap();
        prop_assert!(inflate(&full) == data, "inflates to something else");
        let capacity = cut % (full.len() as u32 + 2);
        let cut_result = deflate(&data, capacity);
        if capacity >= full.len() as u32 {
            prop_assert_eq!(cut_result, Some(full));
        } else {
            prop_assert_eq!(cut_result, None);
        }
    }
}
