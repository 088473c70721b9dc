//! The committed stub image (`esp8266.json`) is exactly what `c/` builds to with Debian's
//! Xtensa toolchain, which `.ci/run` installs. After changing the source, rebuild it with
//! `cargo run -p esp-stub --example rebuild` and commit both.

#[test]
fn committed_header_is_what_esp_protocol_gives() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(esp_stub::facts::HEADER_PATH);
    let committed = std::fs::read_to_string(&path).expect("the committed header");
    assert!(
        committed == esp_stub::facts::protocol_header(),
        "stub/{} is not what esp-protocol gives: run `cargo run -p esp-stub --example rebuild` \
         and commit the result",
        esp_stub::facts::HEADER_PATH
    );
}

#[test]
fn committed_image_is_what_the_source_builds() {
    let elf = lx106_programs::Builder::new()
        .stub()
        .unwrap_or_else(|error| {
            panic!(
                "building the stub failed: {error}\n(install the toolchain with: {})",
                lx106_programs::TOOLCHAIN_INSTALL_COMMAND
            )
        });
    let segments: Vec<(u32, &[u8])> = elf
        .segments
        .iter()
        .map(|segment| (segment.address, segment.data.as_slice()))
        .collect();
    let bss_start = elf
        .symbol("_bss_start")
        .expect("the linker script defines _bss_start");
    let built = esp_stub::image_json(&segments, elf.entry, bss_start).unwrap();
    assert!(
        built == esp_stub::IMAGE_JSON,
        "stub/{} is not what stub/c builds to: run `cargo run -p esp-stub --example rebuild` \
         and commit the result",
        esp_stub::IMAGE_PATH
    );
}

#[test]
fn the_image_fits_its_memory_and_stays_small() {
    let elf = lx106_programs::Builder::new()
        .stub()
        .expect("the stub builds");
    let code: usize = elf
        .segments
        .iter()
        .filter(|segment| segment.address >= 0x4010_0000)
        .map(|segment| segment.data.len())
        .sum();
    let upload: usize = elf.segments.iter().map(|segment| segment.data.len()).sum();
    // esptool 5.6.0's ESP8266 stub uploads 16.5 KB; the issue asks for 12 KB at most.
    assert!(upload <= 12 * 1024, "the stub uploads {upload} bytes");
    assert!(
        code <= 0x4000,
        "the code ({code} bytes) runs past the end of IRAM"
    );
}

#[test]
fn committed_first_stage_is_what_the_source_builds() {
    let elf = lx106_programs::Builder::new()
        .stub_first_stage()
        .expect("the first stage builds");
    let segments: Vec<(u32, &[u8])> = elf
        .segments
        .iter()
        .map(|segment| (segment.address, segment.data.as_slice()))
        .collect();
    let bss_start = elf
        .symbol("_bss_start")
        .expect("the linker script defines _bss_start");
    let built = esp_stub::image_json(&segments, elf.entry, bss_start).unwrap();
    assert!(
        built == esp_stub::FIRST_STAGE_JSON,
        "stub/{} is not what stub/c builds to: run `cargo run -p esp-stub --example rebuild` \
         and commit the result",
        esp_stub::FIRST_STAGE_PATH
    );
}

/// The first stage writes the full stub's segments while it runs: nothing it occupies (code,
/// data, buffers) may overlap them. Its RAM may lie in the full stub's `.bss`, which is not
/// loaded and which the full stub clears only once the first stage is done.
#[test]
fn the_first_stage_stays_clear_of_what_the_stub_loads_and_is_small() {
    let builder = lx106_programs::Builder::new();
    let stub = builder.stub().expect("the stub builds");
    let first = builder.stub_first_stage().expect("the first stage builds");
    let symbol = |elf: &lx106_programs::ElfProgram, name: &str| {
        elf.symbol(name)
            .unwrap_or_else(|| panic!("the linker script defines {name}"))
    };
    let occupied = [
        symbol(&first, "_stub_text_start")..symbol(&first, "_stub_text_end"),
        symbol(&first, "_stub_ram_start")..symbol(&first, "_stub_ram_end"),
    ];
    for segment in &stub.segments {
        let loaded = segment.address..segment.address + segment.data.len() as u32;
        for range in &occupied {
            assert!(
                loaded.end <= range.start || range.end <= loaded.start,
                "the stub's segment {loaded:#x?} overlaps the first stage's {range:#x?}"
            );
        }
    }
    // Nor may the stub's RAM run into the ROM's data and stack above 0x3FFFC000.
    assert!(symbol(&stub, "_stub_ram_end") <= 0x3FFF_C000);
    let upload: usize = first.segments.iter().map(|s| s.data.len()).sum();
    assert!(
        upload <= 2560,
        "the first stage uploads {upload} bytes: at 115200 baud it should take a fraction of the stub's time"
    );
}
