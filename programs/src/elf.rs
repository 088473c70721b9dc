//! The built ELF files as the emulator needs them: the loadable segments
//! (address, file bytes, size in memory), the entry point and the symbol
//! table, read with the `object` crate.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use object::{Architecture, Object, ObjectSegment, ObjectSymbol, SymbolKind};

use crate::BuildError;

/// A block of the program's memory image: `data` at `address`, then zeros up to `memory_size` (.bss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSegment {
    /// Where the segment starts in the ESP8266's address space.
    pub address: u32,
    /// The bytes the ELF file holds for it.
    pub data: Vec<u8>,
    /// Its size in memory; the part past `data` is zero.
    pub memory_size: u32,
}

/// A linked lx106 program.
#[derive(Debug, Clone)]
pub struct ElfProgram {
    /// The ELF file.
    pub path: PathBuf,
    /// The entry point.
    pub entry: u32,
    /// The loadable segments, in file order.
    pub segments: Vec<LoadSegment>,
    symbols: BTreeMap<String, u32>,
    /// Functions by start address, for naming code addresses.
    functions: BTreeMap<u32, (String, u32)>,
}

impl ElfProgram {
    pub(crate) fn read(path: &Path) -> Result<ElfProgram, BuildError> {
        let bytes = fs::read(path).map_err(|source| BuildError::Io {
            path: path.to_owned(),
            source,
        })?;
        let elf_error = |reason: String| BuildError::Elf {
            path: path.to_owned(),
            reason,
        };
        let file = object::File::parse(&*bytes).map_err(|error| elf_error(error.to_string()))?;
        if file.architecture() != Architecture::Xtensa || file.is_64() || !file.is_little_endian() {
            return Err(elf_error(format!(
                "not a 32-bit little-endian Xtensa ELF ({:?})",
                file.architecture()
            )));
        }
        let address = |value: u64, what: &str| {
            u32::try_from(value)
                .map_err(|_| elf_error(format!("{what} {value:#x} is past 32 bits")))
        };
        let mut segments = Vec::new();
        for segment in file.segments() {
            let data = segment
                .data()
                .map_err(|error| elf_error(error.to_string()))?;
            segments.push(LoadSegment {
                address: address(segment.address(), "segment address")?,
                data: data.to_vec(),
                memory_size: address(segment.size(), "segment size")?,
            });
        }
        let mut symbols = BTreeMap::new();
        let mut functions = BTreeMap::new();
        for symbol in file.symbols().filter(|symbol| symbol.is_definition()) {
            let Ok(name) = symbol.name() else { continue };
            let value = address(symbol.address(), "symbol address")?;
            if symbol.kind() == SymbolKind::Text {
                let size = address(symbol.size(), "symbol size")?;
                functions.insert(value, (name.to_owned(), size));
            }
            symbols.insert(name.to_owned(), value);
        }
        Ok(ElfProgram {
            path: path.to_owned(),
            entry: address(file.entry(), "entry point")?,
            segments,
            symbols,
            functions,
        })
    }

    /// The address of a symbol the program defines.
    pub fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols.get(name).copied()
    }

    /// A code address as `function+0xoffset` when it falls inside one of the program's functions.
    pub fn describe_address(&self, address: u32) -> String {
        match self.functions.range(..=address).next_back() {
            Some((start, (name, size))) if address - start < (*size).max(1) => {
                format!("{address:#010x} <{name}+{:#x}>", address - start)
            }
            _ => format!("{address:#010x}"),
        }
    }
}
