//! Printing an [`Instruction`] the way GNU objdump (Debian's `xtensa-lx106-elf-objdump`) prints
//! it: mnemonic, a tab, operands separated by ", ", immediates in decimal, branch, jump, call and
//! L32R targets as absolute `0x` addresses. Used by traces, and checked against objdump itself
//! by the `objdump_oracle` test.

use crate::decode::{Instruction, Op};
use core::fmt;

/// An [`Instruction`] at a PC, printable in GNU objdump syntax (from [`Instruction::display`]).
#[derive(Debug, Clone, Copy)]
pub struct InstructionDisplay {
    insn: Instruction,
    pc: u32,
}

impl Instruction {
    /// This instruction, at `pc`, in GNU objdump syntax (`l32r\ta3, 0x4010d00c`). `pc` only
    /// matters for the absolute targets of branches, jumps, calls and L32R.
    pub fn display(&self, pc: u32) -> InstructionDisplay {
        InstructionDisplay { insn: *self, pc }
    }

    /// The assembler mnemonic (`add.n`, `rsr.ps`... for RSR/WSR/XSR the register is part of it).
    pub fn mnemonic(&self) -> &'static str {
        use Op::*;
        match self.op {
            And => "and",
            Or => "or",
            Xor => "xor",
            Add => "add",
            Addx2 => "addx2",
            Addx4 => "addx4",
            Addx8 => "addx8",
            Sub => "sub",
            Subx2 => "subx2",
            Subx4 => "subx4",
            Subx8 => "subx8",
            Mull => "mull",
            Mul16u => "mul16u",
            Mul16s => "mul16s",
            Moveqz => "moveqz",
            Movnez => "movnez",
            Movltz => "movltz",
            Movgez => "movgez",
            Neg => "neg",
            Abs => "abs",
            Src => "src",
            Srl => "srl",
            Sll => "sll",
            Sra => "sra",
            Slli => "slli",
            Srai => "srai",
            Srli => "srli",
            Extui => "extui",
            Ssr => "ssr",
            Ssl => "ssl",
            Ssa8l => "ssa8l",
            Ssa8b => "ssa8b",
            Ssai => "ssai",
            Nsa => "nsa",
            Nsau => "nsau",
            Rsr => "rsr",
            Wsr => "wsr",
            Xsr => "xsr",
            Rsil => "rsil",
            Waiti => "waiti",
            Rfe => "rfe",
            Rfde => "rfde",
            Rfi => "rfi",
            Rfdo => "rfdo",
            Rfdd => "rfdd",
            Break => "break",
            Syscall => "syscall",
            Simcall => "simcall",
            Ill => "ill",
            Isync => "isync",
            Rsync => "rsync",
            Esync => "esync",
            Dsync => "dsync",
            Excw => "excw",
            Memw => "memw",
            Extw => "extw",
            Nop => "nop",
            Rer => "rer",
            Wer => "wer",
            Ritlb0 => "ritlb0",
            Iitlb => "iitlb",
            Pitlb => "pitlb",
            Witlb => "witlb",
            Ritlb1 => "ritlb1",
            Rdtlb0 => "rdtlb0",
            Idtlb => "idtlb",
            Pdtlb => "pdtlb",
            Wdtlb => "wdtlb",
            Rdtlb1 => "rdtlb1",
            Ret => "ret",
            Jx => "jx",
            Callx0 => "callx0",
            Call0 => "call0",
            J => "j",
            L8ui => "l8ui",
            L16ui => "l16ui",
            L16si => "l16si",
            L32i => "l32i",
            S8i => "s8i",
            S16i => "s16i",
            S32i => "s32i",
            Addi => "addi",
            Addmi => "addmi",
            Movi => "movi",
            L32r => "l32r",
            Beqz => "beqz",
            Bnez => "bnez",
            Bltz => "bltz",
            Bgez => "bgez",
            Beqi => "beqi",
            Bnei => "bnei",
            Blti => "blti",
            Bgei => "bgei",
            Bltui => "bltui",
            Bgeui => "bgeui",
            Bnone => "bnone",
            Beq => "beq",
            Blt => "blt",
            Bltu => "bltu",
            Ball => "ball",
            Bany => "bany",
            Bne => "bne",
            Bge => "bge",
            Bgeu => "bgeu",
            Bnall => "bnall",
            Bbc => "bbc",
            Bbs => "bbs",
            Bbci => "bbci",
            Bbsi => "bbsi",
            L32iN => "l32i.n",
            S32iN => "s32i.n",
            AddN => "add.n",
            AddiN => "addi.n",
            MoviN => "movi.n",
            BeqzN => "beqz.n",
            BnezN => "bnez.n",
            MovN => "mov.n",
            RetN => "ret.n",
            BreakN => "break.n",
            NopN => "nop.n",
            IllN => "ill.n",
        }
    }
}

/// An immediate as objdump prints it: decimal from -255 to 255, otherwise the 32-bit pattern in
/// hex.
struct Imm(i32);

impl fmt::Display for Imm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > -256 && self.0 < 256 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:#x}", self.0 as u32)
        }
    }
}

impl fmt::Display for InstructionDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Op::*;
        let i = &self.insn;
        let (r, s, t) = (i.r, i.s, i.t);
        let imm = Imm(i.imm);
        let target = i.target(self.pc).unwrap_or(0);
        let mnemonic = i.mnemonic();
        match i.op {
            Rsr | Wsr | Xsr => {
                let name = crate::sr::name(i.imm as u8, i.op != Rsr).unwrap_or("?");
                return write!(f, "{mnemonic}.{name}\ta{t}");
            }
            Ret | RetN | Ill | IllN | Isync | Rsync | Esync | Dsync | Excw | Memw | Extw | Nop
            | NopN | Rfe | Rfde | Rfdd | Syscall | Simcall | Rer | Wer => {
                return f.write_str(mnemonic);
            }
            _ => {}
        }
        write!(f, "{mnemonic}\t")?;
        match i.op {
            And | Or | Xor | Add | Addx2 | Addx4 | Addx8 | Sub | Subx2 | Subx4 | Subx8 | Mull
            | Mul16u | Mul16s | Moveqz | Movnez | Movltz | Movgez | Src | AddN => {
                write!(f, "a{r}, a{s}, a{t}")
            }
            Neg | Abs | Srl | Sra => write!(f, "a{r}, a{t}"),
            Sll => write!(f, "a{r}, a{s}"),
            Slli => write!(f, "a{r}, a{s}, {imm}"),
            Srai | Srli => write!(f, "a{r}, a{t}, {imm}"),
            Extui => write!(f, "a{r}, a{t}, {}, {}", i.imm & 0xFF, i.imm >> 8),
            Ssr | Ssl | Ssa8l | Ssa8b | Jx | Callx0 | Iitlb | Idtlb => write!(f, "a{s}"),
            Ssai => write!(f, "{imm}"),
            Nsa | Nsau | Ritlb0 | Pitlb | Witlb | Ritlb1 | Rdtlb0 | Pdtlb | Wdtlb | Rdtlb1 => {
                write!(f, "a{t}, a{s}")
            }
            Rsil => write!(f, "a{t}, {s}"),
            Waiti | Rfi | Rfdo | BreakN => write!(f, "{s}"),
            Break => write!(f, "{s}, {t}"),
            Call0 | J => write!(f, "{target:#x}"),
            L8ui | L16ui | L16si | L32i | S8i | S16i | S32i | Addi | Addmi | L32iN | S32iN => {
                write!(f, "a{t}, a{s}, {imm}")
            }
            Movi => write!(f, "a{t}, {imm}"),
            L32r => write!(f, "a{t}, {target:#x}"),
            Beqz | Bnez | Bltz | Bgez | BeqzN | BnezN => write!(f, "a{s}, {target:#x}"),
            Beqi | Bnei | Blti | Bgei => {
                write!(f, "a{s}, {}, {target:#x}", Imm(i.branch_constant() as i32))
            }
            Bltui | Bgeui => write!(f, "a{s}, {}, {target:#x}", Imm(i.branch_constant() as i32)),
            Bnone | Beq | Blt | Bltu | Ball | Bany | Bne | Bge | Bgeu | Bnall | Bbc | Bbs => {
                write!(f, "a{s}, a{t}, {target:#x}")
            }
            Bbci | Bbsi => write!(f, "a{s}, {t}, {target:#x}"),
            AddiN => write!(f, "a{r}, a{s}, {imm}"),
            MoviN => write!(f, "a{s}, {imm}"),
            MovN => write!(f, "a{t}, a{s}"),
            // Printed above without operands.
            Rsr | Wsr | Xsr | Ret | RetN | Ill | IllN | Isync | Rsync | Esync | Dsync | Excw
            | Memw | Extw | Nop | NopN | Rfe | Rfde | Rfdd | Syscall | Simcall | Rer | Wer => {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::decode;

    fn shown(word: u32, pc: u32) -> String {
        decode(word)
            .expect("a valid instruction")
            .display(pc)
            .to_string()
    }

    #[test]
    fn objdump_syntax() {
        assert_eq!(shown(0xF0C112, 0), "addi\ta1, a1, -16");
        assert_eq!(shown(0x00A142, 0), "movi\ta4, 0x100");
        assert_eq!(shown(0x00AF22, 0), "movi\ta2, 0xffffff00");
        assert_eq!(shown(0x01AF22, 0), "movi\ta2, -255");
        assert_eq!(shown(0xFFFD31, 0x4010_000A), "l32r\ta3, 0x40100000");
        assert_eq!(shown(0x000085, 0x4010_0039), "call0\t0x40100044");
        assert_eq!(shown(0x13E200, 0), "wsr.intset\ta0");
        assert_eq!(shown(0x03E220, 0), "rsr.interrupt\ta2");
        assert_eq!(shown(0x03B020, 0), "rsr.176\ta2");
        assert_eq!(shown(0x0020C0, 0), "memw");
        assert_eq!(shown(0xF00D, 0), "ret.n");
        assert_eq!(shown(0x004FE0, 0), "break\t15, 14");
        assert_eq!(shown(0x406230, 0), "rer");
    }
}
