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
