//! The core's architectural state and its life between instructions: the run loop, the trap
//! range, exceptions (general, double, debug), interrupts (level 1 through the user/kernel
//! vector, the NMI at level 3), WAITI, CCOUNT/CCOMPARE0 and the special registers as RSR/WSR see
//! them. What each instruction does is in `exec`.
//!
//! Interrupt configuration (the ESP8266's core-isa facts): 15 interrupts; 0..=5 external
//! level-triggered, 6 the CCOMPARE0 timer, 7 software, 8..=13 external edge-triggered, all at
//! level 1; 14 the NMI at level 3. Debug exceptions are at level 2. Vectors at VECBASE +
//! 0x10 (debug), 0x20 (NMI), 0x30 (kernel), 0x50 (user), 0x70 (double).

use crate::code_cache::{Block, CodeCache, BLOCK_MAX};
use crate::decode::{decode, length_of, Instruction, Op};
use crate::{cause, sr, Bus, Stop};
use core::ops::Range;

/// PS fields.
pub(crate) const PS_INTLEVEL: u32 = 0xF;
pub(crate) const PS_EXCM: u32 = 1 << 4;
pub(crate) const PS_UM: u32 = 1 << 5;
/// The PS bits the LX106 implements (no windows, one ring).
const PS_MASK: u32 = PS_INTLEVEL | PS_EXCM | PS_UM;
const PS_RESET: u32 = 0x1F;

const RESET_PC: u32 = 0x4000_0080;
const VECBASE_RESET: u32 = 0x4000_0000;
/// VECBASE keeps bits 31..=10.
const VECBASE_MASK: u32 = 0xFFFF_FC00;
const DEBUG_VECTOR: u32 = 0x10;
const NMI_VECTOR: u32 = 0x20;
const KERNEL_VECTOR: u32 = 0x30;
const USER_VECTOR: u32 = 0x50;
const DOUBLE_VECTOR: u32 = 0x70;

pub(crate) const DEBUG_LEVEL: u32 = 2;
const NMI_LEVEL: u32 = 3;

/// Interrupt numbers and masks.
const TIMER0_BIT: u32 = 1 << 6;
const SOFTWARE_MASK: u32 = 1 << 7;
const LEVEL_LINES_MASK: u32 = 0x0000_003F;
const EDGE_LINES_MASK: u32 = 0x0000_3F00;
const NMI_BIT: u32 = 1 << 14;
const LEVEL1_MASK: u32 = 0x0000_3FFF;
const INTERRUPTS_MASK: u32 = 0x0000_7FFF;
const CLEARABLE_MASK: u32 = SOFTWARE_MASK | EDGE_LINES_MASK;

const LITBASE_MASK: u32 = 0xFFFF_F001;
const DBREAKC_MASK: u32 = 0xC000_003F;
/// CONFIGID0/CONFIGID1 of the ESP8266's core (core-isa facts).
const CONFIGID0_RESET: u32 = 0xC28C_DAFA;
const CONFIGID1: u32 = 0x1082_B6F6;
/// PRID: the processor ID the core reports (no ID is wired on the ESP8266 that this crate knows of).
pub(crate) const PRID_VALUE: u32 = 0;
/// Region-protection attribute after reset (bypass) for each of the eight 512 MiB regions.
const REGION_ATTRIBUTE_RESET: u32 = 2;

const RECENT: usize = 32;
/// CCOUNT wraps after this many cycles.
const CCOUNT_PERIOD: u64 = 1 << 32;

/// Why an instruction did not complete normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A general exception (EXCCAUSE = cause), with EXCVADDR for memory faults.
    Exception { cause: u32, vaddr: Option<u32> },
    /// A debug exception (DEBUGCAUSE = cause); raised only below the debug level.
    Debug { cause: u32 },
}

/// Where execution goes after an instruction that completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The next instruction in memory.
    Next,
    /// A jump, call, return or taken branch to this address.
    Jump(u32),
}

impl Fault {
    pub(crate) const ILLEGAL: Fault = Fault::Exception {
        cause: cause::ILLEGAL_INSTRUCTION,
        vaddr: None,
    };
}

/// An Xtensa LX106 core with the ESP8266's configuration. See the crate documentation.
pub struct Cpu {
    pub(crate) regs: [u32; 16],
    pub(crate) pc: u32,
    pub(crate) sar: u32,
    pub(crate) ps: u32,
    pub(crate) litbase: u32,
    /// EPC1..EPC3 at indices 1..=3.
    pub(crate) epc: [u32; 4],
    /// EPS2, EPS3 at indices 2..=3.
    pub(crate) eps: [u32; 4],
    /// EXCSAVE1..EXCSAVE3 at indices 1..=3.
    excsave: [u32; 4],
    pub(crate) depc: u32,
    exccause: u32,
    excvaddr: u32,
    vecbase: u32,
    intenable: u32,
    /// INTERRUPT bits the core holds: timer, software, and latched edge-triggered lines.
    latched_interrupts: u32,
    /// The bus's interrupt lines at the last poll.
    lines: u32,
    nmi_pending: bool,
    ccompare0: u32,
    /// CCOUNT = cycles (low 32 bits) + this.
    ccount_offset: u32,
    /// The cycle count at which CCOUNT next equals CCOMPARE0.
    timer_due: u64,
    debugcause: u32,
    icount: u32,
    icountlevel: u32,
    ibreakenable: u32,
    ibreaka0: u32,
    dbreaka0: u32,
    dbreakc0: u32,
    ddr: u32,
    configid0: u32,
    /// Region-protection attributes, instruction side and data side.
    pub(crate) itlb: [u32; 8],
    pub(crate) dtlb: [u32; 8],
    /// Instructions started (each costs one cycle; also the index of the next slot in `recent`).
    started: u64,
    /// Started instructions that faulted instead of retiring.
    faults: u64,
    /// Cycles charged by [`Cpu::add_cycles`].
    idle_cycles: u64,
    trap_range: Range<u32>,
    recent: [u32; RECENT],
    /// In WAITI, waiting for an interrupt.
    pub(crate) waiting: bool,
    /// State that decides interrupt delivery or debug checks changed: look before the next
    /// instruction.
    pub(crate) reconsider: bool,
    pub(crate) code: CodeCache,
}

/// Whether `op` ends a block: it always jumps, may raise an exception, or changes what
/// decides interrupt delivery (so the run loop must look at interrupts before the next
/// instruction). Conditional branches do not: a block goes on along their fall-through path
/// and is left when one is taken.
fn ends_block(op: Op) -> bool {
    use Op::*;
    matches!(
        op,
        Wsr | Xsr
            | Rsil
            | Waiti
            | Rfe
            | Rfde
            | Rfi
            | Rfdo
            | Rfdd
            | Break
            | BreakN
            | Syscall
            | Simcall
            | Ill
            | IllN
            | Ret
            | RetN
            | Jx
            | Callx0
            | Call0
            | J
    )
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::new()
    }
}

impl core::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cpu")
            .field("pc", &format_args!("{:#010x}", self.pc))
            .field("ar", &self.regs)
            .field("sar", &self.sar)
            .field("ps", &format_args!("{:#x}", self.ps))
            .field("cycles", &self.cycles())
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl Cpu {
    /// A core in its reset state: PC = 0x4000_0080, VECBASE = 0x4000_0000, PS = 0x1F, no trap range.
    pub fn new() -> Cpu {
        Cpu::with_parts(CodeCache::new(), 0..0)
    }

    fn with_parts(code: CodeCache, trap_range: Range<u32>) -> Cpu {
        let mut cpu = Cpu {
            regs: [0; 16],
            pc: RESET_PC,
            sar: 0,
            ps: PS_RESET,
            litbase: 0,
            epc: [0; 4],
            eps: [0; 4],
            excsave: [0; 4],
            depc: 0,
            exccause: 0,
            excvaddr: 0,
            vecbase: VECBASE_RESET,
            intenable: 0,
            latched_interrupts: 0,
            lines: 0,
            nmi_pending: false,
            ccompare0: 0,
            ccount_offset: 0,
            timer_due: 0,
            debugcause: 0,
            icount: 0,
            icountlevel: 0,
            ibreakenable: 0,
            ibreaka0: 0,
            dbreaka0: 0,
            dbreakc0: 0,
            ddr: 0,
            configid0: CONFIGID0_RESET,
            itlb: [REGION_ATTRIBUTE_RESET; 8],
            dtlb: [REGION_ATTRIBUTE_RESET; 8],
            started: 0,
            faults: 0,
            idle_cycles: 0,
            trap_range,
            recent: [0; RECENT],
            waiting: false,
            reconsider: true,
            code,
        };
        cpu.schedule_timer();
        cpu
    }

    /// Resets the core (registers, special registers, counters, the code cache) as the chip's
    /// reset does; the trap range stays.
    pub fn reset(&mut self) {
        *self = Cpu::with_parts(CodeCache::new(), self.trap_range.clone());
    }

    pub fn pc(&self) -> u32 {
        self.pc
    }

    /// Sets the PC (the caller of a trapped ROM function returns with `set_pc(ar(0))`). Leaves
    /// WAITI.
    pub fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
        self.waiting = false;
    }

    /// Address register `n` (a0..a15; `n` is taken modulo 16).
    pub fn ar(&self, n: usize) -> u32 {
        self.regs[n & 15]
    }

    /// Sets address register `n` (modulo 16).
    pub fn set_ar(&mut self, n: usize, value: u32) {
        self.regs[n & 15] = value;
    }

    /// The core's current PS.
    pub fn ps(&self) -> u32 {
        self.ps
    }

    /// Whether the core sits in WAITI waiting for an interrupt.
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// CCOUNT now.
    pub fn ccount(&self) -> u32 {
        (self.cycles() as u32).wrapping_add(self.ccount_offset)
    }

    /// Cycles until CCOUNT next equals CCOMPARE0 (1..=2^32), for a caller that skips idle time.
    pub fn cycles_until_timer(&self) -> u64 {
        self.timer_due.saturating_sub(self.cycles())
    }

    /// Reads special register `sr` as RSR does; `None` when the LX106 has no such readable
    /// register (see [`crate::sr`]).
    pub fn read_sr(&self, sr: u8) -> Option<u32> {
        Some(match sr {
            sr::SAR => self.sar,
            sr::LITBASE => self.litbase,
            sr::IBREAKENABLE => self.ibreakenable,
            sr::DDR => self.ddr,
            sr::IBREAKA0 => self.ibreaka0,
            sr::DBREAKA0 => self.dbreaka0,
            sr::DBREAKC0 => self.dbreakc0,
            sr::CONFIGID0 => self.configid0,
            sr::EPC1 => self.epc[1],
            sr::EPC2 => self.epc[2],
            sr::EPC3 => self.epc[3],
            sr::DEPC => self.depc,
            sr::EPS2 => self.eps[2],
            sr::EPS3 => self.eps[3],
            sr::CONFIGID1 => CONFIGID1,
            sr::EXCSAVE1 => self.excsave[1],
            sr::EXCSAVE2 => self.excsave[2],
            sr::EXCSAVE3 => self.excsave[3],
            sr::INTERRUPT => self.interrupt(),
            sr::INTENABLE => self.intenable,
            sr::PS => self.ps,
            sr::VECBASE => self.vecbase,
            sr::EXCCAUSE => self.exccause,
            sr::DEBUGCAUSE => self.debugcause,
            sr::CCOUNT => self.ccount(),
            sr::PRID => PRID_VALUE,
            sr::ICOUNT => self.icount,
            sr::ICOUNTLEVEL => self.icountlevel,
            sr::EXCVADDR => self.excvaddr,
            sr::CCOMPARE0 => self.ccompare0,
            _ => return None,
        })
    }

    /// Writes special register `sr` as WSR does, side effects included (INTSET sets the software
    /// interrupt, INTCLEAR clears software and edge-triggered interrupts, CCOMPARE0 clears the
    /// timer interrupt). Returns false, changing nothing, when the LX106 has no such writable
    /// register.
    pub fn write_sr(&mut self, sr: u8, value: u32) -> bool {
        match sr {
            sr::SAR => self.sar = value & 0x3F,
            sr::LITBASE => self.litbase = value & LITBASE_MASK,
            // The trace port that MMID feeds is not modelled.
            sr::MMID => {}
            sr::IBREAKENABLE => {
                self.ibreakenable = value & 1;
                self.reconsider = true;
            }
            sr::DDR => self.ddr = value,
            sr::IBREAKA0 => self.ibreaka0 = value,
            sr::DBREAKA0 => self.dbreaka0 = value,
            sr::DBREAKC0 => self.dbreakc0 = value & DBREAKC_MASK,
            sr::CONFIGID0 => self.configid0 = value,
            sr::EPC1 => self.epc[1] = value,
            sr::EPC2 => self.epc[2] = value,
            sr::EPC3 => self.epc[3] = value,
            sr::DEPC => self.depc = value,
            sr::EPS2 => self.eps[2] = value & PS_MASK,
            sr::EPS3 => self.eps[3] = value & PS_MASK,
            sr::EXCSAVE1 => self.excsave[1] = value,
            sr::EXCSAVE2 => self.excsave[2] = value,
            sr::EXCSAVE3 => self.excsave[3] = value,
            sr::INTSET => {
                self.latched_interrupts |= value & SOFTWARE_MASK;
                self.reconsider = true;
            }
            sr::INTCLEAR => self.latched_interrupts &= !(value & CLEARABLE_MASK),
            sr::INTENABLE => {
                self.intenable = value & INTERRUPTS_MASK;
                self.reconsider = true;
            }
            sr::PS => self.set_ps(value),
            sr::VECBASE => self.vecbase = value & VECBASE_MASK,
            sr::EXCCAUSE => self.exccause = value & 0x3F,
            sr::DEBUGCAUSE => self.debugcause = value & 0x0F3F,
            sr::CCOUNT => {
                self.ccount_offset = value.wrapping_sub(self.cycles() as u32);
                self.schedule_timer();
            }
            sr::ICOUNT => self.icount = value,
            sr::ICOUNTLEVEL => {
                self.icountlevel = value & 0xF;
                self.reconsider = true;
            }
            sr::EXCVADDR => self.excvaddr = value,
            sr::CCOMPARE0 => {
                self.ccompare0 = value;
                self.latched_interrupts &= !TIMER0_BIT;
                self.schedule_timer();
            }
            _ => return false,
        }
        true
    }

    pub(crate) fn set_ps(&mut self, value: u32) {
        self.ps = value & PS_MASK;
        self.reconsider = true;
    }

    /// The INTERRUPT register: pending interrupts, enabled or not.
    pub fn interrupt(&self) -> u32 {
        let nmi = if self.nmi_pending { NMI_BIT } else { 0 };
        self.latched_interrupts | (self.lines & LEVEL_LINES_MASK) | nmi
    }

    /// Total cycles since reset (instructions executed plus [`Cpu::add_cycles`]).
    pub fn cycles(&self) -> u64 {
        self.started + self.idle_cycles
    }

    /// Charges `n` cycles spent outside the interpreter (a ROM function, an idle skip); raises
    /// the CCOMPARE0 interrupt if CCOUNT passes CCOMPARE0 on the way.
    pub fn add_cycles(&mut self, n: u64) {
        self.idle_cycles = self.idle_cycles.saturating_add(n);
        if self.cycles() >= self.timer_due {
            self.raise_timer();
        }
    }

    /// Addresses at which the core stops with [`Stop::Trap`] instead of fetching.
    pub fn set_trap_range(&mut self, range: Range<u32>) {
        self.trap_range = range;
        // Cached instructions skip the range check; none may lie in the new range.
        self.code.clear();
    }

    /// Code memory changed behind the core's back: forget decoded instructions overlapping
    /// `start..start + len`. (The core's own stores do this themselves.)
    pub fn invalidate_code(&mut self, start: u32, len: u32) {
        self.code.invalidate(start, len);
    }

    /// The last (up to) 32 PCs the core started executing, oldest first; the last one is the
    /// instruction that ran (or faulted) most recently.
    pub fn recent_pcs(&self) -> Vec<u32> {
        let count = self.started.min(RECENT as u64) as usize;
        (0..count)
            .map(|back| {
                let index = self.started - (count - back) as u64;
                self.recent[(index % RECENT as u64) as usize]
            })
            .collect()
    }

    /// Instructions completed since reset (faulting ones are not counted).
    pub fn instructions_retired(&self) -> u64 {
        self.started - self.faults
    }

    /// EXCCAUSE (a shortcut for traces).
    pub fn exccause(&self) -> u32 {
        self.exccause
    }

    /// Runs one instruction (taking a pending interrupt first, if any).
    pub fn step<B: Bus>(&mut self, bus: &mut B) -> Stop {
        self.run(bus, 1)
    }

    /// Runs until `budget_cycles` cycles have passed, the PC enters the trap range, or WAITI
    /// waits with nothing to wake it.
    pub fn run<B: Bus>(&mut self, bus: &mut B, budget_cycles: u64) -> Stop {
        let end = self.cycles().saturating_add(budget_cycles);
        loop {
            let lines = bus.interrupt_lines();
            self.note_lines(lines);
            if self.reconsider {
                self.reconsider = false;
                self.take_interrupt();
            }
            if self.waiting {
                return Stop::Waiting;
            }
            if self.cycles() >= end {
                return Stop::Budget;
            }
            let stop_at = end.min(self.timer_due);
            let single_step = self.debug_checks_active();
            if let Some(stop) = self.run_until(bus, stop_at, single_step) {
                return stop;
            }
            if self.cycles() >= self.timer_due {
                self.raise_timer();
            }
        }
    }

    /// The hot loop: blocks of instructions until `stop_at` cycles or an event that needs the
    /// outer loop (an interrupt line changed, state that decides interrupt delivery changed, a
    /// trap). `single_step` runs one instruction per call, with the debug checks before it.
    #[inline(always)]
    fn run_until<B: Bus>(&mut self, bus: &mut B, stop_at: u64, single_step: bool) -> Option<Stop> {
        // Within this loop only `started` moves the cycle count.
        let stop_started = stop_at - self.idle_cycles;
        while self.started < stop_started {
            let mut pc = self.pc;
            let index = match self.code.lookup(pc) {
                Some(index) => index,
                None => {
                    if self.trap_range.contains(&pc) {
                        return Some(Stop::Trap { pc });
                    }
                    match self.build_block(bus, pc) {
                        Ok(index) => index,
                        Err(fault) => {
                            self.start(pc);
                            self.faults += 1;
                            self.raise(fault, pc);
                            continue;
                        }
                    }
                }
            };
            if single_step && self.debug_before(pc) {
                return None;
            }
            let room = (stop_started - self.started).min(if single_step { 1 } else { u64::MAX });
            let count = self.code.count(index).min(room as usize);
            // `started` and the PC stay in registers across the block; `self.started` gets
            // copies (exec sees an up-to-date cycle count) and `self.pc` is written when the
            // block is left. The block's instructions run from an unrolled sequence: each
            // position has its own dispatch jump, which the host predicts far better than one
            // shared jump.
            let mut started = self.started;
            macro_rules! position {
                ($block:lifetime, $n:expr) => {
                    if $n < count {
                        let insn = self.code.instruction(index, $n);
                        self.recent[(started % RECENT as u64) as usize] = pc;
                        started += 1;
                        self.started = started;
                        match self.exec(bus, insn, pc) {
                            Ok(Flow::Next) => {
                                pc = pc.wrapping_add(insn.len());
                                // A change to what decides interrupt delivery, or a store
                                // into cached code, ends the block.
                                if self.reconsider {
                                    self.pc = pc;
                                    break $block;
                                }
                            }
                            Ok(Flow::Jump(target)) => {
                                self.pc = target;
                                break $block;
                            }
                            Err(fault) => {
                                self.faults += 1;
                                self.raise(fault, pc);
                                break $block;
                            }
                        }
                    }
                };
            }
            const _: () = assert!(BLOCK_MAX == 8, "one position per block instruction");
            'block: {
                position!('block, 0);
                position!('block, 1);
                position!('block, 2);
                position!('block, 3);
                position!('block, 4);
                position!('block, 5);
                position!('block, 6);
                position!('block, 7);
                self.pc = pc;
            }
            let lines = bus.interrupt_lines();
            if lines != self.lines || self.reconsider || single_step {
                // The bus may show an edge once: latch it now.
                self.note_lines(lines);
                return None;
            }
        }
        None
    }

    #[inline(always)]
    fn start(&mut self, pc: u32) {
        self.recent[(self.started % RECENT as u64) as usize] = pc;
        self.started += 1;
    }

    /// Decodes the block starting at `pc` and caches it; its slot. Fails only when the first
    /// instruction cannot be fetched or decoded; later ones that cannot end the block early
    /// (their own fault comes when the PC gets there), as does the trap range.
    fn build_block<B: Bus>(&mut self, bus: &mut B, pc: u32) -> Result<usize, Fault> {
        let first = self.fetch(bus, pc)?;
        let mut block = Block::new(pc);
        let mut insn = first;
        loop {
            block.push(insn);
            let next = block.end();
            if ends_block(insn.op) || block.is_full() || self.trap_range.contains(&next) {
                break;
            }
            match self.fetch(bus, next) {
                Ok(following) => insn = following,
                Err(_) => break,
            }
        }
        Ok(self.code.insert(block))
    }

    /// Fetches and decodes the instruction at `pc`.
    fn fetch<B: Bus>(&mut self, bus: &mut B, pc: u32) -> Result<Instruction, Fault> {
        let fetch_error = Fault::Exception {
            cause: cause::INSTRUCTION_FETCH_ERROR,
            vaddr: Some(pc),
        };
        let base = pc & !3;
        let offset = pc & 3;
        let first = bus.fetch32(base).map_err(|_| fetch_error)?;
        let mut word = first >> (offset * 8);
        if offset + length_of(word as u8) > 4 {
            let second = bus.fetch32(base.wrapping_add(4)).map_err(|_| fetch_error)?;
            word |= second << ((4 - offset) * 8);
        }
        decode(word).map_err(|_| Fault::ILLEGAL)
    }

    /// Takes the fault of the instruction at `pc`.
    pub(crate) fn raise(&mut self, fault: Fault, pc: u32) {
        match fault {
            Fault::Exception { cause, vaddr } => {
                if let Some(vaddr) = vaddr {
                    self.excvaddr = vaddr;
                }
                self.exccause = cause;
                if self.ps & PS_EXCM != 0 {
                    self.depc = pc;
                    self.pc = self.vecbase.wrapping_add(DOUBLE_VECTOR);
                } else {
                    self.epc[1] = pc;
                    self.pc = self.general_vector();
                    self.ps |= PS_EXCM;
                }
            }
            Fault::Debug { cause } => {
                self.debugcause = cause;
                self.enter_high_level(DEBUG_LEVEL, pc, DEBUG_VECTOR);
            }
        }
    }

    fn general_vector(&self) -> u32 {
        let offset = if self.ps & PS_UM != 0 {
            USER_VECTOR
        } else {
            KERNEL_VECTOR
        };
        self.vecbase.wrapping_add(offset)
    }

    /// Enters a level-2+ handler (debug, NMI): EPCn/EPSn save the PC and PS.
    fn enter_high_level(&mut self, level: u32, pc: u32, vector: u32) {
        self.epc[level as usize] = pc;
        self.eps[level as usize] = self.ps;
        self.ps = (self.ps & !PS_INTLEVEL) | level | PS_EXCM;
        self.pc = self.vecbase.wrapping_add(vector);
    }

    /// ICOUNT and IBREAK, checked before the instruction at `pc`; true when a debug exception
    /// was taken instead of running it.
    fn debug_before(&mut self, pc: u32) -> bool {
        let level = self.current_level();
        if level >= DEBUG_LEVEL {
            return false;
        }
        if self.ibreakenable & 1 != 0 && pc == self.ibreaka0 {
            self.debugcause = cause::debug::IBREAK;
            self.enter_high_level(DEBUG_LEVEL, pc, DEBUG_VECTOR);
            return true;
        }
        if self.icountlevel > level {
            if self.icount == u32::MAX {
                self.icount = 0;
                self.debugcause = cause::debug::ICOUNT;
                self.enter_high_level(DEBUG_LEVEL, pc, DEBUG_VECTOR);
                return true;
            }
            self.icount = self.icount.wrapping_add(1);
        }
        false
    }

    fn debug_checks_active(&self) -> bool {
        self.ibreakenable & 1 != 0 || self.icountlevel != 0
    }

    /// CINTLEVEL: PS.INTLEVEL, raised to 1 while PS.EXCM is set.
    fn current_level(&self) -> u32 {
        let level = self.ps & PS_INTLEVEL;
        if self.ps & PS_EXCM != 0 {
            level.max(1)
        } else {
            level
        }
    }

    fn note_lines(&mut self, lines: u32) {
        if lines == self.lines {
            return;
        }
        let rising = lines & !self.lines;
        self.latched_interrupts |= rising & EDGE_LINES_MASK;
        if rising & NMI_BIT != 0 {
            self.nmi_pending = true;
        }
        self.lines = lines;
        self.reconsider = true;
    }

    /// Takes the highest pending interrupt that PS allows, if any.
    fn take_interrupt(&mut self) {
        if self.nmi_pending {
            self.nmi_pending = false;
            self.waiting = false;
            self.enter_high_level(NMI_LEVEL, self.pc, NMI_VECTOR);
            return;
        }
        let pending = self.interrupt() & self.intenable & LEVEL1_MASK;
        if pending != 0 && self.ps & (PS_EXCM | PS_INTLEVEL) == 0 {
            self.waiting = false;
            self.exccause = cause::LEVEL1_INTERRUPT;
            self.epc[1] = self.pc;
            self.pc = self.general_vector();
            self.ps |= PS_EXCM;
        }
    }

    fn raise_timer(&mut self) {
        self.latched_interrupts |= TIMER0_BIT;
        self.reconsider = true;
        self.schedule_timer();
    }

    /// Recomputes when CCOUNT next equals CCOMPARE0 (a full period ahead when it equals now).
    fn schedule_timer(&mut self) {
        let delta = u64::from(self.ccompare0.wrapping_sub(self.ccount()));
        let delta = if delta == 0 { CCOUNT_PERIOD } else { delta };
        self.timer_due = self.cycles().saturating_add(delta);
        self.reconsider = true;
    }
}

#[cfg(test)]
mod tests;
