use proptest::prelude::*;
use xtensa_lx106::{Bus, BusFault};

use super::*;
use crate::flash::{FlashOptions, SpiFlash};

const MIB: usize = 1 << 20;
const EFUSES: [u32; 4] = [0x1100_0000, 0x0000_3456, 0x0001_0000, 0x0018_FE34];

fn machine_with(boot: BootMode, flash: SpiFlash) -> Machine {
    Machine::new(
        MachineConfig {
            efuses: EFUSES,
            boot,
        },
        flash,
    )
}

fn machine() -> Machine {
    machine_with(BootMode::Download, SpiFlash::blank(MIB).unwrap())
}

fn fault(address: u32) -> BusFault {
    BusFault { address }
}

// ---- memory ----

#[test]
fn dram_takes_every_access_width_little_endian() {
    let mut m = machine();
    m.write32(0x3FFE_8000, 0x1122_3344).unwrap();
    assert_eq!(m.read8(0x3FFE_8000), Ok(0x44));
    assert_eq!(m.read8(0x3FFE_8003), Ok(0x11));
    assert_eq!(m.read16(0x3FFE_8002), Ok(0x1122));
    m.write8(0x3FFE_8001, 0xAB).unwrap();
    m.write16(0x3FFE_8002, 0xCDEF).unwrap();
    assert_eq!(m.read32(0x3FFE_8000), Ok(0xCDEF_AB44));
    // The last word, under the ROM's data area.
    m.write32(0x3FFF_FFFC, 7).unwrap();
    assert_eq!(m.read32(0x3FFF_FFFC), Ok(7));
    assert_eq!(m.read8(0x3FFF_FFFF), Ok(0));
}

#[test]
fn iram_takes_only_32_bit_accesses() {
    let mut m = machine();
    m.write32(0x4010_0000, 0xDEAD_BEEF).unwrap();
    m.write32(0x4010_FFFC, 0x0BAD_F00D).unwrap();
    assert_eq!(m.read32(0x4010_0000), Ok(0xDEAD_BEEF));
    assert_eq!(m.fetch32(0x4010_FFFC), Ok(0x0BAD_F00D));
    assert_eq!(m.read8(0x4010_0001), Err(fault(0x4010_0001)));
    assert_eq!(m.read16(0x4010_0002), Err(fault(0x4010_0002)));
    assert_eq!(m.write8(0x4010_0000, 1), Err(fault(0x4010_0000)));
    assert_eq!(m.write16(0x4010_0000, 1), Err(fault(0x4010_0000)));
    assert_eq!(m.read32(0x4010_0000), Ok(0xDEAD_BEEF));
}

#[test]
fn rom_reads_the_chip_detect_magic_and_zero_and_refuses_the_rest() {
    let mut m = machine();
    assert_eq!(m.read32(CHIP_DETECT_MAGIC_ADDR), Ok(CHIP_DETECT_MAGIC));
    assert_eq!(m.read_reg(CHIP_DETECT_MAGIC_ADDR), CHIP_DETECT_MAGIC);
    assert_eq!(m.read_reg(CHIP_DETECT_MAGIC_ADDR + 2), CHIP_DETECT_MAGIC);
    assert_eq!(m.read32(0x4000_2000), Ok(0));
    assert_eq!(
        m.read8(CHIP_DETECT_MAGIC_ADDR),
        Err(fault(CHIP_DETECT_MAGIC_ADDR))
    );
    assert_eq!(
        m.write32(CHIP_DETECT_MAGIC_ADDR, 0),
        Err(fault(CHIP_DETECT_MAGIC_ADDR))
    );
    assert_eq!(m.fetch32(0x4000_0080), Err(fault(0x4000_0080)));
    m.write_reg(CHIP_DETECT_MAGIC_ADDR, 0, u32::MAX);
    assert_eq!(m.read_reg(CHIP_DETECT_MAGIC_ADDR), CHIP_DETECT_MAGIC);
}

#[test]
fn addresses_nothing_decodes_fault_and_read_reg_sees_zero() {
    let mut m = machine();
    for address in [
        0x0000_0000,
        0x3FEF_FFFC,
        0x4001_0000,
        0x4011_0000,
        0x4030_0000,
        0x5000_0000,
        0x6001_0000,
        0xFFFF_FFFC,
    ] {
        assert_eq!(m.read32(address), Err(fault(address)), "{address:#x}");
        assert_eq!(m.write32(address, 1), Err(fault(address)), "{address:#x}");
        assert_eq!(m.read8(address), Err(fault(address)), "{address:#x}");
        assert_eq!(m.fetch32(address), Err(fault(address)), "{address:#x}");
        m.write_reg(address, 1, u32::MAX);
        assert_eq!(m.read_reg(address), 0, "{address:#x}");
    }
    // DRAM holds data, not code.
    assert_eq!(m.fetch32(0x3FFE_8000), Err(fault(0x3FFE_8000)));
}

#[test]
fn flash_cache_maps_the_flash_read_only_once_enabled() {
    let mut contents = vec![0xFF; MIB];
    contents[..8].copy_from_slice(&[0xE9, 1, 2, 3, 0x10, 0x20, 0x30, 0x40]);
    contents[MIB - 4..].copy_from_slice(&[9, 8, 7, 6]);
    let flash = SpiFlash::new(contents, FlashOptions::default()).unwrap();
    let mut m = machine_with(BootMode::Flash, flash);
    assert_eq!(m.read32(0x4020_0000), Err(fault(0x4020_0000)));
    assert_eq!(m.fetch32(0x4020_0000), Err(fault(0x4020_0000)));
    m.set_flash_cache(true);
    assert!(m.flash_cache_enabled());
    assert_eq!(m.read32(0x4020_0000), Ok(0x0302_01E9));
    assert_eq!(m.fetch32(0x4020_0004), Ok(0x4030_2010));
    assert_eq!(m.read32(0x402F_FFFC), Ok(0x0607_0809));
    assert_eq!(m.read_reg(0x4020_0004), 0x4030_2010);
    assert_eq!(m.read8(0x4020_0000), Err(fault(0x4020_0000)));
    assert_eq!(m.write32(0x4020_0000, 0), Err(fault(0x4020_0000)));
    m.set_flash_cache(false);
    assert_eq!(m.read32(0x4020_0000), Err(fault(0x4020_0000)));
}

#[test]
fn flash_cache_wraps_on_a_chip_smaller_than_its_window() {
    let mut contents = vec![0xFF; 512 * 1024];
    contents[..4].copy_from_slice(&[1, 2, 3, 4]);
    let flash = SpiFlash::new(contents, FlashOptions::default()).unwrap();
    let mut m = machine_with(BootMode::Flash, flash);
    m.set_flash_cache(true);
    assert_eq!(m.read32(0x4028_0000), Ok(0x0403_0201));
}

#[test]
fn mem_uploads_must_lie_in_one_ram_region() {
    let mut m = machine();
    assert!(m.is_ram(0x3FFE_8000, 0x18000));
    assert!(m.is_ram(0x4010_0000, 0x10000));
    assert!(!m.is_ram(0x3FFF_FFF0, 0x20));
    assert!(!m.is_ram(0x4000_0000, 4));
    assert!(!m.is_ram(0x4011_0000, 0));
    m.write_ram(0x4010_0001, &[0xAA, 0xBB, 0xCC]).unwrap();
    assert_eq!(m.read32(0x4010_0000), Ok(0xCCBB_AA00));
    m.write_ram(0x3FFE_8003, &[1, 2]).unwrap();
    assert_eq!(m.read32(0x3FFE_8000), Ok(0x0100_0000));
    assert_eq!(m.read8(0x3FFE_8004), Ok(2));
    assert_eq!(
        m.write_ram(0x4010_FFFE, &[0; 4]),
        Err(OutsideRam {
            address: 0x4010_FFFE,
            len: 4
        })
    );
}

#[test]
fn write_reg_merges_under_its_mask_and_reaches_ram() {
    let mut m = machine();
    m.write_reg(0x6000_0A00, 0x1234_5678, u32::MAX);
    m.write_reg(0x6000_0A00, 0xAB, 0xFF);
    assert_eq!(m.read_reg(0x6000_0A00), 0x1234_56AB);
    m.write_reg(0x3FFE_8000, 0xDEAD_BEEF, u32::MAX);
    m.write_reg(0x4010_0004, 0x0BAD_F00D, u32::MAX);
    assert_eq!(m.read_reg(0x3FFE_8000), 0xDEAD_BEEF);
    assert_eq!(m.read_reg(0x4010_0004), 0x0BAD_F00D);
    // A masked write to the FIFO neither pops nor merges a received byte.
    m.uart_receive(b"x");
    m.write_reg(0x6000_0000, 0x41, 0xFF);
    assert_eq!(m.uart_rx_queued(), 1);
    let mut out = Vec::new();
    m.uart_take_tx(&mut out, 8);
    assert_eq!(out, b"A");
}

#[test]
fn efuse_words_are_read_only() {
    let mut m = machine();
    for (index, word) in EFUSES.iter().enumerate() {
        let address = esp_protocol::chip::EFUSE_REGS[index];
        assert_eq!(m.read_reg(address), *word);
        m.write_reg(address, !word, u32::MAX);
        assert_eq!(m.read32(address), Ok(*word));
    }
}

#[test]
fn dport_registers_keep_what_is_written() {
    let mut m = machine();
    m.write32(EDGE_INT_ENABLE, 0x2).unwrap();
    assert_eq!(m.read32(EDGE_INT_ENABLE), Ok(0x2));
    m.write8(EDGE_INT_ENABLE + 1, 0x7).unwrap();
    assert_eq!(m.read32(EDGE_INT_ENABLE), Ok(0x0702));
    assert_eq!(m.read8(EDGE_INT_ENABLE + 1), Ok(0x07));
}

// ---- UART ----

const UART0: u32 = esp_protocol::uart::UART0_BASE;
const FIFO: u32 = UART0 + uart::reg::FIFO;
const INT_RAW: u32 = UART0 + uart::reg::INT_RAW;
const INT_ST: u32 = UART0 + uart::reg::INT_ST;
const INT_ENA: u32 = UART0 + uart::reg::INT_ENA;
const INT_CLR: u32 = UART0 + uart::reg::INT_CLR;
const CLKDIV: u32 = UART0 + uart::reg::CLKDIV;
const STATUS: u32 = UART0 + uart::reg::STATUS;
const CONF0: u32 = UART0 + uart::reg::CONF0;
const CONF1: u32 = UART0 + uart::reg::CONF1;
const UART_LINE: u32 = 1 << interrupt::UART;

#[test]
fn uart_rx_fifo_takes_128_bytes_and_pops_them_in_order() {
    let mut m = machine();
    let line: Vec<u8> = (0..200).map(|i| i as u8).collect();
    assert_eq!(m.uart_receive(&line), UART_FIFO_LEN);
    assert_eq!(m.uart_receive(&line[128..]), 0);
    assert_eq!(m.read32(STATUS).unwrap() & 0xFF, 128);
    assert_eq!(m.read32(FIFO), Ok(0));
    assert_eq!(m.read32(FIFO), Ok(1));
    assert_eq!(m.uart_rx(), Some(2));
    assert_eq!(m.read32(STATUS).unwrap() & 0xFF, 125);
    assert_eq!(m.uart_receive(&line[128..]), 3);
    for expected in 3..131u32 {
        assert_eq!(m.read8(FIFO), Ok(expected as u8));
    }
    assert_eq!(m.read32(FIFO), Ok(0), "an empty FIFO reads 0");
    assert_eq!(m.uart_rx(), None);
}

#[test]
fn uart_tx_fifo_counts_in_status_and_drains_to_the_line() {
    let mut m = machine();
    for byte in b"hello" {
        m.write32(FIFO, u32::from(*byte)).unwrap();
    }
    m.write8(FIFO, b'!').unwrap();
    assert_eq!((m.read32(STATUS).unwrap() >> 16) & 0xFF, 6);
    assert_eq!(m.uart_tx_queued(), 6);
    let mut out = Vec::new();
    assert_eq!(m.uart_take_tx(&mut out, 4), 4);
    assert_eq!(m.uart_take_tx(&mut out, 100), 2);
    assert_eq!(out, b"hello!");
    assert_eq!((m.read32(STATUS).unwrap() >> 16) & 0xFF, 0);
    for _ in 0..UART_FIFO_LEN {
        assert!(m.uart_tx(b'x'));
    }
    assert!(!m.uart_tx(b'y'), "a full TX FIFO refuses");
    m.write32(FIFO, u32::from(b'z')).unwrap();
    assert_eq!(m.uart_tx_queued(), UART_FIFO_LEN);
}

#[test]
fn uart_rx_full_interrupt_follows_threshold_enable_and_clear() {
    let mut m = machine();
    m.write32(INT_CLR, u32::MAX).unwrap();
    m.write32(CONF1, 4).unwrap();
    m.write32(INT_ENA, uart_int::RXFIFO_FULL).unwrap();
    m.uart_receive(b"abc");
    assert_eq!(m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_FULL, 0);
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
    m.uart_receive(b"d");
    assert_eq!(m.read32(INT_ST), Ok(uart_int::RXFIFO_FULL));
    assert_eq!(m.interrupt_lines() & UART_LINE, UART_LINE);
    // Cleared while still full: raised again at once.
    m.write32(INT_CLR, uart_int::RXFIFO_FULL).unwrap();
    assert_eq!(m.read32(INT_ST), Ok(uart_int::RXFIFO_FULL));
    for _ in 0..4 {
        m.read32(FIFO).unwrap();
    }
    assert_eq!(m.interrupt_lines() & UART_LINE, UART_LINE, "raw bits latch");
    m.write32(INT_CLR, uart_int::RXFIFO_FULL).unwrap();
    assert_eq!(m.read32(INT_ST), Ok(0));
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
    // Raw without enable does not reach the line.
    m.uart_receive(b"efgh");
    m.write32(INT_ENA, 0).unwrap();
    assert_ne!(m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_FULL, 0);
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
}

#[test]
fn uart_tx_empty_interrupt_is_raised_below_its_threshold() {
    let mut m = machine();
    // Reset CONF1: empty threshold 0x60; an empty FIFO is below it.
    assert_ne!(m.read32(INT_RAW).unwrap() & uart_int::TXFIFO_EMPTY, 0);
    m.write32(CONF1, 2 << 8).unwrap();
    m.uart_tx(1);
    m.uart_tx(2);
    m.write32(INT_CLR, uart_int::TXFIFO_EMPTY).unwrap();
    assert_eq!(m.read32(INT_RAW).unwrap() & uart_int::TXFIFO_EMPTY, 0);
    m.write32(INT_ENA, uart_int::TXFIFO_EMPTY).unwrap();
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
    m.uart_take_tx(&mut Vec::new(), 1);
    assert_eq!(m.read32(INT_ST), Ok(uart_int::TXFIFO_EMPTY));
    assert_eq!(m.interrupt_lines() & UART_LINE, UART_LINE);
}

#[test]
fn uart_timeout_is_raised_when_the_line_idles_with_bytes_waiting() {
    let mut m = machine();
    // What esptool's v2 stub sets: timeout 10 byte times, enabled; full threshold high.
    m.write32(CONF1, 1 << 31 | 10 << 24 | 0x7F).unwrap();
    m.write32(INT_CLR, u32::MAX).unwrap();
    m.write32(INT_ENA, uart_int::RXFIFO_FULL | uart_int::RXFIFO_TOUT)
        .unwrap();
    assert_eq!(m.uart_rx_timeout_byte_times(), 10);
    m.uart_line_idle();
    assert_eq!(
        m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_TOUT,
        0,
        "empty FIFO"
    );
    m.uart_receive(b"\xC0\x00");
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
    m.uart_line_idle();
    assert_eq!(m.read32(INT_ST), Ok(uart_int::RXFIFO_TOUT));
    assert_eq!(m.interrupt_lines() & UART_LINE, UART_LINE);
    m.read32(FIFO).unwrap();
    m.read32(FIFO).unwrap();
    m.write32(INT_CLR, uart_int::RXFIFO_TOUT).unwrap();
    assert_eq!(m.interrupt_lines() & UART_LINE, 0);
    // Disabled: no timeout.
    m.write32(CONF1, 10 << 24 | 0x7F).unwrap();
    m.uart_receive(b"x");
    m.uart_line_idle();
    assert_eq!(m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_TOUT, 0);
}

#[test]
fn uart_overflow_loses_bytes_and_raises_ovf() {
    let mut m = machine();
    m.write32(INT_CLR, u32::MAX).unwrap();
    assert_eq!(m.uart_receive_lossy(&[7; 130]), 2);
    assert_eq!(m.uart_rx_queued(), UART_FIFO_LEN);
    assert_ne!(m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_OVF, 0);
    m.write32(INT_CLR, uart_int::RXFIFO_OVF).unwrap();
    assert_eq!(m.read32(INT_RAW).unwrap() & uart_int::RXFIFO_OVF, 0);
    assert_eq!(m.uart_receive_lossy(&[]), 0);
}

#[test]
fn uart_fifo_resets_through_conf0() {
    let mut m = machine();
    m.uart_receive(b"abc");
    m.uart_tx(b'x');
    m.write32(CONF0, 0x1C | 1 << 17 | 1 << 18).unwrap();
    m.write32(CONF0, 0x1C).unwrap();
    assert_eq!(m.read32(STATUS).unwrap() & 0x00FF_00FF, 0);
    assert_eq!(m.read32(CONF0), Ok(0x1C));
}

#[test]
fn uart_clock_divider_gives_esptool_a_26_mhz_crystal_and_the_baud_rate() {
    let mut m = machine();
    let clkdiv = m.read_reg(CLKDIV);
    // esptool's get_crystal_freq for the ESP8266.
    let estimate = 115_200.0 * f64::from(clkdiv & 0xF_FFFF) / 1e6 / 2.0;
    assert!((estimate - 26.0).abs() < 0.5, "{estimate}");
    assert_eq!(m.uart_baud(), 52_000_000 / 451);
    // What both stubs do on CHANGE_BAUDRATE: scale the divider by the rates.
    m.set_uart_divider(clkdiv * 115_200 / 921_600);
    assert_eq!(m.uart_baud(), 52_000_000 / 56);
    m.set_uart_baud(460_800);
    assert_eq!(m.uart_divider(), 113);
    m.write32(CLKDIV, 0xFFF0_0000 | 694).unwrap();
    assert_eq!(m.read32(CLKDIV), Ok(694), "a 20-bit field");
    m.set_apb_clock_hz(80_000_000);
    assert_eq!(m.uart_baud(), 80_000_000 / 694);
    // Booting from flash, the ROM set 115200 for an 80 MHz clock it does not have.
    let booted = machine_with(BootMode::Flash, SpiFlash::blank(MIB).unwrap());
    assert_eq!(booted.uart_divider(), 694);
    assert_eq!(booted.uart_baud(), 74_927);
}

#[test]
fn uart1_output_goes_to_its_log() {
    let mut m = machine();
    for byte in b"os_printf\n" {
        m.write32(0x6000_0F00, u32::from(*byte)).unwrap();
    }
    assert_eq!(
        m.read32(0x6000_0F1C).unwrap() & 0x00FF_0000,
        0,
        "always drained"
    );
    let mut out = Vec::new();
    m.take_uart1_output(&mut out);
    assert_eq!(out, b"os_printf\n");
    m.take_uart1_output(&mut out);
    assert_eq!(out.len(), 10);
}

// ---- timers ----

const FRC1_LOAD: u32 = TIMER_BASE + timers::reg::FRC1_LOAD;
const FRC1_COUNT: u32 = TIMER_BASE + timers::reg::FRC1_COUNT;
const FRC1_CTRL: u32 = TIMER_BASE + timers::reg::FRC1_CTRL;
const FRC1_INT: u32 = TIMER_BASE + timers::reg::FRC1_INT;
const FRC2_LOAD: u32 = TIMER_BASE + timers::reg::FRC2_LOAD;
const FRC2_COUNT: u32 = TIMER_BASE + timers::reg::FRC2_COUNT;
const FRC2_CTRL: u32 = TIMER_BASE + timers::reg::FRC2_CTRL;
const FRC2_ALARM: u32 = TIMER_BASE + timers::reg::FRC2_ALARM;
const EDGE_INT_ENABLE: u32 = DPORT_BASE + DPORT_EDGE_INT_ENABLE;
const ENABLE: u32 = 1 << 7;
const AUTOLOAD: u32 = 1 << 6;
const LEVEL: u32 = 1;
const FRC1_LINE: u32 = 1 << interrupt::FRC1;

#[test]
fn frc1_counts_down_and_pulses_its_edge_interrupt_once_per_expiry() {
    let mut m = machine();
    m.write32(EDGE_INT_ENABLE, 1 << 1).unwrap();
    m.write32(FRC1_LOAD, 1000).unwrap();
    m.write32(FRC1_CTRL, ENABLE | AUTOLOAD).unwrap();
    assert_eq!(m.cycles_until_next_event(), Some(1000));
    m.advance(999);
    assert_eq!(m.read32(FRC1_COUNT), Ok(1));
    assert_eq!(m.interrupt_lines() & FRC1_LINE, 0);
    m.advance(1000);
    assert_eq!(m.read32(FRC1_COUNT), Ok(1000), "reloaded");
    assert_eq!(m.interrupt_lines() & FRC1_LINE, FRC1_LINE);
    assert_eq!(m.interrupt_lines() & FRC1_LINE, 0, "a pulse");
    assert_ne!(m.read32(FRC1_CTRL).unwrap() & 1 << 8, 0, "status set");
    // Several expiries in one advance: one pulse.
    m.advance(5250);
    assert_eq!(m.read32(FRC1_COUNT), Ok(750));
    assert_eq!(m.interrupt_lines() & FRC1_LINE, FRC1_LINE);
    assert_eq!(m.cycles_until_next_event(), Some(750));
    // Without the DPORT edge enable, no pulse reaches the core.
    m.write32(EDGE_INT_ENABLE, 0).unwrap();
    m.advance(7000);
    assert_eq!(m.interrupt_lines() & FRC1_LINE, 0);
}

#[test]
fn frc1_level_interrupt_holds_until_int_is_written() {
    let mut m = machine();
    m.write32(FRC1_LOAD, 100).unwrap();
    m.write32(FRC1_CTRL, ENABLE | LEVEL).unwrap();
    m.advance(99);
    assert_eq!(m.interrupt_lines() & FRC1_LINE, 0);
    m.advance(100);
    assert_eq!(m.interrupt_lines() & FRC1_LINE, FRC1_LINE);
    assert_eq!(m.interrupt_lines() & FRC1_LINE, FRC1_LINE, "level");
    // Without autoload the counter wraps through 0x7FFFFF.
    m.advance(103);
    assert_eq!(m.read32(FRC1_COUNT), Ok(0x7F_FFFD));
    m.write32(FRC1_INT, 0).unwrap();
    assert_eq!(m.interrupt_lines() & FRC1_LINE, 0);
    assert_eq!(m.read32(FRC1_CTRL), Ok(ENABLE | LEVEL));
}

#[test]
fn frc1_prescaler_and_cpu_clock_slow_the_count() {
    let mut m = machine();
    m.write32(FRC1_LOAD, 10).unwrap();
    m.write32(FRC1_CTRL, ENABLE | 1 << 2).unwrap();
    m.advance(16 * 3);
    assert_eq!(m.read32(FRC1_COUNT), Ok(7));
    // At 160 MHz the CPU runs two cycles per APB tick.
    m.write32(0x3FF0_0014, 1).unwrap();
    assert_eq!(m.cpu_clock_hz(), 2 * 52_000_000);
    m.advance(48 + 2 * 16 * 2);
    assert_eq!(m.read32(FRC1_COUNT), Ok(5));
    // Stopped: frozen.
    m.write32(FRC1_CTRL, 0).unwrap();
    m.advance(10_000);
    assert_eq!(m.read32(FRC1_COUNT), Ok(5));
    assert_eq!(m.cycles_until_next_event(), None);
}

#[test]
fn frc2_counts_up_and_raises_its_alarm() {
    let mut m = machine();
    m.write32(FRC2_LOAD, 0xFFFF_FFF0).unwrap();
    m.write32(FRC2_ALARM, 0x10).unwrap();
    m.write32(FRC2_CTRL, ENABLE | LEVEL).unwrap();
    assert_eq!(m.cycles_until_next_event(), Some(0x20));
    m.advance(0x1F);
    assert_eq!(m.read32(FRC2_COUNT), Ok(0xF));
    assert_eq!(m.interrupt_lines() & 1 << interrupt::FRC2, 0);
    m.advance(0x20);
    assert_eq!(m.read32(FRC2_COUNT), Ok(0x10));
    assert_eq!(
        m.interrupt_lines() & 1 << interrupt::FRC2,
        1 << interrupt::FRC2
    );
}

// ---- watchdog ----

const WDT_CTRL: u32 = WATCHDOG_BASE + peripherals::watchdog::reg::CTRL;
const WDT_STAGE0: u32 = WATCHDOG_BASE + peripherals::watchdog::reg::STAGE0_TIMEOUT;
const WDT_STAGE1: u32 = WATCHDOG_BASE + peripherals::watchdog::reg::STAGE1_TIMEOUT;
const WDT_STAGE: u32 = WATCHDOG_BASE + peripherals::watchdog::reg::STAGE;
const WDT_FEED: u32 = WATCHDOG_BASE + peripherals::watchdog::reg::FEED;
const RTC_CAUSE: u32 = RTC_BASE + RTC_RESET_CAUSE;
/// Any RTC register and any word of RTC memory.
const RTC_REGISTER: u32 = RTC_BASE + 0x30;
const RTC_MEMORY_WORD: u32 = RTC_MEMORY.start + 0x100;

#[test]
fn watchdog_bites_when_not_fed_and_feeding_holds_it_off() {
    let mut m = machine();
    m.advance(1_000_000_000);
    assert!(!m.take_watchdog_bite(), "disabled after reset");
    // Stage 0 and stage 1 of 2^0 units each: 1.6 ms, 83200 ticks at 52 MHz.
    m.write32(WDT_STAGE0, 0).unwrap();
    m.write32(WDT_STAGE1, 0).unwrap();
    m.write32(WDT_CTRL, 1).unwrap();
    let start = 1_000_000_000;
    assert_eq!(m.cycles_until_next_event(), Some(83_200));
    m.advance(start + 50_000);
    assert_eq!(m.read32(WDT_STAGE), Ok(1), "in stage 1");
    m.write32(WDT_FEED, WATCHDOG_FEED_VALUE).unwrap();
    assert_eq!(m.read32(WDT_STAGE), Ok(0));
    m.advance(start + 50_000 + 83_199);
    assert!(!m.take_watchdog_bite());
    m.write32(WDT_FEED, 0x12).unwrap();
    m.advance(start + 50_000 + 83_200);
    assert!(m.take_watchdog_bite());
    assert!(!m.take_watchdog_bite(), "once");
    m.advance(start + 10_000_000);
    assert!(!m.take_watchdog_bite());
    m.reset(ResetCause::Watchdog);
    assert_eq!(m.read32(RTC_CAUSE).unwrap() & 0xF, 4);
    assert_eq!(m.read32(WDT_CTRL), Ok(0));
}

// ---- GPIO ----

const GPIO_OUT: u32 = GPIO_BASE + peripherals::gpio::reg::OUT;
const GPIO_IN: u32 = GPIO_BASE + peripherals::gpio::reg::IN;

#[test]
fn gpio_changes_are_recorded_with_their_cycle() {
    let mut m = machine();
    m.write32(GPIO_OUT + 0x10, 1 << 2).unwrap();
    m.advance(100);
    m.write32(GPIO_OUT + 0x04, 1 << 2).unwrap();
    m.write32(GPIO_OUT + 0x04, 1 << 2).unwrap();
    m.advance(250);
    m.write32(GPIO_OUT + 0x08, 1 << 2).unwrap();
    m.write32(GPIO_OUT, 0x8001).unwrap();
    assert_eq!(m.gpio_out(), 0x8001);
    assert_eq!(
        m.take_gpio_events(),
        vec![(100, 1 << 2), (250, 0), (250, 0x8001)]
    );
    assert!(m.take_gpio_events().is_empty());
    assert_eq!(m.read32(GPIO_OUT + 0x0C), Ok(1 << 2));
    assert_eq!(
        m.read32(GPIO_IN).unwrap() & 1 << 2,
        0,
        "an output reads its level"
    );
}

#[test]
fn gpio_events_are_bounded() {
    let mut m = machine();
    for value in 0..(MAX_GPIO_EVENTS as u32 + 10) {
        m.write32(GPIO_OUT, value & 0xFFFF).unwrap();
    }
    assert_eq!(m.take_gpio_events().len(), MAX_GPIO_EVENTS);
}

#[test]
fn gpio_inputs_show_the_boot_strapping() {
    let mut m = machine();
    let input = m.read32(GPIO_IN).unwrap();
    assert_eq!(input & 1, 0, "GPIO0 low in download mode");
    assert_eq!(input & 1 << 2, 1 << 2);
    assert_eq!(input & 1 << 15, 0);
    assert_eq!((input >> 16) & 7, 1, "boot mode (1,7)");
    let mut booted = machine_with(BootMode::Flash, SpiFlash::blank(MIB).unwrap());
    let input = booted.read32(GPIO_IN).unwrap();
    assert_eq!(input & 1, 1);
    assert_eq!((input >> 16) & 7, 3, "boot mode (3,6)");
}

// ---- RTC ----

#[test]
fn rtc_reports_the_reset_cause_and_keeps_its_memory_over_warm_resets() {
    let mut m = machine();
    assert_eq!(m.read32(RTC_CAUSE), Ok(1));
    m.write32(RTC_CAUSE, 0).unwrap();
    assert_eq!(m.read32(RTC_CAUSE), Ok(1), "read-only");
    m.write32(RTC_MEMORY_WORD, 0xC0FFEE).unwrap();
    m.write32(RTC_REGISTER, 42).unwrap();
    m.write32(DRAM.start, 1).unwrap();
    m.reset(ResetCause::ExternalPin);
    assert_eq!(m.reset_cause(), ResetCause::ExternalPin);
    assert_eq!(m.read32(RTC_CAUSE), Ok(2));
    assert_eq!(m.read32(RTC_MEMORY_WORD), Ok(0xC0FFEE));
    assert_eq!(m.read32(RTC_REGISTER), Ok(42));
    assert_eq!(m.read32(DRAM.start), Ok(0));
    m.reset(ResetCause::PowerOn);
    assert_eq!(m.read32(RTC_MEMORY_WORD), Ok(0));
    assert_eq!(m.read32(RTC_REGISTER), Ok(0));
}

#[test]
fn microsecond_counter_follows_machine_time() {
    let mut m = machine();
    m.advance(52_000_000);
    assert_eq!(m.read32(0x3FF2_0C00), Ok(1_000_000));
    m.set_apb_clock_hz(80_000_000);
    m.advance(52_000_000 + 80);
    assert_eq!(m.read32(0x3FF2_0C00), Ok(1_000_001));
}

// ---- SPI ----

const SPI0: u32 = SPI0_BASE;

/// esptool's `run_spiflash_command` over READ_REG/WRITE_REG; returns W0.
fn user_command(
    m: &mut Machine,
    command: u8,
    data: &[u8],
    read_bits: u32,
    address: Option<(u32, u32)>,
) -> u32 {
    let data_bits = data.len() as u32 * 8;
    let (address_value, address_bits) = address.unwrap_or((0, 0));
    let field = |bits: u32| bits.saturating_sub(1);
    m.write_reg(
        SPI0 + 0x20,
        field(read_bits) << 8 | field(data_bits) << 17 | field(address_bits) << 26,
        u32::MAX,
    );
    let mut flags = 1 << 31;
    if address_bits > 0 {
        flags |= 1 << 30;
    }
    if read_bits > 0 {
        flags |= 1 << 28;
    }
    if data_bits > 0 {
        flags |= 1 << 27;
    }
    m.write_reg(SPI0 + 0x1C, flags, u32::MAX);
    m.write_reg(SPI0 + 0x24, 7 << 28 | u32::from(command), u32::MAX);
    if address_bits > 0 {
        m.write_reg(SPI0 + 0x04, address_value << (32 - address_bits), u32::MAX);
    }
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(4) * 4, 0);
    for (index, word) in padded.chunks(4).enumerate() {
        let word = u32::from_le_bytes(word.try_into().unwrap());
        m.write_reg(SPI0 + 0x40 + 4 * index as u32, word, u32::MAX);
    }
    m.write_reg(SPI0, 1 << 18, u32::MAX);
    assert_eq!(m.read_reg(SPI0), 0, "the USR bit clears when done");
    m.read_reg(SPI0 + 0x40)
}

#[test]
fn spi_user_commands_reach_the_flash_only_once_attached() {
    let mut m = machine();
    assert_eq!(
        user_command(&mut m, 0x9F, &[], 24, None) & 0xFF_FFFF,
        0xFF_FFFF
    );
    m.set_flash_attached(true);
    assert_eq!(
        user_command(&mut m, 0x9F, &[], 24, None) & 0xFF_FFFF,
        0x14_40EF
    );
    assert_eq!(
        user_command(&mut m, 0x5A, &[], 32, Some((0, 24))),
        crate::flash::SFDP_SIGNATURE
    );
    assert_eq!(user_command(&mut m, 0x05, &[], 8, None) & 0xFF, 0);
    user_command(&mut m, 0x06, &[], 0, None);
    user_command(&mut m, 0x01, &[0x1C, 0x00], 0, None);
    assert_eq!(user_command(&mut m, 0x05, &[], 8, None) & 0xFF, 0x1C);
    assert_eq!(m.flash().status_registers()[0] & 0x1C, 0x1C);
}

#[test]
fn spi_built_in_commands_erase_program_and_read() {
    let flash = SpiFlash::new(vec![0; MIB], FlashOptions::default()).unwrap();
    let mut m = machine_with(BootMode::Download, flash);
    m.set_flash_attached(true);
    // RDID.
    m.write32(SPI0, 1 << 28).unwrap();
    assert_eq!(m.read32(SPI0), Ok(0));
    assert_eq!(m.read32(SPI0 + 0x40).unwrap() & 0xFF_FFFF, 0x14_40EF);
    // WREN, then SE at 0x1000.
    m.write32(SPI0, 1 << 30).unwrap();
    m.write32(SPI0 + 0x04, 0x1234).unwrap();
    m.write32(SPI0, 1 << 24).unwrap();
    assert!(m.flash().as_bytes()[0x1000..0x2000]
        .iter()
        .all(|&b| b == 0xFF));
    assert_eq!(m.flash().as_bytes()[0xFFF], 0);
    // RDSR: WEL cleared by the erase.
    m.write32(SPI0, 1 << 27).unwrap();
    assert_eq!(m.read32(SPI0 + 0x10), Ok(0));
    // WREN, PP of 6 bytes at 0x1010.
    m.write32(SPI0, 1 << 30).unwrap();
    m.write32(SPI0 + 0x40, 0x4433_2211).unwrap();
    m.write32(SPI0 + 0x44, 0x0000_6655).unwrap();
    m.write32(SPI0 + 0x04, 6 << 24 | 0x1010).unwrap();
    m.write32(SPI0, 1 << 25).unwrap();
    assert_eq!(
        &m.flash().as_bytes()[0x1010..0x1017],
        &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xFF]
    );
    // READ 4 bytes at 0x100F into W0.
    m.write32(SPI0 + 0x04, 4 << 24 | 0x100F).unwrap();
    m.write32(SPI0, 1 << 31).unwrap();
    assert_eq!(m.read32(SPI0 + 0x40), Ok(0x3322_11FF));
    // WRSR writes RD_STATUS as status registers 1 and 2.
    m.write32(SPI0, 1 << 30).unwrap();
    m.write32(SPI0 + 0x10, 0x0200 | 0x04).unwrap();
    m.write32(SPI0, 1 << 26).unwrap();
    assert_eq!(m.flash().status_registers()[..2], [0x04, 0x02]);
}

#[test]
fn spi_built_in_commands_without_the_flash_read_all_ones() {
    let flash = SpiFlash::new(vec![0; MIB], FlashOptions::default()).unwrap();
    let mut m = machine_with(BootMode::Download, flash);
    m.write32(SPI0, 1 << 27).unwrap();
    assert_eq!(m.read32(SPI0 + 0x10), Ok(0xFF));
    m.write32(SPI0 + 0x04, 0x1000).unwrap();
    m.write32(SPI0, 1 << 30).unwrap();
    m.write32(SPI0, 1 << 24).unwrap();
    assert!(m.flash().as_bytes().iter().all(|&b| b == 0));
    // SPI1 has nothing on it and its commands complete at once.
    m.write32(0x6000_0100, 1 << 18).unwrap();
    assert_eq!(m.read32(0x6000_0100), Ok(0));
}

// ---- the bounded store, tracing ----

#[test]
fn unknown_registers_are_stored_up_to_the_bound_then_ignored() {
    let mut m = machine();
    let addresses: Vec<u32> = (0..MAX_UNKNOWN_REGISTERS as u32 + 10)
        .map(|n| 0x3FF3_0000 + 4 * n)
        .collect();
    let traced_from = MAX_UNKNOWN_REGISTERS - 2;
    for (index, &address) in addresses.iter().enumerate() {
        if index == traced_from {
            m.set_trace(true);
        }
        m.write32(address, address ^ 0x5555).unwrap();
    }
    assert_eq!(m.unknown.len(), MAX_UNKNOWN_REGISTERS);
    assert_eq!(m.read32(addresses[0]), Ok(addresses[0] ^ 0x5555));
    let last_stored = addresses[MAX_UNKNOWN_REGISTERS - 1];
    assert_eq!(m.read32(last_stored), Ok(last_stored ^ 0x5555));
    assert_eq!(m.read32(addresses[MAX_UNKNOWN_REGISTERS]), Ok(0));
    let trace = m.take_trace();
    assert_eq!(trace.len(), 3, "{trace:?}");
    assert!(trace[0].contains(&format!("{:#010x}", addresses[traced_from])));
    assert!(trace[2].contains("new ones read 0"), "{}", trace[2]);
    // Unknown registers in the peripheral range too, and a reset forgets them.
    m.write32(0x6000_0A00, 5).unwrap();
    m.reset(ResetCause::ExternalPin);
    assert!(m.unknown.is_empty());
    assert_eq!(m.read32(0x6000_0A00), Ok(0));
}

// ---- nothing panics, memory stays bounded ----

#[derive(Debug, Clone)]
enum Op {
    Read(u8, u32),
    Write(u8, u32, u32),
    Fetch(u32),
    ReadReg(u32),
    WriteReg(u32, u32, u32),
    Advance(u64),
    Receive(Vec<u8>),
    TakeTx(usize),
    LineIdle,
    Lines,
    Reset,
}

fn address() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        0x6000_0000u32..0x6000_2000,
        0x3FF0_0000u32..0x3FF0_0100,
        0x3FFE_8000u32..0x4000_0000,
        0x4010_0000u32..0x4011_0000,
        0x4020_0000u32..0x4030_0000,
        0x3FF0_0100u32..0x3FFE_8000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, address()).prop_map(|(width, a)| Op::Read(width, a)),
        (0u8..3, address(), any::<u32>()).prop_map(|(width, a, v)| Op::Write(width, a, v)),
        address().prop_map(Op::Fetch),
        address().prop_map(Op::ReadReg),
        (address(), any::<u32>(), any::<u32>()).prop_map(|(a, v, m)| Op::WriteReg(a, v, m)),
        (0u64..1 << 40).prop_map(Op::Advance),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Receive),
        (0usize..300).prop_map(Op::TakeTx),
        Just(Op::LineIdle),
        Just(Op::Lines),
        Just(Op::Reset),
    ]
}

proptest! {
    #[test]
    fn arbitrary_accesses_never_panic_and_stay_bounded(ops in proptest::collection::vec(op(), 1..200)) {
        let mut m = machine();
        m.set_trace(true);
        m.set_flash_attached(true);
        m.set_flash_cache(true);
        let mut cycles = 0u64;
        for op in ops {
            match op {
                Op::Read(0, a) => { let _ = m.read8(a); }
                Op::Read(1, a) => { let _ = m.read16(a); }
                Op::Read(_, a) => { let _ = m.read32(a); }
                Op::Write(0, a, v) => { let _ = m.write8(a, v as u8); }
                Op::Write(1, a, v) => { let _ = m.write16(a, v as u16); }
                Op::Write(_, a, v) => { let _ = m.write32(a, v); }
                Op::Fetch(a) => { let _ = m.fetch32(a); }
                Op::ReadReg(a) => { m.read_reg(a); }
                Op::WriteReg(a, v, mask) => m.write_reg(a, v, mask),
                Op::Advance(n) => {
                    cycles = cycles.saturating_add(n);
                    m.advance(cycles);
                    m.cycles_until_next_event();
                    m.take_watchdog_bite();
                }
                Op::Receive(bytes) => { m.uart_receive_lossy(&bytes); }
                Op::TakeTx(max) => { m.uart_take_tx(&mut Vec::new(), max); }
                Op::LineIdle => m.uart_line_idle(),
                Op::Lines => { m.interrupt_lines(); }
                Op::Reset => {
                    m.reset(ResetCause::ExternalPin);
                    cycles = 0;
                }
            }
            prop_assert!(m.unknown.len() <= MAX_UNKNOWN_REGISTERS);
            prop_assert!(m.trace.lines.len() <= MAX_TRACE_LINES);
            prop_assert!(m.uart1_output.len() <= MAX_UART1_OUTPUT);
            prop_assert!(m.uart_rx_queued() <= UART_FIFO_LEN);
            prop_assert!(m.uart_tx_queued() <= UART_FIFO_LEN);
        }
        prop_assert!(m.take_gpio_events().len() <= MAX_GPIO_EVENTS);
    }
}
