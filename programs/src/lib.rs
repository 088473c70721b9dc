//! `lx106-programs` holds flashlab's own C programs for the ESP8266 and builds
//! them on demand with Debian's Xtensa toolchain (`xtensa-lx106-elf-gcc`, no
//! SDK, `-nostdlib`, Debian's libgcc, the mask ROM's functions by address from
//! `ld/rom.ld`, which [`rom_ld`] renders from esp-protocol, as [`chip_h`]
//! renders the firmware's register header). The semantics
//! programs (`c/semantics/`) are also built for the host, so `esp-emulator`'s
//! tests can check that the interpreter (`xtensa-lx106`) and the ROM's
//! functions in Rust compute what the host computes; `hello` is a RAM program
//! for `esptool load_ram`, `blink` a bare-metal firmware for boot from
//! flash and `crash` one that greets at 115200 baud and then dies on a NULL
//! pointer (for the serial monitor). Builds land in `target/lx106-programs/<name>-<opt>/` and are cached
//! by a digest of their inputs. Nothing here runs the programs.
pub mod chip_h;
mod compile;
mod elf;
pub mod rom_ld;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::{fmt, fs, io};

use esp_protocol::flash_params::{FlashFreq, FlashMode, FlashParams, FlashSize};
use esp_protocol::image::{Image, ImageError, Segment};

pub use compile::TOOLCHAIN_INSTALL_COMMAND;
pub use elf::{ElfProgram, LoadSegment};

/// The semantics programs, each `c/semantics/<name>.c`.
pub const SEMANTICS_PROGRAMS: [&str; 13] = [
    "arith32",
    "arith64",
    "shifts",
    "switches",
    "funcptr",
    "recursion",
    "memory",
    "crc32",
    "md5",
    "sort",
    "bits",
    "structs",
    "loads",
];

/// The symbol of a semantics program's output buffer (`struct out` in `c/common/prog.h`):
/// a little-endian u32 length, a u32 overflow flag, then the text.
pub const OUTPUT_SYMBOL: &str = "program_output";
/// Offset of the length word in the output buffer.
pub const OUTPUT_LEN_OFFSET: u32 = 0;
/// Offset of the overflow flag (non-zero: the program wrote more than the buffer holds).
pub const OUTPUT_OVERFLOW_OFFSET: u32 = 4;
/// Offset of the text in the output buffer.
pub const OUTPUT_TEXT_OFFSET: u32 = 8;
/// How many bytes of text the buffer holds (`OUT_CAPACITY`).
pub const OUTPUT_CAPACITY: u32 = 32768;

/// Where flash appears once the cache maps it: flash offset N is read at
/// `FLASH_MAP_BASE + N` (`ld/flash.ld` links blink's flash code at 0x4020_1000,
/// so it is stored at offset 0x1000).
pub const FLASH_MAP_BASE: u32 = 0x4020_0000;
/// The end of the 1 MiB window the cache maps.
const FLASH_MAP_END: u32 = FLASH_MAP_BASE + 0x10_0000;
/// Flash bytes between the image and the code at its mapped offset, as erased flash reads.
const ERASED_FLASH: u8 = 0xFF;

const CROSS_PREFIX: &str = "xtensa-lx106-elf-";
const HOST_CC: &str = "cc";

/// Flags of every lx106 build besides the optimisation level: ROM calls are
/// more than CALL0's 512 KiB away from IRAM, hence -mlongcalls (the linker
/// shortens the calls that are in range).
const CROSS_FLAGS: &[&str] = &[
    "-g",
    "-mlongcalls",
    "-ffreestanding",
    "-nostdlib",
    "-Wall",
    "-Wextra",
    "-Werror",
];
/// The firmware programs are built for size, as firmware usually is.
const FIRMWARE_OPT_FLAG: &str = "-Os";
/// The host build is the reference; its compiler may be newer than Debian's cross gcc, so no -Werror.
const HOST_FLAGS: &[&str] = &["-O2", "-Wall", "-Wextra"];

/// A problem building or reading a program.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A tool of the cross toolchain cannot be started.
    #[error(
        "the Xtensa toolchain is missing: `{program}` cannot be started ({source}); \
         install it with `{TOOLCHAIN_INSTALL_COMMAND}`"
    )]
    ToolchainMissing {
        /// The tool that failed to start.
        program: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The host's C compiler cannot be started.
    #[error("the host C compiler `{program}` cannot be started ({source}); install it with `apt-get install -y gcc`")]
    HostCompilerMissing {
        /// The compiler command.
        program: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A compiler ran and failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    CompileFailed {
        /// The whole command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A name that is not in [`SEMANTICS_PROGRAMS`].
    #[error("no semantics program named `{name}` (there are: {})", SEMANTICS_PROGRAMS.join(", "))]
    UnknownProgram {
        /// The name asked for.
        name: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The linker's output is not the ELF expected.
    #[error("{}: {reason}", path.display())]
    Elf {
        /// The ELF file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The host build of a program failed when run.
    #[error("{} exited with {status}: {stderr}", path.display())]
    HostRunFailed {
        /// The host executable.
        path: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The host build printed something that is not UTF-8.
    #[error("{} printed bytes that are not UTF-8", path.display())]
    HostOutputNotText {
        /// The host executable.
        path: PathBuf,
    },
    /// The firmware's segments do not fit the layout the ROM loads.
    #[error("{}: {reason}", path.display())]
    Layout {
        /// The ELF file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// esp-protocol refused to build the image.
    #[error("building the ESP8266 image: {0}")]
    Image(#[from] ImageError),
}

/// The optimisation level of a semantics build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// `-O0`: every value goes through the stack.
    O0,
    /// `-O2`: registers, jump tables, inlining, loop transformations.
    O2,
}

impl OptLevel {
    /// Both levels.
    pub const ALL: [OptLevel; 2] = [OptLevel::O0, OptLevel::O2];

    /// "O0" or "O2".
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::O0 => "O0",
            OptLevel::O2 => "O2",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            OptLevel::O0 => "-O0",
            OptLevel::O2 => "-O2",
        }
    }
}

impl fmt::Display for OptLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A semantics program built for the lx106.
#[derive(Debug, Clone)]
pub struct SemanticsProgram {
    /// Its name in [`SEMANTICS_PROGRAMS`].
    pub name: &'static str,
    /// Its optimisation level.
    pub opt: OptLevel,
    /// The linked program. Run it with a stack in a1 and a return address in a0 from its entry:
    /// it returns the output length in a2 and leaves the text at [`OUTPUT_SYMBOL`].
    pub elf: ElfProgram,
}

/// The RAM hello world.
#[derive(Debug, Clone)]
pub struct RamProgram {
    /// The linked program.
    pub elf: ElfProgram,
    /// The version-1 image (magic 0xE9) of its IRAM and DRAM segments, for `esptool load_ram FILE`.
    pub image_path: PathBuf,
}

/// A firmware booted from flash (`blink`, `crash`).
#[derive(Debug, Clone)]
pub struct FlashFirmware {
    /// The linked program.
    pub elf: ElfProgram,
    /// The flash contents from offset 0: the version-1 image the ROM boots,
    /// then the code that runs from flash at its mapped offset.
    pub flash_image_path: PathBuf,
}

/// Builds the programs into a directory, once per change of their inputs.
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: PathBuf,
    compilers: compile::Compilers,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder that writes to `target/lx106-programs` of this workspace
    /// (or of `$CARGO_TARGET_DIR` when that is an absolute path).
    pub fn new() -> Builder {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .unwrap_or_else(|| workspace_dir().join("target"));
        Builder::in_dir(target.join("lx106-programs"))
    }

    /// A builder that writes to `out_dir`.
    pub fn in_dir(out_dir: impl Into<PathBuf>) -> Builder {
        Builder {
            out_dir: out_dir.into(),
            compilers: compile::Compilers {
                cross_prefix: CROSS_PREFIX.to_owned(),
                host_cc: HOST_CC.to_owned(),
            },
        }
    }

    /// Uses `<prefix>gcc` and `<prefix>ld` instead of Debian's `xtensa-lx106-elf-` tools.
    pub fn with_cross_prefix(mut self, prefix: impl Into<String>) -> Builder {
        self.compilers.cross_prefix = prefix.into();
        self
    }

    /// The directory the builds go to.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Builds a semantics program for the lx106.
    pub fn semantics(&self, name: &str, opt: OptLevel) -> Result<SemanticsProgram, BuildError> {
        let name = known_program(name)?;
        let common = source_dir().join("common");
        let recipe = compile::Recipe {
            target: compile::Target::Lx106,
            flags: cross_flags(opt.flag()),
            sources: vec![
                semantics_source(name),
                common.join("out.c"),
                common.join("lx106_main.c"),
            ],
            include_dir: common,
            linker_script: Some("ram.ld"),
            out_dir: self.out_dir.join(format!("{name}-{opt}")),
            output_name: format!("{name}.elf"),
        };
        let path = self.compilers.build(&recipe, &ld_dir())?;
        Ok(SemanticsProgram {
            name,
            opt,
            elf: ElfProgram::read(&path)?,
        })
    }

    /// Builds a semantics program with the host's `cc`, runs it, and returns what it printed.
    pub fn host_output(&self, name: &str) -> Result<String, BuildError> {
        let name = known_program(name)?;
        let common = source_dir().join("common");
        let recipe = compile::Recipe {
            target: compile::Target::Host,
            flags: HOST_FLAGS.to_vec(),
            sources: vec![
                semantics_source(name),
                common.join("out.c"),
                common.join("host_main.c"),
            ],
            include_dir: common,
            linker_script: None,
            out_dir: self.out_dir.join(format!("{name}-host")),
            output_name: name.to_owned(),
        };
        let path = self.compilers.build(&recipe, &ld_dir())?;
        let output = Command::new(&path)
            .output()
            .map_err(|source| BuildError::Io {
                path: path.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(BuildError::HostRunFailed {
                path,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        String::from_utf8(output.stdout).map_err(|_| BuildError::HostOutputNotText { path })
    }

    /// Builds `hello` and its version-1 image for `esptool load_ram`.
    pub fn hello(&self) -> Result<RamProgram, BuildError> {
        let elf = self.firmware("hello", "ram.ld")?;
        let image = Image {
            flash_params: FlashParams::default(),
            entry: elf.entry,
            segments: ram_segments(&elf)?,
            v2_prefix: None,
        };
        let image_path = elf.path.with_extension("bin");
        write_if_changed(&image_path, &image.build()?)?;
        Ok(RamProgram { elf, image_path })
    }

    /// Builds `blink` and its flash contents from offset 0.
    pub fn blink(&self) -> Result<FlashFirmware, BuildError> {
        self.flash_firmware("blink")
    }

    /// Builds `crash` (greets at 115200 baud, then dies on a NULL pointer) and its flash
    /// contents from offset 0.
    pub fn crash(&self) -> Result<FlashFirmware, BuildError> {
        self.flash_firmware("crash")
    }

    /// Builds `c/firmware/<name>.c` for boot from flash and its flash contents from offset 0.
    fn flash_firmware(&self, name: &str) -> Result<FlashFirmware, BuildError> {
        let elf = self.firmware(name, "flash.ld")?;
        let mut flash_code = Vec::new();
        let mut ram = Vec::new();
        for segment in &elf.segments {
            if (FLASH_MAP_BASE..FLASH_MAP_END).contains(&segment.address) {
                flash_code.push(segment);
            } else {
                ram.push(segment);
            }
        }
        let image = Image {
            flash_params: FlashParams::new(FlashMode::Dio, FlashSize::Size1M, FlashFreq::Freq40M),
            entry: elf.entry,
            segments: ram_segments_of(&elf, ram)?,
            v2_prefix: None,
        };
        let mut flash = image.build()?;
        for segment in flash_code {
            let offset = (segment.address - FLASH_MAP_BASE) as usize;
            if offset < flash.len() {
                return Err(BuildError::Layout {
                    path: elf.path.clone(),
                    reason: format!(
                        "the boot image is {} bytes and runs into the flash code at offset {offset:#x}",
                        flash.len()
                    ),
                });
            }
            flash.resize(offset, ERASED_FLASH);
            flash.extend_from_slice(&segment.data);
        }
        let flash_image_path = elf.path.with_extension("flash.bin");
        write_if_changed(&flash_image_path, &flash)?;
        Ok(FlashFirmware {
            elf,
            flash_image_path,
        })
    }

    /// Builds flashlab's flasher stub from `stub/c/` (every `.c` there) with `ld/stub.ld`.
    pub fn stub(&self) -> Result<ElfProgram, BuildError> {
        let sources_dir = crate_dir().join("..").join("stub").join("c");
        let sources = compile::files_with_extension(&sources_dir, "c")?;
        let recipe = compile::Recipe {
            target: compile::Target::Lx106,
            flags: cross_flags(FIRMWARE_OPT_FLAG),
            sources,
            include_dir: sources_dir,
            linker_script: Some("stub.ld"),
            out_dir: self.out_dir.join("stub"),
            output_name: "stub.elf".to_owned(),
        };
        let path = self.compilers.build(&recipe, &ld_dir())?;
        ElfProgram::read(&path)
    }

    /// Builds the stub's first-stage loader: `stub/c/stub.c` alone with `STUB_FIRST_STAGE`
    /// defined, with `ld/stub_first_stage.ld`, which places it clear of what the full stub
    /// loads.
    pub fn stub_first_stage(&self) -> Result<ElfProgram, BuildError> {
        let sources_dir = crate_dir().join("..").join("stub").join("c");
        let mut flags = cross_flags(FIRMWARE_OPT_FLAG);
        flags.push("-DSTUB_FIRST_STAGE");
        let recipe = compile::Recipe {
            target: compile::Target::Lx106,
            flags,
            sources: vec![sources_dir.join("stub.c")],
            include_dir: sources_dir,
            linker_script: Some("stub_first_stage.ld"),
            out_dir: self.out_dir.join("stub-first-stage"),
            output_name: "stub-first-stage.elf".to_owned(),
        };
        let path = self.compilers.build(&recipe, &ld_dir())?;
        ElfProgram::read(&path)
    }

    fn firmware(&self, name: &str, linker_script: &str) -> Result<ElfProgram, BuildError> {
        let firmware = source_dir().join("firmware");
        let recipe = compile::Recipe {
            target: compile::Target::Lx106,
            flags: cross_flags(FIRMWARE_OPT_FLAG),
            sources: vec![firmware.join(format!("{name}.c"))],
            include_dir: firmware,
            linker_script: Some(linker_script),
            out_dir: self.out_dir.join(name),
            output_name: format!("{name}.elf"),
        };
        let path = self.compilers.build(&recipe, &ld_dir())?;
        ElfProgram::read(&path)
    }
}

/// Writes the files rendered from esp-protocol (`ld/rom.ld`, `c/firmware/chip.h`); returns
/// their paths.
pub fn write_generated() -> Result<Vec<PathBuf>, BuildError> {
    let files = [
        (rom_ld::rom_ld_path(), rom_ld::linker_script()),
        (chip_h::chip_h_path(), chip_h::chip_header()),
    ];
    let mut written = Vec::new();
    for (path, text) in files {
        fs::write(&path, text).map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> PathBuf {
    let crate_dir = crate_dir();
    crate_dir
        .parent()
        .map_or_else(|| crate_dir.join(".."), Path::to_owned)
}

fn source_dir() -> PathBuf {
    crate_dir().join("c")
}

fn ld_dir() -> PathBuf {
    crate_dir().join("ld")
}

fn cross_flags(opt_flag: &'static str) -> Vec<&'static str> {
    std::iter::once(opt_flag)
        .chain(CROSS_FLAGS.iter().copied())
        .collect()
}

fn semantics_source(name: &str) -> PathBuf {
    source_dir().join("semantics").join(format!("{name}.c"))
}

fn known_program(name: &str) -> Result<&'static str, BuildError> {
    SEMANTICS_PROGRAMS
        .into_iter()
        .find(|known| *known == name)
        .ok_or_else(|| BuildError::UnknownProgram {
            name: name.to_owned(),
        })
}

fn ram_segments(elf: &ElfProgram) -> Result<Vec<Segment>, BuildError> {
    ram_segments_of(elf, elf.segments.iter().collect())
}

/// The image segments the ROM copies to RAM: each ELF segment's file bytes,
/// padded to whole words (the loader copies words). `.bss` stays out: the
/// programs zero it themselves.
fn ram_segments_of(
    elf: &ElfProgram,
    segments: Vec<&LoadSegment>,
) -> Result<Vec<Segment>, BuildError> {
    let mut image_segments = Vec::new();
    for segment in segments
        .into_iter()
        .filter(|segment| !segment.data.is_empty())
    {
        if (FLASH_MAP_BASE..FLASH_MAP_END).contains(&segment.address) {
            return Err(BuildError::Layout {
                path: elf.path.clone(),
                reason: format!(
                    "segment at {:#010x} is in the flash mapping; a RAM image cannot load it",
                    segment.address
                ),
            });
        }
        let mut data = segment.data.clone();
        data.resize(data.len().next_multiple_of(4), 0);
        image_segments.push(Segment {
            load_address: segment.address,
            data,
        });
    }
    Ok(image_segments)
}

/// Writes `bytes` unless the file already holds them, through a temporary name.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    let temporary = compile::unique_temporary(path);
    fs::write(&temporary, bytes).map_err(|source| BuildError::Io {
        path: temporary.clone(),
        source,
    })?;
    compile::rename(&temporary, path)
}

#[cfg(test)]
mod tests;
