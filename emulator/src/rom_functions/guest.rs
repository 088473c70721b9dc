//! Guest memory as ROM code reaches it: through the bus, with the access widths the memory
//! allows. Whole aligned words move with 32-bit accesses (the only ones IRAM takes), bytes
//! before and after them with 8-bit accesses, as the ROM's word-wise copy loops do.

use thiserror::Error;
use xtensa_lx106::{Bus, BusFault};

/// Why a ROM function could not finish: the real chip takes an exception inside the ROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(super) enum Fault {
    /// A load or store the bus refused (LoadStoreError).
    #[error("{access} of {address:#010x} faults")]
    Bus {
        /// The refused address.
        address: u32,
        /// What the ROM tried to do there.
        access: Access,
    },
    /// A 32-bit access to an address that is not a multiple of 4 (LoadStoreAlignment).
    #[error("unaligned 32-bit {access} of {address:#010x}")]
    Alignment {
        /// The unaligned address.
        address: u32,
        /// What the ROM tried to do there.
        access: Access,
    },
}

/// A kind of guest memory access, for fault messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Load,
    Store,
}

impl std::fmt::Display for Access {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Access::Load => "load",
            Access::Store => "store",
        })
    }
}

fn load_fault(fault: BusFault) -> Fault {
    Fault::Bus {
        address: fault.address,
        access: Access::Load,
    }
}

fn store_fault(fault: BusFault) -> Fault {
    Fault::Bus {
        address: fault.address,
        access: Access::Store,
    }
}

pub(super) fn load8<B: Bus>(bus: &mut B, address: u32) -> Result<u8, Fault> {
    bus.read8(address).map_err(load_fault)
}

pub(super) fn load32<B: Bus>(bus: &mut B, address: u32) -> Result<u32, Fault> {
    if !address.is_multiple_of(4) {
        return Err(Fault::Alignment {
            address,
            access: Access::Load,
        });
    }
    bus.read32(address).map_err(load_fault)
}

pub(super) fn store8<B: Bus>(bus: &mut B, address: u32, value: u8) -> Result<(), Fault> {
    bus.write8(address, value).map_err(store_fault)
}

pub(super) fn store32<B: Bus>(bus: &mut B, address: u32, value: u32) -> Result<(), Fault> {
    if !address.is_multiple_of(4) {
        return Err(Fault::Alignment {
            address,
            access: Access::Store,
        });
    }
    bus.write32(address, value).map_err(store_fault)
}

/// Splits `address..address + len` into the bytes before the first aligned word, the aligned
/// words, and the bytes after them.
fn split_aligned(address: u32, len: u32) -> (u32, u32, u32) {
    let head = ((4 - address % 4) % 4).min(len);
    let words = (len - head) / 4;
    let tail = len - head - 4 * words;
    (head, words, tail)
}

/// Reads `len` bytes at `address` (the range must not wrap around the address space).
pub(super) fn read_bytes<B: Bus>(bus: &mut B, address: u32, len: u32) -> Result<Vec<u8>, Fault> {
    let mut bytes = Vec::with_capacity(len as usize);
    let (head, words, tail) = split_aligned(address, len);
    let mut position = address;
    for _ in 0..head {
        bytes.push(load8(bus, position)?);
        position = position.wrapping_add(1);
    }
    for _ in 0..words {
        bytes.extend_from_slice(&load32(bus, position)?.to_le_bytes());
        position = position.wrapping_add(4);
    }
    for _ in 0..tail {
        bytes.push(load8(bus, position)?);
        position = position.wrapping_add(1);
    }
    Ok(bytes)
}

/// Writes `bytes` at `address`.
pub(super) fn write_bytes<B: Bus>(bus: &mut B, address: u32, bytes: &[u8]) -> Result<(), Fault> {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let (head, words, _) = split_aligned(address, len);
    let (head_bytes, rest) = bytes.split_at(head as usize);
    let (word_bytes, tail_bytes) = rest.split_at(4 * words as usize);
    let mut position = address;
    for &byte in head_bytes {
        store8(bus, position, byte)?;
        position = position.wrapping_add(1);
    }
    for word in word_bytes.chunks_exact(4) {
        let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        store32(bus, position, value)?;
        position = position.wrapping_add(4);
    }
    for &byte in tail_bytes {
        store8(bus, position, byte)?;
        position = position.wrapping_add(1);
    }
    Ok(())
}

/// Reads a NUL-terminated string at `address`, without its NUL, byte by byte as the ROM's C
/// code does (so a string in IRAM or mapped flash faults, as on the chip).
pub(super) fn read_c_string<B: Bus>(bus: &mut B, address: u32) -> Result<Vec<u8>, Fault> {
    let mut bytes = Vec::new();
    let mut position = address;
    loop {
        let byte = load8(bus, position)?;
        if byte == 0 {
            return Ok(bytes);
        }
        bytes.push(byte);
        position = position.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range() {
        assert_eq!(split_aligned(0x1000, 8), (0, 2, 0));
        assert_eq!(split_aligned(0x1001, 8), (3, 1, 1));
        assert_eq!(split_aligned(0x1003, 1), (1, 0, 0));
        assert_eq!(split_aligned(0x1002, 0), (0, 0, 0));
        assert_eq!(split_aligned(0x1001, 2), (2, 0, 0));
    }
}
