//! Where the ESP8266's memories and register blocks sit in its address space, as the ROM, the
//! stubs, firmware and the virtual chip see them.

use std::ops::Range;

/// Data RAM.
pub const DRAM: Range<u32> = 0x3FFE_8000..0x4000_0000;
/// Instruction RAM, the 32 KiB the flash cache may use included.
pub const IRAM: Range<u32> = 0x4010_0000..0x4011_0000;
/// The mask ROM.
pub const ROM: Range<u32> = 0x4000_0000..0x4001_0000;
/// Where the cache maps the flash (the first megabyte).
pub const FLASH_CACHE: Range<u32> = 0x4020_0000..0x4030_0000;
/// DPORT, the eFuse words and the WiFi MAC's registers (the core's XLMI port).
pub const XLMI: Range<u32> = 0x3FF0_0000..0x3FFE_8000;
/// The peripheral registers and RTC memory.
pub const IO: Range<u32> = 0x6000_0000..0x6001_0000;
/// RTC memory, kept through deep sleep.
pub const RTC_MEMORY: Range<u32> = 0x6000_1000..0x6000_1400;
