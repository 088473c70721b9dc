//! Exception causes (the values the core writes to EXCCAUSE) and the debug causes (bits of
//! DEBUGCAUSE) that the LX106 can raise.

/// An instruction the LX106 does not have, or one it cannot execute here (RFDO/RFDD outside
/// on-chip-debug mode, SIMCALL on hardware, RFI of a level without EPC/EPS).
pub const ILLEGAL_INSTRUCTION: u32 = 0;
/// SYSCALL.
pub const SYSCALL: u32 = 1;
/// The bus refused an instruction fetch.
pub const INSTRUCTION_FETCH_ERROR: u32 = 2;
/// The bus refused a load or store.
pub const LOAD_STORE_ERROR: u32 = 3;
/// A level-1 interrupt (EPC1 holds the interrupted PC).
pub const LEVEL1_INTERRUPT: u32 = 4;
/// An unaligned L16/L32/S16/S32.
pub const LOAD_STORE_ALIGNMENT: u32 = 9;

/// Bits of DEBUGCAUSE.
pub mod debug {
    /// ICOUNT reached zero.
    pub const ICOUNT: u32 = 1 << 0;
    /// Instruction breakpoint 0 matched.
    pub const IBREAK: u32 = 1 << 1;
    /// BREAK.
    pub const BREAK: u32 = 1 << 3;
    /// BREAK.N.
    pub const BREAK_N: u32 = 1 << 4;
}
