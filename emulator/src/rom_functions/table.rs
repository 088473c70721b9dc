//! The single home of ROM addresses in Rust: every address the virtual chip knows in the mask
//! ROM, its name (from the SDK's `eagle.rom.addr.v6.ld`, or what the address is used for), and
//! the Rust routine that does its work, if any. A known name without a routine halts the chip
//! with a message naming it; so does an address not in the table.

use super::{exceptions, flash, guest::Fault, libgcc, md5, printf, strings, system, uart};
use super::{Call, RomHost, RomOutcome};

/// Where the esptool stubs return to (they put it in a0 before jumping to their main): the
/// ROM's UART loader, which then runs the firmware in flash. Not in the linker script.
pub const LOADER_RETURN: u32 = 0x4000_10a8;
/// Where level-1 interrupt and exception handlers return to (`_xtos_return_from_exc`).
pub const RETURN_FROM_EXCEPTION: u32 = 0x4000_dc54;
/// The handler of interrupts nothing was attached to (`_xtos_unhandled_interrupt`).
pub const UNHANDLED_INTERRUPT: u32 = 0x4000_dc3c;
/// The handler of exceptions nothing was registered for (`_xtos_unhandled_exception`).
pub const UNHANDLED_EXCEPTION: u32 = 0x4000_dc44;
/// Where a guest character function called by `ets_printf`/`ets_vprintf` returns to: inside
/// `ets_vprintf`, an address no program calls.
pub const PUTC_RETURN: u32 = 0x4000_1f04;

/// One address in the ROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RomFunction {
    /// Its address.
    pub address: u32,
    /// Its name in the SDK's linker script, or a description.
    pub name: &'static str,
    /// What runs when the PC gets there; `None`: the virtual chip halts.
    pub(super) routine: Option<Routine>,
}

impl RomFunction {
    /// True if the virtual chip does what the ROM does at this address.
    pub fn implemented(&self) -> bool {
        self.routine.is_some()
    }
}

/// The Rust routines behind ROM addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routine {
    // Exception vectors and the xtos layer.
    DebugVector,
    NmiVector,
    KernelVector,
    UserVector,
    DoubleVector,
    ReturnFromException,
    UnhandledException,
    UnhandledInterrupt,
    XtosSetExceptionHandler,
    XtosSetInterruptHandler,
    XtosSetInterruptHandlerArg,
    XtosIntsOn,
    XtosIntsOff,
    XtosSetIntlevel,
    XthalGetCcount,
    XthalSetCcompare,
    XthalGetCcompare,
    XthalGetIntread,
    XthalSetIntclear,
    EtsIsrAttach,
    EtsIsrMask,
    EtsIsrUnmask,
    EtsIntrLock,
    EtsIntrUnlock,
    // Boot, reset, time, GPIO, watchdog.
    RomEntry,
    LoaderReturn,
    SoftwareReset,
    RtcGetResetReason,
    EtsSetUserStart,
    EtsRun,
    EtsDelayUs,
    EtsGetCpuFrequency,
    EtsUpdateCpuFrequency,
    GpioOutputSet,
    GpioInputGet,
    EtsWdtDisable,
    EtsWdtEnable,
    EtsWdtRestore,
    EtsWdtGetMode,
    // libgcc helpers.
    Udivsi3,
    Divsi3,
    Umodsi3,
    Muldi3,
    Udivdi3,
    Divdi3,
    Umoddi3,
    Umulsidi3,
    // Memory and strings.
    Memcpy,
    Memmove,
    Memset,
    Memcmp,
    Bzero,
    XthalBcopy,
    Strlen,
    Strcmp,
    Strcpy,
    Strncmp,
    Strncpy,
    Strstr,
    // UART and printing.
    UartTxOneChar,
    UartRxOneChar,
    UartRxOneCharBlock,
    UartDivModify,
    EtsPrintf,
    EtsVprintf,
    PutcReturn,
    EtsPutc,
    EtsWriteChar,
    EtsInstallPutc1,
    EtsInstallUartPrintf,
    // SPI flash.
    SpiRead,
    SpiWrite,
    SpiEraseSector,
    SpiEraseBlock,
    SpiEraseChip,
    SpiEraseArea,
    SpiUnlock,
    SpiLock,
    SpiReadStatus,
    SpiWriteStatus,
    SpiWriteEnable,
    WaitSpiIdle,
    SpiParamCfg,
    SpiFlashAttach,
    SelectSpiFunction,
    SpiReadModeConfig,
    CacheReadEnable,
    CacheReadDisable,
    // MD5.
    Md5Init,
    Md5Update,
    Md5Final,
}

impl Routine {
    pub(super) fn run<H: RomHost>(self, call: &mut Call<'_, H>) -> Result<RomOutcome, Fault> {
        use Routine::*;
        match self {
            DebugVector => exceptions::debug_vector(call),
            NmiVector => exceptions::nmi_vector(call),
            KernelVector | UserVector => exceptions::exception_vector(call),
            DoubleVector => exceptions::double_vector(call),
            ReturnFromException => exceptions::return_from_exception(call),
            UnhandledException => exceptions::unhandled_exception(call),
            UnhandledInterrupt => exceptions::unhandled_interrupt(call),
            XtosSetExceptionHandler => exceptions::set_exception_handler(call),
            XtosSetInterruptHandler => exceptions::set_interrupt_handler(call, None),
            XtosSetInterruptHandlerArg | EtsIsrAttach => {
                let arg = call.arg(2);
                exceptions::set_interrupt_handler(call, Some(arg))
            }
            XtosIntsOn => exceptions::ints_on(call, true),
            XtosIntsOff => exceptions::ints_off(call, true),
            EtsIsrUnmask => exceptions::ints_on(call, false),
            EtsIsrMask => exceptions::ints_off(call, false),
            XtosSetIntlevel => exceptions::set_intlevel(call),
            XthalGetCcount => exceptions::get_ccount(call),
            XthalSetCcompare => exceptions::set_ccompare(call),
            XthalGetCcompare => exceptions::get_ccompare(call),
            XthalGetIntread => exceptions::get_intread(call),
            XthalSetIntclear => exceptions::set_intclear(call),
            EtsIntrLock => exceptions::intr_lock(call),
            EtsIntrUnlock => exceptions::intr_unlock(call),
            RomEntry => Ok(RomOutcome::Reset(super::ResetKind::RomEntry)),
            LoaderReturn => Ok(RomOutcome::Reset(super::ResetKind::ReturnToLoader)),
            SoftwareReset => Ok(RomOutcome::Reset(super::ResetKind::Software)),
            RtcGetResetReason => system::rtc_get_reset_reason(call),
            EtsSetUserStart => system::set_user_start(call),
            EtsRun => system::ets_run(call),
            EtsDelayUs => system::delay_us(call),
            EtsGetCpuFrequency => system::get_cpu_frequency(call),
            EtsUpdateCpuFrequency => system::update_cpu_frequency(call),
            GpioOutputSet => system::gpio_output_set(call),
            GpioInputGet => system::gpio_input_get(call),
            EtsWdtDisable => system::wdt_disable(call),
            EtsWdtEnable => system::wdt_enable(call),
            EtsWdtRestore => system::wdt_restore(call),
            EtsWdtGetMode => system::wdt_get_mode(call),
            Udivsi3 => libgcc::udivsi3(call),
            Divsi3 => libgcc::divsi3(call),
            Umodsi3 => libgcc::umodsi3(call),
            Muldi3 => libgcc::muldi3(call),
            Udivdi3 => libgcc::udivdi3(call),
            Divdi3 => libgcc::divdi3(call),
            Umoddi3 => libgcc::umoddi3(call),
            Umulsidi3 => libgcc::umulsidi3(call),
            Memcpy => strings::memcpy(call),
            Memmove => strings::memmove(call),
            Memset => strings::memset(call),
            Memcmp => strings::memcmp(call),
            Bzero => strings::bzero(call),
            XthalBcopy => strings::bcopy(call),
            Strlen => strings::strlen(call),
            Strcmp => strings::strcmp(call),
            Strcpy => strings::strcpy(call),
            Strncmp => strings::strncmp(call),
            Strncpy => strings::strncpy(call),
            Strstr => strings::strstr(call),
            UartTxOneChar => uart::tx_one_char(call),
            UartRxOneChar => uart::rx_one_char(call),
            UartRxOneCharBlock => uart::rx_one_char_block(call),
            UartDivModify => uart::div_modify(call),
            EtsPutc => uart::ets_putc(call),
            EtsWriteChar => uart::write_char(call),
            EtsInstallPutc1 => uart::install_putc1(call),
            EtsInstallUartPrintf => uart::install_uart_printf(call),
            EtsPrintf => printf::ets_printf(call),
            EtsVprintf => printf::ets_vprintf(call),
            PutcReturn => printf::putc_returned(call),
            SpiRead => flash::spi_read(call),
            SpiWrite => flash::spi_write(call),
            SpiEraseSector => flash::erase_sector(call),
            SpiEraseBlock => flash::erase_block(call),
            SpiEraseChip => flash::erase_chip(call),
            SpiEraseArea => flash::erase_area(call),
            SpiUnlock => flash::unlock(call),
            SpiLock => flash::lock(call),
            SpiReadStatus => flash::read_status(call),
            SpiWriteStatus => flash::write_status(call),
            SpiWriteEnable => flash::write_enable(call),
            WaitSpiIdle => flash::wait_idle(call),
            SpiParamCfg => flash::param_cfg(call),
            SpiFlashAttach | SelectSpiFunction => flash::attach(call),
            SpiReadModeConfig => flash::read_mode_config(call),
            CacheReadEnable => flash::cache_read_enable(call),
            CacheReadDisable => flash::cache_read_disable(call),
            Md5Init => md5::init(call),
            Md5Update => md5::update(call),
            Md5Final => md5::finish(call),
        }
    }
}

const fn entry(address: u32, name: &'static str, routine: Option<Routine>) -> RomFunction {
    RomFunction {
        address,
        name,
        routine,
    }
}

/// Every ROM address the virtual chip knows, sorted by address.
pub const ROM_FUNCTIONS: &[RomFunction] = {
    use Routine::*;
    &[
        entry(0x4000_0010, "_DebugExceptionVector", Some(DebugVector)),
        entry(0x4000_0020, "_NMIExceptionVector", Some(NmiVector)),
        entry(0x4000_0030, "_KernelExceptionVector", Some(KernelVector)),
        entry(0x4000_0050, "_UserExceptionVector", Some(UserVector)),
        entry(0x4000_0070, "_DoubleExceptionVector", Some(DoubleVector)),
        entry(0x4000_0080, "_ResetVector", Some(RomEntry)),
        entry(0x4000_00a4, "_ResetHandler", Some(RomEntry)),
        entry(
            0x4000_0454,
            "_xtos_set_exception_handler",
            Some(XtosSetExceptionHandler),
        ),
        entry(0x4000_048c, "_xtos_l1int_handler", None),
        entry(0x4000_05f0, "srand", None),
        entry(0x4000_0600, "rand", None),
        entry(0x4000_0650, "__muldi3", Some(Muldi3)),
        entry(0x4000_0688, "xthal_bcopy", Some(XthalBcopy)),
        entry(0x4000_06c4, "xthal_memcpy", Some(Memcpy)),
        entry(0x4000_0dc0, "ets_set_idle_cb", None),
        entry(0x4000_0dd0, "ets_task", None),
        entry(0x4000_0e04, "ets_run", Some(EtsRun)),
        entry(0x4000_0e24, "ets_post", None),
        entry(0x4000_0f74, "ets_intr_lock", Some(EtsIntrLock)),
        entry(0x4000_0f80, "ets_intr_unlock", Some(EtsIntrUnlock)),
        entry(0x4000_0f88, "ets_isr_attach", Some(EtsIsrAttach)),
        entry(0x4000_0f98, "ets_isr_mask", Some(EtsIsrMask)),
        entry(0x4000_0fa8, "ets_isr_unmask", Some(EtsIsrUnmask)),
        entry(0x4000_0fbc, "ets_set_user_start", Some(EtsSetUserStart)),
        entry(0x4000_0fec, "main", Some(RomEntry)),
        entry(
            LOADER_RETURN,
            "UART loader, after uploaded code returns",
            Some(LoaderReturn),
        ),
        entry(0x4000_18a4, "ets_memset", Some(Memset)),
        entry(0x4000_18b4, "ets_memcpy", Some(Memcpy)),
        entry(0x4000_18c4, "ets_memmove", Some(Memmove)),
        entry(0x4000_18d4, "ets_memcmp", Some(Memcmp)),
        entry(0x4000_1da0, "ets_write_char", Some(EtsWriteChar)),
        entry(0x4000_1f00, "ets_vprintf", Some(EtsVprintf)),
        entry(
            PUTC_RETURN,
            "ets_vprintf, after the character function returns",
            Some(PutcReturn),
        ),
        entry(0x4000_242c, "ets_install_putc1", Some(EtsInstallPutc1)),
        entry(
            0x4000_2438,
            "ets_install_uart_printf",
            Some(EtsInstallUartPrintf),
        ),
        entry(0x4000_24cc, "ets_printf", Some(EtsPrintf)),
        entry(0x4000_25e0, "rtc_get_reset_reason", Some(RtcGetResetReason)),
        entry(0x4000_264c, "software_reset", Some(SoftwareReset)),
        entry(0x4000_2a88, "ets_strcpy", Some(Strcpy)),
        entry(0x4000_2a98, "ets_strncpy", Some(Strncpy)),
        entry(0x4000_2aa8, "ets_strcmp", Some(Strcmp)),
        entry(0x4000_2ab8, "ets_strncmp", Some(Strncmp)),
        entry(0x4000_2ac8, "ets_strlen", Some(Strlen)),
        entry(0x4000_2ae8, "ets_bzero", Some(Bzero)),
        entry(0x4000_2be8, "ets_putc", Some(EtsPutc)),
        entry(0x4000_2c48, "ets_timer_setfn", None),
        entry(0x4000_2cc4, "ets_timer_arm", None),
        entry(0x4000_2d40, "ets_timer_disarm", None),
        entry(0x4000_2e68, "ets_timer_init", None),
        entry(0x4000_2ecc, "ets_delay_us", Some(EtsDelayUs)),
        entry(
            0x4000_2f04,
            "ets_update_cpu_frequency",
            Some(EtsUpdateCpuFrequency),
        ),
        entry(
            0x4000_2f0c,
            "ets_get_cpu_frequency",
            Some(EtsGetCpuFrequency),
        ),
        entry(0x4000_2f34, "ets_wdt_get_mode", Some(EtsWdtGetMode)),
        entry(0x4000_2fa0, "ets_wdt_enable", Some(EtsWdtEnable)),
        entry(0x4000_30f0, "ets_wdt_disable", Some(EtsWdtDisable)),
        entry(0x4000_3158, "ets_wdt_restore", Some(EtsWdtRestore)),
        entry(0x4000_3170, "ets_wdt_init", None),
        entry(0x4000_383c, "uartAttach", None),
        entry(0x4000_38a4, "uart_buff_switch", None),
        entry(0x4000_39d8, "uart_div_modify", Some(UartDivModify)),
        entry(0x4000_3a14, "Uart_Init", None),
        entry(0x4000_3b30, "uart_tx_one_char", Some(UartTxOneChar)),
        entry(
            0x4000_3b64,
            "uart_rx_one_char_block",
            Some(UartRxOneCharBlock),
        ),
        entry(0x4000_3b8c, "uart_rx_one_char", Some(UartRxOneChar)),
        entry(0x4000_3bbc, "uart_rx_intr_handler", None),
        entry(0x4000_3ec8, "uart_rx_readbuff", None),
        entry(0x4000_3f58, "SelectSpiFunction", Some(SelectSpiFunction)),
        entry(0x4000_43c8, "SPI_read_status", Some(SpiReadStatus)),
        entry(0x4000_4400, "SPI_write_status", Some(SpiWriteStatus)),
        entry(0x4000_443c, "SPI_write_enable", Some(SpiWriteEnable)),
        entry(0x4000_448c, "Wait_SPI_Idle", Some(WaitSpiIdle)),
        entry(0x4000_44c0, "Enable_QMode", None),
        entry(0x4000_4644, "spi_flash_attach", Some(SpiFlashAttach)),
        entry(0x4000_4678, "Cache_Read_Enable", Some(CacheReadEnable)),
        entry(0x4000_47f0, "Cache_Read_Disable", Some(CacheReadDisable)),
        entry(0x4000_4878, "SPIUnlock", Some(SpiUnlock)),
        entry(0x4000_48a8, "SPILock", Some(SpiLock)),
        entry(0x4000_48ec, "SPIReadModeCnfig", Some(SpiReadModeConfig)),
        entry(0x4000_4984, "SPIEraseChip", Some(SpiEraseChip)),
        entry(0x4000_49b4, "SPIEraseBlock", Some(SpiEraseBlock)),
        entry(0x4000_4a00, "SPIEraseSector", Some(SpiEraseSector)),
        entry(0x4000_4a4c, "SPIWrite", Some(SpiWrite)),
        entry(0x4000_4b1c, "SPIRead", Some(SpiRead)),
        entry(0x4000_4b44, "SPIEraseArea", Some(SpiEraseArea)),
        entry(0x4000_4c2c, "SPIParamCfg", Some(SpiParamCfg)),
        entry(0x4000_4c50, "gpio_init", None),
        entry(0x4000_4cd0, "gpio_output_set", Some(GpioOutputSet)),
        entry(0x4000_4cf0, "gpio_input_get", Some(GpioInputGet)),
        entry(0x4000_4d04, "gpio_register_set", None),
        entry(0x4000_4d5c, "gpio_register_get", None),
        entry(0x4000_9818, "MD5Init", Some(Md5Init)),
        entry(0x4000_9834, "MD5Update", Some(Md5Update)),
        entry(0x4000_9900, "MD5Final", Some(Md5Final)),
        entry(
            0x4000_bd28,
            "_xtos_set_interrupt_handler_arg",
            Some(XtosSetInterruptHandlerArg),
        ),
        entry(
            0x4000_bd70,
            "_xtos_set_interrupt_handler",
            Some(XtosSetInterruptHandler),
        ),
        entry(0x4000_bd84, "_xtos_ints_on", Some(XtosIntsOn)),
        entry(0x4000_bda4, "_xtos_ints_off", Some(XtosIntsOff)),
        entry(0x4000_bdc8, "strcmp", Some(Strcmp)),
        entry(0x4000_bec8, "strcpy", Some(Strcpy)),
        entry(0x4000_bf4c, "strlen", Some(Strlen)),
        entry(0x4000_bfa8, "strncmp", Some(Strncmp)),
        entry(0x4000_c0a0, "strncpy", Some(Strncpy)),
        entry(0x4000_c180, "__addsf3", None),
        entry(0x4000_c268, "__subsf3", None),
        entry(0x4000_c3dc, "__mulsf3", None),
        entry(0x4000_c538, "__adddf3", None),
        entry(0x4000_ce60, "__divdi3", Some(Divdi3)),
        entry(0x4000_d310, "__udivdi3", Some(Udivdi3)),
        entry(0x4000_d770, "__umoddi3", Some(Umoddi3)),
        entry(0x4000_dbfc, "_xtos_set_intlevel", Some(XtosSetIntlevel)),
        entry(
            UNHANDLED_INTERRUPT,
            "_xtos_unhandled_interrupt",
            Some(UnhandledInterrupt),
        ),
        entry(
            UNHANDLED_EXCEPTION,
            "_xtos_unhandled_exception",
            Some(UnhandledException),
        ),
        entry(
            RETURN_FROM_EXCEPTION,
            "_xtos_return_from_exc",
            Some(ReturnFromException),
        ),
        entry(0x4000_dc88, "__divsi3", Some(Divsi3)),
        entry(0x4000_dcf0, "__umulsidi3", Some(Umulsidi3)),
        entry(0x4000_dd38, "xthal_get_ccount", Some(XthalGetCcount)),
        entry(0x4000_dd40, "xthal_set_ccompare", Some(XthalSetCcompare)),
        entry(0x4000_dd4c, "xthal_get_ccompare", Some(XthalGetCcompare)),
        entry(0x4000_dd58, "xthal_get_intread", Some(XthalGetIntread)),
        entry(0x4000_dd60, "xthal_set_intclear", Some(XthalSetIntclear)),
        entry(0x4000_de84, "bzero", Some(Bzero)),
        entry(0x4000_dea8, "memcmp", Some(Memcmp)),
        entry(0x4000_df48, "memcpy", Some(Memcpy)),
        entry(0x4000_e04c, "memmove", Some(Memmove)),
        entry(0x4000_e190, "memset", Some(Memset)),
        entry(0x4000_e1e0, "strstr", Some(Strstr)),
        entry(0x4000_e21c, "__udivsi3", Some(Udivsi3)),
        entry(0x4000_e268, "__umodsi3", Some(Umodsi3)),
    ]
};

/// The table entry at `address`, if the address is a known one.
pub(super) fn lookup(address: u32) -> Option<&'static RomFunction> {
    static INDEX: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = vec![u16::MAX; 0x1_0000];
        for (n, function) in ROM_FUNCTIONS.iter().enumerate() {
            if let Some(slot) = index.get_mut(function.address.wrapping_sub(0x4000_0000) as usize) {
                *slot = n as u16;
            }
        }
        index
    });
    let slot = *index.get(address.wrapping_sub(0x4000_0000) as usize)?;
    ROM_FUNCTIONS.get(usize::from(slot))
}

/// The address of the ROM function called `name` (tests and tools use this).
pub fn address_of(name: &str) -> Option<u32> {
    ROM_FUNCTIONS
        .iter()
        .find(|function| function.name == name)
        .map(|function| function.address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_inside_the_rom() {
        for pair in ROM_FUNCTIONS.windows(2) {
            assert!(
                pair[0].address < pair[1].address,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
        for function in ROM_FUNCTIONS {
            assert!((0x4000_0000..0x4001_0000).contains(&function.address));
        }
    }

    #[test]
    fn every_rom_function_the_stubs_call_is_implemented() {
        // Every ROM address in the literal pools of esptool's two ESP8266 stubs (see the report).
        let called_by_stubs = [
            0x4000_0f88,
            0x4000_0f98,
            0x4000_0fa8,
            0x4000_0fbc,
            0x4000_264c,
            0x4000_2ecc,
            0x4000_39d8,
            0x4000_3b30,
            0x4000_3b8c,
            0x4000_3f58,
            0x4000_4644,
            0x4000_4878,
            0x4000_4984,
            0x4000_49b4,
            0x4000_4a00,
            0x4000_4a4c,
            0x4000_4b1c,
            0x4000_4c2c,
            0x4000_9818,
            0x4000_9834,
            0x4000_9900,
            0x4000_df48,
            0x4000_e04c,
            0x4000_e190,
            0x4000_e21c,
            0x4000_e268,
            LOADER_RETURN,
        ];
        for address in called_by_stubs {
            let function = lookup(address).expect("known address");
            assert!(function.implemented(), "{}", function.name);
        }
    }

    #[test]
    fn names_resolve() {
        assert_eq!(address_of("SPIWrite"), Some(0x4000_4a4c));
        assert_eq!(address_of("nothing"), None);
    }
}
