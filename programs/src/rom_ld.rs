//! `ld/rom.ld`, the linker script that places the mask ROM's functions for the C programs and
//! flashlab's stub, rendered from esp-protocol's table of ROM functions, where each address is
//! defined once. `cargo run -p esp-stub --example rebuild` writes it; a test fails while the
//! committed script is not what esp-protocol gives.

use std::fmt::Write as _;
use std::path::PathBuf;

use esp_protocol::rom_functions::{address_of, RomFunction};

/// Where the generated linker script lives, relative to this crate.
pub const ROM_LD_PATH: &str = "ld/rom.ld";

/// The ROM functions the programs and the stub call, in commented groups. Only these are
/// provided: a PROVIDE for a function libgcc also has (the soft floats) could change which
/// one a program links against.
const GROUPS: [(&str, &[&str]); 4] = [
    ("C library", &["memcpy", "memset", "memcmp"]),
    (
        "The libgcc helpers that Debian's lx106 libgcc leaves to the ROM",
        &[
            "__udivsi3",
            "__divsi3",
            "__umodsi3",
            "__umulsidi3",
            "__muldi3",
            "__udivdi3",
            "__divdi3",
            "__umoddi3",
        ],
    ),
    (
        "Serial output, time, flash cache",
        &[
            "ets_printf",
            "uart_tx_one_char",
            "ets_delay_us",
            "Cache_Read_Enable",
        ],
    ),
    (
        "The flash, MD5 and UART functions flashlab's flasher stub (stub/c) calls",
        &[
            "SelectSpiFunction",
            "spi_flash_attach",
            "SPIParamCfg",
            "SPIRead",
            "SPIWrite",
            "SPIEraseSector",
            "SPIEraseBlock",
            "SPIEraseChip",
            "MD5Init",
            "MD5Update",
            "MD5Final",
            "uart_div_modify",
            "software_reset",
            "ets_isr_attach",
            "ets_isr_mask",
            "ets_isr_unmask",
        ],
    ),
];

/// The ROM functions `ld/rom.ld` provides to the programs, in its order.
pub fn rom_symbols() -> Vec<RomFunction> {
    GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|&name| RomFunction {
            name,
            address: address_of(name)
                .unwrap_or_else(|| panic!("{name} is not in esp-protocol's ROM functions")),
        })
        .collect()
}

/// The linker script's text.
pub fn linker_script() -> String {
    let mut out = String::from(
        "/* Generated from esp-protocol's ROM functions by `cargo run -p esp-stub --example\n \
         * rebuild`: do not edit. The ESP8266 mask ROM functions the programs call, at their\n \
         * ROM addresses (the public facts of the SDK's eagle.rom.addr.v6.ld). The ROM's bytes\n \
         * are not in the image: the emulator runs these functions when the PC enters them.\n \
         * PROVIDE defines a symbol only when nothing else (libgcc) does. */\n",
    );
    let mut symbols = rom_symbols().into_iter();
    for (title, names) in GROUPS {
        let _ = write!(out, "\n/* {title} */\n");
        for function in symbols.by_ref().take(names.len()) {
            let _ = writeln!(
                out,
                "PROVIDE({} = {:#010x});",
                function.name, function.address
            );
        }
    }
    out
}

/// Where the committed linker script is.
pub fn rom_ld_path() -> PathBuf {
    super::crate_dir().join(ROM_LD_PATH)
}
