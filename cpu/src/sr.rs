//! Special-register numbers of the LX106, as RSR/WSR/XSR and [`crate::Cpu::read_sr`] /
//! [`crate::Cpu::write_sr`] name them. Only these exist on the ESP8266's core; any other
//! number makes RSR/WSR/XSR an illegal instruction.

/// Shift amount (6 bits) for SRC, SRL, SLL, SRA.
pub const SAR: u8 = 3;
/// Base of L32R's literals when bit 0 is set (PC-relative literals otherwise).
pub const LITBASE: u8 = 5;
/// Memory-map ID for the trace port (write-only).
pub const MMID: u8 = 89;
/// Bit 0 enables instruction breakpoint 0.
pub const IBREAKENABLE: u8 = 96;
/// Debug data register (on-chip debug).
pub const DDR: u8 = 104;
/// Instruction breakpoint 0 address.
pub const IBREAKA0: u8 = 128;
/// Data breakpoint 0 address.
pub const DBREAKA0: u8 = 144;
/// Data breakpoint 0 control.
pub const DBREAKC0: u8 = 160;
/// Configuration ID, high word (objdump prints it as `176`).
pub const CONFIGID0: u8 = 176;
/// Exception PC for level-1 (general) exceptions and interrupts.
pub const EPC1: u8 = 177;
/// Exception PC for level 2, the debug level.
pub const EPC2: u8 = 178;
/// Exception PC for level 3, the NMI.
pub const EPC3: u8 = 179;
/// PC of the instruction that raised a double exception.
pub const DEPC: u8 = 192;
/// PS saved on a level-2 (debug) exception.
pub const EPS2: u8 = 194;
/// PS saved on the NMI.
pub const EPS3: u8 = 195;
/// Configuration ID, low word, read-only (objdump prints it as `208`).
pub const CONFIGID1: u8 = 208;
/// Scratch register for level-1 handlers.
pub const EXCSAVE1: u8 = 209;
/// Scratch register for the debug handler.
pub const EXCSAVE2: u8 = 210;
/// Scratch register for the NMI handler.
pub const EXCSAVE3: u8 = 211;
/// Pending interrupts when read (RSR.INTERRUPT); software-interrupt set when written (WSR.INTSET).
pub const INTERRUPT: u8 = 226;
/// The write side of [`INTERRUPT`].
pub const INTSET: u8 = 226;
/// Clears software and edge-triggered interrupts (write-only).
pub const INTCLEAR: u8 = 227;
/// Interrupt enable mask.
pub const INTENABLE: u8 = 228;
/// Processor state: INTLEVEL (bits 0..=3), EXCM (bit 4), UM (bit 5).
pub const PS: u8 = 230;
/// Base address of the exception vectors.
pub const VECBASE: u8 = 231;
/// Cause of the last general exception (see [`crate::cause`]).
pub const EXCCAUSE: u8 = 232;
/// Cause of the last debug exception (see [`crate::cause::debug`]).
pub const DEBUGCAUSE: u8 = 233;
/// Cycle counter.
pub const CCOUNT: u8 = 234;
/// Processor ID (read-only).
pub const PRID: u8 = 235;
/// Instruction counter for single-stepping.
pub const ICOUNT: u8 = 236;
/// ICOUNT counts while the current interrupt level is below this.
pub const ICOUNTLEVEL: u8 = 237;
/// Address of the access that raised the last memory exception.
pub const EXCVADDR: u8 = 238;
/// Timer 0 compare value (interrupt 6 when CCOUNT reaches it).
pub const CCOMPARE0: u8 = 240;

/// The assembler's name of a special register (objdump's `rsr.NAME`, `wsr.NAME`), or `None` when
/// the LX106 has no such register. Reads call 226 `interrupt`, writes `intset`; CONFIGID0/1 have
/// no name in the lx106 binutils and are printed as numbers.
pub fn name(sr: u8, write: bool) -> Option<&'static str> {
    Some(match sr {
        SAR => "sar",
        LITBASE => "litbase",
        MMID => "mmid",
        IBREAKENABLE => "ibreakenable",
        DDR => "ddr",
        IBREAKA0 => "ibreaka0",
        DBREAKA0 => "dbreaka0",
        DBREAKC0 => "dbreakc0",
        CONFIGID0 => "176",
        EPC1 => "epc1",
        EPC2 => "epc2",
        EPC3 => "epc3",
        DEPC => "depc",
        EPS2 => "eps2",
        EPS3 => "eps3",
        CONFIGID1 => "208",
        EXCSAVE1 => "excsave1",
        EXCSAVE2 => "excsave2",
        EXCSAVE3 => "excsave3",
        INTERRUPT if write => "intset",
        INTERRUPT => "interrupt",
        INTCLEAR => "intclear",
        INTENABLE => "intenable",
        PS => "ps",
        VECBASE => "vecbase",
        EXCCAUSE => "exccause",
        DEBUGCAUSE => "debugcause",
        CCOUNT => "ccount",
        PRID => "prid",
        ICOUNT => "icount",
        ICOUNTLEVEL => "icountlevel",
        EXCVADDR => "excvaddr",
        CCOMPARE0 => "ccompare0",
        _ => return None,
    })
}

/// Whether RSR can read `sr` on the LX106.
pub fn readable(sr: u8) -> bool {
    !matches!(sr, MMID | INTCLEAR) && name(sr, false).is_some()
}

/// Whether WSR can write `sr` on the LX106.
pub fn writable(sr: u8) -> bool {
    !matches!(sr, CONFIGID1 | PRID) && name(sr, true).is_some()
}

/// Whether XSR can swap `sr` on the LX106 (readable and writable, and not one of the
/// registers whose read and write sides differ).
pub fn swappable(sr: u8) -> bool {
    readable(sr) && writable(sr) && !matches!(sr, INTERRUPT | CONFIGID0)
}
