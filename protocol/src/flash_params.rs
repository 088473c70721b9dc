//! Flash parameters of the ESP8266: the SPI mode, chip size and clock that the
//! image header stores in bytes 2 and 3, and what a JEDEC flash ID says about
//! the chip.

use std::fmt;
use std::str::FromStr;

/// Which flash parameter an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// The SPI mode (header byte 2).
    Mode,
    /// The chip size (high nibble of header byte 3).
    Size,
    /// The SPI clock (low nibble of header byte 3).
    Freq,
}

impl ParamKind {
    /// The valid names, comma separated.
    fn names(self) -> String {
        match self {
            ParamKind::Mode => join(FlashMode::ALL.iter().map(|m| m.name().to_string())),
            ParamKind::Size => join(FlashSize::ALL.iter().map(|s| s.name().to_string())),
            ParamKind::Freq => join(FlashFreq::ALL.iter().map(|f| f.name().to_string())),
        }
    }

    /// The valid header values with their names, comma separated.
    fn values(self) -> String {
        let describe = |value: u8, name: &str| format!("{value:#04x} ({name})");
        match self {
            ParamKind::Mode => join(
                FlashMode::ALL
                    .iter()
                    .map(|m| describe(m.header_byte(), m.name())),
            ),
            ParamKind::Size => join(
                FlashSize::ALL
                    .iter()
                    .map(|s| describe(s.header_bits(), s.name())),
            ),
            ParamKind::Freq => join(
                FlashFreq::ALL
                    .iter()
                    .map(|f| describe(f.header_bits(), f.name())),
            ),
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamKind::Mode => "flash mode",
            ParamKind::Size => "flash size",
            ParamKind::Freq => "flash frequency",
        })
    }
}

/// A flash parameter name or header value that is not one of the valid choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlashParamError {
    /// A name (as typed by a user) that matches no choice.
    #[error("unknown {kind} \"{given}\": expected one of {}", kind.names())]
    UnknownName {
        /// Which parameter was being parsed.
        kind: ParamKind,
        /// The name as given.
        given: String,
    },
    /// A header value that matches no choice.
    #[error("unknown {kind} value {value:#04x}: expected one of {}", kind.values())]
    UnknownValue {
        /// Which parameter was being decoded.
        kind: ParamKind,
        /// The header value, masked to this parameter's bits.
        value: u8,
    },
}

/// Finds the item whose name matches `given`, ignoring ASCII case.
fn find_by_name<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    given: &str,
    kind: ParamKind,
) -> Result<T, FlashParamError> {
    all.iter()
        .copied()
        .find(|&item| name(item).eq_ignore_ascii_case(given))
        .ok_or_else(|| FlashParamError::UnknownName {
            kind,
            given: given.to_string(),
        })
}

/// The SPI flash access mode (image header byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashMode {
    /// Quad I/O: address and data on four lines.
    Qio = 0,
    /// Quad output: data on four lines.
    Qout = 1,
    /// Dual I/O: address and data on two lines.
    Dio = 2,
    /// Dual output: data on two lines.
    Dout = 3,
}

impl FlashMode {
    /// Every mode, in header-value order.
    pub const ALL: [FlashMode; 4] = [
        FlashMode::Qio,
        FlashMode::Qout,
        FlashMode::Dio,
        FlashMode::Dout,
    ];

    /// The esptool name: "qio", "qout", "dio" or "dout".
    pub fn name(self) -> &'static str {
        match self {
            FlashMode::Qio => "qio",
            FlashMode::Qout => "qout",
            FlashMode::Dio => "dio",
            FlashMode::Dout => "dout",
        }
    }

    /// The value of image header byte 2.
    pub fn header_byte(self) -> u8 {
        self as u8
    }

    /// Decodes image header byte 2.
    pub fn from_header_byte(byte: u8) -> Result<Self, FlashParamError> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.header_byte() == byte)
            .ok_or(FlashParamError::UnknownValue {
                kind: ParamKind::Mode,
                value: byte,
            })
    }
}

impl FromStr for FlashMode {
    type Err = FlashParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        find_by_name(&Self::ALL, Self::name, s, ParamKind::Mode)
    }
}

impl fmt::Display for FlashMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const KIB: u32 = 1024;
const MIB: u32 = 1024 * KIB;

/// The flash chip size and layout (high nibble of image header byte 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashSize {
    /// 256 KiB.
    Size256K,
    /// 512 KiB.
    Size512K,
    /// 1 MiB.
    Size1M,
    /// 2 MiB.
    Size2M,
    /// 4 MiB.
    Size4M,
    /// 2 MiB with the SDK's "c1" layout (1024 KiB + 1024 KiB OTA partitions).
    Size2MC1,
    /// 4 MiB with the SDK's "c1" layout (1024 KiB + 1024 KiB OTA partitions).
    Size4MC1,
    /// 8 MiB.
    Size8M,
    /// 16 MiB.
    Size16M,
}

impl FlashSize {
    /// Every size, smallest first, the -c1 layouts after their plain sizes.
    pub const ALL: [FlashSize; 9] = [
        FlashSize::Size256K,
        FlashSize::Size512K,
        FlashSize::Size1M,
        FlashSize::Size2M,
        FlashSize::Size4M,
        FlashSize::Size2MC1,
        FlashSize::Size4MC1,
        FlashSize::Size8M,
        FlashSize::Size16M,
    ];

    /// The esptool name, e.g. "1MB" or "2MB-c1".
    pub fn name(self) -> &'static str {
        match self {
            FlashSize::Size256K => "256KB",
            FlashSize::Size512K => "512KB",
            FlashSize::Size1M => "1MB",
            FlashSize::Size2M => "2MB",
            FlashSize::Size4M => "4MB",
            FlashSize::Size2MC1 => "2MB-c1",
            FlashSize::Size4MC1 => "4MB-c1",
            FlashSize::Size8M => "8MB",
            FlashSize::Size16M => "16MB",
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            FlashSize::Size256K => 256 * KIB,
            FlashSize::Size512K => 512 * KIB,
            FlashSize::Size1M => MIB,
            FlashSize::Size2M | FlashSize::Size2MC1 => 2 * MIB,
            FlashSize::Size4M | FlashSize::Size4MC1 => 4 * MIB,
            FlashSize::Size8M => 8 * MIB,
            FlashSize::Size16M => 16 * MIB,
        }
    }

    /// The plain (not -c1) size of exactly `bytes` bytes, if there is one.
    pub fn from_bytes(bytes: u32) -> Option<Self> {
        const PLAIN: [FlashSize; 7] = [
            FlashSize::Size256K,
            FlashSize::Size512K,
            FlashSize::Size1M,
            FlashSize::Size2M,
            FlashSize::Size4M,
            FlashSize::Size8M,
            FlashSize::Size16M,
        ];
        PLAIN.into_iter().find(|size| size.bytes() == bytes)
    }

    /// The high-nibble bits of header byte 3 (0x00..=0x90, low nibble clear).
    pub fn header_bits(self) -> u8 {
        match self {
            FlashSize::Size512K => 0x00,
            FlashSize::Size256K => 0x10,
            FlashSize::Size1M => 0x20,
            FlashSize::Size2M => 0x30,
            FlashSize::Size4M => 0x40,
            FlashSize::Size2MC1 => 0x50,
            FlashSize::Size4MC1 => 0x60,
            FlashSize::Size8M => 0x80,
            FlashSize::Size16M => 0x90,
        }
    }

    /// Decodes the high nibble of header byte 3; the low nibble is ignored.
    pub fn from_size_freq_byte(byte: u8) -> Result<Self, FlashParamError> {
        let bits = byte & 0xF0;
        Self::ALL
            .into_iter()
            .find(|size| size.header_bits() == bits)
            .ok_or(FlashParamError::UnknownValue {
                kind: ParamKind::Size,
                value: bits,
            })
    }
}

impl FromStr for FlashSize {
    type Err = FlashParamError;

    /// Parses an esptool size name, ignoring case ("1MB", "1mb", "2mb-C1").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        find_by_name(&Self::ALL, Self::name, s, ParamKind::Size)
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The SPI flash clock (low nibble of image header byte 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashFreq {
    /// 40 MHz.
    Freq40M,
    /// 26.7 MHz.
    Freq26M,
    /// 20 MHz.
    Freq20M,
    /// 80 MHz.
    Freq80M,
}

impl FlashFreq {
    /// Every frequency, in header-value order.
    pub const ALL: [FlashFreq; 4] = [
        FlashFreq::Freq40M,
        FlashFreq::Freq26M,
        FlashFreq::Freq20M,
        FlashFreq::Freq80M,
    ];

    /// The esptool name: "40m", "26m", "20m" or "80m".
    pub fn name(self) -> &'static str {
        match self {
            FlashFreq::Freq40M => "40m",
            FlashFreq::Freq26M => "26m",
            FlashFreq::Freq20M => "20m",
            FlashFreq::Freq80M => "80m",
        }
    }

    /// The low-nibble bits of header byte 3.
    pub fn header_bits(self) -> u8 {
        match self {
            FlashFreq::Freq40M => 0x0,
            FlashFreq::Freq26M => 0x1,
            FlashFreq::Freq20M => 0x2,
            FlashFreq::Freq80M => 0xF,
        }
    }

    /// Decodes the low nibble of header byte 3; the high nibble is ignored.
    pub fn from_size_freq_byte(byte: u8) -> Result<Self, FlashParamError> {
        let bits = byte & 0x0F;
        Self::ALL
            .into_iter()
            .find(|freq| freq.header_bits() == bits)
            .ok_or(FlashParamError::UnknownValue {
                kind: ParamKind::Freq,
                value: bits,
            })
    }
}

impl FromStr for FlashFreq {
    type Err = FlashParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        find_by_name(&Self::ALL, Self::name, s, ParamKind::Freq)
    }
}

impl fmt::Display for FlashFreq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Image header bytes 2 and 3 exactly as stored, so that unknown values survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlashParams {
    /// Header byte 2: the flash mode.
    pub mode_byte: u8,
    /// Header byte 3: flash size in the high nibble, frequency in the low nibble.
    pub size_freq_byte: u8,
}

impl FlashParams {
    /// The header bytes for known values.
    pub fn new(mode: FlashMode, size: FlashSize, freq: FlashFreq) -> Self {
        FlashParams {
            mode_byte: mode.header_byte(),
            size_freq_byte: size.header_bits() | freq.header_bits(),
        }
    }

    /// The decoded flash mode.
    pub fn mode(&self) -> Result<FlashMode, FlashParamError> {
        FlashMode::from_header_byte(self.mode_byte)
    }

    /// The decoded flash size.
    pub fn size(&self) -> Result<FlashSize, FlashParamError> {
        FlashSize::from_size_freq_byte(self.size_freq_byte)
    }

    /// The decoded flash frequency.
    pub fn freq(&self) -> Result<FlashFreq, FlashParamError> {
        FlashFreq::from_size_freq_byte(self.size_freq_byte)
    }

    /// These bytes with each `Some` override replacing its field; `None` keeps the stored bits.
    pub fn with_overrides(self, overrides: &FlashParamOverrides) -> Self {
        let mode_byte = overrides
            .mode
            .map_or(self.mode_byte, FlashMode::header_byte);
        let size_bits = overrides
            .size
            .map_or(self.size_freq_byte & 0xF0, FlashSize::header_bits);
        let freq_bits = overrides
            .freq
            .map_or(self.size_freq_byte & 0x0F, FlashFreq::header_bits);
        FlashParams {
            mode_byte,
            size_freq_byte: size_bits | freq_bits,
        }
    }
}

impl fmt::Display for FlashParams {
    /// Shows e.g. "mode dio, size 4MB, freq 40m", with raw bits for unknown values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode() {
            Ok(mode) => write!(f, "mode {mode}")?,
            Err(_) => write!(f, "mode unknown ({:#04x})", self.mode_byte)?,
        }
        match self.size() {
            Ok(size) => write!(f, ", size {size}")?,
            Err(_) => write!(f, ", size unknown ({:#04x})", self.size_freq_byte & 0xF0)?,
        }
        match self.freq() {
            Ok(freq) => write!(f, ", freq {freq}"),
            Err(_) => write!(f, ", freq unknown ({:#03x})", self.size_freq_byte & 0x0F),
        }
    }
}

/// New flash parameters for an image header; `None` means "keep" the image's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlashParamOverrides {
    /// The new flash mode, or keep.
    pub mode: Option<FlashMode>,
    /// The new flash size, or keep.
    pub size: Option<FlashSize>,
    /// The new flash frequency, or keep.
    pub freq: Option<FlashFreq>,
}

impl FlashParamOverrides {
    /// True when every value is "keep".
    pub fn keeps_all(&self) -> bool {
        self.mode.is_none() && self.size.is_none() && self.freq.is_none()
    }
}

/// A byte count named as esptool names sizes: "1MB" for whole MiB, else "512KB" for whole KiB,
/// else "100 bytes".
pub fn size_name(bytes: u64) -> String {
    let (kib, mib) = (u64::from(KIB), u64::from(MIB));
    if bytes.is_multiple_of(mib) {
        format!("{}MB", bytes / mib)
    } else if bytes.is_multiple_of(kib) {
        format!("{}KB", bytes / kib)
    } else {
        format!("{bytes} bytes")
    }
}

/// The flash size encoded in a JEDEC ID as returned by RDID (0x9F): the capacity is the low byte.
pub fn flash_size_from_jedec(id: u32) -> Option<FlashSize> {
    match id & 0xFF {
        0x12 => Some(FlashSize::Size256K),
        0x13 => Some(FlashSize::Size512K),
        0x14 => Some(FlashSize::Size1M),
        0x15 => Some(FlashSize::Size2M),
        0x16 => Some(FlashSize::Size4M),
        0x17 => Some(FlashSize::Size8M),
        0x18 => Some(FlashSize::Size16M),
        _ => None,
    }
}

/// The maker of a flash chip from the JEDEC manufacturer byte (the first byte RDID returns).
pub fn manufacturer_name(id: u8) -> Option<&'static str> {
    match id {
        0x01 => Some("Spansion/Cypress"),
        0x0B => Some("XTX"),
        0x1C => Some("EON"),
        0x1F => Some("Adesto/Atmel"),
        0x20 => Some("Micron/XMC"),
        0x5E => Some("Zbit"),
        0x68 => Some("Boya"),
        0x85 => Some("Puya"),
        0x9D => Some("ISSI"),
        0xA1 => Some("Fudan"),
        0xBF => Some("SST/Microchip"),
        0xC2 => Some("Macronix"),
        0xC8 => Some("GigaDevice"),
        0xE0 => Some("BergMicro"),
        0xEF => Some("Winbond"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_and_bytes_round_trip() {
        for (mode, name, byte) in [
            (FlashMode::Qio, "qio", 0),
            (FlashMode::Qout, "qout", 1),
            (FlashMode::Dio, "dio", 2),
            (FlashMode::Dout, "dout", 3),
        ] {
            assert_eq!(mode.to_string(), name);
            assert_eq!(name.parse::<FlashMode>(), Ok(mode));
            assert_eq!(mode.header_byte(), byte);
            assert_eq!(FlashMode::from_header_byte(byte), Ok(mode));
        }
        assert_eq!("DIO".parse::<FlashMode>(), Ok(FlashMode::Dio));
    }

    #[test]
    fn unknown_mode_name_lists_choices() {
        let err = "qqq".parse::<FlashMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown flash mode "qqq": expected one of qio, qout, dio, dout"#
        );
    }

    #[test]
    fn unknown_mode_byte_lists_values() {
        let err = FlashMode::from_header_byte(7).unwrap_err();
        assert_eq!(
            err,
            FlashParamError::UnknownValue {
                kind: ParamKind::Mode,
                value: 7
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown flash mode value 0x07: expected one of 0x00 (qio), 0x01 (qout), 0x02 (dio), 0x03 (dout)"
        );
    }

    #[test]
    fn size_table_matches_esptool() {
        let table = [
            ("512KB", 0x00, 512 * 1024),
            ("256KB", 0x10, 256 * 1024),
            ("1MB", 0x20, 1 << 20),
            ("2MB", 0x30, 2 << 20),
            ("4MB", 0x40, 4 << 20),
            ("2MB-c1", 0x50, 2 << 20),
            ("4MB-c1", 0x60, 4 << 20),
            ("8MB", 0x80, 8 << 20),
            ("16MB", 0x90, 16 << 20),
        ];
        for (name, bits, bytes) in table {
            let size: FlashSize = name.parse().unwrap();
            assert_eq!(size.to_string(), name);
            assert_eq!(size.header_bits(), bits);
            assert_eq!(size.bytes(), bytes);
            assert_eq!(FlashSize::from_size_freq_byte(bits | 0x0F), Ok(size));
        }
        assert_eq!(FlashSize::ALL.len(), table.len());
    }

    #[test]
    fn size_names_ignore_case() {
        assert_eq!("1mb".parse::<FlashSize>(), Ok(FlashSize::Size1M));
        assert_eq!("4mb-C1".parse::<FlashSize>(), Ok(FlashSize::Size4MC1));
        assert_eq!("16Mb".parse::<FlashSize>(), Ok(FlashSize::Size16M));
    }

    #[test]
    fn unknown_size_reports_name_or_nibble() {
        let err = "3MB".parse::<FlashSize>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown flash size "3MB": expected one of 256KB, 512KB, 1MB, 2MB, 4MB, 2MB-c1, 4MB-c1, 8MB, 16MB"#
        );
        assert_eq!(
            FlashSize::from_size_freq_byte(0x7F),
            Err(FlashParamError::UnknownValue {
                kind: ParamKind::Size,
                value: 0x70
            })
        );
    }

    #[test]
    fn from_bytes_gives_plain_sizes_only() {
        assert_eq!(FlashSize::from_bytes(2 << 20), Some(FlashSize::Size2M));
        assert_eq!(FlashSize::from_bytes(4 << 20), Some(FlashSize::Size4M));
        assert_eq!(FlashSize::from_bytes(256 * 1024), Some(FlashSize::Size256K));
        assert_eq!(FlashSize::from_bytes(3 << 20), None);
        assert_eq!(FlashSize::from_bytes(0), None);
    }

    #[test]
    fn freq_table_matches_esptool() {
        for (name, bits) in [("40m", 0x0), ("26m", 0x1), ("20m", 0x2), ("80m", 0xF)] {
            let freq: FlashFreq = name.parse().unwrap();
            assert_eq!(freq.to_string(), name);
            assert_eq!(freq.header_bits(), bits);
            assert_eq!(FlashFreq::from_size_freq_byte(0x90 | bits), Ok(freq));
        }
        let err = "60m".parse::<FlashFreq>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown flash frequency "60m": expected one of 40m, 26m, 20m, 80m"#
        );
        assert_eq!(
            FlashFreq::from_size_freq_byte(0x23),
            Err(FlashParamError::UnknownValue {
                kind: ParamKind::Freq,
                value: 0x3
            })
        );
    }

    #[test]
    fn params_pack_and_override_nibbles_independently() {
        let params = FlashParams::new(FlashMode::Dio, FlashSize::Size4M, FlashFreq::Freq80M);
        assert_eq!(
            params,
            FlashParams {
                mode_byte: 0x02,
                size_freq_byte: 0x4F
            }
        );
        assert_eq!(params.to_string(), "mode dio, size 4MB, freq 80m");

        let unknown = FlashParams {
            mode_byte: 0x09,
            size_freq_byte: 0x7E,
        };
        assert_eq!(
            unknown.to_string(),
            "mode unknown (0x09), size unknown (0x70), freq unknown (0xe)"
        );

        let size_only = FlashParamOverrides {
            size: Some(FlashSize::Size1M),
            ..Default::default()
        };
        assert_eq!(
            unknown.with_overrides(&size_only),
            FlashParams {
                mode_byte: 0x09,
                size_freq_byte: 0x2E
            }
        );
        let all = FlashParamOverrides {
            mode: Some(FlashMode::Qio),
            size: Some(FlashSize::Size16M),
            freq: Some(FlashFreq::Freq26M),
        };
        assert_eq!(
            unknown.with_overrides(&all),
            FlashParams {
                mode_byte: 0x00,
                size_freq_byte: 0x91
            }
        );
        assert!(FlashParamOverrides::default().keeps_all());
        assert!(!all.keeps_all());
    }

    #[test]
    fn size_names() {
        assert_eq!(size_name(0x10_0000), "1MB");
        assert_eq!(size_name(0x8_0000), "512KB");
        assert_eq!(size_name(100), "100 bytes");
    }

    #[test]
    fn jedec_capacity_byte_gives_size() {
        assert_eq!(flash_size_from_jedec(0x00EF_4016), Some(FlashSize::Size4M));
        assert_eq!(flash_size_from_jedec(0x00C8_4014), Some(FlashSize::Size1M));
        assert_eq!(flash_size_from_jedec(0x00EF_4018), Some(FlashSize::Size16M));
        assert_eq!(
            flash_size_from_jedec(0x00EF_4012),
            Some(FlashSize::Size256K)
        );
        assert_eq!(flash_size_from_jedec(0x00EF_4019), None);
        assert_eq!(flash_size_from_jedec(0x00FF_FFFF), None);
    }

    #[test]
    fn manufacturer_names() {
        assert_eq!(manufacturer_name(0xEF), Some("Winbond"));
        assert_eq!(manufacturer_name(0xC8), Some("GigaDevice"));
        assert_eq!(manufacturer_name(0x00), None);
    }
}
