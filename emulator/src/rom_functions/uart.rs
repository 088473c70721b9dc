//! The ROM's UART functions (UART0 through [`RomHost`]) and its single-character printers.
//!
//! - `uart_tx_one_char(c)` queues c raw; it waits while the TX FIFO is full
//!   ([`RomOutcome::Blocked`]). Returns 0 (OK).
//! - `uart_rx_one_char(&c)` returns 0 (OK) with the byte stored through the pointer, or 1 (FAIL)
//!   when the RX FIFO is empty (the SDK's `STATUS` values; the esptool stub loops while it is
//!   non-zero).
//! - `uart_rx_one_char_block()` returns the next byte, waiting for one.
//! - `uart_div_modify(uart_no, divider)` sets the clock divider: UART0's through
//!   [`RomHost::set_uart_divider`], UART1's by writing its CLKDIV register (0x6000_0F14).
//! - `ets_putc(c)` prints through the ROM's UART0 printer (newline cooked); `ets_write_char(c)`
//!   through the function installed with `ets_install_putc1` (the UART0 printer by default).

use super::guest::{store32, store8, Fault};
use super::printf::{emit, resume_blocked, Sink};
use super::{Call, RomHost, RomOutcome};

/// UART1's clock divider register.
const UART1_CLKDIV: u32 = 0x6000_0F14;
/// `STATUS` values of the SDK.
const OK: u32 = 0;
const FAIL: u32 = 1;

pub(super) fn tx_one_char<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    if !call.host.uart_tx(call.arg(0) as u8) {
        return Ok(RomOutcome::Blocked);
    }
    call.return_u32(OK)
}

pub(super) fn rx_one_char<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let destination = call.arg(0);
    match call.host.uart_rx() {
        Some(byte) => {
            store8(call.host, destination, byte)?;
            call.return_u32(OK)
        }
        None => call.return_u32(FAIL),
    }
}

pub(super) fn rx_one_char_block<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match call.host.uart_rx() {
        Some(byte) => call.return_u32(byte.into()),
        None => Ok(RomOutcome::Blocked),
    }
}

pub(super) fn div_modify<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let (uart, divider) = (call.arg(0), call.arg(1));
    if uart == 0 {
        call.host.set_uart_divider(divider);
    } else {
        store32(call.host, UART1_CLKDIV, divider)?;
    }
    call.host.trace(format!(
        "rom: uart_div_modify(UART{uart}, divider {divider})"
    ));
    call.return_void()
}

pub(super) fn ets_putc<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    if let Some(resumed) = resume_blocked(call) {
        return resumed;
    }
    let character = call.arg(0);
    emit(call, &[character as u8], Sink::Uart, character)
}

pub(super) fn write_char<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    match call.state.putc1 {
        0 => ets_putc(call),
        putc => {
            // A tail call: the installed function returns straight to our caller.
            call.cpu.set_pc(putc);
            Ok(RomOutcome::Returned)
        }
    }
}

pub(super) fn install_putc1<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.state.putc1 = call.arg(0);
    call.return_void()
}

pub(super) fn install_uart_printf<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.state.putc1 = 0;
    call.return_void()
}

#[cfg(test)]
mod tests {
    use super::super::test_host::{Rig, RETURN_ADDRESS, TX_FIFO_LEN};
    use super::super::RomOutcome;
    use super::UART1_CLKDIV;

    const BYTE: u32 = 0x3FFF_0000;

    #[test]
    fn tx_waits_for_fifo_space() {
        let mut rig = Rig::new();
        for _ in 0..TX_FIFO_LEN {
            assert_eq!(rig.call_ok("uart_tx_one_char", &[u32::from(b'a')]), 0);
        }
        assert_eq!(
            rig.call("uart_tx_one_char", &[u32::from(b'\n')]),
            RomOutcome::Blocked
        );
        rig.host.take_tx();
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!(rig.host.take_tx(), b"\n", "raw: no cooking");
    }

    #[test]
    fn rx_one_char_reports_through_the_pointer() {
        let mut rig = Rig::new();
        rig.host.poke(BYTE, &[0xEE]);
        assert_eq!(
            rig.call_ok("uart_rx_one_char", &[BYTE]),
            1,
            "nothing received"
        );
        assert_eq!(rig.host.peek(BYTE, 1), [0xEE]);
        rig.host.rx_fifo.extend([0x5A, 0x00]);
        assert_eq!(rig.call_ok("uart_rx_one_char", &[BYTE]), 0);
        assert_eq!(rig.host.peek(BYTE, 1), [0x5A]);
        assert_eq!(rig.call_ok("uart_rx_one_char", &[BYTE]), 0);
        assert_eq!(rig.host.peek(BYTE, 1), [0x00]);
    }

    #[test]
    fn rx_block_waits_for_a_byte() {
        let mut rig = Rig::new();
        assert_eq!(rig.call("uart_rx_one_char_block", &[]), RomOutcome::Blocked);
        rig.host.rx_fifo.push_back(0xC0);
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!((rig.cpu.ar(2), rig.cpu.pc()), (0xC0, RETURN_ADDRESS));
    }

    #[test]
    fn div_modify_sets_the_divider() {
        let mut rig = Rig::new();
        rig.call_ok("uart_div_modify", &[0, 80_000_000 / 921_600]);
        assert_eq!(rig.host.uart_divider, Some(86));
        rig.call_ok("uart_div_modify", &[1, 694]);
        assert_eq!(rig.host.registers[&UART1_CLKDIV], 694);
        assert_eq!(rig.host.uart_divider, Some(86));
    }

    #[test]
    fn putc_cooks_and_resumes_after_a_full_fifo() {
        let mut rig = Rig::new();
        for _ in 0..TX_FIFO_LEN - 1 {
            rig.call_ok("uart_tx_one_char", &[u32::from(b'a')]);
        }
        // Room for the '\r' only: the '\n' waits, and the retry does not send '\r' again.
        assert_eq!(
            rig.call("ets_putc", &[u32::from(b'\n')]),
            RomOutcome::Blocked
        );
        assert_eq!(rig.host.take_tx().last(), Some(&b'\r'));
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!(rig.host.take_tx(), b"\n");
        rig.call_ok("ets_write_char", &[u32::from(b'z')]);
        assert_eq!(rig.host.take_tx(), b"z");
        rig.call_ok("ets_install_putc1", &[0x4010_3000]);
        assert_eq!(
            rig.call("ets_write_char", &[u32::from(b'z')]),
            RomOutcome::Returned
        );
        assert_eq!(
            (rig.cpu.pc(), rig.cpu.ar(0), rig.cpu.ar(2)),
            (0x4010_3000, RETURN_ADDRESS, u32::from(b'z')),
            "tail call into the installed function"
        );
    }
}
