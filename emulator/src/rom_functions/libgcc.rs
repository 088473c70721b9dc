//! The integer helpers of libgcc that the ESP8266 toolchain leaves to the ROM (the LX106 has no
//! divide instructions and no 32×32→64 multiply). Arguments and results follow the CALL0 ABI:
//! 32-bit values in a2, a3; 64-bit values in register pairs, low word first (a2:a3, a4:a5).
//!
//! Division by zero: GCC's libgcc for Xtensa (`lib1funcs.S`) executes an illegal instruction
//! followed by the marker "DIV0", so the chip takes an IllegalInstruction exception (EXCCAUSE 0)
//! inside the helper. The virtual chip raises that exception at the helper's address; with the
//! ROM's vectors and no handler this ends in `Fatal exception (0)`. The ROM's exact bytes are
//! not known to us, so this follows the documented libgcc behaviour. Overflowing signed
//! division (`i32::MIN / -1`) wraps, as the shift-and-subtract code does.

use xtensa_lx106::cause::ILLEGAL_INSTRUCTION;

use super::exceptions::raise_exception;
use super::guest::Fault;
use super::{Call, RomHost, RomOutcome};

fn u64_arg<H: RomHost>(call: &Call<'_, H>, first: usize) -> u64 {
    u64::from(call.arg(first)) | (u64::from(call.arg(first + 1)) << 32)
}

fn divide_by_zero<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    raise_exception(call, ILLEGAL_INSTRUCTION)
}

pub(super) fn udivsi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match call.arg(0).checked_div(call.arg(1)) {
        Some(quotient) => call.return_u32(quotient),
        None => divide_by_zero(call),
    }
}

pub(super) fn umodsi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match call.arg(0).checked_rem(call.arg(1)) {
        Some(remainder) => call.return_u32(remainder),
        None => divide_by_zero(call),
    }
}

pub(super) fn divsi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (dividend, divisor) = (call.arg(0) as i32, call.arg(1) as i32);
    if divisor == 0 {
        return divide_by_zero(call);
    }
    call.return_u32(dividend.wrapping_div(divisor) as u32)
}

pub(super) fn muldi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let product = u64_arg(call, 0).wrapping_mul(u64_arg(call, 2));
    call.return_u64(product)
}

pub(super) fn udivdi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match u64_arg(call, 0).checked_div(u64_arg(call, 2)) {
        Some(quotient) => call.return_u64(quotient),
        None => divide_by_zero(call),
    }
}

pub(super) fn umoddi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match u64_arg(call, 0).checked_rem(u64_arg(call, 2)) {
        Some(remainder) => call.return_u64(remainder),
        None => divide_by_zero(call),
    }
}

pub(super) fn divdi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (dividend, divisor) = (u64_arg(call, 0) as i64, u64_arg(call, 2) as i64);
    if divisor == 0 {
        return divide_by_zero(call);
    }
    call.return_u64(dividend.wrapping_div(divisor) as u64)
}

pub(super) fn umulsidi3<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let product = u64::from(call.arg(0)) * u64::from(call.arg(1));
    call.return_u64(product)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use xtensa_lx106::sr;

    use super::super::test_host::{Rig, RETURN_ADDRESS};
    use super::super::{address_of, RomOutcome};

    fn run32(name: &str, a: u32, b: u32) -> u32 {
        Rig::new().call_ok(name, &[a, b])
    }

    fn run64(name: &str, a: u64, b: u64) -> u64 {
        let mut rig = Rig::new();
        let low = rig.call_ok(
            name,
            &[a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32],
        );
        u64::from(low) | (u64::from(rig.cpu.ar(3)) << 32)
    }

    fn umulsidi3(a: u32, b: u32) -> u64 {
        let mut rig = Rig::new();
        let low = rig.call_ok("__umulsidi3", &[a, b]);
        u64::from(low) | (u64::from(rig.cpu.ar(3)) << 32)
    }

    #[test]
    fn signed_division_truncates_toward_zero() {
        assert_eq!(run32("__divsi3", 7, 2), 3);
        assert_eq!(run32("__divsi3", (-7i32) as u32, 2) as i32, -3);
        assert_eq!(run32("__divsi3", 7, (-2i32) as u32) as i32, -3);
        assert_eq!(run32("__divsi3", (-7i32) as u32, (-2i32) as u32), 3);
        assert_eq!(
            run32("__divsi3", i32::MIN as u32, u32::MAX),
            i32::MIN as u32
        );
        assert_eq!(run64("__divdi3", (-7i64) as u64, 2) as i64, -3);
        assert_eq!(run64("__divdi3", 7, (-2i64) as u64) as i64, -3);
        assert_eq!(
            run64("__divdi3", i64::MIN as u64, u64::MAX),
            i64::MIN as u64
        );
    }

    #[test]
    fn unsigned_helpers() {
        assert_eq!(run32("__udivsi3", 100, 7), 14);
        assert_eq!(run32("__udivsi3", u32::MAX, 1), u32::MAX);
        assert_eq!(run32("__umodsi3", 100, 7), 2);
        assert_eq!(umulsidi3(u32::MAX, u32::MAX), 0xFFFF_FFFE_0000_0001);
        assert_eq!(run64("__udivdi3", u64::MAX, 3), u64::MAX / 3);
        assert_eq!(run64("__umoddi3", u64::MAX, 10), 5);
    }

    #[test]
    fn division_by_zero_raises_illegal_instruction_at_the_helper() {
        for name in [
            "__udivsi3",
            "__umodsi3",
            "__divsi3",
            "__udivdi3",
            "__umoddi3",
            "__divdi3",
        ] {
            let mut rig = Rig::new();
            assert_eq!(
                rig.call(name, &[5, 0, 0, 0]),
                RomOutcome::Returned,
                "{name}"
            );
            let helper = address_of(name).unwrap();
            assert_eq!(rig.cpu.read_sr(sr::EPC1), Some(helper));
            assert_eq!(rig.cpu.read_sr(sr::EXCCAUSE), Some(0));
            assert_eq!(
                Some(rig.cpu.pc()),
                address_of("_UserExceptionVector"),
                "user exception vector"
            );
            assert_ne!(rig.cpu.pc(), RETURN_ADDRESS);
            assert_eq!(rig.cpu.read_sr(sr::PS).unwrap() & 0x10, 0x10, "PS.EXCM set");
            // With the ROM's vectors and no handler the chip reports a fatal exception.
            let outcome = rig.resume();
            let RomOutcome::Halted { reason } = outcome else {
                panic!("{outcome:?}")
            };
            assert!(reason.starts_with("Fatal exception (0)"), "{reason}");
        }
    }

    proptest! {
        #[test]
        fn helpers_match_rust_arithmetic(a in any::<u64>(), b in any::<u64>(), x in any::<u32>(), y in 1..=u32::MAX) {
            prop_assert_eq!(run64("__muldi3", a, b), a.wrapping_mul(b));
            prop_assert_eq!(umulsidi3(x, y), u64::from(x) * u64::from(y));
            if b != 0 {
                prop_assert_eq!(run64("__udivdi3", a, b), a / b);
                prop_assert_eq!(run64("__umoddi3", a, b), a % b);
                prop_assert_eq!(run64("__divdi3", a, b) as i64, (a as i64).wrapping_div(b as i64));
            }
            prop_assert_eq!(run32("__udivsi3", x, y), x / y);
            prop_assert_eq!(run32("__umodsi3", x, y), x % y);
            prop_assert_eq!(run32("__divsi3", x, y) as i32, (x as i32).wrapping_div(y as i32));
        }
    }
}
