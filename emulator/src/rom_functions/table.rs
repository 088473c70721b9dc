//! The virtual chip's view of the mask ROM: every ROM address it knows (esp-protocol's table of
//! ROM functions, which holds the addresses, and the return points inside ROM code), and the
//! Rust routine that does the work at each, if any. A known name without a routine halts the
//! chip with a message naming it; so does an address not in the table.

use std::sync::OnceLock;

use esp_protocol::memory_map::ROM;
use esp_protocol::rom_functions::{LOADER_RETURN, PUTC_RETURN, ROM_FUNCTIONS};

use super::{exceptions, flash, guest::Fault, libgcc, md5, printf, strings, system, uart};
use super::{Call, RomHost, RomOutcome};

/// One address in the ROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RomFunction {
    /// Its address.
    pub address: u32,
    /// Its name in the SDK's linker script, or what a return point is.
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

/// The routine behind each ROM function the virtual chip does, by its name in esp-protocol's
/// [`ROM_FUNCTIONS`]; a function not listed halts the chip.
const ROUTINES: &[(&str, Routine)] = {
    use Routine::*;
    &[
        ("_DebugExceptionVector", DebugVector),
        ("_NMIExceptionVector", NmiVector),
        ("_KernelExceptionVector", KernelVector),
        ("_UserExceptionVector", UserVector),
        ("_DoubleExceptionVector", DoubleVector),
        ("_ResetVector", RomEntry),
        ("_ResetHandler", RomEntry),
        ("_xtos_set_exception_handler", XtosSetExceptionHandler),
        ("__muldi3", Muldi3),
        ("xthal_bcopy", XthalBcopy),
        ("xthal_memcpy", Memcpy),
        ("ets_run", EtsRun),
        ("ets_intr_lock", EtsIntrLock),
        ("ets_intr_unlock", EtsIntrUnlock),
        ("ets_isr_attach", EtsIsrAttach),
        ("ets_isr_mask", EtsIsrMask),
        ("ets_isr_unmask", EtsIsrUnmask),
        ("ets_set_user_start", EtsSetUserStart),
        ("main", RomEntry),
        ("ets_memset", Memset),
        ("ets_memcpy", Memcpy),
        ("ets_memmove", Memmove),
        ("ets_memcmp", Memcmp),
        ("ets_write_char", EtsWriteChar),
        ("ets_vprintf", EtsVprintf),
        ("ets_install_putc1", EtsInstallPutc1),
        ("ets_install_uart_printf", EtsInstallUartPrintf),
        ("ets_printf", EtsPrintf),
        ("rtc_get_reset_reason", RtcGetResetReason),
        ("software_reset", SoftwareReset),
        ("ets_strcpy", Strcpy),
        ("ets_strncpy", Strncpy),
        ("ets_strcmp", Strcmp),
        ("ets_strncmp", Strncmp),
        ("ets_strlen", Strlen),
        ("ets_bzero", Bzero),
        ("ets_putc", EtsPutc),
        ("ets_delay_us", EtsDelayUs),
        ("ets_update_cpu_frequency", EtsUpdateCpuFrequency),
        ("ets_get_cpu_frequency", EtsGetCpuFrequency),
        ("ets_wdt_get_mode", EtsWdtGetMode),
        ("ets_wdt_enable", EtsWdtEnable),
        ("ets_wdt_disable", EtsWdtDisable),
        ("ets_wdt_restore", EtsWdtRestore),
        ("uart_div_modify", UartDivModify),
        ("uart_tx_one_char", UartTxOneChar),
        ("uart_rx_one_char_block", UartRxOneCharBlock),
        ("uart_rx_one_char", UartRxOneChar),
        ("SelectSpiFunction", SelectSpiFunction),
        ("SPI_read_status", SpiReadStatus),
        ("SPI_write_status", SpiWriteStatus),
        ("SPI_write_enable", SpiWriteEnable),
        ("Wait_SPI_Idle", WaitSpiIdle),
        ("spi_flash_attach", SpiFlashAttach),
        ("Cache_Read_Enable", CacheReadEnable),
        ("Cache_Read_Disable", CacheReadDisable),
        ("SPIUnlock", SpiUnlock),
        ("SPILock", SpiLock),
        ("SPIReadModeCnfig", SpiReadModeConfig),
        ("SPIEraseChip", SpiEraseChip),
        ("SPIEraseBlock", SpiEraseBlock),
        ("SPIEraseSector", SpiEraseSector),
        ("SPIWrite", SpiWrite),
        ("SPIRead", SpiRead),
        ("SPIEraseArea", SpiEraseArea),
        ("SPIParamCfg", SpiParamCfg),
        ("gpio_output_set", GpioOutputSet),
        ("gpio_input_get", GpioInputGet),
        ("MD5Init", Md5Init),
        ("MD5Update", Md5Update),
        ("MD5Final", Md5Final),
        (
            "_xtos_set_interrupt_handler_arg",
            XtosSetInterruptHandlerArg,
        ),
        ("_xtos_set_interrupt_handler", XtosSetInterruptHandler),
        ("_xtos_ints_on", XtosIntsOn),
        ("_xtos_ints_off", XtosIntsOff),
        ("strcmp", Strcmp),
        ("strcpy", Strcpy),
        ("strlen", Strlen),
        ("strncmp", Strncmp),
        ("strncpy", Strncpy),
        ("__divdi3", Divdi3),
        ("__udivdi3", Udivdi3),
        ("__umoddi3", Umoddi3),
        ("_xtos_set_intlevel", XtosSetIntlevel),
        ("_xtos_unhandled_interrupt", UnhandledInterrupt),
        ("_xtos_unhandled_exception", UnhandledException),
        ("_xtos_return_from_exc", ReturnFromException),
        ("__divsi3", Divsi3),
        ("__umulsidi3", Umulsidi3),
        ("xthal_get_ccount", XthalGetCcount),
        ("xthal_set_ccompare", XthalSetCcompare),
        ("xthal_get_ccompare", XthalGetCcompare),
        ("xthal_get_intread", XthalGetIntread),
        ("xthal_set_intclear", XthalSetIntclear),
        ("bzero", Bzero),
        ("memcmp", Memcmp),
        ("memcpy", Memcpy),
        ("memmove", Memmove),
        ("memset", Memset),
        ("strstr", Strstr),
        ("__udivsi3", Udivsi3),
        ("__umodsi3", Umodsi3),
    ]
};

/// The return points inside ROM code (not functions, so not in esp-protocol's table): what they
/// are and what the virtual chip does when code returns there.
const RETURN_POINTS: [(u32, &str, Routine); 2] = [
    (
        LOADER_RETURN,
        "UART loader, after uploaded code returns",
        Routine::LoaderReturn,
    ),
    (
        PUTC_RETURN,
        "ets_vprintf, after the character function returns",
        Routine::PutcReturn,
    ),
];

/// Every ROM address the virtual chip knows, sorted by address: esp-protocol's functions, each
/// with its routine if the virtual chip has one, and the return points.
pub fn rom_functions() -> &'static [RomFunction] {
    static TABLE: OnceLock<Vec<RomFunction>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let functions = ROM_FUNCTIONS.iter().map(|function| RomFunction {
            address: function.address,
            name: function.name,
            routine: ROUTINES
                .iter()
                .find(|(name, _)| *name == function.name)
                .map(|&(_, routine)| routine),
        });
        let return_points = RETURN_POINTS
            .iter()
            .map(|&(address, name, routine)| RomFunction {
                address,
                name,
                routine: Some(routine),
            });
        let mut table: Vec<RomFunction> = functions.chain(return_points).collect();
        table.sort_by_key(|function| function.address);
        table
    })
}

/// The table entry at `address`, if the address is a known one.
pub(super) fn lookup(address: u32) -> Option<&'static RomFunction> {
    static INDEX: OnceLock<Vec<u16>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index = vec![u16::MAX; ROM.len()];
        for (n, function) in rom_functions().iter().enumerate() {
            if let Some(slot) = index.get_mut(function.address.wrapping_sub(ROM.start) as usize) {
                *slot = n as u16;
            }
        }
        index
    });
    let slot = *index.get(address.wrapping_sub(ROM.start) as usize)?;
    rom_functions().get(usize::from(slot))
}

#[cfg(test)]
mod tests {
    use esp_protocol::rom_functions::address_of;

    use super::*;

    #[test]
    fn table_is_sorted_unique_and_inside_the_rom() {
        for pair in rom_functions().windows(2) {
            assert!(
                pair[0].address < pair[1].address,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
        for function in rom_functions() {
            assert!(ROM.contains(&function.address));
        }
    }

    #[test]
    fn every_routine_is_named_after_a_rom_function() {
        for (name, _) in ROUTINES {
            assert!(
                address_of(name).is_some(),
                "{name} is not in esp-protocol's table"
            );
            let same_name = ROUTINES.iter().filter(|(other, _)| other == name);
            assert_eq!(same_name.count(), 1, "{name}");
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
    fn return_points_resolve() {
        assert_eq!(
            lookup(LOADER_RETURN).unwrap().routine,
            Some(Routine::LoaderReturn)
        );
        assert_eq!(
            lookup(PUTC_RETURN).unwrap().routine,
            Some(Routine::PutcReturn)
        );
    }
}
