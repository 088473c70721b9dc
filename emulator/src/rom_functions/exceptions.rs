//! Exceptions and interrupts as the ROM's xtos layer handles them while VECBASE is still the
//! ROM's (0x4000_0000), and the small xtos/xthal/ets functions around them.
//!
//! At the user (or kernel) exception vector the ROM saves the interrupted context in a frame on
//! the interrupted stack — 0x100 bytes are reserved, the frame (`struct __exception_frame`:
//! epc, ps, sar, vpri, a0, a2..a15, exccause; 0x50 bytes) at its bottom — and calls C code with
//! a1 at the frame:
//! - EXCCAUSE 4 (level-1 interrupt): every interrupt that is pending, enabled and of level 1
//!   gets its attached handler called as `handler(arg, frame)` with PS.INTLEVEL 1, after
//!   INTCLEAR is written for it (which clears edge and software interrupts only), one after
//!   the other;
//! - another cause with a handler registered through `_xtos_set_exception_handler`:
//!   `handler(frame, cause)` with PS.EXCM cleared;
//! - any other cause: the ROM's default handler, which on boards prints
//!   `Fatal exception (N): ` and `epc1=0x…, epc2=0x…, epc3=0x…, excvaddr=0x…, depc=0x…` (logs in
//!   cnlohr/nosdk8266#2 and beckdac/ESP8266-transparent-bridge#59, both without the SDK's
//!   handlers) and repeats it while the faulting instruction faults again. The virtual chip prints
//!   the two lines once on UART0 and halts.
//!
//! Handlers return to `_xtos_return_from_exc`, where the next pending interrupt is dispatched or
//! the context is reloaded from the frame (handlers may change it, e.g. to skip an instruction)
//! and the ROM returns as RFE does: PC = the frame's epc, PS.EXCM cleared. The debug, NMI and
//! double exception vectors halt the virtual chip.

use xtensa_lx106::cause::LEVEL1_INTERRUPT;
use xtensa_lx106::sr;

use super::guest::{load32, store32, Fault};
use super::{Call, RomHost, RomOutcome};
use esp_protocol::exceptions::cause_name;
use esp_protocol::rom_functions::{
    XTOS_RETURN_FROM_EXC, XTOS_UNHANDLED_EXCEPTION, XTOS_UNHANDLED_INTERRUPT,
};

/// Interrupts the LX106 of the ESP8266 has (0..=14; 14 is the NMI).
pub(super) const INTERRUPT_COUNT: usize = 15;
/// EXCCAUSE values the xtos handler table covers.
pub(super) const EXCEPTION_CAUSES: usize = 64;
/// Interrupts of level 1 (all but the NMI).
const LEVEL1_INTERRUPTS: u32 = 0x3FFF;

/// PS fields.
const PS_INTLEVEL: u32 = 0xF;
const PS_EXCM: u32 = 1 << 4;
const PS_UM: u32 = 1 << 5;

/// VECBASE offsets of the vectors the ROM sets up.
const KERNEL_VECTOR: u32 = 0x30;
const USER_VECTOR: u32 = 0x50;
const DOUBLE_VECTOR: u32 = 0x70;

/// Stack the vector reserves below the interrupted a1; the frame sits at its bottom.
const FRAME_RESERVE: u32 = 0x100;
/// Frame offsets (`UEXC_*`).
const FRAME_PC: u32 = 0x00;
const FRAME_PS: u32 = 0x04;
const FRAME_SAR: u32 = 0x08;
const FRAME_VPRI: u32 = 0x0C;
const FRAME_A0: u32 = 0x10;
/// a2..a15 follow a0 (a1 is not saved: it is the frame address plus the reserve).
const FRAME_A2: u32 = 0x14;
const FRAME_CAUSE: u32 = 0x4C;

/// An exception frame whose guest handlers are running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExceptionFrame {
    /// Guest address of the saved context.
    address: u32,
    /// PS when the exception was taken.
    ps: u32,
    /// Level-1 interrupts still to dispatch.
    remaining_interrupts: u32,
}

pub(super) fn default_interrupt_handlers() -> [(u32, u32); INTERRUPT_COUNT] {
    std::array::from_fn(|number| (XTOS_UNHANDLED_INTERRUPT, number as u32))
}

pub(super) fn default_exception_handlers() -> [u32; EXCEPTION_CAUSES] {
    [XTOS_UNHANDLED_EXCEPTION; EXCEPTION_CAUSES]
}

fn sr_or_zero<H: RomHost>(call: &Call<'_, H>, register: u8) -> u32 {
    call.cpu.read_sr(register).unwrap_or(0)
}

/// Takes exception `cause` at the current PC as the core does: EPC1, EXCCAUSE, PS.EXCM and the
/// user or kernel vector; a double exception if PS.EXCM is already set.
pub(super) fn raise_exception<H: RomHost>(
    call: &mut Call<'_, H>,
    cause: u32,
) -> Result<RomOutcome, Fault> {
    let pc = call.cpu.pc();
    let ps = sr_or_zero(call, sr::PS);
    let vecbase = sr_or_zero(call, sr::VECBASE);
    call.cpu.write_sr(sr::EXCCAUSE, cause);
    if ps & PS_EXCM != 0 {
        call.cpu.write_sr(sr::DEPC, pc);
        call.cpu.set_pc(vecbase.wrapping_add(DOUBLE_VECTOR));
    } else {
        call.cpu.write_sr(sr::EPC1, pc);
        call.cpu.write_sr(sr::PS, ps | PS_EXCM);
        let vector = if ps & PS_UM != 0 {
            USER_VECTOR
        } else {
            KERNEL_VECTOR
        };
        call.cpu.set_pc(vecbase.wrapping_add(vector));
    }
    Ok(RomOutcome::Returned)
}

/// The ROM's default handler: prints what boards print and stops the virtual chip.
fn fatal<H: RomHost>(call: &mut Call<'_, H>, cause: u32) -> Result<RomOutcome, Fault> {
    let registers = format!(
        "epc1=0x{:08x}, epc2=0x{:08x}, epc3=0x{:08x}, excvaddr=0x{:08x}, depc=0x{:08x}",
        sr_or_zero(call, sr::EPC1),
        sr_or_zero(call, sr::EPC2),
        sr_or_zero(call, sr::EPC3),
        sr_or_zero(call, sr::EXCVADDR),
        sr_or_zero(call, sr::DEPC),
    );
    let text = format!("Fatal exception ({cause}): \r\n{registers}\r\n");
    // Best effort: what does not fit in the TX FIFO is lost, as the chip stops here.
    for byte in text.bytes() {
        if !call.host.uart_tx(byte) {
            break;
        }
    }
    Ok(RomOutcome::Halted {
        reason: format!(
            "Fatal exception ({cause}) {}Cause: {registers}",
            cause_name(cause)
        ),
    })
}

/// The user and kernel exception vectors.
pub(super) fn exception_vector<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let cause = sr_or_zero(call, sr::EXCCAUSE);
    if cause == LEVEL1_INTERRUPT {
        return level1_interrupt(call);
    }
    let handler = call
        .state
        .exception_handlers
        .get(cause as usize)
        .copied()
        .unwrap_or(XTOS_UNHANDLED_EXCEPTION);
    if handler == XTOS_UNHANDLED_EXCEPTION {
        return fatal(call, cause);
    }
    let frame = push_frame(call, cause, 0)?;
    let ps = sr_or_zero(call, sr::PS);
    call.cpu.write_sr(sr::PS, ps & !PS_EXCM);
    call_handler(call, handler, frame, (frame, cause))
}

fn level1_interrupt<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let pending =
        sr_or_zero(call, sr::INTERRUPT) & sr_or_zero(call, sr::INTENABLE) & LEVEL1_INTERRUPTS;
    if pending == 0 {
        // Gone before the ROM looked: return as RFE does.
        let ps = sr_or_zero(call, sr::PS);
        call.cpu.write_sr(sr::PS, ps & !PS_EXCM);
        call.cpu.set_pc(sr_or_zero(call, sr::EPC1));
        return Ok(RomOutcome::Returned);
    }
    push_frame(call, LEVEL1_INTERRUPT, pending)?;
    dispatch_next_interrupt(call)
}

/// Saves the interrupted context in a frame below a1 and records it.
fn push_frame<H: RomHost>(
    call: &mut Call<'_, H>,
    cause: u32,
    remaining_interrupts: u32,
) -> Result<u32, Fault> {
    let address = call.cpu.ar(1).wrapping_sub(FRAME_RESERVE);
    let ps = sr_or_zero(call, sr::PS);
    let words = [
        (FRAME_PC, sr_or_zero(call, sr::EPC1)),
        (FRAME_PS, ps),
        (FRAME_SAR, sr_or_zero(call, sr::SAR)),
        (FRAME_VPRI, 0),
        (FRAME_A0, call.cpu.ar(0)),
        (FRAME_CAUSE, cause),
    ];
    for (offset, value) in words {
        store32(call.host, address.wrapping_add(offset), value)?;
    }
    for register in 2..16 {
        let offset = FRAME_A2 + 4 * (register as u32 - 2);
        store32(
            call.host,
            address.wrapping_add(offset),
            call.cpu.ar(register),
        )?;
    }
    call.state.frames.push(ExceptionFrame {
        address,
        ps,
        remaining_interrupts,
    });
    Ok(address)
}

/// Calls `handler(first, second)` with a1 at the frame, returning to `_xtos_return_from_exc`.
fn call_handler<H: RomHost>(
    call: &mut Call<'_, H>,
    handler: u32,
    frame: u32,
    (first, second): (u32, u32),
) -> Result<RomOutcome, Fault> {
    call.cpu.set_ar(0, XTOS_RETURN_FROM_EXC);
    call.cpu.set_ar(1, frame);
    call.cpu.set_ar(2, first);
    call.cpu.set_ar(3, second);
    call.cpu.set_pc(handler);
    Ok(RomOutcome::Returned)
}

fn dispatch_next_interrupt<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let Some(frame) = call.state.frames.last_mut() else {
        return Ok(no_frame());
    };
    let number = frame.remaining_interrupts.trailing_zeros();
    frame.remaining_interrupts &= !(1 << number);
    let (address, ps) = (frame.address, frame.ps);
    let (handler, arg) = call.state.interrupt_handlers[number as usize];
    call.cpu.write_sr(sr::INTCLEAR, 1 << number);
    call.cpu
        .write_sr(sr::PS, (ps & !(PS_EXCM | PS_INTLEVEL)) | 1);
    // Interrupt handlers take (arg, frame).
    call_handler(call, handler, address, (arg, address))
}

fn no_frame() -> RomOutcome {
    RomOutcome::Halted {
        reason: "_xtos_return_from_exc reached with no exception in progress".to_string(),
    }
}

/// `_xtos_return_from_exc`: the next interrupt, or back to the interrupted code.
pub(super) fn return_from_exception<H: RomHost>(
    call: &mut Call<'_, H>,
) -> Result<RomOutcome, Fault> {
    let Some(frame) = call.state.frames.last() else {
        return Ok(no_frame());
    };
    if frame.remaining_interrupts != 0 {
        return dispatch_next_interrupt(call);
    }
    let address = frame.address;
    let word =
        |call: &mut Call<'_, H>, offset: u32| load32(call.host, address.wrapping_add(offset));
    let pc = word(call, FRAME_PC)?;
    let ps = word(call, FRAME_PS)?;
    let sar = word(call, FRAME_SAR)?;
    let a0 = word(call, FRAME_A0)?;
    let mut registers = [0u32; 14];
    for (index, value) in (0u32..).zip(registers.iter_mut()) {
        *value = word(call, FRAME_A2 + 4 * index)?;
    }
    call.state.frames.pop();
    call.cpu.set_ar(0, a0);
    call.cpu.set_ar(1, address.wrapping_add(FRAME_RESERVE));
    for (register, value) in (2..16).zip(registers) {
        call.cpu.set_ar(register, value);
    }
    call.cpu.write_sr(sr::SAR, sar);
    call.cpu.write_sr(sr::EPC1, pc);
    call.cpu.write_sr(sr::PS, ps & !PS_EXCM);
    call.cpu.set_pc(pc);
    Ok(RomOutcome::Returned)
}

/// `_xtos_unhandled_exception`, reached by a jump or a call.
pub(super) fn unhandled_exception<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let cause = sr_or_zero(call, sr::EXCCAUSE);
    fatal(call, cause)
}

/// `_xtos_unhandled_interrupt`: the handler of an interrupt nothing was attached to (its
/// argument is the interrupt number).
pub(super) fn unhandled_interrupt<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    Ok(RomOutcome::Halted {
        reason: format!(
            "level-1 interrupt {} is enabled and pending but has no handler (_xtos_unhandled_interrupt)",
            call.arg(0)
        ),
    })
}

pub(super) fn debug_vector<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    Ok(RomOutcome::Halted {
        reason: format!(
            "debug exception (DEBUGCAUSE {:#x}) at {:#010x}: no debugger is attached to the virtual chip",
            sr_or_zero(call, sr::DEBUGCAUSE),
            sr_or_zero(call, sr::EPC2),
        ),
    })
}

pub(super) fn nmi_vector<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    Ok(RomOutcome::Halted {
        reason: format!(
            "NMI at {:#010x}: the ROM's NMI handler is not implemented",
            sr_or_zero(call, sr::EPC3)
        ),
    })
}

pub(super) fn double_vector<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let cause = sr_or_zero(call, sr::EXCCAUSE);
    Ok(RomOutcome::Halted {
        reason: format!(
            "Double exception ({cause} {}Cause): depc=0x{:08x}, excvaddr=0x{:08x}",
            cause_name(cause),
            sr_or_zero(call, sr::DEPC),
            sr_or_zero(call, sr::EXCVADDR),
        ),
    })
}

/// `_xtos_set_exception_handler(cause, fn)`: returns the previous handler, 0 if there was none
/// (or the cause is out of range); fn = 0 restores the default.
pub(super) fn set_exception_handler<H: RomHost>(
    call: &mut Call<'_, H>,
) -> Result<RomOutcome, Fault> {
    let (cause, handler) = (call.arg(0), call.arg(1));
    let Some(slot) = call.state.exception_handlers.get_mut(cause as usize) else {
        return call.return_u32(0);
    };
    let previous = std::mem::replace(
        slot,
        if handler == 0 {
            XTOS_UNHANDLED_EXCEPTION
        } else {
            handler
        },
    );
    call.return_u32(if previous == XTOS_UNHANDLED_EXCEPTION {
        0
    } else {
        previous
    })
}

/// `_xtos_set_interrupt_handler_arg(n, fn, arg)` and `ets_isr_attach(n, fn, arg)` (`arg` given),
/// `_xtos_set_interrupt_handler(n, fn)` (the argument is then n): returns the previous handler,
/// 0 if there was none; fn = 0 detaches.
pub(super) fn set_interrupt_handler<H: RomHost>(
    call: &mut Call<'_, H>,
    arg: Option<u32>,
) -> Result<RomOutcome, Fault> {
    let (number, handler) = (call.arg(0), call.arg(1));
    let Some(slot) = call.state.interrupt_handlers.get_mut(number as usize) else {
        return call.return_u32(0);
    };
    let new = if handler == 0 {
        (XTOS_UNHANDLED_INTERRUPT, number)
    } else {
        (handler, arg.unwrap_or(number))
    };
    let (previous, _) = std::mem::replace(slot, new);
    call.return_u32(if previous == XTOS_UNHANDLED_INTERRUPT {
        0
    } else {
        previous
    })
}

/// `_xtos_ints_on(mask)` (returns the old INTENABLE) and `ets_isr_unmask(mask)`.
pub(super) fn ints_on<H: RomHost>(
    call: &mut Call<'_, H>,
    returns_previous: bool,
) -> Result<RomOutcome, Fault> {
    let previous = sr_or_zero(call, sr::INTENABLE);
    call.cpu.write_sr(sr::INTENABLE, previous | call.arg(0));
    if returns_previous {
        call.return_u32(previous)
    } else {
        call.return_void()
    }
}

/// `_xtos_ints_off(mask)` (returns the old INTENABLE) and `ets_isr_mask(mask)`.
pub(super) fn ints_off<H: RomHost>(
    call: &mut Call<'_, H>,
    returns_previous: bool,
) -> Result<RomOutcome, Fault> {
    let previous = sr_or_zero(call, sr::INTENABLE);
    call.cpu.write_sr(sr::INTENABLE, previous & !call.arg(0));
    if returns_previous {
        call.return_u32(previous)
    } else {
        call.return_void()
    }
}

fn set_ps_intlevel<H: RomHost>(call: &mut Call<'_, H>, level: u32) -> u32 {
    let previous = sr_or_zero(call, sr::PS);
    call.cpu
        .write_sr(sr::PS, (previous & !PS_INTLEVEL) | (level & PS_INTLEVEL));
    previous
}

/// `_xtos_set_intlevel(level)`: returns the previous PS, as RSIL does.
pub(super) fn set_intlevel<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let previous = set_ps_intlevel(call, call.arg(0));
    call.return_u32(previous)
}

/// `ets_intr_lock()`: PS.INTLEVEL 3, as its RSIL does.
pub(super) fn intr_lock<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    set_ps_intlevel(call, 3);
    call.return_void()
}

/// `ets_intr_unlock()`: PS.INTLEVEL 0 whatever it was before the lock, which is why these
/// calls do not nest (esp8266/Arduino#6484 adds nesting around them).
pub(super) fn intr_unlock<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    set_ps_intlevel(call, 0);
    call.return_void()
}

pub(super) fn get_ccount<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let count = sr_or_zero(call, sr::CCOUNT);
    call.return_u32(count)
}

/// `xthal_set_ccompare(n, value)`: the LX106 has CCOMPARE0 only.
pub(super) fn set_ccompare<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    if call.arg(0) == 0 {
        call.cpu.write_sr(sr::CCOMPARE0, call.arg(1));
    }
    call.return_void()
}

pub(super) fn get_ccompare<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let value = if call.arg(0) == 0 {
        sr_or_zero(call, sr::CCOMPARE0)
    } else {
        0
    };
    call.return_u32(value)
}

pub(super) fn get_intread<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let pending = sr_or_zero(call, sr::INTERRUPT);
    call.return_u32(pending)
}

pub(super) fn set_intclear<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.cpu.write_sr(sr::INTCLEAR, call.arg(0));
    call.return_void()
}

#[cfg(test)]
mod tests {
    use xtensa_lx106::{sr, Stop};

    use super::super::test_host::{Rig, RETURN_ADDRESS, STACK_TOP};
    use super::super::RomOutcome;
    use super::{FRAME_CAUSE, FRAME_PC, FRAME_RESERVE};
    use esp_protocol::rom_functions::{address_of, XTOS_RETURN_FROM_EXC, XTOS_UNHANDLED_INTERRUPT};

    const INTERRUPTED_PC: u32 = 0x4010_0100;
    const HANDLER: u32 = 0x4010_2000;
    const OTHER_HANDLER: u32 = 0x4010_3000;
    const UART_INTERRUPT: u32 = esp_protocol::uart::UART_INTERRUPT;
    const SOFTWARE_INTERRUPT: u32 = 7;

    /// Guest code interrupted at INTERRUPTED_PC with recognisable registers.
    fn interrupted_code(rig: &mut Rig) {
        for register in 0..16 {
            rig.cpu.set_ar(register, 0xA000_0000 + register as u32);
        }
        rig.cpu.set_ar(1, STACK_TOP);
        rig.cpu.write_sr(sr::SAR, 13);
        rig.cpu.write_sr(sr::PS, 0x20);
        rig.cpu.set_pc(INTERRUPTED_PC);
    }

    /// Lets the core take what is pending (a zero budget executes nothing).
    fn take_interrupts(rig: &mut Rig) {
        assert_eq!(rig.cpu.run(&mut rig.host, 0), Stop::Budget);
    }

    /// Returns from a guest handler as CALL0 code does, after clobbering a2..a11.
    fn handler_returns(rig: &mut Rig) -> RomOutcome {
        for register in 2..12 {
            rig.cpu.set_ar(register, 0xDEAD_0000 + register as u32);
        }
        rig.cpu.set_pc(rig.cpu.ar(0));
        rig.resume()
    }

    fn assert_context_restored(rig: &Rig) {
        assert_eq!(rig.cpu.pc(), INTERRUPTED_PC);
        for register in (0..16).filter(|&register| register != 1) {
            assert_eq!(
                rig.cpu.ar(register),
                0xA000_0000 + register as u32,
                "a{register}"
            );
        }
        assert_eq!(rig.cpu.ar(1), STACK_TOP);
        assert_eq!(rig.cpu.read_sr(sr::SAR), Some(13));
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x20), "RFE clears EXCM");
        assert!(rig.state.frames.is_empty());
    }

    #[test]
    fn a_level1_interrupt_runs_its_handler_and_returns_to_epc1() {
        let mut rig = Rig::new();
        rig.call_ok("ets_isr_attach", &[UART_INTERRUPT, HANDLER, 0x1234]);
        rig.call_ok("ets_isr_unmask", &[1 << UART_INTERRUPT]);
        interrupted_code(&mut rig);
        rig.host.interrupt_lines = 1 << UART_INTERRUPT;
        take_interrupts(&mut rig);
        assert_eq!(rig.cpu.pc(), 0x4000_0050, "the ROM's user vector");
        assert_eq!(rig.resume(), RomOutcome::Returned);
        let frame = STACK_TOP - FRAME_RESERVE;
        assert_eq!(rig.cpu.pc(), HANDLER);
        assert_eq!(
            (rig.cpu.ar(0), rig.cpu.ar(1), rig.cpu.ar(2), rig.cpu.ar(3)),
            (XTOS_RETURN_FROM_EXC, frame, 0x1234, frame)
        );
        assert_eq!(
            rig.cpu.read_sr(sr::PS),
            Some(0x21),
            "EXCM clear, INTLEVEL 1"
        );
        assert_eq!(
            rig.host.peek(frame + FRAME_PC, 4),
            INTERRUPTED_PC.to_le_bytes()
        );
        assert_eq!(rig.host.peek(frame + FRAME_CAUSE, 4), 4u32.to_le_bytes());
        assert_eq!(
            rig.host.peek(frame + 0x14 + 4 * 10, 4),
            0xA000_000Cu32.to_le_bytes(),
            "a12"
        );
        // The handler clears the UART's interrupt, then returns.
        rig.host.interrupt_lines = 0;
        assert_eq!(handler_returns(&mut rig), RomOutcome::Returned);
        assert_context_restored(&rig);
    }

    #[test]
    fn every_pending_interrupt_is_dispatched_in_turn() {
        let mut rig = Rig::new();
        rig.call_ok("_xtos_set_interrupt_handler", &[UART_INTERRUPT, HANDLER]);
        rig.call_ok(
            "_xtos_set_interrupt_handler_arg",
            &[SOFTWARE_INTERRUPT, OTHER_HANDLER, 77],
        );
        let previous = rig.call_ok(
            "_xtos_ints_on",
            &[(1 << UART_INTERRUPT) | (1 << SOFTWARE_INTERRUPT)],
        );
        assert_eq!(previous, 0);
        interrupted_code(&mut rig);
        rig.host.interrupt_lines = 1 << UART_INTERRUPT;
        rig.cpu.write_sr(sr::INTSET, 1 << SOFTWARE_INTERRUPT);
        take_interrupts(&mut rig);
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!(
            (rig.cpu.pc(), rig.cpu.ar(2)),
            (HANDLER, UART_INTERRUPT),
            "argument: the number"
        );
        rig.host.interrupt_lines = 0;
        assert_eq!(handler_returns(&mut rig), RomOutcome::Returned);
        assert_eq!((rig.cpu.pc(), rig.cpu.ar(2)), (OTHER_HANDLER, 77));
        assert_eq!(
            rig.cpu.interrupt() & (1 << SOFTWARE_INTERRUPT),
            0,
            "INTCLEAR before the call"
        );
        assert_eq!(handler_returns(&mut rig), RomOutcome::Returned);
        assert_context_restored(&rig);
    }

    #[test]
    fn an_interrupt_without_handler_halts() {
        let mut rig = Rig::new();
        rig.call_ok("ets_isr_unmask", &[1 << SOFTWARE_INTERRUPT]);
        interrupted_code(&mut rig);
        rig.cpu.write_sr(sr::INTSET, 1 << SOFTWARE_INTERRUPT);
        take_interrupts(&mut rig);
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!(rig.cpu.pc(), XTOS_UNHANDLED_INTERRUPT);
        let outcome = rig.resume();
        assert!(
            matches!(&outcome, RomOutcome::Halted { reason } if reason.starts_with("level-1 interrupt 7 ")),
            "{outcome:?}"
        );
    }

    #[test]
    fn detaching_restores_the_default() {
        let mut rig = Rig::new();
        assert_eq!(
            rig.call_ok("_xtos_set_interrupt_handler_arg", &[5, HANDLER, 1]),
            0
        );
        assert_eq!(
            rig.call_ok("_xtos_set_interrupt_handler_arg", &[5, 0, 0]),
            HANDLER
        );
        assert_eq!(
            rig.state.interrupt_handlers[5],
            (XTOS_UNHANDLED_INTERRUPT, 5)
        );
        assert_eq!(
            rig.call_ok("_xtos_set_interrupt_handler", &[15, HANDLER]),
            0,
            "no interrupt 15"
        );
    }

    #[test]
    fn a_registered_exception_handler_gets_the_frame_and_may_change_it() {
        const LOAD_PROHIBITED: u32 = 28;
        let mut rig = Rig::new();
        assert_eq!(
            rig.call_ok("_xtos_set_exception_handler", &[LOAD_PROHIBITED, HANDLER]),
            0
        );
        assert_eq!(
            rig.call_ok("_xtos_set_exception_handler", &[64, HANDLER]),
            0,
            "out of range"
        );
        interrupted_code(&mut rig);
        rig.cpu.write_sr(sr::EXCCAUSE, LOAD_PROHIBITED);
        rig.cpu.write_sr(sr::EPC1, INTERRUPTED_PC);
        rig.cpu.write_sr(sr::PS, 0x30);
        rig.cpu.set_pc(address_of("_UserExceptionVector").unwrap());
        assert_eq!(rig.resume(), RomOutcome::Returned);
        let frame = STACK_TOP - FRAME_RESERVE;
        assert_eq!(
            (rig.cpu.pc(), rig.cpu.ar(2), rig.cpu.ar(3)),
            (HANDLER, frame, LOAD_PROHIBITED)
        );
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x20));
        // The handler skips the faulting 3-byte instruction and sets the loaded register.
        rig.host
            .poke(frame + FRAME_PC, &(INTERRUPTED_PC + 3).to_le_bytes());
        rig.host.poke(frame + 0x14 + 4 * 3, &42u32.to_le_bytes());
        assert_eq!(handler_returns(&mut rig), RomOutcome::Returned);
        assert_eq!(rig.cpu.pc(), INTERRUPTED_PC + 3);
        assert_eq!(rig.cpu.ar(5), 42);
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x20));
        assert_eq!(
            rig.call_ok("_xtos_set_exception_handler", &[LOAD_PROHIBITED, 0]),
            HANDLER,
            "the previous handler"
        );
    }

    #[test]
    fn an_unhandled_exception_prints_what_boards_print_and_halts() {
        let mut rig = Rig::new();
        rig.cpu.write_sr(sr::EXCCAUSE, 29);
        rig.cpu.write_sr(sr::EPC1, 0x4010_0ABC);
        rig.cpu.write_sr(sr::EXCVADDR, 0x1323_3020);
        rig.cpu
            .set_pc(address_of("_KernelExceptionVector").unwrap());
        let outcome = rig.resume();
        assert_eq!(
            outcome,
            RomOutcome::Halted {
                reason: "Fatal exception (29) StoreProhibitedCause: epc1=0x40100abc, epc2=0x00000000, epc3=0x00000000, excvaddr=0x13233020, depc=0x00000000".to_string()
            }
        );
        assert_eq!(
            String::from_utf8(rig.host.take_tx()).unwrap(),
            "Fatal exception (29): \r\nepc1=0x40100abc, epc2=0x00000000, epc3=0x00000000, excvaddr=0x13233020, depc=0x00000000\r\n"
        );
    }

    #[test]
    fn debug_nmi_and_double_exceptions_halt() {
        for vector in [
            "_DebugExceptionVector",
            "_NMIExceptionVector",
            "_DoubleExceptionVector",
        ] {
            let mut rig = Rig::new();
            let outcome = rig.call(vector, &[]);
            assert!(
                matches!(outcome, RomOutcome::Halted { .. }),
                "{vector}: {outcome:?}"
            );
        }
        let mut rig = Rig::new();
        let outcome = rig.call("_xtos_return_from_exc", &[]);
        assert!(matches!(outcome, RomOutcome::Halted { .. }), "{outcome:?}");
    }

    #[test]
    fn a_spurious_interrupt_returns_at_once() {
        let mut rig = Rig::new();
        interrupted_code(&mut rig);
        rig.cpu.write_sr(sr::EXCCAUSE, 4);
        rig.cpu.write_sr(sr::EPC1, INTERRUPTED_PC);
        rig.cpu.write_sr(sr::PS, 0x30);
        rig.cpu.set_pc(0x4000_0050);
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_context_restored(&rig);
    }

    #[test]
    fn interrupt_enable_and_level_functions() {
        let mut rig = Rig::new();
        rig.call_ok("ets_isr_unmask", &[0b1010_0000]);
        assert_eq!(rig.cpu.read_sr(sr::INTENABLE), Some(0b1010_0000));
        assert_eq!(rig.call_ok("_xtos_ints_off", &[0b1000_0000]), 0b1010_0000);
        rig.call_ok("ets_isr_mask", &[0b0010_0000]);
        assert_eq!(rig.cpu.read_sr(sr::INTENABLE), Some(0));
        rig.call_ok("ets_intr_lock", &[]);
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x23));
        rig.call_ok("ets_intr_lock", &[]);
        rig.call_ok("ets_intr_unlock", &[]);
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x20), "unlock does not nest");
        assert_eq!(rig.call_ok("_xtos_set_intlevel", &[5]), 0x20);
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x25));
    }

    #[test]
    fn xthal_timer_and_interrupt_registers() {
        let mut rig = Rig::new();
        rig.cpu.add_cycles(1000);
        let count = rig.call_ok("xthal_get_ccount", &[]);
        assert_eq!(count, rig.cpu.read_sr(sr::CCOUNT).unwrap());
        rig.call_ok("xthal_set_ccompare", &[0, 5000]);
        assert_eq!(rig.call_ok("xthal_get_ccompare", &[0]), 5000);
        assert_eq!(rig.call_ok("xthal_get_ccompare", &[1]), 0);
        rig.cpu.write_sr(sr::INTSET, 1 << SOFTWARE_INTERRUPT);
        assert_eq!(
            rig.call_ok("xthal_get_intread", &[]),
            1 << SOFTWARE_INTERRUPT
        );
        rig.call_ok("xthal_set_intclear", &[1 << SOFTWARE_INTERRUPT]);
        assert_eq!(rig.call_ok("xthal_get_intread", &[]), 0);
        assert_eq!(rig.cpu.pc(), RETURN_ADDRESS);
    }
}
