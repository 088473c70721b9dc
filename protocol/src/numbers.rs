//! The one grammar for numbers and sizes that every command line and spec in
//! flashlab reads: esp-flasher's arguments and `emu:` ports, the emulator's
//! options, its fault specs and its scenario files.
//!
//! A number is decimal, or hex, octal or binary after `0x`, `0o` or `0b`
//! (either case), without a sign; blanks around it are ignored. A size is a
//! number of bytes, or a decimal count with a `K`/`KB` or `M`/`MB` suffix (1024
//! and 1024², either case): `4096`, `0x100000`, `512KB`, `1M`, `1MB`.
//! [`crate::flash_params::size_name`] writes sizes back in this form.

use thiserror::Error;

/// Why text is not a number or size that fits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    /// Not a number in any accepted form.
    #[error("\"{text}\" is not a number (use e.g. 0x1000 or 4096)")]
    NotANumber {
        /// The text given.
        text: String,
    },
    /// Not a size in any accepted form.
    #[error("\"{text}\" is not a size (use e.g. 0x100000, 1048576, 1M or 1MB)")]
    NotASize {
        /// The text given.
        text: String,
    },
    /// A number, but larger than the value it is for can hold.
    #[error("\"{text}\" is larger than {max:#X}")]
    TooLarge {
        /// The text given.
        text: String,
        /// The largest value accepted.
        max: u64,
    },
}

/// The unsigned integer types a number can be read as.
pub trait Unsigned: TryFrom<u64> {
    /// The type's largest value.
    const LARGEST: u64;
}

macro_rules! unsigned {
    ($($type:ty),*) => {
        $(impl Unsigned for $type {
            const LARGEST: u64 = <$type>::MAX as u64;
        })*
    };
}
unsigned!(u8, u16, u32, u64, usize);

/// Reads a number (see the module docs) as a `T`.
pub fn parse_number<T: Unsigned>(text: &str) -> Result<T, NumberError> {
    match number(text) {
        Some(Some(value)) => fit(value, text),
        Some(None) => Err(too_large::<T>(text)),
        None => Err(NumberError::NotANumber { text: text.into() }),
    }
}

/// Reads a size in bytes (see the module docs) as a `T`.
pub fn parse_size<T: Unsigned>(text: &str) -> Result<T, NumberError> {
    let upper = text.trim().to_ascii_uppercase();
    let unit = |suffixes: [&str; 2]| {
        suffixes
            .iter()
            .find_map(|suffix| upper.strip_suffix(suffix))
    };
    let (count, scale) = if let Some(count) = unit(["MB", "M"]) {
        (count, 1u64 << 20)
    } else if let Some(count) = unit(["KB", "K"]) {
        (count, 1 << 10)
    } else {
        return match number(text) {
            Some(Some(value)) => fit(value, text),
            Some(None) => Err(too_large::<T>(text)),
            None => Err(NumberError::NotASize { text: text.into() }),
        };
    };
    let not_a_size = || NumberError::NotASize { text: text.into() };
    if count.is_empty() || !count.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(not_a_size());
    }
    let count: u64 = count.parse().map_err(|_| too_large::<T>(text))?;
    let bytes = count
        .checked_mul(scale)
        .ok_or_else(|| too_large::<T>(text))?;
    fit(bytes, text)
}

/// The value of a number: `None` if it is not one, `Some(None)` if it overflows a u64.
fn number(text: &str) -> Option<Option<u64>> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, radix) = match lower.get(..2) {
        Some("0x") => (&lower[2..], 16),
        Some("0o") => (&lower[2..], 8),
        Some("0b") => (&lower[2..], 2),
        _ => (lower.as_str(), 10),
    };
    if digits.is_empty() || !digits.chars().all(|digit| digit.is_digit(radix)) {
        return None;
    }
    // The digits are valid, so the only error left is overflow.
    Some(u64::from_str_radix(digits, radix).ok())
}

fn fit<T: Unsigned>(value: u64, text: &str) -> Result<T, NumberError> {
    T::try_from(value).map_err(|_| too_large::<T>(text))
}

fn too_large<T: Unsigned>(text: &str) -> NumberError {
    NumberError::TooLarge {
        text: text.into(),
        max: T::LARGEST,
    }
}

/// Parses a MAC address written as six two-digit hex octets separated by `:` or `-`
/// (`AA:BB:CC:DD:EE:FF`); the error is one sentence naming the text.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let octets: Vec<u8> = text
        .split([':', '-'])
        .filter_map(|octet| {
            // Exactly two hex digits: not the number grammar, which would take "0x" or "+".
            (octet.len() == 2 && octet.bytes().all(|digit| digit.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(octet, 16).ok())
                .flatten()
        })
        .collect();
    octets
        .try_into()
        .map_err(|_| format!("'{text}' is not a MAC address such as AA:BB:CC:DD:EE:FF"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_radix() {
        assert_eq!(parse_number::<u32>("0"), Ok(0));
        assert_eq!(parse_number::<u32>("0x00000"), Ok(0));
        assert_eq!(parse_number::<u32>("0X1000"), Ok(0x1000));
        assert_eq!(parse_number::<u32>(" 1048576 "), Ok(0x10_0000));
        assert_eq!(parse_number::<u32>("0o17"), Ok(15));
        assert_eq!(parse_number::<u32>("0b101"), Ok(5));
        assert_eq!(parse_number::<u32>("0xFFFFFFFF"), Ok(u32::MAX));
    }

    #[test]
    fn malformed_and_oversized_numbers_are_refused_with_their_reason() {
        for text in ["", "0x", "-1", "+1", "1_000", "12a", "0x1G", "1MB"] {
            assert_eq!(
                parse_number::<u32>(text),
                Err(NumberError::NotANumber { text: text.into() }),
                "{text:?}"
            );
        }
        let error = parse_number::<u32>("0x100000000").unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"0x100000000\" is larger than 0xFFFFFFFF"
        );
        assert!(parse_number::<u8>("256").is_err());
        assert!(matches!(
            parse_number::<u64>("99999999999999999999999"),
            Err(NumberError::TooLarge { .. })
        ));
    }

    #[test]
    fn sizes_with_and_without_units() {
        for (text, bytes) in [
            ("1M", 1u64 << 20),
            ("1MB", 1 << 20),
            ("1mb", 1 << 20),
            ("512KB", 512 << 10),
            ("256k", 256 << 10),
            ("16MB", 16 << 20),
            ("0x100000", 1 << 20),
            ("4096", 4096),
        ] {
            assert_eq!(parse_size::<u64>(text), Ok(bytes), "{text}");
        }
        for text in ["MB", "1.5MB", "0x10MB", "-1M", "1GB", "one"] {
            assert_eq!(
                parse_size::<u64>(text),
                Err(NumberError::NotASize { text: text.into() }),
                "{text:?}"
            );
        }
        assert!(matches!(
            parse_size::<u32>("4096MB"),
            Err(NumberError::TooLarge {
                max: 0xFFFF_FFFF,
                ..
            })
        ));
    }
}
