//! Code addresses to function and source line, from the firmware's ELF file: its DWARF line
//! and function information through the `addr2line` crate, the symbol table where the
//! debug information has nothing; `object` checks first that the file is an ELF for the
//! ESP8266's Xtensa core. No external tool runs.

use std::path::{Path, PathBuf};

use object::{Architecture, Object};

use super::{CodeLocation, Symbolize};

/// Why an `--elf` file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is no ELF (or a malformed one).
    #[error("{path} is not an ELF file ({reason})")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What the ELF reader said.
        reason: String,
    },
    /// An ELF for another processor.
    #[error("{path} is an ELF for {architecture}, not for the ESP8266's Xtensa core")]
    OtherArchitecture {
        /// The file.
        path: PathBuf,
        /// What it is for.
        architecture: String,
    },
}

/// The firmware's symbols and line table.
pub struct ElfSymbols {
    loader: addr2line::Loader,
}

impl std::fmt::Debug for ElfSymbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfSymbols").finish_non_exhaustive()
    }
}

impl ElfSymbols {
    /// Reads `path`, an ELF linked for the ESP8266.
    pub fn load(path: &Path) -> Result<ElfSymbols, ElfError> {
        let data = std::fs::read(path).map_err(|source| ElfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let not_elf = |reason: String| ElfError::NotElf {
            path: path.to_owned(),
            reason,
        };
        let file =
            object::File::parse(data.as_slice()).map_err(|error| not_elf(error.to_string()))?;
        if file.format() != object::BinaryFormat::Elf {
            return Err(not_elf(format!("{:?} format", file.format())));
        }
        if file.architecture() != Architecture::Xtensa {
            return Err(ElfError::OtherArchitecture {
                path: path.to_owned(),
                architecture: format!("{:?}", file.architecture()),
            });
        }
        let loader = addr2line::Loader::new(path).map_err(|error| not_elf(error.to_string()))?;
        Ok(ElfSymbols { loader })
    }
}

impl Symbolize for ElfSymbols {
    fn locate(&self, address: u32) -> Option<CodeLocation> {
        let probe = u64::from(address);
        // The innermost frame: the inlined function the address is in, if any.
        let frame = self
            .loader
            .find_frames(probe)
            .ok()
            .and_then(|mut frames| frames.next().ok().flatten());
        let function = frame
            .as_ref()
            .and_then(|frame| frame.function.as_ref())
            .and_then(|name| name.raw_name().ok().map(|name| name.into_owned()))
            .or_else(|| self.loader.find_symbol(probe).map(str::to_owned))?;
        let location = frame
            .and_then(|frame| frame.location)
            .or_else(|| self.loader.find_location(probe).ok().flatten());
        Some(CodeLocation {
            function,
            file: location.as_ref().and_then(|l| l.file).map(str::to_owned),
            line: location.and_then(|l| l.line),
        })
    }
}
