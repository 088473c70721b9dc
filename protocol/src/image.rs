//! ESP8266 firmware images: the ROM's version-1 format (magic 0xE9) and the
//! SDK's version-2 format (magic 0xEA), parsed from and built into bytes.
//!
//! Version 1: an 8-byte header (magic, segment count, flash mode, size/freq
//! byte, entry point u32 LE), the segments (load address u32 LE, length u32 LE,
//! data), zero padding up to the last byte of a 16-byte block, and there a
//! checksum byte: 0xEF XORed with every segment data byte.
//!
//! Version 2: an 8-byte header with magic 0xEA, one irom0 segment that the
//! checksum does not cover, a complete version-1 image, and a CRC32 of all the
//! preceding bytes.

use std::fmt;

use crate::flash_params::{FlashParamOverrides, FlashParams};

/// First byte of a version-1 image, and of the image embedded in a version-2 image.
pub const IMAGE_V1_MAGIC: u8 = 0xE9;
/// First byte of a version-2 (SDK) image.
pub const IMAGE_V2_MAGIC: u8 = 0xEA;
/// The segment-count byte of a version-2 header as the SDK writes it.
pub const V2_HEADER_SEGMENT_COUNT: u8 = 4;
/// The segment checksum's seed: the same XOR-0xEF checksum as the loader's data blocks.
pub use crate::packet::CHECKSUM_SEED;
/// The most segments an image may have (esptool refuses more).
pub const MAX_SEGMENTS: usize = 16;
/// The longest segment esptool will write: just under 16 MiB.
pub const MAX_SEGMENT_LEN: usize = 16 * 1024 * 1024 - 1;
/// The flash offset the ROM boots from, the only place write_flash patches flash parameters.
pub const BOOTLOADER_FLASH_OFFSET: u32 = 0;

const HEADER_LEN: usize = 8;
const SEGMENT_HEADER_LEN: usize = 8;
const CHECKSUM_BLOCK: usize = 16;
const CRC32_LEN: usize = 4;

/// A problem found while parsing, verifying or building an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The first byte of a header is not an image magic.
    #[error(
        "bad image magic {found:#04x} at offset {offset:#x}: expected {}",
        magic_list(expected)
    )]
    BadMagic {
        /// Offset of the header.
        offset: usize,
        /// The byte found there.
        found: u8,
        /// The magic bytes allowed there.
        expected: &'static [u8],
    },
    /// The data ends inside a fixed-size field.
    #[error(
        "image truncated: {what} at offset {offset:#x} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        /// The field: "image header", "segment header", "checksum" or "CRC32".
        what: &'static str,
        /// Offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// The data ends inside a segment's data.
    #[error(
        "image truncated: segment at offset {offset:#x} (load address {load_address:#010x}) \
         declares {length} bytes, only {available} left"
    )]
    TruncatedSegment {
        /// Offset of the segment header.
        offset: usize,
        /// The segment's load address.
        load_address: u32,
        /// The length the segment header declares.
        length: u32,
        /// Bytes left after the segment header.
        available: usize,
    },
    /// More segments than the loader accepts.
    #[error("image has {count} segments: at most {MAX_SEGMENTS} allowed")]
    TooManySegments {
        /// The segment count.
        count: usize,
    },
    /// A segment too long to build.
    #[error("segment at load address {load_address:#010x} is {length} bytes: at most {MAX_SEGMENT_LEN} allowed")]
    SegmentTooLong {
        /// The segment's load address.
        load_address: u32,
        /// Its length.
        length: usize,
    },
    /// The stored checksum byte differs from the one computed from the segments.
    #[error("image checksum mismatch: expected {expected:#04x}, got {got:#04x}")]
    ChecksumMismatch {
        /// The checksum computed from the segment data.
        expected: u8,
        /// The checksum stored in the image.
        got: u8,
    },
    /// The stored CRC32 of a version-2 image differs from the one computed.
    #[error("image CRC32 mismatch: expected {expected:#010x}, got {got:#010x}")]
    Crc32Mismatch {
        /// The CRC32 computed from the image bytes.
        expected: u32,
        /// The CRC32 stored at the end of the image.
        got: u32,
    },
}

fn magic_list(magics: &[u8]) -> String {
    magics
        .iter()
        .map(|m| format!("{m:#04x}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A block of data the loader copies to `load_address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Where the data goes in the chip's address space.
    pub load_address: u32,
    /// The segment's bytes.
    pub data: Vec<u8>,
}

/// The part of a version-2 image that comes before its embedded version-1 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Prefix {
    /// Byte 1 of the 0xEA header; not a real count, the SDK always writes 4.
    pub header_segment_count: u8,
    /// Bytes 2 and 3 of the 0xEA header (normally equal to the embedded header's).
    pub flash_params: FlashParams,
    /// The entry point in the 0xEA header (normally equal to the embedded header's).
    pub entry: u32,
    /// The irom0 text, mapped from flash rather than loaded; the SDK stores
    /// load address 0 and pads it to 16 bytes so the embedded image is 16-aligned.
    pub irom: Segment,
}

/// Which image format an [`Image`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageVersion {
    /// The ROM's format, magic 0xE9.
    V1,
    /// The SDK's format, magic 0xEA.
    V2,
}

/// The contents of an ESP8266 firmware image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Bytes 2 and 3 of the 0xE9 header, kept raw so unknown values survive.
    pub flash_params: FlashParams,
    /// The entry point in the 0xE9 header.
    pub entry: u32,
    /// The segments the loader copies to RAM, in file order.
    pub segments: Vec<Segment>,
    /// For a version-2 image, its 0xEA header and irom0 segment.
    pub v2_prefix: Option<V2Prefix>,
}

impl Image {
    /// The format this image is built in.
    pub fn version(&self) -> ImageVersion {
        match self.v2_prefix {
            Some(_) => ImageVersion::V2,
            None => ImageVersion::V1,
        }
    }

    /// The checksum byte the loader expects: 0xEF XORed with every loaded segment's data.
    pub fn compute_checksum(&self) -> u8 {
        self.segments
            .iter()
            .flat_map(|segment| &segment.data)
            .fold(CHECKSUM_SEED, |checksum, byte| checksum ^ byte)
    }

    /// Appends the image's bytes to `out`, with a freshly computed checksum (and CRC32 for version 2).
    ///
    /// Segments are written exactly as given; the loader expects lengths that are multiples of 4.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), ImageError> {
        self.check_buildable()?;
        let start = out.len();
        if let Some(prefix) = &self.v2_prefix {
            let header = Header {
                magic: IMAGE_V2_MAGIC,
                segment_count: prefix.header_segment_count,
                flash_params: prefix.flash_params,
                entry: prefix.entry,
            };
            header.write_to(out);
            write_segment(out, &prefix.irom);
        }
        let header = Header {
            magic: IMAGE_V1_MAGIC,
            segment_count: self.segments.len() as u8, // at most MAX_SEGMENTS, checked above
            flash_params: self.flash_params,
            entry: self.entry,
        };
        header.write_to(out);
        for segment in &self.segments {
            write_segment(out, segment);
        }
        out.resize(out.len() + checksum_padding(out.len() - start), 0);
        out.push(self.compute_checksum());
        if self.v2_prefix.is_some() {
            let crc = esp8266_crc32(&out[start..]);
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Ok(())
    }

    /// The image's bytes, with a freshly computed checksum (and CRC32 for version 2).
    pub fn build(&self) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    fn check_buildable(&self) -> Result<(), ImageError> {
        if self.segments.len() > MAX_SEGMENTS {
            return Err(ImageError::TooManySegments {
                count: self.segments.len(),
            });
        }
        let irom = self.v2_prefix.iter().map(|prefix| &prefix.irom);
        match irom
            .chain(&self.segments)
            .find(|segment| segment.data.len() > MAX_SEGMENT_LEN)
        {
            Some(segment) => Err(ImageError::SegmentTooLong {
                load_address: segment.load_address,
                length: segment.data.len(),
            }),
            None => Ok(()),
        }
    }
}

/// A value stored in an image next to the value computed from its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCheck<T> {
    /// The value read from the image.
    pub stored: T,
    /// The value computed from the image's contents.
    pub computed: T,
}

impl<T: PartialEq> StoredCheck<T> {
    /// True when the stored value is the computed one.
    pub fn is_valid(&self) -> bool {
        self.stored == self.computed
    }
}

/// An image read from bytes, with what was stored for integrity checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedImage {
    /// The image's contents.
    pub image: Image,
    /// How many bytes the image occupies; anything after it is not part of it.
    pub len: usize,
    /// The checksum byte.
    pub checksum: StoredCheck<u8>,
    /// The CRC32 at the end of a version-2 image.
    pub crc32: Option<StoredCheck<u32>>,
}

impl ParsedImage {
    /// Checks the stored checksum and, for version 2, the CRC32.
    pub fn verify(&self) -> Result<(), ImageError> {
        if !self.checksum.is_valid() {
            return Err(ImageError::ChecksumMismatch {
                expected: self.checksum.computed,
                got: self.checksum.stored,
            });
        }
        match self.crc32 {
            Some(crc) if !crc.is_valid() => Err(ImageError::Crc32Mismatch {
                expected: crc.computed,
                got: crc.stored,
            }),
            _ => Ok(()),
        }
    }
}

/// Parses the image at the start of `data`; bytes after the image are ignored.
///
/// A checksum or CRC32 that does not match is not an error here: see [`ParsedImage::verify`].
pub fn parse(data: &[u8]) -> Result<ParsedImage, ImageError> {
    match data.first() {
        Some(&IMAGE_V2_MAGIC) => parse_v2(data),
        _ => {
            let body = parse_v1_body(data, 0, &[IMAGE_V1_MAGIC, IMAGE_V2_MAGIC])?;
            Ok(ParsedImage {
                checksum: body.checksum(),
                len: body.end,
                image: body.image,
                crc32: None,
            })
        }
    }
}

fn parse_v2(data: &[u8]) -> Result<ParsedImage, ImageError> {
    let header = Header::read(data, 0, &[IMAGE_V2_MAGIC])?;
    let (irom, v1_offset) = read_segment(data, HEADER_LEN)?;
    let mut body = parse_v1_body(data, v1_offset, &[IMAGE_V1_MAGIC])?;
    let crc_bytes = read_field(data, body.end, CRC32_LEN, "CRC32")?;
    let crc32 = StoredCheck {
        stored: u32::from_le_bytes(
            crc_bytes
                .try_into()
                .expect("read_field returns CRC32_LEN bytes"),
        ),
        computed: esp8266_crc32(&data[..body.end]),
    };
    body.image.v2_prefix = Some(V2Prefix {
        header_segment_count: header.segment_count,
        flash_params: header.flash_params,
        entry: header.entry,
        irom,
    });
    Ok(ParsedImage {
        checksum: body.checksum(),
        len: body.end + CRC32_LEN,
        image: body.image,
        crc32: Some(crc32),
    })
}

/// A version-1 image read from inside `data`, whose alignment counts from the start of `data`.
struct V1Body {
    image: Image,
    stored_checksum: u8,
    end: usize,
}

impl V1Body {
    fn checksum(&self) -> StoredCheck<u8> {
        StoredCheck {
            stored: self.stored_checksum,
            computed: self.image.compute_checksum(),
        }
    }
}

fn parse_v1_body(
    data: &[u8],
    offset: usize,
    allowed_magic: &'static [u8],
) -> Result<V1Body, ImageError> {
    let header = Header::read(data, offset, allowed_magic)?;
    let count = usize::from(header.segment_count);
    if count > MAX_SEGMENTS {
        return Err(ImageError::TooManySegments { count });
    }
    let mut segments = Vec::with_capacity(count);
    let mut position = offset + HEADER_LEN;
    for _ in 0..count {
        let (segment, next) = read_segment(data, position)?;
        segments.push(segment);
        position = next;
    }
    let checksum_offset = position + checksum_padding(position);
    let stored_checksum = read_field(data, checksum_offset, 1, "checksum")?[0];
    Ok(V1Body {
        image: Image {
            flash_params: header.flash_params,
            entry: header.entry,
            segments,
            v2_prefix: None,
        },
        stored_checksum,
        end: checksum_offset + 1,
    })
}

/// The zero bytes between the segments ending at `position` and the checksum,
/// which sits in the last byte of a 16-byte block.
fn checksum_padding(position: usize) -> usize {
    CHECKSUM_BLOCK - 1 - position % CHECKSUM_BLOCK
}

/// The 8-byte header that starts both image versions.
struct Header {
    magic: u8,
    segment_count: u8,
    flash_params: FlashParams,
    entry: u32,
}

impl Header {
    fn read(
        data: &[u8],
        offset: usize,
        allowed_magic: &'static [u8],
    ) -> Result<Header, ImageError> {
        if let Some(&found) = data.get(offset) {
            if !allowed_magic.contains(&found) {
                return Err(ImageError::BadMagic {
                    offset,
                    found,
                    expected: allowed_magic,
                });
            }
        }
        let bytes = read_field(data, offset, HEADER_LEN, "image header")?;
        Ok(Header {
            magic: bytes[0],
            segment_count: bytes[1],
            flash_params: FlashParams {
                mode_byte: bytes[2],
                size_freq_byte: bytes[3],
            },
            entry: read_u32_le(&bytes[4..8]),
        })
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.magic,
            self.segment_count,
            self.flash_params.mode_byte,
            self.flash_params.size_freq_byte,
        ]);
        out.extend_from_slice(&self.entry.to_le_bytes());
    }
}

/// Reads the segment whose header is at `offset`; returns it and the offset after its data.
fn read_segment(data: &[u8], offset: usize) -> Result<(Segment, usize), ImageError> {
    let header = read_field(data, offset, SEGMENT_HEADER_LEN, "segment header")?;
    let load_address = read_u32_le(&header[0..4]);
    let length = read_u32_le(&header[4..8]);
    let data_start = offset + SEGMENT_HEADER_LEN;
    let available = data.len() - data_start;
    let data_end = match usize::try_from(length) {
        Ok(length) if length <= available => data_start + length,
        _ => {
            return Err(ImageError::TruncatedSegment {
                offset,
                load_address,
                length,
                available,
            })
        }
    };
    let segment = Segment {
        load_address,
        data: data[data_start..data_end].to_vec(),
    };
    Ok((segment, data_end))
}

fn write_segment(out: &mut Vec<u8>, segment: &Segment) {
    out.extend_from_slice(&segment.load_address.to_le_bytes());
    // The length fits: check_buildable limits it to MAX_SEGMENT_LEN.
    out.extend_from_slice(&(segment.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&segment.data);
}

fn read_field<'a>(
    data: &'a [u8],
    offset: usize,
    needed: usize,
    what: &'static str,
) -> Result<&'a [u8], ImageError> {
    data.get(offset..)
        .and_then(|rest| rest.get(..needed))
        .ok_or(ImageError::Truncated {
            what,
            offset,
            needed,
            available: data.len().saturating_sub(offset),
        })
}

fn read_u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("caller passes exactly 4 bytes"))
}

/// The CRC32 the SDK bootloader checks at the end of a version-2 image: the
/// standard (zlib) CRC32, inverted when its top bit is set and plus one otherwise.
pub fn esp8266_crc32(data: &[u8]) -> u32 {
    let crc = crc32fast::hash(data);
    if crc & 0x8000_0000 != 0 {
        !crc
    } else {
        crc + 1
    }
}

/// The flash parameters in the header at the start of `data`, if it starts with an image magic.
pub fn read_flash_params(data: &[u8]) -> Option<FlashParams> {
    match data {
        [IMAGE_V1_MAGIC | IMAGE_V2_MAGIC, _, mode_byte, size_freq_byte, _, _, _, _, ..] => {
            Some(FlashParams {
                mode_byte: *mode_byte,
                size_freq_byte: *size_freq_byte,
            })
        }
        _ => None,
    }
}

/// What [`patch_flash_params`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashParamsPatch {
    /// Nothing to do: the data is not for the boot offset, or every value is "keep".
    NotApplicable,
    /// The data does not start with a version-1 header, so it was left alone.
    NotAnImage,
    /// The data starts with 0xE9 but is not a valid image, so it was left alone.
    InvalidImage(ImageError),
    /// The header already held the requested values.
    Unchanged(FlashParams),
    /// Header bytes 2 and 3 were rewritten.
    Changed {
        /// The values before.
        before: FlashParams,
        /// The values written.
        after: FlashParams,
    },
}

impl fmt::Display for FlashParamsPatch {
    /// Describes the outcome the way a flasher would report it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashParamsPatch::NotApplicable => f.write_str("flash parameters not changed"),
            FlashParamsPatch::NotAnImage => f.write_str(
                "data does not look like an image, so flash parameters were not changed",
            ),
            FlashParamsPatch::InvalidImage(error) => {
                write!(
                    f,
                    "data is not a valid image ({error}), so flash parameters were not changed"
                )
            }
            FlashParamsPatch::Unchanged(params) => write!(f, "flash parameters already {params}"),
            FlashParamsPatch::Changed { after, .. } => write!(f, "flash parameters set to {after}"),
        }
    }
}

/// Rewrites header bytes 2 and 3 of a version-1 image about to be written at
/// `flash_offset`, as esptool's write_flash does: only at the boot offset, only
/// for data that parses as an image. The checksum does not cover the header,
/// so it stays valid.
pub fn patch_flash_params(
    data: &mut [u8],
    flash_offset: u32,
    overrides: &FlashParamOverrides,
) -> FlashParamsPatch {
    if flash_offset != BOOTLOADER_FLASH_OFFSET || overrides.keeps_all() {
        return FlashParamsPatch::NotApplicable;
    }
    if data.len() < HEADER_LEN || data[0] != IMAGE_V1_MAGIC {
        return FlashParamsPatch::NotAnImage;
    }
    if let Err(error) = parse(data) {
        return FlashParamsPatch::InvalidImage(error);
    }
    let before = FlashParams {
        mode_byte: data[2],
        size_freq_byte: data[3],
    };
    let after = before.with_overrides(overrides);
    if after == before {
        return FlashParamsPatch::Unchanged(before);
    }
    data[2] = after.mode_byte;
    data[3] = after.size_freq_byte;
    FlashParamsPatch::Changed { before, after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash_params::{FlashFreq, FlashMode, FlashSize};

    fn two_segment_image() -> Image {
        Image {
            flash_params: FlashParams::new(FlashMode::Dio, FlashSize::Size4M, FlashFreq::Freq40M),
            entry: 0x4010_0004,
            segments: vec![
                Segment {
                    load_address: 0x4010_0000,
                    data: vec![0x01, 0x02, 0x03, 0x04],
                },
                Segment {
                    load_address: 0x3FFE_8000,
                    data: vec![0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80],
                },
            ],
            v2_prefix: None,
        }
    }

    /// The two-segment image by hand: segments end at offset 36, so 11 padding
    /// bytes put the checksum at 47, the last byte of the third 16-byte block.
    /// Checksum: 0xEF ^ (1^2^3^4 = 0x04) ^ (0x10^0x20^...^0x80 = 0x80) = 0x6B.
    const TWO_SEGMENT_BYTES: [u8; 48] = [
        0xE9, 0x02, 0x02, 0x40, 0x04, 0x00, 0x10,
        0x40, // magic, 2 segments, dio, 4MB@40m, entry
        0x00, 0x00, 0x10, 0x40, 0x04, 0x00, 0x00, 0x00, // segment 0: 0x40100000, 4 bytes
        0x01, 0x02, 0x03, 0x04, // segment 0 data
        0x00, 0x80, 0xFE, 0x3F, 0x08, 0x00, 0x00, 0x00, // segment 1: 0x3FFE8000, 8 bytes
        0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, // segment 1 data
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // padding
        0x6B, // checksum
    ];

    #[test]
    fn builds_two_segment_v1_image_byte_exact() {
        let image = two_segment_image();
        assert_eq!(image.compute_checksum(), 0x6B);
        assert_eq!(image.build().unwrap(), TWO_SEGMENT_BYTES);
    }

    #[test]
    fn parses_two_segment_v1_image() {
        let parsed = parse(&TWO_SEGMENT_BYTES).unwrap();
        assert_eq!(parsed.image, two_segment_image());
        assert_eq!(parsed.image.version(), ImageVersion::V1);
        assert_eq!(parsed.len, 48);
        assert_eq!(
            parsed.checksum,
            StoredCheck {
                stored: 0x6B,
                computed: 0x6B
            }
        );
        assert_eq!(parsed.crc32, None);
        assert_eq!(parsed.verify(), Ok(()));
        assert_eq!(parsed.image.flash_params.mode(), Ok(FlashMode::Dio));
        assert_eq!(parsed.image.flash_params.size(), Ok(FlashSize::Size4M));
        assert_eq!(parsed.image.flash_params.freq(), Ok(FlashFreq::Freq40M));
    }

    #[test]
    fn writes_after_existing_bytes_with_alignment_relative_to_image_start() {
        let mut out = vec![0xAA; 5];
        two_segment_image().write_to(&mut out).unwrap();
        assert_eq!(&out[..5], &[0xAA; 5]);
        assert_eq!(&out[5..], TWO_SEGMENT_BYTES);
    }

    #[test]
    fn padding_runs_to_the_last_byte_of_a_16_byte_block() {
        assert_eq!(checksum_padding(8), 7);
        assert_eq!(checksum_padding(15), 0);
        assert_eq!(checksum_padding(16), 15);
        assert_eq!(checksum_padding(36), 11);

        let empty = Image {
            flash_params: FlashParams::default(),
            entry: 0,
            segments: vec![],
            v2_prefix: None,
        };
        let bytes = empty.build().unwrap();
        assert_eq!(
            bytes,
            [
                0xE9,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                CHECKSUM_SEED
            ]
        );

        // 8 + 8 + 15 = 31 bytes of header and segment: the checksum follows directly.
        let snug = Image {
            segments: vec![Segment {
                load_address: 0,
                data: vec![0x11; 15],
            }],
            ..empty
        };
        let bytes = snug.build().unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(bytes[31], CHECKSUM_SEED ^ 0x11);
    }

    #[test]
    fn trailing_data_is_not_part_of_the_image() {
        let mut flash = TWO_SEGMENT_BYTES.to_vec();
        flash.extend_from_slice(&[0xFF; 4096]);
        let parsed = parse(&flash).unwrap();
        assert_eq!(parsed.len, 48);
        assert_eq!(parsed.image, two_segment_image());
    }

    #[test]
    fn unknown_flash_parameters_are_kept() {
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[2] = 0x07;
        bytes[3] = 0x7E;
        let parsed = parse(&bytes).unwrap();
        assert_eq!(
            parsed.image.flash_params,
            FlashParams {
                mode_byte: 0x07,
                size_freq_byte: 0x7E
            }
        );
        assert!(parsed.image.flash_params.size().is_err());
        assert_eq!(parsed.image.build().unwrap(), bytes);
    }

    #[test]
    fn bad_magic_reports_the_byte_found() {
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[0] = 0xE8;
        let err = parse(&bytes).unwrap_err();
        assert_eq!(
            err,
            ImageError::BadMagic {
                offset: 0,
                found: 0xE8,
                expected: &[0xE9, 0xEA]
            }
        );
        assert_eq!(
            err.to_string(),
            "bad image magic 0xe8 at offset 0x0: expected 0xe9 or 0xea"
        );
    }

    #[test]
    fn truncation_reports_where_and_how_much() {
        assert_eq!(
            parse(&[]),
            Err(ImageError::Truncated {
                what: "image header",
                offset: 0,
                needed: 8,
                available: 0
            })
        );
        assert_eq!(
            parse(&TWO_SEGMENT_BYTES[..12]),
            Err(ImageError::Truncated {
                what: "segment header",
                offset: 8,
                needed: 8,
                available: 4
            })
        );
        let err = parse(&TWO_SEGMENT_BYTES[..30]).unwrap_err();
        assert_eq!(
            err,
            ImageError::TruncatedSegment {
                offset: 20,
                load_address: 0x3FFE_8000,
                length: 8,
                available: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "image truncated: segment at offset 0x14 (load address 0x3ffe8000) declares 8 bytes, only 2 left"
        );
        assert_eq!(
            parse(&TWO_SEGMENT_BYTES[..47]),
            Err(ImageError::Truncated {
                what: "checksum",
                offset: 47,
                needed: 1,
                available: 0
            })
        );
    }

    #[test]
    fn huge_segment_length_is_truncation_not_a_panic() {
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&bytes),
            Err(ImageError::TruncatedSegment {
                offset: 8,
                load_address: 0x4010_0000,
                length: u32::MAX,
                available: 32
            })
        );
    }

    #[test]
    fn more_than_16_segments_is_rejected() {
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[1] = 17;
        assert_eq!(
            parse(&bytes),
            Err(ImageError::TooManySegments { count: 17 })
        );

        let mut image = two_segment_image();
        image.segments = vec![
            Segment {
                load_address: 0,
                data: vec![]
            };
            17
        ];
        assert_eq!(
            image.build(),
            Err(ImageError::TooManySegments { count: 17 })
        );
    }

    #[test]
    fn overlong_segment_is_not_built() {
        let mut image = two_segment_image();
        image.segments[1].data = vec![0; MAX_SEGMENT_LEN + 1];
        assert_eq!(
            image.build(),
            Err(ImageError::SegmentTooLong {
                load_address: 0x3FFE_8000,
                length: MAX_SEGMENT_LEN + 1
            })
        );
    }

    #[test]
    fn checksum_mismatch_is_found_by_verify() {
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[16] ^= 0xFF;
        let parsed = parse(&bytes).unwrap();
        let err = parsed.verify().unwrap_err();
        assert_eq!(
            err,
            ImageError::ChecksumMismatch {
                expected: 0x94,
                got: 0x6B
            }
        );
        assert_eq!(
            err.to_string(),
            "image checksum mismatch: expected 0x94, got 0x6b"
        );
    }

    #[test]
    fn esp8266_crc32_transforms_the_zlib_crc() {
        // zlib's CRC32 of "123456789" is 0xCBF43926: top bit set, so inverted.
        assert_eq!(esp8266_crc32(b"123456789"), 0x340B_C6D9);
        // zlib's CRC32 of "" is 0: top bit clear, so plus one.
        assert_eq!(esp8266_crc32(b""), 1);
    }

    fn v2_image() -> Image {
        Image {
            flash_params: FlashParams::new(FlashMode::Qio, FlashSize::Size1M, FlashFreq::Freq80M),
            entry: 0x4010_0010,
            segments: vec![Segment {
                load_address: 0x4010_0000,
                data: vec![0xAA, 0xBB, 0xCC, 0xDD],
            }],
            v2_prefix: Some(V2Prefix {
                header_segment_count: V2_HEADER_SEGMENT_COUNT,
                flash_params: FlashParams::new(
                    FlashMode::Qio,
                    FlashSize::Size1M,
                    FlashFreq::Freq80M,
                ),
                entry: 0x4010_0010,
                irom: Segment {
                    load_address: 0,
                    data: (0..16).collect(),
                },
            }),
        }
    }

    #[test]
    fn builds_v2_image_byte_exact() {
        let bytes = v2_image().build().unwrap();
        let mut expected = vec![0xEA, 0x04, 0x00, 0x2F, 0x10, 0x00, 0x10, 0x40];
        expected.extend_from_slice(&[0, 0, 0, 0, 16, 0, 0, 0]);
        expected.extend(0..16u8);
        // The embedded image starts at 32; its segments end at 52, so 11 padding bytes.
        expected.extend_from_slice(&[0xE9, 0x01, 0x00, 0x2F, 0x10, 0x00, 0x10, 0x40]);
        expected.extend_from_slice(&[
            0x00, 0x00, 0x10, 0x40, 0x04, 0x00, 0x00, 0x00, 0xAA, 0xBB, 0xCC, 0xDD,
        ]);
        expected.extend_from_slice(&[0; 11]);
        // The irom segment is not in the checksum: 0xEF^0xAA^0xBB^0xCC^0xDD = 0xEF.
        expected.push(0xEF);
        assert_eq!(expected.len(), 64);
        expected.extend_from_slice(&esp8266_crc32(&expected).to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn parses_v2_image_and_checks_crc() {
        let mut bytes = v2_image().build().unwrap();
        bytes.extend_from_slice(&[0xFF; 100]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.image, v2_image());
        assert_eq!(parsed.image.version(), ImageVersion::V2);
        assert_eq!(parsed.len, 68);
        assert_eq!(parsed.verify(), Ok(()));

        let stored = u32::from_le_bytes(bytes[64..68].try_into().unwrap());
        bytes[10] ^= 1; // inside the irom segment: only the CRC notices
        let parsed = parse(&bytes).unwrap();
        assert!(parsed.checksum.is_valid());
        assert_eq!(
            parsed.verify(),
            Err(ImageError::Crc32Mismatch {
                expected: esp8266_crc32(&bytes[..64]),
                got: stored
            })
        );
    }

    #[test]
    fn v2_embedded_image_must_be_v1() {
        let mut bytes = v2_image().build().unwrap();
        bytes[32] = 0xEA;
        assert_eq!(
            parse(&bytes),
            Err(ImageError::BadMagic {
                offset: 32,
                found: 0xEA,
                expected: &[0xE9]
            })
        );
        let bytes = v2_image().build().unwrap();
        assert_eq!(
            parse(&bytes[..66]),
            Err(ImageError::Truncated {
                what: "CRC32",
                offset: 64,
                needed: 4,
                available: 2
            })
        );
    }

    #[test]
    fn reads_flash_params_from_either_header() {
        assert_eq!(
            read_flash_params(&TWO_SEGMENT_BYTES),
            Some(FlashParams {
                mode_byte: 0x02,
                size_freq_byte: 0x40
            })
        );
        let v2 = v2_image().build().unwrap();
        assert_eq!(
            read_flash_params(&v2),
            Some(FlashParams {
                mode_byte: 0x00,
                size_freq_byte: 0x2F
            })
        );
        assert_eq!(read_flash_params(&TWO_SEGMENT_BYTES[..7]), None);
        assert_eq!(read_flash_params(&[0xFF; 16]), None);
    }

    #[test]
    fn patches_mode_and_size_keeping_frequency_and_checksum() {
        let mut bytes = TWO_SEGMENT_BYTES;
        let overrides = FlashParamOverrides {
            mode: Some(FlashMode::Dout),
            size: Some(FlashSize::Size1M),
            freq: None,
        };
        let outcome = patch_flash_params(&mut bytes, 0, &overrides);
        assert_eq!(
            outcome,
            FlashParamsPatch::Changed {
                before: FlashParams {
                    mode_byte: 0x02,
                    size_freq_byte: 0x40
                },
                after: FlashParams {
                    mode_byte: 0x03,
                    size_freq_byte: 0x20
                },
            }
        );
        assert_eq!(
            outcome.to_string(),
            "flash parameters set to mode dout, size 1MB, freq 40m"
        );
        assert_eq!(&bytes[2..4], &[0x03, 0x20]);
        assert_eq!(&bytes[..2], &TWO_SEGMENT_BYTES[..2]);
        assert_eq!(&bytes[4..], &TWO_SEGMENT_BYTES[4..]);
        assert_eq!(parse(&bytes).unwrap().verify(), Ok(()));

        assert_eq!(
            patch_flash_params(&mut bytes, 0, &overrides),
            FlashParamsPatch::Unchanged(FlashParams {
                mode_byte: 0x03,
                size_freq_byte: 0x20
            })
        );
    }

    #[test]
    fn patch_leaves_other_data_alone() {
        let dio = FlashParamOverrides {
            mode: Some(FlashMode::Dio),
            ..Default::default()
        };
        let mut bytes = TWO_SEGMENT_BYTES;
        bytes[2] = FlashMode::Qio.header_byte();
        let original = bytes;

        assert_eq!(
            patch_flash_params(&mut bytes, 0x1000, &dio),
            FlashParamsPatch::NotApplicable
        );
        assert_eq!(
            patch_flash_params(&mut bytes, 0, &FlashParamOverrides::default()),
            FlashParamsPatch::NotApplicable
        );
        assert_eq!(
            patch_flash_params(&mut bytes[..7], 0, &dio),
            FlashParamsPatch::NotAnImage
        );
        let mut v2 = v2_image().build().unwrap();
        assert_eq!(
            patch_flash_params(&mut v2, 0, &dio),
            FlashParamsPatch::NotAnImage
        );
        assert_eq!(
            patch_flash_params(&mut bytes[..30], 0, &dio),
            FlashParamsPatch::InvalidImage(ImageError::TruncatedSegment {
                offset: 20,
                load_address: 0x3FFE_8000,
                length: 8,
                available: 2
            })
        );
        assert_eq!(bytes, original);
    }
}
