//! Helpers for the unit tests: a small memory [`Bus`], and programs assembled by Debian's
//! `xtensa-lx106-elf-as` / `-ld` / `-objcopy` (package `binutils-xtensa-lx106`; a missing
//! tool fails the test loudly, it never skips).

use crate::{Bus, BusFault, Cpu, Stop};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where test programs are linked and start.
pub(crate) const CODE: u32 = 0x4010_0000;
pub(crate) const CODE_SIZE: usize = 0x1_0000;
/// Data memory for loads and stores.
pub(crate) const DATA: u32 = 0x3FFE_8000;
pub(crate) const DATA_SIZE: usize = 0x1_8000;
/// Programs end by jumping here (see [`run_program`]); it lies in the trap range.
pub(crate) const DONE: u32 = 0x400F_FF00;
/// Tests trap everything from the ROM's vectors (VECBASE after reset) up to [`DONE`].
pub(crate) const TRAPS: core::ops::Range<u32> = 0x4000_0000..0x4010_0000;

/// Memory with two RAM regions; anything else is a bus fault. `lines` are the interrupt lines;
/// `pulse` = `(n, lines)` adds `lines` to the n-th poll from now only.
pub(crate) struct TestBus {
    pub(crate) code: Vec<u8>,
    pub(crate) data: Vec<u8>,
    pub(crate) lines: u32,
    pub(crate) pulse: Option<(u32, u32)>,
}

impl TestBus {
    pub(crate) fn new() -> TestBus {
        TestBus {
            code: vec![0; CODE_SIZE],
            data: vec![0; DATA_SIZE],
            lines: 0,
            pulse: None,
        }
    }

    fn locate(&mut self, address: u32, len: u32) -> Result<&mut [u8], BusFault> {
        let fault = BusFault { address };
        let (base, memory) = if address >= CODE {
            (CODE, &mut self.code)
        } else if address >= DATA {
            (DATA, &mut self.data)
        } else {
            return Err(fault);
        };
        let start = (address - base) as usize;
        memory.get_mut(start..start + len as usize).ok_or(fault)
    }

    pub(crate) fn load(&mut self, address: u32, bytes: &[u8]) {
        self.locate(address, bytes.len() as u32)
            .expect("load inside the test memory")
            .copy_from_slice(bytes);
    }

    pub(crate) fn word(&mut self, address: u32) -> u32 {
        self.read32(address).expect("test memory")
    }
}

impl Bus for TestBus {
    fn read8(&mut self, address: u32) -> Result<u8, BusFault> {
        Ok(self.locate(address, 1)?[0])
    }
    fn read16(&mut self, address: u32) -> Result<u16, BusFault> {
        let bytes = self.locate(address, 2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }
    fn read32(&mut self, address: u32) -> Result<u32, BusFault> {
        let bytes = self.locate(address, 4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
    fn write8(&mut self, address: u32, value: u8) -> Result<(), BusFault> {
        self.locate(address, 1)?[0] = value;
        Ok(())
    }
    fn write16(&mut self, address: u32, value: u16) -> Result<(), BusFault> {
        self.locate(address, 2)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn write32(&mut self, address: u32, value: u32) -> Result<(), BusFault> {
        self.locate(address, 4)?
            .copy_from_slice(&value.to_le_bytes());
        Ok(())
    }
    fn interrupt_lines(&mut self) -> u32 {
        match self.pulse {
            Some((0, pulse)) => {
                self.pulse = None;
                self.lines | pulse
            }
            Some((polls, pulse)) => {
                self.pulse = Some((polls - 1, pulse));
                self.lines
            }
            None => self.lines,
        }
    }
}

fn run_tool(tool: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("{tool} is needed ({error}): apt-get install -y binutils-xtensa-lx106")
        });
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A linked test program: its bytes (from [`CODE`]) and its symbols.
pub(crate) struct Program {
    pub(crate) image: Vec<u8>,
    pub(crate) symbols: HashMap<String, u32>,
}

impl Program {
    pub(crate) fn symbol(&self, name: &str) -> u32 {
        *self
            .symbols
            .get(name)
            .unwrap_or_else(|| panic!("no symbol {name} in the test program"))
    }
}

/// Assembles `source` exactly as written (`--no-transform`: no relaxation, no implicit
/// density forms) and links it at [`CODE`]; `_start` is put first and `DONE` names [`DONE`].
pub(crate) fn assemble(source: &str) -> Program {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xtensa-lx106-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let text = format!(
        "    .set DONE, {DONE:#x}\n    .text\n    .global _start\n    .align 4\n_start:\n{source}\n"
    );
    std::fs::write(dir.join("t.s"), text).expect("write the source");
    run_tool(
        "xtensa-lx106-elf-as",
        &["--no-transform", "t.s", "-o", "t.o"],
        &dir,
    );
    let text_address = format!("-Ttext={CODE:#x}");
    run_tool(
        "xtensa-lx106-elf-ld",
        &[&text_address, "-e", "_start", "t.o", "-o", "t.elf"],
        &dir,
    );
    run_tool(
        "xtensa-lx106-elf-objcopy",
        &["-O", "binary", "-j", ".text", "t.elf", "t.bin"],
        &dir,
    );
    let nm = run_tool("xtensa-lx106-elf-nm", &["t.elf"], &dir);
    let image = std::fs::read(dir.join("t.bin")).expect("read the image");
    let _ = std::fs::remove_dir_all(&dir);
    let symbols = nm
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = u32::from_str_radix(fields.next()?, 16).ok()?;
            let _kind = fields.next()?;
            Some((fields.next()?.to_string(), address))
        })
        .collect();
    Program { image, symbols }
}

/// A core and its memory with a program loaded at [`CODE`], the PC there, PS = 0 (kernel mode,
/// interrupts unmasked, no exception in progress) and the trap range [`TRAPS`].
pub(crate) struct Machine {
    pub(crate) cpu: Cpu,
    pub(crate) bus: TestBus,
    pub(crate) program: Program,
}

impl Machine {
    pub(crate) fn new(source: &str) -> Machine {
        let program = assemble(source);
        let mut bus = TestBus::new();
        bus.load(CODE, &program.image);
        let mut cpu = Cpu::new();
        cpu.set_pc(CODE);
        cpu.set_trap_range(TRAPS);
        assert!(cpu.write_sr(crate::sr::PS, 0));
        Machine { cpu, bus, program }
    }

    /// A machine whose code is `bytes` (raw instruction bytes at [`CODE`]).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Machine {
        let mut machine = Machine::new("");
        machine.bus.load(CODE, bytes);
        machine
    }

    pub(crate) fn run(&mut self, budget: u64) -> Stop {
        self.cpu.run(&mut self.bus, budget)
    }

    pub(crate) fn ar(&self, n: usize) -> u32 {
        self.cpu.ar(n)
    }

    pub(crate) fn sr(&self, sr: u8) -> u32 {
        self.cpu.read_sr(sr).expect("readable special register")
    }

    pub(crate) fn symbol(&self, name: &str) -> u32 {
        self.program.symbol(name)
    }

    /// Runs until the program jumps to [`DONE`], failing the test otherwise.
    pub(crate) fn run_to_done(&mut self) {
        let stop = self.run(100_000);
        assert_eq!(
            stop,
            Stop::Trap { pc: DONE },
            "the program did not finish: PC {:#x}, EXCCAUSE {}, recent PCs {:x?}",
            self.cpu.pc(),
            self.cpu.exccause(),
            self.cpu.recent_pcs()
        );
    }
}

/// Runs `source` followed by a jump to [`DONE`] and returns the machine stopped there.
pub(crate) fn run_program(source: &str) -> Machine {
    run_with(source, &[])
}

/// [`run_program`] with address registers set first: `(n, value)` pairs.
pub(crate) fn run_with(source: &str, registers: &[(usize, u32)]) -> Machine {
    let mut machine = Machine::new(&format!("{source}\n    j DONE\n"));
    for &(n, value) in registers {
        machine.cpu.set_ar(n, value);
    }
    machine.run_to_done();
    machine
}
