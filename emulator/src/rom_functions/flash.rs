//! The ROM's SPI flash functions. They drive the flash chip with the same instructions the SPI
//! controller's built-in commands send (WREN, RDSR, WRSR, READ, PP, SE, BE, CE; 24-bit
//! addresses), through [`SpiFlash::spi_transaction`], so block protection, stuck sectors and a
//! fake chip's address wrap show exactly as through the SPI registers.
//!
//! Facts from public reverse engineering (pvvx's `SpiFlash.c` with ROM addresses, and
//! esp-open-rtos's `esp_spi_flash.c`, which reimplements the SDK's copies of them):
//! - the bounds come from the `flashchip` descriptor at [`FLASHCHIP_ADDRESS`] (set by
//!   `SPIParamCfg`), not from the chip: `SPIRead`/`SPIWrite` refuse `addr + len > chip_size`
//!   (here computed without overflow: a length that overflows is refused too);
//! - `SPIRead` reads 32 bytes per command and stores whole words, so `dst` must be word
//!   aligned; the bytes after `len` in the last word are left as they were here (the chip
//!   stores stale SPI buffer bytes there);
//! - `SPIWrite` programs page by page, 32 bytes per command, each after WREN; a piece whose
//!   length is not a multiple of 4 is refused (ERR) when reached, so an unaligned destination
//!   writes nothing when its first piece (up to the page end) is not whole words, and an odd
//!   length writes all but the last piece; `src` is read in words;
//! - `SPIEraseSector(n)`/`SPIEraseBlock(n)` refuse n ≥ chip_size / unit (the sources differ:
//!   `>` in the ROM decompile, `>=` in the reimplementation; the virtual chip takes the stricter)
//!   and erase at n × unit, which the chip decodes modulo its size;
//! - `SPIEraseArea` unlocks the chip (as `SPIUnlock`) and has the ROM's erase bug: it erases
//!   the sectors up to the next block boundary and then the whole requested count again
//!   (`esp_protocol::rom_erase`);
//! - `SPIUnlock`/`SPILock` write status register 1 (one byte: 0x00 / 0x1C) after WREN; the
//!   model's status registers are always writable, so unlocking clears block protection;
//! - every operation waits for the chip to be idle (RDSR until BUSY clears): the chip's busy
//!   time is passed to it ([`SpiFlash::advance_time`]) and charged to the core in cycles.
//!
//! Return codes are the SDK's `SpiFlashOpResult`: 0 OK, 1 ERR (2 TIMEOUT is never needed).
//! A descriptor with a zero page, sector or block size makes the ROM divide by zero: the
//! virtual chip raises the IllegalInstruction exception libgcc raises for that.

use esp_protocol::spi_flash::controller::ADDR_ADDRESS_MASK;
use xtensa_lx106::cause::ILLEGAL_INSTRUCTION;

use crate::flash::{opcode, status_bits};

use super::exceptions::raise_exception;
use super::guest::{load32, store32, Fault};
use super::system::cycles_for_micros;
use super::{Call, FlashChipParams, RomHost, RomOutcome, FLASHCHIP_ADDRESS};

const OK: u32 = 0;
const ERR: u32 = 1;
/// Bytes the SPI controller moves per command (W0..W7 as the ROM uses them).
const CHUNK: u32 = 32;
/// Offset of `status_mask` in the SpiFlashChip descriptor.
const STATUS_MASK_OFFSET: u32 = 20;
/// Block protection bits SPILock sets (BP0..BP2).
const LOCK_STATUS: u32 = status_bits::BLOCK_PROTECT as u32;

fn load_params<H: RomHost>(call: &mut Call<'_, H>) -> Result<FlashChipParams, Fault> {
    FlashChipParams::load(call.host).map_err(|fault| Fault::Bus {
        address: fault.address,
        access: super::guest::Access::Load,
    })
}

/// Waits until the chip is no longer busy, as the ROM's RDSR loop does.
fn wait_until_idle<H: RomHost>(call: &mut Call<'_, H>) {
    let busy = call.host.flash().remaining_busy_time();
    if !busy.is_zero() {
        call.host.flash().advance_time(busy);
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        call.cpu
            .add_cycles(cycles_for_micros(micros, call.state.cpu_mhz));
    }
}

fn command<H: RomHost>(call: &mut Call<'_, H>, instruction: u8, address: Option<u32>, data: &[u8]) {
    call.host.flash().spi_transaction(
        instruction,
        address.map(|address| address & ADDR_ADDRESS_MASK),
        data,
        &mut [],
    );
}

/// SPI_write_enable: WREN once the chip is idle (the ROM then polls until WEL is set, which
/// an idle chip does at once).
fn enable_writes<H: RomHost>(call: &mut Call<'_, H>) {
    wait_until_idle(call);
    command(call, opcode::WRITE_ENABLE, None, &[]);
}

/// SPI_write_status: WRSR with one byte once the chip is idle.
fn write_status_register<H: RomHost>(call: &mut Call<'_, H>, value: u32) {
    wait_until_idle(call);
    command(call, opcode::WRITE_STATUS_1, None, &[value as u8]);
}

/// Status register 1 once the chip is idle, masked as the descriptor says.
fn read_status_register<H: RomHost>(call: &mut Call<'_, H>, mask: u32) -> u32 {
    wait_until_idle(call);
    let mut status = [0u8];
    call.host
        .flash()
        .spi_transaction(opcode::READ_STATUS_1, None, &[], &mut status);
    u32::from(status[0]) & mask
}

/// `a / b` for the ROM's descriptor arithmetic, or the division-by-zero exception.
fn divide(a: u32, b: u32) -> Option<u32> {
    a.checked_div(b)
}

fn trace_result<H: RomHost>(call: &mut Call<'_, H>, what: String, result: u32) {
    let verdict = if result == OK { "OK" } else { "ERR" };
    call.host.trace(format!("rom: {what} = {verdict}"));
}

/// `SPIRead(faddr, dst, len)`.
pub(super) fn spi_read<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (address, destination, len) = (call.arg(0), call.arg(1), call.arg(2));
    let params = load_params(call)?;
    if address
        .checked_add(len)
        .is_none_or(|end| end > params.chip_size)
    {
        return call.return_u32(ERR);
    }
    wait_until_idle(call);
    let mut done = 0;
    while done < len {
        let step = CHUNK.min(len - done);
        let mut buffer = [0u8; CHUNK as usize];
        call.host.flash().spi_transaction(
            opcode::READ_DATA,
            Some(address.wrapping_add(done) & ADDR_ADDRESS_MASK),
            &[],
            &mut buffer[..step as usize],
        );
        for word_start in (0..step).step_by(4) {
            let word_address = destination.wrapping_add(done + word_start);
            let filled = (step - word_start).min(4) as usize;
            let mut word = if filled < 4 {
                load32(call.host, word_address)?.to_le_bytes()
            } else {
                [0; 4]
            };
            let start = word_start as usize;
            word[..filled].copy_from_slice(&buffer[start..start + filled]);
            store32(call.host, word_address, u32::from_le_bytes(word))?;
        }
        done += step;
    }
    call.return_u32(OK)
}

/// One page program piece of SPIWrite: `len` bytes from `source` to `address`, within a page.
fn program_page<H: RomHost>(
    call: &mut Call<'_, H>,
    params: &FlashChipParams,
    address: u32,
    source: u32,
    len: u32,
) -> Result<u32, Fault> {
    if !len.is_multiple_of(4)
        || u64::from(len) + u64::from(address % params.page_size) > params.page_size.into()
    {
        return Ok(ERR);
    }
    wait_until_idle(call);
    let mut done = 0;
    while done < len {
        let step = CHUNK.min(len - done);
        let mut data = Vec::with_capacity(step as usize);
        for word in 0..step / 4 {
            let value = load32(call.host, source.wrapping_add(done + 4 * word))?;
            data.extend_from_slice(&value.to_le_bytes());
        }
        enable_writes(call);
        command(
            call,
            opcode::PAGE_PROGRAM,
            Some(address.wrapping_add(done)),
            &data,
        );
        wait_until_idle(call);
        done += step;
    }
    Ok(OK)
}

/// `SPIWrite(faddr, src, len)`.
pub(super) fn spi_write<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (address, source, len) = (call.arg(0), call.arg(1), call.arg(2));
    let params = load_params(call)?;
    if address
        .checked_add(len)
        .is_none_or(|end| end > params.chip_size)
    {
        return call.return_u32(ERR);
    }
    let Some(first_offset) = address.checked_rem(params.page_size) else {
        return raise_exception(call, ILLEGAL_INSTRUCTION);
    };
    let first = params.page_size - first_offset;
    let result = if len < first {
        program_page(call, &params, address, source, len)?
    } else {
        let mut result = program_page(call, &params, address, source, first)?;
        let mut offset = first;
        while result == OK && len - offset >= params.page_size {
            result = program_page(
                call,
                &params,
                address + offset,
                source.wrapping_add(offset),
                params.page_size,
            )?;
            offset += params.page_size;
        }
        if result == OK {
            result = program_page(
                call,
                &params,
                address + offset,
                source.wrapping_add(offset),
                len - offset,
            )?;
        }
        result
    };
    trace_result(call, format!("SPIWrite({address:#x}, {len} bytes)"), result);
    call.return_u32(result)
}

/// Erases the sector or block `index` of `unit` bytes with `instruction`.
fn erase_unit<H: RomHost>(
    call: &mut Call<'_, H>,
    instruction: u8,
    index: u32,
    unit: u32,
) -> Result<Option<u32>, Fault> {
    let params = load_params(call)?;
    let Some(count) = divide(params.chip_size, unit) else {
        return Ok(None);
    };
    if index >= count {
        return Ok(Some(ERR));
    }
    enable_writes(call);
    let address = unit.wrapping_mul(index);
    if instruction == opcode::SECTOR_ERASE && address & 0xFFF != 0 {
        return Ok(Some(ERR));
    }
    wait_until_idle(call);
    command(call, instruction, Some(address), &[]);
    wait_until_idle(call);
    Ok(Some(OK))
}

fn erase<H: RomHost>(
    call: &mut Call<'_, H>,
    instruction: u8,
    name: &str,
) -> Result<RomOutcome, Fault> {
    let index = call.arg(0);
    let params = load_params(call)?;
    let unit = if instruction == opcode::SECTOR_ERASE {
        params.sector_size
    } else {
        params.block_size
    };
    match erase_unit(call, instruction, index, unit)? {
        Some(result) => {
            trace_result(call, format!("{name}({index})"), result);
            call.return_u32(result)
        }
        None => raise_exception(call, ILLEGAL_INSTRUCTION),
    }
}

/// `SPIEraseSector(sector)`.
pub(super) fn erase_sector<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    erase(call, opcode::SECTOR_ERASE, "SPIEraseSector")
}

/// `SPIEraseBlock(block)`: a 64 KiB block erase (D8h).
pub(super) fn erase_block<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    erase(call, opcode::BLOCK_ERASE_64K, "SPIEraseBlock")
}

/// `SPIEraseChip()`.
pub(super) fn erase_chip<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    enable_writes(call);
    wait_until_idle(call);
    command(call, opcode::CHIP_ERASE, None, &[]);
    wait_until_idle(call);
    trace_result(call, "SPIEraseChip()".to_string(), OK);
    call.return_u32(OK)
}

/// `SPIEraseArea(start, len)`, with the ROM's bug.
pub(super) fn erase_area<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (start, len) = (call.arg(0), call.arg(1));
    let params = load_params(call)?;
    if start
        .checked_add(len)
        .is_none_or(|end| end > params.chip_size)
    {
        return call.return_u32(ERR);
    }
    let (Some(first_offset), Some(sectors_per_block), Some(whole_sectors)) = (
        start.checked_rem(params.sector_size),
        divide(params.block_size, params.sector_size),
        divide(len, params.sector_size),
    ) else {
        return raise_exception(call, ILLEGAL_INSTRUCTION);
    };
    if first_offset != 0 {
        return call.return_u32(ERR);
    }
    enable_writes(call);
    write_status_register(call, 0);
    let Some(head_room) = start
        .checked_div(params.sector_size)
        .and_then(|first| first.checked_rem(sectors_per_block))
    else {
        return raise_exception(call, ILLEGAL_INSTRUCTION);
    };
    let mut sector = start / params.sector_size;
    let requested = whole_sectors + u32::from(len % params.sector_size != 0);
    let head = (sectors_per_block - head_room).min(requested);
    // The bug: after the head, the whole requested count is erased again.
    let plan = [(head, false), (requested, true)];
    for (mut count, blocks_allowed) in plan {
        while blocks_allowed && sectors_per_block < count {
            let block = sector / sectors_per_block;
            match erase_unit(call, opcode::BLOCK_ERASE_64K, block, params.block_size)? {
                Some(OK) => {}
                _ => return call.return_u32(ERR),
            }
            sector = sector.wrapping_add(sectors_per_block);
            count -= sectors_per_block;
        }
        for _ in 0..count {
            match erase_unit(call, opcode::SECTOR_ERASE, sector, params.sector_size)? {
                Some(OK) => {}
                _ => return call.return_u32(ERR),
            }
            sector = sector.wrapping_add(1);
        }
    }
    trace_result(call, format!("SPIEraseArea({start:#x}, {len:#x})"), OK);
    call.return_u32(OK)
}

/// `SPIUnlock()`: status register 1 = 0.
pub(super) fn unlock<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    enable_writes(call);
    write_status_register(call, 0);
    call.return_u32(OK)
}

/// `SPILock()`: status register 1 = BP0..BP2.
pub(super) fn lock<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    enable_writes(call);
    write_status_register(call, LOCK_STATUS);
    call.return_u32(OK)
}

/// `SPI_read_status(chip, &status)`: waits while BUSY, stores status register 1 masked with
/// the descriptor's status mask.
pub(super) fn read_status<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (chip, destination) = (call.arg(0), call.arg(1));
    let mask = load32(call.host, chip.wrapping_add(STATUS_MASK_OFFSET))?;
    let status = read_status_register(call, mask);
    store32(call.host, destination, status)?;
    call.return_u32(OK)
}

/// `SPI_write_status(chip, status)`.
pub(super) fn write_status<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    write_status_register(call, call.arg(1));
    call.return_u32(OK)
}

/// `SPI_write_enable(chip)`.
pub(super) fn write_enable<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    enable_writes(call);
    call.return_u32(OK)
}

/// `Wait_SPI_Idle(chip)`.
pub(super) fn wait_idle<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    wait_until_idle(call);
    call.return_u32(OK)
}

/// `SPIParamCfg(deviceId, chip_size, block_size, sector_size, page_size, status_mask)`.
pub(super) fn param_cfg<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let params = FlashChipParams {
        device_id: call.arg(0),
        chip_size: call.arg(1),
        block_size: call.arg(2),
        sector_size: call.arg(3),
        page_size: call.arg(4),
        status_mask: call.arg(5),
    };
    params.store(call.host).map_err(|fault| Fault::Bus {
        address: fault.address,
        access: super::guest::Access::Store,
    })?;
    call.host.trace(format!(
        "rom: SPIParamCfg: flashchip at {FLASHCHIP_ADDRESS:#x} = {params:x?}"
    ));
    call.return_u32(OK)
}

/// `spi_flash_attach()` and `SelectSpiFunction()`: route the SPI pins to the flash; 0.
pub(super) fn attach<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.host.attach_flash();
    call.return_u32(OK)
}

/// `SPIReadModeCnfig(mode)`: the read mode (QIO, DIO, ...) is not modelled; 0.
pub(super) fn read_mode_config<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let mode = call.arg(0);
    call.host.trace(format!(
        "rom: SPIReadModeCnfig({mode}): read modes are not modelled"
    ));
    call.return_u32(OK)
}

/// `Cache_Read_Enable(odd_even, mb_count, no_idea)`: maps flash at 0x4020_0000. Only the
/// mapping of the first megabyte (odd_even 0, mb_count 0) is modelled.
pub(super) fn cache_read_enable<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (odd_even, megabyte) = (call.arg(0), call.arg(1));
    if odd_even != 0 || megabyte != 0 {
        return Ok(RomOutcome::Halted {
            reason: format!(
                "Cache_Read_Enable({odd_even}, {megabyte}, {}) maps a flash megabyte other than the first, which the virtual chip does not model",
                call.arg(2)
            ),
        });
    }
    call.host.set_flash_cache(true);
    call.return_void()
}

/// `Cache_Read_Disable()`.
pub(super) fn cache_read_disable<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.host.set_flash_cache(false);
    call.return_void()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use esp_protocol::rom_erase::rom_erased_sectors;

    use super::super::test_host::{Rig, TestHost, IRAM};
    use super::super::{address_of, FlashChipParams, RomOutcome, FLASHCHIP_ADDRESS};
    use super::{ERR, OK};
    use crate::flash::{FlashOptions, SpiFlash, SECTOR_SIZE};

    const MIB: usize = 1 << 20;
    const BUFFER: u32 = 0x3FFF_0000;

    /// A rig with a flash chip of `size` filled with a pattern, and the descriptor the esptool
    /// stubs set (16 MiB claimed, whatever the chip).
    fn rig_with(size: usize, options: FlashOptions) -> Rig {
        let contents: Vec<u8> = (0..size).map(|index| (index % 251) as u8).collect();
        let flash = SpiFlash::new(contents, options).unwrap();
        let mut rig = Rig::with_host(TestHost::with_flash(flash));
        rig.call_ok(
            "SPIParamCfg",
            &[0, 16 * MIB as u32, 0x10000, 0x1000, 0x100, 0xFFFF],
        );
        rig
    }

    fn rig() -> Rig {
        rig_with(MIB, FlashOptions::default())
    }

    fn pattern(address: usize, len: usize) -> Vec<u8> {
        (address..address + len)
            .map(|index| (index % 251) as u8)
            .collect()
    }

    #[test]
    fn param_cfg_stores_six_words_at_flashchip() {
        let mut rig = rig();
        let words: Vec<u32> = rig
            .host
            .peek(FLASHCHIP_ADDRESS, 24)
            .chunks(4)
            .map(|word| u32::from_le_bytes(word.try_into().unwrap()))
            .collect();
        assert_eq!(words, [0, 16 * MIB as u32, 0x10000, 0x1000, 0x100, 0xFFFF]);
        let defaults = FlashChipParams::for_flash(&SpiFlash::blank(4 * MIB).unwrap());
        assert_eq!(
            defaults.device_id, 0x16_40EF,
            "JEDEC bytes EF 40 16 as read"
        );
        assert_eq!(defaults.chip_size, 4 * MIB as u32);
        defaults.store(&mut rig.host).unwrap();
        assert_eq!(FlashChipParams::load(&mut rig.host).unwrap(), defaults);
    }

    #[test]
    fn read_copies_flash_and_checks_bounds_against_the_descriptor() {
        let mut rig = rig();
        assert_eq!(rig.call_ok("SPIRead", &[0x1234, BUFFER, 100]), OK);
        assert_eq!(rig.host.peek(BUFFER, 100), pattern(0x1234, 100));
        // Word stores: the tail of the last word keeps what was there.
        rig.host.poke(BUFFER, &[0xEE; 8]);
        assert_eq!(rig.call_ok("SPIRead", &[0x10, BUFFER, 5]), OK);
        assert_eq!(
            rig.host.peek(BUFFER, 8),
            [&pattern(0x10, 5)[..], &[0xEE; 3]].concat()
        );
        // Into IRAM, which takes words only.
        assert_eq!(rig.call_ok("SPIRead", &[0, IRAM.start, 64]), OK);
        assert_eq!(rig.host.peek(IRAM.start, 64), pattern(0, 64));
        // Beyond the descriptor's 16 MiB, or overflowing: ERR, nothing touched.
        assert_eq!(
            rig.call_ok("SPIRead", &[16 * MIB as u32 - 4, BUFFER, 8]),
            ERR
        );
        assert_eq!(rig.call_ok("SPIRead", &[8, BUFFER, u32::MAX]), ERR);
        // An unaligned destination faults on the first word store.
        let outcome = rig.call("SPIRead", &[0, BUFFER + 1, 4]);
        assert!(
            matches!(&outcome, RomOutcome::Halted { reason } if reason.contains("unaligned 32-bit store of 0x3fff0001")),
            "{outcome:?}"
        );
    }

    #[test]
    fn reads_past_the_chip_wrap_as_the_chip_decodes_them() {
        // The descriptor claims 16 MiB; the chip has 1 MiB and decodes 20 address bits.
        let mut rig = rig();
        assert_eq!(rig.call_ok("SPIRead", &[MIB as u32 + 0x40, BUFFER, 16]), OK);
        assert_eq!(rig.host.peek(BUFFER, 16), pattern(0x40, 16));
        // A fake chip: claims 1 MiB, has 256 KiB.
        let options = FlashOptions {
            physical_size: Some(256 * 1024),
            ..FlashOptions::default()
        };
        let mut rig = rig_with(MIB, options);
        assert_eq!(rig.call_ok("SPIRead", &[0x40000 + 8, BUFFER, 8]), OK);
        assert_eq!(rig.host.peek(BUFFER, 8), pattern(8, 8));
    }

    #[test]
    fn write_programs_pages_and_only_clears_bits() {
        let mut rig = rig_with(MIB, FlashOptions::default());
        rig.call_ok("SPIEraseSector", &[1]);
        let data: Vec<u8> = (0..600u32).map(|index| (index * 7) as u8).collect();
        rig.host.poke(BUFFER, &data);
        assert_eq!(rig.call_ok("SPIWrite", &[0x1000 + 0xF0, BUFFER, 600]), OK);
        assert_eq!(&rig.host.flash.as_bytes()[0x10F0..0x10F0 + 600], &data[..]);
        assert!(rig.host.flash.as_bytes()[0x10F0 + 600..0x2000]
            .iter()
            .all(|&byte| byte == 0xFF));
        // Programming again ANDs.
        rig.host.poke(BUFFER, &[0x0F; 4]);
        assert_eq!(rig.call_ok("SPIWrite", &[0x10F0, BUFFER, 4]), OK);
        assert_eq!(rig.host.flash.as_bytes()[0x10F0], data[0] & 0x0F);
    }

    #[test]
    fn write_refuses_pieces_that_are_not_whole_words() {
        let mut rig = rig();
        rig.call_ok("SPIEraseSector", &[0]);
        rig.host.poke(BUFFER, &[0u8; 512]);
        // From 2, the piece up to the page end is 254 bytes: refused, nothing written.
        assert_eq!(rig.call_ok("SPIWrite", &[2, BUFFER, 300]), ERR);
        assert!(rig.host.flash.as_bytes()[..0x200]
            .iter()
            .all(|&byte| byte == 0xFF));
        // 8 bytes from 2 stay inside the page: one whole-word piece, written.
        assert_eq!(rig.call_ok("SPIWrite", &[2, BUFFER, 8]), OK);
        assert_eq!(
            rig.host.flash.as_bytes()[..12],
            [0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
        );
        // 302 bytes from 0x100: the first page is written, the 46-byte rest is refused.
        assert_eq!(rig.call_ok("SPIWrite", &[0x100, BUFFER, 302]), ERR);
        assert!(rig.host.flash.as_bytes()[0x100..0x200]
            .iter()
            .all(|&byte| byte == 0));
        assert!(rig.host.flash.as_bytes()[0x200..0x300]
            .iter()
            .all(|&byte| byte == 0xFF));
        assert_eq!(rig.call_ok("SPIWrite", &[16 * MIB as u32, BUFFER, 4]), ERR);
        assert_eq!(
            rig.call_ok("SPIWrite", &[0x100, BUFFER, 0]),
            OK,
            "nothing to write"
        );
    }

    #[test]
    fn write_protection_silently_keeps_the_contents() {
        let options = FlashOptions {
            write_protected: true,
            ..FlashOptions::default()
        };
        let mut rig = rig_with(MIB, options);
        let before = rig.host.flash.as_bytes().to_vec();
        rig.host.poke(BUFFER, &[0u8; 64]);
        assert_eq!(
            rig.call_ok("SPIWrite", &[0, BUFFER, 64]),
            OK,
            "the ROM does not verify"
        );
        assert_eq!(rig.call_ok("SPIEraseSector", &[3]), OK);
        assert_eq!(rig.call_ok("SPIEraseBlock", &[1]), OK);
        assert_eq!(rig.call_ok("SPIEraseChip", &[]), OK);
        assert_eq!(rig.host.flash.as_bytes(), &before[..]);
        // SPIUnlock writes status register 1 = 0, which the model always accepts.
        assert_eq!(rig.call_ok("SPIUnlock", &[]), OK);
        assert!(rig.host.flash.protected_range().is_empty());
        assert_eq!(rig.call_ok("SPIEraseSector", &[3]), OK);
        assert!(rig.host.flash.as_bytes()[0x3000..0x4000]
            .iter()
            .all(|&byte| byte == 0xFF));
        assert_eq!(rig.call_ok("SPILock", &[]), OK);
        assert_eq!(rig.host.flash.protected_range(), 0..MIB as u32);
    }

    #[test]
    fn stuck_sectors_keep_their_contents() {
        let options = FlashOptions {
            stuck_sectors: BTreeSet::from([2, 17]),
            ..FlashOptions::default()
        };
        let mut rig = rig_with(MIB, options);
        assert_eq!(rig.call_ok("SPIEraseSector", &[2]), OK);
        assert_eq!(
            &rig.host.flash.as_bytes()[0x2000..0x3000],
            &pattern(0x2000, 0x1000)[..]
        );
        assert_eq!(rig.call_ok("SPIEraseBlock", &[1]), OK);
        let flash = rig.host.flash.as_bytes();
        assert!(flash[0x10000..0x11000].iter().all(|&byte| byte == 0xFF));
        assert_eq!(&flash[0x11000..0x12000], &pattern(0x11000, 0x1000)[..]);
        assert!(flash[0x12000..0x20000].iter().all(|&byte| byte == 0xFF));
    }

    #[test]
    fn erase_indices_are_checked_against_the_descriptor() {
        let mut rig = rig();
        // 16 MiB claimed: sector 4095 exists for the ROM and lands on the 1 MiB chip's last one.
        assert_eq!(rig.call_ok("SPIEraseSector", &[4095]), OK);
        assert!(rig.host.flash.as_bytes()[MIB - SECTOR_SIZE..]
            .iter()
            .all(|&byte| byte == 0xFF));
        assert_eq!(rig.call_ok("SPIEraseSector", &[4096]), ERR);
        assert_eq!(rig.call_ok("SPIEraseBlock", &[256]), ERR);
        assert_eq!(rig.call_ok("SPIEraseSector", &[u32::MAX]), ERR);
    }

    #[test]
    fn erase_area_has_the_roms_bug() {
        for (start, len) in [
            (0x3000, 0x1000),
            (0, 0x10000),
            (0xF000, 0x2000),
            (0x5000, 0x23456),
        ] {
            let mut rig = rig_with(MIB, FlashOptions::default());
            assert_eq!(rig.call_ok("SPIEraseArea", &[start, len]), OK);
            let erased = rom_erased_sectors(start, len);
            let flash = rig.host.flash.as_bytes();
            for sector in 0..(MIB / SECTOR_SIZE) as u32 {
                let bytes = &flash[sector as usize * SECTOR_SIZE..][..SECTOR_SIZE];
                let blank = bytes.iter().all(|&byte| byte == 0xFF);
                assert_eq!(
                    blank,
                    erased.contains(&sector),
                    "{start:#x}+{len:#x}: sector {sector}"
                );
            }
        }
        let mut rig = rig();
        assert_eq!(
            rig.call_ok("SPIEraseArea", &[0x800, 0x1000]),
            ERR,
            "unaligned start"
        );
        assert_eq!(
            rig.call_ok("SPIEraseArea", &[0x1000, u32::MAX]),
            ERR,
            "overflow"
        );
    }

    #[test]
    fn busy_time_is_waited_for_and_charged_in_cycles() {
        let options = FlashOptions {
            model_busy_time: true,
            ..FlashOptions::default()
        };
        let mut rig = rig_with(MIB, options);
        let before = rig.cpu.cycles();
        assert_eq!(rig.call_ok("SPIEraseSector", &[5]), OK);
        assert_eq!(rig.host.flash.remaining_busy_time(), Duration::ZERO);
        assert_eq!(rig.cpu.cycles() - before, 45_000 * 80, "45 ms at 80 MHz");
        let status_address = BUFFER;
        rig.host.poke(status_address, &[0xAA; 4]);
        assert_eq!(
            rig.call_ok("SPI_read_status", &[FLASHCHIP_ADDRESS, status_address]),
            OK
        );
        assert_eq!(rig.host.peek(status_address, 4), [0, 0, 0, 0]);
        rig.call_ok("SPI_write_enable", &[FLASHCHIP_ADDRESS]);
        rig.call_ok("SPI_read_status", &[FLASHCHIP_ADDRESS, status_address]);
        assert_eq!(rig.host.peek(status_address, 1), [0x02], "WEL");
        rig.call_ok("SPI_write_status", &[FLASHCHIP_ADDRESS, 0x04]);
        assert_eq!(rig.call_ok("Wait_SPI_Idle", &[FLASHCHIP_ADDRESS]), OK);
        assert_eq!(rig.host.flash.status_registers()[0], 0x04);
    }

    #[test]
    fn zero_sizes_in_the_descriptor_divide_by_zero() {
        let mut rig = rig();
        rig.call_ok("SPIParamCfg", &[0, MIB as u32, 0, 0, 0, 0xFFFF]);
        for (name, args) in [
            ("SPIWrite", vec![0, BUFFER, 4]),
            ("SPIEraseSector", vec![1]),
            ("SPIEraseArea", vec![0, 0x1000]),
        ] {
            assert_eq!(rig.call(name, &args), RomOutcome::Returned);
            assert_eq!(
                Some(rig.cpu.pc()),
                address_of("_UserExceptionVector"),
                "{name}: exception vector"
            );
            let _ = rig.resume();
            rig.cpu.write_sr(xtensa_lx106::sr::PS, 0x20);
        }
    }

    #[test]
    fn attach_cache_and_read_mode() {
        let mut rig = rig();
        assert!(!rig.host.flash_attached);
        assert_eq!(rig.call_ok("SelectSpiFunction", &[]), OK);
        assert!(rig.host.flash_attached);
        assert_eq!(rig.call_ok("spi_flash_attach", &[]), OK);
        assert_eq!(rig.call_ok("SPIReadModeCnfig", &[5]), OK);
        rig.call_ok("Cache_Read_Enable", &[0, 0, 1]);
        assert_eq!(rig.host.flash_cache, Some(true));
        rig.call_ok("Cache_Read_Disable", &[]);
        assert_eq!(rig.host.flash_cache, Some(false));
        assert!(matches!(
            rig.call("Cache_Read_Enable", &[1, 1, 1]),
            RomOutcome::Halted { .. }
        ));
    }
}
