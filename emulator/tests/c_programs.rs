//! The C programs of `lx106-programs` on the virtual ESP8266: the interpreter
//! (`xtensa-lx106`) runs them on the emulator's `Machine`, and every call into
//! the mask ROM goes to the ROM's functions in Rust (`rom_functions::call`).
//! Each semantics program, at -O0 and -O2, must print exactly what the same
//! source prints when built for the host; `hello` must greet on UART0 and tick
//! once a virtual second; `blink` must print its line and toggle GPIO2 from
//! code that runs from flash through the cache.
//!
//! The programs are built on demand with Debian's Xtensa toolchain; without it
//! these tests fail with the `apt-get install` line that provides it.

use esp_emulator::boot::ResetCause;
use esp_emulator::device::BootMode;
use esp_emulator::flash::SpiFlash;
use esp_emulator::machine::{Machine, MachineConfig, ROM};
use esp_emulator::rom_functions::{self, rom_functions, RomOutcome, RomState};
use esp_protocol::image;
use lx106_programs::{
    Builder, ElfProgram, LoadSegment, OptLevel, OUTPUT_CAPACITY, OUTPUT_LEN_OFFSET,
    OUTPUT_OVERFLOW_OFFSET, OUTPUT_SYMBOL, OUTPUT_TEXT_OFFSET,
};
use xtensa_lx106::{decode, sr, Bus, Cpu, Stop};

/// The programs' stack grows down from here, below the ROM's data at 0x3FFFC000.
const STACK_TOP: u32 = 0x3FFF_C000;
/// The return address a program's entry gets in a0: in the trapped ROM range, at no ROM
/// function, so a return there means the program ended.
const EXIT_ADDRESS: u32 = 0x4000_FFF0;
/// PS for the program: user vector mode, interrupts at level 0 (INTENABLE is 0 anyway), so an
/// exception goes to the ROM's user vector, which reports it.
const PROGRAM_PS: u32 = 0x20;
/// The most cycles one run of the CPU gets before the machine catches up.
const SLICE_CYCLES: u64 = 1_000_000;
/// A semantics program that has not exited after this many cycles is stuck.
const SEMANTICS_CYCLE_LIMIT: u64 = 1_000_000_000;
/// A ROM call that stays blocked this many times in a row with no UART progress waits for
/// something a test never provides.
const MAX_BLOCKED_RETRIES: u32 = 1000;
/// The flash chip of the firmware tests.
const FLASH_SIZE: usize = 1 << 20;

/// The virtual chip a test runs a program on.
struct Chip {
    cpu: Cpu,
    machine: Machine,
    rom: RomState,
    /// Everything UART0 sent.
    uart: Vec<u8>,
}

/// How a run ended when it did not end as hoped.
#[derive(Debug)]
struct RunFailure {
    reason: String,
}

impl Chip {
    fn new(boot: BootMode, flash: SpiFlash) -> Chip {
        let machine = Machine::new(
            MachineConfig {
                efuses: [0; 4],
                boot,
            },
            flash,
        );
        let mut cpu = Cpu::new();
        cpu.set_trap_range(ROM);
        Chip {
            cpu,
            machine,
            rom: RomState::new(ResetCause::PowerOn),
            uart: Vec::new(),
        }
    }

    fn load(&mut self, address: u32, data: &[u8]) {
        self.machine
            .write_ram(address, data)
            .unwrap_or_else(|error| panic!("loading the program: {error}"));
    }

    fn load_elf_segment(&mut self, segment: &LoadSegment) {
        let mut bytes = segment.data.clone();
        bytes.resize(segment.memory_size as usize, 0);
        self.load(segment.address, &bytes);
    }

    /// Sets the core up to call `entry` as a CALL0 function returning to [`EXIT_ADDRESS`].
    fn start(&mut self, entry: u32) {
        self.cpu.set_ar(0, EXIT_ADDRESS);
        self.cpu.set_ar(1, STACK_TOP);
        assert!(self.cpu.write_sr(sr::PS, PROGRAM_PS));
        self.cpu.set_pc(entry);
    }

    /// Runs until the program returns to [`EXIT_ADDRESS`] (`Ok(true)`), `done` holds
    /// (`Ok(false)`), or something else happens.
    fn run(&mut self, cycle_limit: u64, done: impl Fn(&Chip) -> bool) -> Result<bool, RunFailure> {
        let mut blocked = 0;
        loop {
            if done(self) {
                return Ok(false);
            }
            if self.cpu.cycles() >= cycle_limit {
                return Err(
                    self.failure(format!("still running after {} cycles", self.cpu.cycles()))
                );
            }
            let budget = self
                .machine
                .cycles_until_next_event()
                .map_or(SLICE_CYCLES, |cycles| cycles.min(SLICE_CYCLES));
            let stop = self.cpu.run(&mut self.machine, budget);
            let sent = self.catch_up();
            if self.machine.take_watchdog_bite() {
                return Err(self.failure("the watchdog bit".to_owned()));
            }
            match stop {
                Stop::Budget => {}
                Stop::Trap { pc } if pc == EXIT_ADDRESS => return Ok(true),
                Stop::Trap { .. } => {
                    match rom_functions::call(&mut self.cpu, &mut self.machine, &mut self.rom) {
                        RomOutcome::Returned => blocked = 0,
                        RomOutcome::Blocked => {
                            blocked = if sent > 0 { 0 } else { blocked + 1 };
                            if blocked > MAX_BLOCKED_RETRIES {
                                return Err(self.failure(format!(
                                    "ROM call at {:#010x} stays blocked",
                                    self.cpu.pc()
                                )));
                            }
                        }
                        RomOutcome::Reset(kind) => {
                            return Err(self.failure(format!("the chip restarted ({kind:?})")))
                        }
                        RomOutcome::Halted { reason } => {
                            return Err(self.failure(format!("the chip halted: {reason}")))
                        }
                    }
                    self.catch_up();
                }
                Stop::Waiting => {
                    return Err(self.failure("WAITI with no interrupt to wait for".to_owned()))
                }
            }
        }
    }

    /// Brings the peripherals to the CPU's time and takes what UART0 sent; returns how many bytes.
    fn catch_up(&mut self) -> usize {
        self.machine.advance(self.cpu.cycles());
        self.machine.uart_take_tx(&mut self.uart, usize::MAX)
    }

    fn failure(&mut self, what: String) -> RunFailure {
        RunFailure {
            reason: format!(
                "{what} (PC {:#010x}, EXCCAUSE {}, {} instructions)\ntrace: {:?}",
                self.cpu.pc(),
                self.cpu.exccause(),
                self.cpu.instructions_retired(),
                self.machine.take_trace()
            ),
        }
    }

    fn uart_text(&self) -> String {
        String::from_utf8_lossy(&self.uart).replace('\r', "")
    }

    fn read_u32(&mut self, address: u32) -> u32 {
        self.machine
            .read32(address)
            .unwrap_or_else(|fault| panic!("reading the output: {fault}"))
    }

    /// The last PCs the core executed, with the function and the instruction at each.
    fn recent_pcs(&mut self, elf: &ElfProgram) -> String {
        let mut lines = String::new();
        for pc in self.cpu.recent_pcs() {
            let instruction = self.instruction_at(pc);
            lines.push_str(&format!("  {}  {instruction}\n", elf.describe_address(pc)));
        }
        lines
    }

    fn instruction_at(&mut self, pc: u32) -> String {
        let aligned = pc & !3;
        let (Ok(low), high) = (
            self.machine.fetch32(aligned),
            self.machine.fetch32(aligned.wrapping_add(4)),
        ) else {
            return "(not readable)".to_owned();
        };
        let shift = (pc & 3) * 8;
        let word = match shift {
            0 => low,
            _ => (low >> shift) | (high.unwrap_or(0) << (32 - shift)),
        };
        match decode(word) {
            Ok(instruction) => instruction.display(pc).to_string(),
            Err(error) => format!("({error})"),
        }
    }
}

/// The output a semantics program left in its buffer.
fn read_output(chip: &mut Chip, elf: &ElfProgram) -> String {
    let buffer = elf
        .symbol(OUTPUT_SYMBOL)
        .unwrap_or_else(|| panic!("{} has no {OUTPUT_SYMBOL}", elf.path.display()));
    let len = chip.read_u32(buffer + OUTPUT_LEN_OFFSET);
    assert!(
        len <= OUTPUT_CAPACITY,
        "output length {len} is past the buffer"
    );
    assert_eq!(
        chip.read_u32(buffer + OUTPUT_OVERFLOW_OFFSET),
        0,
        "the program wrote more than its output buffer holds"
    );
    let text: Vec<u8> = (0..len)
        .map(|offset| {
            chip.machine
                .read8(buffer + OUTPUT_TEXT_OFFSET + offset)
                .unwrap_or_else(|fault| panic!("reading the output: {fault}"))
        })
        .collect();
    String::from_utf8_lossy(&text).into_owned()
}

/// Where two outputs first differ, line by line.
fn first_difference(expected: &str, actual: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    for number in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(host), Some(lx106)) if host == lx106 => continue,
            (host, lx106) => {
                return format!(
                    "first difference at line {number}:\n  host:  {}\n  lx106: {}\n\
                     ({} lines on the host, {} on the lx106)",
                    host.unwrap_or("(end of output)"),
                    lx106.unwrap_or("(end of output)"),
                    expected.lines().count(),
                    actual.lines().count()
                );
            }
        }
    }
    unreachable!("1.. does not end")
}

fn check_semantics(name: &str, opt: OptLevel) {
    let builder = Builder::new();
    let program = builder
        .semantics(name, opt)
        .unwrap_or_else(|error| panic!("building {name} -{opt}: {error}"));
    let expected = builder
        .host_output(name)
        .unwrap_or_else(|error| panic!("the host build of {name}: {error}"));
    let elf = &program.elf;

    let mut chip = Chip::new(BootMode::Download, blank_flash());
    for segment in &elf.segments {
        chip.load_elf_segment(segment);
    }
    chip.start(elf.entry);
    let ended = chip.run(SEMANTICS_CYCLE_LIMIT, |_| false);
    if let Err(failure) = ended {
        panic!(
            "{name} -{opt} did not finish: {}\nrecent PCs:\n{}",
            failure.reason,
            chip.recent_pcs(elf)
        );
    }
    let actual = read_output(&mut chip, elf);
    if actual != expected {
        panic!(
            "{name} -{opt}: the lx106 output differs from the host's; {}\n\
             ELF: {}\nrecent PCs:\n{}",
            first_difference(&expected, &actual),
            elf.path.display(),
            chip.recent_pcs(elf)
        );
    }
    assert_eq!(
        chip.cpu.ar(2) as usize,
        actual.len(),
        "{name} -{opt}: program_entry returns the output length in a2"
    );
}

fn blank_flash() -> SpiFlash {
    SpiFlash::blank(FLASH_SIZE).expect("1 MiB is a supported flash size")
}

/// One test per program and level: `arith32::o0`, `arith32::o2`, ...
macro_rules! semantics_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn o0() {
                    super::check_semantics(stringify!($name), lx106_programs::OptLevel::O0);
                }

                #[test]
                fn o2() {
                    super::check_semantics(stringify!($name), lx106_programs::OptLevel::O2);
                }
            }
        )*

        #[test]
        fn every_semantics_program_has_its_tests() {
            let tested = [$(stringify!($name)),*];
            assert_eq!(tested, lx106_programs::SEMANTICS_PROGRAMS);
        }
    };
}

semantics_tests!(
    arith32, arith64, shifts, switches, funcptr, recursion, memory, crc32, md5, sort, bits,
    structs, loads,
);

#[test]
fn the_rom_functions_the_programs_link_against_are_implemented_at_those_addresses() {
    let symbols = lx106_programs::rom_ld::rom_symbols();
    for symbol in symbols {
        let found = rom_functions()
            .iter()
            .find(|function| function.address == symbol.address)
            .unwrap_or_else(|| {
                panic!(
                    "{} at {:#010x} is not in the ROM table",
                    symbol.name, symbol.address
                )
            });
        assert!(
            found.implemented(),
            "{} at {:#010x} ({}) has no implementation",
            symbol.name,
            symbol.address,
            found.name
        );
    }
    assert!(
        rom_functions()
            .iter()
            .all(|function| function.address != EXIT_ADDRESS),
        "the tests' exit address must not be a ROM function"
    );
}

#[test]
fn hello_greets_on_uart0_and_ticks_once_a_second() {
    let hello = Builder::new()
        .hello()
        .unwrap_or_else(|error| panic!("building hello: {error}"));
    // Load the image as `esptool load_ram` sends it: its segments, then its entry point.
    let bytes = std::fs::read(&hello.image_path).expect("hello's image");
    let parsed = image::parse(&bytes).expect("hello's image parses");
    let mut chip = Chip::new(BootMode::Download, blank_flash());
    for segment in &parsed.image.segments {
        chip.load(segment.load_address, &segment.data);
    }
    chip.start(parsed.image.entry);

    let greeting = [
        "Hello from the virtual ESP8266",
        "count 1 of 3",
        "Hello from the virtual ESP8266",
        "count 2 of 3",
        "Hello from the virtual ESP8266",
        "count 3 of 3",
        "uart_tx_one_char says hi",
    ]
    .map(|line| format!("{line}\n"))
    .concat();
    let limit = 10 * u64::from(chip.rom.cpu_mhz()) * 1_000_000;
    let run = |chip: &mut Chip, until: &str| {
        let ended = chip.run(limit, |chip| chip.uart_text().len() >= until.len());
        match ended {
            Ok(false) => {}
            Ok(true) => panic!("hello returned; UART0: {:?}", chip.uart_text()),
            Err(failure) => panic!(
                "hello: {}\nUART0: {:?}\nrecent PCs:\n{}",
                failure.reason,
                chip.uart_text(),
                chip.recent_pcs(&hello.elf)
            ),
        }
        assert!(
            chip.uart_text().starts_with(until),
            "UART0 says {:?}, expected it to start with {until:?}",
            chip.uart_text()
        );
    };
    run(&mut chip, &greeting);
    let greeted_at = chip.cpu.cycles();
    run(&mut chip, &format!("{greeting}tick 1\ntick 2\n"));
    let elapsed = chip.cpu.cycles() - greeted_at;
    let second = u64::from(chip.rom.cpu_mhz()) * 1_000_000;
    assert!(
        (2 * second..2 * second + second / 10).contains(&elapsed),
        "two ticks took {elapsed} cycles, expected two seconds at {} MHz",
        chip.rom.cpu_mhz()
    );
}

#[test]
fn blink_runs_from_flash_prints_and_toggles_gpio2() {
    let blink = Builder::new()
        .blink()
        .unwrap_or_else(|error| panic!("building blink: {error}"));
    let mut contents = std::fs::read(&blink.flash_image_path).expect("blink's flash image");
    assert!(contents.len() <= FLASH_SIZE);
    contents.resize(FLASH_SIZE, 0xFF);
    let flash = SpiFlash::new(contents.clone(), Default::default()).expect("a 1 MiB flash");
    // Boot as the ROM does from flash: the image at offset 0, its segments into RAM, its entry.
    let parsed = image::parse(&contents).expect("blink's image parses");
    let mut chip = Chip::new(BootMode::Flash, flash);
    for segment in &parsed.image.segments {
        chip.load(segment.load_address, &segment.data);
    }
    chip.start(parsed.image.entry);

    let in_flash = blink.elf.symbol("blink_forever").expect("blink_forever");
    let expected = format!(
        "blink: bare-metal firmware, code in flash at {in_flash:#x}\n\
         GPIO2 high\nGPIO2 low\nGPIO2 high\nGPIO2 low\n"
    );
    let limit = 10 * u64::from(chip.rom.cpu_mhz()) * 1_000_000;
    match chip.run(limit, |chip| chip.uart_text().len() >= expected.len()) {
        Ok(false) => {}
        Ok(true) => panic!("blink returned; UART0: {:?}", chip.uart_text()),
        Err(failure) => panic!(
            "blink: {}\nUART0: {:?}\nrecent PCs:\n{}",
            failure.reason,
            chip.uart_text(),
            chip.recent_pcs(&blink.elf)
        ),
    }
    assert_eq!(chip.uart_text(), expected);
    assert!(chip.machine.flash_cache_enabled());

    const GPIO2: u32 = 1 << 2;
    let levels: Vec<(u64, bool)> = chip
        .machine
        .take_gpio_events()
        .into_iter()
        .map(|(cycle, out)| (cycle, out & GPIO2 != 0))
        .collect();
    let states: Vec<bool> = levels.iter().map(|&(_, high)| high).collect();
    assert!(
        states.starts_with(&[true, false, true]),
        "GPIO2 went {states:?}"
    );
    let half_period = u64::from(chip.rom.cpu_mhz()) * 500_000;
    for pair in levels.windows(2).take(2) {
        let elapsed = pair[1].0 - pair[0].0;
        assert!(
            (half_period..half_period + half_period / 10).contains(&elapsed),
            "GPIO2 changed after {elapsed} cycles, expected half a second"
        );
    }
}
