//! Instruction semantics, one class at a time, on programs assembled by the lx106 binutils.

use crate::sr;
use crate::test_support::{run_program, run_with, DATA};

#[test]
fn add_sub_and_the_scaled_forms() {
    let m = run_with(
        "
        add a4, a2, a3
        sub a5, a2, a3
        addx2 a6, a2, a3
        addx4 a7, a2, a3
        addx8 a8, a2, a3
        subx2 a9, a2, a3
        subx4 a10, a2, a3
        subx8 a11, a2, a3
        add.n a12, a2, a3
        ",
        &[(2, 0x8000_0005), (3, 7)],
    );
    assert_eq!(m.ar(4), 0x8000_000C);
    assert_eq!(m.ar(5), 0x7FFF_FFFE);
    assert_eq!(m.ar(6), 0x0000_0011);
    assert_eq!(m.ar(7), 0x0000_001B);
    assert_eq!(m.ar(8), 0x0000_002F);
    assert_eq!(m.ar(9), 0x0000_0003);
    assert_eq!(m.ar(10), 0x0000_000D);
    assert_eq!(m.ar(11), 0x0000_0021);
    assert_eq!(m.ar(12), 0x8000_000C);
}

#[test]
fn logic_neg_abs() {
    let m = run_with(
        "
        and a4, a2, a3
        or a5, a2, a3
        xor a6, a2, a3
        neg a7, a2
        abs a8, a2
        abs a9, a3
        abs a10, a11
        neg a12, a11
        ",
        &[(2, 0xF0F0_1234), (3, 0x0FF0_00FF), (11, 0x8000_0000)],
    );
    assert_eq!(m.ar(4), 0x00F0_0034);
    assert_eq!(m.ar(5), 0xFFF0_12FF);
    assert_eq!(m.ar(6), 0xFF00_12CB);
    assert_eq!(m.ar(7), 0x0F0F_EDCC);
    assert_eq!(m.ar(8), 0x0F0F_EDCC);
    assert_eq!(m.ar(9), 0x0FF0_00FF);
    assert_eq!(
        m.ar(10),
        0x8000_0000,
        "ABS of the most negative value wraps"
    );
    assert_eq!(m.ar(12), 0x8000_0000);
}

#[test]
fn multiplies_use_the_right_halves_and_signs() {
    let m = run_with(
        "
        mul16u a4, a2, a3
        mul16s a5, a2, a3
        mul16s a6, a7, a7
        mul16u a8, a7, a7
        mull a9, a2, a3
        mul16s a10, a2, a11
        ",
        // a2 = 0x1234_FFFF: the upper half is ignored; as signed 16-bit it is -1.
        &[
            (2, 0x1234_FFFF),
            (3, 0xABCD_0003),
            (7, 0x0000_8000),
            (11, 0x7FFF),
        ],
    );
    assert_eq!(m.ar(4), 0xFFFF * 3);
    assert_eq!(m.ar(5), (-3i32) as u32);
    assert_eq!(m.ar(6), 0x4000_0000, "-32768 * -32768");
    assert_eq!(m.ar(8), 0x4000_0000);
    assert_eq!(m.ar(9), 0x1234_FFFFu32.wrapping_mul(0xABCD_0003));
    assert_eq!(m.ar(10), (-0x7FFFi32) as u32);
}

#[test]
fn conditional_moves() {
    let m = run_with(
        "
        mov.n a4, a9
        mov.n a5, a9
        mov.n a6, a9
        mov.n a7, a9
        moveqz a4, a2, a10
        movnez a5, a2, a10
        movltz a6, a2, a11
        movgez a7, a2, a11
        mov.n a8, a9
        movgez a8, a2, a10
        ",
        &[(2, 42), (9, 1), (10, 0), (11, 0xFFFF_FFFF)],
    );
    assert_eq!(m.ar(4), 42, "MOVEQZ with at = 0 moves");
    assert_eq!(m.ar(5), 1, "MOVNEZ with at = 0 keeps");
    assert_eq!(m.ar(6), 42, "MOVLTZ with at < 0 moves");
    assert_eq!(m.ar(7), 1, "MOVGEZ with at < 0 keeps");
    assert_eq!(m.ar(8), 42, "MOVGEZ with at = 0 moves");
}

#[test]
fn nsa_and_nsau_edge_cases() {
    let cases: [(u32, u32, u32); 8] = [
        (0, 31, 32),
        (0xFFFF_FFFF, 31, 0),
        (1, 30, 31),
        (0x8000_0000, 0, 0),
        (0x7FFF_FFFF, 0, 1),
        (0x4000_0000, 0, 1),
        (0xC000_0000, 1, 0),
        (0xFFFF_0000, 15, 0),
    ];
    for (value, nsa, nsau) in cases {
        let m = run_with("nsa a3, a2\n nsau a4, a2", &[(2, value)]);
        assert_eq!(m.ar(3), nsa, "NSA {value:#x}");
        assert_eq!(m.ar(4), nsau, "NSAU {value:#x}");
    }
}

#[test]
fn shift_amount_setters() {
    let m = run_with(
        "
        ssr a2
        rsr.sar a10
        ssl a2
        rsr.sar a11
        ssl a3
        rsr.sar a12
        ssa8l a4
        rsr.sar a13
        ssa8b a4
        rsr.sar a14
        ssai 31
        rsr.sar a15
        ",
        // SSR/SSL use the low 5 bits; SSA8L/SSA8B the low 2.
        &[(2, 0x25), (3, 0), (4, 0x7)],
    );
    assert_eq!(m.ar(10), 5);
    assert_eq!(m.ar(11), 27);
    assert_eq!(m.ar(12), 32, "SSL 0 makes SAR 32: SLL then shifts by 0");
    assert_eq!(m.ar(13), 24);
    assert_eq!(m.ar(14), 8);
    assert_eq!(m.ar(15), 31);
}

#[test]
fn sar_shifts() {
    let m = run_with(
        "
        ssl a5
        sll a6, a2
        ssr a5
        srl a7, a2
        sra a8, a2
        ssai 8
        src a9, a3, a2
        ssl a4
        sll a10, a2
        ssr a4
        srl a11, a2
        sra a12, a2
        src a13, a3, a2
        ",
        &[(2, 0x8765_4321), (3, 0x1122_3344), (4, 0), (5, 4)],
    );
    assert_eq!(m.ar(6), 0x7654_3210);
    assert_eq!(m.ar(7), 0x0876_5432);
    assert_eq!(m.ar(8), 0xF876_5432);
    assert_eq!(m.ar(9), 0x4487_6543, "SRC funnels a3:a2 right by 8");
    assert_eq!(m.ar(10), 0x8765_4321, "SLL by 0 (SAR = 32)");
    assert_eq!(m.ar(11), 0x8765_4321, "SRL by 0");
    assert_eq!(m.ar(12), 0x8765_4321);
    assert_eq!(m.ar(13), 0x8765_4321, "SRC by 0 gives the low word");
}

#[test]
fn sar_of_32_shifts_everything_out() {
    let m = run_with(
        "
        wsr.sar a4
        srl a6, a2
        sra a7, a2
        src a8, a3, a2
        sll a9, a2
        ",
        &[(2, 0x8765_4321), (3, 0x1122_3344), (4, 32)],
    );
    assert_eq!(m.ar(6), 0);
    assert_eq!(m.ar(7), 0xFFFF_FFFF, "SRA by 32 fills with the sign");
    assert_eq!(m.ar(8), 0x1122_3344, "SRC by 32 gives the high word");
    assert_eq!(m.ar(9), 0x8765_4321, "SLL with SAR = 32 shifts by 0");
}

#[test]
fn immediate_shifts_and_extui() {
    let m = run_with(
        "
        slli a4, a2, 1
        slli a5, a2, 31
        srai a6, a2, 31
        srai a7, a2, 4
        srli a8, a2, 15
        extui a9, a2, 4, 8
        extui a10, a2, 16, 16
        extui a11, a2, 31, 1
        ",
        &[(2, 0x8765_4321)],
    );
    assert_eq!(m.ar(4), 0x0ECA_8642);
    assert_eq!(m.ar(5), 0x8000_0000);
    assert_eq!(m.ar(6), 0xFFFF_FFFF);
    assert_eq!(m.ar(7), 0xF876_5432);
    assert_eq!(m.ar(8), 0x0001_0ECA);
    assert_eq!(m.ar(9), 0x32);
    assert_eq!(m.ar(10), 0x8765);
    assert_eq!(m.ar(11), 1);
}

#[test]
fn loads_and_stores() {
    let m = run_with(
        "
        s32i a3, a2, 0
        l8ui a4, a2, 0
        l8ui a5, a2, 3
        l16ui a6, a2, 2
        l16si a7, a2, 2
        l16si a8, a2, 0
        s8i a3, a2, 5
        s16i a3, a2, 10
        l32i a9, a2, 4
        l32i a10, a2, 8
        s32i.n a3, a2, 60
        l32i.n a11, a2, 60
        s32i a3, a2, 1020
        l32i a12, a2, 1020
        l16ui a13, a2, 510
        l8ui a14, a2, 255
        ",
        &[(2, DATA), (3, 0x8765_4321)],
    );
    assert_eq!(m.ar(4), 0x21);
    assert_eq!(m.ar(5), 0x87);
    assert_eq!(m.ar(6), 0x8765);
    assert_eq!(m.ar(7), 0xFFFF_8765);
    assert_eq!(m.ar(8), 0x4321);
    assert_eq!(m.ar(9), 0x0000_2100, "S8I stored the low byte at offset 5");
    assert_eq!(
        m.ar(10),
        0x4321_0000,
        "S16I stored the low half at offset 10"
    );
    assert_eq!(m.ar(11), 0x8765_4321);
    assert_eq!(m.ar(12), 0x8765_4321);
    assert_eq!(m.ar(13), 0);
    assert_eq!(m.ar(14), 0);
}

#[test]
fn addi_addmi_movi() {
    let m = run_with(
        "
        addi a4, a2, -128
        addi a5, a2, 127
        addmi a6, a2, -32768
        addmi a7, a2, 32512
        movi a8, -2048
        movi a9, 2047
        addi.n a10, a2, -1
        addi.n a11, a2, 15
        movi.n a12, -32
        movi.n a13, 95
        ",
        &[(2, 1000)],
    );
    assert_eq!(m.ar(4), 872);
    assert_eq!(m.ar(5), 1127);
    assert_eq!(m.ar(6), (1000i32 - 32768) as u32);
    assert_eq!(m.ar(7), 33512);
    assert_eq!(m.ar(8), (-2048i32) as u32);
    assert_eq!(m.ar(9), 2047);
    assert_eq!(m.ar(10), 999);
    assert_eq!(m.ar(11), 1015);
    assert_eq!(m.ar(12), (-32i32) as u32);
    assert_eq!(m.ar(13), 95);
}

#[test]
fn l32r_is_relative_to_the_pc_plus_3_rounded_down() {
    // The loads sit at every alignment: the base is (PC + 3) & !3 each time.
    let m = run_program(
        "
        j 1f
        .align 4
lit_a:  .word 0x11111111
lit_b:  .word 0x22222222
1:      l32r a2, lit_a
        nop.n
        l32r a3, lit_b
        nop.n
        nop.n
        l32r a4, lit_a
        nop.n
        l32r a5, lit_b
        ",
    );
    assert_eq!(m.ar(2), 0x1111_1111);
    assert_eq!(m.ar(3), 0x2222_2222);
    assert_eq!(m.ar(4), 0x1111_1111);
    assert_eq!(m.ar(5), 0x2222_2222);
}

#[test]
fn l32r_uses_litbase_when_enabled() {
    // With LITBASE bit 0 set the literal lies at (LITBASE & !0xFFF) + the (negative) offset:
    // objdump's target minus the PC-relative base plus LITBASE's base.
    let m = run_with(
        "
        wsr.litbase a2
        l32r a3, _start
        movi a4, 0
        wsr.litbase a4
        ",
        &[(2, DATA + 0x2000 + 1)],
    );
    // `_start` is 4 bytes back from the L32R's base (CODE + 4): offset -4.
    let _ = m;
    let mut machine = crate::test_support::Machine::new(
        "
        wsr.litbase a2
        l32r a3, _start
        ",
    );
    machine.cpu.set_ar(2, DATA + 0x2000 + 1);
    machine
        .bus
        .load(DATA + 0x2000 - 4, &0xCAFE_F00Du32.to_le_bytes());
    assert_eq!(machine.run(2), crate::Stop::Budget);
    assert_eq!(machine.ar(3), 0xCAFE_F00D);
    assert_eq!(machine.sr(sr::LITBASE), DATA + 0x2000 + 1);
}

#[test]
fn branches_compare_as_the_isa_says() {
    // Each branch sets one bit of a8 when taken; the expected mask lists the taken ones.
    let m = run_with(
        "
        movi a8, 0
        beq a2, a2, 1f
        j 2f
1:      addi a8, a8, 1
2:      bne a2, a3, 1f
        j 2f
1:      addi a8, a8, 2
2:      blt a3, a2, 1f
        j 2f
1:      addi a8, a8, 4
2:      bltu a3, a2, 1f
        j 2f
1:      addi a8, a8, 8
2:      bge a2, a3, 1f
        j 2f
1:      addi a8, a8, 16
2:      bgeu a2, a3, 1f
        j 2f
1:      addi a8, a8, 32
2:      bany a2, a4, 1f
        j 2f
1:      addi a8, a8, 64
2:      bnone a2, a4, 1f
        j 2f
1:      addi a8, a8, 64
        addi a8, a8, 64
2:      ball a3, a5, 1f
        j 2f
1:      addmi a8, a8, 256
2:      bnall a3, a5, 1f
        j 2f
1:      addmi a8, a8, 512
2:      bbs a3, a6, 1f
        j 2f
1:      addmi a8, a8, 1024
2:      bbc a3, a6, 1f
        j 2f
1:      addmi a8, a8, 2048
2:      bbsi a3, 31, 1f
        j 2f
1:      addmi a8, a8, 4096
2:      bbci a3, 0, 1f
        j 2f
1:      addmi a8, a8, 8192
2:
        ",
        // a2 = 5, a3 = -1 (as signed less than a2, as unsigned greater), a4 = 2, a5 = 0x8001,
        // a6 = 31.
        &[(2, 5), (3, 0xFFFF_FFFF), (4, 2), (5, 0x8001), (6, 31)],
    );
    let taken = 1 | 2 | 4 | 16 | 128 | 256 | 1024 | 4096;
    assert_eq!(m.ar(8), taken, "taken-branch mask {:#b}", m.ar(8));
}

#[test]
fn immediate_branches_use_the_b4const_tables() {
    let m = run_with(
        "
        movi a8, 0
        beqi a2, -1, 1f
        j 2f
1:      addi a8, a8, 1
2:      bnei a3, 256, 1f
        j 2f
1:      addi a8, a8, 2
2:      blti a2, 1, 1f
        j 2f
1:      addi a8, a8, 4
2:      bgei a3, 12, 1f
        j 2f
1:      addi a8, a8, 8
2:      bltui a4, 32768, 1f
        j 2f
1:      addi a8, a8, 16
2:      bgeui a4, 65536, 1f
        j 2f
1:      addi a8, a8, 32
2:      beqz a5, 1f
        j 2f
1:      addi a8, a8, 64
2:      bnez a2, 1f
        j 2f
1:      addmi a8, a8, 256
2:      bltz a2, 1f
        j 2f
1:      addmi a8, a8, 512
2:      bgez a5, 1f
        j 2f
1:      addmi a8, a8, 1024
2:      beqz.n a5, 1f
        j 2f
1:      addmi a8, a8, 2048
2:      bnez.n a5, 1f
        j 2f
1:      addmi a8, a8, 4096
2:
        ",
        &[(2, 0xFFFF_FFFF), (3, 256), (4, 40000), (5, 0)],
    );
    let taken = 1 | 4 | 8 | 64 | 256 | 512 | 1024 | 2048;
    assert_eq!(m.ar(8), taken, "taken-branch mask {:#b}", m.ar(8));
}

#[test]
fn calls_and_returns() {
    // L32R literals must lie below the loads, so they come first.
    let m = run_program(
        "
        j 1f
        .align 4
fn_address:
        .word add_ten
jump_target:
        .word 8f
        .align 4
add_one:
        addi a2, a2, 1
        mov.n a13, a0
        ret
        .align 4
add_ten:
        addi a2, a2, 10
        ret.n
1:      movi a2, 0
        call0 add_one
after_call:
        call0 add_one
        l32r a3, fn_address
        callx0 a3
after_callx:
        mov.n a12, a0
        movi a5, 0
        l32r a4, jump_target
        jx a4
        movi a5, 1
8:
        ",
    );
    assert_eq!(m.ar(2), 12);
    assert_eq!(
        m.ar(13),
        m.symbol("after_call") + 3,
        "the second CALL0 returns after itself"
    );
    assert_eq!(m.ar(12), m.symbol("after_callx"));
    assert_eq!(m.ar(5), 0, "JX jumped over the MOVI");
}

#[test]
fn callx0_through_a0_reads_the_target_before_writing_the_return_address() {
    let m = run_program(
        "
        j 1f
        .align 4
target: .word there
there:  mov.n a2, a0
        j 9f
1:      l32r a0, target
        callx0 a0
back:   nop
9:
        ",
    );
    assert_eq!(m.ar(2), m.symbol("back"));
}

#[test]
fn special_registers_read_write_and_swap() {
    let m = run_with(
        "
        wsr.excsave1 a2
        xsr.excsave1 a3
        rsr.excsave1 a4
        wsr.epc1 a2
        rsr.epc1 a5
        rsr.prid a6
        rsr.vecbase a7
        wsr.sar a8
        rsr.sar a9
        rsil a10, 3
        rsr.ps a11
        ",
        &[(2, 0x1234_5678), (3, 0x9ABC_DEF0), (8, 0xFF)],
    );
    assert_eq!(m.ar(3), 0x1234_5678, "XSR returns the old value");
    assert_eq!(m.ar(4), 0x9ABC_DEF0, "XSR wrote the register");
    assert_eq!(m.ar(5), 0x1234_5678);
    assert_eq!(m.ar(6), crate::cpu::PRID_VALUE);
    assert_eq!(m.ar(7), 0x4000_0000);
    assert_eq!(m.ar(9), 0x3F, "SAR keeps 6 bits");
    assert_eq!(m.ar(10), 0, "RSIL returns the old PS");
    assert_eq!(m.ar(11), 3);
}

#[test]
fn sync_and_no_op_instructions_do_nothing() {
    let m = run_with(
        "
        isync
        rsync
        esync
        dsync
        excw
        memw
        extw
        nop
        nop.n
        iitlb a2
        idtlb a2
        ",
        &[(2, 7)],
    );
    assert_eq!(m.ar(2), 7);
    assert_eq!(m.cpu.instructions_retired(), 12);
}

#[test]
fn region_protection_attributes_are_kept() {
    let m = run_with(
        "
        witlb a3, a2
        wdtlb a4, a2
        ritlb1 a5, a2
        rdtlb1 a6, a2
        ritlb0 a7, a2
        rdtlb1 a8, a9
        ",
        &[(2, 0x4010_1234), (3, 0xF), (4, 4), (9, 0x6000_0000)],
    );
    assert_eq!(m.ar(5), 0x4000_000F);
    assert_eq!(m.ar(6), 0x4000_0004);
    assert_eq!(m.ar(7), 0x4000_0000);
    assert_eq!(
        m.ar(8),
        0x6000_0002,
        "other regions keep the reset attribute"
    );
}
