//! The ESP8266 ROM's FLASH_BEGIN erase quirk.
//!
//! The ROM erases from the begin offset sector by sector up to the next 64 KiB
//! block boundary (the "head"), but then erases the full requested count again
//! instead of what is left: it erases `requested + head` sectors, where head
//! is at most the requested count. Clients therefore send a smaller size. The
//! ROM can only erase an even number of sectors inside one 64 KiB block, so an
//! odd count that stays short of twice the head cannot be hit exactly: the
//! smallest over-erase is one sector, which [`rom_erase_plan`] reports.

/// Flash sector size: the unit the ROM erases.
pub const SECTOR_SIZE: u32 = 0x1000;
/// Sectors in a 64 KiB erase block.
pub const SECTORS_PER_BLOCK: u32 = 16;

/// What the ROM erases, in sectors, when FLASH_BEGIN asks for `size_sent`
/// bytes at `offset`: a run of sectors starting at `offset`'s sector.
pub fn rom_erased_sectors(offset: u32, size_sent: u32) -> std::ops::Range<u32> {
    let first = offset / SECTOR_SIZE;
    let requested = size_sent.div_ceil(SECTOR_SIZE);
    let head = (SECTORS_PER_BLOCK - first % SECTORS_PER_BLOCK).min(requested);
    first..first + requested + head
}

/// The size to send with FLASH_BEGIN and what the ROM will then erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RomErasePlan {
    /// The erase-size field to send.
    pub size_to_send: u32,
    /// The sectors the ROM erases in response.
    pub erased_sectors: std::ops::Range<u32>,
    /// Sectors erased beyond the wanted region (0, or 1 where exact is impossible).
    pub extra_sectors: u32,
}

/// Plans FLASH_BEGIN for the ROM so it erases exactly the sectors that
/// `size` bytes at `offset` touch, or one more where the ROM cannot do exactly that.
pub fn rom_erase_plan(offset: u32, size: u32) -> RomErasePlan {
    let first = offset / SECTOR_SIZE;
    let wanted = (offset % SECTOR_SIZE + size).div_ceil(SECTOR_SIZE);
    let head = SECTORS_PER_BLOCK - first % SECTORS_PER_BLOCK;
    // Sending n sectors erases n + min(n, head): 2n up to the head, n + head beyond it.
    let sectors_to_send = if wanted >= 2 * head {
        wanted - head
    } else {
        wanted.div_ceil(2)
    };
    let erased_sectors = rom_erased_sectors(offset, sectors_to_send * SECTOR_SIZE);
    let extra_sectors = erased_sectors.len() as u32 - wanted;
    RomErasePlan {
        size_to_send: sectors_to_send * SECTOR_SIZE,
        erased_sectors,
        extra_sectors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_model_erases_head_twice() {
        // 0x10000 bytes at 0x0: 16 sectors requested, head is the whole block: 32 erased.
        assert_eq!(rom_erased_sectors(0, 0x10000), 0..32);
        // 2 sectors at sector 15: head is 1, so 3 are erased.
        assert_eq!(rom_erased_sectors(0xF000, 0x2000), 15..18);
    }

    #[test]
    fn plan_for_a_whole_megabyte_at_zero_is_exact() {
        let plan = rom_erase_plan(0, 0x100000);
        assert_eq!(plan.size_to_send, 0x100000 - 0x10000);
        assert_eq!(plan.erased_sectors, 0..256);
        assert_eq!(plan.extra_sectors, 0);
    }

    #[test]
    fn single_sector_cannot_be_erased_alone() {
        let plan = rom_erase_plan(0x3000, 0x1000);
        assert_eq!(plan.size_to_send, 0x1000);
        assert_eq!(plan.erased_sectors, 3..5);
        assert_eq!(plan.extra_sectors, 1);
    }
}
