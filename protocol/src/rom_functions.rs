//! The ESP8266 mask ROM's functions: the name and address of every one that flashlab's programs,
//! flashlab's stub, esptool's stubs or the boot path reach (the public facts of the SDK's
//! `eagle.rom.addr.v6.ld`), and the return points inside ROM code that the virtual chip needs.
//! The emulator runs its Rust version of a function when the PC gets to its address;
//! `lx106-programs` renders the linker script (`programs/ld/rom.ld`) that places them for the C
//! programs and the stub from this table.

/// A function in the mask ROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RomFunction {
    /// Its name in the SDK's linker script.
    pub name: &'static str,
    /// Its address.
    pub address: u32,
}

/// Where level-1 interrupt and exception handlers return to (`_xtos_return_from_exc`).
pub const XTOS_RETURN_FROM_EXC: u32 = 0x4000_dc54;
/// The handler of interrupts nothing was attached to (`_xtos_unhandled_interrupt`).
pub const XTOS_UNHANDLED_INTERRUPT: u32 = 0x4000_dc3c;
/// The handler of exceptions nothing was registered for (`_xtos_unhandled_exception`).
pub const XTOS_UNHANDLED_EXCEPTION: u32 = 0x4000_dc44;

/// Where the esptool stubs return to (they put it in a0 before jumping to their main): inside
/// the ROM's UART loader, which then runs the firmware in flash. Not a function, so not in
/// [`ROM_FUNCTIONS`].
pub const LOADER_RETURN: u32 = 0x4000_10a8;
/// Where a character function called by `ets_printf`/`ets_vprintf` returns to: inside
/// `ets_vprintf`, an address no program calls. Not in [`ROM_FUNCTIONS`].
pub const PUTC_RETURN: u32 = 0x4000_1f04;

const fn rom(name: &'static str, address: u32) -> RomFunction {
    RomFunction { name, address }
}

/// Every ROM function flashlab knows, sorted by address.
pub const ROM_FUNCTIONS: &[RomFunction] = &[
    rom("_DebugExceptionVector", 0x4000_0010),
    rom("_NMIExceptionVector", 0x4000_0020),
    rom("_KernelExceptionVector", 0x4000_0030),
    rom("_UserExceptionVector", 0x4000_0050),
    rom("_DoubleExceptionVector", 0x4000_0070),
    rom("_ResetVector", 0x4000_0080),
    rom("_ResetHandler", 0x4000_00a4),
    rom("_xtos_set_exception_handler", 0x4000_0454),
    rom("_xtos_l1int_handler", 0x4000_048c),
    rom("srand", 0x4000_05f0),
    rom("rand", 0x4000_0600),
    rom("__muldi3", 0x4000_0650),
    rom("xthal_bcopy", 0x4000_0688),
    rom("xthal_memcpy", 0x4000_06c4),
    rom("ets_set_idle_cb", 0x4000_0dc0),
    rom("ets_task", 0x4000_0dd0),
    rom("ets_run", 0x4000_0e04),
    rom("ets_post", 0x4000_0e24),
    rom("ets_intr_lock", 0x4000_0f74),
    rom("ets_intr_unlock", 0x4000_0f80),
    rom("ets_isr_attach", 0x4000_0f88),
    rom("ets_isr_mask", 0x4000_0f98),
    rom("ets_isr_unmask", 0x4000_0fa8),
    rom("ets_set_user_start", 0x4000_0fbc),
    rom("main", 0x4000_0fec),
    rom("ets_memset", 0x4000_18a4),
    rom("ets_memcpy", 0x4000_18b4),
    rom("ets_memmove", 0x4000_18c4),
    rom("ets_memcmp", 0x4000_18d4),
    rom("ets_write_char", 0x4000_1da0),
    rom("ets_vprintf", 0x4000_1f00),
    rom("ets_install_putc1", 0x4000_242c),
    rom("ets_install_uart_printf", 0x4000_2438),
    rom("ets_printf", 0x4000_24cc),
    rom("rtc_get_reset_reason", 0x4000_25e0),
    rom("software_reset", 0x4000_264c),
    rom("ets_strcpy", 0x4000_2a88),
    rom("ets_strncpy", 0x4000_2a98),
    rom("ets_strcmp", 0x4000_2aa8),
    rom("ets_strncmp", 0x4000_2ab8),
    rom("ets_strlen", 0x4000_2ac8),
    rom("ets_bzero", 0x4000_2ae8),
    rom("ets_putc", 0x4000_2be8),
    rom("ets_timer_setfn", 0x4000_2c48),
    rom("ets_timer_arm", 0x4000_2cc4),
    rom("ets_timer_disarm", 0x4000_2d40),
    rom("ets_timer_init", 0x4000_2e68),
    rom("ets_delay_us", 0x4000_2ecc),
    rom("ets_update_cpu_frequency", 0x4000_2f04),
    rom("ets_get_cpu_frequency", 0x4000_2f0c),
    rom("ets_wdt_get_mode", 0x4000_2f34),
    rom("ets_wdt_enable", 0x4000_2fa0),
    rom("ets_wdt_disable", 0x4000_30f0),
    rom("ets_wdt_restore", 0x4000_3158),
    rom("ets_wdt_init", 0x4000_3170),
    rom("uartAttach", 0x4000_383c),
    rom("uart_buff_switch", 0x4000_38a4),
    rom("uart_div_modify", 0x4000_39d8),
    rom("Uart_Init", 0x4000_3a14),
    rom("uart_tx_one_char", 0x4000_3b30),
    rom("uart_rx_one_char_block", 0x4000_3b64),
    rom("uart_rx_one_char", 0x4000_3b8c),
    rom("uart_rx_intr_handler", 0x4000_3bbc),
    rom("uart_rx_readbuff", 0x4000_3ec8),
    rom("SelectSpiFunction", 0x4000_3f58),
    rom("SPI_read_status", 0x4000_43c8),
    rom("SPI_write_status", 0x4000_4400),
    rom("SPI_write_enable", 0x4000_443c),
    rom("Wait_SPI_Idle", 0x4000_448c),
    rom("Enable_QMode", 0x4000_44c0),
    rom("spi_flash_attach", 0x4000_4644),
    rom("Cache_Read_Enable", 0x4000_4678),
    rom("Cache_Read_Disable", 0x4000_47f0),
    rom("SPIUnlock", 0x4000_4878),
    rom("SPILock", 0x4000_48a8),
    rom("SPIReadModeCnfig", 0x4000_48ec),
    rom("SPIEraseChip", 0x4000_4984),
    rom("SPIEraseBlock", 0x4000_49b4),
    rom("SPIEraseSector", 0x4000_4a00),
    rom("SPIWrite", 0x4000_4a4c),
    rom("SPIRead", 0x4000_4b1c),
    rom("SPIEraseArea", 0x4000_4b44),
    rom("SPIParamCfg", 0x4000_4c2c),
    rom("gpio_init", 0x4000_4c50),
    rom("gpio_output_set", 0x4000_4cd0),
    rom("gpio_input_get", 0x4000_4cf0),
    rom("gpio_register_set", 0x4000_4d04),
    rom("gpio_register_get", 0x4000_4d5c),
    rom("MD5Init", 0x4000_9818),
    rom("MD5Update", 0x4000_9834),
    rom("MD5Final", 0x4000_9900),
    rom("_xtos_set_interrupt_handler_arg", 0x4000_bd28),
    rom("_xtos_set_interrupt_handler", 0x4000_bd70),
    rom("_xtos_ints_on", 0x4000_bd84),
    rom("_xtos_ints_off", 0x4000_bda4),
    rom("strcmp", 0x4000_bdc8),
    rom("strcpy", 0x4000_bec8),
    rom("strlen", 0x4000_bf4c),
    rom("strncmp", 0x4000_bfa8),
    rom("strncpy", 0x4000_c0a0),
    rom("__addsf3", 0x4000_c180),
    rom("__subsf3", 0x4000_c268),
    rom("__mulsf3", 0x4000_c3dc),
    rom("__adddf3", 0x4000_c538),
    rom("__divdi3", 0x4000_ce60),
    rom("__udivdi3", 0x4000_d310),
    rom("__umoddi3", 0x4000_d770),
    rom("_xtos_set_intlevel", 0x4000_dbfc),
    rom("_xtos_unhandled_interrupt", XTOS_UNHANDLED_INTERRUPT),
    rom("_xtos_unhandled_exception", XTOS_UNHANDLED_EXCEPTION),
    rom("_xtos_return_from_exc", XTOS_RETURN_FROM_EXC),
    rom("__divsi3", 0x4000_dc88),
    rom("__umulsidi3", 0x4000_dcf0),
    rom("xthal_get_ccount", 0x4000_dd38),
    rom("xthal_set_ccompare", 0x4000_dd40),
    rom("xthal_get_ccompare", 0x4000_dd4c),
    rom("xthal_get_intread", 0x4000_dd58),
    rom("xthal_set_intclear", 0x4000_dd60),
    rom("bzero", 0x4000_de84),
    rom("memcmp", 0x4000_dea8),
    rom("memcpy", 0x4000_df48),
    rom("memmove", 0x4000_e04c),
    rom("memset", 0x4000_e190),
    rom("strstr", 0x4000_e1e0),
    rom("__udivsi3", 0x4000_e21c),
    rom("__umodsi3", 0x4000_e268),
];

/// The address of the ROM function called `name`.
pub fn address_of(name: &str) -> Option<u32> {
    ROM_FUNCTIONS
        .iter()
        .find(|function| function.name == name)
        .map(|function| function.address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_map::ROM;

    #[test]
    fn sorted_unique_and_inside_the_rom() {
        for pair in ROM_FUNCTIONS.windows(2) {
            assert!(
                pair[0].address < pair[1].address,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
        for function in ROM_FUNCTIONS {
            assert!(ROM.contains(&function.address), "{}", function.name);
            let same_name = ROM_FUNCTIONS
                .iter()
                .filter(|other| other.name == function.name);
            assert_eq!(same_name.count(), 1, "{}", function.name);
        }
        for return_point in [LOADER_RETURN, PUTC_RETURN] {
            assert!(ROM.contains(&return_point));
            assert!(ROM_FUNCTIONS
                .iter()
                .all(|function| function.address != return_point));
        }
    }

    #[test]
    fn names_resolve() {
        assert_eq!(address_of("SPIWrite"), Some(0x4000_4a4c));
        assert_eq!(
            address_of("_xtos_return_from_exc"),
            Some(XTOS_RETURN_FROM_EXC)
        );
        assert_eq!(address_of("nothing"), None);
    }
}
