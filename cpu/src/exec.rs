//! What each instruction does to the core: registers, memory through the [`Bus`], the special
//! registers, and where execution goes next ([`Flow`]). Faults come back as [`Fault`] for the
//! run loop to raise, with the destination register untouched. Alignment is checked here, before the bus is asked:
//! L16/S16 at odd addresses and L32/S32 at addresses not a multiple of 4 raise
//! LoadStoreAlignment (the LX106 has no unaligned-access hardware).

use crate::cause;
use crate::cpu::{Cpu, Fault, Flow, DEBUG_LEVEL, PS_EXCM, PS_INTLEVEL};
use crate::decode::{Instruction, Op};
use crate::Bus;

/// The eight 512 MiB regions of region protection are picked by the top three address bits.
const REGION_SHIFT: u32 = 29;
const REGION_MASK: u32 = 0xE000_0000;

fn load_store_error(address: u32) -> Fault {
    Fault::Exception {
        cause: cause::LOAD_STORE_ERROR,
        vaddr: Some(address),
    }
}

fn misaligned(address: u32) -> Fault {
    Fault::Exception {
        cause: cause::LOAD_STORE_ALIGNMENT,
        vaddr: Some(address),
    }
}

impl Cpu {
    #[inline(always)]
    fn a(&self, n: u8) -> u32 {
        self.regs[(n & 15) as usize]
    }

    #[inline(always)]
    fn set_a(&mut self, n: u8, value: u32) {
        self.regs[(n & 15) as usize] = value;
    }

    #[inline(always)]
    fn load8<B: Bus>(&mut self, bus: &mut B, address: u32) -> Result<u32, Fault> {
        bus.read8(address)
            .map(u32::from)
            .map_err(|_| load_store_error(address))
    }

    #[inline(always)]
    fn load16<B: Bus>(&mut self, bus: &mut B, address: u32) -> Result<u16, Fault> {
        if address & 1 != 0 {
            return Err(misaligned(address));
        }
        bus.read16(address).map_err(|_| load_store_error(address))
    }

    #[inline(always)]
    fn load32<B: Bus>(&mut self, bus: &mut B, address: u32) -> Result<u32, Fault> {
        if address & 3 != 0 {
            return Err(misaligned(address));
        }
        bus.read32(address).map_err(|_| load_store_error(address))
    }

    #[inline(always)]
    fn store8<B: Bus>(&mut self, bus: &mut B, address: u32, value: u32) -> Result<(), Fault> {
        bus.write8(address, value as u8)
            .map_err(|_| load_store_error(address))?;
        if self.code.note_store(address, 1) {
            // The running block may hold the old bytes: leave it.
            self.reconsider = true;
        }
        Ok(())
    }

    #[inline(always)]
    fn store16<B: Bus>(&mut self, bus: &mut B, address: u32, value: u32) -> Result<(), Fault> {
        if address & 1 != 0 {
            return Err(misaligned(address));
        }
        bus.write16(address, value as u16)
            .map_err(|_| load_store_error(address))?;
        if self.code.note_store(address, 2) {
            // The running block may hold the old bytes: leave it.
            self.reconsider = true;
        }
        Ok(())
    }

    #[inline(always)]
    fn store32<B: Bus>(&mut self, bus: &mut B, address: u32, value: u32) -> Result<(), Fault> {
        if address & 3 != 0 {
            return Err(misaligned(address));
        }
        bus.write32(address, value)
            .map_err(|_| load_store_error(address))?;
        if self.code.note_store(address, 4) {
            // The running block may hold the old bytes: leave it.
            self.reconsider = true;
        }
        Ok(())
    }

    #[inline(always)]
    fn branch(taken: bool, pc: u32, offset: i32) -> Flow {
        if taken {
            Flow::Jump(pc.wrapping_add(offset as u32))
        } else {
            Flow::Next
        }
    }

    /// Sets PS.INTLEVEL, keeping the other fields.
    fn set_intlevel(&mut self, level: u8) {
        self.set_ps((self.ps & !PS_INTLEVEL) | u32::from(level & 15));
    }

    /// Executes `insn`, fetched at `pc`, and says where execution goes on: the next
    /// instruction, or a jump. A fault leaves the state as it was (but for the PC, which the
    /// caller sets when it raises the fault at `pc`).
    #[inline(always)]
    pub(crate) fn exec<B: Bus>(
        &mut self,
        bus: &mut B,
        insn: Instruction,
        pc: u32,
    ) -> Result<Flow, Fault> {
        let Instruction { op, r, s, t, imm } = insn;
        let shift_amount = self.sar & 63;
        match op {
            Op::And => self.set_a(r, self.a(s) & self.a(t)),
            Op::Or => self.set_a(r, self.a(s) | self.a(t)),
            Op::Xor => self.set_a(r, self.a(s) ^ self.a(t)),
            Op::Add | Op::AddN => self.set_a(r, self.a(s).wrapping_add(self.a(t))),
            Op::Addx2 => self.set_a(r, (self.a(s) << 1).wrapping_add(self.a(t))),
            Op::Addx4 => self.set_a(r, (self.a(s) << 2).wrapping_add(self.a(t))),
            Op::Addx8 => self.set_a(r, (self.a(s) << 3).wrapping_add(self.a(t))),
            Op::Sub => self.set_a(r, self.a(s).wrapping_sub(self.a(t))),
            Op::Subx2 => self.set_a(r, (self.a(s) << 1).wrapping_sub(self.a(t))),
            Op::Subx4 => self.set_a(r, (self.a(s) << 2).wrapping_sub(self.a(t))),
            Op::Subx8 => self.set_a(r, (self.a(s) << 3).wrapping_sub(self.a(t))),
            Op::Mull => self.set_a(r, self.a(s).wrapping_mul(self.a(t))),
            Op::Mul16u => self.set_a(r, (self.a(s) & 0xFFFF) * (self.a(t) & 0xFFFF)),
            Op::Mul16s => {
                let product = i32::from(self.a(s) as i16) * i32::from(self.a(t) as i16);
                self.set_a(r, product as u32);
            }
            Op::Moveqz => {
                if self.a(t) == 0 {
                    self.set_a(r, self.a(s));
                }
            }
            Op::Movnez => {
                if self.a(t) != 0 {
                    self.set_a(r, self.a(s));
                }
            }
            Op::Movltz => {
                if (self.a(t) as i32) < 0 {
                    self.set_a(r, self.a(s));
                }
            }
            Op::Movgez => {
                if (self.a(t) as i32) >= 0 {
                    self.set_a(r, self.a(s));
                }
            }
            Op::Neg => self.set_a(r, self.a(t).wrapping_neg()),
            Op::Abs => self.set_a(r, (self.a(t) as i32).unsigned_abs()),
            // The funnel shifter: SAR (0..=32) shifts the 64-bit pair right.
            Op::Src => {
                let pair = u64::from(self.a(s)) << 32 | u64::from(self.a(t));
                self.set_a(r, (pair >> shift_amount) as u32);
            }
            Op::Srl => self.set_a(r, (u64::from(self.a(t)) >> shift_amount) as u32),
            Op::Sll => self.set_a(r, ((u64::from(self.a(s)) << 32) >> shift_amount) as u32),
            Op::Sra => self.set_a(r, (i64::from(self.a(t) as i32) >> shift_amount) as u32),
            Op::Slli => self.set_a(r, (u64::from(self.a(s)) << (imm & 63)) as u32),
            Op::Srai => self.set_a(r, ((self.a(t) as i32) >> (imm & 31)) as u32),
            Op::Srli => self.set_a(r, self.a(t) >> (imm & 31)),
            Op::Extui => {
                let shift = imm & 31;
                let mask = (1u32 << ((imm >> 8) & 31)) - 1;
                self.set_a(r, (self.a(t) >> shift) & mask);
            }
            Op::Ssr => self.sar = self.a(s) & 31,
            Op::Ssl => self.sar = 32 - (self.a(s) & 31),
            Op::Ssa8l => self.sar = (self.a(s) & 3) << 3,
            Op::Ssa8b => self.sar = 32 - ((self.a(s) & 3) << 3),
            Op::Ssai => self.sar = (imm & 31) as u32,
            Op::Nsa => {
                let value = self.a(s);
                let magnitude = value ^ (((value as i32) >> 31) as u32);
                self.set_a(t, magnitude.leading_zeros() - 1);
            }
            Op::Nsau => self.set_a(t, self.a(s).leading_zeros()),
            // Synchronisation is immediate in an interpreter.
            Op::Isync
            | Op::Rsync
            | Op::Esync
            | Op::Dsync
            | Op::Excw
            | Op::Memw
            | Op::Extw
            | Op::Nop
            | Op::NopN => {}
            // Special registers, returns from exceptions, traps, TLB and ERI access: rare, and
            // kept out of the hot loop's code.
            Op::Rsr
            | Op::Wsr
            | Op::Xsr
            | Op::Rsil
            | Op::Waiti
            | Op::Rfe
            | Op::Rfde
            | Op::Rfi
            | Op::Rfdo
            | Op::Rfdd
            | Op::Simcall
            | Op::Ill
            | Op::IllN
            | Op::Break
            | Op::BreakN
            | Op::Syscall
            | Op::Rer
            | Op::Wer
            | Op::Witlb
            | Op::Wdtlb
            | Op::Ritlb0
            | Op::Rdtlb0
            | Op::Pitlb
            | Op::Pdtlb
            | Op::Ritlb1
            | Op::Rdtlb1
            | Op::Iitlb
            | Op::Idtlb => return self.exec_system(insn),
            Op::Ret | Op::RetN => return Ok(Flow::Jump(self.a(0))),
            Op::Jx => return Ok(Flow::Jump(self.a(s))),
            Op::Callx0 => {
                let target = self.a(s);
                self.set_a(0, pc.wrapping_add(3));
                return Ok(Flow::Jump(target));
            }
            Op::Call0 => {
                self.set_a(0, pc.wrapping_add(3));
                return Ok(Flow::Jump((pc & !3).wrapping_add(imm as u32)));
            }
            Op::J => return Ok(Flow::Jump(pc.wrapping_add(imm as u32))),
            Op::L8ui => {
                let value = self.load8(bus, self.a(s).wrapping_add(imm as u32))?;
                self.set_a(t, value);
            }
            Op::L16ui => {
                let value = self.load16(bus, self.a(s).wrapping_add(imm as u32))?;
                self.set_a(t, u32::from(value));
            }
            Op::L16si => {
                let value = self.load16(bus, self.a(s).wrapping_add(imm as u32))?;
                self.set_a(t, value as i16 as u32);
            }
            Op::L32i | Op::L32iN => {
                let value = self.load32(bus, self.a(s).wrapping_add(imm as u32))?;
                self.set_a(t, value);
            }
            Op::S8i => self.store8(bus, self.a(s).wrapping_add(imm as u32), self.a(t))?,
            Op::S16i => self.store16(bus, self.a(s).wrapping_add(imm as u32), self.a(t))?,
            Op::S32i | Op::S32iN => {
                self.store32(bus, self.a(s).wrapping_add(imm as u32), self.a(t))?
            }
            Op::Addi | Op::Addmi => self.set_a(t, self.a(s).wrapping_add(imm as u32)),
            Op::Movi => self.set_a(t, imm as u32),
            Op::L32r => {
                let base = if self.litbase & 1 != 0 {
                    self.litbase & !0xFFF
                } else {
                    pc.wrapping_add(3) & !3
                };
                let value = self.load32(bus, base.wrapping_add(imm as u32))?;
                self.set_a(t, value);
            }
            Op::Beqz | Op::BeqzN => return Ok(Self::branch(self.a(s) == 0, pc, imm)),
            Op::Bnez | Op::BnezN => return Ok(Self::branch(self.a(s) != 0, pc, imm)),
            Op::Bltz => return Ok(Self::branch((self.a(s) as i32) < 0, pc, imm)),
            Op::Bgez => return Ok(Self::branch((self.a(s) as i32) >= 0, pc, imm)),
            Op::Beqi => return Ok(Self::branch(self.a(s) == insn.branch_constant(), pc, imm)),
            Op::Bnei => return Ok(Self::branch(self.a(s) != insn.branch_constant(), pc, imm)),
            Op::Blti => {
                let constant = insn.branch_constant() as i32;
                return Ok(Self::branch((self.a(s) as i32) < constant, pc, imm));
            }
            Op::Bgei => {
                let constant = insn.branch_constant() as i32;
                return Ok(Self::branch((self.a(s) as i32) >= constant, pc, imm));
            }
            Op::Bltui => return Ok(Self::branch(self.a(s) < insn.branch_constant(), pc, imm)),
            Op::Bgeui => return Ok(Self::branch(self.a(s) >= insn.branch_constant(), pc, imm)),
            Op::Bnone => return Ok(Self::branch(self.a(s) & self.a(t) == 0, pc, imm)),
            Op::Bany => return Ok(Self::branch(self.a(s) & self.a(t) != 0, pc, imm)),
            Op::Ball => return Ok(Self::branch(!self.a(s) & self.a(t) == 0, pc, imm)),
            Op::Bnall => return Ok(Self::branch(!self.a(s) & self.a(t) != 0, pc, imm)),
            Op::Beq => return Ok(Self::branch(self.a(s) == self.a(t), pc, imm)),
            Op::Bne => return Ok(Self::branch(self.a(s) != self.a(t), pc, imm)),
            Op::Blt => {
                return Ok(Self::branch(
                    (self.a(s) as i32) < (self.a(t) as i32),
                    pc,
                    imm,
                ))
            }
            Op::Bge => {
                return Ok(Self::branch(
                    (self.a(s) as i32) >= (self.a(t) as i32),
                    pc,
                    imm,
                ))
            }
            Op::Bltu => return Ok(Self::branch(self.a(s) < self.a(t), pc, imm)),
            Op::Bgeu => return Ok(Self::branch(self.a(s) >= self.a(t), pc, imm)),
            Op::Bbc => {
                return Ok(Self::branch(
                    self.a(s) >> (self.a(t) & 31) & 1 == 0,
                    pc,
                    imm,
                ))
            }
            Op::Bbs => {
                return Ok(Self::branch(
                    self.a(s) >> (self.a(t) & 31) & 1 != 0,
                    pc,
                    imm,
                ))
            }
            Op::Bbci => return Ok(Self::branch(self.a(s) >> (t & 31) & 1 == 0, pc, imm)),
            Op::Bbsi => return Ok(Self::branch(self.a(s) >> (t & 31) & 1 != 0, pc, imm)),
            Op::AddiN => self.set_a(r, self.a(s).wrapping_add(imm as u32)),
            Op::MoviN => self.set_a(s, imm as u32),
            Op::MovN => self.set_a(t, self.a(s)),
        }
        Ok(Flow::Next)
    }

    /// The rare instructions (special registers, exception returns, traps, TLB, ERI), kept in
    /// a function of their own: out of the hot loop, whose code `exec` is inlined into eight
    /// times, they leave it smaller and measurably faster.
    #[inline(never)]
    fn exec_system(&mut self, insn: Instruction) -> Result<Flow, Fault> {
        let Instruction { op, s, t, imm, .. } = insn;
        match op {
            Op::Rsr => {
                let value = self.read_sr(imm as u8).ok_or(Fault::ILLEGAL)?;
                self.set_a(t, value);
            }
            Op::Wsr => {
                if !self.write_sr(imm as u8, self.a(t)) {
                    return Err(Fault::ILLEGAL);
                }
            }
            Op::Xsr => {
                let old = self.read_sr(imm as u8).ok_or(Fault::ILLEGAL)?;
                if !self.write_sr(imm as u8, self.a(t)) {
                    return Err(Fault::ILLEGAL);
                }
                self.set_a(t, old);
            }
            Op::Rsil => {
                let old = self.ps;
                self.set_intlevel(s);
                self.set_a(t, old);
            }
            Op::Waiti => {
                self.set_intlevel(s);
                self.waiting = true;
            }
            Op::Rfe => {
                self.set_ps(self.ps & !PS_EXCM);
                return Ok(Flow::Jump(self.epc[1]));
            }
            Op::Rfde => return Ok(Flow::Jump(self.depc)),
            Op::Rfi => match s {
                2 | 3 => {
                    self.set_ps(self.eps[s as usize]);
                    return Ok(Flow::Jump(self.epc[s as usize]));
                }
                _ => return Err(Fault::ILLEGAL),
            },
            // RFDO/RFDD work only in on-chip-debug mode; SIMCALL only in the simulator.
            Op::Rfdo | Op::Rfdd | Op::Simcall | Op::Ill | Op::IllN => return Err(Fault::ILLEGAL),
            // Below the debug level BREAK traps; at or above it, it does nothing.
            Op::Break | Op::BreakN if self.ps & PS_INTLEVEL < DEBUG_LEVEL => {
                let cause = if op == Op::Break {
                    cause::debug::BREAK
                } else {
                    cause::debug::BREAK_N
                };
                return Err(Fault::Debug { cause });
            }
            Op::Break | Op::BreakN => {}
            Op::Syscall => {
                return Err(Fault::Exception {
                    cause: cause::SYSCALL,
                    vaddr: None,
                })
            }
            // No external (ERI) registers are modelled: reads give 0, writes vanish.
            Op::Rer => self.set_a(t, 0),
            Op::Wer => {}
            // Region protection: attributes are kept and read back, but do not police accesses.
            Op::Witlb => self.itlb[(self.a(s) >> REGION_SHIFT) as usize & 7] = self.a(t) & 15,
            Op::Wdtlb => self.dtlb[(self.a(s) >> REGION_SHIFT) as usize & 7] = self.a(t) & 15,
            Op::Ritlb0 | Op::Rdtlb0 | Op::Pitlb | Op::Pdtlb => {
                self.set_a(t, self.a(s) & REGION_MASK)
            }
            Op::Ritlb1 => {
                let region = self.a(s);
                let attribute = self.itlb[(region >> REGION_SHIFT) as usize & 7];
                self.set_a(t, (region & REGION_MASK) | attribute);
            }
            Op::Rdtlb1 => {
                let region = self.a(s);
                let attribute = self.dtlb[(region >> REGION_SHIFT) as usize & 7];
                self.set_a(t, (region & REGION_MASK) | attribute);
            }
            Op::Iitlb | Op::Idtlb => {}
            // `exec` sends only the operations above here.
            _ => return Err(Fault::ILLEGAL),
        }
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests;
