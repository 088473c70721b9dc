//! `ets_printf(fmt, ...)` and `ets_vprintf(putc, fmt, va_list)`, and the machinery that hands
//! text to a character function: UART0 or guest code.
//!
//! Formats: `%d %i %u %x %X %p %s %c %%`, the flags `-` (left-justify) and `0` (zero padding),
//! a decimal width (up to [`MAX_WIDTH`]; a larger one is taken as that), and any number of `l`
//! (ignored: `long` is 32 bits). `%p` prints like `%x`.
//! Any other conversion character is printed as itself, without the `%`. The text is formatted
//! when the function is called; the result is the number of characters formatted.
//!
//! `ets_printf` writes through the character function installed with `ets_install_putc1`; the
//! default (and `ets_install_uart_printf`'s) is the ROM's UART0 printer, which turns `\n` into
//! `\r\n` (boards' boot logs show `\r\n` where the ROM prints a newline) and waits while the TX
//! FIFO is full (the call returns [`RomOutcome::Blocked`] and resumes where it stopped when
//! retried). A guest character function is called once per character (a2 = the character,
//! CALL0 ABI) and returns into the ROM at [`PUTC_RETURN`], where the next one goes out; when all
//! are out, the ROM function returns to its caller.

use super::guest::{load32, load8, Fault};
use super::{Call, RomHost, RomOutcome};
use esp_protocol::rom_functions::PUTC_RETURN;

/// Where formatted text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sink {
    /// The ROM's UART0 printer (newlines cooked).
    Uart,
    /// A guest function taking the character in a2.
    Guest(u32),
}

/// Text on its way to a character function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingOutput {
    bytes: Vec<u8>,
    next: usize,
    sink: Sink,
    /// Where the ROM function returns when all is out, and what it returns.
    caller: u32,
    result: u32,
    /// The ROM function's PC and stack pointer, to recognise its retry after Blocked.
    pc: u32,
    stack_pointer: u32,
}

/// The UART printer's newline cooking.
fn cooked(text: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + text.len() / 8);
    for &byte in text {
        if byte == b'\n' {
            bytes.push(b'\r');
        }
        bytes.push(byte);
    }
    bytes
}

/// Continues a UART output that blocked, if the current call is its retry.
pub(super) fn resume_blocked<H: RomHost>(
    call: &mut Call<'_, H>,
) -> Option<Result<RomOutcome, Fault>> {
    let top = call.state.pending_output.last()?;
    let retry = top.sink == Sink::Uart
        && top.pc == call.cpu.pc()
        && top.stack_pointer == call.cpu.ar(1)
        && top.caller == call.cpu.ar(0);
    retry.then(|| push_to_uart(call))
}

/// Sends `text` (already formatted) to `sink` and returns `result` to the caller when done.
pub(super) fn emit<H: RomHost>(
    call: &mut Call<'_, H>,
    text: &[u8],
    sink: Sink,
    result: u32,
) -> Result<RomOutcome, Fault> {
    let bytes = match sink {
        Sink::Uart => cooked(text),
        Sink::Guest(_) => text.to_vec(),
    };
    if bytes.is_empty() {
        return call.return_u32(result);
    }
    call.state.pending_output.push(PendingOutput {
        bytes,
        next: 0,
        sink,
        caller: call.cpu.ar(0),
        result,
        pc: call.cpu.pc(),
        stack_pointer: call.cpu.ar(1),
    });
    match sink {
        Sink::Uart => push_to_uart(call),
        Sink::Guest(putc) => call_putc(call, putc),
    }
}

/// Moves the top pending output into the TX FIFO until it is out or the FIFO is full.
fn push_to_uart<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let Some(output) = call.state.pending_output.last_mut() else {
        return call.return_void();
    };
    while let Some(&byte) = output.bytes.get(output.next) {
        if !call.host.uart_tx(byte) {
            return Ok(RomOutcome::Blocked);
        }
        output.next += 1;
    }
    let (caller, result) = (output.caller, output.result);
    call.state.pending_output.pop();
    call.cpu.set_pc(caller);
    call.cpu.set_ar(2, result);
    Ok(RomOutcome::Returned)
}

/// Calls the guest character function with the next character of the top pending output.
fn call_putc<H: RomHost>(call: &mut Call<'_, H>, putc: u32) -> Result<RomOutcome, Fault> {
    let Some(output) = call.state.pending_output.last() else {
        return call.return_void();
    };
    call.cpu.set_ar(2, output.bytes[output.next].into());
    call.cpu.set_ar(0, PUTC_RETURN);
    call.cpu.set_pc(putc);
    Ok(RomOutcome::Returned)
}

/// A guest character function returned into `ets_vprintf`.
pub(super) fn putc_returned<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let Some(output) = call.state.pending_output.last_mut() else {
        return Ok(RomOutcome::Halted {
            reason: "return into ets_vprintf with no output in progress".to_string(),
        });
    };
    let Sink::Guest(putc) = output.sink else {
        return Ok(RomOutcome::Halted {
            reason: "return into ets_vprintf while UART output is in progress".to_string(),
        });
    };
    output.next += 1;
    if output.next < output.bytes.len() {
        return call_putc(call, putc);
    }
    let (caller, result) = (output.caller, output.result);
    call.state.pending_output.pop();
    call.cpu.set_pc(caller);
    call.cpu.set_ar(2, result);
    Ok(RomOutcome::Returned)
}

/// Where the variable arguments come from.
enum Arguments {
    /// A variadic CALL0 call: argument `next` (0-based) is in a(2+next) for the first six,
    /// then on the caller's stack at a1.
    Variadic { next: usize },
    /// GCC's Xtensa `va_list`: the stack area (its first argument at +32), the saved register
    /// arguments, and the byte offset of the next argument.
    VaList {
        stack: u32,
        registers: u32,
        offset: u32,
    },
}

/// Bytes of register arguments a va_list's register area holds (a2..a7).
const VA_REGISTER_BYTES: u32 = 24;
/// Offset of the first stack argument in a va_list's stack area.
const VA_STACK_START: u32 = 32;

impl Arguments {
    fn next<H: RomHost>(&mut self, call: &mut Call<'_, H>) -> Result<u32, Fault> {
        match self {
            Arguments::Variadic { next } => {
                let index = *next;
                *next += 1;
                if index < 6 {
                    Ok(call.arg(index))
                } else {
                    let slot = call.cpu.ar(1).wrapping_add(4 * (index as u32 - 6));
                    load32(call.host, slot)
                }
            }
            Arguments::VaList {
                stack,
                registers,
                offset,
            } => {
                let start = *offset;
                let end = start.wrapping_add(4);
                let address = if end <= VA_REGISTER_BYTES {
                    *offset = end;
                    registers.wrapping_add(start)
                } else if start <= VA_REGISTER_BYTES {
                    *offset = VA_STACK_START + 4;
                    stack.wrapping_add(VA_STACK_START)
                } else {
                    *offset = end;
                    stack.wrapping_add(start)
                };
                load32(call.host, address)
            }
        }
    }
}

/// The widest field the virtual chip pads to, so a wild width cannot exhaust memory.
pub(super) const MAX_WIDTH: usize = 0xFFFF;

/// One conversion's layout.
#[derive(Default)]
struct Spec {
    left: bool,
    zero: bool,
    width: usize,
}

impl Spec {
    fn pad(&self, out: &mut Vec<u8>, body: &[u8]) {
        let fill = self.width.saturating_sub(body.len());
        if self.left {
            out.extend_from_slice(body);
            out.resize(out.len() + fill, b' ');
        } else if self.zero {
            // Zeros go after the sign.
            let (sign, digits) = match body.first() {
                Some(b'-') => body.split_at(1),
                _ => body.split_at(0),
            };
            out.extend_from_slice(sign);
            out.resize(out.len() + fill, b'0');
            out.extend_from_slice(digits);
        } else {
            out.resize(out.len() + fill, b' ');
            out.extend_from_slice(body);
        }
    }
}

/// Formats the string at `format` with `arguments`, reading the guest's memory byte by byte.
fn format<H: RomHost>(
    call: &mut Call<'_, H>,
    format: u32,
    mut arguments: Arguments,
) -> Result<Vec<u8>, Fault> {
    let mut out = Vec::new();
    let mut position = format;
    let mut next_byte = |call: &mut Call<'_, H>| {
        let byte = load8(call.host, position);
        position = position.wrapping_add(1);
        byte
    };
    loop {
        let byte = next_byte(call)?;
        match byte {
            0 => return Ok(out),
            b'%' => {}
            _ => {
                out.push(byte);
                continue;
            }
        }
        let mut spec = Spec::default();
        let mut conversion = next_byte(call)?;
        loop {
            match conversion {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                _ => break,
            }
            conversion = next_byte(call)?;
        }
        while conversion.is_ascii_digit() {
            spec.width = spec
                .width
                .saturating_mul(10)
                .saturating_add(usize::from(conversion - b'0'))
                .min(MAX_WIDTH);
            conversion = next_byte(call)?;
        }
        while conversion == b'l' {
            conversion = next_byte(call)?;
        }
        match conversion {
            0 => return Ok(out),
            b'd' | b'i' => {
                let value = arguments.next(call)? as i32;
                spec.pad(&mut out, value.to_string().as_bytes());
            }
            b'u' => {
                let value = arguments.next(call)?;
                spec.pad(&mut out, value.to_string().as_bytes());
            }
            b'x' | b'p' => {
                let value = arguments.next(call)?;
                spec.pad(&mut out, format!("{value:x}").as_bytes());
            }
            b'X' => {
                let value = arguments.next(call)?;
                spec.pad(&mut out, format!("{value:X}").as_bytes());
            }
            b'c' => {
                let value = arguments.next(call)? as u8;
                spec.pad(&mut out, &[value]);
            }
            b's' => {
                let address = arguments.next(call)?;
                let text = super::guest::read_c_string(call.host, address)?;
                spec.pad(&mut out, &text);
            }
            other => out.push(other),
        }
    }
}

/// `int ets_printf(const char *fmt, ...)`.
pub(super) fn ets_printf<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    if let Some(resumed) = resume_blocked(call) {
        return resumed;
    }
    let text = format(call, call.arg(0), Arguments::Variadic { next: 1 })?;
    let sink = match call.state.putc1 {
        0 => Sink::Uart,
        putc => Sink::Guest(putc),
    };
    emit(call, &text, sink, text.len() as u32)
}

/// `int ets_vprintf(int (*putc)(int), const char *fmt, va_list ap)`: the va_list is passed by
/// value in a4..a6.
pub(super) fn ets_vprintf<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let arguments = Arguments::VaList {
        stack: call.arg(2),
        registers: call.arg(3),
        offset: call.arg(4),
    };
    let text = format(call, call.arg(1), arguments)?;
    let putc = call.arg(0);
    emit(call, &text, Sink::Guest(putc), text.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::super::test_host::{Rig, RETURN_ADDRESS, STACK_TOP, TX_FIFO_LEN};
    use super::super::RomOutcome;
    use esp_protocol::rom_functions::{address_of, PUTC_RETURN};

    const FORMAT: u32 = 0x3FFF_0000;
    const STRING: u32 = 0x3FFF_0100;

    fn printf(format: &str, args: &[u32]) -> String {
        let mut rig = Rig::new();
        rig.host.poke(FORMAT, format.as_bytes());
        rig.host.poke(FORMAT + format.len() as u32, &[0]);
        rig.host.poke(STRING, b"flash\0");
        let mut all = vec![FORMAT];
        all.extend_from_slice(args);
        let count = rig.call_ok("ets_printf", &all);
        let text = String::from_utf8(rig.host.take_tx()).unwrap();
        assert_eq!(
            count as usize,
            text.replace("\r\n", "\n").len(),
            "returns the characters formatted"
        );
        text
    }

    #[test]
    fn formats_integers() {
        assert_eq!(
            printf("%d %i %u", &[(-42i32) as u32, 7, u32::MAX]),
            "-42 7 4294967295"
        );
        assert_eq!(
            printf("%x %X %p", &[0xBEEF, 0xBEEF, 0x3FFE_8000]),
            "beef BEEF 3ffe8000"
        );
        assert_eq!(
            printf("[%5d][%-5d][%05d]", &[42, 42, 42]),
            "[   42][42   ][00042]"
        );
        assert_eq!(
            printf("[%05d][%5d]", &[(-42i32) as u32, (-42i32) as u32]),
            "[-0042][  -42]"
        );
        assert_eq!(
            printf("%08x %lu %ld %lx", &[0xAB, 5, (-5i32) as u32, 0xFF]),
            "000000ab 5 -5 ff"
        );
        assert_eq!(printf("[%2d]", &[12345]), "[12345]", "width is a minimum");
    }

    #[test]
    fn formats_strings_characters_and_percent() {
        assert_eq!(printf("%s!", &[STRING]), "flash!");
        assert_eq!(
            printf("[%8s][%-8s]", &[STRING, STRING]),
            "[   flash][flash   ]"
        );
        assert_eq!(
            printf("%c%c 100%%", &[u32::from(b'o'), u32::from(b'k')]),
            "ok 100%"
        );
        assert_eq!(
            printf("%f %q", &[]),
            "f q",
            "unknown conversions print themselves"
        );
        assert_eq!(printf("trailing %", &[]), "trailing ");
    }

    #[test]
    fn a_wild_width_is_capped() {
        let mut rig = Rig::new();
        rig.call_ok("ets_install_putc1", &[0x4010_2000]);
        rig.host.poke(FORMAT, b"%99999999999999999999d\0");
        assert_eq!(rig.call("ets_printf", &[FORMAT, 1]), RomOutcome::Returned);
        let pending = rig.state.pending_output.last().unwrap();
        assert_eq!(pending.bytes.len(), super::MAX_WIDTH);
    }

    #[test]
    fn newlines_are_cooked_for_the_uart() {
        assert_eq!(printf("a\nb\n", &[]), "a\r\nb\r\n");
    }

    #[test]
    fn arguments_beyond_a7_come_from_the_stack() {
        let args: Vec<u32> = (1..=8).collect();
        assert_eq!(printf("%d %d %d %d %d %d %d %d", &args), "1 2 3 4 5 6 7 8");
    }

    #[test]
    fn a_full_fifo_blocks_and_the_retry_resumes() {
        let mut rig = Rig::new();
        let text = "x".repeat(TX_FIFO_LEN + 10);
        rig.host.poke(FORMAT, text.as_bytes());
        rig.host.poke(FORMAT + text.len() as u32, &[0]);
        assert_eq!(rig.call("ets_printf", &[FORMAT]), RomOutcome::Blocked);
        assert_eq!(rig.host.take_tx().len(), TX_FIFO_LEN);
        assert_eq!(rig.resume(), RomOutcome::Returned);
        assert_eq!(rig.cpu.pc(), RETURN_ADDRESS);
        assert_eq!(rig.cpu.ar(2), text.len() as u32);
        assert_eq!(rig.host.take_tx().len(), 10);
        assert!(rig.state.pending_output.is_empty());
    }

    #[test]
    fn an_installed_putc_is_called_per_character() {
        const PUTC: u32 = 0x4010_2000;
        let mut rig = Rig::new();
        rig.call_ok("ets_install_putc1", &[PUTC]);
        rig.host.poke(FORMAT, b"%d\n\0");
        assert_eq!(rig.call("ets_printf", &[FORMAT, 42]), RomOutcome::Returned);
        let mut seen = Vec::new();
        while rig.cpu.pc() == PUTC {
            seen.push(rig.cpu.ar(2) as u8);
            assert_eq!(rig.cpu.ar(0), PUTC_RETURN);
            assert_eq!(rig.cpu.ar(1), STACK_TOP);
            // The guest function clobbers what CALL0 lets it clobber, then returns.
            rig.cpu.set_ar(2, 0xDEAD);
            rig.cpu.set_pc(rig.cpu.ar(0));
            assert_eq!(rig.resume(), RomOutcome::Returned);
        }
        assert_eq!(
            seen, b"42\n",
            "raw characters: the guest function cooks if it wants"
        );
        assert_eq!((rig.cpu.pc(), rig.cpu.ar(2)), (RETURN_ADDRESS, 3));
        assert!(rig.host.take_tx().is_empty());
        rig.call_ok("ets_install_uart_printf", &[]);
        rig.call_ok("ets_printf", &[FORMAT, 7]);
        assert_eq!(rig.host.take_tx(), b"7\r\n");
    }

    #[test]
    fn vprintf_reads_a_gcc_va_list() {
        // The va_list of `f(const char *fmt, ...)` called with 2..=9 after fmt: GCC's va_start
        // saves a2..a7 at `registers` and points `stack` 32 bytes below the stack arguments.
        const REGISTERS: u32 = 0x3FFF_0200;
        const STACK_ARGS: u32 = 0x3FFF_0300;
        let mut rig = Rig::new();
        let words: Vec<u8> = (1u32..=6).flat_map(|value| value.to_le_bytes()).collect();
        rig.host.poke(REGISTERS, &words);
        let stack_words: Vec<u8> = (7u32..=9).flat_map(|value| value.to_le_bytes()).collect();
        rig.host.poke(STACK_ARGS, &stack_words);
        rig.host.poke(FORMAT, b"%d %d %d %d %d %d %d %d\0");
        let putc = address_of("ets_putc").unwrap();
        let outcome = rig.call(
            "ets_vprintf",
            &[putc, FORMAT, STACK_ARGS - 32, REGISTERS, 4],
        );
        assert_eq!(outcome, RomOutcome::Returned);
        // The character function here is the ROM's own ets_putc: each call traps into the ROM.
        while rig.cpu.pc() != RETURN_ADDRESS {
            assert_eq!(rig.resume(), RomOutcome::Returned);
        }
        assert_eq!(rig.host.take_tx(), b"2 3 4 5 6 7 8 9");
        assert_eq!(rig.cpu.ar(2), 15);
    }
}
