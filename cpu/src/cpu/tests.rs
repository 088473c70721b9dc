//! The core between instructions: exceptions, interrupts, WAITI, the timer, the trap range, the
//! code cache, the debug option and the run loop's bookkeeping.

use crate::cause;
use crate::sr;
use crate::test_support::{Machine, TestBus, CODE, CODE_SIZE, DATA, DONE};
use crate::{Cpu, Stop};
use proptest::prelude::*;

const KERNEL: u32 = 0x4000_0030;
const USER: u32 = 0x4000_0050;
const DOUBLE: u32 = 0x4000_0070;
const DEBUG: u32 = 0x4000_0010;
const NMI: u32 = 0x4000_0020;

fn ps(m: &Machine) -> u32 {
    m.sr(sr::PS)
}

#[test]
fn reset_state() {
    let cpu = Cpu::new();
    assert_eq!(cpu.pc(), 0x4000_0080);
    assert_eq!(cpu.read_sr(sr::VECBASE), Some(0x4000_0000));
    assert_eq!(cpu.read_sr(sr::PS), Some(0x1F));
    assert_eq!(cpu.cycles(), 0);
    assert_eq!(cpu.instructions_retired(), 0);
    assert!(cpu.recent_pcs().is_empty());
}

#[test]
fn reset_keeps_the_trap_range_and_clears_the_rest() {
    let mut m = Machine::new("movi a2, 7\n j DONE");
    m.run_to_done();
    m.cpu.reset();
    assert_eq!(m.cpu.pc(), 0x4000_0080);
    assert_eq!(m.ar(2), 0);
    assert_eq!(m.cpu.cycles(), 0);
    assert_eq!(m.run(10), Stop::Trap { pc: 0x4000_0080 });
}

#[test]
fn special_register_access_from_the_host() {
    let mut cpu = Cpu::new();
    assert_eq!(cpu.read_sr(7), None, "no such register");
    assert!(!cpu.write_sr(7, 1));
    assert_eq!(cpu.read_sr(sr::INTCLEAR), None, "write-only");
    assert!(!cpu.write_sr(sr::PRID, 1), "read-only");
    assert!(!cpu.write_sr(sr::CONFIGID1, 1), "read-only");
    assert!(cpu.write_sr(sr::EXCSAVE2, 0xDEAD_BEEF));
    assert_eq!(cpu.read_sr(sr::EXCSAVE2), Some(0xDEAD_BEEF));
    assert!(cpu.write_sr(sr::PS, 0xFFFF_FFFF));
    assert_eq!(
        cpu.read_sr(sr::PS),
        Some(0x3F),
        "INTLEVEL, EXCM and UM only"
    );
    assert!(cpu.write_sr(sr::CCOUNT, 1000));
    assert_eq!(cpu.read_sr(sr::CCOUNT), Some(1000));
}

#[test]
fn illegal_instruction_enters_the_kernel_vector() {
    let mut m = Machine::new("nop\nbad: ill\n j DONE");
    assert_eq!(m.run(100), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EPC1), m.symbol("bad"));
    assert_eq!(m.sr(sr::EXCCAUSE), cause::ILLEGAL_INSTRUCTION);
    assert_eq!(ps(&m) & 0x10, 0x10, "PS.EXCM set");
    assert_eq!(m.cpu.instructions_retired(), 1, "the ILL did not retire");
}

#[test]
fn user_mode_takes_the_user_vector() {
    let mut m = Machine::new("ill.n");
    assert!(m.cpu.write_sr(sr::PS, 0x20));
    assert_eq!(m.run(100), Stop::Trap { pc: USER });
    assert_eq!(m.sr(sr::EPC1), CODE);
    assert_eq!(ps(&m), 0x30, "UM stays, EXCM set");
}

#[test]
fn an_exception_with_excm_set_is_a_double_exception() {
    let mut m = Machine::new("nop.n\n syscall");
    assert!(m.cpu.write_sr(sr::PS, 0x10));
    assert!(m.cpu.write_sr(sr::EPC1, 0x1234));
    assert_eq!(m.run(100), Stop::Trap { pc: DOUBLE });
    assert_eq!(m.sr(sr::DEPC), CODE + 2);
    assert_eq!(m.sr(sr::EPC1), 0x1234, "EPC1 is left alone");
    assert_eq!(m.sr(sr::EXCCAUSE), cause::SYSCALL);
}

#[test]
fn instructions_of_missing_options_are_illegal() {
    let missing: [(&str, &[u8]); 16] = [
        ("ENTRY a1, 32", &[0x36, 0x41, 0x00]),
        ("RETW", &[0x90, 0x00, 0x00]),
        ("RETW.N", &[0x1D, 0xF0]),
        ("CALL4", &[0x15, 0x00, 0x00]),
        ("MOVSP", &[0x00, 0x10, 0x00]),
        ("LOOP a2", &[0x76, 0x82, 0x00]),
        ("MIN", &[0x40, 0x23, 0x43]),
        ("SEXT", &[0x40, 0x23, 0x23]),
        ("CLAMPS", &[0x40, 0x23, 0x33]),
        ("QUOU", &[0x40, 0x23, 0xC2]),
        ("MULUH", &[0x40, 0x23, 0xA2]),
        ("S32C1I", &[0x32, 0xE2, 0x00]),
        ("ADD.S", &[0x40, 0x23, 0x0A]),
        ("MAC16", &[0x04, 0x00, 0x00]),
        ("L32E", &[0x00, 0x00, 0x09]),
        ("op0 = 14", &[0x0E, 0x00, 0x00]),
    ];
    for (name, bytes) in missing {
        let mut m = Machine::from_bytes(bytes);
        assert_eq!(m.run(10), Stop::Trap { pc: KERNEL }, "{name}");
        assert_eq!(m.sr(sr::EXCCAUSE), cause::ILLEGAL_INSTRUCTION, "{name}");
        assert_eq!(m.sr(sr::EPC1), CODE, "{name}");
    }
}

#[test]
fn simcall_and_debug_returns_are_illegal_here() {
    for source in ["simcall", "rfdo 0", "rfdd", "rfi 1", "rfi 4"] {
        let mut m = Machine::new(source);
        assert_eq!(m.run(10), Stop::Trap { pc: KERNEL }, "{source}");
        assert_eq!(m.sr(sr::EXCCAUSE), cause::ILLEGAL_INSTRUCTION, "{source}");
    }
}

#[test]
fn unaligned_accesses_raise_the_alignment_exception() {
    let cases = [
        ("l16ui a3, a2, 0", 1),
        ("l16si a3, a2, 2", 3),
        ("l32i a3, a2, 0", 2),
        ("l32i.n a3, a2, 4", 1),
        ("s16i a3, a2, 0", 1),
        ("s32i a3, a2, 4", 3),
    ];
    for (source, misalignment) in cases {
        let mut m = Machine::new(source);
        m.cpu.set_ar(2, DATA + misalignment);
        m.cpu.set_ar(3, 0x5555);
        assert_eq!(m.run(10), Stop::Trap { pc: KERNEL }, "{source}");
        assert_eq!(m.sr(sr::EXCCAUSE), cause::LOAD_STORE_ALIGNMENT, "{source}");
        let offset = crate::decode(m.bus.word(CODE)).map(|insn| insn.imm() as u32);
        assert_eq!(
            m.sr(sr::EXCVADDR),
            DATA + misalignment + offset.unwrap_or(0),
            "{source}"
        );
        assert_eq!(m.ar(3), 0x5555, "{source}: the destination is untouched");
        assert_eq!(m.bus.word(DATA), 0, "{source}: nothing was stored");
        assert_eq!(m.bus.word(DATA + 4), 0, "{source}: nothing was stored");
    }
}

#[test]
fn bus_faults_on_loads_and_stores_raise_load_store_error() {
    for source in [
        "l8ui a3, a2, 4",
        "s8i a3, a2, 4",
        "l32i a3, a2, 4",
        "s32i a3, a2, 4",
    ] {
        let mut m = Machine::new(source);
        m.cpu.set_ar(2, 0x6000_0000);
        assert_eq!(m.run(10), Stop::Trap { pc: KERNEL }, "{source}");
        assert_eq!(m.sr(sr::EXCCAUSE), cause::LOAD_STORE_ERROR, "{source}");
        assert_eq!(m.sr(sr::EXCVADDR), 0x6000_0004, "{source}");
        assert_eq!(m.sr(sr::EPC1), CODE, "{source}");
    }
}

#[test]
fn fetch_faults_raise_instruction_fetch_error() {
    let mut m = Machine::new("jx a2");
    m.cpu.set_ar(2, 0x5000_0001);
    assert_eq!(m.run(10), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EXCCAUSE), cause::INSTRUCTION_FETCH_ERROR);
    assert_eq!(m.sr(sr::EPC1), 0x5000_0001);
    assert_eq!(m.sr(sr::EXCVADDR), 0x5000_0001);
}

#[test]
fn an_instruction_running_off_the_end_of_memory_faults_on_its_second_word() {
    // A 3-byte instruction in the last two bytes of memory: the first word is readable.
    let last = CODE + CODE_SIZE as u32 - 2;
    let mut m = Machine::new("jx a2");
    m.bus.load(last, &[0x22, 0xA0]);
    m.cpu.set_ar(2, last);
    assert_eq!(m.run(10), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EXCCAUSE), cause::INSTRUCTION_FETCH_ERROR);
    assert_eq!(m.sr(sr::EPC1), last);
}

/// A program with its own vectors at `CODE + 0x400` (VECBASE), so handlers run for real.
fn with_vectors(main: &str, kernel_handler: &str, extra: &str) -> Machine {
    let source = format!(
        "
{main}
        j DONE
        .org 0x410
debug_vector:
        rsr.epc2 a14
        addi a14, a14, 3
        wsr.epc2 a14
        rfi 2
        .org 0x420
nmi_vector:
        movi a13, 1
        rfi 3
        .org 0x430
kernel_vector:
{kernel_handler}
        .org 0x470
double_vector:
        rsr.depc a11
        addi a11, a11, 3
        wsr.depc a11
        movi a12, 1
        rfde
{extra}
        "
    );
    let mut m = Machine::new(&source);
    assert!(m.cpu.write_sr(sr::VECBASE, CODE + 0x400));
    m
}

#[test]
fn a_handler_returns_with_rfe() {
    let mut m = with_vectors(
        "
        movi a2, 1
        ill
        addi a2, a2, 10
        ",
        "
        rsr.epc1 a3
        addi a3, a3, 3
        wsr.epc1 a3
        rsr.exccause a4
        rfe
        ",
        "",
    );
    m.run_to_done();
    assert_eq!(m.ar(2), 11, "execution resumed after the ILL");
    assert_eq!(m.ar(4), cause::ILLEGAL_INSTRUCTION);
    assert_eq!(ps(&m) & 0x10, 0, "RFE cleared EXCM");
}

#[test]
fn rfde_returns_to_depc() {
    let mut m = with_vectors(
        "
        movi a2, 0x10
        wsr.ps a2
        syscall
        movi a2, 5
        ",
        "",
        "",
    );
    m.run_to_done();
    assert_eq!(m.ar(12), 1, "the double-exception handler ran");
    assert_eq!(m.ar(2), 5);
    assert_eq!(m.sr(sr::EXCCAUSE), cause::SYSCALL);
}

#[test]
fn break_takes_the_debug_exception() {
    let mut m = Machine::new("nop.n\nbrk: break 1, 2");
    assert!(m.cpu.write_sr(sr::PS, 0x21));
    assert_eq!(m.run(10), Stop::Trap { pc: DEBUG });
    assert_eq!(m.sr(sr::EPC2), m.symbol("brk"), "EPC2 is the BREAK itself");
    assert_eq!(m.sr(sr::EPS2), 0x21);
    assert_eq!(m.sr(sr::DEBUGCAUSE), cause::debug::BREAK);
    assert_eq!(ps(&m), 0x20 | 0x10 | 2, "INTLEVEL = debug level, EXCM set");

    let mut m = Machine::new("break.n 3");
    assert_eq!(m.run(10), Stop::Trap { pc: DEBUG });
    assert_eq!(m.sr(sr::DEBUGCAUSE), cause::debug::BREAK_N);
}

#[test]
fn break_at_or_above_the_debug_level_does_nothing() {
    let mut m = Machine::new("rsil a2, 2\n break 0, 0\n break.n 0\n movi a3, 1\n j DONE");
    m.run_to_done();
    assert_eq!(m.ar(3), 1);
}

#[test]
fn the_debug_handler_returns_with_rfi_2() {
    let mut m = with_vectors("break 0, 0\n movi a2, 9", "", "");
    m.run_to_done();
    assert_eq!(m.ar(2), 9);
    assert_eq!(ps(&m), 0, "RFI 2 restored PS from EPS2");
}

#[test]
fn a_software_interrupt_is_taken_after_the_write_that_raises_it() {
    let mut m = Machine::new(
        "
        movi a2, 0x80
        wsr.intenable a2
        wsr.intset a2
after:  nop
        ",
    );
    assert_eq!(m.run(100), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EPC1), m.symbol("after"));
    assert_eq!(m.sr(sr::EXCCAUSE), cause::LEVEL1_INTERRUPT);
    assert_eq!(m.sr(sr::INTERRUPT), 0x80);
    assert!(m.cpu.write_sr(sr::INTCLEAR, 0x80));
    assert_eq!(m.sr(sr::INTERRUPT), 0);
}

#[test]
fn interrupts_wait_for_intlevel_excm_and_intenable() {
    let mut m = Machine::new(
        "
        movi a2, 0x80
        rsil a3, 1
        wsr.intset a2
        wsr.intenable a2
        nop
        movi a4, 0x10
        wsr.ps a4
        nop
        movi a4, 0
        wsr.ps a4
after:  nop
        ",
    );
    assert_eq!(m.run(100), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EPC1), m.symbol("after"));

    let mut m = Machine::new("movi a2, 0x80\n wsr.intset a2\n nop\n j DONE");
    m.run_to_done();
    assert_eq!(m.sr(sr::INTERRUPT), 0x80, "pending but not enabled");
}

#[test]
fn level_triggered_lines_follow_the_bus() {
    let mut m = Machine::new("loop: j loop");
    m.bus.lines = 1 << 5;
    assert_eq!(m.run(10), Stop::Budget, "not enabled");
    assert_eq!(m.sr(sr::INTERRUPT), 1 << 5);
    m.bus.lines = 0;
    assert_eq!(m.run(10), Stop::Budget);
    assert_eq!(m.sr(sr::INTERRUPT), 0, "the bit follows the line");
    assert!(m.cpu.write_sr(sr::INTENABLE, 1 << 5));
    m.bus.lines = 1 << 5;
    assert_eq!(m.run(10), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EXCCAUSE), cause::LEVEL1_INTERRUPT);
    assert_eq!(m.sr(sr::EPC1), CODE);
}

#[test]
fn edge_triggered_lines_latch_until_intclear() {
    let mut m = Machine::new("loop: j loop");
    m.bus.lines = 1 << 9;
    assert_eq!(m.run(10), Stop::Budget);
    m.bus.lines = 0;
    assert_eq!(m.run(10), Stop::Budget);
    assert_eq!(m.sr(sr::INTERRUPT), 1 << 9, "the rising edge latched");
    assert!(m.cpu.write_sr(sr::INTCLEAR, 1 << 9));
    assert_eq!(m.sr(sr::INTERRUPT), 0);
    assert!(m.cpu.write_sr(sr::INTENABLE, 1 << 9));
    m.bus.lines = 1 << 9;
    assert_eq!(m.run(10), Stop::Trap { pc: KERNEL });
}

#[test]
fn an_edge_seen_by_a_single_poll_is_latched() {
    let mut m = Machine::new(
        "
        movi a2, 0
loop:   addi a2, a2, 1
        j loop
        ",
    );
    assert!(m.cpu.write_sr(sr::INTENABLE, 1 << 9));
    // The pulse comes while blocks run, not at the start of `run`.
    m.bus.pulse = Some((5, 1 << 9));
    assert_eq!(m.run(1000), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::INTERRUPT), 1 << 9);
    assert!(m.ar(2) > 2, "the loop ran before the pulse");
}

#[test]
fn the_nmi_is_taken_on_its_rising_edge_whatever_ps_says() {
    let mut m = with_vectors("loop: j loop", "", "");
    assert!(m.cpu.write_sr(sr::PS, 0x1F));
    assert_eq!(m.run(10), Stop::Budget);
    m.bus.lines = 1 << 14;
    m.cpu.set_trap_range(NMI..NMI + 1);
    assert!(m.cpu.write_sr(sr::VECBASE, 0x4000_0000));
    assert_eq!(m.run(10), Stop::Trap { pc: NMI });
    assert_eq!(m.sr(sr::EPC3), CODE);
    assert_eq!(m.sr(sr::EPS3), 0x1F);
    assert_eq!(ps(&m) & 0xF, 3);
}

#[test]
fn the_nmi_handler_returns_with_rfi_3_and_is_not_retaken_while_the_line_stays_high() {
    let mut m = with_vectors(
        "
        movi a2, 0
loop:   addi a2, a2, 1
        bnei a2, 128, loop
        ",
        "",
        "",
    );
    m.bus.lines = 1 << 14;
    m.run_to_done();
    assert_eq!(m.ar(13), 1, "the NMI handler ran");
    assert_eq!(m.ar(2), 128);
    assert_eq!(ps(&m), 0);
}

#[test]
fn ccompare0_raises_the_timer_interrupt_when_ccount_reaches_it() {
    let mut m = Machine::new(
        "
        rsr.ccount a2
        addi a2, a2, 20
        wsr.ccompare0 a2
        movi a3, 0x40
        wsr.intenable a3
loop:   addi a4, a4, 1
        j loop
        ",
    );
    assert_eq!(m.run(1000), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EXCCAUSE), cause::LEVEL1_INTERRUPT);
    assert_eq!(
        m.cpu.ccount(),
        m.ar(2),
        "taken when CCOUNT equals CCOMPARE0"
    );
    assert_eq!(m.sr(sr::INTERRUPT), 0x40);
    assert!(m.cpu.write_sr(sr::CCOMPARE0, 0));
    assert_eq!(
        m.sr(sr::INTERRUPT),
        0,
        "writing CCOMPARE0 clears the interrupt"
    );
}

#[test]
fn add_cycles_raises_the_timer_when_it_passes_ccompare0() {
    let mut cpu = Cpu::new();
    assert!(cpu.write_sr(sr::CCOMPARE0, 500));
    assert_eq!(cpu.cycles_until_timer(), 500);
    cpu.add_cycles(499);
    assert_eq!(cpu.read_sr(sr::INTERRUPT), Some(0));
    cpu.add_cycles(10_000);
    assert_eq!(cpu.read_sr(sr::INTERRUPT), Some(0x40));
    assert_eq!(cpu.ccount(), 10_499);
    assert_eq!(cpu.cycles_until_timer(), (1 << 32) - 9_999);
    assert_eq!(cpu.cycles(), 10_499);
}

#[test]
fn waiti_waits_until_an_enabled_interrupt_above_its_level() {
    let mut m = Machine::new(
        "
        movi a2, 0x20
        wsr.intenable a2
        waiti 0
after:  j DONE
        ",
    );
    assert_eq!(m.run(100), Stop::Waiting);
    assert!(m.cpu.is_waiting());
    let cycles = m.cpu.cycles();
    assert_eq!(m.run(100), Stop::Waiting);
    assert_eq!(m.cpu.cycles(), cycles, "waiting costs no budget");
    m.bus.lines = 0x20;
    assert_eq!(m.run(100), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EPC1), m.symbol("after"));
    assert!(!m.cpu.is_waiting());
}

#[test]
fn waiti_sets_the_level_that_masks_the_wakeup() {
    let mut m = Machine::new("movi a2, 0x20\n wsr.intenable a2\n waiti 1\n j DONE");
    assert_eq!(m.run(100), Stop::Waiting);
    m.bus.lines = 0x20;
    assert_eq!(m.run(100), Stop::Waiting);
    assert_eq!(ps(&m) & 0xF, 1);
}

#[test]
fn waiti_wakes_on_the_timer_after_the_caller_skips_time() {
    let mut m = Machine::new(
        "
        rsr.ccount a2
        addi a2, a2, 100
        wsr.ccompare0 a2
        movi a3, 0x40
        wsr.intenable a3
        waiti 0
after:  j DONE
        ",
    );
    assert_eq!(m.run(1000), Stop::Waiting);
    let skip = m.cpu.cycles_until_timer();
    m.cpu.add_cycles(skip);
    assert_eq!(m.run(1000), Stop::Trap { pc: KERNEL });
    assert_eq!(m.sr(sr::EPC1), m.symbol("after"));
    assert_eq!(m.cpu.ccount(), m.ar(2));
}

#[test]
fn the_trap_range_stops_before_executing() {
    let mut m = Machine::new(
        "
        j 1f
        .align 4
rom:    .word 0x40002000
1:      l32r a3, rom
        movi a2, 5
        callx0 a3
back:   addi a2, a2, 1
        j DONE
        ",
    );
    assert_eq!(m.run(100), Stop::Trap { pc: 0x4000_2000 });
    assert_eq!(m.ar(0), m.symbol("back"));
    let retired = m.cpu.instructions_retired();
    assert_eq!(m.run(100), Stop::Trap { pc: 0x4000_2000 }, "still there");
    assert_eq!(m.cpu.instructions_retired(), retired);
    // The caller plays the ROM function: a2 = 40, then returns.
    m.cpu.set_ar(2, 40);
    m.cpu.set_pc(m.ar(0));
    m.run_to_done();
    assert_eq!(m.ar(2), 41);
}

#[test]
fn stale_code_runs_until_invalidate_code() {
    let mut m = Machine::new("movi a2, 1\n j DONE");
    m.run_to_done();
    assert_eq!(m.ar(2), 1);
    // Patch MOVI's immediate behind the core's back.
    m.bus.load(CODE + 2, &[7]);
    m.cpu.set_pc(CODE);
    m.run_to_done();
    assert_eq!(m.ar(2), 1, "the decoded instruction was cached");
    m.cpu.invalidate_code(CODE + 2, 1);
    m.cpu.set_pc(CODE);
    m.run_to_done();
    assert_eq!(m.ar(2), 7);
}

#[test]
fn the_cores_own_stores_invalidate_cached_code() {
    let mut m = Machine::new(
        "
        j 1f
        .align 4
patch_address: .word patched
1:      l32r a4, patch_address
        movi a5, 0
        movi a3, 9
again:
patched: movi a2, 1
        addi a5, a5, 1
        s8i a3, a4, 2
        bnei a5, 2, again
        ",
    );
    m.run(1000);
    assert_eq!(m.ar(2), 9, "the second pass ran the patched MOVI");
}

#[test]
fn recent_pcs_and_retired_count() {
    let mut m = Machine::new("nop.n\n nop.n\n nop\n nop.n\n j DONE");
    m.run_to_done();
    assert_eq!(
        m.cpu.recent_pcs(),
        vec![CODE, CODE + 2, CODE + 4, CODE + 7, CODE + 9]
    );
    assert_eq!(m.cpu.instructions_retired(), 5);
    assert_eq!(m.cpu.cycles(), 5);

    let mut m = Machine::new("loop: addi a2, a2, 1\n j loop");
    m.run(1001);
    let recent = m.cpu.recent_pcs();
    assert_eq!(recent.len(), 32);
    assert_eq!(
        *recent.last().unwrap_or(&0),
        CODE,
        "the 1001st instruction was the ADDI"
    );
    assert_eq!(recent[recent.len() - 2], CODE + 3);
}

#[test]
fn step_runs_one_instruction() {
    let mut m = Machine::new("movi a2, 1\n movi a2, 2\n j DONE");
    assert_eq!(m.cpu.step(&mut m.bus), Stop::Budget);
    assert_eq!(m.ar(2), 1);
    assert_eq!(m.cpu.pc(), CODE + 3);
    assert_eq!(m.cpu.step(&mut m.bus), Stop::Budget);
    assert_eq!(m.ar(2), 2);
}

#[test]
fn icount_single_steps() {
    let mut m = Machine::new("first: movi a2, 1\nsecond: movi a2, 2\n j DONE");
    assert!(m.cpu.write_sr(sr::ICOUNT, 0xFFFF_FFFE));
    assert!(m.cpu.write_sr(sr::ICOUNTLEVEL, 1));
    assert_eq!(m.run(100), Stop::Trap { pc: DEBUG });
    assert_eq!(m.ar(2), 1, "one instruction ran");
    assert_eq!(m.sr(sr::EPC2), m.symbol("second"));
    assert_eq!(m.sr(sr::DEBUGCAUSE), cause::debug::ICOUNT);
}

#[test]
fn ibreak_stops_before_the_address() {
    let mut m = Machine::new("movi a2, 1\n movi a2, 2\nthird: movi a2, 3\n j DONE");
    assert!(m.cpu.write_sr(sr::IBREAKA0, m.symbol("third")));
    assert!(m.cpu.write_sr(sr::IBREAKENABLE, 1));
    assert_eq!(m.run(100), Stop::Trap { pc: DEBUG });
    assert_eq!(m.ar(2), 2);
    assert_eq!(m.sr(sr::EPC2), m.symbol("third"));
    assert_eq!(m.sr(sr::DEBUGCAUSE), cause::debug::IBREAK);
}

#[test]
fn budget_counts_cycles() {
    let mut m = Machine::new("loop: j loop");
    assert_eq!(m.run(0), Stop::Budget);
    assert_eq!(m.cpu.cycles(), 0);
    assert_eq!(m.run(12_345), Stop::Budget);
    assert_eq!(m.cpu.cycles(), 12_345);
    assert_eq!(m.cpu.read_sr(sr::CCOUNT), Some(12_345));
    assert_eq!(DONE & 0xFF, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes as code, any registers, any interrupt lines: the core never panics, stays
    /// within its budget, and its PC history is consistent.
    #[test]
    fn no_panic_on_any_memory(
        code in prop::collection::vec(any::<u8>(), 4096),
        data in prop::collection::vec(any::<u8>(), 256),
        registers in prop::array::uniform16(any::<u32>()),
        ps in 0u32..64,
        lines in any::<u32>(),
        start in 0u32..4096,
    ) {
        let mut bus = TestBus::new();
        bus.load(CODE, &code);
        bus.load(DATA, &data);
        bus.lines = lines;
        let mut cpu = Cpu::new();
        for (n, value) in registers.iter().enumerate() {
            // Half the registers point into memory so loads and stores hit it.
            let value = if n % 2 == 0 { DATA + (value & 0xFF) } else { *value };
            cpu.set_ar(n, value);
        }
        prop_assert!(cpu.write_sr(sr::VECBASE, CODE));
        prop_assert!(cpu.write_sr(sr::PS, ps));
        prop_assert!(cpu.write_sr(sr::INTENABLE, registers[1]));
        cpu.set_pc(CODE + start);
        let budget = 20_000;
        let stop = cpu.run(&mut bus, budget);
        prop_assert!(cpu.cycles() <= budget);
        if stop == Stop::Budget {
            prop_assert_eq!(cpu.cycles(), budget);
        }
        prop_assert!(cpu.recent_pcs().len() <= 32);
    }
}
