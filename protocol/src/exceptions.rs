//! The LX106 core's exception causes (the Xtensa ISA's EXCCAUSE values) by name and in words,
//! as the crash dumps of the ROM (`Fatal exception (28):`), the Non-OS SDK
//! (`Fatal exception 28(LoadProhibitedCause):`) and the Arduino core (`Exception (28):`)
//! print their number. The emulator names the cause it halts on with them; esp-flasher's
//! monitor adds them to a dump it shows.

/// The name of an EXCCAUSE value in the Xtensa ISA (`reserved` for a number it leaves unused).
pub fn cause_name(cause: u32) -> &'static str {
    match cause {
        0 => "IllegalInstruction",
        1 => "Syscall",
        2 => "InstructionFetchError",
        3 => "LoadStoreError",
        4 => "Level1Interrupt",
        5 => "Alloca",
        6 => "IntegerDivideByZero",
        8 => "Privileged",
        9 => "LoadStoreAlignment",
        12 => "InstrPIFDataError",
        13 => "LoadStorePIFDataError",
        14 => "InstrPIFAddrError",
        15 => "LoadStorePIFAddrError",
        16 => "InstTLBMiss",
        17 => "InstTLBMultiHit",
        18 => "InstFetchPrivilege",
        20 => "InstFetchProhibited",
        24 => "LoadStoreTLBMiss",
        25 => "LoadStoreTLBMultiHit",
        26 => "LoadStorePrivilege",
        28 => "LoadProhibited",
        29 => "StoreProhibited",
        32..=39 => "CoprocessorDisabled",
        _ => "reserved",
    }
}

/// What an EXCCAUSE value means on an ESP8266, in a few words, with the usual culprit where
/// there is one.
pub fn cause_description(cause: u32) -> &'static str {
    match cause {
        0 => "the CPU met an instruction it cannot decode (code overwritten, or a jump into data)",
        1 => "a SYSCALL instruction ran",
        2 => "an instruction fetch failed (a jump to an address where no code is)",
        3 => {
            "a load or store the memory cannot do: on the ESP8266 usually a byte or 16-bit \
             access to IRAM or flash (a PROGMEM string read as a plain char pointer)"
        }
        4 => "a level-1 interrupt (not an error)",
        5 => "MOVSP with the caller's registers not in the register file",
        6 => "an integer division by zero",
        8 => "a privileged instruction ran in user mode",
        9 => "a load or store at an address not aligned to its size",
        12..=15 => "a bus error on the processor's interface (PIF)",
        16..=18 => "an instruction fetch the MMU refused",
        20 => "an instruction fetch from a region where code cannot run (a bad function pointer)",
        24..=26 => "a load or store the MMU refused",
        28 => "a load from an address where nothing can be read (often a NULL or freed pointer)",
        29 => "a store to an address where nothing can be written (often a NULL or freed pointer)",
        32..=39 => "a coprocessor instruction while that coprocessor is disabled",
        _ => "a cause the Xtensa ISA leaves unused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_causes_crash_dumps_show_most_have_names_and_words() {
        assert_eq!(cause_name(0), "IllegalInstruction");
        assert_eq!(cause_name(3), "LoadStoreError");
        assert_eq!(cause_name(28), "LoadProhibited");
        assert_eq!(cause_name(29), "StoreProhibited");
        assert_eq!(cause_name(35), "CoprocessorDisabled");
        assert_eq!(cause_name(7), "reserved");
        assert!(cause_description(28).contains("NULL"));
        assert!(cause_description(3).contains("PROGMEM"));
        assert_eq!(cause_description(u32::MAX), cause_description(7));
    }
}
