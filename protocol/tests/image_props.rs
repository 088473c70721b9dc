//! Property tests for the ESP8266 image format: building then parsing gives
//! the image back with a valid checksum, and no input makes the parser panic.

use esp_protocol::flash_params::{
    FlashFreq, FlashMode, FlashParamOverrides, FlashParams, FlashSize,
};
use esp_protocol::image::{
    parse, patch_flash_params, Image, ImageVersion, Segment, V2Prefix, CHECKSUM_SEED,
    IMAGE_V1_MAGIC, IMAGE_V2_MAGIC, MAX_SEGMENTS,
};
use proptest::prelude::*;

fn segment() -> impl Strategy<Value = Segment> {
    (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(load_address, data)| Segment { load_address, data })
}

fn flash_params() -> impl Strategy<Value = FlashParams> {
    (any::<u8>(), any::<u8>()).prop_map(|(mode_byte, size_freq_byte)| FlashParams {
        mode_byte,
        size_freq_byte,
    })
}

fn v2_prefix() -> impl Strategy<Value = V2Prefix> {
    (any::<u8>(), flash_params(), any::<u32>(), segment()).prop_map(
        |(header_segment_count, flash_params, entry, irom)| V2Prefix {
            header_segment_count,
            flash_params,
            entry,
            irom,
        },
    )
}

fn image() -> impl Strategy<Value = Image> {
    (
        flash_params(),
        any::<u32>(),
        prop::collection::vec(segment(), 0..=MAX_SEGMENTS),
        prop::option::of(v2_prefix()),
    )
        .prop_map(|(flash_params, entry, segments, v2_prefix)| Image {
            flash_params,
            entry,
            segments,
            v2_prefix,
        })
}

fn overrides() -> impl Strategy<Value = FlashParamOverrides> {
    (
        prop::option::of(prop::sample::select(FlashMode::ALL.to_vec())),
        prop::option::of(prop::sample::select(FlashSize::ALL.to_vec())),
        prop::option::of(prop::sample::select(FlashFreq::ALL.to_vec())),
    )
        .prop_map(|(mode, size, freq)| FlashParamOverrides { mode, size, freq })
}

/// A change to a valid image's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Set {
        index: prop::sample::Index,
        value: u8,
    },
    Truncate {
        index: prop::sample::Index,
    },
    Append {
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(index, value)| Mutation::Set { index, value }),
        any::<prop::sample::Index>().prop_map(|index| Mutation::Truncate { index }),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Set { index, value } if !bytes.is_empty() => {
            let at = index.index(bytes.len());
            bytes[at] = *value;
        }
        Mutation::Truncate { index } if !bytes.is_empty() => {
            bytes.truncate(index.index(bytes.len()))
        }
        Mutation::Append { bytes: extra } => bytes.extend_from_slice(extra),
        _ => {}
    }
}

/// The checksum computed independently of the library: 0xEF XOR every loaded byte.
fn xor_checksum(segments: &[Segment]) -> u8 {
    let mut checksum = CHECKSUM_SEED;
    for byte in segments.iter().flat_map(|segment| segment.data.iter()) {
        checksum ^= byte;
    }
    checksum
}

proptest! {
    #[test]
    fn build_then_parse_round_trips(image in image(), trailing in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = image.build().unwrap();
        let image_len = bytes.len();
        bytes.extend_from_slice(&trailing);

        let parsed = parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.image, &image);
        prop_assert_eq!(parsed.len, image_len);
        prop_assert_eq!(parsed.verify(), Ok(()));
        prop_assert_eq!(parsed.checksum.stored, xor_checksum(&image.segments));
        prop_assert_eq!(parsed.crc32.is_some(), image.version() == ImageVersion::V2);
    }

    #[test]
    fn v1_checksum_is_the_last_byte_of_a_16_byte_block(
        flash_params in flash_params(),
        entry in any::<u32>(),
        segments in prop::collection::vec(segment(), 0..=MAX_SEGMENTS),
    ) {
        let image = Image { flash_params, entry, segments, v2_prefix: None };
        let bytes = image.build().unwrap();
        prop_assert_eq!(bytes.len() % 16, 0);
        prop_assert_eq!(bytes[bytes.len() - 1], xor_checksum(&image.segments));
        let segments_end = 8 + image.segments.iter().map(|s| 8 + s.data.len()).sum::<usize>();
        prop_assert!(bytes.len() - 1 - segments_end < 16);
        prop_assert!(bytes[segments_end..bytes.len() - 1].iter().all(|&b| b == 0));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_bytes_behind_a_magic(
        magic in prop::sample::select(vec![IMAGE_V1_MAGIC, IMAGE_V2_MAGIC]),
        segment_count in 0u8..4,
        rest in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = vec![magic, segment_count];
        bytes.extend_from_slice(&rest);
        if let Ok(parsed) = parse(&bytes) {
            prop_assert!(parsed.len <= bytes.len());
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_images(
        image in image(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = image.build().unwrap();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        if let Ok(parsed) = parse(&bytes) {
            prop_assert!(parsed.len <= bytes.len());
            let _ = parsed.verify();
        }
    }

    #[test]
    fn patching_changes_only_header_bytes_2_and_3(
        flash_params in flash_params(),
        entry in any::<u32>(),
        segments in prop::collection::vec(segment(), 0..=MAX_SEGMENTS),
        overrides in overrides(),
    ) {
        let image = Image { flash_params, entry, segments, v2_prefix: None };
        let original = image.build().unwrap();
        let mut patched = original.clone();
        patch_flash_params(&mut patched, 0, &overrides);

        let expected = flash_params.with_overrides(&overrides);
        prop_assert_eq!(&patched[2..4], &[expected.mode_byte, expected.size_freq_byte]);
        prop_assert_eq!(&patched[..2], &original[..2]);
        prop_assert_eq!(&patched[4..], &original[4..]);
        prop_assert_eq!(parse(&patched).unwrap().verify(), Ok(()));
    }
}
