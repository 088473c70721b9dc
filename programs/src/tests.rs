//! Tests of the build library: the programs build, the reference outputs are
//! right (not only self-consistent), the images have the layout the ROM loads,
//! the cache holds, and a missing toolchain says how to install it.

use std::time::SystemTime;

use esp_protocol::image;

use super::*;

fn builder() -> Builder {
    Builder::new()
}

#[test]
fn every_semantics_program_builds_at_both_levels_with_its_output_buffer() {
    for name in SEMANTICS_PROGRAMS {
        for opt in OptLevel::ALL {
            let program = builder().semantics(name, opt).unwrap();
            assert_eq!(program.elf.symbol("program_entry"), Some(program.elf.entry));
            let output = program.elf.symbol(OUTPUT_SYMBOL).unwrap();
            assert!(
                (0x3FFE_8000..0x3FFF_C000).contains(&output),
                "{name} {opt}: {output:#x}"
            );
            assert!(program.elf.segments.iter().all(|segment| {
                (0x3FFE_8000..0x3FFF_C000).contains(&segment.address)
                    || (0x4010_0000..0x4010_8000).contains(&segment.address)
            }));
        }
    }
}

#[test]
fn host_references_hold_the_published_check_values() {
    let crc = builder().host_output("crc32").unwrap();
    assert!(crc.contains("check-bitwise 0xcbf43926\n"), "{crc}");
    assert!(crc.contains("check-table 0xcbf43926\n"), "{crc}");
    let md5 = builder().host_output("md5").unwrap();
    // RFC 1321's digests of "" and "abc".
    assert!(
        md5.starts_with("md5 d4 1d 8c d9 8f 00 b2 04 e9 80 09 98 ec f8 42 7e\n"),
        "{md5}"
    );
    assert!(
        md5.contains("md5 90 01 50 98 3c d2 4f b0 d6 96 3f 7d 28 e1 7f 72\n"),
        "{md5}"
    );
    let recursion = builder().host_output("recursion").unwrap();
    assert!(recursion.contains("ack 3 3 0x0000003d\n"), "{recursion}");
    assert!(recursion.contains("fib 20 6765\n"), "{recursion}");
    let arith64 = builder().host_output("arith64").unwrap();
    assert!(
        arith64.contains("fact 20 2432902008176640000\n"),
        "{arith64}"
    );
}

#[test]
fn the_output_layout_matches_the_c_header() {
    let header = include_str!("../c/common/prog.h");
    assert!(header.contains(&format!("#define OUT_CAPACITY {OUTPUT_CAPACITY}\n")));
    assert!(header.contains("struct out {\n    uint32_t len;\n    uint32_t overflowed;\n    char text[OUT_CAPACITY];\n};"));
    assert_eq!(
        (
            OUTPUT_LEN_OFFSET,
            OUTPUT_OVERFLOW_OFFSET,
            OUTPUT_TEXT_OFFSET
        ),
        (0, 4, 8)
    );
}

#[test]
fn every_host_reference_fits_its_buffer() {
    for name in SEMANTICS_PROGRAMS {
        let output = builder().host_output(name).unwrap();
        assert!(
            !output.is_empty() && output.len() <= OUTPUT_CAPACITY as usize,
            "{name}"
        );
        assert!(output.ends_with('\n'), "{name}");
    }
}

#[test]
fn hello_image_holds_the_ram_segments_and_the_entry() {
    let hello = builder().hello().unwrap();
    let bytes = fs::read(&hello.image_path).unwrap();
    let parsed = image::parse(&bytes).unwrap();
    parsed.verify().unwrap();
    assert_eq!(parsed.len, bytes.len());
    assert_eq!(parsed.image.entry, hello.elf.entry);
    assert_eq!(Some(parsed.image.entry), hello.elf.symbol("program_entry"));
    let addresses: Vec<u32> = parsed
        .image
        .segments
        .iter()
        .map(|s| s.load_address)
        .collect();
    assert!(addresses.contains(&0x4010_0000), "{addresses:x?}");
    assert!(addresses.contains(&0x3FFE_8000), "{addresses:x?}");
    for segment in &parsed.image.segments {
        assert_eq!(segment.data.len() % 4, 0);
        let elf_segment = hello
            .elf
            .segments
            .iter()
            .find(|elf| elf.address == segment.load_address)
            .unwrap();
        assert_eq!(
            &segment.data[..elf_segment.data.len()],
            &elf_segment.data[..]
        );
    }
}

#[test]
fn blink_flash_holds_the_boot_image_and_the_flash_code_at_its_mapped_offset() {
    let blink = builder().blink().unwrap();
    let flash = fs::read(&blink.flash_image_path).unwrap();
    let parsed = image::parse(&flash).unwrap();
    parsed.verify().unwrap();
    assert_eq!(parsed.image.entry, blink.elf.entry);
    assert!(parsed
        .image
        .segments
        .iter()
        .all(|segment| !(FLASH_MAP_BASE..FLASH_MAP_END).contains(&segment.load_address)));
    let in_flash = blink.elf.symbol("blink_forever").unwrap();
    assert!((FLASH_MAP_BASE + 0x1000..FLASH_MAP_END).contains(&in_flash));
    let code = blink
        .elf
        .segments
        .iter()
        .find(|segment| segment.address == FLASH_MAP_BASE + 0x1000)
        .unwrap();
    assert_eq!(&flash[0x1000..0x1000 + code.data.len()], &code.data[..]);
    assert_eq!(flash.len(), 0x1000 + code.data.len());
    assert!(flash[parsed.len..0x1000]
        .iter()
        .all(|&byte| byte == ERASED_FLASH));
}

#[test]
fn a_second_build_reuses_the_first() {
    let first = builder().semantics("bits", OptLevel::O2).unwrap();
    let modified = |path: &Path| -> SystemTime { fs::metadata(path).unwrap().modified().unwrap() };
    let before = modified(&first.elf.path);
    let second = builder().semantics("bits", OptLevel::O2).unwrap();
    assert_eq!(second.elf.path, first.elf.path);
    assert_eq!(modified(&second.elf.path), before);
}

#[test]
fn a_missing_toolchain_names_the_packages_to_install() {
    let dir = std::env::temp_dir().join(format!("lx106-programs-missing-{}", std::process::id()));
    let error = Builder::in_dir(&dir)
        .with_cross_prefix("no-such-xtensa-toolchain-")
        .semantics("bits", OptLevel::O0)
        .unwrap_err();
    assert!(
        matches!(error, BuildError::ToolchainMissing { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("apt-get install -y gcc-xtensa-lx106 binutils-xtensa-lx106"),
        "{message}"
    );
    assert!(
        message.contains("no-such-xtensa-toolchain-gcc"),
        "{message}"
    );
}

#[test]
fn an_unknown_program_lists_the_known_ones() {
    let error = builder().semantics("fortran", OptLevel::O0).unwrap_err();
    assert!(error.to_string().contains("arith32, arith64"), "{error}");
}

#[test]
fn addresses_are_named_by_function() {
    let program = builder().semantics("recursion", OptLevel::O0).unwrap();
    let run = program.elf.symbol("run").unwrap();
    assert_eq!(
        program.elf.describe_address(run + 2),
        format!("{:#010x} <run+0x2>", run + 2)
    );
    assert_eq!(program.elf.describe_address(0x4000_0000), "0x40000000");
}

#[test]
fn rom_symbols_lists_the_provided_functions() {
    let symbols = rom_ld::rom_symbols();
    let address = |name: &str| {
        symbols
            .iter()
            .find(|symbol| symbol.name == name)
            .map(|symbol| symbol.address)
    };
    assert_eq!(address("__udivsi3"), Some(0x4000_e21c));
    assert_eq!(address("ets_printf"), Some(0x4000_24cc));
    assert_eq!(
        address("__addsf3"),
        None,
        "libgcc's soft floats are not provided"
    );
}

#[test]
fn committed_chip_h_is_what_esp_protocol_gives() {
    let committed = fs::read_to_string(chip_h::chip_h_path()).expect("the committed chip.h");
    assert!(
        committed == chip_h::chip_header(),
        "programs/{} is not what esp-protocol gives: run `cargo run -p esp-stub --example \
         rebuild` and commit the result",
        chip_h::CHIP_H_PATH
    );
}

#[test]
fn committed_rom_ld_is_what_esp_protocol_gives() {
    let committed = fs::read_to_string(rom_ld::rom_ld_path()).expect("the committed ld/rom.ld");
    assert!(
        committed == rom_ld::linker_script(),
        "programs/{} is not what esp-protocol gives: run `cargo run -p esp-stub --example \
         rebuild` and commit the result",
        rom_ld::ROM_LD_PATH
    );
}
