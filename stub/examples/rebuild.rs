//! Rebuilds the committed stub images from `stub/c/` with Debian's Xtensa toolchain:
//! `cargo run -p esp-stub --example rebuild` (`apt-get install -y gcc-xtensa-lx106
//! binutils-xtensa-lx106` first). It first writes `c/protocol.h`, `programs/ld/rom.ld` and
//! `programs/c/firmware/chip.h` from esp-protocol, then builds and writes the full stub's image
//! and the first stage's, and prints their sizes.

use std::path::Path;
use std::process::ExitCode;

use lx106_programs::{BuildError, Builder, ElfProgram};

/// A build of one of the images.
type Build = fn(&Builder) -> Result<ElfProgram, BuildError>;

fn main() -> ExitCode {
    // The C source includes the facts esp-protocol defines: write them first.
    let header = Path::new(env!("CARGO_MANIFEST_DIR")).join(esp_stub::facts::HEADER_PATH);
    if let Err(error) = std::fs::write(&header, esp_stub::facts::protocol_header()) {
        eprintln!("error: cannot write {}: {error}", header.display());
        return ExitCode::FAILURE;
    }
    // And the linker script that places the ROM functions it calls (with the programs' header).
    if let Err(error) = lx106_programs::write_generated() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let builder = Builder::new();
    let images: [(&str, Build, &str); 2] = [
        ("the stub", Builder::stub, esp_stub::IMAGE_PATH),
        (
            "the first stage",
            Builder::stub_first_stage,
            esp_stub::FIRST_STAGE_PATH,
        ),
    ];
    for (name, build, image_path) in images {
        let elf = match build(&builder) {
            Ok(elf) => elf,
            Err(error) => {
                eprintln!("error: building {name} failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let segments: Vec<(u32, &[u8])> = elf
            .segments
            .iter()
            .map(|segment| (segment.address, segment.data.as_slice()))
            .collect();
        let bss_start = elf.symbol("_bss_start").unwrap_or_default();
        let json = match esp_stub::image_json(&segments, elf.entry, bss_start) {
            Ok(json) => json,
            Err(error) => {
                eprintln!("error: {}: {error}", elf.path.display());
                return ExitCode::FAILURE;
            }
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(image_path);
        if let Err(error) = std::fs::write(&path, json) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        let total: usize = segments.iter().map(|(_, bytes)| bytes.len()).sum();
        for (address, bytes) in &segments {
            println!("segment at {address:#010x}: {} bytes", bytes.len());
        }
        println!("{}: {total} bytes to upload", path.display());
    }
    ExitCode::SUCCESS
}
