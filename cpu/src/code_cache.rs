//! The predecode cache: runs of consecutive decoded instructions ("blocks", up to
//! [`BLOCK_MAX`] instructions, ending at the first one that always jumps, traps, or changes the
//! interrupt state; conditional branches stay inside and leave the block when taken) kept by
//! their start address, so the run loop decodes each instruction once and looks the cache up
//! once per block instead of once per instruction.
//!
//! Direct-mapped: the low bits of the start PC pick the slot, the whole PC is the tag. A bitmap
//! of 4 KiB pages that hold cached code lets a store find out in one lookup whether it may have
//! changed cached code; only then are the few slots whose blocks it could overlap checked.

use crate::decode::{Instruction, Op};

/// Instructions in a block at most.
pub(crate) const BLOCK_MAX: usize = 8;
/// Bytes a block spans at most (eight 3-byte instructions).
const BLOCK_SPAN: u32 = 3 * BLOCK_MAX as u32;

const SLOT_BITS: u32 = 13;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u32 = (SLOTS as u32) - 1;
const PAGE_SHIFT: u32 = 12;
const PAGE_WORDS: usize = 1 << (32 - PAGE_SHIFT - 6);

/// Decoded instructions that run one after the other from `pc`.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    /// The first instruction's address (the slot's tag).
    pub(crate) pc: u32,
    /// Instructions in `insns`, 1..=BLOCK_MAX (0 only in an empty slot).
    pub(crate) count: u8,
    /// Bytes the instructions cover.
    pub(crate) bytes: u8,
    pub(crate) insns: [Instruction; BLOCK_MAX],
}

const FILLER: Instruction = Instruction {
    op: Op::Nop,
    r: 0,
    s: 0,
    t: 0,
    imm: 0,
};

impl Block {
    pub(crate) fn new(pc: u32) -> Block {
        Block {
            pc,
            count: 0,
            bytes: 0,
            insns: [FILLER; BLOCK_MAX],
        }
    }

    /// Appends `insn`; false when the block is full.
    pub(crate) fn push(&mut self, insn: Instruction) -> bool {
        let Some(slot) = self.insns.get_mut(self.count as usize) else {
            return false;
        };
        *slot = insn;
        self.count += 1;
        self.bytes += insn.len() as u8;
        true
    }

    pub(crate) fn is_full(&self) -> bool {
        self.count as usize == BLOCK_MAX
    }

    /// The address after the last instruction.
    pub(crate) fn end(&self) -> u32 {
        self.pc.wrapping_add(u32::from(self.bytes))
    }
}

pub(crate) struct CodeCache {
    blocks: Box<[Block; SLOTS]>,
    /// Bit p set: page p may hold (bytes of) a cached block.
    code_pages: Box<[u64; PAGE_WORDS]>,
}

/// The slot's tag when it holds nothing: a PC that never maps to this slot, so no lookup hits.
fn empty_tag(index: usize) -> u32 {
    (index as u32) ^ 1
}

fn slot_of(pc: u32) -> usize {
    (pc & SLOT_MASK) as usize
}

impl CodeCache {
    pub(crate) fn new() -> CodeCache {
        let blocks: Vec<Block> = (0..SLOTS)
            .map(|index| Block::new(empty_tag(index)))
            .collect();
        let pages = vec![0u64; PAGE_WORDS];
        CodeCache {
            blocks: blocks
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the block vector has SLOTS entries")),
            code_pages: pages
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("the page vector has PAGE_WORDS entries")),
        }
    }

    /// The slot holding the block that starts at `pc`, if cached.
    #[inline(always)]
    pub(crate) fn lookup(&self, pc: u32) -> Option<usize> {
        let index = slot_of(pc);
        (self.blocks[index].pc == pc).then_some(index)
    }

    /// The instruction count of the block in slot `index`.
    #[inline(always)]
    pub(crate) fn count(&self, index: usize) -> usize {
        self.blocks[index % SLOTS].count as usize
    }

    /// Instruction `n` of the block in slot `index`.
    #[inline(always)]
    pub(crate) fn instruction(&self, index: usize, n: usize) -> Instruction {
        self.blocks[index % SLOTS].insns[n % BLOCK_MAX]
    }

    /// Caches `block` (at least one instruction); its slot.
    pub(crate) fn insert(&mut self, block: Block) -> usize {
        let index = slot_of(block.pc);
        self.mark_page(block.pc);
        self.mark_page(block.end().wrapping_sub(1));
        self.blocks[index] = block;
        index
    }

    fn mark_page(&mut self, address: u32) {
        let page = (address >> PAGE_SHIFT) as usize;
        self.code_pages[(page >> 6) % PAGE_WORDS] |= 1 << (page & 63);
    }

    /// Whether the page of `address` may hold cached code.
    #[inline(always)]
    fn may_hold_code(&self, address: u32) -> bool {
        let page = (address >> PAGE_SHIFT) as usize;
        self.code_pages[(page >> 6) % PAGE_WORDS] & (1 << (page & 63)) != 0
    }

    /// A store of `len` bytes at `address` happened: forgets the blocks it may have changed.
    /// True when a block was forgotten.
    #[inline(always)]
    pub(crate) fn note_store(&mut self, address: u32, len: u32) -> bool {
        self.may_hold_code(address) && self.invalidate(address, len)
    }

    /// Forgets every cached block with a byte in `start..start + len`; true when one was.
    pub(crate) fn invalidate(&mut self, start: u32, len: u32) -> bool {
        let first = start.wrapping_sub(BLOCK_SPAN - 1);
        let span = u64::from(len) + u64::from(BLOCK_SPAN - 1);
        if span >= SLOTS as u64 {
            self.clear();
            return true;
        }
        let mut forgot = false;
        for offset in 0..span as u32 {
            let pc = first.wrapping_add(offset);
            let index = slot_of(pc);
            let block = &self.blocks[index];
            // Either range starts inside the other.
            let overlaps = block.pc == pc
                && (start.wrapping_sub(pc) < u32::from(block.bytes)
                    || pc.wrapping_sub(start) < len);
            if overlaps {
                self.blocks[index].pc = empty_tag(index);
                forgot = true;
            }
        }
        forgot
    }

    pub(crate) fn clear(&mut self) {
        for (index, block) in self.blocks.iter_mut().enumerate() {
            block.pc = empty_tag(index);
        }
        self.code_pages.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop_block(pc: u32, count: usize) -> Block {
        let mut block = Block::new(pc);
        for _ in 0..count {
            assert!(block.push(Instruction {
                op: Op::Nop,
                ..FILLER
            }));
        }
        block
    }

    #[test]
    fn a_block_is_found_by_its_start_only() {
        let mut cache = CodeCache::new();
        let index = cache.insert(nop_block(0x4010_0010, 2));
        assert_eq!(cache.lookup(0x4010_0010), Some(index));
        assert_eq!(cache.count(index), 2);
        assert_eq!(cache.lookup(0x4010_0013), None);
        assert_eq!(
            cache.lookup(0x4010_0010 + SLOTS as u32),
            None,
            "same slot, other tag"
        );
        for index in 0..SLOTS {
            assert_eq!(cache.lookup(index as u32), None, "empty slots never hit");
        }
    }

    #[test]
    fn stores_forget_exactly_the_blocks_they_overlap() {
        let mut cache = CodeCache::new();
        // Three NOPs: bytes 0x4010_0010..0x4010_0019.
        cache.insert(nop_block(0x4010_0010, 3));
        assert!(!cache.note_store(0x4010_000C, 4), "just below");
        assert!(!cache.note_store(0x4010_0019, 1), "just above");
        assert!(!cache.note_store(0x3FFE_8000, 4), "a page without code");
        assert!(cache.lookup(0x4010_0010).is_some());
        assert!(cache.note_store(0x4010_0018, 1), "the last byte");
        assert_eq!(cache.lookup(0x4010_0010), None);

        cache.insert(nop_block(0x4010_0010, 3));
        assert!(cache.note_store(0x4010_000E, 4), "a store across the start");
        assert_eq!(cache.lookup(0x4010_0010), None);
    }

    #[test]
    fn a_large_invalidation_clears_everything() {
        let mut cache = CodeCache::new();
        cache.insert(nop_block(0x4020_0000, 8));
        assert!(cache.invalidate(0x4000_0000, 0x0100_0000));
        assert_eq!(cache.lookup(0x4020_0000), None);
        assert!(
            !cache.note_store(0x4020_0000, 4),
            "no page is marked after a clear"
        );
    }

    #[test]
    fn a_block_holds_at_most_block_max_instructions() {
        let mut block = nop_block(0, BLOCK_MAX);
        assert!(block.is_full());
        assert!(!block.push(FILLER));
        assert_eq!(block.end(), 3 * BLOCK_MAX as u32);
    }
}
