//! The instruction decoder: the bytes at a PC become an [`Instruction`] of the LX106's
//! configuration (core ISA with CALL0, density, ABS, ADDX, L32R, MUL16, MULL, NSA, the debug
//! option, the region-protection TLB instructions and RER/WER), or a [`DecodeError`] for every
//! encoding that configuration lacks (windows, loops, MIN/MAX, SEXT, DIV32, booleans, FP, MAC16,
//! S32C1I, caches, reserved encodings...), which the core executes as the illegal-instruction
//! exception. Field names follow the Xtensa ISA reference: `op0` bits 0..=3, `t` 4..=7,
//! `s` 8..=11, `r` 12..=15, `op1` 16..=19, `op2` 20..=23.

/// The operation of an [`Instruction`]. Operands live in the instruction's `r`, `s`, `t`
/// fields (register numbers, or small immediates where the ISA keeps them there) and `imm`
/// (the decoded immediate: see [`Instruction::imm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    // RRR arithmetic and logic: ar = as OP at.
    And,
    Or,
    Xor,
    Add,
    Addx2,
    Addx4,
    Addx8,
    Sub,
    Subx2,
    Subx4,
    Subx8,
    Mull,
    Mul16u,
    Mul16s,
    Moveqz,
    Movnez,
    Movltz,
    Movgez,
    /// ar = -at.
    Neg,
    /// ar = |at|.
    Abs,
    // Shifts. SRC ar, as, at; SRL ar, at; SLL ar, as; SRA ar, at.
    Src,
    Srl,
    Sll,
    Sra,
    /// ar = as << imm.
    Slli,
    /// ar = at >> imm (arithmetic).
    Srai,
    /// ar = at >> imm (logical).
    Srli,
    /// ar = (at >> s-field shift) & mask: shift in `imm` bits 0..=7, mask width in bits 8..=15.
    Extui,
    Ssr,
    Ssl,
    Ssa8l,
    Ssa8b,
    /// SAR = imm.
    Ssai,
    /// at = sign-normalisation shift of as.
    Nsa,
    Nsau,
    // Special registers: at, sr = imm.
    Rsr,
    Wsr,
    Xsr,
    /// at = PS; PS.INTLEVEL = s.
    Rsil,
    /// PS.INTLEVEL = s, then wait for an interrupt.
    Waiti,
    Rfe,
    Rfde,
    /// Return from the level-s interrupt.
    Rfi,
    /// On-chip-debug return (illegal outside OCD mode).
    Rfdo,
    Rfdd,
    /// BREAK s, t.
    Break,
    Syscall,
    Simcall,
    Ill,
    Isync,
    Rsync,
    Esync,
    Dsync,
    Excw,
    Memw,
    Extw,
    Nop,
    /// External register read/write (ERI bus); objdump prints them without operands.
    Rer,
    Wer,
    // Region-protection TLB instructions: at, as (IITLB/IDTLB: as only).
    Ritlb0,
    Iitlb,
    Pitlb,
    Witlb,
    Ritlb1,
    Rdtlb0,
    Idtlb,
    Pdtlb,
    Wdtlb,
    Rdtlb1,
    // Jumps and calls.
    Ret,
    /// PC = as.
    Jx,
    /// a0 = return address; PC = as.
    Callx0,
    /// a0 = PC + 3; PC = (PC & !3) + imm.
    Call0,
    /// PC = PC + imm.
    J,
    // Loads and stores: at, as, imm (byte offset, already scaled).
    L8ui,
    L16ui,
    L16si,
    L32i,
    S8i,
    S16i,
    S32i,
    /// at = as + imm.
    Addi,
    /// at = as + imm (imm a multiple of 256).
    Addmi,
    /// at = imm.
    Movi,
    /// at = literal at ((PC + 3) & !3) + imm (imm negative), or LITBASE-relative.
    L32r,
    // Branches: as (and at, or an immediate) against each other; target = PC + imm.
    Beqz,
    Bnez,
    Bltz,
    Bgez,
    /// Compare as with `B4CONST[r]` (BLTUI/BGEUI: `B4CONSTU[r]`); see
    /// [`Instruction::branch_constant`].
    Beqi,
    Bnei,
    Blti,
    Bgei,
    Bltui,
    Bgeui,
    Bnone,
    Beq,
    Blt,
    Bltu,
    Ball,
    Bany,
    Bne,
    Bge,
    Bgeu,
    Bnall,
    Bbc,
    Bbs,
    /// Bit number in `t`.
    Bbci,
    Bbsi,
    // Density (16-bit) instructions: they come last, which is how `Instruction::len` knows them.
    L32iN,
    S32iN,
    AddN,
    AddiN,
    MoviN,
    BeqzN,
    BnezN,
    /// at = as.
    MovN,
    RetN,
    BreakN,
    NopN,
    IllN,
}

/// One decoded LX106 instruction: an [`Op`] and its operands.
///
/// `r`, `s` and `t` are the encoding's register fields (a-register numbers 0..=15, or the
/// small immediates the ISA keeps there: the level of RSIL/WAITI/RFI, BREAK's operands, the
/// bit of BBCI/BBSI). `imm` is the decoded immediate: sign-extended and scaled load/store
/// offsets, ADDI/MOVI values, shift amounts, special-register numbers, and branch and jump
/// offsets relative to the instruction's own address (CALL0: relative to the address rounded
/// down to 4; L32R: relative to the address plus 3 rounded down to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instruction {
    pub(crate) op: Op,
    pub(crate) r: u8,
    pub(crate) s: u8,
    pub(crate) t: u8,
    pub(crate) imm: i32,
}

/// The bytes at the PC encode no instruction of the LX106's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no LX106 instruction is encoded by the bytes {word:#08x} (little-endian)")]
pub struct DecodeError {
    /// The bytes at the PC, little-endian (only the low 2 or 3 bytes matter).
    pub word: u32,
}

/// B4CONST: the immediates of BEQI, BNEI, BLTI, BGEI, indexed by the `r` field.
const B4CONST: [i32; 16] = [-1, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 32, 64, 128, 256];
/// B4CONSTU: the immediates of BLTUI, BGEUI, indexed by the `r` field.
const B4CONSTU: [u32; 16] = [
    32768, 65536, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 32, 64, 128, 256,
];

impl Instruction {
    fn new(op: Op, r: u32, s: u32, t: u32, imm: i32) -> Instruction {
        // The fields are 4-bit values taken from the word; the casts keep the low nibble.
        Instruction {
            op,
            r: (r & 15) as u8,
            s: (s & 15) as u8,
            t: (t & 15) as u8,
            imm,
        }
    }

    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The `r` field (see [`Instruction`]).
    pub fn r(&self) -> u8 {
        self.r
    }

    /// The `s` field (see [`Instruction`]).
    pub fn s(&self) -> u8 {
        self.s
    }

    /// The `t` field (see [`Instruction`]).
    pub fn t(&self) -> u8 {
        self.t
    }

    /// The decoded immediate (see [`Instruction`]).
    pub fn imm(&self) -> i32 {
        self.imm
    }

    /// The instruction's length in bytes: 2 for the density instructions, 3 otherwise.
    // An instruction is never empty: `is_empty` would mean nothing.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u32 {
        if self.is_narrow() {
            2
        } else {
            3
        }
    }

    /// Whether this is a 16-bit density instruction.
    pub fn is_narrow(&self) -> bool {
        (self.op as u8) >= (Op::L32iN as u8)
    }

    /// The address a branch, jump, call or L32R at `pc` refers to (L32R: its PC-relative
    /// literal, ignoring LITBASE), or `None` for other instructions.
    pub fn target(&self, pc: u32) -> Option<u32> {
        use Op::*;
        match self.op {
            Call0 => Some((pc & !3).wrapping_add(self.imm as u32)),
            L32r => Some((pc.wrapping_add(3) & !3).wrapping_add(self.imm as u32)),
            J | Beqz | Bnez | Bltz | Bgez | Beqi | Bnei | Blti | Bgei | Bltui | Bgeui | Bnone
            | Beq | Blt | Bltu | Ball | Bany | Bne | Bge | Bgeu | Bnall | Bbc | Bbs | Bbci
            | Bbsi | BeqzN | BnezN => Some(pc.wrapping_add(self.imm as u32)),
            _ => None,
        }
    }
}

/// The length in bytes of the instruction whose first byte is `first_byte`: 2 for op0 8..=13
/// (density), 3 for everything else (op0 14 and 15 are not instructions; they count as 3).
pub(crate) fn length_of(first_byte: u8) -> u32 {
    if (8..=13).contains(&(first_byte & 15)) {
        2
    } else {
        3
    }
}

fn sign_extend(value: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((value << shift) as i32) >> shift
}

/// Decodes the instruction whose bytes, little-endian, are `word` (the bytes at the PC; only the
/// low 3 bytes are looked at, the low 2 for a density instruction).
pub fn decode(word: u32) -> Result<Instruction, DecodeError> {
    decode_fields(word).ok_or(DecodeError {
        word: word
            & if length_of(word as u8) == 2 {
                0xFFFF
            } else {
                0xFF_FFFF
            },
    })
}

fn decode_fields(w: u32) -> Option<Instruction> {
    let op0 = w & 15;
    let t = (w >> 4) & 15;
    let s = (w >> 8) & 15;
    let r = (w >> 12) & 15;
    let op1 = (w >> 16) & 15;
    let op2 = (w >> 20) & 15;
    let imm8 = (w >> 16) & 0xFF;
    let n = (w >> 4) & 3;
    let m = (w >> 6) & 3;
    let rrr = |op: Op| Some(Instruction::new(op, r, s, t, 0));
    match op0 {
        0 => decode_qrst(w, op1, op2, r, s, t),
        1 => {
            // L32R: the 16-bit offset is extended with ones, so literals lie below the PC.
            let offset = ((w >> 8) & 0xFFFF) << 2 | 0xFFFC_0000;
            Some(Instruction::new(Op::L32r, 0, 0, t, offset as i32))
        }
        2 => {
            let load_store =
                |op: Op, scale: u32| Some(Instruction::new(op, 0, s, t, (imm8 << scale) as i32));
            match r {
                0 => load_store(Op::L8ui, 0),
                1 => load_store(Op::L16ui, 1),
                2 => load_store(Op::L32i, 2),
                4 => load_store(Op::S8i, 0),
                5 => load_store(Op::S16i, 1),
                6 => load_store(Op::S32i, 2),
                9 => load_store(Op::L16si, 1),
                10 => Some(Instruction::new(
                    Op::Movi,
                    0,
                    0,
                    t,
                    sign_extend(s << 8 | imm8, 12),
                )),
                12 => Some(Instruction::new(Op::Addi, 0, s, t, sign_extend(imm8, 8))),
                13 => Some(Instruction::new(
                    Op::Addmi,
                    0,
                    s,
                    t,
                    sign_extend(imm8, 8) << 8,
                )),
                _ => None,
            }
        }
        5 if n == 0 => {
            let offset = sign_extend(w >> 6, 18);
            Some(Instruction::new(Op::Call0, 0, 0, 0, (offset << 2) + 4))
        }
        6 => {
            let branch12 =
                |op: Op| Some(Instruction::new(op, 0, s, 0, sign_extend(w >> 12, 12) + 4));
            // The compare constant stays as its B4CONST/B4CONSTU index in `r`.
            let branch8 = |op: Op| Some(Instruction::new(op, r, s, 0, sign_extend(imm8, 8) + 4));
            match (n, m) {
                (0, _) => Some(Instruction::new(
                    Op::J,
                    0,
                    0,
                    0,
                    sign_extend(w >> 6, 18) + 4,
                )),
                (1, 0) => branch12(Op::Beqz),
                (1, 1) => branch12(Op::Bnez),
                (1, 2) => branch12(Op::Bltz),
                (1, _) => branch12(Op::Bgez),
                (2, 0) => branch8(Op::Beqi),
                (2, 1) => branch8(Op::Bnei),
                (2, 2) => branch8(Op::Blti),
                (2, _) => branch8(Op::Bgei),
                (3, 2) => branch8(Op::Bltui),
                (3, 3) => branch8(Op::Bgeui),
                _ => None,
            }
        }
        7 => {
            let offset = sign_extend(imm8, 8) + 4;
            let op = match r {
                0 => Op::Bnone,
                1 => Op::Beq,
                2 => Op::Blt,
                3 => Op::Bltu,
                4 => Op::Ball,
                5 => Op::Bbc,
                6 | 7 => Op::Bbci,
                8 => Op::Bany,
                9 => Op::Bne,
                10 => Op::Bge,
                11 => Op::Bgeu,
                12 => Op::Bnall,
                13 => Op::Bbs,
                _ => Op::Bbsi,
            };
            let t = if matches!(op, Op::Bbci | Op::Bbsi) {
                (r & 1) << 4 | t
            } else {
                t
            };
            Some(Instruction {
                op,
                r: 0,
                s: s as u8,
                t: t as u8,
                imm: offset,
            })
        }
        8 => Some(Instruction::new(Op::L32iN, 0, s, t, (r << 2) as i32)),
        9 => Some(Instruction::new(Op::S32iN, 0, s, t, (r << 2) as i32)),
        10 => rrr(Op::AddN),
        11 => Some(Instruction::new(
            Op::AddiN,
            r,
            s,
            0,
            if t == 0 { -1 } else { t as i32 },
        )),
        12 => {
            if t & 8 == 0 {
                let imm7 = (t & 7) << 4 | r;
                let value = if imm7 & 0x60 == 0x60 {
                    imm7 as i32 - 128
                } else {
                    imm7 as i32
                };
                Some(Instruction::new(Op::MoviN, 0, s, 0, value))
            } else {
                let offset = ((t & 3) << 4 | r) as i32 + 4;
                let op = if t & 4 == 0 { Op::BeqzN } else { Op::BnezN };
                Some(Instruction::new(op, 0, s, 0, offset))
            }
        }
        13 => match (r, t, s) {
            (0, _, _) => Some(Instruction::new(Op::MovN, 0, s, t, 0)),
            // RET and RET.N ignore their s field, as the lx106 opcode tables do.
            (15, 0, _) => Some(Instruction::new(Op::RetN, 0, 0, 0, 0)),
            (15, 2, _) => Some(Instruction::new(Op::BreakN, 0, s, 0, 0)),
            (15, 3, 0) => Some(Instruction::new(Op::NopN, 0, 0, 0, 0)),
            (15, 6, 0) => Some(Instruction::new(Op::IllN, 0, 0, 0, 0)),
            _ => None,
        },
        _ => None,
    }
}

impl Instruction {
    /// The constant an immediate-compare branch (BEQI, BNEI, BLTI, BGEI, BLTUI, BGEUI)
    /// compares against, as a 32-bit pattern; 0 for other instructions.
    pub fn branch_constant(&self) -> u32 {
        match self.op {
            Op::Beqi | Op::Bnei | Op::Blti | Op::Bgei => B4CONST[(self.r & 15) as usize] as u32,
            Op::Bltui | Op::Bgeui => B4CONSTU[(self.r & 15) as usize],
            _ => 0,
        }
    }
}

fn decode_qrst(w: u32, op1: u32, op2: u32, r: u32, s: u32, t: u32) -> Option<Instruction> {
    let rrr = |op: Op| Some(Instruction::new(op, r, s, t, 0));
    let m = (w >> 6) & 3;
    let n = (w >> 4) & 3;
    match op1 {
        0 => match op2 {
            0 => decode_st0(r, s, t, m, n),
            1 => rrr(Op::And),
            2 => rrr(Op::Or),
            3 => rrr(Op::Xor),
            4 => decode_st1(r, s, t),
            5 => {
                let op = match r {
                    3 => Op::Ritlb0,
                    4 if t == 0 => Op::Iitlb,
                    5 => Op::Pitlb,
                    6 => Op::Witlb,
                    7 => Op::Ritlb1,
                    11 => Op::Rdtlb0,
                    12 if t == 0 => Op::Idtlb,
                    13 => Op::Pdtlb,
                    14 => Op::Wdtlb,
                    15 => Op::Rdtlb1,
                    _ => return None,
                };
                Some(Instruction::new(op, 0, s, t, 0))
            }
            6 => match s {
                0 => rrr(Op::Neg),
                1 => rrr(Op::Abs),
                _ => None,
            },
            8 => rrr(Op::Add),
            9 => rrr(Op::Addx2),
            10 => rrr(Op::Addx4),
            11 => rrr(Op::Addx8),
            12 => rrr(Op::Sub),
            13 => rrr(Op::Subx2),
            14 => rrr(Op::Subx4),
            15 => rrr(Op::Subx8),
            _ => None,
        },
        1 => match op2 {
            0 | 1 => Some(Instruction::new(
                Op::Slli,
                r,
                s,
                0,
                32 - ((op2 & 1) << 4 | t) as i32,
            )),
            2 | 3 => Some(Instruction::new(
                Op::Srai,
                r,
                0,
                t,
                ((op2 & 1) << 4 | s) as i32,
            )),
            4 => Some(Instruction::new(Op::Srli, r, 0, t, s as i32)),
            6 => {
                let sr = r << 4 | s;
                crate::sr::swappable(sr as u8)
                    .then(|| Instruction::new(Op::Xsr, 0, 0, t, sr as i32))
            }
            8 => rrr(Op::Src),
            9 if s == 0 => rrr(Op::Srl),
            10 if t == 0 => rrr(Op::Sll),
            11 if s == 0 => rrr(Op::Sra),
            12 => rrr(Op::Mul16u),
            13 => rrr(Op::Mul16s),
            15 => match (r, t) {
                (14, 0) => Some(Instruction::new(Op::Rfdo, 0, s, 0, 0)),
                (14, 1) => Some(Instruction::new(Op::Rfdd, 0, s, 0, 0)),
                _ => None,
            },
            _ => None,
        },
        2 if op2 == 8 => rrr(Op::Mull),
        3 => {
            let sr = r << 4 | s;
            match op2 {
                0 => crate::sr::readable(sr as u8)
                    .then(|| Instruction::new(Op::Rsr, 0, 0, t, sr as i32)),
                1 => crate::sr::writable(sr as u8)
                    .then(|| Instruction::new(Op::Wsr, 0, 0, t, sr as i32)),
                8 => rrr(Op::Moveqz),
                9 => rrr(Op::Movnez),
                10 => rrr(Op::Movltz),
                11 => rrr(Op::Movgez),
                _ => None,
            }
        }
        4 | 5 => {
            let shift = (op1 & 1) << 4 | s;
            let mask_bits = op2 + 1;
            Some(Instruction::new(
                Op::Extui,
                r,
                0,
                t,
                (mask_bits << 8 | shift) as i32,
            ))
        }
        _ => None,
    }
}

fn decode_st0(r: u32, s: u32, t: u32, m: u32, n: u32) -> Option<Instruction> {
    let plain = |op: Op| Some(Instruction::new(op, 0, 0, 0, 0));
    match r {
        0 => match (m, n) {
            (0, 0) if s == 0 => plain(Op::Ill),
            (2, 0) => plain(Op::Ret),
            (2, 2) => Some(Instruction::new(Op::Jx, 0, s, 0, 0)),
            (3, 0) => Some(Instruction::new(Op::Callx0, 0, s, 0, 0)),
            _ => None,
        },
        2 if s == 0 => match t {
            0 => plain(Op::Isync),
            1 => plain(Op::Rsync),
            2 => plain(Op::Esync),
            3 => plain(Op::Dsync),
            8 => plain(Op::Excw),
            12 => plain(Op::Memw),
            13 => plain(Op::Extw),
            15 => plain(Op::Nop),
            _ => None,
        },
        3 => match (t, s) {
            (0, 0) => plain(Op::Rfe),
            (0, 2) => plain(Op::Rfde),
            (1, _) => Some(Instruction::new(Op::Rfi, 0, s, 0, 0)),
            _ => None,
        },
        4 => Some(Instruction::new(Op::Break, 0, s, t, 0)),
        5 => match (t, s) {
            (0, 0) => plain(Op::Syscall),
            (0, 1) => plain(Op::Simcall),
            _ => None,
        },
        6 => Some(Instruction::new(Op::Rsil, 0, s, t, 0)),
        7 if t == 0 => Some(Instruction::new(Op::Waiti, 0, s, 0, 0)),
        _ => None,
    }
}

fn decode_st1(r: u32, s: u32, t: u32) -> Option<Instruction> {
    let with_s = |op: Op| Some(Instruction::new(op, 0, s, 0, 0));
    match r {
        0 if t == 0 => with_s(Op::Ssr),
        1 if t == 0 => with_s(Op::Ssl),
        2 if t == 0 => with_s(Op::Ssa8l),
        3 if t == 0 => with_s(Op::Ssa8b),
        4 if t & 14 == 0 => Some(Instruction::new(
            Op::Ssai,
            0,
            0,
            0,
            ((t & 1) << 4 | s) as i32,
        )),
        6 => Some(Instruction::new(Op::Rer, 0, s, t, 0)),
        7 => Some(Instruction::new(Op::Wer, 0, s, t, 0)),
        14 => Some(Instruction::new(Op::Nsa, 0, s, t, 0)),
        15 => Some(Instruction::new(Op::Nsau, 0, s, t, 0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(op0: u32, t: u32, s: u32, r: u32, op1: u32, op2: u32) -> u32 {
        op2 << 20 | op1 << 16 | r << 12 | s << 8 | t << 4 | op0
    }

    #[test]
    fn lengths_follow_op0() {
        for op0 in 0..16u8 {
            let expected = if (8..=13).contains(&op0) { 2 } else { 3 };
            assert_eq!(length_of(op0 | 0xF0), expected, "op0 {op0}");
        }
        assert_eq!(decode(0xF03D).map(|i| i.len()), Ok(2), "nop.n");
        assert_eq!(decode(0x0020F0).map(|i| i.len()), Ok(3), "nop");
    }

    #[test]
    fn immediate_branch_constants_come_from_b4const_and_b4constu() {
        // BEQI a2, B4CONST[r], +0 and BLTUI a2, B4CONSTU[r], +0.
        for r in 0..16u32 {
            let beqi = decode(word(6, 0b0010, 2, r, 0, 0)).expect("BEQI");
            assert_eq!(beqi.op(), Op::Beqi);
            assert_eq!(beqi.branch_constant(), B4CONST[r as usize] as u32);
            let bltui = decode(word(6, 0b1011, 2, r, 0, 0)).expect("BLTUI");
            assert_eq!(bltui.op(), Op::Bltui);
            assert_eq!(bltui.branch_constant(), B4CONSTU[r as usize]);
        }
    }

    #[test]
    fn targets_are_relative_to_the_right_base() {
        // J +0 lands 4 bytes on; CALL0 from an unaligned PC rounds down first; L32R with
        // offset -1 word reads below (PC + 3) & !3.
        let j = decode(0x000006).expect("J");
        assert_eq!(j.target(0x4010_0001), Some(0x4010_0005));
        let call0 = decode(0x000005).expect("CALL0");
        assert_eq!(call0.target(0x4010_0003), Some(0x4010_0004));
        let l32r = decode(0xFFFF21).expect("L32R");
        assert_eq!(l32r.target(0x4010_0001), Some(0x4010_0000));
        assert_eq!(l32r.target(0x4010_0004), Some(0x4010_0000));
        let beqz_n = decode(0xF0BC).expect("BEQZ.N a0, +63");
        assert_eq!(beqz_n.op(), Op::BeqzN);
        assert_eq!(beqz_n.target(0x100), Some(0x100 + 4 + 63));
    }

    #[test]
    fn movi_n_covers_minus_32_to_95() {
        let mut values: Vec<i32> = (0..128u32)
            .map(|imm7| decode((imm7 & 0x70) | (imm7 & 15) << 12 | 0x0C))
            .map(|insn| insn.expect("MOVI.N").imm())
            .collect();
        values.sort_unstable();
        assert_eq!(values, (-32..96).collect::<Vec<_>>());
    }

    #[test]
    fn shift_and_extract_fields() {
        // SLLI a1, a2, 1 is encoded as 32 - 1 = 31 in {op2[0], t}.
        assert_eq!(decode(word(0, 15, 2, 1, 1, 1)).map(|i| i.imm()), Ok(1));
        // SRAI a1, a3, 18: {op2[0], s} = 18.
        assert_eq!(decode(word(0, 3, 2, 1, 1, 3)).map(|i| i.imm()), Ok(18));
        // EXTUI a1, a3, 18, 16: shift {op1[0], s}, width op2 + 1.
        let extui = decode(word(0, 3, 2, 1, 5, 15)).expect("EXTUI");
        assert_eq!((extui.imm() & 0xFF, extui.imm() >> 8), (18, 16));
    }

    #[test]
    fn special_registers_outside_the_lx106_are_invalid() {
        let rsr = |sr: u32| decode(word(0, 2, sr & 15, sr >> 4, 3, 0));
        assert_eq!(rsr(u32::from(crate::sr::CCOUNT)).map(|i| i.imm()), Ok(234));
        for missing in [
            0u32, 1, 2, 4, 12, 16, 72, 73, 83, 97, 98, 224, 227, 241, 244,
        ] {
            assert!(rsr(missing).is_err(), "RSR {missing}");
        }
    }

    #[test]
    fn decode_errors_carry_the_bytes_of_one_instruction() {
        assert_eq!(
            decode(0xAB43_2340 & 0x00FF_FFFF),
            Err(DecodeError { word: 0x43_2340 })
        );
        assert_eq!(decode(0x1234_F01D), Err(DecodeError { word: 0xF01D }));
    }
}
