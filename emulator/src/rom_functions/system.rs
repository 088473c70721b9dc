//! Boot, time, GPIO and watchdog functions of the ROM.
//!
//! - `ets_delay_us(us)` busy-waits on CCOUNT for `us` × the frequency the ROM believes in
//!   (`ets_update_cpu_frequency`, 80 MHz until changed): the core is charged that many cycles.
//! - `ets_run()` is the ROM's task loop; no task can be posted (`ets_task`/`ets_post` are not
//!   implemented), so it idles as its WAITI 0 does: PS.INTLEVEL 0, then
//!   [`RomOutcome::Blocked`] until an interrupt handler runs and returns to it.
//! - `gpio_output_set(set, clear, enable, disable)` writes the GPIO block's OUT_W1TS (0x04),
//!   OUT_W1TC (0x08), ENABLE_W1TS (0x10) and ENABLE_W1TC (0x14) in that order;
//!   `gpio_input_get()` reads IN (0x18) (the SDK's `gpio_register.h`).
//! - The `ets_wdt_*` functions only record the mode asked for: what they write to the watchdog
//!   at 0x6000_0900 is not known to us.
//! - The `ets_timer_*` functions are not implemented (no program the virtual chip runs uses
//!   them): a call halts with their name.

use super::guest::{load32, store32, Fault};
use super::{Call, RomHost, RomOutcome};

use esp_protocol::peripherals::gpio::{reg, BASE as GPIO_BASE};

const GPIO_OUT_W1TS: u32 = GPIO_BASE + reg::OUT_W1TS;
const GPIO_OUT_W1TC: u32 = GPIO_BASE + reg::OUT_W1TC;
const GPIO_ENABLE_W1TS: u32 = GPIO_BASE + reg::ENABLE_W1TS;
const GPIO_ENABLE_W1TC: u32 = GPIO_BASE + reg::ENABLE_W1TC;
const GPIO_IN: u32 = GPIO_BASE + reg::IN;

/// What the ROM's watchdog functions were asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WatchdogState {
    /// The last mode set through `ets_wdt_enable`/`ets_wdt_restore` (0 after `ets_wdt_disable`).
    pub(super) mode: Option<u32>,
}

/// Cycles the core runs in `micros` µs at `mhz`.
pub(super) fn cycles_for_micros(micros: u64, mhz: u32) -> u64 {
    micros.saturating_mul(u64::from(mhz))
}

pub(super) fn delay_us<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let cycles = cycles_for_micros(call.arg(0).into(), call.state.cpu_mhz);
    call.cpu.add_cycles(cycles);
    call.return_void()
}

pub(super) fn get_cpu_frequency<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let mhz = call.state.cpu_mhz;
    call.return_u32(mhz)
}

/// `ets_update_cpu_frequency(ticks_per_us)`.
pub(super) fn update_cpu_frequency<H: RomHost>(
    call: &mut Call<'_, H>,
) -> Result<RomOutcome, Fault> {
    call.state.cpu_mhz = call.arg(0);
    call.return_void()
}

/// `rtc_get_reset_reason()`: the number the boot banner prints after `rst cause:`.
pub(super) fn rtc_get_reset_reason<H: RomHost>(
    call: &mut Call<'_, H>,
) -> Result<RomOutcome, Fault> {
    let cause = call.state.reset_cause as u32;
    call.return_u32(cause)
}

/// `ets_set_user_start(entry)`: where the ROM's loader jumps when it is done.
pub(super) fn set_user_start<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.state.user_start = call.arg(0);
    call.return_void()
}

pub(super) fn ets_run<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let ps = call.cpu.read_sr(xtensa_lx106::sr::PS).unwrap_or(0);
    call.cpu.write_sr(xtensa_lx106::sr::PS, ps & !0xF);
    Ok(RomOutcome::Blocked)
}

pub(super) fn gpio_output_set<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let registers = [
        GPIO_OUT_W1TS,
        GPIO_OUT_W1TC,
        GPIO_ENABLE_W1TS,
        GPIO_ENABLE_W1TC,
    ];
    for (index, register) in registers.into_iter().enumerate() {
        store32(call.host, register, call.arg(index))?;
    }
    call.return_void()
}

pub(super) fn gpio_input_get<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let levels = load32(call.host, GPIO_IN)?;
    call.return_u32(levels)
}

pub(super) fn wdt_disable<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    call.state.watchdog.mode = Some(0);
    call.host.trace("rom: ets_wdt_disable".to_string());
    call.return_void()
}

/// `ets_wdt_enable(mode, ...)`.
pub(super) fn wdt_enable<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let mode = call.arg(0);
    call.state.watchdog.mode = Some(mode);
    call.host.trace(format!(
        "rom: ets_wdt_enable(mode {mode}, {:#x}, {:#x}) recorded, the watchdog is not modelled",
        call.arg(1),
        call.arg(2)
    ));
    call.return_void()
}

/// `ets_wdt_restore(mode)`.
pub(super) fn wdt_restore<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let mode = call.arg(0);
    call.state.watchdog.mode = Some(mode);
    call.return_void()
}

/// `ets_wdt_get_mode()`: the mode last recorded, 0 if none.
pub(super) fn wdt_get_mode<H: RomHost>(call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
    let mode = call.state.watchdog.mode.unwrap_or(0);
    call.return_u32(mode)
}

#[cfg(test)]
mod tests {
    use xtensa_lx106::sr;

    use super::super::test_host::Rig;
    use super::super::{address_of, ResetKind, RomOutcome, LOADER_RETURN};
    use super::*;

    #[test]
    fn delay_charges_cycles_at_the_rom_frequency() {
        let mut rig = Rig::new();
        assert_eq!(rig.call_ok("ets_get_cpu_frequency", &[]), 80);
        let before = rig.cpu.cycles();
        rig.call_ok("ets_delay_us", &[1000]);
        assert_eq!(rig.cpu.cycles() - before, 80_000);
        rig.call_ok("ets_update_cpu_frequency", &[160]);
        assert_eq!(rig.call_ok("ets_get_cpu_frequency", &[]), 160);
        let before = rig.cpu.cycles();
        rig.call_ok("ets_delay_us", &[10]);
        assert_eq!(rig.cpu.cycles() - before, 1_600);
    }

    #[test]
    fn resets_and_boot_entries() {
        let mut rig = Rig::new();
        assert_eq!(
            rig.call("software_reset", &[]),
            RomOutcome::Reset(ResetKind::Software)
        );
        for name in ["_ResetVector", "_ResetHandler", "main"] {
            assert_eq!(rig.call(name, &[]), RomOutcome::Reset(ResetKind::RomEntry));
        }
        assert_eq!(
            rig.call_at(LOADER_RETURN, &[]),
            RomOutcome::Reset(ResetKind::ReturnToLoader)
        );
        assert_eq!(rig.call_ok("rtc_get_reset_reason", &[]), 1, "power-on");
    }

    #[test]
    fn gpio_functions_use_the_w1ts_w1tc_registers() {
        let mut rig = Rig::new();
        rig.call_ok("gpio_output_set", &[0b100, 0b1, 0b110, 0b1000]);
        let registers = &rig.host.registers;
        assert_eq!(registers[&GPIO_OUT_W1TS], 0b100);
        assert_eq!(registers[&GPIO_OUT_W1TC], 0b1);
        assert_eq!(registers[&GPIO_ENABLE_W1TS], 0b110);
        assert_eq!(registers[&GPIO_ENABLE_W1TC], 0b1000);
        rig.host.registers.insert(GPIO_IN, 0x1_0005);
        assert_eq!(rig.call_ok("gpio_input_get", &[]), 0x1_0005);
    }

    #[test]
    fn watchdog_mode_is_recorded() {
        let mut rig = Rig::new();
        assert_eq!(rig.call_ok("ets_wdt_get_mode", &[]), 0);
        rig.call_ok("ets_wdt_enable", &[2, 3, 3]);
        assert_eq!(rig.call_ok("ets_wdt_get_mode", &[]), 2);
        assert_eq!(rig.state.watchdog_mode(), Some(2));
        rig.call_ok("ets_wdt_disable", &[]);
        assert_eq!(rig.state.watchdog_mode(), Some(0));
        rig.call_ok("ets_wdt_restore", &[2]);
        assert_eq!(rig.call_ok("ets_wdt_get_mode", &[]), 2);
    }

    #[test]
    fn ets_run_idles_with_interrupts_enabled() {
        let mut rig = Rig::new();
        rig.cpu.write_sr(sr::PS, 0x23);
        assert_eq!(rig.call("ets_run", &[]), RomOutcome::Blocked);
        assert_eq!(rig.cpu.read_sr(sr::PS), Some(0x20));
        assert_eq!(
            rig.cpu.pc(),
            address_of("ets_run").unwrap(),
            "still in ets_run"
        );
        rig.call_ok("ets_set_user_start", &[0x4010_0000]);
        assert_eq!(rig.state.user_start(), 0x4010_0000);
    }

    #[test]
    fn timers_are_not_implemented() {
        let mut rig = Rig::new();
        let outcome = rig.call("ets_timer_arm", &[0x3FFF_0000, 10, 0]);
        assert_eq!(
            outcome,
            RomOutcome::Halted {
                reason: "call to ROM 0x40002cc4 (ets_timer_arm), which the virtual chip does not implement"
                    .to_string()
            }
        );
        let outcome = rig.call_at(0x4000_7000, &[]);
        assert_eq!(
            outcome,
            RomOutcome::Halted {
                reason: "call to ROM 0x40007000, which the virtual chip does not implement"
                    .to_string()
            }
        );
    }
}
